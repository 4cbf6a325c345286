//! Typed views of packet headers, in the manner of smoltcp's `wire` module.
//!
//! A view is built from a byte slice only if the slice is long enough for the fixed header, so
//! every accessor indexes a fixed-size array and compiles without bounds checks. These are
//! rvpp's own views rather than smoltcp's because the hot path wants exactly one length check
//! per header; smoltcp's per-field range slicing costs a check per field.

mod fixed;
pub mod l4;
pub mod srh;
pub mod tunnel;

pub use l4::{
    IcmpHdr, IcmpHdrMut, NdMsg, NdMsgMut, NdOptions, TcpHdr, TcpHdrMut, UdpHdr, UdpHdrMut,
};
pub use tunnel::{EspHdr, EspHdrMut, VxlanHdr, VxlanHdrMut};

pub const ETHERTYPE_IP4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_VLAN: u16 = 0x8100;
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
pub const ETHERTYPE_IP6: u16 = 0x86dd;

pub const IP_PROTO_ICMP: u8 = 1;
pub const IP_PROTO_TCP: u8 = 6;
pub const IP_PROTO_UDP: u8 = 17;
pub const IP_PROTO_IPV6_ICMP: u8 = 58;

pub const ETH_HDR: usize = 14;
pub const VLAN_HDR: usize = 4;
pub const IP4_HDR: usize = 20;
pub const IP6_HDR: usize = 40;
pub const ARP_PKT: usize = 28;

pub type Mac = [u8; 6];
pub const BROADCAST_MAC: Mac = [0xff; 6];

#[inline(always)]
fn be16(b: &[u8], o: usize) -> u16 {
    u16::from_be_bytes([b[o], b[o + 1]])
}

/// The fixed Ethernet header.
pub struct EthHdr<'a>(pub &'a mut [u8; ETH_HDR]);

impl<'a> EthHdr<'a> {
    #[inline(always)]
    pub fn new(buf: &'a mut [u8]) -> Option<Self> {
        buf.first_chunk_mut::<ETH_HDR>().map(EthHdr)
    }
    #[inline(always)]
    pub fn dst(&self) -> Mac {
        [
            self.0[0], self.0[1], self.0[2], self.0[3], self.0[4], self.0[5],
        ]
    }
    #[inline(always)]
    pub fn src(&self) -> Mac {
        [
            self.0[6], self.0[7], self.0[8], self.0[9], self.0[10], self.0[11],
        ]
    }
    #[inline(always)]
    pub fn ethertype(&self) -> u16 {
        u16::from_be_bytes([self.0[12], self.0[13]])
    }
    #[inline(always)]
    pub fn set_dst(&mut self, m: &Mac) {
        self.0[0..6].copy_from_slice(m);
    }
    #[inline(always)]
    pub fn set_src(&mut self, m: &Mac) {
        self.0[6..12].copy_from_slice(m);
    }
    #[inline(always)]
    pub fn set_ethertype(&mut self, t: u16) {
        self.0[12..14].copy_from_slice(&t.to_be_bytes());
    }
}

/// Read-only IPv4 header view (the fixed 20 bytes).
#[derive(Clone, Copy)]
pub struct Ip4Hdr<'a>(pub &'a [u8; IP4_HDR]);

impl<'a> Ip4Hdr<'a> {
    #[inline(always)]
    pub fn new(buf: &'a [u8]) -> Option<Self> {
        buf.first_chunk::<IP4_HDR>().map(Ip4Hdr)
    }
    #[inline(always)]
    pub fn version(&self) -> u8 {
        self.0[0] >> 4
    }
    /// Header length in bytes.
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        ((self.0[0] & 0x0f) as usize) * 4
    }
    #[inline(always)]
    pub fn total_len(&self) -> u16 {
        be16(self.0, 2)
    }
    #[inline(always)]
    pub fn ident(&self) -> u16 {
        be16(self.0, 4)
    }
    #[inline(always)]
    pub fn dont_frag(&self) -> bool {
        self.0[6] & 0x40 != 0
    }
    /// More fragments follow this one.
    #[inline(always)]
    pub fn more_fragments(&self) -> bool {
        self.0[6] & 0x20 != 0
    }
    /// More-fragments flag or a non-zero offset.
    #[inline(always)]
    pub fn is_fragment(&self) -> bool {
        be16(self.0, 6) & 0x3fff != 0
    }
    #[inline(always)]
    pub fn frag_offset(&self) -> u16 {
        be16(self.0, 6) & 0x1fff
    }
    #[inline(always)]
    pub fn ttl(&self) -> u8 {
        self.0[8]
    }
    #[inline(always)]
    pub fn protocol(&self) -> u8 {
        self.0[9]
    }
    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        be16(self.0, 10)
    }
    #[inline(always)]
    pub fn src(&self) -> u32 {
        u32::from_be_bytes([self.0[12], self.0[13], self.0[14], self.0[15]])
    }
    #[inline(always)]
    pub fn dst(&self) -> u32 {
        u32::from_be_bytes([self.0[16], self.0[17], self.0[18], self.0[19]])
    }
}

/// Mutable IPv4 header view.
pub struct Ip4HdrMut<'a>(pub &'a mut [u8; IP4_HDR]);

impl<'a> Ip4HdrMut<'a> {
    #[inline(always)]
    pub fn new(buf: &'a mut [u8]) -> Option<Self> {
        buf.first_chunk_mut::<IP4_HDR>().map(Ip4HdrMut)
    }
    #[inline(always)]
    pub fn view(&self) -> Ip4Hdr<'_> {
        Ip4Hdr(self.0)
    }
    /// Decrement TTL and patch the checksum incrementally (RFC 1624), on the checksum as it
    /// sits in memory: TTL is the high byte of its 16-bit word, so the word drops by 0x0100
    /// and the checksum rises by 0x0100 (network order) with end-around carry.
    #[inline(always)]
    pub fn dec_ttl(&mut self) {
        self.0[8] = self.0[8].wrapping_sub(1);
        let c = u16::from_ne_bytes([self.0[10], self.0[11]]) as u32
            + u16::from_ne_bytes(0x0100u16.to_be_bytes()) as u32;
        let c = (c + (c >> 16)) as u16;
        self.0[10..12].copy_from_slice(&c.to_ne_bytes());
    }
    pub fn set_total_len(&mut self, l: u16) {
        self.0[2..4].copy_from_slice(&l.to_be_bytes());
    }
    pub fn set_ttl(&mut self, t: u8) {
        self.0[8] = t;
    }
    pub fn set_protocol(&mut self, p: u8) {
        self.0[9] = p;
    }
    pub fn set_src(&mut self, a: u32) {
        self.0[12..16].copy_from_slice(&a.to_be_bytes());
    }
    pub fn set_dst(&mut self, a: u32) {
        self.0[16..20].copy_from_slice(&a.to_be_bytes());
    }
    pub fn set_ident(&mut self, id: u16) {
        self.0[4..6].copy_from_slice(&id.to_be_bytes());
    }
    pub fn set_flags_frag(&mut self, v: u16) {
        self.0[6..8].copy_from_slice(&v.to_be_bytes());
    }
    /// Write a plain 20-byte header with a correct checksum.
    /// The checksum comes from the fields, not a pass over the written bytes: this runs per
    /// packet in every IPv4 encap (ESP, IPIP, VXLAN).
    #[inline]
    pub fn init(&mut self, src: u32, dst: u32, proto: u8, ttl: u8, total_len: u16) {
        let words = 0x4500 + total_len as u64 + ((ttl as u64) << 8 | proto as u64);
        let c = fold(words + src as u64 + dst as u64).to_be_bytes();
        let (l, s, d) = (
            total_len.to_be_bytes(),
            src.to_be_bytes(),
            dst.to_be_bytes(),
        );
        *self.0 = [
            0x45, 0, l[0], l[1], 0, 0, 0, 0, ttl, proto, c[0], c[1], s[0], s[1], s[2], s[3], d[0],
            d[1], d[2], d[3],
        ];
    }
    /// Recompute the header checksum of the fixed 20 bytes.
    pub fn fill_checksum(&mut self) {
        self.0[10] = 0;
        self.0[11] = 0;
        let c = checksum(&self.0[..]);
        self.0[10..12].copy_from_slice(&c.to_be_bytes());
    }
}

/// One's-complement sum of `data` folded to 16 bits, not yet inverted.
#[inline]
pub fn ones_sum(data: &[u8], mut acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let v = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        let (s, o) = acc.overflowing_add(v);
        acc = s + o as u64;
    }
    // The tail with end-around carry too: after all-ones words `acc` can be u64::MAX.
    let add = |acc: u64, v: u64| {
        let (s, o) = acc.overflowing_add(v);
        s + o as u64
    };
    let rest = chunks.remainder();
    let mut i = 0;
    while i + 1 < rest.len() {
        acc = add(acc, u16::from_be_bytes([rest[i], rest[i + 1]]) as u64);
        i += 2;
    }
    if i < rest.len() {
        acc = add(acc, (rest[i] as u64) << 8);
    }
    acc
}

/// Fold a one's-complement accumulator into the final 16-bit checksum (inverted).
/// Four fixed steps, no loop: 64 -> 33 -> 17 -> 16 bits.
#[inline]
pub fn fold(acc: u64) -> u16 {
    let a = (acc >> 32) + (acc & 0xffff_ffff);
    let a = (a >> 16) + (a & 0xffff);
    let a = (a >> 16) + (a & 0xffff);
    let a = (a >> 16) + (a & 0xffff);
    !(a as u16)
}

/// One's-complement sum (not folded, not inverted) of a value's 32-bit halves: an address's
/// share of a checksum. IPv4 addresses use the low 32 bits.
#[inline(always)]
pub fn addr_sum(a: u128, ip6: bool) -> u64 {
    if ip6 {
        (a >> 96) as u32 as u64
            + (a >> 64) as u32 as u64
            + (a >> 32) as u32 as u64
            + a as u32 as u64
    } else {
        a as u32 as u64
    }
}

/// Checksum `hc` after the data it covers changed from summing to `old` to summing to `new`
/// (RFC 1624: HC' = ~(~HC + ~m + m')).
#[inline(always)]
pub fn csum_update(hc: u16, old: u64, new: u64) -> u16 {
    // In one's-complement arithmetic (mod 0xffff) ~m is -m, 2^32 is 1 and 0xffff << 40 is 0.
    // So ~HC + ~m + m' folds once as ~HC + (0xffff << 40) - m + m', with m and m' first brought
    // below 2^33 by adding their 32-bit halves, instead of folding m and m' apart (three folds).
    fold((!hc) as u64 + ((0xffff << 40) - halves(old)) + halves(new))
}

/// The change from data summing to `old` to data summing to `new` (RFC 1624's ~m + m'), as a
/// 16-bit one's-complement value in 1..=0xffff (0xffff: no change): worked out once, it updates
/// several checksums over the same change by [`csum_apply`], one fold each.
#[inline(always)]
pub fn csum_delta(old: u64, new: u64) -> u16 {
    // fold of a positive sum is the complement of its residue in 1..=0xffff.
    !fold((0xffff << 40) - halves(old) + halves(new))
}

/// A one's-complement sum brought below 2^33 by adding its 32-bit halves (2^32 is 1).
#[inline(always)]
fn halves(x: u64) -> u64 {
    (x >> 32) + (x & 0xffff_ffff)
}

/// Two [`csum_delta`]s as one (a change of addresses and one of ports), still in 1..=0xffff.
#[inline(always)]
pub fn csum_delta_add(a: u16, b: u16) -> u16 {
    let s = a as u32 + b as u32;
    ((s & 0xffff) + (s >> 16)) as u16
}

/// [`csum_delta`] for sums of at most 0x1fffe (a pair of ports), with two folds.
#[inline(always)]
pub fn csum_delta_small(old: u32, new: u32) -> u16 {
    // 3 * 0xffff is zero in one's complement and keeps the difference positive.
    let x = 0x2_fffd + new.min(0x1_fffe) - old.min(0x1_fffe);
    let x = (x & 0xffff) + (x >> 16);
    ((x & 0xffff) + (x >> 16)) as u16
}

/// Checksum `hc` after a change of [`csum_delta`] `delta`: the same value as
/// `csum_update(hc, old, new)` (never 0xffff), with one fold.
#[inline(always)]
pub fn csum_apply(hc: u16, delta: u16) -> u16 {
    // ~hc + delta is at least 1 and at most 0x1fffe: one end-around carry brings it in range.
    let s = (!hc) as u32 + delta as u32;
    !(((s & 0xffff) + (s >> 16)) as u16)
}

/// Internet checksum of `data`.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    fold(ones_sum(data, 0))
}

/// True if an IPv4 header (with options) checksums to zero.
#[inline]
pub fn ip4_header_ok(hdr: &[u8]) -> bool {
    if let Some(h) = hdr.first_chunk::<IP4_HDR>() {
        if hdr.len() == IP4_HDR {
            return ip4_header20_ok(h);
        }
    }
    fold(ones_sum(hdr, 0)) == 0
}

/// The common 20-byte header: summed as native-endian words without a loop. The one's
/// complement sum is byte-order independent (RFC 1071), and a valid header sums to all ones
/// in either order, so no byte swaps are needed to check it.
#[inline(always)]
pub fn ip4_header20_ok(h: &[u8; IP4_HDR]) -> bool {
    let (a, rest) = h.split_first_chunk::<8>().expect("20 bytes");
    let (b, c) = rest.split_first_chunk::<8>().expect("12 bytes");
    let (a, b) = (u64::from_ne_bytes(*a), u64::from_ne_bytes(*b));
    let c = u32::from_ne_bytes(*c.first_chunk::<4>().expect("4 bytes")) as u64;
    let acc = (a & 0xffff_ffff) + (a >> 32) + (b & 0xffff_ffff) + (b >> 32) + c;
    // Folding a non-zero sum gives the value in 1..=0xffff congruent to it modulo 0xffff
    // (2^16 = 1 mod 0xffff), and a valid header folds to 0xffff: so the test is a division
    // by a constant (a multiply) instead of four folding steps. A zero sum folds to 0: bad.
    acc != 0 && acc.is_multiple_of(0xffff)
}

/// Read-only IPv6 fixed header view.
#[derive(Clone, Copy)]
pub struct Ip6Hdr<'a>(pub &'a [u8; IP6_HDR]);

impl<'a> Ip6Hdr<'a> {
    #[inline(always)]
    pub fn new(buf: &'a [u8]) -> Option<Self> {
        buf.first_chunk::<IP6_HDR>().map(Ip6Hdr)
    }
    #[inline(always)]
    pub fn version(&self) -> u8 {
        self.0[0] >> 4
    }
    #[inline(always)]
    pub fn payload_len(&self) -> u16 {
        be16(self.0, 4)
    }
    #[inline(always)]
    pub fn next_header(&self) -> u8 {
        self.0[6]
    }
    #[inline(always)]
    pub fn hop_limit(&self) -> u8 {
        self.0[7]
    }
    #[inline(always)]
    pub fn src(&self) -> u128 {
        u128::from_be_bytes(*self.0[8..24].first_chunk::<16>().expect("16 of 40"))
    }
    #[inline(always)]
    pub fn dst(&self) -> u128 {
        u128::from_be_bytes(*self.0[24..40].first_chunk::<16>().expect("16 of 40"))
    }
    /// Flow label and addresses folded into a hash input.
    #[inline(always)]
    pub fn flow_label(&self) -> u32 {
        u32::from_be_bytes([0, self.0[1] & 0x0f, self.0[2], self.0[3]])
    }
}

/// Mutable IPv6 fixed header view.
pub struct Ip6HdrMut<'a>(pub &'a mut [u8; IP6_HDR]);

impl<'a> Ip6HdrMut<'a> {
    #[inline(always)]
    pub fn new(buf: &'a mut [u8]) -> Option<Self> {
        buf.first_chunk_mut::<IP6_HDR>().map(Ip6HdrMut)
    }
    #[inline(always)]
    pub fn view(&self) -> Ip6Hdr<'_> {
        Ip6Hdr(self.0)
    }
    #[inline(always)]
    pub fn dec_hop_limit(&mut self) {
        self.0[7] = self.0[7].wrapping_sub(1);
    }
    pub fn init(&mut self, src: u128, dst: u128, next: u8, hop_limit: u8, payload_len: u16) {
        self.0.fill(0);
        self.0[0] = 0x60;
        self.0[4..6].copy_from_slice(&payload_len.to_be_bytes());
        self.0[6] = next;
        self.0[7] = hop_limit;
        self.0[8..24].copy_from_slice(&src.to_be_bytes());
        self.0[24..40].copy_from_slice(&dst.to_be_bytes());
    }
}

/// One's-complement sum of the IPv6 pseudo-header.
pub fn ip6_pseudo_sum(src: u128, dst: u128, upper_len: u32, next: u8) -> u64 {
    let mut acc = ones_sum(&src.to_be_bytes(), 0);
    acc = ones_sum(&dst.to_be_bytes(), acc);
    acc + (upper_len >> 16) as u64 + (upper_len & 0xffff) as u64 + next as u64
}

/// One's-complement sum of the IPv4 pseudo-header.
pub fn ip4_pseudo_sum(src: u32, dst: u32, upper_len: u16, proto: u8) -> u64 {
    (src >> 16) as u64
        + (src & 0xffff) as u64
        + (dst >> 16) as u64
        + (dst & 0xffff) as u64
        + upper_len as u64
        + proto as u64
}

/// An Ethernet/IPv4 ARP packet (28 bytes).
pub struct ArpPkt<'a>(pub &'a mut [u8; ARP_PKT]);

pub const ARP_OP_REQUEST: u16 = 1;
pub const ARP_OP_REPLY: u16 = 2;

impl<'a> ArpPkt<'a> {
    #[inline]
    pub fn new(buf: &'a mut [u8]) -> Option<Self> {
        buf.first_chunk_mut::<ARP_PKT>().map(ArpPkt)
    }
    /// Ethernet hardware, IPv4 protocol, 6/4 address lengths.
    pub fn is_ether_ip4(&self) -> bool {
        be16(self.0, 0) == 1 && be16(self.0, 2) == ETHERTYPE_IP4 && self.0[4] == 6 && self.0[5] == 4
    }
    pub fn op(&self) -> u16 {
        be16(self.0, 6)
    }
    pub fn sender_mac(&self) -> Mac {
        let mut m = [0; 6];
        m.copy_from_slice(&self.0[8..14]);
        m
    }
    pub fn sender_ip(&self) -> u32 {
        u32::from_be_bytes([self.0[14], self.0[15], self.0[16], self.0[17]])
    }
    pub fn target_ip(&self) -> u32 {
        u32::from_be_bytes([self.0[24], self.0[25], self.0[26], self.0[27]])
    }
    /// Write a whole ARP packet.
    pub fn fill(&mut self, op: u16, smac: &Mac, sip: u32, tmac: &Mac, tip: u32) {
        self.0[0..2].copy_from_slice(&1u16.to_be_bytes());
        self.0[2..4].copy_from_slice(&ETHERTYPE_IP4.to_be_bytes());
        self.0[4] = 6;
        self.0[5] = 4;
        self.0[6..8].copy_from_slice(&op.to_be_bytes());
        self.0[8..14].copy_from_slice(smac);
        self.0[14..18].copy_from_slice(&sip.to_be_bytes());
        self.0[18..24].copy_from_slice(tmac);
        self.0[24..28].copy_from_slice(&tip.to_be_bytes());
    }
}

/// Format an IPv4 address held as a host-order u32.
pub fn fmt_ip4(a: u32) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(a)
}

/// Format an IPv6 address held as a host-order u128.
pub fn fmt_ip6(a: u128) -> std::net::Ipv6Addr {
    std::net::Ipv6Addr::from(a)
}

/// Format a MAC address.
pub fn fmt_mac(m: &Mac) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// Parse "aa:bb:cc:dd:ee:ff".
pub fn parse_mac(s: &str) -> Option<Mac> {
    let mut m = [0u8; 6];
    let mut parts = s.split(':');
    for b in m.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(m)
}

#[cfg(test)]
mod tests {
    /// The incremental update agrees with recomputing the checksum over the changed data,
    /// in one's-complement terms (0x0000 and 0xffff both stand for zero).
    #[test]
    fn csum_update_matches_recomputation() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let mut d = [0u8; 40];
            for b in d.iter_mut() {
                *b = rnd() as u8;
            }
            let hc = checksum(&d);
            let (at, len) = (rnd() as usize % 9 * 4, 4 * (1 + rnd() as usize % 2));
            let word_sum = |d: &[u8]| -> u64 {
                d[at..at + len]
                    .chunks(4)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64)
                    .sum()
            };
            let old = word_sum(&d);
            for b in d[at..at + len].iter_mut() {
                *b = rnd() as u8;
            }
            let new = word_sum(&d);
            let want = checksum(&d);
            let got = csum_update(hc, old, new);
            let norm = |c: u16| if c == 0xffff { 0 } else { c };
            assert_eq!(norm(got), norm(want), "at {at} len {len}");
            // Unfolded 64-bit accumulators (ones_sum's) are the same sums: 0xffff << 47 is 0.
            let big = 0xffffu64 << 47;
            assert_eq!(norm(csum_update(hc, old + big, new + big)), norm(want));
        }
    }

    use super::*;

    /// A delta worked out once and applied gives what `csum_update` gives, bit for bit, for
    /// any checksum (0xffff included) and any change (none included), also as two deltas added.
    #[test]
    fn csum_delta_apply_equals_csum_update() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let edge = [
            0u64,
            1,
            0xffff,
            0x1_0000,
            0xffff_ffff,
            0x1_ffff_fffe,
            0x3_ffff_fffc,
        ];
        for i in 0..200_000 {
            let pick = |r: u64| {
                if r.is_multiple_of(4) {
                    edge[(r >> 8) as usize % edge.len()]
                } else {
                    (r >> 8) % 0x3_ffff_fffd
                }
            };
            let (old, new) = (pick(rnd()), pick(rnd()));
            let new = if i % 16 == 0 { old } else { new };
            let hc = match i % 8 {
                0 => 0xffff,
                1 => 0,
                _ => rnd() as u16,
            };
            let d = csum_delta(old, new);
            assert!(d != 0, "delta in 1..=0xffff");
            assert_eq!(
                csum_apply(hc, d),
                csum_update(hc, old, new),
                "{hc:#x} {old:#x} {new:#x}"
            );
            let (op, np) = (rnd() % 0x1_ffff, rnd() % 0x1_ffff);
            let (op, np) = if i % 16 == 1 { (0x1_fffe, 0) } else { (op, np) };
            let small = csum_delta_small(op as u32, np as u32);
            assert_eq!(small, csum_delta(op, np), "{op:#x} {np:#x}");
            let both = csum_delta_add(d, small);
            assert_eq!(csum_apply(hc, both), csum_update(hc, old + op, new + np));
        }
    }

    #[test]
    fn incremental_ttl_checksum_matches_full_recompute() {
        for ttl in 1..=255u8 {
            for seed in [0u32, 0x1234_5678, 0xffff_ffff, 0x0a00_0001] {
                let mut h = [0u8; 20];
                let mut v = Ip4HdrMut(&mut h);
                v.init(seed, !seed, 17, ttl, 60);
                v.dec_ttl();
                let got = v.view().checksum();
                v.fill_checksum();
                let want = v.view().checksum();
                // 0x0000 and 0xffff are the same one's-complement value.
                assert!(
                    got == want || (got == 0xffff && want == 0) || (got == 0 && want == 0xffff)
                );
                assert!(ip4_header_ok(&h));
            }
        }
    }

    /// init's checksum from the fields equals a full pass over the header it wrote, and it
    /// overwrites every byte of a dirty buffer.
    #[test]
    fn ip4_init_matches_byte_by_byte_header() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for i in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (src, dst) = (x as u32, (x >> 32) as u32);
            let (src, dst) = match i {
                0 => (0, 0),
                1 => (u32::MAX, u32::MAX),
                _ => (src, dst),
            };
            let (proto, ttl, len) = ((x >> 8) as u8, (x >> 16) as u8, (x >> 40) as u16);
            let mut got = [0xa5u8; 20];
            Ip4HdrMut(&mut got).init(src, dst, proto, ttl, len);
            let mut want = [0u8; 20];
            want[0] = 0x45;
            want[2..4].copy_from_slice(&len.to_be_bytes());
            want[8] = ttl;
            want[9] = proto;
            want[12..16].copy_from_slice(&src.to_be_bytes());
            want[16..20].copy_from_slice(&dst.to_be_bytes());
            let c = checksum(&want);
            want[10..12].copy_from_slice(&c.to_be_bytes());
            assert_eq!(
                got, want,
                "src {src:#x} dst {dst:#x} proto {proto} ttl {ttl} len {len}"
            );
            assert!(ip4_header_ok(&got));
        }
    }

    #[test]
    fn header20_check_agrees_with_folding() {
        let fold_ok = |h: &[u8; 20]| fold(ones_sum(h, 0)) == 0;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut cases = vec![[0u8; 20], [0xff; 20]];
        for _ in 0..20_000 {
            let mut h = [0u8; 20];
            for b in h.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Mostly 0x00 / 0xff bytes too, where the carries and the two zeros live.
                *b = match x % 4 {
                    0 => 0,
                    1 => 0xff,
                    _ => (x >> 8) as u8,
                };
            }
            cases.push(h);
            // And the same header with its checksum filled, which must pass.
            let mut g = h;
            Ip4HdrMut(&mut g).fill_checksum();
            cases.push(g);
        }
        for h in &cases {
            assert_eq!(ip4_header20_ok(h), fold_ok(h), "{h:02x?}");
        }
        assert!(cases.iter().filter(|h| ip4_header20_ok(h)).count() >= 20_000);
    }

    #[test]
    fn short_slices_give_no_view() {
        let mut b = [0u8; 13];
        assert!(EthHdr::new(&mut b).is_none());
        assert!(Ip4Hdr::new(&b).is_none());
        assert!(Ip6Hdr::new(&[0u8; 39]).is_none());
    }

    #[test]
    fn mac_parse_and_format_round_trip() {
        let m = parse_mac("02:fe:0a:0b:0c:0d").unwrap();
        assert_eq!(fmt_mac(&m), "02:fe:0a:0b:0c:0d");
        assert!(parse_mac("02:fe:0a:0b:0c").is_none());
        assert!(parse_mac("02:fe:0a:0b:0c:0d:0e").is_none());
    }
}
