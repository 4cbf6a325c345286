//! The packet generator (an input device that writes fresh headers into every packet, as VPP's
//! pg does) and the null sink (a tx device that frees what it is given).

use rvpp_dataplane::buffer::Buffers;
use rvpp_dataplane::device::{RxQueue, TxQueue};
use rvpp_dataplane::graph::rx_next;
use rvpp_dataplane::graph::DeviceNodes;
use rvpp_dataplane::wire::{self, Ip4HdrMut, Ip6HdrMut, Mac};

/// The graph nodes of packet-generator streams and of the capture / null sinks.
pub const INPUT_NODE: &str = "pg-input";
pub const TX_NODE: &str = "pg-tx";
pub const NULL_TX_NODE: &str = "null-tx";
pub const NODES: DeviceNodes = DeviceNodes::new(INPUT_NODE, TX_NODE);
pub const NULL_NODES: DeviceNodes = DeviceNodes::tx_only(NULL_TX_NODE);

/// A stream of Ethernet/IPv4/UDP or Ethernet/IPv6/UDP packets whose destination (or, from
/// [`PgStream::ip4_udp_sources`], IPv4 source) cycles through a list.
pub struct PgStream {
    sw_if_index: u32,
    /// The frame, Ethernet header included.
    template: Vec<u8>,
    /// IPv4: (address, header checksum) pairs, precomputed so each packet costs two
    /// stores. IPv6: (low 32 bits of the destination, unused).
    dsts: Vec<(u32, u16)>,
    /// Where in the frame the cycled 4 bytes go.
    addr_off: usize,
    ip6: bool,
    next_dst: usize,
    /// Packets left to send (None: forever).
    remaining: Option<u64>,
    pub sent: u64,
    pub alloc_failures: u64,
}

pub const IP4_OFF: usize = wire::ETH_HDR;

impl PgStream {
    /// `frame_len` bytes (Ethernet header included, min 60), from `src` to each of `dsts`.
    pub fn ip4_udp(
        sw_if_index: u32,
        dst_mac: Mac,
        src_mac: Mac,
        src: u32,
        dsts: &[u32],
        frame_len: usize,
    ) -> Self {
        let first = dsts.first().copied().unwrap_or(0);
        Self::ip4_cycling(
            sw_if_index,
            dst_mac,
            src_mac,
            (src, first),
            dsts,
            false,
            frame_len,
        )
    }

    /// As [`PgStream::ip4_udp`] but to one destination `dst` from each of `srcs` in turn: one
    /// flow per source, as a service's clients.
    pub fn ip4_udp_sources(
        sw_if_index: u32,
        dst_mac: Mac,
        src_mac: Mac,
        srcs: &[u32],
        dst: u32,
        frame_len: usize,
    ) -> Self {
        let first = srcs.first().copied().unwrap_or(0);
        Self::ip4_cycling(
            sw_if_index,
            dst_mac,
            src_mac,
            (first, dst),
            srcs,
            true,
            frame_len,
        )
    }

    /// IPv4/UDP from `addrs.0` to `addrs.1`, with the source (`vary_src`) or the destination
    /// replaced by each of `cycle` in turn.
    fn ip4_cycling(
        sw_if_index: u32,
        dst_mac: Mac,
        src_mac: Mac,
        addrs: (u32, u32),
        cycle: &[u32],
        vary_src: bool,
        frame_len: usize,
    ) -> Self {
        let frame_len = frame_len.max(60);
        let mut t = vec![0u8; frame_len];
        t[0..6].copy_from_slice(&dst_mac);
        t[6..12].copy_from_slice(&src_mac);
        t[12..14].copy_from_slice(&wire::ETHERTYPE_IP4.to_be_bytes());
        let ip_len = (frame_len - wire::ETH_HDR) as u16;
        {
            let mut h = Ip4HdrMut::new(&mut t[IP4_OFF..]).expect("frame >= 60");
            h.init(addrs.0, addrs.1, wire::IP_PROTO_UDP, 64, ip_len);
        }
        let u = IP4_OFF + wire::IP4_HDR;
        t[u..u + 2].copy_from_slice(&1234u16.to_be_bytes());
        t[u + 2..u + 4].copy_from_slice(&5678u16.to_be_bytes());
        t[u + 4..u + 6].copy_from_slice(&(ip_len - wire::IP4_HDR as u16).to_be_bytes());
        let dsts = cycle
            .iter()
            .map(|&d| {
                let mut h = [0u8; 20];
                h.copy_from_slice(&t[IP4_OFF..IP4_OFF + 20]);
                let mut v = Ip4HdrMut(&mut h);
                if vary_src {
                    v.set_src(d);
                } else {
                    v.set_dst(d);
                }
                v.fill_checksum();
                (d, v.view().checksum())
            })
            .collect();
        Self {
            sw_if_index,
            template: t,
            dsts,
            addr_off: IP4_OFF + if vary_src { 12 } else { 16 },
            ip6: false,
            next_dst: 0,
            remaining: None,
            sent: 0,
            alloc_failures: 0,
        }
    }

    /// `frame_len` bytes (Ethernet header included, min 62), from `src` to `dst_base` with its
    /// low 32 bits replaced by each of `dst_low` in turn. The UDP checksum is left 0: no node
    /// on the forwarding path reads it.
    pub fn ip6_udp(
        sw_if_index: u32,
        dst_mac: Mac,
        src_mac: Mac,
        src: u128,
        dst_base: u128,
        dst_low: &[u32],
        frame_len: usize,
    ) -> Self {
        let frame_len = frame_len.max(wire::ETH_HDR + wire::IP6_HDR + 8);
        let mut t = vec![0u8; frame_len];
        t[0..6].copy_from_slice(&dst_mac);
        t[6..12].copy_from_slice(&src_mac);
        t[12..14].copy_from_slice(&wire::ETHERTYPE_IP6.to_be_bytes());
        let payload = (frame_len - wire::ETH_HDR - wire::IP6_HDR) as u16;
        let first = dst_base & !0xffff_ffff | dst_low.first().copied().unwrap_or(0) as u128;
        Ip6HdrMut::new(&mut t[IP4_OFF..])
            .expect("frame >= 62")
            .init(src, first, wire::IP_PROTO_UDP, 64, payload);
        let u = IP4_OFF + wire::IP6_HDR;
        t[u..u + 2].copy_from_slice(&1234u16.to_be_bytes());
        t[u + 2..u + 4].copy_from_slice(&5678u16.to_be_bytes());
        t[u + 4..u + 6].copy_from_slice(&payload.to_be_bytes());
        Self {
            sw_if_index,
            template: t,
            dsts: dst_low.iter().map(|&d| (d, 0)).collect(),
            // The destination's last four bytes.
            addr_off: IP4_OFF + 36,
            ip6: true,
            next_dst: 0,
            remaining: None,
            sent: 0,
            alloc_failures: 0,
        }
    }

    /// `frame` (an Ethernet/IPv6 frame, e.g. an SRv6-encapsulated packet) sent as it is.
    pub fn ip6_frame(sw_if_index: u32, frame: Vec<u8>) -> Self {
        let at = IP4_OFF + 36;
        let low = frame
            .get(at..at + 4)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        Self {
            sw_if_index,
            template: frame,
            dsts: vec![(low, 0)],
            addr_off: at,
            ip6: true,
            next_dst: 0,
            remaining: None,
            sent: 0,
            alloc_failures: 0,
        }
    }

    /// `frame` (any Ethernet frame, e.g. an encapsulated packet) sent unchanged every time.
    pub fn frame(sw_if_index: u32, frame: Vec<u8>) -> Self {
        Self {
            sw_if_index,
            template: frame,
            dsts: Vec::new(),
            addr_off: 0,
            ip6: false,
            next_dst: 0,
            remaining: None,
            sent: 0,
            alloc_failures: 0,
        }
    }

    /// The frame each packet starts from (Ethernet header included).
    pub fn template(&self) -> &[u8] {
        &self.template
    }

    /// Stop after `n` packets.
    pub fn limit(mut self, n: u64) -> Self {
        self.remaining = Some(n);
        self
    }
}

impl RxQueue for PgStream {
    fn input_node(&self) -> &'static str {
        INPUT_NODE
    }
    fn sw_if_index(&self) -> u32 {
        self.sw_if_index
    }
    fn rx(&mut self, bufs: &mut Buffers, out: &mut [u32], nexts: &mut [u16]) -> usize {
        let want = match self.remaining {
            Some(r) => (r as usize).min(out.len()),
            None => out.len(),
        };
        let n = bufs.alloc(&mut out[..want]);
        if n < want {
            self.alloc_failures += (want - n) as u64;
        }
        let tl = self.template.len();
        let nd = self.dsts.len().max(1);
        for (i, &bi) in out[..n].iter().enumerate() {
            if let Some(&nb) = out.get(i + 4) {
                bufs.prefetch(nb);
            }
            let mut b = bufs.get(bi);
            b.meta.rx_sw_if_index = self.sw_if_index;
            b.meta.current_length = tl as u16;
            let d = &mut b.tail_room_mut()[..tl];
            match (d.first_chunk_mut::<64>(), self.template.first_chunk::<64>()) {
                // Minimum-size frames: a fixed 64-byte copy, no memcpy call.
                (Some(dst), Some(src)) if tl == 64 => *dst = *src,
                _ => d.copy_from_slice(&self.template),
            }
            if let Some(&(addr, ck)) = self.dsts.get(self.next_dst) {
                if !self.ip6 {
                    d[IP4_OFF + 10..IP4_OFF + 12].copy_from_slice(&ck.to_be_bytes());
                }
                if let Some(w) = d.get_mut(self.addr_off..self.addr_off + 4) {
                    w.copy_from_slice(&addr.to_be_bytes());
                }
            }
            self.next_dst += 1;
            if self.next_dst == nd {
                self.next_dst = 0;
            }
        }
        nexts[..n].fill(rx_next::ETHERNET);
        self.sent += n as u64;
        if let Some(r) = &mut self.remaining {
            *r -= n as u64;
        }
        n
    }
}

/// Frees every packet; counts them.
#[derive(Default)]
pub struct NullTx {
    pub packets: u64,
    pub bytes: u64,
}

impl TxQueue for NullTx {
    fn tx_node(&self) -> &'static str {
        NULL_TX_NODE
    }
    fn tx(&mut self, bufs: &mut Buffers, pkts: &[u32]) -> usize {
        self.packets += pkts.len() as u64;
        bufs.free(pkts);
        pkts.len()
    }
}

/// Collects packets' bytes (tests); frees the buffers.
#[derive(Default)]
pub struct CaptureTx {
    pub frames: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

impl TxQueue for CaptureTx {
    fn tx_node(&self) -> &'static str {
        TX_NODE
    }
    fn tx(&mut self, bufs: &mut Buffers, pkts: &[u32]) -> usize {
        let mut tmp = vec![0u8; 65536];
        let mut frames = self.frames.lock().unwrap_or_else(|e| e.into_inner());
        for &bi in pkts {
            let n = bufs.copy_chain(bi, &mut tmp);
            frames.push(tmp[..n].to_vec());
        }
        bufs.free(pkts);
        pkts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvpp_dataplane::buffer::BufferPool;
    use rvpp_dataplane::wire::Ip4Hdr;

    /// A source-cycling stream writes each source in turn with a valid header checksum and
    /// leaves the destination alone.
    #[test]
    fn sources_cycle_with_valid_checksums() {
        let pool = BufferPool::with_backing(64, 2048, false).unwrap();
        let mut bufs = pool.local();
        let srcs = [0x0a00_0001, 0x0a00_0002, 0x0a01_0203];
        let mut s = PgStream::ip4_udp_sources(1, [2; 6], [4; 6], &srcs, 0xc613_ff01, 64);
        let (mut out, mut nexts) = ([0u32; 4], [0u16; 4]);
        assert_eq!(s.rx(&mut bufs, &mut out, &mut nexts), 4);
        for (i, &bi) in out.iter().enumerate() {
            let b = bufs.get(bi);
            let h = Ip4Hdr::new(&b.data()[IP4_OFF..]).unwrap();
            assert_eq!(h.src(), srcs[i % 3], "packet {i}");
            assert_eq!(h.dst(), 0xc613_ff01);
            let mut copy = [0u8; 20];
            copy.copy_from_slice(&b.data()[IP4_OFF..IP4_OFF + 20]);
            Ip4HdrMut(&mut copy).fill_checksum();
            assert_eq!(Ip4Hdr::new(&copy).unwrap().checksum(), h.checksum());
        }
        bufs.free(&out);
    }
}
