//! Translations: a VIP, port and protocol, and the backends (paths) new flows to it go to.
//! The control side builds the whole table and publishes it (`rcu::Published`); workers read
//! their snapshot, so an update changes only flows that start after it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// `cnat_translation_flags`.
pub mod tflags {
    pub const ALLOC_PORT: u8 = 1;
    /// rvpp's own (unused by VPP): ClientIP session affinity, a client's new flows go to the
    /// backend its last ones went to, for `Timeouts::affinity` seconds.
    pub const AFFINITY: u8 = 0x20;
    pub const NO_RETURN_SESSION: u8 = 4;
    pub const NO_CLIENT: u8 = 8;
    /// rvpp's own (VPP leaves bit 0x40 unused): externalTrafficPolicy=Local, so new flows
    /// go only to paths flagged `pflags::LOCAL` (the node's own backends).
    pub const LOCAL_ONLY: u8 = 0x40;
}

/// `cnat_endpoint_tuple_flags`.
pub mod pflags {
    /// Maglev DSR: the packet is forwarded without rewriting its destination.
    pub const NO_NAT: u8 = 2;
    /// rvpp's own: a backend on this node (for `tflags::LOCAL_ONLY`).
    pub const LOCAL: u8 = 0x40;
}

/// VPP's default flow hash: src and dst address, src and dst port, protocol, flow label.
pub const FLOW_HASH_DEFAULT: u32 = 0x9f;
pub mod fh {
    pub const SRC_IP: u32 = 1;
    pub const DST_IP: u32 = 2;
    pub const SRC_PORT: u32 = 4;
    pub const DST_PORT: u32 = 8;
    pub const PROTO: u32 = 16;
    pub const REVERSE: u32 = 32;
    pub const SYMMETRIC: u32 = 64;
}

/// cnat's default maglev table length (a prime).
pub const MAGLEV_LEN: usize = 1009;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LbType {
    #[default]
    Default,
    Maglev,
}

/// An address (v4-mapped when `!ip6`) and port; address 0 means "unset" (keep the packet's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub addr: u128,
    pub port: u16,
    pub ip6: bool,
}

impl Endpoint {
    pub fn is_set(&self) -> bool {
        self.addr != 0 && self.addr != 0xffff_0000_0000
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathEp {
    pub src: Endpoint,
    pub dst: Endpoint,
    pub flags: u8,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Translation {
    pub id: u32,
    pub vip: Endpoint,
    pub proto: u8,
    pub is_real_ip: bool,
    pub flags: u8,
    pub lb: LbType,
    /// 0 is VPP's default (0x9f).
    pub flow_hash_config: u32,
    pub paths: Vec<PathEp>,
    /// Maglev: slot -> path index (empty without maglev or paths).
    pub maglev: Vec<u16>,
    /// Indices of the paths new flows may use.
    pub active: Vec<u16>,
    /// Whether a session was ever created for it: a delete or update of a translation that
    /// never had one skips the session scan.
    pub used: Used,
}

/// A flag workers set once (the first session of a translation); a load before the store
/// keeps later sessions from writing the shared line. Equal to any other: it is not config.
#[derive(Debug, Default)]
pub struct Used(AtomicBool);

impl Used {
    #[inline(always)]
    pub fn mark(&self) {
        if !self.0.load(Ordering::Relaxed) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl Clone for Used {
    fn clone(&self) -> Self {
        Self(AtomicBool::new(self.get()))
    }
}

impl PartialEq for Used {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Used {}

/// (vip address, port, protocol).
pub type VipKey = (u128, u16, u8);

impl Translation {
    pub fn key(&self) -> VipKey {
        (self.vip.addr, self.vip.port, self.proto)
    }

    /// Build the maglev table when the translation uses it.
    pub fn prepare(&mut self) {
        let local_only = self.flags & tflags::LOCAL_ONLY != 0;
        self.active = (0..self.paths.len() as u16)
            .filter(|&i| !local_only || self.paths[i as usize].flags & pflags::LOCAL != 0)
            .collect();
        self.maglev = if self.lb == LbType::Maglev && !self.active.is_empty() {
            let usable: Vec<PathEp> = self
                .active
                .iter()
                .map(|&i| self.paths[i as usize])
                .collect();
            maglev_table(&usable, MAGLEV_LEN)
                .into_iter()
                .map(|k| self.active[k as usize])
                .collect()
        } else {
            Vec::new()
        };
    }

    /// The backend for a new flow with hash `h` (None: no paths).
    #[inline]
    pub fn pick(&self, h: u32) -> Option<&PathEp> {
        if self.active.is_empty() {
            return None;
        }
        let i = if self.maglev.is_empty() {
            self.active[h as usize % self.active.len()]
        } else {
            self.maglev[h as usize % self.maglev.len()]
        };
        self.paths.get(i as usize)
    }

    /// Whether `ep` is still a backend new flows may use.
    pub fn has_active(&self, addr: u128, port: u16) -> bool {
        self.active.iter().any(|&i| {
            let d = &self.paths[i as usize].dst;
            d.addr == addr && d.port == port
        })
    }

    /// The active path to `addr` and `port`.
    pub fn active_path(&self, addr: u128, port: u16) -> Option<&PathEp> {
        self.active
            .iter()
            .map(|&i| &self.paths[i as usize])
            .find(|p| p.dst.addr == addr && p.dst.port == port)
    }

    pub fn flow_hash_fields(&self) -> u32 {
        if self.flow_hash_config == 0 {
            FLOW_HASH_DEFAULT
        } else {
            self.flow_hash_config
        }
    }
}

/// Hash of the fields `cfg` selects (VPP's `IP_FLOW_HASH_*` bits).
#[inline]
pub fn flow_hash(cfg: u32, src: u128, dst: u128, sport: u16, dport: u16, proto: u8) -> u32 {
    let (mut a, mut b, mut pa, mut pb) = (0u128, 0u128, 0u16, 0u16);
    if cfg & fh::SRC_IP != 0 {
        a = src;
    }
    if cfg & fh::DST_IP != 0 {
        b = dst;
    }
    if cfg & fh::SRC_PORT != 0 {
        pa = sport;
    }
    if cfg & fh::DST_PORT != 0 {
        pb = dport;
    }
    if cfg & fh::REVERSE != 0 {
        std::mem::swap(&mut a, &mut b);
        std::mem::swap(&mut pa, &mut pb);
    }
    if cfg & fh::SYMMETRIC != 0 && (a, pa) > (b, pb) {
        std::mem::swap(&mut a, &mut b);
        std::mem::swap(&mut pa, &mut pb);
    }
    let p = if cfg & fh::PROTO != 0 { proto } else { 0 };
    let mut x = (a as u64) ^ ((a >> 64) as u64).rotate_left(21);
    x ^= ((b as u64) ^ ((b >> 64) as u64).rotate_left(13)).rotate_left(32);
    x ^= ((pa as u64) << 24 | (pb as u64) << 8 | p as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    (x ^ (x >> 33)) as u32
}

fn fnv(seed: u64, ep: &Endpoint) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in ep
        .addr
        .to_be_bytes()
        .iter()
        .chain(ep.port.to_be_bytes().iter())
    {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h ^ (h >> 29)
}

/// Maglev (Eisenbud et al., 2016): each backend walks its own permutation of the `m` slots
/// (offset and skip from two hashes of its address and port) and the backends take turns
/// claiming their next free slot. A backend's permutation does not depend on the others, so
/// removing one moves mostly the slots it held.
pub fn maglev_table(paths: &[PathEp], m: usize) -> Vec<u16> {
    let n = paths.len();
    let perm: Vec<(usize, usize)> = paths
        .iter()
        .map(|p| {
            let off = (fnv(0x51, &p.dst) % m as u64) as usize;
            let skip = (fnv(0xa7, &p.dst) % (m as u64 - 1)) as usize + 1;
            (off, skip)
        })
        .collect();
    let mut next = vec![0usize; n];
    let mut table = vec![u16::MAX; m];
    let mut filled = 0;
    'outer: loop {
        for i in 0..n {
            let (off, skip) = perm[i];
            let mut c = (off + next[i] * skip) % m;
            while table[c] != u16::MAX {
                next[i] += 1;
                c = (off + next[i] * skip) % m;
            }
            table[c] = i as u16;
            next[i] += 1;
            filled += 1;
            if filled == m {
                break 'outer;
            }
        }
    }
    table
}

/// Leaves of the table: `GROUPS` groups of `GROUPS` hash maps, picked by a hash of the key.
const GROUP_BITS: u32 = 6;
const GROUPS: usize = 1 << GROUP_BITS;
type Leaf = HashMap<VipKey, Arc<Translation>, ahash::RandomState>;
type Group = [Arc<Leaf>; GROUPS];

/// Every translation by VIP key. Published whole, but persistent: a copy shares everything
/// with the original, and an edit copies one group's pointers and one leaf (1M translations
/// are ~250 per leaf), so programming N translations costs O(N), not O(N²).
#[derive(Clone, Debug)]
pub struct TranslationTable {
    groups: [Arc<Group>; GROUPS],
    len: usize,
}

impl Default for TranslationTable {
    fn default() -> Self {
        let leaf = Arc::new(Leaf::default());
        let group: Arc<Group> = Arc::new(std::array::from_fn(|_| leaf.clone()));
        Self {
            groups: std::array::from_fn(|_| group.clone()),
            len: 0,
        }
    }
}

#[inline(always)]
fn leaf_of(k: &VipKey) -> (usize, usize) {
    let (a, port, proto) = *k;
    let x = (a as u64 ^ (a >> 64) as u64 ^ ((port as u64) << 8 | proto as u64) << 32)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let i = (x >> (64 - 2 * GROUP_BITS)) as usize;
    (i >> GROUP_BITS, i & (GROUPS - 1))
}

impl TranslationTable {
    #[inline]
    pub fn get(&self, addr: u128, port: u16, proto: u8) -> Option<&Translation> {
        if self.len == 0 {
            return None;
        }
        let k = (addr, port, proto);
        let (g, l) = leaf_of(&k);
        self.groups[g][l].get(&k).map(|t| &**t)
    }
    pub fn get_key(&self, k: &VipKey) -> Option<&Arc<Translation>> {
        let (g, l) = leaf_of(k);
        self.groups[g][l].get(k)
    }
    /// Add or replace; returns the translation it replaced.
    pub fn insert(&mut self, t: Translation) -> Option<Arc<Translation>> {
        let k = t.key();
        let (g, l) = leaf_of(&k);
        let leaf = Arc::make_mut(&mut Arc::make_mut(&mut self.groups[g])[l]);
        let old = leaf.insert(k, Arc::new(t));
        if old.is_none() {
            self.len += 1;
        }
        old
    }
    pub fn remove(&mut self, k: &VipKey) -> Option<Arc<Translation>> {
        let (g, l) = leaf_of(k);
        if !self.groups[g][l].contains_key(k) {
            return None;
        }
        let old = Arc::make_mut(&mut Arc::make_mut(&mut self.groups[g])[l]).remove(k);
        self.len -= old.is_some() as usize;
        old
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Every translation, in no order.
    pub fn iter(&self) -> impl Iterator<Item = &Translation> {
        self.groups
            .iter()
            .flat_map(|g| g.iter())
            .flat_map(|l| l.values())
            .map(|t| &**t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(i: u32) -> PathEp {
        PathEp {
            src: Endpoint::default(),
            dst: Endpoint {
                addr: 0xffff_c613_0000 | i as u128,
                port: 8080,
                ip6: false,
            },
            flags: 0,
        }
    }

    #[test]
    fn maglev_fills_evenly_and_moves_little_when_a_backend_goes() {
        let ps: Vec<PathEp> = (0..10).map(path).collect();
        let t = maglev_table(&ps, MAGLEV_LEN);
        assert_eq!(t.len(), MAGLEV_LEN);
        let mut counts = [0usize; 10];
        for &i in &t {
            counts[i as usize] += 1;
        }
        for c in counts {
            assert!((90..=112).contains(&c), "uneven: {counts:?}");
        }
        // Remove backend 4: slots that pointed elsewhere mostly keep their backend.
        let mut less = ps.clone();
        less.remove(4);
        let t2 = maglev_table(&less, MAGLEV_LEN);
        let (mut kept, mut others) = (0, 0);
        for (a, b) in t.iter().zip(&t2) {
            if *a == 4 {
                continue;
            }
            others += 1;
            if ps[*a as usize] == less[*b as usize] {
                kept += 1;
            }
        }
        assert!(
            kept * 100 / others >= 85,
            "only {kept} of {others} slots kept their backend"
        );
        // The same backends in another order give the same backend per slot.
        let mut rev = ps.clone();
        rev.reverse();
        let t3 = maglev_table(&rev, MAGLEV_LEN);
        let same = t
            .iter()
            .zip(&t3)
            .filter(|(a, b)| ps[**a as usize] == rev[**b as usize])
            .count();
        assert!(same * 100 / MAGLEV_LEN >= 85, "{same}");
    }

    #[test]
    fn table_copies_are_independent_and_edits_are_cheap() {
        let tr = |i: u32| Translation {
            vip: Endpoint {
                addr: 0xffff_c613_0000 | (i >> 8) as u128,
                port: i as u16,
                ip6: false,
            },
            proto: 6,
            id: i,
            ..Default::default()
        };
        let mut a = TranslationTable::default();
        for i in 0..10_000 {
            assert!(a.insert(tr(i)).is_none());
        }
        let b = a.clone();
        assert!(a.insert(tr(5)).is_some(), "replace");
        assert!(a.remove(&tr(7).key()).is_some());
        assert!(a.remove(&tr(7).key()).is_none());
        assert_eq!((a.len(), b.len()), (9_999, 10_000));
        assert!(b.get_key(&tr(7).key()).is_some(), "the copy keeps its own");
        assert_eq!(a.iter().count(), 9_999);
        let k = tr(42).key();
        assert_eq!(a.get(k.0, k.1, k.2).map(|t| t.id), Some(42));
        assert!(a.get(k.0, k.1, 17).is_none());
        // A copy shares the leaves it did not edit: only one group of leaves was copied.
        let shared = (0..GROUPS)
            .filter(|&g| Arc::ptr_eq(&a.groups[g], &b.groups[g]))
            .count();
        assert!(shared >= GROUPS - 2, "{shared} of {GROUPS} groups shared");
    }

    #[test]
    fn flow_hash_fields_are_selected() {
        let h = |cfg, sp| flow_hash(cfg, 1, 2, sp, 80, 6);
        assert_ne!(h(FLOW_HASH_DEFAULT, 1000), h(FLOW_HASH_DEFAULT, 1001));
        let no_sport = FLOW_HASH_DEFAULT & !fh::SRC_PORT;
        assert_eq!(h(no_sport, 1000), h(no_sport, 1001), "source port ignored");
        let sym = fh::SRC_IP | fh::DST_IP | fh::SRC_PORT | fh::DST_PORT | fh::SYMMETRIC;
        assert_eq!(flow_hash(sym, 1, 2, 5, 6, 6), flow_hash(sym, 2, 1, 6, 5, 6));
    }

    #[test]
    fn pick_uses_maglev_or_modulo() {
        let mut t = Translation {
            paths: (0..3).map(path).collect(),
            lb: LbType::Maglev,
            ..Default::default()
        };
        t.prepare();
        assert_eq!(t.maglev.len(), MAGLEV_LEN);
        assert!(t.pick(12345).is_some());
        t.lb = LbType::Default;
        t.prepare();
        assert_eq!(t.pick(4), Some(&t.paths[1]));
        // externalTrafficPolicy=Local: only the local path takes new flows.
        t.paths[2].flags = pflags::LOCAL;
        t.flags = tflags::LOCAL_ONLY;
        t.prepare();
        assert!((0..100).all(|h| t.pick(h) == Some(&t.paths[2])));
        t.lb = LbType::Maglev;
        t.prepare();
        assert!((0..100).all(|h| t.pick(h) == Some(&t.paths[2])));
        t.paths[2].flags = 0;
        t.prepare();
        assert!(t.pick(4).is_none(), "no local backend: none");
        t.paths.clear();
        t.flags = 0;
        t.prepare();
        assert!(t.pick(4).is_none());
    }
}
