//! ip4-udp-deny: a feature on the ip4-unicast arc that drops UDP packets to denied destination
//! ports. It is small on purpose: it shows everything a feature brings in one module.
//!
//! - Its registration ([`FEATURE`]) and node, added by [`register`].
//! - A shared table ([`DeniedPorts`]) the control side publishes whole; the node keeps a
//!   snapshot and refreshes it once per vector (no lock unless it changed).
//! - Per-worker state (`passed`): a field of the node, since each worker has its own instance.
//!
//! Enable it per interface with `set interface feature <if> ip4-udp-deny arc ip4-unicast`.

use crate::feature::{Feature, FeatureTables};
use crate::graph::{GraphBuilder, Node, NodeInfo, NodeKind};
use crate::rcu::{Published, Snapshot};
use crate::runtime::Ctx;
use crate::wire::{Ip4Hdr, IP_PROTO_UDP};
use std::sync::Arc;

/// Where the feature sits: before nothing in particular, on ip4-unicast.
pub const FEATURE: Feature = Feature::new("ip4-unicast", "ip4-udp-deny");

/// The UDP destination ports to drop, sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeniedPorts(Vec<u16>);

impl DeniedPorts {
    pub fn new(mut ports: Vec<u16>) -> Self {
        ports.sort_unstable();
        ports.dedup();
        Self(ports)
    }
    #[inline]
    pub fn denies(&self, port: u16) -> bool {
        !self.0.is_empty() && self.0.binary_search(&port).is_ok()
    }
}

/// The feature's shared table, as kept in [`FeatureTables`].
pub type Table = Published<DeniedPorts>;

crate::next_edges! {
    mod next {
        DROP => "error-drop",
    }
}

crate::node_errors! {
    pub mod error {
        DENIED => "udp to a denied port (dropped)",
    }
}

pub struct UdpDeny {
    table: Arc<Table>,
    snap: Snapshot<DeniedPorts>,
    /// Packets this worker let through: per-worker state, kept in the node instance.
    pub passed: u64,
}

impl UdpDeny {
    pub fn new(table: Arc<Table>) -> Self {
        Self {
            snap: table.snapshot(),
            table,
            passed: 0,
        }
    }
}

/// Add the feature to a graph, sharing its table through `tables`.
pub fn register(b: GraphBuilder, tables: &FeatureTables) -> GraphBuilder {
    b.feature(FEATURE, Box::new(UdpDeny::new(tables.get::<Table>())))
}

impl Node for UdpDeny {
    fn info(&self) -> NodeInfo {
        NodeInfo {
            name: FEATURE.node,
            kind: NodeKind::Internal,
            next_nodes: next::NAMES,
            errors: error::NAMES,
        }
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        self.snap.refresh(&self.table);
        let denied = self.snap.get();
        let errs = cx.errs();
        let arc = cx.arc();
        for (&bi, next_out) in bufs.iter().zip(nexts.iter_mut()) {
            let b = cx.bufs.get(bi);
            let d = b.data();
            let port = Ip4Hdr::new(d)
                .filter(|h| h.protocol() == IP_PROTO_UDP)
                .and_then(|h| d.get(h.header_len() + 2..h.header_len() + 4))
                .map(|p| u16::from_be_bytes([p[0], p[1]]));
            if port.is_some_and(|p| denied.denies(p)) {
                b.meta.error = errs.error(error::DENIED);
                *next_out = next::DROP;
            } else {
                self.passed += 1;
                *next_out = arc.next(b.meta.feature_mask);
            }
        }
    }
}
