//! The node graph: nodes with named next edges, resolved once when the graph is built.
//!
//! A node receives a vector of buffer indices and writes, for each packet, the edge it leaves
//! by. The dispatcher (see [`crate::runtime`]) moves the packets into the next nodes' frames.
//! A node may also replace a buffer index in place (an ICMP error built in a new buffer) or
//! take a packet out of the graph by giving it the edge [`CONSUMED`].
//!
//! A node declares its edges with [`next_edges!`] and its counters with [`node_errors!`]: one
//! line per edge or counter ties the name to the `u16` the per-packet code uses. A graph is put
//! together by [`GraphBuilder`] from nodes, device registrations ([`DeviceNodes`]) and feature
//! registrations ([`crate::feature::Feature`]).

use crate::buffer::Buf;
use crate::feature::{ArcEdges, Feature, FeatureSet};
use crate::runtime::Ctx;
use std::sync::Arc;

/// Declare a node's next edges: `next_edges! { pub mod next { DROP => "error-drop", .. } }`
/// makes `next::DROP: u16 = 0`, .. and `next::NAMES`, the node names by edge.
#[macro_export]
macro_rules! next_edges {
    ($(#[$m:meta])* $vis:vis mod $module:ident { $($(#[$a:meta])* $id:ident => $node:literal),+ $(,)? }) => {
        $(#[$m])*
        $vis mod $module {
            #[allow(non_camel_case_types, clippy::upper_case_acronyms, dead_code)]
            #[repr(u16)]
            enum Index { $($id),+ }
            $($(#[$a])* #[allow(dead_code)] pub const $id: u16 = Index::$id as u16;)+
            /// Next-node names; index = edge.
            pub const NAMES: &[&str] = &[$($node),+];
        }
    };
}

/// Declare a node's error counters: `node_errors! { pub mod error { TOO_SHORT => "frame too
/// short", .. } }` makes `error::TOO_SHORT: u16 = 0`, .. and `error::NAMES`, the descriptions.
#[macro_export]
macro_rules! node_errors {
    ($(#[$m:meta])* $vis:vis mod $module:ident { $($(#[$a:meta])* $id:ident => $desc:literal),+ $(,)? }) => {
        $(#[$m])*
        $vis mod $module {
            #[allow(non_camel_case_types, clippy::upper_case_acronyms, dead_code)]
            #[repr(u16)]
            enum Index { $($id),+ }
            $($(#[$a])* #[allow(dead_code)] pub const $id: u16 = Index::$id as u16;)+
            /// Counter descriptions; index = the node's local error code.
            pub const NAMES: &[&str] = &[$($desc),+];
        }
    };
}

/// Index of a node in its graph.
pub type NodeIndex = u16;
/// Largest vector a node is handed at once.
pub const MAX_VECTOR: usize = 256;
/// How many packets ahead a node prefetches: far enough to cover an L2 hit, since a
/// 256-packet vector's metadata and first data lines (32 KiB) do not all stay in L1.
pub const PREFETCH_AHEAD: usize = 8;
/// The edge for packets that a node transmitted, freed, or handed elsewhere itself.
pub const CONSUMED: u16 = u16::MAX;

/// Whether a node is polled for packets or handed them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// Processes vectors handed to it.
    Internal,
    /// Device rx: polled through an `RxQueue`, never handed vectors.
    Input,
    /// Accounts time spent in device tx; never handed vectors.
    Tx,
}

/// What a node tells the graph about itself.
#[derive(Clone, Copy)]
pub struct NodeInfo {
    pub name: &'static str,
    pub kind: NodeKind,
    /// Edge `k` leads to the node named `next_nodes[k]` (a [`next_edges!`] `NAMES`). A node on
    /// a feature arc gets the arc's edges appended by the builder; it never lists them.
    pub next_nodes: &'static [&'static str],
    /// Counter names; index = the node's local error code (a [`node_errors!`] `NAMES`).
    pub errors: &'static [&'static str],
}

impl NodeInfo {
    /// An internal node (handed vectors): its name, edges and counters.
    pub const fn internal(
        name: &'static str,
        next_nodes: &'static [&'static str],
        errors: &'static [&'static str],
    ) -> Self {
        Self {
            name,
            kind: NodeKind::Internal,
            next_nodes,
            errors,
        }
    }
}

/// A graph node. One instance per worker thread, so its state is thread-local.
pub trait Node: Send {
    fn info(&self) -> NodeInfo;

    /// Decide each packet's next edge. `bufs` and `nexts` have the same length (<= MAX_VECTOR).
    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]);

    /// One line describing a traced packet as this node saw it (after `process`).
    fn trace(&self, _b: &Buf<'_>) -> String {
        String::new()
    }

    /// The builder tells a node on a feature arc its arc edges (also in `Ctx::arc`). A start
    /// node with a hot loop keeps them in `self`, so its common path holds no extra registers.
    fn attach_arc(&mut self, _arc: ArcEdges) {}

    /// The builder shows every node the arcs' features in order, for a node that must know a
    /// later feature's bit in `feature_mask` (to skip it for one packet).
    fn attach_features(&mut self, _set: &FeatureSet) {}
}

/// A node whose only purpose is to name an input or tx node in the graph and its counters.
pub struct Placeholder(pub NodeInfo);

impl Node for Placeholder {
    fn info(&self) -> NodeInfo {
        self.0
    }
    fn process(&mut self, _cx: &mut Ctx<'_>, _bufs: &mut [u32], nexts: &mut [u16]) {
        nexts.fill(0);
    }
}

next_edges! {
    /// Edges every device input node has, so a driver can say where each packet goes.
    pub mod rx_next {
        ETHERNET => "ethernet-input",
        IP4 => "ip4-input",
        IP6 => "ip6-input",
        DROP => "error-drop",
    }
}

node_errors! {
    /// Node-local error codes of every device input node.
    pub mod rx_error {
        NO_BUFFERS => "rx packets dropped: no buffers",
        TRUNCATED => "rx packets truncated",
    }
}

node_errors! {
    /// Node-local error codes of every device tx node.
    pub mod tx_error {
        QUEUE_FULL => "tx packets dropped: device queue full",
        DOWN => "interface down",
    }
}

/// Node-local error codes of every device input node.
pub const RX_ERRORS: &[&str] = rx_error::NAMES;
/// Node-local error codes of every device tx node.
pub const TX_ERRORS: &[&str] = tx_error::NAMES;

/// The graph nodes a driver brings: its rx node and its tx node. Each driver exports one
/// (e.g. `memif::NODES`) and the graph is built with the drivers the process links.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceNodes {
    pub input: Option<&'static str>,
    pub tx: Option<&'static str>,
}

impl DeviceNodes {
    pub const fn new(input: &'static str, tx: &'static str) -> Self {
        Self {
            input: Some(input),
            tx: Some(tx),
        }
    }
    pub const fn input_only(input: &'static str) -> Self {
        Self {
            input: Some(input),
            tx: None,
        }
    }
    pub const fn tx_only(tx: &'static str) -> Self {
        Self {
            input: None,
            tx: Some(tx),
        }
    }
}

/// Register a device input node type (e.g. "memif-input").
pub fn input_node(name: &'static str) -> Box<dyn Node> {
    Box::new(Placeholder(NodeInfo {
        name,
        kind: NodeKind::Input,
        next_nodes: rx_next::NAMES,
        errors: RX_ERRORS,
    }))
}

/// Register a device tx node type (e.g. "memif-tx").
pub fn tx_node(name: &'static str) -> Box<dyn Node> {
    Box::new(Placeholder(NodeInfo {
        name,
        kind: NodeKind::Tx,
        next_nodes: &[],
        errors: TX_ERRORS,
    }))
}

/// A built graph: nodes, resolved edges, and the error-counter index space.
pub struct Graph {
    pub nodes: Vec<Box<dyn Node>>,
    pub names: Vec<&'static str>,
    pub kinds: Vec<NodeKind>,
    /// edges[node][edge] = target node.
    pub edges: Vec<Vec<NodeIndex>>,
    /// Edge names, for traces.
    pub edge_names: Vec<Vec<&'static str>>,
    /// First global error index of each node.
    pub error_base: Vec<u16>,
    /// (node, description) of each global error index.
    pub error_names: Vec<(&'static str, &'static str)>,
    /// Each node's place on its feature arc (start or feature), or `ArcEdges::NONE`.
    pub arc_edges: Vec<ArcEdges>,
    /// The features of every arc, in the order they run.
    pub features: Arc<FeatureSet>,
}

/// Collects nodes, device nodes and features, then resolves them into a [`Graph`].
#[derive(Default)]
pub struct GraphBuilder {
    nodes: Vec<Box<dyn Node>>,
    features: Vec<Feature>,
}

impl GraphBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a node.
    pub fn node(mut self, node: Box<dyn Node>) -> Self {
        self.nodes.push(node);
        self
    }

    /// Add several nodes.
    pub fn nodes(mut self, nodes: impl IntoIterator<Item = Box<dyn Node>>) -> Self {
        self.nodes.extend(nodes);
        self
    }

    /// Add a driver's input and tx nodes. Registering the same device twice is harmless.
    pub fn device(mut self, d: DeviceNodes) -> Self {
        let have = |s: &Self, n: &str| s.nodes.iter().any(|x| x.info().name == n);
        if let Some(i) = d.input.filter(|n| !have(&self, n)) {
            self.nodes.push(input_node(i));
        }
        if let Some(t) = d.tx.filter(|n| !have(&self, n)) {
            self.nodes.push(tx_node(t));
        }
        self
    }

    /// Add the nodes of several drivers: every input node, then every tx node.
    pub fn devices(self, ds: &[DeviceNodes]) -> Self {
        let inputs = ds.iter().fold(self, |b, d| {
            b.device(DeviceNodes {
                input: d.input,
                tx: None,
            })
        });
        ds.iter().fold(inputs, |b, d| {
            b.device(DeviceNodes {
                input: None,
                tx: d.tx,
            })
        })
    }

    /// Add a feature node and its place on an arc (VPP's `VNET_FEATURE_INIT`).
    pub fn feature(mut self, f: Feature, node: Box<dyn Node>) -> Self {
        self.features.push(f);
        self.nodes.push(node);
        self
    }

    /// Resolve every named edge, order each arc's features and give each node on an arc its
    /// arc edges.
    pub fn build(self) -> Result<Graph, String> {
        Graph::build_with(self.nodes, &self.features)
    }
}

impl Graph {
    /// Build a graph from node instances, resolving every named edge (no features).
    pub fn build(nodes: Vec<Box<dyn Node>>) -> Result<Self, String> {
        Self::build_with(nodes, &[])
    }

    fn build_with(nodes: Vec<Box<dyn Node>>, features: &[Feature]) -> Result<Self, String> {
        let infos: Vec<NodeInfo> = nodes.iter().map(|n| n.info()).collect();
        let mut names = Vec::with_capacity(infos.len());
        for info in &infos {
            if names.contains(&info.name) {
                return Err(format!("node '{}' registered twice", info.name));
            }
            names.push(info.name);
        }
        if names.len() >= CONSUMED as usize {
            return Err("too many nodes".into());
        }
        let set = FeatureSet::order(features, &names)?;
        let find = |from: &str, next: &str| {
            names
                .iter()
                .position(|n| *n == next)
                .map(|t| t as NodeIndex)
                .ok_or_else(|| {
                    format!("node '{from}' has next node '{next}', which does not exist")
                })
        };
        let mut edges = Vec::with_capacity(infos.len());
        let mut edge_names = Vec::with_capacity(infos.len());
        let mut arc_edges = Vec::with_capacity(infos.len());
        let mut error_base = Vec::with_capacity(infos.len());
        let mut error_names = Vec::new();
        for info in &infos {
            let mut e = Vec::with_capacity(info.next_nodes.len());
            let mut en = info.next_nodes.to_vec();
            for next in info.next_nodes {
                e.push(find(info.name, next)?);
            }
            let mut ae = ArcEdges::NONE;
            let place = set.place_of(info.name)?.filter(|&(arc, _)| {
                // A graph without the arc's end (a partial test graph) cannot use the arc; one
                // with features on it was refused by FeatureSet::order already.
                !set.features(arc).is_empty() || names.contains(&crate::feature::ARCS[arc].end)
            });
            if let Some((arc, skip)) = place {
                // The arc's edges follow the node's own: each feature in order, then the end.
                let arc_nodes = set.arc_nodes(arc);
                ae = ArcEdges {
                    base: e.len() as u16,
                    n: (arc_nodes.len() - 1) as u16,
                    skip,
                };
                for next in arc_nodes {
                    e.push(find(info.name, next)?);
                    en.push(next);
                }
            }
            edges.push(e);
            edge_names.push(en);
            arc_edges.push(ae);
            error_base.push(error_names.len() as u16);
            error_names.extend(info.errors.iter().map(|d| (info.name, *d)));
        }
        let mut nodes = nodes;
        for (n, ae) in nodes.iter_mut().zip(&arc_edges) {
            if *ae != ArcEdges::NONE {
                n.attach_arc(*ae);
            }
            n.attach_features(&set);
        }
        Ok(Self {
            kinds: infos.iter().map(|i| i.kind).collect(),
            edge_names,
            nodes,
            names,
            edges,
            error_base,
            error_names,
            arc_edges,
            features: Arc::new(set),
        })
    }

    pub fn index(&self, name: &str) -> Option<NodeIndex> {
        self.names
            .iter()
            .position(|n| *n == name)
            .map(|i| i as NodeIndex)
    }

    /// Global error index of `node`'s local error `code`.
    pub fn error_index(&self, node: &str, code: u16) -> Option<u16> {
        self.index(node).map(|n| self.error_base[n as usize] + code)
    }
}
