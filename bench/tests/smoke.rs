//! The in-process benchmarks run end to end, briefly: each must finish with status 0 and print
//! its JSON. A path that breaks (packets to ip4-arp, a drop, nothing forwarded) fails the
//! benchmark itself, so it fails here instead of printing a meaningless ratio. No figure is
//! checked: timing belongs in the benchmarks, not in tests.

use serde_json::Value;
use std::process::Command;

fn run(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_rvpp-bench"))
        .args(args)
        .arg("--json")
        .output()
        .expect("run rvpp-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "rvpp-bench {}: {}\n{stdout}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let json = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("rvpp-bench {}: no JSON line\n{stdout}", args.join(" ")));
    serde_json::from_str(json).expect("JSON")
}

#[test]
fn graph_paths_forward() {
    for path in ["ip4", "ip6", "npol", "npol6"] {
        run(&[
            "graph",
            "--path",
            path,
            "--routes",
            "1",
            "--runs",
            "1",
            "--seconds",
            "0.05",
            "--no-peer",
        ]);
    }
}

#[test]
fn srv6_cases_take_their_paths() {
    run(&["srv6", "--sizes", "64", "--runs", "1", "--seconds", "0.05"]);
}

#[test]
fn overlay_cases_take_their_tunnels() {
    run(&[
        "overlay",
        "--sizes",
        "64",
        "--runs",
        "1",
        "--seconds",
        "0.05",
    ]);
    for case in ["vxlan-l2-decap", "ipip-decap"] {
        run(&[
            "overlay",
            "--case",
            case,
            "--inner6",
            "--sizes",
            "64",
            "--seconds",
            "0.05",
        ]);
    }
}

#[test]
fn cnat_translates_and_creates_sessions() {
    run(&[
        "cnat",
        "--flows",
        "1000",
        "--runs",
        "1",
        "--seconds",
        "0.05",
    ]);
}
