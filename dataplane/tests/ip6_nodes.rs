//! IPv6 nodes end to end: frames go into ethernet-input of the standard graph, what comes out
//! of the test tx queues is checked with etherparse, drops through the error counters.

use etherparse::{
    Icmpv6Slice, Icmpv6Type, LinkSlice, NetSlice, PacketBuilder, SlicedPacket, TransportSlice,
};
use rvpp_dataplane::buffer::{BufferPool, Buffers};
use rvpp_dataplane::device::TxQueue;
use rvpp_dataplane::fib::Ip6FibWriter;
use rvpp_dataplane::graph::DeviceNodes;
use rvpp_dataplane::nodes::ip6::{
    discover_error, icmp_error, input_error, local_error, lookup_error,
};
use rvpp_dataplane::nodes::standard_graph;
use rvpp_dataplane::runtime::Runtime;
use rvpp_dataplane::tables::{
    if_flags, AdjKind, Adjacency, FibSet, FwdTable, IfFast, IfTable, Interface, Learned,
    LoadBalance, PuntRedirect, Shared, MAX_ECMP,
};
use rvpp_dataplane::wire::Mac;
use std::sync::{Arc, Mutex};

const MAC1: Mac = [2, 0, 0, 0, 0, 1];
const MAC2: Mac = [2, 0, 0, 0, 0, 2];
const MAC3: Mac = [2, 0, 0, 0, 0, 3];
const HOST_MAC: Mac = [2, 0, 0, 0, 0, 0xaa];
const NH_MAC: Mac = [2, 0, 0, 0, 0, 0x22];
const NH2_MAC: Mac = [2, 0, 0, 0, 0, 0x23];
const TAP_PEER_MAC: Mac = [2, 0, 0, 0, 0, 0x33];

const ADJ_LOCAL: u32 = 2;
const ADJ_NH: u32 = 3;
const ADJ_GLEAN2: u32 = 4;
const ADJ_SMALL_MTU: u32 = 5;
const ADJ_INCOMPLETE: u32 = 6;
const ADJ_HOST: u32 = 7;
const ADJ_NH2: u32 = 8;
const ADJ_PUNT: u32 = 9;
const LB_ECMP: u32 = 10;

fn a(s: &str) -> u128 {
    u128::from(s.parse::<std::net::Ipv6Addr>().unwrap())
}
fn o(s: &str) -> [u8; 16] {
    s.parse::<std::net::Ipv6Addr>().unwrap().octets()
}

/// Our link-local on eth1, derived from MAC1 (modified EUI-64).
const LL1: &str = "fe80::ff:fe00:1";
const HOST: &str = "2001:db8:1::100";
const HOST_LL: &str = "fe80::aa";

type Sent = Arc<Mutex<Vec<(u32, Vec<u8>)>>>;

/// Records what the graph transmits and frees the buffers at once.
struct TestTx {
    sw: u32,
    sent: Sent,
}

impl TxQueue for TestTx {
    fn tx_node(&self) -> &'static str {
        "pg-tx"
    }
    fn tx(&mut self, bufs: &mut Buffers, pkts: &[u32]) -> usize {
        for &bi in pkts {
            let mut out = vec![0u8; 65536];
            let n = bufs.copy_chain(bi, &mut out);
            out.truncate(n);
            self.sent.lock().unwrap().push((self.sw, out));
        }
        bufs.free(pkts);
        pkts.len()
    }
}

fn rw_adj(sw: u32, dst: Mac, src: Mac, mtu: u16) -> Adjacency {
    let mut adj = Adjacency {
        kind: AdjKind::Rewrite,
        sw_if_index: sw,
        mtu,
        rewrite_len: 14,
        is_ip6: true,
        ..Default::default()
    };
    adj.rewrite[..6].copy_from_slice(&dst);
    adj.rewrite[6..12].copy_from_slice(&src);
    adj.rewrite[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    adj
}

struct Env {
    pool: Arc<BufferPool>,
    shared: Arc<Shared>,
    rt: Runtime,
    sent: Sent,
    fwd: FwdTable,
    _fib: Ip6FibWriter,
}

impl Env {
    fn new() -> Self {
        let pool = BufferPool::with_backing(1024, 2048, false).unwrap();
        let shared = Shared::new();

        // eth1, eth2, a tap without IPv6 (punt target), and eth1.100.
        let mut t = IfTable {
            fast: vec![IfFast::default(); 5],
            ifs: vec![None; 5],
            vlans: vec![(1, 100, 4)],
            proxy_arp: vec![],
        };
        let up = if_flags::EXISTS | if_flags::ADMIN_UP | if_flags::LINK_UP | if_flags::L2;
        for (sw, mac, addr, ip6) in [
            (1u32, MAC1, "2001:db8:1::1", true),
            (2, MAC2, "2001:db8:2::1", true),
            (3, MAC3, "2001:db8:3::1", false),
            (4, MAC1, "2001:db8:4::1", true),
        ] {
            t.fast[sw as usize] = IfFast {
                flags: up | if ip6 { if_flags::IP6 } else { 0 },
                mac,
                mtu: 1500,
                ..Default::default()
            };
            t.ifs[sw as usize] = Some(Interface {
                sw_if_index: sw,
                name: format!("eth{sw}"),
                mac,
                admin_up: true,
                link_up: true,
                l2: true,
                mtu: 1500,
                ip6_addrs: vec![(a(addr), 64)],
                ip6_enabled: ip6,
                ..Default::default()
            });
        }
        shared.ifs.publish(t);

        let mut fwd = FwdTable::default();
        fwd.adjs.extend([
            Adjacency {
                kind: AdjKind::Local,
                ..Default::default()
            },
            rw_adj(2, NH_MAC, MAC2, 1500),
            Adjacency {
                kind: AdjKind::Glean,
                sw_if_index: 2,
                is_ip6: true,
                ..Default::default()
            },
            rw_adj(2, NH_MAC, MAC2, 1280),
            Adjacency {
                kind: AdjKind::Incomplete,
                sw_if_index: 1,
                next_hop: a("2001:db8:1::5"),
                is_ip6: true,
                ..Default::default()
            },
            rw_adj(1, HOST_MAC, MAC1, 9000),
            rw_adj(2, NH2_MAC, MAC2, 1500),
            rw_adj(3, TAP_PEER_MAC, MAC3, 9000),
        ]);
        assert_eq!(fwd.adjs.len(), 10);
        for i in 2..10 {
            fwd.lbs.push(LoadBalance::single(i));
        }
        let mut b = [0u32; MAX_ECMP];
        b[0] = ADJ_NH;
        b[1] = ADJ_NH2;
        fwd.lbs.push(LoadBalance {
            n_buckets: 2,
            buckets: b,
        });
        assert_eq!(fwd.lbs.len() as u32, LB_ECMP + 1);
        shared.fwd.publish(fwd.clone());

        let mut w = Ip6FibWriter::new(shared.grace.clone());
        for (p, l, leaf) in [
            ("2001:db8:1::1", 128, ADJ_LOCAL),
            ("2001:db8:2::1", 128, ADJ_LOCAL),
            ("2001:db8:1::100", 128, ADJ_HOST),
            ("2001:db8:2::", 64, ADJ_GLEAN2),
            ("2001:db8:2::2", 128, ADJ_NH),
            ("2001:db8:100::", 48, ADJ_NH),
            ("2001:db8:99::", 64, ADJ_SMALL_MTU),
            ("2001:db8:77::", 64, ADJ_INCOMPLETE),
            ("2001:db8:e::", 64, LB_ECMP),
        ] {
            w.add(a(p), l, leaf).unwrap();
        }
        shared.fibs.publish(FibSet {
            ip6: vec![Some(w.fib().clone())],
            ..Default::default()
        });

        let graph = standard_graph(&[DeviceNodes::tx_only("pg-tx")]).unwrap();
        let mut rt = Runtime::new(graph, pool.local(), shared.clone(), 0, "test".into()).unwrap();
        let sent: Sent = Arc::default();
        for sw in 1..=4 {
            rt.set_tx(
                sw,
                Box::new(TestTx {
                    sw,
                    sent: sent.clone(),
                }),
            )
            .unwrap();
        }
        Env {
            pool,
            shared,
            rt,
            sent,
            fwd,
            _fib: w,
        }
    }

    fn send(&mut self, rx: u32, frame: &[u8]) {
        let bufs = self.rt.buffers();
        let bi = bufs.alloc_from_bytes(frame).unwrap();
        bufs.meta(bi).rx_sw_if_index = rx;
        self.rt.inject("ethernet-input", &[bi]).unwrap();
    }

    fn take(&mut self) -> Vec<(u32, Vec<u8>)> {
        std::mem::take(&mut *self.sent.lock().unwrap())
    }

    fn one(&mut self) -> (u32, Vec<u8>) {
        let mut v = self.take();
        assert_eq!(v.len(), 1, "expected exactly one packet out");
        v.pop().unwrap()
    }

    fn err(&self, node: &str, code: u16) -> u64 {
        let i = self.rt.graph().error_index(node, code).unwrap();
        self.rt.stats().errors[i as usize].get()
    }

    /// Set interface flags on `sw` (published like the control side would).
    fn set_flags(&self, sw: u32, set: u16) {
        let mut t = (*self.shared.ifs.load()).clone();
        t.fast[sw as usize].flags |= set;
        self.shared.ifs.publish(t);
    }

    fn learned(&self) -> Vec<Learned> {
        std::iter::from_fn(|| self.shared.learned.pop()).collect()
    }

    /// Every buffer is back in the pool.
    fn finish(mut self) {
        assert!(self.take().is_empty(), "unexpected packets left");
        self.rt.buffers().flush();
        assert_eq!(self.pool.in_use(), 0, "buffers leaked");
        assert_eq!(self.pool.double_frees(), 0);
    }
}

// ---- packet crafting -------------------------------------------------------------------------

fn udp(src: &str, dst: &str, hop: u8, payload: usize) -> Vec<u8> {
    let mut v = Vec::new();
    let data: Vec<u8> = (0..payload).map(|i| i as u8).collect();
    PacketBuilder::ethernet2(HOST_MAC, MAC1)
        .ipv6(o(src), o(dst), hop)
        .udp(1234, 5678)
        .write(&mut v, &data)
        .unwrap();
    v
}

fn udp_port(src: &str, dst: &str, sport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(HOST_MAC, MAC1)
        .ipv6(o(src), o(dst), 64)
        .udp(sport, 53)
        .write(&mut v, &[1, 2, 3, 4])
        .unwrap();
    v
}

fn echo(src_mac: Mac, dst_mac: Mac, src: &str, dst: &str, payload: usize) -> Vec<u8> {
    let mut v = Vec::new();
    let data: Vec<u8> = (0..payload).map(|i| (i * 7) as u8).collect();
    PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv6(o(src), o(dst), 64)
        .icmpv6_echo_request(0x1234, 7)
        .write(&mut v, &data)
        .unwrap();
    v
}

/// An NS or NA with an optional link-layer address option.
#[allow(clippy::too_many_arguments)]
fn nd(
    ty: u8,
    dst_mac: Mac,
    src: &str,
    dst: &str,
    hop: u8,
    nd_flags: u8,
    target: &str,
    opt: Option<(u8, Mac)>,
) -> Vec<u8> {
    let mut payload = o(target).to_vec();
    if let Some((t, m)) = opt {
        payload.extend([t, 1]);
        payload.extend(m);
    }
    nd_raw(ty, dst_mac, src, dst, hop, nd_flags, &payload)
}

/// An ND message with the given body after the first 8 bytes.
fn nd_raw(
    ty: u8,
    dst_mac: Mac,
    src: &str,
    dst: &str,
    hop: u8,
    nd_flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(HOST_MAC, dst_mac)
        .ipv6(o(src), o(dst), hop)
        .icmpv6(Icmpv6Type::Unknown {
            type_u8: ty,
            code_u8: 0,
            bytes5to8: [nd_flags, 0, 0, 0],
        })
        .write(&mut v, payload)
        .unwrap();
    v
}

/// A frame with a raw IPv6 header and `payload` after it; `plen` overrides the payload length.
fn raw(src: &str, dst: &str, nh: u8, hop: u8, payload: &[u8], plen: Option<u16>) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend(MAC1);
    v.extend(HOST_MAC);
    v.extend(0x86ddu16.to_be_bytes());
    v.extend([0x60, 0, 0, 0]);
    v.extend(plen.unwrap_or(payload.len() as u16).to_be_bytes());
    v.extend([nh, hop]);
    v.extend(o(src));
    v.extend(o(dst));
    v.extend(payload);
    v
}

/// An ICMPv6 echo request (with a correct checksum) behind the given extension headers.
fn echo_behind(src: &str, dst: &str, exts: &[u8], first_nh: u8) -> Vec<u8> {
    let mut icmp = vec![128u8, 0, 0, 0, 0x12, 0x34, 0, 1, 0xde, 0xad, 0xbe, 0xef];
    let c = Icmpv6Type::EchoRequest(etherparse::IcmpEchoHeader { id: 0x1234, seq: 1 })
        .calc_checksum(o(src), o(dst), &icmp[8..])
        .unwrap();
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut p = exts.to_vec();
    p.extend(icmp);
    raw(src, dst, first_nh, 64, &p, None)
}

// ---- parsing -----------------------------------------------------------------------------------

struct Out<'a> {
    eth_src: [u8; 6],
    eth_dst: [u8; 6],
    ip: etherparse::Ipv6HeaderSlice<'a>,
    icmp: Option<Icmpv6Slice<'a>>,
}

fn parse(f: &[u8]) -> Out<'_> {
    let p = SlicedPacket::from_ethernet(f).expect("etherparse accepts the frame");
    let Some(LinkSlice::Ethernet2(e)) = p.link else {
        panic!("no ethernet")
    };
    let Some(NetSlice::Ipv6(ip)) = p.net else {
        panic!("not ipv6")
    };
    let icmp = match p.transport {
        Some(TransportSlice::Icmpv6(i)) => Some(i),
        _ => None,
    };
    Out {
        eth_src: e.source(),
        eth_dst: e.destination(),
        ip: ip.header(),
        icmp,
    }
}

/// Check the ICMPv6 message of `f` and return (type, code, bytes 5..8, body after them).
fn icmp_of(f: &[u8]) -> (u8, u8, [u8; 4], Vec<u8>) {
    let p = parse(f);
    let i = p.icmp.expect("icmpv6");
    assert!(
        i.is_checksum_valid(p.ip.source(), p.ip.destination()),
        "bad icmpv6 checksum"
    );
    (
        i.type_u8(),
        i.code_u8(),
        i.bytes5to8(),
        i.payload().to_vec(),
    )
}

// ---- tests -------------------------------------------------------------------------------------

#[test]
fn forwards_with_hop_limit_decrement() {
    let mut e = Env::new();
    let f = udp(HOST, "2001:db8:100::5", 64, 100);
    e.send(1, &f);
    let (sw, out) = e.one();
    assert_eq!(sw, 2);
    let p = parse(&out);
    assert_eq!(p.eth_dst, NH_MAC);
    assert_eq!(p.eth_src, MAC2);
    assert_eq!(p.ip.hop_limit(), 63);
    // Everything else is untouched (the UDP checksum does not cover the hop limit).
    let mut want = f[14..].to_vec();
    want[7] = 63;
    assert_eq!(&out[14..], &want[..]);
    assert_eq!(e.err("ip6-input", input_error::HOP_BY_HOP), 0);
    e.finish();
}

#[test]
fn trims_link_padding() {
    let mut e = Env::new();
    let mut f = udp(HOST, "2001:db8:100::5", 64, 2);
    let len = f.len();
    f.resize(len + 16, 0xee);
    e.send(1, &f);
    let (_, out) = e.one();
    assert_eq!(out.len(), len);
    e.finish();
}

#[test]
fn hop_limit_expiry_sends_time_exceeded() {
    let mut e = Env::new();
    for hop in [1u8, 0] {
        let f = udp(HOST, "2001:db8:100::5", hop, 40);
        e.send(1, &f);
        let (sw, out) = e.one();
        assert_eq!(sw, 1);
        let p = parse(&out);
        assert_eq!(p.eth_dst, HOST_MAC);
        assert_eq!(p.ip.source(), o("2001:db8:1::1"));
        assert_eq!(p.ip.destination(), o(HOST));
        let (ty, code, _, body) = icmp_of(&out);
        assert_eq!((ty, code), (3, 0));
        assert_eq!(body, f[14..], "quotes the whole offending packet");
    }
    // A chained 3000-byte packet: the quote stops at 1280 bytes, the rest is freed.
    let f = udp(HOST, "2001:db8:100::5", 1, 3000);
    e.send(1, &f);
    let (_, out) = e.one();
    assert_eq!(out.len() - 14, 1280);
    let (ty, _, _, body) = icmp_of(&out);
    assert_eq!(ty, 3);
    assert_eq!(body, f[14..14 + 1232]);
    assert_eq!(e.err("ip6-icmp-error", icmp_error::SENT_TIME_EXCEEDED), 3);
    e.finish();
}

#[test]
fn too_big_sends_packet_too_big_with_mtu() {
    let mut e = Env::new();
    let f = udp(HOST, "2001:db8:99::5", 64, 1400);
    e.send(1, &f);
    let (sw, out) = e.one();
    assert_eq!(sw, 1);
    let p = parse(&out);
    assert_eq!(p.ip.destination(), o(HOST));
    assert_eq!(
        14 + 40 + p.ip.payload_length() as usize,
        out.len(),
        "length matches"
    );
    assert_eq!(out.len() - 14, 1280, "error is exactly the minimum MTU");
    let icmp = p.icmp.unwrap();
    assert_eq!(icmp.icmp_type(), Icmpv6Type::PacketTooBig { mtu: 1280 });
    let (_, _, _, body) = icmp_of(&out);
    assert_eq!(body, f[14..14 + 1232]);
    assert_eq!(e.err("ip6-icmp-error", icmp_error::SENT_TOO_BIG), 1);
    e.finish();
}

#[test]
fn no_route_sends_destination_unreachable() {
    let mut e = Env::new();
    e.send(1, &udp(HOST, "2001:db8:ffff::1", 64, 8));
    let (sw, out) = e.one();
    assert_eq!(sw, 1);
    let (ty, code, _, _) = icmp_of(&out);
    assert_eq!((ty, code), (1, 0));
    assert_eq!(e.err("ip6-icmp-error", icmp_error::SENT_UNREACH), 1);
    e.finish();
}

#[test]
fn icmp_errors_are_never_answered() {
    let mut e = Env::new();
    let mut v = Vec::new();
    PacketBuilder::ethernet2(HOST_MAC, MAC1)
        .ipv6(o(HOST), o("2001:db8:100::5"), 1)
        .icmpv6(Icmpv6Type::DestinationUnreachable(
            etherparse::icmpv6::DestUnreachableCode::NoRoute,
        ))
        .write(&mut v, &[0u8; 48])
        .unwrap();
    e.send(1, &v);
    // Multicast source: dropped already at input, never answered.
    e.send(1, &udp("ff02::1", "2001:db8:100::5", 1, 8));
    // Unspecified source.
    e.send(1, &udp("::", "2001:db8:100::5", 1, 8));
    assert!(e.take().is_empty());
    assert_eq!(e.err("ip6-icmp-error", icmp_error::NOT_FOR_ERRORS), 2);
    assert_eq!(e.err("ip6-input", input_error::BAD_ADDRESS), 1);
    e.finish();
}

#[test]
fn echo_request_gets_reply() {
    let mut e = Env::new();
    let f = echo(HOST_MAC, MAC1, HOST, "2001:db8:1::1", 56);
    e.send(1, &f);
    let (sw, out) = e.one();
    assert_eq!(sw, 1);
    let p = parse(&out);
    assert_eq!(p.eth_dst, HOST_MAC);
    assert_eq!(p.ip.source(), o("2001:db8:1::1"));
    assert_eq!(p.ip.destination(), o(HOST));
    let icmp = p.icmp.unwrap();
    assert_eq!(
        icmp.icmp_type(),
        Icmpv6Type::EchoReply(etherparse::IcmpEchoHeader { id: 0x1234, seq: 7 })
    );
    let (_, _, _, body) = icmp_of(&out);
    assert_eq!(body, f[14 + 48..]);
    assert_eq!(e.err("ip6-local", local_error::ECHO_REPLIED), 1);
    e.finish();
}

#[test]
fn echo_to_link_local_and_all_nodes_answered_on_link() {
    let mut e = Env::new();
    for dst in [LL1, "ff02::1"] {
        let dmac = if dst == LL1 {
            MAC1
        } else {
            [0x33, 0x33, 0, 0, 0, 1]
        };
        e.send(1, &echo(HOST_MAC, dmac, HOST_LL, dst, 8));
        let (sw, out) = e.one();
        assert_eq!(sw, 1);
        let p = parse(&out);
        assert_eq!(p.eth_dst, HOST_MAC);
        assert_eq!(p.eth_src, MAC1);
        assert_eq!(
            p.ip.source(),
            o(LL1),
            "link-local reply from our link-local"
        );
        assert_eq!(p.ip.destination(), o(HOST_LL));
        let (ty, _, _, _) = icmp_of(&out);
        assert_eq!(ty, 129);
    }
    e.finish();
}

#[test]
fn echo_behind_extension_headers_and_chained_buffers() {
    let mut e = Env::new();
    // Destination options (PadN) and an atomic fragment before the ICMPv6 message.
    let exts = [
        44, 0, 1, 4, 0, 0, 0, 0, // dest opts -> fragment, PadN 4
        58, 0, 0, 0, 0, 0, 0, 9, // fragment: offset 0, M=0, id 9
    ];
    e.send(1, &echo_behind(HOST, "2001:db8:1::1", &exts, 60));
    let (_, out) = e.one();
    let p = parse(&out);
    assert_eq!(p.ip.next_header(), etherparse::IpNumber::IPV6_ICMP);
    let (ty, _, b, body) = icmp_of(&out);
    assert_eq!((ty, b), (129, [0x12, 0x34, 0, 1]));
    assert_eq!(body, [0xde, 0xad, 0xbe, 0xef]);

    // A 3000-byte request spans two buffers: checksum verified and patched across the chain.
    let f = echo(HOST_MAC, MAC1, HOST, "2001:db8:1::1", 3000);
    e.send(1, &f);
    let (_, out) = e.one();
    let (ty, _, _, body) = icmp_of(&out);
    assert_eq!(ty, 129);
    assert_eq!(body, f[14 + 48..]);
    assert_eq!(e.err("ip6-local", local_error::ECHO_REPLIED), 2);
    e.finish();
}

#[test]
fn neighbor_solicitation_answered_and_sender_learned() {
    let mut e = Env::new();
    let snm = [0x33, 0x33, 0xff, 0, 0, 1];
    let f = nd(
        135,
        snm,
        HOST,
        "ff02::1:ff00:1",
        255,
        0,
        "2001:db8:1::1",
        Some((1, HOST_MAC)),
    );
    e.send(1, &f);
    let (sw, out) = e.one();
    assert_eq!(sw, 1);
    let p = parse(&out);
    assert_eq!(p.eth_dst, HOST_MAC);
    assert_eq!(p.eth_src, MAC1);
    assert_eq!(p.ip.source(), o("2001:db8:1::1"));
    assert_eq!(p.ip.destination(), o(HOST));
    assert_eq!(p.ip.hop_limit(), 255);
    let (ty, code, fl, body) = icmp_of(&out);
    assert_eq!((ty, code), (136, 0));
    assert_eq!(fl, [0xe0, 0, 0, 0], "router, solicited, override");
    let mut want = o("2001:db8:1::1").to_vec();
    want.extend([2, 1]);
    want.extend(MAC1);
    assert_eq!(body, want);
    assert_eq!(
        e.learned(),
        vec![Learned::Ip6Neighbor {
            sw_if_index: 1,
            ip: a(HOST),
            mac: HOST_MAC
        }]
    );
    assert_eq!(e.err("ip6-local", local_error::NS_ANSWERED), 1);

    // Duplicate address detection: unspecified source, answer to all-nodes, not solicited.
    e.send(
        1,
        &nd(
            135,
            snm,
            "::",
            "ff02::1:ff00:1",
            255,
            0,
            "2001:db8:1::1",
            None,
        ),
    );
    let (_, out) = e.one();
    let p = parse(&out);
    assert_eq!(p.eth_dst, [0x33, 0x33, 0, 0, 0, 1]);
    assert_eq!(p.ip.destination(), o("ff02::1"));
    let (_, _, fl, _) = icmp_of(&out);
    assert_eq!(fl[0], 0xa0);
    assert!(e.learned().is_empty());

    // On a VLAN sub-interface the answer keeps the tag.
    let mut f = nd(
        135,
        [0x33, 0x33, 0xff, 0, 0, 1],
        "2001:db8:4::7",
        "ff02::1:ff00:1",
        255,
        0,
        "2001:db8:4::1",
        Some((1, HOST_MAC)),
    );
    f.splice(12..12, [0x81, 0x00, 0x00, 100]);
    e.send(1, &f);
    let (sw, out) = e.one();
    assert_eq!(sw, 4);
    assert_eq!(out[12..18], [0x81, 0x00, 0x00, 100, 0x86, 0xdd]);
    assert_eq!(out[..6], HOST_MAC);
    let p = parse(&out);
    assert_eq!(p.ip.source(), o("2001:db8:4::1"));
    let (ty, _, _, _) = icmp_of(&out);
    assert_eq!(ty, 136);
    assert_eq!(e.learned().len(), 1);

    // Our link-local, asked by unicast.
    e.send(
        1,
        &nd(135, MAC1, HOST_LL, LL1, 255, 0, LL1, Some((1, HOST_MAC))),
    );
    let (_, out) = e.one();
    let p = parse(&out);
    assert_eq!(p.ip.source(), o(LL1));
    assert_eq!(p.ip.destination(), o(HOST_LL));
    assert_eq!(e.learned().len(), 1);
    e.finish();
}

#[test]
fn nd_proxy_answers_any_target_for_global_askers() {
    let mut e = Env::new();
    let snm = [0x33, 0x33, 0xff, 0, 0, 0x99];
    let ask = |src| {
        nd(
            135,
            snm,
            src,
            "ff02::1:ff00:99",
            255,
            0,
            "2001:db8:1::99",
            Some((1, HOST_MAC)),
        )
    };
    // Not ours and no ND proxy: the group is not ours either.
    e.send(1, &ask(HOST));
    assert!(e.take().is_empty());
    assert_eq!(e.err("ip6-lookup", lookup_error::MCAST_NOT_FOR_US), 1);
    e.learned();

    e.set_flags(1, if_flags::ND_PROXY);
    e.send(1, &ask(HOST));
    let (sw, out) = e.one();
    assert_eq!(sw, 1);
    let p = parse(&out);
    assert_eq!((p.eth_dst, p.eth_src), (HOST_MAC, MAC1));
    assert_eq!(p.ip.destination(), o(HOST));
    let (ty, _, fl, body) = icmp_of(&out);
    assert_eq!((ty, fl[0] & 0x40), (136, 0x40), "a solicited advertisement");
    let mut want = o("2001:db8:1::99").to_vec();
    want.extend([2, 1]);
    want.extend(MAC1);
    assert_eq!(body, want, "the asked target, at our MAC");
    assert_eq!(e.err("ip6-local", local_error::NS_PROXIED), 1);
    assert_eq!(e.learned().len(), 1, "the asker is learned");

    // A link-local asker is not answered by proxy (VPP's rule), nor is DAD.
    e.send(1, &ask(HOST_LL));
    let dad = nd(
        135,
        snm,
        "::",
        "ff02::1:ff00:99",
        255,
        0,
        "2001:db8:1::99",
        None,
    );
    e.send(1, &dad);
    assert!(e.take().is_empty());
    assert_eq!(e.err("ip6-local", local_error::NS_PROXIED), 1);
    assert_eq!(e.err("ip6-local", local_error::NS_NOT_FOR_US), 2);
    e.learned();
    e.finish();
}

#[test]
fn bad_neighbor_solicitations_are_dropped() {
    let mut e = Env::new();
    let snm = [0x33, 0x33, 0xff, 0, 0, 1];
    let us = "2001:db8:1::1";
    // Not our target (sent unicast so it reaches ip6-local).
    e.send(1, &nd(135, MAC1, HOST, us, 255, 0, "2001:db8:1::9", None));
    // Someone else's solicited-node group: not for us at lookup.
    let other = [0x33, 0x33, 0xff, 0, 0, 9];
    e.send(
        1,
        &nd(
            135,
            other,
            HOST,
            "ff02::1:ff00:9",
            255,
            0,
            "2001:db8:1::9",
            None,
        ),
    );
    // Forwarded (hop limit 64).
    e.send(1, &nd(135, snm, HOST, "ff02::1:ff00:1", 64, 0, us, None));
    // Zero-length option.
    let mut body = o(us).to_vec();
    body.extend([1, 0, 2, 0, 0, 0, 0, 0xaa]);
    e.send(1, &nd_raw(135, snm, HOST, "ff02::1:ff00:1", 255, 0, &body));
    // Bad checksum.
    let mut f = nd(135, snm, HOST, "ff02::1:ff00:1", 255, 0, us, None);
    f[14 + 40 + 2] ^= 0xff;
    e.send(1, &f);
    // DAD with a source link-layer option is invalid.
    e.send(
        1,
        &nd(
            135,
            snm,
            "::",
            "ff02::1:ff00:1",
            255,
            0,
            us,
            Some((1, HOST_MAC)),
        ),
    );
    assert!(e.take().is_empty());
    assert!(e.learned().is_empty());
    assert_eq!(e.err("ip6-local", local_error::NS_NOT_FOR_US), 1);
    assert_eq!(e.err("ip6-lookup", lookup_error::MCAST_NOT_FOR_US), 1);
    assert_eq!(e.err("ip6-local", local_error::BAD_ND), 3);
    assert_eq!(e.err("ip6-local", local_error::BAD_ICMP), 1);
    e.finish();
}

#[test]
fn neighbor_advertisement_is_learned() {
    let mut e = Env::new();
    let peer_mac = [2, 0, 0, 0, 0, 0xbb];
    let us = "2001:db8:1::1";
    e.send(
        1,
        &nd(
            136,
            MAC1,
            "2001:db8:1::200",
            us,
            255,
            0x60,
            "2001:db8:1::200",
            Some((2, peer_mac)),
        ),
    );
    assert_eq!(
        e.learned(),
        vec![Learned::Ip6Neighbor {
            sw_if_index: 1,
            ip: a("2001:db8:1::200"),
            mac: peer_mac
        }]
    );
    // Off-link target: not learned. Solicited flag to a group: invalid.
    e.send(
        1,
        &nd(
            136,
            MAC1,
            "2001:db8:1::200",
            us,
            255,
            0x20,
            "2001:db8:5::1",
            Some((2, peer_mac)),
        ),
    );
    e.send(
        1,
        &nd(
            136,
            [0x33, 0x33, 0, 0, 0, 1],
            "2001:db8:1::200",
            "ff02::1",
            255,
            0x40,
            "2001:db8:1::200",
            Some((2, peer_mac)),
        ),
    );
    // Router solicitation: counted and dropped.
    let mut rs = Vec::new();
    PacketBuilder::ethernet2(HOST_MAC, [0x33, 0x33, 0, 0, 0, 2])
        .ipv6(o(HOST_LL), o("ff02::2"), 255)
        .icmpv6(Icmpv6Type::Unknown {
            type_u8: 133,
            code_u8: 0,
            bytes5to8: [0; 4],
        })
        .write(&mut rs, &[])
        .unwrap();
    e.send(1, &rs);
    assert!(e.learned().is_empty());
    assert!(e.take().is_empty());
    // A full learn queue is counted, not waited on.
    while e
        .shared
        .learned
        .push(Learned::Ip6Neighbor {
            sw_if_index: 0,
            ip: 0,
            mac: [0; 6],
        })
        .is_ok()
    {}
    e.send(
        1,
        &nd(
            136,
            MAC1,
            "2001:db8:1::200",
            us,
            255,
            0x60,
            "2001:db8:1::200",
            Some((2, peer_mac)),
        ),
    );
    assert_eq!(e.err("ip6-local", local_error::LEARN_QUEUE_FULL), 1);
    assert_eq!(e.err("ip6-local", local_error::LEARNED), 1);
    assert_eq!(e.err("ip6-local", local_error::NA_CONSUMED), 3);
    e.learned();
    assert_eq!(e.err("ip6-local", local_error::BAD_ND), 1);
    assert_eq!(e.err("ip6-local", local_error::ROUTER_SOLICIT), 1);
    e.finish();
}

#[test]
fn glean_and_incomplete_send_neighbor_solicitations() {
    let mut e = Env::new();
    e.send(1, &udp(HOST, "2001:db8:2::50", 64, 8));
    let (sw, out) = e.one();
    assert_eq!(sw, 2);
    let p = parse(&out);
    assert_eq!(p.eth_dst, [0x33, 0x33, 0xff, 0, 0, 0x50]);
    assert_eq!(p.eth_src, MAC2);
    assert_eq!(p.ip.source(), o("2001:db8:2::1"));
    assert_eq!(p.ip.destination(), o("ff02::1:ff00:50"));
    assert_eq!(p.ip.hop_limit(), 255);
    let (ty, code, _, body) = icmp_of(&out);
    assert_eq!((ty, code), (135, 0));
    let mut want = o("2001:db8:2::50").to_vec();
    want.extend([1, 1]);
    want.extend(MAC2);
    assert_eq!(body, want);
    // Asked again at once: throttled.
    e.send(1, &udp(HOST, "2001:db8:2::50", 64, 8));
    assert!(e.take().is_empty());
    assert_eq!(e.err("ip6-discover", discover_error::THROTTLED), 1);

    // Incomplete next hop: the NS is for the next hop, on its interface. The waiting packet
    // is chained; its tail is freed.
    e.send(1, &udp(HOST, "2001:db8:77::1", 64, 3000));
    let (sw, out) = e.one();
    assert_eq!(sw, 1);
    let p = parse(&out);
    assert_eq!(p.ip.destination(), o("ff02::1:ff00:5"));
    assert_eq!(p.ip.source(), o("2001:db8:1::1"));
    let (_, _, _, body) = icmp_of(&out);
    assert_eq!(body[..16], o("2001:db8:1::5"));
    assert_eq!(e.err("ip6-discover", discover_error::REQUEST_SENT), 2);
    e.finish();
}

#[test]
fn ecmp_spreads_flows_and_keeps_each_on_one_path() {
    let mut e = Env::new();
    let mut seen = std::collections::HashSet::new();
    for sport in 1000..1064u16 {
        e.send(1, &udp_port(HOST, "2001:db8:e::1", sport));
        let (_, out) = e.one();
        let mac = parse(&out).eth_dst;
        seen.insert(mac);
        e.send(1, &udp_port(HOST, "2001:db8:e::1", sport));
        let (_, again) = e.one();
        assert_eq!(parse(&again).eth_dst, mac, "a flow stays on its path");
    }
    assert_eq!(seen.len(), 2, "both paths used");
    e.finish();
}

#[test]
fn hop_by_hop_options_are_counted_and_forwarded() {
    let mut e = Env::new();
    // Hop-by-hop with a router alert, then UDP (ports + len + zero checksum is fine for v6
    // parsers here since we only compare bytes).
    let hbh = [17u8, 0, 5, 2, 0, 0, 1, 0];
    let udp_hdr = [0u8, 1, 0, 2, 0, 8, 0, 0];
    let mut p = hbh.to_vec();
    p.extend(udp_hdr);
    let f = raw(HOST, "2001:db8:100::5", 0, 64, &p, None);
    e.send(1, &f);
    let (sw, out) = e.one();
    assert_eq!(sw, 2);
    assert_eq!(out[14 + 7], 63);
    assert_eq!(out[14 + 40..], p[..]);
    assert_eq!(e.err("ip6-input", input_error::HOP_BY_HOP), 1);
    e.finish();
}

#[test]
fn udp_to_us_is_punted_or_refused() {
    let mut e = Env::new();
    e.send(1, &udp(HOST, "2001:db8:1::1", 64, 8));
    let (sw, out) = e.one();
    assert_eq!(sw, 1);
    let (ty, code, _, _) = icmp_of(&out);
    assert_eq!((ty, code), (1, 4), "port unreachable");

    let mut fwd = e.fwd.clone();
    fwd.punt6.push(PuntRedirect {
        rx_sw_if_index: Some(1),
        adj: ADJ_PUNT,
    });
    e.shared.fwd.publish(fwd);
    let f = udp(HOST, "2001:db8:1::1", 64, 8);
    e.send(1, &f);
    let (sw, out) = e.one();
    assert_eq!(sw, 3);
    assert_eq!(parse(&out).eth_dst, TAP_PEER_MAC);
    assert_eq!(out[14..], f[14..], "punted unchanged (hop limit kept)");
    assert_eq!(e.err("ip6-local", local_error::PUNTED), 1);
    e.finish();
}

#[test]
fn malformed_packets_are_dropped_and_counted() {
    let mut e = Env::new();
    let us = "2001:db8:1::1";
    let udp8 = [0u8, 1, 0, 2, 0, 8, 0, 0];

    // Truncated header.
    let f = raw(HOST, us, 17, 64, &udp8, None);
    e.send(1, &f[..14 + 20]);
    // Wrong version.
    let mut f = raw(HOST, us, 17, 64, &udp8, None);
    f[14] = 0x40;
    e.send(1, &f);
    // Payload length beyond the frame.
    e.send(1, &raw(HOST, us, 17, 64, &udp8, Some(100)));
    // IPv6 not enabled on the interface.
    let mut f = raw(HOST, us, 17, 64, &udp8, None);
    f[..6].copy_from_slice(&MAC3);
    e.send(3, &f);
    // Destination options header claiming 2048 bytes in a short packet.
    e.send(
        1,
        &raw(HOST, us, 60, 64, &[17, 255, 1, 4, 0, 0, 0, 0], None),
    );
    // A header whose length byte itself is missing.
    e.send(1, &raw(HOST, us, 60, 64, &[17], None));
    // Endless chain: destination options pointing at destination options.
    let mut chain = Vec::new();
    for _ in 0..12 {
        chain.extend([60u8, 0, 1, 4, 0, 0, 0, 0]);
    }
    e.send(1, &raw(HOST, us, 60, 64, &chain, None));
    // Hop-by-hop after another extension header.
    e.send(
        1,
        &raw(
            HOST,
            us,
            60,
            64,
            &[0, 0, 1, 4, 0, 0, 0, 0, 17, 0, 1, 4, 0, 0, 0, 0],
            None,
        ),
    );
    // A real fragment for us.
    e.send(1, &raw(HOST, us, 44, 64, &[17, 0, 0, 1, 0, 0, 0, 1], None));
    // Routing header with segments left.
    e.send(1, &raw(HOST, us, 43, 64, &[17, 0, 4, 1, 0, 0, 0, 0], None));
    // Unknown option that demands a discard.
    e.send(
        1,
        &raw(HOST, us, 60, 64, &[17, 0, 0xc7, 4, 0, 0, 0, 0], None),
    );
    // ICMPv6 shorter than its fixed header.
    e.send(1, &raw(HOST, us, 58, 64, &[128, 0, 0, 0], None));
    // Multicast and link-local destinations that are not ours.
    e.send(1, &udp(HOST, "ff05::1", 64, 8));
    e.send(1, &udp(HOST_LL, "fe80::77", 64, 8));

    assert!(e.take().is_empty(), "nothing malformed goes out");
    let c = |e: &Env, n, c| e.err(n, c);
    assert_eq!(c(&e, "ip6-input", input_error::TOO_SHORT), 1);
    assert_eq!(c(&e, "ip6-input", input_error::BAD_VERSION), 1);
    assert_eq!(c(&e, "ip6-input", input_error::BAD_LENGTH), 1);
    assert_eq!(c(&e, "ip6-input", input_error::NOT_ENABLED), 1);
    assert_eq!(c(&e, "ip6-local", local_error::BAD_EXT), 3);
    assert_eq!(c(&e, "ip6-local", local_error::EXT_TOO_LONG), 1);
    assert_eq!(c(&e, "ip6-local", local_error::FRAGMENT), 1);
    assert_eq!(c(&e, "ip6-local", local_error::ROUTING_HDR), 1);
    assert_eq!(c(&e, "ip6-local", local_error::BAD_OPTION), 1);
    assert_eq!(c(&e, "ip6-local", local_error::BAD_ICMP), 1);
    assert_eq!(c(&e, "ip6-lookup", lookup_error::MCAST_NOT_FOR_US), 1);
    assert_eq!(c(&e, "ip6-lookup", lookup_error::LINK_LOCAL_NOT_FOR_US), 1);
    e.finish();
}

/// Random bytes after a valid-looking IPv6 header, to us and through us: nothing panics and
/// every buffer comes back.
#[test]
fn random_extension_chains_never_panic_or_leak() {
    let mut e = Env::new();
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let nhs = [0u8, 43, 44, 60, 58, 17, 6, 59, 50];
    for i in 0..3000 {
        let len = (rnd() % 200) as usize;
        let mut p: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
        // Bias towards plausible chains: next-header bytes that are extension headers.
        for k in (0..len).step_by(8) {
            if rnd() % 2 == 0 {
                p[k] = nhs[(rnd() % nhs.len() as u64) as usize];
            }
            if k + 1 < len && rnd() % 2 == 0 {
                p[k + 1] = (rnd() % 3) as u8;
            }
        }
        let nh = nhs[(rnd() % nhs.len() as u64) as usize];
        let dst = match i % 4 {
            0 => "2001:db8:1::1",
            1 => "2001:db8:100::9",
            2 => "ff02::1",
            _ => "2001:db8:99::1",
        };
        let hop = [0u8, 1, 64, 255][(rnd() % 4) as usize];
        let plen = if rnd() % 8 == 0 {
            Some((rnd() % 300) as u16)
        } else {
            None
        };
        e.send(1, &raw(HOST, dst, nh, hop, &p, plen));
        e.take();
    }
    e.finish();
}
