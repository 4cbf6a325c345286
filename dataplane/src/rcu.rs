//! How tables reach the workers without stopping them.
//!
//! Two tools:
//! - [`Published`]: a snapshot swapped as a whole (interfaces, adjacencies' config, feature arcs).
//!   Workers check one generation counter per dispatch round; the lock is taken only when it moved.
//! - [`GracePeriod`]: for structures updated in place with atomics (the IPv4 FIB), it tells the
//!   single writer when every worker has passed a quiescent point, so retired memory can be reused.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Most worker threads one process runs. Slot 0 is the main thread when it forwards.
pub const MAX_THREADS: usize = 64;

/// A value that the control thread replaces whole while workers read their cached copy.
pub struct Published<T> {
    generation: AtomicU64,
    current: Mutex<Arc<T>>,
}

impl<T> Published<T> {
    pub fn new(value: T) -> Self {
        Self {
            generation: AtomicU64::new(1),
            current: Mutex::new(Arc::new(value)),
        }
    }

    /// Publish a new value. Readers see it at their next [`Snapshot::refresh`].
    pub fn publish(&self, value: T) {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        *cur = Arc::new(value);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The value now published (control side).
    pub fn load(&self) -> Arc<T> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn snapshot(&self) -> Snapshot<T> {
        let cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        Snapshot {
            generation: self.generation.load(Ordering::Acquire),
            value: cur.clone(),
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

impl<T: Default> Default for Published<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

/// A worker's cached copy of a [`Published`] value.
pub struct Snapshot<T> {
    generation: u64,
    value: Arc<T>,
}

impl<T> Snapshot<T> {
    /// Pick up a newer value if one was published. Call once per dispatch round.
    #[inline]
    pub fn refresh(&mut self, from: &Published<T>) -> bool {
        let g = from.generation.load(Ordering::Acquire);
        if g == self.generation {
            return false;
        }
        let cur = from.current.lock().unwrap_or_else(|e| e.into_inner());
        self.value = cur.clone();
        self.generation = from.generation.load(Ordering::Acquire);
        true
    }

    #[inline]
    pub fn get(&self) -> &T {
        &self.value
    }

    pub fn arc(&self) -> &Arc<T> {
        &self.value
    }
}

/// Quiescent-state tracking for in-place updated tables.
///
/// The writer retires memory with `stamp = advance()`; it may reuse it once `is_safe(stamp)`.
/// Each worker calls `quiescent(slot)` between dispatch rounds (holding no table reference) and
/// `offline(slot)` before it sleeps, so an idle worker never holds the writer back.
pub struct GracePeriod {
    epoch: AtomicU64,
    seen: Box<[PaddedU64]>,
}

#[repr(align(64))]
struct PaddedU64(AtomicU64);

const OFFLINE: u64 = u64::MAX;

impl Default for GracePeriod {
    fn default() -> Self {
        Self::new()
    }
}

impl GracePeriod {
    pub fn new() -> Self {
        let seen = (0..MAX_THREADS)
            .map(|_| PaddedU64(AtomicU64::new(OFFLINE)))
            .collect();
        Self {
            epoch: AtomicU64::new(1),
            seen,
        }
    }

    /// Start a new epoch; returns the stamp for memory retired now.
    pub fn advance(&self) -> u64 {
        self.epoch.fetch_add(1, Ordering::AcqRel) + 1
    }

    pub fn current(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// A worker holds no reference into in-place tables right now.
    #[inline]
    pub fn quiescent(&self, slot: usize) {
        let e = self.epoch.load(Ordering::Acquire);
        self.seen[slot].0.store(e, Ordering::Release);
    }

    /// A worker stops reading tables (sleeping or exiting).
    pub fn offline(&self, slot: usize) {
        self.seen[slot].0.store(OFFLINE, Ordering::Release);
    }

    /// Every reader has been quiescent since `stamp` was handed out.
    pub fn is_safe(&self, stamp: u64) -> bool {
        self.seen
            .iter()
            .all(|s| s.0.load(Ordering::Acquire) >= stamp)
    }

    /// Wait (control thread only) until `stamp` is safe.
    pub fn wait_safe(&self, stamp: u64) {
        let mut spins = 0u32;
        while !self.is_safe(stamp) {
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::sleep(std::time::Duration::from_micros(50));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_sees_new_value_only_after_refresh() {
        let p = Published::new(1u32);
        let mut s = p.snapshot();
        assert_eq!(*s.get(), 1);
        p.publish(2);
        assert_eq!(*s.get(), 1);
        assert!(s.refresh(&p));
        assert_eq!(*s.get(), 2);
        assert!(!s.refresh(&p));
    }

    #[test]
    fn grace_period_waits_for_online_readers_only() {
        let gp = GracePeriod::new();
        gp.quiescent(3);
        let stamp = gp.advance();
        assert!(!gp.is_safe(stamp));
        gp.quiescent(3);
        assert!(gp.is_safe(stamp));
        let stamp = gp.advance();
        gp.offline(3);
        assert!(gp.is_safe(stamp));
    }
}
