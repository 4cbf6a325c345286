//! ip6-rewrite's IPv6 parts (the node is `family::Rewrite`): hop limit, MTU, the L2 rewrite.

use crate::buffer::{flags, Buf};
use crate::graph::NodeInfo;
use crate::nodes::family::{rewrite_ids, Rewrite, RewriteFamily, V6};
use crate::tables::{AdjKind, Adjacency};
use crate::wire::{Ip6HdrMut, ETH_HDR, IP6_HDR};

use super::icmp6;
use super::icmp_error_node::set_icmp6_error;

/// ip6-rewrite: hop limit, MTU and the adjacency's L2 rewrite; starts the ip6-output arc.
pub type Ip6Rewrite = Rewrite<V6>;

crate::next_edges! {
    mod rewrite_next {
        DROP => "error-drop",
        OUTPUT => "interface-output",
        ICMP_ERROR => "ip6-icmp-error",
    }
}

crate::node_errors! {
    pub mod rewrite_error {
        HOP_LIMIT_EXPIRED => "ip6 hop limit <= 1",
        TOO_BIG => "ip6 mtu exceeded (ICMP6 packet too big)",
        NOT_REWRITE => "ip6 adjacency is not a rewrite",
        NO_HEADROOM => "ip6 no headroom for rewrite",
    }
}

impl RewriteFamily for V6 {
    rewrite_ids!("ip6-rewrite", rewrite_next, rewrite_error);
    const TRACE_BYTES: usize = ETH_HDR + IP6_HDR;

    #[inline(always)]
    fn forward_header(ip: &mut [u8], mtu: u16) -> bool {
        let Some(mut h) = Ip6HdrMut::new(ip) else {
            return false;
        };
        let len = IP6_HDR + h.view().payload_len() as usize;
        if h.view().hop_limit() <= 1 || (mtu != 0 && len > mtu as usize) {
            return false;
        }
        h.dec_hop_limit();
        true
    }
    #[inline(always)]
    fn fast_window<'b>(b: &'b mut Buf<'_>) -> Option<&'b mut [u8]> {
        b.window_mut::<{ ETH_HDR }, { ETH_HDR + IP6_HDR }>()
            .map(|w| &mut w[..])
    }
    fn rewrite_one(b: &mut Buf<'_>, adj: &Adjacency) -> (u16, u16) {
        rewrite_one(b, adj)
    }
}

#[inline(always)]
fn rewrite_one(b: &mut Buf<'_>, adj: &Adjacency) -> (u16, u16) {
    if adj.kind != AdjKind::Rewrite {
        return (rewrite_next::DROP, rewrite_error::NOT_REWRITE);
    }
    let local = b.meta.flags & flags::LOCALLY_ORIGINATED != 0;
    // A GSO super-frame leaves as segments: what must fit is one segment (IPv6 + TCP headers
    // + gso_size).
    let seg_len = crate::nodes::gso::segment_len(b.data(), b.meta);
    {
        let Some(mut h) = Ip6HdrMut::new(b.data_mut()) else {
            return (rewrite_next::DROP, rewrite_error::NOT_REWRITE);
        };
        let (hl, mut len) = (
            h.view().hop_limit(),
            IP6_HDR + h.view().payload_len() as usize,
        );
        if let Some(sl) = seg_len {
            len = len.min(sl);
        }
        if !local && hl <= 1 {
            set_icmp6_error(b, icmp6::TIME_EXCEEDED, icmp6::HOP_LIMIT_EXCEEDED, 0);
            return (rewrite_next::ICMP_ERROR, rewrite_error::HOP_LIMIT_EXPIRED);
        }
        // IPv6 routers never fragment (RFC 8200 5): tell the source the path MTU.
        if adj.mtu != 0 && len > adj.mtu as usize {
            set_icmp6_error(b, icmp6::PACKET_TOO_BIG, 0, adj.mtu as u32);
            return (rewrite_next::ICMP_ERROR, rewrite_error::TOO_BIG);
        }
        if !local {
            h.dec_hop_limit();
        }
    }
    let rl = adj.rewrite_len as usize;
    if rl > 0 {
        if rl > adj.rewrite.len() || !b.retreat(rl) {
            return (rewrite_next::DROP, rewrite_error::NO_HEADROOM);
        }
        b.data_mut()[..rl].copy_from_slice(&adj.rewrite[..rl]);
    }
    b.meta.tx_sw_if_index = adj.sw_if_index;
    (rewrite_next::OUTPUT, 0)
}
