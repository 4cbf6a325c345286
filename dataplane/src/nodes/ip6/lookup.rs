//! ip6-lookup's IPv6 parts (the node is `family::Lookup`): flow hash and scoped (multicast /
//! link-local) destinations.

use crate::buffer::{flags, Buf};
use crate::graph::NodeInfo;
use crate::nodes::family::{lookup_ids, Lookup, LookupFamily, V6};
use crate::runtime::Errors;
use crate::tables::{if_flags, FwdTable, IfTable};
use crate::wire::{self, Ip6Hdr, IP6_HDR};

use super::addr::{
    in_our_group, is_link_local, is_multicast, is_our_ip6, SOLICITED_MASK, SOLICITED_PREFIX,
};

/// ip6-lookup: FIB lookup, ECMP flow hash and scoped destinations; starts the ip6-local arc.
pub type Ip6Lookup = Lookup<V6>;

crate::next_edges! {
    mod lookup_next {
        DROP => "error-drop",
        REWRITE => "ip6-rewrite",
        LOCAL => "ip6-local",
        RESOLVE => "ip6-discover",
        ICMP_ERROR => "ip6-icmp-error",
        RELOOKUP => "ip6-lookup",
        MCAST => "ip6-mcast-rewrite",
        PBL => "ip6-pbl",
        SR_ENCAP => "sr-pl-rewrite-encaps",
        SR_LOCALSID => "sr-localsid",
        IPIP => "ipip6-input",
        VXLAN => "vxlan6-input",
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

/// The destination of a packet that starts at its IPv6 header (0 if it is too short).
#[inline(always)]
pub fn dst6(b: &Buf<'_>) -> u128 {
    b.head::<IP6_HDR>().map_or(0, |h| Ip6Hdr(h).dst())
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

impl LookupFamily for V6 {
    lookup_ids!("ip6-lookup", lookup_next, lookup_error);

    /// Multicast and link-local belong to the receiving link, not to the FIB.
    #[inline(always)]
    fn is_scoped(dst: u128) -> bool {
        is_multicast(dst) || is_link_local(dst)
    }
    /// What ip6-local decides first for these (ip6-input has checked the header): next
    /// header 4 or 41 (ipip6-input) or UDP to a VXLAN port (vxlan6-input) right after the
    /// fixed header. Extension headers first: ip6-local walks them.
    #[inline(always)]
    fn local_tunnel(b: &Buf<'_>, fwd: &FwdTable) -> Option<u16> {
        use crate::wire::tunnel::{IP_PROTO_IPIP, IP_PROTO_IPV6};
        let h = b.head::<{ IP6_HDR + 4 }>()?;
        match h[6] {
            IP_PROTO_IPIP | IP_PROTO_IPV6 => Some(lookup_next::IPIP),
            wire::IP_PROTO_UDP
                if fwd
                    .is_vxlan_port(true, u16::from_be_bytes([h[IP6_HDR + 2], h[IP6_HDR + 3]])) =>
            {
                Some(lookup_next::VXLAN)
            }
            _ => None,
        }
    }
    fn scoped(
        b: &mut Buf<'_>,
        ifs: &IfTable,
        fwd: &FwdTable,
        dst: u128,
        errs: Errors<'_>,
    ) -> Option<u16> {
        scoped(b, ifs, fwd, dst, errs)
    }
}

/// Multicast and link-local destinations: ours go to ip6-local, others are dropped, except a
/// link-local we send ourselves, which follows the FIB (None).
#[cold]
#[inline(never)]
fn scoped(
    b: &mut Buf<'_>,
    ifs: &IfTable,
    fwd: &FwdTable,
    dst: u128,
    errs: Errors<'_>,
) -> Option<u16> {
    let rx = b.meta.rx_sw_if_index;
    if is_multicast(dst) {
        // With ND proxy every solicited-node group is ours: ip6-local answers for any target.
        let nd_proxy = ifs.fast(rx).flags & if_flags::ND_PROXY != 0
            && dst & SOLICITED_MASK == SOLICITED_PREFIX;
        if nd_proxy || in_our_group(ifs, rx, dst) {
            return Some(lookup_next::LOCAL);
        }
        // A multicast route relays it (calico: the host's link-scope multicast to the uplink).
        if let Some(tx) = fwd.mcast_forward(true, b.meta.fib_index, dst, rx) {
            b.meta.tx_sw_if_index = tx;
            return Some(lookup_next::MCAST);
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
