//! SRv6 against scapy, an independent implementation, in the Linux node's place on the uplink
//! tap: what srv6_linux checks, also on kernels without seg6 lightweight tunnels (where
//! srv6_linux is skipped). rvpp's side is srv6_linux's (`srv6_node`); scapy checks rvpp's
//! H.Encaps and sends to its End.DT4 / End.DT6 what Linux (with an SRH) and VPP (without)
//! send; bad SRHs are counted drops (tests/api/scapy_srv6.py has the cases).

#[path = "api/common.rs"]
mod common;

use common::{harness, skip};
use rvpp_drivers::netns::TestNetns;

#[test]
fn scapy_peer_and_rvpp_exchange_srv6_both_ways() {
    if !skip::need_root("for taps in namespaces of the test's own") {
        return;
    }
    let peer = TestNetns::new().unwrap();
    let pod = TestNetns::new().unwrap();
    // The peer's kernel stays silent on the uplink (no address, no IPv6: no RS, DAD or MLD),
    // so scapy sees only what rvpp sends.
    peer.exec(&[
        "sysctl",
        "-q",
        "-w",
        "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1",
    ])
    .unwrap();
    let mut r = common::Rvpp::start("srv6-scapy", "");
    harness::srv6_node(&r, peer.name(), pod.name());
    peer.ip(&["link", "set", "up0", "up"]).unwrap();
    // Buffers in use with both taps idle: the traffic must give back what it took (each tap
    // rx queue's refill stash moves with its traffic: 96 buffers of slack, as srv6_linux).
    let before = harness::buffers_in_use(&r.cli);
    let Some(out) = r.check_python("scapy_srv6.py", &[peer.name(), pod.name()]) else {
        return;
    };
    assert!(out.contains("ALL OK"));
    // Encapsulated: 2 + 200 sent by scapy in the pod, 6 pings; decapsulated: 4 + 200 sent by
    // scapy on the uplink, 6 ping replies.
    let errors = r.ctl("show errors");
    assert!(
        harness::counted(&errors, "sr policy packets encapsulated") >= 208,
        "{errors}"
    );
    assert!(
        harness::counted(&errors, "sr localsid packets decapsulated") >= 210,
        "{errors}"
    );
    harness::wait_for("the pool back to its idle level", 10, || {
        harness::buffers_in_use(&r.cli) <= before + 96
    });
}
