//! ESP against scapy's independent implementation through the real daemon, configured with
//! vpp_papi: scapy in a namespace behind a tun plays the peer node, rvpp opens what scapy
//! seals and scapy opens what rvpp seals; replay, tamper and unknown SPI are counted
//! (tests/api/scapy_ipsec.py).

#[path = "api/common.rs"]
mod common;

use common::skip;
use rvpp_drivers::netns::TestNetns;

#[test]
fn scapy_peer_and_rvpp_exchange_esp_both_ways() {
    if !skip::need_root("for a namespace and a tun") {
        return;
    }
    let ns = TestNetns::new().unwrap();
    let mut r = common::Rvpp::start("ipsec-scapy", "");
    let Some(out) = r.check_python("scapy_ipsec.py", &[ns.name()]) else {
        return;
    };
    assert!(out.contains("ALL OK"));
}
