//! Neighbours (ARP / ND entries) the front ends set: `ip_neighbor_add_del`, `set ip neighbor`.

use super::SvcResult;
use crate::daemon::Dataplane;
use rvpp_dataplane::forwarding::Neighbor;
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
