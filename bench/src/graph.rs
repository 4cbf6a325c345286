//! `rvpp-bench graph`: one core, generator -> ethernet-input -> ip4-input -> ip4-lookup ->
//! ip4-rewrite -> null tx, with N random prefixes and destinations spread over them; or, with
//! `--path xconnect`, generator -> ethernet-input -> (L2 cross-connect) interface-output -> null;
//! or, with `--path ip6`, the IPv6 nodes with IPv6 frames to one route (`--routes` is ignored);
//! or, with `--path npol`, the IPv4 path with an allow-all npol policy on the rx interface, so
//! every packet after a flow's first takes the cached-verdict path of npol-rx-ip4; or, with
//! `--path cnat`, 4096 (`--flows`) clients' UDP flows to a service VIP that cnat DNATs to one backend (cnat
//! on both interfaces, as calico enables it), and `--path cnat-npol` the same with allow-all
//! npol policies on the rx side of the clients' interface and the tx side of the backend's,
//! so npol-rx-ip4 and npol-tx-ip4 judge flows cnat has a session for; or, with `--path npol6`,
//! the IPv6 path with the allow-all npol policy on the rx interface (npol-rx-ip6).

pub const HELP: &str =
    "rvpp-bench graph [--path ip4|ip6|xconnect|npol|npol6|cnat|cnat-npol] [--routes N] [--route-mix internet|dpdk]
    [--size BYTES] [--seconds S] [--runs N] [--flows N] [--pages auto|no-hugetlb|both]
    [--testpmd PATH | --no-peer] [--json]
  One core, rvpp's own generator and null tx (--path ip6: IPv6 frames to one route, ::/0;
  --path npol: ip4 with an allow-all npol policy on the rx side, verdicts cached per flow;
  --path npol6: the same on the ip6 path; both to --flows destinations (4096);
  --path cnat: --flows flows (4096) to a VIP DNATed by cnat; cnat-npol: that with allow-all
  npol rx and tx).
  Prints Mpps and each node's clocks/packet, next to
  dpdk-testpmd 5tswap on net_null (same core, same frame size) run in alternation.";

use rvpp_dataplane::buffer::BufferPool;
use rvpp_dataplane::cnat::translation::{Endpoint, PathEp, Translation};
use rvpp_dataplane::cnat::Cnat;
use rvpp_dataplane::feature::FeatureTables;
use rvpp_dataplane::fib::Ip4FibConfig;
use rvpp_dataplane::forwarding::{mask4, Forwarding, Path, Prefix};
use rvpp_dataplane::graph::Graph;
use rvpp_dataplane::nodes::cnat as cnat_nodes;
use rvpp_dataplane::nodes::npol as npol_nodes;
use rvpp_dataplane::npol::rule::{Action, Rule};
use rvpp_dataplane::npol::{IfConfig, Npol, Policy, PolicyDefault};
use rvpp_dataplane::runtime::Runtime;
use rvpp_dataplane::tables::Shared;
use rvpp_drivers::pg::{NullTx, PgStream};
use serde_json::json;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A reference, not a peer: VPP v26.10-rc0 (b575ec2c) figures recorded by hand on this machine
/// class, 2026-12-02 (its own pg, 60-byte packets, one core, the median of three rounds beside
/// this benchmark; bench/README.md). The same-run peer is testpmd.
const VPP_REF_MPPS: f64 = 30.8;
const VPP_REF_FWD_CLOCKS: f64 = 33.2;
const FORWARDING_NODES: [&str; 4] = ["ethernet-input", "ip4-input", "ip4-lookup", "ip4-rewrite"];
const FORWARDING_NODES6: [&str; 4] = ["ethernet-input", "ip6-input", "ip6-lookup", "ip6-rewrite"];
/// The L2 cross-connect path's forwarding nodes: rvpp decides the cross-connect in
/// ethernet-input and interface-output sends (VPP: ethernet-input, l2-input, l2-output).
const XCONNECT_NODES: [&str; 2] = ["ethernet-input", "interface-output"];
const NPOL_NODES: [&str; 5] = [
    "ethernet-input",
    "ip4-input",
    "npol-rx-ip4",
    "ip4-lookup",
    "ip4-rewrite",
];
const NPOL6_NODES: [&str; 5] = [
    "ethernet-input",
    "ip6-input",
    "npol-rx-ip6",
    "ip6-lookup",
    "ip6-rewrite",
];

const CNAT_NODES: [&str; 6] = [
    "ethernet-input",
    "ip4-input",
    "cnat-input-ip4",
    "ip4-lookup",
    "ip4-rewrite",
    "cnat-output-ip4",
];
const CNAT_NPOL_NODES: [&str; 8] = [
    "ethernet-input",
    "ip4-input",
    "cnat-input-ip4",
    "npol-rx-ip4",
    "ip4-lookup",
    "ip4-rewrite",
    "npol-tx-ip4",
    "cnat-output-ip4",
];

/// `--path cnat`/`cnat-npol`: the service (UDP), its one backend and clients (198.18.16.0 on).
const CNAT_VIP: u32 = 0xc613_ff01;
const CNAT_BACKEND: u32 = 0xc613_0102;
const CNAT_CLIENT_BASE: u32 = 0xc612_1000;
/// Clients (one flow each) unless `--flows` says.
const CNAT_FLOWS: u32 = 4096;

/// Which packet path the run measures.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum BenchPath {
    Ip4,
    Ip6,
    Xconnect,
    Npol,
    Npol6,
    Cnat,
    CnatNpol,
}

impl BenchPath {
    fn nodes(self) -> &'static [&'static str] {
        match self {
            BenchPath::Ip4 => &FORWARDING_NODES,
            BenchPath::Ip6 => &FORWARDING_NODES6,
            BenchPath::Xconnect => &XCONNECT_NODES,
            BenchPath::Npol => &NPOL_NODES,
            BenchPath::Npol6 => &NPOL6_NODES,
            BenchPath::Cnat => &CNAT_NODES,
            BenchPath::CnatNpol => &CNAT_NPOL_NODES,
        }
    }

    /// The IPv6 frames and route.
    fn ip6(self) -> bool {
        matches!(self, BenchPath::Ip6 | BenchPath::Npol6)
    }

    fn describe(self) -> &'static str {
        match self {
            BenchPath::Ip4 => "ip4: ethernet-input -> ip4-input -> ip4-lookup -> ip4-rewrite",
            BenchPath::Ip6 => "ip6: ethernet-input -> ip6-input -> ip6-lookup -> ip6-rewrite",
            BenchPath::Xconnect => "l2 xconnect: ethernet-input -> interface-output",
            BenchPath::Npol => {
                "ip4 + npol: ethernet-input -> ip4-input -> npol-rx-ip4 -> ip4-lookup -> ip4-rewrite"
            }
            BenchPath::Npol6 => {
                "ip6 + npol: ethernet-input -> ip6-input -> npol-rx-ip6 -> ip6-lookup -> ip6-rewrite"
            }
            BenchPath::Cnat => {
                "ip4 + cnat: ethernet-input -> ip4-input -> cnat-input-ip4 -> ip4-lookup -> ip4-rewrite -> cnat-output-ip4"
            }
            BenchPath::CnatNpol => {
                "ip4 + cnat + npol: ethernet-input -> ip4-input -> cnat-input-ip4 -> npol-rx-ip4 -> ip4-lookup -> ip4-rewrite -> npol-tx-ip4 -> cnat-output-ip4"
            }
        }
    }
}

/// The IPv6 path's addresses (fd00::/8): rx and tx subnets, the next hop, the source, and the
/// destinations' common upper 96 bits.
const IP6_PG_NET: &str = "fd00:18::1/64";
const IP6_OUT_NET: &str = "fd00:19::1/64";
const IP6_NH: &str = "fd00:19::2";
const IP6_SRC: u128 = 0xfd00_0018_0000_0000_0000_0000_0000_0002;
const IP6_DST_BASE: u128 = 0xfd00_00a0_0000_0000_0000_0000_0000_0000;

/// `sw` gets one rx policy whose one rule allows everything; every default denies.
fn allow_all_policy(n: &Npol, sw: u32) -> Result<(), String> {
    let e = |e: rvpp_dataplane::npol::NpolError| e.to_string();
    let r = n
        .rule_create(Rule {
            action: Action::Allow,
            filters: vec![],
            entries: vec![],
        })
        .map_err(e)?;
    let p = n
        .policy_create(Policy {
            inbound: vec![r],
            outbound: vec![],
        })
        .map_err(e)?;
    n.configure(sw, rx_only(vec![p])).map_err(e)
}

/// `sw` gets one tx policy whose one rule allows everything; every default denies.
fn allow_all_tx_policy(n: &Npol, sw: u32) -> Result<(), String> {
    let e = |e: rvpp_dataplane::npol::NpolError| e.to_string();
    let r = n
        .rule_create(Rule {
            action: Action::Allow,
            filters: vec![],
            entries: vec![],
        })
        .map_err(e)?;
    let p = n
        .policy_create(Policy {
            inbound: vec![],
            outbound: vec![r],
        })
        .map_err(e)?;
    let mut c = rx_only(vec![]);
    c.tx_policies = vec![p];
    n.configure(sw, c).map_err(e)
}

/// The VIP's translation to its one backend (UDP, port kept).
fn cnat_service(c: &Cnat) {
    let ep = |a: u32| Endpoint {
        addr: 0xffff_0000_0000 | a as u128,
        port: 5678,
        ip6: false,
    };
    c.translation_update(Translation {
        vip: ep(CNAT_VIP),
        proto: 17,
        paths: vec![PathEp {
            dst: ep(CNAT_BACKEND),
            ..Default::default()
        }],
        ..Default::default()
    });
}

/// An interface configuration with `policies` on its rx side and every default denying.
pub fn rx_only(policies: Vec<u32>) -> IfConfig {
    let deny = PolicyDefault::Deny;
    IfConfig {
        rx_policies: policies,
        tx_policies: vec![],
        profiles: vec![],
        invert_rx_tx: false,
        policy_default_rx: deny,
        policy_default_tx: deny,
        profile_default_rx: deny,
        profile_default_tx: deny,
    }
}

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
    /// The buffer pool's backing ("hugetlb", "shmem-thp", "normal").
    pub pool_backing: &'static str,
    /// The worse of [`crate::env::cpu_probe`] before and after the run.
    pub probe: f64,
    /// The first destinations the generator cycles through (to check a peer's capture).
    pub first_dsts: Vec<u32>,
    /// The npol paths: the share of npol-rx's packets its front caches allowed (whole run).
    pub front_hit_share: Option<f64>,
}

/// Which routes a run with many of them loads.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum RouteMix {
    /// Internet-like lengths (mostly /24), a random host in each prefix as destinations.
    Internet,
    /// `rvpp-bench fib`'s set (dpdk-test-fib's depth mix, its seed), and 65,536 destinations
    /// drawn as a VPP pcap generated from the same numbers would draw them: a random route, a
    /// random host in it, skipping multicast and 198.18.0.0/15.
    Dpdk,
}

/// The routes and destinations of `mix` with `routes` prefixes.
/// With one route, `hosts` destinations (10.0.0.0 on).
fn routes_and_dsts(mix: RouteMix, routes: usize, hosts: u32) -> (Vec<(u32, u8)>, Vec<u32>) {
    if routes > 1 && mix == RouteMix::Dpdk {
        let mut rng = crate::fib::Rng(crate::fib::DEFAULT_SEED);
        let set = crate::fib::gen_routes(routes, &mut rng);
        let dsts = (0..65_536)
            .map(|_| loop {
                let r = set[(rng.next() % set.len() as u64) as usize];
                let host = if r.len == 32 { 0 } else { u32::MAX >> r.len };
                let dst = r.prefix | (rng.next() as u32 & host);
                if dst < 0xe000_0000 && dst >> 17 != 0xc612_0000 >> 17 {
                    break dst;
                }
            })
            .collect();
        return (set.iter().map(|r| (r.prefix, r.len)).collect(), dsts);
    }
    let prefixes = if routes <= 1 {
        vec![(0u32, 0u8)]
    } else {
        random_prefixes(routes, 0x5eed)
    };
    // Destinations spread over the prefixes: one random host in each (up to 1M of them).
    let mut rng = Rng(0xd57);
    let mut dsts: Vec<u32> = if routes <= 1 {
        (0..hosts.max(1)).map(|i| 0x0a00_0000 + i).collect()
    } else {
        prefixes
            .iter()
            .take(1 << 20)
            .map(|&(a, l)| a | (rng.next() as u32 & !mask4(l)))
            .collect()
    };
    for i in (1..dsts.len()).rev() {
        dsts.swap(i, rng.next() as usize % (i + 1));
    }
    (prefixes, dsts)
}

/// The two-port topology the graph benchmarks share: pg0 (198.18.0.1/24, the generator's
/// interface) and null0 (198.19.0.1/24, a null sink) with a static neighbour 198.19.0.2
/// behind it, both up.
pub struct TwoPorts {
    pub pool: Arc<BufferPool>,
    pub shared: Arc<Shared>,
    pub fwd: Forwarding,
    pub pg: u32,
    pub out: u32,
    /// 198.19.0.2, the next hop on null0.
    pub nh: IpAddr,
}

/// pg0's MAC (the generator's destination) and the generator's own source MAC.
pub const PG_MAC: [u8; 6] = [2, 0xfe, 0, 0, 0, 1];
pub const GEN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 7];

impl TwoPorts {
    pub fn new(fib: Ip4FibConfig, try_hugetlb: bool) -> Result<Self, String> {
        let pool = BufferPool::with_backing(16384, 2048, try_hugetlb).map_err(|e| e.to_string())?;
        let shared = Shared::new();
        let mut fwd = Forwarding::with_fib_config(shared.clone(), fib);
        let pg = fwd
            .interface_add("pg0", "pg", PG_MAC, true, 9000)
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
        Ok(Self {
            pool,
            shared,
            fwd,
            pg,
            out,
            nh,
        })
    }

    /// A runtime on `graph` with `stream` on pg0 and a null sink on null0.
    pub fn runtime(&self, graph: Graph, stream: PgStream) -> Result<Runtime, String> {
        let mut rt = Runtime::new(
            graph,
            self.pool.local(),
            self.shared.clone(),
            0,
            "bench".into(),
        )?;
        rt.add_rx(Box::new(stream))?;
        rt.set_tx(self.out, Box::new(NullTx::default()))?;
        Ok(rt)
    }
}

/// Nodes a forwarded packet never visits: a run that reached one measured a broken path.
pub const OFF_PATH_NODES: [&str; 3] = ["ip4-arp", "ip6-discover", "error-drop"];

impl Measured {
    /// The first of [`OFF_PATH_NODES`] that ran in this stretch.
    pub fn off_path(&self) -> Option<&str> {
        self.per_node
            .iter()
            .map(|(n, _)| n.as_str())
            .find(|n| OFF_PATH_NODES.contains(n))
    }
}

/// What one timed stretch of a runtime measured.
pub struct Measured {
    pub mpps: f64,
    /// Packets sent out of the measured interface, and the wall time.
    pub packets: u64,
    pub secs: f64,
    /// Clocks per packet sent, of every node that ran, in graph order.
    pub per_node: Vec<(String, f64)>,
    /// Their sum.
    pub total_clocks: f64,
}

impl Measured {
    /// The sum of the clocks per packet of the nodes `keep` selects.
    pub fn clocks_of(&self, keep: impl Fn(&str) -> bool) -> f64 {
        // A fold from +0.0: an empty f64 sum is -0.0.
        self.per_node
            .iter()
            .filter(|(n, _)| keep(n))
            .fold(0.0, |a, x| a + x.1)
    }
}

/// Warm `rt` up for `warmup`, then run it for `seconds` from a clean baseline; clocks are
/// per packet sent out of `out`.
pub fn measure(rt: &mut Runtime, out: u32, warmup: Duration, seconds: f64) -> Measured {
    let warm = Instant::now();
    while warm.elapsed() < warmup {
        rt.poll();
    }
    let dur = Duration::from_secs_f64(seconds);
    measure_with(rt, out, |rt| {
        let start = Instant::now();
        while start.elapsed() < dur {
            for _ in 0..64 {
                rt.poll();
            }
        }
    })
}

/// Run `run` on `rt` and measure it: wall time, packets sent out of `out`, every node's
/// clocks per packet sent.
pub fn measure_with(rt: &mut Runtime, out: u32, run: impl FnOnce(&mut Runtime)) -> Measured {
    let stats = rt.stats();
    let base: Vec<(u64, u64)> = stats
        .nodes
        .iter()
        .map(|c| (c.vectors.get(), c.clocks.get()))
        .collect();
    let tx0 = stats.ifs[out as usize].tx_packets.get();
    let start = Instant::now();
    run(rt);
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
    Measured {
        mpps: tx as f64 / secs / 1e6,
        packets: tx,
        secs,
        per_node,
        total_clocks: total,
    }
}

pub fn run_once(
    path: BenchPath,
    routes: usize,
    mix: RouteMix,
    seconds: f64,
    size: usize,
    try_hugetlb: bool,
    flows: u32,
) -> Result<GraphResult, String> {
    let probe_before = crate::env::cpu_probe();
    let cfg = Ip4FibConfig {
        tbl8_groups: (routes as u32 / 2).max(1 << 12),
        huge_pages: routes > 100_000,
    };
    let mut ports = TwoPorts::new(cfg, try_hugetlb)?;
    let (pg, out, nh) = (ports.pg, ports.out, ports.nh);
    let fwd = &mut ports.fwd;
    let cnat = matches!(path, BenchPath::Cnat | BenchPath::CnatNpol);
    // The npol paths' flows are their destinations (--flows, 4096 as the other paths have).
    let npol = matches!(path, BenchPath::Npol | BenchPath::Npol6);
    let hosts = if npol { flows } else { CNAT_FLOWS };
    let (prefixes, dsts) = routes_and_dsts(mix, if path.ip6() { 1 } else { routes }, hosts);
    let first_dsts = dsts.iter().take(3).copied().collect();
    let t0 = Instant::now();
    if path.ip6() {
        for (s, a) in [(pg, IP6_PG_NET), (out, IP6_OUT_NET)] {
            fwd.address_add(s, Prefix::parse(a).expect("addr6"))
                .map_err(|e| e.to_string())?;
        }
        let nh6 = IP6_NH.parse().expect("nh6");
        fwd.neighbor_add(out, nh6, [2, 0, 0, 0, 0, 9], true)
            .map_err(|e| e.to_string())?;
        fwd.route_add(0, Prefix::V6(0, 0), vec![Path::via(nh6, Some(out))])
            .map_err(|e| e.to_string())?;
    } else {
        for &(a, l) in &prefixes {
            fwd.route_add(0, Prefix::V4(a, l), vec![Path::via(nh, Some(out))])
                .map_err(|e| e.to_string())?;
        }
    }
    if cnat {
        fwd.route_add(
            0,
            Prefix::V4(CNAT_BACKEND & !0xff, 24),
            vec![Path::via(nh, Some(out))],
        )
        .map_err(|e| e.to_string())?;
    }
    let program_secs = t0.elapsed().as_secs_f64();
    if path == BenchPath::Xconnect {
        fwd.set_xconnect(pg, Some(out)).map_err(|e| e.to_string())?;
    }
    let tables = FeatureTables::default();
    let graph = rvpp_drivers::graph_builder(&tables).build()?;
    if npol {
        allow_all_policy(&tables.get::<Npol>(), pg)?;
        fwd.use_features(graph.features.clone());
        npol_nodes::feature_enable(fwd, pg, true).map_err(|e| e.to_string())?;
    }
    if cnat {
        cnat_service(&tables.get::<Cnat>());
        fwd.use_features(graph.features.clone());
        for sw in [pg, out] {
            cnat_nodes::feature_enable(fwd, sw, true).map_err(|e| e.to_string())?;
        }
    }
    if path == BenchPath::CnatNpol {
        let n = tables.get::<Npol>();
        allow_all_policy(&n, pg)?;
        allow_all_tx_policy(&n, out)?;
        for sw in [pg, out] {
            npol_nodes::feature_enable(fwd, sw, true).map_err(|e| e.to_string())?;
        }
    }
    let stream = if cnat {
        let srcs: Vec<u32> = (0..flows.max(1)).map(|i| CNAT_CLIENT_BASE + i).collect();
        PgStream::ip4_udp_sources(pg, PG_MAC, GEN_MAC, &srcs, CNAT_VIP, size)
    } else if path.ip6() {
        PgStream::ip6_udp(pg, PG_MAC, GEN_MAC, IP6_SRC, IP6_DST_BASE, &dsts, size)
    } else {
        PgStream::ip4_udp(pg, PG_MAC, GEN_MAC, 0xc612_0002, &dsts, size)
    };
    let mut rt = ports.runtime(graph, stream)?;
    let m = measure(&mut rt, out, Duration::from_millis(300), seconds);
    if let Some(n) = m.off_path() {
        return Err(format!("packets reached {n}: the path is broken"));
    }
    let front_hit_share = npol.then(|| {
        let node = if path.ip6() {
            "npol-rx-ip6"
        } else {
            "npol-rx-ip4"
        };
        let hits = error_count(&rt, node, npol_nodes::error::FRONT_HIT);
        let packets = rt
            .graph()
            .index(node)
            .map_or(0, |i| rt.stats().nodes[i as usize].vectors.get());
        hits as f64 / packets.max(1) as f64
    });
    Ok(GraphResult {
        mpps: m.mpps,
        fwd_clocks: m.clocks_of(|n| path.nodes().contains(&n)),
        total_clocks: m.total_clocks,
        per_node: m.per_node,
        program_secs,
        pool_backing: ports.pool.backing().name(),
        probe: probe_before.max(crate::env::cpu_probe()),
        first_dsts,
        front_hit_share,
    })
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

/// Runs measured on a full core: probe within 1.4x of the best probe seen. The vCPU shares its
/// host core at times (another guest, or a process of ours pinned there), which doubles every
/// clock figure; such runs are kept in the JSON but left out of the medians when at least two
/// full-core runs exist.
pub fn full_core<T>(results: &[T], probe: impl Fn(&T) -> f64, best_probe: f64) -> (Vec<&T>, bool) {
    let fast: Vec<&T> = results
        .iter()
        .filter(|r| probe(r) <= 1.4 * best_probe)
        .collect();
    if fast.len() >= 2 {
        (fast, true)
    } else {
        (results.iter().collect(), false)
    }
}

/// Medians of a set of runs, per node too.
fn summarize(all: &[GraphResult], label: &str, best_probe: f64) -> serde_json::Value {
    let (results, only_fast) = full_core(all, |r| r.probe, best_probe);
    let results = &results[..];
    let mpps = median(results.iter().map(|r| r.mpps).collect());
    let fwd = median(results.iter().map(|r| r.fwd_clocks).collect());
    let total = median(results.iter().map(|r| r.total_clocks).collect());
    let mut nodes = serde_json::Map::new();
    println!("{label}: median {mpps:.2} Mpps, forwarding nodes {fwd:.1} clocks/pkt, all nodes {total:.1}");
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
    json!({
        "pool_backing": results[0].pool_backing,
        "median_of": if only_fast { "full-core runs" } else { "all runs (fewer than two on a full core)" },
        "mpps": (mpps * 100.0).round() / 100.0,
        "mpps_runs": all.iter().map(|r| (r.mpps * 100.0).round() / 100.0).collect::<Vec<_>>(),
        "forwarding_clocks_per_packet": (fwd * 10.0).round() / 10.0,
        "forwarding_clocks_runs": all.iter().map(|r| (r.fwd_clocks * 10.0).round() / 10.0).collect::<Vec<_>>(),
        "cpu_probe_runs": all.iter().map(|r| (r.probe * 100.0).round() / 100.0).collect::<Vec<_>>(),
        "all_nodes_clocks_per_packet": (total * 10.0).round() / 10.0,
        "clocks_per_packet": nodes,
        "route_program_seconds": results[0].program_secs,
    })
}

pub fn run(args: &[String]) -> Result<serde_json::Value, String> {
    let mut routes = 1usize;
    let mut seconds = 2.0;
    let mut runs = 3usize;
    let mut size = 64usize;
    // Which pool backings to measure: the default (hugetlb if reserved), none, or both
    // interleaved in one sequence.
    let mut pages = vec![true];
    let mut testpmd = Some("dpdk-testpmd".to_string());
    let mut mix = RouteMix::Internet;
    let mut path = BenchPath::Ip4;
    let mut flows = CNAT_FLOWS;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--routes" => routes = val()?.parse().map_err(|_| "bad --routes")?,
            "--seconds" => seconds = val()?.parse().map_err(|_| "bad --seconds")?,
            "--runs" => runs = val()?.parse().map_err(|_| "bad --runs")?,
            "--flows" => flows = val()?.parse().map_err(|_| "bad --flows")?,
            "--size" => size = val()?.parse().map_err(|_| "bad --size")?,
            "--pages" => {
                pages = match val()?.as_str() {
                    "auto" => vec![true],
                    "no-hugetlb" => vec![false],
                    "both" => vec![true, false],
                    _ => return Err("--pages expects auto, no-hugetlb or both".into()),
                }
            }
            "--route-mix" => {
                mix = match val()?.as_str() {
                    "internet" => RouteMix::Internet,
                    "dpdk" => RouteMix::Dpdk,
                    _ => return Err("--route-mix expects internet or dpdk".into()),
                }
            }
            "--path" => {
                path = match val()?.as_str() {
                    "ip4" => BenchPath::Ip4,
                    "ip6" => BenchPath::Ip6,
                    "xconnect" => BenchPath::Xconnect,
                    "npol" => BenchPath::Npol,
                    "npol6" => BenchPath::Npol6,
                    "cnat" => BenchPath::Cnat,
                    "cnat-npol" => BenchPath::CnatNpol,
                    _ => {
                        return Err(
                            "--path expects ip4, ip6, xconnect, npol, npol6, cnat or cnat-npol"
                                .into(),
                        )
                    }
                }
            }
            "--help" | "-h" => {
                println!("{HELP}");
                return Ok(json!({"benchmark": "graph", "help": true}));
            }
            "--testpmd" => testpmd = Some(val()?.clone()),
            "--no-peer" => testpmd = None,
            other => return Err(format!("unknown option {other}")),
        }
    }
    let core = core_affinity::get_core_ids().and_then(|ids| ids.last().copied());
    if let Some(c) = core {
        core_affinity::set_for_current(c);
    }
    let core = core.map_or(0, |c| c.id);
    let mut results: Vec<Vec<GraphResult>> = pages.iter().map(|_| Vec::new()).collect();
    let mut peer: Vec<(f64, f64)> = Vec::new();
    for r in 0..runs.max(1) {
        for (k, &huge) in pages.iter().enumerate() {
            let res = run_once(path, routes, mix, seconds, size, huge, flows)?;
            println!(
                "run {} [{}]: {:.2} Mpps, forwarding nodes {:.1} clocks/pkt, all nodes {:.1} clocks/pkt (routes programmed in {:.2} s), cpu probe {:.2}",
                r + 1,
                res.pool_backing,
                res.mpps,
                res.fwd_clocks,
                res.total_clocks,
                res.program_secs,
                res.probe
            );
            if let Some(h) = res.front_hit_share {
                println!(
                    "  npol front caches: {:.1} % of npol-rx's packets hit",
                    h * 100.0
                );
            }
            results[k].push(res);
        }
        if let Some(tp) = &testpmd {
            // Same core, same frame size, right after rvpp's runs.
            let p0 = crate::env::cpu_probe();
            let m = crate::testpmd::null_forward(tp, "5tswap", size, true, seconds, core)?;
            let probe = p0.max(crate::env::cpu_probe());
            println!(
                "run {} [peer]: testpmd 5tswap on net_null (copy=1) {m:.2} Mpps, cpu probe {probe:.2}",
                r + 1
            );
            peer.push((m, probe));
        }
    }
    let best_probe = results
        .iter()
        .flatten()
        .map(|r| r.probe)
        .chain(peer.iter().map(|p| p.1))
        .fold(f64::INFINITY, f64::min);
    let sets: Vec<serde_json::Value> = results
        .iter()
        .map(|rs| summarize(rs, rs[0].pool_backing, best_probe))
        .collect();
    // The peer's median over its full-core runs too.
    let peer_sel: Vec<f64> = full_core(&peer, |p| p.1, best_probe)
        .0
        .iter()
        .map(|p| p.0)
        .collect();
    let main = &sets[0];
    let mpps = main["mpps"].as_f64().unwrap_or(0.0);
    let fwd = main["forwarding_clocks_per_packet"].as_f64().unwrap_or(0.0);
    let peer_mpps = (!peer_sel.is_empty()).then(|| median(peer_sel.clone()));
    if let Some(p) = peer_mpps {
        println!(
            "same-run peer: testpmd 5tswap {p:.2} Mpps; rvpp/peer {:.2}x",
            mpps / p
        );
    }
    if sets.len() == 2 {
        let other = sets[1]["mpps"].as_f64().unwrap_or(0.0);
        println!(
            "{} / {}: {:.2}x Mpps",
            sets[1]["pool_backing"],
            sets[0]["pool_backing"],
            other / mpps
        );
    }
    if path == BenchPath::Ip4 {
        println!(
        "reference (not this run): VPP {VPP_REF_MPPS} Mpps, {VPP_REF_FWD_CLOCKS} forwarding clocks, recorded by hand on 2026-12-02; rvpp {:.2}x Mpps, {:.2}x clocks",
        mpps / VPP_REF_MPPS,
        fwd / VPP_REF_FWD_CLOCKS
    );
    }
    let mut out = json!({
        "benchmark": "graph",
        "path": path.describe(),
        "forwarding_nodes": path.nodes(),
        "routes": if path.ip6() { 1 } else { routes },
        "cnat_flows": matches!(path, BenchPath::Cnat | BenchPath::CnatNpol).then_some(flows),
        "npol_flows": matches!(path, BenchPath::Npol | BenchPath::Npol6).then_some(flows),
        "route_mix": if mix == RouteMix::Dpdk { "dpdk-test-fib depth mix (fib's set and seed)" } else { "internet-like" },
        // So a peer's packet capture can be checked against the same destinations.
        "first_destinations": results[0][0].first_dsts.iter().map(|&d| if path.ip6() {
            std::net::Ipv6Addr::from(IP6_DST_BASE | d as u128).to_string()
        } else {
            std::net::Ipv4Addr::from(d).to_string()
        }).collect::<Vec<_>>(),
        "frame_bytes": size,
        "runs": results[0].len(),
        "core": core,
        "cpu_probe_best": (best_probe * 100.0).round() / 100.0,
        "cpu_probe_is": "TSC ticks per step of a dependent integer chain, the worse of before and after each run; runs above 1.4x the best are on a shared core and left out of the medians when two full-core runs exist",
        "by_pool_backing": sets,
        "peer": peer_mpps.map(|p| json!({
            "what": "dpdk-testpmd --forward-mode=5tswap between two net_null vdevs with copy=1, same core, same frame size, interleaved with rvpp's runs",
            "mpps": (p * 100.0).round() / 100.0,
            "mpps_runs": peer.iter().map(|m| (m.0 * 100.0).round() / 100.0).collect::<Vec<_>>(),
            "cpu_probe_runs": peer.iter().map(|m| (m.1 * 100.0).round() / 100.0).collect::<Vec<_>>(),
            "ratio_rvpp_mpps_to_peer": (mpps / p * 100.0).round() / 100.0,
        })),
        "vpp_reference": (path == BenchPath::Ip4).then(|| json!({
            "measured_in_this_run": false,
            "mpps": VPP_REF_MPPS,
            "forwarding_clocks_per_packet": VPP_REF_FWD_CLOCKS,
            "ratio_mpps_vs_reference": (mpps / VPP_REF_MPPS * 100.0).round() / 100.0,
            "ratio_clocks_vs_reference": (fwd / VPP_REF_FWD_CLOCKS * 100.0).round() / 100.0,
        })),
    });
    // The first backing's figures at the top level, for scripts that read one set.
    if let (Some(o), Some(m)) = (out.as_object_mut(), main.as_object()) {
        for (k, v) in m {
            o.insert(k.clone(), v.clone());
        }
    }
    Ok(out)
}

/// Rounded to two decimals, for the JSON figures.
pub fn r2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The count of `node`'s local counter `code` in `rt` (0 if the node is not in the graph).
pub fn error_count(rt: &Runtime, node: &str, code: u16) -> u64 {
    rt.graph()
        .error_index(node, code)
        .map_or(0, |i| rt.stats().errors[i as usize].get())
}

/// The options of the per-feature graph benchmarks (srv6, overlay): `--seconds S`,
/// `--runs R`, `--sizes 64,1400`.
pub struct SizedRuns {
    pub seconds: f64,
    pub runs: usize,
    pub sizes: Vec<usize>,
}

impl SizedRuns {
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut o = Self {
            seconds: 2.0,
            runs: 3,
            sizes: vec![64, 1400],
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut val = || it.next().ok_or(format!("{a} needs a value"));
            match a.as_str() {
                "--seconds" => o.seconds = val()?.parse().map_err(|_| "--seconds S")?,
                "--runs" => o.runs = val()?.parse().map_err(|_| "--runs R")?,
                "--sizes" => {
                    o.sizes = val()?
                        .split(',')
                        .map(|s| s.parse().map_err(|_| "--sizes 64,1400"))
                        .collect::<Result<_, _>>()?
                }
                other => return Err(format!("unknown option {other}")),
            }
        }
        o.runs = o.runs.max(1);
        Ok(o)
    }
}

/// Medians of a case and its peer measured alternately `runs` times: (Mpps, clocks/packet,
/// peer Mpps, peer clocks/packet).
pub fn alternate(
    runs: usize,
    case: impl FnMut() -> Result<Measured, String>,
    peer: impl FnMut() -> Result<Measured, String>,
) -> Result<(f64, f64, f64, f64), String> {
    let a = alternate_nodes(runs, case, peer)?;
    Ok((a.mpps, a.clocks, a.peer_mpps, a.peer_clocks))
}

/// What [`alternate_nodes`] measured: medians over the runs.
pub struct Alternated {
    pub mpps: f64,
    pub clocks: f64,
    pub peer_mpps: f64,
    pub peer_clocks: f64,
    /// Each node's median clocks per packet (0 in a run it did not run in), in the order the
    /// nodes first ran.
    pub nodes: Vec<(String, f64)>,
    pub peer_nodes: Vec<(String, f64)>,
}

/// Each node's median clocks per packet over `runs`.
fn node_medians(runs: &[Measured]) -> Vec<(String, f64)> {
    let mut names: Vec<&str> = Vec::new();
    for r in runs {
        for (n, _) in &r.per_node {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
    }
    names
        .into_iter()
        .map(|n| {
            let v = runs
                .iter()
                .map(|r| r.clocks_of(|x| x == n))
                .collect::<Vec<_>>();
            (n.to_string(), median(v))
        })
        .collect()
}

/// As [`alternate`], with every node's median clocks per packet on both sides.
pub fn alternate_nodes(
    runs: usize,
    mut case: impl FnMut() -> Result<Measured, String>,
    mut peer: impl FnMut() -> Result<Measured, String>,
) -> Result<Alternated, String> {
    let (mut cs, mut ps) = (vec![], vec![]);
    for _ in 0..runs.max(1) {
        cs.push(case()?);
        ps.push(peer()?);
    }
    let med = |v: &[Measured], f: fn(&Measured) -> f64| median(v.iter().map(f).collect());
    Ok(Alternated {
        mpps: med(&cs, |m| m.mpps),
        clocks: med(&cs, |m| m.total_clocks),
        peer_mpps: med(&ps, |m| m.mpps),
        peer_clocks: med(&ps, |m| m.total_clocks),
        nodes: node_medians(&cs),
        peer_nodes: node_medians(&ps),
    })
}
