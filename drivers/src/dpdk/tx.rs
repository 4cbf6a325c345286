//! Tx: the tx queue (copy and in-place buffer swap).

use rvpp_dataplane::buffer::{flags, Buffers};
use rvpp_dataplane::device::TxQueue;
use rvpp_dpdk_sys as sys;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::eal::register_thread;
use super::mempool::{rvpp_mbuf_buf, MBUF_HEADROOM};
use super::port::Port;
use super::{BURST, TX_NODE};

/// One DPDK tx queue as used by one worker.
pub struct DpdkTx {
    pub(super) port: Arc<Port>,
    pub(super) queue: u16,
    pub(super) lock: Option<Arc<Mutex<()>>>,
    pub(super) mbufs: Box<[*mut sys::rte_mbuf]>,
    pub(super) src: Box<[*const u8]>,
    pub(super) lens: Box<[u32]>,
    pub(super) scratch: Vec<u8>,
    pub(super) in_place: Option<TxInPlace>,
}

/// An in-place tx queue: mbufs of its mempool each hold an rvpp buffer; sending a packet swaps
/// that buffer for the packet's (no copy) and rvpp frees the swapped-out buffer instead.
pub(super) struct TxInPlace {
    pub(super) mp: *mut sys::rte_mempool,
    pub(super) base: *mut u8,
    pub(super) stride: usize,
    pub(super) swapped: Box<[u32]>,
}

// SAFETY: the pointer arrays are scratch filled and emptied within one `tx` call; a DPDK tx
// queue shared by several workers is only used under `lock`.
unsafe impl Send for DpdkTx {}

impl DpdkTx {
    pub fn port(&self) -> &Arc<Port> {
        &self.port
    }

    /// Send `pkts` (all single-buffer with at least DPDK's headroom left, from the pool behind
    /// the tx mempool) by swapping buffers with mbufs of the tx mempool. None: not eligible.
    fn tx_in_place(&mut self, bufs: &mut Buffers, pkts: &[u32]) -> Option<usize> {
        let ip = self.in_place.as_mut()?;
        if bufs.pool().region_base() != ip.base {
            return None;
        }
        let min_cd = -(MBUF_HEADROOM as i16);
        for &bi in pkts {
            let m = bufs.meta(bi);
            if m.flags & flags::NEXT_PRESENT != 0 || m.current_data < min_cd {
                return None;
            }
        }
        let n = pkts.len();
        // SAFETY: the pool is valid; mbufs has room for n <= BURST pointers.
        if unsafe { sys::rvpp_pktmbuf_alloc_bulk(ip.mp, self.mbufs.as_mut_ptr(), n as u32) } != 0 {
            return None;
        }
        let (base, stride) = (ip.base, ip.stride);
        for (i, &bi) in pkts.iter().enumerate() {
            let meta = bufs.meta(bi);
            let (cd, len) = (meta.current_data, meta.current_length);
            // SAFETY: a fresh direct mbuf of our tx mempool, attached to an rvpp buffer by
            // RxPool::new or by an earlier swap; it now takes `bi` (which we own) instead.
            unsafe {
                let m = &mut *self.mbufs[i];
                let old = m.buf_addr as usize - base as usize;
                ip.swapped[i] = (old / stride) as u32;
                let a = rvpp_mbuf_buf(base, stride, bi);
                m.buf_addr = a.cast();
                m.buf_iova = a as u64;
                m.data_off = (MBUF_HEADROOM as i16 + cd) as u16;
                m.data_len = len;
                m.pkt_len = len as u32;
            }
        }
        let sent = {
            let _g = self
                .lock
                .as_ref()
                .map(|l| l.lock().unwrap_or_else(|e| e.into_inner()));
            // SAFETY: as in tx_burst.
            unsafe {
                sys::rvpp_eth_tx_burst(self.port.id, self.queue, self.mbufs.as_mut_ptr(), n as u16)
            }
        } as usize;
        if sent < n {
            // Unsent: swap back, so the caller still owns (and drops) pkts[sent..].
            for i in sent..n {
                let a = rvpp_mbuf_buf(base, stride, ip.swapped[i]);
                // SAFETY: unsent mbufs are still ours.
                unsafe {
                    (*self.mbufs[i]).buf_addr = a.cast();
                    (*self.mbufs[i]).buf_iova = a as u64;
                }
            }
            // SAFETY: as above.
            unsafe {
                sys::rte_pktmbuf_free_bulk(self.mbufs[sent..n].as_mut_ptr(), (n - sent) as u32)
            };
        }
        // The sent packets' buffers now belong to the mempool; the swapped-out ones to us.
        bufs.free(&ip.swapped[..sent]);
        Some(sent)
    }

    fn tx_burst(&mut self, bufs: &mut Buffers, pkts: &[u32]) -> usize {
        if let Some(sent) = self.tx_in_place(bufs, pkts) {
            return sent;
        }
        let n = pkts.len();
        // Chained packets are flattened into scratch first (offsets, then pointers, since
        // scratch may grow).
        self.scratch.clear();
        let mut chained = false;
        for (i, &bi) in pkts.iter().enumerate() {
            let b = bufs.get(bi);
            if b.meta.flags & flags::NEXT_PRESENT != 0 {
                chained = true;
                let total = b.total_len();
                let off = self.scratch.len();
                self.scratch.resize(off + total, 0);
                let got = bufs.copy_chain(bi, &mut self.scratch[off..off + total]);
                self.lens[i] = got as u32;
                self.src[i] = off as *const u8; // an offset until fixed up below
            } else {
                self.lens[i] = b.meta.current_length as u32;
                self.src[i] = b.data().as_ptr();
            }
        }
        if chained {
            let base = self.scratch.as_ptr();
            for (i, &bi) in pkts.iter().enumerate() {
                if bufs.meta(bi).flags & flags::NEXT_PRESENT != 0 {
                    // SAFETY: the offset is inside scratch, which no longer changes.
                    self.src[i] = unsafe { base.add(self.src[i] as usize) };
                }
            }
        }
        // SAFETY: src[i]/lens[i] describe readable packet bytes (rvpp buffers we own, or
        // scratch); mbufs has room for n pointers; the pool lives for the process.
        let built = unsafe {
            sys::rvpp_copy_in_alloc(
                self.port.mempool.0,
                self.mbufs.as_mut_ptr(),
                n as u16,
                self.src.as_ptr(),
                self.lens.as_ptr(),
            )
        } as usize;
        if built == 0 {
            self.port
                .counters
                .tx_no_mbuf
                .fetch_add(n as u64, Ordering::Relaxed);
            return 0;
        }
        let sent = {
            let _g = self
                .lock
                .as_ref()
                .map(|l| l.lock().unwrap_or_else(|e| e.into_inner()));
            // SAFETY: the port is started; this queue is used by this thread alone or under
            // the lock; mbufs holds n built packets.
            unsafe {
                sys::rvpp_eth_tx_burst(self.port.id, self.queue, self.mbufs.as_mut_ptr(), n as u16)
            }
        } as usize;
        if sent < n {
            // SAFETY: the unsent mbufs are still ours.
            unsafe {
                sys::rte_pktmbuf_free_bulk(self.mbufs[sent..n].as_mut_ptr(), (n - sent) as u32)
            };
        }
        bufs.free(&pkts[..sent]);
        sent
    }
}

impl TxQueue for DpdkTx {
    fn tx_node(&self) -> &'static str {
        TX_NODE
    }

    fn tx(&mut self, bufs: &mut Buffers, pkts: &[u32]) -> usize {
        register_thread();
        let mut done = 0;
        for chunk in pkts.chunks(BURST) {
            let sent = self.tx_burst(bufs, chunk);
            done += sent;
            if sent < chunk.len() {
                // The caller drops pkts[done..]; they must be contiguous from here on.
                break;
            }
        }
        done
    }
}
