//! One writer changes routes in place while readers look up addresses whose longest match never
//! changes: those must never see another leaf ("no packet misrouted for unchanged prefixes").
//! Also: freed tbl8 groups are reused only after every reader passed a quiescent point.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use rvpp_dataplane::fib::{FibError, Ip4FibConfig, Ip4FibWriter, Ip6FibWriter, LookupImpl};
use rvpp_dataplane::rcu::GracePeriod;

const READERS: usize = 3;

/// Wait until every reader has done one round of lookups, so the churn that follows runs
/// under them (on two cores the writer could otherwise finish before a reader starts).
fn wait_for_readers(started: &AtomicUsize) {
    let t = std::time::Instant::now();
    while started.load(Ordering::Acquire) < READERS {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(20),
            "only {} of {READERS} readers started",
            started.load(Ordering::Acquire)
        );
        thread::yield_now();
    }
}

/// Join the readers (each returns its rounds of lookups); every one must have looked up.
fn join_readers(readers: Vec<thread::JoinHandle<u64>>) {
    let rounds: Vec<u64> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    assert!(
        rounds.iter().all(|&n| n > 0),
        "a reader did no lookups: rounds {rounds:?}"
    );
}

#[test]
fn readers_that_never_looked_up_fail_the_check() {
    // The old IPv6 test checked nothing about its readers, and the IPv4 one only their sum:
    // a reader that never ran (0 rounds) passed both.
    let ran = thread::spawn(|| 5u64);
    let idle = thread::spawn(|| 0u64);
    let readers = vec![ran, idle];
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| join_readers(readers)));
    assert!(r.is_err(), "a reader with 0 rounds was accepted");
    join_readers(vec![thread::spawn(|| 1u64), thread::spawn(|| 2u64)]);
}

fn ip4(s: &str) -> u32 {
    u32::from(s.parse::<std::net::Ipv4Addr>().unwrap())
}

fn ip6(s: &str) -> u128 {
    u128::from(s.parse::<std::net::Ipv6Addr>().unwrap())
}

#[test]
fn ip4_unchanged_prefixes_never_flap() {
    let gp = Arc::new(GracePeriod::new());
    // Tight tbl8 capacity: the writer keeps hitting exhaustion and reuse of retired groups.
    let cfg = Ip4FibConfig {
        tbl8_groups: 20,
        huge_pages: false,
    };
    let mut w = Ip4FibWriter::new(cfg, gp.clone()).unwrap();
    const NETS: u32 = 32;
    w.add(0, 0, 7).unwrap();
    let mut checks = vec![(ip4("8.8.8.8"), 7)];
    for k in 0..NETS {
        let net = ip4("10.0.0.0") | k << 8;
        w.add(net, 24, 1000 + k).unwrap();
        checks.push((net | 5, 1000 + k));
        checks.push((net | 40, 1000 + k));
        // Odd /24s have no stable long prefix: churn makes and folds their tbl8 group.
        if k % 2 == 0 {
            w.add(net | 64, 27, 2000 + k).unwrap();
            checks.push((net | 70, 2000 + k));
        } else {
            checks.push((net | 70, 1000 + k));
        }
    }
    let checks = Arc::new(checks);
    let fib = w.fib().clone();
    let stop = Arc::new(AtomicBool::new(false));
    let lookups = Arc::new(AtomicU64::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..READERS)
        .map(|slot| {
            let (fib, gp, stop, checks, lookups, started) = (
                fib.clone(),
                gp.clone(),
                stop.clone(),
                checks.clone(),
                lookups.clone(),
                started.clone(),
            );
            thread::spawn(move || {
                let addrs: Vec<u32> = checks.iter().map(|c| c.0).collect();
                let want: Vec<u32> = checks.iter().map(|c| c.1).collect();
                let mut out = vec![0; addrs.len()];
                let imps = [LookupImpl::Scalar, LookupImpl::Avx2, LookupImpl::Avx512];
                let mut n = 0u64;
                gp.quiescent(slot);
                while !stop.load(Ordering::Relaxed) {
                    for &(a, leaf) in checks.iter() {
                        assert_eq!(fib.lookup(a), leaf, "reader {slot} addr {a:#x}");
                    }
                    fib.lookup_batch_with(imps[n as usize % 3], &addrs, &mut out);
                    assert_eq!(out, want, "reader {slot} batch");
                    n += 1;
                    if n == 1 {
                        started.fetch_add(1, Ordering::Release);
                    }
                    gp.quiescent(slot);
                }
                gp.offline(slot);
                lookups.fetch_add(n * 2 * addrs.len() as u64, Ordering::Relaxed);
                n
            })
        })
        .collect();
    wait_for_readers(&started);

    // Churn: longer prefixes inside the stable /24s (tbl8 groups created and folded back),
    // shorter ones covering them, neighbours, and the default route's neighbours.
    let mut exhausted = 0;
    for round in 0..40u32 {
        for k in 0..NETS {
            let net = ip4("10.0.0.0") | k << 8;
            let churn: [(u32, u8); 4] = [
                (net | 128, 25),
                (net | 200, 32),
                (net | 96, 28),
                (net | 1 << 16 | 4, 30),
            ];
            for &(p, l) in &churn {
                loop {
                    match w.add(p, l, round % 1000) {
                        Ok(_) => break,
                        Err(FibError::Tbl8Exhausted { .. }) => {
                            // A reader that died (assertion failed) never goes quiescent again.
                            if readers.iter().any(|r| r.is_finished()) {
                                stop.store(true, Ordering::Relaxed);
                                for r in readers {
                                    r.join().unwrap();
                                }
                                panic!("a reader stopped early");
                            }
                            exhausted += 1;
                            thread::sleep(std::time::Duration::from_micros(20));
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            w.add(ip4("10.0.0.0"), 16, 5).unwrap();
            w.add(ip4("9.0.0.0"), 16, 5).unwrap();
            for &(p, l) in &churn {
                w.delete(p, l).unwrap();
            }
            w.delete(ip4("10.0.0.0"), 16).unwrap();
            w.delete(ip4("9.0.0.0"), 16).unwrap();
        }
    }
    stop.store(true, Ordering::Relaxed);
    join_readers(readers);
    w.reclaim();
    let s = w.tbl8_stats();
    assert_eq!(
        s.in_use,
        NETS / 2,
        "only the stable /27s keep groups: {s:?}"
    );
    eprintln!(
        "ip4 churn: {} lookups checked, {exhausted} waits for a grace period",
        lookups.load(Ordering::Relaxed)
    );
}

#[test]
fn ip6_unchanged_prefixes_never_flap() {
    let gp = Arc::new(GracePeriod::new());
    let mut w = Ip6FibWriter::new(gp.clone());
    w.add(0, 0, 7).unwrap();
    w.add(ip6("fd00::"), 64, 1).unwrap();
    w.add(ip6("fd00::1:0"), 122, 2).unwrap();
    w.add(ip6("fd00::2:5"), 128, 3).unwrap();
    let checks = Arc::new(vec![
        (ip6("2001:db8::1"), 7),
        (ip6("fd00::9:9"), 1),
        (ip6("fd00::1:3"), 2),
        (ip6("fd00::2:5"), 3),
    ]);
    let fib = w.fib().clone();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..READERS)
        .map(|slot| {
            let (fib, gp, stop, checks) = (fib.clone(), gp.clone(), stop.clone(), checks.clone());
            let started = started.clone();
            thread::spawn(move || {
                let mut n = 0u64;
                gp.quiescent(slot);
                while !stop.load(Ordering::Relaxed) {
                    for &(a, leaf) in checks.iter() {
                        assert_eq!(fib.lookup(a), leaf, "reader {slot} addr {a:#x}");
                    }
                    n += 1;
                    if n == 1 {
                        started.fetch_add(1, Ordering::Release);
                    }
                    gp.quiescent(slot);
                }
                gp.offline(slot);
                n
            })
        })
        .collect();
    wait_for_readers(&started);
    // Enough routes to force growth, then deletes to force compaction, several times over.
    for round in 0..6u32 {
        for i in 0..300u128 {
            w.add(ip6("fd01::") | i << 16, 112, round).unwrap();
            w.add(ip6("fd00::3:0") | i, 128, round).unwrap();
        }
        w.add(ip6("fd00::"), 16, 9).unwrap();
        for i in 0..300u128 {
            w.delete(ip6("fd01::") | i << 16, 112).unwrap();
            w.delete(ip6("fd00::3:0") | i, 128).unwrap();
        }
        w.delete(ip6("fd00::"), 16).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    join_readers(readers);
    assert_eq!(w.len(), 4);
}

#[test]
fn tbl8_group_reused_only_after_grace_period() {
    let gp = Arc::new(GracePeriod::new());
    let cfg = Ip4FibConfig {
        tbl8_groups: 2,
        huge_pages: false,
    };
    let mut w = Ip4FibWriter::new(cfg, gp.clone()).unwrap();
    let fib = w.fib().clone();
    gp.quiescent(5); // one online reader

    w.add(ip4("10.0.0.128"), 25, 1).unwrap();
    let g0 = fib.tbl8_group_of(ip4("10.0.0.1")).unwrap();
    w.delete(ip4("10.0.0.128"), 25).unwrap();
    assert_eq!(fib.tbl8_group_of(ip4("10.0.0.1")), None);
    assert_eq!(w.tbl8_stats().retired, 1);

    // Before the reader is quiescent, a new group must be a different one...
    w.add(ip4("10.0.1.128"), 25, 2).unwrap();
    let g1 = fib.tbl8_group_of(ip4("10.0.1.1")).unwrap();
    assert_ne!(g1, g0);
    // ...and once capacity is used up, adding waits rather than reusing.
    assert_eq!(
        w.add(ip4("10.0.2.128"), 25, 3),
        Err(FibError::Tbl8Exhausted { retired: 1 })
    );
    assert_eq!(w.get(ip4("10.0.2.128"), 25), None);

    gp.quiescent(5);
    w.add(ip4("10.0.2.128"), 25, 3).unwrap();
    assert_eq!(
        fib.tbl8_group_of(ip4("10.0.2.1")),
        Some(g0),
        "reused after the grace period"
    );
    assert_eq!(fib.lookup(ip4("10.0.2.200")), 3);
    assert_eq!(w.tbl8_stats().in_use, 2);

    // An offline reader does not hold reuse back.
    w.delete(ip4("10.0.1.128"), 25).unwrap();
    gp.offline(5);
    w.add(ip4("10.0.3.128"), 25, 4).unwrap();
    assert_eq!(fib.tbl8_group_of(ip4("10.0.3.1")), Some(g1));
}
