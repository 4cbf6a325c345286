//! ip4-inacl through the whole graph: a DNS session redirect to a "host tap" (pg2), misses
//! that follow the FIB, a table whose miss drops, and packets too short for the mask.
//!
//! pg0 uplink 198.18.0.1/24 (peer 198.18.0.2 behind PEER0, the default route), pg1 pod side
//! 198.19.0.1/24, pg2 host side 198.18.9.1/24 with the node address 198.18.9.2 behind PEER2.

mod common;
use common::*;
use etherparse::PacketBuilder;
use rvpp_dataplane::forwarding::{Af, Forwarding, Path, Prefix};
use rvpp_dataplane::nodes::classify::{self, error, Action, Classifier, Session, Table};
use std::net::IpAddr;
use std::sync::Arc;

const DNS: [u8; 4] = [198, 18, 30, 53];

fn a(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// calico's DstThreeTupleMask padded to two vectors.
fn mask() -> Vec<u8> {
    let mut m = vec![0u8; 32];
    m[9] = 0xff;
    m[16..20].fill(0xff);
    m[22..24].fill(0xff);
    m
}

fn matched(proto: u8, dst: [u8; 4], port: u16) -> Vec<u8> {
    let mut m = vec![0u8; 28];
    m[9] = proto;
    m[16..20].copy_from_slice(&dst);
    m[22..24].copy_from_slice(&port.to_be_bytes());
    m
}

/// Publish a classifier of one table with `sessions` (masked keys of `matched` bytes, all
/// redirected to `adj`) on pg1's input of `af`.
fn one_table(l: &mut Pg3, af: Af, t: Table, sessions: &[Vec<u8>], adj: u32) {
    let mut t = t;
    for m in sessions {
        let key = t.key(m);
        t.upsert(Session {
            key,
            action: Action::Redirect(adj),
            opaque: 0,
        });
    }
    let mut c = Classifier::default();
    c.tables.push(Some(Arc::new(t)));
    c.set_inacl(af, l.ifs[1], Some(0));
    l.tables.get::<classify::Shared>().publish(c);
    let f = classify::feature(af);
    l.fwd.feature_enable(l.ifs[1], f.arc, f.node, true).unwrap();
}

/// The lab with one table on pg1's input whose miss does `miss`.
fn lab(miss: Action) -> Runtime3 {
    let mut l = pg3(["198.18.0.1/24", "198.19.0.1/24", "198.18.9.1/24"]);
    let [if0, _, if2] = l.ifs;
    let f: &mut Forwarding = &mut l.fwd;
    f.neighbor_add(if0, a("198.18.0.2"), PEER0, true).unwrap();
    f.neighbor_add(if2, a("198.18.9.2"), PEER2, true).unwrap();
    let default = vec![Path::via(a("198.18.0.2"), Some(if0))];
    f.route_add(0, Prefix::parse("0.0.0.0/0").unwrap(), default)
        .unwrap();
    let adj = f
        .redirect_adj(Af::Ip4, &Path::via(a("198.18.9.2"), Some(if2)))
        .unwrap();
    let t = Table::new(&mask(), 0, 2, 2, None, miss, 0).unwrap();
    let dns = [matched(17, DNS, 53), matched(6, DNS, 53)];
    one_table(&mut l, Af::Ip4, t, &dns, adj);
    l.run().0
}

trait Pod {
    fn send_from_pod(&mut self, frame: &[u8]);
    fn inacl(&self, code: u16) -> u64;
}

impl Pod for Runtime3 {
    fn send_from_pod(&mut self, frame: &[u8]) {
        self.send(1, frame);
    }
    fn inacl(&self, code: u16) -> u64 {
        self.count("ip4-inacl", code)
    }
}

fn udp(dst: [u8; 4], port: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(PEER1, MAC1)
        .ipv4([198, 19, 0, 2], dst, 64)
        .udp(40000, port)
        .write(&mut v, b"rvpp-dns-query")
        .unwrap();
    v
}

fn tcp(dst: [u8; 4], port: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(PEER1, MAC1)
        .ipv4([198, 19, 0, 2], dst, 64)
        .tcp(40000, port, 1, 1024)
        .write(&mut v, &[])
        .unwrap();
    v
}

#[test]
fn dns_is_redirected_to_the_host_side_and_the_rest_follows_the_fib() {
    let mut l = lab(Action::Continue);
    l.send_from_pod(&udp(DNS, 53));
    l.send_from_pod(&tcp(DNS, 53));
    let host = l.take(2);
    assert_eq!(host.len(), 2, "UDP and TCP DNS redirected");
    for f in &host {
        assert_eq!((&f[0..6], &f[6..12]), (&PEER2[..], &MAC2[..]));
        assert_eq!(&f[14 + 16..14 + 20], &DNS, "destination unchanged");
        assert_eq!(f[14 + 8], 63, "a hop like any forward");
    }
    assert!(l.take(0).is_empty());
    l.send_from_pod(&udp(DNS, 54));
    l.send_from_pod(&udp([198, 18, 30, 54], 53));
    l.send_from_pod(&tcp(DNS, 80));
    assert_eq!(l.take(0).len(), 3, "misses go by the default route");
    assert!(l.take(2).is_empty());
    assert_eq!(
        (
            l.inacl(error::HIT),
            l.inacl(error::MISS),
            l.inacl(error::REDIRECTED)
        ),
        (2, 3, 2)
    );
    // Packets from the uplink are not classified: the table is on pg1 only.
    let mut f = udp(DNS, 53);
    f[0..6].copy_from_slice(&MAC0);
    l.send(0, &f);
    assert_eq!(l.take(0).len(), 1, "not redirected");
    assert_eq!(l.inacl(error::HIT), 2);
    l.no_leaks();
}

#[test]
fn a_drop_miss_drops_what_no_session_matches() {
    let mut l = lab(Action::Drop);
    l.send_from_pod(&udp(DNS, 53));
    l.send_from_pod(&udp(DNS, 54));
    assert_eq!(l.take(2).len(), 1);
    assert!(l.take(0).is_empty());
    assert_eq!(l.inacl(error::DROP), 1);
    l.no_leaks();
}

#[test]
fn a_packet_shorter_than_the_mask_is_counted_as_a_miss() {
    let mut l = lab(Action::Continue);
    // An IPv4 header claiming UDP with two bytes after it: the mask needs 24.
    let mut f = udp(DNS, 53);
    f.truncate(14 + 22);
    f[14 + 2..14 + 4].copy_from_slice(&22u16.to_be_bytes());
    f[14 + 10..14 + 12].fill(0);
    let c = etherparse::Ipv4HeaderSlice::from_slice(&f[14..34])
        .unwrap()
        .to_header()
        .calc_header_checksum();
    f[14 + 10..14 + 12].copy_from_slice(&c.to_be_bytes());
    l.send_from_pod(&f);
    assert_eq!(l.inacl(error::SHORT), 1);
    assert_eq!(l.inacl(error::MISS), 1);
    assert!(l.take(2).is_empty(), "never redirected");
    l.no_leaks();
}

#[test]
fn ip6_inacl_redirects_a_three_vector_match() {
    let mut l = pg3(["fd00::1/64", "fd00:1::1/64", "fd00:9::1/64"]);
    let [if0, _, if2] = l.ifs;
    l.fwd.neighbor_add(if0, a("fd00::2"), PEER0, true).unwrap();
    l.fwd
        .neighbor_add(if2, a("fd00:9::2"), PEER2, true)
        .unwrap();
    let default = vec![Path::via(a("fd00::2"), Some(if0))];
    l.fwd
        .route_add(0, Prefix::parse("::/0").unwrap(), default)
        .unwrap();
    let adj = l
        .fwd
        .redirect_adj(Af::Ip6, &Path::via(a("fd00:9::2"), Some(if2)))
        .unwrap();
    // next header, destination, UDP destination port: three vectors.
    let mut mask = vec![0u8; 48];
    mask[6] = 0xff;
    mask[24..40].fill(0xff);
    mask[42..44].fill(0xff);
    let dns: [u8; 16] = "fd00:30::53"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets();
    let mut m = vec![0u8; 44];
    m[6] = 17;
    m[24..40].copy_from_slice(&dns);
    m[42..44].copy_from_slice(&53u16.to_be_bytes());
    let t = Table::new(&mask, 0, 3, 1, None, Action::Continue, 0).unwrap();
    one_table(&mut l, Af::Ip6, t, &[m], adj);
    let (mut r, _fwd) = l.run();
    let src: [u8; 16] = "fd00:1::2".parse::<std::net::Ipv6Addr>().unwrap().octets();
    for port in [53u16, 54] {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(PEER1, MAC1)
            .ipv6(src, dns, 64)
            .udp(40000, port)
            .write(&mut v, b"dns6")
            .unwrap();
        r.send(1, &v);
    }
    let host = r.take(2);
    assert_eq!(host.len(), 1, "port 53 redirected");
    assert_eq!(&host[0][0..6], &PEER2[..]);
    assert_eq!(host[0][14 + 7], 63, "hop limit decremented");
    assert_eq!(r.take(0).len(), 1, "port 54 by the default route");
    assert_eq!(r.count("ip6-inacl", error::REDIRECTED), 1);
    r.no_leaks();
}
