//! IPsec CLI with VPP's syntax, over `service::ipsec`:
//! `ipsec sa add <id> spi <spi> esp crypto-alg aes-gcm-128|aes-gcm-256 crypto-key <hex>
//! [salt <n>] [use-esn] [use-anti-replay] [inbound] [udp-encap] [tunnel src <ip> dst <ip>
//! [table <id>]]`, `ipsec sa del <id>`,
//! `ipsec tunnel protect <interface> sa-in <id>... sa-out <id> [del]` (also `input-sa`,
//! `output-sa`), `ipsec itf create [instance <n>]`, `ipsec itf delete <interface>`,
//! `show ipsec sa [<id>]`, `show ipsec protect`, `show ipsec tunnel`.

use crate::daemon::Dataplane;
use crate::service::ipsec::{self, CryptoAlg, IntegAlg, SaRequest};
use std::fmt::Write;
use std::sync::Arc;

const SA_USAGE: &str = "usage: ipsec sa add <id> spi <spi> esp crypto-alg aes-gcm-128|aes-gcm-256|aes-cbc-128|aes-cbc-192|aes-cbc-256 crypto-key <hex> [integ-alg sha1-96|sha-256-96|sha-256-128 integ-key <hex>] [salt <n>] [use-esn] [use-anti-replay] [inbound] [udp-encap] [tunnel src <ip> dst <ip> [table <id>]]";
const PROTECT_USAGE: &str =
    "usage: ipsec tunnel protect <interface> sa-in <id> [sa-in <id>...] sa-out <id> [del]";

pub fn execute(dp: &Arc<Dataplane>, words: &[&str]) -> Option<Result<String, String>> {
    Some(match words {
        ["ipsec", "sa", "add", rest @ ..] => sa_add(dp, rest),
        ["ipsec", "sa", "del", id] => num(id)
            .and_then(|id| ipsec::sa_del(dp, id).map_err(|e| e.to_string()))
            .map(|_| String::new()),
        ["ipsec", "sa", ..] => Err(SA_USAGE.into()),
        ["ipsec", "tunnel", "protect", ifname, rest @ ..] => protect(dp, ifname, rest),
        ["ipsec", "tunnel", ..] => Err(PROTECT_USAGE.into()),
        ["ipsec", "itf", "create"] => itf_create(dp, None),
        ["ipsec", "itf", "create", "instance", n] => match num(n) {
            Ok(n) => itf_create(dp, Some(n)),
            Err(e) => Err(e),
        },
        ["ipsec", "itf", "delete", ifname] => crate::cli::sw(dp, ifname)
            .and_then(|sw| ipsec::itf_delete(dp, sw).map_err(|e| e.to_string()))
            .map(|_| String::new()),
        ["show", "ipsec", "sa"] => Ok(show_sa(dp, None)),
        ["show", "ipsec", "sa", id] => num(id).map(|id| show_sa(dp, Some(id))),
        ["show", "ipsec", "protect"] => Ok(show_protect(dp)),
        ["show", "ipsec", "tunnel"] => Ok(show_tunnel(dp)),
        ["show", "ipsec"] => Ok(format!("{}{}", show_sa(dp, None), show_protect(dp))),
        _ => return None,
    })
}

fn num(s: &str) -> Result<u32, String> {
    let r = match s.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("not a number: {s}"))
}

/// Hex digits (an optional `0x`) as bytes; also used by the IKEv2 CLI for keys and ids.
pub(crate) fn hex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    if !s.len().is_multiple_of(2) {
        return Err("a key is an even number of hex digits".into());
    }
    // `get`, not indexing: a multi-byte character must be an error, not a panic.
    (0..s.len() / 2)
        .map(|i| {
            s.get(2 * i..2 * i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("not hex: {s}"))
        })
        .collect()
}

fn sa_add(dp: &Dataplane, w: &[&str]) -> Result<String, String> {
    let (id, mut rest) = match w {
        [id, rest @ ..] => (num(id)?, rest),
        _ => return Err(SA_USAGE.into()),
    };
    let mut r = SaRequest {
        id,
        spi: 0,
        alg: CryptoAlg::AesGcm128,
        key: Vec::new(),
        integ: IntegAlg::None,
        integ_key: Vec::new(),
        salt: 0,
        esn: false,
        anti_replay: false,
        inbound: false,
        udp_encap: None,
        tunnel: None,
    };
    let (mut src, mut dst, mut table) = (None, None, 0);
    while let [w, tail @ ..] = rest {
        rest = tail;
        let mut arg = || -> Result<&str, String> {
            let (v, t) = rest
                .split_first()
                .ok_or_else(|| format!("{w} needs a value"))?;
            rest = t;
            Ok(v)
        };
        match *w {
            "spi" => r.spi = num(arg()?)?,
            "esp" => {}
            "crypto-alg" => {
                r.alg = match arg()? {
                    "aes-gcm-128" => CryptoAlg::AesGcm128,
                    "aes-gcm-256" => CryptoAlg::AesGcm256,
                    "aes-cbc-128" => CryptoAlg::AesCbc128,
                    "aes-cbc-192" => CryptoAlg::AesCbc192,
                    "aes-cbc-256" => CryptoAlg::AesCbc256,
                    a => {
                        return Err(format!(
                    "crypto-alg {a} is not implemented (aes-gcm-128/256, aes-cbc-128/192/256 are)"
                ))
                    }
                }
            }
            "crypto-key" => r.key = hex(arg()?)?,
            "integ-alg" => {
                r.integ = match arg()? {
                    "sha1-96" => IntegAlg::Sha1_96,
                    "sha-256-96" => IntegAlg::Sha256_96,
                    "sha-256-128" => IntegAlg::Sha256_128,
                    a => {
                        return Err(format!(
                        "integ-alg {a} is not implemented (sha1-96, sha-256-96, sha-256-128 are)"
                    ))
                    }
                }
            }
            "integ-key" => r.integ_key = hex(arg()?)?,
            "salt" => r.salt = num(arg()?)?,
            "use-esn" => r.esn = true,
            "use-anti-replay" => r.anti_replay = true,
            "inbound" => r.inbound = true,
            "udp-encap" => r.udp_encap = Some((4500, 4500)),
            "tunnel" => {}
            "src" | "tunnel-src" => {
                src = Some(
                    arg()?
                        .parse()
                        .map_err(|_| "bad tunnel source".to_string())?,
                )
            }
            "dst" | "tunnel-dst" => {
                dst = Some(
                    arg()?
                        .parse()
                        .map_err(|_| "bad tunnel destination".to_string())?,
                )
            }
            "table" => table = num(arg()?)?,
            other => return Err(format!("unknown word {other}; {SA_USAGE}")),
        }
    }
    r.tunnel = match (src, dst) {
        (Some(s), Some(d)) => Some((s, d, table)),
        (None, None) => None,
        _ => return Err("a tunnel needs both src and dst".into()),
    };
    ipsec::sa_add(dp, r).map_err(|e| e.to_string())?;
    Ok(String::new())
}

fn protect(dp: &Dataplane, ifname: &str, w: &[&str]) -> Result<String, String> {
    let sw = crate::cli::sw(dp, ifname)?;
    if w == ["del"] {
        ipsec::protect_del(dp, sw).map_err(|e| e.to_string())?;
        return Ok(String::new());
    }
    let (mut sa_in, mut sa_out) = (Vec::new(), None);
    let mut it = w.iter();
    while let Some(k) = it.next() {
        let v = it.next().ok_or(PROTECT_USAGE)?;
        match *k {
            "sa-in" | "input-sa" => sa_in.push(num(v)?),
            "sa-out" | "output-sa" => sa_out = Some(num(v)?),
            _ => return Err(PROTECT_USAGE.into()),
        }
    }
    let out = sa_out.ok_or(PROTECT_USAGE)?;
    ipsec::protect_update(dp, sw, out, &sa_in).map_err(|e| e.to_string())?;
    Ok(String::new())
}

fn itf_create(dp: &Dataplane, instance: Option<u32>) -> Result<String, String> {
    let (_, name) = ipsec::itf_create(dp, instance).map_err(|e| e.to_string())?;
    Ok(format!("{name}\n"))
}

fn show_sa(dp: &Dataplane, only: Option<u32>) -> String {
    let mut s = String::new();
    for sa in ipsec::sas(dp) {
        let c = &sa.cfg;
        if only.is_some_and(|id| id != c.id) {
            continue;
        }
        let _ = write!(
            s,
            "[{}] sa {} spi {} ({:#010x}) protocol:esp flags:[{}{}{}{}]\n   crypto alg {} salt {:#x}\n   integrity alg {}\n   seq {} ",
            c.id,
            c.id,
            c.spi,
            c.spi,
            if c.esn { "esn " } else { "" },
            if c.anti_replay { "anti-replay " } else { "" },
            if c.inbound { "inbound " } else { "" },
            if c.udp_encap.is_some() { "udp-encap" } else { "" },
            c.alg.name(),
            c.salt,
            c.integ.name(),
            sa.seq_outbound(),
        );
        let _ = writeln!(
            s,
            "last-seq-inbound {} replay-window {}",
            sa.replay.top(),
            rvpp_dataplane::ipsec::replay::WINDOW
        );
        if let Some((sp, dp_)) = sa.udp_encap() {
            let _ = writeln!(s, "   udp-encap src-port {sp} dst-port {dp_}");
        }
        if let Some(t) = c.tunnel {
            let _ = writeln!(s, "   tunnel {} -> {} table {}", t.src, t.dst, t.table_id);
        }
    }
    s
}

fn if_name(dp: &Dataplane, sw: u32) -> String {
    dp.fwd()
        .ifs()
        .get(sw)
        .map_or_else(|| sw.to_string(), |i| i.name.clone())
}

fn show_protect(dp: &Dataplane) -> String {
    let mut s = String::new();
    for p in ipsec::protections(dp, None) {
        let _ = writeln!(
            s,
            "{}\n  output-sa: [{}]\n  input-sa: {:?}",
            if_name(dp, p.sw_if_index),
            p.sa_out,
            p.sa_in
        );
    }
    s
}

fn show_tunnel(dp: &Dataplane) -> String {
    let mut s = String::new();
    for p in ipsec::protections(dp, None) {
        let _ = writeln!(
            s,
            "{}: {} -> {} encap-fib {} sa-out {} sa-in {:?}",
            if_name(dp, p.sw_if_index),
            p.outer.src,
            p.outer.dst,
            p.outer.encap_fib,
            p.sa_out,
            p.sa_in
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::hex;

    #[test]
    fn hex_refuses_what_is_not_hex_without_panicking() {
        assert_eq!(hex("0x00ff10"), Ok(vec![0x00, 0xff, 0x10]));
        assert!(hex("abc").is_err());
        assert!(hex("zz").is_err());
        // Four bytes whose first pair ends inside `é`: slicing there would panic.
        assert!(hex("aéa").is_err());
    }
}
