//! Faults outside the API (issue 18), each against the real rvpp binary with pods in
//! namespaces of the test's own. After each, rvpp still answers, forwarding works again and the
//! buffers it held are back:
//! - a pod's namespace deleted under a ping flood (its tap vanishes under rvpp);
//! - the uplink (af_packet on a veth) flapped 100 times under traffic;
//! - a memif peer SIGKILLed under traffic, 100 times;
//! - a memif peer that stops reading: rvpp's buffers held in its ring stay bounded, the excess
//!   is a counted drop, and traffic moves again once the peer drains;
//! - rvpp SIGKILLed and started again: its exec file is replayed and pods reach each other.
//!
//! Addresses: pods 198.18.<n>.2/24 behind rvpp's 198.18.<n>.1.

#[path = "../../test-support/skip.rs"]
mod skip;

#[path = "../../test-support/netns.rs"]
mod netns;

mod common;

use common::{buffers_in_use, if_counter, wait_for, Opts, Rvpp};
use netns::Netns;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The tests share two cores: one rvpp at a time keeps each fault's timing its own.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn ok(r: &Rvpp, cmd: &str) -> String {
    r.ctl_ok(cmd)
}

fn start(tag: &str) -> Rvpp {
    Rvpp::start(tag, "buffers { buffers-per-numa 16384 }\ncpu { workers 0 }")
}

/// A pod: a namespace with rvpp's tap in it as eth0, 198.18.<n>.2/24, default via .1.
fn pod(r: &Rvpp, tag: &str, n: u8) -> (Netns, String) {
    let ns = Netns::new(tag);
    let tap = r.ctl(&format!(
        "create tap host-ns {} host-if-name eth0",
        ns.name()
    ));
    let tap = tap.trim().to_string();
    assert!(tap.starts_with("tap"), "create tap: {tap}");
    ok(
        r,
        &format!("set interface ip address {tap} 198.18.{n}.1/24"),
    );
    ok(r, &format!("set interface state {tap} up"));
    pod_side(&ns, n);
    (ns, tap)
}

/// The pod's own half: address, link, default route.
fn pod_side(ns: &Netns, n: u8) {
    ns.ip(&format!("addr add 198.18.{n}.2/24 dev eth0"));
    ns.ip("link set eth0 up");
    ns.ip(&format!("route add default via 198.18.{n}.1"));
}

fn pings(ns: &Netns, dst: &str, count: u32) -> bool {
    let out = ns.exec(&[
        "ping",
        "-c",
        &count.to_string(),
        "-i",
        "0.05",
        "-W",
        "2",
        dst,
    ]);
    out.status.success()
}

/// Wait until `ns` reaches `dst` (the first pings may wait for ARP and the link).
fn reaches(ns: &Netns, dst: &str, r: &Rvpp) {
    let t = Instant::now();
    while !pings(ns, dst, 1) {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "{} cannot reach {dst}\n{}\n{}",
            ns.name(),
            r.ctl("show interface"),
            r.ctl("show errors")
        );
    }
    assert!(pings(ns, dst, 5), "{} loses pings to {dst}", ns.name());
}

/// Buffers an idle rvpp may hold beyond a baseline taken at another idle moment: each tap rx
/// queue keeps a refill stash (32 to 36 buffers here) whose fill level moves with the traffic
/// it last saw, and a pod made after the baseline brings its own. A leak of one buffer per
/// fault would pass this many times over in the 100-fault tests.
const IDLE_SLACK: u64 = 96;

fn buffers_back(r: &Rvpp, before: u64) {
    let t = Instant::now();
    loop {
        let now = buffers_in_use(&r.cli);
        if now <= before + IDLE_SLACK {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{now} buffers in use, {before} before the fault\n{}\n{}",
            r.ctl("show buffers"),
            r.ctl("show errors")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn pod_namespace_deleted_under_traffic() {
    if !skip::need_root("for pods in namespaces") {
        return;
    }
    let _one = serial();
    let r = start("fault-nsdel");
    let (a, _) = pod(&r, "fnd-a", 1);
    let (b, tap_b) = pod(&r, "fnd-b", 2);
    reaches(&a, "198.18.2.2", &r);
    let before = buffers_in_use(&r.cli);
    let mut flood = a.spawn(&["ping", "-f", "-w", "30", "198.18.2.2"]);
    std::thread::sleep(Duration::from_millis(500));
    drop(b); // ip netns del, with the flood running: the tap goes away under rvpp
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        r.ctl("show version").contains("rvpp"),
        "rvpp stopped answering"
    );
    let _ = flood.kill();
    let _ = flood.wait();
    // The tap whose namespace is gone leaves rvpp (or can be deleted), and a new pod takes
    // its place.
    if r.ctl("show interface").contains(&tap_b) {
        let _ = r.ctl(&format!("delete tap {tap_b}"));
    }
    wait_for("the dead pod's tap gone", 5, || {
        !r.ctl("show interface").contains(&tap_b)
    });
    let (c, _) = pod(&r, "fnd-c", 3);
    reaches(&a, "198.18.3.2", &r);
    reaches(&c, "198.18.1.2", &r);
    buffers_back(&r, before);
}

#[test]
fn uplink_flapped_100_times_under_traffic() {
    if !skip::need_root("for a veth uplink into a namespace") {
        return;
    }
    let _one = serial();
    let r = start("fault-flap");
    // The uplink: a veth whose far end is in a namespace of ours (the "network").
    let net = Netns::new("ffl-net");
    let up = format!("rvfl{}", std::process::id() % 100_000);
    let st = Command::new("ip")
        .args([
            "link", "add", &up, "type", "veth", "peer", "name", "up0", "netns",
        ])
        .arg(net.name())
        .status()
        .unwrap();
    assert!(st.success(), "veth");
    // Deleting the namespace deletes the pair; this covers a failure before that.
    struct Link(String);
    impl Drop for Link {
        fn drop(&mut self) {
            let _ = Command::new("ip")
                .args(["link", "del", &self.0])
                .stderr(Stdio::null())
                .status();
        }
    }
    let _link = Link(up.clone());
    let st = Command::new("ip").args(["link", "set", &up, "up"]).status();
    assert!(st.unwrap().success());
    let host = ok(&r, &format!("create host-interface name {up}"));
    let host = host.trim().to_string();
    assert!(host.starts_with("host-"), "{host}");
    ok(
        &r,
        &format!("set interface ip address {host} 198.18.9.1/24"),
    );
    ok(&r, &format!("set interface state {host} up"));
    net.ip("addr add 198.18.9.2/24 dev up0");
    net.ip("link set up0 up");
    net.ip("route add 198.18.1.0/24 via 198.18.9.1");
    let (a, _) = pod(&r, "ffl-a", 1);
    reaches(&a, "198.18.9.2", &r);
    let before = buffers_in_use(&r.cli);
    let mut flood = a.spawn(&["ping", "-f", "-w", "60", "198.18.9.2"]);
    for _ in 0..100 {
        for state in ["down", "up"] {
            let st = Command::new("ip")
                .args(["link", "set", &up, state])
                .status();
            assert!(st.unwrap().success());
        }
    }
    let _ = flood.kill();
    let _ = flood.wait();
    assert!(r.ctl("show version").contains("rvpp"));
    // The link monitor followed the flaps and ended on up.
    wait_for("uplink up again in rvpp", 10, || {
        let s = r.ctl("show hardware-interfaces");
        s.lines()
            .find(|l| l.starts_with(&host))
            .is_some_and(|l| l.contains(" up"))
    });
    reaches(&a, "198.18.9.2", &r);
    buffers_back(&r, before);
}

/// Run by [`memif_peer_killed_100_times`] as a child process (this test binary again): a memif
/// client on `RVPP_FAULT_MEMIF` that sends frames to rvpp as fast as it can and prints "up"
/// once connected, until it is killed.
#[test]
#[ignore]
fn memif_fault_client() {
    let Ok(sock) = std::env::var("RVPP_FAULT_MEMIF") else {
        return;
    };
    let mut cfg = memif::Config::new(memif::Role::Client, &sock);
    cfg.id = 0;
    let mut ifc = memif::Interface::new(cfg).expect("memif client");
    let t = Instant::now();
    while !ifc.is_connected() {
        let _ = ifc.poll_control();
        assert!(t.elapsed() < Duration::from_secs(10), "never connected");
        std::thread::sleep(Duration::from_millis(1));
    }
    println!("up");
    let frame = frame_to_rvpp();
    let burst = [frame.as_slice(); 32];
    let mut rx: Vec<memif::PacketBuf> = (0..64).map(|_| memif::PacketBuf::new(2048)).collect();
    loop {
        let _ = ifc.poll_control();
        ifc.tx_burst(0, &burst);
        ifc.rx_burst(0, &mut rx);
    }
}

/// Ethernet to rvpp's memif MAC, IPv4 198.18.4.2 -> 198.19.7.1 (routed out of null1), UDP.
fn frame_to_rvpp() -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[0..6].copy_from_slice(&[0x02, 0xfe, 0, 0, 0, 0x44]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x45]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&46u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[198, 18, 4, 2]);
    ip[16..20].copy_from_slice(&[198, 19, 7, 1]);
    let mut sum = 0u32;
    for i in (0..20).step_by(2) {
        sum += u16::from_be_bytes([ip[i], ip[i + 1]]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    ip[20..22].copy_from_slice(&1234u16.to_be_bytes());
    ip[22..24].copy_from_slice(&5678u16.to_be_bytes());
    ip[24..26].copy_from_slice(&26u16.to_be_bytes());
    f
}

/// rvpp as memif server, routing what arrives out of null1.
fn memif_server(r: &Rvpp, sock: &std::path::Path) {
    for c in [
        format!("create memif socket id 1 filename {}", sock.display()),
        "create interface memif id 0 socket-id 1 hw-addr 02:fe:00:00:00:44".into(),
        "set interface ip address memif1/0 198.18.4.1/24".into(),
        "set interface state memif1/0 up".into(),
        "create null interface null1".into(),
        "set interface ip address null1 198.19.255.1/30".into(),
        "set ip neighbor null1 198.19.255.2 02:00:00:00:00:02".into(),
        "ip route add 198.19.7.0/24 via 198.19.255.2 null1".into(),
        "set interface state null1 up".into(),
    ] {
        ok(r, &c);
    }
}

#[test]
fn memif_peer_killed_100_times() {
    let _one = serial();
    let r = start("fault-memifkill");
    let sock = r.path("fault.sock");
    memif_server(&r, &sock);
    let before = buffers_in_use(&r.cli);
    let exe = std::env::current_exe().unwrap();
    let mut forwarded = 0;
    for i in 0..100 {
        let mut child = Command::new(&exe)
            .args(["--ignored", "--exact", "memif_fault_client", "--nocapture"])
            .env("RVPP_FAULT_MEMIF", &sock)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let t = Instant::now();
        while line.trim() != "up" {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                let _ = child.kill();
                panic!("client {i} ended before connecting");
            }
            assert!(t.elapsed() < Duration::from_secs(15), "client {i}");
        }
        std::thread::sleep(Duration::from_millis(20));
        child.kill().unwrap();
        child.wait().unwrap();
        let now = if_counter(&r.ctl("show interface"), "null1", "tx packets");
        if i % 10 == 9 {
            assert!(
                now > forwarded,
                "nothing forwarded in clients {}..{i}",
                i - 9
            );
            forwarded = now;
        }
    }
    assert!(r.ctl("show version").contains("rvpp"));
    wait_for("memif seen disconnected", 5, || {
        r.ctl("show memif").contains("disconnected")
    });
    buffers_back(&r, before);
}

#[test]
fn memif_peer_that_stops_reading_holds_bounded_buffers() {
    let _one = serial();
    let r = Rvpp::start_with(
        "fault-slowpeer",
        Opts {
            conf: "buffers { buffers-per-numa 16384 }\ncpu { workers 0 }",
            ..Default::default()
        },
    );
    // rvpp is the zero-copy client here: its own buffers sit in the ring until we read them.
    let sock = r.path("slow.sock");
    let mut cfg = memif::Config::new(memif::Role::Server, sock.to_str().unwrap());
    cfg.id = 0;
    let mut peer = memif::Interface::new(cfg).expect("memif server");
    for c in common::pg_to_null(u64::MAX) {
        ok(&r, &c);
    }
    for c in [
        format!("create memif socket id 1 filename {}", sock.display()),
        "create interface memif id 0 socket-id 1 slave ring-size 512".into(),
        "set interface ip address memif1/0 198.18.5.1/24".into(),
        "set ip neighbor memif1/0 198.18.5.2 02:00:00:00:00:05".into(),
        "set interface state memif1/0 up".into(),
        // Everything pg sends goes to the memif now, not null1.
        "ip route add 198.19.7.0/24 via 198.18.5.2 memif1/0".into(),
    ] {
        ok(&r, &c);
    }
    let t = Instant::now();
    while !peer.is_connected() {
        let _ = peer.poll_control();
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "rvpp never connected"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let before = buffers_in_use(&r.cli);
    ok(&r, "packet-generator enable");
    // The peer reads nothing: rvpp's ring fills, the rest is dropped and counted, and what
    // rvpp holds stays within a ring and a few vectors.
    let mut peak = 0;
    for _ in 0..20 {
        let _ = peer.poll_control();
        peak = peak.max(buffers_in_use(&r.cli));
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(
        peak <= before + 512 + 4 * 256,
        "buffers in use grew to {peak} (from {before})"
    );
    let full = r.ctl("show errors");
    assert!(full.contains("tx queue full"), "{full}");
    // The peer drains: packets move again.
    let mut rx: Vec<memif::PacketBuf> = (0..256).map(|_| memif::PacketBuf::new(2048)).collect();
    let mut got = 0;
    let t = Instant::now();
    while got < 10_000 {
        let _ = peer.poll_control();
        got += peer.rx_burst(0, &mut rx);
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "only {got} after draining"
        );
    }
    ok(&r, "packet-generator disable");
    for _ in 0..50 {
        let _ = peer.poll_control();
        peer.rx_burst(0, &mut rx);
        std::thread::sleep(Duration::from_millis(2));
    }
    buffers_back(&r, before);
}

#[test]
fn rvpp_killed_and_restarted_replays_its_exec_file() {
    if !skip::need_root("for pods in namespaces") {
        return;
    }
    let _one = serial();
    let a = Netns::new("fkill-a");
    let b = Netns::new("fkill-b");
    let exec_dir = common::test_dir("fault-kill-exec");
    let exec = exec_dir.join("exec.cli");
    std::fs::write(
        &exec,
        format!(
            "create tap host-ns {} host-if-name eth0\n\
             create tap host-ns {} host-if-name eth0\n\
             set interface ip address tap0 198.18.1.1/24\n\
             set interface ip address tap1 198.18.2.1/24\n\
             set interface state tap0 up\n\
             set interface state tap1 up\n",
            a.name(),
            b.name()
        ),
    )
    .unwrap();
    let unix = format!("exec {} pidfile {{dir}}/rvpp.pid", exec.display());
    let mut r = Rvpp::start_with(
        "fault-kill",
        Opts {
            unix: &unix,
            conf: "buffers { buffers-per-numa 16384 }\ncpu { workers 0 }\nsocksvr { socket-name {dir}/api.sock }",
            wait_for: &["api.sock"],
            ..Default::default()
        },
    );
    for round in 0..2 {
        wait_for("the exec file's taps", 10, || {
            let s = r.ctl("show interface");
            s.contains("tap0") && s.contains("tap1")
        });
        // A new tap each time: the pod's side of it is configured afresh (the CNI's job).
        wait_for("eth0 in both pods", 10, || {
            [&a, &b]
                .iter()
                .all(|ns| ns.exec(&["ip", "link", "show", "eth0"]).status.success())
        });
        pod_side(&a, 1);
        pod_side(&b, 2);
        reaches(&a, "198.18.2.2", &r);
        if round == 0 {
            // SIGKILL leaves the sockets and the pidfile behind; the taps go with the fds.
            r.kill_and_restart();
        }
    }
    let _ = std::fs::remove_dir_all(&exec_dir);
}
