//! ip4-inacl through the whole graph: a DNS session redirect to a "host tap" (pg2), misses
//! that follow the FIB, a table whose miss drops, and packets too short for the mask.
//!
//! pg0 uplink 198.18.0.1/24 (peer 198.18.0.2 behind PEER0, the default route), pg1 pod side
//! 198.19.0.1/24, pg2 host side 198.18.9.1/24 with the node address 198.18.9.2 behind PEER2.

mod common;
use common::*;
use etherparse::PacketBuilder;
use rvpp_dataplane::buffer::BufferPool;
use rvpp_dataplane::feature::FeatureTables;
use rvpp_dataplane::forwarding::{Af, Path, Prefix};
use rvpp_dataplane::nodes::classify::{self, error, Action, Classifier, Session, Table};
use rvpp_dataplane::runtime::Runtime;
use rvpp_dataplane::tables::Shared;
use std::net::IpAddr;
use std::sync::Arc;

const PEER2: [u8; 6] = [2, 0, 0, 0, 0, 0xb2];
const MAC2: [u8; 6] = [2, 0, 0, 0, 0, 0xa2];
const DNS: [u8; 4] = [198, 18, 30, 53];

struct Lab {
    pool: Arc<BufferPool>,
    rt: Runtime,
    out: [Frames; 3],
    ifs: [u32; 3],
}

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

/// The lab with one table on pg1's input whose miss does `miss`.
fn lab(miss: Action) -> Lab {
    let pool = BufferPool::with_backing(4096, 2048, false).unwrap();
    let shared = Shared::new();
    let tables = FeatureTables::default();
    let (graph, mut fwd) = common::feature_graph(&shared, &tables);
    let if0 = fwd.interface_add("pg0", "pg", MAC0, true, 1500).unwrap();
    let if1 = fwd.interface_add("pg1", "pg", MAC1, true, 1500).unwrap();
    let if2 = fwd.interface_add("pg2", "pg", MAC2, true, 1500).unwrap();
    for (sw, p) in [
        (if0, "198.18.0.1/24"),
        (if1, "198.19.0.1/24"),
        (if2, "198.18.9.1/24"),
    ] {
        fwd.address_add(sw, Prefix::parse(p).unwrap()).unwrap();
        fwd.set_admin_up(sw, true).unwrap();
    }
    fwd.neighbor_add(if0, a("198.18.0.2"), PEER0, true).unwrap();
    fwd.neighbor_add(if2, a("198.18.9.2"), PEER2, true).unwrap();
    fwd.route_add(
        0,
        Prefix::parse("0.0.0.0/0").unwrap(),
        vec![Path::via(a("198.18.0.2"), Some(if0))],
    )
    .unwrap();
    let adj = fwd
        .redirect_adj(Af::Ip4, &Path::via(a("198.18.9.2"), Some(if2)))
        .unwrap();
    let mut t = Table::new(&mask(), 0, 2, 2, None, miss, 0).unwrap();
    for proto in [17, 6] {
        let key = t.key(&matched(proto, DNS, 53));
        t.upsert(Session {
            key,
            action: Action::Redirect(adj),
            opaque: 0,
        });
    }
    let mut c = Classifier::default();
    c.tables.push(Some(Arc::new(t)));
    c.set_inacl(Af::Ip4, if1, Some(0));
    tables.get::<classify::Shared>().publish(c);
    fwd.feature_enable(if1, "ip4-unicast", "ip4-inacl", true)
        .unwrap();
    let mut rt = Runtime::new(graph, pool.local(), shared, 0, "test".into()).unwrap();
    let out = [Frames::default(), Frames::default(), Frames::default()];
    for (sw, o) in [if0, if1, if2].into_iter().zip(&out) {
        rt.set_tx(sw, Box::new(Capture(o.clone()))).unwrap();
    }
    drop(fwd);
    Lab {
        pool,
        rt,
        out,
        ifs: [if0, if1, if2],
    }
}

impl Lab {
    fn send(&mut self, sw: u32, frame: &[u8]) {
        let bufs = self.rt.buffers();
        let bi = bufs.alloc_from_bytes(frame).unwrap();
        bufs.meta(bi).rx_sw_if_index = sw;
        self.rt.inject("ethernet-input", &[bi]).unwrap();
    }
    fn send_from_pod(&mut self, frame: &[u8]) {
        let sw = self.ifs[1];
        self.send(sw, frame);
    }
    fn count(&self, code: u16) -> u64 {
        let i = self.rt.graph().error_index("ip4-inacl", code).unwrap();
        self.rt.stats().errors[i as usize].get()
    }
    fn take(&self, i: usize) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.out[i].lock().unwrap())
    }
    fn no_leaks(mut self) {
        self.rt.buffers().flush();
        drop(self.rt);
        assert_eq!(self.pool.in_use(), 0, "buffers leaked");
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
            l.count(error::HIT),
            l.count(error::MISS),
            l.count(error::REDIRECTED)
        ),
        (2, 3, 2)
    );
    // Packets from the uplink are not classified: the table is on pg1 only.
    let sw0 = l.ifs[0];
    let mut f = udp(DNS, 53);
    f[0..6].copy_from_slice(&MAC0);
    l.send(sw0, &f);
    assert_eq!(l.take(0).len(), 1, "not redirected");
    assert_eq!(l.count(error::HIT), 2);
    l.no_leaks();
}

#[test]
fn a_drop_miss_drops_what_no_session_matches() {
    let mut l = lab(Action::Drop);
    l.send_from_pod(&udp(DNS, 53));
    l.send_from_pod(&udp(DNS, 54));
    assert_eq!(l.take(2).len(), 1);
    assert!(l.take(0).is_empty());
    assert_eq!(l.count(error::DROP), 1);
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
    assert_eq!(l.count(error::SHORT), 1);
    assert_eq!(l.count(error::MISS), 1);
    assert!(l.take(2).is_empty(), "never redirected");
    l.no_leaks();
}
