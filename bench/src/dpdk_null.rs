//! `rvpp-bench dpdk-null`: rvpp forwarding between two DPDK net_null ports on one core, next
//! to dpdk-testpmd's io forwarding on the same kind of vdevs, in the same run.
//!
//! What is measured, honestly:
//! * net_null's rx hands out mbufs of `size` bytes whose contents are whatever the mbuf held;
//!   rvpp copies each packet into an rvpp buffer (its rx path) and then stamps an
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
    use rvpp_dataplane::nodes::{standard_graph, FeatureArcs};
    use rvpp_dataplane::runtime::Runtime;
    use rvpp_dataplane::tables::Shared;
    use rvpp_drivers::dpdk::{self, EalConfig, Port, PortConfig, RxTemplate};
    use serde_json::json;
    use std::io::Write;
    use std::process::{Child, ChildStdin, Command, Stdio};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    struct Opts {
        seconds: f64,
        runs: usize,
        size: usize,
        routes: usize,
        testpmd: String,
    }

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        v[v.len() / 2]
    }

    /// One rvpp measurement: Mpps transmitted on both ports together.
    fn rvpp_once(ports: &[Arc<Port>; 2], routes: usize, o: &Opts) -> Result<f64, String> {
        let pool = BufferPool::new(16384, 2048).map_err(|e| e.to_string())?;
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
        let graph = standard_graph(&FeatureArcs::default(), vec![])?;
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
        let start = Instant::now();
        let dur = Duration::from_secs_f64(o.seconds);
        while start.elapsed() < dur {
            for _ in 0..64 {
                rt.poll();
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let tx: u64 = ports.iter().map(|p| p.stats().tx_packets).sum::<u64>() - tx0;
        let stats = rt.stats();
        let drops: u64 = stats.errors.iter().map(|c| c.get()).sum();
        if tx == 0 {
            return Err(format!("rvpp forwarded nothing ({drops} errors counted)"));
        }
        drop(rt);
        Ok(tx as f64 / secs / 1e6)
    }

    struct Testpmd {
        child: Child,
        stdin: Option<ChildStdin>,
        log: std::path::PathBuf,
    }

    impl Drop for Testpmd {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_file(&self.log);
        }
    }

    impl Testpmd {
        fn cmd(&mut self, c: &str, wait: Duration) -> String {
            let from = std::fs::metadata(&self.log).map_or(0, |m| m.len() as usize);
            if let Some(s) = &mut self.stdin {
                let _ = writeln!(s, "{c}");
                let _ = s.flush();
            }
            std::thread::sleep(wait);
            let all = std::fs::read(&self.log).unwrap_or_default();
            String::from_utf8_lossy(&all[from.min(all.len())..]).into_owned()
        }
    }

    fn tx_packets(out: &str) -> u64 {
        out.lines()
            .filter_map(|l| {
                let p = l.find("TX-packets:")? + "TX-packets:".len();
                l[p..].split_whitespace().next()?.parse::<u64>().ok()
            })
            .sum()
    }

    /// testpmd io forwarding between two net_null vdevs, its forwarding lcore on `core`.
    fn testpmd_once(o: &Opts, core: usize) -> Result<f64, String> {
        let tag = format!("rvpp-dn-{}", std::process::id());
        let log = std::env::temp_dir().join(format!("{tag}.log"));
        let f = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let main = if core == 0 { 1 } else { 0 };
        let mut cmd = Command::new(&o.testpmd);
        cmd.args([
            "--no-huge",
            "-m",
            "1024",
            "--no-pci",
            "--no-shconf",
            "--no-telemetry",
        ])
        .arg(format!("--file-prefix={tag}"))
        .arg(format!("--lcores=0@{main},1@{core}"))
        .arg(format!("--vdev=net_null0,size={}", o.size))
        .arg(format!("--vdev=net_null1,size={}", o.size))
        .arg("--")
        .args(["--no-mlockall", "-i", "--forward-mode=io", "--nb-cores=1"])
        .arg("--total-num-mbufs=32768")
        .stdin(Stdio::piped())
        .stdout(f.try_clone().map_err(|e| e.to_string())?)
        .stderr(f);
        let mut child = cmd.spawn().map_err(|e| format!("{}: {e}", o.testpmd))?;
        let stdin = child.stdin.take();
        let mut t = Testpmd { child, stdin, log };
        // Wait for the prompt.
        let t0 = Instant::now();
        loop {
            let s = std::fs::read_to_string(&t.log).unwrap_or_default();
            if s.contains("testpmd>") {
                break;
            }
            if let Ok(Some(st)) = t.child.try_wait() {
                return Err(format!("testpmd exited ({st}):\n{s}"));
            }
            if t0.elapsed() > Duration::from_secs(30) {
                return Err(format!("testpmd did not start:\n{s}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // testpmd's stdout is block-buffered into the log: run start .. stop, quit, and read
        // the accumulated forward statistics that `stop` prints once it has exited.
        let start = Instant::now();
        t.cmd("start", Duration::from_secs_f64(o.seconds));
        t.cmd("stop", Duration::from_millis(0));
        let secs = start.elapsed().as_secs_f64();
        t.cmd("quit", Duration::from_millis(0));
        t.stdin = None;
        let t0 = Instant::now();
        while t.child.try_wait().map_err(|e| e.to_string())?.is_none() {
            if t0.elapsed() > Duration::from_secs(20) {
                return Err("testpmd does not quit".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = std::fs::read_to_string(&t.log).unwrap_or_default();
        let acc = out
            .split("Accumulated forward statistics")
            .nth(1)
            .unwrap_or("");
        let tx = acc.lines().take(4).collect::<Vec<_>>().join("\n");
        let tx = tx_packets(&tx);
        if tx == 0 {
            return Err(format!("testpmd forwarded nothing:\n{out}"));
        }
        Ok(tx as f64 / secs / 1e6)
    }

    pub fn run(args: &[String]) -> Result<serde_json::Value, String> {
        let mut o = Opts {
            seconds: 3.0,
            runs: 3,
            size: 64,
            routes: 1000,
            testpmd: "dpdk-testpmd".into(),
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
        let mut ports = Vec::new();
        for k in 0..2 {
            let id = eal.probe(&format!("net_null{k},size={}", o.size))?;
            ports.push(Port::open(
                eal,
                id,
                &PortConfig {
                    rx_desc: 1024,
                    tx_desc: 1024,
                    ..Default::default()
                },
            )?);
        }
        let ports: [Arc<Port>; 2] = [ports[0].clone(), ports[1].clone()];
        let (mut xc, mut r1k, mut tp) = (Vec::new(), Vec::new(), Vec::new());
        for r in 0..o.runs.max(1) {
            let a = rvpp_once(&ports, 0, &o)?;
            let b = rvpp_once(&ports, o.routes, &o)?;
            let c = testpmd_once(&o, core)?;
            println!(
                "run {}: rvpp xconnect {a:.2} Mpps, rvpp ip4 {} routes {b:.2} Mpps, testpmd io {c:.2} Mpps",
                r + 1,
                o.routes
            );
            xc.push(a);
            r1k.push(b);
            tp.push(c);
        }
        let (a, b, c) = (median(xc), median(r1k), median(tp));
        println!(
            "dpdk-null medians ({} B, one core {core}): rvpp xconnect {a:.2} Mpps ({:.2}x testpmd), rvpp ip4-{} {b:.2} Mpps ({:.2}x), testpmd io {c:.2} Mpps",
            o.size,
            a / c,
            o.routes,
            b / c
        );
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
            "notes": "rvpp copies mbuf->rvpp buffer on rx and rvpp buffer->new mbuf on tx; net_null rx packets get an Ethernet/IPv4/UDP header stamped by rvpp's dpdk rx (RxTemplate); xconnect = set interface l2 xconnect both ways (no header stamp)",
        }))
    }
}
