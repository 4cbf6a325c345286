//! `rvpp-bench fib`: IPv4 LPM lookups/s of rvpp's DIR-24-8 next to DPDK's rte_fib
//! (`dpdk-test-fib`), both fed the same route and destination files in the same run.
//!
//! Routes follow dpdk-test-fib's default depth mix (every length /0../32, as many per length
//! as fit, spread evenly over the address space); destinations pick a random route and random
//! host bits. rvpp runs bursts of 64 with a full fence after each, like dpdk-test-fib's timing
//! of rte_fib.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvpp_dataplane::fib::{Ip4FibConfig, Ip4FibWriter, LookupImpl};
use rvpp_dataplane::rcu::GracePeriod;
use serde_json::{json, Value};

const BURST: usize = 64;

struct Opts {
    routes: usize,
    lookups: usize,
    reps: usize,
    passes: usize,
    tbl8: u32,
    seed: u64,
    dpdk: Option<String>,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        routes: 1_000_000,
        lookups: 1 << 22,
        reps: 3,
        passes: 5,
        tbl8: 0,
        seed: 0x5eed_f1b0,
        dpdk: Some("dpdk-test-fib".into()),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{a} needs a value"));
        let num = |s: &String| s.parse::<u64>().map_err(|e| format!("{a} {s}: {e}"));
        match a.as_str() {
            "--routes" => o.routes = num(val()?)? as usize,
            "--lookups" => o.lookups = num(val()?)? as usize,
            "--reps" => o.reps = num(val()?)?.max(1) as usize,
            "--passes" => o.passes = num(val()?)?.max(1) as usize,
            "--tbl8" => o.tbl8 = num(val()?)? as u32,
            "--seed" => o.seed = num(val()?)?,
            "--dpdk" => o.dpdk = Some(val()?.clone()),
            "--no-dpdk" => o.dpdk = None,
            _ => {
                return Err(format!(
                    "unknown option {a}; fib [--routes N] [--lookups N] [--reps N] [--passes N] \
                     [--tbl8 N] [--seed N] [--dpdk PATH | --no-dpdk]"
                ))
            }
        }
    }
    if o.routes == 0 || o.lookups < BURST {
        return Err("need --routes >= 1 and --lookups >= 64".into());
    }
    if o.tbl8 == 0 {
        o.tbl8 = (o.routes as u32).max(1 << 12);
    }
    Ok(o)
}

/// The seed of the route set (dpdk-test-fib's depth mix) `fib` and `graph --route-mix dpdk`
/// share, so a VPP set-up can be generated from the same numbers.
pub(crate) const DEFAULT_SEED: u64 = 0x5eed_f1b0;

pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    /// splitmix64
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[derive(Clone, Copy)]
pub(crate) struct Route {
    pub(crate) prefix: u32,
    pub(crate) len: u8,
    leaf: u32,
}

/// Routes per length as dpdk-test-fib computes them when no `-d` is given: each length in turn
/// gets min(2^len, remaining / lengths left).
fn depth_counts(n: usize) -> [usize; 33] {
    let mut c = [0usize; 33];
    let mut placed = 0;
    for (d, slot) in c.iter_mut().enumerate() {
        let avg = (n - placed) / (33 - d);
        *slot = avg.min(1usize << d);
        placed += *slot;
    }
    c
}

pub(crate) fn gen_routes(n: usize, rng: &mut Rng) -> Vec<Route> {
    let counts = depth_counts(n);
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut v = Vec::with_capacity(n);
    for (d, &cnt) in counts.iter().enumerate() {
        if cnt == 0 {
            continue;
        }
        // Spread evenly: one route per equal slice of the 2^d possible prefixes.
        let step = (1u64 << d) as f64 / cnt as f64;
        for j in 0..cnt {
            let lo = (j as f64 * step) as u64;
            let hi = (((j + 1) as f64 * step) as u64).max(lo + 1);
            let x = lo + rng.next() % (hi - lo);
            let prefix = if d == 0 { 0 } else { (x << (32 - d)) as u32 };
            if seen.insert((prefix, d as u8)) {
                v.push(Route {
                    prefix,
                    len: d as u8,
                    leaf: (rng.next() & ((1 << 21) - 1)) as u32,
                });
            }
        }
    }
    for i in (1..v.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

fn gen_lookups(routes: &[Route], m: usize, rng: &mut Rng) -> Vec<u32> {
    (0..m)
        .map(|_| {
            let r = routes[(rng.next() % routes.len() as u64) as usize];
            let host = if r.len == 32 { 0 } else { u32::MAX >> r.len };
            r.prefix | (rng.next() as u32 & host)
        })
        .collect()
}

fn quad(a: u32) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(a)
}

fn write_files(
    dir: &Path,
    routes: &[Route],
    lookups: &[u32],
) -> Result<(PathBuf, PathBuf), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let (rp, lp) = (dir.join("routes.txt"), dir.join("lookups.txt"));
    let mut s = String::with_capacity(routes.len() * 24);
    for r in routes {
        let _ = writeln!(s, "{}/{} {}", quad(r.prefix), r.len, r.leaf);
    }
    std::fs::write(&rp, s).map_err(|e| e.to_string())?;
    // dpdk-test-fib keeps destinations read with -t in network byte order but looks them up as
    // host order; writing each address byte-reversed makes it look up the intended address.
    let mut s = String::with_capacity(lookups.len() * 16);
    for &a in lookups {
        let _ = writeln!(s, "{}", quad(a.swap_bytes()));
    }
    std::fs::write(&lp, s).map_err(|e| e.to_string())?;
    Ok((rp, lp))
}

fn vm_kib(field: &str, pid: Option<u32>) -> Option<u64> {
    let path = pid.map_or("/proc/self/status".to_string(), |p| {
        format!("/proc/{p}/status")
    });
    let s = std::fs::read_to_string(path).ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The CPU this process is confined to, if exactly one.
fn single_cpu() -> Option<String> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let l = s.lines().find(|l| l.starts_with("Cpus_allowed_list:"))?;
    let v = l.split_whitespace().nth(1)?;
    v.parse::<u32>().ok().map(|c| c.to_string())
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

struct RvppRun {
    build_s: f64,
    rss_bytes: u64,
    table_bytes: usize,
    /// ns/lookup per pass, bursts fenced like dpdk-test-fib's.
    burst_ns: Vec<f64>,
    /// ns/lookup per pass, bursts back to back.
    pass_ns: Vec<f64>,
    variants: Vec<(LookupImpl, f64)>,
    imp: LookupImpl,
    /// Pages behind tbl24 and tbl8.
    backing: String,
}

fn run_rvpp(
    o: &Opts,
    routes: &[Route],
    lookups: &[u32],
    huge: bool,
    check: bool,
) -> Result<RvppRun, String> {
    let rss0 = vm_kib("VmRSS:", None).unwrap_or(0);
    let t = Instant::now();
    let cfg = Ip4FibConfig {
        tbl8_groups: o.tbl8,
        huge_pages: huge,
    };
    let mut w = Ip4FibWriter::new(cfg, Arc::new(GracePeriod::new())).map_err(|e| e.to_string())?;
    for r in routes {
        w.add(r.prefix, r.len, r.leaf)
            .map_err(|e| format!("add {}/{}: {e}", quad(r.prefix), r.len))?;
    }
    let build_s = t.elapsed().as_secs_f64();
    let rss = vm_kib("VmRSS:", None).unwrap_or(0).saturating_sub(rss0) * 1024;
    let fib = w.fib().clone();
    let mut out = vec![0u32; lookups.len()];

    if check {
        // Batched path against the scalar one everywhere, and against a per-length hash
        // reference on a sample.
        fib.lookup_batch(lookups, &mut out);
        if let Some(i) = (0..lookups.len()).find(|&i| out[i] != fib.lookup(lookups[i])) {
            return Err(format!("batch/scalar mismatch at {}", quad(lookups[i])));
        }
        let mut by_len: Vec<HashMap<u32, u32>> = vec![HashMap::new(); 33];
        for r in routes {
            by_len[r.len as usize].insert(r.prefix, r.leaf);
        }
        for &a in lookups.iter().step_by((lookups.len() / 20_000).max(1)) {
            let want = (0..=32u32)
                .rev()
                .find_map(|l| {
                    by_len[l as usize].get(
                        &(if l == 0 {
                            0
                        } else {
                            a & (u32::MAX << (32 - l))
                        }),
                    )
                })
                .copied()
                .unwrap_or(rvpp_dataplane::fib::LEAF_MISS);
            if fib.lookup(a) != want {
                return Err(format!("wrong leaf for {}", quad(a)));
            }
        }
    }

    drop(out);
    let mut res = [0u32; BURST];
    let mut burst_ns = Vec::new();
    let mut pass_ns = Vec::new();
    for _ in 0..o.passes {
        // A full fence after each burst, as rte_rdtsc_precise puts around each of dpdk-test-fib's
        // bursts: no overlap of one burst's misses with the next. One clock read per pass, since
        // a clock read per burst costs more here than dpdk's rdtsc.
        // Results go to one burst-sized buffer, as in dpdk-test-fib (and a graph node's frame).
        let mut sum = 0u32;
        let t0 = Instant::now();
        for a in lookups.chunks(BURST) {
            fib.lookup_batch(a, &mut res);
            fence(Ordering::SeqCst);
            sum = sum.wrapping_add(res[0]);
        }
        burst_ns.push(t0.elapsed().as_nanos() as f64 / lookups.len() as f64);
        let t0 = Instant::now();
        for a in lookups.chunks(BURST) {
            fib.lookup_batch(a, &mut res);
            sum = sum.wrapping_add(res[0]);
        }
        pass_ns.push(t0.elapsed().as_nanos() as f64 / lookups.len() as f64);
        std::hint::black_box(sum);
    }
    let mut variants = Vec::new();
    for imp in [LookupImpl::Scalar, LookupImpl::Avx2, LookupImpl::Avx512] {
        if !imp.available() {
            continue;
        }
        let mut v = Vec::new();
        for _ in 0..o.passes.min(3) {
            let mut sum = 0u32;
            let t0 = Instant::now();
            for a in lookups.chunks(BURST) {
                fib.lookup_batch_with(imp, a, &mut res);
                sum = sum.wrapping_add(res[0]);
            }
            v.push(t0.elapsed().as_nanos() as f64 / lookups.len() as f64);
            std::hint::black_box(sum);
        }
        variants.push((imp, median(&mut v)));
    }
    Ok(RvppRun {
        build_s,
        rss_bytes: rss,
        table_bytes: w.memory().table_bytes,
        burst_ns,
        pass_ns,
        variants,
        imp: fib.lookup_impl(),
        backing: {
            let (a, b) = fib.backing();
            format!("tbl24 {}, tbl8 {}", a.name(), b.name())
        },
    })
}

struct DpdkRun {
    cycles: f64,
    tsc_hz: f64,
    build_s: f64,
    hwm_bytes: u64,
}

/// A private hugetlbfs mount for DPDK's EAL, unmounted on drop. DPDK maps hugepages only
/// through hugetlbfs; rvpp maps them anonymously and needs none.
struct HugetlbfsMount(std::path::PathBuf);

impl HugetlbfsMount {
    /// Mounts one when the machine has enough free 2 MiB pages for dpdk-test-fib's tables.
    fn new(pages_needed: usize) -> Option<Self> {
        if rvpp_dataplane::buffer::free_hugepages() < pages_needed {
            return None;
        }
        let dir = std::env::temp_dir().join(format!("rvpp-fib-huge-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "hugetlbfs", "-o", "pagesize=2M", "nodev"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(Self(dir))
    }
}

impl Drop for HugetlbfsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// 2 MiB pages dpdk-test-fib needs for 1M routes with 1M tbl8 groups (measured: ~2.8 GiB).
const DPDK_HUGE_PAGES: usize = 1500;

#[allow(clippy::too_many_arguments)]
fn run_dpdk(
    bin: &str,
    rp: &Path,
    lp: &Path,
    routes: usize,
    tbl8: u32,
    variant: &str,
    tag: &str,
    huge_dir: Option<&Path>,
) -> Result<DpdkRun, String> {
    let prefix = format!("rvpp-fib-{}-{tag}", std::process::id());
    let mut cmd = Command::new(bin);
    match huge_dir {
        Some(d) => {
            // --huge-unlink: DPDK otherwise leaves its page files in the mount, holding the
            // pages after it exits, and rvpp's next run would find none free.
            cmd.arg("--huge-dir")
                .arg(d)
                .args(["-m", "3000", "--huge-unlink"]);
        }
        None => {
            cmd.args(["--no-huge", "-m", "8192"]);
        }
    }
    cmd.args(["--no-pci", "--file-prefix", &prefix]);
    // Under `taskset -c N`, run dpdk's lcore on that same CPU (it would otherwise take CPU 0).
    if let Some(cpu) = single_cpu() {
        cmd.args(["-l", &cpu]);
    }
    cmd.args([
        "--force-max-simd-bitwidth=512",
        "--log-level=lib.eal:debug",
        "--",
    ])
    .arg("-f")
    .arg(rp)
    .arg("-t")
    .arg(lp)
    .args(["-g", &tbl8.to_string(), "-v", variant])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let child = cmd.spawn().map_err(|e| format!("{bin}: {e}"))?;
    let pid = child.id();
    // Sample the child's peak RSS while it runs (VmHWM only grows).
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d2 = done.clone();
    let sampler = std::thread::spawn(move || {
        let mut hwm = 0;
        while !d2.load(Ordering::Relaxed) {
            if let Some(k) = vm_kib("VmHWM:", Some(pid)) {
                hwm = hwm.max(k);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        hwm
    });
    let outp = child.wait_with_output().map_err(|e| e.to_string())?;
    done.store(true, Ordering::Relaxed);
    let hwm = sampler.join().unwrap_or(0) * 1024;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&outp.stdout),
        String::from_utf8_lossy(&outp.stderr)
    );
    if !outp.status.success() {
        let tail: Vec<&str> = text.lines().rev().take(8).collect();
        return Err(format!("{bin} failed ({}): {:?}", outp.status, tail));
    }
    let grab = |key: &str| -> Vec<f64> {
        text.lines()
            .filter_map(|l| l.split_once(key))
            .filter_map(|(_, r)| {
                r.trim()
                    .trim_start_matches('~')
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .collect()
    };
    let cycles = *grab("AVG FIB lookup")
        .first()
        .ok_or("no 'AVG FIB lookup' line")?;
    let tsc_khz = *grab("TSC frequency is")
        .first()
        .ok_or("no TSC frequency line")?;
    let tsc_hz = tsc_khz * 1000.0;
    // It adds in ten slices and prints the average cycles per add of each.
    let adds = grab("AVG FIB add");
    let (mut i, mut total) = (0usize, 0f64);
    for (k, avg) in (1..=adds.len()).rev().zip(&adds) {
        let j = (routes - i) / k;
        total += avg * j as f64;
        i += j;
    }
    Ok(DpdkRun {
        cycles,
        tsc_hz,
        build_s: total / tsc_hz,
        hwm_bytes: hwm,
    })
}

pub fn run(args: &[String]) -> Result<Value, String> {
    let o = parse(args)?;
    let mut rng = Rng(o.seed);
    let routes = gen_routes(o.routes, &mut rng);
    let lookups = gen_lookups(&routes, o.lookups, &mut rng);
    let counts = depth_counts(o.routes);
    println!(
        "fib: {} routes (dpdk-test-fib default depth mix: /16../32 {} each), {} destinations, {} reps",
        routes.len(),
        counts[24],
        lookups.len(),
        o.reps
    );
    let dir = std::env::temp_dir().join(format!("rvpp-fib-bench-{}", std::process::id()));
    let files = match &o.dpdk {
        Some(_) => Some(write_files(&dir, &routes, &lookups)?),
        None => None,
    };
    // DPDK on hugepages too when the machine has enough, so that neither side alone gets
    // 2 MiB pages.
    let huge_mount = o
        .dpdk
        .as_ref()
        .and_then(|_| HugetlbfsMount::new(DPDK_HUGE_PAGES));
    let mut dpdk_variants = vec![("v", "avx512 vector", false), ("s3", "scalar", false)];
    if huge_mount.is_some() {
        dpdk_variants.push(("v", "avx512 vector hugepages", true));
    } else {
        println!(
            "dpdk-test-fib runs without hugepages: fewer than {DPDK_HUGE_PAGES} free 2 MiB pages"
        );
    }

    let mut r4k = Vec::new();
    let mut rthp = Vec::new();
    let mut dpdk: Vec<Vec<DpdkRun>> = dpdk_variants.iter().map(|_| Vec::new()).collect();
    let mut dpdk_err = None;
    for rep in 0..o.reps {
        for (huge, acc) in [(false, &mut r4k), (true, &mut rthp)] {
            let r = run_rvpp(&o, &routes, &lookups, huge, rep == 0 && !huge)?;
            let mut b = r.burst_ns.clone();
            println!(
                "rep {rep} rvpp {:<4} ({}) {:>6.2} ns/lookup fenced bursts ({:.1} Mlookups/s), {:.2} ns unfenced, \
                 build {:.2} s, rss +{} MiB",
                if huge { "huge" } else { "4k" },
                r.backing,
                median(&mut b),
                1e3 / median(&mut b),
                median(&mut r.pass_ns.clone()),
                r.build_s,
                r.rss_bytes >> 20
            );
            acc.push(r);
        }
        if let (Some(bin), Some((rp, lp))) = (&o.dpdk, &files) {
            for (k, (v, name, huge)) in dpdk_variants.iter().enumerate() {
                let hd = huge
                    .then(|| huge_mount.as_ref().map(|m| m.0.as_path()))
                    .flatten();
                match run_dpdk(
                    bin,
                    rp,
                    lp,
                    routes.len(),
                    o.tbl8,
                    v,
                    &format!("{rep}{v}{huge}"),
                    hd,
                ) {
                    Ok(d) => {
                        println!(
                            "rep {rep} dpdk {name:<13} {:>6.1} cycles/lookup = {:.2} ns ({:.1} Mlookups/s), \
                             build {:.2} s, peak rss {} MiB",
                            d.cycles,
                            d.cycles / d.tsc_hz * 1e9,
                            d.tsc_hz / d.cycles / 1e6,
                            d.build_s,
                            d.hwm_bytes >> 20
                        );
                        dpdk[k].push(d);
                    }
                    Err(e) => {
                        println!("rep {rep} dpdk {name}: {e}");
                        dpdk_err = Some(e);
                    }
                }
            }
        }
    }
    if files.is_some() {
        let _ = std::fs::remove_dir_all(&dir);
    }

    let summarize = |runs: &[RvppRun]| {
        let mut burst: Vec<f64> = runs
            .iter()
            .map(|r| median(&mut r.burst_ns.clone()))
            .collect();
        let mut pass: Vec<f64> = runs
            .iter()
            .map(|r| median(&mut r.pass_ns.clone()))
            .collect();
        let mut build: Vec<f64> = runs.iter().map(|r| r.build_s).collect();
        let mut rss: Vec<f64> = runs.iter().map(|r| r.rss_bytes as f64).collect();
        let variants: serde_json::Map<String, Value> =
            [LookupImpl::Scalar, LookupImpl::Avx2, LookupImpl::Avx512]
                .iter()
                .filter_map(|imp| {
                    let mut v: Vec<f64> = runs
                        .iter()
                        .flat_map(|r| r.variants.iter().filter(|x| x.0 == *imp).map(|x| x.1))
                        .collect();
                    (!v.is_empty()).then(|| (imp.name().to_string(), json!(1e9 / median(&mut v))))
                })
                .collect();
        (
            median(&mut burst),
            median(&mut pass),
            median(&mut build),
            median(&mut rss),
            variants,
        )
    };
    let (ns4k, pass4k, build4k, rss4k, var4k) = summarize(&r4k);
    let (nsthp, passthp, _, rssthp, varthp) = summarize(&rthp);
    let mut dv = serde_json::Map::new();
    let mut best: Option<(f64, &str, f64, f64, f64)> = None; // (rate, name, cycles, build, mem)
    for (k, (_, name, _)) in dpdk_variants.iter().enumerate() {
        if dpdk[k].is_empty() {
            continue;
        }
        let mut rate: Vec<f64> = dpdk[k].iter().map(|d| d.tsc_hz / d.cycles).collect();
        let mut cyc: Vec<f64> = dpdk[k].iter().map(|d| d.cycles).collect();
        let mut build: Vec<f64> = dpdk[k].iter().map(|d| d.build_s).collect();
        let mut mem: Vec<f64> = dpdk[k].iter().map(|d| d.hwm_bytes as f64).collect();
        let r = median(&mut rate);
        dv.insert(
            name.to_string(),
            json!({"lookups_per_s": r, "cycles_per_lookup": median(&mut cyc)}),
        );
        if best.iter().all(|b| r > b.0) {
            best = Some((
                r,
                name,
                median(&mut cyc),
                median(&mut build),
                median(&mut mem),
            ));
        }
    }
    let rvpp_rate = 1e9 / ns4k;
    let tsc_hz = dpdk.iter().flatten().map(|d| d.tsc_hz).next();
    let v = json!({
        "bench": "fib",
        "routes": routes.len(),
        "lookups": lookups.len(),
        "reps": o.reps,
        "passes_per_rep": o.passes,
        "depth_mix": "dpdk-test-fib default (complete_distrib without -d)",
        "dpdk_input": if files.is_some() { "same route and destination files via -f/-t (destinations byte-reversed to undo dpdk-test-fib's -t byte-order bug)" } else { "not run" },
        "timing": "rvpp: bursts of 64 each followed by a SeqCst fence (mfence), one clock read per pass; dpdk-test-fib: bursts of 64 between rte_rdtsc_precise reads (mfence+rdtsc), so its figure also carries ~2 rdtsc per burst",
        "rvpp_lookup_impl": r4k.first().map(|r| r.imp.name()),
        "rvpp_lookups_per_s": rvpp_rate,
        "rvpp_ns_per_lookup": ns4k,
        "rvpp_ns_per_lookup_unfenced": pass4k,
        "rvpp_variants_lookups_per_s": var4k,
        "rvpp_backing": r4k.first().map(|r| r.backing.clone()),
        "rvpp_huge_backing": rthp.first().map(|r| r.backing.clone()),
        "rvpp_huge_lookups_per_s": 1e9 / nsthp,
        "rvpp_huge_ns_per_lookup": nsthp,
        "rvpp_huge_ns_per_lookup_unfenced": passthp,
        "rvpp_huge_variants_lookups_per_s": varthp,
        "rvpp_build_s": build4k,
        "rvpp_rss_bytes": rss4k,
        "rvpp_huge_rss_bytes": rssthp,
        "rvpp_table_bytes": r4k.first().map(|r| r.table_bytes),
        "tbl8_groups_reserved": o.tbl8,
        "dpdk_cmd": o.dpdk.as_ref().map(|b| format!("{b} [--no-huge -m 8192 | --huge-dir <private hugetlbfs> -m 3000 --huge-unlink] --no-pci --file-prefix <unique> --force-max-simd-bitwidth=512 -- -f routes.txt -t lookups.txt -g {} -v <v|s3>", o.tbl8)),
        "dpdk_variants": dv,
        "dpdk_best_variant": best.map(|b| b.1),
        "dpdk_lookups_per_s": best.map(|b| b.0),
        "dpdk_ns_per_lookup": best.map(|b| 1e9 / b.0),
        "dpdk_cycles_per_lookup": best.map(|b| b.2),
        "dpdk_build_s": best.map(|b| b.3),
        "dpdk_peak_rss_bytes": best.map(|b| b.4),
        "dpdk_error": dpdk_err,
        "tsc_hz": tsc_hz,
        "pinned_cpu": single_cpu(),
        "ratio_normal_pages": best.map(|b| rvpp_rate / b.0),
        "ratio": best.map(|b| 1e9 / nsthp / b.0),
        "ratio_is": "rvpp's default (huge_pages: hugetlb when reserved, else THP) / dpdk's best variant",
    });
    println!(
        "fib: rvpp on 4 KiB pages {:.1} M/s ({:.2} ns, {}), on 2 MiB pages ({}) {:.1} M/s; dpdk best {} {}; ratio (2 MiB pages) {}",
        rvpp_rate / 1e6,
        ns4k,
        v["rvpp_lookup_impl"],
        v["rvpp_huge_backing"],
        1e3 / nsthp,
        v["dpdk_best_variant"],
        best.map_or("n/a".into(), |b| format!("{:.1} M/s", b.0 / 1e6)),
        v["ratio"]
    );
    let _ = std::io::stdout().flush();
    Ok(v)
}
