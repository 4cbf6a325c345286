//! IP tables (VRFs): created, allocated and deleted for the API and the CLI alike. A delete
//! drops the front end's lock, as VPP's `ip_table_delete` does: the table goes at once if nothing
//! uses it, else when its last user (a bound interface, a route or punt redirect looking up in
//! it, a uRPF check, a proxy ARP range) lets go. The default table is never deleted.

use super::{lock, mroutes, neighbours, punt, rv, urpf, SvcError, SvcResult};
use crate::daemon::Dataplane;
use rvpp_dataplane::forwarding::{Af, FwdError};
use std::collections::BTreeSet;

/// What the service keeps about tables beside the dataplane's.
pub struct Tables {
    /// Deleted while in use: removed once nothing uses them.
    doomed: BTreeSet<(Af, u32)>,
    /// Where `allocate` without an id starts looking for a free one.
    next_id: u32,
}

impl Default for Tables {
    fn default() -> Self {
        Self {
            doomed: BTreeSet::new(),
            next_id: 0x1000,
        }
    }
}

/// Create table `id` (idempotent; a non-empty name renames it) and take back a pending delete.
pub fn add(dp: &Dataplane, af: Af, id: u32, name: &str) -> SvcResult<()> {
    lock(&dp.svc.tables).doomed.remove(&(af, id));
    dp.fwd().table_add(af, id, name)?;
    Ok(())
}

/// `ip_table_allocate`: table `id`, or the first free id from 0x1000 when `id` is None.
/// Returns the id and the table's name whatever the outcome of the add.
pub fn allocate(
    dp: &Dataplane,
    af: Af,
    id: Option<u32>,
    name: &str,
) -> (SvcResult<()>, u32, String) {
    let mut t = lock(&dp.svc.tables);
    let mut f = dp.fwd();
    let id = id.unwrap_or_else(|| {
        while f.fib_index(af, t.next_id).is_some() {
            t.next_id += 1;
        }
        t.next_id += 1;
        t.next_id - 1
    });
    t.doomed.remove(&(af, id));
    let r = f
        .table_add(af, id, name)
        .map(|_| ())
        .map_err(SvcError::from);
    let name = f
        .tables(af)
        .into_iter()
        .find(|x| x.0 == id)
        .map_or(String::new(), |x| x.1);
    (r, id, name)
}

/// Drop the lock on table `id`: it goes now, or when its last user does. An unknown table and
/// table 0 are no error (VPP answers 0).
pub fn del(dp: &Dataplane, af: Af, id: u32) {
    if id != 0 && dp.fwd().fib_index(af, id).is_some() {
        lock(&dp.svc.tables).doomed.insert((af, id));
    }
    reap(dp);
}

/// Delete the doomed tables nothing uses any more. Called after every change that may let go
/// of a table.
pub fn reap(dp: &Dataplane) {
    let doomed = std::mem::take(&mut lock(&dp.svc.tables).doomed);
    if doomed.is_empty() {
        return;
    }
    let mut keep = BTreeSet::new();
    for (af, t) in doomed {
        if punt::uses_table(dp, af, t)
            || urpf::uses_table(dp, af, t)
            || neighbours::proxy_uses_table(dp, af, t)
            || mroutes::uses_table(dp, af, t)
        {
            keep.insert((af, t));
            continue;
        }
        if let Err(FwdError::TableInUse) = dp.fwd().table_del(af, t) {
            keep.insert((af, t));
        }
    }
    lock(&dp.svc.tables).doomed.extend(keep);
}

/// Tables deleted while in use, waiting for their last user.
pub fn pending(dp: &Dataplane) -> Vec<(Af, u32)> {
    lock(&dp.svc.tables).doomed.iter().copied().collect()
}

/// A live restart's pending deletes: table `id` of `af` goes when its last user does, as it
/// would have in the old process.
pub fn restore_pending(dp: &Dataplane, af: Af, id: u32) -> SvcResult<()> {
    if dp.fwd().fib_index(af, id).is_none() {
        return Err(SvcError::new(rv::NO_SUCH_FIB, format!("no table {id}")));
    }
    del(dp, af, id);
    Ok(())
}

/// Every table of `af`: (id, name).
pub fn list(dp: &Dataplane, af: Af) -> Vec<(u32, String)> {
    dp.fwd().tables(af)
}

/// Bind interface `sw` to table `id` of `af` (a table lookup default route continues there).
pub fn bind(dp: &Dataplane, sw: u32, af: Af, id: u32) -> SvcResult<()> {
    let r = {
        let mut f = dp.fwd();
        f.iface(sw)?;
        f.set_table(sw, af, id)
    };
    reap(dp);
    Ok(r?)
}
