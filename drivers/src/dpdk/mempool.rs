//! Mempools: the EAL-owned pool pointer, and the per-queue pools of data-less mbufs attached to
//! rvpp buffers ([`RxMode::InPlace`](super::RxMode::InPlace)).

use rvpp_dataplane::buffer::{BufferPool, HEADROOM, META_SIZE};
use rvpp_dpdk_sys as sys;
use std::ffi::CString;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use super::eal::last_rte_err;

/// A raw pointer owned by the EAL for the life of the process.
pub(super) struct MempoolPtr(pub(super) *mut sys::rte_mempool);
// SAFETY: DPDK mempools are multi-thread safe (ring-backed, per-lcore caches).
unsafe impl Send for MempoolPtr {}
// SAFETY: as above.
unsafe impl Sync for MempoolPtr {}

/// An rx queue's mempool of data-less mbufs, each holding one rvpp buffer ([`RxMode::InPlace`](super::RxMode::InPlace)).
pub(super) struct RxPool {
    pub(super) mp: MempoolPtr,
    pub(super) pool: Arc<BufferPool>,
}

static RX_POOLS: AtomicU32 = AtomicU32::new(0);

/// Where an mbuf attached to rvpp buffer `bi` starts: DPDK's headroom before the data area,
/// so that the default `data_off` lands on rvpp's `current_data = 0`.
pub(super) const MBUF_HEADROOM: usize = sys::RTE_PKTMBUF_HEADROOM as usize;
const _: () = assert!(MBUF_HEADROOM <= HEADROOM);

#[inline(always)]
pub(super) fn rvpp_mbuf_buf(base: *mut u8, stride: usize, bi: u32) -> *mut u8 {
    // SAFETY (for callers): bi is a buffer of the pool at `base`; the result stays inside it.
    base.wrapping_add(bi as usize * stride + META_SIZE + HEADROOM - MBUF_HEADROOM)
}

impl RxPool {
    /// A mempool of `n` mbufs, each attached to a buffer taken from `pool`.
    pub(super) fn new(pool: &Arc<BufferPool>, n: u32, socket: u32) -> Result<RxPool, String> {
        let name = CString::new(format!(
            "rvpp_rx{}",
            RX_POOLS.fetch_add(1, Ordering::Relaxed)
        ))
        .map_err(|e| e.to_string())?;
        let buf_len = MBUF_HEADROOM + pool.data_size();
        let buf_len = u16::try_from(buf_len).map_err(|_| "dpdk: rvpp buffers too large")?;
        // SAFETY: EAL is up; name NUL-terminated. Data room 0: the mbufs get rvpp buffers below.
        let mp =
            unsafe { sys::rte_pktmbuf_pool_create(name.as_ptr(), n, 256, 0, 0, socket as i32) };
        if mp.is_null() {
            return Err(format!(
                "dpdk: cannot create an rx pool of {n} mbufs: {}",
                last_rte_err()
            ));
        }
        let mut bufs = pool.local();
        let mut idx = vec![0u32; n as usize];
        let mut mbufs: Vec<*mut sys::rte_mbuf> = vec![std::ptr::null_mut(); n as usize];
        // SAFETY: mp is a fresh pool of exactly n mbufs; mbufs has room for n.
        let rc = unsafe { sys::rvpp_pktmbuf_alloc_bulk(mp, mbufs.as_mut_ptr(), n) };
        let got = if rc == 0 { bufs.alloc(&mut idx) } else { 0 };
        if rc != 0 || got < n as usize {
            // SAFETY: nothing but this function references the pool or its mbufs yet, and
            // neither is used after this.
            unsafe { sys::rte_mempool_free(mp) };
            // The buffers we did get go back (they were never attached to an mbuf).
            bufs.free(&idx[..got]);
            return Err(format!(
                "dpdk: in-place rx needs {n} rvpp buffers per rx queue; the pool has {} free",
                pool.free_count() + pool.cached_count()
            ));
        }
        for (&m, &bi) in mbufs.iter().zip(&idx) {
            // SAFETY: m is a direct mbuf we hold; the buffer is one we own from now on (it
            // belongs to the mempool until a packet in it is received).
            unsafe {
                sys::rvpp_mbuf_set_buf(
                    m,
                    rvpp_mbuf_buf(pool.region_base(), pool.stride(), bi).cast(),
                    buf_len,
                )
            };
        }
        // SAFETY: as above; the pool advertises what the mbufs now hold; the mbufs go back.
        unsafe {
            sys::rvpp_mempool_set_data_room(mp, buf_len);
            sys::rte_pktmbuf_free_bulk(mbufs.as_mut_ptr(), n);
        }
        bufs.flush();
        Ok(RxPool {
            mp: MempoolPtr(mp),
            pool: pool.clone(),
        })
    }

    /// After the port stopped: give the buffers of the mbufs in the pool back to rvpp, and free
    /// the pool if every mbuf came back (mbufs still out keep their buffers: a leak, not a fault).
    pub(super) fn release(&self) {
        // SAFETY: the pool is valid; the port is stopped, so the PMD allocates nothing more.
        let avail = unsafe { sys::rvpp_mempool_avail(self.mp.0) };
        if avail == 0 {
            return;
        }
        let mut mbufs: Vec<*mut sys::rte_mbuf> = vec![std::ptr::null_mut(); avail as usize];
        // SAFETY: the pool is valid and mbufs has room for `avail` pointers. Bulk allocation
        // is all or nothing, so a failure (some of the avail mbufs sit in another lcore's
        // cache) leaves nothing allocated.
        if unsafe { sys::rvpp_pktmbuf_alloc_bulk(self.mp.0, mbufs.as_mut_ptr(), avail) } != 0 {
            return;
        }
        let base = self.pool.region_base() as usize;
        let idx: Vec<u32> = mbufs
            .iter()
            .filter_map(|&m| {
                // SAFETY: m is one of the `avail` mbufs just allocated from our pool, so it is
                // a valid mbuf we hold. Every mbuf of this pool is attached to an rvpp buffer
                // (by `new`, by in-place rx or by a tx swap), so buf_addr lies in the region.
                let addr = unsafe { (*m).buf_addr } as usize;
                self.pool.buffer_at_offset(addr.wrapping_sub(base))
            })
            .collect();
        let mut bufs = self.pool.local();
        bufs.free(&idx);
        bufs.flush();
        // SAFETY: the `avail` mbufs in `mbufs` are ours (allocated above) and go back to the
        // pool; the pool is freed only if that is all of them (`total`), i.e. no mbuf of it is
        // still held by a PMD or a ring peer. Otherwise it stays allocated (a leak), and the
        // mbufs put back now point at buffers rvpp has just taken back: sound only because the
        // port is stopped and being dropped, so nothing allocates from this pool again.
        unsafe {
            let total = (*self.mp.0).size;
            sys::rte_pktmbuf_free_bulk(mbufs.as_mut_ptr(), avail);
            if avail == total {
                sys::rte_mempool_free(self.mp.0);
            }
        }
    }
}
