//! Adjacencies and load-balances, shared by every route that resolves to them.

use super::{Af, Forwarding, Path, PathKind};
use crate::fib::LEAF_MISS;
use crate::tables::*;
use crate::wire::{self, Mac};
use std::net::IpAddr;

/// What makes two adjacencies the same one (routes through the same next hop share it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum AdjKey {
    Neighbor { sw: u32, nh: u128, af: Af },
    Attached { sw: u32, af: Af },
    Glean { sw: u32, af: Af },
    Local { af: Af },
    Prohibit { af: Af },
    Lookup { fib: u32, af: Af },
    Pbl { id: u32, af: Af },
    Sr { kind: AdjKind, index: u32, af: Af },
}

/// A next hop as adjacencies hold it: host order, IPv4 in the low 32 bits.
pub(super) fn nh_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

impl Forwarding {
    pub(super) fn adj(&mut self, key: AdjKey, a: Adjacency) -> u32 {
        if let Some(&i) = self.adj_index.get(&key) {
            return i;
        }
        self.fwd.adjs.push(a);
        let i = (self.fwd.adjs.len() - 1) as u32;
        self.adj_index.insert(key, i);
        self.fwd_dirty = true;
        i
    }

    pub(super) fn l2_rewrite(&self, sw: u32, dst: Mac, af: Af) -> ([u8; 24], u8, u32) {
        let mut rw = [0u8; 24];
        let Some(i) = self.ifs.get(sw) else {
            return (rw, 0, sw);
        };
        if !i.l2 {
            return (rw, 0, sw);
        }
        let et = match af {
            Af::Ip4 => wire::ETHERTYPE_IP4,
            Af::Ip6 => wire::ETHERTYPE_IP6,
        };
        rw[0..6].copy_from_slice(&dst);
        rw[6..12].copy_from_slice(&i.mac);
        match i.sub_of {
            Some((parent, vlan)) => {
                rw[12..14].copy_from_slice(&wire::ETHERTYPE_VLAN.to_be_bytes());
                rw[14..16].copy_from_slice(&vlan.to_be_bytes());
                rw[16..18].copy_from_slice(&et.to_be_bytes());
                (rw, 18, parent)
            }
            None => {
                rw[12..14].copy_from_slice(&et.to_be_bytes());
                (rw, 14, sw)
            }
        }
    }

    /// The adjacency that reaches `nh` on `sw`.
    pub(super) fn neighbor_adj(&mut self, sw: u32, nh: IpAddr) -> u32 {
        let (nhv, af) = (nh_bits(nh), Af::of(&nh));
        let l2 = self.ifs.get(sw).is_some_and(|i| i.l2);
        if !l2 {
            return self.attached_adj(sw, af);
        }
        let key = AdjKey::Neighbor { sw, nh: nhv, af };
        let mtu = self.adj_mtu(sw, af);
        // The limited broadcast needs no resolution: every station on the link.
        let known = if nh == IpAddr::V4(std::net::Ipv4Addr::BROADCAST) {
            Some(wire::BROADCAST_MAC)
        } else {
            self.neighbors.get(&(sw, nh)).map(|n| n.mac)
        };
        let a = match known {
            Some(mac) => {
                let (rewrite, rewrite_len, tx) = self.l2_rewrite(sw, mac, af);
                Adjacency {
                    kind: AdjKind::Rewrite,
                    sw_if_index: tx,
                    mtu,
                    rewrite,
                    rewrite_len,
                    next_hop: nhv,
                    is_ip6: af.is_ip6(),
                    lookup_fib: 0,
                    out_features: 0,
                }
            }
            None => Adjacency {
                kind: AdjKind::Incomplete,
                sw_if_index: sw,
                mtu,
                next_hop: nhv,
                is_ip6: af.is_ip6(),
                ..Default::default()
            },
        };
        self.adj(key, a)
    }

    /// Attached: L3 interfaces rewrite nothing; L2 ones must resolve each destination (glean).
    pub(super) fn attached_adj(&mut self, sw: u32, af: Af) -> u32 {
        let l2 = self.ifs.get(sw).is_some_and(|i| i.l2);
        let (kind, key) = if l2 {
            (AdjKind::Glean, AdjKey::Glean { sw, af })
        } else {
            (AdjKind::Rewrite, AdjKey::Attached { sw, af })
        };
        let a = Adjacency {
            kind,
            sw_if_index: sw,
            mtu: self.adj_mtu(sw, af),
            is_ip6: af.is_ip6(),
            ..Default::default()
        };
        self.adj(key, a)
    }

    pub(super) fn lookup_adj(&mut self, af: Af, fib: u32) -> u32 {
        let a = Adjacency {
            kind: AdjKind::Lookup,
            is_ip6: af.is_ip6(),
            lookup_fib: fib,
            ..Default::default()
        };
        self.adj(AdjKey::Lookup { fib, af }, a)
    }

    fn sr_adj(&mut self, kind: AdjKind, index: u32, af: Af) -> u32 {
        let a = Adjacency {
            kind,
            is_ip6: af.is_ip6(),
            lookup_fib: index,
            ..Default::default()
        };
        self.adj(AdjKey::Sr { kind, index, af }, a)
    }

    /// The adjacency that reaches `nh` on `sw` (SRv6's End.X / End.DX4 / End.DX6 cross-connect
    /// to it); published with the next `publish`. Adjacencies are never freed, and a neighbour
    /// learned later completes this one in place.
    pub fn neighbour_adjacency(&mut self, sw: u32, nh: IpAddr) -> Result<u32, super::FwdError> {
        self.iface(sw)?;
        Ok(self.neighbor_adj(sw, nh))
    }

    pub(super) fn path_adjs(&mut self, af: Af, fib_index: u32, p: &Path) -> Vec<u32> {
        match p.kind {
            PathKind::Local => vec![self.adj_index[&AdjKey::Local { af }]],
            PathKind::Drop => vec![DROP_ADJ],
            PathKind::Unreachable => vec![UNREACH_ADJ],
            PathKind::Lookup(table_id) => match self.fib_index(af, table_id) {
                Some(fib) => vec![self.lookup_adj(af, fib)],
                None => vec![DROP_ADJ],
            },
            PathKind::SrPolicy(index) => vec![self.sr_adj(AdjKind::SrPolicy, index, af)],
            PathKind::SrLocalsid(index) => vec![self.sr_adj(AdjKind::SrLocalsid, index, af)],
            PathKind::Prohibit => {
                let a = Adjacency {
                    kind: AdjKind::Prohibit,
                    is_ip6: af.is_ip6(),
                    ..Default::default()
                };
                vec![self.adj(AdjKey::Prohibit { af }, a)]
            }
            PathKind::Normal => match (p.next_hop, p.sw_if_index) {
                (Some(nh), Some(sw)) if self.ifs.get(sw).is_some() => {
                    vec![self.neighbor_adj(sw, nh)]
                }
                (None, Some(sw)) if self.ifs.get(sw).is_some() => vec![self.attached_adj(sw, af)],
                (Some(nh), _) => self.resolve_recursive(af, fib_index, nh),
                _ => vec![DROP_ADJ],
            },
        }
    }

    /// A next hop with no interface: use what the FIB says reaches it now.
    fn resolve_recursive(&mut self, af: Af, fib_index: u32, nh: IpAddr) -> Vec<u32> {
        let leaf = match (nh, af) {
            (IpAddr::V4(a), Af::Ip4) => self
                .ip4
                .get(fib_index as usize)
                .and_then(|t| t.as_ref())
                .map(|t| t.writer.fib().lookup(u32::from(a))),
            (IpAddr::V6(a), Af::Ip6) => self
                .ip6
                .get(fib_index as usize)
                .and_then(|t| t.as_ref())
                .map(|t| t.writer.fib().lookup(u128::from(a))),
            _ => None,
        };
        let Some(leaf) = leaf.filter(|&l| l != LEAF_MISS) else {
            return vec![DROP_ADJ];
        };
        let lb = self.fwd.lb(leaf);
        let buckets = lb.buckets[..lb.n_buckets as usize].to_vec();
        // An attached (glean) cover: the next hop is on that subnet, so resolve it there.
        buckets
            .into_iter()
            .map(|ai| {
                let a = self.fwd.adj(ai);
                if a.kind == AdjKind::Glean {
                    self.neighbor_adj(a.sw_if_index, nh)
                } else {
                    ai
                }
            })
            .collect()
    }

    pub(super) fn lb_for(&mut self, adjs: Vec<u32>) -> u32 {
        let mut key = adjs;
        key.truncate(MAX_ECMP);
        if key.is_empty() {
            key.push(DROP_ADJ);
        }
        if let Some(&i) = self.lb_index.get(&key) {
            self.lb_refs[i as usize] += 1;
            return i;
        }
        let mut lb = LoadBalance::single(key[0]);
        lb.n_buckets = key.len() as u8;
        lb.buckets[..key.len()].copy_from_slice(&key);
        let i = match self.free_lbs.pop() {
            Some(i) => {
                self.fwd.lbs[i as usize] = lb;
                self.lb_refs[i as usize] = 1;
                i
            }
            None => {
                self.fwd.lbs.push(lb);
                self.lb_refs.push(1);
                (self.fwd.lbs.len() - 1) as u32
            }
        };
        self.lb_index.insert(key, i);
        self.fwd_dirty = true;
        self.unpublished_lbs = true;
        i
    }

    pub(super) fn lb_release(&mut self, i: u32) {
        let Some(r) = self.lb_refs.get_mut(i as usize) else {
            return;
        };
        if *r == u32::MAX {
            return;
        }
        *r -= 1;
        if *r == 0 {
            let lb = self.fwd.lbs[i as usize];
            self.lb_index.remove(&lb.buckets[..lb.n_buckets as usize]);
            // Reuse waits for a grace period: a worker may still hold the old leaf.
            let stamp = self.shared.grace.advance();
            self.shared.grace.wait_safe(stamp);
            self.free_lbs.push(i);
        }
    }
}
