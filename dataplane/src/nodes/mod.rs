//! The forwarding nodes and the standard graph.

pub mod arp;
pub mod ethernet;
pub mod gso;
pub mod ip4;
pub mod ip6;
pub mod output;

use crate::graph::{input_node, tx_node, Graph, Node};

/// Features that can sit on the ip4-unicast / ip6-unicast arcs, in the order they run.
/// Policy, NAT and ACL nodes register here; the forwarding nodes never change for them.
#[derive(Clone, Default)]
pub struct FeatureArcs {
    pub ip4_unicast: Vec<&'static str>,
    pub ip6_unicast: Vec<&'static str>,
}

/// Edges of a node on a feature arc: `base + k` leads to feature `k`, `base + n` to the end.
#[derive(Clone, Copy, Debug)]
pub struct ArcEdges {
    pub base: u16,
    pub n: u16,
}

impl ArcEdges {
    /// The edge to the first enabled feature after position `after` (None: from the arc start).
    #[inline(always)]
    pub fn next(&self, mask: u32, after: Option<u16>) -> u16 {
        let rest = match after {
            None => mask,
            Some(p) if p >= 31 => 0,
            Some(p) => mask & !((2u32 << p) - 1),
        };
        if rest == 0 {
            self.base + self.n
        } else {
            self.base + rest.trailing_zeros() as u16
        }
    }

    /// Next-node names to append for this arc: every feature, then the end node.
    pub fn names(features: &[&'static str], end: &'static str) -> Vec<&'static str> {
        let mut v = features.to_vec();
        v.push(end);
        v
    }
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

/// Device node names the standard graph knows (input, tx).
pub const DEVICE_INPUT_NODES: &[&str] = &[
    "pg-input",
    "pcap-input",
    "tap-input",
    "tun-input",
    "memif-input",
    "af-packet-input",
    "af-xdp-input",
    "dpdk-input",
];
pub const DEVICE_TX_NODES: &[&str] = &[
    "pg-tx",
    "null-tx",
    "pcap-tx",
    "tap-tx",
    "memif-tx",
    "af-packet-tx",
    "af-xdp-tx",
    "dpdk-tx",
];

/// Build the standard graph: device nodes, L2/L3 forwarding, the given features, and `extra`
/// nodes (feature implementations, tests).
pub fn standard_graph(arcs: &FeatureArcs, extra: Vec<Box<dyn Node>>) -> Result<Graph, String> {
    let mut nodes: Vec<Box<dyn Node>> = vec![
        Box::new(output::ErrorDrop),
        Box::new(ethernet::EthernetInput),
        Box::new(arp::ArpInput),
        Box::new(arp::Ip4Arp::default()),
        Box::new(ip4::Ip4Input::new(&arts(&arcs.ip4_unicast))),
        Box::new(ip4::Ip4Lookup::default()),
        Box::new(ip4::Ip4Rewrite),
        Box::new(ip4::Ip4Local),
        Box::new(ip4::Ip4IcmpError),
        Box::new(output::InterfaceOutput),
        Box::new(gso::GsoSegment::default()),
    ];
    nodes.extend(ip6::nodes(&arts(&arcs.ip6_unicast)));
    for name in DEVICE_INPUT_NODES {
        nodes.push(input_node(name));
    }
    for name in DEVICE_TX_NODES {
        nodes.push(tx_node(name));
    }
    nodes.extend(extra);
    Graph::build(nodes)
}

fn arts(v: &[&'static str]) -> Vec<&'static str> {
    v.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arc_next_skips_disabled_features() {
        let a = ArcEdges { base: 3, n: 4 };
        assert_eq!(a.next(0, None), 7);
        assert_eq!(a.next(0b0101, None), 3);
        assert_eq!(a.next(0b0101, Some(0)), 5);
        assert_eq!(a.next(0b0101, Some(2)), 7);
        assert_eq!(a.next(0b1000, Some(3)), 7);
    }
}
