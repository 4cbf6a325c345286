//! IPv4: ip4-input, ip4-lookup, ip4-rewrite, ip4-local, ip4-icmp-error.

use crate::buffer::{flags, for_each_prefetched, Buf};
use crate::feature::ArcEdges;
use crate::fib::{LEAF_LIMIT, LEAF_MISS};
use crate::graph::{Node, NodeInfo, MAX_VECTOR};
use crate::runtime::{Ctx, Errors};
use crate::tables::{if_flags, AdjKind, IfFast, WorkerTables, UNREACH_LB};
use crate::wire::{self, Ip4Hdr, Ip4HdrMut};

/// ICMP types and codes rvpp sends.
pub mod icmp {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACH: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const NET_UNREACH: u8 = 0;
    pub const HOST_UNREACH: u8 = 1;
    pub const PROTO_UNREACH: u8 = 2;
    pub const PORT_UNREACH: u8 = 3;
    pub const FRAG_NEEDED: u8 = 4;
    pub const ADMIN_PROHIBITED: u8 = 13;
}

/// Ask ip4-icmp-error to answer this packet with (type, code, data): stored in opaque[0..3].
#[inline]
pub fn set_icmp_error(b: &mut Buf<'_>, ty: u8, code: u8, data: u32) {
    b.meta.opaque[0] = ty as u32;
    b.meta.opaque[1] = code as u32;
    b.meta.opaque[2] = data;
}

// ---------------------------------------------------------------------------------------------
// ip4-input

/// ip4-input starts the ip4-unicast arc: the builder appends the arc's edges to these.
#[derive(Default)]
pub struct Ip4Input {
    arc: ArcEdges,
}

crate::next_edges! {
    mod input_next {
        DROP => "error-drop",
        LOOKUP => "ip4-lookup",
        ICMP_ERROR => "ip4-icmp-error",
    }
}

crate::node_errors! {
    pub mod input_error {
        TOO_SHORT => "ip4 header too short",
        BAD_VERSION => "ip4 bad version",
        BAD_HDR_LEN => "ip4 bad header length",
        BAD_CHECKSUM => "ip4 bad header checksum",
        BAD_LENGTH => "ip4 bad length",
        TTL_EXPIRED => "ip4 ttl expired",
        NOT_ENABLED => "ip4 not enabled on interface",
        OPTIONS => "ip4 packets with options (counted, forwarded)",
    }
}

impl Node for Ip4Input {
    fn info(&self) -> NodeInfo {
        NodeInfo::internal("ip4-input", input_next::NAMES, input_error::NAMES)
    }

    fn attach_arc(&mut self, arc: ArcEdges) {
        self.arc = arc;
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        let errs = cx.errs();
        let ifs = cx.tables.ifs.get();
        let mut last_if = u32::MAX;
        // The rx interface's FIB when it has IPv4 on and no features (the short way).
        let mut plain_fib = None;
        let mut view = cx.bufs.view();
        let mut v = view.vector(bufs);
        let arc = &self.arc;
        let n = v.len().min(nexts.len());
        for_each_prefetched!(v, n, IN_PREFETCH_AHEAD, |i| {
            nexts[i] = 'pkt: {
                let rx = v.meta(i).rx_sw_if_index;
                if rx != last_if {
                    last_if = rx;
                    let f = ifs.fast(rx);
                    plain_fib =
                        (f.flags & if_flags::IP4 != 0 && f.feat_ip4 == 0).then_some(f.ip4_fib);
                }
                if let Some(fib) = plain_fib {
                    let mut b = v.get(i);
                    if plain_header_ok(&mut b) {
                        let m = &mut *b.meta;
                        m.fib_index = fib;
                        m.l3_hdr_offset = m.current_data;
                        break 'pkt input_next::LOOKUP;
                    }
                }
                input_slow(&mut v.get(i), &ifs.fast(rx), arc, errs)
            };
        });
    }

    fn trace(&self, b: &Buf<'_>) -> String {
        trace_ip4(b)
    }
}

/// ip4-input's every case, out of the hot loop.
#[inline(never)]
fn input_slow(b: &mut Buf<'_>, fast: &IfFast, arc: &ArcEdges, errs: Errors<'_>) -> u16 {
    match check(b, fast.flags) {
        Ok(options) => {
            if options {
                errs.count(input_error::OPTIONS, 1);
            }
            b.meta.fib_index = fast.ip4_fib;
            b.meta.l3_hdr_offset = b.meta.current_data;
            if fast.feat_ip4 == 0 {
                input_next::LOOKUP
            } else {
                arc.enter(b.meta, fast.feat_ip4)
            }
        }
        Err(input_error::TTL_EXPIRED) => {
            b.meta.fib_index = fast.ip4_fib;
            set_icmp_error(b, icmp::TIME_EXCEEDED, 0, 0);
            errs.count(input_error::TTL_EXPIRED, 1);
            input_next::ICMP_ERROR
        }
        Err(e) => {
            b.meta.error = errs.error(e);
            input_next::DROP
        }
    }
}

/// Buffers ahead that ip4-input prefetches.
const IN_PREFETCH_AHEAD: usize = 8;

/// The common case of `check` in one pass: a 20-byte header with a good checksum, TTL non-zero
/// and total length exactly the buffer's, or shorter (link padding, trimmed as `check` does).
/// False: anything else, which `check` decides; when this returns true `check` would have
/// returned Ok(false) and made the same change.
#[inline(always)]
fn plain_header_ok(b: &mut Buf<'_>) -> bool {
    let Some(h) = b.head::<{ wire::IP4_HDR }>() else {
        return false;
    };
    if h[0] != 0x45 || h[8] == 0 || !wire::ip4_header20_ok(h) {
        return false;
    }
    let tl = u16::from_be_bytes([h[2], h[3]]);
    let len = b.meta.current_length;
    if tl == len {
        return true;
    }
    if tl < wire::IP4_HDR as u16 || tl > len || b.meta.flags & flags::NEXT_PRESENT != 0 {
        return false;
    }
    b.set_len(tl as usize);
    true
}

/// Validate an IPv4 header in place; trims link padding. Ok(has_options).
#[inline(always)]
fn check(b: &mut Buf<'_>, if_flags_v: u16) -> Result<bool, u16> {
    if if_flags_v & if_flags::IP4 == 0 {
        return Err(input_error::NOT_ENABLED);
    }
    let d = b.data();
    let Some(h) = Ip4Hdr::new(d) else {
        return Err(input_error::TOO_SHORT);
    };
    let len = d.len();
    // The common case in one pass: no options, whole packet in this buffer, good checksum,
    // TTL non-zero, length exactly the buffer's (or shorter: link padding).
    if h.0[0] == 0x45 {
        let tl = h.total_len() as usize;
        if !wire::ip4_header20_ok(h.0) {
            return Err(input_error::BAD_CHECKSUM);
        }
        if h.ttl() == 0 {
            return Err(input_error::TTL_EXPIRED);
        }
        if tl == len {
            return Ok(false);
        }
        if tl < wire::IP4_HDR || tl > b.total_len() {
            return Err(input_error::BAD_LENGTH);
        }
        if tl < len && b.meta.flags & flags::NEXT_PRESENT == 0 {
            b.set_len(tl);
        }
        return Ok(false);
    }
    if h.version() != 4 {
        return Err(input_error::BAD_VERSION);
    }
    let hl = h.header_len();
    if hl < wire::IP4_HDR || hl > len {
        return Err(input_error::BAD_HDR_LEN);
    }
    if !wire::ip4_header_ok(&d[..hl]) {
        return Err(input_error::BAD_CHECKSUM);
    }
    let tl = h.total_len() as usize;
    if tl < hl || tl > b.total_len() {
        return Err(input_error::BAD_LENGTH);
    }
    if h.ttl() == 0 {
        return Err(input_error::TTL_EXPIRED);
    }
    if tl < len && b.meta.flags & flags::NEXT_PRESENT == 0 {
        b.set_len(tl);
    }
    Ok(true)
}

pub fn trace_ip4(b: &Buf<'_>) -> String {
    match Ip4Hdr::new(b.data()) {
        Some(h) => format!(
            "IP4: {} -> {} proto {} ttl {} len {} fib {}",
            wire::fmt_ip4(h.src()),
            wire::fmt_ip4(h.dst()),
            h.protocol(),
            h.ttl(),
            h.total_len(),
            b.meta.fib_index
        ),
        None => "IP4: (truncated)".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// ip4-lookup

#[derive(Default)]
pub struct Ip4Lookup {
    dsts: Vec<u32>,
    leaves: Vec<u32>,
    /// ip4-lookup starts the ip4-local arc (packets for one of our addresses).
    arc: ArcEdges,
}

/// A packet for us: onto the ip4-local arc, or straight to ip4-local.
fn local_next(arc: &ArcEdges, meta: &mut crate::buffer::BufferMeta, tables: &WorkerTables) -> u16 {
    crate::nodes::local_next(arc, meta, tables, lookup_next::LOCAL, |f| f.feat_ip4_local)
}

crate::next_edges! {
    mod lookup_next {
        DROP => "error-drop",
        REWRITE => "ip4-rewrite",
        LOCAL => "ip4-local",
        ARP => "ip4-arp",
        ICMP_ERROR => "ip4-icmp-error",
        RELOOKUP => "ip4-lookup",
    }
}

crate::node_errors! {
    pub mod lookup_error {
        NO_FIB => "ip4 no such fib",
        DROP_ADJ => "ip4 adjacency drop",
        NO_ROUTE => "ip4 no route to destination",
        PROHIBITED => "ip4 administratively prohibited",
        PUNT => "ip4 punt adjacency",
        LOOKUP_LOOP => "ip4 table-lookup loop",
    }
}

/// Flow hash over addresses, protocol and ports, for ECMP.
#[inline]
pub fn flow_hash4(d: &[u8]) -> u32 {
    let Some(h) = Ip4Hdr::new(d) else { return 0 };
    let mut x = (h.src() as u64) << 32 | h.dst() as u64;
    x ^= (h.protocol() as u64) << 17;
    let hl = h.header_len();
    if matches!(h.protocol(), wire::IP_PROTO_TCP | wire::IP_PROTO_UDP) && d.len() >= hl + 4 {
        x ^= (u32::from_be_bytes([d[hl], d[hl + 1], d[hl + 2], d[hl + 3]]) as u64).rotate_left(29);
    }
    super::flow_hash_finish(x)
}

impl Node for Ip4Lookup {
    fn info(&self) -> NodeInfo {
        NodeInfo::internal("ip4-lookup", lookup_next::NAMES, lookup_error::NAMES)
    }

    fn attach_arc(&mut self, arc: ArcEdges) {
        self.arc = arc;
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        let errs = cx.errs();
        let n = bufs.len();
        if self.dsts.len() < MAX_VECTOR {
            self.dsts.resize(MAX_VECTOR, 0);
            self.leaves.resize(MAX_VECTOR, 0);
        }
        let fibs = cx.tables.fibs.get();
        let fwd = cx.tables.fwd.get();
        // Pass 1: destinations; the FIB index is usually the same for the whole vector.
        let mut view = cx.bufs.view();
        let mut v = view.vector(bufs);
        let fib_index = if v.is_empty() { 0 } else { v.meta(0).fib_index };
        let mut differ = 0u32;
        for (i, dst) in self.dsts[..n].iter_mut().enumerate().take(v.len()) {
            let b = v.get(i);
            *dst = b
                .head::<{ wire::IP4_HDR }>()
                .map_or(0, |h| u32::from_be_bytes([h[16], h[17], h[18], h[19]]));
            differ |= b.meta.fib_index ^ fib_index;
        }
        let same_fib = differ == 0;
        // Pass 2: the lookups, batched so the FIB can overlap its memory loads.
        if same_fib {
            match fibs.ip4.get(fib_index as usize).and_then(|f| f.as_ref()) {
                Some(fib) => fib.lookup_batch(&self.dsts[..n], &mut self.leaves[..n]),
                None => self.leaves[..n].fill(LEAF_MISS - 1),
            }
        } else {
            for i in 0..v.len() {
                let fi = v.meta(i).fib_index;
                self.leaves[i] = match fibs.ip4.get(fi as usize).and_then(|f| f.as_ref()) {
                    Some(fib) => fib.lookup(self.dsts[i]),
                    None => LEAF_MISS - 1,
                };
            }
        }
        // Pass 3: load-balance and adjacency. Neighbouring packets often share a leaf: the
        // last leaf that resolved to a single-path rewrite is remembered with its adjacency.
        // LEAF_LIMIT: no FIB yields it, so nothing matches before the first rewrite is seen.
        let (mut rw_leaf, mut rw_adj) = (LEAF_LIMIT, 0u32);
        let n = n.min(nexts.len()).min(v.len());
        let leaves = &self.leaves[..n];
        for i in 0..n {
            let leaf = leaves[i];
            if leaf == rw_leaf {
                v.meta(i).adj_index = rw_adj;
                nexts[i] = lookup_next::REWRITE;
                continue;
            }
            if leaf != LEAF_MISS - 1 {
                let lb = fwd.lb(if leaf == LEAF_MISS { UNREACH_LB } else { leaf });
                if lb.n_buckets <= 1 {
                    // The common case, a single path to a rewrite: metadata only.
                    let adj_i = lb.buckets[0];
                    if fwd.adj(adj_i).kind == AdjKind::Rewrite {
                        v.meta(i).adj_index = adj_i;
                        nexts[i] = lookup_next::REWRITE;
                        (rw_leaf, rw_adj) = (leaf, adj_i);
                        continue;
                    }
                }
            }
            nexts[i] = lookup_slow(&mut v.get(i), leaf, &self.arc, cx.tables, errs);
        }
    }

    fn trace(&self, b: &Buf<'_>) -> String {
        format!(
            "fib {} adj {} flow hash 0x{:08x}",
            b.meta.fib_index, b.meta.adj_index, b.meta.flow_hash
        )
    }
}

/// ip4-lookup's every case but a single-path rewrite, out of the hot loop.
#[inline(never)]
fn lookup_slow(
    b: &mut Buf<'_>,
    leaf: u32,
    arc: &ArcEdges,
    tables: &WorkerTables,
    errs: Errors<'_>,
) -> u16 {
    let fwd = tables.fwd.get();
    if leaf == LEAF_MISS - 1 {
        b.meta.error = errs.error(lookup_error::NO_FIB);
        return lookup_next::DROP;
    }
    let lb = fwd.lb(if leaf == LEAF_MISS { UNREACH_LB } else { leaf });
    let adj_i = if lb.n_buckets <= 1 {
        lb.buckets[0]
    } else {
        let h = flow_hash4(b.data());
        b.meta.flow_hash = h;
        lb.pick(h)
    };
    b.meta.adj_index = adj_i;
    let adj = fwd.adj(adj_i);
    match adj.kind {
        AdjKind::Rewrite => lookup_next::REWRITE,
        AdjKind::Local => local_next(arc, b.meta, tables),
        AdjKind::Glean | AdjKind::Incomplete => lookup_next::ARP,
        AdjKind::Unreachable => {
            set_icmp_error(b, icmp::DEST_UNREACH, icmp::NET_UNREACH, 0);
            errs.count(lookup_error::NO_ROUTE, 1);
            lookup_next::ICMP_ERROR
        }
        AdjKind::Prohibit => {
            set_icmp_error(b, icmp::DEST_UNREACH, icmp::ADMIN_PROHIBITED, 0);
            errs.count(lookup_error::PROHIBITED, 1);
            lookup_next::ICMP_ERROR
        }
        AdjKind::Punt => {
            b.meta.error = errs.error(lookup_error::PUNT);
            lookup_next::DROP
        }
        AdjKind::Lookup => relookup(b, adj.lookup_fib, errs.error(lookup_error::LOOKUP_LOOP)),
        AdjKind::Drop => {
            b.meta.error = errs.error(lookup_error::DROP_ADJ);
            lookup_next::DROP
        }
    }
}

/// Send a packet through ip4-lookup again, in table `fib` (edge 5 of ip4-lookup), unless it
/// has been around too often.
#[inline]
fn relookup(b: &mut Buf<'_>, fib: u32, loop_error: u16) -> u16 {
    if b.meta.relookups >= crate::tables::MAX_RELOOKUPS {
        b.meta.error = loop_error;
        return lookup_next::DROP;
    }
    b.meta.relookups += 1;
    b.meta.fib_index = fib;
    lookup_next::RELOOKUP
}

// ---------------------------------------------------------------------------------------------
// ip4-rewrite

/// ip4-rewrite starts the ip4-output arc (features of the adjacency's tx interface).
#[derive(Default)]
pub struct Ip4Rewrite {
    arc: ArcEdges,
}

crate::next_edges! {
    mod rewrite_next {
        DROP => "error-drop",
        OUTPUT => "interface-output",
        ICMP_ERROR => "ip4-icmp-error",
    }
}

crate::node_errors! {
    pub mod rewrite_error {
        TTL_EXPIRED => "ip4 ttl <= 1",
        MTU_EXCEEDED => "ip4 mtu exceeded, fragmentation not supported (dropped)",
        FRAG_NEEDED_DF => "ip4 mtu exceeded with DF set (ICMP fragmentation needed)",
        NOT_REWRITE => "ip4 adjacency is not a rewrite",
        NO_HEADROOM => "ip4 no headroom for rewrite",
    }
}

impl Node for Ip4Rewrite {
    fn info(&self) -> NodeInfo {
        NodeInfo::internal("ip4-rewrite", rewrite_next::NAMES, rewrite_error::NAMES)
    }

    fn attach_arc(&mut self, arc: ArcEdges) {
        self.arc = arc;
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        let errs = cx.errs();
        let fwd = cx.tables.fwd.get();
        let mut view = cx.bufs.view();
        let mut v = view.vector(bufs);
        let arc = &self.arc;
        // The adjacency of the previous packet, when it is a plain Ethernet rewrite.
        let mut last: Option<(u32, EthRewrite)> = None;
        let n = v.len().min(nexts.len());
        for_each_prefetched!(v, n, RW_PREFETCH_AHEAD, |i| {
            nexts[i] = 'pkt: {
                let ai = v.meta(i).adj_index;
                let rw = match last {
                    Some((a, rw)) if a == ai => Some(rw),
                    _ => {
                        let rw = EthRewrite::of(fwd.adj(ai));
                        last = rw.map(|rw| (ai, rw));
                        rw
                    }
                };
                if let Some(rw) = rw {
                    if rewrite_fast(&mut v.get(i), &rw) {
                        break 'pkt rewrite_next::OUTPUT;
                    }
                }
                rewrite_slow(&mut v.get(i), fwd.adj(ai), arc, errs)
            };
        });
    }

    fn trace(&self, b: &Buf<'_>) -> String {
        format!(
            "tx sw_if_index {} adj {} {}",
            b.meta.tx_sw_if_index,
            b.meta.adj_index,
            crate::runtime::hex_line(&b.data()[..b.data().len().min(34)])
        )
    }
}

/// ip4-rewrite's every case, out of the hot loop.
#[inline(never)]
fn rewrite_slow(
    b: &mut Buf<'_>,
    adj: &crate::tables::Adjacency,
    arc: &ArcEdges,
    errs: Errors<'_>,
) -> u16 {
    let (mut next, err) = rewrite_one(b, adj);
    if next != rewrite_next::OUTPUT {
        if next == rewrite_next::DROP {
            b.meta.error = errs.error(err);
        } else {
            errs.count(err, 1);
        }
    } else if adj.out_features != 0 {
        // The tx interface has ip4-output features: the one test a packet pays.
        next = arc.enter(b.meta, adj.out_features);
    }
    next
}

/// Buffers ahead that ip4-rewrite prefetches.
const RW_PREFETCH_AHEAD: usize = 8;

/// A rewrite adjacency with a 14-byte Ethernet header and no ip4-output features on its tx
/// interface, in the form the fast path uses.
#[derive(Clone, Copy)]
struct EthRewrite {
    hdr: [u8; wire::ETH_HDR],
    mtu: u16,
    sw_if_index: u32,
}

impl EthRewrite {
    #[inline(always)]
    fn of(adj: &crate::tables::Adjacency) -> Option<Self> {
        (adj.kind == AdjKind::Rewrite
            && adj.rewrite_len as usize == wire::ETH_HDR
            && adj.out_features == 0)
            .then(|| Self {
                hdr: *adj.rewrite.first_chunk().expect("24 >= 14"),
                mtu: adj.mtu,
                sw_if_index: adj.sw_if_index,
            })
    }
}

/// The common case of `rewrite_one`: a forwarded (not locally originated, not GSO) packet
/// with TTL > 1 that fits the MTU, headroom for the Ethernet header and its IPv4 header in
/// the buffer. False, changing nothing: anything else, which `rewrite_one` decides; when this
/// returns true `rewrite_one` would have returned OUTPUT with the same changes.
#[inline(always)]
fn rewrite_fast(b: &mut Buf<'_>, rw: &EthRewrite) -> bool {
    if b.meta.flags & (flags::LOCALLY_ORIGINATED | flags::GSO) != 0 {
        return false;
    }
    const W: usize = wire::ETH_HDR + wire::IP4_HDR;
    let Some(w) = b.window_mut::<{ wire::ETH_HDR }, W>() else {
        return false;
    };
    let (l2, ip) = w.split_at_mut(wire::ETH_HDR);
    let (Some(l2), Some(mut h)) = (
        l2.first_chunk_mut::<{ wire::ETH_HDR }>(),
        Ip4HdrMut::new(ip),
    ) else {
        return false;
    };
    if h.view().ttl() <= 1 || h.view().total_len() > rw.mtu {
        return false;
    }
    h.dec_ttl();
    *l2 = rw.hdr;
    let m = &mut *b.meta;
    m.current_data -= wire::ETH_HDR as i16;
    m.current_length += wire::ETH_HDR as u16;
    m.tx_sw_if_index = rw.sw_if_index;
    true
}

#[inline(always)]
fn rewrite_one(b: &mut Buf<'_>, adj: &crate::tables::Adjacency) -> (u16, u16) {
    if adj.kind != AdjKind::Rewrite {
        return (rewrite_next::DROP, rewrite_error::NOT_REWRITE);
    }
    let fl = b.meta.flags;
    let local = fl & flags::LOCALLY_ORIGINATED != 0;
    // A GSO super-frame leaves as segments: what must fit the MTU is one segment.
    let seg_len = if fl & flags::GSO != 0 {
        Some(tcp_header_end(b.data()) + b.meta.gso_size as usize)
    } else {
        None
    };
    let rl = adj.rewrite_len as usize;
    let s = b.start_offset();
    if s < rl {
        return (rewrite_next::DROP, rewrite_error::NO_HEADROOM);
    }
    // One slice from the rewrite's start through the IPv4 header: every access below is
    // within it, so the checks are done once.
    let Some(w) = b.raw_mut().get_mut(s - rl..s + wire::IP4_HDR) else {
        return (rewrite_next::DROP, rewrite_error::NOT_REWRITE);
    };
    let (l2, ip) = w.split_at_mut(rl);
    let Some(mut h) = Ip4HdrMut::new(ip) else {
        return (rewrite_next::DROP, rewrite_error::NOT_REWRITE);
    };
    let (ttl, total_len, df) = (h.view().ttl(), h.view().total_len(), h.view().dont_frag());
    let fit_len = seg_len.map_or(total_len as usize, |l| l.min(total_len as usize));
    if !local && ttl <= 1 {
        set_icmp_error(b, icmp::TIME_EXCEEDED, 0, 0);
        return (rewrite_next::ICMP_ERROR, rewrite_error::TTL_EXPIRED);
    }
    if fit_len > adj.mtu as usize {
        if df {
            set_icmp_error(b, icmp::DEST_UNREACH, icmp::FRAG_NEEDED, adj.mtu as u32);
            return (rewrite_next::ICMP_ERROR, rewrite_error::FRAG_NEEDED_DF);
        }
        return (rewrite_next::DROP, rewrite_error::MTU_EXCEEDED);
    }
    if !local {
        h.dec_ttl();
    }
    if rl == wire::ETH_HDR {
        // The usual case as a fixed-size copy (no memcpy call).
        if let (Some(dst), Some(src)) = (
            l2.first_chunk_mut::<{ wire::ETH_HDR }>(),
            adj.rewrite.first_chunk::<{ wire::ETH_HDR }>(),
        ) {
            *dst = *src;
        }
    } else {
        l2.copy_from_slice(&adj.rewrite[..rl]);
    }
    b.meta.current_data -= rl as i16;
    b.meta.current_length += rl as u16;
    b.meta.tx_sw_if_index = adj.sw_if_index;
    (rewrite_next::OUTPUT, 0)
}

/// Bytes of IPv4 + TCP headers at the start of `ip` (0 if it is not a whole TCP header).
pub fn tcp_header_end(ip: &[u8]) -> usize {
    let Some(h) = Ip4Hdr::new(ip) else { return 0 };
    let hl = h.header_len();
    if h.protocol() != wire::IP_PROTO_TCP || ip.len() < hl + 20 {
        return 0;
    }
    hl + ((ip[hl + 12] >> 4) as usize) * 4
}

// ---------------------------------------------------------------------------------------------
// ip4-local

pub struct Ip4Local;

crate::next_edges! {
    mod local_next {
        DROP => "error-drop",
        LOOKUP => "ip4-lookup",
        REWRITE => "ip4-rewrite",
        ICMP_ERROR => "ip4-icmp-error",
    }
}

crate::node_errors! {
    pub mod local_error {
        ECHO_REPLIED => "ip4 echo requests answered",
        PUNTED => "ip4 packets punted to the host",
        NO_PUNT => "ip4 unknown protocol, no punt path (dropped)",
        FRAGMENT => "ip4 fragments for us (reassembly not supported)",
        BAD_ICMP => "ip4 bad icmp packet",
    }
}

impl Node for Ip4Local {
    fn info(&self) -> NodeInfo {
        NodeInfo::internal("ip4-local", local_next::NAMES, local_error::NAMES)
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        let errs = cx.errs();
        let fwd = cx.tables.fwd.get();
        for (i, &bi) in bufs.iter().enumerate() {
            let mut b = cx.bufs.get(bi);
            let Some(h) = Ip4Hdr::new(b.data()) else {
                b.meta.error = errs.error(local_error::BAD_ICMP);
                nexts[i] = local_next::DROP;
                continue;
            };
            let (proto, hl, frag) = (h.protocol(), h.header_len(), h.is_fragment());
            if frag {
                b.meta.error = errs.error(local_error::FRAGMENT);
                nexts[i] = local_next::DROP;
                continue;
            }
            if proto == wire::IP_PROTO_ICMP && is_echo_request(b.data(), hl) {
                echo_reply(&mut b, hl);
                errs.count(local_error::ECHO_REPLIED, 1);
                nexts[i] = local_next::LOOKUP;
                continue;
            }
            let rx = b.meta.rx_sw_if_index;
            match fwd
                .punt4
                .iter()
                .find(|p| p.rx_sw_if_index.is_none_or(|r| r == rx))
            {
                Some(p) => {
                    let adj = fwd.adj(p.adj);
                    b.meta.flags |= flags::LOCALLY_ORIGINATED;
                    errs.count(local_error::PUNTED, 1);
                    if adj.kind == AdjKind::Lookup {
                        // Punt into a table (calico: the host tap's VRF).
                        b.meta.fib_index = adj.lookup_fib;
                        nexts[i] = local_next::LOOKUP;
                    } else {
                        b.meta.adj_index = p.adj;
                        nexts[i] = local_next::REWRITE;
                    }
                }
                None if matches!(proto, wire::IP_PROTO_TCP | wire::IP_PROTO_UDP) => {
                    // Nobody listens: tell the sender as a host would.
                    set_icmp_error(&mut b, icmp::DEST_UNREACH, icmp::PORT_UNREACH, 0);
                    errs.count(local_error::NO_PUNT, 1);
                    nexts[i] = local_next::ICMP_ERROR;
                }
                None => {
                    b.meta.error = errs.error(local_error::NO_PUNT);
                    nexts[i] = local_next::DROP;
                }
            }
        }
    }

    fn trace(&self, b: &Buf<'_>) -> String {
        trace_ip4(b)
    }
}

fn is_echo_request(d: &[u8], hl: usize) -> bool {
    d.len() >= hl + 8 && d[hl] == icmp::ECHO_REQUEST && d[hl + 1] == 0
}

/// Turn an echo request into its reply in place.
fn echo_reply(b: &mut Buf<'_>, hl: usize) {
    let d = b.data_mut();
    let tl = u16::from_be_bytes([d[2], d[3]]) as usize;
    let (src, dst) = Ip4Hdr::new(d)
        .map(|h| (h.src(), h.dst()))
        .unwrap_or_default();
    if let Some(mut h) = Ip4HdrMut::new(d) {
        h.set_src(dst);
        h.set_dst(src);
        h.set_ttl(64);
    }
    // Options are not echoed: the reply goes back with a plain header.
    let icmp_len = tl.min(d.len()).saturating_sub(hl);
    if hl > wire::IP4_HDR {
        d.copy_within(hl..hl + icmp_len, wire::IP4_HDR);
        d[0] = 0x45;
    }
    let new_tl = (wire::IP4_HDR + icmp_len) as u16;
    if let Some(mut h) = Ip4HdrMut::new(d) {
        h.set_total_len(new_tl);
        h.fill_checksum();
    }
    let icmp_msg = &mut d[wire::IP4_HDR..wire::IP4_HDR + icmp_len];
    icmp_msg[0] = icmp::ECHO_REPLY;
    icmp_msg[2] = 0;
    icmp_msg[3] = 0;
    let c = wire::checksum(icmp_msg);
    icmp_msg[2..4].copy_from_slice(&c.to_be_bytes());
    b.set_len(new_tl as usize);
    b.meta.flags |= flags::LOCALLY_ORIGINATED;
}

// ---------------------------------------------------------------------------------------------
// ip4-icmp-error

pub struct Ip4IcmpError;

crate::next_edges! {
    mod icmp_error_next {
        DROP => "error-drop",
        LOOKUP => "ip4-lookup",
    }
}

crate::node_errors! {
    pub mod icmp_error {
        SENT_TIME_EXCEEDED => "icmp time exceeded sent",
        SENT_UNREACH => "icmp unreachable sent",
        RATE_LIMITED => "icmp error rate limited (dropped)",
        NO_SOURCE => "icmp error: no source address on interface (dropped)",
        NOT_FOR_ERRORS => "icmp error not sent for icmp errors, broadcasts or fragments (dropped)",
        NO_HEADROOM => "icmp error: no headroom (dropped)",
    }
}

/// Bytes of the offending packet quoted in an ICMP error (RFC 1812 allows up to 576 total).
const QUOTE_MAX: usize = 576 - wire::IP4_HDR - 8;

impl Node for Ip4IcmpError {
    fn info(&self) -> NodeInfo {
        NodeInfo::internal("ip4-icmp-error", icmp_error_next::NAMES, icmp_error::NAMES)
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        let errs = cx.errs();
        let ifs = cx.tables.ifs.get();
        for (i, &bi) in bufs.iter().enumerate() {
            let now = cx.now;
            let allowed = cx.icmp_limit.allow(now);
            // The error quotes only the first buffer; the rest of a chain is not needed.
            cx.bufs.free_tail(bi);
            let mut b = cx.bufs.get(bi);
            // The original drop reason stays in meta.error if we do not answer.
            if !allowed {
                b.meta.error = errs.error(icmp_error::RATE_LIMITED);
                nexts[i] = icmp_error_next::DROP;
                continue;
            }
            let Some(src) = ifs.ip4_source(b.meta.rx_sw_if_index) else {
                b.meta.error = errs.error(icmp_error::NO_SOURCE);
                nexts[i] = icmp_error_next::DROP;
                continue;
            };
            match build_error(&mut b, src) {
                Ok(ty) => {
                    errs.count(
                        if ty == icmp::TIME_EXCEEDED {
                            icmp_error::SENT_TIME_EXCEEDED
                        } else {
                            icmp_error::SENT_UNREACH
                        },
                        1,
                    );
                    b.meta.fib_index = ifs.fast(b.meta.rx_sw_if_index).ip4_fib;
                    nexts[i] = icmp_error_next::LOOKUP;
                }
                Err(e) => {
                    b.meta.error = errs.error(e);
                    nexts[i] = icmp_error_next::DROP;
                }
            }
        }
    }

    fn trace(&self, b: &Buf<'_>) -> String {
        trace_ip4(b)
    }
}

/// Wrap the packet (which starts at its IPv4 header) in IPv4 + ICMP error headers, in place.
fn build_error(b: &mut Buf<'_>, our_src: u32) -> Result<u8, u16> {
    let (ty, code, data) = (
        b.meta.opaque[0] as u8,
        b.meta.opaque[1] as u8,
        b.meta.opaque[2],
    );
    let d = b.data();
    let Some(h) = Ip4Hdr::new(d) else {
        return Err(icmp_error::NOT_FOR_ERRORS);
    };
    let hl = h.header_len();
    // Never answer an ICMP error, a non-first fragment, or a broadcast/multicast source.
    let is_icmp_err = h.protocol() == wire::IP_PROTO_ICMP
        && d.get(hl)
            .is_some_and(|&t| !matches!(t, icmp::ECHO_REQUEST | icmp::ECHO_REPLY));
    let bad_src = h.src() == 0 || h.src() >> 28 == 0xe || h.src() == u32::MAX;
    if is_icmp_err || h.frag_offset() != 0 || bad_src {
        return Err(icmp_error::NOT_FOR_ERRORS);
    }
    let orig_src = h.src();
    let quote = d.len().min(QUOTE_MAX).min(h.total_len() as usize);
    b.set_len(quote);
    if !b.retreat(wire::IP4_HDR + 8) {
        return Err(icmp_error::NO_HEADROOM);
    }
    let total = (wire::IP4_HDR + 8 + quote) as u16;
    let d = b.data_mut();
    {
        let Some(mut ip) = Ip4HdrMut::new(d) else {
            return Err(icmp_error::NO_HEADROOM);
        };
        ip.init(our_src, orig_src, wire::IP_PROTO_ICMP, 64, total);
    }
    let m = &mut d[wire::IP4_HDR..];
    m[0] = ty;
    m[1] = code;
    m[2..4].fill(0);
    m[4..8].copy_from_slice(&data.to_be_bytes());
    if ty == icmp::DEST_UNREACH && code == icmp::FRAG_NEEDED {
        // RFC 1191: unused(16) | next-hop MTU(16).
        m[4..6].fill(0);
        m[6..8].copy_from_slice(&(data as u16).to_be_bytes());
    }
    let c = wire::checksum(&m[..8 + quote]);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    b.meta.flags |= flags::LOCALLY_ORIGINATED;
    Ok(ty)
}
