//! VXLAN tunnels (RFC 7348): encap as a feature on the tunnel interface's output arcs, decap
//! from ip4-local / ip6-local (UDP to 4789 or to a tunnel's local port, `FwdTable::vxlan_ports`).
//!
//! A tunnel is an interface (`vxlan_tunnelN`, created by the control service). Routes through it
//! resolve to its adjacency as through any interface; the tunnel has `vxlan4-encap` enabled on
//! ip4-output and `vxlan6-encap` on ip6-output, so ip4-/ip6-rewrite hand its packets to the
//! encap node, which prepends the outer IP + UDP + VXLAN headers and sends the result to
//! ip4-/ip6-lookup in the tunnel's encap table. The outer packet leaves by the uplink the lookup
//! finds (marked locally originated: its TTL is the one set here).
//!
//! Two modes per tunnel (the API's `is_l3`):
//! - L2 (`is_l3 = 0`, what a Linux `vxlan.calico` device speaks): the tunnel interface is an
//!   Ethernet interface. Its adjacencies carry the inner Ethernet header: destination = the
//!   neighbour's MAC (a static neighbour of the remote VTEP address with the remote VTEP MAC, as
//!   felix programs on Linux nodes), source = the tunnel's MAC. Decap hands the inner frame to
//!   ethernet-input, so the peer must address our tunnel's MAC.
//! - L3 (`is_l3 = 1`, calico-vpp between VPP nodes): bare IP after the VXLAN header, no inner
//!   Ethernet. Decap sends the inner packet to ip4-/ip6-input by its version nibble.
//!
//! The decap table is keyed by (outer source, outer destination, VNI) = (tunnel dst, tunnel
//! src, VNI), published through rcu; each worker snapshots it once per vector.

use crate::buffer::{flags, Buf};
use crate::feature::{Feature, FeatureTables};
use crate::graph::{GraphBuilder, Node, NodeInfo, NodeKind};
use crate::rcu::{Published, Snapshot};
use crate::runtime::Ctx;
use crate::tables::MAX_RELOOKUPS;
use crate::wire::tunnel::{VxlanHdr, VxlanHdrMut, VXLAN_HDR};
use crate::wire::{self, Ip4Hdr, Ip4HdrMut, Ip6Hdr, Ip6HdrMut};
use super::tunnel::{addr_bits, EncapTarget, LastKey, TunnelEntry, TunnelSet, Uplink};
use std::net::IpAddr;
use std::sync::Arc;

/// The encap feature for IPv4 packets routed into a tunnel.
pub const ENCAP4: Feature = Feature::new("ip4-output", "vxlan4-encap");
/// The encap feature for IPv6 packets routed into a tunnel.
pub const ENCAP6: Feature = Feature::new("ip6-output", "vxlan6-encap");
/// The device type of a tunnel interface (`show interface`); its output is its encap.
pub const DEV_TYPE: &str = "vxlan";
/// Decap of VXLAN over IPv4 (from ip4-local).
pub const INPUT4: &str = "vxlan4-input";
/// Decap of VXLAN over IPv6 (from ip6-local).
pub const INPUT6: &str = "vxlan6-input";

/// Outer TTL / hop limit of encapsulated packets (VPP's and Linux's default).
pub const OUTER_TTL: u8 = 64;

/// UDP source ports are taken from the inner flow hash in the dynamic range (RFC 7348 §5).
#[inline(always)]
pub fn src_port(flow_hash: u32) -> u16 {
    49152 | (flow_hash ^ flow_hash >> 16) as u16 & 0x3fff
}

/// One tunnel, as the encap and decap nodes need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tunnel {
    pub sw_if_index: u32,
    pub instance: u32,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// UDP destination port of encapsulated packets (4789 unless configured).
    pub dst_port: u16,
    /// UDP port received on (VPP's `src_port`, the local one; 4789 unless configured).
    pub src_port: u16,
    pub vni: u32,
    /// FIB index the outer packet is looked up in.
    pub encap_fib: u32,
    /// The table id behind `encap_fib`, for the front ends.
    pub encap_vrf_id: u32,
    /// L3 mode: bare IP after the VXLAN header (calico-vpp); else an inner Ethernet frame.
    pub l3: bool,
    /// As the API gave it, shown back by dumps. Decap picks ip4-/ip6-input by the inner
    /// packet's version itself (what calico's `add_node_next` edges lead to anyway).
    pub decap_next_index: u32,
}

impl TunnelEntry for Tunnel {
    /// (outer destination, outer source, VNI, outer is IPv6).
    type Key = (u128, u128, u32, bool);
    fn sw_if_index(&self) -> u32 {
        self.sw_if_index
    }
    fn decap_key(&self) -> Self::Key {
        let (s, v6) = addr_bits(self.src);
        (addr_bits(self.dst).0, s, self.vni, v6)
    }
}

/// Every tunnel, by sw_if_index (encap) and by what its received packets carry (decap).
pub type Tunnels = TunnelSet<Tunnel>;

impl Tunnels {
    /// The tunnel that receives packets from `src` to `dst` with `vni`.
    #[inline(always)]
    pub fn decap(&self, src: u128, dst: u128, vni: u32, v6: bool) -> Option<u32> {
        self.decap_sw(&(src, dst, vni, v6))
    }
    /// The tunnel with the same endpoints and VNI, if any (one may exist per triple).
    pub fn find(&self, src: IpAddr, dst: IpAddr, vni: u32) -> Option<&Tunnel> {
        let (s, v6) = addr_bits(src);
        self.find_key(&(addr_bits(dst).0, s, vni, v6))
    }
}

/// The shared table, as kept in [`FeatureTables`]: the control service edits a copy and
/// publishes it; the nodes snapshot it.
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
        ENCAPSULATED => "vxlan packets encapsulated",
        TOO_BIG => "vxlan encap: outer over the uplink's MTU, ICMP too-big sent toward the source",
        DOWN => "vxlan encap: tunnel interface is down (dropped)",
        NO_TUNNEL => "vxlan encap: interface is not a tunnel (dropped)",
        NO_HEADROOM => "vxlan encap: no headroom for the outer headers (dropped)",
        LOOP => "vxlan encap: tunnel loops into itself (dropped)",
        NESTED_OFFLOAD => "vxlan encap: offload already through another tunnel (dropped)",
        CHAINED => "vxlan encap: chained buffer over IPv6 without checksum offload (dropped)",
    }
}

/// vxlan4-encap / vxlan6-encap: the packet starts at the inner frame (L2 mode) or the inner IP
/// header (L3 mode); `tx_sw_if_index` is the tunnel.
pub struct VxlanEncap {
    name: &'static str,
    table: Arc<Table>,
    snap: Snapshot<Tunnels>,
}

impl VxlanEncap {
    pub fn new(name: &'static str, table: Arc<Table>) -> Self {
        Self {
            name,
            snap: table.snapshot(),
            table,
        }
    }
}

/// Hash of the inner flow for the UDP source port: the inner IP header's addresses and ports.
#[inline(always)]
fn inner_hash(d: &[u8], l3: bool) -> u32 {
    let ip = if l3 { d } else { d.get(wire::ETH_HDR..).unwrap_or(&[]) };
    match ip.first().map(|b| b >> 4) {
        Some(4) => super::ip4::flow_hash4(ip),
        Some(6) => super::ip6::flow_hash6(ip),
        _ => 0,
    }
}

/// Outer IPv4 + UDP + VXLAN of a tunnel with an IPv4 outer header.
const OUTER4: usize = wire::IP4_HDR + 8 + VXLAN_HDR;

/// Outer IPv6 + UDP + VXLAN of a tunnel with an IPv6 outer header.
const OUTER6: usize = wire::IP6_HDR + 8 + VXLAN_HDR;

/// A tunnel as its packets are encapsulated: for an IPv4 outer header, the outer IPv4, UDP
/// and VXLAN headers with the per-packet fields (IP total length and checksum, UDP source port
/// and length) zero, and the one's-complement sum of the rest of the IP header; for an IPv6
/// one, the outer IPv6, UDP and VXLAN headers with the per-packet fields (payload length, UDP
/// source port, length and checksum) zero, and the sum of what the UDP checksum covers of the
/// rest (pseudo-header addresses and next header, destination port, VXLAN header).
struct Prepared<'t> {
    t: &'t Tunnel,
    hdr4: [u8; OUTER4],
    sum4: u64,
    hdr6: [u8; OUTER6],
    sum6: u64,
    /// IPv4 outer (else IPv6): which headers [`straight`] writes.
    v4: bool,
}

fn prepare(t: &Tunnel) -> EncapTarget<Prepared<'_>> {
    let mut hdr4 = [0u8; OUTER4];
    let mut hdr6 = [0u8; OUTER6];
    let mut sum6 = 0;
    match (t.src, t.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let (ip, rest) = hdr4.split_at_mut(wire::IP4_HDR);
            if let Some(mut h) = Ip4HdrMut::new(ip) {
                h.init(s.into(), d.into(), wire::IP_PROTO_UDP, OUTER_TTL, 0);
            }
            ip[10..12].fill(0);
            udp_vxlan_template(rest, t);
        }
        (s, d) => {
            let (s, d) = (addr_bits(s).0, addr_bits(d).0);
            let (ip, rest) = hdr6.split_at_mut(wire::IP6_HDR);
            if let Some(mut h) = Ip6HdrMut::new(ip) {
                h.init(s, d, wire::IP_PROTO_UDP, OUTER_TTL, 0);
            }
            udp_vxlan_template(rest, t);
            sum6 = wire::ones_sum(rest, wire::ip6_pseudo_sum(s, d, 0, wire::IP_PROTO_UDP));
        }
    }
    EncapTarget {
        prepared: Prepared {
            t,
            sum4: wire::ones_sum(&hdr4[..wire::IP4_HDR], 0),
            hdr4,
            hdr6,
            sum6,
            v4: matches!((t.src, t.dst), (IpAddr::V4(_), IpAddr::V4(_))),
        },
        encap_fib: t.encap_fib,
        outer_dst: t.dst,
        overhead: if t.dst.is_ipv6() {
            OUTER6 as u16
        } else {
            OUTER4 as u16
        },
        inner_l2: inner_l2(t) as u8,
    }
}

/// The UDP header (destination port only) and the VXLAN header of a tunnel's template.
fn udp_vxlan_template(rest: &mut [u8], t: &Tunnel) {
    rest[2..4].copy_from_slice(&t.dst_port.to_be_bytes());
    if let Some(mut v) = rest.get_mut(8..).and_then(VxlanHdrMut::new) {
        v.init(t.vni);
    }
}

/// Bytes of inner Ethernet header a tunnel's packets carry (L2 mode).
#[inline(always)]
fn inner_l2(t: &Tunnel) -> usize {
    if t.l3 {
        0
    } else {
        wire::ETH_HDR
    }
}

/// The common packet onto a tunnel whose uplink has an Ethernet header and fits it: one
/// buffer, no offload. The uplink's header and the outer ones (of either family) are written
/// in one window, as [`encap_one`] and [`Uplink::finish`] would write them. None, changing
/// nothing: anything else.
#[inline(always)]
fn straight(b: &mut Buf<'_>, p: &Prepared<'_>, up: &Uplink) -> Option<u16> {
    const L2: usize = wire::ETH_HDR;
    if p.v4 {
        // IPv4 VXLAN goes with a zero UDP checksum (RFC 7348 §5; Linux's default).
        straight_with::<{ L2 + OUTER4 }, OUTER4>(b, p, up, |_| 0, |h, sport, udp_len, _| {
            let total = udp_len + wire::IP4_HDR as u16;
            *h = p.hdr4;
            h[2..4].copy_from_slice(&total.to_be_bytes());
            h[10..12].copy_from_slice(&wire::fold(p.sum4 + total as u64).to_be_bytes());
            h[20..22].copy_from_slice(&sport.to_be_bytes());
            h[24..26].copy_from_slice(&udp_len.to_be_bytes());
        })
    } else {
        // IPv6 needs the UDP checksum: the template's sum, the lengths, the source port and
        // the inner packet's bytes.
        let body = |d: &[u8]| wire::ones_sum(d, 0);
        straight_with::<{ L2 + OUTER6 }, OUTER6>(b, p, up, body, |h, sport, udp_len, body| {
            *h = p.hdr6;
            h[4..6].copy_from_slice(&udp_len.to_be_bytes());
            h[40..42].copy_from_slice(&sport.to_be_bytes());
            h[44..46].copy_from_slice(&udp_len.to_be_bytes());
            let sum = p.sum6 + 2 * udp_len as u64 + sport as u64 + body;
            let c = match wire::fold(sum) {
                0 => 0xffff,
                c => c,
            };
            h[46..48].copy_from_slice(&c.to_be_bytes());
        })
    }
}

/// [`straight`] with `OUT` bytes of outer headers, which `outer` writes from the UDP source
/// port, the UDP length and `body`'s sum of the inner packet; the window is `BACK` =
/// Ethernet + `OUT` bytes back.
#[inline(always)]
fn straight_with<const BACK: usize, const OUT: usize>(
    b: &mut Buf<'_>,
    p: &Prepared<'_>,
    up: &Uplink,
    body: impl FnOnce(&[u8]) -> u64,
    outer: impl FnOnce(&mut [u8; OUT], u16, u16, u64),
) -> Option<u16> {
    const L2: usize = wire::ETH_HDR;
    const NOT_PLAIN: u32 =
        flags::TUNNEL_OFFLOAD | flags::GSO | flags::OFFLOAD_L4_CKSUM | flags::NEXT_PRESENT;
    let (m, t) = (&*b.meta, p.t);
    if m.flags & NOT_PLAIN != 0 || m.relookups >= MAX_RELOOKUPS {
        return None;
    }
    let eth = up.eth()?;
    let d = b.data();
    let (sport, sum) = (src_port(inner_hash(d, t.l3)), body(d));
    let udp_len = (8 + VXLAN_HDR) as u16 + b.meta.current_length;
    let w = b.window_mut::<BACK, BACK>()?;
    let (l2, h) = w.split_first_chunk_mut::<L2>()?;
    let h = h.first_chunk_mut::<OUT>()?;
    *l2 = *eth;
    outer(h, sport, udp_len, sum);
    super::tunnel::straight_out(b.meta, up, OUT, t.encap_fib);
    b.meta.flags &= !flags::L2_HDR_VALID;
    Some(encap_next::OUTPUT)
}

/// Prepend the outer headers in place; Ok(next edge) or Err(error code). With `up`, the
/// uplink the packet fits, the common packet is finished on it here.
#[inline(always)]
fn encap_one(b: &mut Buf<'_>, p: &Prepared<'_>, up: Option<&Uplink>) -> Result<u16, u16> {
    if let Some(next) = up.and_then(|up| straight(b, p, up)) {
        return Ok(next);
    }
    let t = p.t;
    let m = &*b.meta;
    // A GSO super-frame or a packet whose L4 checksum is left to the device goes out with the
    // offload still to do: gso-segment does it on the inner packet (and fills the UDP
    // checksum over IPv6 then).
    let offload = super::tunnel::offload_state(m, encap_error::NESTED_OFFLOAD)?;
    if m.flags & flags::NEXT_PRESENT != 0 && !offload && t.dst.is_ipv6() {
        return Err(encap_error::CHAINED);
    }
    if m.relookups >= MAX_RELOOKUPS {
        return Err(encap_error::LOOP);
    }
    let sport = src_port(inner_hash(b.data(), t.l3));
    let inner_len = b.total_len();
    let udp_len = (8 + VXLAN_HDR + inner_len) as u16;
    let next = match (t.src, t.dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => {
            if !b.retreat(OUTER4) {
                return Err(encap_error::NO_HEADROOM);
            }
            let Some(h) = b.data_mut().first_chunk_mut::<OUTER4>() else {
                return Err(encap_error::NO_HEADROOM);
            };
            // IPv4 VXLAN goes with a zero UDP checksum (RFC 7348 §5; Linux's default).
            *h = p.hdr4;
            let total = udp_len + wire::IP4_HDR as u16;
            h[2..4].copy_from_slice(&total.to_be_bytes());
            h[10..12].copy_from_slice(&wire::fold(p.sum4 + total as u64).to_be_bytes());
            h[20..22].copy_from_slice(&sport.to_be_bytes());
            h[24..26].copy_from_slice(&udp_len.to_be_bytes());
            if offload {
                super::tunnel::hand_on_offload(b.meta, OUTER4 + inner_l2(t));
            }
            encap_next::IP4_LOOKUP
        }
        _ => {
            let hdrs = wire::IP6_HDR + 8 + VXLAN_HDR;
            if !b.retreat(hdrs) {
                return Err(encap_error::NO_HEADROOM);
            }
            let d = b.data_mut();
            let (ip, rest) = d.split_at_mut(wire::IP6_HDR);
            let (udp, rest) = rest.split_at_mut(8);
            if let Some(mut v) = VxlanHdrMut::new(rest) {
                v.init(t.vni);
            }
            udp[0..2].copy_from_slice(&sport.to_be_bytes());
            udp[2..4].copy_from_slice(&t.dst_port.to_be_bytes());
            udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
            udp[6..8].fill(0);
            let (s, _) = addr_bits(t.src);
            let (dst, _) = addr_bits(t.dst);
            if let Some(mut h) = Ip6HdrMut::new(ip) {
                h.init(s, dst, wire::IP_PROTO_UDP, OUTER_TTL, udp_len);
            }
            // IPv6 needs the UDP checksum (RFC 6935's zero-checksum exception is not what a
            // Linux peer accepts by default).
            if offload {
                super::tunnel::hand_on_offload(b.meta, hdrs + inner_l2(t));
            } else {
                let sum = wire::ip6_pseudo_sum(s, dst, udp_len as u32, wire::IP_PROTO_UDP);
                let tail = &mut d[wire::IP6_HDR..];
                let c = wire::fold(wire::ones_sum(tail, sum));
                let c = if c == 0 { 0xffff } else { c };
                tail[6..8].copy_from_slice(&c.to_be_bytes());
            }
            encap_next::IP6_LOOKUP
        }
    };
    super::tunnel::outer_packet(b.meta, t.encap_fib);
    b.meta.flags &= !flags::L2_HDR_VALID;
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

impl Node for VxlanEncap {
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

    fn trace(&self, b: &Buf<'_>) -> String {
        // The outer IP header: the uplink's L2 header may be in front of it already.
        let l2 = (b.meta.l3_hdr_offset - b.meta.current_data).max(0) as usize;
        let d = b.data().get(l2..).unwrap_or(&[]);
        let hl = match d.first().map(|v| v >> 4) {
            Some(4) => wire::IP4_HDR,
            _ => wire::IP6_HDR,
        };
        match d.get(hl + 8..).and_then(VxlanHdr::new) {
            Some(v) => format!(
                "vxlan encap vni {:?} to fib {}",
                v.vni(),
                b.meta.fib_index
            ),
            None => "vxlan encap (dropped)".into(),
        }
    }
}

crate::next_edges! {
    mod input_next {
        DROP => "error-drop",
        ETHERNET => "ethernet-input",
        IP4 => "ip4-input",
        IP6 => "ip6-input",
        IP4_LOOKUP => "ip4-lookup",
        IP6_LOOKUP => "ip6-lookup",
    }
}

crate::node_errors! {
    pub mod input_error {
        DECAPSULATED => "vxlan packets decapsulated",
        DOWN => "vxlan: tunnel interface is down (dropped)",
        SHORT => "vxlan: truncated outer headers (dropped)",
        BAD_FLAGS => "vxlan: header without a valid VNI (dropped)",
        NO_TUNNEL => "vxlan: no tunnel for source, destination and VNI (dropped)",
        BAD_INNER => "vxlan: inner packet is not Ethernet/IP (dropped)",
        BAD_CHECKSUM => "vxlan: bad or zero UDP checksum over IPv6 (dropped)",
        EXT_HDR => "vxlan: IPv6 extension headers before UDP not supported (dropped)",
        CHAINED_CHECKSUM => "vxlan: UDP checksum to verify over a chained IPv6 packet (dropped)",
    }
}

/// vxlan4-input / vxlan6-input: the packet starts at the outer IP header, UDP to the VXLAN
/// port.
pub struct VxlanInput {
    v6: bool,
    table: Arc<Table>,
    snap: Snapshot<Tunnels>,
}

impl VxlanInput {
    pub fn new(v6: bool, table: Arc<Table>) -> Self {
        Self {
            v6,
            snap: table.snapshot(),
            table,
        }
    }
}

/// Outer IPv6 header: Ok((src, dst, UDP offset, end of packet)), the UDP checksum verified.
/// `d` is the first buffer's bytes, `total` the chain's: a super-frame a Linux peer's
/// vxlan device sent through a veth arrives whole, in several buffers.
#[inline(always)]
fn outer6(d: &[u8], total: usize, partial: bool) -> Result<(u128, u128, usize, usize), u16> {
    let h = Ip6Hdr::new(d).ok_or(input_error::SHORT)?;
    if h.next_header() != wire::IP_PROTO_UDP {
        return Err(input_error::EXT_HDR);
    }
    let tl = wire::IP6_HDR + h.payload_len() as usize;
    if tl > total || tl < wire::IP6_HDR + 8 {
        return Err(input_error::SHORT);
    }
    // A checksum a local sender left to offload (the uplink's driver says so) is not
    // checked: it was never on a wire.
    if partial {
        return Ok((h.src(), h.dst(), wire::IP6_HDR, tl));
    }
    let udp = d
        .get(wire::IP6_HDR..tl)
        .ok_or(input_error::CHAINED_CHECKSUM)?;
    if udp[6..8] == [0, 0] {
        return Err(input_error::BAD_CHECKSUM);
    }
    let sum = wire::ip6_pseudo_sum(h.src(), h.dst(), udp.len() as u32, wire::IP_PROTO_UDP);
    if wire::fold(wire::ones_sum(udp, sum)) != 0 {
        return Err(input_error::BAD_CHECKSUM);
    }
    Ok((h.src(), h.dst(), wire::IP6_HDR, tl))
}

/// Where [`plain4`]'s inner header starts.
const PLAIN_IN: usize = wire::IP4_HDR + 8 + VXLAN_HDR;

/// What follows a plain VXLAN header in a `len`-byte packet whose bare inner IPv6 header
/// would end `AT6` bytes in (one after Ethernet: IPv4 `END4`, IPv6 `END6`): a plain IPv4 or
/// IPv6 packet (L3 mode), else an untagged Ethernet header and one (L2 mode):
/// Some((inner is IPv6, L2 mode)).
#[inline(always)]
fn plain_payload<const AT6: usize, const END4: usize, const END6: usize>(
    b: &Buf<'_>,
    first: &[u8; wire::IP4_HDR],
    len: usize,
) -> Option<(bool, bool)> {
    use super::tunnel::{plain_inner, plain_inner_eth};
    let inner = len - (AT6 - wire::IP6_HDR);
    match plain_inner::<AT6>(b, first, inner) {
        Some(v6) => Some((v6, false)),
        None => plain_inner_eth::<END4, END6>(b, inner.checked_sub(wire::ETH_HDR)?)
            .map(|v6| (v6, true)),
    }
}

/// Outer IPv4 + UDP + VXLAN with a valid VNI, then a plain IPv4 or IPv6 packet, bare (L3
/// mode) or after an untagged Ethernet header (L2 mode), keyed by the outer addresses, the
/// VNI and the inner version; with the key, whether it is L2 mode's.
#[inline(always)]
fn plain4(b: &Buf<'_>) -> Option<(super::tunnel::PlainKey, bool)> {
    let h = b.head::<{ PLAIN_IN + wire::IP4_HDR }>()?;
    let len = b.meta.current_length as usize;
    let (o, first) = h.split_first_chunk::<PLAIN_IN>()?;
    let first = first.first_chunk()?;
    let (inner6, l2) = plain_payload::<
        { PLAIN_IN + wire::IP6_HDR },
        { PLAIN_IN + wire::ETH_HDR + wire::IP4_HDR },
        { PLAIN_IN + wire::ETH_HDR + wire::IP6_HDR },
    >(b, first, len)?;
    let plain = o[0] == 0x45
        && o[9] == wire::IP_PROTO_UDP
        && u16::from_be_bytes([o[2], o[3]]) as usize == len
        && o[28] & crate::wire::tunnel::VXLAN_FLAG_VNI != 0;
    // The addresses, the VNI with its reserved byte (a packet whose reserved byte differs
    // only goes the whole way), and the inner version.
    let addrs = [o[12], o[13], o[14], o[15], o[16], o[17], o[18], o[19]];
    let vni = u32::from_ne_bytes([o[32], o[33], o[34], o[35]]);
    let key = u64::from_ne_bytes(addrs) as u128 | (vni as u128) << 64;
    let version: u128 = if inner6 { 6 } else { 4 };
    plain.then_some((key | version << 96, l2))
}

/// Where [`plain6`]'s inner header starts.
const PLAIN_IN6: usize = wire::IP6_HDR + 8 + VXLAN_HDR;

/// As [`plain4`] over IPv6, with the UDP checksum IPv6 requires present and good (what
/// [`outer6`] checks), keyed by the outer addresses, the VNI and the inner family.
#[inline(always)]
fn plain6(b: &Buf<'_>) -> Option<(super::tunnel::PlainKey6, bool)> {
    let h = b.head::<{ PLAIN_IN6 + wire::IP4_HDR }>()?;
    let len = b.meta.current_length as usize;
    let (o, first) = h.split_first_chunk::<PLAIN_IN6>()?;
    let first = first.first_chunk()?;
    let (inner6, l2) = plain_payload::<
        { PLAIN_IN6 + wire::IP6_HDR },
        { PLAIN_IN6 + wire::ETH_HDR + wire::IP4_HDR },
        { PLAIN_IN6 + wire::ETH_HDR + wire::IP6_HDR },
    >(b, first, len)?;
    let (outer, udp) = o.split_first_chunk::<{ wire::IP6_HDR }>()?;
    if udp[8] & crate::wire::tunnel::VXLAN_FLAG_VNI == 0 || udp[6..8] == [0, 0] {
        return None;
    }
    let addrs = super::tunnel::plain_outer6(outer, wire::IP_PROTO_UDP, len)?;
    let (src, dst) = (Ip6Hdr(outer).src(), Ip6Hdr(outer).dst());
    let sum = wire::ip6_pseudo_sum(src, dst, (len - wire::IP6_HDR) as u32, wire::IP_PROTO_UDP);
    let dgram = b.data().get(wire::IP6_HDR..)?;
    if wire::fold(wire::ones_sum(dgram, sum)) != 0 {
        return None;
    }
    let vni = u32::from_ne_bytes([udp[12], udp[13], udp[14], udp[15]]);
    Some(((addrs, vni, inner6), l2))
}

#[inline(always)]
fn decap(
    b: &mut Buf<'_>,
    tunnels: &Tunnels,
    v6: bool,
    last: &mut LastKey<(u128, u128, u32), (u32, bool)>,
) -> Result<u16, u16> {
    let total = b.total_len();
    let d = b.data();
    let (src, dst, hl, tl) = if v6 {
        outer6(d, total, b.meta.flags & flags::OFFLOAD_L4_CKSUM != 0)?
    } else {
        let h = Ip4Hdr::new(d).ok_or(input_error::SHORT)?;
        let tl = (h.total_len() as usize).min(d.len());
        (h.src() as u128, h.dst() as u128, h.header_len(), tl)
    };
    // The end in this buffer (the rest of a chained packet is in the next ones).
    let end = tl.min(d.len());
    let vx = d
        .get(hl + 8..end)
        .and_then(VxlanHdr::new)
        .ok_or(input_error::SHORT)?;
    let vni = vx.vni().ok_or(input_error::BAD_FLAGS)?;
    let (sw, l3) = last
        .get((src, dst, vni), |&(s, d, vni)| {
            let sw = tunnels.decap(s, d, vni, v6)?;
            Some((sw, tunnels.get(sw).is_some_and(|t| t.l3)))
        })
        .ok_or(input_error::NO_TUNNEL)?;
    let off = hl + 8 + VXLAN_HDR;
    let inner = d.get(off..end).ok_or(input_error::SHORT)?;
    let next = if l3 {
        match inner.first().map(|v| v >> 4) {
            Some(4) => input_next::IP4,
            Some(6) => input_next::IP6,
            _ => return Err(input_error::BAD_INNER),
        }
    } else {
        if inner.len() < wire::ETH_HDR {
            return Err(input_error::BAD_INNER);
        }
        input_next::ETHERNET
    };
    if tl < d.len() {
        b.set_len(tl);
    }
    b.advance(off);
    super::tunnel::inner_checksum_offload(b, if l3 { 0 } else { wire::ETH_HDR });
    super::tunnel::inner_packet(b.meta, sw);
    Ok(next)
}

const DECAP_CODES: super::tunnel::DecapCodes = super::tunnel::DecapCodes {
    decapsulated: input_error::DECAPSULATED,
    down: input_error::DOWN,
    drop: input_next::DROP,
    inner_ip4: Some((input_next::IP4, input_next::IP4_LOOKUP)),
    inner_ip6: Some((input_next::IP6, input_next::IP6_LOOKUP)),
    ethernet: Some(input_next::ETHERNET),
};

impl Node for VxlanInput {
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
        let v6 = self.v6;
        let mut last = LastKey::new();
        if v6 {
            super::tunnel::decap_vector_keyed(cx, bufs, nexts, &DECAP_CODES, (PLAIN_IN6, plain6), |b| {
                decap(b, tunnels, true, &mut last)
            });
        } else {
            super::tunnel::decap_vector_keyed(cx, bufs, nexts, &DECAP_CODES, (PLAIN_IN, plain4), |b| {
                decap(b, tunnels, false, &mut last)
            });
        }
    }

    fn trace(&self, b: &Buf<'_>) -> String {
        format!("vxlan decap to sw_if_index {}", b.meta.rx_sw_if_index)
    }
}

/// Add the encap features and the decap node, sharing the tunnel table through `tables`.
pub fn register(b: GraphBuilder, tables: &FeatureTables) -> GraphBuilder {
    let t = tables.get::<Table>();
    b.feature(ENCAP4, Box::new(VxlanEncap::new(ENCAP4.node, t.clone())))
        .feature(ENCAP6, Box::new(VxlanEncap::new(ENCAP6.node, t.clone())))
        .node(Box::new(VxlanInput::new(false, t.clone())))
        .node(Box::new(VxlanInput::new(true, t)))
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tunnel::VXLAN_PORT;
    use std::net::Ipv4Addr;

    fn tun(sw: u32, vni: u32) -> Tunnel {
        Tunnel {
            sw_if_index: sw,
            instance: 0,
            src: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)),
            dst_port: VXLAN_PORT,
            src_port: VXLAN_PORT,
            vni,
            encap_fib: 0,
            encap_vrf_id: 0,
            l3: false,
            decap_next_index: u32::MAX,
        }
    }

    #[test]
    fn decap_key_is_the_reverse_of_the_tunnel() {
        let mut t = Tunnels::default();
        t.insert(tun(3, 4096));
        let (s, d) = (0xc612_0002u128, 0xc612_0001u128);
        assert_eq!(t.decap(s, d, 4096, false), Some(3));
        assert_eq!(t.decap(d, s, 4096, false), None);
        assert_eq!(t.decap(s, d, 4097, false), None);
        t.insert(Tunnel { vni: 7, ..tun(3, 0) });
        assert_eq!(t.decap(s, d, 4096, false), None, "replaced");
        assert_eq!(t.remove(3).map(|x| x.vni), Some(7));
        assert_eq!(t.decap(s, d, 7, false), None);
        assert!(t.get(3).is_none());
    }

    #[test]
    fn source_ports_stay_in_the_dynamic_range() {
        for h in [0u32, 1, 0xffff_ffff, 0x1234_5678, 0xdead_beef] {
            assert!(src_port(h) >= 49152);
        }
        assert_ne!(src_port(1), src_port(2));
    }
}
