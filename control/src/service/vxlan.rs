//! VXLAN tunnels: each is an interface `vxlan_tunnel<N>` (VPP's name, lowest free instance or
//! the one asked for) whose packets the dataplane's `vxlan4-encap` / `vxlan6-encap` features
//! encapsulate, and a row of the tunnel table (`rvpp_dataplane::nodes::vxlan::Table`) that the
//! encap and decap nodes read. The CLI and the API both come here.
//!
//! Mode per tunnel (`is_l3`): L3 = calico-vpp's bare IP between VPP nodes (an interface without
//! a MAC); L2 = an inner Ethernet frame, what a Linux `vxlan.calico` peer expects (an Ethernet
//! interface with a random MAC; routes go via the peer's VTEP address, resolved by a static
//! neighbour with the peer's VTEP MAC, as felix programs on Linux nodes).

use super::tunnel::{TunnelIf, TunnelKind, TunnelRequest};
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
    dev_type: vxlan::DEV_TYPE,
    encap: &[vxlan::ENCAP4, vxlan::ENCAP6],
};

/// A tunnel to create (VPP's `vxlan_add_del_tunnel_v3` fields rvpp uses).
#[derive(Clone, Copy, Debug)]
pub struct VxlanRequest {
    /// `None` (~0 on the API): the lowest free instance.
    pub instance: Option<u32>,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// UDP port sent to; 0: 4789.
    pub dst_port: u16,
    /// UDP port received on (VPP registers it for vxlan4/6-input); 0: 4789.
    pub src_port: u16,
    pub vni: u32,
    pub encap_vrf_id: u32,
    pub l3: bool,
    /// Kept and shown back (decap chooses by the inner packet).
    pub decap_next_index: u32,
}

fn table(dp: &Dataplane) -> Arc<vxlan::Table> {
    dp.feature_tables.get::<vxlan::Table>()
}

impl TunnelRequest for VxlanRequest {
    type Entry = Tunnel;
    const KIND: TunnelKind = KIND;

    fn table(dp: &Dataplane) -> Arc<vxlan::Table> {
        table(dp)
    }

    fn check(&self) -> SvcResult<()> {
        super::tunnel::check_endpoints(self.src, self.dst)?;
        if self.dst.is_multicast() {
            return Err(SvcError::new(
                rv::UNIMPLEMENTED,
                "multicast VXLAN destinations are not supported",
            ));
        }
        if self.vni >= 1 << 24 {
            return Err(SvcError::new(rv::INVALID_VALUE, "vni is 24 bits"));
        }
        Ok(())
    }

    /// VPP's TUNNEL_EXIST.
    fn no_twin(&self, t: &vxlan::Tunnels) -> SvcResult<()> {
        match t.find(self.src, self.dst, self.vni) {
            Some(_) => Err(SvcError::new(
                rv::TUNNEL_EXIST,
                format!(
                    "a vxlan tunnel {} -> {} vni {} exists",
                    self.src, self.dst, self.vni
                ),
            )),
            None => Ok(()),
        }
    }

    fn row(&self, f: &Forwarding, sw: u32, instance: u32) -> SvcResult<Tunnel> {
        let encap_fib = f
            .fib_index(Af::of(&self.src), self.encap_vrf_id)
            .ok_or_else(|| {
                let v = if self.src.is_ipv6() { 6 } else { 4 };
                SvcError::new(
                    rv::NO_SUCH_FIB,
                    format!("no ip{v} table {}", self.encap_vrf_id),
                )
            })?;
        Ok(Tunnel {
            sw_if_index: sw,
            instance,
            src: self.src,
            dst: self.dst,
            dst_port: port_or_default(self.dst_port),
            src_port: port_or_default(self.src_port),
            vni: self.vni,
            encap_fib,
            encap_vrf_id: self.encap_vrf_id,
            l3: self.l3,
            decap_next_index: self.decap_next_index,
        })
    }

    fn instance(&self) -> Option<u32> {
        self.instance
    }

    /// L3 (calico-vpp's mode) carries bare IP; L2 (toward Linux nodes) an Ethernet frame
    /// from a MAC of its own.
    fn looks(&self) -> TunnelIf {
        TunnelIf {
            mac: if self.l3 { [0; 6] } else { random_mac() },
            ethernet: !self.l3,
            mtu: DEFAULT_MTU,
            admin_up: true,
        }
    }
}

fn port_or_default(p: u16) -> u16 {
    if p == 0 {
        VXLAN_PORT
    } else {
        p
    }
}

/// Publish the UDP ports the tunnels receive on, per outer family, for ip4-/ip6-local and the
/// lookups' shortcut: a port stays registered while any tunnel has it (the table is the
/// refcount), and 4789 always is.
fn sync_rx_ports(dp: &Dataplane, f: &mut Forwarding) {
    let t = table(dp).load();
    for af in [Af::Ip4, Af::Ip6] {
        let ports = t
            .iter()
            .filter(|x| x.src.is_ipv6() == (af == Af::Ip6))
            .map(|x| x.src_port)
            .collect();
        f.set_vxlan_ports(af, ports);
    }
}

/// Create a tunnel; returns its sw_if_index and name.
pub fn create(dp: &Arc<Dataplane>, r: VxlanRequest) -> SvcResult<(u32, String)> {
    let r = super::tunnel::create(dp, r)?;
    sync_rx_ports(dp, &mut dp.fwd());
    Ok(r)
}

/// A live restart's tunnel `r` on interface `sw`, which the snapshot rebuilt (name, MAC, L2
/// or L3, MTU) under its old index ([`super::tunnel::restore`]).
pub fn restore(dp: &Dataplane, f: &mut Forwarding, sw: u32, r: VxlanRequest) -> SvcResult<()> {
    super::tunnel::restore(dp, f, sw, r)?;
    sync_rx_ports(dp, f);
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
    sync_rx_ports(dp, &mut dp.fwd());
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
