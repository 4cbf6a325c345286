//! Punt redirects (`ip_punt_redirect(_v2)`, `ip punt redirect`): where local packets the
//! stack does not handle go, per family and receive interface. The service keeps each as
//! configured; the dataplane holds what it resolved to.

use super::{lock, rv, tables, SvcError, SvcResult};
use crate::daemon::Dataplane;
use rvpp_dataplane::forwarding::{Af, Forwarding, Path, PathKind};

/// A redirect as configured.
#[derive(Clone, Debug, PartialEq)]
pub struct Redirect {
    pub af: Af,
    /// Packets received on this interface; None: on any.
    pub rx: Option<u32>,
    pub paths: Vec<Path>,
}

impl Redirect {
    /// The table the redirect looks up in (VPP holds a lock on it), when it does.
    fn table(&self) -> Option<u32> {
        usable(&self.paths).and_then(|p| match p.kind {
            PathKind::Lookup(t) => Some(t),
            _ => None,
        })
    }
}

/// The first path the dataplane can redirect to: a lookup in a table, or out of an interface.
fn usable(paths: &[Path]) -> Option<&Path> {
    paths.iter().find(|p| {
        matches!(
            (p.kind, p.sw_if_index),
            (PathKind::Lookup(_), _) | (PathKind::Normal, Some(_))
        )
    })
}

/// Add or replace the redirect for (`af`, `rx`). Every path's table and interface must exist;
/// the first usable one is installed (none: the redirect is kept but sends nothing, as VPP's).
pub fn add(dp: &Dataplane, r: Redirect) -> SvcResult<()> {
    let mut punts = lock(&dp.svc.punts);
    {
        let mut f = dp.fwd();
        if let Some(s) = r.rx {
            f.iface(s)?;
        }
        for p in &r.paths {
            match (p.kind, p.sw_if_index) {
                (PathKind::Lookup(t), _) if f.fib_index(r.af, t).is_none() => {
                    return Err(SvcError::new(rv::NO_SUCH_FIB, format!("no table {t}")))
                }
                (_, Some(s)) => {
                    f.iface(s)?;
                }
                _ => {}
            }
        }
        install(&mut f, &r)?;
    }
    match punts.iter_mut().find(|e| e.af == r.af && e.rx == r.rx) {
        Some(e) => *e = r,
        None => punts.push(r),
    }
    drop(punts);
    tables::reap(dp);
    Ok(())
}

/// Remove the redirect for (`af`, `rx`); none is no error. An unknown `rx` is.
pub fn del(dp: &Dataplane, af: Af, rx: Option<u32>) -> SvcResult<()> {
    if let Some(s) = rx {
        dp.fwd().iface(s)?;
    }
    let mut punts = lock(&dp.svc.punts);
    let before = punts.len();
    punts.retain(|e| !(e.af == af && e.rx == rx));
    if punts.len() != before {
        remove(&mut dp.fwd(), af, rx);
        drop(punts);
        tables::reap(dp);
    }
    Ok(())
}

/// The redirects of `af`, in the order configured; `rx` limits them to one interface.
pub fn list(dp: &Dataplane, af: Af, rx: Option<u32>) -> Vec<Redirect> {
    lock(&dp.svc.punts)
        .iter()
        .filter(|e| e.af == af && rx.is_none_or(|r| e.rx == Some(r)))
        .cloned()
        .collect()
}

/// True when a redirect looks up in table `t` of `af`.
pub fn uses_table(dp: &Dataplane, af: Af, t: u32) -> bool {
    lock(&dp.svc.punts)
        .iter()
        .any(|e| e.af == af && e.table() == Some(t))
}

/// Interface `sw` went: redirects of packets received on it go with it (as VPP's do).
pub(super) fn interface_gone(dp: &Dataplane, sw: u32) {
    let mut punts = lock(&dp.svc.punts);
    let gone: Vec<Af> = punts
        .iter()
        .filter(|e| e.rx == Some(sw))
        .map(|e| e.af)
        .collect();
    if gone.is_empty() {
        return;
    }
    punts.retain(|e| e.rx != Some(sw));
    let mut f = dp.fwd();
    for af in gone {
        remove(&mut f, af, Some(sw));
    }
}

/// Install `r`'s first usable path in the dataplane, or remove its redirect without one.
fn install(f: &mut Forwarding, r: &Redirect) -> SvcResult<()> {
    match usable(&r.paths) {
        Some(&Path {
            kind: PathKind::Lookup(t),
            ..
        }) => f.punt_redirect_table(r.af, r.rx, t, true)?,
        Some(&Path {
            sw_if_index: Some(s),
            next_hop,
            ..
        }) => f.punt_redirect(r.af, r.rx, s, next_hop, true)?,
        _ => remove(f, r.af, r.rx),
    }
    Ok(())
}

/// Remove the dataplane's redirect for `rx` (removal matches only the rx interface; table 0
/// always exists).
fn remove(f: &mut Forwarding, af: Af, rx: Option<u32>) {
    let _ = f.punt_redirect_table(af, rx, 0, false);
}
