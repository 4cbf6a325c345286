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
//!   as well (Linux and VPP send one-SID encaps so).

use super::{Behavior, Localsid, Srv6, Table};
use crate::buffer::{flags, Buf};
use crate::graph::{Node, NodeInfo};
use crate::nodes::family::set_icmp_error;
use crate::rcu::Snapshot;
use crate::runtime::Ctx;
use crate::tables::{AdjKind, FwdTable, MAX_RELOOKUPS};
use crate::wire::l4::icmp6_type;
use crate::wire::srh::{Srh, SrhError, SEGMENTS_LEFT_OFFSET};
use crate::wire::tunnel::{IP_PROTO_IPIP, IP_PROTO_IPV6, IP_PROTO_ROUTING};
use crate::wire::{Ip6Hdr, IP6_HDR};
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
    }
}

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

/// What to do with a packet: Ok((next edge, decapsulated)), or Err((counter, edge)).
#[inline(always)]
fn process_one(b: &mut Buf<'_>, sr: &Srv6, fwd: &FwdTable) -> Result<(u16, bool), (u16, u16)> {
    let drop = |e| (e, next::DROP);
    if b.meta.flags & flags::NEXT_PRESENT != 0 {
        return Err(drop(error::CHAINED));
    }
    let adj = fwd.adj(b.meta.adj_index);
    let ls = sr
        .localsid(adj.lookup_fib)
        .filter(|_| adj.kind == AdjKind::SrLocalsid)
        .ok_or(drop(error::NO_LOCALSID))?;
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
    m.flags &= !(flags::LOCALLY_ORIGINATED | flags::CNAT_MARKS);
    crate::nodes::tunnel::inner_checksum_offload(b, 0);
    let m = &mut *b.meta;
    // Kept counting (not reset as a tunnel's decap does): a steering that leads back into
    // its own SID ends as a counted drop, not a packet circling in the graph.
    m.relookups += 1;
    m.feature_mask = 0;
    m.l3_hdr_offset = m.current_data;
    Ok(match ls.behavior {
        Behavior::DT4 => {
            m.fib_index = ls.decap_fib;
            next::IP4_LOOKUP
        }
        Behavior::DT6 => {
            m.fib_index = ls.decap_fib;
            next::IP6_LOOKUP
        }
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

impl Node for SrLocalsid {
    fn info(&self) -> NodeInfo {
        NodeInfo::internal(NAME, next::NAMES, error::NAMES)
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        self.snap.refresh(&self.table);
        let sr = self.snap.get();
        let errs = cx.errs();
        let fwd = cx.tables.fwd.get();
        let (mut done, mut decapped) = (0, 0);
        for (&bi, next_out) in bufs.iter().zip(nexts.iter_mut()) {
            let mut b = cx.bufs.get(bi);
            *next_out = match process_one(&mut b, sr, fwd) {
                Ok((n, decap)) => {
                    done += 1;
                    decapped += decap as u64;
                    n
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
        }
        errs.count(error::PROCESSED, done);
        errs.count(error::DECAPSULATED, decapped);
    }
}
