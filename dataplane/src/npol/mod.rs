//! npol: Calico's network policies as calico-vpp programs VPP's npol plugin: ipsets, rules,
//! policies (ordered inbound and outbound rule lists) and per-interface configuration, and
//! the evaluator that gives a packet's verdict ([`verdict`]).
//!
//! One [`Npol`] is the single source of truth, a feature table (`FeatureTables::get::<Npol>()`):
//! control edits it, each edit is checked whole (a bad reference or value changes nothing) and
//! published whole ([`Published`]), so workers never stop and a change reaches the next
//! evaluation. The feature nodes (`crate::nodes::npol`) evaluate a flow's first packet only
//! and cache the verdict in [`Npol::flows`].

pub mod index;
pub mod ipset;
pub mod rule;

use crate::cnat::session::SessionTable;
use crate::rcu::Published;
use index::RuleIndex;
use ipset::{IpSet, IpSetKind, IpSets, Member};
use rule::{Action, MatchData, Rule};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// A network: address and prefix length. Host bits are cleared when it is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Net {
    pub addr: IpAddr,
    pub len: u8,
}

impl Net {
    /// `addr/len`, or None when `len` is too long for the family.
    pub fn new(addr: IpAddr, len: u8) -> Option<Self> {
        let addr = match addr {
            IpAddr::V4(a) if len <= 32 => IpAddr::V4((u32::from(a) & rule::mask32(len)).into()),
            IpAddr::V6(a) if len <= 128 => IpAddr::V6((u128::from(a) & rule::mask128(len)).into()),
            _ => return None,
        };
        Some(Self { addr, len })
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// What a rule looks at in a packet. `sport`/`dport` are 0 for protocols without ports;
/// `icmp_type`/`icmp_code` are the ICMP (or ICMPv6) header's, 0 for other protocols.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FiveTuple {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub icmp_type: u8,
    pub icmp_code: u8,
}

impl FiveTuple {
    #[inline]
    pub fn is_icmp(&self) -> bool {
        self.proto == crate::wire::IP_PROTO_ICMP || self.proto == crate::wire::IP_PROTO_IPV6_ICMP
    }
}

/// A policy: rules for packets received on the interface (`is_inbound` items) and for packets
/// sent on it, each walked in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub inbound: Vec<u32>,
    pub outbound: Vec<u32>,
}

/// `npol_policy_default`: what happens when no policy (or profile) decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyDefault {
    Allow,
    Deny,
    Pass,
}

impl PolicyDefault {
    pub fn from_api(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Allow),
            1 => Some(Self::Deny),
            2 => Some(Self::Pass),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Pass => "pass",
        }
    }
}

/// Calico's tiers, as rvpp's extension of `npol_configure_policies`: one of these ids in an
/// rx or tx policy list ends a tier. With markers, each tier is walked as felix orders it: the
/// first ALLOW or DENY decides, PASS jumps to the next tier, and a tier where no policy decided
/// ends with its marker's action (Calico's end-of-tier deny, or a tier whose default action is
/// Pass); after the last tier come the profiles. A list without markers is npol's flat list
/// (PASS skips every later policy, as calico-vpp sends today).
pub mod tier {
    /// End of a tier whose default action is Deny (Calico's end-of-tier deny).
    pub const END_DENY: u32 = 0xffff_fffe;
    /// End of a tier whose default action is Pass.
    pub const END_PASS: u32 = 0xffff_fffd;

    pub fn is_marker(id: u32) -> bool {
        id == END_DENY || id == END_PASS
    }
}

/// Host endpoints' untracked (doNotTrack) and pre-DNAT policies, as rvpp's extension of
/// `npol_configure_policies` (the unchanged agent never sends these ids). A list a host
/// endpoint (`invert_rx_tx=1`) walks may start with sections, each ended by its marker:
/// `[untracked.., END_UNTRACKED, pre-DNAT.., END_PRE_DNAT, normal..]`. Both are optional, and
/// a list without them is all normal. Pre-DNAT sections are only in the list received
/// packets walk: with `invert_rx_tx=1` that is the tx list (Calico's ingress policies).
///
/// Untracked policies judge every packet alone, first on the interface's arc, and cache
/// nothing; pre-DNAT ones judge a flow's first packet before cnat's DNAT and cache the verdict
/// under [`PREDNAT_KEY`]. In both the first ALLOW or DENY decides and skips the later stages;
/// otherwise (no match, PASS) the packet goes on to the next stage: no default, no profiles.
pub mod section {
    pub const END_UNTRACKED: u32 = 0xffff_fffc;
    pub const END_PRE_DNAT: u32 = 0xffff_fffb;

    pub fn is_marker(id: u32) -> bool {
        id == END_UNTRACKED || id == END_PRE_DNAT
    }
}

/// Every tier and section marker is at least this.
const LOWEST_MARKER: u32 = section::END_PRE_DNAT;
const _: () = assert!(
    tier::END_DENY >= LOWEST_MARKER
        && tier::END_PASS >= LOWEST_MARKER
        && section::END_UNTRACKED >= LOWEST_MARKER
);

/// Set in a flow key's interface field for pre-DNAT verdicts, so that they never meet
/// npol-rx's verdicts for the same 5-tuple on the same interface (interfaces are < 4096).
pub const PREDNAT_KEY: u16 = 1 << 15;

/// Which stage of a host endpoint's policies a section belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Untracked,
    PreDnat,
}

/// A policy list cut at its section markers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sections<'a> {
    pub untracked: &'a [u32],
    pub prednat: &'a [u32],
    pub normal: &'a [u32],
}

/// `list`'s sections (a list without markers is all normal). No allocation: it runs per packet.
pub fn sections(list: &[u32]) -> Sections<'_> {
    fn cut(l: &[u32], m: u32) -> (&[u32], &[u32]) {
        match l.iter().position(|&id| id == m) {
            Some(i) => (l.get(..i).unwrap_or(&[]), l.get(i + 1..).unwrap_or(&[])),
            None => (&[], l),
        }
    }
    let (untracked, rest) = cut(list, section::END_UNTRACKED);
    let (prednat, normal) = cut(rest, section::END_PRE_DNAT);
    Sections {
        untracked,
        prednat,
        normal,
    }
}

/// Why a list's section markers are refused, if they are.
fn check_sections(c: &IfConfig) -> Result<(), NpolError> {
    if c.profiles.iter().any(|&id| section::is_marker(id)) {
        return Err(NpolError::Invalid("section markers in the profiles"));
    }
    // (list, walked by received packets)
    for (list, on_rx) in [
        (&c.rx_policies, !c.invert_rx_tx),
        (&c.tx_policies, c.invert_rx_tx),
    ] {
        let count = |m| list.iter().filter(|&&id| id == m).count();
        let (u, p) = (count(section::END_UNTRACKED), count(section::END_PRE_DNAT));
        if u + p == 0 {
            continue;
        }
        if !c.invert_rx_tx {
            return Err(NpolError::Invalid(
                "untracked and pre-DNAT sections are for host endpoints (invert_rx_tx)",
            ));
        }
        if u > 1 || p > 1 {
            return Err(NpolError::Invalid("a section marker repeated"));
        }
        if p == 1 && !on_rx {
            return Err(NpolError::Invalid(
                "pre-DNAT policies in the list sent packets walk",
            ));
        }
        let pos = |m| list.iter().position(|&id| id == m);
        if let (Some(u), Some(p)) = (pos(section::END_UNTRACKED), pos(section::END_PRE_DNAT)) {
            if p < u {
                return Err(NpolError::Invalid(
                    "pre-DNAT section before the untracked one",
                ));
            }
        }
        let s = sections(list);
        if s.untracked
            .iter()
            .chain(s.prednat)
            .any(|&id| tier::is_marker(id))
        {
            return Err(NpolError::Invalid(
                "tier markers in an untracked or pre-DNAT section",
            ));
        }
    }
    Ok(())
}

/// One interface's configuration (`npol_configure_policies`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfConfig {
    pub rx_policies: Vec<u32>,
    pub tx_policies: Vec<u32>,
    pub profiles: Vec<u32>,
    /// Uplinks and tunnels (host endpoints): received packets walk the tx policies and the
    /// policies' outbound rules, sent packets the rx policies and inbound rules.
    pub invert_rx_tx: bool,
    pub policy_default_rx: PolicyDefault,
    pub policy_default_tx: PolicyDefault,
    pub profile_default_rx: PolicyDefault,
    pub profile_default_tx: PolicyDefault,
}

/// Which way a packet crosses the interface: received on it (pod egress) or sent on it (pod
/// ingress).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Rx,
    Tx,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
}

/// Everything the evaluator reads, published whole.
#[derive(Clone, Debug, Default)]
pub struct NpolTables {
    pub ipsets: IpSets,
    pub rules: BTreeMap<u32, Arc<Rule>>,
    pub policies: BTreeMap<u32, Arc<Policy>>,
    pub ifaces: BTreeMap<u32, Arc<IfConfig>>,
    /// Each policy's (inbound, outbound) rules indexed for new flows, rebuilt when the policy
    /// or one of its rules changes (ipsets are read at match time).
    pub index: BTreeMap<u32, Arc<(RuleIndex, RuleIndex)>>,
    /// `ifaces` and `index` by id (below [`DENSE_IDS`]), redone by every edit, so that a
    /// verdict finds them without a tree search. An empty slot says nothing: the map decides.
    dense_ifaces: Vec<Option<Arc<IfConfig>>>,
    dense_index: Vec<Option<Arc<(RuleIndex, RuleIndex)>>>,
}

/// Interface and policy ids below this have a slot in [`NpolTables`]' dense copies (ids come
/// from `free_id`, so they are the few lowest, but a restore may name any).
const DENSE_IDS: u32 = 1 << 12;

/// `m`'s entries below [`DENSE_IDS`], by id.
fn dense<V: Clone>(m: &BTreeMap<u32, V>) -> Vec<Option<V>> {
    let len = m
        .range(..DENSE_IDS)
        .next_back()
        .map_or(0, |(&k, _)| k as usize + 1);
    let mut v = vec![None; len];
    for (&k, x) in m.range(..DENSE_IDS) {
        if let Some(slot) = v.get_mut(k as usize) {
            *slot = Some(x.clone());
        }
    }
    v
}

impl NpolTables {
    fn redo_dense(&mut self) {
        self.dense_ifaces = dense(&self.ifaces);
        self.dense_index = dense(&self.index);
    }

    #[inline(always)]
    fn iface(&self, sw: u32) -> Option<&Arc<IfConfig>> {
        match self.dense_ifaces.get(sw as usize) {
            Some(Some(c)) => Some(c),
            _ => self.ifaces.get(&sw),
        }
    }

    #[inline(always)]
    fn policy_index(&self, id: u32) -> Option<&Arc<(RuleIndex, RuleIndex)>> {
        match self.dense_index.get(id as usize) {
            Some(Some(ix)) => Some(ix),
            _ => self.index.get(&id),
        }
    }

    fn reindex(&mut self, policy: u32) {
        match self.policies.get(&policy) {
            Some(p) => {
                let ix = (
                    RuleIndex::build(&p.inbound, &self.rules),
                    RuleIndex::build(&p.outbound, &self.rules),
                );
                self.index.insert(policy, Arc::new(ix));
            }
            None => {
                self.index.remove(&policy);
            }
        }
    }
}

/// Why an edit was refused. The tables are unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NpolError {
    NoSuchIpset(u32),
    NoSuchRule(u32),
    NoSuchPolicy(u32),
    /// A member not in the set (bulk delete).
    NoSuchMember(u32),
    /// A member or rule entry names an ipset of the wrong kind.
    WrongIpsetKind {
        set: u32,
        kind: IpSetKind,
    },
    /// Deleting something a rule, policy or interface still names.
    InUse(&'static str, u32),
    Invalid(&'static str),
}

impl fmt::Display for NpolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSuchIpset(i) => write!(f, "no ipset {i}"),
            Self::NoSuchRule(i) => write!(f, "no rule {i}"),
            Self::NoSuchPolicy(i) => write!(f, "no policy {i}"),
            Self::NoSuchMember(i) => write!(f, "a member to delete is not in ipset {i}"),
            Self::WrongIpsetKind { set, kind } => {
                write!(
                    f,
                    "ipset {set} holds {} members, not what is asked",
                    kind.name()
                )
            }
            Self::InUse(what, i) => write!(f, "{what} {i} is in use"),
            Self::Invalid(why) => write!(f, "invalid: {why}"),
        }
    }
}

/// Flows whose verdict is cached, by default.
pub const DEFAULT_MAX_FLOWS: usize = 1 << 16;

pub struct Npol {
    pub tables: Published<NpolTables>,
    /// Cached verdicts by (5-tuple, interface, direction), shared by every worker because a
    /// reply can arrive on another worker's queue.
    pub flows: SessionTable,
    /// First fragments' verdicts by (addresses, protocol, fragment id, interface, direction),
    /// for the fragments after them, which carry no ports.
    pub fragments: SessionTable,
    /// Serialises control's edits (workers never take it).
    edit: Mutex<()>,
    tsc_hz: u64,
    /// Moves on when cached verdicts are forgotten ([`Self::flush_flows`],
    /// [`Self::unconfigure`]): the copies npol keeps on cnat's sessions carry the value they
    /// were made under and count only while it is current.
    verdict_epoch: AtomicU32,
}

/// Datagrams in flight whose first fragment was judged.
const FRAGMENT_SLOTS: usize = 4096;
/// Seconds a first fragment's verdict waits for the rest.
pub const FRAGMENT_TIMEOUT: u32 = 5;

/// Seconds an idle cached verdict lives: TCP flows, other flows (cnat's defaults).
pub const FLOW_TIMEOUT_TCP: u32 = 3600;
pub const FLOW_TIMEOUT_OTHER: u32 = 30;

impl Default for Npol {
    fn default() -> Self {
        Self::with_max_flows(DEFAULT_MAX_FLOWS)
    }
}

/// The lowest id `map` does not use (VPP's pools reuse freed indices).
fn free_id<V>(map: &BTreeMap<u32, V>) -> u32 {
    let mut id = 0;
    for &k in map.keys() {
        if k != id {
            break;
        }
        id += 1;
    }
    id
}

impl Npol {
    pub fn with_max_flows(max: usize) -> Self {
        Self {
            tables: Published::default(),
            flows: SessionTable::new(max * 2, max),
            fragments: SessionTable::new(FRAGMENT_SLOTS * 2, FRAGMENT_SLOTS),
            edit: Mutex::new(()),
            tsc_hz: crate::runtime::tsc_hz().max(1),
            verdict_epoch: AtomicU32::new(0),
        }
    }

    /// Seconds on the flow cache's clock for a TSC reading.
    #[inline(always)]
    pub fn secs(&self, tsc: u64) -> u32 {
        (tsc / self.tsc_hz) as u32
    }
    pub fn now(&self) -> u32 {
        self.secs(crate::runtime::clocks())
    }

    /// Forget cached verdicts idle past their timeout at `now` (seconds); returns how many.
    /// Workers keep running: entries go by CAS on their slot.
    pub fn scan(&self, now: u32) -> usize {
        self.fragments
            .expire_if(|_, s| now.wrapping_sub(s.last_seen) > FRAGMENT_TIMEOUT);
        self.flows
            .expire_if(|k, s| {
                let t = if k.proto == crate::wire::IP_PROTO_TCP {
                    FLOW_TIMEOUT_TCP
                } else {
                    FLOW_TIMEOUT_OTHER
                };
                now.wrapping_sub(s.last_seen) > t
            })
            .len()
    }

    /// Forget every cached verdict: established flows are evaluated again.
    pub fn flush_flows(&self) -> usize {
        let n = self.flows.remove_if(|_, _| true).len();
        self.forget_session_verdicts();
        n
    }

    /// The value that the verdicts copied onto cnat's sessions must carry to count.
    #[inline(always)]
    pub fn verdict_epoch(&self) -> u32 {
        self.verdict_epoch.load(Ordering::Acquire)
    }

    /// Void the copies on cnat's sessions, after the entries they copy were removed: a
    /// worker that reads the new epoch sees the removals, and what it copies from then on
    /// carries the new epoch.
    fn forget_session_verdicts(&self) {
        self.verdict_epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Apply `f` to a copy of the tables and publish it if `f` succeeds.
    fn edit<R>(
        &self,
        f: impl FnOnce(&mut NpolTables) -> Result<R, NpolError>,
    ) -> Result<R, NpolError> {
        let _g = self.edit.lock().unwrap_or_else(|e| e.into_inner());
        let mut t = (*self.tables.load()).clone();
        let r = f(&mut t)?;
        t.redo_dense();
        self.tables.publish(t);
        Ok(r)
    }

    pub fn ipset_create(&self, kind: IpSetKind) -> u32 {
        self.edit(|t| {
            let id = free_id(&t.ipsets);
            t.ipsets.insert(id, Arc::new(IpSet::new(kind)));
            Ok(id)
        })
        .unwrap_or(u32::MAX)
    }

    /// Add or delete `members` together: if one is of the wrong kind (or, deleting, absent),
    /// none is applied.
    pub fn ipset_add_del(&self, id: u32, add: bool, members: &[Member]) -> Result<(), NpolError> {
        self.edit(|t| {
            let set = t.ipsets.get_mut(&id).ok_or(NpolError::NoSuchIpset(id))?;
            // Checked before the copy-on-write, so a refused edit copies nothing.
            if members.iter().any(|m| m.kind() != set.kind) {
                return Err(NpolError::WrongIpsetKind {
                    set: id,
                    kind: set.kind,
                });
            }
            if !add && members.iter().any(|m| !set.contains_member(m)) {
                return Err(NpolError::NoSuchMember(id));
            }
            let set = Arc::make_mut(set);
            for m in members {
                if add {
                    set.insert(*m);
                } else {
                    set.remove(m);
                }
            }
            Ok(())
        })
    }

    pub fn ipset_delete(&self, id: u32) -> Result<(), NpolError> {
        self.edit(|t| {
            if !t.ipsets.contains_key(&id) {
                return Err(NpolError::NoSuchIpset(id));
            }
            if t.rules.values().any(|r| r.ipsets().any(|s| s == id)) {
                return Err(NpolError::InUse("ipset", id));
            }
            t.ipsets.remove(&id);
            Ok(())
        })
    }

    fn check_rule(t: &NpolTables, r: &Rule) -> Result<(), NpolError> {
        for e in &r.entries {
            let (id, ok): (u32, fn(IpSetKind) -> bool) = match e.data {
                MatchData::IpSet(id) => (id, |k| k != IpSetKind::IpAndPort),
                MatchData::PortIpSet(id) => (id, |k| k == IpSetKind::IpAndPort),
                MatchData::PortRange(lo, hi) if lo > hi => {
                    return Err(NpolError::Invalid("port range start after its end"))
                }
                _ => continue,
            };
            let set = t.ipsets.get(&id).ok_or(NpolError::NoSuchIpset(id))?;
            if !ok(set.kind) {
                return Err(NpolError::WrongIpsetKind {
                    set: id,
                    kind: set.kind,
                });
            }
        }
        Ok(())
    }

    pub fn rule_create(&self, r: Rule) -> Result<u32, NpolError> {
        self.edit(|t| {
            Self::check_rule(t, &r)?;
            let id = free_id(&t.rules);
            t.rules.insert(id, Arc::new(r));
            Ok(id)
        })
    }

    pub fn rule_update(&self, id: u32, r: Rule) -> Result<(), NpolError> {
        self.edit(|t| {
            if !t.rules.contains_key(&id) {
                return Err(NpolError::NoSuchRule(id));
            }
            Self::check_rule(t, &r)?;
            t.rules.insert(id, Arc::new(r));
            let users: Vec<u32> = t
                .policies
                .iter()
                .filter(|(_, p)| p.inbound.contains(&id) || p.outbound.contains(&id))
                .map(|(&pid, _)| pid)
                .collect();
            for pid in users {
                t.reindex(pid);
            }
            Ok(())
        })
    }

    pub fn rule_delete(&self, id: u32) -> Result<(), NpolError> {
        self.edit(|t| {
            if !t.rules.contains_key(&id) {
                return Err(NpolError::NoSuchRule(id));
            }
            let used = t
                .policies
                .values()
                .any(|p| p.inbound.contains(&id) || p.outbound.contains(&id));
            if used {
                return Err(NpolError::InUse("rule", id));
            }
            t.rules.remove(&id);
            Ok(())
        })
    }

    fn check_policy(t: &NpolTables, p: &Policy) -> Result<(), NpolError> {
        match p
            .inbound
            .iter()
            .chain(&p.outbound)
            .find(|r| !t.rules.contains_key(r))
        {
            Some(&r) => Err(NpolError::NoSuchRule(r)),
            None => Ok(()),
        }
    }

    pub fn policy_create(&self, p: Policy) -> Result<u32, NpolError> {
        self.edit(|t| {
            Self::check_policy(t, &p)?;
            let id = free_id(&t.policies);
            t.policies.insert(id, Arc::new(p));
            t.reindex(id);
            Ok(id)
        })
    }

    pub fn policy_update(&self, id: u32, p: Policy) -> Result<(), NpolError> {
        self.edit(|t| {
            if !t.policies.contains_key(&id) {
                return Err(NpolError::NoSuchPolicy(id));
            }
            Self::check_policy(t, &p)?;
            t.policies.insert(id, Arc::new(p));
            t.reindex(id);
            Ok(())
        })
    }

    pub fn policy_delete(&self, id: u32) -> Result<(), NpolError> {
        self.edit(|t| {
            if !t.policies.contains_key(&id) {
                return Err(NpolError::NoSuchPolicy(id));
            }
            let used = t.ifaces.values().any(|c| {
                c.rx_policies.contains(&id)
                    || c.tx_policies.contains(&id)
                    || c.profiles.contains(&id)
            });
            if used {
                return Err(NpolError::InUse("policy", id));
            }
            t.policies.remove(&id);
            t.reindex(id);
            Ok(())
        })
    }

    /// Set interface `sw`'s configuration (the caller checked the interface exists).
    pub fn configure(&self, sw: u32, c: IfConfig) -> Result<(), NpolError> {
        self.edit(|t| {
            Self::check_if_config(t, &c)?;
            t.ifaces.insert(sw, Arc::new(c));
            Ok(())
        })
    }

    fn check_if_config(t: &NpolTables, c: &IfConfig) -> Result<(), NpolError> {
        let mut ids = c
            .rx_policies
            .iter()
            .chain(&c.tx_policies)
            .chain(&c.profiles);
        let marker = |p: u32| tier::is_marker(p) || section::is_marker(p);
        let missing = |p: &&u32| !t.policies.contains_key(p) && !marker(**p);
        if let Some(&p) = ids.find(missing) {
            return Err(NpolError::NoSuchPolicy(p));
        }
        check_sections(c)
    }

    /// Put back ipsets, rules, policies and interface configurations under the ids they had (a
    /// live restart's snapshot), into tables with none: ids given later are the lowest free
    /// ones, as before. Each is checked as its create would check it (a rule against the
    /// ipsets, a policy against the rules, a configuration against the policies); refused,
    /// changing nothing, on the first that fails, a repeated id, or tables not empty.
    pub fn restore(
        &self,
        ipsets: Vec<(u32, IpSetKind, Vec<Member>)>,
        rules: Vec<(u32, Rule)>,
        policies: Vec<(u32, Policy)>,
        ifaces: Vec<(u32, IfConfig)>,
    ) -> Result<(), NpolError> {
        self.edit(|t| {
            let empty = t.ipsets.is_empty()
                && t.rules.is_empty()
                && t.policies.is_empty()
                && t.ifaces.is_empty();
            if !empty {
                return Err(NpolError::Invalid("npol tables not empty"));
            }
            let twice = NpolError::Invalid("an id given twice");
            for (id, kind, members) in ipsets {
                if members.iter().any(|m| m.kind() != kind) {
                    return Err(NpolError::WrongIpsetKind { set: id, kind });
                }
                let mut set = IpSet::new(kind);
                for m in members {
                    set.insert(m);
                }
                if t.ipsets.insert(id, Arc::new(set)).is_some() {
                    return Err(twice);
                }
            }
            for (id, r) in rules {
                Self::check_rule(t, &r)?;
                if t.rules.insert(id, Arc::new(r)).is_some() {
                    return Err(twice);
                }
            }
            for (id, p) in policies {
                Self::check_policy(t, &p)?;
                if t.policies.insert(id, Arc::new(p)).is_some() {
                    return Err(twice);
                }
                t.reindex(id);
            }
            for (sw, c) in ifaces {
                Self::check_if_config(t, &c)?;
                if t.ifaces.insert(sw, Arc::new(c)).is_some() {
                    return Err(twice);
                }
            }
            Ok(())
        })
    }

    /// Drop interface `sw`'s configuration and its cached verdicts (the interface was
    /// deleted; a new one given its index starts clean): it allows all again.
    pub fn unconfigure(&self, sw: u32) -> bool {
        let had = self
            .edit(|t| Ok(t.ifaces.remove(&sw).is_some()))
            .unwrap_or(false);
        self.flows
            .remove_if(|k, _| u32::from(k.fib & !PREDNAT_KEY) == sw);
        self.forget_session_verdicts();
        had
    }
}

/// The first rule of policy `id`'s list for this direction that matches `p`, as its action;
/// None also when there is no such policy.
#[inline(never)]
fn match_policy(t: &NpolTables, id: u32, inbound: bool, p: &FiveTuple) -> Option<Action> {
    match t.policy_index(id) {
        Some(ix) => {
            let ix = if inbound { &ix.0 } else { &ix.1 };
            ix.first_match(&t.ipsets, p)
        }
        None => match_unindexed(t, id, inbound, p),
    }
}

/// [`match_policy`] for tables built by hand (tests), which carry no index: walk the rules.
#[cold]
#[inline(never)]
fn match_unindexed(t: &NpolTables, id: u32, inbound: bool, p: &FiveTuple) -> Option<Action> {
    let policy = t.policies.get(&id)?;
    let rules = if inbound {
        &policy.inbound
    } else {
        &policy.outbound
    };
    rules
        .iter()
        .filter_map(|id| t.rules.get(id))
        .find(|r| r.matches(&t.ipsets, p))
        .map(|r| r.action)
}

/// What happens to `p` crossing interface `sw` in direction `dir`, in npol's order: the
/// direction's policies in order, where the first ALLOW or DENY decides, PASS goes to the
/// profiles and LOG goes on to the next policy; then the policy default (ALLOW, DENY, or PASS
/// to the profiles); then the profiles the same way; then the profile default. An interface
/// without configuration allows everything.
///
/// As npol: `invert_rx_tx` swaps which policy list and which rules of each policy are walked,
/// not which defaults apply. Where npol leaves the verdict unset (PASS in a profile, a PASS
/// profile default) this denies.
pub fn verdict(t: &NpolTables, sw: u32, dir: Direction, p: &FiveTuple) -> Verdict {
    let Some(c) = t.iface(sw) else {
        return Verdict::Allow;
    };
    let rx = dir == Direction::Rx;
    // invert_rx_tx picks the other direction's policy list and rules; the defaults stay.
    let inbound = rx ^ c.invert_rx_tx;
    let list = if inbound {
        &c.rx_policies
    } else {
        &c.tx_policies
    };
    // One scan for the common list, with neither sections nor tiers.
    let (policies, tiered) = if list.iter().all(|&id| id < LOWEST_MARKER) {
        (&list[..], false)
    } else {
        let normal = sections(list).normal;
        (normal, normal.iter().any(|&id| tier::is_marker(id)))
    };
    let (policy_default, profile_default) = if rx {
        (c.policy_default_rx, c.profile_default_rx)
    } else {
        (c.policy_default_tx, c.profile_default_tx)
    };
    let mut to_profiles = tiered;
    if !tiered {
        // No tier: the first ALLOW or DENY decides, a PASS goes to the profiles.
        for &id in policies {
            match match_policy(t, id, inbound, p) {
                Some(Action::Allow) => return Verdict::Allow,
                Some(Action::Deny) => return Verdict::Deny,
                Some(Action::Pass) => {
                    to_profiles = true;
                    break;
                }
                Some(Action::Log) | None => {}
            }
        }
    }
    let mut passing = false;
    for &id in policies.iter().take_while(|_| tiered) {
        if tier::is_marker(id) {
            // The end of a tier: reached undecided, its default acts (after a PASS, none).
            if !passing && id == tier::END_DENY {
                return Verdict::Deny;
            }
            passing = false;
            continue;
        }
        if passing {
            continue;
        }
        match match_policy(t, id, inbound, p) {
            Some(Action::Allow) => return Verdict::Allow,
            Some(Action::Deny) => return Verdict::Deny,
            Some(Action::Pass) if tiered => passing = true,
            Some(Action::Pass) => {
                to_profiles = true;
                break;
            }
            Some(Action::Log) | None => {}
        }
    }
    if !to_profiles {
        match policy_default {
            PolicyDefault::Allow => return Verdict::Allow,
            PolicyDefault::Deny => return Verdict::Deny,
            PolicyDefault::Pass => {}
        }
    }
    for id in &c.profiles {
        match match_policy(t, *id, inbound, p) {
            Some(Action::Allow) => return Verdict::Allow,
            Some(Action::Deny) | Some(Action::Pass) => return Verdict::Deny,
            Some(Action::Log) | None => {}
        }
    }
    match profile_default {
        PolicyDefault::Allow => Verdict::Allow,
        PolicyDefault::Deny | PolicyDefault::Pass => Verdict::Deny,
    }
}

/// The verdict of a host endpoint's untracked or pre-DNAT section for `p` crossing `sw` in
/// `dir`: the first ALLOW or DENY decides; None when nothing did (no match, a PASS), and the
/// packet goes on to the next stage. The section's policies and rules are those the
/// direction walks for normal policies (`invert_rx_tx` as in [`verdict`]).
pub fn stage_verdict(
    t: &NpolTables,
    sw: u32,
    dir: Direction,
    stage: Stage,
    p: &FiveTuple,
) -> Option<Verdict> {
    let c = t.iface(sw)?;
    let inbound = (dir == Direction::Rx) ^ c.invert_rx_tx;
    let s = sections(if inbound {
        &c.rx_policies
    } else {
        &c.tx_policies
    });
    let policies = match stage {
        Stage::Untracked => s.untracked,
        Stage::PreDnat => s.prednat,
    };
    for &id in policies {
        match match_policy(t, id, inbound, p) {
            Some(Action::Allow) => return Some(Verdict::Allow),
            Some(Action::Deny) => return Some(Verdict::Deny),
            Some(Action::Pass) => return None,
            Some(Action::Log) | None => {}
        }
    }
    None
}

impl IfConfig {
    /// Whether packets in `dir` have a non-empty `stage` section to walk.
    pub fn has_stage(&self, dir: Direction, stage: Stage) -> bool {
        let inbound = (dir == Direction::Rx) ^ self.invert_rx_tx;
        let s = sections(if inbound {
            &self.rx_policies
        } else {
            &self.tx_policies
        });
        match stage {
            Stage::Untracked => !s.untracked.is_empty(),
            Stage::PreDnat => !s.prednat.is_empty(),
        }
    }
}

#[cfg(test)]
mod tests;
