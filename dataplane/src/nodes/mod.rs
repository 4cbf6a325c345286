//! The forwarding nodes and the standard graph.

pub mod arp;
pub mod ethernet;
pub mod family;
pub mod gso;
pub mod ip4;
pub mod ip6;
pub mod mcast;
pub mod output;
pub mod tunnel;

use crate::feature::{ArcEdges, FeatureTables};
use crate::graph::{DeviceNodes, Graph, GraphBuilder, Node};

/// Feature modules. Each has `register(GraphBuilder, &FeatureTables) -> GraphBuilder`; adding a
/// feature is its module plus its name in this list.
macro_rules! feature_modules {
    ($($m:ident),* $(,)?) => {
        $(pub mod $m;)*
        /// Register every feature module's nodes and registrations on `b`.
        pub fn register_features(b: GraphBuilder, tables: &FeatureTables) -> GraphBuilder {
            $(let b = $m::register(b, tables);)*
            b
        }
    };
}

feature_modules![
    udp_deny, urpf, classify, pbl, cnat, npol, ttl_fixup, vxlan, ipip, esp, ike, wireguard, srv6,
    gso_inline
];

/// A packet the lookup found is for us: onto the rx interface's local arc when it has features
/// there (`mask_of` picks the family's mask), else along `local`. Out of line: forwarded
/// packets never come here.
#[cold]
#[inline(never)]
pub(crate) fn local_next(
    arc: &ArcEdges,
    meta: &mut crate::buffer::BufferMeta,
    tables: &crate::tables::WorkerTables,
    local: u16,
    mask_of: impl Fn(&crate::tables::IfFast) -> u32,
) -> u16 {
    let mask = mask_of(&tables.ifs.get().fast(meta.rx_sw_if_index));
    if mask == 0 {
        local
    } else {
        arc.enter(meta, mask)
    }
}

/// The last step of the ip4/ip6 flow hashes (murmur3's finalizer). A multiply only carries bits
/// upwards, so it folds between rounds: every input bit reaches the low bits that pick a bucket.
#[inline(always)]
pub(crate) fn flow_hash_finish(mut x: u64) -> u32 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    x as u32
}

/// Address resolution (ARP requests, neighbor solicitations) at most once per `gap` clocks per
/// target, per thread: a small table of recently asked targets indexed by a hash of the address.
#[derive(Default)]
pub struct ResolveThrottle {
    recent: Vec<(u128, u64)>,
}

const RESOLVE_SLOTS: usize = 1024;

impl ResolveThrottle {
    #[inline]
    fn slot(target: u128) -> usize {
        (((target ^ target >> 64) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54) as usize
            % RESOLVE_SLOTS
    }

    /// `target` was asked less than `gap` clocks before `now`.
    #[inline]
    pub fn throttled(&self, target: u128, now: u64, gap: u64) -> bool {
        self.recent
            .get(Self::slot(target))
            .is_some_and(|&(ip, t)| ip == target && now.wrapping_sub(t) < gap)
    }

    /// Record that `target` is being asked now.
    #[inline]
    pub fn asked(&mut self, target: u128, now: u64) {
        if self.recent.is_empty() {
            self.recent = vec![(0, 0); RESOLVE_SLOTS];
        }
        self.recent[Self::slot(target)] = (target, now);
    }
}

/// The forwarding nodes every rvpp graph has: L2, ARP, IPv4, IPv6, output and drop.
pub fn forwarding_nodes() -> Vec<Box<dyn Node>> {
    let mut nodes: Vec<Box<dyn Node>> = vec![
        Box::new(output::ErrorDrop),
        Box::new(ethernet::EthernetInput),
        Box::new(arp::ArpInput),
        Box::new(arp::Ip4Arp::default()),
        Box::new(ip4::Ip4Input::default()),
        Box::new(ip4::Ip4Lookup::default()),
        Box::new(ip4::Ip4Rewrite::default()),
        Box::new(ip4::Ip4Local),
        Box::new(ip4::Ip4IcmpError::default()),
        Box::new(output::InterfaceOutput),
        Box::new(gso::GsoSegment::default()),
        Box::new(mcast::McastRewrite { ip6: false }),
        Box::new(mcast::McastRewrite { ip6: true }),
    ];
    nodes.extend(ip6::nodes());
    nodes
}

/// A builder holding the forwarding nodes and every feature module, whose shared tables come
/// from `tables`; add devices (and more features), then `build()`.
pub fn standard_with(tables: &FeatureTables) -> GraphBuilder {
    register_features(GraphBuilder::new().nodes(forwarding_nodes()), tables)
}

/// [`standard_with`] with feature tables of its own (tests that do not configure features).
pub fn standard() -> GraphBuilder {
    standard_with(&FeatureTables::default())
}

/// The forwarding nodes and the given drivers' nodes, with no features.
pub fn standard_graph(devices: &[DeviceNodes]) -> Result<Graph, String> {
    standard().devices(devices).build()
}
