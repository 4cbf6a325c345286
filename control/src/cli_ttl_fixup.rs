//! TTL fixup CLI (rvpp's syntax; calico's plugin is driven through its API only):
//! `set ip ttl-fixup <src-if> <dst-if> [disable]`, `show ip ttl-fixup`. Over `service::ttl_fixup`.

use crate::daemon::Dataplane;
use crate::service::ttl_fixup;
use std::fmt::Write;
use std::sync::Arc;

pub fn execute(dp: &Arc<Dataplane>, words: &[&str]) -> Option<Result<String, String>> {
    Some(match words {
        ["set", "ip", "ttl-fixup", src, dst] => set(dp, src, dst, true),
        ["set", "ip", "ttl-fixup", src, dst, "disable"] => set(dp, src, dst, false),
        ["set", "ip", "ttl-fixup", ..] => {
            Err("usage: set ip ttl-fixup <src-interface> <dst-interface> [disable]".into())
        }
        ["show", "ip", "ttl-fixup"] => Ok(show(dp)),
        _ => return None,
    })
}

fn set(dp: &Dataplane, src: &str, dst: &str, on: bool) -> Result<String, String> {
    let (s, d) = (crate::cli::sw(dp, src)?, crate::cli::sw(dp, dst)?);
    ttl_fixup::configure(dp, s, d, on).map_err(|e| e.to_string())?;
    Ok(String::new())
}

fn show(dp: &Dataplane) -> String {
    let pairs = ttl_fixup::list(dp);
    let f = dp.fwd();
    let name = |sw: u32| {
        f.ifs()
            .get(sw)
            .map_or_else(|| sw.to_string(), |i| i.name.clone())
    };
    let mut s = String::new();
    for (src, dst) in pairs {
        let _ = writeln!(s, "{} -> {}", name(src), name(dst));
    }
    s
}
