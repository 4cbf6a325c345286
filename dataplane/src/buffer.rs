//! The buffer pool: one contiguous region of fixed-size buffers addressed by `u32` index.
//!
//! Layout of buffer `i` at `base + i * stride`: 128 bytes of metadata, `HEADROOM` bytes for
//! prepending headers, then `data_size` bytes of packet data. The region lives on a memfd so
//! that drivers can share it with a peer (memif regions, DPDK mbufs in place). Pages, in order
//! of preference: reserved 2 MiB hugetlb pages; shmem transparent huge pages when the kernel's
//! `shmem_enabled` allows them; 4 KiB pages. The choice and its reason are logged and shown by
//! `show buffers`.
//!
//! Ownership rule (the invariant every `unsafe` here relies on): at any instant a buffer index
//! is owned by exactly one holder: the pool's free list, one worker, or one device ring. Only
//! the owner touches the buffer. Indices move between owners by value, never by sharing.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Space reserved before the packet for headers pushed on the way out (VXLAN, IPIP, ESP...).
pub const HEADROOM: usize = 256;
/// Bytes of metadata at the start of every buffer.
pub const META_SIZE: usize = 128;
/// Default bytes of packet data per buffer (VPP's default data-size).
pub const DEFAULT_DATA_SIZE: usize = 2048;
/// Buffers a worker keeps for itself before it gives some back to the pool.
pub const CACHE_SIZE: usize = 1024;
/// How many buffers move between a worker cache and the pool at once.
const CACHE_BATCH: usize = 256;
/// Marks "no next buffer" in a chain.
pub const NO_BUFFER: u32 = u32::MAX;

/// Buffer flags.
pub mod flags {
    /// `next_buffer` is valid: the packet continues in another buffer.
    pub const NEXT_PRESENT: u32 = 1 << 0;
    /// The packet is being traced; `trace_index` is valid.
    pub const TRACED: u32 = 1 << 1;
    /// L4 checksum still to be computed (offload from a tap's vnet header).
    pub const OFFLOAD_L4_CKSUM: u32 = 1 << 2;
    /// This packet is a GSO super-frame; `gso_size` is valid.
    pub const GSO: u32 = 1 << 3;
    /// Set by ip4-local/ip6-local for packets to one of our addresses.
    pub const LOCALLY_ORIGINATED: u32 = 1 << 4;
    /// The L2 header has been consumed; `l2_hdr_offset` tells where it was.
    pub const L2_HDR_VALID: u32 = 1 << 5;
    /// cnat's input side un-NATed this packet as return traffic (its output side skips it).
    pub const CNAT_RETURN: u32 = 1 << 6;
    /// The icmp-error node takes the error's source and FIB from the packet
    /// (`nodes::family::set_icmp_error_from`), not from the receiving interface.
    pub const ICMP_ERROR_FROM: u32 = 1 << 7;
    /// A tunnel encapsulated this packet after its offload (`GSO`, `OFFLOAD_L4_CKSUM`) was
    /// asked for: the offload is the inner packet's, which starts `tunnel_inner` bytes after
    /// the outer IP header. No device here offloads through a tunnel, so gso-segment does it.
    pub const TUNNEL_OFFLOAD: u32 = 1 << 8;
    /// cnat's input side translated this packet by a forward session (a DNATed flow): its
    /// output side looks for an SNAT session only when the SNAT policy wants one for it.
    pub const CNAT_DNAT: u32 = 1 << 9;
    /// cnat's input side found this packet's session, one it had already refreshed in this
    /// second: `cnat_slot` and `cnat_npol` are valid (npol reads its cached verdicts there).
    pub const CNAT_SESSION: u32 = 1 << 10;
    /// Every mark cnat's input side leaves on a packet: a decap clears them, as they were the
    /// outer packet's.
    pub const CNAT_MARKS: u32 = CNAT_RETURN | CNAT_DNAT | CNAT_SESSION | CNAT_NO_SNAT;
    /// With `CNAT_DNAT`: the flow's session says the SNAT policy, as it is now, does not
    /// SNAT it (decided by cnat-output on the flow's first pass): cnat-output skips it.
    pub const CNAT_NO_SNAT: u32 = 1 << 12;
    /// gso-segment cut this packet from a tunnel's UDP super-frame and sends it straight to
    /// the device: its checksums are ours, so a driver that can hand the kernel a UDP GSO
    /// super-frame (af_packet) may merge it with its siblings and let the outer UDP checksum
    /// be computed again. Never set on a forwarded packet, whose checksum must stay as it came.
    pub const UDP_TUNNEL_SEGMENT: u32 = 1 << 11;
}

/// Per-buffer metadata, the first 128 bytes of each buffer.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug)]
pub struct BufferMeta {
    /// Start of the packet relative to the data area; negative values reach into the headroom.
    pub current_data: i16,
    /// Bytes of packet in this buffer from `current_data`.
    pub current_length: u16,
    pub flags: u32,
    /// Interface the packet came in on.
    pub rx_sw_if_index: u32,
    /// Interface the packet goes out of; set by rewrite.
    pub tx_sw_if_index: u32,
    /// Next buffer of a chain, when `NEXT_PRESENT`.
    pub next_buffer: u32,
    /// Bytes in the rest of the chain.
    pub total_length_not_including_first_buffer: u32,
    /// Drop reason, set before a packet goes to error-drop (a global error index).
    pub error: u16,
    /// Offset of the L2 header relative to the data area.
    pub l2_hdr_offset: i16,
    /// Offset of the L3 header relative to the data area.
    pub l3_hdr_offset: i16,
    /// Offset of the L4 header relative to the data area.
    pub l4_hdr_offset: i16,
    /// FIB index used for the lookup.
    pub fib_index: u32,
    /// Adjacency chosen by lookup, used by rewrite.
    pub adj_index: u32,
    /// Flow hash computed by lookup (ECMP).
    pub flow_hash: u32,
    /// Bitmask of the features still to run on the current feature arc.
    pub feature_mask: u32,
    /// GSO segment size when `GSO` is set.
    pub gso_size: u16,
    /// Owned by the pool (1) or by someone else (0): catches double frees.
    pub(crate) pool_free: u8,
    /// Lookups this packet has had through table-lookup adjacencies (loop guard).
    pub relookups: u8,
    /// With `CNAT_SESSION`: the session's slot in cnat's table. In the first cache line, which
    /// cnat-input has in L1 already: in the second, every new flow's first store missed.
    pub cnat_slot: u32,
    /// With `CNAT_SESSION`: the session's npol word as cnat's lookup read it.
    pub cnat_npol: u64,
    /// Scratch space that one node passes to the next.
    pub opaque: [u32; 12],
    /// Index of this packet's trace record when `TRACED`.
    pub trace_index: u32,
    /// With `TUNNEL_OFFLOAD`: bytes from the outer IP header to the inner one.
    pub tunnel_inner: u16,
    pub _pad0: u16,
    pub _pad1: [u32; 2],
}

const _: () = assert!(std::mem::size_of::<BufferMeta>() == META_SIZE);
// The fields a driver resets per packet, and the session cnat-input leaves for npol (written on
// every cnat packet), share the first cache line.
const _: () = assert!(std::mem::offset_of!(BufferMeta, relookups) < 64);
const _: () =
    assert!(std::mem::offset_of!(BufferMeta, cnat_npol) + std::mem::size_of::<u64>() <= 64);

impl BufferMeta {
    /// Bytes in the whole chain this buffer heads (a tun super-frame is several buffers).
    #[inline(always)]
    pub fn chain_len(&self) -> u64 {
        let rest = if self.flags & flags::NEXT_PRESENT != 0 {
            self.total_length_not_including_first_buffer
        } else {
            0
        };
        self.current_length as u64 + rest as u64
    }

    const fn zeroed() -> Self {
        Self {
            current_data: 0,
            current_length: 0,
            flags: 0,
            rx_sw_if_index: u32::MAX,
            tx_sw_if_index: u32::MAX,
            next_buffer: NO_BUFFER,
            total_length_not_including_first_buffer: 0,
            error: 0,
            l2_hdr_offset: 0,
            l3_hdr_offset: 0,
            l4_hdr_offset: 0,
            fib_index: 0,
            adj_index: 0,
            flow_hash: 0,
            feature_mask: 0,
            gso_size: 0,
            pool_free: 1,
            relookups: 0,
            cnat_slot: 0,
            cnat_npol: 0,
            opaque: [0; 12],
            trace_index: 0,
            tunnel_inner: 0,
            _pad0: 0,
            _pad1: [0; 2],
        }
    }

    /// Reset the fields a receiving driver does not set, keeping pool bookkeeping. Only the
    /// first cache line is written: `opaque` and `trace_index` are written before they are read
    /// (and only valid with their flags), so a fresh packet costs one metadata line, not two.
    #[inline(always)]
    pub fn reset_for_rx(&mut self) {
        self.current_data = 0;
        self.current_length = 0;
        self.flags = 0;
        self.rx_sw_if_index = u32::MAX;
        self.tx_sw_if_index = u32::MAX;
        self.next_buffer = NO_BUFFER;
        self.total_length_not_including_first_buffer = 0;
        self.error = 0;
        self.l2_hdr_offset = 0;
        self.l3_hdr_offset = 0;
        self.l4_hdr_offset = 0;
        self.fib_index = 0;
        self.adj_index = 0;
        self.flow_hash = 0;
        self.feature_mask = 0;
        self.gso_size = 0;
        self.relookups = 0;
    }
}

/// How the pool's memory was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backing {
    /// memfd on reserved 2 MiB hugetlb pages.
    Hugetlb,
    /// memfd advised for transparent huge pages (shmem THP), because no hugetlb pages were
    /// reserved; the kernel uses 2 MiB pages where it can find them.
    ShmemThp,
    /// memfd on 4 KiB pages: neither hugetlb pages nor shmem THP were available.
    NormalPages,
}

impl Backing {
    /// The page size the region is mapped with (THP: the size the kernel was asked for).
    pub fn page_size(self) -> usize {
        match self {
            Backing::Hugetlb | Backing::ShmemThp => HUGE_2M,
            Backing::NormalPages => 4096,
        }
    }

    /// Short name for `show buffers` and the stats segment.
    pub fn name(self) -> &'static str {
        match self {
            Backing::Hugetlb => "hugetlb",
            Backing::ShmemThp => "shmem-thp",
            Backing::NormalPages => "normal",
        }
    }
}

/// A mutable view of one buffer owned by the caller.
pub struct Buf<'a> {
    pub meta: &'a mut BufferMeta,
    /// Headroom followed by the data area.
    mem: &'a mut [u8],
}

impl<'a> Buf<'a> {
    #[inline(always)]
    fn start(&self) -> usize {
        (HEADROOM as isize + self.meta.current_data as isize) as usize
    }

    /// Offset of the packet start in `raw_mut()` (headroom included).
    #[inline(always)]
    pub fn start_offset(&self) -> usize {
        self.start()
    }

    /// The packet bytes in this buffer.
    #[inline(always)]
    pub fn data(&self) -> &[u8] {
        let s = self.start();
        &self.mem[s..s + self.meta.current_length as usize]
    }

    #[inline(always)]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let s = self.start();
        &mut self.mem[s..s + self.meta.current_length as usize]
    }

    /// The packet bytes from `current_data` to the end of the buffer (for writing a packet).
    #[inline(always)]
    pub fn tail_room_mut(&mut self) -> &mut [u8] {
        let s = self.start();
        &mut self.mem[s..]
    }

    /// The whole headroom + data area, for drivers and nodes that build packets.
    #[inline(always)]
    pub fn raw_mut(&mut self) -> &mut [u8] {
        self.mem
    }

    /// Move the packet start forward by `n` bytes (consume a header).
    /// Returns false, changing nothing, when the buffer is shorter than `n`.
    #[inline(always)]
    pub fn advance(&mut self, n: usize) -> bool {
        if n > self.meta.current_length as usize {
            return false;
        }
        self.meta.current_data += n as i16;
        self.meta.current_length -= n as u16;
        true
    }

    /// Move the packet start back by `n` bytes (expose or push a header).
    /// Returns false, changing nothing, when the headroom is too small.
    #[inline(always)]
    pub fn retreat(&mut self, n: usize) -> bool {
        if self.start() < n {
            return false;
        }
        self.meta.current_data -= n as i16;
        self.meta.current_length += n as u16;
        true
    }

    /// Set the packet length in this buffer; false if it does not fit.
    #[inline(always)]
    pub fn set_len(&mut self, len: usize) -> bool {
        if self.start() + len > self.mem.len() {
            return false;
        }
        self.meta.current_length = len as u16;
        true
    }

    /// The first `N` bytes of the packet as a fixed-size array (a typed header view's input),
    /// or None when the buffer holds fewer than `N` bytes of it. One length check, after which
    /// every constant index into the array compiles to a plain load.
    #[inline(always)]
    pub fn head<const N: usize>(&self) -> Option<&[u8; N]> {
        let s = self.head_start::<N>()?;
        // SAFETY: head_start proved s + N <= mem.len(), so the N bytes at s are inside `mem`;
        // the shared borrow of self keeps them from being written meanwhile.
        Some(unsafe { &*self.mem.as_ptr().add(s).cast::<[u8; N]>() })
    }

    /// As [`Buf::head`], writable.
    #[inline(always)]
    pub fn head_mut<const N: usize>(&mut self) -> Option<&mut [u8; N]> {
        let s = self.head_start::<N>()?;
        // SAFETY: as in `head`; the exclusive borrow of self makes this the only view.
        Some(unsafe { &mut *self.mem.as_mut_ptr().add(s).cast::<[u8; N]>() })
    }

    /// Where `head` starts, if `N` packet bytes are there: then `s + N <= mem.len()`. Per
    /// packet one compare of the length and one of the end.
    #[inline(always)]
    fn head_start<const N: usize>(&self) -> Option<usize> {
        let s = Self::offset_from_headroom::<0>(self.meta.current_data);
        ((self.meta.current_length as usize) >= N && s + N as u64 <= self.mem.len() as u64)
            .then_some(s as usize)
    }

    /// `HEADROOM + current_data - BACK` as an offset in `mem`, computed in 32 bits so that a
    /// negative result becomes a value near 2^32: far beyond any buffer, and small enough that
    /// adding a header length in 64 bits cannot wrap. So one compare of `offset + N` against
    /// `mem.len()` proves the whole range is inside the buffer.
    #[inline(always)]
    fn offset_from_headroom<const BACK: usize>(current_data: i16) -> u64 {
        const { assert!(BACK <= HEADROOM) };
        (HEADROOM as i32 + current_data as i32 - BACK as i32) as u32 as u64
    }

    /// `N` bytes of the buffer starting `BACK` bytes before the packet start (headroom a
    /// rewrite fills, then the headers after it), or None when they do not lie in the buffer.
    /// Unlike [`Buf::head`] this does not look at `current_length`.
    #[inline(always)]
    pub fn window_mut<const BACK: usize, const N: usize>(&mut self) -> Option<&mut [u8; N]> {
        let from = Self::offset_from_headroom::<BACK>(self.meta.current_data);
        if from + N as u64 > self.mem.len() as u64 {
            return None;
        }
        let from = from as usize;
        // SAFETY: from + N <= mem.len() (checked just above), so the N bytes are inside `mem`;
        // the exclusive borrow of self makes this the only view.
        Some(unsafe { &mut *self.mem.as_mut_ptr().add(from).cast::<[u8; N]>() })
    }

    /// Bytes this buffer can hold from `current_data` on.
    pub fn capacity(&self) -> usize {
        self.mem.len() - self.start()
    }

    /// Bytes in the whole chain starting here.
    pub fn total_len(&self) -> usize {
        self.meta.chain_len() as usize
    }
}

struct Region {
    base: *mut u8,
    len: usize,
    fd: OwnedFd,
}

// SAFETY: the region is plain shared memory; who may touch which buffer is governed by the
// ownership rule in the module docs, not by the Region handle itself.
unsafe impl Send for Region {}
// SAFETY: as above; &Region only hands out raw addresses.
unsafe impl Sync for Region {}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: base/len come from a successful mmap and nothing uses the region after the
        // pool (its only owner) is dropped.
        unsafe {
            libc::munmap(self.base.cast(), self.len);
        }
    }
}

/// Everything shared between workers about the pool.
pub struct BufferPool {
    region: Region,
    n_buffers: u32,
    stride: usize,
    data_size: usize,
    backing: Backing,
    backing_reason: String,
    free: Mutex<Vec<u32>>,
    /// Buffers not owned by a packet: in the free list or in a worker cache. One counter, so
    /// `in_use` is consistent without a snapshot: alloc subtracts only after taking buffers
    /// and free adds only after returning them, so it never exceeds `n_buffers`, even
    /// transiently (moves between a cache and the free list do not touch it).
    available: AtomicUsize,
    /// Frees of a buffer that was already free: a bug somewhere, counted instead of corrupting.
    double_frees: AtomicUsize,
}

/// Round `n` up to a multiple of `to` (a power of two).
const fn round_up(n: usize, to: usize) -> usize {
    (n + to - 1) & !(to - 1)
}

impl BufferPool {
    /// Create a pool of `n_buffers` buffers of `data_size` data bytes each.
    pub fn new(n_buffers: u32, data_size: usize) -> std::io::Result<Arc<Self>> {
        Self::with_backing(n_buffers, data_size, true)
    }

    /// As [`BufferPool::new`]; `try_hugepages = false` skips straight to normal pages.
    pub fn with_backing(
        n_buffers: u32,
        data_size: usize,
        try_hugepages: bool,
    ) -> std::io::Result<Arc<Self>> {
        if n_buffers == 0 || n_buffers == NO_BUFFER || !(64..=65535).contains(&data_size) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("bad buffer pool size: {n_buffers} buffers of {data_size} bytes"),
            ));
        }
        let stride = round_up(META_SIZE + HEADROOM + data_size, 64);
        let bytes = stride * n_buffers as usize;
        let (region, backing, backing_reason) = map_pool(bytes, try_hugepages)?;
        if backing == Backing::Hugetlb {
            log::info!("buffer pool: {} MiB on {backing_reason}", region.len >> 20);
        } else {
            log::warn!(
                "buffer pool: {} MiB on {} pages: {backing_reason}",
                region.len >> 20,
                backing.name()
            );
        }
        let pool = Self {
            region,
            n_buffers,
            stride,
            data_size,
            backing,
            backing_reason,
            // Reversed so that low indices are handed out first (nicer traces and tests).
            free: Mutex::new((0..n_buffers).rev().collect()),
            available: AtomicUsize::new(n_buffers as usize),
            double_frees: AtomicUsize::new(0),
        };
        for i in 0..n_buffers {
            // SAFETY: the pool is not shared yet, so we own every buffer; meta_ptr is in bounds.
            unsafe { pool.meta_ptr(i).write(BufferMeta::zeroed()) };
        }
        Ok(Arc::new(pool))
    }

    #[inline(always)]
    fn buffer_ptr(&self, bi: u32) -> *mut u8 {
        assert!(bi < self.n_buffers, "buffer index {bi} out of range");
        // SAFETY: bi < n_buffers, so the offset stays inside the mapped region.
        unsafe { self.region.base.add(bi as usize * self.stride) }
    }

    #[inline(always)]
    fn meta_ptr(&self, bi: u32) -> *mut BufferMeta {
        self.buffer_ptr(bi).cast()
    }

    pub fn capacity(&self) -> u32 {
        self.n_buffers
    }
    pub fn data_size(&self) -> usize {
        self.data_size
    }
    pub fn stride(&self) -> usize {
        self.stride
    }
    pub fn backing(&self) -> Backing {
        self.backing
    }
    /// Why the pool got the backing it has (which pages were tried and what the kernel said).
    pub fn backing_reason(&self) -> &str {
        &self.backing_reason
    }
    /// The memfd behind the region, for sharing it with a peer.
    pub fn region_fd(&self) -> RawFd {
        self.region.fd.as_raw_fd()
    }
    /// Size in bytes of the region.
    pub fn region_len(&self) -> usize {
        self.region.len
    }
    /// Address of the region, for drivers that register it with the kernel or a peer.
    pub fn region_base(&self) -> *mut u8 {
        self.region.base
    }
    /// Offset of buffer `bi`'s data area (after the headroom) in the region.
    pub fn data_offset(&self, bi: u32) -> usize {
        bi as usize * self.stride + META_SIZE + HEADROOM
    }
    /// The buffer whose data area contains region offset `off`, if any.
    pub fn buffer_at_offset(&self, off: usize) -> Option<u32> {
        let bi = off / self.stride;
        (bi < self.n_buffers as usize).then_some(bi as u32)
    }

    /// Buffers in the shared free list.
    pub fn free_count(&self) -> usize {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
    /// Buffers held by workers' caches. For display: the free list and the counter are read
    /// at different instants, so this can be briefly off (never negative).
    pub fn cached_count(&self) -> usize {
        self.available().saturating_sub(self.free_count())
    }
    /// Buffers not owned by any packet (free list and worker caches).
    pub fn available(&self) -> usize {
        self.available.load(Ordering::Relaxed)
    }
    /// Buffers owned by packets in flight, rings, or leaks. Always <= capacity.
    pub fn in_use(&self) -> usize {
        (self.n_buffers as usize).saturating_sub(self.available())
    }
    pub fn double_frees(&self) -> usize {
        self.double_frees.load(Ordering::Relaxed)
    }

    /// A worker-local handle with its own cache.
    pub fn local(self: &Arc<Self>) -> Buffers {
        Buffers {
            geo: Geometry {
                base: self.region.base,
                stride: self.stride,
                n_buffers: self.n_buffers,
                mem_len: HEADROOM + self.data_size,
            },
            pool: self.clone(),
            cache: Vec::with_capacity(CACHE_SIZE + CACHE_BATCH),
        }
    }
}

/// 2 MiB: the hugetlb page and the x86-64 THP size.
pub const HUGE_2M: usize = 2 << 20;

/// Free 2 MiB hugetlb pages on the machine, from /proc/meminfo (0 if unknown).
pub fn free_hugepages() -> usize {
    let m = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    m.lines()
        .find_map(|l| l.strip_prefix("HugePages_Free:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Whether the kernel will back shared memory (a memfd) with transparent huge pages when the
/// mapping is advised, read from `/sys/kernel/mm/transparent_hugepage/shmem_enabled`.
fn shmem_thp_mode() -> Option<String> {
    let s = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/shmem_enabled").ok()?;
    // The active mode is the bracketed word: "always within_size advise [never] deny force".
    let active = s.split_whitespace().find(|w| w.starts_with('['))?;
    Some(active.trim_matches(['[', ']']).to_string())
}

/// The pool's memory: a memfd region and why it got the pages it has.
fn map_pool(bytes: usize, try_hugetlb: bool) -> std::io::Result<(Region, Backing, String)> {
    let mut why = if try_hugetlb {
        match map_memfd(bytes, true) {
            Ok(r) => return Ok((r, Backing::Hugetlb, "2 MiB hugetlb pages reserved".into())),
            Err(e) => format!("no 2 MiB hugetlb pages for {} MiB ({e})", bytes >> 20),
        }
    } else {
        "hugetlb pages not tried (no-hugetlb)".to_string()
    };
    let region = map_memfd(bytes, false)?;
    match shmem_thp_mode().as_deref() {
        Some(m @ ("always" | "within_size" | "advise" | "force")) => {
            // SAFETY: the range is exactly the mapping just made; madvise only changes the
            // paging policy of memory we own and never invalidates it.
            let rc = unsafe { libc::madvise(region.base.cast(), region.len, libc::MADV_HUGEPAGE) };
            if rc == 0 {
                let why = format!("{why}; shmem THP ({m}) advised on the memfd");
                return Ok((region, Backing::ShmemThp, why));
            }
            why = format!(
                "{why}; madvise(MADV_HUGEPAGE) refused: {}",
                std::io::Error::last_os_error()
            );
        }
        Some(m) => why = format!("{why}; shmem THP is '{m}' in transparent_hugepage/shmem_enabled"),
        None => why = format!("{why}; no shmem THP support"),
    }
    Ok((region, Backing::NormalPages, why))
}

fn map_memfd(bytes: usize, huge: bool) -> std::io::Result<Region> {
    use rustix::fs::MemfdFlags;
    // Whole 2 MiB units either way, so a THP-advised region can be huge-mapped to its end.
    let len = round_up(bytes, HUGE_2M);
    let mut mfd_flags = MemfdFlags::CLOEXEC;
    if huge {
        mfd_flags |= MemfdFlags::HUGETLB | MemfdFlags::HUGE_2MB;
    }
    let fd = rustix::fs::memfd_create(c"rvpp-buffers", mfd_flags)?;
    rustix::fs::ftruncate(&fd, len as u64)?;
    // Map at a 2 MiB-aligned address, which THP needs to use a huge page for the first 2 MiB:
    // reserve len + 2 MiB of address space, then place the file over its aligned part.
    // SAFETY: a fresh PROT_NONE anonymous reservation aliases nothing; the result is checked.
    let resv = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len + HUGE_2M,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if resv == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    let lead = (HUGE_2M - resv as usize % HUGE_2M) % HUGE_2M;
    // SAFETY: lead < 2 MiB, so the aligned address stays inside the reservation.
    let want = unsafe { resv.cast::<u8>().add(lead) };
    let mut mmap_flags = libc::MAP_SHARED | libc::MAP_FIXED;
    if huge {
        // Fault the hugepages in now: a later SIGBUS on a short pool would kill a worker.
        mmap_flags |= libc::MAP_POPULATE;
    }
    // SAFETY: MAP_FIXED replaces only pages of our own reservation ([want, want + len) lies
    // inside [resv, resv + len + 2 MiB)); the file is `len` bytes long.
    let base = unsafe {
        libc::mmap(
            want.cast(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            mmap_flags,
            fd.as_raw_fd(),
            0,
        )
    };
    let failed = base == libc::MAP_FAILED;
    let err = std::io::Error::last_os_error();
    // Give back the unused head and tail of the reservation (the whole of it on failure).
    let tail_start = lead + len;
    // SAFETY: both ranges lie inside the reservation and outside the file mapping (or the
    // mapping failed, and then the whole reservation goes); nothing refers to them.
    unsafe {
        if failed {
            libc::munmap(resv, len + HUGE_2M);
        } else {
            if lead > 0 {
                libc::munmap(resv, lead);
            }
            if tail_start < len + HUGE_2M {
                libc::munmap(
                    resv.cast::<u8>().add(tail_start).cast(),
                    len + HUGE_2M - tail_start,
                );
            }
        }
    }
    if failed {
        return Err(err);
    }
    let region = Region {
        base: base.cast(),
        len,
        fd,
    };
    if huge && !all_resident(&region)? {
        // Dropping the region unmaps it.
        return Err(std::io::Error::other(
            "hugepages not resident after MAP_POPULATE",
        ));
    }
    Ok(region)
}

/// Whether every page of `r` is resident. MAP_POPULATE does not report failure, and a hugetlb
/// cgroup limit can leave pages missing that would SIGBUS on first touch.
fn all_resident(r: &Region) -> std::io::Result<bool> {
    // mincore reports one byte per *base* page (PAGE_SIZE), even inside a hugetlb mapping.
    // (Not rustix::param::page_size: its raw-syscall backend parses the vDSO from the aux
    // vector, which segfaults under valgrind, the memory checker CI runs this under.)
    // SAFETY: sysconf takes no pointers and has no preconditions.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        p if p > 0 => p as usize,
        _ => 4096,
    };
    let mut vec = vec![0u8; r.len.div_ceil(page)];
    // SAFETY: `vec` holds len / PAGE_SIZE bytes (rounded up), exactly what mincore writes for
    // a `len`-byte range; `r.base` is page aligned and the range is our live mapping.
    let rc = unsafe { libc::mincore(r.base.cast(), r.len, vec.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(vec.iter().all(|b| b & 1 == 1))
}

/// A worker's handle on the pool: allocation and free go through a local cache, so the shared
/// free list is touched once per `CACHE_BATCH` buffers at most.
pub struct Buffers {
    // A copy of the pool's geometry, so a per-packet access is one multiply-add away
    // instead of a chain of loads through the Arc.
    geo: Geometry,
    pool: Arc<BufferPool>,
    cache: Vec<u32>,
}

/// Where buffer `bi` is: `base + bi * stride`, with `mem_len` bytes of headroom and data after
/// its metadata. Copied into `Buffers` and into each `BufView`.
#[derive(Clone, Copy)]
struct Geometry {
    base: *mut u8,
    stride: usize,
    n_buffers: u32,
    mem_len: usize,
}

impl Geometry {
    #[inline(always)]
    fn ptr(&self, bi: u32) -> *mut u8 {
        assert!(bi < self.n_buffers, "buffer index {bi} out of range");
        // SAFETY: bi < n_buffers, so the offset stays inside the pool's mapped region (which
        // the `Buffers` holding or lending this geometry keeps alive through its pool).
        unsafe { self.base.add(bi as usize * self.stride) }
    }

    /// # Safety
    /// The caller owns `bi` (ownership rule) and holds no other view of it for `'a`.
    #[inline(always)]
    unsafe fn buf<'a>(&self, bi: u32) -> Buf<'a> {
        let p = self.ptr(bi);
        // SAFETY: p is buffer bi's start (in range, ptr asserts it); its metadata and its
        // mem_len bytes after META_SIZE lie inside the buffer; exclusivity is the caller's.
        unsafe {
            Buf {
                meta: &mut *p.cast::<BufferMeta>(),
                mem: std::slice::from_raw_parts_mut(p.add(META_SIZE), self.mem_len),
            }
        }
    }

    #[inline(always)]
    fn prefetch(&self, bi: u32) {
        if bi < self.n_buffers {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: bi is in range, so both addresses are inside the mapped region; prefetch
            // never faults and does not access memory architecturally.
            unsafe {
                let p = self.base.add(bi as usize * self.stride);
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                _mm_prefetch::<_MM_HINT_T0>(p as *const i8);
                _mm_prefetch::<_MM_HINT_T0>(p.add(META_SIZE + HEADROOM) as *const i8);
            }
        }
    }
}

// SAFETY: `base` points into the region owned by `pool`, which this handle keeps alive; a
// `Buffers` is used by one thread at a time and only touches buffers it owns (module docs).
unsafe impl Send for Buffers {}

impl Buffers {
    pub fn pool(&self) -> &Arc<BufferPool> {
        &self.pool
    }

    /// Fill `out` with fresh buffers; returns how many were allocated (fewer if the pool ran dry).
    #[inline]
    pub fn alloc(&mut self, out: &mut [u32]) -> usize {
        if self.cache.len() < out.len() {
            self.refill(out.len());
        }
        let n = out.len().min(self.cache.len());
        let from = self.cache.len() - n;
        for (o, &bi) in out[..n].iter_mut().zip(&self.cache[from..]) {
            *o = bi;
            // SAFETY: bi came from our cache (so it is in range), and we own it now.
            let m = unsafe { &mut *self.geo.ptr(bi).cast::<BufferMeta>() };
            m.reset_for_rx();
            m.pool_free = 0;
        }
        self.cache.truncate(from);
        self.pool.available.fetch_sub(n, Ordering::Relaxed);
        n
    }

    /// One buffer, or None when the pool is empty.
    #[inline]
    pub fn alloc_one(&mut self) -> Option<u32> {
        let mut b = [0u32];
        (self.alloc(&mut b) == 1).then_some(b[0])
    }

    #[cold]
    fn refill(&mut self, want: usize) {
        let mut free = self.pool.free.lock().unwrap_or_else(|e| e.into_inner());
        let take = (want.max(CACHE_BATCH) - self.cache.len().min(want)).min(free.len());
        let from = free.len() - take;
        self.cache.extend_from_slice(&free[from..]);
        free.truncate(from);
    }

    /// Return buffers (and the rest of their chains) to the pool.
    #[inline]
    pub fn free(&mut self, bufs: &[u32]) {
        let before = self.cache.len();
        for &bi in bufs {
            self.free_chain(bi);
        }
        // One shared-counter update per call, not per buffer, and only after the buffers are
        // back in the cache (see `BufferPool::available`).
        self.pool
            .available
            .fetch_add(self.cache.len() - before, Ordering::Relaxed);
        if self.cache.len() > CACHE_SIZE {
            self.spill();
        }
    }

    /// Free the rest of a chain after `head`, keeping `head` as a single buffer.
    pub fn free_tail(&mut self, head: u32) {
        let m = self.meta(head);
        if m.flags & flags::NEXT_PRESENT == 0 {
            return;
        }
        let next = m.next_buffer;
        m.flags &= !flags::NEXT_PRESENT;
        m.next_buffer = NO_BUFFER;
        m.total_length_not_including_first_buffer = 0;
        self.free(&[next]);
    }

    #[inline(always)]
    fn free_chain(&mut self, mut bi: u32) {
        loop {
            if bi >= self.geo.n_buffers {
                self.pool.double_frees.fetch_add(1, Ordering::Relaxed);
                return;
            }
            // SAFETY: the caller owned bi (ownership rule); it is in range (checked above).
            let m = unsafe { &mut *self.geo.ptr(bi).cast::<BufferMeta>() };
            if m.pool_free != 0 {
                self.pool.double_frees.fetch_add(1, Ordering::Relaxed);
                return;
            }
            m.pool_free = 1;
            let next = (m.flags & flags::NEXT_PRESENT != 0).then_some(m.next_buffer);
            self.cache.push(bi);
            match next {
                Some(n) => bi = n,
                None => return,
            }
        }
    }

    #[cold]
    fn spill(&mut self) {
        let keep = CACHE_SIZE - CACHE_BATCH;
        let mut free = self.pool.free.lock().unwrap_or_else(|e| e.into_inner());
        free.extend_from_slice(&self.cache[keep..]);
        drop(free);
        self.cache.truncate(keep);
    }

    /// Give every cached buffer back to the shared list (at thread exit, or for accounting).
    pub fn flush(&mut self) {
        let mut free = self.pool.free.lock().unwrap_or_else(|e| e.into_inner());
        free.extend_from_slice(&self.cache);
        drop(free);
        self.cache.clear();
    }

    /// The buffer `bi`, which the caller owns.
    #[inline(always)]
    pub fn get(&mut self, bi: u32) -> Buf<'_> {
        // SAFETY: bi is owned by this worker (ownership rule); &mut self prevents a second
        // live view through this handle for the borrow's life.
        unsafe { self.geo.buf(bi) }
    }

    /// The pool's geometry copied into a value a node keeps in registers for a whole vector.
    /// Through `&mut Buffers` (reached via the node's context) the compiler reloads base,
    /// stride and bounds for every packet, since a store through a packet's metadata might
    /// alias them; a local copy cannot be aliased.
    #[inline(always)]
    pub fn view(&mut self) -> BufView<'_> {
        BufView {
            geo: self.geo,
            _owner: std::marker::PhantomData,
        }
    }

    /// Metadata only, for nodes that do not touch packet bytes.
    #[inline(always)]
    pub fn meta(&mut self, bi: u32) -> &mut BufferMeta {
        // SAFETY: as in `get`.
        unsafe { &mut *self.geo.ptr(bi).cast::<BufferMeta>() }
    }

    /// Two distinct buffers at once (building a packet from another). None if `a == b`.
    pub fn get2(&mut self, a: u32, b: u32) -> Option<(Buf<'_>, Buf<'_>)> {
        if a == b {
            return None;
        }
        let (pa, pb) = (self.pool.buffer_ptr(a), self.pool.buffer_ptr(b));
        let n = HEADROOM + self.pool.data_size;
        // SAFETY: a != b, so the two buffers are disjoint; both are owned by the caller.
        unsafe {
            Some((
                Buf {
                    meta: &mut *pa.cast::<BufferMeta>(),
                    mem: std::slice::from_raw_parts_mut(pa.add(META_SIZE), n),
                },
                Buf {
                    meta: &mut *pb.cast::<BufferMeta>(),
                    mem: std::slice::from_raw_parts_mut(pb.add(META_SIZE), n),
                },
            ))
        }
    }

    /// Hint the CPU to fetch a buffer's metadata and first data line.
    #[inline(always)]
    pub fn prefetch(&self, bi: u32) {
        self.geo.prefetch(bi)
    }

    /// Copy `bytes` into a fresh chain of buffers. Returns the head, or None if the pool ran dry.
    pub fn alloc_from_bytes(&mut self, bytes: &[u8]) -> Option<u32> {
        let seg = self.pool.data_size;
        let n = bytes.len().div_ceil(seg).max(1);
        let mut idx = [0u32; 64];
        if n > idx.len() {
            return None;
        }
        let got = self.alloc(&mut idx[..n]);
        if got != n {
            self.free(&idx[..got]);
            return None;
        }
        let total = bytes.len();
        for (i, chunk_idx) in (0..n).enumerate() {
            let chunk = &bytes[chunk_idx * seg..((chunk_idx + 1) * seg).min(total)];
            let mut b = self.get(idx[i]);
            b.tail_room_mut()[..chunk.len()].copy_from_slice(chunk);
            b.meta.current_length = chunk.len() as u16;
            if i + 1 < n {
                b.meta.flags |= flags::NEXT_PRESENT;
                b.meta.next_buffer = idx[i + 1];
            }
        }
        let head = self.meta(idx[0]);
        if n > 1 {
            head.total_length_not_including_first_buffer = (total - seg) as u32;
        }
        Some(idx[0])
    }

    /// Copy a whole chain's bytes into `out`; returns the length (truncated to `out`).
    pub fn copy_chain(&mut self, head: u32, out: &mut [u8]) -> usize {
        let mut bi = head;
        let mut n = 0;
        loop {
            let b = self.get(bi);
            let d = b.data();
            let take = d.len().min(out.len() - n);
            out[n..n + take].copy_from_slice(&d[..take]);
            n += take;
            if b.meta.flags & flags::NEXT_PRESENT == 0 || n == out.len() {
                return n;
            }
            bi = b.meta.next_buffer;
        }
    }

    /// As [`Buffers::copy_chain`], from byte `skip` of the packet on: the bytes copied.
    pub fn copy_chain_from(&mut self, head: u32, mut skip: usize, out: &mut [u8]) -> usize {
        let mut bi = head;
        let mut n = 0;
        loop {
            let b = self.get(bi);
            let d = b.data();
            let from = skip.min(d.len());
            skip -= from;
            let take = (d.len() - from).min(out.len() - n);
            out[n..n + take].copy_from_slice(&d[from..from + take]);
            n += take;
            if b.meta.flags & flags::NEXT_PRESENT == 0 || n == out.len() {
                return n;
            }
            bi = b.meta.next_buffer;
        }
    }
}

impl Drop for Buffers {
    fn drop(&mut self) {
        self.flush();
    }
}

/// [`Buffers::view`]: the same buffers, borrowed for one vector, with the geometry in locals.
pub struct BufView<'a> {
    geo: Geometry,
    _owner: std::marker::PhantomData<&'a mut Buffers>,
}

impl BufView<'_> {
    /// The buffer `bi`, which the caller owns (as [`Buffers::get`]).
    #[inline(always)]
    pub fn get(&mut self, bi: u32) -> Buf<'_> {
        // SAFETY: as in `Buffers::get`: bi is owned by this worker, and `&mut self` (which
        // borrows the `Buffers` mutably) prevents a second live view.
        unsafe { self.geo.buf(bi) }
    }

    /// Hint the CPU to fetch a buffer's metadata and first data line (as [`Buffers::prefetch`]).
    #[inline(always)]
    pub fn prefetch(&self, bi: u32) {
        self.geo.prefetch(bi)
    }

    /// The buffers of one vector, with every index range-checked here, once, so that access
    /// per packet is a multiply-add with no check. Panics, as [`BufView::get`] would, if an
    /// index is not a buffer of the pool (a bug in whoever made the vector).
    #[inline(always)]
    pub fn vector<'v>(&'v mut self, bufs: &'v [u32]) -> VecView<'v> {
        // An OR over the vector vectorises to a fraction of an instruction per packet and
        // bounds every index; only when it is not below the pool size is the max needed.
        let any = bufs.iter().fold(0u32, |m, &b| m | b);
        if any >= self.geo.n_buffers {
            check_indices(bufs, self.geo.n_buffers);
        }
        VecView {
            geo: self.geo,
            bufs,
            _owner: std::marker::PhantomData,
        }
    }
}

#[cold]
#[inline(never)]
fn check_indices(bufs: &[u32], n_buffers: u32) {
    let max = bufs.iter().fold(0u32, |m, &b| m.max(b));
    assert!(max < n_buffers, "buffer index {max} out of range");
}

/// `for $i in 0..$n { $body }` over a [`VecView`], prefetching buffer `$i + $ahead` on the way,
/// as two loops so that the one that prefetches needs no end check for it. A macro, not a
/// closure, so that the body is inlined into both loops for certain.
macro_rules! for_each_prefetched {
    ($v:ident, $n:expr, $ahead:expr, |$i:ident| $body:block) => {{
        let n: usize = $n;
        let ahead = n.saturating_sub($ahead);
        for $i in 0..ahead {
            $v.prefetch($i + $ahead);
            $body
        }
        for $i in ahead..n {
            $body
        }
    }};
}
pub(crate) use for_each_prefetched;

/// [`BufView::vector`]: one vector's buffers, every index known to be in range.
pub struct VecView<'v> {
    geo: Geometry,
    /// Invariant: every element is `< geo.n_buffers` (checked by `BufView::vector`).
    bufs: &'v [u32],
    _owner: std::marker::PhantomData<&'v mut Buffers>,
}

impl VecView<'_> {
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.bufs.len()
    }

    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    /// The index of the `i`th buffer of the vector.
    #[inline(always)]
    pub fn index(&self, i: usize) -> u32 {
        self.bufs[i]
    }

    /// The `i`th buffer of the vector (`i` is checked against the vector, which a loop over
    /// `0..len()` elides; the buffer index needs no check).
    #[inline(always)]
    pub fn get(&mut self, i: usize) -> Buf<'_> {
        let p = self.ptr(self.bufs[i]);
        // SAFETY: p is the start of buffer bufs[i], which is in range (the struct invariant);
        // its metadata and its mem_len bytes after META_SIZE lie inside the buffer. The worker
        // owns it (ownership rule), and `&mut self`, which borrows the `Buffers` mutably,
        // prevents a second live view.
        unsafe {
            Buf {
                meta: &mut *p.cast::<BufferMeta>(),
                mem: std::slice::from_raw_parts_mut(p.add(META_SIZE), self.geo.mem_len),
            }
        }
    }

    /// The `i`th buffer's metadata only.
    #[inline(always)]
    pub fn meta(&mut self, i: usize) -> &mut BufferMeta {
        let p = self.ptr(self.bufs[i]);
        // SAFETY: as in `get`.
        unsafe { &mut *p.cast::<BufferMeta>() }
    }

    /// Prefetch the `i`th buffer's metadata and first data line; nothing past the vector's end.
    #[inline(always)]
    pub fn prefetch(&self, i: usize) {
        if let Some(&bi) = self.bufs.get(i) {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: bi is in range (the struct invariant), so both addresses are inside the
            // mapped region; prefetch never faults and does not access memory architecturally.
            unsafe {
                let p = self.ptr(bi);
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                _mm_prefetch::<_MM_HINT_T0>(p as *const i8);
                _mm_prefetch::<_MM_HINT_T0>(p.add(META_SIZE + HEADROOM) as *const i8);
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = bi;
        }
    }

    /// As [`Self::prefetch`], and the headroom's last line, where a node that prepends
    /// headers (tunnel encap) writes for a packet that starts at the buffer's data.
    #[inline(always)]
    pub fn prefetch_for_prepend(&self, i: usize) {
        if let Some(&bi) = self.bufs.get(i) {
            self.prefetch(i);
            #[cfg(target_arch = "x86_64")]
            // SAFETY: bi is in range (the struct invariant) and META_SIZE + HEADROOM - 64 lies
            // inside its buffer; prefetch never faults and does not access memory.
            unsafe {
                let p = self.ptr(bi);
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                _mm_prefetch::<_MM_HINT_T0>(p.add(META_SIZE + HEADROOM - 64) as *const i8);
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = bi;
        }
    }

    #[inline(always)]
    fn ptr(&self, bi: u32) -> *mut u8 {
        debug_assert!(bi < self.geo.n_buffers);
        // SAFETY: bi < n_buffers (the struct invariant), so the offset stays inside the pool's
        // mapped region, which the borrowed `Buffers` keeps alive.
        unsafe { self.geo.base.add(bi as usize * self.geo.stride) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_free_accounting_balances() {
        let pool = BufferPool::with_backing(4096, 2048, false).unwrap();
        assert_ne!(
            pool.backing(),
            Backing::Hugetlb,
            "hugetlb was not asked for"
        );
        let mut w = pool.local();
        let mut v = vec![0u32; 3000];
        assert_eq!(w.alloc(&mut v), 3000);
        assert_eq!(pool.in_use(), 3000);
        w.free(&v);
        w.flush();
        assert_eq!(pool.in_use(), 0);
        assert_eq!(pool.free_count(), 4096);
    }

    #[test]
    fn pool_runs_dry_without_panicking() {
        let pool = BufferPool::with_backing(100, 2048, false).unwrap();
        let mut w = pool.local();
        let mut v = vec![0u32; 256];
        assert_eq!(w.alloc(&mut v), 100);
        assert_eq!(w.alloc_one(), None);
        w.free(&v[..100]);
        assert!(w.alloc_one().is_some());
    }

    #[test]
    fn double_free_is_counted_not_corrupting() {
        let pool = BufferPool::with_backing(16, 2048, false).unwrap();
        let mut w = pool.local();
        let b = w.alloc_one().unwrap();
        w.free(&[b]);
        w.free(&[b]);
        w.free(&[9999]);
        assert_eq!(pool.double_frees(), 2);
        w.flush();
        assert_eq!(pool.free_count(), 16);
    }

    #[test]
    fn chains_round_trip_and_free_whole() {
        let pool = BufferPool::with_backing(64, 2048, false).unwrap();
        let mut w = pool.local();
        let bytes: Vec<u8> = (0..9000u32).map(|i| i as u8).collect();
        let head = w.alloc_from_bytes(&bytes).unwrap();
        assert_eq!(w.get(head).total_len(), 9000);
        let mut out = vec![0u8; 9000];
        assert_eq!(w.copy_chain(head, &mut out), 9000);
        assert_eq!(out, bytes);
        // From inside the second buffer, and across the rest of the chain.
        let mut tail = vec![0u8; 9000 - 3000];
        assert_eq!(w.copy_chain_from(head, 3000, &mut tail), 6000);
        assert_eq!(tail[..], bytes[3000..]);
        assert_eq!(w.copy_chain_from(head, 9000, &mut tail), 0);
        assert_eq!(pool.in_use(), 5);
        w.free(&[head]);
        w.flush();
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn advance_and_retreat_respect_bounds() {
        let pool = BufferPool::with_backing(4, 2048, false).unwrap();
        let mut w = pool.local();
        let bi = w.alloc_one().unwrap();
        let mut b = w.get(bi);
        assert!(b.set_len(60));
        assert!(b.advance(14));
        assert_eq!(b.data().len(), 46);
        assert!(!b.advance(47));
        assert!(b.retreat(14 + HEADROOM));
        assert!(!b.retreat(1));
        assert!(!b.set_len(HEADROOM + 2048 + 1));
    }

    #[test]
    fn hugetlb_pool_when_pages_are_reserved() {
        // 1024 buffers of 2048 B: a 2.4 MiB pool, so two 2 MiB pages. With pages reserved the
        // hugetlb path must work (it is what every Calico node runs); without, the fallback
        // must come up, say why, and work too.
        let reserved = free_hugepages() >= 2;
        let pool = BufferPool::new(1024, 2048).unwrap();
        if reserved {
            assert_eq!(
                pool.backing(),
                Backing::Hugetlb,
                "{}",
                pool.backing_reason()
            );
        } else {
            assert_ne!(pool.backing(), Backing::Hugetlb);
            assert!(!pool.backing_reason().is_empty());
        }
        assert_eq!(pool.region_len() % HUGE_2M, 0);
        assert_eq!(
            pool.region_base() as usize % HUGE_2M,
            0,
            "region not 2 MiB aligned"
        );
        let mut w = pool.local();
        let mut v = vec![0u32; 1024];
        assert_eq!(w.alloc(&mut v), 1024);
        // Touch every buffer's first and last data byte: a missing page would fault here.
        for &bi in &v {
            let mut b = w.get(bi);
            let raw = b.raw_mut();
            let last = raw.len() - 1;
            raw[0] = 7;
            raw[last] = 9;
        }
        w.free(&v);
        w.flush();
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn no_hugetlb_pool_uses_a_fallback_and_says_why() {
        let pool = BufferPool::with_backing(1024, 2048, false).unwrap();
        assert_ne!(pool.backing(), Backing::Hugetlb);
        assert!(
            pool.backing_reason().contains("not tried"),
            "{}",
            pool.backing_reason()
        );
    }

    #[test]
    fn the_fallback_follows_shmem_thp_mode() {
        // Without hugetlb the pool is advised for shmem THP exactly when the kernel's
        // shmem_enabled mode lets madvise ask for it; otherwise 4 KiB pages.
        let pool = BufferPool::with_backing(1024, 2048, false).unwrap();
        match shmem_thp_mode().as_deref() {
            Some("always" | "within_size" | "advise" | "force") => {
                assert_eq!(
                    pool.backing(),
                    Backing::ShmemThp,
                    "{}",
                    pool.backing_reason()
                )
            }
            _ => assert_eq!(
                pool.backing(),
                Backing::NormalPages,
                "{}",
                pool.backing_reason()
            ),
        }
        let mut w = pool.local();
        let bi = w.alloc_one().unwrap();
        w.get(bi).raw_mut()[0] = 1;
        w.free(&[bi]);
    }

    #[test]
    fn in_use_never_exceeds_capacity_under_churn() {
        // Workers allocate, pass and free buffers in batches that make their caches spill and
        // refill, while a reader (the stats segment's role) samples the accounting.
        let pool = BufferPool::with_backing(4096, 256, false).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let workers: Vec<_> = (0..3)
            .map(|t| {
                let (pool, stop) = (pool.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut w = pool.local();
                    let mut v = vec![0u32; 300 + 200 * t];
                    let mut rounds = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let n = w.alloc(&mut v);
                        w.free(&v[..n]);
                        rounds += 1;
                    }
                    rounds
                })
            })
            .collect();
        let cap = pool.capacity() as usize;
        let mut samples = 0u64;
        let t0 = std::time::Instant::now();
        while t0.elapsed() < std::time::Duration::from_millis(500) {
            let u = pool.in_use();
            assert!(u <= cap, "in_use {u} > capacity {cap}");
            assert!(pool.available() <= cap);
            assert!(pool.cached_count() <= cap);
            samples += 1;
        }
        stop.store(true, Ordering::Relaxed);
        let rounds: u64 = workers.into_iter().map(|h| h.join().unwrap()).sum();
        assert!(
            rounds > 100 && samples > 100,
            "rounds {rounds}, samples {samples}"
        );
        assert_eq!(pool.in_use(), 0);
        assert_eq!(pool.free_count(), cap);
    }
}
