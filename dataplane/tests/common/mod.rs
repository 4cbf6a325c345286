//! What the graph tests share: the pg interfaces' and their peers' MACs, a tx queue that
//! captures what leaves, and the graph with every feature module plus a capturing pg-tx.
#![allow(dead_code)]

use rvpp_dataplane::buffer::Buffers;
use rvpp_dataplane::device::TxQueue;
use rvpp_dataplane::feature::FeatureTables;
use rvpp_dataplane::forwarding::Forwarding;
use rvpp_dataplane::graph::{DeviceNodes, Graph};
use rvpp_dataplane::nodes::standard_with;
use rvpp_dataplane::tables::Shared;
use std::sync::{Arc, Mutex};

pub const MAC0: [u8; 6] = [2, 0, 0, 0, 0, 0xa0];
pub const MAC1: [u8; 6] = [2, 0, 0, 0, 0, 0xa1];
pub const PEER0: [u8; 6] = [2, 0, 0, 0, 0, 0xb0];
pub const PEER1: [u8; 6] = [2, 0, 0, 0, 0, 0xb1];

/// Frames a [`Capture`] saw leave, in order.
pub type Frames = Arc<Mutex<Vec<Vec<u8>>>>;

/// A pg-tx queue that keeps a copy of every frame (chains flattened) and frees the buffers.
pub struct Capture(pub Frames);

impl TxQueue for Capture {
    fn tx_node(&self) -> &'static str {
        "pg-tx"
    }
    fn tx(&mut self, bufs: &mut Buffers, pkts: &[u32]) -> usize {
        let mut tmp = vec![0u8; 16384];
        for &bi in pkts {
            let n = bufs.copy_chain(bi, &mut tmp);
            self.0.lock().unwrap().push(tmp[..n].to_vec());
        }
        bufs.free(pkts);
        pkts.len()
    }
}

/// The standard graph with every feature module over `tables`, and a `Forwarding` that
/// enables features by that graph's registrations.
pub fn feature_graph(shared: &Arc<Shared>, tables: &FeatureTables) -> (Graph, Forwarding) {
    let graph = standard_with(tables)
        .device(DeviceNodes::tx_only("pg-tx"))
        .build()
        .unwrap();
    let mut fwd = Forwarding::new(shared.clone());
    fwd.use_features(graph.features.clone());
    (graph, fwd)
}

/// What the graph tests do with a runtime (free functions so that each test's own lab
/// struct can use them): inject `frame` as received on `sw`.
pub fn inject(rt: &mut rvpp_dataplane::runtime::Runtime, sw: u32, frame: &[u8]) {
    let bufs = rt.buffers();
    let bi = bufs.alloc_from_bytes(frame).unwrap();
    bufs.meta(bi).rx_sw_if_index = sw;
    rt.inject("ethernet-input", &[bi]).unwrap();
}

/// A node's counter (its `node_errors!` code).
pub fn counter(rt: &rvpp_dataplane::runtime::Runtime, node: &str, code: u16) -> u64 {
    let i = rt.graph().error_index(node, code).unwrap();
    rt.stats().errors[i as usize].get()
}

/// The frames captured so far, emptied.
pub fn take(f: &Frames) -> Vec<Vec<u8>> {
    std::mem::take(&mut *f.lock().unwrap())
}

/// Every buffer back in the pool once the runtime is gone, none freed twice.
pub fn no_leaks(
    pool: &rvpp_dataplane::buffer::BufferPool,
    mut rt: rvpp_dataplane::runtime::Runtime,
) {
    rt.buffers().flush();
    drop(rt);
    assert_eq!(pool.in_use(), 0, "buffers leaked");
    assert_eq!(pool.double_frees(), 0);
}
