//! cnat through the whole graph: a ClusterIP DNATed to its backend and the replies un-DNATed
//! (IPv4 and IPv6), an unknown VIP port following the FIB, an update reaching only new flows,
//! a delete removing exactly its sessions, an ICMP error translated back, and SNAT by the K8S
//! policy on the output arcs (after rewrite) with its return traffic un-SNATed on the input
//! arcs. Frames are built and checked with etherparse.

mod common;
use common::*;
use etherparse::{IpNumber, NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use rvpp_dataplane::buffer::BufferPool;
use rvpp_dataplane::cnat::node::{in_err, out_err};
use rvpp_dataplane::cnat::snat::{IfTable, Policy};
use rvpp_dataplane::cnat::translation::{flow_hash, Endpoint, PathEp, Translation};
use rvpp_dataplane::cnat::{Cnat, CnatConfig};
use rvpp_dataplane::feature::FeatureTables;
use rvpp_dataplane::forwarding::{Forwarding, Path, Prefix};
use rvpp_dataplane::graph::DeviceNodes;
use rvpp_dataplane::nodes::cnat::{self as cnat_nodes, CnatInput, CnatOutput};
use rvpp_dataplane::nodes::standard_with;
use rvpp_dataplane::runtime::Runtime;
use rvpp_dataplane::tables::Shared;
use std::net::IpAddr;
use std::sync::Arc;

const CLIENT: [u8; 4] = [198, 18, 0, 2];
const VIP: [u8; 4] = [198, 19, 255, 1];
const B1: [u8; 4] = [198, 19, 0, 2];
const B2: [u8; 4] = [198, 19, 0, 3];
/// fd00:0:0:18::2, fd00:0:0:19:ff::1, fd00:0:0:19::2.
const CLIENT6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0x18, 0, 0, 0, 0, 0, 0, 0, 2];
const VIP6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0x19, 0, 0xff, 0, 0, 0, 0, 0, 1];
const B16: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0x19, 0, 0, 0, 0, 0, 0, 0, 2];

struct Lab {
    pool: Arc<BufferPool>,
    cnat: Arc<Cnat>,
    rt: Runtime,
    /// A second worker over the same tables and the same cnat state.
    rt2: Runtime,
    out2: Frames,
    fwd: Forwarding,
    out0: Frames,
    out1: Frames,
    if0: u32,
    if1: u32,
}

fn v4(a: [u8; 4]) -> u128 {
    0xffff_0000_0000 | u32::from_be_bytes(a) as u128
}

fn ep4(a: [u8; 4], port: u16) -> Endpoint {
    Endpoint {
        addr: v4(a),
        port,
        ip6: false,
    }
}

fn lab() -> Lab {
    let pool = BufferPool::with_backing(4096, 2048, false).unwrap();
    let shared = Shared::new();
    let mut fwd = Forwarding::new(shared.clone());
    let if0 = fwd.interface_add("pg0", "pg", MAC0, true, 1500).unwrap();
    let if1 = fwd.interface_add("pg1", "pg", MAC1, true, 1500).unwrap();
    for (i, p4, p6) in [
        (if0, "198.18.0.1/24", "fd00:0:0:18::1/64"),
        (if1, "198.19.0.1/24", "fd00:0:0:19::1/64"),
    ] {
        fwd.address_add(i, Prefix::parse(p4).unwrap()).unwrap();
        fwd.enable_ip6(i, true).unwrap();
        fwd.address_add(i, Prefix::parse(p6).unwrap()).unwrap();
        fwd.set_admin_up(i, true).unwrap();
    }
    for (i, a, m) in [
        (if0, "198.18.0.2", PEER0),
        (if1, "198.19.0.2", PEER1),
        (if1, "198.19.0.3", PEER1),
        (if0, "fd00:0:0:18::2", PEER0),
        (if1, "fd00:0:0:19::2", PEER1),
    ] {
        fwd.neighbor_add(i, a.parse().unwrap(), m, true).unwrap();
    }
    // The service range routes towards pg1 (what a VIP without a matching port follows).
    let nh: IpAddr = "198.19.0.2".parse().unwrap();
    fwd.route_add(
        0,
        Prefix::parse("198.19.128.0/17").unwrap(),
        vec![Path::via(nh, Some(if1))],
    )
    .unwrap();
    let nh6: IpAddr = "fd00:0:0:19::2".parse().unwrap();
    fwd.route_add(
        0,
        Prefix::parse("fd00:0:0:19:ff::/80").unwrap(),
        vec![Path::via(nh6, Some(if1))],
    )
    .unwrap();
    // The graph's cnat nodes take their `Cnat` from the feature tables: a small one here.
    let tables = FeatureTables::default();
    let cnat = Cnat::new(CnatConfig { max_sessions: 1024 });
    tables.insert(cnat.clone());
    let graph = || {
        standard_with(&tables)
            .device(DeviceNodes::tx_only("pg-tx"))
            .build()
            .unwrap()
    };
    fwd.use_features(graph().features);
    // feature_cnat_enable_disable on both interfaces: input and output features.
    for i in [if0, if1] {
        cnat_nodes::feature_enable(&mut fwd, i, true).unwrap();
    }
    let mut rt = Runtime::new(graph(), pool.local(), shared.clone(), 0, "test".into()).unwrap();
    let mut rt2 = Runtime::new(graph(), pool.local(), shared, 1, "test2".into()).unwrap();
    let (out0, out1, out2) = (Frames::default(), Frames::default(), Frames::default());
    rt.set_tx(if0, Box::new(Capture(out0.clone()))).unwrap();
    rt.set_tx(if1, Box::new(Capture(out1.clone()))).unwrap();
    rt2.set_tx(if0, Box::new(Capture(out2.clone()))).unwrap();
    rt2.set_tx(if1, Box::new(Capture(out2.clone()))).unwrap();
    Lab {
        pool,
        cnat,
        rt,
        rt2,
        out2,
        fwd,
        out0,
        out1,
        if0,
        if1,
    }
}

impl Lab {
    fn send(&mut self, on: u32, frame: &[u8]) {
        let bufs = self.rt.buffers();
        let bi = bufs.alloc_from_bytes(frame).unwrap();
        bufs.meta(bi).rx_sw_if_index = on;
        self.rt.inject("ethernet-input", &[bi]).unwrap();
    }
    fn take(f: &Frames) -> Vec<Vec<u8>> {
        std::mem::take(&mut *f.lock().unwrap())
    }
    fn one(f: &Frames) -> Vec<u8> {
        let mut v = Self::take(f);
        assert_eq!(v.len(), 1, "expected one frame");
        v.pop().unwrap()
    }
    fn counter(&self, node: &str, code: u16) -> u64 {
        let i = self.rt.graph().error_index(node, code).unwrap();
        self.rt.stats().errors[i as usize].get()
    }
    fn no_leaks(mut self) {
        self.rt.buffers().flush();
        self.rt2.buffers().flush();
        drop(self.rt);
        drop(self.rt2);
        assert_eq!(self.pool.in_use(), 0, "buffers leaked");
    }
}

fn tcp4(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, from_peer: [u8; 6], to: [u8; 6]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(from_peer, to)
        .ipv4(src, dst, 64)
        .tcp(sp, dp, 1, 1000)
        .ack(1)
        .write(&mut v, b"request")
        .unwrap();
    v
}

/// (src, dst, sport, dport) of a frame, with every checksum verified independently.
fn read4(f: &[u8]) -> ([u8; 4], [u8; 4], u16, u16) {
    let s = SlicedPacket::from_ethernet(f).unwrap();
    let Some(NetSlice::Ipv4(ip)) = s.net else {
        panic!("not ipv4")
    };
    let h = ip.header().to_header();
    assert_eq!(h.calc_header_checksum(), h.header_checksum, "ip checksum");
    let (src, dst) = (h.source, h.destination);
    match s.transport.unwrap() {
        TransportSlice::Tcp(t) => {
            let th = t.to_header();
            assert_eq!(
                th.calc_checksum_ipv4_raw(src, dst, t.payload()).unwrap(),
                th.checksum,
                "tcp checksum"
            );
            (src, dst, th.source_port, th.destination_port)
        }
        TransportSlice::Udp(u) => {
            let uh = u.to_header();
            assert_eq!(
                uh.calc_checksum_ipv4_raw(src, dst, u.payload()).unwrap(),
                uh.checksum
            );
            (src, dst, uh.source_port, uh.destination_port)
        }
        TransportSlice::Icmpv4(i) => {
            assert_eq!(
                rvpp_dataplane::wire::checksum(i.slice()),
                0,
                "icmp checksum"
            );
            (src, dst, 0, 0)
        }
        _ => panic!("transport"),
    }
}

fn service(l: &Lab, backends: &[[u8; 4]]) -> u32 {
    l.cnat.translation_update(Translation {
        vip: ep4(VIP, 80),
        proto: 6,
        // calico's flags: ALLOC_PORT | NO_CLIENT.
        flags: 1 | 8,
        paths: backends
            .iter()
            .map(|b| PathEp {
                dst: ep4(*b, 8080),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    })
}

#[test]
fn clusterip_dnat_and_replies_un_dnat_ip4() {
    let mut l = lab();
    service(&l, &[B1]);
    l.send(l.if0, &tcp4(CLIENT, VIP, 40000, 80, PEER0, MAC0));
    let out = Lab::one(&l.out1);
    assert_eq!(
        read4(&out[..]),
        (CLIENT, B1, 40000, 8080),
        "DNAT to the backend"
    );
    assert_eq!(l.counter(CnatInput::IP4, in_err::NEW_SESSIONS), 1);
    assert_eq!(l.cnat.sessions.len(), 2, "forward and return entries");
    // The reply comes back on pg1 and leaves pg0 from the VIP.
    l.send(l.if1, &tcp4(B1, CLIENT, 8080, 40000, PEER1, MAC1));
    let back = Lab::one(&l.out0);
    assert_eq!(
        read4(&back),
        (VIP, CLIENT, 80, 40000),
        "un-DNAT of the reply"
    );
    // The same flow again uses its session, not a new one.
    l.send(l.if0, &tcp4(CLIENT, VIP, 40000, 80, PEER0, MAC0));
    assert_eq!(read4(&Lab::one(&l.out1)), (CLIENT, B1, 40000, 8080));
    assert_eq!(l.counter(CnatInput::IP4, in_err::NEW_SESSIONS), 1);
    // Traffic from a backend with no session passes unchanged.
    l.send(l.if1, &tcp4(B1, CLIENT, 8080, 40001, PEER1, MAC1));
    assert_eq!(read4(&Lab::one(&l.out0)), (B1, CLIENT, 8080, 40001));
    l.no_leaks();
}

/// The reply arrives on the other worker's queue: the shared session table un-DNATs it there.
#[test]
fn reply_on_another_worker_is_un_dnatted() {
    let mut l = lab();
    service(&l, &[B1]);
    l.send(l.if0, &tcp4(CLIENT, VIP, 40000, 80, PEER0, MAC0));
    assert_eq!(read4(&Lab::one(&l.out1)), (CLIENT, B1, 40000, 8080));
    let f = tcp4(B1, CLIENT, 8080, 40000, PEER1, MAC1);
    let bufs = l.rt2.buffers();
    let bi = bufs.alloc_from_bytes(&f).unwrap();
    bufs.meta(bi).rx_sw_if_index = l.if1;
    l.rt2.inject("ethernet-input", &[bi]).unwrap();
    assert_eq!(read4(&Lab::one(&l.out2)), (VIP, CLIENT, 80, 40000));
    assert!(Lab::take(&l.out0).is_empty());
    l.no_leaks();
}

/// The fragments after a translated first fragment get its addresses (they carry no ports).
#[test]
fn later_fragments_follow_their_first_fragment() {
    let mut l = lab();
    l.cnat.translation_update(Translation {
        vip: ep4(VIP, 53),
        proto: 17,
        paths: vec![PathEp {
            dst: ep4(B1, 5353),
            ..Default::default()
        }],
        ..Default::default()
    });
    let mut whole = Vec::new();
    PacketBuilder::ipv4(CLIENT, VIP, 64)
        .udp(1111, 53)
        .write(&mut whole, &[0x33; 100])
        .unwrap();
    let l4 = &whole[20..];
    let frag = |body: &[u8], offset: u16, more: bool| {
        let mut h =
            etherparse::Ipv4Header::new(body.len() as u16, 64, IpNumber::UDP, CLIENT, VIP).unwrap();
        h.identification = 0x4242;
        h.more_fragments = more;
        h.fragment_offset = etherparse::IpFragOffset::try_new(offset / 8).unwrap();
        h.header_checksum = h.calc_header_checksum();
        let mut v = Vec::new();
        etherparse::Ethernet2Header {
            source: PEER0,
            destination: MAC0,
            ether_type: etherparse::EtherType::IPV4,
        }
        .write(&mut v)
        .unwrap();
        h.write(&mut v).unwrap();
        v.extend_from_slice(body);
        v
    };
    l.send(l.if0, &frag(&l4[..48], 0, true));
    l.send(l.if0, &frag(&l4[48..], 48, false));
    let out = Lab::take(&l.out1);
    assert_eq!(out.len(), 2);
    for f in &out {
        let h = etherparse::Ipv4HeaderSlice::from_slice(&f[14..])
            .unwrap()
            .to_header();
        assert_eq!(h.calc_header_checksum(), h.header_checksum);
        assert_eq!(
            (h.source, h.destination),
            (CLIENT, B1),
            "both fragments DNATed"
        );
    }
    // Reassembled, the datagram's UDP checksum holds for the new addresses and port.
    let mut dgram = out[0][34..].to_vec();
    dgram.extend_from_slice(&out[1][34..]);
    let uh = etherparse::UdpHeaderSlice::from_slice(&dgram)
        .unwrap()
        .to_header();
    assert_eq!(uh.destination_port, 5353);
    assert_eq!(
        uh.calc_checksum_ipv4_raw(CLIENT, B1, &dgram[8..]).unwrap(),
        uh.checksum
    );
    assert_eq!(l.counter(CnatInput::IP4, in_err::FRAGMENT_FOLLOWED), 1);
    // A later fragment of a datagram whose first fragment was never seen: unchanged, counted.
    let mut lone = frag(&l4[48..], 48, false);
    lone[14 + 4] = 0x99;
    let h = etherparse::Ipv4HeaderSlice::from_slice(&lone[14..])
        .unwrap()
        .to_header();
    let c = h.calc_header_checksum().to_be_bytes();
    lone[14 + 10..14 + 12].copy_from_slice(&c);
    l.send(l.if0, &lone);
    let f = Lab::one(&l.out1);
    assert_eq!(&f[14 + 16..14 + 20], &VIP);
    assert_eq!(l.counter(CnatInput::IP4, in_err::FRAGMENT), 1);
    l.no_leaks();
}

/// ClientIP affinity (translation flag 0x20): every new flow of a client reaches one backend.
#[test]
fn client_ip_affinity_keeps_a_client_on_one_backend() {
    let mut l = lab();
    l.cnat.translation_update(Translation {
        vip: ep4(VIP, 80),
        proto: 6,
        flags: 1 | 8 | rvpp_dataplane::cnat::translation::tflags::AFFINITY,
        paths: [B1, B2]
            .iter()
            .map(|b| PathEp {
                dst: ep4(*b, 8080),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    });
    let mut seen = std::collections::BTreeSet::new();
    for p in 50000..50020 {
        l.send(l.if0, &tcp4(CLIENT, VIP, p, 80, PEER0, MAC0));
        seen.insert(read4(&Lab::one(&l.out1)).1);
    }
    assert_eq!(seen.len(), 1, "one backend for the client: {seen:?}");
    assert_eq!(l.cnat.affinity.len(), 1);
    l.no_leaks();
}

/// A VIP without backends answers as kube-proxy's REJECT does: ICMP port unreachable, from
/// the VIP (a pod's own address, which the receiving interface would lend, is a martian source
/// to the pod's kernel).
#[test]
fn vip_without_backends_is_rejected() {
    let mut l = lab();
    service(&l, &[]);
    l.send(l.if0, &tcp4(CLIENT, VIP, 40000, 80, PEER0, MAC0));
    assert!(Lab::take(&l.out1).is_empty(), "not forwarded");
    let r = Lab::one(&l.out0);
    let (src, dst, _, _) = read4(&r);
    assert_eq!(dst, CLIENT);
    assert_eq!(src, VIP, "from the VIP");
    assert_eq!((r[14 + 20], r[14 + 21]), (3, 3), "port unreachable");
    assert_eq!(l.counter(CnatInput::IP4, in_err::NO_BACKENDS), 1);
    assert!(l.cnat.sessions.is_empty());
    l.no_leaks();
}

#[test]
fn unknown_vip_port_follows_the_fib() {
    let mut l = lab();
    service(&l, &[B1]);
    l.send(l.if0, &tcp4(CLIENT, VIP, 40000, 81, PEER0, MAC0));
    assert_eq!(read4(&Lab::one(&l.out1)), (CLIENT, VIP, 40000, 81));
    assert!(l.cnat.sessions.is_empty());
    l.no_leaks();
}

#[test]
fn update_reaches_only_new_flows_and_delete_removes_its_sessions() {
    let mut l = lab();
    service(&l, &[B1]);
    // A source port that, with two backends, the flow hash would send to B2.
    let cfg = 0x9f;
    let sport = (40000..41000u16)
        .find(|p| flow_hash(cfg, v4(CLIENT), v4(VIP), *p, 80, 6) % 2 == 1)
        .unwrap();
    l.send(l.if0, &tcp4(CLIENT, VIP, sport, 80, PEER0, MAC0));
    assert_eq!(read4(&Lab::one(&l.out1)).1, B1);
    let id = service(&l, &[B1, B2]);
    l.send(l.if0, &tcp4(CLIENT, VIP, sport, 80, PEER0, MAC0));
    assert_eq!(
        read4(&Lab::one(&l.out1)).1,
        B1,
        "the old flow keeps its backend"
    );
    // New flows spread over both.
    let mut seen = std::collections::BTreeSet::new();
    for p in 50000..50020 {
        l.send(l.if0, &tcp4(CLIENT, VIP, p, 80, PEER0, MAC0));
        seen.insert(read4(&Lab::one(&l.out1)).1);
    }
    assert_eq!(seen.len(), 2, "new flows reach the new backend too");
    assert_eq!(l.cnat.sessions.len(), 2 * 21);
    // Another service's session survives the delete.
    l.cnat.translation_update(Translation {
        vip: ep4(VIP, 443),
        proto: 6,
        paths: vec![PathEp {
            dst: ep4(B2, 8443),
            ..Default::default()
        }],
        ..Default::default()
    });
    l.send(l.if0, &tcp4(CLIENT, VIP, 40000, 443, PEER0, MAC0));
    assert_eq!(read4(&Lab::one(&l.out1)).1, B2);
    assert!(l.cnat.translation_del(id));
    assert_eq!(
        l.cnat.sessions.len(),
        2,
        "only the other service's sessions remain"
    );
    l.send(l.if0, &tcp4(CLIENT, VIP, sport, 80, PEER0, MAC0));
    assert_eq!(
        read4(&Lab::one(&l.out1)),
        (CLIENT, VIP, sport, 80),
        "deleted: follows the FIB"
    );
    l.no_leaks();
}

#[test]
fn icmp_error_from_the_backend_is_translated_back() {
    let mut l = lab();
    service(&l, &[B1]);
    l.send(l.if0, &tcp4(CLIENT, VIP, 40000, 80, PEER0, MAC0));
    let sent = Lab::one(&l.out1);
    // The backend answers the packet it got (quoting its IP header on) with an ICMP error.
    let quoted = &sent[14..];
    let mut err = Vec::new();
    PacketBuilder::ethernet2(PEER1, MAC1)
        .ipv4(B1, CLIENT, 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Port,
        ))
        .write(&mut err, quoted)
        .unwrap();
    l.send(l.if1, &err);
    let got = Lab::one(&l.out0);
    assert_eq!(read4(&got).0, VIP, "outer source: the VIP");
    assert_eq!(read4(&got).1, CLIENT);
    let inner = &got[14 + 20 + 8..];
    let ih = etherparse::Ipv4HeaderSlice::from_slice(inner)
        .unwrap()
        .to_header();
    assert_eq!(ih.calc_header_checksum(), ih.header_checksum);
    assert_eq!((ih.source, ih.destination), (CLIENT, VIP));
    assert_eq!(
        &inner[20..24],
        &[0x9c, 0x40, 0, 80],
        "quoted ports 40000 -> 80"
    );
    assert_eq!(l.counter(CnatInput::IP4, in_err::ICMP_ERROR_TRANSLATED), 1);
    // An error about a flow without a session passes unchanged.
    let mut other = Vec::new();
    let stray = tcp4(CLIENT, B2, 1, 2, PEER0, MAC0);
    PacketBuilder::ethernet2(PEER1, MAC1)
        .ipv4(B2, CLIENT, 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Port,
        ))
        .write(&mut other, &stray[14..])
        .unwrap();
    l.send(l.if1, &other);
    assert_eq!(read4(&Lab::one(&l.out0)).0, B2);
    l.no_leaks();
}

#[test]
fn clusterip_dnat_and_replies_un_dnat_ip6() {
    let mut l = lab();
    let ep6 = |a: [u8; 16], port| Endpoint {
        addr: u128::from_be_bytes(a),
        port,
        ip6: true,
    };
    l.cnat.translation_update(Translation {
        vip: ep6(VIP6, 53),
        proto: 17,
        flags: 1 | 8,
        paths: vec![PathEp {
            dst: ep6(B16, 5353),
            ..Default::default()
        }],
        ..Default::default()
    });
    let udp6 = |src, dst, sp, dp, from: [u8; 6], to: [u8; 6]| {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(from, to)
            .ipv6(src, dst, 64)
            .udp(sp, dp)
            .write(&mut v, b"query")
            .unwrap();
        v
    };
    let read6 = |f: &[u8]| {
        let s = SlicedPacket::from_ethernet(f).unwrap();
        let Some(NetSlice::Ipv6(ip)) = s.net else {
            panic!("not ipv6")
        };
        let (src, dst) = (ip.header().source(), ip.header().destination());
        let Some(TransportSlice::Udp(u)) = s.transport else {
            panic!("not udp")
        };
        let uh = u.to_header();
        assert_eq!(
            uh.calc_checksum_ipv6_raw(src, dst, u.payload()).unwrap(),
            uh.checksum
        );
        (src, dst, uh.source_port, uh.destination_port)
    };
    l.send(l.if0, &udp6(CLIENT6, VIP6, 1111, 53, PEER0, MAC0));
    assert_eq!(read6(&Lab::one(&l.out1)), (CLIENT6, B16, 1111, 5353));
    l.send(l.if1, &udp6(B16, CLIENT6, 5353, 1111, PEER1, MAC1));
    assert_eq!(read6(&Lab::one(&l.out0)), (VIP6, CLIENT6, 53, 1111));
    assert_eq!(l.counter(CnatInput::IP6, in_err::NEW_SESSIONS), 1);
    l.no_leaks();
}

#[test]
fn full_session_table_is_a_counted_drop_and_purge_frees_it() {
    let mut l = lab();
    service(&l, &[B1]);
    let limit = l.cnat.sessions.limit();
    let flows = limit / 2;
    for p in 0..flows as u16 {
        l.send(l.if0, &tcp4(CLIENT, VIP, 10000 + p, 80, PEER0, MAC0));
    }
    assert_eq!(Lab::take(&l.out1).len(), flows);
    l.send(l.if0, &tcp4(CLIENT, VIP, 9999, 80, PEER0, MAC0));
    assert!(Lab::take(&l.out1).is_empty(), "dropped");
    assert!(
        l.counter(CnatInput::IP4, in_err::SESSIONS_FULL)
            + l.counter(CnatInput::IP4, in_err::NO_SLOT)
            == 1
    );
    assert_eq!(l.cnat.purge(), 2 * flows);
    l.send(l.if0, &tcp4(CLIENT, VIP, 9999, 80, PEER0, MAC0));
    assert_eq!(Lab::take(&l.out1).len(), 1);
    l.no_leaks();
}

/// pg1's address: the node address SNAT uses.
const NODE: [u8; 4] = [198, 19, 0, 1];
const NODE6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0x19, 0, 0, 0, 0, 0, 0, 0, 1];

/// calico's SNAT setup: pg0 is a pod interface whose pool has natOutgoing (POD and INCLUDE),
/// the node addresses SNAT to, the K8S policy, and `exclude` left alone.
fn k8s_snat(l: &Lab, exclude: &[[u8; 4]]) {
    let if0 = l.if0;
    l.cnat.snat_edit(|s| {
        s.ip4 = v4(NODE);
        s.ip6 = u128::from_be_bytes(NODE6);
        s.policy = Policy::K8s;
        for t in [IfTable::Pod, IfTable::IncludeV4, IfTable::IncludeV6] {
            s.tables.entry(t).or_default().insert(if0);
        }
        for e in exclude {
            s.exclude.add(v4(*e), 128);
        }
    });
}

#[test]
fn snat_on_the_output_arc_and_the_reply_un_snatted() {
    let mut l = lab();
    k8s_snat(&l, &[B1]);
    // A pod reaches an outside address: it leaves pg1 from the node address and a new port.
    l.send(l.if0, &tcp4(CLIENT, B2, 40000, 443, PEER0, MAC0));
    let (src, dst, sport, dport) = read4(&Lab::one(&l.out1));
    assert_eq!(
        (src, dst, dport),
        (NODE, B2, 443),
        "SNAT to the node address"
    );
    assert!(sport >= 49152, "a port from the SNAT range: {sport}");
    assert_eq!(l.counter(CnatOutput::IP4, out_err::NEW_SESSIONS), 1);
    assert_eq!(l.cnat.sessions.len(), 2, "forward and return entries");
    // The reply, to the node address, is un-SNATed before the lookup and reaches the pod.
    l.send(l.if1, &tcp4(B2, NODE, 443, sport, PEER1, MAC1));
    assert_eq!(read4(&Lab::one(&l.out0)), (B2, CLIENT, 443, 40000));
    // The flow's next packet keeps its port; no new session.
    l.send(l.if0, &tcp4(CLIENT, B2, 40000, 443, PEER0, MAC0));
    assert_eq!(read4(&Lab::one(&l.out1)), (NODE, B2, sport, 443));
    assert_eq!(l.counter(CnatOutput::IP4, out_err::NEW_SESSIONS), 1);
    // An excluded destination is left alone.
    l.send(l.if0, &tcp4(CLIENT, B1, 40000, 443, PEER0, MAC0));
    assert_eq!(read4(&Lab::one(&l.out1)), (CLIENT, B1, 40000, 443));
    // SNAT is the output arc's work: without cnat-output-ip4 on pg1 a new flow leaves as is.
    l.fwd
        .feature_enable(l.if1, "ip4-output", CnatOutput::IP4, false)
        .unwrap();
    l.send(l.if0, &tcp4(CLIENT, B2, 40001, 443, PEER0, MAC0));
    assert_eq!(read4(&Lab::one(&l.out1)), (CLIENT, B2, 40001, 443));
    assert_eq!(l.cnat.sessions.len(), 2);
    l.no_leaks();
}

/// A pod reaches a service whose backend is outside: DNAT on the input arc, SNAT on the output
/// arc; the reply is un-SNATed and un-DNATed in one step and comes from the VIP.
#[test]
fn service_to_an_outside_backend_is_dnatted_and_snatted_and_back() {
    let mut l = lab();
    k8s_snat(&l, &[]);
    service(&l, &[B1]);
    l.send(l.if0, &tcp4(CLIENT, VIP, 40000, 80, PEER0, MAC0));
    let (src, dst, sport, dport) = read4(&Lab::one(&l.out1));
    assert_eq!((src, dst, dport), (NODE, B1, 8080));
    assert_eq!(l.counter(CnatInput::IP4, in_err::NEW_SESSIONS), 1);
    assert_eq!(l.counter(CnatOutput::IP4, out_err::NEW_SESSIONS), 1);
    l.send(l.if1, &tcp4(B1, NODE, 8080, sport, PEER1, MAC1));
    assert_eq!(read4(&Lab::one(&l.out0)), (VIP, CLIENT, 80, 40000));
    l.no_leaks();
}

#[test]
fn snat_on_the_ip6_output_arc_and_back() {
    let mut l = lab();
    k8s_snat(&l, &[]);
    let udp6 = |src, dst, sp, dp, from: [u8; 6], to: [u8; 6]| {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(from, to)
            .ipv6(src, dst, 64)
            .udp(sp, dp)
            .write(&mut v, b"query")
            .unwrap();
        v
    };
    let read6 = |f: &[u8]| {
        let s = SlicedPacket::from_ethernet(f).unwrap();
        let Some(NetSlice::Ipv6(ip)) = s.net else {
            panic!("not ipv6")
        };
        let (src, dst) = (ip.header().source(), ip.header().destination());
        let Some(TransportSlice::Udp(u)) = s.transport else {
            panic!("not udp")
        };
        let uh = u.to_header();
        assert_eq!(
            uh.calc_checksum_ipv6_raw(src, dst, u.payload()).unwrap(),
            uh.checksum
        );
        (src, dst, uh.source_port, uh.destination_port)
    };
    l.send(l.if0, &udp6(CLIENT6, B16, 1111, 53, PEER0, MAC0));
    let (src, dst, sport, dport) = read6(&Lab::one(&l.out1));
    assert_eq!((src, dst, dport), (NODE6, B16, 53));
    assert!(sport >= 49152);
    assert_eq!(l.counter(CnatOutput::IP6, out_err::NEW_SESSIONS), 1);
    l.send(l.if1, &udp6(B16, NODE6, 53, sport, PEER1, MAC1));
    assert_eq!(read6(&Lab::one(&l.out0)), (B16, CLIENT6, 53, 1111));
    l.no_leaks();
}

/// An ICMP error rvpp builds itself (time exceeded, to the pod) passes the output arc with
/// its quoted packet untouched: the output node reads the IP header the rewrite put the L2
/// header before, not the quoted one (the metadata's L3 offset still names that).
#[test]
fn an_icmp_error_rvpp_builds_passes_the_output_arc_unchanged() {
    let mut l = lab();
    k8s_snat(&l, &[]);
    let mut v = Vec::new();
    PacketBuilder::ethernet2(PEER0, MAC0)
        .ipv4(CLIENT, B2, 1)
        .tcp(40000, 443, 1, 1000)
        .write(&mut v, b"request")
        .unwrap();
    l.send(l.if0, &v);
    let got = Lab::one(&l.out0);
    assert_eq!((read4(&got).0, read4(&got).1), ([198, 18, 0, 1], CLIENT));
    assert_eq!((got[14 + 20], got[14 + 21]), (11, 0), "time exceeded");
    let inner = &got[14 + 20 + 8..];
    let ih = etherparse::Ipv4HeaderSlice::from_slice(inner)
        .unwrap()
        .to_header();
    assert_eq!(
        (ih.source, ih.destination),
        (CLIENT, B2),
        "quoted header kept"
    );
    assert_eq!(
        &inner[20..24],
        &[0x9c, 0x40, 0x01, 0xbb],
        "quoted ports kept"
    );
    assert_eq!(l.counter(CnatOutput::IP4, out_err::NEW_SESSIONS), 0);
    assert!(l.cnat.sessions.is_empty());
    l.no_leaks();
}
