//! What creating and deleting a tunnel of any kind (vxlan, ipip) shares: the instance it
//! takes, its interface with the kind's encap features on both output arcs, and its removal
//! (decap stops first, then the interface and the routes through it go).

use super::{lowest_free, rv, SvcError, SvcResult};
use crate::daemon::Dataplane;
use rvpp_dataplane::feature::Feature;
use rvpp_dataplane::forwarding::{Forwarding, FwdError};
use rvpp_dataplane::nodes::tunnel::{TunnelEntry, TunnelSet};
use rvpp_dataplane::rcu::Published;
use std::sync::Arc;

/// A kind's create request (ipip, vxlan), as the shared [`create`] and [`restore`] use it.
pub trait TunnelRequest {
    type Entry: TunnelEntry;
    const KIND: TunnelKind;
    fn table(dp: &Dataplane) -> Arc<Published<TunnelSet<Self::Entry>>>;
    /// The request's own checks (families, flags, ranges).
    fn check(&self) -> SvcResult<()>;
    /// VPP's error when a tunnel with the request's key exists.
    fn no_twin(&self, t: &TunnelSet<Self::Entry>) -> SvcResult<()>;
    /// Its row on interface `sw`; an error when its encap table does not exist.
    fn row(&self, f: &Forwarding, sw: u32, instance: u32) -> SvcResult<Self::Entry>;
    /// The instance asked for; None: the lowest free.
    fn instance(&self) -> Option<u32>;
    /// A new interface's MAC, L2 or L3, MTU and admin state.
    fn looks(&self) -> TunnelIf;
}

/// A point-to-point tunnel's two ends: one family, two unicast addresses.
pub fn check_endpoints(src: std::net::IpAddr, dst: std::net::IpAddr) -> SvcResult<()> {
    let bad = |m: &str| Err(SvcError::new(rv::INVALID_VALUE, m.to_string()));
    if src.is_ipv4() != dst.is_ipv4() {
        return bad("source and destination are of different address families");
    }
    if src == dst || src.is_unspecified() || dst.is_unspecified() {
        return bad("source and destination must be two unicast addresses");
    }
    Ok(())
}

/// Create the tunnel `r`: its interface with the encap features on and its row, published
/// together; an error leaves nothing. Returns its sw_if_index and name.
pub fn create<R: TunnelRequest>(dp: &Arc<Dataplane>, r: R) -> SvcResult<(u32, String)> {
    r.check()?;
    let t = R::table(dp);
    let (sw, name) = {
        // The forwarding lock also orders tunnel-table edits between front ends.
        let mut f = dp.fwd();
        let cur = t.load();
        r.no_twin(&cur)?;
        // Checked before the interface is made, so an error leaves nothing.
        r.row(&f, 0, 0)?;
        let instance = R::KIND.instance(&f, r.instance())?;
        let (sw, name) = R::KIND.add_interface(&mut f, instance, r.looks())?;
        let mut next = (*cur).clone();
        next.insert(r.row(&f, sw, instance)?);
        t.publish(next);
        (sw, name)
    };
    dp.svc.changed();
    Ok((sw, name))
}

/// A live restart's tunnel `r` on interface `sw`, which the snapshot rebuilt under its old
/// index: checked as [`create`] checks, its encap features on, its row in the table. `f` is
/// the restore's forwarding lock.
pub fn restore<R: TunnelRequest>(
    dp: &Dataplane,
    f: &mut Forwarding,
    sw: u32,
    r: R,
) -> SvcResult<()> {
    r.check()?;
    let instance = r
        .instance()
        .ok_or_else(|| SvcError::new(rv::INVALID_VALUE, "a restored tunnel has its instance"))?;
    let t = R::table(dp);
    let cur = t.load();
    r.no_twin(&cur)?;
    let row = r.row(f, sw, instance)?;
    R::KIND.adopt_interface(f, sw, instance)?;
    let mut next = (*cur).clone();
    next.insert(row);
    t.publish(next);
    Ok(())
}

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
