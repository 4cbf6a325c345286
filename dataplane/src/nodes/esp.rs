//! ESP on protected tunnel interfaces, with VPP's node names. `esp4-encrypt-tun` (ip4-output)
//! and `esp6-encrypt-tun` (ip6-output) take the inner packet routed into a protected `ipipN`
//! or `ipsecN` interface (before `ipip4-/ipip6-encap`, which they replace for it), seal it as
//! tunnel-mode ESP between the protection's endpoints and send the outer packet to
//! ip4-/ip6-lookup in the encap FIB. `esp4-decrypt-tun` / `esp6-decrypt-tun` take ESP (protocol
//! 50, or UDP 4500 with a non-zero SPI where the 4 zero bytes would mark IKE) from
//! ip4-/ip6-local, find the SA by SPI, check the replay window, verify and decrypt in place,
//! and hand the inner packet to ip4-/ip6-input as received on the protected interface.
//! Crypto runs inline on the worker, packet by packet within the vector; nothing allocates.

use crate::buffer::{flags, Buf};
use crate::feature::{Feature, FeatureTables};
use crate::graph::{GraphBuilder, Node, NodeInfo};
use crate::ipsec::sa::{self, write_trailer, ESP_HDR};
use crate::ipsec::{EspDrop, IpsecTable, Protect, Table};
use crate::rcu::Snapshot;
use crate::runtime::Ctx;
use crate::tables::MAX_RELOOKUPS;
use crate::wire::tunnel::{IP_PROTO_ESP, IP_PROTO_IPIP, IP_PROTO_IPV6};
use crate::wire::l4::UDP_HDR;
use crate::wire::{self, Ip4Hdr, Ip4HdrMut, Ip6HdrMut, UdpHdrMut};
use super::ipip::OUTER_TTL;
use super::tunnel::addr_bits;
use std::net::IpAddr;
use std::sync::Arc;

/// What a protected interface has on: in-graph GSO first (ESP seals wire packets), then the
/// encrypt node, on both output arcs.
pub const FEATURES: &[Feature] = &[
    super::gso_inline::IP4,
    super::gso_inline::IP6,
    ENCRYPT4,
    ENCRYPT6,
];
pub const ENCRYPT4: Feature =
    Feature::new("ip4-output", "esp4-encrypt-tun").runs_before(&["ipip4-encap"]);
pub const ENCRYPT6: Feature =
    Feature::new("ip6-output", "esp6-encrypt-tun").runs_before(&["ipip6-encap"]);
pub const DECRYPT4: &str = "esp4-decrypt-tun";
pub const DECRYPT6: &str = "esp6-decrypt-tun";

crate::next_edges! {
    mod encrypt_next {
        DROP => "error-drop",
        IP4_LOOKUP => "ip4-lookup",
        IP6_LOOKUP => "ip6-lookup",
    }
}

crate::node_errors! {
    pub mod encrypt_error {
        ENCRYPTED => "esp encrypt: packets sealed",
        DOWN => "esp encrypt: tunnel interface is down (dropped)",
        NO_SA => "esp encrypt: interface has no outbound SA (dropped)",
        SEQ_ROLLOVER => "esp encrypt: sequence number would wrap without ESN (dropped)",
        SEQ_HANDED_OVER => "esp encrypt: sequence numbers handed to a live restart's new process (dropped)",
        NO_HEADROOM => "esp encrypt: no headroom for the outer headers (dropped)",
        NO_TAILROOM => "esp encrypt: no tailroom for the trailer and ICV (dropped)",
        LOOP => "esp encrypt: tunnel loops into itself (dropped)",
        GSO => "esp encrypt: gso super-frames not supported (dropped)",
        CHAINED => "esp encrypt: chained buffers not supported (dropped)",
        NOT_IP => "esp encrypt: inner packet is not IP (dropped)",
        CRYPTO => "esp encrypt: crypto error (dropped)",
    }
}

/// esp4-encrypt-tun / esp6-encrypt-tun.
pub struct EspEncrypt {
    name: &'static str,
    table: Arc<Table>,
    snap: Snapshot<IpsecTable>,
}

impl EspEncrypt {
    pub fn new(name: &'static str, table: Arc<Table>) -> Self {
        Self {
            name,
            snap: table.snapshot(),
            table,
        }
    }
}

#[inline(always)]
fn encrypt_one(b: &mut Buf<'_>, p: &Protect) -> Result<u16, u16> {
    let m = &*b.meta;
    if m.flags & flags::GSO != 0 {
        return Err(encrypt_error::GSO);
    }
    if m.flags & flags::NEXT_PRESENT != 0 {
        return Err(encrypt_error::CHAINED);
    }
    if m.relookups >= MAX_RELOOKUPS {
        return Err(encrypt_error::LOOP);
    }
    let next_header = match b.data().first().map(|v| v >> 4) {
        Some(4) => IP_PROTO_IPIP,
        Some(6) => IP_PROTO_IPV6,
        _ => return Err(encrypt_error::NOT_IP),
    };
    let sa = &p.out;
    let seq = sa.next_seq().map_err(|e| match e {
        EspDrop::SeqHandedOver => encrypt_error::SEQ_HANDED_OVER,
        _ => encrypt_error::SEQ_ROLLOVER,
    })?;
    let n = b.data().len();
    let t = sa.trailer_len(n);
    if !b.set_len(n + t + sa.icv_len()) {
        return Err(encrypt_error::NO_TAILROOM);
    }
    write_trailer(&mut b.data_mut()[n..n + t], next_header);
    if !b.retreat(sa.head_len()) {
        return Err(encrypt_error::NO_HEADROOM);
    }
    sa.seal(seq, b.data_mut())
        .map_err(|_| encrypt_error::CRYPTO)?;
    let mut proto = IP_PROTO_ESP;
    if let Some((sport, dport)) = sa.udp_encap() {
        let len = b.data().len() + UDP_HDR;
        if !b.retreat(UDP_HDR) {
            return Err(encrypt_error::NO_HEADROOM);
        }
        let mut u = UdpHdrMut::new(b.data_mut()).ok_or(encrypt_error::NO_HEADROOM)?;
        u.set_src_port(sport);
        u.set_dst_port(dport);
        u.set_length(len as u16);
        // IPv4 outer only (the service refuses NAT-T over IPv6): a zero checksum.
        u.set_checksum(0);
        proto = wire::IP_PROTO_UDP;
    }
    let len = b.data().len();
    let next = match (p.outer.src, p.outer.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            if !b.retreat(wire::IP4_HDR) {
                return Err(encrypt_error::NO_HEADROOM);
            }
            let mut h = Ip4HdrMut::new(b.data_mut()).ok_or(encrypt_error::NO_HEADROOM)?;
            h.init(s.into(), d.into(), proto, OUTER_TTL, (wire::IP4_HDR + len) as u16);
            encrypt_next::IP4_LOOKUP
        }
        (s, d) => {
            if !b.retreat(wire::IP6_HDR) {
                return Err(encrypt_error::NO_HEADROOM);
            }
            let mut h = Ip6HdrMut::new(b.data_mut()).ok_or(encrypt_error::NO_HEADROOM)?;
            h.init(addr_bits(s).0, addr_bits(d).0, proto, OUTER_TTL, len as u16);
            encrypt_next::IP6_LOOKUP
        }
    };
    super::tunnel::outer_packet(b.meta, p.outer.encap_fib);
    Ok(next)
}

const ENCRYPT_CODES: super::tunnel::EncapCodes = super::tunnel::EncapCodes {
    encapsulated: encrypt_error::ENCRYPTED,
    down: encrypt_error::DOWN,
    no_tunnel: encrypt_error::NO_SA,
    drop: encrypt_next::DROP,
};

impl Node for EspEncrypt {
    fn info(&self) -> NodeInfo {
        NodeInfo::internal(self.name, encrypt_next::NAMES, encrypt_error::NAMES)
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        self.snap.refresh(&self.table);
        let t = self.snap.get();
        super::tunnel::encap_vector(cx, bufs, nexts, &ENCRYPT_CODES, |sw| t.protect(sw), encrypt_one);
    }
}

crate::next_edges! {
    mod decrypt_next {
        DROP => "error-drop",
        IP4 => "ip4-input",
        IP6 => "ip6-input",
    }
}

crate::node_errors! {
    pub mod decrypt_error {
        DECRYPTED => "esp decrypt: packets opened",
        DOWN => "esp decrypt: tunnel interface is down (dropped)",
        UNKNOWN_SPI => "esp decrypt: no inbound SA for the SPI (dropped)",
        REPLAY => "esp decrypt: replayed or too old sequence number (dropped)",
        INTEGRITY => "esp decrypt: integrity check failed (dropped)",
        BAD_PADDING => "esp decrypt: bad padding (dropped)",
        SHORT => "esp decrypt: truncated packet (dropped)",
        BAD_NEXT_HEADER => "esp decrypt: next header is not IPv4 or IPv6 (dropped)",
    }
}

/// esp4-decrypt-tun / esp6-decrypt-tun: the packet starts at the outer IP header.
pub struct EspDecrypt {
    v6: bool,
    table: Arc<Table>,
    snap: Snapshot<IpsecTable>,
}

impl EspDecrypt {
    pub fn new(v6: bool, table: Arc<Table>) -> Self {
        Self {
            v6,
            snap: table.snapshot(),
            table,
        }
    }
}

/// The ESP header's offset and the outer packet's end: after the IP header, and after UDP
/// when NAT-T (ip4-local checked the port and the marker).
#[inline(always)]
fn esp_span(d: &[u8], v6: bool) -> Option<(usize, usize)> {
    let (hl, tl, proto) = if v6 {
        let h = d.get(..wire::IP6_HDR)?;
        let pl = u16::from_be_bytes([h[4], h[5]]) as usize;
        (wire::IP6_HDR, wire::IP6_HDR + pl, h[6])
    } else {
        let h = Ip4Hdr::new(d)?;
        (h.header_len(), h.total_len() as usize, h.protocol())
    };
    let off = if proto == wire::IP_PROTO_UDP {
        hl + UDP_HDR
    } else {
        hl
    };
    // Enough to read the SPI and sequence number; the SA checks the rest for its cipher.
    (tl <= d.len() && off + ESP_HDR <= tl).then_some((off, tl))
}

#[inline(always)]
fn decrypt_one(b: &mut Buf<'_>, t: &IpsecTable, v6: bool) -> Result<u16, u16> {
    let (off, tl) = esp_span(b.data(), v6).ok_or(decrypt_error::SHORT)?;
    let d = b.data();
    let spi = u32::from_be_bytes([d[off], d[off + 1], d[off + 2], d[off + 3]]);
    let lo = u32::from_be_bytes([d[off + 4], d[off + 5], d[off + 6], d[off + 7]]);
    let ib = t.inbound(spi).ok_or(decrypt_error::UNKNOWN_SPI)?;
    let sa = &ib.sa;
    let seq = if sa.cfg.esn {
        sa.replay.infer_esn(lo)
    } else {
        lo as u64
    };
    if sa.cfg.anti_replay && !sa.replay.check(seq) {
        return Err(decrypt_error::REPLAY);
    }
    let (len, nh) = sa
        .open(seq, &mut b.data_mut()[off..tl])
        .map_err(|e| match e {
            EspDrop::BadPadding => decrypt_error::BAD_PADDING,
            EspDrop::Short => decrypt_error::SHORT,
            _ => decrypt_error::INTEGRITY,
        })?;
    // Marked only now that the ICV is good; a copy that raced on another worker loses here.
    // Without anti-replay the window still tracks the top for ESN inference.
    if !sa.replay.accept(seq) && sa.cfg.anti_replay {
        return Err(decrypt_error::REPLAY);
    }
    let next = match nh {
        IP_PROTO_IPIP => decrypt_next::IP4,
        IP_PROTO_IPV6 => decrypt_next::IP6,
        _ => return Err(decrypt_error::BAD_NEXT_HEADER),
    };
    b.advance(off + sa.head_len());
    b.set_len(len);
    // A checksum mark from the uplink was the outer packet's: the inner one was sealed whole.
    b.meta.flags &= !crate::buffer::flags::OFFLOAD_L4_CKSUM;
    super::tunnel::inner_packet(b.meta, ib.sw_if_index);
    Ok(next)
}

const DECRYPT_CODES: super::tunnel::DecapCodes = super::tunnel::DecapCodes {
    decapsulated: decrypt_error::DECRYPTED,
    down: decrypt_error::DOWN,
    drop: decrypt_next::DROP,
    inner_ip4: None,
    inner_ip6: None,
    ethernet: None,
};

impl Node for EspDecrypt {
    fn info(&self) -> NodeInfo {
        let name = if self.v6 { DECRYPT6 } else { DECRYPT4 };
        NodeInfo::internal(name, decrypt_next::NAMES, decrypt_error::NAMES)
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        self.snap.refresh(&self.table);
        let (t, v6) = (self.snap.get(), self.v6);
        super::tunnel::decap_vector(cx, bufs, nexts, &DECRYPT_CODES, |b| decrypt_one(b, t, v6));
    }
}

/// Whether ip4-local should hand a UDP packet to ESP: NAT-T's port and a non-zero SPI where an
/// IKE message has its 4-byte zero marker (RFC 3948 §2.2).
#[inline(always)]
pub(crate) fn is_natt_esp(d: &[u8], hl: usize) -> bool {
    d.get(hl..hl + UDP_HDR + 4).is_some_and(|u| {
        u16::from_be_bytes([u[2], u[3]]) == sa::NATT_PORT && u[8..12] != [0, 0, 0, 0]
    })
}

pub fn register(b: GraphBuilder, tables: &FeatureTables) -> GraphBuilder {
    let t = tables.get::<Table>();
    b.feature(ENCRYPT4, Box::new(EspEncrypt::new(ENCRYPT4.node, t.clone())))
        .feature(ENCRYPT6, Box::new(EspEncrypt::new(ENCRYPT6.node, t.clone())))
        .node(Box::new(EspDecrypt::new(false, t.clone())))
        .node(Box::new(EspDecrypt::new(true, t)))
}
