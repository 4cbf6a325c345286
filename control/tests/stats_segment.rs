//! The stats segment as VPP clients see it: a reader written after govpp's statseg_v2.go
//! (connect, receive the memfd, map it read-only, walk the directory under the epoch /
//! in_progress protocol), vpp_papi's VPPStats against the real daemon, and the directory
//! growing while readers read.

#[path = "../../test-support/skip.rs"]
mod skip;

mod common;
use common::Rvpp;

use rvpp_control::cli;
use rvpp_control::daemon::{Dataplane, DataplaneConfig};
use rvpp_control::stats;
use rvpp_dataplane::device::RxMode;
use rvpp_drivers::shm::{self, SharedMem};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// ----- a reader, following govpp's algorithm ---------------------------------------------

const ENTRY: usize = 144;

#[derive(Clone, Debug, PartialEq)]
enum Stat {
    Scalar(u64),
    Gauge(u64),
    Simple(Vec<Vec<u64>>),
    Combined(Vec<Vec<(u64, u64)>>),
    Names(Vec<String>),
    Symlink(u32, u32),
    Empty,
}

/// One consistent read of the whole directory.
struct Snapshot {
    epoch: u64,
    /// Directory order.
    names: Vec<String>,
    stats: BTreeMap<String, Stat>,
}

impl Snapshot {
    fn get(&self, name: &str) -> &Stat {
        self.stats
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in the directory"))
    }
    fn scalar(&self, name: &str) -> u64 {
        match self.get(name) {
            Stat::Scalar(v) | Stat::Gauge(v) => *v,
            s => panic!("{name} is {s:?}"),
        }
    }
    fn if_names(&self) -> Vec<String> {
        match self.get("/if/names") {
            Stat::Names(n) => n.clone(),
            s => panic!("/if/names is {s:?}"),
        }
    }
    /// Sum over threads of a simple counter, or of a symlink into one.
    fn simple_sum(&self, name: &str, index: usize) -> u64 {
        match self.get(name) {
            Stat::Simple(rows) => rows.iter().map(|r| r[index]).sum(),
            Stat::Symlink(i1, i2) => {
                assert_eq!(index, 0);
                self.simple_sum(&self.names[*i1 as usize].clone(), *i2 as usize)
            }
            s => panic!("{name} is {s:?}"),
        }
    }
    /// (packets, bytes) summed over threads.
    fn combined_sum(&self, name: &str, index: usize) -> (u64, u64) {
        match self.get(name) {
            Stat::Combined(rows) => rows
                .iter()
                .fold((0, 0), |a, r| (a.0 + r[index].0, a.1 + r[index].1)),
            Stat::Symlink(i1, i2) => {
                self.combined_sum(&self.names[*i1 as usize].clone(), *i2 as usize)
            }
            s => panic!("{name} is {s:?}"),
        }
    }
}

/// A pointer or length that does not fit the segment: the writer moved things; retry.
#[derive(Debug)]
struct Stale;

struct Reader {
    m: SharedMem,
}

impl Reader {
    fn connect(path: &Path) -> Reader {
        let fd = shm::recv_fd_from(path, 2000).expect("receive the segment fd");
        let m = SharedMem::map_readonly(fd).expect("map the segment");
        let r = Reader { m };
        assert_eq!(r.m.load_u64(0), 2, "segment version");
        r
    }
    fn u64_at(&self, off: usize) -> Result<u64, Stale> {
        if off & 7 != 0 || off + 8 > self.m.len() {
            return Err(Stale);
        }
        Ok(self.m.load_u64(off))
    }
    fn epoch(&self) -> (u64, bool) {
        (self.m.load_u64(16), self.m.load_u64(24) != 0)
    }
    /// govpp `adjust`: a writer pointer to an offset strictly inside the segment.
    fn adjust(&self, ptr: u64) -> Result<usize, Stale> {
        let off = ptr.wrapping_sub(self.m.load_u64(8)) as usize;
        if off == 0 || off >= self.m.len() - 1 {
            return Err(Stale);
        }
        Ok(off)
    }
    /// A clib vector's data offset and length (`u32 len` in the 8 bytes before the data).
    fn vector(&self, ptr: u64, elem: usize) -> Result<(usize, usize), Stale> {
        let off = self.adjust(ptr)?;
        if off < 8 || off & 7 != 0 {
            return Err(Stale);
        }
        let len = self.m.load_u32(off - 8) as usize;
        if off + len * elem > self.m.len() {
            return Err(Stale);
        }
        Ok((off, len))
    }
    fn rows<T>(
        &self,
        ptr: u64,
        elem: usize,
        f: impl Fn(usize) -> Result<T, Stale>,
    ) -> Result<Vec<Vec<T>>, Stale> {
        let (outer, threads) = self.vector(ptr, 8)?;
        let mut out = Vec::new();
        for t in 0..threads {
            let (row, n) = self.vector(self.u64_at(outer + 8 * t)?, elem)?;
            out.push(
                (0..n)
                    .map(|i| f(row + i * elem))
                    .collect::<Result<_, _>>()?,
            );
        }
        Ok(out)
    }
    fn read_all(&self) -> Result<Snapshot, Stale> {
        let (dir, n) = self.vector(self.m.load_u64(32), ENTRY)?;
        let mut names = Vec::with_capacity(n);
        let mut stats = BTreeMap::new();
        for i in 0..n {
            let e = dir + i * ENTRY;
            let ty = self.m.load_u32(e);
            let v = self.u64_at(e + 8)?;
            let mut raw = [0u8; 128];
            self.m.read_bytes(e + 16, &mut raw);
            let end = raw.iter().position(|&b| b == 0).ok_or(Stale)?;
            let name = String::from_utf8_lossy(&raw[..end]).into_owned();
            let s = match ty {
                1 => Stat::Scalar(v),
                9 => Stat::Gauge(v),
                2 => Stat::Simple(self.rows(v, 8, |o| self.u64_at(o))?),
                3 => Stat::Combined(
                    self.rows(v, 16, |o| Ok((self.u64_at(o)?, self.u64_at(o + 8)?)))?,
                ),
                4 => {
                    let (outer, k) = self.vector(v, 8)?;
                    let mut out = Vec::new();
                    for j in 0..k {
                        let (s, len) = self.vector(self.u64_at(outer + 8 * j)?, 1)?;
                        let mut b = vec![0u8; len];
                        self.m.read_bytes(s, &mut b);
                        if b.pop() != Some(0) {
                            return Err(Stale);
                        }
                        out.push(String::from_utf8_lossy(&b).into_owned());
                    }
                    Stat::Names(out)
                }
                6 => Stat::Symlink(v as u32, (v >> 32) as u32),
                5 => Stat::Empty,
                // Garbage from a directory being rebuilt under us: the epoch check decides.
                _ => return Err(Stale),
            };
            names.push(name.clone());
            stats.insert(name, s);
        }
        Ok(Snapshot {
            epoch: 0,
            names,
            stats,
        })
    }
    /// Read until a read starts and ends in the same epoch with no update in progress.
    /// Returns the snapshot and the number of retries.
    fn snapshot(&self) -> (Snapshot, u32) {
        let t = Instant::now();
        let mut retries = 0;
        loop {
            assert!(t.elapsed() < Duration::from_secs(10), "no consistent read");
            let (epoch, busy) = self.epoch();
            if busy {
                std::thread::sleep(Duration::from_micros(100));
                retries += 1;
                continue;
            }
            let r = self.read_all();
            let (epoch2, busy2) = self.epoch();
            match r {
                Ok(mut s) if epoch2 == epoch && !busy2 => {
                    s.epoch = epoch;
                    return (s, retries);
                }
                _ => retries += 1,
            }
        }
    }
}

// ----- in-process dataplane ----------------------------------------------------------------

fn tmp_dir(tag: &str) -> PathBuf {
    common::test_dir(&format!("stats-{tag}"))
}

fn dataplane(workers: usize) -> Arc<Dataplane> {
    Dataplane::start(&DataplaneConfig {
        buffers: 4096,
        data_size: 2048,
        try_hugepages: false,
        main_core: None,
        worker_cores: vec![None; workers],
        rx_mode: RxMode::Polling,
        cnat: Default::default(),
    })
    .unwrap()
}

fn exec(dp: &Arc<Dataplane>, line: &str) {
    let out = cli::execute(dp, line);
    assert!(
        !out.contains("unknown") && !out.contains("rror"),
        "{line}: {out}"
    );
}

/// pg0 -> null1 with `count` packets, half of them to an unrouted destination.
fn traffic(dp: &Arc<Dataplane>, count: u64) {
    for c in [
        format!("create packet-generator interface pg0 count {count} size 64 dst 198.19.7.0/24"),
        "create null interface null1".into(),
        "set interface ip address pg0 198.18.0.1/24".into(),
        "set interface ip address null1 198.19.255.1/30".into(),
        "set ip neighbor null1 198.19.255.2 02:00:00:00:00:02".into(),
        "ip route add 198.19.7.0/25 via 198.19.255.2 null1".into(),
        "set interface state null1 up".into(),
        "set interface state pg0 up".into(),
        "packet-generator enable".into(),
    ] {
        exec(dp, &c);
    }
}

/// `show errors` as (node, reason) -> count.
fn show_errors(out: &str) -> BTreeMap<(String, String), u64> {
    let mut m = BTreeMap::new();
    for l in out.lines().skip(1) {
        let mut w = l.split_whitespace();
        let (Some(n), Some(node)) = (w.next(), w.next()) else {
            continue;
        };
        let rest: Vec<&str> = w.collect();
        let reason = rest[..rest.len() - 1].join(" ");
        m.insert((node.to_string(), reason), n.parse().unwrap());
    }
    m
}

/// `show interface`: name -> (sw_if_index, rx packets, tx packets, drops).
fn show_interface(out: &str) -> BTreeMap<String, (usize, u64, u64, u64)> {
    let mut m = BTreeMap::new();
    let mut cur: Option<String> = None;
    for l in out.lines().skip(1) {
        if !l.starts_with(' ') {
            let w: Vec<&str> = l.split_whitespace().collect();
            cur = Some(w[0].to_string());
            m.insert(w[0].to_string(), (w[1].parse().unwrap(), 0, 0, 0));
        }
        let e = m.get_mut(cur.as_ref().unwrap()).unwrap();
        let val = || l.split_whitespace().last().unwrap().parse::<u64>().unwrap();
        if l.contains("rx packets") {
            e.1 = val();
        } else if l.contains("tx packets") {
            e.2 = val();
        } else if l.contains(" drops ") {
            e.3 = val();
        }
    }
    m
}

fn wait_for(what: &str, f: impl FnMut() -> bool) {
    common::wait_for(what, 15, f)
}

/// Counters in the segment equal the CLI's after traffic; `clear errors` zeroes them.
fn check_counters_against_cli(dp: &Arc<Dataplane>, seg: &stats::StatsSegment, r: &Reader) {
    traffic(dp, 1000);
    wait_for("pg0 sent 1000", || {
        let m = show_interface(&cli::execute(dp, "show interface"));
        m.get("pg0").is_some_and(|e| e.1 == 1000)
            && m.get("null1").is_some_and(|e| e.2 > 0)
            && show_errors(&cli::execute(dp, "show errors"))
                .values()
                .sum::<u64>()
                + m["null1"].2
                >= 1000
    });
    seg.update();
    let (s, _) = r.snapshot();
    let ifs = show_interface(&cli::execute(dp, "show interface"));
    let names = s.if_names();
    for (name, (sw, rx, tx, drops)) in &ifs {
        assert_eq!(&names[*sw], name);
        assert_eq!(s.combined_sum("/if/rx", *sw).0, *rx, "{name} rx");
        assert_eq!(s.combined_sum("/if/tx", *sw).0, *tx, "{name} tx");
        assert_eq!(s.simple_sum("/if/drops", *sw), *drops, "{name} drops");
        assert_eq!(
            s.combined_sum(&format!("/interfaces/{name}/rx"), 0).0,
            *rx,
            "{name} symlink"
        );
    }
    assert_eq!(s.combined_sum("/if/rx", ifs["pg0"].0).1, 64_000);
    let errs = show_errors(&cli::execute(dp, "show errors"));
    assert!(!errs.is_empty(), "the unrouted half should count an error");
    for ((node, reason), n) in &errs {
        assert_eq!(
            s.simple_sum(&format!("/err/{node}/{reason}"), 0),
            *n,
            "/err/{node}/{reason}"
        );
    }
    let total = s.scalar("/buffer-pools/default-numa-0/available")
        + s.scalar("/buffer-pools/default-numa-0/cached")
        + s.scalar("/buffer-pools/default-numa-0/used");
    assert_eq!(total, dp.pool.capacity() as u64);
    assert!(s.scalar("/buffer-pools/default-numa-0/available") > 0);
    // The pool's backing, as `show buffers` names it.
    assert_eq!(
        s.scalar("/buffer-pools/default-numa-0/page-size"),
        dp.pool.backing().page_size() as u64
    );
    match s.get("/buffer-pools/default-numa-0/backing") {
        Stat::Names(n) => assert_eq!(n, &vec![dp.pool.backing().name().to_string()]),
        other => panic!("backing is {other:?}"),
    }
    // Node counters and their symlinks.
    let pg = s.simple_sum("/nodes/pg-input/vectors", 0);
    assert!(pg >= 1000, "pg-input vectors {pg}");

    exec(dp, "clear errors");
    exec(dp, "clear interfaces");
    seg.update();
    let (s2, _) = r.snapshot();
    assert_eq!(s2.epoch, s.epoch, "value updates leave the epoch alone");
    for (node, reason) in errs.keys() {
        assert_eq!(s2.simple_sum(&format!("/err/{node}/{reason}"), 0), 0);
    }
    assert_eq!(s2.combined_sum("/if/rx", ifs["pg0"].0).0, 0);
    assert!(s2.scalar("/sys/heartbeat") > s.scalar("/sys/heartbeat"));
}

#[test]
fn reader_sees_counters_and_a_growing_directory() {
    let dir = tmp_dir("inproc");
    let dp = dataplane(0);
    let sock = dir.join("stats.sock");
    let seg = stats::start(dp.clone(), &sock, 8 << 20).unwrap();
    let r = Reader::connect(&sock);
    let e = stats::start(dp.clone(), &sock, 1 << 20)
        .err()
        .expect("socket in use");
    assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
    let (s0, _) = r.snapshot();
    assert_eq!(s0.names[0], "/sys/heartbeat");
    assert_eq!(s0.names[1], "/sys/last_stats_clear");
    assert_eq!(s0.names[2], "/sys/boottime");
    // A fresh rvpp has only local0 (sw_if_index 0), as VPP does.
    assert_eq!(s0.if_names(), vec!["local0".to_string()]);
    assert!(s0.scalar("/sys/boottime") > 1_600_000_000);
    assert_eq!(s0.scalar("/sys/num_worker_threads"), 0);
    for c in ["rx", "tx", "rx-unicast", "tx-broadcast"] {
        assert!(matches!(s0.get(&format!("/if/{c}")), Stat::Combined(_)));
    }
    for c in ["drops", "rx-error", "tx-error", "rx-miss", "ip4"] {
        assert!(matches!(s0.get(&format!("/if/{c}")), Stat::Simple(_)));
    }
    assert!(matches!(s0.get("/node/errors"), Stat::Simple(rows) if rows.len() == 1));
    assert!(matches!(s0.get("/sys/vector_rate"), Stat::Gauge(_)));
    assert!(s0.names.iter().any(|n| n.starts_with("/err/ip4-input/")));

    check_counters_against_cli(&dp, &seg, &r);

    // Interfaces come and go: the same mapping shows the new directory after an epoch bump.
    let (before, _) = r.snapshot();
    for i in 0..40 {
        exec(&dp, &format!("create null interface extra{i}"));
    }
    seg.update();
    let (s1, _) = r.snapshot();
    assert!(s1.epoch > before.epoch);
    let names = s1.if_names();
    assert_eq!(
        names.len(),
        43,
        "local0, 2 from the counter check, extra0..extra39"
    );
    assert_eq!(names[42], "extra39");
    let Stat::Combined(rows) = s1.get("/if/rx") else {
        panic!()
    };
    assert!(rows.iter().all(|r| r.len() == 43));
    assert!(s1.stats.contains_key("/interfaces/extra7/tx-error"));
    let gone = names.iter().position(|n| n == "extra3").unwrap();
    dp.fwd().interface_del(gone as u32).unwrap();
    seg.update();
    let (s2, _) = r.snapshot();
    assert_eq!(s2.if_names()[gone], "deleted");
    assert!(!s2.stats.contains_key("/interfaces/extra3/rx"));
    assert!(s2.epoch > s1.epoch);

    drop(seg);
    assert!(!sock.exists(), "socket left behind");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn readers_stay_consistent_while_the_directory_is_rebuilt() {
    let dir = tmp_dir("stress");
    let dp = dataplane(2);
    let sock = dir.join("stats.sock");
    let seg = Arc::new(stats::start(dp.clone(), &sock, 4 << 20).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (sock, stop) = (sock.clone(), stop.clone());
            std::thread::spawn(move || {
                let r = Reader::connect(&sock);
                let (mut reads, mut retries, mut last_hb, mut last_epoch) = (0u64, 0u64, 0, 0);
                while !stop.load(Ordering::Relaxed) || reads < 10 {
                    let (s, n) = r.snapshot();
                    retries += n as u64;
                    reads += 1;
                    let names = s.if_names();
                    // Every per-interface vector has one slot per name, on every thread.
                    for c in ["/if/rx", "/if/tx"] {
                        let Stat::Combined(rows) = s.get(c) else {
                            panic!()
                        };
                        assert_eq!(rows.len(), 3, "main thread + 2 workers");
                        assert!(rows.iter().all(|r| r.len() == names.len()));
                    }
                    let Stat::Simple(rows) = s.get("/if/drops") else {
                        panic!()
                    };
                    assert!(rows.iter().all(|r| r.len() == names.len()));
                    for (i, n) in names.iter().enumerate() {
                        if n != "deleted" {
                            assert!(
                                matches!(s.get(&format!("/interfaces/{n}/drops")), Stat::Symlink(_, x) if *x as usize == i)
                            );
                        }
                    }
                    let hb = s.scalar("/sys/heartbeat");
                    assert!(hb >= last_hb && s.epoch >= last_epoch);
                    assert_eq!(s.scalar("/sys/num_worker_threads"), 2);
                    last_hb = hb;
                    last_epoch = s.epoch;
                }
                (reads, retries)
            })
        })
        .collect();
    let gen0 = seg.generation();
    for i in 0..150 {
        exec(&dp, &format!("create null interface n{i}"));
        if i % 3 == 0 {
            let sw = dp
                .fwd()
                .ifs()
                .by_name(&format!("n{}", i / 2))
                .map(|x| x.sw_if_index);
            if let Some(sw) = sw {
                dp.fwd().interface_del(sw).unwrap();
            }
        }
        seg.update();
    }
    assert!(seg.generation() >= gen0 + 150);
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        let (reads, retries) = r.join().unwrap();
        assert!(reads >= 10, "reads {reads} retries {retries}");
    }
    drop(seg);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_small_segment_drops_symlinks_but_keeps_counters() {
    let dir = tmp_dir("small");
    let dp = dataplane(0);
    let sock = dir.join("stats.sock");
    let opts = stats::Options {
        per_node_counters: false,
        ..Default::default()
    };
    let seg = stats::start_with_options(dp.clone(), &sock, 0, opts).unwrap();
    let r = Reader::connect(&sock);
    assert_eq!(r.m.len(), 256 << 10, "the minimum size");
    exec(&dp, "create null interface first");
    seg.update();
    let (s, _) = r.snapshot();
    assert!(s.stats.contains_key("/interfaces/first/rx"));
    assert!(!s.stats.contains_key("/sys/node/names"));
    assert!(!s.names.iter().any(|n| n.starts_with("/nodes/")));
    for i in 0..300 {
        exec(&dp, &format!("create null interface many{i}"));
    }
    seg.update();
    let (s, _) = r.snapshot();
    let names = s.if_names();
    assert_eq!(names.len(), 302, "local0, first, many0..many299");
    assert_eq!(names[301], "many299");
    assert!(!s.names.iter().any(|n| n.starts_with("/interfaces/")));
    assert!(matches!(s.get("/if/tx"), Stat::Combined(rows) if rows[0].len() == 302));
    assert!(s.names.iter().any(|n| n.starts_with("/err/")));
    drop(seg);
    let _ = std::fs::remove_dir_all(&dir);
}

// ----- the real daemon ----------------------------------------------------------------------

fn start_rvpp(tag: &str, cpu: &str) -> Rvpp {
    let conf = format!(
        "buffers {{ buffers-per-numa 8192 }}\ncpu {{ {cpu} }}\nstatseg {{ socket-name {{dir}}/stats.sock }}"
    );
    Rvpp::start_with(
        &format!("stats-{tag}"),
        common::Opts {
            conf: &conf,
            wait_for: &["stats.sock"],
            ..Default::default()
        },
    )
}

fn ctl(sock: &Path, cmd: &str) -> String {
    let s = common::ctl(sock, cmd);
    assert!(!s.contains("unknown"), "{cmd}: {s}");
    s
}

fn daemon_traffic(r: &Rvpp) {
    for c in [
        "create packet-generator interface pg0 count 1000 size 64 dst 198.19.7.0/24",
        "create null interface null1",
        "set interface ip address pg0 198.18.0.1/24",
        "set interface ip address null1 198.19.255.1/30",
        "set ip neighbor null1 198.19.255.2 02:00:00:00:00:02",
        "ip route add 198.19.7.0/25 via 198.19.255.2 null1",
        "set interface state null1 up",
        "set interface state pg0 up",
        "packet-generator enable",
    ] {
        ctl(&r.cli, c);
    }
    wait_for("traffic done", || {
        let m = show_interface(&ctl(&r.cli, "show interface"));
        let errs: u64 = show_errors(&ctl(&r.cli, "show errors")).values().sum();
        m.get("pg0").is_some_and(|e| e.1 == 1000)
            && m.get("null1").is_some_and(|e| e.2 + errs >= 1000)
    });
    // The control thread copies counters every ~10 ms: wait until the segment has been
    // rewritten twice since the traffic ended, however slow the machine is.
    let rd = Reader::connect(&r.path("stats.sock"));
    let hb = rd.snapshot().0.scalar("/sys/heartbeat");
    wait_for("two stats updates after the traffic", || {
        rd.snapshot().0.scalar("/sys/heartbeat") >= hb + 2
    });
}

fn sigterm(mut r: Rvpp) {
    let st = r.terminate();
    assert!(st.success(), "rvpp exited with {st}");
    assert!(!r.path("stats.sock").exists(), "stats socket left behind");
}

/// govpp's algorithm against the real daemon, with a worker thread.
#[test]
fn daemon_serves_the_segment_to_a_govpp_style_reader() {
    let r = start_rvpp("govpp", "main-core 0 corelist-workers 1");
    daemon_traffic(&r);
    let rd = Reader::connect(&r.path("stats.sock"));
    let (s, _) = rd.snapshot();
    let ifs = show_interface(&ctl(&r.cli, "show interface"));
    let names = s.if_names();
    for (name, (sw, rx, tx, _)) in &ifs {
        assert_eq!(&names[*sw], name);
        assert_eq!(s.combined_sum("/if/rx", *sw).0, *rx);
        assert_eq!(s.combined_sum("/if/tx", *sw).0, *tx);
    }
    let Stat::Combined(rows) = s.get("/if/rx") else {
        panic!()
    };
    assert_eq!(rows.len(), 2, "thread 0 (main) and thread 1 (vpp_wk_0)");
    assert_eq!(
        rows[0][ifs["pg0"].0].0, 0,
        "the main thread forwards nothing"
    );
    assert_eq!(s.scalar("/sys/num_worker_threads"), 1);
    for ((node, reason), n) in show_errors(&ctl(&r.cli, "show errors")) {
        assert_eq!(s.simple_sum(&format!("/err/{node}/{reason}"), 0), n);
    }
    let hb = s.scalar("/sys/heartbeat");
    wait_for("heartbeat", || {
        rd.snapshot().0.scalar("/sys/heartbeat") > hb
    });
    sigterm(r);
}

/// vpp_papi's VPPStats (what VPP's own tests and tools use) reads the daemon's segment.
#[test]
fn vpp_papi_reads_the_daemon_segment() {
    if !skip::need_python_module("vpp_papi.vpp_stats") {
        return;
    }
    let r = start_rvpp("papi", "workers 0");
    daemon_traffic(&r);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/stats/read_stats.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(r.path("stats.sock"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "read_stats.py failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names = BTreeMap::new();
    let mut rx = BTreeMap::new();
    let mut tx = BTreeMap::new();
    let mut sym = BTreeMap::new();
    let mut errs = BTreeMap::new();
    let mut scalars = BTreeMap::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split('\t').collect();
        let n = |i: usize| f[i].parse::<u64>().unwrap();
        match f[0] {
            "version" => assert_eq!(n(1), 2),
            "name" => {
                names.insert(f[2].to_string(), n(1) as usize);
            }
            "rx" => {
                rx.insert(n(1) as usize, (n(2), n(3)));
            }
            "tx" => {
                tx.insert(n(1) as usize, n(2));
            }
            "ifsym" => {
                sym.insert(n(1) as usize, n(2));
            }
            "err" => {
                errs.insert(f[1].to_string(), n(2));
            }
            "scalar" => {
                scalars.insert(f[1].to_string(), n(2));
            }
            "threads" => assert_eq!(n(1), 1),
            _ => {}
        }
    }
    let ifs = show_interface(&ctl(&r.cli, "show interface"));
    assert_eq!(names.len(), ifs.len(), "{text}");
    for (name, (sw, crx, ctx, _)) in &ifs {
        assert_eq!(names[name], *sw, "{text}");
        assert_eq!(rx[sw].0, *crx, "{name} rx\n{text}");
        assert_eq!(tx[sw], *ctx, "{name} tx\n{text}");
        assert_eq!(sym[sw], *crx, "{name} /interfaces symlink\n{text}");
    }
    assert_eq!(rx[&ifs["pg0"].0], (1000, 64_000));
    let cli_errs = show_errors(&ctl(&r.cli, "show errors"));
    assert!(!cli_errs.is_empty());
    assert_eq!(errs.len(), cli_errs.len(), "{text}");
    for ((node, reason), c) in cli_errs {
        assert_eq!(errs[&format!("/err/{node}/{reason}")], c, "{text}");
    }
    let bp = |k: &str| scalars[&format!("/buffer-pools/default-numa-0/{k}")];
    assert_eq!(bp("available") + bp("cached") + bp("used"), 8192, "{text}");
    assert!(bp("available") > 4096, "{text}");
    assert!(scalars["/sys/heartbeat"] > 0);
    assert!(scalars["/sys/boottime"] > 1_600_000_000);
    assert_eq!(scalars["/sys/num_worker_threads"], 0);
    assert!(scalars.contains_key("/sys/vector_rate"));
    assert!(scalars.contains_key("/sys/last_update"));
    sigterm(r);
}

/// Loopbacks are named as VPP names them, the lowest free `loop<N>`, whoever creates them: the
/// CLI used to count loopbacks and collided with a survivor after a delete.
#[test]
fn loopbacks_take_the_lowest_free_instance() {
    let dp = dataplane(0);
    exec(&dp, "create loopback interface");
    exec(&dp, "create loopback interface");
    let sw0 = dp.fwd().ifs().by_name("loop0").unwrap().sw_if_index;
    assert!(dp.fwd().ifs().by_name("loop1").is_some());
    // Delete loop0 through the control service (what the API's delete_loopback and the CLI's
    // `delete loopback interface` call); the CLI's next one is loop0 again.
    rvpp_control::service::interfaces::delete(&dp, sw0, "loopback").unwrap();
    let out = cli::execute(&dp, "create loopback interface");
    assert_eq!(out.trim(), "loop0", "{out}");
    // And the API's path (the same control-service call) takes the next free one.
    let (_, name) =
        rvpp_control::service::interfaces::create_loopback(&dp, [2, 0, 0, 0, 0, 0x10]).unwrap();
    assert_eq!(name, "loop2");
}
