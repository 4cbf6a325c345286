//! Replays of calico's bring-up against the real rvpp over the binary API (vpp_papi):
//! vpp-manager's node bring-up (semantics.md §A) with an af_packet uplink on a veth whose peer
//! sits in a namespace of ours, then the agent's bring-up of a tun pod (§B/§C) in a fresh
//! namespace, checked with dumps and then with traffic: pod <-> uplink peer and
//! host tap <-> uplink peer. Pod and host-tap traffic goes through real table-lookup routes
//! (pod VRF -> table 2 -> table 0), and UDP to the node address is punted into the punt table,
//! whose routes are changed under it. The steps and checks are in tests/api/bringup.py. Then
//! a new rvpp takes the node over (`--take-over`) as a rolling upgrade would.

#[path = "api/common.rs"]
mod common;

use common::{ip, skip, LinkGuard};
use rvpp_drivers::netns::TestNetns;
use std::path::Path;
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
    // bringup.py pauses with its pod up (`ready`) while rvpp is taken over, then goes on
    // (`go`) against the new process.
    let pause = r.path("takeover-pause");
    std::fs::create_dir_all(&pause).unwrap();
    let out_file = r.path("bringup.out");
    let mut py = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/bringup.py"))
        .arg(&r.apidir)
        .arg(&r.api)
        .args([
            up.as_str(),
            peer.name(),
            host.name(),
            host.path().as_str(),
            pod.name(),
            pod.path().as_str(),
            if csum { "udp" } else { "no-udp" },
        ])
        .env("RVPP_TAKEOVER_PAUSE", &pause)
        .stdout(std::fs::File::create(&out_file).unwrap())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("python3");
    let status = loop {
        if let Some(st) = py.try_wait().unwrap() {
            break st;
        }
        if pause.join("ready").exists() && !pause.join("go").exists() {
            take_over_a_calico_node(&mut r, &host);
            std::fs::write(pause.join("go"), "").unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let out = std::fs::read_to_string(&out_file).unwrap_or_default();
    println!("{out}");
    if status.code() == Some(77) {
        skip::skip(&format!("vpp_papi not importable: {}", out.trim()));
        return;
    }
    assert!(
        status.success() && out.contains("ALL OK"),
        "bringup.py failed ({status}):\n{out}\nrvpp log:\n{}",
        r.log()
    );
    assert!(
        pause.join("go").exists(),
        "bringup.py never paused for the take-over"
    );
    assert!(r.alive(), "the new rvpp died: {}", r.log());
}

/// What the bring-up made, its pod up (af_packet uplink, host tap and their VRFs, punt table
/// and redirects, ip6 mroutes, a table deleted while a redirect uses it, the tun pod with its
/// VRFs, uRPF, DNS redirect, cnat and npol objects) is carried by `rvpp --take-over`: the old
/// process hands over and exits 0, the tables and redirects read the same from the new one,
/// and the host still reaches the uplink peer through it (bringup.py checks the pod's own
/// traffic and policy after, then deletes it against the new process).
fn take_over_a_calico_node(r: &mut common::Rvpp, host: &TestNetns) {
    let views = [
        "show ip fib",
        "show ip6 fib",
        "show ip punt redirect",
        "show ip6 punt redirect",
    ];
    // Load-balance and adjacency numbers are the process's own; the rest must be the same.
    let view = |r: &common::Rvpp, v: &str| -> String {
        let mut out = String::new();
        let mut digits_after_marker = false;
        for c in r.ctl(v).chars() {
            if digits_after_marker && c.is_ascii_digit() {
                continue;
            }
            digits_after_marker = c == '@' || c == ':' && out.ends_with("lb");
            out.push(c);
        }
        out
    };
    let before: Vec<String> = views.iter().map(|v| view(r, v)).collect();
    let log = r.path("takeover.log");
    let new = Command::new(env!("CARGO_BIN_EXE_rvpp"))
        .arg("-c")
        .arg(r.path("startup.conf"))
        .arg("--take-over")
        .arg(r.path("api.sock.takeover"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // The harness kills whichever process `child` holds when the test ends.
    let mut old = std::mem::replace(&mut r.child, new);
    let t = std::time::Instant::now();
    let status = loop {
        if let Some(st) = old.try_wait().unwrap() {
            break st;
        }
        if t.elapsed() > std::time::Duration::from_secs(30) {
            let _ = old.kill();
            panic!(
                "the old rvpp did not hand over in 30 s:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let new_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        status.success() && r.alive(),
        "take-over of a calico node: old exited {status}, new alive {}\n{new_log}",
        r.alive()
    );
    let after: Vec<String> = views.iter().map(|v| view(r, v)).collect();
    for ((v, b), a) in views.iter().zip(&before).zip(&after) {
        assert_eq!(b, a, "`{v}` differs after the take-over");
    }
    if skip::find_tool("ping").is_some() {
        let out = host.exec(&["ping", "-c", "3", "-i", "0.2", "-W", "2", "198.18.10.2"]);
        assert!(
            out.is_ok(),
            "the host does not reach the uplink peer after the take-over: {out:?}\n{}",
            r.ctl("show errors")
        );
    }
}
