//! Both FIBs against a naive longest-prefix-match reference: random add/delete sequences, then
//! random lookups, gets and dumps.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use rvpp_dataplane::fib::{
    FibError, Ip4FibConfig, Ip4FibWriter, Ip6FibWriter, LookupImpl, LEAF_MISS,
};
use rvpp_dataplane::rcu::GracePeriod;

#[derive(Debug, Clone)]
enum Op<A> {
    Add(A, u8, u32),
    Del(A, u8),
}

fn mask4(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len)
    }
}

fn mask6(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    }
}

/// Reference: scan every route.
fn lpm<A: Copy>(
    routes: &BTreeMap<(A, u8), u32>,
    addr: A,
    covers: impl Fn(A, A, u8) -> bool,
) -> u32 {
    routes
        .iter()
        .filter(|(&(p, l), _)| covers(addr, p, l))
        .max_by_key(|(&(_, l), _)| l)
        .map_or(LEAF_MISS, |(_, &leaf)| leaf)
}

/// IPv4 addresses clustered in a few /16s so prefixes overlap and share tbl8 groups. Lengths
/// mostly /12 and longer: a /len add writes 2^(24-len) entries, slow in debug builds.
fn addr4() -> impl Strategy<Value = u32> {
    (
        prop::sample::select(vec![0x0a00_0000u32, 0x0a01_0000, 0xc0a8_0000]),
        0u32..0x1_0000,
    )
        .prop_map(|(b, x)| b | x)
}

fn len4() -> impl Strategy<Value = u8> {
    prop_oneof![1 => Just(0u8), 1 => 4u8..12, 8 => 12u8..=32]
}

fn ops4() -> impl Strategy<Value = Vec<Op<u32>>> {
    prop::collection::vec(
        prop_oneof![
            3 => (addr4(), len4(), 0u32..1000).prop_map(|(a, l, v)| Op::Add(a, l, v)),
            1 => (addr4(), len4()).prop_map(|(a, l)| Op::Del(a, l)),
        ],
        1..80,
    )
}

fn addr6() -> impl Strategy<Value = u128> {
    let base = 0xfd00_0000_0000_0000_0000_0000_0000_0000u128;
    (
        prop::sample::select(vec![base, base | 1 << 64, base | 0xab << 80]),
        any::<u16>(),
        any::<u8>(),
    )
        .prop_map(|(b, x, y)| b | (x as u128) << 8 | y as u128)
}

fn len6() -> impl Strategy<Value = u8> {
    prop_oneof![
        Just(0u8),
        Just(48u8),
        Just(64u8),
        100u8..=128,
        Just(122u8),
        Just(128u8)
    ]
}

fn ops6() -> impl Strategy<Value = Vec<Op<u128>>> {
    prop::collection::vec(
        prop_oneof![
            3 => (addr6(), len6(), 0u32..1000).prop_map(|(a, l, v)| Op::Add(a, l, v)),
            1 => (addr6(), len6()).prop_map(|(a, l)| Op::Del(a, l)),
        ],
        1..120,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn ip4_matches_reference(ops in ops4(), probes in prop::collection::vec((addr4(), any::<u8>()), 64)) {
        // Few tbl8 groups, so exhaustion and group reuse are exercised too.
        let cfg = Ip4FibConfig { tbl8_groups: 12, huge_pages: false };
        let mut w = Ip4FibWriter::new(cfg, Arc::new(GracePeriod::new())).unwrap();
        let mut reference = BTreeMap::new();
        for op in &ops {
            match *op {
                Op::Add(a, l, v) => {
                    let p = a & mask4(l);
                    match w.add(a, l, v) {
                        Ok(prev) => prop_assert_eq!(prev, reference.insert((p, l), v)),
                        Err(FibError::Tbl8Exhausted { .. }) => prop_assert!(l > 24),
                        Err(e) => prop_assert!(false, "{}", e),
                    }
                }
                Op::Del(a, l) => {
                    let p = a & mask4(l);
                    prop_assert_eq!(w.delete(a, l).unwrap(), reference.remove(&(p, l)));
                }
            }
        }
        let covers = |a: u32, p: u32, l: u8| a & mask4(l) == p;
        let fib = w.fib().clone();
        let mut addrs: Vec<u32> = probes.iter().map(|&(a, b)| a ^ b as u32).collect();
        addrs.extend(reference.keys().map(|&(p, _)| p));
        addrs.extend(reference.keys().map(|&(p, l)| p | !mask4(l)));
        let want: Vec<u32> = addrs.iter().map(|&a| lpm(&reference, a, covers)).collect();
        for (&a, &x) in addrs.iter().zip(&want) {
            prop_assert_eq!(fib.lookup(a), x, "lookup {:#x}", a);
        }
        for imp in [LookupImpl::Scalar, LookupImpl::Avx2, LookupImpl::Avx512] {
            let mut out = vec![0; addrs.len()];
            fib.lookup_batch_with(imp, &addrs, &mut out);
            prop_assert_eq!(&out, &want, "{:?}", imp);
        }
        prop_assert_eq!(w.len(), reference.len());
        let dump: BTreeMap<(u32, u8), u32> = w.iter().map(|(p, l, v)| ((p, l), v)).collect();
        prop_assert_eq!(&dump, &reference);
        for (&(p, l), &v) in &reference {
            prop_assert_eq!(w.get(p, l), Some(v));
        }
        // Deleting everything leaves an empty table and no tbl8 group in use.
        for &(p, l) in reference.keys() {
            w.delete(p, l).unwrap();
        }
        prop_assert_eq!(w.tbl8_stats().in_use, 0);
        for &a in &addrs {
            prop_assert_eq!(fib.lookup(a), LEAF_MISS);
        }
    }

    #[test]
    fn ip6_matches_reference(ops in ops6(), probes in prop::collection::vec((addr6(), any::<u16>()), 64)) {
        let mut w = Ip6FibWriter::new(Arc::new(GracePeriod::new()));
        let mut reference = BTreeMap::new();
        for op in &ops {
            match *op {
                Op::Add(a, l, v) => {
                    prop_assert_eq!(w.add(a, l, v).unwrap(), reference.insert((a & mask6(l), l), v));
                }
                Op::Del(a, l) => {
                    prop_assert_eq!(w.delete(a, l).unwrap(), reference.remove(&(a & mask6(l), l)));
                }
            }
        }
        let covers = |a: u128, p: u128, l: u8| a & mask6(l) == p;
        let fib = w.fib();
        let mut addrs: Vec<u128> = probes.iter().map(|&(a, b)| a ^ b as u128).collect();
        addrs.extend(reference.keys().map(|&(p, _)| p));
        addrs.extend(reference.keys().map(|&(p, l)| p | !mask6(l)));
        for &a in &addrs {
            prop_assert_eq!(fib.lookup(a), lpm(&reference, a, covers), "lookup {:#x}", a);
        }
        prop_assert_eq!(w.len(), reference.len());
        let dump: BTreeMap<(u128, u8), u32> = w.iter().map(|(p, l, v)| ((p, l), v)).collect();
        prop_assert_eq!(&dump, &reference);
    }
}
