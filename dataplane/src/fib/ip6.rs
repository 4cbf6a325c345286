//! IPv6 longest-prefix match: one open-addressing hash table keyed by (masked prefix, length),
//! probed once per prefix length in use, longest first.
//!
//! Why not a multibit trie: Calico installs hundreds of IPv6 routes in a handful of lengths
//! (/128 per pod, /122 blocks, a few /64s, a /0), so a lookup is 3-5 probes into a table of a
//! few KiB that stays in cache, whereas a stride-8 trie needs up to 16 dependent loads for a
//! /128 and a 256-entry node per byte of every prefix.
//!
//! Lock-free reads without unsafe: a slot's key is written once, before its tag (Release), so a
//! reader that sees the tag sees the key; the leaf is a single atomic, and deleting stores
//! `LEAF_MISS` (a tombstone). When tombstones or growth call for it the writer rebuilds into
//! another table and switches an index; a retired table is cleared for reuse only after a grace
//! period, and tables are never freed while the `Ip6Fib` lives, so a late reader at worst gets
//! a stale answer, never a dangling one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, OnceLock};

use super::{FibError, LEAF_LIMIT, LEAF_MISS};
use crate::rcu::GracePeriod;

/// Smallest table, as log2 of its slot count.
const MIN_CLASS: u32 = 6;
/// Largest table: 2^22 slots (96 MiB), far beyond what Calico needs.
const MAX_CLASS: u32 = 22;
/// Two tables per size so a rebuild at the same size has somewhere to go.
const TABLES: usize = 2 * (MAX_CLASS - MIN_CLASS + 1) as usize;

#[derive(Default)]
struct Slot {
    hi: AtomicU64,
    lo: AtomicU64,
    /// 0 = never used; else prefix length + 1.
    tag: AtomicU32,
    /// `LEAF_MISS` once deleted.
    leaf: AtomicU32,
}

struct Table {
    slots: Box<[Slot]>,
    /// Bit l set: some route of length l may be present.
    lens: [AtomicU64; 3],
}

impl Table {
    fn new(class: u32) -> Self {
        Self {
            slots: (0..1usize << class).map(|_| Slot::default()).collect(),
            lens: Default::default(),
        }
    }

    fn clear(&self) {
        for s in self.slots.iter() {
            s.tag.store(0, Relaxed);
        }
        for l in &self.lens {
            l.store(0, Relaxed);
        }
    }

    /// Slot holding (key, len), live or tombstone.
    #[inline]
    fn find(&self, h: u64, key: u128, len: u8) -> Option<&Slot> {
        let m = self.slots.len() - 1;
        let (hi, lo) = ((key >> 64) as u64, key as u64);
        let mut i = h as usize & m;
        // Bounded: tables are never more than half used.
        for _ in 0..self.slots.len() {
            let s = self.slots.get(i)?;
            let tag = s.tag.load(Acquire);
            if tag == 0 {
                return None;
            }
            if tag == len as u32 + 1 && s.hi.load(Relaxed) == hi && s.lo.load(Relaxed) == lo {
                return Some(s);
            }
            i = (i + 1) & m;
        }
        None
    }

    /// Writer only: writes a new key into the first never-used slot of its chain.
    fn insert_new(&self, h: u64, key: u128, len: u8, leaf: u32) -> bool {
        let m = self.slots.len() - 1;
        let mut i = h as usize & m;
        for _ in 0..self.slots.len() {
            let s = &self.slots[i];
            if s.tag.load(Relaxed) == 0 {
                s.hi.store((key >> 64) as u64, Relaxed);
                s.lo.store(key as u64, Relaxed);
                s.leaf.store(leaf, Relaxed);
                s.tag.store(len as u32 + 1, Release);
                return true;
            }
            i = (i + 1) & m;
        }
        false
    }

    fn set_len(&self, len: u8, on: bool) {
        let (w, b) = (len as usize / 64, len % 64);
        if on {
            self.lens[w].fetch_or(1 << b, Release);
        } else {
            self.lens[w].fetch_and(!(1 << b), Release);
        }
    }
}

#[inline]
fn mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len as u32)
    }
}

/// The table workers read. Obtain it from [`Ip6FibWriter::fib`].
pub struct Ip6Fib {
    tables: Box<[OnceLock<Table>]>,
    active: AtomicUsize,
    /// The probe hash's keys, random per FIB.
    seeds: (u64, u64),
}

impl Ip6Fib {
    /// The probe hash of (masked prefix, length): one 64 x 64 -> 128-bit multiply of the
    /// prefix's keyed halves, folded (wyhash's mix). A lookup hashes once per prefix length in
    /// use; ahash over the (u128, u8) tuple cost about twice the instructions (callgrind,
    /// bench/README.md). Only speed depends on the spread: any hash gives the same answers.
    #[inline(always)]
    fn hash(&self, key: u128, len: u8) -> u64 {
        let a = (key >> 64) as u64 ^ self.seeds.0;
        let b = key as u64 ^ self.seeds.1 ^ (len as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let m = a as u128 * b as u128;
        (m >> 64) as u64 ^ m as u64
    }

    /// Leaf of the longest prefix covering `addr` (`u128::from_be_bytes(octets)`), or
    /// [`LEAF_MISS`].
    pub fn lookup(&self, addr: u128) -> u32 {
        let Some(t) = self
            .tables
            .get(self.active.load(Acquire))
            .and_then(OnceLock::get)
        else {
            return LEAF_MISS;
        };
        for w in (0..3).rev() {
            let mut bits = t.lens[w].load(Acquire);
            while bits != 0 {
                let b = 63 - bits.leading_zeros();
                bits &= !(1u64 << b);
                let len = (w as u32 * 64 + b).min(128) as u8;
                let key = addr & mask(len);
                if let Some(s) = t.find(self.hash(key, len), key, len) {
                    let leaf = s.leaf.load(Acquire);
                    if leaf != LEAF_MISS {
                        return leaf;
                    }
                }
            }
        }
        LEAF_MISS
    }

    /// [`Self::lookup`] for `addrs[i]` into `out[i]`, `i < min(addrs.len(), out.len())`. The
    /// table and its prefix lengths in use are read once for the batch (a worker holds them
    /// until its next quiescent point either way), so each address pays only its probes.
    pub fn lookup_batch(&self, addrs: &[u128], out: &mut [u32]) {
        let Some(t) = self
            .tables
            .get(self.active.load(Acquire))
            .and_then(OnceLock::get)
        else {
            out.iter_mut().for_each(|o| *o = LEAF_MISS);
            return;
        };
        // The lengths in use, longest first (at most 129), each with its mask, so that no
        // probe computes a 128-bit mask (a third of the per-address work before).
        let mut lens = [(0u8, 0u128); 129];
        let mut n = 0;
        for w in (0..3).rev() {
            let mut bits = t.lens[w].load(Acquire);
            while bits != 0 && n < lens.len() {
                let b = 63 - bits.leading_zeros();
                bits &= !(1u64 << b);
                let len = (w as u32 * 64 + b).min(128) as u8;
                lens[n] = (len, mask(len));
                n += 1;
            }
        }
        let lens = &lens[..n];
        // A run of one destination (every packet to one of our SIDs, a flow's packets) is
        // probed once: within the batch the table does not change.
        let mut last: Option<(u128, u32)> = None;
        for (o, &a) in out.iter_mut().zip(addrs) {
            if let Some((la, leaf)) = last {
                if la == a {
                    *o = leaf;
                    continue;
                }
            }
            let mut found = LEAF_MISS;
            for &(len, m) in lens {
                let key = a & m;
                let leaf = t
                    .find(self.hash(key, len), key, len)
                    .map_or(LEAF_MISS, |s| s.leaf.load(Acquire));
                if leaf != LEAF_MISS {
                    found = leaf;
                    break;
                }
            }
            *o = found;
            last = Some((a, found));
        }
    }
}

/// The single writer of an [`Ip6Fib`].
pub struct Ip6FibWriter {
    fib: Arc<Ip6Fib>,
    gp: Arc<GracePeriod>,
    routes: HashMap<(u128, u8), u32, ahash::RandomState>,
    per_len: [u32; 129],
    /// Slots of the active table ever used (live routes plus tombstones).
    used: usize,
    /// Stamp at which each table stopped being active; `None` if never used or active.
    retired_at: Vec<Option<u64>>,
}

impl Ip6FibWriter {
    pub fn new(gp: Arc<GracePeriod>) -> Self {
        let tables: Box<[OnceLock<Table>]> = (0..TABLES).map(|_| OnceLock::new()).collect();
        let _ = tables[0].set(Table::new(MIN_CLASS));
        let fib = Arc::new(Ip6Fib {
            tables,
            active: AtomicUsize::new(0),
            seeds: {
                let r = ahash::RandomState::new();
                (r.hash_one(1u64) | 1, r.hash_one(2u64) | 1)
            },
        });
        Self {
            fib,
            gp,
            routes: HashMap::default(),
            per_len: [0; 129],
            used: 0,
            retired_at: vec![None; TABLES],
        }
    }

    pub fn fib(&self) -> &Arc<Ip6Fib> {
        &self.fib
    }

    fn active(&self) -> (usize, &Table) {
        let i = self.fib.active.load(Relaxed);
        (i, self.fib.tables[i].get().expect("active table exists"))
    }

    /// Adds or replaces `prefix/len` (host bits ignored); returns the leaf it replaced.
    pub fn add(&mut self, prefix: u128, len: u8, leaf: u32) -> Result<Option<u32>, FibError> {
        if len > 128 {
            return Err(FibError::BadPrefixLength(len));
        }
        if leaf >= LEAF_LIMIT {
            return Err(FibError::LeafOutOfRange(leaf));
        }
        let key = prefix & mask(len);
        let h = self.fib.hash(key, len);
        if let Some(prev) = self.routes.get(&(key, len)).copied() {
            let (_, t) = self.active();
            if let Some(s) = t.find(h, key, len) {
                s.leaf.store(leaf, Release);
            }
            self.routes.insert((key, len), leaf);
            return Ok(Some(prev));
        }
        let (_, t) = self.active();
        if let Some(s) = t.find(h, key, len) {
            // Revive our own tombstone.
            s.leaf.store(leaf, Release);
        } else {
            if (self.used + 1) * 2 > t.slots.len() {
                self.rebuild(self.routes.len() + 1)?;
            }
            let (_, t) = self.active();
            if !t.insert_new(h, key, len, leaf) {
                return Err(FibError::OutOfMemory);
            }
            self.used += 1;
        }
        let (_, t) = self.active();
        t.set_len(len, true);
        self.per_len[len as usize] += 1;
        self.routes.insert((key, len), leaf);
        Ok(None)
    }

    /// Removes `prefix/len` (host bits ignored); returns its leaf, `None` if absent.
    pub fn delete(&mut self, prefix: u128, len: u8) -> Result<Option<u32>, FibError> {
        if len > 128 {
            return Err(FibError::BadPrefixLength(len));
        }
        let key = prefix & mask(len);
        let Some(old) = self.routes.remove(&(key, len)) else {
            return Ok(None);
        };
        let h = self.fib.hash(key, len);
        self.per_len[len as usize] -= 1;
        let last = self.per_len[len as usize] == 0;
        let (_, t) = self.active();
        if let Some(s) = t.find(h, key, len) {
            s.leaf.store(LEAF_MISS, Release);
        }
        if last {
            t.set_len(len, false);
        }
        // Many tombstones: compact so misses stop walking them.
        if self.used > 16 && self.routes.len() * 4 < self.used {
            // Compaction is an optimisation: without a table past its grace period it waits.
            let _ = self.rebuild(self.routes.len().max(1));
        }
        Ok(Some(old))
    }

    pub fn get(&self, prefix: u128, len: u8) -> Option<u32> {
        self.routes
            .get(&(prefix & mask(len.min(128)), len))
            .copied()
    }

    /// All routes as (prefix, len, leaf), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u128, u8, u32)> + '_ {
        self.routes.iter().map(|(&(p, l), &leaf)| (p, l, leaf))
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Builds a table for `want` routes from the route set and switches readers to it.
    fn rebuild(&mut self, want: usize) -> Result<(), FibError> {
        let (cur, _) = self.active();
        let min_class = (want * 4)
            .next_power_of_two()
            .trailing_zeros()
            .max(MIN_CLASS);
        let pick = (min_class..=MAX_CLASS)
            .flat_map(|c| {
                let i = 2 * (c - MIN_CLASS) as usize;
                [(i, c), (i + 1, c)]
            })
            .find(|&(i, _)| {
                i != cur
                    && match self.retired_at[i] {
                        None => true,
                        Some(stamp) => self.gp.is_safe(stamp),
                    }
            });
        let Some((idx, class)) = pick else {
            return Err(FibError::OutOfMemory);
        };
        let t = self.fib.tables[idx].get_or_init(|| Table::new(class));
        t.clear();
        for (&(key, len), &leaf) in &self.routes {
            t.insert_new(self.fib.hash(key, len), key, len, leaf);
            t.set_len(len, true);
        }
        self.used = self.routes.len();
        self.retired_at[idx] = None;
        self.fib.active.store(idx, Release);
        self.retired_at[cur] = Some(self.gp.advance());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> u128 {
        u128::from(s.parse::<std::net::Ipv6Addr>().unwrap())
    }

    #[test]
    fn longest_prefix_wins() {
        let mut w = Ip6FibWriter::new(Arc::new(GracePeriod::new()));
        let f = w.fib().clone();
        assert_eq!(f.lookup(a("fd00::1")), LEAF_MISS);
        w.add(0, 0, 1).unwrap();
        w.add(a("fd00::"), 64, 2).unwrap();
        w.add(a("fd00::1:0"), 122, 3).unwrap();
        w.add(a("fd00::1:5"), 128, 4).unwrap();
        assert_eq!(f.lookup(a("2001::1")), 1);
        assert_eq!(f.lookup(a("fd00::9:0")), 2);
        assert_eq!(f.lookup(a("fd00::1:6")), 3);
        assert_eq!(f.lookup(a("fd00::1:5")), 4);
        assert_eq!(w.add(a("fd00::1:5"), 128, 5), Ok(Some(4)));
        assert_eq!(f.lookup(a("fd00::1:5")), 5);
        assert_eq!(w.delete(a("fd00::1:5"), 128), Ok(Some(5)));
        assert_eq!(f.lookup(a("fd00::1:5")), 3);
        assert_eq!(w.delete(a("fd00::1:5"), 122), Ok(Some(3)));
        assert_eq!(f.lookup(a("fd00::1:5")), 2);
        assert_eq!(w.add(a("fd00::1:5"), 128, 6), Ok(None));
        assert_eq!(f.lookup(a("fd00::1:5")), 6);
        assert_eq!(w.len(), 3);
        assert_eq!(w.get(a("fd00::1:5"), 128), Some(6));
        assert_eq!(w.add(0, 129, 1), Err(FibError::BadPrefixLength(129)));
    }

    #[test]
    fn batch_answers_as_single_lookups_do() {
        // Random routes of many lengths, with deletes (tombstones), and addresses near them.
        let mut w = Ip6FibWriter::new(Arc::new(GracePeriod::new()));
        let f = w.fib().clone();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut routes = Vec::new();
        for i in 0..300u32 {
            let len = [10, 48, 56, 64, 96, 122, 127, 128][next() as usize % 8];
            let p =
                (0xfd00u128 << 112 | (next() as u128) << 40 | next() as u128 & 0xff) & mask(len);
            w.add(p, len, i + 1).unwrap();
            routes.push((p, len));
            if i % 7 == 0 {
                let (p, len) = routes[next() as usize % routes.len()];
                w.delete(p, len).unwrap();
            }
        }
        let mut addrs: Vec<u128> = (0..2000)
            .map(|_| match next() % 10 {
                // Outside fd00::/10: no route covers it.
                0 => 0x2001u128 << 112 | next() as u128,
                _ => {
                    let (p, _) = routes[next() as usize % routes.len()];
                    p ^ (next() as u128 >> (next() % 64))
                }
            })
            .collect();
        // Runs of one address (a run is probed once), misses among them, and an address
        // coming back after another.
        let runs: Vec<u128> = addrs
            .iter()
            .flat_map(|&a| std::iter::repeat_n(a, 1 + next() as usize % 3))
            .collect();
        addrs.extend(runs);
        let (sid, beside) = (a("fd00:ffff::1"), a("fd00:ffff::2"));
        w.add(sid, 128, 9001).unwrap();
        addrs.extend([addrs[0], addrs[1], addrs[0], addrs[0]]);
        addrs.extend([sid, sid, beside, beside, sid, beside]);
        let mut out = vec![0u32; addrs.len()];
        f.lookup_batch(&addrs, &mut out);
        for (i, &a) in addrs.iter().enumerate() {
            assert_eq!(out[i], f.lookup(a), "address {a:032x}");
        }
        assert!(out.iter().any(|&l| l != LEAF_MISS) && out.contains(&LEAF_MISS));
    }

    /// Mean slots a lookup's probe reads before its key, over the active table.
    fn mean_probe(w: &Ip6FibWriter) -> f64 {
        let f = &w.fib;
        let t = f.tables[f.active.load(Acquire)].get().unwrap();
        let m = t.slots.len() - 1;
        let total: usize = w
            .routes
            .keys()
            .map(|&(key, len)| {
                let mut i = f.hash(key, len) as usize & m;
                let mut n = 1;
                while !(t.slots[i].tag.load(Relaxed) == len as u32 + 1
                    && t.slots[i].lo.load(Relaxed) == key as u64
                    && t.slots[i].hi.load(Relaxed) == (key >> 64) as u64)
                {
                    i = (i + 1) & m;
                    n += 1;
                }
                n
            })
            .sum();
        total as f64 / w.routes.len() as f64
    }

    /// The probe hash spreads the prefixes Calico makes, which differ in a few low bits of
    /// one half (pod /128s one after another, /122 blocks, /64s of consecutive subnets):
    /// linear probing in a table at most half full reads few slots a key, as random keys would.
    #[test]
    fn calicos_sequential_prefixes_probe_few_slots() {
        for seed in 0..4u32 {
            let mut w = Ip6FibWriter::new(Arc::new(GracePeriod::new()));
            let pod = a("fd00:10::");
            for i in 0..20_000u128 {
                w.add(pod | i, 128, 1 + seed).unwrap();
                w.add(pod | i << 6, 122, 2).unwrap();
                w.add(a("fd00:20::") | i << 64, 64, 3).unwrap();
            }
            let probe = mean_probe(&w);
            assert!(probe < 2.5, "{probe} slots a key on average");
        }
    }

    #[test]
    fn grows_and_compacts() {
        let gp = Arc::new(GracePeriod::new());
        let mut w = Ip6FibWriter::new(gp.clone());
        let f = w.fib().clone();
        let base = a("fd00::");
        for round in 0..3u32 {
            for i in 0..1000u128 {
                w.add(base | i << 8, 120, (i as u32) + round).unwrap();
            }
            for i in 0..1000u128 {
                assert_eq!(f.lookup(base | i << 8 | 7), i as u32 + round);
            }
            for i in 0..1000u128 {
                assert_eq!(w.delete(base | i << 8, 120), Ok(Some(i as u32 + round)));
            }
            assert_eq!(f.lookup(base | 7), LEAF_MISS);
        }
        assert!(w.is_empty());
    }
}
