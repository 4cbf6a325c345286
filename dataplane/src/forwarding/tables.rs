//! VRFs: the IPv4 and IPv6 tables, by table id and fib index.

use super::{fib_of, AdjKey, Af, Forwarding, FwdError, Prefix, Route, Source};
use crate::fib::{FibError, Ip4FibWriter, Ip6FibWriter};
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

/// One VRF of one family: its FIB's writer and the routes it holds, by (address, length).
pub(super) struct Table<W, A> {
    pub(super) table_id: u32,
    pub(super) name: String,
    pub(super) writer: W,
    pub(super) routes: BTreeMap<(A, u8), Route>,
}

pub(super) type Ip4Table = Table<Ip4FibWriter, u32>;
pub(super) type Ip6Table = Table<Ip6FibWriter, u128>;

/// What a table needs of its family's FIB writer.
pub(super) trait FibWrite<A> {
    fn add(&mut self, prefix: A, len: u8, leaf: u32) -> Result<Option<u32>, FibError>;
    fn delete(&mut self, prefix: A, len: u8) -> Result<Option<u32>, FibError>;
}

impl FibWrite<u32> for Ip4FibWriter {
    fn add(&mut self, prefix: u32, len: u8, leaf: u32) -> Result<Option<u32>, FibError> {
        Ip4FibWriter::add(self, prefix, len, leaf)
    }
    fn delete(&mut self, prefix: u32, len: u8) -> Result<Option<u32>, FibError> {
        Ip4FibWriter::delete(self, prefix, len)
    }
}

impl FibWrite<u128> for Ip6FibWriter {
    fn add(&mut self, prefix: u128, len: u8, leaf: u32) -> Result<Option<u32>, FibError> {
        Ip6FibWriter::add(self, prefix, len, leaf)
    }
    fn delete(&mut self, prefix: u128, len: u8) -> Result<Option<u32>, FibError> {
        Ip6FibWriter::delete(self, prefix, len)
    }
}

impl<W: FibWrite<A>, A: Ord + Copy> Table<W, A> {
    fn new(table_id: u32, name: String, writer: W) -> Self {
        Self {
            table_id,
            name,
            writer,
            routes: BTreeMap::new(),
        }
    }

    /// Point the FIB's leaf for the prefix at `route`'s load-balance and keep the route.
    /// Returns the route it replaced.
    pub(super) fn set(&mut self, a: A, l: u8, route: Route) -> Result<Option<Route>, FibError> {
        self.writer.add(a, l, route.lb)?;
        Ok(self.routes.insert((a, l), route))
    }

    /// Set `route` where no other source's route is (nothing there, or only the same
    /// source's): one search of the map, as before routes had sources. Otherwise
    /// `Alone::Shared` gives the route back, untouched, for the general path.
    pub(super) fn set_alone(&mut self, a: A, l: u8, route: Route) -> Result<Alone, FibError> {
        match self.routes.entry((a, l)) {
            Entry::Vacant(v) => {
                self.writer.add(a, l, route.lb)?;
                v.insert(route);
                Ok(Alone::Done(None))
            }
            Entry::Occupied(mut o) if alone(o.get(), route.source) => {
                self.writer.add(a, l, route.lb)?;
                Ok(Alone::Done(Some(o.insert(route))))
            }
            Entry::Occupied(_) => Ok(Alone::Shared(route)),
        }
    }

    /// Remove the prefix when `source`'s route is all it holds (one search); None otherwise.
    pub(super) fn remove_alone(
        &mut self,
        a: A,
        l: u8,
        source: Source,
    ) -> Result<Option<Route>, FibError> {
        match self.routes.entry((a, l)) {
            Entry::Occupied(o) if alone(o.get(), source) => {
                self.writer.delete(a, l)?;
                Ok(Some(o.remove()))
            }
            _ => Ok(None),
        }
    }

    /// Take the prefix out of the FIB; returns its route.
    pub(super) fn remove(&mut self, a: A, l: u8) -> Result<Route, FwdError> {
        let r = self.routes.remove(&(a, l)).ok_or(FwdError::NoSuchEntry)?;
        self.writer.delete(a, l)?;
        Ok(r)
    }

    /// Every route, in prefix order, as `prefix` (`Prefix::V4` or `Prefix::V6`) makes them.
    pub(super) fn listed(&self, prefix: fn(A, u8) -> Prefix) -> Vec<(Prefix, Route)> {
        self.routes
            .iter()
            .map(|(k, r)| (prefix(k.0, k.1), r.clone()))
            .collect()
    }
}

/// What [`Table::set_alone`] did: set (returning the route it replaced), or found other
/// sources there.
pub(super) enum Alone {
    Done(Option<Route>),
    Shared(Route),
}

/// The prefix holds `source`'s route and nothing waits under it.
fn alone(r: &Route, source: Source) -> bool {
    r.source == source && r.shadowed.is_empty()
}

/// The fib index of `table_id` among a family's table slots.
fn index_of<W, A>(slots: &[Option<Table<W, A>>], table_id: u32) -> Option<u32> {
    slots
        .iter()
        .position(|t| t.as_ref().is_some_and(|t| t.table_id == table_id))
        .map(|i| i as u32)
}

/// The table id at a fib index (0 for a free or unknown slot).
fn id_at<W, A>(slots: &[Option<Table<W, A>>], fib_index: u32) -> u32 {
    slots
        .get(fib_index as usize)
        .and_then(|t| t.as_ref())
        .map_or(0, |t| t.table_id)
}

/// Put `t` in the first free slot; returns its fib index.
fn put<T>(slots: &mut Vec<Option<T>>, t: T) -> usize {
    let slot = slots
        .iter()
        .position(|t| t.is_none())
        .unwrap_or(slots.len());
    if slot == slots.len() {
        slots.push(None);
    }
    slots[slot] = Some(t);
    slot
}

fn rename<W, A>(slots: &mut [Option<Table<W, A>>], fib_index: u32, name: &str) {
    if let Some(t) = slots[fib_index as usize].as_mut() {
        t.name = name.into();
    }
}

/// (table_id, name) of every table in a family's slots.
fn list<W, A>(slots: &[Option<Table<W, A>>]) -> Vec<(u32, String)> {
    slots
        .iter()
        .flatten()
        .map(|t| (t.table_id, t.name.clone()))
        .collect()
}

fn count<W, A>(slots: &[Option<Table<W, A>>]) -> usize {
    slots.iter().flatten().map(|t| t.routes.len()).sum()
}

impl Forwarding {
    /// The fib index of a table id.
    pub fn fib_index(&self, af: Af, table_id: u32) -> Option<u32> {
        match af {
            Af::Ip4 => index_of(&self.ip4, table_id),
            Af::Ip6 => index_of(&self.ip6, table_id),
        }
    }

    /// The table id of a fib index.
    pub fn table_id_of(&self, af: Af, fib_index: u32) -> u32 {
        match af {
            Af::Ip4 => id_at(&self.ip4, fib_index),
            Af::Ip6 => id_at(&self.ip6, fib_index),
        }
    }

    /// Create a table (idempotent; a new name replaces the old).
    pub fn table_add(&mut self, af: Af, table_id: u32, name: &str) -> Result<u32, FwdError> {
        if let Some(fi) = self.fib_index(af, table_id) {
            if !name.is_empty() {
                match af {
                    Af::Ip4 => rename(&mut self.ip4, fi, name),
                    Af::Ip6 => rename(&mut self.ip6, fi, name),
                }
            }
            return Ok(fi);
        }
        let gp = self.shared.grace.clone();
        let name = if name.is_empty() {
            format!("{}-VRF:{table_id}", af.name())
        } else {
            name.to_string()
        };
        let fi = match af {
            Af::Ip6 => put(
                &mut self.ip6,
                Table::new(table_id, name, Ip6FibWriter::new(gp)),
            ),
            Af::Ip4 => {
                let mut cfg = self.fib4_config.clone();
                if table_id != 0 {
                    // VRFs other than the default are usually small (Calico pod VRFs): few tbl8
                    // groups, and 4 KiB pages so a handful of routes commits kilobytes, not 2 MiB
                    // pages (or 128 MiB of reserved hugetlb pages) per VRF.
                    cfg.tbl8_groups = cfg.tbl8_groups.min(1 << 12);
                    cfg.huge_pages = false;
                }
                let writer = Ip4FibWriter::new(cfg, gp)?;
                put(&mut self.ip4, Table::new(table_id, name, writer))
            }
        };
        self.publish_fibs();
        Ok(fi as u32)
    }

    pub fn table_del(&mut self, af: Af, table_id: u32) -> Result<(), FwdError> {
        if table_id == 0 {
            return Err(FwdError::Invalid("table 0 cannot be deleted".into()));
        }
        let fi = self
            .fib_index(af, table_id)
            .ok_or(FwdError::NoSuchTable(table_id))?;
        let in_use = self.ifs.ifs.iter().flatten().any(|i| fib_of(i, af) == fi);
        // Routes or punt redirects elsewhere that continue their lookup in this table.
        let lookup_adj = self.adj_index.get(&AdjKey::Lookup { fib: fi, af }).copied();
        let looked_into = lookup_adj.is_some_and(|a| {
            self.lb_index.keys().any(|buckets| buckets.contains(&a))
                || self
                    .fwd
                    .punt4
                    .iter()
                    .chain(&self.fwd.punt6)
                    .any(|p| p.adj == a)
        });
        // A PBL client in it (calico deletes its clients before their VRF).
        let pbl = self
            .fwd
            .pbl
            .iter()
            .flatten()
            .any(|c| c.fib == fi && c.is_ip6 == af.is_ip6());
        if in_use || looked_into || pbl {
            return Err(FwdError::TableInUse);
        }
        // Every source of every prefix, the forwarding one last so nothing is reinstalled.
        for (p, r) in self.routes(af, table_id) {
            for (s, _) in r.shadowed.as_slice() {
                let _ = self.route_del_source(table_id, p, *s);
            }
            let _ = self.route_del_source(table_id, p, r.source);
        }
        match af {
            Af::Ip4 => self.ip4[fi as usize] = None,
            Af::Ip6 => self.ip6[fi as usize] = None,
        }
        self.publish_fibs();
        Ok(())
    }

    /// (table_id, name) of every table of a family.
    pub fn tables(&self, af: Af) -> Vec<(u32, String)> {
        match af {
            Af::Ip4 => list(&self.ip4),
            Af::Ip6 => list(&self.ip6),
        }
    }

    /// How many routes the tables of a family hold.
    pub fn route_count(&self, af: Af) -> usize {
        match af {
            Af::Ip4 => count(&self.ip4),
            Af::Ip6 => count(&self.ip6),
        }
    }
}
