//! Ipsets: sets of addresses, networks, or (address, protocol, port) triples that rules
//! match against (`NPOL_IP_SET`, `NPOL_PORT_IP_SET`).

use super::Net;
use ahash::AHashSet;
use std::net::IpAddr;

/// What an ipset holds (`npol_ipset_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpSetKind {
    Ip,
    IpAndPort,
    Net,
}

impl IpSetKind {
    pub fn from_api(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Ip),
            1 => Some(Self::IpAndPort),
            2 => Some(Self::Net),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::IpAndPort => "ip-and-port",
            Self::Net => "net",
        }
    }
}

/// One member, of the kind of its set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Member {
    Ip(IpAddr),
    Net(Net),
    /// (address, L4 protocol, port).
    Tuple(IpAddr, u8, u16),
}

impl Member {
    pub fn kind(&self) -> IpSetKind {
        match self {
            Member::Ip(_) => IpSetKind::Ip,
            Member::Net(_) => IpSetKind::Net,
            Member::Tuple(..) => IpSetKind::IpAndPort,
        }
    }
}

/// Every ipset by id. Each is shared between table versions and copied only when an edit
/// changes it, so an edit elsewhere does not copy a 100k-member set.
pub type IpSets = std::collections::BTreeMap<u32, std::sync::Arc<IpSet>>;

#[derive(Clone, Debug)]
pub struct IpSet {
    pub kind: IpSetKind,
    /// IPv4 addresses, in a flat table a lookup reads one cache line of (a 100k-member set
    /// is 1 MiB, a quarter of a hash set of `IpAddr`).
    ip4s: AddrTable,
    /// IPv6 addresses.
    ips: AHashSet<IpAddr>,
    tuples: AHashSet<(IpAddr, u8, u16)>,
    /// Networks, scanned in order (npol scans its members the same way).
    nets: Vec<Net>,
}

impl IpSet {
    pub fn new(kind: IpSetKind) -> Self {
        Self {
            kind,
            ip4s: AddrTable::default(),
            ips: AHashSet::new(),
            tuples: AHashSet::new(),
            nets: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.ip4s.len + self.ips.len() + self.tuples.len() + self.nets.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains_member(&self, m: &Member) -> bool {
        match m {
            Member::Ip(IpAddr::V4(a)) => self.ip4s.contains(u32::from(*a)),
            Member::Ip(a) => self.ips.contains(a),
            Member::Net(n) => self.nets.contains(n),
            Member::Tuple(a, p, port) => self.tuples.contains(&(*a, *p, *port)),
        }
    }

    /// Add `m` (already there: nothing changes). The caller checked its kind.
    pub(super) fn insert(&mut self, m: Member) {
        match m {
            Member::Ip(IpAddr::V4(a)) => self.ip4s.insert(a.into()),
            Member::Ip(a) => {
                self.ips.insert(a);
            }
            Member::Net(n) => {
                if !self.nets.contains(&n) {
                    self.nets.push(n);
                }
            }
            Member::Tuple(a, p, port) => {
                self.tuples.insert((a, p, port));
            }
        }
    }

    pub(super) fn remove(&mut self, m: &Member) {
        match m {
            Member::Ip(IpAddr::V4(a)) => self.ip4s.remove(u32::from(*a)),
            Member::Ip(a) => {
                self.ips.remove(a);
            }
            Member::Net(n) => self.nets.retain(|x| x != n),
            Member::Tuple(a, p, port) => {
                self.tuples.remove(&(*a, *p, *port));
            }
        }
    }

    /// An `IP_SET` match: `addr` is one of the addresses, or in one of the networks.
    #[inline]
    pub fn contains_ip(&self, addr: IpAddr) -> bool {
        match self.kind {
            IpSetKind::Ip => match addr {
                IpAddr::V4(a) => self.ip4s.contains(a.into()),
                IpAddr::V6(_) => self.ips.contains(&addr),
            },
            IpSetKind::Net => self.nets.iter().any(|n| n.contains(addr)),
            IpSetKind::IpAndPort => false,
        }
    }

    /// A `PORT_IP_SET` match: (address, protocol, port) is a member.
    #[inline]
    pub fn contains_tuple(&self, addr: IpAddr, proto: u8, port: u16) -> bool {
        self.kind == IpSetKind::IpAndPort && self.tuples.contains(&(addr, proto, port))
    }

    /// Every member, sorted (for `show npol ipsets`).
    pub fn members(&self) -> Vec<Member> {
        let mut v: Vec<Member> = self
            .ip4s
            .iter()
            .map(|a| Member::Ip(IpAddr::V4(a.into())))
            .chain(self.ips.iter().map(|a| Member::Ip(*a)))
            .chain(self.nets.iter().map(|n| Member::Net(*n)))
            .chain(
                self.tuples
                    .iter()
                    .map(|&(a, p, port)| Member::Tuple(a, p, port)),
            )
            .collect();
        v.sort();
        v
    }
}

/// A set of IPv4 addresses: open addressing with linear probing at most half full, a
/// multiplicative hash of the address, 0 marking a free slot (address 0 is a flag).
#[derive(Clone, Debug, Default)]
pub(super) struct AddrTable {
    /// Empty, or a power of two of at least 16 slots.
    slots: Vec<u32>,
    len: usize,
    has_zero: bool,
    /// For big tables: bit `a >> 16` is set if a member may be in that /16 (a removal leaves
    /// it set until the table next grows), so that most addresses far from every member are
    /// told apart without reading the table, which is past the L2 cache. Empty otherwise.
    blocks: Vec<u64>,
}

/// Tables of this many slots or more (4096 members) get `blocks`.
const BLOCKS_FROM: usize = 8192;

impl AddrTable {
    /// `a`'s first slot, for a table of 2^`bits` slots.
    #[inline(always)]
    fn home(a: u32, bits: u32) -> usize {
        // Fibonacci hashing: the product's high bits mix every bit of the address.
        (a.wrapping_mul(0x9e37_79b1) >> (32 - bits)) as usize
    }

    #[inline]
    pub(super) fn contains(&self, a: u32) -> bool {
        if a == 0 {
            return self.has_zero;
        }
        let n = self.slots.len();
        if n == 0 {
            return false;
        }
        if !self.blocks.is_empty() {
            let b = (a >> 16) as usize;
            let word = self.blocks.get(b / 64).copied().unwrap_or(0);
            if word & (1 << (b % 64)) == 0 {
                return false;
            }
        }
        let mask = n - 1;
        let mut i = Self::home(a, n.trailing_zeros());
        // Never full, so a free slot ends the probe; the bound only keeps it finite.
        for _ in 0..n {
            match self.slots.get(i) {
                Some(&x) if x == a => return true,
                Some(&0) | None => return false,
                Some(_) => i = (i + 1) & mask,
            }
        }
        false
    }

    pub(super) fn insert(&mut self, a: u32) {
        if a == 0 {
            self.len += usize::from(!self.has_zero);
            self.has_zero = true;
            return;
        }
        if self.contains(a) {
            return;
        }
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        self.place(a);
        self.mark(a);
        self.len += 1;
    }

    fn mark(&mut self, a: u32) {
        let b = (a >> 16) as usize;
        if let Some(w) = self.blocks.get_mut(b / 64) {
            *w |= 1 << (b % 64);
        }
    }

    /// Put `a` (not there) in its first free slot.
    fn place(&mut self, a: u32) {
        let n = self.slots.len();
        let mut i = Self::home(a, n.trailing_zeros());
        while self.slots[i] != 0 {
            i = (i + 1) & (n - 1);
        }
        self.slots[i] = a;
    }

    fn grow(&mut self) {
        let n = (self.slots.len() * 2).max(16);
        let old = std::mem::replace(&mut self.slots, vec![0; n]);
        // Rebuilt from the members, so bits left by removals are cleared.
        self.blocks = if n >= BLOCKS_FROM {
            vec![0; (1 << 16) / 64]
        } else {
            Vec::new()
        };
        for a in old.into_iter().filter(|&a| a != 0) {
            self.place(a);
            self.mark(a);
        }
    }

    pub(super) fn remove(&mut self, a: u32) {
        if a == 0 {
            self.len -= usize::from(self.has_zero);
            self.has_zero = false;
            return;
        }
        let n = self.slots.len();
        if n == 0 {
            return;
        }
        let (bits, mask) = (n.trailing_zeros(), n - 1);
        let mut i = Self::home(a, bits);
        while self.slots[i] != a {
            if self.slots[i] == 0 {
                return;
            }
            i = (i + 1) & mask;
        }
        // Backward-shift deletion: move up each later entry of the run that may not sit
        // before its home slot, so no probe meets a hole before its key.
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let x = self.slots[j];
            if x == 0 {
                break;
            }
            let k = Self::home(x, bits);
            // x may move to i iff i lies cyclically in [k, j).
            let movable = if i <= j {
                k <= i || k > j
            } else {
                k <= i && k > j
            };
            if movable {
                self.slots[i] = x;
                i = j;
            }
        }
        self.slots[i] = 0;
        self.len -= 1;
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        let zero = self.has_zero.then_some(0);
        zero.into_iter()
            .chain(self.slots.iter().copied().filter(|&a| a != 0))
    }
}

#[cfg(test)]
mod tests {
    use super::AddrTable;
    use std::collections::BTreeSet;

    /// Past `BLOCKS_FROM`, with members in a few /16s and many removed, the table still
    /// answers as a plain set for members, removed members, and addresses in and out of
    /// those /16s.
    #[test]
    fn big_addr_table_equals_a_plain_set() {
        let mut g = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            g ^= g >> 12;
            g ^= g << 25;
            g ^= g >> 27;
            g.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let blocks = [0x0a80u32, 0x0a81, 0xc612, 0xffff];
        let addr = |r: u64| blocks[(r % 4) as usize] << 16 | (r >> 32 & 0xffff) as u32;
        let mut t = AddrTable::default();
        let mut want = BTreeSet::new();
        let added: Vec<u32> = (0..30_000).map(|_| addr(next())).collect();
        for &a in &added {
            t.insert(a);
            want.insert(a);
        }
        assert!(!t.blocks.is_empty(), "big enough for the /16 filter");
        // Empty one /16 entirely and half of the rest.
        for (i, &a) in added.iter().enumerate() {
            if a >> 16 == 0xc612 || i % 2 == 0 {
                t.remove(a);
                want.remove(&a);
            }
        }
        assert_eq!(t.len, want.len());
        for &a in &added {
            assert_eq!(t.contains(a), want.contains(&a), "{a:#x}");
        }
        for _ in 0..50_000 {
            let a = if next() % 2 == 0 {
                addr(next())
            } else {
                next() as u32
            };
            assert_eq!(t.contains(a), want.contains(&a), "{a:#x}");
        }
    }

    /// The table holds exactly what a plain set holds through random inserts and removes of
    /// clustered addresses (long probe runs, wrap-around at the table's end, address 0).
    #[test]
    fn addr_table_equals_a_plain_set() {
        let mut g = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            g ^= g >> 12;
            g ^= g << 25;
            g ^= g >> 27;
            g.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let mut t = AddrTable::default();
        let mut want = BTreeSet::new();
        for round in 0..20_000 {
            // Few distinct values, so removes hit members and runs collide.
            let a = match next() % 4 {
                0 => 0,
                1 => (next() % 64) as u32,
                2 => u32::MAX - (next() % 64) as u32,
                _ => (next() % 4096) as u32 * 0x0001_0001,
            };
            if next() % 3 == 0 {
                t.remove(a);
                want.remove(&a);
            } else {
                t.insert(a);
                want.insert(a);
            }
            assert_eq!(t.len, want.len(), "round {round}");
            if round % 97 == 0 {
                for probe in (0..70u32).chain(u32::MAX - 70..=u32::MAX) {
                    assert_eq!(t.contains(probe), want.contains(&probe), "{probe}");
                }
                for &m in &want {
                    assert!(t.contains(m), "member {m} lost at round {round}");
                }
                let mut got: Vec<u32> = t.iter().collect();
                got.sort_unstable();
                assert_eq!(got, want.iter().copied().collect::<Vec<_>>());
            }
        }
    }
}
