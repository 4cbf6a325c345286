//! Feature-arc CLI, in VPP's syntax: `set interface feature`, `show features`,
//! `show interface features`. Thin translators over `Forwarding::feature_enable` and the
//! graph's `FeatureSet`.

use crate::daemon::Dataplane;
use rvpp_dataplane::feature::{arc, ARCS};
use std::fmt::Write;
use std::sync::Arc;

pub fn execute(dp: &Arc<Dataplane>, words: &[&str]) -> Option<Result<String, String>> {
    Some(match words {
        ["set", "interface", "feature", ifn, feature, "arc", arc_name] => {
            set(dp, ifn, feature, arc_name, true)
        }
        ["set", "interface", "feature", ifn, feature, "arc", arc_name, "disable"] => {
            set(dp, ifn, feature, arc_name, false)
        }
        ["set", "interface", "feature", ..] => Err(
            "usage: set interface feature <interface> <feature> arc <arc> [disable]".to_string(),
        ),
        ["show", "features"] => Ok(show_features(dp, false)),
        ["show", "features", "verbose"] => Ok(show_features(dp, true)),
        ["show", "interface", "features", ifn] | ["show", "int", "features", ifn] => {
            show_interface(dp, ifn)
        }
        _ => return None,
    })
}

fn set(
    dp: &Dataplane,
    ifn: &str,
    feature: &str,
    arc_name: &str,
    on: bool,
) -> Result<String, String> {
    let sw = crate::cli::sw(dp, ifn)?;
    dp.fwd()
        .feature_enable(sw, arc_name, feature, on)
        .map_err(|e| e.to_string())?;
    Ok(String::new())
}

fn show_features(dp: &Dataplane, verbose: bool) -> String {
    let f = dp.fwd();
    let mut s = String::from("Available feature paths\n");
    for (a, def) in ARCS.iter().enumerate() {
        let _ = writeln!(s, "[{a:2}] {}:", def.name);
        for (k, n) in f.features().features(a).iter().enumerate() {
            if verbose {
                let _ = writeln!(s, "  [{k:2}]: {n}");
            } else {
                let _ = writeln!(s, "  {n}");
            }
        }
    }
    s
}

fn show_interface(dp: &Dataplane, ifn: &str) -> Result<String, String> {
    let sw = crate::cli::sw(dp, ifn)?;
    let f = dp.fwd();
    let on = f.interface_features(sw).map_err(|e| e.to_string())?;
    let mut s = format!("Feature paths configured on {ifn}...\n");
    for def in ARCS.iter().take(arc::COUNT) {
        let _ = writeln!(s, "\n{}:", def.name);
        match on.iter().find(|(a, _)| *a == def.name) {
            Some((_, names)) => {
                for n in names {
                    let _ = writeln!(s, "  {n}");
                }
            }
            None => s.push_str("  none configured\n"),
        }
    }
    Ok(s)
}
