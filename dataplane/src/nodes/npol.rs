//! The npol feature nodes: `npol-rx-ip4/ip6` on ip4-/ip6-unicast (packets received on the
//! interface: pod egress) after cnat's DNAT, so policies see the backend a service chose, and
//! `npol-tx-ip4/ip6` on ip4-/ip6-output (packets sent on it: pod ingress), before cnat's SNAT
//! and before a tunnel wraps the packet.
//!
//! Stateful, as npol: the policies run on a flow's first packet only. Its verdict is cached in
//! [`Npol::flows`] under (5-tuple, interface, direction); an allowed flow also caches its
//! reply (reversed 5-tuple, same interface, the other direction) as allowed, so return traffic
//! passes whatever the other direction's policies say. A deny is cached as a drop. Later
//! fragments (no ports) follow their first fragment's verdict. An ICMP
//! error passes when the packet it quotes belongs to an allowed flow in the other direction.
//! A full cache is not a drop: the packet is evaluated alone, and counted.
//!
//! `npol_configure_policies` enables the four features on the interface ([`feature_enable`]);
//! an interface without configuration never reaches these nodes.

use crate::buffer::Buf;
use crate::cnat::nat::{self, Flow, L4};
use crate::cnat::session::{stage, FlowKey, InsertError, Session};
use crate::cnat::snat::SnatConfig;
use crate::cnat::Cnat;
use crate::feature::{Feature, FeatureTables};
use crate::forwarding::{Forwarding, FwdError};
use crate::graph::{GraphBuilder, Node, NodeInfo};
use crate::npol::{verdict, Direction, FiveTuple, Npol, NpolTables, Verdict};
use crate::rcu::Snapshot;
use crate::runtime::Ctx;
use crate::wire::{IcmpHdr, IP_PROTO_TCP};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

pub const RX_IP4: Feature = Feature::new("ip4-unicast", "npol-rx-ip4").runs_after(&["cnat-input-ip4"]);
pub const RX_IP6: Feature = Feature::new("ip6-unicast", "npol-rx-ip6").runs_after(&["cnat-input-ip6"]);
pub const TX_IP4: Feature = Feature::new("ip4-output", "npol-tx-ip4")
    .runs_before(&["cnat-output-ip4", "vxlan4-encap", "ipip4-encap"]);
pub const TX_IP6: Feature = Feature::new("ip6-output", "npol-tx-ip6")
    .runs_before(&["cnat-output-ip6", "vxlan6-encap", "ipip6-encap"]);

/// The features `npol_configure_policies` turns on together.
pub const FEATURES: [Feature; 4] = [RX_IP4, RX_IP6, TX_IP4, TX_IP6];

crate::next_edges! {
    mod next {
        DROP => "error-drop",
    }
}

crate::node_errors! {
    pub mod error {
        DENIED => "policy deny (dropped)",
        TRUNCATED => "truncated headers (dropped)",
        NEW_ALLOWED => "new flow allowed by policy",
        NEW_DENIED => "new flow denied by policy",
        CACHE_FULL => "flow cache full (evaluated alone)",
        FRAGMENT => "fragment without its first fragment's verdict, evaluated without ports",
    }
}

/// Add the npol nodes to a graph; they share the [`Npol`] in `tables`.
pub fn register(b: GraphBuilder, tables: &FeatureTables) -> GraphBuilder {
    let (npol, cnat) = (tables.get::<Npol>(), tables.get::<Cnat>());
    let node = |dir, ip6| Box::new(NpolNode::new(npol.clone(), cnat.clone(), dir, ip6));
    b.feature(RX_IP4, node(Direction::Rx, false))
        .feature(RX_IP6, node(Direction::Rx, true))
        .feature(TX_IP4, node(Direction::Tx, false))
        .feature(TX_IP6, node(Direction::Tx, true))
}

/// Turn policy evaluation on or off for interface `sw`, both directions and families.
pub fn feature_enable(f: &mut Forwarding, sw: u32, on: bool) -> Result<(), FwdError> {
    for feat in FEATURES {
        f.feature_enable(sw, feat.arc, feat.node, on)?;
    }
    Ok(())
}

const ALLOWED: u8 = 1;
const DENIED: u8 = 2;

fn stage_of(d: Direction) -> u8 {
    match d {
        Direction::Rx => 0,
        Direction::Tx => 1,
    }
}

fn other(d: Direction) -> Direction {
    match d {
        Direction::Rx => Direction::Tx,
        Direction::Tx => Direction::Rx,
    }
}

fn key(f: &Flow, sw: u32, d: Direction) -> FlowKey {
    // sw_if_index < MAX_INTERFACES (4096) fits.
    f.key(stage_of(d), sw as u16)
}

/// The key the later fragments of `f`'s datagram share (its id in place of ports).
fn frag_key(f: &Flow, sw: u32, d: Direction) -> FlowKey {
    f.fragment_key(stage_of(d), sw as u16)
}

/// No room for an entry (another worker having added it first is not that).
fn is_full(r: Result<(), InsertError>) -> bool {
    matches!(r, Err(InsertError::Full | InsertError::NoSlot))
}

fn reversed(k: &FlowKey) -> FlowKey {
    FlowKey {
        src: k.dst,
        dst: k.src,
        sport: k.dport,
        dport: k.sport,
        stage: k.stage ^ 1,
        ..*k
    }
}

fn ip_of(a: u128, ip6: bool) -> IpAddr {
    if ip6 {
        IpAddr::V6(Ipv6Addr::from(a))
    } else {
        IpAddr::V4(Ipv4Addr::from(a as u32))
    }
}

/// What the rules see: ports only for TCP/UDP, the real ICMP type and code.
fn five_tuple(f: &Flow, d: &[u8]) -> FiveTuple {
    let (mut icmp_type, mut icmp_code) = (0, 0);
    let icmp = matches!(f.l4, L4::Echo | L4::IcmpError)
        || (f.l4 == L4::Other && (f.proto == 1 || f.proto == 58));
    if icmp {
        if let Some(h) = d.get(f.l4_off..).and_then(IcmpHdr::new) {
            (icmp_type, icmp_code) = (h.icmp_type(), h.code());
        }
    }
    let ports = f.l4 == L4::Ports;
    FiveTuple {
        src: ip_of(f.src, f.ip6),
        dst: ip_of(f.dst, f.ip6),
        proto: f.proto,
        sport: if ports { f.sport } else { 0 },
        dport: if ports { f.dport } else { 0 },
        icmp_type,
        icmp_code,
    }
}

/// npol-rx-ip4/ip6, npol-tx-ip4/ip6.
pub struct NpolNode {
    npol: Arc<Npol>,
    tables: Snapshot<NpolTables>,
    /// cnat's sessions, to find what a DNATed flow's reply will look like.
    cnat: Arc<Cnat>,
    snat: Snapshot<SnatConfig>,
    dir: Direction,
    ip6: bool,
}

impl NpolNode {
    pub fn new(npol: Arc<Npol>, cnat: Arc<Cnat>, dir: Direction, ip6: bool) -> Self {
        Self {
            tables: npol.tables.snapshot(),
            npol,
            snat: cnat.snat.snapshot(),
            cnat,
            dir,
            ip6,
        }
    }

    /// The reply of a flow cnat DNATed before us, as it will reach this interface's tx (from
    /// the VIP): cnat's return entry is keyed by the reversed packet and holds that form.
    fn unnated_reply(&self, k: &FlowKey, fib: u16) -> Option<FlowKey> {
        let mut ck = FlowKey {
            stage: stage::INPUT,
            fib,
            ..reversed(k)
        };
        let ret_fib = self.snat.get().ret_fib_index as u16;
        let hit = self.cnat.sessions.lookup(&ck).or_else(|| {
            ck.fib = ret_fib;
            (ret_fib != fib).then(|| self.cnat.sessions.lookup(&ck)).flatten()
        })?;
        let rw = hit.session.rw;
        Some(FlowKey {
            src: rw.src,
            dst: rw.dst,
            sport: rw.sport,
            dport: rw.dport,
            stage: stage_of(Direction::Tx),
            ..*k
        })
    }

    fn name(&self) -> &'static str {
        match (self.dir, self.ip6) {
            (Direction::Rx, false) => RX_IP4.node,
            (Direction::Rx, true) => RX_IP6.node,
            (Direction::Tx, false) => TX_IP4.node,
            (Direction::Tx, true) => TX_IP6.node,
        }
    }

    /// One packet's verdict, and a counter to bump (not a drop) if any.
    #[inline]
    fn decide(&self, b: &Buf<'_>, l3: usize, sw: u32, now: u32) -> Result<Option<u16>, u16> {
        let (npol, t, dir, ip6) = (&*self.npol, self.tables.get(), self.dir, self.ip6);
        let d = b.data().get(l3..).ok_or(error::TRUNCATED)?;
        let f = if ip6 { nat::flow6(d) } else { nat::flow4(d) }.map_err(|_| error::TRUNCATED)?;
        if f.l4 == L4::Fragment {
            // No ports: follow the first fragment's verdict; without one, evaluated alone.
            if let Some(x) = npol.fragments.lookup(&frag_key(&f, sw, dir)) {
                return if x.session.flags == ALLOWED {
                    Ok(None)
                } else {
                    Err(error::DENIED)
                };
            }
            return match verdict(t, sw, dir, &five_tuple(&f, d)) {
                Verdict::Allow => Ok(Some(error::FRAGMENT)),
                Verdict::Deny => Err(error::DENIED),
            };
        }
        if f.l4 == L4::IcmpError {
            if let Ok(q) = nat::quoted_flow(d, &f) {
                // The quoted packet went the other way through this interface.
                let qk = key(&q, sw, other(dir));
                if npol.flows.lookup(&qk).is_some_and(|x| x.session.flags == ALLOWED) {
                    return Ok(None);
                }
            }
        }
        let k = key(&f, sw, dir);
        let class = u8::from(f.proto == IP_PROTO_TCP);
        let entry = |flags| Session {
            translation: u32::MAX,
            flags,
            class,
            last_seen: now,
            ..Default::default()
        };
        // A first fragment leaves its verdict for the rest of its datagram (best effort: a full
        // table leaves them to be evaluated alone, counted).
        let remember = |allowed: bool| {
            if f.more_frags {
                let flags = if allowed { ALLOWED } else { DENIED };
                let _ = npol.fragments.insert(&frag_key(&f, sw, dir), &entry(flags));
            }
        };
        if let Some(found) = npol.flows.lookup(&k) {
            npol.flows.touch(&found, now, class);
            let allowed = found.session.flags == ALLOWED;
            remember(allowed);
            return if allowed { Ok(None) } else { Err(error::DENIED) };
        }
        let v = verdict(t, sw, dir, &five_tuple(&f, d));
        remember(v == Verdict::Allow);
        let mut full = false;
        match v {
            Verdict::Allow => {
                full |= is_full(npol.flows.insert(&k, &entry(ALLOWED)));
                // The reply passes even where a deny was cached for it before.
                let replies = [
                    Some(reversed(&k)),
                    if dir == Direction::Rx {
                        self.unnated_reply(&k, b.meta.fib_index as u16)
                    } else {
                        None
                    },
                ];
                for rk in replies.iter().flatten() {
                    if npol.flows.insert(rk, &entry(ALLOWED)) == Err(InsertError::Exists) {
                        npol.flows.remove(rk);
                        full |= is_full(npol.flows.insert(rk, &entry(ALLOWED)));
                    }
                }
            }
            Verdict::Deny => full |= is_full(npol.flows.insert(&k, &entry(DENIED))),
        }
        if v == Verdict::Deny {
            Err(error::NEW_DENIED)
        } else if full {
            Ok(Some(error::CACHE_FULL))
        } else {
            Ok(Some(error::NEW_ALLOWED))
        }
    }
}

impl Node for NpolNode {
    fn info(&self) -> NodeInfo {
        NodeInfo::internal(self.name(), next::NAMES, error::NAMES)
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        self.tables.refresh(&self.npol.tables);
        self.snat.refresh(&self.cnat.snat);
        let (npol, dir) = (&*self.npol, self.dir);
        let errs = cx.errs();
        let arc = cx.arc();
        let now = npol.secs(cx.now);
        let fwd = cx.tables.fwd.get();
        let mut view = cx.bufs.view();
        for (&bi, next_out) in bufs.iter().zip(nexts.iter_mut()) {
            let b = view.get(bi);
            let (sw, l3) = match dir {
                Direction::Rx => (b.meta.rx_sw_if_index, 0),
                // After rewrite the packet starts at the L2 header the adjacency wrote.
                Direction::Tx => (
                    b.meta.tx_sw_if_index,
                    fwd.adj(b.meta.adj_index).rewrite_len as usize,
                ),
            };
            *next_out = match self.decide(&b, l3, sw, now) {
                Ok(c) => {
                    if let Some(c) = c {
                        errs.count(c, 1);
                    }
                    arc.next(b.meta.feature_mask)
                }
                Err(error::NEW_DENIED) => {
                    errs.count(error::NEW_DENIED, 1);
                    b.meta.error = errs.error(error::DENIED);
                    next::DROP
                }
                Err(e) => {
                    b.meta.error = errs.error(e);
                    next::DROP
                }
            };
        }
    }
}
