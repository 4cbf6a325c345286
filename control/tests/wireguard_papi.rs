//! rvpp to rvpp over WireGuard, configured by calico-vpp's message sequence through vpp_papi
//! (tests/api/papi_wireguard.py). Two daemons, their uplinks bridged in a netns of the test's
//! own, a pod netns behind each: pod A pings pod B and runs a short iperf3 to it.
//!
//! Addresses: uplinks 198.18.0.1 and .2 /24; pod A 198.19.0.2 (rvpp A 198.19.0.1/24), pod B
//! 198.19.1.2 (rvpp B 198.19.1.1/24).

#[path = "api/common.rs"]
mod common;

use common::harness::{quiet as ok, wait_for, Netns};
use common::Rvpp;

/// rvpp `n` (1 or 2): uplink tap0 into `mid` as `up<n>`, pod tap1 into `pod`.
fn node(n: u8, mid: &Netns, pod: &Netns) -> Rvpp {
    let r = Rvpp::start(&format!("wg{n}"), "");
    let up = r.ctl(&format!("create tap host-ns {} host-if-name up{n}", mid.0));
    assert_eq!(up.trim(), "tap0", "{up}");
    let tp = r.ctl(&format!("create tap host-ns {} host-if-name eth0", pod.0));
    assert_eq!(tp.trim(), "tap1", "{tp}");
    ok(r.ctl(&format!("set interface ip address tap0 198.18.0.{n}/24")));
    ok(r.ctl(&format!(
        "set interface ip address tap1 198.19.{}.1/24",
        n - 1
    )));
    ok(r.ctl("set interface state tap0 up"));
    ok(r.ctl("set interface state tap1 up"));
    pod.ip("link set lo up");
    pod.ip(&format!("addr add 198.19.{}.2/24 dev eth0", n - 1));
    pod.ip("link set eth0 up");
    pod.ip(&format!("route add default via 198.19.{}.1", n - 1));
    r
}

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
    let mut a = node(1, &mid, &pod_a);
    let b = node(2, &mid, &pod_b);
    mid.ip("link add br0 type bridge");
    for l in ["up1", "up2"] {
        mid.ip(&format!("link set {l} master br0"));
        mid.ip(&format!("link set {l} up"));
    }
    mid.ip("link set br0 up");

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
