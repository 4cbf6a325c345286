//! Transport keys as the workers use them: a keypair's ciphers, its send counter and its
//! anti-replay window, all atomics so that every worker can send and receive on one keypair
//! without a lock.
//!
//! The data path's ChaCha20-Poly1305 is ring's (assembly): under callgrind, a 64 B packet's
//! seal + open is 2.5k instructions with it against 12.4k with the chacha20poly1305 crate,
//! 17.5k against 28.8k at 1400 B (`rvpp-bench wireguard --batches 40`, bench/README.md). The
//! handshake keeps the RustCrypto crates (XChaCha20 for cookies is not in ring).

use super::noise::{SessionKeys, TAG_LEN};
use crate::handover::{Refusal, SendSeq};
use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, CHACHA20_POLY1305};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A counter nonce: 4 zero bytes, then the counter little-endian.
#[inline(always)]
fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    Nonce::assume_unique_for_key(n)
}

fn key(k: &[u8; 32]) -> LessSafeKey {
    // The only failure is a key of the wrong length, which a [u8; 32] is not.
    LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, k).expect("a 32-byte key"))
}

/// The whitepaper's §6.1 timers and limits (milliseconds, messages).
pub const REKEY_AFTER_MESSAGES: u64 = 1 << 60;
pub const REJECT_AFTER_MESSAGES: u64 = u64::MAX - (1 << 13);
pub const REKEY_AFTER_TIME_MS: u64 = 120_000;
pub const REJECT_AFTER_TIME_MS: u64 = 180_000;
pub const REKEY_ATTEMPT_TIME_MS: u64 = 90_000;
pub const REKEY_TIMEOUT_MS: u64 = 5_000;
pub const KEEPALIVE_TIMEOUT_MS: u64 = 10_000;
pub const COOKIE_LIFETIME_MS: u64 = 120_000;

/// 64-bit words of a replay window's bitmap.
pub const WORDS: usize = 32;
/// Counters this far behind the highest one seen are still accepted once.
pub const WINDOW: u64 = ((WORDS - 1) * 64) as u64;

/// RFC 6479's sliding bitmap, in atomics. Exact when one worker receives a keypair's
/// packets (the peer's one flow hashes to one rx queue); with several, a counter can at worst
/// be accepted twice if two workers move the window in the same instant.
pub struct ReplayWindow {
    /// Highest counter seen + 1 (0: none yet).
    top: AtomicU64,
    bits: [AtomicU64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self {
            top: AtomicU64::new(0),
            bits: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl ReplayWindow {
    /// Worth decrypting: not too old, not seen (a cheap check before the AEAD).
    #[inline(always)]
    pub fn may_accept(&self, c: u64) -> bool {
        if c >= REJECT_AFTER_MESSAGES {
            return false;
        }
        let top = self.top.load(Ordering::Acquire);
        if c >= top {
            return true;
        }
        if top - c > WINDOW {
            return false;
        }
        let bit = 1u64 << (c % 64);
        self.bits[(c / 64) as usize % WORDS].load(Ordering::Relaxed) & bit == 0
    }

    /// Record `c` (after it authenticated); false if it was seen before or is too old.
    #[inline(always)]
    pub fn mark(&self, c: u64) -> bool {
        let mut top = self.top.load(Ordering::Acquire);
        while c >= top {
            match self
                .top
                .compare_exchange_weak(top, c + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    if top > 0 {
                        let last = c / 64;
                        let first =
                            ((top - 1) / 64 + 1).max((last + 1).saturating_sub(WORDS as u64));
                        for w in first..=last {
                            self.bits[w as usize % WORDS].store(0, Ordering::Relaxed);
                        }
                    }
                    break;
                }
                Err(t) => top = t,
            }
        }
        let top = self.top.load(Ordering::Acquire);
        if top - c > WINDOW {
            return false;
        }
        let bit = 1u64 << (c % 64);
        self.bits[(c / 64) as usize % WORDS].fetch_or(bit, Ordering::AcqRel) & bit == 0
    }

    /// The window as it stands (highest counter + 1, the bitmap), for a live restart.
    pub fn state(&self) -> (u64, [u64; WORDS]) {
        let top = self.top.load(Ordering::Acquire);
        (
            top,
            std::array::from_fn(|i| self.bits[i].load(Ordering::Relaxed)),
        )
    }

    /// A window as [`Self::state`] gave it.
    pub fn from_state(top: u64, bits: [u64; WORDS]) -> Self {
        Self {
            top: AtomicU64::new(top),
            bits: bits.map(AtomicU64::new),
        }
    }
}

/// Counters the old process of a live restart may still send on once the new one is about to
/// poll its devices (until its own workers stop); the new one starts past them. Half of rvpp's own
/// window (wireguard-go's and Linux's are 8128), so that a peer still accepts the old
/// process's last packets after the new one's first.
pub const HANDOVER_RESERVE: u64 = 1024;
/// How far a keypair's counter jumps when a take-over fails after its capture: past whatever
/// the new process may have sent (2^40 packets is hours at any rate rvpp forwards).
pub const HANDOVER_ABANDONED_JUMP: u64 = 1 << 40;

/// A keypair's send counter: counter p is position p of the sequence.
type SendCounter = SendSeq<HANDOVER_RESERVE, HANDOVER_ABANDONED_JUMP>;

/// A keypair as a live restart carries it: its keys, when it was made, its send counter,
/// whether the peer confirmed it and the replay window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeypairState {
    pub keys: SessionKeys,
    pub birth_ms: u64,
    pub sent: u64,
    pub confirmed: bool,
    /// Highest received counter + 1, and the window's bitmap.
    pub replay: (u64, [u64; WORDS]),
}

/// One handshake's transport keys, shared by every worker.
pub struct Keypair {
    pub local_index: u32,
    pub remote_index: u32,
    pub initiator: bool,
    /// When the handshake finished (the engine's clock, ms).
    pub birth_ms: u64,
    keys: SessionKeys,
    seal_key: LessSafeKey,
    recv: LessSafeKey,
    /// The send counter: counters below REJECT_AFTER_MESSAGES, or fewer once a live restart
    /// handed the rest to the next process ([`Self::hand_over`]).
    send: SendCounter,
    /// The responder sends on a keypair only once the initiator used it (whitepaper §5.4.5);
    /// the initiator's keypairs are confirmed at birth.
    pub confirmed: AtomicBool,
    pub replay: ReplayWindow,
}

impl Keypair {
    pub fn new(k: &SessionKeys, birth_ms: u64) -> Self {
        Self::resumed(&KeypairState {
            keys: *k,
            birth_ms,
            sent: 0,
            confirmed: k.initiator,
            replay: (0, [0; WORDS]),
        })
    }

    /// A keypair as another process had it, its counters from `s.sent` on.
    pub fn resumed(s: &KeypairState) -> Self {
        let k = &s.keys;
        Self {
            local_index: k.local_index,
            remote_index: k.remote_index,
            initiator: k.initiator,
            birth_ms: s.birth_ms,
            keys: *k,
            seal_key: key(&k.send),
            recv: key(&k.recv),
            send: SendCounter::new(s.sent, REJECT_AFTER_MESSAGES),
            confirmed: AtomicBool::new(s.confirmed),
            replay: ReplayWindow::from_state(s.replay.0, s.replay.1),
        }
    }

    /// For a live restart: this keypair as it stands (its counter the next one unused).
    pub fn state(&self) -> KeypairState {
        KeypairState {
            keys: self.keys,
            birth_ms: self.birth_ms,
            sent: self.send.used(),
            confirmed: self.confirmed.load(Ordering::Relaxed),
            replay: self.replay.state(),
        }
    }

    /// For a live restart, just before the next process starts sending: its counters from the
    /// returned one on are the next process's. This one may still send [`HANDOVER_RESERVE`]
    /// more (its workers run until the next one is ready), never reaching those. Undone by
    /// [`Self::take_back`].
    pub fn hand_over(&self) -> u64 {
        self.send.hand_over()
    }

    /// The next process of a live restart: send from `first` on (what the old one's
    /// [`Self::hand_over`] gave), if past where this one is.
    pub fn skip_to(&self, first: u64) {
        self.send.skip_to(first);
    }

    /// A live restart gave this keypair's next counters to another process.
    pub fn handed_over(&self) -> bool {
        self.send.handed_over()
    }

    /// The take-over failed after [`Self::hand_over`]: send on, from past anything the next
    /// process may have used (never a counter twice).
    pub fn take_back(&self) {
        self.send.take_back();
    }

    /// Too old to send or receive on.
    #[inline(always)]
    pub fn expired(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.birth_ms) >= REJECT_AFTER_TIME_MS
    }

    /// Old enough that its initiator should start a new handshake.
    #[inline(always)]
    pub fn wants_rekey(&self, now_ms: u64, counter: u64) -> bool {
        counter >= REKEY_AFTER_MESSAGES
            || (self.initiator && now_ms.saturating_sub(self.birth_ms) >= REKEY_AFTER_TIME_MS)
    }

    /// The next send counter, or None when the keypair has sent all it may (or all a live
    /// restart left this process: [`Self::refusal`] tells which).
    #[inline(always)]
    pub fn next_counter(&self) -> Option<u64> {
        // Unclamped (one atomic add): the space ends 2^13 short of u64::MAX.
        self.send.next_unclamped()
    }

    /// Why [`Self::next_counter`] gave none.
    #[cold]
    pub fn refusal(&self) -> Refusal {
        self.send.refusal()
    }

    pub fn sent(&self) -> u64 {
        self.send.used()
    }

    /// Encrypt `buf` in place under `counter`; the tag to append.
    #[inline(always)]
    pub fn seal(&self, counter: u64, buf: &mut [u8]) -> [u8; TAG_LEN] {
        let mut t = [0u8; TAG_LEN];
        // Fails only for a plaintext beyond 256 GiB, which a buffer never is.
        if let Ok(tag) = self
            .seal_key
            .seal_in_place_separate_tag(nonce(counter), Aad::empty(), buf)
        {
            t.copy_from_slice(tag.as_ref());
        }
        t
    }

    /// Decrypt `buf` in place under `counter` if `tag` authenticates it.
    #[inline(always)]
    pub fn open(&self, counter: u64, buf: &mut [u8], tag: &[u8; TAG_LEN]) -> bool {
        self.recv
            .open_in_place_separate_tag(nonce(counter), Aad::empty(), Tag::from(*tag), buf, 0..)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_accepts_each_counter_once_and_refuses_the_too_old() {
        let w = ReplayWindow::default();
        assert!(w.mark(0));
        assert!(!w.mark(0));
        assert!(w.mark(5));
        assert!(w.mark(3), "out of order inside the window");
        assert!(!w.may_accept(3));
        assert!(w.may_accept(4));
        assert!(w.mark(5000));
        assert!(!w.may_accept(5), "behind the window");
        assert!(!w.mark(5));
        assert!(w.mark(5000 - WINDOW + 1));
        assert!(!w.mark(5000 - WINDOW + 1));
        assert!(!w.may_accept(REJECT_AFTER_MESSAGES));
        // A jump beyond the whole bitmap forgets every older bit.
        assert!(w.mark(100_000));
        assert!(w.mark(100_000 - 64));
    }

    fn keys() -> SessionKeys {
        SessionKeys {
            send: [1; 32],
            recv: [2; 32],
            local_index: 1,
            remote_index: 2,
            initiator: false,
        }
    }

    /// A live restart carries a keypair whole: its counter, window, birth and confirmation.
    /// (The counters' split between the two processes is `crate::handover`'s to test.)
    #[test]
    fn a_resumed_keypair_goes_on_where_the_old_one_is() {
        let old = Keypair::new(&keys(), 7);
        for _ in 0..10 {
            old.next_counter().unwrap();
        }
        assert!(old.replay.mark(3));
        let st = old.state();
        assert_eq!(st.sent, 10);
        assert!(
            !st.confirmed,
            "a responder's keypair before its first packet"
        );
        let new = Keypair::resumed(&st);
        assert!(!new.replay.may_accept(3) && new.replay.may_accept(2));
        assert_eq!(new.birth_ms, 7);
        assert_eq!(new.next_counter(), Some(10));
        assert_eq!(old.hand_over(), 10 + HANDOVER_RESERVE);
    }

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let k = SessionKeys {
            send: [1; 32],
            recv: [1; 32],
            local_index: 1,
            remote_index: 2,
            initiator: true,
        };
        let kp = Keypair::new(&k, 0);
        let mut b = *b"sixteen bytes!!!";
        let t = kp.seal(7, &mut b);
        let mut c = b;
        assert!(kp.open(7, &mut c, &t));
        assert_eq!(&c, b"sixteen bytes!!!");
        let mut c = b;
        assert!(!kp.open(8, &mut c, &t), "other counter");
        assert!(kp.expired(REJECT_AFTER_TIME_MS));
        assert!(!kp.expired(REJECT_AFTER_TIME_MS - 1));
    }
}
