//! A hostile or broken peer, written by hand with raw sockets and raw
//! shared memory: wrong versions, bad sizes, truncated and out-of-order
//! messages, rings and descriptors pointing outside their region. Our
//! side must reject or contain every one of them, never crash, and stay
//! usable for the next, well-behaved peer.

mod common;

use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use common::*;
use memif::proto::{self, AddRegion, AddRing, Hello, Init, Msg, MSG_SIZE};
use memif::{Config, Event, Interface, Role};

// ---------- raw socket helpers (test code: unsafe kept minimal) ----------

struct Raw(RawFd);
impl Drop for Raw {
    fn drop(&mut self) {
        // SAFETY: (test) we own the fd.
        unsafe { libc::close(self.0) };
    }
}

fn addr(path: &str) -> (libc::sockaddr_un, libc::socklen_t) {
    // SAFETY: (test) zeroed sockaddr_un is valid.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as _;
    for (i, b) in path.bytes().enumerate() {
        sa.sun_path[i] = b as _;
    }
    (sa, std::mem::size_of::<libc::sockaddr_un>() as _)
}

fn raw_connect(path: &str) -> Raw {
    // SAFETY: (test) plain syscalls on a fd we own; `sa`/`tv` are live for the calls and their
    // lengths are their sizes. socket/connect are checked; a failed setsockopt only loses the
    // timeout.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET, 0);
        assert!(fd >= 0);
        let (sa, len) = addr(path);
        assert_eq!(
            libc::connect(fd, &sa as *const _ as *const libc::sockaddr, len),
            0,
            "connect {path}"
        );
        let tv = libc::timeval {
            tv_sec: 2,
            tv_usec: 0,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const _ as *const _,
            std::mem::size_of_val(&tv) as _,
        );
        Raw(fd)
    }
}

fn raw_listen(path: &str) -> Raw {
    // SAFETY: (test) plain syscalls on a fd we own; `sa` is live for bind and `len` is its size.
    // bind/listen are checked; a failed socket() gives -1, which only makes bind fail.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET, 0);
        let (sa, len) = addr(path);
        assert_eq!(
            libc::bind(fd, &sa as *const _ as *const libc::sockaddr, len),
            0
        );
        assert_eq!(libc::listen(fd, 4), 0);
        libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK);
        Raw(fd)
    }
}

fn raw_accept(l: &Raw, peer: &mut Interface) -> Raw {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        assert!(Instant::now() < deadline, "client never connected");
        peer.poll_control();
        // SAFETY: (test) non-blocking accept on our listener.
        let fd = unsafe {
            libc::accept4(
                l.0,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK,
            )
        };
        if fd >= 0 {
            // SAFETY: (test) make it blocking again with a timeout.
            unsafe {
                libc::fcntl(fd, libc::F_SETFL, 0);
                let tv = libc::timeval {
                    tv_sec: 2,
                    tv_usec: 0,
                };
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    &tv as *const _ as *const _,
                    std::mem::size_of_val(&tv) as _,
                );
            }
            return Raw(fd);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn send_bytes(s: &Raw, b: &[u8], fd: Option<RawFd>) {
    let mut iov = libc::iovec {
        iov_base: b.as_ptr() as *mut _,
        iov_len: b.len(),
    };
    let mut ctl = [0u64; 4];
    // SAFETY: (test) standard SCM_RIGHTS construction into an aligned buffer.
    unsafe {
        let mut mh: libc::msghdr = std::mem::zeroed();
        mh.msg_iov = &mut iov;
        mh.msg_iovlen = 1;
        if let Some(fd) = fd {
            mh.msg_control = ctl.as_mut_ptr() as *mut _;
            mh.msg_controllen = libc::CMSG_SPACE(4) as _;
            let c = libc::CMSG_FIRSTHDR(&mh);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(4) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut i32, fd);
        }
        libc::sendmsg(s.0, &mh, libc::MSG_NOSIGNAL);
    }
}

fn send(s: &Raw, m: &Msg, fd: Option<RawFd>) {
    send_bytes(s, &m.encode(), fd);
}

/// Receive one message while `peer` is polled; None on EOF/timeout.
fn recv(s: &Raw, peer: &mut Interface) -> Option<Msg> {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut b = [0u8; MSG_SIZE];
    loop {
        peer.poll_control();
        // SAFETY: (test) reads into a live buffer.
        let n = unsafe { libc::recv(s.0, b.as_mut_ptr() as *mut _, MSG_SIZE, libc::MSG_DONTWAIT) };
        if n == MSG_SIZE as isize {
            return Msg::decode(&b).ok();
        }
        if n == 0 || Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Expect the peer to end the conversation with DISCONNECT (then EOF) for the reason `want`
/// (a part of the reason string): a peer that ignored the bad message would still disconnect,
/// but only later and for "handshake timeout".
fn expect_reject(s: &Raw, peer: &mut Interface, what: &str, want: &str) {
    loop {
        match recv(s, peer) {
            Some(Msg::Disconnect(_, reason)) => {
                eprintln!("{what}: rejected with {reason:?}");
                assert!(
                    rejected_for(&reason, want),
                    "{what}: DISCONNECT says {reason:?}, expected {want:?}"
                );
                assert!(
                    recv(s, peer).is_none(),
                    "{what}: socket not closed after DISCONNECT"
                );
                return;
            }
            Some(Msg::Ack) | Some(Msg::Hello(_)) => continue,
            other => panic!("{what}: expected DISCONNECT, got {other:?}"),
        }
    }
}

/// A DISCONNECT `reason` names the rejection `want` (a part of the reason string).
fn rejected_for(reason: &str, want: &str) -> bool {
    reason.contains(want)
}

#[test]
fn a_timeout_is_not_a_rejection() {
    // A server that ignores a bad message still disconnects, later, for "handshake timeout":
    // the old check took any DISCONNECT, so that passed. The reason must now be the right one.
    assert!(!rejected_for("handshake timeout", "ID not found"));
    assert!(rejected_for("ID not found (5)", "ID not found"));
}

// ---------- raw shared memory owned by a hostile client ----------

struct Shm {
    fd: RawFd,
    base: *mut u8,
    size: usize,
}
impl Shm {
    fn new(size: usize) -> Shm {
        // SAFETY: (test) memfd + mmap of our own file.
        unsafe {
            let fd = libc::memfd_create(c"hostile".as_ptr(), 0);
            assert!(fd >= 0);
            assert_eq!(libc::ftruncate(fd, size as _), 0);
            let p = libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            Shm {
                fd,
                base: p as *mut u8,
                size,
            }
        }
    }
    fn w16(&self, off: usize, v: u16) {
        assert!(off + 2 <= self.size && off.is_multiple_of(2));
        // SAFETY: (test) in bounds of our mapping and 2-aligned (asserted; base is page-aligned).
        unsafe { std::ptr::write_volatile(self.base.add(off) as *mut u16, v) }
    }
    fn w32(&self, off: usize, v: u32) {
        assert!(off + 4 <= self.size && off.is_multiple_of(4));
        // SAFETY: (test) in bounds of our mapping and 4-aligned (asserted; base is page-aligned).
        unsafe { std::ptr::write_volatile(self.base.add(off) as *mut u32, v) }
    }
    fn desc(&self, ring: usize, slot: usize, flags: u16, region: u16, len: u32, off: u32) {
        let d = ring + proto::RING_HEADER_SIZE + slot * proto::DESC_SIZE;
        self.w16(d, flags);
        self.w16(d + 2, region);
        self.w32(d + 4, len);
        self.w32(d + 8, off);
    }
}
impl Drop for Shm {
    fn drop(&mut self) {
        // SAFETY: (test) unmapping what we mapped.
        unsafe {
            libc::munmap(self.base as *mut _, self.size);
            libc::close(self.fd);
        }
    }
}

const LOG2: u8 = 4; // 16 slots
const RING_S2M: usize = 0;
const RING_M2S: usize = 4096;
const BUFS: usize = 8192;
const SHM: usize = 65536;

fn init_msg(version: u16) -> Msg {
    Msg::Init(Init {
        version,
        id: 0,
        mode: 0,
        secret: [0; 24],
        name: "hostile".into(),
    })
}

fn server(tag: &str) -> (Interface, String) {
    let path = unique_path(tag);
    let mut cfg = Config::new(Role::Server, &path);
    cfg.handshake_timeout = Duration::from_millis(300);
    (Interface::new(cfg).unwrap(), path)
}

/// After abuse, a well-behaved client must still get through.
fn still_serves(server: &mut Interface, path: &str) {
    let mut c = Interface::new(Config::new(Role::Client, path)).unwrap();
    connect_pair(server, &mut c);
    let pkts: Vec<Vec<u8>> = (0..20).map(|i| make_packet(3000, i)).collect();
    assert_eq!(transfer(&mut c, server, 0, &pkts), pkts);
}

/// Handshake as a (so far) well-behaved client with rings at RING_S2M
/// and RING_M2S in one region; returns the live socket and memory.
fn hostile_connect(server: &mut Interface, path: &str) -> (Raw, Shm) {
    let shm = Shm::new(SHM);
    for r in [RING_S2M, RING_M2S] {
        shm.w32(r, proto::COOKIE);
    }
    let s = raw_connect(path);
    assert!(matches!(recv(&s, server), Some(Msg::Hello(_))));
    send(&s, &init_msg(proto::VERSION), None);
    assert_eq!(recv(&s, server), Some(Msg::Ack));
    send(
        &s,
        &Msg::AddRegion(AddRegion {
            index: 0,
            size: SHM as u64,
        }),
        Some(shm.fd),
    );
    assert_eq!(recv(&s, server), Some(Msg::Ack));
    for (flags, off) in [(proto::ADD_RING_FLAG_S2M, RING_S2M), (0, RING_M2S)] {
        let r = AddRing {
            flags,
            index: 0,
            region: 0,
            offset: off as u32,
            log2_ring_size: LOG2,
            private_hdr_size: 0,
        };
        send(&s, &Msg::AddRing(r), None);
        assert_eq!(recv(&s, server), Some(Msg::Ack));
    }
    send(&s, &Msg::Connect("evil".into()), None);
    assert!(matches!(recv(&s, server), Some(Msg::Connected(_))));
    server.poll_control();
    assert!(server.is_connected());
    (s, shm)
}

#[test]
fn server_rejects_bad_handshakes() {
    let (mut srv, path) = server("hs");
    let shm = Shm::new(SHM);
    shm.w32(RING_S2M, proto::COOKIE);
    type Script = Vec<(Msg, Option<RawFd>)>;
    let region = |size: u64, fd| (Msg::AddRegion(AddRegion { index: 0, size }), fd);
    let ring = |index, offset, log2| {
        let r = AddRing {
            flags: proto::ADD_RING_FLAG_S2M,
            index,
            region: 0,
            offset,
            log2_ring_size: log2,
            private_hdr_size: 0,
        };
        (Msg::AddRing(r), None)
    };
    let init = (init_msg(proto::VERSION), None);
    let ok_region = region(SHM as u64, Some(shm.fd));
    let cases: Vec<(&str, &str, Script)> = vec![
        (
            "wrong version",
            "Incompatible memif version 0x100",
            vec![(init_msg(0x0100), None)],
        ),
        (
            "wrong id",
            "ID not found (5)",
            vec![(
                Msg::Init(Init {
                    version: proto::VERSION,
                    id: 5,
                    mode: 0,
                    secret: [0; 24],
                    name: "x".into(),
                }),
                None,
            )],
        ),
        (
            "wrong mode",
            "Mode mismatch (peer 7",
            vec![(
                Msg::Init(Init {
                    version: proto::VERSION,
                    id: 0,
                    mode: 7,
                    secret: [0; 24],
                    name: "x".into(),
                }),
                None,
            )],
        ),
        (
            "connect before init",
            "unexpected CONNECT in state AwaitInit",
            vec![(Msg::Connect("x".into()), None)],
        ),
        (
            "region before init",
            "unexpected ADD_REGION in state AwaitInit",
            vec![ok_region.clone()],
        ),
        (
            "hello from client",
            "unexpected HELLO in state AwaitInit",
            vec![(Msg::Hello(Hello::default()), None)],
        ),
        (
            "region without fd",
            "Missing region fd",
            vec![init.clone(), region(4096, None)],
        ),
        (
            "region larger than file",
            "Invalid region size 262144",
            vec![init.clone(), region(SHM as u64 * 4, Some(shm.fd))],
        ),
        (
            "zero region",
            "Invalid region size 0",
            vec![init.clone(), region(0, Some(shm.fd))],
        ),
        (
            "region index gap",
            "Invalid region index 3",
            vec![
                init.clone(),
                (
                    Msg::AddRegion(AddRegion {
                        index: 3,
                        size: 4096,
                    }),
                    Some(shm.fd),
                ),
            ],
        ),
        (
            "ring in missing region",
            "Invalid ring region 0",
            vec![init.clone(), ring(0, 0, 4)],
        ),
        (
            "ring past region end",
            "Invalid ring offset 65280",
            vec![
                init.clone(),
                ok_region.clone(),
                ring(0, (SHM - 256) as u32, 4),
            ],
        ),
        (
            "ring offset overflow",
            "Invalid ring offset 4294967287",
            vec![init.clone(), ok_region.clone(), ring(0, u32::MAX - 8, 4)],
        ),
        (
            "ring misaligned",
            "Invalid ring offset 3 ",
            vec![init.clone(), ok_region.clone(), ring(0, 3, 4)],
        ),
        (
            "ring too big",
            "Invalid ring size 2^15",
            vec![init.clone(), ok_region.clone(), ring(0, 0, 15)],
        ),
        (
            "ring index too high",
            "Invalid ring index 9",
            vec![init.clone(), ok_region.clone(), ring(9, 0, 4)],
        ),
        (
            "duplicate ring",
            "Duplicate ring index 0",
            vec![
                init.clone(),
                ok_region.clone(),
                ring(0, 0, 4),
                ring(0, 0, 4),
            ],
        ),
        (
            "connect without rings",
            "missing rings",
            vec![
                init.clone(),
                ok_region.clone(),
                (Msg::Connect("x".into()), None),
            ],
        ),
        (
            "bad cookie",
            "Wrong ring cookie",
            vec![
                init.clone(),
                ok_region.clone(),
                ring(0, 0, 4),
                {
                    let r = AddRing {
                        flags: 0,
                        index: 0,
                        region: 0,
                        offset: 8192,
                        log2_ring_size: 4,
                        private_hdr_size: 0,
                    };
                    (Msg::AddRing(r), None)
                },
                (Msg::Connect("x".into()), None),
            ],
        ),
    ];
    for (what, want, script) in cases {
        let s = raw_connect(&path);
        assert!(
            matches!(recv(&s, &mut srv), Some(Msg::Hello(_))),
            "{what}: no HELLO"
        );
        for (m, fd) in &script {
            send(&s, m, *fd);
        }
        expect_reject(&s, &mut srv, what, want);
        assert!(!srv.is_connected());
    }
    // Byte-level garbage.
    for (what, want, bytes) in [
        ("truncated", "Invalid message size", vec![3u8, 0, 0, 2]),
        ("oversized", "Invalid message size", vec![0u8; 300]),
        ("unknown type", "Unknown message type", {
            let mut b = vec![0u8; MSG_SIZE];
            b[0] = 42;
            b
        }),
    ] {
        let s = raw_connect(&path);
        assert!(matches!(recv(&s, &mut srv), Some(Msg::Hello(_))));
        send_bytes(&s, &bytes, None);
        expect_reject(&s, &mut srv, what, want);
    }
    // A silent client is dropped after the handshake timeout.
    let s = raw_connect(&path);
    assert!(matches!(recv(&s, &mut srv), Some(Msg::Hello(_))));
    std::thread::sleep(Duration::from_millis(400));
    expect_reject(&s, &mut srv, "silent client", "handshake timeout");
    still_serves(&mut srv, &path);
}

#[test]
fn server_contains_corrupt_rings() {
    let (mut srv, path) = server("rings");
    let (s, shm) = hostile_connect(&mut srv, &path);
    let mut b = bufs(16, 2048);

    // head racing far ahead of tail: ignored, counted.
    shm.w16(RING_S2M + proto::RING_HEAD_OFFSET, 5000);
    assert_eq!(srv.rx_burst(0, &mut b), 0);
    assert!(srv.stats().ring_errors >= 1);

    // Valid indices, descriptors pointing everywhere but inside.
    let good = BUFS as u32;
    shm.desc(RING_S2M, 0, 0, 0, 100, good); // fine
    shm.desc(RING_S2M, 1, 0, 0, 100, SHM as u32 - 50); // runs off the end
    shm.desc(RING_S2M, 2, 0, 7, 100, good); // unknown region
    shm.desc(RING_S2M, 3, 0, 0, u32::MAX, good); // absurd length
    shm.desc(RING_S2M, 4, 0, 0, 100, u32::MAX); // offset overflow
    shm.desc(RING_S2M, 5, 0, 0, 64, good); // fine
    shm.w16(RING_S2M + proto::RING_TAIL_OFFSET, 0);
    shm.w16(RING_S2M + proto::RING_HEAD_OFFSET, 6);
    let n = srv.rx_burst(0, &mut b);
    assert_eq!(n, 2, "only the two valid packets are delivered");
    assert_eq!((b[0].len(), b[1].len()), (100, 64));
    assert_eq!(srv.stats().rx_dropped, 4);

    // A chain that never ends (every slot has NEXT): dropped, not looped on.
    for i in 0..16 {
        shm.desc(RING_S2M, i, proto::DESC_FLAG_NEXT, 0, 10, good);
    }
    shm.w16(RING_S2M + proto::RING_HEAD_OFFSET, 6 + 16);
    assert_eq!(srv.rx_burst(0, &mut b), 0);
    assert_eq!(srv.rx_burst(0, &mut b), 0);

    // Server tx into buffers the client claims are elsewhere: refused.
    for i in 0..16 {
        shm.desc(RING_M2S, i, 0, 0, 2048, SHM as u32 - 10);
    }
    shm.w16(RING_M2S + proto::RING_HEAD_OFFSET, 16);
    let errs = srv.stats().ring_errors;
    assert_eq!(srv.tx_burst(0, &[make_packet(500, 1)]), 0);
    assert!(srv.stats().ring_errors > errs);
    // Zero-capacity buffers must not make tx spin.
    for i in 0..16 {
        shm.desc(RING_M2S, i, 0, 0, 0, good);
    }
    assert_eq!(srv.tx_burst(0, &[make_packet(500, 1)]), 0);
    // Sane descriptors work again.
    for i in 0..16 {
        shm.desc(RING_M2S, i, 0, 0, 256, good + (i as u32) * 256);
    }
    assert_eq!(
        srv.tx_burst(0, &[make_packet(600, 1)]),
        1,
        "chained over 3 x 256"
    );

    // Message flood while connected ends the session cleanly.
    for _ in 0..100 {
        send(&s, &Msg::Ack, None);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while srv.is_connected() {
        assert!(Instant::now() < deadline);
        srv.poll_control();
    }
    drop(s);
    drop(shm);
    still_serves(&mut srv, &path);
}

#[test]
fn client_rejects_bad_servers() {
    let path = unique_path("hsrv");
    let l = raw_listen(&path);
    let mut cfg = Config::new(Role::Client, &path);
    cfg.reconnect_interval = Duration::from_millis(10);
    let mut cli = Interface::new(cfg).unwrap();
    let hello = |min, max| Hello {
        name: "evil".into(),
        min_version: min,
        max_version: max,
        max_region: 1,
        max_m2s_ring: 0,
        max_s2m_ring: 0,
        max_log2_ring_size: 10,
    };

    let s = raw_accept(&l, &mut cli);
    send(&s, &Msg::Hello(hello(0x0100, 0x0100)), None);
    expect_reject(&s, &mut cli, "old version", "Incompatible memif version");

    let s = raw_accept(&l, &mut cli);
    send(&s, &Msg::Connected("x".into()), None);
    expect_reject(
        &s,
        &mut cli,
        "connected before hello",
        "unexpected CONNECTED",
    );

    let s = raw_accept(&l, &mut cli);
    send_bytes(&s, &[2, 0, 1], None);
    expect_reject(&s, &mut cli, "truncated hello", "Invalid message size");

    // A server that plays along, then scribbles on the rings.
    let s = raw_accept(&l, &mut cli);
    send(&s, &Msg::Hello(hello(proto::VERSION, proto::VERSION)), None);
    let mut region_fd = None;
    loop {
        match recv(&s, &mut cli).expect("client went quiet") {
            Msg::Init(_) | Msg::AddRing(_) => send(&s, &Msg::Ack, None),
            Msg::AddRegion(_) => {
                region_fd = Some(());
                send(&s, &Msg::Ack, None)
            }
            Msg::Connect(_) => break,
            m => panic!("unexpected {m:?}"),
        }
    }
    assert!(region_fd.is_some());
    send(&s, &Msg::Connected("evil".into()), None);
    let deadline = Instant::now() + Duration::from_secs(2);
    while !cli.is_connected() {
        assert!(Instant::now() < deadline);
        cli.poll_control();
    }
    // Use the client's own view of the ring to play the server badly.
    let rx = cli.rx_ring(0).unwrap();
    rx.set_tail(rx.tail().wrapping_add(5000));
    let mut b = bufs(8, 2048);
    assert_eq!(cli.rx_burst(0, &mut b), 0);
    assert!(cli.stats().ring_errors >= 1);
    let rx = cli.rx_ring(0).unwrap();
    let mut d = rx.desc(0);
    d.offset = u32::MAX - 100;
    d.length = 1000;
    rx.set_desc(0, d);
    let mut d1 = rx.desc(1);
    d1.length = 100;
    rx.set_desc(1, d1);
    rx.set_tail(2);
    assert_eq!(cli.rx_burst(0, &mut b), 1);
    assert_eq!(b[0].len(), 100);
    assert_eq!(cli.stats().rx_dropped, 1);
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        assert!(Instant::now() < deadline);
        if let Some(Event::Disconnected { .. }) = cli.poll_control() {
            break;
        }
    }
    let _ = std::fs::remove_file(&path);
}
