//! `rvpp-bench soak [--minutes M] [--sample-secs S] [--warmup-secs W] [--routes N]`: rvpp
//! under steady traffic while its configuration churns as calico's would (root).
//!
//! Topology (pod_tcp's): rvpp in a node namespace with two tun pods, p1 (198.18.1.2) and p2
//! (198.18.2.2), and an af_packet uplink on a veth to a "network" namespace (198.18.9.2).
//! Steady traffic for the whole run: iperf3 TCP p1 -> p2 (paced at 200 Mbit/s, so the churn
//! gets CPU) and iperf3 UDP p1 -> network at 10 Mbit/s, whose loss is counted. Neither flow's
//! route changes during the run.
//!
//! Churn: `bench/soak_churn.py` through vpp_papi, round after round: a tun pod added and deleted
//! with calico's §C messages, a wave of N /32 routes added and deleted, 256 neighbours, 100
//! services, 50 policy rules.
//!
//! Every S seconds: rvpp's RSS, threads and open fds (/proc), buffers in use (`show buffers`)
//! and FIB bytes (`show ip fib memory`). Reported: each one's least-squares slope after the
//! warm-up, as growth per 30 minutes, and the idle figures before and after (the leak check).
//! There is no peer to run beside it: the figures are compared with issue 18's targets (RSS
//! growth at most 1 MiB per 30 minutes, no buffer and no fd leaked, no loss on the steady
//! UDP flow).

use crate::pod_tcp::{ipn, nsx, rvpp_pods, sh, wait_for, Lab};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Opts {
    minutes: f64,
    sample_secs: f64,
    warmup_secs: Option<f64>,
    routes: u32,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        minutes: 30.0,
        sample_secs: 10.0,
        warmup_secs: None,
        routes: 10_000,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut v = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--minutes" => o.minutes = v()?.parse().map_err(|_| "bad --minutes")?,
            "--sample-secs" => o.sample_secs = v()?.parse().map_err(|_| "bad --sample-secs")?,
            "--warmup-secs" => o.warmup_secs = Some(v()?.parse().map_err(|_| "bad --warmup-secs")?),
            "--routes" => o.routes = v()?.parse().map_err(|_| "bad --routes")?,
            _ => return Err(format!("unknown option {a}")),
        }
    }
    if o.minutes <= 0.0 || o.sample_secs <= 0.0 {
        return Err("--minutes and --sample-secs must be positive".into());
    }
    Ok(o)
}

/// One sample of rvpp's resources.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    t: f64,
    rss_kib: f64,
    threads: f64,
    fds: f64,
    buffers: f64,
    fib_bytes: f64,
    /// RSS by kind of mapping, in [`RSS_KINDS`] order: says which one a step came from.
    rss_by_kind: [f64; RSS_KINDS.len()],
}

/// Kinds of mapping in /proc/PID/smaps: anonymous memory (the allocator's heap and arenas,
/// thread stacks), memfds (buffer pool, stats segment, memif regions), device and socket
/// mappings (af_packet rings), and files (the binary and its libraries).
const RSS_KINDS: [&str; 4] = ["anon", "memfd", "rings", "files"];

fn rss_by_kind(pid: u32) -> [f64; RSS_KINDS.len()] {
    let mut kib = [0.0; RSS_KINDS.len()];
    let Ok(smaps) = std::fs::read_to_string(format!("/proc/{pid}/smaps")) else {
        return kib;
    };
    let mut kind = 0;
    for l in smaps.lines() {
        if let Some(v) = l.strip_prefix("Rss:") {
            kib[kind] += v
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .unwrap_or(0.0);
        } else if l
            .split_whitespace()
            .next()
            .is_some_and(|f| f.contains('-') && !f.ends_with(':'))
        {
            // A mapping's header: range perms offset dev inode [path].
            let path = l.split_whitespace().nth(5).unwrap_or("");
            kind = if path.is_empty() || path.starts_with('[') {
                0
            } else if path.starts_with("/memfd:") {
                1
            } else if path.starts_with("socket:")
                || path.starts_with("/dev/")
                || path.starts_with("anon_inode:")
            {
                2
            } else {
                3
            };
        }
    }
    kib
}

fn status_field(pid: u32, key: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let l = s.lines().find(|l| l.starts_with(key))?;
    l.split_whitespace().nth(1)?.parse().ok()
}

fn sample(lab: &Lab, pid: u32, t: f64) -> Result<Sample, String> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map_err(|e| format!("rvpp's fds: {e}"))?
        .count() as f64;
    let buffers = lab
        .ctl("show buffers")?
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
        .ok_or("no Used column in show buffers")?;
    let mem = lab.ctl("show ip fib memory")?;
    let fib_bytes = mem
        .split(',')
        .find(|p| p.contains("table bytes"))
        .and_then(|p| p.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no table bytes in `show ip fib memory`: {mem}"))?;
    Ok(Sample {
        t,
        rss_kib: status_field(pid, "VmRSS:").ok_or("no VmRSS")?,
        threads: status_field(pid, "Threads:").ok_or("no Threads")?,
        fds,
        buffers,
        fib_bytes,
        rss_by_kind: rss_by_kind(pid),
    })
}

/// Least-squares slope of y over t (units per second); 0 with fewer than two points.
fn slope(pts: &[(f64, f64)]) -> f64 {
    let n = pts.len() as f64;
    if pts.len() < 2 {
        return 0.0;
    }
    let mt = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let num: f64 = pts.iter().map(|p| (p.0 - mt) * (p.1 - my)).sum();
    let den: f64 = pts.iter().map(|p| (p.0 - mt).powi(2)).sum();
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

/// A child killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_in(ns: &str, args: &[&str], out: Stdio) -> Result<Proc, String> {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .map(Proc)
        .map_err(|e| format!("{}: {e}", args.join(" ")))
}

/// Wait for a spawned iperf3 client and parse its JSON.
fn iperf_result(p: Proc, what: &str) -> Result<Value, String> {
    let mut p = p;
    let mut out = String::new();
    if let Some(mut o) = p.0.stdout.take() {
        use std::io::Read;
        let _ = o.read_to_string(&mut out);
    }
    let _ = p.0.wait();
    serde_json::from_str(&out).map_err(|e| format!("{what}: iperf3 json: {e}: {out:.300}"))
}

fn num(v: &Value, path: &[&str]) -> f64 {
    let mut x = v;
    for k in path {
        x = &x[*k];
    }
    x.as_f64().unwrap_or(f64::NAN)
}

pub fn run(args: &[String]) -> Result<Value, String> {
    let o = parse(args)?;
    let secs = o.minutes * 60.0;
    let warmup = o.warmup_secs.unwrap_or((secs * 0.2).min(120.0));
    let mut lab = Lab::new("soak")?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let rvpp_bin = exe.with_file_name("rvpp");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("soak_churn.py");
    let apidir = lab.dir.join("apidir");
    sh(&[
        rvpp_bin.to_str().unwrap_or("rvpp"),
        "--write-api-json",
        apidir.to_str().unwrap_or(""),
    ])?;
    let api = lab.dir.join("api.sock");
    let conf = format!("socksvr {{ socket-name {} }}", api.display());
    let (node, p1, p2) = rvpp_pods(&mut lab, "", 0, "", &conf)?;
    let net = lab.ns("net")?;
    let churn = lab.ns("churn")?;
    // The uplink: a veth from the node namespace to the network one.
    ipn(
        &node,
        &[
            "link", "add", "uplink", "type", "veth", "peer", "name", "up0", "netns", &net,
        ],
    )?;
    ipn(&node, &["link", "set", "uplink", "up"])?;
    for c in [
        "create host-interface name uplink",
        "set interface ip address host-uplink 198.18.9.1/24",
        "set interface state host-uplink up",
    ] {
        let out = lab.ctl(c)?;
        if out.contains("unknown") || out.contains("error") {
            return Err(format!("{c}: {out}"));
        }
    }
    ipn(&net, &["addr", "add", "198.18.9.2/24", "dev", "up0"])?;
    ipn(&net, &["link", "set", "up0", "up"])?;
    // A veth leaves checksums to the receiver, which a NIC uplink never does (as lab.sh).
    nsx(
        &net,
        &[
            "ethtool", "-K", "up0", "tx", "off", "tso", "off", "gso", "off",
        ],
    )?;
    ipn(
        &net,
        &["route", "add", "198.18.0.0/16", "via", "198.18.9.1"],
    )?;
    let uplink_sw = lab
        .ctl("show interface")?
        .lines()
        .find(|l| l.starts_with("host-uplink "))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u32>().ok())
        .ok_or("no host-uplink in show interface")?;
    if !wait_for(Duration::from_secs(15), || {
        nsx(&p1, &["ping", "-c", "1", "-W", "1", "198.18.9.2"]).is_ok()
            && nsx(&p1, &["ping", "-c", "1", "-W", "1", "198.18.2.2"]).is_ok()
    }) {
        return Err("the pods do not reach each other and the network".into());
    }
    // Kernel-side drop counters on the steady UDP flow's path, read before and after.
    let kernel_drops = || -> Vec<(String, f64)> {
        let stat = |ns: &str, dev: &str, c: &str| {
            nsx(
                ns,
                &["cat", &format!("/sys/class/net/{dev}/statistics/{c}")],
            )
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(f64::NAN)
        };
        // UDP receive-buffer overflows of the iperf3 server (netstat -su's "receive buffer errors").
        let rcvbuf = nsx(&net, &["cat", "/proc/net/snmp"])
            .ok()
            .and_then(|t| {
                let mut udp = t.lines().filter(|l| l.starts_with("Udp:"));
                let (h, v) = (udp.next()?, udp.next()?);
                let i = h.split_whitespace().position(|k| k == "RcvbufErrors")?;
                v.split_whitespace().nth(i)?.parse::<f64>().ok()
            })
            .unwrap_or(f64::NAN);
        vec![
            (
                "p1 eth0 tx_dropped (tun queue full: rvpp read too slowly)".into(),
                stat(&p1, "eth0", "tx_dropped"),
            ),
            ("net up0 rx_dropped".into(), stat(&net, "up0", "rx_dropped")),
            (
                "net udp RcvbufErrors (iperf3 server too slow)".into(),
                rcvbuf,
            ),
        ]
    };
    let kernel_before = kernel_drops();
    let pid = lab.rvpp.as_ref().map(|c| c.id()).ok_or("no rvpp")?;
    let t0 = Instant::now();
    let idle_before = sample(&lab, pid, 0.0)?;

    // Steady traffic, then the churn, for the whole run.
    let run_secs = (secs.ceil() as u64 + 5).to_string();
    let _tcp_srv = spawn_in(&p2, &["iperf3", "-s", "-p", "5201"], Stdio::null())?;
    let _udp_srv = spawn_in(&net, &["iperf3", "-s", "-p", "5202"], Stdio::null())?;
    if !wait_for(Duration::from_secs(5), || {
        nsx(&p2, &["ss", "-ltn"]).is_ok_and(|s| s.contains(":5201"))
            && nsx(&net, &["ss", "-ltn"]).is_ok_and(|s| s.contains(":5202"))
    }) {
        return Err("iperf3 servers did not start".into());
    }
    let tcp = spawn_in(
        &p1,
        &[
            "iperf3",
            "-c",
            "198.18.2.2",
            "-p",
            "5201",
            "-t",
            &run_secs,
            "-b",
            "200M",
            "-J",
        ],
        Stdio::piped(),
    )?;
    let udp = spawn_in(
        &p1,
        &[
            "iperf3",
            "-c",
            "198.18.9.2",
            "-p",
            "5202",
            "-u",
            "-b",
            "10M",
            "-l",
            "1200",
            "-t",
            &run_secs,
            "-J",
        ],
        Stdio::piped(),
    )?;
    let churn_path = format!("/var/run/netns/{churn}");
    let churn_log = lab.dir.join("churn.log");
    let churn_proc = Command::new("python3")
        .arg(&script)
        .arg(&apidir)
        .arg(&api)
        .arg(format!("{secs}"))
        .arg(&churn_path)
        .arg(uplink_sw.to_string())
        .arg("198.18.9.2")
        .arg(o.routes.to_string())
        .stdout(std::fs::File::create(&churn_log).map_err(|e| e.to_string())?)
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("python3 {}: {e}", script.display()))?;
    let mut churn_proc = Proc(churn_proc);

    let mut samples = Vec::new();
    println!(
        "soak: {:.1} min, samples every {} s, warm-up {:.0} s, route waves of {}",
        o.minutes, o.sample_secs, warmup, o.routes
    );
    let mut next = o.sample_secs;
    while t0.elapsed().as_secs_f64() < secs {
        let wait = next - t0.elapsed().as_secs_f64();
        if wait > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(wait));
        }
        next += o.sample_secs;
        let s = sample(&lab, pid, t0.elapsed().as_secs_f64())?;
        println!(
            "  t={:6.0} s  rss {:8.0} KiB ({})  threads {:3.0}  fds {:4.0}  buffers {:6.0}  fib {:10.0} B",
            s.t,
            s.rss_kib,
            kinds_text(&s.rss_by_kind),
            s.threads,
            s.fds,
            s.buffers,
            s.fib_bytes
        );
        samples.push(s);
        if let Ok(Some(st)) = churn_proc.0.try_wait() {
            if !st.success() {
                let log = std::fs::read_to_string(&churn_log).unwrap_or_default();
                return Err(format!(
                    "churn failed ({st}): {}",
                    log.lines().last().unwrap_or("")
                ));
            }
        }
    }
    let churn_status = churn_proc.0.wait().map_err(|e| e.to_string())?;
    let log = std::fs::read_to_string(&churn_log).unwrap_or_default();
    let rounds = log.lines().filter(|l| l.contains("\"seconds\"")).count();
    if !churn_status.success() {
        return Err(format!(
            "churn failed ({churn_status}): {}",
            log.lines().last().unwrap_or("")
        ));
    }
    let tcp = iperf_result(tcp, "tcp")?;
    let udp = iperf_result(udp, "udp")?;
    let kernel: Vec<(String, f64)> = kernel_drops()
        .into_iter()
        .zip(&kernel_before)
        .map(|((k, after), (_, before))| (k, after - before))
        .collect();
    // Where packets were dropped, if any were: rvpp's reasons other than info counters.
    let drops: Vec<String> = lab
        .ctl("show errors")?
        .lines()
        .skip(1)
        .filter(|l| l.trim_end().ends_with("error") || l.trim_end().ends_with("warn"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    // Idle again: the churn's last pod is gone and the streams are over.
    std::thread::sleep(Duration::from_secs(2));
    let idle_after = sample(&lab, pid, t0.elapsed().as_secs_f64())?;

    let after: Vec<&Sample> = samples.iter().filter(|s| s.t >= warmup).collect();
    let per_30min = |f: fn(&Sample) -> f64| -> f64 {
        slope(&after.iter().map(|s| (s.t, f(s))).collect::<Vec<_>>()) * 1800.0
    };
    let rss_growth_kib = per_30min(|s| s.rss_kib);
    // Which kind of mapping grew between the first and last sample after the warm-up.
    let mut rss_kind_change = [0.0; RSS_KINDS.len()];
    if let (Some(a), Some(b)) = (after.first(), after.last()) {
        for (k, d) in rss_kind_change.iter_mut().enumerate() {
            *d = b.rss_by_kind[k] - a.rss_by_kind[k];
        }
    }
    let buffers_growth = per_30min(|s| s.buffers);
    let fds_growth = per_30min(|s| s.fds);
    let threads_growth = per_30min(|s| s.threads);
    let fib_growth = per_30min(|s| s.fib_bytes);
    if let Some(e) = udp.get("error").or(tcp.get("error")) {
        return Err(format!("iperf3: {e}"));
    }
    let udp_lost = num(&udp, &["end", "sum", "lost_packets"]);
    let udp_packets = num(&udp, &["end", "sum", "packets"]);
    let tcp_gbps = num(&tcp, &["end", "sum_received", "bits_per_second"]) / 1e9;
    let tcp_retrans = num(&tcp, &["end", "sum_sent", "retransmits"]);
    println!(
        "  churn: {rounds} rounds (pod add+delete, {} routes, 256 neighbours, 100 services, 50 rules each)",
        o.routes
    );
    println!(
        "  growth per 30 min after warm-up: rss {rss_growth_kib:.0} KiB (target <= 1024), buffers {buffers_growth:.1}, fds {fds_growth:.2}, threads {threads_growth:.2}, fib {fib_growth:.0} B"
    );
    println!(
        "  rss change after warm-up by mapping kind (KiB): {}",
        kinds_text(&rss_kind_change)
    );
    println!(
        "  idle before -> after: rss {:.0} -> {:.0} KiB, threads {:.0} -> {:.0}, fds {:.0} -> {:.0}, buffers {:.0} -> {:.0}, fib {:.0} -> {:.0} B",
        idle_before.rss_kib,
        idle_after.rss_kib,
        idle_before.threads,
        idle_after.threads,
        idle_before.fds,
        idle_after.fds,
        idle_before.buffers,
        idle_after.buffers,
        idle_before.fib_bytes,
        idle_after.fib_bytes
    );
    println!(
        "  steady flows: udp {udp_lost:.0} of {udp_packets:.0} lost (target 0), tcp {tcp_gbps:.2} Gbit/s with {tcp_retrans:.0} retransmits"
    );
    println!(
        "  rvpp's drops during the run: {}",
        if drops.is_empty() {
            "none".to_string()
        } else {
            drops.join("; ")
        }
    );
    println!(
        "  kernel drops on the udp path: {}",
        kernel
            .iter()
            .map(|(k, v)| format!("{k} {v:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let js = |s: &Sample| {
        json!({"t": s.t, "rss_kib": s.rss_kib, "rss_kib_by_kind": kinds_json(&s.rss_by_kind),
               "threads": s.threads, "fds": s.fds,
               "buffers_in_use": s.buffers, "fib_table_bytes": s.fib_bytes})
    };
    Ok(json!({
        "benchmark": "soak",
        "minutes": o.minutes,
        "sample_secs": o.sample_secs,
        "warmup_secs": warmup,
        "routes_per_wave": o.routes,
        "churn_rounds": rounds,
        "peer": "none: the figures are compared with issue 18's targets",
        "growth_per_30min_after_warmup": {
            "rss_kib": rss_growth_kib, "buffers_in_use": buffers_growth, "fds": fds_growth,
            "threads": threads_growth, "fib_table_bytes": fib_growth,
        },
        "rss_kib_change_after_warmup_by_kind": kinds_json(&rss_kind_change),
        "idle_before": js(&idle_before),
        "idle_after": js(&idle_after),
        "udp": {"lost_packets": udp_lost, "packets": udp_packets},
        "tcp": {"gbit_per_s": tcp_gbps, "retransmits": tcp_retrans},
        "rvpp_drops": drops,
        "kernel_drops_on_udp_path": kernel.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "samples": samples.iter().map(js).collect::<Vec<_>>(),
    }))
}

fn kinds_text(v: &[f64; RSS_KINDS.len()]) -> String {
    RSS_KINDS
        .iter()
        .zip(v)
        .map(|(k, x)| format!("{k} {x:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn kinds_json(v: &[f64; RSS_KINDS.len()]) -> Value {
    Value::Object(
        RSS_KINDS
            .iter()
            .zip(v)
            .map(|(k, x)| (k.to_string(), json!(x)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_kinds_add_up_to_this_process_rss() {
        let pid = std::process::id();
        let kinds = rss_by_kind(pid);
        let total: f64 = kinds.iter().sum();
        let rss = status_field(pid, "VmRSS:").unwrap();
        assert!(kinds[3] > 0.0, "no file-backed RSS counted: {kinds:?}");
        assert!(kinds[0] > 0.0, "no anonymous RSS counted: {kinds:?}");
        // Both are read a moment apart; the process is not growing fast.
        assert!(
            (total - rss).abs() <= rss * 0.2 + 512.0,
            "smaps kinds sum to {total} KiB, VmRSS is {rss}"
        );
    }
}
