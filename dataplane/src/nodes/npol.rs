//! The npol feature nodes: `npol-rx-ip4/ip6` on ip4-/ip6-unicast (packets received on the
//! interface: pod egress) after cnat's DNAT, so policies see the backend a service chose, and
//! `npol-tx-ip4/ip6` on ip4-/ip6-output (packets sent on it: pod ingress), before cnat's SNAT
//! and before a tunnel wraps the packet.
//!
//! Stateful, as npol: the policies run on a flow's first packet only. Its verdict is cached in
//! [`Npol::flows`] under (5-tuple, interface, direction); an allowed flow also caches its
//! reply (reversed 5-tuple, same interface, the other direction) as allowed, so return traffic
//! passes whatever the other direction's policies say. For a flow cnat DNATed, the reply is
//! cached in the form cnat-input un-NATs it to (from the VIP) as well: cnat-input runs before
//! npol-rx, and a reply leaving through npol-tx was un-NATed on its way in. (VPP's npol runs
//! as a cnat hook and marks its verdict on the cnat flow, which both directions share.) A deny is cached as a drop. Later
//! fragments (no ports) follow their first fragment's verdict. An ICMP
//! error passes when the packet it quotes belongs to an allowed flow: cached as allowed in
//! the other direction, or its reverse cached as allowed in this one (an error cnat
//! translated back quotes a DNATed flow as its client sent it, to the VIP, a form cached
//! only as the reply from the VIP).
//! A full cache is not a drop: the packet is evaluated alone, and counted.
//!
//! On a flow cnat has a session for (services both ways, SNAT's replies), the allow is also
//! copied onto that session ([`SessionVerdicts`]): cnat-input leaves the session's slot and
//! npol word in the buffer (`CNAT_SESSION`), so a later packet of the flow is judged by a
//! compare on what cnat's lookup already read, with no parse and no probe of [`Npol::flows`]
//! (which stays the verdict's home: a copy is made only from an ALLOWED entry found there,
//! and each second's first packet looks that entry up again, keeping it alive). A copy names
//! its interface and direction, and counts only under the current [`Npol::verdict_epoch`]
//! (moved on by flushes) and in the session's generation (a freed and reused slot starts
//! empty). Denies are not copied: they stay in [`Npol::flows`], where an allowed reply may
//! replace one.
//!
//! A plain TCP/UDP flow with no cnat session (pod to pod) meets this worker's [`FrontCache`]
//! first (keyed by [`Front4Key`] or [`Front6Key`]): allows found in [`Npol::flows`], each
//! counting only while the shared entry's slot is unchanged, in the same epoch and second.
//!
//! `npol_configure_policies` enables the four features on the interface ([`feature_enable`]);
//! an interface without configuration never reaches these nodes.
//!
//! A host endpoint's untracked and pre-DNAT sections ([`crate::npol::section`]) have their own
//! nodes ([`StageNode`]), enabled only where the section is non-empty ([`stages_enable`]):
//! npol-untracked-rx/tx first on their arcs, npol-prednat before cnat's DNAT.

use crate::buffer::flags::CNAT_SESSION;
use crate::buffer::Buf;
use crate::cnat::nat::{self, Flow, L4};
use crate::cnat::session::{stage, FlowKey, InsertError, Session, SessionTable, NPOL_MASK};
use crate::cnat::snat::SnatConfig;
use crate::cnat::Cnat;
use crate::feature::{Feature, FeatureSet, FeatureTables};
use crate::forwarding::{Forwarding, FwdError};
use crate::graph::{GraphBuilder, Node, NodeInfo};
use crate::npol::{
    stage_verdict, verdict, Direction, FiveTuple, IfConfig, Npol, NpolTables, Stage, Verdict,
    PREDNAT_KEY,
};
use crate::rcu::Snapshot;
use crate::runtime::Ctx;
use crate::tables::IfTable;
use crate::wire::l4::{TCP_HDR, UDP_HDR};
use crate::wire::{IcmpHdr, IP4_HDR, IP6_HDR, IP_PROTO_TCP, IP_PROTO_UDP};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

pub const RX_IP4: Feature = Feature::new("ip4-unicast", "npol-rx-ip4").runs_after(&["cnat-input-ip4"]);
pub const RX_IP6: Feature = Feature::new("ip6-unicast", "npol-rx-ip6").runs_after(&["cnat-input-ip6"]);
pub const TX_IP4: Feature = Feature::new("ip4-output", "npol-tx-ip4")
    .runs_before(&["cnat-output-ip4", "vxlan4-encap", "ipip4-encap"]);
pub const TX_IP6: Feature = Feature::new("ip6-output", "npol-tx-ip6")
    .runs_before(&["cnat-output-ip6", "vxlan6-encap", "ipip6-encap"]);

/// The features `npol_configure_policies` turns on together.
pub const FEATURES: [Feature; 4] = [RX_IP4, RX_IP6, TX_IP4, TX_IP6];

// Host endpoints' untracked policies run first on their arc; pre-DNAT ones before cnat's
// DNAT, so they see the VIP or NodePort the client sent to.
pub const UNTRACKED_RX_IP4: Feature = Feature::new("ip4-unicast", "npol-untracked-rx-ip4")
    .runs_before(&[
        "ip4-udp-deny",
        "ip4-rx-urpf-loose",
        "ip4-rx-urpf-strict",
        "ip4-inacl",
        "npol-prednat-ip4",
        "cnat-input-ip4",
    ]);
pub const UNTRACKED_RX_IP6: Feature = Feature::new("ip6-unicast", "npol-untracked-rx-ip6")
    .runs_before(&[
        "ip6-rx-urpf-loose",
        "ip6-rx-urpf-strict",
        "ip6-inacl",
        "npol-prednat-ip6",
        "cnat-input-ip6",
    ]);
pub const UNTRACKED_TX_IP4: Feature = Feature::new("ip4-output", "npol-untracked-tx-ip4")
    .runs_before(&[
        "npol-tx-ip4",
        "cnat-output-ip4",
        "vxlan4-encap",
        "ipip4-encap",
        "esp4-encrypt-tun",
    ]);
pub const UNTRACKED_TX_IP6: Feature = Feature::new("ip6-output", "npol-untracked-tx-ip6")
    .runs_before(&[
        "npol-tx-ip6",
        "cnat-output-ip6",
        "vxlan6-encap",
        "ipip6-encap",
        "esp6-encrypt-tun",
    ]);
pub const PREDNAT_IP4: Feature =
    Feature::new("ip4-unicast", "npol-prednat-ip4").runs_before(&["cnat-input-ip4"]);
pub const PREDNAT_IP6: Feature =
    Feature::new("ip6-unicast", "npol-prednat-ip6").runs_before(&["cnat-input-ip6"]);

crate::next_edges! {
    mod next {
        DROP => "error-drop",
    }
}

crate::node_errors! {
    pub mod error {
        DENIED => "policy deny (dropped)",
        TRUNCATED => "truncated headers (dropped)",
        NEW_ALLOWED => "new flow allowed by policy",
        NEW_DENIED => "new flow denied by policy",
        CACHE_FULL => "flow cache full (evaluated alone)",
        FRAGMENT => "fragment without its first fragment's verdict, evaluated without ports",
        NOT_POLICED => "multicast or IPv6 neighbour discovery (not policed)",
        FRONT_HIT => "allowed by this worker's front cache (not a drop)",
        FRONT_BYPASS => "vectors that left the front cache alone, too few hits (not a drop)",
    }
}

/// Add the npol nodes to a graph; they share the [`Npol`] in `tables`.
pub fn register(b: GraphBuilder, tables: &FeatureTables) -> GraphBuilder {
    let (npol, cnat) = (tables.get::<Npol>(), tables.get::<Cnat>());
    let node4 = |dir| Box::new(NpolNode::<Front4Key>::new(npol.clone(), cnat.clone(), dir));
    let node6 = |dir| Box::new(NpolNode::<Front6Key>::new(npol.clone(), cnat.clone(), dir));
    let stage = |s, dir, ip6| Box::new(StageNode::new(npol.clone(), s, dir, ip6));
    b.feature(RX_IP4, node4(Direction::Rx))
        .feature(RX_IP6, node6(Direction::Rx))
        .feature(TX_IP4, node4(Direction::Tx))
        .feature(TX_IP6, node6(Direction::Tx))
        .feature(UNTRACKED_RX_IP4, stage(Stage::Untracked, Direction::Rx, false))
        .feature(UNTRACKED_RX_IP6, stage(Stage::Untracked, Direction::Rx, true))
        .feature(UNTRACKED_TX_IP4, stage(Stage::Untracked, Direction::Tx, false))
        .feature(UNTRACKED_TX_IP6, stage(Stage::Untracked, Direction::Tx, true))
        .feature(PREDNAT_IP4, stage(Stage::PreDnat, Direction::Rx, false))
        .feature(PREDNAT_IP6, stage(Stage::PreDnat, Direction::Rx, true))
}

/// Turn policy evaluation on or off for interface `sw`, both directions and families.
pub fn feature_enable(f: &mut Forwarding, sw: u32, on: bool) -> Result<(), FwdError> {
    for feat in FEATURES {
        f.feature_enable(sw, feat.arc, feat.node, on)?;
    }
    Ok(())
}

/// Turn the untracked and pre-DNAT nodes on interface `sw` on where its configuration `c` has
/// such sections, off elsewhere (and everywhere for None).
pub fn stages_enable(f: &mut Forwarding, sw: u32, c: Option<&IfConfig>) -> Result<(), FwdError> {
    let has = |dir, st| c.is_some_and(|c| c.has_stage(dir, st));
    let (urx, utx) = (has(Direction::Rx, Stage::Untracked), has(Direction::Tx, Stage::Untracked));
    let pre = has(Direction::Rx, Stage::PreDnat);
    for (feat, on) in [
        (UNTRACKED_RX_IP4, urx),
        (UNTRACKED_RX_IP6, urx),
        (UNTRACKED_TX_IP4, utx),
        (UNTRACKED_TX_IP6, utx),
        (PREDNAT_IP4, pre),
        (PREDNAT_IP6, pre),
    ] {
        f.feature_enable(sw, feat.arc, feat.node, on)?;
    }
    Ok(())
}

/// A flow-cache entry holding a verdict (`ALLOWED`, `DENIED`, `NO_MATCH`), as npol-rx/tx and
/// the pre-DNAT stage keep them.
#[inline]
fn cached_verdict(flags: u8, class: u8, now: u32) -> Session {
    Session {
        translation: u32::MAX,
        flags,
        class,
        last_seen: now,
        ..Default::default()
    }
}

const ALLOWED: u8 = 1;
const DENIED: u8 = 2;
/// A pre-DNAT verdict: no policy of the section decided, the flow goes on to npol-rx.
const NO_MATCH: u8 = 3;

fn stage_of(d: Direction) -> u8 {
    match d {
        Direction::Rx => 0,
        Direction::Tx => 1,
    }
}

fn other(d: Direction) -> Direction {
    match d {
        Direction::Rx => Direction::Tx,
        Direction::Tx => Direction::Rx,
    }
}

fn key(f: &Flow, sw: u32, d: Direction) -> FlowKey {
    // sw_if_index < MAX_INTERFACES (4096) fits.
    f.key(stage_of(d), sw as u16)
}

/// The key the later fragments of `f`'s datagram share (its id in place of ports).
fn frag_key(f: &Flow, sw: u32, d: Direction) -> FlowKey {
    f.fragment_key(stage_of(d), sw as u16)
}

/// No room for an entry (another worker having added it first is not that).
fn is_full<T>(r: Result<T, InsertError>) -> bool {
    matches!(r, Err(InsertError::Full | InsertError::NoSlot))
}

/// Cache `rk`, the reply of a flow just allowed, as allowed: it passes even where a verdict
/// was cached for it before (a deny of an earlier packet that way). True when there was no
/// room for it.
fn allow_reply(npol: &Npol, rk: &FlowKey, allowed: &Session) -> bool {
    match npol.flows.insert(rk, allowed) {
        Err(InsertError::Exists) => {
            if let Some(found) = npol.flows.lookup(rk) {
                if found.session.flags == ALLOWED {
                    // Kept in place: removing it would leave a gap in which another worker's
                    // reply is judged alone (and its deny cached).
                    npol.flows.touch(&found, allowed.last_seen, allowed.class);
                    return false;
                }
            }
            npol.flows.remove(rk);
            is_full(npol.flows.insert(rk, allowed))
        }
        r => is_full(r),
    }
}

fn reversed(k: &FlowKey) -> FlowKey {
    FlowKey {
        src: k.dst,
        dst: k.src,
        sport: k.dport,
        dport: k.sport,
        stage: k.stage ^ 1,
        ..*k
    }
}

fn ip_of(a: u128, ip6: bool) -> IpAddr {
    if ip6 {
        IpAddr::V6(Ipv6Addr::from(a))
    } else {
        IpAddr::V4(Ipv4Addr::from(a as u32))
    }
}

/// Packets npol leaves alone: received multicast (VPP's ip4/ip6-input send it to the multicast
/// arc, which npol is not on) and IPv6 router and neighbour solicitations and advertisements
/// (VPP answers those without the output arc; unicast ones pass too, as felix lets NDP through
/// for workloads). Else a host endpoint's default deny keeps the host from resolving its
/// neighbours through the host tap.
#[inline(always)]
fn not_policed(f: &Flow, d: &[u8], dir: Direction) -> bool {
    let multicast = if f.ip6 {
        f.dst >> 120 == 0xff
    } else {
        (f.dst as u32) >> 28 == 0xe
    };
    if multicast && dir == Direction::Rx {
        return true;
    }
    f.ip6
        && f.proto == crate::wire::IP_PROTO_IPV6_ICMP
        && f.l4 == L4::Other
        && d.get(f.l4_off)
            .is_some_and(|t| (ND_ROUTER_SOLICIT..=ND_NEIGHBOR_ADVERT).contains(t))
}

/// ICMPv6 types 133 (router solicitation) through 136 (neighbour advertisement).
const ND_ROUTER_SOLICIT: u8 = 133;
const ND_NEIGHBOR_ADVERT: u8 = 136;

/// What the rules see: ports only for TCP/UDP, the real ICMP type and code.
fn five_tuple(f: &Flow, d: &[u8]) -> FiveTuple {
    let (mut icmp_type, mut icmp_code) = (0, 0);
    let icmp = matches!(f.l4, L4::Echo | L4::IcmpError)
        || (f.l4 == L4::Other && (f.proto == 1 || f.proto == 58));
    if icmp {
        if let Some(h) = d.get(f.l4_off..).and_then(IcmpHdr::new) {
            (icmp_type, icmp_code) = (h.icmp_type(), h.code());
        }
    }
    let ports = f.l4 == L4::Ports;
    FiveTuple {
        src: ip_of(f.src, f.ip6),
        dst: ip_of(f.dst, f.ip6),
        proto: f.proto,
        sport: if ports { f.sport } else { 0 },
        dport: if ports { f.dport } else { 0 },
        icmp_type,
        icmp_code,
    }
}

/// The allows npol copies onto a cnat session's npol word: one per direction, each naming
/// the interface it was judged on, and the epoch they were made under (bits 32-47).
///
/// A side is `ALLOW | sw` (sw < 4096, `MAX_INTERFACES`) at bit 0 (rx) or 16 (tx).
pub struct SessionVerdicts;

impl SessionVerdicts {
    const ALLOW: u64 = 1 << 12;
    const SIDE_MASK: u64 = 0x1fff;
    const EPOCH_SHIFT: u32 = 32;
    const EPOCH_MASK: u64 = 0xffff << Self::EPOCH_SHIFT;

    #[inline(always)]
    fn shift(d: Direction) -> u32 {
        match d {
            Direction::Rx => 0,
            Direction::Tx => 16,
        }
    }

    /// The bits a word holds when it allows `d` on `sw` under `epoch`, and which bits those
    /// are; None for an interface index a side cannot hold.
    #[inline(always)]
    fn want(d: Direction, sw: u32, epoch: u32) -> Option<(u64, u64)> {
        if sw >= 1 << 12 {
            return None;
        }
        let sh = Self::shift(d);
        let bits = (epoch as u64 & 0xffff) << Self::EPOCH_SHIFT | (Self::ALLOW | sw as u64) << sh;
        Some((bits, Self::EPOCH_MASK | Self::SIDE_MASK << sh))
    }

    /// Whether the npol word `w` allows direction `d` on `sw` under `epoch`.
    #[inline(always)]
    pub fn allows(w: u64, d: Direction, sw: u32, epoch: u32) -> bool {
        Self::want(d, sw, epoch).is_some_and(|(bits, mask)| w & mask == bits)
    }

    /// `bits` (npol's part of a word) with direction `d` allowed on `sw` under `epoch`; a
    /// side made under another epoch is dropped.
    #[inline]
    pub fn with_allow(bits: u64, d: Direction, sw: u32, epoch: u32) -> u64 {
        let Some((want, mask)) = Self::want(d, sw, epoch) else {
            return bits;
        };
        let cur = if bits & Self::EPOCH_MASK == want & Self::EPOCH_MASK {
            bits
        } else {
            0
        };
        (cur & !mask | want) & NPOL_MASK
    }

    /// `bits` without direction `d`'s allow on `sw` (any epoch); unchanged if it has none.
    #[inline]
    pub fn without_allow(bits: u64, d: Direction, sw: u32) -> u64 {
        let sh = Self::shift(d);
        if sw < 1 << 12 && (bits >> sh) & Self::SIDE_MASK == Self::ALLOW | sw as u64 {
            bits & !(Self::SIDE_MASK << sh)
        } else {
            bits
        }
    }

    /// Bring the copy of `d` on `sw` on the session cnat found for `b` (if it found one) in
    /// line with this packet's verdict: an allow found in [`Npol::flows`] is copied; anything
    /// else (a deny, a verdict just made, whose entry the next packet finds) clears it.
    /// Inlined to the flag's test: out of line, its call cost npol-rx 15 instructions a
    /// packet on an interface without cnat.
    #[inline(always)]
    fn sync(
        sessions: &SessionTable,
        b: &Buf<'_>,
        d: Direction,
        sw: u32,
        epoch: u32,
        cached_allow: bool,
    ) {
        if b.meta.flags & CNAT_SESSION != 0 {
            let (slot, seen) = (b.meta.cnat_slot as usize, b.meta.cnat_npol);
            Self::update(sessions, slot, seen, d, sw, epoch, cached_allow);
        }
    }

    #[inline(never)]
    fn update(
        sessions: &SessionTable,
        slot: usize,
        seen: u64,
        d: Direction,
        sw: u32,
        epoch: u32,
        cached_allow: bool,
    ) {
        if cached_allow {
            sessions.npol_update(slot, seen, |bits| Self::with_allow(bits, d, sw, epoch));
        } else {
            sessions.npol_update(slot, seen, |bits| Self::without_allow(bits, d, sw));
        }
    }
}

/// Entries in a node's [`FrontCache`] (40 bytes each for IPv4, 640 KiB a node; 64 for IPv6,
/// 1 MiB).
const FRONT_ENTRIES: usize = 16384;

/// A plain TCP/UDP flow on an interface as a [`FrontCache`] keys it (the node is the
/// direction), read from the packet as it lies: nothing is swapped, since a key is only
/// compared with keys read the same way.
trait FrontKey: Copy + Default + PartialEq + Send + 'static {
    /// The family of the nodes that use this key.
    const IP6: bool;
    /// The key of a packet (`d` from its IP header) whose flow parses to TCP or UDP ports
    /// with no other header between, None for any other (which the full path takes).
    fn of_packet(d: &[u8], sw: u32) -> Option<Self>;
    /// The key in one word, before [`FrontCache::index`] mixes it.
    fn fold(&self) -> u64;
}

/// The word of a key after the addresses: ports (the 4 bytes at `ports`), protocol and, as
/// the shared table's key, the interface's low 16 bits (sw < 4096).
#[inline(always)]
fn ports_proto_sw(ports: &[u8; 4], proto: u8, sw: u32) -> u64 {
    (u32::from_ne_bytes(*ports) as u64) << 32 | (proto as u64) << 16 | (sw & 0xffff) as u64
}

/// The bytes a TCP or UDP header must fill for the flow parse to read its ports.
#[inline(always)]
fn l4_header_len(proto: u8) -> Option<usize> {
    match proto {
        IP_PROTO_TCP => Some(TCP_HDR),
        IP_PROTO_UDP => Some(UDP_HDR),
        _ => None,
    }
}

const FRONT_MIX: u64 = 0x9E37_79B9_7F4A_7C15;

/// An IPv4 key: addresses in one word, ports, protocol and interface in the other.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct Front4Key {
    addrs: u64,
    rest: u64,
}

impl FrontKey for Front4Key {
    const IP6: bool = false;

    /// For a packet [`nat::flow4_plain`] takes (the same tests: a 20-byte header, not a
    /// fragment, TCP or UDP with the bytes of a TCP header held and its header within
    /// total_len).
    #[inline(always)]
    fn of_packet(d: &[u8], sw: u32) -> Option<Self> {
        let h = d.first_chunk::<{ IP4_HDR + TCP_HDR }>()?;
        let l4_len = l4_header_len(h[9])?;
        let total_len = u16::from_be_bytes([h[2], h[3]]) as usize;
        if h[0] != 0x45 || h[6] & 0x3f != 0 || h[7] != 0 || total_len < IP4_HDR + l4_len {
            return None;
        }
        let (addrs, ports) = h[12..].split_first_chunk::<8>()?;
        Some(Self {
            addrs: u64::from_ne_bytes(*addrs),
            rest: ports_proto_sw(ports.first_chunk()?, h[9], sw),
        })
    }

    #[inline(always)]
    fn fold(&self) -> u64 {
        self.addrs.wrapping_mul(FRONT_MIX) ^ self.rest
    }
}

/// An IPv6 key: the two addresses in four words, then ports, protocol and interface.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct Front6Key {
    addrs: [u64; 4],
    rest: u64,
}

impl FrontKey for Front6Key {
    const IP6: bool = true;

    /// For a packet [`nat::flow6`] parses to TCP or UDP ports with no extension header: the
    /// next header TCP or UDP, its header within payload_len and held. (A UDP header may end
    /// the packet: a minimum-size frame holds no more.)
    #[inline(always)]
    fn of_packet(d: &[u8], sw: u32) -> Option<Self> {
        let h = d.first_chunk::<{ IP6_HDR + UDP_HDR }>()?;
        let l4_len = l4_header_len(h[6])?;
        let payload_len = u16::from_be_bytes([h[4], h[5]]) as usize;
        if payload_len < l4_len || d.len() < IP6_HDR + l4_len {
            return None;
        }
        let word = |o: usize| h[o..].first_chunk().map(|w| u64::from_ne_bytes(*w));
        Some(Self {
            addrs: [word(8)?, word(16)?, word(24)?, word(32)?],
            rest: ports_proto_sw(h[IP6_HDR..].first_chunk()?, h[6], sw),
        })
    }

    #[inline(always)]
    fn fold(&self) -> u64 {
        // Each address's words meet rotated (a host part's varying bytes lie in the top of
        // its word), and the source is mixed before the destination meets it.
        let [s0, s1, d0, d1] = self.addrs;
        let src = (s0 ^ s1.rotate_left(32)).wrapping_mul(FRONT_MIX);
        (src ^ d0 ^ d1.rotate_left(32)).wrapping_mul(FRONT_MIX) ^ self.rest
    }
}

#[derive(Clone, Copy, Default)]
struct FrontEntry<K> {
    /// All zero when empty: no TCP/UDP key has protocol 0.
    key: K,
    /// The slot of the ALLOWED entry in [`Npol::flows`] this copies, and its header then.
    header: u64,
    slot: u32,
    /// [`FrontCache::stamp`] of the packet that found it.
    stamp: u64,
}

/// A worker's cache, in one npol node, of allows found in [`Npol::flows`] (two ways a
/// set): a later packet of the flow in the same second is judged by a compare of its key,
/// the epoch and the shared entry's slot header, with no hash or probe of the shared table.
///
/// It never decides on its own: an entry counts only while the shared entry it copies is
/// still in its slot, unchanged (a remove, an expiry or a reuse moves the slot's header), in
/// the epoch it was found under (a flush or an unconfigure moves it), and in the second it
/// was found in, so each second's first packet of a flow on this worker takes the shared
/// lookup again, which keeps that entry alive (touch) for its idle timeout. Denies are never
/// copied.
struct FrontCache<K> {
    sets: Box<[[FrontEntry<K>; 2]]>,
    shift: u32,
}

impl<K: FrontKey> FrontCache<K> {
    /// About `n` entries (sets of two, a power of two of them), or none.
    fn new(n: usize) -> Self {
        let sets = (n / 2).next_power_of_two();
        let len = if n >= 2 { sets } else { 0 };
        Self {
            sets: vec![[FrontEntry::default(); 2]; len].into_boxed_slice(),
            shift: 64 - sets.max(2).trailing_zeros(),
        }
    }

    #[inline(always)]
    fn stamp(epoch: u32, now: u32) -> u64 {
        (epoch as u64) << 32 | now as u64
    }

    #[inline(always)]
    fn index(&self, k: &K) -> usize {
        // The words hold the packet's bytes unswapped (a host's low byte in the top bits),
        // and generators vary ports with addresses: each word is mixed before they meet.
        let x = k.fold();
        let h = (x ^ x >> 29).wrapping_mul(0xff51_afd7_ed55_8ccd);
        ((h ^ h >> 32) >> self.shift) as usize
    }

    /// Whether the cache holds a live allow for `k` at `stamp`.
    #[inline(always)]
    fn allows(&self, k: &K, stamp: u64, flows: &SessionTable) -> bool {
        let Some(set) = self.sets.get(self.index(k)) else {
            return false;
        };
        let e = if set[0].key == *k { &set[0] } else { &set[1] };
        e.key == *k && e.stamp == stamp && flows.holds(e.slot as usize, e.header)
    }

    /// Copy an allow found at `slot` (its header `header`) for `k`: into the way holding `k`,
    /// else one not used this second, else the second way.
    #[inline(always)]
    fn set(&mut self, k: &K, slot: usize, header: u64, stamp: u64) {
        let i = self.index(k);
        let Some(set) = self.sets.get_mut(i) else {
            return;
        };
        let way = usize::from(set[0].key != *k && (set[1].key == *k || set[0].stamp == stamp));
        set[way] = FrontEntry {
            key: *k,
            header,
            slot: slot as u32,
            stamp,
        };
    }
}

/// Probes over which a node judges its front cache's hits: twice its entries, so a window
/// that starts on a cold cache (after a back-off) fills it before most of the count.
pub const FRONT_WINDOW: u32 = 2 * FRONT_ENTRIES as u32;

/// Vectors a node leaves its front cache alone (no key, probe or fill) after a window with
/// fewer hits than misses: more flows than it holds, where each miss costs more than a hit
/// saves. Then it probes again, so it comes back once the flows it sees fit.
pub const FRONT_BACKOFF: u32 = 1024;

/// Whether a node's vectors use its [`FrontCache`], from its hits over the last window.
#[derive(Default)]
struct FrontGate {
    probes: u32,
    hits: u32,
    /// Vectors left in a back-off.
    off: u32,
}

impl FrontGate {
    /// Whether this vector probes and fills the cache (one of a back-off counts down).
    #[inline(always)]
    fn probing(&mut self) -> bool {
        if self.off == 0 {
            return true;
        }
        self.off -= 1;
        false
    }

    /// A probing vector's hits and misses; a window under half hits starts a back-off.
    #[inline(always)]
    fn judge(&mut self, hits: u32, misses: u32) {
        self.probes += hits + misses;
        self.hits += hits;
        if self.probes >= FRONT_WINDOW {
            if self.hits * 2 < self.probes {
                self.off = FRONT_BACKOFF;
            }
            (self.probes, self.hits) = (0, 0);
        }
    }
}

/// The vector's second and verdict epoch, as [`NpolNode::decide`] takes them.
#[derive(Clone, Copy)]
struct VectorTime {
    now: u32,
    epoch: u32,
}

/// npol-rx-ip4/ip6, npol-tx-ip4/ip6, their family by their front cache's key `K`.
struct NpolNode<K> {
    npol: Arc<Npol>,
    tables: Snapshot<NpolTables>,
    /// cnat's sessions, to find what a DNATed flow's reply will look like.
    cnat: Arc<Cnat>,
    snat: Snapshot<SnatConfig>,
    dir: Direction,
    /// This worker's recent allows from [`Npol::flows`].
    front: FrontCache<K>,
    front_gate: FrontGate,
}

impl<K: FrontKey> NpolNode<K> {
    fn new(npol: Arc<Npol>, cnat: Arc<Cnat>, dir: Direction) -> Self {
        Self {
            tables: npol.tables.snapshot(),
            npol,
            snat: cnat.snat.snapshot(),
            cnat,
            dir,
            front: FrontCache::new(FRONT_ENTRIES),
            front_gate: FrontGate::default(),
        }
    }

    /// The reply of a flow cnat DNATed before us, as npol will see it once cnat-input has
    /// un-NATed it (from the VIP): cnat's return entry is keyed by the reversed packet and
    /// holds that form. `fib` is the FIB the reply will be looked up in, tried first as
    /// cnat-input does, then the return FIB. Rx: the reply leaves through this interface's tx
    /// (npol-tx runs before cnat-output, but cnat-input un-NATed it on its way in). Tx: it
    /// arrives on this interface, and cnat-input runs before npol-rx.
    fn unnated_reply(&self, k: &FlowKey, fib: u16) -> Option<FlowKey> {
        let mut ck = FlowKey {
            stage: stage::INPUT,
            fib,
            ..reversed(k)
        };
        let ret_fib = self.snat.get().ret_fib_index as u16;
        let hit = self.cnat.sessions.lookup(&ck).or_else(|| {
            ck.fib = ret_fib;
            (ret_fib != fib).then(|| self.cnat.sessions.lookup(&ck)).flatten()
        })?;
        let rw = hit.session.rw;
        Some(FlowKey {
            src: rw.src,
            dst: rw.dst,
            sport: rw.sport,
            dport: rw.dport,
            stage: stage_of(other(self.dir)),
            ..*k
        })
    }

    fn name(&self) -> &'static str {
        match (self.dir, K::IP6) {
            (Direction::Rx, false) => RX_IP4.node,
            (Direction::Rx, true) => RX_IP6.node,
            (Direction::Tx, false) => TX_IP4.node,
            (Direction::Tx, true) => TX_IP6.node,
        }
    }

    /// One packet's verdict, and a counter to bump (not a drop) if any. Inlined into each
    /// loop of [`Self::vector`]: out of line, its call cost 10 instructions a packet in
    /// callgrind at 94 % front-cache hits.
    #[inline(always)]
    fn decide(
        &self,
        b: &Buf<'_>,
        l3: usize,
        sw: u32,
        at: VectorTime,
        ifs: &IfTable,
        allowed_at: &mut Option<(usize, u64)>,
    ) -> Result<Option<u16>, u16> {
        let VectorTime { now, epoch } = at;
        let (npol, t, dir, ip6) = (&*self.npol, self.tables.get(), self.dir, K::IP6);
        let d = b.data().get(l3..).ok_or(error::TRUNCATED)?;
        let f = if ip6 { nat::flow6(d) } else { nat::flow4(d) }.map_err(|_| error::TRUNCATED)?;
        if not_policed(&f, d, dir) {
            return Ok(Some(error::NOT_POLICED));
        }
        if f.l4 == L4::Fragment {
            // No ports: follow the first fragment's verdict; without one, evaluated alone.
            if let Some(x) = npol.fragments.lookup(&frag_key(&f, sw, dir)) {
                return if x.session.flags == ALLOWED {
                    Ok(None)
                } else {
                    Err(error::DENIED)
                };
            }
            return match verdict(t, sw, dir, &five_tuple(&f, d)) {
                Verdict::Allow => Ok(Some(error::FRAGMENT)),
                Verdict::Deny => Err(error::DENIED),
            };
        }
        if f.l4 == L4::IcmpError {
            if let Ok(q) = nat::quoted_flow(d, &f) {
                // The quoted packet went the other way through this interface. cnat-input
                // may have translated the error back, to quote a DNATed flow as its client
                // sent it (to the VIP): that form was never cached, but its reply was, in
                // this direction.
                let qk = key(&q, sw, other(dir));
                let allowed =
                    |k: &FlowKey| npol.flows.lookup(k).is_some_and(|x| x.session.flags == ALLOWED);
                if allowed(&qk) || allowed(&reversed(&qk)) {
                    return Ok(None);
                }
            }
        }
        let k = key(&f, sw, dir);
        let class = u8::from(f.proto == IP_PROTO_TCP);
        let entry = |flags| cached_verdict(flags, class, now);
        // A first fragment leaves its verdict for the rest of its datagram (best effort: a full
        // table leaves them to be evaluated alone, counted).
        let remember = |allowed: bool| {
            if f.more_frags {
                let flags = if allowed { ALLOWED } else { DENIED };
                let _ = npol.fragments.insert(&frag_key(&f, sw, dir), &entry(flags));
            }
        };
        if let Some(found) = npol.flows.lookup(&k) {
            npol.flows.touch(&found, now, class);
            let allowed = found.session.flags == ALLOWED;
            if allowed {
                *allowed_at = Some((found.slot, found.header));
            }
            remember(allowed);
            SessionVerdicts::sync(&self.cnat.sessions, b, dir, sw, epoch, allowed);
            return if allowed { Ok(None) } else { Err(error::DENIED) };
        }
        SessionVerdicts::sync(&self.cnat.sessions, b, dir, sw, epoch, false);
        let v = verdict(t, sw, dir, &five_tuple(&f, d));
        remember(v == Verdict::Allow);
        let mut full = false;
        match v {
            Verdict::Allow => {
                full |= is_full(npol.flows.insert(&k, &entry(ALLOWED)));
                // The reply in each form it can reach npol in: as sent (no cnat on its way,
                // or no return session), and un-NATed by cnat-input when the flow was
                // DNATed. cnat looks the reply up in the FIB it arrives in: for Rx not known
                // yet (the backend's interface), this packet's; for Tx this interface's.
                let reply_fib = match (dir, ip6) {
                    (Direction::Rx, _) => b.meta.fib_index,
                    (Direction::Tx, false) => ifs.fast(sw).ip4_fib,
                    (Direction::Tx, true) => ifs.fast(sw).ip6_fib,
                };
                let rk = reversed(&k);
                full |= allow_reply(npol, &rk, &entry(ALLOWED));
                if let Some(uk) = self.unnated_reply(&k, reply_fib as u16).filter(|u| *u != rk) {
                    full |= allow_reply(npol, &uk, &entry(ALLOWED));
                }
            }
            Verdict::Deny => full |= is_full(npol.flows.insert(&k, &entry(DENIED))),
        }
        if v == Verdict::Deny {
            Err(error::NEW_DENIED)
        } else if full {
            Ok(Some(error::CACHE_FULL))
        } else {
            Ok(Some(error::NEW_ALLOWED))
        }
    }
}

impl<K: FrontKey> Node for NpolNode<K> {
    fn info(&self) -> NodeInfo {
        NodeInfo::internal(self.name(), next::NAMES, error::NAMES)
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        self.tables.refresh(&self.npol.tables);
        self.snat.refresh(&self.cnat.snat);
        if self.front_gate.probing() {
            let (hits, misses) = self.vector::<true>(cx, bufs, nexts);
            self.front_gate.judge(hits, misses);
        } else {
            self.vector::<false>(cx, bufs, nexts);
            cx.errs().count(error::FRONT_BYPASS, 1);
        }
    }
}

impl<K: FrontKey> NpolNode<K> {
    /// A vector's verdicts, with the front cache probed and filled if `PROBE` (a loop for
    /// each, so a back-off adds no test to the hit path); its hits and misses.
    #[inline]
    fn vector<const PROBE: bool>(
        &mut self,
        cx: &mut Ctx<'_>,
        bufs: &mut [u32],
        nexts: &mut [u16],
    ) -> (u32, u32) {
        let (npol, dir) = (&*self.npol, self.dir);
        let errs = cx.errs();
        let arc = cx.arc();
        let now = npol.secs(cx.now);
        let epoch = npol.verdict_epoch();
        let stamp = FrontCache::<K>::stamp(epoch, now);
        let (mut front_hits, mut front_misses) = (0, 0);
        let (fwd, ifs) = (cx.tables.fwd.get(), cx.tables.ifs.get());
        let mut view = cx.bufs.view();
        for (&bi, next_out) in bufs.iter().zip(nexts.iter_mut()) {
            let b = view.get(bi);
            let sw = match dir {
                Direction::Rx => b.meta.rx_sw_if_index,
                Direction::Tx => b.meta.tx_sw_if_index,
            };
            // After rewrite the packet starts at the L2 header the adjacency wrote.
            let l3 = || match dir {
                Direction::Rx => 0,
                Direction::Tx => fwd.adj(b.meta.adj_index).rewrite_len as usize,
            };
            let mut front = None;
            if b.meta.flags & CNAT_SESSION != 0 {
                // The allow copied onto the flow's cnat session: nothing else to read.
                if SessionVerdicts::allows(b.meta.cnat_npol, dir, sw, epoch) {
                    *next_out = arc.next(b.meta.feature_mask);
                    continue;
                }
            } else if PROBE {
                // A plain TCP/UDP packet: this worker's front cache.
                if let Some(k) = b.data().get(l3()..).and_then(|d| K::of_packet(d, sw)) {
                    if self.front.allows(&k, stamp, &npol.flows) {
                        front_hits += 1;
                        *next_out = arc.next(b.meta.feature_mask);
                        continue;
                    }
                    front = Some(k);
                }
            }
            let l3 = l3();
            let mut allowed_at = None;
            let at = VectorTime { now, epoch };
            let decided = self.decide(&b, l3, sw, at, ifs, &mut allowed_at);
            if let Some(k) = front {
                front_misses += 1;
                if let Some((slot, header)) = allowed_at {
                    self.front.set(&k, slot, header, stamp);
                }
            }
            *next_out = match decided {
                Ok(c) => {
                    if let Some(c) = c {
                        errs.count(c, 1);
                    }
                    arc.next(b.meta.feature_mask)
                }
                Err(error::NEW_DENIED) => {
                    errs.count(error::NEW_DENIED, 1);
                    b.meta.error = errs.error(error::DENIED);
                    next::DROP
                }
                Err(e) => {
                    b.meta.error = errs.error(e);
                    next::DROP
                }
            };
        }
        // Once a vector: a count a packet would cost the hit path its atomic add.
        if front_hits != 0 {
            errs.count(error::FRONT_HIT, front_hits as u64);
        }
        (front_hits, front_misses)
    }
}

crate::node_errors! {
    pub mod stage_error {
        DENIED => "untracked or pre-DNAT policy deny (dropped)",
        TRUNCATED => "truncated headers (dropped)",
        ALLOWED => "allowed (later policy stages skipped)",
        NEW_ALLOWED => "new flow allowed by a pre-DNAT policy",
        NEW_DENIED => "new flow denied by a pre-DNAT policy",
        CACHE_FULL => "flow cache full (evaluated alone)",
    }
}

/// npol-untracked-rx/tx-ip4/ip6 and npol-prednat-ip4/ip6: a host endpoint's untracked and
/// pre-DNAT sections ([`crate::npol::section`]).
///
/// Untracked: every packet is judged alone and nothing is cached. Pre-DNAT: a flow's first
/// packet is judged before cnat's DNAT and its verdict (also "no match") cached in
/// [`Npol::flows`] under [`PREDNAT_KEY`]; an allowed flow also caches its reply as allowed for
/// npol-tx on the interface, as npol-rx does. An ALLOW clears the later stages' bits from the
/// packet's `feature_mask` (on this arc only; a received untracked ALLOW cnat's DNAT as well),
/// a DENY is a counted drop, and anything else goes on to the next stage.
pub struct StageNode {
    npol: Arc<Npol>,
    tables: Snapshot<NpolTables>,
    stage: Stage,
    dir: Direction,
    ip6: bool,
    /// The bits of the later policy stages on this node's arc, which an ALLOW skips.
    skip: u32,
}

impl StageNode {
    pub fn new(npol: Arc<Npol>, stage: Stage, dir: Direction, ip6: bool) -> Self {
        Self {
            tables: npol.tables.snapshot(),
            npol,
            stage,
            dir,
            ip6,
            skip: 0,
        }
    }

    fn name(&self) -> &'static str {
        match (self.stage, self.dir, self.ip6) {
            (Stage::Untracked, Direction::Rx, false) => UNTRACKED_RX_IP4.node,
            (Stage::Untracked, Direction::Rx, true) => UNTRACKED_RX_IP6.node,
            (Stage::Untracked, Direction::Tx, false) => UNTRACKED_TX_IP4.node,
            (Stage::Untracked, Direction::Tx, true) => UNTRACKED_TX_IP6.node,
            (Stage::PreDnat, _, false) => PREDNAT_IP4.node,
            (Stage::PreDnat, _, true) => PREDNAT_IP6.node,
        }
    }

    fn arc_name(&self) -> &'static str {
        match (self.dir, self.ip6) {
            (Direction::Rx, false) => "ip4-unicast",
            (Direction::Rx, true) => "ip6-unicast",
            (Direction::Tx, false) => "ip4-output",
            (Direction::Tx, true) => "ip6-output",
        }
    }

    /// The packet's verdict in this stage (None: on to the next stage) and its counter: for
    /// a deny the drop reason or an event to count, for an allow the event (unused for None).
    #[inline]
    fn decide(&self, b: &Buf<'_>, l3: usize, sw: u32, now: u32) -> (Option<Verdict>, u16) {
        let (npol, t, ip6) = (&*self.npol, self.tables.get(), self.ip6);
        let Some(d) = b.data().get(l3..) else {
            return (Some(Verdict::Deny), stage_error::TRUNCATED);
        };
        let Ok(f) = (if ip6 { nat::flow6(d) } else { nat::flow4(d) }) else {
            return (Some(Verdict::Deny), stage_error::TRUNCATED);
        };
        if not_policed(&f, d, self.dir) {
            return (None, stage_error::ALLOWED);
        }
        let p = five_tuple(&f, d);
        if self.stage == Stage::Untracked {
            let v = stage_verdict(t, sw, self.dir, Stage::Untracked, &p);
            let c = match v {
                Some(Verdict::Allow) => stage_error::ALLOWED,
                _ => stage_error::DENIED,
            };
            return (v, c);
        }
        let fib = sw as u16 | PREDNAT_KEY;
        // Later fragments carry no ports: they follow their first fragment's pre-DNAT verdict
        // (npol-rx, skipped for it, has none); without one they go on to npol-rx.
        if f.l4 == L4::Fragment {
            let verdict = npol
                .fragments
                .lookup(&f.fragment_key(stage_of(Direction::Rx), fib));
            return match verdict.map(|x| x.session.flags) {
                Some(ALLOWED) => (Some(Verdict::Allow), stage_error::ALLOWED),
                Some(DENIED) => (Some(Verdict::Deny), stage_error::DENIED),
                _ => (None, stage_error::ALLOWED),
            };
        }
        let k = f.key(stage_of(Direction::Rx), fib);
        let class = u8::from(f.proto == IP_PROTO_TCP);
        let entry = |flags| cached_verdict(flags, class, now);
        // A first fragment leaves its verdict for the rest of its datagram (best effort).
        let remember = |flags| {
            if f.more_frags {
                let fk = f.fragment_key(stage_of(Direction::Rx), fib);
                let _ = npol.fragments.insert(&fk, &entry(flags));
            }
        };
        if let Some(found) = npol.flows.lookup(&k) {
            npol.flows.touch(&found, now, class);
            remember(found.session.flags);
            return match found.session.flags {
                ALLOWED => (Some(Verdict::Allow), stage_error::ALLOWED),
                DENIED => (Some(Verdict::Deny), stage_error::DENIED),
                _ => (None, stage_error::ALLOWED),
            };
        }
        let v = stage_verdict(t, sw, Direction::Rx, Stage::PreDnat, &p);
        let flags = match v {
            Some(Verdict::Allow) => ALLOWED,
            Some(Verdict::Deny) => DENIED,
            None => NO_MATCH,
        };
        remember(flags);
        let mut full = is_full(npol.flows.insert(&k, &entry(flags)));
        if v == Some(Verdict::Allow) {
            // The reply leaves through this interface's npol-tx, from the VIP (cnat un-NATs it
            // first), under npol-tx's own key.
            let rk = FlowKey {
                fib: sw as u16,
                ..reversed(&k)
            };
            full |= allow_reply(npol, &rk, &entry(ALLOWED));
        }
        let c = match v {
            _ if full => stage_error::CACHE_FULL,
            Some(Verdict::Allow) => stage_error::NEW_ALLOWED,
            _ => stage_error::NEW_DENIED,
        };
        (v, c)
    }
}

impl Node for StageNode {
    fn info(&self) -> NodeInfo {
        NodeInfo::internal(self.name(), next::NAMES, stage_error::NAMES)
    }

    fn attach_features(&mut self, set: &FeatureSet) {
        // Received untracked traffic skips cnat's DNAT too, as NOTRACK in raw PREROUTING
        // keeps a packet from Linux's nat table. Not so on the way out: a forwarded flow was
        // tracked (and maybe DNATed) when it came in, and Linux SNATs it whatever the egress
        // untracked rules say (raw OUTPUT sees only the host's own packets).
        use super::cnat as c;
        let later: &[&str] = match (self.stage, self.dir, self.ip6) {
            (Stage::Untracked, Direction::Rx, false) => {
                &[PREDNAT_IP4.node, c::INPUT_IP4.node, RX_IP4.node]
            }
            (Stage::Untracked, Direction::Rx, true) => {
                &[PREDNAT_IP6.node, c::INPUT_IP6.node, RX_IP6.node]
            }
            (Stage::Untracked, Direction::Tx, false) => &[TX_IP4.node],
            (Stage::Untracked, Direction::Tx, true) => &[TX_IP6.node],
            (Stage::PreDnat, _, false) => &[RX_IP4.node],
            (Stage::PreDnat, _, true) => &[RX_IP6.node],
        };
        let arc = self.arc_name();
        self.skip = later
            .iter()
            .filter_map(|n| set.find(arc, n).ok())
            .fold(0, |m, (_, bit)| m | bit);
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        self.tables.refresh(&self.npol.tables);
        let errs = cx.errs();
        let arc = cx.arc();
        let now = self.npol.secs(cx.now);
        let fwd = cx.tables.fwd.get();
        let mut view = cx.bufs.view();
        for (&bi, next_out) in bufs.iter().zip(nexts.iter_mut()) {
            let b = view.get(bi);
            let (sw, l3) = match self.dir {
                Direction::Rx => (b.meta.rx_sw_if_index, 0),
                // After rewrite the packet starts at the L2 header the adjacency wrote.
                Direction::Tx => (
                    b.meta.tx_sw_if_index,
                    fwd.adj(b.meta.adj_index).rewrite_len as usize,
                ),
            };
            let (v, c) = self.decide(&b, l3, sw, now);
            *next_out = match v {
                Some(Verdict::Deny) => {
                    // A new flow's deny (or one not cached) is counted, and dropped as a deny.
                    let reason = if c == stage_error::TRUNCATED {
                        c
                    } else {
                        if c != stage_error::DENIED {
                            errs.count(c, 1);
                        }
                        stage_error::DENIED
                    };
                    b.meta.error = errs.error(reason);
                    next::DROP
                }
                Some(Verdict::Allow) => {
                    errs.count(c, 1);
                    b.meta.feature_mask &= !self.skip;
                    arc.next(b.meta.feature_mask)
                }
                None => arc.next(b.meta.feature_mask),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply_key(sport: u16) -> FlowKey {
        FlowKey {
            src: 0xffff_c612_0002,
            dst: 0xffff_c613_0002,
            sport,
            dport: 41000,
            proto: 6,
            stage: stage_of(Direction::Rx),
            fib: 1,
            ..Default::default()
        }
    }

    fn flags_of(n: &Npol, k: &FlowKey) -> Option<(u8, u32)> {
        n.flows
            .lookup(k)
            .map(|x| (x.session.flags, x.session.last_seen))
    }

    /// An IPv4 packet of `len` bytes (total_len `total`), TCP or UDP ports 40000 -> 80.
    fn ip4(proto: u8, len: usize, total: u16, frag: u16) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[6..8].copy_from_slice(&frag.to_be_bytes());
        p[9] = proto;
        p[12..20].copy_from_slice(&[198, 18, 0, 2, 198, 19, 0, 2]);
        p[20..24].copy_from_slice(&[0x9c, 0x40, 0, 80]);
        p
    }

    #[test]
    fn a_window_under_half_hits_backs_off_the_front_cache_then_probes_again() {
        let mut g = FrontGate::default();
        // Vectors of 256 probes, a third of them hits: the window's last one starts it.
        for _ in 0..FRONT_WINDOW / 256 {
            assert!(g.probing());
            g.judge(85, 171);
        }
        let skipped = (0..FRONT_BACKOFF).filter(|_| !g.probing()).count() as u32;
        assert_eq!(skipped, FRONT_BACKOFF, "every vector of the back-off skips the cache");
        assert!(g.probing(), "then it probes again");
        // Flows that fit: a window of mostly hits keeps it probing.
        for _ in 0..2 * FRONT_WINDOW / 256 {
            assert!(g.probing());
            g.judge(200, 56);
        }
        assert!(g.probing());
    }

    #[test]
    fn the_front_key_takes_exactly_the_packets_the_plain_parse_does() {
        let cases = [
            (ip4(6, 60, 60, 0), true),
            (ip4(17, 48, 48, 0x4000), true),
            (ip4(17, 48, 27, 0), false),
            (ip4(6, 60, 39, 0), false),
            (ip4(6, 39, 39, 0), false),
            (ip4(6, 60, 60, 0x2000), false),
            (ip4(6, 60, 60, 0x0001), false),
            (ip4(6, 60, 60, 0x0100), false),
            (ip4(1, 60, 60, 0), false),
            ({
                let mut p = ip4(6, 60, 60, 0);
                p[0] = 0x46;
                p
            }, false),
        ];
        for (i, (p, plain)) in cases.iter().enumerate() {
            assert_eq!(nat::flow4_plain(p).is_some(), *plain, "case {i}: the parse");
            assert_eq!(Front4Key::of_packet(p, 3).is_some(), *plain, "case {i}: the key");
        }
        let k = |p: &[u8], sw| Front4Key::of_packet(p, sw).unwrap();
        let tcp = ip4(6, 60, 60, 0);
        let mut other_port = tcp.clone();
        other_port[23] = 81;
        assert!(k(&tcp, 3) != k(&tcp, 4), "the interface is in the key");
        assert!(k(&tcp, 3) != k(&ip4(17, 60, 60, 0), 3), "the protocol is");
        assert!(k(&tcp, 3) != k(&other_port, 3), "the ports are");
    }

    /// An IPv6 packet of `len` bytes (payload_len `payload`), next header `nh`, ports 40000
    /// -> 80 right after the fixed header.
    fn ip6(nh: u8, len: usize, payload: u16) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&payload.to_be_bytes());
        p[6] = nh;
        p[8] = 0xfd;
        p[23] = 2;
        p[24] = 0xfd;
        p[39] = 3;
        p[40..44].copy_from_slice(&[0x9c, 0x40, 0, 80]);
        p
    }

    #[test]
    fn an_ip6_front_key_only_for_packets_the_parse_gives_ports_right_after_the_header() {
        let cases = [
            (ip6(6, 60, 20), true),
            (ip6(17, 60, 20), true),
            (ip6(17, 60, 8), true),
            (ip6(17, 60, 7), false),
            (ip6(17, 48, 8), true),
            (ip6(17, 47, 8), false),
            (ip6(6, 60, 19), false),
            (ip6(6, 59, 20), false),
            (ip6(44, 80, 40), false),
            (ip6(0, 80, 40), false),
            (ip6(58, 60, 20), false),
        ];
        for (i, (p, keyed)) in cases.iter().enumerate() {
            let f = nat::flow6(p);
            let ports = f.is_ok_and(|f| f.l4 == L4::Ports && f.l4_off == IP6_HDR);
            assert_eq!(Front6Key::of_packet(p, 3).is_some(), *keyed, "case {i}: the key");
            assert!(ports || !keyed, "case {i}: a key only where the parse reads ports");
        }
        let k = |p: &[u8], sw| Front6Key::of_packet(p, sw).unwrap();
        let tcp = ip6(6, 60, 20);
        let mut other_port = tcp.clone();
        other_port[43] = 81;
        let mut other_dst = tcp.clone();
        other_dst[39] = 4;
        let mut other_src_top = tcp.clone();
        other_src_top[9] = 1;
        assert!(k(&tcp, 3) != k(&tcp, 4), "the interface is in the key");
        assert!(k(&tcp, 3) != k(&ip6(17, 60, 20), 3), "the protocol is");
        assert!(k(&tcp, 3) != k(&other_port, 3), "the ports are");
        assert!(k(&tcp, 3) != k(&other_dst, 3), "the destination is");
        assert!(k(&tcp, 3) != k(&other_src_top, 3), "all of the source is");
    }

    #[test]
    fn ip6_front_keys_of_one_prefix_spread_over_the_sets() {
        // 4096 destinations varying in their last bytes, as pods of one node: the sets they
        // index stay near a uniform spread (no set with more than a handful).
        let c = FrontCache::<Front6Key>::new(FRONT_ENTRIES);
        let mut per_set = vec![0u8; c.sets.len()];
        for i in 0..4096u32 {
            let mut p = ip6(17, 60, 20);
            p[36..40].copy_from_slice(&i.to_be_bytes());
            per_set[c.index(&Front6Key::of_packet(&p, 1).unwrap())] += 1;
        }
        assert!(per_set.iter().all(|&n| n <= 6), "worst set: {}", per_set.iter().max().unwrap());
    }

    #[test]
    fn a_front_entry_counts_while_its_slot_holds_it_in_its_second_and_epoch() {
        let n = Npol::with_max_flows(16);
        let mut c = FrontCache::new(64);
        let fk = Front4Key::of_packet(&ip4(6, 60, 60, 0), 1).unwrap();
        let k = reply_key(80);
        n.flows.insert(&k, &cached_verdict(ALLOWED, 1, 5)).unwrap();
        let f = n.flows.lookup(&k).unwrap();
        let at = FrontCache::<Front4Key>::stamp(0, 5);
        assert!(!c.allows(&fk, at, &n.flows), "empty");
        c.set(&fk, f.slot, f.header, at);
        assert!(c.allows(&fk, at, &n.flows));
        assert!(!c.allows(&fk, FrontCache::<Front4Key>::stamp(0, 6), &n.flows), "the next second");
        assert!(!c.allows(&fk, FrontCache::<Front4Key>::stamp(1, 5), &n.flows), "another epoch");
        n.flows.remove(&k);
        assert!(!c.allows(&fk, at, &n.flows), "removed");
        let again = n.flows.insert(&k, &cached_verdict(ALLOWED, 1, 5)).unwrap();
        assert_eq!(again.slot, f.slot, "the same slot, taken again");
        assert!(!c.allows(&fk, at, &n.flows), "a new entry in the slot");
    }

    #[test]
    fn allow_reply_replaces_a_deny_and_refreshes_an_allow() {
        let n = Npol::with_max_flows(16);
        let k = reply_key(80);
        assert!(!allow_reply(&n, &k, &cached_verdict(ALLOWED, 1, 5)));
        assert_eq!(flags_of(&n, &k), Some((ALLOWED, 5)), "a new entry");
        assert!(!allow_reply(&n, &k, &cached_verdict(ALLOWED, 1, 9)));
        assert_eq!(flags_of(&n, &k), Some((ALLOWED, 9)), "kept, its time refreshed");
        assert_eq!(n.flows.len(), 1);
        let d = reply_key(81);
        n.flows.insert(&d, &cached_verdict(DENIED, 1, 5)).unwrap();
        assert!(!allow_reply(&n, &d, &cached_verdict(ALLOWED, 1, 7)));
        assert_eq!(flags_of(&n, &d), Some((ALLOWED, 7)), "a cached deny replaced");
        assert_eq!(n.flows.len(), 2);
    }

    #[test]
    fn session_verdicts_name_their_interface_direction_and_epoch() {
        type V = SessionVerdicts;
        let (rx, tx) = (Direction::Rx, Direction::Tx);
        let w = V::with_allow(0, rx, 7, 3);
        assert!(V::allows(w, rx, 7, 3));
        assert!(!V::allows(w, tx, 7, 3), "the other direction");
        assert!(!V::allows(w, rx, 8, 3), "another interface");
        assert!(!V::allows(w, rx, 7, 4), "another epoch");
        let w = V::with_allow(w, tx, 9, 3);
        assert!(V::allows(w, rx, 7, 3) && V::allows(w, tx, 9, 3), "both kept");
        let w2 = V::with_allow(w, tx, 9, 4);
        assert!(V::allows(w2, tx, 9, 4));
        assert!(!V::allows(w2, rx, 7, 3) && !V::allows(w2, rx, 7, 4), "older epoch's dropped");
        // Clearing takes only this direction's allow of this interface.
        assert_eq!(V::without_allow(w, rx, 8), w);
        let w3 = V::without_allow(w, rx, 7);
        assert!(!V::allows(w3, rx, 7, 3) && V::allows(w3, tx, 9, 3));
        // An interface index a side cannot hold is never allowed (4096 + 7 is not 7).
        assert_eq!(V::with_allow(0, rx, 4096 + 7, 3), 0);
        assert!(!V::allows(w, rx, 4096 + 7, 3));
        assert_eq!(w & !NPOL_MASK, 0, "the generation bits are the table's");
    }

    #[test]
    fn allow_reply_reports_a_full_table() {
        let n = Npol::with_max_flows(1);
        assert!(!allow_reply(&n, &reply_key(80), &cached_verdict(ALLOWED, 1, 5)));
        assert!(
            allow_reply(&n, &reply_key(81), &cached_verdict(ALLOWED, 1, 5)),
            "no room: counted"
        );
        assert_eq!(flags_of(&n, &reply_key(81)), None);
    }
}
