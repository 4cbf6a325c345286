//! Neighbours (ARP/ND entries): static, learned by workers, and the host routes they own.

use super::adjacencies::nh_bits;
use super::{fib_of, AdjKey, Af, Forwarding, FwdError, Path, Prefix, Source};
use crate::tables::{AdjKind, Learned};
use crate::wire::Mac;
use std::net::IpAddr;

/// A neighbour entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Neighbor {
    pub sw_if_index: u32,
    pub ip: IpAddr,
    pub mac: Mac,
    pub is_static: bool,
}

impl Forwarding {
    pub fn neighbor_add(
        &mut self,
        sw: u32,
        ip: IpAddr,
        mac: Mac,
        is_static: bool,
    ) -> Result<(), FwdError> {
        let i = self.iface(sw)?.clone();
        if let Some(n) = self.neighbors.get(&(sw, ip)) {
            if n.mac == mac && (n.is_static || !is_static) {
                return Ok(());
            }
        }
        self.neighbors.insert(
            (sw, ip),
            Neighbor {
                sw_if_index: sw,
                ip,
                mac,
                is_static,
            },
        );
        let (nhv, af) = (nh_bits(ip), Af::of(&ip));
        // Complete (or update) the adjacency in place: every route through it follows.
        let ai = self.neighbor_adj(sw, ip);
        if i.l2 {
            let (rewrite, rewrite_len, tx) = self.l2_rewrite(sw, mac, af);
            let a = &mut self.fwd.adjs[ai as usize];
            a.kind = AdjKind::Rewrite;
            a.rewrite = rewrite;
            a.rewrite_len = rewrite_len;
            a.sw_if_index = tx;
            a.next_hop = nhv;
            self.fwd_dirty = true;
        }
        // The host route, unless a route for exactly this prefix exists already.
        let (t, host) = (self.table_id_of(af, fib_of(&i, af)), Prefix::host_of(ip));
        if self.route_get(t, host).is_none() {
            self.route_set(t, host, vec![Path::via(ip, Some(sw))], Source::AdjFib)?;
        }
        self.publish();
        Ok(())
    }

    pub fn neighbor_del(&mut self, sw: u32, ip: IpAddr) -> Result<(), FwdError> {
        self.neighbors
            .remove(&(sw, ip))
            .ok_or(FwdError::NoSuchEntry)?;
        let (nh, af) = (nh_bits(ip), Af::of(&ip));
        if let Some(&ai) = self.adj_index.get(&AdjKey::Neighbor { sw, nh, af }) {
            let a = &mut self.fwd.adjs[ai as usize];
            a.kind = AdjKind::Incomplete;
            a.rewrite_len = 0;
            a.sw_if_index = sw;
            self.fwd_dirty = true;
        }
        if let Ok(i) = self.iface(sw).cloned() {
            let (t, host) = (self.table_id_of(af, fib_of(&i, af)), Prefix::host_of(ip));
            if self
                .route_get(t, host)
                .is_some_and(|r| r.source == Source::AdjFib)
            {
                let _ = self.route_del(t, host);
            }
        }
        self.publish();
        Ok(())
    }

    pub fn neighbors(&self) -> Vec<Neighbor> {
        self.neighbors.values().copied().collect()
    }

    /// Apply what workers learned (ARP/ND). Returns how many entries changed.
    pub fn apply_learned(&mut self) -> usize {
        let mut n = 0;
        while let Some(ev) = self.shared.learned.pop() {
            let (sw, ip, mac) = match ev {
                Learned::Ip4Neighbor {
                    sw_if_index,
                    ip,
                    mac,
                } => (sw_if_index, IpAddr::from(std::net::Ipv4Addr::from(ip)), mac),
                Learned::Ip6Neighbor {
                    sw_if_index,
                    ip,
                    mac,
                } => (sw_if_index, IpAddr::from(std::net::Ipv6Addr::from(ip)), mac),
            };
            if self
                .neighbors
                .get(&(sw, ip))
                .is_some_and(|e| e.is_static || e.mac == mac)
            {
                continue;
            }
            if self.neighbor_add(sw, ip, mac, false).is_ok() {
                n += 1;
            }
        }
        n
    }
}
