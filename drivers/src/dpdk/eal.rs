//! The EAL: argument building and checks, one-time init with the process's mbuf pool, device
//! probing, and registering non-EAL threads.

use rvpp_dpdk_sys as sys;
use std::ffi::{CStr, CString};
use std::sync::{Mutex, OnceLock};

use super::mempool::MempoolPtr;

/// `LCORE_ID_ANY`: what `rte_lcore_id()` says on a thread EAL does not know.
const LCORE_ID_ANY: u32 = u32::MAX;

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

/// The process's initialised EAL and its mbuf pool.
pub struct Eal {
    pub args: Vec<String>,
    mempool: MempoolPtr,
    mbufs: u32,
    probe_lock: Mutex<()>,
}

static EAL: OnceLock<Result<Eal, String>> = OnceLock::new();
static EAL_INIT: Mutex<()> = Mutex::new(());

pub(super) fn rte_err(rc: i32) -> String {
    let e = if rc < 0 { -rc } else { rc };
    // SAFETY: rte_strerror returns a pointer to a static or thread-local NUL-terminated string.
    let s = unsafe { CStr::from_ptr(sys::rte_strerror(e)) };
    format!("{} (errno {e})", s.to_string_lossy())
}

pub(super) fn last_rte_err() -> String {
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
    remove_runtime_dir(&args);
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

/// EAL makes `<runtime dir>/dpdk/<file-prefix>` even with `--in-memory` / `--no-shconf`, and
/// with those it puts nothing there; nothing removes it at exit, so every run left one behind.
/// Removed right after init, only if empty.
fn remove_runtime_dir(args: &[String]) {
    let Some(prefix) = args.iter().find_map(|a| a.strip_prefix("--file-prefix=")) else {
        return;
    };
    // EAL's choice of base: /var/run for root, else $XDG_RUNTIME_DIR, else /tmp.
    // SAFETY: geteuid has no preconditions.
    let base = if unsafe { libc::geteuid() } == 0 {
        "/var/run".to_string()
    } else {
        std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/tmp".into())
    };
    let _ = std::fs::remove_dir(format!("{base}/dpdk/{prefix}"));
}

/// Let the calling (non-EAL) thread use per-lcore mempool caches: register it with EAL once.
#[inline]
pub(super) fn register_thread() {
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

    pub(super) fn mempool(&self) -> *mut sys::rte_mempool {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
