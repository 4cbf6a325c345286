//! IPIP tunnels: each is a point-to-point interface `ipip<N>` (VPP's name, lowest free
//! instance or the one asked for) with the dataplane's `ipip4-encap` / `ipip6-encap` features
//! enabled, and a row of `rvpp_dataplane::nodes::ipip::Table`. The CLI and the API both come
//! here.

use super::tunnel::{TunnelIf, TunnelKind};
use super::{rv, SvcError, SvcResult};
use crate::daemon::Dataplane;
use rvpp_dataplane::forwarding::{Af, Forwarding};
use rvpp_dataplane::nodes::ipip::{self, tunnel_flags, Tunnel};
use std::net::IpAddr;
use std::sync::Arc;

/// Outer IPv4 header on a 1500-byte uplink.
const DEFAULT_MTU: u16 = 1500 - 20;

/// A tunnel to create (VPP's `ipip_tunnel` fields rvpp uses; mode is point-to-point).
#[derive(Clone, Copy, Debug)]
pub struct IpipRequest {
    pub instance: Option<u32>,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub table_id: u32,
    pub flags: u8,
    pub dscp: u8,
}

const KIND: TunnelKind = TunnelKind {
    prefix: "ipip",
    dev_type: "ipip",
    encap: &[ipip::ENCAP4, ipip::ENCAP6],
};

fn table(dp: &Dataplane) -> Arc<ipip::Table> {
    dp.feature_tables.get::<ipip::Table>()
}

fn check(r: &IpipRequest) -> SvcResult<()> {
    let bad = |m: &str| Err(SvcError::new(rv::INVALID_VALUE, m.to_string()));
    if r.src.is_ipv4() != r.dst.is_ipv4() {
        return bad("source and destination are of different address families");
    }
    if r.src == r.dst || r.src.is_unspecified() || r.dst.is_unspecified() {
        return bad("source and destination must be two unicast addresses");
    }
    if r.flags & !tunnel_flags::SUPPORTED != 0 {
        return Err(SvcError::new(
            rv::UNIMPLEMENTED,
            format!("tunnel flags {:#x} are not supported", r.flags),
        ));
    }
    if r.dscp > 63 {
        return bad("dscp is 6 bits");
    }
    Ok(())
}

/// The tunnel `r` exists already: IF_ALREADY_EXISTS, as VPP.
fn no_twin(t: &ipip::Tunnels, r: &IpipRequest) -> SvcResult<()> {
    match t.find(r.src, r.dst) {
        Some(_) => Err(SvcError::new(
            rv::IF_ALREADY_EXISTS,
            format!("an ipip tunnel {} -> {} exists", r.src, r.dst),
        )),
        None => Ok(()),
    }
}

/// The row of `r` on interface `sw`; its table must exist.
fn row(f: &Forwarding, r: &IpipRequest, sw: u32, instance: u32) -> SvcResult<Tunnel> {
    let encap_fib = f
        .fib_index(Af::of(&r.src), r.table_id)
        .ok_or_else(|| SvcError::new(rv::NO_SUCH_FIB, format!("no table {}", r.table_id)))?;
    Ok(Tunnel {
        sw_if_index: sw,
        instance,
        src: r.src,
        dst: r.dst,
        encap_fib,
        table_id: r.table_id,
        flags: r.flags,
        dscp: r.dscp,
    })
}

/// Create a tunnel; returns its sw_if_index and name.
pub fn create(dp: &Arc<Dataplane>, r: IpipRequest) -> SvcResult<(u32, String)> {
    check(&r)?;
    let t = table(dp);
    let v6 = r.src.is_ipv6();
    let (sw, name) = {
        let mut f = dp.fwd();
        let cur = t.load();
        no_twin(&cur, &r)?;
        // Checked before the interface is made, so an error leaves nothing.
        row(&f, &r, 0, 0)?;
        let instance = KIND.instance(&f, r.instance)?;
        let mtu = if v6 { DEFAULT_MTU - 20 } else { DEFAULT_MTU };
        let looks = TunnelIf {
            mac: [0; 6],
            ethernet: false,
            mtu,
            admin_up: false,
        };
        let (sw, name) = KIND.add_interface(&mut f, instance, looks)?;
        let mut next = (*cur).clone();
        next.insert(row(&f, &r, sw, instance)?);
        t.publish(next);
        (sw, name)
    };
    dp.svc.changed();
    Ok((sw, name))
}

/// A live restart's tunnel `r` on interface `sw`, which the snapshot rebuilt under its old
/// index: checked as [`create`] checks, its encap features on, its row in the table. `f` is
/// the restore's forwarding lock.
pub fn restore(dp: &Dataplane, f: &mut Forwarding, sw: u32, r: IpipRequest) -> SvcResult<()> {
    check(&r)?;
    let instance = r
        .instance
        .ok_or_else(|| SvcError::new(rv::INVALID_VALUE, "a restored tunnel has its instance"))?;
    let t = table(dp);
    let cur = t.load();
    no_twin(&cur, &r)?;
    let tunnel = row(f, &r, sw, instance)?;
    KIND.adopt_interface(f, sw, instance)?;
    let mut next = (*cur).clone();
    next.insert(tunnel);
    t.publish(next);
    Ok(())
}

/// Delete the tunnel on interface `sw`.
pub fn delete(dp: &Arc<Dataplane>, sw: u32) -> SvcResult<()> {
    let t = table(dp);
    let f = dp.fwd();
    if t.load().get(sw).is_none() {
        return Err(SvcError::new(
            rv::NO_SUCH_ENTRY,
            format!("sw_if_index {sw} is not an ipip tunnel"),
        ));
    }
    super::tunnel::remove(dp, f, &t, sw)
}

/// Every tunnel, by sw_if_index; `only` limits it to one interface.
pub fn list(dp: &Dataplane, only: Option<u32>) -> Vec<Tunnel> {
    table(dp)
        .load()
        .iter()
        .filter(|t| only.is_none_or(|s| s == t.sw_if_index))
        .copied()
        .collect()
}
