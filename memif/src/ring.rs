//! Raw access to rings and buffers in shared memory.
//!
//! All memory here is shared with another process that may be buggy or
//! hostile, so: head/tail are atomics (acquire/release pairs order the
//! descriptor and buffer contents), descriptors are read once with
//! volatile loads into a local [`Desc`] and validated before use, and
//! buffer copies go through raw pointers after a bounds check against the
//! region length — never through references that assume exclusive access.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use crate::proto::{self, DESC_SIZE, RING_HEADER_SIZE};
use crate::sys::Mmap;

/// One mapped shared memory region.
pub struct Region {
    pub(crate) map: Mmap,
    /// Kept open: clients pass it to the server, servers hand it to the process taking over
    /// ([`Interface::handoff`](crate::Interface::handoff)).
    pub(crate) fd: Option<OwnedFd>,
}

impl Region {
    /// Base address of the mapping in this process.
    pub fn base(&self) -> *mut u8 {
        self.map.as_ptr()
    }
    /// Size in bytes.
    pub fn size(&self) -> usize {
        self.map.len()
    }
    /// File descriptor of the region, if still open.
    pub fn fd(&self) -> Option<RawFd> {
        self.fd.as_ref().map(|f| f.as_raw_fd())
    }
}

/// Table of regions of one connection, indexed by region number.
pub(crate) type Regions = Arc<Vec<Region>>;

/// A descriptor value (a copy; writing it back is explicit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Desc {
    /// [`proto::DESC_FLAG_NEXT`] when the packet continues.
    pub flags: u16,
    /// Region index of the buffer.
    pub region: u16,
    /// Data length (or, in a free slot handed to the producer, capacity).
    pub length: u32,
    /// Byte offset of the buffer inside the region.
    pub offset: u32,
    /// Opaque metadata.
    pub metadata: u32,
}

/// Direction of a ring relative to the protocol (not to us).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingKind {
    /// Client to server (S2M / C2S). Client produces, advances head;
    /// server consumes, advances tail.
    ClientToServer,
    /// Server to client (M2S / S2C). Client gives free buffers by
    /// advancing head; server fills them and advances tail.
    ServerToClient,
}

/// A ring in shared memory. The pointer is valid for as long as `regions`
/// (which it keeps alive) is; every constructor checks the ring fits.
pub struct Ring {
    regions: Regions,
    hdr: *mut u8,
    /// Where the header is: region index and byte offset (what ADD_RING said).
    region: u16,
    offset: u32,
    log2: u8,
    pub(crate) kind: RingKind,
    /// Eventfd used to signal the receiving side.
    pub(crate) intr: Option<OwnedFd>,
}

// SAFETY: the raw pointer targets a shared mapping kept alive by `regions`;
// concurrent access is governed by the memif protocol, not Rust aliasing.
unsafe impl Send for Ring {}

impl Ring {
    /// Build a view after checking that header and descriptors lie inside
    /// the region and the header is suitably aligned.
    pub(crate) fn new(
        regions: Regions,
        region: u16,
        offset: u32,
        log2: u8,
        kind: RingKind,
        intr: Option<OwnedFd>,
    ) -> Result<Ring, String> {
        if log2 > proto::MAX_LOG2_RING_SIZE {
            return Err(format!("ring size 2^{log2} too large"));
        }
        let r = regions
            .get(region as usize)
            .ok_or_else(|| format!("ring in unknown region {region}"))?;
        let end = offset as u64 + proto::ring_bytes(log2) as u64;
        if end > r.size() as u64 {
            return Err(format!(
                "ring at {offset} (2^{log2} slots) exceeds region {region} of {} bytes",
                r.size()
            ));
        }
        if offset & 7 != 0 {
            return Err(format!("ring offset {offset} not 8-byte aligned"));
        }
        // SAFETY: offset + ring_bytes <= region size, checked above.
        let hdr = unsafe { r.base().add(offset as usize) };
        Ok(Ring {
            regions,
            hdr,
            region,
            offset,
            log2,
            kind,
            intr,
        })
    }

    /// A second handle on the same ring, for moving a queue's data path to
    /// another thread while the [`Interface`](crate::Interface) keeps the
    /// control channel. The clone keeps the regions mapped for as long as it
    /// lives (even after the connection is torn down) and has its own
    /// duplicate of the interrupt eventfd. Both handles see the same shared
    /// head/tail; only one of them may drive the data path.
    pub fn try_clone(&self) -> std::io::Result<Ring> {
        let intr = match &self.intr {
            Some(f) => Some(f.try_clone()?),
            None => None,
        };
        Ok(Ring {
            regions: self.regions.clone(),
            hdr: self.hdr,
            region: self.region,
            offset: self.offset,
            log2: self.log2,
            kind: self.kind,
            intr,
        })
    }

    /// The region holding the ring header and the header's offset in it.
    pub fn location(&self) -> (u16, u32) {
        (self.region, self.offset)
    }

    pub(crate) fn hdr_addr(&self) -> usize {
        self.hdr as usize
    }

    /// Number of slots.
    pub fn size(&self) -> u16 {
        // log2 <= 14, so this fits.
        1u16 << self.log2
    }
    /// log2 of the number of slots.
    pub fn log2_size(&self) -> u8 {
        self.log2
    }
    /// `size() - 1`.
    pub fn mask(&self) -> u16 {
        self.size() - 1
    }
    /// Which protocol direction this ring carries.
    pub fn kind(&self) -> RingKind {
        self.kind
    }

    fn atomic(&self, off: usize) -> &AtomicU16 {
        // SAFETY: off is RING_FLAGS_OFFSET, RING_HEAD_OFFSET or RING_TAIL_OFFSET
        // (4, 6, 64: even, below RING_HEADER_SIZE), inside the checked
        // header; hdr is 8-aligned so the u16 is 2-aligned; the
        // memory lives as long as self (regions Arc). AtomicU16 has the
        // layout of u16 and atomics are the right tool for memory another
        // process writes concurrently.
        unsafe { &*(self.hdr.add(off) as *const AtomicU16) }
    }

    /// Load `head` (acquire: pairs with the writer's release store).
    pub fn head(&self) -> u16 {
        self.atomic(proto::RING_HEAD_OFFSET).load(Ordering::Acquire)
    }
    /// Store `head` (release: publishes earlier descriptor/buffer writes).
    pub fn set_head(&self, v: u16) {
        self.atomic(proto::RING_HEAD_OFFSET)
            .store(v, Ordering::Release)
    }
    /// Load `tail` (acquire).
    pub fn tail(&self) -> u16 {
        self.atomic(proto::RING_TAIL_OFFSET).load(Ordering::Acquire)
    }
    /// Store `tail` (release).
    pub fn set_tail(&self, v: u16) {
        self.atomic(proto::RING_TAIL_OFFSET)
            .store(v, Ordering::Release)
    }
    /// Ring flags ([`proto::RING_FLAG_MASK_INT`]).
    pub fn flags(&self) -> u16 {
        self.atomic(proto::RING_FLAGS_OFFSET)
            .load(Ordering::Relaxed)
    }
    /// Set ring flags.
    pub fn set_flags(&self, v: u16) {
        self.atomic(proto::RING_FLAGS_OFFSET)
            .store(v, Ordering::Relaxed)
    }
    /// Ring cookie.
    pub fn cookie(&self) -> u32 {
        // SAFETY: the cookie is the first 4 bytes of the checked, 8-aligned header.
        unsafe { std::ptr::read_volatile(self.hdr.add(proto::RING_COOKIE_OFFSET) as *const u32) }
    }
    pub(crate) fn set_cookie(&self, v: u32) {
        // SAFETY: as in cookie().
        unsafe { std::ptr::write_volatile(self.hdr.add(proto::RING_COOKIE_OFFSET) as *mut u32, v) }
    }

    fn desc_ptr(&self, slot: u16) -> *mut u8 {
        let i = (slot & self.mask()) as usize;
        // SAFETY: i < size, and header + size * DESC_SIZE was bounds
        // checked at construction.
        unsafe { self.hdr.add(RING_HEADER_SIZE + i * DESC_SIZE) }
    }

    /// Read the descriptor at `slot` (taken modulo the ring size).
    pub fn desc(&self, slot: u16) -> Desc {
        let p = self.desc_ptr(slot);
        // SAFETY: p points at 16 in-bounds bytes, 8-aligned (header 8-aligned,
        // 128 and 16 multiples), so each field read is aligned. Volatile
        // because the peer may write them at any time.
        unsafe {
            Desc {
                flags: std::ptr::read_volatile(p as *const u16),
                region: std::ptr::read_volatile(p.add(2) as *const u16),
                length: std::ptr::read_volatile(p.add(4) as *const u32),
                offset: std::ptr::read_volatile(p.add(8) as *const u32),
                metadata: std::ptr::read_volatile(p.add(12) as *const u32),
            }
        }
    }

    /// Write the descriptor at `slot` (taken modulo the ring size).
    pub fn set_desc(&self, slot: u16, d: Desc) {
        let p = self.desc_ptr(slot);
        // SAFETY: as in desc().
        unsafe {
            std::ptr::write_volatile(p as *mut u16, d.flags);
            std::ptr::write_volatile(p.add(2) as *mut u16, d.region);
            std::ptr::write_volatile(p.add(4) as *mut u32, d.length);
            std::ptr::write_volatile(p.add(8) as *mut u32, d.offset);
            std::ptr::write_volatile(p.add(12) as *mut u32, d.metadata);
        }
    }

    /// Write only the length and flags of a descriptor (what a producer
    /// filling a peer-provided buffer may change).
    pub fn set_len_flags(&self, slot: u16, length: u32, flags: u16) {
        let p = self.desc_ptr(slot);
        // SAFETY: as in desc().
        unsafe {
            std::ptr::write_volatile(p as *mut u16, flags);
            std::ptr::write_volatile(p.add(4) as *mut u32, length);
        }
    }

    /// Pointer to the buffer `d` describes, if `offset + len` lies inside
    /// its region. `len` is passed separately because a free buffer's
    /// capacity and a filled buffer's length are both in `d.length`.
    pub fn buffer_ptr(&self, d: &Desc, len: u32) -> Option<*mut u8> {
        let r = self.regions.get(d.region as usize)?;
        let end = d.offset as u64 + len as u64;
        if end > r.size() as u64 {
            return None;
        }
        // SAFETY: offset + len <= region size, checked above.
        Some(unsafe { r.base().add(d.offset as usize) })
    }

    /// Copy the buffer of `d` (length `d.length`) into `dst`. Fails if it
    /// is out of its region or does not fit.
    pub fn read_buffer(&self, d: &Desc, dst: &mut [u8]) -> Option<usize> {
        let n = d.length as usize;
        if n > dst.len() {
            return None;
        }
        let p = self.buffer_ptr(d, d.length)?;
        // SAFETY: p..p+n is inside the mapping (checked), dst has n bytes,
        // and private memory cannot overlap the shared mapping.
        unsafe { std::ptr::copy_nonoverlapping(p, dst.as_mut_ptr(), n) };
        Some(n)
    }

    /// Copy `src` into the buffer of `d` at byte `at`. Fails unless
    /// `at + src.len()` fits both `d.length` (capacity) and the region.
    pub fn write_buffer(&self, d: &Desc, at: u32, src: &[u8]) -> Option<()> {
        let end = at as u64 + src.len() as u64;
        if end > d.length as u64 {
            return None;
        }
        let p = self.buffer_ptr(d, d.length)?;
        // SAFETY: at + len <= d.length and offset + d.length is in bounds.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), p.add(at as usize), src.len()) };
        Some(())
    }

    /// Signal the peer if it asked for interrupts on this ring.
    pub fn kick(&self) {
        if self.flags() & proto::RING_FLAG_MASK_INT == 0 {
            if let Some(fd) = &self.intr {
                crate::sys::eventfd_kick(fd.as_raw_fd());
            }
        }
    }

    /// The ring's interrupt eventfd.
    pub fn interrupt_fd(&self) -> Option<RawFd> {
        self.intr.as_ref().map(|f| f.as_raw_fd())
    }

    /// Regions this ring's descriptors may point into.
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }
}
