//! Outer headers of the node-to-node tunnels: VXLAN (over UDP), ESP, and the protocol numbers
//! of IP-in-IP. (The outer IP header of IPIP is an ordinary [`super::Ip4Hdr`]/[`super::Ip6Hdr`].)

use super::fixed::fixed_header;

/// IPv4 in IP (IPIP), RFC 2003.
pub const IP_PROTO_IPIP: u8 = 4;
/// IPv6 in IP (6in4 / IPv6 in IPv6).
pub const IP_PROTO_IPV6: u8 = 41;
/// Encapsulating Security Payload.
pub const IP_PROTO_ESP: u8 = 50;
/// IPv6 routing header (SRv6's SRH is routing type 4).
pub const IP_PROTO_ROUTING: u8 = 43;
/// The IANA VXLAN port, also felix's default.
pub const VXLAN_PORT: u16 = 4789;
/// WireGuard's usual port (calico's default).
pub const WIREGUARD_PORT: u16 = 51820;

pub const VXLAN_HDR: usize = 8;
pub const ESP_HDR: usize = 8;

/// The VXLAN "I" flag: the VNI is valid (RFC 7348).
pub const VXLAN_FLAG_VNI: u8 = 0x08;

fixed_header! {
    /// The VXLAN header: flags, reserved, a 24-bit VNI, reserved.
    VxlanHdr, VxlanHdrMut, VXLAN_HDR;
    flags, set_flags: u8 @ 0;
    /// VNI in the high 24 bits, reserved in the low 8.
    vni_word, set_vni_word: u32 @ 4;
}

impl VxlanHdr<'_> {
    /// The VNI, if the I flag says it is valid.
    #[inline(always)]
    pub fn vni(&self) -> Option<u32> {
        (self.flags() & VXLAN_FLAG_VNI != 0).then(|| self.vni_word() >> 8)
    }
}

impl VxlanHdrMut<'_> {
    /// Flags (I set), reserved bytes zero, `vni` (24 bits; higher bits are dropped).
    #[inline(always)]
    pub fn init(&mut self, vni: u32) {
        self.0.fill(0);
        self.set_flags(VXLAN_FLAG_VNI);
        self.set_vni_word((vni & 0x00ff_ffff) << 8);
    }
}

fixed_header! {
    /// The ESP header before the (encrypted) payload: SPI and sequence number (RFC 4303).
    EspHdr, EspHdrMut, ESP_HDR;
    spi, set_spi: u32 @ 0;
    seq, set_seq: u32 @ 4;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vxlan_round_trip_and_the_i_flag() {
        let mut b = [0xffu8; 8];
        VxlanHdrMut::new(&mut b).unwrap().init(4096);
        assert_eq!(b, [0x08, 0, 0, 0, 0x00, 0x10, 0x00, 0]);
        assert_eq!(VxlanHdr::new(&b).unwrap().vni(), Some(4096));
        VxlanHdrMut::new(&mut b).unwrap().init(0x0123_4567);
        assert_eq!(
            VxlanHdr::new(&b).unwrap().vni(),
            Some(0x23_4567),
            "24 bits only"
        );
        b[0] = 0;
        assert_eq!(VxlanHdr::new(&b).unwrap().vni(), None, "no I flag, no VNI");
        assert!(VxlanHdr::new(&b[..7]).is_none());
    }

    #[test]
    fn esp_spi_and_sequence() {
        let mut b = [0u8; 12];
        let mut w = EspHdrMut::new(&mut b).unwrap();
        w.set_spi(0xdead_beef);
        w.set_seq(7);
        let v = EspHdr::new(&b).unwrap();
        assert_eq!((v.spi(), v.seq()), (0xdead_beef, 7));
        assert_eq!(&b[..8], &[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 7]);
        assert!(EspHdr::new(&b[..7]).is_none());
    }
}
