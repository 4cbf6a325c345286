//! Routes the front ends add and delete (source API, VPP's `FIB_SOURCE_API`; what interfaces'
//! addresses and neighbours install is theirs). `ip_route_add_del` and `ip route add|del`.

use super::{rv, tables, SvcError, SvcResult};
use crate::daemon::Dataplane;
use rvpp_dataplane::forwarding::{Af, Forwarding, Path, PathKind, Prefix, Route, Source};

/// What a change does to the route's paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Replace the route's paths with these.
    Set,
    /// Add these paths to the route (creating it).
    AddPaths,
    /// Remove the whole route, whatever paths are given.
    Delete,
    /// Remove these paths; the route goes with its last one.
    DeletePaths,
}

/// Apply `change` to route `p` in table `table`. A delete of a route that is not there (or
/// not a front end's) is no error, as VPP's.
pub fn change(
    dp: &Dataplane,
    table: u32,
    p: Prefix,
    paths: Vec<Path>,
    change: Change,
) -> SvcResult<()> {
    let p = p.masked();
    let r = {
        let mut f = dp.fwd();
        apply(&mut f, table, p, paths, change)
    };
    tables::reap(dp);
    r
}

fn apply(f: &mut Forwarding, t: u32, p: Prefix, paths: Vec<Path>, change: Change) -> SvcResult<()> {
    if f.fib_index(p.af(), t).is_none() {
        return Err(SvcError::new(rv::NO_SUCH_FIB, format!("no table {t}")));
    }
    if matches!(change, Change::Set | Change::AddPaths) {
        if paths.is_empty() {
            return Err(SvcError::new(
                rv::NO_PATHS_IN_ROUTE,
                "a route needs a path (via, drop, local)",
            ));
        }
        for x in &paths {
            match (x.kind, x.sw_if_index) {
                (_, Some(s)) => {
                    f.iface(s)?;
                }
                (PathKind::Lookup(lt), _) if f.fib_index(p.af(), lt).is_none() => {
                    return Err(SvcError::new(rv::NO_SUCH_FIB, format!("no table {lt}")))
                }
                _ => {}
            }
        }
    }
    // The API's own paths, whether they forward or wait under an interface's route.
    let ours = |f: &Forwarding| {
        f.route_get(t, p)
            .and_then(|r| r.paths_of(Source::Api).map(<[Path]>::to_vec))
    };
    let r = match change {
        Change::Set => f.route_add(t, p, paths),
        Change::AddPaths => f.route_add_paths(t, p, paths),
        Change::Delete => {
            if ours(f).is_some() {
                let _ = f.route_del(t, p);
            }
            Ok(())
        }
        Change::DeletePaths => match ours(f) {
            Some(cur) => {
                let left: Vec<Path> = cur
                    .iter()
                    .filter(|x| !paths.iter().any(|g| same_path(g, x)))
                    .copied()
                    .collect();
                if left.is_empty() {
                    f.route_del(t, p)
                } else if left.len() != cur.len() {
                    f.route_add(t, p, left)
                } else {
                    Ok(())
                }
            }
            None => Ok(()),
        },
    };
    Ok(r?)
}

fn same_path(a: &Path, b: &Path) -> bool {
    a.kind == b.kind && a.next_hop == b.next_hop && a.sw_if_index == b.sw_if_index
}

/// The routes of table `table` of `af` (every source), or None without such a table.
pub fn list(dp: &Dataplane, af: Af, table: u32) -> Option<Vec<(Prefix, Route)>> {
    let f = dp.fwd();
    f.fib_index(af, table)?;
    Some(f.routes(af, table))
}
