//! Feature arcs: named points of the graph where registered feature nodes can be enabled per
//! interface (VPP's `VNET_FEATURE_ARC_INIT`, `VNET_FEATURE_INIT`, `vnet_feature_enable_disable`).
//!
//! An arc has a start node, which sends a packet to the arc's first enabled feature, and an end
//! node, where the packet goes once no enabled feature is left. A feature registers on an arc by
//! name with runs-before / runs-after constraints; the graph builder orders each arc's features
//! and appends to the start node and to every feature node one edge per later feature plus the
//! end. A feature node therefore never lists its arc's features: it calls
//! [`ArcEdges::next`] (VPP's `vnet_feature_next`) with the packet's `feature_mask`.
//!
//! Enabling a feature sets its bit in the interface's mask for that arc (see
//! `Forwarding::feature_enable`). Packets on interfaces with no feature enabled pay one test of
//! a zero mask, as before arcs existed.

use crate::tables::MAX_FEATURES;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The arcs rvpp provides, by index into the per-interface masks.
pub mod arc {
    pub const IP4_UNICAST: usize = 0;
    pub const IP6_UNICAST: usize = 1;
    pub const IP4_OUTPUT: usize = 2;
    pub const IP6_OUTPUT: usize = 3;
    pub const IP4_LOCAL: usize = 4;
    pub const IP6_LOCAL: usize = 5;
    pub const COUNT: usize = 6;
}

/// A feature arc: where it starts and where packets go after its last feature.
#[derive(Clone, Copy, Debug)]
pub struct ArcDef {
    pub name: &'static str,
    /// Nodes that send packets onto the arc.
    pub start: &'static [&'static str],
    /// Where packets continue after the last enabled feature.
    pub end: &'static str,
    /// The mask is kept per rx interface (input arcs) or per tx interface (output arcs).
    pub output: bool,
}

/// Every arc, indexed by the constants in [`arc`].
pub const ARCS: [ArcDef; arc::COUNT] = [
    ArcDef {
        name: "ip4-unicast",
        start: &["ip4-input"],
        end: "ip4-lookup",
        output: false,
    },
    ArcDef {
        name: "ip6-unicast",
        start: &["ip6-input"],
        end: "ip6-lookup",
        output: false,
    },
    ArcDef {
        name: "ip4-output",
        start: &["ip4-rewrite"],
        end: "interface-output",
        output: true,
    },
    ArcDef {
        name: "ip6-output",
        start: &["ip6-rewrite"],
        end: "interface-output",
        output: true,
    },
    // Packets for one of our addresses (and to be punted), on the rx interface's mask.
    ArcDef {
        name: "ip4-local",
        start: &["ip4-lookup"],
        end: "ip4-local",
        output: false,
    },
    ArcDef {
        name: "ip6-local",
        start: &["ip6-lookup"],
        end: "ip6-local",
        output: false,
    },
];

/// The arc called `name`.
pub fn arc_index(name: &str) -> Option<usize> {
    ARCS.iter().position(|a| a.name == name)
}

/// A feature's registration: its node sits on `arc` (VPP's `VNET_FEATURE_INIT`). The feature
/// is named by its node. Constraints that name features not registered on the arc are ignored
/// (as in VPP), so a feature can order itself against an optional one.
#[derive(Clone, Copy, Debug)]
pub struct Feature {
    pub arc: &'static str,
    pub node: &'static str,
    pub runs_before: &'static [&'static str],
    pub runs_after: &'static [&'static str],
}

impl Feature {
    pub const fn new(arc: &'static str, node: &'static str) -> Self {
        Self {
            arc,
            node,
            runs_before: &[],
            runs_after: &[],
        }
    }
    pub const fn runs_before(mut self, names: &'static [&'static str]) -> Self {
        self.runs_before = names;
        self
    }
    pub const fn runs_after(mut self, names: &'static [&'static str]) -> Self {
        self.runs_after = names;
        self
    }
}

/// A node's edges on its arc: `base + k` leads to feature `k`, `base + n` to the arc's end.
/// `skip` masks off the features at or before the node itself (0 for the arc's start).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArcEdges {
    pub base: u16,
    pub n: u16,
    pub skip: u32,
}

impl ArcEdges {
    /// A node that is on no arc.
    pub const NONE: Self = Self {
        base: 0,
        n: 0,
        skip: 0,
    };

    /// For an arc's start node: put a packet on the arc with the interface's `mask` and return
    /// the edge to its first feature. Out of line, so that the start node's loop for packets
    /// with no feature is what it was without arcs.
    #[cold]
    #[inline(never)]
    pub fn enter(&self, meta: &mut crate::buffer::BufferMeta, mask: u32) -> u16 {
        meta.feature_mask = mask;
        self.next(mask)
    }

    /// The edge to the first enabled feature after this node, or to the arc's end.
    #[inline(always)]
    pub fn next(&self, mask: u32) -> u16 {
        let rest = mask & !self.skip;
        if rest == 0 {
            self.base + self.n
        } else {
            self.base + rest.trailing_zeros() as u16
        }
    }
}

/// Why a feature cannot be enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeatureError {
    NoSuchArc(String),
    NoSuchFeature { arc: String, feature: String },
}

impl std::fmt::Display for FeatureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoSuchArc(a) => write!(f, "no feature arc '{a}'"),
            Self::NoSuchFeature { arc, feature } => {
                write!(f, "no feature '{feature}' on arc '{arc}'")
            }
        }
    }
}

/// The registered features of every arc, in the order they run. Bit `k` of an interface's mask
/// for an arc enables the arc's feature `k`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FeatureSet {
    ordered: [Vec<&'static str>; arc::COUNT],
}

impl FeatureSet {
    /// Order each arc's features by their constraints (registration order breaks ties).
    /// `nodes` are the graph's node names: a feature's node and its arc's start and end must be
    /// among them.
    pub fn order(features: &[Feature], nodes: &[&'static str]) -> Result<Self, String> {
        let mut set = Self::default();
        for f in features {
            let a = arc_index(f.arc).ok_or_else(|| {
                format!("feature '{}' registers on unknown arc '{}'", f.node, f.arc)
            })?;
            if !nodes.contains(&f.node) {
                return Err(format!("feature '{}' has no node in the graph", f.node));
            }
            let def = &ARCS[a];
            for n in def.start.iter().chain([&def.end]) {
                if !nodes.contains(n) {
                    return Err(format!(
                        "arc '{}' needs node '{n}', not in the graph",
                        def.name
                    ));
                }
            }
            if set.ordered.iter().any(|v| v.contains(&f.node)) {
                return Err(format!("feature '{}' registered twice", f.node));
            }
            if ARCS.iter().any(|d| d.start.contains(&f.node)) {
                return Err(format!(
                    "'{}' starts an arc and cannot be a feature",
                    f.node
                ));
            }
            set.ordered[a].push(f.node);
        }
        for (a, def) in ARCS.iter().enumerate() {
            let regs: Vec<&Feature> = set.ordered[a]
                .iter()
                .map(|n| features.iter().find(|f| f.node == *n).expect("registered"))
                .collect();
            set.ordered[a] = topo_order(def.name, &regs)?;
            if set.ordered[a].len() > MAX_FEATURES {
                return Err(format!(
                    "arc '{}' has {} features, at most {MAX_FEATURES}",
                    def.name,
                    set.ordered[a].len()
                ));
            }
        }
        Ok(set)
    }

    /// Where `node` is on an arc: Some((arc, skip mask)) for an arc start or a feature.
    pub(crate) fn place_of(&self, node: &str) -> Result<Option<(usize, u32)>, String> {
        for (a, v) in self.ordered.iter().enumerate() {
            if let Some(p) = v.iter().position(|n| *n == node) {
                let skip = if p >= 31 { u32::MAX } else { (2u32 << p) - 1 };
                return Ok(Some((a, skip)));
            }
        }
        let starts: Vec<usize> = (0..arc::COUNT)
            .filter(|&a| ARCS[a].start.contains(&node))
            .collect();
        match starts[..] {
            [] => Ok(None),
            [a] => Ok(Some((a, 0))),
            _ => Err(format!("node '{node}' starts more than one arc")),
        }
    }

    /// The nodes an arc's start and features lead to: each feature in order, then the end.
    pub(crate) fn arc_nodes(&self, arc: usize) -> Vec<&'static str> {
        let mut v = self.ordered[arc].clone();
        v.push(ARCS[arc].end);
        v
    }

    /// The features of arc `arc`, in the order they run.
    pub fn features(&self, arc: usize) -> &[&'static str] {
        &self.ordered[arc]
    }

    /// (arc index, bit) of `feature` on the arc called `arc`.
    pub fn find(&self, arc: &str, feature: &str) -> Result<(usize, u32), FeatureError> {
        let a = arc_index(arc).ok_or_else(|| FeatureError::NoSuchArc(arc.into()))?;
        let p = self.ordered[a]
            .iter()
            .position(|n| *n == feature)
            .ok_or_else(|| FeatureError::NoSuchFeature {
                arc: arc.into(),
                feature: feature.into(),
            })?;
        Ok((a, 1 << p))
    }

    /// Names of the features a mask on arc `arc` enables, in the order they run.
    pub fn enabled(&self, arc: usize, mask: u32) -> Vec<&'static str> {
        self.ordered[arc]
            .iter()
            .enumerate()
            .filter(|(k, _)| mask & (1 << k) != 0)
            .map(|(_, n)| *n)
            .collect()
    }
}

/// Kahn's algorithm over "a runs before b" edges; among ready features the first registered
/// goes first, so the order is stable.
fn topo_order(arc: &str, regs: &[&Feature]) -> Result<Vec<&'static str>, String> {
    let n = regs.len();
    let idx = |name: &str| regs.iter().position(|f| f.node == name);
    let mut before = vec![Vec::new(); n];
    let mut indeg = vec![0usize; n];
    for (i, f) in regs.iter().enumerate() {
        let succ = f.runs_before.iter().filter_map(|b| idx(b)).map(|j| (i, j));
        let pred = f.runs_after.iter().filter_map(|a| idx(a)).map(|j| (j, i));
        for (from, to) in succ.chain(pred) {
            if from == to {
                return Err(format!("feature '{}' on arc '{arc}' orders itself", f.node));
            }
            if !before[from].contains(&to) {
                before[from].push(to);
                indeg[to] += 1;
            }
        }
    }
    let mut done = vec![false; n];
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let Some(i) = (0..n).find(|&i| !done[i] && indeg[i] == 0) else {
            let left: Vec<&str> = (0..n).filter(|&i| !done[i]).map(|i| regs[i].node).collect();
            return Err(format!(
                "features on arc '{arc}' have a cycle in their ordering: {}",
                left.join(", ")
            ));
        };
        done[i] = true;
        out.push(regs[i].node);
        for &j in &before[i] {
            indeg[j] -= 1;
        }
    }
    Ok(out)
}

/// Shared tables that features bring, one per type, created on first use. The control side and
/// every worker's graph get the same `Arc`, so a feature adds its own tables (typically a
/// [`crate::rcu::Published`] the control thread replaces and its node snapshots) without a field
/// in `tables.rs`. Per-worker state needs nothing: it lives in the feature's node instance.
#[derive(Clone, Default)]
pub struct FeatureTables(Arc<Mutex<TableMap>>);

type TableMap = HashMap<TypeId, Arc<dyn Any + Send + Sync>>;

impl FeatureTables {
    /// The table of type `T`, created with `T::default()` the first time it is asked for.
    pub fn get<T: Any + Send + Sync + Default>(&self) -> Arc<T> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let t = m
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Arc::new(T::default()))
            .clone();
        t.downcast::<T>().expect("keyed by its TypeId")
    }

    /// Make `t` the table of type `T`, for one not built by `T::default()` (sized from
    /// configuration). Do it before the graph is built: nodes keep the `Arc` they took.
    pub fn insert<T: Any + Send + Sync>(&self, t: Arc<T>) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.insert(TypeId::of::<T>(), t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: &[&str] = &["ip4-input", "ip4-lookup", "a", "b", "c"];

    #[test]
    fn next_skips_disabled_features() {
        let start = ArcEdges {
            base: 3,
            n: 4,
            skip: 0,
        };
        assert_eq!(start.next(0), 7);
        assert_eq!(start.next(0b0101), 3);
        let after0 = ArcEdges { skip: 1, ..start };
        assert_eq!(after0.next(0b0101), 5);
        let after2 = ArcEdges {
            skip: 0b111,
            ..start
        };
        assert_eq!(after2.next(0b0101), 7);
        let last = ArcEdges {
            skip: u32::MAX,
            ..start
        };
        assert_eq!(last.next(u32::MAX), 7);
    }

    #[test]
    fn constraints_order_features() {
        let fs = [
            Feature::new("ip4-unicast", "a").runs_after(&["c"]),
            Feature::new("ip4-unicast", "b").runs_before(&["a", "not-loaded"]),
            Feature::new("ip4-unicast", "c"),
        ];
        let set = FeatureSet::order(&fs, NODES).unwrap();
        assert_eq!(set.features(arc::IP4_UNICAST), ["b", "c", "a"]);
        assert_eq!(set.find("ip4-unicast", "a").unwrap(), (arc::IP4_UNICAST, 4));
    }

    #[test]
    fn cycles_and_unknown_names_are_refused() {
        let cyc = [
            Feature::new("ip4-unicast", "a").runs_before(&["b"]),
            Feature::new("ip4-unicast", "b").runs_before(&["a"]),
        ];
        let e = FeatureSet::order(&cyc, NODES).unwrap_err();
        assert!(e.contains("cycle") && e.contains("a, b"), "{e}");
        let e = FeatureSet::order(&[Feature::new("ip9-unicast", "a")], NODES).unwrap_err();
        assert!(e.contains("unknown arc 'ip9-unicast'"), "{e}");
        let e = FeatureSet::order(&[Feature::new("ip4-unicast", "zz")], NODES).unwrap_err();
        assert!(e.contains("no node"), "{e}");
        let set = FeatureSet::order(&[Feature::new("ip4-unicast", "a")], NODES).unwrap();
        assert_eq!(
            set.find("ip4-unicast", "b"),
            Err(FeatureError::NoSuchFeature {
                arc: "ip4-unicast".into(),
                feature: "b".into()
            })
        );
        assert_eq!(
            set.find("nope", "a"),
            Err(FeatureError::NoSuchArc("nope".into()))
        );
    }
}
