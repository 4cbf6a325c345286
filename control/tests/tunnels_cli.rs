//! Tunnel interfaces through the CLI: VPP's names with the lowest free instance, the errors
//! for duplicates and bad input, `show vxlan tunnel` / `show ipip tunnel`, and deletion that
//! frees the name again. (The API side is in tests/api/bringup.py; both call one service.)

mod common;

use common::Rvpp;

#[test]
fn cli_creates_lists_and_deletes_vxlan_and_ipip_tunnels() {
    let r = Rvpp::start("tunnels-cli", "");
    let vx = "create vxlan tunnel src 198.18.0.1 dst 198.18.0.2 vni 4096";
    assert_eq!(r.ctl(vx).trim(), "vxlan_tunnel0");
    assert_eq!(
        r.ctl("create vxlan tunnel src 198.18.0.1 dst 198.18.0.3 vni 4096 l3")
            .trim(),
        "vxlan_tunnel1"
    );
    assert!(r.ctl(vx).contains("exists"), "a duplicate is refused");
    assert!(r
        .ctl("create vxlan tunnel src 198.18.0.1 dst fd00::2 vni 1")
        .contains("different address families"));
    assert!(r
        .ctl("create vxlan tunnel src 198.18.0.1 dst 198.18.0.9 vni 16777216")
        .contains("24 bits"));
    let show = r.ctl("show vxlan tunnel");
    assert!(
        show.contains("dst 198.18.0.2") && show.contains("vni 4096"),
        "{show}"
    );
    assert!(
        show.contains("l3") && show.contains("inner ethernet"),
        "{show}"
    );
    assert!(r.ctl(&format!("{vx} del")).trim().is_empty());
    assert!(r.ctl(&format!("{vx} del")).contains("no vxlan tunnel"));
    assert_eq!(
        r.ctl(vx).trim(),
        "vxlan_tunnel0",
        "the lowest free instance again"
    );

    assert_eq!(
        r.ctl("create ipip tunnel src 198.18.0.1 dst 198.18.0.5")
            .trim(),
        "ipip0"
    );
    assert_eq!(
        r.ctl("create ipip tunnel src fd00::1 dst fd00::5 instance 7")
            .trim(),
        "ipip7"
    );
    assert!(r
        .ctl("create ipip tunnel src 198.18.0.1 dst 198.18.0.5")
        .contains("exists"));
    assert!(r
        .ctl("create ipip tunnel src 198.18.0.1 dst 198.18.0.6 outer-table-id 42")
        .contains("no table 42"));
    let show = r.ctl("show ipip tunnel");
    assert!(
        show.contains("dst 198.18.0.5") && show.contains("dst fd00::5"),
        "{show}"
    );
    let ints = r.ctl("show interface");
    assert!(ints.contains("ipip0") && ints.contains("ipip7") && ints.contains("vxlan_tunnel1"));
    let sw = show
        .lines()
        .find(|l| l.contains("fd00::5"))
        .and_then(|l| l.split("sw-if-idx ").nth(1))
        .and_then(|x| x.split_whitespace().next())
        .unwrap()
        .to_string();
    assert!(r
        .ctl(&format!("delete ipip tunnel sw_if_index {sw}"))
        .trim()
        .is_empty());
    assert!(!r.ctl("show interface").contains("ipip7"));
    assert!(r
        .ctl(&format!("delete ipip tunnel sw_if_index {sw}"))
        .contains("not an ipip tunnel"));
    r.stop();
}

/// `set interface unnumbered <tunnel> use <uplink>`, as calico-vpp makes every tunnel: the
/// tunnel borrows the uplink's addresses (shown by `show interface address`), `del` gives
/// them back, and bad input changes nothing.
#[test]
fn cli_makes_a_tunnel_unnumbered_to_the_uplink() {
    let r = Rvpp::start("tunnels-unnumbered", "");
    assert_eq!(r.ctl("create loopback interface").trim(), "loop0");
    assert!(r
        .ctl("set interface ip address loop0 198.18.0.1/24")
        .trim()
        .is_empty());
    assert_eq!(
        r.ctl("create ipip tunnel src 198.18.0.1 dst 198.18.0.2")
            .trim(),
        "ipip0"
    );
    let loop_sw = r
        .ctl("show interface")
        .lines()
        .find(|l| l.trim_start().starts_with("loop0"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .to_string();
    assert!(r
        .ctl("set interface unnumbered ipip0 use loop0")
        .trim()
        .is_empty());
    let addrs = r.ctl("show interface address");
    let ipip = addrs.split("ipip0").nth(1).unwrap_or_default();
    assert!(
        ipip.contains(&format!("unnumbered, use sw_if_index {loop_sw}")),
        "{addrs}"
    );
    assert!(r
        .ctl("set interface unnumbered ipip0 use ipip0")
        .contains("itself"));
    assert!(r
        .ctl("set interface unnumbered ipip0 use nosuch0")
        .contains("unknown interface"));
    assert!(r
        .ctl("show interface address")
        .contains(&format!("unnumbered, use sw_if_index {loop_sw}")));
    assert!(r
        .ctl("set interface unnumbered del ipip0")
        .trim()
        .is_empty());
    assert!(!r.ctl("show interface address").contains("unnumbered"));
    r.stop();
}
