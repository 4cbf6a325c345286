//! VPP's vnet classifier on interface input (`ip4-inacl` / `ip6-inacl`), as calico-vpp's CNI
//! server uses it to send DNS from pod taps to the host tap (`ip_session_redirect`).
//!
//! A table is a mask of `match_n` 16-byte vectors, read `skip_n` vectors (plus the table's
//! current-data offset) past the IP header. A packet's masked key is hashed into the table's
//! sessions (open addressing, at most half full); a hit takes the session's action, a miss
//! goes to the next table of the chain or the table's miss action. Actions: continue along the
//! arc (VPP's ~0), drop (VPP's next index 0), or redirect to an adjacency (a session redirect's
//! path). Bytes past the packet's end read as zero; a packet too short for the bytes the mask
//! looks at is counted and classified as a miss.
//!
//! The whole classifier is one [`Published`] value: an edit copies the table it changes (an
//! `Arc` per table) and publishes; workers take the new one at their next vector.

use crate::feature::{Feature, FeatureTables};
use crate::forwarding::Af;
use crate::graph::{GraphBuilder, Node, NodeInfo};
use crate::rcu::{Published, Snapshot};
use crate::runtime::Ctx;
use crate::tables::AdjKind;
use std::sync::Arc;

/// Bytes in a classifier vector (VPP's u32x4).
pub const VECTOR: usize = 16;
/// VPP's limit on match vectors.
pub const MAX_MATCH: usize = 5;
/// Skip vectors rvpp accepts (the key must sit within a packet's first 256 bytes or so).
pub const MAX_SKIP: usize = 8;
/// Tables a chain walk visits at most (chains are checked for cycles; this bounds the walk).
pub const MAX_CHAIN: usize = 8;
const WORDS: usize = MAX_MATCH * VECTOR / 8;
const EMPTY: u32 = u32::MAX;

/// A masked key, as native-endian words of the packet's bytes.
pub type Key = [u64; WORDS];

pub const IP4: Feature = Feature::new("ip4-unicast", "ip4-inacl")
    .runs_after(&["ip4-rx-urpf-loose", "ip4-rx-urpf-strict"])
    .runs_before(&["cnat-input-ip4", "npol-rx-ip4"]);
pub const IP6: Feature = Feature::new("ip6-unicast", "ip6-inacl")
    .runs_after(&["ip6-rx-urpf-loose", "ip6-rx-urpf-strict"])
    .runs_before(&["cnat-input-ip6", "npol-rx-ip6"]);

/// The feature for a family.
pub const fn feature(af: Af) -> Feature {
    match af {
        Af::Ip4 => IP4,
        Af::Ip6 => IP6,
    }
}

/// What a hit (or a table's miss) does with the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// On along the feature arc (VPP's next index ~0).
    Continue,
    /// Dropped (VPP's next index 0, ACL_NEXT_INDEX_DENY).
    Drop,
    /// Sent to this adjacency (a rewrite out of an interface, or a lookup in a table).
    Redirect(u32),
}

impl Action {
    /// VPP's miss/hit next index: ~0 continues, 0 drops; others name edges rvpp has not.
    pub fn from_next_index(i: u32) -> Option<Self> {
        match i {
            u32::MAX => Some(Self::Continue),
            0 => Some(Self::Drop),
            _ => None,
        }
    }
}

/// One session: a masked key and what it does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub key: Key,
    pub action: Action,
    pub opaque: u32,
}

/// Why a table could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    /// match_n outside 1..=5, skip_n over [`MAX_SKIP`], no buckets, or a mask whose length is
    /// not match_n vectors.
    BadShape,
}

/// One classifier table.
#[derive(Clone, Debug)]
pub struct Table {
    pub mask: Key,
    pub skip_n: u32,
    pub match_n: u32,
    pub nbuckets: u32,
    pub next_table: Option<u32>,
    pub miss: Action,
    pub offset: i16,
    /// Bytes past the key's start that the mask looks at (through its last non-zero byte).
    need: usize,
    sessions: Vec<Session>,
    slots: Vec<u32>,
}

/// What a lookup in one table found.
#[derive(Debug, PartialEq, Eq)]
pub enum Found<'a> {
    Hit(&'a Session),
    Miss,
    /// The packet ends before the bytes the mask looks at.
    Short,
}

#[inline]
fn hash(k: &Key, words: usize) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &w in &k[..words] {
        h = (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
    }
    h ^ (h >> 32)
}

impl Table {
    /// A table with `mask` (exactly `match_n` vectors).
    pub fn new(
        mask: &[u8],
        skip_n: u32,
        match_n: u32,
        nbuckets: u32,
        next_table: Option<u32>,
        miss: Action,
        offset: i16,
    ) -> Result<Self, TableError> {
        let m = match_n as usize;
        if !(1..=MAX_MATCH).contains(&m)
            || skip_n as usize > MAX_SKIP
            || nbuckets == 0
            || mask.len() != m * VECTOR
            || offset < 0
        {
            return Err(TableError::BadShape);
        }
        let need = mask.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        Ok(Self {
            mask: key_of(mask, [u64::MAX; WORDS]),
            skip_n,
            match_n,
            nbuckets: nbuckets.next_power_of_two(),
            next_table,
            miss,
            offset,
            need,
            sessions: Vec::new(),
            slots: vec![EMPTY; 2],
        })
    }

    fn words(&self) -> usize {
        self.match_n as usize * VECTOR / 8
    }

    /// Where the key starts, past the IP header.
    fn start(&self) -> usize {
        self.skip_n as usize * VECTOR + self.offset as usize
    }

    /// The key a session's match bytes give: like VPP's, `matched` covers the skip vectors
    /// too; missing bytes are zero.
    pub fn key(&self, matched: &[u8]) -> Key {
        let from = (self.skip_n as usize * VECTOR).min(matched.len());
        key_of(&matched[from..], self.mask)
    }

    pub fn sessions(&self) -> &[Session] {
        &self.sessions
    }

    /// Add or replace the session with `s.key`.
    pub fn upsert(&mut self, s: Session) {
        match self.sessions.iter_mut().find(|e| e.key == s.key) {
            Some(e) => *e = s,
            None => self.sessions.push(s),
        }
        self.rehash();
    }

    /// Remove the session with `key`; false when there is none.
    pub fn remove(&mut self, key: &Key) -> bool {
        let n = self.sessions.len();
        self.sessions.retain(|e| &e.key != key);
        let gone = self.sessions.len() != n;
        if gone {
            self.rehash();
        }
        gone
    }

    fn rehash(&mut self) {
        let len = (self.sessions.len() * 2).max(2).next_power_of_two();
        let mut slots = vec![EMPTY; len];
        let words = self.words();
        for (i, s) in self.sessions.iter().enumerate() {
            let mut at = hash(&s.key, words) as usize & (len - 1);
            while slots[at] != EMPTY {
                at = (at + 1) & (len - 1);
            }
            slots[at] = i as u32;
        }
        self.slots = slots;
    }

    /// Look up the packet whose IP header starts `ip`.
    #[inline]
    pub fn lookup(&self, ip: &[u8]) -> Found<'_> {
        let bytes = ip.get(self.start()..).unwrap_or(&[]);
        if bytes.len() < self.need {
            return Found::Short;
        }
        let words = self.words();
        let key = if bytes.len() >= words * 8 {
            let mut k = [0u64; WORDS];
            for ((k, c), m) in k.iter_mut().zip(bytes.chunks_exact(8)).zip(&self.mask).take(words) {
                *k = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) & m;
            }
            k
        } else {
            key_of(bytes, self.mask)
        };
        let m = self.slots.len() - 1;
        let mut at = hash(&key, words) as usize & m;
        // At most half the slots are full, so an empty one ends every probe.
        for _ in 0..self.slots.len() {
            let s = self.slots[at];
            match self.sessions.get(s as usize) {
                None => return Found::Miss,
                Some(e) if e.key[..words] == key[..words] => return Found::Hit(e),
                Some(_) => at = (at + 1) & m,
            }
        }
        Found::Miss
    }
}

/// Bytes as key words (zero past their end), masked.
fn key_of(bytes: &[u8], mask: Key) -> Key {
    let mut b = [0u8; WORDS * 8];
    let n = bytes.len().min(b.len());
    b[..n].copy_from_slice(&bytes[..n]);
    let mut k = [0u64; WORDS];
    for ((k, c), m) in k.iter_mut().zip(b.chunks_exact(8)).zip(mask) {
        *k = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) & m;
    }
    k
}

/// Every table (by VPP's table index) and each interface's input table per family.
#[derive(Clone, Debug, Default)]
pub struct Classifier {
    pub tables: Vec<Option<Arc<Table>>>,
    /// sw_if_index -> first table, per family (`EMPTY`: none).
    inacl: [Vec<u32>; 2],
}

impl Classifier {
    pub fn table(&self, i: u32) -> Option<&Table> {
        self.tables.get(i as usize).and_then(|t| t.as_deref())
    }

    /// The input table of `sw` for `af`.
    pub fn inacl(&self, af: Af, sw: u32) -> Option<u32> {
        self.inacl[af.is_ip6() as usize]
            .get(sw as usize)
            .copied()
            .filter(|&t| t != EMPTY)
    }

    pub fn set_inacl(&mut self, af: Af, sw: u32, table: Option<u32>) {
        let v = &mut self.inacl[af.is_ip6() as usize];
        if v.len() <= sw as usize {
            v.resize(sw as usize + 1, EMPTY);
        }
        v[sw as usize] = table.unwrap_or(EMPTY);
    }

    /// (family, interface, table) of every input table set.
    pub fn inacls(&self) -> Vec<(Af, u32, u32)> {
        let mut v = Vec::new();
        for af in [Af::Ip4, Af::Ip6] {
            for (sw, &t) in self.inacl[af.is_ip6() as usize].iter().enumerate() {
                if t != EMPTY {
                    v.push((af, sw as u32, t));
                }
            }
        }
        v
    }

    /// Walk the chain from table `t` for the packet at `ip`: the action, and whether it hit
    /// (and after how many tables), or was short somewhere.
    #[inline]
    pub fn classify(&self, mut t: u32, ip: &[u8]) -> Verdict {
        let mut short = false;
        for depth in 0..MAX_CHAIN {
            let Some(tab) = self.table(t) else {
                break;
            };
            match tab.lookup(ip) {
                Found::Hit(s) => {
                    return Verdict {
                        action: s.action,
                        hit: Some(depth),
                        short,
                    }
                }
                Found::Short => short = true,
                Found::Miss => {}
            }
            match tab.next_table {
                Some(n) => t = n,
                None => {
                    return Verdict {
                        action: tab.miss,
                        hit: None,
                        short,
                    }
                }
            }
        }
        Verdict {
            action: Action::Continue,
            hit: None,
            short,
        }
    }
}

/// What the walk decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub action: Action,
    /// The chain depth of the table that hit.
    pub hit: Option<usize>,
    pub short: bool,
}

/// The feature's shared table, as kept in [`FeatureTables`].
pub type Shared = Published<Classifier>;

crate::next_edges! {
    mod next4 {
        DROP => "error-drop",
        REWRITE => "ip4-rewrite",
        RESOLVE => "ip4-arp",
        LOOKUP => "ip4-lookup",
    }
}

crate::next_edges! {
    mod next6 {
        DROP => "error-drop",
        REWRITE => "ip6-rewrite",
        RESOLVE => "ip6-discover",
        LOOKUP => "ip6-lookup",
    }
}

crate::node_errors! {
    pub mod error {
        HIT => "input ACL hits",
        MISS => "input ACL misses",
        CHAIN_HIT => "input ACL hits after chain walk",
        REDIRECTED => "packets redirected by a session (ip session redirect)",
        DROP => "input ACL drops (a drop action)",
        SHORT => "packet shorter than a table's mask (classified as a miss)",
        LOOP => "redirected into a lookup too often (dropped)",
    }
}

pub fn register(b: GraphBuilder, tables: &FeatureTables) -> GraphBuilder {
    let t = tables.get::<Shared>();
    b.feature(IP4, Box::new(InAcl::new(t.clone(), Af::Ip4)))
        .feature(IP6, Box::new(InAcl::new(t, Af::Ip6)))
}

/// ip4-inacl / ip6-inacl.
pub struct InAcl {
    table: Arc<Shared>,
    snap: Snapshot<Classifier>,
    af: Af,
}

impl InAcl {
    pub fn new(table: Arc<Shared>, af: Af) -> Self {
        Self {
            snap: table.snapshot(),
            table,
            af,
        }
    }
}

impl Node for InAcl {
    fn info(&self) -> NodeInfo {
        let nexts = match self.af {
            Af::Ip4 => next4::NAMES,
            Af::Ip6 => next6::NAMES,
        };
        NodeInfo::internal(feature(self.af).node, nexts, error::NAMES)
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        self.snap.refresh(&self.table);
        let (c, af) = (self.snap.get(), self.af);
        let (errs, arc) = (cx.errs(), cx.arc());
        let fwd = cx.tables.fwd.get();
        let mut view = cx.bufs.view();
        let [mut hits, mut misses, mut chained, mut redirected, mut short] = [0u64; 5];
        for (&bi, next_out) in bufs.iter().zip(nexts.iter_mut()) {
            let b = view.get(bi);
            let Some(t) = c.inacl(af, b.meta.rx_sw_if_index) else {
                *next_out = arc.next(b.meta.feature_mask);
                continue;
            };
            let v = c.classify(t, b.data());
            short += v.short as u64;
            match v.hit {
                Some(0) => hits += 1,
                Some(_) => chained += 1,
                None => misses += 1,
            }
            *next_out = match v.action {
                Action::Continue => arc.next(b.meta.feature_mask),
                Action::Drop => {
                    b.meta.error = errs.error(error::DROP);
                    next4::DROP
                }
                Action::Redirect(ai) => {
                    let adj = fwd.adj(ai);
                    match adj.kind {
                        AdjKind::Lookup if b.meta.relookups >= crate::tables::MAX_RELOOKUPS => {
                            b.meta.error = errs.error(error::LOOP);
                            next4::DROP
                        }
                        AdjKind::Lookup => {
                            redirected += 1;
                            b.meta.relookups += 1;
                            b.meta.fib_index = adj.lookup_fib;
                            next4::LOOKUP
                        }
                        AdjKind::Rewrite | AdjKind::Glean | AdjKind::Incomplete => {
                            redirected += 1;
                            b.meta.adj_index = ai;
                            if adj.kind == AdjKind::Rewrite {
                                next4::REWRITE
                            } else {
                                next4::RESOLVE
                            }
                        }
                        _ => {
                            b.meta.error = errs.error(error::DROP);
                            next4::DROP
                        }
                    }
                }
            };
        }
        errs.count(error::HIT, hits);
        errs.count(error::MISS, misses);
        errs.count(error::CHAIN_HIT, chained);
        errs.count(error::REDIRECTED, redirected);
        errs.count(error::SHORT, short);
    }

    fn trace(&self, b: &crate::buffer::Buf<'_>) -> String {
        let t = self.snap.get().inacl(self.af, b.meta.rx_sw_if_index);
        format!("INACL: sw_if_index {}, table {:?}", b.meta.rx_sw_if_index, t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// calico's DstThreeTupleMask: IPv4 protocol, destination, UDP/TCP destination port,
    /// padded to two vectors.
    fn dst3_mask() -> Vec<u8> {
        let mut m = vec![0u8; 32];
        m[9] = 0xff;
        m[16..20].fill(0xff);
        m[22..24].fill(0xff);
        m
    }

    fn dns_match(proto: u8, dst: [u8; 4], port: u16) -> Vec<u8> {
        let mut m = vec![0u8; 28];
        m[9] = proto;
        m[16..20].copy_from_slice(&dst);
        m[22..24].copy_from_slice(&port.to_be_bytes());
        m
    }

    fn packet(proto: u8, dst: [u8; 4], port: u16, payload: usize) -> Vec<u8> {
        let mut p = vec![0u8; 28 + payload];
        p[0] = 0x45;
        p[8] = 64;
        p[9] = proto;
        p[12..16].copy_from_slice(&[198, 18, 20, 5]);
        p[16..20].copy_from_slice(&dst);
        p[20..22].copy_from_slice(&40000u16.to_be_bytes());
        p[22..24].copy_from_slice(&port.to_be_bytes());
        p
    }

    fn dns_table() -> Table {
        let mut t = Table::new(&dst3_mask(), 0, 2, 2, None, Action::Continue, 0).unwrap();
        let k = t.key(&dns_match(17, [198, 18, 30, 53], 53));
        t.upsert(Session {
            key: k,
            action: Action::Redirect(7),
            opaque: 0,
        });
        t
    }

    #[test]
    fn the_masked_three_tuple_hits_and_the_rest_misses() {
        let t = dns_table();
        let hit = |p: &[u8]| matches!(t.lookup(p), Found::Hit(s) if s.action == Action::Redirect(7));
        assert!(hit(&packet(17, [198, 18, 30, 53], 53, 20)));
        let mut other_src = packet(17, [198, 18, 30, 53], 53, 20);
        other_src[12] = 10;
        other_src[21] = 9;
        assert!(hit(&other_src), "source and source port are masked out");
        assert_eq!(t.lookup(&packet(17, [198, 18, 30, 53], 54, 20)), Found::Miss);
        assert_eq!(t.lookup(&packet(6, [198, 18, 30, 53], 53, 20)), Found::Miss);
        assert_eq!(t.lookup(&packet(17, [198, 18, 30, 54], 53, 20)), Found::Miss);
        assert!(hit(&packet(17, [198, 18, 30, 53], 53, 0)), "28 bytes: the mask ends at 24");
        assert_eq!(t.lookup(&packet(17, [198, 18, 30, 53], 53, 0)[..23]), Found::Short);
    }

    #[test]
    fn bad_shapes_are_refused() {
        let m = dst3_mask();
        let new = |mask: &[u8], skip, n, buckets, off| {
            Table::new(mask, skip, n, buckets, None, Action::Continue, off)
        };
        assert!(new(&m, 0, 2, 2, 0).is_ok());
        assert_eq!(new(&m[..28], 0, 2, 2, 0).unwrap_err(), TableError::BadShape);
        assert!(new(&m, 0, 1, 2, 0).is_err(), "mask longer than its vectors");
        assert!(new(&[], 0, 0, 2, 0).is_err());
        assert!(new(&[0xff; 96], 0, 6, 2, 0).is_err(), "over 5 vectors");
        assert!(new(&m, 0, 2, 0, 0).is_err(), "no buckets");
        assert!(new(&m, 9, 2, 2, 0).is_err());
        assert!(new(&m, 0, 2, 2, -14).is_err());
    }

    #[test]
    fn many_sessions_all_found_and_removed() {
        let mut t = Table::new(&dst3_mask(), 0, 2, 64, None, Action::Drop, 0).unwrap();
        for i in 0..500u16 {
            let k = t.key(&dns_match(17, [198, 18, (i >> 8) as u8, i as u8], i));
            t.upsert(Session {
                key: k,
                action: Action::Redirect(i as u32),
                opaque: 0,
            });
        }
        for i in 0..500u16 {
            let p = packet(17, [198, 18, (i >> 8) as u8, i as u8], i, 4);
            assert!(matches!(t.lookup(&p), Found::Hit(s) if s.action == Action::Redirect(i as u32)));
        }
        let k = t.key(&dns_match(17, [198, 18, 0, 3], 3));
        assert!(t.remove(&k) && !t.remove(&k));
        assert_eq!(t.lookup(&packet(17, [198, 18, 0, 3], 3, 4)), Found::Miss);
        assert_eq!(t.sessions().len(), 499);
    }

    #[test]
    fn a_miss_walks_the_chain_then_takes_the_last_miss_action() {
        let mut c = Classifier::default();
        let mut first = Table::new(&dst3_mask(), 0, 2, 2, Some(1), Action::Continue, 0).unwrap();
        first.upsert(Session {
            key: first.key(&dns_match(17, [198, 18, 30, 53], 53)),
            action: Action::Redirect(3),
            opaque: 0,
        });
        let mut second = Table::new(&dst3_mask(), 0, 2, 2, None, Action::Drop, 0).unwrap();
        second.upsert(Session {
            key: second.key(&dns_match(6, [198, 18, 30, 53], 53)),
            action: Action::Continue,
            opaque: 0,
        });
        c.tables = vec![Some(Arc::new(first)), Some(Arc::new(second))];
        let v = |p: &[u8]| c.classify(0, p);
        assert_eq!(v(&packet(17, [198, 18, 30, 53], 53, 0)).hit, Some(0));
        let tcp = v(&packet(6, [198, 18, 30, 53], 53, 0));
        assert_eq!((tcp.action, tcp.hit), (Action::Continue, Some(1)));
        let other = v(&packet(17, [198, 18, 30, 53], 80, 0));
        assert_eq!((other.action, other.hit), (Action::Drop, None));
        assert!(v(&[0x45; 10]).short);
    }
}
