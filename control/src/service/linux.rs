//! Linux-facing devices: tap/tun (named `tap<id>` / `tun<id>`, ids shared, lowest free),
//! af_packet (`host-<ifname>`) and af_xdp (`<ifname>/<n>`, lowest free n). A monitor thread
//! watches the host interfaces of devices created with `watch` (the CLI's): when one disappears
//! (its namespace deleted, the device removed from outside) the rvpp interface is removed and
//! the event logged; carrier changes set the link state. The API's devices are not watched:
//! as in VPP they stay until the client deletes them (calico deletes a pod's tap itself).

use super::{interfaces, lowest_free, random_mac, rv, Driver, SvcError, SvcResult};
use crate::daemon::Dataplane;
use rvpp_dataplane::device::{RxQueue, TxQueue};
use rvpp_dataplane::wire::fmt_mac;
use rvpp_drivers::af_packet::{AfPacket, AfPacketConfig};
use rvpp_drivers::af_xdp::{self, AfXdp, AfXdpConfig};
use rvpp_drivers::tap::{self, Tap, TapConfig, TapInfo, TapMode};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How often the monitor looks at the host interfaces.
const MONITOR_PERIOD: Duration = Duration::from_millis(500);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Tap,
    Tun,
    AfPacket,
    AfXdp,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tap => "tap",
            Kind::Tun => "tun",
            Kind::AfPacket => "af_packet",
            Kind::AfXdp => "af_xdp",
        }
    }
    /// The interface's device type (`show hardware`, `sw_interface_dump`): taps and tuns
    /// are both VPP's virtio taps.
    pub fn dev_type(self) -> &'static str {
        match self {
            Kind::Tap | Kind::Tun => "tap",
            k => k.name(),
        }
    }
}

/// A Linux-side device rvpp created or took.
pub struct LinuxDev {
    pub kind: Kind,
    /// Tap id (tap/tun).
    pub id: u32,
    pub host_if: String,
    pub netns: Option<String>,
    pub ifindex: u32,
    pub running: bool,
    pub tap: Option<TapInfo>,
    /// An af_packet's driver state (a live restart hands its rx sockets over).
    pub af_packet: Option<Box<rvpp_drivers::af_packet::AfPacketInfo>>,
    /// Removed when its host interface goes, link state followed (see the module doc).
    pub watch: bool,
    /// af_packet's per-queue driver counters (`show hardware`); empty for other kinds.
    pub queue_stats: Vec<std::sync::Arc<rvpp_drivers::netdev::QueueStats>>,
}

/// What `show linux-interfaces` lists.
pub struct LinuxSummary {
    pub sw: u32,
    pub name: String,
    pub kind: Kind,
    pub host_if: String,
    pub netns: Option<String>,
    pub ifindex: u32,
    pub running: bool,
    pub watch: bool,
}

/// A tap or tun: `id` None takes the lowest free one. `mac` None picks a random one.
pub struct TapRequest {
    pub id: Option<u32>,
    pub cfg: TapConfig,
    pub mac: Option<[u8; 6]>,
    pub tag: String,
    /// See [`LinuxDev::watch`].
    pub watch: bool,
}

fn used_tap_ids(dp: &Dataplane) -> Vec<u32> {
    dp.devices_lock()
        .values()
        .filter_map(|d| match &d.driver {
            Driver::Linux(l) if matches!(l.kind, Kind::Tap | Kind::Tun) => Some(l.id),
            _ => None,
        })
        .collect()
}

/// Put the queues on the workers, record the device, and make sure the monitor runs (also
/// for a device another rvpp handed over, `snapshot::restore`).
pub(super) fn place(
    dp: &Arc<Dataplane>,
    sw: u32,
    detail: String,
    dev: LinuxDev,
    rx: Vec<Box<dyn RxQueue>>,
    tx: Vec<Box<dyn TxQueue>>,
) {
    let kind = dev.kind.dev_type();
    dp.attach_queues(sw, kind, detail, Driver::Linux(dev), rx, tx);
    start_monitor(dp);
    dp.svc.changed();
}

pub fn create_tap(dp: &Arc<Dataplane>, req: TapRequest) -> SvcResult<(u32, String)> {
    let TapRequest {
        id,
        mut cfg,
        mac,
        tag,
        watch,
    } = req;
    let tun = cfg.mode == TapMode::Tun;
    let used = used_tap_ids(dp);
    let id = match id {
        Some(i) if used.contains(&i) => {
            return Err(SvcError::new(
                rv::IF_ALREADY_EXISTS,
                format!("tap id {i} is in use"),
            ))
        }
        Some(i) => i,
        None => lowest_free(|i| used.contains(&i)),
    };
    let kind = if tun { Kind::Tun } else { Kind::Tap };
    let name = format!("{}{id}", kind.name());
    if cfg.name.is_empty() {
        cfg.name = name.clone();
    }
    let mac = mac.filter(|m| *m != [0; 6]).unwrap_or_else(random_mac);
    let mtu = cfg.mtu.unwrap_or(1500).clamp(68, 65535) as u16;
    // The sw_if_index the queues are stamped with is only known after interface_add.
    let sw = dp.fwd().interface_add(&name, "tap", mac, !tun, mtu)?;
    let created = match Tap::create(&cfg, sw) {
        // A persistent device left by an earlier run that nobody holds: take it away and
        // create afresh (calico retries without attach the same way).
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && !cfg.attach => {
            match tap::remove_persistent(&cfg.name, cfg.netns.as_deref(), cfg.mode, false) {
                Ok(()) => {
                    log::warn!(
                        "{name}: removed stale device {} left by an earlier run",
                        cfg.name
                    );
                    Tap::create(&cfg, sw)
                }
                Err(_) => Err(e),
            }
        }
        r => r,
    };
    let (rx, tx, info) = match created {
        Ok(r) => r,
        Err(e) => {
            let _ = dp.fwd().interface_del(sw);
            // VPP: NETLINK_ERROR when the Linux side's addresses or bridge cannot be set;
            // otherwise SYSCALL_ERROR_2, on which calico retries without ATTACH.
            let code = if tap::is_host_side_error(&e) {
                rv::NETLINK_ERROR
            } else {
                rv::SYSCALL_ERROR_2
            };
            return Err(SvcError::new(code, format!("create tap {name}: {e}")));
        }
    };
    let r = {
        let mut f = dp.fwd();
        // What the kernel accepted: with TSO the tap takes GSO super-frames (interface-output
        // sends them whole), with CSUM it completes checksums; otherwise rvpp segments and
        // checksums in software before sending here.
        let gso = info.offloads & (libc::TUN_F_TSO4 | libc::TUN_F_TSO6) != 0;
        let csum = info.offloads & libc::TUN_F_CSUM != 0;
        f.set_mtu(sw, info.mtu.clamp(68, 65535) as u16)
            .and_then(|()| match tag.is_empty() {
                true => Ok(()),
                false => f.set_tag(sw, &tag),
            })
            .and_then(|()| match info.vnet_hdr {
                true => f.set_tx_offloads(sw, gso, csum),
                false => Ok(()),
            })
    };
    if let Err(e) = r {
        let _ = tap::delete(&info);
        let _ = dp.fwd().interface_del(sw);
        return Err(e.into());
    }
    let detail = format!(
        "{} {} in {}: {} queue(s), mtu {}, offloads {:#x}{}{}",
        kind.name(),
        info.name,
        info.netns.as_deref().unwrap_or("(rvpp's namespace)"),
        info.queues,
        info.mtu,
        info.offloads,
        if info.persist { ", persist" } else { "" },
        info.mac
            .map(|m| format!(", host mac {}", fmt_mac(&m)))
            .unwrap_or_default()
    );
    log::info!("{name}: {detail}");
    let dev = LinuxDev {
        kind,
        id,
        host_if: info.name.clone(),
        netns: info.netns.clone(),
        ifindex: info.ifindex,
        running: true,
        tap: Some(info),
        af_packet: None,
        watch,
        queue_stats: Vec::new(),
    };
    place(dp, sw, detail, dev, rx, tx);
    Ok((sw, name))
}

/// An af_packet interface on `cfg.host_if_name`, `host-<ifname>`. `mac` None takes the host
/// interface's.
pub fn create_af_packet(
    dp: &Arc<Dataplane>,
    cfg: AfPacketConfig,
    l2: bool,
    mac: Option<[u8; 6]>,
    watch: bool,
) -> SvcResult<(u32, String)> {
    let host = cfg.host_if_name.clone();
    if host.is_empty() {
        return Err(SvcError::new(rv::INVALID_INTERFACE, "no host interface"));
    }
    let name = format!("host-{host}");
    let sw = dp
        .fwd()
        .interface_add(&name, "af_packet", [0; 6], l2, 1500)?;
    let (rx, tx, info) = match AfPacket::create(&cfg, sw) {
        Ok(q) => q,
        Err(e) => {
            let _ = dp.fwd().interface_del(sw);
            let code = if e.raw_os_error() == Some(libc::ENODEV)
                || e.kind() == std::io::ErrorKind::NotFound
            {
                rv::INVALID_INTERFACE
            } else {
                rv::SYSCALL_ERROR_1
            };
            return Err(SvcError::new(
                code,
                format!("create host-interface {host}: {e}"),
            ));
        }
    };
    let r = {
        let mut f = dp.fwd();
        // PACKET_VNET_HDR carries GSO and checksum offload like a tap's vnet header.
        f.set_mac(sw, mac.unwrap_or(info.mac))
            .and_then(|()| f.set_mtu(sw, info.mtu.clamp(68, 65535) as u16))
            .and_then(|()| match info.vnet_hdr {
                true => f.set_tx_offloads(sw, true, true),
                false => Ok(()),
            })
    };
    if let Err(e) = r {
        let _ = dp.fwd().interface_del(sw);
        return Err(e.into());
    }
    let detail = format!(
        "af_packet {} in {}: {} queue(s), mtu {}, fanout {}{}",
        info.host_if_name,
        info.netns.as_deref().unwrap_or("(rvpp's namespace)"),
        info.queues,
        info.mtu,
        info.fanout_id,
        if info.vnet_hdr { ", vnet hdr" } else { "" }
    );
    log::info!("{name}: {detail}");
    let dev = LinuxDev {
        kind: Kind::AfPacket,
        id: 0,
        host_if: info.host_if_name.clone(),
        netns: info.netns.clone(),
        ifindex: info.ifindex,
        running: true,
        tap: None,
        queue_stats: info.stats.clone(),
        af_packet: Some(Box::new(info)),
        watch,
    };
    place(dp, sw, detail, dev, rx, tx);
    Ok((sw, name))
}

/// An af_xdp interface with rvpp's own XDP program; `name` None is `<host_if>/<n>`, the lowest
/// free n.
pub fn create_af_xdp(
    dp: &Arc<Dataplane>,
    cfg: AfXdpConfig,
    name: Option<String>,
    watch: bool,
) -> SvcResult<(u32, String)> {
    let host = cfg.host_if_name.clone();
    if host.is_empty() {
        return Err(SvcError::new(rv::INVALID_INTERFACE, "no host interface"));
    }
    // VPP's codes: a host interface it cannot query is SYSCALL_ERROR_2 (its SIOCGIFHWADDR),
    // a namespace it cannot enter SYSCALL_ERROR_1.
    match af_xdp::host_link(&host, cfg.netns.as_deref()) {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Err(SvcError::new(
                rv::SYSCALL_ERROR_2,
                format!("no host interface {host}"),
            ))
        }
        Err(e) => return Err(SvcError::new(rv::SYSCALL_ERROR_1, format!("{host}: {e}"))),
    }
    let name = match name.filter(|n| !n.is_empty()) {
        Some(n) => n,
        None => {
            let f = dp.fwd();
            let n = lowest_free(|i| f.ifs().by_name(&format!("{host}/{i}")).is_some());
            format!("{host}/{n}")
        }
    };
    let sw = dp
        .fwd()
        .interface_add(&name, "af_xdp", [0; 6], true, 1500)?;
    let (rx, tx, info) = match AfXdp::create(&cfg, sw) {
        Ok(q) => q,
        Err(e) => {
            let _ = dp.fwd().interface_del(sw);
            let code = match e.kind() {
                std::io::ErrorKind::Unsupported => rv::UNIMPLEMENTED,
                _ => rv::SYSCALL_ERROR_1,
            };
            return Err(SvcError::new(code, format!("create interface af_xdp: {e}")));
        }
    };
    let r = {
        let mut f = dp.fwd();
        f.set_mac(sw, info.mac)
            .and_then(|()| f.set_mtu(sw, info.mtu.clamp(68, 65535) as u16))
    };
    if let Err(e) = r {
        let _ = dp.fwd().interface_del(sw);
        return Err(e.into());
    }
    let detail = format!(
        "af_xdp {} in {}: {} queue(s), XDP program {} ({}), {}, mtu {}",
        info.host_if_name,
        info.netns.as_deref().unwrap_or("(rvpp's namespace)"),
        info.queues,
        info.prog_id,
        if info.native { "native" } else { "generic" },
        if info.zero_copy { "zero-copy" } else { "copy" },
        info.mtu
    );
    log::info!("{name}: {detail}");
    let dev = LinuxDev {
        kind: Kind::AfXdp,
        id: 0,
        host_if: info.host_if_name.clone(),
        netns: info.netns.clone(),
        ifindex: info.ifindex,
        running: true,
        tap: None,
        af_packet: None,
        watch,
        queue_stats: Vec::new(),
    };
    place(dp, sw, detail, dev, rx, tx);
    Ok((sw, name))
}

/// The sw_if_index of Linux device `name` if it is one of `kinds`.
pub fn find(dp: &Dataplane, name: &str, kinds: &[Kind]) -> Option<u32> {
    let sw = dp.fwd().ifs().by_name(name).map(|i| i.sw_if_index)?;
    is_kind(dp, sw, kinds).then_some(sw)
}

fn is_kind(dp: &Dataplane, sw: u32, kinds: &[Kind]) -> bool {
    dp.devices_lock()
        .get(&sw)
        .is_some_and(|d| matches!(&d.driver, Driver::Linux(l) if kinds.contains(&l.kind)))
}

/// Delete Linux device `sw` if it is one of `kinds`.
pub fn delete(dp: &Arc<Dataplane>, sw: u32, kinds: &[Kind]) -> SvcResult<()> {
    if !is_kind(dp, sw, kinds) {
        return Err(SvcError::new(
            rv::INVALID_SW_IF_INDEX,
            format!("sw_if_index {sw} is not a {} interface", kinds[0].name()),
        ));
    }
    interfaces::delete(dp, sw, kinds[0].dev_type())
}

/// What the Linux side needs once the interface is gone: a persistent tap is released.
pub(super) fn release(dev: &LinuxDev) -> SvcResult<()> {
    if let Some(info) = &dev.tap {
        if let Err(e) = tap::delete(info) {
            return Err(SvcError::new(
                rv::SYSCALL_ERROR_1,
                format!("clearing persist on {}: {e}", info.name),
            ));
        }
    }
    Ok(())
}

pub fn list(dp: &Dataplane) -> Vec<LinuxSummary> {
    let names: std::collections::BTreeMap<u32, String> = dp
        .fwd()
        .ifs()
        .ifs
        .iter()
        .flatten()
        .map(|i| (i.sw_if_index, i.name.clone()))
        .collect();
    dp.devices_lock()
        .iter()
        .filter_map(|(&sw, d)| match &d.driver {
            Driver::Linux(l) => Some(LinuxSummary {
                sw,
                name: names.get(&sw).cloned().unwrap_or_default(),
                kind: l.kind,
                host_if: l.host_if.clone(),
                netns: l.netns.clone(),
                ifindex: l.ifindex,
                running: l.running,
                watch: l.watch,
            }),
            _ => None,
        })
        .collect()
}

fn start_monitor(dp: &Arc<Dataplane>) {
    let weak = Arc::downgrade(dp);
    dp.svc.linux_monitor.call_once(move || {
        let r = std::thread::Builder::new()
            .name("rvpp-linux-mon".into())
            .spawn(move || monitor(weak));
        if let Err(e) = r {
            log::error!("linux interface monitor: {e}");
        }
    });
}

enum Event {
    Gone(u32, String),
    Link(u32, bool),
}

/// Check the host interfaces once. Returns what changed.
fn scan(dp: &Dataplane) -> Vec<Event> {
    let mut ev = Vec::new();
    for d in list(dp).into_iter().filter(|d| d.watch) {
        let where_ = d.netns.as_deref().unwrap_or("rvpp's namespace");
        let host_if = &d.host_if;
        match af_xdp::host_link(host_if, d.netns.as_deref()) {
            Err(e) => ev.push(Event::Gone(
                d.sw,
                format!("namespace {where_} is gone ({e})"),
            )),
            Ok(None) => ev.push(Event::Gone(
                d.sw,
                format!("{host_if} was removed from {where_}"),
            )),
            Ok(Some(l)) if l.ifindex != d.ifindex => ev.push(Event::Gone(
                d.sw,
                format!(
                    "{host_if} in {where_} was replaced (ifindex {} -> {})",
                    d.ifindex, l.ifindex
                ),
            )),
            Ok(Some(l)) => {
                let up = l.admin_up && l.running;
                if up != d.running {
                    ev.push(Event::Link(d.sw, up));
                }
            }
        }
    }
    ev
}

fn monitor(weak: Weak<Dataplane>) {
    loop {
        std::thread::sleep(MONITOR_PERIOD);
        let Some(dp) = weak.upgrade() else { return };
        if dp.stopping() {
            return;
        }
        for e in scan(&dp) {
            match e {
                Event::Gone(sw, why) => {
                    let Some(kind) = linux_kind(&dp, sw) else {
                        continue;
                    };
                    let name = dp
                        .fwd()
                        .iface(sw)
                        .map(|i| i.name.clone())
                        .unwrap_or_default();
                    log::warn!(
                        "{name}: host interface lost: {why}; removing {name} (other interfaces keep forwarding)"
                    );
                    let _ = delete(&dp, sw, &[kind]);
                }
                Event::Link(sw, up) => {
                    let host_if = {
                        let mut devs = dp.devices_lock();
                        match devs.get_mut(&sw).map(|d| &mut d.driver) {
                            Some(Driver::Linux(l)) => {
                                l.running = up;
                                l.host_if.clone()
                            }
                            _ => continue,
                        }
                    };
                    log::warn!(
                        "sw_if_index {sw}: host interface {host_if} link {}",
                        if up { "up" } else { "down" }
                    );
                    let _ = dp.fwd().set_link_up(sw, up);
                    dp.svc.changed();
                }
            }
        }
    }
}

fn linux_kind(dp: &Dataplane, sw: u32) -> Option<Kind> {
    match dp.devices_lock().get(&sw).map(|d| &d.driver) {
        Some(Driver::Linux(l)) => Some(l.kind),
        _ => None,
    }
}
