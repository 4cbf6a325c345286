//! The Calico objects of a snapshot: cnat's translations (with their ids and the next id) and
//! SNAT configuration, npol's ipsets, rules, policies (with their ids) and interface
//! configurations, the cnat/npol features of each interface, and the flows (cnat's sessions
//! with the ports they own, ClientIP affinities, npol's cached verdicts). The agent keeps the ids the
//! API returned and later deletes and dumps by them, so they are put back as they were.

use super::{bad, flag, get, list, num, num32, text};
use crate::daemon::Dataplane;
use rvpp_dataplane::cnat::session::{sflags, FlowKey, Rewrite, Session, SessionTable};
use rvpp_dataplane::cnat::snat::{IfTable, Policy as SnatPolicy, SnatConfig};
use rvpp_dataplane::cnat::translation::{Endpoint, LbType, PathEp, Translation};
use rvpp_dataplane::feature::Feature;
use rvpp_dataplane::forwarding::{Af, Forwarding};
use rvpp_dataplane::nodes::{cnat as cnat_nodes, npol as npol_nodes};
use rvpp_dataplane::npol::ipset::{IpSetKind, Member};
use rvpp_dataplane::npol::rule::{Action, Entry, Filter, FilterKind, MatchData, Rule};
use rvpp_dataplane::npol::{IfConfig, Net, Policy, PolicyDefault};
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv6Addr};

/// The per-interface features a snapshot carries: those cnat and npol turn on. Others are
/// refused by name (their state lives elsewhere).
pub(super) fn carried_feature(arc: &str, node: &str) -> bool {
    let npol_stages = [
        npol_nodes::UNTRACKED_RX_IP4,
        npol_nodes::UNTRACKED_RX_IP6,
        npol_nodes::UNTRACKED_TX_IP4,
        npol_nodes::UNTRACKED_TX_IP6,
        npol_nodes::PREDNAT_IP4,
        npol_nodes::PREDNAT_IP6,
    ];
    let all: [&[Feature]; 3] = [&cnat_nodes::FEATURES, &npol_nodes::FEATURES, &npol_stages];
    all.iter()
        .flat_map(|s| s.iter())
        .any(|f| f.arc == arc && f.node == node)
}

/// Interface `sw`'s enabled features as [arc, node] pairs.
pub(super) fn features_json(f: &Forwarding, sw: u32) -> Value {
    let on = f.interface_features(sw).unwrap_or_default();
    let pairs: Vec<Value> = on
        .iter()
        .flat_map(|(arc, nodes)| nodes.iter().map(move |n| json!([arc, n])))
        .collect();
    Value::Array(pairs)
}

/// Enable the features [`features_json`] listed on `sw`.
pub(super) fn features_restore(f: &mut Forwarding, sw: u32, v: &Value) -> Result<(), String> {
    for p in v.as_array().ok_or_else(|| bad("features"))? {
        let (arc, node) = match p.as_array().map(|a| &a[..]) {
            Some([a, n]) => (a.as_str(), n.as_str()),
            _ => (None, None),
        };
        let (Some(arc), Some(node)) = (arc, node) else {
            return Err(bad("feature"));
        };
        f.feature_enable(sw, arc, node, true)
            .map_err(|e| format!("feature {arc} {node} on sw_if_index {sw}: {e}"))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// cnat

/// cnat's 128-bit addresses as IPv6 text (IPv4 v4-mapped): exact, and readable.
fn a128(a: u128) -> String {
    Ipv6Addr::from(a).to_string()
}
fn a128_of(v: &Value, k: &str) -> Result<u128, String> {
    text(v, k)?
        .parse::<Ipv6Addr>()
        .map(u128::from)
        .map_err(|_| bad(k))
}

fn ep_json(e: &Endpoint) -> Value {
    json!({"addr": a128(e.addr), "port": e.port, "ip6": e.ip6})
}
fn ep_of(v: &Value) -> Result<Endpoint, String> {
    Ok(Endpoint {
        addr: a128_of(v, "addr")?,
        port: u16::try_from(num(v, "port")?).map_err(|_| bad("port"))?,
        ip6: flag(v, "ip6")?,
    })
}
fn small(v: &Value, k: &str) -> Result<u8, String> {
    u8::try_from(num(v, k)?).map_err(|_| bad(k))
}

fn snat_policy_num(p: SnatPolicy) -> u64 {
    match p {
        SnatPolicy::None => 0,
        SnatPolicy::IfPfx => 1,
        SnatPolicy::K8s => 2,
        SnatPolicy::Dnat => 3,
    }
}

pub(super) fn cnat_json(dp: &Dataplane) -> Value {
    let cnat = dp.cnat();
    let table = cnat.translations.load();
    let mut ts: Vec<&Translation> = table.iter().collect();
    ts.sort_by_key(|t| t.id);
    let ts: Vec<Value> = ts
        .iter()
        .map(|t| {
            let paths: Vec<Value> = t
                .paths
                .iter()
                .map(|p| json!({"src": ep_json(&p.src), "dst": ep_json(&p.dst), "flags": p.flags}))
                .collect();
            json!({
                "id": t.id,
                "vip": ep_json(&t.vip),
                "proto": t.proto,
                "is_real_ip": t.is_real_ip,
                "flags": t.flags,
                "maglev": t.lb == LbType::Maglev,
                "flow_hash_config": t.flow_hash_config,
                "paths": paths,
            })
        })
        .collect();
    let s = cnat.snat.load();
    let mut exclude: Vec<(u128, u8)> = s.exclude.iter().collect();
    exclude.sort();
    let tables: Vec<(IfTable, Vec<u32>)> = s.tables.iter().collect();
    json!({
        "next_id": cnat.next_translation_id(),
        "translations": ts,
        "snat": {
            "ip4": a128(s.ip4),
            "ip6": a128(s.ip6),
            "sw": s.sw_if_index,
            "fwd_fib_index": s.fwd_fib_index,
            "ret_fib_index": s.ret_fib_index,
            "flags": s.flags,
            "policy": snat_policy_num(s.policy),
            "exclude": exclude.iter().map(|&(a, l)| json!([a128(a), l])).collect::<Vec<_>>(),
            "tables": tables.iter().map(|(t, v)| json!([*t as u8, v])).collect::<Vec<_>>(),
        },
    })
}

pub(super) fn cnat_restore(dp: &Dataplane, v: &Value) -> Result<(), String> {
    let mut ts = Vec::new();
    for t in list(v, "translations")? {
        let paths = list(t, "paths")?
            .iter()
            .map(|p| {
                Ok(PathEp {
                    src: ep_of(get(p, "src")?)?,
                    dst: ep_of(get(p, "dst")?)?,
                    flags: small(p, "flags")?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        ts.push(Translation {
            id: num32(t, "id")?,
            vip: ep_of(get(t, "vip")?)?,
            proto: small(t, "proto")?,
            is_real_ip: flag(t, "is_real_ip")?,
            flags: small(t, "flags")?,
            lb: if flag(t, "maglev")? {
                LbType::Maglev
            } else {
                LbType::Default
            },
            flow_hash_config: num32(t, "flow_hash_config")?,
            paths,
            ..Default::default()
        });
    }
    let s = get(v, "snat")?;
    let policy = match num(s, "policy")? {
        0 => SnatPolicy::None,
        1 => SnatPolicy::IfPfx,
        2 => SnatPolicy::K8s,
        3 => SnatPolicy::Dnat,
        _ => return Err(bad("snat policy")),
    };
    let mut snat = SnatConfig {
        ip4: a128_of(s, "ip4")?,
        ip6: a128_of(s, "ip6")?,
        sw_if_index: num32(s, "sw")?,
        fwd_fib_index: num32(s, "fwd_fib_index")?,
        ret_fib_index: num32(s, "ret_fib_index")?,
        flags: small(s, "flags")?,
        policy,
        ..Default::default()
    };
    for e in list(s, "exclude")? {
        let (a, l) = match e.as_array().map(|a| &a[..]) {
            Some([a, l]) => (
                a.as_str().and_then(|a| a.parse::<Ipv6Addr>().ok()),
                l.as_u64(),
            ),
            _ => (None, None),
        };
        match (a, l.and_then(|l| u8::try_from(l).ok())) {
            (Some(a), Some(l)) if l <= 128 => snat.exclude.add(u128::from(a), l),
            _ => return Err(bad("snat exclude prefix")),
        }
    }
    for e in list(s, "tables")? {
        let (t, sws) = match e.as_array().map(|a| &a[..]) {
            Some([t, sws]) => (
                t.as_u64()
                    .and_then(|t| u8::try_from(t).ok())
                    .and_then(IfTable::from_u8),
                sws.as_array(),
            ),
            _ => (None, None),
        };
        let (Some(t), Some(sws)) = (t, sws) else {
            return Err(bad("snat interface table"));
        };
        for sw in sws {
            let sw = sw.as_u64().and_then(|n| u32::try_from(n).ok());
            snat.tables
                .insert(t, sw.ok_or_else(|| bad("snat interface"))?);
        }
    }
    let cnat = dp.cnat();
    cnat.translations_restore(ts, num32(v, "next_id")?)
        .map_err(|e| format!("cnat translations: {e}"))?;
    cnat.snat_edit(|c| *c = snat);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// npol

fn ip(s: &str) -> Result<IpAddr, String> {
    s.parse().map_err(|_| bad(&format!("address {s}")))
}
fn net_json(n: &Net) -> Value {
    json!([n.addr.to_string(), n.len])
}
fn net_of(v: &Value) -> Result<Net, String> {
    let (a, l) = match v.as_array().map(|a| &a[..]) {
        Some([a, l]) => (a.as_str(), l.as_u64().and_then(|l| u8::try_from(l).ok())),
        _ => (None, None),
    };
    match (a, l) {
        (Some(a), Some(l)) => Net::new(ip(a)?, l).ok_or_else(|| bad("network")),
        _ => Err(bad("network")),
    }
}

fn member_json(m: &Member) -> Value {
    match m {
        Member::Ip(a) => json!({"ip": a.to_string()}),
        Member::Net(n) => json!({"net": net_json(n)}),
        Member::Tuple(a, p, port) => json!({"ip": a.to_string(), "proto": p, "port": port}),
    }
}
fn member_of(v: &Value) -> Result<Member, String> {
    if let Some(n) = v.get("net") {
        return Ok(Member::Net(net_of(n)?));
    }
    let a = ip(text(v, "ip")?)?;
    if v.get("port").is_some() {
        let port = u16::try_from(num(v, "port")?).map_err(|_| bad("port"))?;
        return Ok(Member::Tuple(a, small(v, "proto")?, port));
    }
    Ok(Member::Ip(a))
}

fn filter_kind_num(k: FilterKind) -> u8 {
    match k {
        FilterKind::None => 0,
        FilterKind::IcmpType => 1,
        FilterKind::IcmpCode => 2,
        FilterKind::L4Proto => 3,
    }
}

fn entry_json(e: &Entry) -> Value {
    let data = match e.data {
        MatchData::Cidr(n) => json!({"cidr": net_json(&n)}),
        MatchData::PortRange(lo, hi) => json!({"ports": [lo, hi]}),
        MatchData::PortIpSet(id) => json!({"port_ip_set": id}),
        MatchData::IpSet(id) => json!({"ip_set": id}),
    };
    json!({"is_src": e.is_src, "is_not": e.is_not, "data": data})
}
fn entry_of(v: &Value) -> Result<Entry, String> {
    let d = get(v, "data")?;
    let data = if let Some(n) = d.get("cidr") {
        MatchData::Cidr(net_of(n)?)
    } else if let Some(p) = d.get("ports") {
        let r: Option<Vec<u16>> = p.as_array().map(|a| {
            a.iter()
                .filter_map(|x| x.as_u64()?.try_into().ok())
                .collect()
        });
        match r.as_deref() {
            Some(&[lo, hi]) => MatchData::PortRange(lo, hi),
            _ => return Err(bad("port range")),
        }
    } else if d.get("port_ip_set").is_some() {
        MatchData::PortIpSet(num32(d, "port_ip_set")?)
    } else {
        MatchData::IpSet(num32(d, "ip_set")?)
    };
    Ok(Entry {
        is_src: flag(v, "is_src")?,
        is_not: flag(v, "is_not")?,
        data,
    })
}

/// An enum of the API by the name it prints (each has `from_api` and `name`).
fn by_name<T: Copy>(s: &str, from: fn(u8) -> Option<T>, name: fn(T) -> &'static str) -> Option<T> {
    (0..=u8::MAX).filter_map(from).find(|&x| name(x) == s)
}
fn action_of(s: &str) -> Result<Action, String> {
    by_name(s, Action::from_api, Action::name).ok_or_else(|| bad(&format!("action {s}")))
}
fn default_of(v: &Value, k: &str) -> Result<PolicyDefault, String> {
    let s = text(v, k)?;
    by_name(s, PolicyDefault::from_api, PolicyDefault::name).ok_or_else(|| bad(k))
}
fn ids(v: &Value, k: &str) -> Result<Vec<u32>, String> {
    list(v, k)?
        .iter()
        .map(|x| x.as_u64().and_then(|n| u32::try_from(n).ok()))
        .collect::<Option<_>>()
        .ok_or_else(|| bad(k))
}

pub(super) fn npol_json(dp: &Dataplane) -> Value {
    let t = dp.npol().tables.load();
    let ipsets: Vec<Value> = t
        .ipsets
        .iter()
        .map(|(id, s)| {
            let m: Vec<Value> = s.members().iter().map(member_json).collect();
            json!({"id": id, "kind": s.kind.name(), "members": m})
        })
        .collect();
    let rules: Vec<Value> = t
        .rules
        .iter()
        .map(|(id, r)| {
            let filters: Vec<Value> = r
                .filters
                .iter()
                .map(|f| {
                    json!({"kind": filter_kind_num(f.kind), "value": f.value, "should_match": f.should_match})
                })
                .collect();
            let entries: Vec<Value> = r.entries.iter().map(entry_json).collect();
            json!({"id": id, "action": r.action.name(), "filters": filters, "entries": entries})
        })
        .collect();
    let policies: Vec<Value> = t
        .policies
        .iter()
        .map(|(id, p)| json!({"id": id, "inbound": p.inbound, "outbound": p.outbound}))
        .collect();
    let ifaces: Vec<Value> = t
        .ifaces
        .iter()
        .map(|(sw, c)| {
            json!({
                "sw": sw,
                "rx_policies": c.rx_policies,
                "tx_policies": c.tx_policies,
                "profiles": c.profiles,
                "invert_rx_tx": c.invert_rx_tx,
                "policy_default_rx": c.policy_default_rx.name(),
                "policy_default_tx": c.policy_default_tx.name(),
                "profile_default_rx": c.profile_default_rx.name(),
                "profile_default_tx": c.profile_default_tx.name(),
            })
        })
        .collect();
    json!({"ipsets": ipsets, "rules": rules, "policies": policies, "interfaces": ifaces})
}

pub(super) fn npol_restore(dp: &Dataplane, v: &Value) -> Result<(), String> {
    let mut ipsets = Vec::new();
    for s in list(v, "ipsets")? {
        let k = text(s, "kind")?;
        let kind = by_name(k, IpSetKind::from_api, IpSetKind::name)
            .ok_or_else(|| bad(&format!("ipset kind {k}")))?;
        let members = list(s, "members")?
            .iter()
            .map(member_of)
            .collect::<Result<Vec<_>, _>>()?;
        ipsets.push((num32(s, "id")?, kind, members));
    }
    let mut rules = Vec::new();
    for r in list(v, "rules")? {
        let filters = list(r, "filters")?
            .iter()
            .map(|f| {
                Ok(Filter {
                    kind: FilterKind::from_api(small(f, "kind")?).ok_or_else(|| bad("filter"))?,
                    value: num32(f, "value")?,
                    should_match: flag(f, "should_match")?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let entries = list(r, "entries")?
            .iter()
            .map(entry_of)
            .collect::<Result<Vec<_>, _>>()?;
        let rule = Rule {
            action: action_of(text(r, "action")?)?,
            filters,
            entries,
        };
        rules.push((num32(r, "id")?, rule));
    }
    let mut policies = Vec::new();
    for p in list(v, "policies")? {
        let policy = Policy {
            inbound: ids(p, "inbound")?,
            outbound: ids(p, "outbound")?,
        };
        policies.push((num32(p, "id")?, policy));
    }
    let mut ifaces = Vec::new();
    for c in list(v, "interfaces")? {
        let cfg = IfConfig {
            rx_policies: ids(c, "rx_policies")?,
            tx_policies: ids(c, "tx_policies")?,
            profiles: ids(c, "profiles")?,
            invert_rx_tx: flag(c, "invert_rx_tx")?,
            policy_default_rx: default_of(c, "policy_default_rx")?,
            policy_default_tx: default_of(c, "policy_default_tx")?,
            profile_default_rx: default_of(c, "profile_default_rx")?,
            profile_default_tx: default_of(c, "profile_default_tx")?,
        };
        ifaces.push((num32(c, "sw")?, cfg));
    }
    dp.npol()
        .restore(ipsets, rules, policies, ifaces)
        .map_err(|e| format!("npol: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Flows: cnat's sessions and ClientIP affinities, npol's cached verdicts

/// One entry as an array (a node holds up to hundreds of thousands): the key, the value, and
/// its age in seconds, since each process's clock has its own origin. cnat's keys carry a FIB
/// index, sent as its table id (a restore numbers the tables afresh); npol's carry the
/// interface.
fn flow_json(k: &FlowKey, s: &Session, age: u32, fib: u32) -> Value {
    json!([
        format!("{:x}", k.src),
        format!("{:x}", k.dst),
        k.sport,
        k.dport,
        k.proto,
        k.ip6,
        k.stage,
        fib,
        format!("{:x}", s.rw.src),
        format!("{:x}", s.rw.dst),
        s.rw.sport,
        s.rw.dport,
        s.translation,
        s.flags,
        s.class,
        age,
    ])
}

fn flow_of(v: &Value) -> Option<(FlowKey, Session, u32, u32)> {
    let a = v.as_array()?;
    let x = |i: usize| a.get(i).and_then(Value::as_u64);
    let hex = |i: usize| u128::from_str_radix(a.get(i)?.as_str()?, 16).ok();
    let n16 = |i: usize| x(i).and_then(|n| u16::try_from(n).ok());
    let n8 = |i: usize| x(i).and_then(|n| u8::try_from(n).ok());
    let n32 = |i: usize| x(i).and_then(|n| u32::try_from(n).ok());
    let k = FlowKey {
        src: hex(0)?,
        dst: hex(1)?,
        sport: n16(2)?,
        dport: n16(3)?,
        proto: n8(4)?,
        ip6: a.get(5)?.as_bool()?,
        stage: n8(6)?,
        fib: 0,
    };
    let s = Session {
        rw: Rewrite {
            src: hex(8)?,
            dst: hex(9)?,
            sport: n16(10)?,
            dport: n16(11)?,
        },
        translation: n32(12)?,
        flags: n8(13)?,
        class: n8(14)?,
        last_seen: 0,
    };
    Some((k, s, n32(7)?, n32(15)?))
}

fn af(ip6: bool) -> Af {
    if ip6 {
        Af::Ip6
    } else {
        Af::Ip4
    }
}

pub(super) fn flows_json(dp: &Dataplane, f: &Forwarding) -> Value {
    let (cnat, npol) = (dp.cnat(), dp.npol());
    let table = |t: &SessionTable, now: u32, by_table: bool| {
        let mut v = Vec::new();
        t.for_each(|_, k, s| {
            let fib = if by_table {
                f.table_id_of(af(k.ip6), u32::from(k.fib))
            } else {
                u32::from(k.fib)
            };
            v.push(flow_json(k, s, now.wrapping_sub(s.last_seen), fib));
        });
        Value::Array(v)
    };
    json!({
        "cnat_sessions": table(&cnat.sessions, cnat.now(), true),
        "cnat_affinity": table(&cnat.affinity, cnat.now(), true),
        "npol_flows": table(&npol.flows, npol.now(), false),
    })
}

/// Put the flows back; entries past this process's limits (a smaller `cnat { session-max }`)
/// are left out and counted in the log. A cnat session whose table is gone is left out too.
pub(super) fn flows_restore(dp: &Dataplane, f: &Forwarding, v: &Value) -> Result<(), String> {
    let (cnat, npol) = (dp.cnat(), dp.npol());
    let ret_fib = cnat.snat.load().ret_fib_index as u16;
    let mut dropped = 0usize;
    for (key, t, now, by_table) in [
        ("cnat_sessions", &cnat.sessions, cnat.now(), true),
        ("cnat_affinity", &cnat.affinity, cnat.now(), true),
        ("npol_flows", &npol.flows, npol.now(), false),
    ] {
        for e in list(v, key)? {
            let (mut k, mut s, fib, age) = flow_of(e).ok_or_else(|| bad(key))?;
            let fib = if by_table {
                f.fib_index(af(k.ip6), fib)
            } else {
                Some(fib)
            };
            let Some(fib) = fib.and_then(|n| u16::try_from(n).ok()) else {
                dropped += 1;
                continue;
            };
            k.fib = fib;
            s.last_seen = now.wrapping_sub(age);
            if key == "cnat_sessions" && s.flags & sflags::OWNS_PORT != 0 {
                // The forward and return entries of a flow name one port, owned by one.
                let fib = rvpp_dataplane::cnat::port_fib(&k, ret_fib);
                cnat.ports.claim(k.ip6, u32::from(fib), k.proto, s.rw.sport);
            }
            if t.insert(&k, &s).is_err() {
                dropped += 1;
            }
        }
    }
    if dropped > 0 {
        log::warn!("snapshot: {dropped} flow entries over this rvpp's limits or tables left out");
    }
    Ok(())
}
