//! `sr-localsid`: packets to one of our SIDs (ip6-lookup found its /128, an
//! `AdjKind::SrLocalsid` adjacency). The SRH is checked as RFC 8754 4.3.1.1 says: a header
//! that overruns the packet or holds no segment is a counted drop; Last Entry beyond the header
//! or Segments Left > Last Entry + 1 is answered with ICMPv6 parameter problem (code 0,
//! pointing at Segments Left). Then the behaviour (RFC 8986):
//! - End / End.X: Segments Left - 1, the next SID becomes the destination (PSP: the SRH is
//!   removed when that was the last); End looks it up again, End.X sends it to its next hop.
//! - End.DT4 / End.DT6 / End.DX4 / End.DX6: Segments Left must be 0 (else parameter problem);
//!   the outer header and SRH go and the inner IPv4/IPv6 packet is looked up in the
//!   localsid's table (DT) or sent to its next hop (DX). A packet without an SRH is decapsulated
//!   as well (Linux and VPP send one-SID encaps so). The inner header gets ip4-/ip6-input's
//!   checks here (the packet goes straight to the lookup or rewrite): a bad one is a counted
//!   drop, a TTL / hop limit of 0 is answered with time exceeded.
//! - End.DT4's and End.DT6's inner packet, when ip4-/ip6-lookup would give it one plain
//!   Ethernet rewrite (the tunnels' [`Uplink`], resolved once per inner destination per
//!   vector), is rewritten here as ip4-/ip6-rewrite's fast path would (TTL / hop limit
//!   decremented, MTU checked) and handed to interface-output, skipping both nodes; anything
//!   else (ECMP, no neighbour, output features, a scoped IPv6 destination, TTL / hop limit 1,
//!   too big) goes to the lookup as before.

use super::{Behavior, Localsid, Srv6, Table};
use crate::buffer::{flags, for_each_prefetched, Buf};
use crate::graph::{Node, NodeInfo};
use crate::nodes::family::{
    rewrite_fast, set_icmp_error, EthRewrite, Family, InputFamily, RewriteFamily, V4, V6,
};
use crate::nodes::tunnel::Uplink;
use crate::rcu::Snapshot;
use crate::runtime::Ctx;
use crate::tables::{AdjKind, FwdTable, WorkerTables, MAX_RELOOKUPS};
use crate::wire::l4::icmp6_type;
use crate::wire::srh::{Srh, SrhError, ROUTING_TYPE_SRH, SEGMENTS_LEFT_OFFSET, SRH_FIXED};
use crate::wire::tunnel::{IP_PROTO_IPIP, IP_PROTO_IPV6, IP_PROTO_ROUTING};
use crate::wire::{Ip6Hdr, IP6_HDR};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

pub const NAME: &str = "sr-localsid";

crate::next_edges! {
    mod next {
        DROP => "error-drop",
        IP6_LOOKUP => "ip6-lookup",
        IP6_REWRITE => "ip6-rewrite",
        IP4_LOOKUP => "ip4-lookup",
        IP4_REWRITE => "ip4-rewrite",
        ICMP_ERROR => "ip6-icmp-error",
        ICMP4_ERROR => "ip4-icmp-error",
        OUTPUT => "interface-output",
    }
}

crate::node_errors! {
    pub mod error {
        PROCESSED => "sr localsid packets processed",
        DECAPSULATED => "sr localsid packets decapsulated",
        NO_LOCALSID => "sr localsid: no such localsid (dropped)",
        NOT_IP6 => "sr localsid: not an IPv6 packet (dropped)",
        TRUNCATED => "sr localsid: SRH or payload length overruns the packet (dropped)",
        NO_SEGMENTS => "sr localsid: SRH holds no segment (dropped)",
        NOT_SRH => "sr localsid: routing header is not an SRH (dropped)",
        BAD_SRH => "sr localsid: bad last entry or segments left (dropped, ICMPv6 parameter problem)",
        SEGMENTS_LEFT => "sr localsid: segments left not 0 at a decap SID (dropped, ICMPv6 parameter problem)",
        NO_SEGMENTS_LEFT => "sr localsid: End with segments left 0 or no SRH (dropped)",
        WRONG_PAYLOAD => "sr localsid: payload does not match the behaviour (dropped)",
        LOOP => "sr localsid: packet looked up too often (dropped)",
        CHAINED => "sr localsid: chained buffers not supported (dropped)",
        INNER_BAD => "sr localsid: inner header fails ip4-/ip6-input's checks (dropped)",
        INNER_EXPIRED => "sr localsid: inner TTL / hop limit 0 (ICMP time exceeded)",
    }
}

/// Buffers ahead that the node prefetches.
const PREFETCH_AHEAD: usize = 4;

pub struct SrLocalsid {
    table: Arc<Table>,
    snap: Snapshot<Srv6>,
}

impl SrLocalsid {
    pub fn new(table: Arc<Table>) -> Self {
        Self {
            snap: table.snapshot(),
            table,
        }
    }
}

/// Ask ip6-icmp-error for a parameter problem pointing at Segments Left.
#[inline(never)]
fn param_problem(b: &mut Buf<'_>) -> u16 {
    set_icmp_error(
        b,
        icmp6_type::PARAM_PROBLEM,
        0,
        (IP6_HDR + SEGMENTS_LEFT_OFFSET) as u32,
    );
    next::ICMP_ERROR
}

/// The localsid an adjacency names, if it is a localsid adjacency whose entry is there.
#[inline(always)]
fn localsid_of<'s>(sr: &'s Srv6, fwd: &FwdTable, adj_index: u32) -> Option<&'s Localsid> {
    let adj = fwd.adj(adj_index);
    sr.localsid(adj.lookup_fib)
        .filter(|_| adj.kind == AdjKind::SrLocalsid)
}

/// The common packet to a decap SID, read in one 48-byte window (the IPv6 header and the
/// SRH's fixed part): version 6, payload within the buffer, and either no SRH or an SRH with
/// Segments Left 0, a Last Entry its length holds, lying within the payload. Link padding
/// trimmed; Some((inner protocol, bytes to strip)), which is what `process_slow` finds for it.
/// None: anything else, which `process_slow` decides.
#[inline(always)]
fn decap_headers(b: &mut Buf<'_>) -> Option<(u8, usize)> {
    let h = b.head::<{ IP6_HDR + SRH_FIXED }>()?;
    let total = IP6_HDR + u16::from_be_bytes([h[4], h[5]]) as usize;
    let len = b.meta.current_length as usize;
    if h[0] >> 4 != 6 || total > len {
        return None;
    }
    let (proto, strip) = if h[6] == IP_PROTO_ROUTING {
        let units = h[IP6_HDR + 1] as usize;
        let strip = IP6_HDR + SRH_FIXED + 8 * units;
        let (sl, last) = (h[IP6_HDR + 3], h[IP6_HDR + 4] as usize);
        if h[IP6_HDR + 2] != ROUTING_TYPE_SRH
            || units == 0
            || sl != 0
            || (last + 1) * 2 > units
            || strip > total
        {
            return None;
        }
        (h[IP6_HDR], strip)
    } else {
        (h[6], IP6_HDR)
    };
    if total < len {
        b.set_len(total);
    }
    Some((proto, strip))
}

/// A decap localsid as its common packet needs it, worked out once per run of its packets.
#[derive(Clone, Copy)]
struct DecapPlan {
    /// The inner packet is IPv4 (DT4, DX4).
    v4: bool,
    /// The protocol the outer header or SRH must name (4 or 41).
    proto: u8,
    next: u16,
    fib: u32,
    /// DX: the next hop's adjacency; DT: the packet's own (the lookup sets it).
    adj: Option<u32>,
}

impl DecapPlan {
    #[inline(always)]
    fn of(ls: &Localsid) -> Option<Self> {
        let (v4, next, adj) = match ls.behavior {
            Behavior::End | Behavior::X => return None,
            Behavior::DT4 => (true, next::IP4_LOOKUP, None),
            Behavior::DT6 => (false, next::IP6_LOOKUP, None),
            Behavior::DX4 => (true, next::IP4_REWRITE, Some(ls.adj)),
            Behavior::DX6 => (false, next::IP6_REWRITE, Some(ls.adj)),
        };
        Some(Self {
            v4,
            proto: if v4 { IP_PROTO_IPIP } else { IP_PROTO_IPV6 },
            next,
            fib: ls.decap_fib,
            adj,
        })
    }
}

/// The common packet to a decap SID, all in line: the outer headers as `decap_headers` takes
/// them, the protocol the behaviour wants, not looped, and an inner header that passes
/// input's plain check. Some(next edge), the packet decapsulated as `decap` would; None,
/// with the packet as it was (but for link padding trimmed): `process_slow`'s to decide.
#[inline(always)]
fn decap_fast(b: &mut Buf<'_>, p: &DecapPlan) -> Option<u16> {
    let (proto, strip) = decap_headers(b)?;
    if proto != p.proto || b.meta.relookups >= MAX_RELOOKUPS || !b.advance(strip) {
        return None;
    }
    let plain = if p.v4 {
        V4::plain_header_ok(b)
    } else {
        V6::plain_header_ok(b)
    };
    if !plain {
        b.retreat(strip);
        return None;
    }
    decapsulated(b, p.fib);
    if let Some(adj) = p.adj {
        b.meta.adj_index = adj;
    }
    Some(p.next)
}

/// The metadata of a packet decapsulated to its inner header (now at `current_data`).
#[inline(always)]
fn decapsulated(b: &mut Buf<'_>, fib: u32) {
    b.meta.flags &= !(flags::LOCALLY_ORIGINATED | flags::CNAT_MARKS);
    crate::nodes::tunnel::inner_checksum_offload(b, 0);
    let m = &mut *b.meta;
    // Kept counting (not reset as a tunnel's decap does): a steering that leads back into
    // its own SID ends as a counted drop, not a packet circling in the graph.
    m.relookups += 1;
    m.feature_mask = 0;
    m.l3_hdr_offset = m.current_data;
    // The inner family's table (DX: the default one, where a time exceeded is routed).
    m.fib_index = fib;
}

/// An inner family End.DT4 / End.DT6 forwards itself: its address as the uplink resolver
/// takes it.
trait InnerFamily: RewriteFamily<Addr: PartialEq> {
    fn ip(a: Self::Addr) -> IpAddr;
}

impl InnerFamily for V4 {
    #[inline(always)]
    fn ip(a: u32) -> IpAddr {
        Ipv4Addr::from(a).into()
    }
}

impl InnerFamily for V6 {
    #[inline(always)]
    fn ip(a: u128) -> IpAddr {
        Ipv6Addr::from(a).into()
    }
}

/// Where the vector's last End.DT4 (V4) or End.DT6 (V6) inner destination goes when the
/// family's lookup would give it one plain Ethernet rewrite: looked up again whenever the
/// (table, destination) changes, from the worker's tables of this vector, so it follows route
/// and neighbour changes exactly when the lookup would.
struct InnerRoute<F: InnerFamily> {
    key: Option<(u32, F::Addr)>,
    rewrite: Option<(EthRewrite, u32)>,
}

impl<F: InnerFamily> Default for InnerRoute<F> {
    fn default() -> Self {
        Self {
            key: None,
            rewrite: None,
        }
    }
}

impl<F: InnerFamily> InnerRoute<F> {
    /// A decapsulated packet leaves as the family's lookup and rewrite fast paths would send
    /// it (TTL / hop limit decremented, MTU checked): true, bound for interface-output; false,
    /// changing nothing, for the lookup.
    #[inline(always)]
    fn forward(&mut self, b: &mut Buf<'_>, tables: &WorkerTables) -> bool {
        let key = (b.meta.fib_index, F::dst(b));
        if self.key != Some(key) {
            self.key = Some(key);
            self.rewrite = plain_rewrite(tables, key.0, F::ip(key.1));
        }
        match &self.rewrite {
            Some((rw, adj)) if rewrite_fast::<F, true>(b, rw) => {
                b.meta.adj_index = *adj;
                true
            }
            _ => false,
        }
    }
}

/// The single-path Ethernet rewrite, with no output features, that the lookup gives `dst` in
/// `fib`, and its adjacency.
#[inline(never)]
fn plain_rewrite(tables: &WorkerTables, fib: u32, dst: IpAddr) -> Option<(EthRewrite, u32)> {
    let up = Uplink::resolve(tables, fib, dst)?;
    let adj = up.adj_index();
    Some((EthRewrite::of(tables.fwd.get().adj(adj))?, adj))
}

/// What to do with a packet: Ok((next edge, decapsulated)), or Err((counter, edge)).
#[inline(always)]
fn process_one(
    b: &mut Buf<'_>,
    ls: Option<&Localsid>,
    plan: Option<&DecapPlan>,
) -> Result<(u16, bool), (u16, u16)> {
    let drop = |e| (e, next::DROP);
    if b.meta.flags & flags::NEXT_PRESENT != 0 {
        return Err(drop(error::CHAINED));
    }
    if let Some(n) = plan.and_then(|p| decap_fast(b, p)) {
        return Ok((n, true));
    }
    let ls = ls.ok_or(drop(error::NO_LOCALSID))?;
    process_slow(b, ls)
}

/// Every case `decap_headers` leaves, with the SRH checked in RFC 8754's order.
#[inline(never)]
fn process_slow(b: &mut Buf<'_>, ls: &Localsid) -> Result<(u16, bool), (u16, u16)> {
    let drop = |e| (e, next::DROP);
    let d = b.data();
    let h = Ip6Hdr::new(d)
        .filter(|h| h.version() == 6)
        .ok_or(drop(error::NOT_IP6))?;
    let outer_next = h.next_header();
    let total = IP6_HDR + h.payload_len() as usize;
    if total > d.len() {
        return Err(drop(error::TRUNCATED));
    }
    let d = &d[..total];
    let srh = if h.next_header() == IP_PROTO_ROUTING {
        let r = Srh::parse(&d[IP6_HDR..]);
        match r {
            Ok(s) => Some((s.segments_left(), s.len(), s.next_header())),
            Err(SrhError::Truncated) => return Err(drop(error::TRUNCATED)),
            Err(SrhError::NoSegments) => return Err(drop(error::NO_SEGMENTS)),
            Err(SrhError::NotSrh) => return Err(drop(error::NOT_SRH)),
            Err(SrhError::LastEntry | SrhError::SegmentsLeft) => {
                return Err((error::BAD_SRH, param_problem(b)))
            }
        }
    } else {
        None
    };
    if total < b.data().len() {
        b.set_len(total);
    }
    match ls.behavior {
        Behavior::End | Behavior::X => {
            end(b, ls, srh.map(|(sl, len, _)| (sl, len))).map(|n| (n, false))
        }
        _ => {
            let (inner_proto, strip) = match srh {
                Some((sl, _, _)) if sl != 0 => {
                    return Err((error::SEGMENTS_LEFT, param_problem(b)))
                }
                Some((_, len, next)) => (next, IP6_HDR + len),
                None => (outer_next, IP6_HDR),
            };
            decap(b, ls, inner_proto, strip).map(|n| (n, true))
        }
    }
}

/// End / End.X: the next segment becomes the destination.
#[inline(always)]
fn end(b: &mut Buf<'_>, ls: &Localsid, srh: Option<(u8, usize)>) -> Result<u16, (u16, u16)> {
    let drop = |e| (e, next::DROP);
    let (sl, srh_len) = srh
        .filter(|&(sl, _)| sl > 0)
        .ok_or(drop(error::NO_SEGMENTS_LEFT))?;
    if b.meta.relookups >= MAX_RELOOKUPS {
        return Err(drop(error::LOOP));
    }
    let sl = sl - 1;
    let d = b.data_mut();
    // Parsed above: the SRH holds segments 0..=last entry, and sl < last entry + 1.
    let (seg, next_header) = d
        .get(IP6_HDR..)
        .and_then(|r| Srh::parse(r).ok())
        .and_then(|s| Some((s.segment(sl)?, s.next_header())))
        .ok_or(drop(error::TRUNCATED))?;
    if let Some(v) = d.get_mut(IP6_HDR + SEGMENTS_LEFT_OFFSET) {
        *v = sl;
    }
    let Some(h) = d.first_chunk_mut::<IP6_HDR>() else {
        return Err(drop(error::TRUNCATED));
    };
    h[24..40].copy_from_slice(&seg.to_be_bytes());
    if sl == 0 && ls.end_psp {
        // PSP: the SRH goes; the IPv6 header moves up over it.
        let plen = u16::from_be_bytes([h[4], h[5]]).saturating_sub(srh_len as u16);
        h[4..6].copy_from_slice(&plen.to_be_bytes());
        h[6] = next_header;
        let fixed = *h;
        b.advance(srh_len);
        if let Some(h) = b.data_mut().first_chunk_mut::<IP6_HDR>() {
            *h = fixed;
        }
        b.meta.l3_hdr_offset = b.meta.current_data;
    }
    b.meta.relookups += 1;
    if ls.behavior == Behavior::X {
        b.meta.adj_index = ls.adj;
        Ok(next::IP6_REWRITE)
    } else {
        Ok(next::IP6_LOOKUP)
    }
}

/// End.DT4 / DT6 / DX4 / DX6: strip the outer headers, hand on the inner packet.
#[inline(always)]
fn decap(b: &mut Buf<'_>, ls: &Localsid, proto: u8, strip: usize) -> Result<u16, (u16, u16)> {
    let drop = |e| (e, next::DROP);
    let v4 = matches!(ls.behavior, Behavior::DT4 | Behavior::DX4);
    let want = if v4 { IP_PROTO_IPIP } else { IP_PROTO_IPV6 };
    if proto != want || !b.advance(strip) {
        return Err(drop(error::WRONG_PAYLOAD));
    }
    let version = b.data().first().map_or(0, |v| v >> 4);
    if version != if v4 { 4 } else { 6 } {
        return Err(drop(error::WRONG_PAYLOAD));
    }
    let m = &mut *b.meta;
    if m.relookups >= MAX_RELOOKUPS {
        return Err(drop(error::LOOP));
    }
    decapsulated(b, ls.decap_fib);
    if v4 {
        if !V4::plain_header_ok(b) {
            inner_checked::<V4>(b, next::ICMP4_ERROR)?;
        }
    } else if !V6::plain_header_ok(b) {
        inner_checked::<V6>(b, next::ICMP_ERROR)?;
    }
    let m = &mut *b.meta;
    Ok(match ls.behavior {
        Behavior::DT4 => next::IP4_LOOKUP,
        Behavior::DT6 => next::IP6_LOOKUP,
        Behavior::DX4 => {
            m.adj_index = ls.adj;
            next::IP4_REWRITE
        }
        _ => {
            m.adj_index = ls.adj;
            next::IP6_REWRITE
        }
    })
}

/// The inner header that is not the plain common case: ip4-/ip6-input's full check. Ok: fine
/// (options or a hop-by-hop header are forwarded, as input does); a TTL / hop limit of 0 is
/// answered with time exceeded (`icmp`, the family's icmp-error edge), anything else is a
/// counted drop.
#[inline(never)]
fn inner_checked<F: InputFamily>(b: &mut Buf<'_>, icmp: u16) -> Result<(), (u16, u16)> {
    match F::check(b) {
        Ok(_) => Ok(()),
        Err(e) if e == F::IDS.expired => {
            let [ty, code] = <F as Family>::TIME_EXCEEDED;
            set_icmp_error(b, ty, code, 0);
            Err((error::INNER_EXPIRED, icmp))
        }
        Err(_) => Err((error::INNER_BAD, next::DROP)),
    }
}

impl Node for SrLocalsid {
    fn info(&self) -> NodeInfo {
        NodeInfo::internal(NAME, next::NAMES, error::NAMES)
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        self.snap.refresh(&self.table);
        let sr = self.snap.get();
        let errs = cx.errs();
        let tables = cx.tables;
        let fwd = tables.fwd.get();
        let (mut done, mut decapped) = (0, 0);
        let mut inner4 = InnerRoute::<V4>::default();
        let mut inner6 = InnerRoute::<V6>::default();
        // A SID's packets come in runs: the last adjacency's localsid is looked up once.
        let (mut last_adj, mut last_ls, mut last_plan) = (u32::MAX, None, None);
        let mut view = cx.bufs.view();
        let mut v = view.vector(bufs);
        let n = v.len().min(nexts.len());
        for_each_prefetched!(v, n, PREFETCH_AHEAD, |i| {
            let mut b = v.get(i);
            let ai = b.meta.adj_index;
            if ai != last_adj {
                last_adj = ai;
                last_ls = localsid_of(sr, fwd, ai);
                last_plan = last_ls.and_then(DecapPlan::of);
            }
            nexts[i] = match process_one(&mut b, last_ls, last_plan.as_ref()) {
                Ok((n, decap)) => {
                    done += 1;
                    decapped += decap as u64;
                    let shortcut = match n {
                        next::IP4_LOOKUP => inner4.forward(&mut b, tables),
                        next::IP6_LOOKUP if decap => inner6.forward(&mut b, tables),
                        _ => false,
                    };
                    if shortcut {
                        next::OUTPUT
                    } else {
                        n
                    }
                }
                Err((e, edge)) => {
                    if edge == next::DROP {
                        b.meta.error = errs.error(e);
                    } else {
                        errs.count(e, 1);
                    }
                    edge
                }
            };
        });
        errs.count(error::PROCESSED, done);
        errs.count(error::DECAPSULATED, decapped);
    }
}
