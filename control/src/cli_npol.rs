//! npol CLI: `show npol ipsets|rules|policies|interfaces`, `npol match` (which verdict a
//! 5-tuple gets on an interface, and from the tables as they are now, not the flow cache) and
//! `clear npol flows`. Reads the dataplane's one `Npol`.

use crate::daemon::Dataplane;
use rvpp_dataplane::npol::ipset::Member;
use rvpp_dataplane::npol::rule::{FilterKind, MatchData, Rule};
use rvpp_dataplane::npol::{
    sections, stage_verdict, verdict, Direction, FiveTuple, IfConfig, Stage, Verdict,
};
use std::fmt::Write;
use std::net::IpAddr;
use std::sync::Arc;

pub fn execute(dp: &Arc<Dataplane>, words: &[&str]) -> Option<Result<String, String>> {
    Some(match words {
        ["show", "npol", "ipsets", ..] => Ok(show_ipsets(dp)),
        ["show", "npol", "rules", ..] => Ok(show_rules(dp)),
        ["show", "npol", "policies", ..] => Ok(show_policies(dp)),
        ["show", "npol", "interfaces", ..] => Ok(show_interfaces(dp)),
        ["npol", "match", rest @ ..] => npol_match(dp, rest),
        ["clear", "npol", "flows", ..] => {
            Ok(format!("{} flows removed\n", dp.npol().flush_flows()))
        }
        _ => return None,
    })
}

fn ids(v: &[u32]) -> String {
    let s: Vec<String> = v.iter().map(u32::to_string).collect();
    format!("[{}]", s.join(","))
}

fn show_ipsets(dp: &Dataplane) -> String {
    let t = dp.npol().tables.load();
    let mut out = String::new();
    for (id, s) in &t.ipsets {
        let _ = writeln!(out, "[ipset {id}] {} ({} members)", s.kind.name(), s.len());
        for m in s.members() {
            let _ = match m {
                Member::Ip(a) => writeln!(out, "  {a}"),
                Member::Net(n) => writeln!(out, "  {n}"),
                Member::Tuple(a, p, port) => writeln!(out, "  {a} proto {p} port {port}"),
            };
        }
    }
    out
}

fn rule_text(r: &Rule) -> String {
    let mut s = r.action.name().to_string();
    for f in &r.filters {
        let what = match f.kind {
            FilterKind::None => continue,
            FilterKind::IcmpType => "icmp-type",
            FilterKind::IcmpCode => "icmp-code",
            FilterKind::L4Proto => "proto",
        };
        let op = if f.should_match { "==" } else { "!=" };
        let _ = write!(s, " {what}{op}{}", f.value);
    }
    for e in &r.entries {
        let side = if e.is_src { "src" } else { "dst" };
        let not = if e.is_not { "!" } else { "" };
        let _ = match e.data {
            MatchData::Cidr(n) => write!(s, " {side} {not}{n}"),
            MatchData::PortRange(a, b) => write!(s, " {side} {not}port {a}-{b}"),
            MatchData::PortIpSet(id) => write!(s, " {side} {not}port-ipset {id}"),
            MatchData::IpSet(id) => write!(s, " {side} {not}ipset {id}"),
        };
    }
    s
}

fn show_rules(dp: &Dataplane) -> String {
    let t = dp.npol().tables.load();
    let mut out = String::new();
    for (id, r) in &t.rules {
        let _ = writeln!(out, "[rule {id}] {}", rule_text(r));
    }
    out
}

fn show_policies(dp: &Dataplane) -> String {
    let t = dp.npol().tables.load();
    let mut out = String::new();
    for (id, p) in &t.policies {
        let _ = writeln!(
            out,
            "[policy {id}] inbound {} outbound {}",
            ids(&p.inbound),
            ids(&p.outbound)
        );
    }
    out
}

/// A policy list; a host endpoint's with untracked or pre-DNAT sections shows each section.
fn list_text(v: &[u32]) -> String {
    let s = sections(v);
    if s.normal.len() == v.len() {
        return ids(v);
    }
    format!(
        "untracked {} pre-dnat {} normal {}",
        ids(s.untracked),
        ids(s.prednat),
        ids(s.normal)
    )
}

fn if_text(c: &IfConfig) -> String {
    format!(
        "rx {} tx {} profiles {} invert_rx_tx {} policy-default rx {} tx {} profile-default rx {} tx {}",
        list_text(&c.rx_policies),
        list_text(&c.tx_policies),
        ids(&c.profiles),
        u8::from(c.invert_rx_tx),
        c.policy_default_rx.name(),
        c.policy_default_tx.name(),
        c.profile_default_rx.name(),
        c.profile_default_tx.name()
    )
}

fn show_interfaces(dp: &Dataplane) -> String {
    let t = dp.npol().tables.load();
    let f = dp.fwd();
    let mut out = String::new();
    for (sw, c) in &t.ifaces {
        let name = f
            .iface(*sw)
            .map_or("(deleted)".to_string(), |i| i.name.clone());
        let _ = writeln!(out, "{name} (sw_if_index {sw}): {}", if_text(c));
    }
    let n = dp.npol();
    let _ = writeln!(
        out,
        "cached verdicts: {} of {}",
        n.flows.len(),
        n.flows.limit()
    );
    out
}

/// `<addr>;<port>`, or a bare address.
fn endpoint(s: &str) -> Result<(IpAddr, u16), String> {
    let (a, p) = s.split_once(';').unwrap_or((s, "0"));
    let a = a.parse().map_err(|_| format!("bad address `{a}'"))?;
    let p = p.parse().map_err(|_| format!("bad port `{p}'"))?;
    Ok((a, p))
}

/// `npol match <if> rx|tx <src>[;<port>]-><dst>[;<port>] tcp|udp|icmp|icmp6|<proto>
/// [type <t> code <c>]`.
fn npol_match(dp: &Dataplane, w: &[&str]) -> Result<String, String> {
    const USAGE: &str =
        "usage: npol match <if> rx|tx <src>[;<port>]-><dst>[;<port>] tcp|udp|icmp|icmp6|<proto> [type <t> code <c>]";
    let [ifn, dir, flow, proto, rest @ ..] = w else {
        return Err(USAGE.into());
    };
    let sw = crate::cli::sw(dp, ifn)?;
    let dir = match *dir {
        "rx" | "inbound" => Direction::Rx,
        "tx" | "outbound" => Direction::Tx,
        _ => return Err(USAGE.into()),
    };
    let (src, dst) = flow.split_once("->").ok_or(USAGE)?;
    let ((src, sport), (dst, dport)) = (endpoint(src)?, endpoint(dst)?);
    if src.is_ipv6() != dst.is_ipv6() {
        return Err("addresses of two families".into());
    }
    let proto: u8 = match *proto {
        "tcp" => 6,
        "udp" => 17,
        "icmp" => 1,
        "icmp6" => 58,
        p => p.parse().map_err(|_| format!("bad protocol `{p}'"))?,
    };
    let (mut icmp_type, mut icmp_code) = (0u8, 0u8);
    let mut it = rest.iter();
    while let Some(k) = it.next() {
        let v = it.next().and_then(|v| v.parse::<u8>().ok()).ok_or(USAGE)?;
        match *k {
            "type" => icmp_type = v,
            "code" => icmp_code = v,
            _ => return Err(USAGE.into()),
        }
    }
    let ports = matches!(proto, 6 | 17);
    let p = FiveTuple {
        src,
        dst,
        proto,
        sport: if ports { sport } else { 0 },
        dport: if ports { dport } else { 0 },
        icmp_type,
        icmp_code,
    };
    let t = dp.npol().tables.load();
    let configured = t.ifaces.contains_key(&sw);
    // The stages in the order packets meet them: untracked, pre-DNAT (rx), normal.
    let staged = stage_verdict(&t, sw, dir, Stage::Untracked, &p)
        .map(|v| (v, " (untracked)"))
        .or_else(|| {
            (dir == Direction::Rx)
                .then(|| stage_verdict(&t, sw, dir, Stage::PreDnat, &p))
                .flatten()
                .map(|v| (v, " (pre-dnat)"))
        });
    let (v, stage) = staged.unwrap_or_else(|| (verdict(&t, sw, dir, &p), ""));
    let v = match v {
        Verdict::Allow => "allow",
        Verdict::Deny => "deny",
    };
    let note = if configured {
        stage
    } else {
        " (interface not configured)"
    };
    Ok(format!("{v}{note}\n"))
}
