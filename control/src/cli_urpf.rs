//! uRPF CLI: `set urpf` in VPP's syntax, and `show urpf` (rvpp's; VPP shows the checks only
//! as interface features). Thin translators over `service::urpf`.

use crate::daemon::Dataplane;
use crate::service::urpf;
use rvpp_dataplane::forwarding::Af;
use rvpp_dataplane::nodes::urpf::{Dir, Mode};
use std::fmt::Write;
use std::sync::Arc;

const USAGE: &str = "usage: set urpf [ip4|ip6] [rx|tx] [off|strict|loose] <interface> [table <id>]";

pub fn execute(dp: &Arc<Dataplane>, words: &[&str]) -> Option<Result<String, String>> {
    Some(match words {
        ["set", "urpf", rest @ ..] => set(dp, rest),
        ["show", "urpf"] => Ok(show(dp)),
        _ => return None,
    })
}

/// VPP's defaults: ip4, rx, strict, the interface's own table; words in any order.
fn set(dp: &Dataplane, words: &[&str]) -> Result<String, String> {
    let (mut af, mut dir, mut mode) = (Af::Ip4, Dir::Rx, Some(Mode::Strict));
    let (mut sw, mut table) = (None, None);
    let mut it = words.iter();
    while let Some(&w) = it.next() {
        match w {
            "ip4" => af = Af::Ip4,
            "ip6" => af = Af::Ip6,
            "rx" => dir = Dir::Rx,
            "tx" => dir = Dir::Tx,
            "off" => mode = None,
            "loose" => mode = Some(Mode::Loose),
            "strict" => mode = Some(Mode::Strict),
            "table" => {
                let t = it.next().and_then(|t| t.parse().ok());
                table = Some(t.ok_or_else(|| format!("table expects a number\n{USAGE}"))?);
            }
            name => sw = Some(crate::cli::sw(dp, name)?),
        }
    }
    let sw = sw.ok_or_else(|| format!("interface required\n{USAGE}"))?;
    urpf::update(dp, af, dir, sw, mode, table).map_err(|e| e.to_string())?;
    Ok(String::new())
}

fn show(dp: &Dataplane) -> String {
    let checks = urpf::list(dp);
    let f = dp.fwd();
    let mut s = String::new();
    for c in checks {
        let name = f
            .ifs()
            .get(c.sw_if_index)
            .map_or_else(|| c.sw_if_index.to_string(), |i| i.name.clone());
        let table = c
            .table_id
            .map_or("interface".to_string(), |t| t.to_string());
        let _ = writeln!(
            s,
            "{name} {} {} {} table {table}",
            match c.af {
                Af::Ip4 => "ip4",
                Af::Ip6 => "ip6",
            },
            match c.dir {
                Dir::Rx => "rx",
                Dir::Tx => "tx",
            },
            match c.mode {
                Mode::Loose => "loose",
                Mode::Strict => "strict",
            },
        );
    }
    s
}
