//! The node graph: nodes with named next edges, resolved once when the graph is built.
//!
//! A node receives a vector of buffer indices and writes, for each packet, the edge it leaves
//! by. The dispatcher (see [`crate::runtime`]) moves the packets into the next nodes' frames.
//! A node may also replace a buffer index in place (an ICMP error built in a new buffer) or
//! take a packet out of the graph by giving it the edge [`CONSUMED`].

use crate::buffer::Buf;
use crate::runtime::Ctx;

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
pub struct NodeInfo {
    pub name: &'static str,
    pub kind: NodeKind,
    /// Edge `k` leads to the node named `next_nodes[k]`.
    pub next_nodes: Vec<&'static str>,
    /// Counter names; index = the node's local error code.
    pub errors: &'static [&'static str],
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
}

/// A node whose only purpose is to name an input or tx node in the graph and its counters.
pub struct Placeholder(pub NodeInfo);

impl Node for Placeholder {
    fn info(&self) -> NodeInfo {
        NodeInfo {
            name: self.0.name,
            kind: self.0.kind,
            next_nodes: self.0.next_nodes.clone(),
            errors: self.0.errors,
        }
    }
    fn process(&mut self, _cx: &mut Ctx<'_>, _bufs: &mut [u32], nexts: &mut [u16]) {
        nexts.fill(0);
    }
}

/// Edges every device input node has, so a driver can say where each packet goes.
pub mod rx_next {
    pub const ETHERNET: u16 = 0;
    pub const IP4: u16 = 1;
    pub const IP6: u16 = 2;
    pub const DROP: u16 = 3;
    pub const NAMES: [&str; 4] = ["ethernet-input", "ip4-input", "ip6-input", "error-drop"];
}

/// Node-local error codes of every device input node.
pub const RX_ERRORS: &[&str] = &["rx packets dropped: no buffers", "rx packets truncated"];

/// Register a device input node type (e.g. "memif-input").
pub fn input_node(name: &'static str) -> Box<dyn Node> {
    Box::new(Placeholder(NodeInfo {
        name,
        kind: NodeKind::Input,
        next_nodes: rx_next::NAMES.to_vec(),
        errors: RX_ERRORS,
    }))
}

/// Node-local error codes of every device tx node.
pub const TX_ERRORS: &[&str] = &["tx packets dropped: device queue full", "interface down"];

/// Register a device tx node type (e.g. "memif-tx").
pub fn tx_node(name: &'static str) -> Box<dyn Node> {
    Box::new(Placeholder(NodeInfo {
        name,
        kind: NodeKind::Tx,
        next_nodes: vec![],
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
}

impl Graph {
    /// Build a graph from node instances, resolving every named edge.
    pub fn build(nodes: Vec<Box<dyn Node>>) -> Result<Self, String> {
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
        let mut edges = Vec::with_capacity(infos.len());
        let mut error_base = Vec::with_capacity(infos.len());
        let mut error_names = Vec::new();
        for info in &infos {
            let mut e = Vec::with_capacity(info.next_nodes.len());
            for next in &info.next_nodes {
                let t = names.iter().position(|n| n == next).ok_or_else(|| {
                    format!(
                        "node '{}' has next node '{}', which does not exist",
                        info.name, next
                    )
                })?;
                e.push(t as NodeIndex);
            }
            edges.push(e);
            error_base.push(error_names.len() as u16);
            error_names.extend(info.errors.iter().map(|d| (info.name, *d)));
        }
        Ok(Self {
            kinds: infos.iter().map(|i| i.kind).collect(),
            edge_names: infos.iter().map(|i| i.next_nodes.clone()).collect(),
            nodes,
            names,
            edges,
            error_base,
            error_names,
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
