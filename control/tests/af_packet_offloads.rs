//! An af_packet uplink whose peer (a veth in a namespace of the test's own, standing for the
//! network or a Linux node) keeps the checksum offload a veth has by default: TCP from the
//! peer to a tun pod behind rvpp must arrive with right checksums.
//!
//! - Without a vnet header the kernel marks such packets "checksum not ready"
//!   (TP_STATUS_CSUMNOTREADY); rvpp finishes them on the way out (the peer's TSO is off: a
//!   packet socket without a vnet header cannot take super-frames).
//! - With one (`gso`), the peer keeps every offload: super-frames arrive whole and leave to a
//!   GSO pod as they came, or are segmented for a pod without.
//!
//! Addresses: uplink 198.18.3.0/24 (rvpp .1, peer .2), pod 198.18.1.2.

#[path = "../../test-support/skip.rs"]
mod skip;

mod common;

use common::{iperf3_short, quiet, Netns, Rvpp};

#[test]
fn tcp_from_a_peer_with_checksum_offload_reaches_a_pod_without_vnet_header() {
    across("apc", false, false);
}

#[test]
fn super_frames_from_a_peer_with_every_offload_reach_pods_with_and_without_gso() {
    across("apg", true, true);
    across("apn", true, false);
}

/// `vnet`: the uplink has the vnet header (`gso`); `pod_gso`: the pod's tun has GSO.
fn across(tag: &str, vnet: bool, pod_gso: bool) {
    if !skip::need_root("for a veth, a tun and namespaces of the test's own") {
        return;
    }
    let (Some(_), Some(_)) = (skip::need_tool("iperf3"), skip::need_tool("ethtool")) else {
        return;
    };
    let pid = std::process::id();
    let up = Netns::new(format!("rvpp-{tag}u-{pid}"));
    let net = Netns::new(format!("rvpp-{tag}n-{pid}"));
    let pod = Netns::new(format!("rvpp-{tag}p-{pid}"));
    up.ip(&format!(
        "link add up0 type veth peer name up1 netns {}",
        net.0
    ));
    up.ip("link set up0 up");
    net.ip("link set lo up");
    net.ip("addr add 198.18.3.2/24 dev up1");
    net.ip("link set up1 up");
    net.ip("route add 198.18.1.0/24 via 198.18.3.1");
    if !vnet {
        net.sh("ethtool -K up1 tso off gso off");
    }
    let tx = net.sh("ethtool -k up1 | grep '^tx-checksumming:'");
    assert!(
        tx.ends_with("on"),
        "the peer must leave its checksums to offload: {tx}"
    );

    let r = Rvpp::start(&format!("{tag}-afp"), "buffers { buffers-per-numa 16384 }");
    let flag = if vnet { " gso" } else { "" };
    let host = r.ctl(&format!(
        "create host-interface name up0 netns {}{flag}",
        up.0
    ));
    assert_eq!(host.trim(), "host-up0", "{host}");
    quiet(r.ctl("set interface ip address host-up0 198.18.3.1/24"));
    quiet(r.ctl("set interface state host-up0 up"));
    common::tun_pod(&r, &pod, 1, "198.18.1.2", pod_gso);

    let report = iperf3_short(&pod, &net, "198.18.1.2");
    let errors = r.ctl("show errors");
    let report = report.unwrap_or_else(|e| {
        panic!(
            "TCP from the peer to the pod failed: {e}\n{errors}\n{}",
            r.ctl("show interface")
        )
    });
    assert!(report.contains("receiver"), "{report}");
    drop(r);
}
