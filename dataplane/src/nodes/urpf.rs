//! Unicast reverse-path forwarding checks, as VPP's urpf plugin: a packet's source is looked
//! up in a FIB and the packet is dropped when the route it finds could not have carried it.
//!
//! - loose: the source's route leaves through some interface (no route, a drop, a local or a
//!   table-lookup route has none, as in VPP, whose receive and deag paths add no interface);
//! - strict, rx: that route leaves through the interface the packet arrived on;
//! - strict, tx: the route does not leave through the interface the packet is sent on (the
//!   packet would come back), unless rvpp made the packet itself.
//!
//! Packets to multicast (and IPv4 broadcast) destinations pass. Eight nodes with VPP's names,
//! `ip4-rx-urpf-loose` … `ip6-tx-urpf-strict`, on ip4-/ip6-unicast (rx) and ip4-/ip6-output
//! (tx); the mode is which node is enabled, and [`UrpfTable`] gives each interface's FIB (a
//! custom table, or the interface's own, which then follows the interface's table binding).

use crate::buffer::flags;
use crate::feature::{Feature, FeatureTables};
use crate::fib::LEAF_MISS;
use crate::forwarding::Af;
use crate::graph::{GraphBuilder, Node, NodeInfo};
use crate::rcu::{Published, Snapshot};
use crate::runtime::Ctx;
use crate::tables::{AdjKind, FibSet, FwdTable, IfFast};
use crate::wire::{Ip4Hdr, Ip6Hdr};
use std::sync::Arc;

/// What a check accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    Loose,
    Strict,
}

/// Which side of the interface a check sits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dir {
    Rx,
    Tx,
}

/// The feature for (family, direction, mode).
pub const fn feature(af: Af, dir: Dir, mode: Mode) -> Feature {
    FEATURES[slot(af, dir) * 2 + mode as usize]
}

/// Every uRPF feature, by `slot(af, dir) * 2 + mode`. Loose runs before strict, both before
/// cnat and npol look at the packet (as in VPP, where they run early on ip4-unicast).
pub const FEATURES: [Feature; 8] = [
    Feature::new("ip4-unicast", "ip4-rx-urpf-loose").runs_before(&["ip4-rx-urpf-strict"]),
    Feature::new("ip4-unicast", "ip4-rx-urpf-strict").runs_before(&["cnat-input-ip4"]),
    Feature::new("ip4-output", "ip4-tx-urpf-loose"),
    Feature::new("ip4-output", "ip4-tx-urpf-strict"),
    Feature::new("ip6-unicast", "ip6-rx-urpf-loose").runs_before(&["ip6-rx-urpf-strict"]),
    Feature::new("ip6-unicast", "ip6-rx-urpf-strict").runs_before(&["cnat-input-ip6"]),
    Feature::new("ip6-output", "ip6-tx-urpf-loose"),
    Feature::new("ip6-output", "ip6-tx-urpf-strict"),
];

const fn slot(af: Af, dir: Dir) -> usize {
    (matches!(af, Af::Ip6) as usize) * 2 + dir as usize
}

/// The FIB each interface's check looks the source up in, per (family, direction).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UrpfTable {
    fibs: [Vec<u32>; 4],
}

/// "Use the interface's own FIB."
pub const INTERFACE_FIB: u32 = u32::MAX;

impl UrpfTable {
    /// Set the FIB for `sw`'s check; `INTERFACE_FIB` follows the interface's binding.
    pub fn set(&mut self, af: Af, dir: Dir, sw: u32, fib_index: u32) {
        let v = &mut self.fibs[slot(af, dir)];
        if v.len() <= sw as usize {
            v.resize(sw as usize + 1, INTERFACE_FIB);
        }
        v[sw as usize] = fib_index;
    }

    #[inline]
    fn fib(&self, af: Af, dir: Dir, sw: u32, fast: impl FnOnce() -> IfFast) -> u32 {
        match self.fibs[slot(af, dir)].get(sw as usize) {
            Some(&f) if f != INTERFACE_FIB => f,
            _ => {
                let f = fast();
                match af {
                    Af::Ip4 => f.ip4_fib,
                    Af::Ip6 => f.ip6_fib,
                }
            }
        }
    }
}

/// The feature's shared table, as kept in [`FeatureTables`].
pub type Table = Published<UrpfTable>;

crate::next_edges! {
    mod next {
        DROP => "error-drop",
    }
}

crate::node_errors! {
    pub mod error {
        DROP => "uRPF Drop",
        MALFORMED => "no IP header where one was expected (dropped)",
    }
}

/// Add the eight nodes; they share the [`Table`] in `tables`.
pub fn register(mut b: GraphBuilder, tables: &FeatureTables) -> GraphBuilder {
    let t = tables.get::<Table>();
    for (i, f) in FEATURES.iter().enumerate() {
        let af = if i >= 4 { Af::Ip6 } else { Af::Ip4 };
        let dir = if i % 4 >= 2 { Dir::Tx } else { Dir::Rx };
        let mode = if i % 2 == 1 { Mode::Strict } else { Mode::Loose };
        b = b.feature(*f, Box::new(UrpfNode::new(t.clone(), f.node, af, dir, mode)));
    }
    b
}

/// Whether a packet from `src` passes: `leaf` is the source's lookup, `sw` the interface the
/// check is on.
#[inline]
fn passes(fwd: &FwdTable, leaf: u32, sw: u32, dir: Dir, mode: Mode, local: bool) -> bool {
    if leaf >= LEAF_MISS - 1 {
        return dir == Dir::Tx && mode == Mode::Strict && local;
    }
    let lb = fwd.lb(leaf);
    let (mut any, mut via_sw) = (false, false);
    for &a in &lb.buckets[..(lb.n_buckets.max(1) as usize).min(lb.buckets.len())] {
        let adj = fwd.adj(a);
        if matches!(
            adj.kind,
            AdjKind::Rewrite | AdjKind::Glean | AdjKind::Incomplete
        ) {
            any = true;
            via_sw |= adj.sw_if_index == sw;
        }
        // A PBL client's entry is exempt from loose checks (VPP's LOOSE_URPF_EXEMPT).
        any |= adj.kind == AdjKind::Pbl;
    }
    match (mode, dir) {
        (Mode::Loose, _) => any,
        (Mode::Strict, Dir::Rx) => via_sw,
        (Mode::Strict, Dir::Tx) => (any && !via_sw) || local,
    }
}

#[inline]
fn lookup(fibs: &FibSet, af: Af, fib: u32, src: u128) -> u32 {
    match af {
        Af::Ip4 => fibs.ip4.get(fib as usize).and_then(|f| f.as_deref()).map(|f| f.lookup(src as u32)),
        Af::Ip6 => fibs.ip6.get(fib as usize).and_then(|f| f.as_deref()).map(|f| f.lookup(src)),
    }
    .unwrap_or(LEAF_MISS)
}

/// (source, destination is multicast or broadcast) of the IP header at the start of `d`.
#[inline]
fn addrs(af: Af, d: &[u8]) -> Option<(u128, bool)> {
    match af {
        Af::Ip4 => Ip4Hdr::new(d).map(|h| {
            let dst = h.dst();
            (h.src() as u128, dst >> 28 == 0xe || dst == u32::MAX)
        }),
        Af::Ip6 => Ip6Hdr::new(d).map(|h| (h.src(), h.dst() >> 120 == 0xff)),
    }
}

/// One of the eight uRPF nodes.
pub struct UrpfNode {
    table: Arc<Table>,
    snap: Snapshot<UrpfTable>,
    name: &'static str,
    af: Af,
    dir: Dir,
    mode: Mode,
}

impl UrpfNode {
    pub fn new(table: Arc<Table>, name: &'static str, af: Af, dir: Dir, mode: Mode) -> Self {
        Self {
            snap: table.snapshot(),
            table,
            name,
            af,
            dir,
            mode,
        }
    }
}

impl Node for UrpfNode {
    fn info(&self) -> NodeInfo {
        NodeInfo::internal(self.name, next::NAMES, error::NAMES)
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        self.snap.refresh(&self.table);
        let (t, af, dir, mode) = (self.snap.get(), self.af, self.dir, self.mode);
        let errs = cx.errs();
        let arc = cx.arc();
        let (fwd, fibs, ifs) = (
            cx.tables.fwd.get(),
            cx.tables.fibs.get(),
            cx.tables.ifs.get(),
        );
        let mut view = cx.bufs.view();
        for (&bi, next_out) in bufs.iter().zip(nexts.iter_mut()) {
            let b = view.get(bi);
            let (sw, l3) = match dir {
                Dir::Rx => (b.meta.rx_sw_if_index, 0),
                // After the rewrite the packet starts with the L2 header the adjacency wrote.
                Dir::Tx => (
                    b.meta.tx_sw_if_index,
                    fwd.adj(b.meta.adj_index).rewrite_len as usize,
                ),
            };
            let Some((src, mcast)) = b.data().get(l3..).and_then(|d| addrs(af, d)) else {
                b.meta.error = errs.error(error::MALFORMED);
                *next_out = next::DROP;
                continue;
            };
            let ok = mcast || {
                let fib = t.fib(af, dir, sw, || ifs.fast(sw));
                let local = b.meta.flags & flags::LOCALLY_ORIGINATED != 0;
                passes(fwd, lookup(fibs, af, fib, src), sw, dir, mode, local)
            };
            *next_out = if ok {
                arc.next(b.meta.feature_mask)
            } else {
                b.meta.error = errs.error(error::DROP);
                next::DROP
            };
        }
    }

    fn trace(&self, b: &crate::buffer::Buf<'_>) -> String {
        format!("uRPF fib {}", b.meta.fib_index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::{Adjacency, LoadBalance};

    fn fwd() -> FwdTable {
        let mut t = FwdTable::default();
        let adj = |kind, sw| Adjacency {
            kind,
            sw_if_index: sw,
            ..Default::default()
        };
        // adj 2: out of 5; adj 3: out of 6; adj 4: local.
        t.adjs.extend([adj(AdjKind::Rewrite, 5), adj(AdjKind::Glean, 6), adj(AdjKind::Local, 0)]);
        let mut ecmp = LoadBalance::single(2);
        ecmp.buckets[1] = 3;
        ecmp.n_buckets = 2;
        // lb 2: via 5; lb 3: via 5 or 6; lb 4: local.
        t.lbs.extend([LoadBalance::single(2), ecmp, LoadBalance::single(4)]);
        t
    }

    #[test]
    fn loose_wants_a_route_out_of_some_interface() {
        let t = fwd();
        let p = |leaf| passes(&t, leaf, 9, Dir::Rx, Mode::Loose, false);
        assert!(p(2) && p(3));
        assert!(!p(4), "a local route has no interface");
        assert!(!p(LEAF_MISS) && !p(LEAF_MISS - 1));
        assert!(!p(crate::tables::DROP_LB) && !p(crate::tables::UNREACH_LB));
        let mut t = t;
        t.adjs.push(Adjacency {
            kind: AdjKind::Pbl,
            ..Default::default()
        });
        t.lbs.push(LoadBalance::single(5));
        assert!(passes(&t, 5, 9, Dir::Rx, Mode::Loose, false), "a PBL entry is exempt");
        assert!(!passes(&t, 5, 9, Dir::Rx, Mode::Strict, false), "from loose checks only");
    }

    #[test]
    fn strict_rx_wants_the_arrival_interface() {
        let t = fwd();
        let p = |leaf, sw| passes(&t, leaf, sw, Dir::Rx, Mode::Strict, false);
        assert!(p(2, 5) && !p(2, 6));
        assert!(p(3, 5) && p(3, 6) && !p(3, 7), "any ECMP path counts");
        assert!(!p(LEAF_MISS, 5));
    }

    #[test]
    fn strict_tx_refuses_a_packet_that_would_come_back() {
        let t = fwd();
        let p = |leaf, sw, local| passes(&t, leaf, sw, Dir::Tx, Mode::Strict, local);
        assert!(p(2, 6, false) && !p(2, 5, false));
        assert!(p(2, 5, true), "locally made packets pass");
        assert!(!p(LEAF_MISS, 5, false) && p(LEAF_MISS, 5, true));
    }

    #[test]
    fn features_are_indexed_by_family_direction_and_mode() {
        assert_eq!(feature(Af::Ip4, Dir::Rx, Mode::Loose).node, "ip4-rx-urpf-loose");
        assert_eq!(feature(Af::Ip4, Dir::Tx, Mode::Strict).node, "ip4-tx-urpf-strict");
        assert_eq!(feature(Af::Ip6, Dir::Rx, Mode::Strict).node, "ip6-rx-urpf-strict");
        assert_eq!(feature(Af::Ip6, Dir::Tx, Mode::Loose).arc, "ip6-output");
    }

    #[test]
    fn an_interface_without_a_custom_fib_uses_its_own() {
        let mut t = UrpfTable::default();
        let fast = IfFast {
            ip4_fib: 3,
            ip6_fib: 4,
            ..Default::default()
        };
        assert_eq!(t.fib(Af::Ip4, Dir::Rx, 7, || fast), 3);
        t.set(Af::Ip4, Dir::Rx, 7, 9);
        assert_eq!(t.fib(Af::Ip4, Dir::Rx, 7, || fast), 9);
        assert_eq!(t.fib(Af::Ip4, Dir::Tx, 7, || fast), 3);
        assert_eq!(t.fib(Af::Ip6, Dir::Rx, 7, || fast), 4);
    }
}
