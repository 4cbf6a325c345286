//! What software segmentation costs next to plain forwarding, for deciding where GRO/GSO pay.
//! `cargo test --release -p rvpp-dataplane --test gso_bench -- --ignored --nocapture`

use rvpp_dataplane::buffer::{flags, BufferPool, Buffers};
use rvpp_dataplane::device::TxQueue;
use rvpp_dataplane::forwarding::{Forwarding, Path, Prefix};
use rvpp_dataplane::graph::DeviceNodes;
use rvpp_dataplane::nodes::standard_graph;
use rvpp_dataplane::runtime::Runtime;
use rvpp_dataplane::tables::Shared;
use std::time::Instant;

const MAC0: [u8; 6] = [2, 0, 0, 0, 0, 0xa0];
const MAC1: [u8; 6] = [2, 0, 0, 0, 0, 0xa1];
const PEER0: [u8; 6] = [2, 0, 0, 0, 0, 0xb0];
const PEER1: [u8; 6] = [2, 0, 0, 0, 0, 0xb1];

/// A device that takes everything and frees it (no copy).
struct Sink;
impl TxQueue for Sink {
    fn tx_node(&self) -> &'static str {
        "null-tx"
    }
    fn tx(&mut self, bufs: &mut Buffers, pkts: &[u32]) -> usize {
        bufs.free(pkts);
        pkts.len()
    }
}

fn tcp_frame(payload: usize) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&MAC0);
    f.extend_from_slice(&PEER0);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let tl = (40 + payload) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&tl.to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 2, 10, 1, 0, 1]);
    let mut s = 0u32;
    for c in ip.chunks(2) {
        s += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    ip[10..12].copy_from_slice(&(!(s as u16)).to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&[
        0x9c, 0x40, 1, 0xbb, 0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18, 1, 0, 0, 0, 0, 0,
    ]);
    f.extend((0..payload).map(|i| i as u8));
    f
}

fn setup() -> (std::sync::Arc<BufferPool>, Forwarding, Runtime, u32) {
    let pool = BufferPool::with_backing(16384, 2048, false).unwrap();
    let shared = Shared::new();
    let mut fwd = Forwarding::new(shared.clone());
    let if0 = fwd.interface_add("pg0", "pg", MAC0, true, 9000).unwrap();
    assert_eq!(if0, PG0);
    let if1 = fwd.interface_add("pg1", "pg", MAC1, true, 65535).unwrap();
    fwd.address_add(if0, Prefix::parse("198.18.0.1/24").unwrap())
        .unwrap();
    fwd.address_add(if1, Prefix::parse("198.19.0.1/24").unwrap())
        .unwrap();
    fwd.set_admin_up(if0, true).unwrap();
    fwd.set_admin_up(if1, true).unwrap();
    let nh = "198.19.0.2".parse().unwrap();
    fwd.neighbor_add(if1, nh, PEER1, true).unwrap();
    fwd.route_add(
        0,
        Prefix::parse("10.1.0.0/16").unwrap(),
        vec![Path::via(nh, Some(if1))],
    )
    .unwrap();
    let graph = standard_graph(&[DeviceNodes::tx_only("pg-tx")]).unwrap();
    let mut rt = Runtime::new(graph, pool.local(), shared, 0, "bench".into()).unwrap();
    rt.set_tx(if1, Box::new(Sink)).unwrap();
    (pool, fwd, rt, if1)
}

/// pg0's sw_if_index: the first interface after local0 (index 0).
const PG0: u32 = 1;

/// ns per packet of `f` (as `n` packets per vector), minus the cost of building the packets.
fn run(rt: &mut Runtime, f: &[u8], n: usize, gso: bool, iters: usize) -> f64 {
    let mut v = vec![0u32; n];
    let mut time = |inject: bool, rt: &mut Runtime| {
        let t = Instant::now();
        for _ in 0..iters {
            let bufs = rt.buffers();
            for b in v.iter_mut() {
                *b = bufs.alloc_from_bytes(f).unwrap();
                let m = bufs.meta(*b);
                m.rx_sw_if_index = PG0;
                if gso {
                    m.flags |= flags::GSO | flags::OFFLOAD_L4_CKSUM;
                    m.gso_size = 1448;
                }
            }
            if inject {
                rt.inject("ethernet-input", &v).unwrap();
            } else {
                rt.buffers().free(&v);
            }
        }
        t.elapsed().as_nanos() as f64 / (iters * n) as f64
    };
    time(true, rt);
    let with = time(true, rt);
    let base = time(false, rt);
    with - base
}

#[test]
#[ignore]
fn segmentation_cost_against_forwarding() {
    let (_pool, mut fwd, mut rt, if1) = setup();
    let big = tcp_frame(45 * 1448);
    let small = tcp_frame(1448);
    let fwd_small = run(&mut rt, &small, 256, false, 2000);
    let csum_small = {
        let t = run(&mut rt, &small, 256, true, 2000);
        t - fwd_small
    };
    let seg = run(&mut rt, &big, 8, true, 500);
    fwd.set_tx_offloads(if1, true, true).unwrap();
    let pass = run(&mut rt, &big, 8, true, 500);
    println!("forward one 1502-byte frame through the graph: {fwd_small:.0} ns");
    println!("software TCP checksum of one 1448-byte segment in place: {csum_small:.0} ns");
    println!(
        "64 KiB super-frame, software GSO (45 segments): {seg:.0} ns = {:.0} ns/segment",
        seg / 45.0
    );
    println!("64 KiB super-frame to a TX_GSO device: {pass:.0} ns");
    println!(
        "45 single frames: {:.0} ns; one super-frame passed through saves {:.0} ns",
        45.0 * fwd_small,
        45.0 * fwd_small - pass
    );
}
