//! The cnat feature nodes (VPP's cnat plugin): `cnat-input-ip4/ip6` on the ip4-unicast /
//! ip6-unicast arcs (DNAT of new flows to a VIP, the session fast path, un-NAT of return
//! traffic) and `cnat-output-ip4/ip6` on the ip4-output / ip6-output arcs, after rewrite and
//! before interface-output (SNAT by the policy). The packet logic is in `crate::cnat::node`;
//! this module is the graph glue: registrations, edges, snapshots, counters.
//!
//! Their shared state is one [`Cnat`], a feature table: the control side takes the same `Arc`
//! from `FeatureTables`. `feature_cnat_enable_disable` is [`feature_enable`].

use crate::buffer::flags::{CNAT_DNAT, CNAT_RETURN};
use crate::buffer::Buf;
use crate::cnat::node::{in_err, input_packet_hashed, key_hash, out_err, output_packet_hashed};
use crate::cnat::session::stage;
use crate::cnat::snat::SnatConfig;
use crate::cnat::translation::TranslationTable;
use crate::cnat::Cnat;
use crate::feature::{Feature, FeatureTables};
use crate::forwarding::{Forwarding, FwdError};
use crate::graph::{GraphBuilder, Node, NodeInfo, MAX_VECTOR};
use crate::nodes::family::set_icmp_error_from;
use crate::nodes::ip4::{dst4, icmp};
use crate::nodes::ip6::{dst6, icmp6};
use crate::rcu::Snapshot;
use crate::runtime::Ctx;
use std::sync::Arc;

/// How many packets ahead of its turn a packet's session entry is prefetched (its bucket was,
/// for the whole vector, before the first packet's turn).
const ENTRY_AHEAD: usize = 4;

pub const INPUT_IP4: Feature = Feature::new("ip4-unicast", "cnat-input-ip4");
pub const INPUT_IP6: Feature = Feature::new("ip6-unicast", "cnat-input-ip6");
// SNAT rewrites the packet a pod sent, so it runs before a tunnel wraps it (VPP: ip4-output
// features run before the midchain's encap).
pub const OUTPUT_IP4: Feature = Feature::new("ip4-output", "cnat-output-ip4")
    .runs_before(&["vxlan4-encap", "ipip4-encap"]);
pub const OUTPUT_IP6: Feature = Feature::new("ip6-output", "cnat-output-ip6")
    .runs_before(&["vxlan6-encap", "ipip6-encap"]);

/// The four features `feature_cnat_enable_disable` turns on together.
pub const FEATURES: [Feature; 4] = [INPUT_IP4, INPUT_IP6, OUTPUT_IP4, OUTPUT_IP6];

crate::next_edges! {
    mod in4_next {
        DROP => "error-drop",
        ICMP_ERROR => "ip4-icmp-error",
    }
}

crate::next_edges! {
    mod in6_next {
        DROP => "error-drop",
        ICMP_ERROR => "ip6-icmp-error",
    }
}

crate::next_edges! {
    mod out_next {
        DROP => "error-drop",
    }
}

// Both input nodes use one set of edge numbers.
const _: () = assert!(in4_next::DROP == in6_next::DROP);
const _: () = assert!(in4_next::ICMP_ERROR == in6_next::ICMP_ERROR);

/// Add the cnat nodes to a graph; they share the [`Cnat`] in `tables`.
pub fn register(b: GraphBuilder, tables: &FeatureTables) -> GraphBuilder {
    let cnat = tables.get::<Cnat>();
    b.feature(INPUT_IP4, Box::new(CnatInput::new(cnat.clone(), false)))
        .feature(INPUT_IP6, Box::new(CnatInput::new(cnat.clone(), true)))
        .feature(OUTPUT_IP4, Box::new(CnatOutput::new(cnat.clone(), false)))
        .feature(OUTPUT_IP6, Box::new(CnatOutput::new(cnat, true)))
}

/// Turn cnat on or off for interface `sw`: its input features (rx side) and its output
/// features (tx side), both families, as VPP's `feature_cnat_enable_disable`. The API and the
/// CLI both come here.
pub fn feature_enable(f: &mut Forwarding, sw: u32, on: bool) -> Result<(), FwdError> {
    for feat in FEATURES {
        f.feature_enable(sw, feat.arc, feat.node, on)?;
    }
    Ok(())
}

/// cnat-input-ip4 / cnat-input-ip6.
pub struct CnatInput {
    cnat: Arc<Cnat>,
    tr: Snapshot<TranslationTable>,
    snat: Snapshot<SnatConfig>,
    ip6: bool,
}

impl CnatInput {
    pub const IP4: &'static str = INPUT_IP4.node;
    pub const IP6: &'static str = INPUT_IP6.node;

    pub fn new(cnat: Arc<Cnat>, ip6: bool) -> Self {
        Self {
            tr: cnat.translations.snapshot(),
            snat: cnat.snat.snapshot(),
            cnat,
            ip6,
        }
    }
}

impl Node for CnatInput {
    fn info(&self) -> NodeInfo {
        if self.ip6 {
            NodeInfo::internal(Self::IP6, in6_next::NAMES, in_err::NAMES)
        } else {
            NodeInfo::internal(Self::IP4, in4_next::NAMES, in_err::NAMES)
        }
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        self.tr.refresh(&self.cnat.translations);
        self.snat.refresh(&self.cnat.snat);
        let (cnat, tr, ip6) = (&*self.cnat, self.tr.get(), self.ip6);
        let snat = self.snat.get();
        let errs = cx.errs();
        let arc = cx.arc();
        let now = cnat.secs(cx.now);
        let mut view = cx.bufs.view();
        let mut hashes = [0u64; MAX_VECTOR];
        for (h, &bi) in hashes.iter_mut().zip(bufs.iter()) {
            let b = view.get(bi);
            *h = key_hash(b.data(), ip6, stage::INPUT, b.meta.fib_index as u16);
            cnat.sessions.prefetch_bucket(*h);
        }
        for (i, (&bi, next)) in bufs.iter().zip(nexts.iter_mut()).enumerate() {
            if let Some(&h) = hashes.get(i + ENTRY_AHEAD).filter(|&&h| h != 0) {
                cnat.sessions.prefetch_entry(h);
            }
            let h = hashes.get(i).copied().unwrap_or(0);
            let mut b = view.get(bi);
            *next = match input_packet_hashed(cnat, tr, snat, &mut b, ip6, now, h) {
                Ok(c) => {
                    if let Some(c) = c {
                        errs.count(c, 1);
                        if c == in_err::REOPENED {
                            errs.count(in_err::NEW_SESSIONS, 1);
                        }
                    }
                    arc.next(b.meta.feature_mask)
                }
                Err(in_err::NO_BACKENDS) => {
                    errs.count(in_err::NO_BACKENDS, 1);
                    // From the VIP and through the return FIB, not from the receiving
                    // interface in its FIB: in calico's pod VRF the client's own address is
                    // local (the error would never leave), and a pod's kernel drops an error
                    // whose source is its own address.
                    let (vip, ty, code) = if ip6 {
                        (dst6(&b), icmp6::DEST_UNREACH, icmp6::PORT_UNREACH)
                    } else {
                        (dst4(&b) as u128, icmp::DEST_UNREACH, icmp::PORT_UNREACH)
                    };
                    set_icmp_error_from(&mut b, ty, code, vip, snat.ret_fib_index);
                    in4_next::ICMP_ERROR
                }
                Err(e) => {
                    b.meta.error = errs.error(e);
                    in4_next::DROP
                }
            };
        }
    }
}

/// cnat-output-ip4 / cnat-output-ip6.
pub struct CnatOutput {
    cnat: Arc<Cnat>,
    snat: Snapshot<SnatConfig>,
    ip6: bool,
}

impl CnatOutput {
    pub const IP4: &'static str = OUTPUT_IP4.node;
    pub const IP6: &'static str = OUTPUT_IP6.node;

    pub fn new(cnat: Arc<Cnat>, ip6: bool) -> Self {
        Self {
            snat: cnat.snat.snapshot(),
            cnat,
            ip6,
        }
    }
}

impl Node for CnatOutput {
    fn info(&self) -> NodeInfo {
        let name = if self.ip6 { Self::IP6 } else { Self::IP4 };
        NodeInfo::internal(name, out_next::NAMES, out_err::NAMES)
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        self.snat.refresh(&self.cnat.snat);
        let (cnat, cfg, ip6) = (&*self.cnat, self.snat.get(), self.ip6);
        let errs = cx.errs();
        let arc = cx.arc();
        let now = cnat.secs(cx.now);
        let fwd = cx.tables.fwd.get();
        let mut view = cx.bufs.view();
        // The packet starts at the L2 header the rewrite wrote: the adjacency says how long.
        let l3_of = |b: &Buf<'_>| fwd.adj(b.meta.adj_index).rewrite_len as usize;
        let mut hashes = [0u64; MAX_VECTOR];
        for (h, &bi) in hashes.iter_mut().zip(bufs.iter()) {
            let b = view.get(bi);
            // Return traffic (un-NATed on input) looks nothing up here, DNATed traffic
            // seldom (only when the SNAT policy wants it: hashed then).
            if b.meta.flags & (CNAT_RETURN | CNAT_DNAT) == 0 {
                let d = b.data().get(l3_of(&b)..).unwrap_or(&[]);
                *h = key_hash(d, ip6, stage::OUTPUT, b.meta.fib_index as u16);
                cnat.sessions.prefetch_bucket(*h);
            }
        }
        for (i, (&bi, next)) in bufs.iter().zip(nexts.iter_mut()).enumerate() {
            if let Some(&h) = hashes.get(i + ENTRY_AHEAD).filter(|&&h| h != 0) {
                cnat.sessions.prefetch_entry(h);
            }
            let h = hashes.get(i).copied().unwrap_or(0);
            let mut b = view.get(bi);
            let l3 = l3_of(&b);
            *next = match output_packet_hashed(cnat, cfg, &mut b, l3, ip6, now, h) {
                Ok(c) => {
                    if let Some(c) = c {
                        errs.count(c, 1);
                        if c == out_err::REOPENED {
                            errs.count(out_err::NEW_SESSIONS, 1);
                        }
                    }
                    arc.next(b.meta.feature_mask)
                }
                Err(e) => {
                    b.meta.error = errs.error(e);
                    out_next::DROP
                }
            };
        }
    }
}
