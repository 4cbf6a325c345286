//! Routes change from the control thread while a worker forwards: packets to prefixes that did
//! not change are never lost or misrouted.

use rvpp_dataplane::buffer::BufferPool;
use rvpp_dataplane::forwarding::{Forwarding, Path, Prefix};
use rvpp_dataplane::runtime::Runtime;
use rvpp_dataplane::tables::Shared;
use rvpp_drivers::pg::{NullTx, PgStream};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[test]
fn route_churn_under_traffic_never_touches_stable_prefixes() {
    let pool = BufferPool::with_backing(8192, 2048, false).unwrap();
    let shared = Shared::new();
    let mut fwd = Forwarding::new(shared.clone());
    let pg = fwd
        .interface_add("pg0", "pg", [2, 0, 0, 0, 0, 1], true, 9000)
        .unwrap();
    let good = fwd
        .interface_add("good", "null", [2, 0, 0, 0, 0, 2], true, 9000)
        .unwrap();
    let bad = fwd
        .interface_add("bad", "null", [2, 0, 0, 0, 0, 3], true, 9000)
        .unwrap();
    for (s, a) in [
        (pg, "198.18.0.1/24"),
        (good, "198.18.1.1/24"),
        (bad, "198.18.2.1/24"),
    ] {
        fwd.address_add(s, Prefix::parse(a).unwrap()).unwrap();
        fwd.set_admin_up(s, true).unwrap();
    }
    let nh_good: IpAddr = "198.18.1.2".parse().unwrap();
    let nh_bad: IpAddr = "198.18.2.2".parse().unwrap();
    fwd.neighbor_add(good, nh_good, [2, 0, 0, 0, 0, 0x22], true)
        .unwrap();
    fwd.neighbor_add(bad, nh_bad, [2, 0, 0, 0, 0, 0x33], true)
        .unwrap();
    // Stable: 198.19.1.0/24 and 198.19.200.128/25, both via good.
    for p in ["198.19.1.0/24", "198.19.200.128/25"] {
        fwd.route_add(
            0,
            Prefix::parse(p).unwrap(),
            vec![Path::via(nh_good, Some(good))],
        )
        .unwrap();
    }
    let dsts: Vec<u32> = (0..256u32)
        .map(|i| 0xc613_0100 + i)
        .chain((128..256u32).map(|i| 0xc613_c800 + i))
        .collect();
    const PACKETS: u64 = 400_000;
    let graph = rvpp_drivers::standard_graph().unwrap();
    let mut rt = Runtime::new(graph, pool.local(), shared.clone(), 1, "worker".into()).unwrap();
    rt.add_rx(Box::new(
        PgStream::ip4_udp(
            pg,
            [2, 0, 0, 0, 0, 1],
            [2, 0, 0, 0, 0, 9],
            0xc612_0002,
            &dsts,
            64,
        )
        .limit(PACKETS),
    ))
    .unwrap();
    rt.set_tx(good, Box::new(NullTx::default())).unwrap();
    rt.set_tx(bad, Box::new(NullTx::default())).unwrap();
    let stats = rt.stats();
    let done = Arc::new(AtomicBool::new(false));
    let d2 = done.clone();
    // The worker waits for the churner after every 64 busy polls, so at least that many churn
    // rounds overlap the traffic however the two threads get scheduled on a loaded machine.
    let churned = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let c2 = churned.clone();
    let worker = std::thread::spawn(move || {
        let mut idle = 0;
        let mut busy = 0u64;
        while idle < 1000 {
            if rt.poll() == 0 {
                idle += 1;
            } else {
                idle = 0;
                busy += 1;
                let t = std::time::Instant::now();
                while c2.load(Ordering::Acquire) < busy / 64 && t.elapsed().as_secs() < 30 {
                    std::thread::yield_now();
                }
            }
        }
        d2.store(true, Ordering::Release);
        rt.buffers().flush();
    });
    // Churn: covering routes, siblings in the same /24 blocks, and far-away routes, via bad.
    let churn: Vec<Prefix> = [
        "198.19.0.0/16",
        "198.19.1.0/23",
        "198.19.0.0/24",
        "198.19.200.0/25",
        "198.19.200.0/24",
        "198.16.0.0/14",
        "0.0.0.0/0",
        "198.19.201.0/24",
    ]
    .iter()
    .map(|p| Prefix::parse(p).unwrap())
    .collect();
    let mut rounds = 0u64;
    while !done.load(Ordering::Acquire) {
        for p in &churn {
            fwd.route_add(0, *p, vec![Path::via(nh_bad, Some(bad))])
                .unwrap();
        }
        for p in &churn {
            fwd.route_del(0, *p).unwrap();
        }
        fwd.reclaim();
        rounds += 1;
        churned.store(rounds, Ordering::Release);
    }
    worker.join().unwrap();
    let good_tx = stats.ifs[good as usize].tx_packets.get();
    let bad_tx = stats.ifs[bad as usize].tx_packets.get();
    let errors: u64 = stats.errors.iter().map(|c| c.get()).sum();
    assert!(rounds > 10, "only {rounds} churn rounds ran");
    assert_eq!(
        bad_tx, 0,
        "packets for stable prefixes went to the churned path"
    );
    assert_eq!(good_tx, PACKETS, "packets lost ({errors} error events)");
    assert_eq!(pool.in_use(), 0);
}
