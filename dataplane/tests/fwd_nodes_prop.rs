//! ethernet-input, ip4-/ip6-input, ip4-/ip6-lookup and ip4-/ip6-rewrite, with their fast
//! paths, against a plain reference of what each decides, on random (often malformed) IPv4 and
//! IPv6 frames in full vectors from several kinds of interface. Compared per packet: each
//! node's next edge and drop reason (from the packet trace), the frame that leaves, and every
//! error counter of the seven nodes.

use proptest::prelude::*;
use rvpp_dataplane::buffer::{BufferPool, Buffers};
use rvpp_dataplane::device::{RxQueue, TxQueue};
use rvpp_dataplane::forwarding::{Forwarding, Path, Prefix};
use rvpp_dataplane::graph::{rx_next, DeviceNodes};
use rvpp_dataplane::nodes::standard_graph;
use rvpp_dataplane::runtime::Runtime;
use rvpp_dataplane::tables::Shared;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

const MAC0: [u8; 6] = [2, 0, 0, 0, 0, 0xa0];
const MAC1: [u8; 6] = [2, 0, 0, 0, 0, 0xa1];
const MAC2: [u8; 6] = [2, 0, 0, 0, 0, 0xa2];
const MAC3: [u8; 6] = [2, 0, 0, 0, 0, 0xa3];
const MAC4: [u8; 6] = [2, 0, 0, 0, 0, 0xa4];
const MAC5: [u8; 6] = [2, 0, 0, 0, 0, 0xa5];
const MAC6: [u8; 6] = [2, 0, 0, 0, 0, 0xa6];
const PEER1: [u8; 6] = [2, 0, 0, 0, 0, 0xb1];
const MTU1: usize = 1400;
const NEXT_HOP: u32 = 0xc613_0002; // 198.19.0.2
const SRC: u32 = 0xc612_0002; // 198.18.0.2
const NEXT_HOP6: u128 = 0xfd00_0019_0000_0000_0000_0000_0000_0002; // fd00:19::2
const SRC6: u128 = 0xfd00_0018_0000_0000_0000_0000_0000_0002; // fd00:18::2
/// Routed to the neighbour: fd00:19:8000::/33.
const ROUTE6: u128 = 0xfd00_0019_8000_0000_0000_0000_0000_0000;
/// Nothing routes here (no default route): 2001:db8::/32.
const UNROUTED6: u128 = 0x2001_0db8_0000_0000_0000_0000_0000_0000;

type Frames = Arc<Mutex<Vec<Vec<u8>>>>;
/// Frames to receive, each with its rx sw_if_index.
type Pending = Arc<Mutex<Vec<(u32, Vec<u8>)>>>;

struct Capture(Frames);
impl TxQueue for Capture {
    fn tx_node(&self) -> &'static str {
        "pg-tx"
    }
    fn tx(&mut self, bufs: &mut Buffers, pkts: &[u32]) -> usize {
        let mut tmp = vec![0u8; 16384];
        for &bi in pkts {
            let n = bufs.copy_chain(bi, &mut tmp);
            self.0.lock().unwrap().push(tmp[..n].to_vec());
        }
        bufs.free(pkts);
        pkts.len()
    }
}

/// Hands the runtime one prepared vector per poll, each frame with its own rx interface.
struct Feed(Pending);
impl RxQueue for Feed {
    fn input_node(&self) -> &'static str {
        "pg-input"
    }
    fn sw_if_index(&self) -> u32 {
        1
    }
    fn rx(&mut self, bufs: &mut Buffers, out: &mut [u32], nexts: &mut [u16]) -> usize {
        let mut f = self.0.lock().unwrap();
        let n = f.len().min(out.len());
        for (k, (rx, frame)) in f.drain(..n).enumerate() {
            let bi = bufs.alloc_from_bytes(&frame).expect("pool");
            bufs.meta(bi).rx_sw_if_index = rx;
            out[k] = bi;
            nexts[k] = rx_next::ETHERNET;
        }
        n
    }
}

/// How a receiving interface is set up.
#[derive(Clone, Copy, Debug, PartialEq)]
enum RxKind {
    /// Up, an address, not promiscuous: the fast paths.
    Plain,
    /// Up, an address, promiscuous.
    Promisc,
    /// Admin down.
    Down,
    /// Up, no address: IPv4 and IPv6 not enabled.
    NoIp4,
    /// Up, L2 cross-connected to pg6.
    Xconnect,
}

struct Lab {
    rt: Runtime,
    feed: Pending,
    out1: Frames,
    /// What pg5's cross-connect sent on pg6.
    out6: Frames,
    /// (sw_if_index, kind, mac) of the receiving interfaces.
    rx: Vec<(u32, RxKind, [u8; 6])>,
    _fwd: Forwarding,
    _pool: Arc<BufferPool>,
}

fn lab() -> Lab {
    let pool = BufferPool::with_backing(4096, 2048, false).unwrap();
    let shared = Shared::new();
    let mut fwd = Forwarding::new(shared.clone());
    let mut add = |name, mac, mtu, addr: Option<&str>, up, promisc| {
        let sw = fwd.interface_add(name, "pg", mac, true, mtu).unwrap();
        if let Some(a) = addr {
            fwd.address_add(sw, Prefix::parse(a).unwrap()).unwrap();
        }
        fwd.set_admin_up(sw, up).unwrap();
        if promisc {
            fwd.set_promisc(sw, true).unwrap();
        }
        sw
    };
    let if0 = add("pg0", MAC0, 1500, Some("198.18.0.1/24"), true, false);
    let if1 = add("pg1", MAC1, MTU1 as u16, Some("198.19.0.1/24"), true, false);
    let if2 = add("pg2", MAC2, 1500, Some("198.18.1.1/24"), true, true);
    let if3 = add("pg3", MAC3, 1500, Some("198.18.2.1/24"), false, false);
    let if4 = add("pg4", MAC4, 1500, None, true, false);
    let if5 = add("pg5", MAC5, 1500, None, true, false);
    let if6 = add("pg6", MAC6, 1500, None, true, false);
    for (sw, a) in [
        (if0, "fd00:18::1/64"),
        (if1, "fd00:19::1/64"),
        (if2, "fd00:18:1::1/64"),
        (if3, "fd00:18:2::1/64"),
    ] {
        fwd.address_add(sw, Prefix::parse(a).unwrap()).unwrap();
    }
    fwd.set_xconnect(if5, Some(if6)).unwrap();
    let nh: IpAddr = "198.19.0.2".parse().unwrap();
    fwd.neighbor_add(if1, nh, PEER1, true).unwrap();
    fwd.route_add(
        0,
        Prefix::parse("198.19.128.0/17").unwrap(),
        vec![Path::via(nh, Some(if1))],
    )
    .unwrap();
    let nh6: IpAddr = "fd00:19::2".parse().unwrap();
    fwd.neighbor_add(if1, nh6, PEER1, true).unwrap();
    fwd.route_add(
        0,
        Prefix::parse("fd00:19:8000::/33").unwrap(),
        vec![Path::via(nh6, Some(if1))],
    )
    .unwrap();
    let graph = standard_graph(&[DeviceNodes::new("pg-input", "pg-tx")]).unwrap();
    let mut rt = Runtime::new(graph, pool.local(), shared, 0, "prop".into()).unwrap();
    let feed = Arc::new(Mutex::new(Vec::new()));
    rt.add_rx(Box::new(Feed(feed.clone()))).unwrap();
    let out1 = Frames::default();
    rt.set_tx(if0, Box::new(Capture(Frames::default())))
        .unwrap();
    rt.set_tx(if1, Box::new(Capture(out1.clone()))).unwrap();
    let out6 = Frames::default();
    rt.set_tx(if6, Box::new(Capture(out6.clone()))).unwrap();
    Lab {
        rt,
        feed,
        out1,
        out6,
        rx: vec![
            (if0, RxKind::Plain, MAC0),
            (if2, RxKind::Promisc, MAC2),
            (if3, RxKind::Down, MAC3),
            (if4, RxKind::NoIp4, MAC4),
            (if5, RxKind::Xconnect, MAC5),
        ],
        _fwd: fwd,
        _pool: pool,
    }
}

// ---------------------------------------------------------------------------------------------
// The reference: each node's decision written out directly from its description.

/// (node, next node, drop reason) per step, while the packet is in the four nodes.
type Steps = Vec<(&'static str, &'static str, Option<&'static str>)>;

#[derive(Default, Debug)]
struct Expect {
    steps: Steps,
    /// The frame sent on pg1, if any.
    out: Option<Vec<u8>>,
    /// The frame the cross-connect sent on pg6, if any.
    xconnect_out: Option<Vec<u8>>,
    /// Events counted without a drop: (node, reason).
    counted: Vec<(&'static str, &'static str)>,
}

fn be16(b: &[u8], o: usize) -> usize {
    u16::from_be_bytes([b[o], b[o + 1]]) as usize
}

fn sum_ok(h: &[u8]) -> bool {
    let mut s: u32 = 0;
    for w in h.chunks(2) {
        s += u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]) as u32;
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s == 0xffff
}

fn reference(frame: &[u8], kind: RxKind, mac: [u8; 6]) -> Expect {
    let mut e = Expect::default();
    let drop = |mut e: Expect, node, why| {
        e.steps.push((node, "error-drop", Some(why)));
        e
    };
    // ethernet-input
    const ETH: &str = "ethernet-input";
    if frame.len() < 14 {
        return drop(e, ETH, "frame too short");
    }
    if kind == RxKind::Down {
        return drop(e, ETH, "interface is down");
    }
    if kind == RxKind::Xconnect {
        // Any frame leaves on the cross-connected interface as it came.
        e.steps.push((ETH, "interface-output", None));
        e.xconnect_out = Some(frame.to_vec());
        return e;
    }
    let et = be16(frame, 12);
    if et == 0x8100 {
        // No VLAN sub-interfaces in this lab.
        if frame.len() < 18 {
            return drop(e, ETH, "frame too short");
        }
        return drop(e, ETH, "unknown vlan");
    }
    if frame[0] & 1 == 0 && frame[..6] != mac && kind != RxKind::Promisc {
        return drop(e, ETH, "l3 mac mismatch");
    }
    match et {
        0x0800 => e.steps.push((ETH, "ip4-input", None)),
        0x86dd => {
            e.steps.push((ETH, "ip6-input", None));
            return reference6(e, &frame[14..], kind);
        }
        0x0806 => {
            e.steps.push((ETH, "arp-input", None));
            return e;
        }
        _ => return drop(e, ETH, "unknown ethernet type"),
    }
    // ip4-input
    const IN: &str = "ip4-input";
    let mut ip = frame[14..].to_vec();
    if kind == RxKind::NoIp4 {
        return drop(e, IN, "ip4 not enabled on interface");
    }
    if ip.len() < 20 {
        return drop(e, IN, "ip4 header too short");
    }
    if ip[0] >> 4 != 4 {
        return drop(e, IN, "ip4 bad version");
    }
    let hl = (ip[0] & 15) as usize * 4;
    if hl < 20 || hl > ip.len() {
        return drop(e, IN, "ip4 bad header length");
    }
    if !sum_ok(&ip[..hl]) {
        return drop(e, IN, "ip4 bad header checksum");
    }
    let tl = be16(&ip, 2);
    let ttl0 = ip[8] == 0;
    if hl == 20 && ttl0 {
        // The plain header's checks run checksum, TTL, then length.
        e.counted.push((IN, "ip4 ttl expired"));
        e.steps.push((IN, "ip4-icmp-error", None));
        return e;
    }
    if tl < hl || tl > ip.len() {
        return drop(e, IN, "ip4 bad length");
    }
    if ttl0 {
        e.counted.push((IN, "ip4 ttl expired"));
        e.steps.push((IN, "ip4-icmp-error", None));
        return e;
    }
    if hl > 20 {
        e.counted
            .push((IN, "ip4 packets with options (counted, forwarded)"));
    }
    ip.truncate(tl);
    e.steps.push((IN, "ip4-lookup", None));
    // ip4-lookup: 198.19.128.0/17 and 198.19.0.2 go to the neighbour; the generator keeps
    // every other destination outside 198.18.0.0/15, where nothing routes.
    const LK: &str = "ip4-lookup";
    let dst = u32::from_be_bytes([ip[16], ip[17], ip[18], ip[19]]);
    if dst >> 15 != 0xc613_8000 >> 15 && dst != NEXT_HOP {
        assert!(dst >> 17 != 0xc612_0000 >> 17, "generator made {dst:08x}");
        e.counted.push((LK, "ip4 no route to destination"));
        e.steps.push((LK, "ip4-icmp-error", None));
        return e;
    }
    e.steps.push((LK, "ip4-rewrite", None));
    // ip4-rewrite
    const RW: &str = "ip4-rewrite";
    if ip[8] <= 1 {
        e.counted.push((RW, "ip4 ttl <= 1"));
        e.steps.push((RW, "ip4-icmp-error", None));
        return e;
    }
    if tl > MTU1 {
        if ip[6] & 0x40 != 0 {
            e.counted.push((
                RW,
                "ip4 mtu exceeded with DF set (ICMP fragmentation needed)",
            ));
            e.steps.push((RW, "ip4-icmp-error", None));
            return e;
        }
        return drop(
            e,
            RW,
            "ip4 mtu exceeded, fragmentation not supported (dropped)",
        );
    }
    ip[8] -= 1;
    // RFC 1624: the TTL is the high byte of its word, so the checksum rises by 0x0100.
    let c = be16(&ip, 10) + 0x0100;
    let c = ((c & 0xffff) + (c >> 16)) as u16;
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    assert!(sum_ok(&ip[..hl]));
    let mut out = Vec::with_capacity(14 + ip.len());
    out.extend_from_slice(&PEER1);
    out.extend_from_slice(&MAC1);
    out.extend_from_slice(&[0x08, 0x00]);
    out.extend_from_slice(&ip);
    e.steps.push((RW, "interface-output", None));
    e.out = Some(out);
    e
}

/// ip6-input, ip6-lookup and ip6-rewrite on `ip` (the frame after its Ethernet header).
fn reference6(mut e: Expect, ip: &[u8], kind: RxKind) -> Expect {
    let drop = |mut e: Expect, node, why| {
        e.steps.push((node, "error-drop", Some(why)));
        e
    };
    const IN: &str = "ip6-input";
    if kind == RxKind::NoIp4 {
        return drop(e, IN, "ip6 not enabled on interface");
    }
    if ip.len() < 40 {
        return drop(e, IN, "ip6 header too short");
    }
    if ip[0] >> 4 != 6 {
        return drop(e, IN, "ip6 bad version");
    }
    let tl = 40 + be16(ip, 4);
    if tl > ip.len() {
        return drop(e, IN, "ip6 payload length exceeds packet");
    }
    let src = u128::from_be_bytes(ip[8..24].try_into().unwrap());
    let dst = u128::from_be_bytes(ip[24..40].try_into().unwrap());
    if ip[8] == 0xff || src == 1 || dst == 1 {
        return drop(e, IN, "ip6 bad address (multicast source or loopback)");
    }
    if ip[7] == 0 {
        e.counted.push((IN, "ip6 hop limit expired"));
        e.steps.push((IN, "ip6-icmp-error", None));
        return e;
    }
    if ip[6] == 0 {
        e.counted.push((
            IN,
            "ip6 packets with hop-by-hop options (counted, forwarded)",
        ));
    }
    let mut ip = ip[..tl].to_vec();
    e.steps.push((IN, "ip6-lookup", None));
    // ip6-lookup: multicast and link-local stay on their link (none the generator makes is
    // ours); fd00:19:8000::/33 and fd00:19::2 go to the neighbour; 2001:db8::/32 has no route.
    const LK: &str = "ip6-lookup";
    if dst >> 120 == 0xff {
        return drop(e, LK, "ip6 multicast destination not for us");
    }
    if dst >> 118 == 0xfe80 >> 6 {
        return drop(e, LK, "ip6 link-local destination not for us");
    }
    if dst >> 95 != ROUTE6 >> 95 && dst != NEXT_HOP6 {
        assert_eq!(dst >> 96, UNROUTED6 >> 96, "generator made {dst:032x}");
        e.counted.push((LK, "ip6 no route to destination"));
        e.steps.push((LK, "ip6-icmp-error", None));
        return e;
    }
    e.steps.push((LK, "ip6-rewrite", None));
    const RW: &str = "ip6-rewrite";
    if ip[7] <= 1 {
        e.counted.push((RW, "ip6 hop limit <= 1"));
        e.steps.push((RW, "ip6-icmp-error", None));
        return e;
    }
    if tl > MTU1 {
        e.counted
            .push((RW, "ip6 mtu exceeded (ICMP6 packet too big)"));
        e.steps.push((RW, "ip6-icmp-error", None));
        return e;
    }
    ip[7] -= 1;
    let mut out = Vec::with_capacity(14 + ip.len());
    out.extend_from_slice(&PEER1);
    out.extend_from_slice(&MAC1);
    out.extend_from_slice(&[0x86, 0xdd]);
    out.extend_from_slice(&ip);
    e.steps.push((RW, "interface-output", None));
    e.out = Some(out);
    e
}

// ---------------------------------------------------------------------------------------------
// Frames: mostly well-formed with one field gone wrong, some truncated, some random bytes.

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
}

fn fill_checksum(ip: &mut [u8], hl: usize) {
    ip[10] = 0;
    ip[11] = 0;
    let mut s: u32 = 0;
    for w in ip[..hl].chunks(2) {
        s += u16::from_be_bytes([w[0], w[1]]) as u32;
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    ip[10..12].copy_from_slice(&(!(s as u16)).to_be_bytes());
}

fn frame(r: &mut Rng, mac: [u8; 6]) -> Vec<u8> {
    if r.below(12) == 0 {
        let n = r.below(80) as usize;
        return (0..n).map(|_| r.next() as u8).collect();
    }
    let dst_mac = match r.below(10) {
        0 => [0xff; 6],
        1 => [0x01, 0, 0x5e, 0, 0, 1],
        2 => [2, 9, 9, 9, 9, 9],
        _ => mac,
    };
    let et: u16 = match r.below(20) {
        0..=6 => 0x86dd,
        7 => 0x0806,
        8 => 0x8100,
        9 => r.next() as u16,
        _ => 0x0800,
    };
    if et == 0x86dd {
        return frame6(r, dst_mac);
    }
    let opts = if r.below(8) == 0 {
        4 * r.below(3) as usize
    } else {
        0
    };
    let hl = 20 + opts;
    let payload = match r.below(10) {
        0 => 1350 + r.below(200) as usize,
        // Exactly at the egress MTU and one byte over it.
        1 => MTU1 - hl + r.below(2) as usize,
        _ => r.below(100) as usize,
    };
    let tl = hl + payload;
    let mut ip = vec![0u8; tl];
    ip[0] = 0x40 | (hl / 4) as u8;
    ip[2..4].copy_from_slice(&(tl as u16).to_be_bytes());
    if r.below(3) == 0 {
        ip[6] = 0x40;
    }
    ip[8] = r.pick(&[64, 64, 64, 255, 2, 1, 0]);
    ip[9] = 17;
    ip[12..16].copy_from_slice(&SRC.to_be_bytes());
    let dst = match r.below(4) {
        0 => NEXT_HOP,
        1 => 0x0a00_0000 | (r.next() as u32 & 0x00ff_ffff),
        _ => 0xc613_8000 | (r.next() as u32 & 0x7fff),
    };
    ip[16..20].copy_from_slice(&dst.to_be_bytes());
    for b in &mut ip[20..] {
        *b = r.next() as u8;
    }
    fill_checksum(&mut ip, hl);
    // Then, sometimes, one thing wrong (after the checksum, so most break it too).
    match r.below(16) {
        0 => ip[r.below(20) as usize] ^= 1 << r.below(8),
        1 => {
            // A wrong total length with a good checksum.
            let bad = r.pick(&[0, 19, tl - 1, tl + 1, tl + 300]) as u16;
            ip[2..4].copy_from_slice(&bad.to_be_bytes());
            fill_checksum(&mut ip, hl);
        }
        2 => {
            ip[0] = r.pick(&[0x44, 0x4f, 0x65, 0x35]);
            fill_checksum(&mut ip, 20);
        }
        _ => {}
    }
    let mut f = Vec::with_capacity(14 + tl + 16);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&[2, 0, 0, 0, 0, 0xc0]);
    f.extend_from_slice(&et.to_be_bytes());
    f.extend_from_slice(&ip);
    match r.below(10) {
        // Link padding after the IPv4 packet.
        0 => f.extend((0..r.below(20)).map(|_| 0u8)),
        // Cut short anywhere.
        1 => f.truncate(r.below(f.len() as u64 + 1) as usize),
        _ => {}
    }
    f
}

/// An IPv6 frame: mostly well-formed with one field gone wrong, some truncated.
fn frame6(r: &mut Rng, dst_mac: [u8; 6]) -> Vec<u8> {
    let payload = match r.below(10) {
        0 => 1350 + r.below(200) as usize,
        // Exactly at the egress MTU and one byte over it.
        1 => MTU1 - 40 + r.below(2) as usize,
        _ => 8 + r.below(100) as usize,
    };
    let mut ip = vec![0u8; 40 + payload];
    ip[0] = 0x60;
    ip[1] = r.next() as u8 & 0x0f;
    ip[4..6].copy_from_slice(&(payload as u16).to_be_bytes());
    ip[6] = r.pick(&[17, 17, 17, 6, 58, 0]);
    ip[7] = r.pick(&[64, 64, 64, 255, 2, 1, 0]);
    ip[8..24].copy_from_slice(&SRC6.to_be_bytes());
    let low = r.next() as u128;
    let dst = match r.below(12) {
        0 => NEXT_HOP6,
        1 | 2 => UNROUTED6 | low & 0xffff_ffff,
        3 => 0xff05 << 112 | 0x1234,
        4 => 0xfe80 << 112 | 0x99,
        _ => ROUTE6 | low & 0x7fff_ffff,
    };
    ip[24..40].copy_from_slice(&dst.to_be_bytes());
    for b in &mut ip[40..] {
        *b = r.next() as u8;
    }
    // Then, sometimes, one thing wrong.
    match r.below(16) {
        0 => ip[0] = r.pick(&[0x40, 0x70, 0x00]),
        1 => {
            let bad = r.pick(&[0, payload - 1, payload + 1, payload + 300]) as u16;
            ip[4..6].copy_from_slice(&bad.to_be_bytes());
        }
        2 => ip[8] = 0xff,
        3 => ip[8..24].copy_from_slice(&1u128.to_be_bytes()),
        4 => ip[24..40].copy_from_slice(&1u128.to_be_bytes()),
        _ => {}
    }
    let mut f = Vec::with_capacity(14 + ip.len() + 16);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&[2, 0, 0, 0, 0, 0xc0]);
    f.extend_from_slice(&0x86ddu16.to_be_bytes());
    f.extend_from_slice(&ip);
    match r.below(10) {
        0 => f.extend((0..r.below(20)).map(|_| 0u8)),
        1 => f.truncate(r.below(f.len() as u64 + 1) as usize),
        _ => {}
    }
    f
}

/// The trace's (node, next, reason) steps while in the seven nodes.
fn observed(lines: &[String]) -> Vec<(String, String, Option<String>)> {
    let mut v = Vec::new();
    for l in lines.iter().skip(1) {
        let first = l.lines().next().unwrap_or("");
        let (node, rest) = first.split_once(" -> ").expect("trace line");
        let (next, why) = match rest.split_once(" [") {
            Some((n, w)) => {
                let w = w.trim_end_matches(']');
                let w = w.split_once(": ").map_or(w, |x| x.1);
                (n.to_string(), Some(w.to_string()))
            }
            None => (rest.to_string(), None),
        };
        let leaves = !matches!(
            next.as_str(),
            "ip4-input" | "ip4-lookup" | "ip4-rewrite" | "ip6-input" | "ip6-lookup" | "ip6-rewrite"
        );
        v.push((node.to_string(), next, why));
        if leaves {
            break;
        }
    }
    v
}

fn run_batches(seed: u64, batches: usize) {
    let mut l = lab();
    let mut r = Rng(seed | 1);
    let g = l.rt.graph();
    let pg = g.index("pg-input").unwrap();
    let ours = [
        "ethernet-input",
        "ip4-input",
        "ip4-lookup",
        "ip4-rewrite",
        "ip6-input",
        "ip6-lookup",
        "ip6-rewrite",
    ];
    let counters: Vec<(usize, &'static str, &'static str)> = g
        .error_names
        .iter()
        .enumerate()
        .filter(|(_, (n, _))| ours.contains(n))
        .map(|(i, &(n, d))| (i, n, d))
        .collect();
    let mut want_counts: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let stats = l.rt.stats();
    for _ in 0..batches {
        let n = 1 + r.below(256) as usize;
        let mut batch = Vec::with_capacity(n);
        let mut expect = Vec::with_capacity(n);
        // Runs of one interface, as a device delivers them, with changes in between.
        let mut cur = l.rx[0];
        for _ in 0..n {
            if r.below(16) == 0 {
                cur = l.rx[r.below(l.rx.len() as u64) as usize];
            }
            let f = frame(&mut r, cur.2);
            let e = reference(&f, cur.1, cur.2);
            for s in &e.steps {
                if let Some(why) = s.2 {
                    *want_counts.entry((s.0, why)).or_default() += 1;
                }
            }
            for &c in &e.counted {
                *want_counts.entry(c).or_default() += 1;
            }
            batch.push((cur.0, f));
            expect.push(e);
        }
        stats.traces.lock().unwrap().clear();
        stats.trace_budget[pg as usize].store(n as u32, Ordering::Relaxed);
        *l.feed.lock().unwrap() = batch.clone();
        assert_eq!(l.rt.poll(), n);
        let traces = std::mem::take(&mut *stats.traces.lock().unwrap());
        assert_eq!(traces.len(), n);
        // IPv4 and IPv6 frames leave in order within each family, the families through their
        // own nodes: kept apart by EtherType.
        let (sent4, sent_ip6): (Vec<_>, Vec<_>) = std::mem::take(&mut *l.out1.lock().unwrap())
            .into_iter()
            .partition(|f| f.get(12..14) != Some(&[0x86, 0xdd][..]));
        let (mut sent, mut sent_ip6) = (sent4.into_iter(), sent_ip6.into_iter());
        let mut sent6 = std::mem::take(&mut *l.out6.lock().unwrap()).into_iter();
        for (k, (e, t)) in expect.iter().zip(&traces).enumerate() {
            let got = observed(&t.lines);
            let want: Vec<_> = e
                .steps
                .iter()
                .map(|s| (s.0.to_string(), s.1.to_string(), s.2.map(str::to_string)))
                .collect();
            let (rx, f) = &batch[k];
            let head = &f[..f.len().min(48)];
            assert_eq!(
                got,
                want,
                "packet {k} on {rx}, {} bytes {head:02x?}",
                f.len()
            );
            if let Some(out) = &e.out {
                let next = if out[12..14] == [0x86, 0xdd] {
                    sent_ip6.next()
                } else {
                    sent.next()
                };
                assert_eq!(next.as_ref(), Some(out), "packet {k} output");
            }
            if let Some(out) = &e.xconnect_out {
                assert_eq!(
                    sent6.next().as_ref(),
                    Some(out),
                    "packet {k} cross-connected"
                );
            }
        }
        assert!(sent.next().is_none(), "more frames sent than expected");
        assert!(
            sent_ip6.next().is_none(),
            "more IPv6 frames sent than expected"
        );
        assert!(
            sent6.next().is_none(),
            "more frames cross-connected than expected"
        );
    }
    for (i, node, desc) in counters {
        let got = stats.errors[i].get();
        let want = want_counts.get(&(node, desc)).copied().unwrap_or(0);
        assert_eq!(got, want, "{node}: {desc}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn forwarding_nodes_match_the_reference(seed in any::<u64>()) {
        run_batches(seed, 6);
    }
}

#[test]
fn the_reference_sees_every_outcome() {
    // The generator reaches every decision of the reference, so the comparison covers them.
    let mut r = Rng(7);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20_000 {
        let kind = r.pick(&[
            RxKind::Plain,
            RxKind::Promisc,
            RxKind::Down,
            RxKind::NoIp4,
            RxKind::Xconnect,
        ]);
        let e = reference(&frame(&mut r, MAC0), kind, MAC0);
        let last = *e.steps.last().unwrap();
        seen.insert((last.0, last.1, last.2));
        for c in e.counted {
            seen.insert((c.0, "counted", Some(c.1)));
        }
    }
    for want in [
        ("ethernet-input", "error-drop", Some("frame too short")),
        ("ethernet-input", "error-drop", Some("interface is down")),
        ("ethernet-input", "interface-output", None),
        ("ethernet-input", "error-drop", Some("unknown vlan")),
        ("ethernet-input", "error-drop", Some("l3 mac mismatch")),
        (
            "ethernet-input",
            "error-drop",
            Some("unknown ethernet type"),
        ),
        ("ethernet-input", "arp-input", None),
        ("ip4-input", "error-drop", Some("ip4 header too short")),
        ("ip4-input", "error-drop", Some("ip4 bad version")),
        ("ip4-input", "error-drop", Some("ip4 bad header length")),
        ("ip4-input", "error-drop", Some("ip4 bad header checksum")),
        ("ip4-input", "error-drop", Some("ip4 bad length")),
        (
            "ip4-input",
            "error-drop",
            Some("ip4 not enabled on interface"),
        ),
        ("ip4-input", "ip4-icmp-error", None),
        (
            "ip4-input",
            "counted",
            Some("ip4 packets with options (counted, forwarded)"),
        ),
        ("ip4-lookup", "ip4-icmp-error", None),
        ("ip4-rewrite", "ip4-icmp-error", None),
        ("ip4-rewrite", "counted", Some("ip4 ttl <= 1")),
        (
            "ip4-rewrite",
            "counted",
            Some("ip4 mtu exceeded with DF set (ICMP fragmentation needed)"),
        ),
        (
            "ip4-rewrite",
            "error-drop",
            Some("ip4 mtu exceeded, fragmentation not supported (dropped)"),
        ),
        ("ip4-rewrite", "interface-output", None),
        (
            "ip6-input",
            "error-drop",
            Some("ip6 not enabled on interface"),
        ),
        ("ip6-input", "error-drop", Some("ip6 header too short")),
        ("ip6-input", "error-drop", Some("ip6 bad version")),
        (
            "ip6-input",
            "error-drop",
            Some("ip6 payload length exceeds packet"),
        ),
        (
            "ip6-input",
            "error-drop",
            Some("ip6 bad address (multicast source or loopback)"),
        ),
        ("ip6-input", "ip6-icmp-error", None),
        (
            "ip6-input",
            "counted",
            Some("ip6 packets with hop-by-hop options (counted, forwarded)"),
        ),
        (
            "ip6-lookup",
            "error-drop",
            Some("ip6 multicast destination not for us"),
        ),
        (
            "ip6-lookup",
            "error-drop",
            Some("ip6 link-local destination not for us"),
        ),
        ("ip6-lookup", "ip6-icmp-error", None),
        ("ip6-rewrite", "counted", Some("ip6 hop limit <= 1")),
        (
            "ip6-rewrite",
            "counted",
            Some("ip6 mtu exceeded (ICMP6 packet too big)"),
        ),
        ("ip6-rewrite", "interface-output", None),
    ] {
        assert!(seen.contains(&want), "never reached: {want:?}");
    }
}
