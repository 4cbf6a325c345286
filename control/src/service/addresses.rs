//! Interface addresses: `sw_interface_add_del_address`, `set interface ip address [del]`.

use super::{rv, SvcError, SvcResult};
use crate::daemon::Dataplane;
use rvpp_dataplane::forwarding::{FwdError, Prefix};

pub fn add(dp: &Dataplane, sw: u32, p: Prefix) -> SvcResult<()> {
    Ok(dp.fwd().address_add(sw, p)?)
}

/// Remove address `p`; one the interface does not have is ADDRESS_NOT_FOUND_FOR_INTERFACE.
pub fn del(dp: &Dataplane, sw: u32, p: Prefix) -> SvcResult<()> {
    match dp.fwd().address_del(sw, p) {
        Err(FwdError::NoSuchEntry) => Err(SvcError::new(
            rv::ADDRESS_NOT_FOUND_FOR_INTERFACE,
            format!("sw_if_index {sw} has no address {p}"),
        )),
        r => Ok(r?),
    }
}

/// Remove every address of interface `sw`.
pub fn del_all(dp: &Dataplane, sw: u32) -> SvcResult<()> {
    let mut f = dp.fwd();
    for p in list(&f, sw)? {
        f.address_del(sw, p)?;
    }
    Ok(())
}

/// The addresses of interface `sw`, IPv4 first.
pub fn of(dp: &Dataplane, sw: u32) -> SvcResult<Vec<Prefix>> {
    list(&dp.fwd(), sw)
}

fn list(f: &rvpp_dataplane::forwarding::Forwarding, sw: u32) -> SvcResult<Vec<Prefix>> {
    let i = f.iface(sw)?;
    Ok(i.ip4_addrs
        .iter()
        .map(|&(a, l)| Prefix::V4(a, l))
        .chain(i.ip6_addrs.iter().map(|&(a, l)| Prefix::V6(a, l)))
        .collect())
}
