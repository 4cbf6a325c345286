//! What creating and deleting a tunnel of any kind (vxlan, ipip) shares: the instance it
//! takes, its interface with the kind's encap features on both output arcs, and its removal
//! (decap stops first, then the interface and the routes through it go).

use super::{lowest_free, rv, SvcError, SvcResult};
use crate::daemon::Dataplane;
use rvpp_dataplane::feature::Feature;
use rvpp_dataplane::forwarding::{Forwarding, FwdError};
use rvpp_dataplane::nodes::tunnel::{TunnelEntry, TunnelSet};
use rvpp_dataplane::rcu::Published;

/// A tunnel kind as the control service names and wires it.
pub struct TunnelKind {
    /// Interface name prefix: `vxlan_tunnel`, `ipip`.
    pub prefix: &'static str,
    /// Device type shown by `show interface`.
    pub dev_type: &'static str,
    /// The encap features (one per output arc) every tunnel interface of the kind has on.
    pub encap: &'static [Feature],
}

/// A new tunnel interface's looks.
pub struct TunnelIf {
    pub mac: [u8; 6],
    pub ethernet: bool,
    pub mtu: u16,
    pub admin_up: bool,
}

impl TunnelKind {
    /// The instance a new tunnel takes: the one asked for (an error if its name is taken), or
    /// the lowest free.
    pub fn instance(&self, f: &Forwarding, asked: Option<u32>) -> SvcResult<u32> {
        let taken = |n: u32| f.ifs().by_name(&format!("{}{n}", self.prefix)).is_some();
        match asked {
            Some(n) if taken(n) => Err(SvcError::new(
                rv::INSTANCE_IN_USE,
                format!("{}{n} exists", self.prefix),
            )),
            Some(n) => Ok(n),
            None => Ok(lowest_free(taken)),
        }
    }

    /// Adds the interface `<prefix><instance>` with the encap features on; on an error nothing
    /// is left behind. Returns its sw_if_index and name.
    pub fn add_interface(
        &self,
        f: &mut Forwarding,
        instance: u32,
        i: TunnelIf,
    ) -> SvcResult<(u32, String)> {
        let name = format!("{}{instance}", self.prefix);
        let sw = f.interface_add(&name, self.dev_type, i.mac, i.ethernet, i.mtu)?;
        let mut enabled = self.encap_on(f, sw);
        if i.admin_up {
            enabled = enabled.and_then(|_| f.set_admin_up(sw, true));
        }
        if let Err(e) = enabled {
            let _ = f.interface_del(sw);
            return Err(e.into());
        }
        Ok((sw, name))
    }

    fn encap_on(&self, f: &mut Forwarding, sw: u32) -> Result<(), FwdError> {
        self.encap
            .iter()
            .try_for_each(|e| f.feature_enable(sw, e.arc, e.node, true))
    }

    /// A live restart's tunnel: interface `sw`, rebuilt already with its index, must be this
    /// kind's `<prefix><instance>`; its encap features go on as [`Self::add_interface`] puts
    /// them.
    pub fn adopt_interface(&self, f: &mut Forwarding, sw: u32, instance: u32) -> SvcResult<()> {
        let name = format!("{}{instance}", self.prefix);
        let i = f.iface(sw)?;
        if i.name != name || i.dev_type != self.dev_type {
            return Err(SvcError::new(
                rv::INVALID_VALUE,
                format!(
                    "sw_if_index {sw} is {} ({}), not {name}",
                    i.name, i.dev_type
                ),
            ));
        }
        Ok(self.encap_on(f, sw)?)
    }
}

/// Removes the tunnel on `sw` from `table`, then its interface; `f` is the held forwarding
/// lock, which also orders tunnel-table edits between front ends.
pub fn remove<T: TunnelEntry>(
    dp: &Dataplane,
    mut f: std::sync::MutexGuard<'_, Forwarding>,
    table: &Published<TunnelSet<T>>,
    sw: u32,
) -> SvcResult<()> {
    let mut next = (*table.load()).clone();
    next.remove(sw);
    table.publish(next);
    f.interface_del(sw)?;
    drop(f);
    super::interface_gone(dp, sw);
    dp.svc.changed();
    Ok(())
}
