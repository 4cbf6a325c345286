//! The single writer of the forwarding tables: interfaces, addresses, VRFs, routes, neighbours.
//!
//! Runs on the control thread. It edits private copies of the interface and forwarding tables,
//! updates FIBs in place, and publishes. Ordering rule: a FIB leaf may name a load-balance only
//! after every worker can see it, so new load-balances are published and a grace period passes
//! before the leaf is written.

use crate::feature::{arc, FeatureError, FeatureSet, ARCS};
use crate::fib::{FibError, Ip4FibConfig, Ip4FibWriter, Ip6FibWriter, LEAF_MISS};
use crate::tables::*;
use crate::wire::{self, Mac};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

/// What a route does with its packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PathKind {
    /// Forward via `next_hop` and/or `sw_if_index`.
    Normal,
    /// Deliver locally.
    Local,
    Drop,
    Unreachable,
    Prohibit,
    /// Look the destination up again in table `table_id` of the same family.
    Lookup(u32),
}

/// One path of a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Path {
    pub kind: PathKind,
    pub next_hop: Option<IpAddr>,
    pub sw_if_index: Option<u32>,
    pub weight: u8,
    /// VPP's path preference: of a route's paths, only those with the lowest preference
    /// among the usable ones forward (the others are backups). 0 is the best.
    pub preference: u8,
}

impl Path {
    pub fn via(next_hop: IpAddr, sw_if_index: Option<u32>) -> Self {
        Self {
            kind: PathKind::Normal,
            next_hop: Some(next_hop),
            sw_if_index,
            weight: 1,
            preference: 0,
        }
    }
    pub fn attached(sw_if_index: u32) -> Self {
        Self {
            kind: PathKind::Normal,
            next_hop: None,
            sw_if_index: Some(sw_if_index),
            weight: 1,
            preference: 0,
        }
    }
    /// Continue the lookup in another table (calico: a pod VRF's default route).
    pub fn lookup(table_id: u32) -> Self {
        Self {
            kind: PathKind::Lookup(table_id),
            next_hop: None,
            sw_if_index: None,
            weight: 1,
            preference: 0,
        }
    }
    pub fn special(kind: PathKind) -> Self {
        Self {
            kind,
            next_hop: None,
            sw_if_index: None,
            weight: 1,
            preference: 0,
        }
    }
}

/// Where a route came from: connected and host routes are owned by interfaces and neighbours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Api,
    Interface,
    AdjFib,
}

#[derive(Clone, Debug)]
pub struct Route {
    pub paths: Vec<Path>,
    pub lb: u32,
    pub source: Source,
}

/// A prefix in either family, host-order address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Prefix {
    V4(u32, u8),
    V6(u128, u8),
}

impl Prefix {
    pub fn is_ip6(&self) -> bool {
        matches!(self, Prefix::V6(..))
    }
    pub fn prefix_len(&self) -> u8 {
        match *self {
            Prefix::V4(_, l) | Prefix::V6(_, l) => l,
        }
    }
    /// 32 or 128.
    pub fn max_len(&self) -> u8 {
        if self.is_ip6() {
            128
        } else {
            32
        }
    }
    /// The address alone, as a host prefix.
    pub fn host(self) -> Self {
        match self {
            Prefix::V4(a, _) => Prefix::V4(a, 32),
            Prefix::V6(a, _) => Prefix::V6(a, 128),
        }
    }
    /// The prefix with host bits cleared.
    pub fn masked(self) -> Self {
        match self {
            Prefix::V4(a, l) => Prefix::V4(a & mask4(l), l),
            Prefix::V6(a, l) => Prefix::V6(a & mask6(l), l),
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        let (a, l) = s.split_once('/').unwrap_or((s, ""));
        match a.parse::<IpAddr>().ok()? {
            IpAddr::V4(a) => {
                let l = if l.is_empty() { 32 } else { l.parse().ok()? };
                (l <= 32).then(|| Prefix::V4(u32::from(a), l))
            }
            IpAddr::V6(a) => {
                let l = if l.is_empty() { 128 } else { l.parse().ok()? };
                (l <= 128).then(|| Prefix::V6(u128::from(a), l))
            }
        }
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Prefix::V4(a, l) => write!(f, "{}/{l}", wire::fmt_ip4(a)),
            Prefix::V6(a, l) => write!(f, "{}/{l}", wire::fmt_ip6(a)),
        }
    }
}

pub fn mask4(l: u8) -> u32 {
    if l == 0 {
        0
    } else {
        u32::MAX << (32 - l.min(32))
    }
}
pub fn mask6(l: u8) -> u128 {
    if l == 0 {
        0
    } else {
        u128::MAX << (128 - l.min(128))
    }
}

/// Errors the control surface maps to VPP's API return codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FwdError {
    NoSuchInterface(u32),
    NoSuchTable(u32),
    NoSuchEntry,
    TableInUse,
    AddressesPresent,
    TooManyInterfaces,
    Invalid(String),
    Fib(FibError),
    /// No such arc, or no such feature registered on it.
    Feature(FeatureError),
}

impl std::fmt::Display for FwdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FwdError::NoSuchInterface(i) => write!(f, "no interface with sw_if_index {i}"),
            FwdError::NoSuchTable(t) => write!(f, "no table {t}"),
            FwdError::NoSuchEntry => write!(f, "no such entry"),
            FwdError::TableInUse => write!(f, "table in use"),
            FwdError::AddressesPresent => write!(f, "interface has addresses; remove them first"),
            FwdError::TooManyInterfaces => write!(f, "too many interfaces"),
            FwdError::Invalid(s) => write!(f, "{s}"),
            FwdError::Fib(e) => write!(f, "{e}"),
            FwdError::Feature(e) => write!(f, "{e}"),
        }
    }
}

impl From<FibError> for FwdError {
    fn from(e: FibError) -> Self {
        FwdError::Fib(e)
    }
}

struct Ip4Table {
    table_id: u32,
    name: String,
    writer: Ip4FibWriter,
    routes: BTreeMap<(u32, u8), Route>,
}

struct Ip6Table {
    table_id: u32,
    name: String,
    writer: Ip6FibWriter,
    routes: BTreeMap<(u128, u8), Route>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum AdjKey {
    Neighbor { sw: u32, nh: u128, v6: bool },
    Attached { sw: u32, v6: bool },
    Glean { sw: u32, v6: bool },
    Local { v6: bool },
    Prohibit { v6: bool },
    Lookup { fib: u32, v6: bool },
}

/// A neighbour entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Neighbor {
    pub sw_if_index: u32,
    pub ip: IpAddr,
    pub mac: Mac,
    pub is_static: bool,
}

/// The forwarding state's single writer.
pub struct Forwarding {
    shared: Arc<Shared>,
    ifs: IfTable,
    fwd: FwdTable,
    fibs: FibSet,
    ip4: Vec<Option<Ip4Table>>,
    ip6: Vec<Option<Ip6Table>>,
    adj_index: HashMap<AdjKey, u32>,
    lb_index: HashMap<Vec<u32>, u32>,
    lb_refs: Vec<u32>,
    free_lbs: Vec<u32>,
    neighbors: BTreeMap<(u32, IpAddr), Neighbor>,
    /// Load-balances created since the last publish (leaves naming them must wait).
    unpublished_lbs: bool,
    ifs_dirty: bool,
    fwd_dirty: bool,
    fib4_config: Ip4FibConfig,
    /// Per-protocol MTUs (VPP's `mtu[IP4]`, `mtu[IP6]`) that differ from the interface's L3
    /// MTU; 0 follows it. Adjacencies of each family take theirs.
    proto_mtu: HashMap<u32, [u16; 2]>,
    /// The features the workers' graph registered, by arc (see `use_features`).
    features: Arc<FeatureSet>,
}

impl Forwarding {
    /// Create the writer with the default tables (IPv4 and IPv6 table 0).
    pub fn new(shared: Arc<Shared>) -> Self {
        Self::with_fib_config(shared, Ip4FibConfig::default())
    }

    pub fn with_fib_config(shared: Arc<Shared>, fib4_config: Ip4FibConfig) -> Self {
        let mut f = Self {
            ifs: IfTable::default(),
            fwd: FwdTable::default(),
            fibs: FibSet::default(),
            ip4: Vec::new(),
            ip6: Vec::new(),
            adj_index: HashMap::new(),
            lb_index: HashMap::new(),
            lb_refs: vec![u32::MAX, u32::MAX],
            free_lbs: Vec::new(),
            neighbors: BTreeMap::new(),
            unpublished_lbs: false,
            ifs_dirty: true,
            fwd_dirty: true,
            fib4_config,
            proto_mtu: HashMap::new(),
            features: Arc::default(),
            shared,
        };
        let local4 = f.adj(
            AdjKey::Local { v6: false },
            Adjacency {
                kind: AdjKind::Local,
                ..Default::default()
            },
        );
        let local6 = f.adj(
            AdjKey::Local { v6: true },
            Adjacency {
                kind: AdjKind::Local,
                is_ip6: true,
                ..Default::default()
            },
        );
        let _ = (local4, local6);
        // sw_if_index 0 is local0, as in VPP: calico and govpp send 0 to mean "all" or "none",
        // so no real interface may ever have it. It stays down and has no device.
        let local0 = f
            .interface_add("local0", "local", [0; 6], false, 0)
            .expect("local0");
        debug_assert_eq!(local0, 0);
        f.table_add(false, 0, "ipv4-VRF:0").expect("table 0");
        f.table_add(true, 0, "ipv6-VRF:0").expect("table 0");
        f.publish();
        f
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
    pub fn ifs(&self) -> &IfTable {
        &self.ifs
    }
    pub fn fwd(&self) -> &FwdTable {
        &self.fwd
    }

    // ----- publication -----------------------------------------------------------------------

    /// Make every change visible to the workers.
    pub fn publish(&mut self) {
        if self.ifs_dirty {
            self.shared.ifs.publish(self.ifs.clone());
            self.ifs_dirty = false;
        }
        if self.fwd_dirty {
            self.sync_output_features();
            self.shared.fwd.publish(self.fwd.clone());
            self.fwd_dirty = false;
        }
    }

    /// Before writing a leaf that may name a new load-balance: publish and wait for workers.
    fn barrier_for_new_lbs(&mut self) {
        if self.unpublished_lbs {
            self.publish();
            let stamp = self.shared.grace.advance();
            self.shared.grace.wait_safe(stamp);
            self.unpublished_lbs = false;
        }
    }

    fn publish_fibs(&mut self) {
        self.fibs.ip4 = self
            .ip4
            .iter()
            .map(|t| t.as_ref().map(|t| t.writer.fib().clone()))
            .collect();
        self.fibs.ip6 = self
            .ip6
            .iter()
            .map(|t| t.as_ref().map(|t| t.writer.fib().clone()))
            .collect();
        self.shared.fibs.publish(self.fibs.clone());
    }

    /// Reuse tbl8 groups whose grace period has passed.
    pub fn reclaim(&mut self) {
        for t in self.ip4.iter_mut().flatten() {
            t.writer.reclaim();
        }
    }

    // ----- interfaces ------------------------------------------------------------------------

    /// Create an interface; returns its sw_if_index.
    pub fn interface_add(
        &mut self,
        name: &str,
        dev_type: &str,
        mac: Mac,
        l2: bool,
        mtu: u16,
    ) -> Result<u32, FwdError> {
        if self.ifs.by_name(name).is_some() {
            return Err(FwdError::Invalid(format!("interface {name} exists")));
        }
        let sw = match self.ifs.ifs.iter().position(|i| i.is_none()) {
            Some(i) => i,
            None => self.ifs.ifs.len(),
        };
        if sw >= MAX_INTERFACES {
            return Err(FwdError::TooManyInterfaces);
        }
        if sw == self.ifs.ifs.len() {
            self.ifs.ifs.push(None);
            self.ifs.fast.push(IfFast::default());
        }
        let i = Interface {
            sw_if_index: sw as u32,
            name: name.into(),
            dev_type: dev_type.into(),
            mac,
            l2,
            mtu,
            link_up: true,
            ..Default::default()
        };
        self.ifs.ifs[sw] = Some(i);
        self.refresh_fast(sw as u32);
        self.publish();
        Ok(sw as u32)
    }

    /// A VLAN sub-interface of an L2 interface.
    pub fn vlan_subif_add(&mut self, parent: u32, vlan: u16) -> Result<u32, FwdError> {
        let p = self.iface(parent)?.clone();
        if !p.l2 || vlan == 0 || vlan > 4094 {
            return Err(FwdError::Invalid(
                "vlan sub-interfaces need an ethernet parent and vlan 1-4094".into(),
            ));
        }
        let sw = self.interface_add(&format!("{}.{vlan}", p.name), "vlan", p.mac, true, p.mtu)?;
        self.iface_mut(sw)?.sub_of = Some((parent, vlan));
        self.ifs.vlans.push((parent, vlan, sw));
        self.refresh_fast(sw);
        self.publish();
        Ok(sw)
    }

    pub fn interface_del(&mut self, sw: u32) -> Result<(), FwdError> {
        if sw == 0 {
            return Err(FwdError::Invalid("local0 cannot be deleted".into()));
        }
        let i = self.iface(sw)?.clone();
        self.proto_mtu.remove(&sw);
        for (a, l) in i.ip4_addrs.clone() {
            self.address_del(sw, Prefix::V4(a, l))?;
        }
        for (a, l) in i.ip6_addrs.clone() {
            self.address_del(sw, Prefix::V6(a, l))?;
        }
        let gone: Vec<_> = self
            .neighbors
            .keys()
            .filter(|k| k.0 == sw)
            .copied()
            .collect();
        for k in gone {
            let _ = self.neighbor_del(k.0, k.1);
        }
        // Routes through this interface now drop.
        let keys: Vec<AdjKey> = self
            .adj_index
            .keys()
            .filter(|k| matches!(k, AdjKey::Neighbor { sw: s, .. } | AdjKey::Attached { sw: s, .. } | AdjKey::Glean { sw: s, .. } if *s == sw))
            .copied()
            .collect();
        for k in keys {
            if let Some(&ai) = self.adj_index.get(&k) {
                self.fwd.adjs[ai as usize].kind = AdjKind::Drop;
            }
        }
        self.ifs.vlans.retain(|v| v.2 != sw && v.0 != sw);
        self.ifs.ifs[sw as usize] = None;
        self.ifs.fast[sw as usize] = IfFast::default();
        self.ifs_dirty = true;
        self.fwd_dirty = true;
        self.publish();
        Ok(())
    }

    pub fn iface(&self, sw: u32) -> Result<&Interface, FwdError> {
        self.ifs.get(sw).ok_or(FwdError::NoSuchInterface(sw))
    }
    fn iface_mut(&mut self, sw: u32) -> Result<&mut Interface, FwdError> {
        self.ifs_dirty = true;
        self.ifs
            .ifs
            .get_mut(sw as usize)
            .and_then(|i| i.as_mut())
            .ok_or(FwdError::NoSuchInterface(sw))
    }

    fn refresh_fast(&mut self, sw: u32) {
        let Some(Some(i)) = self.ifs.ifs.get(sw as usize) else {
            return;
        };
        let mut flags = if_flags::EXISTS;
        if i.admin_up {
            flags |= if_flags::ADMIN_UP;
        }
        if i.link_up {
            flags |= if_flags::LINK_UP;
        }
        if !i.ip4_addrs.is_empty() || i.unnumbered_of.is_some() || i.ip4_fib != 0 || !i.l2 {
            flags |= if_flags::IP4;
        }
        if i.ip6_enabled || !i.ip6_addrs.is_empty() || i.unnumbered_of.is_some() || !i.l2 {
            flags |= if_flags::IP6;
        }
        if i.l2 {
            flags |= if_flags::L2;
        }
        if i.promisc {
            flags |= if_flags::PROMISC;
        }
        if i.tx_gso {
            flags |= if_flags::TX_GSO;
        }
        if i.tx_csum {
            flags |= if_flags::TX_CSUM;
        }
        let fast = IfFast {
            flags,
            mac: i.mac,
            ip4_fib: i.ip4_fib,
            ip6_fib: i.ip6_fib,
            feat_ip4: i.features[arc::IP4_UNICAST],
            feat_ip6: i.features[arc::IP6_UNICAST],
            feat_ip4_local: i.features[arc::IP4_LOCAL],
            feat_ip6_local: i.features[arc::IP6_LOCAL],
            mtu: i.mtu,
            xconnect: i.xconnect.unwrap_or(u32::MAX),
        };
        self.ifs.fast[sw as usize] = fast;
        self.ifs_dirty = true;
    }

    pub fn set_admin_up(&mut self, sw: u32, up: bool) -> Result<(), FwdError> {
        self.iface_mut(sw)?.admin_up = up;
        self.refresh_fast(sw);
        self.publish();
        Ok(())
    }

    pub fn set_link_up(&mut self, sw: u32, up: bool) -> Result<(), FwdError> {
        self.iface_mut(sw)?.link_up = up;
        self.refresh_fast(sw);
        self.publish();
        Ok(())
    }

    pub fn set_mtu(&mut self, sw: u32, mtu: u16) -> Result<(), FwdError> {
        if mtu < 68 {
            return Err(FwdError::Invalid(format!("mtu {mtu} below 68")));
        }
        self.iface_mut(sw)?.mtu = mtu;
        self.refresh_fast(sw);
        self.refresh_adj_mtus(sw);
        self.publish();
        Ok(())
    }

    /// VPP's per-protocol MTUs: packets of that family leave `sw` with at most `ip4` / `ip6`
    /// bytes (fragmentation or "too big" above); 0 follows the interface's L3 MTU.
    pub fn set_protocol_mtu(&mut self, sw: u32, ip4: u16, ip6: u16) -> Result<(), FwdError> {
        self.iface(sw)?;
        if let Some(m) = [ip4, ip6].into_iter().find(|&m| m != 0 && m < 68) {
            return Err(FwdError::Invalid(format!("mtu {m} below 68")));
        }
        if ip4 == 0 && ip6 == 0 {
            self.proto_mtu.remove(&sw);
        } else {
            self.proto_mtu.insert(sw, [ip4, ip6]);
        }
        self.refresh_adj_mtus(sw);
        self.publish();
        Ok(())
    }

    /// The MTU packets of a family leave `sw` with (its protocol MTU, else the L3 MTU).
    pub fn adj_mtu(&self, sw: u32, v6: bool) -> u16 {
        let l3 = self.ifs.get(sw).map_or(1500, |i| i.mtu);
        match self.proto_mtu.get(&sw).map(|m| m[usize::from(v6)]) {
            Some(m) if m != 0 => m,
            _ => l3,
        }
    }

    fn refresh_adj_mtus(&mut self, sw: u32) {
        let (m4, m6) = (self.adj_mtu(sw, false), self.adj_mtu(sw, true));
        for a in self.fwd.adjs.iter_mut() {
            if a.sw_if_index == sw && a.kind != AdjKind::Drop {
                a.mtu = if a.is_ip6 { m6 } else { m4 };
            }
        }
        self.fwd_dirty = true;
    }

    pub fn set_mac(&mut self, sw: u32, mac: Mac) -> Result<(), FwdError> {
        self.iface_mut(sw)?.mac = mac;
        self.refresh_fast(sw);
        let keys: Vec<_> = self.adj_index.iter().map(|(k, v)| (*k, *v)).collect();
        for (k, ai) in keys {
            if let AdjKey::Neighbor { sw: s, .. } = k {
                if s == sw && self.fwd.adjs[ai as usize].rewrite_len >= 12 {
                    self.fwd.adjs[ai as usize].rewrite[6..12].copy_from_slice(&mac);
                }
            }
        }
        self.fwd_dirty = true;
        self.publish();
        Ok(())
    }

    /// Cross-connect `rx` to `tx` at L2 (None: back to L3 forwarding).
    pub fn set_xconnect(&mut self, rx: u32, tx: Option<u32>) -> Result<(), FwdError> {
        if let Some(t) = tx {
            if !self.iface(t)?.l2 {
                return Err(FwdError::Invalid(
                    "cross-connect needs an ethernet interface".into(),
                ));
            }
        }
        if !self.iface(rx)?.l2 {
            return Err(FwdError::Invalid(
                "cross-connect needs an ethernet interface".into(),
            ));
        }
        self.iface_mut(rx)?.xconnect = tx;
        self.refresh_fast(rx);
        self.publish();
        Ok(())
    }

    /// What the device does for us on transmit (from its driver).
    pub fn set_tx_offloads(&mut self, sw: u32, gso: bool, csum: bool) -> Result<(), FwdError> {
        let i = self.iface_mut(sw)?;
        i.tx_gso = gso;
        i.tx_csum = csum;
        self.refresh_fast(sw);
        self.publish();
        Ok(())
    }

    pub fn set_promisc(&mut self, sw: u32, on: bool) -> Result<(), FwdError> {
        self.iface_mut(sw)?.promisc = on;
        self.refresh_fast(sw);
        self.publish();
        Ok(())
    }

    pub fn set_tag(&mut self, sw: u32, tag: &str) -> Result<(), FwdError> {
        self.iface_mut(sw)?.tag = tag.into();
        self.publish();
        Ok(())
    }

    /// Take the feature registrations of the graph the workers run (`Graph::features`): the
    /// names `feature_enable` accepts. Every worker's graph is built from the same registrations.
    pub fn use_features(&mut self, set: Arc<FeatureSet>) {
        self.features = set;
    }

    /// The registered features of every arc, in the order they run.
    pub fn features(&self) -> &FeatureSet {
        &self.features
    }

    /// Enable or disable feature `feature` of arc `arc` on interface `sw` (VPP's
    /// `vnet_feature_enable_disable`). Workers see it with the next publish: input arcs through
    /// the interface's `IfFast`, output arcs through its adjacencies.
    pub fn feature_enable(
        &mut self,
        sw: u32,
        arc: &str,
        feature: &str,
        on: bool,
    ) -> Result<(), FwdError> {
        // As VPP's handler: the interface is checked before the names.
        self.iface(sw)?;
        let (a, bit) = self
            .features
            .find(arc, feature)
            .map_err(FwdError::Feature)?;
        let i = self.iface_mut(sw)?;
        if on {
            i.features[a] |= bit;
        } else {
            i.features[a] &= !bit;
        }
        if ARCS[a].output {
            self.fwd_dirty = true;
        }
        self.refresh_fast(sw);
        self.publish();
        Ok(())
    }

    /// (arc name, enabled features in order) of every arc with a feature enabled on `sw`.
    pub fn interface_features(
        &self,
        sw: u32,
    ) -> Result<Vec<(&'static str, Vec<&'static str>)>, FwdError> {
        let i = self.iface(sw)?;
        Ok((0..arc::COUNT)
            .filter(|&a| i.features[a] != 0)
            .map(|a| (ARCS[a].name, self.features.enabled(a, i.features[a])))
            .collect())
    }

    /// Each rewrite adjacency carries its tx interface's output-arc mask, so ip4-rewrite and
    /// ip6-rewrite test one word of what they already read.
    fn sync_output_features(&mut self) {
        for adj in self.fwd.adjs.iter_mut() {
            let mask = match self.ifs.ifs.get(adj.sw_if_index as usize) {
                Some(Some(i)) if adj.kind == AdjKind::Rewrite => {
                    i.features[if adj.is_ip6 {
                        arc::IP6_OUTPUT
                    } else {
                        arc::IP4_OUTPUT
                    }]
                }
                _ => 0,
            };
            adj.out_features = mask;
        }
    }

    pub fn enable_ip6(&mut self, sw: u32, on: bool) -> Result<(), FwdError> {
        self.iface_mut(sw)?.ip6_enabled = on;
        self.refresh_fast(sw);
        self.publish();
        Ok(())
    }

    /// Put an interface in a VRF (the table must exist; the interface must have no addresses).
    pub fn set_table(&mut self, sw: u32, ip6: bool, table_id: u32) -> Result<(), FwdError> {
        let fi = self
            .fib_index(ip6, table_id)
            .ok_or(FwdError::NoSuchTable(table_id))?;
        let i = self.iface(sw)?;
        if (!ip6 && !i.ip4_addrs.is_empty()) || (ip6 && !i.ip6_addrs.is_empty()) {
            return Err(FwdError::AddressesPresent);
        }
        let i = self.iface_mut(sw)?;
        if ip6 {
            i.ip6_fib = fi;
        } else {
            i.ip4_fib = fi;
        }
        self.refresh_fast(sw);
        self.publish();
        Ok(())
    }

    pub fn set_unnumbered(&mut self, sw: u32, of: Option<u32>) -> Result<(), FwdError> {
        if let Some(o) = of {
            self.iface(o)?;
        }
        self.iface_mut(sw)?.unnumbered_of = of;
        self.refresh_fast(sw);
        self.publish();
        Ok(())
    }

    pub fn address_add(&mut self, sw: u32, p: Prefix) -> Result<(), FwdError> {
        let i = self.iface(sw)?.clone();
        let ip6 = p.is_ip6();
        let fib = match p {
            Prefix::V4(a, l) => {
                if i.ip4_addrs.iter().any(|x| x.0 == a) {
                    return Ok(());
                }
                self.iface_mut(sw)?.ip4_addrs.push((a, l));
                i.ip4_fib
            }
            Prefix::V6(a, l) => {
                if i.ip6_addrs.iter().any(|x| x.0 == a) {
                    return Ok(());
                }
                self.iface_mut(sw)?.ip6_addrs.push((a, l));
                i.ip6_fib
            }
        };
        let t = self.table_id_of(ip6, fib);
        // The connected subnet (unless the address is a host prefix), then the address itself.
        if p.prefix_len() < p.max_len() {
            // Attached: L2 interfaces glean each destination, L3 ones send straight out.
            let conn = Path::attached(sw);
            self.route_set(ip6, t, p.masked(), vec![conn], Source::Interface)?;
        }
        self.route_set(
            ip6,
            t,
            p.host(),
            vec![Path::special(PathKind::Local)],
            Source::Interface,
        )?;
        self.refresh_fast(sw);
        self.publish();
        Ok(())
    }

    pub fn address_del(&mut self, sw: u32, p: Prefix) -> Result<(), FwdError> {
        let i = self.iface(sw)?.clone();
        match p {
            Prefix::V4(a, l) => {
                if !i.ip4_addrs.iter().any(|x| x.0 == a) {
                    return Err(FwdError::NoSuchEntry);
                }
                self.iface_mut(sw)?.ip4_addrs.retain(|x| x.0 != a);
                let t = self.table_id_of(false, i.ip4_fib);
                if l < 32 {
                    let _ = self.route_del(false, t, Prefix::V4(a & mask4(l), l));
                }
                let _ = self.route_del(false, t, Prefix::V4(a, 32));
            }
            Prefix::V6(a, l) => {
                if !i.ip6_addrs.iter().any(|x| x.0 == a) {
                    return Err(FwdError::NoSuchEntry);
                }
                self.iface_mut(sw)?.ip6_addrs.retain(|x| x.0 != a);
                let t = self.table_id_of(true, i.ip6_fib);
                if l < 128 {
                    let _ = self.route_del(true, t, Prefix::V6(a & mask6(l), l));
                }
                let _ = self.route_del(true, t, Prefix::V6(a, 128));
            }
        }
        self.refresh_fast(sw);
        self.publish();
        Ok(())
    }

    // ----- tables ----------------------------------------------------------------------------

    /// The fib index of a table id.
    pub fn fib_index(&self, ip6: bool, table_id: u32) -> Option<u32> {
        if ip6 {
            self.ip6
                .iter()
                .position(|t| t.as_ref().is_some_and(|t| t.table_id == table_id))
                .map(|i| i as u32)
        } else {
            self.ip4
                .iter()
                .position(|t| t.as_ref().is_some_and(|t| t.table_id == table_id))
                .map(|i| i as u32)
        }
    }

    fn table_id_of(&self, ip6: bool, fib_index: u32) -> u32 {
        if ip6 {
            self.ip6
                .get(fib_index as usize)
                .and_then(|t| t.as_ref())
                .map_or(0, |t| t.table_id)
        } else {
            self.ip4
                .get(fib_index as usize)
                .and_then(|t| t.as_ref())
                .map_or(0, |t| t.table_id)
        }
    }

    /// Create a table (idempotent; a new name replaces the old).
    pub fn table_add(&mut self, ip6: bool, table_id: u32, name: &str) -> Result<u32, FwdError> {
        if let Some(fi) = self.fib_index(ip6, table_id) {
            if !name.is_empty() {
                if ip6 {
                    if let Some(t) = self.ip6[fi as usize].as_mut() {
                        t.name = name.into();
                    }
                } else if let Some(t) = self.ip4[fi as usize].as_mut() {
                    t.name = name.into();
                }
            }
            return Ok(fi);
        }
        let gp = self.shared.grace.clone();
        let name = if name.is_empty() {
            format!("{}-VRF:{table_id}", if ip6 { "ipv6" } else { "ipv4" })
        } else {
            name.to_string()
        };
        let fi = if ip6 {
            let t = Ip6Table {
                table_id,
                name,
                writer: Ip6FibWriter::new(gp),
                routes: BTreeMap::new(),
            };
            let slot = self
                .ip6
                .iter()
                .position(|t| t.is_none())
                .unwrap_or(self.ip6.len());
            if slot == self.ip6.len() {
                self.ip6.push(None);
            }
            self.ip6[slot] = Some(t);
            slot
        } else {
            let mut cfg = self.fib4_config.clone();
            if table_id != 0 {
                // VRFs other than the default are usually small (Calico pod VRFs): few tbl8
                // groups, and 4 KiB pages so a handful of routes commits kilobytes, not 2 MiB
                // pages (or 128 MiB of reserved hugetlb pages) per VRF.
                cfg.tbl8_groups = cfg.tbl8_groups.min(1 << 12);
                cfg.huge_pages = false;
            }
            let t = Ip4Table {
                table_id,
                name,
                writer: Ip4FibWriter::new(cfg, gp)?,
                routes: BTreeMap::new(),
            };
            let slot = self
                .ip4
                .iter()
                .position(|t| t.is_none())
                .unwrap_or(self.ip4.len());
            if slot == self.ip4.len() {
                self.ip4.push(None);
            }
            self.ip4[slot] = Some(t);
            slot
        };
        self.publish_fibs();
        Ok(fi as u32)
    }

    pub fn table_del(&mut self, ip6: bool, table_id: u32) -> Result<(), FwdError> {
        if table_id == 0 {
            return Err(FwdError::Invalid("table 0 cannot be deleted".into()));
        }
        let fi = self
            .fib_index(ip6, table_id)
            .ok_or(FwdError::NoSuchTable(table_id))?;
        let in_use = self.ifs.ifs.iter().flatten().any(|i| {
            if ip6 {
                i.ip6_fib == fi
            } else {
                i.ip4_fib == fi
            }
        });
        // Routes or punt redirects elsewhere that continue their lookup in this table.
        let lookup_adj = self
            .adj_index
            .get(&AdjKey::Lookup { fib: fi, v6: ip6 })
            .copied();
        let looked_into = lookup_adj.is_some_and(|a| {
            self.lb_index.keys().any(|buckets| buckets.contains(&a))
                || self
                    .fwd
                    .punt4
                    .iter()
                    .chain(&self.fwd.punt6)
                    .any(|p| p.adj == a)
        });
        if in_use || looked_into {
            return Err(FwdError::TableInUse);
        }
        let prefixes: Vec<Prefix> = self
            .routes(ip6, table_id)
            .into_iter()
            .map(|r| r.0)
            .collect();
        for p in prefixes {
            let _ = self.route_del(ip6, table_id, p);
        }
        if ip6 {
            self.ip6[fi as usize] = None;
        } else {
            self.ip4[fi as usize] = None;
        }
        self.publish_fibs();
        Ok(())
    }

    /// (table_id, name) of every table of a family.
    pub fn tables(&self, ip6: bool) -> Vec<(u32, String)> {
        if ip6 {
            self.ip6
                .iter()
                .flatten()
                .map(|t| (t.table_id, t.name.clone()))
                .collect()
        } else {
            self.ip4
                .iter()
                .flatten()
                .map(|t| (t.table_id, t.name.clone()))
                .collect()
        }
    }

    // ----- adjacencies and load-balances -----------------------------------------------------

    fn adj(&mut self, key: AdjKey, a: Adjacency) -> u32 {
        if let Some(&i) = self.adj_index.get(&key) {
            return i;
        }
        self.fwd.adjs.push(a);
        let i = (self.fwd.adjs.len() - 1) as u32;
        self.adj_index.insert(key, i);
        self.fwd_dirty = true;
        i
    }

    fn l2_rewrite(&self, sw: u32, dst: Mac, v6: bool) -> ([u8; 24], u8, u32) {
        let mut rw = [0u8; 24];
        let Some(i) = self.ifs.get(sw) else {
            return (rw, 0, sw);
        };
        if !i.l2 {
            return (rw, 0, sw);
        }
        let et = if v6 {
            wire::ETHERTYPE_IP6
        } else {
            wire::ETHERTYPE_IP4
        };
        rw[0..6].copy_from_slice(&dst);
        rw[6..12].copy_from_slice(&i.mac);
        match i.sub_of {
            Some((parent, vlan)) => {
                rw[12..14].copy_from_slice(&wire::ETHERTYPE_VLAN.to_be_bytes());
                rw[14..16].copy_from_slice(&vlan.to_be_bytes());
                rw[16..18].copy_from_slice(&et.to_be_bytes());
                (rw, 18, parent)
            }
            None => {
                rw[12..14].copy_from_slice(&et.to_be_bytes());
                (rw, 14, sw)
            }
        }
    }

    /// The adjacency that reaches `nh` on `sw`.
    fn neighbor_adj(&mut self, sw: u32, nh: IpAddr) -> u32 {
        let (nhv, v6) = match nh {
            IpAddr::V4(a) => (u32::from(a) as u128, false),
            IpAddr::V6(a) => (u128::from(a), true),
        };
        let l2 = self.ifs.get(sw).is_some_and(|i| i.l2);
        if !l2 {
            return self.attached_adj(sw, v6);
        }
        let key = AdjKey::Neighbor { sw, nh: nhv, v6 };
        let mtu = self.adj_mtu(sw, v6);
        let known = self.neighbors.get(&(sw, nh)).map(|n| n.mac);
        let a = match known {
            Some(mac) => {
                let (rewrite, rewrite_len, tx) = self.l2_rewrite(sw, mac, v6);
                Adjacency {
                    kind: AdjKind::Rewrite,
                    sw_if_index: tx,
                    mtu,
                    rewrite,
                    rewrite_len,
                    next_hop: nhv,
                    is_ip6: v6,
                    lookup_fib: 0,
                    out_features: 0,
                }
            }
            None => Adjacency {
                kind: AdjKind::Incomplete,
                sw_if_index: sw,
                mtu,
                next_hop: nhv,
                is_ip6: v6,
                ..Default::default()
            },
        };
        self.adj(key, a)
    }

    /// Attached: L3 interfaces rewrite nothing; L2 ones must resolve each destination (glean).
    fn attached_adj(&mut self, sw: u32, v6: bool) -> u32 {
        let l2 = self.ifs.get(sw).is_some_and(|i| i.l2);
        let mtu = self.adj_mtu(sw, v6);
        if l2 {
            let a = Adjacency {
                kind: AdjKind::Glean,
                sw_if_index: sw,
                mtu,
                is_ip6: v6,
                ..Default::default()
            };
            self.adj(AdjKey::Glean { sw, v6 }, a)
        } else {
            let a = Adjacency {
                kind: AdjKind::Rewrite,
                sw_if_index: sw,
                mtu,
                is_ip6: v6,
                ..Default::default()
            };
            self.adj(AdjKey::Attached { sw, v6 }, a)
        }
    }

    fn lookup_adj(&mut self, v6: bool, fib: u32) -> u32 {
        let a = Adjacency {
            kind: AdjKind::Lookup,
            is_ip6: v6,
            lookup_fib: fib,
            ..Default::default()
        };
        self.adj(AdjKey::Lookup { fib, v6 }, a)
    }

    fn path_adjs(&mut self, ip6: bool, fib_index: u32, p: &Path) -> Vec<u32> {
        match p.kind {
            PathKind::Local => vec![self.adj_index[&AdjKey::Local { v6: ip6 }]],
            PathKind::Drop => vec![DROP_ADJ],
            PathKind::Unreachable => vec![UNREACH_ADJ],
            PathKind::Lookup(table_id) => match self.fib_index(ip6, table_id) {
                Some(fib) => vec![self.lookup_adj(ip6, fib)],
                None => vec![DROP_ADJ],
            },
            PathKind::Prohibit => {
                let a = Adjacency {
                    kind: AdjKind::Prohibit,
                    is_ip6: ip6,
                    ..Default::default()
                };
                vec![self.adj(AdjKey::Prohibit { v6: ip6 }, a)]
            }
            PathKind::Normal => match (p.next_hop, p.sw_if_index) {
                (Some(nh), Some(sw)) if self.ifs.get(sw).is_some() => {
                    vec![self.neighbor_adj(sw, nh)]
                }
                (None, Some(sw)) if self.ifs.get(sw).is_some() => vec![self.attached_adj(sw, ip6)],
                (Some(nh), _) => self.resolve_recursive(ip6, fib_index, nh),
                _ => vec![DROP_ADJ],
            },
        }
    }

    /// A next hop with no interface: use what the FIB says reaches it now.
    fn resolve_recursive(&mut self, ip6: bool, fib_index: u32, nh: IpAddr) -> Vec<u32> {
        let leaf = match (nh, ip6) {
            (IpAddr::V4(a), false) => self
                .ip4
                .get(fib_index as usize)
                .and_then(|t| t.as_ref())
                .map(|t| t.writer.fib().lookup(u32::from(a))),
            (IpAddr::V6(a), true) => self
                .ip6
                .get(fib_index as usize)
                .and_then(|t| t.as_ref())
                .map(|t| t.writer.fib().lookup(u128::from(a))),
            _ => None,
        };
        let Some(leaf) = leaf.filter(|&l| l != LEAF_MISS) else {
            return vec![DROP_ADJ];
        };
        let lb = self.fwd.lb(leaf);
        let buckets = lb.buckets[..lb.n_buckets as usize].to_vec();
        // An attached (glean) cover: the next hop is on that subnet, so resolve it there.
        buckets
            .into_iter()
            .map(|ai| {
                let a = self.fwd.adj(ai);
                if a.kind == AdjKind::Glean {
                    self.neighbor_adj(a.sw_if_index, nh)
                } else {
                    ai
                }
            })
            .collect()
    }

    fn lb_for(&mut self, adjs: Vec<u32>) -> u32 {
        let mut key = adjs;
        key.truncate(MAX_ECMP);
        if key.is_empty() {
            key.push(DROP_ADJ);
        }
        if let Some(&i) = self.lb_index.get(&key) {
            self.lb_refs[i as usize] += 1;
            return i;
        }
        let mut lb = LoadBalance::single(key[0]);
        lb.n_buckets = key.len() as u8;
        lb.buckets[..key.len()].copy_from_slice(&key);
        let i = match self.free_lbs.pop() {
            Some(i) => {
                self.fwd.lbs[i as usize] = lb;
                self.lb_refs[i as usize] = 1;
                i
            }
            None => {
                self.fwd.lbs.push(lb);
                self.lb_refs.push(1);
                (self.fwd.lbs.len() - 1) as u32
            }
        };
        self.lb_index.insert(key, i);
        self.fwd_dirty = true;
        self.unpublished_lbs = true;
        i
    }

    fn lb_release(&mut self, i: u32) {
        let Some(r) = self.lb_refs.get_mut(i as usize) else {
            return;
        };
        if *r == u32::MAX {
            return;
        }
        *r -= 1;
        if *r == 0 {
            let lb = self.fwd.lbs[i as usize];
            self.lb_index.remove(&lb.buckets[..lb.n_buckets as usize]);
            // Reuse waits for a grace period: a worker may still hold the old leaf.
            let stamp = self.shared.grace.advance();
            self.shared.grace.wait_safe(stamp);
            self.free_lbs.push(i);
        }
    }

    // ----- routes ----------------------------------------------------------------------------

    /// Add or replace a route (replace semantics: the paths given are the route's paths).
    pub fn route_add(
        &mut self,
        table_id: u32,
        p: Prefix,
        paths: Vec<Path>,
    ) -> Result<(), FwdError> {
        self.route_set(p.is_ip6(), table_id, p, paths, Source::Api)?;
        self.publish();
        Ok(())
    }

    /// Add paths to a route (multipath add).
    pub fn route_add_paths(
        &mut self,
        table_id: u32,
        p: Prefix,
        paths: Vec<Path>,
    ) -> Result<(), FwdError> {
        let mut all = self
            .route_get(table_id, p)
            .map(|r| r.paths)
            .unwrap_or_default();
        for x in paths {
            if !all.contains(&x) {
                all.push(x);
            }
        }
        self.route_add(table_id, p, all)
    }

    fn route_set(
        &mut self,
        ip6: bool,
        table_id: u32,
        p: Prefix,
        paths: Vec<Path>,
        source: Source,
    ) -> Result<(), FwdError> {
        let p = p.masked();
        let fi = self
            .fib_index(ip6, table_id)
            .ok_or(FwdError::NoSuchTable(table_id))?;
        for path in &paths {
            if let PathKind::Lookup(t) = path.kind {
                self.fib_index(ip6, t).ok_or(FwdError::NoSuchTable(t))?;
            }
        }
        // As VPP's FIB: the paths of the best (lowest) preference that has a usable path
        // forward; the rest wait as backups. Usable: it resolves to something other than a
        // drop (or it is a drop path). With none usable, the best preference drops.
        let resolved: Vec<Vec<u32>> = paths
            .iter()
            .map(|path| self.path_adjs(ip6, fi, path))
            .collect();
        let usable = |(path, a): &(&Path, &Vec<u32>)| {
            path.kind == PathKind::Drop || a.iter().any(|&x| x != DROP_ADJ)
        };
        let both = || paths.iter().zip(resolved.iter());
        let best = both()
            .filter(usable)
            .map(|(path, _)| path.preference)
            .min()
            .or_else(|| paths.iter().map(|path| path.preference).min());
        let mut adjs = Vec::new();
        for (path, a) in both().filter(|(path, _)| Some(path.preference) == best) {
            for _ in 0..path.weight.max(1) {
                adjs.extend_from_slice(a);
            }
        }
        let lb = self.lb_for(adjs);
        self.barrier_for_new_lbs();
        let route = Route { paths, lb, source };
        let old = match p {
            Prefix::V4(a, l) => {
                let t = self.ip4[fi as usize]
                    .as_mut()
                    .ok_or(FwdError::NoSuchTable(table_id))?;
                if let Err(e) = t.writer.add(a, l, lb) {
                    self.lb_release(lb);
                    return Err(e.into());
                }
                t.routes.insert((a, l), route)
            }
            Prefix::V6(a, l) => {
                let t = self.ip6[fi as usize]
                    .as_mut()
                    .ok_or(FwdError::NoSuchTable(table_id))?;
                if let Err(e) = t.writer.add(a, l, lb) {
                    self.lb_release(lb);
                    return Err(e.into());
                }
                t.routes.insert((a, l), route)
            }
        };
        if let Some(o) = old {
            self.lb_release(o.lb);
        }
        Ok(())
    }

    pub fn route_del(&mut self, ip6: bool, table_id: u32, p: Prefix) -> Result<(), FwdError> {
        let p = p.masked();
        let fi = self
            .fib_index(ip6, table_id)
            .ok_or(FwdError::NoSuchTable(table_id))?;
        let old = match p {
            Prefix::V4(a, l) => {
                let t = self.ip4[fi as usize]
                    .as_mut()
                    .ok_or(FwdError::NoSuchTable(table_id))?;
                let r = t.routes.remove(&(a, l)).ok_or(FwdError::NoSuchEntry)?;
                t.writer.delete(a, l)?;
                r
            }
            Prefix::V6(a, l) => {
                let t = self.ip6[fi as usize]
                    .as_mut()
                    .ok_or(FwdError::NoSuchTable(table_id))?;
                let r = t.routes.remove(&(a, l)).ok_or(FwdError::NoSuchEntry)?;
                t.writer.delete(a, l)?;
                r
            }
        };
        self.lb_release(old.lb);
        self.publish();
        Ok(())
    }

    pub fn route_get(&self, table_id: u32, p: Prefix) -> Option<Route> {
        let p = p.masked();
        let fi = self.fib_index(p.is_ip6(), table_id)?;
        match p {
            Prefix::V4(a, l) => self
                .ip4
                .get(fi as usize)?
                .as_ref()?
                .routes
                .get(&(a, l))
                .cloned(),
            Prefix::V6(a, l) => self
                .ip6
                .get(fi as usize)?
                .as_ref()?
                .routes
                .get(&(a, l))
                .cloned(),
        }
    }

    /// Every route of a table, in prefix order.
    pub fn routes(&self, ip6: bool, table_id: u32) -> Vec<(Prefix, Route)> {
        let Some(fi) = self.fib_index(ip6, table_id) else {
            return vec![];
        };
        if ip6 {
            self.ip6[fi as usize].as_ref().map_or(vec![], |t| {
                t.routes
                    .iter()
                    .map(|(k, r)| (Prefix::V6(k.0, k.1), r.clone()))
                    .collect()
            })
        } else {
            self.ip4[fi as usize].as_ref().map_or(vec![], |t| {
                t.routes
                    .iter()
                    .map(|(k, r)| (Prefix::V4(k.0, k.1), r.clone()))
                    .collect()
            })
        }
    }

    pub fn route_count(&self, ip6: bool) -> usize {
        if ip6 {
            self.ip6.iter().flatten().map(|t| t.routes.len()).sum()
        } else {
            self.ip4.iter().flatten().map(|t| t.routes.len()).sum()
        }
    }

    // ----- neighbours ------------------------------------------------------------------------

    pub fn neighbor_add(
        &mut self,
        sw: u32,
        ip: IpAddr,
        mac: Mac,
        is_static: bool,
    ) -> Result<(), FwdError> {
        let i = self.iface(sw)?.clone();
        if let Some(n) = self.neighbors.get(&(sw, ip)) {
            if n.mac == mac && (n.is_static || !is_static) {
                return Ok(());
            }
        }
        self.neighbors.insert(
            (sw, ip),
            Neighbor {
                sw_if_index: sw,
                ip,
                mac,
                is_static,
            },
        );
        let (nhv, v6) = match ip {
            IpAddr::V4(a) => (u32::from(a) as u128, false),
            IpAddr::V6(a) => (u128::from(a), true),
        };
        // Complete (or update) the adjacency in place: every route through it follows.
        let ai = self.neighbor_adj(sw, ip);
        if i.l2 {
            let (rewrite, rewrite_len, tx) = self.l2_rewrite(sw, mac, v6);
            let a = &mut self.fwd.adjs[ai as usize];
            a.kind = AdjKind::Rewrite;
            a.rewrite = rewrite;
            a.rewrite_len = rewrite_len;
            a.sw_if_index = tx;
            a.next_hop = nhv;
            self.fwd_dirty = true;
        }
        // The host route, unless a route for exactly this prefix exists already.
        let (t, host) = if v6 {
            (self.table_id_of(true, i.ip6_fib), Prefix::V6(nhv, 128))
        } else {
            (
                self.table_id_of(false, i.ip4_fib),
                Prefix::V4(nhv as u32, 32),
            )
        };
        if self.route_get(t, host).is_none() {
            self.route_set(v6, t, host, vec![Path::via(ip, Some(sw))], Source::AdjFib)?;
        }
        self.publish();
        Ok(())
    }

    pub fn neighbor_del(&mut self, sw: u32, ip: IpAddr) -> Result<(), FwdError> {
        self.neighbors
            .remove(&(sw, ip))
            .ok_or(FwdError::NoSuchEntry)?;
        let (nhv, v6) = match ip {
            IpAddr::V4(a) => (u32::from(a) as u128, false),
            IpAddr::V6(a) => (u128::from(a), true),
        };
        if let Some(&ai) = self.adj_index.get(&AdjKey::Neighbor { sw, nh: nhv, v6 }) {
            let a = &mut self.fwd.adjs[ai as usize];
            a.kind = AdjKind::Incomplete;
            a.rewrite_len = 0;
            a.sw_if_index = sw;
            self.fwd_dirty = true;
        }
        if let Ok(i) = self.iface(sw).cloned() {
            let (t, host) = if v6 {
                (self.table_id_of(true, i.ip6_fib), Prefix::V6(nhv, 128))
            } else {
                (
                    self.table_id_of(false, i.ip4_fib),
                    Prefix::V4(nhv as u32, 32),
                )
            };
            if self
                .route_get(t, host)
                .is_some_and(|r| r.source == Source::AdjFib)
            {
                let _ = self.route_del(v6, t, host);
            }
        }
        self.publish();
        Ok(())
    }

    pub fn neighbors(&self) -> Vec<Neighbor> {
        self.neighbors.values().copied().collect()
    }

    /// Apply what workers learned (ARP/ND). Returns how many entries changed.
    pub fn apply_learned(&mut self) -> usize {
        let mut n = 0;
        while let Some(ev) = self.shared.learned.pop() {
            let (sw, ip, mac) = match ev {
                Learned::Ip4Neighbor {
                    sw_if_index,
                    ip,
                    mac,
                } => (sw_if_index, IpAddr::from(std::net::Ipv4Addr::from(ip)), mac),
                Learned::Ip6Neighbor {
                    sw_if_index,
                    ip,
                    mac,
                } => (sw_if_index, IpAddr::from(std::net::Ipv6Addr::from(ip)), mac),
            };
            if self
                .neighbors
                .get(&(sw, ip))
                .is_some_and(|e| e.is_static || e.mac == mac)
            {
                continue;
            }
            if self.neighbor_add(sw, ip, mac, false).is_ok() {
                n += 1;
            }
        }
        n
    }

    // ----- punt ------------------------------------------------------------------------------

    /// Send local packets this stack does not handle to `tx_sw_if_index` via `next_hop`.
    /// Send local packets this stack does not handle into table `table_id` (a lookup there).
    pub fn punt_redirect_table(
        &mut self,
        ip6: bool,
        rx: Option<u32>,
        table_id: u32,
        add: bool,
    ) -> Result<(), FwdError> {
        let fib = self
            .fib_index(ip6, table_id)
            .ok_or(FwdError::NoSuchTable(table_id))?;
        let adj = self.lookup_adj(ip6, fib);
        let list = if ip6 {
            &mut self.fwd.punt6
        } else {
            &mut self.fwd.punt4
        };
        list.retain(|p| p.rx_sw_if_index != rx);
        if add {
            list.push(PuntRedirect {
                rx_sw_if_index: rx,
                adj,
            });
        }
        self.fwd_dirty = true;
        self.publish();
        Ok(())
    }

    pub fn punt_redirect(
        &mut self,
        ip6: bool,
        rx: Option<u32>,
        tx: u32,
        next_hop: Option<IpAddr>,
        add: bool,
    ) -> Result<(), FwdError> {
        self.iface(tx)?;
        let adj = match next_hop {
            Some(nh) => self.neighbor_adj(tx, nh),
            None => self.attached_adj(tx, ip6),
        };
        let list = if ip6 {
            &mut self.fwd.punt6
        } else {
            &mut self.fwd.punt4
        };
        list.retain(|p| p.rx_sw_if_index != rx);
        if add {
            list.push(PuntRedirect {
                rx_sw_if_index: rx,
                adj,
            });
        }
        self.fwd_dirty = true;
        self.publish();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The interfaces a route's load-balance sends to.
    fn lb_ifs(f: &Forwarding, p: Prefix) -> Vec<u32> {
        let r = f.route_get(0, p).unwrap();
        let lb = f.fwd().lb(r.lb);
        let mut v: Vec<u32> = lb.buckets[..lb.n_buckets as usize]
            .iter()
            .map(|&a| f.fwd().adj(a).sw_if_index)
            .collect();
        v.dedup();
        v
    }

    /// A writer with ethernet interfaces of these MTUs.
    fn with_ifs(mtus: &[u16]) -> (Forwarding, Vec<u32>) {
        let mut f = Forwarding::new(Shared::new());
        let ifs = (0..mtus.len())
            .map(|i| {
                let name = format!("pg{i}");
                f.interface_add(&name, "pg", [2, 0, 0, 0, 0, i as u8], true, mtus[i])
                    .unwrap()
            })
            .collect();
        (f, ifs)
    }

    #[test]
    fn path_preference_picks_the_best_usable_paths() {
        let (mut f, ifs) = with_ifs(&[1500, 1500]);
        let (a, b) = (ifs[0], ifs[1]);
        f.address_add(a, Prefix::parse("198.18.0.1/24").unwrap())
            .unwrap();
        f.address_add(b, Prefix::parse("198.19.0.1/24").unwrap())
            .unwrap();
        let (nha, nhb): (IpAddr, IpAddr) =
            ("198.18.0.2".parse().unwrap(), "198.19.0.2".parse().unwrap());
        let p = Prefix::parse("10.0.0.0/8").unwrap();
        let primary = Path::via(nha, Some(a));
        let backup = Path {
            preference: 1,
            ..Path::via(nhb, Some(b))
        };
        f.route_add(0, p, vec![backup, primary]).unwrap();
        assert_eq!(
            lb_ifs(&f, p),
            vec![a],
            "only the preference-0 path forwards"
        );
        assert_eq!(f.route_get(0, p).unwrap().paths.len(), 2, "both paths kept");
        // Same preference: ECMP.
        let peer = Path::via(nhb, Some(b));
        f.route_add(0, p, vec![primary, peer]).unwrap();
        assert_eq!(lb_ifs(&f, p), vec![a, b]);
        // The primary goes: the backup takes over.
        f.route_add(0, p, vec![backup]).unwrap();
        assert_eq!(lb_ifs(&f, p), vec![b]);
        // A primary that cannot resolve (a recursive next hop with no route) leaves the
        // backup forwarding.
        let unresolved = Path::via("203.0.113.9".parse().unwrap(), None);
        f.route_add(0, p, vec![unresolved, backup]).unwrap();
        assert_eq!(lb_ifs(&f, p), vec![b]);
    }

    #[test]
    fn protocol_mtus_apply_per_family() {
        let (mut f, ifs) = with_ifs(&[9000]);
        let a = ifs[0];
        let nh4: IpAddr = "198.18.0.2".parse().unwrap();
        let nh6: IpAddr = "fd00::2".parse().unwrap();
        let (p4, p6) = (
            Prefix::parse("10.0.0.0/8").unwrap(),
            Prefix::parse("fd01::/64").unwrap(),
        );
        f.route_add(0, p4, vec![Path::via(nh4, Some(a))]).unwrap();
        f.route_add(0, p6, vec![Path::via(nh6, Some(a))]).unwrap();
        let mtu = |f: &Forwarding, p: Prefix| {
            let r = f.route_get(0, p).unwrap();
            f.fwd().adj(f.fwd().lb(r.lb).buckets[0]).mtu
        };
        assert_eq!((mtu(&f, p4), mtu(&f, p6)), (9000, 9000));
        f.set_protocol_mtu(a, 1400, 0).unwrap();
        assert_eq!((mtu(&f, p4), mtu(&f, p6)), (1400, 9000), "ip6 follows L3");
        f.set_protocol_mtu(a, 0, 1280).unwrap();
        f.set_mtu(a, 1500).unwrap();
        assert_eq!((mtu(&f, p4), mtu(&f, p6)), (1500, 1280));
        // An adjacency made afterwards takes its family's MTU too.
        let p6b = Prefix::parse("fd02::/64").unwrap();
        f.route_add(0, p6b, vec![Path::via("fd00::3".parse().unwrap(), Some(a))])
            .unwrap();
        assert_eq!(mtu(&f, p6b), 1280);
        assert!(f.set_protocol_mtu(a, 60, 0).is_err());
    }
}
