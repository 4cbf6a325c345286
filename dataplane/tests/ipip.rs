//! IPIP encap and decap through the whole graph, the bytes checked with etherparse. The kernel
//! here has no ipip module, so there is no Linux interop test: these bytes are the check.
//!
//! pg0 uplink 198.18.0.1/24 + fd00::1/64 (remote node 198.18.0.2 / fd00::2 behind PEER0),
//! pg1 pod side 198.19.0.1/24. ipip0: 198.18.0.1 -> 198.18.0.2 carrying 198.19.202.0/24;
//! ipip1 (SET_DF | COPY_DSCP): IPv6 outer fd00::1 -> fd00::2 carrying 198.19.203.0/24.
//! IPv6 pods (dual stack): pg1 also fd01::1/64 (pod fd01::2 behind PEER1); fd02::/64 behind
//! ipip0 and fd03::/64 behind ipip1.

mod common;
use common::*;
use etherparse::{Ethernet2Header, IpNumber, Ipv4Header, PacketBuilder, SlicedPacket};
use rvpp_dataplane::buffer::BufferPool;
use rvpp_dataplane::feature::FeatureTables;
use rvpp_dataplane::forwarding::{Forwarding, Path, Prefix};
use rvpp_dataplane::graph::{DeviceNodes, GraphBuilder};
use rvpp_dataplane::nodes::{ip4, ipip, standard_with};
use rvpp_dataplane::runtime::Runtime;
use rvpp_dataplane::tables::Shared;
use std::net::IpAddr;
use std::sync::Arc;

struct Lab {
    pool: Arc<BufferPool>,
    fwd: Forwarding,
    table: Arc<ipip::Table>,
    rt: Runtime,
    out0: Frames,
    out1: Frames,
    if0: u32,
    if1: u32,
    /// ipip0 (IPv4 outer, to 198.18.0.2).
    t0: u32,
    /// ipip1 (IPv6 outer, to fd00::2).
    t1: u32,
}

fn a(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn lab() -> Lab {
    lab_with(|b| b)
}

/// [`lab`] with more nodes or features registered on the graph.
fn lab_with(extra: impl FnOnce(GraphBuilder) -> GraphBuilder) -> Lab {
    let pool = BufferPool::with_backing(4096, 2048, false).unwrap();
    let shared = Shared::new();
    let tables = FeatureTables::default();
    let graph = extra(standard_with(&tables))
        .device(DeviceNodes::tx_only("pg-tx"))
        .build()
        .unwrap();
    let mut fwd = Forwarding::new(shared.clone());
    fwd.use_features(graph.features.clone());
    let if0 = fwd.interface_add("pg0", "pg", MAC0, true, 1500).unwrap();
    let if1 = fwd.interface_add("pg1", "pg", MAC1, true, 1500).unwrap();
    let t0 = fwd
        .interface_add("ipip0", "ipip", [0; 6], false, 1480)
        .unwrap();
    let t1 = fwd
        .interface_add("ipip1", "ipip", [0; 6], false, 1460)
        .unwrap();
    for (sw, p) in [
        (if0, "198.18.0.1/24"),
        (if0, "fd00::1/64"),
        (if1, "198.19.0.1/24"),
        (if1, "fd01::1/64"),
    ] {
        fwd.address_add(sw, Prefix::parse(p).unwrap()).unwrap();
    }
    for sw in [if0, if1, t0, t1] {
        fwd.set_admin_up(sw, true).unwrap();
    }
    for t in [t0, t1] {
        fwd.set_unnumbered(t, Some(if0)).unwrap();
        fwd.feature_enable(t, "ip4-output", "ipip4-encap", true)
            .unwrap();
        fwd.feature_enable(t, "ip6-output", "ipip6-encap", true)
            .unwrap();
    }
    fwd.neighbor_add(if0, a("198.18.0.2"), PEER0, true).unwrap();
    fwd.neighbor_add(if0, a("fd00::2"), PEER0, true).unwrap();
    fwd.neighbor_add(if1, a("198.19.0.2"), PEER1, true).unwrap();
    fwd.neighbor_add(if1, a("fd01::2"), PEER1, true).unwrap();
    for (p, t) in [
        ("198.19.202.0/24", t0),
        ("198.19.203.0/24", t1),
        ("fd02::/64", t0),
        ("fd03::/64", t1),
    ] {
        fwd.route_add(0, Prefix::parse(p).unwrap(), vec![Path::attached(t)])
            .unwrap();
    }
    let table = tables.get::<ipip::Table>();
    let mut ts = ipip::Tunnels::default();
    ts.insert(ipip::Tunnel {
        sw_if_index: t0,
        instance: 0,
        src: a("198.18.0.1"),
        dst: a("198.18.0.2"),
        encap_fib: 0,
        table_id: 0,
        flags: 0,
        dscp: 0,
    });
    ts.insert(ipip::Tunnel {
        sw_if_index: t1,
        instance: 1,
        src: a("fd00::1"),
        dst: a("fd00::2"),
        encap_fib: 0,
        table_id: 0,
        flags: ipip::tunnel_flags::SET_DF | ipip::tunnel_flags::COPY_DSCP,
        dscp: 0,
    });
    table.publish(ts);
    let mut rt = Runtime::new(graph, pool.local(), shared, 0, "test".into()).unwrap();
    let (out0, out1) = (Frames::default(), Frames::default());
    rt.set_tx(if0, Box::new(Capture(out0.clone()))).unwrap();
    rt.set_tx(if1, Box::new(Capture(out1.clone()))).unwrap();
    Lab {
        pool,
        fwd,
        table,
        rt,
        out0,
        out1,
        if0,
        if1,
        t0,
        t1,
    }
}

impl Lab {
    fn send(&mut self, sw: u32, frame: &[u8]) {
        let bufs = self.rt.buffers();
        let bi = bufs.alloc_from_bytes(frame).unwrap();
        bufs.meta(bi).rx_sw_if_index = sw;
        self.rt.inject("ethernet-input", &[bi]).unwrap();
    }
    /// `frames` received on `sw` in one vector.
    fn send_vector(&mut self, sw: u32, frames: &[Vec<u8>]) {
        inject_vector(&mut self.rt, sw, frames);
    }
    /// Packets a node has processed so far.
    fn packets(&self, node: &str) -> u64 {
        let i = self.rt.graph().index(node).unwrap() as usize;
        self.rt.stats().nodes[i].vectors.get()
    }
    fn error(&self, node: &str, code: u16) -> u64 {
        let i = self.rt.graph().error_index(node, code).unwrap();
        self.rt.stats().errors[i as usize].get()
    }
    fn take(f: &Frames) -> Vec<Vec<u8>> {
        std::mem::take(&mut *f.lock().unwrap())
    }
    fn no_leaks(mut self) {
        self.rt.buffers().flush();
        drop(self.rt);
        assert_eq!(self.pool.in_use(), 0, "buffers leaked");
        assert_eq!(self.pool.double_frees(), 0);
    }
}

fn pod_frame(dst: [u8; 4], dscp: u8) -> Vec<u8> {
    let mut ip = Ipv4Header::new(0, 64, IpNumber::UDP, [198, 19, 0, 2], dst).unwrap();
    ip.dscp = etherparse::Ipv4Dscp::try_new(dscp).unwrap();
    let b = PacketBuilder::ethernet2(PEER1, MAC1)
        .ip(etherparse::IpHeaders::Ipv4(ip, Default::default()));
    let b = b.udp(1000, 2000);
    let mut v = Vec::new();
    b.write(&mut v, &[0x11; 40]).unwrap();
    v
}

#[test]
fn ipv4_outer_encap_protocol_4_ttl_64_no_df() {
    let mut l = lab();
    let if1 = l.if1;
    l.send(if1, &pod_frame([198, 19, 202, 7], 0));
    let out = Lab::take(&l.out0);
    assert_eq!(out.len(), 1);
    let (eth, rest) = Ethernet2Header::from_slice(&out[0]).unwrap();
    assert_eq!((eth.destination, eth.source), (PEER0, MAC0));
    let (outer, inner) = Ipv4Header::from_slice(rest).unwrap();
    assert_eq!(
        (outer.source, outer.destination),
        ([198, 18, 0, 1], [198, 18, 0, 2])
    );
    assert_eq!(outer.protocol, IpNumber::IPV4);
    assert_eq!(outer.time_to_live, 64);
    assert!(!outer.dont_fragment);
    assert_eq!(outer.header_checksum, outer.calc_header_checksum());
    assert_eq!(outer.total_len as usize, rest.len());
    let (ih, payload) = Ipv4Header::from_slice(inner).unwrap();
    assert_eq!(ih.destination, [198, 19, 202, 7]);
    assert_eq!(ih.time_to_live, 63);
    assert_eq!(payload.len(), 8 + 40);
    assert_eq!(l.error("ipip4-encap", ipip::encap_error::ENCAPSULATED), 1);
    l.no_leaks();
}

#[test]
fn ipv6_outer_encap_copies_the_inner_dscp() {
    let mut l = lab();
    let if1 = l.if1;
    l.send(if1, &pod_frame([198, 19, 203, 7], 46));
    let out = Lab::take(&l.out0);
    assert_eq!(out.len(), 1);
    let p = SlicedPacket::from_ethernet(&out[0]).unwrap();
    let Some(etherparse::NetSlice::Ipv6(ip6)) = &p.net else {
        panic!("not ipv6")
    };
    let h = ip6.header().to_header();
    assert_eq!(h.next_header, IpNumber::IPV4);
    assert_eq!(h.hop_limit, 64);
    assert_eq!(h.traffic_class >> 2, 46, "inner DSCP copied");
    assert_eq!(h.payload_length as usize, out[0].len() - 14 - 40);
    let (ih, _) = Ipv4Header::from_slice(&out[0][14 + 40..]).unwrap();
    assert_eq!(ih.destination, [198, 19, 203, 7]);
    l.no_leaks();
}

fn from_peer(src: [u8; 4], proto: u8, inner: &[u8]) -> Vec<u8> {
    let mut outer = Ipv4Header::new(
        inner.len() as u16,
        64,
        IpNumber(proto),
        src,
        [198, 18, 0, 1],
    )
    .unwrap();
    outer.header_checksum = outer.calc_header_checksum();
    let mut v = Vec::new();
    Ethernet2Header {
        destination: MAC0,
        source: PEER0,
        ether_type: etherparse::EtherType::IPV4,
    }
    .write(&mut v)
    .unwrap();
    outer.write(&mut v).unwrap();
    v.extend_from_slice(inner);
    v
}

fn inner_to_pod() -> Vec<u8> {
    let b = PacketBuilder::ipv4([198, 19, 202, 7], [198, 19, 0, 2], 64).udp(2000, 1000);
    let mut v = Vec::new();
    b.write(&mut v, b"from a linux ipip node").unwrap();
    v
}

#[test]
fn decap_by_source_and_destination_with_counted_drops() {
    let mut l = lab();
    let if0 = l.if0;
    l.send(if0, &from_peer([198, 18, 0, 2], 4, &inner_to_pod()));
    let out = Lab::take(&l.out1);
    assert_eq!(out.len(), 1, "inner packet forwarded to the pod");
    let (_, rest) = Ethernet2Header::from_slice(&out[0]).unwrap();
    let (ih, payload) = Ipv4Header::from_slice(rest).unwrap();
    assert_eq!(ih.source, [198, 19, 202, 7]);
    assert_eq!(ih.time_to_live, 63);
    assert!(payload.ends_with(b"from a linux ipip node"));
    // Unknown source; protocol 41 claiming IPv6 with an IPv4 packet inside; truncated inner.
    l.send(if0, &from_peer([198, 18, 0, 9], 4, &inner_to_pod()));
    l.send(if0, &from_peer([198, 18, 0, 2], 41, &inner_to_pod()));
    l.send(if0, &from_peer([198, 18, 0, 2], 4, &[]));
    assert!(Lab::take(&l.out1).is_empty());
    use ipip::input_error as e;
    assert_eq!(l.error("ipip4-input", e::DECAPSULATED), 1);
    assert_eq!(l.error("ipip4-input", e::NO_TUNNEL), 1);
    assert_eq!(l.error("ipip4-input", e::BAD_INNER), 2);
    l.no_leaks();
}

/// The outer packet for us goes from ip4-lookup straight to ipip4-input (not through
/// ip4-local), and a vector of one tunnel's plain packets is decapsulated by its first packet's
/// key: every one forwarded with the bytes and counters of the whole way.
#[test]
fn decap_skips_ip4_local_and_a_vector_of_one_tunnel_keeps_its_key() {
    let mut l = lab();
    let (if0, t0) = (l.if0, l.t0);
    let frames: Vec<Vec<u8>> = (0..4u8)
        .map(|i| {
            let b = PacketBuilder::ipv4([198, 19, 202, 7], [198, 19, 0, 2], 64 - i).udp(2000, 1000);
            let mut v = Vec::new();
            b.write(&mut v, &[i; 30]).unwrap();
            from_peer([198, 18, 0, 2], 4, &v)
        })
        .collect();
    l.send_vector(if0, &frames);
    let out = Lab::take(&l.out1);
    assert_eq!(out.len(), 4);
    for (i, o) in out.iter().enumerate() {
        let (_, rest) = Ethernet2Header::from_slice(o).unwrap();
        let (ih, payload) = Ipv4Header::from_slice(rest).unwrap();
        assert_eq!(ih.time_to_live, 63 - i as u8, "packet {i}");
        assert_eq!(ih.header_checksum, ih.calc_header_checksum());
        assert_eq!(&payload[8..], &[i as u8; 30]);
        assert_eq!(rest.len(), frames[i].len() - 14 - 20, "inner packet only");
    }
    assert_eq!(l.packets("ip4-local"), 0, "ip4-local was not on the way");
    assert_eq!(l.packets("ip4-input"), 4, "the outer packets only");
    assert_eq!(l.error("ipip4-input", ipip::input_error::DECAPSULATED), 4);
    let c = &l.rt.stats().ifs[t0 as usize];
    assert_eq!(c.rx_packets.get(), 4);
    assert_eq!(c.rx_bytes.get(), 4 * (20 + 8 + 30));
    l.no_leaks();
}

/// In one vector after a plain packet of the tunnel: an outer fragment (ip4-local drops it),
/// an outer header with options (ip4-local, then decapsulated), an inner header with a bad
/// checksum, an inner header with options and one with TTL 0 (ip4-input decides those on
/// the tunnel), protocol 41 and an unknown source: none of them is the first one's.
#[test]
fn packets_that_are_not_plain_take_the_whole_way() {
    let mut l = lab();
    let if0 = l.if0;
    let good = from_peer([198, 18, 0, 2], 4, &inner_to_pod());
    let mut frag = good.clone();
    frag[14 + 6] = 0x20; // MF
    fix_outer(&mut frag);
    let mut opts = good[..14].to_vec();
    let mut outer = good[14..34].to_vec();
    outer[0] = 0x46;
    outer.extend_from_slice(&[1, 1, 1, 0]); // NOP NOP NOP EOL
    opts.extend_from_slice(&outer);
    opts.extend_from_slice(&good[34..]);
    let total = (opts.len() - 14) as u16;
    opts[16..18].copy_from_slice(&total.to_be_bytes());
    fix_outer(&mut opts);
    let mut bad_sum = good.clone();
    bad_sum[34 + 10] ^= 0xff;
    let mut ttl0 = good.clone();
    ttl0[34 + 8] = 0;
    fix_inner(&mut ttl0);
    let mut inner_opts = inner_to_pod();
    inner_opts.splice(20..20, [1, 1, 1, 0]);
    inner_opts[0] = 0x46;
    let total = inner_opts.len() as u16;
    inner_opts[2..4].copy_from_slice(&total.to_be_bytes());
    let inner_opts = from_peer([198, 18, 0, 2], 4, &inner_opts);
    let mut inner_opts = inner_opts;
    fix_inner_hl(&mut inner_opts, 24);
    let proto41 = from_peer([198, 18, 0, 2], 41, &inner_to_pod());
    let unknown = from_peer([198, 18, 0, 9], 4, &inner_to_pod());
    let vector = [
        good.clone(),
        frag,
        opts,
        bad_sum,
        ttl0,
        inner_opts,
        proto41,
        unknown,
        good,
    ];
    l.send_vector(if0, &vector);
    let out = Lab::take(&l.out1);
    assert_eq!(
        out.len(),
        4,
        "the two plain ones, outer options, inner options"
    );
    use ipip::input_error as e;
    assert_eq!(l.error("ip4-local", ip4::local_error::FRAGMENT), 1);
    assert_eq!(
        l.packets("ip4-local"),
        2,
        "the fragment and the outer options"
    );
    assert_eq!(l.error("ipip4-input", e::DECAPSULATED), 6);
    assert_eq!(l.error("ipip4-input", e::BAD_INNER), 1);
    assert_eq!(l.error("ipip4-input", e::NO_TUNNEL), 1);
    assert_eq!(l.error("ip4-input", ip4::input_error::BAD_CHECKSUM), 1);
    assert_eq!(l.error("ip4-input", ip4::input_error::TTL_EXPIRED), 1);
    assert_eq!(
        l.error("ip4-input", ip4::input_error::OPTIONS),
        2,
        "outer and inner"
    );
    l.no_leaks();
}

/// A feature on the uplink's ip4-local arc sees the tunnel's packets before ipip4-input does:
/// the way around ip4-local is only for interfaces without one.
#[test]
fn a_local_arc_feature_still_sees_tunnel_packets() {
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut l = lab_with(|b| {
        b.feature(
            rvpp_dataplane::feature::Feature::new("ip4-local", "test-local-tap"),
            Box::new(LocalTap("test-local-tap", seen.clone())),
        )
    });
    let if0 = l.if0;
    l.fwd
        .feature_enable(if0, "ip4-local", "test-local-tap", true)
        .unwrap();
    let good = from_peer([198, 18, 0, 2], 4, &inner_to_pod());
    l.send_vector(if0, &[good.clone(), good]);
    assert_eq!(
        Lab::take(&l.out1).len(),
        2,
        "decapsulated after the feature"
    );
    assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 2);
    assert_eq!(l.packets("ip4-local"), 2);
    l.fwd
        .feature_enable(if0, "ip4-local", "test-local-tap", false)
        .unwrap();
    l.send(if0, &from_peer([198, 18, 0, 2], 4, &inner_to_pod()));
    assert_eq!(Lab::take(&l.out1).len(), 1);
    assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 2);
    assert_eq!(
        l.packets("ip4-local"),
        2,
        "disabled: around ip4-local again"
    );
    l.no_leaks();
}

/// The encap node writes the uplink's Ethernet header with the outer one when the uplink
/// has no output features; with one (a pass-through tap on pg0's ip4-output) the outer packet
/// goes the long way, through ip4-lookup and ip4-rewrite. Both write the same bytes, for each
/// of the tunnel flags' outcomes.
#[test]
fn the_straight_encap_writes_what_the_long_way_writes() {
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut l = lab_with(|b| {
        b.feature(
            rvpp_dataplane::feature::Feature::new("ip4-output", "test-out-tap"),
            Box::new(LocalTap("test-out-tap", seen.clone())),
        )
    });
    let (if0, if1, t0) = (l.if0, l.if1, l.t0);
    let mut frames = vec![];
    for flags in [
        0,
        ipip::tunnel_flags::SET_DF | ipip::tunnel_flags::COPY_DSCP,
        1,
    ] {
        let pods = [
            with_df(pod_frame([198, 19, 202, 7], 46), true),
            with_df(pod_frame([198, 19, 202, 8], 0), false),
        ];
        // The long way: a second lookup.
        let way = ("ip4-output", "test-out-tap", ("ip4-lookup", 4));
        frames.extend(straight_and_long(
            &mut l,
            (t0, flags),
            (if0, if1),
            &pods,
            way,
        ));
    }
    assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 6);
    let outer = |f: &[u8]| Ipv4Header::from_slice(&f[14..]).unwrap().0;
    let (plain, set, copy_df) = (outer(&frames[0]), outer(&frames[2]), outer(&frames[4]));
    assert_eq!((plain.dscp.value(), plain.dont_fragment), (10, false));
    assert_eq!(
        (set.dscp.value(), set.dont_fragment),
        (46, true),
        "copied DSCP, set DF"
    );
    assert_eq!(
        outer(&frames[3]).dscp.value(),
        0,
        "the second pod packet's DSCP"
    );
    assert!(copy_df.dont_fragment, "the inner packet's DF, copied");
    assert!(!outer(&frames[5]).dont_fragment, "and its clear DF");
    for f in &frames {
        let h = outer(f);
        assert_eq!(h.header_checksum, h.calc_header_checksum());
    }
    l.no_leaks();
}

/// Tunnel `t` given `flags` and DSCP 10, `pods` sent from pg1 (`if1`) twice: the straight
/// way, then the long way with the pass-through `tap` on pg0's output `arc`, when `lookup`
/// sees `more` packets more. Both ways write the same frames, which are returned.
fn straight_and_long(
    l: &mut Lab,
    (t, flags): (u32, u8),
    (if0, if1): (u32, u32),
    pods: &[Vec<u8>],
    (arc, tap, (lookup, more)): (&str, &str, (&str, u64)),
) -> Vec<Vec<u8>> {
    let mut ts = (*l.table.load()).clone();
    let mut tun = *ts.get(t).unwrap();
    (tun.flags, tun.dscp) = (flags, 10);
    ts.insert(tun);
    l.table.publish(ts);
    l.send_vector(if1, pods);
    let straight = Lab::take(&l.out0);
    let lookups = l.packets(lookup);
    l.fwd.feature_enable(if0, arc, tap, true).unwrap();
    l.send_vector(if1, pods);
    let long = Lab::take(&l.out0);
    assert_eq!(
        l.packets(lookup),
        lookups + more,
        "the long way, flags {flags}"
    );
    l.fwd.feature_enable(if0, arc, tap, false).unwrap();
    assert_eq!(straight.len(), pods.len());
    assert_eq!(straight, long, "flags {flags}");
    straight
}

/// A pod frame with the inner DF bit `on` (checksum redone).
fn with_df(mut f: Vec<u8>, on: bool) -> Vec<u8> {
    f[14 + 6] = if on {
        f[14 + 6] | 0x40
    } else {
        f[14 + 6] & !0x40
    };
    f[14 + 10..14 + 12].fill(0);
    let c = rvpp_dataplane::wire::checksum(&f[14..34]);
    f[14 + 10..14 + 12].copy_from_slice(&c.to_be_bytes());
    f
}

/// A feature that counts what it sees and passes it on along its arc.
struct LocalTap(&'static str, std::sync::Arc<std::sync::atomic::AtomicU64>);

impl rvpp_dataplane::graph::Node for LocalTap {
    fn info(&self) -> rvpp_dataplane::graph::NodeInfo {
        rvpp_dataplane::graph::NodeInfo::internal(self.0, &[], &[])
    }
    fn process(
        &mut self,
        cx: &mut rvpp_dataplane::runtime::Ctx<'_>,
        bufs: &mut [u32],
        nexts: &mut [u16],
    ) {
        let arc = cx.arc();
        for (&bi, n) in bufs.iter().zip(nexts.iter_mut()) {
            *n = arc.next(cx.bufs.meta(bi).feature_mask);
        }
        self.1
            .fetch_add(bufs.len() as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The outer IPv4 header's checksum, after an edit.
fn fix_outer(f: &mut [u8]) {
    let hl = (f[14] & 0xf) as usize * 4;
    f[24..26].fill(0);
    let c = rvpp_dataplane::wire::checksum(&f[14..14 + hl]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

/// The inner (20-byte outer) IPv4 header's checksum, after an edit.
fn fix_inner(f: &mut [u8]) {
    fix_inner_hl(f, 20);
}

fn fix_inner_hl(f: &mut [u8], hl: usize) {
    let o = 14 + 20;
    f[o + 10..o + 12].fill(0);
    let c = rvpp_dataplane::wire::checksum(&f[o..o + hl]);
    f[o + 10..o + 12].copy_from_slice(&c.to_be_bytes());
}

/// IP-in-IPv6 from `src` to our fd00::1 (ipip1's far end is fd00::2), next header `proto`.
fn from_peer6(src: &str, proto: u8, inner: &[u8]) -> Vec<u8> {
    let s: std::net::Ipv6Addr = src.parse().unwrap();
    let outer = etherparse::Ipv6Header {
        payload_length: inner.len() as u16,
        next_header: IpNumber(proto),
        hop_limit: 64,
        source: s.octets(),
        destination: "fd00::1".parse::<std::net::Ipv6Addr>().unwrap().octets(),
        ..Default::default()
    };
    let mut v = Vec::new();
    Ethernet2Header {
        destination: MAC0,
        source: PEER0,
        ether_type: etherparse::EtherType::IPV6,
    }
    .write(&mut v)
    .unwrap();
    outer.write(&mut v).unwrap();
    v.extend_from_slice(inner);
    v
}

/// ip6-local hands next header 4 / 41 to ipip6-input, which decapsulates by (source,
/// destination) as ipip4-input does; calico-vpp makes an IPv6-outer tunnel per IPv6 peer.
#[test]
fn ipv6_outer_decap_by_source_and_destination_with_counted_drops() {
    let mut l = lab();
    let if0 = l.if0;
    l.send(if0, &from_peer6("fd00::2", 4, &inner_to_pod()));
    let out = Lab::take(&l.out1);
    assert_eq!(out.len(), 1, "inner packet forwarded to the pod");
    let (ih, payload) = Ipv4Header::from_slice(&out[0][14..]).unwrap();
    assert_eq!(ih.source, [198, 19, 202, 7]);
    assert!(payload.ends_with(b"from a linux ipip node"));
    l.send(if0, &from_peer6("fd00::9", 4, &inner_to_pod()));
    l.send(if0, &from_peer6("fd00::2", 41, &inner_to_pod()));
    assert!(Lab::take(&l.out1).is_empty());
    use ipip::input_error as e;
    assert_eq!(l.error("ipip6-input", e::DECAPSULATED), 1);
    assert_eq!(l.error("ipip6-input", e::NO_TUNNEL), 1);
    assert_eq!(l.error("ipip6-input", e::BAD_INNER), 1);
    l.no_leaks();
}

/// `n` IPv4 packets to the pod, from ipip1's far end fd00::2, each its inner TTL and payload
/// its own.
fn from_peer6_vector(n: u8) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let b = PacketBuilder::ipv4([198, 19, 203, 7], [198, 19, 0, 2], 64 - i).udp(2000, 1000);
            let mut v = Vec::new();
            b.write(&mut v, &[i; 30]).unwrap();
            from_peer6("fd00::2", 4, &v)
        })
        .collect()
}

/// The IPv6-outer packet for us goes from ip6-lookup straight to ipip6-input (not through
/// ip6-local), and a vector of one tunnel's plain packets is decapsulated by its first
/// packet's key: every one forwarded with the bytes and counters of the whole way.
#[test]
fn ipv6_outer_decap_skips_ip6_local_and_a_vector_of_one_tunnel_keeps_its_key() {
    let mut l = lab();
    let (if0, t1) = (l.if0, l.t1);
    let frames = from_peer6_vector(4);
    l.send_vector(if0, &frames);
    let out = Lab::take(&l.out1);
    assert_eq!(out.len(), 4);
    for (i, o) in out.iter().enumerate() {
        let (_, rest) = Ethernet2Header::from_slice(o).unwrap();
        let (ih, payload) = Ipv4Header::from_slice(rest).unwrap();
        assert_eq!(ih.source, [198, 19, 203, 7]);
        assert_eq!(ih.time_to_live, 63 - i as u8, "packet {i}");
        assert_eq!(ih.header_checksum, ih.calc_header_checksum());
        assert_eq!(&payload[8..], &[i as u8; 30]);
        assert_eq!(rest.len(), frames[i].len() - 14 - 40, "inner packet only");
    }
    assert_eq!(l.packets("ip6-local"), 0, "ip6-local was not on the way");
    assert_eq!(l.packets("ip6-input"), 4);
    assert_eq!(
        l.packets("ip4-input"),
        0,
        "the inner packets went to the lookup"
    );
    assert_eq!(l.error("ipip6-input", ipip::input_error::DECAPSULATED), 4);
    let c = &l.rt.stats().ifs[t1 as usize];
    assert_eq!(c.rx_packets.get(), 4);
    assert_eq!(c.rx_bytes.get(), 4 * (20 + 8 + 30));
    l.no_leaks();
}

/// In one vector after a plain IPv6-outer packet of the tunnel: an outer hop limit of 0
/// (ip6-input answers it), a destination-options header before the inner packet (ip6-local
/// decides: not straight after the fixed header, so not IPIP), an inner header with a bad
/// checksum and one with TTL 0 (ip4-input decides those on the tunnel), next header 41 with
/// an IPv4 packet inside, no inner packet at all, and an unknown source: none of them is the
/// first one's.
#[test]
fn ipv6_outer_packets_that_are_not_plain_take_the_whole_way() {
    let mut l = lab();
    let if0 = l.if0;
    let good = from_peer6("fd00::2", 4, &inner_to_pod());
    let mut hop0 = good.clone();
    hop0[14 + 7] = 0;
    let mut dest_opts = good[..54].to_vec();
    dest_opts[14 + 6] = 60;
    let payload = (good.len() - 54 + 8) as u16;
    dest_opts[18..20].copy_from_slice(&payload.to_be_bytes());
    dest_opts.extend_from_slice(&[4, 0, 1, 4, 0, 0, 0, 0]); // next 4, PadN
    dest_opts.extend_from_slice(&good[54..]);
    let o = 14 + 40;
    let mut bad_sum = good.clone();
    bad_sum[o + 10] ^= 0xff;
    let mut ttl0 = good.clone();
    ttl0[o + 8] = 0;
    ttl0[o + 10..o + 12].fill(0);
    let c = rvpp_dataplane::wire::checksum(&ttl0[o..o + 20]);
    ttl0[o + 10..o + 12].copy_from_slice(&c.to_be_bytes());
    let vector = [
        good.clone(),
        hop0,
        dest_opts,
        bad_sum,
        ttl0,
        from_peer6("fd00::2", 41, &inner_to_pod()),
        from_peer6("fd00::2", 4, &[]),
        from_peer6("fd00::9", 4, &inner_to_pod()),
        good,
    ];
    l.send_vector(if0, &vector);
    assert_eq!(Lab::take(&l.out1).len(), 2, "the two plain ones");
    use ipip::input_error as e;
    use rvpp_dataplane::nodes::ip6;
    assert_eq!(l.error("ip6-input", ip6::input_error::HOP_LIMIT_EXPIRED), 1);
    assert_eq!(
        l.packets("ip6-local"),
        2,
        "the destination options, and the empty one (too short for ip6-lookup to look into)"
    );
    assert_eq!(l.error("ip6-local", ip6::local_error::NO_PUNT), 1);
    assert_eq!(l.packets("ipip6-input"), 7);
    assert_eq!(l.error("ipip6-input", e::DECAPSULATED), 4);
    assert_eq!(l.error("ipip6-input", e::BAD_INNER), 2);
    assert_eq!(l.error("ipip6-input", e::NO_TUNNEL), 1);
    assert_eq!(l.error("ip4-input", ip4::input_error::BAD_CHECKSUM), 1);
    assert_eq!(l.error("ip4-input", ip4::input_error::TTL_EXPIRED), 1);
    l.no_leaks();
}

/// A feature on the uplink's ip6-local arc sees IPv6-outer tunnel packets before ipip6-input
/// does, and one on the tunnel's ip4-unicast arc sees the inner packets before their lookup:
/// the short ways are only for interfaces without them.
#[test]
fn ipv6_outer_local_and_unicast_features_still_see_tunnel_packets() {
    let (local, unicast) = (Default::default(), Default::default());
    let (l6, u4): (
        Arc<std::sync::atomic::AtomicU64>,
        Arc<std::sync::atomic::AtomicU64>,
    ) = (local, unicast);
    let mut l = lab_with(|b| {
        b.feature(
            rvpp_dataplane::feature::Feature::new("ip6-local", "test-local6-tap"),
            Box::new(LocalTap("test-local6-tap", l6.clone())),
        )
        .feature(
            rvpp_dataplane::feature::Feature::new("ip4-unicast", "test-unicast-tap"),
            Box::new(LocalTap("test-unicast-tap", u4.clone())),
        )
    });
    let (if0, t1) = (l.if0, l.t1);
    let seen = |c: &Arc<std::sync::atomic::AtomicU64>| c.load(std::sync::atomic::Ordering::Relaxed);
    l.fwd
        .feature_enable(if0, "ip6-local", "test-local6-tap", true)
        .unwrap();
    l.send_vector(if0, &from_peer6_vector(3));
    assert_eq!(
        Lab::take(&l.out1).len(),
        3,
        "decapsulated after the feature"
    );
    assert_eq!((seen(&l6), l.packets("ip6-local")), (3, 3));
    l.fwd
        .feature_enable(if0, "ip6-local", "test-local6-tap", false)
        .unwrap();
    l.fwd
        .feature_enable(t1, "ip4-unicast", "test-unicast-tap", true)
        .unwrap();
    l.send_vector(if0, &from_peer6_vector(3));
    assert_eq!(Lab::take(&l.out1).len(), 3);
    assert_eq!(
        l.packets("ip6-local"),
        3,
        "disabled: around ip6-local again"
    );
    assert_eq!(
        seen(&u4),
        3,
        "every inner packet through ip4-input and the feature"
    );
    assert_eq!(l.packets("ip4-input"), 3);
    l.fwd
        .feature_enable(t1, "ip4-unicast", "test-unicast-tap", false)
        .unwrap();
    l.send_vector(if0, &from_peer6_vector(3));
    assert_eq!(Lab::take(&l.out1).len(), 3);
    assert_eq!(
        (seen(&u4), l.packets("ip4-input")),
        (3, 3),
        "straight to the lookup"
    );
    assert_eq!(l.error("ipip6-input", ipip::input_error::DECAPSULATED), 9);
    l.no_leaks();
}

/// Over an IPv6 outer header too the encap node writes the uplink's Ethernet header with the
/// outer one when the uplink has no output features; with one (a pass-through tap on pg0's
/// ip6-output) the outer packet goes the long way, through ip6-lookup and ip6-rewrite. Both
/// write the same bytes, for each DSCP outcome.
#[test]
fn the_straight_ipv6_encap_writes_what_the_long_way_writes() {
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut l = lab_with(|b| {
        b.feature(
            rvpp_dataplane::feature::Feature::new("ip6-output", "test-out6-tap"),
            Box::new(LocalTap("test-out6-tap", seen.clone())),
        )
    });
    let (if0, if1, t1) = (l.if0, l.if1, l.t1);
    let mut frames = vec![];
    for flags in [
        0,
        ipip::tunnel_flags::SET_DF | ipip::tunnel_flags::COPY_DSCP,
    ] {
        let pods = [
            with_df(pod_frame([198, 19, 203, 7], 46), true),
            with_df(pod_frame([198, 19, 203, 8], 0), false),
        ];
        // The long way: the outer packets' lookup.
        let way = ("ip6-output", "test-out6-tap", ("ip6-lookup", 2));
        frames.extend(straight_and_long(
            &mut l,
            (t1, flags),
            (if0, if1),
            &pods,
            way,
        ));
    }
    assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 4);
    let outer = |f: &[u8]| etherparse::Ipv6Header::from_slice(&f[14..]).unwrap().0;
    let tcs: Vec<u8> = frames.iter().map(|f| outer(f).traffic_class >> 2).collect();
    assert_eq!(
        tcs,
        [10, 10, 46, 0],
        "the tunnel's DSCP, then the inner ones copied"
    );
    for f in &frames {
        let h = outer(f);
        assert_eq!(
            (h.next_header, h.hop_limit, h.payload_length as usize),
            (IpNumber::IPV4, 64, f.len() - 14 - 40)
        );
        let (eth, _) = Ethernet2Header::from_slice(f).unwrap();
        assert_eq!((eth.destination, eth.source), (PEER0, MAC0));
        assert_eq!(eth.ether_type, etherparse::EtherType::IPV6);
    }
    l.no_leaks();
}

/// An IPv6 pod's UDP frame from fd01::2 (on pg1) to `dst`, traffic class `tc`.
fn pod6_frame(dst: &str, tc: u8) -> Vec<u8> {
    let ip = etherparse::Ipv6Header {
        traffic_class: tc,
        next_header: IpNumber::UDP,
        hop_limit: 64,
        source: "fd01::2".parse::<std::net::Ipv6Addr>().unwrap().octets(),
        destination: dst.parse::<std::net::Ipv6Addr>().unwrap().octets(),
        ..Default::default()
    };
    let b = PacketBuilder::ethernet2(PEER1, MAC1)
        .ip(etherparse::IpHeaders::Ipv6(ip, Default::default()))
        .udp(1000, 2000);
    let mut v = Vec::new();
    b.write(&mut v, &[0x66; 40]).unwrap();
    v
}

/// An IPv6 packet (no L2 header) from the remote pod `src` to our pod fd01::2, hop limit
/// `hops`, `payload` after its UDP header.
fn inner6_to_pod(src: &str, hops: u8, payload: &[u8]) -> Vec<u8> {
    let s = src.parse::<std::net::Ipv6Addr>().unwrap().octets();
    let d = "fd01::2".parse::<std::net::Ipv6Addr>().unwrap().octets();
    let mut v = Vec::new();
    PacketBuilder::ipv6(s, d, hops)
        .udp(2000, 1000)
        .write(&mut v, payload)
        .unwrap();
    v
}

/// Dual-stack pods: an IPv6 pod packet routed into either tunnel is written in one window
/// with the uplink's header (protocol / next header 41), with the same bytes as the long way
/// (a pass-through tap on pg0's output of the outer family), for each DSCP / DF outcome.
#[test]
fn ipv6_inside_is_encapsulated_in_one_window_over_either_outer() {
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut l = lab_with(|b| {
        b.feature(
            rvpp_dataplane::feature::Feature::new("ip4-output", "test-out-tap"),
            Box::new(LocalTap("test-out-tap", seen.clone())),
        )
        .feature(
            rvpp_dataplane::feature::Feature::new("ip6-output", "test-out6-tap"),
            Box::new(LocalTap("test-out6-tap", seen.clone())),
        )
    });
    let (if0, if1, t0, t1) = (l.if0, l.if1, l.t0, l.t1);
    let mut frames4 = vec![];
    let mut frames6 = vec![];
    for flags in [
        0,
        ipip::tunnel_flags::SET_DF | ipip::tunnel_flags::COPY_DSCP,
        ipip::tunnel_flags::COPY_DF,
    ] {
        let pods = [pod6_frame("fd02::7", 46 << 2), pod6_frame("fd02::8", 0)];
        // IPv4 outer: the long way is the outer packets' ip4-lookup.
        let way = ("ip4-output", "test-out-tap", ("ip4-lookup", 2));
        frames4.extend(straight_and_long(
            &mut l,
            (t0, flags),
            (if0, if1),
            &pods,
            way,
        ));
        let pods = [pod6_frame("fd03::7", 46 << 2), pod6_frame("fd03::8", 0)];
        // IPv6 outer: the outer packets' and the inner ones' lookups.
        let way = ("ip6-output", "test-out6-tap", ("ip6-lookup", 4));
        frames6.extend(straight_and_long(
            &mut l,
            (t1, flags),
            (if0, if1),
            &pods,
            way,
        ));
    }
    assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 12);
    assert_eq!(l.error("ipip6-encap", ipip::encap_error::ENCAPSULATED), 24);
    for (i, f) in frames4.iter().enumerate() {
        let (h, rest) = Ipv4Header::from_slice(&f[14..]).unwrap();
        assert_eq!((h.protocol, h.time_to_live), (IpNumber::IPV6, 64));
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        assert_eq!(h.total_len as usize, f.len() - 14);
        let dscp = [10, 10, 46, 0, 10, 10][i];
        assert_eq!(h.dscp.value(), dscp, "packet {i}");
        assert_eq!(
            h.dont_fragment,
            (2..4).contains(&i),
            "packet {i}: SET_DF only"
        );
        let inner = etherparse::Ipv6Header::from_slice(rest).unwrap().0;
        assert_eq!(inner.hop_limit, 63);
    }
    for (i, f) in frames6.iter().enumerate() {
        let (h, rest) = etherparse::Ipv6Header::from_slice(&f[14..]).unwrap();
        assert_eq!((h.next_header, h.hop_limit), (IpNumber::IPV6, 64));
        assert_eq!(h.payload_length as usize, f.len() - 14 - 40);
        assert_eq!(
            h.traffic_class >> 2,
            [10, 10, 46, 0, 10, 10][i],
            "packet {i}"
        );
        let inner = etherparse::Ipv6Header::from_slice(rest).unwrap().0;
        assert_eq!(inner.hop_limit, 63);
        assert_eq!(inner.destination[15], 7 + (i % 2) as u8);
    }
    l.no_leaks();
}

/// Dual-stack pods: IPv6 inside either tunnel (protocol 41 over IPv4, next header 41 over
/// IPv6). A vector of one tunnel's plain packets goes straight to ip6-lookup, the first the
/// whole way and the rest by its key, with the bytes and counters of the whole way; no inner
/// packet passes ip6-input.
#[test]
fn ipv6_inside_decap_goes_straight_to_ip6_lookup() {
    let mut l = lab();
    let (if0, t0, t1) = (l.if0, l.t0, l.t1);
    let over4: Vec<Vec<u8>> = (0..4u8)
        .map(|i| {
            from_peer(
                [198, 18, 0, 2],
                41,
                &inner6_to_pod("fd02::7", 64 - i, &[i; 30]),
            )
        })
        .collect();
    let over6: Vec<Vec<u8>> = (0..4u8)
        .map(|i| from_peer6("fd00::2", 41, &inner6_to_pod("fd03::7", 64 - i, &[i; 30])))
        .collect();
    for (frames, outer, t) in [(&over4, 20, t0), (&over6, 40, t1)] {
        l.send_vector(if0, frames);
        let inner_len = |i: usize| frames[i].len() - 14 - outer;
        assert_inner6_run_to_pod(&Lab::take(&l.out1), &inner_len);
        let c = &l.rt.stats().ifs[t as usize];
        assert_eq!(c.rx_packets.get(), 4);
        assert_eq!(c.rx_bytes.get(), 4 * (40 + 8 + 30));
    }
    assert_eq!(
        l.packets("ip6-input"),
        4,
        "the IPv6 outer packets only: every inner one went straight to the lookup"
    );
    assert_eq!(l.packets("ip6-local"), 0);
    assert_eq!(l.error("ipip4-input", ipip::input_error::DECAPSULATED), 4);
    assert_eq!(l.error("ipip6-input", ipip::input_error::DECAPSULATED), 4);
    l.no_leaks();
}

/// In one vector after a plain IPv6-inside packet of the tunnel, the inner IPv6 packets that
/// ip6-input must judge go the whole way to it on the tunnel: hop limit 0 (answered with
/// time exceeded), a hop-by-hop header (counted, forwarded), a multicast source (dropped), a
/// payload longer than the packet (dropped), and an IPv4 packet with protocol 41 (dropped by
/// ipip4-input); the plain ones after them keep the key.
#[test]
fn ipv6_inside_packets_that_are_not_plain_take_the_whole_way() {
    use rvpp_dataplane::nodes::ip6;
    let mut l = lab();
    let if0 = l.if0;
    let peer = |inner: &[u8]| from_peer([198, 18, 0, 2], 41, inner);
    let good = inner6_to_pod("fd02::7", 64, b"plain");
    let mut hop0 = good.clone();
    hop0[7] = 0;
    let mut hbh = good[..40].to_vec();
    hbh[6] = 0;
    let payload = (good.len() - 40 + 8) as u16;
    hbh[4..6].copy_from_slice(&payload.to_be_bytes());
    hbh.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]); // next UDP, PadN
    hbh.extend_from_slice(&good[40..]);
    let mut mcast_src = good.clone();
    mcast_src[8] = 0xff;
    let mut long = good.clone();
    long[5] += 8;
    let vector = [
        peer(&good),
        peer(&hop0),
        peer(&hbh),
        peer(&mcast_src),
        peer(&long),
        peer(&inner_to_pod()),
        peer(&good),
        peer(&good),
    ];
    l.send_vector(if0, &vector);
    assert_eq!(
        Lab::take(&l.out1).len(),
        4,
        "the three plain ones and the hop-by-hop one"
    );
    assert_eq!(l.packets("ip6-input"), 4, "the four not plain inside");
    assert_eq!(l.error("ip6-input", ip6::input_error::HOP_LIMIT_EXPIRED), 1);
    assert_eq!(l.error("ip6-input", ip6::input_error::HOP_BY_HOP), 1);
    assert_eq!(l.error("ip6-input", ip6::input_error::BAD_ADDRESS), 1);
    assert_eq!(l.error("ip6-input", ip6::input_error::BAD_LENGTH), 1);
    assert_eq!(l.error("ipip4-input", ipip::input_error::BAD_INNER), 1);
    assert_eq!(l.error("ipip4-input", ipip::input_error::DECAPSULATED), 7);
    l.no_leaks();
}

#[path = "../../test-support/skip.rs"]
mod skip;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn scapy(script: &str, arg: &str) -> String {
    let out = std::process::Command::new("python3")
        .args(["-c", script, arg])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scapy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A second, independent decoder and builder: scapy decodes rvpp's IPIP (checksums recomputed
/// by scapy must match), and rvpp decapsulates a packet scapy built.
#[test]
fn scapy_agrees_on_ipip_bytes() {
    if !skip::need_python_module("scapy") {
        return;
    }
    let mut l = lab();
    let (if0, if1) = (l.if0, l.if1);
    l.send(if1, &pod_frame([198, 19, 202, 7], 0));
    let out = Lab::take(&l.out0);
    assert_eq!(out.len(), 1);
    let check = r#"
import sys
from scapy.all import Ether, IP, UDP
p = Ether(bytes.fromhex(sys.argv[1]))
o = p[IP]
i = o.payload
assert o.proto == 4 and o.ttl == 64 and o.flags == 0, o.show(dump=True)
assert (o.src, o.dst) == ("198.18.0.1", "198.18.0.2")
assert isinstance(i, IP) and i.dst == "198.19.202.7" and i.ttl == 63
for h in (o, i):
    want = IP(bytes(h)).chksum
    c = h.copy(); del c.chksum
    assert IP(bytes(c)).chksum == want, "ip checksum"
u = i[UDP]; c = i.copy(); del c[UDP].chksum
assert IP(bytes(c))[UDP].chksum == u.chksum, "inner udp checksum"
print("OK")
"#;
    assert_eq!(scapy(check, &hex(&out[0])), "OK");
    let build = r#"
import sys
from scapy.all import Ether, IP, UDP, Raw
p = (Ether(src="02:00:00:00:00:b0", dst="02:00:00:00:00:a0")
     / IP(src="198.18.0.2", dst="198.18.0.1", proto=4)
     / IP(src="198.19.202.9", dst="198.19.0.2") / UDP(sport=5, dport=6) / Raw(b"scapy"))
print(bytes(p).hex())
"#;
    let frame = scapy(build, "");
    let bytes: Vec<u8> = (0..frame.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&frame[i..i + 2], 16).unwrap())
        .collect();
    l.send(if0, &bytes);
    let got = Lab::take(&l.out1);
    assert_eq!(
        got.len(),
        1,
        "scapy's IPIP packet decapsulated and forwarded"
    );
    let (_, rest) = Ethernet2Header::from_slice(&got[0]).unwrap();
    let (ih, payload) = Ipv4Header::from_slice(rest).unwrap();
    assert_eq!(ih.source, [198, 19, 202, 9]);
    assert!(payload.ends_with(b"scapy"));
    l.no_leaks();
}

/// Dual-stack pods, checked by scapy: rvpp's IPv6-in-IPv4 (protocol 41) and IPv6-in-IPv6
/// (next header 41) decode as scapy's IPv6 inside with every length and checksum as scapy
/// computes them, and a run of scapy-built packets of each kind is decapsulated (the short
/// way after the first) and forwarded to the IPv6 pod.
#[test]
fn scapy_agrees_on_ipv6_inside_ipip_bytes() {
    if !skip::need_python_module("scapy") {
        return;
    }
    let mut l = lab();
    let (if0, if1) = (l.if0, l.if1);
    l.send_vector(if1, &[pod6_frame("fd02::7", 0), pod6_frame("fd03::7", 0)]);
    let out = Lab::take(&l.out0);
    assert_eq!(out.len(), 2);
    let check = r#"
import sys
from scapy.all import Ether, IP, IPv6, UDP
for i, h in enumerate(sys.argv[1].split(",")):
    p = Ether(bytes.fromhex(h))
    o = p[1]
    inner = o.payload
    assert isinstance(inner, IPv6), p.show(dump=True)
    assert inner.dst == ("fd02::7", "fd03::7")[i] and inner.hlim == 63
    if i == 0:
        assert isinstance(o, IP) and o.proto == 41 and o.ttl == 64, o.show(dump=True)
        assert (o.src, o.dst) == ("198.18.0.1", "198.18.0.2")
        c = o.copy(); del c.chksum; del c.len
        assert IP(bytes(c)).chksum == o.chksum and IP(bytes(c)).len == o.len
    else:
        assert isinstance(o, IPv6) and o.nh == 41 and o.hlim == 64, o.show(dump=True)
        assert (o.src, o.dst) == ("fd00::1", "fd00::2")
        c = o.copy(); del c.plen
        assert IPv6(bytes(c)).plen == o.plen
    c = inner.copy(); del c.plen
    assert IPv6(bytes(c)).plen == inner.plen
print("OK")
"#;
    let arg = out.iter().map(|f| hex(f)).collect::<Vec<_>>().join(",");
    assert_eq!(scapy(check, &arg), "OK");
    let build = r#"
from scapy.all import Ether, IP, IPv6, UDP, Raw
e = Ether(src="02:00:00:00:00:b0", dst="02:00:00:00:00:a0")
for i in range(3):
    inner = IPv6(src="fd02::9", dst="fd01::2") / UDP(sport=5, dport=6) / Raw(b"scapy%d" % i)
    print(bytes(e / IP(src="198.18.0.2", dst="198.18.0.1", proto=41) / inner).hex())
    print(bytes(e / IPv6(src="fd00::2", dst="fd00::1", nh=41) / inner).hex())
"#;
    let frames: Vec<Vec<u8>> = scapy(build, "")
        .lines()
        .map(|h| {
            (0..h.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
                .collect()
        })
        .collect();
    assert_eq!(frames.len(), 6);
    let (over4, over6): (Vec<_>, Vec<_>) = frames
        .iter()
        .cloned()
        .enumerate()
        .partition(|(i, _)| i % 2 == 0);
    for run in [over4, over6] {
        let run: Vec<Vec<u8>> = run.into_iter().map(|(_, f)| f).collect();
        l.send_vector(if0, &run);
    }
    let got = Lab::take(&l.out1);
    assert_eq!(got.len(), 6, "scapy's packets decapsulated and forwarded");
    for (i, g) in got.iter().enumerate() {
        let (ih, payload) = etherparse::Ipv6Header::from_slice(&g[14..]).unwrap();
        assert_eq!((ih.source[1], ih.hop_limit), (2, 63));
        assert!(payload.ends_with(format!("scapy{}", i % 3).as_bytes()));
    }
    assert_eq!(l.error("ipip4-input", ipip::input_error::DECAPSULATED), 3);
    assert_eq!(l.error("ipip6-input", ipip::input_error::DECAPSULATED), 3);
    l.no_leaks();
}

#[test]
fn ipv4_outer_copies_or_sets_dscp_and_df() {
    let mut l = lab();
    let if1 = l.if1;
    let mut ts = (*l.table.load()).clone();
    let t0 = *ts.find(a("198.18.0.1"), a("198.18.0.2")).unwrap();
    ts.insert(ipip::Tunnel {
        flags: ipip::tunnel_flags::COPY_DSCP | ipip::tunnel_flags::COPY_DF,
        ..t0
    });
    l.table.publish(ts.clone());
    // The inner header with DF set or clear (checksum redone).
    let with_df = |dscp: u8, df: bool| {
        let mut f = pod_frame([198, 19, 202, 7], dscp);
        f[14 + 6] = if df {
            f[14 + 6] | 0x40
        } else {
            f[14 + 6] & !0x40
        };
        f[14 + 10..14 + 12].fill(0);
        let c = rvpp_dataplane::wire::checksum(&f[14..34]);
        f[14 + 10..14 + 12].copy_from_slice(&c.to_be_bytes());
        f
    };
    l.send(if1, &with_df(46, true));
    l.send(if1, &with_df(10, false));
    ts.insert(ipip::Tunnel {
        flags: ipip::tunnel_flags::SET_DF,
        dscp: 12,
        ..t0
    });
    l.table.publish(ts);
    l.send(if1, &with_df(46, false));
    let out = Lab::take(&l.out0);
    assert_eq!(out.len(), 3);
    let want = [(46, true), (10, false), (12, true)];
    for (f, (dscp, df)) in out.iter().zip(want) {
        let (outer, _) = Ipv4Header::from_slice(&f[14..]).unwrap();
        assert_eq!((outer.dscp.value(), outer.dont_fragment), (dscp, df));
        assert_eq!(outer.header_checksum, outer.calc_header_checksum());
        assert_eq!(outer.total_len as usize, f.len() - 14);
    }
    l.no_leaks();
}

#[test]
fn encap_follows_a_route_change_of_the_uplink() {
    let mut l = lab();
    let if1 = l.if1;
    l.send(if1, &pod_frame([198, 19, 202, 7], 0));
    assert_eq!(Lab::take(&l.out0).len(), 1);
    // The remote node is now reached through pg1; then the host route goes again.
    let host = Prefix::parse("198.18.0.2/32").unwrap();
    l.fwd
        .route_add(0, host, vec![Path::via(a("198.19.0.2"), Some(if1))])
        .unwrap();
    l.send(if1, &pod_frame([198, 19, 202, 7], 0));
    assert!(Lab::take(&l.out0).is_empty());
    let out = Lab::take(&l.out1);
    assert_eq!(out.len(), 1);
    let (eth, rest) = Ethernet2Header::from_slice(&out[0]).unwrap();
    assert_eq!((eth.destination, eth.source), (PEER1, MAC1));
    let (outer, _) = Ipv4Header::from_slice(rest).unwrap();
    assert_eq!(outer.destination, [198, 18, 0, 2]);
    l.fwd.route_del(0, host).unwrap();
    l.send(if1, &pod_frame([198, 19, 202, 7], 0));
    assert_eq!(Lab::take(&l.out0).len(), 1);
    assert!(Lab::take(&l.out1).is_empty());
    l.no_leaks();
}

/// A pod's TCP super-frame into an IPIP tunnel (IPv4 and IPv6 outer) leaves the uplink as
/// segments with right outer and inner headers and checksums; so does a packet that left its
/// checksum to the device.
#[test]
fn a_pods_tcp_super_frame_leaves_ipip_as_checked_segments() {
    use common::tunnel_offload::*;
    let mut l = lab();
    for (dst, v6) in [([198, 19, 202, 9], false), ([198, 19, 203, 9], true)] {
        let f = pod_tcp(PEER1, MAC1, [198, 19, 0, 2], dst, 4000);
        inject_offload(&mut l.rt, l.if1, &f, Some(1400));
        let out = Lab::take(&l.out0);
        assert_eq!(check_segments(&out, v6, Encap::Ipip, 1400, 4000), 3);
        let f = pod_tcp(PEER1, MAC1, [198, 19, 0, 2], dst, 333);
        inject_offload(&mut l.rt, l.if1, &f, None);
        let out = Lab::take(&l.out0);
        assert_eq!(check_segments(&out, v6, Encap::Ipip, 1400, 333), 1);
    }
    l.no_leaks();
}

/// A pod's super-frame whose segments would not fit the uplink once the IPv6 outer header is
/// on is answered with frag-needed toward the pod, carrying the MTU that fits, and not sent.
#[test]
fn a_segment_over_the_uplink_once_encapsulated_tells_the_pod_the_mtu() {
    use common::tunnel_offload::*;
    let mut l = lab();
    l.fwd.set_protocol_mtu(l.if0, 1500, 1400).unwrap();
    let f = pod_tcp(PEER1, MAC1, [198, 19, 0, 2], [198, 19, 203, 9], 4000);
    inject_offload(&mut l.rt, l.if1, &f, Some(1400));
    assert!(Lab::take(&l.out0).is_empty(), "nothing over the uplink");
    let back = Lab::take(&l.out1);
    assert_eq!(back.len(), 1);
    let (ip, icmp) = Ipv4Header::from_slice(&back[0][14..]).unwrap();
    assert_eq!(ip.destination, [198, 19, 0, 2]);
    assert_eq!((icmp[0], icmp[1]), (3, 4));
    assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1400 - 40);
    assert_eq!(l.error("ipip4-encap", ipip::encap_error::TOO_BIG), 1);
    // At the MTU it was told, the pod's next super-frame goes through.
    inject_offload(&mut l.rt, l.if1, &f, Some(1360 - 40));
    assert_eq!(
        check_segments(&Lab::take(&l.out0), true, Encap::Ipip, 1320, 4000),
        4
    );
    l.no_leaks();
}
