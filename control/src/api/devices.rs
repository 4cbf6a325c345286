//! Interfaces with devices behind them over the API: loopbacks, taps (tap_create_v3),
//! af_packet and af_xdp uplinks (memif is in memif.rs). The devices are the control service's
//! (`service::interfaces`, `service::linux`); these translate messages to its calls.

use super::convert::{self, rv};
use super::handlers::State;
use crate::service::linux::{self, Kind, TapRequest};
use crate::service::{interfaces, ipip, vxlan, SvcResult};
use rvpp_drivers::af_packet::AfPacketConfig;
use rvpp_drivers::af_xdp::{AfXdpConfig, XdpMode};
use rvpp_drivers::tap::{TapConfig, TapMode};
use rvpp_vppapi::defs as d;
use rvpp_vppapi::transport::{Response, Router};

/// (retval, sw_if_index) of a create.
pub(super) fn created(s: &State, what: &str, r: SvcResult<(u32, String)>) -> (i32, u32) {
    s.kick();
    match r {
        Ok((sw, _)) => (0, sw),
        Err(e) => {
            log::warn!("api: {what}: {e}");
            (e.retval, convert::NONE)
        }
    }
}

/// retval of a delete.
pub(super) fn deleted(s: &mut State, what: &str, r: SvcResult<()>) -> i32 {
    s.kick();
    match r {
        Ok(()) => 0,
        Err(e) => {
            log::warn!("api: {what}: {e}");
            e.retval
        }
    }
}

pub fn create_loopback(s: &mut State, mac: [u8; 6]) -> (i32, u32) {
    let r = interfaces::create_loopback(&s.dp, mac);
    created(s, "create_loopback", r)
}

/// Remove an interface of device type `kind` with everything attached to it.
pub fn delete_interface(s: &mut State, sw: u32, kind: &str) -> i32 {
    let r = interfaces::delete(&s.dp, sw, kind);
    deleted(s, kind, r)
}

/// vxlan_add_del_tunnel_v3: (retval, sw_if_index). As in VPP, `src_port` (the local port) is
/// the one VXLAN is received on and `dst_port` the one sent to; 0 is 4789.
pub fn vxlan_add_del(s: &mut State, m: &d::VxlanAddDelTunnelV3) -> (i32, u32) {
    let (src, dst) = (
        convert::addr_ip(&m.src_address),
        convert::addr_ip(&m.dst_address),
    );
    if !m.is_add {
        let r = vxlan::delete(&s.dp, src, dst, m.vni);
        let sw = r.as_ref().copied().unwrap_or(convert::NONE);
        return (deleted(s, "vxlan_add_del_tunnel_v3", r.map(|_| ())), sw);
    }
    if !decap_next_is_honoured(s, src.is_ipv6(), m.decap_next_index) {
        log::warn!(
            "api: vxlan_add_del_tunnel_v3: decap_next_index {} is not an edge rvpp's decap takes",
            m.decap_next_index
        );
        return (rv::UNIMPLEMENTED, convert::NONE);
    }
    let req = vxlan::VxlanRequest {
        instance: (m.instance != u32::MAX).then_some(m.instance),
        src,
        dst,
        dst_port: m.dst_port,
        src_port: m.src_port,
        vni: m.vni,
        encap_vrf_id: m.encap_vrf_id,
        l3: m.is_l3,
        decap_next_index: m.decap_next_index,
    };
    let r = vxlan::create(&s.dp, req);
    created(s, "vxlan_add_del_tunnel_v3", r)
}

/// Decap picks ethernet-input, ip4-input or ip6-input from the tunnel mode and the inner
/// packet, so a `decap_next_index` naming one of those edges of vxlan4/6-input (or ~0, the
/// default) is what rvpp does; any other edge would be accepted and not followed.
fn decap_next_is_honoured(s: &State, ip6: bool, next: u32) -> bool {
    if next == u32::MAX {
        return true;
    }
    let node = if ip6 { "vxlan6-input" } else { "vxlan4-input" };
    let Some(n) = s.dp.graph_names.iter().position(|x| *x == node) else {
        return false;
    };
    s.dp.graph_edges[n]
        .get(next as usize)
        .is_some_and(|e| matches!(*e, "ethernet-input" | "ip4-input" | "ip6-input"))
}

/// vxlan_tunnel_v2_dump: every tunnel, or the one on `sw` (~0 or 0, which is local0: all).
pub fn vxlan_dump(s: &State, sw: u32) -> Vec<d::VxlanTunnelV2Details> {
    vxlan::list(&s.dp, (sw != u32::MAX && sw != 0).then_some(sw))
        .into_iter()
        .map(|t| d::VxlanTunnelV2Details {
            context: 0,
            sw_if_index: d::InterfaceIndex(t.sw_if_index),
            instance: t.instance,
            src_address: convert::ip_addr(t.src),
            dst_address: convert::ip_addr(t.dst),
            src_port: t.src_port,
            dst_port: t.dst_port,
            mcast_sw_if_index: d::InterfaceIndex(u32::MAX),
            encap_vrf_id: t.encap_vrf_id,
            decap_next_index: t.decap_next_index,
            vni: t.vni,
        })
        .collect()
}

/// ipip_add_tunnel: (retval, sw_if_index). Multipoint tunnels are refused (-9).
pub fn ipip_add(s: &mut State, m: &d::IpipAddTunnel) -> (i32, u32) {
    let t = &m.tunnel;
    if t.mode != d::TunnelMode::TUNNEL_API_MODE_P2P {
        log::warn!("api: ipip_add_tunnel: only point-to-point tunnels are supported");
        return (rv::UNIMPLEMENTED, convert::NONE);
    }
    let req = ipip::IpipRequest {
        instance: (t.instance != u32::MAX).then_some(t.instance),
        src: convert::addr_ip(&t.src),
        dst: convert::addr_ip(&t.dst),
        table_id: t.table_id,
        flags: t.flags.0,
        dscp: t.dscp.0,
    };
    let r = ipip::create(&s.dp, req);
    created(s, "ipip_add_tunnel", r)
}

pub fn ipip_del(s: &mut State, sw: u32) -> i32 {
    let r = ipip::delete(&s.dp, sw);
    deleted(s, "ipip_del_tunnel", r)
}

/// ipip_tunnel_dump: every tunnel, or the one on `sw` (~0 or 0, which is local0: all).
pub fn ipip_dump(s: &State, sw: u32) -> Vec<d::IpipTunnelDetails> {
    ipip::list(&s.dp, (sw != u32::MAX && sw != 0).then_some(sw))
        .into_iter()
        .map(|t| d::IpipTunnelDetails {
            context: 0,
            tunnel: d::IpipTunnel {
                instance: t.instance,
                src: convert::ip_addr(t.src),
                dst: convert::ip_addr(t.dst),
                sw_if_index: d::InterfaceIndex(t.sw_if_index),
                table_id: t.table_id,
                flags: d::TunnelEncapDecapFlags(t.flags),
                mode: d::TunnelMode::TUNNEL_API_MODE_P2P,
                dscp: d::IpDscp(t.dscp),
            },
        })
        .collect()
}

pub fn tap_create(s: &mut State, m: &d::TapCreateV3) -> (i32, u32) {
    let flags = m.tap_flags;
    let tun = flags.contains(d::TapFlags::TAP_API_FLAG_TUN);
    // Default routes on the Linux side are not set up: refuse rather than leave them out.
    if m.host_ip4_gw_set || m.host_ip6_gw_set {
        log::warn!("api: tap_create_v3: host gateways are not supported");
        return (rv::UNIMPLEMENTED, convert::NONE);
    }
    let gso = flags.contains(d::TapFlags::TAP_API_FLAG_GSO);
    let csum = flags.contains(d::TapFlags::TAP_API_FLAG_CSUM_OFFLOAD);
    let cfg = TapConfig {
        name: if m.host_if_name_set {
            convert::text(&m.host_if_name).to_string()
        } else {
            String::new()
        },
        netns: m
            .host_namespace_set
            .then(|| convert::text(&m.host_namespace).to_string())
            .filter(|n| !n.is_empty()),
        mode: if tun { TapMode::Tun } else { TapMode::Tap },
        queues: m.num_rx_queues.max(m.num_tx_queues).max(1),
        mtu: m.host_mtu_set.then_some(m.host_mtu_size),
        mac: (m.host_mac_addr_set && !tun).then_some(m.host_mac_addr.0),
        vnet_hdr: gso || csum,
        csum_offload: csum,
        gso,
        persist: flags.contains(d::TapFlags::TAP_API_FLAG_PERSIST),
        attach: flags.contains(d::TapFlags::TAP_API_FLAG_ATTACH),
        up: true,
        host_ip4: m.host_ip4_prefix_set.then(|| {
            let p = m.host_ip4_prefix.0;
            (std::net::Ipv4Addr::from(p.address.0), p.len)
        }),
        host_ip6: m.host_ip6_prefix_set.then(|| {
            let p = m.host_ip6_prefix.0;
            (std::net::Ipv6Addr::from(p.address.0), p.len)
        }),
        host_bridge: m
            .host_bridge_set
            .then(|| convert::text(&m.host_bridge).to_string()),
    };
    let req = TapRequest {
        id: (m.id != convert::NONE).then_some(m.id),
        cfg,
        mac: (!m.use_random_mac).then_some(m.mac_address.0),
        tag: m.tag.clone(),
        watch: false,
    };
    let r = linux::create_tap(&s.dp, req);
    created(s, "tap_create_v3", r)
}

pub fn tap_delete(s: &mut State, sw: u32) -> i32 {
    let r = linux::delete(&s.dp, sw, &[Kind::Tap, Kind::Tun]);
    deleted(s, "tap_delete_v2", r)
}

pub fn af_packet_create(s: &mut State, m: &d::AfPacketCreateV3) -> (i32, u32) {
    let cfg = AfPacketConfig {
        host_if_name: convert::text(&m.host_if_name).to_string(),
        queues: m.num_rx_queues.max(m.num_tx_queues).max(1),
        qdisc_bypass: m
            .flags
            .contains(d::AfPacketFlags::AF_PACKET_API_FLAG_QDISC_BYPASS),
        vnet_hdr: m
            .flags
            .contains(d::AfPacketFlags::AF_PACKET_API_FLAG_CKSUM_GSO),
        ..Default::default()
    };
    let l2 = m.mode != d::AfPacketMode::AF_PACKET_API_MODE_IP;
    let mac = if m.use_random_hw_addr {
        Some(crate::service::random_mac())
    } else {
        Some(m.hw_addr.0).filter(|a| *a != [0; 6])
    };
    let r = linux::create_af_packet(&s.dp, cfg, l2, mac, false);
    created(s, "af_packet_create_v3", r)
}

pub fn af_packet_delete(s: &mut State, host: &str) -> i32 {
    match linux::find(&s.dp, &format!("host-{host}"), &[Kind::AfPacket]) {
        Some(sw) => delete_interface(s, sw, "af_packet"),
        None => rv::SYSCALL_ERROR_1,
    }
}

/// `af_xdp_create_v3`: rvpp's own XDP program on `host_if` (a `prog` is refused), one socket
/// per rx queue. The name defaults to `<host_if>/<n>` as VPP's.
pub fn af_xdp_create(s: &mut State, m: &d::AfXdpCreateV3) -> (i32, u32) {
    let host = convert::text(&m.host_if).to_string();
    if !convert::text(&m.prog).is_empty() {
        log::warn!("api: af_xdp_create_v3 {host}: rvpp loads its own XDP program, not a `prog`");
        return (rv::UNIMPLEMENTED, convert::NONE);
    }
    let ring = u32::from(m.rxq_size.max(m.txq_size));
    if ring != 0 && !ring.is_power_of_two() {
        return (rv::INVALID_VALUE, convert::NONE);
    }
    let netns = convert::text(&m.netns);
    let cfg = AfXdpConfig {
        host_if_name: host,
        netns: (!netns.is_empty()).then(|| netns.to_string()),
        queues: m.rxq_num.max(1),
        mode: match m.mode {
            d::AfXdpMode::AF_XDP_API_MODE_COPY => XdpMode::Copy,
            d::AfXdpMode::AF_XDP_API_MODE_ZERO_COPY => XdpMode::ZeroCopy,
            _ => XdpMode::Auto,
        },
        ring_size: if ring == 0 { 2048 } else { ring },
        ..Default::default()
    };
    let name = Some(convert::text(&m.name).to_string());
    let r = linux::create_af_xdp(&s.dp, cfg, name, false);
    created(s, "af_xdp_create_v3", r)
}

pub fn af_xdp_delete(s: &mut State, sw: u32) -> i32 {
    delete_interface(s, sw, "af_xdp")
}

pub(super) fn register(r: &mut Router<State>) {
    r.on(|s: &mut State, m: d::CreateLoopback, _c| {
        let (rv, sw) = create_loopback(s, m.mac_address.0);
        Response::reply(d::CreateLoopbackReply {
            context: 0,
            retval: rv,
            sw_if_index: d::InterfaceIndex(sw),
        })
    });
    r.on(|s: &mut State, m: d::DeleteLoopback, _c| {
        let rv = delete_interface(s, m.sw_if_index.0, "loopback");
        reply!(DeleteLoopbackReply, rv)
    });
    r.on(|s: &mut State, m: d::IpipAddTunnel, _c| {
        let (rv, sw) = ipip_add(s, &m);
        Response::reply(d::IpipAddTunnelReply {
            context: 0,
            retval: rv,
            sw_if_index: d::InterfaceIndex(sw),
        })
    });
    r.on(|s: &mut State, m: d::IpipDelTunnel, _c| {
        let rv = ipip_del(s, m.sw_if_index.0);
        reply!(IpipDelTunnelReply, rv)
    });
    r.on(|s: &mut State, m: d::IpipTunnelDump, _c| Response::stream(ipip_dump(s, m.sw_if_index.0)));
    r.on(|s: &mut State, m: d::VxlanAddDelTunnelV3, _c| {
        let (rv, sw) = vxlan_add_del(s, &m);
        Response::reply(d::VxlanAddDelTunnelV3Reply {
            context: 0,
            retval: rv,
            sw_if_index: d::InterfaceIndex(sw),
        })
    });
    r.on(|s: &mut State, m: d::VxlanTunnelV2Dump, _c| {
        Response::stream(vxlan_dump(s, m.sw_if_index.0))
    });
    r.on(|s: &mut State, m: d::TapCreateV3, _c| {
        let (rv, sw) = tap_create(s, &m);
        Response::reply(d::TapCreateV3Reply {
            context: 0,
            retval: rv,
            sw_if_index: d::InterfaceIndex(sw),
        })
    });
    r.on(|s: &mut State, m: d::TapDeleteV2, _c| {
        let rv = tap_delete(s, m.sw_if_index.0);
        reply!(TapDeleteV2Reply, rv)
    });
    r.on(|s: &mut State, m: d::AfPacketCreateV3, _c| {
        let (rv, sw) = af_packet_create(s, &m);
        Response::reply(d::AfPacketCreateV3Reply {
            context: 0,
            retval: rv,
            sw_if_index: d::InterfaceIndex(sw),
        })
    });
    r.on(|s: &mut State, m: d::AfPacketDelete, _c| {
        let rv = af_packet_delete(s, convert::text(&m.host_if_name));
        reply!(AfPacketDeleteReply, rv)
    });
    r.on(|s: &mut State, m: d::AfXdpCreateV3, _c| {
        let (rv, sw) = af_xdp_create(s, &m);
        Response::reply(d::AfXdpCreateV3Reply {
            context: 0,
            retval: rv,
            sw_if_index: d::InterfaceIndex(sw),
        })
    });
    r.on(|s: &mut State, m: d::AfXdpDelete, _c| {
        let rv = af_xdp_delete(s, m.sw_if_index.0);
        reply!(AfXdpDeleteReply, rv)
    });
}
