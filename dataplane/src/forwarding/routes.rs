//! Routes: their paths, replace and multipath add, delete, and listing.
//!
//! As VPP's FIB, a prefix keeps what each source gave it: the best source present forwards,
//! the others wait in [`Route::shadowed`] and the next best takes over when it goes. So an API
//! route cannot replace an interface's local or connected route, a neighbour's host route
//! under an API /32 comes back when the API route is deleted, and an API route under SR
//! steering forwards again when the steering goes.

use super::tables::Alone;
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
    /// SRv6's routes: localsid and BSID /128s, steered prefixes. VPP's SR source: below the
    /// interface's, above the API's (fib_source.h: interface 0x03, SR 0x10, API 0x80).
    Sr,
    /// An interface address: its connected (attached) subnet and its local /32 or /128. The two
    /// never share a prefix (a connected subnet is always shorter than a host prefix).
    Interface,
    /// A neighbour's host route (VPP's adjacency source).
    AdjFib,
    /// A host entry a PBL client made where no route was (`forwarding/pbl.rs`): a placeholder
    /// with no paths, which any other source replaces and which is never shadowed.
    Pbl,
}

impl Source {
    /// VPP's source priority, lower is better: interface over SR over API over adjacency.
    fn rank(self) -> u8 {
        match self {
            Source::Interface => 0,
            Source::Sr => 1,
            Source::Api => 2,
            Source::AdjFib => 3,
            Source::Pbl => 4,
        }
    }

    /// The name `show ip fib` gives it (VPP's, where VPP has the source).
    pub fn name(self) -> &'static str {
        match self {
            Source::Interface => "interface",
            Source::Sr => "SR",
            Source::Api => "API",
            Source::AdjFib => "adjacency",
            Source::Pbl => "pbl",
        }
    }
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

/// A prefix's FIB entry: the best source's paths and their load-balance, and what the other
/// sources gave it.
#[derive(Clone, Debug)]
pub struct Route {
    pub paths: Vec<Path>,
    pub lb: u32,
    pub source: Source,
    /// The paths of the sources below `source`, best first.
    pub shadowed: Shadowed,
}

impl Route {
    /// The paths source `s` gave this prefix, whether they forward or wait.
    pub fn paths_of(&self, s: Source) -> Option<&[Path]> {
        if self.source == s {
            return Some(&self.paths);
        }
        self.shadowed
            .as_slice()
            .iter()
            .find(|x| x.0 == s)
            .map(|x| x.1.as_slice())
    }
}

/// What the sources below a prefix's forwarding one gave it, best first. Boxed, and nothing
/// when empty: most prefixes have one source, and small records keep the table's map cheap
/// to insert into and remove from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
// One pointer in the record, not a Vec's three words: the box is the point.
#[allow(clippy::box_collection)]
pub struct Shadowed(Option<Box<Vec<SourcePaths>>>);

/// One source's paths for a prefix.
pub type SourcePaths = (Source, Vec<Path>);

impl Shadowed {
    pub fn as_slice(&self) -> &[SourcePaths] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Put source `s`'s paths in, replacing its old ones, keeping best first.
    fn put(&mut self, s: Source, paths: Vec<Path>) {
        let v = self.0.get_or_insert_with(Box::default);
        v.retain(|x| x.0 != s);
        let at = v
            .iter()
            .position(|x| x.0.rank() > s.rank())
            .unwrap_or(v.len());
        v.insert(at, (s, paths));
    }

    /// Take source `s`'s paths out; false when it had none here.
    fn remove(&mut self, s: Source) -> bool {
        let Some(v) = self.0.as_mut() else {
            return false;
        };
        let before = v.len();
        v.retain(|x| x.0 != s);
        let removed = v.len() != before;
        if v.is_empty() {
            self.0 = None;
        }
        removed
    }

    /// Take the best source's paths out.
    fn take_best(&mut self) -> Option<SourcePaths> {
        let v = self.0.as_mut()?;
        let best = v.remove(0);
        if v.is_empty() {
            self.0 = None;
        }
        Some(best)
    }
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
            .and_then(|r| r.paths_of(Source::Api).map(<[Path]>::to_vec))
            .unwrap_or_default();
        for x in paths {
            if !all.contains(&x) {
                all.push(x);
            }
        }
        self.route_add(table_id, p, all)
    }

    /// Set the SR source's paths for `p` (replacing its old ones): they forward unless an
    /// interface's route holds the prefix, and what forwarded waits below them.
    pub fn route_add_sr(
        &mut self,
        table_id: u32,
        p: Prefix,
        paths: Vec<Path>,
    ) -> Result<(), FwdError> {
        self.route_set(table_id, p, paths, Source::Sr)?;
        self.publish();
        Ok(())
    }

    /// Remove the SR source's paths for `p`: the next best source forwards again.
    pub fn route_del_sr(&mut self, table_id: u32, p: Prefix) -> Result<(), FwdError> {
        self.route_del_source(table_id, p, Source::Sr)
    }

    /// Set source `source`'s paths for `p`. Under a better source they wait (shadowed);
    /// otherwise they forward, and what forwarded before waits below them.
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
        // The common case first, an API route (the ones that come by the thousand) where no
        // other source is and no PBL client: its load-balance is made before the one search
        // of the map. Other sources look first, so that paths which will only wait under a
        // better source make no load-balance (and no grace period for it).
        let (paths, lb) = match source == Source::Api && self.pbl_at(af, fi, p).is_none() {
            false => (paths, None),
            true => {
                let lb = self.route_lb(af, fi, &paths);
                let route = Route {
                    paths,
                    lb,
                    source,
                    shadowed: Shadowed::default(),
                };
                let set = match p {
                    Prefix::V4(a, l) => self.ip4[fi as usize]
                        .as_mut()
                        .map(|t| t.set_alone(a, l, route)),
                    Prefix::V6(a, l) => self.ip6[fi as usize]
                        .as_mut()
                        .map(|t| t.set_alone(a, l, route)),
                };
                match set.ok_or(FwdError::NoSuchTable(table_id))? {
                    Ok(Alone::Done(old)) => {
                        if let Some(old) = old {
                            self.lb_release(old.lb);
                        }
                        return Ok(());
                    }
                    Ok(Alone::Shared(route)) => (route.paths, Some(lb)),
                    Err(e) => {
                        self.lb_release(lb);
                        return Err(e.into());
                    }
                }
            }
        };
        let shadowed = match self.route_at_mut(fi, p) {
            None => Shadowed::default(),
            Some(r) if r.source == source => r.shadowed.clone(),
            // A PBL placeholder holds no paths: the route replaces it.
            Some(r) if r.source == Source::Pbl => Shadowed::default(),
            Some(r) if r.source.rank() < source.rank() => {
                r.shadowed.put(source, paths);
                if let Some(lb) = lb {
                    self.lb_release(lb);
                }
                return Ok(());
            }
            Some(r) => {
                let mut below = r.shadowed.clone();
                below.put(r.source, r.paths.clone());
                below
            }
        };
        let lb = match lb {
            Some(lb) => lb,
            None => self.route_lb(af, fi, &paths),
        };
        self.route_install(fi, p, paths, lb, source, shadowed)
    }

    /// The load-balance `paths` forward by in fib `fi`, visible to the workers.
    fn route_lb(&mut self, af: Af, fi: u32, paths: &[Path]) -> u32 {
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
        lb
    }

    /// Make `paths` of `source` (forwarding by `lb`, whose reference passes to the route) what
    /// `p` forwards by in fib `fi`, with `shadowed` below them.
    fn route_install(
        &mut self,
        fi: u32,
        p: Prefix,
        paths: Vec<Path>,
        lb: u32,
        source: Source,
        shadowed: Shadowed,
    ) -> Result<(), FwdError> {
        // Under a PBL client the route's forwarding becomes the client's parent.
        let lb = self.pbl_route_set(p.af(), fi, p, lb);
        let route = Route {
            paths,
            lb,
            source,
            shadowed,
        };
        let set = match p {
            Prefix::V4(a, l) => self.ip4[fi as usize].as_mut().map(|t| t.set(a, l, route)),
            Prefix::V6(a, l) => self.ip6[fi as usize].as_mut().map(|t| t.set(a, l, route)),
        };
        match set.ok_or(FwdError::NoSuchTable(fi))? {
            Ok(Some(old)) => self.lb_release(old.lb),
            Ok(None) => {}
            Err(e) => {
                self.lb_release(lb);
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Delete the API route of `p` in table `table_id` (of the prefix's family); what another
    /// source gave the prefix stays or takes over.
    pub fn route_del(&mut self, table_id: u32, p: Prefix) -> Result<(), FwdError> {
        self.route_del_source(table_id, p, Source::Api)
    }

    /// Delete what `source` gave `p`: the next best source forwards, or with none the prefix
    /// goes (under a PBL client it stays, as the client's).
    pub(super) fn route_del_source(
        &mut self,
        table_id: u32,
        p: Prefix,
        source: Source,
    ) -> Result<(), FwdError> {
        let p = p.masked();
        let fi = self
            .fib_index(p.af(), table_id)
            .ok_or(FwdError::NoSuchTable(table_id))?;
        // The common case first: the prefix holds only this source's route, no PBL client.
        if self.pbl_at(p.af(), fi, p).is_none() {
            let removed = match p {
                Prefix::V4(a, l) => self.ip4[fi as usize]
                    .as_mut()
                    .map(|t| t.remove_alone(a, l, source)),
                Prefix::V6(a, l) => self.ip6[fi as usize]
                    .as_mut()
                    .map(|t| t.remove_alone(a, l, source)),
            };
            if let Some(old) = removed.ok_or(FwdError::NoSuchTable(table_id))?? {
                self.lb_release(old.lb);
                self.publish();
                return Ok(());
            }
        }
        let r = self.route_at_mut(fi, p).ok_or(FwdError::NoSuchEntry)?;
        if r.source != source {
            return match r.shadowed.remove(source) {
                true => Ok(()),
                false => Err(FwdError::NoSuchEntry),
            };
        }
        let mut below = r.shadowed.clone();
        if let Some((next, paths)) = below.take_best() {
            let lb = self.route_lb(p.af(), fi, &paths);
            self.route_install(fi, p, paths, lb, next, below)?;
            self.publish();
            return Ok(());
        }
        if self.pbl_route_del(p.af(), fi, p)? {
            return Ok(());
        }
        let old = match p {
            Prefix::V4(a, l) => self.ip4[fi as usize].as_mut().map(|t| t.remove(a, l)),
            Prefix::V6(a, l) => self.ip6[fi as usize].as_mut().map(|t| t.remove(a, l)),
        };
        let old = old.ok_or(FwdError::NoSuchTable(table_id))??;
        self.lb_release(old.lb);
        self.publish();
        Ok(())
    }

    /// The route record of `p` in fib `fi`, to edit what waits under it.
    fn route_at_mut(&mut self, fi: u32, p: Prefix) -> Option<&mut Route> {
        match p {
            Prefix::V4(a, l) => self
                .ip4
                .get_mut(fi as usize)?
                .as_mut()?
                .routes
                .get_mut(&(a, l)),
            Prefix::V6(a, l) => self
                .ip6
                .get_mut(fi as usize)?
                .as_mut()?
                .routes
                .get_mut(&(a, l)),
        }
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
