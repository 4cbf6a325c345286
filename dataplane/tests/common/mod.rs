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

/// `frames` received on `sw` in one vector.
pub fn inject_vector(rt: &mut rvpp_dataplane::runtime::Runtime, sw: u32, frames: &[Vec<u8>]) {
    let bufs = rt.buffers();
    let bis: Vec<u32> = frames
        .iter()
        .map(|f| {
            let bi = bufs.alloc_from_bytes(f).unwrap();
            bufs.meta(bi).rx_sw_if_index = sw;
            bi
        })
        .collect();
    rt.inject("ethernet-input", &bis).unwrap();
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

pub const MAC2: [u8; 6] = [2, 0, 0, 0, 0, 0xa2];
pub const PEER2: [u8; 6] = [2, 0, 0, 0, 0, 0xb2];

/// Three pg interfaces (MAC0..MAC2) on the feature graph, up, with one address each.
pub struct Pg3 {
    pub pool: Arc<rvpp_dataplane::buffer::BufferPool>,
    pub shared: Arc<Shared>,
    pub tables: FeatureTables,
    pub graph: Graph,
    pub fwd: Forwarding,
    pub ifs: [u32; 3],
}

pub fn pg3(addrs: [&str; 3]) -> Pg3 {
    let pool = rvpp_dataplane::buffer::BufferPool::with_backing(4096, 2048, false).unwrap();
    let shared = Shared::new();
    let tables = FeatureTables::default();
    let (graph, mut fwd) = feature_graph(&shared, &tables);
    let mut ifs = [0; 3];
    for (i, (mac, p)) in [MAC0, MAC1, MAC2].into_iter().zip(addrs).enumerate() {
        let sw = fwd
            .interface_add(&format!("pg{i}"), "pg", mac, true, 1500)
            .unwrap();
        let p = rvpp_dataplane::forwarding::Prefix::parse(p).unwrap();
        fwd.address_add(sw, p).unwrap();
        fwd.set_admin_up(sw, true).unwrap();
        ifs[i] = sw;
    }
    Pg3 {
        pool,
        shared,
        tables,
        graph,
        fwd,
        ifs,
    }
}

impl Pg3 {
    /// The runtime, with a capture on each interface; gives back the `Forwarding`.
    pub fn run(self) -> (Runtime3, Forwarding) {
        let rt = rvpp_dataplane::runtime::Runtime::new(
            self.graph,
            self.pool.local(),
            self.shared,
            0,
            "test".into(),
        )
        .unwrap();
        let mut r = Runtime3 {
            pool: self.pool,
            rt,
            out: Default::default(),
            ifs: self.ifs,
        };
        for i in 0..3 {
            let o = r.out[i].clone();
            r.rt.set_tx(r.ifs[i], Box::new(Capture(o))).unwrap();
        }
        (r, self.fwd)
    }
}

/// A runtime over three pg interfaces whose tx is captured.
pub struct Runtime3 {
    pub pool: Arc<rvpp_dataplane::buffer::BufferPool>,
    pub rt: rvpp_dataplane::runtime::Runtime,
    pub out: [Frames; 3],
    pub ifs: [u32; 3],
}

impl Runtime3 {
    pub fn send(&mut self, i: usize, frame: &[u8]) {
        let bufs = self.rt.buffers();
        let bi = bufs.alloc_from_bytes(frame).unwrap();
        bufs.meta(bi).rx_sw_if_index = self.ifs[i];
        self.rt.inject("ethernet-input", &[bi]).unwrap();
    }
    pub fn take(&self, i: usize) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.out[i].lock().unwrap())
    }
    pub fn count(&self, node: &str, code: u16) -> u64 {
        let i = self.rt.graph().error_index(node, code).unwrap();
        self.rt.stats().errors[i as usize].get()
    }
    pub fn no_leaks(mut self) {
        self.rt.buffers().flush();
        drop(self.rt);
        assert_eq!(self.pool.in_use(), 0, "buffers leaked");
    }
}
pub mod tunnel_offload;

/// Four decapsulated IPv6 packets forwarded to the pod behind PEER1 on pg1 (MAC1): packet i
/// sent with hop limit 64 - i and 30 bytes of i after its UDP header, `inner_len(i)` bytes
/// long without its Ethernet header.
pub fn assert_inner6_run_to_pod(out: &[Vec<u8>], inner_len: &dyn Fn(usize) -> usize) {
    assert_eq!(out.len(), 4);
    for (i, o) in out.iter().enumerate() {
        let (eth, rest) = etherparse::Ethernet2Header::from_slice(o).unwrap();
        assert_eq!((eth.destination, eth.source), (PEER1, MAC1));
        let (ih, payload) = etherparse::Ipv6Header::from_slice(rest).unwrap();
        assert_eq!(ih.hop_limit, 63 - i as u8, "packet {i}");
        assert_eq!(&payload[8..], &[i as u8; 30]);
        assert_eq!(rest.len(), inner_len(i), "inner packet only");
    }
}
