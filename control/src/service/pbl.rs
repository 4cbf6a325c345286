//! PBL clients (`pbl_client_update` / `pbl_client_del`, calico's plugin; `show pbl client`):
//! the dataplane's `FwdTable::pbl` is the record, with each client's path as configured
//! kept here (the dataplane has only its adjacency; a live restart needs the path); this
//! checks and translates errors.

use super::{rv, SvcError, SvcResult};
use crate::daemon::Dataplane;
use rvpp_dataplane::forwarding::{FwdError, Path};
use rvpp_dataplane::tables::PblClient;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// Each client's path as configured, by id.
#[derive(Default)]
pub struct Paths(Mutex<BTreeMap<u32, Path>>);

fn paths(dp: &Dataplane) -> Arc<Paths> {
    dp.feature_tables.get::<Paths>()
}

fn lock(p: &Paths) -> MutexGuard<'_, BTreeMap<u32, Path>> {
    p.0.lock().unwrap_or_else(|e| e.into_inner())
}

fn no_fib(e: FwdError) -> SvcError {
    match e {
        FwdError::NoSuchTable(t) => SvcError::new(rv::NO_SUCH_FIB, format!("no table {t}")),
        e => e.into(),
    }
}

/// Add a client (or, as VPP, answer the id of an existing one unchanged); returns its id.
pub fn update(
    dp: &Dataplane,
    id: Option<u32>,
    table_id: u32,
    addr: IpAddr,
    path: &Path,
    ranges: Vec<(u8, u16, u16)>,
) -> SvcResult<u32> {
    let mut f = dp.fwd();
    if let Some(id) = id.filter(|&i| f.pbl_clients().iter().any(|c| c.0 == i)) {
        // VPP's pbl_client_update: "update unimplemented", the client stays as it is.
        log::warn!("pbl: client {id} exists; updates are not applied (as VPP)");
        return Ok(id);
    }
    let id = f.pbl_add(table_id, addr, path, ranges).map_err(no_fib)?;
    // A client added again on its address takes the new path.
    lock(&paths(dp)).insert(id, *path);
    Ok(id)
}

/// A live restart's client, under its old id (free, as its address must be).
pub fn restore(
    dp: &Dataplane,
    id: u32,
    table_id: u32,
    addr: IpAddr,
    path: &Path,
    ranges: Vec<(u8, u16, u16)>,
) -> SvcResult<()> {
    let mut f = dp.fwd();
    f.pbl_add_at(Some(id), table_id, addr, path, ranges)
        .map_err(no_fib)?;
    lock(&paths(dp)).insert(id, *path);
    Ok(())
}

/// Client `id`'s path as configured.
pub fn path(dp: &Dataplane, id: u32) -> Option<Path> {
    lock(&paths(dp)).get(&id).copied()
}

/// Delete client `id`: NO_SUCH_ENTRY when there is none.
pub fn del(dp: &Dataplane, id: u32) -> SvcResult<()> {
    dp.fwd()
        .pbl_del(id)
        .map_err(|_| SvcError::new(rv::NO_SUCH_ENTRY, format!("no pbl client {id}")))?;
    lock(&paths(dp)).remove(&id);
    Ok(())
}

/// Every client: (id, table id, client).
pub fn list(dp: &Dataplane) -> Vec<(u32, u32, PblClient)> {
    dp.fwd().pbl_clients()
}
