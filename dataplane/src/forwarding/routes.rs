//! Routes: their paths, replace and multipath add, delete, and listing.

use super::{Af, Forwarding, FwdError, Prefix};
use crate::tables::DROP_ADJ;
use std::net::IpAddr;

/// What a route does with its packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PathKind {
    /// Forward via `next_hop` and/or `sw_if_index`.
    Normal,
    /// Deliver locally.
    Local,
    Drop,
    Unreachable,
    Prohibit,
    /// Look the destination up again in table `table_id` of the same family.
    Lookup(u32),
    /// Steer into SR policy `index` (H.Encaps; `srv6::Srv6::policies`).
    SrPolicy(u32),
    /// The SRv6 localsid `index` (a SID's /128).
    SrLocalsid(u32),
}

/// One path of a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Path {
    pub kind: PathKind,
    pub next_hop: Option<IpAddr>,
    pub sw_if_index: Option<u32>,
    pub weight: u8,
    /// VPP's path preference: of a route's paths, only those with the lowest preference
    /// among the usable ones forward (the others are backups). 0 is the best.
    pub preference: u8,
}

impl Path {
    pub fn via(next_hop: IpAddr, sw_if_index: Option<u32>) -> Self {
        Self {
            kind: PathKind::Normal,
            next_hop: Some(next_hop),
            sw_if_index,
            weight: 1,
            preference: 0,
        }
    }
    pub fn attached(sw_if_index: u32) -> Self {
        Self {
            kind: PathKind::Normal,
            next_hop: None,
            sw_if_index: Some(sw_if_index),
            weight: 1,
            preference: 0,
        }
    }
    /// Continue the lookup in another table (calico: a pod VRF's default route).
    pub fn lookup(table_id: u32) -> Self {
        Self {
            kind: PathKind::Lookup(table_id),
            next_hop: None,
            sw_if_index: None,
            weight: 1,
            preference: 0,
        }
    }
    pub fn special(kind: PathKind) -> Self {
        Self {
            kind,
            next_hop: None,
            sw_if_index: None,
            weight: 1,
            preference: 0,
        }
    }
}

/// Where a route came from: connected and host routes are owned by interfaces and neighbours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Api,
    Interface,
    AdjFib,
    /// A host entry a PBL client made where no route was (`forwarding/pbl.rs`).
    Pbl,
}

/// [`Forwarding::fib_memory`]: `show ip fib memory`, and the soak's FIB sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FibMemory {
    /// What workers read: touched tbl24 pages and tbl8 groups ever used.
    pub ip4_table_bytes: usize,
    /// The writer's side: per-entry prefix lengths and the route sets.
    pub ip4_writer_bytes: usize,
    pub ip4_routes: usize,
    pub ip6_routes: usize,
}

#[derive(Clone, Debug)]
pub struct Route {
    pub paths: Vec<Path>,
    pub lb: u32,
    pub source: Source,
}

impl Forwarding {
    /// Add or replace a route (replace semantics: the paths given are the route's paths).
    pub fn route_add(
        &mut self,
        table_id: u32,
        p: Prefix,
        paths: Vec<Path>,
    ) -> Result<(), FwdError> {
        self.route_set(table_id, p, paths, Source::Api)?;
        self.publish();
        Ok(())
    }

    /// Add paths to a route (multipath add).
    pub fn route_add_paths(
        &mut self,
        table_id: u32,
        p: Prefix,
        paths: Vec<Path>,
    ) -> Result<(), FwdError> {
        let mut all = self
            .route_get(table_id, p)
            .map(|r| r.paths)
            .unwrap_or_default();
        for x in paths {
            if !all.contains(&x) {
                all.push(x);
            }
        }
        self.route_add(table_id, p, all)
    }

    pub(super) fn route_set(
        &mut self,
        table_id: u32,
        p: Prefix,
        paths: Vec<Path>,
        source: Source,
    ) -> Result<(), FwdError> {
        let p = p.masked();
        let af = p.af();
        let fi = self
            .fib_index(af, table_id)
            .ok_or(FwdError::NoSuchTable(table_id))?;
        for path in &paths {
            if let PathKind::Lookup(t) = path.kind {
                self.fib_index(af, t).ok_or(FwdError::NoSuchTable(t))?;
            }
        }
        // As VPP's FIB: the paths of the best (lowest) preference that has a usable path
        // forward; the rest wait as backups. Usable: it resolves to something other than a
        // drop (or it is a drop path). With none usable, the best preference drops.
        let resolved: Vec<Vec<u32>> = paths
            .iter()
            .map(|path| self.path_adjs(af, fi, path))
            .collect();
        let usable = |(path, a): &(&Path, &Vec<u32>)| {
            path.kind == PathKind::Drop || a.iter().any(|&x| x != DROP_ADJ)
        };
        let both = || paths.iter().zip(resolved.iter());
        let best = both()
            .filter(usable)
            .map(|(path, _)| path.preference)
            .min()
            .or_else(|| paths.iter().map(|path| path.preference).min());
        let mut adjs = Vec::new();
        for (path, a) in both().filter(|(path, _)| Some(path.preference) == best) {
            for _ in 0..path.weight.max(1) {
                adjs.extend_from_slice(a);
            }
        }
        let lb = self.lb_for(adjs);
        self.barrier_for_new_lbs();
        // Under a PBL client the route's forwarding becomes the client's parent.
        let lb = self.pbl_route_set(af, fi, p, lb);
        let route = Route { paths, lb, source };
        let set = match p {
            Prefix::V4(a, l) => self.ip4[fi as usize].as_mut().map(|t| t.set(a, l, route)),
            Prefix::V6(a, l) => self.ip6[fi as usize].as_mut().map(|t| t.set(a, l, route)),
        };
        match set.ok_or(FwdError::NoSuchTable(table_id))? {
            Ok(Some(old)) => self.lb_release(old.lb),
            Ok(None) => {}
            Err(e) => {
                self.lb_release(lb);
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Delete a route of table `table_id` (of the prefix's family).
    pub fn route_del(&mut self, table_id: u32, p: Prefix) -> Result<(), FwdError> {
        let p = p.masked();
        let fi = self
            .fib_index(p.af(), table_id)
            .ok_or(FwdError::NoSuchTable(table_id))?;
        if self.pbl_route_del(p.af(), fi, p)? {
            return Ok(());
        }
        let old = match p {
            Prefix::V4(a, l) => self.ip4[fi as usize].as_mut().map(|t| t.remove(a, l)),
            Prefix::V6(a, l) => self.ip6[fi as usize].as_mut().map(|t| t.remove(a, l)),
        };
        let old = old.ok_or(FwdError::NoSuchTable(table_id))??;
        self.lb_release(old.lb);
        if old.source != Source::AdjFib {
            self.restore_neighbour_host(fi, p)?;
        }
        self.publish();
        Ok(())
    }

    /// A route just deleted at host prefix `p` of FIB `fi` may have stood over a neighbour's own
    /// host entry (a neighbour adds one only where no route is): put that back, so the
    /// neighbour stays reached directly. VPP keeps both by source, the adjacency's below the
    /// API's, and deleting the API's leaves it.
    fn restore_neighbour_host(&mut self, fi: u32, p: Prefix) -> Result<(), FwdError> {
        if p.prefix_len() != p.max_len() {
            return Ok(());
        }
        let (af, ip) = match p {
            Prefix::V4(a, _) => (Af::Ip4, IpAddr::from(std::net::Ipv4Addr::from(a))),
            Prefix::V6(a, _) => (Af::Ip6, IpAddr::from(std::net::Ipv6Addr::from(a))),
        };
        // Each interface of the FIB asked once: interfaces are few, neighbours may be many.
        let nbr = self.ifs.ifs.iter().flatten().find(|i| {
            super::fib_of(i, af) == fi && self.neighbors.contains_key(&(i.sw_if_index, ip))
        });
        let Some(sw) = nbr.map(|i| i.sw_if_index) else {
            return Ok(());
        };
        let t = self.table_id_of(af, fi);
        self.route_set(t, p, vec![Path::via(ip, Some(sw))], Source::AdjFib)
    }

    pub fn route_get(&self, table_id: u32, p: Prefix) -> Option<Route> {
        let p = p.masked();
        let fi = self.fib_index(p.af(), table_id)? as usize;
        match p {
            Prefix::V4(a, l) => self.ip4.get(fi)?.as_ref()?.routes.get(&(a, l)).cloned(),
            Prefix::V6(a, l) => self.ip6.get(fi)?.as_ref()?.routes.get(&(a, l)).cloned(),
        }
    }

    /// What the IPv4 FIBs hold, summed over every table, and the route count of each family.
    pub fn fib_memory(&self) -> FibMemory {
        let mut m = FibMemory::default();
        for t in self.ip4.iter().flatten() {
            let mem = t.writer.memory();
            m.ip4_table_bytes += mem.table_bytes;
            m.ip4_writer_bytes += mem.writer_bytes;
            m.ip4_routes += t.routes.len();
        }
        m.ip6_routes = self.ip6.iter().flatten().map(|t| t.routes.len()).sum();
        m
    }

    /// Every route of a table, in prefix order.
    pub fn routes(&self, af: Af, table_id: u32) -> Vec<(Prefix, Route)> {
        let Some(fi) = self.fib_index(af, table_id) else {
            return vec![];
        };
        let fi = fi as usize;
        let routes = match af {
            Af::Ip4 => self.ip4[fi].as_ref().map(|t| t.listed(Prefix::V4)),
            Af::Ip6 => self.ip6[fi].as_ref().map(|t| t.listed(Prefix::V6)),
        };
        routes.unwrap_or_default()
    }
}

impl Forwarding {
    /// Replace the multicast routes (sorted here, longest group prefix first).
    pub fn set_mroutes(&mut self, mut m: Vec<crate::tables::Mroute>) {
        m.sort_by_key(|r| std::cmp::Reverse(r.len));
        self.fwd.mroutes = m;
        self.fwd_dirty = true;
        self.publish();
    }
}
