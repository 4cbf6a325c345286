//! cnat end to end against an independent packet implementation: the rvpp daemon configured
//! through vpp_papi as calico-vpp configures it, scapy sending and checking packets in
//! namespaces attached by tun pods (tests/api/scapy_cnat.py has the scenarios).

#[path = "api/common.rs"]
mod common;

use common::skip;
use rvpp_drivers::netns::TestNetns;

/// Translation and its reverse (TCP/UDP, IPv4/IPv6), unknown VIP ports, session-less backend
/// traffic, updates and deletes, ICMP errors, the flow hash, ClientIP affinity,
/// externalTrafficPolicy=Local, VIPs without backends, fragments, SNAT with excludes and
/// purge, and the `cnat { session-max }` limit.
#[test]
fn cnat_with_scapy_in_tun_pods() {
    run("cnat-scapy", "");
}

/// The same with two workers: the pods' queues sit on different workers, so a flow's reply
/// is un-NATed by another worker than the one that created its session.
#[test]
fn cnat_with_scapy_in_tun_pods_two_workers() {
    run("cnat-scapy-wk", "workers 2");
}

fn run(tag: &str, cpu: &str) {
    if !skip::need_root("for namespaces and tun pods") {
        return;
    }
    let ns: Vec<TestNetns> = (0..4).map(|_| TestNetns::new().unwrap()).collect();
    let mut r = common::Rvpp::start_with_sections(tag, cpu, "cnat { session-max 64 }");
    let names: Vec<&str> = ns.iter().map(|n| n.name()).collect();
    let Some(out) = r.check_python("scapy_cnat.py", &names) else {
        return;
    };
    assert!(out.contains("ALL OK"));
}
