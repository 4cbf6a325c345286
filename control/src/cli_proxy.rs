//! Proxy ARP and ND proxy CLI, in VPP's syntax: `set arp proxy`, `set interface proxy-arp`,
//! `show arp proxy`, `set interface ip6-nd proxy`. Thin translators over `service::neighbours`.

use crate::daemon::Dataplane;
use crate::service::neighbours;
use rvpp_dataplane::forwarding::Af;
use std::fmt::Write;
use std::net::Ipv4Addr;
use std::sync::Arc;

const USAGE: &str = "usage: set arp proxy [del] table-id <id> start <ip4> end <ip4>";

pub fn execute(dp: &Arc<Dataplane>, words: &[&str]) -> Option<Result<String, String>> {
    Some(match words {
        ["set", "arp", "proxy", rest @ ..] => range(dp, rest),
        ["set", "interface", "proxy-arp", ifn, rest @ ..] => enable(dp, ifn, rest, Af::Ip4),
        ["set", "interface", "ip6-nd", "proxy", ifn, rest @ ..] => enable(dp, ifn, rest, Af::Ip6),
        ["show", "arp", "proxy"] => Ok(show(dp)),
        _ => return None,
    })
}

fn range(dp: &Dataplane, words: &[&str]) -> Result<String, String> {
    let (mut add, mut table, mut lo, mut hi) = (true, 0u32, None, None);
    let mut it = words.iter();
    while let Some(&w) = it.next() {
        let mut val = || {
            it.next()
                .copied()
                .ok_or_else(|| format!("{w} expects a value\n{USAGE}"))
        };
        match w {
            "del" => add = false,
            "table-id" => {
                table = val()?
                    .parse()
                    .map_err(|_| format!("bad table id\n{USAGE}"))?
            }
            "start" => lo = Some(ip4(val()?)?),
            "end" => hi = Some(ip4(val()?)?),
            _ => return Err(format!("unknown input `{w}'\n{USAGE}")),
        }
    }
    let (Some(lo), Some(hi)) = (lo, hi) else {
        return Err(format!("start and end required\n{USAGE}"));
    };
    neighbours::proxy_arp_range(dp, table, lo, hi, add).map_err(|e| e.to_string())?;
    Ok(String::new())
}

fn ip4(s: &str) -> Result<u32, String> {
    s.parse::<Ipv4Addr>()
        .map(u32::from)
        .map_err(|_| format!("bad IPv4 address `{s}'"))
}

fn enable(dp: &Dataplane, ifn: &str, rest: &[&str], af: Af) -> Result<String, String> {
    let on = match rest {
        [] | ["enable"] => true,
        ["disable"] => false,
        _ => return Err("expected enable or disable".into()),
    };
    let sw = crate::cli::sw(dp, ifn)?;
    neighbours::set_proxy(dp, sw, af, on).map_err(|e| e.to_string())?;
    Ok(String::new())
}

fn show(dp: &Dataplane) -> String {
    let mut s = String::new();
    let ranges = neighbours::proxy_arp_ranges(dp);
    if !ranges.is_empty() {
        s.push_str("Proxy arps enabled for:\n");
    }
    for (t, lo, hi) in ranges {
        let _ = writeln!(
            s,
            "Table {t}   {} - {}",
            Ipv4Addr::from(lo),
            Ipv4Addr::from(hi)
        );
    }
    let f = dp.fwd();
    for i in f.ifs().ifs.iter().flatten() {
        if i.proxy_arp || i.nd_proxy {
            let what = match (i.proxy_arp, i.nd_proxy) {
                (true, true) => "proxy-arp ip6-nd-proxy",
                (true, false) => "proxy-arp",
                _ => "ip6-nd-proxy",
            };
            let _ = writeln!(s, "{}: {what}", i.name);
        }
    }
    s
}
