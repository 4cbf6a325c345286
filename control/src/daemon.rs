//! The running dataplane: buffer pool, tables, worker threads, and the devices placed on them.
//!
//! Thread 0 is the main (control) thread. With `cpu { workers 0 }` one forwarding thread
//! (`vpp_main`, thread index 0 in counters) runs on the main core; otherwise workers 1..=N run
//! on their cores. The control thread talks to a worker only through its command ring and a
//! wake-up eventfd.

use crossbeam_queue::ArrayQueue;
use rvpp_dataplane::buffer::BufferPool;
use rvpp_dataplane::cnat::Cnat;
use rvpp_dataplane::device::{RxMode, RxQueue, TxQueue};
use rvpp_dataplane::feature::FeatureTables;
use rvpp_dataplane::forwarding::Forwarding;
use rvpp_dataplane::graph::Graph;
use rvpp_dataplane::runtime::{Runtime, ThreadStats};
use rvpp_dataplane::tables::{if_flags, Shared};
use rvpp_dataplane::tx_spread::{Framing, SpreadTx};
use rvpp_drivers::wait::{Epoll, EventFd};
use std::collections::BTreeMap;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the control thread asks a worker to do.
pub enum WorkerCmd {
    AddRx(Box<dyn RxQueue>),
    RemoveRx(u32),
    SetTx(u32, Box<dyn TxQueue>),
    RemoveTx(u32),
    SetRxMode(RxMode),
    /// Hand rx queue (sw_if_index, queue) to worker `to` (rx placement).
    MoveRx {
        sw: u32,
        queue: u16,
        to: usize,
    },
    /// Send a frame the control thread made (a neighbour probe) out of interface `tx`.
    Send {
        tx: u32,
        frame: Vec<u8>,
    },
    /// Route an IP packet the control thread made (WireGuard's handshakes, IKE) from `node`
    /// (ip4-/ip6-lookup) in FIB `fib_index`.
    Inject {
        node: &'static str,
        fib_index: u32,
        frame: Vec<u8>,
    },
}

/// Every worker's command ring and wake-up, so one worker can hand a queue to another.
type Peers = Arc<Vec<(Arc<ArrayQueue<WorkerCmd>>, Arc<EventFd>)>>;

fn send_to(peer: &(Arc<ArrayQueue<WorkerCmd>>, Arc<EventFd>), mut cmd: WorkerCmd) {
    loop {
        match peer.0.push(cmd) {
            Ok(()) => break,
            Err(c) => {
                cmd = c;
                std::thread::sleep(Duration::from_micros(100));
            }
        }
    }
    peer.1.ring();
}

/// Put `frame` on interface `tx` through interface-output (no buffer: it is not sent).
fn send_frame(rt: &mut Runtime, tx: u32, frame: &[u8]) {
    inject_frame(rt, "interface-output", frame, |m| m.tx_sw_if_index = tx);
}

/// Route `frame` from `node` in `fib_index`, as a packet of ours (no TTL decrement).
fn inject_ip(rt: &mut Runtime, node: &'static str, fib_index: u32, frame: &[u8]) {
    inject_frame(rt, node, frame, |m| m.fib_index = fib_index);
}

/// A frame the control thread made, as a locally originated packet at `node`.
fn inject_frame(
    rt: &mut Runtime,
    node: &'static str,
    frame: &[u8],
    set: impl FnOnce(&mut rvpp_dataplane::buffer::BufferMeta),
) {
    let bufs = rt.buffers();
    let Some(bi) = bufs.alloc_from_bytes(frame) else {
        return;
    };
    let m = bufs.meta(bi);
    set(m);
    m.flags |= rvpp_dataplane::buffer::flags::LOCALLY_ORIGINATED;
    if let Err(e) = rt.inject(node, &[bi]) {
        log::warn!("thread {}: {e}", rt.thread());
    }
}

/// The control side of one forwarding thread.
pub struct Worker {
    pub thread: usize,
    pub name: String,
    pub core: Option<u32>,
    cmds: Arc<ArrayQueue<WorkerCmd>>,
    wake: Arc<EventFd>,
    pub stats: Arc<ThreadStats>,
    join: Option<JoinHandle<()>>,
}

impl Worker {
    /// Queue a command and wake the worker. Waits while the ring is full.
    pub fn send(&self, cmd: WorkerCmd) {
        send_to(&(self.cmds.clone(), self.wake.clone()), cmd);
    }
}

/// A tx queue shared by several workers.
struct SharedTx {
    q: Arc<Mutex<Box<dyn TxQueue>>>,
    node: &'static str,
}

impl TxQueue for SharedTx {
    fn tx_node(&self) -> &'static str {
        self.node
    }
    fn tx(&mut self, bufs: &mut rvpp_dataplane::buffer::Buffers, pkts: &[u32]) -> usize {
        self.q
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .tx(bufs, pkts)
    }
    fn tx_reorder(
        &mut self,
        bufs: &mut rvpp_dataplane::buffer::Buffers,
        pkts: &mut [u32],
    ) -> usize {
        self.q
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .tx_reorder(bufs, pkts)
    }
    fn flush(&mut self, bufs: &mut rvpp_dataplane::buffer::Buffers) {
        self.q.lock().unwrap_or_else(|e| e.into_inner()).flush(bufs)
    }
}

/// A device behind an interface: where its queues run, and its driver's state.
pub struct DeviceInfo {
    pub sw_if_index: u32,
    pub kind: String,
    pub detail: String,
    /// (queue, worker index in `Dataplane::workers`).
    pub rx_placement: Vec<(u16, usize)>,
    pub rx_mode: RxMode,
    pub driver: crate::service::Driver,
    /// The device's tx queues (`tx_placement` says which workers use each).
    pub tx_queues: usize,
}

impl DeviceInfo {
    /// The workers (indices into `Dataplane::workers`) that send on tx queue `q`, as
    /// `attach_queues` placed them among `n` workers.
    pub fn tx_placement(&self, q: usize, n: usize) -> Vec<usize> {
        let k = self.tx_queues;
        match () {
            _ if q >= k || n == 0 => vec![],
            // As many or more queues than workers: worker q % n sends on q.
            _ if k >= n => vec![q % n],
            // Fewer: worker w shares queue w % k.
            _ => (0..n).filter(|w| w % k == q).collect(),
        }
    }
}

pub struct Dataplane {
    pub pool: Arc<BufferPool>,
    pub shared: Arc<Shared>,
    pub fwd: Mutex<Forwarding>,
    pub workers: Vec<Worker>,
    /// Devices by sw_if_index (the control service's registry; see `service`).
    pub devices: Mutex<BTreeMap<u32, DeviceInfo>>,
    /// The control service's state beside the tables: memif socket ids, change listeners.
    pub svc: crate::service::State,
    pub graph_names: Vec<&'static str>,
    /// Each node's next-node names by edge (`get_next_index`, `add_node_next`).
    pub graph_edges: Vec<Vec<&'static str>>,
    pub error_names: Vec<(&'static str, &'static str)>,
    pub started: std::time::Instant,
    stop: Arc<AtomicBool>,
    /// Workers whose loop has not ended yet (a live restart waits for 0).
    running: Arc<AtomicUsize>,
    /// Counter values at the last `clear`, subtracted when shown.
    pub baseline: Mutex<Baseline>,
    /// Packet-generator streams created but not yet enabled.
    pub pending_pg: Mutex<Vec<(u32, Box<dyn RxQueue>)>>,
    /// `pcap trace`: the file the capture goes to, and its packet limit.
    pub pcap: Mutex<Option<(std::path::PathBuf, u32)>>,
    /// The shared tables of feature modules (the same `Arc`s their nodes read).
    pub feature_tables: FeatureTables,
    /// Every API request and CLI command holds it shared; a live restart holds it exclusively
    /// from its snapshot until the process exits, so that no change is acknowledged and lost,
    /// whichever tables it touches.
    config_gate: std::sync::RwLock<()>,
}

#[derive(Default, Clone)]
pub struct Baseline {
    pub nodes: BTreeMap<(usize, usize), [u64; 3]>,
    pub errors: BTreeMap<(usize, usize), u64>,
    pub ifs: BTreeMap<(usize, usize), [u64; 6]>,
}

pub struct DataplaneConfig {
    pub buffers: u32,
    pub data_size: usize,
    pub try_hugepages: bool,
    pub main_core: Option<u32>,
    /// One entry per worker: its core, if pinned.
    pub worker_cores: Vec<Option<u32>>,
    pub rx_mode: RxMode,
    /// `cnat { }`: the session table's size, the timeouts, the scanner.
    pub cnat: crate::startup_conf::CnatConfig,
}

/// Every worker's graph: the forwarding nodes, every feature module and every driver's nodes.
/// Features share their tables through `tables`, which the control side keeps too.
fn graph(tables: &FeatureTables) -> Result<Graph, String> {
    rvpp_drivers::graph_builder(tables).build()
}

/// Expire idle cnat sessions every `cnat_every` (`cnat { session-cleanup-timeout }`; never
/// with `scanner off`) and npol's cached verdicts once a second, beside the workers (they
/// never stop for it).
fn spawn_cnat_scanner(
    cnat: Arc<Cnat>,
    npol: Arc<rvpp_dataplane::npol::Npol>,
    cnat_every: Option<std::time::Duration>,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    use std::time::{Duration, Instant};
    let tick = Duration::from_millis(100);
    std::thread::Builder::new()
        .name("cnat-scan".into())
        .spawn(move || {
            let (mut cnat_last, mut npol_last) = (Instant::now(), Instant::now());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let left = cnat_every.map_or(tick, |e| e.saturating_sub(cnat_last.elapsed()));
                std::thread::sleep(left.clamp(Duration::from_millis(1), tick));
                if cnat_every.is_some_and(|e| cnat_last.elapsed() >= e) {
                    cnat.scan(cnat.now());
                    cnat_last = Instant::now();
                }
                if npol_last.elapsed() >= Duration::from_secs(1) {
                    npol.scan(npol.now());
                    npol_last = Instant::now();
                }
            }
        })
        .map(|_| ())
        .map_err(|e| format!("spawn cnat-scan: {e}"))
}

impl Dataplane {
    pub fn start(cfg: &DataplaneConfig) -> Result<Arc<Self>, String> {
        let pool = BufferPool::with_backing(cfg.buffers, cfg.data_size, cfg.try_hugepages)
            .map_err(|e| format!("buffer pool: {e}"))?;
        log::info!(
            "buffer pool: {} buffers of {} bytes on {} pages",
            pool.capacity(),
            pool.data_size(),
            pool.backing().name()
        );
        let shared = Shared::new();
        let mut fwd = Forwarding::new(shared.clone());
        let feature_tables = FeatureTables::default();
        // Sized before the graph's nodes take it from the tables.
        let cnat = Cnat::new(cfg.cnat.dataplane());
        cnat.set_timeouts(cfg.cnat.timeouts());
        feature_tables.insert(cnat);
        let g = graph(&feature_tables)?;
        fwd.use_features(g.features.clone());
        let graph_names = g.names.clone();
        let graph_edges = g.edge_names.clone();
        let error_names = g.error_names.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let running = Arc::new(AtomicUsize::new(0));
        let threads: Vec<(usize, String, Option<u32>)> = if cfg.worker_cores.is_empty() {
            vec![(0, "vpp_main".into(), cfg.main_core)]
        } else {
            cfg.worker_cores
                .iter()
                .enumerate()
                .map(|(i, c)| (i + 1, format!("vpp_wk_{i}"), *c))
                .collect()
        };
        let rings: Vec<(Arc<ArrayQueue<WorkerCmd>>, Arc<EventFd>)> = threads
            .iter()
            .map(|_| Ok((Arc::new(ArrayQueue::new(1024)), Arc::new(EventFd::new()?))))
            .collect::<std::io::Result<_>>()
            .map_err(|e| format!("eventfd: {e}"))?;
        let peers: Peers = Arc::new(rings);
        let mut workers = Vec::new();
        for (wi, (thread, name, core)) in threads.into_iter().enumerate() {
            let rt = Runtime::new(
                graph(&feature_tables)?,
                pool.local(),
                shared.clone(),
                thread,
                name.clone(),
            )?;
            let stats = rt.stats();
            let (cmds, wake) = peers[wi].clone();
            let (p2, s2, m) = (peers.clone(), stop.clone(), cfg.rx_mode);
            running.fetch_add(1, Ordering::AcqRel);
            let r2 = running.clone();
            let join = std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || {
                    worker_main(rt, wi, p2, s2, core, m);
                    r2.fetch_sub(1, Ordering::AcqRel);
                })
                .map_err(|e| {
                    running.fetch_sub(1, Ordering::AcqRel);
                    format!("spawn {name}: {e}")
                })?;
            workers.push(Worker {
                thread,
                name,
                core,
                cmds,
                wake,
                stats,
                join: Some(join),
            });
        }
        spawn_cnat_scanner(
            feature_tables.get::<Cnat>(),
            feature_tables.get::<rvpp_dataplane::npol::Npol>(),
            cfg.cnat.scan_every(),
            stop.clone(),
        )?;
        Ok(Arc::new(Self {
            pool,
            shared,
            fwd: Mutex::new(fwd),
            workers,
            devices: Mutex::new(BTreeMap::new()),
            svc: Default::default(),
            graph_names,
            graph_edges,
            error_names,
            started: std::time::Instant::now(),
            stop,
            running,
            baseline: Mutex::new(Baseline::default()),
            pending_pg: Mutex::new(Vec::new()),
            pcap: Mutex::new(None),
            feature_tables,
            config_gate: std::sync::RwLock::new(()),
        }))
    }

    /// Kubernetes services (translations, SNAT, sessions): cnat's feature table, the one its
    /// nodes in every worker read.
    pub fn cnat(&self) -> Arc<Cnat> {
        self.feature_tables.get::<Cnat>()
    }

    /// Network policies (ipsets, rules, policies, interface configuration, cached verdicts):
    /// npol's feature table, the one its nodes in every worker read.
    pub fn npol(&self) -> Arc<rvpp_dataplane::npol::Npol> {
        self.feature_tables.get::<rvpp_dataplane::npol::Npol>()
    }

    /// Held by an API request or CLI command while it runs (see `config_gate`).
    pub fn config_shared(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.config_gate.read().unwrap_or_else(|e| e.into_inner())
    }

    /// No API request or CLI command runs while this is held (a live restart's snapshot).
    pub fn config_exclusive(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.config_gate.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn fwd(&self) -> std::sync::MutexGuard<'_, Forwarding> {
        self.fwd.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn devices_lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, DeviceInfo>> {
        self.devices.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Place a device's queues: rx queue i on worker (i + sw) % n; a tx queue on every worker.
    pub fn attach(
        &self,
        sw: u32,
        kind: &str,
        detail: String,
        rx: Vec<Box<dyn RxQueue>>,
        tx: impl FnMut(usize) -> Option<Box<dyn TxQueue>>,
    ) {
        self.attach_driver(sw, kind, detail, crate::service::Driver::Plain, rx, tx)
    }

    fn attach_driver(
        &self,
        sw: u32,
        kind: &str,
        detail: String,
        driver: crate::service::Driver,
        rx: Vec<Box<dyn RxQueue>>,
        mut tx: impl FnMut(usize) -> Option<Box<dyn TxQueue>>,
    ) {
        let placement = self.place_rx_queues(sw, rx);
        let mut tx_queues = 0;
        for (w, worker) in self.workers.iter().enumerate() {
            if let Some(q) = tx(w) {
                worker.send(WorkerCmd::SetTx(sw, q));
                tx_queues += 1;
            }
        }
        self.devices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                sw,
                DeviceInfo {
                    sw_if_index: sw,
                    kind: kind.into(),
                    detail,
                    rx_placement: placement,
                    rx_mode: RxMode::Polling,
                    driver,
                    tx_queues,
                },
            );
    }

    /// Rx queue i on worker (i + sw) % n; returns the placement.
    fn place_rx_queues(&self, sw: u32, rx: Vec<Box<dyn RxQueue>>) -> Vec<(u16, usize)> {
        let n = self.workers.len();
        let mut placement = Vec::new();
        for (i, q) in rx.into_iter().enumerate() {
            let w = (i + sw as usize) % n;
            placement.push((i as u16, w));
            self.workers[w].send(WorkerCmd::AddRx(q));
        }
        placement
    }

    /// Start receiving on a device attached without rx queues: a live restart attaches every
    /// device's tx queues first, so that no packet read finds its way out missing.
    pub fn attach_rx(&self, sw: u32, rx: Vec<Box<dyn RxQueue>>) {
        let placement = self.place_rx_queues(sw, rx);
        if let Some(d) = self.devices_lock().get_mut(&sw) {
            d.rx_placement = placement;
        }
    }

    /// Place a device's queues: rx queue i on worker (i + sw) % n; every worker gets a tx queue.
    /// With fewer tx queues than workers, workers share them behind a lock taken once per
    /// vector (VPP does the same with a spinlock); with enough, each worker has its own.
    pub fn attach_queues(
        &self,
        sw: u32,
        kind: &str,
        detail: String,
        driver: crate::service::Driver,
        rx: Vec<Box<dyn RxQueue>>,
        tx: Vec<Box<dyn TxQueue>>,
    ) {
        let n = self.workers.len();
        let tx_queues = tx.len();
        let mut per_worker: Vec<Option<Box<dyn TxQueue>>> = if tx.is_empty() {
            (0..n).map(|_| None).collect()
        } else if tx.len() == n {
            tx.into_iter().map(Some).collect()
        } else if tx.len() > n {
            // More queues than workers: worker w sends on queues w, w + n, ... by flow hash,
            // so every ring the peer drains gets its share.
            let framing = if self.fwd().ifs().fast(sw).flags & if_flags::L2 != 0 {
                Framing::Ethernet
            } else {
                Framing::Ip
            };
            let mut lanes: Vec<Vec<Box<dyn TxQueue>>> = (0..n).map(|_| Vec::new()).collect();
            for (i, q) in tx.into_iter().enumerate() {
                lanes[i % n].push(q);
            }
            lanes
                .into_iter()
                .map(|mut qs| {
                    Some(if qs.len() == 1 {
                        qs.remove(0)
                    } else {
                        Box::new(SpreadTx::new(qs, framing)) as Box<dyn TxQueue>
                    })
                })
                .collect()
        } else {
            let shared: Vec<Arc<Mutex<Box<dyn TxQueue>>>> =
                tx.into_iter().map(|q| Arc::new(Mutex::new(q))).collect();
            (0..n)
                .map(|w| {
                    let q = shared[w % shared.len()].clone();
                    let node = q.lock().unwrap_or_else(|e| e.into_inner()).tx_node();
                    Some(Box::new(SharedTx { q, node }) as Box<dyn TxQueue>)
                })
                .collect()
        };
        self.attach_driver(sw, kind, detail, driver, rx, |w| {
            per_worker.get_mut(w).and_then(|q| q.take())
        });
        if let Some(d) = self.devices_lock().get_mut(&sw) {
            d.tx_queues = tx_queues;
        }
    }

    /// Take a device's queues off every worker; returns what was recorded about it.
    pub fn detach(&self, sw: u32) -> Option<DeviceInfo> {
        for w in &self.workers {
            w.send(WorkerCmd::RemoveRx(sw));
            w.send(WorkerCmd::RemoveTx(sw));
        }
        self.devices_lock().remove(&sw)
    }

    /// Move rx queue `queue` of interface `sw` to worker index `worker` (into `workers`).
    pub fn place_rx(&self, sw: u32, queue: u16, worker: usize) -> Result<(), String> {
        if worker >= self.workers.len() {
            return Err(format!("no worker {worker}"));
        }
        let mut devs = self.devices.lock().unwrap_or_else(|e| e.into_inner());
        let d = devs
            .get_mut(&sw)
            .ok_or_else(|| format!("sw_if_index {sw} has no device queues"))?;
        let slot = d
            .rx_placement
            .iter_mut()
            .find(|p| p.0 == queue)
            .ok_or_else(|| format!("no rx queue {queue}"))?;
        if slot.1 != worker {
            self.workers[slot.1].send(WorkerCmd::MoveRx {
                sw,
                queue,
                to: worker,
            });
            slot.1 = worker;
        }
        Ok(())
    }

    pub fn set_rx_mode(&self, mode: RxMode) {
        for w in &self.workers {
            w.send(WorkerCmd::SetRxMode(mode));
        }
    }

    /// Control-thread housekeeping: apply learned neighbours, age them (probes go out through
    /// the first worker), reclaim FIB memory.
    pub fn housekeeping(&self) {
        let mut f = self.fwd();
        let now = std::time::Instant::now();
        f.apply_learned_at(now);
        let probes = f.neighbor_age(now);
        let frames: Vec<_> = probes.iter().filter_map(|p| f.probe_frame(p)).collect();
        f.reclaim();
        // Sent without the writer's lock: a full command ring waits, the API does not.
        drop(f);
        let mut routed = crate::service::wireguard::tick(self);
        routed.extend(crate::service::ikev2::tick(self));
        if let Some(w) = self.workers.first() {
            for (tx, frame) in frames {
                w.send(WorkerCmd::Send { tx, frame });
            }
            for o in routed {
                let node = if o.frame.first().is_some_and(|v| v >> 4 == 6) {
                    "ip6-lookup"
                } else {
                    "ip4-lookup"
                };
                w.send(WorkerCmd::Inject {
                    node,
                    fib_index: o.fib_index,
                    frame: o.frame,
                });
            }
        }
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        for w in &self.workers {
            w.wake.ring();
        }
    }

    /// Stop the workers and wait up to `timeout` for every one to leave its loop (it reads its
    /// devices no more). False if one is still running.
    pub fn stop_workers(&self, timeout: Duration) -> bool {
        self.stop();
        let t = std::time::Instant::now();
        while self.running.load(Ordering::Acquire) > 0 {
            if t.elapsed() > timeout {
                return false;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        true
    }

    /// Stop workers and wait for them.
    pub fn join(&mut self) {
        self.stop();
        for w in &mut self.workers {
            if let Some(j) = w.join.take() {
                let _ = j.join();
            }
        }
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        self.join();
    }
}

/// Empty polls in a row before an adaptive worker sleeps.
const ADAPTIVE_IDLE_ROUNDS: u32 = 1024;

fn worker_main(
    mut rt: Runtime,
    me: usize,
    peers: Peers,
    stop: Arc<AtomicBool>,
    core: Option<u32>,
    mut mode: RxMode,
) {
    if let Some(c) = core {
        let ok = core_affinity::set_for_current(core_affinity::CoreId { id: c as usize });
        if ok {
            rt.stats().lcore.store(c, Ordering::Relaxed);
        } else {
            log::warn!("thread {}: cannot pin to core {c}", rt.thread());
        }
    }
    let (cmds, wake) = peers[me].clone();
    let ep = match Epoll::new().and_then(|e| e.add(wake.fd()).map(|_| e)) {
        Ok(e) => e,
        Err(e) => {
            log::error!("thread {}: epoll: {e}; worker not started", rt.thread());
            return;
        }
    };
    let mut idle_rounds = 0u32;
    let mut backoff_us = 0u64;
    let mut registered: Vec<RawFd> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let mut changed = false;
        while let Some(c) = cmds.pop() {
            changed |= !matches!(c, WorkerCmd::Send { .. } | WorkerCmd::Inject { .. });
            match c {
                WorkerCmd::Send { tx, frame } => send_frame(&mut rt, tx, &frame),
                WorkerCmd::Inject {
                    node,
                    fib_index,
                    frame,
                } => inject_ip(&mut rt, node, fib_index, &frame),
                WorkerCmd::AddRx(q) => {
                    if let Err(e) = rt.add_rx(q) {
                        log::error!("thread {}: {e}", rt.thread());
                    }
                }
                WorkerCmd::RemoveRx(sw) => drop(rt.remove_rx(sw)),
                WorkerCmd::SetTx(sw, q) => {
                    if let Err(e) = rt.set_tx(sw, q) {
                        log::error!("thread {}: {e}", rt.thread());
                    }
                }
                WorkerCmd::RemoveTx(sw) => drop(rt.remove_tx(sw)),
                WorkerCmd::SetRxMode(m) => mode = m,
                WorkerCmd::MoveRx { sw, queue, to } => {
                    if let (Some(q), Some(peer)) = (rt.remove_rx_queue(sw, queue), peers.get(to)) {
                        send_to(peer, WorkerCmd::AddRx(q));
                    }
                }
            }
        }
        if changed {
            for fd in registered.drain(..) {
                ep.remove(fd);
            }
            let fds: Vec<RawFd> = rt.rx_queues().filter_map(|q| q.rx_fd()).collect();
            for fd in fds {
                if ep.add(fd).is_ok() {
                    registered.push(fd);
                }
            }
        }
        if rt.rx_queues().next().is_none() {
            // Nothing placed here: sleep until a command arrives.
            ep.wait(100);
            wake.drain();
            continue;
        }
        let n = rt.poll();
        if n > 0 || mode == RxMode::Polling {
            idle_rounds = 0;
            backoff_us = 0;
            continue;
        }
        idle_rounds += 1;
        let can_sleep = rt.rx_queues().all(|q| q.rx_fd().is_some());
        if (mode == RxMode::Interrupt || idle_rounds >= ADAPTIVE_IDLE_ROUNDS) && can_sleep {
            for q in rt.rx_queues_mut() {
                q.set_interrupt(true);
            }
            // One more poll after arming: packets that arrived before the arm are not lost.
            if rt.poll() == 0 {
                ep.wait(100);
                wake.drain();
            }
            for q in rt.rx_queues_mut() {
                q.set_interrupt(false);
                q.ack_interrupt();
            }
            idle_rounds = 0;
        } else if !can_sleep && idle_rounds >= ADAPTIVE_IDLE_ROUNDS {
            // Queues without an fd (pg, pcap): back off, doubling up to 1 ms, and wake early on
            // a command. A queue that gets busy again is back to full polling at once.
            backoff_us = (backoff_us * 2).clamp(10, 1000);
            ep.wait((backoff_us / 1000).max(1) as i32);
            wake.drain();
        }
    }
    rt.buffers().flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(tx_queues: usize) -> DeviceInfo {
        DeviceInfo {
            sw_if_index: 1,
            kind: "tap".into(),
            detail: String::new(),
            rx_placement: vec![],
            rx_mode: RxMode::Polling,
            driver: crate::service::Driver::Plain,
            tx_queues,
        }
    }

    #[test]
    fn tx_placement_follows_attach_queues() {
        // 4 queues, 2 workers: lanes q % 2.
        assert_eq!(dev(4).tx_placement(3, 2), [1]);
        assert_eq!(dev(4).tx_placement(2, 2), [0]);
        // 2 queues, 4 workers: worker w shares queue w % 2.
        assert_eq!(dev(2).tx_placement(1, 4), [1, 3]);
        assert_eq!(dev(2).tx_placement(2, 4), Vec::<usize>::new(), "no queue 2");
        assert_eq!(dev(0).tx_placement(0, 1), Vec::<usize>::new());
        assert_eq!(dev(1).tx_placement(0, 1), [0]);
    }
}
