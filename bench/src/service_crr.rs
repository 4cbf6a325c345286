//! `rvpp-bench service-crr [--services 1,1000,10000] [--seconds S] [--runs R] [--conns C]
//! [--rx-mode polling|interrupt|adaptive] [--workers N]`:
//! TCP connect-request-response through a ClusterIP, rvpp's cnat against the Linux kernel with
//! kube-proxy's nftables rules, with 1 to 10k services programmed.
//!
//! * Pods: pod-tcp's two topologies ([`rvpp_pods`], [`kernel_pods`]): client 198.18.1.2,
//!   backend 198.18.2.2 serving on port 8080.
//! * Services: service 0, VIP 198.19.0.1:80 -> 198.18.2.2:8080, is the one the client dials;
//!   services 1.. have VIPs of their own (198.19.0.1 + i, port 80 + i % 1000) and a backend each
//!   (198.18.128.0 + i, which no pod answers).
//! * rvpp: cnat on both tuns (`set cnat interface`), services as `cnat translation add`
//!   through one rvppctl session, added as the service count grows.
//! * kernel: table `ip kube-proxy` laid out as kube-proxy's nftables mode writes it: the
//!   `service-ips` verdict map keyed on `ip daddr . meta l4proto . th dport` from the `services`
//!   chain, a chain per service choosing an endpoint chain by `numgen`, which DNATs; the
//!   masquerade marks and the filter-forward checks as kube-proxy has them. Replaced whole
//!   with `nft -f` for each service count. Conntrack keeps a closed flow 5 s, as cnat does
//!   (`nf_conntrack_tcp_timeout_time_wait`, 120 s by default, would otherwise fill the table).
//!
//! The client (hidden subcommand `__crr-client`, this binary run in the client pod) keeps C
//! connections, each in a loop: connect to the VIP, write 64 bytes, read 64, then wait for the
//! server's FIN and close. The server (`__crr-server`, in the backend pod) accepts, reads 64,
//! writes 64, closes. Closing first leaves TIME_WAIT at the server, so the client's ports do
//! not run out. Latency is connect to the last response byte. For each service count rvpp and
//! kernel runs alternate `--runs` times; medians, the ratio rvpp / kernel and whether rvpp's
//! rate is flat (every count within 10% of the best) are reported.

use crate::pod_tcp::{is_root, kernel_pods, median, nsx, rvpp_pods, sh, Lab};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes of each request and each response.
const MSG: usize = 64;
const BACKEND: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 2);
const BACKEND_PORT: u16 = 8080;
/// Service CIDR, first VIP and the highest service count (backends are 198.18.128.0/17).
const SERVICE_CIDR: &str = "198.19.0.0/16";
const FIRST_VIP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
const MAX_SERVICES: usize = 32_767;
/// Pod CIDR: traffic from outside it is marked for masquerade, as kube-proxy's cluster CIDR.
const POD_CIDR: &str = "198.18.0.0/16";
/// Connect, read and write timeout of one connection.
const IO_TIMEOUT: Duration = Duration::from_secs(3);

/// Service `i`: (VIP, port, backend, backend port).
fn service(i: usize) -> (Ipv4Addr, u16, Ipv4Addr, u16) {
    let vip = Ipv4Addr::from(u32::from(FIRST_VIP) + i as u32);
    if i == 0 {
        return (vip, 80, BACKEND, BACKEND_PORT);
    }
    let be = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 128, 0)) + i as u32);
    (vip, 80 + (i % 1000) as u16, be, BACKEND_PORT)
}

/// Add services `from..to` to rvpp in one rvppctl session; each add must answer its id.
fn rvpp_services(lab: &Lab, from: usize, to: usize) -> Result<(), String> {
    let mut cli = String::new();
    for i in from..to {
        let (vip, port, be, bport) = service(i);
        let _ = writeln!(
            cli,
            "cnat translation add proto tcp vip {vip} {port} to {be} {bport}"
        );
    }
    let out = lab.ctl_lines(&cli)?;
    let ids = out.lines().filter(|l| !l.trim().is_empty());
    let mut n = 0;
    for l in ids {
        if l.trim().parse::<u32>().is_err() {
            return Err(format!("cnat translation add: {l}"));
        }
        n += 1;
    }
    if n != to - from {
        return Err(format!(
            "cnat translation add: {n} ids for {} translations",
            to - from
        ));
    }
    Ok(())
}

/// Table `ip kube-proxy` with services `0..n`, as kube-proxy's nftables mode lays it out (the
/// chain names keep its shape: `service-<hash>-<namespace>/<name>/<protocol>/<port>`).
fn kube_proxy_ruleset(n: usize) -> String {
    let mut s = String::with_capacity(n * 600 + 4096);
    // Creating it first makes the delete succeed on the first load: one atomic replace.
    s.push_str("table ip kube-proxy {}\ndelete table ip kube-proxy\n");
    let _ = write!(
        s,
        r#"table ip kube-proxy {{
  comment "rules for kube-proxy"
  chain mark-for-masquerade {{ mark set mark or 0x4000; }}
  chain masquerading {{
    mark and 0x4000 == 0 return
    mark set mark xor 0x4000
    masquerade fully-random
  }}
  chain services {{
    ip daddr . meta l4proto . th dport vmap @service-ips
  }}
  chain nat-prerouting {{ type nat hook prerouting priority dstnat; policy accept; jump services; }}
  chain nat-output {{ type nat hook output priority -100; policy accept; jump services; }}
  chain nat-postrouting {{ type nat hook postrouting priority srcnat; policy accept; jump masquerading; }}
  map no-endpoint-services {{ type ipv4_addr . inet_proto . inet_service : verdict; }}
  chain service-endpoints-check {{ ip daddr . meta l4proto . th dport vmap @no-endpoint-services; }}
  chain cluster-ips-check {{
    ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"
    ip daddr {SERVICE_CIDR} drop comment "Drop traffic to unallocated ClusterIPs"
  }}
  chain filter-forward {{
    type filter hook forward priority -110; policy accept;
    ct state new jump service-endpoints-check
    ct state new jump cluster-ips-check
  }}
"#
    );
    let name = |i: usize, port: u16| format!("{i:08X}-default/svc{i}/tcp/p{port}");
    let mut ips = String::new();
    let mut map = String::new();
    for i in 0..n {
        let (vip, port, be, bport) = service(i);
        let svc = name(i, port);
        let sep = if i > 0 { ", " } else { "" };
        let _ = write!(ips, "{sep}{vip}");
        let _ = write!(map, "{sep}{vip} . tcp . {port} : goto service-{svc}");
        let _ = write!(
            s,
            "  chain service-{svc} {{\n    ip daddr {vip} tcp dport {port} ip saddr != {POD_CIDR} jump mark-for-masquerade\n    \
             numgen random mod 1 vmap {{ 0 : goto endpoint-{svc}__{be}/{bport} }}\n  }}\n  \
             chain endpoint-{svc}__{be}/{bport} {{\n    ip saddr {be} jump mark-for-masquerade\n    \
             meta l4proto tcp dnat to {be}:{bport}\n  }}\n"
        );
    }
    let _ = write!(
        s,
        "  set cluster-ips {{ type ipv4_addr; elements = {{ {ips} }}; }}\n  \
         map service-ips {{ type ipv4_addr . inet_proto . inet_service : verdict; elements = {{ {map} }}; }}\n}}\n"
    );
    s
}

fn kernel_services(lab: &Lab, node: &str, n: usize) -> Result<(), String> {
    let f = lab.dir.join("kube-proxy.nft");
    std::fs::write(&f, kube_proxy_ruleset(n)).map_err(|e| format!("{}: {e}", f.display()))?;
    nsx(node, &["nft", "-f", f.to_str().unwrap_or("")])?;
    Ok(())
}

/// The servers and clients this benchmark started, killed on drop (before [`Lab`] removes
/// their namespaces).
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// This binary, run in namespace `ns` with `args`.
fn in_ns(ns: &str, args: &[&str]) -> Result<Command, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).arg(exe).args(args);
    Ok(c)
}

/// Start the CRR server in pod `ns`, `threads` connections at a time; returns once it listens.
fn start_server(ns: &str, threads: usize) -> Result<Child, String> {
    let bind = format!("{BACKEND}:{BACKEND_PORT}");
    let t = threads.to_string();
    let mut child = in_ns(ns, &["__crr-server", "--bind", &bind, "--threads", &t])?
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("crr server: {e}"))?;
    let mut line = String::new();
    let out = child.stdout.take().ok_or("crr server stdout")?;
    let _ = BufReader::new(out).read_line(&mut line);
    if line.trim() != "ready" {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("crr server in {ns} did not start"));
    }
    Ok(child)
}

/// One client run from pod `ns`: its JSON report.
fn client_run(ns: &str, conns: usize, secs: f64) -> Result<Value, String> {
    let to = format!("{FIRST_VIP}:80");
    let (c, s) = (conns.to_string(), secs.to_string());
    let out = in_ns(
        ns,
        &["__crr-client", "--to", &to, "--conns", &c, "--seconds", &s],
    )?
    .output()
    .map_err(|e| format!("crr client: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "crr client: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("crr client output: {e}"))
}

/// rvpp's drop counters (`show errors` lines of severity error) since the last `clear errors`.
fn rvpp_drops(lab: &Lab) -> Result<Vec<(u64, String)>, String> {
    let out = lab.ctl("show errors")?;
    Ok(out
        .lines()
        .skip(1)
        .filter(|l| l.trim_end().ends_with("error"))
        .filter_map(|l| {
            let (n, rest) = l.trim_start().split_once(' ')?;
            let reason = rest.trim().trim_end_matches("error").trim();
            Some((
                n.parse().ok()?,
                reason.split_whitespace().collect::<Vec<_>>().join(" "),
            ))
        })
        .collect())
}

#[derive(Default)]
struct Side {
    cps: Vec<f64>,
    p99_us: Vec<f64>,
    errors: Vec<u64>,
}

impl Side {
    fn push(&mut self, r: &Value) -> Result<(f64, f64, u64), String> {
        let n = r["connections"].as_f64().ok_or("no connections")?;
        let t = r["seconds"].as_f64().ok_or("no seconds")?.max(1e-9);
        let p99 = r["p99_us"].as_f64().unwrap_or(0.0);
        let e = r["errors"].as_u64().unwrap_or(0);
        self.cps.push(n / t);
        self.p99_us.push(p99);
        self.errors.push(e);
        Ok((n / t, p99, e))
    }
    fn medians(&mut self) -> (f64, f64) {
        (
            median(&mut self.cps.clone()),
            median(&mut self.p99_us.clone()),
        )
    }
    fn json(&mut self) -> Value {
        let (c, p) = self.medians();
        json!({"conn_per_s": c, "p99_us": p, "conn_per_s_runs": self.cps,
               "p99_us_runs": self.p99_us, "errors_runs": self.errors})
    }
}

/// ` (first: why)` when a client run had failed connections, else nothing.
fn first_error(r: &Value) -> String {
    match r["first_error"].as_str() {
        Some(why) => format!(" (first: {why})"),
        None => String::new(),
    }
}

/// The value after an option, parsed; Err names the option.
fn value<'a, T: std::str::FromStr>(
    it: &mut impl Iterator<Item = &'a String>,
    what: &str,
) -> Result<T, String> {
    it.next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| what.to_string())
}

fn parse_list(v: Option<&String>) -> Option<Vec<usize>> {
    v?.split(',').map(|x| x.trim().parse().ok()).collect()
}

pub fn run(args: &[String]) -> Result<Value, String> {
    let mut services = vec![1usize, 1000, 10_000];
    let mut secs = 5f64;
    let mut runs = 3usize;
    let mut conns = 16usize;
    let mut rx_mode = "polling".to_string();
    let mut workers = 0u32;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--services" => services = parse_list(it.next()).ok_or("--services N,N,...")?,
            "--seconds" => secs = value(&mut it, "--seconds S")?,
            "--runs" => runs = value(&mut it, "--runs R")?,
            "--conns" => conns = value(&mut it, "--conns C")?,
            "--workers" => workers = value(&mut it, "--workers N")?,
            "--rx-mode" => rx_mode = value(&mut it, "--rx-mode polling|interrupt|adaptive")?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    services.sort_unstable();
    services.dedup();
    if services.is_empty() || services[0] == 0 || services[services.len() - 1] > MAX_SERVICES {
        return Err(format!("--services: counts from 1 to {MAX_SERVICES}"));
    }
    if !matches!(rx_mode.as_str(), "polling" | "interrupt" | "adaptive") {
        return Err(format!(
            "--rx-mode {rx_mode}: polling, interrupt or adaptive"
        ));
    }
    if runs == 0 || conns == 0 || secs <= 0.0 {
        return Err("--runs, --conns and --seconds must be above 0".into());
    }
    if !is_root() {
        return Err(
            "needs root: it creates network namespaces, runs rvpp and loads nftables rules".into(),
        );
    }
    sh(&["nft", "--version"])
        .map_err(|_| "nft not found: install nftables (scripts/install-deps.sh)")?;
    let mut lab = Lab::new("service-crr")?;
    let cli = format!(
        "set cnat interface tun0\nset cnat interface tun1\nset interface rx-mode tun0 {rx_mode}\n"
    );
    let (_, p1, p2) = rvpp_pods(&mut lab, " gso", workers, &cli, "")?;
    let (knode, kp1, kp2) = kernel_pods(&mut lab)?;
    let mut procs = Procs(Vec::new());
    procs.0.push(start_server(&p2, conns)?);
    procs.0.push(start_server(&kp2, conns)?);
    let mut rows = Vec::new();
    let mut have = 0;
    println!(
        "service-crr: {conns} connections, {MSG} B request and response, {runs} runs of {secs} s"
    );
    for &n in &services {
        let t = Instant::now();
        rvpp_services(&lab, have, n)?;
        let rvpp_prog = t.elapsed().as_secs_f64();
        have = n;
        let t = Instant::now();
        kernel_services(&lab, &knode, n)?;
        let nft_prog = t.elapsed().as_secs_f64();
        if n == services[0] {
            // The table exists now, so conntrack's sysctls do.
            nsx(
                &knode,
                &[
                    "sysctl",
                    "-qw",
                    "net.netfilter.nf_conntrack_tcp_timeout_time_wait=5",
                ],
            )?;
        }
        println!(
            "{n} services programmed: rvpp {rvpp_prog:.2} s (cnat translation add), kernel {nft_prog:.2} s (nft -f)"
        );
        // One connection through each first: a path that does not work is an error, not a rate.
        for (who, ns) in [("rvpp", &p1), ("kernel", &kp1)] {
            let r = client_run(ns, 1, 0.0)?;
            if r["connections"].as_u64() != Some(1) {
                let why = r["first_error"].as_str().unwrap_or("?").to_string();
                let drops = if who == "rvpp" {
                    format!("; rvpp drops: {:?}", rvpp_drops(&lab).unwrap_or_default())
                } else {
                    String::new()
                };
                return Err(format!(
                    "{who}: a connection to ClusterIP {FIRST_VIP}:80 failed: {why}{drops}"
                ));
            }
        }
        let (mut rv, mut kv) = (Side::default(), Side::default());
        let mut drops: Vec<(u64, String)> = Vec::new();
        for r in 0..runs {
            lab.ctl("clear errors")?;
            let res = client_run(&p1, conns, secs)?;
            let (c, p, e) = rv.push(&res)?;
            let d = rvpp_drops(&lab)?;
            let dn: u64 = d.iter().map(|x| x.0).sum();
            println!(
                "  {n:>6} services run {}/{runs} rvpp   {c:>9.0} conn/s p99 {p:>7.0} us errors {e} drops {dn}{}",
                r + 1,
                first_error(&res)
            );
            for (k, why) in d {
                match drops.iter_mut().find(|x| x.1 == why) {
                    Some(x) => x.0 += k,
                    None => drops.push((k, why)),
                }
            }
            let res = {
                let _paused = lab.rvpp_paused();
                client_run(&kp1, conns, secs)?
            };
            let (c, p, e) = kv.push(&res)?;
            println!(
                "  {n:>6} services run {}/{runs} kernel {c:>9.0} conn/s p99 {p:>7.0} us errors {e}{}",
                r + 1,
                first_error(&res)
            );
        }
        for (k, why) in &drops {
            println!("  {n:>6} services rvpp dropped {k}: {why}");
        }
        let (rc, _) = rv.medians();
        let (kc, _) = kv.medians();
        let ratio = if kc > 0.0 { rc / kc } else { 0.0 };
        rows.push(json!({
            "services": n,
            "rvpp": rv.json(),
            "kernel": kv.json(),
            "ratio": ratio,
            "rvpp_drops": drops.iter().map(|(k, w)| json!({"reason": w, "count": k})).collect::<Vec<_>>(),
            "rvpp_program_seconds": rvpp_prog,
            "kernel_program_seconds": nft_prog,
        }));
    }
    let rate = |r: &Value, who: &str| r[who]["conn_per_s"].as_f64().unwrap_or(0.0);
    let best = rows.iter().map(|r| rate(r, "rvpp")).fold(0.0, f64::max);
    let worst = rows
        .iter()
        .map(|r| rate(r, "rvpp"))
        .fold(f64::MAX, f64::min);
    let spread = if best > 0.0 { worst / best } else { 0.0 };
    let flat = spread >= 0.9;
    println!("service-crr (medians of {runs} interleaved runs of {secs} s, {conns} connections):");
    println!(
        "  {:>8}  {:>12} {:>9}  {:>12} {:>9}  {:>6}",
        "services", "rvpp conn/s", "p99 us", "kernel conn/s", "p99 us", "ratio"
    );
    for r in &rows {
        println!(
            "  {:>8}  {:>12.0} {:>9.0}  {:>12.0} {:>9.0}  {:>6.2}",
            r["services"].as_u64().unwrap_or(0),
            rate(r, "rvpp"),
            r["rvpp"]["p99_us"].as_f64().unwrap_or(0.0),
            rate(r, "kernel"),
            r["kernel"]["p99_us"].as_f64().unwrap_or(0.0),
            r["ratio"].as_f64().unwrap_or(0.0)
        );
    }
    let failed = |who: &str| -> u64 {
        rows.iter()
            .filter_map(|r| r[who]["errors_runs"].as_array())
            .flatten()
            .filter_map(Value::as_u64)
            .sum()
    };
    let (rf, kf) = (failed("rvpp"), failed("kernel"));
    if rf + kf > 0 {
        println!(
            "  connections that failed (3 s timeouts, refused, reset): rvpp {rf}, kernel {kf}"
        );
    }
    println!(
        "  rvpp's rate, slowest over fastest service count: {spread:.2} (flat within 10%: {})",
        if flat { "yes" } else { "no" }
    );
    drop(procs);
    Ok(json!({
        "benchmark": "service-crr",
        "runs": runs,
        "seconds": secs,
        "connections": conns,
        "rvpp_rx_mode": rx_mode,
        "rvpp_workers": workers,
        "message_bytes": MSG,
        "results": rows,
        "rvpp_rate_spread": spread,
        "rvpp_flat_within_10pct": flat,
        "failed_connections": {"rvpp": rf, "kernel": kf},
        "targets": {"ratio_at_every_count": 1.0, "rvpp_flat_within": 0.10},
    }))
}

/// One connection: connect, request, response, the server's FIN. Returns connect to response.
fn crr_once(to: &SocketAddr, buf: &mut [u8; MSG]) -> std::io::Result<Duration> {
    let t = Instant::now();
    let mut s = TcpStream::connect_timeout(to, IO_TIMEOUT)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    s.write_all(&[b'q'; MSG])?;
    s.read_exact(buf)?;
    let lat = t.elapsed();
    if s.read(buf)? != 0 {
        return Err(std::io::Error::other("more than the response"));
    }
    Ok(lat)
}

/// `__crr-client --to ADDR:PORT --conns C --seconds S`: C threads each connecting in a loop
/// until S seconds have passed (each at least once); prints one JSON line.
pub fn client(args: &[String]) -> Result<(), String> {
    let mut to: Option<SocketAddr> = None;
    let mut conns = 1usize;
    let mut secs = 1f64;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--to" => to = Some(value(&mut it, "--to ADDR:PORT")?),
            "--conns" => conns = value(&mut it, "--conns C")?,
            "--seconds" => secs = value(&mut it, "--seconds S")?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    let to = to.ok_or("--to ADDR:PORT")?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            std::thread::spawn(move || {
                let mut lat: Vec<u32> = Vec::with_capacity(1 << 16);
                let (mut errors, mut first) = (0u64, None);
                let mut buf = [0u8; MSG];
                loop {
                    match crr_once(&to, &mut buf) {
                        Ok(d) => lat.push(d.as_micros().min(u32::MAX as u128) as u32),
                        Err(e) => {
                            errors += 1;
                            first.get_or_insert_with(|| e.to_string());
                        }
                    }
                    if Instant::now() >= deadline {
                        break;
                    }
                }
                (lat, errors, first)
            })
        })
        .collect();
    let (mut lat, mut errors, mut first) = (Vec::new(), 0u64, None::<String>);
    for t in threads {
        let (l, e, f) = t.join().map_err(|_| "client thread panicked")?;
        lat.extend(l);
        errors += e;
        if first.is_none() {
            first = f;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |q: f64| -> Value {
        if lat.is_empty() {
            return Value::Null;
        }
        let i = ((q * lat.len() as f64).ceil() as usize).clamp(1, lat.len()) - 1;
        json!(lat[i])
    };
    println!(
        "{}",
        json!({
            "connections": lat.len(),
            "errors": errors,
            "first_error": first,
            "seconds": elapsed,
            "p50_us": pct(0.50),
            "p99_us": pct(0.99),
        })
    );
    Ok(())
}

/// `__crr-server --bind ADDR:PORT --threads N`: N threads accepting; each connection gets its
/// request read, the response written, and is closed. Prints `ready` once listening; runs until
/// killed.
pub fn server(args: &[String]) -> Result<(), String> {
    let mut bind: Option<SocketAddr> = None;
    let mut threads = 1usize;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--bind" => bind = Some(value(&mut it, "--bind ADDR:PORT")?),
            "--threads" => threads = value(&mut it, "--threads N")?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    let bind = bind.ok_or("--bind ADDR:PORT")?;
    let l = Arc::new(TcpListener::bind(bind).map_err(|e| format!("bind {bind}: {e}"))?);
    println!("ready");
    let _ = std::io::stdout().flush();
    let serve = |mut s: TcpStream| -> std::io::Result<()> {
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(IO_TIMEOUT))?;
        s.set_write_timeout(Some(IO_TIMEOUT))?;
        let mut buf = [0u8; MSG];
        s.read_exact(&mut buf)?;
        s.write_all(&[b'r'; MSG])
    };
    let workers: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let l = Arc::clone(&l);
            std::thread::spawn(move || loop {
                if let Ok((s, _)) = l.accept() {
                    let _ = serve(s);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    Ok(())
}
