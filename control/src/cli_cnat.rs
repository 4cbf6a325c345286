//! cnat CLI: `show cnat translation`, `show cnat session`, `show cnat snat`,
//! `clear cnat session`, `set cnat timeouts`, `set cnat snat-policy ...` (VPP's syntax). Reads
//! and edits the dataplane's one `Cnat`; SNAT edits go through `service::cnat`, as the API's.

use crate::daemon::Dataplane;
use rvpp_dataplane::cnat::session::{sflags, stage, Timeouts};
use rvpp_dataplane::cnat::snat::IfTable;
use rvpp_dataplane::cnat::translation::{tflags, Endpoint, LbType, PathEp, Translation};
use std::fmt::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

pub fn execute(dp: &Arc<Dataplane>, words: &[&str]) -> Option<Result<String, String>> {
    Some(match words {
        ["show", "cnat", "translation", ..] => Ok(show_translations(dp)),
        ["show", "cnat", "session", ..] => Ok(show_sessions(dp)),
        ["show", "cnat", "snat", ..] => Ok(show_snat(dp)),
        ["clear", "cnat", "session", ..] => {
            let n = dp.cnat().purge();
            Ok(format!("{n} sessions removed\n"))
        }
        ["set", "cnat", "timeouts", rest @ ..] => set_timeouts(dp, rest),
        ["set", "cnat", "snat-policy", "addr", rest @ ..] => snat_addr(dp, rest),
        ["set", "cnat", "snat-policy", "prefix", rest @ ..] => snat_prefix(dp, rest),
        ["set", "cnat", "snat-policy", "if", rest @ ..] => snat_if(dp, rest),
        ["set", "cnat", "snat-policy", p] => snat_policy(dp, p),
        ["cnat", "translation", "add", rest @ ..] => translation_add(dp, rest),
        ["cnat", "translation", "del", id] => {
            let id = id.parse::<u32>().map_err(|_| format!("bad id `{id}'"));
            match id {
                Ok(id) if dp.cnat().translation_del(id) => Ok(String::new()),
                Ok(id) => Err(format!("no translation {id}")),
                Err(e) => Err(e),
            }
        }
        ["set", "cnat", "interface", ifn, rest @ ..] => {
            let on = !matches!(rest, ["disable"]);
            crate::cli::sw(dp, ifn).and_then(|sw| {
                rvpp_dataplane::nodes::cnat::feature_enable(&mut dp.fwd(), sw, on)
                    .map(|()| String::new())
                    .map_err(|e| format!("cnat feature: {e}"))
            })
        }
        _ => return None,
    })
}

const V4_MAPPED: u128 = 0xffff_0000_0000;

fn snat_err(e: crate::service::SvcError) -> String {
    e.msg
}

/// `set cnat snat-policy addr [<ip4>] [<ip6>] [<interface>]`: in VPP's CLI the tables are 0.
fn snat_addr(dp: &Arc<Dataplane>, w: &[&str]) -> Result<String, String> {
    let mut a = crate::service::cnat::SnatAddresses {
        ip4: 0,
        ip6: 0,
        sw_if_index: u32::MAX,
        fwd_fib_index: 0,
        ret_fib_index: 0,
        flags: 0,
    };
    for &t in w {
        if let Ok(v4) = t.parse::<Ipv4Addr>() {
            a.ip4 = V4_MAPPED | u32::from(v4) as u128;
        } else if let Ok(v6) = t.parse::<Ipv6Addr>() {
            a.ip6 = u128::from(v6);
        } else {
            a.sw_if_index = crate::cli::sw(dp, t)?;
        }
    }
    crate::service::cnat::set_addresses(dp, a).map_err(snat_err)?;
    Ok(String::new())
}

/// `set cnat snat-policy prefix [del] <prefix>`: a destination never source-NATed.
fn snat_prefix(dp: &Arc<Dataplane>, w: &[&str]) -> Result<String, String> {
    let (add, p) = match w {
        ["del", p] => (false, *p),
        [p] => (true, *p),
        _ => return Err("usage: set cnat snat-policy prefix [del] <prefix>".into()),
    };
    let bad = || format!("bad prefix `{p}'");
    let (a, l) = p.split_once('/').ok_or_else(bad)?;
    let len: u8 = l.parse().map_err(|_| bad())?;
    let (addr, len) = if let Ok(v4) = a.parse::<Ipv4Addr>() {
        if len > 32 {
            return Err(bad());
        }
        (V4_MAPPED | u32::from(v4) as u128, len + 96)
    } else {
        (u128::from(a.parse::<Ipv6Addr>().map_err(|_| bad())?), len)
    };
    crate::service::cnat::exclude(dp, addr, len, add).map_err(snat_err)?;
    Ok(String::new())
}

/// `set cnat snat-policy if [del] [table include-v4|include-v6|k8s|host] <interface>` (`k8s`
/// is the pod table).
fn snat_if(dp: &Arc<Dataplane>, w: &[&str]) -> Result<String, String> {
    let (mut add, mut table, mut sw) = (true, IfTable::IncludeV4, None);
    let mut it = w.iter();
    while let Some(&t) = it.next() {
        match t {
            "del" => add = false,
            "table" => {
                table = match it.next().copied() {
                    Some("include-v4") => IfTable::IncludeV4,
                    Some("include-v6") => IfTable::IncludeV6,
                    Some("k8s") => IfTable::Pod,
                    Some("host") => IfTable::Host,
                    other => return Err(format!("unknown table `{}'", other.unwrap_or(""))),
                }
            }
            name => sw = Some(crate::cli::sw(dp, name)?),
        }
    }
    let sw = sw.ok_or("Interface not specified")?;
    crate::service::cnat::interface(dp, sw, table, add).map_err(snat_err)?;
    Ok(String::new())
}

/// `set cnat snat-policy none|if-pfx|k8s|dnat`.
fn snat_policy(dp: &Arc<Dataplane>, p: &str) -> Result<String, String> {
    use rvpp_dataplane::cnat::snat::Policy;
    let p = match p {
        "none" => Policy::None,
        "if-pfx" => Policy::IfPfx,
        "k8s" => Policy::K8s,
        "dnat" => Policy::Dnat,
        _ => return Err(format!("unknown input `{p}'")),
    };
    crate::service::cnat::set_policy(dp, p);
    Ok(String::new())
}

fn addr(a: u128, ip6: bool) -> String {
    if ip6 {
        Ipv6Addr::from(a).to_string()
    } else {
        Ipv4Addr::from(a as u32).to_string()
    }
}

fn ep(e: &Endpoint) -> String {
    if e.is_set() {
        format!("{};{}", addr(e.addr, e.ip6), e.port)
    } else {
        format!("-;{}", e.port)
    }
}

fn proto(p: u8) -> &'static str {
    match p {
        6 => "TCP",
        17 => "UDP",
        132 => "SCTP",
        1 | 58 => "ICMP",
        _ => "?",
    }
}

fn show_translations(dp: &Dataplane) -> String {
    let t = dp.cnat().translations.load();
    let mut v: Vec<_> = t.iter().collect();
    v.sort_by_key(|t| t.id);
    let mut o = String::new();
    for t in v {
        let _ = writeln!(
            o,
            "[{}] {} {} lb:{} flags:0x{:x} fhc:0x{:x}{}",
            t.id,
            ep(&t.vip),
            proto(t.proto),
            if t.lb == LbType::Maglev {
                "maglev"
            } else {
                "default"
            },
            t.flags,
            t.flow_hash_fields(),
            if t.is_real_ip { " real-ip" } else { "" }
        );
        for p in &t.paths {
            let _ = writeln!(
                o,
                "  {} -> {} flags:0x{:x}",
                ep(&p.src),
                ep(&p.dst),
                p.flags
            );
        }
    }
    o
}

fn show_sessions(dp: &Dataplane) -> String {
    let c = dp.cnat();
    let now = c.now();
    let t = c.timeouts();
    let mut o = format!(
        "sessions: {} of {} (limit)\n",
        c.sessions.len(),
        c.sessions.limit()
    );
    c.sessions.for_each(|_, k, s| {
        let dir = if s.flags & sflags::RETURN != 0 {
            "return"
        } else {
            "forward"
        };
        let st = if k.stage == stage::OUTPUT {
            "output"
        } else {
            "input"
        };
        let left = t.of(s.class) as i64 - now.wrapping_sub(s.last_seen) as i64;
        let _ = writeln!(
            o,
            "{} {};{} -> {};{} fib {} [{} {}] => {};{} -> {};{} translation {} expires in {}s",
            proto(k.proto),
            addr(k.src, k.ip6),
            k.sport,
            addr(k.dst, k.ip6),
            k.dport,
            k.fib,
            st,
            dir,
            addr(s.rw.src, k.ip6),
            s.rw.sport,
            addr(s.rw.dst, k.ip6),
            s.rw.dport,
            if s.translation == u32::MAX {
                "-".to_string()
            } else {
                s.translation.to_string()
            },
            left.max(0)
        );
    });
    o
}

fn show_snat(dp: &Dataplane) -> String {
    let c = dp.cnat().snat.load();
    let mut o = String::new();
    let _ = writeln!(
        o,
        "snat ip4: {} ip6: {} sw_if_index {} fwd fib {} ret fib {} flags 0x{:x}",
        if c.ip4 == 0 {
            "-".into()
        } else {
            addr(c.ip4, false)
        },
        if c.ip6 == 0 {
            "-".into()
        } else {
            addr(c.ip6, true)
        },
        if c.sw_if_index == u32::MAX {
            "~0".to_string()
        } else {
            c.sw_if_index.to_string()
        },
        c.fwd_fib_index,
        c.ret_fib_index,
        c.flags
    );
    let _ = writeln!(o, "policy: {:?}", c.policy);
    let mut ex: Vec<_> = c.exclude.iter().collect();
    ex.sort();
    for (a, l) in ex {
        let v4 = a >> 32 == 0xffff;
        let _ = writeln!(
            o,
            "exclude {}/{}",
            addr(a, !v4),
            if v4 { l - 96 } else { l }
        );
    }
    // Every table, empty ones too: what a removal left is then visible.
    for t in IfTable::ALL {
        let _ = writeln!(o, "{t:?} interfaces: {:?}", c.tables.members(t));
    }
    o
}

fn endpoint(a: &str, port: &str) -> Result<Endpoint, String> {
    let ip: std::net::IpAddr = a.parse().map_err(|_| format!("bad address `{a}'"))?;
    let port: u16 = port.parse().map_err(|_| format!("bad port `{port}'"))?;
    Ok(match ip {
        std::net::IpAddr::V4(v) => Endpoint {
            addr: 0xffff_0000_0000 | u32::from(v) as u128,
            port,
            ip6: false,
        },
        std::net::IpAddr::V6(v) => Endpoint {
            addr: u128::from(v),
            port,
            ip6: true,
        },
    })
}

/// `cnat translation add proto tcp|udp vip <ip> <port> [maglev] to <ip> <port> [to ...]`:
/// the same translation the API's `cnat_translation_update` makes (calico's flags).
fn translation_add(dp: &Dataplane, w: &[&str]) -> Result<String, String> {
    let mut t = Translation {
        flags: tflags::ALLOC_PORT | tflags::NO_CLIENT,
        ..Default::default()
    };
    let mut it = w.iter().copied();
    while let Some(k) = it.next() {
        match k {
            "proto" => {
                t.proto = match it.next() {
                    Some("tcp" | "TCP") => 6,
                    Some("udp" | "UDP") => 17,
                    Some("sctp" | "SCTP") => 132,
                    p => return Err(format!("bad proto {p:?}")),
                }
            }
            "vip" | "real" => {
                t.is_real_ip = k == "real";
                let (a, p) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
                t.vip = endpoint(a, p)?;
            }
            "maglev" => t.lb = LbType::Maglev,
            "to" => {
                let (a, p) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
                t.paths.push(PathEp {
                    dst: endpoint(a, p)?,
                    ..Default::default()
                });
            }
            _ => return Err(format!("unexpected `{k}'")),
        }
    }
    if t.proto == 0 || !t.vip.is_set() {
        return Err("expected proto and vip".into());
    }
    if t.paths.iter().any(|p| p.dst.ip6 != t.vip.ip6) {
        return Err("a path of the other address family".into());
    }
    let id = dp.cnat().translation_update(t);
    Ok(format!("{id}\n"))
}

fn set_timeouts(dp: &Dataplane, w: &[&str]) -> Result<String, String> {
    let mut t: Timeouts = dp.cnat().timeouts();
    let mut it = w.iter();
    while let Some(k) = it.next() {
        let v: u32 = it
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("`{k}' needs seconds"))?;
        match *k {
            "generic" | "udp" => t.generic = v,
            "tcp" | "tcp-established" => t.tcp_established = v,
            "tcp-closing" | "tcp-transitory" => t.tcp_closing = v,
            "affinity" => t.affinity = v,
            _ => return Err(format!("unknown timeout `{k}'")),
        }
    }
    dp.cnat().set_timeouts(t);
    Ok(String::new())
}
