use super::ipset::{IpSetKind, Member};
use super::rule::{Action, Entry, Filter, FilterKind, MatchData, Rule};
use super::*;
use std::net::IpAddr;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> Net {
    let (a, l) = s.split_once('/').unwrap();
    Net::new(ip(a), l.parse().unwrap()).unwrap()
}

fn tcp(src: &str, sport: u16, dst: &str, dport: u16) -> FiveTuple {
    FiveTuple {
        src: ip(src),
        dst: ip(dst),
        proto: 6,
        sport,
        dport,
        icmp_type: 0,
        icmp_code: 0,
    }
}

fn icmp(src: &str, dst: &str, ty: u8, code: u8) -> FiveTuple {
    FiveTuple {
        proto: if ip(src).is_ipv6() { 58 } else { 1 },
        sport: 0,
        dport: 0,
        icmp_type: ty,
        icmp_code: code,
        ..tcp(src, 0, dst, 0)
    }
}

fn entry(is_src: bool, is_not: bool, data: MatchData) -> Entry {
    Entry {
        is_src,
        is_not,
        data,
    }
}

fn rule(action: Action, filters: Vec<Filter>, entries: Vec<Entry>) -> Rule {
    Rule {
        action,
        filters,
        entries,
    }
}

fn filter(kind: FilterKind, value: u32, should_match: bool) -> Filter {
    Filter {
        kind,
        value,
        should_match,
    }
}

/// Does a rule alone match `p`, with the ipsets of `n`?
fn hit(n: &Npol, r: &Rule, p: &FiveTuple) -> bool {
    r.matches(&n.tables.load().ipsets, p)
}

fn conf(rx: Vec<u32>, tx: Vec<u32>, profiles: Vec<u32>) -> IfConfig {
    IfConfig {
        rx_policies: rx,
        tx_policies: tx,
        profiles,
        invert_rx_tx: false,
        policy_default_rx: PolicyDefault::Deny,
        policy_default_tx: PolicyDefault::Deny,
        profile_default_rx: PolicyDefault::Deny,
        profile_default_tx: PolicyDefault::Deny,
    }
}

fn v(n: &Npol, sw: u32, d: Direction, p: &FiveTuple) -> Verdict {
    verdict(&n.tables.load(), sw, d, p)
}

#[test]
fn cidr_matches_by_side_and_family() {
    let n = Npol::default();
    let r = rule(
        Action::Allow,
        vec![],
        vec![entry(true, false, MatchData::Cidr(net("198.18.0.0/24")))],
    );
    assert!(hit(&n, &r, &tcp("198.18.0.9", 1, "198.19.0.1", 80)));
    assert!(!hit(&n, &r, &tcp("198.18.1.9", 1, "198.19.0.1", 80)));
    // The dst side does not count for a src entry.
    assert!(!hit(&n, &r, &tcp("198.19.0.1", 1, "198.18.0.9", 80)));
    // A v4 CIDR never matches a v6 packet.
    assert!(!hit(&n, &r, &tcp("fd00::1", 1, "fd00::2", 80)));
    // Two positive CIDRs on one side: either is enough.
    let r2 = rule(
        Action::Allow,
        vec![],
        vec![
            entry(false, false, MatchData::Cidr(net("198.18.0.0/24"))),
            entry(false, false, MatchData::Cidr(net("fd00::/64"))),
        ],
    );
    assert!(hit(&n, &r2, &tcp("198.19.0.1", 1, "198.18.0.7", 80)));
    assert!(hit(&n, &r2, &tcp("fd00:1::1", 1, "fd00::7", 80)));
    assert!(!hit(&n, &r2, &tcp("198.19.0.1", 1, "198.19.0.7", 80)));
}

#[test]
fn negated_cidr_excludes() {
    let n = Npol::default();
    let r = rule(
        Action::Allow,
        vec![],
        vec![
            entry(false, false, MatchData::Cidr(net("198.18.0.0/16"))),
            entry(false, true, MatchData::Cidr(net("198.18.5.0/24"))),
        ],
    );
    assert!(hit(&n, &r, &tcp("198.19.0.1", 1, "198.18.4.1", 80)));
    assert!(!hit(&n, &r, &tcp("198.19.0.1", 1, "198.18.5.1", 80)));
    // Only a negation: everything but it matches.
    let only_not = rule(
        Action::Allow,
        vec![],
        vec![entry(true, true, MatchData::Cidr(net("198.18.0.0/16")))],
    );
    assert!(hit(&n, &only_not, &tcp("198.19.0.1", 1, "198.18.4.1", 80)));
    assert!(!hit(&n, &only_not, &tcp("198.18.0.1", 1, "198.18.4.1", 80)));
}

#[test]
fn host_bits_of_a_cidr_are_cleared() {
    assert_eq!(net("198.18.3.7/16").addr, ip("198.18.0.0"));
    assert!(Net::new(ip("198.18.0.0"), 33).is_none());
    assert!(Net::new(ip("fd00::"), 129).is_none());
}

#[test]
fn port_ranges_and_port_ipsets_are_ored() {
    let n = Npol::default();
    let s = n.ipset_create(IpSetKind::IpAndPort);
    n.ipset_add_del(s, true, &[Member::Tuple(ip("198.18.0.2"), 6, 8080)])
        .unwrap();
    let r = rule(
        Action::Allow,
        vec![],
        vec![
            entry(false, false, MatchData::PortRange(80, 90)),
            entry(false, false, MatchData::PortIpSet(s)),
        ],
    );
    n.rule_create(r.clone()).unwrap();
    assert!(hit(&n, &r, &tcp("198.19.0.1", 1000, "198.18.0.9", 85)));
    assert!(hit(&n, &r, &tcp("198.19.0.1", 1000, "198.18.0.2", 8080)));
    // The triple must match whole: address, protocol and port.
    assert!(!hit(&n, &r, &tcp("198.19.0.1", 1000, "198.18.0.3", 8080)));
    let mut udp = tcp("198.19.0.1", 1000, "198.18.0.2", 8080);
    udp.proto = 17;
    assert!(!hit(&n, &r, &udp));
    assert!(!hit(&n, &r, &tcp("198.19.0.1", 1000, "198.18.0.9", 91)));
    // Range ends are inclusive.
    assert!(hit(&n, &r, &tcp("198.19.0.1", 1000, "198.18.0.9", 80)));
    assert!(hit(&n, &r, &tcp("198.19.0.1", 1000, "198.18.0.9", 90)));
}

#[test]
fn negated_ports_and_port_ipsets_exclude() {
    let n = Npol::default();
    let s = n.ipset_create(IpSetKind::IpAndPort);
    n.ipset_add_del(s, true, &[Member::Tuple(ip("198.19.0.1"), 6, 1000)])
        .unwrap();
    let r = rule(
        Action::Allow,
        vec![],
        vec![
            entry(false, true, MatchData::PortRange(22, 22)),
            entry(true, true, MatchData::PortIpSet(s)),
        ],
    );
    assert!(hit(&n, &r, &tcp("198.19.0.1", 1001, "198.18.0.9", 80)));
    assert!(!hit(&n, &r, &tcp("198.19.0.1", 1001, "198.18.0.9", 22)));
    assert!(!hit(&n, &r, &tcp("198.19.0.1", 1000, "198.18.0.9", 80)));
    // src ports are a separate category from dst ports.
    let src_range = rule(
        Action::Allow,
        vec![],
        vec![entry(true, false, MatchData::PortRange(1000, 1000))],
    );
    assert!(hit(
        &n,
        &src_range,
        &tcp("198.19.0.1", 1000, "198.18.0.9", 80)
    ));
    assert!(!hit(
        &n,
        &src_range,
        &tcp("198.19.0.1", 80, "198.18.0.9", 1000)
    ));
}

#[test]
fn ip_and_net_ipsets_match_and_negate() {
    let n = Npol::default();
    let ips = n.ipset_create(IpSetKind::Ip);
    let nets = n.ipset_create(IpSetKind::Net);
    n.ipset_add_del(
        ips,
        true,
        &[Member::Ip(ip("198.18.0.1")), Member::Ip(ip("fd00::1"))],
    )
    .unwrap();
    n.ipset_add_del(nets, true, &[Member::Net(net("198.19.0.0/24"))])
        .unwrap();
    let r = rule(
        Action::Allow,
        vec![],
        vec![
            entry(true, false, MatchData::IpSet(ips)),
            entry(false, false, MatchData::IpSet(nets)),
        ],
    );
    assert!(hit(&n, &r, &tcp("198.18.0.1", 1, "198.19.0.200", 80)));
    assert!(!hit(&n, &r, &tcp("198.18.0.2", 1, "198.19.0.200", 80)));
    assert!(!hit(&n, &r, &tcp("198.18.0.1", 1, "198.19.1.200", 80)));
    let not = rule(
        Action::Allow,
        vec![],
        vec![entry(true, true, MatchData::IpSet(ips))],
    );
    assert!(!hit(&n, &not, &tcp("fd00::1", 1, "fd00::2", 80)));
    assert!(hit(&n, &not, &tcp("fd00::3", 1, "fd00::2", 80)));
    // Members deleted in bulk stop matching.
    n.ipset_add_del(ips, false, &[Member::Ip(ip("198.18.0.1"))])
        .unwrap();
    assert!(!hit(&n, &r, &tcp("198.18.0.1", 1, "198.19.0.200", 80)));
}

#[test]
fn filters_read_protocol_and_real_icmp_type_and_code() {
    let n = Npol::default();
    let tcp_only = rule(
        Action::Allow,
        vec![filter(FilterKind::L4Proto, 6, true)],
        vec![],
    );
    assert!(hit(&n, &tcp_only, &tcp("198.18.0.1", 1, "198.18.0.2", 2)));
    assert!(!hit(&n, &tcp_only, &icmp("198.18.0.1", "198.18.0.2", 8, 0)));
    let not_tcp = rule(
        Action::Allow,
        vec![filter(FilterKind::L4Proto, 6, false)],
        vec![],
    );
    assert!(!hit(&n, &not_tcp, &tcp("198.18.0.1", 1, "198.18.0.2", 2)));
    assert!(hit(&n, &not_tcp, &icmp("198.18.0.1", "198.18.0.2", 8, 0)));

    // Echo request (type 8) only; code 0.
    let echo = rule(
        Action::Allow,
        vec![
            filter(FilterKind::IcmpType, 8, true),
            filter(FilterKind::IcmpCode, 0, true),
            filter(FilterKind::None, 99, true),
        ],
        vec![],
    );
    assert!(hit(&n, &echo, &icmp("198.18.0.1", "198.18.0.2", 8, 0)));
    assert!(!hit(&n, &echo, &icmp("198.18.0.1", "198.18.0.2", 0, 0)));
    assert!(!hit(&n, &echo, &icmp("198.18.0.1", "198.18.0.2", 8, 1)));
    // ICMPv6 echo request is type 128.
    let echo6 = rule(
        Action::Allow,
        vec![filter(FilterKind::IcmpType, 128, true)],
        vec![],
    );
    assert!(hit(&n, &echo6, &icmp("fd00::1", "fd00::2", 128, 0)));
    // A negated ICMP filter matches other types, but never a non-ICMP packet.
    let not_unreach = rule(
        Action::Allow,
        vec![filter(FilterKind::IcmpType, 3, false)],
        vec![],
    );
    assert!(hit(
        &n,
        &not_unreach,
        &icmp("198.18.0.1", "198.18.0.2", 8, 0)
    ));
    assert!(!hit(
        &n,
        &not_unreach,
        &icmp("198.18.0.1", "198.18.0.2", 3, 1)
    ));
    assert!(!hit(
        &n,
        &not_unreach,
        &tcp("198.18.0.1", 1, "198.18.0.2", 2)
    ));
}

#[test]
fn first_allow_or_deny_decides_and_log_goes_on() {
    let n = Npol::default();
    let any = |a| rule(a, vec![], vec![]);
    let log = n.rule_create(any(Action::Log)).unwrap();
    let deny80 = n
        .rule_create(rule(
            Action::Deny,
            vec![],
            vec![entry(false, false, MatchData::PortRange(80, 80))],
        ))
        .unwrap();
    let allow = n.rule_create(any(Action::Allow)).unwrap();
    // A LOG rule ends its policy's walk; the next policy decides.
    let p_log = n
        .policy_create(Policy {
            inbound: vec![log, allow],
            outbound: vec![],
        })
        .unwrap();
    let p = n
        .policy_create(Policy {
            inbound: vec![deny80, allow],
            outbound: vec![],
        })
        .unwrap();
    n.configure(1, conf(vec![p_log, p], vec![], vec![]))
        .unwrap();
    assert_eq!(
        v(
            &n,
            1,
            Direction::Rx,
            &tcp("198.18.0.1", 1, "198.18.0.2", 80)
        ),
        Verdict::Deny
    );
    assert_eq!(
        v(
            &n,
            1,
            Direction::Rx,
            &tcp("198.18.0.1", 1, "198.18.0.2", 81)
        ),
        Verdict::Allow
    );
    // Outbound rules do not apply to rx: tx has no policies, so its default (deny).
    assert_eq!(
        v(
            &n,
            1,
            Direction::Tx,
            &tcp("198.18.0.1", 1, "198.18.0.2", 81)
        ),
        Verdict::Deny
    );
    // An interface without configuration allows everything.
    assert_eq!(
        v(
            &n,
            2,
            Direction::Rx,
            &tcp("198.18.0.1", 1, "198.18.0.2", 80)
        ),
        Verdict::Allow
    );
}

#[test]
fn pass_skips_policies_to_profiles_and_defaults_apply() {
    let n = Npol::default();
    let pass = n.rule_create(rule(Action::Pass, vec![], vec![])).unwrap();
    let deny = n.rule_create(rule(Action::Deny, vec![], vec![])).unwrap();
    let allow22 = n
        .rule_create(rule(
            Action::Allow,
            vec![],
            vec![entry(false, false, MatchData::PortRange(22, 22))],
        ))
        .unwrap();
    let p_pass = n
        .policy_create(Policy {
            inbound: vec![pass],
            outbound: vec![],
        })
        .unwrap();
    let p_deny = n
        .policy_create(Policy {
            inbound: vec![deny],
            outbound: vec![],
        })
        .unwrap();
    let profile = n
        .policy_create(Policy {
            inbound: vec![allow22],
            outbound: vec![],
        })
        .unwrap();
    // PASS skips the deny policy after it and lands in the profile.
    n.configure(1, conf(vec![p_pass, p_deny], vec![], vec![profile]))
        .unwrap();
    let ssh = tcp("198.18.0.1", 1, "198.18.0.2", 22);
    let web = tcp("198.18.0.1", 1, "198.18.0.2", 80);
    assert_eq!(v(&n, 1, Direction::Rx, &ssh), Verdict::Allow);
    // Nothing in the profile: profile default.
    assert_eq!(v(&n, 1, Direction::Rx, &web), Verdict::Deny);
    let mut c = conf(vec![p_pass], vec![], vec![profile]);
    c.profile_default_rx = PolicyDefault::Allow;
    n.configure(1, c).unwrap();
    assert_eq!(v(&n, 1, Direction::Rx, &web), Verdict::Allow);

    // No policy matches: policy default ALLOW decides without the profiles...
    let mut c = conf(vec![], vec![], vec![profile]);
    c.policy_default_rx = PolicyDefault::Allow;
    n.configure(1, c.clone()).unwrap();
    assert_eq!(v(&n, 1, Direction::Rx, &web), Verdict::Allow);
    // ...DENY too, and PASS goes to the profiles.
    c.policy_default_rx = PolicyDefault::Deny;
    n.configure(1, c.clone()).unwrap();
    assert_eq!(v(&n, 1, Direction::Rx, &ssh), Verdict::Deny);
    c.policy_default_rx = PolicyDefault::Pass;
    n.configure(1, c).unwrap();
    assert_eq!(v(&n, 1, Direction::Rx, &ssh), Verdict::Allow);
    assert_eq!(v(&n, 1, Direction::Rx, &web), Verdict::Deny);
}

#[test]
fn invert_rx_tx_swaps_lists_and_rules_but_not_defaults() {
    let n = Npol::default();
    let allow80 = n
        .rule_create(rule(
            Action::Allow,
            vec![],
            vec![entry(false, false, MatchData::PortRange(80, 80))],
        ))
        .unwrap();
    // Allow 80 for traffic the policy calls outbound, in a tx policy.
    let p = n
        .policy_create(Policy {
            inbound: vec![],
            outbound: vec![allow80],
        })
        .unwrap();
    let mut c = conf(vec![], vec![p], vec![]);
    c.policy_default_tx = PolicyDefault::Allow;
    n.configure(1, c.clone()).unwrap();
    let web = tcp("198.18.0.1", 1, "198.18.0.2", 80);
    let other = tcp("198.18.0.1", 1, "198.18.0.2", 81);
    // Not inverted: rx has no policies and the rx default denies.
    assert_eq!(v(&n, 1, Direction::Rx, &web), Verdict::Deny);
    assert_eq!(v(&n, 1, Direction::Tx, &web), Verdict::Allow);
    // Inverted: rx walks the tx policies' outbound rules, with the rx defaults.
    c.invert_rx_tx = true;
    n.configure(1, c).unwrap();
    assert_eq!(v(&n, 1, Direction::Rx, &web), Verdict::Allow);
    assert_eq!(v(&n, 1, Direction::Rx, &other), Verdict::Deny);
    // tx now walks rx policies (none), then the tx default (allow).
    assert_eq!(v(&n, 1, Direction::Tx, &other), Verdict::Allow);
}

#[test]
fn bad_references_are_refused_and_change_nothing() {
    let n = Npol::default();
    let before = || format!("{:?}", n.tables.load());
    let empty = before();
    assert_eq!(
        n.rule_create(rule(
            Action::Allow,
            vec![],
            vec![entry(true, false, MatchData::IpSet(7))]
        )),
        Err(NpolError::NoSuchIpset(7))
    );
    assert_eq!(
        n.policy_create(Policy {
            inbound: vec![3],
            outbound: vec![]
        }),
        Err(NpolError::NoSuchRule(3))
    );
    assert_eq!(
        n.configure(1, conf(vec![9], vec![], vec![])),
        Err(NpolError::NoSuchPolicy(9))
    );
    assert_eq!(
        n.ipset_add_del(4, true, &[]),
        Err(NpolError::NoSuchIpset(4))
    );
    assert_eq!(n.rule_delete(0), Err(NpolError::NoSuchRule(0)));
    assert_eq!(
        n.policy_update(0, Policy::default()),
        Err(NpolError::NoSuchPolicy(0))
    );
    assert_eq!(before(), empty);

    // Wrong kinds: a port set used as an IP set, a member of another kind; bulk is all or
    // nothing.
    let ports = n.ipset_create(IpSetKind::IpAndPort);
    let ips = n.ipset_create(IpSetKind::Ip);
    assert!(matches!(
        n.rule_create(rule(
            Action::Allow,
            vec![],
            vec![entry(true, false, MatchData::IpSet(ports))]
        )),
        Err(NpolError::WrongIpsetKind { .. })
    ));
    assert!(matches!(
        n.rule_create(rule(
            Action::Allow,
            vec![],
            vec![entry(true, false, MatchData::PortIpSet(ips))]
        )),
        Err(NpolError::WrongIpsetKind { .. })
    ));
    let mid = before();
    assert!(n
        .ipset_add_del(
            ips,
            true,
            &[
                Member::Ip(ip("198.18.0.1")),
                Member::Net(net("198.18.0.0/24"))
            ]
        )
        .is_err());
    assert_eq!(
        n.ipset_add_del(ips, false, &[Member::Ip(ip("198.18.0.1"))]),
        Err(NpolError::NoSuchMember(ips))
    );
    assert!(n
        .rule_create(rule(
            Action::Allow,
            vec![],
            vec![entry(true, false, MatchData::PortRange(9, 8))]
        ))
        .is_err());
    assert_eq!(before(), mid);

    // What is in use cannot be deleted; in reverse order it can.
    let r = n
        .rule_create(rule(
            Action::Allow,
            vec![],
            vec![entry(true, false, MatchData::IpSet(ips))],
        ))
        .unwrap();
    let p = n
        .policy_create(Policy {
            inbound: vec![r],
            outbound: vec![],
        })
        .unwrap();
    n.configure(5, conf(vec![p], vec![], vec![])).unwrap();
    assert_eq!(n.ipset_delete(ips), Err(NpolError::InUse("ipset", ips)));
    assert_eq!(n.rule_delete(r), Err(NpolError::InUse("rule", r)));
    assert_eq!(n.policy_delete(p), Err(NpolError::InUse("policy", p)));
    // A rule update with a bad reference keeps the old rule.
    assert_eq!(
        n.rule_update(
            r,
            rule(
                Action::Deny,
                vec![],
                vec![entry(true, false, MatchData::IpSet(99))]
            )
        ),
        Err(NpolError::NoSuchIpset(99))
    );
    assert_eq!(n.tables.load().rules[&r].action, Action::Allow);
    assert!(n.unconfigure(5));
    n.policy_delete(p).unwrap();
    n.rule_delete(r).unwrap();
    n.ipset_delete(ips).unwrap();
}

#[test]
fn ids_are_the_lowest_free_and_updates_keep_them() {
    let n = Npol::default();
    let a = n.rule_create(rule(Action::Allow, vec![], vec![])).unwrap();
    let b = n.rule_create(rule(Action::Deny, vec![], vec![])).unwrap();
    assert_eq!((a, b), (0, 1));
    n.rule_delete(a).unwrap();
    assert_eq!(
        n.rule_create(rule(Action::Pass, vec![], vec![])).unwrap(),
        0
    );
    n.rule_update(b, rule(Action::Allow, vec![], vec![]))
        .unwrap();
    assert_eq!(n.tables.load().rules[&b].action, Action::Allow);
}

#[test]
fn an_update_reaches_a_worker_snapshot_at_refresh() {
    let n = Npol::default();
    let mut snap = n.tables.snapshot();
    let deny = n.rule_create(rule(Action::Deny, vec![], vec![])).unwrap();
    let p = n
        .policy_create(Policy {
            inbound: vec![deny],
            outbound: vec![],
        })
        .unwrap();
    let mut c = conf(vec![p], vec![], vec![]);
    c.policy_default_rx = PolicyDefault::Allow;
    n.configure(1, c).unwrap();
    let pkt = tcp("198.18.0.1", 1, "198.18.0.2", 80);
    assert_eq!(verdict(snap.get(), 1, Direction::Rx, &pkt), Verdict::Allow);
    assert!(snap.refresh(&n.tables));
    assert_eq!(verdict(snap.get(), 1, Direction::Rx, &pkt), Verdict::Deny);
}

#[test]
fn tier_markers_give_calico_tier_semantics() {
    use crate::npol::tier::{END_DENY, END_PASS};
    let n = Npol::default();
    let r = |a, port: Option<u16>| {
        let e = port
            .map(|x| vec![entry(false, false, MatchData::PortRange(x, x))])
            .unwrap_or_default();
        let id = n.rule_create(rule(a, vec![], e)).unwrap();
        n.policy_create(Policy {
            inbound: vec![id],
            outbound: vec![],
        })
        .unwrap()
    };
    let pass22 = r(Action::Pass, Some(22));
    let deny22 = r(Action::Deny, Some(22));
    let allow80 = r(Action::Allow, Some(80));
    let allow_all = r(Action::Allow, None);
    let ssh = tcp("198.18.0.1", 1, "198.18.0.2", 22);
    let web = tcp("198.18.0.1", 1, "198.18.0.2", 80);
    let dns = tcp("198.18.0.1", 1, "198.18.0.2", 53);
    let set = |rx: Vec<u32>, profiles: Vec<u32>| {
        let mut c = conf(rx, vec![], profiles);
        c.profile_default_rx = PolicyDefault::Deny;
        n.configure(1, c).unwrap();
    };
    // Tier 1 passes ssh, allows web, and denies the rest at its end; tier 2 would deny ssh.
    set(
        vec![pass22, allow80, END_DENY, deny22, END_DENY],
        vec![allow_all],
    );
    assert_eq!(v(&n, 1, Direction::Rx, &web), Verdict::Allow);
    assert_eq!(
        v(&n, 1, Direction::Rx, &dns),
        Verdict::Deny,
        "end-of-tier deny"
    );
    assert_eq!(
        v(&n, 1, Direction::Rx, &ssh),
        Verdict::Deny,
        "PASS reaches tier 2, not the profiles"
    );
    // A PASS through every tier reaches the profiles.
    set(vec![pass22, END_DENY], vec![allow_all]);
    assert_eq!(v(&n, 1, Direction::Rx, &ssh), Verdict::Allow);
    // A tier whose default is Pass lets an undecided packet on to the next tier.
    set(vec![allow80, END_PASS, deny22, END_DENY], vec![allow_all]);
    assert_eq!(v(&n, 1, Direction::Rx, &ssh), Verdict::Deny);
    assert_eq!(v(&n, 1, Direction::Rx, &dns), Verdict::Deny, "tier 2's end");
    set(vec![allow80, END_PASS], vec![allow_all]);
    assert_eq!(
        v(&n, 1, Direction::Rx, &dns),
        Verdict::Allow,
        "to the profiles"
    );
    // Without markers, npol's flat list: PASS skips every later policy.
    set(vec![pass22, deny22], vec![allow_all]);
    assert_eq!(v(&n, 1, Direction::Rx, &ssh), Verdict::Allow);
    // Markers are not policies to look up; an unknown id still is an error.
    assert!(n.configure(1, conf(vec![12345], vec![], vec![])).is_err());
}

/// An edit that does not touch an ipset shares it with the tables before; one that changes it
/// copies it, and the tables workers still hold keep the old members.
#[test]
fn ipsets_are_shared_between_versions_until_changed() {
    let n = Npol::default();
    let s = n.ipset_create(IpSetKind::Ip);
    let members: Vec<Member> = (0..1000u32)
        .map(|i| Member::Ip(IpAddr::from((0xc612_0000 | i).to_be_bytes())))
        .collect();
    n.ipset_add_del(s, true, &members).unwrap();
    let before = n.tables.load();
    n.rule_create(rule(Action::Allow, vec![], vec![])).unwrap();
    let after = n.tables.load();
    assert!(
        Arc::ptr_eq(&before.ipsets[&s], &after.ipsets[&s]),
        "not copied"
    );
    n.ipset_add_del(s, false, &members[..1]).unwrap();
    let changed = n.tables.load();
    assert!(
        !Arc::ptr_eq(&after.ipsets[&s], &changed.ipsets[&s]),
        "copied on write"
    );
    assert_eq!(
        (after.ipsets[&s].len(), changed.ipsets[&s].len()),
        (1000, 999)
    );
}

/// A policy of one inbound and one outbound rule, both `action` on TCP dport `port`.
fn port_policy(n: &Npol, action: Action, port: u16) -> u32 {
    let r = n
        .rule_create(rule(
            action,
            vec![filter(FilterKind::L4Proto, 6, true)],
            vec![entry(false, false, MatchData::PortRange(port, port))],
        ))
        .unwrap();
    n.policy_create(Policy {
        inbound: vec![r],
        outbound: vec![r],
    })
    .unwrap()
}

fn host(rx: Vec<u32>, tx: Vec<u32>) -> IfConfig {
    IfConfig {
        invert_rx_tx: true,
        ..conf(rx, tx, vec![])
    }
}

#[test]
fn sections_cut_a_list_at_its_markers() {
    use section::{END_PRE_DNAT as P, END_UNTRACKED as U};
    let s = sections(&[1, 2, U, 3, P, 4]);
    assert_eq!(
        (s.untracked, s.prednat, s.normal),
        (&[1, 2][..], &[3][..], &[4][..])
    );
    let s = sections(&[3, P, 4, 5]);
    assert_eq!(
        (s.untracked, s.prednat, s.normal),
        (&[][..], &[3][..], &[4, 5][..])
    );
    let s = sections(&[1, U]);
    assert_eq!(
        (s.untracked, s.prednat, s.normal),
        (&[1][..], &[][..], &[][..])
    );
    let s = sections(&[1, 2]);
    assert_eq!(
        (s.untracked, s.prednat, s.normal),
        (&[][..], &[][..], &[1, 2][..])
    );
}

#[test]
fn misplaced_section_markers_are_refused_and_change_nothing() {
    use section::{END_PRE_DNAT as P, END_UNTRACKED as U};
    let n = Npol::default();
    let a = port_policy(&n, Action::Allow, 22);
    let good = host(vec![a, U, a], vec![a, U, a, P, a]);
    n.configure(3, good.clone()).unwrap();
    let bad = [
        (
            "on a pod (no invert_rx_tx)",
            conf(vec![a, U, a], vec![], vec![]),
        ),
        ("repeated", host(vec![], vec![a, U, a, U, a])),
        ("pre-DNAT repeated", host(vec![], vec![a, P, a, P])),
        ("out of order", host(vec![], vec![a, P, a, U, a])),
        (
            "pre-DNAT in the list sent packets walk",
            host(vec![a, P, a], vec![]),
        ),
        (
            "in the profiles",
            IfConfig {
                profiles: vec![a, U],
                ..host(vec![], vec![])
            },
        ),
        (
            "a tier marker in a section",
            host(vec![], vec![a, tier::END_DENY, U, a]),
        ),
    ];
    for (why, c) in bad {
        assert!(
            matches!(n.configure(3, c), Err(NpolError::Invalid(_))),
            "{why}"
        );
        assert_eq!(*n.tables.load().ifaces[&3], good, "{why}: unchanged");
    }
    // On a pod an untracked marker is refused even next to valid tier markers.
    assert!(n.configure(4, conf(vec![a, U], vec![], vec![])).is_err());
    assert!(!n.tables.load().ifaces.contains_key(&4));
}

#[test]
fn stages_decide_first_and_normal_policies_skip_the_sections() {
    use section::{END_PRE_DNAT as P, END_UNTRACKED as U};
    let n = Npol::default();
    let allow22 = port_policy(&n, Action::Allow, 22);
    let deny23 = port_policy(&n, Action::Deny, 23);
    let allow80 = port_policy(&n, Action::Allow, 80);
    let allow_all = {
        let r = n.rule_create(rule(Action::Allow, vec![], vec![])).unwrap();
        n.policy_create(Policy {
            inbound: vec![r],
            outbound: vec![r],
        })
        .unwrap()
    };
    // Received packets on a host endpoint walk the tx list.
    n.configure(
        3,
        host(
            vec![deny23, U],
            vec![allow22, deny23, U, allow80, P, allow_all],
        ),
    )
    .unwrap();
    let t = n.tables.load();
    let sv = |d, st, port| stage_verdict(&t, 3, d, st, &tcp("198.18.0.1", 999, "198.19.0.1", port));
    assert_eq!(
        sv(Direction::Rx, Stage::Untracked, 22),
        Some(Verdict::Allow)
    );
    assert_eq!(sv(Direction::Rx, Stage::Untracked, 23), Some(Verdict::Deny));
    assert_eq!(
        sv(Direction::Rx, Stage::Untracked, 80),
        None,
        "no match: next stage"
    );
    assert_eq!(sv(Direction::Rx, Stage::PreDnat, 80), Some(Verdict::Allow));
    assert_eq!(sv(Direction::Rx, Stage::PreDnat, 22), None);
    assert_eq!(sv(Direction::Tx, Stage::Untracked, 23), Some(Verdict::Deny));
    assert_eq!(
        sv(Direction::Tx, Stage::PreDnat, 80),
        None,
        "no pre-DNAT on tx"
    );
    // The normal stage is only what follows the markers: tx's is empty (default deny), rx's
    // allows all, port 23 too, though the untracked section denies it.
    assert_eq!(
        v(
            &n,
            3,
            Direction::Rx,
            &tcp("198.18.0.1", 9, "198.19.0.1", 23)
        ),
        Verdict::Allow
    );
    assert_eq!(
        v(
            &n,
            3,
            Direction::Tx,
            &tcp("198.18.0.1", 9, "198.19.0.1", 22)
        ),
        Verdict::Deny
    );
    let c = &t.ifaces[&3];
    assert!(
        c.has_stage(Direction::Rx, Stage::Untracked) && c.has_stage(Direction::Rx, Stage::PreDnat)
    );
    assert!(
        c.has_stage(Direction::Tx, Stage::Untracked) && !c.has_stage(Direction::Tx, Stage::PreDnat)
    );
    // No sections: no stage verdict, and the flat list as before.
    n.configure(4, host(vec![], vec![allow22])).unwrap();
    let t = n.tables.load();
    assert_eq!(
        stage_verdict(
            &t,
            4,
            Direction::Rx,
            Stage::Untracked,
            &tcp("198.18.0.1", 9, "198.19.0.1", 22)
        ),
        None
    );
    assert!(!t.ifaces[&4].has_stage(Direction::Rx, Stage::PreDnat));
    assert_eq!(
        v(
            &n,
            4,
            Direction::Rx,
            &tcp("198.18.0.1", 9, "198.19.0.1", 22)
        ),
        Verdict::Allow
    );
}

/// A live restart's restore: the ids as given, the next ids the lowest free ones, the index
/// built; a reference to what is not there or a repeated id refuses the whole, changing
/// nothing.
#[test]
fn restore_keeps_ids_and_refuses_a_bad_reference_whole() {
    let n = Npol::default();
    let rule = |action, data| Rule {
        action,
        filters: vec![],
        entries: vec![entry(true, false, data)],
    };
    let cfg = IfConfig {
        rx_policies: vec![4],
        tx_policies: vec![],
        profiles: vec![],
        invert_rx_tx: false,
        policy_default_rx: PolicyDefault::Allow,
        policy_default_tx: PolicyDefault::Allow,
        profile_default_rx: PolicyDefault::Allow,
        profile_default_tx: PolicyDefault::Allow,
    };
    let policy = |r| Policy {
        inbound: vec![r],
        outbound: vec![],
    };
    let sets = || vec![(3, IpSetKind::Ip, vec![Member::Ip(ip("198.18.0.1"))])];
    // Rule 5 names ipset 9, which is not there.
    let e = n
        .restore(
            sets(),
            vec![(5, rule(Action::Deny, MatchData::IpSet(9)))],
            vec![(4, policy(5))],
            vec![(2, cfg.clone())],
        )
        .unwrap_err();
    assert_eq!(e, NpolError::NoSuchIpset(9));
    assert!(n.tables.load().ipsets.is_empty(), "nothing applied");
    let e = n
        .restore(
            sets(),
            vec![(5, rule(Action::Deny, MatchData::IpSet(3)))],
            vec![(4, policy(5)), (4, policy(5))],
            vec![],
        )
        .unwrap_err();
    assert!(matches!(e, NpolError::Invalid(_)), "{e}");
    n.restore(
        sets(),
        vec![(5, rule(Action::Deny, MatchData::IpSet(3)))],
        vec![(4, policy(5))],
        vec![(2, cfg)],
    )
    .unwrap();
    assert_eq!(
        v(
            &n,
            2,
            Direction::Rx,
            &tcp("198.18.0.1", 9, "198.19.0.1", 22)
        ),
        Verdict::Deny
    );
    assert!(n.tables.load().index.contains_key(&4));
    assert_eq!(n.ipset_create(IpSetKind::Net), 0);
    assert_eq!(
        n.rule_create(rule(Action::Allow, MatchData::IpSet(3))),
        Ok(0)
    );
    assert_eq!(n.policy_delete(4), Err(NpolError::InUse("policy", 4)));
    // Only into empty tables.
    let again = n.restore(vec![], vec![], vec![], vec![]);
    assert!(matches!(again, Err(NpolError::Invalid(_))));
}

/// The verdict's dense copies of the interface and index maps follow each edit (a policy
/// updated, an interface unconfigured), and ids past them (a restore may name any) are still
/// found in the maps.
#[test]
fn dense_copies_follow_edits_and_large_ids_use_the_maps() {
    let n = Npol::default();
    let p = tcp("198.18.0.1", 9, "198.19.0.1", 22);
    let r = |a| {
        rule(
            a,
            vec![],
            vec![entry(true, false, MatchData::Cidr(net("198.18.0.0/24")))],
        )
    };
    let policy = |r| Policy {
        inbound: vec![r],
        outbound: vec![],
    };
    let big = DENSE_IDS + 7;
    n.restore(
        vec![],
        vec![(1, r(Action::Allow)), (big, r(Action::Deny))],
        vec![(2, policy(1)), (big, policy(big))],
        vec![
            (3, conf(vec![2], vec![], vec![])),
            (big + 1, conf(vec![big], vec![], vec![])),
        ],
    )
    .unwrap();
    let t = n.tables.load();
    assert!(
        matches!(t.dense_ifaces.get(3), Some(Some(_))),
        "a dense copy"
    );
    assert!(
        matches!(t.dense_index.get(2), Some(Some(_))),
        "a dense copy"
    );
    assert!(t.dense_index.len() <= DENSE_IDS as usize);
    assert_eq!(v(&n, 3, Direction::Rx, &p), Verdict::Allow);
    assert_eq!(v(&n, big + 1, Direction::Rx, &p), Verdict::Deny);
    n.policy_update(2, policy(big)).unwrap();
    assert_eq!(v(&n, 3, Direction::Rx, &p), Verdict::Deny, "the new index");
    assert!(n.unconfigure(3));
    assert_eq!(v(&n, 3, Direction::Rx, &p), Verdict::Allow, "unconfigured");
}
