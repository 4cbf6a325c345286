//! rvpp devices. Each implements the engine's `RxQueue`/`TxQueue` traits.
pub mod af_packet;
pub mod af_xdp;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod memif;
pub mod netdev;
pub mod netns;
pub mod pcap;
pub mod pg;
pub mod shm;
pub mod tap;
pub mod vnet_hdr;
pub mod wait;

use rvpp_dataplane::feature::FeatureTables;
use rvpp_dataplane::graph::{DeviceNodes, Graph, GraphBuilder};

/// dpdk's nodes exist in every build (as before), so graphs, counters and `show runtime` do not
/// depend on the build's features.
pub const DPDK_NODES: DeviceNodes = DeviceNodes::new(DPDK_INPUT_NODE, DPDK_TX_NODE);
pub const DPDK_INPUT_NODE: &str = "dpdk-input";
pub const DPDK_TX_NODE: &str = "dpdk-tx";

/// The graph nodes of every driver in this crate. A new driver adds its `NODES` here.
pub const DEVICE_NODES: &[DeviceNodes] = &[
    pg::NODES,
    pg::NULL_NODES,
    pcap::NODES,
    tap::TAP_NODES,
    tap::TUN_NODES,
    memif::NODES,
    af_packet::NODES,
    af_xdp::NODES,
    DPDK_NODES,
];

/// The forwarding nodes, every feature module (tables shared through `tables`) and every
/// driver's nodes; more features can be added before `build()`.
pub fn graph_builder(tables: &FeatureTables) -> GraphBuilder {
    rvpp_dataplane::nodes::standard_with(tables).devices(DEVICE_NODES)
}

/// The whole graph, with feature tables of its own (tests, benchmarks).
pub fn standard_graph() -> Result<Graph, String> {
    graph_builder(&FeatureTables::default()).build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvpp_dataplane::graph::NodeKind;

    #[test]
    fn every_driver_registers_its_nodes_in_the_graph() {
        let g = standard_graph().unwrap();
        for d in DEVICE_NODES {
            for (name, kind) in [(d.input, NodeKind::Input), (d.tx, NodeKind::Tx)] {
                if let Some(n) = name {
                    let i = g.index(n).unwrap_or_else(|| panic!("{n} not in the graph"));
                    assert_eq!(g.kinds[i as usize], kind, "{n}");
                }
            }
        }
        // The queues name the nodes their driver registered.
        assert_eq!(tap::TAP_NODES.input, Some("tap-input"));
        assert_eq!(pg::NULL_NODES.tx, Some("null-tx"));
        assert!(g.index("memif-input").is_some() && g.index("dpdk-tx").is_some());
    }
}
