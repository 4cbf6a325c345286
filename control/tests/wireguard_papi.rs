//! rvpp to rvpp over WireGuard, configured by calico-vpp's message sequence through vpp_papi
//! (tests/api/papi_wireguard.py). Two daemons, their uplinks bridged in a netns of the test's
//! own, a pod netns behind each: pod A pings pod B and runs a short iperf3 to it.
//!
//! Addresses: uplinks 198.18.0.1 and .2 /24; pod A 198.19.0.2 (rvpp A 198.19.0.1/24), pod B
//! 198.19.1.2 (rvpp B 198.19.1.1/24).

#[path = "api/common.rs"]
mod common;

use common::harness::{quiet as ok, wait_for, Netns};

#[test]
fn two_rvpp_nodes_over_wireguard_as_calico_configures_them() {
    if !common::skip::need_root("for taps and namespaces of the test's own") {
        return;
    }
    if common::skip::need_tool("iperf3").is_none() {
        return;
    }
    let pid = std::process::id();
    let mid = Netns::new(format!("rvpp-wgm-{pid}"));
    let pod_a = Netns::new(format!("rvpp-wga-{pid}"));
    let pod_b = Netns::new(format!("rvpp-wgb-{pid}"));
    let mut a = common::pod_node("wg", 1, &mid, &pod_a);
    let b = common::pod_node("wg", 2, &mid, &pod_b);
    common::bridge_uplinks(&mid);

    let sock_b = b.api.display().to_string();
    let Some(out) = a.check_python("papi_wireguard.py", &[&sock_b]) else {
        return;
    };
    assert!(out.contains("ALL OK"));

    // Persistent keepalive 1 s: the nodes shake hands by themselves.
    wait_for("both peers established", 10, || {
        [&a, &b]
            .iter()
            .all(|r| r.ctl("show wireguard peer").contains("established"))
    });
    // The first packet to each pod resolves its neighbour (consumed by ip4-arp, as VPP's).
    let _ = pod_a.exec(&["ping", "-c", "1", "-W", "1", "198.19.1.2"]);
    let ping = pod_a.exec(&["ping", "-c", "5", "-i", "0.2", "-W", "2", "198.19.1.2"]);
    let text = String::from_utf8_lossy(&ping.stdout).to_string();
    assert!(
        ping.status.success() && text.contains(" 0% packet loss"),
        "ping between pods over wireguard failed:\n{text}\nA:\n{}\n{}\nB:\n{}\n{}",
        a.ctl("show errors"),
        a.ctl("show wireguard peer"),
        b.ctl("show errors"),
        b.ctl("show wireguard peer")
    );
    let out = common::harness::iperf3_short(&pod_b, &pod_a, "198.19.1.2").unwrap_or_else(|e| {
        panic!(
            "iperf3 between pods over wireguard failed:\n{e}\nA:\n{}\nB:\n{}",
            a.ctl("show errors"),
            b.ctl("show errors")
        )
    });
    println!("{out}\n{}", a.ctl("show wireguard peer"));
    // Deleting the interface takes its peers and stops the traffic.
    ok(a.ctl("wireguard delete wg0"));
    assert!(!a.ctl("show wireguard peer").contains("endpoint"));
    let ping = pod_a.exec(&["ping", "-c", "1", "-W", "1", "198.19.1.2"]);
    assert!(
        !ping.status.success(),
        "a reply through a deleted wg interface"
    );
    assert!(a.alive());
}
