//! Unicast RPF checks (`urpf_update_v2`, `set urpf`): per interface, family and direction, a
//! mode and the table the source is looked up in. The service keeps each check as configured;
//! the dataplane has the enabled feature (the mode) and the FIB index (`nodes::urpf`).

use super::{lock, rv, tables, SvcError, SvcResult};
use crate::daemon::Dataplane;
use rvpp_dataplane::forwarding::Af;
use rvpp_dataplane::nodes::urpf::{self, Dir, Mode, INTERFACE_FIB};
use std::collections::BTreeMap;

/// A check as configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Check {
    pub af: Af,
    pub dir: Dir,
    pub sw_if_index: u32,
    pub mode: Mode,
    /// The table looked up in; None: the interface's own.
    pub table_id: Option<u32>,
}

/// The checks, by (family, direction, interface).
pub type Checks = BTreeMap<(Af, Dir, u32), Check>;

/// Set the check on (`af`, `dir`, `sw`) to `mode` (None: off) against `table_id` (None: the
/// interface's table). A table that does not exist is VPP's INVALID_VALUE.
pub fn update(
    dp: &Dataplane,
    af: Af,
    dir: Dir,
    sw: u32,
    mode: Option<Mode>,
    table_id: Option<u32>,
) -> SvcResult<()> {
    let mut checks = lock(&dp.svc.urpf);
    {
        let mut f = dp.fwd();
        f.iface(sw)?;
        let fib = match table_id {
            Some(t) => f
                .fib_index(af, t)
                .ok_or_else(|| SvcError::new(rv::INVALID_VALUE, format!("no table {t}")))?,
            None => INTERFACE_FIB,
        };
        let old = checks.get(&(af, dir, sw)).map(|c| c.mode);
        if mode.is_some() {
            // The FIB first, so the node never checks against a stale one.
            let t = dp.feature_tables.get::<urpf::Table>();
            let mut next = (*t.load()).clone();
            next.set(af, dir, sw, fib);
            t.publish(next);
        }
        if old != mode {
            if let Some(m) = old {
                let feat = urpf::feature(af, dir, m);
                f.feature_enable(sw, feat.arc, feat.node, false)?;
            }
            if let Some(m) = mode {
                let feat = urpf::feature(af, dir, m);
                f.feature_enable(sw, feat.arc, feat.node, true)?;
            }
        }
    }
    match mode {
        Some(mode) => {
            let c = Check {
                af,
                dir,
                sw_if_index: sw,
                mode,
                table_id,
            };
            checks.insert((af, dir, sw), c);
        }
        None => {
            checks.remove(&(af, dir, sw));
        }
    }
    drop(checks);
    // A table deleted while a check used it may go now.
    tables::reap(dp);
    Ok(())
}

/// Every check, in (family, direction, interface) order.
pub fn list(dp: &Dataplane) -> Vec<Check> {
    lock(&dp.svc.urpf).values().copied().collect()
}

/// Some check looks sources up in table `t` of `af` (the table is kept while it does).
pub fn uses_table(dp: &Dataplane, af: Af, t: u32) -> bool {
    lock(&dp.svc.urpf)
        .values()
        .any(|c| c.af == af && c.table_id == Some(t))
}

/// Interface `sw` was deleted: its checks go with it.
pub fn interface_gone(dp: &Dataplane, sw: u32) {
    lock(&dp.svc.urpf).retain(|_, c| c.sw_if_index != sw);
    let t = dp.feature_tables.get::<urpf::Table>();
    let mut next = (*t.load()).clone();
    for af in [Af::Ip4, Af::Ip6] {
        for dir in [Dir::Rx, Dir::Tx] {
            next.set(af, dir, sw, INTERFACE_FIB);
        }
    }
    t.publish(next);
}
