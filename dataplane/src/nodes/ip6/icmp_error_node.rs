//! ip6-icmp-error's IPv6 parts (the node is `family::IcmpError`): ICMPv6 errors (RFC 4443)
//! requested by the other nodes.

use crate::buffer::Buf;
use crate::graph::NodeInfo;
use crate::nodes::family::{icmp_error_ids, IcmpError, IcmpErrorFamily, V6};
use crate::tables::IfTable;
use crate::wire::{self, Ip6Hdr, Ip6HdrMut, IP6_HDR};

use super::addr::{is_link_local, is_multicast, source_for, LOOPBACK};
use super::ext_hdr::walk_ext;
use super::icmp6;
use super::l2::{push_l2, save_l2};

/// Longest packet an ICMPv6 error may be (the IPv6 minimum MTU, RFC 4443 2.4(c)).
const ICMP6_ERROR_MAX: usize = 1280;

/// Ask ip6-icmp-error to answer this packet with (type, code, data).
pub use crate::nodes::family::set_icmp_error as set_icmp6_error;

pub type Ip6IcmpError = IcmpError<V6>;

crate::next_edges! {
    mod icmp_error_next {
        DROP => "error-drop",
        LOOKUP => "ip6-lookup",
        OUTPUT => "interface-output",
    }
}

crate::node_errors! {
    pub mod icmp_error {
        SENT_TIME_EXCEEDED => "icmp6 time exceeded sent",
        SENT_UNREACH => "icmp6 destination unreachable sent",
        SENT_TOO_BIG => "icmp6 packet too big sent",
        RATE_LIMITED => "icmp6 error rate limited (dropped)",
        NO_SOURCE => "icmp6 error: no source address on interface (dropped)",
        NOT_FOR_ERRORS => "icmp6 error not sent for icmp6 errors, multicast or unspecified sources (dropped)",
        NO_HEADROOM => "icmp6 error: no headroom (dropped)",
    }
}

/// IPv6 + ICMPv6 headers put in front of the quoted packet.
const ERR_HDRS: usize = IP6_HDR + 8;

impl IcmpErrorFamily for V6 {
    icmp_error_ids!("ip6-icmp-error", icmp_error_next, icmp_error);

    fn error_target(b: &Buf<'_>) -> Option<u128> {
        error_target(b)
    }
    fn source(ifs: &IfTable, rx: u32, to: u128) -> Option<u128> {
        source_for(ifs, rx, to)
    }
    fn addr_of_bits(a: u128) -> u128 {
        a
    }
    fn build_error(b: &mut Buf<'_>, ifs: &IfTable, src: u128, to: u128) -> Result<(u16, u16), u16> {
        let (ty, next) = build_error(b, ifs, src, to)?;
        let sent = match ty {
            icmp6::TIME_EXCEEDED => icmp_error::SENT_TIME_EXCEEDED,
            icmp6::PACKET_TOO_BIG => icmp_error::SENT_TOO_BIG,
            _ => icmp_error::SENT_UNREACH,
        };
        Ok((sent, next))
    }
}

/// Whom to send the requested error to, or None when RFC 4443 2.4(e) forbids one: about an
/// ICMPv6 error, to a multicast group (packet too big excepted), or from a source that is not
/// a unicast address.
fn error_target(b: &Buf<'_>) -> Option<u128> {
    let ty = b.meta.opaque[0] as u8;
    let d = b.data();
    let h = Ip6Hdr::new(d)?;
    let src = h.src();
    if src == 0 || src == LOOPBACK || is_multicast(src) {
        return None;
    }
    if is_multicast(h.dst()) && ty != icmp6::PACKET_TOO_BIG {
        return None;
    }
    let tl = IP6_HDR + h.payload_len() as usize;
    let (proto, off) = walk_ext(&d[..tl.min(d.len())], false).ok()?;
    if proto == wire::IP_PROTO_IPV6_ICMP && d.get(off).is_none_or(|&t| t < 128) {
        return None;
    }
    Some(src)
}

/// Wrap the packet (which starts at its IPv6 header) in IPv6 + ICMPv6 error headers, in place.
/// Returns (type, next edge).
fn build_error(b: &mut Buf<'_>, ifs: &IfTable, src: u128, to: u128) -> Result<(u8, u16), u16> {
    let rx = b.meta.rx_sw_if_index;
    let (ty, code, data) = (
        b.meta.opaque[0] as u8,
        b.meta.opaque[1] as u8,
        b.meta.opaque[2],
    );
    // An on-link (link-local) source gets the error straight back to its MAC.
    let l2 = if is_link_local(to) { save_l2(b) } else { None };
    let orig_len = Ip6Hdr::new(b.data()).map_or(0, |h| IP6_HDR + h.payload_len() as usize);
    let quote = b.data().len().min(orig_len).min(ICMP6_ERROR_MAX - ERR_HDRS);
    b.set_len(quote);
    if !b.retreat(ERR_HDRS) {
        return Err(icmp_error::NO_HEADROOM);
    }
    let plen = (8 + quote) as u16;
    let d = b.data_mut();
    if let Some(mut ip) = Ip6HdrMut::new(d) {
        ip.init(src, to, wire::IP_PROTO_IPV6_ICMP, 64, plen);
    }
    let m = &mut d[IP6_HDR..];
    m[0] = ty;
    m[1] = code;
    m[2..4].fill(0);
    m[4..8].copy_from_slice(&data.to_be_bytes());
    let pseudo = wire::ip6_pseudo_sum(src, to, plen as u32, wire::IP_PROTO_IPV6_ICMP);
    let c = wire::fold(wire::ones_sum(&m[..plen as usize], pseudo));
    m[2..4].copy_from_slice(&c.to_be_bytes());
    // Locally originated: set by the node after this.
    let fast = ifs.fast(rx);
    b.meta.fib_index = fast.ip6_fib;
    b.meta.l3_hdr_offset = b.meta.current_data;
    if let Some(l2) = l2 {
        if push_l2(b, &l2, &fast.mac, None) {
            b.meta.tx_sw_if_index = rx;
            return Ok((ty, icmp_error_next::OUTPUT));
        }
    }
    Ok((ty, icmp_error_next::LOOKUP))
}
