//! Instruction cost of the SRv6 paths through the whole graph, for callgrind:
//!   cargo build --release -p rvpp-dataplane --example srv6_cost
//!   valgrind --tool=callgrind --toggle-collect='srv6_cost::one' target/release/examples/srv6_cost <case>
//! case: encap (IPv4 steered into a one-SID policy), ip4 (the same packets routed plainly),
//! dt4 (IPv6 + SRH + IPv4 to our End.DT4), dt6 (IPv6 + SRH + IPv6 to our End.DT6, the inner
//! packet to a routed IPv6 destination), ip6 (dt4's frames to a plain IPv6 route).
//! `one` runs one 256-packet vector from ethernet-input to the tx queue; the instruction count
//! divided by the packets is the cost of a packet.
use rvpp_dataplane::buffer::{BufferPool, Buffers};
use rvpp_dataplane::device::TxQueue;
use rvpp_dataplane::feature::FeatureTables;
use rvpp_dataplane::forwarding::{Forwarding, Path, PathKind, Prefix};
use rvpp_dataplane::graph::DeviceNodes;
use rvpp_dataplane::runtime::Runtime;
use rvpp_dataplane::srv6::{self, Behavior, Localsid, Policy, SidList, Srv6};
use rvpp_dataplane::tables::Shared;
use rvpp_dataplane::wire::{self, srh, Ip4HdrMut, Ip6HdrMut};

const VECTORS: usize = 400;
const MAC0: [u8; 6] = [2, 0, 0, 0, 0, 0xa0];
const SRC6: u128 = 0xfd00_0000_0000_0000_0000_0000_0000_0001;
const SID_REMOTE: u128 = 0xfd00_0002_0000_0000_0000_0000_0000_00d4;
const SID_LOCAL: u128 = 0xfd00_0001_0000_0000_0000_0000_0000_00d4;
const SID_LOCAL6: u128 = 0xfd00_0001_0000_0000_0000_0000_0000_00d6;

struct Free;
impl TxQueue for Free {
    fn tx_node(&self) -> &'static str {
        "pg-tx"
    }
    fn tx(&mut self, bufs: &mut Buffers, pkts: &[u32]) -> usize {
        bufs.free(pkts);
        pkts.len()
    }
}

#[inline(never)]
fn one(rt: &mut Runtime, bis: &[u32]) {
    rt.inject("ethernet-input", bis).expect("inject");
}

fn frame(case: &str) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 40 + 24 + 28];
    f[0..6].copy_from_slice(&MAC0);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0xb0]);
    let ip4 = |f: &mut [u8], dst: u32| {
        if let Some(mut h) = Ip4HdrMut::new(f) {
            h.init(0xc612_0002, dst, 17, 64, 28);
        }
    };
    match case {
        "encap" | "ip4" => {
            f.truncate(14 + 28);
            f[12..14].copy_from_slice(&wire::ETHERTYPE_IP4.to_be_bytes());
            ip4(
                &mut f[14..],
                if case == "encap" {
                    0xc614_0007
                } else {
                    0xc613_0007
                },
            );
        }
        "dt6" => {
            // IPv6 + SRH + IPv6/UDP (8 bytes) to a destination behind the IPv6 route.
            f.resize(14 + 40 + 24 + 40 + 8, 0);
            f[12..14].copy_from_slice(&wire::ETHERTYPE_IP6.to_be_bytes());
            if let Some(mut h) = Ip6HdrMut::new(&mut f[14..]) {
                h.init(
                    0xfd00_0000_0000_0000_0000_0000_0000_0002,
                    SID_LOCAL6,
                    43,
                    64,
                    24 + 48,
                );
            }
            let _ = srh::emit(&mut f[54..], 41, &[SID_LOCAL6], 0);
            if let Some(mut h) = Ip6HdrMut::new(&mut f[78..]) {
                h.init(SRC6, SID_REMOTE | 7, 17, 64, 8);
            }
        }
        _ => {
            f[12..14].copy_from_slice(&wire::ETHERTYPE_IP6.to_be_bytes());
            let dst = if case == "dt4" { SID_LOCAL } else { SID_REMOTE };
            if let Some(mut h) = Ip6HdrMut::new(&mut f[14..]) {
                h.init(
                    0xfd00_0000_0000_0000_0000_0000_0000_0002,
                    dst,
                    43,
                    64,
                    24 + 28,
                );
            }
            let _ = srh::emit(&mut f[54..], 4, &[dst], 0);
            ip4(&mut f[78..], 0xc613_0007);
        }
    }
    f
}

fn main() {
    let case = std::env::args().nth(1).unwrap_or_else(|| "encap".into());
    let pool = BufferPool::with_backing(4096, 2048, false).expect("pool");
    let shared = Shared::new();
    let tables = FeatureTables::default();
    let graph = rvpp_dataplane::nodes::standard_with(&tables)
        .device(DeviceNodes::tx_only("pg-tx"))
        .build()
        .expect("graph");
    let mut fwd = Forwarding::new(shared.clone());
    fwd.use_features(graph.features.clone());
    let if0 = fwd
        .interface_add("pg0", "pg", MAC0, true, 9000)
        .expect("if");
    for p in ["198.18.0.1/24", "fd00::1/64"] {
        fwd.address_add(if0, Prefix::parse(p).expect("p"))
            .expect("addr");
    }
    fwd.set_admin_up(if0, true).expect("up");
    let peer = [2, 0, 0, 0, 0, 0xb0];
    let (nh4, nh6) = (
        "198.18.0.2".parse().expect("a"),
        "fd00::2".parse().expect("a"),
    );
    fwd.neighbor_add(if0, nh4, peer, true).expect("n");
    fwd.neighbor_add(if0, nh6, peer, true).expect("n");
    fwd.route_add(
        0,
        Prefix::V4(0xc613_0000, 16),
        vec![Path::via(nh4, Some(if0))],
    )
    .expect("r");
    fwd.route_add(
        0,
        Prefix::V6(SID_REMOTE & !0xffff, 112),
        vec![Path::via(nh6, Some(if0))],
    )
    .expect("r");
    let mut p = Policy::new(1, true, false, 0, 0);
    p.sid_lists
        .push(SidList::new(0, 1, vec![SID_REMOTE], SRC6, false).expect("sl"));
    p.rebalance();
    let sr = Srv6 {
        encap_source: SRC6,
        policies: vec![Some(p)],
        localsids: [(SID_LOCAL, Behavior::DT4), (SID_LOCAL6, Behavior::DT6)]
            .map(|(sid, behavior)| Some(Localsid::dt(sid, behavior, 0, 0)))
            .to_vec(),
    };
    tables.get::<srv6::Table>().publish(sr);
    let steer = vec![Path::special(PathKind::SrPolicy(0))];
    fwd.route_add(0, Prefix::V4(0xc614_0000, 16), steer)
        .expect("r");
    for (i, sid) in [SID_LOCAL, SID_LOCAL6].into_iter().enumerate() {
        let to = vec![Path::special(PathKind::SrLocalsid(i as u32))];
        fwd.route_add(0, Prefix::V6(sid, 128), to).expect("r");
    }
    let mut rt = Runtime::new(graph, pool.local(), shared, 0, "cost".into()).expect("rt");
    rt.set_tx(if0, Box::new(Free)).expect("tx");
    drop(fwd);
    let f = frame(&case);
    let mut bis = vec![0u32; 256];
    for _ in 0..VECTORS {
        let bufs = rt.buffers();
        for b in bis.iter_mut() {
            *b = bufs.alloc_from_bytes(&f).expect("alloc");
            bufs.meta(*b).rx_sw_if_index = if0;
        }
        one(&mut rt, &bis);
    }
    let sent = rt.stats().ifs[if0 as usize].tx_packets.get();
    println!("{case}: {} packets, {sent} sent", VECTORS * 256);
    assert_eq!(sent as usize, VECTORS * 256, "every packet took the path");
}
