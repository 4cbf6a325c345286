//! IPv6: ip6-input, ip6-lookup, ip6-rewrite, ip6-local (echo, neighbor discovery, punt),
//! ip6-discover (neighbor solicitation for glean/incomplete adjacencies), ip6-icmp-error.
//!
//! Formats follow RFC 8200 (header, extension headers), RFC 4443 (ICMPv6) and RFC 4861
//! (neighbor discovery).

use super::ArcEdges;
use crate::buffer::{flags, Buf, Buffers};
use crate::fib::LEAF_MISS;
use crate::graph::{Node, NodeInfo, NodeKind, MAX_VECTOR};
use crate::runtime::{Ctx, Errors};
use crate::tables::{if_flags, AdjKind, Adjacency, FwdTable, IfTable, Learned, UNREACH_LB};
use crate::wire::{self, Ip6Hdr, Ip6HdrMut, Mac, IP6_HDR};

/// The IPv6 nodes of the standard graph; `features` is the ip6-unicast arc.
pub fn nodes(features: &[&'static str]) -> Vec<Box<dyn Node>> {
    vec![
        Box::new(Ip6Input::new(features)),
        Box::new(Ip6Lookup::default()),
        Box::new(Ip6Rewrite),
        Box::new(Ip6Local),
        Box::new(Ip6Discover::default()),
        Box::new(Ip6IcmpError),
    ]
}

/// ICMPv6 types, codes and ND constants rvpp uses.
pub mod icmp6 {
    pub const DEST_UNREACH: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAM_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const ROUTER_SOLICIT: u8 = 133;
    pub const ROUTER_ADVERT: u8 = 134;
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    pub const NEIGHBOR_ADVERT: u8 = 136;
    pub const REDIRECT: u8 = 137;
    /// Destination unreachable codes.
    pub const NO_ROUTE: u8 = 0;
    pub const ADMIN_PROHIBITED: u8 = 1;
    pub const BEYOND_SCOPE: u8 = 2;
    pub const ADDR_UNREACH: u8 = 3;
    pub const PORT_UNREACH: u8 = 4;
    /// Time exceeded code: hop limit exceeded in transit.
    pub const HOP_LIMIT_EXCEEDED: u8 = 0;
    /// ND option types.
    pub const OPT_SOURCE_LL: u8 = 1;
    pub const OPT_TARGET_LL: u8 = 2;
    /// NA flags, in the first byte after the checksum.
    pub const NA_ROUTER: u8 = 0x80;
    pub const NA_SOLICITED: u8 = 0x40;
    pub const NA_OVERRIDE: u8 = 0x20;
    /// NS and NA: 4 bytes header, 4 reserved/flags, 16 target.
    pub const ND_LEN: usize = 24;
    /// An Ethernet link-layer address option.
    pub const LL_OPT_LEN: usize = 8;
}

/// Extension header (and related) next-header values.
pub mod ext {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const NO_NEXT: u8 = 59;
    pub const DEST_OPTS: u8 = 60;
}

pub const ALL_NODES: u128 = 0xff02 << 112 | 1;
pub const ALL_ROUTERS: u128 = 0xff02 << 112 | 2;
const SOLICITED_PREFIX: u128 = 0xff02_0000_0000_0000_0000_0001_ff00_0000;
/// The /104 of the solicited-node prefix.
const SOLICITED_MASK: u128 = !0xff_ffff;
const LOOPBACK: u128 = 1;
/// Longest packet an ICMPv6 error may be (the IPv6 minimum MTU, RFC 4443 2.4(c)).
const ICMP6_ERROR_MAX: usize = 1280;
/// Extension headers walked before a chain is called too long.
const MAX_EXT_HDRS: usize = 8;

#[inline(always)]
pub fn is_multicast(a: u128) -> bool {
    a >> 120 == 0xff
}

/// fe80::/10.
#[inline(always)]
pub fn is_link_local(a: u128) -> bool {
    a >> 118 == 0x3fa
}

/// The solicited-node multicast group of `a` (RFC 4291 2.7.1).
#[inline]
pub fn solicited_node(a: u128) -> u128 {
    SOLICITED_PREFIX | (a & 0xff_ffff)
}

/// Ethernet address of an IPv6 multicast group (RFC 2464 7).
#[inline]
pub fn multicast_mac(group: u128) -> Mac {
    let g = (group as u32).to_be_bytes();
    [0x33, 0x33, g[0], g[1], g[2], g[3]]
}

/// The modified EUI-64 link-local address of a MAC (RFC 4291 appendix A).
#[inline]
pub fn link_local_from_mac(m: &Mac) -> u128 {
    let iid = u64::from_be_bytes([m[0] ^ 2, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]]);
    0xfe80 << 112 | iid as u128
}

/// Ask ip6-icmp-error to answer this packet with (type, code, data): stored in opaque[0..3].
#[inline]
pub fn set_icmp6_error(b: &mut Buf<'_>, ty: u8, code: u8, data: u32) {
    b.meta.opaque[0] = ty as u32;
    b.meta.opaque[1] = code as u32;
    b.meta.opaque[2] = data;
}

/// Calls `f` on `sw`'s IPv6 addresses (its own, its unnumbered source's global ones, and the
/// link-local derived from its MAC) until it returns true.
fn any_addr(ifs: &IfTable, sw: u32, mut f: impl FnMut(u128) -> bool) -> bool {
    let fast = ifs.fast(sw);
    if fast.flags & if_flags::L2 != 0 && f(link_local_from_mac(&fast.mac)) {
        return true;
    }
    let Some(i) = ifs.get(sw) else { return false };
    if i.ip6_addrs.iter().any(|a| f(a.0)) {
        return true;
    }
    match i.unnumbered_of.and_then(|u| ifs.get(u)) {
        Some(u) => u.ip6_addrs.iter().any(|a| !is_link_local(a.0) && f(a.0)),
        None => false,
    }
}

/// `ip` is one of `sw`'s own addresses.
pub fn is_our_ip6(ifs: &IfTable, sw: u32, ip: u128) -> bool {
    any_addr(ifs, sw, |a| a == ip)
}

/// `group` is all-nodes, all-routers, or the solicited-node group of one of `sw`'s addresses.
fn in_our_group(ifs: &IfTable, sw: u32, group: u128) -> bool {
    group == ALL_NODES
        || group == ALL_ROUTERS
        || (group & SOLICITED_MASK == SOLICITED_PREFIX
            && any_addr(ifs, sw, |a| a & 0xff_ffff == group & 0xff_ffff))
}

/// `ip` is link-local or in one of `sw`'s connected prefixes.
fn is_on_link(ifs: &IfTable, sw: u32, ip: u128) -> bool {
    if is_link_local(ip) {
        return true;
    }
    let Some(i) = ifs.get(sw) else { return false };
    i.ip6_addrs.iter().any(|&(a, l)| {
        let m = if l == 0 {
            0
        } else {
            u128::MAX << (128 - l.min(128) as u32)
        };
        !is_link_local(a) && a & m == ip & m
    })
}

/// `sw`'s link-local address: a configured one, else the one derived from its MAC.
fn link_local_of(ifs: &IfTable, sw: u32) -> Option<u128> {
    if let Some(a) = ifs
        .get(sw)
        .and_then(|i| i.ip6_addrs.iter().find(|a| is_link_local(a.0)))
    {
        return Some(a.0);
    }
    let fast = ifs.fast(sw);
    (fast.flags & if_flags::L2 != 0).then(|| link_local_from_mac(&fast.mac))
}

/// First non-link-local address of `sw`, following unnumbered.
fn global_of(ifs: &IfTable, sw: u32) -> Option<u128> {
    if let Some(a) = ifs.ip6_source(sw).filter(|a| !is_link_local(*a)) {
        return Some(a);
    }
    let i = ifs.get(sw)?;
    let i = match i.unnumbered_of {
        Some(u) => ifs.get(u)?,
        None => i,
    };
    i.ip6_addrs
        .iter()
        .find(|a| !is_link_local(a.0))
        .map(|a| a.0)
}

/// Our source address for a packet out of `sw` to `dst`: same scope when we can (RFC 6724).
fn source_for(ifs: &IfTable, sw: u32, dst: u128) -> Option<u128> {
    if is_link_local(dst) {
        link_local_of(ifs, sw)
    } else {
        global_of(ifs, sw).or_else(|| link_local_of(ifs, sw))
    }
}

/// One's-complement sum folded to 16 bits, not inverted.
#[inline]
fn fold16(acc: u64) -> u16 {
    !wire::fold(acc)
}

/// Checksum `hc` after the covered data summing to `old` changed to sum to `new` (RFC 1624).
#[inline]
fn csum_update(hc: u16, old: u64, new: u64) -> u16 {
    let acc = (!hc) as u64 + (!fold16(old)) as u64 + fold16(new) as u64;
    wire::fold(acc)
}

/// One's-complement sum of `len` bytes of the chain at `head` from `off` bytes into its first
/// buffer, added to `acc`. None if the chain is shorter or broken.
fn chain_sum(bufs: &mut Buffers, head: u32, off: usize, len: usize, mut acc: u64) -> Option<u64> {
    let (mut bi, mut skip, mut left, mut odd) = (head, off, len, false);
    // Bounded, so a corrupt (cyclic) chain cannot hang the worker.
    for _ in 0..1024 {
        let b = bufs.get(bi);
        let seg = b.data().get(skip..).unwrap_or(&[]);
        let take = seg.len().min(left);
        let s = fold16(wire::ones_sum(&seg[..take], 0));
        // A segment starting at an odd offset of the message has its bytes in swapped lanes.
        acc += if odd { s.swap_bytes() } else { s } as u64;
        odd ^= take % 2 == 1;
        left -= take;
        if left == 0 {
            return Some(acc);
        }
        if b.meta.flags & flags::NEXT_PRESENT == 0 {
            return None;
        }
        bi = b.meta.next_buffer;
        skip = 0;
    }
    None
}

/// The L2 header a packet arrived with (Ethernet plus at most two tags).
struct L2Hdr {
    bytes: [u8; 22],
    len: usize,
}

/// Copy the L2 header in front of the packet (which starts at its IPv6 header), if any.
fn save_l2(b: &mut Buf<'_>) -> Option<L2Hdr> {
    if b.meta.flags & flags::L2_HDR_VALID == 0 {
        return None;
    }
    let len = b.meta.current_data as isize - b.meta.l2_hdr_offset as isize;
    if !(wire::ETH_HDR as isize..=22).contains(&len) {
        return None;
    }
    let len = len as usize;
    if !b.retreat(len) {
        return None;
    }
    let mut bytes = [0u8; 22];
    bytes[..len].copy_from_slice(&b.data()[..len]);
    b.advance(len);
    Some(L2Hdr { bytes, len })
}

/// Prepend `l2` turned around: to `to` (default: the frame's sender) from `our_mac`, keeping
/// its tags and ethertype.
fn push_l2(b: &mut Buf<'_>, l2: &L2Hdr, our_mac: &Mac, to: Option<Mac>) -> bool {
    if !b.retreat(l2.len) {
        return false;
    }
    let mut sender = [0u8; 6];
    sender.copy_from_slice(&l2.bytes[6..12]);
    let d = b.data_mut();
    d[..l2.len].copy_from_slice(&l2.bytes[..l2.len]);
    d[0..6].copy_from_slice(&to.unwrap_or(sender));
    d[6..12].copy_from_slice(our_mac);
    true
}

/// Why an extension-header walk stopped short (local_error codes).
type WalkError = u16;

/// Walk the extension headers of the IPv6 packet in `d` (which ends where the packet or the
/// first buffer ends). Returns (upper-layer protocol, its offset). Every length is checked
/// against `d` and the walk is bounded. `strict` (packets for us) also rejects options that
/// demand a discard, routing headers with segments left and real fragments; otherwise a
/// non-first fragment stops the walk with protocol `ext::FRAGMENT`.
fn walk_ext(d: &[u8], strict: bool) -> Result<(u8, usize), WalkError> {
    let Some(h) = Ip6Hdr::new(d) else {
        return Err(local_error::BAD_EXT);
    };
    let mut nh = h.next_header();
    let mut off = IP6_HDR;
    for n in 0..=MAX_EXT_HDRS {
        match nh {
            ext::HOP_BY_HOP | ext::ROUTING | ext::DEST_OPTS => {
                // Hop-by-hop may only follow the IPv6 header (RFC 8200 4.1).
                if n == MAX_EXT_HDRS || (nh == ext::HOP_BY_HOP && n != 0) {
                    return Err(if n == MAX_EXT_HDRS {
                        local_error::EXT_TOO_LONG
                    } else {
                        local_error::BAD_EXT
                    });
                }
                let Some(&[next, units]) = d.get(off..off + 2).and_then(|s| s.first_chunk()) else {
                    return Err(local_error::BAD_EXT);
                };
                let len = (units as usize + 1) * 8;
                let Some(hdr) = d.get(off..off + len) else {
                    return Err(local_error::BAD_EXT);
                };
                if strict {
                    if nh == ext::ROUTING {
                        if hdr[3] != 0 {
                            return Err(local_error::ROUTING_HDR);
                        }
                    } else {
                        options_ok(&hdr[2..])?;
                    }
                }
                nh = next;
                off += len;
            }
            ext::FRAGMENT => {
                if n == MAX_EXT_HDRS {
                    return Err(local_error::EXT_TOO_LONG);
                }
                let Some(hdr) = d.get(off..off + 8) else {
                    return Err(local_error::BAD_EXT);
                };
                let fo = u16::from_be_bytes([hdr[2], hdr[3]]);
                // Offset 0 without more fragments is an atomic fragment: a whole packet
                // (RFC 6946).
                if fo & 0xfff9 != 0 {
                    if strict {
                        return Err(local_error::FRAGMENT);
                    }
                    if fo & 0xfff8 != 0 {
                        return Ok((ext::FRAGMENT, off));
                    }
                }
                nh = hdr[0];
                off += 8;
            }
            _ => return Ok((nh, off)),
        }
    }
    Err(local_error::EXT_TOO_LONG)
}

/// Check the TLV options of a hop-by-hop or destination options header (RFC 8200 4.2).
fn options_ok(mut o: &[u8]) -> Result<(), WalkError> {
    while let Some(&t) = o.first() {
        if t == 0 {
            // Pad1.
            o = &o[1..];
            continue;
        }
        let Some(&l) = o.get(1) else {
            return Err(local_error::BAD_EXT);
        };
        let n = 2 + l as usize;
        if n > o.len() {
            return Err(local_error::BAD_EXT);
        }
        // We know PadN and nothing else: an unknown option whose top two bits are not 00
        // must make us discard the packet.
        if t != 1 && t >> 6 != 0 {
            return Err(local_error::BAD_OPTION);
        }
        o = &o[n..];
    }
    Ok(())
}

pub fn trace_ip6(b: &Buf<'_>) -> String {
    match Ip6Hdr::new(b.data()) {
        Some(h) => format!(
            "IP6: {} -> {} next {} hop limit {} payload {} fib {}",
            wire::fmt_ip6(h.src()),
            wire::fmt_ip6(h.dst()),
            h.next_header(),
            h.hop_limit(),
            h.payload_len(),
            b.meta.fib_index
        ),
        None => "IP6: (truncated)".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// ip6-input

pub struct Ip6Input {
    arc: ArcEdges,
    features: Vec<&'static str>,
}

const IN_DROP: u16 = 0;
const IN_LOOKUP: u16 = 1;
const IN_ICMP_ERROR: u16 = 2;

pub mod input_error {
    pub const TOO_SHORT: u16 = 0;
    pub const BAD_VERSION: u16 = 1;
    pub const BAD_LENGTH: u16 = 2;
    pub const HOP_LIMIT_EXPIRED: u16 = 3;
    pub const NOT_ENABLED: u16 = 4;
    pub const BAD_ADDRESS: u16 = 5;
    pub const HOP_BY_HOP: u16 = 6;
}

impl Ip6Input {
    pub fn new(features: &[&'static str]) -> Self {
        Self {
            arc: ArcEdges {
                base: 3,
                n: features.len() as u16,
            },
            features: features.to_vec(),
        }
    }
}

impl Node for Ip6Input {
    fn info(&self) -> NodeInfo {
        let mut next = vec!["error-drop", "ip6-lookup", "ip6-icmp-error"];
        next.extend(ArcEdges::names(&self.features, "ip6-lookup"));
        NodeInfo {
            name: "ip6-input",
            kind: NodeKind::Internal,
            next_nodes: next,
            errors: &[
                "ip6 header too short",
                "ip6 bad version",
                "ip6 payload length exceeds packet",
                "ip6 hop limit expired",
                "ip6 not enabled on interface",
                "ip6 bad address (multicast source or loopback)",
                "ip6 packets with hop-by-hop options (counted, forwarded)",
            ],
        }
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        let errs = cx.errs();
        let ifs = cx.tables.ifs.get();
        let mut last_if = u32::MAX;
        let mut fast = Default::default();
        for (i, &bi) in bufs.iter().enumerate() {
            if let Some(&n) = bufs.get(i + 2) {
                cx.bufs.prefetch(n);
            }
            let mut b = cx.bufs.get(bi);
            let rx = b.meta.rx_sw_if_index;
            if rx != last_if {
                last_if = rx;
                fast = ifs.fast(rx);
            }
            nexts[i] = match check(&mut b, fast.flags) {
                Ok(hbh) => {
                    if hbh {
                        errs.count(input_error::HOP_BY_HOP, 1);
                    }
                    b.meta.fib_index = fast.ip6_fib;
                    b.meta.l3_hdr_offset = b.meta.current_data;
                    if fast.feat_ip6 == 0 {
                        IN_LOOKUP
                    } else {
                        b.meta.feature_mask = fast.feat_ip6;
                        self.arc.next(fast.feat_ip6, None)
                    }
                }
                Err(input_error::HOP_LIMIT_EXPIRED) => {
                    b.meta.fib_index = fast.ip6_fib;
                    b.meta.l3_hdr_offset = b.meta.current_data;
                    set_icmp6_error(&mut b, icmp6::TIME_EXCEEDED, icmp6::HOP_LIMIT_EXCEEDED, 0);
                    b.meta.error = errs.error(input_error::HOP_LIMIT_EXPIRED);
                    IN_ICMP_ERROR
                }
                Err(e) => {
                    b.meta.error = errs.error(e);
                    IN_DROP
                }
            };
        }
    }

    fn trace(&self, b: &Buf<'_>) -> String {
        trace_ip6(b)
    }
}

/// Validate an IPv6 header in place; trims link padding. Ok(has hop-by-hop options).
#[inline(always)]
fn check(b: &mut Buf<'_>, if_flags_v: u16) -> Result<bool, u16> {
    if if_flags_v & if_flags::IP6 == 0 {
        return Err(input_error::NOT_ENABLED);
    }
    let d = b.data();
    let Some(h) = Ip6Hdr::new(d) else {
        return Err(input_error::TOO_SHORT);
    };
    if h.version() != 6 {
        return Err(input_error::BAD_VERSION);
    }
    let tl = IP6_HDR + h.payload_len() as usize;
    if tl > b.total_len() {
        return Err(input_error::BAD_LENGTH);
    }
    // RFC 4291: multicast is never a source; loopback never crosses a wire.
    if h.0[8] == 0xff || h.dst() == LOOPBACK || h.src() == LOOPBACK {
        return Err(input_error::BAD_ADDRESS);
    }
    if h.hop_limit() == 0 {
        return Err(input_error::HOP_LIMIT_EXPIRED);
    }
    let hbh = h.next_header() == ext::HOP_BY_HOP;
    if tl < d.len() && b.meta.flags & flags::NEXT_PRESENT == 0 {
        b.set_len(tl);
    }
    Ok(hbh)
}

// ---------------------------------------------------------------------------------------------
// ip6-lookup

#[derive(Default)]
pub struct Ip6Lookup {
    dsts: Vec<u128>,
    leaves: Vec<u32>,
}

const LK_DROP: u16 = 0;
const LK_REWRITE: u16 = 1;
const LK_LOCAL: u16 = 2;
const LK_DISCOVER: u16 = 3;
const LK_ICMP_ERROR: u16 = 4;
const LK_RELOOKUP: u16 = 5;

pub mod lookup_error {
    pub const NO_FIB: u16 = 0;
    pub const DROP_ADJ: u16 = 1;
    pub const NO_ROUTE: u16 = 2;
    pub const PROHIBITED: u16 = 3;
    pub const PUNT: u16 = 4;
    pub const MCAST_NOT_FOR_US: u16 = 5;
    pub const LINK_LOCAL_NOT_FOR_US: u16 = 6;
    pub const LOOKUP_LOOP: u16 = 7;
}

/// Flow hash over addresses, flow label, next header and ports, for ECMP.
#[inline]
pub fn flow_hash6(d: &[u8]) -> u32 {
    let Some(h) = Ip6Hdr::new(d) else { return 0 };
    let (s, t) = (h.src(), h.dst());
    let mut x = s as u64
        ^ ((s >> 64) as u64).rotate_left(13)
        ^ (t as u64).rotate_left(29)
        ^ ((t >> 64) as u64).rotate_left(43);
    x ^= (h.flow_label() as u64) << 8 | h.next_header() as u64;
    if matches!(h.next_header(), wire::IP_PROTO_TCP | wire::IP_PROTO_UDP) {
        if let Some(p) = d.get(IP6_HDR..IP6_HDR + 4) {
            x ^= (u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as u64).rotate_left(37);
        }
    }
    // A multiply only carries bits upwards; fold between rounds so every input bit reaches
    // the low bits that pick the bucket (murmur3's finalizer).
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    x as u32
}

impl Node for Ip6Lookup {
    fn info(&self) -> NodeInfo {
        NodeInfo {
            name: "ip6-lookup",
            kind: NodeKind::Internal,
            next_nodes: vec![
                "error-drop",
                "ip6-rewrite",
                "ip6-local",
                "ip6-discover",
                "ip6-icmp-error",
                "ip6-lookup",
            ],
            errors: &[
                "ip6 no such fib",
                "ip6 adjacency drop",
                "ip6 no route to destination",
                "ip6 administratively prohibited",
                "ip6 punt adjacency",
                "ip6 multicast destination not for us",
                "ip6 link-local destination not for us",
                "ip6 table-lookup loop",
            ],
        }
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
        let ifs = cx.tables.ifs.get();
        // Pass 1: destinations; the FIB index is usually the same for the whole vector.
        let mut fib_index = u32::MAX;
        let mut same_fib = true;
        for (i, &bi) in bufs.iter().enumerate() {
            if let Some(&n) = bufs.get(i + 2) {
                cx.bufs.prefetch(n);
            }
            let b = cx.bufs.get(bi);
            self.dsts[i] = Ip6Hdr::new(b.data()).map_or(0, |h| h.dst());
            if fib_index == u32::MAX {
                fib_index = b.meta.fib_index;
            } else if b.meta.fib_index != fib_index {
                same_fib = false;
            }
        }
        // Pass 2: the lookups, batched.
        if same_fib {
            match fibs.ip6.get(fib_index as usize).and_then(|f| f.as_ref()) {
                Some(fib) => fib.lookup_batch(&self.dsts[..n], &mut self.leaves[..n]),
                None => self.leaves[..n].fill(LEAF_MISS - 1),
            }
        } else {
            for (i, &bi) in bufs.iter().enumerate() {
                let fi = cx.bufs.meta(bi).fib_index;
                self.leaves[i] = match fibs.ip6.get(fi as usize).and_then(|f| f.as_ref()) {
                    Some(fib) => fib.lookup(self.dsts[i]),
                    None => LEAF_MISS - 1,
                };
            }
        }
        // Pass 3: scoped destinations, load-balance and adjacency.
        for (i, &bi) in bufs.iter().enumerate() {
            let leaf = self.leaves[i];
            let dst = self.dsts[i];
            let mut b = cx.bufs.get(bi);
            // Multicast and link-local belong to the receiving link, not to the FIB.
            if is_multicast(dst) || is_link_local(dst) {
                if let Some(next) = scoped(&mut b, ifs, dst, errs) {
                    nexts[i] = next;
                    continue;
                }
            }
            if leaf == LEAF_MISS - 1 {
                b.meta.error = errs.error(lookup_error::NO_FIB);
                nexts[i] = LK_DROP;
                continue;
            }
            let lb = fwd.lb(if leaf == LEAF_MISS { UNREACH_LB } else { leaf });
            let adj_i = if lb.n_buckets <= 1 {
                lb.buckets[0]
            } else {
                let h = flow_hash6(b.data());
                b.meta.flow_hash = h;
                lb.pick(h)
            };
            b.meta.adj_index = adj_i;
            let adj = fwd.adj(adj_i);
            nexts[i] = match adj.kind {
                AdjKind::Rewrite => LK_REWRITE,
                AdjKind::Local => LK_LOCAL,
                AdjKind::Glean | AdjKind::Incomplete => LK_DISCOVER,
                AdjKind::Unreachable => {
                    set_icmp6_error(&mut b, icmp6::DEST_UNREACH, icmp6::NO_ROUTE, 0);
                    b.meta.error = errs.error(lookup_error::NO_ROUTE);
                    LK_ICMP_ERROR
                }
                AdjKind::Prohibit => {
                    set_icmp6_error(&mut b, icmp6::DEST_UNREACH, icmp6::ADMIN_PROHIBITED, 0);
                    b.meta.error = errs.error(lookup_error::PROHIBITED);
                    LK_ICMP_ERROR
                }
                AdjKind::Punt => {
                    b.meta.error = errs.error(lookup_error::PUNT);
                    LK_DROP
                }
                AdjKind::Lookup => {
                    if b.meta.relookups >= crate::tables::MAX_RELOOKUPS {
                        b.meta.error = errs.error(lookup_error::LOOKUP_LOOP);
                        LK_DROP
                    } else {
                        b.meta.relookups += 1;
                        b.meta.fib_index = adj.lookup_fib;
                        LK_RELOOKUP
                    }
                }
                AdjKind::Drop => {
                    b.meta.error = errs.error(lookup_error::DROP_ADJ);
                    LK_DROP
                }
            };
        }
    }

    fn trace(&self, b: &Buf<'_>) -> String {
        format!(
            "fib {} adj {} flow hash 0x{:08x}",
            b.meta.fib_index, b.meta.adj_index, b.meta.flow_hash
        )
    }
}

/// Multicast and link-local destinations: ours go to ip6-local, others are dropped, except a
/// link-local we send ourselves, which follows the FIB (None).
#[cold]
fn scoped(b: &mut Buf<'_>, ifs: &IfTable, dst: u128, errs: Errors<'_>) -> Option<u16> {
    let rx = b.meta.rx_sw_if_index;
    if is_multicast(dst) {
        if in_our_group(ifs, rx, dst) {
            return Some(LK_LOCAL);
        }
        b.meta.error = errs.error(lookup_error::MCAST_NOT_FOR_US);
        return Some(LK_DROP);
    }
    if is_our_ip6(ifs, rx, dst) {
        return Some(LK_LOCAL);
    }
    if b.meta.flags & flags::LOCALLY_ORIGINATED != 0 {
        return None;
    }
    // Link-local traffic is never forwarded off its link (RFC 4291 2.5.6).
    b.meta.error = errs.error(lookup_error::LINK_LOCAL_NOT_FOR_US);
    Some(LK_DROP)
}

// ---------------------------------------------------------------------------------------------
// ip6-rewrite

pub struct Ip6Rewrite;

const RW_DROP: u16 = 0;
const RW_OUTPUT: u16 = 1;
const RW_ICMP_ERROR: u16 = 2;

pub mod rewrite_error {
    pub const HOP_LIMIT_EXPIRED: u16 = 0;
    pub const TOO_BIG: u16 = 1;
    pub const NOT_REWRITE: u16 = 2;
    pub const NO_HEADROOM: u16 = 3;
}

impl Node for Ip6Rewrite {
    fn info(&self) -> NodeInfo {
        NodeInfo {
            name: "ip6-rewrite",
            kind: NodeKind::Internal,
            next_nodes: vec!["error-drop", "interface-output", "ip6-icmp-error"],
            errors: &[
                "ip6 hop limit <= 1",
                "ip6 mtu exceeded (ICMP6 packet too big)",
                "ip6 adjacency is not a rewrite",
                "ip6 no headroom for rewrite",
            ],
        }
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        let errs = cx.errs();
        let fwd = cx.tables.fwd.get();
        for (i, &bi) in bufs.iter().enumerate() {
            if let Some(&n) = bufs.get(i + 2) {
                cx.bufs.prefetch(n);
            }
            let mut b = cx.bufs.get(bi);
            let adj = fwd.adj(b.meta.adj_index);
            let (next, err) = rewrite_one(&mut b, adj);
            if next != RW_OUTPUT {
                b.meta.error = errs.error(err);
            }
            nexts[i] = next;
        }
    }

    fn trace(&self, b: &Buf<'_>) -> String {
        format!(
            "tx sw_if_index {} adj {} {}",
            b.meta.tx_sw_if_index,
            b.meta.adj_index,
            crate::runtime::hex_line(&b.data()[..b.data().len().min(54)])
        )
    }
}

#[inline(always)]
fn rewrite_one(b: &mut Buf<'_>, adj: &Adjacency) -> (u16, u16) {
    if adj.kind != AdjKind::Rewrite {
        return (RW_DROP, rewrite_error::NOT_REWRITE);
    }
    let local = b.meta.flags & flags::LOCALLY_ORIGINATED != 0;
    // A GSO super-frame leaves as segments: what must fit is one segment (IPv6 + TCP headers
    // + gso_size).
    let seg_len = if b.meta.flags & flags::GSO != 0 {
        let d = b.data();
        (d.len() >= IP6_HDR + 20 && d[6] == crate::wire::IP_PROTO_TCP)
            .then(|| IP6_HDR + ((d[IP6_HDR + 12] >> 4) as usize) * 4 + b.meta.gso_size as usize)
    } else {
        None
    };
    {
        let Some(mut h) = Ip6HdrMut::new(b.data_mut()) else {
            return (RW_DROP, rewrite_error::NOT_REWRITE);
        };
        let (hl, mut len) = (
            h.view().hop_limit(),
            IP6_HDR + h.view().payload_len() as usize,
        );
        if let Some(sl) = seg_len {
            len = len.min(sl);
        }
        if !local && hl <= 1 {
            set_icmp6_error(b, icmp6::TIME_EXCEEDED, icmp6::HOP_LIMIT_EXCEEDED, 0);
            return (RW_ICMP_ERROR, rewrite_error::HOP_LIMIT_EXPIRED);
        }
        // IPv6 routers never fragment (RFC 8200 5): tell the source the path MTU.
        if adj.mtu != 0 && len > adj.mtu as usize {
            set_icmp6_error(b, icmp6::PACKET_TOO_BIG, 0, adj.mtu as u32);
            return (RW_ICMP_ERROR, rewrite_error::TOO_BIG);
        }
        if !local {
            h.dec_hop_limit();
        }
    }
    let rl = adj.rewrite_len as usize;
    if rl > 0 {
        if rl > adj.rewrite.len() || !b.retreat(rl) {
            return (RW_DROP, rewrite_error::NO_HEADROOM);
        }
        b.data_mut()[..rl].copy_from_slice(&adj.rewrite[..rl]);
    }
    b.meta.tx_sw_if_index = adj.sw_if_index;
    (RW_OUTPUT, 0)
}

// ---------------------------------------------------------------------------------------------
// ip6-local

pub struct Ip6Local;

const LOC_DROP: u16 = 0;
const LOC_LOOKUP: u16 = 1;
const LOC_REWRITE: u16 = 2;
const LOC_ICMP_ERROR: u16 = 3;
const LOC_OUTPUT: u16 = 4;

pub mod local_error {
    pub const ECHO_REPLIED: u16 = 0;
    pub const NS_ANSWERED: u16 = 1;
    pub const LEARNED: u16 = 2;
    pub const LEARN_QUEUE_FULL: u16 = 3;
    pub const NA_CONSUMED: u16 = 4;
    pub const NS_NOT_FOR_US: u16 = 5;
    pub const ROUTER_SOLICIT: u16 = 6;
    pub const PUNTED: u16 = 7;
    pub const NO_PUNT: u16 = 8;
    pub const FRAGMENT: u16 = 9;
    pub const BAD_EXT: u16 = 10;
    pub const EXT_TOO_LONG: u16 = 11;
    pub const BAD_OPTION: u16 = 12;
    pub const ROUTING_HDR: u16 = 13;
    pub const BAD_ICMP: u16 = 14;
    pub const BAD_ND: u16 = 15;
    pub const NO_L2: u16 = 16;
    pub const NO_SOURCE: u16 = 17;
}

impl Node for Ip6Local {
    fn info(&self) -> NodeInfo {
        NodeInfo {
            name: "ip6-local",
            kind: NodeKind::Internal,
            next_nodes: vec![
                "error-drop",
                "ip6-lookup",
                "ip6-rewrite",
                "ip6-icmp-error",
                "interface-output",
            ],
            errors: &[
                "ip6 echo requests answered",
                "ip6 neighbor solicitations answered",
                "ip6 neighbors learned (sent to the control thread)",
                "ip6 neighbor learn queue full",
                "ip6 neighbor advertisements consumed after learning",
                "ip6 neighbor solicitations not for us",
                "ip6 router solicitations (router advertisements not configured, dropped)",
                "ip6 packets punted to the host",
                "ip6 unknown protocol, no punt path (dropped)",
                "ip6 fragments for us (reassembly not supported)",
                "ip6 malformed extension header",
                "ip6 extension header chain too long",
                "ip6 unrecognized option requiring discard",
                "ip6 routing header with segments left (not supported)",
                "ip6 bad icmp6 packet (length or checksum)",
                "ip6 invalid neighbor discovery packet",
                "ip6 reply needs an L2 header the packet does not have (dropped)",
                "ip6 no source address for reply (dropped)",
            ],
        }
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        let errs = cx.errs();
        let ifs = cx.tables.ifs.get();
        let fwd = cx.tables.fwd.get();
        let mut l = Local {
            bufs: &mut *cx.bufs,
            shared: cx.shared,
            ifs,
            fwd,
            errs,
        };
        for (i, &bi) in bufs.iter().enumerate() {
            if let Some(&n) = bufs.get(i + 2) {
                l.bufs.prefetch(n);
            }
            let next = l.one(bi);
            if let Err(e) = next {
                l.bufs.meta(bi).error = errs.error(e);
            }
            nexts[i] = next.unwrap_or(LOC_DROP);
        }
    }

    fn trace(&self, b: &Buf<'_>) -> String {
        trace_ip6(b)
    }
}

/// What ip6-local works with, split out of `Ctx` so the per-packet steps can borrow buffers.
struct Local<'c, 'a> {
    bufs: &'c mut Buffers,
    shared: &'a crate::tables::Shared,
    ifs: &'a IfTable,
    fwd: &'a FwdTable,
    errs: Errors<'a>,
}

/// The parts of a packet for us that its handlers need.
#[derive(Clone, Copy)]
struct Pkt {
    rx: u32,
    src: u128,
    dst: u128,
    hop_limit: u8,
    /// Offset and length of the upper-layer message.
    l4: usize,
    l4_len: usize,
}

impl Local<'_, '_> {
    /// Decide one packet: Ok(next edge) or Err(drop reason).
    fn one(&mut self, bi: u32) -> Result<u16, u16> {
        let (p, proto) = {
            let b = self.bufs.get(bi);
            let d = b.data();
            let Some(h) = Ip6Hdr::new(d) else {
                return Err(local_error::BAD_EXT);
            };
            let tl = IP6_HDR + h.payload_len() as usize;
            let (proto, l4) = walk_ext(&d[..tl.min(d.len())], true)?;
            let p = Pkt {
                rx: b.meta.rx_sw_if_index,
                src: h.src(),
                dst: h.dst(),
                hop_limit: h.hop_limit(),
                l4,
                l4_len: tl - l4,
            };
            (p, proto)
        };
        if proto == wire::IP_PROTO_IPV6_ICMP {
            if let Some(r) = self.icmp(bi, &p) {
                return r;
            }
        }
        self.punt(bi, &p, proto)
    }

    /// Hand to the host through a punt redirect, or refuse.
    fn punt(&mut self, bi: u32, p: &Pkt, proto: u8) -> Result<u16, u16> {
        let mut b = self.bufs.get(bi);
        match self
            .fwd
            .punt6
            .iter()
            .find(|r| r.rx_sw_if_index.is_none_or(|x| x == p.rx))
        {
            Some(r) => {
                b.meta.flags |= flags::LOCALLY_ORIGINATED;
                self.errs.count(local_error::PUNTED, 1);
                let adj = self.fwd.adj(r.adj);
                if adj.kind == AdjKind::Lookup {
                    // Punt into a table (calico: the host tap's VRF).
                    b.meta.fib_index = adj.lookup_fib;
                    Ok(LOC_LOOKUP)
                } else {
                    b.meta.adj_index = r.adj;
                    Ok(LOC_REWRITE)
                }
            }
            None if matches!(proto, wire::IP_PROTO_TCP | wire::IP_PROTO_UDP)
                && !is_multicast(p.dst) =>
            {
                // Nobody listens: tell the sender as a host would.
                set_icmp6_error(&mut b, icmp6::DEST_UNREACH, icmp6::PORT_UNREACH, 0);
                b.meta.error = self.errs.error(local_error::NO_PUNT);
                Ok(LOC_ICMP_ERROR)
            }
            None => Err(local_error::NO_PUNT),
        }
    }

    /// ICMPv6 messages we answer ourselves; None for those the host should see.
    fn icmp(&mut self, bi: u32, p: &Pkt) -> Option<Result<u16, u16>> {
        let (ty, code) = {
            let b = self.bufs.get(bi);
            let d = b.data();
            // The fixed 8 bytes must be in the first buffer: replies rewrite them there.
            match d.get(p.l4..p.l4 + 8) {
                Some(s) => (s[0], s[1]),
                _ => return Some(Err(local_error::BAD_ICMP)),
            }
        };
        if !matches!(
            ty,
            icmp6::ECHO_REQUEST
                | icmp6::NEIGHBOR_SOLICIT
                | icmp6::NEIGHBOR_ADVERT
                | icmp6::ROUTER_SOLICIT
        ) {
            return None;
        }
        let pseudo = wire::ip6_pseudo_sum(p.src, p.dst, p.l4_len as u32, wire::IP_PROTO_IPV6_ICMP);
        match chain_sum(self.bufs, bi, p.l4, p.l4_len, pseudo) {
            Some(s) if wire::fold(s) == 0 => {}
            _ => return Some(Err(local_error::BAD_ICMP)),
        }
        if ty == icmp6::ECHO_REQUEST {
            return Some(self.echo(bi, p));
        }
        // Neighbor discovery is never forwarded: it must arrive with hop limit 255 (RFC 4861 6.1).
        if p.hop_limit != 255 || code != 0 {
            return Some(Err(local_error::BAD_ND));
        }
        Some(match ty {
            icmp6::NEIGHBOR_SOLICIT => self.solicit(bi, p),
            icmp6::NEIGHBOR_ADVERT => self.advert(bi, p),
            _ => Err(local_error::ROUTER_SOLICIT),
        })
    }

    /// Echo request -> echo reply in place.
    fn echo(&mut self, bi: u32, p: &Pkt) -> Result<u16, u16> {
        if p.src == 0 {
            // Nobody to answer.
            return Err(local_error::BAD_ICMP);
        }
        // A reply to a group comes from our unicast address on the link (RFC 4443 4.2).
        let our = if is_multicast(p.dst) {
            source_for(self.ifs, p.rx, p.src).ok_or(local_error::NO_SOURCE)?
        } else {
            p.dst
        };
        let fast = self.ifs.fast(p.rx);
        let mut b = self.bufs.get(bi);
        // Extension headers are not echoed: the ICMP message moves up behind the IPv6 header.
        if p.l4 > IP6_HDR {
            let len = b.data().len();
            b.data_mut().copy_within(p.l4..len, IP6_HDR);
            b.set_len(len - (p.l4 - IP6_HDR));
        }
        let d = b.data_mut();
        let old_word = u16::from_be_bytes([d[IP6_HDR], d[IP6_HDR + 1]]);
        let new_word = (icmp6::ECHO_REPLY as u16) << 8 | old_word & 0xff;
        let ulen = p.l4_len as u32;
        let old =
            wire::ip6_pseudo_sum(p.src, p.dst, ulen, wire::IP_PROTO_IPV6_ICMP) + old_word as u64;
        let new =
            wire::ip6_pseudo_sum(our, p.src, ulen, wire::IP_PROTO_IPV6_ICMP) + new_word as u64;
        let hc = u16::from_be_bytes([d[IP6_HDR + 2], d[IP6_HDR + 3]]);
        d[IP6_HDR] = icmp6::ECHO_REPLY;
        d[IP6_HDR + 2..IP6_HDR + 4].copy_from_slice(&csum_update(hc, old, new).to_be_bytes());
        if let Some(h) = Ip6HdrMut::new(d) {
            // Keep version, traffic class and flow label; rewrite the rest.
            h.0[4..6].copy_from_slice(&(p.l4_len as u16).to_be_bytes());
            h.0[6] = wire::IP_PROTO_IPV6_ICMP;
            h.0[7] = 64;
            h.0[8..24].copy_from_slice(&our.to_be_bytes());
            h.0[24..40].copy_from_slice(&p.src.to_be_bytes());
        }
        b.meta.flags |= flags::LOCALLY_ORIGINATED;
        self.errs.count(local_error::ECHO_REPLIED, 1);
        // An on-link (link-local) asker is answered straight back to its MAC.
        if is_link_local(p.src) {
            if let Some(l2) = save_l2(&mut b) {
                if push_l2(&mut b, &l2, &fast.mac, None) {
                    b.meta.tx_sw_if_index = p.rx;
                    return Ok(LOC_OUTPUT);
                }
            }
        }
        b.meta.fib_index = fast.ip6_fib;
        Ok(LOC_LOOKUP)
    }

    /// ND options after the fixed NS/NA part, which must be in the first buffer.
    fn nd_option(&mut self, bi: u32, p: &Pkt, want: u8) -> Result<(u128, Option<Mac>), u16> {
        let b = self.bufs.get(bi);
        let d = b.data();
        if p.l4_len < icmp6::ND_LEN {
            return Err(local_error::BAD_ND);
        }
        let Some(m) = d.get(p.l4..p.l4 + p.l4_len) else {
            return Err(local_error::BAD_ND);
        };
        let mut t = [0u8; 16];
        t.copy_from_slice(&m[8..24]);
        let target = u128::from_be_bytes(t);
        let mac = nd_lladdr(&m[icmp6::ND_LEN..], want).ok_or(local_error::BAD_ND)?;
        Ok((target, mac))
    }

    fn learn(&self, sw_if_index: u32, ip: u128, mac: Mac) {
        let ev = Learned::Ip6Neighbor {
            sw_if_index,
            ip,
            mac,
        };
        if self.shared.learned.push(ev).is_ok() {
            self.errs.count(local_error::LEARNED, 1);
        } else {
            self.errs.count(local_error::LEARN_QUEUE_FULL, 1);
        }
    }

    /// Neighbor solicitation: learn the asker, answer for our addresses (RFC 4861 7.1.1, 7.2.4).
    fn solicit(&mut self, bi: u32, p: &Pkt) -> Result<u16, u16> {
        let (target, sll) = self.nd_option(bi, p, icmp6::OPT_SOURCE_LL)?;
        let dad = p.src == 0;
        if is_multicast(target)
            || (dad && (p.dst & SOLICITED_MASK != SOLICITED_PREFIX || sll.is_some()))
        {
            return Err(local_error::BAD_ND);
        }
        if !is_our_ip6(self.ifs, p.rx, target) {
            return Err(local_error::NS_NOT_FOR_US);
        }
        if let Some(mac) = sll.filter(|m| !dad && m[0] & 1 == 0) {
            self.learn(p.rx, p.src, mac);
        }
        let fast = self.ifs.fast(p.rx);
        self.bufs.free_tail(bi);
        let mut b = self.bufs.get(bi);
        let Some(l2) = save_l2(&mut b) else {
            return Err(local_error::NO_L2);
        };
        // A node doing DAD has no address yet: everyone hears the answer, unsolicited.
        let (to_ip, to_mac, fl) = if dad {
            (ALL_NODES, Some(multicast_mac(ALL_NODES)), 0)
        } else {
            (p.src, sll, icmp6::NA_SOLICITED)
        };
        let fl = fl | icmp6::NA_ROUTER | icmp6::NA_OVERRIDE;
        let len = IP6_HDR + icmp6::ND_LEN + icmp6::LL_OPT_LEN;
        if !b.set_len(len) {
            return Err(local_error::NO_L2);
        }
        write_nd(
            b.data_mut(),
            target,
            to_ip,
            icmp6::NEIGHBOR_ADVERT,
            fl,
            target,
            icmp6::OPT_TARGET_LL,
            &fast.mac,
        );
        if !push_l2(&mut b, &l2, &fast.mac, to_mac) {
            return Err(local_error::NO_L2);
        }
        b.meta.tx_sw_if_index = p.rx;
        b.meta.flags |= flags::LOCALLY_ORIGINATED;
        self.errs.count(local_error::NS_ANSWERED, 1);
        Ok(LOC_OUTPUT)
    }

    /// Neighbor advertisement: learn the target's MAC when it is on this link (RFC 4861 7.1.2).
    fn advert(&mut self, bi: u32, p: &Pkt) -> Result<u16, u16> {
        let (target, tll) = self.nd_option(bi, p, icmp6::OPT_TARGET_LL)?;
        let solicited = {
            let b = self.bufs.get(bi);
            b.data()[p.l4 + 4] & icmp6::NA_SOLICITED != 0
        };
        if is_multicast(target) || (is_multicast(p.dst) && solicited) {
            return Err(local_error::BAD_ND);
        }
        if let Some(mac) = tll.filter(|m| m[0] & 1 == 0) {
            if is_on_link(self.ifs, p.rx, target) && !is_our_ip6(self.ifs, p.rx, target) {
                self.learn(p.rx, target, mac);
            }
        }
        Err(local_error::NA_CONSUMED)
    }
}

/// The link-layer address in the first option of type `want` (None if absent); None overall
/// when an option is malformed (zero length or running past the message).
fn nd_lladdr(mut o: &[u8], want: u8) -> Option<Option<Mac>> {
    let mut found = None;
    while !o.is_empty() {
        let n = *o.get(1)? as usize * 8;
        if n == 0 || n > o.len() {
            return None;
        }
        if o[0] == want && found.is_none() {
            let mut m = [0u8; 6];
            m.copy_from_slice(&o[2..8]);
            found = Some(m);
        }
        o = &o[n..];
    }
    Some(found)
}

/// Write IPv6 + NS/NA with one link-layer address option into `d` (72 bytes).
#[allow(clippy::too_many_arguments)]
fn write_nd(
    d: &mut [u8],
    src: u128,
    dst: u128,
    ty: u8,
    nd_flags: u8,
    target: u128,
    opt: u8,
    mac: &Mac,
) {
    let len = icmp6::ND_LEN + icmp6::LL_OPT_LEN;
    if let Some(mut h) = Ip6HdrMut::new(d) {
        h.init(src, dst, wire::IP_PROTO_IPV6_ICMP, 255, len as u16);
    }
    let m = &mut d[IP6_HDR..IP6_HDR + len];
    m.fill(0);
    m[0] = ty;
    m[4] = nd_flags;
    m[8..24].copy_from_slice(&target.to_be_bytes());
    m[24] = opt;
    m[25] = 1;
    m[26..32].copy_from_slice(mac);
    let pseudo = wire::ip6_pseudo_sum(src, dst, len as u32, wire::IP_PROTO_IPV6_ICMP);
    let c = wire::fold(wire::ones_sum(m, pseudo));
    m[2..4].copy_from_slice(&c.to_be_bytes());
}

// ---------------------------------------------------------------------------------------------
// ip6-discover

/// Resolves glean and incomplete adjacencies: the packet waiting for resolution is turned into
/// the neighbor solicitation (no allocation), rate-limited per target.
#[derive(Default)]
pub struct Ip6Discover {
    throttle: super::ResolveThrottle,
}

const DS_DROP: u16 = 0;
const DS_OUTPUT: u16 = 1;

pub mod discover_error {
    pub const REQUEST_SENT: u16 = 0;
    pub const THROTTLED: u16 = 1;
    pub const NO_SOURCE: u16 = 2;
    pub const NOT_ETHERNET: u16 = 3;
    pub const BAD_TARGET: u16 = 4;
}

impl Node for Ip6Discover {
    fn info(&self) -> NodeInfo {
        NodeInfo {
            name: "ip6-discover",
            kind: NodeKind::Internal,
            next_nodes: vec!["error-drop", "interface-output"],
            errors: &[
                "ip6 neighbor solicitations sent (packet consumed)",
                "ip6 neighbor solicitations throttled (dropped)",
                "ip6 nd no source address on interface (dropped)",
                "ip6 nd on a non-ethernet interface (dropped)",
                "ip6 nd target not a unicast address (dropped)",
            ],
        }
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        let errs = cx.errs();
        let ifs = cx.tables.ifs.get();
        let fwd = cx.tables.fwd.get();
        // Solicit a target at most every ~1 ms per thread.
        let gap = crate::runtime::tsc_hz() / 1000;
        let now = cx.now;
        for (i, &bi) in bufs.iter().enumerate() {
            let r = self.one(cx.bufs, ifs, fwd, bi, now, gap);
            nexts[i] = match r {
                Ok(()) => {
                    errs.count(discover_error::REQUEST_SENT, 1);
                    DS_OUTPUT
                }
                Err(e) => {
                    cx.bufs.meta(bi).error = errs.error(e);
                    DS_DROP
                }
            };
        }
    }

    fn trace(&self, b: &Buf<'_>) -> String {
        crate::runtime::hex_line(b.data())
    }
}

impl Ip6Discover {
    fn one(
        &mut self,
        bufs: &mut Buffers,
        ifs: &IfTable,
        fwd: &FwdTable,
        bi: u32,
        now: u64,
        gap: u64,
    ) -> Result<(), u16> {
        let (adj, target) = {
            let b = bufs.get(bi);
            let adj = fwd.adj(b.meta.adj_index);
            let target = match adj.kind {
                AdjKind::Incomplete => adj.next_hop,
                _ => Ip6Hdr::new(b.data()).map_or(0, |h| h.dst()),
            };
            (adj, target)
        };
        let sw = adj.sw_if_index;
        let fast = ifs.fast(sw);
        if fast.flags & if_flags::L2 == 0 {
            return Err(discover_error::NOT_ETHERNET);
        }
        if target == 0 || is_multicast(target) {
            return Err(discover_error::BAD_TARGET);
        }
        if self.throttle.throttled(target, now, gap) {
            return Err(discover_error::THROTTLED);
        }
        let src = source_for(ifs, sw, target).ok_or(discover_error::NO_SOURCE)?;
        self.throttle.asked(target, now);
        bufs.free_tail(bi);
        let mut b = bufs.get(bi);
        b.meta.current_data = 0;
        let len = wire::ETH_HDR + IP6_HDR + icmp6::ND_LEN + icmp6::LL_OPT_LEN;
        if !b.set_len(len) {
            return Err(discover_error::NOT_ETHERNET);
        }
        let group = solicited_node(target);
        let d = b.data_mut();
        if let Some(mut eth) = wire::EthHdr::new(d) {
            eth.set_dst(&multicast_mac(group));
            eth.set_src(&fast.mac);
            eth.set_ethertype(wire::ETHERTYPE_IP6);
        }
        write_nd(
            &mut d[wire::ETH_HDR..],
            src,
            group,
            icmp6::NEIGHBOR_SOLICIT,
            0,
            target,
            icmp6::OPT_SOURCE_LL,
            &fast.mac,
        );
        b.meta.tx_sw_if_index = sw;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// ip6-icmp-error

pub struct Ip6IcmpError;

const IE_DROP: u16 = 0;
const IE_LOOKUP: u16 = 1;
const IE_OUTPUT: u16 = 2;

pub mod icmp_error {
    pub const SENT_TIME_EXCEEDED: u16 = 0;
    pub const SENT_UNREACH: u16 = 1;
    pub const SENT_TOO_BIG: u16 = 2;
    pub const RATE_LIMITED: u16 = 3;
    pub const NO_SOURCE: u16 = 4;
    pub const NOT_FOR_ERRORS: u16 = 5;
    pub const NO_HEADROOM: u16 = 6;
}

/// IPv6 + ICMPv6 headers put in front of the quoted packet.
const ERR_HDRS: usize = IP6_HDR + 8;

impl Node for Ip6IcmpError {
    fn info(&self) -> NodeInfo {
        NodeInfo {
            name: "ip6-icmp-error",
            kind: NodeKind::Internal,
            next_nodes: vec!["error-drop", "ip6-lookup", "interface-output"],
            errors: &[
                "icmp6 time exceeded sent",
                "icmp6 destination unreachable sent",
                "icmp6 packet too big sent",
                "icmp6 error rate limited (dropped)",
                "icmp6 error: no source address on interface (dropped)",
                "icmp6 error not sent for icmp6 errors, multicast or unspecified sources (dropped)",
                "icmp6 error: no headroom (dropped)",
            ],
        }
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        let errs = cx.errs();
        let ifs = cx.tables.ifs.get();
        for (i, &bi) in bufs.iter().enumerate() {
            let target = error_target(&cx.bufs.get(bi));
            let r = match target {
                None => Err(icmp_error::NOT_FOR_ERRORS),
                // Checked after eligibility so packets we never answer cost no tokens.
                Some(_) if !cx.icmp_limit.allow(cx.now) => Err(icmp_error::RATE_LIMITED),
                Some(to) => build_error(cx.bufs, ifs, bi, to),
            };
            nexts[i] = match r {
                Ok((ty, next)) => {
                    errs.count(
                        match ty {
                            icmp6::TIME_EXCEEDED => icmp_error::SENT_TIME_EXCEEDED,
                            icmp6::PACKET_TOO_BIG => icmp_error::SENT_TOO_BIG,
                            _ => icmp_error::SENT_UNREACH,
                        },
                        1,
                    );
                    next
                }
                Err(e) => {
                    cx.bufs.meta(bi).error = errs.error(e);
                    IE_DROP
                }
            };
        }
    }

    fn trace(&self, b: &Buf<'_>) -> String {
        trace_ip6(b)
    }
}

/// Whom to send the requested error to, or None when RFC 4443 2.4(e) forbids one: about an
/// ICMPv6 error, to a multicast group (packet too big excepted), or from a source that is not
/// a unicast address.
fn error_target(b: &Buf<'_>) -> Option<u128> {
    let ty = b.meta.opaque[0] as u8;
    let d = b.data();
    let h = Ip6Hdr::new(d)?;
    let src = h.src();
    if src == 0 || src == LOOPBACK || is_multicast(src) {
        return None;
    }
    if is_multicast(h.dst()) && ty != icmp6::PACKET_TOO_BIG {
        return None;
    }
    let tl = IP6_HDR + h.payload_len() as usize;
    let (proto, off) = walk_ext(&d[..tl.min(d.len())], false).ok()?;
    if proto == wire::IP_PROTO_IPV6_ICMP && d.get(off).is_none_or(|&t| t < 128) {
        return None;
    }
    Some(src)
}

/// Wrap the packet (which starts at its IPv6 header) in IPv6 + ICMPv6 error headers, in place.
/// Returns (type, next edge).
fn build_error(bufs: &mut Buffers, ifs: &IfTable, bi: u32, to: u128) -> Result<(u8, u16), u16> {
    let rx = bufs.meta(bi).rx_sw_if_index;
    let src = source_for(ifs, rx, to).ok_or(icmp_error::NO_SOURCE)?;
    bufs.free_tail(bi);
    let mut b = bufs.get(bi);
    let (ty, code, data) = (
        b.meta.opaque[0] as u8,
        b.meta.opaque[1] as u8,
        b.meta.opaque[2],
    );
    // An on-link (link-local) source gets the error straight back to its MAC.
    let l2 = if is_link_local(to) {
        save_l2(&mut b)
    } else {
        None
    };
    let orig_len = Ip6Hdr::new(b.data()).map_or(0, |h| IP6_HDR + h.payload_len() as usize);
    let quote = b.data().len().min(orig_len).min(ICMP6_ERROR_MAX - ERR_HDRS);
    b.set_len(quote);
    if !b.retreat(ERR_HDRS) {
        return Err(icmp_error::NO_HEADROOM);
    }
    let plen = (8 + quote) as u16;
    let d = b.data_mut();
    if let Some(mut ip) = Ip6HdrMut::new(d) {
        ip.init(src, to, wire::IP_PROTO_IPV6_ICMP, 64, plen);
    }
    let m = &mut d[IP6_HDR..];
    m[0] = ty;
    m[1] = code;
    m[2..4].fill(0);
    m[4..8].copy_from_slice(&data.to_be_bytes());
    let pseudo = wire::ip6_pseudo_sum(src, to, plen as u32, wire::IP_PROTO_IPV6_ICMP);
    let c = wire::fold(wire::ones_sum(&m[..plen as usize], pseudo));
    m[2..4].copy_from_slice(&c.to_be_bytes());
    b.meta.flags |= flags::LOCALLY_ORIGINATED;
    let fast = ifs.fast(rx);
    b.meta.fib_index = fast.ip6_fib;
    b.meta.l3_hdr_offset = b.meta.current_data;
    if let Some(l2) = l2 {
        if push_l2(&mut b, &l2, &fast.mac, None) {
            b.meta.tx_sw_if_index = rx;
            return Ok((ty, IE_OUTPUT));
        }
    }
    Ok((ty, IE_LOOKUP))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip6(s: &str) -> u128 {
        u128::from(s.parse::<std::net::Ipv6Addr>().unwrap())
    }

    #[test]
    fn address_helpers_match_rfc_examples() {
        assert!(is_link_local(ip6("fe80::1")));
        assert!(is_link_local(ip6("febf::1")));
        assert!(!is_link_local(ip6("fec0::1")));
        assert!(is_multicast(ALL_NODES));
        assert_eq!(
            solicited_node(ip6("2001:db8::12:3456")),
            ip6("ff02::1:ff12:3456")
        );
        assert_eq!(
            multicast_mac(ip6("ff02::1:ff12:3456")),
            [0x33, 0x33, 0xff, 0x12, 0x34, 0x56]
        );
        assert_eq!(
            link_local_from_mac(&[0x00, 0x11, 0x22, 0x33, 0x44, 0x55]),
            ip6("fe80::211:22ff:fe33:4455")
        );
    }

    #[test]
    fn option_walk_is_bounded_and_checked() {
        assert!(options_ok(&[0, 0, 1, 2, 0, 0]).is_ok());
        assert_eq!(options_ok(&[1, 9, 0]), Err(local_error::BAD_EXT));
        assert_eq!(options_ok(&[1]), Err(local_error::BAD_EXT));
        assert_eq!(
            options_ok(&[0xc2, 4, 0, 0, 0, 0]),
            Err(local_error::BAD_OPTION)
        );
        assert!(options_ok(&[0x1e, 0]).is_ok());
    }

    #[test]
    fn nd_options_reject_zero_length() {
        let mut o = [1u8, 1, 1, 2, 3, 4, 5, 6];
        assert_eq!(nd_lladdr(&o, 1), Some(Some([1, 2, 3, 4, 5, 6])));
        assert_eq!(nd_lladdr(&o, 2), Some(None));
        o[1] = 0;
        assert_eq!(nd_lladdr(&o, 1), None);
        o[1] = 2;
        assert_eq!(nd_lladdr(&o, 1), None);
        assert_eq!(nd_lladdr(&[], 1), Some(None));
    }

    #[test]
    fn checksum_update_matches_recompute() {
        let mut msg = [0x80u8, 0, 0, 0, 0x12, 0x34, 0, 1, 9, 8, 7];
        let (s, t) = (ip6("2001:db8::1"), ip6("2001:db8::2"));
        let ps = wire::ip6_pseudo_sum(s, t, msg.len() as u32, 58);
        let c = wire::fold(wire::ones_sum(&msg, ps));
        msg[2..4].copy_from_slice(&c.to_be_bytes());
        let old = ps + 0x8000;
        msg[0] = 0x81;
        let ps2 = wire::ip6_pseudo_sum(t, s, msg.len() as u32, 58);
        let nc = csum_update(c, old, ps2 + 0x8100);
        msg[2..4].copy_from_slice(&nc.to_be_bytes());
        assert_eq!(wire::fold(wire::ones_sum(&msg, ps2)), 0);
    }
}
