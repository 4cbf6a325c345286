//! cnat against bad input, through the whole graph (issue 13): truncated transport headers,
//! ICMP errors quoting garbage, fragments out of order or without their first, a VIP with no
//! paths or with paths of the other family, a full session table, 1M translations, and a
//! randomized run of mutated frames. Each case is a named drop counter or an unchanged pass;
//! nothing panics, and sessions, fragments, SNAT ports and buffers all return to their
//! baseline after expiry or a purge.

mod cnat_lab;
mod common;
use cnat_lab::*;
use common::*;
use etherparse::{IpNumber, Ipv4Header, PacketBuilder};
use proptest::prelude::*;
use rvpp_dataplane::cnat::node::{in_err, out_err};
use rvpp_dataplane::cnat::session::sflags;
use rvpp_dataplane::cnat::translation::{tflags, Endpoint, PathEp, Translation};
use rvpp_dataplane::cnat::Cnat;
use rvpp_dataplane::nodes::cnat::{CnatInput, CnatOutput};
use std::time::Instant;

/// An Ethernet + IPv4 frame towards rvpp on pg0 (or from a backend on pg1) carrying `l4` as
/// protocol `proto`, with a valid IP header checksum and total length.
fn ip4(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8], frag: (u16, u16, bool)) -> Vec<u8> {
    let (from, to) = if src == CLIENT {
        (PEER0, MAC0)
    } else {
        (PEER1, MAC1)
    };
    let mut h = Ipv4Header::new(l4.len() as u16, 64, IpNumber(proto), src, dst).unwrap();
    (h.identification, h.dont_fragment) = (frag.0, false);
    h.fragment_offset = frag.1.try_into().unwrap();
    h.more_fragments = frag.2;
    h.header_checksum = h.calc_header_checksum();
    let mut v = Vec::new();
    etherparse::Ethernet2Header {
        source: from,
        destination: to,
        ether_type: etherparse::EtherType::IPV4,
    }
    .write(&mut v)
    .unwrap();
    h.write(&mut v).unwrap();
    v.extend_from_slice(l4);
    v
}

const WHOLE: (u16, u16, bool) = (0, 0, false);

/// The UDP service the fragment cases use (VIP:53 -> B1:5353) beside the TCP one.
fn udp_service(l: &Lab) -> u32 {
    l.cnat.translation_update(Translation {
        vip: ep4(VIP, 53),
        proto: 17,
        paths: vec![PathEp {
            dst: ep4(B1, 5353),
            ..Default::default()
        }],
        ..Default::default()
    })
}

impl Lab {
    /// What left pg0 and pg1 since the last call.
    fn outputs(&self) -> (usize, usize) {
        (Lab::take(&self.out0).len(), Lab::take(&self.out1).len())
    }
    /// No buffer held (both workers' caches flushed back to the pool).
    fn no_buffers_held(&mut self) {
        self.rt.buffers().flush();
        self.rt2.buffers().flush();
        assert_eq!(self.pool.in_use(), 0, "buffers held");
    }
    /// No buffer held, everything expired, and no buffer leaked when the workers go.
    fn back_to_baseline(mut self) {
        self.no_buffers_held();
        expire_all(&self.cnat);
        self.no_leaks();
    }
}

/// Everything a run creates goes once its timeouts pass: sessions, fragments' rewrites,
/// affinity, SNAT ports.
fn expire_all(c: &Cnat) {
    c.scan(c.now() + 100_000);
    assert_eq!(c.sessions.len(), 0, "sessions left after expiry");
    assert_eq!(c.fragments.len(), 0, "fragment rewrites left after expiry");
    assert_eq!(c.affinity.len(), 0, "affinity left after expiry");
    for (ip6, proto) in [(false, 6), (false, 17), (false, 1), (true, 17), (true, 58)] {
        assert_eq!(c.ports.in_use(ip6, 0, proto), 0, "snat ports left");
    }
}

#[test]
fn truncated_transport_headers_are_counted_drops() {
    let mut l = lab();
    service(&l, &[B1]);
    udp_service(&l);
    // TCP cut at 10 bytes, UDP at 4, ICMP at 2: the IP header says so (ip4-input accepts them).
    for (proto, n) in [(6u8, 10usize), (17, 4), (1, 2), (6, 0)] {
        let l4 = vec![0x11; n];
        l.send(l.if0, &ip4(CLIENT, VIP, proto, &l4, WHOLE));
    }
    // The same to an address that is no VIP: a transport header cnat cannot read is dropped
    // wherever it goes (nothing after cnat could use it either).
    l.send(l.if0, &ip4(CLIENT, B2, 6, &[0; 19], WHOLE));
    assert_eq!(l.outputs(), (0, 0), "nothing forwarded");
    assert_eq!(l.counter(CnatInput::IP4, in_err::TRUNCATED), 5);
    // IPv6: a TCP header of 12 bytes, and a fragment header cut short.
    let mut v6 = Vec::new();
    PacketBuilder::ethernet2(PEER0, MAC0)
        .ipv6(CLIENT6, VIP6, 64)
        .udp(1, 53)
        .write(&mut v6, b"")
        .unwrap();
    v6.truncate(14 + 40);
    let mut tcp6 = v6.clone();
    tcp6[14 + 6] = 6;
    tcp6[14 + 5] = 12;
    tcp6.extend_from_slice(&[0; 12]);
    l.send(l.if0, &tcp6);
    let mut fh6 = v6.clone();
    fh6[14 + 6] = 44;
    fh6[14 + 5] = 4;
    fh6.extend_from_slice(&[17, 0, 0, 1]);
    l.send(l.if0, &fh6);
    assert_eq!(l.outputs(), (0, 0));
    assert_eq!(l.counter(CnatInput::IP6, in_err::TRUNCATED), 2);
    // The output side too: a truncated UDP header a pod sends out under SNAT.
    k8s_snat(&l, &[]);
    l.send(l.if0, &ip4(CLIENT, B2, 17, &[1, 2, 3], WHOLE));
    assert_eq!(l.outputs(), (0, 0));
    let trunc = l.counter(CnatInput::IP4, in_err::TRUNCATED)
        + l.counter(CnatOutput::IP4, out_err::TRUNCATED);
    assert_eq!(trunc, 6);
    assert!(l.cnat.sessions.is_empty());
    l.back_to_baseline();
}

/// An ICMP destination unreachable from B1 to the client quoting `quoted`.
fn icmp_error(quoted: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(PEER1, MAC1)
        .ipv4(B1, CLIENT, 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Port,
        ))
        .write(&mut v, quoted)
        .unwrap();
    v
}

#[test]
fn icmp_errors_quoting_garbage_pass_unchanged() {
    let mut l = lab();
    service(&l, &[B1]);
    // A live session, so that a well-formed quote would be translated.
    l.send(l.if0, &tcp4(CLIENT, VIP, 40000, 80, PEER0, MAC0));
    let sent = Lab::one(&l.out1);
    let q = sent[14..].to_vec();
    let mut garbage = Vec::new();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..40 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        garbage.push(x as u8);
    }
    let mut v6_in_v4 = q.clone();
    v6_in_v4[0] = 0x65;
    let mut ihl_4 = q.clone();
    ihl_4[0] = 0x44;
    let mut ihl_15 = q[..24].to_vec();
    ihl_15[0] = 0x4f;
    let mut gre = q.clone();
    gre[9] = 47;
    let quotes: [(&str, &[u8]); 8] = [
        ("nothing", &[]),
        ("random bytes", &garbage),
        ("half an IP header", &q[..12]),
        ("an IP header without ports", &q[..20]),
        ("an IP header and 3 bytes", &q[..23]),
        ("version 6 in an ICMPv4 error", &v6_in_v4),
        ("header length 16", &ihl_4),
        ("header length 60 of 24 bytes", &ihl_15),
    ];
    for (what, quote) in quotes {
        let e = icmp_error(quote);
        l.send(l.if1, &e);
        let got = Lab::one(&l.out0);
        assert_eq!(&got[14 + 12..], &e[14 + 12..], "{what}: passes unchanged");
    }
    // Another protocol quoted: no ports, no session of its kind, unchanged.
    let e = icmp_error(&gre);
    l.send(l.if1, &e);
    assert_eq!(read4(&Lab::one(&l.out0)).0, B1, "GRE quoted: unchanged");
    assert_eq!(l.counter(CnatInput::IP4, in_err::ICMP_ERROR_TRANSLATED), 0);
    // The shortest quote RFC 792 allows (IP header + 8 bytes) of the live flow: translated.
    l.send(l.if1, &icmp_error(&q[..28]));
    let got = Lab::one(&l.out0);
    assert_eq!(read4(&got).0, VIP, "translated back, ICMP checksum valid");
    assert_eq!(l.counter(CnatInput::IP4, in_err::ICMP_ERROR_TRANSLATED), 1);
    // An ICMP error whose own header is cut (4 bytes): a truncated transport header.
    l.send(l.if1, &ip4(B1, CLIENT, 1, &[3, 3, 0, 0], WHOLE));
    assert_eq!(l.outputs(), (0, 0));
    assert_eq!(l.counter(CnatInput::IP4, in_err::TRUNCATED), 1);
    // ICMPv6 quoting garbage passes too.
    let mut e6 = Vec::new();
    PacketBuilder::ethernet2(PEER1, MAC1)
        .ipv6(B16, CLIENT6, 64)
        .icmpv6(etherparse::Icmpv6Type::DestinationUnreachable(
            etherparse::icmpv6::DestUnreachableCode::Port,
        ))
        .write(&mut e6, &garbage)
        .unwrap();
    l.send(l.if1, &e6);
    assert_eq!(&Lab::one(&l.out0)[14 + 8..], &e6[14 + 8..]);
    assert_eq!(l.cnat.sessions.len(), 2, "only the live flow's entries");
    l.back_to_baseline();
}

#[test]
fn fragments_out_of_order_without_first_or_overlapping() {
    let mut l = lab();
    udp_service(&l);
    let mut whole = Vec::new();
    PacketBuilder::ipv4(CLIENT, VIP, 64)
        .udp(1111, 53)
        .write(&mut whole, &[0x33; 100])
        .unwrap();
    let dg = whole[20..].to_vec(); // 108 bytes: 8 UDP + 100 payload
    let first = |id| ip4(CLIENT, VIP, 17, &dg[..48], (id, 0, true));
    let middle = |id| ip4(CLIENT, VIP, 17, &dg[48..96], (id, 6, true));
    let last = |id| ip4(CLIENT, VIP, 17, &dg[96..], (id, 12, false));
    let dst = |f: &[u8]| -> [u8; 4] { f[14 + 16..14 + 20].try_into().unwrap() };

    // A middle and a last fragment whose first never came: forwarded unchanged, counted.
    l.send(l.if0, &middle(1));
    l.send(l.if0, &last(1));
    let out = Lab::take(&l.out1);
    assert_eq!(out.iter().map(|f| dst(f)).collect::<Vec<_>>(), [VIP, VIP]);
    assert_eq!(l.counter(CnatInput::IP4, in_err::FRAGMENT), 2);
    assert!(l.cnat.sessions.is_empty() && l.cnat.fragments.is_empty());

    // Wrong order: last, first, middle. The last went before its first: untranslated.
    l.send(l.if0, &last(2));
    l.send(l.if0, &first(2));
    l.send(l.if0, &middle(2));
    let out = Lab::take(&l.out1);
    assert_eq!(
        out.iter().map(|f| dst(f)).collect::<Vec<_>>(),
        [VIP, B1, B1],
        "only the fragments after the first follow it"
    );
    assert_eq!(l.counter(CnatInput::IP4, in_err::FRAGMENT), 3);
    assert_eq!(l.counter(CnatInput::IP4, in_err::FRAGMENT_FOLLOWED), 1);
    assert_eq!(l.cnat.fragments.len(), 1);

    // Overlapping: another fragment at offset 16 and the first again (a duplicate).
    l.send(l.if0, &ip4(CLIENT, VIP, 17, &dg[16..64], (2, 2, true)));
    l.send(l.if0, &first(2));
    let out = Lab::take(&l.out1);
    assert_eq!(out.iter().map(|f| dst(f)).collect::<Vec<_>>(), [B1, B1]);
    assert_eq!(l.cnat.fragments.len(), 1, "one rewrite per datagram");

    // A first fragment too short for the UDP header (tiny-fragment attack): dropped.
    l.send(l.if0, &ip4(CLIENT, VIP, 17, &dg[..4], (3, 0, true)));
    assert_eq!(l.outputs(), (0, 0));
    assert_eq!(l.counter(CnatInput::IP4, in_err::TRUNCATED), 1);

    // An IPv6 later fragment without its first: counted, forwarded as is.
    let mut f6 = Vec::new();
    PacketBuilder::ethernet2(PEER0, MAC0)
        .ipv6(CLIENT6, VIP6, 64)
        .udp(1, 53)
        .write(&mut f6, b"")
        .unwrap();
    f6.truncate(14 + 40);
    f6[14 + 6] = 44;
    f6[14 + 5] = 8 + 16;
    f6.extend_from_slice(&[17, 0, 0, 6 << 3, 0, 0, 0, 9]);
    f6.extend_from_slice(&[0x44; 16]);
    l.send(l.if0, &f6);
    assert_eq!(Lab::take(&l.out1).len(), 1);
    assert_eq!(l.counter(CnatInput::IP6, in_err::FRAGMENT), 1);

    // The session expires with its timeout, the fragments' rewrites after 5 s.
    l.no_buffers_held();
    let now = l.cnat.now();
    l.cnat.scan(now + 6);
    assert!(
        l.cnat.fragments.is_empty(),
        "fragment rewrites expire first"
    );
    expire_all(&l.cnat);
    l.no_leaks();
}

/// Bypassing the API's checks (the CLI and the API refuse both): a VIP with no paths answers
/// port unreachable, a path of the other family is counted and the packet follows the FIB.
#[test]
fn zero_paths_and_paths_of_the_other_family() {
    let mut l = lab();
    let b6 = Endpoint {
        addr: u128::from_be_bytes(B16),
        port: 8080,
        ip6: true,
    };
    l.cnat.translation_update(Translation {
        vip: ep4(VIP, 80),
        proto: 6,
        flags: tflags::ALLOC_PORT | tflags::NO_CLIENT | tflags::AFFINITY,
        paths: vec![PathEp {
            dst: b6,
            ..Default::default()
        }],
        ..Default::default()
    });
    l.send(l.if0, &tcp4(CLIENT, VIP, 40000, 80, PEER0, MAC0));
    assert_eq!(read4(&Lab::one(&l.out1)), (CLIENT, VIP, 40000, 80));
    assert_eq!(l.counter(CnatInput::IP4, in_err::PATH_FAMILY), 1);
    assert!(
        l.cnat.sessions.is_empty(),
        "no session for an unusable path"
    );
    // Zero paths: UDP this time.
    udp_service(&l);
    l.cnat.translation_update(Translation {
        vip: ep4(VIP, 53),
        proto: 17,
        ..Default::default()
    });
    l.send(
        l.if0,
        &ip4(CLIENT, VIP, 17, &[0, 1, 0, 53, 0, 8, 0, 0], WHOLE),
    );
    let r = Lab::one(&l.out0);
    assert_eq!((r[14 + 20], r[14 + 21]), (3, 3), "port unreachable");
    assert_eq!(l.counter(CnatInput::IP4, in_err::NO_BACKENDS), 1);
    assert!(l.cnat.sessions.is_empty());
    l.back_to_baseline();
}

/// The table full of DNAT and SNAT flows: new flows are counted drops on both arcs, the
/// ports of the flows that failed are returned, and expiry empties it.
#[test]
fn full_table_on_both_arcs_then_expiry_returns_to_baseline() {
    let mut l = lab();
    k8s_snat(&l, &[]);
    service(&l, &[B1]);
    let limit = l.cnat.sessions.limit();
    let (mut sent, mut p) = (0, 10000u16);
    // DNAT + SNAT: four entries a flow, until the table refuses.
    while l.cnat.sessions.len() + 4 <= limit && sent < limit {
        l.send(l.if0, &tcp4(CLIENT, VIP, p, 80, PEER0, MAC0));
        p += 1;
        sent += 1;
    }
    let before = l.cnat.sessions.len();
    for _ in 0..8 {
        l.send(l.if0, &tcp4(CLIENT, VIP, p, 80, PEER0, MAC0));
        l.send(l.if0, &tcp4(CLIENT, B2, p, 443, PEER0, MAC0));
        p += 1;
    }
    let drops = [in_err::SESSIONS_FULL, in_err::NO_SLOT]
        .iter()
        .map(|&e| l.counter(CnatInput::IP4, e))
        .chain(
            [out_err::SESSIONS_FULL, out_err::NO_SLOT]
                .iter()
                .map(|&e| l.counter(CnatOutput::IP4, e)),
        )
        .sum::<u64>();
    let left = Lab::take(&l.out1).len() as u64;
    assert_eq!(
        left + drops,
        sent as u64 + 16,
        "every packet forwarded or counted"
    );
    assert!(drops >= 8, "a full table drops new flows ({drops} drops)");
    assert!(l.cnat.sessions.len() <= limit && l.cnat.sessions.len() >= before);
    // Ports of failed SNAT attempts went back: exactly the entries that own one hold one.
    let mut owners = 0;
    l.cnat.sessions.for_each(|_, _, s| {
        owners += (s.flags & sflags::OWNS_PORT != 0) as usize;
    });
    assert!(owners > 0);
    assert_eq!(l.cnat.ports.in_use(false, 0, 6), owners);
    l.back_to_baseline();
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// 1M translations (128k in a debug build, which is ~20x slower per edit): programmed and
/// deleted in linear time (each edit copies one leaf of the table, not the table), the
/// lookup still right at that size, memory per translation bounded, and nothing left after.
#[test]
fn a_million_translations_program_and_delete_in_linear_time() {
    let mut l = lab();
    let n: u32 = if cfg!(debug_assertions) {
        1 << 17
    } else {
        1 << 20
    };
    // Unique VIPs in 198.19.128.0/17 (routed to pg1), 256 ports each.
    let vip = |i: u32| {
        ep4(
            [198, 19, 128 | (i >> 16) as u8, (i >> 8) as u8],
            1 + (i & 0xff) as u16,
        )
    };
    let rss0 = rss_kib();
    let t0 = Instant::now();
    let mut ids = Vec::with_capacity(n as usize);
    for i in 0..n {
        ids.push(l.cnat.translation_update(Translation {
            vip: vip(i),
            proto: 6,
            flags: tflags::ALLOC_PORT | tflags::NO_CLIENT,
            paths: vec![PathEp {
                dst: ep4(B1, 8080),
                ..Default::default()
            }],
            ..Default::default()
        }));
    }
    let programmed = t0.elapsed();
    let grew = rss_kib().saturating_sub(rss0);
    assert_eq!(l.cnat.translations.load().len(), n as usize);
    // The last one added is reachable through the graph.
    let v = vip(n - 1);
    let va = (v.addr as u32).to_be_bytes();
    l.send(l.if0, &tcp4(CLIENT, va, 40000, v.port, PEER0, MAC0));
    assert_eq!(read4(&Lab::one(&l.out1)), (CLIENT, B1, 40000, 8080));
    let t1 = Instant::now();
    for id in ids {
        assert!(l.cnat.translation_del(id));
    }
    let deleted = t1.elapsed();
    eprintln!(
        "{n} translations: added in {programmed:?}, deleted in {deleted:?}, {} B each",
        grew * 1024 / n as u64
    );
    assert!(
        grew * 1024 / (n as u64) < 2048,
        "{grew} KiB for {n} translations"
    );
    assert!(l.cnat.translations.load().is_empty());
    assert!(
        l.cnat.sessions.is_empty(),
        "the delete took the flow's sessions"
    );
    // A sanity bound, not a performance figure: a quadratic table (a whole copy per edit)
    // takes hours at this size, a linear one seconds.
    assert!(programmed.as_secs() < 300 && deleted.as_secs() < 300);
    l.back_to_baseline();
}

/// Valid frames of every kind cnat reads, the seeds of the mutations.
fn seeds() -> Vec<Vec<u8>> {
    let mut v = vec![
        tcp4(CLIENT, VIP, 40000, 80, PEER0, MAC0),
        tcp4(B1, CLIENT, 8080, 40000, PEER1, MAC1),
        tcp4(CLIENT, B2, 40001, 443, PEER0, MAC0),
        ip4(
            CLIENT,
            VIP,
            17,
            &[4, 87, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4],
            WHOLE,
        ),
        ip4(
            CLIENT,
            VIP,
            17,
            &[4, 87, 0, 53, 0, 40, 0, 0, 1, 2, 3, 4],
            (7, 0, true),
        ),
        ip4(CLIENT, VIP, 17, &[9; 24], (7, 2, false)),
    ];
    let mut ping = Vec::new();
    PacketBuilder::ethernet2(PEER0, MAC0)
        .ipv4(CLIENT, B2, 64)
        .icmpv4_echo_request(7, 1)
        .write(&mut ping, b"ping")
        .unwrap();
    v.push(ping);
    let q = tcp4(CLIENT, B1, 40000, 8080, PEER0, MAC0);
    v.push(icmp_error(&q[14..14 + 28]));
    let mut u6 = Vec::new();
    PacketBuilder::ethernet2(PEER0, MAC0)
        .ipv6(CLIENT6, VIP6, 64)
        .udp(1111, 53)
        .write(&mut u6, b"query")
        .unwrap();
    v.push(u6);
    let mut e6 = Vec::new();
    PacketBuilder::ethernet2(PEER1, MAC1)
        .ipv6(B16, CLIENT6, 64)
        .icmpv6(etherparse::Icmpv6Type::DestinationUnreachable(
            etherparse::icmpv6::DestUnreachableCode::Port,
        ))
        .write(&mut e6, &[0x60, 0, 0, 0, 0, 8, 17, 64])
        .unwrap();
    v.push(e6);
    v
}

/// Fix what ip4-input/ip6-input would drop before cnat sees it (the IPv4 header checksum,
/// a length beyond the frame), so the mutations reach the cnat nodes.
fn reach_cnat(f: &mut [u8]) {
    if f.len() < 14 + 20 {
        return;
    }
    if f[12..14] == [0x08, 0x00] {
        f[14] = 0x45;
        let n = (f.len() - 14).min(u16::from_be_bytes([f[16], f[17]]).max(20) as usize);
        f[16..18].copy_from_slice(&(n as u16).to_be_bytes());
        f[24..26].fill(0);
        let c = rvpp_dataplane::wire::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
    } else if f.len() >= 14 + 40 {
        f[14] = 0x60 | (f[14] & 0x0f);
        let n = (f.len() - 54).min(u16::from_be_bytes([f[18], f[19]]) as usize);
        f[18..20].copy_from_slice(&(n as u16).to_be_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Mutated frames (bytes flipped past the Ethernet header, truncated, the IP protocol
    /// and fragment fields changed) in both directions, with a service, SNAT and affinity
    /// configured: no panic, every frame leaves or is counted, and after expiry nothing is
    /// left.
    #[test]
    fn mutated_frames_never_panic_or_leak(
        picks in prop::collection::vec(
            (0usize..10, prop::collection::vec((14usize..120, any::<u8>()), 0..6),
             prop::option::of(14usize..120), any::<bool>()),
            1..24,
        )
    ) {
        let mut l = lab();
        k8s_snat(&l, &[]);
        l.cnat.translation_update(Translation {
            vip: ep4(VIP, 80),
            proto: 6,
            flags: tflags::ALLOC_PORT | tflags::NO_CLIENT | tflags::AFFINITY,
            paths: vec![PathEp { dst: ep4(B1, 8080), ..Default::default() }],
            ..Default::default()
        });
        udp_service(&l);
        let seeds = seeds();
        for (seed, flips, cut, from_backend) in &picks {
            let mut f = seeds[*seed].clone();
            for (at, b) in flips {
                if let Some(x) = f.get_mut(*at) {
                    *x ^= *b;
                }
            }
            if let Some(n) = cut {
                f.truncate((*n).max(14));
            }
            reach_cnat(&mut f);
            l.send(if *from_backend { l.if1 } else { l.if0 }, &f);
        }
        let _ = l.outputs();
        l.cnat.purge();
        l.back_to_baseline();
    }
}
