//! AF_PACKET driver on a veth pair across two throw-away namespaces (needs root).

#[path = "../../test-support/skip.rs"]
mod skip;

use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
use rvpp_dataplane::buffer::{flags, BufferPool, Buffers};
use rvpp_dataplane::device::RxQueue;
use rvpp_dataplane::graph::rx_next;
use rvpp_drivers::af_packet::{AfPacket, AfPacketConfig, AfPacketInfo};
use rvpp_drivers::netns::{veth_pair, TestNetns};
use rvpp_drivers::tap::{QueueStats, Queues};
use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn root_or_skip() -> bool {
    skip::need_root("to create network namespaces and veths")
}

/// Two namespaces joined by a veth: `rvppva` in `drv` (the driver's side), `rvppvb` with
/// 198.18.2.2/24 in `peer`.
struct Setup {
    drv: TestNetns,
    peer: TestNetns,
    peer_mac: [u8; 6],
}

fn setup() -> Setup {
    let drv = TestNetns::new().unwrap();
    let peer = TestNetns::new().unwrap();
    veth_pair("rvppva", &drv, "rvppvb", &peer).unwrap();
    peer.ip(&["addr", "add", "198.18.2.2/24", "dev", "rvppvb"])
        .unwrap();
    let out = peer
        .exec(&["cat", "/sys/class/net/rvppvb/address"])
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    let mut peer_mac = [0u8; 6];
    for (i, p) in s.trim().split(':').enumerate() {
        peer_mac[i] = u8::from_str_radix(p, 16).unwrap();
    }
    Setup {
        drv,
        peer,
        peer_mac,
    }
}

fn open(s: &Setup, f: impl FnOnce(&mut AfPacketConfig)) -> Queues<AfPacketInfo> {
    let mut cfg = AfPacketConfig {
        host_if_name: "rvppva".into(),
        netns: Some(s.drv.path()),
        ..Default::default()
    };
    f(&mut cfg);
    let r = AfPacket::create(&cfg, 7).unwrap();
    // The peer knows our MAC statically: no ARP to answer.
    let mac = r.2.mac.map(|b| format!("{b:02x}")).join(":");
    s.peer
        .ip(&[
            "neigh",
            "replace",
            "198.18.2.1",
            "lladdr",
            &mac,
            "dev",
            "rvppvb",
        ])
        .unwrap();
    r
}

fn pool() -> (Arc<BufferPool>, Buffers) {
    let p = BufferPool::with_backing(4096, 2048, false).unwrap();
    let b = p.local();
    (p, b)
}

fn udp_to(p: &[u8], port: u16) -> Option<Vec<u8>> {
    match SlicedPacket::from_ethernet(p).ok()?.transport? {
        TransportSlice::Udp(u) if u.destination_port() == port => Some(u.payload().to_vec()),
        _ => None,
    }
}

/// How long to wait for frames that should arrive: 5 s, or 30 s under memcheck
/// (scripts/memcheck.sh sets RVPP_UNDER_VALGRIND), where this process runs ~30x slower and
/// shares valgrind's one running thread with the other test thread.
fn arrival_wait() -> Duration {
    if std::env::var_os("RVPP_UNDER_VALGRIND").is_some() {
        Duration::from_secs(30)
    } else {
        Duration::from_secs(5)
    }
}

/// Poll every queue until `count` UDP datagrams to port 9999 arrived (or [`arrival_wait`]
/// passed). Returns (queue, frame, buffer flags) for each.
fn rx_udp(
    qs: &mut [Box<dyn RxQueue>],
    bufs: &mut Buffers,
    count: usize,
) -> Vec<(usize, Vec<u8>, u32)> {
    rx_udp_for(qs, bufs, count, arrival_wait())
}

/// Each queue's counters and the peer's tx count, for a failure message that says where
/// missing frames went.
fn where_frames_went(s: &Setup, info: &AfPacketInfo) -> String {
    let mut v: Vec<String> = info
        .stats
        .iter()
        .enumerate()
        .map(|(q, st)| {
            format!(
                "q{q}: rx {} kernel_drops {} no_buffers {} truncated {} errors {}",
                QueueStats::get(&st.rx_packets),
                QueueStats::get(&st.rx_kernel_drops),
                QueueStats::get(&st.rx_no_buffers),
                QueueStats::get(&st.rx_truncated),
                QueueStats::get(&st.rx_errors)
            )
        })
        .collect();
    if let Ok(o) = s.peer.exec(&["ip", "-s", "link", "show", "rvppvb"]) {
        v.push(String::from_utf8_lossy(&o.stdout).into_owned());
    }
    v.join("; ")
}

fn rx_udp_for(
    qs: &mut [Box<dyn RxQueue>],
    bufs: &mut Buffers,
    count: usize,
    wait: Duration,
) -> Vec<(usize, Vec<u8>, u32)> {
    let mut got = Vec::new();
    let deadline = Instant::now() + wait;
    let mut out = [0u32; 64];
    let mut nexts = [0u16; 64];
    while got.len() < count && Instant::now() < deadline {
        let mut any = false;
        for (qi, q) in qs.iter_mut().enumerate() {
            let n = q.rx(bufs, &mut out, &mut nexts);
            any |= n > 0;
            for i in 0..n {
                assert_eq!(nexts[i], rx_next::ETHERNET);
                let len = bufs.get(out[i]).total_len();
                let mut v = vec![0u8; len];
                bufs.copy_chain(out[i], &mut v);
                let m = *bufs.meta(out[i]);
                assert_eq!(m.rx_sw_if_index, 7);
                if udp_to(&v, 9999).is_some() {
                    got.push((qi, v, m.flags));
                }
            }
            bufs.free(&out[..n]);
        }
        if !any {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    got
}

fn frame(src: [u8; 6], dst: [u8; 6], dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(src, dst)
        .ipv4([198, 18, 2, 1], [198, 18, 2, 2], 64)
        .udp(5555, dport)
        .write(&mut v, payload)
        .unwrap();
    v
}

fn peer_socket(s: &Setup) -> UdpSocket {
    let u = s
        .peer
        .run(|| UdpSocket::bind("198.18.2.2:0"))
        .unwrap()
        .unwrap();
    u.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    u
}

#[test]
fn veth_traffic_both_ways() {
    if !root_or_skip() {
        return;
    }
    let s = setup();
    let (_p, mut bufs) = pool();
    let (mut rx, mut tx, info) = open(&s, |c| c.qdisc_bypass = true);
    assert_eq!(rx[0].input_node(), "af-packet-input");
    assert_eq!(tx[0].tx_node(), "af-packet-tx");
    assert!(rx[0].rx_fd().is_some());

    let u = peer_socket(&s);
    u.send_to(b"hello-afp", "198.18.2.1:9999").unwrap();
    let got = rx_udp(&mut rx, &mut bufs, 1);
    assert_eq!(got.len(), 1, "no datagram on rx");
    let f = &got[0].1;
    assert_eq!(&f[0..6], &info.mac);
    assert_eq!(&f[6..12], &s.peer_mac);
    assert_eq!(udp_to(f, 9999).unwrap(), b"hello-afp");

    // 100 frames in one burst, one kick.
    let port = u.local_addr().unwrap().port();
    let mut v = Vec::new();
    for i in 0..100u32 {
        v.push(
            bufs.alloc_from_bytes(&frame(info.mac, s.peer_mac, port, &i.to_be_bytes()))
                .unwrap(),
        );
    }
    assert_eq!(tx[0].tx(&mut bufs, &v), 100);
    tx[0].flush(&mut bufs);
    let mut seen = Vec::new();
    let mut b = [0u8; 64];
    while seen.len() < 100 {
        let (n, _) = u.recv_from(&mut b).expect("datagram from the driver");
        assert_eq!(n, 4);
        seen.push(u32::from_be_bytes(b[..4].try_into().unwrap()));
    }
    seen.sort();
    assert_eq!(seen, (0..100).collect::<Vec<_>>());
    let st = &info.stats[0];
    assert_eq!(QueueStats::get(&st.tx_packets), 100);
    assert_eq!(QueueStats::get(&st.tx_errors), 0);
    assert!(QueueStats::get(&st.rx_packets) >= 1);
    drop((rx, tx));
    bufs.flush();
    assert_eq!(_p.in_use(), 0, "buffers leaked");
}

#[test]
fn vnet_header_offloads() {
    if !root_or_skip() {
        return;
    }
    let s = setup();
    let (_p, mut bufs) = pool();
    let (mut rx, mut tx, info) = open(&s, |c| c.vnet_hdr = true);
    assert!(info.vnet_hdr);
    let u = peer_socket(&s);
    u.send_to(b"partial", "198.18.2.1:9999").unwrap();
    let got = rx_udp(&mut rx, &mut bufs, 1);
    assert_eq!(got.len(), 1);
    assert_eq!(udp_to(&got[0].1, 9999).unwrap(), b"partial");
    // The veth passes the peer's unfinished checksum along; the vnet header says so.
    assert_ne!(got[0].2 & flags::OFFLOAD_L4_CKSUM, 0);

    // A wrong checksum is accepted by the peer only because we ask for the offload.
    let port = u.local_addr().unwrap().port();
    let mut f = frame(info.mac, s.peer_mac, port, b"offloaded");
    f[40] = 0x12;
    f[41] = 0x34;
    let bi = bufs.alloc_from_bytes(&f).unwrap();
    bufs.meta(bi).flags |= flags::OFFLOAD_L4_CKSUM;
    assert_eq!(tx[0].tx(&mut bufs, &[bi]), 1);
    tx[0].flush(&mut bufs);
    let mut b = [0u8; 64];
    let (n, _) = u.recv_from(&mut b).expect("offloaded datagram");
    assert_eq!(&b[..n], b"offloaded");
}

#[test]
fn fanout_two_queues_exactly_once() {
    if !root_or_skip() {
        return;
    }
    let s = setup();
    let (_p, mut bufs) = pool();
    let (mut rx, tx, info) = open(&s, |c| c.queues = 2);
    assert_eq!((rx.len(), tx.len()), (2, 2));
    eprintln!("fanout group {}", info.fanout_id);
    assert_eq!(rx[1].queue_id(), 1);
    // Distinct source ports make distinct flows for the hash.
    let socks: Vec<UdpSocket> = (0..200).map(|_| peer_socket(&s)).collect();
    // Read between groups of sends: the kernel hands a V3 block over after the block timeout
    // (1 ms) with however few frames it holds, so a trickle of sends (as slow as valgrind
    // makes them) into rings nobody reads can fill all their blocks, and the kernel
    // drops the rest (counted as rx_kernel_drops).
    let mut got = Vec::new();
    for (c, group) in socks.chunks(8).enumerate() {
        for (j, u) in group.iter().enumerate() {
            let id = (c * 8 + j) as u32;
            u.send_to(&id.to_be_bytes(), "198.18.2.1:9999").unwrap();
        }
        got.extend(rx_udp(&mut rx, &mut bufs, group.len()));
    }
    if got.len() < 200 {
        got.extend(rx_udp(&mut rx, &mut bufs, 200 - got.len()));
    }
    let mut ids: Vec<u32> = got
        .iter()
        .map(|g| u32::from_be_bytes(udp_to(&g.1, 9999).unwrap()[..4].try_into().unwrap()))
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        (0..200).collect::<Vec<_>>(),
        "each datagram exactly once ({})",
        where_frames_went(&s, &info)
    );
    let on0 = got.iter().filter(|g| g.0 == 0).count();
    eprintln!("fanout: {on0} on queue 0, {} on queue 1", 200 - on0);
    assert!(on0 > 0 && on0 < 200, "hash fanout used one queue only");
    // Nothing more turns up later.
    assert!(rx_udp_for(&mut rx, &mut bufs, 1, Duration::from_millis(300)).is_empty());
}

/// At a trickle each rx block carries one frame (the kernel closes it after the 1 ms timeout),
/// so the default ring's block count is how long a reader may stall: 48 frames 1.5 ms apart
/// into a ring nobody reads all arrive. With 16 blocks (the default before) the kernel
/// dropped all but 16.
#[test]
fn a_reader_stalled_at_a_trickle_loses_nothing() {
    if !root_or_skip() {
        return;
    }
    let s = setup();
    let (_p, mut bufs) = pool();
    let (mut rx, _tx, info) = open(&s, |_| {});
    let u = peer_socket(&s);
    for i in 0..48u32 {
        u.send_to(&i.to_be_bytes(), "198.18.2.1:9999").unwrap();
        std::thread::sleep(Duration::from_micros(1500));
    }
    let got = rx_udp(&mut rx, &mut bufs, 48);
    assert_eq!(
        got.len(),
        48,
        "a 72 ms stall at a trickle lost frames ({})",
        where_frames_went(&s, &info)
    );
}

#[test]
fn interface_deleted_underneath() {
    if !root_or_skip() {
        return;
    }
    let s = setup();
    let (p, mut bufs) = pool();
    let (mut rx, mut tx, info) = open(&s, |c| c.qdisc_bypass = true);
    s.drv.ip(&["link", "del", "rvppva"]).unwrap();
    let mut out = [0u32; 8];
    let mut nexts = [0u16; 8];
    // Frames that arrived before the delete (IPv6 ND from the peer) may still be in the ring.
    for _ in 0..2048 {
        let n = rx[0].rx(&mut bufs, &mut out, &mut nexts);
        bufs.free(&out[..n]);
    }
    rx[0].ack_interrupt();
    let f = frame(info.mac, s.peer_mac, 1, b"x");
    for _ in 0..3 {
        let bi = bufs.alloc_from_bytes(&f).unwrap();
        assert_eq!(tx[0].tx(&mut bufs, &[bi]), 1);
        tx[0].flush(&mut bufs);
    }
    let st = &info.stats[0];
    assert!(QueueStats::get(&st.rx_errors) >= 1, "rx error not counted");
    assert_eq!(QueueStats::get(&st.tx_errors), 3, "tx errors not counted");
    assert_eq!(QueueStats::get(&st.tx_packets), 0);
    drop((rx, tx));
    bufs.flush();
    assert_eq!(p.in_use(), 0, "buffers leaked");
    // Opening a missing interface is an error, not a panic.
    let cfg = AfPacketConfig {
        host_if_name: "rvppva".into(),
        netns: Some(s.drv.path()),
        ..Default::default()
    };
    assert!(AfPacket::create(&cfg, 7).is_err());
}

/// A live restart's hand-over of the rx rings: a second owner of the sockets (fds duplicated,
/// as SCM_RIGHTS gives them) maps the same rings and reads on exactly where the first one
/// stopped in the middle of a block, on both queues of a fanout group: every datagram once.
#[test]
fn adopted_rx_rings_read_on_where_the_old_owner_stopped() {
    if !root_or_skip() {
        return;
    }
    let s = setup();
    let (_p, mut bufs) = pool();
    // Blocks retired after 100 ms, not 1: the rings must hold every datagram sent while nobody
    // reads (1000 in all), and under valgrind sending takes long enough that a 1 ms timeout
    // retires a near-empty block per millisecond and fills the ring's blocks (kernel drops).
    let (mut rx, _tx, info) = open(&s, |c| {
        c.queues = 2;
        c.rx_block_timeout_ms = 100;
    });
    let u = peer_socket(&s);
    let seqs = |got: &[(usize, Vec<u8>, u32)]| -> Vec<u32> {
        got.iter()
            .map(|(_, f, _)| u32::from_be_bytes(udp_to(f, 9999).unwrap()[..4].try_into().unwrap()))
            .collect()
    };
    // Many flows (source ports), so both queues get some.
    let socks: Vec<UdpSocket> = (0..8).map(|_| peer_socket(&s)).collect();
    let send = |from: u32, to: u32| {
        for i in from..to {
            socks[i as usize % socks.len()]
                .send_to(&i.to_be_bytes(), "198.18.2.1:9999")
                .unwrap();
        }
    };
    drop(u);
    send(0, 600);
    std::thread::sleep(Duration::from_millis(100));
    // The old owner reads a few at a time and stops part-way, blocks left partly read.
    let mut old = Vec::new();
    let mut out = [0u32; 5];
    let mut nexts = [0u16; 5];
    let deadline = Instant::now() + Duration::from_secs(5);
    while old.len() < 200 && Instant::now() < deadline {
        for q in rx.iter_mut() {
            let n = q.rx(&mut bufs, &mut out, &mut nexts);
            for &bi in &out[..n] {
                let mut v = vec![0u8; bufs.get(bi).total_len()];
                bufs.copy_chain(bi, &mut v);
                if let Some(p) = udp_to(&v, 9999) {
                    old.push(u32::from_be_bytes(p[..4].try_into().unwrap()));
                }
            }
            bufs.free(&out[..n]);
        }
    }
    assert!(old.len() >= 200, "the old owner read {}", old.len());
    let fds: Vec<_> = info
        .rx_queue_fds()
        .unwrap()
        .iter()
        .map(|f| f.try_clone().unwrap())
        .collect();
    let cfg = info.cfg.clone();
    let (new_rx, _new_tx, new_info) = AfPacket::adopt(&cfg, fds, info.fanout_id, 7).unwrap();
    assert_eq!((new_info.ifindex, new_info.mac), (info.ifindex, info.mac));
    let mut new_rx: Vec<Box<dyn RxQueue>> = new_rx
        .into_iter()
        .map(|q| Box::new(q) as Box<dyn RxQueue>)
        .collect();
    send(600, 1000);
    // Closed until the old owner has stopped.
    assert!(rx_udp_for(&mut new_rx, &mut bufs, 1, Duration::from_millis(100)).is_empty());
    new_info.rx_gate.open();
    let got = rx_udp(&mut new_rx, &mut bufs, 1000 - old.len());
    let mut all = old.clone();
    all.extend(seqs(&got));
    all.sort();
    assert_eq!(all.len(), 1000, "{} read after the hand-over", got.len());
    assert_eq!(all, (0..1000).collect::<Vec<_>>(), "lost or duplicated");
    // Nothing more arrives twice.
    assert!(rx_udp_for(&mut new_rx, &mut bufs, 1, Duration::from_millis(200)).is_empty());
    drop(rx);
}
