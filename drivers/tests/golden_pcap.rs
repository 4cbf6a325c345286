//! Golden test through the whole graph: a pcap file in, pcap files out, every output packet
//! checked field by field with an independent parser (etherparse), and read back by tshark.

#[path = "../../test-support/skip.rs"]
mod skip;
#[path = "../../test-support/tshark.rs"]
mod tshark;

use etherparse::{Ethernet2Header, Icmpv4Type, IpNumber, PacketBuilder, SlicedPacket};
use rvpp_dataplane::buffer::BufferPool;
use rvpp_dataplane::forwarding::{Forwarding, Path, Prefix};
use rvpp_dataplane::runtime::Runtime;
use rvpp_dataplane::tables::Shared;
use rvpp_drivers::pcap::{self, PcapRx, PcapTx, Record, LINKTYPE_ETHERNET};
use std::net::IpAddr;
use std::path::PathBuf;

const MAC0: [u8; 6] = [2, 0, 0, 0, 0, 0xa0];
const MAC1: [u8; 6] = [2, 0, 0, 0, 0, 0xa1];
const HOST0: [u8; 6] = [2, 0, 0, 0, 0, 0xb0];
const HOST1: [u8; 6] = [2, 0, 0, 0, 0, 0xb1];

fn udp(dst: [u8; 4], ttl: u8, sport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(HOST0, MAC0)
        .ipv4([198, 18, 0, 2], dst, ttl)
        .udp(sport, 53)
        .write(&mut v, b"golden")
        .unwrap();
    v
}

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn pcap_in_pcap_out_field_by_field() {
    let dir = Dir(std::env::temp_dir().join(format!("rvpp-golden-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    // The input capture: what a host on pg0 sends.
    let mut input = vec![
        udp([198, 19, 200, 7], 64, 1000), // routed out of if1
        udp([198, 19, 200, 8], 1, 1001),  // TTL 1: time exceeded back to the host
        udp([203, 0, 113, 1], 64, 1002),  // no route: net unreachable
    ];
    let mut echo = Vec::new();
    PacketBuilder::ethernet2(HOST0, MAC0)
        .ipv4([198, 18, 0, 2], [198, 18, 0, 1], 64)
        .icmpv4_echo_request(7, 1)
        .write(&mut echo, b"ping")
        .unwrap();
    input.push(echo);
    let mut arp = vec![0u8; 60];
    arp[0..6].copy_from_slice(&[0xff; 6]);
    arp[6..12].copy_from_slice(&HOST0);
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    rvpp_dataplane::wire::ArpPkt::new(&mut arp[14..])
        .unwrap()
        .fill(1, &HOST0, 0xc612_0002, &[0; 6], 0xc612_0001);
    input.push(arp);
    let mut bad = udp([198, 19, 200, 9], 64, 1003);
    bad[14 + 10] ^= 0x55; // bad header checksum: dropped, counted
    input.push(bad);
    let in_path = dir.0.join("in.pcap");
    let recs: Vec<Record> = input
        .iter()
        .enumerate()
        .map(|(i, d)| Record {
            ts_sec: 1,
            ts_frac: i as u32,
            data: d.clone(),
        })
        .collect();
    pcap::write_file(&in_path, LINKTYPE_ETHERNET, &recs).unwrap();

    let pool = BufferPool::with_backing(2048, 2048, false).unwrap();
    let shared = Shared::new();
    let mut fwd = Forwarding::new(shared.clone());
    let if0 = fwd.interface_add("pg0", "pcap", MAC0, true, 1500).unwrap();
    let if1 = fwd.interface_add("pg1", "pcap", MAC1, true, 1500).unwrap();
    fwd.address_add(if0, Prefix::parse("198.18.0.1/24").unwrap())
        .unwrap();
    fwd.address_add(if1, Prefix::parse("198.19.0.1/24").unwrap())
        .unwrap();
    fwd.set_admin_up(if0, true).unwrap();
    fwd.set_admin_up(if1, true).unwrap();
    let host0: IpAddr = "198.18.0.2".parse().unwrap();
    let host1: IpAddr = "198.19.0.2".parse().unwrap();
    fwd.neighbor_add(if0, host0, HOST0, true).unwrap();
    fwd.neighbor_add(if1, host1, HOST1, true).unwrap();
    fwd.route_add(
        0,
        Prefix::parse("198.19.128.0/17").unwrap(),
        vec![Path::via(host1, Some(if1))],
    )
    .unwrap();

    let graph = rvpp_drivers::standard_graph().unwrap();
    let mut rt = Runtime::new(graph, pool.local(), shared, 0, "golden".into()).unwrap();
    let (out0, out1) = (dir.0.join("out0.pcap"), dir.0.join("out1.pcap"));
    rt.add_rx(Box::new(PcapRx::open(if0, &in_path).unwrap()))
        .unwrap();
    rt.set_tx(if0, Box::new(PcapTx::new(out0.clone(), LINKTYPE_ETHERNET)))
        .unwrap();
    rt.set_tx(if1, Box::new(PcapTx::new(out1.clone(), LINKTYPE_ETHERNET)))
        .unwrap();
    for _ in 0..4 {
        rt.poll();
    }
    let stats = rt.stats();
    let bad_ck = rt.graph().error_index("ip4-input", 3).unwrap();
    assert_eq!(
        stats.errors[bad_ck as usize].get(),
        1,
        "bad checksum counted"
    );
    rt.buffers().flush();
    drop(rt);
    assert_eq!(pool.in_use(), 0, "every buffer came back");

    // if1: exactly the routed packet, rewritten.
    let (_, o1) = pcap::read_file(&out1).unwrap();
    assert_eq!(o1.len(), 1);
    let p = SlicedPacket::from_ethernet(&o1[0].data).unwrap();
    let Some(etherparse::LinkSlice::Ethernet2(eth)) = &p.link else {
        panic!("no ethernet")
    };
    assert_eq!((eth.source(), eth.destination()), (MAC1, HOST1));
    let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
        panic!("not ipv4")
    };
    let h = ip.header().to_header();
    assert_eq!(h.time_to_live, 63);
    assert_eq!(h.header_checksum, h.calc_header_checksum());
    assert_eq!(h.destination, [198, 19, 200, 7]);
    assert_eq!(ip.payload().payload.len(), 8 + 6);

    // if0: time exceeded, unreachable, echo reply and the ARP reply (ARP is answered by its
    // own node, so it may leave first).
    let (_, o0) = pcap::read_file(&out0).unwrap();
    assert_eq!(o0.len(), 4, "replies on pg0");
    let mut kinds = Vec::new();
    for rec in &o0 {
        let (eth, rest) = Ethernet2Header::from_slice(&rec.data).unwrap();
        assert_eq!((eth.source, eth.destination), (MAC0, HOST0));
        if eth.ether_type.0 == 0x0806 {
            assert_eq!(u16::from_be_bytes([rest[6], rest[7]]), 2, "ARP reply");
            assert_eq!(&rest[8..14], &MAC0);
            assert_eq!(&rest[14..18], &[198, 18, 0, 1]);
            kinds.push("arp-reply");
            continue;
        }
        let p = SlicedPacket::from_ethernet(&rec.data).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
            panic!("not ipv4")
        };
        assert_eq!(ip.header().protocol(), IpNumber::ICMP);
        assert_eq!(ip.header().source(), [198, 18, 0, 1]);
        assert_eq!(ip.header().destination(), [198, 18, 0, 2]);
        let h = ip.header().to_header();
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        let payload = ip.payload().payload.to_vec();
        assert_eq!(rvpp_dataplane::wire::checksum(&payload), 0, "icmp checksum");
        kinds.push(
            match etherparse::Icmpv4Slice::from_slice(&payload)
                .unwrap()
                .icmp_type()
            {
                Icmpv4Type::TimeExceeded(_) => "time-exceeded",
                Icmpv4Type::DestinationUnreachable(_) => "unreachable",
                Icmpv4Type::EchoReply(_) => "echo-reply",
                other => panic!("unexpected {other:?}"),
            },
        );
    }
    kinds.sort();
    assert_eq!(
        kinds,
        ["arp-reply", "echo-reply", "time-exceeded", "unreachable"]
    );

    // The files open in tshark: a file tshark rejects fails the test.
    if let Some(tshark) = skip::need_tool("tshark") {
        let text = tshark::read(&tshark, &out0);
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(
            text.contains("Time-to-live exceeded") && text.contains("ARP"),
            "{text}"
        );
    }
}
