//! Transport and control headers: UDP, TCP, ICMP, ICMPv6 and IPv6 neighbour discovery.

use super::fixed::fixed_header;
use super::{fold, ip4_pseudo_sum, ip6_pseudo_sum, ones_sum};

pub const UDP_HDR: usize = 8;
pub const TCP_HDR: usize = 20;
pub const ICMP_HDR: usize = 8;

fixed_header! {
    /// The UDP header.
    UdpHdr, UdpHdrMut, UDP_HDR;
    src_port, set_src_port: u16 @ 0;
    dst_port, set_dst_port: u16 @ 2;
    /// Header and payload, in bytes.
    length, set_length: u16 @ 4;
    checksum, set_checksum: u16 @ 6;
}

impl UdpHdrMut<'_> {
    /// Write a whole header: ports, `len` (header + payload) and a zero checksum.
    #[inline(always)]
    pub fn init(&mut self, src_port: u16, dst_port: u16, len: u16) {
        self.set_src_port(src_port);
        self.set_dst_port(dst_port);
        self.set_length(len);
        self.set_checksum(0);
    }
}

fixed_header! {
    /// The fixed 20 bytes of a TCP header (options follow up to `header_len`).
    TcpHdr, TcpHdrMut, TCP_HDR;
    src_port, set_src_port: u16 @ 0;
    dst_port, set_dst_port: u16 @ 2;
    seq, set_seq: u32 @ 4;
    ack, set_ack: u32 @ 8;
    /// Data offset (high nibble) and the reserved bits.
    offset_byte, set_offset_byte: u8 @ 12;
    /// CWR ECE URG ACK PSH RST SYN FIN, high bit first.
    flags, set_flags: u8 @ 13;
    window, set_window: u16 @ 14;
    checksum, set_checksum: u16 @ 16;
    urgent, set_urgent: u16 @ 18;
}

pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

impl TcpHdr<'_> {
    /// Header length in bytes, options included.
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        (self.offset_byte() >> 4) as usize * 4
    }
    /// Whether the header length is legal and its options fit in `segment_len` bytes.
    #[inline(always)]
    pub fn header_len_ok(&self, segment_len: usize) -> bool {
        let h = self.header_len();
        h >= TCP_HDR && h <= segment_len
    }
}

fixed_header! {
    /// An ICMP (v4) or ICMPv6 header: type, code, checksum, and 4 bytes whose meaning depends
    /// on the type (echo id and sequence, the next-hop MTU of a too-big, unused).
    IcmpHdr, IcmpHdrMut, ICMP_HDR;
    icmp_type, set_icmp_type: u8 @ 0;
    code, set_code: u8 @ 1;
    checksum, set_checksum: u16 @ 2;
    /// Echo identifier (echo request/reply).
    echo_id, set_echo_id: u16 @ 4;
    /// Echo sequence number (echo request/reply).
    echo_seq, set_echo_seq: u16 @ 6;
    /// The second word: MTU of a packet-too-big / fragmentation-needed (low 16 bits in v4).
    rest, set_rest: u32 @ 4;
}

pub mod icmp4_type {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACH: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
}

pub mod icmp6_type {
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
}

impl IcmpHdrMut<'_> {
    /// Type and code, the second word zeroed, checksum zero (fill it in last).
    #[inline(always)]
    pub fn init(&mut self, icmp_type: u8, code: u8) {
        self.0.fill(0);
        self.set_icmp_type(icmp_type);
        self.set_code(code);
    }
}

/// Checksum of an upper-layer message over IPv4 (UDP or TCP: `l4` is header and payload, its
/// checksum field zero). UDP callers map a result of 0 to 0xffff.
pub fn l4_checksum_ip4(src: u32, dst: u32, proto: u8, l4: &[u8]) -> u16 {
    fold(ones_sum(
        l4,
        ip4_pseudo_sum(src, dst, l4.len() as u16, proto),
    ))
}

/// Checksum of an upper-layer message over IPv6 (UDP, TCP, ICMPv6), checksum field zero.
pub fn l4_checksum_ip6(src: u128, dst: u128, next: u8, l4: &[u8]) -> u16 {
    fold(ones_sum(
        l4,
        ip6_pseudo_sum(src, dst, l4.len() as u32, next),
    ))
}

/// Bytes of a neighbour solicitation or advertisement before its options.
pub const ND_NS_NA: usize = 24;

fixed_header! {
    /// A neighbour solicitation or advertisement (ICMPv6 135/136) up to its options.
    NdMsg, NdMsgMut, ND_NS_NA;
    icmp_type, set_icmp_type: u8 @ 0;
    code, set_code: u8 @ 1;
    checksum, set_checksum: u16 @ 2;
    /// Advertisement flags: router 0x80, solicited 0x40, override 0x20 (high byte of word 1).
    na_flags, set_na_flags: u8 @ 4;
}

pub mod na_flags {
    pub const ROUTER: u8 = 0x80;
    pub const SOLICITED: u8 = 0x40;
    pub const OVERRIDE: u8 = 0x20;
}

impl NdMsg<'_> {
    /// The target address.
    #[inline(always)]
    pub fn target(&self) -> u128 {
        u128::from_be_bytes(*self.0[8..24].first_chunk::<16>().expect("16 of 24"))
    }
}

impl NdMsgMut<'_> {
    #[inline(always)]
    pub fn set_target(&mut self, t: u128) {
        self.0[8..24].copy_from_slice(&t.to_be_bytes());
    }
}

/// Source link-layer address option.
pub const ND_OPT_SOURCE_LLADDR: u8 = 1;
/// Target link-layer address option.
pub const ND_OPT_TARGET_LLADDR: u8 = 2;

/// The options after an ND message: `(type, body)` pairs. Stops at the first malformed one
/// (length 0, or running past the end), which RFC 4861 says makes the whole packet invalid:
/// [`NdOptions::malformed`] tells whether that happened.
pub struct NdOptions<'a> {
    rest: &'a [u8],
    bad: bool,
}

impl<'a> NdOptions<'a> {
    pub fn new(options: &'a [u8]) -> Self {
        Self {
            rest: options,
            bad: false,
        }
    }
    /// Whether iteration stopped on a malformed option.
    pub fn malformed(&self) -> bool {
        self.bad
    }
    /// The link-layer address in the first option of `kind` (Ethernet: 6 bytes).
    pub fn lladdr(options: &'a [u8], kind: u8) -> Option<[u8; 6]> {
        NdOptions::new(options)
            .find(|(t, _)| *t == kind)
            .and_then(|(_, body)| body.first_chunk::<6>().copied())
    }
}

impl<'a> Iterator for NdOptions<'a> {
    type Item = (u8, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        let [t, l, ..] = *self.rest else {
            if !self.rest.is_empty() {
                self.bad = true;
            }
            return None;
        };
        let n = l as usize * 8;
        if n == 0 || n > self.rest.len() {
            self.bad = true;
            self.rest = &[];
            return None;
        }
        let (opt, rest) = self.rest.split_at(n);
        self.rest = rest;
        Some((t, &opt[2..]))
    }
}

#[cfg(test)]
mod tests {
    use super::super::checksum;
    use super::*;
    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

    fn udp4() -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ipv4([198, 18, 0, 2], [198, 19, 0, 9], 64)
            .udp(1000, 4789)
            .write(&mut v, b"payload!")
            .unwrap();
        v
    }

    #[test]
    fn udp_view_reads_what_etherparse_wrote_and_emits_what_it_reads() {
        let p = udp4();
        let u = UdpHdr::new(&p[20..]).unwrap();
        assert_eq!((u.src_port(), u.dst_port(), u.length()), (1000, 4789, 16));
        // Our checksum of the datagram equals the one etherparse computed.
        let mut l4 = p[20..].to_vec();
        l4[6..8].fill(0);
        let want = u.checksum();
        let got = l4_checksum_ip4(0xc612_0002, 0xc613_0009, 17, &l4);
        assert_eq!(got, want);
        // Emit a header of our own over the same bytes and let etherparse parse it.
        let mut q = p.clone();
        let mut w = UdpHdrMut::new(&mut q[20..]).unwrap();
        w.init(2000, 53, 16);
        w.set_checksum(0);
        let s = SlicedPacket::from_ip(&q).unwrap();
        let Some(TransportSlice::Udp(ud)) = s.transport else {
            panic!("not UDP")
        };
        assert_eq!((ud.source_port(), ud.destination_port()), (2000, 53));
        assert!(
            UdpHdr::new(&p[20..27]).is_none(),
            "7 bytes are no UDP header"
        );
    }

    #[test]
    fn tcp_view_and_its_header_length_check() {
        let mut v = Vec::new();
        PacketBuilder::ipv4([198, 18, 0, 2], [198, 19, 0, 9], 64)
            .tcp(40000, 443, 0x1234_5678, 512)
            .syn()
            .ack(7)
            .write(&mut v, b"x")
            .unwrap();
        let t = TcpHdr::new(&v[20..]).unwrap();
        assert_eq!((t.src_port(), t.dst_port()), (40000, 443));
        assert_eq!((t.seq(), t.ack(), t.window()), (0x1234_5678, 7, 512));
        assert_eq!(t.flags() & (tcp_flags::SYN | tcp_flags::ACK), 0x12);
        assert_eq!(t.header_len(), 20);
        assert!(t.header_len_ok(21));
        let mut bad = v[20..].to_vec();
        bad[12] = 0x40; // 16 bytes: shorter than the fixed header
        assert!(!TcpHdr::new(&bad).unwrap().header_len_ok(bad.len()));
        bad[12] = 0xf0; // 60 bytes claimed, 21 present
        assert!(!TcpHdr::new(&bad).unwrap().header_len_ok(bad.len()));
        assert!(TcpHdr::new(&v[20..39]).is_none());
    }

    #[test]
    fn icmp_echo_round_trip_and_checksum() {
        let mut v = Vec::new();
        PacketBuilder::ipv4([198, 18, 0, 2], [198, 18, 0, 1], 64)
            .icmpv4_echo_request(0x77, 9)
            .write(&mut v, b"ping")
            .unwrap();
        let i = IcmpHdr::new(&v[20..]).unwrap();
        assert_eq!(i.icmp_type(), icmp4_type::ECHO_REQUEST);
        assert_eq!((i.echo_id(), i.echo_seq()), (0x77, 9));
        assert_eq!(checksum(&v[20..]), 0, "a correct checksum sums to zero");
        // Turn it into a reply the way ip4-local does and check etherparse agrees.
        let mut r = v[20..].to_vec();
        let mut w = IcmpHdrMut::new(&mut r).unwrap();
        w.set_icmp_type(icmp4_type::ECHO_REPLY);
        w.set_checksum(0);
        let c = checksum(&r);
        IcmpHdrMut::new(&mut r).unwrap().set_checksum(c);
        assert_eq!(checksum(&r), 0);
        let h = etherparse::Icmpv4Slice::from_slice(&r).unwrap();
        assert!(matches!(
            h.icmp_type(),
            etherparse::Icmpv4Type::EchoReply(e) if e.id == 0x77 && e.seq == 9
        ));
    }

    #[test]
    fn neighbour_solicitation_target_and_options() {
        let target: u128 = 0xfd00_0018_0000_0000_0000_0000_0000_0001;
        let mut m = vec![0u8; ND_NS_NA + 8];
        let mut w = NdMsgMut::new(&mut m).unwrap();
        w.set_icmp_type(icmp6_type::NEIGHBOR_SOLICIT);
        w.set_target(target);
        m[24..32].copy_from_slice(&[ND_OPT_SOURCE_LLADDR, 1, 2, 0, 0, 0, 0, 7]);
        let v = NdMsg::new(&m).unwrap();
        assert_eq!(v.target(), target);
        assert_eq!(
            NdOptions::lladdr(&m[24..], ND_OPT_SOURCE_LLADDR),
            Some([2, 0, 0, 0, 0, 7])
        );
        // A zero-length option and one running past the end are malformed.
        for bad in [
            &[1u8, 0, 0, 0, 0, 0, 0, 0][..],
            &[1u8, 2, 0, 0, 0, 0, 0, 0][..],
            &[1u8][..],
        ] {
            let mut it = NdOptions::new(bad);
            assert!(it.next().is_none());
            assert!(it.malformed(), "{bad:?}");
        }
        assert!(NdMsg::new(&m[..23]).is_none());
    }
}
