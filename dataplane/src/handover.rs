//! A send sequence that a live restart can split between two processes: WireGuard's send
//! counter and ESP's outbound sequence number are both this, with their own reserve, jump and
//! end (`wireguard::session`, `ipsec::sa`).
//!
//! The sequence counts positions: `next` takes the next one (WireGuard sends position p as
//! counter p, ESP as sequence number p + 1, as ESP numbers from 1). The old process keeps
//! `RESERVE` more positions after the hand-over, the new one starts past them, and a failed
//! take-over moves the old one `JUMP` past what it gave away, so no position is used twice.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Why [`SendSeq::next`] gave no position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A live restart gave the next positions to the new process.
    HandedOver,
    /// The whole space is used (WireGuard's reject-after count, ESP's rollover).
    Exhausted,
}

/// An atomic send sequence with a limit. `RESERVE`: positions the old process of a live restart
/// may still use after [`Self::hand_over`]; `JUMP`: how far [`Self::take_back`] moves past the
/// positions handed over.
pub struct SendSeq<const RESERVE: u64, const JUMP: u64> {
    /// Positions used: the next send takes this one.
    used: AtomicU64,
    /// Positions from here on are not this process's to use: `end`, or lower while a live
    /// restart's new process holds them.
    limit: AtomicU64,
    /// A hand-over is in force (set before `limit` is lowered, cleared after it is restored).
    handed: AtomicBool,
    /// The space's size: positions `0..end`.
    end: u64,
}

impl<const RESERVE: u64, const JUMP: u64> SendSeq<RESERVE, JUMP> {
    /// A sequence over positions `0..end`, `used` of them taken.
    pub fn new(used: u64, end: u64) -> Self {
        Self {
            used: AtomicU64::new(used),
            limit: AtomicU64::new(end),
            handed: AtomicBool::new(false),
            end,
        }
    }

    /// The next position, or None when this process may use no more ([`Self::refusal`] says
    /// why). Never runs past the limit, so it never wraps.
    #[inline(always)]
    pub fn next(&self) -> Option<u64> {
        // `hand_over` lowers the limit right after reading `used`: reaching the positions it
        // gave away takes RESERVE sends in between, long after the store is seen.
        let limit = self.limit.load(Ordering::Relaxed);
        self.used
            // Not then_some: `u + 1` must not be computed at the space's very end.
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                if u < limit {
                    Some(u + 1)
                } else {
                    None
                }
            })
            .ok()
    }

    /// [`Self::next`] with one atomic add instead of a compare-exchange loop: a refused send
    /// still moves `used` on, past the limit. Only for a space that ends far below
    /// `u64::MAX` and that sends alone never reach, as WireGuard's (2^13 short of it): else
    /// refused sends could wrap `used` to 0. ESP takes [`Self::next`] (with ESN its space ends
    /// at `u64::MAX`; without, its rollover is reached).
    #[inline(always)]
    pub fn next_unclamped(&self) -> Option<u64> {
        let u = self.used.fetch_add(1, Ordering::Relaxed);
        // As in next(): hand_over lowers the limit long before the reserve runs out.
        (u < self.limit.load(Ordering::Relaxed)).then_some(u)
    }

    /// Why [`Self::next`] or [`Self::next_unclamped`] refused: handed over while short of the space's end, else exhausted.
    #[cold]
    pub fn refusal(&self) -> Refusal {
        let used = self.used.load(Ordering::Acquire);
        // Acquire: the lowered limit next() saw brings `handed` with it.
        let _ = self.limit.load(Ordering::Acquire);
        if self.handed_over() && used < self.end {
            Refusal::HandedOver
        } else {
            Refusal::Exhausted
        }
    }

    /// Positions used (the next one to take).
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::SeqCst)
    }

    /// Carry on after `used` positions (a live restart's new process before its first send, or
    /// a test near the space's end).
    pub fn set_used(&self, used: u64) {
        self.used.store(used, Ordering::SeqCst);
    }

    /// `by` positions past `from` now, stopping at the space's end.
    fn ahead(&self, from: &AtomicU64, by: u64) -> u64 {
        from.load(Ordering::SeqCst).saturating_add(by).min(self.end)
    }

    /// For a live restart, just before the new process starts sending: the positions from the
    /// returned one on are the new process's ([`Self::skip_to`]). This one may still use
    /// `RESERVE` more (its workers run until the new one is ready), never reaching those.
    /// Undone by [`Self::take_back`].
    pub fn hand_over(&self) -> u64 {
        let first = self.ahead(&self.used, RESERVE);
        self.handed.store(true, Ordering::SeqCst);
        self.limit.fetch_min(first, Ordering::SeqCst);
        first
    }

    /// The new process of a live restart: use positions from `first` on (what the old one's
    /// [`Self::hand_over`] gave), if past where this one is.
    pub fn skip_to(&self, first: u64) {
        self.used.fetch_max(first, Ordering::SeqCst);
    }

    /// A live restart gave this sequence's next positions to another process.
    pub fn handed_over(&self) -> bool {
        self.handed.load(Ordering::Relaxed)
    }

    /// The take-over failed after [`Self::hand_over`]: use positions on from `JUMP` past those
    /// handed over, past anything the new process may have used (never one twice). At the
    /// space's end the jump stops there: the sequence then refuses, as when exhausted.
    pub fn take_back(&self) {
        if self.handed.load(Ordering::SeqCst) {
            let past = self.ahead(&self.limit, JUMP);
            self.used.fetch_max(past, Ordering::SeqCst);
            self.limit.store(self.end, Ordering::SeqCst);
            self.handed.store(false, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A live restart's hand-over in a space of `end` positions: the old holder stops short of
    /// the positions it gave, the new one starts there; a failed take-over uses on past both.
    fn hand_over_then_take_back<const R: u64, const J: u64>(
        end: u64,
        next: fn(&SendSeq<R, J>) -> Option<u64>,
    ) {
        let old = SendSeq::<R, J>::new(0, end);
        for p in 0..110 {
            assert_eq!(next(&old), Some(p));
        }
        let new = SendSeq::<R, J>::new(old.used(), end);
        let first = old.hand_over();
        assert_eq!(first, 110 + R);
        new.skip_to(first);
        assert_eq!(next(&new), Some(first));
        let used: Vec<u64> = std::iter::from_fn(|| next(&old))
            .take(4 * R as usize)
            .collect();
        assert!(
            used == (110..first).collect::<Vec<_>>(),
            "the old holder's last: {} of them, up to {:?}",
            used.len(),
            used.last()
        );
        assert_eq!(next(&old), None);
        assert_eq!(old.refusal(), Refusal::HandedOver);
        assert!(old.handed_over() && !new.handed_over());
        // A take-over that failed: the old holder uses on, past anything the new one used.
        old.take_back();
        assert!(!old.handed_over());
        assert_eq!(old.next(), Some(first + J));
        old.take_back();
        assert_eq!(
            old.next(),
            Some(first + J + 1),
            "nothing to take back twice"
        );
    }

    // WireGuard's: reserve 1024, jump 2^40, end REJECT_AFTER_MESSAGES.
    #[test]
    fn handed_over_positions_are_never_used_twice_wireguard() {
        hand_over_then_take_back::<1024, { 1 << 40 }>(u64::MAX - (1 << 13), |s| s.next_unclamped());
    }

    // ESP's: reserve 512, jump 2^28, with ESN and without.
    #[test]
    fn handed_over_positions_are_never_used_twice_esp() {
        hand_over_then_take_back::<512, { 1 << 28 }>(u64::MAX, SendSeq::next);
        hand_over_then_take_back::<512, { 1 << 28 }>(u32::MAX as u64, SendSeq::next);
    }

    #[test]
    fn the_last_position_is_used_once_then_refused_without_running_past() {
        for end in [u32::MAX as u64, u64::MAX - (1 << 13), u64::MAX] {
            let s = SendSeq::<512, { 1 << 28 }>::new(end - 1, end);
            assert_eq!(s.next(), Some(end - 1));
            assert_eq!(s.next(), None);
            assert_eq!(s.next(), None);
            assert_eq!((s.used(), s.refusal()), (end, Refusal::Exhausted));
        }
        // The unclamped claim refuses there too, though it counts its refusals.
        let end = u64::MAX - (1 << 13);
        let s = SendSeq::<1024, { 1 << 40 }>::new(end - 1, end);
        assert_eq!(s.next_unclamped(), Some(end - 1));
        assert_eq!(s.next_unclamped(), None);
        assert_eq!((s.used(), s.refusal()), (end + 1, Refusal::Exhausted));
    }

    #[test]
    fn near_the_end_a_hand_over_and_a_failed_take_over_stop_at_the_end() {
        let end = u32::MAX as u64;
        let s = SendSeq::<512, { 1 << 28 }>::new(end - 5000, end);
        assert_eq!(s.hand_over(), end - 5000 + 512);
        s.take_back();
        assert_eq!((s.next(), s.refusal()), (None, Refusal::Exhausted));
        // Closer than the reserve: the old holder keeps the rest of the space.
        let s = SendSeq::<512, { 1 << 28 }>::new(end - 10, end);
        assert_eq!(s.hand_over(), end);
        assert!(s.handed_over());
        assert_eq!(std::iter::from_fn(|| s.next()).count(), 10);
        assert_eq!(
            s.refusal(),
            Refusal::Exhausted,
            "the space's end, not the hand-over"
        );
    }
}
