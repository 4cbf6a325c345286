//! CLI for Linux-facing devices, in VPP's syntax:
//!
//! ```text
//! create tap [id <n>] [host-if-name <name>] [host-ns <netns-name|path|pid:N>] [host-mtu-size <n>]
//!            [host-mac-addr <mac>] [tun] [num-rx-queues <n>] [num-tx-queues <n>]
//!            [rx-ring-size <n>] [tx-ring-size <n>] [persist] [attach] [gso] [csum-offload]
//! delete tap <name> | delete tap sw_if_index <n>
//! create host-interface name <ifname> [netns <ns>] [num-rx-queues <n>] [hw-addr <mac>]
//!            [qdisc-bypass-disable] [gso]
//! delete host-interface name <ifname>
//! create interface af_xdp host-if <ifname> [name <name>] [netns <ns>] [num-rx-queues <n>]
//!            [rxq-size <n>] [txq-size <n>] [mode auto|copy|zero-copy] [zero-copy|no-zero-copy]
//!            [xdp-mode auto|native|generic]
//! delete interface af_xdp <name>
//! show linux-interfaces
//! ```
//!
//! Names follow VPP: `tap<id>` (L2), `tun<id>` (L3, the pod default), `host-<ifname>`
//! (af_packet), `<ifname>/<n>` (af_xdp). A monitor thread watches every host interface rvpp
//! drives: when one disappears (its namespace deleted, the device removed from outside) the
//! rvpp interface is removed and the event logged; carrier changes set the link state.

use crate::daemon::Dataplane;
use rvpp_dataplane::device::{RxQueue, TxQueue};
use rvpp_dataplane::wire::{fmt_mac, parse_mac};
use rvpp_drivers::af_packet::{AfPacket, AfPacketConfig};
use rvpp_drivers::af_xdp::{self, AfXdp, AfXdpConfig, XdpAttach, XdpMode};
use rvpp_drivers::tap::{self, Tap, TapConfig, TapInfo, TapMode};
use std::fmt::Write;
use std::sync::{Arc, Mutex, Once, Weak};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Tap,
    Tun,
    AfPacket,
    AfXdp,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Tap => "tap",
            Kind::Tun => "tun",
            Kind::AfPacket => "af_packet",
            Kind::AfXdp => "af_xdp",
        }
    }
}

/// A Linux-side device rvpp created or took.
struct LinuxDev {
    sw: u32,
    name: String,
    kind: Kind,
    /// Tap id (tap/tun).
    id: u32,
    host_if: String,
    netns: Option<String>,
    ifindex: u32,
    running: bool,
    tap: Option<TapInfo>,
}

static DEVS: Mutex<Vec<LinuxDev>> = Mutex::new(Vec::new());
static MONITOR: Once = Once::new();
/// How often the monitor looks at the host interfaces.
const MONITOR_PERIOD: Duration = Duration::from_millis(500);

fn devs() -> std::sync::MutexGuard<'static, Vec<LinuxDev>> {
    DEVS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Handle a device CLI line; None if the line is not one of these commands.
pub fn execute(dp: &Arc<Dataplane>, words: &[&str]) -> Option<Result<String, String>> {
    let r = match words {
        ["create", "tap", rest @ ..] => create_tap(dp, rest),
        ["tap", "connect", ..] => Err("use `create tap'".into()),
        ["delete", "tap", "sw_if_index", n] => match n.parse::<u32>() {
            Ok(sw) => delete_sw(dp, sw, &[Kind::Tap, Kind::Tun]),
            Err(_) => Err(format!("bad sw_if_index `{n}'")),
        },
        ["delete", "tap", name] => delete_named(dp, name, &[Kind::Tap, Kind::Tun]),
        ["create", "host-interface", rest @ ..] => create_host_interface(dp, rest),
        ["delete", "host-interface", "name", ifname] => {
            delete_named(dp, &format!("host-{ifname}"), &[Kind::AfPacket])
        }
        ["create", "interface", "af_xdp", rest @ ..] | ["create", "int", "af_xdp", rest @ ..] => {
            create_af_xdp(dp, rest)
        }
        ["delete", "interface", "af_xdp", name] | ["delete", "int", "af_xdp", name] => {
            delete_named(dp, name, &[Kind::AfXdp])
        }
        ["show", "linux-interfaces"] | ["show", "tap"] | ["show", "tun"] => Ok(show()),
        _ => return None,
    };
    Some(r)
}

fn num<T: std::str::FromStr>(k: &str, v: Option<&&str>) -> Result<T, String> {
    v.and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("`{k}' needs a number"))
}

fn val<'a>(k: &str, v: Option<&&'a str>) -> Result<&'a str, String> {
    v.copied().ok_or_else(|| format!("`{k}' needs a value"))
}

/// A locally administered MAC for an rvpp-side interface: 02:fe:<pid>:<sw>.
fn our_mac(sw_hint: usize) -> [u8; 6] {
    let p = std::process::id();
    [
        0x02,
        0xfe,
        (p >> 8) as u8,
        p as u8,
        (sw_hint >> 8) as u8,
        sw_hint as u8,
    ]
}

/// Hand the queues to the workers (`Dataplane::attach_queues` spreads and shares tx queues)
/// and make sure the device monitor runs.
fn place(
    dp: &Arc<Dataplane>,
    sw: u32,
    kind: Kind,
    detail: String,
    rx: Vec<Box<dyn RxQueue>>,
    tx: Vec<Box<dyn TxQueue>>,
) {
    dp.attach_queues(sw, kind.name(), detail, rx, tx);
    start_monitor(dp);
}

fn register(dev: LinuxDev) {
    devs().push(dev);
}

fn create_tap(dp: &Arc<Dataplane>, w: &[&str]) -> Result<String, String> {
    let mut cfg = TapConfig::default();
    let mut id: Option<u32> = None;
    let (mut rxq, mut txq) = (1u16, 1u16);
    let mut tun = false;
    let mut it = w.iter();
    while let Some(&k) = it.next() {
        match k {
            "id" => id = Some(num(k, it.next())?),
            "host-if-name" => cfg.name = val(k, it.next())?.to_string(),
            "host-ns" => cfg.netns = Some(val(k, it.next())?.to_string()),
            "host-mtu-size" => cfg.mtu = Some(num(k, it.next())?),
            "host-mac-addr" => {
                cfg.mac = Some(
                    parse_mac(val(k, it.next())?).ok_or_else(|| "bad host-mac-addr".to_string())?,
                )
            }
            "tun" => tun = true,
            "num-rx-queues" => rxq = num(k, it.next())?,
            "num-tx-queues" => txq = num(k, it.next())?,
            "rx-ring-size" | "tx-ring-size" => {
                let _: u32 = num(k, it.next())?;
            }
            "persist" => cfg.persist = true,
            "attach" => cfg.attach = true,
            "gso" => cfg.gso = true,
            "csum-offload" => cfg.csum_offload = true,
            "gro-coalesce" | "packed" | "in-order" | "consistent-qp" => {}
            "host-bridge" | "host-ip4-addr" | "host-ip6-addr" | "host-ip4-gw" | "host-ip6-gw" => {
                return Err(format!(
                    "`{k}' is not supported: configure the Linux side with ip(8)"
                ))
            }
            other => return Err(format!("unknown input `{other}'")),
        }
    }
    cfg.mode = if tun { TapMode::Tun } else { TapMode::Tap };
    cfg.queues = rxq.max(txq).max(1);
    let id = match id {
        Some(i) => i,
        None => {
            let used: Vec<u32> = devs()
                .iter()
                .filter(|d| matches!(d.kind, Kind::Tap | Kind::Tun))
                .map(|d| d.id)
                .collect();
            (0..).find(|i| !used.contains(i)).unwrap_or(0)
        }
    };
    let kind = if tun { Kind::Tun } else { Kind::Tap };
    let name = format!("{}{id}", kind.name());
    if dp.fwd().ifs().by_name(&name).is_some() {
        return Err(format!("interface {name} exists"));
    }
    if cfg.name.is_empty() {
        cfg.name = name.clone();
    }
    let sw_hint = dp.fwd().ifs().ifs.len();
    // The sw_if_index the queues are stamped with is only known after interface_add, and
    // interface_add should only happen once the device exists: reserve it first.
    let mac = our_mac(sw_hint);
    let mtu_guess = cfg.mtu.unwrap_or(1500).min(u16::MAX as u32) as u16;
    let sw = dp
        .fwd()
        .interface_add(&name, kind.name(), mac, !tun, mtu_guess)
        .map_err(|e| e.to_string())?;
    let created = match Tap::create(&cfg, sw) {
        Ok(r) => Ok(r),
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
        Err(e) => Err(e),
    };
    let (rx, tx, info) = match created {
        Ok(r) => r,
        Err(e) => {
            let _ = dp.fwd().interface_del(sw);
            return Err(format!("create tap: {e}"));
        }
    };
    let _ = dp.fwd().set_mtu(sw, info.mtu.min(u16::MAX as u32) as u16);
    // With a vnet header the kernel takes GSO super-frames and partial checksums from us, so
    // interface-output hands them over whole instead of segmenting in software.
    let _ = dp.fwd().set_tx_offloads(sw, info.vnet_hdr, info.vnet_hdr);
    let detail = format!(
        "{} {} in {}: {} queue(s), mtu {}, offloads {:#x}{}{}",
        if tun { "tun" } else { "tap" },
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
    place(dp, sw, kind, detail, rx, tx);
    register(LinuxDev {
        sw,
        name: name.clone(),
        kind,
        id,
        host_if: info.name.clone(),
        netns: info.netns.clone(),
        ifindex: info.ifindex,
        running: true,
        tap: Some(info),
    });
    Ok(format!("{name}\n"))
}

fn create_host_interface(dp: &Arc<Dataplane>, w: &[&str]) -> Result<String, String> {
    let mut cfg = AfPacketConfig {
        qdisc_bypass: true,
        ..Default::default()
    };
    let mut hw: Option<[u8; 6]> = None;
    let mut it = w.iter();
    while let Some(&k) = it.next() {
        match k {
            "name" => cfg.host_if_name = val(k, it.next())?.to_string(),
            "netns" => cfg.netns = Some(val(k, it.next())?.to_string()),
            "num-rx-queues" | "num-tx-queues" => cfg.queues = num(k, it.next())?,
            "hw-addr" => hw = Some(parse_mac(val(k, it.next())?).ok_or("bad hw-addr")?),
            "qdisc-bypass-disable" => cfg.qdisc_bypass = false,
            "gso" | "cksum-gso" => cfg.vnet_hdr = true,
            "promisc" => cfg.promisc = true,
            "rx-size" | "tx-size" | "rx-per-block" | "tx-per-block" | "rx-frame-size"
            | "tx-frame-size" => {
                let _: u32 = num(k, it.next())?;
            }
            "v2" | "v3" => {}
            other => return Err(format!("unknown input `{other}'")),
        }
    }
    if cfg.host_if_name.is_empty() {
        return Err("create host-interface name <ifname> ...".into());
    }
    let name = format!("host-{}", cfg.host_if_name);
    let sw = dp
        .fwd()
        .interface_add(&name, "af_packet", [0; 6], true, 1500)
        .map_err(|e| e.to_string())?;
    let (rx, tx, info) = match AfPacket::create(&cfg, sw) {
        Ok(r) => r,
        Err(e) => {
            let _ = dp.fwd().interface_del(sw);
            return Err(format!("create host-interface: {e}"));
        }
    };
    {
        let mut f = dp.fwd();
        let _ = f.set_mac(sw, hw.unwrap_or(info.mac));
        let _ = f.set_mtu(sw, info.mtu.min(u16::MAX as u32) as u16);
        let _ = f.set_tx_offloads(sw, info.vnet_hdr, info.vnet_hdr);
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
    place(dp, sw, Kind::AfPacket, detail, rx, tx);
    register(LinuxDev {
        sw,
        name: name.clone(),
        kind: Kind::AfPacket,
        id: 0,
        host_if: info.host_if_name.clone(),
        netns: info.netns.clone(),
        ifindex: info.ifindex,
        running: true,
        tap: None,
    });
    Ok(format!("{name}\n"))
}

fn create_af_xdp(dp: &Arc<Dataplane>, w: &[&str]) -> Result<String, String> {
    let mut cfg = AfXdpConfig::default();
    let mut name: Option<String> = None;
    let mut it = w.iter();
    while let Some(&k) = it.next() {
        match k {
            "host-if" => cfg.host_if_name = val(k, it.next())?.to_string(),
            "name" => name = Some(val(k, it.next())?.to_string()),
            "netns" => cfg.netns = Some(val(k, it.next())?.to_string()),
            "num-rx-queues" => cfg.queues = num(k, it.next())?,
            "rxq-size" | "txq-size" | "rx-queue-size" | "tx-queue-size" => {
                cfg.ring_size = num(k, it.next())?
            }
            "mode" => {
                let v = val(k, it.next())?;
                cfg.mode = XdpMode::parse(v).ok_or_else(|| format!("bad mode `{v}'"))?
            }
            "zero-copy" => cfg.mode = XdpMode::ZeroCopy,
            "no-zero-copy" => cfg.mode = XdpMode::Copy,
            "xdp-mode" => {
                cfg.attach = match val(k, it.next())? {
                    "auto" => XdpAttach::Auto,
                    "native" | "drv" => XdpAttach::Native,
                    "generic" | "skb" => XdpAttach::Generic,
                    v => return Err(format!("bad xdp-mode `{v}'")),
                }
            }
            "no-syscall-lock" => {}
            "prog" => return Err("`prog' is not supported: rvpp loads its own XDP program".into()),
            other => return Err(format!("unknown input `{other}'")),
        }
    }
    if cfg.host_if_name.is_empty() {
        return Err("create interface af_xdp host-if <ifname> ...".into());
    }
    let name = match name {
        Some(n) => n,
        None => {
            let f = dp.fwd();
            (0..)
                .map(|i| format!("{}/{i}", cfg.host_if_name))
                .find(|n| f.ifs().by_name(n).is_none())
                .unwrap_or_default()
        }
    };
    let sw = dp
        .fwd()
        .interface_add(&name, "af_xdp", [0; 6], true, 1500)
        .map_err(|e| e.to_string())?;
    let (rx, tx, info) = match AfXdp::create(&cfg, sw) {
        Ok(r) => r,
        Err(e) => {
            let _ = dp.fwd().interface_del(sw);
            return Err(format!("create interface af_xdp: {e}"));
        }
    };
    {
        let mut f = dp.fwd();
        let _ = f.set_mac(sw, info.mac);
        let _ = f.set_mtu(sw, info.mtu.min(u16::MAX as u32) as u16);
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
    place(dp, sw, Kind::AfXdp, detail, rx, tx);
    register(LinuxDev {
        sw,
        name: name.clone(),
        kind: Kind::AfXdp,
        id: 0,
        host_if: info.host_if_name.clone(),
        netns: info.netns.clone(),
        ifindex: info.ifindex,
        running: true,
        tap: None,
    });
    Ok(format!("{name}\n"))
}

/// Take the device off the workers and out of the tables; a persistent tap is deleted too.
fn remove(dp: &Arc<Dataplane>, dev: LinuxDev) {
    dp.detach(dev.sw);
    let _ = dp.fwd().interface_del(dev.sw);
    if let Some(info) = &dev.tap {
        if info.persist {
            // The workers drop the queues asynchronously; give them a moment so the flag is
            // cleared through a queue fd or, once they are closed, by attaching briefly.
            std::thread::sleep(Duration::from_millis(20));
            if let Err(e) = tap::delete(info) {
                log::warn!("{}: clearing persist on {}: {e}", dev.name, info.name);
            }
        }
    }
}

fn delete_named(dp: &Arc<Dataplane>, name: &str, kinds: &[Kind]) -> Result<String, String> {
    let sw = devs()
        .iter()
        .find(|d| d.name == name && kinds.contains(&d.kind))
        .map(|d| d.sw);
    match sw {
        Some(sw) => delete_sw(dp, sw, kinds),
        None => Err(format!("unknown interface `{name}'")),
    }
}

fn delete_sw(dp: &Arc<Dataplane>, sw: u32, kinds: &[Kind]) -> Result<String, String> {
    let dev = {
        let mut d = devs();
        let Some(i) = d.iter().position(|x| x.sw == sw && kinds.contains(&x.kind)) else {
            return Err(format!(
                "sw_if_index {sw} is not a {} interface",
                kinds[0].name()
            ));
        };
        d.remove(i)
    };
    log::info!("{}: deleted", dev.name);
    remove(dp, dev);
    Ok(String::new())
}

fn show() -> String {
    let mut s = String::new();
    for d in devs().iter() {
        let _ = writeln!(
            s,
            "{} (sw_if_index {}): {} {} in {} ifindex {} link {}",
            d.name,
            d.sw,
            d.kind.name(),
            d.host_if,
            d.netns.as_deref().unwrap_or("(rvpp's namespace)"),
            d.ifindex,
            if d.running { "up" } else { "down" }
        );
    }
    s
}

fn start_monitor(dp: &Arc<Dataplane>) {
    let weak = Arc::downgrade(dp);
    MONITOR.call_once(move || {
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
fn scan() -> Vec<Event> {
    let snapshot: Vec<(u32, String, Option<String>, u32, bool)> = devs()
        .iter()
        .map(|d| {
            (
                d.sw,
                d.host_if.clone(),
                d.netns.clone(),
                d.ifindex,
                d.running,
            )
        })
        .collect();
    let mut ev = Vec::new();
    for (sw, host_if, ns, ifindex, running) in snapshot {
        let where_ = ns.as_deref().unwrap_or("rvpp's namespace");
        match af_xdp::host_link(&host_if, ns.as_deref()) {
            Err(e) => ev.push(Event::Gone(sw, format!("namespace {where_} is gone ({e})"))),
            Ok(None) => ev.push(Event::Gone(
                sw,
                format!("{host_if} was removed from {where_}"),
            )),
            Ok(Some(l)) if l.ifindex != ifindex => ev.push(Event::Gone(
                sw,
                format!(
                    "{host_if} in {where_} was replaced (ifindex {ifindex} -> {})",
                    l.ifindex
                ),
            )),
            Ok(Some(l)) => {
                let up = l.admin_up && l.running;
                if up != running {
                    ev.push(Event::Link(sw, up));
                }
            }
        }
    }
    ev
}

fn monitor(weak: Weak<Dataplane>) {
    loop {
        std::thread::sleep(MONITOR_PERIOD);
        if weak.strong_count() == 0 {
            return;
        }
        if devs().is_empty() {
            continue;
        }
        let events = scan();
        if events.is_empty() {
            continue;
        }
        let Some(dp) = weak.upgrade() else { return };
        if dp.stopping() {
            return;
        }
        for e in events {
            match e {
                Event::Gone(sw, why) => {
                    let dev = {
                        let mut d = devs();
                        d.iter().position(|x| x.sw == sw).map(|i| d.remove(i))
                    };
                    if let Some(dev) = dev {
                        log::warn!(
                            "{}: host interface lost: {why}; removing {} (other interfaces keep forwarding)",
                            dev.name,
                            dev.name
                        );
                        remove(&dp, dev);
                    }
                }
                Event::Link(sw, up) => {
                    let mut d = devs();
                    if let Some(dev) = d.iter_mut().find(|x| x.sw == sw) {
                        dev.running = up;
                        log::warn!(
                            "{}: host interface {} link {}",
                            dev.name,
                            dev.host_if,
                            if up { "up" } else { "down" }
                        );
                        let _ = dp.fwd().set_link_up(sw, up);
                    }
                }
            }
        }
    }
}
