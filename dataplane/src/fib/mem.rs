//! The FIB's only unsafe code: lazily committed zeroed tables and the SIMD gathers over them.
//!
//! Tables are anonymous private mappings: the kernel hands out zero pages on first touch, so
//! a VRF with a handful of routes commits a few pages of its 64 MiB tbl24, not all of it.
//! Big tables can ask for 2 MiB pages instead: reserved hugetlb pages when the machine has
//! enough free (committed whole at map time, no TLB miss per lookup), else transparent huge
//! pages (committed per touched 2 MiB).

use crate::buffer::free_hugepages;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8};

/// Types for which the all-zero bit pattern is a valid value.
///
/// # Safety
/// Implementors must be valid when every byte is zero.
pub(crate) unsafe trait Zeroable {}
// SAFETY: zero is a valid integer and a valid atomic integer.
unsafe impl Zeroable for AtomicU32 {}
// SAFETY: as above.
unsafe impl Zeroable for AtomicU8 {}
// SAFETY: as above.
unsafe impl Zeroable for u8 {}
// SAFETY: as above.
unsafe impl Zeroable for AtomicU64 {}
// SAFETY: an array of zero-valid elements is zero-valid.
unsafe impl<T: Zeroable, const N: usize> Zeroable for [T; N] {}

const HUGE: usize = 2 << 20;

/// A fixed-length slice of zeroed `T` in its own anonymous mapping.
pub(crate) struct Zeroed<T: Zeroable> {
    map: NonNull<u8>,
    map_len: usize,
    data: NonNull<T>,
    len: usize,
    backing: TableBacking,
}

/// The pages behind a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableBacking {
    /// Reserved 2 MiB hugetlb pages.
    Hugetlb,
    /// 4 KiB pages advised for transparent huge pages.
    Thp,
    /// 4 KiB pages.
    Normal,
}

impl TableBacking {
    pub fn name(self) -> &'static str {
        match self {
            TableBacking::Hugetlb => "hugetlb",
            TableBacking::Thp => "thp",
            TableBacking::Normal => "normal",
        }
    }
}

/// A private anonymous mapping of `len` bytes on reserved hugetlb pages, if the machine has
/// them to spare. Reserved at map time (no MAP_NORESERVE), so a touch can never SIGBUS.
fn map_hugetlb(len: usize) -> Option<NonNull<u8>> {
    // Leave a quarter of the free pages for buffer pools and DPDK that may come later.
    if len.div_ceil(HUGE) > free_hugepages() * 3 / 4 {
        return None;
    }
    // SAFETY: a fresh private anonymous mapping aliases nothing; len is a multiple of 2 MiB
    // (the caller rounds it), as MAP_HUGETLB requires; the result is checked.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_HUGETLB | libc::MAP_HUGE_2MB,
            -1,
            0,
        )
    };
    (p != libc::MAP_FAILED)
        .then(|| NonNull::new(p.cast::<u8>()))
        .flatten()
}

// SAFETY: `Zeroed<T>` owns its mapping like a `Box<[T]>`; sending it or sharing `&` to it is
// exactly as safe as for `Box<[T]>`, which the `T: Send`/`T: Sync` bounds express.
unsafe impl<T: Zeroable + Send> Send for Zeroed<T> {}
// SAFETY: see above.
unsafe impl<T: Zeroable + Sync> Sync for Zeroed<T> {}

impl<T: Zeroable> Zeroed<T> {
    /// Maps `len` zeroed elements. `huge` asks for 2 MiB pages (fewer TLB misses on big
    /// tables): hugetlb when reserved, else transparent huge pages.
    pub(crate) fn new(len: usize, huge: bool) -> Option<Self> {
        let bytes = len.checked_mul(std::mem::size_of::<T>())?.max(1);
        if huge && bytes >= HUGE {
            let map_len = bytes.checked_next_multiple_of(HUGE)?;
            if let Some(map) = map_hugetlb(map_len) {
                // hugetlb mappings are 2 MiB aligned, hence aligned for T.
                return Some(Self {
                    map,
                    map_len,
                    data: map.cast(),
                    len,
                    backing: TableBacking::Hugetlb,
                });
            }
        }
        // Over-map by one huge page so the data can start 2 MiB aligned (THP needs that).
        let map_len = bytes.checked_add(if bytes >= HUGE { HUGE } else { 0 })?;
        // SAFETY: a fresh private anonymous mapping aliases nothing; arguments are valid.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        let map = NonNull::new(p.cast::<u8>())?;
        let off = if bytes >= HUGE {
            (HUGE - (p as usize) % HUGE) % HUGE
        } else {
            0
        };
        // SAFETY: off < HUGE and map_len = bytes + HUGE, so the data stays inside the mapping.
        let data = unsafe { map.as_ptr().add(off) };
        let mut backing = TableBacking::Normal;
        if huge && bytes >= HUGE {
            // SAFETY: the range lies inside our mapping; madvise only changes paging policy.
            // Failure (THP disabled) just leaves 4 KiB pages.
            if unsafe { libc::madvise(data.cast(), bytes, libc::MADV_HUGEPAGE) } == 0 {
                backing = TableBacking::Thp;
            }
        }
        let data = NonNull::new(data.cast::<T>())?;
        Some(Self {
            map,
            map_len,
            data,
            len,
            backing,
        })
    }

    pub(crate) fn backing(&self) -> TableBacking {
        self.backing
    }

    pub(crate) fn as_slice(&self) -> &[T] {
        // SAFETY: `data` is page aligned (so aligned for T), points to `len` zero-initialised
        // (hence valid, `T: Zeroable`) elements owned by `self` for as long as the borrow.
        unsafe { std::slice::from_raw_parts(self.data.as_ptr(), self.len) }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as in `as_slice`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.data.as_ptr(), self.len) }
    }
}

impl<T: Zeroable> std::ops::Deref for Zeroed<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T: Zeroable> Drop for Zeroed<T> {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `new`; no borrow outlives `self`.
        unsafe { libc::munmap(self.map.as_ptr().cast(), self.map_len) };
    }
}

/// Hint the cache to load the line holding `x`.
#[inline(always)]
pub(crate) fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint: it never faults and writes nothing; `x` is a valid reference.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            (x as *const T).cast(),
        )
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// SIMD variants of the DIR-24-8 batch lookup.
///
/// Entry format (see `ip4.rs`): bit 31 = tbl8 group index in the low bits, otherwise the low
/// 30 bits are the leaf and 0 means "no route" (the caller's default leaf is returned).
#[cfg(target_arch = "x86_64")]
pub(crate) mod gather {
    use super::*;
    use std::arch::x86_64::*;

    const EXT: i32 = 1 << 31;
    const LEAF_MASK: i32 = (1 << 30) - 1;
    const TBL24_LEN: usize = 1 << 24;

    /// Checks the table shapes the gathers rely on; returns the largest valid group index.
    fn shapes(tbl24: &[AtomicU32], tbl8: &[AtomicU32]) -> Option<u32> {
        let groups = tbl8.len() / 256;
        // Group indexes must fit the gather's signed 32-bit element index after `<< 8`.
        if tbl24.len() != TBL24_LEN || groups == 0 || groups > (1 << 23) {
            return None;
        }
        Some(groups as u32 - 1)
    }

    /// Looks up the first multiple of 16 addresses with AVX-512; returns how many were done.
    pub(crate) fn lookup_avx512(
        tbl24: &[AtomicU32],
        tbl8: &[AtomicU32],
        default: u32,
        addrs: &[u32],
        out: &mut [u32],
    ) -> usize {
        let Some(max_group) = shapes(tbl24, tbl8) else {
            return 0;
        };
        if !is_x86_feature_detected!("avx512f") {
            return 0;
        }
        let n = addrs.len().min(out.len()) & !15;
        // SAFETY: avx512f was detected at run time just above; the table shapes were checked.
        unsafe {
            avx512(
                tbl24.as_ptr().cast(),
                tbl8.as_ptr().cast(),
                max_group,
                default,
                &addrs[..n],
                &mut out[..n],
            )
        };
        n
    }

    /// Looks up the first multiple of 8 addresses with AVX2; returns how many were done.
    pub(crate) fn lookup_avx2(
        tbl24: &[AtomicU32],
        tbl8: &[AtomicU32],
        default: u32,
        addrs: &[u32],
        out: &mut [u32],
    ) -> usize {
        let Some(max_group) = shapes(tbl24, tbl8) else {
            return 0;
        };
        if !is_x86_feature_detected!("avx2") {
            return 0;
        }
        let n = addrs.len().min(out.len()) & !7;
        // SAFETY: avx2 was detected at run time just above; the table shapes were checked.
        unsafe {
            avx2(
                tbl24.as_ptr().cast(),
                tbl8.as_ptr().cast(),
                max_group,
                default,
                &addrs[..n],
                &mut out[..n],
            )
        };
        n
    }

    /// # Safety
    /// `tbl24` points to 2^24 u32.
    #[inline(always)]
    unsafe fn prefetch24(tbl24: *const i32, addrs: &[u32]) {
        for &a in addrs {
            // SAFETY: a >> 8 < 2^24 keeps the reference inside tbl24 (caller's contract).
            super::prefetch(unsafe { &*tbl24.add((a >> 8) as usize) });
        }
    }

    /// # Safety
    /// AVX-512F available; `tbl24` points to 2^24 u32, `tbl8` to `(max_group + 1) * 256` u32,
    /// `max_group < 2^23`; `addrs.len() == out.len()`, a multiple of 16.
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512(
        tbl24: *const i32,
        tbl8: *const i32,
        max_group: u32,
        default: u32,
        addrs: &[u32],
        out: &mut [u32],
    ) {
        let ext = _mm512_set1_epi32(EXT);
        let idx_mask = _mm512_set1_epi32(!EXT);
        let low = _mm512_set1_epi32(0xff);
        let maxg = _mm512_set1_epi32(max_group as i32);
        let leaf = _mm512_set1_epi32(LEAF_MASK);
        let dflt = _mm512_set1_epi32(default as i32);
        let mut i = 0;
        // Prefetches are cheaper to keep in flight than gathers: request the tbl24 lines of a
        // round (and the next) first, so the round's gathers find them arriving.
        prefetch24(tbl24, &addrs[..addrs.len().min(64)]);
        // Four independent vectors per round so the gathers' cache misses overlap.
        while i + 64 <= addrs.len() {
            prefetch24(
                tbl24,
                addrs.get(i + 64..(i + 128).min(addrs.len())).unwrap_or(&[]),
            );
            let mut a = [_mm512_setzero_si512(); 4];
            let mut e = [_mm512_setzero_si512(); 4];
            for k in 0..4 {
                // SAFETY: i + 16k + 16 <= addrs.len(); unaligned load.
                a[k] = unsafe { _mm512_loadu_si512(addrs.as_ptr().add(i + 16 * k).cast()) };
                // SAFETY: indexes are addr >> 8 < 2^24, inside tbl24. Each lane is an aligned
                // 4-byte load, which x86 performs atomically, so racing the writer's atomic
                // stores reads either the old or the new entry, like a Relaxed load; x86 loads
                // are not reordered with later loads, which gives the Acquire the tbl8 step needs.
                e[k] = unsafe { _mm512_i32gather_epi32::<4>(_mm512_srli_epi32::<8>(a[k]), tbl24) };
            }
            for k in 0..4 {
                let m = _mm512_test_epi32_mask(e[k], ext);
                if m != 0 {
                    let g = _mm512_min_epu32(_mm512_and_si512(e[k], idx_mask), maxg);
                    let j = _mm512_or_si512(_mm512_slli_epi32::<8>(g), _mm512_and_si512(a[k], low));
                    // SAFETY: g <= max_group so j < (max_group + 1) * 256, inside tbl8; same
                    // per-lane atomicity argument as for tbl24.
                    e[k] = unsafe { _mm512_mask_i32gather_epi32::<4>(e[k], m, j, tbl8) };
                }
                let miss = _mm512_cmpeq_epi32_mask(e[k], _mm512_setzero_si512());
                let r = _mm512_mask_mov_epi32(_mm512_and_si512(e[k], leaf), miss, dflt);
                // SAFETY: i + 16k + 16 <= out.len(); unaligned store into our exclusive slice.
                unsafe { _mm512_storeu_si512(out.as_mut_ptr().add(i + 16 * k).cast(), r) };
            }
            i += 64;
        }
        while i + 16 <= addrs.len() {
            // SAFETY: as in the unrolled loop above.
            unsafe {
                let a = _mm512_loadu_si512(addrs.as_ptr().add(i).cast());
                let mut e = _mm512_i32gather_epi32::<4>(_mm512_srli_epi32::<8>(a), tbl24);
                let m = _mm512_test_epi32_mask(e, ext);
                if m != 0 {
                    let g = _mm512_min_epu32(_mm512_and_si512(e, idx_mask), maxg);
                    let j = _mm512_or_si512(_mm512_slli_epi32::<8>(g), _mm512_and_si512(a, low));
                    e = _mm512_mask_i32gather_epi32::<4>(e, m, j, tbl8);
                }
                let miss = _mm512_cmpeq_epi32_mask(e, _mm512_setzero_si512());
                let r = _mm512_mask_mov_epi32(_mm512_and_si512(e, leaf), miss, dflt);
                _mm512_storeu_si512(out.as_mut_ptr().add(i).cast(), r);
            }
            i += 16;
        }
    }

    /// # Safety
    /// AVX2 available; same table shapes as `avx512`; lengths equal and a multiple of 8.
    #[target_feature(enable = "avx2")]
    unsafe fn avx2(
        tbl24: *const i32,
        tbl8: *const i32,
        max_group: u32,
        default: u32,
        addrs: &[u32],
        out: &mut [u32],
    ) {
        let idx_mask = _mm256_set1_epi32(!EXT);
        let low = _mm256_set1_epi32(0xff);
        let maxg = _mm256_set1_epi32(max_group as i32);
        let leaf = _mm256_set1_epi32(LEAF_MASK);
        let dflt = _mm256_set1_epi32(default as i32);
        let zero = _mm256_setzero_si256();
        let mut i = 0;
        prefetch24(tbl24, &addrs[..addrs.len().min(32)]);
        while i + 32 <= addrs.len() {
            prefetch24(
                tbl24,
                addrs.get(i + 32..(i + 64).min(addrs.len())).unwrap_or(&[]),
            );
            let mut a = [zero; 4];
            let mut e = [zero; 4];
            for k in 0..4 {
                // SAFETY: in bounds (i + 8k + 8 <= len); tbl24 indexes < 2^24; per-lane
                // atomicity as argued in `avx512`.
                unsafe {
                    a[k] = _mm256_loadu_si256(addrs.as_ptr().add(i + 8 * k).cast());
                    e[k] = _mm256_i32gather_epi32::<4>(tbl24, _mm256_srli_epi32::<8>(a[k]));
                }
            }
            for k in 0..4 {
                let m = _mm256_cmpgt_epi32(zero, e[k]); // sign bit = EXT
                if _mm256_movemask_ps(_mm256_castsi256_ps(m)) != 0 {
                    let g = _mm256_min_epu32(_mm256_and_si256(e[k], idx_mask), maxg);
                    let j = _mm256_or_si256(_mm256_slli_epi32::<8>(g), _mm256_and_si256(a[k], low));
                    // SAFETY: g <= max_group, so j indexes inside tbl8.
                    e[k] = unsafe { _mm256_mask_i32gather_epi32::<4>(e[k], tbl8, j, m) };
                }
                let miss = _mm256_cmpeq_epi32(e[k], zero);
                let r = _mm256_blendv_epi8(_mm256_and_si256(e[k], leaf), dflt, miss);
                // SAFETY: i + 8k + 8 <= out.len().
                unsafe { _mm256_storeu_si256(out.as_mut_ptr().add(i + 8 * k).cast(), r) };
            }
            i += 32;
        }
        while i + 8 <= addrs.len() {
            // SAFETY: as in the unrolled loop above.
            unsafe {
                let a = _mm256_loadu_si256(addrs.as_ptr().add(i).cast());
                let mut e = _mm256_i32gather_epi32::<4>(tbl24, _mm256_srli_epi32::<8>(a));
                let m = _mm256_cmpgt_epi32(zero, e);
                if _mm256_movemask_ps(_mm256_castsi256_ps(m)) != 0 {
                    let g = _mm256_min_epu32(_mm256_and_si256(e, idx_mask), maxg);
                    let j = _mm256_or_si256(_mm256_slli_epi32::<8>(g), _mm256_and_si256(a, low));
                    e = _mm256_mask_i32gather_epi32::<4>(e, tbl8, j, m);
                }
                let miss = _mm256_cmpeq_epi32(e, zero);
                let r = _mm256_blendv_epi8(_mm256_and_si256(e, leaf), dflt, miss);
                _mm256_storeu_si256(out.as_mut_ptr().add(i).cast(), r);
            }
            i += 8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_tables_take_2m_pages_small_ones_do_not() {
        // 64 MiB, the size of a tbl24: 32 hugetlb pages when 3/4 of the free ones cover it.
        let free = free_hugepages();
        let mut t = Zeroed::<AtomicU32>::new(1 << 24, true).unwrap();
        if free * 3 / 4 >= 32 {
            assert_eq!(t.backing(), TableBacking::Hugetlb);
        } else {
            assert_ne!(t.backing(), TableBacking::Hugetlb);
        }
        // Zeroed, writable to the last element, and aligned for the gathers.
        let s = t.as_mut_slice();
        assert_eq!(s.len(), 1 << 24);
        assert_eq!(
            s[(1 << 24) - 1].load(std::sync::atomic::Ordering::Relaxed),
            0
        );
        s[(1 << 24) - 1].store(7, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(s.as_ptr() as usize % 4096, 0);
        let small = Zeroed::<AtomicU32>::new(1 << 24, false).unwrap();
        assert_eq!(small.backing(), TableBacking::Normal);
        let tiny = Zeroed::<u8>::new(100, true).unwrap();
        assert_eq!(tiny.backing(), TableBacking::Normal);
    }
}
