//! SRv6 through the whole graph: H.Encaps (IPv4 and IPv6 payloads, one and several SIDs,
//! H.Encaps.Red, weighted lists) and every localsid behaviour, the bytes checked with
//! etherparse and an SRH decode written here from RFC 8754's layout (not rvpp's view), and
//! the bad SRHs as counted drops or ICMPv6 parameter problems.
//!
//! pg0 uplink 198.18.0.1/24 + fd00::1/64 (peer fd00::2 / 198.18.0.2 behind PEER0; the SID
//! locators fd00:2::/32 and fd00:3::/32 via fd00::2), pg1 pod side 198.19.0.1/24 + fd01::1/64
//! (pod 198.19.0.2 / fd01::2). Our localsids are in fd00:1::/48.

mod common;
use common::*;
use etherparse::{Ethernet2Header, IpNumber, Ipv4Header, Ipv6Header, PacketBuilder};
use rvpp_dataplane::buffer::BufferPool;
use rvpp_dataplane::feature::FeatureTables;
use rvpp_dataplane::forwarding::{Af, Path, PathKind, Prefix};
use rvpp_dataplane::runtime::Runtime;
use rvpp_dataplane::srv6::{self, encap, localsid, Behavior, Localsid, Policy, SidList, Srv6};
use rvpp_dataplane::tables::Shared;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

struct Lab {
    pool: Arc<BufferPool>,
    rt: Runtime,
    out0: Frames,
    out1: Frames,
    if0: u32,
    if1: u32,
}

fn a(s: &str) -> IpAddr {
    s.parse().unwrap()
}
fn v6(s: &str) -> u128 {
    u128::from(s.parse::<Ipv6Addr>().unwrap())
}

const SRC: &str = "fd00::1";

fn policy(bsid: &str, lists: &[(u32, &[&str])], reduced: bool) -> Policy {
    let mut p = Policy::new(v6(bsid), true, false, 0, 0);
    p.reduced = reduced;
    for (i, (w, sids)) in lists.iter().enumerate() {
        let sids = sids.iter().map(|s| v6(s)).collect();
        p.sid_lists
            .push(SidList::new(i as u32, *w, sids, v6(SRC), reduced).unwrap());
    }
    p.rebalance();
    p
}

fn ls(sid: &str, behavior: Behavior, end_psp: bool, adj: u32) -> Localsid {
    Localsid {
        sid: v6(sid),
        behavior,
        end_psp,
        fib_table: 0,
        decap_table: 0,
        decap_fib: 0,
        nh: None,
        sw_if_index: 0,
        adj,
    }
}

const LOCALSIDS: [&str; 7] = [
    "fd00:1::d4",
    "fd00:1::d6",
    "fd00:1::e",
    "fd00:1::e1",
    "fd00:1::a",
    "fd00:1::dd4",
    "fd00:1::dd6",
];

/// What the control side keeps to change the lab's tables after it is built.
struct Control {
    fwd: rvpp_dataplane::forwarding::Forwarding,
    tables: FeatureTables,
    sr: Srv6,
}

fn lab() -> Lab {
    build().0
}

fn build() -> (Lab, Control) {
    let pool = BufferPool::with_backing(4096, 2048, false).unwrap();
    let shared = Shared::new();
    let tables = FeatureTables::default();
    let (graph, mut fwd) = common::feature_graph(&shared, &tables);
    let if0 = fwd.interface_add("pg0", "pg", MAC0, true, 1500).unwrap();
    let if1 = fwd.interface_add("pg1", "pg", MAC1, true, 9000).unwrap();
    for (sw, p) in [
        (if0, "198.18.0.1/24"),
        (if0, "fd00::1/64"),
        (if1, "198.19.0.1/24"),
        (if1, "fd01::1/64"),
    ] {
        fwd.address_add(sw, Prefix::parse(p).unwrap()).unwrap();
    }
    for sw in [if0, if1] {
        fwd.set_admin_up(sw, true).unwrap();
    }
    fwd.neighbor_add(if0, a("fd00::2"), PEER0, true).unwrap();
    fwd.neighbor_add(if0, a("198.18.0.2"), PEER0, true).unwrap();
    fwd.neighbor_add(if1, a("198.19.0.2"), PEER1, true).unwrap();
    fwd.neighbor_add(if1, a("fd01::2"), PEER1, true).unwrap();
    for p in ["fd00:2::/32", "fd00:3::/32"] {
        fwd.route_add(
            0,
            Prefix::parse(p).unwrap(),
            vec![Path::via(a("fd00::2"), Some(if0))],
        )
        .unwrap();
    }
    let x_adj = fwd.neighbour_adjacency(if0, a("fd00::2")).unwrap();
    let dx4_adj = fwd.neighbour_adjacency(if1, a("198.19.0.2")).unwrap();
    let dx6_adj = fwd.neighbour_adjacency(if1, a("fd01::2")).unwrap();
    fwd.publish();
    let mut sr = Srv6 {
        encap_source: v6(SRC),
        ..Default::default()
    };
    sr.policies = vec![
        Some(policy("fd00:1::b0", &[(1, &["fd00:2::d4"])], false)),
        Some(policy(
            "fd00:1::b1",
            &[(1, &["fd00:2::e", "fd00:3::d6"])],
            false,
        )),
        Some(policy(
            "fd00:1::b2",
            &[(1, &["fd00:2::e", "fd00:3::e", "fd00:3::d4"])],
            true,
        )),
        Some(policy(
            "fd00:1::b3",
            &[(1, &["fd00:2::d4"]), (3, &["fd00:3::d4"])],
            false,
        )),
        // Into our own End.DT4, whose table steers the packet into it again.
        Some(policy("fd00:1::b4", &[(1, &[LOCALSIDS[0]])], false)),
    ];
    sr.localsids = vec![
        Some(ls(LOCALSIDS[0], Behavior::DT4, false, 0)),
        Some(ls(LOCALSIDS[1], Behavior::DT6, false, 0)),
        Some(ls(LOCALSIDS[2], Behavior::End, false, 0)),
        Some(ls(LOCALSIDS[3], Behavior::End, true, 0)),
        Some(ls(LOCALSIDS[4], Behavior::X, false, x_adj)),
        Some(ls(LOCALSIDS[5], Behavior::DX4, false, dx4_adj)),
        Some(ls(LOCALSIDS[6], Behavior::DX6, false, dx6_adj)),
    ];
    // The table first, then the routes that name its entries.
    tables.get::<srv6::Table>().publish(sr.clone());
    for (p, i) in [
        ("198.19.210.0/24", 0),
        ("fd02::/64", 1),
        ("198.19.212.0/24", 2),
        ("198.19.213.0/24", 3),
        ("198.19.214.0/24", 4),
    ] {
        fwd.route_add(
            0,
            Prefix::parse(p).unwrap(),
            vec![Path::special(PathKind::SrPolicy(i))],
        )
        .unwrap();
    }
    for (i, sid) in LOCALSIDS.iter().enumerate() {
        let p = Prefix::parse(&format!("{sid}/128")).unwrap();
        fwd.route_add(0, p, vec![Path::special(PathKind::SrLocalsid(i as u32))])
            .unwrap();
    }
    let mut rt = Runtime::new(graph, pool.local(), shared, 0, "test".into()).unwrap();
    let (out0, out1) = (Frames::default(), Frames::default());
    rt.set_tx(if0, Box::new(Capture(out0.clone()))).unwrap();
    rt.set_tx(if1, Box::new(Capture(out1.clone()))).unwrap();
    let lab = Lab {
        pool,
        rt,
        out0,
        out1,
        if0,
        if1,
    };
    (lab, Control { fwd, tables, sr })
}

impl Lab {
    fn send(&mut self, sw: u32, frame: &[u8]) {
        inject(&mut self.rt, sw, frame);
    }
    /// `frames` received on `sw`, one vector each (`one_by_one`) or all in one vector.
    fn send_all(&mut self, sw: u32, frames: &[Vec<u8>], one_by_one: bool) {
        if one_by_one {
            frames.iter().for_each(|f| self.send(sw, f));
        } else {
            inject_vector(&mut self.rt, sw, frames);
        }
    }
    fn error(&self, node: &str, code: u16) -> u64 {
        counter(&self.rt, node, code)
    }
    fn take(f: &Frames) -> Vec<Vec<u8>> {
        take(f)
    }
    fn no_leaks(self) {
        no_leaks(&self.pool, self.rt);
    }
}

fn pod4(dst: [u8; 4], sport: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(PEER1, MAC1)
        .ipv4([198, 19, 0, 2], dst, 64)
        .udp(sport, 2000);
    let mut v = Vec::new();
    b.write(&mut v, &[0x11; 40]).unwrap();
    v
}

fn pod6(dst: &str) -> Vec<u8> {
    let d: Ipv6Addr = dst.parse().unwrap();
    let s: Ipv6Addr = "fd01::2".parse().unwrap();
    let b = PacketBuilder::ethernet2(PEER1, MAC1)
        .ipv6(s.octets(), d.octets(), 64)
        .udp(1000, 2000);
    let mut v = Vec::new();
    b.write(&mut v, &[0x22; 40]).unwrap();
    v
}

/// An SRH decoded from RFC 8754's layout: (next header, segments left, last entry,
/// segment list as stored, header length).
fn decode_srh(b: &[u8]) -> (u8, u8, u8, Vec<u128>, usize) {
    assert_eq!(b[2], 4, "routing type 4");
    let len = 8 + 8 * b[1] as usize;
    let segs = (0..=b[4] as usize)
        .map(|i| u128::from_be_bytes(b[8 + 16 * i..24 + 16 * i].try_into().unwrap()))
        .collect();
    (b[0], b[3], b[4], segs, len)
}

/// The outer IPv6 header of a frame leaving pg0, and what follows it.
fn outer(frame: &[u8]) -> (Ipv6Header, &[u8]) {
    let (eth, rest) = Ethernet2Header::from_slice(frame).unwrap();
    assert_eq!((eth.destination, eth.source), (PEER0, MAC0));
    let (h, rest) = Ipv6Header::from_slice(rest).unwrap();
    assert_eq!(h.payload_length as usize, rest.len());
    assert_eq!(h.source, Ipv6Addr::from(v6(SRC)).octets());
    (h, rest)
}

#[test]
fn ipv4_payload_one_sid_is_ipv6_outer_without_srh() {
    let mut l = lab();
    let if1 = l.if1;
    l.send(if1, &pod4([198, 19, 210, 7], 1000));
    let out = Lab::take(&l.out0);
    assert_eq!(out.len(), 1);
    let (h, rest) = outer(&out[0]);
    assert_eq!(h.destination, Ipv6Addr::from(v6("fd00:2::d4")).octets());
    assert_eq!(h.next_header, IpNumber::IPV4);
    assert_eq!(h.hop_limit, 64, "our own packet: not decremented");
    let (ih, payload) = Ipv4Header::from_slice(rest).unwrap();
    assert_eq!(ih.destination, [198, 19, 210, 7]);
    assert_eq!(payload.len(), 8 + 40);
    assert_eq!(l.error(encap::ENCAP4, encap::error::ENCAPSULATED), 1);
    l.no_leaks();
}

#[test]
fn ipv6_payload_two_sids_carries_the_full_srh() {
    let mut l = lab();
    let if1 = l.if1;
    let sent = pod6("fd02::9");
    l.send(if1, &sent);
    let out = Lab::take(&l.out0);
    assert_eq!(out.len(), 1);
    let (h, rest) = outer(&out[0]);
    assert_eq!(h.destination, Ipv6Addr::from(v6("fd00:2::e")).octets());
    assert_eq!(h.next_header, IpNumber(43));
    let (nh, sl, le, segs, len) = decode_srh(rest);
    assert_eq!((nh, sl, le, len), (41, 1, 1, 40));
    assert_eq!(segs, [v6("fd00:3::d6"), v6("fd00:2::e")]);
    assert_eq!(&rest[len..], &sent[14..], "inner packet unchanged");
    assert_eq!(l.error(encap::ENCAP6, encap::error::ENCAPSULATED), 1);
    l.no_leaks();
}

#[test]
fn reduced_encap_leaves_the_first_sid_out_of_the_srh() {
    let mut l = lab();
    let if1 = l.if1;
    l.send(if1, &pod4([198, 19, 212, 7], 1000));
    let out = Lab::take(&l.out0);
    let (h, rest) = outer(&out[0]);
    assert_eq!(h.destination, Ipv6Addr::from(v6("fd00:2::e")).octets());
    let (nh, sl, le, segs, len) = decode_srh(rest);
    assert_eq!((nh, sl, le, len), (4, 2, 1, 40));
    assert_eq!(segs, [v6("fd00:3::d4"), v6("fd00:3::e")]);
    l.no_leaks();
}

#[test]
fn weighted_lists_split_flows_and_keep_each_flow_on_one() {
    let mut l = lab();
    let if1 = l.if1;
    let mut first = [0u32; 2];
    for port in 0..400u16 {
        for _ in 0..2 {
            l.send(if1, &pod4([198, 19, 213, 7], 1000 + port));
        }
        let out = Lab::take(&l.out0);
        assert_eq!(out.len(), 2);
        assert_eq!(
            outer(&out[0]).0.destination,
            outer(&out[1]).0.destination,
            "one flow, one list"
        );
        let d = outer(&out[0]).0.destination;
        first[(d == Ipv6Addr::from(v6("fd00:3::d4")).octets()) as usize] += 1;
    }
    // Weights 1:3: about 100 and 300 of 400 flows.
    assert!((60..=140).contains(&first[0]), "{first:?}");
    l.no_leaks();
}

/// A frame from the uplink: outer IPv6 fd00:2::1 -> `dst` with an SRH of `path` (visit
/// order) and `segments_left`, or none when `path` is empty, then `inner` (protocol `proto`).
fn sr_frame(dst: &str, path: &[&str], segments_left: u8, proto: u8, inner: &[u8]) -> Vec<u8> {
    let mut srh = Vec::new();
    if !path.is_empty() {
        srh.extend_from_slice(&[
            proto,
            2 * path.len() as u8,
            4,
            segments_left,
            path.len() as u8 - 1,
            0,
            0,
            0,
        ]);
        for s in path.iter().rev() {
            srh.extend_from_slice(&v6(s).to_be_bytes());
        }
    }
    let next = if path.is_empty() { proto } else { 43 };
    let h = Ipv6Header {
        traffic_class: 0,
        flow_label: Default::default(),
        payload_length: (srh.len() + inner.len()) as u16,
        next_header: IpNumber(next),
        hop_limit: 64,
        source: Ipv6Addr::from(v6("fd00:2::1")).octets(),
        destination: Ipv6Addr::from(v6(dst)).octets(),
    };
    let mut v = Vec::new();
    Ethernet2Header {
        destination: MAC0,
        source: PEER0,
        ether_type: etherparse::EtherType::IPV6,
    }
    .write(&mut v)
    .unwrap();
    h.write(&mut v).unwrap();
    v.extend_from_slice(&srh);
    v.extend_from_slice(inner);
    v
}

fn inner4() -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4([198, 19, 202, 7], [198, 19, 0, 2], 64)
        .udp(2000, 1000)
        .write(&mut v, b"through srv6")
        .unwrap();
    v
}

fn inner6() -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv6(
        Ipv6Addr::from(v6("fd09::7")).octets(),
        Ipv6Addr::from(v6("fd01::2")).octets(),
        64,
    )
    .udp(2000, 1000)
    .write(&mut v, b"through srv6")
    .unwrap();
    v
}

fn to_pod4(l: &Lab) -> Ipv4Header {
    let out = Lab::take(&l.out1);
    assert_eq!(out.len(), 1, "inner packet forwarded to the pod");
    let (_, rest) = Ethernet2Header::from_slice(&out[0]).unwrap();
    let (ih, payload) = Ipv4Header::from_slice(rest).unwrap();
    assert!(payload.ends_with(b"through srv6"));
    ih
}

fn to_pod6(l: &Lab) -> Ipv6Header {
    let out = Lab::take(&l.out1);
    assert_eq!(out.len(), 1, "inner packet forwarded to the pod");
    let (_, rest) = Ethernet2Header::from_slice(&out[0]).unwrap();
    let (ih, payload) = Ipv6Header::from_slice(rest).unwrap();
    assert!(payload.ends_with(b"through srv6"));
    ih
}

#[test]
fn end_dt4_and_dt6_decapsulate_with_and_without_srh() {
    let mut l = lab();
    let if0 = l.if0;
    // As Linux sends: an SRH with one segment, SL 0.
    l.send(
        if0,
        &sr_frame(LOCALSIDS[0], &[LOCALSIDS[0]], 0, 4, &inner4()),
    );
    assert_eq!(to_pod4(&l).time_to_live, 63);
    // As VPP sends one SID: no SRH.
    l.send(if0, &sr_frame(LOCALSIDS[0], &[], 0, 4, &inner4()));
    assert_eq!(to_pod4(&l).time_to_live, 63);
    l.send(
        if0,
        &sr_frame(LOCALSIDS[1], &["fd00:2::e", LOCALSIDS[1]], 0, 41, &inner6()),
    );
    assert_eq!(to_pod6(&l).hop_limit, 63);
    assert_eq!(l.error(localsid::NAME, localsid::error::DECAPSULATED), 3);
    // The wrong payload for the behaviour.
    l.send(if0, &sr_frame(LOCALSIDS[0], &[], 0, 41, &inner6()));
    assert_eq!(l.error(localsid::NAME, localsid::error::WRONG_PAYLOAD), 1);
    assert!(Lab::take(&l.out1).is_empty());
    l.no_leaks();
}

#[test]
fn end_dx4_and_dx6_cross_connect_to_the_next_hop() {
    let mut l = lab();
    let if0 = l.if0;
    l.send(if0, &sr_frame(LOCALSIDS[5], &[], 0, 4, &inner4()));
    assert_eq!(to_pod4(&l).destination, [198, 19, 0, 2]);
    l.send(
        if0,
        &sr_frame(LOCALSIDS[6], &[LOCALSIDS[6]], 0, 41, &inner6()),
    );
    to_pod6(&l);
    l.no_leaks();
}

#[test]
fn end_and_end_x_move_to_the_next_segment_psp_pops_the_srh() {
    let mut l = lab();
    let if0 = l.if0;
    let inner = inner6();
    // End: SL 2 -> 1, DA = segment[1], looked up again (toward fd00:3::/32 via pg0).
    l.send(
        if0,
        &sr_frame(
            LOCALSIDS[2],
            &[LOCALSIDS[2], "fd00:3::1", "fd00:3::2"],
            2,
            41,
            &inner,
        ),
    );
    let out = Lab::take(&l.out0);
    assert_eq!(out.len(), 1);
    let (_, rest) = Ethernet2Header::from_slice(&out[0]).unwrap();
    let (h, rest) = Ipv6Header::from_slice(rest).unwrap();
    assert_eq!(h.destination, Ipv6Addr::from(v6("fd00:3::1")).octets());
    assert_eq!(h.hop_limit, 63, "forwarded: decremented");
    let (_, sl, _, _, len) = decode_srh(rest);
    assert_eq!((sl, len), (1, 56));
    // End with PSP on the penultimate segment: SL 1 -> 0 and the SRH goes.
    l.send(
        if0,
        &sr_frame(LOCALSIDS[3], &[LOCALSIDS[3], "fd00:3::1"], 1, 41, &inner),
    );
    let out = Lab::take(&l.out0);
    let (_, rest) = Ethernet2Header::from_slice(&out[0]).unwrap();
    let (h, rest) = Ipv6Header::from_slice(rest).unwrap();
    assert_eq!(h.destination, Ipv6Addr::from(v6("fd00:3::1")).octets());
    assert_eq!(h.next_header, IpNumber(41));
    assert_eq!(h.payload_length as usize, inner.len());
    assert_eq!(rest, &inner[..]);
    // End.X: to its adjacency (fd00::2 on pg0) whatever the new destination's route.
    l.send(
        if0,
        &sr_frame(LOCALSIDS[4], &[LOCALSIDS[4], "fd77::1"], 1, 41, &inner),
    );
    let out = Lab::take(&l.out0);
    assert_eq!(out.len(), 1);
    let (_, rest) = Ethernet2Header::from_slice(&out[0]).unwrap();
    let (h, _) = Ipv6Header::from_slice(rest).unwrap();
    assert_eq!(h.destination, Ipv6Addr::from(v6("fd77::1")).octets());
    // End with no segment left is not ours to process further.
    l.send(if0, &sr_frame(LOCALSIDS[2], &[LOCALSIDS[2]], 0, 41, &inner));
    assert_eq!(
        l.error(localsid::NAME, localsid::error::NO_SEGMENTS_LEFT),
        1
    );
    l.no_leaks();
}

#[test]
fn bad_srh_is_a_counted_drop_or_a_parameter_problem() {
    let mut l = lab();
    let if0 = l.if0;
    let inner = inner4();
    // Segments Left > Last Entry + 1: ICMPv6 parameter problem back to the source.
    l.send(
        if0,
        &sr_frame(LOCALSIDS[2], &[LOCALSIDS[2], "fd00:3::1"], 3, 4, &inner),
    );
    let out = Lab::take(&l.out0);
    assert_eq!(out.len(), 1, "parameter problem sent");
    let (_, rest) = Ethernet2Header::from_slice(&out[0]).unwrap();
    let (h, icmp) = Ipv6Header::from_slice(rest).unwrap();
    assert_eq!(h.destination, Ipv6Addr::from(v6("fd00:2::1")).octets());
    assert_eq!(h.next_header, IpNumber(58));
    assert_eq!((icmp[0], icmp[1]), (4, 0));
    assert_eq!(
        u32::from_be_bytes(icmp[4..8].try_into().unwrap()),
        43,
        "points at SL"
    );
    assert_eq!(l.error(localsid::NAME, localsid::error::BAD_SRH), 1);
    // Segments left at a decap SID: parameter problem too.
    l.send(
        if0,
        &sr_frame(LOCALSIDS[0], &["fd00:3::1", LOCALSIDS[0]], 1, 4, &inner),
    );
    assert_eq!(Lab::take(&l.out0).len(), 1);
    assert_eq!(l.error(localsid::NAME, localsid::error::SEGMENTS_LEFT), 1);
    // Header length running past the packet.
    let mut f = sr_frame(LOCALSIDS[2], &[LOCALSIDS[2], "fd00:3::1"], 1, 4, &[]);
    f[14 + 40 + 1] = 200;
    l.send(if0, &f);
    assert_eq!(l.error(localsid::NAME, localsid::error::TRUNCATED), 1);
    // No segments at all.
    let mut f = sr_frame(LOCALSIDS[2], &[LOCALSIDS[2]], 0, 4, &inner);
    f[14 + 40 + 1] = 0;
    l.send(if0, &f);
    assert_eq!(l.error(localsid::NAME, localsid::error::NO_SEGMENTS), 1);
    // Last Entry beyond the header.
    let mut f = sr_frame(LOCALSIDS[2], &[LOCALSIDS[2], "fd00:3::1"], 1, 4, &inner);
    f[14 + 40 + 4] = 5;
    l.send(if0, &f);
    assert_eq!(l.error(localsid::NAME, localsid::error::BAD_SRH), 2);
    assert!(Lab::take(&l.out1).is_empty(), "nothing reached the pod");
    l.no_leaks();
}

#[test]
fn a_steering_loop_through_our_own_sid_is_a_counted_drop() {
    let mut l = lab();
    let if1 = l.if1;
    l.send(if1, &pod4([198, 19, 214, 7], 1000));
    assert!(Lab::take(&l.out0).is_empty() && Lab::take(&l.out1).is_empty());
    let loops =
        l.error(encap::ENCAP4, encap::error::LOOP) + l.error(localsid::NAME, localsid::error::LOOP);
    assert_eq!(loops, 1, "dropped once, as a loop");
    assert!(
        l.error(localsid::NAME, localsid::error::DECAPSULATED) >= 1,
        "it went round"
    );
    l.no_leaks();
}

/// Random SRHs (any header length, Segments Left, Last Entry, truncated anywhere) to an End
/// SID: each is forwarded, answered with a parameter problem, or dropped under the counter
/// RFC 8754's checks (written out here in order) name, and the pool comes back whole.
#[test]
fn random_srhs_each_get_the_outcome_rfc_8754_gives() {
    let mut l = lab();
    let if0 = l.if0;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let seg = v6("fd00:3::1").to_be_bytes();
    for _ in 0..3000 {
        let (hel, sl, le) = (rnd(9) as u8, rnd(7) as u8, rnd(7) as u8);
        let mut srh = vec![41, hel, 4, sl, le, 0, 0, 0];
        for _ in 0..hel / 2 {
            srh.extend_from_slice(&seg);
        }
        // Cut anywhere from nothing to the whole header (and the inner packet after it).
        let full = srh.len();
        let keep = if rnd(3) == 0 {
            rnd(full as u64 + 1) as usize
        } else {
            full
        };
        srh.truncate(keep);
        let inner: &[u8] = if keep == full {
            &[0x60, 0, 0, 0, 0, 0, 59, 64]
        } else {
            &[]
        };
        let mut f = sr_frame(LOCALSIDS[2], &[], 0, 43, &[]);
        f.extend_from_slice(&srh);
        f.extend_from_slice(inner);
        let plen = (srh.len() + inner.len()) as u16;
        f[14 + 4..14 + 6].copy_from_slice(&plen.to_be_bytes());
        use localsid::error as e;
        // What follows the IPv6 header: the header's bytes kept, then the inner packet.
        let avail = srh.len() + inner.len();
        let want = if avail < 8 {
            e::TRUNCATED
        } else if hel == 0 {
            e::NO_SEGMENTS
        } else if avail < 8 + 8 * hel as usize {
            e::TRUNCATED
        } else if (le as usize + 1) * 2 > hel as usize || sl > le + 1 {
            e::BAD_SRH
        } else if sl == 0 {
            e::NO_SEGMENTS_LEFT
        } else {
            e::PROCESSED
        };
        let before = l.error(localsid::NAME, want);
        l.send(if0, &f);
        let out = Lab::take(&l.out0);
        assert_eq!(
            l.error(localsid::NAME, want),
            before + 1,
            "hel {hel} sl {sl} le {le} kept {keep} of {full}: counter {want}"
        );
        // Forwarded packets leave on pg0, parameter problems too unless ip6-icmp-error's rate
        // limit holds them back (counted there); drops leave nothing.
        let most = matches!(want, e::PROCESSED | e::BAD_SRH) as usize;
        let least = (want == e::PROCESSED) as usize;
        assert!(
            (least..=most).contains(&out.len()),
            "hel {hel} sl {sl} le {le} kept {keep}: {} out",
            out.len()
        );
    }
    assert!(Lab::take(&l.out1).is_empty());
    l.no_leaks();
}

/// A worker forwards End.DT4 traffic to LOCALSIDS[0] while the control side deletes and
/// re-adds the localsid 200 times: in the service's order (the route first, then the entry) and
/// in the wrong one (the entry first, so the worker can meet a route naming an empty slot).
/// Every packet is delivered, answered with an unreachable or dropped under a counter, and the
/// pool comes back whole.
#[test]
fn a_localsid_deleted_under_traffic_is_delivered_or_a_counted_drop() {
    let (mut l, mut ctl) = build();
    let if0 = l.if0;
    let frame = sr_frame(LOCALSIDS[0], &[], 0, 4, &inner4());
    let sid = Prefix::parse(&format!("{}/128", LOCALSIDS[0])).unwrap();
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let worker = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            while !stop.load(Relaxed) {
                l.send(if0, &frame);
                sent.fetch_add(1, Relaxed);
            }
            l
        })
    };
    // Each state is held until the worker has sent a few packets through it.
    let seen = || {
        let from = sent.load(Relaxed);
        while sent.load(Relaxed) < from + 4 {
            std::thread::yield_now();
        }
    };
    let table = ctl.tables.get::<srv6::Table>();
    let entry = ctl.sr.localsids[0].clone();
    for round in 0..200 {
        let mut gone = ctl.sr.clone();
        gone.localsids[0] = None;
        if round % 2 == 0 {
            ctl.fwd.route_del(0, sid).unwrap();
            ctl.fwd.publish();
            seen();
            table.publish(gone);
        } else {
            table.publish(gone);
            seen();
            ctl.fwd.route_del(0, sid).unwrap();
            ctl.fwd.publish();
        }
        seen();
        ctl.sr.localsids[0] = entry.clone();
        table.publish(ctl.sr.clone());
        ctl.fwd
            .route_add(0, sid, vec![Path::special(PathKind::SrLocalsid(0))])
            .unwrap();
        ctl.fwd.publish();
        seen();
    }
    stop.store(true, Relaxed);
    let l = worker.join().unwrap();
    let sent = sent.load(Relaxed);
    let delivered = Lab::take(&l.out1).len() as u64;
    // With the /128 gone, the SID has no route: ICMPv6 destination unreachable to the sender.
    let back = Lab::take(&l.out0);
    assert!(
        back.iter().all(|f| f[14 + 6] == 58 && f[14 + 40] == 1),
        "only unreachables go back"
    );
    let unreachable = back.len() as u64;
    let stats = l.rt.stats();
    let at = |n: &str| l.rt.graph().index(n).unwrap() as usize;
    let dropped = stats.nodes[at("error-drop")].vectors.get();
    assert!(sent > 1000, "the worker sent only {sent}");
    assert_eq!(
        delivered + dropped + unreachable,
        sent,
        "every packet delivered, answered or counted"
    );
    assert!(delivered > 0, "traffic flowed");
    assert!(unreachable > 0, "the worker met the SID without its route");
    assert!(
        l.error(localsid::NAME, localsid::error::NO_LOCALSID) > 0,
        "the worker met the route naming an empty slot"
    );
    assert!(
        l.error(localsid::NAME, localsid::error::DECAPSULATED) >= delivered,
        "what reached the pod went through End.DT4"
    );
    l.no_leaks();
}

/// A pod's TCP super-frame steered into a policy, with and without an SRH, leaves as
/// segments whose outer IPv6 payload length and inner headers and checksums are right.
#[test]
fn a_pods_super_frame_leaves_an_sr_policy_as_checked_segments() {
    use common::tunnel_offload::*;
    let mut l = lab();
    for (dst, srh) in [([198, 19, 210, 9], 0), ([198, 19, 212, 9], 8 + 2 * 16)] {
        let f = pod_tcp(PEER1, MAC1, [198, 19, 0, 2], dst, 4200);
        let if1 = l.if1;
        // 40 + 40 + 20 + 20 + 1400 = 1520 would be over pg0's 1500 with the SRH.
        inject_offload(&mut l.rt, if1, &f, Some(1300));
        let out = Lab::take(&l.out0);
        assert_eq!(check_segments(&out, true, Encap::Srh(srh), 1300, 4200), 4);
    }
    l.no_leaks();
}

/// What an af_packet uplink marks "checksum left to finish" (a local sender's) is decapsulated
/// by End.DT4: an inner UDP checksum is finished on the way to the pod; an inner ICMP, which
/// has no checksum to finish, loses the mark and is delivered, not dropped by gso-segment.
#[test]
fn end_dt4_of_a_packet_with_its_checksum_left_to_finish() {
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
    let mut udp = inner4();
    udp[26..28].copy_from_slice(&[0x12, 0x34]);
    send_partial(&mut l, &sr_frame(LOCALSIDS[0], &[LOCALSIDS[0]], 0, 4, &udp));
    let mut icmp = Vec::new();
    PacketBuilder::ipv4([198, 19, 202, 7], [198, 19, 0, 2], 64)
        .icmpv4_echo_request(7, 1)
        .write(&mut icmp, b"through srv6")
        .unwrap();
    send_partial(&mut l, &sr_frame(LOCALSIDS[0], &[], 0, 4, &icmp));
    let out = Lab::take(&l.out1);
    assert_eq!(out.len(), 2, "both delivered");
    let (ip, l4) = Ipv4Header::from_slice(&out[0][14..]).unwrap();
    let (u, payload) = etherparse::UdpHeader::from_slice(l4).unwrap();
    assert_eq!(u.checksum, u.calc_checksum_ipv4(&ip, payload).unwrap());
    let (ip, _) = Ipv4Header::from_slice(&out[1][14..]).unwrap();
    assert_eq!(ip.protocol, IpNumber::ICMP);
    assert_eq!(l.error(localsid::NAME, localsid::error::DECAPSULATED), 2);
    l.no_leaks();
}

/// Vectors a node has processed so far.
fn vectors(l: &Lab, node: &str) -> u64 {
    let i = l.rt.graph().index(node).unwrap() as usize;
    l.rt.stats().nodes[i].vectors.get()
}

/// The destination MACs of the frames `keep` picks.
fn dst_macs(frames: &[Vec<u8>], keep: impl Fn(&[u8]) -> bool) -> Vec<[u8; 6]> {
    frames
        .iter()
        .filter(|f| keep(f))
        .map(|f| f[..6].try_into().unwrap())
        .collect()
}

/// Pod packets into every policy that leaves by pg0: one SID (IPv4 and IPv6 payloads), two
/// SIDs with the full SRH, H.Encaps.Red, weighted lists.
fn steered_mix() -> Vec<Vec<u8>> {
    let mut v = vec![
        pod4([198, 19, 210, 7], 1000),
        pod6("fd02::9"),
        pod4([198, 19, 212, 7], 1000),
    ];
    v.extend((0..8).map(|p| pod4([198, 19, 213, 7], 2000 + p)));
    v
}

/// The outer packet skips ip6-lookup and ip6-rewrite when the first SID's route is one plain
/// adjacency, and what leaves is byte for byte what the long path (forced here by making
/// the locators' routes two paths to two neighbours with the same MAC) writes.
#[test]
fn the_encap_shortcut_writes_the_bytes_the_long_path_does() {
    let (mut l, mut ctl) = build();
    let if1 = l.if1;
    let mix = steered_mix();
    for f in &mix {
        l.send(if1, f);
    }
    let short = Lab::take(&l.out0);
    assert_eq!(short.len(), mix.len());
    assert_eq!(
        vectors(&l, "ip6-rewrite"),
        0,
        "the outer packets went from the encap node to interface-output"
    );
    ctl.fwd
        .neighbor_add(l.if0, a("fd00::3"), PEER0, true)
        .unwrap();
    for p in ["fd00:2::/32", "fd00:3::/32"] {
        let paths = ["fd00::2", "fd00::3"]
            .iter()
            .map(|nh| Path::via(a(nh), Some(l.if0)))
            .collect();
        ctl.fwd
            .route_add(0, Prefix::parse(p).unwrap(), paths)
            .unwrap();
    }
    ctl.fwd.publish();
    for f in &mix {
        l.send(if1, f);
    }
    let long = Lab::take(&l.out0);
    assert!(vectors(&l, "ip6-rewrite") > 0, "the long path was taken");
    assert_eq!(short, long);
    assert_eq!(
        l.error(encap::ENCAP4, encap::error::ENCAPSULATED)
            + l.error(encap::ENCAP6, encap::error::ENCAPSULATED),
        2 * mix.len() as u64
    );
    l.no_leaks();
}

/// The shortcut follows the first SID's neighbour and route as the lookup would: no
/// neighbour, the long path (which resolves it); the neighbour back, out by pg0 again; the
/// SID's route moved to pg1, the next packet follows it; the next hop's MAC changed, the
/// next packet carries it; an outer packet over pg0's MTU goes the long way.
#[test]
fn the_encap_shortcut_follows_the_sids_neighbour_and_route() {
    let (mut l, mut ctl) = build();
    let (if0, if1) = (l.if0, l.if1);
    let send = |l: &mut Lab| l.send(if1, &pod4([198, 19, 210, 7], 1000));
    let encapsulated_to =
        |frames: &[Vec<u8>]| dst_macs(frames, |f| f[12..14] == [0x86, 0xdd] && f[14 + 6] == 4);
    ctl.fwd.neighbor_del(if0, a("fd00::2")).unwrap();
    ctl.fwd.publish();
    send(&mut l);
    assert!(
        encapsulated_to(&Lab::take(&l.out0)).is_empty(),
        "no neighbour yet"
    );
    assert_eq!(vectors(&l, "ip6-lookup"), 1, "unresolved: the long path");
    ctl.fwd
        .neighbor_add(if0, a("fd00::2"), PEER0, true)
        .unwrap();
    ctl.fwd.publish();
    send(&mut l);
    assert_eq!(encapsulated_to(&Lab::take(&l.out0)), vec![PEER0]);
    assert_eq!(vectors(&l, "ip6-lookup"), 1, "resolved: the shortcut");
    let host = Prefix::parse("fd00:2::d4/128").unwrap();
    ctl.fwd
        .route_add(0, host, vec![Path::via(a("fd01::2"), Some(if1))])
        .unwrap();
    ctl.fwd.publish();
    send(&mut l);
    assert!(Lab::take(&l.out0).is_empty(), "no longer via pg0");
    let out = Lab::take(&l.out1);
    assert_eq!(encapsulated_to(&out), vec![PEER1]);
    assert_eq!(&out[0][6..12], &MAC1, "pg1's own MAC as the source");
    let moved = [2, 0, 0, 0, 0, 0xb9];
    ctl.fwd
        .neighbor_add(if1, a("fd01::2"), moved, true)
        .unwrap();
    ctl.fwd.publish();
    send(&mut l);
    assert_eq!(encapsulated_to(&Lab::take(&l.out1)), vec![moved]);
    assert_eq!(vectors(&l, "ip6-lookup"), 1, "all through the shortcut");
    ctl.fwd.route_del(0, host).unwrap();
    ctl.fwd.publish();
    // 1480 + 40 = 1520 over pg0's 1500 (etherparse sets DF): answered from the encap node,
    // with no lookup of the outer packet.
    let mut big = Vec::new();
    PacketBuilder::ethernet2(PEER1, MAC1)
        .ipv4([198, 19, 0, 2], [198, 19, 210, 7], 64)
        .udp(1000, 2000)
        .write(&mut big, &[0x33; 1480 - 28])
        .unwrap();
    l.send(if1, &big);
    assert_eq!(vectors(&l, "ip6-lookup"), 1, "too big: told, not looked up");
    assert!(encapsulated_to(&Lab::take(&l.out0)).is_empty());
    assert_eq!(Lab::take(&l.out1).len(), 1, "the frag-needed to the pod");
    l.no_leaks();
}

/// End.DT4's inner packets to the pod (a plain, resolved route), IPv4 with options, a TTL
/// of 1 (the long path answers it) and link padding: what leaves for each.
fn dt4_mix() -> Vec<Vec<u8>> {
    let dt4 = |inner: &[u8]| sr_frame(LOCALSIDS[0], &[LOCALSIDS[0]], 0, 4, inner);
    let mut opts = inner4();
    opts.splice(20..20, [1, 1, 1, 0]);
    opts[0] = 0x46;
    let tl = opts.len() as u16;
    opts[2..4].copy_from_slice(&tl.to_be_bytes());
    fix_ip4_checksum(&mut opts);
    let mut padded = inner4();
    padded.extend_from_slice(&[0xee; 6]);
    let mut v = vec![
        dt4(&inner4()),
        sr_frame(LOCALSIDS[0], &[], 0, 4, &inner4()),
        dt4(&opts),
        dt4(&padded),
    ];
    v.extend((0..4).map(|_| dt4(&inner4())));
    v
}

/// A decap shortcut against the long path: `mix`, sent one frame a vector from pg0, leaves
/// by pg1 with no vector through `{ip}-rewrite` nor through `{ip}-lookup` but the outer
/// packets' own (`outer_lookups`); then the pod's host route `host` becomes two paths to two
/// neighbours with the same MAC (`nhs`, the first the existing one), which the shortcut leaves
/// to the lookup, and the same frames leave byte for byte as before.
fn the_shortcut_writes_what_the_long_path_does(
    mix: &[Vec<u8>],
    ip: &str,
    outer_lookups: u64,
    nhs: [&str; 2],
    host: &str,
) {
    let (mut l, mut ctl) = build();
    let (if0, if1) = (l.if0, l.if1);
    let (lookup, rewrite) = (format!("{ip}-lookup"), format!("{ip}-rewrite"));
    for f in mix {
        l.send(if0, f);
    }
    let short = Lab::take(&l.out1);
    assert_eq!(short.len(), mix.len());
    assert_eq!(
        (vectors(&l, &lookup), vectors(&l, &rewrite)),
        (outer_lookups, 0),
        "the inner packets went from sr-localsid to interface-output"
    );
    ctl.fwd.neighbor_add(if1, a(nhs[1]), PEER1, true).unwrap();
    let paths = nhs.iter().map(|nh| Path::via(a(nh), Some(if1))).collect();
    ctl.fwd
        .route_add(0, Prefix::parse(host).unwrap(), paths)
        .unwrap();
    ctl.fwd.publish();
    for f in mix {
        l.send(if0, f);
    }
    let long = Lab::take(&l.out1);
    assert!(vectors(&l, &rewrite) > 0, "the long path was taken");
    assert_eq!(short, long);
    assert_eq!(
        l.error(localsid::NAME, localsid::error::DECAPSULATED),
        2 * mix.len() as u64
    );
    l.no_leaks();
}

/// End.DT4's inner packet skips ip4-lookup and ip4-rewrite when its route is one plain
/// adjacency.
#[test]
fn the_dt4_shortcut_writes_the_bytes_the_long_path_does() {
    let nhs = ["198.19.0.2", "198.19.0.3"];
    the_shortcut_writes_what_the_long_path_does(&dt4_mix(), "ip4", 0, nhs, "198.19.0.2/32");
}

/// The shortcut follows the inner destination's neighbour and route as ip4-lookup would: no
/// neighbour, the long path (which resolves it); the neighbour back, to the pod again; the
/// route moved to pg0, the next packet follows it; the next hop's MAC changed, the next packet
/// carries it; a TTL of 1 goes the long way and is answered, not forwarded.
#[test]
fn the_dt4_shortcut_follows_the_inner_routes_neighbour_and_route() {
    let (mut l, mut ctl) = build();
    let (if0, if1) = (l.if0, l.if1);
    let send = |l: &mut Lab, inner: &[u8]| {
        l.send(if0, &sr_frame(LOCALSIDS[0], &[LOCALSIDS[0]], 0, 4, inner))
    };
    let ip4_to = |frames: &[Vec<u8>]| {
        dst_macs(frames, |f| {
            f[12..14] == [0x08, 0x00] && f[14 + 16..14 + 20] == [198, 19, 0, 2]
        })
    };
    ctl.fwd.neighbor_del(if1, a("198.19.0.2")).unwrap();
    ctl.fwd.publish();
    send(&mut l, &inner4());
    assert!(ip4_to(&Lab::take(&l.out1)).is_empty(), "no neighbour yet");
    assert_eq!(vectors(&l, "ip4-lookup"), 1, "unresolved: the long path");
    ctl.fwd
        .neighbor_add(if1, a("198.19.0.2"), PEER1, true)
        .unwrap();
    ctl.fwd.publish();
    send(&mut l, &inner4());
    assert_eq!(ip4_to(&Lab::take(&l.out1)), vec![PEER1]);
    assert_eq!(vectors(&l, "ip4-lookup"), 1, "resolved: the shortcut");
    let host = Prefix::parse("198.19.0.2/32").unwrap();
    ctl.fwd
        .route_add(0, host, vec![Path::via(a("198.18.0.2"), Some(if0))])
        .unwrap();
    ctl.fwd.publish();
    send(&mut l, &inner4());
    assert!(Lab::take(&l.out1).is_empty(), "no longer via pg1");
    let out = Lab::take(&l.out0);
    assert_eq!(ip4_to(&out), vec![PEER0]);
    assert_eq!(&out[0][6..12], &MAC0, "pg0's own MAC as the source");
    let moved = [2, 0, 0, 0, 0, 0xb9];
    ctl.fwd
        .neighbor_add(if0, a("198.18.0.2"), moved, true)
        .unwrap();
    ctl.fwd.publish();
    send(&mut l, &inner4());
    assert_eq!(ip4_to(&Lab::take(&l.out0)), vec![moved]);
    assert_eq!(vectors(&l, "ip4-lookup"), 1, "all through the shortcut");
    // The host route back through pg1 (deleting ours leaves the neighbour's /32 gone too).
    ctl.fwd
        .route_add(0, host, vec![Path::via(a("198.19.0.2"), Some(if1))])
        .unwrap();
    ctl.fwd.publish();
    send(&mut l, &inner4());
    assert_eq!(ip4_to(&Lab::take(&l.out1)), vec![PEER1], "back to the pod");
    assert_eq!(vectors(&l, "ip4-lookup"), 1, "still the shortcut");
    let mut ttl1 = inner4();
    ttl1[8] = 1;
    fix_ip4_checksum(&mut ttl1);
    let rewrites = vectors(&l, "ip4-rewrite");
    send(&mut l, &ttl1);
    assert_eq!(
        vectors(&l, "ip4-rewrite"),
        rewrites + 1,
        "TTL 1: ip4-rewrite answers it"
    );
    assert!(ip4_to(&Lab::take(&l.out1)).is_empty(), "not forwarded");
    Lab::take(&l.out0);
    l.no_leaks();
}

/// End.DT6's inner packets to the pod (a plain, resolved route), with and without an SRH,
/// with link padding, and one with a hop-by-hop header (ip6-input's full check, then still
/// the shortcut).
fn dt6_mix() -> Vec<Vec<u8>> {
    let dt6 = |inner: &[u8]| sr_frame(LOCALSIDS[1], &[LOCALSIDS[1]], 0, 41, inner);
    let mut padded = inner6();
    padded.extend_from_slice(&[0xee; 6]);
    let mut hbh = inner6();
    // Hop-by-hop (0) with a PadN option, eight bytes, between the header and UDP.
    hbh.splice(40..40, [17, 0, 1, 4, 0, 0, 0, 0]);
    hbh[6] = 0;
    let plen = (hbh.len() - 40) as u16;
    hbh[4..6].copy_from_slice(&plen.to_be_bytes());
    let mut v = vec![
        dt6(&inner6()),
        sr_frame(LOCALSIDS[1], &[], 0, 41, &inner6()),
        dt6(&padded),
        dt6(&hbh),
    ];
    v.extend((0..4).map(|_| dt6(&inner6())));
    v
}

/// End.DT6's inner packet skips ip6-lookup's second pass and ip6-rewrite when its route is
/// one plain adjacency: the outer packet's lookup is the only one.
#[test]
fn the_dt6_shortcut_writes_the_bytes_the_long_path_does() {
    let mix = dt6_mix();
    let n = mix.len() as u64;
    let nhs = ["fd01::2", "fd01::3"];
    the_shortcut_writes_what_the_long_path_does(&mix, "ip6", n, nhs, "fd01::2/128");
}

/// What the shortcut sends: the inner packet with its hop limit decremented and the next
/// hop's Ethernet header, looked up in the localsid's own table (here a second table that
/// sends the pod's address out of pg0), following a neighbour's new MAC; a hop limit of 1
/// goes the long way and is answered, not forwarded; an inner header that fails ip6-input's
/// check is dropped by name.
#[test]
fn the_dt6_shortcut_forwards_in_the_localsids_table() {
    let (mut l, mut ctl) = build();
    let if0 = l.if0;
    let fib = ctl.fwd.table_add(Af::Ip6, 20, "pod-vrf6").unwrap();
    ctl.fwd
        .route_add(
            20,
            Prefix::parse("fd01::2/128").unwrap(),
            vec![Path::via(a("fd00::2"), Some(if0))],
        )
        .unwrap();
    let vrf_sid = "fd00:1::d66";
    let idx = ctl.sr.localsids.len() as u32;
    ctl.sr
        .localsids
        .push(Some(Localsid::dt(v6(vrf_sid), Behavior::DT6, 20, fib)));
    ctl.tables.get::<srv6::Table>().publish(ctl.sr.clone());
    let p = Prefix::parse(&format!("{vrf_sid}/128")).unwrap();
    ctl.fwd
        .route_add(0, p, vec![Path::special(PathKind::SrLocalsid(idx))])
        .unwrap();
    ctl.fwd.publish();
    let inner_out = |f: &[u8]| {
        let (eth, rest) = Ethernet2Header::from_slice(f).unwrap();
        let (h, payload) = Ipv6Header::from_slice(rest).unwrap();
        assert!(payload.ends_with(b"through srv6"));
        (eth.destination, eth.source, h.hop_limit, h.destination)
    };
    let pod = Ipv6Addr::from(v6("fd01::2")).octets();
    // Table 0: to the pod on pg1.
    l.send(
        if0,
        &sr_frame(LOCALSIDS[1], &[LOCALSIDS[1]], 0, 41, &inner6()),
    );
    let out = Lab::take(&l.out1);
    assert_eq!(out.len(), 1);
    assert_eq!(inner_out(&out[0]), (PEER1, MAC1, 63, pod));
    // The localsid's table: out of pg0.
    l.send(if0, &sr_frame(vrf_sid, &[vrf_sid], 0, 41, &inner6()));
    assert!(Lab::take(&l.out1).is_empty(), "not table 0's route");
    let out = Lab::take(&l.out0);
    assert_eq!(out.len(), 1);
    assert_eq!(inner_out(&out[0]), (PEER0, MAC0, 63, pod));
    let moved = [2, 0, 0, 0, 0, 0xb9];
    ctl.fwd
        .neighbor_add(if0, a("fd00::2"), moved, true)
        .unwrap();
    ctl.fwd.publish();
    l.send(if0, &sr_frame(vrf_sid, &[], 0, 41, &inner6()));
    let out = Lab::take(&l.out0);
    assert_eq!(out.len(), 1);
    assert_eq!(inner_out(&out[0]), (moved, MAC0, 63, pod));
    assert_eq!(
        (vectors(&l, "ip6-lookup"), vectors(&l, "ip6-rewrite")),
        (3, 0),
        "each inner packet through the shortcut"
    );
    let mut hl1 = inner6();
    hl1[7] = 1;
    l.send(if0, &sr_frame(vrf_sid, &[vrf_sid], 0, 41, &hl1));
    assert_eq!(
        vectors(&l, "ip6-rewrite"),
        1,
        "hop limit 1: ip6-rewrite answers it"
    );
    let pod_frames = |f: &[Vec<u8>]| {
        f.iter()
            .filter(|f| f[12..14] == [0x86, 0xdd] && f[14 + 24..14 + 40] == pod)
            .count()
    };
    assert_eq!(pod_frames(&Lab::take(&l.out0)), 0, "not forwarded");
    let mut bad = inner6();
    bad[4..6].copy_from_slice(&200u16.to_be_bytes());
    l.send(if0, &sr_frame(vrf_sid, &[vrf_sid], 0, 41, &bad));
    assert_eq!(l.error(localsid::NAME, localsid::error::INNER_BAD), 1);
    assert_eq!(pod_frames(&Lab::take(&l.out0)), 0);
    Lab::take(&l.out1);
    l.no_leaks();
}

/// One vector of pod packets into two policies and into one whose entry is gone (its route
/// still there, as between the control side's two publishes): each packet gets its own
/// policy's encap or the counted drop, as when sent one by one.
#[test]
fn a_vector_mixing_policies_leaves_as_its_frames_do_one_by_one() {
    let frames = [
        pod4([198, 19, 210, 7], 1000),
        pod4([198, 19, 212, 7], 1000),
        pod4([198, 19, 210, 7], 1001),
        pod4([198, 19, 213, 7], 1000),
        pod4([198, 19, 212, 7], 1001),
        pod4([198, 19, 210, 7], 1002),
    ];
    let run = |one_by_one: bool| {
        let (mut l, mut ctl) = build();
        ctl.sr.policies[2] = None;
        ctl.tables.get::<srv6::Table>().publish(ctl.sr.clone());
        let if1 = l.if1;
        l.send_all(if1, &frames, one_by_one);
        let out = Lab::take(&l.out0);
        let counts = [encap::error::ENCAPSULATED, encap::error::NO_POLICY]
            .map(|c| l.error(encap::ENCAP4, c));
        l.no_leaks();
        (out, counts)
    };
    let (alone, together) = (run(true), run(false));
    assert_eq!(alone.0.len(), 4, "policies 0 and 3 out by pg0");
    assert_eq!(alone.1, [4, 2]);
    assert_eq!(alone, together);
}

/// A `len`-byte IPv4/UDP pod packet into the one-SID policy (198.19.210.0/24), DF as `df`.
fn pod4_len(len: usize, df: bool) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(PEER1, MAC1)
        .ipv4([198, 19, 0, 2], [198, 19, 210, 7], 64)
        .udp(1000, 2000)
        .write(&mut v, &vec![0x33; len - 28])
        .unwrap();
    v[14 + 6] = if df { 0x40 } else { 0 };
    fix_ip4_checksum(&mut v[14..]);
    v
}

/// Nothing left by the uplink, and the pod was sent one frag needed with `mtu`.
fn assert_frag_needed_to_the_pod(l: &Lab, mtu: u16) {
    assert!(Lab::take(&l.out0).is_empty(), "nothing over the uplink");
    let back = Lab::take(&l.out1);
    assert_eq!(back.len(), 1, "the frag needed to the pod");
    let (ip, icmp) = Ipv4Header::from_slice(&back[0][14..]).unwrap();
    assert_eq!(ip.destination, [198, 19, 0, 2]);
    assert_eq!((icmp[0], icmp[1]), (3, 4), "frag needed");
    assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), mtu);
}

/// A packet whose outer packet would exceed the uplink's MTU is answered with the MTU that
/// fits, before it is encapsulated (IPv6: packet too big; IPv4 with DF: frag needed), as the
/// IPIP and VXLAN encap nodes answer; one that fits exactly leaves; IPv4 without DF takes the
/// long path, where the outer rewrite decides (rvpp does not fragment).
#[test]
fn an_outer_packet_over_the_uplink_tells_the_source_the_mtu() {
    let mut l = lab();
    let if1 = l.if1;
    let over = |l: &Lab| l.error(encap::ENCAP6, encap::error::OVER_MTU);
    let over4 = |l: &Lab| l.error(encap::ENCAP4, encap::error::OVER_MTU);
    // Into fd02::/64: two SIDs, so 40 + 8 + 32 = 80 bytes of outer header.
    let pod6_len = |len: usize| {
        let d: Ipv6Addr = "fd02::9".parse().unwrap();
        let s: Ipv6Addr = "fd01::2".parse().unwrap();
        let mut v = Vec::new();
        PacketBuilder::ethernet2(PEER1, MAC1)
            .ipv6(s.octets(), d.octets(), 64)
            .udp(1000, 2000)
            .write(&mut v, &vec![0x22; len - 48])
            .unwrap();
        v
    };
    l.send(if1, &pod6_len(1421));
    assert!(Lab::take(&l.out0).is_empty(), "nothing over the uplink");
    let back = Lab::take(&l.out1);
    assert_eq!(back.len(), 1);
    let (ip, icmp) = Ipv6Header::from_slice(&back[0][14..]).unwrap();
    assert_eq!(
        ip.destination,
        "fd01::2".parse::<Ipv6Addr>().unwrap().octets()
    );
    assert_eq!(icmp[0], 2, "packet too big");
    assert_eq!(u32::from_be_bytes(icmp[4..8].try_into().unwrap()), 1420);
    assert_eq!(over(&l), 1);
    l.send(if1, &pod6_len(1420));
    let out = Lab::take(&l.out0);
    assert_eq!(out.len(), 1, "at the MTU it was told, it leaves");
    assert_eq!(out[0].len(), 14 + 1500);
    assert_eq!(over(&l), 1);
    // Into 198.19.210.0/24: one SID, 40 bytes.
    l.send(if1, &pod4_len(1461, true));
    assert_frag_needed_to_the_pod(&l, 1460);
    assert_eq!(over4(&l), 1);
    l.send(if1, &pod4_len(1460, true));
    assert_eq!(Lab::take(&l.out0).len(), 1);
    l.send(if1, &pod4_len(1461, false));
    assert!(Lab::take(&l.out0).is_empty(), "without DF: not sent either");
    assert!(Lab::take(&l.out1).is_empty(), "and not answered from here");
    assert_eq!(over4(&l), 1);
    l.no_leaks();
}

/// The same answer when the first SID's route is no single plain uplink (`make_it`): the
/// outer packet is held to the smallest of the route's paths' MTUs before it is written, and
/// one that fits goes the long way (ip6-lookup, ip6-rewrite) out of pg0. Before, it went to
/// ip6-rewrite, whose packet too big went to our own encap source, not to the pod.
fn an_outer_packet_over_a_non_plain_sid_route_tells_the_source(make_it: fn(&Lab, &mut Control)) {
    let (mut l, mut ctl) = build();
    let if1 = l.if1;
    make_it(&l, &mut ctl);
    ctl.fwd.publish();
    // One SID, 40 bytes of outer header; pg0's MTU is 1500.
    l.send(if1, &pod4_len(1461, true));
    assert_frag_needed_to_the_pod(&l, 1460);
    assert_eq!(l.error(encap::ENCAP4, encap::error::OVER_MTU), 1);
    assert_eq!(
        vectors(&l, "ip6-lookup"),
        0,
        "answered before the outer lookup"
    );
    l.send(if1, &pod4_len(1460, true));
    let out = Lab::take(&l.out0);
    assert_eq!(out.len(), 1, "at the MTU it was told, it leaves");
    assert_eq!(out[0].len(), 14 + 1500);
    assert!(vectors(&l, "ip6-rewrite") > 0, "by the long path");
    l.no_leaks();
}

#[test]
fn an_outer_packet_over_an_ecmp_sid_route_tells_the_source_the_mtu() {
    an_outer_packet_over_a_non_plain_sid_route_tells_the_source(|l, ctl| {
        ctl.fwd
            .neighbor_add(l.if0, a("fd00::3"), PEER0, true)
            .unwrap();
        let paths = ["fd00::2", "fd00::3"]
            .iter()
            .map(|nh| Path::via(a(nh), Some(l.if0)))
            .collect();
        ctl.fwd
            .route_add(0, Prefix::parse("fd00:2::/32").unwrap(), paths)
            .unwrap();
    });
}

/// An output feature on the uplink (ip6-ttl-fixup, with no fixups: it passes the packet on).
#[test]
fn an_outer_packet_over_a_featured_uplink_tells_the_source_the_mtu() {
    an_outer_packet_over_a_non_plain_sid_route_tells_the_source(|l, ctl| {
        ctl.fwd
            .feature_enable(l.if0, "ip6-output", "ip6-ttl-fixup", true)
            .unwrap();
    });
}

/// An IPv4 header's checksum, recomputed after a test changed the header.
fn fix_ip4_checksum(ip: &mut [u8]) {
    let hl = 4 * (ip[0] & 0xf) as usize;
    ip[10..12].fill(0);
    let mut sum: u32 = ip[..hl]
        .chunks(2)
        .map(|w| u16::from_be_bytes([w[0], w[1]]) as u32)
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!sum as u16).to_be_bytes());
}

/// End.DT4 / End.DT6 send the inner packet straight to the lookup, so the inner header gets
/// ip4-/ip6-input's checks there: a bad checksum, a length past the packet or a header too
/// short is a counted drop, a TTL / hop limit of 0 is answered (time exceeded), options are
/// forwarded and link padding after the inner packet is trimmed.
#[test]
fn end_dt_checks_the_inner_header_as_input_would() {
    use localsid::error as e;
    let mut l = lab();
    let if0 = l.if0;
    let dt4 = |inner: &[u8]| sr_frame(LOCALSIDS[0], &[LOCALSIDS[0]], 0, 4, inner);
    let mut bad_sum = inner4();
    bad_sum[10] ^= 0x55;
    l.send(if0, &dt4(&bad_sum));
    let mut too_long = inner4();
    let tl = too_long.len() as u16 + 8;
    too_long[2..4].copy_from_slice(&tl.to_be_bytes());
    fix_ip4_checksum(&mut too_long);
    l.send(if0, &dt4(&too_long));
    l.send(if0, &dt4(&inner4()[..12]));
    assert_eq!(l.error(localsid::NAME, e::INNER_BAD), 3);
    let mut ttl0 = inner4();
    ttl0[8] = 0;
    fix_ip4_checksum(&mut ttl0);
    l.send(if0, &dt4(&ttl0));
    assert_eq!(l.error(localsid::NAME, e::INNER_EXPIRED), 1);
    assert!(Lab::take(&l.out1).is_empty(), "none reached the pod");
    // Options (three NOPs and an end of list): forwarded as ip4-input forwards them.
    let mut opts = inner4();
    opts.splice(20..20, [1, 1, 1, 0]);
    opts[0] = 0x46;
    let tl = opts.len() as u16;
    opts[2..4].copy_from_slice(&tl.to_be_bytes());
    fix_ip4_checksum(&mut opts);
    l.send(if0, &dt4(&opts));
    assert_eq!(to_pod4(&l).time_to_live, 63);
    // Padding inside the outer payload after the inner packet does not reach the pod.
    let mut padded = inner4();
    padded.extend_from_slice(&[0xee; 6]);
    l.send(if0, &dt4(&padded));
    let out = Lab::take(&l.out1);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].len(), 14 + inner4().len(), "padding trimmed");
    // End.DT6: hop limit 0 answered, a payload length past the packet dropped.
    let dt6 = |inner: &[u8]| sr_frame(LOCALSIDS[1], &[LOCALSIDS[1]], 0, 41, inner);
    let mut hl0 = inner6();
    hl0[7] = 0;
    l.send(if0, &dt6(&hl0));
    assert_eq!(l.error(localsid::NAME, e::INNER_EXPIRED), 2);
    let mut long6 = inner6();
    let pl = u16::from_be_bytes([long6[4], long6[5]]) + 8;
    long6[4..6].copy_from_slice(&pl.to_be_bytes());
    l.send(if0, &dt6(&long6));
    assert_eq!(l.error(localsid::NAME, e::INNER_BAD), 4);
    assert!(Lab::take(&l.out1).is_empty(), "none reached the pod");
    assert_eq!(l.error(localsid::NAME, e::DECAPSULATED), 2);
    l.no_leaks();
}

/// Random SRHs (Segments Left, Last Entry, header length, next header, truncated anywhere,
/// an inner checksum broken now and then) to our End.DT4, which takes its common packets the
/// short way: each gets the counter RFC 8754's checks (in order), then the behaviour's, name.
#[test]
fn random_srhs_to_end_dt4_each_get_the_outcome_rfc_8754_gives() {
    use localsid::error as e;
    let mut l = lab();
    let if0 = l.if0;
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let seg = v6(LOCALSIDS[0]).to_be_bytes();
    for _ in 0..3000 {
        let (hel, sl, le) = (2 * rnd(5) as u8, rnd(4) as u8, rnd(4) as u8);
        let nh = if rnd(4) == 0 { 41 } else { 4 };
        let mut srh = vec![nh, hel, 4, sl, le, 0, 0, 0];
        for _ in 0..hel / 2 {
            srh.extend_from_slice(&seg);
        }
        let full = srh.len();
        let keep = if rnd(4) == 0 {
            rnd(full as u64 + 1) as usize
        } else {
            full
        };
        srh.truncate(keep);
        let broken = rnd(4) == 0;
        let mut inner = if keep == full { inner4() } else { Vec::new() };
        if broken && !inner.is_empty() {
            inner[10] ^= 0x55;
        }
        let mut f = sr_frame(LOCALSIDS[0], &[], 0, 43, &[]);
        f.extend_from_slice(&srh);
        f.extend_from_slice(&inner);
        let plen = (srh.len() + inner.len()) as u16;
        f[14 + 4..14 + 6].copy_from_slice(&plen.to_be_bytes());
        let avail = srh.len() + inner.len();
        let want = if avail < 8 {
            e::TRUNCATED
        } else if hel == 0 {
            e::NO_SEGMENTS
        } else if avail < 8 + 8 * hel as usize {
            e::TRUNCATED
        } else if (le as usize + 1) * 2 > hel as usize || sl > le + 1 {
            e::BAD_SRH
        } else if sl != 0 {
            e::SEGMENTS_LEFT
        } else if nh != 4 || inner.is_empty() {
            e::WRONG_PAYLOAD
        } else if broken {
            e::INNER_BAD
        } else {
            e::DECAPSULATED
        };
        let before = l.error(localsid::NAME, want);
        l.send(if0, &f);
        assert_eq!(
            l.error(localsid::NAME, want),
            before + 1,
            "hel {hel} sl {sl} le {le} nh {nh} kept {keep} of {full} broken {broken}: counter {want}"
        );
        let to_pod = Lab::take(&l.out1).len();
        assert_eq!(to_pod, (want == e::DECAPSULATED) as usize);
        Lab::take(&l.out0);
    }
    l.no_leaks();
}

/// ip6-lookup and sr-localsid remember the last SR leaf and the last localsid of a vector:
/// frames to different SIDs (DT4, DT6, DX4, End), a bad inner header and plain IPv6 traffic,
/// interleaved in one vector, leave exactly as each does alone.
#[test]
fn a_vector_mixing_sids_leaves_as_its_frames_do_one_by_one() {
    let mut bad = inner4();
    bad[10] ^= 0x55;
    let frames = [
        sr_frame(LOCALSIDS[0], &[LOCALSIDS[0]], 0, 4, &inner4()),
        sr_frame(LOCALSIDS[1], &[LOCALSIDS[1]], 0, 41, &inner6()),
        sr_frame(LOCALSIDS[0], &[], 0, 4, &inner4()),
        sr_frame(LOCALSIDS[5], &[], 0, 4, &inner4()),
        sr_frame(LOCALSIDS[0], &[LOCALSIDS[0]], 0, 4, &bad),
        sr_frame("fd00:3::9", &[], 0, 41, &inner6()),
        sr_frame(LOCALSIDS[2], &[LOCALSIDS[2], "fd00:3::1"], 1, 41, &inner6()),
        sr_frame(LOCALSIDS[0], &[LOCALSIDS[0]], 0, 4, &inner4()),
        sr_frame(LOCALSIDS[1], &[], 0, 41, &inner6()),
    ];
    let run = |one_by_one: bool| {
        let mut l = lab();
        let if0 = l.if0;
        l.send_all(if0, &frames, one_by_one);
        let (mut out0, mut out1) = (Lab::take(&l.out0), Lab::take(&l.out1));
        out0.sort();
        out1.sort();
        use localsid::error as e;
        let counts =
            [e::DECAPSULATED, e::PROCESSED, e::INNER_BAD].map(|c| l.error(localsid::NAME, c));
        l.no_leaks();
        (out0, out1, counts)
    };
    let (alone, together) = (run(true), run(false));
    assert_eq!(alone.1.len(), 6, "DT4 x3, DT6 x2, DX4 to the pod");
    assert_eq!(alone.0.len(), 2, "End and plain IPv6 out by pg0");
    assert_eq!(alone.2, [6, 7, 1]);
    assert_eq!(alone, together);
}
