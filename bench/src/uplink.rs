//! `rvpp-bench uplink [--runs N] [--seconds S]`: small-packet rate into and out of rvpp's
//! uplink, AF_XDP against AF_PACKET.
//!
//! A "remote node" namespace holds the other end of the uplink veth and a generator:
//! dpdk-testpmd in txonly mode on a `net_af_packet` port (64-byte UDP frames,
//! 198.18.0.1 -> 198.18.0.2, to rvpp's MAC). rvpp (the release binary next to this one) routes
//! 198.18.0.2 back out of the uplink to the remote node, so every packet goes into and out of
//! the uplink. Measured over the window: rvpp's rx and tx packets on the uplink (`show
//! interface`) and what arrived back at the remote end (its veth rx counter). rvpp runs on core
//! 1, the generator on core 0. Runs alternate AF_XDP / AF_PACKET; medians are reported.

use crate::pod_tcp::{ipn, median, nsx, sh, wait_for, Lab};
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// rvpp's (rx, tx) packet counters for interface `name` from `show interface`.
fn if_counters(lab: &Lab, name: &str) -> Result<(u64, u64), String> {
    let out = lab.ctl("show interface")?;
    let (mut rx, mut tx, mut inside) = (0, 0, false);
    for l in out.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        if !l.starts_with(' ') && !w.is_empty() {
            inside = w[0] == name;
        }
        if !inside {
            continue;
        }
        let n = w.last().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        if l.contains("rx packets") {
            rx = n;
        } else if l.contains("tx packets") {
            tx = n;
        }
    }
    Ok((rx, tx))
}

fn sysfs(ns: &str, dev: &str, what: &str) -> Result<u64, String> {
    nsx(
        ns,
        &["cat", &format!("/sys/class/net/{dev}/statistics/{what}")],
    )?
    .trim()
    .parse()
    .map_err(|e| format!("{what}: {e}"))
}

struct Gen(Child);

impl Drop for Gen {
    fn drop(&mut self) {
        if let Some(mut i) = self.0.stdin.take() {
            let _ = i.write_all(b"\n");
        }
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(3) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn generator(ns: &str, peer_mac: &str) -> Result<Gen, String> {
    let prefix = format!("rvppb{}", std::process::id());
    let peer = format!("--eth-peer=0,{peer_mac}");
    let c = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "dpdk-testpmd",
            "--no-huge",
            "-m",
            "1024",
            "--no-pci",
        ])
        .args(["-l", "0,1", "--main-lcore", "1", "--file-prefix", &prefix])
        .args([
            "--vdev",
            "net_af_packet0,iface=eth1,qpairs=1,qdisc_bypass=1",
        ])
        .args([
            "--",
            "--forward-mode=txonly",
            "--txpkts=64",
            "--total-num-mbufs=16384",
        ])
        .arg(&peer)
        .args(["--nb-cores=1", "--auto-start"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("dpdk-testpmd: {e}"))?;
    Ok(Gen(c))
}

struct Sample {
    rx_pps: f64,
    tx_pps: f64,
    back_pps: f64,
    /// What the generator put on the wire.
    offered_pps: f64,
}

fn one_run(
    lab: &mut Lab,
    node: &str,
    remote: &str,
    xdp: bool,
    secs: u32,
) -> Result<Sample, String> {
    let remote_mac = nsx(remote, &["cat", "/sys/class/net/eth1/address"])?;
    let (create, up) = if xdp {
        (
            "create interface af_xdp host-if eth1 num-rx-queues 1",
            "eth1/0",
        )
    } else {
        ("create host-interface name eth1", "host-eth1")
    };
    let cli = format!(
        "{create}\nset interface state {up} up\nset interface ip address {up} 198.19.0.1/24\n\
         set ip neighbor {up} 198.19.0.2 {}\nip route add 198.18.0.2/32 via 198.19.0.2 {up}\n",
        remote_mac.trim()
    );
    lab.start_rvpp(
        node,
        "cpu { main-core 1 }\nbuffers { buffers-per-numa 32768 }",
        &cli,
    )?;
    let hw = lab.ctl("show hardware")?;
    if !hw.contains(up) {
        return Err(format!("rvpp did not create {up}:\n{hw}"));
    }
    let rvpp_mac = nsx(node, &["cat", "/sys/class/net/eth1/address"])?;
    let _gen = generator(remote, rvpp_mac.trim())?;
    // Let the generator come up and the rate settle.
    let started = wait_for(Duration::from_secs(15), || {
        if_counters(lab, up).is_ok_and(|c| c.0 > 10_000)
    });
    if !started {
        return Err("no traffic from the generator (dpdk-testpmd net_af_packet)".into());
    }
    std::thread::sleep(Duration::from_millis(500));
    let (r0, t0) = if_counters(lab, up)?;
    let b0 = sysfs(remote, "eth1", "rx_packets")?;
    let g0 = sysfs(remote, "eth1", "tx_packets")?;
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(secs as u64));
    let (r1, t1) = if_counters(lab, up)?;
    let b1 = sysfs(remote, "eth1", "rx_packets")?;
    let g1 = sysfs(remote, "eth1", "tx_packets")?;
    let dt = t.elapsed().as_secs_f64();
    drop(_gen);
    lab.stop_rvpp();
    Ok(Sample {
        rx_pps: (r1 - r0) as f64 / dt,
        tx_pps: (t1 - t0) as f64 / dt,
        back_pps: (b1 - b0) as f64 / dt,
        offered_pps: (g1 - g0) as f64 / dt,
    })
}

pub fn run(args: &[String]) -> Result<Value, String> {
    let mut runs = 3usize;
    let mut secs = 3u32;
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
            other => return Err(format!("unknown option {other}")),
        }
    }
    sh(&["sh", "-c", "command -v dpdk-testpmd"]).map_err(|_| "dpdk-testpmd not installed")?;
    let mut lab = Lab::new("uplink")?;
    let node = lab.ns("node")?;
    let remote = lab.ns("remote")?;
    ipn(
        &node,
        &[
            "link", "add", "eth1", "type", "veth", "peer", "name", "eth1", "netns", &remote,
        ],
    )?;
    ipn(&node, &["link", "set", "eth1", "up"])?;
    ipn(&remote, &["link", "set", "eth1", "up"])?;
    let _ = nsx(
        &remote,
        &[
            "ethtool", "-K", "eth1", "tx", "off", "tso", "off", "gso", "off",
        ],
    );
    let mut xs: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
    for r in 0..runs {
        for (k, xdp) in [(0, true), (1, false)] {
            let s = one_run(&mut lab, &node, &remote, xdp, secs)?;
            println!(
                "run {}/{runs} {:<9} offered {:>6.0} kpps  in {:>6.0} kpps  out {:>6.0} kpps  back at the remote {:>6.0} kpps",
                r + 1,
                if xdp { "af_xdp" } else { "af_packet" },
                s.offered_pps / 1e3,
                s.rx_pps / 1e3,
                s.tx_pps / 1e3,
                s.back_pps / 1e3
            );
            xs[k].push(s);
        }
    }
    let med =
        |v: &[Sample], f: fn(&Sample) -> f64| median(&mut v.iter().map(f).collect::<Vec<_>>());
    let mut res = serde_json::Map::new();
    println!("uplink, 64-byte frames (medians of {runs} alternating runs of {secs} s):");
    for (k, name) in [(0, "af_xdp"), (1, "af_packet")] {
        let g = med(&xs[k], |s| s.offered_pps);
        let (i, o, b) = (
            med(&xs[k], |s| s.rx_pps),
            med(&xs[k], |s| s.tx_pps),
            med(&xs[k], |s| s.back_pps),
        );
        println!(
            "  {name:<9} in {:>8.0} pps  out {:>8.0} pps  back {:>8.0} pps",
            i, o, b
        );
        // Taking in 90% or more of what was offered means the generator, not the driver, set
        // the rate: the figure is a floor for the driver.
        let generator_bound = g > 0.0 && i >= 0.9 * g;
        if generator_bound {
            println!(
                "  {name:<9} is generator-bound (took {:.0}% of the offered rate)",
                100.0 * i / g
            );
        }
        res.insert(
            name.into(),
            json!({"offered_pps": g, "in_pps": i, "out_pps": o, "back_at_remote_pps": b,
                   "generator_bound": generator_bound}),
        );
    }
    let any_bound = ["af_xdp", "af_packet"]
        .iter()
        .any(|n| res[*n]["generator_bound"].as_bool().unwrap_or(false));
    let ratio = |f: &str| {
        let a = res["af_xdp"][f].as_f64().unwrap_or(0.0);
        let b = res["af_packet"][f].as_f64().unwrap_or(0.0);
        if b > 0.0 {
            a / b
        } else {
            0.0
        }
    };
    let (ri, ro) = (ratio("in_pps"), ratio("out_pps"));
    println!("  af_xdp / af_packet: in {ri:.2}x, out {ro:.2}x");
    Ok(json!({
        "benchmark": "uplink",
        "frame_bytes": 64,
        "runs": runs,
        "seconds": secs,
        "generator": "dpdk-testpmd txonly on net_af_packet in the remote namespace",
        "results": res,
        "ratio_in": ri,
        "ratio_out": ro,
        "ratio_is_a_floor": any_bound,
    }))
}
