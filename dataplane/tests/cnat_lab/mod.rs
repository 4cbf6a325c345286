//! The cnat graph lab the cnat tests share: two pg interfaces (pg0 the client side, pg1 the
//! backends), cnat on both, two workers over one `Cnat`, captured tx, and the frame helpers.
#![allow(dead_code)]

use crate::common::*;
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use rvpp_dataplane::buffer::BufferPool;
use rvpp_dataplane::cnat::snat::{IfTable, Policy};
use rvpp_dataplane::cnat::translation::{Endpoint, PathEp, Translation};
use rvpp_dataplane::cnat::{Cnat, CnatConfig};
use rvpp_dataplane::feature::FeatureTables;
use rvpp_dataplane::forwarding::{Forwarding, Path, Prefix};
use rvpp_dataplane::graph::DeviceNodes;
use rvpp_dataplane::nodes::cnat as cnat_nodes;
use rvpp_dataplane::nodes::standard_with;
use rvpp_dataplane::runtime::Runtime;
use rvpp_dataplane::tables::Shared;
use std::net::IpAddr;
use std::sync::Arc;

pub const CLIENT: [u8; 4] = [198, 18, 0, 2];
pub const VIP: [u8; 4] = [198, 19, 255, 1];
pub const B1: [u8; 4] = [198, 19, 0, 2];
pub const B2: [u8; 4] = [198, 19, 0, 3];
/// fd00:0:0:18::2, fd00:0:0:19:ff::1, fd00:0:0:19::2.
pub const CLIENT6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0x18, 0, 0, 0, 0, 0, 0, 0, 2];
pub const VIP6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0x19, 0, 0xff, 0, 0, 0, 0, 0, 1];
pub const B16: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0x19, 0, 0, 0, 0, 0, 0, 0, 2];

pub struct Lab {
    pub pool: Arc<BufferPool>,
    pub cnat: Arc<Cnat>,
    pub rt: Runtime,
    /// A second worker over the same tables and the same cnat state.
    pub rt2: Runtime,
    pub out2: Frames,
    pub fwd: Forwarding,
    pub out0: Frames,
    pub out1: Frames,
    pub if0: u32,
    pub if1: u32,
}

pub fn v4(a: [u8; 4]) -> u128 {
    0xffff_0000_0000 | u32::from_be_bytes(a) as u128
}

pub fn ep4(a: [u8; 4], port: u16) -> Endpoint {
    Endpoint {
        addr: v4(a),
        port,
        ip6: false,
    }
}

pub fn lab() -> Lab {
    let pool = BufferPool::with_backing(4096, 2048, false).unwrap();
    let shared = Shared::new();
    let mut fwd = Forwarding::new(shared.clone());
    let if0 = fwd.interface_add("pg0", "pg", MAC0, true, 1500).unwrap();
    let if1 = fwd.interface_add("pg1", "pg", MAC1, true, 1500).unwrap();
    for (i, p4, p6) in [
        (if0, "198.18.0.1/24", "fd00:0:0:18::1/64"),
        (if1, "198.19.0.1/24", "fd00:0:0:19::1/64"),
    ] {
        fwd.address_add(i, Prefix::parse(p4).unwrap()).unwrap();
        fwd.enable_ip6(i, true).unwrap();
        fwd.address_add(i, Prefix::parse(p6).unwrap()).unwrap();
        fwd.set_admin_up(i, true).unwrap();
    }
    for (i, a, m) in [
        (if0, "198.18.0.2", PEER0),
        (if1, "198.19.0.2", PEER1),
        (if1, "198.19.0.3", PEER1),
        (if0, "fd00:0:0:18::2", PEER0),
        (if1, "fd00:0:0:19::2", PEER1),
    ] {
        fwd.neighbor_add(i, a.parse().unwrap(), m, true).unwrap();
    }
    // The service range routes towards pg1 (what a VIP without a matching port follows).
    let nh: IpAddr = "198.19.0.2".parse().unwrap();
    fwd.route_add(
        0,
        Prefix::parse("198.19.128.0/17").unwrap(),
        vec![Path::via(nh, Some(if1))],
    )
    .unwrap();
    let nh6: IpAddr = "fd00:0:0:19::2".parse().unwrap();
    fwd.route_add(
        0,
        Prefix::parse("fd00:0:0:19:ff::/80").unwrap(),
        vec![Path::via(nh6, Some(if1))],
    )
    .unwrap();
    // The graph's cnat nodes take their `Cnat` from the feature tables: a small one here.
    let tables = FeatureTables::default();
    let cnat = Cnat::new(CnatConfig { max_sessions: 1024 });
    tables.insert(cnat.clone());
    let graph = || {
        standard_with(&tables)
            .device(DeviceNodes::tx_only("pg-tx"))
            .build()
            .unwrap()
    };
    fwd.use_features(graph().features);
    // feature_cnat_enable_disable on both interfaces: input and output features.
    for i in [if0, if1] {
        cnat_nodes::feature_enable(&mut fwd, i, true).unwrap();
    }
    let mut rt = Runtime::new(graph(), pool.local(), shared.clone(), 0, "test".into()).unwrap();
    let mut rt2 = Runtime::new(graph(), pool.local(), shared, 1, "test2".into()).unwrap();
    let (out0, out1, out2) = (Frames::default(), Frames::default(), Frames::default());
    rt.set_tx(if0, Box::new(Capture(out0.clone()))).unwrap();
    rt.set_tx(if1, Box::new(Capture(out1.clone()))).unwrap();
    rt2.set_tx(if0, Box::new(Capture(out2.clone()))).unwrap();
    rt2.set_tx(if1, Box::new(Capture(out2.clone()))).unwrap();
    Lab {
        pool,
        cnat,
        rt,
        rt2,
        out2,
        fwd,
        out0,
        out1,
        if0,
        if1,
    }
}

impl Lab {
    pub fn send(&mut self, on: u32, frame: &[u8]) {
        let bufs = self.rt.buffers();
        let bi = bufs.alloc_from_bytes(frame).unwrap();
        bufs.meta(bi).rx_sw_if_index = on;
        self.rt.inject("ethernet-input", &[bi]).unwrap();
    }
    pub fn take(f: &Frames) -> Vec<Vec<u8>> {
        std::mem::take(&mut *f.lock().unwrap())
    }
    pub fn one(f: &Frames) -> Vec<u8> {
        let mut v = Self::take(f);
        assert_eq!(v.len(), 1, "expected one frame");
        v.pop().unwrap()
    }
    pub fn counter(&self, node: &str, code: u16) -> u64 {
        let i = self.rt.graph().error_index(node, code).unwrap();
        self.rt.stats().errors[i as usize].get()
    }
    pub fn no_leaks(mut self) {
        self.rt.buffers().flush();
        self.rt2.buffers().flush();
        drop(self.rt);
        drop(self.rt2);
        assert_eq!(self.pool.in_use(), 0, "buffers leaked");
    }
}

pub fn tcp4(
    src: [u8; 4],
    dst: [u8; 4],
    sp: u16,
    dp: u16,
    from_peer: [u8; 6],
    to: [u8; 6],
) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(from_peer, to)
        .ipv4(src, dst, 64)
        .tcp(sp, dp, 1, 1000)
        .ack(1)
        .write(&mut v, b"request")
        .unwrap();
    v
}

/// (src, dst, sport, dport) of a frame, with every checksum verified independently.
pub fn read4(f: &[u8]) -> ([u8; 4], [u8; 4], u16, u16) {
    let s = SlicedPacket::from_ethernet(f).unwrap();
    let Some(NetSlice::Ipv4(ip)) = s.net else {
        panic!("not ipv4")
    };
    let h = ip.header().to_header();
    assert_eq!(h.calc_header_checksum(), h.header_checksum, "ip checksum");
    let (src, dst) = (h.source, h.destination);
    match s.transport.unwrap() {
        TransportSlice::Tcp(t) => {
            let th = t.to_header();
            assert_eq!(
                th.calc_checksum_ipv4_raw(src, dst, t.payload()).unwrap(),
                th.checksum,
                "tcp checksum"
            );
            (src, dst, th.source_port, th.destination_port)
        }
        TransportSlice::Udp(u) => {
            let uh = u.to_header();
            assert_eq!(
                uh.calc_checksum_ipv4_raw(src, dst, u.payload()).unwrap(),
                uh.checksum
            );
            (src, dst, uh.source_port, uh.destination_port)
        }
        TransportSlice::Icmpv4(i) => {
            assert_eq!(
                rvpp_dataplane::wire::checksum(i.slice()),
                0,
                "icmp checksum"
            );
            (src, dst, 0, 0)
        }
        _ => panic!("transport"),
    }
}

pub fn service(l: &Lab, backends: &[[u8; 4]]) -> u32 {
    l.cnat.translation_update(Translation {
        vip: ep4(VIP, 80),
        proto: 6,
        // calico's flags: ALLOC_PORT | NO_CLIENT.
        flags: 1 | 8,
        paths: backends
            .iter()
            .map(|b| PathEp {
                dst: ep4(*b, 8080),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    })
}

/// pg1's address: the node address SNAT uses.
pub const NODE: [u8; 4] = [198, 19, 0, 1];
pub const NODE6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0x19, 0, 0, 0, 0, 0, 0, 0, 1];

/// calico's SNAT setup: pg0 is a pod interface whose pool has natOutgoing (POD and INCLUDE),
/// the node addresses SNAT to, the K8S policy, and `exclude` left alone.
pub fn k8s_snat(l: &Lab, exclude: &[[u8; 4]]) {
    let if0 = l.if0;
    l.cnat.snat_edit(|s| {
        s.ip4 = v4(NODE);
        s.ip6 = u128::from_be_bytes(NODE6);
        s.policy = Policy::K8s;
        for t in [IfTable::Pod, IfTable::IncludeV4, IfTable::IncludeV6] {
            s.tables.insert(t, if0);
        }
        for e in exclude {
            s.exclude.add(v4(*e), 128);
        }
    });
}
