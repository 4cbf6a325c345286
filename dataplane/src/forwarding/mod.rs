//! The single writer of the forwarding tables: interfaces, addresses, VRFs, routes, neighbours.
//!
//! Runs on the control thread. It edits private copies of the interface and forwarding tables,
//! updates FIBs in place, and publishes. Ordering rule: a FIB leaf may name a load-balance only
//! after every worker can see it, so new load-balances are published and a grace period passes
//! before the leaf is written.

mod addresses;
mod adjacencies;
mod features;
mod interfaces;
mod neighbours;
mod pbl;
mod prefix;
mod punt;
mod routes;
mod tables;
#[cfg(test)]
mod tests;

pub use neighbours::{Neighbor, NeighborConfig, NeighborCounts, Probe, PROBE_WAIT};
pub use prefix::{mask4, mask6, Af, Prefix};
pub use routes::{FibMemory, Path, PathKind, Route, Shadowed, Source, SourcePaths};

use adjacencies::AdjKey;
use interfaces::fib_of;
use tables::{Ip4Table, Ip6Table};

use crate::feature::{FeatureError, FeatureSet};
use crate::fib::{FibError, Ip4FibConfig};
use crate::tables::*;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

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
    /// Learned entries only, by family: when each was last confirmed.
    neighbor_seen: [BTreeMap<(u32, IpAddr), neighbours::Seen>; 2],
    /// When `neighbor_age` next looks at them.
    neighbor_sweep: Option<std::time::Instant>,
    /// `ip_neighbor_config`, by family.
    neighbor_cfg: [NeighborConfig; 2],
    neighbor_counts: NeighborCounts,
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
            neighbor_seen: Default::default(),
            neighbor_sweep: None,
            neighbor_cfg: Default::default(),
            neighbor_counts: Default::default(),
            unpublished_lbs: false,
            ifs_dirty: true,
            fwd_dirty: true,
            fib4_config,
            proto_mtu: HashMap::new(),
            features: Arc::default(),
            shared,
        };
        let local4 = f.adj(
            AdjKey::Local { af: Af::Ip4 },
            Adjacency {
                kind: AdjKind::Local,
                ..Default::default()
            },
        );
        let local6 = f.adj(
            AdjKey::Local { af: Af::Ip6 },
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
        f.table_add(Af::Ip4, 0, "ipv4-VRF:0").expect("table 0");
        f.table_add(Af::Ip6, 0, "ipv6-VRF:0").expect("table 0");
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

    /// The UDP ports besides 4789 that VXLAN over `af` is received on: the VXLAN service sets
    /// them from its tunnels' local ports each time the tunnel table changes.
    pub fn set_vxlan_ports(&mut self, af: Af, mut ports: Vec<u16>) {
        ports.retain(|p| *p != crate::wire::tunnel::VXLAN_PORT);
        ports.sort_unstable();
        ports.dedup();
        let cur = &mut self.fwd.vxlan_ports[(af == Af::Ip6) as usize];
        if *cur != ports {
            *cur = ports;
            self.fwd_dirty = true;
            self.publish();
        }
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
    pub(super) fn barrier_for_new_lbs(&mut self) {
        if self.unpublished_lbs {
            self.publish();
            let stamp = self.shared.grace.advance();
            self.shared.grace.wait_safe(stamp);
            self.unpublished_lbs = false;
        }
    }

    pub(super) fn publish_fibs(&mut self) {
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
}
