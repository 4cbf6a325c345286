//! What snapshot version 3 added: configuration that needs no device fd, rebuilt through the
//! services that made it, on the interfaces the snapshot rebuilt under their old indices.
//!
//! - VXLAN and IPIP tunnels (calico's overlays): each tunnel's row (endpoints, VNI or
//!   instance, encap table, VXLAN's L2/L3 mode); its interface travels as any other (name, MAC,
//!   MTU, state, addresses, unnumbered, table bindings, features).
//! - uRPF checks (family, direction, interface, mode, table), TTL fixup pairs and proxy-ARP
//!   ranges (by table id).
//! - The classifier: its tables under their indices (mask, vectors, buckets, chain, miss),
//!   the interfaces' input tables and the session redirects (calico's DNS to the host).
//! - PBL clients under their ids, with their paths as configured and their port ranges.
//! - SRv6: the encap source, localsids and policies under their entries (which their routes
//!   name) with every SID list under its index, and steering (an API route under it travels
//!   with the routes, as it waits in the FIB).
//! - Rx modes: each device's, and each queue's (`sw_interface_set_rx_mode`), set again once
//!   the devices are adopted.

use super::{bad, flag, get, list, num32, text};
use crate::daemon::Dataplane;
use crate::service::classify::{self, TableSpec};
use crate::service::mroutes::{self, MPath};
use crate::service::punt::{self, Redirect};
use crate::service::srv6::{self, LocalsidSpec, PolicySpec};
use crate::service::{ipip, neighbours, pbl, queues, tables, ttl_fixup, urpf, vxlan};
use rvpp_dataplane::device::RxMode;
use rvpp_dataplane::forwarding::{Af, Forwarding, Prefix};
use rvpp_dataplane::nodes::classify::{self as cls_nodes, Action, VECTOR};
use rvpp_dataplane::nodes::urpf::{self as urpf_nodes, Dir, Mode};
use rvpp_dataplane::nodes::{ipip as ipip_nodes, ttl_fixup as ttl_nodes, vxlan as vxlan_nodes};
use rvpp_dataplane::srv6::{Behavior, Table as Srv6Table};
use serde_json::{json, Map, Value};
use std::net::IpAddr;
use std::net::Ipv6Addr;

/// Interface `sw` is a tunnel this file carries.
pub(super) fn carried_interface(dp: &Dataplane, sw: u32) -> bool {
    !vxlan::list(dp, Some(sw)).is_empty() || !ipip::list(dp, Some(sw)).is_empty()
}

/// Feature `arc`/`node` on `sw` is one a service of this file turns on, and restores with it.
pub(super) fn carried_feature(dp: &Dataplane, sw: u32, arc: &str, node: &str) -> bool {
    let is = |set: &[rvpp_dataplane::feature::Feature]| {
        set.iter().any(|f| f.arc == arc && f.node == node)
    };
    let vx = [vxlan_nodes::ENCAP4, vxlan_nodes::ENCAP6];
    let ip = [ipip_nodes::ENCAP4, ipip_nodes::ENCAP6];
    let urpf_on = urpf::list(dp)
        .iter()
        .any(|c| c.sw_if_index == sw && is(&[urpf_nodes::feature(c.af, c.dir, c.mode)]));
    let cls = classify::snapshot(dp);
    let inacl_on = [Af::Ip4, Af::Ip6]
        .into_iter()
        .any(|af| is(&[cls_nodes::feature(af)]) && cls.inacl(af, sw).is_some());
    let ttl_on =
        is(&[ttl_nodes::IP4, ttl_nodes::IP6]) && ttl_fixup::list(dp).iter().any(|p| p.1 == sw);
    (is(&vx) && !vxlan::list(dp, Some(sw)).is_empty())
        || (is(&ip) && !ipip::list(dp, Some(sw)).is_empty())
        || urpf_on
        || ttl_on
        || inacl_on
}

/// What this file cannot carry, one line each: PBL clients without the path they were made
/// with (any made other than through `service::pbl`).
pub(super) fn unsupported(dp: &Dataplane, f: &Forwarding) -> Vec<String> {
    let n = f
        .pbl_clients()
        .iter()
        .filter(|(id, _, _)| pbl::path(dp, *id).is_none())
        .count();
    let mut no = Vec::new();
    if n > 0 {
        no.push(format!("{n} PBL client(s) without a recorded path"));
    }
    for (i, p) in srv6::policies(dp) {
        if p.sid_lists.is_empty() {
            no.push(format!("SRv6 policy {i} without a SID list"));
        }
    }
    no
}

/// Route `p` of table `t` is one SRv6's objects make (and the snapshot's SRv6 section
/// rebuilds): a localsid's, a BSID's, or a steered prefix's.
pub(super) fn srv6_route(dp: &Dataplane, t: u32, p: Prefix) -> bool {
    let host = |a: u128| Prefix::V6(a, 128);
    srv6::localsids(dp)
        .iter()
        .any(|l| l.fib_table == t && host(l.sid) == p)
        || srv6::policies(dp)
            .iter()
            .any(|(_, x)| x.fib_table == t && host(x.bsid) == p)
        || srv6::steering(dp)
            .iter()
            .any(|(s, _)| s.table_id == t && s.prefix == p)
}

fn srv6_json(dp: &Dataplane) -> Value {
    let sr = dp.feature_tables.get::<Srv6Table>().load();
    let v6 = |a: u128| Ipv6Addr::from(a).to_string();
    let localsids: Vec<Value> = sr
        .localsids
        .iter()
        .enumerate()
        .filter_map(|(i, l)| Some((i, l.as_ref()?)))
        .map(|(i, l)| {
            json!({
                "index": i,
                "sid": v6(l.sid),
                "behavior": l.behavior.name(),
                "end_psp": l.end_psp,
                "fib_table": l.fib_table,
                "decap_table": l.decap_table,
                "sw": l.sw_if_index,
                "nh": l.nh.map(|n| n.to_string()),
            })
        })
        .collect();
    let policies: Vec<Value> = sr
        .policies
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some((i, p.as_ref()?)))
        .map(|(i, p)| {
            let lists: Vec<Value> = p
                .sid_lists
                .iter()
                .map(|l| {
                    let sids: Vec<String> = l.sids.iter().map(|&s| v6(s)).collect();
                    json!({"index": l.index, "weight": l.weight, "sids": sids})
                })
                .collect();
            json!({
                "index": i,
                "bsid": v6(p.bsid),
                "is_encap": p.is_encap,
                "is_spray": p.is_spray,
                "reduced": p.reduced,
                "fib_table": p.fib_table,
                "lists": lists,
            })
        })
        .collect();
    let steering: Vec<Value> = srv6::steering(dp)
        .iter()
        .map(|(s, _)| {
            json!({
                "table": s.table_id,
                "prefix": s.prefix.to_string(),
                "policy": s.policy,
            })
        })
        .collect();
    json!({
        "encap_source": v6(sr.encap_source),
        "localsids": localsids,
        "policies": policies,
        "steering": steering,
    })
}

fn v6_of(v: &Value) -> Result<Ipv6Addr, String> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("SRv6 address"))
}

fn srv6_restore(dp: &Dataplane, v: &Value) -> Result<(), String> {
    let e = |what: String| move |e: crate::service::SvcError| format!("SRv6 {what}: {e}");
    srv6::set_encap_source(dp, v6_of(get(v, "encap_source")?)?)
        .map_err(e("encap source".into()))?;
    for l in list(v, "localsids")? {
        let i = num32(l, "index")?;
        let nh = match get(l, "nh")? {
            Value::Null => None,
            _ => Some(addr(l, "nh")?),
        };
        let spec = LocalsidSpec {
            sid: v6_of(get(l, "sid")?)?,
            behavior: Behavior::parse(text(l, "behavior")?).ok_or_else(|| bad("behavior"))?,
            end_psp: flag(l, "end_psp")?,
            fib_table: num32(l, "fib_table")?,
            decap_table: num32(l, "decap_table")?,
            sw_if_index: num32(l, "sw")?,
            nh,
        };
        srv6::localsid_restore(dp, i, spec).map_err(e(format!("localsid {}", spec.sid)))?;
    }
    for p in list(v, "policies")? {
        let i = num32(p, "index")?;
        let mut lists = Vec::new();
        for l in list(p, "lists")? {
            let sids = list(l, "sids")?
                .iter()
                .map(v6_of)
                .collect::<Result<Vec<_>, _>>()?;
            lists.push((num32(l, "index")?, num32(l, "weight")?, sids));
        }
        let Some((first, rest)) = lists.split_first() else {
            return Err(bad("policy SID lists"));
        };
        let spec = PolicySpec {
            bsid: v6_of(get(p, "bsid")?)?,
            weight: first.1,
            is_encap: flag(p, "is_encap")?,
            is_spray: flag(p, "is_spray")?,
            reduced: flag(p, "reduced")?,
            fib_table: num32(p, "fib_table")?,
            sids: first.2.clone(),
        };
        let bsid = spec.bsid;
        srv6::policy_restore(dp, i, spec, first.0).map_err(e(format!("policy {bsid}")))?;
        for (n, w, sids) in rest {
            srv6::sid_list_restore(dp, i, *n, *w, sids)
                .map_err(e(format!("policy {bsid} SID list {n}")))?;
        }
    }
    for s in list(v, "steering")? {
        let t = num32(s, "table")?;
        let p = Prefix::parse(text(s, "prefix")?).ok_or_else(|| bad("steered prefix"))?;
        // An older rvpp's steering kept the API route it replaced (which its routes section
        // then lacked): that route goes in first, to wait under the steering.
        if let Some(saved) = s.get("saved").and_then(Value::as_array) {
            let paths = saved
                .iter()
                .map(super::path_of)
                .collect::<Result<Vec<_>, _>>()?;
            dp.fwd()
                .route_add(t, p, paths)
                .map_err(|x| format!("SRv6 steered route {p}: {x}"))?;
        }
        srv6::steer_add(dp, Ipv6Addr::UNSPECIFIED, num32(s, "policy")?, t, p)
            .map_err(e(format!("steering of {p}")))?;
    }
    Ok(())
}

/// The sections this file adds to a snapshot.
pub(super) fn capture(dp: &Dataplane, f: &Forwarding, out: &mut Map<String, Value>) {
    let vx: Vec<Value> = vxlan::list(dp, None)
        .iter()
        .map(|t| {
            json!({
                "sw": t.sw_if_index,
                "instance": t.instance,
                "src": t.src.to_string(),
                "dst": t.dst.to_string(),
                "dst_port": t.dst_port,
                "src_port": t.src_port,
                "vni": t.vni,
                "encap_vrf_id": t.encap_vrf_id,
                "l3": t.l3,
                "decap_next_index": t.decap_next_index,
            })
        })
        .collect();
    let ip: Vec<Value> = ipip::list(dp, None)
        .iter()
        .map(|t| {
            json!({
                "sw": t.sw_if_index,
                "instance": t.instance,
                "src": t.src.to_string(),
                "dst": t.dst.to_string(),
                "table_id": t.table_id,
                "flags": t.flags,
                "dscp": t.dscp,
            })
        })
        .collect();
    out.insert("vxlan".into(), Value::Array(vx));
    out.insert("ipip".into(), Value::Array(ip));
    let checks: Vec<Value> = urpf::list(dp)
        .iter()
        .map(|c| {
            json!({
                "af": super::af_name(c.af),
                "tx": c.dir == Dir::Tx,
                "sw": c.sw_if_index,
                "strict": c.mode == Mode::Strict,
                "table": c.table_id,
            })
        })
        .collect();
    out.insert("urpf".into(), Value::Array(checks));
    let pairs: Vec<Value> = ttl_fixup::list(dp)
        .iter()
        .map(|&(src, dst)| json!({"src": src, "dst": dst}))
        .collect();
    out.insert("ttl_fixup".into(), Value::Array(pairs));
    // By table id: the new process numbers FIBs afresh.
    let ranges: Vec<Value> = f
        .proxy_arps()
        .iter()
        .map(|&(fib, lo, hi)| json!({"table": f.table_id_of(Af::Ip4, fib), "lo": lo, "hi": hi}))
        .collect();
    out.insert("proxy_arp".into(), Value::Array(ranges));
    out.insert("classify".into(), classify_json(dp));
    out.insert("srv6".into(), srv6_json(dp));
    let clients: Vec<Value> = f
        .pbl_clients()
        .iter()
        .filter_map(|(id, table, c)| Some((id, table, c, pbl::path(dp, *id)?)))
        .map(|(id, table, c, path)| {
            let addr: IpAddr = if c.is_ip6 {
                std::net::Ipv6Addr::from(c.addr).into()
            } else {
                std::net::Ipv4Addr::from(c.addr as u32).into()
            };
            json!({
                "id": id,
                "table": table,
                "addr": addr.to_string(),
                "path": super::path_json(&path),
                "ranges": c.ranges,
            })
        })
        .collect();
    out.insert("pbl".into(), Value::Array(clients));
    // A device's own mode first (it sets every queue's), then each queue's.
    let mut modes: Vec<Value> = dp
        .devices_lock()
        .values()
        .filter(|d| d.rx_mode != RxMode::Polling)
        .map(|d| json!({"sw": d.sw_if_index, "queue": null, "mode": d.rx_mode.name()}))
        .collect();
    modes.extend(
        queues::rx_mode_list(dp)
            .iter()
            .map(|&((sw, q), m)| json!({"sw": sw, "queue": q, "mode": m.name()})),
    );
    out.insert("rx_modes".into(), Value::Array(modes));
}

fn addr(v: &Value, k: &str) -> Result<IpAddr, String> {
    text(v, k)?.parse().map_err(|_| bad(k))
}

fn small<T: TryFrom<u32>>(v: &Value, k: &str) -> Result<T, String> {
    T::try_from(num32(v, k)?).map_err(|_| bad(k))
}

/// The tunnels of `snap` (of version `version`: before 3, none), on the interfaces the
/// restore made; `f` is its forwarding lock. An interface of a tunnel type without its tunnel
/// is refused: it would carry nothing.
pub(super) fn tunnels_restore(
    dp: &Dataplane,
    f: &mut Forwarding,
    snap: &Value,
    version: u64,
) -> Result<(), String> {
    let none = Vec::new();
    let section = |k: &str| {
        if version >= 3 {
            list(snap, k)
        } else {
            Ok(&none)
        }
    };
    for t in section("vxlan")? {
        let sw = num32(t, "sw")?;
        let r = vxlan::VxlanRequest {
            instance: Some(num32(t, "instance")?),
            src: addr(t, "src")?,
            dst: addr(t, "dst")?,
            dst_port: small(t, "dst_port")?,
            // Snapshots before receive ports were configurable: 4789.
            src_port: if t.get("src_port").is_some() {
                small(t, "src_port")?
            } else {
                0
            },
            vni: num32(t, "vni")?,
            encap_vrf_id: num32(t, "encap_vrf_id")?,
            l3: flag(t, "l3")?,
            decap_next_index: num32(t, "decap_next_index")?,
        };
        vxlan::restore(dp, f, sw, r).map_err(|e| format!("vxlan tunnel on {sw}: {e}"))?;
    }
    for t in section("ipip")? {
        let sw = num32(t, "sw")?;
        let r = ipip::IpipRequest {
            instance: Some(num32(t, "instance")?),
            src: addr(t, "src")?,
            dst: addr(t, "dst")?,
            table_id: num32(t, "table_id")?,
            flags: small(t, "flags")?,
            dscp: small(t, "dscp")?,
        };
        ipip::restore(dp, f, sw, r).map_err(|e| format!("ipip tunnel on {sw}: {e}"))?;
    }
    for i in list(snap, "interfaces")? {
        let sw = num32(i, "sw")?;
        let ty = text(i, "dev_type")?;
        if matches!(ty, "vxlan" | "ipip") && !carried_interface(dp, sw) {
            return Err(format!(
                "snapshot: interface {} ({ty}) without its tunnel",
                text(i, "name")?
            ));
        }
    }
    Ok(())
}

/// The settings of `snap` (of version `version`: before 3, none) made through their
/// services, on the interfaces and tables the restore made, before any device is polled.
pub(super) fn settings_restore(dp: &Dataplane, snap: &Value, version: u64) -> Result<(), String> {
    if version < 3 {
        return Ok(());
    }
    for c in list(snap, "urpf")? {
        let sw = num32(c, "sw")?;
        let af = super::af_of(c)?;
        let dir = if flag(c, "tx")? { Dir::Tx } else { Dir::Rx };
        let mode = if flag(c, "strict")? {
            Mode::Strict
        } else {
            Mode::Loose
        };
        urpf::update(dp, af, dir, sw, Some(mode), super::opt32(c, "table")?)
            .map_err(|e| format!("uRPF check on {sw}: {e}"))?;
    }
    for p in list(snap, "ttl_fixup")? {
        let (src, dst) = (num32(p, "src")?, num32(p, "dst")?);
        ttl_fixup::configure(dp, src, dst, true)
            .map_err(|e| format!("TTL fixup {src} -> {dst}: {e}"))?;
    }
    for r in list(snap, "proxy_arp")? {
        let (t, lo, hi) = (num32(r, "table")?, num32(r, "lo")?, num32(r, "hi")?);
        neighbours::proxy_arp_range(dp, t, lo, hi, true)
            .map_err(|e| format!("proxy ARP range in table {t}: {e}"))?;
    }
    Ok(())
}

/// The rx modes of `snap` (of version `version`: before 3, none), set through the service
/// once the devices' queues are placed.
pub(super) fn rx_modes_restore(dp: &Dataplane, snap: &Value, version: u64) -> Result<(), String> {
    if version < 3 {
        return Ok(());
    }
    for m in list(snap, "rx_modes")? {
        let sw = num32(m, "sw")?;
        let queue = super::opt32(m, "queue")?
            .map(|q| u16::try_from(q).map_err(|_| bad("queue")))
            .transpose()?;
        let mode = RxMode::parse(text(m, "mode")?).ok_or_else(|| bad("rx mode"))?;
        queues::set_rx_mode(dp, sw, queue, mode)
            .map_err(|e| format!("rx mode of {sw} queue {queue:?}: {e}"))?;
    }
    Ok(())
}

pub(super) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(super) fn unhex(v: &Value, k: &str) -> Result<Vec<u8>, String> {
    let s = text(v, k)?;
    if s.len() % 2 != 0 {
        return Err(bad(k));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad(k))
        })
        .collect()
}

/// VPP's next index of a miss action (the only ones a table is made with).
fn miss_next(a: Action) -> Option<u32> {
    match a {
        Action::Continue => Some(u32::MAX),
        Action::Drop => Some(0),
        Action::Redirect(_) => None,
    }
}

fn classify_json(dp: &Dataplane) -> Value {
    let c = classify::snapshot(dp);
    let tables: Vec<Value> = c
        .tables
        .iter()
        .enumerate()
        .filter_map(|(i, t)| Some((i, t.as_ref()?)))
        .map(|(i, t)| {
            let words = t.match_n as usize * VECTOR / 8;
            let mask: Vec<u8> = t
                .mask
                .iter()
                .take(words)
                .flat_map(|w| w.to_ne_bytes())
                .collect();
            json!({
                "index": i,
                "mask": hex(&mask),
                "skip_n": t.skip_n,
                "match_n": t.match_n,
                "nbuckets": t.nbuckets,
                "next_table": t.next_table,
                "miss_next": miss_next(t.miss),
                "offset": t.offset,
            })
        })
        .collect();
    let inacl: Vec<Value> = c
        .inacls()
        .iter()
        .map(|&(af, sw, t)| json!({"af": super::af_name(af), "sw": sw, "table": t}))
        .collect();
    let redirects: Vec<Value> = classify::redirect_list(dp)
        .iter()
        .map(|r| {
            let opaque = c.table(r.table).and_then(|t| {
                let key = t.key(&r.matched);
                t.sessions().iter().find(|s| s.key == key).map(|s| s.opaque)
            });
            json!({
                "table": r.table,
                "match": hex(&r.matched),
                "af": super::af_name(r.af),
                "path": super::path_json(&r.path),
                "opaque": opaque.unwrap_or(0),
            })
        })
        .collect();
    json!({"tables": tables, "inacl": inacl, "redirects": redirects})
}

/// What of `snap` (of version `version`: before 3, none) needs the interfaces, routes and
/// neighbours there (SRv6's routes and adjacencies; a redirect's adjacency; a PBL client's
/// parent, the route under it): SRv6, the classifier, then the PBL clients.
pub(super) fn late_restore(dp: &Dataplane, snap: &Value, version: u64) -> Result<(), String> {
    if version < 3 {
        return Ok(());
    }
    srv6_restore(dp, get(snap, "srv6")?)?;
    classify_restore(dp, snap)?;
    for c in list(snap, "pbl")? {
        let id = num32(c, "id")?;
        let ranges = list(c, "ranges")?
            .iter()
            .map(|r| match r.as_array().map(|a| &a[..]) {
                Some([p, a, b]) => Some((
                    u8::try_from(p.as_u64()?).ok()?,
                    u16::try_from(a.as_u64()?).ok()?,
                    u16::try_from(b.as_u64()?).ok()?,
                )),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("pbl ranges"))?;
        let path = super::path_of(get(c, "path")?)?;
        pbl::restore(dp, id, num32(c, "table")?, addr(c, "addr")?, &path, ranges)
            .map_err(|e| format!("pbl client {id}: {e}"))?;
    }
    Ok(())
}

/// The classifier: the tables unchained under their indices, then their chains, then the
/// interfaces' input tables, then the redirects.
fn classify_restore(dp: &Dataplane, snap: &Value) -> Result<(), String> {
    let c = get(snap, "classify")?;
    let tables = list(c, "tables")?;
    let e = |what: String| move |e: crate::service::SvcError| format!("classify {what}: {e}");
    for t in tables {
        let i = num32(t, "index")?;
        let miss_next = num32(t, "miss_next")?;
        let spec = TableSpec {
            mask: unhex(t, "mask")?,
            skip_n: num32(t, "skip_n")?,
            match_n: num32(t, "match_n")?,
            nbuckets: num32(t, "nbuckets")?,
            next_table: None,
            miss_next,
            current_data: true,
            offset: small(t, "offset")?,
        };
        classify::add_table_at(dp, i, &spec).map_err(e(format!("table {i}")))?;
    }
    for t in tables {
        if let Some(n) = super::opt32(t, "next_table")? {
            let i = num32(t, "index")?;
            classify::update_table(dp, i, Some(n), num32(t, "miss_next")?)
                .map_err(e(format!("table {i}")))?;
        }
    }
    for a in list(c, "inacl")? {
        let (sw, t) = (num32(a, "sw")?, num32(a, "table")?);
        let (ip4, ip6) = match super::af_of(a)? {
            Af::Ip4 => (Some(t), None),
            Af::Ip6 => (None, Some(t)),
        };
        classify::set_input(dp, sw, ip4, ip6, None, true)
            .map_err(e(format!("input table of {sw}")))?;
    }
    for r in list(c, "redirects")? {
        let t = num32(r, "table")?;
        let path = super::path_of(get(r, "path")?)?;
        classify::redirect_add(
            dp,
            t,
            &unhex(r, "match")?,
            super::af_of(r)?,
            &[path],
            num32(r, "opaque")?,
        )
        .map_err(e(format!("redirect in table {t}")))?;
    }
    Ok(())
}

/// The configuration holds what version 5 adds: punt redirects, mroutes, tables deleted while
/// in use. Calico's node has the first two: the global punt redirect into the punt table, and
/// ip6 mroutes in its VRFs (with a default one per pod VRF).
pub(super) fn needs_version_5(dp: &Dataplane) -> bool {
    [Af::Ip4, Af::Ip6]
        .iter()
        .any(|&af| !punt::list(dp, af, None).is_empty())
        || !mroutes::list(dp).is_empty()
        || !tables::pending(dp).is_empty()
}

/// Punt redirects and mroutes as configured (by table id and sw_if_index, which the new
/// process keeps), and the tables deleted while in use.
pub(super) fn version5_capture(dp: &Dataplane, out: &mut Map<String, Value>) {
    let redirects: Vec<Value> = [Af::Ip4, Af::Ip6]
        .iter()
        .flat_map(|&af| punt::list(dp, af, None))
        .map(|r| {
            json!({
                "af": super::af_name(r.af),
                "rx": r.rx,
                "paths": r.paths.iter().map(super::path_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    out.insert("punt_redirects".into(), Value::Array(redirects));
    let routes: Vec<Value> = mroutes::list(dp)
        .iter()
        .map(|(&(af, table, group, len), paths)| {
            json!({
                "af": super::af_name(af),
                "table": table,
                // u128 does not fit a JSON number.
                "group": group.to_string(),
                "len": len,
                "paths": paths.iter().map(|p| json!({
                    "sw": p.sw, "lookup": p.lookup, "accept": p.accept, "forward": p.forward,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    out.insert("mroutes".into(), Value::Array(routes));
    let pending: Vec<Value> = tables::pending(dp)
        .iter()
        .map(|&(af, id)| json!({"af": super::af_name(af), "id": id}))
        .collect();
    out.insert("tables_pending_delete".into(), Value::Array(pending));
}

/// The redirects, mroutes and pending table deletes of a version 5 snapshot, through the
/// service as the API makes them, once tables and interfaces exist.
pub(super) fn version5_restore(dp: &Dataplane, snap: &Value) -> Result<(), String> {
    for r in list(snap, "punt_redirects")? {
        let af = super::af_of(r)?;
        let rx = super::opt32(r, "rx")?;
        let paths = list(r, "paths")?
            .iter()
            .map(super::path_of)
            .collect::<Result<Vec<_>, _>>()?;
        punt::add(dp, Redirect { af, rx, paths })
            .map_err(|e| format!("punt redirect ({rx:?}): {e}"))?;
    }
    for m in list(snap, "mroutes")? {
        let af = super::af_of(m)?;
        let table = num32(m, "table")?;
        let group: u128 = text(m, "group")?.parse().map_err(|_| bad("mroute group"))?;
        let len = small(m, "len")?;
        let paths = list(m, "paths")?
            .iter()
            .map(|p| {
                Ok(MPath {
                    sw: super::opt32(p, "sw")?,
                    lookup: super::opt32(p, "lookup")?,
                    accept: flag(p, "accept")?,
                    forward: flag(p, "forward")?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        mroutes::update(dp, af, table, group, len, paths, true)
            .map_err(|e| format!("mroute in table {table}: {e}"))?;
    }
    // Last: a table whose only users were the above goes when they do.
    for t in list(snap, "tables_pending_delete")? {
        let id = num32(t, "id")?;
        tables::restore_pending(dp, super::af_of(t)?, id)
            .map_err(|e| format!("pending delete of table {id}: {e}"))?;
    }
    Ok(())
}
