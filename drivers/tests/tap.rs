//! tun/tap driver against real devices in throw-away network namespaces (needs root).

#[path = "../../test-support/skip.rs"]
mod skip;

use etherparse::{PacketBuilder, SlicedPacket, TcpOptionElement, TransportSlice};
use rvpp_dataplane::buffer::{flags, BufferPool, Buffers};
use rvpp_dataplane::device::{RxQueue, TxQueue};
use rvpp_dataplane::graph::rx_next;
use rvpp_drivers::netns::{self, TestNetns};
use rvpp_drivers::tap::{self, QueueStats, Tap, TapConfig, TapMode};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn root_or_skip() -> bool {
    skip::need_root("to create network namespaces and tun devices")
}

fn pool() -> (Arc<BufferPool>, Buffers) {
    let p = BufferPool::with_backing(4096, 2048, false).unwrap();
    let b = p.local();
    (p, b)
}

/// Poll the queues until `want` returns true for a packet (its bytes, next edge), or time out.
/// Every packet received is freed. Returns the matching packets' bytes and buffer flags.
fn rx_until(
    qs: &mut [Box<dyn RxQueue>],
    bufs: &mut Buffers,
    want: &mut dyn FnMut(&[u8], u16) -> bool,
    count: usize,
) -> Vec<(Vec<u8>, u16, u32, u16)> {
    let got = rx_until_on_queues(qs, bufs, want, count);
    got.into_iter().map(|(_, g)| g).collect()
}

/// As [`rx_until`], each packet with the index of the queue it came from.
type Got = (usize, (Vec<u8>, u16, u32, u16));
fn rx_until_on_queues(
    qs: &mut [Box<dyn RxQueue>],
    bufs: &mut Buffers,
    want: &mut dyn FnMut(&[u8], u16) -> bool,
    count: usize,
) -> Vec<Got> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut out = [0u32; 64];
    let mut nexts = [0u16; 64];
    while got.len() < count && Instant::now() < deadline {
        let mut any = false;
        for (qi, q) in qs.iter_mut().enumerate() {
            let n = q.rx(bufs, &mut out, &mut nexts);
            any |= n > 0;
            for i in 0..n {
                let len = bufs.get(out[i]).total_len();
                let mut v = vec![0u8; len];
                bufs.copy_chain(out[i], &mut v);
                let m = *bufs.meta(out[i]);
                assert_eq!(m.rx_sw_if_index, 7);
                if want(&v, nexts[i]) {
                    got.push((qi, (v, nexts[i], m.flags, m.gso_size)));
                }
            }
            bufs.free(&out[..n]);
        }
        if !any {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    got
}

fn udp_payload(p: &[u8], l2: bool) -> Option<(u16, Vec<u8>)> {
    let s = if l2 {
        SlicedPacket::from_ethernet(p).ok()?
    } else {
        SlicedPacket::from_ip(p).ok()?
    };
    match s.transport? {
        TransportSlice::Udp(u) => Some((u.destination_port(), u.payload().to_vec())),
        _ => None,
    }
}

fn send_one(q: &mut Box<dyn TxQueue>, bufs: &mut Buffers, bytes: &[u8], fl: u32) -> usize {
    let bi = bufs.alloc_from_bytes(bytes).unwrap();
    bufs.meta(bi).flags |= fl;
    let n = q.tx(bufs, &[bi]);
    if n == 0 {
        bufs.free(&[bi]);
    }
    q.flush(bufs);
    n
}

fn udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ipv4(src, dst, 64).udp(sport, dport);
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

/// Wait up to 2 s for a device to disappear.
fn gone(ns: &TestNetns, dev: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if ns.ip(&["link", "show", dev]).is_err() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn bind_in(ns: &TestNetns, addr: &str) -> UdpSocket {
    let s = ns.run(|| UdpSocket::bind(addr)).unwrap().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s
}

fn recv_payload(s: &UdpSocket) -> Vec<u8> {
    let mut b = [0u8; 2048];
    let (n, _) = s.recv_from(&mut b).expect("datagram from the driver");
    b[..n].to_vec()
}

#[test]
fn tun_ip4_ip6_both_ways() {
    if !root_or_skip() {
        return;
    }
    let ns = TestNetns::new().unwrap();
    let (_p, mut bufs) = pool();
    let cfg = TapConfig {
        name: "rvpptun0".into(),
        netns: Some(ns.path()),
        mode: TapMode::Tun,
        mtu: Some(1400),
        ..Default::default()
    };
    let (mut rx, mut tx, info) = Tap::create(&cfg, 7).unwrap();
    assert_eq!((rx.len(), tx.len(), info.mtu), (1, 1, 1400));
    assert_eq!(rx[0].input_node(), "tun-input");
    assert!(rx[0].rx_fd().is_some());
    assert!(info.created && info.ifindex > 0);
    ns.ip(&["addr", "add", "198.18.0.1/30", "dev", "rvpptun0"])
        .unwrap();
    ns.ip(&[
        "-6",
        "addr",
        "add",
        "fd00:18::1/64",
        "dev",
        "rvpptun0",
        "nodad",
    ])
    .unwrap();
    let link = ns.ip(&["link", "show", "rvpptun0"]).unwrap();
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(link.contains("mtu 1400") && link.contains(",UP"), "{link}");

    // Pod -> us, IPv4 then IPv6.
    let s4 = bind_in(&ns, "198.18.0.1:0");
    s4.send_to(b"hello-rvpp-4", "198.18.0.2:9999").unwrap();
    let got = rx_until(
        &mut rx,
        &mut bufs,
        &mut |p, _| udp_payload(p, false) == Some((9999, b"hello-rvpp-4".to_vec())),
        1,
    );
    assert_eq!(got.len(), 1, "no IPv4 datagram on rx");
    assert_eq!(got[0].1, rx_next::IP4);
    assert_eq!(&got[0].0[12..20], &[198, 18, 0, 1, 198, 18, 0, 2]);

    let s6 = bind_in(&ns, "[fd00:18::1]:0");
    s6.send_to(b"hello-rvpp-6", "[fd00:18::2]:9999").unwrap();
    let got = rx_until(
        &mut rx,
        &mut bufs,
        &mut |p, _| udp_payload(p, false) == Some((9999, b"hello-rvpp-6".to_vec())),
        1,
    );
    assert_eq!(got.len(), 1, "no IPv6 datagram on rx");
    assert_eq!(got[0].1, rx_next::IP6);

    // Us -> pod.
    let port = s4.local_addr().unwrap().port();
    let pkt = udp4([198, 18, 0, 2], [198, 18, 0, 1], 5555, port, b"from-rvpp-4");
    assert_eq!(send_one(&mut tx[0], &mut bufs, &pkt, 0), 1);
    assert_eq!(recv_payload(&s4), b"from-rvpp-4");

    let port6 = s6.local_addr().unwrap().port();
    let mut pkt = Vec::new();
    let a: [u8; 16] = "fd00:18::2".parse::<std::net::Ipv6Addr>().unwrap().octets();
    let b: [u8; 16] = "fd00:18::1".parse::<std::net::Ipv6Addr>().unwrap().octets();
    PacketBuilder::ipv6(a, b, 64)
        .udp(5555, port6)
        .write(&mut pkt, b"from-rvpp-6")
        .unwrap();
    assert_eq!(send_one(&mut tx[0], &mut bufs, &pkt, 0), 1);
    // The kernel installs the local route of a new IPv6 address from a work queue, so the
    // first datagram can race it: resend until one arrives.
    let mut b6 = [0u8; 64];
    s6.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut ok = false;
    for _ in 0..20 {
        if let Ok((n, _)) = s6.recv_from(&mut b6) {
            ok = &b6[..n] == b"from-rvpp-6";
            break;
        }
        assert_eq!(send_one(&mut tx[0], &mut bufs, &pkt, 0), 1);
    }
    assert!(ok, "IPv6 datagram from the driver not received");

    let st = &info.stats[0];
    assert!(QueueStats::get(&st.rx_packets) >= 2);
    assert!(QueueStats::get(&st.tx_packets) >= 2);
    assert_eq!(QueueStats::get(&st.tx_errors), 0);
    drop((rx, tx));
    // Not persistent: closing the fds removes it (a fork in a parallel test may hold a copy
    // of the fd for a moment).
    assert!(gone(&ns, "rvpptun0"), "device left behind");
}

#[test]
fn tap_l2_with_mac_and_vnet_header() {
    if !root_or_skip() {
        return;
    }
    let ns = TestNetns::new().unwrap();
    let (_p, mut bufs) = pool();
    let mac = [0x02, 0xca, 0x11, 0xc0, 0xfd, 0x01];
    let peer = [0x02, 0xfe, 0, 0, 0, 2];
    let cfg = TapConfig {
        name: "rvpptap0".into(),
        netns: Some(ns.path()),
        mode: TapMode::Tap,
        mac: Some(mac),
        vnet_hdr: true,
        ..Default::default()
    };
    let (mut rx, mut tx, info) = Tap::create(&cfg, 7).unwrap();
    assert_eq!(info.mac, Some(mac));
    assert!(info.vnet_hdr);
    assert_eq!(rx[0].input_node(), "tap-input");
    ns.ip(&["addr", "add", "198.18.1.1/24", "dev", "rvpptap0"])
        .unwrap();
    ns.ip(&[
        "neigh",
        "add",
        "198.18.1.2",
        "lladdr",
        "02:fe:00:00:00:02",
        "dev",
        "rvpptap0",
    ])
    .unwrap();
    let s = bind_in(&ns, "198.18.1.1:0");
    s.send_to(b"hello-tap", "198.18.1.2:9999").unwrap();
    let got = rx_until(
        &mut rx,
        &mut bufs,
        &mut |p, _| udp_payload(p, true) == Some((9999, b"hello-tap".to_vec())),
        1,
    );
    assert_eq!(got.len(), 1, "no frame on rx");
    let (f, next, _, _) = &got[0];
    assert_eq!(*next, rx_next::ETHERNET);
    assert_eq!(&f[0..6], &peer);
    assert_eq!(&f[6..12], &mac);

    let port = s.local_addr().unwrap().port();
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(peer, mac)
        .ipv4([198, 18, 1, 2], [198, 18, 1, 1], 64)
        .udp(5555, port)
        .write(&mut frame, b"from-rvpp-tap")
        .unwrap();
    assert_eq!(send_one(&mut tx[0], &mut bufs, &frame, 0), 1);
    assert_eq!(recv_payload(&s), b"from-rvpp-tap");
}

#[test]
fn multi_queue_spreads_and_delivers_once() {
    if !root_or_skip() {
        return;
    }
    let ns = TestNetns::new().unwrap();
    let (_p, mut bufs) = pool();
    let cfg = TapConfig {
        name: "rvpptunmq".into(),
        netns: Some(ns.path()),
        queues: 4,
        ..Default::default()
    };
    let (mut rx, mut tx, info) = Tap::create(&cfg, 7).unwrap();
    assert!(info.multi_queue);
    assert_eq!((rx.len(), tx.len()), (4, 4));
    let qs = ns.exec(&["ls", "/sys/class/net/rvpptunmq/queues"]).unwrap();
    let qs = String::from_utf8_lossy(&qs.stdout);
    for q in ["rx-0", "rx-1", "rx-2", "rx-3", "tx-3"] {
        assert!(qs.contains(q), "{qs}");
    }
    ns.ip(&["addr", "add", "198.18.0.5/30", "dev", "rvpptunmq"])
        .unwrap();
    let mut socks = Vec::new();
    for i in 0..64u32 {
        let s = bind_in(&ns, "198.18.0.5:0");
        s.send_to(&i.to_be_bytes(), "198.18.0.6:9999").unwrap();
        socks.push(s);
    }
    let got = rx_until_on_queues(
        &mut rx,
        &mut bufs,
        &mut |p, _| matches!(udp_payload(p, false), Some((9999, _))),
        64,
    );
    let mut seen: Vec<u32> = got
        .iter()
        .map(|(_, g)| {
            let (_, pl) = udp_payload(&g.0, false).unwrap();
            u32::from_be_bytes(pl[..4].try_into().unwrap())
        })
        .collect();
    seen.sort();
    assert_eq!(seen, (0..64).collect::<Vec<_>>());
    // Which queues the 64 flows came in on (the queues' rx counters also count the device's
    // own IPv6 chatter, so they spread even for a single flow).
    let used = queues_used(got.iter().map(|g| g.0));
    eprintln!("64 flows landed on queues {used:?} of 4");
    assert!(used.len() >= 2, "64 flows all landed on queue {used:?}");
    // Every tx queue writes into the same device.
    let port = socks[0].local_addr().unwrap().port();
    for (i, q) in tx.iter_mut().enumerate() {
        let pkt = udp4([198, 18, 0, 6], [198, 18, 0, 5], 5555, port, &[i as u8; 4]);
        assert_eq!(send_one(q, &mut bufs, &pkt, 0), 1);
        assert_eq!(recv_payload(&socks[0]), [i as u8; 4]);
    }
}

#[test]
fn persist_attach_delete() {
    if !root_or_skip() {
        return;
    }
    let ns = TestNetns::new().unwrap();
    let cfg = TapConfig {
        name: "rvpppers0".into(),
        netns: Some(ns.path()),
        persist: true,
        attach: true,
        mtu: Some(1280),
        ..Default::default()
    };
    let (rx, tx, info) = Tap::create(&cfg, 7).unwrap();
    assert!(info.created && info.persist);
    drop((rx, tx));
    assert!(
        ns.ip(&["link", "show", "rvpppers0"]).is_ok(),
        "persistent device went away"
    );
    // Without attach, an existing device is an error.
    let e = Tap::create(
        &TapConfig {
            attach: false,
            ..cfg.clone()
        },
        7,
    )
    .err()
    .expect("create over an existing device must fail without attach");
    assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
    // With attach we reuse it.
    let (rx, tx, info2) = Tap::create(&cfg, 7).unwrap();
    assert!(!info2.created);
    assert_eq!(info2.ifindex, info.ifindex);
    tap::delete(&info2).unwrap();
    drop((rx, tx));
    assert!(gone(&ns, "rvpppers0"), "device left behind");
    // Deleting again (device gone) is fine; so is deleting after the queues are gone.
    tap::delete(&info2).unwrap();
    let (rx, tx, info3) = Tap::create(&cfg, 7).unwrap();
    drop((rx, tx));
    assert!(ns.ip(&["link", "show", "rvpppers0"]).is_ok());
    tap::delete(&info3).unwrap();
    assert!(gone(&ns, "rvpppers0"), "device left behind");
    // A missing namespace is an error.
    let bad = TapConfig {
        netns: Some("/var/run/netns/rvpp-no-such-ns".into()),
        ..Default::default()
    };
    assert!(Tap::create(&bad, 7).is_err());
}

#[test]
fn tun_offloads_checksum_and_gso() {
    if !root_or_skip() {
        return;
    }
    let ns = TestNetns::new().unwrap();
    let (_p, mut bufs) = pool();
    let cfg = TapConfig {
        name: "rvpptungso".into(),
        netns: Some(ns.path()),
        gso: true,
        ..Default::default()
    };
    let (mut rx, mut tx, info) = Tap::create(&cfg, 7).unwrap();
    assert!(info.vnet_hdr);
    assert_eq!(
        info.offloads,
        libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6
    );
    ns.ip(&["addr", "add", "198.18.0.9/30", "dev", "rvpptungso"])
        .unwrap();

    // Local UDP leaves with its checksum to be done: the vnet header says so.
    let s = bind_in(&ns, "198.18.0.9:0");
    s.send_to(b"csum-please", "198.18.0.10:9999").unwrap();
    let got = rx_until(
        &mut rx,
        &mut bufs,
        &mut |p, _| udp_payload(p, false) == Some((9999, b"csum-please".to_vec())),
        1,
    );
    assert_eq!(got.len(), 1);
    assert_ne!(
        got[0].2 & flags::OFFLOAD_L4_CKSUM,
        0,
        "no checksum offload flag"
    );

    // A datagram with a wrong checksum is accepted only because we ask for the offload.
    let port = s.local_addr().unwrap().port();
    let mut pkt = udp4([198, 18, 0, 10], [198, 18, 0, 9], 5555, port, b"offloaded");
    pkt[26] = 0x12;
    pkt[27] = 0x34;
    assert_eq!(
        send_one(&mut tx[0], &mut bufs, &pkt, flags::OFFLOAD_L4_CKSUM),
        1
    );
    assert_eq!(recv_payload(&s), b"offloaded");

    // TCP: play the server by hand; the client's first flight comes as a TSO super-frame.
    let client = std::thread::spawn({
        let path = ns.path();
        move || {
            netns::run(Some(&path), || {
                use std::io::Write;
                let peer: SocketAddr = "198.18.0.10:8080".parse().unwrap();
                let mut c = std::net::TcpStream::connect_timeout(&peer, Duration::from_secs(4))?;
                c.write_all(&[0x5a; 20000])?;
                std::thread::sleep(Duration::from_millis(500));
                Ok::<_, std::io::Error>(())
            })
        }
    });
    let syn = rx_until(
        &mut rx,
        &mut bufs,
        &mut |p, _| {
            matches!(SlicedPacket::from_ip(p).map(|s| s.transport),
                Ok(Some(TransportSlice::Tcp(t))) if t.syn() && t.destination_port() == 8080)
        },
        1,
    );
    assert_eq!(syn.len(), 1, "no SYN");
    let (sport, seq) = match SlicedPacket::from_ip(&syn[0].0).unwrap().transport {
        Some(TransportSlice::Tcp(t)) => (t.source_port(), t.sequence_number()),
        _ => unreachable!(),
    };
    let mut synack = Vec::new();
    PacketBuilder::ipv4([198, 18, 0, 10], [198, 18, 0, 9], 64)
        .tcp(8080, sport, 1000, 65535)
        .syn()
        .ack(seq.wrapping_add(1))
        .options(&[TcpOptionElement::MaximumSegmentSize(1400)])
        .unwrap()
        .write(&mut synack, &[])
        .unwrap();
    assert_eq!(send_one(&mut tx[0], &mut bufs, &synack, 0), 1);
    let data = rx_until(
        &mut rx,
        &mut bufs,
        &mut |p, _| {
            matches!(SlicedPacket::from_ip(p).map(|s| s.transport),
                Ok(Some(TransportSlice::Tcp(t))) if t.destination_port() == 8080
                    && !t.payload().is_empty())
        },
        1,
    );
    client.join().unwrap().unwrap().unwrap();
    assert!(!data.is_empty(), "no TCP data");
    let (bytes, _, fl, gso_size) = &data[0];
    eprintln!(
        "first TCP data frame: {} bytes, flags {fl:#x}, gso_size {gso_size}",
        bytes.len()
    );
    assert_ne!(fl & flags::OFFLOAD_L4_CKSUM, 0);
    // A real TSO super-frame: more than the device MTU (an ordinary segment is at most
    // 1400 + 40 bytes here), marked GSO, to be cut at the MSS the SYN-ACK announced.
    let mtu = ns.exec(&["cat", "/sys/class/net/rvpptungso/mtu"]).unwrap();
    let mtu: usize = String::from_utf8_lossy(&mtu.stdout).trim().parse().unwrap();
    assert!(
        is_tso_superframe(bytes.len(), *fl, *gso_size, mtu, 1400),
        "first TCP data frame is {} bytes, flags {fl:#x}, gso_size {gso_size}: not a GSO \
         super-frame larger than the {mtu} byte MTU",
        bytes.len()
    );
}

/// The distinct queues packets arrived on, in order.
fn queues_used(queues: impl Iterator<Item = usize>) -> Vec<usize> {
    let mut used: Vec<usize> = queues.collect();
    used.sort();
    used.dedup();
    used
}

/// A frame of `len` bytes is a TSO super-frame cut at `mss`: longer than the device's MTU,
/// marked GSO, with that segment size.
fn is_tso_superframe(len: usize, fl: u32, gso_size: u16, mtu: usize, mss: u16) -> bool {
    len > mtu && fl & flags::GSO != 0 && gso_size == mss
}

#[test]
fn the_gso_and_spreading_checks_reject_what_the_old_ones_let_through() {
    // An ordinary full-size segment with only checksum offload: the old check
    // (len + VNET_HDR_LEN > 1400) took it for a super-frame.
    let (len, fl, gso) = (1440usize, flags::OFFLOAD_L4_CKSUM, 0u16);
    assert!(
        len + rvpp_drivers::tap::VNET_HDR_LEN > 1400,
        "the old assertion held"
    );
    assert!(!is_tso_superframe(len, fl, gso, 1500, 1400));
    assert!(is_tso_superframe(64_000, fl | flags::GSO, 1400, 1500, 1400));
    // Every flow on one queue: the old test only printed the spread.
    assert_eq!(queues_used([2, 2, 2, 2].into_iter()), vec![2]);
    assert_eq!(queues_used([0, 3, 0, 1].into_iter()), vec![0, 1, 3]);
}

#[test]
fn device_deleted_underneath() {
    if !root_or_skip() {
        return;
    }
    let ns = TestNetns::new().unwrap();
    let (_p, mut bufs) = pool();
    let cfg = TapConfig {
        name: "rvpptundel".into(),
        netns: Some(ns.path()),
        ..Default::default()
    };
    let (mut rx, mut tx, info) = Tap::create(&cfg, 7).unwrap();
    ns.ip(&["link", "del", "rvpptundel"]).unwrap();
    let mut out = [0u32; 8];
    let mut nexts = [0u16; 8];
    assert_eq!(rx[0].rx(&mut bufs, &mut out, &mut nexts), 0);
    let pkt = udp4([198, 18, 0, 2], [198, 18, 0, 1], 1, 2, b"x");
    let bi = bufs.alloc_from_bytes(&pkt).unwrap();
    // Consumed (freed) and counted, not handed back.
    assert_eq!(tx[0].tx(&mut bufs, &[bi]), 1);
    let st = &info.stats[0];
    assert!(QueueStats::get(&st.rx_errors) >= 1);
    assert_eq!(QueueStats::get(&st.tx_errors), 1);
    drop((rx, tx));
    bufs.flush();
    assert_eq!(_p.in_use(), 0, "buffers leaked");
}

/// A device we create queues what the pod sends for us up to `HOST_TX_QUEUE_LEN` packets, not
/// the kernel's 500: a burst the pod sends while no worker reads (a worker kept off its core)
/// is all there when one reads again. With the kernel's default, 500 of the 3000 arrive.
#[test]
fn a_burst_the_pod_sends_while_nobody_reads_waits_in_the_queue() {
    if !root_or_skip() {
        return;
    }
    let ns = TestNetns::new().unwrap();
    let (_p, mut bufs) = pool();
    let cfg = TapConfig {
        name: "rvpptunq".into(),
        netns: Some(ns.path()),
        mode: TapMode::Tun,
        ..Default::default()
    };
    let (mut rx, _tx, _info) = Tap::create(&cfg, 7).unwrap();
    ns.ip(&["addr", "add", "198.18.0.5/30", "dev", "rvpptunq"])
        .unwrap();
    let link = ns.ip(&["link", "show", "rvpptunq"]).unwrap();
    let link = String::from_utf8_lossy(&link.stdout);
    let qlen = format!("qlen {}", tap::HOST_TX_QUEUE_LEN);
    assert!(link.contains(&qlen), "{link}");
    let s = bind_in(&ns, "198.18.0.5:0");
    const BURST: usize = 3000;
    for i in 0..BURST as u32 {
        s.send_to(&i.to_be_bytes(), "198.18.0.6:9999").unwrap();
    }
    let mut seen = vec![false; BURST];
    let got = rx_until(
        &mut rx,
        &mut bufs,
        &mut |p, _| matches!(udp_payload(p, false), Some((9999, v)) if v.len() == 4),
        BURST,
    );
    for (p, ..) in &got {
        let (_, v) = udp_payload(p, false).unwrap();
        seen[u32::from_be_bytes(v.try_into().unwrap()) as usize] = true;
    }
    let n = seen.iter().filter(|&&x| x).count();
    assert_eq!(n, BURST, "{n} of {BURST} datagrams waited for the reader");
}
