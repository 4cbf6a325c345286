//! gso-segment: software TCP segmentation (GSO) and L4 checksum offload for devices that cannot
//! do them.
//!
//! interface-output sends here every packet whose egress device lacks an offload the packet asks
//! for (`flags::GSO` without `if_flags::TX_GSO`, `flags::OFFLOAD_L4_CKSUM` without
//! `if_flags::TX_CSUM`). Packets arrive fully rewritten: at the Ethernet header (possibly
//! 802.1Q/802.1ad tagged) on L2 interfaces, at the IP header on L3 ones. Headers are parsed from
//! the packet itself, not from `l3_hdr_offset`/`l4_hdr_offset`, which a receiving driver set
//! relative to a packet start that rewrite has since moved.
//!
//! * A TCP super-frame (IPv4, or IPv6 without extension headers) is cut into segments of
//!   `gso_size` payload bytes, each in fresh buffers: headers copied from the first buffer, the
//!   payload range copied from the (possibly chained) source, then IPv4 total length, ID (+i)
//!   and header checksum or IPv6 payload length, TCP sequence (+i*mss), flags (FIN/PSH on the
//!   last segment only, CWR on the first only) and the full TCP checksum are set. The
//!   super-frame is freed. A super-frame whose payload fits in one segment is finished in place.
//! * A checksum-only packet gets its TCP or UDP checksum computed in place over the whole chain.
//!
//! * A tunnel's packet (`flags::TUNNEL_OFFLOAD`) carries the offload of its inner packet: the
//!   headers parsed and fixed are the inner ones, found `tunnel_inner` bytes after the outer IP
//!   header. Each segment also gets its outer lengths (IPv4 total length, ID and checksum, or
//!   IPv6 payload length; UDP length), and an IPv6 outer UDP header its checksum, derived from
//!   the inner one without a second pass over the payload.
//!
//! Either way the result is transmitted from here on the egress interface's tx queue for this
//! worker (the node charges the device's tx node and counts interface tx), and the input packet
//! leaves by `CONSUMED`. Anything malformed goes to error-drop under a named reason; this node
//! never panics on packet contents.

use crate::buffer::{flags, BufferMeta, Buffers};
use crate::graph::{Node, NodeInfo, CONSUMED, MAX_VECTOR};
use crate::runtime::{clocks, Ctx};
use crate::tables::if_flags;
use crate::wire::{
    fold, ip4_pseudo_sum, ip6_pseudo_sum, ones_sum, ETHERTYPE_IP4, ETHERTYPE_IP6, ETHERTYPE_QINQ,
    ETHERTYPE_VLAN, ETH_HDR, IP4_HDR, IP6_HDR, IP_PROTO_TCP, IP_PROTO_UDP, VLAN_HDR,
};

crate::node_errors! {
    /// Node-local error and event codes of gso-segment: drops, then events (not drops).
    pub mod gso_error {
        NO_BUFFERS => "segments dropped: no buffers",
        TX_FULL => "tx queue full (dropped)",
        NOT_TCP => "not TCP (GSO) or not TCP/UDP (checksum offload)",
        HDR_NOT_IN_FIRST => "headers not in the first buffer",
        BAD_LENGTH => "bad IP or L4 length",
        GSO_SIZE_ZERO => "GSO packet with gso_size 0",
        BAD_L3 => "not IPv4 or IPv6",
        IP_FRAGMENT_OR_EXT => "IPv4 fragment or IPv6 extension headers",
        BAD_TUNNEL => "tunnel offload: inner packet not where the outer header says",
        NO_ROOM => "super-frame dropped: this call's room for segments is used up (gso-ip4/6)",
        DOWN => "interface is down",
        NO_TXQ => "interface has no tx queue on this thread",
        SEGMENTED => "super-frames segmented",
        SEGMENTS => "segments sent",
        CSUM => "checksums computed in software",
    }
}

crate::next_edges! {
    mod next {
        DROP => "error-drop",
    }
}

/// Longest header run we copy into each segment. Plain: 2 VLAN tags + IPv4 with options + TCP
/// with options is 14 + 8 + 60 + 60 = 142. Through VXLAN over IPv6 with an inner Ethernet
/// header: 14 + 8 + 40 + 8 + 8 + 14 + 60 + 60 = 212.
const MAX_HDR: usize = 256;
/// Bound on a chain walk, against a corrupted (cyclic) chain.
const MAX_CHAIN: usize = 1024;

/// Where the headers of a packet are, as offsets from the packet start.
#[derive(Clone, Copy, Debug)]
pub(super) struct Hdrs {
    l3: usize,
    l4: usize,
    /// End of the L4 header (TCP with options; UDP's 8 bytes).
    l4_end: usize,
    /// End of the IP packet (trailing link padding excluded).
    ip_end: usize,
    v6: bool,
    proto: u8,
}

/// A tunnel's outer IP header, when the offload is its inner packet's.
#[derive(Clone, Copy, Debug)]
pub(super) struct Outer {
    l3: usize,
    l4: usize,
    v6: bool,
    /// The outer header is followed by UDP (VXLAN), whose length and checksum cover the rest.
    udp: bool,
}

#[inline(always)]
fn be16(d: &[u8], o: usize) -> u16 {
    u16::from_be_bytes([d[o], d[o + 1]])
}

#[inline(always)]
fn need(d: &[u8], total: usize, end: usize) -> Result<(), u16> {
    if end > total {
        Err(gso_error::BAD_LENGTH)
    } else if end > d.len() {
        Err(gso_error::HDR_NOT_IN_FIRST)
    } else {
        Ok(())
    }
}

/// Parse the headers of a packet whose first buffer holds `d` and whose chain is `total` bytes.
/// `tcp_only`: a GSO super-frame (UDP is not segmented).
fn parse(d: &[u8], total: usize, l2: bool, tcp_only: bool) -> Result<Hdrs, u16> {
    let (l3, l4, ip_end, proto, v6) = parse_ip(d, total, l2)?;
    if v6 && proto != IP_PROTO_TCP && proto != IP_PROTO_UDP {
        // Extension headers (or another upper layer): not something we segment.
        return Err(match proto {
            0 | 43 | 44 | 50 | 51 | 60 | 135 | 139 | 140 => gso_error::IP_FRAGMENT_OR_EXT,
            _ => gso_error::NOT_TCP,
        });
    }
    parse_l4(d, total, (l3, l4, ip_end, proto, v6), tcp_only)
}

/// Parse a tunnel's packet: the outer L2 and IP headers, then the inner IP and L4 headers
/// `inner` bytes after the outer IP header. Offsets are from the packet start.
fn parse_tunnel(
    d: &[u8],
    total: usize,
    l2: bool,
    tcp_only: bool,
    inner: usize,
) -> Result<(Hdrs, Outer), u16> {
    let (l3, l4, ip_end, proto, v6) = parse_ip(d, total, l2)?;
    let udp = proto == IP_PROTO_UDP;
    let at = l3 + inner;
    if at < l4 + if udp { 8 } else { 0 } || at >= ip_end {
        return Err(gso_error::BAD_TUNNEL);
    }
    let (d_in, total_in) = (&d[at.min(d.len())..], total - at);
    let h = parse(d_in, total_in, false, tcp_only)?;
    if at + h.ip_end != ip_end {
        return Err(gso_error::BAD_TUNNEL);
    }
    let h = Hdrs {
        l3: at + h.l3,
        l4: at + h.l4,
        l4_end: at + h.l4_end,
        ip_end,
        ..h
    };
    if h.l4_end > MAX_HDR {
        return Err(gso_error::BAD_LENGTH);
    }
    Ok((h, Outer { l3, l4, v6, udp }))
}

/// The L2 and IP headers: (l3, l4, ip_end, protocol or next header, v6).
fn parse_ip(d: &[u8], total: usize, l2: bool) -> Result<(usize, usize, usize, u8, bool), u16> {
    let mut l3 = 0;
    let ethertype = if l2 {
        need(d, total, ETH_HDR)?;
        let mut et = be16(d, 12);
        l3 = ETH_HDR;
        let mut tags = 0;
        while et == ETHERTYPE_VLAN || et == ETHERTYPE_QINQ {
            tags += 1;
            if tags > 2 {
                return Err(gso_error::BAD_L3);
            }
            need(d, total, l3 + VLAN_HDR)?;
            et = be16(d, l3 + 2);
            l3 += VLAN_HDR;
        }
        et
    } else {
        need(d, total, 1)?;
        match d[0] >> 4 {
            4 => ETHERTYPE_IP4,
            6 => ETHERTYPE_IP6,
            _ => return Err(gso_error::BAD_L3),
        }
    };
    let (l4, ip_end, proto, v6) = match ethertype {
        ETHERTYPE_IP4 => {
            need(d, total, l3 + IP4_HDR)?;
            if d[l3] >> 4 != 4 {
                return Err(gso_error::BAD_L3);
            }
            let ihl = (d[l3] & 0x0f) as usize * 4;
            if ihl < IP4_HDR {
                return Err(gso_error::BAD_LENGTH);
            }
            need(d, total, l3 + ihl)?;
            if be16(d, l3 + 6) & 0x3fff != 0 {
                return Err(gso_error::IP_FRAGMENT_OR_EXT);
            }
            let tl = be16(d, l3 + 2) as usize;
            if tl < ihl || l3 + tl > total {
                return Err(gso_error::BAD_LENGTH);
            }
            (l3 + ihl, l3 + tl, d[l3 + 9], false)
        }
        ETHERTYPE_IP6 => {
            need(d, total, l3 + IP6_HDR)?;
            if d[l3] >> 4 != 6 {
                return Err(gso_error::BAD_L3);
            }
            let end = l3 + IP6_HDR + be16(d, l3 + 4) as usize;
            if end > total {
                return Err(gso_error::BAD_LENGTH);
            }
            (l3 + IP6_HDR, end, d[l3 + 6], true)
        }
        _ => return Err(gso_error::BAD_L3),
    };
    Ok((l3, l4, ip_end, proto, v6))
}

/// The L4 header after `parse_ip`'s result.
fn parse_l4(
    d: &[u8],
    total: usize,
    (l3, l4, ip_end, proto, v6): (usize, usize, usize, u8, bool),
    tcp_only: bool,
) -> Result<Hdrs, u16> {
    let l4_end = match proto {
        IP_PROTO_TCP => {
            if l4 + 20 > ip_end {
                return Err(gso_error::BAD_LENGTH);
            }
            need(d, total, l4 + 20)?;
            let doff = (d[l4 + 12] >> 4) as usize * 4;
            if doff < 20 || l4 + doff > ip_end {
                return Err(gso_error::BAD_LENGTH);
            }
            need(d, total, l4 + doff)?;
            l4 + doff
        }
        IP_PROTO_UDP if !tcp_only => {
            if l4 + 8 > ip_end {
                return Err(gso_error::BAD_LENGTH);
            }
            need(d, total, l4 + 8)?;
            l4 + 8
        }
        _ => return Err(gso_error::NOT_TCP),
    };
    if l4_end > MAX_HDR {
        return Err(gso_error::BAD_LENGTH);
    }
    Ok(Hdrs {
        l3,
        l4,
        l4_end,
        ip_end,
        v6,
        proto,
    })
}

/// Bytes from `ip` (the packet's IP header) to the end of its first segment, when the packet
/// is a GSO super-frame: the headers through the (inner, for a tunnel's) TCP header plus
/// `gso_size`, which is what must fit an MTU. None when it is not one or its TCP header is not
/// whole in `ip`.
#[inline]
pub(crate) fn segment_len(ip: &[u8], m: &BufferMeta) -> Option<usize> {
    if m.flags & flags::GSO == 0 {
        return None;
    }
    let at = if m.flags & flags::TUNNEL_OFFLOAD != 0 {
        m.tunnel_inner as usize
    } else {
        0
    };
    let inner = ip.get(at..)?;
    let (l4, proto) = match inner.first()? >> 4 {
        4 => ((inner.first()? & 0x0f) as usize * 4, *inner.get(9)?),
        6 => (IP6_HDR, *inner.get(6)?),
        _ => return None,
    };
    if proto != IP_PROTO_TCP {
        return None;
    }
    let doff = (inner.get(l4 + 12)? >> 4) as usize * 4;
    Some(at + l4 + doff + m.gso_size as usize)
}

/// One's-complement sum folded to 16 bits, not inverted.
#[inline(always)]
fn sum16(data: &[u8]) -> u64 {
    (!fold(ones_sum(data, 0))) as u64
}

/// Add the sum of `part`, which starts `rel` bytes into the checksummed range: a part starting
/// at an odd offset has its bytes in the other halves of the 16-bit words, which byte-swaps its
/// one's-complement sum (RFC 1071, byte order independence).
#[inline(always)]
fn add_part(acc: u64, part: &[u8], rel: usize) -> u64 {
    let s = sum16(part);
    acc + if rel & 1 == 1 {
        (s as u16).swap_bytes() as u64
    } else {
        s
    }
}

/// Sum bytes `from..to` (packet offsets) of the chain at `head`. Returns the accumulator and
/// how many bytes it covered (less than asked when the chain is shorter than it claims).
fn chain_sum(bufs: &mut Buffers, head: u32, from: usize, to: usize) -> (u64, usize) {
    let cap = bufs.pool().capacity();
    let (mut acc, mut pos, mut bi, mut covered) = (0u64, 0usize, head, 0usize);
    for _ in 0..MAX_CHAIN {
        let b = bufs.get(bi);
        let d = b.data();
        let (s, e) = (from.max(pos), to.min(pos + d.len()));
        if s < e {
            acc = add_part(acc, &d[s - pos..e - pos], s - from);
            covered += e - s;
        }
        pos += d.len();
        if pos >= to || b.meta.flags & flags::NEXT_PRESENT == 0 || b.meta.next_buffer >= cap {
            break;
        }
        bi = b.meta.next_buffer;
    }
    (acc, covered)
}

#[inline(always)]
fn pseudo(h: &Hdrs, d: &[u8], l4_len: usize) -> u64 {
    pseudo_at(d, h.l3, h.v6, l4_len, h.proto)
}

/// The pseudo-header sum of the IP header at `l3` of `d`.
#[inline(always)]
fn pseudo_at(d: &[u8], l3: usize, v6: bool, l4_len: usize, proto: u8) -> u64 {
    if v6 {
        let a = |o: usize| {
            let mut x = [0u8; 16];
            x.copy_from_slice(&d[o..o + 16]);
            u128::from_be_bytes(x)
        };
        ip6_pseudo_sum(a(l3 + 8), a(l3 + 24), l4_len as u32, proto)
    } else {
        let a = |o: usize| u32::from_be_bytes([d[o], d[o + 1], d[o + 2], d[o + 3]]);
        ip4_pseudo_sum(a(l3 + 12), a(l3 + 16), l4_len as u16, proto)
    }
}

/// The outer headers a tunnel's segment of `len` payload bytes needs, set in `tpl` (headers
/// through the inner L4 header): IPv4 total length, ID and checksum, or IPv6 payload length;
/// UDP length, and its checksum zero (IPv4 allows it; over IPv6 [`outer_udp6_csum`] fills it).
fn set_outer(tpl: &mut [u8], o: &Outer, len: usize, id: u16) {
    let hl = tpl.len();
    if o.v6 {
        let pl = (hl - o.l3 - IP6_HDR + len) as u16;
        tpl[o.l3 + 4..o.l3 + 6].copy_from_slice(&pl.to_be_bytes());
    } else {
        let tl = (hl - o.l3 + len) as u16;
        tpl[o.l3 + 2..o.l3 + 4].copy_from_slice(&tl.to_be_bytes());
        tpl[o.l3 + 4..o.l3 + 6].copy_from_slice(&id.to_be_bytes());
        tpl[o.l3 + 10] = 0;
        tpl[o.l3 + 11] = 0;
        let c = fold(ones_sum(&tpl[o.l3..o.l4], 0));
        tpl[o.l3 + 10..o.l3 + 12].copy_from_slice(&c.to_be_bytes());
    }
    if o.udp {
        let ul = (hl - o.l4 + len) as u16;
        tpl[o.l4 + 4..o.l4 + 6].copy_from_slice(&ul.to_be_bytes());
        tpl[o.l4 + 6] = 0;
        tpl[o.l4 + 7] = 0;
    }
}

/// The outer UDP checksum over IPv6 of a segment whose inner L4 checksum is right: a segment
/// with a correct checksum sums to the complement of its pseudo-header, so only the headers
/// between the UDP header and the inner L4 header are read (their length is even).
fn outer_udp6_csum(hdrs: &[u8], o: &Outer, h: &Hdrs, len: usize) -> u16 {
    let hl = hdrs.len();
    let inner = fold(pseudo(h, hdrs, h.l4_end - h.l4 + len)) as u64;
    let outer = pseudo_at(hdrs, o.l3, true, hl - o.l4 + len, IP_PROTO_UDP);
    let mut c = fold(outer + sum16(&hdrs[o.l4..h.l4]) + inner);
    if c == 0 {
        c = 0xffff;
    }
    c
}

/// Offset of the checksum field in the L4 header.
#[inline(always)]
fn csum_field(h: &Hdrs) -> usize {
    h.l4 + if h.proto == IP_PROTO_TCP { 16 } else { 6 }
}

/// Compute the L4 checksum of a packet in place, over its whole chain.
fn fill_csum_in_place(bufs: &mut Buffers, bi: u32, h: &Hdrs) -> Result<(), u16> {
    let f = csum_field(h);
    let ps = {
        let mut b = bufs.get(bi);
        let d = b.data_mut();
        d[f] = 0;
        d[f + 1] = 0;
        pseudo(h, d, h.ip_end - h.l4)
    };
    let (acc, covered) = chain_sum(bufs, bi, h.l4, h.ip_end);
    if covered != h.ip_end - h.l4 {
        return Err(gso_error::BAD_LENGTH);
    }
    let mut c = fold(acc + ps);
    if c == 0 && h.proto == IP_PROTO_UDP {
        c = 0xffff;
    }
    bufs.get(bi).data_mut()[f..f + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// The headers of a packet with an offload to do: its own, or for a tunnel's packet
/// (`TUNNEL_OFFLOAD`) the inner ones and the outer IP header. `l2`: it starts at an Ethernet
/// header.
pub(super) fn parse_offload(
    bufs: &mut Buffers,
    bi: u32,
    l2: bool,
) -> Result<(Hdrs, Option<Outer>), u16> {
    let b = bufs.get(bi);
    let (total, gso) = (b.total_len(), b.meta.flags & flags::GSO != 0);
    if b.meta.flags & flags::TUNNEL_OFFLOAD != 0 {
        let at = b.meta.tunnel_inner as usize;
        parse_tunnel(b.data(), total, l2, gso, at).map(|(h, o)| (h, Some(o)))
    } else {
        Ok((parse(b.data(), total, l2, gso)?, None))
    }
}

/// Do a packet's offload in place (its checksum, and over an IPv6 tunnel the outer UDP one)
/// and clear its marks: a checksum-only packet, or a super-frame that fits one segment.
pub(super) fn finish_in_place(
    bufs: &mut Buffers,
    bi: u32,
    h: &Hdrs,
    outer: Option<Outer>,
) -> Result<(), u16> {
    fill_csum_in_place(bufs, bi, h)?;
    if let Some(o) = outer.filter(|o| o.v6 && o.udp) {
        let udp = Hdrs {
            l3: o.l3,
            l4: o.l4,
            l4_end: o.l4 + 8,
            ip_end: h.ip_end,
            v6: true,
            proto: IP_PROTO_UDP,
        };
        fill_csum_in_place(bufs, bi, &udp)?;
    }
    let m = bufs.meta(bi);
    m.flags &= !(flags::GSO | flags::OFFLOAD_L4_CKSUM | flags::TUNNEL_OFFLOAD);
    m.gso_size = 0;
    Ok(())
}

/// Read position in a source chain.
#[derive(Clone, Copy)]
struct Cursor {
    bi: u32,
    off: usize,
    hops: usize,
}

/// Packets waiting to go out on one interface.
struct TxBatch {
    sw: u32,
    pkts: Vec<u32>,
    bytes: Vec<u32>,
}

/// The gso-segment node (one per worker).
pub struct GsoSegment {
    batch: TxBatch,
}

impl Default for GsoSegment {
    fn default() -> Self {
        Self {
            batch: TxBatch {
                sw: u32::MAX,
                pkts: Vec::with_capacity(MAX_VECTOR),
                bytes: Vec::with_capacity(MAX_VECTOR),
            },
        }
    }
}

impl GsoSegment {
    /// Queue a finished packet for `sw`, sending what is queued first when the batch is for
    /// another interface or full.
    #[inline]
    fn queue(&mut self, cx: &mut Ctx<'_>, sw: u32, bi: u32, len: usize) {
        if self.batch.sw != sw || self.batch.pkts.len() >= MAX_VECTOR {
            self.flush(cx);
            self.batch.sw = sw;
        }
        self.batch.pkts.push(bi);
        self.batch.bytes.push(len as u32);
    }

    /// Send the batch on its interface; free and count what the queue did not take.
    fn flush(&mut self, cx: &mut Ctx<'_>) {
        let n = self.batch.pkts.len();
        if n == 0 {
            return;
        }
        let sw = self.batch.sw;
        let sent = match cx.tx.get(sw) {
            Some((q, node)) => {
                let node = *node;
                let t0 = clocks();
                let sent = q.tx(cx.bufs, &self.batch.pkts).min(n);
                let dt = clocks() - t0;
                cx.charge(node, sent as u64, dt);
                sent
            }
            None => 0,
        };
        let code = if sent == 0 && cx.tx.get(sw).is_none() {
            gso_error::NO_TXQ
        } else {
            gso_error::TX_FULL
        };
        if sent < n {
            cx.bufs.free(&self.batch.pkts[sent..]);
            cx.count(code, (n - sent) as u64);
        }
        if let Some(c) = cx.stats.ifs.get(sw as usize) {
            if sent > 0 {
                let bytes: u64 = self.batch.bytes[..sent].iter().map(|&b| b as u64).sum();
                c.tx_packets.add(sent as u64);
                c.tx_bytes.add(bytes);
            }
            if sent < n {
                c.tx_errors.add((n - sent) as u64);
            }
        }
        self.batch.pkts.clear();
        self.batch.bytes.clear();
    }

    /// Handle one packet. Ok: it (or its segments) went to the tx batch or was freed here.
    /// Err: drop it with that reason.
    fn one(&mut self, cx: &mut Ctx<'_>, bi: u32) -> Result<(), u16> {
        let ifs = cx.tables.ifs.get();
        let (sw, gso, mss, total) = {
            let b = cx.bufs.get(bi);
            (
                b.meta.tx_sw_if_index,
                b.meta.flags & flags::GSO != 0,
                b.meta.gso_size as usize,
                b.total_len(),
            )
        };
        let dev = ifs.fast(sw).flags;
        if dev & if_flags::ADMIN_UP == 0 {
            return Err(gso_error::DOWN);
        }
        if cx.tx.get(sw).is_none() {
            return Err(gso_error::NO_TXQ);
        }
        if gso && mss == 0 {
            return Err(gso_error::GSO_SIZE_ZERO);
        }
        let (h, outer) = parse_offload(cx.bufs, bi, dev & if_flags::L2 != 0)?;
        if !gso || h.ip_end - h.l4_end <= mss {
            finish_in_place(cx.bufs, bi, &h, outer)?;
            cx.count(gso_error::CSUM, 1);
            self.queue(cx, sw, bi, total);
            return Ok(());
        }
        segment(cx, bi, (&h, outer.as_ref()), mss, self);
        cx.bufs.free(&[bi]);
        Ok(())
    }
}

/// Where segments go: gso-segment's tx batch, or the feature arc (gso-ip4/6).
pub(super) trait SegmentSink {
    /// Take a finished segment of `len` bytes cut from the packet whose metadata was `orig`.
    fn put(&mut self, cx: &mut Ctx<'_>, seg: u32, len: usize, orig: &BufferMeta);
    /// Give back the buffers held (queued segments) so that a failed allocation can be tried
    /// again; false when none were held.
    fn relieve(&mut self, cx: &mut Ctx<'_>) -> bool;
}

/// How many segments a super-frame parsed as `h` becomes at `mss`.
pub(super) fn segment_count(h: &Hdrs, mss: usize) -> usize {
    (h.ip_end - h.l4_end).div_ceil(mss)
}

/// Cut the super-frame `bi` into segments and hand them to `sink`; `bi` stays the caller's.
/// Counts what could not be built.
pub(super) fn segment(
    cx: &mut Ctx<'_>,
    bi: u32,
    (h, outer): (&Hdrs, Option<&Outer>),
    mss: usize,
    sink: &mut impl SegmentSink,
) {
    let hl = h.l4_end;
    let mut tpl = [0u8; MAX_HDR];
    let orig = {
        let b = cx.bufs.get(bi);
        tpl[..hl].copy_from_slice(&b.data()[..hl]);
        *b.meta
    };
    let tpl = &mut tpl[..hl];
    let payload = h.ip_end - hl;
    let nseg = payload.div_ceil(mss);
    let (l3, l4) = (h.l3, h.l4);
    let seq0 = u32::from_be_bytes([tpl[l4 + 4], tpl[l4 + 5], tpl[l4 + 6], tpl[l4 + 7]]);
    let id0 = be16(tpl, l3 + 4);
    let outer_id0 = outer.map_or(0, |o| be16(tpl, o.l3 + 4));
    let tcp_flags = tpl[l4 + 13];
    tpl[l4 + 16] = 0;
    tpl[l4 + 17] = 0;
    let mut src = Cursor {
        bi,
        off: hl,
        hops: 0,
    };
    let mut made = 0u64;
    for i in 0..nseg {
        let len = mss.min(payload - i * mss);
        let last = i + 1 == nseg;
        // Per-segment header fields.
        if h.v6 {
            let pl = (hl - l3 - IP6_HDR + len) as u16;
            tpl[l3 + 4..l3 + 6].copy_from_slice(&pl.to_be_bytes());
        } else {
            let tl = (hl - l3 + len) as u16;
            tpl[l3 + 2..l3 + 4].copy_from_slice(&tl.to_be_bytes());
            tpl[l3 + 4..l3 + 6].copy_from_slice(&id0.wrapping_add(i as u16).to_be_bytes());
            tpl[l3 + 10] = 0;
            tpl[l3 + 11] = 0;
            let c = fold(ones_sum(&tpl[l3..l4], 0));
            tpl[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        }
        let seq = seq0.wrapping_add((i * mss) as u32);
        tpl[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
        let mut fl = tcp_flags;
        if !last {
            fl &= !(0x01 | 0x08); // FIN, PSH
        }
        if i > 0 {
            fl &= !0x80; // CWR
        }
        tpl[l4 + 13] = fl;
        if let Some(o) = outer {
            set_outer(tpl, o, len, outer_id0.wrapping_add(i as u16));
        }
        let at = src;
        let mut built = build_segment(cx.bufs, tpl, h, len, &mut src);
        if built == Err(gso_error::NO_BUFFERS) && sink.relieve(cx) {
            // Segments waiting in the sink held buffers: it sent them (drivers that copy
            // free them at once); try once more.
            src = at;
            built = build_segment(cx.bufs, tpl, h, len, &mut src);
        }
        match built {
            Ok(seg) => {
                if let Some(o) = outer.filter(|o| o.v6 && o.udp) {
                    let c = outer_udp6_csum(tpl, o, h, len);
                    cx.bufs.get(seg).data_mut()[o.l4 + 6..o.l4 + 8]
                        .copy_from_slice(&c.to_be_bytes());
                }
                // The packet's own (outer) headers, as a receiving driver would set them.
                let (l3, l4) = outer.map_or((l3, l4), |o| (o.l3, o.l4));
                let m = cx.bufs.meta(seg);
                m.l2_hdr_offset = m.current_data;
                m.l3_hdr_offset = m.current_data + l3 as i16;
                m.l4_hdr_offset = m.current_data + l4 as i16;
                sink.put(cx, seg, hl + len, &orig);
                made += 1;
            }
            Err(code) => {
                cx.count(code, (nseg - i) as u64);
                break;
            }
        }
    }
    cx.count(gso_error::SEGMENTED, 1);
    cx.count(gso_error::SEGMENTS, made);
}

/// Build one segment: headers `tpl` (TCP checksum zero) then `len` payload bytes from `src`,
/// in as many fresh buffers as it takes; the TCP checksum is computed on the way. Returns the
/// head, or an error with nothing left allocated.
fn build_segment(
    bufs: &mut Buffers,
    tpl: &[u8],
    h: &Hdrs,
    len: usize,
    src: &mut Cursor,
) -> Result<u32, u16> {
    let hl = tpl.len();
    let n_bufs = bufs.pool().capacity();
    let head = bufs.alloc_one().ok_or(gso_error::NO_BUFFERS)?;
    if bufs.get(head).capacity() < hl {
        bufs.free(&[head]);
        return Err(gso_error::BAD_LENGTH);
    }
    bufs.get(head).tail_room_mut()[..hl].copy_from_slice(tpl);
    let (mut tail, mut dlen) = (head, hl);
    // The TCP header is 4-byte aligned in length, so payload byte k is at an offset of the
    // checksummed range with the parity of k.
    let mut acc = sum16(&tpl[h.l4..]) + pseudo(h, tpl, hl - h.l4 + len);
    let mut done = 0;
    let fail = |bufs: &mut Buffers, tail: u32, dlen: usize, code: u16| -> Result<u32, u16> {
        bufs.meta(tail).current_length = dlen as u16;
        bufs.free(&[head]);
        Err(code)
    };
    while done < len {
        // Source: step to the next buffer when this one is used up.
        let slen = bufs.meta(src.bi).current_length as usize;
        if src.off >= slen {
            let m = bufs.meta(src.bi);
            let next = m.next_buffer;
            if m.flags & flags::NEXT_PRESENT == 0 || src.hops >= MAX_CHAIN || next >= n_bufs {
                return fail(bufs, tail, dlen, gso_error::BAD_LENGTH);
            }
            src.bi = next;
            src.off = 0;
            src.hops += 1;
            continue;
        }
        // Destination: chain a fresh buffer when this one is full.
        let cap = bufs.get(tail).capacity();
        if dlen >= cap {
            let Some(nb) = bufs.alloc_one() else {
                return fail(bufs, tail, dlen, gso_error::NO_BUFFERS);
            };
            let m = bufs.meta(tail);
            m.current_length = dlen as u16;
            m.flags |= flags::NEXT_PRESENT;
            m.next_buffer = nb;
            tail = nb;
            dlen = 0;
            continue;
        }
        let Some((s, mut d)) = bufs.get2(src.bi, tail) else {
            return fail(bufs, tail, dlen, gso_error::BAD_LENGTH);
        };
        let take = (slen - src.off).min(cap - dlen).min(len - done);
        let out = &mut d.tail_room_mut()[dlen..dlen + take];
        out.copy_from_slice(&s.data()[src.off..src.off + take]);
        acc = add_part(acc, out, done);
        src.off += take;
        dlen += take;
        done += take;
    }
    bufs.meta(tail).current_length = dlen as u16;
    let c = fold(acc);
    let f = h.l4 + 16;
    let mut b = bufs.get(head);
    b.data_mut()[f..f + 2].copy_from_slice(&c.to_be_bytes());
    let first = b.meta.current_length as usize;
    b.meta.total_length_not_including_first_buffer = (hl + len - first) as u32;
    Ok(head)
}

impl SegmentSink for GsoSegment {
    fn put(&mut self, cx: &mut Ctx<'_>, seg: u32, len: usize, orig: &BufferMeta) {
        let m = cx.bufs.meta(seg);
        m.tx_sw_if_index = orig.tx_sw_if_index;
        m.rx_sw_if_index = orig.rx_sw_if_index;
        if orig.flags & flags::TUNNEL_OFFLOAD != 0 {
            m.flags |= flags::UDP_TUNNEL_SEGMENT;
        }
        self.queue(cx, orig.tx_sw_if_index, seg, len);
    }
    fn relieve(&mut self, cx: &mut Ctx<'_>) -> bool {
        let held = !self.batch.pkts.is_empty();
        self.flush(cx);
        held
    }
}

impl Node for GsoSegment {
    fn info(&self) -> NodeInfo {
        NodeInfo::internal("gso-segment", next::NAMES, gso_error::NAMES)
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        for (i, &bi) in bufs.iter().enumerate() {
            nexts[i] = match self.one(cx, bi) {
                Ok(()) => CONSUMED,
                Err(code) => {
                    cx.bufs.meta(bi).error = cx.error(code);
                    next::DROP
                }
            };
        }
        self.flush(cx);
    }
}
