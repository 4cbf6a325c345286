//! Classifier and PBL CLI, VPP's names: `show classify tables [index <n>] [verbose]`,
//! `show inacl type ip4|ip6`, `show ip session redirect` (over `service::classify`), and
//! calico's `show pbl client` (over `service::pbl`).

use crate::daemon::Dataplane;
use crate::service::classify;
use rvpp_dataplane::forwarding::{Af, PathKind};
use rvpp_dataplane::nodes::classify::{Action, Key, VECTOR};
use std::fmt::Write;
use std::sync::Arc;

pub fn execute(dp: &Arc<Dataplane>, words: &[&str]) -> Option<Result<String, String>> {
    Some(match words {
        ["show", "classify", "tables", rest @ ..] => tables(dp, rest),
        ["show", "inacl", "type", "ip4"] => Ok(inacl(dp, Af::Ip4)),
        ["show", "inacl", "type", "ip6"] => Ok(inacl(dp, Af::Ip6)),
        ["show", "inacl", ..] => Err("usage: show inacl type ip4|ip6".into()),
        ["show", "ip", "session", "redirect"] => Ok(redirects(dp)),
        ["show", "pbl", "client"] => Ok(pbl_clients(dp)),
        _ => return None,
    })
}

fn hex(k: &Key, vectors: u32) -> String {
    let mut s = String::new();
    for w in &k[..vectors as usize * VECTOR / 8] {
        for b in w.to_ne_bytes() {
            let _ = write!(s, "{b:02x}");
        }
    }
    s
}

fn action(dp: &Dataplane, a: Action) -> String {
    match a {
        Action::Continue => "next-feature".into(),
        Action::Drop => "drop".into(),
        Action::Redirect(adj) => {
            let f = dp.fwd();
            let a = f.fwd().adj(adj);
            let name = f
                .ifs()
                .get(a.sw_if_index)
                .map_or_else(|| a.sw_if_index.to_string(), |i| i.name.clone());
            format!("redirect adj {adj} ({:?} via {name})", a.kind)
        }
    }
}

fn tables(dp: &Dataplane, rest: &[&str]) -> Result<String, String> {
    let (mut only, mut verbose) = (None, false);
    let mut it = rest.iter();
    while let Some(w) = it.next() {
        match *w {
            "verbose" => verbose = true,
            "index" => {
                only = Some(
                    it.next()
                        .and_then(|n| n.parse::<u32>().ok())
                        .ok_or("usage: show classify tables [index <n>] [verbose]")?,
                )
            }
            w => return Err(format!("unknown input '{w}'")),
        }
    }
    let c = classify::snapshot(dp);
    let mut s = String::from("  Index Buckets Skip Match Sessions Nexttbl Miss         Mask\n");
    for (i, t) in c.tables.iter().enumerate() {
        let Some(t) = t.as_deref() else { continue };
        if only.is_some_and(|o| o != i as u32) {
            continue;
        }
        let next = t.next_table.map_or(-1, i64::from);
        let _ = writeln!(
            s,
            "{i:>7} {:>7} {:>4} {:>5} {:>8} {next:>7} {:<12} {}",
            t.nbuckets,
            t.skip_n,
            t.match_n,
            t.sessions().len(),
            action(dp, t.miss),
            hex(&t.mask, t.match_n)
        );
        if verbose || only.is_some() {
            for e in t.sessions() {
                let _ = writeln!(
                    s,
                    "      session key {} -> {}",
                    hex(&e.key, t.match_n),
                    action(dp, e.action)
                );
            }
        }
    }
    Ok(s)
}

fn inacl(dp: &Dataplane, af: Af) -> String {
    let c = classify::snapshot(dp);
    let f = dp.fwd();
    let mut s = String::from("  Intfc idx      Classify table    Interface name\n");
    for (a, sw, t) in c.inacls() {
        if a != af {
            continue;
        }
        let name = f.ifs().get(sw).map_or("?", |i| i.name.as_str());
        let _ = writeln!(s, "{sw:>11} {t:>19}    {name}");
    }
    s
}

fn redirects(dp: &Dataplane) -> String {
    let mut s = String::new();
    let f = dp.fwd();
    for (i, r) in classify::redirect_list(dp).iter().enumerate() {
        let via = match (r.path.kind, r.path.sw_if_index) {
            (PathKind::Lookup(t), _) => format!("lookup in table {t}"),
            (_, Some(sw)) => {
                let name = f
                    .ifs()
                    .get(sw)
                    .map_or_else(|| sw.to_string(), |i| i.name.clone());
                match r.path.next_hop {
                    Some(nh) => format!("via {nh} {name}"),
                    None => format!("via {name}"),
                }
            }
            _ => "drop".into(),
        };
        let m: String = r.matched.iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(
            s,
            "[{i}] table {} match {m}\n     {via} (adj {})",
            r.table, r.adj
        );
    }
    s
}

fn pbl_clients(dp: &Dataplane) -> String {
    let mut s = String::new();
    for (id, table, c) in crate::service::pbl::list(dp) {
        let addr: std::net::IpAddr = if c.is_ip6 {
            std::net::Ipv6Addr::from(c.addr).into()
        } else {
            std::net::Ipv4Addr::from(c.addr as u32).into()
        };
        let ports: Vec<String> = c
            .ranges
            .iter()
            .map(|&(p, a, b)| {
                let name = match p {
                    6 => "tcp".to_string(),
                    17 => "udp".to_string(),
                    p => format!("proto {p}"),
                };
                format!("{name} {a}-{b}")
            })
            .collect();
        let _ = writeln!(
            s,
            "[{id}] pbl-client: {addr} table {table} ports [{}]\n     matched -> {}, others -> lb {}",
            ports.join(", "),
            action(dp, Action::Redirect(c.path_adj)),
            c.parent_lb
        );
    }
    s
}
