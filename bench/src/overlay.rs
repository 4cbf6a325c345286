//! `rvpp-bench overlay`: one core, the in-process graph (pg-input -> ... -> null-tx). IPIP and
//! VXLAN (calico-vpp's L3 mode) encap and decap of IPv4 pod packets, each next to plain IPv4
//! forwarding of the same inner frames, alternating in the same run at each size. Encap: a
//! pod packet routed into the tunnel (ip4-rewrite -> ipipN/vxlan4-encap -> ip4-lookup in the
//! encap table -> ip4-rewrite). Decap: an outer packet to the node's address (ip4-local ->
//! ipip4-input/vxlan4-input -> ip4-input on the tunnel -> lookup -> rewrite). Reported: Mpps,
//! clocks per packet of every node (the runtime counters), and what each adds over plain
//! forwarding; the target is encap plus decap adding at most 25 clocks. The `ipip6-`
//! and `vxlan6-` cases (`--case` only) are the same with an IPv6 outer header, as between
//! calico's IPv6 node addresses. `--inner6` (with `--case`) makes the pod packets IPv6
//! (dual-stack pods: IPIP protocol 41, VXLAN with bare IPv6 inside), the peer case plain IPv6
//! forwarding. `vxlan-l2-decap` (also in the alternating run) and `vxlan6-l2-decap` (`--case`
//! only) decapsulate VXLAN's L2 mode, the Linux-compatible one: an inner Ethernet frame to the
//! tunnel's MAC.

use crate::graph::{
    alternate_nodes, error_count, measure, r2, Measured, SizedRuns, TwoPorts, GEN_MAC, PG_MAC,
};
use rvpp_dataplane::feature::FeatureTables;
use rvpp_dataplane::fib::Ip4FibConfig;
use rvpp_dataplane::forwarding::{Path, Prefix};
use rvpp_dataplane::nodes::{ipip, vxlan};
use rvpp_dataplane::wire::tunnel::VXLAN_PORT;
use rvpp_drivers::pg::PgStream;
use serde_json::json;
use std::net::IpAddr;
use std::time::Duration;

const WARMUP: Duration = Duration::from_millis(300);
/// The budget for encap plus decap over plain forwarding.
const TARGET_ADDED_CLOCKS: f64 = 25.0;
/// Plain destinations (null0's side), and the remote pod blocks behind each tunnel.
// 198.19.1.7: outside null0's connected 198.19.0.0/24, which outranks an API route of the
// same prefix (and would send the packets to ip4-arp).
const PLAIN: u32 = 0xc613_0107;
const VIA_IPIP: u32 = 0xc614_0007;
const VIA_VXLAN: u32 = 0xc615_0007;
/// The remote node (on pg0's side), which sends us the encapsulated packets.
const REMOTE: u32 = 0xc612_0002;
const LOCAL: u32 = 0xc612_0001;
const VNI: u32 = 4096;
/// The remote pod blocks behind the IPv6-outer tunnels.
const VIA_IPIP6: u32 = 0xc613_8007;
const VIA_VXLAN6: u32 = 0xc613_8107;
/// The remote node's and our IPv6 addresses (pg0's side), and null0's IPv6 next hop.
const REMOTE6: u128 = 0xfd00_0018_0000_0000_0000_0000_0000_0002;
const LOCAL6: u128 = 0xfd00_0018_0000_0000_0000_0000_0000_0001;
const NH6: u128 = 0xfd00_0019_0000_0000_0000_0000_0000_0002;
/// IPv6 pod destinations (`--inner6`): plain (null0's side), and the remote pod blocks behind
/// ipip0, vxlan_tunnel0, ipip1 and vxlan_tunnel1 in that order; each a /64.
const PLAIN_6IN: u128 = 0xfd00_001a_0000_0000_0000_0000_0000_0000;
const VIA_6IN: [u128; 4] = [
    0xfd00_001b_0000_0000_0000_0000_0000_0000,
    0xfd00_001c_0000_0000_0000_0000_0000_0000,
    0xfd00_001d_0000_0000_0000_0000_0000_0000,
    0xfd00_001e_0000_0000_0000_0000_0000_0000,
];

#[derive(Clone, Copy, PartialEq)]
enum Case {
    Forward,
    IpipEncap,
    IpipDecap,
    VxlanEncap,
    VxlanDecap,
    Ipip6Encap,
    Ipip6Decap,
    Vxlan6Encap,
    Vxlan6Decap,
    /// VXLAN's L2 mode (inner Ethernet to the tunnel's MAC, what a Linux `vxlan.calico`
    /// device sends), IPv4 and IPv6 outer.
    VxlanL2Decap,
    Vxlan6L2Decap,
}

/// The L2-mode tunnels' VNI (the L3 ones' VNI + 1, same endpoints) and MAC.
const VNI_L2: u32 = VNI + 1;
const L2_MAC: [u8; 6] = [0x66, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e];
/// The Linux peer's VTEP MAC, the inner frames' source.
const PEER_MAC: [u8; 6] = [0x66, 0x01, 0x02, 0x03, 0x04, 0x05];

/// `inner` (an IP packet) behind an Ethernet header to the L2 tunnel's MAC.
fn inner_frame(inner: &[u8]) -> Vec<u8> {
    let et: u16 = match inner.first().map(|v| v >> 4) {
        Some(6) => 0x86dd,
        _ => 0x0800,
    };
    let mut f = [&L2_MAC[..], &PEER_MAC[..], &et.to_be_bytes()[..]].concat();
    f.extend_from_slice(inner);
    f
}

/// An encapsulated frame (outer IPv6 when `v6`) of an L2-mode VXLAN tunnel: VNI_L2, inner
/// Ethernet.
fn encapsulated_l2(inner: &[u8], v6: bool) -> Vec<u8> {
    let mut f = match v6 {
        true => encapsulated6(&inner_frame(inner), true),
        false => encapsulated(&inner_frame(inner), true),
    };
    let (vni, l3) = (
        if v6 { 14 + 40 + 12 } else { 14 + 20 + 12 },
        VNI_L2.to_be_bytes(),
    );
    f[vni..vni + 3].copy_from_slice(&l3[1..]);
    if v6 {
        // The UDP checksum again, over the changed VNI.
        use rvpp_dataplane::wire;
        let u = &mut f[54..];
        u[6..8].fill(0);
        let sum = wire::ip6_pseudo_sum(REMOTE6, LOCAL6, u.len() as u32, wire::IP_PROTO_UDP);
        let c = wire::fold(wire::ones_sum(u, sum));
        u[6..8].copy_from_slice(&if c == 0 { 0xffff } else { c }.to_be_bytes());
    }
    f
}

fn v4(a: u32) -> IpAddr {
    IpAddr::V4(a.into())
}

fn v6(a: u128) -> IpAddr {
    IpAddr::V6(a.into())
}

/// As [`encapsulated`] with an IPv6 outer header (REMOTE6 to LOCAL6); VXLAN's UDP checksum
/// filled, as IPv6 requires.
fn encapsulated6(inner: &[u8], vxlan: bool) -> Vec<u8> {
    use rvpp_dataplane::wire;
    let extra = if vxlan { 8 + 8 } else { 0 };
    let mut f = vec![0u8; 14 + 40 + extra];
    f[0..6].copy_from_slice(&PG_MAC);
    f[6..12].copy_from_slice(&GEN_MAC);
    f[12..14].copy_from_slice(&wire::ETHERTYPE_IP6.to_be_bytes());
    let payload = (extra + inner.len()) as u16;
    let proto = if vxlan {
        wire::IP_PROTO_UDP
    } else {
        ipip_proto(inner)
    };
    if let Some(mut h) = wire::Ip6HdrMut::new(&mut f[14..]) {
        h.init(REMOTE6, LOCAL6, proto, 64, payload);
    }
    f.extend_from_slice(inner);
    if vxlan {
        let u = &mut f[54..];
        u[0..2].copy_from_slice(&50000u16.to_be_bytes());
        u[2..4].copy_from_slice(&VXLAN_PORT.to_be_bytes());
        u[4..6].copy_from_slice(&payload.to_be_bytes());
        u[8] = 0x08;
        u[12..15].copy_from_slice(&VNI.to_be_bytes()[1..]);
        let sum = wire::ip6_pseudo_sum(REMOTE6, LOCAL6, payload as u32, wire::IP_PROTO_UDP);
        let c = wire::fold(wire::ones_sum(u, sum));
        u[6..8].copy_from_slice(&if c == 0 { 0xffff } else { c }.to_be_bytes());
    }
    f
}

/// IPIP's protocol number for `inner`: 4 for IPv4, 41 for IPv6.
fn ipip_proto(inner: &[u8]) -> u8 {
    match inner.first().map(|v| v >> 4) {
        Some(6) => 41,
        _ => 4,
    }
}

/// An Ethernet frame from the remote node to us carrying `inner` (an IP packet): IPIP, or
/// UDP 4789 + VXLAN (VNI, I flag) with bare IP after it.
fn encapsulated(inner: &[u8], vxlan: bool) -> Vec<u8> {
    let extra = if vxlan { 8 + 8 } else { 0 };
    let mut f = vec![0u8; 14 + 20 + extra];
    f[0..6].copy_from_slice(&PG_MAC);
    f[6..12].copy_from_slice(&GEN_MAC);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let total = 20 + extra + inner.len();
    let proto = if vxlan { 17 } else { ipip_proto(inner) };
    if let Some(mut h) = rvpp_dataplane::wire::Ip4HdrMut::new(&mut f[14..]) {
        h.init(REMOTE, LOCAL, proto, 64, total as u16);
    }
    if vxlan {
        let u = &mut f[34..42];
        u[0..2].copy_from_slice(&50000u16.to_be_bytes());
        u[2..4].copy_from_slice(&VXLAN_PORT.to_be_bytes());
        u[4..6].copy_from_slice(&((8 + 8 + inner.len()) as u16).to_be_bytes());
        let x = &mut f[42..50];
        x[0] = 0x08;
        x[4..7].copy_from_slice(&VNI.to_be_bytes()[1..]);
    }
    f.extend_from_slice(inner);
    f
}

/// The IPv4 packet (no Ethernet header) of a plain frame to `dst`, `size` bytes with it.
fn inner_packet(pg: u32, dst: u32, size: usize) -> Vec<u8> {
    PgStream::ip4_udp(pg, PG_MAC, GEN_MAC, REMOTE, &[dst], size).template()[14..].to_vec()
}

/// A pod's IPv6 frame from the remote node's pod side to `dst` (host 7 of that /64).
fn plain6(pg: u32, dst: u128, size: usize) -> PgStream {
    PgStream::ip6_udp(pg, PG_MAC, GEN_MAC, REMOTE6, dst, &[7], size)
}

fn run_case(case: Case, size: usize, seconds: f64) -> Result<Measured, String> {
    run_case_counted(case, size, seconds, false).map(|r| r.0)
}

/// As [`run_case`], and every packet sent since the start, warm-up included (what a
/// callgrind count of the whole process is per).
/// `inner6`: the pod packets are IPv6 (else IPv4).
fn run_case_counted(
    case: Case,
    size: usize,
    seconds: f64,
    inner6: bool,
) -> Result<(Measured, u64), String> {
    let fib = Ip4FibConfig {
        tbl8_groups: 1 << 12,
        huge_pages: false,
    };
    let mut ports = TwoPorts::new(fib, true)?;
    let (pg, out, nh) = (ports.pg, ports.out, ports.nh);
    let tables = FeatureTables::default();
    let graph = rvpp_drivers::graph_builder(&tables).build()?;
    let fwd = &mut ports.fwd;
    fwd.use_features(graph.features.clone());
    let e = |e: rvpp_dataplane::forwarding::FwdError| e.to_string();
    fwd.route_add(
        0,
        Prefix::V4(PLAIN & 0xffff_ff00, 24),
        vec![Path::via(nh, Some(out))],
    )
    .map_err(e)?;
    let t_ipip = fwd
        .interface_add("ipip0", "ipip", [0; 6], false, 9000)
        .map_err(e)?;
    let t_vxlan = fwd
        .interface_add("vxlan_tunnel0", "vxlan", [0; 6], false, 9000)
        .map_err(e)?;
    let t_ipip6 = fwd
        .interface_add("ipip1", "ipip", [0; 6], false, 9000)
        .map_err(e)?;
    let t_vxlan6 = fwd
        .interface_add("vxlan_tunnel1", "vxlan", [0; 6], false, 9000)
        .map_err(e)?;
    // The L2-mode tunnels (Ethernet interfaces), IPv4 and IPv6 outer.
    let t_vxlan_l2 = fwd
        .interface_add("vxlan_tunnel2", "vxlan", L2_MAC, true, 9000)
        .map_err(e)?;
    let t_vxlan6_l2 = fwd
        .interface_add("vxlan_tunnel3", "vxlan", L2_MAC, true, 9000)
        .map_err(e)?;
    for t in [t_vxlan_l2, t_vxlan6_l2] {
        fwd.set_admin_up(t, true).map_err(e)?;
        fwd.set_unnumbered(t, Some(pg)).map_err(e)?;
    }
    for (t, enc) in [
        (t_ipip, ipip::ENCAP4),
        (t_vxlan, vxlan::ENCAP4),
        (t_ipip6, ipip::ENCAP4),
        (t_vxlan6, vxlan::ENCAP4),
    ] {
        fwd.set_admin_up(t, true).map_err(e)?;
        fwd.set_unnumbered(t, Some(pg)).map_err(e)?;
        fwd.feature_enable(t, enc.arc, enc.node, true).map_err(e)?;
    }
    // The IPv6 pods' side: the same tunnels carry their packets from the ip6-output arc.
    for (t, enc) in [
        (t_ipip, ipip::ENCAP6),
        (t_vxlan, vxlan::ENCAP6),
        (t_ipip6, ipip::ENCAP6),
        (t_vxlan6, vxlan::ENCAP6),
    ] {
        fwd.feature_enable(t, enc.arc, enc.node, true).map_err(e)?;
    }
    for (dst, t) in VIA_6IN
        .into_iter()
        .zip([t_ipip, t_vxlan, t_ipip6, t_vxlan6])
    {
        fwd.route_add(0, Prefix::V6(dst, 64), vec![Path::attached(t)])
            .map_err(e)?;
    }
    for (dst, t) in [
        (VIA_IPIP, t_ipip),
        (VIA_VXLAN, t_vxlan),
        (VIA_IPIP6, t_ipip6),
        (VIA_VXLAN6, t_vxlan6),
    ] {
        fwd.route_add(
            0,
            Prefix::V4(dst & 0xffff_ff00, 24),
            vec![Path::attached(t)],
        )
        .map_err(e)?;
    }
    // Both tunnels run between us (pg0's 198.18.0.1) and the remote node 198.18.0.2, which
    // is reached through null0 for encap (a host route), so decap's outer packets arrive on
    // pg0 and encap's leave on null0.
    fwd.route_add(0, Prefix::V4(REMOTE, 32), vec![Path::via(nh, Some(out))])
        .map_err(e)?;
    // The same over IPv6: pg0 fd00:18::1, the remote node fd00:18::2 by null0's fd00:19::2.
    fwd.address_add(pg, Prefix::V6(LOCAL6, 64)).map_err(e)?;
    fwd.address_add(out, Prefix::V6(NH6 - 1, 64)).map_err(e)?;
    fwd.neighbor_add(out, v6(NH6), [2, 0, 0, 0, 0, 9], true)
        .map_err(e)?;
    fwd.route_add(
        0,
        Prefix::V6(REMOTE6, 128),
        vec![Path::via(v6(NH6), Some(out))],
    )
    .map_err(e)?;
    fwd.route_add(
        0,
        Prefix::V6(PLAIN_6IN, 64),
        vec![Path::via(v6(NH6), Some(out))],
    )
    .map_err(e)?;
    let mut ts = ipip::Tunnels::default();
    ts.insert(ipip::Tunnel {
        sw_if_index: t_ipip,
        instance: 0,
        src: v4(LOCAL),
        dst: v4(REMOTE),
        encap_fib: 0,
        table_id: 0,
        flags: 0,
        dscp: 0,
    });
    ts.insert(ipip::Tunnel {
        sw_if_index: t_ipip6,
        instance: 1,
        src: v6(LOCAL6),
        dst: v6(REMOTE6),
        encap_fib: 0,
        table_id: 0,
        flags: 0,
        dscp: 0,
    });
    tables.get::<ipip::Table>().publish(ts);
    let mut vs = vxlan::Tunnels::default();
    vs.insert(vxlan::Tunnel {
        sw_if_index: t_vxlan,
        instance: 0,
        src: v4(LOCAL),
        dst: v4(REMOTE),
        dst_port: VXLAN_PORT,
        src_port: VXLAN_PORT,
        vni: VNI,
        encap_fib: 0,
        encap_vrf_id: 0,
        l3: true,
        decap_next_index: u32::MAX,
    });
    vs.insert(vxlan::Tunnel {
        sw_if_index: t_vxlan6,
        instance: 1,
        src: v6(LOCAL6),
        dst: v6(REMOTE6),
        dst_port: VXLAN_PORT,
        src_port: VXLAN_PORT,
        vni: VNI,
        encap_fib: 0,
        encap_vrf_id: 0,
        l3: true,
        decap_next_index: u32::MAX,
    });
    for (sw, instance, src, dst) in [
        (t_vxlan_l2, 2, v4(LOCAL), v4(REMOTE)),
        (t_vxlan6_l2, 3, v6(LOCAL6), v6(REMOTE6)),
    ] {
        vs.insert(vxlan::Tunnel {
            sw_if_index: sw,
            instance,
            src,
            dst,
            dst_port: VXLAN_PORT,
            src_port: VXLAN_PORT,
            vni: VNI_L2,
            encap_fib: 0,
            encap_vrf_id: 0,
            l3: false,
            decap_next_index: u32::MAX,
        });
    }
    tables.get::<vxlan::Table>().publish(vs);
    let plain = |dst| PgStream::ip4_udp(pg, PG_MAC, GEN_MAC, REMOTE, &[dst], size);
    let pod6 = || plain6(pg, PLAIN_6IN, size).template()[14..].to_vec();
    let stream = if inner6 {
        match case {
            Case::Forward => plain6(pg, PLAIN_6IN, size),
            Case::IpipEncap => plain6(pg, VIA_6IN[0], size),
            Case::VxlanEncap => plain6(pg, VIA_6IN[1], size),
            Case::Ipip6Encap => plain6(pg, VIA_6IN[2], size),
            Case::Vxlan6Encap => plain6(pg, VIA_6IN[3], size),
            Case::IpipDecap => PgStream::frame(pg, encapsulated(&pod6(), false)),
            Case::VxlanDecap => PgStream::frame(pg, encapsulated(&pod6(), true)),
            Case::Ipip6Decap => PgStream::frame(pg, encapsulated6(&pod6(), false)),
            Case::Vxlan6Decap => PgStream::frame(pg, encapsulated6(&pod6(), true)),
            Case::VxlanL2Decap => PgStream::frame(pg, encapsulated_l2(&pod6(), false)),
            Case::Vxlan6L2Decap => PgStream::frame(pg, encapsulated_l2(&pod6(), true)),
        }
    } else {
        match case {
            Case::Forward => plain(PLAIN),
            Case::IpipEncap => plain(VIA_IPIP),
            Case::VxlanEncap => plain(VIA_VXLAN),
            Case::IpipDecap => {
                PgStream::frame(pg, encapsulated(&inner_packet(pg, PLAIN, size), false))
            }
            Case::VxlanDecap => {
                PgStream::frame(pg, encapsulated(&inner_packet(pg, PLAIN, size), true))
            }
            Case::Ipip6Encap => plain(VIA_IPIP6),
            Case::Vxlan6Encap => plain(VIA_VXLAN6),
            Case::Ipip6Decap => {
                PgStream::frame(pg, encapsulated6(&inner_packet(pg, PLAIN, size), false))
            }
            Case::Vxlan6Decap => {
                PgStream::frame(pg, encapsulated6(&inner_packet(pg, PLAIN, size), true))
            }
            Case::VxlanL2Decap => {
                PgStream::frame(pg, encapsulated_l2(&inner_packet(pg, PLAIN, size), false))
            }
            Case::Vxlan6L2Decap => {
                PgStream::frame(pg, encapsulated_l2(&inner_packet(pg, PLAIN, size), true))
            }
        }
    };
    let mut rt = ports.runtime(graph, stream)?;
    let m = measure(&mut rt, out, WARMUP, seconds);
    let counters = || {
        let g = rt.graph();
        g.error_names
            .iter()
            .enumerate()
            .filter_map(|(i, (node, what))| {
                let n = rt.stats().errors[i].get();
                (n > 0).then(|| format!("{node}: {what} {n}"))
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    if m.packets == 0 {
        return Err(format!(
            "nothing left null0, the path is broken: {}",
            counters()
        ));
    }
    if let Some(n) = m.off_path() {
        return Err(format!(
            "packets reached {n}, the path is broken: {}",
            counters()
        ));
    }
    // Every packet sent took the tunnel path (not a plain route, not a drop).
    let count = |node: &str, code: u16| error_count(&rt, node, code);
    let (ipip_enc, vxlan_enc) = match inner6 {
        true => (ipip::ENCAP6.node, vxlan::ENCAP6.node),
        false => (ipip::ENCAP4.node, vxlan::ENCAP4.node),
    };
    let done = match case {
        Case::Forward => m.packets,
        Case::IpipEncap | Case::Ipip6Encap => count(ipip_enc, ipip::encap_error::ENCAPSULATED),
        Case::Ipip6Decap => count(ipip::INPUT6, ipip::input_error::DECAPSULATED),
        Case::Vxlan6Decap | Case::Vxlan6L2Decap => {
            count(vxlan::INPUT6, vxlan::input_error::DECAPSULATED)
        }
        Case::IpipDecap => count(ipip::INPUT4, ipip::input_error::DECAPSULATED),
        Case::VxlanEncap | Case::Vxlan6Encap => count(vxlan_enc, vxlan::encap_error::ENCAPSULATED),
        Case::VxlanDecap | Case::VxlanL2Decap => {
            count(vxlan::INPUT4, vxlan::input_error::DECAPSULATED)
        }
    };
    if done < m.packets {
        return Err(format!(
            "{done} of {} packets took the tunnel path: {}",
            m.packets,
            counters()
        ));
    }
    let all = rt.stats().ifs[out as usize].tx_packets.get();
    Ok((m, all))
}

/// Each node's clocks per packet as JSON, and as one line per node beside the peer's figure
/// for the same node (the per-node figures hold better across noisy runs than the totals).
fn node_table(nodes: &[(String, f64)], peer: &[(String, f64)], print: bool) -> serde_json::Value {
    let peer_of = |n: &str| peer.iter().find(|(p, _)| p == n).map(|x| x.1);
    if print {
        for (n, c) in nodes {
            match peer_of(n) {
                Some(p) => println!(
                    "    {n:<24} {c:6.1}   forwarding {p:6.1}   adds {:6.1}",
                    c - p
                ),
                None => println!("    {n:<24} {c:6.1}   (not on the forwarding path)"),
            }
        }
        for (n, p) in peer
            .iter()
            .filter(|(n, _)| !nodes.iter().any(|x| &x.0 == n))
        {
            println!("    {n:<24} {:6.1}   forwarding {p:6.1}", 0.0);
        }
    }
    serde_json::Value::Object(
        nodes
            .iter()
            .map(|(n, c)| (n.clone(), json!(r2(*c))))
            .collect(),
    )
}

/// `--case NAME`: one case by itself, its packets and every node's clocks per packet.
fn run_alone(
    name: &str,
    sizes: &[usize],
    seconds: f64,
    inner6: bool,
) -> Result<serde_json::Value, String> {
    let case = match name {
        "forward" => Case::Forward,
        "ipip-encap" => Case::IpipEncap,
        "ipip-decap" => Case::IpipDecap,
        "vxlan-encap" => Case::VxlanEncap,
        "vxlan-decap" => Case::VxlanDecap,
        "ipip6-encap" => Case::Ipip6Encap,
        "ipip6-decap" => Case::Ipip6Decap,
        "vxlan6-encap" => Case::Vxlan6Encap,
        "vxlan6-decap" => Case::Vxlan6Decap,
        "vxlan-l2-decap" => Case::VxlanL2Decap,
        "vxlan6-l2-decap" => Case::Vxlan6L2Decap,
        _ => {
            return Err(format!(
                "--case {name}: forward, ipip-encap, ipip-decap, vxlan-encap, vxlan-decap, or \
                 the same over IPv6 outer headers: ipip6-encap, ipip6-decap, vxlan6-encap, \
                 vxlan6-decap; VXLAN's L2 mode (inner Ethernet): vxlan-l2-decap, vxlan6-l2-decap"
            ))
        }
    };
    let mut out = Vec::new();
    for &size in sizes {
        let (m, all) = run_case_counted(case, size, seconds, inner6)?;
        let inner = if inner6 { "IPv6" } else { "IPv4" };
        println!(
            "{name} ({inner} inside) {size} B alone: {} packets ({all} with the warm-up), {:.2} Mpps, {:.1} \
             clocks/pkt",
            m.packets, m.mpps, m.total_clocks
        );
        let nodes = node_table(&m.per_node, &[], false);
        for (n, c) in &m.per_node {
            println!("    {n:<24} {c:6.1}");
        }
        out.push(
            json!({"case": name, "inner6": inner6, "size": size, "packets": m.packets, "mpps": r2(m.mpps),
            "clocks_per_packet": r2(m.total_clocks), "node_clocks_per_packet": nodes}),
        );
    }
    Ok(json!({"benchmark": "overlay", "seconds": seconds, "results": out}))
}

pub fn run(args: &[String]) -> Result<serde_json::Value, String> {
    // `--nodes`: also print each node's clocks per packet (always in the JSON).
    let print_nodes = args.iter().any(|a| a == "--nodes");
    // `--inner6` (with `--case`): IPv6 pod packets inside.
    let inner6 = args.iter().any(|a| a == "--inner6");
    // `--case NAME`: that case alone, once per size, no peer (for callgrind, whose counts
    // per node are only the case's when nothing else runs in the process).
    let only = args
        .iter()
        .position(|a| a == "--case")
        .map(|i| args.get(i + 1).cloned().ok_or("--case NAME"))
        .transpose()?;
    let args: Vec<String> = args
        .iter()
        .filter(|a| *a != "--nodes" && *a != "--inner6")
        .filter(|a| only.as_deref() != Some(a.as_str()) && *a != "--case")
        .cloned()
        .collect();
    let SizedRuns {
        seconds,
        runs,
        sizes,
    } = SizedRuns::parse(&args)?;
    println!(
        "overlay, one core, in-process graph; plain IPv4 forwarding of the same inner frames \
         alternates with each case in the same run (sizes are the pod's frame)"
    );
    let cases = [
        ("ipip", "encap", Case::IpipEncap),
        ("ipip", "decap", Case::IpipDecap),
        ("vxlan", "encap", Case::VxlanEncap),
        ("vxlan", "decap", Case::VxlanDecap),
        // A Linux vxlan.calico peer's frames (inner Ethernet); its encap is VXLAN's.
        ("vxlan-l2", "decap", Case::VxlanL2Decap),
    ];
    if let Some(name) = only {
        return run_alone(&name, &sizes, seconds, inner6);
    }
    if inner6 {
        return Err("--inner6 goes with --case".into());
    }
    let mut out = Vec::new();
    let mut summary = Vec::new();
    for &size in &sizes {
        // Per tunnel: clocks added over forwarding, and by how many directions.
        let mut added = std::collections::BTreeMap::<&str, (f64, usize)>::new();
        for (tunnel, dir, case) in cases {
            let a = alternate_nodes(
                runs,
                || run_case(case, size, seconds),
                || run_case(Case::Forward, size, seconds),
            )?;
            let (m, c, pm, pc) = (a.mpps, a.clocks, a.peer_mpps, a.peer_clocks);
            let e = added.entry(tunnel).or_default();
            *e = (e.0 + c - pc, e.1 + 1);
            println!(
                "{tunnel:5} {dir} {size:5} B: {m:6.2} Mpps {c:6.1} clocks/pkt | ipv4 forwarding \
                 {pm:6.2} Mpps {pc:6.1} clocks/pkt | adds {:5.1} clocks, ratio {:.2}",
                c - pc,
                m / pm.max(1e-9)
            );
            let nodes = node_table(&a.nodes, &a.peer_nodes, print_nodes);
            let peer_nodes = node_table(&a.peer_nodes, &[], false);
            out.push(json!({
                "tunnel": tunnel, "direction": dir, "size": size, "mpps": r2(m),
                "clocks_per_packet": r2(c), "peer": "ipv4 forwarding", "peer_mpps": r2(pm),
                "peer_clocks_per_packet": r2(pc), "added_clocks": r2(c - pc),
                "ratio": r2(m / pm.max(1e-9)),
                "node_clocks_per_packet": nodes, "peer_node_clocks_per_packet": peer_nodes,
            }));
        }
        for (tunnel, (a, _)) in added.into_iter().filter(|(_, (_, dirs))| *dirs == 2) {
            println!(
                "{tunnel:5} {size:5} B: encap + decap add {a:.1} clocks/pkt (target <= \
                 {TARGET_ADDED_CLOCKS})"
            );
            summary.push(json!({"tunnel": tunnel, "size": size,
                "encap_plus_decap_added_clocks": r2(a),
                "target_met": a <= TARGET_ADDED_CLOCKS}));
        }
    }
    Ok(json!({
        "benchmark": "overlay",
        "seconds": seconds,
        "runs": runs,
        "results": out,
        "added": summary,
        "target_added_clocks": TARGET_ADDED_CLOCKS,
    }))
}
