//! ip4-/ip6-input, -lookup, -rewrite and -icmp-error: one implementation of each node, generic
//! over the address family. What differs per family is in traits the marker types [`V4`] and
//! [`V6`] implement: [`Family`] (which `IfFast`/`FibSet` fields are the family's, its
//! destination, flow hash and ICMP codes; both impls here, one `family!` line each) and one
//! trait per node for the rest (header checks, scoped IPv6 destinations, TTL or hop limit and
//! the IPv4 checksum, ICMP or ICMPv6 error building), implemented in `ip4.rs` and `ip6/` beside
//! that family's edges and counters. Every trait call is resolved at compile time; the IPv4
//! nodes count the same instructions per packet as their hand-written versions did
//! (bench/README.md).

use std::marker::PhantomData;
use std::sync::Arc;

use crate::buffer::{flags, for_each_prefetched, Buf, Buffers};
use crate::feature::ArcEdges;
use crate::fib::{Ip4Fib, Ip6Fib, LEAF_LIMIT, LEAF_MISS};
use crate::graph::{Node, NodeInfo, MAX_VECTOR};
use crate::runtime::{Ctx, Errors};
use crate::tables::{
    if_flags, AdjKind, Adjacency, FibSet, FwdTable, IfFast, IfTable, WorkerTables, UNREACH_LB,
};
use crate::wire;

/// IPv4.
#[derive(Default)]
pub struct V4;
/// IPv6.
#[derive(Default)]
pub struct V6;

/// The facts of a family every node uses.
pub trait Family: Default + Send + Sync + 'static {
    type Addr: Copy + Default + Send + Sync;
    type Fib: AddrFib<Addr = Self::Addr>;
    /// The interface flag that enables the family on an interface.
    const ENABLED: u16;
    /// ICMP (ICMPv6) type and code of "time (hop limit) exceeded in transit".
    const TIME_EXCEEDED: [u8; 2];
    /// Destination unreachable: type, then the codes for no route and for administratively
    /// prohibited.
    const UNREACHABLE: [u8; 3];
    fn fib_of(f: &IfFast) -> u32;
    /// The interface's bits on the family's unicast (input) arc.
    fn unicast_features(f: &IfFast) -> u32;
    /// The interface's bits on the family's local arc.
    fn local_features(f: &IfFast) -> u32;
    /// The family's FIBs, by index.
    fn fibs(set: &FibSet) -> &[Option<Arc<Self::Fib>>];
    /// The destination of a packet that starts at its header (any value if it is too short:
    /// such a packet never reached the lookup from input).
    fn dst(b: &Buf<'_>) -> Self::Addr;
    /// Flow hash (ECMP) of a packet that starts at its header.
    fn flow_hash(ip: &[u8]) -> u32;
    /// The packet's header, for `show trace`.
    fn trace(b: &Buf<'_>) -> String;
}

/// A family's facts: which `IfFast` and `FibSet` fields are its, and its header functions.
macro_rules! family {
    ($f:ident: $addr:ty, $fib:ty, $enabled:expr, fields: $fib_of:ident $unicast:ident $local:ident
     $fibs:ident, time_exceeded: $time:expr, unreachable: $unreach:expr,
     fns: $dst:path, $hash:path, $trace:path) => {
        impl Family for $f {
            type Addr = $addr;
            type Fib = $fib;
            const ENABLED: u16 = $enabled;
            const TIME_EXCEEDED: [u8; 2] = $time;
            const UNREACHABLE: [u8; 3] = $unreach;
            #[inline(always)]
            fn fib_of(f: &IfFast) -> u32 {
                f.$fib_of
            }
            #[inline(always)]
            fn unicast_features(f: &IfFast) -> u32 {
                f.$unicast
            }
            fn local_features(f: &IfFast) -> u32 {
                f.$local
            }
            #[inline(always)]
            fn fibs(set: &FibSet) -> &[Option<Arc<$fib>>] {
                &set.$fibs
            }
            #[inline(always)]
            fn dst(b: &Buf<'_>) -> $addr {
                $dst(b)
            }
            fn flow_hash(ip: &[u8]) -> u32 {
                $hash(ip)
            }
            fn trace(b: &Buf<'_>) -> String {
                $trace(b)
            }
        }
    };
}

use super::ip4::icmp;
use super::ip6::icmp6;
#[rustfmt::skip]
family!(V4: u32, Ip4Fib, if_flags::IP4, fields: ip4_fib feat_ip4 feat_ip4_local ip4,
    time_exceeded: [icmp::TIME_EXCEEDED, 0],
    unreachable: [icmp::DEST_UNREACH, icmp::NET_UNREACH, icmp::ADMIN_PROHIBITED],
    fns: super::ip4::dst4, super::ip4::flow_hash4, super::ip4::trace_ip4);
#[rustfmt::skip]
family!(V6: u128, Ip6Fib, if_flags::IP6, fields: ip6_fib feat_ip6 feat_ip6_local ip6,
    time_exceeded: [icmp6::TIME_EXCEEDED, icmp6::HOP_LIMIT_EXCEEDED],
    unreachable: [icmp6::DEST_UNREACH, icmp6::NO_ROUTE, icmp6::ADMIN_PROHIBITED],
    fns: super::ip6::dst6, super::ip6::flow_hash6, super::ip6::trace_ip6);

/// Ask the family's icmp-error node to answer this packet with (type, code, data): stored in
/// opaque[0..3].
#[inline]
pub fn set_icmp_error(b: &mut Buf<'_>, ty: u8, code: u8, data: u32) {
    b.meta.opaque[0] = ty as u32;
    b.meta.opaque[1] = code as u32;
    b.meta.opaque[2] = data;
}

/// As [`set_icmp_error`], but sent from `src` (an IPv4 address in its low 32 bits) and looked
/// up in FIB `fib` rather than from the receiving interface's address and in its FIB: cnat
/// answers for a VIP so (opaque[3..8]).
#[inline]
pub fn set_icmp_error_from(b: &mut Buf<'_>, ty: u8, code: u8, src: u128, fib: u32) {
    set_icmp_error(b, ty, code, 0);
    b.meta.flags |= flags::ICMP_ERROR_FROM;
    for (i, w) in b.meta.opaque[3..7].iter_mut().enumerate() {
        *w = (src >> (96 - 32 * i)) as u32;
    }
    b.meta.opaque[7] = fib;
}

/// The source and FIB [`set_icmp_error_from`] gave, if it did.
fn icmp_error_from(m: &crate::buffer::BufferMeta) -> Option<(u128, u32)> {
    if m.flags & flags::ICMP_ERROR_FROM == 0 {
        return None;
    }
    let src = m.opaque[3..7]
        .iter()
        .fold(0u128, |a, &w| (a << 32) | w as u128);
    Some((src, m.opaque[7]))
}

// ---------------------------------------------------------------------------------------------
// nodes that start a feature arc

/// What input and rewrite do with a vector; the node itself is [`ArcStart`].
pub trait ArcStartKind: Default + Send + Sync + 'static {
    const INFO: NodeInfo;
    fn process(arc: &ArcEdges, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]);
    fn trace(b: &Buf<'_>) -> String;
}

/// A node that starts a feature arc: the arc's edges, which the builder attaches.
#[derive(Default)]
pub struct ArcStart<K> {
    arc: ArcEdges,
    _kind: PhantomData<K>,
}

impl<K: ArcStartKind> Node for ArcStart<K> {
    fn info(&self) -> NodeInfo {
        K::INFO
    }

    fn attach_arc(&mut self, arc: ArcEdges) {
        self.arc = arc;
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        K::process(&self.arc, cx, bufs, nexts)
    }

    fn trace(&self, b: &Buf<'_>) -> String {
        K::trace(b)
    }
}

// ---------------------------------------------------------------------------------------------
// input

/// The input node's edges and counters, each from the family's `next_edges!` /
/// `node_errors!` (see [`input_ids!`]).
pub struct InputIds {
    pub drop: u16,
    pub lookup: u16,
    pub icmp_error: u16,
    /// TTL / hop limit zero: counted, answered with an ICMP error.
    pub expired: u16,
    /// Options / a hop-by-hop header: counted, forwarded.
    pub counted: u16,
    pub not_enabled: u16,
}

/// A family's [`InputFamily`]: its edge and counter modules, which counters are the
/// expired and the counted ones, and its header functions.
macro_rules! input_family {
    ($f:ident: $name:literal, $next:ident, $err:ident, expired: $expired:ident,
     counted: $counted:ident, plain: $plain:path, check: $check:path) => {
        impl crate::nodes::family::InputFamily for $f {
            const INFO: NodeInfo = NodeInfo::internal($name, $next::NAMES, $err::NAMES);
            const IDS: crate::nodes::family::InputIds = crate::nodes::family::InputIds {
                drop: $next::DROP,
                lookup: $next::LOOKUP,
                icmp_error: $next::ICMP_ERROR,
                expired: $err::$expired,
                counted: $err::$counted,
                not_enabled: $err::NOT_ENABLED,
            };
            #[inline(always)]
            fn plain_header_ok(b: &mut Buf<'_>) -> bool {
                $plain(b)
            }
            fn check(b: &mut Buf<'_>) -> Result<bool, u16> {
                $check(b)
            }
        }
    };
}
pub(crate) use input_family;

/// ip4-/ip6-input's per-family parts.
pub trait InputFamily: Family {
    const INFO: NodeInfo;
    const IDS: InputIds;
    /// The common header, checked and (link padding) trimmed in one pass. False, changing
    /// nothing: anything else, which `check` decides; when this is true `check` would have
    /// returned Ok(false) with the same changes.
    fn plain_header_ok(b: &mut Buf<'_>) -> bool;
    /// Validate the header in place (trimming link padding): Ok(whether to count
    /// `IDS.counted`) or Err(the counter: `IDS.expired` or a drop reason).
    fn check(b: &mut Buf<'_>) -> Result<bool, u16>;
}

/// Buffers ahead that ip4-/ip6-input prefetch.
const INPUT_PREFETCH_AHEAD: usize = 8;

/// ip4-input / ip6-input; each starts its unicast arc (the builder appends the arc's edges).
pub type Input<F> = ArcStart<InputKind<F>>;

#[derive(Default)]
pub struct InputKind<F>(PhantomData<F>);

impl<F: InputFamily> ArcStartKind for InputKind<F> {
    const INFO: NodeInfo = F::INFO;

    // Not inlined into `ArcStart::process`, so that profiles (callgrind, perf) tell input and
    // rewrite apart: one call per vector.
    #[inline(never)]
    fn process(arc: &ArcEdges, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        let errs = cx.errs();
        let ifs = cx.tables.ifs.get();
        let mut last_if = u32::MAX;
        // The rx interface's FIB and unicast features when it has the family on (the short
        // way; on a Calico pod interface cnat and npol are always on, so features are common).
        let mut plain_fib: Option<u32> = None;
        let mut features = 0u32;
        // Where its packets go: the lookup, or the first of its features.
        let mut plain_next = F::IDS.lookup;
        let mut view = cx.bufs.view();
        let mut v = view.vector(bufs);
        let n = v.len().min(nexts.len());
        for_each_prefetched!(v, n, INPUT_PREFETCH_AHEAD, |i| {
            nexts[i] = 'pkt: {
                let rx = v.meta(i).rx_sw_if_index;
                if rx != last_if {
                    last_if = rx;
                    let f = ifs.fast(rx);
                    plain_fib = (f.flags & F::ENABLED != 0).then_some(F::fib_of(&f));
                    features = F::unicast_features(&f);
                    plain_next = match features {
                        0 => F::IDS.lookup,
                        mask => arc.next(mask),
                    };
                }
                if let Some(fib) = plain_fib {
                    let mut b = v.get(i);
                    if F::plain_header_ok(&mut b) {
                        let m = &mut *b.meta;
                        m.fib_index = fib;
                        m.l3_hdr_offset = m.current_data;
                        // What `ArcEdges::enter` does, decided once per interface.
                        m.feature_mask = features;
                        break 'pkt plain_next;
                    }
                }
                input_slow::<F>(&mut v.get(i), &ifs.fast(rx), arc, errs)
            };
        });
    }

    fn trace(b: &Buf<'_>) -> String {
        F::trace(b)
    }
}

/// The input's every case, out of the hot loop.
#[inline(never)]
fn input_slow<F: InputFamily>(
    b: &mut Buf<'_>,
    fast: &IfFast,
    arc: &ArcEdges,
    errs: Errors<'_>,
) -> u16 {
    let ids = F::IDS;
    let r = if fast.flags & F::ENABLED == 0 {
        Err(ids.not_enabled)
    } else {
        F::check(b)
    };
    if r.is_ok() || r == Err(ids.expired) {
        b.meta.fib_index = F::fib_of(fast);
        b.meta.l3_hdr_offset = b.meta.current_data;
    }
    match r {
        Ok(counted) => {
            if counted {
                errs.count(ids.counted, 1);
            }
            match F::unicast_features(fast) {
                0 => ids.lookup,
                mask => arc.enter(b.meta, mask),
            }
        }
        Err(e) if e == ids.expired => {
            let [ty, code] = F::TIME_EXCEEDED;
            set_icmp_error(b, ty, code, 0);
            errs.count(e, 1);
            ids.icmp_error
        }
        Err(e) => {
            b.meta.error = errs.error(e);
            ids.drop
        }
    }
}

// ---------------------------------------------------------------------------------------------
// lookup

/// The lookup node's edges and counters, each from the family's `next_edges!` /
/// `node_errors!` (see [`lookup_ids!`]).
pub struct LookupIds {
    pub drop: u16,
    pub rewrite: u16,
    pub local: u16,
    /// ip4-arp or ip6-discover.
    pub resolve: u16,
    pub icmp_error: u16,
    pub relookup: u16,
    /// SR policies (H.Encaps) and localsids (`crate::srv6`).
    pub sr_encap: u16,
    pub sr_localsid: u16,
    pub no_fib: u16,
    pub drop_adj: u16,
    pub no_route: u16,
    pub prohibited: u16,
    pub punt: u16,
    pub lookup_loop: u16,
    /// ip4-pbl or ip6-pbl.
    pub pbl: u16,
}

/// A family's lookup `INFO` and `IDS` from its edge and counter modules.
macro_rules! lookup_ids {
    ($name:literal, $next:ident, $err:ident) => {
        const INFO: NodeInfo = NodeInfo::internal($name, $next::NAMES, $err::NAMES);
        const IDS: crate::nodes::family::LookupIds = crate::nodes::family::LookupIds {
            drop: $next::DROP,
            rewrite: $next::REWRITE,
            local: $next::LOCAL,
            resolve: $next::RESOLVE,
            icmp_error: $next::ICMP_ERROR,
            relookup: $next::RELOOKUP,
            sr_encap: $next::SR_ENCAP,
            sr_localsid: $next::SR_LOCALSID,
            no_fib: $err::NO_FIB,
            drop_adj: $err::DROP_ADJ,
            no_route: $err::NO_ROUTE,
            prohibited: $err::PROHIBITED,
            punt: $err::PUNT,
            lookup_loop: $err::LOOKUP_LOOP,
            pbl: $next::PBL,
        };
    };
}
pub(crate) use lookup_ids;

/// A family's FIB: longest-prefix match from a destination to a leaf (a load-balance index).
pub trait AddrFib {
    type Addr: Copy;
    fn lookup(&self, dst: Self::Addr) -> u32;
    fn lookup_batch(&self, dsts: &[Self::Addr], leaves: &mut [u32]);
}

macro_rules! addr_fib {
    ($fib:ty, $addr:ty) => {
        impl AddrFib for $fib {
            type Addr = $addr;
            #[inline(always)]
            fn lookup(&self, dst: $addr) -> u32 {
                <$fib>::lookup(self, dst)
            }
            #[inline(always)]
            fn lookup_batch(&self, dsts: &[$addr], leaves: &mut [u32]) {
                <$fib>::lookup_batch(self, dsts, leaves)
            }
        }
    };
}
addr_fib!(Ip4Fib, u32);
addr_fib!(Ip6Fib, u128);

/// ip4-/ip6-lookup's per-family parts.
pub trait LookupFamily: Family {
    const INFO: NodeInfo;
    const IDS: LookupIds;
    /// Destinations that belong to the receiving link rather than to the FIB (IPv6 multicast
    /// and link-local); tested on every packet, so it must be cheap.
    #[inline(always)]
    fn is_scoped(_dst: Self::Addr) -> bool {
        false
    }
    /// A packet for us, on an interface without local-arc features, that the family's local
    /// node would hand straight to a tunnel's input node (IPIP; UDP to the VXLAN port): that
    /// node's edge, so it skips the local node. None (the default): the local node decides.
    #[inline(always)]
    fn local_tunnel(_b: &Buf<'_>, _fwd: &FwdTable) -> Option<u16> {
        None
    }
    /// The edge for a scoped destination, or None to follow the FIB.
    fn scoped(
        _b: &mut Buf<'_>,
        _ifs: &IfTable,
        _fwd: &FwdTable,
        _dst: Self::Addr,
        _e: Errors<'_>,
    ) -> Option<u16> {
        None
    }
}

#[derive(Default)]
pub struct Lookup<F: LookupFamily> {
    dsts: Vec<F::Addr>,
    leaves: Vec<u32>,
    /// The lookup starts the local arc (packets for one of our addresses).
    arc: ArcEdges,
}

impl<F: LookupFamily> Node for Lookup<F> {
    fn info(&self) -> NodeInfo {
        F::INFO
    }

    fn attach_arc(&mut self, arc: ArcEdges) {
        self.arc = arc;
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        let errs = cx.errs();
        let n = bufs.len();
        if self.dsts.len() < MAX_VECTOR {
            self.dsts.resize(MAX_VECTOR, F::Addr::default());
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
            *dst = F::dst(&b);
            differ |= b.meta.fib_index ^ fib_index;
        }
        // Pass 2: the lookups, batched so the FIB can overlap its memory loads.
        if differ == 0 {
            match F::fibs(fibs)
                .get(fib_index as usize)
                .and_then(|f| f.as_deref())
            {
                Some(fib) => fib.lookup_batch(&self.dsts[..n], &mut self.leaves[..n]),
                None => self.leaves[..n].fill(LEAF_MISS - 1),
            }
        } else {
            for i in 0..v.len() {
                let fi = v.meta(i).fib_index as usize;
                self.leaves[i] = match F::fibs(fibs).get(fi).and_then(|f| f.as_deref()) {
                    Some(fib) => fib.lookup(self.dsts[i]),
                    None => LEAF_MISS - 1,
                };
            }
        }
        // Pass 3: load-balance and adjacency. Neighbouring packets often share a leaf: the
        // last leaf that resolved to a single-path rewrite is remembered with its adjacency.
        // LEAF_LIMIT: no FIB yields it, so nothing matches before the first rewrite is seen.
        let (mut rw_leaf, mut rw_adj) = (LEAF_LIMIT, 0u32);
        // Likewise the last leaf that gave a single local adjacency with no local-arc
        // features on the receiving interface (tunnel and other packets for us come in runs).
        let (mut local_leaf, mut local_rx, mut local_adj) = (LEAF_LIMIT, u32::MAX, 0u32);
        // And the last leaf that gave a single SR adjacency (a SID's or a steered prefix's
        // packets come in runs too): its adjacency << 16 | its edge, one register.
        let (mut sr_leaf, mut sr_adj_next) = (LEAF_LIMIT, 0u64);
        let n = n.min(nexts.len()).min(v.len());
        let leaves = &self.leaves[..n];
        let dsts = &self.dsts[..n];
        let ifs = cx.tables.ifs.get();
        for i in 0..n {
            let leaf = leaves[i];
            let dst = dsts[i];
            if F::is_scoped(dst) {
                if let Some(next) = F::scoped(&mut v.get(i), ifs, fwd, dst, errs) {
                    nexts[i] = next;
                    continue;
                }
            }
            if leaf == rw_leaf {
                v.meta(i).adj_index = rw_adj;
                nexts[i] = F::IDS.rewrite;
                continue;
            }
            if leaf == sr_leaf {
                v.meta(i).adj_index = (sr_adj_next >> 16) as u32;
                nexts[i] = sr_adj_next as u16;
                continue;
            }
            if leaf == local_leaf && v.meta(i).rx_sw_if_index == local_rx {
                v.meta(i).adj_index = local_adj;
                nexts[i] = F::local_tunnel(&v.get(i), fwd).unwrap_or(F::IDS.local);
                continue;
            }
            if leaf != LEAF_MISS - 1 {
                let lb = fwd.lb(if leaf == LEAF_MISS { UNREACH_LB } else { leaf });
                if lb.n_buckets <= 1 {
                    // The common case, a single path to a rewrite: metadata only.
                    let adj_i = lb.buckets[0];
                    let kind = fwd.adj(adj_i).kind;
                    if kind == AdjKind::Rewrite {
                        v.meta(i).adj_index = adj_i;
                        nexts[i] = F::IDS.rewrite;
                        (rw_leaf, rw_adj) = (leaf, adj_i);
                        continue;
                    }
                    // A steered prefix or a SID: straight to the SRv6 node, in line too.
                    if matches!(kind, AdjKind::SrPolicy | AdjKind::SrLocalsid) {
                        v.meta(i).adj_index = adj_i;
                        nexts[i] = if kind == AdjKind::SrPolicy {
                            F::IDS.sr_encap
                        } else {
                            F::IDS.sr_localsid
                        };
                        (sr_leaf, sr_adj_next) = (leaf, (adj_i as u64) << 16 | nexts[i] as u64);
                        continue;
                    }
                }
            }
            let mut b = v.get(i);
            nexts[i] = lookup_slow::<F>(&mut b, leaf, &self.arc, cx.tables, errs);
            // `local` comes only from a local adjacency on an interface without local
            // features; a single-path one is the same for every packet of the leaf.
            if nexts[i] == F::IDS.local {
                if fwd.lb(leaf).n_buckets <= 1 {
                    (local_leaf, local_rx, local_adj) =
                        (leaf, b.meta.rx_sw_if_index, b.meta.adj_index);
                }
                nexts[i] = F::local_tunnel(&b, fwd).unwrap_or(F::IDS.local);
            }
        }
    }

    fn trace(&self, b: &Buf<'_>) -> String {
        format!(
            "fib {} adj {} flow hash 0x{:08x}",
            b.meta.fib_index, b.meta.adj_index, b.meta.flow_hash
        )
    }
}

/// The lookup's every case but a single-path rewrite, out of the hot loop.
#[inline(never)]
fn lookup_slow<F: LookupFamily>(
    b: &mut Buf<'_>,
    leaf: u32,
    arc: &ArcEdges,
    tables: &WorkerTables,
    errs: Errors<'_>,
) -> u16 {
    let ids = F::IDS;
    let fwd = tables.fwd.get();
    if leaf == LEAF_MISS - 1 {
        b.meta.error = errs.error(ids.no_fib);
        return ids.drop;
    }
    let lb = fwd.lb(if leaf == LEAF_MISS { UNREACH_LB } else { leaf });
    let adj_i = if lb.n_buckets <= 1 {
        lb.buckets[0]
    } else {
        let h = F::flow_hash(b.data());
        b.meta.flow_hash = h;
        lb.pick(h)
    };
    b.meta.adj_index = adj_i;
    let adj = fwd.adj(adj_i);
    match adj.kind {
        AdjKind::Rewrite => ids.rewrite,
        AdjKind::Local => {
            crate::nodes::local_next(arc, b.meta, tables, ids.local, F::local_features)
        }
        AdjKind::Glean | AdjKind::Incomplete => ids.resolve,
        AdjKind::Unreachable | AdjKind::Prohibit => {
            let prohibited = adj.kind == AdjKind::Prohibit;
            let [ty, no_route, admin] = F::UNREACHABLE;
            set_icmp_error(b, ty, if prohibited { admin } else { no_route }, 0);
            errs.count(
                if prohibited {
                    ids.prohibited
                } else {
                    ids.no_route
                },
                1,
            );
            ids.icmp_error
        }
        AdjKind::Punt => {
            b.meta.error = errs.error(ids.punt);
            ids.drop
        }
        AdjKind::Lookup => {
            // Through the lookup again, in another table, unless it has been around too often.
            if b.meta.relookups >= crate::tables::MAX_RELOOKUPS {
                b.meta.error = errs.error(ids.lookup_loop);
                return ids.drop;
            }
            b.meta.relookups += 1;
            b.meta.fib_index = adj.lookup_fib;
            ids.relookup
        }
        AdjKind::SrPolicy => ids.sr_encap,
        AdjKind::SrLocalsid => ids.sr_localsid,
        AdjKind::Drop => {
            b.meta.error = errs.error(ids.drop_adj);
            ids.drop
        }
        AdjKind::Pbl => ids.pbl,
    }
}

// ---------------------------------------------------------------------------------------------
// rewrite

/// The rewrite node's edges, from the family's `next_edges!` (see [`rewrite_ids!`]).
pub struct RewriteIds {
    pub drop: u16,
    pub output: u16,
}

/// A family's rewrite `INFO` and `IDS` from its edge and counter modules.
macro_rules! rewrite_ids {
    ($name:literal, $next:ident, $err:ident) => {
        const INFO: NodeInfo = NodeInfo::internal($name, $next::NAMES, $err::NAMES);
        const IDS: crate::nodes::family::RewriteIds = crate::nodes::family::RewriteIds {
            drop: $next::DROP,
            output: $next::OUTPUT,
        };
    };
}
pub(crate) use rewrite_ids;

/// ip4-/ip6-rewrite's per-family parts.
pub trait RewriteFamily: Family {
    const INFO: NodeInfo;
    const IDS: RewriteIds;
    /// Header bytes `show trace` prints after the rewrite.
    const TRACE_BYTES: usize;
    /// The fast path's header step (see [`rewrite_fast`]): for a forwarded packet whose
    /// header is `ip`, false if its TTL/hop limit would expire or it does not fit `mtu`;
    /// otherwise decrement the TTL/hop limit (and fix the checksum) and return true.
    fn forward_header(ip: &mut [u8], mtu: u16) -> bool;
    /// Bytes from the Ethernet header through the family's fixed header, the window
    /// [`rewrite_fast`] takes.
    fn fast_window<'b>(b: &'b mut Buf<'_>) -> Option<&'b mut [u8]>;
    /// Every case: (next edge, counter) where the counter is the drop reason (edge `drop`),
    /// the event counted (an ICMP error edge) or unused (`output`).
    fn rewrite_one(b: &mut Buf<'_>, adj: &Adjacency) -> (u16, u16);
}

/// Buffers ahead that ip4-/ip6-rewrite prefetch.
const REWRITE_PREFETCH_AHEAD: usize = 8;

/// ip4-rewrite / ip6-rewrite; each starts its output arc (features of the tx interface).
pub type Rewrite<F> = ArcStart<RewriteKind<F>>;

#[derive(Default)]
pub struct RewriteKind<F>(PhantomData<F>);

impl<F: RewriteFamily> ArcStartKind for RewriteKind<F> {
    const INFO: NodeInfo = F::INFO;

    // Not inlined into `ArcStart::process`, so that profiles (callgrind, perf) tell input and
    // rewrite apart: one call per vector.
    #[inline(never)]
    fn process(arc: &ArcEdges, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        let errs = cx.errs();
        let fwd = cx.tables.fwd.get();
        let mut view = cx.bufs.view();
        let mut v = view.vector(bufs);
        // The previous packet's adjacency, and its fast form when it is a plain Ethernet
        // rewrite: kept in place rather than copied per packet.
        let mut last_ai = u32::MAX;
        let mut last_rw: Option<EthRewrite> = None;
        // Else its fast form when it has no L2 header or output features (a tunnel's
        // midchain: to the encap feature), and where its packets go.
        let mut last_arc: Option<ArcRewrite> = None;
        let n = v.len().min(nexts.len());
        for_each_prefetched!(v, n, REWRITE_PREFETCH_AHEAD, |i| {
            nexts[i] = 'pkt: {
                let ai = v.meta(i).adj_index;
                if ai != last_ai {
                    last_ai = ai;
                    last_rw = EthRewrite::of(fwd.adj(ai));
                    last_arc = match last_rw {
                        Some(_) => None,
                        None => ArcRewrite::of(fwd.adj(ai), arc, F::IDS.output),
                    };
                }
                if let Some(rw) = &last_rw {
                    if rewrite_fast::<F, true>(&mut v.get(i), rw) {
                        break 'pkt F::IDS.output;
                    }
                } else if let Some(ar) = &last_arc {
                    let mut b = v.get(i);
                    let done = if ar.push {
                        rewrite_fast::<F, true>(&mut b, &ar.rw)
                    } else {
                        rewrite_fast::<F, false>(&mut b, &ar.rw)
                    };
                    if done {
                        // What `ArcEdges::enter` does, decided once per adjacency.
                        if ar.features != 0 {
                            b.meta.feature_mask = ar.features;
                        }
                        break 'pkt ar.next;
                    }
                }
                rewrite_slow::<F>(&mut v.get(i), fwd.adj(ai), arc, errs)
            };
        });
    }

    fn trace(b: &Buf<'_>) -> String {
        let d = b.data();
        format!(
            "tx sw_if_index {} adj {} {}",
            b.meta.tx_sw_if_index,
            b.meta.adj_index,
            crate::runtime::hex_line(&d[..d.len().min(F::TRACE_BYTES)])
        )
    }
}

/// The rewrite's every case, out of the hot loop.
#[inline(never)]
fn rewrite_slow<F: RewriteFamily>(
    b: &mut Buf<'_>,
    adj: &Adjacency,
    arc: &ArcEdges,
    errs: Errors<'_>,
) -> u16 {
    let (mut next, err) = F::rewrite_one(b, adj);
    if next != F::IDS.output {
        if next == F::IDS.drop {
            b.meta.error = errs.error(err);
        } else {
            errs.count(err, 1);
        }
    } else if adj.out_features != 0 {
        // The tx interface has output features: the one test a packet pays.
        next = arc.enter(b.meta, adj.out_features);
    }
    next
}

/// A rewrite adjacency with a 14-byte Ethernet header and no output features on its tx
/// interface, in the form the fast path uses.
#[derive(Clone, Copy)]
pub struct EthRewrite {
    hdr: [u8; wire::ETH_HDR],
    mtu: u16,
    sw_if_index: u32,
}

impl EthRewrite {
    #[inline(always)]
    pub(crate) fn of(adj: &Adjacency) -> Option<Self> {
        (adj.kind == AdjKind::Rewrite
            && adj.rewrite_len as usize == wire::ETH_HDR
            && adj.out_features == 0)
            .then(|| Self::from(adj))
    }

    #[inline(always)]
    fn from(adj: &Adjacency) -> Self {
        Self {
            hdr: *adj.rewrite.first_chunk().expect("24 >= 14"),
            mtu: adj.mtu,
            sw_if_index: adj.sw_if_index,
        }
    }
}

/// The other rewrite adjacencies the fast path takes, kept apart so that the common one's loop
/// is unchanged: no L2 header (a point-to-point interface, an L3 tunnel) or a 14-byte one,
/// with the tx interface's output features (a tunnel's encap) and the edge to the first.
#[derive(Clone, Copy)]
pub struct ArcRewrite {
    rw: EthRewrite,
    /// The adjacency has the 14-byte header to write.
    push: bool,
    features: u32,
    next: u16,
}

impl ArcRewrite {
    #[inline(never)]
    fn of(adj: &Adjacency, arc: &ArcEdges, output: u16) -> Option<Self> {
        let push = adj.rewrite_len as usize == wire::ETH_HDR;
        (adj.kind == AdjKind::Rewrite && (push || adj.rewrite_len == 0)).then(|| Self {
            rw: EthRewrite::from(adj),
            push,
            features: adj.out_features,
            next: match adj.out_features {
                0 => output,
                mask => arc.next(mask),
            },
        })
    }
}

/// The common case of `rewrite_one`: a forwarded (not locally originated, not GSO) packet
/// whose header passes `forward_header`, headroom for the Ethernet header and the fixed header
/// in the buffer. False, changing nothing: anything else, which `rewrite_one` decides; when
/// this returns true `rewrite_one` would have returned `output` with the same changes.
/// `PUSH`: the adjacency's 14-byte header is written (else it has none).
#[inline(always)]
pub(crate) fn rewrite_fast<F: RewriteFamily, const PUSH: bool>(
    b: &mut Buf<'_>,
    rw: &EthRewrite,
) -> bool {
    if b.meta.flags & (flags::LOCALLY_ORIGINATED | flags::GSO) != 0 {
        return false;
    }
    let Some(w) = F::fast_window(b) else {
        return false;
    };
    let (l2, ip) = w.split_at_mut(wire::ETH_HDR);
    let Some(l2) = l2.first_chunk_mut::<{ wire::ETH_HDR }>() else {
        return false;
    };
    if !F::forward_header(ip, rw.mtu) {
        return false;
    }
    if PUSH {
        *l2 = rw.hdr;
    }
    let m = &mut *b.meta;
    if PUSH {
        m.current_data -= wire::ETH_HDR as i16;
        m.current_length += wire::ETH_HDR as u16;
    }
    m.tx_sw_if_index = rw.sw_if_index;
    true
}

// ---------------------------------------------------------------------------------------------
// icmp-error

/// The icmp-error node's edge and counters, from the family's `next_edges!` /
/// `node_errors!` (see [`icmp_error_ids!`]).
pub struct IcmpErrorIds {
    pub drop: u16,
    pub rate_limited: u16,
    pub no_source: u16,
    pub not_for_errors: u16,
}

/// A family's icmp-error `INFO` and `IDS` from its edge and counter modules.
macro_rules! icmp_error_ids {
    ($name:literal, $next:ident, $err:ident) => {
        const INFO: NodeInfo = NodeInfo::internal($name, $next::NAMES, $err::NAMES);
        const IDS: crate::nodes::family::IcmpErrorIds = crate::nodes::family::IcmpErrorIds {
            drop: $next::DROP,
            rate_limited: $err::RATE_LIMITED,
            no_source: $err::NO_SOURCE,
            not_for_errors: $err::NOT_FOR_ERRORS,
        };
    };
}
pub(crate) use icmp_error_ids;

/// ip4-/ip6-icmp-error's per-family parts.
pub trait IcmpErrorFamily: Family {
    const INFO: NodeInfo;
    const IDS: IcmpErrorIds;
    /// Whom to send the requested error to, or None when the RFCs forbid one (about an ICMP
    /// error, a fragment, or from a source that is not unicast).
    fn error_target(b: &Buf<'_>) -> Option<Self::Addr>;
    /// Our source address for an error from `rx` to `to`.
    fn source(ifs: &IfTable, rx: u32, to: Self::Addr) -> Option<Self::Addr>;
    /// An address given as bits (IPv4 in the low 32).
    fn addr_of_bits(a: u128) -> Self::Addr;
    /// Wrap the packet (which starts at its header, one buffer) in the error's headers, in
    /// place: Ok((counter of the error sent, next edge)) or Err(drop reason).
    fn build_error(
        b: &mut Buf<'_>,
        ifs: &IfTable,
        src: Self::Addr,
        to: Self::Addr,
    ) -> Result<(u16, u16), u16>;
}

/// ip4-icmp-error / ip6-icmp-error: the errors the other nodes ask for with
/// [`set_icmp_error`].
#[derive(Default)]
pub struct IcmpError<F>(PhantomData<F>);

impl<F: IcmpErrorFamily> Node for IcmpError<F> {
    fn info(&self) -> NodeInfo {
        F::INFO
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        let errs = cx.errs();
        let ifs = cx.tables.ifs.get();
        for (i, &bi) in bufs.iter().enumerate() {
            let r = answer::<F>(cx.bufs, ifs, bi, cx.icmp_limit, cx.now);
            nexts[i] = match r {
                Ok((sent, next)) => {
                    errs.count(sent, 1);
                    next
                }
                Err(e) => {
                    // The reason the packet was not answered replaces the one that sent it.
                    cx.bufs.meta(bi).error = errs.error(e);
                    F::IDS.drop
                }
            };
        }
    }

    fn trace(&self, b: &Buf<'_>) -> String {
        F::trace(b)
    }
}

fn answer<F: IcmpErrorFamily>(
    bufs: &mut Buffers,
    ifs: &IfTable,
    bi: u32,
    limit: &mut crate::runtime::RateLimiter,
    now: u64,
) -> Result<(u16, u16), u16> {
    let to = F::error_target(&bufs.get(bi)).ok_or(F::IDS.not_for_errors)?;
    // Checked after eligibility so packets we never answer cost no tokens.
    if !limit.allow(now) {
        return Err(F::IDS.rate_limited);
    }
    let rx = bufs.meta(bi).rx_sw_if_index;
    let given = icmp_error_from(bufs.meta(bi));
    let src = match given {
        Some((a, _)) => F::addr_of_bits(a),
        None => F::source(ifs, rx, to).ok_or(F::IDS.no_source)?,
    };
    // The error quotes only the first buffer; the rest of a chain is not needed.
    bufs.free_tail(bi);
    let mut b = bufs.get(bi);
    let r = F::build_error(&mut b, ifs, src, to)?;
    // The error is a new packet of ours: the offloads the quoted one asked for (a tap's
    // super-frame told its MTU) are not its own, nor the quoted flow's cnat session (npol
    // would take that flow's verdict for it).
    b.meta.flags |= flags::LOCALLY_ORIGINATED;
    b.meta.flags &=
        !(flags::GSO | flags::OFFLOAD_L4_CKSUM | flags::TUNNEL_OFFLOAD | flags::CNAT_SESSION);
    b.meta.gso_size = 0;
    if let Some((_, fib)) = given {
        b.meta.fib_index = fib;
        b.meta.flags &= !flags::ICMP_ERROR_FROM;
    }
    Ok(r)
}
