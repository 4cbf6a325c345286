//! WireGuard CLI in VPP's syntax, thin over `service::wireguard`:
//! `wireguard create listen-port <port> (private-key <base64> | generate-key) src <ip>
//! [instance <n>]`, `wireguard delete <wgN>`, `wireguard peer add <wgN> public-key <base64>
//! endpoint <ip> (port | dst-port) <n> allowed-ip <prefix> [allowed-ip ..] [persistent-keepalive <s>]
//! [table-id <n>]`, `wireguard peer remove <index>`, `show wireguard interface`,
//! `show wireguard peer`. Keys are base64, as `wg` prints them; the private key is never shown.

use crate::daemon::Dataplane;
use crate::service::wireguard::{self as wg, PeerRequest, WgRequest};
use std::fmt::Write;
use std::net::IpAddr;
use std::sync::Arc;

const CREATE_USAGE: &str = "wireguard create listen-port <port> (private-key <key> | \
                            generate-key) src <ip> [instance <n>]";
const PEER_USAGE: &str = "wireguard peer add <wg-interface> public-key <key> endpoint <ip> \
                          port <n> allowed-ip <prefix> [allowed-ip <prefix>].. \
                          [persistent-keepalive <s>] [table-id <n>]";

pub fn execute(dp: &Arc<Dataplane>, words: &[&str]) -> Option<Result<String, String>> {
    Some(match words {
        ["wireguard", "create", rest @ ..] => create(dp, rest),
        ["wireguard", "delete", name] => sw_of(dp, name)
            .and_then(|sw| wg::delete(dp, sw).map_err(|e| e.to_string()))
            .map(|()| String::new()),
        ["wireguard", "peer", "add", name, rest @ ..] => peer_add(dp, name, rest),
        ["wireguard", "peer", "remove", n] => n
            .parse()
            .map_err(|_| format!("bad peer index `{n}'"))
            .and_then(|i| wg::peer_remove(dp, i).map_err(|e| e.to_string()))
            .map(|()| String::new()),
        ["show", "wireguard", "interface", ..] => Ok(show_interfaces(dp)),
        ["show", "wireguard", "peer", ..] => Ok(show_peers(dp)),
        _ => return None,
    })
}

fn sw_of(dp: &Dataplane, name: &str) -> Result<u32, String> {
    dp.fwd()
        .ifs()
        .by_name(name)
        .map(|i| i.sw_if_index)
        .ok_or_else(|| format!("unknown interface `{name}'"))
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// A key as `wg` prints it: standard base64 with padding.
pub fn key_b64(k: &[u8; 32]) -> String {
    let mut s = String::with_capacity(44);
    for c in k.chunks(3) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= c.len() {
                s.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// A base64 key (44 characters) back to its 32 bytes.
pub fn key_from_b64(s: &str) -> Option<[u8; 32]> {
    let s = s.as_bytes();
    if s.len() != 44 || s[43] != b'=' {
        return None;
    }
    let mut out = Vec::with_capacity(33);
    for c in s.chunks(4) {
        let mut n = 0u32;
        let mut valid = 0;
        for (i, &ch) in c.iter().enumerate() {
            if ch == b'=' {
                continue;
            }
            let v = B64.iter().position(|&b| b == ch)? as u32;
            n |= v << (18 - 6 * i);
            valid += 1;
        }
        for i in 0..valid - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out.try_into().ok()
}

fn create(dp: &Arc<Dataplane>, w: &[&str]) -> Result<String, String> {
    let (mut port, mut src, mut key, mut gen, mut instance) = (None, None, None, false, None);
    let mut i = 0;
    while i < w.len() {
        let val = w.get(i + 1).copied().ok_or(CREATE_USAGE);
        match w[i] {
            "listen-port" => port = Some(val?.parse::<u16>().map_err(|_| CREATE_USAGE)?),
            "src" => src = Some(val?.parse::<IpAddr>().map_err(|_| CREATE_USAGE)?),
            "private-key" => key = Some(key_from_b64(val?).ok_or("bad private key")?),
            "instance" => instance = Some(val?.parse::<u32>().map_err(|_| CREATE_USAGE)?),
            "generate-key" => {
                gen = true;
                i += 1;
                continue;
            }
            _ => return Err(CREATE_USAGE.into()),
        }
        i += 2;
    }
    let (Some(port), Some(src)) = (port, src) else {
        return Err(CREATE_USAGE.into());
    };
    if key.is_none() && !gen {
        return Err(CREATE_USAGE.into());
    }
    let req = WgRequest {
        instance,
        port,
        src,
        private_key: key,
    };
    let (_, name) = wg::create(dp, req).map_err(|e| e.to_string())?;
    Ok(format!("{name}\n"))
}

fn prefix(s: &str) -> Option<(IpAddr, u8)> {
    let (a, l) = s.split_once('/')?;
    let a: IpAddr = a.parse().ok()?;
    let l: u8 = l.parse().ok()?;
    (l <= if a.is_ipv4() { 32 } else { 128 }).then_some((a, l))
}

fn peer_add(dp: &Arc<Dataplane>, name: &str, w: &[&str]) -> Result<String, String> {
    let sw = sw_of(dp, name)?;
    let (mut key, mut ep, mut port, mut ka, mut table) = (None, None, None, 0u16, 0u32);
    let mut allowed = Vec::new();
    for pair in w.chunks(2) {
        let [k, v] = pair else {
            return Err(PEER_USAGE.into());
        };
        match *k {
            "public-key" => key = Some(key_from_b64(v).ok_or("bad public key")?),
            "endpoint" => ep = Some(v.parse::<IpAddr>().map_err(|_| PEER_USAGE)?),
            "port" | "dst-port" => port = Some(v.parse::<u16>().map_err(|_| PEER_USAGE)?),
            "allowed-ip" => allowed.push(prefix(v).ok_or("bad allowed-ip prefix")?),
            "persistent-keepalive" => ka = v.parse().map_err(|_| PEER_USAGE)?,
            "table-id" => table = v.parse().map_err(|_| PEER_USAGE)?,
            _ => return Err(PEER_USAGE.into()),
        }
    }
    let (Some(public_key), Some(endpoint), Some(port)) = (key, ep, port) else {
        return Err(PEER_USAGE.into());
    };
    let req = PeerRequest {
        sw_if_index: sw,
        public_key,
        endpoint,
        port,
        persistent_keepalive: ka,
        table_id: table,
        allowed,
    };
    let i = wg::peer_add(dp, req).map_err(|e| e.to_string())?;
    Ok(format!("peer index {i}\n"))
}

fn if_name(dp: &Dataplane, sw: u32) -> String {
    dp.fwd()
        .iface(sw)
        .map_or_else(|_| format!("sw_if_index {sw}"), |i| i.name.clone())
}

fn show_interfaces(dp: &Dataplane) -> String {
    let mut s = String::new();
    for (i, _) in wg::list(dp, None) {
        let _ = writeln!(
            s,
            "[{}] {} src:{} port:{} public-key:{}",
            i.instance,
            if_name(dp, i.sw_if_index),
            i.src,
            i.port,
            key_b64(&i.public)
        );
    }
    let _ = writeln!(s, "handshake counters:");
    for (name, v) in wg::counters(dp) {
        let _ = writeln!(s, "  {v:>10} {name}");
    }
    s
}

fn show_peers(dp: &Dataplane) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let mut s = String::new();
    let ifs = wg::list(dp, None);
    for v in wg::peers(dp, None) {
        let p = &v.peer;
        let (src, lport) = ifs
            .iter()
            .find(|(i, _)| i.sw_if_index == p.sw_if_index)
            .map_or((None, 0), |(i, _)| (Some(i.src), i.port));
        let src = src.map_or_else(|| "-".to_string(), |a| a.to_string());
        let flags = if v.established {
            "0x2 (established)"
        } else {
            "0x1 (dead)"
        };
        let _ = writeln!(
            s,
            "[{}] endpoint:[{src}:{lport}->{}:{}] {} keep-alive:{} flags: {flags}",
            p.index,
            p.endpoint,
            p.port,
            if_name(dp, p.sw_if_index),
            p.persistent_keepalive
        );
        let _ = writeln!(s, "  public-key:{}", key_b64(&p.public));
        let hs = v
            .handshake_age_s
            .map_or_else(|| "never".to_string(), |a| format!("{a}s ago"));
        let _ = writeln!(
            s,
            "  latest handshake: {hs}, rx bytes {}, tx bytes {}",
            p.activity.rx_bytes.load(Relaxed),
            p.activity.tx_bytes.load(Relaxed)
        );
        let ips: Vec<String> = p.allowed.iter().map(|(a, l)| format!("{a}/{l}")).collect();
        let _ = writeln!(s, "  allowed-ips: {}", ips.join(" "));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_keys_round_trip_as_wg_prints_them() {
        let k: [u8; 32] = std::array::from_fn(|i| (i * 37 + 5) as u8);
        let s = key_b64(&k);
        assert_eq!(s.len(), 44);
        assert_eq!(key_from_b64(&s), Some(k));
        // `wg genkey` output of 32 zero bytes.
        assert_eq!(
            key_b64(&[0; 32]),
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
        );
        assert_eq!(key_from_b64("not a key"), None);
        assert_eq!(
            key_from_b64("!AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            None
        );
    }
}
