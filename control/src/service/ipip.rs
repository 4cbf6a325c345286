//! IPIP tunnels: each is a point-to-point interface `ipip<N>` (VPP's name, lowest free
//! instance or the one asked for) with the dataplane's `ipip4-encap` / `ipip6-encap` features
//! enabled, and a row of `rvpp_dataplane::nodes::ipip::Table`. The CLI and the API both come
//! here.

use super::tunnel::{TunnelIf, TunnelKind, TunnelRequest};
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

impl TunnelRequest for IpipRequest {
    type Entry = Tunnel;
    const KIND: TunnelKind = KIND;

    fn table(dp: &Dataplane) -> Arc<ipip::Table> {
        table(dp)
    }

    fn check(&self) -> SvcResult<()> {
        super::tunnel::check_endpoints(self.src, self.dst)?;
        if self.flags & !tunnel_flags::SUPPORTED != 0 {
            return Err(SvcError::new(
                rv::UNIMPLEMENTED,
                format!("tunnel flags {:#x} are not supported", self.flags),
            ));
        }
        if self.dscp > 63 {
            return Err(SvcError::new(rv::INVALID_VALUE, "dscp is 6 bits"));
        }
        Ok(())
    }

    /// IF_ALREADY_EXISTS, as VPP.
    fn no_twin(&self, t: &ipip::Tunnels) -> SvcResult<()> {
        match t.find(self.src, self.dst) {
            Some(_) => Err(SvcError::new(
                rv::IF_ALREADY_EXISTS,
                format!("an ipip tunnel {} -> {} exists", self.src, self.dst),
            )),
            None => Ok(()),
        }
    }

    fn row(&self, f: &Forwarding, sw: u32, instance: u32) -> SvcResult<Tunnel> {
        let encap_fib = f
            .fib_index(Af::of(&self.src), self.table_id)
            .ok_or_else(|| SvcError::new(rv::NO_SUCH_FIB, format!("no table {}", self.table_id)))?;
        Ok(Tunnel {
            sw_if_index: sw,
            instance,
            src: self.src,
            dst: self.dst,
            encap_fib,
            table_id: self.table_id,
            flags: self.flags,
            dscp: self.dscp,
        })
    }

    fn instance(&self) -> Option<u32> {
        self.instance
    }

    /// An IPv6 outer header takes 20 bytes more of the uplink's MTU.
    fn looks(&self) -> TunnelIf {
        TunnelIf {
            mac: [0; 6],
            ethernet: false,
            mtu: if self.src.is_ipv6() {
                DEFAULT_MTU - 20
            } else {
                DEFAULT_MTU
            },
            admin_up: false,
        }
    }
}

/// Create a tunnel; returns its sw_if_index and name.
pub fn create(dp: &Arc<Dataplane>, r: IpipRequest) -> SvcResult<(u32, String)> {
    super::tunnel::create(dp, r)
}

/// A live restart's tunnel `r` on interface `sw` ([`super::tunnel::restore`]).
pub fn restore(dp: &Dataplane, f: &mut Forwarding, sw: u32, r: IpipRequest) -> SvcResult<()> {
    super::tunnel::restore(dp, f, sw, r)
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
