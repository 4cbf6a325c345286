//! One worker's dispatch loop: poll rx queues, run nodes with pending vectors, count everything.
//!
//! Counters are per thread. They are atomics only so that the control thread can read them;
//! the owning worker updates them with plain load+store (no locked instructions).

use crate::buffer::{flags, Buffers};
use crate::device::{RxQueue, TxQueue};
use crate::graph::{Graph, NodeIndex, NodeKind, CONSUMED, MAX_VECTOR};
use crate::tables::{Shared, WorkerTables, MAX_INTERFACES};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Packets one node may have queued before further ones are dropped (counted).
/// Initial room of each node's pending vector. Not a cap: a vector that fills grows (VPP queues
/// another frame instead), so the dispatcher never drops. Packets in flight are bounded by the
/// buffer pool, so growth stops; after warm-up the vectors keep their capacity and nothing is
/// allocated per packet.
const PENDING_CAP: usize = 4 * MAX_VECTOR;
/// Packets one node call may emit beyond its vector ([`Ctx::emit`]): a vector of 64 KiB
/// super-frames cut at a 1 KiB MSS, reserved once per worker.
pub const EMIT_CAP: usize = 64 * MAX_VECTOR;
/// Trace records a thread keeps.
pub const MAX_TRACE: usize = 1024;

/// Read the CPU's time-stamp counter.
#[inline(always)]
pub fn clocks() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no memory effects and exists on every x86_64 CPU.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        use std::time::Instant;
        thread_local!(static T0: Instant = Instant::now());
        T0.with(|t| t.elapsed().as_nanos() as u64)
    }
}

/// A counter written by one thread and read by others.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline(always)]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }
    #[inline(always)]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
pub struct NodeCounters {
    pub calls: Counter,
    pub vectors: Counter,
    pub clocks: Counter,
    pub suspends: Counter,
}

#[derive(Default)]
pub struct IfCounters {
    pub rx_packets: Counter,
    pub rx_bytes: Counter,
    pub tx_packets: Counter,
    pub tx_bytes: Counter,
    pub drops: Counter,
    pub tx_errors: Counter,
}

/// One traced packet: the nodes it went through and what each decided.
#[derive(Clone, Debug, Default)]
pub struct TraceRecord {
    pub thread: usize,
    pub lines: Vec<String>,
}

/// `pcap trace`: which points capture, and what was captured (time in ns, bytes).
#[derive(Default)]
pub struct Capture {
    pub rx: std::sync::atomic::AtomicBool,
    pub tx: std::sync::atomic::AtomicBool,
    pub drop: std::sync::atomic::AtomicBool,
    /// Only this interface (u32::MAX: any).
    pub sw_if_index: AtomicU32,
    /// Packets still to capture on this thread.
    pub remaining: AtomicU32,
    pub packets: Mutex<Vec<(u64, Vec<u8>)>>,
}

impl Capture {
    /// Anything to capture at this point right now?
    #[inline(always)]
    pub fn active(&self, point: &std::sync::atomic::AtomicBool) -> bool {
        point.load(Ordering::Relaxed) && self.remaining.load(Ordering::Relaxed) > 0
    }

    /// Copy packets (whole chains) that match the interface filter, while budget remains.
    #[cold]
    pub fn take(
        &self,
        bufs: &mut Buffers,
        pkts: &[u32],
        sw_of: impl Fn(&crate::buffer::BufferMeta) -> u32,
    ) {
        let want = self.sw_if_index.load(Ordering::Relaxed);
        let mut out = self.packets.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut tmp = vec![0u8; 16384];
        for &bi in pkts {
            let left = self.remaining.load(Ordering::Relaxed);
            if left == 0 {
                break;
            }
            if want != u32::MAX && sw_of(bufs.meta(bi)) != want {
                continue;
            }
            let n = bufs.copy_chain(bi, &mut tmp);
            out.push((now, tmp[..n].to_vec()));
            self.remaining.store(left - 1, Ordering::Relaxed);
        }
    }
}

/// Everything a thread exposes to the control thread.
pub struct ThreadStats {
    pub capture: Capture,
    pub thread: usize,
    pub name: String,
    pub lcore: AtomicU32,
    pub nodes: Box<[NodeCounters]>,
    pub errors: Box<[Counter]>,
    pub ifs: Box<[IfCounters]>,
    pub loops: Counter,
    /// Rounds in which no queue had packets.
    pub idle_loops: Counter,
    pub traces: Mutex<Vec<TraceRecord>>,
    /// Packets left to trace per input node (indexed like nodes).
    pub trace_budget: Box<[AtomicU32]>,
}

impl ThreadStats {
    fn new(thread: usize, name: String, g: &Graph) -> Self {
        Self {
            capture: Capture::default(),
            thread,
            name,
            lcore: AtomicU32::new(u32::MAX),
            nodes: (0..g.nodes.len())
                .map(|_| NodeCounters::default())
                .collect(),
            errors: (0..g.error_names.len())
                .map(|_| Counter::default())
                .collect(),
            ifs: (0..MAX_INTERFACES).map(|_| IfCounters::default()).collect(),
            loops: Counter::default(),
            idle_loops: Counter::default(),
            traces: Mutex::new(Vec::new()),
            trace_budget: (0..g.nodes.len()).map(|_| AtomicU32::new(0)).collect(),
        }
    }
}

/// ICMP error rate limiter: a token bucket refilled by the TSC.
pub struct RateLimiter {
    tokens: u64,
    max: u64,
    last: u64,
    clocks_per_token: u64,
}

impl RateLimiter {
    /// `per_sec` tokens a second, bursts of `per_sec / 10`.
    pub fn new(per_sec: u64, tsc_hz: u64) -> Self {
        let max = (per_sec / 10).max(1);
        Self {
            tokens: max,
            max,
            last: clocks(),
            clocks_per_token: (tsc_hz / per_sec.max(1)).max(1),
        }
    }
    #[inline]
    pub fn allow(&mut self, now: u64) -> bool {
        let add = now.saturating_sub(self.last) / self.clocks_per_token;
        if add > 0 {
            self.tokens = (self.tokens + add).min(self.max);
            self.last = now;
        }
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            false
        }
    }
}

/// A worker's tx queues by sw_if_index.
pub struct TxTable {
    slots: Vec<Option<(Box<dyn TxQueue>, NodeIndex)>>,
}

impl TxTable {
    #[inline(always)]
    pub fn get(&mut self, sw_if_index: u32) -> Option<&mut (Box<dyn TxQueue>, NodeIndex)> {
        self.slots
            .get_mut(sw_if_index as usize)
            .and_then(|s| s.as_mut())
    }
}

/// What a node sees of its thread while it runs.
pub struct Ctx<'a> {
    pub bufs: &'a mut Buffers,
    pub tables: &'a WorkerTables,
    pub shared: &'a Shared,
    pub tx: &'a mut TxTable,
    pub icmp_limit: &'a mut RateLimiter,
    pub stats: &'a ThreadStats,
    pub thread: usize,
    /// TSC at the start of this node's call.
    pub now: u64,
    error_base: u16,
    /// This node's edges on its feature arc.
    arc: crate::feature::ArcEdges,
    /// Clocks a node spent on behalf of other nodes (device tx), not its own.
    nested_clocks: u64,
    /// What this call emitted ([`Ctx::emit`]), by edge, in order.
    emitted: &'a mut Vec<(u16, u32)>,
}

/// A node's error counters, detached from `Ctx` so they can be used while a buffer is borrowed.
#[derive(Clone, Copy)]
pub struct Errors<'a> {
    base: u16,
    stats: &'a ThreadStats,
}

impl Errors<'_> {
    /// Global error index of this node's local error `code`.
    #[inline(always)]
    pub fn error(&self, code: u16) -> u16 {
        self.base + code
    }
    /// Count `n` events against this node's local error `code` (not a drop).
    #[inline(always)]
    pub fn count(&self, code: u16, n: u64) {
        self.stats.errors[(self.base + code) as usize].add(n);
    }
}

impl<'a> Ctx<'a> {
    /// This node's error counters.
    #[inline(always)]
    pub fn errs(&self) -> Errors<'a> {
        Errors {
            base: self.error_base,
            stats: self.stats,
        }
    }
    /// This node's edges on its feature arc: `arc().next(mask)` is the edge to the next
    /// enabled feature or the arc's end (VPP's `vnet_feature_next`).
    #[inline(always)]
    pub fn arc(&self) -> crate::feature::ArcEdges {
        self.arc
    }
    /// Global error index of this node's local error `code`.
    #[inline(always)]
    pub fn error(&self, code: u16) -> u16 {
        self.error_base + code
    }
    /// Count `n` events against this node's local error `code` (not a drop).
    #[inline(always)]
    pub fn count(&self, code: u16, n: u64) {
        self.stats.errors[(self.error_base + code) as usize].add(n);
    }
    /// Count against a global error index.
    #[inline(always)]
    pub fn count_global(&self, index: u16, n: u64) {
        if let Some(c) = self.stats.errors.get(index as usize) {
            c.add(n);
        }
    }
    /// Send `bi` along `edge` once this call returns, after the packets of its vector and in
    /// the order of the calls: how a node that makes more packets than it was given (a
    /// segmenter) hands them on. False, with `bi` still the caller's, when the call's room
    /// ([`EMIT_CAP`]) is used up.
    #[inline]
    pub fn emit(&mut self, edge: u16, bi: u32) -> bool {
        if self.emitted.len() >= EMIT_CAP {
            return false;
        }
        self.emitted.push((edge, bi));
        true
    }
    /// How many more packets this call may emit.
    #[inline]
    pub fn emit_room(&self) -> usize {
        EMIT_CAP - self.emitted.len()
    }
    /// Account `clocks` of this call to another node (e.g. a device's tx node).
    #[inline]
    pub fn charge(&mut self, node: NodeIndex, packets: u64, clocks: u64) {
        let c = &self.stats.nodes[node as usize];
        c.calls.add(1);
        c.vectors.add(packets);
        c.clocks.add(clocks);
        self.nested_clocks += clocks;
    }
}

struct RxSlot {
    queue: Box<dyn RxQueue>,
    node: NodeIndex,
}

/// A worker thread's engine state. Not shared: the thread that owns it is the only one to run it.
pub struct Runtime {
    graph: Graph,
    pending: Vec<Vec<u32>>,
    ready: std::collections::VecDeque<NodeIndex>,
    spare: Vec<u32>,
    nexts: Vec<u16>,
    rx_frame: Vec<u32>,
    rxq: Vec<RxSlot>,
    tx: TxTable,
    bufs: Buffers,
    tables: WorkerTables,
    shared: Arc<Shared>,
    stats: Arc<ThreadStats>,
    icmp_limit: RateLimiter,
    thread: usize,
    bad_edge_error: u16,
    tracing: bool,
    /// [`Ctx::emit`]'s list, kept between calls so that it is allocated once.
    emitted: Vec<(u16, u32)>,
}

/// error-drop's reason for a packet sent along an edge its node does not have (a node bug).
const ERROR_DROP_BAD_EDGE: u16 = crate::nodes::output::drop_error::BAD_EDGE;

impl Runtime {
    pub fn new(
        graph: Graph,
        bufs: Buffers,
        shared: Arc<Shared>,
        thread: usize,
        name: String,
    ) -> Result<Self, String> {
        let drop_node = graph
            .index("error-drop")
            .ok_or("graph has no error-drop node")?;
        let bad_edge_error = graph.error_base[drop_node as usize] + ERROR_DROP_BAD_EDGE;
        let n = graph.nodes.len();
        let stats = Arc::new(ThreadStats::new(thread, name, &graph));
        Ok(Self {
            pending: (0..n).map(|_| Vec::with_capacity(PENDING_CAP)).collect(),
            ready: std::collections::VecDeque::with_capacity(n * 2),
            spare: Vec::with_capacity(PENDING_CAP),
            nexts: vec![0; MAX_VECTOR],
            rx_frame: vec![0; MAX_VECTOR],
            rxq: Vec::new(),
            tx: TxTable { slots: Vec::new() },
            tables: WorkerTables::new(&shared),
            icmp_limit: RateLimiter::new(1000, tsc_hz()),
            bufs,
            shared,
            stats,
            thread,
            bad_edge_error,
            tracing: false,
            emitted: Vec::with_capacity(EMIT_CAP),
            graph,
        })
    }

    pub fn stats(&self) -> Arc<ThreadStats> {
        self.stats.clone()
    }
    pub fn graph(&self) -> &Graph {
        &self.graph
    }
    pub fn buffers(&mut self) -> &mut Buffers {
        &mut self.bufs
    }
    pub fn thread(&self) -> usize {
        self.thread
    }

    /// Place an rx queue on this worker.
    pub fn add_rx(&mut self, queue: Box<dyn RxQueue>) -> Result<(), String> {
        let name = queue.input_node();
        let node = self
            .graph
            .index(name)
            .ok_or_else(|| format!("no input node '{name}'"))?;
        if self.graph.kinds[node as usize] != NodeKind::Input {
            return Err(format!("'{name}' is not an input node"));
        }
        self.rxq.push(RxSlot { queue, node });
        Ok(())
    }

    /// Remove every rx queue of an interface; returns them (the caller drops them).
    pub fn remove_rx(&mut self, sw_if_index: u32) -> Vec<Box<dyn RxQueue>> {
        let (gone, keep): (Vec<_>, Vec<_>) = self
            .rxq
            .drain(..)
            .partition(|s| s.queue.sw_if_index() == sw_if_index);
        self.rxq = keep;
        gone.into_iter().map(|s| s.queue).collect()
    }

    /// Remove one rx queue of an interface (to place it on another worker).
    pub fn remove_rx_queue(&mut self, sw_if_index: u32, queue_id: u16) -> Option<Box<dyn RxQueue>> {
        let i = self
            .rxq
            .iter()
            .position(|s| s.queue.sw_if_index() == sw_if_index && s.queue.queue_id() == queue_id)?;
        Some(self.rxq.remove(i).queue)
    }

    pub fn rx_queues(&self) -> impl Iterator<Item = &dyn RxQueue> {
        self.rxq.iter().map(|s| s.queue.as_ref())
    }
    pub fn rx_queues_mut(&mut self) -> impl Iterator<Item = &mut Box<dyn RxQueue>> {
        self.rxq.iter_mut().map(|s| &mut s.queue)
    }

    /// Install this worker's tx queue for an interface.
    pub fn set_tx(&mut self, sw_if_index: u32, queue: Box<dyn TxQueue>) -> Result<(), String> {
        let name = queue.tx_node();
        let node = self
            .graph
            .index(name)
            .ok_or_else(|| format!("no tx node '{name}'"))?;
        let i = sw_if_index as usize;
        if i >= MAX_INTERFACES {
            return Err(format!("sw_if_index {i} too large"));
        }
        if self.tx.slots.len() <= i {
            self.tx.slots.resize_with(i + 1, || None);
        }
        self.tx.slots[i] = Some((queue, node));
        Ok(())
    }

    pub fn remove_tx(&mut self, sw_if_index: u32) -> Option<Box<dyn TxQueue>> {
        self.tx
            .slots
            .get_mut(sw_if_index as usize)
            .and_then(|s| s.take())
            .map(|s| s.0)
    }

    /// One dispatch round: tables, every rx queue, every pending vector, tx flush.
    /// Returns the number of packets received.
    pub fn poll(&mut self) -> usize {
        self.shared.grace.quiescent(self.thread);
        self.tables.refresh(&self.shared);
        let mut received = 0;
        for qi in 0..self.rxq.len() {
            let t0 = clocks();
            let node = self.rxq[qi].node;
            let n = self.rxq[qi].queue.rx_with(
                &mut self.bufs,
                &mut self.rx_frame,
                &mut self.nexts,
                self.tables.fwd.get(),
            );
            let n = n.min(MAX_VECTOR);
            if n == 0 {
                continue;
            }
            received += n;
            let sw = self.rxq[qi].queue.sw_if_index();
            self.count_rx(sw, n);
            if self.stats.capture.active(&self.stats.capture.rx) {
                self.stats
                    .capture
                    .take(&mut self.bufs, &self.rx_frame[..n], |m| m.rx_sw_if_index);
            }
            let budget = &self.stats.trace_budget[node as usize];
            if budget.load(Ordering::Relaxed) > 0 {
                self.start_traces(node, n);
            }
            let frame = std::mem::take(&mut self.rx_frame);
            self.enqueue(node, &frame[..n], n);
            self.rx_frame = frame;
            let c = &self.stats.nodes[node as usize];
            c.calls.add(1);
            c.vectors.add(n as u64);
            c.clocks.add(clocks() - t0);
            self.run_pending();
        }
        self.flush_tx();
        // Between rounds this thread holds nothing from in-place tables.
        self.shared.grace.offline(self.thread);
        self.stats.loops.add(1);
        if received == 0 {
            self.stats.idle_loops.add(1);
        }
        received
    }

    /// Hand packets to a node directly (tests, the packet generator) and run the graph.
    pub fn inject(&mut self, node: &str, bufs: &[u32]) -> Result<(), String> {
        let n = self
            .graph
            .index(node)
            .ok_or_else(|| format!("no node '{node}'"))?;
        self.shared.grace.quiescent(self.thread);
        self.tables.refresh(&self.shared);
        for chunk in bufs.chunks(MAX_VECTOR) {
            for &bi in chunk {
                self.push(n, bi);
            }
            self.run_pending();
        }
        self.flush_tx();
        self.shared.grace.offline(self.thread);
        Ok(())
    }

    fn count_rx(&mut self, sw: u32, n: usize) {
        if let Some(c) = self.stats.ifs.get(sw as usize) {
            let mut bytes = 0u64;
            for &bi in &self.rx_frame[..n] {
                bytes += self.bufs.meta(bi).chain_len();
            }
            c.rx_packets.add(n as u64);
            c.rx_bytes.add(bytes);
        }
    }

    #[cold]
    fn start_traces(&mut self, node: NodeIndex, n: usize) {
        let budget = &self.stats.trace_budget[node as usize];
        let want = (budget.load(Ordering::Relaxed) as usize).min(n);
        let mut traces = self.stats.traces.lock().unwrap_or_else(|e| e.into_inner());
        let mut started = 0;
        for &bi in &self.rx_frame[..want] {
            if traces.len() >= MAX_TRACE {
                break;
            }
            let b = self.bufs.get(bi);
            b.meta.flags |= flags::TRACED;
            b.meta.trace_index = traces.len() as u32;
            let line = format!(
                "{}: {} bytes on sw_if_index {}\n  {}",
                self.graph.names[node as usize],
                b.meta.current_length,
                b.meta.rx_sw_if_index,
                hex_line(b.data())
            );
            traces.push(TraceRecord {
                thread: self.thread,
                lines: vec![line],
            });
            started += 1;
        }
        budget.store(
            budget.load(Ordering::Relaxed).saturating_sub(started),
            Ordering::Relaxed,
        );
        self.tracing = started > 0 || self.tracing;
    }

    /// Queue one packet for node `t`.
    #[inline(always)]
    fn push(&mut self, t: NodeIndex, bi: u32) {
        let q = &mut self.pending[t as usize];
        if q.is_empty() {
            self.ready.push_back(t);
        }
        q.push(bi);
    }

    #[cold]
    fn bad_edge(&mut self, bufs: &[u32]) {
        self.stats.errors[self.bad_edge_error as usize].add(bufs.len() as u64);
        self.bufs.free(bufs);
    }

    /// Move packets that `from` decided on into their next nodes' queues.
    #[inline(always)]
    fn enqueue(&mut self, from: NodeIndex, bufs: &[u32], n: usize) {
        let edges = std::mem::take(&mut self.graph.edges[from as usize]);
        let mut i = 0;
        while i < n {
            let e = self.nexts[i];
            // Packets usually leave in runs by the same edge: move a run at once.
            let j = run_end(&self.nexts[..n], i);
            if e != CONSUMED {
                match edges.get(e as usize) {
                    Some(&t) => {
                        let q = &mut self.pending[t as usize];
                        if q.is_empty() {
                            self.ready.push_back(t);
                        }
                        q.extend_from_slice(&bufs[i..j]);
                    }
                    None => self.bad_edge(&bufs[i..j]),
                }
            }
            i = j;
        }
        self.graph.edges[from as usize] = edges;
    }

    /// Move what `from` emitted into the next nodes' queues, in order.
    #[cold]
    fn enqueue_emitted(&mut self, from: NodeIndex) {
        let edges = std::mem::take(&mut self.graph.edges[from as usize]);
        let mut list = std::mem::take(&mut self.emitted);
        for &(e, bi) in &list {
            match edges.get(e as usize) {
                Some(&t) => self.push(t, bi),
                None => self.bad_edge(&[bi]),
            }
        }
        list.clear();
        self.emitted = list;
        self.graph.edges[from as usize] = edges;
    }

    /// Run nodes until no vector is pending.
    fn run_pending(&mut self) {
        while let Some(ni) = self.ready.pop_front() {
            let mut work = std::mem::replace(
                &mut self.pending[ni as usize],
                std::mem::take(&mut self.spare),
            );
            let mut off = 0;
            while off < work.len() {
                let n = (work.len() - off).min(MAX_VECTOR);
                let t0 = clocks();
                let mut cx = Ctx {
                    bufs: &mut self.bufs,
                    tables: &self.tables,
                    shared: &self.shared,
                    tx: &mut self.tx,
                    icmp_limit: &mut self.icmp_limit,
                    stats: &self.stats,
                    thread: self.thread,
                    now: t0,
                    error_base: self.graph.error_base[ni as usize],
                    arc: self.graph.arc_edges[ni as usize],
                    nested_clocks: 0,
                    emitted: &mut self.emitted,
                };
                let chunk = &mut work[off..off + n];
                self.graph.nodes[ni as usize].process(&mut cx, chunk, &mut self.nexts[..n]);
                let nested = cx.nested_clocks;
                if self.tracing {
                    self.trace_step(ni, &work[off..off + n]);
                }
                self.enqueue(ni, &work[off..off + n], n);
                if !self.emitted.is_empty() {
                    self.enqueue_emitted(ni);
                }
                let c = &self.stats.nodes[ni as usize];
                c.calls.add(1);
                c.vectors.add(n as u64);
                c.clocks.add((clocks() - t0).saturating_sub(nested));
                off += n;
            }
            work.clear();
            self.spare = work;
        }
    }

    #[cold]
    fn trace_step(&mut self, ni: NodeIndex, bufs: &[u32]) {
        let mut traces = self.stats.traces.lock().unwrap_or_else(|e| e.into_inner());
        let node = &self.graph.nodes[ni as usize];
        let name = self.graph.names[ni as usize];
        for (i, &bi) in bufs.iter().enumerate() {
            let b = self.bufs.get(bi);
            if b.meta.flags & flags::TRACED == 0 {
                continue;
            }
            let Some(rec) = traces.get_mut(b.meta.trace_index as usize) else {
                continue;
            };
            let e = self.nexts[i];
            let next = if e == CONSUMED {
                "(consumed)"
            } else {
                self.graph.edge_names[ni as usize]
                    .get(e as usize)
                    .copied()
                    .unwrap_or("?")
            };
            let detail = node.trace(&b);
            let err = if next == "error-drop" {
                let (n, d) = self
                    .graph
                    .error_names
                    .get(b.meta.error as usize)
                    .copied()
                    .unwrap_or(("?", "?"));
                format!(" [{n}: {d}]")
            } else {
                String::new()
            };
            rec.lines.push(format!(
                "{name} -> {next}{err}{}{detail}",
                if detail.is_empty() { "" } else { "\n  " }
            ));
        }
    }

    fn flush_tx(&mut self) {
        if self.tracing && self.ready.is_empty() {
            self.tracing = self
                .stats
                .trace_budget
                .iter()
                .any(|b| b.load(Ordering::Relaxed) > 0);
        }
        for (q, _) in self.tx.slots.iter_mut().flatten() {
            q.flush(&mut self.bufs);
        }
    }
}

/// End of the run of edges equal to `nexts[i]` that starts at `i`: eight edges per compare
/// (one 16-byte load and compare), then the mismatching one found in the chunk.
#[inline(always)]
fn run_end(nexts: &[u16], i: usize) -> usize {
    let e = nexts[i];
    let mut j = i + 1;
    while let Some(c) = nexts.get(j..).and_then(|r| r.first_chunk::<8>()) {
        if *c != [e; 8] {
            break;
        }
        j += 8;
    }
    while j < nexts.len() && nexts[j] == e {
        j += 1;
    }
    j
}

/// The first bytes of a packet in hex, for traces.
pub fn hex_line(d: &[u8]) -> String {
    d.iter()
        .take(48)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join("")
}

/// TSC ticks per second, measured once against the monotonic clock.
pub fn tsc_hz() -> u64 {
    use std::sync::OnceLock;
    static HZ: OnceLock<u64> = OnceLock::new();
    *HZ.get_or_init(|| {
        let t = std::time::Instant::now();
        let c0 = clocks();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let c1 = clocks();
        let ns = t.elapsed().as_nanos() as u64;
        ((c1 - c0) as u128 * 1_000_000_000 / ns.max(1) as u128) as u64
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::BufferPool;
    use crate::graph::rx_next;
    use crate::nodes::standard_graph;
    use crate::tables::FwdTable;

    #[test]
    fn run_end_finds_every_run() {
        let mut rng = 0x1234_5678_u64;
        for len in 0..80 {
            for _ in 0..50 {
                let v: Vec<u16> = (0..len)
                    .map(|_| {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        rng.is_multiple_of(3) as u16
                    })
                    .collect();
                for i in 0..len {
                    let mut j = i + 1;
                    while j < len && v[j] == v[i] {
                        j += 1;
                    }
                    assert_eq!(run_end(&v, i), j, "{v:?} from {i}");
                }
            }
        }
    }

    /// Yields one frame per poll, as a device does (a tun super-frame spans several buffers).
    struct OneFrame(Vec<u8>, bool);
    impl RxQueue for OneFrame {
        fn input_node(&self) -> &'static str {
            "pg-input"
        }
        fn sw_if_index(&self) -> u32 {
            1
        }
        fn rx(&mut self, bufs: &mut Buffers, out: &mut [u32], nexts: &mut [u16]) -> usize {
            if std::mem::replace(&mut self.1, true) {
                return 0;
            }
            let Some(bi) = bufs.alloc_from_bytes(&self.0) else {
                return 0;
            };
            bufs.meta(bi).rx_sw_if_index = 1;
            out[0] = bi;
            nexts[0] = rx_next::DROP;
            1
        }
    }

    #[test]
    fn rx_bytes_count_every_buffer_of_a_chained_frame() {
        let pool = BufferPool::with_backing(64, 2048, false).unwrap();
        let graph = standard_graph(&[crate::graph::DeviceNodes::new("pg-input", "pg-tx")]).unwrap();
        let mut rt = Runtime::new(graph, pool.local(), Shared::new(), 0, "test".into()).unwrap();
        rt.add_rx(Box::new(OneFrame(vec![0x45; 5000], false)))
            .unwrap();
        assert_eq!(rt.poll(), 1);
        let c = &rt.stats().ifs[1];
        assert_eq!(c.rx_packets.get(), 1);
        assert_eq!(
            c.rx_bytes.get(),
            5000,
            "all three buffers, not the first one's 2048"
        );
        rt.buffers().flush();
        drop(rt);
        assert_eq!(pool.in_use(), 0);
    }

    /// Sees, through `rx_with`, the IPv4 VXLAN ports of the table the worker reads.
    struct SeesPorts(Arc<std::sync::Mutex<Vec<u16>>>);
    impl RxQueue for SeesPorts {
        fn input_node(&self) -> &'static str {
            "pg-input"
        }
        fn sw_if_index(&self) -> u32 {
            1
        }
        fn rx(&mut self, _: &mut Buffers, _: &mut [u32], _: &mut [u16]) -> usize {
            0
        }
        fn rx_with(
            &mut self,
            _: &mut Buffers,
            _: &mut [u32],
            _: &mut [u16],
            fwd: &FwdTable,
        ) -> usize {
            *self.0.lock().unwrap() = fwd.vxlan_ports[0].clone();
            0
        }
    }

    #[test]
    fn an_rx_queue_is_given_the_published_forwarding_table() {
        let pool = BufferPool::with_backing(64, 2048, false).unwrap();
        let graph = standard_graph(&[crate::graph::DeviceNodes::new("pg-input", "pg-tx")]).unwrap();
        let shared = Shared::new();
        let mut rt = Runtime::new(graph, pool.local(), shared.clone(), 0, "test".into()).unwrap();
        let seen = Arc::default();
        rt.add_rx(Box::new(SeesPorts(Arc::clone(&seen)))).unwrap();
        let mut fwd = FwdTable::default();
        fwd.vxlan_ports[0] = vec![8472];
        shared.fwd.publish(fwd);
        rt.poll();
        assert_eq!(*seen.lock().unwrap(), [8472]);
    }

    #[test]
    fn a_pending_vector_grows_instead_of_dropping() {
        // 3,000 packets queued for one node before it runs: more than a pending vector's
        // initial room. Each must reach the node and be counted under the node's own reason
        // ("frame too short": they are 4 bytes long), none under the dispatcher's.
        let pool = BufferPool::with_backing(4096, 2048, false).unwrap();
        let shared = Shared::new();
        let graph = standard_graph(&[]).unwrap();
        let mut rt = Runtime::new(graph, pool.local(), shared, 0, "test".into()).unwrap();
        let eth = rt.graph().index("ethernet-input").unwrap();
        for _ in 0..3000 {
            let bi = rt.buffers().alloc_from_bytes(&[0u8; 4]).unwrap();
            rt.push(eth, bi);
        }
        rt.run_pending();
        let too_short = rt.graph().error_index("ethernet-input", 0).unwrap();
        let bad_edge = rt
            .graph()
            .error_index("error-drop", ERROR_DROP_BAD_EDGE)
            .unwrap();
        let st = rt.stats();
        assert_eq!(st.errors[too_short as usize].get(), 3000);
        assert_eq!(st.errors[bad_edge as usize].get(), 0);
        rt.buffers().flush();
        drop(rt);
        assert_eq!(pool.in_use(), 0);
    }
}
