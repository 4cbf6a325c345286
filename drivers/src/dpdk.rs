//! DPDK ethdev uplinks: EAL init, ports, and rx/tx queues that move packets between DPDK mbufs
//! and rvpp buffers.
//!
//! * The EAL is initialised once per process ([`eal_init`]); a later call returns the same EAL.
//!   Devices are probed afterwards, one at a time, with `rte_dev_probe` ([`Eal::probe`]), so an
//!   unknown or broken device is an error naming it, and tests can add vdevs as they go.
//! * Arguments are built and validated here before EAL sees them (EAL prints its usage and may
//!   give up on bad ones); the process gets `--in-memory --no-telemetry` and a unique
//!   `--file-prefix`, so nothing on disk is shared with another DPDK process and nothing blocks.
//! * Two buffer strategies ([`RxMode`], `RVPP_DPDK_RX=copy|in-place`, chosen per port by
//!   [`PortConfig::rx_in_place`]):
//!   - `InPlace` (default): each rx and tx queue gets a mempool of data-less mbufs, each
//!     attached to an rvpp buffer it holds. Rx: the PMD receives straight into rvpp's pool; the
//!     packet is handed to the graph where it is and its mbuf re-pointed at a fresh rvpp
//!     buffer (two stores). Tx: an mbuf of the tx pool swaps its rvpp buffer for the packet's
//!     (no copy) and rvpp frees the swapped-out buffer; the PMD frees the mbuf whenever and
//!     wherever it likes (no callback, unlike `rte_pktmbuf_attach_extbuf`). Foreign mbufs (a
//!     ring peer's), chains, and packets with more than DPDK's 128 B of headroom used are
//!     copied. IOVA = VA for the attached buffers: right for vdevs; a PCI NIC needs the rvpp
//!     region registered and DMA-mapped (`rte_extmem_register` + `rte_dev_dma_map`, not done
//!     yet), so control/src/dpdk_setup.rs uses it for vdevs only.
//!   - `Copy`: rx copies each mbuf into a fresh rvpp buffer; tx copies into a fresh mbuf of
//!     the EAL's pool (one C call per burst each way).
//!
//!   Measured with `rvpp-bench dpdk-null --seconds 1 --runs 1` (64 B, one core at 2.6 GHz,
//!   2-core box shared with other jobs, so absolute figures swing by ~1.5x between runs):
//!
//!   | run | mode    | xconnect   | ip4 1k routes | testpmd io (same run) |
//!   |-----|---------|------------|---------------|-----------------------|
//!   | A   | Copy    | 10.30 Mpps | 9.23 Mpps     | 44.66 Mpps            |
//!   | A   | InPlace (rx only) | 18.27 Mpps | 12.77 Mpps | 44.66 Mpps      |
//!   | B   | Copy    | 17.66 Mpps | 14.81 Mpps    | 59.59 Mpps            |
//!   | B   | InPlace (rx + tx) | 42.43 Mpps | 23.75 Mpps | 59.59 Mpps      |
//!
//!
//!   `rvpp-bench dpdk-null --seconds 2 --runs 3 --json`, medians (testpmd io 60.87 Mpps):
//!   Copy xconnect 19.76 Mpps (0.32x) / ip4-1k 14.66 (0.24x); InPlace xconnect 41.60 Mpps
//!   (0.68x) / ip4-1k 23.32 (0.38x). Clocks per packet, InPlace xconnect: dpdk-input 26.0,
//!   dpdk-tx 26.3, ethernet-input 5.8, interface-output 3.9 (62 in all); Copy: 63.6 and 57.9.
//!   Per-node clocks (run A, xconnect): copy rx 119.5 clk/pkt, in-place rx 37.2; copy tx
//!   117.7. The copy reads net_null's cold mbuf data and writes a cold rvpp buffer.
//! * Rx queue `i` goes to a worker chosen by the daemon; each worker transmits on tx queue
//!   `worker % num_tx_queues`, under a lock only when several workers share a queue.

use rvpp_dataplane::buffer::{flags, BufferPool, Buffers, HEADROOM, META_SIZE, NO_BUFFER};
use rvpp_dataplane::device::{RxQueue, TxQueue};
use rvpp_dataplane::graph::rx_next;
use rvpp_dpdk_sys as sys;
use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// The input and tx node names of DPDK queues.
pub const INPUT_NODE: &str = "dpdk-input";
pub const TX_NODE: &str = "dpdk-tx";

/// Largest burst moved at once.
const BURST: usize = 256;

/// How received packets cross from mbufs to rvpp buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxMode {
    /// Copy each mbuf's packet into a fresh rvpp buffer and free the mbuf.
    Copy,
    /// The rx queue's mbufs are data-less headers whose buffers are rvpp buffers (a mempool per
    /// rx queue, each mbuf attached to one rvpp buffer it holds): a received packet is handed to
    /// the graph in place, and its mbuf is re-pointed at a fresh rvpp buffer before it goes back
    /// to the mempool. Mbufs the port did not allocate (a ring peer's, chains) are copied.
    InPlace,
}

static RX_MODE: AtomicU8 = AtomicU8::new(0);

/// The process's rx mode: `RVPP_DPDK_RX=copy|in-place` (read once), else the default, unless
/// [`set_rx_mode`] chose one. Used by whoever opens ports ([`PortConfig::rx_in_place`]).
pub fn rx_mode() -> RxMode {
    match RX_MODE.load(Ordering::Relaxed) {
        1 => RxMode::Copy,
        2 => RxMode::InPlace,
        _ => {
            let m = match std::env::var("RVPP_DPDK_RX").as_deref() {
                Ok("copy") => RxMode::Copy,
                Ok("in-place") => RxMode::InPlace,
                Ok(other) => {
                    log::warn!("dpdk: RVPP_DPDK_RX={other}: expected copy or in-place");
                    DEFAULT_RX_MODE
                }
                Err(_) => DEFAULT_RX_MODE,
            };
            set_rx_mode(m);
            m
        }
    }
}

/// Choose the rx mode for ports opened from now on.
pub fn set_rx_mode(m: RxMode) {
    RX_MODE.store(
        match m {
            RxMode::Copy => 1,
            RxMode::InPlace => 2,
        },
        Ordering::Relaxed,
    );
}

/// The rx mode of ports when nothing chose one (see the module docs for the figures).
pub const DEFAULT_RX_MODE: RxMode = RxMode::InPlace;

/// `LCORE_ID_ANY`: what `rte_lcore_id()` says on a thread EAL does not know.
const LCORE_ID_ANY: u32 = u32::MAX;

// `RTE_ETH_LINK_SPEED_*` are function-like macros (RTE_BIT32) that bindgen cannot see.
const SPEED_1G: u32 = 1 << 5;
const SPEED_10G: u32 = 1 << 8;
const SPEED_25G: u32 = 1 << 10;
const SPEED_40G: u32 = 1 << 11;
const SPEED_50G: u32 = 1 << 12;
const SPEED_100G: u32 = 1 << 14;
const SPEED_200G: u32 = 1 << 15;

/// EAL settings, from startup.conf's `dpdk { ... }` plus rvpp's `cpu { main-core }`.
#[derive(Clone, Debug)]
pub struct EalConfig {
    /// `no-hugetlb`: run on normal pages (`--no-huge -m <mem_mb>`).
    pub no_huge: bool,
    /// Memory for `--no-huge` (`-m`), in MiB.
    pub mem_mb: u32,
    /// `socket-mem` (ignored with `no_huge`, where EAL refuses it).
    pub socket_mem: Option<String>,
    /// `iova-mode` va|pa.
    pub iova_mode: Option<String>,
    /// The main lcore's CPU: rvpp's main core. `None` keeps the calling thread's affinity.
    pub main_core: Option<u32>,
    /// PCI devices to allow (`-a`); with none, `--no-pci`.
    pub pci: Vec<String>,
    /// `file-prefix`; default `rvpp-<pid>`.
    pub file_prefix: Option<String>,
    /// `log-level` (EAL syntax).
    pub log_level: Option<String>,
    /// Mbufs in the shared pool.
    pub mbufs: u32,
    /// Directory of PMD shared objects to load (`-d`); `None` = EAL's built-in plugin dir.
    pub pmd_dir: Option<String>,
}

impl Default for EalConfig {
    fn default() -> Self {
        Self {
            no_huge: false,
            mem_mb: 512,
            socket_mem: None,
            iova_mode: None,
            main_core: None,
            pci: Vec::new(),
            file_prefix: None,
            log_level: None,
            mbufs: 32 * 1024,
            pmd_dir: None,
        }
    }
}

/// `0000:00:04.0` from `00:04.0` or `0000:00:04.0` (lower case); None if it is not one.
pub fn normalize_pci(addr: &str) -> Option<String> {
    let parts: Vec<&str> = addr.split(':').collect();
    let (dom, bus, devfn) = match parts.as_slice() {
        [d, b, df] => (*d, *b, *df),
        [b, df] => ("0000", *b, *df),
        _ => return None,
    };
    let (dev, func) = devfn.split_once('.')?;
    let hex = |x: &str, n: usize| -> Option<u32> {
        if x.is_empty() || x.len() > n {
            return None;
        }
        u32::from_str_radix(x, 16).ok()
    };
    let (d, b, v, f) = (hex(dom, 4)?, hex(bus, 2)?, hex(dev, 2)?, hex(func, 1)?);
    if v > 0x1f || f > 7 {
        return None;
    }
    Some(format!("{d:04x}:{b:02x}:{v:02x}.{f:x}"))
}

fn hugepages_available() -> bool {
    let Ok(s) = std::fs::read_to_string("/proc/meminfo") else {
        return false;
    };
    s.lines()
        .find_map(|l| l.strip_prefix("HugePages_Free:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0)
}

/// The calling thread's CPUs, as an EAL cpuset `(0,1,4-7)`-style list.
fn current_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it for the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return vec![0];
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Build and check EAL's argv. Errors name the offending option.
pub fn eal_args(cfg: &EalConfig) -> Result<Vec<String>, String> {
    let mut a: Vec<String> = vec!["rvpp".into()];
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    match cfg.main_core {
        Some(c) => {
            if c as usize >= ncpu.max(current_cpus().last().map_or(0, |l| l + 1)) {
                return Err(format!("dpdk: main core {c} does not exist"));
            }
            a.push("-l".into());
            a.push(c.to_string());
        }
        None => {
            let cpus = current_cpus();
            let list: Vec<String> = cpus.iter().map(|c| c.to_string()).collect();
            a.push(format!("--lcores=0@({})", list.join(",")));
        }
    }
    let prefix = cfg
        .file_prefix
        .clone()
        .unwrap_or_else(|| format!("rvpp-{}", std::process::id()));
    if prefix.is_empty() || prefix.contains('/') || prefix.contains(char::is_whitespace) {
        return Err(format!("dpdk: bad file-prefix `{prefix}`"));
    }
    a.push("--no-telemetry".into());
    a.push(format!("--file-prefix={prefix}"));
    let no_huge = cfg.no_huge || !hugepages_available();
    // Nothing shared on disk: --in-memory with hugepages; --no-huge implies legacy memory,
    // which EAL refuses with --in-memory, so there --no-shconf.
    a.push(
        if no_huge {
            "--no-shconf"
        } else {
            "--in-memory"
        }
        .into(),
    );
    if !cfg.no_huge && no_huge {
        log::warn!("dpdk: no free hugepages; running EAL with --no-huge");
    }
    if no_huge {
        if !(64..=1 << 20).contains(&cfg.mem_mb) {
            return Err(format!("dpdk: memory {} MiB out of range", cfg.mem_mb));
        }
        a.extend(["--no-huge".into(), "-m".into(), cfg.mem_mb.to_string()]);
        if cfg.socket_mem.is_some() {
            log::warn!("dpdk: socket-mem ignored with no-hugetlb");
        }
    } else if let Some(sm) = &cfg.socket_mem {
        let ok = !sm.is_empty()
            && sm
                .split(',')
                .all(|x| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()));
        if !ok {
            return Err(format!(
                "dpdk: socket-mem `{sm}` is not a list of MiB per socket"
            ));
        }
        a.push(format!("--socket-mem={sm}"));
    }
    if let Some(m) = &cfg.iova_mode {
        if m != "va" && m != "pa" {
            return Err(format!("dpdk: iova-mode expects va or pa, got `{m}`"));
        }
        a.push(format!("--iova-mode={m}"));
    }
    if cfg.pci.is_empty() {
        a.push("--no-pci".into());
    }
    for p in &cfg.pci {
        let n = normalize_pci(p).ok_or_else(|| format!("dpdk: `{p}` is not a PCI address"))?;
        a.push("-a".into());
        a.push(n);
    }
    if let Some(l) = &cfg.log_level {
        if l.is_empty() || l.contains(char::is_whitespace) {
            return Err(format!("dpdk: bad log-level `{l}`"));
        }
        a.push(format!("--log-level={l}"));
    }
    if let Some(d) = &cfg.pmd_dir {
        if !std::path::Path::new(d).is_dir() {
            return Err(format!("dpdk: PMD directory {d} does not exist"));
        }
        a.push("-d".into());
        a.push(d.clone());
    }
    Ok(a)
}

/// A raw pointer owned by the EAL for the life of the process.
struct MempoolPtr(*mut sys::rte_mempool);
// SAFETY: DPDK mempools are multi-thread safe (ring-backed, per-lcore caches).
unsafe impl Send for MempoolPtr {}
// SAFETY: as above.
unsafe impl Sync for MempoolPtr {}

/// The process's initialised EAL and its mbuf pool.
pub struct Eal {
    pub args: Vec<String>,
    mempool: MempoolPtr,
    mbufs: u32,
    probe_lock: Mutex<()>,
}

static EAL: OnceLock<Result<Eal, String>> = OnceLock::new();
static EAL_INIT: Mutex<()> = Mutex::new(());

fn rte_err(rc: i32) -> String {
    let e = if rc < 0 { -rc } else { rc };
    // SAFETY: rte_strerror returns a pointer to a static or thread-local NUL-terminated string.
    let s = unsafe { CStr::from_ptr(sys::rte_strerror(e)) };
    format!("{} (errno {e})", s.to_string_lossy())
}

fn last_rte_err() -> String {
    // SAFETY: reads the calling thread's rte_errno.
    rte_err(unsafe { sys::rvpp_errno() })
}

/// Initialise the EAL (once per process). A later call returns the first result: the EAL
/// cannot be initialised twice, nor retried after a failure.
pub fn eal_init(cfg: &EalConfig) -> Result<&'static Eal, String> {
    let _g = EAL_INIT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = EAL.get() {
        return r.as_ref().map_err(|e| e.clone());
    }
    let args = eal_args(cfg)?;
    let r = init_inner(args, cfg.mbufs);
    let _ = EAL.set(r);
    EAL.get()
        .expect("set above")
        .as_ref()
        .map_err(|e| e.clone())
}

/// The EAL if it is up.
pub fn eal() -> Option<&'static Eal> {
    EAL.get().and_then(|r| r.as_ref().ok())
}

fn init_inner(args: Vec<String>, mbufs: u32) -> Result<Eal, String> {
    log::info!("dpdk: EAL args: {}", args.join(" "));
    let cargs: Vec<CString> = args
        .iter()
        .map(|a| CString::new(a.as_str()).map_err(|_| format!("dpdk: NUL in argument {a:?}")))
        .collect::<Result<_, _>>()?;
    // EAL may permute argv; give it its own array of pointers (the strings outlive the call
    // because EAL copies what it keeps).
    let mut argv: Vec<*mut libc::c_char> = cargs.iter().map(|c| c.as_ptr() as *mut _).collect();
    argv.push(std::ptr::null_mut());
    // SAFETY: argc/argv describe valid NUL-terminated strings; init runs once (guarded by
    // EAL_INIT/EAL above).
    let rc = unsafe { sys::rte_eal_init(args.len() as i32, argv.as_mut_ptr()) };
    std::mem::forget(cargs);
    if rc < 0 {
        return Err(format!(
            "dpdk: EAL init failed: {} (args: {})",
            last_rte_err(),
            args.join(" ")
        ));
    }
    let name = c"rvpp_mbufs";
    let data_room = (sys::RTE_MBUF_DEFAULT_BUF_SIZE) as u16;
    // SAFETY: EAL is up; the name is NUL-terminated; the pool lives for the process.
    let mp = unsafe {
        sys::rte_pktmbuf_pool_create(
            name.as_ptr(),
            mbufs,
            256,
            0,
            data_room,
            sys::rte_socket_id() as i32,
        )
    };
    if mp.is_null() {
        return Err(format!(
            "dpdk: cannot create a pool of {mbufs} mbufs: {}",
            last_rte_err()
        ));
    }
    Ok(Eal {
        args,
        mempool: MempoolPtr(mp),
        mbufs,
        probe_lock: Mutex::new(()),
    })
}

/// Let the calling (non-EAL) thread use per-lcore mempool caches: register it with EAL once.
#[inline]
fn register_thread() {
    thread_local!(static DONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
    DONE.with(|d| {
        if !d.get() {
            d.set(true);
            // SAFETY: plain EAL calls on the current thread; EAL is up when queues exist.
            unsafe {
                if sys::rvpp_lcore_id() == LCORE_ID_ANY && sys::rte_thread_register() != 0 {
                    log::debug!("dpdk: thread not registered: {}", last_rte_err());
                }
            }
        }
    });
}

impl Eal {
    /// Mbufs in the pool and how many are free now.
    pub fn mbufs(&self) -> (u32, u32) {
        // SAFETY: the pool pointer is valid for the process.
        (self.mbufs, unsafe {
            sys::rvpp_mempool_avail(self.mempool.0)
        })
    }

    /// Find or probe a device: a vdev (`net_null0,size=64`) or a PCI address. Returns its
    /// port id. An unknown driver or missing device is an error naming it.
    pub fn probe(&self, devargs: &str) -> Result<u16, String> {
        let _g = self.probe_lock.lock().unwrap_or_else(|e| e.into_inner());
        let raw = devargs.split(',').next().unwrap_or("").trim();
        if raw.is_empty() {
            return Err(format!("dpdk: empty device in `{devargs}`"));
        }
        let name = normalize_pci(raw).unwrap_or_else(|| raw.to_string());
        if let Some(p) = port_by_name(&name) {
            return Ok(p);
        }
        let c = CString::new(devargs).map_err(|_| format!("dpdk: NUL in `{devargs}`"))?;
        // SAFETY: EAL is up; devargs is NUL-terminated.
        let rc = unsafe { sys::rte_dev_probe(c.as_ptr()) };
        if rc < 0 {
            let hint = if normalize_pci(raw).is_some() {
                " (is it bound to vfio-pci or uio, and allowed?)"
            } else {
                " (unknown driver or bad arguments?)"
            };
            return Err(format!(
                "dpdk: cannot probe `{devargs}`: {}{hint}",
                rte_err(rc)
            ));
        }
        port_by_name(&name).ok_or_else(|| format!("dpdk: `{devargs}` probed but has no port"))
    }

    /// A pair of ports over two rte_rings, crossed: what is sent on one is received on the
    /// other (the ring PMD's `rte_eth_from_rings`). For tests and benchmarks.
    pub fn ring_pair(&self, a: &str, b: &str, size: u32) -> Result<(u16, u16), String> {
        let _g = self.probe_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mk = |n: String| -> Result<*mut sys::rte_ring, String> {
            let c = CString::new(n.clone()).map_err(|e| e.to_string())?;
            // SAFETY: EAL is up; name NUL-terminated; single-producer/consumer rings, each end
            // used by one queue.
            let r = unsafe {
                sys::rte_ring_create(
                    c.as_ptr(),
                    size,
                    sys::rte_socket_id() as i32,
                    sys::RING_F_SP_ENQ | sys::RING_F_SC_DEQ,
                )
            };
            if r.is_null() {
                Err(format!("dpdk: ring {n}: {}", last_rte_err()))
            } else {
                Ok(r)
            }
        };
        let r1 = mk(format!("{a}_to_{b}"))?;
        let r2 = mk(format!("{b}_to_{a}"))?;
        let mk_port = |name: &str, rx: *mut sys::rte_ring, tx: *mut sys::rte_ring| {
            let c = CString::new(name).map_err(|e| e.to_string())?;
            let mut rxs = [rx];
            let mut txs = [tx];
            // SAFETY: arrays of one valid ring each, read during the call.
            let p = unsafe {
                sys::rte_eth_from_rings(
                    c.as_ptr(),
                    rxs.as_mut_ptr(),
                    1,
                    txs.as_mut_ptr(),
                    1,
                    sys::rte_socket_id(),
                )
            };
            if p < 0 {
                Err(format!("dpdk: ring port {name}: {}", last_rte_err()))
            } else {
                Ok(p as u16)
            }
        };
        Ok((mk_port(a, r2, r1)?, mk_port(b, r1, r2)?))
    }

    fn mempool(&self) -> *mut sys::rte_mempool {
        self.mempool.0
    }
}

fn port_by_name(name: &str) -> Option<u16> {
    let c = CString::new(name).ok()?;
    let mut p = 0u16;
    // SAFETY: name NUL-terminated, p a valid out-pointer.
    let rc = unsafe { sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut p) };
    (rc == 0).then_some(p)
}

/// How to set a port up (from `dev <addr> { ... }`).
#[derive(Clone)]
pub struct PortConfig {
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    pub mtu: Option<u16>,
    pub promiscuous: bool,
    /// Receive in place into this pool's buffers ([`RxMode::InPlace`]); `None` copies.
    pub rx_in_place: Option<Arc<BufferPool>>,
}

impl std::fmt::Debug for PortConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortConfig")
            .field("rx_queues", &self.rx_queues)
            .field("tx_queues", &self.tx_queues)
            .field("rx_desc", &self.rx_desc)
            .field("tx_desc", &self.tx_desc)
            .field("mtu", &self.mtu)
            .field("promiscuous", &self.promiscuous)
            .field("rx_in_place", &self.rx_in_place.is_some())
            .finish()
    }
}

impl Default for PortConfig {
    fn default() -> Self {
        Self {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            mtu: None,
            promiscuous: false,
            rx_in_place: None,
        }
    }
}

/// Link state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Link {
    pub up: bool,
    pub speed_mbps: u32,
    pub full_duplex: bool,
}

/// Device counters (`rte_eth_stats`) plus rvpp's own drops at the mbuf/buffer boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PortStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Dropped by the NIC because rx descriptors were full (VPP's `rx-miss`).
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    /// Rx mbuf allocation failures in the PMD.
    pub rx_nombuf: u64,
    /// Packets dropped because rvpp's buffer pool was empty.
    pub rx_no_rvpp_buffer: u64,
    /// Packets dropped on tx because the mbuf pool was empty.
    pub tx_no_mbuf: u64,
}

#[derive(Default)]
struct DriverCounters {
    rx_no_buffer: AtomicU64,
    tx_no_mbuf: AtomicU64,
}

/// An rx queue's mempool of data-less mbufs, each holding one rvpp buffer ([`RxMode::InPlace`]).
struct RxPool {
    mp: MempoolPtr,
    pool: Arc<BufferPool>,
}

static RX_POOLS: AtomicU32 = AtomicU32::new(0);

/// Where an mbuf attached to rvpp buffer `bi` starts: DPDK's headroom before the data area,
/// so that the default `data_off` lands on rvpp's `current_data = 0`.
const MBUF_HEADROOM: usize = sys::RTE_PKTMBUF_HEADROOM as usize;
const _: () = assert!(MBUF_HEADROOM <= HEADROOM);

#[inline(always)]
fn rvpp_mbuf_buf(base: *mut u8, stride: usize, bi: u32) -> *mut u8 {
    // SAFETY (for callers): bi is a buffer of the pool at `base`; the result stays inside it.
    base.wrapping_add(bi as usize * stride + META_SIZE + HEADROOM - MBUF_HEADROOM)
}

impl RxPool {
    /// A mempool of `n` mbufs, each attached to a buffer taken from `pool`.
    fn new(pool: &Arc<BufferPool>, n: u32, socket: u32) -> Result<RxPool, String> {
        let name = CString::new(format!(
            "rvpp_rx{}",
            RX_POOLS.fetch_add(1, Ordering::Relaxed)
        ))
        .map_err(|e| e.to_string())?;
        let buf_len = MBUF_HEADROOM + pool.data_size();
        let buf_len = u16::try_from(buf_len).map_err(|_| "dpdk: rvpp buffers too large")?;
        // SAFETY: EAL is up; name NUL-terminated. Data room 0: the mbufs get rvpp buffers below.
        let mp =
            unsafe { sys::rte_pktmbuf_pool_create(name.as_ptr(), n, 256, 0, 0, socket as i32) };
        if mp.is_null() {
            return Err(format!(
                "dpdk: cannot create an rx pool of {n} mbufs: {}",
                last_rte_err()
            ));
        }
        let mut bufs = pool.local();
        let mut idx = vec![0u32; n as usize];
        let mut mbufs: Vec<*mut sys::rte_mbuf> = vec![std::ptr::null_mut(); n as usize];
        // SAFETY: mp is a fresh pool of exactly n mbufs; mbufs has room for n.
        let rc = unsafe { sys::rvpp_pktmbuf_alloc_bulk(mp, mbufs.as_mut_ptr(), n) };
        let got = if rc == 0 { bufs.alloc(&mut idx) } else { 0 };
        if rc != 0 || got < n as usize {
            // SAFETY: nothing but this function references the pool or its mbufs yet, and
            // neither is used after this.
            unsafe { sys::rte_mempool_free(mp) };
            // The buffers we did get go back (they were never attached to an mbuf).
            bufs.free(&idx[..got]);
            return Err(format!(
                "dpdk: in-place rx needs {n} rvpp buffers per rx queue; the pool has {} free",
                pool.free_count() + pool.cached_count()
            ));
        }
        for (&m, &bi) in mbufs.iter().zip(&idx) {
            // SAFETY: m is a direct mbuf we hold; the buffer is one we own from now on (it
            // belongs to the mempool until a packet in it is received).
            unsafe {
                sys::rvpp_mbuf_set_buf(
                    m,
                    rvpp_mbuf_buf(pool.region_base(), pool.stride(), bi).cast(),
                    buf_len,
                )
            };
        }
        // SAFETY: as above; the pool advertises what the mbufs now hold; the mbufs go back.
        unsafe {
            sys::rvpp_mempool_set_data_room(mp, buf_len);
            sys::rte_pktmbuf_free_bulk(mbufs.as_mut_ptr(), n);
        }
        bufs.flush();
        Ok(RxPool {
            mp: MempoolPtr(mp),
            pool: pool.clone(),
        })
    }

    /// After the port stopped: give the buffers of the mbufs in the pool back to rvpp, and free
    /// the pool if every mbuf came back (mbufs still out keep their buffers: a leak, not a fault).
    fn release(&self) {
        // SAFETY: the pool is valid; the port is stopped, so the PMD allocates nothing more.
        let avail = unsafe { sys::rvpp_mempool_avail(self.mp.0) };
        if avail == 0 {
            return;
        }
        let mut mbufs: Vec<*mut sys::rte_mbuf> = vec![std::ptr::null_mut(); avail as usize];
        // SAFETY: the pool is valid and mbufs has room for `avail` pointers. Bulk allocation
        // is all or nothing, so a failure (some of the avail mbufs sit in another lcore's
        // cache) leaves nothing allocated.
        if unsafe { sys::rvpp_pktmbuf_alloc_bulk(self.mp.0, mbufs.as_mut_ptr(), avail) } != 0 {
            return;
        }
        let base = self.pool.region_base() as usize;
        let idx: Vec<u32> = mbufs
            .iter()
            .filter_map(|&m| {
                // SAFETY: m is one of the `avail` mbufs just allocated from our pool, so it is
                // a valid mbuf we hold. Every mbuf of this pool is attached to an rvpp buffer
                // (by `new`, by in-place rx or by a tx swap), so buf_addr lies in the region.
                let addr = unsafe { (*m).buf_addr } as usize;
                self.pool.buffer_at_offset(addr.wrapping_sub(base))
            })
            .collect();
        let mut bufs = self.pool.local();
        bufs.free(&idx);
        bufs.flush();
        // SAFETY: the `avail` mbufs in `mbufs` are ours (allocated above) and go back to the
        // pool; the pool is freed only if that is all of them (`total`), i.e. no mbuf of it is
        // still held by a PMD or a ring peer. Otherwise it stays allocated (a leak), and the
        // mbufs put back now point at buffers rvpp has just taken back: sound only because the
        // port is stopped and being dropped, so nothing allocates from this pool again.
        unsafe {
            let total = (*self.mp.0).size;
            sys::rte_pktmbuf_free_bulk(mbufs.as_mut_ptr(), avail);
            if avail == total {
                sys::rte_mempool_free(self.mp.0);
            }
        }
    }
}

/// A configured and started DPDK port. Stopped and closed when the last queue is dropped.
pub struct Port {
    pub id: u16,
    /// DPDK's device name (`net_null0`, `0000:00:04.0`).
    pub dev_name: String,
    pub driver: String,
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    pub rss: bool,
    pub mac: [u8; 6],
    pub speed_capa: u32,
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
    mempool: MempoolPtr,
    /// Per rx queue, with [`RxMode::InPlace`].
    rx_pools: Vec<RxPool>,
    /// Per tx queue, with [`RxMode::InPlace`]: mbufs that swap their rvpp buffer for the
    /// packet's on tx.
    tx_pools: Vec<RxPool>,
    tx_locks: Vec<Arc<Mutex<()>>>,
    counters: DriverCounters,
}

impl Port {
    /// Configure port `id` with `cfg` and start it. Too many queues, or a device that refuses
    /// the configuration, is an error naming the device.
    pub fn open(eal: &Eal, id: u16, cfg: &PortConfig) -> Result<Arc<Port>, String> {
        let dev_name = {
            let mut buf = [0 as libc::c_char; 128];
            // SAFETY: buf is large enough (RTE_ETH_NAME_MAX_LEN = 64).
            let rc = unsafe { sys::rte_eth_dev_get_name_by_port(id, buf.as_mut_ptr()) };
            if rc != 0 {
                return Err(format!("dpdk: no port {id}"));
            }
            // SAFETY: DPDK NUL-terminated it.
            unsafe { CStr::from_ptr(buf.as_ptr()) }
                .to_string_lossy()
                .into_owned()
        };
        let mut info: sys::rte_eth_dev_info = Default::default();
        // SAFETY: valid port id and out-pointer.
        let rc = unsafe { sys::rte_eth_dev_info_get(id, &mut info) };
        if rc != 0 {
            return Err(format!("dpdk: {dev_name}: device info: {}", rte_err(rc)));
        }
        let driver = if info.driver_name.is_null() {
            "unknown".to_string()
        } else {
            // SAFETY: driver_name is a static NUL-terminated string of the PMD.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        if cfg.rx_queues == 0 || cfg.tx_queues == 0 {
            return Err(format!("dpdk: {dev_name}: queue counts must be at least 1"));
        }
        if cfg.rx_queues > info.max_rx_queues {
            return Err(format!(
                "dpdk: {dev_name}: num-rx-queues {} but the device ({driver}) has at most {}",
                cfg.rx_queues, info.max_rx_queues
            ));
        }
        if cfg.tx_queues > info.max_tx_queues {
            return Err(format!(
                "dpdk: {dev_name}: num-tx-queues {} but the device ({driver}) has at most {}",
                cfg.tx_queues, info.max_tx_queues
            ));
        }
        let mut conf: sys::rte_eth_conf = Default::default();
        // SAFETY: a pure function returning a constant.
        let rss_hf = unsafe { sys::rvpp_rss_hf_default() } & info.flow_type_rss_offloads;
        let rss = cfg.rx_queues > 1 && rss_hf != 0;
        if rss {
            conf.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
        } else if cfg.rx_queues > 1 {
            log::warn!("dpdk: {dev_name}: {driver} has no RSS; rx queues beyond 0 may stay idle");
        }
        // SAFETY: valid port, conf outlives the call.
        let rc = unsafe { sys::rte_eth_dev_configure(id, cfg.rx_queues, cfg.tx_queues, &conf) };
        if rc != 0 {
            return Err(format!("dpdk: {dev_name}: configure: {}", rte_err(rc)));
        }
        let (mut rxd, mut txd) = (cfg.rx_desc, cfg.tx_desc);
        // SAFETY: valid port and out-pointers.
        let rc = unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut rxd, &mut txd) };
        if rc != 0 {
            return Err(format!("dpdk: {dev_name}: descriptors: {}", rte_err(rc)));
        }
        // SAFETY: valid port.
        let socket = unsafe { sys::rte_eth_dev_socket_id(id) };
        let socket = if socket < 0 {
            // SAFETY: plain query.
            unsafe { sys::rte_socket_id() }
        } else {
            socket as u32
        };
        let mut rx_pools = Vec::new();
        if let Some(pool) = &cfg.rx_in_place {
            for _ in 0..cfg.rx_queues {
                let n = rxd as u32 * 2 + 2 * BURST as u32 + 512;
                rx_pools
                    .push(RxPool::new(pool, n, socket).map_err(|e| format!("{e} ({dev_name})"))?);
            }
        }
        let mut tx_pools = Vec::new();
        if let Some(pool) = &cfg.rx_in_place {
            for _ in 0..cfg.tx_queues {
                let n = txd as u32 + 2 * BURST as u32 + 512;
                tx_pools
                    .push(RxPool::new(pool, n, socket).map_err(|e| format!("{e} ({dev_name})"))?);
            }
        }
        for q in 0..cfg.rx_queues {
            let mp = rx_pools.get(q as usize).map_or(eal.mempool(), |p| p.mp.0);
            // SAFETY: port configured with rx_queues queues; the pool lives as long as the port
            // (the EAL's for the process).
            let rc =
                unsafe { sys::rte_eth_rx_queue_setup(id, q, rxd, socket, std::ptr::null(), mp) };
            if rc != 0 {
                return Err(format!("dpdk: {dev_name}: rx queue {q}: {}", rte_err(rc)));
            }
        }
        for q in 0..cfg.tx_queues {
            // SAFETY: port configured with tx_queues queues.
            let rc = unsafe { sys::rte_eth_tx_queue_setup(id, q, txd, socket, std::ptr::null()) };
            if rc != 0 {
                return Err(format!("dpdk: {dev_name}: tx queue {q}: {}", rte_err(rc)));
            }
        }
        if let Some(mtu) = cfg.mtu {
            // SAFETY: valid port.
            let rc = unsafe { sys::rte_eth_dev_set_mtu(id, mtu) };
            if rc != 0 {
                log::warn!("dpdk: {dev_name}: mtu {mtu}: {}", rte_err(rc));
            }
        }
        if cfg.promiscuous {
            // SAFETY: valid port.
            let rc = unsafe { sys::rte_eth_promiscuous_enable(id) };
            if rc != 0 {
                log::warn!("dpdk: {dev_name}: promiscuous: {}", rte_err(rc));
            }
        }
        // SAFETY: valid, configured port.
        let rc = unsafe { sys::rte_eth_dev_start(id) };
        if rc != 0 {
            return Err(format!("dpdk: {dev_name}: start: {}", rte_err(rc)));
        }
        let mut mac: sys::rte_ether_addr = Default::default();
        // SAFETY: valid port and out-pointer.
        unsafe { sys::rte_eth_macaddr_get(id, &mut mac) };
        Ok(Arc::new(Port {
            id,
            dev_name,
            driver,
            rx_queues: cfg.rx_queues,
            tx_queues: cfg.tx_queues,
            rx_desc: rxd,
            tx_desc: txd,
            rss,
            mac: mac.addr_bytes,
            speed_capa: info.speed_capa,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            mempool: MempoolPtr(eal.mempool()),
            rx_pools,
            tx_pools,
            tx_locks: (0..cfg.tx_queues)
                .map(|_| Arc::new(Mutex::new(())))
                .collect(),
            counters: DriverCounters::default(),
        }))
    }

    pub fn link(&self) -> Link {
        let mut l: sys::rte_eth_link = Default::default();
        // SAFETY: valid port and out-pointer; nowait never blocks.
        let rc = unsafe { sys::rte_eth_link_get_nowait(self.id, &mut l) };
        if rc != 0 {
            return Link::default();
        }
        Link {
            up: l.link_status() != 0,
            speed_mbps: l.link_speed,
            full_duplex: l.link_duplex() != 0,
        }
    }

    pub fn mtu(&self) -> u16 {
        let mut m = 0u16;
        // SAFETY: valid port and out-pointer.
        if unsafe { sys::rte_eth_dev_get_mtu(self.id, &mut m) } != 0 {
            return 1500;
        }
        m
    }

    pub fn stats(&self) -> PortStats {
        let mut s: sys::rte_eth_stats = Default::default();
        // SAFETY: valid port and out-pointer.
        unsafe { sys::rte_eth_stats_get(self.id, &mut s) };
        PortStats {
            rx_packets: s.ipackets,
            rx_bytes: s.ibytes,
            tx_packets: s.opackets,
            tx_bytes: s.obytes,
            rx_missed: s.imissed,
            rx_errors: s.ierrors,
            tx_errors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
            rx_no_rvpp_buffer: self.counters.rx_no_buffer.load(Ordering::Relaxed),
            tx_no_mbuf: self.counters.tx_no_mbuf.load(Ordering::Relaxed),
        }
    }

    /// VPP's interface name: `GigabitEthernet0/4/0` for PCI devices (by speed capability),
    /// the device name for vdevs.
    pub fn vpp_name(&self) -> String {
        let Some(pci) = normalize_pci(&self.dev_name) else {
            return self.dev_name.clone();
        };
        let prefix = if self.driver.contains("virtio") {
            "VirtioEthernet"
        } else if self.driver.contains("vmxnet3") {
            "VMXNET3Ethernet"
        } else {
            let c = self.speed_capa;
            if c & SPEED_200G != 0 {
                "TwoHundredGigabitEthernet"
            } else if c & SPEED_100G != 0 {
                "HundredGigabitEthernet"
            } else if c & SPEED_50G != 0 {
                "FiftyGigabitEthernet"
            } else if c & SPEED_40G != 0 {
                "FortyGigabitEthernet"
            } else if c & SPEED_25G != 0 {
                "TwentyFiveGigabitEthernet"
            } else if c & SPEED_10G != 0 {
                "TenGigabitEthernet"
            } else if c & SPEED_1G != 0 {
                "GigabitEthernet"
            } else {
                "UnknownEthernet"
            }
        };
        vpp_pci_name(prefix, &pci)
    }

    /// One line for `show hardware`.
    pub fn describe(&self) -> String {
        let l = self.link();
        format!(
            "dpdk port {} {} (driver {}), link {}{}, mtu {}, rx queues {} x {} desc{}, tx queues {} x {} desc",
            self.id,
            self.dev_name,
            self.driver,
            if l.up { "up" } else { "down" },
            if l.up {
                format!(
                    " {} Mbps {}",
                    l.speed_mbps,
                    if l.full_duplex { "full-duplex" } else { "half-duplex" }
                )
            } else {
                String::new()
            },
            self.mtu(),
            self.rx_queues,
            self.rx_desc,
            if self.rss { " (RSS)" } else { "" },
            self.tx_queues,
            self.tx_desc
        )
    }

    /// Rx queue `queue`, delivering to interface `sw_if_index`.
    pub fn rx_queue(self: &Arc<Self>, queue: u16, sw_if_index: u32) -> DpdkRx {
        assert!(queue < self.rx_queues, "rx queue {queue} out of range");
        DpdkRx {
            port: self.clone(),
            queue,
            sw_if_index,
            mbufs: vec![std::ptr::null_mut(); BURST].into_boxed_slice(),
            dst: vec![std::ptr::null_mut(); BURST].into_boxed_slice(),
            lens: vec![0; BURST].into_boxed_slice(),
            template: None,
            in_place: self.rx_pools.get(queue as usize).map(|p| InPlace {
                mp: p.mp.0,
                base: p.pool.region_base(),
                len: p.pool.region_len(),
                stride: p.pool.stride(),
                fresh: vec![0; BURST].into_boxed_slice(),
            }),
        }
    }

    /// The tx queue a worker uses: `worker % tx_queues`, locked when shared by `n_workers`.
    pub fn tx_queue(self: &Arc<Self>, worker: usize, n_workers: usize) -> DpdkTx {
        let q = (worker % self.tx_queues as usize) as u16;
        let shared = n_workers > self.tx_queues as usize;
        DpdkTx {
            port: self.clone(),
            queue: q,
            lock: shared.then(|| self.tx_locks[q as usize].clone()),
            mbufs: vec![std::ptr::null_mut(); BURST].into_boxed_slice(),
            src: vec![std::ptr::null(); BURST].into_boxed_slice(),
            lens: vec![0; BURST].into_boxed_slice(),
            scratch: Vec::new(),
            in_place: self.tx_pools.get(q as usize).map(|p| TxInPlace {
                mp: p.mp.0,
                base: p.pool.region_base(),
                stride: p.pool.stride(),
                swapped: vec![0; BURST].into_boxed_slice(),
            }),
        }
    }
}

/// `<prefix><bus>/<dev>/<func>` with hex numbers, the domain first when it is not 0 (VPP's
/// format_dpdk_device_name).
pub fn vpp_pci_name(prefix: &str, pci: &str) -> String {
    let n = normalize_pci(pci).unwrap_or_default();
    let p = |s: &str| u32::from_str_radix(s, 16).unwrap_or(0);
    let (dom, rest) = n.split_at(4);
    let bus = &rest[1..3];
    let dev = &rest[4..6];
    let func = &rest[7..];
    if p(dom) != 0 {
        format!(
            "{prefix}{:x}/{:x}/{:x}/{:x}",
            p(dom),
            p(bus),
            p(dev),
            p(func)
        )
    } else {
        format!("{prefix}{:x}/{:x}/{:x}", p(bus), p(dev), p(func))
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        // SAFETY: no queue references the port any more (they hold the Arc).
        unsafe {
            sys::rte_eth_dev_stop(self.id);
        }
        for p in self.rx_pools.iter().chain(&self.tx_pools) {
            p.release();
        }
    }
}

/// Headers stamped on received packets, for devices whose rx carries no real headers
/// (net_null): Ethernet to the port's MAC, IPv4/UDP to destinations cycling through a list.
#[derive(Clone, Debug)]
pub struct RxTemplate {
    hdr: [u8; 42],
    dsts: Vec<u32>,
    cksums: Vec<u16>,
    next: usize,
}

impl RxTemplate {
    /// Ethernet to `dst_mac`; IPv4 from 198.18.0.1 to each of `dsts` in turn; UDP 1234 -> 5678.
    pub fn ip4_udp(dst_mac: [u8; 6], dsts: Vec<u32>, frame_len: usize) -> Self {
        let mut h = [0u8; 42];
        h[0..6].copy_from_slice(&dst_mac);
        h[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
        h[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let ip_len = (frame_len.max(60) - 14) as u16;
        h[14] = 0x45;
        h[16..18].copy_from_slice(&ip_len.to_be_bytes());
        h[22] = 64;
        h[23] = 17;
        h[26..30].copy_from_slice(&[198, 18, 0, 1]);
        h[34..36].copy_from_slice(&1234u16.to_be_bytes());
        h[36..38].copy_from_slice(&5678u16.to_be_bytes());
        h[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
        let dsts = if dsts.is_empty() {
            vec![u32::from_be_bytes([198, 19, 0, 1])]
        } else {
            dsts
        };
        let cksums = dsts
            .iter()
            .map(|d| {
                let mut ip = [0u8; 20];
                ip.copy_from_slice(&h[14..34]);
                ip[16..20].copy_from_slice(&d.to_be_bytes());
                let mut s: u32 = ip
                    .chunks(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]) as u32)
                    .sum();
                while s > 0xffff {
                    s = (s & 0xffff) + (s >> 16);
                }
                !(s as u16)
            })
            .collect();
        Self {
            hdr: h,
            dsts,
            cksums,
            next: 0,
        }
    }

    #[inline(always)]
    fn stamp(&mut self, pkt: &mut [u8]) {
        if pkt.len() < 42 {
            return;
        }
        let i = self.next;
        self.next = if i + 1 == self.dsts.len() { 0 } else { i + 1 };
        pkt[..42].copy_from_slice(&self.hdr);
        pkt[24..26].copy_from_slice(&self.cksums[i].to_be_bytes());
        pkt[30..34].copy_from_slice(&self.dsts[i].to_be_bytes());
    }
}

/// One DPDK rx queue, polled by one worker.
pub struct DpdkRx {
    port: Arc<Port>,
    queue: u16,
    sw_if_index: u32,
    mbufs: Box<[*mut sys::rte_mbuf]>,
    dst: Box<[*mut u8]>,
    lens: Box<[u32]>,
    template: Option<RxTemplate>,
    in_place: Option<InPlace>,
}

/// An in-place rx queue's view of its mempool and of the rvpp pool behind it.
struct InPlace {
    mp: *mut sys::rte_mempool,
    base: *mut u8,
    len: usize,
    stride: usize,
    fresh: Box<[u32]>,
}

// SAFETY: the pointer arrays are scratch space filled and emptied within one `rx` call; the
// queue (and so its DPDK rx queue) is used by one worker at a time.
unsafe impl Send for DpdkRx {}

impl DpdkRx {
    /// Stamp `t` over the start of every received packet (net_null, whose packets carry no
    /// headers). The packet is still copied from its mbuf first.
    pub fn set_template(&mut self, t: Option<RxTemplate>) {
        self.template = t;
    }

    pub fn port(&self) -> &Arc<Port> {
        &self.port
    }

    /// Continue a packet longer than one rvpp buffer into a chain. The head already holds the
    /// first `cap` bytes. Returns false (head untouched beyond its first buffer) if the pool ran dry.
    #[cold]
    fn rx_chain(bufs: &mut Buffers, head: u32, m: *mut sys::rte_mbuf, cap: usize) -> bool {
        let total = {
            // SAFETY: m is a received mbuf we still own.
            unsafe { (*m).pkt_len as usize }
        };
        let mut skip = cap;
        let mut seg = m;
        let mut prev = head;
        let mut cur = NO_BUFFER;
        let mut cur_len = 0usize;
        while !seg.is_null() {
            // SAFETY: seg is a segment of an mbuf chain we own; buf_addr + data_off is its data.
            let data = unsafe {
                let s = &*seg;
                std::slice::from_raw_parts(
                    (s.buf_addr as *const u8).add(s.data_off as usize),
                    s.data_len as usize,
                )
            };
            // SAFETY: as above.
            seg = unsafe { (*seg).next };
            let mut d = data;
            if skip >= d.len() {
                skip -= d.len();
                continue;
            }
            d = &d[skip..];
            skip = 0;
            while !d.is_empty() {
                if cur == NO_BUFFER || cur_len == cap {
                    let Some(nb) = bufs.alloc_one() else {
                        return false;
                    };
                    let pm = bufs.meta(prev);
                    pm.flags |= flags::NEXT_PRESENT;
                    pm.next_buffer = nb;
                    prev = nb;
                    cur = nb;
                    cur_len = 0;
                }
                let mut b = bufs.get(cur);
                let take = d.len().min(cap - cur_len);
                b.tail_room_mut()[cur_len..cur_len + take].copy_from_slice(&d[..take]);
                cur_len += take;
                b.meta.current_length = cur_len as u16;
                d = &d[take..];
            }
        }
        let h = bufs.meta(head);
        h.current_length = cap as u16;
        h.total_length_not_including_first_buffer = (total - cap) as u32;
        true
    }
}

impl DpdkRx {
    /// [`RxMode::InPlace`]: hand the rvpp buffers behind the mbufs to the graph; re-point each
    /// mbuf at a fresh rvpp buffer before it goes back to the mempool.
    fn rx_in_place(&mut self, bufs: &mut Buffers, out: &mut [u32], nexts: &mut [u16]) -> usize {
        let ip = self.in_place.as_mut().expect("in-place queue");
        let limit = out.len().min(nexts.len()).min(BURST);
        // SAFETY: as in `rx`.
        let n = unsafe {
            sys::rvpp_eth_rx_burst(
                self.port.id,
                self.queue,
                self.mbufs.as_mut_ptr(),
                limit as u16,
            )
        } as usize;
        if n == 0 {
            return 0;
        }
        let got = bufs.alloc(&mut ip.fresh[..n]);
        if got < n {
            self.port
                .counters
                .rx_no_buffer
                .fetch_add((n - got) as u64, Ordering::Relaxed);
            // SAFETY: the mbufs past `got` are ours and not referenced again.
            unsafe {
                sys::rte_pktmbuf_free_bulk(self.mbufs[got..n].as_mut_ptr(), (n - got) as u32)
            };
        }
        let n = got;
        let (base, stride, sw) = (ip.base, ip.stride, self.sw_if_index);
        let cap = bufs.pool().data_size();
        for i in 0..n {
            let m = self.mbufs[i];
            let fresh = ip.fresh[i];
            nexts[i] = rx_next::ETHERNET;
            // SAFETY: m is a received mbuf we own until it is freed below.
            let (mp, segs, addr, off, dlen) = unsafe {
                let r = &*m;
                (
                    r.pool,
                    r.nb_segs,
                    r.buf_addr as usize,
                    r.data_off,
                    r.data_len,
                )
            };
            let rel = addr.wrapping_sub(base as usize);
            if mp == ip.mp && segs == 1 && rel < ip.len {
                // Ours: the packet is in rvpp buffer `bi` (rel is the mbuf buffer's offset, which
                // starts MBUF_HEADROOM before the buffer's data area).
                let bi = (rel / stride) as u32;
                // SAFETY: m is a direct mbuf of our mempool; `fresh` is a buffer we own and
                // hand to the mempool with it, in place of `bi`.
                unsafe {
                    let mm = &mut *m;
                    let a = rvpp_mbuf_buf(base, stride, fresh);
                    mm.buf_addr = a.cast();
                    mm.buf_iova = a as u64;
                }
                let meta = bufs.meta(bi);
                meta.reset_for_rx();
                meta.current_data = off as i16 - MBUF_HEADROOM as i16;
                meta.current_length = dlen;
                meta.rx_sw_if_index = sw;
                out[i] = bi;
            } else {
                // Someone else's mbuf, or a chain: copy into the fresh buffer.
                out[i] = fresh;
                let dst = [bufs.get(fresh).tail_room_mut().as_mut_ptr()];
                let mut len = [0u32];
                // SAFETY: dst points at `cap` writable bytes of `fresh`; m is a valid packet.
                unsafe { sys::rvpp_copy_out(&m, 1, dst.as_ptr(), len.as_mut_ptr(), cap as u32) };
                let len = len[0] as usize;
                if len > cap {
                    if !Self::rx_chain(bufs, fresh, m, cap) {
                        self.port
                            .counters
                            .rx_no_buffer
                            .fetch_add(1, Ordering::Relaxed);
                        bufs.free_tail(fresh);
                        nexts[i] = rx_next::DROP;
                    }
                } else {
                    bufs.meta(fresh).current_length = len as u16;
                }
                bufs.meta(fresh).rx_sw_if_index = sw;
            }
            if let Some(t) = &mut self.template {
                t.stamp(bufs.get(out[i]).data_mut());
            }
        }
        // SAFETY: every packet has been taken over or copied; the mbufs are not used again.
        unsafe { sys::rte_pktmbuf_free_bulk(self.mbufs.as_mut_ptr(), n as u32) };
        n
    }
}

impl RxQueue for DpdkRx {
    fn input_node(&self) -> &'static str {
        INPUT_NODE
    }
    fn sw_if_index(&self) -> u32 {
        self.sw_if_index
    }
    fn queue_id(&self) -> u16 {
        self.queue
    }

    fn rx(&mut self, bufs: &mut Buffers, out: &mut [u32], nexts: &mut [u16]) -> usize {
        register_thread();
        if self.in_place.is_some() {
            return self.rx_in_place(bufs, out, nexts);
        }
        let limit = out.len().min(nexts.len()).min(BURST);
        // SAFETY: the port is started, this queue exists and is polled by this thread only;
        // mbufs has room for `limit` pointers.
        let n = unsafe {
            sys::rvpp_eth_rx_burst(
                self.port.id,
                self.queue,
                self.mbufs.as_mut_ptr(),
                limit as u16,
            )
        } as usize;
        if n == 0 {
            return 0;
        }
        let got = bufs.alloc(&mut out[..n]);
        if got < n {
            self.port
                .counters
                .rx_no_buffer
                .fetch_add((n - got) as u64, Ordering::Relaxed);
            // SAFETY: the mbufs past `got` are ours and not referenced again.
            unsafe {
                sys::rte_pktmbuf_free_bulk(self.mbufs[got..n].as_mut_ptr(), (n - got) as u32)
            };
        }
        let n = got;
        let cap = bufs.pool().data_size();
        for (d, &bi) in self.dst.iter_mut().zip(&out[..n]) {
            *d = bufs.get(bi).tail_room_mut().as_mut_ptr();
        }
        // SAFETY: dst[i] points at buffer out[i]'s data area with `cap` writable bytes; the
        // first n mbufs are valid received packets.
        unsafe {
            sys::rvpp_copy_out(
                self.mbufs.as_ptr(),
                n as u16,
                self.dst.as_ptr(),
                self.lens.as_mut_ptr(),
                cap as u32,
            )
        };
        let sw = self.sw_if_index;
        for i in 0..n {
            let len = self.lens[i] as usize;
            let bi = out[i];
            nexts[i] = rx_next::ETHERNET;
            if len > cap {
                let ok = Self::rx_chain(bufs, bi, self.mbufs[i], cap);
                if !ok {
                    self.port
                        .counters
                        .rx_no_buffer
                        .fetch_add(1, Ordering::Relaxed);
                    bufs.free_tail(bi);
                    nexts[i] = rx_next::DROP;
                }
                bufs.meta(bi).rx_sw_if_index = sw;
                continue;
            }
            let mut b = bufs.get(bi);
            b.meta.current_length = len as u16;
            b.meta.rx_sw_if_index = sw;
            if let Some(t) = &mut self.template {
                t.stamp(b.data_mut());
            }
        }
        // SAFETY: every mbuf has been copied out and is not referenced again.
        unsafe { sys::rte_pktmbuf_free_bulk(self.mbufs.as_mut_ptr(), n as u32) };
        n
    }
}

/// One DPDK tx queue as used by one worker.
pub struct DpdkTx {
    port: Arc<Port>,
    queue: u16,
    lock: Option<Arc<Mutex<()>>>,
    mbufs: Box<[*mut sys::rte_mbuf]>,
    src: Box<[*const u8]>,
    lens: Box<[u32]>,
    scratch: Vec<u8>,
    in_place: Option<TxInPlace>,
}

/// An in-place tx queue: mbufs of its mempool each hold an rvpp buffer; sending a packet swaps
/// that buffer for the packet's (no copy) and rvpp frees the swapped-out buffer instead.
struct TxInPlace {
    mp: *mut sys::rte_mempool,
    base: *mut u8,
    stride: usize,
    swapped: Box<[u32]>,
}

// SAFETY: the pointer arrays are scratch filled and emptied within one `tx` call; a DPDK tx
// queue shared by several workers is only used under `lock`.
unsafe impl Send for DpdkTx {}

impl DpdkTx {
    pub fn port(&self) -> &Arc<Port> {
        &self.port
    }

    /// Send `pkts` (all single-buffer with at least DPDK's headroom left, from the pool behind
    /// the tx mempool) by swapping buffers with mbufs of the tx mempool. None: not eligible.
    fn tx_in_place(&mut self, bufs: &mut Buffers, pkts: &[u32]) -> Option<usize> {
        let ip = self.in_place.as_mut()?;
        if bufs.pool().region_base() != ip.base {
            return None;
        }
        let min_cd = -(MBUF_HEADROOM as i16);
        for &bi in pkts {
            let m = bufs.meta(bi);
            if m.flags & flags::NEXT_PRESENT != 0 || m.current_data < min_cd {
                return None;
            }
        }
        let n = pkts.len();
        // SAFETY: the pool is valid; mbufs has room for n <= BURST pointers.
        if unsafe { sys::rvpp_pktmbuf_alloc_bulk(ip.mp, self.mbufs.as_mut_ptr(), n as u32) } != 0 {
            return None;
        }
        let (base, stride) = (ip.base, ip.stride);
        for (i, &bi) in pkts.iter().enumerate() {
            let meta = bufs.meta(bi);
            let (cd, len) = (meta.current_data, meta.current_length);
            // SAFETY: a fresh direct mbuf of our tx mempool, attached to an rvpp buffer by
            // RxPool::new or by an earlier swap; it now takes `bi` (which we own) instead.
            unsafe {
                let m = &mut *self.mbufs[i];
                let old = m.buf_addr as usize - base as usize;
                ip.swapped[i] = (old / stride) as u32;
                let a = rvpp_mbuf_buf(base, stride, bi);
                m.buf_addr = a.cast();
                m.buf_iova = a as u64;
                m.data_off = (MBUF_HEADROOM as i16 + cd) as u16;
                m.data_len = len;
                m.pkt_len = len as u32;
            }
        }
        let sent = {
            let _g = self
                .lock
                .as_ref()
                .map(|l| l.lock().unwrap_or_else(|e| e.into_inner()));
            // SAFETY: as in tx_burst.
            unsafe {
                sys::rvpp_eth_tx_burst(self.port.id, self.queue, self.mbufs.as_mut_ptr(), n as u16)
            }
        } as usize;
        if sent < n {
            // Unsent: swap back, so the caller still owns (and drops) pkts[sent..].
            for i in sent..n {
                let a = rvpp_mbuf_buf(base, stride, ip.swapped[i]);
                // SAFETY: unsent mbufs are still ours.
                unsafe {
                    (*self.mbufs[i]).buf_addr = a.cast();
                    (*self.mbufs[i]).buf_iova = a as u64;
                }
            }
            // SAFETY: as above.
            unsafe {
                sys::rte_pktmbuf_free_bulk(self.mbufs[sent..n].as_mut_ptr(), (n - sent) as u32)
            };
        }
        // The sent packets' buffers now belong to the mempool; the swapped-out ones to us.
        bufs.free(&ip.swapped[..sent]);
        Some(sent)
    }

    fn tx_burst(&mut self, bufs: &mut Buffers, pkts: &[u32]) -> usize {
        if let Some(sent) = self.tx_in_place(bufs, pkts) {
            return sent;
        }
        let n = pkts.len();
        // Chained packets are flattened into scratch first (offsets, then pointers, since
        // scratch may grow).
        self.scratch.clear();
        let mut chained = false;
        for (i, &bi) in pkts.iter().enumerate() {
            let b = bufs.get(bi);
            if b.meta.flags & flags::NEXT_PRESENT != 0 {
                chained = true;
                let total = b.total_len();
                let off = self.scratch.len();
                self.scratch.resize(off + total, 0);
                let got = bufs.copy_chain(bi, &mut self.scratch[off..off + total]);
                self.lens[i] = got as u32;
                self.src[i] = off as *const u8; // an offset until fixed up below
            } else {
                self.lens[i] = b.meta.current_length as u32;
                self.src[i] = b.data().as_ptr();
            }
        }
        if chained {
            let base = self.scratch.as_ptr();
            for (i, &bi) in pkts.iter().enumerate() {
                if bufs.meta(bi).flags & flags::NEXT_PRESENT != 0 {
                    // SAFETY: the offset is inside scratch, which no longer changes.
                    self.src[i] = unsafe { base.add(self.src[i] as usize) };
                }
            }
        }
        // SAFETY: src[i]/lens[i] describe readable packet bytes (rvpp buffers we own, or
        // scratch); mbufs has room for n pointers; the pool lives for the process.
        let built = unsafe {
            sys::rvpp_copy_in_alloc(
                self.port.mempool.0,
                self.mbufs.as_mut_ptr(),
                n as u16,
                self.src.as_ptr(),
                self.lens.as_ptr(),
            )
        } as usize;
        if built == 0 {
            self.port
                .counters
                .tx_no_mbuf
                .fetch_add(n as u64, Ordering::Relaxed);
            return 0;
        }
        let sent = {
            let _g = self
                .lock
                .as_ref()
                .map(|l| l.lock().unwrap_or_else(|e| e.into_inner()));
            // SAFETY: the port is started; this queue is used by this thread alone or under
            // the lock; mbufs holds n built packets.
            unsafe {
                sys::rvpp_eth_tx_burst(self.port.id, self.queue, self.mbufs.as_mut_ptr(), n as u16)
            }
        } as usize;
        if sent < n {
            // SAFETY: the unsent mbufs are still ours.
            unsafe {
                sys::rte_pktmbuf_free_bulk(self.mbufs[sent..n].as_mut_ptr(), (n - sent) as u32)
            };
        }
        bufs.free(&pkts[..sent]);
        sent
    }
}

impl TxQueue for DpdkTx {
    fn tx_node(&self) -> &'static str {
        TX_NODE
    }

    fn tx(&mut self, bufs: &mut Buffers, pkts: &[u32]) -> usize {
        register_thread();
        let mut done = 0;
        for chunk in pkts.chunks(BURST) {
            let sent = self.tx_burst(bufs, chunk);
            done += sent;
            if sent < chunk.len() {
                // The caller drops pkts[done..]; they must be contiguous from here on.
                break;
            }
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_names() {
        assert_eq!(normalize_pci("00:04.0").as_deref(), Some("0000:00:04.0"));
        assert_eq!(
            normalize_pci("0000:AF:00.1").as_deref(),
            Some("0000:af:00.1")
        );
        assert_eq!(normalize_pci("net_null0"), None);
        assert_eq!(normalize_pci("0000:00:20.0"), None);
        assert_eq!(
            vpp_pci_name("GigabitEthernet", "0000:00:04.0"),
            "GigabitEthernet0/4/0"
        );
        assert_eq!(
            vpp_pci_name("TenGigabitEthernet", "0001:af:00.1"),
            "TenGigabitEthernet1/af/0/1"
        );
    }

    #[test]
    fn args_are_checked() {
        let mut c = EalConfig {
            no_huge: true,
            ..Default::default()
        };
        let a = eal_args(&c).unwrap();
        assert!(a.contains(&"--no-huge".to_string()));
        assert!(a.contains(&"--no-pci".to_string()));
        assert!(a.contains(&"--no-shconf".to_string()));
        c.iova_mode = Some("xx".into());
        assert!(eal_args(&c).unwrap_err().contains("iova-mode"));
        c.iova_mode = None;
        c.pci = vec!["nonsense".into()];
        assert!(eal_args(&c).unwrap_err().contains("PCI"));
        c.pci = vec![];
        c.main_core = Some(100_000);
        assert!(eal_args(&c).unwrap_err().contains("main core"));
        c.main_core = None;
        c.no_huge = false;
        c.socket_mem = Some("1024,x".into());
        if hugepages_available() {
            assert!(eal_args(&c).unwrap_err().contains("socket-mem"));
        }
    }

    #[test]
    fn template_checksum_is_valid() {
        let mut t = RxTemplate::ip4_udp([2, 0, 0, 0, 0, 9], vec![0xc6130001, 0x0a000001], 64);
        let mut p = [0u8; 64];
        for _ in 0..2 {
            t.stamp(&mut p);
            let s: u32 = p[14..34]
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]) as u32)
                .sum();
            let s = (s & 0xffff) + (s >> 16);
            assert_eq!((s & 0xffff) + (s >> 16), 0xffff);
        }
    }
}
