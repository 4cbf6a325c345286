//! 1M IPv4 routes in dpdk-test-fib's default depth mix, checked against a per-length hash
//! reference, then all deleted. Release only: the short prefixes write millions of entries,
//! minutes in a debug build. Run: `cargo test --release -p rvpp-dataplane --test fib_scale`.

use std::collections::HashMap;
use std::sync::Arc;

use rvpp_dataplane::fib::{Ip4FibConfig, Ip4FibWriter, LEAF_MISS};
use rvpp_dataplane::rcu::GracePeriod;

fn next(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn mask(l: u32) -> u32 {
    if l == 0 {
        0
    } else {
        u32::MAX << (32 - l)
    }
}

#[test]
#[cfg_attr(debug_assertions, ignore = "1M routes: run with --release")]
fn million_routes_match_reference() {
    const N: usize = 1_000_000;
    let mut rng = 42u64;
    let mut by_len: Vec<HashMap<u32, u32>> = vec![HashMap::new(); 33];
    let mut routes = Vec::with_capacity(N);
    let mut placed = 0;
    for d in 0..=32u32 {
        let cnt = ((N - placed) / (33 - d as usize)).min(1 << d);
        placed += cnt;
        for _ in 0..cnt {
            let p = (next(&mut rng) as u32) & mask(d);
            if by_len[d as usize]
                .insert(p, (next(&mut rng) % (1 << 29)) as u32)
                .is_none()
            {
                routes.push((p, d as u8));
            }
        }
    }
    let mut w = Ip4FibWriter::new(
        Ip4FibConfig {
            tbl8_groups: N as u32,
            huge_pages: true,
        },
        Arc::new(GracePeriod::new()),
    )
    .unwrap();
    for &(p, l) in &routes {
        w.add(p, l, by_len[l as usize][&p]).unwrap();
    }
    assert_eq!(w.len(), routes.len());
    let fib = w.fib().clone();
    let addrs: Vec<u32> = (0..1 << 20)
        .map(|i| {
            let (p, l) = routes[next(&mut rng) as usize % routes.len()];
            if i % 4 == 0 {
                next(&mut rng) as u32
            } else {
                p | (next(&mut rng) as u32 & !mask(l as u32))
            }
        })
        .collect();
    let want: Vec<u32> = addrs
        .iter()
        .map(|&a| {
            (0..=32u32)
                .rev()
                .find_map(|l| by_len[l as usize].get(&(a & mask(l))).copied())
                .unwrap_or(LEAF_MISS)
        })
        .collect();
    let mut out = vec![0; addrs.len()];
    fib.lookup_batch(&addrs, &mut out);
    assert!(out == want, "batched lookups differ from the reference");
    for &(p, l) in &routes {
        w.delete(p, l).unwrap();
    }
    assert_eq!(w.tbl8_stats().in_use, 0);
    fib.lookup_batch(&addrs, &mut out);
    assert!(out.iter().all(|&x| x == LEAF_MISS));
}
