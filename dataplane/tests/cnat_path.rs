//! cnat through the whole graph: a ClusterIP DNATed to its backend and the replies un-DNATed
//! (IPv4 and IPv6), an unknown VIP port following the FIB, an update reaching only new flows,
//! a delete removing exactly its sessions, an ICMP error translated back, and SNAT by the K8S
//! policy on the output arcs (after rewrite) with its return traffic un-SNATed on the input
//! arcs. Frames are built and checked with etherparse.

mod cnat_lab;
mod common;
use cnat_lab::*;
use common::*;
use etherparse::{IpNumber, NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use rvpp_dataplane::cnat::node::{in_err, out_err};
use rvpp_dataplane::cnat::translation::{flow_hash, Endpoint, PathEp, Translation};
use rvpp_dataplane::nodes::cnat::{CnatInput, CnatOutput};

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
    // The flow's next packets keep their SNAT port: a DNATed packet the policy wants SNAT
    // for looks its SNAT session up.
    for _ in 0..2 {
        l.send(l.if0, &tcp4(CLIENT, VIP, 40000, 80, PEER0, MAC0));
        assert_eq!(read4(&Lab::one(&l.out1)), (NODE, B1, sport, 8080));
    }
    assert_eq!(l.counter(CnatOutput::IP4, out_err::NEW_SESSIONS), 1);
    // A DNATed packet the policy no longer wants SNAT for (its backend now excluded) skips
    // the SNAT lookup: the flow goes on un-SNATed, as a new one would be.
    l.cnat.snat_edit(|s| s.exclude.add(v4(B1), 128));
    l.send(l.if0, &tcp4(CLIENT, VIP, 40000, 80, PEER0, MAC0));
    assert_eq!(read4(&Lab::one(&l.out1)), (CLIENT, B1, 40000, 8080));
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

/// One vector of many flows, each node looking its sessions up some packets ahead: every
/// packet gets its own flow's rewrite. Established DNAT flows (to the VIP), their replies
/// (return traffic, which cnat-output skips), SNATed flows to outside and traffic no session
/// covers are interleaved; a truncated packet sits among them. The vector's result must equal
/// what the same packets give one at a time.
#[test]
fn a_vector_of_interleaved_flows_gets_each_flows_own_rewrite() {
    let mut l = lab();
    k8s_snat(&l, &[B1, B2]);
    service(&l, &[B1, B2]);
    // The frames, in the order they are sent, and where each leaves.
    let mut frames: Vec<(u32, Vec<u8>)> = Vec::new();
    for i in 0..24u16 {
        let if0 = l.if0;
        frames.push(match i % 4 {
            0 | 1 => (if0, tcp4(CLIENT, VIP, 41000 + i, 80, PEER0, MAC0)),
            2 => (
                if0,
                tcp4(CLIENT, [198, 19, 200, 9], 42000 + i, 443, PEER0, MAC0),
            ),
            _ => (if0, tcp4(CLIENT, B1, 43000 + i, 22, PEER0, MAC0)),
        });
    }
    // One at a time first: this makes the sessions and gives each packet's expected rewrite.
    let mut expect = Vec::new();
    for (on, f) in &frames {
        l.send(*on, f);
        expect.push(read4(&Lab::one(&l.out1)));
    }
    // The replies of the DNAT flows, from the backend each was given.
    let mut replies = Vec::new();
    for (e, (_, f)) in expect.iter().zip(&frames) {
        let (src, dst, sport, dport) = *e;
        if read4(f).1 == VIP {
            replies.push((tcp4(dst, src, dport, sport, PEER1, MAC1), read4(f)));
        }
    }
    let sessions = l.cnat.sessions.len();
    // Now all of it in one vector, replies and a truncated packet interleaved.
    let bufs = l.rt.buffers();
    let mut vector = Vec::new();
    // To the VIP with 2 bytes of TCP: a valid IP packet, too short for the ports.
    let mut truncated = tcp4(CLIENT, VIP, 40999, 80, PEER0, MAC0);
    truncated.truncate(14);
    etherparse::Ipv4Header::new(2, 64, IpNumber::TCP, CLIENT, VIP)
        .unwrap()
        .write(&mut truncated)
        .unwrap();
    truncated.extend_from_slice(&[0x9f, 0xe7]);
    let mut ri = replies.iter();
    for (k, (on, f)) in frames.iter().enumerate() {
        let bi = bufs.alloc_from_bytes(f).unwrap();
        bufs.meta(bi).rx_sw_if_index = *on;
        vector.push(bi);
        if let Some((r, _)) = ri.next() {
            let bi = bufs.alloc_from_bytes(r).unwrap();
            bufs.meta(bi).rx_sw_if_index = l.if1;
            vector.push(bi);
        }
        if k == 9 {
            let bi = bufs.alloc_from_bytes(&truncated).unwrap();
            bufs.meta(bi).rx_sw_if_index = l.if0;
            vector.push(bi);
        }
    }
    l.rt.inject("ethernet-input", &vector).unwrap();
    let got: Vec<_> = Lab::take(&l.out1).iter().map(|f| read4(f)).collect();
    assert_eq!(got, expect, "each forward packet its own flow's rewrite");
    let back: Vec<_> = Lab::take(&l.out0).iter().map(|f| read4(f)).collect();
    let want: Vec<_> = replies
        .iter()
        .map(|(_, (src, dst, sport, dport))| (*dst, *src, *dport, *sport))
        .collect();
    assert_eq!(back, want, "each reply un-DNATed to its own client");
    assert_eq!(l.counter(CnatInput::IP4, in_err::TRUNCATED), 1);
    assert_eq!(l.cnat.sessions.len(), sessions, "no session made twice");
    l.no_leaks();
}
