//! `struct virtio_net_hdr`: the 10-byte checksum/GSO offload header that tun/tap
//! (`IFF_VNET_HDR`) and packet sockets (`PACKET_VNET_HDR`) put before each frame.

use rvpp_dataplane::buffer::{flags, BufferMeta};

/// Size of the legacy `struct virtio_net_hdr` (no `num_buffers`).
pub const VNET_HDR_LEN: usize = 10;
pub const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
pub const VIRTIO_NET_HDR_F_DATA_VALID: u8 = 2;
pub const VIRTIO_NET_HDR_GSO_NONE: u8 = 0;
pub const VIRTIO_NET_HDR_GSO_TCPV4: u8 = 1;
pub const VIRTIO_NET_HDR_GSO_UDP: u8 = 3;
pub const VIRTIO_NET_HDR_GSO_TCPV6: u8 = 4;
pub const VIRTIO_NET_HDR_GSO_UDP_L4: u8 = 5;
pub const VIRTIO_NET_HDR_GSO_ECN: u8 = 0x80;

/// `struct virtio_net_hdr`, native endian (tun and packet sockets use the host's order on
/// little-endian machines, which is all we run on).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHdr {
    pub fn parse(b: &[u8; VNET_HDR_LEN]) -> Self {
        let u = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        Self {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u(2),
            gso_size: u(4),
            csum_start: u(6),
            csum_offset: u(8),
        }
    }

    pub fn to_bytes(self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }

    /// Record what the kernel left to do in the buffer's flags. `l3` is where the IP header
    /// starts in the packet (0 for tun, 14 for untagged Ethernet).
    pub fn apply_rx(&self, meta: &mut BufferMeta, l3: usize) {
        meta.l3_hdr_offset = l3 as i16;
        if self.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0 {
            meta.flags |= flags::OFFLOAD_L4_CKSUM;
            meta.l4_hdr_offset = self.csum_start as i16;
        }
        if self.gso_type & !VIRTIO_NET_HDR_GSO_ECN != VIRTIO_NET_HDR_GSO_NONE && self.gso_size > 0 {
            meta.flags |= flags::GSO;
            meta.gso_size = self.gso_size;
        }
    }

    /// The header for sending a packet whose buffer asks for checksum or segmentation offload.
    /// `pkt` is the start of the packet (at least its headers); `l2` says it has Ethernet.
    /// A packet we cannot parse goes out with no offload.
    pub fn for_tx(meta: &BufferMeta, pkt: &[u8], l2: bool) -> Self {
        let want_csum = meta.flags & (flags::OFFLOAD_L4_CKSUM | flags::GSO) != 0;
        if !want_csum {
            return Self::default();
        }
        let Some(h) = parse_l3l4(pkt, l2) else {
            return Self::default();
        };
        let csum_offset = match h.proto {
            6 => 16,
            17 => 6,
            _ => return Self::default(),
        };
        let mut v = Self {
            flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
            gso_type: VIRTIO_NET_HDR_GSO_NONE,
            hdr_len: 0,
            gso_size: 0,
            csum_start: h.l4 as u16,
            csum_offset,
        };
        if meta.flags & flags::GSO != 0 && meta.gso_size > 0 && h.proto == 6 {
            if let Some(&doff) = pkt.get(h.l4 + 12) {
                v.gso_type = if h.v6 {
                    VIRTIO_NET_HDR_GSO_TCPV6
                } else {
                    VIRTIO_NET_HDR_GSO_TCPV4
                };
                v.gso_size = meta.gso_size;
                v.hdr_len = (h.l4 + ((doff >> 4) as usize) * 4) as u16;
            }
        }
        v
    }
}

struct L3L4 {
    v6: bool,
    proto: u8,
    l4: usize,
}

/// Find the IP version, L4 protocol and L4 offset (no IPv6 extension headers).
fn parse_l3l4(p: &[u8], l2: bool) -> Option<L3L4> {
    let mut off = 0;
    let ver = if l2 {
        let mut et = u16::from_be_bytes([*p.get(12)?, *p.get(13)?]);
        off = 14;
        while et == 0x8100 || et == 0x88a8 {
            et = u16::from_be_bytes([*p.get(off + 2)?, *p.get(off + 3)?]);
            off += 4;
        }
        match et {
            0x0800 => 4,
            0x86dd => 6,
            _ => return None,
        }
    } else {
        p.first()? >> 4
    };
    match ver {
        4 => {
            let ihl = ((*p.get(off)? & 0xf) as usize) * 4;
            (ihl >= 20).then_some(L3L4 {
                v6: false,
                proto: *p.get(off + 9)?,
                l4: off + ihl,
            })
        }
        6 => Some(L3L4 {
            v6: true,
            proto: *p.get(off + 6)?,
            l4: off + 40,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvpp_dataplane::buffer::BufferPool;

    #[test]
    fn vnet_hdr_round_trips() {
        let h = VnetHdr {
            flags: 1,
            gso_type: 4,
            hdr_len: 74,
            gso_size: 1440,
            csum_start: 54,
            csum_offset: 16,
        };
        assert_eq!(VnetHdr::parse(&h.to_bytes()), h);
    }

    #[test]
    fn tx_header_from_flags() {
        // Ethernet + IPv4 (ihl 5) + TCP with data offset 8 (32 bytes).
        let mut p = vec![0u8; 14 + 20 + 32];
        p[12] = 0x08;
        p[14] = 0x45;
        p[14 + 9] = 6;
        p[34 + 12] = 8 << 4;
        let mut m = unsafe_free_meta();
        assert_eq!(VnetHdr::for_tx(&m, &p, true), VnetHdr::default());
        m.flags = flags::GSO | flags::OFFLOAD_L4_CKSUM;
        m.gso_size = 1448;
        let h = VnetHdr::for_tx(&m, &p, true);
        assert_eq!(h.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
        assert_eq!(h.gso_type, VIRTIO_NET_HDR_GSO_TCPV4);
        assert_eq!((h.csum_start, h.csum_offset, h.hdr_len), (34, 16, 66));
        // Same as tun (no Ethernet), UDP over IPv6, checksum only.
        let mut q = vec![0u8; 48];
        q[0] = 0x60;
        q[6] = 17;
        m.flags = flags::OFFLOAD_L4_CKSUM;
        let h = VnetHdr::for_tx(&m, &q, false);
        assert_eq!((h.gso_type, h.csum_start, h.csum_offset), (0, 40, 6));
        // Garbage never panics.
        let _ = VnetHdr::for_tx(&m, &[0x45], false);
        let _ = VnetHdr::for_tx(&m, &[], true);
    }

    fn unsafe_free_meta() -> BufferMeta {
        let pool = BufferPool::with_backing(1, 2048, false).unwrap();
        let mut w = pool.local();
        let bi = w.alloc_one().unwrap();
        let m = *w.meta(bi);
        w.free(&[bi]);
        m
    }
}
