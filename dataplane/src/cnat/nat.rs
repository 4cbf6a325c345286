//! Packet side of cnat: read a packet's flow, rewrite its addresses and ports with incremental
//! checksum updates, and translate ICMP errors that quote a translated flow. Works on the
//! bytes from the IP header on, through the typed views of `wire`.

use super::session::{csum_deltas4, FlowKey, Rewrite};
use crate::wire::l4::{icmp4_type, icmp6_type, l4_checksum_ip6, ICMP_HDR, TCP_HDR, UDP_HDR};
use crate::wire::{
    self, addr_sum, csum_apply, csum_update, IcmpHdr, IcmpHdrMut, Ip4Hdr, Ip4HdrMut, Ip6Hdr,
    TcpHdr, TcpHdrMut, UdpHdr, UdpHdrMut, IP4_HDR, IP6_HDR, IP_PROTO_ICMP, IP_PROTO_IPV6_ICMP,
    IP_PROTO_TCP, IP_PROTO_UDP,
};

const V4_MAPPED: u128 = 0xffff_0000_0000;
const IP6_FRAGMENT: u8 = 44;

/// What the transport header is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    /// TCP or UDP: ports.
    Ports,
    /// ICMP echo request/reply: the id in both ports.
    Echo,
    /// An ICMP error; its quoted packet follows the ICMP header.
    IcmpError,
    /// A non-first fragment: no transport header.
    Fragment,
    /// Anything else (no ports).
    Other,
}

/// A packet's flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    pub src: u128,
    pub dst: u128,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub ip6: bool,
    pub l4: L4,
    /// Offset of the transport header from the IP header.
    pub l4_off: usize,
    pub tcp_flags: u8,
    /// Fragment id (IPv4 ident, IPv6 fragment header id) and whether more fragments follow:
    /// a first fragment with `more_frags` lets the later ones find its translation.
    pub frag_id: u32,
    pub more_frags: bool,
}

impl Flow {
    /// The flow's key in a session table, on `stage`, in the table's `fib` (cnat: the FIB;
    /// npol: the interface).
    #[inline(always)]
    pub fn key(&self, stage: u8, fib: u16) -> FlowKey {
        FlowKey {
            src: self.src,
            dst: self.dst,
            sport: self.sport,
            dport: self.dport,
            proto: self.proto,
            ip6: self.ip6,
            stage,
            fib,
        }
    }

    /// The key the fragments of the flow's datagram share: its id in place of the ports.
    #[inline(always)]
    pub fn fragment_key(&self, stage: u8, fib: u16) -> FlowKey {
        FlowKey {
            sport: (self.frag_id >> 16) as u16,
            dport: self.frag_id as u16,
            ..self.key(stage, fib)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than its headers say.
    Truncated,
}

fn v4(a: u32) -> u128 {
    V4_MAPPED | a as u128
}

/// The ports (or echo id) of a transport header at `l4`, and what it is.
#[inline(always)]
fn l4_of(proto: u8, ip6: bool, l4: &[u8]) -> Result<(L4, u16, u16, u8), ParseError> {
    match proto {
        IP_PROTO_TCP => {
            let t = TcpHdr::new(l4).ok_or(ParseError::Truncated)?;
            Ok((L4::Ports, t.src_port(), t.dst_port(), t.flags()))
        }
        IP_PROTO_UDP => {
            let u = UdpHdr::new(l4).ok_or(ParseError::Truncated)?;
            Ok((L4::Ports, u.src_port(), u.dst_port(), 0))
        }
        IP_PROTO_ICMP if !ip6 => icmp_kind(l4, false),
        IP_PROTO_IPV6_ICMP if ip6 => icmp_kind(l4, true),
        _ => Ok((L4::Other, 0, 0, 0)),
    }
}

fn icmp_kind(l4: &[u8], ip6: bool) -> Result<(L4, u16, u16, u8), ParseError> {
    let i = IcmpHdr::new(l4).ok_or(ParseError::Truncated)?;
    let t = i.icmp_type();
    let (echo, err) = if ip6 {
        (
            matches!(t, icmp6_type::ECHO_REQUEST | icmp6_type::ECHO_REPLY),
            matches!(
                t,
                icmp6_type::DEST_UNREACH
                    | icmp6_type::PACKET_TOO_BIG
                    | icmp6_type::TIME_EXCEEDED
                    | icmp6_type::PARAM_PROBLEM
            ),
        )
    } else {
        (
            matches!(t, icmp4_type::ECHO_REQUEST | icmp4_type::ECHO_REPLY),
            matches!(t, icmp4_type::DEST_UNREACH | icmp4_type::TIME_EXCEEDED | 12),
        )
    };
    if echo {
        Ok((L4::Echo, i.echo_id(), i.echo_id(), 0))
    } else if err {
        Ok((L4::IcmpError, 0, 0, 0))
    } else {
        Ok((L4::Other, 0, 0, 0))
    }
}

/// The flow of an IPv4 packet (`d` from its IP header; the header was checked by ip4-input).
#[inline]
pub fn flow4(d: &[u8]) -> Result<Flow, ParseError> {
    if let Some(f) = flow4_plain(d) {
        return Ok(f);
    }
    flow4_any(d)
}

/// [`flow4`] of the common packet, read with one bounds check: a 20-byte header, not a
/// fragment, a whole TCP or UDP header (the bytes held reach a TCP header's end). None for
/// anything else, which the general parse takes, to the same result.
#[inline(always)]
pub fn flow4_plain(d: &[u8]) -> Option<Flow> {
    let h = d.first_chunk::<{ IP4_HDR + TCP_HDR }>()?;
    let be16 = |o: usize| u16::from_be_bytes([h[o], h[o + 1]]);
    let be32 = |o: usize| u32::from_be_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
    let proto = h[9];
    let (l4_len, tcp_flags) = match proto {
        IP_PROTO_TCP => (TCP_HDR, h[IP4_HDR + 13]),
        IP_PROTO_UDP => (UDP_HDR, 0),
        _ => return None,
    };
    // Version 4, no options; neither more fragments nor an offset; the header in total_len.
    if h[0] != 0x45 || be16(6) & 0x3fff != 0 || (be16(2) as usize) < IP4_HDR + l4_len {
        return None;
    }
    Some(Flow {
        src: v4(be32(12)),
        dst: v4(be32(16)),
        sport: be16(IP4_HDR),
        dport: be16(IP4_HDR + 2),
        proto,
        ip6: false,
        l4: L4::Ports,
        l4_off: IP4_HDR,
        tcp_flags,
        frag_id: be16(4) as u32,
        more_frags: false,
    })
}

/// [`flow4`] of any packet.
#[inline(never)]
fn flow4_any(d: &[u8]) -> Result<Flow, ParseError> {
    let h = Ip4Hdr::new(d).ok_or(ParseError::Truncated)?;
    let hl = h.header_len();
    let end = (h.total_len() as usize).min(d.len());
    let mut f = Flow {
        src: v4(h.src()),
        dst: v4(h.dst()),
        sport: 0,
        dport: 0,
        proto: h.protocol(),
        ip6: false,
        l4: L4::Other,
        l4_off: hl,
        tcp_flags: 0,
        frag_id: h.ident() as u32,
        more_frags: h.more_fragments(),
    };
    if h.frag_offset() != 0 {
        f.l4 = L4::Fragment;
        return Ok(f);
    }
    let l4 = d.get(hl..end).ok_or(ParseError::Truncated)?;
    (f.l4, f.sport, f.dport, f.tcp_flags) = l4_of(f.proto, false, l4)?;
    Ok(f)
}

/// Source and destination of an IPv4 (`ip6` false) or IPv6 packet as flows carry them, for
/// a packet whose flow was parsed before (cnat-output on what cnat-input DNATed).
#[inline(always)]
pub fn addrs(d: &[u8], ip6: bool) -> Option<(u128, u128)> {
    if ip6 {
        Ip6Hdr::new(d).map(|h| (h.src(), h.dst()))
    } else {
        Ip4Hdr::new(d).map(|h| (v4(h.src()), v4(h.dst())))
    }
}

/// The flow of an IPv6 packet. Extension headers other than a fragment header are not
/// walked (such packets have no ports here).
#[inline]
pub fn flow6(d: &[u8]) -> Result<Flow, ParseError> {
    let h = Ip6Hdr::new(d).ok_or(ParseError::Truncated)?;
    let end = (IP6_HDR + h.payload_len() as usize).min(d.len());
    let mut f = Flow {
        src: h.src(),
        dst: h.dst(),
        sport: 0,
        dport: 0,
        proto: h.next_header(),
        ip6: true,
        l4: L4::Other,
        l4_off: IP6_HDR,
        tcp_flags: 0,
        frag_id: 0,
        more_frags: false,
    };
    if f.proto == IP6_FRAGMENT {
        let fh = d.get(IP6_HDR..IP6_HDR + 8).ok_or(ParseError::Truncated)?;
        let off = u16::from_be_bytes([fh[2], fh[3]]) >> 3;
        f.proto = fh[0];
        f.l4_off = IP6_HDR + 8;
        f.frag_id = u32::from_be_bytes([fh[4], fh[5], fh[6], fh[7]]);
        f.more_frags = fh[3] & 1 != 0;
        if off != 0 {
            f.l4 = L4::Fragment;
            return Ok(f);
        }
    }
    let l4 = d.get(f.l4_off..end).ok_or(ParseError::Truncated)?;
    (f.l4, f.sport, f.dport, f.tcp_flags) = l4_of(f.proto, true, l4)?;
    Ok(f)
}

/// Rewrite a packet of flow `f` to `rw`: addresses, ports (or echo id), and every checksum
/// incrementally. A UDP checksum of 0 (none, IPv4) stays 0. With `partial` (checksum offload:
/// the L4 field holds the pseudo-header sum the device completes) only the pseudo-header part
/// is adjusted.
#[inline(always)]
pub fn rewrite(d: &mut [u8], f: &Flow, rw: &Rewrite, partial: bool) {
    if f.l4 == L4::Ports && f.l4_off == IP4_HDR && !f.ip6 && rewrite4_ports(d, f, rw, partial) {
        return;
    }
    rewrite_any(d, f, rw, partial)
}

/// [`rewrite`] out of line, for paths that are not per packet (a new flow's first packet):
/// inlined there, it grew the nodes' loops and cost the established packets in them.
#[inline(never)]
pub fn rewrite_new_flow(d: &mut [u8], f: &Flow, rw: &Rewrite, partial: bool) {
    rewrite(d, f, rw, partial)
}

/// [`rewrite`] by a session entry's rewrite `rw` and, for an IPv4 flow, its checksum deltas
/// `deltas4` ([`csum_deltas4`] of the flow and `rw`, which the entry keeps).
#[inline(always)]
pub fn rewrite_by_entry(d: &mut [u8], f: &Flow, rw: &Rewrite, deltas4: u32, partial: bool) {
    if f.l4 == L4::Ports
        && f.l4_off == IP4_HDR
        && !f.ip6
        && rewrite4_deltas(d, f.proto, rw, deltas4, partial)
    {
        return;
    }
    rewrite_any_copied(d, *f, *rw, partial)
}

/// [`rewrite_any`] taking its flow and rewrite by value: a fast path that may end here then
/// keeps them in registers, copying them to memory only on its way here.
#[inline(never)]
fn rewrite_any_copied(d: &mut [u8], f: Flow, rw: Rewrite, partial: bool) {
    rewrite_any(d, &f, &rw, partial)
}

/// [`rewrite`] of an IPv4 TCP or UDP packet with a 20-byte header, when `d` holds a TCP
/// header's worth of transport bytes (false, nothing written, otherwise).
#[inline(always)]
fn rewrite4_ports(d: &mut [u8], f: &Flow, rw: &Rewrite, partial: bool) -> bool {
    let deltas = csum_deltas4(f.src, f.dst, f.sport, f.dport, rw);
    rewrite4_deltas(d, f.proto, rw, deltas, partial)
}

/// [`rewrite4_ports`] given its [`csum_deltas4`]: one bounds check, one add and fold per
/// checksum.
#[inline(always)]
fn rewrite4_deltas(d: &mut [u8], proto: u8, rw: &Rewrite, deltas: u32, partial: bool) -> bool {
    const L4: usize = IP4_HDR;
    let Some(h) = d.first_chunk_mut::<{ IP4_HDR + TCP_HDR }>() else {
        return false;
    };
    let (src, dst) = (rw.src as u32, rw.dst as u32);
    let da = (deltas >> 16) as u16;
    h[12..16].copy_from_slice(&src.to_be_bytes());
    h[16..20].copy_from_slice(&dst.to_be_bytes());
    let c = u16::from_be_bytes([h[10], h[11]]);
    h[10..12].copy_from_slice(&csum_apply(c, da).to_be_bytes());
    h[L4..L4 + 2].copy_from_slice(&rw.sport.to_be_bytes());
    h[L4 + 2..L4 + 4].copy_from_slice(&rw.dport.to_be_bytes());
    let tcp = proto == IP_PROTO_TCP;
    let at = if tcp { L4 + 16 } else { L4 + 6 };
    let Some(cs) = h.get_mut(at..at + 2) else {
        return true;
    };
    let c = u16::from_be_bytes([cs[0], cs[1]]);
    // A UDP checksum of 0 is none: it stays 0.
    if c == 0 && !tcp {
        return true;
    }
    let n = if partial {
        // The field is the folded pseudo-header sum, not inverted; ports are the device's.
        !csum_apply(!c, da)
    } else {
        let n = csum_apply(c, deltas as u16);
        if n == 0 && !tcp {
            0xffff
        } else {
            n
        }
    };
    cs.copy_from_slice(&n.to_be_bytes());
    true
}

/// [`rewrite`] of any packet.
#[inline(never)]
fn rewrite_any(d: &mut [u8], f: &Flow, rw: &Rewrite, partial: bool) {
    let ip6 = f.ip6;
    let old_a = addr_sum(f.src, ip6) + addr_sum(f.dst, ip6);
    let new_a = addr_sum(rw.src, ip6) + addr_sum(rw.dst, ip6);
    if ip6 {
        if let Some(h) = d.first_chunk_mut::<IP6_HDR>() {
            h[8..24].copy_from_slice(&rw.src.to_be_bytes());
            h[24..40].copy_from_slice(&rw.dst.to_be_bytes());
        }
    } else if let Some(mut h) = Ip4HdrMut::new(d) {
        h.set_src(rw.src as u32);
        h.set_dst(rw.dst as u32);
        let c = h.view().checksum();
        h.0[10..12].copy_from_slice(&csum_update(c, old_a, new_a).to_be_bytes());
    }
    let Some(l4) = d.get_mut(f.l4_off..) else {
        return;
    };
    let old_p = f.sport as u64 + f.dport as u64;
    let new_p = rw.sport as u64 + rw.dport as u64;
    match f.l4 {
        L4::Ports if f.proto == IP_PROTO_TCP => {
            if let Some(mut t) = TcpHdrMut::new(l4) {
                t.set_src_port(rw.sport);
                t.set_dst_port(rw.dport);
                let c = t.view().checksum();
                t.set_checksum(l4_csum(c, partial, old_a, new_a, old_p, new_p));
            }
        }
        L4::Ports => {
            if let Some(mut u) = UdpHdrMut::new(l4) {
                u.set_src_port(rw.sport);
                u.set_dst_port(rw.dport);
                let c = u.view().checksum();
                if c != 0 || ip6 {
                    let n = l4_csum(c, partial, old_a, new_a, old_p, new_p);
                    u.set_checksum(if n == 0 && !partial { 0xffff } else { n });
                }
            }
        }
        L4::Echo => {
            if let Some(mut i) = IcmpHdrMut::new(l4) {
                let (oid, nid) = (f.sport as u64, rw.sport as u64);
                i.set_echo_id(rw.sport);
                let c = i.view().checksum();
                // ICMPv4 has no pseudo-header; ICMPv6 has.
                let (oa, na) = if ip6 { (old_a, new_a) } else { (0, 0) };
                i.set_checksum(csum_update(c, oa + oid, na + nid));
            }
        }
        _ => {}
    }
}

#[inline(always)]
fn l4_csum(c: u16, partial: bool, old_a: u64, new_a: u64, old_p: u64, new_p: u64) -> u16 {
    if partial {
        // The field is the folded pseudo-header sum, not inverted; ports are the device's.
        !csum_update(!c, old_a, new_a)
    } else {
        csum_update(c, old_a + old_p, new_a + new_p)
    }
}

/// The packet an ICMP error quotes, read as the flow it was (as sent). Only its first bytes
/// are present: ports need 4 of them.
pub fn quoted_flow(d: &[u8], outer: &Flow) -> Result<Flow, ParseError> {
    let inner = d
        .get(outer.l4_off + ICMP_HDR..)
        .ok_or(ParseError::Truncated)?;
    let mut f = if outer.ip6 {
        let h = Ip6Hdr::new(inner).ok_or(ParseError::Truncated)?;
        Flow {
            src: h.src(),
            dst: h.dst(),
            sport: 0,
            dport: 0,
            proto: h.next_header(),
            ip6: true,
            l4: L4::Other,
            l4_off: IP6_HDR,
            tcp_flags: 0,
            frag_id: 0,
            more_frags: false,
        }
    } else {
        let h = Ip4Hdr::new(inner).ok_or(ParseError::Truncated)?;
        if h.version() != 4 || h.header_len() < IP4_HDR {
            return Err(ParseError::Truncated);
        }
        Flow {
            src: v4(h.src()),
            dst: v4(h.dst()),
            sport: 0,
            dport: 0,
            proto: h.protocol(),
            ip6: false,
            l4: L4::Other,
            l4_off: h.header_len(),
            tcp_flags: 0,
            frag_id: 0,
            more_frags: false,
        }
    };
    let l4 = inner.get(f.l4_off..).ok_or(ParseError::Truncated)?;
    let ports = l4.first_chunk::<4>().ok_or(ParseError::Truncated)?;
    match f.proto {
        IP_PROTO_TCP | IP_PROTO_UDP => {
            f.l4 = L4::Ports;
            f.sport = u16::from_be_bytes([ports[0], ports[1]]);
            f.dport = u16::from_be_bytes([ports[2], ports[3]]);
        }
        IP_PROTO_ICMP | IP_PROTO_IPV6_ICMP => {
            let Some(i) = IcmpHdr::new(l4) else {
                return Err(ParseError::Truncated);
            };
            f.l4 = L4::Echo;
            f.sport = i.echo_id();
            f.dport = i.echo_id();
        }
        _ => {}
    }
    Ok(f)
}

/// Translate an ICMP error back. `rw` is the session found for the quoted packet's reverse
/// (the direction the error travels): the quoted packet becomes what its sender sent before
/// translation, the outer destination becomes that sender, and an outer source equal to the
/// quoted destination follows it. The ICMP checksum is recomputed over the whole message
/// (`d` must hold the whole packet).
pub fn rewrite_icmp_error(d: &mut [u8], outer: &Flow, inner: &Flow, rw: &Rewrite) {
    let ip6 = outer.ip6;
    // The quoted packet, as sent: src/dst swap roles against the reverse session's rewrite.
    let q = Rewrite {
        src: rw.dst,
        dst: rw.src,
        sport: rw.dport,
        dport: rw.sport,
    };
    let new_outer = Rewrite {
        src: if outer.src == inner.dst {
            q.dst
        } else {
            outer.src
        },
        dst: q.src,
        sport: 0,
        dport: 0,
    };
    let qoff = outer.l4_off + ICMP_HDR;
    {
        let Some(qd) = d.get_mut(qoff..) else { return };
        let old_a = addr_sum(inner.src, ip6) + addr_sum(inner.dst, ip6);
        let new_a = addr_sum(q.src, ip6) + addr_sum(q.dst, ip6);
        if ip6 {
            if let Some(h) = qd.first_chunk_mut::<IP6_HDR>() {
                h[8..24].copy_from_slice(&q.src.to_be_bytes());
                h[24..40].copy_from_slice(&q.dst.to_be_bytes());
            }
        } else if let Some(mut h) = Ip4HdrMut::new(qd) {
            h.set_src(q.src as u32);
            h.set_dst(q.dst as u32);
            let c = h.view().checksum();
            h.0[10..12].copy_from_slice(&csum_update(c, old_a, new_a).to_be_bytes());
        }
        if let Some(l4) = qd.get_mut(inner.l4_off..) {
            let old_p = inner.sport as u64 + inner.dport as u64;
            let new_p = q.sport as u64 + q.dport as u64;
            match inner.l4 {
                L4::Ports => {
                    if let Some(p) = l4.first_chunk_mut::<4>() {
                        p[0..2].copy_from_slice(&q.sport.to_be_bytes());
                        p[2..4].copy_from_slice(&q.dport.to_be_bytes());
                    }
                    // The quoted L4 checksum, when quoted (TCP's sits at 16, UDP's at 6).
                    let at = if inner.proto == IP_PROTO_TCP { 16 } else { 6 };
                    if let Some(cs) = l4.get_mut(at..at + 2) {
                        let c = u16::from_be_bytes([cs[0], cs[1]]);
                        if c != 0 || inner.proto == IP_PROTO_TCP || ip6 {
                            let n = csum_update(c, old_a + old_p, new_a + new_p);
                            cs.copy_from_slice(&n.to_be_bytes());
                        }
                    }
                }
                L4::Echo => {
                    if let Some(mut i) = IcmpHdrMut::new(l4) {
                        i.set_echo_id(q.sport);
                        let c = i.view().checksum();
                        let (oa, na) = if ip6 { (old_a, new_a) } else { (0, 0) };
                        i.set_checksum(csum_update(
                            c,
                            oa + inner.sport as u64,
                            na + q.sport as u64,
                        ));
                    }
                }
                _ => {}
            }
        }
    }
    // Outer header, then the ICMP checksum over the whole message.
    let old_a = addr_sum(outer.src, ip6) + addr_sum(outer.dst, ip6);
    let new_a = addr_sum(new_outer.src, ip6) + addr_sum(new_outer.dst, ip6);
    let end = if ip6 {
        let Some(h) = d.first_chunk_mut::<IP6_HDR>() else {
            return;
        };
        h[8..24].copy_from_slice(&new_outer.src.to_be_bytes());
        h[24..40].copy_from_slice(&new_outer.dst.to_be_bytes());
        (IP6_HDR + Ip6Hdr(h).payload_len() as usize).min(d.len())
    } else {
        let Some(mut h) = Ip4HdrMut::new(d) else {
            return;
        };
        h.set_src(new_outer.src as u32);
        h.set_dst(new_outer.dst as u32);
        let c = h.view().checksum();
        h.0[10..12].copy_from_slice(&csum_update(c, old_a, new_a).to_be_bytes());
        (h.view().total_len() as usize).min(d.len())
    };
    let Some(msg) = d.get_mut(outer.l4_off..end) else {
        return;
    };
    let Some(mut i) = IcmpHdrMut::new(msg) else {
        return;
    };
    i.set_checksum(0);
    let c = if ip6 {
        l4_checksum_ip6(new_outer.src, new_outer.dst, IP_PROTO_IPV6_ICMP, msg)
    } else {
        wire::checksum(msg)
    };
    if let Some(mut i) = IcmpHdrMut::new(msg) {
        i.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

    fn a4(x: [u8; 4]) -> u128 {
        v4(u32::from_be_bytes(x))
    }

    /// Every checksum of `p` (IP header and transport) verified by etherparse's own sums.
    fn assert_checksums_ok(p: &[u8]) {
        let s = SlicedPacket::from_ip(p).unwrap();
        match s.net.unwrap() {
            etherparse::NetSlice::Ipv4(ip) => {
                let h = ip.header().to_header();
                assert_eq!(h.calc_header_checksum(), h.header_checksum, "ip4 header");
                let (src, dst) = (ip.header().source(), ip.header().destination());
                match s.transport.unwrap() {
                    TransportSlice::Udp(u) => {
                        let uh = u.to_header();
                        if uh.checksum != 0 {
                            let c = uh.calc_checksum_ipv4_raw(src, dst, u.payload()).unwrap();
                            assert_eq!(c, uh.checksum, "udp");
                        }
                    }
                    TransportSlice::Tcp(t) => {
                        let th = t.to_header();
                        let c = th.calc_checksum_ipv4_raw(src, dst, t.payload()).unwrap();
                        assert_eq!(c, th.checksum, "tcp");
                    }
                    TransportSlice::Icmpv4(i) => {
                        assert_eq!(wire::checksum(i.slice()), 0, "icmp");
                    }
                    _ => panic!("transport"),
                }
            }
            etherparse::NetSlice::Ipv6(ip) => {
                let (src, dst) = (ip.header().source(), ip.header().destination());
                match s.transport.unwrap() {
                    TransportSlice::Udp(u) => {
                        let uh = u.to_header();
                        let c = uh.calc_checksum_ipv6_raw(src, dst, u.payload()).unwrap();
                        assert_eq!(c, uh.checksum, "udp6");
                    }
                    TransportSlice::Tcp(t) => {
                        let th = t.to_header();
                        let c = th.calc_checksum_ipv6_raw(src, dst, t.payload()).unwrap();
                        assert_eq!(c, th.checksum, "tcp6");
                    }
                    TransportSlice::Icmpv6(i) => {
                        let c = l4_checksum_ip6(
                            u128::from_be_bytes(src),
                            u128::from_be_bytes(dst),
                            58,
                            i.slice(),
                        );
                        assert_eq!(c, 0, "icmp6 sums to zero with its checksum");
                    }
                    _ => panic!("transport"),
                }
            }
        }
    }

    #[test]
    fn rewrite_keeps_every_checksum_right() {
        let cases: Vec<Vec<u8>> = vec![
            {
                let mut v = Vec::new();
                PacketBuilder::ipv4([198, 18, 0, 2], [198, 19, 0, 9], 64)
                    .udp(1000, 53)
                    .write(&mut v, b"hello")
                    .unwrap();
                v
            },
            {
                let mut v = Vec::new();
                PacketBuilder::ipv4([198, 18, 0, 2], [198, 19, 0, 9], 64)
                    .tcp(40000, 80, 1, 1000)
                    .syn()
                    .write(&mut v, b"hi")
                    .unwrap();
                v
            },
            {
                let mut v = Vec::new();
                PacketBuilder::ipv4([198, 18, 0, 2], [198, 19, 0, 9], 64)
                    .icmpv4_echo_request(0x1234, 1)
                    .write(&mut v, b"ping")
                    .unwrap();
                v
            },
            {
                let mut v = Vec::new();
                PacketBuilder::ipv6(
                    [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                    [0xfd, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9],
                    64,
                )
                .udp(1000, 53)
                .write(&mut v, b"hello6")
                .unwrap();
                v
            },
            {
                let mut v = Vec::new();
                PacketBuilder::ipv6(
                    [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                    [0xfd, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9],
                    64,
                )
                .tcp(40000, 443, 1, 1000)
                .ack(5)
                .write(&mut v, b"x")
                .unwrap();
                v
            },
            {
                let mut v = Vec::new();
                PacketBuilder::ipv6(
                    [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                    [0xfd, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9],
                    64,
                )
                .icmpv6_echo_request(0x77, 3)
                .write(&mut v, b"ping6")
                .unwrap();
                v
            },
        ];
        for mut p in cases {
            let ip6 = p[0] >> 4 == 6;
            let f = if ip6 { flow6(&p) } else { flow4(&p) }.unwrap();
            let rw = if ip6 {
                Rewrite {
                    src: 0xfd00_0000_0000_0000_0000_0000_dead_beef,
                    dst: 0xfd02_0000_0000_0000_0000_0000_0000_0042,
                    sport: 51234,
                    dport: if f.l4 == L4::Echo { 51234 } else { 8443 },
                }
            } else {
                Rewrite {
                    src: a4([198, 18, 7, 7]),
                    dst: a4([198, 19, 200, 1]),
                    sport: 50001,
                    dport: if f.l4 == L4::Echo { 50001 } else { 8080 },
                }
            };
            rewrite(&mut p, &f, &rw, false);
            assert_checksums_ok(&p);
            let g = if ip6 { flow6(&p) } else { flow4(&p) }.unwrap();
            assert_eq!((g.src, g.dst, g.sport), (rw.src, rw.dst, rw.sport));
            if f.l4 == L4::Ports {
                assert_eq!(g.dport, rw.dport);
            }
        }
    }

    fn xorshift(seed: u64) -> impl FnMut() -> u64 {
        let mut x = seed;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    /// A random IPv4 TCP or UDP packet of 40 to 69 bytes (what both fast paths take), its
    /// transport checksum random, 0 or 0xffff.
    fn random_plain4(rnd: &mut impl FnMut() -> u64, tcp: bool) -> Vec<u8> {
        let mut p: Vec<u8> = (0..40 + rnd() % 30).map(|_| rnd() as u8).collect();
        p[0] = 0x45;
        let n = p.len() as u16;
        p[2..4].copy_from_slice(&n.to_be_bytes());
        // DF may be set; no MF, no offset.
        p[6] &= 0x40;
        p[7] = 0;
        p[9] = if tcp { IP_PROTO_TCP } else { IP_PROTO_UDP };
        let at = if tcp { 36 } else { 26 };
        match rnd() % 4 {
            0 => p[at..at + 2].copy_from_slice(&[0, 0]),
            1 => p[at..at + 2].copy_from_slice(&[0xff, 0xff]),
            _ => {}
        }
        p
    }

    fn random_rw4(rnd: &mut impl FnMut() -> u64) -> Rewrite {
        Rewrite {
            src: v4(rnd() as u32),
            dst: v4(rnd() as u32),
            sport: rnd() as u16,
            dport: rnd() as u16,
        }
    }

    /// The one-check IPv4 parse reads what the general one reads, and declines (None) every
    /// header it does not take: options, fragments, other protocols, short lengths.
    #[test]
    fn plain_parse4_equals_general() {
        let mut rnd = xorshift(0x1234_5678_9abc_def1);
        let mut taken = 0;
        for i in 0..100_000 {
            let mut p = random_plain4(&mut rnd, i % 2 == 0);
            match rnd() % 8 {
                0 => p[0] = 0x40 | (5 + rnd() as u8 % 3),
                1 => p[6] |= 0x20,
                2 => p[7] = 1 + rnd() as u8 % 255,
                3 => p[9] = [IP_PROTO_ICMP, 0, 47, 132][rnd() as usize % 4],
                4 => {
                    let n = 20 + rnd() as u16 % 24;
                    p[2..4].copy_from_slice(&n.to_be_bytes());
                }
                5 => p.truncate(20 + rnd() as usize % 20),
                _ => {}
            }
            let any = flow4_any(&p);
            match flow4_plain(&p) {
                Some(f) => {
                    taken += 1;
                    assert_eq!(Ok(f), any, "{p:02x?}");
                }
                None => {
                    let plain_kind = p.len() >= 40
                        && p[0] == 0x45
                        && p[6] & 0x3f == 0
                        && p[7] == 0
                        && (p[9] == IP_PROTO_UDP && u16::from_be_bytes([p[2], p[3]]) >= 28
                            || p[9] == IP_PROTO_TCP && u16::from_be_bytes([p[2], p[3]]) >= 40);
                    assert!(!plain_kind, "declined a plain packet {p:02x?}");
                }
            }
            assert_eq!(flow4(&p), any);
        }
        assert!(taken > 30_000, "{taken}");
    }

    /// The IPv4 TCP/UDP rewrite by one address delta writes what the general rewrite writes,
    /// byte for byte: random packets and rewrites, checksums random, 0 and 0xffff, with and
    /// without checksum offload, a UDP result of 0 (sent as 0xffff) and a UDP 0 (kept).
    #[test]
    fn fast_rewrite4_equals_general() {
        let mut rnd = xorshift(0x9e37_79b9_7f4a_7c15);
        let mut udp_zero_result = 0;
        for i in 0..100_000 {
            let tcp = i % 2 == 0;
            let mut p = random_plain4(&mut rnd, tcp);
            let f = flow4(&p).unwrap();
            assert_eq!((f.l4, f.l4_off), (L4::Ports, IP4_HDR));
            let rw = random_rw4(&mut rnd);
            let partial = i % 5 == 0;
            if !tcp && !partial && i % 7 == 0 {
                // The checksum whose update is 0: it must go out as 0xffff.
                let c = csum_deltas4(f.src, f.dst, f.sport, f.dport, &rw) as u16;
                p[26..28].copy_from_slice(&c.to_be_bytes());
            }
            let (mut fast, mut general) = (p.clone(), p.clone());
            assert!(rewrite4_ports(&mut fast, &f, &rw, partial));
            rewrite_any(&mut general, &f, &rw, partial);
            assert_eq!(fast, general, "tcp {tcp} partial {partial} {p:02x?}");
            if !tcp && !partial && p[26..28] != [0, 0] && fast[26..28] == [0xff, 0xff] {
                udp_zero_result += 1;
            }
            let mut via = p.clone();
            rewrite(&mut via, &f, &rw, partial);
            assert_eq!(via, general);
        }
        assert!(udp_zero_result > 100, "{udp_zero_result}");
    }

    /// Fast-path packets with real checksums verify after the rewrite (etherparse's sums).
    #[test]
    fn fast_rewrite4_checksums_verify() {
        let mut rnd = xorshift(0x0bad_cafe_dead_beef);
        for i in 0..2_000 {
            let payload: Vec<u8> = (0..12 + rnd() % 40).map(|_| rnd() as u8).collect();
            let mut p = Vec::new();
            let b = PacketBuilder::ipv4(
                (rnd() as u32).to_be_bytes(),
                (rnd() as u32).to_be_bytes(),
                64,
            );
            if i % 2 == 0 {
                b.tcp(rnd() as u16, rnd() as u16, 1, 1000)
                    .ack(9)
                    .write(&mut p, &payload)
                    .unwrap();
            } else {
                b.udp(rnd() as u16, rnd() as u16)
                    .write(&mut p, &payload)
                    .unwrap();
            }
            let f = flow4(&p).unwrap();
            let rw = random_rw4(&mut rnd);
            assert!(rewrite4_ports(&mut p, &f, &rw, false));
            assert_checksums_ok(&p);
            let g = flow4(&p).unwrap();
            assert_eq!(
                (g.src, g.dst, g.sport, g.dport),
                (rw.src, rw.dst, rw.sport, rw.dport)
            );
        }
    }

    #[test]
    fn udp_checksum_zero_stays_zero() {
        let mut v = Vec::new();
        PacketBuilder::ipv4([198, 18, 0, 2], [198, 19, 0, 9], 64)
            .udp(1000, 53)
            .write(&mut v, b"hello")
            .unwrap();
        v[26] = 0;
        v[27] = 0;
        let f = flow4(&v).unwrap();
        let rw = Rewrite {
            src: a4([198, 18, 0, 2]),
            dst: a4([198, 19, 1, 1]),
            sport: 1000,
            dport: 5353,
        };
        rewrite(&mut v, &f, &rw, false);
        assert_eq!(&v[26..28], &[0, 0]);
        assert_checksums_ok(&v);
    }

    #[test]
    fn truncated_and_fragments() {
        let mut v = Vec::new();
        PacketBuilder::ipv4([198, 18, 0, 2], [198, 19, 0, 9], 64)
            .tcp(40000, 80, 1, 1000)
            .write(&mut v, b"")
            .unwrap();
        assert_eq!(flow4(&v[..30]), Err(ParseError::Truncated));
        let mut frag = v.clone();
        frag[6] = 0;
        frag[7] = 10; // offset 80 bytes
        assert_eq!(flow4(&frag).unwrap().l4, L4::Fragment);
    }

    #[test]
    fn icmp_error_is_translated_back_with_all_checksums() {
        // Client 198.18.0.2:40000 -> VIP 198.19.255.1:80 was DNATed to backend 198.19.0.9:8080.
        // A router 198.19.0.1 answers the translated packet with port unreachable to the
        // client. The error must quote client -> VIP and its checksums must hold.
        let mut sent = Vec::new();
        PacketBuilder::ipv4([198, 18, 0, 2], [198, 19, 0, 9], 63)
            .udp(40000, 8080)
            .write(&mut sent, b"data")
            .unwrap();
        let mut err = Vec::new();
        PacketBuilder::ipv4([198, 19, 0, 9], [198, 18, 0, 2], 64)
            .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::Port,
            ))
            .write(&mut err, &sent)
            .unwrap();
        let outer = flow4(&err).unwrap();
        assert_eq!(outer.l4, L4::IcmpError);
        let inner = quoted_flow(&err, &outer).unwrap();
        assert_eq!((inner.sport, inner.dport), (40000, 8080));
        // The return session: backend -> client becomes VIP -> client.
        let ret = Rewrite {
            src: a4([198, 19, 255, 1]),
            dst: a4([198, 18, 0, 2]),
            sport: 80,
            dport: 40000,
        };
        rewrite_icmp_error(&mut err, &outer, &inner, &ret);
        let o = flow4(&err).unwrap();
        assert_eq!(
            o.src,
            a4([198, 19, 255, 1]),
            "the backend itself answered: VIP"
        );
        assert_eq!(o.dst, a4([198, 18, 0, 2]));
        assert_checksums_ok(&err);
        let q = quoted_flow(&err, &o).unwrap();
        assert_eq!(
            (q.src, q.dst, q.sport, q.dport),
            (a4([198, 18, 0, 2]), a4([198, 19, 255, 1]), 40000, 80)
        );
        let qh = etherparse::Ipv4HeaderSlice::from_slice(&err[28..]).unwrap();
        let h = qh.to_header();
        assert_eq!(
            h.calc_header_checksum(),
            h.header_checksum,
            "quoted ip header"
        );
        let udp = &err[48..];
        let uh = etherparse::UdpHeaderSlice::from_slice(udp)
            .unwrap()
            .to_header();
        assert_eq!(
            uh.calc_checksum_ipv4_raw(qh.source(), qh.destination(), &udp[8..])
                .unwrap(),
            uh.checksum,
            "quoted udp checksum"
        );
    }

    #[test]
    fn icmp6_packet_too_big_is_translated_back() {
        let c: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0x18, 0, 0, 0, 0, 0, 0, 0, 2];
        let vip: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0x19, 0, 0xff, 0, 0, 0, 0, 0, 1];
        let b: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0x19, 0, 0, 0, 0, 0, 0, 0, 2];
        let r: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0x19, 0, 0, 0, 0, 0, 0, 0, 1];
        let mut sent = Vec::new();
        PacketBuilder::ipv6(c, b, 63)
            .tcp(40000, 8080, 7, 1000)
            .ack(1)
            .write(&mut sent, &[0x42; 64])
            .unwrap();
        let mut err = Vec::new();
        PacketBuilder::ipv6(r, c, 64)
            .icmpv6(etherparse::Icmpv6Type::PacketTooBig { mtu: 1280 })
            .write(&mut err, &sent)
            .unwrap();
        let outer = flow6(&err).unwrap();
        assert_eq!(outer.l4, L4::IcmpError);
        let inner = quoted_flow(&err, &outer).unwrap();
        let ret = Rewrite {
            src: u128::from_be_bytes(vip),
            dst: u128::from_be_bytes(c),
            sport: 80,
            dport: 40000,
        };
        rewrite_icmp_error(&mut err, &outer, &inner, &ret);
        // A router (not the backend) sent it: the outer source stays.
        assert_checksums_ok(&err);
        let o = flow6(&err).unwrap();
        assert_eq!(
            (o.src, o.dst),
            (u128::from_be_bytes(r), u128::from_be_bytes(c))
        );
        let q = quoted_flow(&err, &o).unwrap();
        assert_eq!(
            (q.src, q.dst, q.sport, q.dport),
            (u128::from_be_bytes(c), u128::from_be_bytes(vip), 40000, 80)
        );
        // The quoted TCP segment is whole here, so its checksum must verify too.
        let qd = &err[48..];
        let th = etherparse::TcpHeaderSlice::from_slice(&qd[40..])
            .unwrap()
            .to_header();
        let payload = &qd[40 + th.header_len()..];
        assert_eq!(
            th.calc_checksum_ipv6_raw(c, vip, payload).unwrap(),
            th.checksum,
            "quoted tcp checksum"
        );
    }
}
