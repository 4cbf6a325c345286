//! ip4-ttl-fixup / ip6-ttl-fixup (calico's ip_ttl_fixup plugin): packets received on a source
//! interface and sent on a destination interface leave with the TTL (hop limit) they arrived
//! with, so rvpp between the host tap and the uplink is not a hop for the node's own traffic.
//!
//! The rewrite has decremented already; on the destination's output arc this node gives the
//! hop back (and fixes the IPv4 checksum incrementally). A packet that arrived with TTL 1 has
//! been answered with time exceeded before it gets here, unlike calico's plugin, which skips
//! the decrement.

use crate::feature::{Feature, FeatureTables};
use crate::graph::{GraphBuilder, Node, NodeInfo};
use crate::rcu::{Published, Snapshot};
use crate::runtime::Ctx;
use crate::wire::csum_update;
use std::sync::Arc;

pub const IP4: Feature =
    Feature::new("ip4-output", "ip4-ttl-fixup").runs_before(&["vxlan4-encap", "ipip4-encap"]);
pub const IP6: Feature =
    Feature::new("ip6-output", "ip6-ttl-fixup").runs_before(&["vxlan6-encap", "ipip6-encap"]);

/// The fixups: (source, destination) interface pairs, sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fixups(pub Vec<(u32, u32)>);

impl Fixups {
    #[inline]
    pub fn applies(&self, rx: u32, tx: u32) -> bool {
        self.0.binary_search(&(rx, tx)).is_ok()
    }
}

/// The feature's shared table, as kept in [`FeatureTables`].
pub type Table = Published<Fixups>;

crate::next_edges! {
    mod next {
        DROP => "error-drop",
    }
}

crate::node_errors! {
    pub mod error {
        RESTORED => "ttl restored (counted)",
    }
}

pub fn register(b: GraphBuilder, tables: &FeatureTables) -> GraphBuilder {
    let t = tables.get::<Table>();
    b.feature(IP4, Box::new(TtlFixup::new(t.clone(), false)))
        .feature(IP6, Box::new(TtlFixup::new(t, true)))
}

pub struct TtlFixup {
    table: Arc<Table>,
    snap: Snapshot<Fixups>,
    ip6: bool,
}

impl TtlFixup {
    pub fn new(table: Arc<Table>, ip6: bool) -> Self {
        Self {
            snap: table.snapshot(),
            table,
            ip6,
        }
    }
}

/// Give the hop back to the IP header at the start of `d`.
#[inline]
fn restore(d: &mut [u8], ip6: bool) -> bool {
    if ip6 {
        match d.get_mut(..8) {
            Some(h) if h[7] < 255 && h[0] >> 4 == 6 => h[7] += 1,
            _ => return false,
        }
    } else {
        let Some(h) = d.get_mut(..20) else {
            return false;
        };
        if h[0] >> 4 != 4 || h[8] == 255 {
            return false;
        }
        let old = u16::from_be_bytes([h[8], h[9]]) as u64;
        h[8] += 1;
        let new = u16::from_be_bytes([h[8], h[9]]) as u64;
        let c = csum_update(u16::from_be_bytes([h[10], h[11]]), old, new);
        h[10..12].copy_from_slice(&c.to_be_bytes());
    }
    true
}

impl Node for TtlFixup {
    fn info(&self) -> NodeInfo {
        let name = if self.ip6 { IP6.node } else { IP4.node };
        NodeInfo::internal(name, next::NAMES, error::NAMES)
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        self.snap.refresh(&self.table);
        let (fix, ip6) = (self.snap.get(), self.ip6);
        let (errs, arc) = (cx.errs(), cx.arc());
        let fwd = cx.tables.fwd.get();
        let mut view = cx.bufs.view();
        let mut restored = 0;
        for (&bi, next_out) in bufs.iter().zip(nexts.iter_mut()) {
            let mut b = view.get(bi);
            if fix.applies(b.meta.rx_sw_if_index, b.meta.tx_sw_if_index) {
                // After the rewrite the packet starts with the L2 header the adjacency wrote.
                let l3 = fwd.adj(b.meta.adj_index).rewrite_len as usize;
                if b.data_mut().get_mut(l3..).is_some_and(|d| restore(d, ip6)) {
                    restored += 1;
                }
            }
            *next_out = arc.next(b.meta.feature_mask);
        }
        errs.count(error::RESTORED, restored);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ipv4_checksum_follows_the_ttl() {
        let mut h = [
            0x45, 0, 0, 0x54, 0x12, 0x34, 0x40, 0, 63, 1, 0, 0, 198, 18, 0, 1, 198, 19, 0, 2,
        ];
        let c = crate::wire::checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        assert!(restore(&mut h, false));
        assert_eq!(h[8], 64);
        assert_eq!(crate::wire::checksum(&h), 0, "still valid");
        h[8] = 255;
        assert!(!restore(&mut h, false), "never past 255");
        let mut h6 = [0u8; 40];
        h6[0] = 0x60;
        h6[7] = 63;
        assert!(restore(&mut h6, true));
        assert_eq!(h6[7], 64);
    }

    #[test]
    fn only_listed_pairs_apply() {
        let f = Fixups(vec![(3, 1), (4, 1)]);
        assert!(f.applies(3, 1) && f.applies(4, 1));
        assert!(!f.applies(1, 3) && !f.applies(3, 2));
    }
}
