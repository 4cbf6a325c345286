//! Hostile byte streams on the binary API socket of the real rvpp: truncated, oversized,
//! garbage, unknown ids and split writes. The offending client is closed or ignored; other
//! clients keep being served.

#[path = "api/common.rs"]
mod common;

use common::client::Client;
use rvpp_vppapi::defs::{self as d, ControlPing, IpRouteAddDel};
use rvpp_vppapi::transport::frame;
use rvpp_vppapi::Message;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

fn connect(path: &Path) -> Client {
    let c = Client::connect(path, "x").unwrap();
    c.s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c
}

/// The raw ping frames the split-write checks need.
trait Raw {
    fn ping_msg(&self, ctx: u32) -> Vec<u8>;
    fn expect_ping(&mut self, ctx: u32) -> bool;
}

impl Raw for Client {
    fn ping_msg(&self, ctx: u32) -> Vec<u8> {
        frame(&self.payload(&ControlPing::default(), ctx))
    }
    fn expect_ping(&mut self, ctx: u32) -> bool {
        self.recv::<rvpp_vppapi::defs::ControlPingReply>(ctx)
            .is_ok()
    }
}

#[test]
fn hostile_clients_do_not_disturb_others() {
    let mut r = common::Rvpp::start("bad", "");
    let mut good = connect(&r.api);
    assert!(good.ping(1));

    // Truncated: an ip_route_add_del cut short is dropped (as VPP does); the client goes on.
    let mut c = connect(&r.api);
    let mut m = c.id::<IpRouteAddDel>().to_be_bytes().to_vec();
    m.extend_from_slice(&c.index.to_be_bytes());
    m.extend_from_slice(&5u32.to_be_bytes());
    m.extend_from_slice(&[1, 0, 0, 0]);
    c.s.write_all(&frame(&m)).unwrap();
    assert!(c.ping(2), "client usable after a truncated message");
    assert!(good.ping(3));

    // Unknown message id and an id-only payload: no reply, client goes on.
    c.s.write_all(&frame(&[0xff, 0xf0, 0, 0, 0, 0, 0, 0, 0, 0]))
        .unwrap();
    c.s.write_all(&frame(&[0x00])).unwrap();
    c.s.write_all(&frame(&[])).unwrap();
    assert!(c.ping(4), "client usable after unknown ids");

    // A request naming another client's registration gets no reply.
    let other = ControlPing {
        client_index: good.index,
        context: 77,
    };
    c.s.write_all(&frame(&other.encode_msg(c.id::<ControlPing>())))
        .unwrap();
    assert!(c.ping(5));

    // Split writes: a ping dribbled one byte at a time, then several frames in one write.
    let msg = c.ping_msg(6);
    for b in &msg {
        c.s.write_all(&[*b]).unwrap();
        c.s.flush().unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(c.expect_ping(6), "split writes reassembled");
    let mut many = Vec::new();
    for k in 0..50 {
        many.extend(c.ping_msg(100 + k));
    }
    c.s.write_all(&many).unwrap();
    for k in 0..50 {
        assert!(c.expect_ping(100 + k));
    }

    // Oversized: a header announcing 1 GiB closes that client only.
    let mut o = connect(&r.api);
    let mut h = vec![0u8; 16];
    h[8..12].copy_from_slice(&(1u32 << 30).to_be_bytes());
    o.s.write_all(&h).unwrap();
    assert!(o.closed(), "oversized frame closes the client");
    assert!(good.ping(7));

    // Garbage streams of pseudo-random bytes: each client is closed or ignored.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..20 {
        let mut g = connect(&r.api);
        let mut junk = vec![0u8; 3000 + round * 101];
        for b in junk.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let _ = g.s.write_all(&junk);
        drop(g);
        assert!(
            good.ping(1000 + round as u32),
            "good client after garbage {round}"
        );
    }
    // Half a frame and a vanished peer.
    let mut hf = connect(&r.api);
    hf.s.write_all(&good.ping_msg(9)[..10]).unwrap();
    drop(hf);
    assert!(good.ping(8));
    assert!(c.ping(9));
    assert!(r.alive(), "rvpp alive: {}", r.log());
}

fn cnat_ep(a: std::net::IpAddr, port: u16) -> d::CnatEndpoint {
    let (af, mut un) = (
        if a.is_ipv6() {
            d::AddressFamily::ADDRESS_IP6
        } else {
            d::AddressFamily::ADDRESS_IP4
        },
        [0u8; 16],
    );
    match a {
        std::net::IpAddr::V4(v) => un[..4].copy_from_slice(&v.octets()),
        std::net::IpAddr::V6(v) => un = v.octets(),
    }
    d::CnatEndpoint {
        addr: d::Address {
            af,
            un: d::AddressUnion(un),
        },
        sw_if_index: d::InterfaceIndex(u32::MAX),
        if_af: af,
        port,
    }
}

fn translation(
    vip: d::CnatEndpoint,
    proto: u8,
    paths: Vec<d::CnatEndpoint>,
) -> d::CnatTranslationUpdate {
    d::CnatTranslationUpdate {
        translation: d::CnatTranslation {
            vip,
            ip_proto: d::IpProto(proto),
            flags: 1 | 8,
            n_paths: paths.len() as u32,
            paths: paths
                .into_iter()
                .map(|p| d::CnatEndpointTuple {
                    dst_ep: p,
                    src_ep: cnat_ep("0.0.0.0".parse().unwrap(), 0),
                    flags: 0,
                })
                .collect(),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// cnat's API against bad and bulk input on the real daemon, with `cnat { }` in its
/// startup.conf: a VIP with zero paths is taken (it answers port unreachable), paths of the
/// other family and other refusals get VPP's retvals, and 1M translations (64k in a debug
/// build) pipelined through the API all succeed with bounded memory, then delete to nothing.
#[test]
fn cnat_translations_bad_and_a_million() {
    let mut r = common::harness::Rvpp::start_with(
        "api-cnat-bad",
        common::harness::Opts {
            conf: "socksvr { socket-name {dir}/api.sock }\nbuffers { buffers-per-numa 4096 }\n\
                   cnat { session-max 1000 session-max-age 20 translation-db-buckets 64 }\n",
            log_file: true,
            wait_for: &["api.sock"],
            ..Default::default()
        },
    );
    assert!(
        r.ctl("show cnat session").contains("sessions: 0 of 2000"),
        "session-max applied"
    );
    assert!(
        r.log().contains("`cnat translation-db-buckets`: no effect"),
        "warned"
    );
    let mut c = connect(&r.path("api.sock"));
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    let update = |c: &mut Client, m: &d::CnatTranslationUpdate, ctx| {
        c.call::<_, d::CnatTranslationUpdateReply>(m, ctx).unwrap()
    };
    // Zero paths: accepted, listed without paths.
    let zero = update(
        &mut c,
        &translation(cnat_ep(ip("198.19.255.1"), 80), 6, vec![]),
        1,
    );
    assert_eq!(zero.retval, 0);
    assert_ne!(zero.id, u32::MAX);
    // A path of the other family, either way round: INVALID_VALUE, nothing added.
    let v4_to_v6 = translation(
        cnat_ep(ip("198.19.255.2"), 80),
        6,
        vec![cnat_ep(ip("fd00::2"), 8080)],
    );
    let v6_to_v4 = translation(
        cnat_ep(ip("fd00::ff:1"), 80),
        6,
        vec![cnat_ep(ip("198.19.0.2"), 8080)],
    );
    let mut mixed = translation(
        cnat_ep(ip("198.19.255.3"), 80),
        6,
        vec![cnat_ep(ip("198.19.0.2"), 8080)],
    );
    mixed.translation.paths[0].src_ep = cnat_ep(ip("fd00::1"), 0);
    for (i, m) in [v4_to_v6, v6_to_v4, mixed].iter().enumerate() {
        let rep = update(&mut c, m, 10 + i as u32);
        assert_eq!((rep.retval, rep.id), (-7, u32::MAX), "case {i}");
    }
    // Not a translation protocol, an unknown load-balancer, a VIP from an interface.
    let mut icmp = translation(cnat_ep(ip("198.19.255.4"), 0), 1, vec![]);
    assert_eq!(update(&mut c, &icmp, 20).retval, -7);
    icmp.translation.ip_proto = d::IpProto(6);
    icmp.translation.lb_type = d::CnatLbType(9);
    assert_eq!(update(&mut c, &icmp, 21).retval, -7);
    icmp.translation.lb_type = d::CnatLbType(0);
    icmp.translation.vip.sw_if_index = d::InterfaceIndex(1);
    assert_eq!(update(&mut c, &icmp, 22).retval, -9);
    let del = |c: &mut Client, id, ctx| {
        c.call::<_, d::CnatTranslationDelReply>(
            &d::CnatTranslationDel {
                id,
                ..Default::default()
            },
            ctx,
        )
        .unwrap()
        .retval
    };
    assert_eq!(del(&mut c, 0xdead, 23), -6, "no such translation");
    let listed: Vec<d::CnatTranslationDetails> =
        c.dump(&d::CnatTranslationDump::default(), 24).unwrap();
    assert_eq!(listed.len(), 1, "only the zero-path translation");
    assert!(listed[0].translation.paths.is_empty());

    // Many: pipelined in batches, as a busy agent would send them.
    let n: u32 = if cfg!(debug_assertions) {
        1 << 16
    } else {
        1 << 20
    };
    let pid = r.child.id();
    let rss0 = rss_kib(pid);
    let t0 = std::time::Instant::now();
    let mut ids = Vec::with_capacity(n as usize);
    const BATCH: u32 = 512;
    for b in 0..n / BATCH {
        let mut w = Vec::new();
        for k in 0..BATCH {
            let i = b * BATCH + k;
            let vip = std::net::Ipv4Addr::from(0xc613_8000 | (i >> 8)); // 198.19.128.0/17
            let m = translation(
                cnat_ep(vip.into(), 1 + (i & 0xff) as u16),
                6,
                vec![cnat_ep(ip("198.18.1.2"), 8080)],
            );
            c.frame_into(&mut w, &m, i);
        }
        c.s.write_all(&w).unwrap();
        for k in 0..BATCH {
            let rep: d::CnatTranslationUpdateReply = c.recv(b * BATCH + k).unwrap();
            assert_eq!(rep.retval, 0);
            ids.push(rep.id);
        }
    }
    let added = t0.elapsed();
    let grew = rss_kib(pid).saturating_sub(rss0);
    let mut uniq = ids.clone();
    uniq.sort_unstable();
    uniq.dedup();
    assert_eq!(uniq.len(), n as usize, "one id each");
    assert!(r.ctl("show cnat translation").lines().count() > n as usize);
    let t1 = std::time::Instant::now();
    for (b, chunk) in ids.chunks(BATCH as usize).enumerate() {
        let mut w = Vec::new();
        for (k, id) in chunk.iter().enumerate() {
            let ctx = (b * BATCH as usize + k) as u32;
            c.frame_into(
                &mut w,
                &d::CnatTranslationDel {
                    id: *id,
                    ..Default::default()
                },
                ctx,
            );
        }
        c.s.write_all(&w).unwrap();
        for k in 0..chunk.len() {
            let rep: d::CnatTranslationDelReply = c.recv((b * BATCH as usize + k) as u32).unwrap();
            assert_eq!(rep.retval, 0);
        }
    }
    let deleted = t1.elapsed();
    eprintln!(
        "{n} translations over the API: added in {added:?}, deleted in {deleted:?}, rss +{grew} KiB"
    );
    // Bounds that catch a table copied whole per edit (hours) or kept per delete, not speed.
    assert!(grew < n as u64 * 4, "{grew} KiB for {n} translations");
    assert!(added.as_secs() < 300 && deleted.as_secs() < 300);
    let listed: Vec<d::CnatTranslationDetails> =
        c.dump(&d::CnatTranslationDump::default(), 1).unwrap();
    assert_eq!(listed.len(), 1, "back to the zero-path translation alone");
    assert!(r.ctl("show cnat session").contains("sessions: 0 "));
    assert!(
        matches!(r.child.try_wait(), Ok(None)),
        "rvpp alive: {}",
        r.log()
    );
}
