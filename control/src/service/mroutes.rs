//! Multicast routes (`ip_mroute_add_del`): what calico programs is kept here as configured and
//! compiled into the dataplane's `Mroute` list, which relays a group received on an accepting
//! interface out of a forwarding one, or sends the search on to another table.
//! Not modelled: the "for us" paths VPP's default entries carry (rvpp's own groups go to
//! ip6-local before any route is looked at, and are then not relayed as well), entry flags,
//! RPF ids and source-specific (S,G) routes (refused).

use super::{lock, rv, tables, SvcError, SvcResult};
use crate::daemon::Dataplane;
use rvpp_dataplane::forwarding::Af;
use rvpp_dataplane::tables::Mroute;
use std::collections::BTreeMap;

/// One path: out of (or into) an interface, or a lookup in another table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MPath {
    pub sw: Option<u32>,
    pub lookup: Option<u32>,
    pub accept: bool,
    pub forward: bool,
}

impl MPath {
    fn same_target(&self, o: &MPath) -> bool {
        self.sw == o.sw && self.lookup == o.lookup
    }
}

/// (family, table id, group, length) -> paths.
pub type Mroutes = BTreeMap<(Af, u32, u128, u8), Vec<MPath>>;

/// Add paths to (or with `add` false remove them from; none: the whole entry) the route for
/// `group/len` in table `table`. Adding a path that is there updates its flags, as VPP's.
pub fn update(
    dp: &Dataplane,
    af: Af,
    table: u32,
    group: u128,
    len: u8,
    paths: Vec<MPath>,
    add: bool,
) -> SvcResult<()> {
    let max = if af == Af::Ip6 { 128 } else { 32 };
    if len > max {
        return Err(SvcError::new(
            rv::INVALID_VALUE,
            format!("group length {len}"),
        ));
    }
    let mut all = lock(&dp.svc.mroutes);
    {
        let f = dp.fwd();
        if f.fib_index(af, table).is_none() {
            return Err(SvcError::new(rv::NO_SUCH_FIB, format!("no table {table}")));
        }
        for p in &paths {
            if let Some(s) = p.sw {
                f.iface(s)?;
            }
            if let Some(t) = p.lookup.filter(|&t| f.fib_index(af, t).is_none()) {
                return Err(SvcError::new(rv::NO_SUCH_FIB, format!("no table {t}")));
            }
        }
    }
    let key = (af, table, group, len);
    let entry = all.entry(key).or_default();
    if add {
        for p in paths {
            match entry.iter_mut().find(|e| e.same_target(&p)) {
                Some(e) => *e = p,
                None => entry.push(p),
            }
        }
    } else if paths.is_empty() {
        entry.clear();
    } else {
        entry.retain(|e| !paths.iter().any(|p| p.same_target(e)));
    }
    if entry.is_empty() {
        all.remove(&key);
    }
    compile(dp, &all);
    drop(all);
    tables::reap(dp);
    Ok(())
}

/// Publish `all` to the dataplane, tables resolved to fib indices.
fn compile(dp: &Dataplane, all: &Mroutes) {
    let mut f = dp.fwd();
    let list = all
        .iter()
        .filter_map(|(&(af, table, group, len), paths)| {
            let fib = f.fib_index(af, table)?;
            let ifs = |want: fn(&MPath) -> bool| {
                paths
                    .iter()
                    .filter(|p| want(p))
                    .filter_map(|p| p.sw)
                    .collect()
            };
            Some(Mroute {
                is_ip6: af == Af::Ip6,
                fib,
                group,
                len,
                accept: ifs(|p| p.accept),
                forward: ifs(|p| p.forward),
                lookup: paths
                    .iter()
                    .find_map(|p| p.lookup)
                    .and_then(|t| f.fib_index(af, t)),
            })
        })
        .collect();
    f.set_mroutes(list);
}

/// Every route, as configured.
pub fn list(dp: &Dataplane) -> Mroutes {
    lock(&dp.svc.mroutes).clone()
}

/// A route is in table `t` of `af` or looks up in it (the table is kept while one does).
pub fn uses_table(dp: &Dataplane, af: Af, t: u32) -> bool {
    lock(&dp.svc.mroutes)
        .iter()
        .any(|(k, paths)| k.0 == af && (k.1 == t || paths.iter().any(|p| p.lookup == Some(t))))
}

/// Interface `sw` was deleted: its paths go (and routes left without any).
pub fn interface_gone(dp: &Dataplane, sw: u32) {
    let mut all = lock(&dp.svc.mroutes);
    for paths in all.values_mut() {
        paths.retain(|p| p.sw != Some(sw));
    }
    all.retain(|_, p| !p.is_empty());
    compile(dp, &all);
}
