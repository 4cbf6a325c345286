//! PBL clients (calico's private plugin): a client interposes on the host entry of its address
//! in one table, as VPP's special FIB source with FIB_ENTRY_FLAG_INTERPOSE does. The route
//! records keep their paths (dumps are unchanged); the FIB entry names the client's
//! load-balance, and the route's own forwarding becomes the client's parent. A route set or
//! deleted under a client changes the parent, not the entry.

use super::{adjacencies::AdjKey, Af, Forwarding, FwdError, Path, Prefix, Route, Source};
use crate::fib::LEAF_MISS;
use crate::tables::{AdjKind, Adjacency, PblClient, DROP_LB};
use std::net::IpAddr;

impl Forwarding {
    fn lb_ref(&mut self, i: u32) {
        if let Some(r) = self.lb_refs.get_mut(i as usize).filter(|r| **r != u32::MAX) {
            *r += 1;
        }
    }

    fn route_at(&self, af: Af, fi: u32, p: Prefix) -> Option<Route> {
        match p {
            Prefix::V4(a, l) => self
                .ip4
                .get(fi as usize)?
                .as_ref()?
                .routes
                .get(&(a, l))
                .cloned(),
            Prefix::V6(a, l) => self
                .ip6
                .get(fi as usize)?
                .as_ref()?
                .routes
                .get(&(a, l))
                .cloned(),
        }
        .filter(|_| af == p.af())
    }

    fn fib_put(&mut self, fi: u32, p: Prefix, r: Route) -> Result<Option<Route>, FwdError> {
        let set = match p {
            Prefix::V4(a, l) => self.ip4[fi as usize].as_mut().map(|t| t.set(a, l, r)),
            Prefix::V6(a, l) => self.ip6[fi as usize].as_mut().map(|t| t.set(a, l, r)),
        };
        Ok(set.ok_or(FwdError::NoSuchTable(fi))??)
    }

    /// The client interposed on `p` in fib `fi`, if any.
    pub(super) fn pbl_at(&self, af: Af, fi: u32, p: Prefix) -> Option<u32> {
        if p.host() != p {
            return None;
        }
        let addr = match p {
            Prefix::V4(a, _) => a as u128,
            Prefix::V6(a, _) => a,
        };
        self.fwd
            .pbl
            .iter()
            .position(|c| {
                c.as_ref()
                    .is_some_and(|c| c.is_ip6 == af.is_ip6() && c.fib == fi && c.addr == addr)
            })
            .map(|i| i as u32)
    }

    /// A route is being set on `p` with forwarding `lb`: under a client, `lb` becomes the
    /// client's parent and the entry keeps naming the client (returned instead of `lb`).
    pub(super) fn pbl_route_set(&mut self, af: Af, fi: u32, p: Prefix, lb: u32) -> u32 {
        let Some(id) = self.pbl_at(af, fi, p) else {
            return lb;
        };
        let Some(c) = self.fwd.pbl[id as usize].as_mut() else {
            return lb;
        };
        let (old, pbl_lb) = (std::mem::replace(&mut c.parent_lb, lb), c.pbl_lb);
        self.lb_release(old);
        // The route record about to replace the old one holds its own reference.
        self.lb_ref(pbl_lb);
        self.fwd_dirty = true;
        pbl_lb
    }

    /// A route on `p` is being deleted: under a client the entry stays (as the client's own)
    /// and the parent becomes a drop. True when it did.
    pub(super) fn pbl_route_del(&mut self, af: Af, fi: u32, p: Prefix) -> Result<bool, FwdError> {
        let Some(id) = self.pbl_at(af, fi, p) else {
            return Ok(false);
        };
        let Some(c) = self.fwd.pbl[id as usize].as_mut() else {
            return Ok(false);
        };
        let (old, pbl_lb) = (std::mem::replace(&mut c.parent_lb, DROP_LB), c.pbl_lb);
        self.lb_release(old);
        let own = Route {
            paths: Vec::new(),
            lb: pbl_lb,
            source: Source::Pbl,
            shadowed: Default::default(),
        };
        // The old record's reference to the client's load-balance passes to the new one.
        self.fib_put(fi, p, own)?;
        self.fwd_dirty = true;
        self.publish();
        Ok(true)
    }

    /// Add a client on `addr` in table `table_id`: packets to it whose (protocol, destination
    /// port) is in `ranges` go along `path`, the others as the FIB had them. Returns its id.
    pub fn pbl_add(
        &mut self,
        table_id: u32,
        addr: IpAddr,
        path: &Path,
        ranges: Vec<(u8, u16, u16)>,
    ) -> Result<u32, FwdError> {
        self.pbl_add_at(None, table_id, addr, path, ranges)
    }

    /// [`Self::pbl_add`], under id `at` when given (a live restart keeps the ids the agent
    /// holds): that id must be free and the address without a client.
    pub fn pbl_add_at(
        &mut self,
        at: Option<u32>,
        table_id: u32,
        addr: IpAddr,
        path: &Path,
        ranges: Vec<(u8, u16, u16)>,
    ) -> Result<u32, FwdError> {
        let af = Af::of(&addr);
        if let Some(id) = at {
            // A bound on the vector a bad id could make.
            let taken = self.fwd.pbl.get(id as usize).is_some_and(|c| c.is_some());
            if taken || id > u32::from(u16::MAX) {
                return Err(FwdError::Invalid(format!("pbl client id {id} is taken")));
            }
        }
        let fi = self
            .fib_index(af, table_id)
            .ok_or(FwdError::NoSuchTable(table_id))?;
        let p = Prefix::host_of(addr);
        let path_adj = self.redirect_adj(af, path)?;
        if let (Some(id), Some(_)) = (at, self.pbl_at(af, fi, p)) {
            return Err(FwdError::Invalid(format!(
                "pbl client {id}: {addr} has a client"
            )));
        }
        if let Some(id) = self.pbl_at(af, fi, p) {
            // calico adds its pods' clients again after a restart: the one client there takes
            // the new path and ranges and keeps its id.
            if let Some(c) = self.fwd.pbl[id as usize].as_mut() {
                c.path_adj = path_adj;
                c.ranges = ranges;
            }
            self.fwd_dirty = true;
            self.publish();
            return Ok(id);
        }
        let id = match (at, self.fwd.pbl.iter().position(|c| c.is_none())) {
            (Some(i), _) => i as usize,
            (None, Some(i)) => i,
            (None, None) => self.fwd.pbl.len(),
        };
        if self.fwd.pbl.len() <= id {
            self.fwd.pbl.resize(id + 1, None);
        }
        let id = id as u32;
        let a = Adjacency {
            kind: AdjKind::Pbl,
            is_ip6: af.is_ip6(),
            lookup_fib: id,
            ..Default::default()
        };
        let pbl_adj = self.adj(AdjKey::Pbl { id, af }, a);
        let pbl_lb = self.lb_for(vec![pbl_adj]);
        // One reference for the client, one for the FIB entry's route record.
        self.lb_ref(pbl_lb);
        // The parent: the host route's forwarding (its reference moves to the client), else
        // what covers the address now.
        let existing = self.route_at(af, fi, p);
        let parent_lb = match &existing {
            Some(r) => r.lb,
            None => {
                let leaf = match p {
                    Prefix::V4(a, _) => self.ip4[fi as usize]
                        .as_ref()
                        .map(|t| t.writer.fib().lookup(a)),
                    Prefix::V6(a, _) => self.ip6[fi as usize]
                        .as_ref()
                        .map(|t| t.writer.fib().lookup(a)),
                }
                .filter(|&l| l < LEAF_MISS - 1)
                .unwrap_or(DROP_LB);
                self.lb_ref(leaf);
                leaf
            }
        };
        let addr_bits = match p {
            Prefix::V4(a, _) => a as u128,
            Prefix::V6(a, _) => a,
        };
        self.fwd.pbl[id as usize] = Some(PblClient {
            is_ip6: af.is_ip6(),
            fib: fi,
            addr: addr_bits,
            ranges,
            path_adj,
            parent_lb,
            pbl_lb,
        });
        self.fwd_dirty = true;
        // The client and its load-balance reach the workers before the entry names them.
        self.publish();
        self.barrier_for_new_lbs();
        let entry = match existing {
            Some(r) => Route { lb: pbl_lb, ..r },
            None => Route {
                paths: Vec::new(),
                lb: pbl_lb,
                source: Source::Pbl,
                shadowed: Default::default(),
            },
        };
        self.fib_put(fi, p, entry)?;
        self.publish();
        Ok(id)
    }

    /// Remove client `id`: the entry goes back to the route under it, or goes.
    pub fn pbl_del(&mut self, id: u32) -> Result<(), FwdError> {
        let c = self
            .fwd
            .pbl
            .get(id as usize)
            .cloned()
            .flatten()
            .ok_or(FwdError::NoSuchEntry)?;
        let af = if c.is_ip6 { Af::Ip6 } else { Af::Ip4 };
        let p = if c.is_ip6 {
            Prefix::V6(c.addr, 128)
        } else {
            Prefix::V4(c.addr as u32, 32)
        };
        match self.route_at(af, c.fib, p) {
            Some(r) if r.source == Source::Pbl => {
                let old = match p {
                    Prefix::V4(a, l) => self.ip4[c.fib as usize].as_mut().map(|t| t.remove(a, l)),
                    Prefix::V6(a, l) => self.ip6[c.fib as usize].as_mut().map(|t| t.remove(a, l)),
                };
                if let Some(Ok(old)) = old {
                    self.lb_release(old.lb);
                }
                self.lb_release(c.parent_lb);
            }
            Some(r) => {
                // The parent's reference passes back to the route.
                if let Some(old) = self.fib_put(
                    c.fib,
                    p,
                    Route {
                        lb: c.parent_lb,
                        ..r
                    },
                )? {
                    self.lb_release(old.lb);
                }
            }
            None => self.lb_release(c.parent_lb),
        }
        self.fwd.pbl[id as usize] = None;
        self.fwd_dirty = true;
        self.publish();
        self.lb_release(c.pbl_lb);
        Ok(())
    }

    /// Every client, by id, with the table id it is in.
    pub fn pbl_clients(&self) -> Vec<(u32, u32, PblClient)> {
        self.fwd
            .pbl
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let c = c.clone()?;
                let af = if c.is_ip6 { Af::Ip6 } else { Af::Ip4 };
                Some((i as u32, self.table_id_of(af, c.fib), c))
            })
            .collect()
    }
}
