//! VXLAN against the Linux kernel's: a netns of the test's own is a "Linux Calico node" with a
//! `vxlan` device (VNI 4096, port 4789, as felix's vxlan.calico) reached through an rvpp tap. The
//! Linux side pings rvpp's tunnel address: the request crosses Linux encap -> rvpp decap, the
//! reply rvpp encap -> Linux decap, so a reply proves both directions on the wire.
//!
//! Addresses: uplink 198.18.0.0/30 or fd00::/64 (rvpp .1 / ::1, Linux .2 / ::2), tunnel
//! 198.19.255.0/24 (rvpp .1, Linux .2). Static neighbours on both sides, as felix programs (VTEP MAC per node).

#[path = "../../test-support/skip.rs"]
mod skip;

mod common;

#[path = "common/api_client.rs"]
mod api_client;

use common::{counted, iperf3_short, Netns, Rvpp};

const TUN_MAC: &str = "02:fe:00:00:00:c0";
const LINUX_VTEP_MAC: &str = "66:01:02:03:04:05";

fn ok(out: String) {
    assert!(out.trim().is_empty(), "rvppctl said: {out}");
}

/// The count `show errors` prints for a reason (0 when absent).
fn error_count(errors: &str, reason: &str) -> u64 {
    errors
        .lines()
        .find(|l| l.contains(reason))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn linux_vxlan_peer_pings_across_the_tunnel() {
    ping_across("vx", Outer::V4);
}

/// The same with IPv6 outer headers (Linux checksums UDP over IPv6 and checks ours).
#[test]
fn linux_vxlan_peer_pings_across_an_ipv6_outer_tunnel() {
    ping_across("vx6", Outer::V6);
}

/// Dual-stack pods: IPv6 inside the tunnel (inner Ethernet with ethertype 0x86DD, as
/// vxlan.calico carries it), over either outer family. The Linux node pings rvpp's IPv6
/// tunnel address: the kernel encapsulates and decapsulates the IPv6 packets rvpp takes
/// apart and builds.
#[test]
fn linux_vxlan_peer_pings_ipv6_inside_the_tunnel() {
    ping6_inside("vxi6", Outer::V4);
    ping6_inside("vx6i6", Outer::V6);
}

fn ping6_inside(tag: &str, outer: Outer) {
    if !skip::need_root("for a tap and a vxlan device in a namespace of the test's own") {
        return;
    }
    let (r, ns, _) = linux_peer(tag, outer);
    ok(r.ctl("set interface ip address vxlan_tunnel0 fd01:ff::1/64"));
    ok(r.ctl(&format!(
        "set ip neighbor vxlan_tunnel0 fd01:ff::2 {LINUX_VTEP_MAC}"
    )));
    ns.ip("addr add fd01:ff::2/64 dev vx0 nodad");
    ns.ip(&format!(
        "neigh replace fd01:ff::1 lladdr {TUN_MAC} dev vx0 nud permanent"
    ));
    let ping = ns.exec(&[
        "ping",
        "-6",
        "-c",
        "3",
        "-i",
        "0.2",
        "-W",
        "2",
        "fd01:ff::1",
    ]);
    let text = String::from_utf8_lossy(&ping.stdout).to_string();
    let errors = r.ctl("show errors");
    assert!(
        ping.status.success() && text.contains(" 0% packet loss"),
        "IPv6 ping inside VXLAN failed:\n{text}\n{errors}"
    );
    assert!(
        error_count(&errors, "vxlan packets decapsulated") >= 3,
        "{errors}"
    );
    drop(r);
    drop(ns);
}

#[derive(Clone, Copy, PartialEq)]
enum Outer {
    V4,
    V6,
}

/// rvpp with a tap uplink into `ns`, a Linux node there with a `vxlan` device as felix makes
/// vxlan.calico, and the tunnel between them up, with static neighbours on both sides.
/// Returns the tunnel's create command (the test deletes it with ` del`).
fn linux_peer(tag: &str, outer: Outer) -> (Rvpp, Netns, String) {
    linux_peer_on(tag, outer, 4789)
}

/// [`linux_peer`] with both ends on UDP port `port`: other than 4789, rvpp's tunnel is made
/// through the binary API as calico-vpp makes it (`src_port` = `dst_port` = felix's
/// VXLANPort), and the Linux device gets `dstport <port>`.
fn linux_peer_on(tag: &str, outer: Outer, port: u16) -> (Rvpp, Netns, String) {
    let (ours, theirs, plen) = match outer {
        Outer::V4 => ("198.18.0.1", "198.18.0.2", 30),
        Outer::V6 => ("fd00::1", "fd00::2", 64),
    };
    let ns = Netns::new(format!("rvpp-{tag}-{}", std::process::id()));
    let r = Rvpp::start(
        &format!("{tag}-linux"),
        "buffers { buffers-per-numa 8192 }\nsocksvr { socket-name {dir}/api.sock }",
    );
    let tap = r.ctl(&format!("create tap host-ns {} host-if-name up0", ns.0));
    assert_eq!(tap.trim(), "tap0", "{tap}");
    ok(r.ctl(&format!("set interface ip address tap0 {ours}/{plen}")));
    ok(r.ctl("set interface state tap0 up"));
    let create = format!("create vxlan tunnel src {ours} dst {theirs} vni 4096");
    if port == 4789 {
        let vx = r.ctl(&create);
        assert_eq!(vx.trim(), "vxlan_tunnel0", "{vx}");
    } else {
        let sw = api_vxlan_add(&r, ours.parse().unwrap(), theirs.parse().unwrap(), port);
        assert!(r.ctl("show interface").contains("vxlan_tunnel0"), "sw {sw}");
    }
    assert!(r.ctl("show vxlan tunnel").contains("vni 4096"));
    ok(r.ctl(&format!(
        "set interface mac address vxlan_tunnel0 {TUN_MAC}"
    )));
    ok(r.ctl("set interface ip address vxlan_tunnel0 198.19.255.1/24"));

    // The Linux node: uplink, vxlan device as felix makes vxlan.calico, static neighbour.
    ns.ip("link set lo up");
    ns.ip(&format!(
        "addr add {theirs}/{plen} dev up0{}",
        if outer == Outer::V6 { " nodad" } else { "" }
    ));
    ns.ip("link set up0 up");
    ns.ip(&format!(
        "link add vx0 type vxlan id 4096 dstport {port} local {theirs} remote {ours} dev up0 nolearning"
    ));
    ns.ip(&format!("link set vx0 address {LINUX_VTEP_MAC}"));
    ns.ip("addr add 198.19.255.2/24 dev vx0");
    ns.ip("link set vx0 up");
    ns.ip(&format!(
        "neigh replace 198.19.255.1 lladdr {TUN_MAC} dev vx0 nud permanent"
    ));
    // rvpp's side: the Linux VTEP's MAC and the Linux uplink's MAC, both static (Linux learns
    // ours by ARP / ND on the uplink).
    let link = ns.exec(&["cat", "/sys/class/net/up0/address"]);
    let up0_mac = String::from_utf8_lossy(&link.stdout).trim().to_string();
    ok(r.ctl(&format!("set ip neighbor tap0 {theirs} {up0_mac}")));
    ok(r.ctl(&format!(
        "set ip neighbor vxlan_tunnel0 198.19.255.2 {LINUX_VTEP_MAC}"
    )));
    (r, ns, create)
}

/// vxlan_add_del_tunnel_v3 as calico-vpp sends it for a Linux peer (L2 mode here), on `port`
/// both ways; asserts retval 0 and returns the tunnel's sw_if_index.
fn api_vxlan_add(r: &Rvpp, ours: std::net::IpAddr, theirs: std::net::IpAddr, port: u16) -> u32 {
    use rvpp_vppapi::defs as d;
    let addr = |a: std::net::IpAddr| {
        let mut un = [0u8; 16];
        let af = match a {
            std::net::IpAddr::V4(a) => {
                un[..4].copy_from_slice(&a.octets());
                d::AddressFamily::ADDRESS_IP4
            }
            std::net::IpAddr::V6(a) => {
                un.copy_from_slice(&a.octets());
                d::AddressFamily::ADDRESS_IP6
            }
        };
        d::Address {
            af,
            un: d::AddressUnion(un),
        }
    };
    let mut c = api_client::Client::connect(&r.path("api.sock"), "vxlan-test").unwrap();
    let m = d::VxlanAddDelTunnelV3 {
        is_add: true,
        instance: u32::MAX,
        src_address: addr(ours),
        dst_address: addr(theirs),
        src_port: port,
        dst_port: port,
        mcast_sw_if_index: d::InterfaceIndex(u32::MAX),
        decap_next_index: u32::MAX,
        vni: 4096,
        ..Default::default()
    };
    let rep: d::VxlanAddDelTunnelV3Reply = c.call(&m, 7).unwrap();
    assert_eq!(rep.retval, 0, "vxlan_add_del_tunnel_v3 on port {port}");
    let rows: Vec<d::VxlanTunnelV2Details> = c
        .dump(
            &d::VxlanTunnelV2Dump {
                sw_if_index: d::InterfaceIndex(u32::MAX),
                ..Default::default()
            },
            8,
        )
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].src_port, rows[0].dst_port),
        (port, port),
        "the dump shows both ports"
    );
    rep.sw_if_index.0
}

/// felix configured with VXLANPort 8472 (what some Linux setups use): calico-vpp creates the
/// tunnel with src_port = dst_port = 8472 and the Linux node's vxlan device has `dstport
/// 8472`. The ping crosses both ways; once the tunnel is deleted, UDP to 8472 is no longer
/// VXLAN: ip4-local answers it as any closed port (counted), not vxlan4-input.
#[test]
fn linux_vxlan_peer_on_port_8472_through_the_api() {
    if !skip::need_root("for a tap and a vxlan device in a namespace of the test's own") {
        return;
    }
    let (r, ns, create) = linux_peer_on("vx8472", Outer::V4, 8472);
    assert!(r
        .ctl("show vxlan tunnel")
        .contains("src_port 8472 dst_port 8472"));
    let ping = ns.exec(&["ping", "-c", "3", "-i", "0.2", "-W", "2", "198.19.255.1"]);
    let text = String::from_utf8_lossy(&ping.stdout).to_string();
    let errors = r.ctl("show errors");
    assert!(
        ping.status.success() && text.contains(" 0% packet loss"),
        "ping across VXLAN on 8472 failed:\n{text}\n{errors}"
    );
    assert!(
        error_count(&errors, "vxlan packets decapsulated") >= 3,
        "{errors}"
    );
    ok(r.ctl(&format!("{create} del")));
    let ping = ns.exec(&["ping", "-c", "1", "-W", "1", "198.19.255.1"]);
    assert!(!ping.status.success(), "a reply through a deleted tunnel");
    let errors = r.ctl("show errors");
    assert!(
        error_count(&errors, "ip4 unknown protocol, no punt path") >= 1,
        "UDP to 8472 went to ip4-local as a closed port:\n{errors}"
    );
    assert_eq!(
        error_count(&errors, "no tunnel for source, destination and VNI"),
        0,
        "not to vxlan4-input: {errors}"
    );
    drop(r);
    drop(ns);
}

fn ping_across(tag: &str, outer: Outer) {
    if !skip::need_root("for a tap and a vxlan device in a namespace of the test's own") {
        return;
    }
    let (r, ns, create) = linux_peer(tag, outer);
    let ping = ns.exec(&["ping", "-c", "3", "-i", "0.2", "-W", "2", "198.19.255.1"]);
    let text = String::from_utf8_lossy(&ping.stdout).to_string();
    let errors = r.ctl("show errors");
    assert!(
        ping.status.success() && text.contains(" 0% packet loss"),
        "ping across VXLAN failed:\n{text}\n{errors}\n{}",
        r.ctl("show interface")
    );
    assert!(
        error_count(&errors, "vxlan packets decapsulated") >= 3,
        "{errors}"
    );
    assert!(
        error_count(&errors, "vxlan packets encapsulated") >= 3,
        "{errors}"
    );
    // The kernel counted what it decapsulated from us.
    let st = ns.exec(&["cat", "/sys/class/net/vx0/statistics/rx_packets"]);
    let rx: u64 = String::from_utf8_lossy(&st.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(rx >= 3, "vx0 rx_packets {rx}");

    // Deleting the tunnel stops it both ways: no more replies, and a counted decap miss.
    ok(r.ctl(&format!("{create} del")));
    assert!(!r.ctl("show interface").contains("vxlan_tunnel0"));
    let ping = ns.exec(&["ping", "-c", "1", "-W", "1", "198.19.255.1"]);
    assert!(!ping.status.success(), "a reply through a deleted tunnel");
    let errors = r.ctl("show errors");
    assert!(
        error_count(&errors, "no tunnel for source, destination and VNI") >= 1,
        "{errors}"
    );
    drop(r);
    drop(ns);
}

/// A pod whose tun offers GSO and checksum offload (as calico creates pod taps) sends TCP to
/// the Linux node over VXLAN: its super-frames are segmented after encapsulation, and the
/// Linux node's kernel, which checks every outer and inner checksum, delivers the stream.
#[test]
fn a_gso_pods_tcp_crosses_vxlan_to_a_linux_node() {
    gso_tcp_across("vxg", Outer::V4);
}

/// The same over an IPv6 outer header, whose UDP checksum is then computed per segment.
#[test]
fn a_gso_pods_tcp_crosses_an_ipv6_outer_vxlan_to_a_linux_node() {
    gso_tcp_across("vxg6", Outer::V6);
}

fn gso_tcp_across(tag: &str, outer: Outer) {
    if !skip::need_root("for taps and a vxlan device in namespaces of the test's own") {
        return;
    }
    let (r, ns, _) = linux_peer(tag, outer);
    let pod = Netns::new(format!("rvpp-{tag}p-{}", std::process::id()));
    common::tun_pod(&r, &pod, 1, "198.18.1.2", true);
    let offloads = pod.sh("ethtool -k eth0 | grep tcp-segmentation-offload:");
    assert!(
        offloads.ends_with("on"),
        "the pod's tun has no TSO: {offloads}"
    );
    ns.ip("route add 198.18.1.2/32 via 198.19.255.1 dev vx0");

    let report = iperf3_short(&ns, &pod, "198.19.255.2");
    let errors = r.ctl("show errors");
    let report = report.unwrap_or_else(|e| panic!("TCP over VXLAN failed: {e}\n{errors}"));
    assert!(report.contains("receiver"), "{report}");
    assert!(
        counted(&errors, "super-frames segmented") > 0,
        "no super-frame went through the tunnel:\n{errors}"
    );
    assert_eq!(counted(&errors, "vxlan encap:"), 0, "{errors}");
    drop(r);
    drop(pod);
    drop(ns);
}
