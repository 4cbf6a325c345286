//! A host endpoint's untracked and pre-DNAT policies end to end: the rvpp daemon configured
//! through vpp_papi, scapy sending and checking packets in namespaces attached by tun pods
//! (tests/api/scapy_npol_host.py has the scenario).

#[path = "api/common.rs"]
mod common;

use common::skip;
use rvpp_drivers::netns::TestNetns;

/// Untracked allow over a normal deny (and no session for its reply), untracked deny,
/// pre-DNAT allow on a service VIP's port with its reply, and a pre-DNAT rule on the
/// backend's port that does not match before DNAT; then a backend pod whose egress denies
/// all: its reply and its ICMP error through the VIP go out, an unsolicited packet is a deny;
/// IPv4 and IPv6.
#[test]
fn host_endpoint_untracked_and_prednat_with_scapy() {
    if !skip::need_root("for namespaces and tun pods") {
        return;
    }
    let ns: Vec<TestNetns> = (0..2).map(|_| TestNetns::new().unwrap()).collect();
    let mut r = common::Rvpp::start("npol-scapy", "");
    let names: Vec<&str> = ns.iter().map(|n| n.name()).collect();
    let Some(out) = r.check_python("scapy_npol_host.py", &names) else {
        return;
    };
    assert!(out.contains("ALL OK"));
}

/// An IPIP tunnel as a host endpoint (`invert_rx_tx=1`): a remote pod's packets to an allowed
/// port arrive decapsulated and their replies leave encapsulated; a denied port and an
/// unsolicited packet out are counted denies; opening the tunnel's defaults lets both through.
#[test]
fn tunnel_as_host_endpoint_with_scapy() {
    if !skip::need_root("for namespaces and tun pods") {
        return;
    }
    let ns: Vec<TestNetns> = (0..2).map(|_| TestNetns::new().unwrap()).collect();
    let mut r = common::Rvpp::start("npol-tunnel", "");
    let names: Vec<&str> = ns.iter().map(|n| n.name()).collect();
    let Some(out) = r.check_python("scapy_npol_tunnel.py", &names) else {
        return;
    };
    assert!(out.contains("ALL OK"));
}
