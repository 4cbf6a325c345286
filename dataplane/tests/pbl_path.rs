//! PBL clients through the whole graph: packets to the client's address on its ports go
//! along its path (pg2), the others along the host route it interposed on (pg1), which can be
//! replaced or deleted under it; deleting the client gives the entry back to the route.
//!
//! pg0 198.18.0.1/24 (the sender, peer 198.18.0.2), pg1 198.19.0.1/24 with the pod
//! 198.19.0.5 behind PEER1, pg2 198.18.9.1/24 with the "memif" next hop 198.18.9.2 (PEER2).

mod common;
use common::*;
use etherparse::PacketBuilder;
use rvpp_dataplane::forwarding::{Af, Forwarding, Path, Prefix};
use rvpp_dataplane::nodes::pbl::error;
use std::net::IpAddr;

const POD: [u8; 4] = [198, 19, 0, 5];

struct Lab {
    r: Runtime3,
    fwd: Forwarding,
    ifs: [u32; 3],
}

fn a(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn host(s: &str) -> Prefix {
    Prefix::parse(&format!("{s}/32")).unwrap()
}

fn lab() -> Lab {
    let mut l = pg3(["198.18.0.1/24", "198.19.0.1/24", "198.18.9.1/24"]);
    let [if0, if1, if2] = l.ifs;
    let f = &mut l.fwd;
    f.neighbor_add(if0, a("198.18.0.2"), PEER0, true).unwrap();
    f.neighbor_add(if2, a("198.18.9.2"), PEER2, true).unwrap();
    // The pod's route as calico adds it: via the pod's address on its interface.
    f.neighbor_add(if1, a("198.19.0.5"), PEER1, true).unwrap();
    let pod = vec![Path::via(a("198.19.0.5"), Some(if1))];
    f.route_add(0, host("198.19.0.5"), pod).unwrap();
    let ifs = l.ifs;
    let (r, fwd) = l.run();
    Lab { r, fwd, ifs }
}

impl Lab {
    fn client(&mut self, ranges: Vec<(u8, u16, u16)>) -> u32 {
        let via = Path::via(a("198.18.9.2"), Some(self.ifs[2]));
        self.fwd.pbl_add(0, a("198.19.0.5"), &via, ranges).unwrap()
    }
    /// Send from pg0 and say where it left: 0, 1, 2, or None.
    fn send(&mut self, proto: u8, port: u16) -> Option<usize> {
        let mut v = Vec::new();
        let b = PacketBuilder::ethernet2(PEER0, MAC0).ipv4([198, 18, 0, 2], POD, 64);
        match proto {
            17 => b.udp(40000, port).write(&mut v, b"pbl").unwrap(),
            _ => b.tcp(40000, port, 1, 1024).write(&mut v, &[]).unwrap(),
        }
        self.r.send(0, &v);
        let mut seen = None;
        for i in 0..3 {
            let f = self.r.take(i);
            if !f.is_empty() {
                assert!(seen.is_none() && f.len() == 1);
                seen = Some(i);
            }
        }
        seen
    }
    fn count(&self, code: u16) -> u64 {
        self.r.count("ip4-pbl", code)
    }
    fn no_leaks(self) {
        self.r.no_leaks();
    }
}

#[test]
fn matched_ports_take_the_path_the_rest_the_route() {
    let mut l = lab();
    assert_eq!(l.send(17, 5005), Some(1), "before the client: the route");
    let id = l.client(vec![(17, 5000, 5010), (6, 8080, 8080)]);
    assert_eq!(l.send(17, 5005), Some(2));
    assert_eq!(l.send(17, 5000), Some(2));
    assert_eq!(l.send(17, 5011), Some(1));
    assert_eq!(l.send(6, 5005), Some(1), "the ranges are per protocol");
    assert_eq!(l.send(6, 8080), Some(2));
    assert_eq!((l.count(error::TO_PATH), l.count(error::TO_PARENT)), (3, 2));
    let r = l.fwd.route_get(0, host("198.19.0.5")).unwrap();
    assert_eq!(
        r.paths.len(),
        1,
        "the route's record is unchanged under the client"
    );
    l.fwd.pbl_del(id).unwrap();
    assert_eq!(l.send(17, 5005), Some(1), "the route again");
    assert!(l.fwd.pbl_del(id).is_err(), "deleted twice");
    assert!(l.fwd.pbl_clients().is_empty());
    l.no_leaks();
}

#[test]
fn a_route_replaced_or_deleted_under_the_client_changes_only_its_parent() {
    let mut l = lab();
    let id = l.client(vec![(17, 5000, 5010)]);
    l.fwd
        .route_add(
            0,
            host("198.19.0.5"),
            vec![Path::via(a("198.18.0.2"), Some(l.ifs[0]))],
        )
        .unwrap();
    assert_eq!(l.send(17, 6000), Some(0), "the new route");
    assert_eq!(l.send(17, 5005), Some(2), "the client stays");
    l.fwd.route_del(0, host("198.19.0.5")).unwrap();
    assert_eq!(l.send(17, 5005), Some(2), "still the client's path");
    // The neighbour's host route waited under the API's: it is the parent now.
    assert_eq!(l.send(17, 6000), Some(1), "the neighbour's host route");
    l.fwd.neighbor_del(l.ifs[1], a("198.19.0.5")).unwrap();
    assert_eq!(l.send(17, 5005), Some(2), "still the client's path");
    assert_eq!(l.send(17, 6000), None, "no route left under the client");
    assert_eq!(l.count(error::PARENT_DROP), 1);
    l.fwd.pbl_del(id).unwrap();
    assert!(
        l.fwd.route_get(0, host("198.19.0.5")).is_none(),
        "no entry left"
    );
    // The covering connected route now, out pg1.
    assert_eq!(l.send(17, 5005), Some(1));
    l.no_leaks();
}

#[test]
fn a_client_with_no_route_under_it_uses_the_cover_and_bad_tables_are_refused() {
    let mut l = lab();
    l.fwd.route_del(0, host("198.19.0.5")).unwrap();
    // The neighbour's own host entry came back under the route: no route under the client
    // only without the neighbour.
    assert!(l.fwd.route_get(0, host("198.19.0.5")).is_some());
    l.fwd.neighbor_del(l.ifs[1], a("198.19.0.5")).unwrap();
    assert!(l.fwd.route_get(0, host("198.19.0.5")).is_none());
    let id = l.client(vec![(17, 5000, 5010)]);
    assert_eq!(l.send(17, 5005), Some(2));
    let got = l.send(17, 6000);
    assert_eq!(got, Some(1), "the connected /24 on pg1");
    let via = Path::via(a("198.18.9.2"), Some(l.ifs[2]));
    assert!(
        l.fwd.pbl_add(77, a("198.19.0.5"), &via, vec![]).is_err(),
        "no table 77"
    );
    let again = l
        .fwd
        .pbl_add(0, a("198.19.0.5"), &via, vec![(17, 6000, 6000)])
        .unwrap();
    assert_eq!(
        again, id,
        "added again: the same client, its ranges replaced"
    );
    assert_eq!(l.send(17, 6000), Some(2));
    assert_ne!(l.send(17, 5005), Some(2), "5005 no longer matched");
    l.fwd.table_add(Af::Ip4, 7, "pod-vrf").unwrap();
    let other = l.fwd.pbl_add(7, a("198.19.0.5"), &via, vec![]).unwrap();
    assert_ne!(other, id);
    assert!(
        l.fwd.table_del(Af::Ip4, 7).is_err(),
        "a table with a PBL client stays"
    );
    l.fwd.pbl_del(other).unwrap();
    l.fwd.table_del(Af::Ip4, 7).unwrap();
    l.fwd.pbl_del(id).unwrap();
    assert!(
        l.fwd.route_get(0, host("198.19.0.5")).is_none(),
        "the client's own entry went"
    );
    // The cover again: an ARP request for the pod (throttled right after the last one).
    assert_ne!(l.send(17, 5005), Some(2));
    l.no_leaks();
}
