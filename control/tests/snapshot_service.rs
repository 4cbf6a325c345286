//! The live restart's snapshot (`service::snapshot`) without devices or root: a configuration
//! captured from one dataplane and restored into a fresh one reads back the same (interfaces
//! with their indices and holes, addresses, MTUs, tables, routes, neighbours, and Calico's
//! services and policies under the ids the agent holds, with the features they enabled; and
//! version 3's objects: VXLAN/IPIP tunnels, uRPF, TTL fixup, proxy-ARP ranges, the classifier,
//! PBL clients, SRv6, under their indices and ids), and one holding an object the snapshot
//! cannot carry is refused with its name. The rx-mode test needs root (two taps, their fds).

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
                out.push(format!(
                    "{t} {pfx} {:?} {:?} {:?}",
                    r.source, r.paths, r.shadowed
                ));
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

/// The source and paths of route `pfx` in table 0.
fn route0(dp: &Dataplane, pfx: &str) -> Option<String> {
    let r = dp.fwd().route_get(0, p(pfx))?;
    Some(format!("{:?} {:?}", r.source, r.paths))
}

#[test]
fn an_api_route_under_an_interface_address_is_carried_and_stays_the_apis() {
    let old = configured();
    let l0 = old.fwd().ifs().by_name("loop0").unwrap().sw_if_index;
    let via = vec![Path::via(ip("198.18.1.9"), Some(l0))];
    // calico's route for the interface's own address and subnet: the interface's stay.
    for pfx in ["198.18.1.1/32", "198.18.1.0/24"] {
        let was = route0(&old, pfx);
        service::routes::change(&old, 0, p(pfx), via.clone(), Change::Set).unwrap();
        assert_eq!(
            route0(&old, pfx),
            was,
            "{pfx}: the interface's route forwards"
        );
    }
    let new = carried(&old);
    for dp in [&old, &new] {
        service::addresses::del(dp, l0, p("198.18.1.1/24")).unwrap();
        for pfx in ["198.18.1.1/32", "198.18.1.0/24"] {
            let api = format!("Api {via:?}");
            assert_eq!(
                route0(dp, pfx),
                Some(api),
                "{pfx}: the API's, also restored"
            );
            service::routes::change(dp, 0, p(pfx), vec![], Change::Delete).unwrap();
            assert_eq!(route0(dp, pfx), None);
        }
    }
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

/// What calico's node bring-up adds beside its routes: the global punt redirects into the
/// punt table (per family), and ip6 mroutes in its VRFs, one a pod VRF's default through
/// another table. They travel as version 5, and a snapshot without them stays 3, which an
/// older rvpp reads.
#[test]
fn punt_redirects_and_mroutes_travel_as_version_5() {
    use service::mroutes::{self, MPath};
    use service::punt::{self, Redirect};
    let old = configured();
    let version = |dp: &Arc<Dataplane>| {
        let f = dp.fwd();
        snapshot::capture(dp, &f).unwrap().json["version"].as_u64()
    };
    assert_eq!(version(&old), Some(3));
    for af in [Af::Ip4, Af::Ip6] {
        service::tables::add(&old, af, 1, "punt").unwrap();
        let r = Redirect {
            af,
            rx: None,
            paths: vec![Path::lookup(1)],
        };
        punt::add(&old, r).unwrap();
    }
    let lo = service::interfaces::create_loopback(&old, [2, 0, 0, 0, 0, 7])
        .unwrap()
        .0;
    // Rx on any interface of ff02::1 in table 0, the loopback forwarding; table 10 searches 0.
    let all_nodes = u128::from(std::net::Ipv6Addr::from([0xff02, 0, 0, 0, 0, 0, 0, 1]));
    let both = MPath {
        sw: Some(lo),
        lookup: None,
        accept: true,
        forward: true,
    };
    mroutes::update(&old, Af::Ip6, 0, all_nodes, 128, vec![both], true).unwrap();
    let via0 = MPath {
        sw: None,
        lookup: Some(0),
        accept: false,
        forward: false,
    };
    mroutes::update(&old, Af::Ip6, 10, 0, 0, vec![via0], true).unwrap();
    assert_eq!(version(&old), Some(5));
    let new = carried(&old);
    for af in [Af::Ip4, Af::Ip6] {
        assert_eq!(punt::list(&old, af, None), punt::list(&new, af, None));
        assert_eq!(punt::list(&new, af, None).len(), 1, "{af:?} redirect");
    }
    assert_eq!(mroutes::list(&old), mroutes::list(&new));
    assert_eq!(mroutes::list(&new).len(), 2);
    assert_eq!(state(&old), state(&new));
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

// ---------------------------------------------------------------------------------------------
// Calico's objects: services (cnat) and policies (npol), with the ids the agent holds

use rvpp_dataplane::cnat::snat::{IfTable, Policy as SnatPolicy};
use rvpp_dataplane::cnat::translation::{Endpoint, LbType, PathEp, Translation};
use rvpp_dataplane::nodes::{cnat as cnat_nodes, npol as npol_nodes};
use rvpp_dataplane::npol::ipset::{IpSetKind, Member};
use rvpp_dataplane::npol::rule::{Action, Entry, Filter, FilterKind, MatchData, Rule};
use rvpp_dataplane::npol::{section, IfConfig, Net, Policy, PolicyDefault};

fn v4(s: &str) -> u128 {
    0xffff_0000_0000 | u128::from(u32::from(s.parse::<std::net::Ipv4Addr>().unwrap()))
}

fn ep(a: &str, port: u16) -> Endpoint {
    Endpoint {
        addr: v4(a),
        port,
        ip6: false,
    }
}

fn service(vip: &str, port: u16, proto: u8, backends: &[&str], lb: LbType) -> Translation {
    Translation {
        vip: ep(vip, port),
        proto,
        lb,
        flags: 1,
        paths: backends
            .iter()
            .map(|b| PathEp {
                src: Endpoint::default(),
                dst: ep(b, 8080),
                flags: 0,
            })
            .collect(),
        ..Default::default()
    }
}

/// What the agent reads back of cnat and npol, and the features they enabled: translations as
/// `cnat_translation_dump` orders them (by id), with their ids.
fn calico_state(dp: &Dataplane) -> Vec<String> {
    let mut out = Vec::new();
    let tr = dp.cnat().translations.load();
    let mut ts: Vec<&Translation> = tr.iter().collect();
    ts.sort_by_key(|t| t.id);
    out.extend(ts.iter().map(|t| format!("translation {t:?}")));
    let s = dp.cnat().snat.load();
    let mut ex: Vec<(u128, u8)> = s.exclude.iter().collect();
    ex.sort();
    let tables: Vec<(IfTable, Vec<u32>)> = s.tables.iter().collect();
    out.push(format!(
        "snat {:x} {:x} {} {} {} {} {:?} {ex:?} {tables:?}",
        s.ip4, s.ip6, s.sw_if_index, s.fwd_fib_index, s.ret_fib_index, s.flags, s.policy
    ));
    let t = dp.npol().tables.load();
    for (id, set) in &t.ipsets {
        out.push(format!("ipset {id} {:?} {:?}", set.kind, set.members()));
    }
    out.extend(t.rules.iter().map(|(id, r)| format!("rule {id} {r:?}")));
    out.extend(
        t.policies
            .iter()
            .map(|(id, p)| format!("policy {id} {p:?}")),
    );
    out.extend(t.index.keys().map(|id| format!("indexed {id}")));
    out.extend(t.ifaces.iter().map(|(sw, c)| format!("npol if {sw} {c:?}")));
    let f = dp.fwd();
    for i in f.ifs().ifs.iter().flatten() {
        let on = f.interface_features(i.sw_if_index).unwrap();
        out.push(format!("features {} {on:?}", i.sw_if_index));
    }
    out
}

/// Services and policies as calico-vpp-agent programs them (the API handlers' calls), with
/// holes in the ids: returns (pod interface, uplink, the translation ids, the policy ids).
fn with_calico(dp: &Arc<Dataplane>) -> (u32, u32, Vec<u32>, Vec<u32>) {
    let (pod, _) = service::interfaces::create_loopback(dp, [2, 0, 0, 0, 1, 1]).unwrap();
    let (up, _) = service::interfaces::create_loopback(dp, [2, 0, 0, 0, 1, 2]).unwrap();
    let cnat = dp.cnat();
    let web = cnat.translation_update(service(
        "198.18.10.1",
        80,
        6,
        &["198.18.1.5", "198.18.1.6"],
        LbType::Default,
    ));
    let dns = cnat.translation_update(service(
        "198.18.10.2",
        53,
        17,
        &["198.18.1.7", "198.18.1.8"],
        LbType::Maglev,
    ));
    // The last id freed: the next new one still gets the id after it.
    let gone = cnat.translation_update(service(
        "198.18.10.9",
        80,
        6,
        &["198.18.1.9"],
        LbType::Default,
    ));
    assert!(cnat.translation_del(gone));
    service::cnat::set_addresses(
        dp,
        service::cnat::SnatAddresses {
            ip4: v4("198.18.0.1"),
            ip6: 0,
            sw_if_index: u32::MAX,
            fwd_fib_index: 0,
            ret_fib_index: 0,
            flags: 0,
        },
    )
    .unwrap();
    service::cnat::exclude(dp, v4("198.18.0.0"), 96 + 16, true).unwrap();
    service::cnat::exclude(dp, 0xfd00u128 << 112, 16, true).unwrap();
    service::cnat::interface(dp, pod, IfTable::Pod, true).unwrap();
    service::cnat::interface(dp, up, IfTable::Host, true).unwrap();
    service::cnat::set_policy(dp, SnatPolicy::K8s);
    for sw in [pod, up] {
        cnat_nodes::feature_enable(&mut dp.fwd(), sw, true).unwrap();
    }

    let npol = dp.npol();
    let unused = npol.ipset_create(IpSetKind::Ip);
    let ips = npol.ipset_create(IpSetKind::Ip);
    let nets = npol.ipset_create(IpSetKind::Net);
    let ports = npol.ipset_create(IpSetKind::IpAndPort);
    let a = |s: &str| s.parse::<IpAddr>().unwrap();
    npol.ipset_add_del(
        ips,
        true,
        &[Member::Ip(a("198.18.1.5")), Member::Ip(a("fd00::5"))],
    )
    .unwrap();
    let net = Net::new(a("198.18.4.0"), 24).unwrap();
    npol.ipset_add_del(nets, true, &[Member::Net(net)]).unwrap();
    npol.ipset_add_del(ports, true, &[Member::Tuple(a("198.18.1.6"), 6, 443)])
        .unwrap();
    npol.ipset_delete(unused).unwrap();
    let rule = |action, entries| Rule {
        action,
        filters: vec![Filter {
            kind: FilterKind::L4Proto,
            value: 6,
            should_match: true,
        }],
        entries,
    };
    let entry = |is_src, is_not, data| Entry {
        is_src,
        is_not,
        data,
    };
    let deny = npol
        .rule_create(rule(
            Action::Deny,
            vec![
                entry(true, false, MatchData::IpSet(ips)),
                entry(false, true, MatchData::IpSet(nets)),
            ],
        ))
        .unwrap();
    let allow = npol
        .rule_create(rule(
            Action::Allow,
            vec![
                entry(false, false, MatchData::PortRange(80, 443)),
                entry(false, false, MatchData::PortIpSet(ports)),
                entry(true, false, MatchData::Cidr(net)),
            ],
        ))
        .unwrap();
    let pass = npol.rule_create(rule(Action::Pass, vec![])).unwrap();
    let spare = npol
        .policy_create(Policy {
            inbound: vec![pass],
            outbound: vec![],
        })
        .unwrap();
    let p_deny = npol
        .policy_create(Policy {
            inbound: vec![deny, allow],
            outbound: vec![allow],
        })
        .unwrap();
    let p_allow = npol
        .policy_create(Policy {
            inbound: vec![allow],
            outbound: vec![deny],
        })
        .unwrap();
    npol.policy_delete(spare).unwrap();
    npol.rule_delete(pass).unwrap();
    let pod_cfg = IfConfig {
        rx_policies: vec![p_deny],
        tx_policies: vec![p_allow],
        profiles: vec![p_allow],
        invert_rx_tx: false,
        policy_default_rx: PolicyDefault::Deny,
        policy_default_tx: PolicyDefault::Pass,
        profile_default_rx: PolicyDefault::Allow,
        profile_default_tx: PolicyDefault::Deny,
    };
    // A host endpoint: received packets walk the tx list, here with an untracked and a
    // pre-DNAT section, which enable their own nodes.
    let up_cfg = IfConfig {
        rx_policies: vec![p_allow],
        tx_policies: vec![
            p_deny,
            section::END_UNTRACKED,
            p_allow,
            section::END_PRE_DNAT,
            p_deny,
        ],
        profiles: vec![],
        invert_rx_tx: true,
        policy_default_rx: PolicyDefault::Allow,
        policy_default_tx: PolicyDefault::Deny,
        profile_default_rx: PolicyDefault::Allow,
        profile_default_tx: PolicyDefault::Allow,
    };
    for (sw, c) in [(pod, pod_cfg), (up, up_cfg)] {
        npol.configure(sw, c).unwrap();
        let c = npol.tables.load().ifaces.get(&sw).cloned();
        let mut f = dp.fwd();
        npol_nodes::feature_enable(&mut f, sw, true).unwrap();
        npol_nodes::stages_enable(&mut f, sw, c.as_deref()).unwrap();
    }
    (pod, up, vec![web, dns], vec![p_deny, p_allow])
}

fn carried(old: &Arc<Dataplane>) -> Arc<Dataplane> {
    let snap = {
        let f = old.fwd();
        snapshot::capture(old, &f).unwrap()
    };
    let json: serde_json::Value = serde_json::from_str(&snap.json.to_string()).unwrap();
    let new = dataplane();
    snapshot::restore(&new, &json, &mut []).unwrap();
    new
}

#[test]
fn services_and_policies_restore_under_their_ids_with_their_features() {
    let old = configured();
    let (pod, up, tr, pol) = with_calico(&old);
    let new = carried(&old);
    let (a, b) = (calico_state(&old), calico_state(&new));
    assert_eq!(a, b);
    assert_eq!(state(&old), state(&new));
    // What the comparison covered is there.
    assert_eq!(tr, vec![1, 2], "translation 3 was deleted");
    assert_eq!(new.cnat().translations.load().len(), 2);
    assert_eq!(new.npol().tables.load().ifaces.len(), 2);
    let on = |sw: u32| format!("{:?}", new.fwd().interface_features(sw).unwrap());
    for n in [
        "cnat-input-ip4",
        "cnat-output-ip6",
        "npol-rx-ip4",
        "npol-tx-ip6",
    ] {
        assert!(
            on(pod).contains(n) && on(up).contains(n),
            "{n}: {}",
            on(pod)
        );
    }
    assert!(!on(pod).contains("npol-untracked"), "{}", on(pod));
    for n in ["npol-untracked-rx-ip4", "npol-prednat-ip6"] {
        assert!(on(up).contains(n), "{n}: {}", on(up));
    }
    let snat = new.cnat().snat.load();
    assert_eq!(snat.policy, SnatPolicy::K8s);
    assert!(snat.exclude.contains(v4("198.18.7.7")));

    // The agent's later calls by id work, and new objects get the ids they would have got.
    for dp in [&old, &new] {
        let cnat = dp.cnat();
        assert!(cnat.translation_del(tr[0]), "del of translation {}", tr[0]);
        assert!(!cnat.translation_del(3), "translation 3 was deleted before");
        let again = cnat.translation_update(service(
            "198.18.10.2",
            53,
            17,
            &["198.18.1.8"],
            LbType::Maglev,
        ));
        assert_eq!(again, tr[1], "an update keeps the id");
        let fresh = cnat.translation_update(service(
            "198.18.10.3",
            80,
            6,
            &["198.18.1.3"],
            LbType::Default,
        ));
        assert_eq!(fresh, 4);
        let npol = dp.npol();
        assert_eq!(npol.ipset_create(IpSetKind::Net), 0, "the hole is reused");
        let e = npol.policy_delete(pol[0]).unwrap_err();
        assert!(e.to_string().contains("in use"), "{e}");
        assert!(npol.unconfigure(pod) && npol.unconfigure(up));
        npol.policy_delete(pol[0]).unwrap();
        assert_eq!(
            npol.rule_create(Rule {
                action: Action::Allow,
                filters: vec![],
                entries: vec![],
            }),
            Ok(2)
        );
    }
    assert_eq!(calico_state(&old), calico_state(&new));
}

#[test]
fn a_feature_the_snapshot_cannot_carry_is_refused_by_name() {
    let dp = configured();
    let (pod, _, _, _) = with_calico(&dp);
    dp.fwd()
        .feature_enable(pod, "ip4-unicast", "ip4-udp-deny", true)
        .unwrap();
    let f = dp.fwd();
    let e = snapshot::capture(&dp, &f)
        .err()
        .expect("ip4-udp-deny was carried");
    assert!(
        e.contains("feature ip4-unicast ip4-udp-deny on loop"),
        "{e}"
    );
    assert!(!e.contains("cnat") && !e.contains("npol"), "{e}");
}

/// A version 1 snapshot (before the Calico objects) is read as having none; a snapshot that
/// claims version 2 without them is refused, not half restored.
#[test]
fn a_version_1_snapshot_is_read_as_having_no_calico_objects() {
    let old = configured();
    let mut json = {
        let f = old.fwd();
        snapshot::capture(&old, &f).unwrap().json
    };
    let obj = json.as_object_mut().unwrap();
    obj.remove("cnat");
    obj.remove("npol");
    for i in obj["interfaces"].as_array_mut().unwrap() {
        i.as_object_mut().unwrap().remove("features");
    }
    let e = snapshot::restore(&dataplane(), &json, &mut []).unwrap_err();
    assert!(e.contains("cnat"), "{e}");
    json["version"] = 1.into();
    let new = dataplane();
    snapshot::restore(&new, &json, &mut []).unwrap();
    assert_eq!(state(&old), state(&new));
    assert!(new.cnat().translations.load().is_empty());
}

/// A damaged Calico section is a clear error naming what is wrong, never a panic, and the
/// objects it names are not half applied.
#[test]
fn a_bad_calico_section_is_refused_with_what_is_wrong() {
    let old = configured();
    with_calico(&old);
    let json = {
        let f = old.fwd();
        snapshot::capture(&old, &f).unwrap().json
    };
    type Damage = fn(&mut serde_json::Value);
    let cases: [(&str, Damage, &str); 6] = [
        (
            "an unknown action",
            |j| j["npol"]["rules"][0]["action"] = "maybe".into(),
            "action maybe",
        ),
        (
            "a rule naming a missing ipset",
            |j| j["npol"]["ipsets"].as_array_mut().unwrap().clear(),
            "npol: no ipset",
        ),
        (
            "two translations with one id",
            |j| {
                let t = j["cnat"]["translations"][0].clone();
                j["cnat"]["translations"][1]["id"] = t["id"].clone();
            },
            "cnat translations: two translations share an id",
        ),
        (
            "a VIP that is no address",
            |j| j["cnat"]["translations"][0]["vip"]["addr"] = "198.18.10.1.5".into(),
            "bad or missing addr",
        ),
        (
            "an unknown SNAT policy",
            |j| j["cnat"]["snat"]["policy"] = 9.into(),
            "snat policy",
        ),
        (
            "an unknown feature",
            |j| j["interfaces"][1]["features"] = serde_json::json!([["ip4-unicast", "no-such"]]),
            "feature ip4-unicast no-such",
        ),
    ];
    for (what, damage, want) in cases {
        let mut j = json.clone();
        damage(&mut j);
        let new = dataplane();
        let e = snapshot::restore(&new, &j, &mut []).expect_err(what);
        assert!(e.contains(want), "{what}: {e}");
        let t = new.npol().tables.load();
        assert!(
            t.ipsets.is_empty() || !t.rules.is_empty(),
            "{what}: npol half applied"
        );
    }
}

use rvpp_dataplane::cnat::session::{
    class, sflags, stage, FlowKey, Rewrite, Session, SessionTable,
};

/// Every flow entry as text, with its FIB as a table id and its age instead of its clock.
fn flows(dp: &Dataplane) -> Vec<(String, u32)> {
    let (cnat, npol, f) = (dp.cnat(), dp.npol(), dp.fwd());
    let mut out = Vec::new();
    let mut each = |name: &str, t: &SessionTable, now: u32, fib_is_table: bool| {
        t.for_each(|_, k, s| {
            let af = if k.ip6 { Af::Ip6 } else { Af::Ip4 };
            let fib = if fib_is_table {
                f.table_id_of(af, u32::from(k.fib))
            } else {
                u32::from(k.fib)
            };
            let k = FlowKey { fib: 0, ..*k };
            let s = Session { last_seen: 0, ..*s };
            out.push((
                format!("{name} {fib} {k:?} {s:?}"),
                now.wrapping_sub(s.last_seen),
            ));
        })
    };
    each("session", &cnat.sessions, cnat.now(), true);
    each("affinity", &cnat.affinity, cnat.now(), true);
    each("npol", &npol.flows, npol.now(), false);
    out.sort();
    out
}

/// Established flows go on across a restart: cnat's sessions (forward and return, in a VRF
/// whose FIB index changes, since a deleted table left a hole) with the SNAT port they own,
/// ClientIP affinities and npol's cached verdicts, each with its age.
#[test]
fn flows_restore_with_their_ports_ages_and_tables() {
    let old = configured();
    let (pod, _, tr, _) = with_calico(&old);
    service::tables::add(&old, Af::Ip4, 20, "").unwrap();
    service::tables::add(&old, Af::Ip4, 30, "").unwrap();
    service::tables::del(&old, Af::Ip4, 20);
    let fib = old.fwd().fib_index(Af::Ip4, 30).unwrap();
    assert_eq!(fib, 3, "tables 0, 10, (20), 30");
    let cnat = old.cnat();
    let port = cnat.ports.alloc(false, fib, 6, 0).unwrap();
    let (client, vip, backend, snat) = (
        v4("198.18.1.1"),
        v4("198.18.10.1"),
        v4("198.18.1.5"),
        v4("198.18.0.1"),
    );
    let key = |src, dst, sport, dport| FlowKey {
        src,
        dst,
        sport,
        dport,
        proto: 6,
        ip6: false,
        stage: stage::INPUT,
        fib: fib as u16,
    };
    let session = |rw, flags, last_seen| Session {
        rw,
        translation: tr[0],
        flags,
        class: class::TCP_ESTABLISHED,
        last_seen,
    };
    let now = cnat.now();
    let fwd = Rewrite {
        src: snat,
        dst: backend,
        sport: port,
        dport: 8080,
    };
    let back = Rewrite {
        src: vip,
        dst: client,
        sport: 80,
        dport: 40000,
    };
    cnat.sessions
        .insert(
            &key(client, vip, 40000, 80),
            &session(fwd, sflags::OWNS_PORT, now.wrapping_sub(7)),
        )
        .unwrap();
    cnat.sessions
        .insert(
            &key(backend, snat, 8080, port),
            &session(back, sflags::RETURN, now.wrapping_sub(3)),
        )
        .unwrap();
    cnat.affinity
        .insert(
            &key(client, vip, 0, 80),
            &session(fwd, 0, now.wrapping_sub(20)),
        )
        .unwrap();
    let verdict = FlowKey {
        fib: pod as u16,
        ..key(client, backend, 40000, 8080)
    };
    let npol = old.npol();
    let cached = Session {
        flags: 1,
        last_seen: npol.now().wrapping_sub(5),
        ..Default::default()
    };
    npol.flows.insert(&verdict, &cached).unwrap();

    let new = carried(&old);
    let (a, b) = (flows(&old), flows(&new));
    assert_eq!(a.len(), 4, "{a:?}");
    let text = |v: &[(String, u32)]| v.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    assert_eq!(text(&a), text(&b));
    for (x, y) in a.iter().zip(&b) {
        assert!(x.1.abs_diff(y.1) <= 1, "ages {} and {}: {}", x.1, y.1, x.0);
    }
    assert!(a.iter().any(|x| x.1 >= 19), "ages kept: {a:?}");
    // Table 30 is at another index now; the port is taken in its space there.
    let fib_new = new.fwd().fib_index(Af::Ip4, 30).unwrap();
    assert_eq!(fib_new, 2);
    assert_eq!(new.cnat().ports.in_use(false, fib_new, 6), 1);
    assert!(
        !new.cnat().ports.claim(false, fib_new, 6, port),
        "port {port} is free"
    );
}

// ---------------------------------------------------------------------------------------------
// Snapshot version 3: configuration without a device fd (tunnels, ...)

use rvpp_control::cli;

fn cli_ok(dp: &Arc<Dataplane>, line: &str) -> String {
    let out = cli::execute(dp, line);
    assert!(
        !out.contains("unknown") && !out.contains("error") && !out.contains("usage"),
        "{line}: {out}"
    );
    out
}

/// What the v3 objects read back as: the tunnel dumps and the `show` output.
fn overlay_state(dp: &Arc<Dataplane>) -> Vec<String> {
    let mut out = vec![
        format!("{:?}", service::vxlan::list(dp, None)),
        format!("{:?}", service::ipip::list(dp, None)),
    ];
    for c in [
        "show vxlan tunnel",
        "show ipip tunnel",
        "show interface",
        "show interface address",
    ] {
        out.push(cli::execute(dp, c));
    }
    out.push(format!("vxlan rx ports {:?}", dp.fwd().fwd().vxlan_ports));
    out
}

/// Calico's overlays: VXLAN tunnels of both modes and families, in the default table and in
/// another, and an IPIP tunnel, each interface with what an interface carries (addresses,
/// unnumbered, state, MTU, table binding), and routes through them. The underlay is a
/// loopback here (a tap's fds need root; `live_restart` has those).
fn with_tunnels(dp: &Arc<Dataplane>) -> Vec<u32> {
    let mut sw = Vec::new();
    for line in [
        "create vxlan tunnel src 198.18.1.1 dst 198.18.1.20 vni 4096 l3",
        "create vxlan tunnel src 198.18.1.1 dst 198.18.1.21 vni 4097 instance 5 dst-port 4790 src_port 8472",
        "create vxlan tunnel src fd00:1::1 dst fd00:1::20 vni 7 encap-vrf-id 10",
        "create ipip tunnel src 198.18.1.1 dst 198.18.1.30 instance 3",
    ] {
        let name = cli_ok(dp, line);
        let name = name.trim();
        sw.push(dp.fwd().ifs().by_name(name).expect(name).sw_if_index);
    }
    service::addresses::add(dp, sw[0], p("198.18.40.1/32")).unwrap();
    service::addresses::add(dp, sw[2], p("fd00:40::1/128")).unwrap();
    service::tables::bind(dp, sw[1], Af::Ip4, 10).unwrap();
    {
        let mut f = dp.fwd();
        f.set_unnumbered(sw[3], Some(sw[0])).unwrap();
        f.set_mtu(sw[0], 1400).unwrap();
        f.set_admin_up(sw[1], false).unwrap();
        f.set_admin_up(sw[3], true).unwrap();
        f.set_tag(sw[3], "ipip-peer").unwrap();
    }
    let via = |s: u32| vec![Path::via(ip("198.18.1.20"), Some(s))];
    service::routes::change(dp, 0, p("198.19.20.0/24"), via(sw[0]), Change::Set).unwrap();
    service::routes::change(dp, 0, p("198.19.30.0/24"), via(sw[3]), Change::Set).unwrap();
    sw
}

#[test]
fn vxlan_and_ipip_tunnels_restore_under_their_indices() {
    let old = configured();
    let sw = with_tunnels(&old);
    let new = carried(&old);
    let (a, b) = (overlay_state(&old), overlay_state(&new));
    assert_eq!(a, b);
    assert_eq!(state(&old), state(&new));
    // What the comparison covered is there.
    assert_eq!(service::vxlan::list(&new, None).len(), 3);
    assert_eq!(service::ipip::list(&new, None).len(), 1);
    assert!(
        a[4].contains("ipip3") && a[4].contains("vxlan_tunnel5"),
        "{}",
        a[4]
    );
    let on = format!("{:?}", new.fwd().interface_features(sw[0]).unwrap());
    assert!(on.contains("vxlan4-encap"), "{on}");
    // The tunnel's receive port is registered again, for IPv4 only.
    assert_eq!(new.fwd().fwd().vxlan_ports, [vec![8472u16], vec![]]);
    // The agent deletes by the old keys and index; new tunnels take the names and indices
    // they would have taken.
    for dp in [&old, &new] {
        let vx = service::vxlan::delete(dp, ip("198.18.1.1"), ip("198.18.1.21"), 4097).unwrap();
        assert_eq!(vx, sw[1]);
        service::ipip::delete(dp, sw[3]).unwrap();
        cli_ok(
            dp,
            "create vxlan tunnel src 198.18.1.1 dst 198.18.1.22 vni 1",
        );
    }
    assert_eq!(overlay_state(&old), overlay_state(&new));
    assert_eq!(
        new.fwd().fwd().vxlan_ports,
        [Vec::<u16>::new(), vec![]],
        "gone with its tunnel"
    );
}

#[test]
fn a_tunnel_interface_without_its_tunnel_is_refused() {
    let old = configured();
    with_tunnels(&old);
    let mut json = {
        let f = old.fwd();
        snapshot::capture(&old, &f).unwrap().json
    };
    json["ipip"] = serde_json::json!([]);
    let e = snapshot::restore(&dataplane(), &json, &mut []).unwrap_err();
    assert!(e.contains("ipip3 (ipip) without its tunnel"), "{e}");
    // A version 2 snapshot never held a tunnel: the same interfaces are refused as such.
    json["version"] = 2.into();
    let e = snapshot::restore(&dataplane(), &json, &mut []).unwrap_err();
    assert!(e.contains("without its tunnel"), "{e}");
}

/// The capture's refusal of `dp` with a pg interface added (still refused): what it names.
fn refusal(dp: &Arc<Dataplane>) -> String {
    dp.fwd()
        .interface_add("pg0", "pg", [2, 0, 0, 0, 0, 9], true, 1500)
        .unwrap();
    let f = dp.fwd();
    let e = snapshot::capture(dp, &f)
        .err()
        .expect("a pg interface was carried");
    assert!(e.contains("interface pg0 (pg)"), "{e}");
    e
}

#[test]
fn tunnels_are_not_refused_any_more() {
    let dp = configured();
    with_tunnels(&dp);
    let e = refusal(&dp);
    for no in ["vxlan", "ipip", "encap"] {
        assert!(!e.contains(no), "{no}: {e}");
    }
}

/// uRPF checks of both families and directions (one against another table), a TTL fixup pair
/// and proxy-ARP ranges in two tables, through the CLI.
fn with_settings(dp: &Arc<Dataplane>) {
    for line in [
        "set urpf ip4 rx loose loop0",
        "set urpf ip6 tx strict loop2 table 10",
        "set urpf ip4 rx strict loop2",
        "set ip ttl-fixup loop0 loop2",
        "set arp proxy table-id 10 start 198.18.50.1 end 198.18.50.9",
        "set arp proxy table-id 0 start 198.18.51.1 end 198.18.51.1",
    ] {
        cli_ok(dp, line);
    }
}

/// The uRPF table's FIB per (family and direction, interface), without the entries that say
/// "the interface's own" (which an interface's deletion leaves behind, as padding).
fn urpf_fibs(dp: &Dataplane) -> Vec<Vec<(usize, u32)>> {
    let t = dp
        .feature_tables
        .get::<rvpp_dataplane::nodes::urpf::Table>();
    let s = format!("{:?}", t.load());
    let inner = s
        .trim_start_matches("UrpfTable { fibs: [[")
        .trim_end_matches("]] }");
    inner
        .split("], [")
        .map(|g| {
            g.split(", ")
                .filter(|x| !x.is_empty())
                .map(|x| x.parse::<u32>().expect(&s))
                .enumerate()
                .filter(|e| e.1 != rvpp_dataplane::nodes::urpf::INTERFACE_FIB)
                .collect()
        })
        .collect()
}

fn settings_state(dp: &Arc<Dataplane>) -> Vec<String> {
    vec![
        format!("{:?}", service::urpf::list(dp)),
        format!("{:?}", urpf_fibs(dp)),
        format!("{:?}", service::ttl_fixup::list(dp)),
        format!("{:?}", service::neighbours::proxy_arp_ranges(dp)),
        cli::execute(dp, "show urpf"),
        cli::execute(dp, "show ip ttl-fixup"),
        cli::execute(dp, "show arp proxy"),
    ]
}

#[test]
fn urpf_ttl_fixup_and_proxy_arp_ranges_restore() {
    let old = configured();
    with_settings(&old);
    let new = carried(&old);
    let (a, b) = (settings_state(&old), settings_state(&new));
    assert_eq!(a, b);
    assert_eq!(state(&old), state(&new));
    assert_eq!(service::urpf::list(&new).len(), 3);
    assert_eq!(
        urpf_fibs(&new).concat().len(),
        1,
        "table 10's FIB for loop2"
    );
    assert_eq!(service::ttl_fixup::list(&new).len(), 1);
    assert_eq!(service::neighbours::proxy_arp_ranges(&new).len(), 2);
    let loop2 = new.fwd().ifs().by_name("loop2").unwrap().sw_if_index;
    let on = format!("{:?}", new.fwd().interface_features(loop2).unwrap());
    for n in ["ip6-tx-urpf-strict", "ip4-rx-urpf-strict", "ttl"] {
        assert!(on.contains(n), "{n}: {on}");
    }
    // Turning a check off works on the restored one as on the old.
    for dp in [&old, &new] {
        cli_ok(dp, "set urpf ip6 tx off loop2");
        cli_ok(dp, "set ip ttl-fixup loop0 loop2 disable");
    }
    assert_eq!(settings_state(&old), settings_state(&new));
    assert_eq!(state(&old), state(&new));
}

#[test]
fn urpf_ttl_fixup_and_proxy_arp_are_not_refused_any_more() {
    let dp = configured();
    with_settings(&dp);
    let e = refusal(&dp);
    for no in ["uRPF", "TTL", "proxy ARP", "feature"] {
        assert!(!e.contains(no), "{no}: {e}");
    }
}

#[path = "../../test-support/skip.rs"]
mod skip;

use rvpp_dataplane::device::RxMode;

/// Every rx mode: each device's own and each queue's.
fn rx_modes(dp: &Dataplane) -> Vec<String> {
    dp.devices_lock()
        .values()
        .map(|d| format!("{} {:?} {:?}", d.sw_if_index, d.rx_mode, d.rx_placement))
        .chain(
            rvpp_control::service::queues::rx_mode_list(dp)
                .iter()
                .map(|m| format!("{m:?}")),
        )
        .collect()
}

/// Rx modes need a device: two taps (root), one with a mode for the device, one for a queue.
/// The new dataplane adopts the taps over duplicates of the captured fds (the old one keeps
/// its own), as `takeover` hands them over.
#[test]
fn rx_modes_restore_on_adopted_taps() {
    if !skip::need_root("for taps") {
        return;
    }
    let ns = common::Netns::new(format!("rvpp-snapcfg-rx-{}", std::process::id()));
    let old = configured();
    let mut taps = Vec::new();
    for id in [0, 1] {
        let name = cli_ok(&old, &format!("create tap id {id} host-ns {}", ns.0));
        taps.push(
            old.fwd()
                .ifs()
                .by_name(name.trim())
                .expect(&name)
                .sw_if_index,
        );
    }
    service::queues::set_rx_mode(&old, taps[0], None, RxMode::Interrupt).unwrap();
    service::queues::set_rx_mode(&old, taps[1], Some(0), RxMode::Adaptive).unwrap();
    let snap = {
        let f = old.fwd();
        snapshot::capture(&old, &f).unwrap()
    };
    let json: serde_json::Value = serde_json::from_str(&snap.json.to_string()).unwrap();
    let mut fds: Vec<Option<std::os::fd::OwnedFd>> = snap
        .fds
        .iter()
        .map(|f| Some(f.try_clone().unwrap()))
        .collect();
    assert_eq!(fds.len(), 2, "a queue per tap");
    let new = dataplane();
    snapshot::restore(&new, &json, &mut fds).unwrap();
    let (a, b) = (rx_modes(&old), rx_modes(&new));
    assert_eq!(a, b);
    assert!(a.iter().any(|m| m.contains("Interrupt")), "{a:?}");
    assert!(a.iter().any(|m| m.contains("Adaptive")), "{a:?}");
    assert_eq!(state(&old), state(&new));
    // The refusal no longer names them.
    let e = refusal(&old);
    assert!(!e.contains("rx mode"), "{e}");
}

use rvpp_control::service::classify::TableSpec;

/// Calico's DNS redirect shape: tables (one deleted, leaving a hole; one chained to another),
/// each family's input table on an interface, and redirects to a neighbour and to a table.
fn with_classifier(dp: &Arc<Dataplane>) -> Vec<u32> {
    let mut mask = vec![0u8; 32];
    mask[9] = 0xff; // protocol
    mask[22] = 0xff; // UDP destination port
    mask[23] = 0xff;
    let spec = |offset| TableSpec {
        mask: mask.clone(),
        skip_n: 0,
        match_n: 2,
        nbuckets: 30,
        next_table: None,
        miss_next: u32::MAX,
        current_data: true,
        offset,
    };
    let c = &service::classify::add_table;
    let t: Vec<u32> = (0..3).map(|o| c(dp, &spec(o)).unwrap().0).collect();
    service::classify::del_table(dp, t[1], false).unwrap();
    service::classify::update_table(dp, t[0], Some(t[2]), 0).unwrap();
    let loop0 = dp.fwd().ifs().by_name("loop0").unwrap().sw_if_index;
    let loop2 = dp.fwd().ifs().by_name("loop2").unwrap().sw_if_index;
    service::classify::set_input(dp, loop0, Some(t[0]), None, None, true).unwrap();
    service::classify::set_input(dp, loop2, None, Some(t[2]), None, true).unwrap();
    let mut dns = vec![0u8; 32];
    dns[9] = 17;
    dns[23] = 53;
    let to_host = Path::via(ip("198.18.1.2"), Some(loop0));
    service::classify::redirect_add(dp, t[0], &dns, Af::Ip4, &[to_host], 0).unwrap();
    dns[23] = 54;
    let lookup = Path::lookup(10);
    service::classify::redirect_add(dp, t[2], &dns, Af::Ip6, &[lookup], 7).unwrap();
    t
}

fn classifier_state(dp: &Arc<Dataplane>) -> Vec<String> {
    let mut out: Vec<String> = [
        "show classify tables verbose",
        "show inacl type ip4",
        "show inacl type ip6",
        "show ip session redirect",
    ]
    .iter()
    .map(|c| cli::execute(dp, c))
    .collect();
    out.push(format!("{:?}", service::classify::redirect_list(dp)));
    // Also what `show` leaves out (the offsets, the hash slots); `show inacl` has the rest.
    out.push(format!("{:?}", service::classify::snapshot(dp).tables));
    out
}

#[test]
fn classifier_tables_input_tables_and_redirects_restore_under_their_indices() {
    let old = configured();
    let t = with_classifier(&old);
    assert_eq!(t, vec![0, 1, 2]);
    let new = carried(&old);
    let (a, b) = (classifier_state(&old), classifier_state(&new));
    assert_eq!(a, b);
    assert!(a[0].contains("redirect") && a[3].contains("loop0"), "{a:?}");
    assert_eq!(state(&old), state(&new));
    let c = service::classify::snapshot(&new);
    assert!(c.table(1).is_none(), "the hole stays");
    assert_eq!(c.table(0).unwrap().next_table, Some(2));
    assert_eq!(c.table(0).unwrap().sessions().len(), 1);
    assert_eq!(c.table(2).unwrap().sessions()[0].opaque, 7);
    assert_eq!(c.inacls().len(), 2);
    // The agent's later calls by index work on both, and a new table takes the hole.
    for dp in [&old, &new] {
        let loop0 = dp.fwd().ifs().by_name("loop0").unwrap().sw_if_index;
        service::classify::set_input(dp, loop0, Some(0), None, None, false).unwrap();
        service::classify::del_table(dp, 0, false).unwrap();
        let mut mask = vec![0u8; 16];
        mask[9] = 0xff;
        let spec = TableSpec {
            mask,
            skip_n: 0,
            match_n: 1,
            nbuckets: 2,
            next_table: None,
            miss_next: 0,
            current_data: true,
            offset: 0,
        };
        assert_eq!(service::classify::add_table(dp, &spec).unwrap().0, 0);
    }
    assert_eq!(classifier_state(&old), classifier_state(&new));
}

#[test]
fn the_classifier_is_not_refused_any_more() {
    let dp = configured();
    with_classifier(&dp);
    let e = refusal(&dp);
    for no in ["classifier", "inacl", "feature"] {
        assert!(!e.contains(no), "{no}: {e}");
    }
}

/// PBL clients of both families and two tables, one deleted (a hole in the ids).
fn with_pbl(dp: &Arc<Dataplane>) -> Vec<u32> {
    let loop0 = dp.fwd().ifs().by_name("loop0").unwrap().sw_if_index;
    let add = |table, addr: &str, path: Path, ranges| {
        service::pbl::update(dp, None, table, ip(addr), &path, ranges).unwrap()
    };
    let ids = vec![
        add(
            0,
            "198.18.1.50",
            Path::via(ip("198.18.1.2"), Some(loop0)),
            vec![(6, 80, 80)],
        ),
        add(10, "198.18.2.60", Path::lookup(0), vec![(17, 53, 53)]),
        add(
            0,
            "fd00:1::50",
            Path::via(ip("fd00:1::2"), Some(loop0)),
            vec![(6, 1000, 2000), (17, 5000, 5001)],
        ),
    ];
    service::pbl::del(dp, ids[1]).unwrap();
    ids
}

/// `s` with the numbers after "adj " and "lb " left out: internal indices, which differ when
/// the old process made (and never freed) an adjacency for a client since deleted.
fn no_indices(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = ["adj ", "lb "]
        .iter()
        .filter_map(|w| rest.find(w).map(|i| i + w.len()))
        .min()
    {
        out.push_str(&rest[..i]);
        rest = rest[i..].trim_start_matches(|c: char| c.is_ascii_digit());
        out.push('_');
    }
    out + rest
}

fn pbl_state(dp: &Arc<Dataplane>) -> Vec<String> {
    let mut out = vec![no_indices(&cli::execute(dp, "show pbl client"))];
    for (id, table, c) in service::pbl::list(dp) {
        out.push(format!(
            "{id} {table} {:?} {:?} {:?}",
            c.addr,
            c.ranges,
            service::pbl::path(dp, id)
        ));
    }
    out
}

#[test]
fn pbl_clients_restore_under_their_ids() {
    let old = configured();
    let ids = with_pbl(&old);
    assert_eq!(ids, vec![0, 1, 2]);
    let new = carried(&old);
    let (a, b) = (pbl_state(&old), pbl_state(&new));
    assert_eq!(a, b);
    assert_eq!(a.len(), 3, "{a:?}");
    assert_eq!(state(&old), state(&new));
    // The agent deletes by id, and a new client takes the hole, in both.
    for dp in [&old, &new] {
        service::pbl::del(dp, 2).unwrap();
        let path = Path::lookup(0);
        let id = service::pbl::update(dp, None, 0, ip("198.18.1.51"), &path, vec![]).unwrap();
        assert_eq!(id, 1);
    }
    assert_eq!(pbl_state(&old), pbl_state(&new));
}

#[test]
fn pbl_clients_are_not_refused_any_more() {
    let dp = configured();
    with_pbl(&dp);
    let e = refusal(&dp);
    assert!(!e.contains("PBL"), "{e}");
}

use rvpp_control::service::srv6::{self as sr, LocalsidSpec, PolicyOp, PolicySpec};
use rvpp_dataplane::srv6::Behavior;
use std::net::Ipv6Addr;

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// SRv6 as calico's SRv6 mode programs it: an encap source, localsids of three behaviours
/// (one deleted, a hole), two policies (one with two SID lists, its first deleted: a hole in
/// the SID-list indices), and steering of a routed prefix, a dropped one and an unrouted one.
fn with_srv6(dp: &Arc<Dataplane>) {
    let loop0 = dp.fwd().ifs().by_name("loop0").unwrap().sw_if_index;
    sr::set_encap_source(dp, v6("fd00:ff::1")).unwrap();
    let sid = |s: &str, behavior, decap_table, nh: Option<&str>| LocalsidSpec {
        sid: v6(s),
        behavior,
        end_psp: behavior == Behavior::End,
        fib_table: 0,
        decap_table,
        sw_if_index: loop0,
        nh: nh.map(ip),
    };
    sr::localsid_add(dp, sid("fd00:a::1", Behavior::End, 0, None)).unwrap();
    sr::localsid_add(dp, sid("fd00:a::2", Behavior::DT4, 10, None)).unwrap();
    sr::localsid_add(dp, sid("fd00:a::3", Behavior::DX6, 0, Some("fd00:1::2"))).unwrap();
    sr::localsid_del(dp, v6("fd00:a::1")).unwrap();
    let policy = |bsid: &str, table, sids: &[&str]| PolicySpec {
        bsid: v6(bsid),
        weight: 2,
        is_encap: true,
        is_spray: false,
        reduced: false,
        fib_table: table,
        sids: sids.iter().map(|s| v6(s)).collect(),
    };
    let p0 = sr::policy_add(dp, policy("fd00:b::1", 0, &["fd00:c::1", "fd00:c::2"])).unwrap();
    let p1 = sr::policy_add(dp, policy("fd00:b::2", 10, &["fd00:c::4"])).unwrap();
    let add_list = PolicyOp::AddList;
    sr::policy_mod(dp, v6("fd00:b::1"), 0, add_list, 0, 3, &[v6("fd00:c::3")]).unwrap();
    sr::policy_mod(dp, v6("fd00:b::1"), 0, PolicyOp::DelList, 0, 0, &[]).unwrap();
    for (policy, table, prefix) in [
        (p0, 0, "198.19.0.0/16"),
        (p1, 0, "fd00:99::/48"),
        (p1, 10, "198.18.200.0/24"),
    ] {
        sr::steer_add(dp, Ipv6Addr::UNSPECIFIED, policy, table, p(prefix)).unwrap();
    }
}

fn srv6_state(dp: &Arc<Dataplane>) -> Vec<String> {
    let mut out: Vec<String> = [
        "show sr localsids",
        "show sr policies",
        "show sr steering-policies",
        "show sr encaps source addr",
    ]
    .iter()
    .map(|c| no_indices(&cli::execute(dp, c)))
    .collect();
    out.push(format!("{:?}", sr::policies(dp)));
    out.push(format!("{:?}", sr::steering(dp)));
    out
}

#[test]
fn srv6_restores_with_its_entries_lists_and_steering() {
    let old = configured();
    with_srv6(&old);
    let new = carried(&old);
    let (a, b) = (srv6_state(&old), srv6_state(&new));
    assert_eq!(a, b);
    assert_eq!(state(&old), state(&new));
    assert_eq!(sr::localsids(&new).len(), 2);
    assert_eq!(sr::steering(&new).len(), 3);
    let lists: Vec<u32> = sr::policies(&new)
        .iter()
        .flat_map(|(_, p)| p.sid_lists.iter().map(|l| l.index))
        .collect();
    assert_eq!(lists, vec![2, 1], "the SID lists keep their indices");
    // Later calls find the same: unsteering puts back the routes steering replaced, a new
    // localsid takes the hole, a new SID list the free index.
    for dp in [&old, &new] {
        sr::steer_del(dp, 0, p("198.19.0.0/16")).unwrap();
        sr::steer_del(dp, 0, p("fd00:99::/48")).unwrap();
        sr::policy_del(dp, v6("fd00:b::2"), 0).unwrap();
        let end = LocalsidSpec {
            sid: v6("fd00:a::9"),
            behavior: Behavior::End,
            end_psp: false,
            fib_table: 0,
            decap_table: 0,
            sw_if_index: u32::MAX,
            nh: None,
        };
        sr::localsid_add(dp, end).unwrap();
        let add_list = PolicyOp::AddList;
        sr::policy_mod(dp, v6("fd00:b::1"), 0, add_list, 0, 1, &[v6("fd00:c::5")]).unwrap();
    }
    assert_eq!(srv6_state(&old), srv6_state(&new));
    assert_eq!(state(&old), state(&new));
    let routes = state(&new);
    assert!(
        routes
            .iter()
            .any(|l| l.contains("198.19.0.0/16") && l.contains("198.18.1.3")),
        "the saved route is back: {routes:?}"
    );
}

/// An older rvpp's snapshot kept the API route a steering replaced in the steering's "saved"
/// paths, not in its routes: that route comes back under the steering, and forwards again
/// when the steering goes, as the same configuration made here.
#[test]
fn an_older_snapshots_saved_steered_route_waits_under_the_steering() {
    let old = configured();
    with_srv6(&old);
    let mut json = {
        let f = old.fwd();
        snapshot::capture(&old, &f).unwrap().json
    };
    let routes = json["routes"].as_array_mut().unwrap();
    let at = routes
        .iter()
        .position(|r| r["table"] == 0 && r["prefix"] == "198.19.0.0/16")
        .expect("the API route under the steering travels with the routes");
    let saved = routes.remove(at)["paths"].clone();
    for s in json["srv6"]["steering"].as_array_mut().unwrap() {
        if s["prefix"] == "198.19.0.0/16" {
            s["saved"] = saved.clone();
        }
    }
    let new = dataplane();
    snapshot::restore(&new, &json, &mut []).unwrap();
    assert_eq!(srv6_state(&old), srv6_state(&new));
    assert_eq!(state(&old), state(&new));
    for dp in [&old, &new] {
        sr::steer_del(dp, 0, p("198.19.0.0/16")).unwrap();
    }
    assert_eq!(state(&old), state(&new));
}

#[test]
fn srv6_is_not_refused_any_more() {
    let dp = configured();
    with_srv6(&dp);
    let e = refusal(&dp);
    assert!(!e.contains("SRv6"), "{e}");
}

/// A version 2 snapshot (an older rvpp handing over) has none of version 3's sections and is
/// read as holding none of their objects; a version 3 one without them is refused by name.
#[test]
fn a_version_2_snapshot_is_read_as_having_none_of_version_3s_objects() {
    let old = configured();
    with_calico(&old);
    let mut json = {
        let f = old.fwd();
        snapshot::capture(&old, &f).unwrap().json
    };
    let v3 = [
        "vxlan",
        "ipip",
        "urpf",
        "ttl_fixup",
        "proxy_arp",
        "classify",
        "pbl",
        "srv6",
        "rx_modes",
    ];
    let obj = json.as_object_mut().unwrap();
    for k in v3 {
        assert!(obj.remove(k).is_some(), "{k} is in a version 3 snapshot");
    }
    let e = snapshot::restore(&dataplane(), &json, &mut []).unwrap_err();
    assert!(e.contains("vxlan"), "{e}");
    json["version"] = 2.into();
    let new = dataplane();
    snapshot::restore(&new, &json, &mut []).unwrap();
    assert_eq!(state(&old), state(&new));
    assert_eq!(calico_state(&old), calico_state(&new));
}

/// An af_packet uplink (root: a veth in a namespace of the test's own), two queues in a fanout
/// group with a vnet header: its rx sockets go in the snapshot's fd slots with the ring
/// geometry and settings, and the new dataplane adopts them under the same index, name, MAC,
/// MTU, offloads and addresses, its rx queues placed as before and in the same rx modes (they
/// read only once `attach_late` says the old process has stopped: the driver's test).
#[test]
fn af_packet_round_trips_with_its_rx_sockets() {
    if !skip::need_root("for a veth and packet sockets") {
        return;
    }
    let ns = common::Netns::new(format!("rvpp-snapcfg-afp-{}", std::process::id()));
    let ip = |args: &[&str]| {
        let st = std::process::Command::new("ip")
            .args(["-n", &ns.0])
            .args(args)
            .status()
            .unwrap();
        assert!(st.success(), "ip {args:?}");
    };
    ip(&[
        "link", "add", "afp0", "type", "veth", "peer", "name", "afp1",
    ]);
    ip(&["link", "set", "afp0", "up"]);
    ip(&["link", "set", "afp1", "up"]);
    let old = configured();
    let name = cli_ok(
        &old,
        &format!(
            "create host-interface name afp0 netns {} num-rx-queues 2 gso",
            ns.0
        ),
    );
    assert_eq!(name.trim(), "host-afp0");
    cli_ok(&old, "set interface ip address host-afp0 198.18.7.1/24");
    cli_ok(&old, "set interface state host-afp0 up");
    let sw = old.fwd().ifs().by_name("host-afp0").unwrap().sw_if_index;
    service::queues::set_rx_mode(&old, sw, Some(1), RxMode::Interrupt).unwrap();
    let snap = {
        let f = old.fwd();
        snapshot::capture(&old, &f).unwrap()
    };
    let json: serde_json::Value = serde_json::from_str(&snap.json.to_string()).unwrap();
    let dev = json["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["sw"] == sw)
        .map(|i| i["device"].clone())
        .unwrap();
    assert_eq!(dev["kind"], "af_packet");
    assert_eq!(dev["queues"], 2);
    assert_eq!(dev["vnet_hdr"], true);
    assert_eq!(
        dev["fds"].as_array().unwrap().len(),
        2,
        "an rx socket per queue"
    );
    assert_ne!(dev["fanout_id"], 0);
    let mut fds: Vec<Option<std::os::fd::OwnedFd>> = snap
        .fds
        .iter()
        .map(|f| Some(f.try_clone().unwrap()))
        .collect();
    let new = dataplane();
    let late = snapshot::restore(&new, &json, &mut fds).unwrap();
    assert!(fds.iter().all(Option::is_none), "every fd adopted");
    assert_eq!(state(&old), state(&new));
    assert!(
        !late.no_gates(),
        "the adopted rx queues wait for the old process"
    );
    let mut late = late;
    snapshot::attach_late(&mut late);
    assert_eq!(
        old.devices_lock()[&sw].rx_placement,
        new.devices_lock()[&sw].rx_placement
    );
    assert_eq!(new.devices_lock()[&sw].rx_placement.len(), 2);
    let (a, b) = (rx_modes(&old), rx_modes(&new));
    assert_eq!(a, b);
    assert!(a.iter().any(|m| m.contains("Interrupt")), "{a:?}");
    // Carried again by the new one, so a second take-over works too.
    let f = new.fwd();
    assert!(snapshot::capture(&new, &f).is_ok());
}

/// The memif socket table is carried from version 4 on; a snapshot with only the default socket
/// stays version 3, so that an older rvpp can still take over from this one.
#[test]
fn the_memif_socket_table_is_carried_as_version_4() {
    let old = configured();
    let json = {
        let f = old.fwd();
        snapshot::capture(&old, &f).unwrap().json
    };
    assert_eq!(json["version"], 3, "the default table needs no version 4");
    assert!(json.get("memif_sockets").is_none());
    service::memif::socket_add(&old, Some(3), "/run/vpp/pod-a.sock").unwrap();
    let json = {
        let f = old.fwd();
        snapshot::capture(&old, &f).unwrap().json
    };
    assert_eq!(json["version"], 4);
    let new = dataplane();
    snapshot::restore(&new, &json, &mut []).unwrap();
    assert_eq!(service::memif::sockets(&new), service::memif::sockets(&old));
    assert_eq!(state(&old), state(&new));
    let mut bad = json.clone();
    bad["memif_sockets"] = serde_json::json!([["x", 1]]);
    let e = snapshot::restore(&dataplane(), &bad, &mut []).unwrap_err();
    assert!(e.contains("memif_sockets"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// WireGuard (version 6): interfaces, peers and their live sessions

use rvpp_dataplane::wireguard::engine::{Engine as WgEngine, Outgoing, PeerConfig};
use rvpp_dataplane::wireguard::session::Keypair;
use rvpp_dataplane::wireguard::{Event as WgEvent, HandshakePacket, Wireguard};
use service::wireguard as wg;

/// A wg message out of an engine's outer IPv4 + UDP packet, as wg4-input queues it.
fn wg_message(o: &Outgoing, sw: u32) -> HandshakePacket {
    let f = &o.frame;
    let msg = &f[28..];
    let mut data = [0u8; rvpp_dataplane::wireguard::noise::INITIATION_LEN];
    data[..msg.len()].copy_from_slice(msg);
    HandshakePacket {
        sw_if_index: sw,
        src: IpAddr::from([f[12], f[13], f[14], f[15]]),
        src_port: u16::from_be_bytes([f[20], f[21]]),
        len: msg.len() as u8,
        data,
    }
}

/// The other node: a bare engine of its own with one interface (sw 1) and one peer, rvpp.
fn remote_node(rvpp_public: [u8; 32]) -> (Wireguard, [u8; 32]) {
    let w = Wireguard::default();
    let key = [0x42; 32];
    let mut e = WgEngine::default();
    let i = e.add_interface(&w, (1, 0, 51821, ip("198.18.0.2")), key, 1);
    e.add_peer(
        &w,
        PeerConfig {
            sw_if_index: 1,
            public: rvpp_public,
            psk: [0; 32],
            endpoint: ip("198.18.0.1"),
            port: 51820,
            table_id: 0,
            encap_fib: 0,
            persistent_keepalive: 0,
            allowed: vec![(ip("198.19.0.0"), 24)],
        },
    )
    .unwrap();
    *w.engine.lock().unwrap() = e;
    (w, i.public)
}

/// The keypair rvpp sends on to its peer `peer`.
fn send_keypair(dp: &Dataplane, peer: u32) -> Arc<Keypair> {
    let w = dp.feature_tables.get::<Wireguard>();
    let t = w.table.load();
    let p = t.peer(peer).expect("the peer");
    p.send_keypair(w.now_ms())
        .expect("an established session")
        .clone()
}

/// rvpp (`old`) with wg0 and a peer it has shaken hands with (rvpp the initiator), the other
/// node's engine, and the peer's index.
fn with_wireguard(old: &Arc<Dataplane>) -> (Wireguard, u32) {
    let (sw, name) = wg::create(
        old,
        wg::WgRequest {
            instance: Some(3),
            port: 51820,
            src: ip("198.18.0.1"),
            private_key: Some([0x17; 32]),
        },
    )
    .unwrap();
    assert_eq!(name, "wg3");
    service::addresses::add(old, sw, p("198.19.254.1/32")).unwrap();
    old.fwd().set_admin_up(sw, true).unwrap();
    let ours = wg::list(old, Some(sw))[0].0.public;
    let (remote, their_public) = remote_node(ours);
    let peer = wg::peer_add(
        old,
        wg::PeerRequest {
            sw_if_index: sw,
            public_key: their_public,
            endpoint: ip("198.18.0.2"),
            port: 51821,
            persistent_keepalive: 25,
            table_id: 0,
            allowed: vec![(ip("198.19.1.0"), 24), (ip("fd00:19::"), 64)],
        },
    )
    .unwrap();
    let via_wg = vec![Path::attached(sw)];
    service::routes::change(old, 0, p("198.19.1.0/24"), via_wg, Change::Set).unwrap();
    // rvpp initiates; the other node answers; rvpp completes (and confirms with a keepalive).
    let w = old.feature_tables.get::<Wireguard>();
    w.events.push(WgEvent::WantHandshake(peer)).unwrap();
    let init = wg::tick(old);
    assert_eq!(init.len(), 1, "one initiation");
    assert!(remote.handshakes.push(wg_message(&init[0], 1)).is_ok());
    let resp = remote.engine.lock().unwrap().tick(&remote, 5, 0);
    assert_eq!(resp.len(), 1, "one response");
    assert!(w.handshakes.push(wg_message(&resp[0], sw)).is_ok());
    let keepalive = wg::tick(old);
    assert_eq!(keepalive.len(), 1, "the confirming keepalive");
    (remote, peer)
}

/// What a restore must give back of WireGuard, as text to compare.
fn wireguard_state(dp: &Dataplane) -> Vec<String> {
    let mut out: Vec<String> = wg::list(dp, None)
        .iter()
        .map(|(i, key)| {
            format!(
                "if {} wg{} {} {} {:?} {:?}",
                i.sw_if_index, i.instance, i.port, i.src, i.public, key
            )
        })
        .collect();
    for v in wg::peers(dp, None) {
        let p = &v.peer;
        let kp = |k: &Option<Arc<Keypair>>| {
            k.as_ref()
                .map(|k| (k.local_index, k.remote_index, k.initiator))
        };
        out.push(format!(
            "peer {} on {} {:?} {}:{} ka {} table {} {:?} established {} keys {:?} {:?} hs {:?}",
            p.index,
            p.sw_if_index,
            p.public,
            p.endpoint,
            p.port,
            p.persistent_keepalive,
            p.table_id,
            p.allowed,
            v.established,
            kp(&p.current),
            kp(&p.previous),
            v.handshake_age_s,
        ));
    }
    out
}

/// WireGuard's interfaces, peers and live sessions travel: the keys (the other node opens
/// what the new process seals and the reverse), the send counter past every one the old
/// process used since the capture or may still use (asked for just before the devices), the replay window (what was received stays refused), the
/// keypair's age (rekey on time), the endpoint as roamed, the routes; the old process's
/// keypair stops short of the counters handed over.
#[test]
fn wireguard_sessions_travel_with_their_counters_and_windows() {
    let old = configured();
    let (remote, peer) = with_wireguard(&old);
    let k = send_keypair(&old, peer);
    // Traffic on it: 1000 sent (after the keepalive's 0), counters 0..=40 but 7 received.
    for _ in 0..1000 {
        k.next_counter().unwrap();
    }
    for c in (0..=40).filter(|&c| c != 7) {
        assert!(k.replay.mark(c));
    }
    // The peer roamed to another port (an authenticated packet from it, the engine's act).
    let w = old.feature_tables.get::<Wireguard>();
    w.events
        .push(WgEvent::Roamed {
            peer,
            src: ip("198.18.0.2"),
            port: 40000,
        })
        .unwrap();
    wg::tick(&old);
    // Calico's second interface: IPv6 outer headers, the same port, another source.
    let six = wg::WgRequest {
        instance: None,
        port: 51820,
        src: ip("fd00:18::1"),
        private_key: None,
    };
    assert_eq!(wg::create(&old, six).unwrap().1, "wg0");
    let before = wireguard_state(&old);
    assert!(before.iter().any(|l| l.contains(":40000")), "{before:?}");
    let (json, version) = {
        let f = old.fwd();
        let s = snapshot::capture(&old, &f).unwrap();
        let v = s.json["version"].as_u64();
        (s.json, v)
    };
    assert_eq!(version, Some(6), "WireGuard travels as version 6");
    // The old process forwards on while the new one rebuilds; it asks for the counters last.
    for _ in 0..500 {
        k.next_counter().unwrap();
    }
    let sent = k.sent();
    let new = dataplane();
    let mut ask = |_| Ok(snapshot::wireguard_counters(&old));
    snapshot::restore_with(&new, &json, &mut [], &mut ask).unwrap();
    assert_eq!(state(&old), state(&new));
    assert_eq!(before, wireguard_state(&new));
    let n = send_keypair(&new, peer);
    assert_eq!(
        (n.local_index, n.remote_index),
        (k.local_index, k.remote_index)
    );
    assert!(
        n.sent() > sent,
        "the new process starts past the old counters ({} <= {sent})",
        n.sent()
    );
    assert_eq!(n.birth_ms, k.birth_ms, "the keypair's age");
    // The old process may use a few more counters, then stops short of the new one's.
    let mut last = None;
    while let Some(c) = k.next_counter() {
        last = Some(c);
        assert!(c < sent + 100_000, "the old process kept sending");
    }
    assert!(
        last.is_some_and(|l| l < n.sent()),
        "{last:?} vs {}",
        n.sent()
    );
    // The window: what was received is refused, 7 still accepted once.
    assert!(!n.replay.may_accept(5));
    assert!(n.replay.may_accept(7) && n.replay.mark(7) && !n.replay.mark(7));
    assert!(n.replay.may_accept(41));
    // The keys: the other node opens what the new process seals, and the reverse.
    let rt = remote.table.load();
    let rk = rt.peers().next().unwrap().current.clone().unwrap();
    let c = n.next_counter().unwrap();
    let mut b = *b"sixteen bytes!!!";
    let tag = n.seal(c, &mut b);
    assert!(rk.open(c, &mut b, &tag) && &b == b"sixteen bytes!!!");
    let mut b = *b"and sixteen back";
    let tag = rk.seal(5000, &mut b);
    assert!(n.open(5000, &mut b, &tag) && &b == b"and sixteen back");
    // No handshake in the new process: nothing to send but what its timers say.
    let nw = new.feature_tables.get::<Wireguard>();
    let done = |w: &Wireguard| {
        w.counters
            .handshakes_completed
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    assert_eq!(done(&nw), 0);
    assert!(
        wg::tick(&new).is_empty(),
        "the new process sent something at once"
    );
    // Calls by index find the same objects: the peer, then the interface, go.
    wg::peer_remove(&new, peer).unwrap();
    for (i, _) in wg::list(&new, None) {
        wg::delete(&new, i.sw_if_index).unwrap();
    }
    assert!(wg::list(&new, None).is_empty());
}

/// What damages a snapshot (what, what the refusal says, how).
type Damage = Box<dyn Fn(&mut serde_json::Value)>;

/// `json` refuses to restore with each damage, saying what is wrong; undamaged, it restores.
fn refused_with_what_is_wrong(json: &serde_json::Value, cases: Vec<(&str, &str, Damage)>) {
    for (what, says, damage) in cases {
        let mut j = json.clone();
        damage(&mut j);
        let e = snapshot::restore(&dataplane(), &j, &mut []).expect_err(what);
        assert!(e.contains(says), "{what}: {e}");
    }
    snapshot::restore(&dataplane(), json, &mut []).unwrap();
}

/// A damaged WireGuard section is refused with what is wrong (the new process exits, the old
/// one goes on), never half restored into a crash.
#[test]
fn a_bad_wireguard_section_is_refused_with_what_is_wrong() {
    let old = configured();
    with_wireguard(&old);
    let json = {
        let f = old.fwd();
        snapshot::capture(&old, &f).unwrap().json
    };
    let cases: Vec<(&str, &str, Damage)> = vec![
        (
            "a short private key",
            "private_key",
            Box::new(|j| j["wireguard"]["interfaces"][0]["private_key"] = "17".into()),
        ),
        (
            "a key that is not hex",
            "send_key",
            Box::new(|j| {
                j["wireguard"]["peers"][0]["current"]["send_key"] = "zz".repeat(32).into()
            }),
        ),
        (
            "a replay window of another size",
            "replay_bits",
            Box::new(|j| {
                j["wireguard"]["peers"][0]["current"]["replay_bits"] = serde_json::json!([0])
            }),
        ),
        (
            "a peer on no wg interface",
            "wg peer 0: not a wg interface",
            Box::new(|j| j["wireguard"]["peers"][0]["sw"] = 77.into()),
        ),
        (
            "a wg interface without its entry",
            "without its wg interface",
            Box::new(|j| {
                j["wireguard"]["interfaces"] = serde_json::json!([]);
                j["wireguard"]["peers"] = serde_json::json!([]);
            }),
        ),
        (
            "no section",
            "wireguard",
            Box::new(|j| {
                j.as_object_mut().unwrap().remove("wireguard");
            }),
        ),
    ];
    refused_with_what_is_wrong(&json, cases);
}

// ---------------------------------------------------------------------------------------------
// SA-level IPsec (version 7)

use service::ipsec as ipsec_svc;

const KEY_GCM: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const KEY_CBC: &str = "0f0e0d0c0b0a09080706050403020100";
const KEY_MAC: &str = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf";

/// Calico's IPsec mode with static SAs: an ipip tunnel protected by an AES-GCM pair with ESN,
/// and an `ipsec0` interface protected by an AES-CBC/HMAC-SHA-256 pair over NAT-T in table 10,
/// routes through both. Returns the two interfaces' indices.
fn with_ipsec(dp: &Arc<Dataplane>) -> (u32, u32) {
    let ipip = cli_ok(dp, "create ipip tunnel src 198.18.1.1 dst 198.18.1.30");
    let ipip = dp.fwd().ifs().by_name(ipip.trim()).unwrap().sw_if_index;
    let itf = cli_ok(dp, "ipsec itf create instance 4");
    let itf = dp.fwd().ifs().by_name(itf.trim()).unwrap().sw_if_index;
    for l in [
        format!("ipsec sa add 10 spi 0x1000 esp crypto-alg aes-gcm-256 crypto-key {KEY_GCM} salt 0x11 use-esn use-anti-replay"),
        format!("ipsec sa add 20 spi 0x2000 esp crypto-alg aes-gcm-256 crypto-key {KEY_GCM} salt 0x22 use-esn use-anti-replay inbound"),
        format!("ipsec sa add 30 spi 0x3000 esp crypto-alg aes-cbc-128 crypto-key {KEY_CBC} integ-alg sha-256-128 integ-key {KEY_MAC} udp-encap tunnel src 198.18.2.1 dst 198.18.2.40 table 10"),
        format!("ipsec sa add 40 spi 0x4000 esp crypto-alg aes-cbc-128 crypto-key {KEY_CBC} integ-alg sha-256-128 integ-key {KEY_MAC} use-anti-replay inbound udp-encap tunnel src 198.18.2.40 dst 198.18.2.1 table 10"),
        "ipsec tunnel protect ipip0 sa-in 20 sa-out 10".to_string(),
        "ipsec tunnel protect ipsec4 sa-in 40 sa-out 30".to_string(),
        "set interface state ipip0 up".to_string(),
        "set interface state ipsec4 up".to_string(),
        "set interface ip address ipsec4 198.19.44.1/32".to_string(),
    ] {
        cli_ok(dp, &l);
    }
    let via = |s: u32| vec![Path::via(ip("198.18.1.30"), Some(s))];
    service::routes::change(dp, 0, p("198.19.30.0/24"), via(ipip), Change::Set).unwrap();
    service::routes::change(dp, 0, p("198.19.40.0/24"), via(itf), Change::Set).unwrap();
    (ipip, itf)
}

/// What the IPsec objects read back as: the SAs' configurations with their keys (as the
/// request that makes them), the protections, and the `show` output.
fn ipsec_state(dp: &Arc<Dataplane>) -> Vec<String> {
    let mut out: Vec<String> = ipsec_svc::sas(dp)
        .iter()
        .map(|sa| format!("{:?} {:?}", ipsec_svc::request_of(&sa.cfg), sa.udp_encap()))
        .collect();
    out.push(format!("{:?}", ipsec_svc::protections(dp, None)));
    for c in ["show ipsec protect", "show ipsec tunnel", "show interface"] {
        out.push(cli::execute(dp, c));
    }
    out
}

fn sa(dp: &Dataplane, id: u32) -> Arc<rvpp_dataplane::ipsec::Sa> {
    ipsec_svc::sas(dp)
        .into_iter()
        .find(|s| s.cfg.id == id)
        .unwrap()
}

/// SA-level IPsec travels as version 7: the SAs under their ids with their keys (the other
/// side opens what the new process seals), the ipsec interface and the ipip tunnel under their
/// indices with their protections, the routes; the outbound sequence number past every one the
/// old process used since the capture or may still use (asked for just before the devices),
/// the old process's SA stopping short of it; the replay window (what was received stays
/// refused, also what arrived after the capture); the NAT-T peer port as it moved. A take-over
/// that fails after the hand-over moves the old SA's numbers past what the new one may use.
#[test]
fn ipsec_sas_travel_with_their_sequence_numbers_and_replay_windows() {
    let old = configured();
    let (ipip, itf) = with_ipsec(&old);
    let out = sa(&old, 10);
    for _ in 0..1000 {
        out.next_seq().unwrap();
    }
    let inb = sa(&old, 20);
    for s in (1..=40).filter(|&s| s != 7) {
        assert!(inb.replay.accept(s));
    }
    // IKE's act when the peer's NAT moved it (no republish).
    ipsec_svc::sa_set_udp_dst_port(&old, 30, 40000).unwrap();
    let before = ipsec_state(&old);
    let (json, version) = {
        let f = old.fwd();
        let s = snapshot::capture(&old, &f).unwrap();
        let v = s.json["version"].as_u64();
        (s.json, v)
    };
    assert_eq!(version, Some(7), "IPsec travels as version 7");
    let json: serde_json::Value = serde_json::from_str(&json.to_string()).unwrap();
    // The old process forwards on while the new one rebuilds; it asks for the numbers last.
    for _ in 0..500 {
        out.next_seq().unwrap();
    }
    assert!(inb.replay.accept(41));
    let sent = out.seq_outbound();
    let new = dataplane();
    let mut ask = |a| {
        Ok(match a {
            snapshot::Ask::IpsecSeqs => snapshot::ipsec_seqs(&old),
            snapshot::Ask::WireguardCounters => snapshot::wireguard_counters(&old),
        })
    };
    snapshot::restore_with(&new, &json, &mut [], &mut ask).unwrap();
    assert_eq!(state(&old), state(&new));
    assert_eq!(before, ipsec_state(&new));
    let (n_out, n_in) = (sa(&new, 10), sa(&new, 20));
    let first = n_out.next_seq().unwrap();
    assert!(
        first > sent + 1,
        "the new process numbers past the old one ({first})"
    );
    // The old process may seal a few more, then stops short of the new one's.
    let mut last = None;
    while let Ok(s) = out.next_seq() {
        last = Some(s);
        assert!(s < sent + 100_000, "the old process kept sealing");
    }
    assert!(last.is_some_and(|l| l < first), "{last:?} vs {first}");
    // The window: what was received (before and after the capture) is refused, 7 once.
    assert!(!n_in.replay.check(5) && !n_in.replay.check(41));
    assert!(n_in.replay.check(7) && n_in.replay.accept(7) && !n_in.replay.accept(7));
    assert!(n_in.replay.check(42));
    assert_eq!(sa(&new, 30).udp_encap(), Some((4500, 40000)));
    // The keys: the old SA opens what the new one seals, for both ciphers.
    for id in [10, 30] {
        let (o, n) = (sa(&old, id), sa(&new, id));
        let inner = b"sixteen bytes!!!";
        let len = n.head_len() + inner.len() + n.trailer_len(inner.len()) + n.icv_len();
        let mut pkt = vec![0u8; len];
        let body = n.head_len() + inner.len();
        pkt[n.head_len()..body].copy_from_slice(inner);
        rvpp_dataplane::ipsec::sa::write_trailer(&mut pkt[body..len - n.icv_len()], 4);
        n.seal(77, &mut pkt).unwrap();
        let (l, nh) = o.open(77, &mut pkt).unwrap();
        assert_eq!((l, nh), (inner.len(), 4), "SA {id}");
        assert_eq!(&pkt[o.head_len()..o.head_len() + l], inner);
    }
    // Calls by id and index find the same objects.
    assert!(cli::execute(&new, "show ipsec protect").contains("ipsec4"));
    ipsec_svc::protect_del(&new, itf).unwrap();
    ipsec_svc::itf_delete(&new, itf).unwrap();
    ipsec_svc::protect_del(&new, ipip).unwrap();
    for id in [10, 20, 30, 40] {
        ipsec_svc::sa_del(&new, id).unwrap();
    }
    assert!(ipsec_svc::sas(&new).is_empty());
    // Had the take-over failed now: the old SA seals on far past the new one's numbers.
    snapshot::take_back_ipsec(&old);
    let back = out.next_seq().unwrap();
    assert!(back > first + (1 << 27), "{back} vs {first}");
}

/// Without IPsec (and WireGuard) a snapshot stays at the version an older rvpp reads; an
/// IKEv2 profile still refuses the take-over beside carried SAs.
#[test]
fn ipsec_needs_version_7_only_when_present_and_ikev2_still_refuses() {
    let dp = configured();
    let v = |dp: &Arc<Dataplane>| {
        let f = dp.fwd();
        snapshot::capture(dp, &f).unwrap().json["version"].as_u64()
    };
    assert_eq!(v(&dp), Some(3));
    with_ipsec(&dp);
    assert_eq!(v(&dp), Some(7));
    service::ikev2::profile_add(&dp, "pr1").unwrap();
    let f = dp.fwd();
    let e = snapshot::capture(&dp, &f).err().expect("IKEv2 was carried");
    assert!(e.contains("1 IKEv2 profile(s)") && !e.contains("SA"), "{e}");
}

/// A damaged IPsec section is refused with what is wrong (the new process exits, the old one
/// goes on), never half restored into a crash.
#[test]
fn a_bad_ipsec_section_is_refused_with_what_is_wrong() {
    let old = configured();
    with_ipsec(&old);
    let json = {
        let f = old.fwd();
        snapshot::capture(&old, &f).unwrap().json
    };
    let cases: Vec<(&str, &str, Damage)> = vec![
        (
            "a short key",
            "ipsec SA 10: key is 1 bytes",
            Box::new(|j| j["ipsec"]["sas"][0]["crypto_key"] = "17".into()),
        ),
        (
            "a key that is not hex",
            "crypto_key",
            Box::new(|j| j["ipsec"]["sas"][0]["crypto_key"] = "zz".repeat(32).into()),
        ),
        (
            "a cipher rvpp does not have",
            "crypto_alg",
            Box::new(|j| j["ipsec"]["sas"][0]["crypto_alg"] = 12.into()),
        ),
        (
            "a replay window of another size",
            "replay_bits",
            Box::new(|j| j["ipsec"]["sas"][1]["state"]["replay_bits"] = serde_json::json!([0])),
        ),
        (
            "a protection naming no SA",
            "no SA 99",
            Box::new(|j| j["ipsec"]["protections"][0]["sa_out"] = 99.into()),
        ),
        (
            "an ipsec interface without its entry",
            "ipsec4 (ipsec) without its ipsec entry",
            Box::new(|j| j["ipsec"]["interfaces"] = serde_json::json!([])),
        ),
        (
            "no section",
            "ipsec",
            Box::new(|j| {
                j.as_object_mut().unwrap().remove("ipsec");
            }),
        ),
    ];
    refused_with_what_is_wrong(&json, cases);
}
