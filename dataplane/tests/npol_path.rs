//! npol through the whole graph: a pod (pg0) whose egress (rx) and ingress (tx) are policed,
//! and a server behind pg1. Allowed flows pass and their replies come back (also through a
//! second worker, the flow cache being shared); denied flows are dropped under "policy deny";
//! unsolicited ingress meets the tx default; ICMP is matched on its real type; an update
//! reaches new flows only; a service's replies, un-NATed by cnat, are replies too, also from
//! a backend whose egress denies; IPv6 and a truncated packet. Through a service, the allows
//! copied onto cnat's sessions: never from a recycled session, voided by a flush, and an
//! update still reaching new flows only. Without cnat, the workers' front caches (rx and tx)
//! never outlive the shared entry they copy; IPv6 flows meet them too, and a policy or ipset
//! edit, a purge and an interface's reconfiguration reach them as they reach the shared table.

mod common;
use common::*;
use etherparse::PacketBuilder;
use rvpp_dataplane::buffer::BufferPool;
use rvpp_dataplane::cnat::session::{stage, FlowKey, Session};
use rvpp_dataplane::cnat::translation::{Endpoint, PathEp, Translation};
use rvpp_dataplane::cnat::Cnat;
use rvpp_dataplane::feature::FeatureTables;
use rvpp_dataplane::forwarding::{Forwarding, Prefix};
use rvpp_dataplane::graph::DeviceNodes;
use rvpp_dataplane::nodes::npol::{self as npol_nodes, error, SessionVerdicts};
use rvpp_dataplane::nodes::standard_with;
use rvpp_dataplane::npol::ipset::{IpSetKind, Member};
use rvpp_dataplane::npol::rule::{Action, Entry, Filter, FilterKind, MatchData, Rule};
use rvpp_dataplane::npol::{Direction, IfConfig, Net, Npol, Policy, PolicyDefault};
use rvpp_dataplane::runtime::Runtime;
use rvpp_dataplane::tables::Shared;
use std::sync::Arc;

const POD_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xb0];
const SRV_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xb1];
const POD: [u8; 4] = [198, 18, 0, 2];
const SRV: [u8; 4] = [198, 19, 0, 2];
/// fd00:0:0:18::2 and fd00:0:0:19::2.
const POD6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0x18, 0, 0, 0, 0, 0, 0, 0, 2];
const SRV6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0x19, 0, 0, 0, 0, 0, 0, 0, 2];

struct Lab {
    /// The tables' writer, kept for the test's length.
    fwd: Forwarding,
    cnat: Arc<Cnat>,
    pool: Arc<BufferPool>,
    npol: Arc<Npol>,
    rt: Runtime,
    rt2: Runtime,
    out0: Frames,
    out1: Frames,
    if0: u32,
    if1: u32,
}

fn lab() -> Lab {
    let pool = BufferPool::with_backing(4096, 2048, false).unwrap();
    let shared = Shared::new();
    let mut fwd = Forwarding::new(shared.clone());
    let if0 = fwd.interface_add("pg0", "pg", MAC0, true, 1500).unwrap();
    let if1 = fwd.interface_add("pg1", "pg", MAC1, true, 1500).unwrap();
    for (i, p4, p6) in [
        (if0, "198.18.0.1/24", "fd00:0:0:18::1/64"),
        (if1, "198.19.0.1/24", "fd00:0:0:19::1/64"),
    ] {
        fwd.address_add(i, Prefix::parse(p4).unwrap()).unwrap();
        fwd.enable_ip6(i, true).unwrap();
        fwd.address_add(i, Prefix::parse(p6).unwrap()).unwrap();
        fwd.set_admin_up(i, true).unwrap();
    }
    for (i, a, m) in [
        (if0, "198.18.0.2", POD_MAC),
        (if1, "198.19.0.2", SRV_MAC),
        (if0, "fd00:0:0:18::2", POD_MAC),
        (if1, "fd00:0:0:19::2", SRV_MAC),
    ] {
        fwd.neighbor_add(i, a.parse().unwrap(), m, true).unwrap();
    }
    let tables = FeatureTables::default();
    let npol = Arc::new(Npol::with_max_flows(1024));
    tables.insert(npol.clone());
    let graph = || {
        standard_with(&tables)
            .device(DeviceNodes::tx_only("pg-tx"))
            .build()
            .unwrap()
    };
    fwd.use_features(graph().features);
    npol_nodes::feature_enable(&mut fwd, if0, true).unwrap();
    let mut rt = Runtime::new(graph(), pool.local(), shared.clone(), 0, "t".into()).unwrap();
    let mut rt2 = Runtime::new(graph(), pool.local(), shared, 1, "t2".into()).unwrap();
    let (out0, out1) = (Frames::default(), Frames::default());
    for r in [&mut rt, &mut rt2] {
        r.set_tx(if0, Box::new(Capture(out0.clone()))).unwrap();
        r.set_tx(if1, Box::new(Capture(out1.clone()))).unwrap();
    }
    Lab {
        fwd,
        cnat: tables.get::<Cnat>(),
        pool,
        npol,
        rt,
        rt2,
        out0,
        out1,
        if0,
        if1,
    }
}

impl Lab {
    fn send_on(rt: &mut Runtime, on: u32, frame: &[u8]) {
        let bufs = rt.buffers();
        let bi = bufs.alloc_from_bytes(frame).unwrap();
        bufs.meta(bi).rx_sw_if_index = on;
        rt.inject("ethernet-input", &[bi]).unwrap();
    }
    fn send(&mut self, on: u32, frame: &[u8]) {
        Self::send_on(&mut self.rt, on, frame)
    }
    /// How many frames left on `f` since the last call.
    fn count(f: &Frames) -> usize {
        std::mem::take(&mut *f.lock().unwrap()).len()
    }
    fn counter(&self, node: &str, code: u16) -> u64 {
        let i = self.rt.graph().error_index(node, code).unwrap();
        self.rt.stats().errors[i as usize].get()
    }
    fn no_leaks(mut self) {
        self.rt.buffers().flush();
        self.rt2.buffers().flush();
        drop(self.rt);
        drop(self.rt2);
        assert_eq!(self.pool.in_use(), 0, "buffers leaked");
    }
}

fn tcp4(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, from: [u8; 6], to: [u8; 6]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(from, to)
        .ipv4(src, dst, 64)
        .tcp(sp, dp, 1, 1000)
        .write(&mut v, b"x")
        .unwrap();
    v
}

fn echo4(src: [u8; 4], dst: [u8; 4], reply: bool, from: [u8; 6], to: [u8; 6]) -> Vec<u8> {
    let mut v = Vec::new();
    let b = PacketBuilder::ethernet2(from, to).ipv4(src, dst, 64);
    let b = if reply {
        b.icmpv4_echo_reply(7, 1)
    } else {
        b.icmpv4_echo_request(7, 1)
    };
    b.write(&mut v, b"ping").unwrap();
    v
}

fn dport(lo: u16, hi: u16) -> Entry {
    Entry {
        is_src: false,
        is_not: false,
        data: MatchData::PortRange(lo, hi),
    }
}

fn proto(p: u32) -> Filter {
    Filter {
        kind: FilterKind::L4Proto,
        value: p,
        should_match: true,
    }
}

/// `rx_policy` on the pod's rx; every default denies.
fn deny_by_default(rx_policy: u32) -> IfConfig {
    IfConfig {
        rx_policies: vec![rx_policy],
        tx_policies: vec![],
        profiles: vec![],
        invert_rx_tx: false,
        policy_default_rx: PolicyDefault::Deny,
        policy_default_tx: PolicyDefault::Deny,
        profile_default_rx: PolicyDefault::Deny,
        profile_default_tx: PolicyDefault::Deny,
    }
}

/// The pod may open TCP to port 80 and ping (echo request, by its real ICMP type); nothing
/// may open a flow towards it.
fn police_pod(l: &Lab) -> (u32, u32) {
    let n = &l.npol;
    let web = n
        .rule_create(Rule {
            action: Action::Allow,
            filters: vec![proto(6)],
            entries: vec![dport(80, 80)],
        })
        .unwrap();
    let ping = n
        .rule_create(Rule {
            action: Action::Allow,
            filters: vec![Filter {
                kind: FilterKind::IcmpType,
                value: 8,
                should_match: true,
            }],
            entries: vec![],
        })
        .unwrap();
    let egress = n
        .policy_create(Policy {
            inbound: vec![web, ping],
            outbound: vec![],
        })
        .unwrap();
    n.configure(l.if0, deny_by_default(egress)).unwrap();
    (web, egress)
}

#[test]
fn allowed_flows_pass_with_their_replies_and_denied_ones_drop() {
    let mut l = lab();
    police_pod(&l);
    let (if0, if1) = (l.if0, l.if1);
    l.send(if0, &tcp4(POD, SRV, 40000, 80, POD_MAC, MAC0));
    assert_eq!(Lab::count(&l.out1), 1, "egress to :80 allowed");
    assert_eq!(l.counter("npol-rx-ip4", error::NEW_ALLOWED), 1);
    // The reply passes the pod's tx (whose default denies), on either worker.
    l.send(if1, &tcp4(SRV, POD, 80, 40000, SRV_MAC, MAC1));
    assert_eq!(Lab::count(&l.out0), 1, "reply allowed");
    Lab::send_on(&mut l.rt2, if1, &tcp4(SRV, POD, 80, 40000, SRV_MAC, MAC1));
    assert_eq!(Lab::count(&l.out0), 1, "reply allowed on the other worker");
    // Later packets of the flow follow the cache: no new evaluation.
    l.send(if0, &tcp4(POD, SRV, 40000, 80, POD_MAC, MAC0));
    assert_eq!(Lab::count(&l.out1), 1);
    assert_eq!(l.counter("npol-rx-ip4", error::NEW_ALLOWED), 1);

    // Port 81 is not allowed: dropped, and its second packet by the cached deny.
    for _ in 0..2 {
        l.send(if0, &tcp4(POD, SRV, 40001, 81, POD_MAC, MAC0));
    }
    assert_eq!(Lab::count(&l.out1), 0, "egress to :81 denied");
    assert_eq!(l.counter("npol-rx-ip4", error::NEW_DENIED), 1);
    assert_eq!(l.counter("npol-rx-ip4", error::DENIED), 2);

    // Unsolicited ingress meets the tx default (deny).
    l.send(if1, &tcp4(SRV, POD, 5555, 22, SRV_MAC, MAC1));
    assert_eq!(Lab::count(&l.out0), 0, "ingress denied");
    assert_eq!(l.counter("npol-tx-ip4", error::DENIED), 1);
    // A server's "reply" to a flow the pod never opened is not a reply.
    l.send(if1, &tcp4(SRV, POD, 81, 40001, SRV_MAC, MAC1));
    assert_eq!(Lab::count(&l.out0), 0, "reply to a denied flow denied");
    l.no_leaks();
}

#[test]
fn icmp_is_matched_on_its_real_type() {
    let mut l = lab();
    police_pod(&l);
    let (if0, if1) = (l.if0, l.if1);
    // An echo reply from the pod (type 0) is not an echo request (type 8), though its id and
    // sequence are the same.
    l.send(if0, &echo4(POD, SRV, true, POD_MAC, MAC0));
    assert_eq!(Lab::count(&l.out1), 0, "echo reply from the pod denied");
    l.npol.flush_flows();
    l.send(if0, &echo4(POD, SRV, false, POD_MAC, MAC0));
    assert_eq!(Lab::count(&l.out1), 1, "echo request allowed");
    l.send(if1, &echo4(SRV, POD, true, SRV_MAC, MAC1));
    assert_eq!(Lab::count(&l.out0), 1, "its reply comes back");
    l.no_leaks();
}

#[test]
fn an_update_reaches_new_flows_only() {
    let mut l = lab();
    let (web, egress) = police_pod(&l);
    let (if0, if1) = (l.if0, l.if1);
    l.send(if0, &tcp4(POD, SRV, 40000, 80, POD_MAC, MAC0));
    assert_eq!(Lab::count(&l.out1), 1);
    // Port 80 denied from now on.
    let deny = l
        .npol
        .rule_create(Rule {
            action: Action::Deny,
            filters: vec![],
            entries: vec![dport(80, 80)],
        })
        .unwrap();
    l.npol
        .policy_update(
            egress,
            Policy {
                inbound: vec![deny, web],
                outbound: vec![],
            },
        )
        .unwrap();
    l.send(if0, &tcp4(POD, SRV, 40000, 80, POD_MAC, MAC0));
    assert_eq!(
        Lab::count(&l.out1),
        1,
        "the established flow keeps its verdict"
    );
    l.send(if1, &tcp4(SRV, POD, 80, 40000, SRV_MAC, MAC1));
    assert_eq!(Lab::count(&l.out0), 1, "and its replies");
    l.send(if0, &tcp4(POD, SRV, 40002, 80, POD_MAC, MAC0));
    assert_eq!(Lab::count(&l.out1), 0, "a new flow sees the update");
    // Clearing the cache re-evaluates the established flow too.
    l.npol.flush_flows();
    l.send(if0, &tcp4(POD, SRV, 40000, 80, POD_MAC, MAC0));
    assert_eq!(Lab::count(&l.out1), 0);
    l.no_leaks();
}

#[test]
fn ip6_by_cidr_and_a_truncated_packet() {
    let mut l = lab();
    let n = &l.npol;
    let to_srv = n
        .rule_create(Rule {
            action: Action::Allow,
            filters: vec![proto(17)],
            entries: vec![Entry {
                is_src: false,
                is_not: false,
                data: MatchData::Cidr(Net::new("fd00:0:0:19::".parse().unwrap(), 64).unwrap()),
            }],
        })
        .unwrap();
    let p = n
        .policy_create(Policy {
            inbound: vec![to_srv],
            outbound: vec![],
        })
        .unwrap();
    let mut c = deny_by_default(p);
    n.configure(l.if0, c.clone()).unwrap();
    let (if0, if1) = (l.if0, l.if1);
    let udp6 = |src, dst, sp, dp, from, to| {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(from, to)
            .ipv6(src, dst, 64)
            .udp(sp, dp)
            .write(&mut v, b"q")
            .unwrap();
        v
    };
    l.send(if0, &udp6(POD6, SRV6, 5000, 53, POD_MAC, MAC0));
    assert_eq!(Lab::count(&l.out1), 1, "udp to the server's /64 allowed");
    l.send(if1, &udp6(SRV6, POD6, 53, 5000, SRV_MAC, MAC1));
    assert_eq!(Lab::count(&l.out0), 1, "reply allowed");
    l.send(if0, &tcp4(POD, SRV, 40000, 80, POD_MAC, MAC0));
    assert_eq!(Lab::count(&l.out1), 0, "tcp denied by the rx default");

    // Allow everything, then send an IPv4 packet whose TCP header is cut short.
    c.policy_default_rx = PolicyDefault::Allow;
    l.npol.configure(l.if0, c).unwrap();
    let mut t = tcp4(POD, SRV, 40003, 80, POD_MAC, MAC0);
    let cut = 14 + 20 + 8;
    t.truncate(cut);
    t[16..18].copy_from_slice(&((cut - 14) as u16).to_be_bytes());
    t[24..26].copy_from_slice(&[0, 0]);
    let sum = rvpp_dataplane::wire::checksum(&t[14..34]);
    t[24..26].copy_from_slice(&sum.to_be_bytes());
    l.send(if0, &t);
    assert_eq!(Lab::count(&l.out1), 0, "truncated dropped");
    assert_eq!(l.counter("npol-rx-ip4", error::TRUNCATED), 1);
    l.no_leaks();
}

#[test]
fn replies_through_a_service_vip_are_replies() {
    let mut l = lab();
    police_pod(&l);
    let (if0, if1) = (l.if0, l.if1);
    for i in [if0, if1] {
        rvpp_dataplane::nodes::cnat::feature_enable(&mut l.fwd, i, true).unwrap();
    }
    const VIP: [u8; 4] = [198, 19, 255, 1];
    let ep = |a: [u8; 4], port| Endpoint {
        addr: 0xffff_0000_0000 | u32::from_be_bytes(a) as u128,
        port,
        ip6: false,
    };
    l.cnat.translation_update(Translation {
        vip: ep(VIP, 80),
        proto: 6,
        paths: vec![PathEp {
            dst: ep(SRV, 80),
            ..Default::default()
        }],
        ..Default::default()
    });
    // The pod opens VIP:80; policy sees the backend (port 80 allowed).
    l.send(if0, &tcp4(POD, VIP, 41000, 80, POD_MAC, MAC0));
    let sent = take(&l.out1);
    assert_eq!(sent.len(), 1, "DNATed to the backend and allowed");
    // An ICMP error from the backend, which cnat translates back to quote the packet the pod
    // sent to the VIP: an error about an allowed flow.
    l.send(if1, &port_unreachable(&sent[0]));
    assert_eq!(
        Lab::count(&l.out0),
        1,
        "the translated error reaches the pod"
    );
    // The backend answers; cnat un-NATs it to come from the VIP before the pod's tx, whose
    // default denies: it passes as the reply it is.
    l.send(if1, &tcp4(SRV, POD, 80, 41000, SRV_MAC, MAC1));
    assert_eq!(Lab::count(&l.out0), 1, "the un-NATed reply passes");
    // Unsolicited from the VIP's address: denied.
    l.send(if1, &tcp4(VIP, POD, 80, 41001, SRV_MAC, MAC1));
    assert_eq!(Lab::count(&l.out0), 0);
    l.no_leaks();
}

/// An ICMP error from `SRV` to the pod quoting `quoted` (a frame the pod sent).
fn port_unreachable(quoted: &[u8]) -> Vec<u8> {
    let mut err = Vec::new();
    PacketBuilder::ethernet2(SRV_MAC, MAC1)
        .ipv4(SRV, POD, 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Port,
        ))
        .write(&mut err, &quoted[14..])
        .unwrap();
    err
}

#[test]
fn icmp_errors_about_allowed_flows_pass() {
    let mut l = lab();
    police_pod(&l);
    let (if0, if1) = (l.if0, l.if1);
    let sent = tcp4(POD, SRV, 40000, 80, POD_MAC, MAC0);
    l.send(if0, &sent);
    assert_eq!(Lab::count(&l.out1), 1);
    l.send(if1, &port_unreachable(&sent));
    assert_eq!(
        Lab::count(&l.out0),
        1,
        "an error about an allowed flow reaches the pod"
    );
    // About a flow the pod never opened: the tx default denies it.
    let never = tcp4(POD, SRV, 40009, 80, POD_MAC, MAC0);
    l.send(if1, &port_unreachable(&never));
    assert_eq!(
        Lab::count(&l.out0),
        0,
        "an error about another flow is denied"
    );
    l.no_leaks();
}

/// The pod's flow to the server's :80 as npol-rx caches it on `if0`.
fn rx_key(if0: u32) -> FlowKey {
    FlowKey {
        fib: if0 as u16,
        ..session_key(POD, SRV, 40000, 80)
    }
}

#[test]
fn a_workers_front_cache_never_outlives_the_shared_verdict() {
    let mut l = lab();
    let (web, egress) = police_pod(&l);
    let if0 = l.if0;
    let pkt = tcp4(POD, SRV, 40000, 80, POD_MAC, MAC0);
    // The first packet judges the flow, the next ones on each worker find the shared entry
    // and fill that worker's front cache, which the rest then meet.
    for _ in 0..3 {
        l.send(if0, &pkt);
        Lab::send_on(&mut l.rt2, if0, &pkt);
    }
    assert_eq!(Lab::count(&l.out1), 6);
    assert_eq!(l.counter("npol-rx-ip4", error::NEW_ALLOWED), 1);
    deny_port_80(&l, web, egress);
    l.send(if0, &pkt);
    assert_eq!(Lab::count(&l.out1), 1, "established: keeps its verdict");

    // The shared entry removed alone (no flush, no epoch): the flow is judged again.
    assert!(l.npol.flows.remove(&rx_key(if0)).is_some());
    l.send(if0, &pkt);
    assert_eq!(Lab::count(&l.out1), 0, "judged again, now denied");
    assert_eq!(l.counter("npol-rx-ip4", error::NEW_DENIED), 1);

    // Its slot retaken by an allow of the same key, then that replaced by the deny again:
    // each worker meets what the slot holds now, not what its front cache copied.
    let k = rx_key(if0);
    let deny = l.npol.flows.lookup(&k).unwrap().session;
    let allow = Session { flags: 1, ..deny };
    l.npol.flows.remove(&k);
    l.npol.flows.insert(&k, &allow).unwrap();
    for _ in 0..2 {
        l.send(if0, &pkt);
        Lab::send_on(&mut l.rt2, if0, &pkt);
    }
    assert_eq!(Lab::count(&l.out1), 4, "the allow put back is met");
    l.npol.flows.remove(&k);
    l.npol.flows.insert(&k, &deny).unwrap();
    l.send(if0, &pkt);
    Lab::send_on(&mut l.rt2, if0, &pkt);
    assert_eq!(Lab::count(&l.out1), 0, "a reused slot's old allow is not");

    // A flush voids what both workers copied.
    l.npol.flows.remove(&k);
    l.npol.flows.insert(&k, &allow).unwrap();
    for _ in 0..2 {
        l.send(if0, &pkt);
        Lab::send_on(&mut l.rt2, if0, &pkt);
    }
    assert_eq!(Lab::count(&l.out1), 4);
    l.npol.flush_flows();
    l.send(if0, &pkt);
    Lab::send_on(&mut l.rt2, if0, &pkt);
    assert_eq!(Lab::count(&l.out1), 0, "flushed: judged again, denied");

    l.no_leaks();
}

/// A worker whose packets miss its front cache (here each one a new flow, in a vector of its
/// own) leaves the cache alone for a back-off once a window of them misses, then probes it
/// again, and its flows meet it.
#[test]
fn a_front_cache_that_misses_is_left_alone_for_a_while() {
    let mut l = lab();
    police_pod(&l);
    let if0 = l.if0;
    for i in 0..npol_nodes::FRONT_WINDOW {
        l.send(if0, &tcp4(POD, SRV, 1024 + i as u16, 80, POD_MAC, MAC0));
        if i % 1024 == 0 {
            Lab::count(&l.out1);
        }
    }
    assert_eq!(
        l.counter("npol-rx-ip4", error::FRONT_BYPASS),
        0,
        "a window probes"
    );
    assert_eq!(l.front_hits("npol-rx-ip4"), 0);
    let pkt = tcp4(POD, SRV, 40000, 80, POD_MAC, MAC0);
    for _ in 0..npol_nodes::FRONT_BACKOFF {
        l.send(if0, &pkt);
    }
    Lab::count(&l.out1);
    let bypassed = l.counter("npol-rx-ip4", error::FRONT_BYPASS);
    assert_eq!(
        bypassed,
        npol_nodes::FRONT_BACKOFF as u64,
        "each vector of the back-off"
    );
    assert_eq!(l.front_hits("npol-rx-ip4"), 0, "no probe meanwhile");
    // The window's flows filled the shared table (1024): room for this one's allow again.
    l.npol.flush_flows();
    for _ in 0..3 {
        l.send(if0, &pkt);
    }
    assert_eq!(Lab::count(&l.out1), 3);
    assert!(l.front_hits("npol-rx-ip4") >= 1, "probed again, and met");
    assert_eq!(l.counter("npol-rx-ip4", error::FRONT_BYPASS), bypassed);
    l.no_leaks();
}

#[test]
fn npol_tx_front_cache_never_outlives_the_cached_reply() {
    let mut l = lab();
    police_pod(&l);
    let (if0, if1) = (l.if0, l.if1);
    l.send(if0, &tcp4(POD, SRV, 40005, 80, POD_MAC, MAC0));
    assert_eq!(Lab::count(&l.out1), 1);
    let reply = tcp4(SRV, POD, 80, 40005, SRV_MAC, MAC1);
    for _ in 0..3 {
        l.send(if1, &reply);
    }
    assert_eq!(Lab::count(&l.out0), 3, "the reply passes npol-tx");
    let reply_key = FlowKey {
        fib: if0 as u16,
        stage: 1,
        ..session_key(SRV, POD, 80, 40005)
    };
    assert!(l.npol.flows.remove(&reply_key).is_some());
    l.send(if1, &reply);
    assert_eq!(
        Lab::count(&l.out0),
        0,
        "judged again: the tx default denies"
    );
    l.no_leaks();
}

#[test]
fn unconfigure_forgets_the_interface_and_its_flows() {
    let mut l = lab();
    police_pod(&l);
    let if0 = l.if0;
    for _ in 0..2 {
        l.send(if0, &tcp4(POD, SRV, 40001, 81, POD_MAC, MAC0));
    }
    assert_eq!(Lab::count(&l.out1), 0, "denied, then denied from the cache");
    assert!(l.npol.unconfigure(if0));
    assert!(l.npol.flows.is_empty(), "its cached verdicts are gone");
    l.send(if0, &tcp4(POD, SRV, 40001, 81, POD_MAC, MAC0));
    assert_eq!(Lab::count(&l.out1), 1, "no configuration: allowed");
    l.no_leaks();
}

/// `frame` (an IPv4 frame) cut into a first fragment carrying its transport header and a
/// second carrying 8 more bytes, both with IP id `id`.
fn fragments(frame: &[u8], id: u16) -> (Vec<u8>, Vec<u8>) {
    let ip_sum = |f: &mut Vec<u8>| {
        f[24..26].copy_from_slice(&[0, 0]);
        let c = rvpp_dataplane::wire::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
    };
    let mut first = frame[..14 + 20 + 24].to_vec();
    first[16..18].copy_from_slice(&(20u16 + 24).to_be_bytes());
    first[18..20].copy_from_slice(&id.to_be_bytes());
    first[20..22].copy_from_slice(&0x2000u16.to_be_bytes()); // more fragments, offset 0
    ip_sum(&mut first);
    let mut second = first[..14 + 20].to_vec();
    second.extend_from_slice(&[0xab; 8]);
    second[16..18].copy_from_slice(&(20u16 + 8).to_be_bytes());
    second[20..22].copy_from_slice(&3u16.to_be_bytes()); // offset 24 bytes, last
    ip_sum(&mut second);
    (first, second)
}

#[test]
fn later_fragments_follow_their_first_fragment() {
    let mut l = lab();
    police_pod(&l);
    let if0 = l.if0;
    let big = |dport| {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(POD_MAC, MAC0)
            .ipv4(POD, SRV, 64)
            .tcp(40000, dport, 1, 1000)
            .write(&mut v, &[7u8; 40])
            .unwrap();
        v
    };
    let (first, second) = fragments(&big(80), 0x1234);
    l.send(if0, &first);
    l.send(if0, &second);
    assert_eq!(
        Lab::count(&l.out1),
        2,
        "both fragments of an allowed flow pass"
    );
    let (first, second) = fragments(&big(81), 0x1235);
    l.send(if0, &first);
    l.send(if0, &second);
    assert_eq!(
        Lab::count(&l.out1),
        0,
        "both fragments of a denied flow drop"
    );
    // A later fragment whose first was never seen: no ports, so the port-80 rule cannot
    // match it and the default denies it.
    let (_, stray) = fragments(&big(80), 0x1236);
    l.send(if0, &stray);
    assert_eq!(Lab::count(&l.out1), 0, "a stray fragment is judged alone");
    l.no_leaks();
}

#[test]
fn a_host_endpoint_with_invert_rx_tx() {
    let mut l = lab();
    let (if0, if1) = (l.if0, l.if1);
    npol_nodes::feature_enable(&mut l.fwd, if1, true).unwrap();
    let n = &l.npol;
    // The uplink's ingress policy: received packets walk the tx policies' outbound rules.
    let ssh = n
        .rule_create(Rule {
            action: Action::Allow,
            filters: vec![proto(6)],
            entries: vec![dport(22, 22)],
        })
        .unwrap();
    let p = n
        .policy_create(Policy {
            inbound: vec![],
            outbound: vec![ssh],
        })
        .unwrap();
    let c = IfConfig {
        rx_policies: vec![],
        tx_policies: vec![p],
        invert_rx_tx: true,
        ..deny_by_default(p)
    };
    n.configure(if1, c).unwrap();
    l.send(if1, &tcp4(SRV, POD, 5000, 22, SRV_MAC, MAC1));
    assert_eq!(Lab::count(&l.out0), 1, "ssh in through the uplink allowed");
    l.send(if0, &tcp4(POD, SRV, 22, 5000, POD_MAC, MAC0));
    assert_eq!(
        Lab::count(&l.out1),
        1,
        "its reply leaves through the uplink"
    );
    l.send(if1, &tcp4(SRV, POD, 5000, 23, SRV_MAC, MAC1));
    assert_eq!(Lab::count(&l.out0), 0, "anything else in is denied");
    // Out: tx walks the rx policies (none), then the tx default (deny).
    l.send(if0, &tcp4(POD, SRV, 6000, 443, POD_MAC, MAC0));
    assert_eq!(Lab::count(&l.out1), 0, "new flows out are denied");
    l.no_leaks();
}

// Host endpoints' untracked and pre-DNAT sections: pg1 is the uplink (invert_rx_tx), whose
// received packets walk its tx list. The pod's own policy nodes are off, so that the flow
// cache holds only what the uplink's stages put there.

use rvpp_dataplane::nodes::npol::stage_error;
use rvpp_dataplane::npol::section::{END_PRE_DNAT, END_UNTRACKED};

const UNTRACKED_RX: &str = "npol-untracked-rx-ip4";
const PREDNAT: &str = "npol-prednat-ip4";

/// A policy whose inbound and outbound rules are `action` for TCP to port `port`.
fn port_policy(n: &Npol, action: Action, port: u16) -> u32 {
    let r = n
        .rule_create(Rule {
            action,
            filters: vec![proto(6)],
            entries: vec![dport(port, port)],
        })
        .unwrap();
    n.policy_create(Policy {
        inbound: vec![r],
        outbound: vec![r],
    })
    .unwrap()
}

/// The uplink's configuration: `rx` for packets it sends, `tx` for packets it receives;
/// every default is `default`.
fn uplink_conf(rx: Vec<u32>, tx: Vec<u32>, default: PolicyDefault) -> IfConfig {
    IfConfig {
        rx_policies: rx,
        tx_policies: tx,
        profiles: vec![],
        invert_rx_tx: true,
        policy_default_rx: default,
        policy_default_tx: default,
        profile_default_rx: default,
        profile_default_tx: default,
    }
}

impl Lab {
    /// Configure the uplink as npol_configure_policies does, and turn the pod's policy off.
    fn uplink(&mut self, c: IfConfig) {
        self.npol.configure(self.if1, c.clone()).unwrap();
        npol_nodes::feature_enable(&mut self.fwd, self.if1, true).unwrap();
        npol_nodes::stages_enable(&mut self.fwd, self.if1, Some(&c)).unwrap();
        npol_nodes::feature_enable(&mut self.fwd, self.if0, false).unwrap();
    }
    /// A service VIP:80 (or [VIP6]:80) whose backend is the pod's port 8080, with cnat on both
    /// interfaces.
    fn service(&mut self, vip: u128, backend: u128, ip6: bool) {
        for i in [self.if0, self.if1] {
            rvpp_dataplane::nodes::cnat::feature_enable(&mut self.fwd, i, true).unwrap();
        }
        let ep = |addr, port| Endpoint { addr, port, ip6 };
        self.cnat.translation_update(Translation {
            vip: ep(vip, 80),
            proto: 6,
            paths: vec![PathEp {
                dst: ep(backend, 8080),
                ..Default::default()
            }],
            ..Default::default()
        });
    }
}

fn v4(a: [u8; 4]) -> u128 {
    0xffff_0000_0000 | u32::from_be_bytes(a) as u128
}

fn tcp6(src: [u8; 16], dst: [u8; 16], sp: u16, dp: u16, from: [u8; 6], to: [u8; 6]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(from, to)
        .ipv6(src, dst, 64)
        .tcp(sp, dp, 1, 1000)
        .write(&mut v, b"x")
        .unwrap();
    v
}

#[test]
fn untracked_allow_skips_a_normal_deny_and_caches_nothing() {
    let mut l = lab();
    let ssh = port_policy(&l.npol, Action::Allow, 22);
    // Untracked: ssh in. Normal: nothing, and every default denies.
    l.uplink(uplink_conf(
        vec![],
        vec![ssh, END_UNTRACKED],
        PolicyDefault::Deny,
    ));
    let (if0, if1) = (l.if0, l.if1);
    for _ in 0..2 {
        l.send(if1, &tcp4(SRV, POD, 5000, 22, SRV_MAC, MAC1));
    }
    assert_eq!(
        Lab::count(&l.out0),
        2,
        "untracked allow passes the normal deny"
    );
    assert_eq!(
        l.counter(UNTRACKED_RX, stage_error::ALLOWED),
        2,
        "every packet judged"
    );
    assert_eq!(l.counter("npol-rx-ip4", error::NEW_ALLOWED), 0);
    assert_eq!(
        l.counter("npol-rx-ip4", error::NEW_DENIED),
        0,
        "npol-rx skipped"
    );
    assert!(l.npol.flows.is_empty(), "no verdict cached");
    // Stateless: the reply meets the uplink's own (normal, default deny) policy.
    l.send(if0, &tcp4(POD, SRV, 22, 5000, POD_MAC, MAC0));
    assert_eq!(Lab::count(&l.out1), 0, "no session lets the reply out");
    // What the untracked section does not match goes on to the normal stage: denied.
    l.send(if1, &tcp4(SRV, POD, 5000, 23, SRV_MAC, MAC1));
    assert_eq!(Lab::count(&l.out0), 0);
    assert_eq!(l.counter("npol-rx-ip4", error::NEW_DENIED), 1);
    l.no_leaks();
}

/// Untracked traffic is not NATed (as in Calico's Linux dataplane, where NOTRACK packets skip
/// conntrack and so the NAT table): an untracked allow to a service VIP is not DNATed, and
/// makes no cnat session; the same packet allowed by the normal stage is.
#[test]
fn untracked_allow_skips_cnat_too() {
    const VIP: [u8; 4] = [198, 19, 255, 1];
    let mut l = lab();
    l.service(v4(VIP), v4(POD), false);
    let http = port_policy(&l.npol, Action::Allow, 80);
    l.uplink(uplink_conf(
        vec![],
        vec![http, END_UNTRACKED],
        PolicyDefault::Allow,
    ));
    let if1 = l.if1;
    l.send(if1, &tcp4(SRV, VIP, 5000, 80, SRV_MAC, MAC1));
    assert_eq!(l.counter(UNTRACKED_RX, stage_error::ALLOWED), 1);
    assert_eq!(Lab::count(&l.out0), 0, "not DNATed to the pod");
    assert!(l.cnat.sessions.is_empty(), "no cnat session");
    // Allowed by the normal stage instead (its default), the same packet is DNATed.
    l.uplink(uplink_conf(vec![], vec![], PolicyDefault::Allow));
    l.send(if1, &tcp4(SRV, VIP, 5000, 80, SRV_MAC, MAC1));
    assert_eq!(Lab::count(&l.out0), 1, "DNATed to the pod");
    assert_eq!(l.cnat.sessions.len(), 2);
    l.no_leaks();
}

/// But not on the way out: a pod's packet the uplink's untracked egress section allows is
/// still SNATed (calico's K8S policy, the pod's pool with natOutgoing), as Linux SNATs a
/// forwarded flow whatever raw OUTPUT's untracked rules say.
#[test]
fn untracked_allow_out_keeps_snat() {
    use rvpp_dataplane::cnat::snat::{IfTable, Policy};
    const NODE: [u8; 4] = [198, 19, 0, 1];
    let mut l = lab();
    for i in [l.if0, l.if1] {
        rvpp_dataplane::nodes::cnat::feature_enable(&mut l.fwd, i, true).unwrap();
    }
    let if0 = l.if0;
    l.cnat.snat_edit(|s| {
        s.ip4 = v4(NODE);
        s.policy = Policy::K8s;
        s.tables.insert(IfTable::Pod, if0);
        s.tables.insert(IfTable::IncludeV4, if0);
    });
    let https = port_policy(&l.npol, Action::Allow, 443);
    let src_of = |f: &[u8]| [f[26], f[27], f[28], f[29]];
    // The uplink's sent packets walk its first list (invert_rx_tx).
    l.uplink(uplink_conf(
        vec![https, END_UNTRACKED],
        vec![],
        PolicyDefault::Allow,
    ));
    l.send(if0, &tcp4(POD, SRV, 40000, 443, POD_MAC, MAC0));
    let out = std::mem::take(&mut *l.out1.lock().unwrap());
    assert_eq!(out.len(), 1);
    assert_eq!(l.counter("npol-untracked-tx-ip4", stage_error::ALLOWED), 1);
    assert_eq!(src_of(&out[0]), NODE, "SNATed");
    assert_eq!(
        l.cnat.sessions.len(),
        2,
        "its SNAT session and return entry"
    );
    l.no_leaks();
}

#[test]
fn untracked_deny_drops_even_when_normal_allows() {
    let mut l = lab();
    let telnet = port_policy(&l.npol, Action::Deny, 23);
    // Both directions' untracked sections deny port 23; the defaults allow everything.
    l.uplink(uplink_conf(
        vec![telnet, END_UNTRACKED],
        vec![telnet, END_UNTRACKED],
        PolicyDefault::Allow,
    ));
    let (if0, if1) = (l.if0, l.if1);
    l.send(if1, &tcp4(SRV, POD, 5000, 23, SRV_MAC, MAC1));
    assert_eq!(Lab::count(&l.out0), 0, "untracked deny in");
    assert_eq!(l.counter(UNTRACKED_RX, stage_error::DENIED), 1);
    l.send(if1, &tcp4(SRV, POD, 5000, 24, SRV_MAC, MAC1));
    assert_eq!(Lab::count(&l.out0), 1, "the rest falls through to allow");
    l.send(if0, &tcp4(POD, SRV, 5001, 23, POD_MAC, MAC0));
    assert_eq!(Lab::count(&l.out1), 0, "untracked deny out");
    assert_eq!(l.counter("npol-untracked-tx-ip4", stage_error::DENIED), 1);
    l.no_leaks();
}

#[test]
fn prednat_matches_the_vip_before_dnat() {
    const VIP: [u8; 4] = [198, 19, 255, 1];
    let mut l = lab();
    l.service(v4(VIP), v4(POD), false);
    let n = l.npol.clone();
    let (vip_port, backend_port) = (
        port_policy(&n, Action::Allow, 80),
        port_policy(&n, Action::Allow, 8080),
    );
    l.uplink(uplink_conf(
        vec![],
        vec![vip_port, END_PRE_DNAT],
        PolicyDefault::Deny,
    ));
    let (if0, if1) = (l.if0, l.if1);
    l.send(if1, &tcp4(SRV, VIP, 5000, 80, SRV_MAC, MAC1));
    assert_eq!(Lab::count(&l.out0), 1, "allowed on the VIP's port, DNATed");
    assert_eq!(l.counter(PREDNAT, stage_error::NEW_ALLOWED), 1);
    // The backend's reply, un-NATed to come from the VIP, leaves though the uplink's tx
    // default denies.
    l.send(if0, &tcp4(POD, SRV, 8080, 5000, POD_MAC, MAC0));
    assert_eq!(Lab::count(&l.out1), 1, "the reply goes out");
    // The same rule on the backend's port does not match before DNAT: the normal stage
    // (nothing, default deny) drops it.
    l.uplink(uplink_conf(
        vec![],
        vec![backend_port, END_PRE_DNAT],
        PolicyDefault::Deny,
    ));
    l.send(if1, &tcp4(SRV, VIP, 5001, 80, SRV_MAC, MAC1));
    assert_eq!(
        Lab::count(&l.out0),
        0,
        "a rule on the backend does not match"
    );
    // A pre-DNAT deny on the VIP drops what the normal stage would allow.
    let deny_vip = port_policy(&n, Action::Deny, 80);
    l.uplink(uplink_conf(
        vec![],
        vec![deny_vip, END_PRE_DNAT],
        PolicyDefault::Allow,
    ));
    for _ in 0..2 {
        l.send(if1, &tcp4(SRV, VIP, 5002, 80, SRV_MAC, MAC1));
    }
    assert_eq!(Lab::count(&l.out0), 0, "pre-DNAT deny");
    assert_eq!(
        l.counter(PREDNAT, stage_error::NEW_DENIED),
        1,
        "judged once"
    );
    assert_eq!(
        l.counter(PREDNAT, stage_error::DENIED),
        2,
        "then from the cache"
    );
    l.no_leaks();
}

#[test]
fn prednat_verdicts_are_cached_apart_from_npol_rx() {
    let mut l = lab();
    let n = l.npol.clone();
    let (other, ssh) = (
        port_policy(&n, Action::Allow, 9999),
        port_policy(&n, Action::Allow, 22),
    );
    let if1 = l.if1;
    // npol-rx denies and caches the flow first (no sections yet).
    l.uplink(uplink_conf(vec![], vec![], PolicyDefault::Deny));
    l.send(if1, &tcp4(SRV, POD, 5000, 22, SRV_MAC, MAC1));
    assert_eq!(Lab::count(&l.out0), 0);
    // A pre-DNAT allow for it is judged under its own key, not read from npol-rx's deny.
    l.uplink(uplink_conf(
        vec![],
        vec![ssh, END_PRE_DNAT],
        PolicyDefault::Deny,
    ));
    l.send(if1, &tcp4(SRV, POD, 5000, 22, SRV_MAC, MAC1));
    assert_eq!(
        Lab::count(&l.out0),
        1,
        "pre-DNAT verdict, not npol-rx's cached deny"
    );
    // Cached: a policy update does not reach the established flow, only new ones.
    let deny = n
        .rule_create(Rule {
            action: Action::Deny,
            filters: vec![],
            entries: vec![],
        })
        .unwrap();
    n.policy_update(
        ssh,
        Policy {
            inbound: vec![deny],
            outbound: vec![deny],
        },
    )
    .unwrap();
    l.send(if1, &tcp4(SRV, POD, 5000, 22, SRV_MAC, MAC1));
    assert_eq!(
        Lab::count(&l.out0),
        1,
        "the established flow keeps its verdict"
    );
    l.send(if1, &tcp4(SRV, POD, 5001, 22, SRV_MAC, MAC1));
    assert_eq!(Lab::count(&l.out0), 0, "a new flow sees the update");
    // A pre-DNAT "no match" cached for a flow is not a deny for npol-rx, which allows it.
    n.flush_flows();
    l.uplink(uplink_conf(
        vec![],
        vec![other, END_PRE_DNAT, ssh2(&n)],
        PolicyDefault::Deny,
    ));
    for _ in 0..2 {
        l.send(if1, &tcp4(SRV, POD, 5003, 22, SRV_MAC, MAC1));
    }
    assert_eq!(
        Lab::count(&l.out0),
        2,
        "no match pre-DNAT, allowed by the normal stage"
    );
    assert_eq!(l.counter("npol-rx-ip4", error::NEW_ALLOWED), 1);
    // Unconfiguring the uplink forgets its pre-DNAT verdicts too.
    assert!(!n.flows.is_empty());
    assert!(n.unconfigure(if1));
    assert!(
        n.flows.is_empty(),
        "pre-DNAT entries gone with the interface"
    );
    l.no_leaks();
}

/// Another allow-ssh policy (the first was updated to deny).
fn ssh2(n: &Npol) -> u32 {
    port_policy(n, Action::Allow, 22)
}

#[test]
fn ip6_untracked_and_prednat() {
    /// fd00:0:0:19::ff, a service address.
    const VIP6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0x19, 0, 0, 0, 0, 0, 0, 0, 0xff];
    let mut l = lab();
    l.service(u128::from_be_bytes(VIP6), u128::from_be_bytes(POD6), true);
    let n = l.npol.clone();
    let (ssh, telnet, vip_port, backend_port) = (
        port_policy(&n, Action::Allow, 22),
        port_policy(&n, Action::Deny, 23),
        port_policy(&n, Action::Allow, 80),
        port_policy(&n, Action::Allow, 8080),
    );
    let conf = |pre| {
        uplink_conf(
            vec![],
            vec![ssh, telnet, END_UNTRACKED, pre, END_PRE_DNAT],
            PolicyDefault::Deny,
        )
    };
    l.uplink(conf(vip_port));
    let (if0, if1) = (l.if0, l.if1);
    l.send(if1, &tcp6(SRV6, POD6, 5000, 22, SRV_MAC, MAC1));
    assert_eq!(Lab::count(&l.out0), 1, "untracked allow over a normal deny");
    assert!(l.npol.flows.is_empty(), "untracked caches nothing");
    l.send(if1, &tcp6(SRV6, POD6, 5000, 23, SRV_MAC, MAC1));
    assert_eq!(Lab::count(&l.out0), 0, "untracked deny");
    assert_eq!(l.counter("npol-untracked-rx-ip6", stage_error::DENIED), 1);
    l.send(if1, &tcp6(SRV6, VIP6, 5001, 80, SRV_MAC, MAC1));
    assert_eq!(Lab::count(&l.out0), 1, "pre-DNAT allow on the VIP's port");
    assert_eq!(l.counter("npol-prednat-ip6", stage_error::NEW_ALLOWED), 1);
    l.send(if0, &tcp6(POD6, SRV6, 8080, 5001, POD_MAC, MAC0));
    assert_eq!(Lab::count(&l.out1), 1, "its reply goes out");
    l.uplink(conf(backend_port));
    l.send(if1, &tcp6(SRV6, VIP6, 5002, 80, SRV_MAC, MAC1));
    assert_eq!(
        Lab::count(&l.out0),
        0,
        "the backend's port does not match before DNAT"
    );
    l.no_leaks();
}

#[test]
fn later_fragments_follow_their_first_fragments_prednat_verdict() {
    let mut l = lab();
    let (ssh, telnet) = (
        port_policy(&l.npol, Action::Allow, 22),
        port_policy(&l.npol, Action::Deny, 23),
    );
    // Pre-DNAT allows :22 and denies :23; the normal stage would deny :22 and allow :23.
    let allow23 = port_policy(&l.npol, Action::Allow, 23);
    l.uplink(uplink_conf(
        vec![],
        vec![ssh, telnet, END_PRE_DNAT, allow23],
        PolicyDefault::Deny,
    ));
    let if1 = l.if1;
    let big = |dport| {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(SRV_MAC, MAC1)
            .ipv4(SRV, POD, 64)
            .tcp(5000, dport, 1, 1000)
            .write(&mut v, &[7u8; 40])
            .unwrap();
        v
    };
    let (first, second) = fragments(&big(22), 0x2234);
    l.send(if1, &first);
    l.send(if1, &second);
    assert_eq!(
        Lab::count(&l.out0),
        2,
        "both fragments of a pre-DNAT allowed flow pass"
    );
    let (first, second) = fragments(&big(23), 0x2235);
    l.send(if1, &first);
    l.send(if1, &second);
    assert_eq!(
        Lab::count(&l.out0),
        0,
        "both fragments of a pre-DNAT denied flow drop"
    );
    l.no_leaks();
}

/// The pod as a service's backend: its ingress (tx) allows TCP to 8080, its egress (rx)
/// denies everything.
fn police_backend(l: &Lab) {
    let n = &l.npol;
    let web = n
        .rule_create(Rule {
            action: Action::Allow,
            filters: vec![proto(6)],
            entries: vec![dport(8080, 8080)],
        })
        .unwrap();
    let ingress = n
        .policy_create(Policy {
            inbound: vec![],
            outbound: vec![web],
        })
        .unwrap();
    n.configure(
        l.if0,
        IfConfig {
            rx_policies: vec![],
            tx_policies: vec![ingress],
            ..deny_by_default(0)
        },
    )
    .unwrap();
}

/// A TCP frame of either family (`src`, `dst`: 4 or 16 bytes).
fn tcp(src: &[u8], dst: &[u8], sp: u16, dp: u16, from: [u8; 6], to: [u8; 6]) -> Vec<u8> {
    match (src.try_into(), dst.try_into()) {
        (Ok(s), Ok(d)) => tcp4(s, d, sp, dp, from, to),
        _ => tcp6(
            src.try_into().unwrap(),
            dst.try_into().unwrap(),
            sp,
            dp,
            from,
            to,
        ),
    }
}

/// The source address and port of a captured frame.
fn source_of(frame: &[u8]) -> (Vec<u8>, u16) {
    let p = etherparse::SlicedPacket::from_ethernet(frame).unwrap();
    let src = match p.net.unwrap() {
        etherparse::NetSlice::Ipv4(h) => h.header().source().to_vec(),
        etherparse::NetSlice::Ipv6(h) => h.header().source().to_vec(),
    };
    let Some(etherparse::TransportSlice::Tcp(t)) = p.transport else {
        panic!("not TCP")
    };
    (src, t.source_port())
}

/// A client reaches the pod through a VIP; the pod's egress denies everything, yet its reply
/// (which cnat un-NATs to come from the VIP before npol-rx sees it) is a reply and reaches
/// the client from VIP:80. A packet from the pod that is no reply still meets the deny.
#[test]
fn a_backend_whose_egress_denies_answers_through_its_vip() {
    const VIP: [u8; 4] = [198, 19, 255, 1];
    /// fd00:0:0:19::ff, a service address.
    const VIP6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0x19, 0, 0, 0, 0, 0, 0, 0, 0xff];
    for (ip6, vip, pod, srv) in [
        (false, &VIP[..], &POD[..], &SRV[..]),
        (true, &VIP6[..], &POD6[..], &SRV6[..]),
    ] {
        let be = |a: &[u8]| match a.try_into() {
            Ok(a4) => v4(a4),
            Err(_) => u128::from_be_bytes(a.try_into().unwrap()),
        };
        let (rx, tx) = if ip6 {
            ("npol-rx-ip6", "npol-tx-ip6")
        } else {
            ("npol-rx-ip4", "npol-tx-ip4")
        };
        let mut l = lab();
        l.service(be(vip), be(pod), ip6);
        police_backend(&l);
        let (if0, if1) = (l.if0, l.if1);
        // Before the client comes: the pod sends what will be the reply's un-NATed form. No
        // reply yet, so denied, and the deny cached.
        l.send(if0, &tcp(vip, srv, 80, 41000, POD_MAC, MAC0));
        assert_eq!(Lab::count(&l.out1), 0);
        assert_eq!(l.counter(rx, error::NEW_DENIED), 1);
        l.send(if1, &tcp(srv, vip, 41000, 80, SRV_MAC, MAC1));
        assert_eq!(
            Lab::count(&l.out0),
            1,
            "DNATed to the backend, ingress allowed"
        );
        assert_eq!(l.counter(tx, error::NEW_ALLOWED), 1);
        for _ in 0..2 {
            l.send(if0, &tcp(pod, srv, 8080, 41000, POD_MAC, MAC0));
        }
        let out = take(&l.out1);
        assert_eq!(out.len(), 2, "ip6 {ip6}: the reply passes the egress deny");
        for f in &out {
            assert_eq!(source_of(f), (vip.to_vec(), 80), "un-NATed to the VIP");
        }
        assert_eq!(
            l.counter(rx, error::DENIED),
            1,
            "the cached deny was replaced"
        );
        assert_eq!(
            l.counter(rx, error::NEW_ALLOWED),
            0,
            "a reply, not a new flow"
        );
        // Not a reply: another client port, another pod port, the VIP's reply form to
        // another client port. Each meets the egress deny.
        l.send(if0, &tcp(pod, srv, 8080, 41001, POD_MAC, MAC0));
        l.send(if0, &tcp(pod, srv, 8081, 41000, POD_MAC, MAC0));
        l.send(if0, &tcp(vip, srv, 80, 41001, POD_MAC, MAC0));
        assert_eq!(
            Lab::count(&l.out1),
            0,
            "ip6 {ip6}: unsolicited egress dropped"
        );
        assert_eq!(l.counter(rx, error::NEW_DENIED), 4);
        assert_eq!(l.counter(rx, error::DENIED), 4);
        l.no_leaks();
    }
}

/// A port unreachable from `src` to `dst` quoting `quoted` (an IP packet), of its family.
fn unreachable(src: &[u8], dst: &[u8], quoted: &[u8], from: [u8; 6], to: [u8; 6]) -> Vec<u8> {
    let mut v = Vec::new();
    let b = PacketBuilder::ethernet2(from, to);
    match (src.try_into(), dst.try_into()) {
        (Ok(s), Ok(d)) => b
            .ipv4(s, d, 64)
            .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::Port,
            ))
            .write(&mut v, quoted),
        _ => b
            .ipv6(src.try_into().unwrap(), dst.try_into().unwrap(), 64)
            .icmpv6(etherparse::Icmpv6Type::DestinationUnreachable(
                etherparse::icmpv6::DestUnreachableCode::Port,
            ))
            .write(&mut v, quoted),
    }
    .unwrap();
    v
}

/// The backend of the test above answers the client's packet with an ICMP error: cnat
/// translates it back (from the VIP, quoting the packet the client sent to the VIP) before
/// npol-rx, and it passes the egress deny as an error about an allowed flow. An error
/// quoting another flow still meets the deny.
#[test]
fn an_icmp_error_from_a_backend_about_its_vip_flow_passes() {
    const VIP: [u8; 4] = [198, 19, 255, 1];
    const VIP6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0x19, 0, 0, 0, 0, 0, 0, 0, 0xff];
    for (ip6, vip, pod, srv) in [
        (false, &VIP[..], &POD[..], &SRV[..]),
        (true, &VIP6[..], &POD6[..], &SRV6[..]),
    ] {
        let be = |a: &[u8]| match a.try_into() {
            Ok(a4) => v4(a4),
            Err(_) => u128::from_be_bytes(a.try_into().unwrap()),
        };
        let rx = if ip6 { "npol-rx-ip6" } else { "npol-rx-ip4" };
        let mut l = lab();
        l.service(be(vip), be(pod), ip6);
        police_backend(&l);
        let (if0, if1) = (l.if0, l.if1);
        l.send(if1, &tcp(srv, vip, 41000, 80, SRV_MAC, MAC1));
        let got = take(&l.out0);
        assert_eq!(got.len(), 1, "DNATed to the backend");
        l.send(if0, &unreachable(pod, srv, &got[0][14..], POD_MAC, MAC0));
        let out = take(&l.out1);
        assert_eq!(out.len(), 1, "ip6 {ip6}: the error reaches the client");
        let p = etherparse::SlicedPacket::from_ethernet(&out[0]).unwrap();
        let outer_src = match p.net.unwrap() {
            etherparse::NetSlice::Ipv4(h) => h.header().source().to_vec(),
            etherparse::NetSlice::Ipv6(h) => h.header().source().to_vec(),
        };
        assert_eq!(outer_src, vip.to_vec(), "translated back by cnat");
        assert_eq!(l.counter(rx, error::DENIED), 0);
        // Quoting a flow the client never opened: judged as the pod's egress, denied.
        let other = tcp(srv, pod, 41009, 8080, SRV_MAC, MAC0);
        l.send(if0, &unreachable(pod, srv, &other[14..], POD_MAC, MAC0));
        assert_eq!(
            Lab::count(&l.out1),
            0,
            "ip6 {ip6}: an error about another flow"
        );
        assert_eq!(l.counter(rx, error::DENIED), 1);
        l.no_leaks();
    }
}

/// One vector of many flows, each node looking its cached verdicts up some packets ahead:
/// every packet meets its own flow's verdict. Allowed and denied flows are cached one at a
/// time, then the policy is turned around (so a flow whose cached verdict were missed would
/// be judged anew, the other way); the vector interleaves their packets and the allowed
/// flows' replies.
#[test]
fn a_vector_of_interleaved_flows_meets_each_flows_cached_verdict() {
    let mut l = lab();
    let (web, egress) = police_pod(&l);
    let (if0, if1) = (l.if0, l.if1);
    let flow = |i: u16| {
        let allowed = !i.is_multiple_of(3);
        let port = if allowed { 80 } else { 81 };
        (allowed, tcp4(POD, SRV, 41000 + i, port, POD_MAC, MAC0))
    };
    for i in 0..30 {
        l.send(if0, &flow(i).1);
    }
    assert_eq!(Lab::count(&l.out1), 20, "the allowed flows");
    // From now on a new flow to port 80 is denied and one to 81 allowed.
    let allow_81 = l
        .npol
        .rule_create(Rule {
            action: Action::Allow,
            filters: vec![],
            entries: vec![dport(81, 81)],
        })
        .unwrap();
    let deny_80 = l
        .npol
        .rule_create(Rule {
            action: Action::Deny,
            filters: vec![],
            entries: vec![dport(80, 80)],
        })
        .unwrap();
    l.npol
        .policy_update(
            egress,
            Policy {
                inbound: vec![deny_80, allow_81, web],
                outbound: vec![],
            },
        )
        .unwrap();
    let bufs = l.rt.buffers();
    let mut vector = Vec::new();
    for i in 0..30 {
        let (allowed, f) = flow(i);
        let bi = bufs.alloc_from_bytes(&f).unwrap();
        bufs.meta(bi).rx_sw_if_index = if0;
        vector.push(bi);
        if allowed {
            let r = tcp4(SRV, POD, 80, 41000 + i, SRV_MAC, MAC1);
            let bi = bufs.alloc_from_bytes(&r).unwrap();
            bufs.meta(bi).rx_sw_if_index = if1;
            vector.push(bi);
        }
    }
    l.rt.inject("ethernet-input", &vector).unwrap();
    let sports = |f: &Frames| -> Vec<u16> {
        std::mem::take(&mut *f.lock().unwrap())
            .iter()
            .map(|p| u16::from_be_bytes([p[34], p[35]]))
            .collect()
    };
    let want: Vec<u16> = (0..30)
        .filter(|i: &u16| !i.is_multiple_of(3))
        .map(|i| 41000 + i)
        .collect();
    assert_eq!(sports(&l.out1), want, "only the allowed flows, each once");
    let replies: Vec<u16> = sports(&l.out0);
    assert_eq!(replies, vec![80; 20], "every allowed flow's reply");
    assert_eq!(l.counter("npol-rx-ip4", error::NEW_ALLOWED), 20);
    l.no_leaks();
}

/// A neighbour solicitation from `src` for `target`, to its solicited-node group when
/// `multicast`, else straight to `target`.
fn ns6(src: [u8; 16], target: [u8; 16], multicast: bool, from: [u8; 6], to: [u8; 6]) -> Vec<u8> {
    let mut dst = target;
    let mut mac = to;
    if multicast {
        dst = [
            0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, target[13], target[14], target[15],
        ];
        mac = [0x33, 0x33, 0xff, target[13], target[14], target[15]];
    }
    let mut body = target.to_vec();
    body.extend([1, 1]);
    body.extend(from);
    let mut v = Vec::new();
    PacketBuilder::ethernet2(from, mac)
        .ipv6(src, dst, 255)
        .icmpv6(etherparse::Icmpv6Type::Unknown {
            type_u8: 135,
            code_u8: 0,
            bytes5to8: [0; 4],
        })
        .write(&mut v, &body)
        .unwrap();
    v
}

/// A host endpoint's default deny (the host tap's egress allows only what its policies name)
/// leaves neighbour discovery alone, as VPP's npol does: the pod's multicast and unicast
/// solicitations of rvpp's address are answered; other ICMPv6 is still denied.
#[test]
fn neighbour_discovery_is_not_policed() {
    let mut l = lab();
    let n = &l.npol;
    let nothing = n.policy_create(Policy::default()).unwrap();
    n.configure(l.if0, deny_by_default(nothing)).unwrap();
    let if0 = l.if0;
    let rvpp6 = [0xfd, 0, 0, 0, 0, 0, 0, 0x18, 0, 0, 0, 0, 0, 0, 0, 1];
    l.send(if0, &ns6(POD6, rvpp6, true, POD_MAC, MAC0));
    assert_eq!(Lab::count(&l.out0), 1, "multicast solicitation answered");
    l.send(if0, &ns6(POD6, rvpp6, false, POD_MAC, MAC0));
    assert_eq!(Lab::count(&l.out0), 1, "unicast solicitation answered");
    assert_eq!(l.counter("npol-rx-ip6", error::NOT_POLICED), 2);
    assert_eq!(l.counter("npol-rx-ip6", error::DENIED), 0);
    // An echo request is policed: the default denies it.
    let mut v = Vec::new();
    PacketBuilder::ethernet2(POD_MAC, MAC0)
        .ipv6(POD6, SRV6, 64)
        .icmpv6_echo_request(1, 1)
        .write(&mut v, b"x")
        .unwrap();
    l.send(if0, &v);
    assert_eq!(Lab::count(&l.out1), 0, "echo denied");
    assert_eq!(l.counter("npol-rx-ip6", error::DENIED), 1);
}

/// The pod's flow to a service VIP:80 whose backend is the server's port 80, as cnat keys its
/// forward session (before DNAT) and its return session (the backend's reply).
const SVC_VIP: [u8; 4] = [198, 19, 255, 1];

fn service_to_server(l: &mut Lab) {
    for i in [l.if0, l.if1] {
        rvpp_dataplane::nodes::cnat::feature_enable(&mut l.fwd, i, true).unwrap();
    }
    let ep = |a: [u8; 4], port| Endpoint {
        addr: v4(a),
        port,
        ip6: false,
    };
    l.cnat.translation_update(Translation {
        vip: ep(SVC_VIP, 80),
        proto: 6,
        paths: vec![PathEp {
            dst: ep(SRV, 80),
            ..Default::default()
        }],
        ..Default::default()
    });
}

fn session_key(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16) -> FlowKey {
    FlowKey {
        src: v4(src),
        dst: v4(dst),
        sport: sp,
        dport: dp,
        proto: 6,
        ip6: false,
        stage: stage::INPUT,
        fib: 0,
    }
}

impl Lab {
    /// Whether cnat's session `k` carries npol's allow of `d` on the pod's interface.
    fn session_allows(&self, k: &FlowKey, d: Direction) -> bool {
        let f = self
            .cnat
            .sessions
            .lookup(k)
            .expect("the flow's cnat session");
        SessionVerdicts::allows(f.npol, d, self.if0, self.npol.verdict_epoch())
    }
}

/// npol copies an allow onto the cnat session of the flow (its forward session for the pod's
/// rx, the return session for its tx): taken from npol's own entry by the first packet that
/// brings cnat's session with it, so the packets after it are judged by what cnat's lookup
/// read.
#[test]
fn a_service_flows_allows_are_copied_onto_its_cnat_sessions() {
    let mut l = lab();
    police_pod(&l);
    service_to_server(&mut l);
    let (if0, if1) = (l.if0, l.if1);
    let fwd = session_key(POD, SVC_VIP, 41000, 80);
    let ret = session_key(SRV, POD, 80, 41000);
    l.send(if0, &tcp4(POD, SVC_VIP, 41000, 80, POD_MAC, MAC0));
    assert_eq!(Lab::count(&l.out1), 1);
    assert!(
        !l.session_allows(&fwd, Direction::Rx),
        "nothing copied by the flow's first packet"
    );
    for _ in 0..3 {
        l.send(if0, &tcp4(POD, SVC_VIP, 41000, 80, POD_MAC, MAC0));
    }
    assert_eq!(Lab::count(&l.out1), 3);
    assert!(
        l.session_allows(&fwd, Direction::Rx),
        "the pod's rx allow on the session"
    );
    assert!(!l.session_allows(&fwd, Direction::Tx));
    for _ in 0..2 {
        l.send(if1, &tcp4(SRV, POD, 80, 41000, SRV_MAC, MAC1));
    }
    assert_eq!(Lab::count(&l.out0), 2, "the replies pass the pod's tx");
    assert!(
        l.session_allows(&ret, Direction::Tx),
        "the reply's allow on the return session"
    );
    // Another worker reads the copies the first one made.
    Lab::send_on(
        &mut l.rt2,
        if0,
        &tcp4(POD, SVC_VIP, 41000, 80, POD_MAC, MAC0),
    );
    Lab::send_on(&mut l.rt2, if1, &tcp4(SRV, POD, 80, 41000, SRV_MAC, MAC1));
    assert_eq!((Lab::count(&l.out1), Lab::count(&l.out0)), (1, 1));
    assert_eq!(l.counter("npol-rx-ip4", error::NEW_ALLOWED), 1);
    assert_eq!(
        l.counter("npol-tx-ip4", error::NEW_ALLOWED),
        0,
        "a reply, not a new flow"
    );
    // Each copy names its interface and direction: the pod's rx allow is not one for pg1.
    let f = l.cnat.sessions.lookup(&fwd).unwrap();
    let e = l.npol.verdict_epoch();
    assert!(!SessionVerdicts::allows(f.npol, Direction::Rx, if1, e));
    assert!(!SessionVerdicts::allows(f.npol, Direction::Rx, if0, e + 1));
    l.no_leaks();
}

/// A session freed and its slot taken again by the same flow's next packet (after the policy
/// changed and npol's own entry expired): the allow copied onto the old session is not the
/// new session's, so the flow meets the policy as it is now.
#[test]
fn a_verdict_is_not_taken_from_a_recycled_session() {
    let mut l = lab();
    let (web, egress) = police_pod(&l);
    service_to_server(&mut l);
    let if0 = l.if0;
    let fwd = session_key(POD, SVC_VIP, 41000, 80);
    for _ in 0..2 {
        l.send(if0, &tcp4(POD, SVC_VIP, 41000, 80, POD_MAC, MAC0));
    }
    assert_eq!(Lab::count(&l.out1), 2);
    assert!(l.session_allows(&fwd, Direction::Rx));
    let old_slot = l.cnat.sessions.lookup(&fwd).unwrap().slot;
    deny_port_80(&l, web, egress);
    // npol's entries expire (idle expiry leaves the epoch alone) and cnat's sessions go.
    assert!(l.npol.scan(l.npol.now() + 100_000) > 0);
    assert!(l.cnat.purge() > 0);
    l.send(if0, &tcp4(POD, SVC_VIP, 41000, 80, POD_MAC, MAC0));
    assert_eq!(
        l.cnat.sessions.lookup(&fwd).unwrap().slot,
        old_slot,
        "the new session took the old one's slot"
    );
    assert!(
        !l.session_allows(&fwd, Direction::Rx),
        "the new session starts empty"
    );
    for _ in 0..2 {
        l.send(if0, &tcp4(POD, SVC_VIP, 41000, 80, POD_MAC, MAC0));
    }
    assert_eq!(Lab::count(&l.out1), 0, "judged again, denied");
    assert_eq!(l.counter("npol-rx-ip4", error::NEW_DENIED), 1);
    assert_eq!(l.counter("npol-rx-ip4", error::DENIED), 3);
    l.no_leaks();
}

/// The pod's egress policy denies port 80 from now on (new flows only).
fn deny_port_80(l: &Lab, web: u32, egress: u32) {
    let deny = l
        .npol
        .rule_create(Rule {
            action: Action::Deny,
            filters: vec![],
            entries: vec![dport(80, 80)],
        })
        .unwrap();
    l.npol
        .policy_update(
            egress,
            Policy {
                inbound: vec![deny, web],
                outbound: vec![],
            },
        )
        .unwrap();
}

/// Through a service, as without one: a policy update reaches new flows only, the
/// established flow keeps its verdict (copied onto its session) and its replies theirs, and
/// clearing npol's flows voids the copies too.
#[test]
fn a_policy_update_reaches_new_service_flows_only() {
    let mut l = lab();
    let (web, egress) = police_pod(&l);
    service_to_server(&mut l);
    let (if0, if1) = (l.if0, l.if1);
    for _ in 0..2 {
        l.send(if0, &tcp4(POD, SVC_VIP, 41000, 80, POD_MAC, MAC0));
        l.send(if1, &tcp4(SRV, POD, 80, 41000, SRV_MAC, MAC1));
    }
    assert_eq!((Lab::count(&l.out1), Lab::count(&l.out0)), (2, 2));
    deny_port_80(&l, web, egress);
    for _ in 0..2 {
        l.send(if0, &tcp4(POD, SVC_VIP, 41000, 80, POD_MAC, MAC0));
        l.send(if1, &tcp4(SRV, POD, 80, 41000, SRV_MAC, MAC1));
    }
    assert_eq!(
        (Lab::count(&l.out1), Lab::count(&l.out0)),
        (2, 2),
        "the established flow and its replies keep their verdicts"
    );
    l.send(if0, &tcp4(POD, SVC_VIP, 41001, 80, POD_MAC, MAC0));
    assert_eq!(Lab::count(&l.out1), 0, "a new flow sees the update");
    assert!(l.session_allows(&session_key(POD, SVC_VIP, 41000, 80), Direction::Rx));
    l.npol.flush_flows();
    assert!(!l.session_allows(&session_key(POD, SVC_VIP, 41000, 80), Direction::Rx));
    for _ in 0..2 {
        l.send(if0, &tcp4(POD, SVC_VIP, 41000, 80, POD_MAC, MAC0));
        l.send(if1, &tcp4(SRV, POD, 80, 41000, SRV_MAC, MAC1));
    }
    assert_eq!(
        (Lab::count(&l.out1), Lab::count(&l.out0)),
        (0, 0),
        "cleared: the flow meets the update, its replies the pod's tx default"
    );
    l.no_leaks();
}

/// A denied service flow: its deny is cached (a drop, not judged again) and never copied
/// onto its session as an allow, however many of its packets bring the session along.
#[test]
fn a_denied_service_flow_stays_denied_with_its_session() {
    let mut l = lab();
    police_pod(&l);
    service_to_server(&mut l);
    l.cnat.translation_update(Translation {
        vip: Endpoint {
            addr: v4(SVC_VIP),
            port: 81,
            ip6: false,
        },
        proto: 6,
        paths: vec![PathEp {
            dst: Endpoint {
                addr: v4(SRV),
                port: 81,
                ip6: false,
            },
            ..Default::default()
        }],
        ..Default::default()
    });
    let if0 = l.if0;
    for _ in 0..4 {
        l.send(if0, &tcp4(POD, SVC_VIP, 41000, 81, POD_MAC, MAC0));
    }
    assert_eq!(Lab::count(&l.out1), 0, "port 81 denied");
    assert_eq!(
        l.counter("npol-rx-ip4", error::NEW_DENIED),
        1,
        "judged once"
    );
    assert_eq!(l.counter("npol-rx-ip4", error::DENIED), 4);
    let fwd = session_key(POD, SVC_VIP, 41000, 81);
    assert!(!l.session_allows(&fwd, Direction::Rx));
    l.no_leaks();
}

impl Lab {
    /// Front-cache hits of `node` on both workers.
    fn front_hits(&self, node: &str) -> u64 {
        [&self.rt, &self.rt2]
            .iter()
            .map(|rt| counter(rt, node, error::FRONT_HIT))
            .sum()
    }
    /// `frame` sent on `on` five times on each worker: a flow's allow found in the shared
    /// table fills the worker's front cache, which its later packets meet.
    fn send_five_each(&mut self, on: u32, frame: &[u8]) {
        for _ in 0..5 {
            self.send(on, frame);
            Lab::send_on(&mut self.rt2, on, frame);
        }
    }
}

/// At least this many of the ten packets [`Lab::send_five_each`] sends of an allowed flow meet
/// a front cache: seven (the first judges, each worker's first finds the shared entry), less
/// one a worker if a second ends meanwhile.
const FRONT_HITS_OF_TEN: u64 = 5;

#[test]
fn ip6_flows_without_cnat_meet_the_workers_front_caches() {
    let mut l = lab();
    police_pod(&l);
    let (if0, if1) = (l.if0, l.if1);
    l.send_five_each(if0, &tcp6(POD6, SRV6, 40000, 80, POD_MAC, MAC0));
    assert_eq!(Lab::count(&l.out1), 10);
    assert_eq!(l.counter("npol-rx-ip6", error::NEW_ALLOWED), 1);
    assert!(
        l.front_hits("npol-rx-ip6") >= FRONT_HITS_OF_TEN,
        "rx: the front caches"
    );
    l.send_five_each(if1, &tcp6(SRV6, POD6, 80, 40000, SRV_MAC, MAC1));
    assert_eq!(Lab::count(&l.out0), 10, "the replies pass npol-tx");
    assert!(
        l.front_hits("npol-tx-ip6") >= FRONT_HITS_OF_TEN,
        "tx: the front caches"
    );
    assert_eq!(l.front_hits("npol-rx-ip4") + l.front_hits("npol-tx-ip4"), 0);
    l.no_leaks();
}

/// An IPv6 flow allowed from the front caches, then a policy edit: as in the shared table, the
/// established flow keeps its verdict and a new flow meets the edit; a purge of the cached
/// verdicts (cnat_session_purge) makes the established flow meet it too, on both workers.
/// And back: the deny the purge led to is lifted by the next edit and purge.
#[test]
fn an_ip6_front_cached_allow_meets_a_policy_edit_after_a_purge_and_back() {
    let mut l = lab();
    let (web, egress) = police_pod(&l);
    let if0 = l.if0;
    let pkt = tcp6(POD6, SRV6, 40000, 80, POD_MAC, MAC0);
    l.send_five_each(if0, &pkt);
    assert_eq!(Lab::count(&l.out1), 10);
    let hits = l.front_hits("npol-rx-ip6");
    assert!(hits >= FRONT_HITS_OF_TEN);
    deny_port_80(&l, web, egress);
    l.send_five_each(if0, &pkt);
    assert_eq!(Lab::count(&l.out1), 10, "established: keeps its verdict");
    assert!(l.front_hits("npol-rx-ip6") > hits, "from the front caches");
    l.send(if0, &tcp6(POD6, SRV6, 40001, 80, POD_MAC, MAC0));
    assert_eq!(Lab::count(&l.out1), 0, "a new flow meets the edit");

    l.npol.flush_flows();
    let hits = l.front_hits("npol-rx-ip6");
    l.send_five_each(if0, &pkt);
    assert_eq!(Lab::count(&l.out1), 0, "purged: the front copies are void");
    assert_eq!(l.front_hits("npol-rx-ip6"), hits);

    l.npol
        .policy_update(
            egress,
            Policy {
                inbound: vec![web],
                outbound: vec![],
            },
        )
        .unwrap();
    l.send(if0, &pkt);
    assert_eq!(
        Lab::count(&l.out1),
        0,
        "its deny stays cached until a purge"
    );
    l.npol.flush_flows();
    l.send_five_each(if0, &pkt);
    assert_eq!(Lab::count(&l.out1), 10, "purged again: allowed by the edit");
    assert!(l.front_hits("npol-rx-ip6") >= hits + FRONT_HITS_OF_TEN);
    l.no_leaks();
}

/// The pod may open TCP to the members of an IP ipset holding the server; returns the set.
fn police_pod_by_ipset(l: &Lab) -> u32 {
    let n = &l.npol;
    let set = n.ipset_create(IpSetKind::Ip);
    n.ipset_add_del(set, true, &[Member::Ip(SRV6.into())])
        .unwrap();
    let to_set = n
        .rule_create(Rule {
            action: Action::Allow,
            filters: vec![proto(6)],
            entries: vec![Entry {
                is_src: false,
                is_not: false,
                data: MatchData::IpSet(set),
            }],
        })
        .unwrap();
    let p = n
        .policy_create(Policy {
            inbound: vec![to_set],
            outbound: vec![],
        })
        .unwrap();
    n.configure(l.if0, deny_by_default(p)).unwrap();
    set
}

#[test]
fn an_ip6_front_cached_allow_meets_an_ipset_member_removal_after_a_purge() {
    let mut l = lab();
    let set = police_pod_by_ipset(&l);
    let if0 = l.if0;
    let pkt = tcp6(POD6, SRV6, 40000, 443, POD_MAC, MAC0);
    l.send_five_each(if0, &pkt);
    assert_eq!(Lab::count(&l.out1), 10, "the server is a member");
    assert!(l.front_hits("npol-rx-ip6") >= FRONT_HITS_OF_TEN);
    l.npol
        .ipset_add_del(set, false, &[Member::Ip(SRV6.into())])
        .unwrap();
    l.send(if0, &tcp6(POD6, SRV6, 40001, 443, POD_MAC, MAC0));
    assert_eq!(Lab::count(&l.out1), 0, "a new flow meets the removal");
    l.send(if0, &pkt);
    assert_eq!(Lab::count(&l.out1), 1, "established: keeps its verdict");
    l.npol.flush_flows();
    l.send_five_each(if0, &pkt);
    assert_eq!(
        Lab::count(&l.out1),
        0,
        "purged: no worker's front copy lets it pass"
    );
    l.no_leaks();
}

/// The interface's configuration replaced (deny everything): established flows keep their
/// verdicts, new ones meet it; unconfigured (its cached verdicts forgotten) and configured
/// again, the established flow meets the configuration on both workers.
#[test]
fn an_ip6_front_cached_allow_meets_an_interface_reconfiguration() {
    let mut l = lab();
    police_pod(&l);
    let if0 = l.if0;
    let pkt = tcp6(POD6, SRV6, 40000, 80, POD_MAC, MAC0);
    l.send_five_each(if0, &pkt);
    assert_eq!(Lab::count(&l.out1), 10);
    assert!(l.front_hits("npol-rx-ip6") >= FRONT_HITS_OF_TEN);
    let nothing = l
        .npol
        .policy_create(Policy {
            inbound: vec![],
            outbound: vec![],
        })
        .unwrap();
    l.npol.configure(if0, deny_by_default(nothing)).unwrap();
    l.send(if0, &tcp6(POD6, SRV6, 40001, 80, POD_MAC, MAC0));
    assert_eq!(Lab::count(&l.out1), 0, "a new flow meets the configuration");
    l.send_five_each(if0, &pkt);
    assert_eq!(Lab::count(&l.out1), 10, "established: keeps its verdict");

    assert!(l.npol.unconfigure(if0));
    l.npol.configure(if0, deny_by_default(nothing)).unwrap();
    l.send_five_each(if0, &pkt);
    assert_eq!(
        Lab::count(&l.out1),
        0,
        "its verdicts forgotten: denied everywhere"
    );
    l.no_leaks();
}
