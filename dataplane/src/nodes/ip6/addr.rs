//! IPv6 addresses: multicast and link-local classes, solicited-node groups, and which
//! addresses, groups and prefixes are an interface's.

use crate::tables::{if_flags, IfTable};
use crate::wire::Mac;

pub const ALL_NODES: u128 = 0xff02 << 112 | 1;
pub const ALL_ROUTERS: u128 = 0xff02 << 112 | 2;
pub(super) const SOLICITED_PREFIX: u128 = 0xff02_0000_0000_0000_0000_0001_ff00_0000;
/// The /104 of the solicited-node prefix.
pub(super) const SOLICITED_MASK: u128 = !0xff_ffff;
pub(super) const LOOPBACK: u128 = 1;

#[inline(always)]
pub fn is_multicast(a: u128) -> bool {
    a >> 120 == 0xff
}

/// fe80::/10.
#[inline(always)]
pub fn is_link_local(a: u128) -> bool {
    a >> 118 == 0x3fa
}

/// The solicited-node multicast group of `a` (RFC 4291 2.7.1).
#[inline]
pub fn solicited_node(a: u128) -> u128 {
    SOLICITED_PREFIX | (a & 0xff_ffff)
}

/// Ethernet address of an IPv6 multicast group (RFC 2464 7).
#[inline]
pub fn multicast_mac(group: u128) -> Mac {
    let g = (group as u32).to_be_bytes();
    [0x33, 0x33, g[0], g[1], g[2], g[3]]
}

/// The modified EUI-64 link-local address of a MAC (RFC 4291 appendix A).
#[inline]
pub fn link_local_from_mac(m: &Mac) -> u128 {
    let iid = u64::from_be_bytes([m[0] ^ 2, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]]);
    0xfe80 << 112 | iid as u128
}

/// Calls `f` on `sw`'s IPv6 addresses (its own, its unnumbered source's global ones, and the
/// link-local derived from its MAC) until it returns true.
fn any_addr(ifs: &IfTable, sw: u32, mut f: impl FnMut(u128) -> bool) -> bool {
    let fast = ifs.fast(sw);
    if fast.flags & if_flags::L2 != 0 && f(link_local_from_mac(&fast.mac)) {
        return true;
    }
    let Some(i) = ifs.get(sw) else { return false };
    if i.ip6_addrs.iter().any(|a| f(a.0)) {
        return true;
    }
    match i.unnumbered_of.and_then(|u| ifs.get(u)) {
        Some(u) => u.ip6_addrs.iter().any(|a| !is_link_local(a.0) && f(a.0)),
        None => false,
    }
}

/// `ip` is one of `sw`'s own addresses.
pub fn is_our_ip6(ifs: &IfTable, sw: u32, ip: u128) -> bool {
    any_addr(ifs, sw, |a| a == ip)
}

/// `group` is all-nodes, all-routers, or the solicited-node group of one of `sw`'s addresses.
pub(super) fn in_our_group(ifs: &IfTable, sw: u32, group: u128) -> bool {
    group == ALL_NODES
        || group == ALL_ROUTERS
        || (group & SOLICITED_MASK == SOLICITED_PREFIX
            && any_addr(ifs, sw, |a| a & 0xff_ffff == group & 0xff_ffff))
}

/// `ip` is link-local or in one of `sw`'s connected prefixes.
pub(super) fn is_on_link(ifs: &IfTable, sw: u32, ip: u128) -> bool {
    if is_link_local(ip) {
        return true;
    }
    let Some(i) = ifs.get(sw) else { return false };
    i.ip6_addrs.iter().any(|&(a, l)| {
        let m = if l == 0 {
            0
        } else {
            u128::MAX << (128 - l.min(128) as u32)
        };
        !is_link_local(a) && a & m == ip & m
    })
}

/// `sw`'s link-local address: a configured one, else the one derived from its MAC.
fn link_local_of(ifs: &IfTable, sw: u32) -> Option<u128> {
    if let Some(a) = ifs
        .get(sw)
        .and_then(|i| i.ip6_addrs.iter().find(|a| is_link_local(a.0)))
    {
        return Some(a.0);
    }
    let fast = ifs.fast(sw);
    (fast.flags & if_flags::L2 != 0).then(|| link_local_from_mac(&fast.mac))
}

/// First non-link-local address of `sw`, following unnumbered.
fn global_of(ifs: &IfTable, sw: u32) -> Option<u128> {
    if let Some(a) = ifs.ip6_source(sw).filter(|a| !is_link_local(*a)) {
        return Some(a);
    }
    let i = ifs.get(sw)?;
    let i = match i.unnumbered_of {
        Some(u) => ifs.get(u)?,
        None => i,
    };
    i.ip6_addrs
        .iter()
        .find(|a| !is_link_local(a.0))
        .map(|a| a.0)
}

/// Our source address for a packet out of `sw` to `dst`: same scope when we can (RFC 6724).
pub(super) fn source_for(ifs: &IfTable, sw: u32, dst: u128) -> Option<u128> {
    if is_link_local(dst) {
        link_local_of(ifs, sw)
    } else {
        global_of(ifs, sw).or_else(|| link_local_of(ifs, sw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip6(s: &str) -> u128 {
        u128::from(s.parse::<std::net::Ipv6Addr>().unwrap())
    }

    #[test]
    fn address_helpers_match_rfc_examples() {
        assert!(is_link_local(ip6("fe80::1")));
        assert!(is_link_local(ip6("febf::1")));
        assert!(!is_link_local(ip6("fec0::1")));
        assert!(is_multicast(ALL_NODES));
        assert_eq!(
            solicited_node(ip6("2001:db8::12:3456")),
            ip6("ff02::1:ff12:3456")
        );
        assert_eq!(
            multicast_mac(ip6("ff02::1:ff12:3456")),
            [0x33, 0x33, 0xff, 0x12, 0x34, 0x56]
        );
        assert_eq!(
            link_local_from_mac(&[0x00, 0x11, 0x22, 0x33, 0x44, 0x55]),
            ip6("fe80::211:22ff:fe33:4455")
        );
    }
}
