//! The live restart's snapshot (`service::snapshot`) without devices or root: a configuration
//! captured from one dataplane and restored into a fresh one reads back the same (interfaces
//! with their indices and holes, addresses, MTUs, tables, routes, neighbours), and one holding
//! an object the snapshot cannot carry is refused with its name.

mod common;

use rvpp_control::daemon::Dataplane;
use rvpp_control::service::{self, routes::Change, snapshot};
use rvpp_dataplane::forwarding::{Af, NeighborConfig, Path, PathKind, Prefix};
use std::net::IpAddr;
use std::sync::Arc;

fn dataplane() -> Arc<Dataplane> {
    common::in_process_dataplane()
}

fn p(s: &str) -> Prefix {
    Prefix::parse(s).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Everything the snapshot is to carry, as text to compare.
fn state(dp: &Dataplane) -> Vec<String> {
    let f = dp.fwd();
    let mut out: Vec<String> = f
        .ifs()
        .ifs
        .iter()
        .flatten()
        .map(|i| format!("{i:?} {:?}", f.protocol_mtu(i.sw_if_index)))
        .collect();
    for af in [Af::Ip4, Af::Ip6] {
        for (t, name) in f.tables(af) {
            out.push(format!("table {af:?} {t} {name}"));
            for (pfx, r) in f.routes(af, t) {
                out.push(format!("{t} {pfx} {:?} {:?}", r.source, r.paths));
            }
        }
        out.push(format!("{:?}", f.neighbor_config(af)));
    }
    let t = dp.cnat().timeouts();
    out.push(format!(
        "cnat {} {} {} {}",
        t.generic, t.tcp_established, t.tcp_closing, t.affinity
    ));
    let mut n = f.neighbors();
    n.sort_by_key(|n| (n.sw_if_index, n.ip));
    out.extend(n.iter().map(|n| format!("{n:?}")));
    out
}

fn configured() -> Arc<Dataplane> {
    let dp = dataplane();
    let (l0, _) = service::interfaces::create_loopback(&dp, [2, 0, 0, 0, 0, 1]).unwrap();
    let (l1, _) = service::interfaces::create_loopback(&dp, [2, 0, 0, 0, 0, 2]).unwrap();
    let (l2, _) = service::interfaces::create_loopback(&dp, [2, 0, 0, 0, 0, 3]).unwrap();
    // A hole at l1's index: the agent's indices of l0 and l2 must stay.
    service::interfaces::delete(&dp, l1, "loopback").unwrap();
    service::tables::add(&dp, Af::Ip4, 10, "pods").unwrap();
    service::tables::add(&dp, Af::Ip6, 10, "").unwrap();
    service::tables::bind(&dp, l2, Af::Ip4, 10).unwrap();
    service::tables::bind(&dp, l2, Af::Ip6, 10).unwrap();
    service::addresses::add(&dp, l0, p("198.18.1.1/24")).unwrap();
    service::addresses::add(&dp, l0, p("fd00:1::1/64")).unwrap();
    service::addresses::add(&dp, l2, p("198.18.2.1/24")).unwrap();
    {
        let mut f = dp.fwd();
        f.set_mtu(l0, 1400).unwrap();
        f.set_protocol_mtu(l0, 1300, 0).unwrap();
        f.set_tag(l2, "pod-b").unwrap();
        f.set_admin_up(l0, true).unwrap();
        f.set_neighbor_config(
            Af::Ip4,
            NeighborConfig {
                max_number: 100,
                max_age: 30,
                recycle: true,
            },
        );
    }
    service::neighbours::add(&dp, l0, ip("198.18.1.2"), [2, 0, 0, 0, 1, 2], true).unwrap();
    let mut t = dp.cnat().timeouts();
    t.tcp_established += 7;
    dp.cnat().set_timeouts(t);
    let two = vec![
        Path::via(ip("198.18.1.2"), Some(l0)),
        Path {
            weight: 3,
            preference: 1,
            ..Path::via(ip("198.18.1.3"), Some(l0))
        },
    ];
    service::routes::change(&dp, 0, p("198.19.0.0/16"), two, Change::Set).unwrap();
    let lookup = vec![Path::lookup(0)];
    service::routes::change(&dp, 10, p("0.0.0.0/0"), lookup, Change::Set).unwrap();
    let drop = vec![Path::special(PathKind::Drop)];
    service::routes::change(&dp, 0, p("fd00:99::/48"), drop, Change::Set).unwrap();
    dp
}

#[test]
fn a_snapshot_restores_the_same_configuration() {
    let old = configured();
    let snap = {
        let f = old.fwd();
        snapshot::capture(&old, &f).unwrap()
    };
    assert!(snap.fds.is_empty(), "no device, no fd");
    // What travels is text.
    let json: serde_json::Value = serde_json::from_str(&snap.json.to_string()).unwrap();
    let new = dataplane();
    snapshot::restore(&new, &json, &mut []).unwrap();
    let (a, b) = (state(&old), state(&new));
    assert_eq!(a, b);
    assert!(a.iter().any(|l| l.contains("198.19.0.0/16")), "{a:?}");
    // The hole stays free, and is what the next interface gets in both.
    let next = |dp: &Arc<Dataplane>| service::interfaces::create_loopback(dp, [0; 6]).unwrap();
    assert_eq!(next(&old), next(&new));
}

#[test]
fn a_configuration_the_snapshot_cannot_carry_is_refused_by_name() {
    let dp = configured();
    dp.fwd()
        .interface_add("pg0", "pg", [2, 0, 0, 0, 0, 9], true, 1500)
        .unwrap();
    let f = dp.fwd();
    let e = snapshot::capture(&dp, &f)
        .err()
        .expect("a pg interface was carried");
    assert!(e.contains("interface pg0 (pg)"), "{e}");
}

#[test]
fn a_snapshot_of_another_version_is_refused() {
    let old = configured();
    let mut json = {
        let f = old.fwd();
        snapshot::capture(&old, &f).unwrap().json
    };
    json["version"] = (snapshot::VERSION + 1).into();
    let e = snapshot::restore(&dataplane(), &json, &mut []).unwrap_err();
    assert!(e.contains("version"), "{e}");
}

/// IKEv2 profiles (merged after the snapshot was written) are named, not dropped.
#[test]
fn an_ikev2_profile_is_refused_by_name() {
    let dp = configured();
    service::ikev2::profile_add(&dp, "pr1").unwrap();
    let f = dp.fwd();
    let e = snapshot::capture(&dp, &f)
        .err()
        .expect("an IKEv2 profile was carried");
    assert!(e.contains("1 IKEv2 profile(s)"), "{e}");
}
