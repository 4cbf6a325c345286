//! What a device driver gives the engine: rx queues polled by a worker, tx queues it sends on.
//! Implementations live in the drivers crate; the engine only sees these traits.

use crate::buffer::Buffers;
use crate::tables::FwdTable;
use std::os::fd::RawFd;

/// How a worker waits for packets on a queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxMode {
    /// Poll every round.
    Polling,
    /// Sleep until the queue's fd is readable.
    Interrupt,
    /// Poll while busy, sleep on the fd after a run of empty polls.
    Adaptive,
}

impl RxMode {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "polling" => Some(Self::Polling),
            "interrupt" => Some(Self::Interrupt),
            "adaptive" => Some(Self::Adaptive),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::Polling => "polling",
            Self::Interrupt => "interrupt",
            Self::Adaptive => "adaptive",
        }
    }
}

/// One receive queue, owned by the worker it is placed on.
pub trait RxQueue: Send {
    /// The input node this queue's packets are counted under (e.g. "memif-input").
    fn input_node(&self) -> &'static str;
    fn sw_if_index(&self) -> u32;
    fn queue_id(&self) -> u16 {
        0
    }
    /// Receive up to `out.len()` packets into freshly allocated buffers. For each packet set its
    /// length, `rx_sw_if_index`, and the next edge (`graph::rx_next`). Returns the count.
    fn rx(&mut self, bufs: &mut Buffers, out: &mut [u32], nexts: &mut [u16]) -> usize;
    /// What the runtime calls: [`rx`](Self::rx) with the worker's forwarding table at hand,
    /// for a driver whose receive depends on it (af_packet's UDP GSO split knows the VXLAN
    /// ports from it).
    fn rx_with(
        &mut self,
        bufs: &mut Buffers,
        out: &mut [u32],
        nexts: &mut [u16],
        _fwd: &FwdTable,
    ) -> usize {
        self.rx(bufs, out, nexts)
    }
    /// A descriptor that becomes readable when packets arrive (interrupt and adaptive modes).
    fn rx_fd(&self) -> Option<RawFd> {
        None
    }
    /// Arm or disarm the device's interrupt (e.g. memif's ring flag).
    fn set_interrupt(&mut self, _on: bool) {}
    /// Called after a wakeup on `rx_fd`, to consume the event.
    fn ack_interrupt(&mut self) {}
}

/// One transmit queue, owned by one worker.
pub trait TxQueue: Send {
    /// The tx node its time and drops are counted under (e.g. "memif-tx").
    fn tx_node(&self) -> &'static str;
    /// Send packets. The queue takes ownership of the first `n` returned and frees them when
    /// the device is done with them; the caller drops the rest.
    fn tx(&mut self, bufs: &mut Buffers, pkts: &[u32]) -> usize;
    /// As `tx`, but the queue may reorder `pkts` so that the `n` it took come first
    /// (interface-output sends this way; a queue spreading flows over several device queues
    /// needs it, since each of those may refuse part of its share).
    fn tx_reorder(&mut self, bufs: &mut Buffers, pkts: &mut [u32]) -> usize {
        self.tx(bufs, pkts)
    }
    /// End of a dispatch round: kick the peer, reclaim completions.
    fn flush(&mut self, _bufs: &mut Buffers) {}
}
