//! IPv4: ip4-local, and the IPv4 parts of ip4-input, ip4-lookup, ip4-rewrite and ip4-icmp-error
//! (the nodes themselves are generic, in `family.rs`).

use super::family::{
    icmp_error_ids, input_family, lookup_ids, rewrite_ids, IcmpError, IcmpErrorFamily, Input,
    Lookup, LookupFamily, Rewrite, RewriteFamily, V4,
};
use crate::buffer::{flags, Buf};
use crate::graph::{Node, NodeInfo};
use crate::runtime::{Ctx, Errors};
use crate::tables::{AdjKind, FwdTable, IfTable};
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

pub use super::family::set_icmp_error;

// ---------------------------------------------------------------------------------------------
// ip4-input

/// ip4-input: header checks, then ip4-lookup or the ip4-unicast feature arc.
pub type Ip4Input = Input<V4>;

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

#[rustfmt::skip]
input_family!(V4: "ip4-input", input_next, input_error, expired: TTL_EXPIRED, counted: OPTIONS,
    plain: plain_header_ok, check: check);

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
fn check(b: &mut Buf<'_>) -> Result<bool, u16> {
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

/// ip4-lookup: FIB lookup and ECMP flow hash; starts the ip4-local arc.
pub type Ip4Lookup = Lookup<V4>;

crate::next_edges! {
    mod lookup_next {
        DROP => "error-drop",
        REWRITE => "ip4-rewrite",
        LOCAL => "ip4-local",
        RESOLVE => "ip4-arp",
        ICMP_ERROR => "ip4-icmp-error",
        RELOOKUP => "ip4-lookup",
        MCAST => "ip4-mcast-rewrite",
        PBL => "ip4-pbl",
        SR_ENCAP => "sr-pl-rewrite-encaps-v4",
        SR_LOCALSID => "sr-localsid",
        IPIP => "ipip4-input",
        VXLAN => "vxlan4-input",
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
        MCAST_NOT_FORWARDED => "ip4 multicast with no multicast route (dropped)",
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

impl LookupFamily for V4 {
    lookup_ids!("ip4-lookup", lookup_next, lookup_error);
    /// Multicast (224/4) is never routed by the unicast FIB.
    #[inline(always)]
    fn is_scoped(dst: u32) -> bool {
        dst >> 28 == 0xe
    }
    /// What ip4-local decides first for these (ip4-input has checked the header): not a
    /// fragment, no options, protocol 4 or 41 (ipip4-input) or UDP to a VXLAN port
    /// (vxlan4-input).
    #[inline(always)]
    fn local_tunnel(b: &Buf<'_>, fwd: &FwdTable) -> Option<u16> {
        use crate::wire::tunnel::{IP_PROTO_IPIP, IP_PROTO_IPV6};
        let h = b.head::<{ wire::IP4_HDR + 4 }>()?;
        if h[0] != 0x45 || h[6] & 0x3f != 0 || h[7] != 0 {
            return None;
        }
        match h[9] {
            IP_PROTO_IPIP | IP_PROTO_IPV6 => Some(lookup_next::IPIP),
            wire::IP_PROTO_UDP if fwd.is_vxlan_port(false, u16::from_be_bytes([h[22], h[23]])) => {
                Some(lookup_next::VXLAN)
            }
            _ => None,
        }
    }
    fn scoped(
        b: &mut Buf<'_>,
        _ifs: &IfTable,
        fwd: &FwdTable,
        dst: u32,
        errs: Errors<'_>,
    ) -> Option<u16> {
        let rx = b.meta.rx_sw_if_index;
        if let Some(tx) = fwd.mcast_forward(false, b.meta.fib_index, dst as u128, rx) {
            b.meta.tx_sw_if_index = tx;
            return Some(lookup_next::MCAST);
        }
        b.meta.error = errs.error(lookup_error::MCAST_NOT_FORWARDED);
        Some(lookup_next::DROP)
    }
}

/// The destination of a packet that starts at its IPv4 header (0 if it is too short).
#[inline(always)]
pub(crate) fn dst4(b: &Buf<'_>) -> u32 {
    b.head::<{ wire::IP4_HDR }>()
        .map_or(0, |h| u32::from_be_bytes([h[16], h[17], h[18], h[19]]))
}

// ---------------------------------------------------------------------------------------------
// ip4-rewrite

/// ip4-rewrite: TTL, MTU and the adjacency's L2 rewrite; starts the ip4-output arc.
pub type Ip4Rewrite = Rewrite<V4>;

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

impl RewriteFamily for V4 {
    rewrite_ids!("ip4-rewrite", rewrite_next, rewrite_error);
    const TRACE_BYTES: usize = wire::ETH_HDR + wire::IP4_HDR;

    #[inline(always)]
    fn forward_header(ip: &mut [u8], mtu: u16) -> bool {
        match Ip4HdrMut::new(ip) {
            Some(mut h) if h.view().ttl() > 1 && h.view().total_len() <= mtu => {
                h.dec_ttl();
                true
            }
            _ => false,
        }
    }
    #[inline(always)]
    fn fast_window<'b>(b: &'b mut Buf<'_>) -> Option<&'b mut [u8]> {
        b.window_mut::<{ wire::ETH_HDR }, { wire::ETH_HDR + wire::IP4_HDR }>()
            .map(|w| &mut w[..])
    }
    fn rewrite_one(b: &mut Buf<'_>, adj: &crate::tables::Adjacency) -> (u16, u16) {
        rewrite_one(b, adj)
    }
}

#[inline(always)]
fn rewrite_one(b: &mut Buf<'_>, adj: &crate::tables::Adjacency) -> (u16, u16) {
    if adj.kind != AdjKind::Rewrite {
        return (rewrite_next::DROP, rewrite_error::NOT_REWRITE);
    }
    let fl = b.meta.flags;
    let local = fl & flags::LOCALLY_ORIGINATED != 0;
    // A GSO super-frame leaves as segments: what must fit the MTU is one segment.
    let seg_len = super::gso::segment_len(b.data(), b.meta);
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

// ---------------------------------------------------------------------------------------------
// ip4-local

pub struct Ip4Local;

crate::next_edges! {
    mod local_next {
        DROP => "error-drop",
        LOOKUP => "ip4-lookup",
        REWRITE => "ip4-rewrite",
        ICMP_ERROR => "ip4-icmp-error",
        VXLAN => "vxlan4-input",
        IPIP => "ipip4-input",
        ESP => "esp4-decrypt-tun",
        WIREGUARD => "wg4-input",
        IKE => "ike4-punt",
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
            if proto == wire::IP_PROTO_UDP
                && udp_dst_port(b.data(), hl).is_some_and(|p| fwd.is_vxlan_port(false, p))
            {
                // VXLAN is decapsulated here (VPP's udp_register_dst_port: 4789 and each
                // tunnel's local port).
                nexts[i] = local_next::VXLAN;
                continue;
            }
            if proto == crate::wire::tunnel::IP_PROTO_ESP
                || (proto == wire::IP_PROTO_UDP && super::esp::is_natt_esp(b.data(), hl))
            {
                nexts[i] = local_next::ESP;
                continue;
            }
            if proto == wire::IP_PROTO_UDP && super::ike::is_ike(b.data(), hl) {
                nexts[i] = local_next::IKE;
                continue;
            }
            if proto == wire::IP_PROTO_UDP
                && udp_dst_port(b.data(), hl).is_some_and(crate::wireguard::is_listening)
            {
                nexts[i] = local_next::WIREGUARD;
                continue;
            }
            if matches!(
                proto,
                crate::wire::tunnel::IP_PROTO_IPIP | crate::wire::tunnel::IP_PROTO_IPV6
            ) {
                nexts[i] = local_next::IPIP;
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

fn udp_dst_port(d: &[u8], hl: usize) -> Option<u16> {
    d.get(hl + 2..hl + 4)
        .map(|p| u16::from_be_bytes([p[0], p[1]]))
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

/// ip4-icmp-error: ICMP errors (RFC 792, RFC 1812) requested by the other nodes.
pub type Ip4IcmpError = IcmpError<V4>;

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

impl IcmpErrorFamily for V4 {
    icmp_error_ids!("ip4-icmp-error", icmp_error_next, icmp_error);

    /// Never about an ICMP error, a non-first fragment, or from a broadcast/multicast source.
    fn error_target(b: &Buf<'_>) -> Option<u32> {
        let d = b.data();
        let h = Ip4Hdr::new(d)?;
        let is_icmp_err = h.protocol() == wire::IP_PROTO_ICMP
            && d.get(h.header_len())
                .is_some_and(|&t| !matches!(t, icmp::ECHO_REQUEST | icmp::ECHO_REPLY));
        let bad_src = h.src() == 0 || h.src() >> 28 == 0xe || h.src() == u32::MAX;
        (!is_icmp_err && h.frag_offset() == 0 && !bad_src).then_some(h.src())
    }

    fn source(ifs: &IfTable, rx: u32, _: u32) -> Option<u32> {
        ifs.ip4_source(rx)
    }
    fn addr_of_bits(a: u128) -> u32 {
        a as u32
    }

    fn build_error(b: &mut Buf<'_>, ifs: &IfTable, src: u32, to: u32) -> Result<(u16, u16), u16> {
        let ty = build_error(b, src, to)?;
        b.meta.fib_index = ifs.fast(b.meta.rx_sw_if_index).ip4_fib;
        let sent = if ty == icmp::TIME_EXCEEDED {
            icmp_error::SENT_TIME_EXCEEDED
        } else {
            icmp_error::SENT_UNREACH
        };
        Ok((sent, icmp_error_next::LOOKUP))
    }
}

/// Wrap the packet (which starts at its IPv4 header) in IPv4 + ICMP error headers, in place.
fn build_error(b: &mut Buf<'_>, our_src: u32, to: u32) -> Result<u8, u16> {
    let (ty, code, data) = (
        b.meta.opaque[0] as u8,
        b.meta.opaque[1] as u8,
        b.meta.opaque[2],
    );
    let d = b.data();
    let Some(h) = Ip4Hdr::new(d) else {
        return Err(icmp_error::NOT_FOR_ERRORS);
    };
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
        ip.init(our_src, to, wire::IP_PROTO_ICMP, 64, total);
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
    Ok(ty)
}
