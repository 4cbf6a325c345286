//! Neighbours (ARP / ND entries) the front ends set: `ip_neighbor_add_del`, `set ip neighbor`;
//! and proxy ARP / ND proxy, which answer for addresses that are not the interface's.

use super::{rv, SvcError, SvcResult};
use crate::daemon::Dataplane;
use rvpp_dataplane::forwarding::{Af, Neighbor, NeighborConfig};
use std::net::IpAddr;

pub fn add(dp: &Dataplane, sw: u32, ip: IpAddr, mac: [u8; 6], is_static: bool) -> SvcResult<()> {
    let mut f = dp.fwd();
    f.iface(sw)?;
    Ok(f.neighbor_add(sw, ip, mac, is_static)?)
}

pub fn del(dp: &Dataplane, sw: u32, ip: IpAddr) -> SvcResult<()> {
    let mut f = dp.fwd();
    f.iface(sw)?;
    Ok(f.neighbor_del(sw, ip)?)
}

/// Every neighbour, learned or set.
pub fn list(dp: &Dataplane) -> Vec<Neighbor> {
    dp.fwd().neighbors()
}

/// Add (or with `add` false remove) the proxy ARP range `lo..=hi` of IPv4 table `table_id`
/// (`proxy_arp_add_del`, `set arp proxy`). An unknown table is NO_SUCH_FIB, removing a range
/// that is not there NO_SUCH_ENTRY, adding one twice no error: VPP's answers.
pub fn proxy_arp_range(
    dp: &Dataplane,
    table_id: u32,
    lo: u32,
    hi: u32,
    add: bool,
) -> SvcResult<()> {
    let mut f = dp.fwd();
    let fib = f
        .fib_index(Af::Ip4, table_id)
        .ok_or_else(|| SvcError::new(rv::NO_SUCH_FIB, format!("no table {table_id}")))?;
    if add {
        f.proxy_arp_add(fib, lo, hi);
        Ok(())
    } else {
        Ok(f.proxy_arp_del(fib, lo, hi)?)
    }
}

/// The proxy ARP ranges as (table id, first, last).
pub fn proxy_arp_ranges(dp: &Dataplane) -> Vec<(u32, u32, u32)> {
    let f = dp.fwd();
    let ids: Vec<(u32, u32)> = f
        .tables(Af::Ip4)
        .into_iter()
        .filter_map(|(id, _)| f.fib_index(Af::Ip4, id).map(|fib| (fib, id)))
        .collect();
    f.proxy_arps()
        .iter()
        .filter_map(|&(fib, lo, hi)| ids.iter().find(|x| x.0 == fib).map(|x| (x.1, lo, hi)))
        .collect()
}

/// A proxy ARP range is in table `table_id` (the table is kept while one is).
pub fn proxy_uses_table(dp: &Dataplane, af: Af, table_id: u32) -> bool {
    af == Af::Ip4 && proxy_arp_ranges(dp).iter().any(|r| r.0 == table_id)
}

/// Proxy ARP (`proxy_arp_intfc_enable_disable`) or ND proxy (`ip6nd_proxy_enable_disable`)
/// on interface `sw`.
pub fn set_proxy(dp: &Dataplane, sw: u32, af: Af, on: bool) -> SvcResult<()> {
    let mut f = dp.fwd();
    match af {
        Af::Ip4 => f.set_proxy_arp(sw, on)?,
        Af::Ip6 => f.set_nd_proxy(sw, on)?,
    }
    Ok(())
}

/// `ip_neighbor_config` / `set ip neighbor-config`: the family's limit on learned entries,
/// their age (0: never) and whether a new one replaces the oldest at the limit.
pub fn set_config(dp: &Dataplane, af: Af, c: NeighborConfig) {
    dp.fwd().set_neighbor_config(af, c);
}

pub fn config(dp: &Dataplane, af: Af) -> NeighborConfig {
    dp.fwd().neighbor_config(af)
}
