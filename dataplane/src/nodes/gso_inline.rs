//! gso-ip4 / gso-ip6: segmentation and checksum completion inside the graph, as features on an
//! interface's output arc, for the encap nodes that must see each wire packet (ESP and
//! WireGuard encrypt what they are given, so a super-frame must be cut before them, and a
//! checksum left to the device must be done before it is sealed). VPP's gso feature node
//! plays the same part.
//!
//! A packet with `GSO` becomes its segments (built by gso-segment's code, each inheriting the
//! super-frame's metadata), a packet with `OFFLOAD_L4_CKSUM` gets its checksum; either then
//! goes on to the next feature. In a vector with any such packet every packet leaves through
//! [`Ctx::emit`], in order, so that a flow's small packets never pass its segments; a vector
//! without one goes on as it came.

use super::gso::{finish_in_place, gso_error as error, parse_offload, segment, segment_count};
use super::gso::SegmentSink;
use crate::buffer::{flags, BufferMeta};
use crate::feature::Feature;
use crate::graph::{GraphBuilder, Node, NodeInfo, CONSUMED};
use crate::runtime::Ctx;
use crate::tables::if_flags;

/// The encap features that take one wire packet at a time.
const ENCRYPT4: &[&str] = &["esp4-encrypt-tun", "wg4-output-tun"];
const ENCRYPT6: &[&str] = &["esp6-encrypt-tun", "wg6-output-tun"];

/// In-graph GSO for IPv4 packets routed to an interface whose encap needs wire packets.
pub const IP4: Feature = Feature::new("ip4-output", "gso-ip4").runs_before(ENCRYPT4);
/// The same for IPv6.
pub const IP6: Feature = Feature::new("ip6-output", "gso-ip6").runs_before(ENCRYPT6);

crate::next_edges! {
    mod next {
        DROP => "error-drop",
    }
}

pub fn register(b: GraphBuilder, _tables: &crate::feature::FeatureTables) -> GraphBuilder {
    b.feature(IP4, Box::new(GsoInline { ip6: false }))
        .feature(IP6, Box::new(GsoInline { ip6: true }))
}

pub struct GsoInline {
    ip6: bool,
}

/// Segments continue on the arc with the super-frame's metadata.
struct ArcSink {
    edge: u16,
}

impl SegmentSink for ArcSink {
    fn put(&mut self, cx: &mut Ctx<'_>, seg: u32, _len: usize, orig: &BufferMeta) {
        inherit(cx.bufs.meta(seg), orig);
        if !cx.emit(self.edge, seg) {
            // Room is checked per super-frame before it is cut, so this is a bug guard.
            cx.bufs.free(&[seg]);
            cx.count(error::NO_ROOM, 1);
        }
    }
    fn relieve(&mut self, _cx: &mut Ctx<'_>) -> bool {
        false
    }
}

/// A segment's metadata: the super-frame's (interfaces, tables, adjacency, feature mask, flow
/// hash, scratch) but for what describes its own buffers and the offload now done.
fn inherit(seg: &mut BufferMeta, orig: &BufferMeta) {
    let own = *seg;
    *seg = *orig;
    seg.current_data = own.current_data;
    seg.current_length = own.current_length;
    seg.next_buffer = own.next_buffer;
    seg.total_length_not_including_first_buffer = own.total_length_not_including_first_buffer;
    seg.pool_free = own.pool_free;
    seg.l2_hdr_offset = own.l2_hdr_offset;
    seg.l3_hdr_offset = own.l3_hdr_offset;
    seg.l4_hdr_offset = own.l4_hdr_offset;
    let done = flags::GSO
        | flags::OFFLOAD_L4_CKSUM
        | flags::TUNNEL_OFFLOAD
        | flags::NEXT_PRESENT
        | flags::TRACED;
    seg.flags = orig.flags & !done | own.flags & flags::NEXT_PRESENT;
    seg.gso_size = 0;
}

impl GsoInline {
    /// One offload packet: Ok when it (or its segments) was emitted toward `edge`.
    fn one(&self, cx: &mut Ctx<'_>, bi: u32, edge: u16) -> Result<(), u16> {
        let (sw, gso, mss) = {
            let m = cx.bufs.meta(bi);
            (
                m.tx_sw_if_index,
                m.flags & flags::GSO != 0,
                m.gso_size as usize,
            )
        };
        if gso && mss == 0 {
            return Err(error::GSO_SIZE_ZERO);
        }
        let l2 = cx.tables.ifs.get().fast(sw).flags & if_flags::L2 != 0;
        let (h, outer) = parse_offload(cx.bufs, bi, l2)?;
        let n = segment_count(&h, mss.max(1));
        if !gso || n <= 1 {
            finish_in_place(cx.bufs, bi, &h, outer)?;
            cx.count(error::CSUM, 1);
            return self.pass(cx, bi, edge);
        }
        if n > cx.emit_room() {
            return Err(error::NO_ROOM);
        }
        segment(cx, bi, (&h, outer.as_ref()), mss, &mut ArcSink { edge });
        cx.bufs.free(&[bi]);
        Ok(())
    }

    fn pass(&self, cx: &mut Ctx<'_>, bi: u32, edge: u16) -> Result<(), u16> {
        if cx.emit(edge, bi) {
            Ok(())
        } else {
            Err(error::NO_ROOM)
        }
    }
}

impl Node for GsoInline {
    fn info(&self) -> NodeInfo {
        let name = if self.ip6 { IP6.node } else { IP4.node };
        // gso-segment's reasons: the parse and build errors are shared.
        NodeInfo::internal(name, next::NAMES, error::NAMES)
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        let arc = cx.arc();
        const OFFLOADS: u32 = flags::GSO | flags::OFFLOAD_L4_CKSUM;
        if bufs.iter().all(|&bi| cx.bufs.meta(bi).flags & OFFLOADS == 0) {
            // Nothing to do: the vector goes on as it came, no emits.
            for (&bi, next_out) in bufs.iter().zip(nexts.iter_mut()) {
                *next_out = arc.next(cx.bufs.meta(bi).feature_mask);
            }
            return;
        }
        for (&bi, next_out) in bufs.iter().zip(nexts.iter_mut()) {
            let m = cx.bufs.meta(bi);
            let edge = arc.next(m.feature_mask);
            let r = if m.flags & OFFLOADS == 0 {
                self.pass(cx, bi, edge)
            } else {
                self.one(cx, bi, edge)
            };
            *next_out = match r {
                Ok(()) => CONSUMED,
                Err(code) => {
                    cx.bufs.meta(bi).error = cx.error(code);
                    next::DROP
                }
            };
        }
    }
}
