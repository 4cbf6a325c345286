//! A counting global allocator: the largest single allocation and the peak of live heap bytes
//! since the last [`reset`], so a target can assert memory stays proportional to its input
//! (libFuzzer's own `-malloc_limit_mb` needs sanitizer malloc hooks, which `-s none` lacks).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering::Relaxed};

pub struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);
static BASE: AtomicIsize = AtomicIsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let live = LIVE.fetch_add(by as isize, Relaxed) + by as isize;
    PEAK.fetch_max(live, Relaxed);
    LARGEST.fetch_max(by, Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged (so System's
// guarantees are ours); the counting beside it only touches atomics and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        grew(l.size());
        System.alloc(l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        grew(l.size());
        System.alloc_zeroed(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Relaxed);
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_sub(l.size() as isize, Relaxed);
        grew(new);
        System.realloc(p, l, new)
    }
}

/// Start a measurement.
pub fn reset() {
    let live = LIVE.load(Relaxed);
    BASE.store(live, Relaxed);
    PEAK.store(live, Relaxed);
    LARGEST.store(0, Relaxed);
}

/// `(largest single allocation, peak live bytes above the level at reset)`.
pub fn usage() -> (usize, usize) {
    let peak = PEAK.load(Relaxed) - BASE.load(Relaxed);
    (LARGEST.load(Relaxed), peak.max(0) as usize)
}

/// Panic if the measurement exceeds `factor * input_len + slack` bytes.
pub fn check(what: &str, input_len: usize, factor: usize, slack: usize) {
    let (largest, peak) = usage();
    let limit = input_len.saturating_mul(factor).saturating_add(slack);
    assert!(
        largest <= limit && peak <= limit,
        "{what}: {input_len}-byte input allocated {largest} bytes at once, peak {peak} live (limit {limit})"
    );
}
