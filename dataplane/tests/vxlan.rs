//! VXLAN encap and decap through the whole graph, the bytes checked with etherparse.
//!
//! Topology: pg0 is the uplink (198.18.0.1/24, remote VTEP 198.18.0.2 behind PEER0); pg1 is a
//! pod-side link (198.19.0.1/24, pod 198.19.0.2 behind PEER1); vxlan_tunnel0 (L2 mode, as a
//! Linux vxlan.calico peer expects) has 198.18.128.1/24 and a static neighbour 198.18.128.2
//! with the remote VTEP MAC; 198.19.200.0/24 (the remote node's pod block) is routed through it.

mod common;
use common::*;
use etherparse::{Ethernet2Header, IpNumber, Ipv4Header, PacketBuilder, SlicedPacket};
use rvpp_dataplane::buffer::BufferPool;
use rvpp_dataplane::feature::FeatureTables;
use rvpp_dataplane::forwarding::{Forwarding, Path, Prefix};
use rvpp_dataplane::graph::{DeviceNodes, GraphBuilder};
use rvpp_dataplane::nodes::{standard_with, vxlan};
use rvpp_dataplane::runtime::Runtime;
use rvpp_dataplane::tables::Shared;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// Our tunnel's MAC and the remote VTEP's (felix: 0x66 + sha1(nodename)[..5]).
const TMAC: [u8; 6] = [2, 0, 0, 0, 0, 0xc0];
const VTEP_MAC: [u8; 6] = [0x66, 1, 2, 3, 4, 5];
const VNI: u32 = 4096;

struct Lab {
    pool: Arc<BufferPool>,
    fwd: Forwarding,
    rt: Runtime,
    table: Arc<vxlan::Table>,
    /// vxlan_tunnel1: IPv6 outer, L3 mode (calico-vpp's bare IP), 198.19.201.0/24 through it.
    tun6: u32,
    out0: Frames,
    out1: Frames,
    if0: u32,
    if1: u32,
    tun: u32,
}

fn v4(a: &str) -> IpAddr {
    IpAddr::V4(a.parse::<Ipv4Addr>().unwrap())
}

/// A tunnel row between `src` and `dst` (port 4789, table 0).
fn tunnel(sw: u32, instance: u32, (src, dst): (&str, &str), vni: u32, l3: bool) -> vxlan::Tunnel {
    vxlan::Tunnel {
        sw_if_index: sw,
        instance,
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        dst_port: 4789,
        src_port: 4789,
        vni,
        encap_fib: 0,
        encap_vrf_id: 0,
        l3,
        decap_next_index: u32::MAX,
    }
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
    let tun = fwd
        .interface_add("vxlan_tunnel0", "vxlan", TMAC, true, 1450)
        .unwrap();
    let tun6 = fwd
        .interface_add("vxlan_tunnel1", "vxlan", [0; 6], false, 1430)
        .unwrap();
    fwd.set_admin_up(tun6, true).unwrap();
    fwd.set_unnumbered(tun6, Some(if0)).unwrap();
    fwd.address_add(if0, Prefix::parse("fd00::1/64").unwrap())
        .unwrap();
    fwd.neighbor_add(if0, "fd00::2".parse().unwrap(), PEER0, true)
        .unwrap();
    fwd.route_add(
        0,
        Prefix::parse("198.19.201.0/24").unwrap(),
        vec![Path::attached(tun6)],
    )
    .unwrap();
    fwd.feature_enable(tun6, "ip4-output", "vxlan4-encap", true)
        .unwrap();
    for (sw, a) in [
        (if0, "198.18.0.1/24"),
        (if1, "198.19.0.1/24"),
        (tun, "198.18.128.1/24"),
    ] {
        fwd.address_add(sw, Prefix::parse(a).unwrap()).unwrap();
        fwd.set_admin_up(sw, true).unwrap();
    }
    fwd.neighbor_add(if0, v4("198.18.0.2"), PEER0, true)
        .unwrap();
    fwd.neighbor_add(if1, v4("198.19.0.2"), PEER1, true)
        .unwrap();
    fwd.neighbor_add(tun, v4("198.18.128.2"), VTEP_MAC, true)
        .unwrap();
    fwd.route_add(
        0,
        Prefix::parse("198.19.200.0/24").unwrap(),
        vec![Path::via(v4("198.18.128.2"), Some(tun))],
    )
    .unwrap();
    fwd.feature_enable(tun, "ip4-output", "vxlan4-encap", true)
        .unwrap();
    fwd.feature_enable(tun, "ip6-output", "vxlan6-encap", true)
        .unwrap();
    let table = tables.get::<vxlan::Table>();
    let mut t = vxlan::Tunnels::default();
    t.insert(tunnel(tun, 0, ("198.18.0.1", "198.18.0.2"), VNI, false));
    t.insert(tunnel(tun6, 1, ("fd00::1", "fd00::2"), VNI, true));
    table.publish(t);
    let mut rt = Runtime::new(graph, pool.local(), shared, 0, "test".into()).unwrap();
    let (out0, out1) = (Frames::default(), Frames::default());
    rt.set_tx(if0, Box::new(Capture(out0.clone()))).unwrap();
    rt.set_tx(if1, Box::new(Capture(out1.clone()))).unwrap();
    Lab {
        pool,
        fwd,
        rt,
        table,
        tun6,
        out0,
        out1,
        if0,
        if1,
        tun,
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

/// A pod's UDP packet to the remote pod block, as it arrives on pg1.
fn pod_frame() -> Vec<u8> {
    let b = PacketBuilder::ethernet2(PEER1, MAC1)
        .ipv4([198, 19, 0, 2], [198, 19, 200, 5], 64)
        .udp(1000, 2000);
    let mut v = Vec::new();
    b.write(&mut v, &[0x5a; 100]).unwrap();
    v
}

/// What a Linux vxlan.calico peer sends: outer IPv4/UDP 4789 from its VTEP to ours, VXLAN with
/// `vni` and `flags`, then an inner Ethernet frame to our tunnel MAC carrying `inner_ip`.
fn peer_frame(vni: u32, flags: u8, inner_ip: &[u8]) -> Vec<u8> {
    let mut inner = Vec::new();
    Ethernet2Header {
        destination: TMAC,
        source: VTEP_MAC,
        ether_type: etherparse::EtherType::IPV4,
    }
    .write(&mut inner)
    .unwrap();
    inner.extend_from_slice(inner_ip);
    let mut payload = vec![flags, 0, 0, 0];
    payload.extend_from_slice(&(vni << 8).to_be_bytes());
    payload.extend_from_slice(&inner);
    let b = PacketBuilder::ethernet2(PEER0, MAC0)
        .ipv4([198, 18, 0, 2], [198, 18, 0, 1], 64)
        .udp(51000, 4789);
    let mut v = Vec::new();
    b.write(&mut v, &payload).unwrap();
    v
}

fn inner_ip_to_pod() -> Vec<u8> {
    let b = PacketBuilder::ipv4([198, 19, 200, 5], [198, 19, 0, 2], 63).udp(2000, 1000);
    let mut v = Vec::new();
    b.write(&mut v, b"from the linux node").unwrap();
    v
}

#[test]
fn encap_builds_outer_ipv4_udp_vxlan_and_inner_ethernet() {
    let mut l = lab();
    let (if1, tun) = (l.if1, l.tun);
    l.send(if1, &pod_frame());
    let out = Lab::take(&l.out0);
    assert_eq!(out.len(), 1, "encapsulated packet leaves by the uplink");
    assert!(Lab::take(&l.out1).is_empty());
    let p = SlicedPacket::from_ethernet(&out[0]).unwrap();
    let Some(etherparse::LinkSlice::Ethernet2(eth)) = &p.link else {
        panic!("no ethernet")
    };
    assert_eq!((eth.destination(), eth.source()), (PEER0, MAC0));
    let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
        panic!("not ipv4")
    };
    let h = ip.header().to_header();
    assert_eq!(
        (h.source, h.destination),
        ([198, 18, 0, 1], [198, 18, 0, 2])
    );
    assert_eq!(h.protocol, IpNumber::UDP);
    assert_eq!(h.time_to_live, 64, "outer TTL is set, not decremented");
    assert_eq!(h.header_checksum, h.calc_header_checksum());
    let Some(etherparse::TransportSlice::Udp(udp)) = &p.transport else {
        panic!("not udp")
    };
    assert_eq!(udp.destination_port(), 4789);
    assert!(udp.source_port() >= 49152);
    assert_eq!(udp.checksum(), 0);
    let vx = udp.payload();
    assert_eq!(&vx[..8], &[0x08, 0, 0, 0, 0x00, 0x10, 0x00, 0]);
    let inner = SlicedPacket::from_ethernet(&vx[8..]).unwrap();
    let Some(etherparse::LinkSlice::Ethernet2(ieth)) = &inner.link else {
        panic!("no inner ethernet")
    };
    assert_eq!((ieth.destination(), ieth.source()), (VTEP_MAC, TMAC));
    let Some(etherparse::NetSlice::Ipv4(iip)) = &inner.net else {
        panic!("inner not ipv4")
    };
    let ih = iip.header().to_header();
    assert_eq!(ih.destination, [198, 19, 200, 5]);
    assert_eq!(ih.time_to_live, 63, "inner TTL decremented once");
    assert_eq!(ih.header_checksum, ih.calc_header_checksum());
    assert_eq!(ip.payload().payload.len(), 8 + 8 + 14 + 20 + 8 + 100);
    assert_eq!(l.error("vxlan4-encap", vxlan::encap_error::ENCAPSULATED), 1);
    // The same inner flow keeps its source port; another flow (almost surely) moves.
    let first = udp.source_port();
    l.send(if1, &pod_frame());
    let again = Lab::take(&l.out0);
    let p2 = SlicedPacket::from_ethernet(&again[0]).unwrap();
    let Some(etherparse::TransportSlice::Udp(u2)) = &p2.transport else {
        panic!("not udp")
    };
    assert_eq!(u2.source_port(), first);
    let _ = tun;
    l.no_leaks();
}

#[test]
fn decap_hands_the_inner_frame_to_the_tunnel_interface() {
    let mut l = lab();
    let if0 = l.if0;
    l.send(if0, &peer_frame(VNI, 0x08, &inner_ip_to_pod()));
    let out = Lab::take(&l.out1);
    assert_eq!(out.len(), 1, "inner packet forwarded to the pod");
    let (eth, rest) = Ethernet2Header::from_slice(&out[0]).unwrap();
    assert_eq!((eth.destination, eth.source), (PEER1, MAC1));
    let (ip, payload) = Ipv4Header::from_slice(rest).unwrap();
    assert_eq!(ip.source, [198, 19, 200, 5]);
    assert_eq!(ip.time_to_live, 62);
    assert!(payload.ends_with(b"from the linux node"));
    assert_eq!(l.error("vxlan4-input", vxlan::input_error::DECAPSULATED), 1);
    l.no_leaks();
}

/// Outer IPv4/UDP to `port` from the remote VTEP, VXLAN with `vni` and `flags`, then bare IP
/// (calico-vpp's L3 mode).
fn peer_l3_frame(vni: u32, flags: u8, port: u16, inner_ip: &[u8]) -> Vec<u8> {
    let mut payload = vec![flags, 0, 0, 0];
    payload.extend_from_slice(&(vni << 8).to_be_bytes());
    payload.extend_from_slice(inner_ip);
    let b = PacketBuilder::ethernet2(PEER0, MAC0)
        .ipv4([198, 18, 0, 2], [198, 18, 0, 1], 64)
        .udp(51000, port);
    let mut v = Vec::new();
    b.write(&mut v, &payload).unwrap();
    v
}

/// The lab's L2 tunnel beside an L3-mode one over IPv4 (vxlan_tunnel2, VNI + 1) between the
/// same VTEPs.
fn lab_l3() -> Lab {
    let mut l = lab();
    let t2 = l
        .fwd
        .interface_add("vxlan_tunnel2", "vxlan", [0; 6], false, 1450)
        .unwrap();
    l.fwd.set_admin_up(t2, true).unwrap();
    l.fwd.set_unnumbered(t2, Some(l.if0)).unwrap();
    let mut t = (*l.table.load()).clone();
    t.insert(tunnel(t2, 2, ("198.18.0.1", "198.18.0.2"), VNI + 1, true));
    l.table.publish(t);
    l
}

/// Packets a node has processed so far.
fn packets(l: &Lab, node: &str) -> u64 {
    let i = l.rt.graph().index(node).unwrap() as usize;
    l.rt.stats().nodes[i].vectors.get()
}

/// UDP to 4789 goes from ip4-lookup straight to vxlan4-input; in one vector, L3-mode packets
/// of one tunnel after the first are decapsulated by its key, while an unknown VNI, a header
/// without the I flag, the L2 tunnel's frame, another UDP port (to ip4-local) and an inner
/// header with a bad checksum each take their own way.
#[test]
fn decap_skips_ip4_local_and_only_plain_packets_keep_the_key() {
    let mut l = lab_l3();
    let if0 = l.if0;
    let good = peer_l3_frame(VNI + 1, 0x08, 4789, &inner_ip_to_pod());
    let mut bad_sum = good.clone();
    bad_sum[14 + 20 + 16 + 10] ^= 0xff;
    let vector = [
        good.clone(),
        good.clone(),
        peer_l3_frame(VNI + 2, 0x08, 4789, &inner_ip_to_pod()),
        peer_l3_frame(VNI + 1, 0x00, 4789, &inner_ip_to_pod()),
        peer_frame(VNI, 0x08, &inner_ip_to_pod()),
        peer_l3_frame(VNI + 1, 0x08, 4790, &inner_ip_to_pod()),
        bad_sum,
        good,
    ];
    l.send_vector(if0, &vector);
    let out = Lab::take(&l.out1);
    assert_eq!(out.len(), 4, "three L3 packets and the L2 one");
    for o in &out {
        let (ip, payload) = Ipv4Header::from_slice(&o[14..]).unwrap();
        assert_eq!(ip.source, [198, 19, 200, 5]);
        assert_eq!(ip.time_to_live, 62);
        assert_eq!(ip.header_checksum, ip.calc_header_checksum());
        assert!(payload.ends_with(b"from the linux node"));
        assert_eq!(o.len(), 14 + inner_ip_to_pod().len());
    }
    use vxlan::input_error as e;
    assert_eq!(l.error("vxlan4-input", e::DECAPSULATED), 5);
    assert_eq!(l.error("vxlan4-input", e::NO_TUNNEL), 1);
    assert_eq!(l.error("vxlan4-input", e::BAD_FLAGS), 1);
    let bad = rvpp_dataplane::nodes::ip4::input_error::BAD_CHECKSUM;
    assert_eq!(
        l.error("ip4-input", bad),
        1,
        "the inner header, on the tunnel"
    );
    assert_eq!(packets(&l, "vxlan4-input"), 7);
    assert_eq!(packets(&l, "ip4-local"), 1, "UDP to 4790 only");
    let no_punt = rvpp_dataplane::nodes::ip4::local_error::NO_PUNT;
    assert_eq!(l.error("ip4-local", no_punt), 1);
    l.no_leaks();
}

/// The encap node writes the uplink's Ethernet header with the outer ones when the uplink
/// has no output features; with one (a pass-through tap on pg0's ip4-output) the outer packet
/// goes the long way, through ip4-lookup and ip4-rewrite. Both write the same bytes.
#[test]
fn the_straight_encap_writes_what_the_long_way_writes() {
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut l = lab_with(|b| {
        b.feature(
            rvpp_dataplane::feature::Feature::new("ip4-output", "test-out-tap"),
            Box::new(Tap(seen.clone())),
        )
    });
    let (if0, if1) = (l.if0, l.if1);
    let pod = |sport: u16| {
        let b = PacketBuilder::ethernet2(PEER1, MAC1)
            .ipv4([198, 19, 0, 2], [198, 19, 200, 5], 64)
            .udp(sport, 2000);
        let mut v = Vec::new();
        b.write(&mut v, &[0x5a; 100]).unwrap();
        v
    };
    let send = |l: &mut Lab| {
        l.send_vector(if1, &[pod(1000), pod(1001), pod(1002)]);
        Lab::take(&l.out0)
    };
    let straight = send(&mut l);
    assert_eq!(
        packets(&l, "ip4-lookup"),
        3,
        "the pod packets' lookups only"
    );
    l.fwd
        .feature_enable(if0, "ip4-output", "test-out-tap", true)
        .unwrap();
    let long = send(&mut l);
    assert_eq!(
        packets(&l, "ip4-lookup"),
        9,
        "the long way: a second lookup"
    );
    assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 3);
    assert_eq!(straight.len(), 3);
    assert_eq!(straight, long);
    for f in &straight {
        let (h, _) = Ipv4Header::from_slice(&f[14..]).unwrap();
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        assert_eq!(h.total_len as usize, f.len() - 14);
    }
    l.no_leaks();
}

/// A feature that counts what it sees and passes it on along its arc.
struct Tap(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl rvpp_dataplane::graph::Node for Tap {
    fn info(&self) -> rvpp_dataplane::graph::NodeInfo {
        rvpp_dataplane::graph::NodeInfo::internal("test-out-tap", &[], &[])
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
        self.0
            .fetch_add(bufs.len() as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn bad_vni_flags_and_truncation_are_counted_drops() {
    let mut l = lab();
    let if0 = l.if0;
    l.send(if0, &peer_frame(VNI + 1, 0x08, &inner_ip_to_pod()));
    l.send(if0, &peer_frame(VNI, 0x00, &inner_ip_to_pod()));
    // A VXLAN header cut short: UDP to 4789 with 4 bytes of payload.
    let b = PacketBuilder::ethernet2(PEER0, MAC0)
        .ipv4([198, 18, 0, 2], [198, 18, 0, 1], 64)
        .udp(51000, 4789);
    let mut short = Vec::new();
    b.write(&mut short, &[8, 0, 0, 0]).unwrap();
    l.send(if0, &short);
    // A valid header with an inner frame too short for Ethernet.
    let mut tiny = peer_frame(VNI, 0x08, &[]);
    tiny.truncate(tiny.len() - 4);
    let n = tiny.len();
    // Fix the outer lengths for the cut (IPv4 total length, UDP length; checksum redone).
    let ip_len = (n - 14) as u16;
    tiny[16..18].copy_from_slice(&ip_len.to_be_bytes());
    tiny[24..26].fill(0);
    let c = rvpp_dataplane::wire::checksum(&tiny[14..34]);
    tiny[24..26].copy_from_slice(&c.to_be_bytes());
    tiny[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
    tiny[40..42].fill(0);
    l.send(if0, &tiny);
    assert!(Lab::take(&l.out1).is_empty());
    assert!(Lab::take(&l.out0).is_empty());
    use vxlan::input_error as e;
    assert_eq!(l.error("vxlan4-input", e::NO_TUNNEL), 1);
    assert_eq!(l.error("vxlan4-input", e::BAD_FLAGS), 1);
    assert_eq!(l.error("vxlan4-input", e::SHORT), 1);
    assert_eq!(l.error("vxlan4-input", e::BAD_INNER), 1);
    assert_eq!(l.error("vxlan4-input", e::DECAPSULATED), 0);
    l.no_leaks();
}

#[test]
fn a_tunnel_routed_into_itself_is_a_counted_drop() {
    let mut l = lab();
    let (if1, tun) = (l.if1, l.tun);
    // The remote VTEP itself is routed through the tunnel: every outer packet re-enters it.
    l.fwd
        .route_add(
            0,
            Prefix::parse("198.18.0.2/32").unwrap(),
            vec![Path::via(v4("198.18.128.2"), Some(tun))],
        )
        .unwrap();
    l.send(if1, &pod_frame());
    assert!(Lab::take(&l.out0).is_empty());
    assert_eq!(l.error("vxlan4-encap", vxlan::encap_error::LOOP), 1);
    l.no_leaks();
}

#[test]
fn a_deleted_tunnel_drops_both_ways() {
    let mut l = lab();
    let (if0, if1, tun) = (l.if0, l.if1, l.tun);
    let mut t = (*l.table.load()).clone();
    t.remove(tun);
    l.table.publish(t);
    l.send(if1, &pod_frame());
    l.send(if0, &peer_frame(VNI, 0x08, &inner_ip_to_pod()));
    assert!(Lab::take(&l.out0).is_empty());
    assert!(Lab::take(&l.out1).is_empty());
    assert_eq!(l.error("vxlan4-encap", vxlan::encap_error::NO_TUNNEL), 1);
    assert_eq!(l.error("vxlan4-input", vxlan::input_error::NO_TUNNEL), 1);
    l.no_leaks();
}

/// An IPv6 VXLAN packet from the remote VTEP fd00::2 carrying `inner` (bare IP, L3 mode);
/// etherparse computes the UDP checksum.
fn peer6_frame(vni: u32, inner: &[u8]) -> Vec<u8> {
    let mut payload = vec![0x08, 0, 0, 0];
    payload.extend_from_slice(&(vni << 8).to_be_bytes());
    payload.extend_from_slice(inner);
    let src: std::net::Ipv6Addr = "fd00::2".parse().unwrap();
    let dst: std::net::Ipv6Addr = "fd00::1".parse().unwrap();
    let b = PacketBuilder::ethernet2(PEER0, MAC0)
        .ipv6(src.octets(), dst.octets(), 64)
        .udp(50000, 4789);
    let mut v = Vec::new();
    b.write(&mut v, &payload).unwrap();
    v
}

#[test]
fn ipv6_outer_l3_mode_encap_has_a_valid_udp_checksum_and_bare_inner_ip() {
    let mut l = lab();
    let if1 = l.if1;
    let b = PacketBuilder::ethernet2(PEER1, MAC1)
        .ipv4([198, 19, 0, 2], [198, 19, 201, 9], 64)
        .udp(1000, 2000);
    let mut f = Vec::new();
    b.write(&mut f, &[7; 64]).unwrap();
    l.send(if1, &f);
    let out = Lab::take(&l.out0);
    assert_eq!(out.len(), 1);
    let p = SlicedPacket::from_ethernet(&out[0]).unwrap();
    let Some(etherparse::NetSlice::Ipv6(ip6)) = &p.net else {
        panic!("not ipv6")
    };
    let h6 = ip6.header().to_header();
    assert_eq!(h6.hop_limit, 64);
    assert_eq!(
        std::net::Ipv6Addr::from(h6.destination),
        "fd00::2".parse::<std::net::Ipv6Addr>().unwrap()
    );
    let Some(etherparse::TransportSlice::Udp(udp)) = &p.transport else {
        panic!("not udp")
    };
    assert_eq!(udp.destination_port(), 4789);
    let want = udp
        .to_header()
        .calc_checksum_ipv6(&h6, udp.payload())
        .unwrap();
    assert_eq!(udp.checksum(), want, "UDP checksum over IPv6");
    let vx = udp.payload();
    assert_eq!(&vx[..8], &[0x08, 0, 0, 0, 0x00, 0x10, 0x00, 0]);
    let (inner, _) = Ipv4Header::from_slice(&vx[8..]).unwrap();
    assert_eq!(
        inner.destination,
        [198, 19, 201, 9],
        "bare IP after VXLAN (L3 mode)"
    );
    assert_eq!(inner.time_to_live, 63);
    l.no_leaks();
}

#[test]
fn ipv6_outer_decap_to_ip4_input_and_checksum_drops() {
    let mut l = lab();
    let if0 = l.if0;
    l.send(if0, &peer6_frame(VNI, &inner_ip_to_pod()));
    let out = Lab::take(&l.out1);
    assert_eq!(out.len(), 1, "inner packet forwarded to the pod");
    let (_, rest) = Ethernet2Header::from_slice(&out[0]).unwrap();
    let (ip, _) = Ipv4Header::from_slice(rest).unwrap();
    assert_eq!(ip.source, [198, 19, 200, 5]);
    assert_eq!(l.error("vxlan6-input", vxlan::input_error::DECAPSULATED), 1);
    // A corrupted checksum and a zero one are both refused over IPv6.
    let mut bad = peer6_frame(VNI, &inner_ip_to_pod());
    let c = 14 + 40 + 6;
    bad[c] ^= 0x55;
    l.send(if0, &bad);
    bad[c..c + 2].fill(0);
    l.send(if0, &bad);
    l.send(if0, &peer6_frame(VNI + 1, &inner_ip_to_pod()));
    assert!(Lab::take(&l.out1).is_empty());
    use vxlan::input_error as e;
    assert_eq!(l.error("vxlan6-input", e::BAD_CHECKSUM), 2);
    assert_eq!(l.error("vxlan6-input", e::NO_TUNNEL), 1);
    let _ = l.tun6;
    l.no_leaks();
}

/// As [`peer6_frame`] with the VXLAN `flags` and UDP destination `port` given.
fn peer6_frame_with(vni: u32, flags: u8, port: u16, inner: &[u8]) -> Vec<u8> {
    let mut payload = vec![flags, 0, 0, 0];
    payload.extend_from_slice(&(vni << 8).to_be_bytes());
    payload.extend_from_slice(inner);
    peer6_udp(port, &payload)
}

/// IPv6/UDP from fd00::2 to our fd00::1 and `port`, carrying `payload` (checksum filled).
fn peer6_udp(port: u16, payload: &[u8]) -> Vec<u8> {
    let src: std::net::Ipv6Addr = "fd00::2".parse().unwrap();
    let dst: std::net::Ipv6Addr = "fd00::1".parse().unwrap();
    let b = PacketBuilder::ethernet2(PEER0, MAC0)
        .ipv6(src.octets(), dst.octets(), 64)
        .udp(50000, port);
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

/// UDP to 4789 over IPv6 goes from ip6-lookup straight to vxlan6-input; in one vector, the
/// L3-mode packets after the first are decapsulated by its key, each with its UDP checksum
/// verified, while a corrupted or a zero checksum, an unknown VNI, a header without the I
/// flag, a datagram too short for the VXLAN header, another UDP port (to ip6-local) and an
/// inner header with a bad checksum each take their own way.
#[test]
fn ipv6_outer_decap_skips_ip6_local_and_only_plain_packets_keep_the_key() {
    let mut l = lab();
    let (if0, tun6) = (l.if0, l.tun6);
    let good = peer6_frame(VNI, &inner_ip_to_pod());
    let c = 14 + 40 + 6;
    let mut bad_udp = good.clone();
    bad_udp[c] ^= 0x55;
    let mut zero_udp = good.clone();
    zero_udp[c..c + 2].fill(0);
    let mut bad_inner = inner_ip_to_pod();
    bad_inner[10] ^= 0xff;
    let vector = [
        good.clone(),
        good.clone(),
        bad_udp,
        zero_udp,
        peer6_frame(VNI + 1, &inner_ip_to_pod()),
        peer6_frame_with(VNI, 0x00, 4789, &inner_ip_to_pod()),
        peer6_udp(4789, &[0x08, 0, 0, 0]),
        peer6_frame_with(VNI, 0x08, 4790, &inner_ip_to_pod()),
        peer6_frame(VNI, &bad_inner),
        good,
    ];
    l.send_vector(if0, &vector);
    let out = Lab::take(&l.out1);
    assert_eq!(out.len(), 3, "the three good ones");
    for o in &out {
        let (ip, payload) = Ipv4Header::from_slice(&o[14..]).unwrap();
        assert_eq!(ip.source, [198, 19, 200, 5]);
        assert_eq!(ip.time_to_live, 62);
        assert_eq!(ip.header_checksum, ip.calc_header_checksum());
        assert!(payload.ends_with(b"from the linux node"));
        assert_eq!(o.len(), 14 + inner_ip_to_pod().len());
    }
    use vxlan::input_error as e;
    assert_eq!(l.error("vxlan6-input", e::DECAPSULATED), 4);
    assert_eq!(l.error("vxlan6-input", e::BAD_CHECKSUM), 2);
    assert_eq!(l.error("vxlan6-input", e::NO_TUNNEL), 1);
    assert_eq!(l.error("vxlan6-input", e::BAD_FLAGS), 1);
    assert_eq!(l.error("vxlan6-input", e::SHORT), 1);
    let bad = rvpp_dataplane::nodes::ip4::input_error::BAD_CHECKSUM;
    assert_eq!(
        l.error("ip4-input", bad),
        1,
        "the inner header, on the tunnel"
    );
    assert_eq!(packets(&l, "vxlan6-input"), 9);
    assert_eq!(packets(&l, "ip6-local"), 1, "UDP to 4790 only");
    let c = &l.rt.stats().ifs[tun6 as usize];
    assert_eq!(c.rx_packets.get(), 4);
    l.no_leaks();
}

/// The IPv6-outer encap writes the uplink's Ethernet header with the outer IPv6, UDP (its
/// checksum over the inner packet) and VXLAN headers when the uplink has no output features;
/// with one (a pass-through tap on pg0's ip6-output) the outer packet goes the long way,
/// through ip6-lookup and ip6-rewrite. Both write the same bytes.
#[test]
fn the_straight_ipv6_encap_writes_what_the_long_way_writes() {
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut l = lab_with(|b| {
        b.feature(
            rvpp_dataplane::feature::Feature::new("ip6-output", "test-out-tap"),
            Box::new(Tap(seen.clone())),
        )
    });
    let (if0, if1) = (l.if0, l.if1);
    // Odd and even inner lengths: the checksum's last byte.
    let pod = |sport: u16, len: usize| {
        let b = PacketBuilder::ethernet2(PEER1, MAC1)
            .ipv4([198, 19, 0, 2], [198, 19, 201, 9], 64)
            .udp(sport, 2000);
        let mut v = Vec::new();
        b.write(&mut v, &vec![0xa5; len]).unwrap();
        v
    };
    let send = |l: &mut Lab| {
        l.send_vector(if1, &[pod(1000, 100), pod(1001, 101), pod(1002, 1)]);
        Lab::take(&l.out0)
    };
    let straight = send(&mut l);
    assert_eq!(
        packets(&l, "ip6-lookup"),
        0,
        "no lookup of the outer packets"
    );
    l.fwd
        .feature_enable(if0, "ip6-output", "test-out-tap", true)
        .unwrap();
    let long = send(&mut l);
    assert_eq!(packets(&l, "ip6-lookup"), 3, "the long way: their lookup");
    assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 3);
    assert_eq!(straight.len(), 3);
    assert_eq!(straight, long);
    for f in &straight {
        let p = SlicedPacket::from_ethernet(f).unwrap();
        let Some(etherparse::NetSlice::Ipv6(ip6)) = &p.net else {
            panic!("not ipv6")
        };
        let h6 = ip6.header().to_header();
        assert_eq!(
            (h6.hop_limit, h6.payload_length as usize),
            (64, f.len() - 54)
        );
        let Some(etherparse::TransportSlice::Udp(udp)) = &p.transport else {
            panic!("not udp")
        };
        let want = udp
            .to_header()
            .calc_checksum_ipv6(&h6, udp.payload())
            .unwrap();
        assert_eq!(udp.checksum(), want, "UDP checksum over IPv6");
        assert_eq!(udp.length() as usize, f.len() - 54);
        assert!(udp.source_port() >= 49152);
    }
    l.no_leaks();
}

#[test]
fn a_tunnel_that_is_down_drops_both_ways() {
    let mut l = lab();
    let (if0, if1, tun) = (l.if0, l.if1, l.tun);
    l.fwd.set_admin_up(tun, false).unwrap();
    l.send(if1, &pod_frame());
    l.send(if0, &peer_frame(VNI, 0x08, &inner_ip_to_pod()));
    assert!(Lab::take(&l.out0).is_empty());
    assert!(Lab::take(&l.out1).is_empty());
    assert_eq!(l.error("vxlan4-encap", vxlan::encap_error::DOWN), 1);
    assert_eq!(l.error("vxlan4-input", vxlan::input_error::DOWN), 1);
    l.no_leaks();
}

/// Each captured frame's destination MAC.
fn dst_macs(frames: &[Vec<u8>]) -> Vec<[u8; 6]> {
    frames.iter().map(|f| f[..6].try_into().unwrap()).collect()
}

#[test]
fn encap_follows_route_and_neighbour_changes_of_the_uplink() {
    // The encap node finishes the outer packet with the uplink's adjacency itself; that
    // adjacency must be the one the FIB gives at the time, not one cached from before.
    let mut l = lab();
    let (if1, tun) = (l.if1, l.tun);
    l.send(if1, &pod_frame());
    assert_eq!(dst_macs(&Lab::take(&l.out0)), vec![PEER0], "first via pg0");
    let lookup = l.rt.graph().index("ip4-lookup").unwrap() as usize;
    assert_eq!(
        l.rt.stats().nodes[lookup].vectors.get(),
        1,
        "the outer packet went from the encap node to interface-output, not to a second lookup"
    );
    // The remote VTEP is now reached through pg1 (a host route over the /24's cover).
    l.fwd
        .route_add(
            0,
            Prefix::parse("198.18.0.2/32").unwrap(),
            vec![Path::via(v4("198.19.0.2"), Some(l.if1))],
        )
        .unwrap();
    l.send(if1, &pod_frame());
    assert!(Lab::take(&l.out0).is_empty(), "no longer via pg0");
    let out = Lab::take(&l.out1);
    assert_eq!(dst_macs(&out), vec![PEER1]);
    let p = SlicedPacket::from_ethernet(&out[0]).unwrap();
    let Some(etherparse::LinkSlice::Ethernet2(eth)) = &p.link else {
        panic!("no ethernet")
    };
    assert_eq!(eth.source(), MAC1, "pg1's own MAC as the source");
    // The next hop's MAC changes: the next packet carries the new one.
    let moved = [2, 0, 0, 0, 0, 0xb9];
    l.fwd
        .neighbor_add(l.if1, v4("198.19.0.2"), moved, true)
        .unwrap();
    l.send(if1, &pod_frame());
    assert_eq!(dst_macs(&Lab::take(&l.out1)), vec![moved]);
    // The host route points back at pg0's neighbour.
    l.fwd
        .route_add(
            0,
            Prefix::parse("198.18.0.2/32").unwrap(),
            vec![Path::via(v4("198.18.0.2"), Some(l.if0))],
        )
        .unwrap();
    l.send(if1, &pod_frame());
    assert_eq!(dst_macs(&Lab::take(&l.out0)), vec![PEER0]);
    assert!(Lab::take(&l.out1).is_empty());
    // No route at all to the remote VTEP: the outer packet goes to the lookup, which drops
    // it as unroutable, counted.
    l.fwd
        .route_add(
            0,
            Prefix::parse("198.18.0.2/32").unwrap(),
            vec![Path::special(rvpp_dataplane::forwarding::PathKind::Drop)],
        )
        .unwrap();
    l.send(if1, &pod_frame());
    assert!(Lab::take(&l.out0).is_empty() && Lab::take(&l.out1).is_empty());
    assert_eq!(l.error("vxlan4-encap", vxlan::encap_error::ENCAPSULATED), 5);
    assert_eq!(
        l.error(
            "ip4-lookup",
            rvpp_dataplane::nodes::ip4::lookup_error::DROP_ADJ
        ),
        1
    );
    let _ = tun;
    l.no_leaks();
}

#[test]
fn one_vector_through_two_tunnels_and_an_outer_too_big_for_the_uplink() {
    // Packets for both tunnels interleaved in one vector: each gets its own tunnel's outer
    // header and uplink. A packet whose outer headers would push it over the uplink's MTU
    // (1460 for IPv4 here) is answered with frag-needed toward the pod when it has DF; without
    // DF it is encapsulated and the outer's rewrite counts it (rvpp does not fragment).
    let mut l = lab();
    let (if0, if1) = (l.if0, l.if1);
    l.fwd.set_protocol_mtu(if0, 1460, 1500).unwrap();
    let to6 = {
        let b = PacketBuilder::ethernet2(PEER1, MAC1)
            .ipv4([198, 19, 0, 2], [198, 19, 201, 9], 64)
            .udp(1000, 2000);
        let mut f = Vec::new();
        b.write(&mut f, &[7; 64]).unwrap();
        f
    };
    let big = |df: bool| {
        let mut ip =
            Ipv4Header::new(0, 64, IpNumber::UDP, [198, 19, 0, 2], [198, 19, 200, 5]).unwrap();
        ip.dont_fragment = df;
        let b = PacketBuilder::ethernet2(PEER1, MAC1)
            .ip(etherparse::IpHeaders::Ipv4(ip, Default::default()))
            .udp(1000, 2000);
        let mut f = Vec::new();
        // An inner packet of 20 + 8 + 1422 = 1450 bytes fits the tunnel's MTU; with the inner
        // Ethernet header and the outer IPv4, UDP and VXLAN it is 1500, over 1460.
        b.write(&mut f, &[1; 1422]).unwrap();
        f
    };
    let frames = [
        pod_frame(),
        to6.clone(),
        pod_frame(),
        big(true),
        to6,
        big(false),
    ];
    l.send_vector(if1, &frames);
    let out = Lab::take(&l.out0);
    assert_eq!(out.len(), 4, "all but the one too big leave by pg0");
    let mut v4s = 0;
    let mut v6s = 0;
    for f in &out {
        let p = SlicedPacket::from_ethernet(f).unwrap();
        let Some(etherparse::LinkSlice::Ethernet2(eth)) = &p.link else {
            panic!("no ethernet")
        };
        assert_eq!((eth.destination(), eth.source()), (PEER0, MAC0));
        match &p.net {
            Some(etherparse::NetSlice::Ipv4(ip)) => {
                let h = ip.header().to_header();
                assert_eq!(h.destination, [198, 18, 0, 2]);
                assert_eq!(h.header_checksum, h.calc_header_checksum());
                assert_eq!(h.total_len as usize, f.len() - 14);
                v4s += 1;
            }
            Some(etherparse::NetSlice::Ipv6(ip)) => {
                let h = ip.header().to_header();
                assert_eq!(
                    std::net::Ipv6Addr::from(h.destination),
                    "fd00::2".parse::<std::net::Ipv6Addr>().unwrap()
                );
                v6s += 1;
            }
            _ => panic!("not ip"),
        }
    }
    assert_eq!((v4s, v6s), (2, 2));
    // The pod hears the MTU that fits: 1460 - 20 - 8 - 8 (outer) - 14 (inner Ethernet).
    let back = Lab::take(&l.out1);
    assert_eq!(back.len(), 1, "one frag-needed toward the pod");
    let (ip, icmp) = Ipv4Header::from_slice(&back[0][14..]).unwrap();
    assert_eq!(
        (ip.source, ip.destination),
        ([198, 19, 0, 1], [198, 19, 0, 2])
    );
    assert_eq!(ip.protocol, IpNumber::ICMP);
    assert_eq!(
        (icmp[0], icmp[1]),
        (3, 4),
        "destination unreachable, frag needed"
    );
    assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1410);
    assert_eq!(
        &icmp[8 + 16..8 + 20],
        &[198, 19, 200, 5],
        "quotes the inner packet"
    );
    assert_eq!(l.error("vxlan4-encap", vxlan::encap_error::TOO_BIG), 1);
    assert_eq!(l.error("vxlan4-encap", vxlan::encap_error::ENCAPSULATED), 5);
    assert_eq!(
        l.error(
            "ip4-rewrite",
            rvpp_dataplane::nodes::ip4::rewrite_error::MTU_EXCEEDED
        ),
        1
    );
    l.no_leaks();
}

/// A pod's TCP super-frame into each tunnel (IPv4 outer with an inner Ethernet header; IPv6
/// outer, bare IP) leaves the uplink as segments whose outer and inner headers and checksums
/// are all right, even when the uplink itself offers GSO and checksum offload (it cannot do
/// them through a tunnel's headers).
#[test]
fn a_pods_tcp_super_frame_leaves_each_tunnel_as_checked_segments() {
    use common::tunnel_offload::*;
    let mut l = lab();
    for uplink_offloads in [false, true] {
        l.fwd
            .set_tx_offloads(l.if0, uplink_offloads, uplink_offloads)
            .unwrap();
        for (dst, v6, l2) in [
            ([198, 19, 200, 5], false, true),
            ([198, 19, 201, 5], true, false),
        ] {
            let f = pod_tcp(PEER1, MAC1, [198, 19, 0, 2], dst, 5000);
            inject_offload(&mut l.rt, l.if1, &f, Some(1360));
            let out = Lab::take(&l.out0);
            let encap = Encap::Vxlan { vni: VNI, l2 };
            assert_eq!(check_segments(&out, v6, encap, 1360, 5000), 4);
        }
    }
    // A packet that only left its TCP checksum to the device, both outer families.
    for (dst, v6, l2) in [
        ([198, 19, 200, 5], false, true),
        ([198, 19, 201, 5], true, false),
    ] {
        let f = pod_tcp(PEER1, MAC1, [198, 19, 0, 2], dst, 900);
        inject_offload(&mut l.rt, l.if1, &f, None);
        let out = Lab::take(&l.out0);
        assert_eq!(
            check_segments(&out, v6, Encap::Vxlan { vni: VNI, l2 }, 1400, 900),
            1
        );
    }
    l.no_leaks();
}

/// What an af_packet uplink marks "checksum left to finish" (a local sender's packet, whose
/// partial checksum may be the outer UDP one or the inner one) is decapsulated: an IPv6 outer
/// UDP checksum is not checked, an inner UDP checksum is computed whole on the way to the pod,
/// and an inner ICMP, which has no such checksum, loses the mark and is delivered.
#[test]
fn decap_of_a_packet_with_its_checksum_left_to_finish() {
    use rvpp_dataplane::buffer::flags;
    let mut l = lab();
    let if0 = l.if0;
    let send_partial = |l: &mut Lab, f: &[u8]| {
        let bufs = l.rt.buffers();
        let bi = bufs.alloc_from_bytes(f).unwrap();
        let m = bufs.meta(bi);
        m.rx_sw_if_index = if0;
        m.flags |= flags::OFFLOAD_L4_CKSUM;
        l.rt.inject("ethernet-input", &[bi]).unwrap();
    };
    // The inner UDP checksum as a sender leaves it: wrong until finished.
    let mut inner = inner_ip_to_pod();
    inner[26..28].copy_from_slice(&[0x12, 0x34]);
    let mut f = peer6_frame(VNI, &inner);
    f[14 + 40 + 6..14 + 40 + 8].fill(0); // and the outer one never filled
    send_partial(&mut l, &f);
    let icmp = {
        let b =
            PacketBuilder::ipv4([198, 19, 200, 5], [198, 19, 0, 2], 63).icmpv4_echo_request(7, 1);
        let mut v = Vec::new();
        b.write(&mut v, b"ping").unwrap();
        v
    };
    send_partial(&mut l, &peer6_frame(VNI, &icmp));
    let out = Lab::take(&l.out1);
    assert_eq!(out.len(), 2, "both delivered");
    let (ip, l4) = Ipv4Header::from_slice(&out[0][14..]).unwrap();
    let (udp, payload) = etherparse::UdpHeader::from_slice(l4).unwrap();
    assert_eq!(udp.checksum, udp.calc_checksum_ipv4(&ip, payload).unwrap());
    assert_eq!(
        Ipv4Header::from_slice(&out[1][14..]).unwrap().0.protocol,
        IpNumber::ICMP
    );
    assert_eq!(l.error("vxlan6-input", vxlan::input_error::BAD_CHECKSUM), 0);
    l.no_leaks();
}

/// A Linux vxlan device's super-frame through a veth reaches an af_packet uplink whole, so an
/// IPv6 outer packet can span buffers: its length is checked against the chain, not the
/// first buffer (which had dropped it as truncated). Only a packet whose checksum is left to
/// finish can be taken so; one to verify over a chain is a counted drop of its own.
#[test]
fn ipv6_outer_decap_of_a_packet_longer_than_one_buffer() {
    use rvpp_dataplane::buffer::flags;
    let mut l = lab();
    let if0 = l.if0;
    let big = {
        let b = PacketBuilder::ipv4([198, 19, 200, 5], [198, 19, 0, 2], 63).udp(2000, 1000);
        let mut v = Vec::new();
        b.write(&mut v, &[0x42; 3000]).unwrap();
        v
    };
    let f = peer6_frame(VNI, &big);
    let send = |l: &mut Lab, f: &[u8], partial: bool| {
        let bufs = l.rt.buffers();
        let bi = bufs.alloc_from_bytes(f).unwrap();
        let m = bufs.meta(bi);
        assert!(m.flags & flags::NEXT_PRESENT != 0, "a chained packet");
        m.rx_sw_if_index = if0;
        if partial {
            m.flags |= flags::OFFLOAD_L4_CKSUM;
        }
        l.rt.inject("ethernet-input", &[bi]).unwrap();
    };
    use vxlan::input_error as e;
    send(&mut l, &f, true);
    assert_eq!(l.error("vxlan6-input", e::SHORT), 0);
    assert_eq!(l.error("vxlan6-input", e::DECAPSULATED), 1);
    send(&mut l, &f, false);
    assert_eq!(l.error("vxlan6-input", e::CHAINED_CHECKSUM), 1);
    let _ = Lab::take(&l.out1);
    l.no_leaks();
}

/// Dual-stack pods over calico-vpp's L3 mode: bare IPv6 after the VXLAN header, over an IPv4
/// outer header (vxlan_tunnel2) and an IPv6 one (vxlan_tunnel1). A vector of one tunnel's
/// plain packets goes straight to ip6-lookup (the first the whole way, the rest by its key)
/// with the bytes and counters of the whole way; no inner packet passes ip6-input.
#[test]
fn ipv6_inside_l3_decap_goes_straight_to_ip6_lookup() {
    let mut l = lab_l3();
    let (if0, if1, tun6) = (l.if0, l.if1, l.tun6);
    l.fwd
        .address_add(if1, Prefix::parse("fd01::1/64").unwrap())
        .unwrap();
    l.fwd
        .neighbor_add(if1, "fd01::2".parse().unwrap(), PEER1, true)
        .unwrap();
    let inner6 = |i: u8| {
        let s: std::net::Ipv6Addr = "fd02::5".parse().unwrap();
        let d: std::net::Ipv6Addr = "fd01::2".parse().unwrap();
        let mut v = Vec::new();
        PacketBuilder::ipv6(s.octets(), d.octets(), 64 - i)
            .udp(2000, 1000)
            .write(&mut v, &[i; 30])
            .unwrap();
        v
    };
    let over4: Vec<Vec<u8>> = (0..4)
        .map(|i| peer_l3_frame(VNI + 1, 0x08, 4789, &inner6(i)))
        .collect();
    let over6: Vec<Vec<u8>> = (0..4).map(|i| peer6_frame(VNI, &inner6(i))).collect();
    for frames in [&over4, &over6] {
        l.send_vector(if0, frames);
        let inner_len = |i: usize| inner6(i as u8).len();
        assert_inner6_run_to_pod(&Lab::take(&l.out1), &inner_len);
    }
    assert_eq!(
        packets(&l, "ip6-input"),
        4,
        "the IPv6 outer packets only: every inner one went straight to the lookup"
    );
    use vxlan::input_error as e;
    assert_eq!(l.error("vxlan4-input", e::DECAPSULATED), 4);
    assert_eq!(l.error("vxlan6-input", e::DECAPSULATED), 4);
    let c = &l.rt.stats().ifs[tun6 as usize];
    assert_eq!(c.rx_packets.get(), 4);
    assert_eq!(c.rx_bytes.get(), 4 * (40 + 8 + 30));
    l.no_leaks();
}

/// An L2-mode VXLAN payload: the VXLAN header with `vni`, then an inner Ethernet frame to
/// `dst` (from the remote VTEP's MAC) of `ether_type` carrying `inner`.
fn l2_payload(vni: u32, dst: [u8; 6], ether_type: u16, inner: &[u8]) -> Vec<u8> {
    let mut p = vec![0x08, 0, 0, 0];
    p.extend_from_slice(&(vni << 8).to_be_bytes());
    p.extend_from_slice(&dst);
    p.extend_from_slice(&VTEP_MAC);
    p.extend_from_slice(&ether_type.to_be_bytes());
    p.extend_from_slice(inner);
    p
}

/// [`l2_payload`] over IPv4 from the remote VTEP to ours, as a Linux vxlan.calico device
/// sends it.
fn l2_frame(vni: u32, dst: [u8; 6], ether_type: u16, inner: &[u8]) -> Vec<u8> {
    l2_frame_to(4789, vni, dst, ether_type, inner)
}

/// [`l2_frame`] to UDP port `port`.
fn l2_frame_to(port: u16, vni: u32, dst: [u8; 6], ether_type: u16, inner: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(PEER0, MAC0)
        .ipv4([198, 18, 0, 2], [198, 18, 0, 1], 64)
        .udp(51000, port);
    let mut v = Vec::new();
    b.write(&mut v, &l2_payload(vni, dst, ether_type, inner))
        .unwrap();
    v
}

/// The L2 tunnel's VNI over IPv6 outer (vxlan_tunnel3, added by [`lab_l2_over6`]).
const VNI_L2_6: u32 = VNI + 3;

/// The lab with an L2-mode tunnel over IPv6 too (vxlan_tunnel3 between fd00::1 and fd00::2,
/// VNI + 3, our MAC TMAC), unnumbered to pg0; and an ARP request for the tunnel's address.
fn lab_l2_over6() -> (Lab, u32) {
    let mut l = lab();
    let t3 = l
        .fwd
        .interface_add("vxlan_tunnel3", "vxlan", TMAC, true, 1430)
        .unwrap();
    l.fwd.set_admin_up(t3, true).unwrap();
    l.fwd.set_unnumbered(t3, Some(l.if0)).unwrap();
    let mut t = (*l.table.load()).clone();
    t.insert(tunnel(t3, 3, ("fd00::1", "fd00::2"), VNI_L2_6, false));
    l.table.publish(t);
    (l, t3)
}

/// Each frame of `out` is [`inner_ip_to_pod`] forwarded to the pod on pg1.
fn assert_forwarded_to_pod(out: &[Vec<u8>]) {
    for o in out {
        let (eth, rest) = Ethernet2Header::from_slice(o).unwrap();
        assert_eq!((eth.destination, eth.source), (PEER1, MAC1));
        let (ip, payload) = Ipv4Header::from_slice(rest).unwrap();
        assert_eq!(ip.source, [198, 19, 200, 5]);
        assert_eq!(ip.time_to_live, 62);
        assert_eq!(ip.header_checksum, ip.calc_header_checksum());
        assert!(payload.ends_with(b"from the linux node"));
        assert_eq!(o.len(), 14 + inner_ip_to_pod().len());
    }
}

/// What a Linux vxlan.calico peer sends (an inner Ethernet frame to our tunnel's MAC, plain
/// IPv4 inside), over either outer family: every inner packet goes from the decap node
/// straight to ip4-lookup, the frames after the first of a run by their key alone, so
/// ethernet-input and ip4-input see only the outer packets; each is counted as received on
/// its tunnel with its inner Ethernet header, as ethernet-input's way counts it.
#[test]
fn l2_mode_decap_skips_ethernet_input_and_ip4_input() {
    let (mut l, t3) = lab_l2_over6();
    let (if0, tun) = (l.if0, l.tun);
    let inner = inner_ip_to_pod();
    let over4: Vec<Vec<u8>> = (0..4)
        .map(|_| l2_frame(VNI, TMAC, 0x0800, &inner))
        .collect();
    let over6: Vec<Vec<u8>> = (0..4)
        .map(|_| peer6_udp(4789, &l2_payload(VNI_L2_6, TMAC, 0x0800, &inner)))
        .collect();
    l.send_vector(if0, &over4);
    l.send_vector(if0, &over6);
    let out = Lab::take(&l.out1);
    assert_eq!(out.len(), 8, "every inner packet forwarded to the pod");
    assert_forwarded_to_pod(&out);
    assert_eq!(packets(&l, "ethernet-input"), 8, "the outer frames only");
    assert_eq!(packets(&l, "ip4-input"), 4, "the IPv4 outer packets only");
    use vxlan::input_error as e;
    assert_eq!(l.error("vxlan4-input", e::DECAPSULATED), 4);
    assert_eq!(l.error("vxlan6-input", e::DECAPSULATED), 4);
    for sw in [tun, t3] {
        let c = &l.rt.stats().ifs[sw as usize];
        assert_eq!(c.rx_packets.get(), 4);
        assert_eq!(c.rx_bytes.get(), 4 * (14 + inner.len() as u64));
    }
    l.no_leaks();
}

/// An L2-mode frame to another MAC, to the broadcast MAC, ARP, or with a VLAN tag, and any
/// frame on a cross-connected tunnel, go the whole way through ethernet-input as before, also
/// in the middle of a run whose key the good frames taught: the wrong MAC is a counted drop,
/// the broadcast one is forwarded as ethernet-input's group rule allows, the ARP request for
/// the tunnel's address reaches arp-input (its reply is not encapsulated: interface-output
/// finds no tx queue for a tunnel, as before), the tag names no sub-interface.
#[test]
fn l2_mode_exceptions_take_ethernet_input() {
    let mut l = lab();
    let (if0, if1, tun) = (l.if0, l.if1, l.tun);
    let inner = inner_ip_to_pod();
    let good = l2_frame(VNI, TMAC, 0x0800, &inner);
    let other_mac = [2, 0, 0, 0, 0, 0xc1];
    let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
    arp.extend_from_slice(&VTEP_MAC);
    arp.extend_from_slice(&[198, 18, 128, 2]);
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&[198, 18, 128, 1]);
    let mut tagged = vec![0, 7, 8, 0];
    tagged.extend_from_slice(&inner);
    let vector = [
        good.clone(),
        good.clone(),
        l2_frame(VNI, other_mac, 0x0800, &inner),
        l2_frame(VNI, [0xff; 6], 0x0800, &inner),
        l2_frame(VNI, [0xff; 6], 0x0806, &arp),
        l2_frame(VNI, TMAC, 0x8100, &tagged),
        good,
    ];
    l.send_vector(if0, &vector);
    let out = Lab::take(&l.out1);
    assert_eq!(out.len(), 4, "the three good frames and the broadcast one");
    assert_forwarded_to_pod(&out);
    use rvpp_dataplane::nodes::arp::arp_error;
    assert_eq!(l.error("arp-input", arp_error::REPLIES_SENT), 1);
    assert_eq!(l.error("arp-input", arp_error::LEARNED), 1);
    use rvpp_dataplane::nodes::ethernet::error as eth;
    assert_eq!(l.error("ethernet-input", eth::MAC_MISMATCH), 1);
    assert_eq!(l.error("ethernet-input", eth::UNKNOWN_VLAN), 1);
    assert_eq!(
        packets(&l, "ethernet-input"),
        7 + 4,
        "the outer frames and the four exceptions"
    );
    // Cross-connected, the tunnel's frames leave on pg1 as they came, good ones included.
    l.fwd.set_xconnect(tun, Some(if1)).unwrap();
    l.send_vector(if0, &[l2_frame(VNI, TMAC, 0x0800, &inner)]);
    let out = Lab::take(&l.out1);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0][..6], TMAC, "the inner frame as it came");
    assert_eq!(out[0][14..], inner[..]);
    l.no_leaks();
}

/// An ARP request from the peer VTEP for our tunnel address, inside the L2 tunnel.
fn arp_request_for_tunnel_address() -> Vec<u8> {
    let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
    arp.extend_from_slice(&VTEP_MAC);
    arp.extend_from_slice(&[198, 18, 128, 2]);
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&[198, 18, 128, 1]);
    l2_frame(VNI, [0xff; 6], 0x0806, &arp)
}

/// arp-input answers a request received inside the L2 tunnel on the tunnel; the reply is
/// encapsulated back to the peer VTEP (the tunnel has no tx queue: its output is its encap).
#[test]
fn an_arp_request_inside_an_l2_tunnel_is_answered_through_the_tunnel() {
    let mut l = lab();
    let if0 = l.if0;
    l.send(if0, &arp_request_for_tunnel_address());
    let out = Lab::take(&l.out0);
    use rvpp_dataplane::nodes::output;
    let no_txq = l.error("interface-output", output::error::NO_TXQ);
    assert_eq!(no_txq, 0, "not dropped for want of a tx queue");
    assert_eq!(out.len(), 1, "the reply leaves on the uplink");
    let (eth, rest) = Ethernet2Header::from_slice(&out[0]).unwrap();
    assert_eq!((eth.destination, eth.source), (PEER0, MAC0));
    let (ip, rest) = Ipv4Header::from_slice(rest).unwrap();
    assert_eq!(
        (ip.source, ip.destination, ip.protocol),
        ([198, 18, 0, 1], [198, 18, 0, 2], IpNumber::UDP)
    );
    assert_eq!(u16::from_be_bytes([rest[2], rest[3]]), 4789);
    let vx = &rest[8..16];
    assert_eq!(
        (vx[0], u32::from_be_bytes([vx[4], vx[5], vx[6], vx[7]]) >> 8),
        (0x08, VNI)
    );
    let inner = &rest[16..];
    assert_eq!(inner[..6], VTEP_MAC, "to the asker");
    assert_eq!(inner[6..12], TMAC, "from our tunnel MAC");
    assert_eq!(inner[12..14], [8, 6]);
    let arp = &inner[14..42];
    assert_eq!(arp[6..8], [0, 2], "a reply");
    assert_eq!(arp[8..14], TMAC);
    assert_eq!(arp[14..18], [198, 18, 128, 1]);
    assert_eq!(arp[18..24], VTEP_MAC);
    assert_eq!(arp[24..28], [198, 18, 128, 2]);
    use rvpp_dataplane::nodes::arp::arp_error;
    assert_eq!(l.error("arp-input", arp_error::REPLIES_SENT), 1);
    l.no_leaks();
}

/// UDP to a port a tunnel receives on (VPP's src_port, here 8472 as a Linux `dstport 8472`
/// device sends) is VXLAN over either outer family while the port is registered, through the
/// lookup's shortcut and through ip4-local; once unregistered it is UDP to a closed port
/// (ICMP port unreachable, counted by ip4-local) and 4789 still works.
#[test]
fn a_registered_port_is_received_and_no_longer_once_unregistered() {
    use rvpp_dataplane::forwarding::Af;
    let mut l = lab();
    let if0 = l.if0;
    let mut t = (*l.table.load()).clone();
    for sw in [l.tun, l.tun6] {
        let mut row = *t.get(sw).unwrap();
        (row.src_port, row.dst_port) = (8472, 8472);
        t.insert(row);
    }
    l.table.publish(t);
    let to_pod = inner_ip_to_pod();
    let l2_8472 = l2_frame_to(8472, VNI, TMAC, 0x0800, &to_pod);
    let mut l3_over6 = Vec::new();
    l3_over6.extend_from_slice(&to_pod);
    let v6_8472 = peer6_frame_with(VNI, 0x08, 8472, &l3_over6);
    use vxlan::input_error as e;
    // Unregistered: the lookup's shortcut and ip4-/ip6-local treat it as any UDP.
    l.send(if0, &l2_8472);
    l.send(if0, &v6_8472);
    assert!(Lab::take(&l.out1).is_empty());
    assert_eq!(l.error("vxlan4-input", e::DECAPSULATED), 0);
    assert_eq!(l.error("vxlan6-input", e::DECAPSULATED), 0);
    use rvpp_dataplane::nodes::ip4::local_error;
    assert_eq!(l.error("ip4-local", local_error::NO_PUNT), 1);
    Lab::take(&l.out0);
    l.fwd.set_vxlan_ports(Af::Ip4, vec![8472]);
    l.fwd.set_vxlan_ports(Af::Ip6, vec![8472]);
    l.send_vector(if0, &[l2_8472.clone(), l2_8472.clone(), v6_8472.clone()]);
    l.send(if0, &l2_frame(VNI, TMAC, 0x0800, &to_pod));
    let out = Lab::take(&l.out1);
    assert_eq!(out.len(), 4, "both families on 8472, and 4789 beside it");
    assert_forwarded_to_pod(&out);
    assert_eq!(l.error("vxlan4-input", e::DECAPSULATED), 3);
    assert_eq!(l.error("vxlan6-input", e::DECAPSULATED), 1);
    // Encap sends to the tunnel's dst_port.
    l.send(l.if1, &pod_frame());
    let enc = Lab::take(&l.out0);
    assert_eq!(enc.len(), 1);
    assert_eq!(enc[0][14 + 20 + 2..14 + 20 + 4], 8472u16.to_be_bytes());
    l.fwd.set_vxlan_ports(Af::Ip4, vec![]);
    l.fwd.set_vxlan_ports(Af::Ip6, vec![]);
    l.send(if0, &l2_8472);
    assert!(Lab::take(&l.out1).is_empty(), "not VXLAN any more");
    assert_eq!(l.error("vxlan4-input", e::DECAPSULATED), 3);
    assert_eq!(l.error("ip4-local", local_error::NO_PUNT), 2);
    assert_eq!(
        Lab::take(&l.out0).len(),
        1,
        "port unreachable to the sender"
    );
    l.no_leaks();
}
