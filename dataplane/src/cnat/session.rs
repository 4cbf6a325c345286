//! The session table: one table shared by every worker, because return traffic can arrive on
//! another worker's rx queue than the one that created the session.
//!
//! Why shared and not a handoff: a handoff moves every return packet between cores (a ring
//! push, a cache-line transfer of the packet's metadata and data, and a second dispatch),
//! while an established flow here costs one bucket lookup on whichever core it lands on.
//! Lookups never write; writes (new sessions, expiry) are rare next to lookups.
//!
//! Layout: buckets of 8 slots. A bucket's 8 slot headers share one cache line (`hdr`) and hold
//! a per-slot sequence number, an occupied bit and a 24-bit hash tag, so a lookup reads one
//! line to find candidates and touches the slot data only on a tag match. Each key lives in
//! one of two buckets (two hashes). Every word is an atomic: a slot is a seqlock (readers
//! retry when its sequence moved; writers take the slot by CAS on its header, never block and
//! never allocate). No `unsafe`: the memory is `fib::mem::Zeroed`'s.
//!
//! A slot's last word belongs to npol ([`Found::npol`], [`SessionTable::npol_update`]): the
//! verdicts it cached on the session, so a packet cnat found the session of is judged by
//! what cnat's lookup already read. Its top [`GEN_BITS`] bits are the slot's generation,
//! written by every insert with nothing else, so a verdict is never read from nor written
//! into a session that was freed and reused under it. The meta word (time, class, flags)
//! holds the same generation, so cnat-output's "no SNAT" mark, one CAS on that word, fails
//! on an entry that took the slot after the one it judged.

use crate::fib::mem::{prefetch, Zeroed};
use crate::wire::{csum_delta, csum_delta_add, csum_delta_small};
use std::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// `n` zeroed entries (empty slots), on 2 MiB pages when big: at 1M sessions the table is
/// hundreds of MiB, and on 4 KiB pages nearly every lookup would miss the TLB as well.
fn zeroed<T: crate::fib::mem::Zeroable>(n: usize) -> Zeroed<T> {
    Zeroed::new(n, true).expect("mapping the session table")
}

/// Writes one word in every 4 KiB page of a table, so its memory is committed when the
/// table is made: new flows land in random buckets, and without this RSS climbs page by page
/// (2 MiB at a time on THP) for as long as the daemon runs, which looks like a leak.
fn prefault<const W: usize>(t: &[[AtomicU64; W]]) {
    let stride = (4096 / std::mem::size_of::<[AtomicU64; W]>()).max(1);
    for e in t.iter().step_by(stride) {
        e[0].store(0, Ordering::Relaxed);
    }
}

const SLOTS_PER_BUCKET: usize = 8;
const WORDS: usize = 12;
/// The npol word's index in a slot.
const NPOL_WORD: usize = 11;
/// The npol word's generation: its top bits, from the slot's sequence at insert (which moves
/// on by 4 each time the slot is freed and taken again).
pub const GEN_BITS: u32 = 16;
const GEN_SHIFT: u32 = 64 - GEN_BITS;
/// The npol word's bits below the generation, which npol owns.
pub const NPOL_MASK: u64 = (1 << GEN_SHIFT) - 1;
const OCC: u64 = 1 << 32;
const SEQ_MASK: u64 = 0xffff_ffff;
/// A slot's meta word: time (bits 0-31), DYING (32), the SNAT mark (33-41), the slot's
/// generation (42-57), flags (58-61) and class (62-63: on top, reading it takes no mask, as
/// when it was a byte; a mask cost an established packet one instruction).
const CLASS_SHIFT: u32 = 62;
const CLASS_MASK: u64 = 0x3;
const FLAGS_SHIFT: u32 = 58;
const FLAGS_MASK: u64 = 0xf;
const _: () = assert!(class::TCP_CLOSING as u64 <= CLASS_MASK);
const _: () =
    assert!((sflags::RETURN | sflags::OWNS_PORT | sflags::PEER_OUTPUT) as u64 <= FLAGS_MASK);
/// The SNAT epoch in which cnat-output found the flow needs no SNAT (0: not decided). Kept
/// by `touch`, reset by a new insert. Epochs wrap after this many SNAT edits, and every mark
/// is cleared then ([`SessionTable::clear_snat_marks`]), so an old mark never looks current.
const SNAT_SHIFT: u32 = 33;
pub const SNAT_EPOCH_MAX: u16 = 0x1ff;
const SNAT_BITS: u64 = (SNAT_EPOCH_MAX as u64) << SNAT_SHIFT;
/// The generation again (the npol word's), so a CAS on the meta word fails on an entry that
/// reused the slot: a mark cannot land on another entry than the one it was decided for.
const META_GEN_SHIFT: u32 = 42;
const META_GEN_BITS: u64 = ((1 << GEN_BITS) - 1) << META_GEN_SHIFT;
/// Set in a meta word while its entry is being expired.
const DYING: u64 = 1 << 32;
const _: () = assert!(
    DYING & SNAT_BITS == 0
        && SNAT_BITS & META_GEN_BITS == 0
        && META_GEN_BITS & (FLAGS_MASK << FLAGS_SHIFT) == 0
        && (FLAGS_MASK << FLAGS_SHIFT) & (CLASS_MASK << CLASS_SHIFT) == 0
        && CLASS_SHIFT + 2 == 64
        && META_GEN_BITS >> META_GEN_SHIFT == (1 << GEN_BITS) - 1
);
/// A packed key word's IPv6 bit ([`FlowKey::packed`]).
const IP6_BIT: u64 = 1 << 17;
/// Entries a key's first bucket takes before inserts weigh its second.
const FIRST_BUCKET_FILL: usize = 6;
/// How long an insert waits for a later claim of its key's tag to be resolved (it takes a
/// few dozen stores) before it gives up its own slot.
const CLAIM_WAIT_SPINS: usize = 256;

/// Which side of the graph a key is looked up on: the input nodes (DNAT, un-NAT of return
/// traffic) or the output nodes (SNAT).
pub mod stage {
    pub const INPUT: u8 = 0;
    pub const OUTPUT: u8 = 1;
}

/// The timeout classes; their lengths are configuration ([`Timeouts`]).
pub mod class {
    pub const GENERIC: u8 = 0;
    pub const TCP_ESTABLISHED: u8 = 1;
    pub const TCP_CLOSING: u8 = 2;
}

/// Session flags.
pub mod sflags {
    /// A return entry (rewrites traffic coming back to the client).
    pub const RETURN: u8 = 1;
    /// This entry owns the SNAT port in its rewrite's source: free it when the entry goes.
    pub const OWNS_PORT: u8 = 2;
    /// The peer entry (the other direction) is looked up on the output stage.
    pub const PEER_OUTPUT: u8 = 4;
}

/// Timeouts in seconds (cnat's defaults: 30 s, TCP established 3600 s, 5 s after FIN/RST).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub generic: u32,
    pub tcp_established: u32,
    pub tcp_closing: u32,
    /// ClientIP affinity: how long a client keeps its backend after its last new flow
    /// (Kubernetes' default 10800 s).
    pub affinity: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            generic: 30,
            tcp_established: 3600,
            tcp_closing: 5,
            affinity: 10800,
        }
    }
}

impl Timeouts {
    pub fn of(&self, class: u8) -> u32 {
        match class {
            class::TCP_ESTABLISHED => self.tcp_established,
            class::TCP_CLOSING => self.tcp_closing,
            _ => self.generic,
        }
    }
}

/// A flow as the table keys it: the 5-tuple (IPv4 addresses as v4-mapped u128; ICMP echo
/// ids in both ports), the FIB index and the stage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: u128,
    pub dst: u128,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub ip6: bool,
    pub stage: u8,
    pub fib: u16,
}

impl FlowKey {
    #[inline(always)]
    fn packed(&self) -> u64 {
        (self.sport as u64) << 48
            | (self.dport as u64) << 32
            | (self.proto as u64) << 24
            | if self.ip6 { IP6_BIT } else { 0 }
            | (self.stage as u64 & 1) << 16
            | self.fib as u64
    }
    #[inline(always)]
    fn unpack(src: u128, dst: u128, w: u64) -> Self {
        Self {
            src,
            dst,
            sport: (w >> 48) as u16,
            dport: (w >> 32) as u16,
            proto: (w >> 24) as u8,
            ip6: w & IP6_BIT != 0,
            stage: ((w >> 16) & 1) as u8,
            fib: w as u16,
        }
    }
    /// The words a slot stores the key in.
    #[inline(always)]
    fn words(&self) -> [u64; 5] {
        [
            (self.src >> 64) as u64,
            self.src as u64,
            (self.dst >> 64) as u64,
            self.dst as u64,
            self.packed(),
        ]
    }
    /// The key's hash, which picks its buckets and tag.
    #[inline(always)]
    pub(crate) fn hash(&self) -> u64 {
        let mut x = (self.src as u64) ^ ((self.src >> 64) as u64).rotate_left(17);
        x ^= ((self.dst as u64) ^ ((self.dst >> 64) as u64).rotate_left(29)).rotate_left(32);
        x ^= self.packed().wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    }
    /// The key of the traffic coming back for a packet rewritten to `rw` (on `stage`).
    pub fn reverse_of(rw: &Rewrite, proto: u8, ip6: bool, fib: u16, stage: u8) -> Self {
        Self {
            src: rw.dst,
            dst: rw.src,
            sport: rw.dport,
            dport: rw.sport,
            proto,
            ip6,
            stage,
            fib,
        }
    }
}

/// What a matching packet's addresses and ports become.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rewrite {
    pub src: u128,
    pub dst: u128,
    pub sport: u16,
    pub dport: u16,
}

/// A session entry's value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Session {
    pub rw: Rewrite,
    /// The translation that created it (u32::MAX: SNAT only).
    pub translation: u32,
    pub flags: u8,
    pub class: u8,
    /// Seconds (the table's clock) of the last packet.
    pub last_seen: u32,
}

/// The one's-complement changes ([`csum_delta`], RFC 1624) a packet of the IPv4 flow `src`,
/// `dst`, `sport`, `dport` takes when rewritten to `rw`: its addresses' in the high 16 bits
/// (the IP header checksum, an offloaded L4 checksum's pseudo-header sum), addresses and ports
/// in the low 16 (a TCP or UDP checksum). An IPv4 entry keeps its own, worked out at insert
/// ([`Found::csum_deltas4`]), so its packets' checksums take one add each.
#[inline(always)]
pub fn csum_deltas4(src: u128, dst: u128, sport: u16, dport: u16, rw: &Rewrite) -> u32 {
    let a = |x: u128| x as u32 as u64;
    let da = csum_delta(a(src) + a(dst), a(rw.src) + a(rw.dst));
    let dp = csum_delta_small(
        sport as u32 + dport as u32,
        rw.sport as u32 + rw.dport as u32,
    );
    (da as u32) << 16 | csum_delta_add(da, dp) as u32
}

/// Where a found entry is, to refresh it without a second lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    pub slot: usize,
    pub session: Session,
    /// An IPv4 entry's [`csum_deltas4`] for its key and rewrite (an IPv6 entry: meaningless).
    /// It is kept in the word of its rewrite source's high 64 bits, which v4-mapped
    /// addresses leave 0: an IPv4 entry's rewrite reads back with those bits 0.
    pub csum_deltas4: u32,
    meta_word: u64,
    /// The npol word, read with the entry: its generation and what npol cached on it.
    pub npol: u64,
    /// The slot's header as the entry was read: it changes when the entry is removed or
    /// its slot retaken ([`SessionTable::holds`]).
    pub(crate) header: u64,
}

impl Found {
    /// The SNAT epoch cnat-output marked the entry's "no SNAT" in (0: none).
    #[inline(always)]
    pub fn snat_epoch(&self) -> u16 {
        ((self.meta_word & SNAT_BITS) >> SNAT_SHIFT) as u16
    }
}

/// Where an insert put its entry: its slot and npol word (the new generation, no verdict).
/// Two words, not a whole [`Found`]: returned through memory, a `Found` cost every insert
/// about 20 stores, the return entry's too, which nothing reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Made {
    pub slot: usize,
    pub npol: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertError {
    /// The session limit is reached.
    Full,
    /// Both buckets of the key are full.
    NoSlot,
    /// The key has an entry already.
    Exists,
}

pub struct SessionTable {
    /// Per bucket, its slots' headers: one cache line.
    hdr: Zeroed<[AtomicU64; SLOTS_PER_BUCKET]>,
    data: Zeroed<[AtomicU64; WORDS]>,
    /// Per bucket, how many entries whose first bucket it is live in their second: a miss
    /// reads this instead of the second bucket's line when it is 0 (nearly always, at the
    /// tables' half load).
    spilled: Box<[AtomicU32]>,
    bucket_mask: usize,
    len: AtomicUsize,
    limit: usize,
}

impl SessionTable {
    /// A table of at least `slots` slots (rounded up to a power-of-two number of buckets)
    /// holding at most `limit` sessions.
    pub fn new(slots: usize, limit: usize) -> Self {
        let buckets = slots.div_ceil(SLOTS_PER_BUCKET).next_power_of_two().max(2);
        let n = buckets * SLOTS_PER_BUCKET;
        let (hdr, data) = (zeroed(buckets), zeroed(n));
        prefault(&hdr);
        prefault(&data);
        Self {
            hdr,
            data,
            spilled: (0..buckets).map(|_| AtomicU32::new(0)).collect(),
            bucket_mask: buckets - 1,
            len: AtomicUsize::new(0),
            limit: limit.min(n),
        }
    }

    pub fn capacity(&self) -> usize {
        self.data.len()
    }
    pub fn limit(&self) -> usize {
        self.limit
    }
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A key's two buckets: the first, where it goes while there is room, and the second.
    #[inline(always)]
    fn buckets(&self, h: u64) -> [usize; 2] {
        let a = h as usize & self.bucket_mask;
        let mut b = (h >> 32) as usize & self.bucket_mask;
        if b == a {
            b = (a + 1) & self.bucket_mask;
        }
        [a, b]
    }

    #[inline(always)]
    fn tag(h: u64) -> u64 {
        ((h >> 40) | 1) << 40
    }

    #[inline(always)]
    fn hdr_of(&self, slot: usize) -> &AtomicU64 {
        &self.hdr[slot / SLOTS_PER_BUCKET][slot % SLOTS_PER_BUCKET]
    }

    #[inline(always)]
    fn w(&self, slot: usize, i: usize) -> &AtomicU64 {
        &self.data[slot][i]
    }

    /// Read a slot's key and value as one consistent snapshot, given its header `h`.
    fn read_slot(&self, slot: usize, h: u64) -> Option<(FlowKey, Session, u64)> {
        let w = self.data.get(slot)?;
        let r = |i: usize| w[i].load(Ordering::Relaxed);
        let src = (r(0) as u128) << 64 | r(1) as u128;
        let dst = (r(2) as u128) << 64 | r(3) as u128;
        let key = FlowKey::unpack(src, dst, r(4));
        let rs_hi = if key.ip6 { r(5) } else { 0 };
        let rs = (rs_hi as u128) << 64 | r(6) as u128;
        let rd = (r(7) as u128) << 64 | r(8) as u128;
        let (p, m) = (r(9), r(10));
        fence(Ordering::Acquire);
        if self.hdr_of(slot).load(Ordering::Relaxed) != h {
            return None;
        }
        Some((key, decode(rs, rd, p, m), m))
    }

    /// The entry for `k`. Lock-free: one header line per bucket is scanned for the tag; the
    /// key words are compared before the value is read; a slot being written is retried a
    /// few times, then treated as absent. Always inlined, as [`Self::lookup_hashed`] is: when
    /// npol's classifier grew, the compiler put it out of line in npol-rx, +55 instructions a
    /// packet there.
    #[inline(always)]
    pub fn lookup(&self, k: &FlowKey) -> Option<Found> {
        self.lookup_hashed(k, k.hash())
    }

    /// [`Self::lookup`] with `h == k.hash()`. Inlined into the callers, so the found entry
    /// stays in registers (out of line, returning it cost about 80 instructions a packet).
    #[inline(always)]
    pub(crate) fn lookup_hashed(&self, k: &FlowKey, h: u64) -> Option<Found> {
        let want = Self::tag(h) | OCC;
        let kw = k.words();
        let [a, b] = self.buckets(h);
        if let Some(f) = self.probe(a, want, &kw) {
            return Some(f);
        }
        if self.spilled[a].load(Ordering::Acquire) == 0 {
            return None;
        }
        self.probe(b, want, &kw)
    }

    /// Start loading what a lookup of a key hashed `h` reads first: its first bucket's header
    /// line, and the spill count a miss reads. Nodes call it before the packet's turn.
    #[inline(always)]
    pub(crate) fn prefetch_bucket(&self, h: u64) {
        let a = h as usize & self.bucket_mask;
        if let (Some(hd), Some(sp)) = (self.hdr.get(a), self.spilled.get(a)) {
            prefetch(hd);
            prefetch(sp);
        }
    }

    /// Once the bucket's header line is in (after [`Self::prefetch_bucket`]):
    /// start loading the entry whose tag matches, both lines of it. Nothing on no match.
    #[inline(always)]
    pub(crate) fn prefetch_entry(&self, h: u64) {
        let want = Self::tag(h) | OCC;
        let a = h as usize & self.bucket_mask;
        let Some(hdrs) = self.hdr.get(a) else { return };
        if let Some(i) = hdrs
            .iter()
            .position(|hd| hd.load(Ordering::Relaxed) & !SEQ_MASK == want)
        {
            if let Some(w) = self.data.get(a * SLOTS_PER_BUCKET + i) {
                prefetch(&w[0]);
                prefetch(&w[WORDS - 1]);
            }
        }
    }

    #[inline(always)]
    fn probe(&self, bucket: usize, want: u64, kw: &[u64; 5]) -> Option<Found> {
        let hdrs = self.hdr.get(bucket)?;
        for (i, hd) in hdrs.iter().enumerate() {
            let hv = hd.load(Ordering::Acquire);
            if hv & !SEQ_MASK != want {
                continue;
            }
            let slot = bucket * SLOTS_PER_BUCKET + i;
            if let Some(f) = self.read_if_key(slot, hd, hv, kw) {
                return Some(f);
            }
        }
        None
    }

    /// The entry in `slot` (header `hd`, read as `hv`) if it holds the key `kw`.
    #[inline(always)]
    fn read_if_key(
        &self,
        slot: usize,
        hd: &AtomicU64,
        mut hv: u64,
        kw: &[u64; 5],
    ) -> Option<Found> {
        let w = self.data.get(slot)?;
        let r = |j: usize| w[j].load(Ordering::Relaxed);
        for _ in 0..4 {
            if hv & 1 == 0 {
                if r(0) != kw[0] || r(1) != kw[1] || r(2) != kw[2] || r(3) != kw[3] || r(4) != kw[4]
                {
                    return None;
                }
                let w5 = r(5);
                let rs_hi = if kw[4] & IP6_BIT != 0 { w5 } else { 0 };
                let rs = (rs_hi as u128) << 64 | r(6) as u128;
                let rd = (r(7) as u128) << 64 | r(8) as u128;
                let (p, m, nw) = (r(9), r(10), r(NPOL_WORD));
                fence(Ordering::Acquire);
                let now = hd.load(Ordering::Relaxed);
                if now == hv {
                    return Some(Found {
                        slot,
                        session: decode(rs, rd, p, m),
                        csum_deltas4: w5 as u32,
                        meta_word: m,
                        npol: nw,
                        header: now,
                    });
                }
                if now & !SEQ_MASK != hv & !SEQ_MASK {
                    return None;
                }
                hv = now;
            } else {
                std::hint::spin_loop();
                hv = hd.load(Ordering::Acquire);
            }
        }
        None
    }

    /// Whether `slot` still holds the entry a lookup read with `header` ([`Found::header`]):
    /// a remove, an expiry attempt or a new entry in the slot moves the header's sequence.
    #[inline(always)]
    pub(crate) fn holds(&self, slot: usize, header: u64) -> bool {
        self.hdr
            .get(slot / SLOTS_PER_BUCKET)
            .is_some_and(|h| h[slot % SLOTS_PER_BUCKET].load(Ordering::Acquire) == header)
    }

    /// Record a packet on a found entry: its time and timeout class. One CAS, and only when
    /// either changed; a slot reused meanwhile fails the CAS and is left alone.
    #[inline]
    pub fn touch(&self, f: &Found, now: u32, class: u8) {
        let s = &f.session;
        if s.last_seen == now && s.class == class {
            return;
        }
        let nm = meta(s.flags, class, now) | f.meta_word & (SNAT_BITS | META_GEN_BITS);
        let _ = self.w(f.slot, 10).compare_exchange(
            f.meta_word,
            nm,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Add an entry; returns where it went ([`Made`]), so the packet that made it can hand
    /// its slot on (`CNAT_SESSION`). Lock-free: a slot is claimed with one CAS on its header
    /// (a racing insert of the same key waits at most a bounded spin, [`Self::only_claim`]). An entry in its key's second bucket is counted in the first's `spilled`.
    /// `Exists` also when another writer inserted the key while this one looked for a slot
    /// and found none, or found the table full: the caller then takes that entry.
    pub fn insert(&self, k: &FlowKey, s: &Session) -> Result<Made, InsertError> {
        self.insert_racing(k, s, || {}, || {})
    }

    /// [`Self::insert`], running `between` after it looked for the key and before it takes a
    /// slot, and `claimed` once it holds the slot, before it writes the entry (tests insert
    /// the key there, as another worker would).
    pub(crate) fn insert_racing(
        &self,
        k: &FlowKey,
        s: &Session,
        between: impl FnOnce(),
        claimed: impl FnOnce(),
    ) -> Result<Made, InsertError> {
        if self.lookup(k).is_some() {
            return Err(InsertError::Exists);
        }
        between();
        if self.len.fetch_add(1, Ordering::Relaxed) >= self.limit {
            self.len.fetch_sub(1, Ordering::Relaxed);
            return Err(self.lost_to(k, InsertError::Full));
        }
        let h = k.hash();
        let tag = Self::tag(h);
        let [a, b] = self.buckets(h);
        // The first bucket while it has room to spare; past that the emptier of the two, as
        // one choice alone overfills some buckets (simulated at half load, 2^19 buckets: with
        // the first bucket up to 7 entries some inserts found both full; up to 6, none, and
        // about 5% of entries go to their second bucket).
        let used = |bucket: usize| {
            self.hdr[bucket]
                .iter()
                .filter(|x| x.load(Ordering::Relaxed) & OCC != 0)
                .count()
        };
        let ua = used(a);
        let order = if ua >= FIRST_BUCKET_FILL && used(b) < ua {
            [b, a]
        } else {
            [a, b]
        };
        for bucket in order {
            for (i, hd) in self.hdr[bucket].iter().enumerate() {
                let hv = hd.load(Ordering::Relaxed);
                if hv & (OCC | 1) != 0 {
                    continue;
                }
                let seq = hv & SEQ_MASK;
                // The claim carries the key's tag (no OCC: lookups skip it), so another
                // worker inserting the same key sees it in its own check below.
                let writing = tag | (seq + 1) & SEQ_MASK;
                if hd
                    .compare_exchange(hv, writing, Ordering::SeqCst, Ordering::Relaxed)
                    .is_err()
                {
                    continue;
                }
                claimed();
                let slot = bucket * SLOTS_PER_BUCKET + i;
                if bucket != a {
                    // Before the entry is visible, so a reader who finds 0 has not missed it.
                    self.spilled[a].fetch_add(1, Ordering::SeqCst);
                }
                // Nearly always only this claim has the tag in the first bucket, and nothing
                // of that bucket's spilled: no slot to look at more closely.
                let alone = bucket == a
                    && self.with_tag(a, tag) == 1
                    && self.spilled[a].load(Ordering::SeqCst) == 0;
                let checked = if alone {
                    Ok(())
                } else {
                    self.only_claim(&k.words(), tag, [a, b], slot)
                };
                if let Err(winner) = checked {
                    hd.store((seq + 2) & SEQ_MASK, Ordering::Release);
                    if bucket != a {
                        self.spilled[a].fetch_sub(1, Ordering::AcqRel);
                    }
                    self.len.fetch_sub(1, Ordering::Relaxed);
                    // With our claim given back, wait for the winner's entry to be published,
                    // so the caller's lookup finds it.
                    self.await_claim(winner, tag);
                    return Err(InsertError::Exists);
                }
                fence(Ordering::Release);
                let st = |i, v| self.w(slot, i).store(v, Ordering::Relaxed);
                let kw = k.words();
                for (j, v) in kw.into_iter().enumerate() {
                    st(j, v);
                }
                let w5 = if k.ip6 {
                    (s.rw.src >> 64) as u64
                } else {
                    csum_deltas4(k.src, k.dst, k.sport, k.dport, &s.rw) as u64
                };
                let ports =
                    (s.rw.sport as u64) << 48 | (s.rw.dport as u64) << 32 | s.translation as u64;
                let gen = generation(seq + 2);
                let m = meta(s.flags, s.class, s.last_seen) | gen << META_GEN_SHIFT;
                // A new generation and no verdict: nothing npol cached on the slot's last
                // entry carries over (its CAS, expecting that entry's word, fails).
                let npol = gen << GEN_SHIFT;
                st(5, w5);
                st(6, s.rw.src as u64);
                st(7, (s.rw.dst >> 64) as u64);
                st(8, s.rw.dst as u64);
                st(9, ports);
                st(10, m);
                st(NPOL_WORD, npol);
                hd.store(tag | OCC | ((seq + 2) & SEQ_MASK), Ordering::Release);
                return Ok(Made { slot, npol });
            }
        }
        self.len.fetch_sub(1, Ordering::Relaxed);
        Err(self.lost_to(k, InsertError::NoSlot))
    }

    /// How many of `bucket`'s headers carry `tag` (entries and claims), read SeqCst.
    #[inline(always)]
    fn with_tag(&self, bucket: usize, tag: u64) -> u32 {
        // A header's bits under the tag's are OCC and the sequence: it carries the tag when
        // it differs from it only below bit 40 (a compare the compiler sums with one add).
        self.hdr[bucket]
            .iter()
            .map(|hd| u32::from(hd.load(Ordering::SeqCst) ^ tag < 1 << 40))
            .sum()
    }

    /// Whether the insert holding `mine` (claimed with `tag`) may make `kw`'s entry: no other
    /// slot of the key's buckets `ab` holds the key, or a claim with its tag earlier than
    /// `mine` (bucket `ab[0]` before `ab[1]`, then by index). A later claim with the tag is
    /// waited for (bounded): it yields to this one, or is another key's. Out of line: the
    /// insert calls it only when its quick count of the tag ([`Self::with_tag`]) is not its
    /// own claim alone.
    ///
    /// Two inserts of one key each claim (SeqCst CAS) and then read the other slots
    /// (SeqCst): in the single order of those operations one claim comes first, and the
    /// other insert's reads, after its own claim, see it. So at least one of them sees the
    /// other, and the one that sees an earlier claim, or a finished entry of the key, gives
    /// up its slot; one that sees only a later claim waits until that one is resolved. An
    /// insert into `ab[0]` reads `ab[1]` only while `spilled` says something of `ab[0]`'s is
    /// there: an insert into `ab[1]` counts itself there (SeqCst) before its reads, so if
    /// this one read 0, that one reads after this claim, sees it, earlier, and yields.
    ///
    /// `Err` with the slot to yield to.
    #[cold]
    #[inline(never)]
    fn only_claim(
        &self,
        kw: &[u64; 5],
        tag: u64,
        ab: [usize; 2],
        mine: usize,
    ) -> Result<(), usize> {
        let [a, b] = ab;
        let pos = |slot: usize| (slot / SLOTS_PER_BUCKET != a, slot % SLOTS_PER_BUCKET);
        let scan_b = mine / SLOTS_PER_BUCKET == b || self.spilled[a].load(Ordering::SeqCst) != 0;
        let buckets = if scan_b { &ab[..] } else { &ab[..1] };
        for &bucket in buckets {
            for (i, hd) in self.hdr[bucket].iter().enumerate() {
                let slot = bucket * SLOTS_PER_BUCKET + i;
                let mut hv = hd.load(Ordering::SeqCst);
                if hv & !(SEQ_MASK | OCC) != tag || slot == mine {
                    continue;
                }
                if !self.yields_to(slot, hd, &mut hv, kw, tag, pos(slot) < pos(mine)) {
                    continue;
                }
                return Err(slot);
            }
        }
        Ok(())
    }

    /// Spin (bounded) while `slot` is claimed with `tag` and not yet published.
    #[cold]
    fn await_claim(&self, slot: usize, tag: u64) {
        let hd = self.hdr_of(slot);
        for _ in 0..CLAIM_WAIT_SPINS {
            let hv = hd.load(Ordering::Acquire);
            if hv & OCC != 0 || hv & !(SEQ_MASK | OCC) != tag {
                return;
            }
            std::hint::spin_loop();
        }
    }

    /// Whether an insert of `kw` must yield to `slot` (header `hd`, read as `hv`, with the
    /// key's tag): it holds the key, or a claim `earlier` than the insert's own, or a later
    /// claim still unresolved after a bounded wait.
    #[cold]
    fn yields_to(
        &self,
        slot: usize,
        hd: &AtomicU64,
        hv: &mut u64,
        kw: &[u64; 5],
        tag: u64,
        earlier: bool,
    ) -> bool {
        for _ in 0..CLAIM_WAIT_SPINS {
            if *hv & OCC != 0 {
                return self.read_if_key(slot, hd, *hv, kw).is_some();
            }
            if earlier {
                return true;
            }
            std::hint::spin_loop();
            *hv = hd.load(Ordering::SeqCst);
            if *hv & !(SEQ_MASK | OCC) != tag {
                return false;
            }
        }
        true
    }

    /// What an insert that found no room reports: `Exists` when the key is there now (another
    /// worker inserted it since this one looked), else `e`.
    #[cold]
    fn lost_to(&self, k: &FlowKey, e: InsertError) -> InsertError {
        if self.lookup(k).is_some() {
            InsertError::Exists
        } else {
            e
        }
    }

    /// Record on `slot` that cnat-output decided, in SNAT epoch `epoch`, that the flow needs
    /// no SNAT, as long as the slot is still the entry `seen` (its npol word as a lookup read
    /// it) and not being expired. Lock-free, best effort: false if a race was lost. One CAS
    /// on the meta word, which holds the slot's generation: an entry that took the slot
    /// after `seen`'s was freed has another, and the CAS fails.
    #[inline]
    pub fn snat_mark(&self, slot: usize, seen: u64, epoch: u16) -> bool {
        self.snat_mark_racing(slot, seen, epoch, || {})
    }

    /// [`Self::snat_mark`], running `between` after it read the slot and before it writes
    /// (tests free and reuse the slot there).
    pub(crate) fn snat_mark_racing(
        &self,
        slot: usize,
        seen: u64,
        epoch: u16,
        between: impl FnOnce(),
    ) -> bool {
        let Some(w) = self.data.get(slot) else {
            return false;
        };
        let m = &w[10];
        let cur = m.load(Ordering::Acquire);
        let gen = seen >> GEN_SHIFT;
        if cur & DYING != 0 || (cur & META_GEN_BITS) >> META_GEN_SHIFT != gen {
            return false;
        }
        between();
        let new = cur & !SNAT_BITS | ((epoch & SNAT_EPOCH_MAX) as u64) << SNAT_SHIFT;
        new == cur
            || m.compare_exchange(cur, new, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
    }

    /// Clear every entry's SNAT mark (control, when the SNAT epoch wraps: a mark left from the
    /// last round would match the new epoch). Lock-free beside the workers: a CAS per marked
    /// entry, retried when a packet's `touch` moved the word meanwhile.
    pub fn clear_snat_marks(&self) {
        for (slot, w) in self.data.iter().enumerate() {
            if self.hdr_of(slot).load(Ordering::Relaxed) & OCC != 0 {
                unmark(&w[10], |_| true);
            }
        }
    }

    /// Clear `slot`'s SNAT mark if it is `epoch`'s (a mark taken back).
    pub fn clear_snat_mark(&self, slot: usize, epoch: u16) {
        if let Some(w) = self.data.get(slot) {
            let want = ((epoch & SNAT_EPOCH_MAX) as u64) << SNAT_SHIFT;
            unmark(&w[10], |m| m & SNAT_BITS == want);
        }
    }

    /// Replace npol's bits of `slot`'s npol word by `f(bits)`, as long as the slot's
    /// generation is still that of `seen` (the word as a [`Found`] read it): false when the
    /// entry was freed (and maybe reused) since, or after a few lost races with other
    /// writers. Lock-free: a CAS on the one word; lookups read it either way, both whole.
    pub fn npol_update(&self, slot: usize, seen: u64, f: impl Fn(u64) -> u64) -> bool {
        let Some(w) = self.data.get(slot).map(|w| &w[NPOL_WORD]) else {
            return false;
        };
        let mut cur = w.load(Ordering::Acquire);
        for _ in 0..4 {
            if cur & !NPOL_MASK != seen & !NPOL_MASK {
                return false;
            }
            let new = cur & !NPOL_MASK | f(cur & NPOL_MASK) & NPOL_MASK;
            if new == cur {
                return true;
            }
            match w.compare_exchange(cur, new, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
        false
    }

    /// Free `slot` if it still holds `key` (it may have been freed and reused meanwhile) and,
    /// with `unchanged`, its meta word (time, class, flags) is still that one. The check is
    /// made with the slot's header held, and the meta word is swapped for a dying one, so a
    /// packet's `touch` after that fails instead of being lost in a removed entry.
    fn remove_slot(&self, slot: usize, key: &FlowKey, unchanged: Option<u64>) -> Option<Session> {
        let hd = self.hdr_of(slot);
        loop {
            let hv = hd.load(Ordering::Acquire);
            if hv & OCC == 0 {
                return None;
            }
            if hv & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let (k, s, _) = self.read_slot(slot, hv)?;
            if k != *key {
                return None;
            }
            let seq = hv & SEQ_MASK;
            if hd
                .compare_exchange(
                    hv,
                    (seq + 1) & SEQ_MASK | OCC | (hv & !(SEQ_MASK | OCC)),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_err()
            {
                continue;
            }
            if let Some(m) = unchanged {
                let dying = m | DYING;
                if self
                    .w(slot, 10)
                    .compare_exchange(m, dying, Ordering::AcqRel, Ordering::Relaxed)
                    .is_err()
                {
                    // Touched since it was judged: a live entry again. Release the header
                    // with the sequence moved on, so readers that saw it held retry.
                    hd.store((seq + 2) & SEQ_MASK | (hv & !SEQ_MASK), Ordering::Release);
                    return None;
                }
            }
            hd.store((seq + 2) & SEQ_MASK, Ordering::Release);
            // After the entry is gone, so `spilled` never reads 0 while it is visible.
            let [a, _] = self.buckets(key.hash());
            if slot / SLOTS_PER_BUCKET != a {
                self.spilled[a].fetch_sub(1, Ordering::AcqRel);
            }
            self.len.fetch_sub(1, Ordering::Relaxed);
            return Some(s);
        }
    }

    /// Remove `k`'s entry; returns it.
    pub fn remove(&self, k: &FlowKey) -> Option<Session> {
        let f = self.lookup(k)?;
        self.remove_slot(f.slot, k, None)
    }

    /// Every entry, in slot order (for dumps and scans; not a consistent snapshot of the
    /// whole table, each entry is consistent on its own).
    pub fn for_each(&self, mut f: impl FnMut(usize, &FlowKey, &Session)) {
        self.each_entry(|slot, k, s, _| f(slot, k, s));
    }

    /// [`Self::for_each`] with each entry's meta word, as it was read.
    fn each_entry(&self, mut f: impl FnMut(usize, &FlowKey, &Session, u64)) {
        for slot in 0..self.data.len() {
            let hv = self.hdr_of(slot).load(Ordering::Acquire);
            if hv & OCC == 0 || hv & 1 == 1 {
                continue;
            }
            if let Some((k, s, m)) = self.read_slot(slot, hv) {
                f(slot, &k, &s, m);
            }
        }
    }

    /// Remove every entry for which `doomed` says so; returns what was removed.
    pub fn remove_if(
        &self,
        doomed: impl FnMut(&FlowKey, &Session) -> bool,
    ) -> Vec<(FlowKey, Session)> {
        self.sweep(doomed, false)
    }

    /// [`Self::remove_if`] for idle entries: one a packet touched after `idle` judged it
    /// stays. A scan judges the whole table before it removes anything, and a flow that
    /// reuses a closing session's 5-tuple in that time (a client port reused as its old
    /// session expires) would otherwise lose one direction's entry under it.
    pub fn expire_if(
        &self,
        idle: impl FnMut(&FlowKey, &Session) -> bool,
    ) -> Vec<(FlowKey, Session)> {
        self.sweep(idle, true)
    }

    /// Expire idle flows, a flow's forward and return entries together (VPP's cnat gives both
    /// one timestamp). `judge` decides each entry; `between` runs after the judging, before
    /// anything is removed (the window packets race the scan in; tests put packets there).
    /// A forward entry and its return entry are removed forward first, and neither if either
    /// was touched since it was judged: removed one by one, a packet that touched the forward
    /// entry kept it while its return entry went, and its replies went back untranslated (a
    /// UDP 5-tuple reused just as it expires). A new flow on the 5-tuple between the two
    /// removals replaces the return entry (the node's `insert_return`), which then stays.
    pub fn expire_flows(
        &self,
        mut judge: impl FnMut(&FlowKey, &Session) -> Expiry,
        between: impl FnOnce(),
    ) -> Vec<(FlowKey, Session)> {
        let mut flows: Vec<(Doomed, Option<Doomed>)> = Vec::new();
        let mut after: Vec<(Doomed, FlowKey)> = Vec::new();
        self.each_entry(|slot, k, s, meta| {
            let d = Doomed {
                slot,
                key: *k,
                meta,
            };
            match judge(k, s) {
                Expiry::Keep => {}
                Expiry::Alone => flows.push((d, None)),
                Expiry::WithReturn(rk, r) => flows.push((
                    d,
                    Some(Doomed {
                        slot: r.slot,
                        key: rk,
                        meta: r.meta_word,
                    }),
                )),
                Expiry::AfterForward(fk) => after.push((d, fk)),
            }
        });
        between();
        let mut gone = Vec::new();
        // Forward entries come in slot order, their return entries anywhere: start loading
        // the return entries a few flows ahead, or each is a cache miss (1M entries all idle,
        // `scan_cost_over_a_million_entries`: removed one by one in slot order 510-570 ms; in
        // pairs 670-740 ms without this, 575-625 ms with it).
        const AHEAD: usize = 8;
        let ret_slot = |i: usize| flows.get(i).and_then(|(_, r)| r.as_ref()).map(|r| r.slot);
        for i in 0..AHEAD {
            self.prefetch_slot(ret_slot(i));
        }
        for (i, (fwd, ret)) in flows.iter().enumerate() {
            self.prefetch_slot(ret_slot(i + AHEAD));
            if let Some(r) = ret {
                // A reply since the judging: the flow is live, both entries stay.
                if self.lookup(&r.key).is_some_and(|f| f.meta_word != r.meta) {
                    continue;
                }
            }
            let Some(s) = self.remove_slot(fwd.slot, &fwd.key, Some(fwd.meta)) else {
                continue;
            };
            gone.push((fwd.key, s));
            if let Some(r) = ret {
                if let Some(s) = self.remove_slot(r.slot, &r.key, Some(r.meta)) {
                    gone.push((r.key, s));
                }
            }
        }
        for (ret, fk) in after {
            if self.lookup(&fk).is_none() {
                if let Some(s) = self.remove_slot(ret.slot, &ret.key, Some(ret.meta)) {
                    gone.push((ret.key, s));
                }
            }
        }
        gone
    }

    /// Start loading `slot`'s header and data lines.
    fn prefetch_slot(&self, slot: Option<usize>) {
        let Some(slot) = slot else { return };
        if let (Some(h), Some(w)) = (self.hdr.get(slot / SLOTS_PER_BUCKET), self.data.get(slot)) {
            prefetch(h);
            prefetch(&w[0]);
            prefetch(&w[WORDS - 1]);
        }
    }

    fn sweep(
        &self,
        mut doomed: impl FnMut(&FlowKey, &Session) -> bool,
        only_untouched: bool,
    ) -> Vec<(FlowKey, Session)> {
        let mut hits = Vec::new();
        self.each_entry(|slot, k, s, m| {
            if doomed(k, s) {
                hits.push((slot, *k, m));
            }
        });
        hits.into_iter()
            .filter_map(|(slot, k, m)| {
                let unchanged = only_untouched.then_some(m);
                self.remove_slot(slot, &k, unchanged).map(|s| (k, s))
            })
            .collect()
    }
}

/// What the expiry scan decided for one entry ([`SessionTable::expire_flows`]).
pub enum Expiry {
    /// Live, or a return entry that goes with its forward entry's [`Expiry::WithReturn`].
    Keep,
    /// Idle, and no other entry of its flow: removed if untouched.
    Alone,
    /// An idle forward entry with its idle return entry (key, as found): they go together.
    WithReturn(FlowKey, Found),
    /// An idle return entry whose forward entry (key) is idle but does not lead back to it:
    /// removed if untouched once that forward entry is gone.
    AfterForward(FlowKey),
}

/// An entry the scan judged idle, as it read it.
struct Doomed {
    slot: usize,
    key: FlowKey,
    meta: u64,
}

/// Clear the SNAT mark in the meta word `m` while `which(word)` says so; retried when a
/// packet's `touch` moved the word meanwhile. Sequentially consistent, as
/// [`super::Cnat::mark_no_snat`]'s checks around its mark are.
fn unmark(m: &AtomicU64, which: impl Fn(u64) -> bool) {
    let mut cur = m.load(Ordering::SeqCst);
    while cur & SNAT_BITS != 0 && which(cur) {
        match m.compare_exchange_weak(cur, cur & !SNAT_BITS, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => break,
            Err(now) => cur = now,
        }
    }
}

/// A slot's generation for its sequence number `seq` once inserted.
#[inline(always)]
fn generation(seq: u64) -> u64 {
    (seq >> 2) & ((1 << GEN_BITS) - 1)
}

#[inline(always)]
fn meta(flags: u8, class: u8, last_seen: u32) -> u64 {
    (flags as u64 & FLAGS_MASK) << FLAGS_SHIFT
        | (class as u64 & CLASS_MASK) << CLASS_SHIFT
        | last_seen as u64
}

#[inline(always)]
fn decode(rs: u128, rd: u128, p: u64, m: u64) -> Session {
    Session {
        rw: Rewrite {
            src: rs,
            dst: rd,
            sport: (p >> 48) as u16,
            dport: (p >> 32) as u16,
        },
        translation: p as u32,
        flags: ((m >> FLAGS_SHIFT) & FLAGS_MASK) as u8,
        class: ((m >> CLASS_SHIFT) & CLASS_MASK) as u8,
        last_seen: m as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> FlowKey {
        FlowKey {
            src: 0xffff_c612_0000 | i as u128,
            dst: 0xffff_c613_0001,
            sport: (i % 60000) as u16 + 1,
            dport: 80,
            proto: 6,
            ip6: false,
            stage: stage::INPUT,
            fib: 0,
        }
    }

    fn sess(i: u32) -> Session {
        Session {
            rw: Rewrite {
                src: key(i).src,
                dst: 0xffff_c614_0000 | i as u128,
                sport: key(i).sport,
                dport: 8080,
            },
            translation: 7,
            flags: 0,
            class: class::GENERIC,
            last_seen: 100,
        }
    }

    /// An IPv4 entry keeps its checksum deltas where its rewrite source's high bits would be:
    /// a lookup gives them and the rewrite as inserted (v4-mapped); an IPv6 entry's rewrite
    /// keeps all 128 bits.
    #[test]
    fn entries_keep_checksum_deltas_and_their_rewrite() {
        let t = SessionTable::new(1024, 100);
        for i in 0..8 {
            let (k, s) = (key(i), sess(i));
            t.insert(&k, &s).unwrap();
            let f = t.lookup(&k).unwrap();
            assert_eq!(f.session, s);
            let want = csum_deltas4(k.src, k.dst, k.sport, k.dport, &s.rw);
            assert_eq!(f.csum_deltas4, want);
            assert!(want != 0);
        }
        let k6 = FlowKey {
            src: 0xfd00_0000_0000_0000_0000_0000_0000_0002,
            dst: 0xfd00_0000_0000_0000_0000_0000_0000_0009,
            ip6: true,
            ..key(99)
        };
        let s6 = Session {
            rw: Rewrite {
                src: 0xfd01_0203_0405_0607_0809_0a0b_0c0d_0e0f,
                dst: 0xfd0f_0e0d_0c0b_0a09_0807_0605_0403_0201,
                sport: 1,
                dport: 2,
            },
            ..sess(99)
        };
        t.insert(&k6, &s6).unwrap();
        assert_eq!(t.lookup(&k6).unwrap().session, s6);
        let mut seen = 0;
        t.for_each(|_, k, s| {
            let want = if k.ip6 {
                s6
            } else {
                sess(k.src as u32 & 0xffff)
            };
            assert_eq!(*s, want);
            seen += 1;
        });
        assert_eq!(seen, 9);
    }

    #[test]
    fn expiry_keeps_an_entry_touched_after_it_was_judged() {
        let t = SessionTable::new(1024, 100);
        for i in 0..4 {
            t.insert(&key(i), &sess(i)).unwrap();
        }
        // A packet refreshes entry 1 after the scan judged it idle but before it removes
        // anything (at the last entry judged): it must stay; the untouched ones go.
        let mut judged = 0;
        let gone = t.expire_if(|_, _| {
            judged += 1;
            if judged == 4 {
                let f = t.lookup(&key(1)).unwrap();
                t.touch(&f, 200, class::TCP_ESTABLISHED);
            }
            true
        });
        let mut gone: Vec<_> = gone.iter().map(|(k, _)| k.sport).collect();
        gone.sort_unstable();
        assert_eq!(gone, [key(0).sport, key(2).sport, key(3).sport]);
        let kept = t.lookup(&key(1)).expect("touched entry kept");
        assert_eq!(kept.session.last_seen, 200);
        assert_eq!(kept.session.class, class::TCP_ESTABLISHED);
        assert_eq!(t.len(), 1);
        // The kept entry's header was released intact: it can be touched and removed.
        t.touch(&kept, 201, class::TCP_ESTABLISHED);
        assert_eq!(t.lookup(&key(1)).unwrap().session.last_seen, 201);
        assert!(t.remove(&key(1)).is_some());
        assert!(t.is_empty());
    }

    #[test]
    fn removal_ignores_touches_made_while_judging() {
        // remove_if (purges) removes what it chose even if touched meanwhile.
        let t = SessionTable::new(1024, 100);
        t.insert(&key(1), &sess(1)).unwrap();
        let gone = t.remove_if(|k, _| {
            let f = t.lookup(k).unwrap();
            t.touch(&f, 300, class::GENERIC);
            true
        });
        assert_eq!(gone.len(), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn insert_lookup_remove_and_limit() {
        let t = SessionTable::new(1024, 100);
        for i in 0..100 {
            t.insert(&key(i), &sess(i)).unwrap();
        }
        assert_eq!(t.len(), 100);
        assert_eq!(t.insert(&key(500), &sess(500)), Err(InsertError::Full));
        assert_eq!(t.insert(&key(5), &sess(5)), Err(InsertError::Exists));
        for i in 0..100 {
            assert_eq!(t.lookup(&key(i)).unwrap().session, sess(i), "{i}");
        }
        assert!(t.lookup(&key(100)).is_none());
        let mut other_stage = key(3);
        other_stage.stage = stage::OUTPUT;
        assert!(t.lookup(&other_stage).is_none(), "stage is part of the key");
        assert_eq!(t.remove(&key(3)), Some(sess(3)));
        assert!(t.lookup(&key(3)).is_none());
        assert_eq!(t.len(), 99);
        t.insert(&key(500), &sess(500)).unwrap();
    }

    #[test]
    fn entries_in_their_second_bucket_are_found_and_counted_until_removed() {
        // Two buckets: every key's second bucket is the other one, so a full table spills.
        let t = SessionTable::new(16, 16);
        for i in 0..16 {
            t.insert(&key(i), &sess(i)).unwrap();
        }
        let spilled = |t: &SessionTable| {
            t.spilled
                .iter()
                .map(|s| s.load(Ordering::Relaxed))
                .sum::<u32>()
        };
        assert!(
            spilled(&t) > 0,
            "a full two-bucket table has spilled entries"
        );
        for i in 0..16 {
            assert_eq!(t.lookup(&key(i)).unwrap().session, sess(i), "{i}");
        }
        assert_eq!(t.insert(&key(99), &sess(99)), Err(InsertError::Full));
        for i in (0..16).step_by(2) {
            assert_eq!(t.remove(&key(i)), Some(sess(i)));
        }
        for i in 0..16 {
            assert_eq!(t.lookup(&key(i)).is_some(), i % 2 == 1, "{i}");
        }
        for i in (1..16).step_by(2) {
            assert_eq!(t.remove(&key(i)), Some(sess(i)));
        }
        assert_eq!(spilled(&t), 0);
        assert!(t.is_empty());
    }

    #[test]
    fn npol_word_starts_empty_and_refuses_a_freed_or_reused_slot() {
        let t = SessionTable::new(64, 64);
        t.insert(&key(1), &sess(1)).unwrap();
        let f = t.lookup(&key(1)).unwrap();
        assert_eq!(f.npol & NPOL_MASK, 0, "a new entry has no verdict");
        assert!(t.npol_update(f.slot, f.npol, |b| b | 0x1005));
        let g = t.lookup(&key(1)).unwrap();
        assert_eq!(g.npol & NPOL_MASK, 0x1005);
        // Other writers' bits are kept; a touch leaves the word alone.
        assert!(t.npol_update(f.slot, f.npol, |b| b | 0x1007 << 16));
        t.touch(&g, 300, class::TCP_ESTABLISHED);
        let g = t.lookup(&key(1)).unwrap();
        assert_eq!(g.npol & NPOL_MASK, 0x1007 << 16 | 0x1005);
        // Freed, then the same key (so the same slot) again: a new generation, nothing
        // carried over, and a writer holding the old entry's word is refused.
        t.remove(&key(1)).unwrap();
        // A write after the free lands in a dead slot, which the next insert overwrites.
        let _ = t.npol_update(f.slot, f.npol, |b| b | 0x1009);
        t.insert(&key(1), &sess(1)).unwrap();
        let n = t.lookup(&key(1)).unwrap();
        assert_eq!(n.slot, f.slot, "the slot was reused");
        assert_eq!(
            n.npol & NPOL_MASK,
            0,
            "the old entry's verdicts did not carry over"
        );
        assert_ne!(n.npol, f.npol, "another generation");
        assert!(
            !t.npol_update(f.slot, f.npol, |b| b | 0x1005),
            "reused: refused"
        );
        assert_eq!(t.lookup(&key(1)).unwrap().npol & NPOL_MASK, 0);
        assert!(t.npol_update(n.slot, n.npol, |b| b | 0x1005));
    }

    /// A mark meant for an entry must not land on the entry that took its slot after it was
    /// freed, even one with the same meta word (same flags, class and second): cnat-output
    /// would then skip the SNAT policy for a flow it never judged.
    #[test]
    fn snat_mark_never_lands_on_the_entry_that_reused_the_slot() {
        let t = SessionTable::new(64, 64);
        t.insert(&key(1), &sess(1)).unwrap();
        let old = t.lookup(&key(1)).unwrap();
        let marked = t.snat_mark_racing(old.slot, old.npol, 5, || {
            t.remove(&key(1)).unwrap();
            t.insert(&key(1), &sess(1)).unwrap();
        });
        let new = t.lookup(&key(1)).unwrap();
        assert_eq!(new.slot, old.slot, "the slot was reused");
        assert_eq!(new.snat_epoch(), 0, "the old entry's mark did not land");
        assert!(!marked);
        // The entry now in the slot takes its own mark, and a touch keeps it.
        assert!(t.snat_mark(new.slot, new.npol, 5));
        let f = t.lookup(&key(1)).unwrap();
        assert_eq!(f.snat_epoch(), 5);
        t.touch(&f, 101, class::TCP_ESTABLISHED);
        assert_eq!(t.lookup(&key(1)).unwrap().snat_epoch(), 5);
    }

    /// Keys of a four-bucket table whose two buckets are 0 and 1.
    fn keys_in_buckets_0_and_1(t: &SessionTable, n: usize) -> Vec<FlowKey> {
        (0..100_000)
            .map(key)
            .filter(|k| {
                let mut b = t.buckets(k.hash());
                b.sort_unstable();
                b == [0, 1]
            })
            .take(n)
            .collect()
    }

    /// Insert `x` (session 9) as a worker whose look found nothing, after which another worker
    /// makes `x`'s entry (session 8) before this one takes a slot.
    fn insert_after_another_worker(t: &SessionTable, x: &FlowKey) -> Result<Made, InsertError> {
        let other = || {
            t.insert(x, &sess(8)).unwrap();
        };
        t.insert_racing(x, &sess(9), other, || {})
    }

    /// Two workers insert the same key; the one whose own look found nothing loses the race
    /// for the key's last free slot. It must learn that the key exists (and translate by the
    /// winner's entry), not report its buckets full (a counted drop of a good packet).
    #[test]
    fn an_insert_that_loses_the_last_slot_to_its_own_key_finds_it() {
        let t = SessionTable::new(32, 32);
        let ks = keys_in_buckets_0_and_1(&t, 16);
        assert_eq!(ks.len(), 16);
        for k in &ks[..15] {
            t.insert(k, &sess(k.src as u32 & 0xffff)).unwrap();
        }
        let x = ks[15];
        let r = insert_after_another_worker(&t, &x);
        assert_eq!(r, Err(InsertError::Exists));
        assert_eq!(t.lookup(&x).unwrap().session, sess(8), "the winner's entry");
        assert_eq!(t.len(), 16);
        // A key with no entry still finds the buckets full.
        let other = keys_in_buckets_0_and_1(&t, 17)[16];
        assert_eq!(t.insert(&other, &sess(7)), Err(InsertError::NoSlot));
        assert_eq!(t.len(), 16);
    }

    /// How many entries of the table hold `k`.
    fn entries_of(t: &SessionTable, k: &FlowKey) -> usize {
        let mut n = 0;
        t.for_each(|_, e, _| n += usize::from(e == k));
        n
    }

    /// Two workers insert the same new key into free slots of its bucket, each after its own
    /// look found nothing. Only one entry may be made: a second is unreachable (lookups find
    /// the first), holds a slot until it expires, and its flow's SNAT port and return entry
    /// with it. The loser learns `Exists` and translates by the winner's entry.
    #[test]
    fn two_inserts_of_one_new_key_make_one_entry() {
        // The other worker's entry is published before this one takes its slot.
        let t = SessionTable::new(32, 32);
        let x = key(1);
        let r = insert_after_another_worker(&t, &x);
        assert_eq!(r, Err(InsertError::Exists));
        assert_eq!(entries_of(&t, &x), 1);
        assert_eq!(t.len(), 1);
        assert_eq!(t.lookup(&x).unwrap().session, sess(8), "the winner's entry");

        // The other worker's whole insert runs while this one holds its slot, unwritten.
        let t = SessionTable::new(32, 32);
        let mut other = None;
        let r = t.insert_racing(&x, &sess(9), || {}, || other = Some(t.insert(&x, &sess(8))));
        assert_eq!(
            other,
            Some(Err(InsertError::Exists)),
            "the later claim yields"
        );
        let made = r.expect("the earlier claim makes the entry");
        assert_eq!(entries_of(&t, &x), 1);
        assert_eq!(t.len(), 1);
        let f = t.lookup(&x).unwrap();
        assert_eq!((f.slot, f.session), (made.slot, sess(9)));
    }

    /// Workers on threads insert the same new keys at once, each key once per worker: every
    /// key ends with one entry, the others' inserts reporting `Exists`.
    #[test]
    fn workers_inserting_the_same_new_keys_make_one_entry_each() {
        let t = SessionTable::new(1 << 12, 1 << 12);
        let keys: Vec<FlowKey> = (0..1500).map(key).collect();
        let start = std::sync::Barrier::new(3);
        let made: usize = std::thread::scope(|sc| {
            let workers: Vec<_> = (0..3)
                .map(|w| {
                    let (t, keys, start) = (&t, &keys, &start);
                    sc.spawn(move || {
                        start.wait();
                        let mut made = 0;
                        for k in keys {
                            match t.insert(k, &sess(w)) {
                                Ok(_) => made += 1,
                                Err(e) => assert_eq!(e, InsertError::Exists),
                            }
                        }
                        made
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        let doubled = keys.iter().filter(|k| entries_of(&t, k) != 1).count();
        assert_eq!((made, t.len(), doubled), (keys.len(), keys.len(), 0));
    }

    #[test]
    fn touch_updates_time_and_class() {
        let t = SessionTable::new(64, 64);
        t.insert(&key(1), &sess(1)).unwrap();
        let f = t.lookup(&key(1)).unwrap();
        t.touch(&f, 200, class::TCP_ESTABLISHED);
        let s = t.lookup(&key(1)).unwrap().session;
        assert_eq!((s.last_seen, s.class), (200, class::TCP_ESTABLISHED));
        assert_eq!(s.rw, sess(1).rw);
    }

    #[test]
    fn readers_on_other_threads_see_whole_entries_while_writers_churn() {
        use std::sync::atomic::AtomicU64;
        use std::sync::Arc;
        let t = Arc::new(SessionTable::new(4096, 4096));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen: Arc<[AtomicU64; 2]> = Arc::new(Default::default());
        let readers: Vec<_> = (0..2)
            .map(|r| {
                let (t, stop, seen) = (t.clone(), stop.clone(), seen.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        for i in 0..256 {
                            if let Some(f) = t.lookup(&key(i)) {
                                assert_eq!(f.session.rw, sess(i).rw, "torn entry");
                                seen[r].fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        // Churn for 200 rounds and until both readers have run during it (on a loaded machine
        // a reader thread may start late).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut round = 0;
        while round < 200
            || (seen.iter().any(|s| s.load(Ordering::Relaxed) == 0)
                && std::time::Instant::now() < deadline)
        {
            for i in 0..256 {
                let _ = t.insert(&key(i), &sess(i));
            }
            for i in (round % 2..256).step_by(2) {
                t.remove(&key(i));
            }
            round += 1;
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
        assert!(seen.iter().all(|s| s.load(Ordering::Relaxed) > 0));
    }
}
