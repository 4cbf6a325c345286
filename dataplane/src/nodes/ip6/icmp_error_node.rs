//! ip6-icmp-error: ICMPv6 errors (RFC 4443) requested by the other nodes.

use crate::buffer::{flags, Buf, Buffers};
use crate::graph::{Node, NodeInfo};
use crate::runtime::Ctx;
use crate::tables::IfTable;
use crate::wire::{self, Ip6Hdr, Ip6HdrMut, IP6_HDR};

use super::addr::{is_link_local, is_multicast, source_for, LOOPBACK};
use super::ext_hdr::walk_ext;
use super::l2::{push_l2, save_l2};
use super::{icmp6, trace_ip6};

/// Longest packet an ICMPv6 error may be (the IPv6 minimum MTU, RFC 4443 2.4(c)).
const ICMP6_ERROR_MAX: usize = 1280;

/// Ask ip6-icmp-error to answer this packet with (type, code, data): stored in opaque[0..3].
#[inline]
pub fn set_icmp6_error(b: &mut Buf<'_>, ty: u8, code: u8, data: u32) {
    b.meta.opaque[0] = ty as u32;
    b.meta.opaque[1] = code as u32;
    b.meta.opaque[2] = data;
}

pub struct Ip6IcmpError;

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

impl Node for Ip6IcmpError {
    fn info(&self) -> NodeInfo {
        NodeInfo::internal("ip6-icmp-error", icmp_error_next::NAMES, icmp_error::NAMES)
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        let errs = cx.errs();
        let ifs = cx.tables.ifs.get();
        for (i, &bi) in bufs.iter().enumerate() {
            let target = error_target(&cx.bufs.get(bi));
            let r = match target {
                None => Err(icmp_error::NOT_FOR_ERRORS),
                // Checked after eligibility so packets we never answer cost no tokens.
                Some(_) if !cx.icmp_limit.allow(cx.now) => Err(icmp_error::RATE_LIMITED),
                Some(to) => build_error(cx.bufs, ifs, bi, to),
            };
            nexts[i] = match r {
                Ok((ty, next)) => {
                    errs.count(
                        match ty {
                            icmp6::TIME_EXCEEDED => icmp_error::SENT_TIME_EXCEEDED,
                            icmp6::PACKET_TOO_BIG => icmp_error::SENT_TOO_BIG,
                            _ => icmp_error::SENT_UNREACH,
                        },
                        1,
                    );
                    next
                }
                Err(e) => {
                    cx.bufs.meta(bi).error = errs.error(e);
                    icmp_error_next::DROP
                }
            };
        }
    }

    fn trace(&self, b: &Buf<'_>) -> String {
        trace_ip6(b)
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
fn build_error(bufs: &mut Buffers, ifs: &IfTable, bi: u32, to: u128) -> Result<(u8, u16), u16> {
    let rx = bufs.meta(bi).rx_sw_if_index;
    let src = source_for(ifs, rx, to).ok_or(icmp_error::NO_SOURCE)?;
    bufs.free_tail(bi);
    let mut b = bufs.get(bi);
    let (ty, code, data) = (
        b.meta.opaque[0] as u8,
        b.meta.opaque[1] as u8,
        b.meta.opaque[2],
    );
    // An on-link (link-local) source gets the error straight back to its MAC.
    let l2 = if is_link_local(to) {
        save_l2(&mut b)
    } else {
        None
    };
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
    b.meta.flags |= flags::LOCALLY_ORIGINATED;
    let fast = ifs.fast(rx);
    b.meta.fib_index = fast.ip6_fib;
    b.meta.l3_hdr_offset = b.meta.current_data;
    if let Some(l2) = l2 {
        if push_l2(&mut b, &l2, &fast.mac, None) {
            b.meta.tx_sw_if_index = rx;
            return Ok((ty, icmp_error_next::OUTPUT));
        }
    }
    Ok((ty, icmp_error_next::LOOKUP))
}
