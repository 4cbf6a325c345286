//! The one harness for tests that run the rvpp binary: a private directory, a startup.conf, the
//! process, rvppctl over its CLI socket, and clean-up (kill and remove) even when a test fails.
//! Each test binary includes it with `mod common;`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running rvpp. Dropping it kills the process and removes its directory.
pub struct Rvpp {
    pub child: Child,
    /// The test's own directory: startup.conf, cli.sock, stats.sock, ...
    pub dir: PathBuf,
    /// The CLI socket (`<dir>/cli.sock`).
    pub cli: PathBuf,
}

impl Drop for Rvpp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A directory of the test's own, unique per process, tag and call.
pub fn test_dir(tag: &str) -> PathBuf {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("rvpp-t-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Start rvpp with `conf` (the whole startup.conf; `{dir}` is the test directory), expecting it
/// to refuse: its stderr.
pub fn start_refused(tag: &str, conf: &str) -> String {
    let dir = test_dir(tag);
    let path = dir.join("startup.conf");
    std::fs::write(&path, conf.replace("{dir}", &dir.display().to_string())).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rvpp"))
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success(), "rvpp started with {conf}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// How to start it.
pub struct Opts<'a> {
    /// Stanzas after `unix { nodaemon cli-listen <dir>/cli.sock <unix> }`; `{dir}` in them is
    /// replaced by the test directory.
    pub conf: &'a str,
    /// Extra words inside the `unix { }` stanza.
    pub unix: &'a str,
    /// Where rvpp's stderr goes (piped when a test reads the log). Ignored with `log_file`.
    pub stderr: Stdio,
    /// Send stderr to `<dir>/rvpp.log` instead, for [`Rvpp::log`].
    pub log_file: bool,
    /// Files under the directory to wait for besides the CLI socket (e.g. "stats.sock").
    pub wait_for: &'a [&'a str],
    /// How long start-up may take.
    pub timeout: Duration,
}

impl Default for Opts<'_> {
    fn default() -> Self {
        Self {
            conf: "",
            unix: "",
            stderr: Stdio::null(),
            log_file: false,
            wait_for: &[],
            timeout: Duration::from_secs(20),
        }
    }
}

impl Rvpp {
    /// rvpp with `conf` (see [`Opts::conf`]), waiting for its CLI socket.
    pub fn start(tag: &str, conf: &str) -> Rvpp {
        Self::start_with(
            tag,
            Opts {
                conf,
                ..Default::default()
            },
        )
    }

    pub fn start_with(tag: &str, o: Opts<'_>) -> Rvpp {
        let dir = test_dir(tag);
        let cli = dir.join("cli.sock");
        let conf = dir.join("startup.conf");
        let text = format!(
            "unix {{ nodaemon cli-listen {} {} }}\n{}\n",
            cli.display(),
            o.unix.replace("{dir}", &dir.display().to_string()),
            o.conf.replace("{dir}", &dir.display().to_string())
        );
        std::fs::write(&conf, text).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_rvpp"))
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(if o.log_file {
                Stdio::from(std::fs::File::create(dir.join("rvpp.log")).unwrap())
            } else {
                o.stderr
            })
            .spawn()
            .unwrap();
        let mut r = Rvpp { child, dir, cli };
        let t = Instant::now();
        let ready = |r: &Rvpp| r.cli.exists() && o.wait_for.iter().all(|f| r.dir.join(f).exists());
        while !ready(&r) {
            if let Some(st) = r.child.try_wait().unwrap() {
                panic!("rvpp exited at start with {st}: {}", r.log());
            }
            assert!(t.elapsed() < o.timeout, "rvpp did not open its sockets");
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    /// What rvpp wrote to `<dir>/rvpp.log` (see [`Opts::log_file`]).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rvpp.log")).unwrap_or_default()
    }

    /// A path in the test directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// One CLI command through rvppctl; panics if rvppctl fails, with rvpp's log when it
    /// keeps one ([`Opts::log_file`]): a CLI that stopped answering is usually rvpp gone.
    pub fn ctl(&self, cmd: &str) -> String {
        try_ctl(&self.cli, cmd)
            .unwrap_or_else(|e| panic!("rvppctl {cmd}: {e}\nrvpp log:\n{}", self.log()))
    }

    /// One CLI command that must succeed: panics when rvpp answers with an error.
    pub fn ctl_ok(&self, cmd: &str) -> String {
        let out = self.ctl(cmd);
        assert!(
            !out.contains("unknown") && !out.contains("error") && !out.contains("failed"),
            "{cmd}: {out}"
        );
        out
    }

    /// SIGTERM, then wait (10 s at most) for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        // Our own child, not yet reaped, so its pid cannot have been reused.
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.child),
            rustix::process::Signal::TERM,
        );
        let t = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "rvpp did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL (no clean-up: sockets, pidfile and taps left as they are), then the same
    /// startup.conf again in the same directory; returns once the new process answers the CLI.
    pub fn kill_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Command::new(env!("CARGO_BIN_EXE_rvpp"))
            .arg("-c")
            .arg(self.dir.join("startup.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t = Instant::now();
        // The old socket file is still there: wait for an answer, not for the file.
        loop {
            let out = Command::new(env!("CARGO_BIN_EXE_rvppctl"))
                .arg("-s")
                .arg(&self.cli)
                .args(["show", "version"])
                .output()
                .unwrap();
            if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("rvpp") {
                return;
            }
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!("restarted rvpp exited with {st}");
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "restarted rvpp never answered"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM and a clean exit.
    pub fn stop(mut self) {
        let st = self.terminate();
        assert!(st.success(), "rvpp exited with {st}");
    }
}

/// One CLI command through rvppctl on socket `sock`; panics if rvppctl fails.
pub fn ctl(sock: &Path, cmd: &str) -> String {
    try_ctl(sock, cmd).unwrap_or_else(|e| panic!("rvppctl {cmd}: {e}"))
}

/// One CLI command through rvppctl: its output, or rvppctl's error.
pub fn try_ctl(sock: &Path, cmd: &str) -> Result<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_rvppctl"))
        .arg("-s")
        .arg(sock)
        .args(cmd.split_whitespace())
        .output()
        .unwrap();
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

/// The "Used" column of `show buffers`; panics when it is not there (a parse failure must
/// not pass the leak check).
pub fn buffers_in_use(sock: &Path) -> u64 {
    used_column(&ctl(sock, "show buffers"))
}

pub fn used_column(out: &str) -> u64 {
    let mut lines = out.lines();
    let head = lines.next().unwrap_or_default();
    assert!(head.trim_end().ends_with("Used"), "no Used column:\n{out}");
    let v = lines.next().and_then(|l| l.split_whitespace().last());
    v.and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("Used {v:?} is not a number:\n{out}"))
}

/// Wait for `f` to hold, `secs` at most.
pub fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(secs), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Counter `what` ("rx packets") of interface `ifname` in `show interface` output; 0 if the
/// interface has none.
pub fn if_counter(int: &str, ifname: &str, what: &str) -> u64 {
    let mut lines = int
        .lines()
        .skip_while(|l| !l.starts_with(&format!("{ifname} ")));
    // The first counter shares the interface's line; the rest are indented below it.
    let first = lines.next().into_iter();
    first
        .chain(lines.take_while(|l| l.starts_with(' ')))
        .find(|l| l.contains(what))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
        .unwrap_or(0)
}

/// The CLI lines of the usual test topology: `pg0` generating `count` 64-byte packets to
/// 198.19.7.0/24, routed out of `null1` via a static neighbour (not yet enabled).
pub fn pg_to_null(count: u64) -> Vec<String> {
    [
        format!("create packet-generator interface pg0 count {count} size 64 dst 198.19.7.0/24"),
        "create null interface null1".into(),
        "set interface ip address pg0 198.18.0.1/24".into(),
        "set interface ip address null1 198.19.255.1/30".into(),
        "set ip neighbor null1 198.19.255.2 02:00:00:00:00:02".into(),
        "ip route add 198.19.7.0/24 via 198.19.255.2 null1".into(),
        "set interface state null1 up".into(),
        "set interface state pg0 up".into(),
    ]
    .to_vec()
}

/// A network namespace of the test's own, deleted when dropped (also on failure).
pub struct Netns(pub String);

impl Netns {
    /// Create `name`, replacing a leftover of an earlier run.
    pub fn new(name: String) -> Self {
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        assert!(Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success()));
        Netns(name)
    }
    /// `ip -n <ns> <args>`, which must succeed.
    pub fn ip(&self, args: &str) {
        let mut full = vec!["-n", self.0.as_str()];
        full.extend(args.split_whitespace());
        let out = Command::new("ip").args(&full).output().unwrap();
        assert!(
            out.status.success(),
            "ip {}: {}",
            full.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    /// A command run inside the namespace.
    pub fn cmd(&self, cmd: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]).args(cmd);
        c
    }
    pub fn exec(&self, cmd: &[&str]) -> std::process::Output {
        self.cmd(cmd).output().unwrap()
    }
    /// A shell script inside the namespace, which must succeed; its trimmed stdout.
    pub fn sh(&self, script: &str) -> String {
        let out = self.exec(&["sh", "-c", script]);
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A child process (a peer daemon, an iperf3 server) killed when the test ends, however it ends.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A tun pod as calico makes one: rvpp's tap `id` with its end `eth0` in `pod` (MTU 1400,
/// GSO and checksum offload when `gso`), the pod's address `addr`/32 routed to it, and the
/// pod's default route out of it. Returns rvpp's name for the tun.
pub fn tun_pod(r: &Rvpp, pod: &Netns, id: u32, addr: &str, gso: bool) -> String {
    let tun = r.ctl(&format!(
        "create tap id {id} host-if-name eth0 host-ns {} tun host-mtu-size 1400{}",
        pod.0,
        if gso { " gso" } else { "" }
    ));
    let tun = tun.trim().to_string();
    quiet(r.ctl(&format!("set interface state {tun} up")));
    quiet(r.ctl(&format!("ip route add {addr}/32 via {tun}")));
    pod.ip("link set lo up");
    pod.ip(&format!("addr add {addr}/32 dev eth0"));
    pod.ip("link set eth0 up");
    pod.ip("route add default dev eth0");
    tun
}

/// An rvppctl answer that must be empty (a command that succeeded silently).
pub fn quiet(out: String) {
    assert!(out.trim().is_empty(), "rvppctl said: {out}");
}

/// A one-second iperf3 (TCP, MSS 1300) from `client` to an iperf3 server on `addr` in
/// `server`: its report, or what went wrong.
pub fn iperf3_short(server: &Netns, client: &Netns, addr: &str) -> Result<String, String> {
    let _server = Killed(
        server
            .cmd(&["iperf3", "-s", "-1", "-B", addr])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("iperf3 -s: {e}"))?,
    );
    std::thread::sleep(Duration::from_millis(500));
    let out = client.exec(&["iperf3", "-c", addr, "-t", "1", "-M", "1300"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if out.status.success() && text.contains("receiver") {
        Ok(text)
    } else {
        Err(format!("{text}\n{}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// The count a `show errors`-style listing ("<count> ... <reason>" lines) gives a reason,
/// summed over its lines (0 when absent).
pub fn counted(listing: &str, reason: &str) -> u64 {
    listing
        .lines()
        .filter(|l| l.contains(reason))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// `n` pings from `ns` to `dst` (0.2 s apart): (all answered, ping's output).
pub fn ping(ns: &Netns, dst: &str, n: &str) -> (bool, String) {
    let out = ns.exec(&["ping", "-c", n, "-i", "0.2", "-W", "2", dst]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    (
        out.status.success() && text.contains(" 0% packet loss"),
        text,
    )
}

/// A dataplane in the test process (no binary, no device): 2048 buffers on 4 KiB pages, one
/// forwarding thread.
pub fn in_process_dataplane() -> std::sync::Arc<rvpp_control::daemon::Dataplane> {
    rvpp_control::daemon::Dataplane::start(&rvpp_control::daemon::DataplaneConfig {
        buffers: 2048,
        data_size: 2048,
        try_hugepages: false,
        main_core: None,
        worker_cores: vec![],
        rx_mode: rvpp_dataplane::device::RxMode::Polling,
        cnat: Default::default(),
    })
    .unwrap()
}

/// `ip -n <ns> <args>`, which must succeed (for namespaces a test owns under another type).
pub fn ns_ip(ns: &str, args: &str) {
    let mut full = vec!["-n", ns];
    full.extend(args.split_whitespace());
    let out = Command::new("ip").args(&full).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        full.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The MAC address of `dev` in namespace `ns`.
pub fn ns_mac(ns: &str, dev: &str) -> String {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "cat",
            &format!("/sys/class/net/{dev}/address"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// rvpp's side of the SRv6 tests (srv6_linux, srv6_scapy), whose peer plays the other node
/// on the uplink: tap0 is `up0` in `uplink_ns` (fd00::/64: rvpp ::1, the peer ::2, up0's MAC
/// its neighbour; the peer's locator fd00:2::/48 via it), tap1 `eth0` in `pod_ns` (the pod
/// 198.19.0.2/24 and fd01::2/64, MTU 1400, default routes to rvpp's .1 / ::1). rvpp's localsids:
/// End.DT4 fd00:1::d4, End.DT6 fd00:1::d6; 198.19.9.0/24 and fd09::/64 are steered into the
/// two-SID policies < fd00:2::e, fd00:2::d4 > and < fd00:2::e, fd00:2::d6 >, encapsulated from
/// fd00::1. The peer brings up0 up and configures its own side.
pub fn srv6_node(r: &Rvpp, uplink_ns: &str, pod_ns: &str) {
    let t0 = r.ctl(&format!("create tap host-ns {uplink_ns} host-if-name up0"));
    assert_eq!(t0.trim(), "tap0", "{t0}");
    let t1 = r.ctl(&format!("create tap host-ns {pod_ns} host-if-name eth0"));
    assert_eq!(t1.trim(), "tap1", "{t1}");
    for c in [
        "set interface ip address tap0 fd00::1/64",
        "set interface ip address tap1 198.19.0.1/24",
        "set interface ip address tap1 fd01::1/64",
        "set interface state tap0 up",
        "set interface state tap1 up",
    ] {
        quiet(r.ctl(c));
    }
    for c in [
        "addr add 198.19.0.2/24 dev eth0",
        "addr add fd01::2/64 dev eth0 nodad",
        "link set eth0 mtu 1400",
        "link set eth0 up",
        "route add default via 198.19.0.1",
        "-6 route add default via fd01::1",
    ] {
        ns_ip(pod_ns, c);
    }
    let up0 = ns_mac(uplink_ns, "up0");
    let eth0 = ns_mac(pod_ns, "eth0");
    for c in [
        format!("set ip neighbor tap0 fd00::2 {up0}"),
        format!("set ip neighbor tap1 198.19.0.2 {eth0}"),
        format!("set ip neighbor tap1 fd01::2 {eth0}"),
        "ip route add fd00:2::/48 via fd00::2 tap0".into(),
        "set sr encaps source addr fd00::1".into(),
        "sr localsid address fd00:1::d4 behavior end.dt4 0".into(),
        "sr localsid address fd00:1::d6 behavior end.dt6 0".into(),
        "sr policy add bsid fd00:1::b4 next fd00:2::e next fd00:2::d4 encap".into(),
        "sr policy add bsid fd00:1::b6 next fd00:2::e next fd00:2::d6 encap".into(),
        "sr steer l3 198.19.9.0/24 via bsid fd00:1::b4".into(),
        "sr steer l3 fd09::/64 via bsid fd00:1::b6".into(),
    ] {
        quiet(r.ctl(&c));
    }
    assert!(r
        .ctl("show sr localsids")
        .contains("DT4 (Endpoint with decapsulation"));
    assert!(r
        .ctl("show sr policies")
        .contains("< fd00:2::e, fd00:2::d4 > weight: 1"));
    assert!(r
        .ctl("show sr steering-policies")
        .contains("L3 198.19.9.0/24\tfd00:1::b4"));
}

/// The word after the first `key` in `text` (a field of a `show` listing); panics without one.
pub fn word_after(text: &str, key: &str) -> String {
    text.split_whitespace()
        .skip_while(|w| *w != key)
        .nth(1)
        .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
        .to_string()
}
