//! IP-in-IP tunnels (RFC 2003; protocol 4 for IPv4 inside, 41 for IPv6 inside): point-to-point
//! interfaces `ipipN` without a MAC. Encap is a feature on the tunnel's output arcs, like VXLAN
//! (VPP's midchain adjacency: ip4-/ip6-rewrite hands the inner packet to `ipip4-encap` /
//! `ipip6-encap`, which prepends the outer header and looks the result up again in the tunnel's
//! encap table). Decap: ip4-local hands protocol 4 and 41 to `ipip4-input` (ip6-local, right
//! after the fixed header, to `ipip6-input`), which finds the tunnel by (outer source, outer
//! destination) and sends the inner packet to ip4-/ip6-input with rx_sw_if_index = the tunnel.
//!
//! Outer header: TTL / hop limit 64; DF clear unless the tunnel copies the inner DF
//! (`COPY_DF`) or sets it (`SET_DF`); DSCP the tunnel's, or the inner's with `COPY_DSCP`
//! (VPP's `tunnel_encap_decap_flags`; the front ends refuse the flags not implemented here).

use crate::buffer::{flags, Buf};
use crate::feature::{Feature, FeatureTables};
use crate::graph::{GraphBuilder, Node, NodeInfo, NodeKind};
use crate::rcu::{Published, Snapshot};
use crate::runtime::Ctx;
use crate::tables::MAX_RELOOKUPS;
use crate::wire::tunnel::{IP_PROTO_IPIP, IP_PROTO_IPV6};
use crate::wire::{self, Ip4Hdr, Ip4HdrMut, Ip6Hdr, Ip6HdrMut};
use super::tunnel::{addr_bits, EncapTarget, LastKey, TunnelEntry, TunnelSet, Uplink};
use std::net::IpAddr;
use std::sync::Arc;

pub const ENCAP4: Feature = Feature::new("ip4-output", "ipip4-encap");
pub const ENCAP6: Feature = Feature::new("ip6-output", "ipip6-encap");
pub const INPUT4: &str = "ipip4-input";
pub const INPUT6: &str = "ipip6-input";

/// Outer TTL / hop limit (VPP's default for tunnels).
pub const OUTER_TTL: u8 = 64;

/// VPP's `tunnel_encap_decap_flags` that rvpp implements.
pub mod tunnel_flags {
    pub const COPY_DF: u8 = 1;
    pub const SET_DF: u8 = 2;
    pub const COPY_DSCP: u8 = 4;
    pub const SUPPORTED: u8 = COPY_DF | SET_DF | COPY_DSCP;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tunnel {
    pub sw_if_index: u32,
    pub instance: u32,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub encap_fib: u32,
    pub table_id: u32,
    /// [`tunnel_flags`].
    pub flags: u8,
    pub dscp: u8,
}

impl TunnelEntry for Tunnel {
    /// (outer destination, outer source, outer is IPv6).
    type Key = (u128, u128, bool);
    fn sw_if_index(&self) -> u32 {
        self.sw_if_index
    }
    fn decap_key(&self) -> Self::Key {
        let (s, v6) = addr_bits(self.src);
        (addr_bits(self.dst).0, s, v6)
    }
}

/// Every tunnel, by sw_if_index and by the (source, destination) its packets arrive with.
pub type Tunnels = TunnelSet<Tunnel>;

impl Tunnels {
    /// The tunnel that receives packets from `src` to `dst`.
    #[inline(always)]
    pub fn decap(&self, src: u128, dst: u128, v6: bool) -> Option<u32> {
        self.decap_sw(&(src, dst, v6))
    }
    /// The tunnel with these endpoints, if any.
    pub fn find(&self, src: IpAddr, dst: IpAddr) -> Option<&Tunnel> {
        let (s, v6) = addr_bits(src);
        self.find_key(&(addr_bits(dst).0, s, v6))
    }
}

pub type Table = Published<Tunnels>;

crate::next_edges! {
    mod encap_next {
        DROP => "error-drop",
        IP4_LOOKUP => "ip4-lookup",
        IP6_LOOKUP => "ip6-lookup",
        OUTPUT => "interface-output",
        ICMP4 => "ip4-icmp-error",
        ICMP6 => "ip6-icmp-error",
    }
}

crate::node_errors! {
    pub mod encap_error {
        ENCAPSULATED => "ipip packets encapsulated",
        TOO_BIG => "ipip encap: outer over the uplink's MTU, ICMP too-big sent toward the source",
        DOWN => "ipip encap: tunnel interface is down (dropped)",
        NO_TUNNEL => "ipip encap: interface is not a tunnel (dropped)",
        NO_HEADROOM => "ipip encap: no headroom for the outer header (dropped)",
        LOOP => "ipip encap: tunnel loops into itself (dropped)",
        NESTED_OFFLOAD => "ipip encap: offload already through another tunnel (dropped)",
        NOT_IP => "ipip encap: inner packet is not IP (dropped)",
    }
}

pub struct IpipEncap {
    name: &'static str,
    table: Arc<Table>,
    snap: Snapshot<Tunnels>,
}

impl IpipEncap {
    pub fn new(name: &'static str, table: Arc<Table>) -> Self {
        Self {
            name,
            snap: table.snapshot(),
            table,
        }
    }
}

/// What the outer header takes from the inner packet, packed in one word: the outer
/// protocol number (4 or 41) in bits 0-7, the DSCP in 8-13, DF in bit 16; 0 when the inner
/// packet is not IP. One scalar because a (u8, u8, bool) here was spilled as two stores and
/// reloaded as one, a store-forwarding stall that cost a third of the node's clocks.
#[inline(always)]
fn inner_info(d: &[u8]) -> u32 {
    match d.first().map(|v| v >> 4) {
        Some(4) => match Ip4Hdr::new(d) {
            Some(h) => {
                IP_PROTO_IPIP as u32 | ((h.0[1] >> 2) as u32) << 8 | (h.dont_frag() as u32) << 16
            }
            None => 0,
        },
        Some(6) if d.len() >= wire::IP6_HDR => {
            let tc = (d[0] << 4) | (d[1] >> 4);
            IP_PROTO_IPV6 as u32 | ((tc >> 2) as u32) << 8
        }
        _ => 0,
    }
}

/// A tunnel as its packets are encapsulated: for an IPv4 outer header, the header with the
/// per-packet fields (TOS, total length, DF, protocol, checksum) zero and the one's-complement
/// sum of the rest, so each packet costs a copy and four additions; for an IPv6 one, the
/// header with the per-packet fields (traffic class, payload length, next header) zero.
struct Prepared<'t> {
    t: &'t Tunnel,
    hdr4: [u8; wire::IP4_HDR],
    sum4: u64,
    hdr6: [u8; wire::IP6_HDR],
    /// IPv4 outer (else IPv6): which header [`straight`] writes.
    v4: bool,
}

fn prepare(t: &Tunnel) -> EncapTarget<Prepared<'_>> {
    let mut hdr4 = [0u8; wire::IP4_HDR];
    let mut hdr6 = [0u8; wire::IP6_HDR];
    match (t.src, t.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            Ip4HdrMut(&mut hdr4).init(s.into(), d.into(), 0, OUTER_TTL, 0);
            hdr4[10..12].fill(0);
        }
        (s, d) => Ip6HdrMut(&mut hdr6).init(addr_bits(s).0, addr_bits(d).0, 0, OUTER_TTL, 0),
    }
    EncapTarget {
        prepared: Prepared {
            t,
            sum4: wire::ones_sum(&hdr4, 0),
            hdr4,
            hdr6,
            v4: matches!((t.src, t.dst), (IpAddr::V4(_), IpAddr::V4(_))),
        },
        encap_fib: t.encap_fib,
        outer_dst: t.dst,
        overhead: if t.dst.is_ipv6() {
            wire::IP6_HDR as u16
        } else {
            wire::IP4_HDR as u16
        },
        inner_l2: 0,
    }
}

/// The common packet onto a tunnel whose uplink has an Ethernet header and fits it: one
/// buffer, no offload, an IPv4 or IPv6 packet inside. The uplink's header and the outer one
/// (of either family) are written in one window, as [`encap_one`] and [`Uplink::finish`]
/// would write them. None, changing nothing: anything else.
#[inline(always)]
fn straight(b: &mut Buf<'_>, p: &Prepared<'_>, up: &Uplink) -> Option<u16> {
    const L2: usize = wire::ETH_HDR;
    if p.v4 {
        straight_with::<{ L2 + wire::IP4_HDR }, { L2 + wire::IP4_HDR + IN }, { wire::IP4_HDR }>(
            b, p, up, outer4,
        )
    } else {
        straight_with::<{ L2 + wire::IP6_HDR }, { L2 + wire::IP6_HDR + IN }, { wire::IP6_HDR }>(
            b, p, up, outer6,
        )
    }
}

/// The inner bytes [`straight`]'s window covers: an IPv4 header, the first half of an IPv6
/// one (its traffic class is in the first two bytes).
const IN: usize = wire::IP4_HDR;

/// [`straight`] with an `OUT`-byte outer header, which `outer` writes from the outer
/// ((TOS, fragment word), protocol) and the inner packet's length: the window is `BACK` = Ethernet + `OUT` bytes back, `W` = `BACK`
/// + [`IN`] long.
#[inline(always)]
fn straight_with<const BACK: usize, const W: usize, const OUT: usize>(
    b: &mut Buf<'_>,
    p: &Prepared<'_>,
    up: &Uplink,
    outer: impl FnOnce(&mut [u8; OUT], &Prepared<'_>, ((u8, u16), u8), u16),
) -> Option<u16> {
    const NOT_PLAIN: u32 =
        flags::TUNNEL_OFFLOAD | flags::GSO | flags::OFFLOAD_L4_CKSUM | flags::NEXT_PRESENT;
    let m = &*b.meta;
    let inner_len = m.current_length;
    if m.flags & NOT_PLAIN != 0 || m.relookups >= MAX_RELOOKUPS || (inner_len as usize) < IN {
        return None;
    }
    let eth = up.eth()?;
    let w = b.window_mut::<BACK, W>()?;
    let (h, inner) = w.split_at_mut(BACK);
    // (protocol, the inner TOS / traffic class byte, DF) as `inner_info` would say them.
    let inner = (
        match inner[0] >> 4 {
            4 => IP_PROTO_IPIP,
            6 if inner_len as usize >= wire::IP6_HDR => IP_PROTO_IPV6,
            _ => return None,
        },
        inner[0] << 4 | inner[1] >> 4,
        inner[1],
        inner[6] & 0x40 != 0,
    );
    let (proto, tos) = match inner {
        (IP_PROTO_IPIP, _, tos, df) => (IP_PROTO_IPIP, outer_tos_frag(p.t, tos, df)),
        (proto, tc, _, _) => (proto, outer_tos_frag(p.t, tc, false)),
    };
    let (l2, ip) = h.split_first_chunk_mut::<{ wire::ETH_HDR }>()?;
    let ip = ip.first_chunk_mut::<OUT>()?;
    *l2 = *eth;
    outer(ip, p, (tos, proto), inner_len);
    super::tunnel::straight_out(b.meta, up, OUT, p.t.encap_fib);
    Some(encap_next::OUTPUT)
}

/// The outer TOS / traffic class and DF (as the IPv4 fragment word) of a packet whose own
/// TOS / traffic class byte is `inner_tos` and DF `inner_df`, as the tunnel's flags make them.
#[inline(always)]
fn outer_tos_frag(t: &Tunnel, inner_tos: u8, inner_df: bool) -> (u8, u16) {
    let tos = if t.flags & tunnel_flags::COPY_DSCP != 0 {
        inner_tos & 0xfc
    } else {
        t.dscp << 2
    };
    let df = t.flags & tunnel_flags::SET_DF != 0
        || (t.flags & tunnel_flags::COPY_DF != 0 && inner_df);
    (tos, if df { 0x4000 } else { 0 })
}

/// [`straight`]'s IPv4 outer header.
#[inline(always)]
fn outer4(
    ip: &mut [u8; wire::IP4_HDR],
    p: &Prepared<'_>,
    ((tos, frag), proto): ((u8, u16), u8),
    len: u16,
) {
    let total = wire::IP4_HDR as u16 + len;
    *ip = p.hdr4;
    ip[1] = tos;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[6..8].copy_from_slice(&frag.to_be_bytes());
    ip[9] = proto;
    let sum = p.sum4 + tos as u64 + total as u64 + frag as u64 + proto as u64;
    ip[10..12].copy_from_slice(&wire::fold(sum).to_be_bytes());
}

/// [`straight`]'s IPv6 outer header (no DF in IPv6: the tunnel's DF flags do not apply).
#[inline(always)]
fn outer6(
    ip: &mut [u8; wire::IP6_HDR],
    p: &Prepared<'_>,
    ((tc, _), proto): ((u8, u16), u8),
    len: u16,
) {
    *ip = p.hdr6;
    ip[0] = 0x60 | tc >> 4;
    ip[1] = tc << 4;
    ip[4..6].copy_from_slice(&len.to_be_bytes());
    ip[6] = proto;
}

#[inline(always)]
fn encap_one(b: &mut Buf<'_>, p: &Prepared<'_>, up: Option<&Uplink>) -> Result<u16, u16> {
    if let Some(next) = up.and_then(|up| straight(b, p, up)) {
        return Ok(next);
    }
    let t = p.t;
    let m = &*b.meta;
    // An offload (GSO, L4 checksum) is the inner packet's: gso-segment does it after us.
    let offload = super::tunnel::offload_state(m, encap_error::NESTED_OFFLOAD)?;
    if m.relookups >= MAX_RELOOKUPS {
        return Err(encap_error::LOOP);
    }
    let info = inner_info(b.data());
    if info == 0 {
        return Err(encap_error::NOT_IP);
    }
    let (proto, inner_dscp, inner_df) = (info as u8, (info >> 8) as u8, info & 1 << 16 != 0);
    let (tos, frag) = outer_tos_frag(t, inner_dscp << 2, inner_df);
    let inner_len = b.total_len();
    let next = match (t.src, t.dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => {
            if !b.retreat(wire::IP4_HDR) {
                return Err(encap_error::NO_HEADROOM);
            }
            let Some(h) = b.data_mut().first_chunk_mut::<{ wire::IP4_HDR }>() else {
                return Err(encap_error::NO_HEADROOM);
            };
            *h = p.hdr4;
            let total = (wire::IP4_HDR + inner_len) as u16;
            h[1] = tos;
            h[2..4].copy_from_slice(&total.to_be_bytes());
            h[6..8].copy_from_slice(&frag.to_be_bytes());
            h[9] = proto;
            let sum = p.sum4 + tos as u64 + total as u64 + frag as u64 + proto as u64;
            h[10..12].copy_from_slice(&wire::fold(sum).to_be_bytes());
            if offload {
                super::tunnel::hand_on_offload(b.meta, wire::IP4_HDR);
            }
            encap_next::IP4_LOOKUP
        }
        _ => {
            if !b.retreat(wire::IP6_HDR) {
                return Err(encap_error::NO_HEADROOM);
            }
            let Some(h) = b.data_mut().first_chunk_mut::<{ wire::IP6_HDR }>() else {
                return Err(encap_error::NO_HEADROOM);
            };
            *h = p.hdr6;
            h[4..6].copy_from_slice(&(inner_len as u16).to_be_bytes());
            h[6] = proto;
            h[0] = 0x60 | tos >> 4;
            h[1] = tos << 4;
            if offload {
                super::tunnel::hand_on_offload(b.meta, wire::IP6_HDR);
            }
            encap_next::IP6_LOOKUP
        }
    };
    super::tunnel::outer_packet(b.meta, t.encap_fib);
    Ok(next)
}

const TOO_BIG_CODES: super::tunnel::TooBigCodes = super::tunnel::TooBigCodes {
    sent: encap_error::TOO_BIG,
    icmp4: encap_next::ICMP4,
    icmp6: encap_next::ICMP6,
};

const ENCAP_CODES: super::tunnel::EncapCodes = super::tunnel::EncapCodes {
    encapsulated: encap_error::ENCAPSULATED,
    down: encap_error::DOWN,
    no_tunnel: encap_error::NO_TUNNEL,
    drop: encap_next::DROP,
};

impl Node for IpipEncap {
    fn info(&self) -> NodeInfo {
        NodeInfo::internal(self.name, encap_next::NAMES, encap_error::NAMES)
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        self.snap.refresh(&self.table);
        let tunnels = self.snap.get();
        super::tunnel::encap_stacked_vector(
            cx,
            bufs,
            nexts,
            (&ENCAP_CODES, encap_next::OUTPUT, &TOO_BIG_CODES),
            |sw| tunnels.get(sw).map(prepare),
            encap_one,
        );
    }
}

crate::next_edges! {
    mod input_next {
        DROP => "error-drop",
        IP4 => "ip4-input",
        IP6 => "ip6-input",
        IP4_LOOKUP => "ip4-lookup",
        IP6_LOOKUP => "ip6-lookup",
    }
}

crate::node_errors! {
    pub mod input_error {
        DECAPSULATED => "ipip packets decapsulated",
        DOWN => "ipip: tunnel interface is down (dropped)",
        NO_TUNNEL => "ipip: no tunnel for source and destination (dropped)",
        BAD_INNER => "ipip: inner packet does not match the protocol (dropped)",
        SHORT => "ipip: truncated (dropped)",
    }
}

/// ipip4-input / ipip6-input: the packet starts at the outer IPv4 header (protocol 4 or 41)
/// or the outer IPv6 header (next header 4 or 41, no extension headers).
pub struct IpipInput {
    v6: bool,
    table: Arc<Table>,
    snap: Snapshot<Tunnels>,
}

impl IpipInput {
    pub fn new(v6: bool, table: Arc<Table>) -> Self {
        Self {
            v6,
            snap: table.snapshot(),
            table,
        }
    }
}

#[inline(always)]
fn decap4(
    b: &mut Buf<'_>,
    tunnels: &Tunnels,
    last: &mut LastKey<(u128, u128), u32>,
) -> Result<u16, u16> {
    let d = b.data();
    let h = Ip4Hdr::new(d).ok_or(input_error::SHORT)?;
    let (hl, proto) = (h.header_len(), h.protocol());
    let tl = (h.total_len() as usize).min(d.len());
    let sw = last
        .get((h.src() as u128, h.dst() as u128), |&(s, d)| {
            tunnels.decap(s, d, false)
        })
        .ok_or(input_error::NO_TUNNEL)?;
    finish_decap(b, sw, hl, tl, proto)
}

#[inline(always)]
fn decap6(
    b: &mut Buf<'_>,
    tunnels: &Tunnels,
    last: &mut LastKey<(u128, u128), u32>,
) -> Result<u16, u16> {
    let total = b.total_len();
    let d = b.data();
    let h = Ip6Hdr::new(d).ok_or(input_error::SHORT)?;
    let tl = wire::IP6_HDR + h.payload_len() as usize;
    if tl > total {
        return Err(input_error::SHORT);
    }
    let sw = last
        .get((h.src(), h.dst()), |&(s, d)| tunnels.decap(s, d, true))
        .ok_or(input_error::NO_TUNNEL)?;
    finish_decap(b, sw, wire::IP6_HDR, tl.min(d.len()), h.next_header())
}

/// Where [`plain4`]'s inner header starts.
const PLAIN_IN: usize = wire::IP4_HDR;

/// The outer protocol (IPv4) or next header (IPv6) of an inner packet of either family.
#[inline(always)]
fn proto_of(inner6: bool) -> u8 {
    if inner6 {
        IP_PROTO_IPV6
    } else {
        IP_PROTO_IPIP
    }
}

/// An IP-in-IPv4 packet both of whose headers are plain (IPv4 inside with protocol 4, IPv6
/// with 41), keyed by its outer addresses and the protocol (which names the inner family).
#[inline(always)]
fn plain4(b: &Buf<'_>) -> Option<super::tunnel::PlainKey> {
    use super::tunnel::{plain_inner4, plain_inner6};
    let h = b.head::<{ PLAIN_IN + wire::IP4_HDR }>()?;
    let len = b.meta.current_length as usize;
    let (o, first) = h.split_first_chunk::<PLAIN_IN>()?;
    let inner = len - PLAIN_IN;
    let inner_ok = match o[9] {
        IP_PROTO_IPIP => plain_inner4(first.first_chunk()?, inner),
        IP_PROTO_IPV6 => b
            .head::<{ PLAIN_IN + wire::IP6_HDR }>()
            .and_then(|h| h.last_chunk())
            .is_some_and(|h| plain_inner6(h, inner)),
        _ => false,
    };
    let plain = inner_ok && o[0] == 0x45 && u16::from_be_bytes([o[2], o[3]]) as usize == len;
    let addrs = [o[12], o[13], o[14], o[15], o[16], o[17], o[18], o[19]];
    plain.then_some(u64::from_ne_bytes(addrs) as u128 | (o[9] as u128) << 64)
}

/// Where [`plain6`]'s inner header starts.
const PLAIN_IN6: usize = wire::IP6_HDR;

/// An IP-in-IPv6 packet both of whose headers are plain, keyed by its outer addresses and
/// the inner family.
#[inline(always)]
fn plain6(b: &Buf<'_>) -> Option<super::tunnel::PlainKey6> {
    use super::tunnel::{plain_inner, plain_outer6};
    let h = b.head::<{ PLAIN_IN6 + wire::IP4_HDR }>()?;
    let len = b.meta.current_length as usize;
    let (o, first) = h.split_first_chunk::<PLAIN_IN6>()?;
    let first = first.first_chunk()?;
    let inner6 = plain_inner::<{ PLAIN_IN6 + wire::IP6_HDR }>(b, first, len - PLAIN_IN6)?;
    plain_outer6(o, proto_of(inner6), len).map(|a| (a, 0, inner6))
}

/// The inner packet of `proto` at `hl`, ending at `tl` in this buffer, onto tunnel `sw`.
#[inline(always)]
fn finish_decap(b: &mut Buf<'_>, sw: u32, hl: usize, tl: usize, proto: u8) -> Result<u16, u16> {
    let d = b.data();
    let inner = d.get(hl..tl).ok_or(input_error::SHORT)?;
    let next = match (proto, inner.first().map(|v| v >> 4)) {
        (IP_PROTO_IPIP, Some(4)) => input_next::IP4,
        (IP_PROTO_IPV6, Some(6)) => input_next::IP6,
        _ => return Err(input_error::BAD_INNER),
    };
    if tl < d.len() {
        b.set_len(tl);
    }
    b.advance(hl);
    super::tunnel::inner_checksum_offload(b, 0);
    super::tunnel::inner_packet(b.meta, sw);
    Ok(next)
}

const DECAP_CODES: super::tunnel::DecapCodes = super::tunnel::DecapCodes {
    decapsulated: input_error::DECAPSULATED,
    down: input_error::DOWN,
    drop: input_next::DROP,
    inner_ip4: Some((input_next::IP4, input_next::IP4_LOOKUP)),
    inner_ip6: Some((input_next::IP6, input_next::IP6_LOOKUP)),
    ethernet: None,
};

impl Node for IpipInput {
    fn info(&self) -> NodeInfo {
        NodeInfo {
            name: if self.v6 { INPUT6 } else { INPUT4 },
            kind: NodeKind::Internal,
            next_nodes: input_next::NAMES,
            errors: input_error::NAMES,
        }
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        self.snap.refresh(&self.table);
        let tunnels = self.snap.get();
        let mut last = LastKey::new();
        if self.v6 {
            super::tunnel::decap_vector_keyed(cx, bufs, nexts, &DECAP_CODES, (PLAIN_IN6, |b| plain6(b).map(|k| (k, false))), |b| {
                decap6(b, tunnels, &mut last)
            });
        } else {
            super::tunnel::decap_vector_keyed(cx, bufs, nexts, &DECAP_CODES, (PLAIN_IN, |b| plain4(b).map(|k| (k, false))), |b| {
                decap4(b, tunnels, &mut last)
            });
        }
    }
}

pub fn register(b: GraphBuilder, tables: &FeatureTables) -> GraphBuilder {
    let t = tables.get::<Table>();
    b.feature(ENCAP4, Box::new(IpipEncap::new(ENCAP4.node, t.clone())))
        .feature(ENCAP6, Box::new(IpipEncap::new(ENCAP6.node, t.clone())))
        .node(Box::new(IpipInput::new(false, t.clone())))
        .node(Box::new(IpipInput::new(true, t)))
}
