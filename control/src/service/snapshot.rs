//! The configuration a live restart hands to the next rvpp (`crate::takeover`), taken from the
//! service's own state and the dataplane's tables, and rebuilt from it in the new process with
//! the same sw_if_index values.
//!
//! Carried: tables (ids, names), interfaces (index, name, type, tag, MAC, L2/L3, MTU and
//! per-protocol MTUs, admin and link state, table bindings, addresses, IPv6 enable,
//! unnumbered, promiscuous, offloads, proxy ARP / ND proxy flags, cross-connect, rx placement)
//! of kind local0, loopback, tap and tun (their queue fds go along), af_packet (its rx
//! sockets go along, the new process polling them only once the old one stopped: [`Late`])
//! and memif servers (the listening socket, the peer's control connection, regions and
//! eventfds go along; both processes poll the rings, one at a time), the memif socket table,
//! API routes with their
//! paths, neighbours (static and learned), the neighbour limits, cnat's session timeouts, and
//! the Calico objects ([`calico`]): cnat translations and SNAT, npol ipsets, rules, policies and
//! interface configurations, all under the ids the API gave, and the cnat/npol features of
//! each interface, and the flows (cnat's sessions with the SNAT ports they own, ClientIP
//! affinities, npol's cached verdicts; not the fragments' 5 s entries). Flows that start
//! between the capture and the old workers' stop are not carried. And the configuration
//! without a device fd ([`overlay`]): VXLAN and IPIP tunnels, uRPF checks, TTL fixup pairs,
//! proxy-ARP ranges, the classifier (tables, input tables, session redirects), PBL clients,
//! SRv6 (encap source, policies, localsids, steering), rx modes, punt redirects and
//! multicast routes. And WireGuard ([`wireguard`]): interfaces with their keys, peers, and
//! their live sessions (keypairs with counters and replay windows), so no new handshake. And
//! SA-level IPsec ([`ipsec`]): SAs with their sequence numbers and replay windows, `ipsecN`
//! interfaces and tunnel protections (IKEv2 profiles are refused). Anything else the running
//! configuration holds makes [`capture`] refuse, naming it, so nothing is lost silently.

use super::linux::{Kind, LinuxDev};
use super::Driver;
use crate::daemon::Dataplane;
use rvpp_dataplane::cnat::session::Timeouts;
use rvpp_dataplane::device::RxQueue;
use rvpp_dataplane::forwarding::{Af, Forwarding, NeighborConfig, Path, PathKind, Prefix, Source};
use rvpp_drivers::memif::{
    Handoff, HandoffConn, HandoffRing, MemifConfig, MemifHandoff, MemifOwner, Mode, Role,
};
use rvpp_drivers::tap::{TapInfo, TapMode};
use serde_json::{json, Value};
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;

mod calico;
mod ipsec;
mod overlay;
mod wireguard;

/// The format of the snapshot. 2 added the Calico objects, 3 the configuration
/// [`overlay`] carries (tunnels and more), 4 the memif socket table, 5 punt redirects,
/// multicast routes (every Calico node has both) and tables deleted while in use, 6
/// WireGuard ([`wireguard`]: interfaces, peers, live sessions), 7 SA-level IPsec
/// ([`ipsec`]: SAs with their numbering, ipsec interfaces, protections); an older snapshot,
/// whose capture refused what it lacks, is read as having none. A new process refuses any
/// other (an older rvpp refuses 3, which it would read as holding less than it does). A
/// snapshot is written with the lowest version that holds what it carries (4 for a socket
/// table other than the default, 5 for a redirect, an mroute or a pending table delete, 6 for
/// a wg interface, 7 for an SA or an ipsec interface), so that an older rvpp can still take
/// over from this one when nothing newer is needed. af_packet and memif devices came without
/// a new version: an older rvpp refuses their device kind by name rather than read less.
pub const VERSION: u64 = 7;
/// What a snapshot with WireGuard and no IPsec is written as.
const VERSION_WITH_WIREGUARD: u64 = 6;
/// What a snapshot with a redirect, an mroute or a pending table delete and no WireGuard is
/// written as.
const VERSION_WITH_PUNT_AND_MROUTES: u64 = 5;
/// What a snapshot with a memif socket table and no redirect or mroute is written as.
const VERSION_WITH_MEMIF_SOCKETS: u64 = 4;
/// What a snapshot with neither is written as.
const VERSION_WITHOUT_MEMIF_SOCKETS: u64 = 3;
/// The oldest version this rvpp reads.
pub const OLDEST_VERSION: u64 = 1;

/// A captured configuration and the device fds its `fd` slots name.
pub struct Snapshot {
    pub json: Value,
    pub fds: Vec<Arc<OwnedFd>>,
}

/// What the running configuration holds that a snapshot cannot carry yet, one line each.
fn unsupported(dp: &Dataplane, f: &Forwarding) -> Vec<String> {
    let mut no = Vec::new();
    let mut kind = |what: &str, n: usize| {
        if n > 0 {
            no.push(format!("{n} {what}"));
        }
    };
    kind("IKEv2 profile(s)", super::ikev2::profiles(dp).len());
    no.extend(overlay::unsupported(dp, f));
    let devs = dp.devices_lock();
    for i in f.ifs().ifs.iter().flatten() {
        let sw = i.sw_if_index;
        let carried = match devs.get(&sw).map(|d| &d.driver) {
            _ if sw == 0 => true,
            Some(Driver::Linux(l)) => match l.kind {
                Kind::Tap | Kind::Tun => l.tap.is_some(),
                Kind::AfPacket => l.af_packet.is_some(),
                Kind::AfXdp => false,
            },
            Some(Driver::Plain) => i.dev_type == "loopback",
            Some(Driver::Memif(m)) if m.dev.config().role == Role::Client => {
                no.push(format!(
                    "memif client (slave) interface {}: its rings point into this rvpp's \
                     buffer pool, which another process cannot map",
                    i.name
                ));
                true
            }
            Some(Driver::Memif(_)) => true,
            _ => {
                overlay::carried_interface(dp, sw)
                    || wireguard::carried_interface(dp, sw)
                    || ipsec::carried_interface(f, sw)
            }
        };
        if !carried {
            no.push(format!("interface {} ({})", i.name, i.dev_type));
        }
        if i.sub_of.is_some() {
            no.push(format!("sub-interface {}", i.name));
        }
        for (arc, nodes) in f.interface_features(sw).unwrap_or_default() {
            for n in nodes.into_iter().filter(|n| {
                !calico::carried_feature(arc, n)
                    && !overlay::carried_feature(dp, sw, arc, n)
                    && !wireguard::carried_feature(dp, sw, arc, n)
                    && !ipsec::carried_feature(dp, f, sw, arc, n)
            }) {
                no.push(format!("feature {arc} {n} on {}", i.name));
            }
        }
    }
    for af in [Af::Ip4, Af::Ip6] {
        for (t, _) in f.tables(af) {
            for (p, r) in f.routes(af, t) {
                // SRv6's routes are the SR source's, rebuilt with its objects; an SR path in
                // an API route was made by none of them.
                let api_sr = r.paths_of(Source::Api).is_some_and(|api| {
                    api.iter()
                        .any(|x| matches!(x.kind, PathKind::SrPolicy(_) | PathKind::SrLocalsid(_)))
                });
                let stray_sr = r.paths_of(Source::Sr).is_some() && !overlay::srv6_route(dp, t, p);
                if api_sr || stray_sr {
                    no.push(format!("SRv6 route {p} in table {t}"));
                }
            }
        }
    }
    no
}

fn af_name(af: Af) -> u64 {
    if af.is_ip6() {
        6
    } else {
        4
    }
}

fn path_json(x: &Path) -> Value {
    let kind = match x.kind {
        PathKind::Normal => "normal".to_string(),
        PathKind::Local => "local".into(),
        PathKind::Drop => "drop".into(),
        PathKind::Unreachable => "unreachable".into(),
        PathKind::Prohibit => "prohibit".into(),
        PathKind::Lookup(t) => format!("lookup {t}"),
        // Refused by `unsupported`.
        PathKind::SrPolicy(_) | PathKind::SrLocalsid(_) => "sr".into(),
    };
    json!({
        "kind": kind,
        "nh": x.next_hop.map(|a| a.to_string()),
        "sw": x.sw_if_index,
        "weight": x.weight,
        "preference": x.preference,
    })
}

/// The running configuration, or what it holds that cannot be carried. `f` is the caller's
/// forwarding lock, held until the old process exits so that no change falls in between.
pub fn capture(dp: &Dataplane, f: &Forwarding) -> Result<Snapshot, String> {
    let no = unsupported(dp, f);
    if !no.is_empty() {
        return Err(format!(
            "the running configuration holds what a live restart cannot carry yet: {}",
            no.join(", ")
        ));
    }
    let mut fds = Vec::new();
    let mut tables = Vec::new();
    let mut routes = Vec::new();
    for af in [Af::Ip4, Af::Ip6] {
        for (t, name) in f.tables(af) {
            tables.push(json!({"af": af_name(af), "id": t, "name": name}));
            for (p, r) in f.routes(af, t) {
                // The API's paths, also those waiting under an interface's or SRv6's route
                // (SRv6's come back with its objects; `unsupported` refused SR paths here).
                let Some(api) = r.paths_of(Source::Api) else {
                    continue;
                };
                let paths: Vec<Value> = api.iter().map(path_json).collect();
                routes.push(json!({"table": t, "prefix": p.to_string(), "paths": paths}));
            }
        }
    }
    let devs = dp.devices_lock();
    let mut ifs = Vec::new();
    for i in f.ifs().ifs.iter().flatten() {
        let sw = i.sw_if_index;
        let dev = devs.get(&sw);
        let device = match dev.map(|d| &d.driver) {
            Some(Driver::Memif(m)) => {
                memif_json(m, &mut fds).map_err(|e| format!("{}: {e}", i.name))?
            }
            Some(Driver::Linux(l)) if l.kind == Kind::AfPacket => {
                let info = l
                    .af_packet
                    .as_ref()
                    .ok_or("an af_packet without its driver state")?;
                let q = info
                    .rx_queue_fds()
                    .ok_or_else(|| format!("{}: a queue is gone", i.name))?;
                let first = fds.len();
                fds.extend(q);
                let c = &info.cfg;
                json!({
                    "kind": l.kind.name(),
                    "host_if": l.host_if,
                    "netns": l.netns,
                    "watch": l.watch,
                    "queues": c.queues,
                    "rx_block_size": c.rx_block_size,
                    "rx_block_count": c.rx_block_count,
                    "rx_block_timeout_ms": c.rx_block_timeout_ms,
                    "tx_frame_count": c.tx_frame_count,
                    "tx_frame_size": c.tx_frame_size,
                    "qdisc_bypass": c.qdisc_bypass,
                    "vnet_hdr": c.vnet_hdr,
                    "promisc": c.promisc,
                    "fanout_id": info.fanout_id,
                    "fds": (first..fds.len()).collect::<Vec<_>>(),
                })
            }
            Some(Driver::Linux(l)) => {
                let info = l.tap.as_ref().ok_or("a tap without its driver state")?;
                let q = info
                    .queue_fds()
                    .ok_or_else(|| format!("{}: a queue is gone", i.name))?;
                let first = fds.len();
                fds.extend(q);
                json!({
                    "kind": l.kind.name(),
                    "id": l.id,
                    "host_if": l.host_if,
                    "netns": l.netns,
                    "ifindex": l.ifindex,
                    "running": l.running,
                    "watch": l.watch,
                    "tun": info.mode == TapMode::Tun,
                    "multi_queue": info.multi_queue,
                    "mtu": info.mtu,
                    "host_mac": info.mac,
                    "vnet_hdr": info.vnet_hdr,
                    "offloads": info.offloads,
                    "persist": info.persist,
                    "fds": (first..fds.len()).collect::<Vec<_>>(),
                })
            }
            _ => Value::Null,
        };
        let fib = |af: Af, idx: u32| f.table_id_of(af, idx);
        ifs.push(json!({
            "sw": sw,
            "name": i.name,
            "dev_type": i.dev_type,
            "tag": i.tag,
            "mac": i.mac,
            "admin_up": i.admin_up,
            "link_up": i.link_up,
            "l2": i.l2,
            "mtu": i.mtu,
            "protocol_mtu": f.protocol_mtu(sw),
            "ip4_table": fib(Af::Ip4, i.ip4_fib),
            "ip6_table": fib(Af::Ip6, i.ip6_fib),
            "ip4": i.ip4_addrs.iter().map(|&(a, l)| Prefix::V4(a, l).to_string()).collect::<Vec<_>>(),
            "ip6": i.ip6_addrs.iter().map(|&(a, l)| Prefix::V6(a, l).to_string()).collect::<Vec<_>>(),
            "ip6_enabled": i.ip6_enabled,
            "unnumbered_of": i.unnumbered_of,
            "promisc": i.promisc,
            "tx_gso": i.tx_gso,
            "tx_csum": i.tx_csum,
            "proxy_arp": i.proxy_arp,
            "nd_proxy": i.nd_proxy,
            "xconnect": i.xconnect,
            "detail": dev.map(|d| d.detail.clone()),
            "rx_placement": dev.map(|d| d.rx_placement.clone()),
            "features": calico::features_json(f, sw),
            "device": device,
        }));
    }
    let neighbours: Vec<Value> = f
        .neighbors()
        .iter()
        .map(|n| json!({"sw": n.sw_if_index, "ip": n.ip.to_string(), "mac": n.mac, "static": n.is_static}))
        .collect();
    let t = dp.cnat().timeouts();
    let cnat_timeouts = json!({
        "generic": t.generic,
        "tcp_established": t.tcp_established,
        "tcp_closing": t.tcp_closing,
        "affinity": t.affinity,
    });
    let ncfg = |af: Af| {
        let c = f.neighbor_config(af);
        json!({"max_number": c.max_number, "max_age": c.max_age, "recycle": c.recycle})
    };
    // overlay::capture reads the devices too.
    drop(devs);
    let sockets = super::memif::sockets(dp);
    let default_sockets =
        sockets.len() == 1 && sockets[0] == (0, super::memif::DEFAULT_SOCKET.to_string());
    let version = if ipsec::needs_version_7(dp, f) {
        VERSION
    } else if wireguard::needs_version_6(dp) {
        VERSION_WITH_WIREGUARD
    } else if overlay::needs_version_5(dp) {
        VERSION_WITH_PUNT_AND_MROUTES
    } else if !default_sockets {
        VERSION_WITH_MEMIF_SOCKETS
    } else {
        VERSION_WITHOUT_MEMIF_SOCKETS
    };
    let mut json = json!({
        "version": version,
        "tables": tables,
        "interfaces": ifs,
        "routes": routes,
        "neighbours": neighbours,
        "neighbour_config": {"ip4": ncfg(Af::Ip4), "ip6": ncfg(Af::Ip6)},
        "cnat_timeouts": cnat_timeouts,
        "cnat": calico::cnat_json(dp),
        "npol": calico::npol_json(dp),
        "flows": calico::flows_json(dp, f),
    });
    if let Some(o) = json.as_object_mut() {
        if version >= VERSION_WITH_MEMIF_SOCKETS {
            o.insert("memif_sockets".into(), json!(sockets));
        }
        if version >= VERSION_WITH_PUNT_AND_MROUTES {
            overlay::version5_capture(dp, o);
        }
        overlay::capture(dp, f, o);
        if version >= VERSION_WITH_WIREGUARD {
            wireguard::capture(dp, o);
        }
        if version >= VERSION {
            ipsec::capture(dp, f, o);
        }
    }
    Ok(Snapshot { json, fds })
}

fn put_fd(fds: &mut Vec<Arc<OwnedFd>>, fd: OwnedFd) -> usize {
    fds.push(Arc::new(fd));
    fds.len() - 1
}

/// A memif server's device: its configuration and its sockets, regions and eventfds (the
/// device stops driving its control connection: `resume_memif` if the take-over fails).
fn memif_json(m: &super::memif::MemifDev, fds: &mut Vec<Arc<OwnedFd>>) -> Result<Value, String> {
    let c = m.dev.config();
    let MemifHandoff { ifc, locks } = m.dev.handoff().map_err(|e| e.to_string())?;
    let mut ring = |r: HandoffRing| {
        let intr = r.intr.map(|f| put_fd(fds, f));
        json!({"region": r.region, "offset": r.offset, "log2": r.log2, "intr": intr})
    };
    let conn = match ifc.conn {
        None => Value::Null,
        Some(k) => {
            let s2m: Vec<Value> = k.s2m.into_iter().map(&mut ring).collect();
            let m2s: Vec<Value> = k.m2s.into_iter().map(&mut ring).collect();
            let regions: Vec<Value> = k
                .regions
                .into_iter()
                .map(|(fd, size)| json!([put_fd(fds, fd), size]))
                .collect();
            json!({
                "sock": put_fd(fds, k.sock),
                "remote_name": k.remote_name,
                "remote_if_name": k.remote_if_name,
                "regions": regions,
                "s2m": s2m,
                "m2s": m2s,
            })
        }
    };
    Ok(json!({
        "kind": "memif",
        "socket_id": m.socket_id,
        "socket": c.socket,
        "id": c.id,
        "mode": super::memif::mode_name(c.mode),
        "rx_queues": c.rx_queues,
        "tx_queues": c.tx_queues,
        "ring_size": m.ring_size,
        "buffer_size": m.buffer_size,
        "secret": c.secret,
        "if_name": c.if_name,
        "listener": put_fd(fds, ifc.listener),
        "locks": put_fd(fds, locks),
        "conn": conn,
    }))
}

// ---------------------------------------------------------------------------------------------
// Reading it back

fn bad(what: &str) -> String {
    format!("snapshot: bad or missing {what}")
}

fn get<'a>(v: &'a Value, k: &str) -> Result<&'a Value, String> {
    v.get(k).ok_or_else(|| bad(k))
}
fn num(v: &Value, k: &str) -> Result<u64, String> {
    get(v, k)?.as_u64().ok_or_else(|| bad(k))
}
fn num32(v: &Value, k: &str) -> Result<u32, String> {
    u32::try_from(num(v, k)?).map_err(|_| bad(k))
}
fn opt32(v: &Value, k: &str) -> Result<Option<u32>, String> {
    match get(v, k)? {
        Value::Null => Ok(None),
        x => x
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| bad(k)),
    }
}
fn text<'a>(v: &'a Value, k: &str) -> Result<&'a str, String> {
    get(v, k)?.as_str().ok_or_else(|| bad(k))
}
fn flag(v: &Value, k: &str) -> Result<bool, String> {
    get(v, k)?.as_bool().ok_or_else(|| bad(k))
}
fn list<'a>(v: &'a Value, k: &str) -> Result<&'a Vec<Value>, String> {
    get(v, k)?.as_array().ok_or_else(|| bad(k))
}
fn mac(v: &Value, k: &str) -> Result<[u8; 6], String> {
    let b: Vec<u8> = list(v, k)?
        .iter()
        .map(|x| x.as_u64().and_then(|n| u8::try_from(n).ok()))
        .collect::<Option<_>>()
        .ok_or_else(|| bad(k))?;
    b.try_into().map_err(|_| bad(k))
}
fn prefix(s: &str) -> Result<Prefix, String> {
    Prefix::parse(s).ok_or_else(|| bad(&format!("prefix {s}")))
}
fn af_of(v: &Value) -> Result<Af, String> {
    match num(v, "af")? {
        4 => Ok(Af::Ip4),
        6 => Ok(Af::Ip6),
        _ => Err(bad("af")),
    }
}

fn path_of(v: &Value) -> Result<Path, String> {
    let kind = match text(v, "kind")? {
        "normal" => PathKind::Normal,
        "local" => PathKind::Local,
        "drop" => PathKind::Drop,
        "unreachable" => PathKind::Unreachable,
        "prohibit" => PathKind::Prohibit,
        k => match k.strip_prefix("lookup ").and_then(|t| t.parse().ok()) {
            Some(t) => PathKind::Lookup(t),
            None => return Err(bad(&format!("path kind {k}"))),
        },
    };
    let next_hop = match get(v, "nh")? {
        Value::Null => None,
        x => Some(
            x.as_str()
                .and_then(|s| s.parse::<IpAddr>().ok())
                .ok_or_else(|| bad("nh"))?,
        ),
    };
    let small = |k: &str| num(v, k).and_then(|n| u8::try_from(n).map_err(|_| bad(k)));
    Ok(Path {
        kind,
        next_hop,
        sw_if_index: opt32(v, "sw")?,
        weight: small("weight")?,
        preference: small("preference")?,
    })
}

/// A tap or tun of the snapshot, adopted over its handed-over fds: its tx queues placed, its
/// rx queues added to `rx_later`.
fn adopt_device(
    dp: &Arc<Dataplane>,
    sw: u32,
    i: &Value,
    d: &Value,
    fds: &mut [Option<OwnedFd>],
    rx_later: &mut Vec<(u32, Vec<Box<dyn RxQueue>>)>,
    late: &mut Late,
) -> Result<(), String> {
    if text(d, "kind")? == "memif" {
        return adopt_memif(dp, sw, (i, d), fds, rx_later, late);
    }
    let kind = match text(d, "kind")? {
        "tap" => Kind::Tap,
        "tun" => Kind::Tun,
        "af_packet" => Kind::AfPacket,
        k => return Err(bad(&format!("device kind {k}"))),
    };
    let mut queues = Vec::new();
    for slot in list(d, "fds")? {
        let fd = slot
            .as_u64()
            .and_then(|s| fds.get_mut(s as usize))
            .and_then(Option::take)
            .ok_or_else(|| bad("fd slot"))?;
        queues.push(fd);
    }
    let netns = match get(d, "netns")? {
        Value::Null => None,
        x => Some(x.as_str().ok_or_else(|| bad("netns"))?.to_string()),
    };
    if kind == Kind::AfPacket {
        return adopt_af_packet(dp, sw, (i, d), queues, netns, rx_later, late);
    }
    let host_mac = match get(d, "host_mac")? {
        Value::Null => None,
        _ => Some(mac(d, "host_mac")?),
    };
    let host_if = text(d, "host_if")?.to_string();
    let ifindex = num32(d, "ifindex")?;
    let info = TapInfo::adopted(
        host_if.clone(),
        netns.clone(),
        ifindex,
        if flag(d, "tun")? {
            TapMode::Tun
        } else {
            TapMode::Tap
        },
        flag(d, "multi_queue")?,
        num32(d, "mtu")?,
        host_mac,
        flag(d, "vnet_hdr")?,
        num32(d, "offloads")?,
        flag(d, "persist")?,
    );
    let (rx, tx, info) = rvpp_drivers::tap::Tap::adopt(queues, info, sw)
        .map_err(|e| format!("adopting {host_if}: {e}"))?;
    rx_later.push((sw, rx));
    let dev = LinuxDev {
        kind,
        id: num32(d, "id")?,
        host_if,
        netns,
        ifindex,
        running: flag(d, "running")?,
        tap: Some(info),
        af_packet: None,
        watch: flag(d, "watch")?,
        queue_stats: Vec::new(),
    };
    let detail = get(i, "detail")?.as_str().unwrap_or_default().to_string();
    super::linux::place(dp, sw, detail, dev, Vec::new(), tx);
    Ok(())
}

/// What waits for the old process: the rx gates of the af_packets a restore adopted, closed,
/// opened ([`attach_late`]) once the old process has stopped reading their rings, as both
/// reading one ring would read its frames twice; and the adopted memif devices, made this
/// process's ([`own_late`]) once it is gone (their rings are locked per burst meanwhile).
#[derive(Default)]
pub struct Late {
    gates: Vec<Arc<rvpp_drivers::af_packet::RxGate>>,
    memif: Vec<MemifOwner>,
}

impl std::fmt::Debug for Late {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Late({} af_packet, {} memif)",
            self.gates.len(),
            self.memif.len()
        )
    }
}

impl Late {
    /// No af_packet waits for the old process's `Q`.
    pub fn no_gates(&self) -> bool {
        self.gates.is_empty()
    }
}

fn take_fd(fds: &mut [Option<OwnedFd>], slot: &Value) -> Result<OwnedFd, String> {
    slot.as_u64()
        .and_then(|s| fds.get_mut(s as usize))
        .and_then(Option::take)
        .ok_or_else(|| bad("fd slot"))
}

/// A memif server of the snapshot over its handed-over sockets and memory, connected to the
/// same peer; its rx queues added to `rx_later`, its owner to `late`.
fn adopt_memif(
    dp: &Arc<Dataplane>,
    sw: u32,
    (i, d): (&Value, &Value),
    fds: &mut [Option<OwnedFd>],
    rx_later: &mut Vec<(u32, Vec<Box<dyn RxQueue>>)>,
    late: &mut Late,
) -> Result<(), String> {
    let socket_id = num32(d, "socket_id")?;
    let socket = text(d, "socket")?;
    let table = super::memif::sockets(dp);
    if !table.iter().any(|(id, f)| *id == socket_id && f == socket) {
        return Err(bad(&format!("memif socket id {socket_id} ({socket})")));
    }
    let mut cfg = MemifConfig::new(Role::Server, socket, num32(d, "id")?);
    cfg.mode = match text(d, "mode")? {
        "ethernet" => Mode::Ethernet,
        "ip" => Mode::Ip,
        m => return Err(bad(&format!("memif mode {m}"))),
    };
    let small = |k: &str| num(d, k).and_then(|n| u16::try_from(n).map_err(|_| bad(k)));
    cfg.rx_queues = small("rx_queues")?;
    cfg.tx_queues = small("tx_queues")?;
    let ring_size = num32(d, "ring_size")?;
    if !ring_size.is_power_of_two() {
        return Err(bad("ring_size"));
    }
    cfg.log2_ring_size = ring_size.trailing_zeros() as u8;
    let buffer_size = num32(d, "buffer_size")?;
    cfg.buffer_size = buffer_size;
    cfg.secret = match get(d, "secret")? {
        Value::Null => None,
        x => Some(x.as_str().ok_or_else(|| bad("secret"))?.to_string()),
    };
    cfg.if_name = text(d, "if_name")?.to_string();
    let ring = |r: &Value, fds: &mut [Option<OwnedFd>]| -> Result<HandoffRing, String> {
        Ok(HandoffRing {
            region: u16::try_from(num(r, "region")?).map_err(|_| bad("region"))?,
            offset: num32(r, "offset")?,
            log2: u8::try_from(num(r, "log2")?).map_err(|_| bad("log2"))?,
            intr: match get(r, "intr")? {
                Value::Null => None,
                s => Some(take_fd(fds, s)?),
            },
        })
    };
    let conn = match get(d, "conn")? {
        Value::Null => None,
        c => {
            let mut regions = Vec::new();
            for r in list(c, "regions")? {
                let (Some(slot), Some(size)) = (r.get(0), r.get(1).and_then(Value::as_u64)) else {
                    return Err(bad("region"));
                };
                regions.push((take_fd(fds, slot)?, size as usize));
            }
            let mut rings = |k: &str| -> Result<Vec<HandoffRing>, String> {
                list(c, k)?.iter().map(|r| ring(r, fds)).collect()
            };
            let (s2m, m2s) = (rings("s2m")?, rings("m2s")?);
            Some(HandoffConn {
                sock: take_fd(fds, get(c, "sock")?)?,
                remote_name: text(c, "remote_name")?.to_string(),
                remote_if_name: text(c, "remote_if_name")?.to_string(),
                regions,
                s2m,
                m2s,
            })
        }
    };
    let handoff = MemifHandoff {
        ifc: Handoff {
            listener: take_fd(fds, get(d, "listener")?)?,
            conn,
        },
        locks: take_fd(fds, get(d, "locks")?)?,
    };
    let detail = get(i, "detail")?.as_str().unwrap_or_default().to_string();
    let (owner, rx) = super::memif::adopt(
        dp,
        sw,
        (socket_id, ring_size, buffer_size),
        cfg,
        handoff,
        detail,
    )?;
    late.memif.push(owner);
    rx_later.push((sw, rx));
    Ok(())
}

/// The take-over failed after [`wireguard_counters`]: the WireGuard keypairs send on in this
/// process (past any counter the new one may have used).
pub fn take_back_wireguard(dp: &Dataplane) {
    super::wireguard::take_back(dp);
}

/// The take-over failed after [`ipsec_seqs`]: the IPsec SAs seal on in this process (past any
/// sequence number the new one may have used).
pub fn take_back_ipsec(dp: &Dataplane) {
    super::ipsec::take_back(dp);
}

/// Drive the memif control connections again (the take-over failed after the capture stopped
/// them).
pub fn resume_memif(dp: &Dataplane) {
    for d in dp.devices_lock().values() {
        if let Driver::Memif(m) = &d.driver {
            m.dev.resume();
        }
    }
}

/// An af_packet of the snapshot over its handed-over rx sockets and new tx sockets, its rx
/// queues placed but closed (their gate in `late`).
fn adopt_af_packet(
    dp: &Arc<Dataplane>,
    sw: u32,
    (i, d): (&Value, &Value),
    rx_fds: Vec<OwnedFd>,
    netns: Option<String>,
    rx_later: &mut Vec<(u32, Vec<Box<dyn RxQueue>>)>,
    late: &mut Late,
) -> Result<(), String> {
    let small = |k: &str| num(d, k).and_then(|n| u16::try_from(n).map_err(|_| bad(k)));
    let cfg = rvpp_drivers::af_packet::AfPacketConfig {
        host_if_name: text(d, "host_if")?.to_string(),
        netns: netns.clone(),
        queues: small("queues")?,
        rx_block_size: num32(d, "rx_block_size")?,
        rx_block_count: num32(d, "rx_block_count")?,
        tx_frame_count: num32(d, "tx_frame_count")?,
        tx_frame_size: num32(d, "tx_frame_size")?,
        qdisc_bypass: flag(d, "qdisc_bypass")?,
        vnet_hdr: flag(d, "vnet_hdr")?,
        promisc: flag(d, "promisc")?,
        rx_block_timeout_ms: num32(d, "rx_block_timeout_ms")?,
    };
    let (rx, tx, info) =
        rvpp_drivers::af_packet::AfPacket::adopt(&cfg, rx_fds, small("fanout_id")?, sw)
            .map_err(|e| format!("adopting host-{}: {e}", cfg.host_if_name))?;
    late.gates.push(info.rx_gate.clone());
    rx_later.push((
        sw,
        rx.into_iter()
            .map(|q| Box::new(q) as Box<dyn RxQueue>)
            .collect(),
    ));
    let tx = tx
        .into_iter()
        .map(|q| Box::new(q) as Box<dyn rvpp_dataplane::device::TxQueue>)
        .collect();
    let dev = LinuxDev {
        kind: Kind::AfPacket,
        id: 0,
        host_if: cfg.host_if_name.clone(),
        netns,
        ifindex: info.ifindex,
        running: true,
        tap: None,
        queue_stats: info.stats.clone(),
        af_packet: Some(Box::new(info)),
        watch: flag(d, "watch")?,
    };
    let detail = get(i, "detail")?.as_str().unwrap_or_default().to_string();
    super::linux::place(dp, sw, detail, dev, Vec::new(), tx);
    Ok(())
}

/// Let this process's af_packet rx queues read again (the take-over failed before they were
/// handed over).
pub fn open_af_packet_rx(dp: &Dataplane) {
    for d in dp.devices_lock().values() {
        if let Driver::Linux(LinuxDev {
            af_packet: Some(info),
            ..
        }) = &d.driver
        {
            info.rx_gate.open();
        }
    }
}

/// Stop this process's af_packet rx queues between two rx calls (a take-over's new process reads
/// their rings next); how many interfaces.
pub fn close_af_packet_rx(dp: &Dataplane) -> usize {
    let devs = dp.devices_lock();
    let mut n = 0;
    for d in devs.values() {
        if let Driver::Linux(LinuxDev {
            af_packet: Some(info),
            ..
        }) = &d.driver
        {
            if !info.rx_gate.close(std::time::Duration::from_secs(1)) {
                log::warn!("take-over: an rx call on {} did not end", info.host_if_name);
            }
            n += 1;
        }
    }
    n
}

/// Let the adopted af_packet rx queues read: the old process has stopped reading.
pub fn attach_late(late: &mut Late) {
    for g in late.gates.drain(..) {
        g.open();
    }
}

/// The old process is gone: the adopted memif devices are this process's.
pub fn own_late(late: Late) {
    for m in late.memif {
        m.own();
    }
}

/// Rebuild the configuration `snap` describes in a fresh dataplane, adopting the devices over
/// `fds` (each slot taken once). Stops at the first error; the caller then exits, and the old
/// process, which still holds every device, keeps running. WireGuard's send counters stay as
/// captured ([`restore_with`] asks the old process for them), and IPsec's sequence numbers.
pub fn restore(
    dp: &Arc<Dataplane>,
    snap: &Value,
    fds: &mut [Option<OwnedFd>],
) -> Result<Late, String> {
    restore_with(dp, snap, fds, &mut |_| Ok(Value::Null))
}

/// What the new process asks the old one for, just before it polls the devices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ask {
    /// WireGuard's send counters ([`wireguard_counters`]).
    WireguardCounters,
    /// IPsec's sequence numbers and replay windows ([`ipsec_seqs`]).
    IpsecSeqs,
}

/// The old process, asked by the new one about to poll the devices: WireGuard's send
/// counters from which on they are the new one's (this process's keypairs stop short of them).
pub fn wireguard_counters(dp: &Dataplane) -> Value {
    wireguard::counters_json(dp)
}

/// The old process, asked by the new one about to poll the devices: each IPsec SA's last
/// sequence number this process keeps (it seals no further) and its replay window now.
pub fn ipsec_seqs(dp: &Dataplane) -> Value {
    ipsec::seqs_json(dp)
}

/// [`restore`], with `ask` asking the old process for WireGuard's send counters
/// ([`wireguard_counters`]) and IPsec's sequence numbers ([`ipsec_seqs`]) once the
/// configuration is rebuilt, just before the devices are polled.
pub fn restore_with(
    dp: &Arc<Dataplane>,
    snap: &Value,
    fds: &mut [Option<OwnedFd>],
    ask: &mut dyn FnMut(Ask) -> Result<Value, String>,
) -> Result<Late, String> {
    let v = num(snap, "version")?;
    if !(OLDEST_VERSION..=VERSION).contains(&v) {
        return Err(format!(
            "snapshot version {v}; this rvpp reads versions {OLDEST_VERSION} to {VERSION}"
        ));
    }
    // Version 1 carried no Calico objects (its capture refused them).
    let calico = v >= 2;
    // Before 4 the capture refused a memif socket table other than the default.
    if v >= 4 {
        for s in list(snap, "memif_sockets")? {
            let (Some(id), Some(file)) = (
                s.get(0)
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok()),
                s.get(1).and_then(Value::as_str),
            ) else {
                return Err(bad("memif_sockets"));
            };
            if id != 0 {
                super::memif::socket_add(dp, Some(id), file)
                    .map_err(|e| format!("memif socket {id} {file}: {}", e.msg))?;
            }
        }
    }
    let ifs = list(snap, "interfaces")?;
    let t = get(snap, "cnat_timeouts")?;
    dp.cnat().set_timeouts(Timeouts {
        generic: num32(t, "generic")?,
        tcp_established: num32(t, "tcp_established")?,
        tcp_closing: num32(t, "tcp_closing")?,
        affinity: num32(t, "affinity")?,
    });
    {
        let mut f = dp.fwd();
        for t in list(snap, "tables")? {
            f.table_add(af_of(t)?, num32(t, "id")?, text(t, "name")?)
                .map_err(|e| format!("table: {e}"))?;
        }
        for (af, k) in [(Af::Ip4, "ip4"), (Af::Ip6, "ip6")] {
            let c = get(get(snap, "neighbour_config")?, k)?;
            f.set_neighbor_config(
                af,
                NeighborConfig {
                    max_number: num32(c, "max_number")?,
                    max_age: num32(c, "max_age")?,
                    recycle: flag(c, "recycle")?,
                },
            );
        }
        for i in ifs {
            let sw = num32(i, "sw")?;
            let name = text(i, "name")?;
            let e = |e: rvpp_dataplane::forwarding::FwdError| format!("interface {name}: {e}");
            let mtu = u16::try_from(num(i, "mtu")?).map_err(|_| bad("mtu"))?;
            if sw != 0 {
                f.interface_add_at(
                    sw,
                    name,
                    text(i, "dev_type")?,
                    mac(i, "mac")?,
                    flag(i, "l2")?,
                    mtu,
                )
                .map_err(e)?;
            }
            // Only what differs: local0 exists already, with an MTU of 0 no setter takes.
            let (m, now) = (mac(i, "mac")?, f.iface(sw).map_err(e)?.clone());
            if now.mac != m {
                f.set_mac(sw, m).map_err(e)?;
            }
            if now.mtu != mtu {
                f.set_mtu(sw, mtu).map_err(e)?;
            }
            f.set_tag(sw, text(i, "tag")?).map_err(e)?;
            f.set_table(sw, Af::Ip4, num32(i, "ip4_table")?)
                .map_err(e)?;
            f.set_table(sw, Af::Ip6, num32(i, "ip6_table")?)
                .map_err(e)?;
            f.set_tx_offloads(sw, flag(i, "tx_gso")?, flag(i, "tx_csum")?)
                .map_err(e)?;
            f.set_promisc(sw, flag(i, "promisc")?).map_err(e)?;
            f.set_proxy_arp(sw, flag(i, "proxy_arp")?).map_err(e)?;
            f.set_nd_proxy(sw, flag(i, "nd_proxy")?).map_err(e)?;
            f.enable_ip6(sw, flag(i, "ip6_enabled")?).map_err(e)?;
            if let Some(m) = get(i, "protocol_mtu")?.as_array() {
                let m: Vec<u16> = m
                    .iter()
                    .map(|x| x.as_u64().and_then(|n| u16::try_from(n).ok()))
                    .collect::<Option<_>>()
                    .ok_or_else(|| bad("protocol_mtu"))?;
                if let [m4, m6] = m[..] {
                    f.set_protocol_mtu(sw, m4, m6).map_err(e)?;
                }
            }
        }
        overlay::tunnels_restore(dp, &mut f, snap, v)?;
        if v >= VERSION_WITH_WIREGUARD {
            wireguard::restore(dp, &mut f, snap)?;
        }
        wireguard::check_interfaces(dp, snap)?;
        if v >= VERSION {
            ipsec::interfaces_restore(&mut f, snap)?;
        }
    }
    // The service calls take the forwarding lock; protections need the tunnels rebuilt.
    if v >= VERSION {
        ipsec::restore(dp, snap)?;
    }
    // Before any device is polled: the first packet of a service or policed flow must find
    // its translation and policy.
    if calico {
        calico::cnat_restore(dp, get(snap, "cnat")?)?;
        calico::npol_restore(dp, get(snap, "npol")?)?;
    }
    overlay::settings_restore(dp, snap, v)?;
    let mut f = dp.fwd();
    if calico {
        calico::flows_restore(dp, &f, get(snap, "flows")?)?;
    }
    for i in ifs {
        let sw = num32(i, "sw")?;
        let name = text(i, "name")?;
        let e = |e: rvpp_dataplane::forwarding::FwdError| format!("interface {name}: {e}");
        if calico {
            calico::features_restore(&mut f, sw, get(i, "features")?)?;
        }
        if let Some(of) = opt32(i, "unnumbered_of")? {
            f.set_unnumbered(sw, Some(of)).map_err(e)?;
        }
        if let Some(tx) = opt32(i, "xconnect")? {
            f.set_xconnect(sw, Some(tx)).map_err(e)?;
        }
        for k in ["ip4", "ip6"] {
            for p in list(i, k)? {
                let p = prefix(p.as_str().ok_or_else(|| bad(k))?)?;
                f.address_add(sw, p).map_err(e)?;
            }
        }
        f.set_link_up(sw, flag(i, "link_up")?).map_err(e)?;
        f.set_admin_up(sw, flag(i, "admin_up")?).map_err(e)?;
    }
    for n in list(snap, "neighbours")? {
        let ip: IpAddr = text(n, "ip")?.parse().map_err(|_| bad("neighbour ip"))?;
        f.neighbor_add(num32(n, "sw")?, ip, mac(n, "mac")?, flag(n, "static")?)
            .map_err(|e| format!("neighbour {ip}: {e}"))?;
    }
    for r in list(snap, "routes")? {
        let p = prefix(text(r, "prefix")?)?;
        let paths = list(r, "paths")?
            .iter()
            .map(path_of)
            .collect::<Result<Vec<_>, _>>()?;
        f.route_add(num32(r, "table")?, p, paths)
            .map_err(|e| format!("route {p}: {e}"))?;
    }
    drop(f);
    overlay::late_restore(dp, snap, v)?;
    if v >= 5 {
        overlay::version5_restore(dp, snap)?;
    }
    if v >= VERSION_WITH_WIREGUARD {
        wireguard::apply_counters(dp, &ask(Ask::WireguardCounters)?)?;
    }
    if v >= VERSION {
        ipsec::apply_seqs(dp, &ask(Ask::IpsecSeqs)?)?;
    }
    // The devices last, outside the forwarding lock (placing queues reads it): the workers poll
    // them at once, and every packet they read must find the whole configuration and every
    // tx queue.
    let mut rx_later = Vec::new();
    let mut late = Late::default();
    for i in ifs {
        let sw = num32(i, "sw")?;
        match (get(i, "device")?, text(i, "dev_type")?) {
            (Value::Null, "loopback") => super::interfaces::attach_loopback(dp, sw),
            (Value::Null, _) => {}
            (d, _) => adopt_device(dp, sw, i, d, fds, &mut rx_later, &mut late)?,
        }
    }
    for (sw, rx) in rx_later {
        dp.attach_rx(sw, rx);
    }
    for i in ifs {
        let sw = num32(i, "sw")?;
        if let Some(p) = get(i, "rx_placement")?.as_array() {
            for q in p {
                let (queue, worker) = match q.as_array().map(|a| &a[..]) {
                    Some([q, w]) => (q.as_u64(), w.as_u64()),
                    _ => (None, None),
                };
                let (Some(queue), Some(worker)) = (queue, worker) else {
                    return Err(bad("rx_placement"));
                };
                // Another worker count places queues afresh.
                if (worker as usize) < dp.workers.len() {
                    let _ = dp.place_rx(sw, queue as u16, worker as usize);
                }
            }
        }
    }
    overlay::rx_modes_restore(dp, snap, v)?;
    dp.svc.changed();
    Ok(late)
}
