//! IPv4 longest-prefix match: DIR-24-8, updated in place while workers read it.
//!
//! tbl24 holds one entry per /24 (indexed by the top 24 address bits); an entry either is a
//! route for the whole /24 or points at a 256-entry tbl8 group indexed by the last byte.
//! Entry format (u32): 0 = no route; bit 30 set = route, low 30 bits the leaf; bit 31 set = tbl8
//! group index in the low bits. A miss returns the /0 route kept apart, so tbl24 can start as
//! untouched zero pages and an empty VRF commits almost nothing.
//!
//! The writer keeps, apart from what readers see, each entry's prefix length (so an add knows
//! which entries a longer prefix already owns, and a delete which entries to hand back to the
//! covering route) and the route set itself.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering::*};
use std::sync::Arc;

use super::mem::{self, TableBacking, Zeroed};
use super::{FibError, LEAF_LIMIT, LEAF_MISS};
use crate::rcu::GracePeriod;

const EXT: u32 = 1 << 31;
const VALID: u32 = 1 << 30;
const LEAF_MASK: u32 = VALID - 1;
const TBL24_LEN: usize = 1 << 24;
const GROUP: usize = 256;
/// Most tbl8 groups a table can have (group << 8 must fit a signed 32-bit gather index).
pub const MAX_TBL8_GROUPS: u32 = 1 << 23;

#[derive(Clone, Debug)]
pub struct Ip4FibConfig {
    /// tbl8 groups reserved (1 KiB of address space each, committed when first used). One is
    /// needed per /24 holding a prefix longer than /24.
    pub tbl8_groups: u32,
    /// Put the tables on 2 MiB pages: reserved hugetlb pages when the machine has them to
    /// spare, else transparent huge pages. Fewer TLB misses per lookup (a 64 MiB tbl24 on
    /// 4 KiB pages misses the TLB on nearly every lookup), but the pages are committed whole:
    /// the default table has it, small VRFs (Calico makes two per pod) do not.
    pub huge_pages: bool,
}

impl Default for Ip4FibConfig {
    fn default() -> Self {
        Self {
            tbl8_groups: 1 << 16,
            huge_pages: true,
        }
    }
}

/// How [`Ip4Fib::lookup_batch`] walks the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupImpl {
    /// Interleaved scalar loads with prefetch.
    Scalar,
    /// 8-lane gathers.
    Avx2,
    /// 16-lane gathers.
    Avx512,
}

impl LookupImpl {
    pub fn name(self) -> &'static str {
        match self {
            LookupImpl::Scalar => "scalar",
            LookupImpl::Avx2 => "avx2",
            LookupImpl::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run it.
    pub fn available(self) -> bool {
        match self {
            LookupImpl::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            LookupImpl::Avx2 => is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            LookupImpl::Avx512 => is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The widest variant this CPU runs.
    pub fn best() -> Self {
        [LookupImpl::Avx512, LookupImpl::Avx2]
            .into_iter()
            .find(|i| i.available())
            .unwrap_or(LookupImpl::Scalar)
    }
}

/// The table workers read. Obtain it from [`Ip4FibWriter::fib`].
pub struct Ip4Fib {
    tbl24: Zeroed<AtomicU32>,
    tbl8: Zeroed<AtomicU32>,
    default_leaf: AtomicU32,
    imp: LookupImpl,
}

impl Ip4Fib {
    /// Leaf of the longest prefix covering `addr` (host order), or [`LEAF_MISS`].
    #[inline]
    pub fn lookup(&self, addr: u32) -> u32 {
        // Acquire pairs with the Release that publishes a filled tbl8 group.
        let mut e = self
            .tbl24
            .as_slice()
            .get((addr >> 8) as usize)
            .map_or(0, |x| x.load(Acquire));
        if e & EXT != 0 {
            let j = (((e & !EXT) as usize) << 8) | (addr & 0xff) as usize;
            e = self.tbl8.as_slice().get(j).map_or(0, |x| x.load(Relaxed));
        }
        if e == 0 {
            self.default_leaf.load(Relaxed)
        } else {
            e & LEAF_MASK
        }
    }

    /// Looks up `addrs[i]` into `out[i]` for `i < min(addrs.len(), out.len())`, with the
    /// fastest variant for this CPU.
    #[inline]
    pub fn lookup_batch(&self, addrs: &[u32], out: &mut [u32]) {
        self.lookup_batch_with(self.imp, addrs, out)
    }

    /// [`Self::lookup_batch`] with a chosen variant (falls back to scalar if unavailable).
    pub fn lookup_batch_with(&self, imp: LookupImpl, addrs: &[u32], out: &mut [u32]) {
        let n = addrs.len().min(out.len());
        let (addrs, out) = (&addrs[..n], &mut out[..n]);
        let dflt = self.default_leaf.load(Relaxed);
        #[cfg(target_arch = "x86_64")]
        let done = match imp {
            LookupImpl::Avx512 => mem::gather::lookup_avx512(
                self.tbl24.as_slice(),
                self.tbl8.as_slice(),
                dflt,
                addrs,
                out,
            ),
            LookupImpl::Avx2 => mem::gather::lookup_avx2(
                self.tbl24.as_slice(),
                self.tbl8.as_slice(),
                dflt,
                addrs,
                out,
            ),
            LookupImpl::Scalar => 0,
        };
        #[cfg(not(target_arch = "x86_64"))]
        let done = {
            let _ = imp;
            0
        };
        self.batch_scalar(dflt, &addrs[done..], &mut out[done..]);
    }

    /// The variant [`Self::lookup_batch`] uses.
    /// The pages behind the lookup tables (tbl24; tbl8 is mapped the same way when it fits).
    pub fn backing(&self) -> (TableBacking, TableBacking) {
        (self.tbl24.backing(), self.tbl8.backing())
    }

    pub fn lookup_impl(&self) -> LookupImpl {
        self.imp
    }

    /// The tbl8 group serving `addr`'s /24, if any (for tests and diagnostics).
    pub fn tbl8_group_of(&self, addr: u32) -> Option<u32> {
        let e = self
            .tbl24
            .as_slice()
            .get((addr >> 8) as usize)?
            .load(Acquire);
        (e & EXT != 0).then_some(e & !EXT)
    }

    fn batch_scalar(&self, dflt: u32, addrs: &[u32], out: &mut [u32]) {
        // Prefetch tbl24 a fixed distance ahead; the loads behind it then mostly hit, and the
        // out-of-order core overlaps the dependent tbl8 misses of neighbouring lookups.
        const AHEAD: usize = 24;
        let t24 = self.tbl24.as_slice();
        let t8 = self.tbl8.as_slice();
        for &a in addrs.iter().take(AHEAD) {
            if let Some(x) = t24.get((a >> 8) as usize) {
                mem::prefetch(x);
            }
        }
        for (i, (o, &a)) in out.iter_mut().zip(addrs).enumerate() {
            if let Some(x) = addrs
                .get(i + AHEAD)
                .and_then(|&b| t24.get((b >> 8) as usize))
            {
                mem::prefetch(x);
            }
            let mut e = t24.get((a >> 8) as usize).map_or(0, |x| x.load(Acquire));
            if e & EXT != 0 {
                let j = (((e & !EXT) as usize) << 8) | (a & 0xff) as usize;
                e = t8.get(j).map_or(0, |x| x.load(Relaxed));
            }
            *o = if e == 0 { dflt } else { e & LEAF_MASK };
        }
    }
}

/// Counts of tbl8 groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tbl8Stats {
    pub capacity: u32,
    pub in_use: u32,
    /// Freed, waiting for a grace period before reuse.
    pub retired: u32,
    /// Freed and reusable.
    pub free: u32,
}

/// Bytes committed (approximately: pages written so far, 4 KiB granularity).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ip4FibMemory {
    /// What workers read: touched tbl24 pages plus tbl8 groups ever used.
    pub table_bytes: usize,
    /// The writer's side: prefix lengths per entry and the route set.
    pub writer_bytes: usize,
}

/// The single writer of an [`Ip4Fib`].
pub struct Ip4FibWriter {
    fib: Arc<Ip4Fib>,
    gp: Arc<GracePeriod>,
    /// routes[len]: prefix (masked) -> leaf.
    routes: Vec<HashMap<u32, u32, ahash::RandomState>>,
    /// Prefix length owning each tbl24 entry (0 = none); meaningless for entries pointing at tbl8.
    depth24: Zeroed<u8>,
    /// Prefix length owning each tbl8 entry, for groups handed out so far.
    depth8: Vec<u8>,
    capacity: u32,
    fresh: u32,
    free: Vec<u32>,
    retired: VecDeque<(u32, u64)>,
    /// Bitmap of tbl24 4 KiB pages written, for memory accounting.
    touched: Vec<u64>,
    touched_pages: usize,
}

#[inline]
fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len as u32)
    }
}

impl Ip4FibWriter {
    pub fn new(config: Ip4FibConfig, gp: Arc<GracePeriod>) -> Result<Self, FibError> {
        let capacity = config.tbl8_groups.clamp(1, MAX_TBL8_GROUPS);
        let tbl24 = Zeroed::new(TBL24_LEN, config.huge_pages).ok_or(FibError::OutOfMemory)?;
        let tbl8 = Zeroed::new(capacity as usize * GROUP, config.huge_pages)
            .ok_or(FibError::OutOfMemory)?;
        let depth24 = Zeroed::new(TBL24_LEN, false).ok_or(FibError::OutOfMemory)?;
        let fib = Arc::new(Ip4Fib {
            tbl24,
            tbl8,
            default_leaf: AtomicU32::new(LEAF_MISS),
            imp: LookupImpl::best(),
        });
        Ok(Self {
            fib,
            gp,
            routes: (0..=32).map(|_| HashMap::default()).collect(),
            depth24,
            depth8: Vec::new(),
            capacity,
            fresh: 0,
            free: Vec::new(),
            retired: VecDeque::new(),
            touched: vec![0; TBL24_LEN * 4 / 4096 / 64],
            touched_pages: 0,
        })
    }

    /// The table to hand to workers.
    pub fn fib(&self) -> &Arc<Ip4Fib> {
        &self.fib
    }

    pub fn grace_period(&self) -> &Arc<GracePeriod> {
        &self.gp
    }

    /// Adds or replaces `prefix/len` (host bits ignored); returns the leaf it replaced.
    pub fn add(&mut self, prefix: u32, len: u8, leaf: u32) -> Result<Option<u32>, FibError> {
        if len > 32 {
            return Err(FibError::BadPrefixLength(len));
        }
        if leaf >= LEAF_LIMIT {
            return Err(FibError::LeafOutOfRange(leaf));
        }
        let p = prefix & mask(len);
        if len == 0 {
            self.fib.default_leaf.store(leaf, Release);
            return Ok(self.routes[0].insert(0, leaf));
        }
        let v = VALID | leaf;
        if len <= 24 {
            let start = (p >> 8) as usize;
            for i in start..start + (1usize << (24 - len)) {
                self.write24_if(i, v, len, |d| d <= len);
            }
        } else {
            let i = (p >> 8) as usize;
            let e = self.fib.tbl24.as_slice()[i].load(Relaxed);
            let (g, fresh) = if e & EXT != 0 {
                (e & !EXT, false)
            } else {
                // Fill the whole group before readers can reach it.
                let g = self.alloc_group()?;
                let d = self.depth24.as_slice()[i];
                let base = g as usize * GROUP;
                for j in base..base + GROUP {
                    self.fib.tbl8.as_slice()[j].store(e, Relaxed);
                }
                self.depth8[base..base + GROUP].fill(d);
                (g, true)
            };
            let from = g as usize * GROUP + (p & 0xff) as usize;
            self.write8_if(from..from + (1usize << (32 - len)), v, len, |d| d <= len);
            if fresh {
                self.fib.tbl24.as_slice()[i].store(EXT | g, Release);
                self.touch(i);
            }
        }
        Ok(self.routes[len as usize].insert(p, leaf))
    }

    /// Removes `prefix/len` (host bits ignored); the covering shorter prefix takes its addresses
    /// back. Returns the removed leaf, or `None` if there was no such route.
    pub fn delete(&mut self, prefix: u32, len: u8) -> Result<Option<u32>, FibError> {
        if len > 32 {
            return Err(FibError::BadPrefixLength(len));
        }
        let p = prefix & mask(len);
        let Some(old) = self.routes[len as usize].remove(&p) else {
            return Ok(None);
        };
        if len == 0 {
            self.fib.default_leaf.store(LEAF_MISS, Release);
            return Ok(Some(old));
        }
        let (cv, cd) = self.cover(p, len);
        if len <= 24 {
            let start = (p >> 8) as usize;
            for i in start..start + (1usize << (24 - len)) {
                self.write24_if(i, cv, cd, |d| d == len);
            }
        } else {
            let i = (p >> 8) as usize;
            let e = self.fib.tbl24.as_slice()[i].load(Relaxed);
            debug_assert!(e & EXT != 0, "a /{len} route without its tbl8 group");
            if e & EXT != 0 {
                let g = e & !EXT;
                let base = g as usize * GROUP;
                let from = base + (p & 0xff) as usize;
                self.write8_if(from..from + (1usize << (32 - len)), cv, cd, |d| d == len);
                self.try_collapse(i, g);
            }
        }
        Ok(Some(old))
    }

    /// The leaf of exactly `prefix/len`.
    pub fn get(&self, prefix: u32, len: u8) -> Option<u32> {
        self.routes
            .get(len as usize)?
            .get(&(prefix & mask(len)))
            .copied()
    }

    /// All routes as (prefix, len, leaf), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u8, u32)> + '_ {
        self.routes
            .iter()
            .enumerate()
            .flat_map(|(l, m)| m.iter().map(move |(&p, &leaf)| (p, l as u8, leaf)))
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.iter().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves retired tbl8 groups whose grace period has passed to the free list; returns how
    /// many are still waiting.
    pub fn reclaim(&mut self) -> usize {
        while let Some(&(g, stamp)) = self.retired.front() {
            if !self.gp.is_safe(stamp) {
                break;
            }
            self.retired.pop_front();
            self.free.push(g);
        }
        self.retired.len()
    }

    pub fn tbl8_stats(&self) -> Tbl8Stats {
        let retired = self.retired.len() as u32;
        let free = self.free.len() as u32;
        Tbl8Stats {
            capacity: self.capacity,
            in_use: self.fresh - retired - free,
            retired,
            free,
        }
    }

    pub fn memory(&self) -> Ip4FibMemory {
        let table_bytes = self.touched_pages * 4096 + self.fresh as usize * GROUP * 4;
        let route_bytes: usize = self.routes.iter().map(|m| m.capacity() * 12).sum();
        // depth24 pages: one byte per entry, so a quarter of tbl24's page count at most.
        let writer_bytes =
            self.touched_pages.div_ceil(4) * 4096 + self.depth8.capacity() + route_bytes;
        Ip4FibMemory {
            table_bytes,
            writer_bytes,
        }
    }

    /// Longest route strictly shorter than `len` covering `p`: (entry, length), (0, 0) if none
    /// (a /0 lives outside the table).
    fn cover(&self, p: u32, len: u8) -> (u32, u8) {
        for l in (1..len).rev() {
            if let Some(&leaf) = self.routes[l as usize].get(&(p & mask(l))) {
                return (VALID | leaf, l);
            }
        }
        (0, 0)
    }

    /// Writes tbl24 entry `i` (or, if it points at a group, each group entry) whose owning
    /// length satisfies `owns`.
    fn write24_if(&mut self, i: usize, v: u32, len: u8, owns: impl Fn(u8) -> bool) {
        let e = self.fib.tbl24.as_slice()[i].load(Relaxed);
        if e & EXT != 0 {
            let base = (e & !EXT) as usize * GROUP;
            self.write8_if(base..base + GROUP, v, len, owns);
        } else if owns(self.depth24.as_slice()[i]) {
            self.fib.tbl24.as_slice()[i].store(v, Release);
            self.depth24.as_mut_slice()[i] = len;
            self.touch(i);
        }
    }

    fn write8_if(&mut self, r: std::ops::Range<usize>, v: u32, len: u8, owns: impl Fn(u8) -> bool) {
        let t8 = self.fib.tbl8.as_slice();
        for (x, d) in t8[r.clone()].iter().zip(&mut self.depth8[r]) {
            if owns(*d) {
                x.store(v, Release);
                *d = len;
            }
        }
    }

    /// Folds group `g` back into tbl24 entry `i` once all its entries belong to one route of /24
    /// or shorter, then retires the group.
    fn try_collapse(&mut self, i: usize, g: u32) {
        let base = g as usize * GROUP;
        let t8 = &self.fib.tbl8.as_slice()[base..base + GROUP];
        let d8 = &self.depth8[base..base + GROUP];
        let (v0, d0) = (t8[0].load(Relaxed), d8[0]);
        if t8
            .iter()
            .zip(d8)
            .any(|(x, &d)| x.load(Relaxed) != v0 || d != d0)
        {
            return;
        }
        debug_assert!(d0 <= 24);
        self.fib.tbl24.as_slice()[i].store(v0, Release);
        self.depth24.as_mut_slice()[i] = d0;
        // Readers that loaded the group index may still read the group: reuse waits a grace period.
        let stamp = self.gp.advance();
        self.retired.push_back((g, stamp));
    }

    fn alloc_group(&mut self) -> Result<u32, FibError> {
        if self.free.is_empty() {
            self.reclaim();
        }
        if let Some(g) = self.free.pop() {
            return Ok(g);
        }
        if self.fresh < self.capacity {
            let g = self.fresh;
            self.fresh += 1;
            self.depth8.resize(self.fresh as usize * GROUP, 0);
            return Ok(g);
        }
        Err(FibError::Tbl8Exhausted {
            retired: self.retired.len(),
        })
    }

    fn touch(&mut self, i: usize) {
        let page = i * 4 / 4096;
        let (w, b) = (page / 64, page % 64);
        if self.touched[w] & (1 << b) == 0 {
            self.touched[w] |= 1 << b;
            self.touched_pages += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(groups: u32) -> Ip4FibWriter {
        Ip4FibWriter::new(
            Ip4FibConfig {
                tbl8_groups: groups,
                huge_pages: false,
            },
            Arc::new(GracePeriod::new()),
        )
        .unwrap()
    }

    fn a(s: &str) -> u32 {
        u32::from(s.parse::<std::net::Ipv4Addr>().unwrap())
    }

    #[test]
    fn empty_table_misses() {
        let w = writer(4);
        assert_eq!(w.fib().lookup(a("10.0.0.1")), LEAF_MISS);
        assert!(w.is_empty());
        assert_eq!(w.memory().table_bytes, 0);
    }

    #[test]
    fn longest_prefix_wins_and_delete_restores_cover() {
        let mut w = writer(4);
        assert_eq!(w.add(0, 0, 1), Ok(None));
        assert_eq!(w.add(a("10.0.0.0"), 8, 2), Ok(None));
        assert_eq!(w.add(a("10.1.0.0"), 16, 3), Ok(None));
        assert_eq!(w.add(a("10.1.2.0"), 24, 4), Ok(None));
        assert_eq!(w.add(a("10.1.2.128"), 25, 5), Ok(None));
        assert_eq!(w.add(a("10.1.2.200"), 32, 6), Ok(None));
        let f = w.fib().clone();
        let l = |s| f.lookup(a(s));
        assert_eq!(l("11.0.0.0"), 1);
        assert_eq!(l("10.9.0.0"), 2);
        assert_eq!(l("10.1.9.0"), 3);
        assert_eq!(l("10.1.2.1"), 4);
        assert_eq!(l("10.1.2.129"), 5);
        assert_eq!(l("10.1.2.200"), 6);
        assert_eq!(
            w.add(a("10.1.2.255"), 25, 7),
            Ok(Some(5)),
            "replace masks host bits"
        );
        assert_eq!(l("10.1.2.129"), 7);
        assert_eq!(w.delete(a("10.1.2.0"), 24), Ok(Some(4)));
        assert_eq!(l("10.1.2.1"), 3);
        assert_eq!(l("10.1.2.129"), 7);
        assert_eq!(w.delete(a("10.1.2.128"), 25), Ok(Some(7)));
        assert_eq!(l("10.1.2.129"), 3);
        assert_eq!(l("10.1.2.200"), 6);
        assert_eq!(w.delete(a("10.1.2.200"), 32), Ok(Some(6)));
        assert_eq!(f.tbl8_group_of(a("10.1.2.0")), None, "group folded back");
        assert_eq!(l("10.1.2.200"), 3);
        assert_eq!(w.delete(a("10.1.0.0"), 16), Ok(Some(3)));
        assert_eq!(w.delete(a("10.1.0.0"), 16), Ok(None));
        assert_eq!(l("10.1.2.200"), 2);
        assert_eq!(w.delete(0, 0), Ok(Some(1)));
        assert_eq!(l("11.0.0.0"), LEAF_MISS);
        assert_eq!(w.len(), 1);
        assert_eq!(w.iter().collect::<Vec<_>>(), vec![(a("10.0.0.0"), 8, 2)]);
        assert_eq!(w.get(a("10.2.3.4"), 8), Some(2));
    }

    #[test]
    fn rejects_bad_input() {
        let mut w = writer(1);
        assert_eq!(w.add(0, 33, 1), Err(FibError::BadPrefixLength(33)));
        assert_eq!(
            w.add(0, 8, LEAF_LIMIT),
            Err(FibError::LeafOutOfRange(LEAF_LIMIT))
        );
        assert_eq!(w.delete(0, 40), Err(FibError::BadPrefixLength(40)));
        w.add(a("1.1.1.0"), 25, 1).unwrap();
        assert_eq!(
            w.add(a("1.1.2.0"), 25, 1),
            Err(FibError::Tbl8Exhausted { retired: 0 })
        );
        assert_eq!(w.len(), 1, "a failed add leaves the route set alone");
        assert_eq!(w.fib().lookup(a("1.1.2.1")), LEAF_MISS);
    }

    #[test]
    fn batch_variants_agree_with_scalar() {
        let mut w = writer(64);
        let mut x = 0x1234_5678u32;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for k in 0..300u32 {
            // Short prefixes write 2^(24-len) entries: slow in debug builds, so few of them.
            let len = (next() % 25 + 8) as u8;
            let _ = w.add(next() & 0x0fff_ffff, len, k);
        }
        w.add(0, 0, 999).unwrap();
        let addrs: Vec<u32> = (0..1000).map(|_| next() & 0x0fff_ffff).collect();
        let want: Vec<u32> = addrs.iter().map(|&x| w.fib().lookup(x)).collect();
        for imp in [LookupImpl::Scalar, LookupImpl::Avx2, LookupImpl::Avx512] {
            let mut out = vec![0; 1000];
            w.fib().lookup_batch_with(imp, &addrs, &mut out);
            assert_eq!(out, want, "{imp:?}");
        }
    }
}
