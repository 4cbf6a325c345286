//! Start the rvpp binary, drive it through rvppctl over its CLI socket, stop it with SIGTERM.

#[path = "../../test-support/skip.rs"]
mod skip;
#[path = "../../test-support/tshark.rs"]
mod tshark;

mod common;

use common::{ctl, if_counter as counter, Opts, Rvpp};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn start(cpu: &str) -> Rvpp {
    let conf = format!(
        "statseg {{ socket-name {{dir}}/stats.sock }}\nbuffers {{ buffers-per-numa 8192 }}\ncpu {{ {cpu} }}\nsome-unknown-section {{ x 1 }}"
    );
    Rvpp::start_with(
        "daemon",
        Opts {
            conf: &conf,
            unix: "pidfile {dir}/rvpp.pid",
            stderr: Stdio::piped(),
            ..Default::default()
        },
    )
}

/// The count `show errors` has for `node`'s `reason`; None when it has no such row.
fn error_count(errs: &str, node: &str, reason: &str) -> Option<u64> {
    errs.lines().skip(1).find_map(|l| {
        let (n, rest) = l.trim_start().split_once(' ')?;
        let rest = rest.trim_start().strip_prefix(node)?.trim_start();
        let rest = rest.strip_prefix(reason)?;
        rest.starts_with("  ").then(|| n.parse().unwrap())
    })
}

/// Column `name` of the default pool's row in `show buffers`.
fn buffer_column(out: &str, name: &str) -> u64 {
    let mut l = out.lines();
    let head: Vec<&str> = l.next().unwrap().split_whitespace().collect();
    let row: Vec<&str> = l.next().unwrap().split_whitespace().collect();
    // Counted from the right: "Pool Name" and "Data Size" are two words in the header.
    let from_end = head.len() - head.iter().position(|h| *h == name).expect(name);
    row[row.len() - from_end]
        .parse()
        .unwrap_or_else(|e| panic!("{name}: {e}\n{out}"))
}

/// Run each CLI command; none may be unknown.
fn configure(s: &Path, cmds: &[&str]) {
    for c in cmds {
        let out = ctl(s, c);
        assert!(!out.contains("unknown"), "{c}: {out}");
    }
}

fn run_forwarding_scenario(r: &Rvpp) {
    let s = &r.cli;
    let cap = format!("rvpp-test-capture-{}.pcap", r.child.id());
    let pcap_on = format!("pcap trace rx tx max 10 intfc any file {cap}");
    assert!(ctl(s, "show version").contains("rvpp"));
    configure(
        s,
        &[
            pcap_on.as_str(),
            "create packet-generator interface pg0 count 20000 size 64 dst 198.19.7.0/24",
            "create null interface null1",
            "set interface ip address pg0 198.18.0.1/24",
            "set interface ip address null1 198.19.255.1/30",
            "set ip neighbor null1 198.19.255.2 02:00:00:00:00:02",
            "ip route add 198.19.7.0/24 via 198.19.255.2 null1",
            "trace add pg-input 2",
            "set interface state null1 up",
            "set interface state pg0 up",
            "packet-generator enable",
        ],
    );
    let t = Instant::now();
    loop {
        let int = ctl(s, "show interface");
        let tx = int
            .lines()
            .skip_while(|l| !l.starts_with("null1"))
            .find(|l| l.contains("tx packets"))
            .and_then(|l| l.split_whitespace().last()?.parse::<u64>().ok())
            .unwrap_or(0);
        if tx == 20000 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "forwarded {tx} of 20000:\n{int}\n{}",
            ctl(s, "show errors")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = ctl(s, "pcap trace off");
    assert!(out.contains("Write 10 packets"), "{out}");
    let file = Path::new("/tmp").join(&cap);
    let file = file.as_path();
    let data = std::fs::read(file).unwrap();
    assert!(
        data.len() > 24 + 10 * 16 + 10 * 60,
        "capture too short: {}",
        data.len()
    );
    // tshark rejecting the capture is a failure, not a reason to skip the check.
    if let Some(tshark) = skip::need_tool("tshark") {
        let text = tshark::read(&tshark, file);
        assert_eq!(text.lines().count(), 10, "tshark read:\n{text}");
        assert!(text.contains("198.18.0.2"), "{text}");
    }
    let _ = std::fs::remove_file(file);
    let rt = ctl(s, "show runtime");
    for node in [
        "pg-input",
        "ethernet-input",
        "ip4-input",
        "ip4-lookup",
        "ip4-rewrite",
        "null-tx",
    ] {
        assert!(rt.contains(node), "show runtime lacks {node}:\n{rt}");
    }
    let tr = ctl(s, "show trace");
    assert!(tr.contains("ip4-lookup -> ip4-rewrite"), "{tr}");
    assert_eq!(tr.matches("Packet ").count(), 2, "{tr}");
    // All 20000 were forwarded, so no drop may be counted yet.
    let errs = ctl(s, "show errors");
    assert_eq!(errs.lines().count(), 1, "errors counted:\n{errs}");
    // 100 packets routed out of an interface left down: the counter must name the reason.
    configure(
        s,
        &[
            "create null interface null2",
            "set interface ip address null2 198.19.254.1/30",
            "set ip neighbor null2 198.19.254.2 02:00:00:00:00:03",
            "ip route add 198.19.8.0/24 via 198.19.254.2 null2",
            "create packet-generator interface pg1 count 100 size 64 dst 198.19.8.0/24",
            "set interface ip address pg1 198.18.1.1/24",
            "set interface state pg1 up",
            "packet-generator enable",
        ],
    );
    let t = Instant::now();
    loop {
        let errs = ctl(s, "show errors");
        let down = error_count(&errs, "interface-output", "interface is down");
        if down == Some(100) {
            assert_eq!(errs.lines().count(), 2, "other errors counted:\n{errs}");
            break;
        }
        assert!(
            down.unwrap_or(0) < 100 && t.elapsed() < Duration::from_secs(20),
            "want 100 'interface is down' drops:\n{errs}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let bad = ctl(s, "set interface state nosuch up");
    assert!(bad.contains("unknown interface"), "{bad}");
    assert!(ctl(s, "show ip fib").contains("198.19.7.0/24"));
    let bufs = ctl(s, "show buffers");
    let col = |name: &str| buffer_column(&bufs, name);
    assert_eq!(col("Used"), 0, "buffers leaked:\n{bufs}");
    assert_eq!(col("Avail") + col("Cached"), col("Total"), "{bufs}");
    ctl(s, "clear runtime");
    ctl(s, "clear errors");
}

fn stop(mut r: Rvpp) {
    let st = r.terminate();
    assert!(st.success(), "rvpp exited with {st}");
    assert!(!r.cli.exists(), "CLI socket left behind");
    assert!(!r.dir.join("rvpp.pid").exists(), "pidfile left behind");
}

#[test]
fn rvppctl_drives_a_single_thread_rvpp() {
    let r = start("workers 0");
    run_forwarding_scenario(&r);
    stop(r);
}

#[test]
fn rvppctl_drives_rvpp_with_a_worker() {
    let r = start("main-core 0 corelist-workers 1");
    run_forwarding_scenario(&r);
    assert!(ctl(&r.cli, "show threads").contains("vpp_wk_0"));
    stop(r);
}

#[test]
fn bad_config_fails_with_file_and_line() {
    let err = common::start_refused(
        "badconf",
        "unix {\n  nodaemon\n}\ncpu {\n  workers notanumber\n}\n",
    );
    assert!(err.contains("startup.conf:5"), "{err}");
}

/// CPU time (user + system, in clock ticks) the process has used so far.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn idle_adaptive_worker_sleeps_and_rx_queues_can_move() {
    let r = start("main-core 0 corelist-workers 0,1");
    let s = &r.cli;
    let mut cmds = common::pg_to_null(5000);
    cmds.push("set interface rx-mode pg0 adaptive".into());
    cmds.push("packet-generator enable".into());
    for c in &cmds {
        let out = ctl(s, c);
        assert!(
            out.trim().is_empty() || !out.contains("unknown"),
            "{c}: {out}"
        );
    }
    // Idle once the generator has sent its 5,000 packets (not after a guessed delay).
    let t = Instant::now();
    loop {
        let int = ctl(s, "show interface");
        if counter(&int, "pg0", "rx packets") >= 5000 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "pg0 did not finish:\n{int}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Adaptive mode sleeps after 1,024 empty rounds; give it a moment to get there.
    std::thread::sleep(Duration::from_millis(200));
    // Two workers with nothing to do must not burn their cores.
    let hz = rustix::param::clock_ticks_per_second() as f64;
    let t0 = cpu_ticks(r.child.id());
    let w0 = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let used = (cpu_ticks(r.child.id()) - t0) as f64 / hz / w0.elapsed().as_secs_f64();
    assert!(used < 0.25, "idle rvpp used {:.0}% of a core", used * 100.0);
    // The pg queue sits on one worker; move it and check show hardware says so.
    let hw = ctl(s, "show hardware");
    let on_wk1 = hw.contains("rx queue 0 on thread 2");
    let to = if on_wk1 { 0 } else { 1 };
    let out = ctl(
        s,
        &format!("set interface rx-placement pg0 queue 0 worker {to}"),
    );
    assert!(out.trim().is_empty(), "{out}");
    let hw = ctl(s, "show hardware");
    assert!(
        hw.contains(&format!("rx queue 0 on thread {}", to + 1)),
        "{hw}"
    );
    assert!(ctl(s, "set interface rx-placement pg0 queue 0 worker 9").contains("no worker"));
    stop(r);
}

#[test]
fn writes_its_api_json_for_clients() {
    let dir = std::env::temp_dir().join(format!("rvpp-apijson-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_rvpp"))
        .arg("--write-api-json")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for m in ["interface", "ip", "memclnt", "tapv2", "memif"] {
        let f = dir.join(format!("{m}.api.json"));
        let text = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(text.contains("\"messages\""), "{m}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// ----- the checks above can fail: known-bad inputs the old assertions accepted --------------

#[test]
fn the_error_row_check_rejects_a_drop_under_another_reason() {
    // 100 drops counted under a different reason: the old check (header words only) passed.
    let errs = "     Count  Node                          Reason      Severity\n       100  interface-output              dropped     error\n";
    assert!(errs.contains("Count"), "the old assertion held");
    assert_eq!(
        error_count(errs, "interface-output", "interface is down"),
        None
    );
    let good = "     Count  Node                          Reason                                                        Severity\n       100  interface-output              interface is down                                             error\n";
    assert_eq!(
        error_count(good, "interface-output", "interface is down"),
        Some(100)
    );
}

#[test]
fn the_buffer_check_sees_a_leak() {
    // The old check was `contains("Avail")`, true of any show buffers output, leak or not.
    let leaky = "Pool Name            Index NUMA  Size  Data Size  Total  Avail  Cached   Used  \ndefault-numa-0         0     0   2432  2048       8192  8000  100  92\n";
    assert!(leaky.contains("Avail"), "the old assertion held");
    assert_eq!(buffer_column(leaky, "Used"), 92);
}

/// A tap the CLI created goes when its namespace does (the control service's host-link
/// monitor), and its name is free again.
#[test]
fn a_cli_tap_goes_with_its_namespace() {
    if !skip::need_root("for a tap in a namespace of the test's own") {
        return;
    }
    struct Netns(String);
    impl Drop for Netns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let ns = Netns(format!("rvpp-mon-{}", std::process::id()));
    let _ = Command::new("ip").args(["netns", "del", &ns.0]).status();
    assert!(Command::new("ip")
        .args(["netns", "add", &ns.0])
        .status()
        .is_ok_and(|s| s.success()));
    let r = start("");
    let out = r.ctl(&format!("create tap host-ns {} host-if-name mon0", ns.0));
    assert_eq!(out.trim(), "tap0", "{out}");
    assert!(r.ctl("show interface").contains("tap0"));
    let _ = Command::new("ip").args(["netns", "del", &ns.0]).status();
    common::wait_for("tap0 removed", 5, || {
        !r.ctl("show interface").contains("tap0")
    });
    assert!(r.ctl("show linux-interfaces").trim().is_empty());
    drop(ns);
}

/// Removing the socket files under a running rvpp must not keep it from stopping: the accept
/// threads are woken through their own socket handles, not by connecting to the path.
#[test]
fn stops_after_its_socket_files_are_removed() {
    let mut r = Rvpp::start_with(
        "daemon-unlinked",
        Opts {
            conf: "socksvr { socket-name {dir}/api.sock }",
            wait_for: &["api.sock"],
            ..Default::default()
        },
    );
    std::fs::remove_file(r.path("api.sock")).unwrap();
    std::fs::remove_file(&r.cli).unwrap();
    let st = r.terminate();
    assert!(st.success(), "rvpp exited with {st}");
}
