//! Neighbour CLI beyond the entries themselves, in VPP's syntax: proxy ARP and ND proxy
//! (`set arp proxy`, `set interface proxy-arp`, `show arp proxy`, `set interface ip6-nd
//! proxy`) and the learned-entry limits and ageing (`set|show ip neighbor-config`). Thin
//! translators over `service::neighbours`.

use crate::daemon::Dataplane;
use crate::service::neighbours;
use rvpp_dataplane::forwarding::{Af, NeighborConfig};
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
        ["set", "ip", "neighbor-config", rest @ ..] => set_config(dp, rest),
        ["show", "ip", "neighbor-config"] => Ok(show_config(dp)),
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

const CONFIG_USAGE: &str =
    "usage: set ip neighbor-config ip4|ip6 [limit <n>] [age <seconds>] [recycle|norecycle]";

fn set_config(dp: &Dataplane, words: &[&str]) -> Result<String, String> {
    let af = match words.first() {
        Some(&"ip4") => Af::Ip4,
        Some(&"ip6") => Af::Ip6,
        _ => return Err(CONFIG_USAGE.into()),
    };
    let mut c: NeighborConfig = neighbours::config(dp, af);
    let mut it = words[1..].iter();
    while let Some(&w) = it.next() {
        let mut num = || {
            it.next()
                .and_then(|v| v.parse::<u32>().ok())
                .ok_or_else(|| format!("{w} expects a number\n{CONFIG_USAGE}"))
        };
        match w {
            "limit" => c.max_number = num()?,
            "age" => c.max_age = num()?,
            "recycle" => c.recycle = true,
            "norecycle" => c.recycle = false,
            _ => return Err(format!("unknown input `{w}'\n{CONFIG_USAGE}")),
        }
    }
    neighbours::set_config(dp, af, c);
    Ok(String::new())
}

fn show_config(dp: &Dataplane) -> String {
    let mut s = String::new();
    for (af, name) in [(Af::Ip4, "ip4"), (Af::Ip6, "ip6")] {
        let c = neighbours::config(dp, af);
        let _ = writeln!(
            s,
            "{name}:\n  limit:{}, age:{}, recycle:{}",
            c.max_number, c.max_age, c.recycle as u8
        );
    }
    let n = dp.fwd().neighbor_counts();
    let _ = writeln!(
        s,
        "learned entries refused at the limit: {}, recycled: {}, probes sent: {}, aged out: {}",
        n.refused, n.recycled, n.probes, n.aged
    );
    s
}
