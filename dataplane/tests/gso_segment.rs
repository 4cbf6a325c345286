//! gso-segment end to end: GSO super-frames and checksum-offload packets go through the standard
//! graph to interfaces that lack the offload; every segment is checked with etherparse and an
//! independent checksum, and the payloads must reassemble to the original.

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use rvpp_dataplane::buffer::{flags, BufferPool, Buffers};
use rvpp_dataplane::device::TxQueue;
use rvpp_dataplane::forwarding::{Forwarding, Path, Prefix};
use rvpp_dataplane::graph::DeviceNodes;
use rvpp_dataplane::nodes::gso::gso_error;
use rvpp_dataplane::nodes::standard_graph;
use rvpp_dataplane::runtime::Runtime;
use rvpp_dataplane::tables::Shared;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

const MAC0: [u8; 6] = [2, 0, 0, 0, 0, 0xa0];
const MAC1: [u8; 6] = [2, 0, 0, 0, 0, 0xa1];
const PEER0: [u8; 6] = [2, 0, 0, 0, 0, 0xb0];
const PEER1: [u8; 6] = [2, 0, 0, 0, 0, 0xb1];
const PEER3: [u8; 6] = [2, 0, 0, 0, 0, 0xb3];
const MSS: usize = 1448;

const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_ACK: u8 = 0x10;
const TCP_CWR: u8 = 0x80;
const TCP_ECE: u8 = 0x40;

/// What a test tx queue saw: interface, bytes, buffer flags, gso_size.
#[derive(Clone, Debug)]
struct Sent {
    sw: u32,
    bytes: Vec<u8>,
    flags: u32,
    gso_size: u16,
}

type Log = Arc<Mutex<Vec<Sent>>>;

struct Capture {
    sw: u32,
    log: Log,
    /// Take at most this many packets per call (a full device ring).
    limit: usize,
    /// Keep sent buffers until `flush` (a device that frees on completion), instead of freeing
    /// them at once (a device that copies).
    hold: Option<Vec<u32>>,
}

impl TxQueue for Capture {
    fn tx_node(&self) -> &'static str {
        "pg-tx"
    }
    fn tx(&mut self, bufs: &mut Buffers, pkts: &[u32]) -> usize {
        let n = pkts.len().min(self.limit);
        let mut tmp = vec![0u8; 70000];
        for &bi in &pkts[..n] {
            let len = bufs.copy_chain(bi, &mut tmp);
            let m = bufs.meta(bi);
            let s = Sent {
                sw: self.sw,
                bytes: tmp[..len].to_vec(),
                flags: m.flags,
                gso_size: m.gso_size,
            };
            self.log.lock().unwrap().push(s);
        }
        match &mut self.hold {
            Some(h) => h.extend_from_slice(&pkts[..n]),
            None => bufs.free(&pkts[..n]),
        }
        n
    }
    fn flush(&mut self, bufs: &mut Buffers) {
        if let Some(h) = &mut self.hold {
            bufs.free(h);
            h.clear();
        }
    }
}

struct Lab {
    pool: Arc<BufferPool>,
    fwd: Forwarding,
    rt: Runtime,
    log: Log,
    /// pg0 (ingress), pg1 (L2), tun0 (L3), pg1.100 (VLAN on pg1), pg4 (L2, no tx queue).
    sw: [u32; 5],
}

fn lab_with(n_buffers: u32, tx_limit: usize, hold: bool) -> Lab {
    let pool = BufferPool::with_backing(n_buffers, 2048, false).unwrap();
    let shared = Shared::new();
    let mut fwd = Forwarding::new(shared.clone());
    let if0 = fwd.interface_add("pg0", "pg", MAC0, true, 9000).unwrap();
    let if1 = fwd.interface_add("pg1", "pg", MAC1, true, 65535).unwrap();
    let if2 = fwd
        .interface_add("tun0", "tun", [0; 6], false, 65535)
        .unwrap();
    let if3 = fwd.vlan_subif_add(if1, 100).unwrap();
    let if4 = fwd
        .interface_add("pg4", "pg", [2, 0, 0, 0, 0, 0xa4], true, 65535)
        .unwrap();
    for (sw, a4, a6) in [
        (if0, "198.18.0.1/24", "2001:db8::1/64"),
        (if1, "198.19.0.1/24", "2001:db8:1::1/64"),
        (if2, "198.20.0.1/24", "2001:db8:2::1/64"),
        (if3, "198.21.0.1/24", "2001:db8:3::1/64"),
        (if4, "198.22.0.1/24", "2001:db8:4::1/64"),
    ] {
        fwd.address_add(sw, Prefix::parse(a4).unwrap()).unwrap();
        fwd.address_add(sw, Prefix::parse(a6).unwrap()).unwrap();
        fwd.set_admin_up(sw, true).unwrap();
    }
    let nh = |s: &str| -> IpAddr { s.parse().unwrap() };
    fwd.neighbor_add(if1, nh("198.19.0.2"), PEER1, true)
        .unwrap();
    fwd.neighbor_add(if1, nh("2001:db8:1::2"), PEER1, true)
        .unwrap();
    fwd.neighbor_add(if3, nh("198.21.0.2"), PEER3, true)
        .unwrap();
    fwd.neighbor_add(if4, nh("198.22.0.2"), PEER1, true)
        .unwrap();
    fwd.neighbor_add(if0, nh("198.18.0.2"), PEER0, true)
        .unwrap();
    let routes = [
        ("10.1.0.0/16", Path::via(nh("198.19.0.2"), Some(if1))),
        ("10.2.0.0/16", Path::attached(if2)),
        ("10.3.0.0/16", Path::via(nh("198.21.0.2"), Some(if3))),
        ("10.4.0.0/16", Path::via(nh("198.22.0.2"), Some(if4))),
        (
            "2001:db8:100::/48",
            Path::via(nh("2001:db8:1::2"), Some(if1)),
        ),
        ("2001:db8:200::/48", Path::attached(if2)),
    ];
    for (p, path) in routes {
        fwd.route_add(0, Prefix::parse(p).unwrap(), vec![path])
            .unwrap();
    }
    let graph = standard_graph(&[DeviceNodes::tx_only("pg-tx")]).unwrap();
    let mut rt = Runtime::new(graph, pool.local(), shared, 0, "test".into()).unwrap();
    let log = Log::default();
    for sw in [if0, if1, if2] {
        let q = Capture {
            sw,
            log: log.clone(),
            limit: tx_limit,
            hold: hold.then(Vec::new),
        };
        rt.set_tx(sw, Box::new(q)).unwrap();
    }
    Lab {
        pool,
        fwd,
        rt,
        log,
        sw: [if0, if1, if2, if3, if4],
    }
}

fn lab() -> Lab {
    lab_with(4096, usize::MAX, false)
}

impl Lab {
    /// Put `frame` in a chain (buffer sizes from `splits`, the last takes the rest; empty:
    /// 2048-byte buffers), let `meta` mark it, and inject it at `node`.
    fn send(
        &mut self,
        node: &str,
        frame: &[u8],
        splits: &[usize],
        meta: impl Fn(&mut rvpp_dataplane::buffer::BufferMeta),
    ) {
        let bufs = self.rt.buffers();
        let bi = if splits.is_empty() {
            bufs.alloc_from_bytes(frame).unwrap()
        } else {
            chain(bufs, frame, splits)
        };
        let m = bufs.meta(bi);
        m.rx_sw_if_index = self.sw[0];
        meta(m);
        self.rt.inject(node, &[bi]).unwrap();
    }
    fn gso(&mut self, node: &str, frame: &[u8], gso_size: u16) {
        self.send(node, frame, &[], |m| {
            m.flags |= flags::GSO | flags::OFFLOAD_L4_CKSUM;
            m.gso_size = gso_size;
        });
    }
    fn err(&self, code: u16) -> u64 {
        let i = self.rt.graph().error_index("gso-segment", code).unwrap();
        self.rt.stats().errors[i as usize].get()
    }
    fn take(&self) -> Vec<Sent> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
    fn no_leaks(mut self) {
        self.rt.buffers().flush();
        drop(self.rt);
        assert_eq!(self.pool.in_use(), 0, "buffers leaked");
        assert_eq!(self.pool.double_frees(), 0);
    }
}

/// A chain holding `frame`, with buffer sizes `splits` (the last buffer takes the rest).
fn chain(bufs: &mut Buffers, frame: &[u8], splits: &[usize]) -> u32 {
    let mut sizes = Vec::new();
    let mut left = frame.len();
    for &s in splits {
        let s = s.min(left);
        sizes.push(s);
        left -= s;
    }
    while left > 0 {
        let s = left.min(2048);
        sizes.push(s);
        left -= s;
    }
    let idx: Vec<u32> = sizes.iter().map(|_| bufs.alloc_one().unwrap()).collect();
    let mut off = 0;
    for (k, (&bi, &s)) in idx.iter().zip(&sizes).enumerate() {
        let mut b = bufs.get(bi);
        b.tail_room_mut()[..s].copy_from_slice(&frame[off..off + s]);
        b.meta.current_length = s as u16;
        if k + 1 < idx.len() {
            b.meta.flags |= flags::NEXT_PRESENT;
            b.meta.next_buffer = idx[k + 1];
        }
        off += s;
    }
    bufs.meta(idx[0]).total_length_not_including_first_buffer = (frame.len() - sizes[0]) as u32;
    idx[0]
}

// ----- independent packet building and checksums --------------------------------------------

fn sum(d: &[u8]) -> u32 {
    let mut s = 0u32;
    for c in d.chunks(2) {
        s += (c[0] as u32) << 8 | c.get(1).copied().unwrap_or(0) as u32;
    }
    s
}
fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}
/// One's-complement sum of the pseudo-header and the L4 bytes (0xffff when the checksum is good).
fn l4_sum(src: &[u8], dst: &[u8], proto: u8, l4: &[u8]) -> u16 {
    let len = l4.len() as u32;
    fold(sum(src) + sum(dst) + proto as u32 + (len >> 16) + (len & 0xffff) + sum(l4))
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Link {
    Eth,
    Vlan,
    Ip,
}

impl Link {
    fn len(self) -> usize {
        match self {
            Link::Eth => 14,
            Link::Vlan => 18,
            Link::Ip => 0,
        }
    }
}

#[derive(Clone, Copy)]
struct Tcp {
    seq: u32,
    flags: u8,
    /// Bytes of options (a multiple of 4).
    opts: usize,
}

/// Build a frame: Ethernet to MAC0 (or bare IP), IPv4 or IPv6, TCP or UDP, with a valid IP
/// header checksum and a deliberately wrong L4 checksum (the device is supposed to fill it).
fn frame(link: Link, v6: bool, dst: &str, tcp: Option<Tcp>, payload: &[u8]) -> Vec<u8> {
    let mut l4 = Vec::new();
    match tcp {
        Some(t) => {
            l4.extend_from_slice(&40000u16.to_be_bytes());
            l4.extend_from_slice(&443u16.to_be_bytes());
            l4.extend_from_slice(&t.seq.to_be_bytes());
            l4.extend_from_slice(&0x0102_0304u32.to_be_bytes());
            l4.push((((20 + t.opts) / 4) as u8) << 4);
            l4.push(t.flags);
            l4.extend_from_slice(&501u16.to_be_bytes());
            l4.extend_from_slice(&0xbeefu16.to_be_bytes());
            l4.extend_from_slice(&0u16.to_be_bytes());
            for k in 0..t.opts {
                l4.push(if k + 10 < t.opts { 1 } else { 8 + k as u8 });
            }
        }
        None => {
            l4.extend_from_slice(&5000u16.to_be_bytes());
            l4.extend_from_slice(&53u16.to_be_bytes());
            l4.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
            l4.extend_from_slice(&0xbeefu16.to_be_bytes());
        }
    }
    l4.extend_from_slice(payload);
    let proto = if tcp.is_some() { 6 } else { 17 };
    let mut ip = Vec::new();
    if v6 {
        let s: std::net::Ipv6Addr = "2001:db8::2".parse().unwrap();
        let d: std::net::Ipv6Addr = dst.parse().unwrap();
        ip.extend_from_slice(&[0x60, 0, 0, 0]);
        ip.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        ip.push(proto);
        ip.push(64);
        ip.extend_from_slice(&s.octets());
        ip.extend_from_slice(&d.octets());
    } else {
        let s: std::net::Ipv4Addr = "198.18.0.2".parse().unwrap();
        let d: std::net::Ipv4Addr = dst.parse().unwrap();
        ip.extend_from_slice(&[0x45, 0]);
        ip.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
        ip.extend_from_slice(&0xfffeu16.to_be_bytes()); // ID: wraps during segmentation
        ip.extend_from_slice(&0x4000u16.to_be_bytes()); // DF
        ip.push(64);
        ip.push(proto);
        ip.extend_from_slice(&[0, 0]);
        ip.extend_from_slice(&s.octets());
        ip.extend_from_slice(&d.octets());
        let c = !fold(sum(&ip));
        ip[10..12].copy_from_slice(&c.to_be_bytes());
    }
    let mut f = Vec::new();
    match link {
        Link::Eth => {
            f.extend_from_slice(&MAC0);
            f.extend_from_slice(&PEER0);
            f.extend_from_slice(&(if v6 { 0x86ddu16 } else { 0x0800 }).to_be_bytes());
        }
        Link::Vlan => unreachable!("frames enter untagged"),
        Link::Ip => {}
    }
    f.extend_from_slice(&ip);
    f.extend_from_slice(&l4);
    f
}

fn payload(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn parse(link: Link, f: &[u8]) -> SlicedPacket<'_> {
    match link {
        Link::Ip => SlicedPacket::from_ip(f).unwrap(),
        _ => SlicedPacket::from_ethernet(f).unwrap(),
    }
}

/// Check the segments of a TCP super-frame built by `frame` with `orig_payload`.
fn check_segments(out: &[Sent], link: Link, v6: bool, t: Tcp, mss: usize, orig_payload: &[u8]) {
    let n = orig_payload.len().div_ceil(mss);
    assert_eq!(out.len(), n, "segment count");
    let mut joined = Vec::new();
    for (i, s) in out.iter().enumerate() {
        let last = i + 1 == n;
        let f = &s.bytes;
        assert_eq!(s.flags & (flags::GSO | flags::OFFLOAD_L4_CKSUM), 0);
        let p = parse(link, f);
        match link {
            Link::Eth => {
                assert!(p.vlan.is_none());
                assert_eq!(&f[0..6], &PEER1);
                assert_eq!(&f[6..12], &MAC1);
            }
            Link::Vlan => {
                let Some(etherparse::VlanSlice::SingleVlan(v)) = &p.vlan else {
                    panic!("no vlan tag")
                };
                assert_eq!(v.vlan_identifier().value(), 100);
                assert_eq!(&f[0..6], &PEER3);
            }
            Link::Ip => {}
        }
        let Some(TransportSlice::Tcp(tcp)) = &p.transport else {
            panic!("segment {i}: not tcp")
        };
        let plen = tcp.payload().len();
        assert_eq!(plen, mss.min(orig_payload.len() - i * mss), "segment {i}");
        let l4 = tcp.slice();
        match &p.net {
            Some(NetSlice::Ipv4(ip)) => {
                assert!(!v6);
                let h = ip.header();
                assert_eq!(h.total_len() as usize, 20 + 20 + t.opts + plen);
                assert_eq!(f.len(), link.len() + h.total_len() as usize);
                assert_eq!(h.identification(), 0xfffeu16.wrapping_add(i as u16));
                assert!(h.dont_fragment());
                assert_eq!(h.ttl(), 63);
                assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
                assert_eq!(
                    tcp.checksum(),
                    tcp.calc_checksum_ipv4(h.source(), h.destination()).unwrap()
                );
                assert_eq!(l4_sum(&h.source(), &h.destination(), 6, l4), 0xffff);
            }
            Some(NetSlice::Ipv6(ip)) => {
                assert!(v6);
                let h = ip.header();
                assert_eq!(h.payload_length() as usize, 20 + t.opts + plen);
                assert_eq!(f.len(), link.len() + 40 + h.payload_length() as usize);
                assert_eq!(h.hop_limit(), 63);
                assert_eq!(
                    tcp.checksum(),
                    tcp.calc_checksum_ipv6(h.source(), h.destination()).unwrap()
                );
                assert_eq!(l4_sum(&h.source(), &h.destination(), 6, l4), 0xffff);
            }
            None => panic!("no ip"),
        }
        assert_eq!(
            tcp.sequence_number(),
            t.seq.wrapping_add((i * mss) as u32),
            "seq of segment {i}"
        );
        assert_eq!(tcp.acknowledgment_number(), 0x0102_0304);
        assert_eq!(tcp.window_size(), 501);
        assert_eq!(tcp.options().len(), t.opts);
        assert_eq!(tcp.fin(), last && t.flags & TCP_FIN != 0, "FIN {i}");
        assert_eq!(tcp.psh(), last && t.flags & TCP_PSH != 0, "PSH {i}");
        assert_eq!(tcp.cwr(), i == 0 && t.flags & TCP_CWR != 0, "CWR {i}");
        assert_eq!(tcp.ece(), t.flags & TCP_ECE != 0);
        assert_eq!(tcp.ack(), t.flags & TCP_ACK != 0);
        joined.extend_from_slice(tcp.payload());
    }
    assert!(joined == orig_payload, "payloads do not reassemble");
}

const ALL_FLAGS: u8 = TCP_FIN | TCP_PSH | TCP_ACK | TCP_CWR | TCP_ECE;

// ----- tests ----------------------------------------------------------------------------------

#[test]
fn ip4_superframe_is_segmented_on_ethernet() {
    let mut l = lab();
    // 64000 bytes: 44 full segments and a short last one; the sequence number wraps.
    let data = payload(64000, 1);
    let t = Tcp {
        seq: 0xffff_f000,
        flags: ALL_FLAGS,
        opts: 12,
    };
    l.gso(
        "ethernet-input",
        &frame(Link::Eth, false, "10.1.2.3", Some(t), &data),
        MSS as u16,
    );
    let out = l.take();
    assert!(out.iter().all(|s| s.sw == l.sw[1]));
    check_segments(&out, Link::Eth, false, t, MSS, &data);
    assert_eq!(l.err(gso_error::SEGMENTED), 1);
    assert_eq!(l.err(gso_error::SEGMENTS), out.len() as u64);
    let st = l.rt.stats();
    let c = &st.ifs[l.sw[1] as usize];
    assert_eq!(c.tx_packets.get(), out.len() as u64);
    let bytes: usize = out.iter().map(|s| s.bytes.len()).sum();
    assert_eq!(c.tx_bytes.get(), bytes as u64);
    l.no_leaks();
}

#[test]
fn full_64k_ip4_superframe_exact_multiple() {
    let mut l = lab();
    // The largest IPv4 super-frame with an even multiple of the MSS: 45 * 1448 = 65160.
    let data = payload(45 * MSS, 2);
    let t = Tcp {
        seq: 7,
        flags: TCP_ACK | TCP_PSH,
        opts: 0,
    };
    l.gso(
        "ethernet-input",
        &frame(Link::Eth, false, "10.1.0.9", Some(t), &data),
        MSS as u16,
    );
    check_segments(&l.take(), Link::Eth, false, t, MSS, &data);
    l.no_leaks();
}

#[test]
fn ip6_superframe_is_segmented_on_ethernet_and_tun() {
    let mut l = lab();
    let data = payload(65000, 3);
    let t = Tcp {
        seq: 1,
        flags: ALL_FLAGS,
        opts: 12,
    };
    let f = frame(Link::Eth, true, "2001:db8:100::7", Some(t), &data);
    l.gso("ethernet-input", &f, MSS as u16);
    let out = l.take();
    assert!(out.iter().all(|s| s.sw == l.sw[1]));
    check_segments(&out, Link::Eth, true, t, MSS, &data);

    let f = frame(Link::Eth, true, "2001:db8:200::7", Some(t), &data);
    l.gso("ethernet-input", &f, MSS as u16);
    let out = l.take();
    assert!(out.iter().all(|s| s.sw == l.sw[2]));
    check_segments(&out, Link::Ip, true, t, MSS, &data);
    l.no_leaks();
}

#[test]
fn ip4_superframe_to_tun_and_vlan() {
    let mut l = lab();
    let data = payload(30001, 4);
    let t = Tcp {
        seq: 99,
        flags: TCP_ACK | TCP_FIN,
        opts: 0,
    };
    l.gso(
        "ethernet-input",
        &frame(Link::Eth, false, "10.2.0.1", Some(t), &data),
        MSS as u16,
    );
    let out = l.take();
    assert!(out.iter().all(|s| s.sw == l.sw[2]));
    check_segments(&out, Link::Ip, false, t, MSS, &data);

    l.gso(
        "ethernet-input",
        &frame(Link::Eth, false, "10.3.0.1", Some(t), &data),
        MSS as u16,
    );
    let out = l.take();
    // The VLAN sub-interface transmits through its parent's queue.
    assert!(out.iter().all(|s| s.sw == l.sw[1]));
    check_segments(&out, Link::Vlan, false, t, MSS, &data);
    l.no_leaks();
}

#[test]
fn superframe_from_a_tun_enters_at_ip4_input() {
    let mut l = lab();
    let data = payload(20000, 5);
    let t = Tcp {
        seq: 1000,
        flags: TCP_ACK,
        opts: 8,
    };
    let f = frame(Link::Ip, false, "10.1.4.4", Some(t), &data);
    let tun = l.sw[2];
    l.send("ip4-input", &f, &[], |m| {
        m.rx_sw_if_index = tun;
        m.flags |= flags::GSO | flags::OFFLOAD_L4_CKSUM;
        m.gso_size = MSS as u16;
    });
    check_segments(&l.take(), Link::Eth, false, t, MSS, &data);
    l.no_leaks();
}

#[test]
fn odd_chains_and_segment_sizes_reassemble() {
    let mut l = lab();
    // Odd source buffer boundaries, tiny and jumbo MSS (a 5000-byte segment spans buffers).
    let cases: &[(usize, usize, &[usize])] = &[
        (10000, 1448, &[67, 1, 333, 1001, 7]),
        (10000, 1, &[]),
        (12345, 5000, &[66, 2047, 3]),
        (9000, 536, &[1500, 1, 1, 1, 999]),
        (1449, 1448, &[]),
        (4097, 4096, &[100]),
    ];
    for (k, &(n, mss, splits)) in cases.iter().enumerate() {
        let data = payload(n, 10 + k as u32);
        let t = Tcp {
            seq: 0x8000_0000u32.wrapping_mul(k as u32),
            flags: ALL_FLAGS,
            opts: 4 * (k % 3),
        };
        let f = frame(
            Link::Eth,
            k % 2 == 1,
            if k % 2 == 1 {
                "2001:db8:100::1"
            } else {
                "10.1.0.1"
            },
            Some(t),
            &data,
        );
        l.send("ethernet-input", &f, splits, |m| {
            m.flags |= flags::GSO | flags::OFFLOAD_L4_CKSUM;
            m.gso_size = mss as u16;
        });
        check_segments(&l.take(), Link::Eth, k % 2 == 1, t, mss, &data);
    }
    l.no_leaks();
}

#[test]
fn payload_within_one_mss_is_finished_in_place() {
    let mut l = lab();
    let data = payload(1000, 6);
    let t = Tcp {
        seq: 5,
        flags: ALL_FLAGS,
        opts: 0,
    };
    l.gso(
        "ethernet-input",
        &frame(Link::Eth, false, "10.1.0.1", Some(t), &data),
        MSS as u16,
    );
    let out = l.take();
    check_segments(&out, Link::Eth, false, t, MSS.max(1000), &data);
    assert_eq!(l.err(gso_error::SEGMENTED), 0);
    assert_eq!(l.err(gso_error::CSUM), 1);
    l.no_leaks();
}

#[test]
fn device_with_offloads_gets_the_superframe_untouched() {
    let mut l = lab();
    let if1 = l.sw[1];
    l.fwd.set_tx_offloads(if1, true, true).unwrap();
    let data = payload(64000, 7);
    let t = Tcp {
        seq: 1,
        flags: TCP_ACK,
        opts: 0,
    };
    let f = frame(Link::Eth, false, "10.1.0.1", Some(t), &data);
    l.gso("ethernet-input", &f, MSS as u16);
    let out = l.take();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].bytes.len(), f.len());
    assert_ne!(out[0].flags & flags::GSO, 0);
    assert_ne!(out[0].flags & flags::OFFLOAD_L4_CKSUM, 0);
    assert_eq!(out[0].gso_size, MSS as u16);
    // Only L2 rewrite and TTL changed; the TCP bytes are as sent.
    assert_eq!(&out[0].bytes[34..], &f[34..]);
    assert_eq!(l.err(gso_error::SEGMENTED) + l.err(gso_error::CSUM), 0);

    // GSO but no checksum offload: the device cannot do it, so software segments.
    l.fwd.set_tx_offloads(if1, true, false).unwrap();
    l.gso("ethernet-input", &f, MSS as u16);
    check_segments(&l.take(), Link::Eth, false, t, MSS, &data);
    l.no_leaks();
}

fn csum_only(m: &mut rvpp_dataplane::buffer::BufferMeta) {
    m.flags |= flags::OFFLOAD_L4_CKSUM;
}

/// The L4 bytes and addresses of a transmitted frame.
fn l4_of(f: &[u8], link: Link) -> (Vec<u8>, Vec<u8>, u8, Vec<u8>) {
    let p = parse(link, f);
    let (src, dst, proto) = match &p.net {
        Some(NetSlice::Ipv4(ip)) => (
            ip.header().source().to_vec(),
            ip.header().destination().to_vec(),
            ip.header().protocol().0,
        ),
        Some(NetSlice::Ipv6(ip)) => (
            ip.header().source().to_vec(),
            ip.header().destination().to_vec(),
            ip.payload().ip_number.0,
        ),
        None => panic!("no ip"),
    };
    let l4 = match &p.net {
        Some(n) => n.ip_payload_ref().unwrap().payload.to_vec(),
        None => unreachable!(),
    };
    (src, dst, proto, l4)
}

#[test]
fn tcp_checksum_over_chain_with_odd_boundaries() {
    let mut l = lab();
    for (k, splits) in [
        &[87usize, 333, 1001, 1, 77][..],
        &[89, 1, 1, 1, 2, 3, 5, 8, 13, 21, 34],
        &[86, 2047],
        &[],
    ]
    .iter()
    .enumerate()
    {
        for v6 in [false, true] {
            let data = payload(5001 + k, 20 + k as u32);
            let t = Tcp {
                seq: 42,
                flags: TCP_ACK | TCP_PSH,
                opts: 12,
            };
            let dst = if v6 { "2001:db8:100::1" } else { "10.1.0.1" };
            let f = frame(Link::Eth, v6, dst, Some(t), &data);
            l.send("ethernet-input", &f, splits, csum_only);
            let out = l.take();
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].flags & flags::OFFLOAD_L4_CKSUM, 0);
            let (s, d, proto, l4) = l4_of(&out[0].bytes, Link::Eth);
            assert_eq!(proto, 6);
            assert_eq!(l4_sum(&s, &d, 6, &l4), 0xffff, "splits {splits:?} v6 {v6}");
            assert_eq!(&l4[32..], &data[..]);
        }
    }
    assert_eq!(l.err(gso_error::CSUM), 8);
    // A device that does checksums gets the packet with the flag still set.
    let if1 = l.sw[1];
    l.fwd.set_tx_offloads(if1, false, true).unwrap();
    let f = frame(
        Link::Eth,
        false,
        "10.1.0.1",
        Some(Tcp {
            seq: 1,
            flags: TCP_ACK,
            opts: 0,
        }),
        b"xyz",
    );
    l.send("ethernet-input", &f, &[], csum_only);
    let out = l.take();
    assert_ne!(out[0].flags & flags::OFFLOAD_L4_CKSUM, 0);
    assert_eq!(l.err(gso_error::CSUM), 8);
    l.no_leaks();
}

#[test]
fn udp_checksum_offload_and_zero_becomes_ffff() {
    let mut l = lab();
    for v6 in [false, true] {
        let dst = if v6 { "2001:db8:100::1" } else { "10.1.0.1" };
        for (n, splits) in [
            (3usize, &[][..]),
            (3001, &[63usize, 1, 999][..]),
            (0, &[][..]),
        ] {
            let data = payload(n, 30 + n as u32);
            let f = frame(Link::Eth, v6, dst, None, &data);
            l.send("ethernet-input", &f, splits, csum_only);
            let out = l.take();
            assert_eq!(out.len(), 1);
            let (s, d, proto, l4) = l4_of(&out[0].bytes, Link::Eth);
            assert_eq!(proto, 17);
            assert_eq!(l4.len(), 8 + n);
            assert_eq!(l4_sum(&s, &d, 17, &l4), 0xffff);
            assert_ne!(u16::from_be_bytes([l4[6], l4[7]]), 0);
        }
        // Choose the last payload word so that the computed checksum is 0: it must go out as
        // 0xffff (0 means "no checksum" in UDP).
        let mut data = payload(100, 40);
        data[98] = 0;
        data[99] = 0;
        let f = frame(Link::Eth, v6, dst, None, &data);
        let (s, d, _, mut l4) = l4_of(&f, Link::Eth);
        l4[6] = 0;
        l4[7] = 0;
        let w = !l4_sum(&s, &d, 17, &l4);
        data[98..100].copy_from_slice(&w.to_be_bytes());
        let f = frame(Link::Eth, v6, dst, None, &data);
        l.send("ethernet-input", &f, &[], csum_only);
        let out = l.take();
        let (_, _, _, l4) = l4_of(&out[0].bytes, Link::Eth);
        assert_eq!(u16::from_be_bytes([l4[6], l4[7]]), 0xffff, "v6 {v6}");
    }
    l.no_leaks();
}

/// Inject a packet straight into gso-segment as interface-output would hand it over.
fn direct(l: &mut Lab, f: &[u8], splits: &[usize], tx: u32, fl: u32, gso_size: u16) {
    l.send("gso-segment", f, splits, |m| {
        m.tx_sw_if_index = tx;
        m.flags |= fl;
        m.gso_size = gso_size;
    });
}

/// Frame, buffer splits, buffer flags, gso_size, expected error.
type Case = (Vec<u8>, Vec<usize>, u32, u16, u16);

#[test]
fn malformed_packets_are_counted_and_dropped() {
    let mut l = lab();
    let if1 = l.sw[1];
    let g = flags::GSO | flags::OFFLOAD_L4_CKSUM;
    let t = Tcp {
        seq: 1,
        flags: TCP_ACK,
        opts: 0,
    };
    let data = payload(5000, 50);
    let good = frame(Link::Eth, false, "10.1.0.1", Some(t), &data);
    let mut cases: Vec<Case> = vec![
        // UDP super-frame: not segmented here.
        (
            frame(Link::Eth, false, "10.1.0.1", None, &data),
            vec![],
            g,
            1448,
            gso_error::NOT_TCP,
        ),
        // gso_size 0.
        (good.clone(), vec![], g, 0, gso_error::GSO_SIZE_ZERO),
        // TCP header split over two buffers.
        (good.clone(), vec![40], g, 1448, gso_error::HDR_NOT_IN_FIRST),
        (
            good.clone(),
            vec![40],
            flags::OFFLOAD_L4_CKSUM,
            0,
            gso_error::HDR_NOT_IN_FIRST,
        ),
    ];
    // ICMP with checksum offload.
    let mut icmp = good.clone();
    icmp[23] = 1;
    cases.push((icmp, vec![], flags::OFFLOAD_L4_CKSUM, 0, gso_error::NOT_TCP));
    // TCP data offset below 5 and beyond the packet.
    let mut doff = good.clone();
    doff[46] = 0x40;
    cases.push((doff.clone(), vec![], g, 1448, gso_error::BAD_LENGTH));
    let short = frame(Link::Eth, false, "10.1.0.1", Some(t), &[]);
    let mut big = short.clone();
    big[46] = 0xf0;
    cases.push((big, vec![], g, 1448, gso_error::BAD_LENGTH));
    // IP total length beyond the packet.
    let mut tl = good.clone();
    tl[16..18].copy_from_slice(&6000u16.to_be_bytes());
    cases.push((tl, vec![], g, 1448, gso_error::BAD_LENGTH));
    // Fragment.
    let mut frag = good.clone();
    frag[20] = 0x20;
    cases.push((frag, vec![], g, 1448, gso_error::IP_FRAGMENT_OR_EXT));
    // IPv6 with a hop-by-hop header; IPv6 with ICMPv6.
    let mut hbh = frame(Link::Eth, true, "2001:db8:100::1", Some(t), &data);
    hbh[20] = 0;
    cases.push((hbh, vec![], g, 1448, gso_error::IP_FRAGMENT_OR_EXT));
    let mut icmp6 = frame(Link::Eth, true, "2001:db8:100::1", Some(t), &data);
    icmp6[20] = 58;
    cases.push((icmp6, vec![], g, 1448, gso_error::NOT_TCP));
    // ARP / unknown ethertype, a bad IP version.
    let mut arp = good.clone();
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    cases.push((arp, vec![], g, 1448, gso_error::BAD_L3));
    let mut ver = good.clone();
    ver[14] = 0x55;
    cases.push((ver, vec![], g, 1448, gso_error::BAD_L3));
    // Three VLAN tags.
    let mut qqq = good[..12].to_vec();
    for _ in 0..3 {
        qqq.extend_from_slice(&[0x81, 0, 0, 100]);
    }
    qqq.extend_from_slice(&good[12..]);
    cases.push((qqq, vec![], g, 1448, gso_error::BAD_L3));

    for (k, (f, splits, fl, gs, code)) in cases.into_iter().enumerate() {
        let before = l.err(code);
        direct(&mut l, &f, &splits, if1, fl, gs);
        assert_eq!(l.err(code), before + 1, "case {k}: error {code}");
        assert!(l.take().is_empty(), "case {k} was sent");
    }

    // A chain that claims more bytes than it has.
    let bufs = l.rt.buffers();
    let mut long = good.clone();
    long[16..18].copy_from_slice(&6000u16.to_be_bytes());
    let bi = bufs.alloc_from_bytes(&long).unwrap();
    let m = bufs.meta(bi);
    m.total_length_not_including_first_buffer += 3000;
    m.tx_sw_if_index = if1;
    m.flags |= g;
    m.gso_size = 1448;
    let before = l.err(gso_error::BAD_LENGTH);
    l.rt.inject("gso-segment", &[bi]).unwrap();
    assert!(l.err(gso_error::BAD_LENGTH) > before);
    l.take();

    // Interface down, no tx queue on this thread.
    let if4 = l.sw[4];
    direct(&mut l, &good, &[], if4, g, 1448);
    assert_eq!(l.err(gso_error::NO_TXQ), 1);
    l.fwd.set_admin_up(if1, false).unwrap();
    direct(&mut l, &good, &[], if1, g, 1448);
    assert_eq!(l.err(gso_error::DOWN), 1);
    l.fwd.set_admin_up(if1, true).unwrap();

    // Every truncation of a good super-frame: counted, never a panic.
    for cut in 0..good.len() {
        for fl in [g, flags::OFFLOAD_L4_CKSUM] {
            direct(&mut l, &good[..cut], &[], if1, fl, 100);
        }
    }
    // Random corruption of the headers.
    let mut x = 0x1234_5678u32;
    for _ in 0..3000 {
        let mut f = good[..200].to_vec();
        for _ in 0..3 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let i = (x as usize >> 8) % 60;
            f[i] = x as u8;
        }
        direct(
            &mut l,
            &f,
            &[],
            if1,
            if x & 1 == 0 {
                g
            } else {
                flags::OFFLOAD_L4_CKSUM
            },
            (x >> 20) as u16 & 0x7ff,
        );
    }
    l.take();
    l.no_leaks();
}

#[test]
fn pool_running_dry_sends_what_it_could() {
    // 70 buffers: the super-frame takes 32 of them, so not all 45 segments fit at once.
    let data = payload(45 * MSS, 60);
    let t = Tcp {
        seq: 1,
        flags: TCP_ACK,
        opts: 0,
    };
    let f = frame(Link::Eth, false, "10.1.0.1", Some(t), &data);

    // A device that copies frees at once: sending the built segments makes room for the rest.
    let mut l = lab_with(70, usize::MAX, false);
    l.gso("ethernet-input", &f, MSS as u16);
    check_segments(&l.take(), Link::Eth, false, t, MSS, &data);
    assert_eq!(l.err(gso_error::NO_BUFFERS), 0);
    l.no_leaks();

    // A device that frees on completion keeps them: the rest is dropped and counted.
    let mut l = lab_with(70, usize::MAX, true);
    l.gso("ethernet-input", &f, MSS as u16);
    let out = l.take();
    let dropped = l.err(gso_error::NO_BUFFERS);
    assert!(
        dropped > 0 && !out.is_empty(),
        "sent {} dropped {dropped}",
        out.len()
    );
    assert_eq!(out.len() as u64 + dropped, 45);
    // What went out is the start of the stream, in order and valid.
    check_segments(&out, Link::Eth, false, t, MSS, &data[..out.len() * MSS]);
    l.no_leaks();
}

#[test]
fn full_tx_queue_drops_are_counted() {
    let mut l = lab_with(4096, 10, false);
    let data = payload(45 * MSS, 61);
    let t = Tcp {
        seq: 1,
        flags: TCP_ACK,
        opts: 0,
    };
    l.gso(
        "ethernet-input",
        &frame(Link::Eth, false, "10.1.0.1", Some(t), &data),
        MSS as u16,
    );
    let out = l.take();
    assert_eq!(out.len(), 10);
    assert_eq!(l.err(gso_error::TX_FULL), 35);
    let st = l.rt.stats();
    assert_eq!(st.ifs[l.sw[1] as usize].tx_packets.get(), 10);
    assert_eq!(st.ifs[l.sw[1] as usize].tx_errors.get(), 35);
    drop(st);
    l.no_leaks();
}

/// The egress MTU applies to each segment, not to the super-frame (rewrite checks
/// headers + gso_size against it).
#[test]
fn superframes_leave_through_a_normal_mtu() {
    let mut l = lab();
    l.fwd.set_mtu(l.sw[1], 1500).unwrap();
    let t = Tcp {
        seq: 7,
        flags: ALL_FLAGS,
        opts: 12,
    };
    let data = payload(30000, 9);
    // IPv4: 20 + 32 + 1448 = 1500 bytes per segment.
    l.gso(
        "ethernet-input",
        &frame(Link::Eth, false, "10.1.2.3", Some(t), &data),
        MSS as u16,
    );
    let out = l.take();
    check_segments(&out, Link::Eth, false, t, MSS, &data);
    assert!(out.iter().all(|s| s.bytes.len() <= 14 + 1500));
    // IPv6: 40 + 32 + 1428 = 1500.
    l.gso(
        "ethernet-input",
        &frame(Link::Eth, true, "2001:db8:100::7", Some(t), &data),
        1428,
    );
    let out = l.take();
    check_segments(&out, Link::Eth, true, t, 1428, &data);
    // One byte more per segment no longer fits: nothing goes out on pg1.
    l.gso(
        "ethernet-input",
        &frame(Link::Eth, true, "2001:db8:100::7", Some(t), &data),
        1429,
    );
    assert!(l.take().iter().all(|s| s.sw != l.sw[1]));
    l.no_leaks();
}

/// A tunnel's offload whose inner header is not where `tunnel_inner` says (before the outer
/// L4 header, past the packet's end, or on bytes that are not an IP header) is a counted drop.
#[test]
fn a_tunnel_offload_with_its_inner_header_misplaced_is_a_counted_drop() {
    let mut l = lab();
    let if1 = l.sw[1];
    let t = Tcp {
        seq: 1,
        flags: TCP_ACK,
        opts: 0,
    };
    let f = frame(Link::Eth, false, "10.1.0.1", Some(t), &payload(3000, 7));
    let g = flags::GSO | flags::OFFLOAD_L4_CKSUM | flags::TUNNEL_OFFLOAD;
    for (inner, code) in [
        (0, gso_error::BAD_TUNNEL),
        (10, gso_error::BAD_TUNNEL),
        (9000, gso_error::BAD_TUNNEL),
        (20, gso_error::BAD_L3),
    ] {
        let before = l.err(code);
        l.send("gso-segment", &f, &[], |m| {
            m.tx_sw_if_index = if1;
            m.flags |= g;
            m.gso_size = 1448;
            m.tunnel_inner = inner;
        });
        assert_eq!(l.err(code), before + 1, "tunnel_inner {inner}");
        assert!(l.take().is_empty(), "tunnel_inner {inner} was sent");
    }
    l.no_leaks();
}
