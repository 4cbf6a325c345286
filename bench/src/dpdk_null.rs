//! `rvpp-bench dpdk-null`: rvpp forwarding between two DPDK net_null ports on one core, next
//! to dpdk-testpmd's io forwarding on the same kind of vdevs, in the same run.
//!
//! What is measured, honestly:
//! * Both of the driver's buffer strategies are measured (`--rx copy|in-place|both`, default
//!   both, interleaved run by run): Copy copies mbuf <-> rvpp buffer each way; InPlace backs
//!   the queues' mbufs with rvpp buffers (dpdk.rs module docs). The top-level JSON figures are
//!   the default mode's; `by_rx_mode` has both, each with a per-node profile (clocks per packet
//!   from the runtime's node counters, over the measured window of the median run).
//! * net_null's rx hands out mbufs of `size` bytes whose contents are whatever the mbuf held;
//!   rvpp receives each packet into an rvpp buffer (its rx path) and then stamps an
//!   Ethernet/IPv4/UDP header over it (dpdk::RxTemplate) so that the graph can route it. The
//!   stamp is ~42 bytes of stores per packet that testpmd does not do.
//! * "xconnect": `set interface l2 xconnect` both ways: dpdk-input, ethernet-input (which
//!   hands the frame straight to interface-output), dpdk-tx; no header stamp needed.
//! * "ip4-1k": the same with 1000 random prefixes (500 per direction), destinations spread
//!   over them.
//! * testpmd `--forward-mode=io`: rx burst, tx burst on the paired port, no packet access.

#[cfg(not(feature = "dpdk"))]
pub fn run(_args: &[String]) -> Result<serde_json::Value, String> {
    Err(
        "built without DPDK: rebuild with `cargo build --release -p rvpp-bench --features dpdk`"
            .into(),
    )
}

#[cfg(feature = "dpdk")]
pub use imp::run;

#[cfg(feature = "dpdk")]
mod imp {
    use crate::graph::{random_prefixes, Rng};
    use rvpp_dataplane::buffer::BufferPool;
    use rvpp_dataplane::forwarding::{mask4, Forwarding, Path, Prefix};
    use rvpp_dataplane::runtime::Runtime;
    use rvpp_dataplane::tables::Shared;
    use rvpp_drivers::dpdk::{self, EalConfig, Port, PortConfig, RxMode, RxTemplate};
    use serde_json::json;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    struct Opts {
        seconds: f64,
        runs: usize,
        size: usize,
        routes: usize,
        testpmd: String,
        modes: Vec<RxMode>,
    }

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        v[v.len() / 2]
    }

    /// Per-node clocks of one measurement: (node, vectors, clocks) summed over the window.
    type Profile = Vec<(String, u64, u64, u64)>;

    fn node_snapshot(rt: &Runtime) -> Vec<(u64, u64, u64)> {
        let st = rt.stats();
        st.nodes
            .iter()
            .map(|c| (c.calls.get(), c.vectors.get(), c.clocks.get()))
            .collect()
    }

    /// Nodes that ran in the window, with (calls, vectors, clocks) deltas, busiest first.
    fn node_delta(rt: &Runtime, before: &[(u64, u64, u64)]) -> Profile {
        let after = node_snapshot(rt);
        let names = &rt.graph().names;
        let mut v: Profile = after
            .iter()
            .zip(before)
            .enumerate()
            .filter(|(_, (a, b))| a.1 > b.1)
            .map(|(i, (a, b))| (names[i].to_string(), a.0 - b.0, a.1 - b.1, a.2 - b.2))
            .collect();
        v.sort_by_key(|x| std::cmp::Reverse(x.3));
        v
    }

    /// One rvpp measurement: Mpps transmitted on both ports together, and the node profile.
    fn rvpp_once(
        eal: &'static dpdk::Eal,
        ids: [u16; 2],
        mode: RxMode,
        routes: usize,
        o: &Opts,
    ) -> Result<(f64, Profile), String> {
        let pool = BufferPool::new(16384, 2048).map_err(|e| e.to_string())?;
        let open = |id| {
            Port::open(
                eal,
                id,
                &PortConfig {
                    rx_desc: 1024,
                    tx_desc: 1024,
                    rx_in_place: (mode == RxMode::InPlace).then(|| pool.clone()),
                    ..Default::default()
                },
            )
        };
        let ports: [Arc<Port>; 2] = [open(ids[0])?, open(ids[1])?];
        let shared = Shared::new();
        let mut fwd = Forwarding::new(shared.clone());
        let mut sw = [0u32; 2];
        for (k, p) in ports.iter().enumerate() {
            sw[k] = fwd
                .interface_add(&format!("null{k}"), "dpdk", p.mac, true, 1500)
                .map_err(|e| e.to_string())?;
            let a = format!("198.{}.0.1/24", 18 + k);
            fwd.address_add(sw[k], Prefix::parse(&a).ok_or("addr")?)
                .map_err(|e| e.to_string())?;
            fwd.set_admin_up(sw[k], true).map_err(|e| e.to_string())?;
            let nh = format!("198.{}.0.2", 18 + k).parse().map_err(|_| "nh")?;
            fwd.neighbor_add(sw[k], nh, [2, 0, 0, 0, 0, 9 + k as u8], true)
                .map_err(|e| e.to_string())?;
        }
        // dsts[k]: what port k receives, routed out of the other port.
        let mut dsts: [Vec<u32>; 2] = [Vec::new(), Vec::new()];
        let prefixes: Vec<(u32, u8)> = if routes <= 2 {
            vec![(0x1000_0000, 8), (0x3000_0000, 8)]
        } else {
            random_prefixes(routes, 0x5eed)
        };
        let mut rng = Rng(0xd57);
        for (i, &(a, l)) in prefixes.iter().enumerate() {
            let k = i % 2; // received on port k, sent out of port 1 - k
            let out = 1 - k;
            let nh = format!("198.{}.0.2", 18 + out).parse().map_err(|_| "nh")?;
            fwd.route_add(0, Prefix::V4(a, l), vec![Path::via(nh, Some(sw[out]))])
                .map_err(|e| e.to_string())?;
            let hosts = if routes <= 2 { 256 } else { 1 };
            for _ in 0..hosts {
                dsts[k].push(a | (rng.next() as u32 & !mask4(l)));
            }
        }
        let xconnect = routes == 0;
        if xconnect {
            fwd.set_xconnect(sw[0], Some(sw[1]))
                .map_err(|e| e.to_string())?;
            fwd.set_xconnect(sw[1], Some(sw[0]))
                .map_err(|e| e.to_string())?;
        }
        let graph = rvpp_drivers::standard_graph()?;
        let mut rt = Runtime::new(graph, pool.local(), shared, 0, "bench".into())?;
        for (k, p) in ports.iter().enumerate() {
            let mut rx = p.rx_queue(0, sw[k]);
            if !xconnect {
                rx.set_template(Some(RxTemplate::ip4_udp(
                    p.mac,
                    std::mem::take(&mut dsts[k]),
                    o.size,
                )));
            }
            rt.add_rx(Box::new(rx))?;
            rt.set_tx(sw[k], Box::new(p.tx_queue(0, 1)))?;
        }
        let warm = Instant::now();
        while warm.elapsed() < Duration::from_millis(300) {
            rt.poll();
        }
        let tx0: u64 = ports.iter().map(|p| p.stats().tx_packets).sum();
        let before = node_snapshot(&rt);
        let start = Instant::now();
        let dur = Duration::from_secs_f64(o.seconds);
        while start.elapsed() < dur {
            for _ in 0..64 {
                rt.poll();
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let tx: u64 = ports.iter().map(|p| p.stats().tx_packets).sum::<u64>() - tx0;
        let profile = node_delta(&rt, &before);
        let stats = rt.stats();
        let drops: u64 = stats.errors.iter().map(|c| c.get()).sum();
        if tx == 0 {
            return Err(format!("rvpp forwarded nothing ({drops} errors counted)"));
        }
        drop(rt);
        drop(ports);
        Ok((tx as f64 / secs / 1e6, profile))
    }

    /// Print (and return as JSON) the node profile of the run whose rate is the median:
    /// clocks per packet of each node, and the whole loop's clocks per forwarded packet.
    fn print_profile(
        what: &str,
        runs: &[(f64, Profile)],
        median_mpps: f64,
        hz: u64,
    ) -> serde_json::Value {
        let Some((mpps, prof)) = runs.iter().min_by(|x, y| {
            (x.0 - median_mpps)
                .abs()
                .total_cmp(&(y.0 - median_mpps).abs())
        }) else {
            return json!(null);
        };
        // Packets forwarded = vectors of the tx node (both ports).
        let fwd = prof
            .iter()
            .find(|p| p.0 == dpdk::TX_NODE)
            .map_or(0, |p| p.2)
            .max(1);
        let budget = hz as f64 / (mpps * 1e6);
        println!(
            "  {what} profile ({mpps:.2} Mpps = {budget:.0} clocks/pkt at {:.2} GHz; node clocks/pkt, pkts/call):",
            hz as f64 / 1e9
        );
        let mut nodes = Vec::new();
        let mut sum = 0.0;
        for (name, calls, vectors, clocks) in prof {
            let per = *clocks as f64 / *vectors as f64;
            let per_fwd = *clocks as f64 / fwd as f64;
            sum += per_fwd;
            println!(
                "    {name:<24} {per:>7.1} clk/pkt  {:>6.1} pkts/call",
                *vectors as f64 / (*calls).max(1) as f64
            );
            nodes.push(json!({
                "node": name,
                "clocks_per_packet": per,
                "clocks_per_forwarded_packet": per_fwd,
                "packets_per_call": *vectors as f64 / (*calls).max(1) as f64,
            }));
        }
        println!(
            "    {:<24} {sum:>7.1} clk/pkt in nodes, {:.1} outside (loop, polling, tables)",
            "total",
            budget - sum
        );
        json!({
            "mpps": mpps,
            "clocks_per_packet": budget,
            "clocks_in_nodes_per_packet": sum,
            "nodes": nodes,
        })
    }

    /// testpmd io forwarding between two net_null vdevs, its forwarding lcore on `core`.
    fn testpmd_once(o: &Opts, core: usize) -> Result<f64, String> {
        crate::testpmd::null_forward(&o.testpmd, "io", o.size, false, o.seconds, core)
    }

    pub fn run(args: &[String]) -> Result<serde_json::Value, String> {
        let mut o = Opts {
            seconds: 3.0,
            runs: 3,
            size: 64,
            routes: 1000,
            testpmd: "dpdk-testpmd".into(),
            modes: vec![RxMode::Copy, RxMode::InPlace],
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut v = || it.next().ok_or(format!("{a} needs a value"));
            match a.as_str() {
                "--seconds" => o.seconds = v()?.parse().map_err(|_| "bad --seconds")?,
                "--runs" => o.runs = v()?.parse().map_err(|_| "bad --runs")?,
                "--size" => o.size = v()?.parse().map_err(|_| "bad --size")?,
                "--routes" => o.routes = v()?.parse().map_err(|_| "bad --routes")?,
                "--testpmd" => o.testpmd = v()?.clone(),
                "--rx" => {
                    o.modes = match v()?.as_str() {
                        "copy" => vec![RxMode::Copy],
                        "in-place" => vec![RxMode::InPlace],
                        "both" => vec![RxMode::Copy, RxMode::InPlace],
                        _ => return Err("--rx expects copy, in-place or both".into()),
                    }
                }
                other => return Err(format!("unknown option {other}")),
            }
        }
        let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
        let core = ncpu - 1;
        // EAL's main lcore is this thread, pinned to the measured core.
        let eal = dpdk::eal_init(&EalConfig {
            no_huge: true,
            mem_mb: 1024,
            main_core: Some(core as u32),
            mbufs: 32 * 1024,
            ..Default::default()
        })?;
        let mut ids = [0u16; 2];
        for (k, id) in ids.iter_mut().enumerate() {
            *id = eal.probe(&format!("net_null{k},size={}", o.size))?;
        }
        let hz = rvpp_dataplane::runtime::tsc_hz();
        // Per rx mode: xconnect and routed rates (and profiles), runs interleaved with testpmd.
        type Runs = Vec<(f64, Profile)>;
        let mut res: Vec<(RxMode, Runs, Runs)> = o
            .modes
            .iter()
            .map(|&m| (m, Vec::new(), Vec::new()))
            .collect();
        let mut tp = Vec::new();
        for r in 0..o.runs.max(1) {
            let mut line = format!("run {}:", r + 1);
            for (mode, xc, ip4) in res.iter_mut() {
                let a = rvpp_once(eal, ids, *mode, 0, &o)?;
                let b = rvpp_once(eal, ids, *mode, o.routes, &o)?;
                line += &format!(
                    " rvpp[{mode:?}] xconnect {:.2} Mpps ip4 {} routes {:.2} Mpps,",
                    a.0, o.routes, b.0
                );
                xc.push(a);
                ip4.push(b);
            }
            let c = testpmd_once(&o, core)?;
            println!("{line} testpmd io {c:.2} Mpps");
            tp.push(c);
        }
        let c = median(tp);
        let mut modes = serde_json::Map::new();
        for (mode, xc, ip4) in &res {
            let a = median(xc.iter().map(|x| x.0).collect());
            let b = median(ip4.iter().map(|x| x.0).collect());
            println!(
                "dpdk-null medians ({} B, one core {core}, rx {mode:?}): rvpp xconnect {a:.2} Mpps ({:.2}x testpmd), rvpp ip4-{} {b:.2} Mpps ({:.2}x), testpmd io {c:.2} Mpps",
                o.size,
                a / c,
                o.routes,
                b / c
            );
            let px = print_profile("xconnect", xc, a, hz);
            let pi = print_profile(&format!("ip4-{}", o.routes), ip4, b, hz);
            modes.insert(
                format!("{mode:?}"),
                json!({
                    "rvpp_xconnect_mpps": a,
                    "rvpp_ip4_routed_mpps": b,
                    "ratio_xconnect_to_testpmd": a / c,
                    "ratio_ip4_to_testpmd": b / c,
                    "profile_xconnect": px,
                    "profile_ip4_routed": pi,
                }),
            );
        }
        // The top-level figures are those of the default rx mode (or the only one measured).
        let def = res
            .iter()
            .position(|x| x.0 == dpdk::DEFAULT_RX_MODE)
            .unwrap_or(0);
        let dm = format!("{:?}", res[def].0);
        let a = modes[&dm]["rvpp_xconnect_mpps"].as_f64().unwrap_or(0.0);
        let b = modes[&dm]["rvpp_ip4_routed_mpps"].as_f64().unwrap_or(0.0);
        Ok(json!({
            "bench": "dpdk-null",
            "size": o.size,
            "core": core,
            "seconds": o.seconds,
            "runs": o.runs,
            "rvpp_xconnect_mpps": a,
            "rvpp_ip4_routed_mpps": b,
            "routes": o.routes,
            "testpmd_io_mpps": c,
            "ratio_xconnect_to_testpmd": a / c,
            "ratio_ip4_to_testpmd": b / c,
            "rx_mode": dm,
            "tsc_hz": hz,
            "by_rx_mode": modes,
            "notes": "rx mode Copy: rvpp copies mbuf->rvpp buffer; tx copies rvpp buffer->new mbuf; InPlace: rx/tx mbufs are backed by rvpp buffers, rx hands them over in place and tx swaps the packet's buffer into a pool mbuf (no copy); net_null rx packets get an Ethernet/IPv4/UDP header stamped by rvpp's dpdk rx (RxTemplate); xconnect = set interface l2 xconnect both ways (no header stamp)",
        }))
    }
}
