//! What the tunnel nodes (vxlan, ipip) share: the encap loop that finds each packet's tunnel
//! by its tx interface and the outer packet's metadata; the decap loop and the inner packet's.

use crate::buffer::{flags, Buf, BufferMeta};
use crate::fib::LEAF_MISS;
use crate::runtime::Ctx;
use crate::tables::{if_flags, AdjKind, WorkerTables};
use crate::wire;
use std::net::IpAddr;

/// Whether a tunnel interface may send: admin up and link up (an IKEv2-protected tunnel keeps
/// its link down until its child SA exists). Both encap loops ask this one question.
#[inline(always)]
fn may_send(flags: u16) -> bool {
    const UP: u16 = if_flags::ADMIN_UP | if_flags::LINK_UP;
    flags & UP == UP
}

/// An encap node's own codes for the outcomes the shared loop decides.
pub(crate) struct EncapCodes {
    pub encapsulated: u16,
    pub down: u16,
    pub no_tunnel: u16,
    pub drop: u16,
}

/// Encapsulate a vector: each packet's tx interface names its tunnel (`tunnel`); a tunnel
/// that is down or an interface that is not one is a counted drop, else `encap` builds the
/// outer headers and says the next edge (or the error to drop with).
#[inline(always)]
pub(crate) fn encap_vector<'t, T: 't>(
    cx: &mut Ctx<'_>,
    bufs: &[u32],
    nexts: &mut [u16],
    codes: &EncapCodes,
    tunnel: impl Fn(u32) -> Option<&'t T>,
    mut encap: impl FnMut(&mut Buf<'_>, &T) -> Result<u16, u16>,
) {
    let errs = cx.errs();
    let ifs = cx.tables.ifs.get();
    let mut done = 0;
    for (&bi, next_out) in bufs.iter().zip(nexts.iter_mut()) {
        let mut b = cx.bufs.get(bi);
        let tx = b.meta.tx_sw_if_index;
        let r = match tunnel(tx) {
            Some(_) if !may_send(ifs.fast(tx).flags) => Err(codes.down),
            Some(t) => encap(&mut b, t),
            None => Err(codes.no_tunnel),
        };
        *next_out = settle(r, b.meta, errs, codes, &mut done);
    }
    errs.count(codes.encapsulated, done);
}

/// Buffers ahead that the tunnel loops prefetch.
const PREFETCH_AHEAD: usize = 8;

/// A tunnel as the stacked encap loop takes it: its kind's per-tunnel work done once per run
/// of its packets (the outer header template), and where its outer packets are looked up.
pub(crate) struct EncapTarget<P> {
    pub prepared: P,
    pub encap_fib: u32,
    pub outer_dst: IpAddr,
    /// Bytes the outer headers add.
    pub overhead: u16,
    /// Bytes of inner L2 header before the inner IP header (VXLAN's L2 mode: 14).
    pub inner_l2: u8,
}

/// The stacked encap loop's codes for a packet whose outer packet would not fit the uplink:
/// the counter of ICMP too-bigs sent, and the edges to ip4-/ip6-icmp-error.
pub(crate) struct TooBigCodes {
    pub sent: u16,
    pub icmp4: u16,
    pub icmp6: u16,
}

/// Once encapsulated, does the packet fit the uplink's MTU? Ok(true) it does; Ok(false) it
/// does not but goes on (IPv4 without DF, which the outer's rewrite counts: rvpp does not
/// fragment); Err(edge) the inner source is told the MTU that fits (IPv4 with DF: frag
/// needed; IPv6: packet too big), as the rewrite tells a sender about a link, and the packet
/// goes along `edge` to the ICMP error node at its inner IP header.
#[inline(always)]
pub(crate) fn fits(
    b: &mut Buf<'_>,
    up: &Uplink,
    overheads: (u16, u8),
    codes: &TooBigCodes,
) -> Result<bool, u16> {
    fits_mtu(b, up.mtu, overheads, codes)
}

/// [`fits`] against an MTU known otherwise (see [`route_mtu`]).
#[inline(always)]
pub(crate) fn fits_mtu(
    b: &mut Buf<'_>,
    mtu: u16,
    (overhead, l2): (u16, u8),
    codes: &TooBigCodes,
) -> Result<bool, u16> {
    let l2 = l2 as usize;
    let m = &*b.meta;
    // The common packet: one buffer, no super-frame.
    let len = if m.flags & (flags::GSO | flags::NEXT_PRESENT) == 0 {
        m.current_length as usize
    } else {
        let Some(ip) = b.data().get(l2..) else {
            return Ok(false);
        };
        match super::gso::segment_len(ip, b.meta) {
            Some(seg) => seg + l2,
            None => b.total_len(),
        }
    };
    if len + overhead as usize <= mtu as usize {
        return Ok(true);
    }
    too_big(
        b,
        (mtu as usize).saturating_sub(overhead as usize + l2),
        l2,
        codes,
    )
}

/// The ICMP too-big of [`fits`], out of line: packets that fit never come here.
#[cold]
#[inline(never)]
fn too_big(b: &mut Buf<'_>, mtu: usize, l2: usize, codes: &TooBigCodes) -> Result<bool, u16> {
    let Some(ip) = b.data().get(l2..) else {
        return Ok(false);
    };
    let edge = match ip.first().map(|v| v >> 4) {
        Some(4) if wire::Ip4Hdr::new(ip).is_some_and(|h| h.dont_frag()) => codes.icmp4,
        Some(6) => codes.icmp6,
        _ => return Ok(false),
    };
    if !b.advance(l2) {
        return Ok(false);
    }
    if edge == codes.icmp4 {
        use super::ip4::icmp;
        super::family::set_icmp_error(b, icmp::DEST_UNREACH, icmp::FRAG_NEEDED, mtu as u32);
    } else {
        use super::ip6::icmp6;
        super::ip6::set_icmp6_error(b, icmp6::PACKET_TOO_BIG, 0, mtu as u32);
    }
    Err(edge)
}

/// The uplink an outer packet takes when the lookup of its destination gives a single-path
/// rewrite with no output features on its interface: the encap node then writes the uplink's
/// L2 header itself and hands the packet to interface-output, with no second lookup and
/// rewrite (VPP stacks a tunnel's midchain adjacency on the uplink's the same way). Resolved
/// at most once per tunnel per vector from the worker's tables, so it follows route and
/// neighbour changes exactly when ip4-/ip6-lookup would.
#[derive(Clone, Copy)]
pub(crate) struct Uplink {
    l2: [u8; 24],
    l2_len: u8,
    mtu: u16,
    sw_if_index: u32,
    adj_index: u32,
}

impl Uplink {
    /// The uplink's Ethernet header, when that is its L2 header: an encap node may then write
    /// it with the outer headers in one go (and [`Uplink::stamp`] the packet).
    #[inline(always)]
    pub(crate) fn eth(&self) -> Option<&[u8; wire::ETH_HDR]> {
        if self.l2_len as usize == wire::ETH_HDR {
            self.l2.first_chunk()
        } else {
            None
        }
    }

    /// The packet, its L2 header written, leaves by the uplink (what [`Uplink::finish`]
    /// records).
    #[inline(always)]
    pub(crate) fn stamp(&self, m: &mut BufferMeta) {
        m.tx_sw_if_index = self.sw_if_index;
        m.adj_index = self.adj_index;
    }

    /// The adjacency the lookup gives the destination.
    #[inline(always)]
    pub(crate) fn adj_index(&self) -> u32 {
        self.adj_index
    }

    /// None: the lookup would do something else (no route, ECMP, a local, glean or
    /// table-lookup adjacency, output features, a scoped or multicast destination); such
    /// packets go through ip4-/ip6-lookup as before.
    pub(crate) fn resolve(tables: &WorkerTables, fib: u32, dst: IpAddr) -> Option<Self> {
        let leaf = route_leaf(tables, fib, dst)?;
        let fwd = tables.fwd.get();
        let lb = fwd.lb(leaf);
        if lb.n_buckets > 1 {
            return None;
        }
        let adj_index = lb.buckets[0];
        let adj = fwd.adj(adj_index);
        let usable = adj.kind == AdjKind::Rewrite
            && adj.out_features == 0
            && adj.is_ip6 == dst.is_ipv6()
            && adj.mtu != 0
            && adj.rewrite_len as usize <= adj.rewrite.len();
        usable.then_some(Self {
            l2: adj.rewrite,
            l2_len: adj.rewrite_len,
            mtu: adj.mtu,
            sw_if_index: adj.sw_if_index,
            adj_index,
        })
    }

    /// Put the uplink's L2 header in front of the outer packet (one buffer, starting at its
    /// IP header) as ip4-/ip6-rewrite would for a packet of ours, which [`fits`] found within
    /// the uplink's MTU. False, changing nothing, without the headroom: the rewrite node
    /// decides that.
    #[inline(always)]
    pub(crate) fn finish(&self, b: &mut Buf<'_>) -> bool {
        let n = self.l2_len as usize;
        if !b.retreat(n) {
            return false;
        }
        let d = b.data_mut();
        if n == wire::ETH_HDR {
            if let (Some(to), Some(from)) = (
                d.first_chunk_mut::<{ wire::ETH_HDR }>(),
                self.l2.first_chunk::<{ wire::ETH_HDR }>(),
            ) {
                *to = *from;
            }
        } else {
            copy_other_l2(d, &self.l2, n);
        }
        self.stamp(b.meta);
        true
    }
}

/// The leaf ip4-/ip6-lookup finds for `dst` in `fib`, if it is a route's (not a miss, not a
/// scoped or multicast destination, which the lookup handles itself).
#[inline(always)]
fn route_leaf(tables: &WorkerTables, fib: u32, dst: IpAddr) -> Option<u32> {
    use super::family::LookupFamily;
    let fibs = tables.fibs.get();
    let leaf = match dst {
        IpAddr::V4(a) => {
            let a = u32::from(a);
            if <super::family::V4 as LookupFamily>::is_scoped(a) {
                return None;
            }
            fibs.ip4.get(fib as usize)?.as_deref()?.lookup(a)
        }
        IpAddr::V6(a) => {
            let a = u128::from(a);
            if <super::family::V6 as LookupFamily>::is_scoped(a) {
                return None;
            }
            fibs.ip6.get(fib as usize)?.as_deref()?.lookup(a)
        }
    };
    (leaf < LEAF_MISS - 1).then_some(leaf)
}

/// The smallest MTU of the rewrite adjacencies the lookup may send `dst` to in `fib`, for a
/// route that is not one plain [`Uplink`] (ECMP, output features on the uplink) but whose
/// every path is a rewrite of the destination's family: an encap node checks its outer packet
/// against it before writing it, since the rewrite's answer would go to the outer source,
/// ourselves. The smallest, because the path is the outer flow hash's, picked later. None: no
/// route, or a path that is not such a rewrite (glean, local, drop), left to the long path.
#[inline(never)]
pub(crate) fn route_mtu(tables: &WorkerTables, fib: u32, dst: IpAddr) -> Option<u16> {
    let leaf = route_leaf(tables, fib, dst)?;
    let fwd = tables.fwd.get();
    let lb = fwd.lb(leaf);
    let paths = lb
        .buckets
        .get(..lb.n_buckets as usize)
        .filter(|p| !p.is_empty())?;
    paths.iter().try_fold(u16::MAX, |min, &ai| {
        let adj = fwd.adj(ai);
        let rewrite = adj.kind == AdjKind::Rewrite && adj.is_ip6 == dst.is_ipv6() && adj.mtu != 0;
        rewrite.then_some(min.min(adj.mtu))
    })
}

/// An L2 header of another length than Ethernet's, out of line: in line, the compiler merges
/// it with the Ethernet copy into one call to memcpy of either length.
#[cold]
#[inline(never)]
fn copy_other_l2(d: &mut [u8], l2: &[u8], n: usize) {
    if let (Some(to), Some(from)) = (d.get_mut(..n), l2.get(..n)) {
        to.copy_from_slice(from);
    }
}

/// A run's tunnel as the stacked loop keeps it: the prepared header, the uplink when known,
/// and (overhead, inner L2 bytes) for the MTU check.
type Resolved<P> = (P, Option<Uplink>, (u16, u8));

/// The encap loop of IPIP and VXLAN: as [`encap_vector`], with the tunnel's [`EncapTarget`]
/// and its [`Uplink`] found once per run of packets to the same tunnel. `encap` builds the
/// outer header and returns the lookup edge; when the uplink is known the packet is finished
/// here and goes to `output` (interface-output). `encap` is given the uplink when the packet
/// fits it: it may then write the uplink's header itself and return `output`.
#[inline(always)]
pub(crate) fn encap_stacked_vector<P>(
    cx: &mut Ctx<'_>,
    bufs: &[u32],
    nexts: &mut [u16],
    (codes, output, big): (&EncapCodes, u16, &TooBigCodes),
    target: impl Fn(u32) -> Option<EncapTarget<P>>,
    mut encap: impl FnMut(&mut Buf<'_>, &P, Option<&Uplink>) -> Result<u16, u16>,
) {
    let errs = cx.errs();
    let tables = cx.tables;
    let ifs = tables.ifs.get();
    let mut done = 0;
    // The last tx interface seen and what it gave: (template, uplink) or the drop reason.
    let mut last_sw = u32::MAX;
    let mut last: Result<Resolved<P>, u16> = Err(codes.no_tunnel);
    let mut told = 0;
    let mut view = cx.bufs.view();
    let mut v = view.vector(bufs);
    for (i, next_out) in nexts.iter_mut().enumerate().take(v.len()) {
        v.prefetch_for_prepend(i + PREFETCH_AHEAD);
        let mut b = v.get(i);
        let tx = b.meta.tx_sw_if_index;
        if tx != last_sw {
            last_sw = tx;
            last = match target(tx) {
                Some(_) if !may_send(ifs.fast(tx).flags) => Err(codes.down),
                Some(t) => Ok((
                    t.prepared,
                    Uplink::resolve(tables, t.encap_fib, t.outer_dst),
                    (t.overhead, t.inner_l2),
                )),
                None => Err(codes.no_tunnel),
            };
        }
        // One call of `encap`, so that it is inlined.
        let r = match &last {
            Ok((p, up, sizes)) => {
                let fit = match up {
                    Some(up) => match fits(&mut b, up, *sizes, big) {
                        Ok(fit) => fit,
                        Err(edge) => {
                            told += 1;
                            *next_out = edge;
                            continue;
                        }
                    },
                    None => false,
                };
                let fitted = up.as_ref().filter(|_| fit);
                encap(&mut b, p, fitted).map(|n| match fitted {
                    Some(up) if n != output && up.finish(&mut b) => output,
                    _ => n,
                })
            }
            Err(e) => Err(*e),
        };
        *next_out = settle(r, b.meta, errs, codes, &mut done);
    }
    errs.count(codes.encapsulated, done);
    errs.count(big.sent, told);
}

/// An encap result's next edge: a success counted in `done`, or the drop reason marked.
#[inline(always)]
fn settle(
    r: Result<u16, u16>,
    m: &mut BufferMeta,
    errs: crate::runtime::Errors<'_>,
    codes: &EncapCodes,
    done: &mut u64,
) -> u16 {
    match r {
        Ok(n) => {
            *done += 1;
            n
        }
        Err(e) => {
            m.error = errs.error(e);
            codes.drop
        }
    }
}

/// Whether a packet may be encapsulated as it is: Err(nested) when its offload already goes
/// through another tunnel's headers (gso-segment fixes one outer header, not two).
/// Ok(true) when it carries an offload that [`outer_packet`] must hand on.
#[inline(always)]
pub(crate) fn offload_state(m: &BufferMeta, nested: u16) -> Result<bool, u16> {
    const ANY: u32 = flags::TUNNEL_OFFLOAD | flags::GSO | flags::OFFLOAD_L4_CKSUM;
    // One test for the common packet, which has none of them.
    if m.flags & ANY == 0 {
        return Ok(false);
    }
    if m.flags & flags::TUNNEL_OFFLOAD != 0 {
        return Err(nested);
    }
    Ok(true)
}

/// The offload of an encapsulated packet is its inner packet's, `inner` bytes after the outer
/// IP header now at `current_data` (gso-segment finds it there).
#[inline(always)]
pub(crate) fn hand_on_offload(m: &mut BufferMeta, inner: usize) {
    m.flags |= flags::TUNNEL_OFFLOAD;
    m.tunnel_inner = inner as u16;
}

/// The outer packet starts at `current_data`, is looked up again in `encap_fib`, and counts
/// as ours (no TTL decrement on the way out). It is another flow than the inner packet: the
/// inner one's cnat session is not its own (npol on the uplink would take its verdict there).
#[inline(always)]
pub(crate) fn outer_packet(m: &mut BufferMeta, encap_fib: u32) {
    m.fib_index = encap_fib;
    m.relookups += 1;
    m.flags |= flags::LOCALLY_ORIGINATED;
    m.flags &= !flags::CNAT_SESSION;
    m.l3_hdr_offset = m.current_data;
}

/// A packet an encap node wrote the uplink's Ethernet header and `outer` bytes of outer
/// headers in front of, in one window: its metadata as the long way leaves it
/// ([`outer_packet`], then [`Uplink::finish`]), bound for interface-output.
#[inline(always)]
pub(crate) fn straight_out(m: &mut BufferMeta, up: &Uplink, outer: usize, encap_fib: u32) {
    m.current_data -= outer as i16;
    outer_packet(m, encap_fib);
    m.current_data -= wire::ETH_HDR as i16;
    m.current_length += (wire::ETH_HDR + outer) as u16;
    up.stamp(m);
}

/// A decap node's own codes for the outcomes the shared loop decides.
pub(crate) struct DecapCodes {
    pub decapsulated: u16,
    pub down: u16,
    pub drop: u16,
    /// The node's edges to ip4-input and to ip4-lookup, when it has both: an inner IPv4
    /// packet with a plain header, on a tunnel with IPv4 on and no unicast features, goes
    /// straight to the lookup as ip4-input's fast path would send it.
    pub inner_ip4: Option<(u16, u16)>,
    /// The same for an inner IPv6 packet: the edges to ip6-input and ip6-lookup.
    pub inner_ip6: Option<(u16, u16)>,
    /// The node's edge to ethernet-input, when its inner packets may be Ethernet frames (VXLAN's
    /// L2 mode): an untagged IPv4/IPv6 frame to the tunnel's own MAC, on a tunnel that is not
    /// cross-connected, skips ethernet-input (and then, plain, ip4-/ip6-input too).
    pub ethernet: Option<u16>,
}

/// Decapsulate a vector: `decap` strips the outer headers, names the tunnel interface as the
/// rx interface and says the inner packet's next edge (or the error to drop with). A tunnel
/// that is down is a counted drop; each packet decapsulated counts as received on its tunnel.
#[inline(always)]
pub(crate) fn decap_vector(
    cx: &mut Ctx<'_>,
    bufs: &[u32],
    nexts: &mut [u16],
    codes: &DecapCodes,
    decap: impl FnMut(&mut Buf<'_>) -> Result<u16, u16>,
) {
    decap_vector_keyed::<PlainKey>(cx, bufs, nexts, codes, (0, |_| None), decap)
}

/// A packet [`decap_vector_keyed`] may decapsulate the short way has a key: its plain outer
/// IPv4 header's addresses (and VXLAN's VNI), and what names its inner family (IPIP's
/// protocol, VXLAN's inner version), with its inner IP header at a fixed offset, plain too
/// ([`plain_inner4`], [`plain_inner6`]) and ending where the outer packet and the buffer end.
/// What a node's `decap` does with such a packet is fixed by its key alone.
pub(crate) type PlainKey = u128;

/// The key of an IPv6-outer packet: its addresses as two words each (source, destination),
/// VXLAN's VNI word (0 for IPIP), and whether the inner packet is IPv6.
pub(crate) type PlainKey6 = ([u64; 4], u32, bool);

/// Is `o` a plain outer IPv6 header for [`decap_vector_keyed`]: next header `proto` right
/// after it (no extension header), the payload ending where the buffer's `len` bytes end.
/// Its hop limit and addresses ip6-input checked. Some(its addresses, as [`PlainKey6`]).
#[inline(always)]
pub(crate) fn plain_outer6(o: &[u8; wire::IP6_HDR], proto: u8, len: usize) -> Option<[u64; 4]> {
    let word = |i: usize| {
        u64::from_ne_bytes([
            o[i],
            o[i + 1],
            o[i + 2],
            o[i + 3],
            o[i + 4],
            o[i + 5],
            o[i + 6],
            o[i + 7],
        ])
    };
    let plain = o[0] >> 4 == 6
        && o[6] == proto
        && wire::IP6_HDR + u16::from_be_bytes([o[4], o[5]]) as usize == len;
    plain.then(|| [word(8), word(16), word(24), word(32)])
}

/// Is `h` a plain inner IPv4 header of a packet ending `len` bytes after it: what ip4-input's
/// fast path (`plain_header_ok`) accepts without trimming.
#[inline(always)]
pub(crate) fn plain_inner4(h: &[u8; wire::IP4_HDR], len: usize) -> bool {
    h[0] == 0x45
        && h[8] != 0
        && u16::from_be_bytes([h[2], h[3]]) as usize == len
        && wire::ip4_header20_ok(h)
}

/// Is `h` a plain inner IPv6 header of a packet ending `len` bytes after it: what ip6-input's
/// fast path accepts without trimming (version 6, no hop-by-hop header, hop limit non-zero,
/// a source that is not multicast, neither address loopback).
#[inline(always)]
pub(crate) fn plain_inner6(h: &[u8; wire::IP6_HDR], len: usize) -> bool {
    let h = wire::Ip6Hdr(h);
    h.0[0] >> 4 == 6
        && h.next_header() != super::ip6::ext::HOP_BY_HOP
        && h.hop_limit() != 0
        && wire::IP6_HDR + h.payload_len() as usize == len
        && super::ip6::addresses_ok(&h)
}

/// Is the inner IP packet whose first 20 bytes are `first`, `len` bytes long, plain
/// ([`plain_inner4`] or [`plain_inner6`] by its version; an IPv6 header is read from `b` as
/// its first `AT6` bytes): Some(whether it is IPv6).
#[inline(always)]
pub(crate) fn plain_inner<const AT6: usize>(
    b: &Buf<'_>,
    first: &[u8; wire::IP4_HDR],
    len: usize,
) -> Option<bool> {
    match first[0] >> 4 {
        4 if plain_inner4(first, len) => Some(false),
        6 if plain_inner6(b.head::<AT6>()?.last_chunk()?, len) => Some(true),
        _ => None,
    }
}

/// As [`plain_inner`] after an untagged Ethernet header (VXLAN's L2 mode): the ethertype
/// names the family, the inner IPv4 header's 20 bytes end `END4` bytes into `b`, an IPv6
/// one's 40 bytes `END6`, and the IP packet is `len` bytes long. Some(whether it is IPv6).
#[inline(always)]
pub(crate) fn plain_inner_eth<const END4: usize, const END6: usize>(
    b: &Buf<'_>,
    len: usize,
) -> Option<bool> {
    let h = b.head::<END4>()?;
    let (front, ip) = h.split_last_chunk::<{ wire::IP4_HDR }>()?;
    let (_, et) = front.split_last_chunk::<2>()?;
    match u16::from_be_bytes(*et) {
        wire::ETHERTYPE_IP4 if plain_inner4(ip, len) => Some(false),
        wire::ETHERTYPE_IP6 if plain_inner6(b.head::<END6>()?.last_chunk()?, len) => Some(true),
        _ => None,
    }
}

/// The tunnel's facts for the short way to an inner family's lookup: its FIB of that family,
/// when the family is on and the tunnel has no unicast features on it.
#[inline(always)]
fn plain_fib<F: super::family::InputFamily>(f: &crate::tables::IfFast) -> Option<u32> {
    (f.flags & F::ENABLED != 0 && F::unicast_features(f) == 0).then_some(F::fib_of(f))
}

/// As [`decap_vector`], with `plain` naming the packets whose outcome their key decides:
/// once a key's packet went the whole way (`decap`, an up tunnel with the inner family on and
/// no unicast features, the inner header plain) to ip4-/ip6-lookup, the vector's next packets
/// with that key go there with only their metadata changed, as `decap` and ip4-/ip6-input's
/// fast path would. The key is the outer family's ([`PlainKey`] over IPv4, [`PlainKey6`]
/// over IPv6) and includes the inner family; `inner` is where the inner header starts. With
/// the key, `plain` says whether an untagged Ethernet header comes first (VXLAN's L2 mode, the
/// inner IP header [`ETH_HDR`](wire::ETH_HDR) bytes later): such a key's next packets take the
/// short way when their destination MAC is the tunnel's, as ethernet-input's would.
#[inline(always)]
pub(crate) fn decap_vector_keyed<K: Copy + PartialEq>(
    cx: &mut Ctx<'_>,
    bufs: &[u32],
    nexts: &mut [u16],
    codes: &DecapCodes,
    (inner, plain): (usize, impl Fn(&Buf<'_>) -> Option<(K, bool)>),
    mut decap: impl FnMut(&mut Buf<'_>) -> Result<u16, u16>,
) {
    let errs = cx.errs();
    let ifs = cx.tables.ifs.get();
    let mut done = 0;
    let mut last = LastTunnel {
        sw: u32::MAX,
        up: false,
        fib4: None,
        fib6: None,
        mac: None,
    };
    let mut known: Option<Known<K>> = None;
    let mut rx = RxRun::default();
    let mut view = cx.bufs.view();
    let mut v = view.vector(bufs);
    for (i, next_out) in nexts.iter_mut().enumerate().take(v.len()) {
        v.prefetch(i + PREFETCH_AHEAD);
        let mut b = v.get(i);
        // Chained packets and checksum offloads are decap's to decide.
        let key = match b.meta.flags & (flags::NEXT_PRESENT | flags::OFFLOAD_L4_CKSUM) {
            0 => plain(&b),
            _ => None,
        };
        // Matched by reference: the known key stays where it is, not copied per packet.
        if let (Some(k), Some(kn)) = (key.as_ref(), known.as_ref()) {
            if *k == kn.key && b.advance(inner) {
                let bytes = b.meta.current_length as u64;
                // The key proved an untagged IP ethertype and the inner header after it.
                if !k.1 || super::ethernet::unicast_ip_to(&mut b, kn.mac).is_some() {
                    let m = &mut *b.meta;
                    inner_packet(m, kn.sw);
                    if k.1 {
                        m.flags |= flags::L2_HDR_VALID;
                    }
                    m.fib_index = kn.fib;
                    m.l3_hdr_offset = m.current_data;
                    done += 1;
                    rx.add(cx.stats, kn.sw, bytes);
                    *next_out = kn.lookup;
                    continue;
                }
                // Another MAC: the whole way, from the outer header again.
                b.retreat(inner);
            }
        }
        // Out of line: it runs about once a tunnel a vector, and inlined its state
        // crowded the short way's registers.
        let (next, got) = whole_way(
            &mut b, key, codes, ifs, &errs, &mut last, &mut known, &mut decap,
        );
        if let Some((sw, bytes)) = got {
            done += 1;
            rx.add(cx.stats, sw, bytes);
        }
        *next_out = next;
    }
    rx.flush(cx.stats);
    errs.count(codes.decapsulated, done);
}

/// The last tunnel [`whole_way`] decapsulated to: up, its IPv4 and IPv6 FIBs when ip4-/
/// ip6-input would pass its packets straight to the lookup, and its MAC when ethernet-input
/// would pass a frame to it straight to ip4-/ip6-input.
struct LastTunnel {
    sw: u32,
    up: bool,
    fib4: Option<u32>,
    fib6: Option<u32>,
    mac: Option<u64>,
}

/// [`decap_vector_keyed`]'s whole way for one packet: `decap`, then what ip4-/ip6-input (and
/// for an L2 frame ethernet-input) would do when the inner packet can go straight to the
/// lookup, learning `key` when it did. The next edge, and the tunnel and bytes to count as
/// received when decapsulated.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn whole_way<K: Copy>(
    b: &mut Buf<'_>,
    key: Option<(K, bool)>,
    codes: &DecapCodes,
    ifs: &crate::tables::IfTable,
    errs: &crate::runtime::Errors<'_>,
    last: &mut LastTunnel,
    known: &mut Option<Known<K>>,
    decap: &mut impl FnMut(&mut Buf<'_>) -> Result<u16, u16>,
) -> (u16, Option<(u32, u64)>) {
    use super::family::{InputFamily, V4, V6};
    let r = decap(b);
    let sw = b.meta.rx_sw_if_index;
    if r.is_ok() && sw != last.sw {
        last.sw = sw;
        let f = ifs.fast(sw);
        last.up = f.flags & if_flags::ADMIN_UP != 0;
        last.fib4 = codes.inner_ip4.and(plain_fib::<V4>(&f));
        last.fib6 = codes.inner_ip6.and(plain_fib::<V6>(&f));
        last.mac = codes.ethernet.and(super::ethernet::unicast_mac(&f));
    }
    let (mac, fib4, fib6) = (last.mac, last.fib4, last.fib6);
    match r {
        Ok(_) if !last.up => {
            b.meta.error = errs.error(codes.down);
            (codes.drop, None)
        }
        Ok(n) => {
            let got = Some((sw, b.meta.chain_len()));
            // An Ethernet frame to the tunnel's MAC: what ethernet-input would do, here.
            let eth = codes.ethernet == Some(n);
            let n = match (mac, codes.inner_ip4, codes.inner_ip6) {
                (Some(mac), Some((ip4, _)), Some((ip6, _))) if eth => {
                    match super::ethernet::unicast_ip_to(b, mac) {
                        Some(true) => ip6,
                        Some(false) => ip4,
                        None => n,
                    }
                }
                _ => n,
            };
            let straight = match (codes.inner_ip4, fib4, codes.inner_ip6, fib6) {
                (Some((input, lookup)), Some(fib), _, _)
                    if n == input && V4::plain_header_ok(b) =>
                {
                    Some((fib, lookup))
                }
                (_, _, Some((input, lookup)), Some(fib))
                    if n == input && V6::plain_header_ok(b) =>
                {
                    Some((fib, lookup))
                }
                _ => None,
            };
            let next = match straight {
                Some((fib, lookup)) => {
                    let m = &mut *b.meta;
                    m.fib_index = fib;
                    m.l3_hdr_offset = m.current_data;
                    // A key learns only from its own framing (an L2 tunnel's frame
                    // whose bytes also read as bare IP does not).
                    if let Some(k) = key.filter(|k| k.1 == eth) {
                        let mac = mac.unwrap_or(0);
                        *known = Some(Known {
                            key: k,
                            sw,
                            fib,
                            lookup,
                            mac,
                        });
                    }
                    lookup
                }
                None => n,
            };
            (next, got)
        }
        Err(e) => {
            b.meta.error = errs.error(e);
            (codes.drop, None)
        }
    }
}

/// The last key [`decap_vector_keyed`] saw go the whole way to a lookup, and where its
/// packets go.
#[derive(Clone, Copy)]
struct Known<K> {
    /// The key, and whether an Ethernet header comes first.
    key: (K, bool),
    /// The tunnel, its FIB of the inner family, and that lookup's edge.
    sw: u32,
    fib: u32,
    lookup: u16,
    /// The tunnel's MAC (as [`super::ethernet::unicast_mac`] gives it), for L2 keys.
    mac: u64,
}

/// Packets and bytes received on one tunnel interface, counted once per run of them.
#[derive(Default)]
struct RxRun {
    sw: Option<u32>,
    packets: u64,
    bytes: u64,
}

impl RxRun {
    #[inline(always)]
    fn add(&mut self, stats: &crate::runtime::ThreadStats, sw: u32, bytes: u64) {
        if self.sw != Some(sw) {
            self.flush(stats);
            self.sw = Some(sw);
        }
        self.packets += 1;
        self.bytes += bytes;
    }

    fn flush(&mut self, stats: &crate::runtime::ThreadStats) {
        if let Some(c) = self.sw.and_then(|sw| stats.ifs.get(sw as usize)) {
            c.rx_packets.add(self.packets);
            c.rx_bytes.add(self.bytes);
        }
        (self.packets, self.bytes) = (0, 0);
    }
}

/// A decapsulated packet that came in with a checksum left to finish (a local sender's, told
/// by the uplink's driver without saying whose header it is): the mark stays only when the
/// inner packet (at the start of `b`, after `l2` bytes of Ethernet) is TCP or UDP, whose
/// checksum software then computes whole, harmless if it was the outer one that was partial.
/// Anything else (an ICMP inside) drops the mark, which no later node could honour.
#[inline]
pub(crate) fn inner_checksum_offload(b: &mut Buf<'_>, l2: usize) {
    if b.meta.flags & flags::OFFLOAD_L4_CKSUM == 0 {
        return;
    }
    let d = b.data();
    // A fragment's checksum cannot be finished alone (only the first holds the L4 header).
    let proto = match d.get(l2).map(|v| v >> 4) {
        Some(4)
            if d.get(l2 + 6..l2 + 8)
                .is_some_and(|f| f[0] & 0x3f == 0 && f[1] == 0) =>
        {
            d.get(l2 + 9).copied()
        }
        Some(4) => None,
        Some(6) => d.get(l2 + 6).copied(),
        _ => None,
    };
    if !matches!(proto, Some(wire::IP_PROTO_TCP | wire::IP_PROTO_UDP)) {
        b.meta.flags &= !flags::OFFLOAD_L4_CKSUM;
    }
}

/// The inner packet, now at `current_data`, arrives on tunnel interface `sw` as if received
/// there: not ours, no L2 header parsed yet, no lookups or features run on it so far.
#[inline(always)]
pub(crate) fn inner_packet(m: &mut BufferMeta, sw: u32) {
    m.rx_sw_if_index = sw;
    // cnat's marks were the outer packet's.
    m.flags &= !(flags::LOCALLY_ORIGINATED | flags::L2_HDR_VALID | flags::CNAT_MARKS);
    m.relookups = 0;
    m.feature_mask = 0;
}

/// The last decap key a node looked up and what it found: a tunnel's packets come in runs,
/// so most packets cost a compare instead of a hash lookup. Per vector.
pub(crate) struct LastKey<K, V> {
    last: Option<(K, Option<V>)>,
}

impl<K: PartialEq + Copy, V: Copy> LastKey<K, V> {
    pub(crate) fn new() -> Self {
        Self { last: None }
    }

    #[inline(always)]
    pub(crate) fn get(&mut self, key: K, find: impl FnOnce(&K) -> Option<V>) -> Option<V> {
        match self.last {
            Some((k, v)) if k == key => v,
            _ => {
                let v = find(&key);
                self.last = Some((key, v));
                v
            }
        }
    }
}

/// A tunnel kind's entry: its interface, and the key its received packets are matched by.
pub trait TunnelEntry: Clone {
    type Key: std::hash::Hash + Eq + Clone + std::fmt::Debug;
    fn sw_if_index(&self) -> u32;
    fn decap_key(&self) -> Self::Key;
}

/// Every tunnel of one kind, by sw_if_index (encap) and by decap key (decap).
#[derive(Clone, Debug)]
pub struct TunnelSet<T: TunnelEntry> {
    by_sw: Vec<Option<T>>,
    decap: std::collections::HashMap<T::Key, u32, ahash::RandomState>,
}

impl<T: TunnelEntry> Default for TunnelSet<T> {
    fn default() -> Self {
        Self {
            by_sw: Vec::new(),
            decap: Default::default(),
        }
    }
}

impl<T: TunnelEntry> TunnelSet<T> {
    /// The tunnel on interface `sw`.
    #[inline(always)]
    pub fn get(&self, sw: u32) -> Option<&T> {
        self.by_sw.get(sw as usize).and_then(|t| t.as_ref())
    }

    /// The interface of the tunnel whose packets carry `key`.
    #[inline(always)]
    pub fn decap_sw(&self, key: &T::Key) -> Option<u32> {
        if self.decap.is_empty() {
            return None;
        }
        self.decap.get(key).copied()
    }

    /// The tunnel with this decap key, if any (one may exist per key).
    pub fn find_key(&self, key: &T::Key) -> Option<&T> {
        self.decap.get(key).and_then(|&sw| self.get(sw))
    }

    /// Add (or replace) a tunnel.
    pub fn insert(&mut self, t: T) {
        let i = t.sw_if_index() as usize;
        if self.by_sw.len() <= i {
            self.by_sw.resize(i + 1, None);
        }
        if let Some(old) = self.by_sw[i].take() {
            self.decap.remove(&old.decap_key());
        }
        self.decap.insert(t.decap_key(), t.sw_if_index());
        self.by_sw[i] = Some(t);
    }

    /// Remove the tunnel on `sw`.
    pub fn remove(&mut self, sw: u32) -> Option<T> {
        let t = self.by_sw.get_mut(sw as usize)?.take()?;
        self.decap.remove(&t.decap_key());
        Some(t)
    }

    /// Every tunnel, by sw_if_index.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.by_sw.iter().flatten()
    }
}

/// An outer address as decap keys hold it: its bits, and whether it is IPv6.
pub fn addr_bits(a: std::net::IpAddr) -> (u128, bool) {
    match a {
        std::net::IpAddr::V4(v) => (u32::from(v) as u128, false),
        std::net::IpAddr::V6(v) => (u128::from(v), true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::BufferPool;

    /// A decapsulated packet starts afresh: what was known about the outer one (ours, its L2
    /// header parsed, cnat's marks, its lookups and features) does not stick to the inner one.
    #[test]
    fn the_inner_packet_keeps_nothing_of_the_outer_ones_state() {
        let pool = BufferPool::with_backing(64, 2048, false).unwrap();
        let mut bufs = pool.local();
        let bi = bufs.alloc_from_bytes(&[0x45; 64]).unwrap();
        let m = bufs.meta(bi);
        let outer = flags::LOCALLY_ORIGINATED
            | flags::L2_HDR_VALID
            | flags::CNAT_RETURN
            | flags::CNAT_DNAT
            | flags::CNAT_SESSION;
        m.flags |= outer | flags::OFFLOAD_L4_CKSUM;
        (m.relookups, m.feature_mask) = (3, 0xff);
        inner_packet(m, 7);
        assert_eq!(m.flags & outer, 0);
        assert_ne!(
            m.flags & flags::OFFLOAD_L4_CKSUM,
            0,
            "decided by inner_checksum_offload"
        );
        assert_eq!((m.rx_sw_if_index, m.relookups, m.feature_mask), (7, 0, 0));
        bufs.free(&[bi]);
    }

    /// An encapsulated packet is another flow: the inner one's cnat session (which npol on
    /// the way out would read a verdict from) is not its own.
    #[test]
    fn the_outer_packet_does_not_name_the_inner_ones_cnat_session() {
        let pool = BufferPool::with_backing(64, 2048, false).unwrap();
        let mut bufs = pool.local();
        let bi = bufs.alloc_from_bytes(&[0x45; 64]).unwrap();
        let m = bufs.meta(bi);
        m.flags |= flags::CNAT_SESSION | flags::OFFLOAD_L4_CKSUM;
        outer_packet(m, 3);
        assert_eq!(m.flags & flags::CNAT_SESSION, 0);
        assert_ne!(m.flags & flags::LOCALLY_ORIGINATED, 0);
        assert_eq!(m.fib_index, 3);
        bufs.free(&[bi]);
    }
}
