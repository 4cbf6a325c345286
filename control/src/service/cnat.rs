//! cnat's source NAT configuration (`cnat_set_snat_addresses_v2`, `cnat_set_snat_policy`,
//! `cnat_snat_policy_add_del_exclude_pfx`, `cnat_snat_policy_add_del_if` and VPP's `set cnat
//! snat-policy ...` commands): checked here once, then published to the workers through the
//! dataplane's one `Cnat`. Addresses are cnat's 128-bit form (IPv4 v4-mapped).

use super::{rv, SvcError, SvcResult};
use crate::daemon::Dataplane;
use rvpp_dataplane::cnat::snat::{IfTable, Policy};

/// The SNAT addresses and where they apply (`cnat_set_snat_addresses_v2`).
pub struct SnatAddresses {
    /// 0: unset; else v4-mapped.
    pub ip4: u128,
    pub ip6: u128,
    /// ~0: none.
    pub sw_if_index: u32,
    pub fwd_fib_index: u32,
    pub ret_fib_index: u32,
    pub flags: u8,
}

fn known_if(dp: &Dataplane, sw: u32) -> SvcResult<()> {
    dp.fwd().iface(sw).map(|_| ()).map_err(|_| {
        SvcError::new(
            rv::INVALID_SW_IF_INDEX,
            format!("no interface with sw_if_index {sw}"),
        )
    })
}

pub fn set_addresses(dp: &Dataplane, a: SnatAddresses) -> SvcResult<()> {
    if a.sw_if_index != u32::MAX {
        known_if(dp, a.sw_if_index)?;
    }
    dp.cnat().snat_edit(|c| {
        c.ip4 = a.ip4;
        c.ip6 = a.ip6;
        c.sw_if_index = a.sw_if_index;
        c.fwd_fib_index = a.fwd_fib_index;
        c.ret_fib_index = a.ret_fib_index;
        c.flags = a.flags;
    });
    Ok(())
}

/// Adds or removes a destination prefix that is never source-NATed; `len` is cnat's (IPv4:
/// 96 + the prefix length).
pub fn exclude(dp: &Dataplane, addr: u128, len: u8, add: bool) -> SvcResult<()> {
    if len > 128 {
        return Err(SvcError::new(rv::INVALID_VALUE, "prefix too long"));
    }
    dp.cnat().snat_edit(|c| {
        if add {
            c.exclude.add(addr, len);
        } else {
            c.exclude.del(addr, len);
        }
    });
    Ok(())
}

/// Puts interface `sw` in (or takes it out of) one of the K8S policy's interface tables.
pub fn interface(dp: &Dataplane, sw: u32, table: IfTable, add: bool) -> SvcResult<()> {
    if add {
        known_if(dp, sw)?;
    }
    dp.cnat().snat_edit(|c| {
        if add {
            c.tables.insert(table, sw);
        } else {
            c.tables.remove(table, sw);
        }
    });
    Ok(())
}

pub fn set_policy(dp: &Dataplane, p: Policy) {
    dp.cnat().snat_edit(|c| c.policy = p);
}
