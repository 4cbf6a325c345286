//! Adjacencies and load-balances, shared by every route that resolves to them.

use super::{Forwarding, Path, PathKind};
use crate::fib::LEAF_MISS;
use crate::tables::*;
use crate::wire::{self, Mac};
use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum AdjKey {
    Neighbor { sw: u32, nh: u128, v6: bool },
    Attached { sw: u32, v6: bool },
    Glean { sw: u32, v6: bool },
    Local { v6: bool },
    Prohibit { v6: bool },
    Lookup { fib: u32, v6: bool },
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

    pub(super) fn l2_rewrite(&self, sw: u32, dst: Mac, v6: bool) -> ([u8; 24], u8, u32) {
        let mut rw = [0u8; 24];
        let Some(i) = self.ifs.get(sw) else {
            return (rw, 0, sw);
        };
        if !i.l2 {
            return (rw, 0, sw);
        }
        let et = if v6 {
            wire::ETHERTYPE_IP6
        } else {
            wire::ETHERTYPE_IP4
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
        let (nhv, v6) = match nh {
            IpAddr::V4(a) => (u32::from(a) as u128, false),
            IpAddr::V6(a) => (u128::from(a), true),
        };
        let l2 = self.ifs.get(sw).is_some_and(|i| i.l2);
        if !l2 {
            return self.attached_adj(sw, v6);
        }
        let key = AdjKey::Neighbor { sw, nh: nhv, v6 };
        let mtu = self.adj_mtu(sw, v6);
        let known = self.neighbors.get(&(sw, nh)).map(|n| n.mac);
        let a = match known {
            Some(mac) => {
                let (rewrite, rewrite_len, tx) = self.l2_rewrite(sw, mac, v6);
                Adjacency {
                    kind: AdjKind::Rewrite,
                    sw_if_index: tx,
                    mtu,
                    rewrite,
                    rewrite_len,
                    next_hop: nhv,
                    is_ip6: v6,
                    lookup_fib: 0,
                    out_features: 0,
                }
            }
            None => Adjacency {
                kind: AdjKind::Incomplete,
                sw_if_index: sw,
                mtu,
                next_hop: nhv,
                is_ip6: v6,
                ..Default::default()
            },
        };
        self.adj(key, a)
    }

    /// Attached: L3 interfaces rewrite nothing; L2 ones must resolve each destination (glean).
    pub(super) fn attached_adj(&mut self, sw: u32, v6: bool) -> u32 {
        let l2 = self.ifs.get(sw).is_some_and(|i| i.l2);
        let mtu = self.adj_mtu(sw, v6);
        if l2 {
            let a = Adjacency {
                kind: AdjKind::Glean,
                sw_if_index: sw,
                mtu,
                is_ip6: v6,
                ..Default::default()
            };
            self.adj(AdjKey::Glean { sw, v6 }, a)
        } else {
            let a = Adjacency {
                kind: AdjKind::Rewrite,
                sw_if_index: sw,
                mtu,
                is_ip6: v6,
                ..Default::default()
            };
            self.adj(AdjKey::Attached { sw, v6 }, a)
        }
    }

    pub(super) fn lookup_adj(&mut self, v6: bool, fib: u32) -> u32 {
        let a = Adjacency {
            kind: AdjKind::Lookup,
            is_ip6: v6,
            lookup_fib: fib,
            ..Default::default()
        };
        self.adj(AdjKey::Lookup { fib, v6 }, a)
    }

    pub(super) fn path_adjs(&mut self, ip6: bool, fib_index: u32, p: &Path) -> Vec<u32> {
        match p.kind {
            PathKind::Local => vec![self.adj_index[&AdjKey::Local { v6: ip6 }]],
            PathKind::Drop => vec![DROP_ADJ],
            PathKind::Unreachable => vec![UNREACH_ADJ],
            PathKind::Lookup(table_id) => match self.fib_index(ip6, table_id) {
                Some(fib) => vec![self.lookup_adj(ip6, fib)],
                None => vec![DROP_ADJ],
            },
            PathKind::Prohibit => {
                let a = Adjacency {
                    kind: AdjKind::Prohibit,
                    is_ip6: ip6,
                    ..Default::default()
                };
                vec![self.adj(AdjKey::Prohibit { v6: ip6 }, a)]
            }
            PathKind::Normal => match (p.next_hop, p.sw_if_index) {
                (Some(nh), Some(sw)) if self.ifs.get(sw).is_some() => {
                    vec![self.neighbor_adj(sw, nh)]
                }
                (None, Some(sw)) if self.ifs.get(sw).is_some() => vec![self.attached_adj(sw, ip6)],
                (Some(nh), _) => self.resolve_recursive(ip6, fib_index, nh),
                _ => vec![DROP_ADJ],
            },
        }
    }

    /// A next hop with no interface: use what the FIB says reaches it now.
    fn resolve_recursive(&mut self, ip6: bool, fib_index: u32, nh: IpAddr) -> Vec<u32> {
        let leaf = match (nh, ip6) {
            (IpAddr::V4(a), false) => self
                .ip4
                .get(fib_index as usize)
                .and_then(|t| t.as_ref())
                .map(|t| t.writer.fib().lookup(u32::from(a))),
            (IpAddr::V6(a), true) => self
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
