//! `sr-pl-rewrite-encaps` (IPv6 payload) and `sr-pl-rewrite-encaps-v4` (IPv4 payload): H.Encaps
//! of a packet whose lookup gave an `AdjKind::SrPolicy` adjacency. The flow picks the SID
//! list; its prebuilt outer header is copied in front, then the payload length, the
//! payload's next header and the traffic class / flow label are filled, and the outer packet
//! is our own (hop limit 64, not decremented). When the first SID's route in the policy's
//! table is one plain rewrite adjacency (the tunnels' [`Uplink`], resolved once per SID per
//! vector) and the outer packet fits its MTU, the node writes the L2 header itself and hands
//! the packet to interface-output; anything else goes to ip6-lookup as before. A packet whose
//! outer packet would not fit that uplink is answered, unencapsulated, with an ICMP too-big
//! carrying the MTU that fits (IPv6, or IPv4 with DF), as the IPIP and VXLAN encap nodes do:
//! ip6-rewrite would only answer our own outer source. When the first SID's route is not one
//! plain rewrite but all its paths are rewrites (ECMP, output features), the outer packet is
//! held to the smallest of their MTUs the same way, then goes to ip6-lookup.

use super::{Policy, SidList, Srv6, Table};
use crate::buffer::flags;
use crate::buffer::Buf;
use crate::graph::{Node, NodeInfo};
use crate::nodes::tunnel::{
    fits, fits_mtu, hand_on_offload, offload_state, outer_packet, route_mtu, straight_out,
    TooBigCodes, Uplink,
};
use crate::rcu::Snapshot;
use crate::runtime::Ctx;
use crate::tables::{AdjKind, FwdTable, MAX_RELOOKUPS};
use crate::wire::tunnel::{IP_PROTO_IPIP, IP_PROTO_IPV6};
use crate::wire::{Ip4Hdr, Ip6Hdr, ETH_HDR, IP6_HDR};
use std::sync::Arc;

pub const ENCAP6: &str = "sr-pl-rewrite-encaps";
pub const ENCAP4: &str = "sr-pl-rewrite-encaps-v4";

crate::next_edges! {
    mod next {
        DROP => "error-drop",
        IP6_LOOKUP => "ip6-lookup",
        OUTPUT => "interface-output",
        ICMP4 => "ip4-icmp-error",
        ICMP6 => "ip6-icmp-error",
    }
}

crate::node_errors! {
    pub mod error {
        ENCAPSULATED => "sr policy packets encapsulated",
        NO_POLICY => "sr encap: no such policy (dropped)",
        NO_SID_LIST => "sr encap: policy has no SID list (dropped)",
        NOT_IP => "sr encap: payload is not of the node's family (dropped)",
        NO_HEADROOM => "sr encap: no headroom for the outer header (dropped)",
        TOO_BIG => "sr encap: outer packet over 64 KiB (dropped)",
        LOOP => "sr encap: packet steered too often (dropped)",
        NESTED_OFFLOAD => "sr encap: offload already through another tunnel (dropped)",
        OVER_MTU => "sr encap: outer over the uplink's MTU, ICMP too-big sent toward the source",
    }
}

const TOO_BIG_CODES: TooBigCodes = TooBigCodes {
    sent: error::OVER_MTU,
    icmp4: next::ICMP4,
    icmp6: next::ICMP6,
};

pub struct SrEncap {
    name: &'static str,
    payload_v4: bool,
    table: Arc<Table>,
    snap: Snapshot<Srv6>,
}

impl SrEncap {
    pub fn new(payload_v4: bool, table: Arc<Table>) -> Self {
        Self {
            name: if payload_v4 { ENCAP4 } else { ENCAP6 },
            payload_v4,
            snap: table.snapshot(),
            table,
        }
    }
}

/// The payload's (traffic class, flow label), and its flow hash.
#[inline(always)]
fn payload_info(d: &[u8], v4: bool) -> Option<(u8, u32, u32)> {
    if v4 {
        let h = Ip4Hdr::new(d).filter(|h| h.0[0] >> 4 == 4)?;
        let hash = crate::nodes::ip4::flow_hash4(d);
        Some((h.0[1], hash & 0xf_ffff, hash))
    } else {
        let h = Ip6Hdr::new(d).filter(|h| h.version() == 6)?;
        let tc = (h.0[0] << 4) | (h.0[1] >> 4);
        Some((tc, h.flow_label(), crate::nodes::ip6::flow_hash6(d)))
    }
}

/// What a packet is encapsulated with, chosen before anything is written: its policy's SID
/// list (the first SID is the outer destination), the payload's traffic class, flow label and
/// hash, and whether it carries an offload to hand on.
struct Pick<'s> {
    list: &'s SidList,
    fib: u32,
    tc: u8,
    label: u32,
    hash: u32,
    offload: bool,
}

#[inline(always)]
fn pick<'s>(b: &Buf<'_>, policy: Option<&'s Policy>, v4: bool) -> Result<Pick<'s>, u16> {
    let m = &*b.meta;
    // A GSO super-frame or a checksum left to the device is the inner packet's: gso-segment
    // does it after us, past the outer header and SRH.
    let offload = offload_state(m, error::NESTED_OFFLOAD)?;
    if m.relookups >= MAX_RELOOKUPS {
        return Err(error::LOOP);
    }
    let policy = policy.ok_or(error::NO_POLICY)?;
    let (tc, label, hash) = payload_info(b.data(), v4).ok_or(error::NOT_IP)?;
    let list = policy.pick(hash).ok_or(error::NO_SID_LIST)?;
    Ok(Pick {
        list,
        fib: policy.encap_fib,
        tc,
        label,
        hash,
        offload,
    })
}

/// The policy an adjacency names, if it is a policy adjacency whose entry is there.
#[inline(always)]
fn policy_of<'s>(sr: &'s Srv6, fwd: &FwdTable, adj_index: u32) -> Option<&'s Policy> {
    let adj = fwd.adj(adj_index);
    sr.policy(adj.lookup_fib)
        .filter(|_| adj.kind == AdjKind::SrPolicy)
}

/// Put `p`'s outer IPv6 header (and SRH) in front of the payload.
#[inline(always)]
fn write_outer(b: &mut Buf<'_>, p: &Pick<'_>, v4: bool) -> Result<(), u16> {
    let rw = p.list.rewrite();
    let inner_len = b.total_len();
    let payload_len = u16::try_from(rw.len() - IP6_HDR + inner_len).map_err(|_| error::TOO_BIG)?;
    if !b.retreat(rw.len()) {
        return Err(error::NO_HEADROOM);
    }
    let out = b.data_mut().get_mut(..rw.len()).ok_or(error::NO_HEADROOM)?;
    // One SID (no SRH) is the common list: a fixed 40-byte copy, not a call to memcpy.
    match (
        out.first_chunk_mut::<IP6_HDR>(),
        rw.first_chunk::<IP6_HDR>(),
    ) {
        (Some(to), Some(from)) if rw.len() == IP6_HDR => *to = *from,
        _ => out.copy_from_slice(rw),
    }
    fill_outer(out, p, payload_len, v4);
    b.meta.flow_hash = p.hash;
    outer_packet(b.meta, p.fib);
    if p.offload {
        hand_on_offload(b.meta, rw.len());
    }
    Ok(())
}

/// The per-packet fields of the outer header (and SRH) copied into `out`: traffic class, flow
/// label, payload length and the payload's protocol.
#[inline(always)]
fn fill_outer(out: &mut [u8], p: &Pick<'_>, payload_len: u16, v4: bool) {
    let (tc, label) = (p.tc, p.label);
    if let Some(h) = out.first_chunk_mut::<IP6_HDR>() {
        h[0] = 0x60 | tc >> 4;
        h[1] = (tc << 4) | (label >> 16) as u8 & 0x0f;
        h[2] = (label >> 8) as u8;
        h[3] = label as u8;
        h[4..6].copy_from_slice(&payload_len.to_be_bytes());
    }
    let proto = if v4 { IP_PROTO_IPIP } else { IP_PROTO_IPV6 };
    if let Some(nh) = out.get_mut(p.list.next_header_at as usize) {
        *nh = proto;
    }
}

/// A one-SID list's packet (no SRH) that fits the uplink, in one buffer with no offload: the
/// uplink's Ethernet header and the outer IPv6 header written in one window, the metadata as
/// `write_outer` then [`Uplink::finish`] leave it. None, changing nothing: the two steps decide.
#[inline(always)]
fn straight_one_sid(b: &mut Buf<'_>, p: &Pick<'_>, up: &Uplink, v4: bool) -> Option<u16> {
    const W: usize = ETH_HDR + IP6_HDR;
    let rw = p.list.rewrite().first_chunk::<IP6_HDR>()?;
    if p.list.rewrite().len() != IP6_HDR || p.offload || b.meta.flags & flags::NEXT_PRESENT != 0 {
        return None;
    }
    let eth = up.eth()?;
    let payload_len = b.meta.current_length;
    let w = b.window_mut::<W, W>()?;
    let (l2, h) = w.split_first_chunk_mut::<ETH_HDR>()?;
    *l2 = *eth;
    let h = h.first_chunk_mut::<IP6_HDR>()?;
    *h = *rw;
    fill_outer(h, p, payload_len, v4);
    b.meta.flow_hash = p.hash;
    straight_out(b.meta, up, IP6_HDR, p.fib);
    Some(next::OUTPUT)
}

/// [`fits`] for a first SID whose route is no single uplink, against its paths' smallest MTU,
/// out of line: the common packet has its uplink.
#[inline(never)]
fn fits_route(b: &mut Buf<'_>, mtu: u16, overhead: u16) -> Result<bool, u16> {
    fits_mtu(b, mtu, (overhead, 0), &TOO_BIG_CODES)
}

impl Node for SrEncap {
    fn info(&self) -> NodeInfo {
        NodeInfo::internal(self.name, next::NAMES, error::NAMES)
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        self.snap.refresh(&self.table);
        let sr = self.snap.get();
        let errs = cx.errs();
        let tables = cx.tables;
        let fwd = tables.fwd.get();
        let mut done = 0;
        // Where the last SID list's first SID goes, looked up once per vector and list (a
        // list is one policy's, in one table): it follows route and neighbour changes as
        // ip6-lookup would. Lists are told apart by address, fixed within the snapshot.
        let mut last_list: *const SidList = std::ptr::null();
        // A policy's packets come in runs: the last adjacency's policy is looked up once.
        let (mut last_adj, mut last_policy) = (u32::MAX, None);
        let mut uplink: Option<Uplink> = None;
        // With no uplink, the MTU the outer packet is held to: the smallest of the first SID's
        // route's rewrites (ECMP, output features), if they are all rewrites.
        let mut route_mtu_only: Option<u16> = None;
        let mut told = 0;
        for (&bi, next_out) in bufs.iter().zip(nexts.iter_mut()) {
            let mut b = cx.bufs.get(bi);
            let ai = b.meta.adj_index;
            if ai != last_adj {
                last_adj = ai;
                last_policy = policy_of(sr, fwd, ai);
            }
            let r = pick(&b, last_policy, self.payload_v4).and_then(|p| {
                if !std::ptr::eq(p.list, last_list) {
                    last_list = p.list;
                    let first = p.list.sids.first();
                    let first = first.map(|&dst| std::net::Ipv6Addr::from(dst).into());
                    uplink = first.and_then(|dst| Uplink::resolve(tables, p.fib, dst));
                    route_mtu_only = match uplink {
                        Some(_) => None,
                        None => first.and_then(|dst| route_mtu(tables, p.fib, dst)),
                    };
                }
                // Checked before the outer header goes on: the answer quotes the packet the
                // source sent.
                let overhead = p.list.rewrite().len() as u16;
                let fit = match (&uplink, route_mtu_only) {
                    (Some(up), _) => fits(&mut b, up, (overhead, 0), &TOO_BIG_CODES),
                    (None, Some(mtu)) => fits_route(&mut b, mtu, overhead),
                    (None, None) => Ok(false),
                };
                let fit = match fit {
                    Ok(fit) => fit,
                    Err(edge) => {
                        told += 1;
                        return Ok(edge);
                    }
                };
                if let (true, Some(up)) = (fit, &uplink) {
                    if let Some(n) = straight_one_sid(&mut b, &p, up, self.payload_v4) {
                        done += 1;
                        return Ok(n);
                    }
                }
                write_outer(&mut b, &p, self.payload_v4)?;
                done += 1;
                Ok(match &uplink {
                    Some(up) if fit && !p.offload && up.finish(&mut b) => next::OUTPUT,
                    _ => next::IP6_LOOKUP,
                })
            });
            *next_out = match r {
                Ok(n) => n,
                Err(e) => {
                    b.meta.error = errs.error(e);
                    next::DROP
                }
            };
        }
        errs.count(error::OVER_MTU, told);
        errs.count(error::ENCAPSULATED, done);
    }

    fn trace(&self, b: &Buf<'_>) -> String {
        let fwd_index = b.meta.adj_index;
        format!(
            "sr encap: adj {fwd_index} flow hash 0x{:08x}",
            b.meta.flow_hash
        )
    }
}
