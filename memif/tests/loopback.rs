//! Rust server <-> Rust client in one process.

mod common;

#[path = "../../test-support/skip.rs"]
mod skip;

use std::time::{Duration, Instant};

use common::*;
use memif::{Config, Event, Interface, Mode, Role};

fn pair(
    tag: &str,
    mode: Mode,
    queues: u16,
    secret: Option<&str>,
) -> (Interface, Interface, String) {
    let path = unique_path(tag);
    let mut s = Config::new(Role::Server, &path);
    s.mode = mode;
    s.num_s2m_rings = queues;
    s.num_m2s_rings = queues;
    s.id = 7;
    s.secret = secret.map(String::from);
    let mut c = Config::new(Role::Client, &path);
    c.mode = mode;
    c.num_s2m_rings = queues;
    c.num_m2s_rings = queues;
    c.id = 7;
    c.secret = secret.map(String::from);
    c.log2_ring_size = 8;
    let server = Interface::new(s).unwrap();
    let client = Interface::new(c).unwrap();
    (server, client, path)
}

fn sizes() -> Vec<usize> {
    let mut v: Vec<usize> = vec![
        64, 65, 128, 1500, 2047, 2048, 2049, 4096, 4097, 6000, 8999, 9000,
    ];
    v.extend((0..40).map(|i| 64 + i * 223));
    v
}

fn exercise(mode: Mode, queues: u16) {
    let (mut server, mut client, _p) = pair(&format!("lb{queues}"), mode, queues, Some("s3cret"));
    connect_pair(&mut server, &mut client);
    assert_eq!(server.rx_queues(), queues as usize);
    assert_eq!(client.tx_queues(), queues as usize);
    for q in 0..queues as usize {
        let pkts: Vec<Vec<u8>> = sizes()
            .iter()
            .enumerate()
            .map(|(i, &l)| make_packet(l, (q * 1000 + i) as u32))
            .collect();
        // Several rounds so the rings wrap (ring has 256 slots).
        for _ in 0..4 {
            assert_eq!(
                transfer(&mut client, &mut server, q, &pkts),
                pkts,
                "client->server q{q}"
            );
            assert_eq!(
                transfer(&mut server, &mut client, q, &pkts),
                pkts,
                "server->client q{q}"
            );
        }
    }
    assert_eq!(server.stats().rx_dropped, 0);
    assert_eq!(client.stats().ring_errors, 0);
}

#[test]
fn ethernet_one_queue() {
    exercise(Mode::Ethernet, 1);
}

#[test]
fn ip_two_queues() {
    exercise(Mode::Ip, 2);
}

#[test]
fn oversized_packet_is_dropped_not_truncated() {
    let (mut server, mut client, _p) = pair("big", Mode::Ethernet, 1, None);
    connect_pair(&mut server, &mut client);
    let pkts = vec![make_packet(3000, 1), make_packet(100, 2)];
    assert_eq!(client.tx_burst(0, &pkts), 2);
    let mut small = bufs(4, 2000);
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(2);
    while got == 0 && Instant::now() < deadline {
        got = server.rx_burst(0, &mut small);
    }
    assert_eq!(got, 1);
    assert_eq!(small[0].as_slice(), &pkts[1][..]);
    assert_eq!(server.stats().rx_dropped, 1);
}

#[test]
fn ring_full_backpressure() {
    let (mut server, mut client, _p) = pair("full", Mode::Ethernet, 1, None);
    connect_pair(&mut server, &mut client);
    let pkts: Vec<Vec<u8>> = (0..300).map(|i| make_packet(64, i)).collect();
    // 256 slots: the first burst fills the ring, the rest must wait.
    let sent = client.tx_burst(0, &pkts);
    assert_eq!(sent, 256);
    assert_eq!(client.tx_burst(0, &pkts[sent..]), 0);
    let mut b = bufs(512, 128);
    assert_eq!(server.rx_burst(0, &mut b), 256);
    for (i, p) in b[..256].iter().enumerate() {
        assert_eq!(p.as_slice(), &pkts[i][..]);
    }
    assert_eq!(
        transfer(&mut client, &mut server, 0, &pkts[sent..]),
        &pkts[sent..]
    );
}

#[test]
fn wrong_secret_and_id_are_rejected() {
    let path = unique_path("sec");
    let mut s = Config::new(Role::Server, &path);
    s.secret = Some("right".into());
    let mut server = Interface::new(s).unwrap();
    let mut c = Config::new(Role::Client, &path);
    c.secret = Some("wrong".into());
    let mut client = Interface::new(c).unwrap();
    let mut c2 = Config::new(Role::Client, &path);
    c2.secret = Some("right".into());
    c2.id = 99;
    let mut client2 = Interface::new(c2).unwrap();
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline {
        assert!(server.poll_control().is_none());
        assert!(client.poll_control().is_none());
        assert!(client2.poll_control().is_none());
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(!server.is_connected() && !client.is_connected() && !client2.is_connected());
}

#[test]
fn mode_mismatch_is_rejected() {
    let path = unique_path("mode");
    let mut s = Config::new(Role::Server, &path);
    s.mode = Mode::Ip;
    let mut server = Interface::new(s).unwrap();
    let mut client = Interface::new(Config::new(Role::Client, &path)).unwrap();
    let deadline = Instant::now() + Duration::from_millis(300);
    while Instant::now() < deadline {
        server.poll_control();
        client.poll_control();
    }
    assert!(!server.is_connected() && !client.is_connected());
}

#[test]
fn reconnect_after_client_and_server_loss() {
    let (mut server, mut client, path) = pair("rc", Mode::Ethernet, 1, None);
    connect_pair(&mut server, &mut client);
    let pkts: Vec<Vec<u8>> = (0..50).map(|i| make_packet(1000, i)).collect();
    assert_eq!(transfer(&mut client, &mut server, 0, &pkts), pkts);

    // Client goes away: server sees Disconnected and accepts a new one.
    drop(client);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        assert!(Instant::now() < deadline);
        if let Some(Event::Disconnected { .. }) = server.poll_control() {
            break;
        }
    }
    assert_eq!(server.tx_burst(0, &pkts), 0, "no traffic while down");
    let mut c = Config::new(Role::Client, &path);
    c.id = 7;
    c.log2_ring_size = 8;
    let mut client = Interface::new(c).unwrap();
    connect_pair(&mut server, &mut client);
    assert_eq!(transfer(&mut server, &mut client, 0, &pkts), pkts);

    // Server goes away: client notices, retries, and reconnects to a new server.
    drop(server);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        assert!(Instant::now() < deadline);
        if let Some(Event::Disconnected { .. }) = client.poll_control() {
            break;
        }
    }
    // Let it fail a few connection attempts first.
    for _ in 0..5 {
        assert!(client.poll_control().is_none());
        std::thread::sleep(Duration::from_millis(30));
    }
    let mut s = Config::new(Role::Server, &path);
    s.id = 7;
    let mut server = Interface::new(s).unwrap();
    connect_pair(&mut server, &mut client);
    assert_eq!(transfer(&mut client, &mut server, 0, &pkts), pkts);
    assert_eq!(client.stats().connects, 2);
}

#[test]
fn interrupt_mode_signals_eventfd() {
    let path = unique_path("irq");
    let mut s = Config::new(Role::Server, &path);
    s.rx_interrupts = true;
    let mut server = Interface::new(s).unwrap();
    let mut client = Interface::new(Config::new(Role::Client, &path)).unwrap();
    connect_pair(&mut server, &mut client);
    let fd = server.rx_interrupt_fd(0).expect("eventfd");
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    assert_eq!(
        // SAFETY: (test) pfd is a valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, 0) },
        0,
        "not signalled before tx"
    );
    assert_eq!(client.tx_burst(0, &[make_packet(64, 1)]), 1);
    assert_eq!(
        // SAFETY: (test) as above.
        unsafe { libc::poll(&mut pfd, 1, 1000) },
        1,
        "signalled after tx"
    );
    let mut b = bufs(4, 2048);
    assert_eq!(server.rx_burst(0, &mut b), 1);
    // The client polls (default): the server must not signal it.
    let cfd = client.rx_interrupt_fd(0).unwrap();
    assert_eq!(server.tx_burst(0, &[make_packet(64, 2)]), 1);
    let mut pfd = libc::pollfd {
        fd: cfd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: (test) as above.
    assert_eq!(unsafe { libc::poll(&mut pfd, 1, 50) }, 0);
}

#[test]
fn abstract_socket_in_netns() {
    if !skip::need_root("to create a network namespace") || skip::need_tool("ip").is_none() {
        return;
    }
    let ns = format!("rvpp-memif-{}", std::process::id());
    let ok = std::process::Command::new("ip")
        .args(["netns", "add", &ns])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ip netns add {ns} failed");
    struct Del(String);
    impl Drop for Del {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &self.0])
                .status();
        }
    }
    let _del = Del(ns.clone());
    let name = format!("abstract:rvpp/memif-{}", nanos());
    let spec = format!("{name},netns_name=/var/run/netns/{ns}");
    let mut server = Interface::new(Config::new(Role::Server, &spec)).unwrap();
    // Same abstract name in *our* netns must not reach it.
    let mut outsider = Interface::new(Config::new(Role::Client, &name)).unwrap();
    for _ in 0..20 {
        server.poll_control();
        outsider.poll_control();
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!outsider.is_connected());
    drop(outsider);
    let mut client = Interface::new(Config::new(Role::Client, &spec)).unwrap();
    connect_pair(&mut server, &mut client);
    let pkts: Vec<Vec<u8>> = (0..10).map(|i| make_packet(200, i)).collect();
    assert_eq!(transfer(&mut client, &mut server, 0, &pkts), pkts);
}

#[test]
fn zero_copy_external_region() {
    use std::os::fd::{FromRawFd, OwnedFd};
    // The "dataplane buffer pool": a memfd we map ourselves.
    const POOL: usize = 1 << 20;
    // SAFETY: (test) memfd_create/ftruncate/mmap on our own file.
    let (fd, pool) = unsafe {
        let fd = libc::memfd_create(c"pool".as_ptr(), 0);
        assert!(fd >= 0);
        assert_eq!(libc::ftruncate(fd, POOL as _), 0);
        let p = libc::mmap(
            std::ptr::null_mut(),
            POOL,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        (OwnedFd::from_raw_fd(fd), p as *mut u8)
    };
    let path = unique_path("zc");
    let mut server = Interface::new(Config::new(Role::Server, &path)).unwrap();
    let mut c = Config::new(Role::Client, &path);
    c.extra_regions
        .push(memif::ExternalRegion { fd, size: POOL });
    let mut client = Interface::new(c).unwrap();
    connect_pair(&mut server, &mut client);
    assert_eq!(client.regions().len(), 2);
    assert_eq!(server.regions().len(), 2);
    assert_eq!(server.regions()[1].size(), POOL);

    // Write a packet straight into the pool through our own mapping and
    // post a descriptor pointing at it: no copy on the client side.
    let pkt = make_packet(700, 42);
    let off = 0x4_0000usize;
    // SAFETY: (test) off + len is inside our POOL-byte mapping.
    unsafe { std::ptr::copy_nonoverlapping(pkt.as_ptr(), pool.add(off), pkt.len()) };
    let ring = client.tx_ring(0).unwrap();
    let head = ring.head();
    ring.set_desc(
        head,
        memif::Desc {
            flags: 0,
            region: 1,
            length: pkt.len() as u32,
            offset: off as u32,
            metadata: 0,
        },
    );
    ring.set_head(head.wrapping_add(1));

    let mut b = bufs(4, 2048);
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut n = 0;
    while n == 0 {
        assert!(Instant::now() < deadline);
        n = server.rx_burst(0, &mut b);
    }
    assert_eq!(b[0].as_slice(), &pkt[..]);
    assert_eq!(
        client.tx_ring(0).unwrap().tail(),
        head.wrapping_add(1),
        "server released the slot"
    );
    // SAFETY: (test) unmap the test mapping.
    unsafe { libc::munmap(pool as *mut _, POOL) };
}

/// A server handed to another `Interface` (what a live restart does across processes): the
/// adopted one is connected at once, moves packets both ways on the same rings, and the
/// client sees no disconnect and no second handshake, also once the giver is forgotten.
/// A server that was never connected hands over only its listener, which the adopter serves.
#[test]
fn handed_over_server_goes_on_with_the_same_client() {
    let (server, mut client, path) = pair("handoff", Mode::Ethernet, 2, Some("s3cret"));
    let mut server = server;
    connect_pair(&mut server, &mut client);
    let pkts: Vec<Vec<u8>> = (0..50)
        .map(|i| make_packet(64 + i * 37, i as u32))
        .collect();
    assert_eq!(transfer(&mut client, &mut server, 1, &pkts), pkts);
    // An adoption that fails (here: a region larger than its file) leaves the client and the
    // socket file to the giver.
    let mut bad = server.handoff().unwrap();
    bad.conn.as_mut().unwrap().regions[0].1 = usize::MAX / 2;
    let mut cfg = Config::new(Role::Server, &path);
    cfg.id = 7;
    cfg.num_s2m_rings = 2;
    cfg.num_m2s_rings = 2;
    assert!(Interface::adopt(cfg, bad).is_err());
    assert!(std::path::Path::new(&path).exists(), "the socket file went");
    assert!(
        client.poll_control().is_none(),
        "the client was told goodbye"
    );
    assert_eq!(transfer(&mut client, &mut server, 0, &pkts), pkts);
    let h = server.handoff().unwrap();
    let conn = h.conn.as_ref().unwrap();
    assert_eq!((conn.s2m.len(), conn.m2s.len()), (2, 2));
    let mut cfg = Config::new(Role::Server, &path);
    cfg.id = 7;
    cfg.num_s2m_rings = 2;
    cfg.num_m2s_rings = 2;
    cfg.secret = Some("s3cret".into());
    let mut adopted = Interface::adopt(cfg, h).unwrap();
    assert!(matches!(
        adopted.poll_control(),
        Some(Event::Connected { .. })
    ));
    // The giving process would exit without a word: forget it.
    std::mem::forget(server);
    for q in 0..2 {
        assert_eq!(
            transfer(&mut client, &mut adopted, q, &pkts),
            pkts,
            "q{q} in"
        );
        assert_eq!(
            transfer(&mut adopted, &mut client, q, &pkts),
            pkts,
            "q{q} out"
        );
    }
    assert!(client.poll_control().is_none(), "the client saw an event");
    assert_eq!(client.stats().connects, 1);
    // And on again: the adopter hands over what it adopted (the next upgrade).
    let mut cfg2 = Config::new(Role::Server, &path);
    cfg2.id = 7;
    cfg2.num_s2m_rings = 2;
    cfg2.num_m2s_rings = 2;
    let h = adopted.handoff().unwrap();
    let mut again = Interface::adopt(cfg2, h).unwrap();
    assert!(matches!(
        again.poll_control(),
        Some(Event::Connected { .. })
    ));
    std::mem::forget(adopted);
    assert_eq!(transfer(&mut client, &mut again, 0, &pkts), pkts);
    assert_eq!(transfer(&mut again, &mut client, 1, &pkts), pkts);
    assert!(client.poll_control().is_none());

    // Not connected: only the listener goes, and a client connects to the adopter.
    let (server, mut client, path) = pair("handoff-idle", Mode::Ethernet, 1, None);
    let h = server.handoff().unwrap();
    assert!(h.conn.is_none());
    let mut cfg = Config::new(Role::Server, &path);
    cfg.id = 7;
    let mut adopted = Interface::adopt(cfg, h).unwrap();
    std::mem::forget(server);
    connect_pair(&mut adopted, &mut client);
    assert_eq!(transfer(&mut client, &mut adopted, 0, &pkts), pkts);

    // A client is not handed over.
    let mut c = Config::new(Role::Client, &path);
    c.id = 7;
    assert!(Interface::new(c).unwrap().handoff().is_err());
}
