//! ip4-pbl / ip6-pbl (calico's PBL plugin, "port-based load-balancing"): the lookup found a
//! PBL client's entry (`AdjKind::Pbl`). A packet whose (protocol, destination port) is in the
//! client's ranges goes along the client's path; any other (a non-first fragment, a protocol
//! without ports) along the forwarding of the route the client interposed on.

use crate::feature::FeatureTables;
use crate::forwarding::Af;
use crate::graph::{GraphBuilder, Node, NodeInfo};
use crate::runtime::Ctx;
use crate::tables::{AdjKind, MAX_RELOOKUPS};
use crate::wire::{self, Ip4Hdr, Ip6Hdr};

crate::next_edges! {
    mod next4 {
        DROP => "error-drop",
        REWRITE => "ip4-rewrite",
        RESOLVE => "ip4-arp",
        LOOKUP => "ip4-lookup",
        LOCAL => "ip4-local",
    }
}

crate::next_edges! {
    mod next6 {
        DROP => "error-drop",
        REWRITE => "ip6-rewrite",
        RESOLVE => "ip6-discover",
        LOOKUP => "ip6-lookup",
        LOCAL => "ip6-local",
    }
}

crate::node_errors! {
    pub mod error {
        TO_PATH => "pbl: to the client's path (port matched)",
        TO_PARENT => "pbl: along the interposed route",
        NO_CLIENT => "pbl: no such client (dropped)",
        PARENT_DROP => "pbl: the interposed route drops (dropped)",
        LOOP => "pbl: lookup loop (dropped)",
    }
}

pub fn register(b: GraphBuilder, _tables: &FeatureTables) -> GraphBuilder {
    b.node(Box::new(Pbl { af: Af::Ip4 }))
        .node(Box::new(Pbl { af: Af::Ip6 }))
}

/// (protocol, destination port) of a first fragment with ports.
#[inline]
fn l4(af: Af, d: &[u8]) -> Option<(u8, u16)> {
    let (proto, off) = match af {
        Af::Ip4 => {
            let h = Ip4Hdr::new(d)?;
            if h.frag_offset() != 0 {
                return None;
            }
            (h.protocol(), h.header_len())
        }
        Af::Ip6 => (Ip6Hdr::new(d)?.next_header(), wire::IP6_HDR),
    };
    if !matches!(proto, wire::IP_PROTO_TCP | wire::IP_PROTO_UDP | 132) {
        return None;
    }
    let p = d.get(off + 2..off + 4)?;
    Some((proto, u16::from_be_bytes([p[0], p[1]])))
}

pub struct Pbl {
    af: Af,
}

impl Node for Pbl {
    fn info(&self) -> NodeInfo {
        match self.af {
            Af::Ip4 => NodeInfo::internal("ip4-pbl", next4::NAMES, error::NAMES),
            Af::Ip6 => NodeInfo::internal("ip6-pbl", next6::NAMES, error::NAMES),
        }
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        let (errs, af) = (cx.errs(), self.af);
        let fwd = cx.tables.fwd.get();
        let mut view = cx.bufs.view();
        let (mut to_path, mut to_parent) = (0u64, 0u64);
        for (&bi, next_out) in bufs.iter().zip(nexts.iter_mut()) {
            let b = view.get(bi);
            let id = fwd.adj(b.meta.adj_index).lookup_fib;
            let Some(c) = fwd.pbl.get(id as usize).and_then(|c| c.as_ref()) else {
                b.meta.error = errs.error(error::NO_CLIENT);
                *next_out = next4::DROP;
                continue;
            };
            let ai = match l4(af, b.data()) {
                Some((proto, port)) if c.matches(proto, port) => {
                    to_path += 1;
                    c.path_adj
                }
                _ => {
                    to_parent += 1;
                    let lb = fwd.lb(c.parent_lb);
                    if lb.n_buckets <= 1 {
                        lb.buckets[0]
                    } else {
                        let h = match af {
                            Af::Ip4 => super::ip4::flow_hash4(b.data()),
                            Af::Ip6 => super::ip6::flow_hash6(b.data()),
                        };
                        b.meta.flow_hash = h;
                        lb.pick(h)
                    }
                }
            };
            let adj = fwd.adj(ai);
            b.meta.adj_index = ai;
            *next_out = match adj.kind {
                AdjKind::Rewrite => next4::REWRITE,
                AdjKind::Glean | AdjKind::Incomplete => next4::RESOLVE,
                AdjKind::Local => next4::LOCAL,
                AdjKind::Lookup if b.meta.relookups < MAX_RELOOKUPS => {
                    b.meta.relookups += 1;
                    b.meta.fib_index = adj.lookup_fib;
                    next4::LOOKUP
                }
                AdjKind::Lookup | AdjKind::Pbl => {
                    b.meta.error = errs.error(error::LOOP);
                    next4::DROP
                }
                _ => {
                    b.meta.error = errs.error(error::PARENT_DROP);
                    next4::DROP
                }
            };
        }
        errs.count(error::TO_PATH, to_path);
        errs.count(error::TO_PARENT, to_parent);
    }
}
