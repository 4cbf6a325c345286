//! Interfaces with devices behind them: loopbacks, taps (tap_create_v3), af_packet and
//! af_xdp uplinks (memif is in memif.rs).

use super::convert::{self, rv};
use super::handlers::State;
use rvpp_dataplane::device::{RxQueue, TxQueue};
use rvpp_drivers::af_packet::{AfPacket, AfPacketConfig};
use rvpp_drivers::af_xdp::{self, AfXdp, AfXdpConfig, XdpMode};
use rvpp_drivers::tap::{self, Tap, TapConfig, TapMode};
use rvpp_vppapi::defs as d;
use std::hash::{BuildHasher, Hasher};

/// A locally administered unicast MAC (VPP's "random" MAC).
pub fn random_mac() -> [u8; 6] {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let v = h.finish().to_be_bytes();
    [0x02, 0xfe, v[0], v[1], v[2], v[3]]
}

/// Put a device's queues on the workers: rx queues spread, tx queues one per worker or, with
/// fewer queues than workers, shared (Dataplane::attach_queues).
pub(super) fn attach(
    s: &State,
    sw: u32,
    kind: &str,
    detail: String,
    rx: Vec<Box<dyn RxQueue>>,
    tx: Vec<Box<dyn TxQueue>>,
) {
    s.dp.attach_queues(sw, kind, detail, rx, tx);
    s.kick();
}

pub fn create_loopback(s: &mut State, mac: [u8; 6]) -> (i32, u32) {
    let mac = if mac == [0; 6] { random_mac() } else { mac };
    match s.dp.create_loopback(mac) {
        Ok((sw, _)) => {
            s.kick();
            (0, sw)
        }
        Err(e) => (convert::fwd_rv(&e), convert::NONE),
    }
}

/// Remove an interface of device type `kind` with everything attached to it.
pub fn delete_interface(s: &mut State, sw: u32, kind: &str) -> i32 {
    match s.dp.fwd().iface(sw) {
        Ok(i) if i.dev_type == kind => {}
        _ => return rv::INVALID_SW_IF_INDEX,
    }
    s.dp.detach(sw);
    let r = s.dp.fwd().interface_del(sw);
    s.forget_interface(sw);
    s.kick();
    convert::retval(r)
}

/// VPP's tap ids: the lowest free one unless the request names one.
fn tap_id(s: &State, want: u32) -> Result<u32, i32> {
    let used = |id| s.taps.values().any(|t| t.0 == id);
    if want != convert::NONE {
        return if used(want) {
            Err(-79) // IF_ALREADY_EXISTS
        } else {
            Ok(want)
        };
    }
    Ok((0..).find(|&i| !used(i)).unwrap_or(0))
}

pub fn tap_create(s: &mut State, m: &d::TapCreateV3) -> (i32, u32) {
    let flags = m.tap_flags;
    let tun = flags.contains(d::TapFlags::TAP_API_FLAG_TUN);
    let id = match tap_id(s, m.id) {
        Ok(i) => i,
        Err(e) => return (e, convert::NONE),
    };
    let name = format!("{}{id}", if tun { "tun" } else { "tap" });
    let host_name = if m.host_if_name_set {
        convert::text(&m.host_if_name).to_string()
    } else {
        name.clone()
    };
    let gso = flags.contains(d::TapFlags::TAP_API_FLAG_GSO);
    let csum = flags.contains(d::TapFlags::TAP_API_FLAG_CSUM_OFFLOAD);
    let cfg = TapConfig {
        name: host_name,
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
    // Default routes on the Linux side are not set up: refuse rather than leave them out.
    if m.host_ip4_gw_set || m.host_ip6_gw_set {
        log::warn!("api: tap_create_v3 {name}: host gateways are not supported");
        return (rv::UNIMPLEMENTED, convert::NONE);
    }
    let mac = if m.use_random_mac || m.mac_address.0 == [0; 6] {
        random_mac()
    } else {
        m.mac_address.0
    };
    let mtu = m.host_mtu_size.clamp(68, 65535) as u16;
    let mtu = if m.host_mtu_set { mtu } else { 1500 };
    let sw = match s.dp.fwd().interface_add(&name, "tap", mac, !tun, mtu) {
        Ok(sw) => sw,
        Err(e) => return (convert::fwd_rv(&e), convert::NONE),
    };
    let (rx, tx, info) = match Tap::create(&cfg, sw) {
        Ok(q) => q,
        Err(e) => {
            log::warn!("api: tap_create_v3 {name}: {e}");
            let _ = s.dp.fwd().interface_del(sw);
            // VPP: NETLINK_ERROR when the Linux side's addresses or bridge cannot be set;
            // otherwise SYSCALL_ERROR_2, on which calico retries without ATTACH.
            let rv = if tap::is_host_side_error(&e) {
                rv::NETLINK_ERROR
            } else {
                rv::SYSCALL_ERROR_2
            };
            return (rv, convert::NONE);
        }
    };
    let r = {
        let mut f = s.dp.fwd();
        // What the kernel accepted: with TSO the tap takes GSO super-frames (interface-output
        // sends them whole), with CSUM it completes checksums; otherwise rvpp segments and
        // checksums in software before sending here.
        let gso = info.offloads & (libc::TUN_F_TSO4 | libc::TUN_F_TSO6) != 0;
        let csum = info.offloads & libc::TUN_F_CSUM != 0;
        (if m.tag.is_empty() {
            Ok(())
        } else {
            f.set_tag(sw, &m.tag)
        })
        .and_then(|()| match info.vnet_hdr {
            true => f.set_tx_offloads(sw, gso, csum),
            false => Ok(()),
        })
    };
    if let Err(e) = r {
        let _ = tap::delete(&info);
        return undo_create(s, sw, "tap_create_v3", &name, &e);
    }
    let detail = format!(
        "{} {} in {}",
        if tun { "tun" } else { "tap" },
        info.name,
        info.netns.as_deref().unwrap_or("the default netns")
    );
    attach(s, sw, "tap", detail, rx, tx);
    s.taps.insert(sw, (id, info));
    (0, sw)
}

pub fn tap_delete(s: &mut State, sw: u32) -> i32 {
    let Some((_, info)) = s.taps.remove(&sw) else {
        return rv::INVALID_SW_IF_INDEX;
    };
    let rv = delete_interface(s, sw, "tap");
    let linux = tap::delete(&info);
    if let Err(e) = &linux {
        log::warn!("api: tap_delete_v2 {}: {e}", info.name);
    }
    tap_delete_rv(rv, &linux)
}

/// tap_delete_v2's answer: the interface's removal, then the Linux device's. A persistent
/// device that could not be released stays in Linux: SYSCALL_ERROR_1, not 0.
fn tap_delete_rv(interface: i32, linux: &std::io::Result<()>) -> i32 {
    match (interface, linux) {
        (0, Err(_)) => rv::SYSCALL_ERROR_1,
        (rv, _) => rv,
    }
}

pub fn af_packet_create(s: &mut State, m: &d::AfPacketCreateV3) -> (i32, u32) {
    let host = convert::text(&m.host_if_name).to_string();
    if host.is_empty() {
        return (rv::INVALID_INTERFACE, convert::NONE);
    }
    let name = format!("host-{host}");
    let l2 = m.mode != d::AfPacketMode::AF_PACKET_API_MODE_IP;
    let sw = match s
        .dp
        .fwd()
        .interface_add(&name, "af_packet", [0; 6], l2, 1500)
    {
        Ok(sw) => sw,
        Err(e) => return (convert::fwd_rv(&e), convert::NONE),
    };
    let cfg = AfPacketConfig {
        host_if_name: host.clone(),
        queues: m.num_rx_queues.max(m.num_tx_queues).max(1),
        qdisc_bypass: m
            .flags
            .contains(d::AfPacketFlags::AF_PACKET_API_FLAG_QDISC_BYPASS),
        vnet_hdr: m
            .flags
            .contains(d::AfPacketFlags::AF_PACKET_API_FLAG_CKSUM_GSO),
        ..Default::default()
    };
    let (rx, tx, info) = match AfPacket::create(&cfg, sw) {
        Ok(q) => q,
        Err(e) => {
            log::warn!("api: af_packet_create_v3 {host}: {e}");
            let _ = s.dp.fwd().interface_del(sw);
            let rv = if e.raw_os_error() == Some(libc::ENODEV)
                || e.kind() == std::io::ErrorKind::NotFound
            {
                rv::INVALID_INTERFACE
            } else {
                rv::SYSCALL_ERROR_1
            };
            return (rv, convert::NONE);
        }
    };
    let mac = if m.use_random_hw_addr {
        random_mac()
    } else if m.hw_addr.0 != [0; 6] {
        m.hw_addr.0
    } else {
        info.mac
    };
    let r = {
        let mut f = s.dp.fwd();
        // PACKET_VNET_HDR carries GSO and checksum offload like a tap's vnet header.
        f.set_mac(sw, mac)
            .and_then(|()| f.set_mtu(sw, info.mtu.clamp(68, 65535) as u16))
            .and_then(|()| match info.vnet_hdr {
                true => f.set_tx_offloads(sw, true, true),
                false => Ok(()),
            })
    };
    if let Err(e) = r {
        return undo_create(s, sw, "af_packet_create_v3", &host, &e);
    }
    let detail = format!("af_packet on {host}, {} queue(s)", info.queues);
    attach(s, sw, "af_packet", detail, rx, tx);
    (0, sw)
}

/// A created device whose interface could not be set up: remove it and answer the error.
/// (`rx`/`tx` queues not attached yet are dropped by the caller's return.)
fn undo_create(
    s: &State,
    sw: u32,
    what: &str,
    host: &str,
    e: &rvpp_dataplane::forwarding::FwdError,
) -> (i32, u32) {
    log::warn!("api: {what} {host}: {e}");
    let _ = s.dp.fwd().interface_del(sw);
    (convert::fwd_rv(e), convert::NONE)
}

pub fn af_packet_delete(s: &mut State, host: &str) -> i32 {
    let sw =
        s.dp.fwd()
            .ifs()
            .by_name(&format!("host-{host}"))
            .map(|i| i.sw_if_index);
    match sw {
        Some(sw) => delete_interface(s, sw, "af_packet"),
        None => rv::SYSCALL_ERROR_1,
    }
}

/// `af_xdp_create_v3`: rvpp's own XDP program on `host_if` (a `prog` is refused), one socket
/// per rx queue. The name defaults to `<host_if>/<n>` as VPP's.
pub fn af_xdp_create(s: &mut State, m: &d::AfXdpCreateV3) -> (i32, u32) {
    let host = convert::text(&m.host_if).to_string();
    if host.is_empty() {
        return (rv::INVALID_INTERFACE, convert::NONE);
    }
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
        host_if_name: host.clone(),
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
    // VPP's codes: a host interface it cannot query is SYSCALL_ERROR_2 (its SIOCGIFHWADDR),
    // a namespace it cannot enter SYSCALL_ERROR_1.
    match af_xdp::host_link(&host, cfg.netns.as_deref()) {
        Ok(Some(_)) => {}
        Ok(None) => return (rv::SYSCALL_ERROR_2, convert::NONE),
        Err(e) => {
            log::warn!("api: af_xdp_create_v3 {host}: {e}");
            return (rv::SYSCALL_ERROR_1, convert::NONE);
        }
    }
    let name = {
        let f = s.dp.fwd();
        match convert::text(&m.name) {
            "" => (0..)
                .map(|i| format!("{host}/{i}"))
                .find(|n| f.ifs().by_name(n).is_none())
                .unwrap_or_default(),
            n => n.to_string(),
        }
    };
    let sw = match s
        .dp
        .fwd()
        .interface_add(&name, "af_xdp", [0; 6], true, 1500)
    {
        Ok(sw) => sw,
        Err(e) => return (convert::fwd_rv(&e), convert::NONE),
    };
    let (rx, tx, info) = match AfXdp::create(&cfg, sw) {
        Ok(q) => q,
        Err(e) => {
            log::warn!("api: af_xdp_create_v3 {host}: {e}");
            let _ = s.dp.fwd().interface_del(sw);
            let rv = match e.kind() {
                std::io::ErrorKind::Unsupported => rv::UNIMPLEMENTED,
                _ => rv::SYSCALL_ERROR_1,
            };
            return (rv, convert::NONE);
        }
    };
    let r = {
        let mut f = s.dp.fwd();
        f.set_mac(sw, info.mac)
            .and_then(|()| f.set_mtu(sw, info.mtu.clamp(68, 65535) as u16))
    };
    if let Err(e) = r {
        return undo_create(s, sw, "af_xdp_create_v3", &host, &e);
    }
    let detail = format!(
        "af_xdp {host} in {}: {} queue(s), XDP program {} ({}), {}",
        info.netns.as_deref().unwrap_or("the default netns"),
        info.queues,
        info.prog_id,
        if info.native { "native" } else { "generic" },
        if info.zero_copy { "zero-copy" } else { "copy" },
    );
    attach(s, sw, "af_xdp", detail, rx, tx);
    (0, sw)
}

pub fn af_xdp_delete(s: &mut State, sw: u32) -> i32 {
    delete_interface(s, sw, "af_xdp")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tap_left_in_linux_is_an_error() {
        let gone = || Err(std::io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(tap_delete_rv(0, &Ok(())), 0);
        assert_eq!(tap_delete_rv(0, &gone()), rv::SYSCALL_ERROR_1);
        assert_eq!(
            tap_delete_rv(rv::INVALID_SW_IF_INDEX, &gone()),
            rv::INVALID_SW_IF_INDEX
        );
    }
}
