//! Rx: the process's rx mode, header templates for net_null, and the rx queue (copy and
//! in-place).

use rvpp_dataplane::buffer::{flags, Buffers, NO_BUFFER};
use rvpp_dataplane::device::RxQueue;
use rvpp_dataplane::graph::rx_next;
use rvpp_dpdk_sys as sys;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use super::eal::register_thread;
use super::mempool::{rvpp_mbuf_buf, MBUF_HEADROOM};
use super::port::Port;
use super::{BURST, INPUT_NODE};

/// How received packets cross from mbufs to rvpp buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxMode {
    /// Copy each mbuf's packet into a fresh rvpp buffer and free the mbuf.
    Copy,
    /// The rx queue's mbufs are data-less headers whose buffers are rvpp buffers (a mempool per
    /// rx queue, each mbuf attached to one rvpp buffer it holds): a received packet is handed to
    /// the graph in place, and its mbuf is re-pointed at a fresh rvpp buffer before it goes back
    /// to the mempool. Mbufs the port did not allocate (a ring peer's, chains) are copied.
    InPlace,
}

static RX_MODE: AtomicU8 = AtomicU8::new(0);

/// The process's rx mode: `RVPP_DPDK_RX=copy|in-place` (read once), else the default, unless
/// [`set_rx_mode`] chose one. Used by whoever opens ports ([`PortConfig::rx_in_place`](super::PortConfig::rx_in_place)).
pub fn rx_mode() -> RxMode {
    match RX_MODE.load(Ordering::Relaxed) {
        1 => RxMode::Copy,
        2 => RxMode::InPlace,
        _ => {
            let m = match std::env::var("RVPP_DPDK_RX").as_deref() {
                Ok("copy") => RxMode::Copy,
                Ok("in-place") => RxMode::InPlace,
                Ok(other) => {
                    log::warn!("dpdk: RVPP_DPDK_RX={other}: expected copy or in-place");
                    DEFAULT_RX_MODE
                }
                Err(_) => DEFAULT_RX_MODE,
            };
            set_rx_mode(m);
            m
        }
    }
}

/// Choose the rx mode for ports opened from now on.
pub fn set_rx_mode(m: RxMode) {
    RX_MODE.store(
        match m {
            RxMode::Copy => 1,
            RxMode::InPlace => 2,
        },
        Ordering::Relaxed,
    );
}

/// The rx mode of ports when nothing chose one (see the module docs for the figures).
pub const DEFAULT_RX_MODE: RxMode = RxMode::InPlace;

/// Headers stamped on received packets, for devices whose rx carries no real headers
/// (net_null): Ethernet to the port's MAC, IPv4/UDP to destinations cycling through a list.
#[derive(Clone, Debug)]
pub struct RxTemplate {
    hdr: [u8; 42],
    dsts: Vec<u32>,
    cksums: Vec<u16>,
    next: usize,
}

impl RxTemplate {
    /// Ethernet to `dst_mac`; IPv4 from 198.18.0.1 to each of `dsts` in turn; UDP 1234 -> 5678.
    pub fn ip4_udp(dst_mac: [u8; 6], dsts: Vec<u32>, frame_len: usize) -> Self {
        let mut h = [0u8; 42];
        h[0..6].copy_from_slice(&dst_mac);
        h[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
        h[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let ip_len = (frame_len.max(60) - 14) as u16;
        h[14] = 0x45;
        h[16..18].copy_from_slice(&ip_len.to_be_bytes());
        h[22] = 64;
        h[23] = 17;
        h[26..30].copy_from_slice(&[198, 18, 0, 1]);
        h[34..36].copy_from_slice(&1234u16.to_be_bytes());
        h[36..38].copy_from_slice(&5678u16.to_be_bytes());
        h[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
        let dsts = if dsts.is_empty() {
            vec![u32::from_be_bytes([198, 19, 0, 1])]
        } else {
            dsts
        };
        let cksums = dsts
            .iter()
            .map(|d| {
                let mut ip = [0u8; 20];
                ip.copy_from_slice(&h[14..34]);
                ip[16..20].copy_from_slice(&d.to_be_bytes());
                let mut s: u32 = ip
                    .chunks(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]) as u32)
                    .sum();
                while s > 0xffff {
                    s = (s & 0xffff) + (s >> 16);
                }
                !(s as u16)
            })
            .collect();
        Self {
            hdr: h,
            dsts,
            cksums,
            next: 0,
        }
    }

    #[inline(always)]
    fn stamp(&mut self, pkt: &mut [u8]) {
        if pkt.len() < 42 {
            return;
        }
        let i = self.next;
        self.next = if i + 1 == self.dsts.len() { 0 } else { i + 1 };
        pkt[..42].copy_from_slice(&self.hdr);
        pkt[24..26].copy_from_slice(&self.cksums[i].to_be_bytes());
        pkt[30..34].copy_from_slice(&self.dsts[i].to_be_bytes());
    }
}

/// One DPDK rx queue, polled by one worker.
pub struct DpdkRx {
    pub(super) port: Arc<Port>,
    pub(super) queue: u16,
    pub(super) sw_if_index: u32,
    pub(super) mbufs: Box<[*mut sys::rte_mbuf]>,
    pub(super) dst: Box<[*mut u8]>,
    pub(super) lens: Box<[u32]>,
    pub(super) template: Option<RxTemplate>,
    pub(super) in_place: Option<InPlace>,
}

/// An in-place rx queue's view of its mempool and of the rvpp pool behind it.
pub(super) struct InPlace {
    pub(super) mp: *mut sys::rte_mempool,
    pub(super) base: *mut u8,
    pub(super) len: usize,
    pub(super) stride: usize,
    pub(super) fresh: Box<[u32]>,
}

// SAFETY: the pointer arrays are scratch space filled and emptied within one `rx` call; the
// queue (and so its DPDK rx queue) is used by one worker at a time.
unsafe impl Send for DpdkRx {}

impl DpdkRx {
    /// Stamp `t` over the start of every received packet (net_null, whose packets carry no
    /// headers). The packet is still copied from its mbuf first.
    pub fn set_template(&mut self, t: Option<RxTemplate>) {
        self.template = t;
    }

    pub fn port(&self) -> &Arc<Port> {
        &self.port
    }

    /// Continue a packet longer than one rvpp buffer into a chain. The head already holds the
    /// first `cap` bytes. Returns false (head untouched beyond its first buffer) if the pool ran dry.
    #[cold]
    fn rx_chain(bufs: &mut Buffers, head: u32, m: *mut sys::rte_mbuf, cap: usize) -> bool {
        let total = {
            // SAFETY: m is a received mbuf we still own.
            unsafe { (*m).pkt_len as usize }
        };
        let mut skip = cap;
        let mut seg = m;
        let mut prev = head;
        let mut cur = NO_BUFFER;
        let mut cur_len = 0usize;
        while !seg.is_null() {
            // SAFETY: seg is a segment of an mbuf chain we own; buf_addr + data_off is its data.
            let data = unsafe {
                let s = &*seg;
                std::slice::from_raw_parts(
                    (s.buf_addr as *const u8).add(s.data_off as usize),
                    s.data_len as usize,
                )
            };
            // SAFETY: as above.
            seg = unsafe { (*seg).next };
            let mut d = data;
            if skip >= d.len() {
                skip -= d.len();
                continue;
            }
            d = &d[skip..];
            skip = 0;
            while !d.is_empty() {
                if cur == NO_BUFFER || cur_len == cap {
                    let Some(nb) = bufs.alloc_one() else {
                        return false;
                    };
                    let pm = bufs.meta(prev);
                    pm.flags |= flags::NEXT_PRESENT;
                    pm.next_buffer = nb;
                    prev = nb;
                    cur = nb;
                    cur_len = 0;
                }
                let mut b = bufs.get(cur);
                let take = d.len().min(cap - cur_len);
                b.tail_room_mut()[cur_len..cur_len + take].copy_from_slice(&d[..take]);
                cur_len += take;
                b.meta.current_length = cur_len as u16;
                d = &d[take..];
            }
        }
        let h = bufs.meta(head);
        h.current_length = cap as u16;
        h.total_length_not_including_first_buffer = (total - cap) as u32;
        true
    }
}

impl DpdkRx {
    /// [`RxMode::InPlace`]: hand the rvpp buffers behind the mbufs to the graph; re-point each
    /// mbuf at a fresh rvpp buffer before it goes back to the mempool.
    fn rx_in_place(&mut self, bufs: &mut Buffers, out: &mut [u32], nexts: &mut [u16]) -> usize {
        let ip = self.in_place.as_mut().expect("in-place queue");
        let limit = out.len().min(nexts.len()).min(BURST);
        // SAFETY: as in `rx`.
        let n = unsafe {
            sys::rvpp_eth_rx_burst(
                self.port.id,
                self.queue,
                self.mbufs.as_mut_ptr(),
                limit as u16,
            )
        } as usize;
        if n == 0 {
            return 0;
        }
        let got = bufs.alloc(&mut ip.fresh[..n]);
        if got < n {
            self.port
                .counters
                .rx_no_buffer
                .fetch_add((n - got) as u64, Ordering::Relaxed);
            // SAFETY: the mbufs past `got` are ours and not referenced again.
            unsafe {
                sys::rte_pktmbuf_free_bulk(self.mbufs[got..n].as_mut_ptr(), (n - got) as u32)
            };
        }
        let n = got;
        let (base, stride, sw) = (ip.base, ip.stride, self.sw_if_index);
        let cap = bufs.pool().data_size();
        for i in 0..n {
            let m = self.mbufs[i];
            let fresh = ip.fresh[i];
            nexts[i] = rx_next::ETHERNET;
            // SAFETY: m is a received mbuf we own until it is freed below.
            let (mp, segs, addr, off, dlen) = unsafe {
                let r = &*m;
                (
                    r.pool,
                    r.nb_segs,
                    r.buf_addr as usize,
                    r.data_off,
                    r.data_len,
                )
            };
            let rel = addr.wrapping_sub(base as usize);
            if mp == ip.mp && segs == 1 && rel < ip.len {
                // Ours: the packet is in rvpp buffer `bi` (rel is the mbuf buffer's offset, which
                // starts MBUF_HEADROOM before the buffer's data area).
                let bi = (rel / stride) as u32;
                // SAFETY: m is a direct mbuf of our mempool; `fresh` is a buffer we own and
                // hand to the mempool with it, in place of `bi`.
                unsafe {
                    let mm = &mut *m;
                    let a = rvpp_mbuf_buf(base, stride, fresh);
                    mm.buf_addr = a.cast();
                    mm.buf_iova = a as u64;
                }
                let meta = bufs.meta(bi);
                meta.reset_for_rx();
                meta.current_data = off as i16 - MBUF_HEADROOM as i16;
                meta.current_length = dlen;
                meta.rx_sw_if_index = sw;
                out[i] = bi;
            } else {
                // Someone else's mbuf, or a chain: copy into the fresh buffer.
                out[i] = fresh;
                let dst = [bufs.get(fresh).tail_room_mut().as_mut_ptr()];
                let mut len = [0u32];
                // SAFETY: dst points at `cap` writable bytes of `fresh`; m is a valid packet.
                unsafe { sys::rvpp_copy_out(&m, 1, dst.as_ptr(), len.as_mut_ptr(), cap as u32) };
                let len = len[0] as usize;
                if len > cap {
                    if !Self::rx_chain(bufs, fresh, m, cap) {
                        self.port
                            .counters
                            .rx_no_buffer
                            .fetch_add(1, Ordering::Relaxed);
                        bufs.free_tail(fresh);
                        nexts[i] = rx_next::DROP;
                    }
                } else {
                    bufs.meta(fresh).current_length = len as u16;
                }
                bufs.meta(fresh).rx_sw_if_index = sw;
            }
            if let Some(t) = &mut self.template {
                t.stamp(bufs.get(out[i]).data_mut());
            }
        }
        // SAFETY: every packet has been taken over or copied; the mbufs are not used again.
        unsafe { sys::rte_pktmbuf_free_bulk(self.mbufs.as_mut_ptr(), n as u32) };
        n
    }
}

impl RxQueue for DpdkRx {
    fn input_node(&self) -> &'static str {
        INPUT_NODE
    }
    fn sw_if_index(&self) -> u32 {
        self.sw_if_index
    }
    fn queue_id(&self) -> u16 {
        self.queue
    }

    fn rx(&mut self, bufs: &mut Buffers, out: &mut [u32], nexts: &mut [u16]) -> usize {
        register_thread();
        if self.in_place.is_some() {
            return self.rx_in_place(bufs, out, nexts);
        }
        let limit = out.len().min(nexts.len()).min(BURST);
        // SAFETY: the port is started, this queue exists and is polled by this thread only;
        // mbufs has room for `limit` pointers.
        let n = unsafe {
            sys::rvpp_eth_rx_burst(
                self.port.id,
                self.queue,
                self.mbufs.as_mut_ptr(),
                limit as u16,
            )
        } as usize;
        if n == 0 {
            return 0;
        }
        let got = bufs.alloc(&mut out[..n]);
        if got < n {
            self.port
                .counters
                .rx_no_buffer
                .fetch_add((n - got) as u64, Ordering::Relaxed);
            // SAFETY: the mbufs past `got` are ours and not referenced again.
            unsafe {
                sys::rte_pktmbuf_free_bulk(self.mbufs[got..n].as_mut_ptr(), (n - got) as u32)
            };
        }
        let n = got;
        let cap = bufs.pool().data_size();
        for (d, &bi) in self.dst.iter_mut().zip(&out[..n]) {
            *d = bufs.get(bi).tail_room_mut().as_mut_ptr();
        }
        // SAFETY: dst[i] points at buffer out[i]'s data area with `cap` writable bytes; the
        // first n mbufs are valid received packets.
        unsafe {
            sys::rvpp_copy_out(
                self.mbufs.as_ptr(),
                n as u16,
                self.dst.as_ptr(),
                self.lens.as_mut_ptr(),
                cap as u32,
            )
        };
        let sw = self.sw_if_index;
        for i in 0..n {
            let len = self.lens[i] as usize;
            let bi = out[i];
            nexts[i] = rx_next::ETHERNET;
            if len > cap {
                let ok = Self::rx_chain(bufs, bi, self.mbufs[i], cap);
                if !ok {
                    self.port
                        .counters
                        .rx_no_buffer
                        .fetch_add(1, Ordering::Relaxed);
                    bufs.free_tail(bi);
                    nexts[i] = rx_next::DROP;
                }
                bufs.meta(bi).rx_sw_if_index = sw;
                continue;
            }
            let mut b = bufs.get(bi);
            b.meta.current_length = len as u16;
            b.meta.rx_sw_if_index = sw;
            if let Some(t) = &mut self.template {
                t.stamp(b.data_mut());
            }
        }
        // SAFETY: every mbuf has been copied out and is not referenced again.
        unsafe { sys::rte_pktmbuf_free_bulk(self.mbufs.as_mut_ptr(), n as u32) };
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_checksum_is_valid() {
        let mut t = RxTemplate::ip4_udp([2, 0, 0, 0, 0, 9], vec![0xc6130001, 0x0a000001], 64);
        let mut p = [0u8; 64];
        for _ in 0..2 {
            t.stamp(&mut p);
            let s: u32 = p[14..34]
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]) as u32)
                .sum();
            let s = (s & 0xffff) + (s >> 16);
            assert_eq!((s & 0xffff) + (s >> 16), 0xffff);
        }
    }
}
