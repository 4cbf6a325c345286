//! Source NAT: the port (and ICMP id) allocator, and the policy that decides which flows get
//! the node's SNAT address.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

/// Ports handed out: 49152-65535 (cnat's range).
pub const PORT_FIRST: u16 = 49152;
pub const PORTS: usize = 65536 - PORT_FIRST as usize;
const WORDS: usize = PORTS / 64;
/// FIB slots with their own port space; FIBs beyond share (the session key holds the FIB,
/// so sharing only narrows the space, never mixes flows).
pub const FIB_SLOTS: usize = 8;
const PROTOS: usize = 3;

/// Bitmaps of ports in use per (family, FIB slot, protocol), lock-free (one CAS per claim).
pub struct PortAlloc {
    bits: Box<[AtomicU64]>,
}

impl Default for PortAlloc {
    fn default() -> Self {
        Self {
            bits: (0..2 * FIB_SLOTS * PROTOS * WORDS)
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }
}

fn proto_slot(proto: u8) -> usize {
    match proto {
        6 => 0,
        17 => 1,
        _ => 2,
    }
}

impl PortAlloc {
    fn base(ip6: bool, fib: u32, proto: u8) -> usize {
        ((ip6 as usize * FIB_SLOTS + fib as usize % FIB_SLOTS) * PROTOS + proto_slot(proto)) * WORDS
    }

    /// Claim a free port, starting the search at `hint`'s position. None when exhausted.
    #[inline]
    pub fn alloc(&self, ip6: bool, fib: u32, proto: u8, hint: u32) -> Option<u16> {
        let base = Self::base(ip6, fib, proto);
        let start = hint as usize % PORTS;
        let (w0, b0) = (start / 64, start % 64);
        for i in 0..=WORDS {
            let w = (w0 + i) % WORDS;
            let word = &self.bits[base + w];
            let mut cur = word.load(Ordering::Relaxed);
            loop {
                // On the first word, prefer bits from the hint on.
                let mask = if i == 0 { !0u64 << b0 } else { !0u64 };
                let free = !cur & mask;
                if free == 0 {
                    break;
                }
                let bit = free.trailing_zeros();
                match word.compare_exchange_weak(
                    cur,
                    cur | 1 << bit,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Some(PORT_FIRST + (w * 64 + bit as usize) as u16),
                    Err(now) => cur = now,
                }
            }
        }
        None
    }

    /// Claim `port` itself (a live restart's sessions bring the ports they own). False: taken
    /// already or outside the range.
    pub fn claim(&self, ip6: bool, fib: u32, proto: u8, port: u16) -> bool {
        let Some(i) = port.checked_sub(PORT_FIRST).map(usize::from) else {
            return false;
        };
        let Some(word) = self.bits.get(Self::base(ip6, fib, proto) + i / 64) else {
            return false;
        };
        let bit = 1u64 << (i % 64);
        word.fetch_or(bit, Ordering::Relaxed) & bit == 0
    }

    /// Return a port (ignores ports outside the range).
    pub fn free(&self, ip6: bool, fib: u32, proto: u8, port: u16) {
        if port < PORT_FIRST {
            return;
        }
        let i = (port - PORT_FIRST) as usize;
        self.bits[Self::base(ip6, fib, proto) + i / 64]
            .fetch_and(!(1 << (i % 64)), Ordering::Relaxed);
    }

    pub fn in_use(&self, ip6: bool, fib: u32, proto: u8) -> usize {
        let b = Self::base(ip6, fib, proto);
        self.bits[b..b + WORDS]
            .iter()
            .map(|w| w.load(Ordering::Relaxed).count_ones() as usize)
            .sum()
    }
}

/// `cnat_snat_policies`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Policy {
    #[default]
    None,
    IfPfx,
    K8s,
    Dnat,
}

/// `cnat_snat_policy_table`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IfTable {
    IncludeV4 = 0,
    IncludeV6 = 1,
    Pod = 2,
    Host = 3,
}

impl IfTable {
    pub const ALL: [Self; 4] = [Self::IncludeV4, Self::IncludeV6, Self::Pod, Self::Host];

    #[inline(always)]
    fn bit(self) -> u8 {
        1 << self as u8
    }

    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::IncludeV4,
            1 => Self::IncludeV6,
            2 => Self::Pod,
            3 => Self::Host,
            _ => return None,
        })
    }
}

/// Which interfaces are in each policy table: a byte of table bits per interface, so that the
/// K8S policy's three or four checks per packet are loads (SipHash sets cost cnat-output 200+
/// clocks per packet). Interface indices past `DENSE` (never given out by rvpp, but an API
/// client or a snapshot may name one) live in a short sorted list instead.
#[derive(Clone, Debug, Default)]
pub struct IfTables {
    dense: Vec<u8>,
    sparse: Vec<(u32, u8)>,
}

impl IfTables {
    const DENSE: u32 = 1 << 16;

    #[inline(always)]
    fn bits(&self, sw: u32) -> u8 {
        if sw < Self::DENSE {
            self.dense.get(sw as usize).copied().unwrap_or(0)
        } else {
            let i = self.sparse.binary_search_by_key(&sw, |e| e.0);
            i.ok().and_then(|i| self.sparse.get(i)).map_or(0, |e| e.1)
        }
    }

    fn set_bits(&mut self, sw: u32, f: impl Fn(u8) -> u8) {
        if sw < Self::DENSE {
            let i = sw as usize;
            if self.dense.len() <= i {
                if f(0) == 0 {
                    return;
                }
                self.dense.resize(i + 1, 0);
            }
            self.dense[i] = f(self.dense[i]);
        } else {
            match self.sparse.binary_search_by_key(&sw, |e| e.0) {
                Ok(i) => {
                    self.sparse[i].1 = f(self.sparse[i].1);
                    if self.sparse[i].1 == 0 {
                        self.sparse.remove(i);
                    }
                }
                Err(i) => {
                    let b = f(0);
                    if b != 0 {
                        self.sparse.insert(i, (sw, b));
                    }
                }
            }
        }
    }

    #[inline(always)]
    pub fn contains(&self, t: IfTable, sw: u32) -> bool {
        self.bits(sw) & t.bit() != 0
    }

    pub fn insert(&mut self, t: IfTable, sw: u32) {
        self.set_bits(sw, |b| b | t.bit());
    }

    pub fn remove(&mut self, t: IfTable, sw: u32) {
        self.set_bits(sw, |b| b & !t.bit());
    }

    /// The interfaces of table `t`, in index order.
    pub fn members(&self, t: IfTable) -> Vec<u32> {
        let dense = (0..self.dense.len() as u32).filter(|&sw| self.contains(t, sw));
        let sparse = self
            .sparse
            .iter()
            .map(|e| e.0)
            .filter(|&sw| self.contains(t, sw));
        dense.chain(sparse).collect()
    }

    /// Each table that has members, with them (in index order).
    pub fn iter(&self) -> impl Iterator<Item = (IfTable, Vec<u32>)> + '_ {
        IfTable::ALL
            .into_iter()
            .map(|t| (t, self.members(t)))
            .filter(|(_, m)| !m.is_empty())
    }
}

/// Prefixes looked up longest-first: one hash set per length present.
#[derive(Clone, Debug, Default)]
pub struct PrefixSet {
    by_len: Vec<(u8, HashSet<u128, ahash::RandomState>)>,
}

pub fn mask(addr: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        addr & (!0u128 << (128 - len as u32))
    }
}

impl PrefixSet {
    /// `addr` and `len` in the 128-bit space (IPv4: v4-mapped, length + 96).
    pub fn add(&mut self, addr: u128, len: u8) {
        let a = mask(addr, len);
        match self.by_len.iter_mut().find(|(l, _)| *l == len) {
            Some((_, s)) => {
                s.insert(a);
            }
            None => {
                let mut s = HashSet::default();
                s.insert(a);
                self.by_len.push((len, s));
                self.by_len.sort_by_key(|e| std::cmp::Reverse(e.0));
            }
        }
    }
    pub fn del(&mut self, addr: u128, len: u8) -> bool {
        let a = mask(addr, len);
        let Some(i) = self.by_len.iter().position(|(l, _)| *l == len) else {
            return false;
        };
        let hit = self.by_len[i].1.remove(&a);
        if self.by_len[i].1.is_empty() {
            self.by_len.remove(i);
        }
        hit
    }
    #[inline]
    pub fn contains(&self, addr: u128) -> bool {
        self.by_len.iter().any(|(l, s)| s.contains(&mask(addr, *l)))
    }
    pub fn iter(&self) -> impl Iterator<Item = (u128, u8)> + '_ {
        self.by_len
            .iter()
            .flat_map(|(l, s)| s.iter().map(move |a| (*a, *l)))
    }
}

/// The SNAT configuration, published whole like the translations.
#[derive(Clone, Debug, Default)]
pub struct SnatConfig {
    /// 0: unset (v4-mapped for IPv4).
    pub ip4: u128,
    pub ip6: u128,
    /// The interface whose address is used when set (`sw_if_index` of the API; ~0: none).
    pub sw_if_index: u32,
    pub fwd_fib_index: u32,
    pub ret_fib_index: u32,
    pub flags: u8,
    pub policy: Policy,
    pub exclude: PrefixSet,
    pub tables: IfTables,
    /// Moves on with every edit (1..=`SNAT_EPOCH_MAX`): a session's cached "no SNAT" holds
    /// for the epoch it was decided in only.
    pub epoch: u16,
    /// Every edit's number, which does not wrap ([`crate::cnat::Cnat::mark_no_snat`]).
    pub edits: u64,
}

impl SnatConfig {
    #[inline(always)]
    fn in_table(&self, t: IfTable, sw: u32) -> bool {
        self.tables.contains(t, sw)
    }

    /// Whether a flow gets SNAT: (rx interface, tx interface, family, source, destination).
    /// The K8S policy, in order: out to a HOST interface: no; in on an INCLUDE interface to a
    /// destination not excluded: yes; neither side a POD interface and the source not the
    /// SNAT address: yes; source equal to destination (a pod reaching itself through its
    /// service): yes.
    #[inline]
    pub fn wants_snat(&self, rx: u32, tx: u32, ip6: bool, src: u128, dst: u128) -> bool {
        let snat = if ip6 { self.ip6 } else { self.ip4 };
        match self.policy {
            Policy::None | Policy::Dnat => false,
            Policy::IfPfx => {
                let t = if ip6 {
                    IfTable::IncludeV6
                } else {
                    IfTable::IncludeV4
                };
                self.in_table(t, rx) && !self.exclude.contains(dst)
            }
            Policy::K8s => {
                if self.in_table(IfTable::Host, tx) {
                    return false;
                }
                let inc = if ip6 {
                    IfTable::IncludeV6
                } else {
                    IfTable::IncludeV4
                };
                if self.in_table(inc, rx) && !self.exclude.contains(dst) {
                    return true;
                }
                if !self.in_table(IfTable::Pod, rx)
                    && !self.in_table(IfTable::Pod, tx)
                    && src != snat
                {
                    return true;
                }
                src == dst
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_port_is_not_given_again() {
        let p = PortAlloc::default();
        assert!(p.claim(false, 2, 6, PORT_FIRST + 1));
        assert!(!p.claim(false, 2, 6, PORT_FIRST + 1), "claimed twice");
        assert!(!p.claim(false, 2, 6, 80), "below the range");
        let given: Vec<u16> = (0..3).filter_map(|_| p.alloc(false, 2, 6, 0)).collect();
        assert_eq!(given, vec![PORT_FIRST, PORT_FIRST + 2, PORT_FIRST + 3]);
        assert_eq!(p.in_use(false, 2, 6), 4);
        assert_eq!(p.in_use(false, 2, 17), 0);
    }

    #[test]
    fn ports_run_out_and_come_back() {
        let a = PortAlloc::default();
        let mut got = HashSet::new();
        for i in 0..PORTS as u32 {
            let p = a.alloc(false, 0, 17, i * 7919).expect("a port");
            assert!(p >= PORT_FIRST);
            assert!(got.insert(p), "port {p} handed out twice");
        }
        assert_eq!(a.alloc(false, 0, 17, 3), None, "exhausted");
        assert!(a.alloc(false, 0, 6, 3).is_some(), "TCP has its own ports");
        assert!(a.alloc(false, 1, 17, 3).is_some(), "so has another FIB");
        assert!(a.alloc(true, 0, 17, 3).is_some(), "and IPv6");
        a.free(false, 0, 17, 50000);
        assert_eq!(a.alloc(false, 0, 17, 0), Some(50000));
        assert_eq!(a.in_use(false, 0, 17), PORTS);
    }

    #[test]
    fn interface_tables_keep_each_tables_members_dense_or_not() {
        let mut t = IfTables::default();
        let big = IfTables::DENSE + 7;
        for sw in [3, 0, big, u32::MAX] {
            t.insert(IfTable::Pod, sw);
        }
        t.insert(IfTable::Host, 3);
        t.insert(IfTable::Host, big);
        assert_eq!(t.members(IfTable::Pod), vec![0, 3, big, u32::MAX]);
        assert_eq!(t.members(IfTable::Host), vec![3, big]);
        assert!(t.contains(IfTable::Pod, big) && !t.contains(IfTable::IncludeV4, big));
        assert!(!t.contains(IfTable::Pod, 1) && !t.contains(IfTable::Pod, 1 << 20));
        t.remove(IfTable::Pod, big);
        t.remove(IfTable::Pod, 3);
        t.remove(IfTable::Pod, 12345); // never a member
        assert!(t.contains(IfTable::Host, big) && !t.contains(IfTable::Pod, big));
        assert!(t.contains(IfTable::Host, 3) && !t.contains(IfTable::Pod, 3));
        t.remove(IfTable::Host, big);
        assert_eq!(
            t.sparse,
            vec![(u32::MAX, IfTable::Pod.bit())],
            "emptied entries go"
        );
        let all: Vec<_> = t.iter().collect();
        assert_eq!(
            all,
            vec![(IfTable::Pod, vec![0, u32::MAX]), (IfTable::Host, vec![3])]
        );
        assert!(t.dense.len() <= 4, "no room taken for the sparse indices");
    }

    #[test]
    fn k8s_policy_in_order() {
        let snat = 0xffff_c612_0001u128;
        let mut c = SnatConfig {
            ip4: snat,
            policy: Policy::K8s,
            ..Default::default()
        };
        c.tables.insert(IfTable::Pod, 5);
        c.tables.insert(IfTable::Host, 9);
        c.tables.insert(IfTable::IncludeV4, 5);
        c.exclude.add(0xffff_0a00_0000, 96 + 8);
        let (pod, host, up) = (5, 9, 1);
        let (out, inside) = (0xffff_0808_0808u128, 0xffff_0a01_0203u128);
        assert!(!c.wants_snat(pod, host, false, 1, out), "1: to host: no");
        assert!(
            c.wants_snat(pod, up, false, inside, out),
            "2: include, not excluded"
        );
        assert!(
            !c.wants_snat(pod, up, false, inside, inside + 1),
            "2: excluded"
        );
        assert!(
            c.wants_snat(up, 2, false, out, inside),
            "3: neither side a pod"
        );
        assert!(
            !c.wants_snat(up, 2, false, snat, inside),
            "3: already the SNAT address"
        );
        assert!(!c.wants_snat(up, pod, false, out, inside), "3: to a pod");
        assert!(c.wants_snat(6, pod, false, inside, inside), "4: hairpin");
        c.policy = Policy::None;
        assert!(!c.wants_snat(pod, up, false, inside, out));
    }

    #[test]
    fn prefix_set_longest_first() {
        let mut s = PrefixSet::default();
        s.add(0xffff_c612_0000, 96 + 16);
        assert!(s.contains(0xffff_c612_ff01));
        assert!(!s.contains(0xffff_c613_0001));
        assert!(s.del(0xffff_c612_0000, 112));
        assert!(!s.contains(0xffff_c612_ff01));
    }
}
