//! WireGuard against wireguard-go, the reference userspace implementation, configured with
//! `wg` in a netns of the test's own (the "other node"); a second netns is a pod behind rvpp.
//! The other node pings the pod and runs a short iperf3 to it through the tunnel: the
//! handshake, both directions of transport data and rvpp's forwarding between the wg
//! interface and the pod's tap. Then the other node changes its private key: rvpp refuses
//! the handshake from the unknown key and counts it.
//!
//! Addresses: uplink 198.18.0.0/30 (rvpp .1, wireguard-go .2), pod 198.19.0.0/24 (rvpp .1,
//! pod .2), wireguard-go's inner address 198.19.1.1/24.

#[path = "../../test-support/skip.rs"]
mod skip;

mod common;

use common::{quiet as ok, wait_for, Killed, Netns, Rvpp};
use std::process::Stdio;

/// The count `show errors` prints for a reason (0 when absent).
fn error_count(errors: &str, reason: &str) -> u64 {
    errors
        .lines()
        .filter(|l| l.contains(reason))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn wireguard_go_peer_reaches_a_pod_behind_rvpp() {
    if !skip::need_root("for taps, a tun and namespaces of the test's own") {
        return;
    }
    let (Some(_), Some(_), Some(_)) = (
        skip::need_tool("wireguard-go"),
        skip::need_tool("wg"),
        skip::need_tool("iperf3"),
    ) else {
        return;
    };
    let pid = std::process::id();
    let node = Netns::new(format!("rvpp-wgn-{pid}"));
    let pod = Netns::new(format!("rvpp-wgp-{pid}"));
    let r = Rvpp::start("wg-go", "buffers { buffers-per-numa 16384 }");
    let up = r.ctl(&format!("create tap host-ns {} host-if-name up0", node.0));
    assert_eq!(up.trim(), "tap0", "{up}");
    // The pod's tap offers GSO and checksum offload, as calico creates pod taps.
    let tp = r.ctl(&format!(
        "create tap host-ns {} host-if-name eth0 gso",
        pod.0
    ));
    assert_eq!(tp.trim(), "tap1", "{tp}");
    ok(r.ctl("set interface ip address tap0 198.18.0.1/30"));
    ok(r.ctl("set interface state tap0 up"));
    ok(r.ctl("set interface ip address tap1 198.19.0.1/24"));
    ok(r.ctl("set interface state tap1 up"));
    pod.ip("link set lo up");
    pod.ip("addr add 198.19.0.2/24 dev eth0");
    pod.ip("link set eth0 up");
    pod.ip("route add default via 198.19.0.1");

    // The other node: uplink and wireguard-go.
    node.ip("link set lo up");
    node.ip("addr add 198.18.0.2/30 dev up0");
    node.ip("link set up0 up");
    let _wg_go = Killed(
        node.cmd(&["wireguard-go", "-f", "wgo0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("wireguard-go"),
    );
    wait_for("wireguard-go's tun", 10, || {
        node.exec(&["ip", "link", "show", "wgo0"]).status.success()
    });
    let their_private = node.sh("wg genkey");
    let their_public = node.sh(&format!("echo {their_private} | wg pubkey"));

    let wg0 = r.ctl("wireguard create listen-port 51820 generate-key src 198.18.0.1");
    assert_eq!(wg0.trim(), "wg0", "{wg0}");
    let show = r.ctl("show wireguard interface");
    let our_public = show
        .split("public-key:")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("public key shown")
        .to_string();
    let peer = r.ctl(&format!(
        "wireguard peer add wg0 public-key {their_public} endpoint 198.18.0.2 port 51821 \
         allowed-ip 198.19.1.0/24"
    ));
    assert_eq!(peer.trim(), "peer index 0", "{peer}");
    ok(r.ctl("set interface ip address wg0 198.19.254.1/32"));
    ok(r.ctl("set interface state wg0 up"));
    ok(r.ctl("ip route add 198.19.1.0/24 via wg0"));

    node.sh(&format!(
        "echo {their_private} > /tmp/rvpp-wgkey-{pid} && \
         wg set wgo0 private-key /tmp/rvpp-wgkey-{pid} listen-port 51821 \
         peer {our_public} endpoint 198.18.0.1:51820 allowed-ips 198.19.0.0/24 && \
         rm -f /tmp/rvpp-wgkey-{pid}"
    ));
    node.ip("addr add 198.19.1.1/24 dev wgo0");
    node.ip("link set wgo0 mtu 1420 up");
    node.ip("route add 198.19.0.0/24 dev wgo0");

    let ping = node.exec(&["ping", "-c", "5", "-i", "0.3", "-W", "3", "198.19.0.2"]);
    let text = String::from_utf8_lossy(&ping.stdout).to_string();
    let errors = r.ctl("show errors");
    assert!(
        ping.status.success() && !text.contains(" 100% packet loss"),
        "ping through wireguard failed:\n{text}\n{errors}\n{}\n{}",
        r.ctl("show wireguard interface"),
        r.ctl("show wireguard peer")
    );
    let peers = r.ctl("show wireguard peer");
    eprintln!("{text}\n{peers}\n{errors}");
    assert!(peers.contains("established"), "{peers}");
    assert!(
        error_count(&errors, "wireguard packets decrypted") >= 3,
        "{errors}"
    );
    assert!(
        error_count(&errors, "wireguard packets encrypted") >= 3,
        "{errors}"
    );
    let wg_show = node.sh("wg show wgo0 latest-handshakes");
    assert!(
        !wg_show.ends_with("\t0"),
        "wireguard-go saw no handshake: {wg_show}"
    );

    // A short iperf3 from the other node to the pod.
    let out = common::iperf3_short(&pod, &node, "198.19.0.2").unwrap_or_else(|e| {
        panic!(
            "iperf3 through wireguard failed:\n{e}\n{}",
            r.ctl("show errors")
        )
    });
    eprintln!("{out}");
    // And from the pod: its TCP super-frames are cut before they are sealed (gso-ip4).
    let out = common::iperf3_short(&node, &pod, "198.19.1.1").unwrap_or_else(|e| {
        panic!(
            "iperf3 from the pod through wireguard failed:\n{e}\n{}",
            r.ctl("show errors")
        )
    });
    eprintln!("{out}");
    let errors = r.ctl("show errors");
    let cut: u64 = errors
        .lines()
        .filter(|l| l.contains("gso-ip4") && l.contains("super-frames segmented"))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    assert!(
        cut > 0,
        "no super-frame was cut before wireguard:\n{errors}"
    );

    // A key rvpp does not know: the handshake is refused and counted, traffic stops.
    let other = node.sh("wg genkey");
    node.sh(&format!(
        "echo {other} > /tmp/rvpp-wgkey-{pid} && wg set wgo0 private-key /tmp/rvpp-wgkey-{pid} \
         && rm -f /tmp/rvpp-wgkey-{pid}"
    ));
    let _ = node.exec(&["ping", "-c", "2", "-i", "0.5", "-W", "1", "198.19.0.2"]);
    wait_for("the unknown key's handshake counted", 10, || {
        let s = r.ctl("show wireguard interface");
        s.lines()
            .find(|l| l.contains("unknown peer key"))
            .and_then(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .is_some_and(|n| n >= 1)
    });
    eprintln!("{}", r.ctl("show wireguard interface"));
    drop(r);
}
