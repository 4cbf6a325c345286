//! TTL fixups (`ip_ttl_fixup_configure`, calico's plugin; `set ip ttl-fixup`): packets from
//! one interface to another keep their TTL. The dataplane's table is the one record; the
//! features are on while the destination has a pair.

use super::SvcResult;
use crate::daemon::Dataplane;
use rvpp_dataplane::forwarding::Forwarding;
use rvpp_dataplane::nodes::ttl_fixup::{self, Fixups};

/// Turn the fixup from `src` to `dst` on or off (idempotent).
pub fn configure(dp: &Dataplane, src: u32, dst: u32, on: bool) -> SvcResult<()> {
    let mut f = dp.fwd();
    f.iface(src)?;
    f.iface(dst)?;
    let t = dp.feature_tables.get::<ttl_fixup::Table>();
    let mut next = (*t.load()).clone();
    next.0.retain(|&p| p != (src, dst));
    if on {
        next.0.push((src, dst));
        next.0.sort_unstable();
    }
    publish(&mut f, &t, next, dst)
}

/// Publish `next` and set `dst`'s features to whether it still has a pair.
fn publish(f: &mut Forwarding, t: &ttl_fixup::Table, next: Fixups, dst: u32) -> SvcResult<()> {
    let on = next.0.iter().any(|p| p.1 == dst);
    t.publish(next);
    for feat in [ttl_fixup::IP4, ttl_fixup::IP6] {
        f.feature_enable(dst, feat.arc, feat.node, on)?;
    }
    Ok(())
}

/// Every (source, destination) pair.
pub fn list(dp: &Dataplane) -> Vec<(u32, u32)> {
    dp.feature_tables.get::<ttl_fixup::Table>().load().0.clone()
}

/// Interface `sw` was deleted: its pairs go.
pub fn interface_gone(dp: &Dataplane, sw: u32) {
    let t = dp.feature_tables.get::<ttl_fixup::Table>();
    let mut next = (*t.load()).clone();
    next.0.retain(|&(s, d)| s != sw && d != sw);
    t.publish(next);
}
