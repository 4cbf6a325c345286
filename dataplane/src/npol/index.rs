//! A rule list indexed for first-match lookups, so that a new flow is checked against the few
//! rules that can match it instead of every rule of a long policy.
//!
//! Each field (source and destination address per family, source and destination port, L4
//! protocol) splits its value space into elementary intervals; each interval lists, in policy
//! order, the rules whose condition on that field can hold there. A rule that does not
//! constrain a field, or whose condition the index does not model (ipsets, negations, a range
//! spanning too many intervals), sits in that field's `wild` list instead. A lookup finds the
//! packet's interval in each field (fewest expected candidates first, skipping a field whose
//! wild list alone is no shorter than the best so far, and stopping when no field left can
//! beat it), takes the field with the fewest candidates, and checks those in order: simple
//! rules by a [`Check`] of range tests on the packet's keys, others with the rule's own
//! matcher ([`Rule::matches`]). The index only over-approximates, so the first candidate that
//! matches is the policy's first match. Lists of up to [`WALK_UPTO`] rules skip the fields.
//!
//! Built by control when a policy or one of its rules changes; workers only read it.

use super::ipset::IpSets;
use super::rule::{Action, FilterKind, MatchData, Rule};
use super::FiveTuple;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// A rule whose range covers more intervals than this goes to the field's wild list, which
/// bounds the index to (rules x this) entries per field.
const MAX_SPAN: usize = 64;
/// Fields with more intervals than this get a 65536-entry hint table.
const HINT_FROM: usize = 64;

/// A rule's condition on one field: wild, or inclusive ranges (none: it cannot match).
type Cond<K> = Option<Vec<(K, K)>>;

/// One field: sorted interval starts and, per interval, its slice of `postings`.
#[derive(Clone, Debug, Default)]
struct Field<K> {
    starts: Vec<K>,
    /// Interval i's candidates are `postings[ends[i]..ends[i + 1]]` (`ends[0]` = 0).
    ends: Vec<u32>,
    postings: Vec<u32>,
    wild: Vec<u32>,
    /// With `hint_shift`: `hint[b]` is the interval holding `b << hint_shift`, so a lookup
    /// searches only between `hint[b]` and `hint[b + 1]` (`hint[65536]`: the last interval).
    /// Empty for small fields.
    hint: Vec<u32>,
    hint_shift: u32,
}

trait Key: Copy + Ord + Default {
    const MAX: Self;
    fn succ(self) -> Self;
    fn hint_bucket(self, shift: u32) -> usize;
    fn from_bucket(b: usize, shift: u32) -> Self;
}

impl Key for u32 {
    const MAX: Self = u32::MAX;
    fn succ(self) -> Self {
        self + 1
    }
    #[inline]
    fn hint_bucket(self, shift: u32) -> usize {
        (self >> shift) as usize
    }
    fn from_bucket(b: usize, shift: u32) -> Self {
        (b as u32) << shift
    }
}

impl Key for u128 {
    const MAX: Self = u128::MAX;
    fn succ(self) -> Self {
        self + 1
    }
    fn hint_bucket(self, _: u32) -> usize {
        0
    }
    fn from_bucket(_: usize, _: u32) -> Self {
        0
    }
}

impl<K: Key> Field<K> {
    /// `conds[r]`: rule r's condition on this field. `hint_shift`: Some for u32 fields whose
    /// keys span `16 + shift` bits.
    fn build(conds: &[Cond<K>], hint_shift: Option<u32>) -> Self {
        let mut starts = vec![K::default()];
        for (lo, hi) in conds.iter().flatten().flatten() {
            starts.push(*lo);
            if *hi < K::MAX {
                starts.push(hi.succ());
            }
        }
        starts.sort_unstable();
        starts.dedup();
        let mut lists: Vec<Vec<u32>> = vec![Vec::new(); starts.len()];
        let mut wild = Vec::new();
        for (r, c) in conds.iter().enumerate() {
            let Some(ranges) = c else {
                wild.push(r as u32);
                continue;
            };
            let spans: Vec<(usize, usize)> = ranges
                .iter()
                .map(|&(lo, hi)| (interval(&starts, lo), interval(&starts, hi)))
                .collect();
            if spans.iter().map(|(a, b)| b - a + 1).sum::<usize>() > MAX_SPAN {
                wild.push(r as u32);
                continue;
            }
            for (a, b) in spans {
                for l in &mut lists[a..=b] {
                    // A rule's ranges can overlap: list it once.
                    if l.last() != Some(&(r as u32)) {
                        l.push(r as u32);
                    }
                }
            }
        }
        let mut postings = Vec::new();
        let mut ends = Vec::with_capacity(lists.len() + 1);
        ends.push(0);
        for l in lists {
            postings.extend(l);
            ends.push(postings.len() as u32);
        }
        let (hint, hint_shift) = match hint_shift {
            Some(shift) if starts.len() > HINT_FROM => {
                // One sweep: bucket starts and interval starts both ascend.
                let mut i = 0;
                let mut hint: Vec<u32> = (0..1usize << 16)
                    .map(|b| {
                        let k = K::from_bucket(b, shift);
                        while i + 1 < starts.len() && starts[i + 1] <= k {
                            i += 1;
                        }
                        i as u32
                    })
                    .collect();
                hint.push(starts.len() as u32 - 1);
                (hint, shift)
            }
            _ => (Vec::new(), 0),
        };
        Self {
            starts,
            ends,
            postings,
            wild,
            hint,
            hint_shift,
        }
    }

    #[inline(always)]
    fn candidates(&self, v: K) -> &[u32] {
        let b = v.hint_bucket(self.hint_shift);
        let i = match self.hint.get(b..b + 2) {
            Some(&[lo, hi]) => {
                let lo = lo as usize;
                match self.starts.get(lo + 1..=hi as usize) {
                    // A bucket mostly holds a few intervals: count them.
                    Some(s) if s.len() <= 4 => lo + s.iter().take_while(|&&s| s <= v).count(),
                    Some(s) => lo + s.partition_point(|&s| s <= v),
                    None => lo,
                }
            }
            // No hint table (a small field).
            _ => interval(&self.starts, v),
        };
        match self.ends.get(i..i + 2) {
            Some(&[from, to]) => self.postings.get(from as usize..to as usize),
            _ => None,
        }
        .unwrap_or(&[])
    }

    fn mean(&self) -> f64 {
        self.postings.len() as f64 / self.starts.len() as f64 + self.wild.len() as f64
    }
}

/// The interval holding `v` (`starts[0]` is the smallest key, so there is one).
#[inline]
fn interval<K: Ord>(starts: &[K], v: K) -> usize {
    starts.partition_point(|s| *s <= v).saturating_sub(1)
}

fn v4_range(a: u32, len: u8) -> (u32, u32) {
    let host = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
    (a & !host, a | host)
}

fn v6_range(a: u128, len: u8) -> (u128, u128) {
    let host = u128::MAX.checked_shr(u32::from(len)).unwrap_or(0);
    (a & !host, a | host)
}

/// A side's address condition for one family, if the index can tell: its positive CIDRs,
/// which must hold whatever else the side says; a rule with CIDRs of the other family only
/// cannot match (no range), one without CIDRs is wild.
fn addr_cond<K>(r: &Rule, src: bool, pick: impl Fn(IpAddr, u8) -> Option<(K, K)>) -> Cond<K> {
    let mut any = false;
    let mut v = Vec::new();
    for e in r.entries.iter().filter(|e| e.is_src == src && !e.is_not) {
        if let MatchData::Cidr(n) = e.data {
            any = true;
            v.extend(pick(n.addr, n.len));
        }
    }
    any.then_some(v)
}

fn v4_cond(r: &Rule, src: bool) -> Cond<u32> {
    addr_cond(r, src, |a, len| match a {
        IpAddr::V4(a) => Some(v4_range(a.into(), len)),
        IpAddr::V6(_) => None,
    })
}

fn v6_cond(r: &Rule, src: bool) -> Cond<u128> {
    addr_cond(r, src, |a, len| match a {
        IpAddr::V6(a) => Some(v6_range(a.into(), len)),
        IpAddr::V4(_) => None,
    })
}

/// Port ranges, when every positive port entry of the side is a range (a port ipset ORed
/// with them could allow any port).
fn port_cond(r: &Rule, src: bool) -> Cond<u32> {
    let mut v = Vec::new();
    for e in r.entries.iter().filter(|e| e.is_src == src && !e.is_not) {
        match e.data {
            MatchData::PortRange(lo, hi) => v.push((u32::from(lo), u32::from(hi))),
            MatchData::PortIpSet(_) => return None,
            _ => {}
        }
    }
    (!v.is_empty()).then_some(v)
}

fn proto_cond(r: &Rule) -> Cond<u32> {
    r.filters
        .iter()
        .find(|f| f.kind == FilterKind::L4Proto && f.should_match)
        .map(|f| vec![(f.value.min(255), f.value.min(255))])
}

/// How a candidate is checked, in 32 bytes so that a check is one cache line and two share
/// one. A rule with at most one positive CIDR, one positive IP_SET entry and one port range
/// per side, no other entry, and at most a protocol filter is range tests on the packet's
/// keys, all without a branch (and a set lookup if it names one); any other rule runs its
/// own matcher. The rule's action is here, so a match reads nothing else.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(32))]
struct Check {
    /// IPv4 source, destination as `lo` and `hi - lo` (everything for rules without IPv4
    /// CIDRs).
    addr_lo: [u32; 2],
    addr_span: [u32; 2],
    port_lo: [u16; 2],
    port_span: [u16; 2],
    proto_lo: u8,
    proto_span: u8,
    kind: Kind,
    action: Action,
    /// Bit 0: the source must be in `RuleIndex::sets[i][0]`, bit 1: the destination in
    /// `[1]`.
    set_mask: u8,
    /// For an IPv4 packet the range tests are the whole rule (`V4` or `Any`, no set).
    /// Otherwise they are only a necessary condition (everything for `Full` rules) and the
    /// rest is checked out of line.
    exact4: bool,
}

const _: () = assert!(std::mem::size_of::<Check>() == 32);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// IPv4 CIDRs: IPv4 packets only.
    V4,
    /// No CIDR: either family.
    Any,
    /// IPv6 CIDRs, in `RuleIndex::v6[i]`: IPv6 packets only.
    V6,
    /// The rule's matcher decides.
    Full,
}

/// The packet's keys a simple rule tests, by field of [`RuleIndex::f4`]: IPv4 source and
/// destination (0 for IPv6), ports, protocol.
#[derive(Clone, Copy)]
struct Keys([u32; 5]);

impl Keys {
    /// The key field `i` of [`RuleIndex::f4`] reads.
    #[inline(always)]
    fn get(&self, i: usize) -> Option<u32> {
        self.0.get(i).copied()
    }

    #[inline(always)]
    fn v4(src: u32, dst: u32, p: &FiveTuple) -> Self {
        Self([
            src,
            dst,
            u32::from(p.sport),
            u32::from(p.dport),
            u32::from(p.proto),
        ])
    }
}

fn keys(p: &FiveTuple) -> Keys {
    match (p.src, p.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Keys::v4(s.into(), d.into(), p),
        _ => Keys::v4(0, 0, p),
    }
}

/// What [`Check::of`] found: the check, and the ipsets and IPv6 ranges it refers to.
struct Compiled {
    check: Check,
    sets: [u32; 2],
    v6: [(u128, u128); 2],
}

impl Check {
    fn of(r: &Rule) -> Compiled {
        let mut v4 = [(0, u32::MAX); 2];
        let mut v6 = [(0, u128::MAX); 2];
        let mut ports = [(0, u16::MAX); 2];
        let mut proto = (0, u8::MAX);
        let mut family = None;
        let mut sets = [0; 2];
        let mut set_mask = 0;
        let mut seen = [false; 7];
        let mut full = false;
        for e in &r.entries {
            let side = usize::from(!e.is_src);
            let field = match e.data {
                MatchData::Cidr(n) if !e.is_not => {
                    if family.is_some_and(|f| f != n.addr.is_ipv4()) {
                        full = true;
                    }
                    family = Some(n.addr.is_ipv4());
                    match n.addr {
                        IpAddr::V4(a) => v4[side] = v4_range(a.into(), n.len),
                        IpAddr::V6(a) => v6[side] = v6_range(a.into(), n.len),
                    }
                    side
                }
                // An empty range (lo > hi, which control refuses) is left to the matcher.
                MatchData::PortRange(lo, hi) if !e.is_not && lo <= hi => {
                    ports[side] = (lo, hi);
                    2 + side
                }
                MatchData::IpSet(id) if !e.is_not => {
                    sets[side] = id;
                    set_mask |= 1 << side;
                    5 + side
                }
                _ => {
                    full = true;
                    continue;
                }
            };
            full |= std::mem::replace(&mut seen[field], true);
        }
        for f in &r.filters {
            match f.kind {
                FilterKind::None => {}
                FilterKind::L4Proto if f.should_match && f.value <= 255 && !seen[4] => {
                    seen[4] = true;
                    proto = (f.value as u8, f.value as u8);
                }
                _ => full = true,
            }
        }
        let kind = match family {
            _ if full => Kind::Full,
            Some(true) => Kind::V4,
            Some(false) => Kind::V6,
            None => Kind::Any,
        };
        if full {
            // The ranges would be some of the rule's entries, not a condition of it.
            (v4, ports, proto) = ([(0, u32::MAX); 2], [(0, u16::MAX); 2], (0, u8::MAX));
        }
        let check = Check {
            exact4: matches!(kind, Kind::V4 | Kind::Any) && set_mask == 0,
            addr_lo: v4.map(|(lo, _)| lo),
            addr_span: v4.map(|(lo, hi)| hi - lo),
            port_lo: ports.map(|(lo, _)| lo),
            port_span: ports.map(|(lo, hi)| hi - lo),
            proto_lo: proto.0,
            proto_span: proto.1 - proto.0,
            kind,
            action: r.action,
            set_mask,
        };
        Compiled { check, sets, v6 }
    }

    /// The range tests on `k`, without a branch between them.
    #[inline(always)]
    fn ranges_hit(&self, k: &Keys) -> bool {
        let [src, dst, sport, dport, proto] = k.0;
        let a = |v: u32, i: usize| v.wrapping_sub(self.addr_lo[i]) <= self.addr_span[i];
        let p = |v: u32, i: usize| (v as u16).wrapping_sub(self.port_lo[i]) <= self.port_span[i];
        a(src, 0)
            & a(dst, 1)
            & p(sport, 0)
            & p(dport, 1)
            & ((proto as u8).wrapping_sub(self.proto_lo) <= self.proto_span)
    }
}

/// Rule lists this short are walked whole: picking a field would cost more than the checks.
const WALK_UPTO: usize = 4;

/// The fields a packet of one family reads, fewest expected candidates first: 0 src, 1 dst,
/// 2 sport, 3 dport, 4 proto.
#[derive(Clone, Copy, Debug, Default)]
struct Order {
    field: [u8; 5],
    /// `field[k]`'s wild list's length.
    wild: [usize; 5],
    /// The shortest of `wild[k..]`: once the best so far is no longer, no later field can
    /// beat it.
    rest_wild: [usize; 5],
}

impl Order {
    fn new(means: [f64; 5], wild: [usize; 5]) -> Self {
        let mut field = [0u8, 1, 2, 3, 4];
        field.sort_by(|&a, &b| means[a as usize].total_cmp(&means[b as usize]));
        let wild = field.map(|f| wild[f as usize]);
        let mut rest_wild = wild;
        for k in (0..4).rev() {
            rest_wild[k] = rest_wild[k].min(rest_wild[k + 1]);
        }
        Self {
            field,
            wild,
            rest_wild,
        }
    }
}

/// Of the fields in `order`, the one whose (candidates, wild) lists (`lists(i)`) are shortest
/// together; None when that is none (no rule can match). A field whose wild list alone is no
/// shorter than the best so far is not looked up.
#[inline(always)]
fn narrowest<'a>(
    order: &Order,
    lists: impl Fn(usize) -> (&'a [u32], &'a [u32]),
) -> Option<(&'a [u32], &'a [u32])> {
    let mut best: (&[u32], &[u32]) = (&[], &[]);
    let mut n = usize::MAX;
    for k in 0..5 {
        if order.rest_wild[k] >= n {
            break;
        }
        if order.wild[k] >= n {
            continue;
        }
        let (c, w) = lists(usize::from(order.field[k]));
        if c.len() + w.len() < n {
            n = c.len() + w.len();
            best = (c, w);
            if n == 0 {
                return None;
            }
        }
    }
    Some(best)
}

/// The merge of two ascending lists of rule positions, each position once.
struct Merge<'a> {
    a: &'a [u32],
    b: &'a [u32],
}

impl Iterator for Merge<'_> {
    type Item = u32;
    #[inline(always)]
    fn next(&mut self) -> Option<u32> {
        match (self.a.split_first(), self.b.split_first()) {
            (Some((&x, ra)), Some((&y, rb))) => {
                if x <= y {
                    self.a = ra;
                    if x == y {
                        self.b = rb;
                    }
                    Some(x)
                } else {
                    self.b = rb;
                    Some(y)
                }
            }
            (Some((&x, ra)), None) => {
                self.a = ra;
                Some(x)
            }
            (None, Some((&y, rb))) => {
                self.b = rb;
                Some(y)
            }
            (None, None) => None,
        }
    }
}

/// An ordered rule list (one direction of a policy), indexed.
#[derive(Clone, Debug, Default)]
pub struct RuleIndex {
    rules: Vec<Arc<Rule>>,
    checks: Vec<Check>,
    /// Per rule, the ipsets its check names (`Check::set_mask`).
    sets: Vec<[u32; 2]>,
    /// Per rule, the IPv6 source and destination ranges of a `Kind::V6` check.
    v6: Vec<[(u128, u128); 2]>,
    /// IPv4 source, destination, then sport, dport, proto (which IPv6 packets read too).
    f4: [Field<u32>; 5],
    /// IPv6 source, destination.
    f6: [Field<u128>; 2],
    /// The fields an IPv4 (IPv6) packet reads.
    order4: Order,
    order6: Order,
}

impl RuleIndex {
    /// Index `ids` (a policy's list) as `rules` holds them now; ids not there are skipped, as
    /// the linear walk skips them.
    pub fn build(ids: &[u32], rules: &BTreeMap<u32, Arc<Rule>>) -> Self {
        let rules: Vec<Arc<Rule>> = ids.iter().filter_map(|id| rules.get(id).cloned()).collect();
        let conds32 = |f: &dyn Fn(&Rule) -> Cond<u32>| -> Vec<Cond<u32>> {
            rules.iter().map(|r| f(r)).collect()
        };
        let conds128 = |f: &dyn Fn(&Rule) -> Cond<u128>| -> Vec<Cond<u128>> {
            rules.iter().map(|r| f(r)).collect()
        };
        let f4 = [
            Field::build(&conds32(&|r| v4_cond(r, true)), Some(16)),
            Field::build(&conds32(&|r| v4_cond(r, false)), Some(16)),
            Field::build(&conds32(&|r| port_cond(r, true)), Some(0)),
            Field::build(&conds32(&|r| port_cond(r, false)), Some(0)),
            Field::build(&conds32(&proto_cond), None),
        ];
        let f6 = [
            Field::build(&conds128(&|r| v6_cond(r, true)), None),
            Field::build(&conds128(&|r| v6_cond(r, false)), None),
        ];
        let l4_mean = [f4[2].mean(), f4[3].mean(), f4[4].mean()];
        let wild = |f: &Field<u32>| f.wild.len();
        let l4_wild = [wild(&f4[2]), wild(&f4[3]), wild(&f4[4])];
        let order4 = Order::new(
            [
                f4[0].mean(),
                f4[1].mean(),
                l4_mean[0],
                l4_mean[1],
                l4_mean[2],
            ],
            [
                wild(&f4[0]),
                wild(&f4[1]),
                l4_wild[0],
                l4_wild[1],
                l4_wild[2],
            ],
        );
        let order6 = Order::new(
            [
                f6[0].mean(),
                f6[1].mean(),
                l4_mean[0],
                l4_mean[1],
                l4_mean[2],
            ],
            [
                f6[0].wild.len(),
                f6[1].wild.len(),
                l4_wild[0],
                l4_wild[1],
                l4_wild[2],
            ],
        );
        let compiled: Vec<Compiled> = rules.iter().map(|r| Check::of(r)).collect();
        Self {
            checks: compiled.iter().map(|c| c.check).collect(),
            sets: compiled.iter().map(|c| c.sets).collect(),
            v6: compiled.iter().map(|c| c.v6).collect(),
            rules,
            f4,
            f6,
            order4,
            order6,
        }
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The action of the first rule that matches `p`.
    #[inline(always)]
    pub fn first_match(&self, sets: &IpSets, p: &FiveTuple) -> Option<Action> {
        match (p.src, p.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => self.lookup4(sets, p, s.into(), d.into()),
            _ => self.first_match_v6_or_mixed(sets, p),
        }
    }

    /// [`Self::first_match`] for a packet that is not IPv4.
    #[inline(never)]
    fn first_match_v6_or_mixed(&self, sets: &IpSets, p: &FiveTuple) -> Option<Action> {
        match (p.src, p.dst) {
            (IpAddr::V6(s), IpAddr::V6(d)) => self.lookup6(sets, p, s.into(), d.into()),
            // Mixed families (no real packet): neither the fields nor the checks model them.
            _ => self
                .rules
                .iter()
                .find(|r| r.matches(sets, p))
                .map(|r| r.action),
        }
    }

    /// [`Self::first_match`] for an IPv4 packet from `src` to `dst`: the narrowest field's
    /// candidates, then range tests that are the whole check of most rules.
    #[inline(always)]
    fn lookup4(&self, sets: &IpSets, p: &FiveTuple, src: u32, dst: u32) -> Option<Action> {
        let k = &Keys::v4(src, dst, p);
        if self.rules.len() <= WALK_UPTO {
            return self.walk4(0..self.rules.len() as u32, sets, p, k);
        }
        let key = &k.0;
        let o = &self.order4;
        // The first field, which mostly leaves fewer candidates than any other could.
        let f0 = usize::from(o.field[0]);
        let (Some(field), Some(&v)) = (self.f4.get(f0), key.get(f0)) else {
            return self.walk4(0..self.rules.len() as u32, sets, p, k);
        };
        let (c, w) = (field.candidates(v), &field.wild[..]);
        match (c.len() + w.len(), w) {
            (0, _) => None,
            // No other field can leave fewer: the common case, kept small.
            (n, []) if n <= o.rest_wild[1] => self.walk4(c.iter().copied(), sets, p, k),
            (n, _) => self.lookup4_more((c, w), n, sets, p, k),
        }
    }

    /// [`Self::lookup4`] after its first field left `n` candidates (`best`): the other fields
    /// that could leave fewer, then the walk.
    #[inline(never)]
    fn lookup4_more<'a>(
        &'a self,
        mut best: (&'a [u32], &'a [u32]),
        mut n: usize,
        sets: &IpSets,
        p: &FiveTuple,
        k: &Keys,
    ) -> Option<Action> {
        let key = &k.0;
        let o = &self.order4;
        for j in 1..5 {
            if o.rest_wild[j] >= n {
                break;
            }
            if o.wild[j] >= n {
                continue;
            }
            let f = usize::from(o.field[j]);
            let (Some(field), Some(&v)) = (self.f4.get(f), key.get(f)) else {
                continue;
            };
            let (c, w) = (field.candidates(v), &field.wild[..]);
            if c.len() + w.len() < n {
                n = c.len() + w.len();
                best = (c, w);
                if n == 0 {
                    return None;
                }
            }
        }
        match best {
            (a, []) => self.walk4(a.iter().copied(), sets, p, k),
            (a, b) => self.walk4(Merge { a, b }, sets, p, k),
        }
    }

    /// The first rule of `ids` (ascending) that matches IPv4 packet `p` (keys `k`), as its
    /// action.
    #[inline(always)]
    fn walk4(
        &self,
        ids: impl Iterator<Item = u32>,
        sets: &IpSets,
        p: &FiveTuple,
        k: &Keys,
    ) -> Option<Action> {
        for i in ids {
            let Some(c) = self.checks.get(i as usize) else {
                continue;
            };
            if c.ranges_hit(k) && (c.exact4 || self.rest_hits4(i as usize, c, sets, p)) {
                return Some(c.action);
            }
        }
        None
    }

    /// What rule `i`'s range tests (which hold) leave to check for IPv4 packet `p`.
    #[inline(never)]
    fn rest_hits4(&self, i: usize, c: &Check, sets: &IpSets, p: &FiveTuple) -> bool {
        match c.kind {
            Kind::V4 | Kind::Any => self.in_sets(i, c, sets, p),
            Kind::V6 => false,
            Kind::Full => self.rules.get(i).is_some_and(|r| r.matches(sets, p)),
        }
    }

    /// [`Self::first_match`] for an IPv6 packet from `src` to `dst` (IPv4 packets take
    /// [`Self::lookup4`]).
    #[inline(always)]
    fn lookup6(&self, sets: &IpSets, p: &FiveTuple, src: u128, dst: u128) -> Option<Action> {
        let k = keys(p);
        if self.rules.len() <= WALK_UPTO {
            return self.walk6(0..self.rules.len() as u32, sets, p, &k);
        }
        let empty: (&[u32], &[u32]) = (&[], &[]);
        let a6 = [src, dst];
        let (a, b) = narrowest(&self.order6, |i| match (self.f6.get(i), a6.get(i)) {
            (Some(f), Some(&a)) => (f.candidates(a), &f.wild[..]),
            _ => match (self.f4.get(i), k.get(i)) {
                (Some(f), Some(k)) => (f.candidates(k), &f.wild[..]),
                _ => empty,
            },
        })?;
        self.walk6(Merge { a, b }, sets, p, &k)
    }

    /// The first rule of `ids` (ascending) that matches IPv6 packet `p`, as its action.
    #[inline(always)]
    fn walk6(
        &self,
        ids: impl Iterator<Item = u32>,
        sets: &IpSets,
        p: &FiveTuple,
        k: &Keys,
    ) -> Option<Action> {
        for i in ids {
            let i = i as usize;
            let Some(c) = self.checks.get(i) else {
                continue;
            };
            let family_ok = match c.kind {
                Kind::V4 => false,
                Kind::Any => true,
                Kind::V6 => self.v6_hit(i, p),
                Kind::Full => {
                    if self.rules.get(i).is_some_and(|r| r.matches(sets, p)) {
                        return Some(c.action);
                    }
                    continue;
                }
            };
            if family_ok && c.ranges_hit(k) && (c.set_mask == 0 || self.in_sets(i, c, sets, p)) {
                return Some(c.action);
            }
        }
        None
    }

    /// Rule `i`'s IPv6 ranges hold `p`'s addresses.
    #[inline(never)]
    fn v6_hit(&self, i: usize, p: &FiveTuple) -> bool {
        match (self.v6.get(i), p.src, p.dst) {
            (Some(r), IpAddr::V6(s), IpAddr::V6(d)) => {
                let (s, d) = (u128::from(s), u128::from(d));
                r[0].0 <= s && s <= r[0].1 && r[1].0 <= d && d <= r[1].1
            }
            _ => false,
        }
    }

    /// `p`'s addresses are in the ipsets rule `i`'s check names.
    #[inline(never)]
    fn in_sets(&self, i: usize, c: &Check, sets: &IpSets, p: &FiveTuple) -> bool {
        let Some(ids) = self.sets.get(i) else {
            return false;
        };
        let in_set = |id: u32, a: IpAddr| sets.get(&id).is_some_and(|s| s.contains_ip(a));
        (c.set_mask & 1 == 0 || in_set(ids[0], p.src))
            && (c.set_mask & 2 == 0 || in_set(ids[1], p.dst))
    }
}

#[cfg(test)]
mod tests {
    use super::super::ipset::{IpSet, IpSetKind, Member};
    use super::super::rule::{Entry, Filter};
    use super::super::Net;
    use super::*;

    fn cidr(is_src: bool, is_not: bool, a: &str, len: u8) -> Entry {
        Entry {
            is_src,
            is_not,
            data: MatchData::Cidr(Net::new(a.parse().unwrap(), len).unwrap()),
        }
    }
    fn ports(is_src: bool, lo: u16, hi: u16) -> Entry {
        Entry {
            is_src,
            is_not: false,
            data: MatchData::PortRange(lo, hi),
        }
    }

    /// xorshift64*, as the benchmarks use.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    fn random_rule(g: &mut Rng) -> Rule {
        let mut entries = Vec::new();
        let v6 = g.next().is_multiple_of(4);
        let addr = |g: &mut Rng| -> String {
            if v6 {
                format!("fd00::{:x}:{:x}", g.next() % 4, g.next() % 65536)
            } else {
                format!("10.0.{}.{}", g.next() % 4, g.next() % 256)
            }
        };
        for is_src in [true, false] {
            for _ in 0..g.next() % 3 {
                // Sometimes "everything of one family" (0.0.0.0/0, ::/0), which Calico sends
                // and which must not match the other family.
                let len = if g.next().is_multiple_of(10) {
                    0
                } else if v6 {
                    112 + (g.next() % 17) as u8
                } else {
                    16 + (g.next() % 17) as u8
                };
                entries.push(cidr(is_src, g.next().is_multiple_of(5), &addr(g), len));
            }
            for _ in 0..g.next() % 3 {
                let lo = (g.next() % 64) as u16;
                entries.push(ports(is_src, lo, lo + (g.next() % 8) as u16));
            }
        }
        let filters = match g.next() % 4 {
            0 => vec![Filter {
                kind: FilterKind::L4Proto,
                value: if g.next().is_multiple_of(2) { 6 } else { 17 },
                should_match: !g.next().is_multiple_of(4),
            }],
            _ => vec![],
        };
        Rule {
            action: if g.next().is_multiple_of(2) {
                Action::Allow
            } else {
                Action::Deny
            },
            filters,
            entries,
        }
    }

    fn random_tuple(g: &mut Rng) -> FiveTuple {
        let v6 = g.next().is_multiple_of(4);
        let a = |g: &mut Rng| -> IpAddr {
            if v6 {
                format!("fd00::{:x}:{:x}", g.next() % 4, g.next() % 65536)
                    .parse()
                    .unwrap()
            } else {
                format!("10.0.{}.{}", g.next() % 4, g.next() % 256)
                    .parse()
                    .unwrap()
            }
        };
        FiveTuple {
            src: a(g),
            dst: a(g),
            proto: if g.next().is_multiple_of(2) { 6 } else { 17 },
            sport: (g.next() % 80) as u16,
            dport: (g.next() % 80) as u16,
            icmp_type: 0,
            icmp_code: 0,
        }
    }

    /// The index's answer is the linear walk's, for random rule lists (negations, several
    /// entries per side, both families, protocol filters either way) and random tuples
    /// chosen to hit them.
    #[test]
    fn first_match_equals_the_linear_walk() {
        let mut g = Rng(0x1234_5678_9abc_def1);
        let sets = BTreeMap::new();
        let (mut hits, mut misses) = (0, 0);
        for round in 0..40 {
            let n = 1 + (g.next() % 300) as usize;
            let rules: BTreeMap<u32, Arc<Rule>> = (0..n as u32)
                .map(|i| (i * 3, Arc::new(random_rule(&mut g))))
                .collect();
            let ids: Vec<u32> = rules.keys().copied().collect();
            let ix = RuleIndex::build(&ids, &rules);
            assert_eq!(ix.len(), n);
            for _ in 0..500 {
                let p = random_tuple(&mut g);
                let linear = ids
                    .iter()
                    .map(|id| &rules[id])
                    .find(|r| r.matches(&sets, &p))
                    .map(|r| r.action);
                assert_eq!(ix.first_match(&sets, &p), linear, "round {round}: {p:?}");
                if linear.is_some() {
                    hits += 1;
                } else {
                    misses += 1;
                }
            }
        }
        assert!(
            hits > 2000 && misses > 500,
            "{hits} hits, {misses} misses: a test of both"
        );
    }

    /// Ipsets 0..4: IPv4 and IPv6 addresses, networks, (address, protocol, port) triples, and
    /// an empty one, over the addresses and ports `random_tuple` draws.
    fn random_sets(g: &mut Rng) -> IpSets {
        let mut sets = IpSets::new();
        let mut ips = IpSet::new(IpSetKind::Ip);
        let mut nets = IpSet::new(IpSetKind::Net);
        let mut tuples = IpSet::new(IpSetKind::IpAndPort);
        for _ in 0..300 {
            let a: IpAddr = if g.next().is_multiple_of(4) {
                format!("fd00::{:x}:{:x}", g.next() % 4, g.next() % 65536)
                    .parse()
                    .unwrap()
            } else {
                format!("10.0.{}.{}", g.next() % 4, g.next() % 256)
                    .parse()
                    .unwrap()
            };
            ips.insert(Member::Ip(a));
            let len = if a.is_ipv4() {
                24 + g.next() % 9
            } else {
                120 + g.next() % 9
            };
            if g.next().is_multiple_of(20) {
                nets.insert(Member::Net(Net::new(a, len as u8).unwrap()));
            }
            let proto = if g.next().is_multiple_of(2) { 6 } else { 17 };
            tuples.insert(Member::Tuple(a, proto, (g.next() % 80) as u16));
        }
        for (id, set) in [ips, nets, tuples, IpSet::new(IpSetKind::Ip)]
            .into_iter()
            .enumerate()
        {
            sets.insert(id as u32, Arc::new(set));
        }
        sets
    }

    /// `random_rule`, plus ipset entries: mostly one positive IP_SET per side (which the
    /// index checks itself), sometimes a negated one, two, a PORT_IP_SET or a missing set.
    fn random_rule_with_sets(g: &mut Rng) -> Rule {
        let mut r = random_rule(g);
        for is_src in [true, false] {
            let n = match g.next() % 8 {
                0..=3 => 0,
                4..=6 => 1,
                _ => 2,
            };
            for _ in 0..n {
                let id = match g.next() % 10 {
                    0..=5 => 0,
                    6 | 7 => 1,
                    8 => 3,
                    _ => 9,
                };
                let data = if g.next().is_multiple_of(6) {
                    MatchData::PortIpSet(2)
                } else {
                    MatchData::IpSet(id)
                };
                r.entries.push(Entry {
                    is_src,
                    is_not: g.next().is_multiple_of(6),
                    data,
                });
            }
        }
        r
    }

    /// With ipsets in the rules, with lists short enough to be walked whole, and with tuples
    /// of mixed families, the index's answer is still the linear walk's, and the rules it checks itself (one positive ipset a
    /// side) are among those that decide.
    #[test]
    fn first_match_with_ipsets_equals_the_linear_walk() {
        let mut g = Rng(0x0bad_cafe_f00d_1234);
        let sets = random_sets(&mut g);
        let (mut hits, mut misses, mut own_set_checks) = (0, 0, 0);
        for round in 0..60 {
            let n = if round % 3 == 0 {
                1 + (g.next() % (WALK_UPTO as u64 + 2)) as usize
            } else {
                1 + (g.next() % 200) as usize
            };
            let rules: BTreeMap<u32, Arc<Rule>> = (0..n as u32)
                .map(|i| (i, Arc::new(random_rule_with_sets(&mut g))))
                .collect();
            let ids: Vec<u32> = rules.keys().copied().collect();
            let ix = RuleIndex::build(&ids, &rules);
            for _ in 0..400 {
                let mut p = random_tuple(&mut g);
                if g.next().is_multiple_of(16) {
                    // Mixed families: no packet has them, but the answer must still agree.
                    p.dst = random_tuple(&mut g).dst;
                }
                let linear = ids
                    .iter()
                    .map(|id| &rules[id])
                    .position(|r| r.matches(&sets, &p));
                let want = linear.map(|i| rules[&(i as u32)].action);
                assert_eq!(ix.first_match(&sets, &p), want, "round {round}: {p:?}");
                match linear {
                    Some(i) => {
                        hits += 1;
                        let c = &ix.checks[i];
                        let set_checked = c.kind != Kind::Full && c.set_mask != 0;
                        own_set_checks += usize::from(set_checked);
                    }
                    None => misses += 1,
                }
            }
        }
        assert!(
            hits > 3000 && misses > 1000 && own_set_checks > 200,
            "{hits} hits, {misses} misses, {own_set_checks} decided by the index's set checks"
        );
    }

    /// A rule with an IPv4 CIDR on one side only matches a tuple whose other address is
    /// IPv6, as its matcher says, whether the list is walked whole or looked up.
    #[test]
    fn mixed_family_tuples_get_the_matchers_answer() {
        let src_only = Rule {
            action: Action::Deny,
            filters: vec![],
            entries: vec![cidr(true, false, "10.0.0.0", 24)],
        };
        let p = FiveTuple {
            src: "10.0.0.1".parse().unwrap(),
            dst: "fd00::1".parse().unwrap(),
            proto: 6,
            sport: 1,
            dport: 2,
            icmp_type: 0,
            icmp_code: 0,
        };
        let sets = BTreeMap::new();
        assert!(src_only.matches(&sets, &p));
        for n in [1, WALK_UPTO + 1] {
            let rules: BTreeMap<u32, Arc<Rule>> = (0..n as u32)
                .map(|i| (i, Arc::new(src_only.clone())))
                .collect();
            let ids: Vec<u32> = rules.keys().copied().collect();
            let ix = RuleIndex::build(&ids, &rules);
            assert_eq!(ix.first_match(&sets, &p), Some(Action::Deny), "{n} rules");
        }
    }

    #[test]
    fn wide_ranges_and_missing_rules_stay_correct() {
        let wide = Rule {
            action: Action::Deny,
            filters: vec![],
            entries: (0..200).map(|i| ports(false, i * 10, i * 10)).collect(),
        };
        let allow = Rule {
            action: Action::Allow,
            filters: vec![],
            entries: vec![],
        };
        let rules: BTreeMap<u32, Arc<Rule>> = [(1, Arc::new(wide)), (2, Arc::new(allow))]
            .into_iter()
            .collect();
        let ix = RuleIndex::build(&[7, 1, 2], &rules);
        assert_eq!(ix.len(), 2, "a missing id is skipped");
        let mut p = FiveTuple {
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            proto: 6,
            sport: 1,
            dport: 1990,
            icmp_type: 0,
            icmp_code: 0,
        };
        let sets = BTreeMap::new();
        assert_eq!(ix.first_match(&sets, &p), Some(Action::Deny));
        p.dport = 1991;
        assert_eq!(ix.first_match(&sets, &p), Some(Action::Allow));
    }
}
