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

/// A GSO pod's TCP over VXLAN out of an af_packet uplink (`gso`) to a Linux node's `vxlan`
/// device: rvpp segments each super-frame after encapsulation, and the af_packet tx merges
/// the segments into UDP GSO frames that the kernel cuts again (VIRTIO_NET_HDR_GSO_UDP_L4).
/// The Linux node's uplink then receives far fewer skbs than rvpp sent datagrams, and its
/// kernel, which checks every outer and inner checksum, still delivers the stream.
///
/// Addresses: uplink 198.18.0.0/30 or fd00::/64 (rvpp .1 / ::1, Linux .2 / ::2), tunnel
/// 198.19.255.0/24, pod 198.18.1.2.
#[test]
fn vxlan_segments_leave_an_af_packet_uplink_merged_into_udp_gso_frames() {
    merged_across("apv", false);
}

/// The same over an IPv6 outer header (no IPv4 ID to follow; the partial UDP checksum over
/// the IPv6 pseudo-header).
#[test]
fn ipv6_outer_vxlan_segments_leave_an_af_packet_uplink_merged() {
    merged_across("apv6", true);
}

fn merged_across(tag: &str, v6: bool) {
    if !skip::need_root("for a veth, a tun, a vxlan device and namespaces of the test's own") {
        return;
    }
    let Some(_) = skip::need_tool("iperf3") else {
        return;
    };
    let pid = std::process::id();
    let up = Netns::new(format!("rvpp-{tag}u-{pid}"));
    let net = Netns::new(format!("rvpp-{tag}n-{pid}"));
    let pod = Netns::new(format!("rvpp-{tag}p-{pid}"));
    let (ours, theirs, plen, nodad) = match v6 {
        false => ("198.18.0.1", "198.18.0.2", 30, ""),
        true => ("fd00::1", "fd00::2", 64, " nodad"),
    };
    up.ip(&format!(
        "link add up0 type veth peer name up1 netns {}",
        net.0
    ));
    up.ip("link set up0 up");
    net.ip("link set lo up");
    net.ip(&format!("addr add {theirs}/{plen} dev up1{nodad}"));
    net.ip("link set up1 up");
    net.ip(&format!(
        "link add vx0 type vxlan id 4096 dstport 4789 local {theirs} remote {ours} dev up1 nolearning"
    ));
    net.ip("link set vx0 address 66:01:02:03:04:05");
    net.ip("addr add 198.19.255.2/24 dev vx0");
    net.ip("link set vx0 up");
    net.ip("neigh replace 198.19.255.1 lladdr 02:fe:00:00:00:c0 dev vx0 nud permanent");
    net.ip("route add 198.18.1.2/32 via 198.19.255.1 dev vx0 onlink");

    let r = Rvpp::start(&format!("{tag}-afp"), "buffers { buffers-per-numa 16384 }");
    let host = r.ctl(&format!(
        "create host-interface name up0 netns {} gso",
        up.0
    ));
    assert_eq!(host.trim(), "host-up0", "{host}");
    quiet(r.ctl(&format!("set interface ip address host-up0 {ours}/{plen}")));
    quiet(r.ctl("set interface state host-up0 up"));
    let mac = net.sh("cat /sys/class/net/up1/address");
    quiet(r.ctl(&format!("set ip neighbor host-up0 {theirs} {mac}")));
    let vx = r.ctl(&format!(
        "create vxlan tunnel src {ours} dst {theirs} vni 4096"
    ));
    assert_eq!(vx.trim(), "vxlan_tunnel0", "{vx}");
    quiet(r.ctl("set interface mac address vxlan_tunnel0 02:fe:00:00:00:c0"));
    quiet(r.ctl("set interface ip address vxlan_tunnel0 198.19.255.1/24"));
    quiet(r.ctl("set interface state vxlan_tunnel0 up"));
    quiet(r.ctl("set ip neighbor vxlan_tunnel0 198.19.255.2 66:01:02:03:04:05"));
    common::tun_pod(&r, &pod, 1, "198.18.1.2", true);

    let rx_skbs = || -> u64 {
        net.sh("cat /sys/class/net/up1/statistics/rx_packets")
            .parse()
            .unwrap_or(0)
    };
    let before = rx_skbs();
    let report = iperf3_short(&net, &pod, "198.19.255.2");
    let errors = r.ctl("show errors");
    let hw = r.ctl("show hardware");
    let report = report.unwrap_or_else(|e| panic!("TCP over VXLAN failed: {e}\n{errors}\n{hw}"));
    assert!(report.contains("receiver"), "{report}");
    let segments = common::counted(&errors, "segments sent");
    let skbs = rx_skbs() - before;
    let merged: u64 = hw
        .split("udp gso frames ")
        .nth(1)
        .and_then(|t| t.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(segments > 1000, "too few segments to judge:\n{errors}");
    // Unmerged, the Linux side receives one skb per segment (plus ARP and the handshake).
    assert!(
        skbs * 4 < segments,
        "{skbs} skbs received for {segments} segments sent:\n{hw}"
    );
    assert!(merged > 0, "no UDP GSO frame sent:\n{hw}");
    assert!(hw.contains("rx dropped by the kernel (ring) "), "{hw}");
    drop(r);
}

/// Frames the kernel drops because rvpp's rx ring is full are counted (`PACKET_STATISTICS`
/// `tp_drops`, shown by `show hardware`): rvpp is stopped while the peer sends more than
/// the ring holds. Addresses: 198.18.3.0/24 (rvpp .1, peer .2).
#[test]
fn frames_the_kernel_drops_for_a_full_rx_ring_are_counted() {
    if !skip::need_root("for a veth and namespaces of the test's own") {
        return;
    }
    let Some(_) = skip::need_tool("python3") else {
        return;
    };
    let pid = std::process::id();
    let up = Netns::new(format!("rvpp-aprdu-{pid}"));
    let net = Netns::new(format!("rvpp-aprdn-{pid}"));
    up.ip(&format!(
        "link add up0 type veth peer name up1 netns {}",
        net.0
    ));
    up.ip("link set up0 up");
    net.ip("addr add 198.18.3.2/24 dev up1");
    net.ip("link set up1 up");
    let mac = up.sh("cat /sys/class/net/up0/address");
    net.ip(&format!(
        "neigh replace 198.18.3.1 lladdr {mac} dev up1 nud permanent"
    ));
    let r = Rvpp::start("aprd-afp", "buffers { buffers-per-numa 16384 }");
    let host = r.ctl(&format!("create host-interface name up0 netns {}", up.0));
    assert_eq!(host.trim(), "host-up0", "{host}");
    quiet(r.ctl("set interface ip address host-up0 198.18.3.1/24"));
    quiet(r.ctl("set interface state host-up0 up"));
    let send = |n: u32| {
        net.sh(&format!(
            "python3 -c \"import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); \
             [s.sendto(b'x' * 1200, ('198.18.3.1', 9)) for _ in range({n})]\""
        ))
    };
    let sig = |s: &str| {
        let ok = std::process::Command::new("kill")
            .args([s, &r.child.id().to_string()])
            .status()
            .is_ok_and(|st| st.success());
        assert!(ok, "kill {s}");
    };
    // The default ring is 16 blocks of 256 KiB: about 3,000 such frames.
    sig("-STOP");
    send(20000);
    sig("-CONT");
    std::thread::sleep(std::time::Duration::from_millis(300));
    send(10);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let hw = r.ctl("show hardware");
    let dropped: u64 = hw
        .split("rx dropped by the kernel (ring) ")
        .nth(1)
        .and_then(|t| t.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(dropped > 10000, "kernel ring drops not counted:\n{hw}");
    drop(r);
}
