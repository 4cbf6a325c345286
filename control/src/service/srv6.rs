//! SRv6 (`sr_*` messages, `sr ...` commands): the encapsulation source, SR policies, localsids
//! and steering, with VPP's return codes (its `sr_policy_add`, `sr_policy_mod`,
//! `sr_cli_localsid` and `sr_steering_policy` answer raw negatives: -1, -2, -3, -12, -13).
//!
//! Policies and localsids live in the dataplane's published [`Srv6`] table (entry i is what
//! an `SrPolicy(i)` / `SrLocalsid(i)` path names); every edit publishes the table before a
//! route names a new entry and removes the route before the entry. Steering (a prefix in a
//! table -> a policy) is the service's own list. Every route SRv6 makes (a localsid's /128, a
//! BSID's /128, a steered prefix's) is the FIB's SR source, as VPP's: it forwards over an API
//! route for the prefix, which waits beneath it and forwards again when the SR entry goes; an
//! interface's route outranks it.

use super::{lock, rv, SvcError, SvcResult};
use crate::daemon::Dataplane;
use rvpp_dataplane::forwarding::{Af, Forwarding, Path, PathKind, Prefix};
use rvpp_dataplane::srv6::{self, Behavior, Localsid, Policy, SidList, Srv6};
use rvpp_dataplane::wire::srh::MAX_SEGMENTS;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr};

/// VPP's codes from the sr plugin.
pub mod sr_rv {
    /// Exists already (localsid add) / not found (policy, policy_mod, localsid del is -2).
    pub const EXISTS_OR_MISSING: i32 = -1;
    pub const LOCALSID_MISSING: i32 = -2;
    /// The localsid's table does not exist; a steering entry to delete does not exist.
    pub const NO_TABLE_OR_STEERING: i32 = -3;
    pub const POLICY_EXISTS: i32 = -12;
    pub const POLICY_NO_TABLE: i32 = -13;
    /// Steering to a policy that does not exist.
    pub const NO_POLICY: i32 = -2;
}

/// A steered prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Steer {
    pub table_id: u32,
    pub prefix: Prefix,
    pub policy: u32,
}

/// The steering entries by (table, prefix).
pub type Steering = BTreeMap<(u32, Prefix), Steer>;

/// What a localsid add asks for.
#[derive(Clone, Copy, Debug)]
pub struct LocalsidSpec {
    pub sid: Ipv6Addr,
    pub behavior: Behavior,
    pub end_psp: bool,
    /// The table the SID's /128 goes in.
    pub fib_table: u32,
    /// End.DT4 / DT6: the table the inner packet is looked up in (VPP's sw_if_index field).
    pub decap_table: u32,
    /// End.X / DX4 / DX6.
    pub sw_if_index: u32,
    pub nh: Option<IpAddr>,
}

fn err(retval: i32, msg: impl Into<String>) -> SvcError {
    SvcError::new(retval, msg)
}

fn table(dp: &Dataplane) -> std::sync::Arc<srv6::Table> {
    dp.feature_tables.get::<srv6::Table>()
}

fn host(a: Ipv6Addr) -> Prefix {
    Prefix::V6(u128::from(a), 128)
}

/// Table ids given as ~0 mean table 0, as VPP.
fn default_table(t: u32) -> u32 {
    if t == u32::MAX {
        0
    } else {
        t
    }
}

/// The SR path for `p` in `table` among the SR objects that claim it, each kept by its
/// object and none copied into the FIB: a steering over a localsid over a policy's BSID (a
/// steering is an explicit request for that prefix). So removing one restores the next.
fn sr_winner(sr: &Srv6, steering: &Steering, table: u32, p: Prefix) -> Option<Path> {
    let kind = if let Some(s) = steering.get(&(table, p)) {
        PathKind::SrPolicy(s.policy)
    } else if let Some(i) = sr.localsids.iter().position(|l| {
        l.as_ref()
            .is_some_and(|l| l.fib_table == table && host(Ipv6Addr::from(l.sid)) == p)
    }) {
        PathKind::SrLocalsid(i as u32)
    } else {
        let i = sr.policies.iter().position(|x| {
            x.as_ref()
                .is_some_and(|x| x.fib_table == table && host(Ipv6Addr::from(x.bsid)) == p)
        })?;
        PathKind::SrPolicy(i as u32)
    };
    Some(Path::special(kind))
}

/// Make the FIB's SR source for `p` what [`sr_winner`] says: its path, or none.
fn settle(
    f: &mut Forwarding,
    sr: &Srv6,
    steering: &Steering,
    table: u32,
    p: Prefix,
) -> SvcResult<()> {
    match sr_winner(sr, steering, table, p) {
        Some(path) => f.route_add_sr(table, p, vec![path])?,
        None => {
            let _ = f.route_del_sr(table, p);
        }
    }
    Ok(())
}

fn lowest_free<T>(v: &[Option<T>]) -> usize {
    v.iter().position(|x| x.is_none()).unwrap_or(v.len())
}

/// `sr_set_encap_source` / `set sr encaps source addr`: every SID list is rebuilt from it.
pub fn set_encap_source(dp: &Dataplane, src: Ipv6Addr) -> SvcResult<()> {
    let _g = lock(&dp.svc.srv6);
    let t = table(dp);
    let mut next = (*t.load()).clone();
    next.encap_source = u128::from(src);
    for p in next.policies.iter_mut().flatten() {
        p.rebuild(next.encap_source);
    }
    t.publish(next);
    Ok(())
}

pub fn encap_source(dp: &Dataplane) -> Ipv6Addr {
    Ipv6Addr::from(table(dp).load().encap_source)
}

/// `sr_localsid_add_del` add / `sr localsid address X behavior ...`.
pub fn localsid_add(dp: &Dataplane, s: LocalsidSpec) -> SvcResult<()> {
    localsid_add_in(dp, s, None)
}

/// A live restart's localsid, as entry `i` of the table (free), which its route names.
pub fn localsid_restore(dp: &Dataplane, i: u32, s: LocalsidSpec) -> SvcResult<()> {
    localsid_add_in(dp, s, Some(i))
}

/// Entry `at` when given must be free (and within reason: a bad snapshot's index).
fn pinned<T>(v: &[Option<T>], at: Option<u32>) -> SvcResult<usize> {
    match at {
        None => Ok(lowest_free(v)),
        Some(i) if i > u32::from(u16::MAX) || v.get(i as usize).is_some_and(|x| x.is_some()) => {
            Err(err(rv::INVALID_VALUE, format!("entry {i} is taken")))
        }
        Some(i) => Ok(i as usize),
    }
}

/// Put `x` at `i`, growing `v` as needed.
fn put_at<T>(v: &mut Vec<Option<T>>, i: usize, x: T) {
    while v.len() <= i {
        v.push(None);
    }
    v[i] = Some(x);
}

fn localsid_add_in(dp: &Dataplane, s: LocalsidSpec, at: Option<u32>) -> SvcResult<()> {
    let steering = lock(&dp.svc.srv6);
    let t = table(dp);
    let mut next = (*t.load()).clone();
    let i = pinned(&next.localsids, at)?;
    let sid = u128::from(s.sid);
    if next.localsids.iter().flatten().any(|l| l.sid == sid) {
        return Err(err(
            sr_rv::EXISTS_OR_MISSING,
            format!("localsid {} exists", s.sid),
        ));
    }
    let mut f = dp.fwd();
    if f.fib_index(Af::Ip6, s.fib_table).is_none() {
        return Err(err(
            sr_rv::NO_TABLE_OR_STEERING,
            format!("no ip6 table {}", s.fib_table),
        ));
    }
    let (decap_fib, adj) = match s.behavior {
        Behavior::DT4 | Behavior::DT6 => {
            let af = if s.behavior == Behavior::DT4 {
                Af::Ip4
            } else {
                Af::Ip6
            };
            let fib = f.fib_index(af, s.decap_table).ok_or_else(|| {
                err(
                    sr_rv::NO_TABLE_OR_STEERING,
                    format!("no {af:?} table {}", s.decap_table),
                )
            })?;
            (fib, 0)
        }
        Behavior::X | Behavior::DX4 | Behavior::DX6 => {
            let v4 = s.behavior == Behavior::DX4;
            let nh = s
                .nh
                .filter(|n| n.is_ipv4() == v4)
                .ok_or_else(|| err(rv::INVALID_VALUE, "a next hop of the behaviour's family"))?;
            (0, f.neighbour_adjacency(s.sw_if_index, nh)?)
        }
        Behavior::End => (0, 0),
    };
    f.publish();
    put_at(
        &mut next.localsids,
        i,
        Localsid {
            sid,
            behavior: s.behavior,
            end_psp: s.end_psp,
            fib_table: s.fib_table,
            decap_table: s.decap_table,
            decap_fib,
            nh: s.nh.filter(|_| s.behavior.xconnect()),
            sw_if_index: if s.behavior.xconnect() {
                s.sw_if_index
            } else {
                u32::MAX
            },
            adj,
        },
    );
    t.publish(next);
    settle(&mut f, &t.load(), &steering, s.fib_table, host(s.sid))
}

/// `sr_localsid_add_del` delete / `sr localsid del address X`.
pub fn localsid_del(dp: &Dataplane, sid: Ipv6Addr) -> SvcResult<()> {
    let steering = lock(&dp.svc.srv6);
    let t = table(dp);
    let mut next = (*t.load()).clone();
    let Some(i) = next
        .localsids
        .iter()
        .position(|l| l.as_ref().is_some_and(|l| l.sid == u128::from(sid)))
    else {
        return Err(err(sr_rv::LOCALSID_MISSING, format!("no localsid {sid}")));
    };
    let fib_table = next.localsids[i].as_ref().map_or(0, |l| l.fib_table);
    next.localsids[i] = None;
    // The route moves to whatever else claims the /128 (or goes) before the entry does.
    let _ = settle(&mut dp.fwd(), &next, &steering, fib_table, host(sid));
    t.publish(next);
    Ok(())
}

pub fn localsids(dp: &Dataplane) -> Vec<Localsid> {
    table(dp)
        .load()
        .localsids
        .iter()
        .flatten()
        .cloned()
        .collect()
}

fn sl_taken(sr: &Srv6, n: u32) -> bool {
    sr.policies
        .iter()
        .flatten()
        .any(|p| p.sid_lists.iter().any(|l| l.index == n))
}

/// The next free segment-list index over every policy.
fn free_sl_index(sr: &Srv6) -> u32 {
    super::lowest_free(|n| sl_taken(sr, n))
}

fn sid_list(
    sr: &Srv6,
    weight: u32,
    sids: &[Ipv6Addr],
    reduced: bool,
    at: Option<u32>,
) -> SvcResult<SidList> {
    let index = match at {
        None => free_sl_index(sr),
        Some(n) if sl_taken(sr, n) => {
            return Err(err(rv::INVALID_VALUE, format!("SID list {n} exists")))
        }
        Some(n) => n,
    };
    if sids.is_empty() || sids.len() > MAX_SEGMENTS {
        return Err(err(rv::INVALID_VALUE, "a SID list holds 1 to 16 SIDs"));
    }
    // VPP: ~0 (and here 0) means the default weight, 1.
    let weight = if weight == 0 || weight == u32::MAX {
        1
    } else {
        weight
    };
    let v = sids.iter().map(|s| u128::from(*s)).collect();
    SidList::new(index, weight, v, sr.encap_source, reduced)
        .ok_or_else(|| err(rv::INVALID_VALUE, "bad SID list"))
}

/// What `sr_policy_add` / `sr policy add` asks for.
#[derive(Clone, Debug)]
pub struct PolicySpec {
    pub bsid: Ipv6Addr,
    pub weight: u32,
    pub is_encap: bool,
    pub is_spray: bool,
    pub reduced: bool,
    pub fib_table: u32,
    pub sids: Vec<Ipv6Addr>,
}

/// `sr_policy_add`: the policy with its first SID list, and its BSID /128 in `fib_table`.
pub fn policy_add(dp: &Dataplane, s: PolicySpec) -> SvcResult<u32> {
    policy_add_in(dp, s, None)
}

/// A live restart's policy, as entry `i` (free) with its first SID list under `sl_index`
/// (free); its other lists come back through [`sid_list_restore`].
pub fn policy_restore(dp: &Dataplane, i: u32, s: PolicySpec, sl_index: u32) -> SvcResult<()> {
    policy_add_in(dp, s, Some((i, sl_index))).map(|_| ())
}

/// A live restart's SID list `sl_index` (free) of policy entry `i`, as `sr_policy_mod` adds
/// one.
pub fn sid_list_restore(
    dp: &Dataplane,
    i: u32,
    sl_index: u32,
    weight: u32,
    sids: &[Ipv6Addr],
) -> SvcResult<()> {
    list_add(dp, Ipv6Addr::UNSPECIFIED, i, weight, sids, Some(sl_index))
}

fn policy_add_in(dp: &Dataplane, s: PolicySpec, at: Option<(u32, u32)>) -> SvcResult<u32> {
    let steering = lock(&dp.svc.srv6);
    let t = table(dp);
    let mut next = (*t.load()).clone();
    let i = pinned(&next.policies, at.map(|a| a.0))?;
    let bsid = u128::from(s.bsid);
    if next.policies.iter().flatten().any(|p| p.bsid == bsid) {
        return Err(err(
            sr_rv::POLICY_EXISTS,
            format!("policy {} exists", s.bsid),
        ));
    }
    if !s.is_encap {
        return Err(err(
            rv::UNIMPLEMENTED,
            "SRH insertion policies are not implemented",
        ));
    }
    let fib_table = default_table(s.fib_table);
    let mut f = dp.fwd();
    let encap_fib = f
        .fib_index(Af::Ip6, fib_table)
        .ok_or_else(|| err(sr_rv::POLICY_NO_TABLE, format!("no ip6 table {fib_table}")))?;
    let mut p = Policy::new(bsid, s.is_encap, s.is_spray, fib_table, encap_fib);
    p.reduced = s.reduced;
    p.sid_lists.push(sid_list(
        &next,
        s.weight,
        &s.sids,
        s.reduced,
        at.map(|a| a.1),
    )?);
    p.rebalance();
    put_at(&mut next.policies, i, p);
    t.publish(next);
    settle(&mut f, &t.load(), &steering, fib_table, host(s.bsid))?;
    Ok(i as u32)
}

/// Which policy a request names: its BSID, else (BSID ::) its index.
fn find_policy(sr: &Srv6, bsid: Ipv6Addr, index: u32) -> SvcResult<usize> {
    let b = u128::from(bsid);
    let i = if b != 0 {
        sr.policies
            .iter()
            .position(|p| p.as_ref().is_some_and(|p| p.bsid == b))
    } else {
        sr.policy(index).map(|_| index as usize)
    };
    i.ok_or_else(|| err(sr_rv::EXISTS_OR_MISSING, format!("no policy {bsid}")))
}

/// `sr_policy_mod`'s operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyOp {
    AddList,
    DelList,
    SetWeight,
}

/// `sr_policy_mod` / `sr policy mod`: add a SID list, remove one by `sl_index`, or set its
/// weight.
pub fn policy_mod(
    dp: &Dataplane,
    bsid: Ipv6Addr,
    index: u32,
    op: PolicyOp,
    sl_index: u32,
    weight: u32,
    sids: &[Ipv6Addr],
) -> SvcResult<()> {
    if op == PolicyOp::AddList {
        return list_add(dp, bsid, index, weight, sids, None);
    }
    let _g = lock(&dp.svc.srv6);
    let t = table(dp);
    let mut next = (*t.load()).clone();
    let i = find_policy(&next, bsid, index)?;
    let missing = || err(sr_rv::EXISTS_OR_MISSING, format!("no SID list {sl_index}"));
    match op {
        PolicyOp::AddList => {}
        PolicyOp::DelList => {
            let p = next.policies[i].as_mut().ok_or_else(missing)?;
            let at = p
                .sid_lists
                .iter()
                .position(|l| l.index == sl_index)
                .ok_or_else(missing)?;
            p.sid_lists.remove(at);
        }
        PolicyOp::SetWeight => {
            let p = next.policies[i].as_mut().ok_or_else(missing)?;
            let l = p
                .sid_lists
                .iter_mut()
                .find(|l| l.index == sl_index)
                .ok_or_else(missing)?;
            l.weight = weight.max(1);
        }
    }
    if let Some(p) = next.policies[i].as_mut() {
        p.rebalance();
    }
    t.publish(next);
    Ok(())
}

/// `sr_policy_mod`'s AddList: a SID list (under `at` when given) for the policy named.
fn list_add(
    dp: &Dataplane,
    bsid: Ipv6Addr,
    index: u32,
    weight: u32,
    sids: &[Ipv6Addr],
    at: Option<u32>,
) -> SvcResult<()> {
    let _g = lock(&dp.svc.srv6);
    let t = table(dp);
    let mut next = (*t.load()).clone();
    let i = find_policy(&next, bsid, index)?;
    let reduced = next.policies[i].as_ref().is_some_and(|p| p.reduced);
    let l = sid_list(&next, weight, sids, reduced, at)?;
    if let Some(p) = next.policies[i].as_mut() {
        p.sid_lists.push(l);
        p.rebalance();
    }
    t.publish(next);
    Ok(())
}

/// `sr_policy_del` / `sr policy del bsid X`: its steering goes with it, then its BSID route.
pub fn policy_del(dp: &Dataplane, bsid: Ipv6Addr, index: u32) -> SvcResult<()> {
    let mut steering = lock(&dp.svc.srv6);
    let t = table(dp);
    let mut next = (*t.load()).clone();
    let i = find_policy(&next, bsid, index)?;
    let mut f = dp.fwd();
    let gone: Vec<(u32, Prefix)> = steering
        .iter()
        .filter(|(_, s)| s.policy == i as u32)
        .map(|(k, _)| *k)
        .collect();
    for k in gone {
        if let Some(s) = steering.remove(&k) {
            // A localsid or BSID of the prefix takes the SR source back, else what the
            // steering stood over forwards again.
            let _ = settle(&mut f, &next, &steering, s.table_id, s.prefix);
        }
    }
    if let Some(p) = next.policies[i].take() {
        let _ = settle(
            &mut f,
            &next,
            &steering,
            p.fib_table,
            host(Ipv6Addr::from(p.bsid)),
        );
    }
    t.publish(next);
    Ok(())
}

pub fn policies(dp: &Dataplane) -> Vec<(u32, Policy)> {
    let sr = table(dp).load();
    sr.policies
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.clone().map(|p| (i as u32, p)))
        .collect()
}

/// `sr_steering_add_del` add / `sr steer l3 P via bsid X`: L3 traffic to `prefix` in
/// `table_id` is encapsulated by the policy. `ip6` is the traffic type (IPv6 = 6, IPv4 = 4).
pub fn steer_add(
    dp: &Dataplane,
    bsid: Ipv6Addr,
    index: u32,
    table_id: u32,
    prefix: Prefix,
) -> SvcResult<()> {
    let mut steering = lock(&dp.svc.srv6);
    let sr = table(dp).load();
    let i = find_policy(&sr, bsid, index).map_err(|e| err(sr_rv::NO_POLICY, e.msg))?;
    let table_id = default_table(table_id);
    let prefix = prefix.masked();
    let mut f = dp.fwd();
    if f.fib_index(prefix.af(), table_id).is_none() {
        return Err(err(rv::NO_SUCH_FIB, format!("no table {table_id}")));
    }
    f.route_add_sr(
        table_id,
        prefix,
        vec![Path::special(PathKind::SrPolicy(i as u32))],
    )?;
    steering.insert(
        (table_id, prefix),
        Steer {
            table_id,
            prefix,
            policy: i as u32,
        },
    );
    Ok(())
}

/// `sr_steering_add_del` delete / `sr steer del l3 P`.
pub fn steer_del(dp: &Dataplane, table_id: u32, prefix: Prefix) -> SvcResult<()> {
    let mut steering = lock(&dp.svc.srv6);
    let key = (default_table(table_id), prefix.masked());
    let s = steering.remove(&key).ok_or_else(|| {
        err(
            sr_rv::NO_TABLE_OR_STEERING,
            format!("{prefix} is not steered"),
        )
    })?;
    let _ = settle(
        &mut dp.fwd(),
        &table(dp).load(),
        &steering,
        s.table_id,
        s.prefix,
    );
    Ok(())
}

/// Every steering entry, with its policy's BSID.
pub fn steering(dp: &Dataplane) -> Vec<(Steer, Ipv6Addr)> {
    let sr = table(dp).load();
    lock(&dp.svc.srv6)
        .values()
        .map(|s| {
            let bsid = sr.policy(s.policy).map_or(0, |p| p.bsid);
            (s.clone(), Ipv6Addr::from(bsid))
        })
        .collect()
}
