//! PBL clients (`pbl_client_update` / `pbl_client_del`, calico's plugin; `show pbl client`):
//! the dataplane's `FwdTable::pbl` is the record; this checks and translates errors.

use super::{rv, SvcError, SvcResult};
use crate::daemon::Dataplane;
use rvpp_dataplane::forwarding::{FwdError, Path};
use rvpp_dataplane::tables::PblClient;
use std::net::IpAddr;

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
    f.pbl_add(table_id, addr, path, ranges)
        .map_err(|e| match e {
            FwdError::NoSuchTable(t) => SvcError::new(rv::NO_SUCH_FIB, format!("no table {t}")),
            e => e.into(),
        })
}

/// Delete client `id`: NO_SUCH_ENTRY when there is none.
pub fn del(dp: &Dataplane, id: u32) -> SvcResult<()> {
    dp.fwd()
        .pbl_del(id)
        .map_err(|_| SvcError::new(rv::NO_SUCH_ENTRY, format!("no pbl client {id}")))
}

/// Every client: (id, table id, client).
pub fn list(dp: &Dataplane) -> Vec<(u32, u32, PblClient)> {
    dp.fwd().pbl_clients()
}
