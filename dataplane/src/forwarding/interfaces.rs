//! Interfaces: create and delete, state, MTUs, MAC, cross-connect, offloads, VRF binding.

use super::{AdjKey, Af, Forwarding, FwdError, Prefix};
use crate::feature::arc;
use crate::tables::*;
use crate::wire::Mac;

impl Forwarding {
    /// Create an interface; returns its sw_if_index.
    pub fn interface_add(
        &mut self,
        name: &str,
        dev_type: &str,
        mac: Mac,
        l2: bool,
        mtu: u16,
    ) -> Result<u32, FwdError> {
        let sw = match self.ifs.ifs.iter().position(|i| i.is_none()) {
            Some(i) => i,
            None => self.ifs.ifs.len(),
        };
        self.interface_add_at(sw as u32, name, dev_type, mac, l2, mtu)
    }

    /// Create an interface with sw_if_index `sw`, which must be free: a live restart keeps
    /// the indices the agent knows.
    pub fn interface_add_at(
        &mut self,
        sw: u32,
        name: &str,
        dev_type: &str,
        mac: Mac,
        l2: bool,
        mtu: u16,
    ) -> Result<u32, FwdError> {
        if self.ifs.by_name(name).is_some() {
            return Err(FwdError::Invalid(format!("interface {name} exists")));
        }
        let sw = sw as usize;
        if self.ifs.get(sw as u32).is_some() {
            return Err(FwdError::Invalid(format!("sw_if_index {sw} is in use")));
        }
        if sw >= MAX_INTERFACES {
            return Err(FwdError::TooManyInterfaces);
        }
        while sw >= self.ifs.ifs.len() {
            self.ifs.ifs.push(None);
            self.ifs.fast.push(IfFast::default());
        }
        let i = Interface {
            sw_if_index: sw as u32,
            name: name.into(),
            dev_type: dev_type.into(),
            mac,
            l2,
            mtu,
            link_up: true,
            ..Default::default()
        };
        self.ifs.ifs[sw] = Some(i);
        self.refresh_fast(sw as u32);
        self.publish();
        Ok(sw as u32)
    }

    /// A VLAN sub-interface of an L2 interface.
    pub fn vlan_subif_add(&mut self, parent: u32, vlan: u16) -> Result<u32, FwdError> {
        let p = self.iface(parent)?.clone();
        if !p.l2 || vlan == 0 || vlan > 4094 {
            return Err(FwdError::Invalid(
                "vlan sub-interfaces need an ethernet parent and vlan 1-4094".into(),
            ));
        }
        let sw = self.interface_add(&format!("{}.{vlan}", p.name), "vlan", p.mac, true, p.mtu)?;
        self.iface_mut(sw)?.sub_of = Some((parent, vlan));
        self.ifs.vlans.push((parent, vlan, sw));
        self.refresh_fast(sw);
        self.publish();
        Ok(sw)
    }

    pub fn interface_del(&mut self, sw: u32) -> Result<(), FwdError> {
        if sw == 0 {
            return Err(FwdError::Invalid("local0 cannot be deleted".into()));
        }
        let i = self.iface(sw)?.clone();
        self.proto_mtu.remove(&sw);
        for (a, l) in i.ip4_addrs.clone() {
            self.address_del(sw, Prefix::V4(a, l))?;
        }
        for (a, l) in i.ip6_addrs.clone() {
            self.address_del(sw, Prefix::V6(a, l))?;
        }
        let gone: Vec<_> = self
            .neighbors
            .keys()
            .filter(|k| k.0 == sw)
            .copied()
            .collect();
        for k in gone {
            let _ = self.neighbor_del(k.0, k.1);
        }
        // Routes through this interface now drop, and its adjacencies leave the index: an
        // interface created later with the same sw_if_index must get fresh ones, not these
        // drops (a new pod's tap in a dead pod's slot had its connected route drop).
        let keys: Vec<AdjKey> = self
            .adj_index
            .keys()
            .filter(|k| matches!(k, AdjKey::Neighbor { sw: s, .. } | AdjKey::Attached { sw: s, .. } | AdjKey::Glean { sw: s, .. } if *s == sw))
            .copied()
            .collect();
        for k in keys {
            if let Some(ai) = self.adj_index.remove(&k) {
                self.fwd.adjs[ai as usize].kind = AdjKind::Drop;
            }
        }
        self.ifs.vlans.retain(|v| v.2 != sw && v.0 != sw);
        self.ifs.ifs[sw as usize] = None;
        self.ifs.fast[sw as usize] = IfFast::default();
        self.ifs_dirty = true;
        self.fwd_dirty = true;
        self.publish();
        Ok(())
    }

    pub fn iface(&self, sw: u32) -> Result<&Interface, FwdError> {
        self.ifs.get(sw).ok_or(FwdError::NoSuchInterface(sw))
    }
    pub(super) fn iface_mut(&mut self, sw: u32) -> Result<&mut Interface, FwdError> {
        self.ifs_dirty = true;
        self.ifs
            .ifs
            .get_mut(sw as usize)
            .and_then(|i| i.as_mut())
            .ok_or(FwdError::NoSuchInterface(sw))
    }

    pub(super) fn refresh_fast(&mut self, sw: u32) {
        let Some(Some(i)) = self.ifs.ifs.get(sw as usize) else {
            return;
        };
        let mut flags = if_flags::EXISTS;
        if i.admin_up {
            flags |= if_flags::ADMIN_UP;
        }
        if i.link_up {
            flags |= if_flags::LINK_UP;
        }
        if !i.ip4_addrs.is_empty() || i.unnumbered_of.is_some() || i.ip4_fib != 0 || !i.l2 {
            flags |= if_flags::IP4;
        }
        if i.ip6_enabled || !i.ip6_addrs.is_empty() || i.unnumbered_of.is_some() || !i.l2 {
            flags |= if_flags::IP6;
        }
        if i.l2 {
            flags |= if_flags::L2;
        }
        if i.promisc {
            flags |= if_flags::PROMISC;
        }
        if i.tx_gso {
            flags |= if_flags::TX_GSO;
        }
        if i.tx_csum {
            flags |= if_flags::TX_CSUM;
        }
        if i.proxy_arp {
            flags |= if_flags::PROXY_ARP;
        }
        if i.nd_proxy {
            flags |= if_flags::ND_PROXY;
        }
        if i.dev_type == crate::nodes::vxlan::DEV_TYPE {
            flags |= if_flags::TX_VXLAN;
        }
        let fast = IfFast {
            flags,
            mac: i.mac,
            ip4_fib: i.ip4_fib,
            ip6_fib: i.ip6_fib,
            feat_ip4: i.features[arc::IP4_UNICAST],
            feat_ip6: i.features[arc::IP6_UNICAST],
            feat_ip4_local: i.features[arc::IP4_LOCAL],
            feat_ip6_local: i.features[arc::IP6_LOCAL],
            mtu: i.mtu,
            xconnect: i.xconnect.unwrap_or(u32::MAX),
        };
        self.ifs.fast[sw as usize] = fast;
        self.ifs_dirty = true;
    }

    pub fn set_admin_up(&mut self, sw: u32, up: bool) -> Result<(), FwdError> {
        self.iface_mut(sw)?.admin_up = up;
        self.refresh_fast(sw);
        self.publish();
        Ok(())
    }

    pub fn set_link_up(&mut self, sw: u32, up: bool) -> Result<(), FwdError> {
        self.iface_mut(sw)?.link_up = up;
        self.refresh_fast(sw);
        self.publish();
        Ok(())
    }

    pub fn set_mtu(&mut self, sw: u32, mtu: u16) -> Result<(), FwdError> {
        if mtu < 68 {
            return Err(FwdError::Invalid(format!("mtu {mtu} below 68")));
        }
        self.iface_mut(sw)?.mtu = mtu;
        self.refresh_fast(sw);
        self.refresh_adj_mtus(sw);
        self.publish();
        Ok(())
    }

    /// VPP's per-protocol MTUs: packets of that family leave `sw` with at most `ip4` / `ip6`
    /// bytes (fragmentation or "too big" above); 0 follows the interface's L3 MTU.
    pub fn set_protocol_mtu(&mut self, sw: u32, ip4: u16, ip6: u16) -> Result<(), FwdError> {
        self.iface(sw)?;
        if let Some(m) = [ip4, ip6].into_iter().find(|&m| m != 0 && m < 68) {
            return Err(FwdError::Invalid(format!("mtu {m} below 68")));
        }
        if ip4 == 0 && ip6 == 0 {
            self.proto_mtu.remove(&sw);
        } else {
            self.proto_mtu.insert(sw, [ip4, ip6]);
        }
        self.refresh_adj_mtus(sw);
        self.publish();
        Ok(())
    }

    /// Interface `sw`'s per-protocol MTUs (ip4, ip6) if any is set.
    pub fn protocol_mtu(&self, sw: u32) -> Option<[u16; 2]> {
        self.proto_mtu.get(&sw).copied()
    }

    /// The MTU packets of a family leave `sw` with (its protocol MTU, else the L3 MTU).
    pub fn adj_mtu(&self, sw: u32, af: Af) -> u16 {
        let l3 = self.ifs.get(sw).map_or(1500, |i| i.mtu);
        match self.proto_mtu.get(&sw).map(|m| m[af.index()]) {
            Some(m) if m != 0 => m,
            _ => l3,
        }
    }

    fn refresh_adj_mtus(&mut self, sw: u32) {
        let (m4, m6) = (self.adj_mtu(sw, Af::Ip4), self.adj_mtu(sw, Af::Ip6));
        for a in self.fwd.adjs.iter_mut() {
            if a.sw_if_index == sw && a.kind != AdjKind::Drop {
                a.mtu = if a.is_ip6 { m6 } else { m4 };
            }
        }
        self.fwd_dirty = true;
    }

    pub fn set_mac(&mut self, sw: u32, mac: Mac) -> Result<(), FwdError> {
        self.iface_mut(sw)?.mac = mac;
        self.refresh_fast(sw);
        let keys: Vec<_> = self.adj_index.iter().map(|(k, v)| (*k, *v)).collect();
        for (k, ai) in keys {
            if let AdjKey::Neighbor { sw: s, .. } = k {
                if s == sw && self.fwd.adjs[ai as usize].rewrite_len >= 12 {
                    self.fwd.adjs[ai as usize].rewrite[6..12].copy_from_slice(&mac);
                }
            }
        }
        self.fwd_dirty = true;
        self.publish();
        Ok(())
    }

    /// Cross-connect `rx` to `tx` at L2 (None: back to L3 forwarding).
    pub fn set_xconnect(&mut self, rx: u32, tx: Option<u32>) -> Result<(), FwdError> {
        if let Some(t) = tx {
            if !self.iface(t)?.l2 {
                return Err(FwdError::Invalid(
                    "cross-connect needs an ethernet interface".into(),
                ));
            }
        }
        if !self.iface(rx)?.l2 {
            return Err(FwdError::Invalid(
                "cross-connect needs an ethernet interface".into(),
            ));
        }
        self.iface_mut(rx)?.xconnect = tx;
        self.refresh_fast(rx);
        self.publish();
        Ok(())
    }

    /// What the device does for us on transmit (from its driver).
    pub fn set_tx_offloads(&mut self, sw: u32, gso: bool, csum: bool) -> Result<(), FwdError> {
        let i = self.iface_mut(sw)?;
        i.tx_gso = gso;
        i.tx_csum = csum;
        self.refresh_fast(sw);
        self.publish();
        Ok(())
    }

    pub fn set_promisc(&mut self, sw: u32, on: bool) -> Result<(), FwdError> {
        self.iface_mut(sw)?.promisc = on;
        self.refresh_fast(sw);
        self.publish();
        Ok(())
    }

    /// Proxy ARP on `sw` (for the ranges of its table: [`Self::proxy_arp_add`]).
    pub fn set_proxy_arp(&mut self, sw: u32, on: bool) -> Result<(), FwdError> {
        self.iface_mut(sw)?.proxy_arp = on;
        self.refresh_fast(sw);
        self.publish();
        Ok(())
    }

    /// ND proxy on `sw`: solicitations from global sources are answered for any target.
    pub fn set_nd_proxy(&mut self, sw: u32, on: bool) -> Result<(), FwdError> {
        self.iface_mut(sw)?.nd_proxy = on;
        self.refresh_fast(sw);
        self.publish();
        Ok(())
    }

    /// Add a proxy ARP range to IPv4 fib `fib` (already there: no change, as VPP's).
    pub fn proxy_arp_add(&mut self, fib: u32, lo: u32, hi: u32) {
        if !self.ifs.proxy_arp.contains(&(fib, lo, hi)) {
            self.ifs.proxy_arp.push((fib, lo, hi));
            self.ifs_dirty = true;
            self.publish();
        }
    }

    /// Remove a proxy ARP range; one that is not there is `NoSuchEntry`.
    pub fn proxy_arp_del(&mut self, fib: u32, lo: u32, hi: u32) -> Result<(), FwdError> {
        let before = self.ifs.proxy_arp.len();
        self.ifs.proxy_arp.retain(|&e| e != (fib, lo, hi));
        if self.ifs.proxy_arp.len() == before {
            return Err(FwdError::NoSuchEntry);
        }
        self.ifs_dirty = true;
        self.publish();
        Ok(())
    }

    /// The proxy ARP ranges: (fib index, first, last).
    pub fn proxy_arps(&self) -> &[(u32, u32, u32)] {
        &self.ifs.proxy_arp
    }

    pub fn set_tag(&mut self, sw: u32, tag: &str) -> Result<(), FwdError> {
        self.iface_mut(sw)?.tag = tag.into();
        self.publish();
        Ok(())
    }

    pub fn enable_ip6(&mut self, sw: u32, on: bool) -> Result<(), FwdError> {
        self.iface_mut(sw)?.ip6_enabled = on;
        self.refresh_fast(sw);
        self.publish();
        Ok(())
    }

    /// Put an interface in a VRF (the table must exist; the interface must have no addresses).
    pub fn set_table(&mut self, sw: u32, af: Af, table_id: u32) -> Result<(), FwdError> {
        let fi = self
            .fib_index(af, table_id)
            .ok_or(FwdError::NoSuchTable(table_id))?;
        let i = self.iface(sw)?;
        let has_addrs = match af {
            Af::Ip4 => !i.ip4_addrs.is_empty(),
            Af::Ip6 => !i.ip6_addrs.is_empty(),
        };
        if has_addrs {
            return Err(FwdError::AddressesPresent);
        }
        let i = self.iface_mut(sw)?;
        match af {
            Af::Ip4 => i.ip4_fib = fi,
            Af::Ip6 => i.ip6_fib = fi,
        }
        self.refresh_fast(sw);
        self.publish();
        Ok(())
    }

    pub fn set_unnumbered(&mut self, sw: u32, of: Option<u32>) -> Result<(), FwdError> {
        if let Some(o) = of {
            self.iface(o)?;
        }
        self.iface_mut(sw)?.unnumbered_of = of;
        self.refresh_fast(sw);
        self.publish();
        Ok(())
    }
}

/// The fib index an interface looks packets of a family up in.
pub(super) fn fib_of(i: &Interface, af: Af) -> u32 {
    match af {
        Af::Ip4 => i.ip4_fib,
        Af::Ip6 => i.ip6_fib,
    }
}
