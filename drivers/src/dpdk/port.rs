//! Ports: configuring and starting a device, its link, counters and VPP-style name, and handing
//! out its rx and tx queues.

use rvpp_dataplane::buffer::BufferPool;
use rvpp_dpdk_sys as sys;
use std::ffi::CStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::eal::{normalize_pci, rte_err, Eal};
use super::mempool::{MempoolPtr, RxPool};
use super::rx::{DpdkRx, InPlace};
use super::tx::{DpdkTx, TxInPlace};
use super::BURST;

// `RTE_ETH_LINK_SPEED_*` are function-like macros (RTE_BIT32) that bindgen cannot see.
const SPEED_1G: u32 = 1 << 5;
const SPEED_10G: u32 = 1 << 8;
const SPEED_25G: u32 = 1 << 10;
const SPEED_40G: u32 = 1 << 11;
const SPEED_50G: u32 = 1 << 12;
const SPEED_100G: u32 = 1 << 14;
const SPEED_200G: u32 = 1 << 15;

/// How to set a port up (from `dev <addr> { ... }`).
#[derive(Clone)]
pub struct PortConfig {
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    pub mtu: Option<u16>,
    pub promiscuous: bool,
    /// Receive in place into this pool's buffers ([`RxMode::InPlace`](super::RxMode::InPlace)); `None` copies.
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
pub(super) struct DriverCounters {
    pub(super) rx_no_buffer: AtomicU64,
    pub(super) tx_no_mbuf: AtomicU64,
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
    pub(super) mempool: MempoolPtr,
    /// Per rx queue, with [`RxMode::InPlace`](super::RxMode::InPlace).
    pub(super) rx_pools: Vec<RxPool>,
    /// Per tx queue, with [`RxMode::InPlace`](super::RxMode::InPlace): mbufs that swap their rvpp buffer for the
    /// packet's on tx.
    pub(super) tx_pools: Vec<RxPool>,
    pub(super) tx_locks: Vec<Arc<Mutex<()>>>,
    pub(super) counters: DriverCounters,
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
}
