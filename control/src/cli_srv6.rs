//! SRv6 CLI in VPP's syntax and output: `sr localsid`, `sr policy add|mod|del`, `sr steer`,
//! `set sr encaps source addr`, `show sr localsids|policies|steering-policies` (also
//! `show sr steering`). Thin translators over `service::srv6`. Not shown: VPP's per-localsid
//! good/bad traffic counters (rvpp counts per node: `show errors`).

use crate::daemon::Dataplane;
use crate::service::srv6::{self as svc, LocalsidSpec, PolicyOp, PolicySpec};
use rvpp_dataplane::forwarding::Prefix;
use rvpp_dataplane::srv6::Behavior;
use std::fmt::Write;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

const LOCALSID_USAGE: &str = "usage: sr localsid [del] address <sid> [fib-table <id>] behavior \
     end|end.x <if> <nh>|end.dx4 <if> <nh>|end.dx6 <if> <nh>|end.dt4 <table>|end.dt6 <table> [psp]";
const POLICY_USAGE: &str = "usage: sr policy add bsid <sid> next <sid> [next <sid>..] [encap] \
     [weight <w>] [fib-table <id>] [spray] [reduced] | sr policy mod bsid <sid> add sl next <sid>.. \
     [weight <w>] | del sl index <n> | mod sl index <n> weight <w> | sr policy del bsid <sid>";
const STEER_USAGE: &str = "usage: sr steer [del] l3 <prefix> via bsid <sid> [fib-table <id>]";

pub fn execute(dp: &Arc<Dataplane>, words: &[&str]) -> Option<Result<String, String>> {
    Some(match words {
        ["set", "sr", "encaps", "source", "addr", a] => ip6(a)
            .and_then(|a| svc::set_encap_source(dp, a).map_err(|e| e.to_string()))
            .map(|_| String::new()),
        ["sr", "localsid", rest @ ..] => localsid(dp, rest),
        ["sr", "policy", rest @ ..] => policy(dp, rest),
        ["sr", "steer", rest @ ..] => steer(dp, rest),
        ["show", "sr", "localsids"] => Ok(show_localsids(dp)),
        ["show", "sr", "policies"] => Ok(show_policies(dp)),
        ["show", "sr", "steering-policies" | "steering"] => Ok(show_steering(dp)),
        ["show", "sr", "encaps", "source", "addr"] => Ok(format!(
            "SR encaps source addr = {}\n",
            svc::encap_source(dp)
        )),
        _ => return None,
    })
}

fn ip6(s: &str) -> Result<Ipv6Addr, String> {
    s.parse().map_err(|_| format!("not an IPv6 address: {s}"))
}

fn num(w: Option<&&str>, what: &str) -> Result<u32, String> {
    w.and_then(|w| w.parse().ok())
        .ok_or_else(|| format!("{what} expects a number"))
}

fn localsid(dp: &Dataplane, words: &[&str]) -> Result<String, String> {
    let (mut del, mut sid, mut fib_table, mut psp) = (false, None, 0, false);
    let (mut behavior, mut decap_table, mut sw, mut nh) = (None, 0, u32::MAX, None);
    let mut it = words.iter();
    while let Some(&w) = it.next() {
        match w {
            "del" => del = true,
            "address" => sid = Some(ip6(it.next().ok_or(LOCALSID_USAGE)?)?),
            "fib-table" => fib_table = num(it.next(), "fib-table")?,
            "psp" => psp = true,
            "behavior" => {
                let name = it.next().ok_or(LOCALSID_USAGE)?;
                let b = Behavior::parse(name).ok_or_else(|| format!("unknown behavior {name}"))?;
                match b {
                    Behavior::DT4 | Behavior::DT6 => decap_table = num(it.next(), name)?,
                    Behavior::X | Behavior::DX4 | Behavior::DX6 => {
                        sw = crate::cli::sw(dp, it.next().ok_or(LOCALSID_USAGE)?)?;
                        let a = it.next().ok_or(LOCALSID_USAGE)?;
                        nh = Some(
                            a.parse::<IpAddr>()
                                .map_err(|_| format!("not a next hop: {a}"))?,
                        );
                    }
                    Behavior::End => {}
                }
                behavior = Some(b);
            }
            _ => return Err(format!("unknown input '{w}'\n{LOCALSID_USAGE}")),
        }
    }
    let sid = sid.ok_or(LOCALSID_USAGE)?;
    let r = if del {
        svc::localsid_del(dp, sid)
    } else {
        svc::localsid_add(
            dp,
            LocalsidSpec {
                sid,
                behavior: behavior.ok_or(LOCALSID_USAGE)?,
                end_psp: psp,
                fib_table,
                decap_table,
                sw_if_index: sw,
                nh,
            },
        )
    };
    r.map(|_| String::new()).map_err(|e| e.to_string())
}

fn policy(dp: &Dataplane, words: &[&str]) -> Result<String, String> {
    let (mut bsid, mut sids, mut weight, mut fib_table) = (None, Vec::new(), 1, 0);
    let (mut spray, mut reduced, mut insert, mut sl_index) = (false, false, false, None);
    let mut it = words.iter().skip(1);
    while let Some(&w) = it.next() {
        match w {
            "bsid" => bsid = Some(ip6(it.next().ok_or(POLICY_USAGE)?)?),
            "next" => sids.push(ip6(it.next().ok_or(POLICY_USAGE)?)?),
            "weight" => weight = num(it.next(), "weight")?,
            "fib-table" => fib_table = num(it.next(), "fib-table")?,
            "index" => sl_index = Some(num(it.next(), "index")?),
            "encap" | "add" | "del" | "mod" | "sl" => {}
            "insert" => insert = true,
            "spray" => spray = true,
            "reduced" => reduced = true,
            _ => return Err(format!("unknown input '{w}'\n{POLICY_USAGE}")),
        }
    }
    let bsid = bsid.ok_or(POLICY_USAGE)?;
    let r = match words {
        ["add", ..] => svc::policy_add(
            dp,
            PolicySpec {
                bsid,
                weight,
                is_encap: !insert,
                is_spray: spray,
                reduced,
                fib_table,
                sids,
            },
        )
        .map(|_| ()),
        ["del", ..] => svc::policy_del(dp, bsid, 0),
        ["mod", ..] => {
            let op = if words.windows(2).any(|p| p == ["add", "sl"]) {
                PolicyOp::AddList
            } else if words.windows(2).any(|p| p == ["del", "sl"]) {
                PolicyOp::DelList
            } else if words.windows(2).any(|p| p == ["mod", "sl"]) {
                PolicyOp::SetWeight
            } else {
                return Err(POLICY_USAGE.into());
            };
            let sl = sl_index.unwrap_or(u32::MAX);
            svc::policy_mod(dp, bsid, 0, op, sl, weight, &sids)
        }
        _ => return Err(POLICY_USAGE.into()),
    };
    r.map(|_| String::new()).map_err(|e| e.to_string())
}

fn steer(dp: &Dataplane, words: &[&str]) -> Result<String, String> {
    let (mut del, mut prefix, mut bsid, mut table) = (false, None, None, 0);
    let mut it = words.iter();
    while let Some(&w) = it.next() {
        match w {
            "del" => del = true,
            "l3" => {
                let p = it.next().ok_or(STEER_USAGE)?;
                prefix = Some(Prefix::parse(p).ok_or_else(|| format!("not a prefix: {p}"))?);
            }
            "via" => {}
            "bsid" => bsid = Some(ip6(it.next().ok_or(STEER_USAGE)?)?),
            "fib-table" => table = num(it.next(), "fib-table")?,
            _ => return Err(format!("unknown input '{w}'\n{STEER_USAGE}")),
        }
    }
    let prefix = prefix.ok_or(STEER_USAGE)?;
    let r = if del {
        svc::steer_del(dp, table, prefix)
    } else {
        svc::steer_add(dp, bsid.ok_or(STEER_USAGE)?, 0, table, prefix)
    };
    r.map(|_| String::new()).map_err(|e| e.to_string())
}

fn show_localsids(dp: &Dataplane) -> String {
    let f = dp.fwd();
    let name = |sw: u32| {
        f.ifs()
            .get(sw)
            .map_or_else(|| sw.to_string(), |i| i.name.clone())
    };
    let mut s = String::from("SRv6 - My LocalSID Table:\n=========================\n");
    for l in svc::localsids(dp) {
        let _ = writeln!(s, "\tAddress: \t{}/128", Ipv6Addr::from(l.sid));
        let nh = l.nh.map_or_else(String::new, |n| n.to_string());
        let _ = match l.behavior {
            Behavior::End => writeln!(s, "\tBehavior: \tEnd"),
            Behavior::X => writeln!(
                s,
                "\tBehavior: \tX (Endpoint with Layer-3 cross-connect)\n\tIface:  \t{}\n\tNext hop: \t{nh}",
                name(l.sw_if_index)
            ),
            Behavior::DX4 => writeln!(
                s,
                "\tBehavior: \tDX4 (Endpoint with decapsulation and IPv4 cross-connect)\n\tIface:  \t{}\n\tNext hop: \t{nh}",
                name(l.sw_if_index)
            ),
            Behavior::DX6 => writeln!(
                s,
                "\tBehavior: \tDX6 (Endpoint with decapsulation and IPv6 cross-connect)\n\tIface:  \t{}\n\tNext hop: \t{nh}",
                name(l.sw_if_index)
            ),
            Behavior::DT6 => writeln!(
                s,
                "\tBehavior: \tDT6 (Endpoint with decapsulation and specific IPv6 table lookup)\n\tTable:  {}",
                l.decap_table
            ),
            Behavior::DT4 => writeln!(
                s,
                "\tBehavior: \tDT4 (Endpoint with decapsulation and specific IPv4 table lookup)\n\tTable: \t{}",
                l.decap_table
            ),
        };
        if l.end_psp {
            s.push_str("\tPSP: \tTrue\n\n");
        }
        s.push_str("--------------------\n");
    }
    s
}

fn show_policies(dp: &Dataplane) -> String {
    let mut s = String::from("SR policies:\n");
    for (i, p) in svc::policies(dp) {
        let _ = writeln!(s, "[{i}].-\tBSID: {}", Ipv6Addr::from(p.bsid));
        let _ = writeln!(
            s,
            "\tBehavior: {}",
            if p.is_encap {
                "Encapsulation"
            } else {
                "SRH insertion"
            }
        );
        let _ = writeln!(
            s,
            "\tType: {}",
            if p.is_spray { "Spray" } else { "Default" }
        );
        let _ = writeln!(s, "\tFIB table: {}", p.fib_table);
        s.push_str("\tSegment Lists:\n");
        for l in &p.sid_lists {
            let sids: Vec<String> = l
                .sids
                .iter()
                .map(|a| Ipv6Addr::from(*a).to_string())
                .collect();
            let _ = writeln!(
                s,
                "  \t[{}].- < {} > weight: {}",
                l.index,
                sids.join(", "),
                l.weight
            );
        }
        s.push_str("-----------\n");
    }
    s
}

fn show_steering(dp: &Dataplane) -> String {
    let mut s = String::from("SR steering policies:\nTraffic\t\tSR policy BSID\n");
    for (st, bsid) in svc::steering(dp) {
        let _ = writeln!(s, "L3 {}\t{bsid}", st.prefix);
    }
    s
}
