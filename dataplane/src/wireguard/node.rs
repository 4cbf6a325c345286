//! The data path: `wg4-output-tun` / `wg6-output-tun` encrypt what is routed through a wg
//! interface (peer by the allowed IPs of the inner destination) and send it as UDP to the
//! peer's endpoint; `wg4-input` / `wg6-input` take UDP to a wg port from ip4-/ip6-local,
//! decrypt data messages and queue handshake messages for the engine. Per packet: one table
//! snapshot, atomics for counters and the replay window, no allocation, no lock.

use super::noise::{self, DATA_HDR, TAG_LEN};
use super::session::Keypair;
use super::table::{Peer, WgTable};
use super::{Event, HandshakePacket, Wireguard};
use crate::buffer::{flags, Buf};
use crate::feature::{Feature, FeatureTables};
use crate::graph::{GraphBuilder, Node, NodeInfo};
use crate::handover::Refusal;
use crate::nodes::tunnel::{self, DecapCodes, EncapCodes};
use crate::rcu::Snapshot;
use crate::runtime::Ctx;
use crate::tables::MAX_RELOOKUPS;
use crate::wire::{self, Ip4Hdr, Ip4HdrMut, Ip6HdrMut, UdpHdrMut};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What a wireguard interface has on: in-graph GSO first (it seals wire packets), then the
/// encap node, on both output arcs.
pub const FEATURES: &[Feature] = &[
    crate::nodes::gso_inline::IP4,
    crate::nodes::gso_inline::IP6,
    ENCAP4,
    ENCAP6,
];
pub const ENCAP4: Feature = Feature::new("ip4-output", "wg4-output-tun");
pub const ENCAP6: Feature = Feature::new("ip6-output", "wg6-output-tun");
pub const INPUT4: &str = "wg4-input";
pub const INPUT6: &str = "wg6-input";

/// Outer IPv4 + UDP + data header + tag (IPv6: 20 more).
pub const OVERHEAD4: usize = wire::IP4_HDR + wire::l4::UDP_HDR + DATA_HDR + TAG_LEN;

crate::next_edges! {
    mod encap_next {
        DROP => "error-drop",
        IP4_LOOKUP => "ip4-lookup",
        IP6_LOOKUP => "ip6-lookup",
    }
}

crate::node_errors! {
    pub mod encap_error {
        ENCRYPTED => "wireguard packets encrypted and sent",
        DOWN => "wireguard: interface is down (dropped)",
        NO_TUNNEL => "wireguard: interface is not a wg interface (dropped)",
        NO_PEER => "wireguard: no peer for the destination (dropped)",
        NO_KEYS => "wireguard: no session keys yet, handshake started (dropped)",
        HANDED_OVER => "wireguard: send counters handed to the next process of a live restart (dropped)",
        NO_ROOM => "wireguard: no room for padding, tag or outer headers (dropped)",
        LOOP => "wireguard: tunnel loops into itself (dropped)",
        GSO => "wireguard: gso super-frames not supported yet (dropped)",
        CHAINED => "wireguard: chained buffers not supported (dropped)",
        NOT_IP => "wireguard: inner packet is not IP (dropped)",
        AF_MISMATCH => "wireguard: endpoint and source address families differ (dropped)",
        BAD_CSUM => "wireguard: offloaded checksum without a whole tcp or udp header (dropped)",
    }
}

/// Ask the engine for a handshake with `p` (once until it acts).
#[inline]
fn want_handshake(wg: &Wireguard, p: &Peer) {
    if !p.activity.handshake_wanted.swap(true, Ordering::Relaxed)
        && wg.events.push(Event::WantHandshake(p.index)).is_err()
    {
        p.activity.handshake_wanted.store(false, Ordering::Relaxed);
    }
}

pub struct WgEncap {
    name: &'static str,
    wg: Arc<Wireguard>,
    snap: Snapshot<WgTable>,
}

/// The inner destination (bits, is IPv6).
#[inline(always)]
fn inner_dst(d: &[u8]) -> Option<(u128, bool)> {
    match d.first()? >> 4 {
        4 => Some((Ip4Hdr::new(d)?.dst() as u128, false)),
        6 => {
            let a: [u8; 16] = d.get(24..40)?.try_into().ok()?;
            Some((u128::from_be_bytes(a), true))
        }
        _ => None,
    }
}

/// Encrypt the `len` plaintext bytes at the start of `d` in place: zero padding to a multiple
/// of 16, then the tag. `d` must hold that much (else None); the ciphertext + tag length.
#[inline(always)]
pub fn seal_payload(k: &Keypair, counter: u64, d: &mut [u8], len: usize) -> Option<usize> {
    let padded = (len + 15) & !15;
    let d = d.get_mut(..padded + TAG_LEN)?;
    d[len..padded].fill(0);
    let tag = k.seal(counter, &mut d[..padded]);
    d[padded..].copy_from_slice(&tag);
    Some(padded + TAG_LEN)
}

/// Open the body of a data message (what follows its 16-byte header) in place: the replay
/// window, the AEAD, then the window marked. The plaintext length (padding included), or the
/// wg-input error code.
#[inline(always)]
pub fn open_payload(k: &Keypair, counter: u64, body: &mut [u8]) -> Result<usize, u16> {
    if !k.replay.may_accept(counter) {
        return Err(input_error::REPLAY);
    }
    let clen = body.len().checked_sub(TAG_LEN).ok_or(input_error::SHORT)?;
    let (ct, tag) = body.split_at_mut(clen);
    let tag: &[u8; TAG_LEN] = (&*tag).try_into().map_err(|_| input_error::SHORT)?;
    if !k.open(counter, ct, tag) {
        return Err(input_error::DECRYPT);
    }
    if !k.replay.mark(counter) {
        return Err(input_error::REPLAY);
    }
    Ok(clen)
}

/// Complete a checksum a tap left to offload (`OFFLOAD_L4_CKSUM`): once encrypted, no device
/// downstream can. The field is zeroed and the whole sum, pseudo-header included, written.
#[cold]
#[inline(never)]
fn finish_l4_checksum(d: &mut [u8]) -> Result<(), u16> {
    use encap_error::BAD_CSUM;
    let (l4, end, proto) = match d.first().map(|v| v >> 4) {
        Some(4) => {
            let h = Ip4Hdr::new(d).ok_or(BAD_CSUM)?;
            (h.header_len(), h.total_len() as usize, h.protocol())
        }
        Some(6) if d.len() >= wire::IP6_HDR => {
            let pl = u16::from_be_bytes([d[4], d[5]]) as usize;
            (wire::IP6_HDR, wire::IP6_HDR + pl, d[6])
        }
        _ => return Err(BAD_CSUM),
    };
    let field = match proto {
        wire::IP_PROTO_TCP => 16,
        wire::IP_PROTO_UDP => 6,
        _ => return Err(BAD_CSUM),
    };
    let end = end.min(d.len());
    if l4 + field + 2 > end {
        return Err(BAD_CSUM);
    }
    d[l4 + field..l4 + field + 2].fill(0);
    let c = if l4 == wire::IP6_HDR && d[0] >> 4 == 6 {
        let a = |o: usize| d[o..o + 16].try_into().map(u128::from_be_bytes);
        let (s, t) = (a(8).map_err(|_| BAD_CSUM)?, a(24).map_err(|_| BAD_CSUM)?);
        wire::l4::l4_checksum_ip6(s, t, proto, &d[l4..end])
    } else {
        let a = |o: usize| u32::from_be_bytes([d[o], d[o + 1], d[o + 2], d[o + 3]]);
        wire::l4::l4_checksum_ip4(a(12), a(16), proto, &d[l4..end])
    };
    let c = if c == 0 && proto == wire::IP_PROTO_UDP {
        0xffff
    } else {
        c
    };
    d[l4 + field..l4 + field + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// Encrypt the inner packet at the buffer's start in place, then prepend the data header.
#[inline(always)]
fn seal_in_place(b: &mut Buf<'_>, k: &Keypair, counter: u64) -> Result<(), u16> {
    let len = b.data().len();
    let n = (len + 15) & !15;
    if !b.set_len(n + TAG_LEN) {
        return Err(encap_error::NO_ROOM);
    }
    seal_payload(k, counter, b.data_mut(), len).ok_or(encap_error::NO_ROOM)?;
    if !b.retreat(DATA_HDR) {
        return Err(encap_error::NO_ROOM);
    }
    let h = b.head_mut::<DATA_HDR>().ok_or(encap_error::NO_ROOM)?;
    h[..4].copy_from_slice(&[noise::MSG_DATA, 0, 0, 0]);
    h[4..8].copy_from_slice(&k.remote_index.to_le_bytes());
    h[8..].copy_from_slice(&counter.to_le_bytes());
    Ok(())
}

/// Prepend outer IP + UDP from `src`:`sport` to `dst`:`dport`; the lookup edge.
#[inline(always)]
pub(crate) fn push_udp(
    b: &mut Buf<'_>,
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
) -> Result<u16, u16> {
    let ulen = (b.data().len() + wire::l4::UDP_HDR) as u16;
    if !b.retreat(wire::l4::UDP_HDR) {
        return Err(encap_error::NO_ROOM);
    }
    UdpHdrMut::new(b.data_mut())
        .ok_or(encap_error::NO_ROOM)?
        .init(sport, dport, ulen);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            if !b.retreat(wire::IP4_HDR) {
                return Err(encap_error::NO_ROOM);
            }
            let tl = ulen + wire::IP4_HDR as u16;
            let mut h = Ip4HdrMut::new(b.data_mut()).ok_or(encap_error::NO_ROOM)?;
            h.init(s.into(), d.into(), wire::IP_PROTO_UDP, 64, tl);
            Ok(encap_next::IP4_LOOKUP)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let (s, d) = (u128::from(s), u128::from(d));
            let c = wire::l4::l4_checksum_ip6(s, d, wire::IP_PROTO_UDP, b.data());
            let c = if c == 0 { 0xffff } else { c };
            b.data_mut()[6..8].copy_from_slice(&c.to_be_bytes());
            if !b.retreat(wire::IP6_HDR) {
                return Err(encap_error::NO_ROOM);
            }
            let mut h = Ip6HdrMut::new(b.data_mut()).ok_or(encap_error::NO_ROOM)?;
            h.init(s, d, wire::IP_PROTO_UDP, 64, ulen);
            Ok(encap_next::IP6_LOOKUP)
        }
        _ => Err(encap_error::AF_MISMATCH),
    }
}

#[inline(always)]
fn encap_one(b: &mut Buf<'_>, wg: &Wireguard, t: &WgTable, now: u64) -> Result<u16, u16> {
    let m = &*b.meta;
    if m.flags & flags::GSO != 0 {
        return Err(encap_error::GSO);
    }
    if m.flags & flags::NEXT_PRESENT != 0 {
        return Err(encap_error::CHAINED);
    }
    if m.relookups >= MAX_RELOOKUPS {
        return Err(encap_error::LOOP);
    }
    let sw = m.tx_sw_if_index;
    let i = t.interface(sw).ok_or(encap_error::NO_TUNNEL)?;
    let (dst, v6) = inner_dst(b.data()).ok_or(encap_error::NOT_IP)?;
    let peer = t.peer_for(sw, dst, v6).ok_or(encap_error::NO_PEER)?;
    let Some(k) = peer.send_keypair(now) else {
        want_handshake(wg, peer);
        return Err(encap_error::NO_KEYS);
    };
    let Some(counter) = k.next_counter() else {
        return Err(if k.refusal() == Refusal::HandedOver {
            encap_error::HANDED_OVER
        } else {
            encap_error::NO_KEYS
        });
    };
    if k.wants_rekey(now, counter) {
        want_handshake(wg, peer);
    }
    if b.meta.flags & flags::OFFLOAD_L4_CKSUM != 0 {
        finish_l4_checksum(b.data_mut())?;
        b.meta.flags &= !flags::OFFLOAD_L4_CKSUM;
    }
    let inner_len = b.data().len() as u64;
    seal_in_place(b, k, counter)?;
    let next = push_udp(b, i.src, i.port, peer.endpoint, peer.port)?;
    tunnel::outer_packet(b.meta, peer.encap_fib);
    let a = &peer.activity;
    a.last_sent_ms.store(now, Ordering::Relaxed);
    a.last_sent_data_ms.store(now, Ordering::Relaxed);
    a.tx_bytes.fetch_add(inner_len, Ordering::Relaxed);
    Ok(next)
}

const ENCAP_CODES: EncapCodes = EncapCodes {
    encapsulated: encap_error::ENCRYPTED,
    down: encap_error::DOWN,
    no_tunnel: encap_error::NO_TUNNEL,
    drop: encap_next::DROP,
};

impl Node for WgEncap {
    fn info(&self) -> NodeInfo {
        NodeInfo::internal(self.name, encap_next::NAMES, encap_error::NAMES)
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        self.snap.refresh(&self.wg.table);
        let t = self.snap.get();
        let wg = &*self.wg;
        let now = wg.now_ms();
        tunnel::encap_vector(
            cx,
            bufs,
            nexts,
            &ENCAP_CODES,
            |sw| t.interface(sw),
            |b, _| encap_one(b, wg, t, now),
        );
    }
}

crate::next_edges! {
    mod input_next {
        DROP => "error-drop",
        IP4 => "ip4-input",
        IP6 => "ip6-input",
    }
}

crate::node_errors! {
    pub mod input_error {
        DECRYPTED => "wireguard packets decrypted (counted, forwarded)",
        DOWN => "wireguard: interface is down (dropped)",
        SHORT => "wireguard: truncated or unknown message (dropped)",
        NO_INTERFACE => "wireguard: no wg interface on the port (dropped)",
        BAD_MAC => "wireguard: handshake with a bad mac1 (dropped)",
        HANDSHAKE => "wireguard: handshake messages to the control thread (counted)",
        QUEUE_FULL => "wireguard: handshake queue full (dropped)",
        UNKNOWN_RECEIVER => "wireguard: unknown receiver index (dropped)",
        EXPIRED => "wireguard: keypair expired (dropped)",
        REPLAY => "wireguard: replayed or too old counter (dropped)",
        DECRYPT => "wireguard: decrypt failed (dropped)",
        KEEPALIVE => "wireguard: keepalives received (counted)",
        ALLOWED_IPS => "wireguard: inner source not in the peer's allowed ips (dropped)",
        BAD_INNER => "wireguard: inner packet is not IP or is truncated (dropped)",
    }
}

pub struct WgInput {
    name: &'static str,
    v6: bool,
    wg: Arc<Wireguard>,
    snap: Snapshot<WgTable>,
}

/// The outer packet's addresses and UDP ports.
#[derive(Clone, Copy)]
struct Outer {
    hl: usize,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    /// End of the UDP payload.
    end: usize,
}

#[inline(always)]
fn outer(d: &[u8], v6: bool) -> Option<Outer> {
    let (hl, src, dst, end) = if v6 {
        let h: &[u8; 40] = d.first_chunk()?;
        if h[6] != wire::IP_PROTO_UDP {
            return None;
        }
        let s: [u8; 16] = h[8..24].try_into().ok()?;
        let t: [u8; 16] = h[24..40].try_into().ok()?;
        let pl = u16::from_be_bytes([h[4], h[5]]) as usize;
        (40, IpAddr::from(s), IpAddr::from(t), 40 + pl)
    } else {
        let h = Ip4Hdr::new(d)?;
        let (s, t) = (h.src().to_be_bytes(), h.dst().to_be_bytes());
        let tl = h.total_len() as usize;
        (h.header_len(), IpAddr::from(s), IpAddr::from(t), tl)
    };
    let u = d.get(hl..hl + wire::l4::UDP_HDR)?;
    let ulen = u16::from_be_bytes([u[4], u[5]]) as usize;
    Some(Outer {
        hl,
        src,
        dst,
        sport: u16::from_be_bytes([u[0], u[1]]),
        dport: u16::from_be_bytes([u[2], u[3]]),
        end: end.min(d.len()).min(hl + ulen.max(wire::l4::UDP_HDR)),
    })
}

#[inline(always)]
fn decap_one(b: &mut Buf<'_>, wg: &Wireguard, t: &WgTable, now: u64, v6: bool) -> Result<u16, u16> {
    use input_error as e;
    let o = outer(b.data(), v6).ok_or(e::SHORT)?;
    let (src, sport, end) = (o.src, o.sport, o.end);
    let i = t.interface_on_port(o.dport, o.dst).ok_or(e::NO_INTERFACE)?;
    let start = o.hl + wire::l4::UDP_HDR;
    let msg = b.data().get(start..end).ok_or(e::SHORT)?;
    match (msg.first().copied().ok_or(e::SHORT)?, msg.len()) {
        (noise::MSG_INITIATION, noise::INITIATION_LEN)
        | (noise::MSG_RESPONSE, noise::RESPONSE_LEN)
        | (noise::MSG_COOKIE_REPLY, noise::COOKIE_REPLY_LEN) => {
            if msg[0] != noise::MSG_COOKIE_REPLY && !noise::mac1_ok(msg, &i.mac1_key) {
                return Err(e::BAD_MAC);
            }
            let mut p = HandshakePacket {
                sw_if_index: i.sw_if_index,
                src,
                src_port: sport,
                len: msg.len() as u8,
                data: [0; noise::INITIATION_LEN],
            };
            p.data[..msg.len()].copy_from_slice(msg);
            return Err(match wg.handshakes.push(p) {
                Ok(()) => e::HANDSHAKE,
                Err(_) => e::QUEUE_FULL,
            });
        }
        (noise::MSG_DATA, n) if n >= DATA_HDR + TAG_LEN && msg[1..4] == [0, 0, 0] => {}
        _ => return Err(e::SHORT),
    }
    let recv = u32::from_le_bytes([msg[4], msg[5], msg[6], msg[7]]);
    let counter = u64::from_le_bytes(msg[8..16].try_into().map_err(|_| e::SHORT)?);
    let (pi, k) = t.by_receiver(recv).ok_or(e::UNKNOWN_RECEIVER)?;
    let peer = t.peer(*pi).ok_or(e::UNKNOWN_RECEIVER)?;
    if peer.sw_if_index != i.sw_if_index {
        // Another interface's keypair (one sharing the port, reached at its address).
        return Err(e::UNKNOWN_RECEIVER);
    }
    if k.expired(now) {
        return Err(e::EXPIRED);
    }
    let sw = i.sw_if_index;
    let clen = open_payload(k, counter, &mut b.data_mut()[start + DATA_HDR..end])?;
    k.confirmed.store(true, Ordering::Relaxed);
    let a = &peer.activity;
    a.last_recv_ms.store(now, Ordering::Relaxed);
    if (peer.endpoint, peer.port) != (src, sport) && !a.roam_reported.swap(true, Ordering::Relaxed)
    {
        let ev = Event::Roamed {
            peer: peer.index,
            src,
            port: sport,
        };
        if wg.events.push(ev).is_err() {
            a.roam_reported.store(false, Ordering::Relaxed);
        }
    }
    if clen == 0 {
        return Err(e::KEEPALIVE);
    }
    a.last_recv_data_ms.store(now, Ordering::Relaxed);
    let inner = &b.data()[start + DATA_HDR..start + DATA_HDR + clen];
    let (len, isrc, iv6, next) = match inner[0] >> 4 {
        4 => {
            let h = Ip4Hdr::new(inner).ok_or(e::BAD_INNER)?;
            (
                h.total_len() as usize,
                h.src() as u128,
                false,
                input_next::IP4,
            )
        }
        6 if inner.len() >= wire::IP6_HDR => {
            let s: [u8; 16] = inner[8..24].try_into().map_err(|_| e::BAD_INNER)?;
            let pl = u16::from_be_bytes([inner[4], inner[5]]) as usize;
            (
                wire::IP6_HDR + pl,
                u128::from_be_bytes(s),
                true,
                input_next::IP6,
            )
        }
        _ => return Err(e::BAD_INNER),
    };
    if len > clen {
        return Err(e::BAD_INNER);
    }
    if t.peer_for(sw, isrc, iv6).map(|p| p.index) != Some(*pi) {
        return Err(e::ALLOWED_IPS);
    }
    a.rx_bytes.fetch_add(len as u64, Ordering::Relaxed);
    b.advance(start + DATA_HDR);
    b.set_len(len);
    // A checksum mark from the uplink was the outer UDP's: the inner packet was sealed whole.
    b.meta.flags &= !flags::OFFLOAD_L4_CKSUM;
    tunnel::inner_packet(b.meta, sw);
    Ok(next)
}

const DECAP_CODES: DecapCodes = DecapCodes {
    decapsulated: input_error::DECRYPTED,
    down: input_error::DOWN,
    drop: input_next::DROP,
    inner_ip4: None,
    inner_ip6: None,
    ethernet: None,
};

impl Node for WgInput {
    fn info(&self) -> NodeInfo {
        NodeInfo::internal(self.name, input_next::NAMES, input_error::NAMES)
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        self.snap.refresh(&self.wg.table);
        let t = self.snap.get();
        let wg = &*self.wg;
        let (now, v6) = (wg.now_ms(), self.v6);
        tunnel::decap_vector(cx, bufs, nexts, &DECAP_CODES, |b| {
            decap_one(b, wg, t, now, v6)
        });
    }
}

pub fn register(b: GraphBuilder, tables: &FeatureTables) -> GraphBuilder {
    let wg = tables.get::<Wireguard>();
    let encap = |name| {
        Box::new(WgEncap {
            name,
            snap: wg.table.snapshot(),
            wg: wg.clone(),
        })
    };
    let input = |name, v6| {
        Box::new(WgInput {
            name,
            v6,
            snap: wg.table.snapshot(),
            wg: wg.clone(),
        })
    };
    b.feature(ENCAP4, encap(ENCAP4.node))
        .feature(ENCAP6, encap(ENCAP6.node))
        .node(input(INPUT4, false))
        .node(input(INPUT6, true))
}
