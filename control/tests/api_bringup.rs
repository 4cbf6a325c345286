//! Replays of calico's bring-up against the real rvpp over the binary API (vpp_papi):
//! vpp-manager's node bring-up (semantics.md §A) with an af_packet uplink on a veth whose peer
//! sits in a namespace of ours, then the agent's bring-up of a tun pod (§B/§C) in a fresh
//! namespace, checked with dumps and then with traffic: pod <-> uplink peer and
//! host tap <-> uplink peer. Pod and host-tap traffic goes through real table-lookup routes
//! (pod VRF -> table 2 -> table 0), and UDP to the node address is punted into the punt table,
//! whose routes are changed under it. The steps and checks are in tests/api/bringup.py.

#[path = "api/common.rs"]
mod common;

use common::{ip, skip, LinkGuard};
use rvpp_drivers::netns::TestNetns;
use std::process::Command;

#[test]
fn calico_node_and_tun_pod_bringup() {
    if !skip::need_root("for namespaces, veths and taps") {
        return;
    }
    if skip::find_tool("ping").is_none() {
        // bringup.py then checks UDP only.
        skip::skip("no ping: bringup.py leaves out its ICMP checks");
    }
    let peer = TestNetns::new().unwrap();
    let host = TestNetns::new().unwrap();
    let pod = TestNetns::new().unwrap();
    let pid = std::process::id() % 100_000;
    let (up, up_peer) = (format!("rvu{pid}"), format!("rvp{pid}"));
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
    // The veth would hand rvpp UDP/TCP with the checksum left to do (CHECKSUM_PARTIAL); the
    // af_packet uplink is opened without vnet headers here, so have the peer complete it.
    let csum = skip::find_tool("ethtool").is_some();
    if csum {
        peer.exec(&["ethtool", "-K", &up_peer, "tx", "off"])
            .expect("ethtool -K tx off");
    } else {
        skip::skip("no ethtool: bringup.py leaves out UDP from the uplink peer");
    }
    peer.ip(&["route", "add", "198.18.20.0/24", "via", "198.18.10.1"])
        .unwrap();

    let mut r = common::Rvpp::start("bringup", "");
    let Some(out) = r.check_python(
        "bringup.py",
        &[
            &up,
            peer.name(),
            host.name(),
            &host.path(),
            pod.name(),
            &pod.path(),
            if csum { "udp" } else { "no-udp" },
        ],
    ) else {
        return;
    };
    assert!(out.contains("ALL OK"));
}
