//! The netns lab (scripts/lab.sh) against this build's rvpp and rvppctl: pods on tun
//! interfaces rvpp creates, an AF_XDP uplink (and an AF_PACKET one) to a Linux-routed remote
//! node, ping/iperf3/too-big/ARP/ND checks, robustness, clean exit. Needs root, iproute2,
//! ping, iperf3 and ethtool; skips otherwise.

#[path = "../../test-support/skip.rs"]
mod skip;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Root and the lab's tools, else a skip (a failure under CI).
fn can_run() -> bool {
    if !skip::need_root("for the netns lab") {
        return false;
    }
    ["ip", "ping", "iperf3", "ethtool", "python3"]
        .into_iter()
        .all(|t| skip::need_tool(t).is_some())
}

fn lab(args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/lab.sh");
    let t = Instant::now();
    let out = Command::new("bash")
        .arg(&script)
        .args(args)
        .env("RVPP", env!("CARGO_BIN_EXE_rvpp"))
        .env("RVPPCTL", env!("CARGO_BIN_EXE_rvppctl"))
        // A debug build forwards far less than a release one: keep UDP within its reach.
        .env(
            "UDP_RATE",
            if cfg!(debug_assertions) {
                "10M"
            } else {
                "200M"
            },
        )
        .output()
        .expect("run scripts/lab.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("lab {args:?}: {:.1} s", t.elapsed().as_secs_f64());
    assert!(out.status.success(), "lab {args:?} failed");
    assert!(stdout.contains(" 0 failed"));
}

#[test]
fn lab_af_xdp_uplink_with_robustness() {
    if can_run() {
        lab(&["--uplink", "af_xdp"]);
    }
}

#[test]
fn lab_af_packet_uplink() {
    if can_run() {
        lab(&["--uplink", "af_packet", "--no-robustness"]);
    }
}

/// Two rvpp nodes and a Linux node (felix's vxlan.calico / vxlan-v6.calico), pods on each:
/// ping both families between every pair of nodes' pods, iperf3 TCP over each path (IPIP,
/// VXLAN L3 between the rvpp nodes, VXLAN L2 to Linux) above a floor that a path losing
/// segments falls under, ClusterIPs (cnat on every interface) with backends on other nodes,
/// every tunnel node's packets counted, no tunnel drops, a clean exit of both rvpp
/// processes. About 50 s with a debug build.
#[test]
fn lab_mixed_cluster() {
    if can_run() {
        lab(&["--cluster"]);
    }
}
