//! `rvpp-bench scrape [--runs R] [--seconds S] [--interval-ms I]`: what serving Prometheus
//! scrapes costs the workers (issue 17).
//!
//! A release rvpp forwards a packet-generator stream to a null interface on its main thread,
//! pinned to the last CPU. Windows of S seconds alternate between no scrape and a `GET /metrics`
//! every I ms (default 100) from this process on another CPU. Each window's clocks per packet
//! come from the scraped node counters themselves (one scrape at each end of every window, so
//! the quiet window pays two). The peer is the same rvpp in the same run without scrapes; the
//! target is a change within the noise, read as the spread of the quiet windows.

use crate::api_rate::{require, rvpp_beside, Daemon};
use crate::graph::{median, r2};
use serde_json::json;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const USAGE: &str = "scrape [--runs R (5)] [--seconds S (3)] [--interval-ms I (100)] [--rvpp PATH]";

/// The IPv4 forwarding nodes, as `graph` counts them.
const FORWARDING: [&str; 5] = [
    "ethernet-input",
    "ip4-input",
    "ip4-lookup",
    "ip4-rewrite",
    "interface-output",
];

/// Node counters summed over workers: name -> (clocks, packets).
type Nodes = HashMap<String, (f64, f64)>;

fn get(addr: SocketAddr) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: rvpp\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut body = String::new();
    s.read_to_string(&mut body).map_err(|e| e.to_string())?;
    if !body.starts_with("HTTP/1.1 200") && !body.starts_with("HTTP/1.0 200") {
        return Err(format!(
            "scrape answered {}",
            body.lines().next().unwrap_or("nothing")
        ));
    }
    Ok(body)
}

fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    let at = labels.find(&format!("{key}=\""))? + key.len() + 2;
    labels[at..].split('"').next()
}

fn nodes(body: &str) -> Nodes {
    let mut n = Nodes::new();
    for line in body.lines() {
        let (which, rest) = if let Some(r) = line.strip_prefix("rvpp_node_clocks_total{") {
            (0, r)
        } else if let Some(r) = line.strip_prefix("rvpp_node_packets_total{") {
            (1, r)
        } else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let (Some(node), Ok(v)) = (label(labels, "node"), value.trim().parse::<f64>()) else {
            continue;
        };
        let e = n.entry(node.to_string()).or_default();
        if which == 0 {
            e.0 += v;
        } else {
            e.1 += v;
        }
    }
    n
}

struct Window {
    mpps: f64,
    forwarding_clocks: f64,
    all_clocks: f64,
    scrapes: usize,
    latency_ms: Vec<f64>,
    body_bytes: usize,
}

fn window(addr: SocketAddr, seconds: f64, interval: Option<Duration>) -> Result<Window, String> {
    let t0 = Instant::now();
    let before = nodes(&get(addr)?);
    let until = t0 + Duration::from_secs_f64(seconds);
    let mut latency_ms = Vec::new();
    let mut body_bytes = 0;
    match interval {
        None => std::thread::sleep(until.saturating_duration_since(Instant::now())),
        Some(every) => {
            let mut next = Instant::now();
            while next < until {
                let t = Instant::now();
                body_bytes = get(addr)?.len();
                latency_ms.push(t.elapsed().as_secs_f64() * 1e3);
                next += every;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        }
    }
    let after = nodes(&get(addr)?);
    let secs = t0.elapsed().as_secs_f64();
    let delta = |n: &str| {
        let (c0, p0) = before.get(n).copied().unwrap_or_default();
        let (c1, p1) = after.get(n).copied().unwrap_or_default();
        (c1 - c0, p1 - p0)
    };
    let packets = delta("ip4-input").1;
    if packets <= 0.0 {
        return Err("no packets forwarded in the window: is pg0 running?".into());
    }
    let forwarding: f64 = FORWARDING.iter().map(|n| delta(n).0).sum();
    let all: f64 = after.keys().map(|n| delta(n).0).sum();
    Ok(Window {
        mpps: packets / secs / 1e6,
        forwarding_clocks: forwarding / packets,
        all_clocks: all / packets,
        scrapes: latency_ms.len(),
        latency_ms,
        body_bytes,
    })
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

fn spread(v: &[f64]) -> f64 {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (hi - lo) / median(v.to_vec())
}

pub fn run(args: &[String]) -> Result<serde_json::Value, String> {
    let mut runs = 5usize;
    let mut seconds = 3.0f64;
    let mut interval_ms = 100u64;
    let mut rvpp = rvpp_beside()?;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--runs" => runs = val()?.parse().map_err(|_| "bad --runs")?,
            "--seconds" => seconds = val()?.parse().map_err(|_| "bad --seconds")?,
            "--interval-ms" => interval_ms = val()?.parse().map_err(|_| "bad --interval-ms")?,
            "--rvpp" => rvpp = PathBuf::from(val()?),
            _ => return Err(format!("unknown option {a}\n{USAGE}")),
        }
    }
    if runs == 0 || seconds <= 0.0 || interval_ms == 0 {
        return Err(format!(
            "runs, seconds and interval must be positive\n{USAGE}"
        ));
    }
    require(&rvpp)?;
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let dir = std::env::temp_dir().join(format!("rvpp-scrape-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let exec = dir.join("exec");
    // Enough packets for every window at 40 Mpps.
    let count = ((runs * 2 + 2) as f64 * (seconds + 1.0) * 40e6) as u64;
    std::fs::write(
        &exec,
        format!(
            "create packet-generator interface pg0 count {count} size 64 dst 198.19.0.0/17
create null interface null1
set interface ip address pg0 198.18.0.1/24
set interface ip address null1 198.19.255.1/30
set ip neighbor null1 198.19.255.2 02:00:00:00:00:02
ip route add 198.19.0.0/16 via 198.19.255.2 null1
set interface state null1 up
set interface state pg0 up
packet-generator enable
"
        ),
    )
    .map_err(|e| e.to_string())?;
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse().unwrap();
    let pin = match cores.last() {
        Some(c) if cores.len() > 1 => format!("cpu {{ main-core {} }}\n", c.id),
        _ => String::new(),
    };
    let conf = format!(
        "unix {{ nodaemon cli-listen {} exec {} }}\nmetrics {{ listen {addr} }}\n{pin}",
        dir.join("cli.sock").display(),
        exec.display()
    );
    let _rvpp = Daemon::spawn(&rvpp, dir, &conf, || get(addr).is_ok())?;
    // This process scrapes from another CPU than the worker's, as Prometheus would.
    if cores.len() > 1 {
        core_affinity::set_for_current(cores[0]);
    }
    std::thread::sleep(Duration::from_millis(500));
    let every = Duration::from_millis(interval_ms);
    let (mut quiet, mut scraped) = (Vec::new(), Vec::new());
    for run in 0..runs {
        // Alternate which goes first, so a drift between the two halves of a run cancels.
        for scrape_first in [run % 2 == 1, run % 2 == 0] {
            if scrape_first {
                scraped.push(window(addr, seconds, Some(every))?);
            } else {
                quiet.push(window(addr, seconds, None)?);
            }
        }
    }
    let med = |ws: &[Window], f: fn(&Window) -> f64| median(ws.iter().map(f).collect());
    let q_fwd = med(&quiet, |w| w.forwarding_clocks);
    let s_fwd = med(&scraped, |w| w.forwarding_clocks);
    let q_all = med(&quiet, |w| w.all_clocks);
    let s_all = med(&scraped, |w| w.all_clocks);
    let q_mpps = med(&quiet, |w| w.mpps);
    let s_mpps = med(&scraped, |w| w.mpps);
    let noise = spread(&quiet.iter().map(|w| w.all_clocks).collect::<Vec<_>>());
    let change = s_all / q_all - 1.0;
    let latencies: Vec<f64> = scraped.iter().flat_map(|w| w.latency_ms.clone()).collect();
    let scrapes: usize = scraped.iter().map(|w| w.scrapes).sum();
    let body = scraped.iter().map(|w| w.body_bytes).max().unwrap_or(0);
    let lat_med = median(latencies.clone());
    let lat_max = latencies.iter().copied().fold(0.0, f64::max);
    println!(
        "scrape: rvpp forwarding pg0 -> null1 on one pinned core, a GET /metrics every {interval_ms} ms \
         ({body} B, median {lat_med:.2} ms, max {lat_max:.2} ms, {scrapes} scrapes) alternating with none, \
         {runs} runs of {seconds} s"
    );
    println!(
        "  no scrape (peer):    {q_mpps:6.2} Mpps  forwarding nodes {q_fwd:6.1} clocks/pkt  all nodes {q_all:6.1}"
    );
    println!(
        "  scrape every {interval_ms:3} ms: {s_mpps:6.2} Mpps  forwarding nodes {s_fwd:6.1} clocks/pkt  all nodes {s_all:6.1}"
    );
    let within = change.abs() <= noise;
    println!(
        "  change {:+.1}% clocks/pkt (ratio {:.3}); spread of the quiet windows {:.1}%: {}",
        change * 100.0,
        s_all / q_all,
        noise * 100.0,
        if within {
            "within noise (target met)"
        } else {
            "outside noise (target not met)"
        }
    );
    let rows = |ws: &[Window]| {
        ws.iter()
            .map(|w| {
                json!({"mpps": r2(w.mpps), "forwarding_clocks_per_packet": r2(w.forwarding_clocks),
                       "all_clocks_per_packet": r2(w.all_clocks), "scrapes": w.scrapes})
            })
            .collect::<Vec<_>>()
    };
    Ok(json!({
        "benchmark": "scrape",
        "peer": "the same rvpp in the same run without scrapes",
        "interval_ms": interval_ms,
        "runs": runs,
        "seconds": seconds,
        "body_bytes": body,
        "scrape_latency_ms": {"median": r2(lat_med), "max": r2(lat_max)},
        "quiet": {"mpps": r2(q_mpps), "forwarding_clocks_per_packet": r2(q_fwd), "all_clocks_per_packet": r2(q_all), "windows": rows(&quiet)},
        "scraped": {"mpps": r2(s_mpps), "forwarding_clocks_per_packet": r2(s_fwd), "all_clocks_per_packet": r2(s_all), "windows": rows(&scraped)},
        "clocks_ratio": (s_all / q_all * 1000.0).round() / 1000.0,
        "quiet_spread": (noise * 1000.0).round() / 1000.0,
        "target_met": within,
    }))
}
