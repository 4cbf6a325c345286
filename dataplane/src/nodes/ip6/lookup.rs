//! ip6-lookup: FIB lookup, ECMP flow hash, and scoped (multicast / link-local) destinations.

use crate::buffer::{flags, Buf};
use crate::feature::ArcEdges;
use crate::fib::LEAF_MISS;
use crate::graph::{Node, NodeInfo, MAX_VECTOR};
use crate::runtime::{Ctx, Errors};
use crate::tables::{AdjKind, IfTable, WorkerTables, UNREACH_LB};
use crate::wire::{self, Ip6Hdr, IP6_HDR};

use super::addr::{in_our_group, is_link_local, is_multicast, is_our_ip6};
use super::icmp6;
use super::icmp_error_node::set_icmp6_error;

#[derive(Default)]
pub struct Ip6Lookup {
    dsts: Vec<u128>,
    leaves: Vec<u32>,
    /// ip6-lookup starts the ip6-local arc (packets for one of our addresses).
    arc: ArcEdges,
}

/// A packet for us: onto the ip6-local arc, or straight to ip6-local.
fn local_next(arc: &ArcEdges, meta: &mut crate::buffer::BufferMeta, tables: &WorkerTables) -> u16 {
    crate::nodes::local_next(arc, meta, tables, lookup_next::LOCAL, |f| f.feat_ip6_local)
}

crate::next_edges! {
    mod lookup_next {
        DROP => "error-drop",
        REWRITE => "ip6-rewrite",
        LOCAL => "ip6-local",
        DISCOVER => "ip6-discover",
        ICMP_ERROR => "ip6-icmp-error",
        RELOOKUP => "ip6-lookup",
    }
}

crate::node_errors! {
    pub mod lookup_error {
        NO_FIB => "ip6 no such fib",
        DROP_ADJ => "ip6 adjacency drop",
        NO_ROUTE => "ip6 no route to destination",
        PROHIBITED => "ip6 administratively prohibited",
        PUNT => "ip6 punt adjacency",
        MCAST_NOT_FOR_US => "ip6 multicast destination not for us",
        LINK_LOCAL_NOT_FOR_US => "ip6 link-local destination not for us",
        LOOKUP_LOOP => "ip6 table-lookup loop",
    }
}

/// Flow hash over addresses, flow label, next header and ports, for ECMP.
#[inline]
pub fn flow_hash6(d: &[u8]) -> u32 {
    let Some(h) = Ip6Hdr::new(d) else { return 0 };
    let (s, t) = (h.src(), h.dst());
    let mut x = s as u64
        ^ ((s >> 64) as u64).rotate_left(13)
        ^ (t as u64).rotate_left(29)
        ^ ((t >> 64) as u64).rotate_left(43);
    x ^= (h.flow_label() as u64) << 8 | h.next_header() as u64;
    if matches!(h.next_header(), wire::IP_PROTO_TCP | wire::IP_PROTO_UDP) {
        if let Some(p) = d.get(IP6_HDR..IP6_HDR + 4) {
            x ^= (u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as u64).rotate_left(37);
        }
    }
    crate::nodes::flow_hash_finish(x)
}

impl Node for Ip6Lookup {
    fn info(&self) -> NodeInfo {
        NodeInfo::internal("ip6-lookup", lookup_next::NAMES, lookup_error::NAMES)
    }

    fn attach_arc(&mut self, arc: ArcEdges) {
        self.arc = arc;
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        let errs = cx.errs();
        let n = bufs.len();
        if self.dsts.len() < MAX_VECTOR {
            self.dsts.resize(MAX_VECTOR, 0);
            self.leaves.resize(MAX_VECTOR, 0);
        }
        let fibs = cx.tables.fibs.get();
        let fwd = cx.tables.fwd.get();
        let ifs = cx.tables.ifs.get();
        // Pass 1: destinations; the FIB index is usually the same for the whole vector.
        let mut fib_index = u32::MAX;
        let mut same_fib = true;
        for (i, &bi) in bufs.iter().enumerate() {
            if let Some(&n) = bufs.get(i + 2) {
                cx.bufs.prefetch(n);
            }
            let b = cx.bufs.get(bi);
            self.dsts[i] = Ip6Hdr::new(b.data()).map_or(0, |h| h.dst());
            if fib_index == u32::MAX {
                fib_index = b.meta.fib_index;
            } else if b.meta.fib_index != fib_index {
                same_fib = false;
            }
        }
        // Pass 2: the lookups, batched.
        if same_fib {
            match fibs.ip6.get(fib_index as usize).and_then(|f| f.as_ref()) {
                Some(fib) => fib.lookup_batch(&self.dsts[..n], &mut self.leaves[..n]),
                None => self.leaves[..n].fill(LEAF_MISS - 1),
            }
        } else {
            for (i, &bi) in bufs.iter().enumerate() {
                let fi = cx.bufs.meta(bi).fib_index;
                self.leaves[i] = match fibs.ip6.get(fi as usize).and_then(|f| f.as_ref()) {
                    Some(fib) => fib.lookup(self.dsts[i]),
                    None => LEAF_MISS - 1,
                };
            }
        }
        // Pass 3: scoped destinations, load-balance and adjacency.
        for (i, &bi) in bufs.iter().enumerate() {
            let leaf = self.leaves[i];
            let dst = self.dsts[i];
            let mut b = cx.bufs.get(bi);
            // Multicast and link-local belong to the receiving link, not to the FIB.
            if is_multicast(dst) || is_link_local(dst) {
                if let Some(next) = scoped(&mut b, ifs, dst, errs) {
                    nexts[i] = next;
                    continue;
                }
            }
            if leaf == LEAF_MISS - 1 {
                b.meta.error = errs.error(lookup_error::NO_FIB);
                nexts[i] = lookup_next::DROP;
                continue;
            }
            let lb = fwd.lb(if leaf == LEAF_MISS { UNREACH_LB } else { leaf });
            let adj_i = if lb.n_buckets <= 1 {
                lb.buckets[0]
            } else {
                let h = flow_hash6(b.data());
                b.meta.flow_hash = h;
                lb.pick(h)
            };
            b.meta.adj_index = adj_i;
            let adj = fwd.adj(adj_i);
            nexts[i] = match adj.kind {
                AdjKind::Rewrite => lookup_next::REWRITE,
                AdjKind::Local => local_next(&self.arc, b.meta, cx.tables),
                AdjKind::Glean | AdjKind::Incomplete => lookup_next::DISCOVER,
                AdjKind::Unreachable => {
                    set_icmp6_error(&mut b, icmp6::DEST_UNREACH, icmp6::NO_ROUTE, 0);
                    b.meta.error = errs.error(lookup_error::NO_ROUTE);
                    lookup_next::ICMP_ERROR
                }
                AdjKind::Prohibit => {
                    set_icmp6_error(&mut b, icmp6::DEST_UNREACH, icmp6::ADMIN_PROHIBITED, 0);
                    b.meta.error = errs.error(lookup_error::PROHIBITED);
                    lookup_next::ICMP_ERROR
                }
                AdjKind::Punt => {
                    b.meta.error = errs.error(lookup_error::PUNT);
                    lookup_next::DROP
                }
                AdjKind::Lookup => {
                    if b.meta.relookups >= crate::tables::MAX_RELOOKUPS {
                        b.meta.error = errs.error(lookup_error::LOOKUP_LOOP);
                        lookup_next::DROP
                    } else {
                        b.meta.relookups += 1;
                        b.meta.fib_index = adj.lookup_fib;
                        lookup_next::RELOOKUP
                    }
                }
                AdjKind::Drop => {
                    b.meta.error = errs.error(lookup_error::DROP_ADJ);
                    lookup_next::DROP
                }
            };
        }
    }

    fn trace(&self, b: &Buf<'_>) -> String {
        format!(
            "fib {} adj {} flow hash 0x{:08x}",
            b.meta.fib_index, b.meta.adj_index, b.meta.flow_hash
        )
    }
}

/// Multicast and link-local destinations: ours go to ip6-local, others are dropped, except a
/// link-local we send ourselves, which follows the FIB (None).
#[cold]
fn scoped(b: &mut Buf<'_>, ifs: &IfTable, dst: u128, errs: Errors<'_>) -> Option<u16> {
    let rx = b.meta.rx_sw_if_index;
    if is_multicast(dst) {
        if in_our_group(ifs, rx, dst) {
            return Some(lookup_next::LOCAL);
        }
        b.meta.error = errs.error(lookup_error::MCAST_NOT_FOR_US);
        return Some(lookup_next::DROP);
    }
    if is_our_ip6(ifs, rx, dst) {
        return Some(lookup_next::LOCAL);
    }
    if b.meta.flags & flags::LOCALLY_ORIGINATED != 0 {
        return None;
    }
    // Link-local traffic is never forwarded off its link (RFC 4291 2.5.6).
    b.meta.error = errs.error(lookup_error::LINK_LOCAL_NOT_FOR_US);
    Some(lookup_next::DROP)
}
