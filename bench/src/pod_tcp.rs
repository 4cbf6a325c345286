//! `rvpp-bench pod-tcp [--runs N] [--seconds S] [--no-gso] [--workers N] [--queues N]`: iperf3 pod to pod through rvpp
//! against the Linux kernel routing the same topology.
//!
//! * rvpp: two pod namespaces, each with a tun `eth0` that rvpp (the release binary next to
//!   this one) creates inside it, MTU 1400, /32 routes in rvpp (calico-vpp's pod setup).
//! * kernel: two pod namespaces joined to a node namespace by veths, proxy ARP on the host
//!   side, `169.254.1.1` as the pods' gateway and /32 routes to the veths, MTU 1400 (calico's
//!   Linux dataplane).
//!
//! Tests: TCP with 1 and 4 streams (Gbit/s received) and UDP with 64-byte payloads (packets
//! per second received). Runs are interleaved (rvpp, kernel, rvpp, kernel, ...) and the
//! median of each is reported with the ratio rvpp / kernel.

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Run a command; Err carries its stderr.
pub(crate) fn sh(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if !out.status.success() {
        // iperf3 -J reports its errors on stdout.
        let said = if out.stderr.is_empty() {
            &out.stdout
        } else {
            &out.stderr
        };
        return Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(said).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip -n <ns> <args>`.
pub(crate) fn ipn(ns: &str, args: &[&str]) -> Result<String, String> {
    let mut v = vec!["ip", "-n", ns];
    v.extend_from_slice(args);
    sh(&v)
}

/// Run inside a namespace.
pub(crate) fn nsx(ns: &str, args: &[&str]) -> Result<String, String> {
    let mut v = vec!["ip", "netns", "exec", ns];
    v.extend_from_slice(args);
    sh(&v)
}

pub(crate) fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// [`Lab::rvpp_paused`]'s guard: SIGCONT when dropped.
pub(crate) struct Paused(Option<String>);

impl Drop for Paused {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = sh(&["kill", "-CONT", p]);
        }
    }
}

/// Namespaces, a running rvpp and a scratch directory, all removed on drop.
pub(crate) struct Lab {
    pub nses: Vec<String>,
    pub rvpp: Option<Child>,
    pub dir: PathBuf,
}

impl Lab {
    pub fn new(tag: &str) -> Result<Self, String> {
        if !is_root() {
            return Err("needs root (network namespaces)".into());
        }
        let dir = std::env::temp_dir().join(format!("rvpp-bench-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Self {
            nses: Vec::new(),
            rvpp: None,
            dir,
        })
    }

    /// Create namespace `rvpp-b-<pid>-<name>` with lo up; returns its name.
    pub fn ns(&mut self, name: &str) -> Result<String, String> {
        let n = format!("rvpp-b-{}-{name}", std::process::id());
        sh(&["ip", "netns", "add", &n])?;
        self.nses.push(n.clone());
        ipn(&n, &["link", "set", "lo", "up"])?;
        nsx(
            &n,
            &[
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=0",
                "net.ipv4.ip_forward=1",
            ],
        )?;
        Ok(n)
    }

    /// Start rvpp (next to this binary) in namespace `ns` with `extra` startup.conf lines
    /// and the CLI lines `cli`; waits until the CLI socket is up.
    pub fn start_rvpp(&mut self, ns: &str, extra: &str, cli: &str) -> Result<(), String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let rvpp = exe.with_file_name("rvpp");
        if !rvpp.exists() {
            return Err(format!(
                "{} not found: cargo build --release -p rvpp-control",
                rvpp.display()
            ));
        }
        let sock = self.dir.join("cli.sock");
        let conf = self.dir.join("startup.conf");
        let exec = self.dir.join("setup.cli");
        std::fs::write(&exec, cli).map_err(|e| e.to_string())?;
        let _ = std::fs::remove_file(&sock);
        std::fs::write(
            &conf,
            format!(
                "unix {{ nodaemon cli-listen {} exec {} }}\n{extra}\n",
                sock.display(),
                exec.display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let log = std::fs::File::create(self.dir.join("rvpp.log")).map_err(|e| e.to_string())?;
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(&rvpp)
            .arg("-c")
            .arg(&conf)
            .env("RVPP_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e}", rvpp.display()))?;
        self.rvpp = Some(child);
        if !wait_for(Duration::from_secs(20), || sock.exists()) {
            return Err("rvpp did not start".into());
        }
        Ok(())
    }

    /// rvpp stopped (SIGSTOP) until the guard goes: while the kernel's side of a comparison
    /// runs, rvpp's polling threads would otherwise take a shared core from it.
    pub fn rvpp_paused(&self) -> Paused {
        let pid = self.rvpp.as_ref().map(|c| c.id().to_string());
        if let Some(p) = &pid {
            let _ = sh(&["kill", "-STOP", p]);
        }
        Paused(pid)
    }

    /// SIGTERM rvpp and wait for it (SIGKILL after 5 s).
    pub fn stop_rvpp(&mut self) {
        if let Some(mut c) = self.rvpp.take() {
            let _ = sh(&["kill", "-CONT", &c.id().to_string()]);
            let _ = sh(&["kill", "-TERM", &c.id().to_string()]);
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn ctl(&self, cmd: &str) -> Result<String, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let ctl = exe.with_file_name("rvppctl");
        let sock = self.dir.join("cli.sock");
        let mut v = vec![
            ctl.to_str().unwrap_or("rvppctl"),
            "-s",
            sock.to_str().unwrap_or(""),
        ];
        v.extend(cmd.split_whitespace());
        sh(&v)
    }

    /// Run many CLI lines over one rvppctl session (its stdin): thousands of commands without
    /// a process each. Returns their output, concatenated.
    pub fn ctl_lines(&self, lines: &str) -> Result<String, String> {
        use std::io::Write;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe.with_file_name("rvppctl"))
            .arg("-s")
            .arg(self.dir.join("cli.sock"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("rvppctl: {e}"))?;
        // Written from a thread: rvppctl's output would fill its pipe while we still write.
        let mut stdin = child.stdin.take().ok_or("rvppctl stdin")?;
        let input = lines.to_string();
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let out = child
            .wait_with_output()
            .map_err(|e| format!("rvppctl: {e}"))?;
        let wrote = writer.join().map_err(|_| "rvppctl writer panicked")?;
        if !out.status.success() {
            return Err(format!(
                "rvppctl: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        wrote.map_err(|e| format!("rvppctl stdin: {e}"))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop_rvpp();
        for n in self.nses.iter().rev() {
            if let Ok(pids) = sh(&["ip", "netns", "pids", n]) {
                for p in pids.split_whitespace() {
                    let _ = sh(&["kill", "-KILL", p]);
                }
            }
            let _ = sh(&["ip", "netns", "del", n]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// The pod side as calico's CNI configures it on a tun: /32, default route via the device.
pub(crate) fn tun_pod(ns: &str, addr: &str) -> Result<(), String> {
    ipn(ns, &["addr", "add", &format!("{addr}/32"), "dev", "eth0"])?;
    ipn(ns, &["link", "set", "eth0", "up"])?;
    ipn(ns, &["route", "add", "default", "dev", "eth0"])?;
    Ok(())
}

/// A calico Linux-dataplane pod: veth with proxy ARP on the node side.
pub(crate) fn veth_pod(node: &str, pod: &str, host_if: &str, addr: &str) -> Result<(), String> {
    ipn(
        node,
        &[
            "link", "add", host_if, "mtu", "1400", "type", "veth", "peer", "name", "eth0", "mtu",
            "1400", "netns", pod,
        ],
    )?;
    ipn(node, &["link", "set", host_if, "up"])?;
    nsx(
        node,
        &[
            "sysctl",
            "-qw",
            &format!("net.ipv4.conf.{host_if}.proxy_arp=1"),
        ],
    )?;
    ipn(pod, &["addr", "add", &format!("{addr}/32"), "dev", "eth0"])?;
    ipn(pod, &["link", "set", "eth0", "up"])?;
    ipn(
        pod,
        &[
            "route",
            "add",
            "169.254.1.1",
            "dev",
            "eth0",
            "scope",
            "link",
        ],
    )?;
    // Proxy ARP answers for 169.254.1.1 only when the node has a route to it elsewhere (a
    // real node's default route); this node namespace has none, so pin the neighbour.
    let mac = nsx(node, &["cat", &format!("/sys/class/net/{host_if}/address")])?;
    ipn(
        pod,
        &[
            "neigh",
            "replace",
            "169.254.1.1",
            "lladdr",
            mac.trim(),
            "dev",
            "eth0",
            "nud",
            "permanent",
        ],
    )?;
    ipn(
        pod,
        &[
            "route",
            "add",
            "default",
            "via",
            "169.254.1.1",
            "dev",
            "eth0",
        ],
    )?;
    ipn(
        node,
        &[
            "route",
            "add",
            &format!("{addr}/32"),
            "dev",
            host_if,
            "scope",
            "link",
        ],
    )?;
    Ok(())
}

/// The rvpp side of pod-tcp and service-crr: namespaces node, p1 (198.18.1.2) and p2
/// (198.18.2.2), each pod on a tun `eth0` (MTU 1400, `tap` appended to `create tap`) that rvpp
/// in the node namespace creates, /32 routes in rvpp, then the CLI lines `cli`; `conf` is added
/// to startup.conf. Returns (node, p1, p2).
pub(crate) fn rvpp_pods(
    lab: &mut Lab,
    tap: &str,
    workers: u32,
    cli: &str,
    conf: &str,
) -> Result<(String, String, String), String> {
    let node = lab.ns("node")?;
    let p1 = lab.ns("p1")?;
    let p2 = lab.ns("p2")?;
    let setup = format!(
        "create tap id 0 host-if-name eth0 host-ns {p1} tun host-mtu-size 1400{tap}\n\
         create tap id 1 host-if-name eth0 host-ns {p2} tun host-mtu-size 1400{tap}\n\
         set interface state tun0 up\nset interface state tun1 up\n\
         ip route add 198.18.1.2/32 via tun0\nip route add 198.18.2.2/32 via tun1\n{cli}"
    );
    let extra =
        format!("buffers {{ buffers-per-numa 65536 }}\ncpu {{ workers {workers} }}\n{conf}");
    lab.start_rvpp(&node, &extra, &setup)?;
    for p in [&p1, &p2] {
        if !wait_for(Duration::from_secs(10), || {
            ipn(p, &["link", "show", "eth0"]).is_ok()
        }) {
            return Err("rvpp did not create the pod tun interfaces".into());
        }
    }
    tun_pod(&p1, "198.18.1.2")?;
    tun_pod(&p2, "198.18.2.2")?;
    Ok((node, p1, p2))
}

/// The kernel side: namespaces knode, kp1 (198.18.1.2) and kp2 (198.18.2.2), the pods on
/// veths routed by knode as calico's Linux dataplane does. Returns (knode, kp1, kp2).
pub(crate) fn kernel_pods(lab: &mut Lab) -> Result<(String, String, String), String> {
    let knode = lab.ns("knode")?;
    let kp1 = lab.ns("kp1")?;
    let kp2 = lab.ns("kp2")?;
    veth_pod(&knode, &kp1, "cali1", "198.18.1.2")?;
    veth_pod(&knode, &kp2, "cali2", "198.18.2.2")?;
    Ok((knode, kp1, kp2))
}

/// One iperf3 run from `client_ns` to `addr` (server in `server_ns`): the JSON result.
pub(crate) fn iperf(
    client_ns: &str,
    server_ns: &str,
    addr: &str,
    secs: u32,
    extra: &[&str],
) -> Result<Value, String> {
    let mut srv = Command::new("ip")
        .args(["netns", "exec", server_ns, "iperf3", "-s", "-1", "-B", addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("iperf3 -s: {e}"))?;
    let up = wait_for(Duration::from_secs(5), || {
        nsx(server_ns, &["ss", "-ltn"]).is_ok_and(|s| s.contains(":5201"))
    });
    let r = if up {
        let t = secs.to_string();
        let mut args = vec![
            "ip", "netns", "exec", client_ns, "timeout", "60", "iperf3", "-c", addr, "-t", &t, "-J",
        ];
        args.extend_from_slice(extra);
        sh(&args).and_then(|o| serde_json::from_str(&o).map_err(|e| format!("iperf3 json: {e}")))
    } else {
        Err("iperf3 server did not start".into())
    };
    let _ = srv.kill();
    let _ = srv.wait();
    r
}

/// A number iperf3 must have put in its JSON; missing means the run failed, not "zero".
fn field(v: &Value, path: &[&str]) -> Result<f64, String> {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_f64().ok_or_else(|| {
        let err = v["error"].as_str().unwrap_or("no error given");
        format!("iperf3 result lacks {}: {err}", path.join("."))
    })
}

/// Gbit/s received (TCP) from an iperf3 result.
pub(crate) fn tcp_gbps(v: &Value) -> Result<f64, String> {
    Ok(field(v, &["end", "sum_received", "bits_per_second"])? / 1e9)
}

/// Packets per second received (UDP) from an iperf3 result.
pub(crate) fn udp_pps(v: &Value) -> Result<f64, String> {
    let pk = field(v, &["end", "sum", "packets"])?;
    let lost = field(v, &["end", "sum", "lost_packets"])?;
    let secs = field(v, &["end", "sum", "seconds"])?.max(1e-9);
    Ok((pk - lost).max(0.0) / secs)
}

pub fn run(args: &[String]) -> Result<Value, String> {
    let mut runs = 3usize;
    let mut secs = 3u32;
    // Calico enables GSO on pod interfaces by default; --no-gso measures without it.
    let mut gso = true;
    // One forwarding thread by default (calico's default config); more spread pod queues.
    let mut workers = 0u32;
    let mut queues = 1u32;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => runs = it.next().and_then(|v| v.parse().ok()).ok_or("--runs N")?,
            "--seconds" => {
                secs = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--seconds S")?
            }
            "--gso" => gso = true,
            "--no-gso" => gso = false,
            "--workers" => {
                workers = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--workers N")?
            }
            "--queues" => queues = it.next().and_then(|v| v.parse().ok()).ok_or("--queues N")?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    sh(&["iperf3", "--version"]).map_err(|_| "iperf3 not installed")?;
    let mut lab = Lab::new("pod-tcp")?;
    let tap = format!(
        "{} num-rx-queues {queues} num-tx-queues {queues}",
        if gso { " gso" } else { "" }
    );
    let (_, p1, p2) = rvpp_pods(&mut lab, &tap, workers, "", "")?;
    let (_, kp1, kp2) = kernel_pods(&mut lab)?;
    // Warm up both (ARP, caches).
    for (a, _) in [(&p1, 0), (&kp1, 1)] {
        nsx(
            a,
            &["ping", "-c", "2", "-i", "0.2", "-W", "2", "198.18.2.2"],
        )
        .map_err(|e| format!("warm-up ping: {e}"))?;
    }
    let tests: [(&str, Vec<&str>, bool); 3] = [
        ("tcp_1_stream_gbps", vec![], true),
        ("tcp_4_streams_gbps", vec!["-P", "4"], true),
        ("udp_64b_pps", vec!["-u", "-b", "0", "-l", "64"], false),
    ];
    let mut res: Vec<(Vec<f64>, Vec<f64>)> = vec![(vec![], vec![]); tests.len()];
    for r in 0..runs {
        for (ti, (name, extra, tcp)) in tests.iter().enumerate() {
            for (which, cns, sns) in [(0, &p1, &p2), (1, &kp1, &kp2)] {
                let _paused = (which == 1).then(|| lab.rvpp_paused());
                let v = iperf(cns, sns, "198.18.2.2", secs, extra)?;
                let x = if *tcp { tcp_gbps(&v)? } else { udp_pps(&v)? };
                let who = if which == 0 { "rvpp" } else { "kernel" };
                println!(
                    "run {}/{runs} {name:<20} {who:<7} {}",
                    r + 1,
                    if *tcp {
                        format!("{x:.2} Gbit/s")
                    } else {
                        format!("{:.0} kpps", x / 1e3)
                    }
                );
                if which == 0 {
                    res[ti].0.push(x);
                } else {
                    res[ti].1.push(x);
                }
            }
        }
    }
    let mut out = serde_json::Map::new();
    println!("pod-tcp (medians of {runs} interleaved runs of {secs} s, MTU 1400):");
    for (ti, (name, _, tcp)) in tests.iter().enumerate() {
        let (a, b) = &mut res[ti];
        let (ma, mb) = (median(a), median(b));
        let ratio = if mb > 0.0 { ma / mb } else { 0.0 };
        println!(
            "  {name:<20} rvpp {:>10} kernel {:>10} ratio {ratio:.2}",
            if *tcp {
                format!("{ma:.2}")
            } else {
                format!("{:.0}", ma)
            },
            if *tcp {
                format!("{mb:.2}")
            } else {
                format!("{:.0}", mb)
            },
        );
        out.insert(
            name.to_string(),
            json!({"rvpp": ma, "kernel": mb, "ratio": ratio, "rvpp_runs": a, "kernel_runs": b}),
        );
    }
    Ok(json!({
        "benchmark": "pod-tcp",
        "runs": runs,
        "seconds": secs,
        "mtu": 1400,
        "rvpp_tap_gso": gso,
        "rvpp_workers": workers,
        "rvpp_tap_queues": queues,
        "results": out,
    }))
}
