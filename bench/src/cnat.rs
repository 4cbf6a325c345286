//! `rvpp-bench cnat`: cnat (Kubernetes services) on one core, rvpp's generator into the graph
//! and a null sink, as `rvpp-bench graph` does. Clients 10.0.0.0 + i (one UDP flow each) send
//! 64 B frames to a VIP whose translation has four backends; cnat is on for both interfaces,
//! as calico-vpp enables it, so the path is ethernet-input -> ip4-input -> cnat-input-ip4 ->
//! ip4-lookup -> ip4-rewrite -> cnat-output-ip4 -> null tx.
//!
//! Per flow count, in one run: a new-sessions phase (an empty table sized for the flows;
//! every packet a new flow, so each creates its two session entries), then the established
//! phase over the same flows; next to it the same graph and packets without cnat (the VIP
//! routed as a plain destination), which gives cnat's added clocks per packet; and, with
//! `--vpp-build`, VPP's own cnat on the same core with its pg.

pub const HELP: &str = "rvpp-bench cnat [--flows 10000,100000,1000000] [--seconds S] [--runs N]
    [--size BYTES] [--calico-snat] [--vpp-build DIR] [--json]
  One core, rvpp's generator and null tx. Per flow count: new sessions/s (every packet a new
  flow into an empty table sized for them; drops counted), then established flows: Mpps,
  cnat-input-ip4 / cnat-output-ip4 clocks/packet and the whole path's. Each next to the same
  graph without cnat, run in alternation (cnat's added clocks/packet), and with --vpp-build
  DIR next to VPP's cnat plugin from that build tree (DIR/bin/vpp, DIR/bin/vppctl,
  DIR/lib/x86_64-linux-gnu/vpp_plugins), driven through its CLI with its own pg.
  --calico-snat: rvpp's SNAT configured as calico's agent does (K8S policy, the backends'
  interface in the POD and INCLUDE tables, their /24 and the VIP's excluded, a SNAT address),
  which these flows (from outside to pods) do not match: cnat-output then judges every
  packet by the policy. Not with --vpp-build.";

use crate::graph::{full_core, measure, measure_with, median, Measured, TwoPorts, GEN_MAC, PG_MAC};
use rvpp_dataplane::cnat::node::in_err;
use rvpp_dataplane::cnat::snat::{IfTable, Policy};
use rvpp_dataplane::cnat::translation::{Endpoint, PathEp, Translation};
use rvpp_dataplane::cnat::{Cnat, CnatConfig};
use rvpp_dataplane::feature::FeatureTables;
use rvpp_dataplane::fib::Ip4FibConfig;
use rvpp_dataplane::forwarding::{Path, Prefix};
use rvpp_dataplane::nodes::cnat as cnat_nodes;
use rvpp_dataplane::runtime::Runtime;
use rvpp_drivers::pg::PgStream;
use serde_json::json;
use std::time::Duration;

/// The service: 198.19.255.1, UDP port 5678 (the generator's destination port), four
/// backends 198.19.1.2-5 port 8080, all routed out of null0.
const VIP: u32 = 0xc613_ff01;
const VIP_PORT: u16 = 5678;
const BACKENDS: [u32; 4] = [0xc613_0102, 0xc613_0103, 0xc613_0104, 0xc613_0105];
const BACKEND_PORT: u16 = 8080;
/// Client i is 10.0.0.0 + i (UDP 1234 -> 5678).
const CLIENT_BASE: u32 = 0x0a00_0000;
const MAX_FLOWS: usize = 1 << 24;

/// The targets (#13).
const TARGET_MPPS_10K: f64 = 15.0;
const TARGET_MPPS_1M: f64 = 8.0;
const TARGET_NEW_PER_SEC: f64 = 2e6;
const TARGET_CNAT_CLOCKS: f64 = 30.0;
/// VPP's cnat as published for calico-vpp (2020), Mpps by flow count: a reference, not
/// measured here.
const VPP_PUBLISHED_MPPS: [(usize, f64); 3] = [(10_000, 7.8), (100_000, 5.3), (1_000_000, 2.3)];

const WARMUP: Duration = Duration::from_millis(300);

fn is_cnat(node: &str) -> bool {
    node.starts_with("cnat-")
}

/// The path: every node but the generator's (`pg-input`, in rvpp as in VPP).
fn on_path(node: &str) -> bool {
    node != rvpp_drivers::pg::INPUT_NODE
}

fn clients(flows: usize) -> Vec<u32> {
    (0..flows as u32).map(|i| CLIENT_BASE + i).collect()
}

/// The two-port topology with routes to the VIP's and the backends' /24s, and (`cnat`) a
/// session table sized for `flows`, the translation, and cnat on both interfaces.
fn setup(
    flows: usize,
    with_cnat: bool,
    calico_snat: bool,
) -> Result<(TwoPorts, Runtime, Option<std::sync::Arc<Cnat>>), String> {
    let fib = Ip4FibConfig {
        tbl8_groups: 1 << 12,
        huge_pages: false,
    };
    let mut ports = TwoPorts::new(fib, true)?;
    let (pg, out, nh) = (ports.pg, ports.out, ports.nh);
    for net in [0xc613_0100, VIP & 0xffff_ff00] {
        ports
            .fwd
            .route_add(0, Prefix::V4(net, 24), vec![Path::via(nh, Some(out))])
            .map_err(|e| e.to_string())?;
    }
    let tables = FeatureTables::default();
    let cnat = with_cnat.then(|| {
        // A flow is two entries (forward and return): exactly room for them.
        let c = Cnat::new(CnatConfig {
            max_sessions: 2 * flows,
        });
        let ep = |a: u32, port| Endpoint {
            addr: 0xffff_0000_0000 | a as u128,
            port,
            ip6: false,
        };
        c.translation_update(Translation {
            vip: ep(VIP, VIP_PORT),
            proto: 17,
            paths: BACKENDS
                .iter()
                .map(|&b| PathEp {
                    dst: ep(b, BACKEND_PORT),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        });
        if calico_snat {
            let v4 = |a: u32| 0xffff_0000_0000 | a as u128;
            c.snat_edit(|s| {
                s.ip4 = v4(0xc613_0001);
                s.policy = Policy::K8s;
                for t in [IfTable::Pod, IfTable::IncludeV4] {
                    s.tables.insert(t, out);
                }
                s.exclude.add(v4(0xc613_0100), 96 + 24);
                s.exclude.add(v4(VIP & 0xffff_ff00), 96 + 24);
            });
        }
        tables.insert(c.clone());
        c
    });
    let graph = rvpp_drivers::graph_builder(&tables).build()?;
    if cnat.is_some() {
        ports.fwd.use_features(graph.features.clone());
        for sw in [pg, out] {
            cnat_nodes::feature_enable(&mut ports.fwd, sw, true).map_err(|e| e.to_string())?;
        }
    }
    // Until a phase installs its own stream: a backend's address, which creates no session
    // (no translation matches it), to warm the path up.
    let warm = PgStream::ip4_udp(pg, PG_MAC, GEN_MAC, 0xc612_0002, &BACKENDS[..1], 64);
    let rt = ports.runtime(graph, warm)?;
    Ok((ports, rt, cnat))
}

/// A counter of `node` (its `node_errors!` code).
fn counter(rt: &Runtime, node: &str, code: u16) -> u64 {
    let g = rt.graph();
    g.index(node)
        .and_then(|i| {
            let e = g.error_base[i as usize] as usize + code as usize;
            rt.stats().errors.get(e).map(|c| c.get())
        })
        .unwrap_or(0)
}

/// Packets dropped so far (error-drop's input).
fn dropped(rt: &Runtime) -> u64 {
    rt.graph()
        .index("error-drop")
        .map_or(0, |i| rt.stats().nodes[i as usize].vectors.get())
}

/// Replace pg0's stream.
fn set_stream(rt: &mut Runtime, pg: u32, s: PgStream) -> Result<(), String> {
    rt.remove_rx(pg);
    rt.add_rx(Box::new(s))
}

struct CnatRun {
    /// New-sessions phase: flows created per second (wall), per second of node clocks (as
    /// VPP's figure is taken), created, table-full drops, other drops, cnat-input-ip4's
    /// clocks per new flow.
    new_per_sec: f64,
    new_per_busy_sec: f64,
    created: u64,
    full_drops: u64,
    new_other_drops: u64,
    new_input_clocks: f64,
    est: Measured,
    /// Sessions created and packets dropped during the established phase (both should be 0).
    est_created: u64,
    est_drops: u64,
    probe: f64,
}

fn run_cnat(flows: usize, seconds: f64, size: usize, snat: bool) -> Result<CnatRun, String> {
    let probe0 = crate::env::cpu_probe();
    let (ports, mut rt, cnat) = setup(flows, true, snat)?;
    let cnat = cnat.ok_or("no cnat")?;
    let (pg, out) = (ports.pg, ports.out);
    let input = cnat_nodes::CnatInput::IP4;
    let warm = std::time::Instant::now();
    while warm.elapsed() < WARMUP {
        rt.poll();
    }
    if !cnat.sessions.is_empty() {
        return Err("the warm-up created cnat sessions".into());
    }
    let srcs = clients(flows);
    let new = PgStream::ip4_udp_sources(pg, PG_MAC, GEN_MAC, &srcs, VIP, size).limit(flows as u64);
    set_stream(&mut rt, pg, new)?;
    let full = |rt: &Runtime| {
        counter(rt, input, in_err::SESSIONS_FULL) + counter(rt, input, in_err::NO_SLOT)
    };
    let (c0, f0, d0) = (
        counter(&rt, input, in_err::NEW_SESSIONS),
        full(&rt),
        dropped(&rt),
    );
    let m = measure_with(&mut rt, out, |rt| while rt.poll() > 0 {});
    let created = counter(&rt, input, in_err::NEW_SESSIONS) - c0;
    let full_drops = full(&rt) - f0;
    let new_other_drops = dropped(&rt) - d0 - full_drops;
    let tsc = rvpp_dataplane::runtime::tsc_hz() as f64;
    let per_pkt = created as f64 / m.packets.max(1) as f64;
    let new_per_busy_sec = per_pkt * tsc / m.clocks_of(on_path).max(1e-9);
    let new_input_clocks = m.clocks_of(|n| n == input);
    let new_per_sec = created as f64 / m.secs.max(1e-9);

    let est = PgStream::ip4_udp_sources(pg, PG_MAC, GEN_MAC, &srcs, VIP, size);
    set_stream(&mut rt, pg, est)?;
    let (c1, d1) = (counter(&rt, input, in_err::NEW_SESSIONS), dropped(&rt));
    let est = measure(&mut rt, out, WARMUP, seconds);
    Ok(CnatRun {
        new_per_sec,
        new_per_busy_sec,
        created,
        full_drops,
        new_other_drops,
        new_input_clocks,
        est_created: counter(&rt, input, in_err::NEW_SESSIONS) - c1,
        est_drops: dropped(&rt) - d1,
        est,
        probe: probe0.max(crate::env::cpu_probe()),
    })
}

struct PlainRun {
    m: Measured,
    probe: f64,
}

/// The peer: the same graph and packets, cnat off (the VIP is a plain routed destination).
fn run_plain(flows: usize, seconds: f64, size: usize) -> Result<PlainRun, String> {
    let probe0 = crate::env::cpu_probe();
    let (ports, mut rt, _) = setup(flows, false, false)?;
    let s = PgStream::ip4_udp_sources(ports.pg, PG_MAC, GEN_MAC, &clients(flows), VIP, size);
    set_stream(&mut rt, ports.pg, s)?;
    let m = measure(&mut rt, ports.out, WARMUP, seconds);
    if let Some(n) = m.off_path() {
        return Err(format!(
            "the plain peer's packets reached {n}: its path is broken"
        ));
    }
    Ok(PlainRun {
        m,
        probe: probe0.max(crate::env::cpu_probe()),
    })
}

fn r1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
fn r2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The target a flow count's Mpps is held to, if the issue sets one.
fn mpps_target(flows: usize) -> Option<f64> {
    match flows {
        10_000 => Some(TARGET_MPPS_10K),
        1_000_000 => Some(TARGET_MPPS_1M),
        _ => None,
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "not met"
    }
}

/// Each node's median clocks per packet over `runs` (the nodes of the first).
fn node_medians(runs: &[&Measured]) -> serde_json::Map<String, serde_json::Value> {
    runs.first().map_or_else(Default::default, |first| {
        first
            .per_node
            .iter()
            .map(|(n, _)| {
                let v = median(runs.iter().map(|m| m.clocks_of(|x| x == n)).collect());
                (n.clone(), json!(r1(v)))
            })
            .collect()
    })
}

/// One flow count's figures: medians over full-core runs, ratios to the peers.
fn summarize(
    flows: usize,
    cn: &[CnatRun],
    plain: &[PlainRun],
    vpp: &[vpp::VppRun],
    best_probe: f64,
) -> serde_json::Value {
    let (cs, _) = full_core(cn, |r| r.probe, best_probe);
    let (ps, _) = full_core(plain, |r| r.probe, best_probe);
    let med = |f: &dyn Fn(&CnatRun) -> f64| median(cs.iter().map(|r| f(r)).collect());
    let pmed = |f: &dyn Fn(&PlainRun) -> f64| median(ps.iter().map(|r| f(r)).collect());
    let mpps = med(&|r| r.est.mpps);
    let input = med(&|r| r.est.clocks_of(|n| n == cnat_nodes::CnatInput::IP4));
    let output = med(&|r| r.est.clocks_of(|n| n == cnat_nodes::CnatOutput::IP4));
    let cnat_clocks = med(&|r| r.est.clocks_of(is_cnat));
    let path = med(&|r| r.est.clocks_of(on_path));
    let new_per_sec = med(&|r| r.new_per_sec);
    let new_busy = med(&|r| r.new_per_busy_sec);
    let new_input = med(&|r| r.new_input_clocks);
    let p_mpps = pmed(&|r| r.m.mpps);
    let p_path = pmed(&|r| r.m.clocks_of(on_path));
    // Added clocks: per run, cnat's path minus the plain run right after it, over the pairs
    // that both ran on a full core.
    let pairs: Vec<(&CnatRun, &PlainRun)> = cn.iter().zip(plain).collect();
    let (pairs, _) = full_core(&pairs, |(c, p)| c.probe.max(p.probe), best_probe);
    let added = median(
        pairs
            .iter()
            .map(|(c, p)| c.est.clocks_of(on_path) - p.m.clocks_of(on_path))
            .collect(),
    );
    let created: u64 = cn.iter().map(|r| r.created).min().unwrap_or(0);
    let full_drops: u64 = cn.iter().map(|r| r.full_drops).sum();
    let other_drops: u64 = cn.iter().map(|r| r.new_other_drops + r.est_drops).sum();
    let est_created: u64 = cn.iter().map(|r| r.est_created).sum();
    println!("{flows} flows:");
    println!(
        "  rvpp cnat   {mpps:6.2} Mpps  cnat-input-ip4 {input:5.1} + cnat-output-ip4 {output:5.1} = {cnat_clocks:5.1} clocks/pkt, path {path:5.1} clocks/pkt"
    );
    println!(
        "  plain ip4   {p_mpps:6.2} Mpps  path {p_path:5.1} clocks/pkt; cnat/plain {:.2}x Mpps, cnat adds {added:.1} clocks/pkt",
        mpps / p_mpps
    );
    println!(
        "  new sessions {:.2} M/s (wall; {:.2} M/s of node clocks), cnat-input-ip4 {new_input:.1} clocks per new flow; {created} of {flows} created, {full_drops} table-full drops, {other_drops} other drops, {est_created} created while established",
        new_per_sec / 1e6,
        new_busy / 1e6
    );
    let vpp_json = (!vpp.is_empty()).then(|| {
        let (vs, _) = full_core(vpp, |r| r.probe, best_probe);
        let vmed = |f: &dyn Fn(&vpp::VppRun) -> f64| median(vs.iter().map(|r| f(r)).collect());
        let v_mpps = vmed(&|r| r.est.mpps);
        let v_cnat = vmed(&|r| r.est.clocks_of(is_cnat));
        let v_path = vmed(&|r| r.est.clocks_of(on_path));
        let v_new = vmed(&|r| r.new_per_busy_sec);
        println!(
            "  VPP cnat    {v_mpps:6.2} Mpps  cnat nodes {v_cnat:5.1} clocks/pkt, path {v_path:5.1} clocks/pkt, new sessions {:.2} M/s of node clocks; rvpp/VPP {:.2}x Mpps, {:.2}x cnat clocks, {:.2}x new sessions",
            v_new / 1e6,
            mpps / v_mpps,
            cnat_clocks / v_cnat,
            new_busy / v_new
        );
        let nodes = node_medians(&vs.iter().map(|r| &r.est).collect::<Vec<_>>());
        json!({
            "what": "VPP's cnat plugin, its pg on the same core, cnat on both pg interfaces, interleaved with rvpp's runs",
            "mpps": r2(v_mpps),
            "mpps_runs": vpp.iter().map(|r| r2(r.est.mpps)).collect::<Vec<_>>(),
            "cnat_clocks_per_packet": r1(v_cnat),
            "path_clocks_per_packet": r1(v_path),
            "clocks_per_packet": nodes,
            "new_sessions_per_busy_second": v_new.round(),
            "new_sessions_created_min": vpp.iter().map(|r| r.created).min(),
            "ratio_rvpp_mpps_to_vpp": r2(mpps / v_mpps),
            "ratio_rvpp_cnat_clocks_to_vpp": r2(cnat_clocks / v_cnat),
            "ratio_rvpp_new_sessions_to_vpp": r2(new_busy / v_new),
        })
    });
    let published = VPP_PUBLISHED_MPPS
        .iter()
        .find(|x| x.0 == flows)
        .map(|x| x.1);
    if let Some(p) = published {
        println!("  reference (not this run): VPP cnat {p} Mpps published for calico-vpp (2020); rvpp {:.2}x", mpps / p);
    }
    let target = mpps_target(flows);
    let mut targets = vec![
        format!(
            "cnat nodes <= {TARGET_CNAT_CLOCKS} clocks/pkt: {}",
            verdict(cnat_clocks <= TARGET_CNAT_CLOCKS)
        ),
        format!(
            "new sessions >= {} M/s: {}",
            TARGET_NEW_PER_SEC / 1e6,
            verdict(new_per_sec >= TARGET_NEW_PER_SEC)
        ),
    ];
    if let Some(t) = target {
        targets.insert(0, format!("{t} Mpps: {}", verdict(mpps >= t)));
    }
    println!("  targets: {}", targets.join("; "));
    let nodes = node_medians(&cs.iter().map(|r| &r.est).collect::<Vec<_>>());
    json!({
        "flows": flows,
        "mpps": r2(mpps),
        "mpps_runs": cn.iter().map(|r| r2(r.est.mpps)).collect::<Vec<_>>(),
        "cnat_input_ip4_clocks_per_packet": r1(input),
        "cnat_output_ip4_clocks_per_packet": r1(output),
        "cnat_clocks_per_packet": r1(cnat_clocks),
        "path_clocks_per_packet": r1(path),
        "clocks_per_packet": nodes,
        "cpu_probe_runs": cn.iter().map(|r| r2(r.probe)).collect::<Vec<_>>(),
        "new_sessions": {
            "per_second": new_per_sec.round(),
            "per_busy_second": new_busy.round(),
            "per_second_runs": cn.iter().map(|r| r.new_per_sec.round()).collect::<Vec<_>>(),
            "cnat_input_ip4_clocks_per_new_flow": r1(new_input),
            "created_min": created,
            "table_full_drops": full_drops,
            "other_drops": other_drops,
            "created_while_established": est_created,
            "table_limit_entries": 2 * flows,
        },
        "peer_plain_ip4": {
            "what": "the same rvpp graph and packets with cnat off (VIP routed as a plain destination), interleaved",
            "mpps": r2(p_mpps),
            "mpps_runs": plain.iter().map(|r| r2(r.m.mpps)).collect::<Vec<_>>(),
            "path_clocks_per_packet": r1(p_path),
            "ratio_cnat_mpps_to_plain": r2(mpps / p_mpps),
            "cnat_added_clocks_per_packet": r1(added),
        },
        "peer_vpp": vpp_json,
        "vpp_published_mpps": published.map(|p| json!({
            "measured_in_this_run": false,
            "source": "VPP cnat for calico-vpp, 2020",
            "mpps": p,
            "ratio_rvpp_to_published": r2(mpps / p),
        })),
        "targets": {
            "mpps": target,
            "mpps_met": target.map(|t| mpps >= t),
            "cnat_clocks_per_packet": TARGET_CNAT_CLOCKS,
            "cnat_clocks_met": cnat_clocks <= TARGET_CNAT_CLOCKS,
            "new_sessions_per_second": TARGET_NEW_PER_SEC,
            "new_sessions_met": new_per_sec >= TARGET_NEW_PER_SEC,
        },
    })
}

/// One run's line.
fn print_run(r: usize, flows: usize, what: &str, m: &Measured, extra: &str, probe: f64) {
    let cnat = if m.per_node.iter().any(|(n, _)| is_cnat(n)) {
        format!("cnat nodes {:.1} clocks/pkt, ", m.clocks_of(is_cnat))
    } else {
        String::new()
    };
    println!(
        "run {} [{flows} flows, {what}]: {:.2} Mpps, {cnat}path {:.1} clocks/pkt{extra}; cpu probe {probe:.2}",
        r + 1,
        m.mpps,
        m.clocks_of(on_path),
    );
}

pub fn run(args: &[String]) -> Result<serde_json::Value, String> {
    let mut flows = vec![10_000usize, 100_000, 1_000_000];
    let mut seconds = 2.0;
    let mut runs = 3usize;
    let mut size = 64usize;
    let mut vpp_build: Option<std::path::PathBuf> = None;
    let mut calico_snat = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--flows" => {
                flows = val()?
                    .split(',')
                    .map(|f| f.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| "bad --flows (a comma-separated list of counts)")?;
                if flows.iter().any(|&f| f == 0 || f > MAX_FLOWS) {
                    return Err(format!("--flows: each count in 1..={MAX_FLOWS}"));
                }
            }
            "--seconds" => seconds = val()?.parse().map_err(|_| "bad --seconds")?,
            "--runs" => runs = val()?.parse().map_err(|_| "bad --runs")?,
            "--size" => size = val()?.parse().map_err(|_| "bad --size")?,
            "--vpp-build" => vpp_build = Some(val()?.into()),
            "--calico-snat" => calico_snat = true,
            "--help" | "-h" => {
                println!("{HELP}");
                return Ok(json!({"benchmark": "cnat", "help": true}));
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    if flows.is_empty() {
        return Err("--flows is empty".into());
    }
    if calico_snat && vpp_build.is_some() {
        return Err("--calico-snat is rvpp-only: VPP's run has no SNAT policy".into());
    }
    println!(
        "targets (issue #13): >= {TARGET_MPPS_10K} Mpps at 10k flows, >= {TARGET_MPPS_1M} Mpps at 1M, >= {} M new sessions/s, cnat nodes <= {TARGET_CNAT_CLOCKS} clocks/pkt on established flows; VPP cnat published 7.8 / 5.3 / 2.3 Mpps at 10k / 100k / 1M flows (calico, 2020)",
        TARGET_NEW_PER_SEC / 1e6
    );
    let core = core_affinity::get_core_ids().and_then(|ids| ids.last().copied());
    if let Some(c) = core {
        core_affinity::set_for_current(c);
    }
    let core = core.map_or(0, |c| c.id);
    let max_flows = flows.iter().copied().max().unwrap_or(0);
    let vpp = match &vpp_build {
        Some(dir) => Some(vpp::Vpp::start(dir, core, max_flows)?),
        None => None,
    };
    let n = flows.len();
    let mut cn: Vec<Vec<CnatRun>> = (0..n).map(|_| Vec::new()).collect();
    let mut plain: Vec<Vec<PlainRun>> = (0..n).map(|_| Vec::new()).collect();
    let mut vr: Vec<Vec<vpp::VppRun>> = (0..n).map(|_| Vec::new()).collect();
    for r in 0..runs.max(1) {
        for (k, &f) in flows.iter().enumerate() {
            let c = run_cnat(f, seconds, size, calico_snat)?;
            let extra = format!(
                "; new sessions {:.2} M/s, {} created, {} table-full drops",
                c.new_per_sec / 1e6,
                c.created,
                c.full_drops
            );
            print_run(r, f, "rvpp cnat", &c.est, &extra, c.probe);
            cn[k].push(c);
            let p = run_plain(f, seconds, size)?;
            print_run(r, f, "rvpp plain ip4", &p.m, "", p.probe);
            plain[k].push(p);
            if let Some(v) = &vpp {
                let x = v.run(f, seconds, size)?;
                let extra = format!(
                    "; new sessions {:.2} M/s of node clocks, {} created",
                    x.new_per_busy_sec / 1e6,
                    x.created
                );
                print_run(r, f, "VPP cnat", &x.est, &extra, x.probe);
                vr[k].push(x);
            }
        }
    }
    drop(vpp);
    let best_probe = cn
        .iter()
        .flatten()
        .map(|r| r.probe)
        .chain(plain.iter().flatten().map(|r| r.probe))
        .chain(vr.iter().flatten().map(|r| r.probe))
        .fold(f64::INFINITY, f64::min);
    let by_flows: Vec<serde_json::Value> = (0..n)
        .map(|k| summarize(flows[k], &cn[k], &plain[k], &vr[k], best_probe))
        .collect();
    Ok(json!({
        "benchmark": "cnat",
        "path": "ethernet-input -> ip4-input -> cnat-input-ip4 -> ip4-lookup -> ip4-rewrite -> cnat-output-ip4 -> null tx (cnat on both interfaces)",
        "traffic": "UDP 10.0.0.0+i:1234 -> VIP 198.19.255.1:5678, one flow per client, four backends 198.19.1.2-5:8080",
        "snat": if calico_snat { "calico's K8S policy, the flows not matching it" } else { "none configured" },
        "frame_bytes": size,
        "seconds": seconds,
        "runs": runs.max(1),
        "core": core,
        "cpu_probe_best": r2(best_probe),
        "median_of": "runs whose cpu probe is within 1.4x of the best (all runs when fewer than two are)",
        "clocks_are": "TSC clocks per packet sent, from the runtime's per-node counters; path = every node but the generator's",
        "new_sessions_are": "a phase of its own before the established one: the flows' first packets into an empty table with room for exactly their 2 entries each; per_second by wall time, per_busy_second by the path's node clocks (as VPP's figure is taken)",
        "by_flows": by_flows,
    }))
}

/// VPP's cnat as the peer: a VPP from a build tree, started with its own startup.conf in a
/// temporary directory, driven through vppctl.
mod vpp {
    use super::{clients, Measured, BACKENDS, BACKEND_PORT, CLIENT_BASE, VIP, VIP_PORT};
    use std::net::Ipv4Addr;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    pub struct VppRun {
        /// The established phase, from `show runtime` (nodes with vectors).
        pub est: Measured,
        pub new_per_busy_sec: f64,
        /// Flows the new-sessions phase created (half the table's entries).
        pub created: u64,
        pub probe: f64,
    }

    pub struct Vpp {
        child: Child,
        dir: PathBuf,
        vppctl: PathBuf,
        sock: PathBuf,
    }

    /// One row of `show runtime`: name, calls, vectors, clocks per vector.
    struct Row {
        name: String,
        vectors: u64,
        clocks: f64,
    }

    /// `show runtime`'s rows with vectors (the last five columns are numbers: calls,
    /// vectors, suspends, clocks, vectors/call; the state in between may be two words).
    fn parse_runtime(text: &str) -> Vec<Row> {
        text.lines()
            .filter_map(|l| {
                let t: Vec<&str> = l.split_whitespace().collect();
                if t.len() < 7 {
                    return None;
                }
                let nums = &t[t.len() - 5..];
                let vectors: u64 = nums[1].parse().ok()?;
                let clocks: f64 = nums[3].parse().ok()?;
                nums[0].parse::<u64>().ok()?;
                (vectors > 0).then(|| Row {
                    name: t[0].to_string(),
                    vectors,
                    clocks,
                })
            })
            .collect()
    }

    impl Vpp {
        pub fn start(build: &Path, core: usize, max_flows: usize) -> Result<Self, String> {
            let bin = build.join("bin/vpp");
            let vppctl = build.join("bin/vppctl");
            let plugins = build.join("lib/x86_64-linux-gnu/vpp_plugins");
            for p in [&bin, &vppctl, &plugins] {
                if !p.exists() {
                    return Err(format!("--vpp-build: {} not found", p.display()));
                }
            }
            let dir =
                std::env::temp_dir().join(format!("rvpp-bench-cnat-vpp-{}", std::process::id()));
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            let sock = dir.join("cli.sock");
            // 2 MiB pages when enough are free for the buffers (128000 x ~2.3 KiB).
            let huge_free = std::fs::read_to_string("/proc/meminfo")
                .ok()
                .and_then(|m| {
                    m.lines()
                        .find(|l| l.starts_with("HugePages_Free:"))
                        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                })
                .unwrap_or(0);
            let buffers = if huge_free >= 200 {
                "buffers { buffers-per-numa 128000 page-size 2M }"
            } else {
                "buffers { buffers-per-numa 128000 page-size 4K }"
            };
            let conf = format!(
                "unix {{ nodaemon cli-listen {sock} log {log} }}
api-segment {{ prefix rvpp-bench-cnat-{pid} }}
socksvr {{ socket-name {dir}/api.sock }}
statseg {{ socket-name {dir}/stats.sock }}
cpu {{ main-core {core} }}
{buffers}
plugins {{ path {plugins} plugin default {{ disable }} plugin cnat_plugin.so {{ enable }} plugin af_packet_plugin.so {{ enable }} plugin ping_plugin.so {{ enable }} plugin perfmon_plugin.so {{ enable }} }}
cnat {{ session-max {smax} scanner off }}
",
                sock = sock.display(),
                log = dir.join("vpp.log").display(),
                pid = std::process::id(),
                dir = dir.display(),
                plugins = plugins.display(),
                // A flow is one timestamp and two entries; room for the largest count.
                smax = (2 * max_flows).max(1 << 16),
            );
            let conf_path = dir.join("startup.conf");
            std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
            let child = Command::new(&bin)
                .arg("-c")
                .arg(&conf_path)
                .stdout(Stdio::from(
                    std::fs::File::create(dir.join("stdout")).map_err(|e| e.to_string())?,
                ))
                .stderr(Stdio::from(
                    std::fs::File::create(dir.join("stderr")).map_err(|e| e.to_string())?,
                ))
                .spawn()
                .map_err(|e| format!("{}: {e}", bin.display()))?;
            let mut v = Self {
                child,
                dir,
                vppctl,
                sock,
            };
            let t0 = Instant::now();
            loop {
                if let Ok(Some(st)) = v.child.try_wait() {
                    return Err(format!(
                        "VPP exited ({st}) at start; its output ends:\n{}",
                        v.log_tail()
                    ));
                }
                if v.sock.exists() && v.cli("show version").is_ok() {
                    break;
                }
                if t0.elapsed() > Duration::from_secs(20) {
                    return Err(format!(
                        "VPP's CLI socket did not come up in 20 s; its output ends:\n{}",
                        v.log_tail()
                    ));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            v.configure()?;
            v.signal("STOP")?;
            Ok(v)
        }

        /// Stop (`STOP`) or continue (`CONT`) VPP: it is stopped between its own runs, so its
        /// main loop takes nothing from rvpp's runs on the same core.
        fn signal(&self, sig: &str) -> Result<(), String> {
            let st = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(self.child.id().to_string())
                .status()
                .map_err(|e| e.to_string())?;
            st.success()
                .then_some(())
                .ok_or_else(|| format!("kill -{sig} VPP failed"))
        }

        /// The last lines of VPP's log, stdout and stderr (the directory goes with `self`).
        fn log_tail(&self) -> String {
            ["vpp.log", "stdout", "stderr"]
                .iter()
                .filter_map(|f| std::fs::read_to_string(self.dir.join(f)).ok())
                .flat_map(|t| {
                    let lines: Vec<String> = t.lines().map(str::to_string).collect();
                    let from = lines.len().saturating_sub(15);
                    lines[from..].to_vec()
                })
                .collect::<Vec<_>>()
                .join("\n")
        }

        /// One CLI command; VPP's error text (or an unknown command) is an error.
        pub fn cli(&self, cmd: &str) -> Result<String, String> {
            let out = Command::new(&self.vppctl)
                .arg("-s")
                .arg(&self.sock)
                .arg(cmd)
                .output()
                .map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if !out.status.success()
                || text.contains("unknown input")
                || text.contains("parse error")
                || text.starts_with("error")
            {
                return Err(format!("vppctl {cmd}: {}", text.trim()));
            }
            Ok(text)
        }

        /// pg0 (rx, 198.18.0.1/24) and pg1 (tx, 198.19.0.1/24, neighbour 198.19.0.2), the
        /// routes, the translation, cnat on both.
        fn configure(&self) -> Result<(), String> {
            let ip = |a: u32| Ipv4Addr::from(a).to_string();
            let mut cmds = vec![
                "create packet-generator interface pg0 hw-addr 02:fe:00:00:00:01".to_string(),
                "create packet-generator interface pg1 hw-addr 02:fe:00:00:00:02".to_string(),
                "set interface ip address pg0 198.18.0.1/24".to_string(),
                "set interface ip address pg1 198.19.0.1/24".to_string(),
                "set interface state pg0 up".to_string(),
                "set interface state pg1 up".to_string(),
                "ip neighbor pg1 198.19.0.2 02:00:00:00:00:09 static".to_string(),
                "ip route add 198.19.1.0/24 via 198.19.0.2 pg1".to_string(),
                format!(
                    "ip route add {}/24 via 198.19.0.2 pg1",
                    ip(VIP & 0xffff_ff00)
                ),
            ];
            // `default`: flow-hash load balancing, as rvpp's translation (the CLI leaves the
            // type unset without it).
            let mut tr = format!(
                "cnat translation add proto udp real {} {VIP_PORT} default",
                ip(VIP)
            );
            for b in BACKENDS {
                tr += &format!(" to ->{} {BACKEND_PORT}", ip(b));
            }
            cmds.push(tr);
            cmds.push("set cnat feature pg0 enable".into());
            cmds.push("set cnat feature pg1 enable".into());
            for c in &cmds {
                self.cli(c)?;
            }
            Ok(())
        }

        fn stream(
            &self,
            name: &str,
            flows: usize,
            limit: usize,
            size: usize,
        ) -> Result<(), String> {
            let ip = |a: u32| Ipv4Addr::from(a).to_string();
            let last = clients(flows).last().copied().unwrap_or(CLIENT_BASE);
            let payload = size.saturating_sub(14 + 20 + 8);
            self.cli(&format!(
                "packet-generator new {{ name {name} limit {limit} size {size}-{size} node ethernet-input source pg0 data {{ IP4: 02:00:00:00:00:07 -> 02:fe:00:00:00:01 UDP: {}-{} -> {} UDP: 1234 -> {VIP_PORT} incrementing {payload} }} }}",
                ip(CLIENT_BASE),
                ip(last),
                ip(VIP)
            ))
            .map(|_| ())
        }

        fn runtime_rows(&self) -> Result<Vec<Row>, String> {
            Ok(parse_runtime(&self.cli("show runtime")?))
        }

        /// Clocks per packet sent out of pg1, per node (pg1-tx's vectors are the packets).
        fn per_node(rows: &[Row]) -> (u64, Vec<(String, f64)>) {
            let tx = rows
                .iter()
                .find(|r| r.name == "pg1-tx")
                .map_or(0, |r| r.vectors);
            let per = rows
                .iter()
                .map(|r| {
                    (
                        r.name.clone(),
                        r.clocks * r.vectors as f64 / tx.max(1) as f64,
                    )
                })
                .collect();
            (tx, per)
        }

        /// New sessions (every packet a new flow into an empty table), then established flows.
        pub fn run(&self, flows: usize, seconds: f64, size: usize) -> Result<VppRun, String> {
            let probe0 = crate::env::cpu_probe();
            self.signal("CONT")?;
            let r = self.run_continued(flows, seconds, size);
            self.signal("STOP")?;
            let mut r = r?;
            r.probe = probe0.max(crate::env::cpu_probe());
            Ok(r)
        }

        fn run_continued(&self, flows: usize, seconds: f64, size: usize) -> Result<VppRun, String> {
            let _ = self.cli("packet-generator delete new");
            let _ = self.cli("packet-generator delete est");
            self.cli("cnat purge")?;
            self.stream("new", flows, flows, size)?;
            self.cli("clear runtime")?;
            self.cli("packet-generator enable-stream new")?;
            let t0 = Instant::now();
            // Wait for the stream to finish (pg-input's vectors stop growing).
            let mut last = u64::MAX;
            loop {
                std::thread::sleep(Duration::from_millis(100));
                let rows = self.runtime_rows()?;
                let sent = rows
                    .iter()
                    .find(|r| r.name == "pg-input")
                    .map_or(0, |r| r.vectors);
                if sent as usize >= flows && sent == last {
                    break;
                }
                if t0.elapsed() > Duration::from_secs(120) {
                    return Err("VPP's new-flow stream did not finish in 120 s".into());
                }
                last = sent;
            }
            let rows = self.runtime_rows()?;
            let (tx, per) = Self::per_node(&rows);
            let path: f64 = per
                .iter()
                .filter(|(n, _)| super::on_path(n))
                .map(|x| x.1)
                .sum();
            // Flows created: the session table's entries, two per flow.
            let sessions = self.cli("show cnat session")?;
            let entries: u64 = sessions
                .lines()
                .find_map(|l| {
                    let t: Vec<&str> = l.split_whitespace().collect();
                    let i = t.windows(2).position(|w| w == ["active", "elements"])?;
                    t.get(i.checked_sub(1)?)?.parse().ok()
                })
                .unwrap_or(0);
            let created = (entries / 2).min(tx);
            let tsc = rvpp_dataplane::runtime::tsc_hz() as f64;
            let new_per_busy_sec = created as f64 / tx.max(1) as f64 * tsc / path.max(1e-9);
            self.cli("packet-generator delete new")?;
            self.stream("est", flows, 0, size)?;
            self.cli("packet-generator enable-stream est")?;
            std::thread::sleep(super::WARMUP);
            self.cli("clear runtime")?;
            let t1 = Instant::now();
            std::thread::sleep(Duration::from_secs_f64(seconds));
            let rows = self.runtime_rows()?;
            let secs = t1.elapsed().as_secs_f64();
            self.cli("packet-generator disable-stream est")?;
            let (tx, per_node) = Self::per_node(&rows);
            if tx == 0 || !per_node.iter().any(|(n, _)| n == "cnat-input-ip4") {
                return Err(format!(
                    "VPP sent {tx} packets out of pg1, cnat-input-ip4 {}; VPP's log ends:\n{}",
                    if per_node.iter().any(|(n, _)| n == "cnat-input-ip4") {
                        "ran"
                    } else {
                        "did not run"
                    },
                    self.log_tail()
                ));
            }
            Ok(VppRun {
                est: Measured {
                    mpps: tx as f64 / secs / 1e6,
                    packets: tx,
                    secs,
                    total_clocks: per_node.iter().map(|x| x.1).sum(),
                    per_node,
                },
                new_per_busy_sec,
                created,
                probe: 0.0,
            })
        }
    }

    impl Drop for Vpp {
        fn drop(&mut self) {
            // SIGKILL ends a stopped process too.
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[cfg(test)]
    mod tests {
        use super::parse_runtime;

        #[test]
        fn runtime_rows_with_vectors() {
            let text = "Thread 0 vpp_main (lcore 1)
Time 2.0, 10 sec internal node vector rate 256.00 loops/sec 30000.00
  vector rates in 5.0e6, out 5.0e6, drop 0.0000e0, punt 0.0000e0
             Name                 State         Calls          Vectors        Suspends         Clocks       Vectors/Call
cnat-input-ip4                   active              39062        10000000               0          1.25e1          256.00
pg1-tx                           active              39062        10000000               0          3.00e0          256.00
unix-epoll-input                 polling              1234               0               0          9.99e3            0.00
api-rx-from-ring                any wait                 0               0               1          4.00e4            0.00
";
            let rows = parse_runtime(text);
            assert_eq!(rows.len(), 2);
            assert_eq!(rows[0].name, "cnat-input-ip4");
            assert_eq!(rows[0].vectors, 10_000_000);
            assert!((rows[0].clocks - 12.5).abs() < 1e-9);
            assert_eq!(rows[1].name, "pg1-tx");
        }
    }
}
