//! The classifier (`classify_add_del_table`, `input_acl_set_interface`) and session redirects
//! (`ip_session_redirect_add_v2` / `_del`), as calico's CNI server sends DNS from pod taps to
//! the host tap. The dataplane's published `Classifier` is the record of tables, sessions and
//! interface bindings; the redirects' paths as configured are kept here for `show`.

use super::{rv, SvcError, SvcResult};
use crate::daemon::Dataplane;
use rvpp_dataplane::forwarding::{Af, Path};
use rvpp_dataplane::nodes::classify::{self, Action, Classifier, Session, Table};
use std::sync::{Arc, Mutex};

/// A session redirect as configured.
#[derive(Clone, Debug, PartialEq)]
pub struct Redirect {
    pub table: u32,
    pub matched: Vec<u8>,
    pub af: Af,
    pub path: Path,
    pub adj: u32,
}

/// The redirects as configured; its lock also serialises every classifier edit.
#[derive(Default)]
pub struct Redirects(Mutex<Vec<Redirect>>);

/// A table as `classify_add_del_table` gives it.
#[derive(Clone, Debug)]
pub struct TableSpec {
    pub mask: Vec<u8>,
    pub skip_n: u32,
    pub match_n: u32,
    pub nbuckets: u32,
    pub next_table: Option<u32>,
    pub miss_next: u32,
    /// VPP's current_data_flag: 1 = the key is relative to the IP header.
    pub current_data: bool,
    pub offset: i16,
}

fn no_table(t: u32) -> SvcError {
    SvcError::new(rv::NO_SUCH_TABLE, format!("no classify table {t}"))
}

fn edit<T>(dp: &Dataplane, f: impl FnOnce(&mut Classifier) -> SvcResult<T>) -> SvcResult<T> {
    let shared = dp.feature_tables.get::<classify::Shared>();
    let mut next = (*shared.load()).clone();
    let r = f(&mut next)?;
    shared.publish(next);
    Ok(r)
}

fn redirects(dp: &Dataplane) -> Arc<Redirects> {
    dp.feature_tables.get::<Redirects>()
}

fn lock(r: &Redirects) -> std::sync::MutexGuard<'_, Vec<Redirect>> {
    r.0.lock().unwrap_or_else(|e| e.into_inner())
}

fn build_table(s: &TableSpec) -> SvcResult<Table> {
    if !s.current_data {
        // VPP's absolute tables read from the L2 header; calico's are relative (flag 1).
        return Err(SvcError::new(
            rv::UNIMPLEMENTED,
            "only current-data tables (current_data_flag 1) are supported",
        ));
    }
    let miss = Action::from_next_index(s.miss_next).ok_or_else(|| {
        SvcError::new(
            rv::INVALID_VALUE,
            format!("miss-next {} (only ~0 or 0)", s.miss_next),
        )
    })?;
    Table::new(
        &s.mask,
        s.skip_n,
        s.match_n,
        s.nbuckets,
        s.next_table,
        miss,
        s.offset,
    )
    .map_err(|_| {
        SvcError::new(
            rv::INVALID_VALUE,
            format!(
                "mask of {} bytes, {} skip and {} match vectors, {} buckets, offset {}",
                s.mask.len(),
                s.skip_n,
                s.match_n,
                s.nbuckets,
                s.offset
            ),
        )
    })
}

/// Add a table: (its index, skip_n, match_n). The lowest free index is taken, or `at`,
/// which must be free (a live restart keeps the indices the agent holds).
fn add_table_in(dp: &Dataplane, s: &TableSpec, at: Option<u32>) -> SvcResult<(u32, u32, u32)> {
    let t = build_table(s)?;
    let r = redirects(dp);
    let _g = lock(&r);
    edit(dp, |c| {
        if let Some(n) = s.next_table {
            c.table(n).ok_or_else(|| no_table(n))?;
        }
        let free = c.tables.iter().position(|t| t.is_none());
        let i = match (at, free) {
            (Some(i), _) if c.table(i).is_some() => {
                return Err(SvcError::new(
                    rv::INVALID_VALUE,
                    format!("classify table {i} exists"),
                ))
            }
            // A bound on the vector a bad snapshot could make.
            (Some(i), _) if i > u32::from(u16::MAX) => {
                return Err(SvcError::new(
                    rv::INVALID_VALUE,
                    format!("classify table index {i}"),
                ))
            }
            (Some(i), _) => i as usize,
            (None, Some(i)) => i,
            (None, None) => c.tables.len(),
        };
        if c.tables.len() <= i {
            c.tables.resize(i + 1, None);
        }
        c.tables[i] = Some(Arc::new(t));
        Ok((i as u32, s.skip_n, s.match_n))
    })
}

/// Add a table: (its index, skip_n, match_n). The lowest free index is taken.
pub fn add_table(dp: &Dataplane, s: &TableSpec) -> SvcResult<(u32, u32, u32)> {
    add_table_in(dp, s, None)
}

/// A live restart's table, under index `i` (free).
pub fn add_table_at(dp: &Dataplane, i: u32, s: &TableSpec) -> SvcResult<()> {
    add_table_in(dp, s, Some(i)).map(|_| ())
}

/// VPP's add with an existing index: only its next table and miss action change.
pub fn update_table(
    dp: &Dataplane,
    i: u32,
    next_table: Option<u32>,
    miss_next: u32,
) -> SvcResult<()> {
    let miss = Action::from_next_index(miss_next)
        .ok_or_else(|| SvcError::new(rv::INVALID_VALUE, format!("miss-next {miss_next}")))?;
    let r = redirects(dp);
    let _g = lock(&r);
    edit(dp, |c| {
        let mut t = c.table(i).ok_or_else(|| no_table(i))?.clone();
        if let Some(n) = next_table {
            c.table(n).ok_or_else(|| no_table(n))?;
            if chain_reaches(c, n, i) {
                return Err(SvcError::new(
                    rv::INVALID_VALUE,
                    format!("table {n} chains back to {i}"),
                ));
            }
        }
        t.next_table = next_table;
        t.miss = miss;
        c.tables[i as usize] = Some(Arc::new(t));
        Ok(())
    })
}

fn chain_reaches(c: &Classifier, mut from: u32, to: u32) -> bool {
    for _ in 0..=c.tables.len() {
        if from == to {
            return true;
        }
        match c.table(from).and_then(|t| t.next_table) {
            Some(n) => from = n,
            None => return false,
        }
    }
    true
}

/// Delete table `i` (and, with `chain`, the tables it chains to). A table an interface or
/// another table still uses is refused, and nothing changes.
pub fn del_table(dp: &Dataplane, i: u32, chain: bool) -> SvcResult<()> {
    let r = redirects(dp);
    let mut reds = lock(&r);
    edit(dp, |c| {
        c.table(i).ok_or_else(|| no_table(i))?;
        let mut gone = vec![i];
        while let (true, Some(n)) = (
            chain,
            c.table(*gone.last().unwrap_or(&i))
                .and_then(|t| t.next_table),
        ) {
            if gone.contains(&n) {
                break;
            }
            gone.push(n);
        }
        let used_by_if = c.inacls().into_iter().find(|(_, _, t)| gone.contains(t));
        if let Some((_, sw, t)) = used_by_if {
            return Err(SvcError::new(
                rv::RSRC_IN_USE,
                format!("table {t} is the input table of sw_if_index {sw}"),
            ));
        }
        for (j, t) in c.tables.iter().enumerate() {
            let user = t
                .as_ref()
                .and_then(|t| t.next_table)
                .filter(|n| gone.contains(n));
            if let (Some(n), false) = (user, gone.contains(&(j as u32))) {
                return Err(SvcError::new(
                    rv::RSRC_IN_USE,
                    format!("table {j} chains to {n}"),
                ));
            }
        }
        for &g in &gone {
            c.tables[g as usize] = None;
        }
        while c.tables.last().is_some_and(|t| t.is_none()) {
            c.tables.pop();
        }
        reds.retain(|r| !gone.contains(&r.table));
        Ok(())
    })
}

/// `input_acl_set_interface`: bind (or, `add` false, unbind) the interface's ip4/ip6 tables.
pub fn set_input(
    dp: &Dataplane,
    sw: u32,
    ip4: Option<u32>,
    ip6: Option<u32>,
    l2: Option<u32>,
    add: bool,
) -> SvcResult<()> {
    dp.fwd().iface(sw)?;
    if l2.is_some() {
        return Err(SvcError::new(
            rv::UNIMPLEMENTED,
            "l2 input tables are not supported",
        ));
    }
    let r = redirects(dp);
    let _g = lock(&r);
    let shared = dp.feature_tables.get::<classify::Shared>();
    let mut next = (*shared.load()).clone();
    for (af, t) in [(Af::Ip4, ip4), (Af::Ip6, ip6)] {
        let Some(t) = t else { continue };
        next.table(t).ok_or_else(|| no_table(t))?;
        next.set_inacl(af, sw, add.then_some(t));
    }
    shared.publish(next);
    let mut f = dp.fwd();
    for (af, t) in [(Af::Ip4, ip4), (Af::Ip6, ip6)] {
        if t.is_some() {
            let feat = classify::feature(af);
            f.feature_enable(sw, feat.arc, feat.node, add)?;
        }
    }
    Ok(())
}

/// `ip_session_redirect_add_v2`: packets matching `matched` in table `t` go along the first of
/// `paths` (VPP load-balances over all of them; rvpp uses the first).
pub fn redirect_add(
    dp: &Dataplane,
    t: u32,
    matched: &[u8],
    af: Af,
    paths: &[Path],
    opaque: u32,
) -> SvcResult<()> {
    let path = paths
        .first()
        .copied()
        .ok_or_else(|| SvcError::new(rv::NO_PATHS_IN_ROUTE, "no paths"))?;
    let r = redirects(dp);
    let mut reds = lock(&r);
    dp.feature_tables
        .get::<classify::Shared>()
        .load()
        .table(t)
        .ok_or_else(|| no_table(t))?;
    let adj = dp.fwd().redirect_adj(af, &path)?;
    edit(dp, |c| {
        let mut tab = c.table(t).ok_or_else(|| no_table(t))?.clone();
        let key = tab.key(matched);
        tab.upsert(Session {
            key,
            action: Action::Redirect(adj),
            opaque,
        });
        c.tables[t as usize] = Some(Arc::new(tab));
        Ok(())
    })?;
    let c = snapshot(dp);
    let key = c.table(t).map(|tab| tab.key(matched));
    reds.retain(|e| e.table != t || c.table(t).map(|tab| tab.key(&e.matched)) != key);
    reds.push(Redirect {
        table: t,
        matched: matched.to_vec(),
        af,
        path,
        adj,
    });
    Ok(())
}

/// `ip_session_redirect_del`.
pub fn redirect_del(dp: &Dataplane, t: u32, matched: &[u8]) -> SvcResult<()> {
    let r = redirects(dp);
    let mut reds = lock(&r);
    edit(dp, |c| {
        let mut tab = c.table(t).ok_or_else(|| no_table(t))?.clone();
        let key = tab.key(matched);
        let is_redirect = tab
            .sessions()
            .iter()
            .any(|s| s.key == key && matches!(s.action, Action::Redirect(_)));
        if !is_redirect || !tab.remove(&key) {
            return Err(SvcError::new(
                rv::NO_SUCH_ENTRY,
                format!("no redirect for that match in table {t}"),
            ));
        }
        c.tables[t as usize] = Some(Arc::new(tab));
        Ok(())
    })?;
    // Keep the records whose session is still there.
    let c = snapshot(dp);
    reds.retain(|e| {
        e.table != t
            || c.table(t)
                .is_some_and(|tab| tab.sessions().iter().any(|s| s.key == tab.key(&e.matched)))
    });
    Ok(())
}

/// The redirects as configured.
pub fn redirect_list(dp: &Dataplane) -> Vec<Redirect> {
    lock(&redirects(dp)).clone()
}

/// The classifier as the workers see it.
pub fn snapshot(dp: &Dataplane) -> Arc<Classifier> {
    dp.feature_tables.get::<classify::Shared>().load()
}

/// Interface `sw` went: its input tables are unbound.
pub fn interface_gone(dp: &Dataplane, sw: u32) {
    let r = redirects(dp);
    let _g = lock(&r);
    let shared = dp.feature_tables.get::<classify::Shared>();
    let mut next = (*shared.load()).clone();
    for af in [Af::Ip4, Af::Ip6] {
        next.set_inacl(af, sw, None);
    }
    shared.publish(next);
}
