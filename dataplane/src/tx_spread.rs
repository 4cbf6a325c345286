//! One worker sending on several device tx queues: each packet goes to the queue its flow hash
//! picks, so the peer's rings share the load and a flow's packets stay in order (they all take
//! one queue). Used when a device has more tx queues than the workers that send on it (a memif
//! peer with 3 queue pairs and one rvpp worker drains all three rings instead of ring 0 alone).

use crate::buffer::Buffers;
use crate::device::TxQueue;
use crate::nodes::{ip4::flow_hash4, ip6::flow_hash6};

/// How the frames this queue sends start: the flow hash has to find the IP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Ethernet (tap, af_packet, af_xdp, memif ethernet).
    Ethernet,
    /// Bare IP (tun, memif ip).
    Ip,
}

/// Which of `n` lanes (device queues) each packet takes, and the bookkeeping to send a vector
/// over them: the part a driver with several rings of its own reuses.
pub struct Spreader {
    framing: Framing,
    /// Per lane, the packets of the vector being sent (kept across calls: no allocation once
    /// they have grown to the largest vector).
    lanes: Vec<Vec<u32>>,
    /// What full lanes refused, moved after the accepted packets.
    refused: Vec<u32>,
}

impl Spreader {
    pub fn new(n: usize, framing: Framing) -> Self {
        Self {
            framing,
            lanes: (0..n.max(1)).map(|_| Vec::with_capacity(256)).collect(),
            refused: Vec::with_capacity(256),
        }
    }

    pub fn lanes(&self) -> usize {
        self.lanes.len()
    }

    /// The lane of packet `bi`.
    #[inline]
    pub fn lane_of(&self, bufs: &mut Buffers, bi: u32) -> usize {
        let h = self.hash(bufs.get(bi).data());
        // Multiply-shift maps the hash onto the lanes without a division.
        ((h as u64 * self.lanes.len() as u64) >> 32) as usize
    }

    /// Send `pkts` lane by lane through `send(lane, bufs, pkts) -> taken`, reordering `pkts` so
    /// that the taken ones come first; returns how many were taken. A flow keeps its order (one
    /// lane, its packets in vector order).
    pub fn send_reorder(
        &mut self,
        bufs: &mut Buffers,
        pkts: &mut [u32],
        mut send: impl FnMut(usize, &mut Buffers, &[u32]) -> usize,
    ) -> usize {
        for lane in &mut self.lanes {
            lane.clear();
        }
        for &bi in pkts.iter() {
            let q = self.lane_of(bufs, bi);
            self.lanes[q].push(bi);
        }
        self.refused.clear();
        let mut sent = 0;
        for (q, lane) in self.lanes.iter().enumerate() {
            if lane.is_empty() {
                continue;
            }
            let k = send(q, bufs, lane).min(lane.len());
            pkts[sent..sent + k].copy_from_slice(&lane[..k]);
            sent += k;
            self.refused.extend_from_slice(&lane[k..]);
        }
        pkts[sent..].copy_from_slice(&self.refused);
        sent
    }

    /// Send `pkts` in order: each run bound for one lane as it comes, stopping at the first run
    /// a lane does not take whole (the caller owns what follows). gso-segment sends this way:
    /// a super-frame's segments are one flow, so one run.
    pub fn send_in_order(
        &self,
        bufs: &mut Buffers,
        pkts: &[u32],
        mut send: impl FnMut(usize, &mut Buffers, &[u32]) -> usize,
    ) -> usize {
        let mut sent = 0;
        while sent < pkts.len() {
            let q = self.lane_of(bufs, pkts[sent]);
            let mut end = sent + 1;
            while end < pkts.len() && self.lane_of(bufs, pkts[end]) == q {
                end += 1;
            }
            sent += send(q, bufs, &pkts[sent..end]).min(end - sent);
            if sent < end {
                break;
            }
        }
        sent
    }

    /// The flow hash of a frame: IPv4 or IPv6 addresses, protocol and ports; other frames by
    /// their Ethernet addresses (one flow per station pair, so still in order).
    fn hash(&self, d: &[u8]) -> u32 {
        let ip = match self.framing {
            Framing::Ip => d,
            Framing::Ethernet => {
                let mut off = 12;
                let mut ty = match d.get(12..14) {
                    Some(t) => u16::from_be_bytes([t[0], t[1]]),
                    None => return 0,
                };
                // Up to two VLAN tags (802.1Q / 802.1ad).
                for _ in 0..2 {
                    if ty != 0x8100 && ty != 0x88a8 {
                        break;
                    }
                    off += 4;
                    ty = match d.get(off..off + 2) {
                        Some(t) => u16::from_be_bytes([t[0], t[1]]),
                        None => return 0,
                    };
                }
                match (ty, d.get(off + 2..)) {
                    (0x0800 | 0x86dd, Some(ip)) => ip,
                    _ => return mac_hash(d),
                }
            }
        };
        match ip.first().map(|v| v >> 4) {
            Some(4) => flow_hash4(ip),
            Some(6) => flow_hash6(ip),
            _ => mac_hash(d),
        }
    }
}

/// A hash of the first 12 bytes (the Ethernet addresses; for a short or non-IP frame, what
/// there is).
fn mac_hash(d: &[u8]) -> u32 {
    let mut x = 0u64;
    for (i, b) in d.iter().take(12).enumerate() {
        x ^= (*b as u64) << ((i % 8) * 8);
    }
    crate::nodes::flow_hash_finish(x)
}

/// Several tx queues behind one [`TxQueue`], a packet's queue picked by its flow hash.
pub struct SpreadTx {
    queues: Vec<Box<dyn TxQueue>>,
    spread: Spreader,
    node: &'static str,
}

impl SpreadTx {
    /// `queues` must not be empty.
    pub fn new(queues: Vec<Box<dyn TxQueue>>, framing: Framing) -> Self {
        assert!(!queues.is_empty(), "SpreadTx needs a queue");
        let node = queues[0].tx_node();
        let spread = Spreader::new(queues.len(), framing);
        Self {
            queues,
            spread,
            node,
        }
    }
}

impl TxQueue for SpreadTx {
    fn tx_node(&self) -> &'static str {
        self.node
    }

    fn tx(&mut self, bufs: &mut Buffers, pkts: &[u32]) -> usize {
        let qs = &mut self.queues;
        self.spread
            .send_in_order(bufs, pkts, |q, bufs, p| qs[q].tx(bufs, p))
    }

    fn tx_reorder(&mut self, bufs: &mut Buffers, pkts: &mut [u32]) -> usize {
        let qs = &mut self.queues;
        self.spread
            .send_reorder(bufs, pkts, |q, bufs, p| qs[q].tx(bufs, p))
    }

    fn flush(&mut self, bufs: &mut Buffers) {
        for q in &mut self.queues {
            q.flush(bufs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::BufferPool;
    use std::sync::{Arc, Mutex};

    /// A queue that takes up to `room` packets per call and records what it took.
    struct Recorder {
        room: usize,
        taken: Arc<Mutex<Vec<u32>>>,
        flushes: Arc<Mutex<usize>>,
    }

    impl TxQueue for Recorder {
        fn tx_node(&self) -> &'static str {
            "test-tx"
        }
        fn tx(&mut self, _bufs: &mut Buffers, pkts: &[u32]) -> usize {
            let k = pkts.len().min(self.room);
            self.taken.lock().unwrap().extend_from_slice(&pkts[..k]);
            k
        }
        fn flush(&mut self, _bufs: &mut Buffers) {
            *self.flushes.lock().unwrap() += 1;
        }
    }

    type Taken = Arc<Mutex<Vec<u32>>>;

    fn spread(
        n: usize,
        room: usize,
        framing: Framing,
    ) -> (SpreadTx, Vec<Taken>, Vec<Arc<Mutex<usize>>>) {
        let mut qs: Vec<Box<dyn TxQueue>> = Vec::new();
        let mut taken = Vec::new();
        let mut flushes = Vec::new();
        for _ in 0..n {
            let t: Taken = Default::default();
            let f: Arc<Mutex<usize>> = Default::default();
            qs.push(Box::new(Recorder {
                room,
                taken: t.clone(),
                flushes: f.clone(),
            }));
            taken.push(t);
            flushes.push(f);
        }
        (SpreadTx::new(qs, framing), taken, flushes)
    }

    /// An Ethernet + IPv4 + UDP frame from 198.18.0.<src> port <sport>.
    fn udp4(src: u8, sport: u16, seq: u8) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8 + 1];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let ip = &mut f[14..];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&29u16.to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[198, 18, 0, src]);
        ip[16..20].copy_from_slice(&[198, 19, 0, 1]);
        ip[20..22].copy_from_slice(&sport.to_be_bytes());
        ip[22..24].copy_from_slice(&7u16.to_be_bytes());
        ip[28] = seq;
        f
    }

    fn flow_of(bufs: &mut Buffers, bi: u32) -> (u8, u16) {
        let b = bufs.get(bi);
        let d = b.data();
        (d[14 + 15], u16::from_be_bytes([d[34], d[35]]))
    }

    #[test]
    fn flows_spread_over_every_queue_and_keep_their_order() {
        let pool = BufferPool::new(4096, 2048).unwrap();
        let mut bufs = pool.local();
        let (mut tx, taken, _) = spread(3, usize::MAX, Framing::Ethernet);
        let mut pkts = Vec::new();
        for seq in 0..4u8 {
            for flow in 0..64u16 {
                let f = udp4((flow % 8) as u8, 1000 + flow, seq);
                pkts.push(bufs.alloc_from_bytes(&f).unwrap());
            }
        }
        let total = pkts.len();
        assert_eq!(tx.tx_reorder(&mut bufs, &mut pkts), total);
        let mut seen = std::collections::HashMap::new();
        for (q, t) in taken.iter().enumerate() {
            let t = t.lock().unwrap();
            assert!(t.len() > total / 6, "queue {q} got {} of {total}", t.len());
            for &bi in t.iter() {
                let flow = flow_of(&mut bufs, bi);
                let seq = bufs.get(bi).data()[42];
                // One queue per flow, and its packets in the order sent.
                let (fq, last) = seen.entry(flow).or_insert((q, None::<u8>));
                assert_eq!(*fq, q, "flow {flow:?} on two queues");
                assert!(last.is_none_or(|l| l < seq), "flow {flow:?} reordered");
                *last = Some(seq);
            }
        }
        assert_eq!(seen.len(), 64);
        bufs.free(&pkts);
    }

    #[test]
    fn refused_packets_come_after_the_accepted_ones() {
        let pool = BufferPool::new(1024, 2048).unwrap();
        let mut bufs = pool.local();
        let (mut tx, taken, flushes) = spread(2, 5, Framing::Ethernet);
        let mut pkts: Vec<u32> = (0..40u16)
            .map(|i| bufs.alloc_from_bytes(&udp4(i as u8, i, 0)).unwrap())
            .collect();
        let all: std::collections::HashSet<u32> = pkts.iter().copied().collect();
        let sent = tx.tx_reorder(&mut bufs, &mut pkts);
        assert_eq!(sent, 10, "each of two queues takes 5");
        let accepted: std::collections::HashSet<u32> = pkts[..sent].iter().copied().collect();
        let mut by_queues: Vec<u32> = taken
            .iter()
            .flat_map(|t| t.lock().unwrap().clone())
            .collect();
        by_queues.sort();
        let mut acc: Vec<u32> = accepted.iter().copied().collect();
        acc.sort();
        assert_eq!(
            acc, by_queues,
            "the accepted prefix is what the queues took"
        );
        // Still a permutation of the vector: nothing lost or duplicated.
        assert_eq!(
            pkts.iter()
                .copied()
                .collect::<std::collections::HashSet<_>>(),
            all
        );
        assert_eq!(pkts.len(), 40);
        tx.flush(&mut bufs);
        assert!(flushes.iter().all(|f| *f.lock().unwrap() == 1));
        bufs.free(&pkts);
    }

    #[test]
    fn in_order_tx_keeps_each_flow_on_its_queue_and_stops_at_a_refusal() {
        let pool = BufferPool::new(1024, 2048).unwrap();
        let mut bufs = pool.local();
        let (mut reorder, r_taken, _) = spread(3, usize::MAX, Framing::Ethernet);
        let (mut ordered, o_taken, _) = spread(3, usize::MAX, Framing::Ethernet);
        let mut pkts: Vec<u32> = (0..30u16)
            .map(|i| bufs.alloc_from_bytes(&udp4(i as u8, i, 0)).unwrap())
            .collect();
        let copy = pkts.clone();
        assert_eq!(ordered.tx(&mut bufs, &copy), 30);
        assert_eq!(reorder.tx_reorder(&mut bufs, &mut pkts), 30);
        // Both ways put every flow on the same queue.
        for q in 0..3 {
            let mut a = r_taken[q].lock().unwrap().clone();
            let mut b = o_taken[q].lock().unwrap().clone();
            a.sort();
            b.sort();
            assert_eq!(a, b, "queue {q}");
        }
        // A queue with room for one packet: tx stops at the first run it cuts short.
        let (mut tight, t_taken, _) = spread(3, 1, Framing::Ethernet);
        let sent = tight.tx(&mut bufs, &copy);
        let took: usize = t_taken.iter().map(|t| t.lock().unwrap().len()).sum();
        assert_eq!(sent, took);
        assert!(sent < 30);
        let taken: Vec<u32> = t_taken
            .iter()
            .flat_map(|t| t.lock().unwrap().clone())
            .collect();
        let mut prefix = copy[..sent].to_vec();
        let mut taken_sorted = taken.clone();
        prefix.sort();
        taken_sorted.sort();
        assert_eq!(prefix, taken_sorted, "what was taken is the prefix");
        bufs.free(&copy);
    }

    #[test]
    fn ip_framing_hashes_the_ip_header() {
        let (tx, _, _) = spread(4, usize::MAX, Framing::Ip);
        let a = udp4(1, 1, 0);
        let b = udp4(1, 2, 0);
        // Bare IP: the same bytes the Ethernet framing hashes after its header.
        assert_eq!(tx.spread.hash(&a[14..]), flow_hash4(&a[14..]));
        assert_ne!(tx.spread.hash(&a[14..]), tx.spread.hash(&b[14..]));
        let (eth, _, _) = spread(4, usize::MAX, Framing::Ethernet);
        assert_eq!(eth.spread.hash(&a), flow_hash4(&a[14..]));
        // A frame too short for a header still hashes (no panic).
        let _ = eth.spread.hash(&a[..5]);
        let _ = tx.spread.hash(&[]);
    }
}
