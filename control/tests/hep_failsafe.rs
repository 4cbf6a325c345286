//! Host endpoints and failsafe ports as the unchanged calico-vpp-agent programs them
//! (calico-vpp-agent/felix/felix_server.go, host_endpoint.go): vpp-manager's node bring-up and a
//! tun pod as in api_bringup.rs (tests/api/bringup.py), then the felix server's all-pods ipset,
//! workloads-to-host, allow-from-host, allow-to-host and failsafe policies, the host tap's
//! default configuration, and a host endpoint's tap and uplink configurations, checked with
//! real TCP and UDP between the uplink peer, the host (the Linux side of the host tap) and the
//! pod, IPv4 and IPv6. The steps and checks are in tests/api/hep_failsafe.py.

#[path = "api/common.rs"]
mod common;

use common::{ip, skip, LinkGuard};
use rvpp_drivers::netns::TestNetns;
use std::process::Command;

#[test]
fn host_endpoint_and_failsafe_ports() {
    if !skip::need_root("for namespaces, veths and taps") {
        return;
    }
    let peer = TestNetns::new().unwrap();
    let host = TestNetns::new().unwrap();
    let pod = TestNetns::new().unwrap();
    let pid = std::process::id() % 100_000;
    let (up, up_peer) = (format!("rvhu{pid}"), format!("rvhp{pid}"));
    let _ = Command::new("ip").args(["link", "del", &up]).output();
    ip(&[
        "link",
        "add",
        &up,
        "type",
        "veth",
        "peer",
        "name",
        &up_peer,
        "netns",
        peer.name(),
    ]);
    let _guard = LinkGuard(up.clone());
    ip(&["link", "set", &up, "up"]);
    peer.ip(&["link", "set", &up_peer, "up"]).unwrap();
    peer.ip(&["addr", "add", "198.18.10.2/24", "dev", &up_peer])
        .unwrap();
    peer.ip(&["addr", "add", "fd00:10::2/64", "dev", &up_peer, "nodad"])
        .unwrap();
    // An address the host first has to resolve while a host endpoint is in place.
    peer.ip(&[
        "addr",
        "add",
        "fd00:10::3/64",
        "dev",
        &up_peer,
        "nodad",
        "preferred_lft",
        "0",
    ])
    .unwrap();
    // The veth would hand rvpp TCP/UDP with the checksum left to do (CHECKSUM_PARTIAL); the
    // af_packet uplink is opened without vnet headers here, so have the peer complete it.
    if skip::find_tool("ethtool").is_none() {
        skip::skip("no ethtool: the uplink peer's TCP and UDP would reach rvpp unchecksummed");
        return;
    }
    peer.exec(&["ethtool", "-K", &up_peer, "tx", "off"])
        .expect("ethtool -K tx off");
    peer.ip(&["route", "add", "198.18.20.0/24", "via", "198.18.10.1"])
        .unwrap();

    let mut r = common::Rvpp::start("hep", "");
    let Some(out) = r.check_python(
        "hep_failsafe.py",
        &[
            &up,
            peer.name(),
            host.name(),
            &host.path(),
            pod.name(),
            &pod.path(),
            "udp",
        ],
    ) else {
        return;
    };
    assert!(out.contains("ALL OK"));
}
