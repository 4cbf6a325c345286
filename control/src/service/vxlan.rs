//! VXLAN tunnels: each is an interface `vxlan_tunnel<N>` (VPP's name, lowest free instance or
//! the one asked for) whose packets the dataplane's `vxlan4-encap` / `vxlan6-encap` features
//! encapsulate, and a row of the tunnel table (`rvpp_dataplane::nodes::vxlan::Table`) that the
//! encap and decap nodes read. The CLI and the API both come here.
//!
//! Mode per tunnel (`is_l3`): L3 = calico-vpp's bare IP between VPP nodes (an interface without
//! a MAC); L2 = an inner Ethernet frame, what a Linux `vxlan.calico` peer expects (an Ethernet
//! interface with a random MAC; routes go via the peer's VTEP address, resolved by a static
//! neighbour with the peer's VTEP MAC, as felix programs on Linux nodes).

use super::tunnel::{TunnelIf, TunnelKind};
use super::{random_mac, rv, SvcError, SvcResult};
use crate::daemon::Dataplane;
use rvpp_dataplane::forwarding::{Af, Forwarding};
use rvpp_dataplane::nodes::vxlan::{self, Tunnel};
use rvpp_dataplane::wire::tunnel::VXLAN_PORT;
use std::net::IpAddr;
use std::sync::Arc;

/// Outer IPv4 + UDP + VXLAN + inner Ethernet: what the tunnel's MTU leaves for the uplink's 1500.
const DEFAULT_MTU: u16 = 1500 - 50;

const KIND: TunnelKind = TunnelKind {
    prefix: "vxlan_tunnel",
    dev_type: "vxlan",
    encap: &[vxlan::ENCAP4, vxlan::ENCAP6],
};

/// A tunnel to create (VPP's `vxlan_add_del_tunnel_v3` fields rvpp uses).
#[derive(Clone, Copy, Debug)]
pub struct VxlanRequest {
    /// `None` (~0 on the API): the lowest free instance.
    pub instance: Option<u32>,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// 0: 4789.
    pub dst_port: u16,
    pub vni: u32,
    pub encap_vrf_id: u32,
    pub l3: bool,
    /// Kept and shown back (decap chooses by the inner packet).
    pub decap_next_index: u32,
}

fn table(dp: &Dataplane) -> Arc<vxlan::Table> {
    dp.feature_tables.get::<vxlan::Table>()
}

fn check(r: &VxlanRequest) -> SvcResult<()> {
    let bad = |m: &str| Err(SvcError::new(rv::INVALID_VALUE, m.to_string()));
    if r.src.is_ipv4() != r.dst.is_ipv4() {
        return bad("source and destination are of different address families");
    }
    if r.src == r.dst || r.src.is_unspecified() || r.dst.is_unspecified() {
        return bad("source and destination must be two unicast addresses");
    }
    if r.dst.is_multicast() {
        return Err(SvcError::new(
            rv::UNIMPLEMENTED,
            "multicast VXLAN destinations are not supported",
        ));
    }
    if r.vni >= 1 << 24 {
        return bad("vni is 24 bits");
    }
    Ok(())
}

/// The tunnel `r` exists already: VPP's TUNNEL_EXIST.
fn no_twin(t: &vxlan::Tunnels, r: &VxlanRequest) -> SvcResult<()> {
    match t.find(r.src, r.dst, r.vni) {
        Some(_) => Err(SvcError::new(
            rv::TUNNEL_EXIST,
            format!("a vxlan tunnel {} -> {} vni {} exists", r.src, r.dst, r.vni),
        )),
        None => Ok(()),
    }
}

/// The row of `r` on interface `sw`; its encap table must exist.
fn row(f: &Forwarding, r: &VxlanRequest, sw: u32, instance: u32) -> SvcResult<Tunnel> {
    let encap_fib = f.fib_index(Af::of(&r.src), r.encap_vrf_id).ok_or_else(|| {
        let v = if r.src.is_ipv6() { 6 } else { 4 };
        SvcError::new(
            rv::NO_SUCH_FIB,
            format!("no ip{v} table {}", r.encap_vrf_id),
        )
    })?;
    Ok(Tunnel {
        sw_if_index: sw,
        instance,
        src: r.src,
        dst: r.dst,
        dst_port: if r.dst_port == 0 {
            VXLAN_PORT
        } else {
            r.dst_port
        },
        vni: r.vni,
        encap_fib,
        encap_vrf_id: r.encap_vrf_id,
        l3: r.l3,
        decap_next_index: r.decap_next_index,
    })
}

/// Create a tunnel; returns its sw_if_index and name.
pub fn create(dp: &Arc<Dataplane>, r: VxlanRequest) -> SvcResult<(u32, String)> {
    check(&r)?;
    let t = table(dp);
    let (sw, name) = {
        // The forwarding lock also orders tunnel-table edits between front ends.
        let mut f = dp.fwd();
        let cur = t.load();
        no_twin(&cur, &r)?;
        // Checked before the interface is made, so an error leaves nothing.
        row(&f, &r, 0, 0)?;
        let instance = KIND.instance(&f, r.instance)?;
        let looks = TunnelIf {
            mac: if r.l3 { [0; 6] } else { random_mac() },
            ethernet: !r.l3,
            mtu: DEFAULT_MTU,
            admin_up: true,
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

/// A live restart's tunnel `r` on interface `sw`, which the snapshot rebuilt (name, MAC, L2
/// or L3, MTU) under its old index: checked as [`create`] checks, its encap features on, its
/// row in the table. `f` is the restore's forwarding lock.
pub fn restore(dp: &Dataplane, f: &mut Forwarding, sw: u32, r: VxlanRequest) -> SvcResult<()> {
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

/// Delete the tunnel with these endpoints and VNI (VPP's delete key); returns its sw_if_index.
pub fn delete(dp: &Arc<Dataplane>, src: IpAddr, dst: IpAddr, vni: u32) -> SvcResult<u32> {
    let t = table(dp);
    let f = dp.fwd();
    let Some(sw) = t.load().find(src, dst, vni).map(|x| x.sw_if_index) else {
        return Err(SvcError::new(
            rv::NO_SUCH_ENTRY,
            format!("no vxlan tunnel {src} -> {dst} vni {vni}"),
        ));
    };
    super::tunnel::remove(dp, f, &t, sw)?;
    Ok(sw)
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
