//! `rvpp-bench graph`: one core, generator -> ethernet-input -> ip4-input -> ip4-lookup ->
//! ip4-rewrite -> null tx, with N random prefixes and destinations spread over them.

use rvpp_dataplane::buffer::BufferPool;
use rvpp_dataplane::fib::Ip4FibConfig;
use rvpp_dataplane::forwarding::{mask4, Forwarding, Path, Prefix};
use rvpp_dataplane::nodes::{standard_graph, FeatureArcs};
use rvpp_dataplane::runtime::{tsc_hz, Runtime};
use rvpp_dataplane::tables::Shared;
use rvpp_drivers::pg::{NullTx, PgStream};
use serde_json::json;
use std::time::{Duration, Instant};

/// VPP v26.10-rc0 on this machine class, from the issue (its own pg, 60-byte packets, one core).
const VPP_MPPS: f64 = 25.6;
const VPP_FWD_CLOCKS: f64 = 49.6;
const FORWARDING_NODES: [&str; 4] = ["ethernet-input", "ip4-input", "ip4-lookup", "ip4-rewrite"];

/// xorshift64*: reproducible prefixes without a dependency.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// N distinct prefixes with an Internet-like length mix (mostly /24, some shorter and longer).
pub fn random_prefixes(n: usize, seed: u64) -> Vec<(u32, u8)> {
    let mut rng = Rng(seed | 1);
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let r = rng.next();
        let len = match r % 100 {
            0..=59 => 24,
            60..=74 => 16 + (r >> 8) as u8 % 8,
            75..=89 => 25 + (r >> 8) as u8 % 8,
            _ => 8 + (r >> 8) as u8 % 8,
        };
        let a = (rng.next() as u32) & mask4(len);
        // Keep clear of the lab's own subnets.
        if a >> 24 == 198 || a >> 24 == 0 {
            continue;
        }
        if seen.insert((a, len)) {
            out.push((a, len));
        }
    }
    out
}

pub struct GraphResult {
    pub mpps: f64,
    pub per_node: Vec<(String, f64)>,
    pub fwd_clocks: f64,
    pub total_clocks: f64,
    pub program_secs: f64,
}

pub fn run_once(routes: usize, seconds: f64, size: usize) -> Result<GraphResult, String> {
    let pool = BufferPool::new(16384, 2048).map_err(|e| e.to_string())?;
    let shared = Shared::new();
    let cfg = Ip4FibConfig {
        tbl8_groups: (routes as u32 / 2).max(1 << 12),
        huge_pages: routes > 100_000,
    };
    let mut fwd = Forwarding::with_fib_config(shared.clone(), cfg);
    let mac_in = [2, 0xfe, 0, 0, 0, 1];
    let pg = fwd
        .interface_add("pg0", "pg", mac_in, true, 9000)
        .map_err(|e| e.to_string())?;
    let out = fwd
        .interface_add("null0", "null", [2, 0xfe, 0, 0, 0, 2], true, 9000)
        .map_err(|e| e.to_string())?;
    for (s, a) in [(pg, "198.18.0.1/24"), (out, "198.19.0.1/24")] {
        fwd.address_add(s, Prefix::parse(a).expect("addr"))
            .map_err(|e| e.to_string())?;
        fwd.set_admin_up(s, true).map_err(|e| e.to_string())?;
    }
    let nh = "198.19.0.2".parse().expect("nh");
    fwd.neighbor_add(out, nh, [2, 0, 0, 0, 0, 9], true)
        .map_err(|e| e.to_string())?;
    let prefixes = if routes <= 1 {
        vec![(0u32, 0u8)]
    } else {
        random_prefixes(routes, 0x5eed)
    };
    let t0 = Instant::now();
    for &(a, l) in &prefixes {
        fwd.route_add(0, Prefix::V4(a, l), vec![Path::via(nh, Some(out))])
            .map_err(|e| e.to_string())?;
    }
    let program_secs = t0.elapsed().as_secs_f64();
    // Destinations spread over the prefixes: one random host in each (up to 1M of them).
    let mut rng = Rng(0xd57);
    let dsts: Vec<u32> = if routes <= 1 {
        (0..4096u32).map(|i| 0x0a00_0000 + i).collect()
    } else {
        prefixes
            .iter()
            .take(1 << 20)
            .map(|&(a, l)| a | (rng.next() as u32 & !mask4(l)))
            .collect()
    };
    let mut dsts = dsts;
    for i in (1..dsts.len()).rev() {
        dsts.swap(i, rng.next() as usize % (i + 1));
    }
    let graph = standard_graph(&FeatureArcs::default(), vec![])?;
    let mut rt = Runtime::new(graph, pool.local(), shared, 0, "bench".into())?;
    rt.add_rx(Box::new(PgStream::ip4_udp(
        pg,
        mac_in,
        [2, 0, 0, 0, 0, 7],
        0xc612_0002,
        &dsts,
        size,
    )))?;
    rt.set_tx(out, Box::new(NullTx::default()))?;
    // Warm up, then measure from a clean baseline.
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(300) {
        rt.poll();
    }
    let stats = rt.stats();
    let base: Vec<(u64, u64)> = stats
        .nodes
        .iter()
        .map(|c| (c.vectors.get(), c.clocks.get()))
        .collect();
    let tx0 = stats.ifs[out as usize].tx_packets.get();
    let start = Instant::now();
    let dur = Duration::from_secs_f64(seconds);
    while start.elapsed() < dur {
        for _ in 0..64 {
            rt.poll();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let tx = stats.ifs[out as usize].tx_packets.get() - tx0;
    let g = rt.graph();
    let mut per_node = Vec::new();
    let mut total = 0.0;
    for (i, c) in stats.nodes.iter().enumerate() {
        let v = c.vectors.get() - base[i].0;
        if v == 0 {
            continue;
        }
        let cpp = (c.clocks.get() - base[i].1) as f64 / tx.max(1) as f64;
        total += cpp;
        per_node.push((g.names[i].to_string(), cpp));
    }
    let fwd_clocks = per_node
        .iter()
        .filter(|(n, _)| FORWARDING_NODES.contains(&n.as_str()))
        .map(|x| x.1)
        .sum();
    Ok(GraphResult {
        mpps: tx as f64 / secs / 1e6,
        per_node,
        fwd_clocks,
        total_clocks: total,
        program_secs,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

pub fn run(args: &[String]) -> Result<serde_json::Value, String> {
    let mut routes = 1usize;
    let mut seconds = 2.0;
    let mut runs = 3usize;
    let mut size = 64usize;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--routes" => routes = val()?.parse().map_err(|_| "bad --routes")?,
            "--seconds" => seconds = val()?.parse().map_err(|_| "bad --seconds")?,
            "--runs" => runs = val()?.parse().map_err(|_| "bad --runs")?,
            "--size" => size = val()?.parse().map_err(|_| "bad --size")?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    if let Some(c) = core_affinity::get_core_ids().and_then(|ids| ids.last().copied()) {
        core_affinity::set_for_current(c);
    }
    let mut results = Vec::new();
    for r in 0..runs.max(1) {
        let res = run_once(routes, seconds, size)?;
        println!(
            "run {}: {:.2} Mpps, forwarding nodes {:.1} clocks/pkt, all nodes {:.1} clocks/pkt (routes programmed in {:.2} s)",
            r + 1,
            res.mpps,
            res.fwd_clocks,
            res.total_clocks,
            res.program_secs
        );
        results.push(res);
    }
    let mpps = median(results.iter().map(|r| r.mpps).collect());
    let fwd = median(results.iter().map(|r| r.fwd_clocks).collect());
    let total = median(results.iter().map(|r| r.total_clocks).collect());
    let mut nodes = serde_json::Map::new();
    for (name, _) in &results[0].per_node {
        let v = median(
            results
                .iter()
                .filter_map(|r| r.per_node.iter().find(|x| &x.0 == name).map(|x| x.1))
                .collect(),
        );
        println!("  {name:<20} {v:>7.1} clocks/pkt");
        nodes.insert(name.clone(), json!((v * 10.0).round() / 10.0));
    }
    println!(
        "median: {mpps:.2} Mpps ({:.2}x VPP's {VPP_MPPS}), forwarding nodes {fwd:.1} clocks/pkt ({:.2}x VPP's {VPP_FWD_CLOCKS}); tsc {:.2} GHz",
        mpps / VPP_MPPS,
        fwd / VPP_FWD_CLOCKS,
        tsc_hz() as f64 / 1e9
    );
    println!(
        "  (VPP figures are the reference numbers measured on this machine class, not in this run)"
    );
    Ok(json!({
        "benchmark": "graph",
        "routes": routes,
        "frame_bytes": size,
        "runs": results.len(),
        "mpps": (mpps * 100.0).round() / 100.0,
        "mpps_runs": results.iter().map(|r| (r.mpps * 100.0).round() / 100.0).collect::<Vec<_>>(),
        "forwarding_clocks_per_packet": (fwd * 10.0).round() / 10.0,
        "all_nodes_clocks_per_packet": (total * 10.0).round() / 10.0,
        "clocks_per_packet": nodes,
        "route_program_seconds": results[0].program_secs,
        "tsc_ghz": tsc_hz() as f64 / 1e9,
        "vpp_reference": {"mpps": VPP_MPPS, "forwarding_clocks_per_packet": VPP_FWD_CLOCKS, "measured_in_this_run": false},
        "ratio_mpps_vs_vpp": (mpps / VPP_MPPS * 100.0).round() / 100.0,
        "ratio_clocks_vs_vpp": (fwd / VPP_FWD_CLOCKS * 100.0).round() / 100.0,
    }))
}
