//! The IPv4 path through the whole graph with crafted frames, checked by an independent parser.

mod common;
use common::*;
use etherparse::{Ethernet2Header, IpNumber, Ipv4Header, PacketBuilder, SlicedPacket};
use rvpp_dataplane::buffer::BufferPool;
use rvpp_dataplane::forwarding::{Af, Forwarding, Path, Prefix};
use rvpp_dataplane::graph::DeviceNodes;
use rvpp_dataplane::nodes::standard_graph;
use rvpp_dataplane::runtime::Runtime;
use rvpp_dataplane::tables::Shared;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

struct Lab {
    pool: Arc<BufferPool>,
    shared: Arc<Shared>,
    fwd: Forwarding,
    rt: Runtime,
    out0: Frames,
    out1: Frames,
    /// sw_if_index of pg0 and pg1 (0 is local0).
    if0: u32,
    if1: u32,
}

fn ip(a: &str) -> u32 {
    u32::from(a.parse::<Ipv4Addr>().unwrap())
}

fn lab() -> Lab {
    let pool = BufferPool::with_backing(4096, 2048, false).unwrap();
    let shared = Shared::new();
    let mut fwd = Forwarding::new(shared.clone());
    let if0 = fwd.interface_add("pg0", "pg", MAC0, true, 1500).unwrap();
    let if1 = fwd.interface_add("pg1", "pg", MAC1, true, 1400).unwrap();
    fwd.address_add(if0, Prefix::parse("198.18.0.1/24").unwrap())
        .unwrap();
    fwd.address_add(if1, Prefix::parse("198.19.0.1/24").unwrap())
        .unwrap();
    fwd.set_admin_up(if0, true).unwrap();
    fwd.set_admin_up(if1, true).unwrap();
    let nh: IpAddr = "198.19.0.2".parse().unwrap();
    fwd.neighbor_add(if1, nh, PEER1, true).unwrap();
    fwd.neighbor_add(if0, "198.18.0.2".parse().unwrap(), PEER0, true)
        .unwrap();
    fwd.route_add(
        0,
        Prefix::parse("198.19.128.0/17").unwrap(),
        vec![Path::via(nh, Some(if1))],
    )
    .unwrap();
    let graph = standard_graph(&[DeviceNodes::tx_only("pg-tx")]).unwrap();
    let fwd_shared = shared.clone();
    let mut rt = Runtime::new(graph, pool.local(), shared, 0, "test".into()).unwrap();
    let (out0, out1) = (Frames::default(), Frames::default());
    rt.set_tx(if0, Box::new(Capture(out0.clone()))).unwrap();
    rt.set_tx(if1, Box::new(Capture(out1.clone()))).unwrap();
    Lab {
        pool,
        shared: fwd_shared,
        fwd,
        rt,
        out0,
        out1,
        if0,
        if1,
    }
}

fn udp_frame(dst: [u8; 4], ttl: u8, payload: usize) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(PEER0, MAC0)
        .ipv4([198, 18, 0, 2], dst, ttl)
        .udp(1000, 2000);
    let p = vec![0x5a; payload];
    let mut v = Vec::new();
    b.write(&mut v, &p).unwrap();
    v
}

impl Lab {
    fn send(&mut self, frame: &[u8]) {
        let bufs = self.rt.buffers();
        let bi = bufs.alloc_from_bytes(frame).unwrap();
        bufs.meta(bi).rx_sw_if_index = self.if0;
        self.rt.inject("ethernet-input", &[bi]).unwrap();
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

#[test]
fn forwards_with_rewrite_ttl_and_checksum() {
    let mut l = lab();
    l.send(&udp_frame([198, 19, 200, 7], 64, 100));
    let out = Lab::take(&l.out1);
    assert_eq!(out.len(), 1);
    let (eth, rest) = Ethernet2Header::from_slice(&out[0]).unwrap();
    assert_eq!(eth.destination, PEER1);
    assert_eq!(eth.source, MAC1);
    let (ip, _) = Ipv4Header::from_slice(rest).unwrap();
    assert_eq!(ip.time_to_live, 63);
    assert_eq!(ip.header_checksum, ip.calc_header_checksum());
    assert_eq!(ip.destination, [198, 19, 200, 7]);
    assert!(Lab::take(&l.out0).is_empty());
    l.no_leaks();
}

#[test]
fn ttl_one_gets_time_exceeded_back_to_sender() {
    let mut l = lab();
    l.send(&udp_frame([198, 19, 200, 7], 1, 32));
    assert!(Lab::take(&l.out1).is_empty());
    let back = Lab::take(&l.out0);
    assert_eq!(back.len(), 1);
    let p = SlicedPacket::from_ethernet(&back[0]).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip4)) = &p.net else {
        panic!("not ipv4")
    };
    assert_eq!(ip4.header().source(), [198, 18, 0, 1]);
    assert_eq!(ip4.header().destination(), [198, 18, 0, 2]);
    assert_eq!(ip4.header().protocol(), IpNumber::ICMP);
    let icmp = &ip4.payload().payload;
    assert_eq!((icmp[0], icmp[1]), (11, 0));
    assert_eq!(rvpp_dataplane::wire::checksum(icmp), 0);
    l.no_leaks();
}

#[test]
fn echo_request_to_our_address_is_answered() {
    let mut l = lab();
    let b = PacketBuilder::ethernet2(PEER0, MAC0)
        .ipv4([198, 18, 0, 2], [198, 18, 0, 1], 64)
        .icmpv4_echo_request(7, 9);
    let mut f = Vec::new();
    b.write(&mut f, b"hello rvpp").unwrap();
    l.send(&f);
    let back = Lab::take(&l.out0);
    assert_eq!(back.len(), 1);
    let p = SlicedPacket::from_ethernet(&back[0]).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip4)) = &p.net else {
        panic!("not ipv4")
    };
    assert_eq!(ip4.header().destination(), [198, 18, 0, 2]);
    let icmp = &ip4.payload().payload;
    assert_eq!(icmp[0], 0);
    assert_eq!(&icmp[8..], b"hello rvpp");
    assert_eq!(rvpp_dataplane::wire::checksum(icmp), 0);
    assert_eq!(l.error("ip4-local", 0), 1);
    l.no_leaks();
}

#[test]
fn too_big_with_df_gets_fragmentation_needed() {
    let mut l = lab();
    let mut f = udp_frame([198, 19, 200, 7], 64, 1450);
    f[14 + 6] |= 0x40; // DF
    let c = {
        f[14 + 10] = 0;
        f[14 + 11] = 0;
        rvpp_dataplane::wire::checksum(&f[14..34])
    };
    f[24..26].copy_from_slice(&c.to_be_bytes());
    l.send(&f);
    assert!(Lab::take(&l.out1).is_empty());
    let back = Lab::take(&l.out0);
    assert_eq!(back.len(), 1);
    let icmp = &back[0][34..];
    assert_eq!((icmp[0], icmp[1]), (3, 4));
    assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1400);
    l.no_leaks();
}

#[test]
fn no_route_gets_unreachable() {
    let mut l = lab();
    l.send(&udp_frame([203, 0, 113, 9], 64, 10));
    let back = Lab::take(&l.out0);
    assert_eq!(back.len(), 1);
    assert_eq!((back[0][34], back[0][35]), (3, 0));
    l.no_leaks();
}

#[test]
fn arp_request_for_us_is_answered_and_sender_learned() {
    let mut l = lab();
    let mut f = vec![0u8; 60];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0xc3]);
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    let mut arp = rvpp_dataplane::wire::ArpPkt::new(&mut f[14..]).unwrap();
    arp.fill(
        1,
        &[2, 0, 0, 0, 0, 0xc3],
        ip("198.18.0.9"),
        &[0; 6],
        ip("198.18.0.1"),
    );
    l.send(&f);
    let back = Lab::take(&l.out0);
    assert_eq!(back.len(), 1);
    assert_eq!(&back[0][0..6], &[2, 0, 0, 0, 0, 0xc3]);
    assert_eq!(u16::from_be_bytes([back[0][20], back[0][21]]), 2);
    assert_eq!(&back[0][22..28], &MAC0);
    assert_eq!(l.fwd.apply_learned(), 1);
    assert!(l
        .fwd
        .neighbors()
        .iter()
        .any(|n| n.ip == IpAddr::from([198, 18, 0, 9]) && n.mac == [2, 0, 0, 0, 0, 0xc3]));
    // Now the learned neighbour is reachable directly.
    l.send(&udp_frame([198, 18, 0, 9], 64, 10));
    let out = Lab::take(&l.out0);
    assert_eq!(out.len(), 1);
    assert_eq!(&out[0][0..6], &[2, 0, 0, 0, 0, 0xc3]);
    l.no_leaks();
}

fn arp_request(sender: &str, target: &str) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0xc3]);
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    let mut arp = rvpp_dataplane::wire::ArpPkt::new(&mut f[14..]).unwrap();
    arp.fill(1, &[2, 0, 0, 0, 0, 0xc3], ip(sender), &[0; 6], ip(target));
    f
}

#[test]
fn proxy_arp_answers_for_its_ranges_on_enabled_interfaces() {
    use rvpp_dataplane::nodes::arp::arp_error;
    let mut l = lab();
    let ask = arp_request("198.18.0.9", "203.0.113.7");
    l.send(&ask);
    assert!(Lab::take(&l.out0).is_empty(), "not ours, no proxy");
    l.fwd
        .proxy_arp_add(0, ip("203.0.113.0"), ip("203.0.113.255"));
    l.send(&ask);
    assert!(
        Lab::take(&l.out0).is_empty(),
        "a range, but proxy ARP is off on pg0"
    );
    l.fwd.set_proxy_arp(l.if0, true).unwrap();
    l.send(&ask);
    let back = Lab::take(&l.out0);
    assert_eq!(back.len(), 1);
    assert_eq!(u16::from_be_bytes([back[0][20], back[0][21]]), 2, "a reply");
    assert_eq!(&back[0][22..28], &MAC0, "with our MAC");
    assert_eq!(&back[0][28..32], &[203, 0, 113, 7], "for the asked address");
    assert_eq!(l.error("arp-input", arp_error::PROXY_REPLIES_SENT), 1);
    // Outside the range, in another table, or gratuitous: not answered.
    l.send(&arp_request("198.18.0.9", "203.0.114.7"));
    l.send(&arp_request("203.0.113.9", "203.0.113.9"));
    assert!(Lab::take(&l.out0).is_empty());
    l.fwd
        .proxy_arp_del(0, ip("203.0.113.0"), ip("203.0.113.255"))
        .unwrap();
    assert!(l
        .fwd
        .proxy_arp_del(0, ip("203.0.113.0"), ip("203.0.113.255"))
        .is_err());
    l.send(&ask);
    assert!(Lab::take(&l.out0).is_empty(), "range removed");
    l.fwd.apply_learned();
    l.no_leaks();
}

#[test]
fn unresolved_next_hop_sends_arp_request() {
    let mut l = lab();
    l.send(&udp_frame([198, 19, 0, 77], 64, 10));
    let out = Lab::take(&l.out1);
    assert_eq!(out.len(), 1);
    assert_eq!(&out[0][0..6], &[0xff; 6]);
    assert_eq!(u16::from_be_bytes([out[0][12], out[0][13]]), 0x0806);
    assert_eq!(&out[0][38..42], &[198, 19, 0, 77]);
    l.no_leaks();
}

#[test]
fn malformed_frames_are_dropped_and_counted() {
    let mut l = lab();
    let good = udp_frame([198, 19, 200, 7], 64, 40);
    let mut cases: Vec<(Vec<u8>, &str, u16)> = Vec::new();
    cases.push((good[..10].to_vec(), "ethernet-input", 0));
    cases.push((good[..30].to_vec(), "ip4-input", 0));
    let mut bad_ck = good.clone();
    bad_ck[14 + 10] ^= 0xff;
    cases.push((bad_ck, "ip4-input", 3));
    let mut bad_len = good.clone();
    bad_len[14 + 2..14 + 4].copy_from_slice(&2000u16.to_be_bytes());
    let ck = {
        bad_len[24] = 0;
        bad_len[25] = 0;
        rvpp_dataplane::wire::checksum(&bad_len[14..34])
    };
    bad_len[24..26].copy_from_slice(&ck.to_be_bytes());
    cases.push((bad_len, "ip4-input", 4));
    let mut bad_ver = good.clone();
    bad_ver[14] = 0x65;
    cases.push((bad_ver, "ip4-input", 1));
    let mut bad_ihl = good.clone();
    bad_ihl[14] = 0x43;
    cases.push((bad_ihl, "ip4-input", 2));
    let mut other_mac = good.clone();
    other_mac[0..6].copy_from_slice(&[2, 9, 9, 9, 9, 9]);
    cases.push((other_mac, "ethernet-input", 3));
    let mut unknown_type = good.clone();
    unknown_type[12..14].copy_from_slice(&0x1234u16.to_be_bytes());
    cases.push((unknown_type, "ethernet-input", 4));
    for (frame, node, code) in cases {
        let before = l.error(node, code);
        l.send(&frame);
        assert_eq!(l.error(node, code), before + 1, "{node} error {code}");
    }
    assert!(Lab::take(&l.out1).is_empty());
    // TTL 0 is answered with time exceeded, never forwarded.
    l.send(&udp_frame([198, 19, 200, 7], 0, 10));
    assert!(Lab::take(&l.out1).is_empty());
    assert_eq!(l.error("ip4-input", 5), 1);
    // Every truncation of a good frame: no panic, nothing forwarded twice.
    for cut in 0..good.len() {
        l.send(&good[..cut]);
    }
    assert!(Lab::take(&l.out1).len() <= 1);
    l.no_leaks();
}

#[test]
fn ip4_options_are_forwarded() {
    let mut l = lab();
    // A 24-byte header with one NOP+EOL option word.
    let mut f = udp_frame([198, 19, 200, 7], 64, 20);
    let mut ip4 = f[14..34].to_vec();
    ip4[0] = 0x46;
    let tl = u16::from_be_bytes([ip4[2], ip4[3]]) + 4;
    ip4[2..4].copy_from_slice(&tl.to_be_bytes());
    ip4.extend_from_slice(&[1, 1, 1, 0]);
    ip4[10] = 0;
    ip4[11] = 0;
    let c = rvpp_dataplane::wire::checksum(&ip4);
    ip4[10..12].copy_from_slice(&c.to_be_bytes());
    let mut nf = f[..14].to_vec();
    nf.extend_from_slice(&ip4);
    nf.extend_from_slice(&f[34..]);
    f = nf;
    l.send(&f);
    let out = Lab::take(&l.out1);
    assert_eq!(out.len(), 1);
    assert!(rvpp_dataplane::wire::ip4_header_ok(&out[0][14..38]));
    assert_eq!(out[0][14 + 8], 63);
    assert_eq!(l.error("ip4-input", 7), 1);
    l.no_leaks();
}

#[test]
fn ecmp_spreads_flows_over_paths() {
    let mut l = lab();
    let if1 = l.if1;
    let a: IpAddr = "198.19.0.2".parse().unwrap();
    let b: IpAddr = "198.19.0.3".parse().unwrap();
    l.fwd
        .neighbor_add(if1, b, [2, 0, 0, 0, 0, 0xb2], true)
        .unwrap();
    l.fwd
        .route_add(
            0,
            Prefix::parse("198.19.64.0/18").unwrap(),
            vec![Path::via(a, Some(if1)), Path::via(b, Some(if1))],
        )
        .unwrap();
    for i in 0..64u8 {
        let mut f = udp_frame([198, 19, 64, i], 64, 10);
        f[34..36].copy_from_slice(&(1000 + i as u16).to_be_bytes());
        l.send(&f);
    }
    let out = Lab::take(&l.out1);
    assert_eq!(out.len(), 64);
    let to_b = out.iter().filter(|f| f[5] == 0xb2).count();
    assert!(to_b > 8 && to_b < 56, "flows split {to_b}/64");
    l.no_leaks();
}

#[test]
fn l2_xconnect_passes_frames_untouched() {
    let mut l = lab();
    l.fwd.set_xconnect(l.if0, Some(l.if1)).unwrap();
    let mut f = udp_frame([203, 0, 113, 9], 1, 10);
    f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes()); // not even IP
    l.send(&f);
    let out = Lab::take(&l.out1);
    assert_eq!(out, vec![f]);
    l.fwd.set_xconnect(l.if0, None).unwrap();
    l.send(&udp_frame([198, 19, 200, 7], 64, 10));
    assert_eq!(Lab::take(&l.out1)[0][14 + 8], 63, "back to routing");
    l.no_leaks();
}

#[test]
fn vlan_subinterface_receives_and_replies_tagged() {
    let mut l = lab();
    let sub = l.fwd.vlan_subif_add(l.if0, 100).unwrap();
    l.fwd
        .address_add(sub, Prefix::parse("198.18.100.1/24").unwrap())
        .unwrap();
    l.fwd.set_admin_up(sub, true).unwrap();
    l.fwd
        .neighbor_add(sub, "198.18.100.2".parse().unwrap(), PEER0, true)
        .unwrap();
    let b = PacketBuilder::ethernet2(PEER0, MAC0)
        .single_vlan(etherparse::VlanId::try_new(100).unwrap())
        .ipv4([198, 18, 100, 2], [198, 18, 100, 1], 64)
        .icmpv4_echo_request(1, 1);
    let mut f = Vec::new();
    b.write(&mut f, b"tagged").unwrap();
    l.send(&f);
    let back = Lab::take(&l.out0);
    assert_eq!(back.len(), 1, "reply leaves on the parent's tx queue");
    assert_eq!(u16::from_be_bytes([back[0][12], back[0][13]]), 0x8100);
    assert_eq!(u16::from_be_bytes([back[0][14], back[0][15]]) & 0xfff, 100);
    assert_eq!(u16::from_be_bytes([back[0][16], back[0][17]]), 0x0800);
    assert_eq!(back[0][18 + 20], 0, "echo reply");
    // A tag nobody configured is dropped and counted.
    let mut other = f.clone();
    other[15] = 101;
    l.send(&other);
    assert_eq!(l.error("ethernet-input", 2), 1);
    l.no_leaks();
}

/// Test features: each records the packets it sees and passes them on with one call.
mod test_features {
    use rvpp_dataplane::graph::{Node, NodeInfo, NodeKind};
    use rvpp_dataplane::runtime::Ctx;
    use std::sync::{Arc, Mutex};

    rvpp_dataplane::next_edges! {
        pub mod next {
            DROP => "error-drop",
        }
    }
    rvpp_dataplane::node_errors! {
        pub mod error {
            UDP_DROPPED => "udp dropped by test feature",
        }
    }

    /// (feature, first 14 bytes) of each packet a test feature saw, in order.
    pub type Seen = Arc<Mutex<Vec<(&'static str, Vec<u8>)>>>;

    pub struct Recorder {
        pub name: &'static str,
        pub seen: Seen,
        /// Drop UDP instead of passing it on.
        pub drop_udp: bool,
    }

    impl Node for Recorder {
        fn info(&self) -> NodeInfo {
            NodeInfo {
                name: self.name,
                kind: NodeKind::Internal,
                next_nodes: next::NAMES,
                errors: error::NAMES,
            }
        }
        fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
            let errs = cx.errs();
            let arc = cx.arc();
            for (i, &bi) in bufs.iter().enumerate() {
                let b = cx.bufs.get(bi);
                let d = b.data();
                self.seen
                    .lock()
                    .unwrap()
                    .push((self.name, d[..d.len().min(14)].to_vec()));
                if self.drop_udp && d.get(9) == Some(&17) {
                    b.meta.error = errs.error(error::UDP_DROPPED);
                    nexts[i] = next::DROP;
                } else {
                    nexts[i] = arc.next(b.meta.feature_mask);
                }
            }
        }
    }

    pub fn recorder(name: &'static str, seen: &Seen, drop_udp: bool) -> Box<dyn Node> {
        Box::new(Recorder {
            name,
            seen: seen.clone(),
            drop_udp,
        })
    }
}

use rvpp_dataplane::feature::Feature;
use rvpp_dataplane::forwarding::FwdError;
use test_features::{recorder, Seen};

/// The lab with a graph built by `build` (which gets the standard builder with pg-tx).
fn lab_with(
    build: impl FnOnce(rvpp_dataplane::graph::GraphBuilder) -> rvpp_dataplane::graph::GraphBuilder,
) -> Lab {
    let mut l = lab();
    let graph = build(rvpp_dataplane::nodes::standard().device(DeviceNodes::tx_only("pg-tx")))
        .build()
        .unwrap();
    l.fwd.use_features(graph.features.clone());
    let shared = l.shared.clone();
    let mut rt = Runtime::new(graph, l.pool.local(), shared, 0, "test".into()).unwrap();
    rt.set_tx(l.if0, Box::new(Capture(l.out0.clone()))).unwrap();
    rt.set_tx(l.if1, Box::new(Capture(l.out1.clone()))).unwrap();
    l.rt = rt;
    l
}

/// A feature on the ip4-unicast arc runs between ip4-input and ip4-lookup only on the
/// interfaces that enable it by name; the forwarding nodes are not touched to add it.
#[test]
fn feature_arc_inserts_a_node_per_interface() {
    let seen = Seen::default();
    let mut l = lab_with(|b| {
        b.feature(
            Feature::new("ip4-unicast", "test-drop-udp"),
            recorder("test-drop-udp", &seen, true),
        )
    });
    let f = udp_frame([198, 19, 0, 2], 64, 10);
    l.send(&f);
    assert_eq!(Lab::take(&l.out1).len(), 1, "feature off: forwarded");
    l.fwd
        .feature_enable(l.if0, "ip4-unicast", "test-drop-udp", true)
        .unwrap();
    l.send(&f);
    assert!(Lab::take(&l.out1).is_empty(), "feature on: dropped");
    assert_eq!(
        l.error("test-drop-udp", test_features::error::UDP_DROPPED),
        1
    );
    // Enabled on pg0 only: traffic arriving on pg1 does not see it.
    assert_eq!(
        l.fwd.interface_features(l.if0).unwrap(),
        vec![("ip4-unicast", vec!["test-drop-udp"])]
    );
    assert!(l.fwd.interface_features(l.if1).unwrap().is_empty());
    l.fwd
        .feature_enable(l.if0, "ip4-unicast", "test-drop-udp", false)
        .unwrap();
    l.send(&f);
    assert_eq!(Lab::take(&l.out1).len(), 1, "feature off again");
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "the node ran only while enabled"
    );
    l.no_leaks();
}

/// runs_before / runs_after decide the order of a packet through the features, not the order
/// of registration; a feature between two enabled ones can be skipped.
#[test]
fn features_run_in_constraint_order_and_skip_disabled_ones() {
    let seen = Seen::default();
    let mut l = lab_with(|b| {
        b.feature(
            Feature::new("ip4-unicast", "test-c").runs_after(&["test-b"]),
            recorder("test-c", &seen, false),
        )
        .feature(
            Feature::new("ip4-unicast", "test-a").runs_before(&["test-b", "not-loaded"]),
            recorder("test-a", &seen, false),
        )
        .feature(
            Feature::new("ip4-unicast", "test-b"),
            recorder("test-b", &seen, false),
        )
    });
    // npol's untracked stage (first), ip4-udp-deny, the uRPF checks (before cnat),
    // ip4-inacl (after uRPF, before cnat), npol's pre-DNAT stage (before cnat),
    // cnat-input-ip4 and npol-rx-ip4 (after cnat-input-ip4), feature modules of the standard
    // graph, were registered first, so they lead.
    assert_eq!(
        l.fwd
            .features()
            .features(rvpp_dataplane::feature::arc::IP4_UNICAST),
        [
            "npol-untracked-rx-ip4",
            "ip4-udp-deny",
            "ip4-rx-urpf-loose",
            "ip4-rx-urpf-strict",
            "ip4-inacl",
            "npol-prednat-ip4",
            "cnat-input-ip4",
            "npol-rx-ip4",
            "test-a",
            "test-b",
            "test-c"
        ]
    );
    for f in ["test-c", "test-a", "test-b"] {
        l.fwd.feature_enable(l.if0, "ip4-unicast", f, true).unwrap();
    }
    l.send(&udp_frame([198, 19, 0, 2], 64, 10));
    let order: Vec<_> = seen.lock().unwrap().drain(..).map(|s| s.0).collect();
    assert_eq!(order, ["test-a", "test-b", "test-c"]);
    assert_eq!(Lab::take(&l.out1).len(), 1, "then ip4-lookup and out");
    l.fwd
        .feature_enable(l.if0, "ip4-unicast", "test-b", false)
        .unwrap();
    l.send(&udp_frame([198, 19, 0, 2], 64, 10));
    let order: Vec<_> = seen.lock().unwrap().drain(..).map(|s| s.0).collect();
    assert_eq!(order, ["test-a", "test-c"]);
    assert_eq!(Lab::take(&l.out1).len(), 1);
    l.no_leaks();
}

#[test]
fn a_cycle_or_an_unknown_arc_is_refused_when_the_graph_is_built() {
    let seen = Seen::default();
    let e = rvpp_dataplane::nodes::standard()
        .feature(
            Feature::new("ip4-unicast", "test-a").runs_before(&["test-b"]),
            recorder("test-a", &seen, false),
        )
        .feature(
            Feature::new("ip4-unicast", "test-b").runs_before(&["test-a"]),
            recorder("test-b", &seen, false),
        )
        .build()
        .err()
        .unwrap();
    assert!(e.contains("cycle") && e.contains("test-a, test-b"), "{e}");
    let e = rvpp_dataplane::nodes::standard()
        .feature(
            Feature::new("ip4-nowhere", "test-a"),
            recorder("test-a", &seen, false),
        )
        .build()
        .err()
        .unwrap();
    assert!(e.contains("unknown arc 'ip4-nowhere'"), "{e}");
    // Enabling by a name nobody registered is an error, not a silent no-op.
    let mut l = lab_with(|b| b);
    assert!(matches!(
        l.fwd.feature_enable(l.if0, "ip4-unicast", "no-such", true),
        Err(FwdError::Feature(_))
    ));
    assert!(matches!(
        l.fwd.feature_enable(l.if0, "no-arc", "ip4-udp-deny", true),
        Err(FwdError::Feature(_))
    ));
}

/// A feature on ip4-output sees the packet after ip4-rewrite (L2 header of the next hop, TTL
/// decremented), then interface-output sends it; other interfaces' packets skip it.
#[test]
fn output_arc_feature_sees_packets_after_rewrite() {
    let seen = Seen::default();
    let mut l = lab_with(|b| {
        b.feature(
            Feature::new("ip4-output", "test-tx-policy"),
            recorder("test-tx-policy", &seen, false),
        )
    });
    l.fwd
        .feature_enable(l.if1, "ip4-output", "test-tx-policy", true)
        .unwrap();
    l.send(&udp_frame([198, 19, 0, 2], 64, 10));
    let out = Lab::take(&l.out1);
    assert_eq!(out.len(), 1);
    let s = seen.lock().unwrap().drain(..).collect::<Vec<_>>();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].1[..6], PEER1, "rewritten: next hop's MAC");
    assert_eq!(s[0].1[6..12], MAC1);
    assert_eq!(out[0][14 + 8], 63, "ttl decremented before the feature");
    // Traffic leaving pg0 (the echo reply to pg0's address) does not pass the feature.
    let echo = {
        let b = PacketBuilder::ethernet2(PEER0, MAC0)
            .ipv4([198, 18, 0, 2], [198, 18, 0, 1], 64)
            .icmpv4_echo_request(1, 1);
        let mut v = Vec::new();
        b.write(&mut v, &[0u8; 8]).unwrap();
        v
    };
    l.send(&echo);
    assert_eq!(Lab::take(&l.out0).len(), 1);
    assert!(seen.lock().unwrap().is_empty());
    // A neighbour added after the feature was enabled gets an adjacency that has it too.
    l.fwd
        .neighbor_add(l.if1, "198.19.0.9".parse().unwrap(), PEER0, true)
        .unwrap();
    l.send(&udp_frame([198, 19, 0, 9], 64, 10));
    assert_eq!(Lab::take(&l.out1).len(), 1);
    assert_eq!(seen.lock().unwrap().len(), 1);
    l.fwd
        .feature_enable(l.if1, "ip4-output", "test-tx-policy", false)
        .unwrap();
    l.send(&udp_frame([198, 19, 0, 2], 64, 10));
    assert_eq!(Lab::take(&l.out1).len(), 1);
    assert_eq!(seen.lock().unwrap().len(), 1, "disabled: not seen again");
    l.no_leaks();
}

/// With features registered but none enabled, packets take exactly the path and bytes they
/// take in a graph without features, and no feature node runs.
#[test]
fn disabled_features_leave_the_path_untouched() {
    let seen = Seen::default();
    let frames = [
        udp_frame([198, 19, 0, 2], 64, 10),
        udp_frame([198, 19, 200, 7], 2, 100),
        udp_frame([203, 0, 113, 1], 64, 10),
    ];
    let mut plain = lab();
    let mut feat = lab_with(|b| {
        b.feature(
            Feature::new("ip4-unicast", "test-in"),
            recorder("test-in", &seen, true),
        )
        .feature(
            Feature::new("ip4-output", "test-out"),
            recorder("test-out", &seen, true),
        )
    });
    for f in &frames {
        plain.send(f);
        feat.send(f);
    }
    assert_eq!(Lab::take(&plain.out1), Lab::take(&feat.out1));
    assert_eq!(Lab::take(&plain.out0), Lab::take(&feat.out0));
    assert!(seen.lock().unwrap().is_empty());
    for node in ["test-in", "test-out"] {
        let n = feat.rt.graph().index(node).unwrap();
        assert_eq!(feat.rt.stats().nodes[n as usize].calls.get(), 0);
    }
    plain.no_leaks();
    feat.no_leaks();
}

/// The real ip4-udp-deny feature: its shared table is published by the control side and picked
/// up by the worker's node between vectors, per interface where it is enabled.
#[test]
fn udp_deny_feature_uses_its_shared_table() {
    use rvpp_dataplane::feature::FeatureTables;
    use rvpp_dataplane::nodes::udp_deny;
    let tables = FeatureTables::default();
    let mut l = lab();
    let graph = rvpp_dataplane::nodes::standard_with(&tables)
        .device(DeviceNodes::tx_only("pg-tx"))
        .build()
        .unwrap();
    l.fwd.use_features(graph.features.clone());
    let mut rt = Runtime::new(graph, l.pool.local(), l.shared.clone(), 0, "t".into()).unwrap();
    rt.set_tx(l.if1, Box::new(Capture(l.out1.clone()))).unwrap();
    l.rt = rt;
    let table = tables.get::<udp_deny::Table>();
    // udp_frame sends to port 2000.
    table.publish(udp_deny::DeniedPorts::new(vec![2000]));
    l.send(&udp_frame([198, 19, 0, 2], 64, 10));
    assert_eq!(Lab::take(&l.out1).len(), 1, "not enabled on pg0 yet");
    l.fwd
        .feature_enable(l.if0, "ip4-unicast", "ip4-udp-deny", true)
        .unwrap();
    l.send(&udp_frame([198, 19, 0, 2], 64, 10));
    assert!(Lab::take(&l.out1).is_empty(), "denied");
    assert_eq!(l.error("ip4-udp-deny", udp_deny::error::DENIED), 1);
    table.publish(udp_deny::DeniedPorts::new(vec![53]));
    l.send(&udp_frame([198, 19, 0, 2], 64, 10));
    assert_eq!(Lab::take(&l.out1).len(), 1, "new table: port 2000 passes");
    l.no_leaks();
}

#[test]
fn vrf_default_route_continues_in_another_table_and_loops_are_dropped() {
    let mut l = lab();
    // pg0 moves to VRF 10, whose only route is "look up in table 0" (calico's pod VRFs).
    l.fwd
        .address_del(l.if0, Prefix::parse("198.18.0.1/24").unwrap())
        .unwrap();
    l.fwd.table_add(Af::Ip4, 10, "pod-vrf").unwrap();
    l.fwd.set_table(l.if0, Af::Ip4, 10).unwrap();
    l.fwd
        .address_add(l.if0, Prefix::parse("198.18.0.1/24").unwrap())
        .unwrap();
    l.fwd
        .route_add(
            10,
            Prefix::parse("0.0.0.0/0").unwrap(),
            vec![Path::lookup(0)],
        )
        .unwrap();
    l.send(&udp_frame([198, 19, 200, 7], 64, 10));
    let out = Lab::take(&l.out1);
    assert_eq!(out.len(), 1, "forwarded through table 0");
    assert_eq!(out[0][14 + 8], 63);
    // A lookup to a table that does not exist is refused.
    assert!(l
        .fwd
        .route_add(
            10,
            Prefix::parse("203.0.113.0/24").unwrap(),
            vec![Path::lookup(99)]
        )
        .is_err());
    // 10 -> 11 -> 10 ...: dropped as a loop, not spun forever.
    l.fwd.table_add(Af::Ip4, 11, "").unwrap();
    l.fwd
        .route_add(
            11,
            Prefix::parse("0.0.0.0/0").unwrap(),
            vec![Path::lookup(10)],
        )
        .unwrap();
    l.fwd
        .route_add(
            10,
            Prefix::parse("203.0.113.0/24").unwrap(),
            vec![Path::lookup(11)],
        )
        .unwrap();
    l.send(&udp_frame([203, 0, 113, 9], 64, 10));
    assert!(Lab::take(&l.out1).is_empty());
    assert_eq!(
        l.error(
            "ip4-lookup",
            rvpp_dataplane::nodes::ip4::lookup_error::LOOKUP_LOOP
        ),
        1,
        "lookup loop counted"
    );
    l.no_leaks();
}

#[test]
fn punt_into_a_table_reaches_the_host_interface() {
    let mut l = lab();
    // Table 20 sends our own address to the "host" on pg1, as calico's host-tap VRF does.
    l.fwd.table_add(Af::Ip4, 20, "punt-table").unwrap();
    let host: IpAddr = "198.19.0.2".parse().unwrap();
    l.fwd
        .route_add(
            20,
            Prefix::parse("198.18.0.1/32").unwrap(),
            vec![Path::via(host, Some(l.if1))],
        )
        .unwrap();
    l.fwd.punt_redirect_table(Af::Ip4, None, 20, true).unwrap();
    let b = PacketBuilder::ethernet2(PEER0, MAC0)
        .ipv4([198, 18, 0, 2], [198, 18, 0, 1], 64)
        .tcp(40000, 22, 1, 1000);
    let mut f = Vec::new();
    b.write(&mut f, b"ssh").unwrap();
    l.send(&f);
    let out = Lab::take(&l.out1);
    assert_eq!(out.len(), 1, "punted TCP went to the host via table 20");
    assert_eq!(&out[0][0..6], &PEER1);
    assert_eq!(out[0][14 + 8], 64, "punted packets keep their TTL");
    l.no_leaks();
}

#[test]
fn a_table_that_routes_look_into_cannot_be_deleted() {
    let mut l = lab();
    l.fwd.table_add(Af::Ip4, 30, "target").unwrap();
    l.fwd.table_add(Af::Ip4, 31, "source").unwrap();
    l.fwd
        .route_add(
            31,
            Prefix::parse("0.0.0.0/0").unwrap(),
            vec![Path::lookup(30)],
        )
        .unwrap();
    assert!(
        l.fwd.table_del(Af::Ip4, 30).is_err(),
        "table 31 still looks into 30"
    );
    l.fwd
        .route_del(31, Prefix::parse("0.0.0.0/0").unwrap())
        .unwrap();
    l.fwd.table_del(Af::Ip4, 30).unwrap();
    l.fwd.table_del(Af::Ip4, 31).unwrap();
    l.no_leaks();
}

#[test]
fn local0_holds_index_0_and_cannot_be_deleted() {
    // calico and govpp send sw_if_index 0 to mean "all" or "none": no real interface may
    // ever get it, even after every interface is deleted and one is created again.
    let mut l = lab();
    assert_eq!(l.fwd.ifs().get(0).map(|i| i.name.as_str()), Some("local0"));
    assert!(l.if0 != 0 && l.if1 != 0);
    assert!(l.fwd.interface_del(0).is_err());
    l.fwd.interface_del(l.if0).unwrap();
    l.fwd.interface_del(l.if1).unwrap();
    let again = l.fwd.interface_add("pgx", "pg", MAC0, true, 1500).unwrap();
    assert_eq!(again, 1, "the lowest free instance, never 0");
}

/// An interface created in a deleted one's slot (same sw_if_index) gets adjacencies of its
/// own: its connected subnet gleans, where the deleted interface's adjacencies had become
/// drops for the routes that still pointed at them.
#[test]
fn interface_in_a_deleted_ones_slot_gets_fresh_adjacencies() {
    use rvpp_dataplane::tables::AdjKind;
    let mut l = lab();
    let adj_of = |l: &Lab, p: &str| {
        let r = l
            .fwd
            .route_get(0, Prefix::parse(p).unwrap())
            .expect("route");
        let lb = &l.fwd.fwd().lbs[r.lb as usize];
        l.fwd.fwd().adjs[lb.buckets[0] as usize].kind
    };
    assert_eq!(adj_of(&l, "198.19.0.0/24"), AdjKind::Glean);
    l.fwd.interface_del(l.if1).unwrap();
    let again = l.fwd.interface_add("pgy", "pg", MAC0, true, 1500).unwrap();
    assert_eq!(again, l.if1, "the freed slot");
    l.fwd.set_admin_up(again, true).unwrap();
    l.fwd
        .address_add(again, Prefix::parse("198.19.3.1/24").unwrap())
        .unwrap();
    assert_eq!(adj_of(&l, "198.19.3.0/24"), AdjKind::Glean);
}

/// A feature on ip4-local sees packets for our own addresses received on the interfaces that
/// enable it, before ip4-local answers them; forwarded packets do not pass it.
#[test]
fn local_arc_feature_sees_packets_for_us() {
    let seen = Seen::default();
    let mut l = lab_with(|b| {
        b.feature(
            Feature::new("ip4-local", "test-local"),
            recorder("test-local", &seen, false),
        )
    });
    let echo = {
        let b = PacketBuilder::ethernet2(PEER0, MAC0)
            .ipv4([198, 18, 0, 2], [198, 18, 0, 1], 64)
            .icmpv4_echo_request(1, 1);
        let mut v = Vec::new();
        b.write(&mut v, &[0u8; 8]).unwrap();
        v
    };
    l.send(&echo);
    assert_eq!(Lab::take(&l.out0).len(), 1, "answered without the feature");
    assert!(seen.lock().unwrap().is_empty());
    l.fwd
        .feature_enable(l.if0, "ip4-local", "test-local", true)
        .unwrap();
    l.send(&echo);
    assert_eq!(Lab::take(&l.out0).len(), 1, "answered after the feature");
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "the feature saw the echo request"
    );
    l.send(&udp_frame([198, 19, 0, 2], 64, 10));
    assert_eq!(Lab::take(&l.out1).len(), 1);
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "forwarded traffic skips ip4-local"
    );
    l.no_leaks();
}

#[test]
fn ipv4_multicast_is_not_routed_as_unicast() {
    use rvpp_dataplane::nodes::ip4::lookup_error;
    let mut l = lab();
    // A default route would carry it as unicast to the gateway: multicast must not follow it.
    l.fwd
        .route_add(
            0,
            Prefix::parse("0.0.0.0/0").unwrap(),
            vec![Path::via("198.19.0.2".parse().unwrap(), Some(l.if1))],
        )
        .unwrap();
    l.send(&udp_frame([224, 0, 0, 251], 64, 10));
    assert!(Lab::take(&l.out1).is_empty());
    assert_eq!(l.error("ip4-lookup", lookup_error::MCAST_NOT_FORWARDED), 1);
    l.send(&udp_frame([203, 0, 113, 9], 64, 10));
    assert_eq!(
        Lab::take(&l.out1).len(),
        1,
        "unicast still takes the default route"
    );
    l.no_leaks();
}

/// A route added for a neighbour's own address and then deleted leaves the neighbour reached
/// as before: the neighbour's host entry is not the route's to take away (VPP keeps both by
/// source; deleting the API's leaves the adjacency's).
#[test]
fn deleting_a_route_to_a_neighbours_address_keeps_the_neighbour_reachable() {
    let mut l = lab();
    let (if1, nh) = (l.if1, "198.19.0.2".parse::<IpAddr>().unwrap());
    let reach = |l: &mut Lab| {
        l.send(&udp_frame([198, 19, 0, 2], 64, 20));
        let out = Lab::take(&l.out1);
        out.len() == 1 && out[0][..6] == PEER1
    };
    assert!(reach(&mut l), "reached before");
    let host = Prefix::parse("198.19.0.2/32").unwrap();
    l.fwd
        .route_add(0, host, vec![Path::via(nh, Some(if1))])
        .unwrap();
    assert!(reach(&mut l), "reached through the route");
    l.fwd.route_del(0, host).unwrap();
    assert!(reach(&mut l), "reached after the route went");
    l.no_leaks();
}
