//! The rvpp memif device: against dpdk-testpmd (net_memif, macswap) in both roles, with 1 and 2
//! queues and sizes 64..9000; testpmd killed and restarted mid-traffic; rvpp server against an
//! rvpp client in one process (copy on one side, zero-copy on the other); hostile peers.
//! Every test checks that the buffer pool returns to its baseline (no leaks).
//!
//! The testpmd tests skip (fail under CI, see test-support/skip.rs) when `dpdk-testpmd` is not
//! in PATH. They run one at a
//! time (testpmd busy-polls a core and the box has two).

#[path = "../../test-support/skip.rs"]
mod skip;

use memif::{proto, Config, Desc, Event, Interface, Mode, Role};
use rvpp_dataplane::buffer::{BufferPool, Buffers};
use rvpp_dataplane::device::{RxQueue, TxQueue};
use rvpp_dataplane::graph::rx_next;
use rvpp_drivers::memif::{MemifConfig, MemifDevice, MemifQueues, MemifRxQueue, MemifTxQueue};
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000_000
}

fn unique_path(tag: &str) -> String {
    format!(
        "/tmp/rvpp-memifdev-{tag}-{}-{}.sock",
        std::process::id(),
        nanos()
    )
}

/// A running testpmd, killed (and its runtime dir removed) on drop.
struct Testpmd {
    child: Child,
    _stdin: ChildStdin,
    prefix: String,
    log: String,
}

impl Testpmd {
    fn spawn(bin: &PathBuf, role: &str, sock: &str, queues: u16) -> Testpmd {
        let prefix = format!("rvpp-memifdev-{}-{}", std::process::id(), nanos());
        let log = format!("/tmp/{prefix}.log");
        let out = File::create(&log).unwrap();
        let mut child = Command::new(bin)
            .args(["--no-huge", "-m", "512", "--no-pci", "--lcores=0@1,1@1"])
            .args(["--file-prefix", &prefix])
            .arg(format!(
                "--vdev=net_memif0,role={role},socket={sock},socket-abstract=no"
            ))
            .args([
                "--",
                "--total-num-mbufs=16384",
                "--forward-mode=macswap",
                "--auto-start",
                "--no-mlockall",
                "-i",
            ])
            .arg(format!("--rxq={queues}"))
            .arg(format!("--txq={queues}"))
            .stdin(Stdio::piped())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn dpdk-testpmd");
        let stdin = child.stdin.take().unwrap();
        Testpmd {
            child,
            _stdin: stdin,
            prefix,
            log,
        }
    }

    fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(25)..].join("\n")
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Testpmd {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{}", self.prefix));
        if std::thread::panicking() {
            eprintln!("testpmd log {}:\n{}", self.log, self.log_tail());
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// The device and a test-thread view of its queues.
struct Dut {
    dev: MemifDevice,
    rx: Vec<MemifRxQueue>,
    tx: Vec<MemifTxQueue>,
    pool: Arc<BufferPool>,
    bufs: Buffers,
    link: Arc<AtomicBool>,
    link_changes: Arc<AtomicU32>,
}

const SW: u32 = 5;

impl Dut {
    fn new(cfg: MemifConfig, workers: usize) -> Dut {
        Self::with_pool(
            cfg,
            workers,
            BufferPool::with_backing(16384, 2048, false).unwrap(),
        )
    }

    fn with_pool(cfg: MemifConfig, workers: usize, pool: Arc<BufferPool>) -> Dut {
        let link = Arc::new(AtomicBool::new(false));
        let changes = Arc::new(AtomicU32::new(0));
        let (l2, c2) = (link.clone(), changes.clone());
        let MemifQueues { device, rx, tx } = MemifDevice::start(
            cfg,
            SW,
            pool.clone(),
            workers,
            Box::new(move |up| {
                l2.store(up, Ordering::SeqCst);
                c2.fetch_add(1, Ordering::SeqCst);
            }),
        )
        .expect("memif device");
        let bufs = pool.local();
        Dut {
            dev: device,
            rx,
            tx,
            pool,
            bufs,
            link,
            link_changes: changes,
        }
    }

    /// The device another takes over from `old` (a live restart), on its own pool.
    fn adopt(old: &Dut, cfg: MemifConfig, workers: usize) -> Dut {
        let pool = BufferPool::with_backing(16384, 2048, false).unwrap();
        let link = Arc::new(AtomicBool::new(old.dev.is_connected()));
        let changes = Arc::new(AtomicU32::new(0));
        let (l2, c2) = (link.clone(), changes.clone());
        let handoff = old.dev.handoff().expect("handoff");
        let MemifQueues { device, rx, tx } = MemifDevice::adopt(
            cfg,
            handoff,
            SW,
            pool.clone(),
            workers,
            Box::new(move |up| {
                l2.store(up, Ordering::SeqCst);
                c2.fetch_add(1, Ordering::SeqCst);
            }),
        )
        .expect("adopted memif device");
        let bufs = pool.local();
        Dut {
            dev: device,
            rx,
            tx,
            pool,
            bufs,
            link,
            link_changes: changes,
        }
    }

    fn wait_link(&mut self, up: bool, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.link.load(Ordering::SeqCst) != up {
            assert!(Instant::now() < deadline, "link never went {up}");
            self.idle_poll();
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Poll every queue and drop what arrives (also lets queues notice link changes).
    fn idle_poll(&mut self) {
        for q in 0..self.rx.len() {
            drop(self.recv(q));
        }
        for t in &mut self.tx {
            t.flush(&mut self.bufs);
        }
    }

    /// Send frames on tx queue `w` (= ring w % rings); returns how many the device took.
    fn send(&mut self, w: usize, frames: &[Vec<u8>]) -> usize {
        let mut idx = Vec::new();
        for f in frames {
            idx.push(self.bufs.alloc_from_bytes(f).expect("buffers"));
        }
        let n = self.tx[w].tx(&mut self.bufs, &idx);
        self.bufs.free(&idx[n..]);
        self.tx[w].flush(&mut self.bufs);
        n
    }

    fn recv(&mut self, q: usize) -> Vec<(Vec<u8>, u16)> {
        let mut out = [0u32; 256];
        let mut nexts = [0u16; 256];
        let n = self.rx[q].rx(&mut self.bufs, &mut out, &mut nexts);
        let mut v = Vec::new();
        for i in 0..n {
            let len = self.bufs.get(out[i]).total_len();
            let mut p = vec![0u8; len];
            assert_eq!(self.bufs.copy_chain(out[i], &mut p), len);
            assert_eq!(self.bufs.meta(out[i]).rx_sw_if_index, SW);
            v.push((p, nexts[i]));
        }
        self.bufs.free(&out[..n]);
        v
    }

    /// Wait until the pool is back to `base` buffers in use (queues release rings lazily).
    fn assert_no_leak(&mut self, base: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            self.idle_poll();
            self.bufs.flush();
            let u = self.pool.in_use();
            if u == base {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "buffer leak: {u} in use, baseline {base}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(self.pool.double_frees(), 0, "double frees");
    }
}

const PROBE: u32 = 0xFFFF_0000;

fn frame(len: usize, seq: u32) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(seq) as u8)
        .collect();
    f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14..18].copy_from_slice(&seq.to_be_bytes());
    f
}

fn swapped(mut f: Vec<u8>) -> Vec<u8> {
    let (a, b) = f.split_at_mut(6);
    a.swap_with_slice(&mut b[..6]);
    f
}

fn seq_of(p: &[u8]) -> u32 {
    p.get(14..18)
        .map_or(u32::MAX, |s| u32::from_be_bytes(s.try_into().unwrap()))
}

/// testpmd drops frames for a while after the link comes up: probe each queue until one echo
/// arrives, then drain.
fn warm_up(d: &mut Dut, pmd: &Testpmd, queues: usize) {
    for q in 0..queues {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = Instant::now() - Duration::from_secs(1);
        'probe: loop {
            assert!(
                Instant::now() < deadline,
                "testpmd never echoed on queue {q}; log:\n{}",
                pmd.log_tail()
            );
            if last.elapsed() > Duration::from_millis(50) {
                d.send(q, &[frame(64, PROBE | q as u32)]);
                last = Instant::now();
            }
            for (p, _) in d.recv(q) {
                if seq_of(&p) == PROBE | q as u32 {
                    break 'probe;
                }
            }
        }
    }
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(100) {
        d.idle_poll();
    }
}

/// Send `count` frames of each size on each queue with a bounded window and check that every
/// one comes back MAC-swapped, intact, on the same queue.
fn traffic(d: &mut Dut, queues: usize, sizes: &[usize], count: u32) {
    let mut seq = 0u32;
    for q in 0..queues {
        for &size in sizes {
            let (first, last) = (seq, seq + count);
            let mut next = first;
            let mut got = 0u32;
            let deadline = Instant::now() + Duration::from_secs(10);
            while got < count {
                assert!(
                    Instant::now() < deadline,
                    "q{q} size {size}: {got}/{count} came back; counters {:?}",
                    counters(&d.dev)
                );
                assert!(d.dev.is_connected(), "lost the connection during traffic");
                if next < last && next - first - got < 128 {
                    let batch: Vec<Vec<u8>> = (next..last.min(next + 16))
                        .map(|s| frame(size, s))
                        .collect();
                    next += d.send(q, &batch) as u32;
                }
                for (p, edge) in d.recv(q) {
                    let s = seq_of(&p);
                    if s & PROBE == PROBE {
                        continue;
                    }
                    assert_eq!(edge, rx_next::ETHERNET);
                    assert!((first..last).contains(&s), "q{q}: unexpected seq {s}");
                    assert_eq!(p.len(), size, "seq {s}: length");
                    assert!(p == swapped(frame(size, s)), "seq {s}: content mismatch");
                    got += 1;
                }
            }
            seq = last;
        }
    }
}

fn counters(dev: &MemifDevice) -> [u64; 5] {
    let c = dev.counters();
    [
        c.ring_errors.load(Ordering::Relaxed),
        c.rx_dropped.load(Ordering::Relaxed),
        c.rx_no_buffers.load(Ordering::Relaxed),
        c.tx_full.load(Ordering::Relaxed),
        c.tx_dropped.load(Ordering::Relaxed),
    ]
}

const SIZES: &[usize] = &[64, 128, 512, 1500, 2048, 2049, 4000, 9000];

fn with_testpmd(role: Role, queues: u16) {
    let Some(bin) = skip::need_tool("dpdk-testpmd") else {
        return;
    };
    let _g = serial();
    let sock = unique_path("pmd");
    let mut cfg = MemifConfig::new(role, &sock, 0);
    cfg.rx_queues = queues;
    cfg.tx_queues = queues;
    let peer = if role == Role::Server {
        "client"
    } else {
        "server"
    };
    let (mut d, pmd) = if role == Role::Server {
        let d = Dut::new(cfg, queues as usize);
        (d, Testpmd::spawn(&bin, peer, &sock, queues))
    } else {
        let pmd = Testpmd::spawn(&bin, peer, &sock, queues);
        (Dut::new(cfg, queues as usize), pmd)
    };
    let base = 0;
    d.wait_link(true, 20);
    let st = d.dev.status();
    assert!(st.remote_name.contains("DPDK"), "peer {:?}", st.remote_name);
    assert_eq!(
        (st.rx_rings, st.tx_rings),
        (queues as usize, queues as usize)
    );
    assert_eq!(d.dev.zero_copy(), role == Role::Client);
    warm_up(&mut d, &pmd, queues as usize);
    let copied0 = d.dev.counters().copied_bytes.load(Ordering::Relaxed);
    traffic(&mut d, queues as usize, SIZES, 200);
    let copied = d.dev.counters().copied_bytes.load(Ordering::Relaxed) - copied0;
    if role == Role::Client {
        // The first lap of the rx ring (the protocol crate's own buffers) is copied once;
        // everything after is zero-copy.
        let lap = 1024 * 2048 * queues as u64;
        assert!(copied <= lap, "client copied {copied} bytes");
    } else {
        assert!(copied > 0);
    }
    let c = counters(&d.dev);
    assert_eq!(c[0], 0, "ring errors");
    assert_eq!(c[1], 0, "rx drops");
    drop(pmd);
    d.wait_link(false, 5);
    d.assert_no_leak(base);
}

#[test]
fn testpmd_client_rvpp_server_one_queue() {
    with_testpmd(Role::Server, 1);
}

#[test]
fn testpmd_client_rvpp_server_two_queues() {
    with_testpmd(Role::Server, 2);
}

#[test]
fn testpmd_server_rvpp_client_one_queue() {
    with_testpmd(Role::Client, 1);
}

#[test]
fn testpmd_server_rvpp_client_two_queues() {
    with_testpmd(Role::Client, 2);
}

/// Kill testpmd mid-traffic (rings full of our packets), restart it, recover; no leaks.
fn restart(role: Role) {
    let Some(bin) = skip::need_tool("dpdk-testpmd") else {
        return;
    };
    let _g = serial();
    let sock = unique_path("pmdrs");
    let peer = if role == Role::Server {
        "client"
    } else {
        "server"
    };
    let cfg = MemifConfig::new(role, &sock, 0);
    let mut d = None;
    if role == Role::Server {
        d = Some(Dut::new(cfg.clone(), 1));
    }
    let mut pmd = Testpmd::spawn(&bin, peer, &sock, 1);
    let mut d = d.unwrap_or_else(|| Dut::new(cfg, 1));
    for round in 0..2 {
        d.wait_link(true, 20);
        warm_up(&mut d, &pmd, 1);
        traffic(&mut d, 1, &[64, 1500, 9000], 100);
        let burst: Vec<Vec<u8>> = (0..200).map(|s| frame(1000, 50_000 + s)).collect();
        d.send(0, &burst);
        pmd.kill();
        d.wait_link(false, 5);
        d.assert_no_leak(0);
        if round == 0 {
            if role == Role::Client {
                // A killed DPDK server leaves its socket file behind.
                let _ = std::fs::remove_file(&sock);
            }
            pmd = Testpmd::spawn(&bin, peer, &sock, 1);
        }
    }
    assert_eq!(d.dev.status().connects, 2);
    assert_eq!(d.link_changes.load(Ordering::SeqCst), 4);
    assert_eq!(counters(&d.dev)[0], 0);
}

#[test]
fn testpmd_client_killed_and_restarted() {
    restart(Role::Server);
}

#[test]
fn testpmd_server_killed_and_restarted() {
    restart(Role::Client);
}

// ---------- rvpp against rvpp, no testpmd needed ----------

/// An rvpp server (copy) and an rvpp client (zero-copy) in one process, IP mode and Ethernet
/// mode, 2 queues, chained sizes; then the client is deleted and re-created.
fn pair(mode: Mode) {
    let _g = serial();
    let sock = unique_path("pair");
    let mut scfg = MemifConfig::new(Role::Server, &sock, 3);
    scfg.mode = mode;
    scfg.rx_queues = 2;
    scfg.tx_queues = 2;
    let mut ccfg = scfg.clone();
    ccfg.role = Role::Client;
    ccfg.log2_ring_size = 8;
    let mut s = Dut::new(scfg, 2);
    for round in 0..2 {
        let mut c = Dut::new(ccfg.clone(), 2);
        s.wait_link(true, 5);
        c.wait_link(true, 5);
        let mut seq = 0u32;
        for q in 0..2 {
            for &size in &[20usize, 64, 1500, 2048, 2049, 9000] {
                let frames: Vec<Vec<u8>> = (0..40)
                    .map(|i| {
                        let mut f = frame(size.max(20), seq + i);
                        if mode == Mode::Ip {
                            f[0] = if i % 2 == 0 { 0x45 } else { 0x60 };
                        }
                        f
                    })
                    .collect();
                seq += 40;
                // Both directions.
                for dir in 0..2 {
                    let (a, b) = if dir == 0 {
                        (&mut c, &mut s)
                    } else {
                        (&mut s, &mut c)
                    };
                    let mut sent = 0;
                    let mut got = Vec::new();
                    let deadline = Instant::now() + Duration::from_secs(5);
                    while got.len() < frames.len() {
                        assert!(Instant::now() < deadline, "round {round} q{q} size {size}");
                        if sent < frames.len() {
                            sent += a.send(q, &frames[sent..]);
                        }
                        got.extend(b.recv(q));
                        a.idle_poll();
                    }
                    for (i, (p, edge)) in got.iter().enumerate() {
                        assert_eq!(p, &frames[i], "round {round} q{q} size {size} #{i}");
                        let want = match (mode, p[0] >> 4) {
                            (Mode::Ethernet, _) => rx_next::ETHERNET,
                            (_, 4) => rx_next::IP4,
                            _ => rx_next::IP6,
                        };
                        assert_eq!(*edge, want);
                    }
                }
            }
        }
        assert!(c.dev.zero_copy() && !s.dev.zero_copy());
        // In-flight packets on both sides, then the client goes away.
        let burst: Vec<Vec<u8>> = (0..100).map(|i| frame(3000, i)).collect();
        c.send(0, &burst);
        s.send(1, &burst);
        drop(c);
        s.wait_link(false, 5);
        s.assert_no_leak(0);
    }
    assert_eq!(counters(&s.dev)[0], 0);
}

#[test]
fn rvpp_pair_ethernet() {
    pair(Mode::Ethernet);
}

#[test]
fn rvpp_pair_ip() {
    pair(Mode::Ip);
}

/// Interrupt mode: the queue's rx_fd becomes readable when the peer sends.
#[test]
fn interrupt_wakes_the_queue() {
    let _g = serial();
    let sock = unique_path("intr");
    let mut s = Dut::new(MemifConfig::new(Role::Server, &sock, 0), 1);
    let mut c = Dut::new(MemifConfig::new(Role::Client, &sock, 0), 1);
    s.wait_link(true, 5);
    c.wait_link(true, 5);
    s.idle_poll();
    let fd = s.rx[0].rx_fd().unwrap();
    s.rx[0].set_interrupt(true);
    s.rx[0].ack_interrupt();
    assert!(!readable(fd, 50), "readable before anything was sent");
    c.send(0, &[frame(100, 1)]);
    assert!(readable(fd, 2000), "no interrupt");
    s.rx[0].ack_interrupt();
    let got = s.recv(0);
    assert_eq!(got.len(), 1);
    s.rx[0].set_interrupt(false);
    drop(c);
    // A link change also wakes a sleeping worker.
    assert!(readable(fd, 2000));
}

fn readable(fd: i32, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: (test) one valid pollfd.
    unsafe { libc::poll(&mut p, 1, ms) > 0 }
}

// ---------- hostile peers against the rvpp device ----------

/// A protocol-crate client that, once connected, corrupts its rings by hand. The rvpp server
/// must count ring errors, never crash or read outside the region, and stay usable.
#[test]
fn hostile_client_rings() {
    let _g = serial();
    let sock = unique_path("hostile");
    let mut s = Dut::new(MemifConfig::new(Role::Server, &sock, 0), 1);
    let mut cfg = Config::new(Role::Client, &sock);
    cfg.log2_ring_size = 6;
    let mut h = Interface::new(cfg).unwrap();
    let connect = |h: &mut Interface| {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            assert!(Instant::now() < deadline);
            if let Some(Event::Connected { .. }) = h.poll_control() {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    connect(&mut h);
    s.wait_link(true, 5);
    let region0 = h.regions()[0].size() as u32;
    // 1. A descriptor pointing past the end of the region, then one with a huge length.
    {
        let r = h.tx_ring(0).unwrap();
        let hd = r.head();
        r.set_desc(
            hd,
            Desc {
                flags: 0,
                region: 0,
                length: 64,
                offset: region0 - 10,
                metadata: 0,
            },
        );
        r.set_desc(
            hd.wrapping_add(1),
            Desc {
                flags: 0,
                region: 0,
                length: u32::MAX,
                offset: 0,
                metadata: 0,
            },
        );
        r.set_desc(
            hd.wrapping_add(2),
            Desc {
                flags: 0,
                region: 7,
                length: 64,
                offset: 0,
                metadata: 0,
            },
        );
        r.set_head(hd.wrapping_add(3));
    }
    for _ in 0..20 {
        assert!(s.recv(0).is_empty());
    }
    assert!(counters(&s.dev)[0] >= 3, "{:?}", counters(&s.dev));
    // 2. A ring full of NEXT flags (never-ending chain).
    {
        let r = h.tx_ring(0).unwrap();
        let hd = r.head();
        for i in 0..r.size() {
            let mut d = r.desc(hd.wrapping_add(i));
            d.flags = proto::DESC_FLAG_NEXT;
            d.length = 10;
            r.set_desc(hd.wrapping_add(i), d);
        }
        r.set_head(hd.wrapping_add(r.size()));
    }
    for _ in 0..5 {
        assert!(s.recv(0).is_empty());
    }
    // 3. Head far out of range.
    {
        let r = h.tx_ring(0).unwrap();
        r.set_head(r.head().wrapping_add(30000));
    }
    for _ in 0..5 {
        assert!(s.recv(0).is_empty());
    }
    // 4. Our tx: the client hands over bad free buffers and a head out of range.
    {
        let r = h.rx_ring(0).unwrap();
        let t = r.tail();
        for i in 0..r.size() {
            r.set_desc(
                t.wrapping_add(i),
                Desc {
                    flags: 0,
                    region: 0,
                    length: 4096,
                    offset: region0 - 100,
                    metadata: 0,
                },
            );
        }
    }
    assert_eq!(s.send(0, &[frame(200, 1)]), 1); // taken and dropped
    {
        let r = h.rx_ring(0).unwrap();
        r.set_head(r.tail().wrapping_add(5000));
    }
    s.send(0, &[frame(200, 2)]);
    assert!(counters(&s.dev)[0] >= 6, "{:?}", counters(&s.dev));
    // The hostile client leaves; a good one connects and traffic flows.
    drop(h);
    s.wait_link(false, 5);
    s.assert_no_leak(0);
    let mut c = Dut::new(MemifConfig::new(Role::Client, &sock, 0), 1);
    s.wait_link(true, 5);
    c.wait_link(true, 5);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    while got.is_empty() {
        assert!(Instant::now() < deadline);
        c.send(0, &[frame(300, 9)]);
        got = s.recv(0);
        c.idle_poll();
    }
    assert_eq!(got[0].0, frame(300, 9));
}

/// A peer that speaks garbage on the control channel: the device stays down, logs, survives,
/// and a good peer still connects afterwards.
#[test]
fn hostile_control_messages() {
    let _g = serial();
    let sock = unique_path("hostctl");
    let mut s = Dut::new(MemifConfig::new(Role::Server, &sock, 0), 1);
    for bad in [
        vec![0u8; 7],                  // truncated
        vec![0xffu8; proto::MSG_SIZE], // unknown type
        Msg::Ack.encode().to_vec(),    // out of order
        Msg::Connect("x".into()).encode().to_vec(),
    ] {
        let fd = raw_connect(&sock);
        // SAFETY: (test) fd is ours; buffer valid.
        unsafe { libc::send(fd, bad.as_ptr().cast(), bad.len(), 0) };
        std::thread::sleep(Duration::from_millis(30));
        // SAFETY: (test) fd is ours.
        unsafe { libc::close(fd) };
    }
    // Wrong version and wrong id in INIT.
    for (version, id) in [(0x0100u16, 0u32), (proto::VERSION, 99)] {
        let fd = raw_connect(&sock);
        let init = Msg::Init(proto::Init {
            version,
            id,
            mode: 0,
            secret: [0; 24],
            name: "evil".into(),
        });
        let m = init.encode();
        // SAFETY: (test) as above.
        unsafe { libc::send(fd, m.as_ptr().cast(), m.len(), 0) };
        std::thread::sleep(Duration::from_millis(30));
        // SAFETY: (test) fd is ours.
        unsafe { libc::close(fd) };
    }
    s.idle_poll();
    assert!(!s.link.load(Ordering::SeqCst));
    let mut c = Dut::new(MemifConfig::new(Role::Client, &sock, 0), 1);
    s.wait_link(true, 5);
    c.wait_link(true, 5);
}

use memif::proto::Msg;

fn raw_connect(path: &str) -> i32 {
    // SAFETY: (test) plain syscalls on a zeroed sockaddr_un; results checked.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET, 0);
        assert!(fd >= 0);
        let mut sa: libc::sockaddr_un = std::mem::zeroed();
        sa.sun_family = libc::AF_UNIX as _;
        for (i, b) in path.bytes().enumerate() {
            sa.sun_path[i] = b as _;
        }
        let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        assert_eq!(
            libc::connect(fd, &sa as *const _ as *const libc::sockaddr, len),
            0
        );
        fd
    }
}

// ---------- a server handed over (live restart) ----------

/// One side of a take-over: polls its rx queue and sends numbered frames (`base` + n) on its
/// tx queue until `stop`; then only reads until `done`. Returns (sequence numbers read, frames
/// the tx queue took).
fn takeover_side(
    pool: Arc<BufferPool>,
    mut rx: Vec<MemifRxQueue>,
    mut tx: Vec<MemifTxQueue>,
    base: u32,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(Vec<u32>, u32)> {
    std::thread::spawn(move || {
        let mut bufs = pool.local();
        let (mut got, mut sent) = (Vec::new(), 0u32);
        let mut out = [0u32; 256];
        let mut nexts = [0u16; 256];
        while !done.load(Ordering::Acquire) {
            let n = rx[0].rx(&mut bufs, &mut out, &mut nexts);
            for &b in &out[..n] {
                got.push(seq_of(bufs.get(b).data()));
            }
            bufs.free(&out[..n]);
            if !stop.load(Ordering::Acquire) {
                let idx: Vec<u32> = (0..8)
                    .map(|i| bufs.alloc_from_bytes(&frame(128, base + sent + i)).unwrap())
                    .collect();
                let k = tx[0].tx(&mut bufs, &idx);
                bufs.free(&idx[k..]);
                sent += k as u32;
            }
        }
        (got, sent)
    })
}

/// The live-restart hand-over of a memif server, in one process: the device `handoff` stops
/// and the device `adopt`ed from it run side by side on the same rings (as the two rvpps do
/// until the old one's workers stop), both reading the rx ring and writing the tx ring in tight
/// loops while the peer (a memif crate client) sends and reads as fast as it can. The ring
/// locks let one at a time move a ring: every frame arrives once (none read by both, none
/// lost to both writing one slot), and the peer saw one connect, no disconnect.
#[test]
fn handed_over_server_shares_its_rings_with_the_old_one() {
    let _g = serial();
    let sock = unique_path("handoff");
    let cfg = MemifConfig::new(Role::Server, &sock, 0);
    let pool_a = BufferPool::with_backing(16384, 2048, false).unwrap();
    let MemifQueues {
        device: old,
        rx: rx_a,
        tx: tx_a,
    } = MemifDevice::start(cfg.clone(), SW, pool_a.clone(), 1, Box::new(|_| {})).unwrap();
    let mut pc = Config::new(Role::Client, &sock);
    pc.id = 0;
    let mut peer = Interface::new(pc).unwrap();
    let t = Instant::now();
    while !(peer.is_connected() && old.is_connected()) {
        assert!(t.elapsed() < Duration::from_secs(5), "never connected");
        let _ = peer.poll_control();
        std::thread::sleep(Duration::from_millis(1));
    }
    let handoff = old.handoff().unwrap();
    assert!(
        handoff.ifc.conn.is_some(),
        "a connected server hands over its peer"
    );
    let pool_b = BufferPool::with_backing(16384, 2048, false).unwrap();
    let MemifQueues {
        device: new,
        rx: rx_b,
        tx: tx_b,
    } = MemifDevice::adopt(cfg, handoff, SW, pool_b.clone(), 1, Box::new(|_| {})).unwrap();
    assert!(new.is_connected(), "adopted as connected");
    let (stop, done) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    const B: u32 = 0x4000_0000;
    let a = takeover_side(pool_a, rx_a, tx_a, 0, stop.clone(), done.clone());
    let b = takeover_side(pool_b, rx_b, tx_b, B, stop.clone(), done.clone());
    let mut bufs: Vec<memif::PacketBuf> = (0..256).map(|_| memif::PacketBuf::new(2048)).collect();
    let (mut peer_sent, mut peer_got) = (0u32, Vec::new());
    let mut events = Vec::new();
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(1500) {
        let sending = t.elapsed() < Duration::from_millis(1000);
        if t.elapsed() >= Duration::from_millis(1000) {
            stop.store(true, Ordering::Release);
        }
        events.extend(std::iter::from_fn(|| peer.poll_control()));
        if sending {
            let burst: Vec<Vec<u8>> = (0..32).map(|i| frame(128, peer_sent + i)).collect();
            peer_sent += peer.tx_burst(0, &burst) as u32;
        }
        let n = peer.rx_burst(0, &mut bufs);
        peer_got.extend(bufs[..n].iter().map(|p| seq_of(p.as_slice())));
    }
    done.store(true, Ordering::Release);
    let (got_a, sent_a) = a.join().unwrap();
    let (got_b, sent_b) = b.join().unwrap();
    // rx: each frame the peer sent read by exactly one of the two.
    let mut read: Vec<u32> = got_a.iter().chain(&got_b).copied().collect();
    let total = read.len();
    read.sort_unstable();
    read.dedup();
    println!(
        "handoff rx: peer sent {peer_sent}, old read {}, new read {}, {} duplicated",
        got_a.len(),
        got_b.len(),
        total - read.len()
    );
    assert!(!got_a.is_empty() && !got_b.is_empty(), "both sides read");
    assert_eq!(total, read.len(), "frames read by both");
    assert_eq!(read, (0..peer_sent).collect::<Vec<_>>(), "frames lost");
    // tx: every frame either side's tx queue took reaches the peer once.
    let total = peer_got.len();
    peer_got.sort_unstable();
    peer_got.dedup();
    let want: Vec<u32> = (0..sent_a).chain(B..B + sent_b).collect();
    println!(
        "handoff tx: old sent {sent_a}, new sent {sent_b}, peer got {total}, {} duplicated",
        total - peer_got.len()
    );
    assert!(sent_a > 0 && sent_b > 0, "both sides sent");
    assert_eq!(total, peer_got.len(), "frames delivered twice");
    assert_eq!(peer_got.len(), want.len(), "frames lost on tx");
    assert_eq!(peer_got, want);
    assert_eq!(peer.stats().connects, 1, "the peer connected again");
    assert!(events.is_empty(), "the peer saw {events:?}");
    // The new device is the peer's now; the old one goes without a goodbye.
    new.owner().own();
    drop(old);
    std::thread::sleep(Duration::from_millis(100));
    assert!(std::iter::from_fn(|| peer.poll_control()).next().is_none());
    assert!(peer.is_connected());
    drop(new);
}

/// dpdk-testpmd's net_memif (the client a DPDK pod runs) through a hand-over: traffic before
/// on the old device, then the adopted device goes on with testpmd's connection and regions
/// (every frame comes back MAC-swapped on both queues), the old one dropped without a word.
/// testpmd never reconnects: a new connection would have new regions, and the adopted rings
/// would carry nothing back.
#[test]
fn testpmd_client_stays_connected_through_a_handover() {
    let Some(bin) = skip::need_tool("dpdk-testpmd") else {
        return;
    };
    let _g = serial();
    let sock = unique_path("pmd-handoff");
    let mut cfg = MemifConfig::new(Role::Server, &sock, 0);
    cfg.rx_queues = 2;
    cfg.tx_queues = 2;
    let mut old = Dut::new(cfg.clone(), 2);
    let pmd = Testpmd::spawn(&bin, "client", &sock, 2);
    old.wait_link(true, 20);
    warm_up(&mut old, &pmd, 2);
    // Unchained sizes only: testpmd leaves the NEXT flag of a reused descriptor that began a
    // chain (seen: a 1500-byte frame read with the next one as 3000 bytes after 4000-byte
    // frames on the same queue, with or without a hand-over), which `traffic` avoids by
    // going up in size.
    traffic(&mut old, 2, &[64, 1500], 200);
    let mut new = Dut::adopt(&old, cfg, 2);
    assert!(new.dev.is_connected(), "adopted as connected");
    drop(old);
    traffic(&mut new, 2, SIZES, 200);
    assert_eq!(new.link_changes.load(Ordering::SeqCst), 0, "the link moved");
    assert_eq!(counters(&new.dev)[..2], [0, 0], "ring errors or rx drops");
    let log = std::fs::read_to_string(&pmd.log).unwrap_or_default();
    assert!(
        !log.to_lowercase().contains("disconnect"),
        "testpmd saw a disconnect:\n{}",
        pmd.log_tail()
    );
    new.dev.owner().own();
    drop(pmd);
    new.wait_link(false, 5);
    new.assert_no_leak(0);
}
