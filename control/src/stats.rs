//! VPP's stats segment: shared memory with counters, served on `statseg { socket-name }`.
//!
//! The layout is VPP's version 2 (`src/vlib/stats/shared.h`), as read by vpp_papi's
//! `vpp_stats.py` and govpp's `adapter/statsclient/statseg_v2.go`:
//!
//! * a header at offset 0: `{u64 version = 2; void *base; u64 epoch; u64 in_progress;
//!   vlib_stats_entry_t *directory_vector}`. Pointers are addresses in the writer's mapping;
//!   a client's offset is `ptr - base`.
//! * the directory: a clib vector of 144-byte entries `{u32 type; u32 pad; union {u64 index;
//!   u64 value; void *data; u32 index1, index2}; char name[128]}`.
//! * clib vectors: the element count is the `u32 len` of the 8-byte `vec_header_t` just before
//!   the data (`src/vppinfra/vec_bootstrap.h`: `{u32 len; u8 hdr_size; u8 log2_align:7,
//!   default_heap:1; u8 grow_elts; u8 vpad[1]}`).
//! * counter vectors: a vector (one element per thread) of pointers to vectors of `u64`
//!   (simple) or `{u64 packets, bytes}` (combined), indexed by sw_if_index, error index or node
//!   index. Name vectors: a vector of pointers to NUL-terminated byte vectors (len counts the NUL).
//! * symlinks (type 6) name one element of a counter vector: `index1` is the directory index of
//!   the vector, `index2` the element. VPP ≥ 22.06 publishes errors this way: `/node/errors` is a
//!   `[thread][error]` simple vector and every `/err/<node>/<reason>` is a symlink into it;
//!   likewise `/interfaces/<if>/<counter>` into `/if/<counter>` and `/nodes/<node>/<counter>`
//!   into `/sys/node/<counter>`.
//!
//! Like VPP, counter values and scalars/gauges are overwritten in place with no lock. When the
//! shape changes (an interface appears or goes away) the whole directory and its vectors are
//! rebuilt in the other half of the heap and swapped in under `in_progress = 1`, then `epoch`
//! is bumped: readers retry while `in_progress != 0` or when the epoch moved under them.
//! Alternating halves means a slow reader holding old pointers still reads consistent (if
//! stale) memory until the following rebuild.

use crate::daemon::Dataplane;
use rvpp_dataplane::tables::IfTable;
use rvpp_drivers::shm::{self, SeqpacketListener, SharedMem};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Shared header field offsets and layout constants (VPP's `vlib_stats_shared_header_t`).
pub mod layout {
    pub const VERSION: usize = 0;
    pub const BASE: usize = 8;
    pub const EPOCH: usize = 16;
    pub const IN_PROGRESS: usize = 24;
    pub const DIRECTORY: usize = 32;
    /// Stats segment layout version (`STAT_SEGMENT_VERSION`).
    pub const SEGMENT_VERSION: u64 = 2;
    /// `sizeof (vlib_stats_entry_t)`.
    pub const ENTRY_SIZE: usize = 144;
    /// `VLIB_STATS_MAX_NAME_SZ`.
    pub const NAME_SIZE: usize = 128;
    /// `sizeof (vec_header_t)`.
    pub const VEC_HEADER: usize = 8;
    /// The heap starts after the first page, as in VPP.
    pub const HEAP_START: usize = 4096;

    pub const TYPE_SCALAR_INDEX: u32 = 1;
    pub const TYPE_COUNTER_VECTOR_SIMPLE: u32 = 2;
    pub const TYPE_COUNTER_VECTOR_COMBINED: u32 = 3;
    pub const TYPE_NAME_VECTOR: u32 = 4;
    pub const TYPE_EMPTY: u32 = 5;
    pub const TYPE_SYMLINK: u32 = 6;
    pub const TYPE_HISTOGRAM_LOG2: u32 = 7;
    pub const TYPE_RING_BUFFER: u32 = 8;
    pub const TYPE_GAUGE: u32 = 9;
}
use layout::*;

/// VPP's default buffer pool name on numa node 0.
pub const BUFFER_POOL: &str = "default-numa-0";

/// `foreach_simple_interface_counter_name` (vnet/interface.h), in VPP's order.
const IF_SIMPLE: [&str; 9] = [
    "drops",
    "punt",
    "ip4",
    "ip6",
    "rx-no-buf",
    "rx-miss",
    "rx-error",
    "tx-error",
    "mpls",
];
/// `foreach_combined_interface_counter_name`.
const IF_COMBINED: [&str; 8] = [
    "rx",
    "rx-unicast",
    "rx-multicast",
    "rx-broadcast",
    "tx",
    "tx-unicast",
    "tx-multicast",
    "tx-broadcast",
];
/// Node counters (`src/vlib/stats/collector.c`).
const NODE_COUNTERS: [&str; 4] = ["clocks", "vectors", "calls", "suspends"];

/// Rates (vector rate, loops, input rate) are recomputed at most this often.
const RATE_INTERVAL: Duration = Duration::from_secs(1);

/// A served stats segment; dropping it stops serving and removes the socket.
pub struct StatsSegment {
    writer: Mutex<Writer>,
    stop: Arc<AtomicBool>,
    server: Option<JoinHandle<()>>,
    path: PathBuf,
}

/// What to publish beyond VPP's always-on entries.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// `/sys/node/{names,clocks,vectors,calls,suspends}` and the `/nodes/<node>/<counter>`
    /// symlinks (VPP: `statseg { per-node-counters on }`, off by default there).
    pub per_node_counters: bool,
    /// The group that may read the segment besides root (`unix { gid }`).
    pub gid: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            per_node_counters: true,
            gid: None,
        }
    }
}

/// Create the segment of `size` bytes and serve it on `path` (node counters included).
pub fn start(dp: Arc<Dataplane>, path: &Path, size: u64) -> std::io::Result<StatsSegment> {
    start_with_options(dp, path, size, Options::default())
}

/// [`start`] with explicit [`Options`]. The segment is at least 256 KiB.
pub fn start_with_options(
    dp: Arc<Dataplane>,
    path: &Path,
    size: u64,
    opts: Options,
) -> std::io::Result<StatsSegment> {
    let size = (size as usize).clamp(256 << 10, 1 << 34);
    let mem = Arc::new(SharedMem::create("stat segment", size)?);
    let mut w = Writer::new(dp, mem.clone(), opts);
    w.init()?;
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    let listener = SeqpacketListener::bind(path)?;
    crate::socket_access::restrict(path, opts.gid)?;
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("statseg".into())
            .spawn(move || serve(listener, mem, stop))?
    };
    Ok(StatsSegment {
        writer: Mutex::new(w),
        stop,
        server: Some(server),
        path: path.to_path_buf(),
    })
}

impl StatsSegment {
    /// Copy the current counters into the segment (control thread, every few ms).
    pub fn update(&self) {
        self.writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .update();
    }

    /// The socket the segment is served on.
    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    /// Times the directory was rebuilt (the segment's epoch is this plus one).
    pub fn generation(&self) -> u64 {
        self.writer.lock().unwrap_or_else(|e| e.into_inner()).gen
    }
}

impl Drop for StatsSegment {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.server.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Hand the segment's memfd to every client that connects, then close (VPP's
/// `stats_socket_accept_ready`).
fn serve(l: SeqpacketListener, mem: Arc<SharedMem>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Acquire) {
        match l.accept_timeout(100) {
            Ok(Some(conn)) => {
                use std::os::fd::AsFd;
                if let Err(e) = shm::send_fd(conn.as_fd(), mem.fd()) {
                    log::warn!("stats segment: sending the segment fd: {e}");
                }
            }
            Ok(None) => {}
            Err(e) => {
                log::warn!("stats segment: accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// What forces a rebuild: the interface table's names by sw_if_index.
#[derive(Clone, Default, PartialEq, Debug)]
struct Shape {
    ifs: Vec<Option<String>>,
}

impl Shape {
    fn of(t: &IfTable) -> Self {
        Self {
            ifs: t
                .ifs
                .iter()
                .map(|i| i.as_ref().map(|i| i.name.clone()))
                .collect(),
        }
    }
    fn matches(&self, t: &IfTable) -> bool {
        self.ifs.len() == t.ifs.len()
            && self
                .ifs
                .iter()
                .zip(&t.ifs)
                .all(|(a, b)| a.as_deref() == b.as_ref().map(|i| i.name.as_str()))
    }
}

/// Where the values of one built directory live (segment offsets).
#[derive(Default)]
struct Layout {
    dir: usize,
    n_ifs: usize,
    /// Offsets of the value words of directory entries.
    heartbeat: usize,
    last_stats_clear: usize,
    boottime: usize,
    vector_rate: usize,
    num_worker_threads: usize,
    last_update: usize,
    input_rate: usize,
    buf_cached: usize,
    buf_used: usize,
    buf_available: usize,
    /// Row 0 of `/sys/vector_rate_per_worker` and `/sys/loops_per_worker` (indexed by thread).
    vector_rate_per_worker: usize,
    loops_per_worker: usize,
    /// Per thread: the data of that thread's row.
    if_rx: Vec<usize>,
    if_tx: Vec<usize>,
    if_drops: Vec<usize>,
    if_tx_error: Vec<usize>,
    errors: Vec<usize>,
    /// Per counter of NODE_COUNTERS, per thread.
    nodes: [Vec<usize>; 4],
}

/// A bump allocator over one half of the heap; every allocation is zeroed.
struct Arena<'a> {
    m: &'a SharedMem,
    base: u64,
    cur: usize,
    end: usize,
}

impl Arena<'_> {
    /// A clib vector of `len` elements of `elem` bytes, data aligned to `align`; the data offset.
    fn vec(&mut self, elem: usize, len: usize, align: usize) -> Option<usize> {
        let data = (self.cur + VEC_HEADER).next_multiple_of(align);
        let bytes = elem.checked_mul(len)?;
        let next = data.checked_add(bytes.max(8))?.next_multiple_of(8);
        if next > self.end || len > u32::MAX as usize {
            return None;
        }
        self.m.zero(data - VEC_HEADER, next - (data - VEC_HEADER));
        self.m.store_u32(data - VEC_HEADER, len as u32);
        self.m.store_u8(data - 4, 1); // hdr_size / VEC_MIN_ALIGN
        self.m.store_u8(data - 3, align.trailing_zeros() as u8); // log2_align
        self.cur = next;
        Some(data)
    }
    fn ptr(&self, off: usize) -> u64 {
        self.base + off as u64
    }
    /// A `[thread][index]` counter vector of `elem`-byte counters; (its pointer, row offsets).
    fn counters(&mut self, elem: usize, threads: usize, n: usize) -> Option<(u64, Vec<usize>)> {
        let outer = self.vec(8, threads, 64)?;
        let mut rows = Vec::with_capacity(threads);
        for t in 0..threads {
            let row = self.vec(elem, n, 64)?;
            self.m.store_u64(outer + 8 * t, self.ptr(row));
            rows.push(row);
        }
        Some((self.ptr(outer), rows))
    }
    /// A name vector (VPP's string vector: each a NUL-terminated u8 vector).
    fn names<'s>(&mut self, names: impl ExactSizeIterator<Item = &'s str>) -> Option<u64> {
        let outer = self.vec(8, names.len(), 8)?;
        for (i, s) in names.enumerate() {
            let v = self.vec(1, s.len() + 1, 8)?;
            self.m.write_bytes(v, s.as_bytes());
            self.m.store_u64(outer + 8 * i, self.ptr(v));
        }
        Some(self.ptr(outer))
    }
}

/// Directory entries being collected for one build.
struct Dir {
    entries: Vec<(String, u32, u64)>,
    seen: HashSet<String>,
}

impl Dir {
    /// Add an entry; returns its directory index (duplicates are dropped, as VPP refuses them).
    fn add(&mut self, name: &str, ty: u32, value: u64) -> u32 {
        let mut name = name.to_string();
        if name.len() >= NAME_SIZE {
            let mut cut = NAME_SIZE - 1;
            while !name.is_char_boundary(cut) {
                cut -= 1;
            }
            name.truncate(cut);
        }
        if !self.seen.insert(name.clone()) {
            return u32::MAX;
        }
        self.entries.push((name, ty, value));
        (self.entries.len() - 1) as u32
    }
    fn symlink(&mut self, name: &str, target: u32, index: usize) {
        self.add(name, TYPE_SYMLINK, target as u64 | ((index as u64) << 32));
    }
}

/// VPP's `format_vlib_stats_symlink`: '/' in a name component becomes '_'.
fn component(s: &str) -> String {
    s.replace('/', "_")
}

struct Rates {
    at: Instant,
    /// Per thread: (vectors, calls, loops) totals at `at`.
    threads: Vec<(u64, u64, u64)>,
    rx_packets: u64,
}

struct Writer {
    dp: Arc<Dataplane>,
    mem: Arc<SharedMem>,
    base: u64,
    /// Directory rebuilds so far; the live directory is in half `gen % 2`.
    gen: u64,
    shape: Shape,
    /// A shape that did not fit the segment (not retried until the shape changes again).
    failed: Option<Shape>,
    lay: Layout,
    n_threads: usize,
    started: Instant,
    heartbeat: u64,
    clear_mark: u64,
    last_stats_clear: u64,
    rates: Option<Rates>,
    opts: Options,
    /// Whether the live directory has the per-interface / per-node symlinks (dropped when
    /// the segment is too small for them).
    symlinks: bool,
    rate_values: RateValues,
    boottime: u64,
}

/// The last computed rates, rewritten on every update (and into a rebuilt directory).
#[derive(Default)]
struct RateValues {
    vector_rate: u64,
    input_rate: u64,
    /// Per thread: (vector rate, loops per second).
    per_thread: Vec<(u64, u64)>,
}

impl Writer {
    fn new(dp: Arc<Dataplane>, mem: Arc<SharedMem>, opts: Options) -> Self {
        let n_threads = dp.workers.iter().map(|w| w.thread + 1).max().unwrap_or(1);
        Self {
            base: mem.addr(),
            dp,
            mem,
            gen: 0,
            shape: Shape::default(),
            failed: None,
            lay: Layout::default(),
            n_threads,
            started: Instant::now(),
            heartbeat: 0,
            clear_mark: 0,
            last_stats_clear: 0,
            rates: None,
            opts,
            symlinks: true,
            rate_values: RateValues::default(),
            boottime: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }

    /// Write the header and the first directory.
    fn init(&mut self) -> std::io::Result<()> {
        let m = &self.mem;
        m.store_u64(VERSION, SEGMENT_VERSION);
        m.store_u64(BASE, self.base);
        m.store_u64(EPOCH, 1);
        m.store_u64(IN_PROGRESS, 0);
        let shape = {
            let f = self.dp.fwd();
            Shape::of(f.ifs())
        };
        if !self.rebuild(shape) {
            return Err(std::io::Error::other(format!(
                "segment of {} bytes too small for the directory",
                self.mem.len()
            )));
        }
        Ok(())
    }

    fn update(&mut self) {
        let changed = match self.dp.fwd.try_lock() {
            Ok(f) => (!self.shape.matches(f.ifs())).then(|| Shape::of(f.ifs())),
            Err(TryLockError::Poisoned(p)) => {
                let f = p.into_inner();
                (!self.shape.matches(f.ifs())).then(|| Shape::of(f.ifs()))
            }
            // The CLI holds the tables (a long change): look again next time.
            Err(TryLockError::WouldBlock) => None,
        };
        if let Some(s) = changed {
            if self.failed.as_ref() != Some(&s) {
                self.rebuild(s);
            }
        }
        self.write_values();
    }

    /// Build the directory for `shape` in the idle half, fill it, and swap it in.
    fn rebuild(&mut self, shape: Shape) -> bool {
        let half = ((self.gen + 1) % 2) as usize;
        let mut symlinks = true;
        let lay = self.build(&shape, half, true).or_else(|| {
            symlinks = false;
            self.build(&shape, half, false)
        });
        let Some(lay) = lay else {
            log::error!(
                "stats segment: {} bytes are too small for {} interfaces; directory not updated",
                self.mem.len(),
                shape.ifs.len()
            );
            self.failed = Some(shape);
            return false;
        };
        let old = std::mem::replace(&mut self.lay, lay);
        // Scalars live in the directory entries: carry them over before the swap.
        self.write_values();
        let m = &self.mem;
        m.store_u64(IN_PROGRESS, 1);
        m.store_u64(DIRECTORY, self.base + self.lay.dir as u64);
        m.store_u64(EPOCH, m.load_u64(EPOCH) + 1);
        m.store_u64(IN_PROGRESS, 0);
        drop(old);
        self.gen += 1;
        self.shape = shape;
        self.failed = None;
        if self.symlinks && !symlinks {
            log::warn!(
                "stats segment: {} bytes are too small for /interfaces/ and /nodes/ symlinks; \
                 publishing without them (raise statseg size)",
                self.mem.len()
            );
        }
        self.symlinks = symlinks;
        true
    }

    fn build(&self, shape: &Shape, half: usize, symlinks: bool) -> Option<Layout> {
        let m = &*self.mem;
        let heap = m.len() - HEAP_START;
        let half_size = (heap / 2) & !63;
        let start = HEAP_START + half * half_size;
        let mut a = Arena {
            m,
            base: self.base,
            cur: start,
            // Keep a gap: vpp_papi rejects a vector that ends exactly at the segment's end.
            end: start + half_size - 64,
        };
        let dp = &*self.dp;
        let nt = self.n_threads;
        let ni = shape.ifs.len();
        let mut d = Dir {
            entries: Vec::new(),
            seen: HashSet::new(),
        };
        let mut lay = Layout {
            n_ifs: ni,
            ..Default::default()
        };
        // VPP's fixed entries 0..3 (STAT_COUNTER_HEARTBEAT, _LAST_STATS_CLEAR, _BOOTTIME).
        let heartbeat = d.add("/sys/heartbeat", TYPE_SCALAR_INDEX, 0);
        let last_clear = d.add("/sys/last_stats_clear", TYPE_SCALAR_INDEX, 0);
        let boottime = d.add("/sys/boottime", TYPE_SCALAR_INDEX, 0);
        let vector_rate = d.add("/sys/vector_rate", TYPE_GAUGE, 0);
        let (p, rows) = a.counters(8, 1, nt)?;
        lay.vector_rate_per_worker = rows[0];
        d.add("/sys/vector_rate_per_worker", TYPE_COUNTER_VECTOR_SIMPLE, p);
        let (p, rows) = a.counters(8, 1, nt)?;
        lay.loops_per_worker = rows[0];
        d.add("/sys/loops_per_worker", TYPE_COUNTER_VECTOR_SIMPLE, p);
        let num_workers = d.add("/sys/num_worker_threads", TYPE_GAUGE, 0);
        let last_update = d.add("/sys/last_update", TYPE_SCALAR_INDEX, 0);
        let input_rate = d.add("/sys/input_rate", TYPE_GAUGE, 0);
        let buf = ["cached", "used", "available"]
            .map(|k| d.add(&format!("/buffer-pools/{BUFFER_POOL}/{k}"), TYPE_GAUGE, 0));
        // How the pool's memory is backed (rvpp's own entries; VPP has none): the page size
        // as a gauge and the backing's name ("hugetlb", "shmem-thp", "normal").
        let pool = &self.dp.pool;
        let page_size = pool.backing().page_size() as u64;
        d.add(
            &format!("/buffer-pools/{BUFFER_POOL}/page-size"),
            TYPE_GAUGE,
            page_size,
        );
        let p = a.names([pool.backing().name()].into_iter())?;
        d.add(
            &format!("/buffer-pools/{BUFFER_POOL}/backing"),
            TYPE_NAME_VECTOR,
            p,
        );

        // Interfaces. Counters without a source share one zeroed vector per kind.
        let (zero_simple, _) = a.counters(8, nt, ni)?;
        let (zero_combined, _) = a.counters(16, nt, ni)?;
        let mut if_index = Vec::new();
        for c in IF_SIMPLE {
            let p = match c {
                "drops" => {
                    let (p, rows) = a.counters(8, nt, ni)?;
                    lay.if_drops = rows;
                    p
                }
                "tx-error" => {
                    let (p, rows) = a.counters(8, nt, ni)?;
                    lay.if_tx_error = rows;
                    p
                }
                _ => zero_simple,
            };
            if_index.push((c, d.add(&format!("/if/{c}"), TYPE_COUNTER_VECTOR_SIMPLE, p)));
        }
        for c in IF_COMBINED {
            let p = match c {
                "rx" => {
                    let (p, rows) = a.counters(16, nt, ni)?;
                    lay.if_rx = rows;
                    p
                }
                "tx" => {
                    let (p, rows) = a.counters(16, nt, ni)?;
                    lay.if_tx = rows;
                    p
                }
                _ => zero_combined,
            };
            if_index.push((
                c,
                d.add(&format!("/if/{c}"), TYPE_COUNTER_VECTOR_COMBINED, p),
            ));
        }
        let p = a.names(shape.ifs.iter().map(|n| n.as_deref().unwrap_or("deleted")))?;
        d.add("/if/names", TYPE_NAME_VECTOR, p);
        if symlinks {
            for (sw, name) in shape.ifs.iter().enumerate() {
                let Some(name) = name else { continue };
                for (c, target) in &if_index {
                    d.symlink(&format!("/interfaces/{}/{c}", component(name)), *target, sw);
                }
            }
        }

        // Errors: /node/errors [thread][error] and a symlink per error.
        let (p, rows) = a.counters(8, nt, dp.error_names.len())?;
        lay.errors = rows;
        let errors = d.add("/node/errors", TYPE_COUNTER_VECTOR_SIMPLE, p);
        for (i, (node, reason)) in dp.error_names.iter().enumerate() {
            d.symlink(&format!("/err/{node}/{reason}"), errors, i);
        }

        if self.opts.per_node_counters {
            self.build_nodes(&mut a, &mut d, &mut lay, symlinks)?;
        }

        // The directory itself.
        let dir = a.vec(ENTRY_SIZE, d.entries.len(), 64)?;
        for (i, (name, ty, value)) in d.entries.iter().enumerate() {
            let e = dir + i * ENTRY_SIZE;
            m.store_u32(e, *ty);
            m.store_u64(e + 8, *value);
            m.write_bytes(e + 16, name.as_bytes());
        }
        let slot = |i: u32| dir + i as usize * ENTRY_SIZE + 8;
        lay.dir = dir;
        lay.heartbeat = slot(heartbeat);
        lay.last_stats_clear = slot(last_clear);
        lay.boottime = slot(boottime);
        lay.vector_rate = slot(vector_rate);
        lay.num_worker_threads = slot(num_workers);
        lay.last_update = slot(last_update);
        lay.input_rate = slot(input_rate);
        lay.buf_cached = slot(buf[0]);
        lay.buf_used = slot(buf[1]);
        lay.buf_available = slot(buf[2]);
        Some(lay)
    }

    /// Node counters (VPP: `statseg { per-node-counters on }`): `/sys/node/names`,
    /// `/sys/node/<counter>` `[thread][node]`, and `/nodes/<node>/<counter>` symlinks.
    fn build_nodes(
        &self,
        a: &mut Arena<'_>,
        d: &mut Dir,
        lay: &mut Layout,
        symlinks: bool,
    ) -> Option<()> {
        let dp = &*self.dp;
        let nt = self.n_threads;
        let nn = dp.graph_names.len();
        let p = a.names(dp.graph_names.iter().copied())?;
        d.add("/sys/node/names", TYPE_NAME_VECTOR, p);
        let mut node_index = [0u32; 4];
        for (k, c) in NODE_COUNTERS.iter().enumerate() {
            let (p, rows) = a.counters(8, nt, nn)?;
            lay.nodes[k] = rows;
            node_index[k] = d.add(&format!("/sys/node/{c}"), TYPE_COUNTER_VECTOR_SIMPLE, p);
        }
        if symlinks {
            for (ni, node) in dp.graph_names.iter().enumerate() {
                for (k, c) in NODE_COUNTERS.iter().enumerate() {
                    d.symlink(
                        &format!("/nodes/{}/{c}", component(node)),
                        node_index[k],
                        ni,
                    );
                }
            }
        }
        Some(())
    }

    /// Copy counters, gauges and scalars into the current layout.
    fn write_values(&mut self) {
        let m = &*self.mem;
        let dp = &*self.dp;
        let lay = &self.lay;
        let now = Instant::now();
        let uptime = now.duration_since(self.started).as_secs();
        let mut rx_total = 0u64;
        let mut per_thread = vec![(0u64, 0u64, 0u64); self.n_threads];
        let mut clear_mark = 0u64;
        {
            let b = dp.baseline.lock().unwrap_or_else(|e| e.into_inner());
            for (wi, w) in dp.workers.iter().enumerate() {
                let t = w.thread;
                let s = &w.stats;
                for sw in 0..lay.n_ifs.min(s.ifs.len()) {
                    let c = &s.ifs[sw];
                    let mut v = [
                        c.rx_packets.get(),
                        c.rx_bytes.get(),
                        c.tx_packets.get(),
                        c.tx_bytes.get(),
                        c.drops.get(),
                        c.tx_errors.get(),
                    ];
                    rx_total = rx_total.wrapping_add(v[0]);
                    if let Some(base) = b.ifs.get(&(wi, sw)) {
                        for k in 0..6 {
                            v[k] = v[k].saturating_sub(base[k]);
                        }
                    }
                    m.store_u64(lay.if_rx[t] + 16 * sw, v[0]);
                    m.store_u64(lay.if_rx[t] + 16 * sw + 8, v[1]);
                    m.store_u64(lay.if_tx[t] + 16 * sw, v[2]);
                    m.store_u64(lay.if_tx[t] + 16 * sw + 8, v[3]);
                    m.store_u64(lay.if_drops[t] + 8 * sw, v[4]);
                    m.store_u64(lay.if_tx_error[t] + 8 * sw, v[5]);
                }
                for (ei, c) in s.errors.iter().enumerate() {
                    let base = b.errors.get(&(wi, ei)).copied().unwrap_or(0);
                    m.store_u64(lay.errors[t] + 8 * ei, c.get().saturating_sub(base));
                }
                let (mut vectors, mut calls) = (0u64, 0u64);
                for (ni, c) in s.nodes.iter().enumerate() {
                    let raw = [c.calls.get(), c.vectors.get(), c.clocks.get()];
                    calls = calls.wrapping_add(raw[0]);
                    vectors = vectors.wrapping_add(raw[1]);
                    let base = b.nodes.get(&(wi, ni)).copied().unwrap_or([0; 3]);
                    clear_mark = clear_mark.wrapping_add(base[0]).wrapping_add(base[2]);
                    // NODE_COUNTERS order: clocks, vectors, calls, suspends.
                    let vals = [
                        raw[2].saturating_sub(base[2]),
                        raw[1].saturating_sub(base[1]),
                        raw[0].saturating_sub(base[0]),
                        c.suspends.get(),
                    ];
                    if !lay.nodes[0].is_empty() {
                        for (k, v) in vals.into_iter().enumerate() {
                            m.store_u64(lay.nodes[k][t] + 8 * ni, v);
                        }
                    }
                }
                if t < per_thread.len() {
                    per_thread[t] = (vectors, calls, s.loops.get());
                }
            }
        }
        if clear_mark != self.clear_mark {
            // `clear runtime`: VPP stamps /sys/last_stats_clear with vlib_time_now.
            self.clear_mark = clear_mark;
            self.last_stats_clear = uptime;
        }
        self.heartbeat += 1;
        m.store_u64(lay.heartbeat, self.heartbeat);
        m.store_u64(lay.last_stats_clear, self.last_stats_clear);
        m.store_u64(lay.boottime, self.boottime);
        m.store_u64(lay.last_update, uptime);
        let workers = if self.n_threads > 1 {
            dp.workers.len() as u64
        } else {
            0
        };
        m.store_u64(lay.num_worker_threads, workers);
        let pool = &dp.pool;
        m.store_u64(lay.buf_cached, pool.cached_count() as u64);
        m.store_u64(lay.buf_used, pool.in_use() as u64);
        m.store_u64(lay.buf_available, pool.free_count() as u64);

        let due = match &self.rates {
            None => true,
            Some(r) => now.duration_since(r.at) >= RATE_INTERVAL,
        };
        if due {
            if let Some(r) = &self.rates {
                let dt = now.duration_since(r.at).as_secs_f64().max(1e-3);
                let mut sum = 0f64;
                let rv = &mut self.rate_values;
                rv.per_thread.clear();
                for (t, cur) in per_thread.iter().enumerate() {
                    let prev = r.threads.get(t).copied().unwrap_or_default();
                    let dv = cur.0.wrapping_sub(prev.0);
                    let dc = cur.1.wrapping_sub(prev.1);
                    let rate = if dc > 0 { dv as f64 / dc as f64 } else { 0.0 };
                    sum += rate;
                    let loops = cur.2.wrapping_sub(prev.2) as f64 / dt;
                    // VPP stores these f64s into u64 counters (truncating).
                    rv.per_thread.push((rate as u64, loops as u64));
                }
                // VPP averages over the workers (all threads but the main one).
                let n = per_thread.len();
                rv.vector_rate = (sum / (if n > 1 { n - 1 } else { 1 }) as f64) as u64;
                rv.input_rate = (rx_total.wrapping_sub(r.rx_packets) as f64 / dt) as u64;
            }
            self.rates = Some(Rates {
                at: now,
                threads: per_thread,
                rx_packets: rx_total,
            });
        }
        let rv = &self.rate_values;
        m.store_u64(lay.vector_rate, rv.vector_rate);
        m.store_u64(lay.input_rate, rv.input_rate);
        for (t, (rate, loops)) in rv.per_thread.iter().enumerate().take(self.n_threads) {
            m.store_u64(lay.vector_rate_per_worker + 8 * t, *rate);
            m.store_u64(lay.loops_per_worker + 8 * t, *loops);
        }
    }
}
