//! The inbound anti-replay window (RFC 4303 §3.4.3) with extended sequence numbers
//! (Appendix A), shared by every worker without a lock: packets of one SA can arrive on any
//! worker's queue. Each word of the window is one `AtomicU64` holding a 32-bit block tag (which
//! 32 sequence numbers it covers) and their 32-bit bitmap, so marking a number seen is one CAS
//! that also detects a duplicate that raced it on another worker.

use std::sync::atomic::{AtomicU64, Ordering};

/// Sequence numbers behind the highest seen that are still accepted.
pub const WINDOW: u64 = 1024;
const WORD_BITS: u64 = 32;
/// Enough words that a block within the window is never reused by a newer block.
pub const WORDS: usize = 64;
const _: () = assert!((WORDS as u64 - 1) * WORD_BITS >= WINDOW + WORD_BITS);

pub struct ReplayWindow {
    /// The highest sequence number accepted (64 bits, ESN or not); 0 before the first.
    top: AtomicU64,
    words: [AtomicU64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self {
            top: AtomicU64::new(0),
            words: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

#[inline(always)]
fn slot(seq: u64) -> (usize, u32, u64) {
    let block = seq / WORD_BITS;
    (
        (block % WORDS as u64) as usize,
        block as u32,
        1 << (seq % WORD_BITS),
    )
}

impl ReplayWindow {
    /// For a live restart: the highest number accepted and the words as they stand.
    pub fn state(&self) -> (u64, [u64; WORDS]) {
        (
            self.top.load(Ordering::Acquire),
            std::array::from_fn(|i| self.words[i].load(Ordering::Acquire)),
        )
    }

    /// A live restart's new process: the window as another process's [`Self::state`] gave it
    /// (before any packet of the SA is read here).
    pub fn restore(&self, (top, words): (u64, [u64; WORDS])) {
        for (w, v) in self.words.iter().zip(words) {
            w.store(v, Ordering::Release);
        }
        self.top.store(top, Ordering::Release);
    }

    /// The highest sequence number accepted so far.
    pub fn top(&self) -> u64 {
        self.top.load(Ordering::Relaxed)
    }

    /// The full 64-bit sequence number of a packet carrying the low 32 bits `lo` (RFC 4303
    /// Appendix A2.1: the high half is the window's, or one more/less near a wrap).
    #[inline(always)]
    pub fn infer_esn(&self, lo: u32) -> u64 {
        let top = self.top();
        let (th, tl) = ((top >> 32) as u32, top as u32);
        let w = WINDOW as u32;
        let hi = if tl >= w - 1 {
            if lo >= tl - (w - 1) {
                th
            } else {
                th.wrapping_add(1)
            }
        } else if lo >= tl.wrapping_sub(w - 1) && th > 0 {
            th - 1
        } else {
            th
        };
        ((hi as u64) << 32) | lo as u64
    }

    /// Whether `seq` may be new: not zero, not behind the window, not marked. Read only (the
    /// packet's ICV is checked before [`ReplayWindow::accept`] marks it).
    #[inline(always)]
    pub fn check(&self, seq: u64) -> bool {
        let top = self.top();
        if seq == 0 || (seq <= top && top - seq >= WINDOW) {
            return false;
        }
        if seq > top {
            return true;
        }
        let (i, tag, bit) = slot(seq);
        let w = self.words[i].load(Ordering::Relaxed);
        !((w >> 32) as u32 == tag && w & bit != 0)
    }

    /// Mark `seq` seen (after its ICV verified); false if it was already, or fell behind the
    /// window meanwhile.
    #[inline(always)]
    pub fn accept(&self, seq: u64) -> bool {
        if !self.check(seq) {
            return false;
        }
        let (i, tag, bit) = slot(seq);
        let word = &self.words[i];
        let mut w = word.load(Ordering::Relaxed);
        loop {
            let wtag = (w >> 32) as u32;
            let new = if wtag == tag {
                if w & bit != 0 {
                    return false;
                }
                w | bit
            } else if (tag.wrapping_sub(wtag) as i32) > 0 {
                ((tag as u64) << 32) | bit
            } else {
                // The word already covers a newer block: seq is far behind.
                return false;
            };
            match word.compare_exchange_weak(w, new, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => break,
                Err(cur) => w = cur,
            }
        }
        self.top.fetch_max(seq, Ordering::AcqRel);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_and_old_numbers_are_refused() {
        let r = ReplayWindow::default();
        assert!(!r.accept(0), "sequence 0 is never sent");
        assert!(r.accept(1));
        assert!(!r.accept(1));
        assert!(r.accept(5));
        assert!(r.accept(3), "late but inside the window");
        assert!(!r.check(3));
        assert!(r.accept(5000));
        assert!(!r.accept(5000 - WINDOW), "behind the window");
        assert!(r.accept(5000 - WINDOW + 1));
        assert!(
            r.accept(4000),
            "a word last used for an older block is reused"
        );
        assert!(!r.accept(4000));
    }

    #[test]
    fn every_number_of_a_long_run_accepted_once() {
        let r = ReplayWindow::default();
        for s in 1..20_000u64 {
            // Reordered in pairs.
            let s = if s % 2 == 0 { s - 1 } else { s + 1 };
            assert!(r.accept(s), "{s}");
        }
        // 1..=20_000 were each accepted once (19_999 is never sent: its pair is 20_000).
        for s in 19_000..19_999u64 {
            assert!(!r.accept(s), "{s} replayed");
        }
    }

    #[test]
    fn a_restored_window_refuses_what_the_first_accepted() {
        let a = ReplayWindow::default();
        for s in (1..=3000u64).filter(|s| s % 7 != 0) {
            assert!(a.accept(s));
        }
        let b = ReplayWindow::default();
        b.restore(a.state());
        assert_eq!(b.top(), 3000);
        assert!(!b.check(2999) && !b.check(3000 - WINDOW));
        assert!(b.accept(2996) && !b.accept(2996), "2996 was never received");
        assert!(b.accept(3001));
    }

    #[test]
    fn esn_high_half_follows_the_window_across_a_wrap() {
        let r = ReplayWindow::default();
        assert_eq!(r.infer_esn(7), 7);
        let near = (3u64 << 32) | 0xffff_fff0;
        assert!(r.accept(near));
        assert_eq!(
            r.infer_esn(0xffff_ffe0),
            (3 << 32) | 0xffff_ffe0,
            "just behind"
        );
        assert_eq!(r.infer_esn(2), (4 << 32) | 2, "wrapped: next epoch");
        assert!(r.accept((4 << 32) | 2));
        assert_eq!(
            r.infer_esn(0xffff_fff8),
            (3 << 32) | 0xffff_fff8,
            "late packet of the old epoch"
        );
        assert_eq!(r.infer_esn(100), (4 << 32) | 100);
    }
}
