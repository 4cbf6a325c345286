//! DPDK driver tests on virtual devices (no NIC): net_null, a net_ring pair, net_af_packet on
//! a veth inside a namespace made for the test, and bad configurations.
//!
//! EAL can be initialised once per process, so every DPDK test lives in this one binary and
//! shares one EAL ([`eal`]); each test probes its own uniquely named vdevs.
//!
//! net_memif against rvpp's memif device (drivers/src/memif.rs), in both roles: DPDK's PMD runs
//! in this process through the dpdk driver, rvpp's memif device beside it on the same socket;
//! frames of 60..9000 bytes cross both ways and are compared byte for byte.
#![cfg(feature = "dpdk")]

#[path = "../../test-support/skip.rs"]
mod skip;

use rvpp_dataplane::buffer::{flags, BufferPool, Buffers};
use rvpp_dataplane::device::{RxQueue, TxQueue};
use rvpp_dataplane::graph::rx_next;
use rvpp_drivers::dpdk::{self, Eal, EalConfig, Port, PortConfig, RxTemplate};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn eal() -> &'static Eal {
    dpdk::eal_init(&EalConfig {
        no_huge: true,
        mem_mb: 512,
        mbufs: 16 * 1024,
        ..Default::default()
    })
    .expect("EAL init")
}

fn pool() -> (Arc<BufferPool>, Buffers) {
    let p = BufferPool::with_backing(8192, 2048, false).unwrap();
    let b = p.local();
    (p, b)
}

fn frame(i: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental ethertype
    f[14..18].copy_from_slice(&i.to_be_bytes());
    for (k, b) in f[18..].iter_mut().enumerate() {
        *b = (k as u32 ^ i) as u8;
    }
    f
}

/// Poll `rx` until `want` packets arrived or `secs` passed (at least once); returns their bytes.
fn rx_until(rx: &mut dyn RxQueue, bufs: &mut Buffers, want: usize, secs: u64) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut out = [0u32; 256];
    let mut nexts = [0u16; 256];
    let t0 = Instant::now();
    // Polls at least once, so `secs = 0` is one poll.
    loop {
        let n = rx.rx(bufs, &mut out, &mut nexts);
        for i in 0..n {
            assert_eq!(nexts[i], rx_next::ETHERNET);
            assert_eq!(bufs.meta(out[i]).rx_sw_if_index, rx.sw_if_index());
            let len = bufs.get(out[i]).total_len();
            let mut v = vec![0u8; len];
            assert_eq!(bufs.copy_chain(out[i], &mut v), len);
            got.push(v);
        }
        bufs.free(&out[..n]);
        if got.len() >= want || t0.elapsed() >= Duration::from_secs(secs) {
            break;
        }
        if n == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    got
}

/// Poll `rx` once and drop what it received.
fn drain(rx: &mut dyn RxQueue, bufs: &mut Buffers) {
    let mut out = [0u32; 256];
    let mut nexts = [0u16; 256];
    let n = rx.rx(bufs, &mut out, &mut nexts);
    bufs.free(&out[..n]);
}

fn send(tx: &mut dyn TxQueue, bufs: &mut Buffers, frames: &[Vec<u8>]) -> usize {
    let pkts: Vec<u32> = frames
        .iter()
        .map(|f| bufs.alloc_from_bytes(f).unwrap())
        .collect();
    let n = tx.tx(bufs, &pkts);
    bufs.free(&pkts[n..]);
    tx.flush(bufs);
    n
}

#[test]
fn null_rx_tx_and_stats() {
    let eal = eal();
    let id = eal.probe("net_null_t0,size=64").unwrap();
    // Probing again finds the same port.
    assert_eq!(eal.probe("net_null_t0").unwrap(), id);
    let port = Port::open(eal, id, &PortConfig::default()).unwrap();
    assert_eq!(port.driver, "net_null");
    assert_eq!(port.vpp_name(), "net_null_t0");
    assert!(port.link().up);
    let (pool, mut bufs) = pool();
    let mut rx = port.rx_queue(0, 7);
    let got = rx_until(&mut rx, &mut bufs, 1000, 5);
    assert!(got.len() >= 1000);
    assert!(got.iter().all(|p| p.len() == 64));
    // A template makes null packets routable: Ethernet to the port, IPv4/UDP.
    rx.set_template(Some(RxTemplate::ip4_udp(port.mac, vec![0xc6130001], 64)));
    let got = rx_until(&mut rx, &mut bufs, 10, 5);
    assert_eq!(&got[0][0..6], &port.mac);
    assert_eq!(&got[0][12..14], &[0x08, 0x00]);
    assert_eq!(&got[0][30..34], &[198, 19, 0, 1]);

    let mut tx = port.tx_queue(0, 1);
    let frames: Vec<Vec<u8>> = (0..100).map(|i| frame(i, 100)).collect();
    assert_eq!(send(&mut tx, &mut bufs, &frames), 100);
    let s = port.stats();
    assert_eq!(s.tx_packets, 100);
    // net_null counts tx packets only, not bytes.
    assert!(s.rx_packets >= 1010);
    assert!(port.describe().contains("driver net_null"));
    // Every buffer came back: nothing leaks across the mbuf boundary.
    bufs.flush();
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn null_multi_queue_rss() {
    let eal = eal();
    let id = eal.probe("net_null_t1").unwrap();
    let cfg = PortConfig {
        rx_queues: 4,
        tx_queues: 2,
        ..Default::default()
    };
    let port = Port::open(eal, id, &cfg).unwrap();
    assert!(
        port.rss,
        "net_null advertises RSS; 4 queues should enable it"
    );
    let (_pool, mut bufs) = pool();
    for q in 0..4 {
        let mut rx = port.rx_queue(q, 1);
        assert_eq!(rx.queue_id(), q);
        assert!(!rx_until(&mut rx, &mut bufs, 32, 5).is_empty());
    }
    // Three workers on two tx queues: worker 2 shares queue 0 (under a lock).
    let frames: Vec<Vec<u8>> = (0..10).map(|i| frame(i, 64)).collect();
    for w in 0..3 {
        let mut tx = port.tx_queue(w, 3);
        assert_eq!(send(&mut tx, &mut bufs, &frames), 10);
    }
    assert_eq!(port.stats().tx_packets, 30);
}

#[test]
fn ring_pair_carries_packets_both_ways_including_chains() {
    let eal = eal();
    let (a, b) = eal.ring_pair("ring_ta", "ring_tb", 1024).unwrap();
    let pa = Port::open(eal, a, &PortConfig::default()).unwrap();
    let pb = Port::open(eal, b, &PortConfig::default()).unwrap();
    let (pool, mut bufs) = pool();
    let (mut txa, mut rxb) = (pa.tx_queue(0, 1), pb.rx_queue(0, 2));
    let (mut txb, mut rxa) = (pb.tx_queue(0, 1), pa.rx_queue(0, 1));

    let frames: Vec<Vec<u8>> = (0..300)
        .map(|i| frame(i, 60 + (i as usize % 1400)))
        .collect();
    assert_eq!(send(&mut txa, &mut bufs, &frames), 300);
    let got = rx_until(&mut rxb, &mut bufs, 300, 5);
    assert_eq!(got, frames);

    // Jumbo frames: an rvpp chain becomes an mbuf chain and comes back as an rvpp chain.
    let jumbo: Vec<Vec<u8>> = (0..5).map(|i| frame(1000 + i, 9000)).collect();
    assert_eq!(send(&mut txb, &mut bufs, &jumbo), 5);
    let got = rx_until(&mut rxa, &mut bufs, 5, 5);
    assert_eq!(got, jumbo);

    assert_eq!(pa.stats().tx_packets, 300);
    assert_eq!(pb.stats().rx_packets, 300);
    bufs.flush();
    assert_eq!(pool.in_use(), 0);
    // A chained head is flagged as such on receive.
    send(&mut txa, &mut bufs, &jumbo[..1]);
    let mut out = [0u32; 8];
    let mut nexts = [0u16; 8];
    let t0 = Instant::now();
    let mut n = 0;
    while n == 0 && t0.elapsed() < Duration::from_secs(5) {
        n = rxb.rx(&mut bufs, &mut out, &mut nexts);
    }
    assert_eq!(n, 1);
    assert_ne!(bufs.meta(out[0]).flags & flags::NEXT_PRESENT, 0);
    bufs.free(&out[..1]);
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let eal = eal();
    let e = eal.probe("net_bogus_t0").unwrap_err();
    assert!(e.contains("net_bogus_t0"), "{e}");
    let e = eal.probe("0000:00:1f.7").unwrap_err();
    assert!(e.contains("0000:00:1f.7"), "{e}");
    let e = eal.probe("net_null_t9,nonsense=1").unwrap_err();
    assert!(e.contains("net_null_t9"), "{e}");
    // A ring port has one queue pair: asking for four is refused, naming the limit.
    let (a, _b) = eal.ring_pair("ring_tc", "ring_td", 256).unwrap();
    let cfg = PortConfig {
        rx_queues: 4,
        ..Default::default()
    };
    let e = Port::open(eal, a, &cfg).err().expect("too many queues");
    assert!(
        e.contains("num-rx-queues 4") && e.contains("at most 1"),
        "{e}"
    );
    // A second init returns the first EAL instead of calling into EAL again.
    let again = dpdk::eal_init(&EalConfig {
        iova_mode: Some("pa".into()),
        ..Default::default()
    })
    .unwrap();
    assert!(std::ptr::eq(again, eal));
}

#[test]
fn af_packet_on_a_veth_in_a_namespace() {
    use rvpp_drivers::af_packet::{AfPacket, AfPacketConfig};
    use rvpp_drivers::netns::{veth_pair, TestNetns};
    if !skip::need_root("for network namespaces") {
        return;
    }
    let eal = eal();
    let ns = TestNetns::new().unwrap();
    let (va, vb) = ("dpdk-va", "dpdk-vb");
    veth_pair(va, &ns, vb, &ns).unwrap();
    // Keep IPv6 autoconfiguration quiet so only our frames cross.
    for v in [va, vb] {
        let _ = ns.exec(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{v}.disable_ipv6=1"),
        ]);
    }
    // The PMD opens its socket in the probing thread's namespace.
    let devargs = format!("net_af_packet_t0,iface={va},qpairs=1");
    let id = ns.run(|| eal.probe(&devargs)).unwrap().unwrap();
    // It also sets the interface flags at start and stop from the calling thread's namespace.
    let port = ns
        .run(|| Port::open(eal, id, &PortConfig::default()))
        .unwrap()
        .unwrap();
    assert_eq!(port.driver, "net_af_packet");
    // The peer: rvpp's own AF_PACKET driver on the other end of the veth.
    let (mut prx, mut ptx, _info) = AfPacket::create_queues(
        &AfPacketConfig {
            host_if_name: vb.into(),
            netns: Some(ns.path()),
            ..Default::default()
        },
        9,
    )
    .unwrap();
    let (_pool, mut bufs) = pool();
    let ours = |v: &Vec<u8>| v.len() >= 14 && v[12..14] == [0x88, 0xb5];

    let frames: Vec<Vec<u8>> = (0..50).map(|i| frame(i, 64 + i as usize * 10)).collect();
    let mut tx = port.tx_queue(0, 1);
    assert_eq!(send(&mut tx, &mut bufs, &frames), 50);
    let got: Vec<Vec<u8>> = rx_until(&mut prx[0], &mut bufs, 50, 5)
        .into_iter()
        .filter(ours)
        .collect();
    assert_eq!(got, frames);

    let back: Vec<Vec<u8>> = (100..150).map(|i| frame(i, 128)).collect();
    assert_eq!(send(&mut ptx[0], &mut bufs, &back), 50);
    let mut rx = port.rx_queue(0, 3);
    let got: Vec<Vec<u8>> = rx_until(&mut rx, &mut bufs, 50, 5)
        .into_iter()
        .filter(ours)
        .collect();
    assert_eq!(got, back);
    drop((rx, tx));
    ns.run(|| drop(port)).unwrap();
}

/// net_memif (through rvpp's dpdk driver) against rvpp's own memif device on one socket:
/// `dpdk_role` is net_memif's role, rvpp's device takes the other.
fn memif_against_rvpp(dpdk_role: &str, tag: &str, in_place: bool) {
    use memif::Role;
    use rvpp_drivers::memif::{MemifConfig, MemifDevice, MemifQueues};
    let eal = eal();
    let sock =
        std::env::temp_dir().join(format!("rvpp-dpdk-memif-{tag}-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    let sock_s = sock.to_str().unwrap().to_string();
    let (pool, mut bufs) = pool();
    let rvpp_role = if dpdk_role == "server" {
        Role::Client
    } else {
        Role::Server
    };
    let start_rvpp = || {
        MemifDevice::start(
            MemifConfig::new(rvpp_role, &sock_s, 0),
            5,
            pool.clone(),
            1,
            Box::new(|_| {}),
        )
        .expect("rvpp memif")
    };
    // The server binds first; the client connects in the background either way.
    let mut rvpp_dev = (rvpp_role == Role::Server).then(start_rvpp);
    let id = eal
        .probe(&format!(
            "net_memif_{tag},role={dpdk_role},socket={sock_s},socket-abstract=no,id=0"
        ))
        .unwrap();
    let cfg = PortConfig {
        rx_in_place: in_place.then(|| pool.clone()),
        ..Default::default()
    };
    let port = Port::open(eal, id, &cfg).unwrap();
    assert_eq!(port.driver, "net_memif");
    if rvpp_dev.is_none() {
        rvpp_dev = Some(start_rvpp());
    }
    let MemifQueues {
        device,
        rx: mut mrx,
        tx: mut mtx,
    } = rvpp_dev.unwrap();
    let mut drx = port.rx_queue(0, 4);
    let mut dtx = port.tx_queue(0, 1);
    let t0 = Instant::now();
    while !(device.is_connected() && port.link().up) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "memif never connected: rvpp {:?}, dpdk link {:?}",
            device.status(),
            port.link()
        );
        // Let both sides notice the link.
        drain(&mut mrx[0], &mut bufs);
        drain(&mut drx, &mut bufs);
        std::thread::sleep(Duration::from_millis(5));
    }

    for (dir, sizes) in [
        ("small", vec![60usize, 64, 128, 1000, 1514]),
        ("jumbo", vec![2048, 4000, 9000]),
    ] {
        let frames: Vec<Vec<u8>> = (0..200u32)
            .map(|i| frame(i, sizes[i as usize % sizes.len()]))
            .collect();
        // DPDK -> rvpp, in bursts the ring holds.
        let mut got = Vec::new();
        for chunk in frames.chunks(50) {
            let t = Instant::now();
            let mut sent = 0;
            let want = got.len() + chunk.len();
            while sent < chunk.len() {
                sent += send(&mut dtx, &mut bufs, &chunk[sent..]);
                got.extend(rx_until(&mut mrx[0], &mut bufs, 1, 0));
                assert!(t.elapsed() < Duration::from_secs(5), "{dir}: dpdk tx stuck");
            }
            got.extend(rx_until(&mut mrx[0], &mut bufs, want - got.len(), 5));
        }
        assert_eq!(got.len(), frames.len(), "{dir}: dpdk -> rvpp lost packets");
        assert!(got == frames, "{dir}: dpdk -> rvpp bytes differ");
        // rvpp -> DPDK.
        let mut got = Vec::new();
        for chunk in frames.chunks(50) {
            let t = Instant::now();
            let mut sent = 0;
            let want = got.len() + chunk.len();
            while sent < chunk.len() {
                sent += send(&mut mtx[0], &mut bufs, &chunk[sent..]);
                // The receiver polls meanwhile: a memif client refills its rx ring as it goes.
                got.extend(rx_until(&mut drx, &mut bufs, 1, 0));
                assert!(
                    t.elapsed() < Duration::from_secs(5),
                    "{dir}: rvpp tx stuck after {sent}: {:?}",
                    device.status()
                );
            }
            got.extend(rx_until(&mut drx, &mut bufs, want - got.len(), 5));
        }
        assert_eq!(got.len(), frames.len(), "{dir}: rvpp -> dpdk lost packets");
        assert!(got == frames, "{dir}: rvpp -> dpdk bytes differ");
    }
    let s = port.stats();
    assert_eq!((s.rx_packets, s.tx_packets), (400, 400), "{s:?}");
    drop((drx, dtx));
    drop(port);
    // Teardown: stop rvpp's side, give its rings' buffers back, check for leaks.
    drop(device);
    for q in &mut mrx {
        drain(q, &mut bufs);
    }
    for q in &mut mtx {
        q.flush(&mut bufs);
    }
    drop((mrx, mtx));
    bufs.flush();
    assert_eq!(pool.double_frees(), 0);
    let _ = std::fs::remove_file(&sock);
}

#[test]
fn net_memif_client_against_rvpp_memif_server() {
    memif_against_rvpp("client", "mc", false);
    memif_against_rvpp("client", "mci", true);
}

#[test]
fn net_memif_server_against_rvpp_memif_client() {
    memif_against_rvpp("server", "ms", false);
    memif_against_rvpp("server", "msi", true);
}

/// In-place rx: net_null receives straight into rvpp buffers; the rx pool's buffers are rvpp's
/// again once the port is gone.
#[test]
fn null_rx_in_place_and_buffers_come_back() {
    let eal = eal();
    let id = eal.probe("net_null_t2,size=100").unwrap();
    let (pool, mut bufs) = pool();
    let cfg = PortConfig {
        rx_desc: 256,
        rx_in_place: Some(pool.clone()),
        ..Default::default()
    };
    let port = Port::open(eal, id, &cfg).unwrap();
    let held = pool.in_use();
    assert!(held >= 512, "the rx pool holds rvpp buffers: {held}");
    let mut rx = port.rx_queue(0, 7);
    rx.set_template(Some(RxTemplate::ip4_udp(port.mac, vec![0xc6130001], 100)));
    let got = rx_until(&mut rx, &mut bufs, 5000, 5);
    assert!(got.len() >= 5000);
    assert!(got
        .iter()
        .all(|p| p.len() == 100 && p[30..34] == [198, 19, 0, 1]));
    // Received buffers are rvpp's own: one came from the rx pool, not a copy.
    let mut out = [0u32; 64];
    let mut nexts = [0u16; 64];
    let t0 = Instant::now();
    let mut n = 0;
    while n == 0 && t0.elapsed() < Duration::from_secs(5) {
        n = rx.rx(&mut bufs, &mut out, &mut nexts);
    }
    assert!(n > 0);
    assert_eq!(bufs.meta(out[0]).current_data, 0);
    assert_eq!(bufs.get(out[0]).data().len(), 100);
    bufs.free(&out[..n]);
    drop(rx);
    drop(port);
    bufs.flush();
    assert_eq!(pool.in_use(), 0, "rx pool buffers not returned");
    assert_eq!(pool.double_frees(), 0);
}

/// In-place rx and tx over a ring pair: tx hands rvpp buffers to mbufs without a copy, the
/// peer (whose mbufs they are not) copies them out; bytes survive and every buffer returns.
#[test]
fn ring_pair_in_place_tx_and_rx() {
    let eal = eal();
    let (a, b) = eal.ring_pair("ring_te", "ring_tf", 1024).unwrap();
    let (pool, mut bufs) = pool();
    let cfg = PortConfig {
        rx_desc: 256,
        tx_desc: 256,
        rx_in_place: Some(pool.clone()),
        ..Default::default()
    };
    let pa = Port::open(eal, a, &cfg).unwrap();
    let pb = Port::open(eal, b, &cfg).unwrap();
    let (mut txa, mut rxb) = (pa.tx_queue(0, 1), pb.rx_queue(0, 2));
    let frames: Vec<Vec<u8>> = (0..300)
        .map(|i| frame(i, 60 + (i as usize * 7 % 1400)))
        .collect();
    for chunk in frames.chunks(100) {
        assert_eq!(send(&mut txa, &mut bufs, chunk), chunk.len());
    }
    assert_eq!(rx_until(&mut rxb, &mut bufs, 300, 5), frames);
    // Chains and headers pushed into the headroom still go (by copy).
    let jumbo: Vec<Vec<u8>> = (0..5).map(|i| frame(1000 + i, 9000)).collect();
    assert_eq!(send(&mut txa, &mut bufs, &jumbo), 5);
    assert_eq!(rx_until(&mut rxb, &mut bufs, 5, 5), jumbo);
    drop((txa, rxb));
    drop((pa, pb));
    bufs.flush();
    assert_eq!(pool.in_use(), 0, "in-place pools leaked rvpp buffers");
    assert_eq!(pool.double_frees(), 0);
}
