//! `sr-pl-rewrite-encaps` (IPv6 payload) and `sr-pl-rewrite-encaps-v4` (IPv4 payload): H.Encaps
//! of a packet whose lookup gave an `AdjKind::SrPolicy` adjacency. The flow picks the SID
//! list; its prebuilt outer header is copied in front, then the payload length, the
//! payload's next header and the traffic class / flow label are filled, and the outer packet
//! is our own (hop limit 64, not decremented). When the first SID's route in the policy's
//! table is one plain rewrite adjacency (the tunnels' [`Uplink`], resolved once per SID per
//! vector) and the outer packet fits its MTU, the node writes the L2 header itself and hands
//! the packet to interface-output; anything else goes to ip6-lookup as before.

use super::{SidList, Srv6, Table};
use crate::buffer::Buf;
use crate::graph::{Node, NodeInfo};
use crate::nodes::tunnel::{hand_on_offload, offload_state, outer_packet, Uplink};
use crate::rcu::Snapshot;
use crate::runtime::Ctx;
use crate::tables::{AdjKind, FwdTable, MAX_RELOOKUPS};
use crate::wire::tunnel::{IP_PROTO_IPIP, IP_PROTO_IPV6};
use crate::wire::{Ip4Hdr, Ip6Hdr, IP6_HDR};
use std::sync::Arc;

pub const ENCAP6: &str = "sr-pl-rewrite-encaps";
pub const ENCAP4: &str = "sr-pl-rewrite-encaps-v4";

crate::next_edges! {
    mod next {
        DROP => "error-drop",
        IP6_LOOKUP => "ip6-lookup",
        OUTPUT => "interface-output",
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
    }
}

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

/// An encapsulated packet's SID list (its first SID is the outer destination) and the table
/// it is looked up in, and whether it may skip ip6-lookup and ip6-rewrite (no offload to hand
/// on, its outer length).
struct Outer<'s> {
    list: &'s SidList,
    fib: u32,
    offload: bool,
    len: usize,
}

#[inline(always)]
fn encap_one<'s>(
    b: &mut Buf<'_>,
    sr: &'s Srv6,
    fwd: &FwdTable,
    v4: bool,
) -> Result<Outer<'s>, u16> {
    let m = &*b.meta;
    // A GSO super-frame or a checksum left to the device is the inner packet's: gso-segment
    // does it after us, past the outer header and SRH.
    let offload = offload_state(m, error::NESTED_OFFLOAD)?;
    if m.relookups >= MAX_RELOOKUPS {
        return Err(error::LOOP);
    }
    let adj = fwd.adj(m.adj_index);
    let policy = sr
        .policy(adj.lookup_fib)
        .filter(|_| adj.kind == AdjKind::SrPolicy)
        .ok_or(error::NO_POLICY)?;
    let (tc, label, hash) = payload_info(b.data(), v4).ok_or(error::NOT_IP)?;
    let list = policy.pick(hash).ok_or(error::NO_SID_LIST)?;
    let rw = list.rewrite();
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
    let Some(h) = out.first_chunk_mut::<IP6_HDR>() else {
        return Err(error::NO_HEADROOM);
    };
    h[0] = 0x60 | tc >> 4;
    h[1] = (tc << 4) | (label >> 16) as u8 & 0x0f;
    h[2] = (label >> 8) as u8;
    h[3] = label as u8;
    h[4..6].copy_from_slice(&payload_len.to_be_bytes());
    let proto = if v4 { IP_PROTO_IPIP } else { IP_PROTO_IPV6 };
    if let Some(nh) = out.get_mut(list.next_header_at as usize) {
        *nh = proto;
    }
    b.meta.flow_hash = hash;
    outer_packet(b.meta, policy.encap_fib);
    if offload {
        hand_on_offload(b.meta, rw.len());
    }
    Ok(Outer {
        list,
        fib: policy.encap_fib,
        offload,
        len: rw.len() + inner_len,
    })
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
        let mut uplink: Option<Uplink> = None;
        for (&bi, next_out) in bufs.iter().zip(nexts.iter_mut()) {
            let mut b = cx.bufs.get(bi);
            *next_out = match encap_one(&mut b, sr, fwd, self.payload_v4) {
                Ok(o) => {
                    done += 1;
                    if !std::ptr::eq(o.list, last_list) {
                        last_list = o.list;
                        uplink = o.list.sids.first().and_then(|&dst| {
                            Uplink::resolve(tables, o.fib, std::net::Ipv6Addr::from(dst).into())
                        });
                    }
                    match &uplink {
                        Some(up)
                            if !o.offload && o.len <= up.mtu() as usize && up.finish(&mut b) =>
                        {
                            next::OUTPUT
                        }
                        _ => next::IP6_LOOKUP,
                    }
                }
                Err(e) => {
                    b.meta.error = errs.error(e);
                    next::DROP
                }
            };
        }
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
