//! startup.conf's `dpdk { ... }` turned into running DPDK interfaces.
//!
//! `dev <pci> { num-rx-queues num-tx-queues num-rx-desc num-tx-desc name tag devargs }` and
//! `vdev <args>` each become one interface: named by `name`, else VPP-style from the PCI
//! address (`GigabitEthernet0/4/0`), else the vdev's name; tagged with `tag` so that calico
//! finds `main-<ifname>` through sw_interface_dump. `dev default { ... }` applies to vdevs and
//! to devs that leave a setting out. Rx queue `i` is placed by the daemon; every worker gets
//! a tx queue (`worker % num-tx-queues`, locked when shared).
//!
//! vdevs move packets in place (dpdk::RxMode, default; `RVPP_DPDK_RX=copy` to copy): each rx
//! queue's mbufs are backed by buffers of the daemon's pool (`2 x num-rx-desc + 1024` of them),
//! and each tx queue's (`num-tx-desc + 1024`) swap theirs for the packet's. PCI devices copy
//! until rvpp's region is DMA-mapped for them.
//!
//! A thread refreshes link state (interface link up/down) and the device counters shown by
//! `show hardware` once a second.
//!
//! net_null's rx carries no headers, so on net_null ports rvpp stamps an Ethernet/IPv4/UDP
//! header (to the port's MAC, from 198.18.0.1, to 198.19.0.1 or the addresses of
//! `RVPP_DPDK_NULL_DST=<a.b.c.d/len>`, at most 64k of them) over each received packet, after
//! copying it out of its mbuf, so that the packets can be routed.

use crate::daemon::Dataplane;
use crate::startup_conf::{DpdkConfig, DpdkDevConfig};
use rvpp_dataplane::device::{RxQueue, TxQueue};
use rvpp_drivers::dpdk::{self, EalConfig, Port, PortConfig, RxTemplate};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// One interface made from the stanza.
pub struct DpdkInterface {
    pub sw_if_index: u32,
    pub name: String,
    pub port: Arc<Port>,
}

fn u16_opt(v: Option<u32>, what: &str, dev: &str) -> Result<Option<u16>, String> {
    match v {
        None => Ok(None),
        Some(x) if x >= 1 && x <= u16::MAX as u32 => Ok(Some(x as u16)),
        Some(x) => Err(format!("dpdk: {dev}: {what} {x} out of range")),
    }
}

fn port_config(
    dev: Option<&DpdkDevConfig>,
    default: Option<&DpdkDevConfig>,
    name: &str,
    n_workers: usize,
) -> Result<PortConfig, String> {
    let pick =
        |f: fn(&DpdkDevConfig) -> Option<u32>| dev.and_then(f).or_else(|| default.and_then(f));
    let d = PortConfig::default();
    Ok(PortConfig {
        rx_queues: u16_opt(pick(|c| c.num_rx_queues), "num-rx-queues", name)?.unwrap_or(1),
        // VPP's default: one tx queue per forwarding thread.
        tx_queues: u16_opt(pick(|c| c.num_tx_queues), "num-tx-queues", name)?
            .unwrap_or(n_workers.clamp(1, u16::MAX as usize) as u16),
        rx_desc: u16_opt(pick(|c| c.num_rx_desc), "num-rx-desc", name)?.unwrap_or(d.rx_desc),
        tx_desc: u16_opt(pick(|c| c.num_tx_desc), "num-tx-desc", name)?.unwrap_or(d.tx_desc),
        mtu: None,
        promiscuous: false,
        rx_in_place: None,
    })
}

fn null_dsts() -> Vec<u32> {
    let Ok(v) = std::env::var("RVPP_DPDK_NULL_DST") else {
        return vec![u32::from_be_bytes([198, 19, 0, 1])];
    };
    let (a, l) = v.split_once('/').unwrap_or((v.as_str(), "32"));
    let (Ok(a), Ok(l)) = (a.parse::<std::net::Ipv4Addr>(), l.parse::<u32>()) else {
        log::warn!("dpdk: bad RVPP_DPDK_NULL_DST `{v}`");
        return vec![u32::from_be_bytes([198, 19, 0, 1])];
    };
    let l = l.clamp(16, 32);
    let base = u32::from(a) & (u32::MAX << (32 - l));
    (0..1u32 << (32 - l))
        .map(|i| base.wrapping_add(i))
        .collect()
}

/// Bring up the stanza's devices on `dp`. `main_core` is `cpu { main-core }` (EAL's main
/// lcore). Without a stanza, does nothing. Errors name the device or option at fault.
pub fn start(
    dp: &Arc<Dataplane>,
    cfg: Option<&DpdkConfig>,
    main_core: Option<u32>,
) -> Result<Vec<DpdkInterface>, String> {
    let Some(cfg) = cfg else {
        return Ok(Vec::new());
    };
    let opt = |k: &str| cfg.node.child(k).and_then(|n| n.arg()).map(String::from);
    let mut devs: Vec<(String, Option<&DpdkDevConfig>)> = Vec::new();
    for d in &cfg.devs {
        let mut args = dpdk::normalize_pci(&d.addr).unwrap_or_else(|| d.addr.clone());
        if let Some(extra) = &d.devargs {
            args = format!("{args},{extra}");
        }
        devs.push((args, Some(d)));
    }
    for v in &cfg.vdevs {
        devs.push((v.clone(), None));
    }
    if devs.is_empty() {
        log::info!("dpdk: stanza has no dev or vdev; EAL not started");
        return Ok(Vec::new());
    }
    let eal_cfg = EalConfig {
        no_huge: cfg.no_hugetlb,
        socket_mem: cfg.socket_mem.clone(),
        iova_mode: cfg.iova_mode.clone(),
        main_core,
        pci: cfg
            .devs
            .iter()
            .filter_map(|d| dpdk::normalize_pci(&d.addr))
            .collect(),
        file_prefix: opt("file-prefix"),
        log_level: opt("log-level"),
        ..Default::default()
    };
    if let Some(u) = &cfg.uio_driver {
        log::info!("dpdk: uio-driver {u}: rvpp does not rebind devices; bind them before start");
    }
    let eal = dpdk::eal_init(&eal_cfg)?;
    let n_workers = dp.workers.len();
    let mut made = Vec::new();
    for (args, dev) in devs {
        let port_id = eal.probe(&args)?;
        let mut pc = port_config(dev, cfg.dev_default.as_ref(), &args, n_workers)?;
        // In place only on vdevs: a PCI NIC would DMA into rvpp's region, which is not
        // registered with DPDK (rte_extmem_register + DMA map) yet.
        if dpdk::rx_mode() == dpdk::RxMode::InPlace && dev.is_none() {
            pc.rx_in_place = Some(dp.pool.clone());
        }
        let port = Port::open(eal, port_id, &pc)?;
        let name = dev
            .and_then(|d| d.name.clone())
            .unwrap_or_else(|| port.vpp_name());
        let mtu = port.mtu();
        let sw = dp
            .fwd()
            .interface_add(&name, "dpdk", port.mac, true, mtu)
            .map_err(|e| format!("dpdk: {name}: {e}"))?;
        {
            let mut f = dp.fwd();
            if let Some(tag) = dev.and_then(|d| d.tag.as_deref()) {
                f.set_tag(sw, tag).map_err(|e| e.to_string())?;
            }
            f.set_link_up(sw, port.link().up)
                .map_err(|e| e.to_string())?;
        }
        let null = port.driver == "net_null";
        let dsts = if null { null_dsts() } else { Vec::new() };
        let rx: Vec<Box<dyn RxQueue>> = (0..port.rx_queues)
            .map(|q| {
                let mut r = port.rx_queue(q, sw);
                if null {
                    r.set_template(Some(RxTemplate::ip4_udp(port.mac, dsts.clone(), 64)));
                }
                Box::new(r) as Box<dyn RxQueue>
            })
            .collect();
        let p2 = port.clone();
        dp.attach(sw, "dpdk", port.describe(), rx, |w| {
            Some(Box::new(p2.tx_queue(w, n_workers)) as Box<dyn TxQueue>)
        });
        log::info!("dpdk: {name} (sw_if_index {sw}): {}", port.describe());
        made.push(DpdkInterface {
            sw_if_index: sw,
            name,
            port,
        });
    }
    let watch: Vec<(u32, Arc<Port>)> = made
        .iter()
        .map(|i| (i.sw_if_index, i.port.clone()))
        .collect();
    let weak = Arc::downgrade(dp);
    std::thread::Builder::new()
        .name("dpdk-link".into())
        .spawn(move || link_watch(weak, watch))
        .map_err(|e| format!("dpdk: link thread: {e}"))?;
    Ok(made)
}

/// `show hardware`'s text for a port: its description and the device counters.
pub fn hardware_detail(port: &Port) -> String {
    let s = port.stats();
    format!(
        "{}\n  rx packets {} bytes {} missed {} errors {} no-mbuf {} no-buffer {}\n  tx packets {} bytes {} errors {} no-mbuf {}",
        port.describe(),
        s.rx_packets,
        s.rx_bytes,
        s.rx_missed,
        s.rx_errors,
        s.rx_nombuf,
        s.rx_no_rvpp_buffer,
        s.tx_packets,
        s.tx_bytes,
        s.tx_errors,
        s.tx_no_mbuf
    )
}

fn link_watch(dp: Weak<Dataplane>, ports: Vec<(u32, Arc<Port>)>) {
    let mut last: Vec<Option<bool>> = vec![None; ports.len()];
    loop {
        {
            let Some(dp) = dp.upgrade() else { return };
            if dp.stopping() {
                return;
            }
            for (k, (sw, port)) in ports.iter().enumerate() {
                let up = port.link().up;
                if last[k] != Some(up) {
                    if last[k].is_some() {
                        log::info!(
                            "dpdk: {} link {}",
                            port.dev_name,
                            if up { "up" } else { "down" }
                        );
                    }
                    let _ = dp.fwd().set_link_up(*sw, up);
                    last[k] = Some(up);
                }
                let detail = hardware_detail(port);
                if let Some(d) = dp
                    .devices
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_mut(sw)
                {
                    d.detail = detail;
                }
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}
