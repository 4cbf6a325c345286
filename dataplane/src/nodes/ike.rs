//! `ike4-punt`: IKE for one of our addresses (UDP 500, and UDP 4500 whose first four bytes are
//! the zero non-ESP marker) is copied whole into a lock-free queue that the control plane's
//! IKEv2 engine drains (VPP's `udp_register_dst_port` for 500/4500 into ikev2). The buffer is
//! consumed here; a full queue, a datagram larger than a queue slot or a short header is a
//! counted drop. ip4-local sends packets here only while the control plane has an IKEv2 profile
//! ([`set_enabled`]), so a node without IKEv2 still punts port 500 to the host as before.
//! Per packet: one copy into a preallocated slot, no allocation, no lock.

use crate::feature::FeatureTables;
use crate::graph::{GraphBuilder, Node, NodeInfo};
use crate::runtime::Ctx;
use crate::wire::{self, Ip4Hdr};
use crossbeam_queue::ArrayQueue;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub const NODE: &str = "ike4-punt";
pub const IKE_PORT: u16 = 500;
pub const NATT_PORT: u16 = 4500;
/// The largest IKE datagram (UDP payload) a slot holds: more than one 1500-byte frame carries,
/// and ip4-local does not reassemble fragments.
pub const MAX_DATAGRAM: usize = 1536;
/// Slots between the workers and the engine (each `MAX_DATAGRAM` bytes).
pub const QUEUE: usize = 128;

/// One IKE datagram as received.
#[derive(Clone)]
pub struct IkeDatagram {
    pub rx_sw_if_index: u32,
    pub fib_index: u32,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    len: u16,
    data: [u8; MAX_DATAGRAM],
}

impl IkeDatagram {
    /// The UDP payload (with the non-ESP marker when `dst_port` is 4500).
    pub fn payload(&self) -> &[u8] {
        &self.data[..self.len as usize]
    }
}

/// The queue to the engine (a feature table: the node and the control service share it).
pub struct IkePunt {
    pub queue: ArrayQueue<Box<IkeDatagram>>,
    /// Preallocated slots the node fills, recycled by the control side: no allocation per packet.
    pub free: ArrayQueue<Box<IkeDatagram>>,
}

impl Default for IkePunt {
    fn default() -> Self {
        let free = ArrayQueue::new(QUEUE);
        for _ in 0..QUEUE {
            let _ = free.push(Box::new(IkeDatagram {
                rx_sw_if_index: 0,
                fib_index: 0,
                src: Ipv4Addr::UNSPECIFIED,
                dst: Ipv4Addr::UNSPECIFIED,
                src_port: 0,
                dst_port: 0,
                len: 0,
                data: [0; MAX_DATAGRAM],
            }));
        }
        Self {
            queue: ArrayQueue::new(QUEUE),
            free,
        }
    }
}

impl IkePunt {
    /// Give a drained datagram's slot back to the node.
    pub fn recycle(&self, d: Box<IkeDatagram>) {
        let _ = self.free.push(d);
    }
}

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Start or stop handing IKE to `ike4-punt` (the control service sets it while it has a
/// profile). Process-wide, as the UDP port registrations it stands for.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether this UDP packet is IKE that `ike4-punt` takes.
#[inline(always)]
pub fn is_ike(d: &[u8], hl: usize) -> bool {
    ENABLED.load(Ordering::Relaxed) && is_ike_port(d, hl)
}

/// UDP to 500, or to 4500 with the non-ESP marker (`hl`: the IPv4 header's length).
#[inline(always)]
fn is_ike_port(d: &[u8], hl: usize) -> bool {
    let Some(u) = d.get(hl..hl + wire::l4::UDP_HDR) else {
        return false;
    };
    match u16::from_be_bytes([u[2], u[3]]) {
        IKE_PORT => true,
        NATT_PORT => d
            .get(hl + wire::l4::UDP_HDR..hl + wire::l4::UDP_HDR + 4)
            .is_some_and(|m| m == [0, 0, 0, 0]),
        _ => false,
    }
}

crate::next_edges! {
    mod next {
        DROP => "error-drop",
    }
}

crate::node_errors! {
    pub mod error {
        QUEUED => "ike: messages queued for the IKEv2 engine",
        QUEUE_FULL => "ike: engine queue full (dropped)",
        TOO_BIG => "ike: datagram larger than a queue slot (dropped)",
        SHORT => "ike: truncated IP or UDP header (dropped)",
    }
}

pub struct IkePuntNode {
    punt: Arc<IkePunt>,
}

impl Node for IkePuntNode {
    fn info(&self) -> NodeInfo {
        NodeInfo::internal(NODE, next::NAMES, error::NAMES)
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        let errs = cx.errs();
        for (i, &bi) in bufs.iter().enumerate() {
            let b = cx.bufs.get(bi);
            let code = self.queue_one(
                b.data(),
                b.meta.rx_sw_if_index,
                b.meta.fib_index,
            );
            b.meta.error = errs.error(code);
            nexts[i] = next::DROP;
        }
    }
}

impl IkePuntNode {
    #[inline(always)]
    fn queue_one(&self, d: &[u8], rx: u32, fib: u32) -> u16 {
        let Some(h) = Ip4Hdr::new(d) else {
            return error::SHORT;
        };
        let hl = h.header_len();
        let end = (h.total_len() as usize).min(d.len());
        let Some(u) = d.get(hl..hl + wire::l4::UDP_HDR) else {
            return error::SHORT;
        };
        let ulen = u16::from_be_bytes([u[4], u[5]]) as usize;
        let start = hl + wire::l4::UDP_HDR;
        let stop = end.min(hl + ulen);
        let Some(payload) = d.get(start..stop) else {
            return error::SHORT;
        };
        if payload.len() > MAX_DATAGRAM {
            return error::TOO_BIG;
        }
        let Some(mut slot) = self.punt.free.pop() else {
            return error::QUEUE_FULL;
        };
        slot.rx_sw_if_index = rx;
        slot.fib_index = fib;
        slot.src = Ipv4Addr::from(h.src());
        slot.dst = Ipv4Addr::from(h.dst());
        slot.src_port = u16::from_be_bytes([u[0], u[1]]);
        slot.dst_port = u16::from_be_bytes([u[2], u[3]]);
        slot.len = payload.len() as u16;
        slot.data[..payload.len()].copy_from_slice(payload);
        match self.punt.queue.push(slot) {
            Ok(()) => error::QUEUED,
            Err(slot) => {
                self.punt.recycle(slot);
                error::QUEUE_FULL
            }
        }
    }
}

pub fn register(b: GraphBuilder, tables: &FeatureTables) -> GraphBuilder {
    b.node(Box::new(IkePuntNode {
        punt: tables.get::<IkePunt>(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wireguard::engine::udp_packet;

    fn node() -> IkePuntNode {
        IkePuntNode {
            punt: Arc::new(IkePunt::default()),
        }
    }

    fn packet(dport: u16, payload: &[u8]) -> Vec<u8> {
        let (s, d) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2));
        udp_packet(s.into(), 500, d.into(), dport, payload)
    }

    #[test]
    fn ike_ports_and_the_non_esp_marker() {
        assert!(is_ike_port(&packet(500, b"x"), 20));
        assert!(is_ike_port(&packet(4500, &[0, 0, 0, 0, 1]), 20));
        assert!(!is_ike_port(&packet(4500, &[0, 0, 0, 1, 1]), 20), "ESP in UDP");
        assert!(!is_ike_port(&packet(4500, &[0, 0]), 20), "short");
        assert!(!is_ike_port(&packet(501, b"x"), 20));
        assert!(!is_ike_port(&packet(500, b"x")[..24], 20), "no whole UDP header");
    }

    #[test]
    fn datagrams_are_queued_whole_and_a_full_queue_is_counted() {
        let n = node();
        let msg: Vec<u8> = (0..300u16).map(|i| i as u8).collect();
        assert_eq!(n.queue_one(&packet(500, &msg), 3, 7), error::QUEUED);
        let d = n.punt.queue.pop().unwrap();
        assert_eq!(d.payload(), &msg[..]);
        assert_eq!((d.rx_sw_if_index, d.fib_index), (3, 7));
        assert_eq!((d.src_port, d.dst_port), (500, 500));
        assert_eq!(d.dst, Ipv4Addr::new(198, 18, 0, 2));
        n.punt.recycle(d);
        for _ in 0..QUEUE {
            assert_eq!(n.queue_one(&packet(500, b"m"), 1, 0), error::QUEUED);
        }
        assert_eq!(n.queue_one(&packet(500, b"m"), 1, 0), error::QUEUE_FULL);
        let big = vec![0u8; MAX_DATAGRAM + 1];
        assert_eq!(n.queue_one(&packet(500, &big), 1, 0), error::TOO_BIG);
        assert_eq!(n.queue_one(&packet(500, b"m")[..25], 1, 0), error::SHORT);
        // Draining gives the slots back.
        while let Some(d) = n.punt.queue.pop() {
            n.punt.recycle(d);
        }
        assert_eq!(n.queue_one(&packet(500, b"m"), 1, 0), error::QUEUED);
    }
}
