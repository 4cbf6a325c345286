//! What snapshot version 6 adds: WireGuard, so that encrypted pod traffic flows on across a
//! live restart with no new handshake. The interfaces (instance, sw_if_index, port, source,
//! private key), the peers under their indices (public key, endpoint as roamed, keepalive,
//! allowed IPs, outer table) and each peer's live session: its keypairs (current and the one
//! before; a responder's not yet confirmed one with its flag) with their keys, the send
//! counter, the replay window, when it was made (rekey on time), the activity
//! its timers read, the last initiation's timestamp and a cookie. Times are the old
//! process's engine clock, which the new one runs on (`wireguard::continue_clock`).
//!
//! Keys travel only in the snapshot, over the take-over socket (root only, its peer checked
//! to be of this process's user), and are never logged. A handshake in flight is not
//! carried: the new process starts one when its keypair wants it. The routes through a wg
//! interface are API routes, carried as any other.

use super::overlay::{hex, unhex};
use super::{bad, flag, get, list, num, num32, text};
use crate::daemon::Dataplane;
use crate::service::wireguard as wg;
use rvpp_dataplane::forwarding::Forwarding;
use rvpp_dataplane::wireguard::engine::{IfHandover, PeerConfig, PeerHandover};
use rvpp_dataplane::wireguard::node;
use rvpp_dataplane::wireguard::noise::{Key, SessionKeys};
use rvpp_dataplane::wireguard::session::{KeypairState, WORDS};
use rvpp_dataplane::wireguard::table::PeerActivity;
use serde_json::{json, Map, Value};
use std::net::IpAddr;

/// Interface `sw` is a wg interface.
pub(super) fn carried_interface(dp: &Dataplane, sw: u32) -> bool {
    !wg::list(dp, Some(sw)).is_empty()
}

/// Feature `arc`/`node` on `sw` is one a wg interface has on (and its restore turns on).
pub(super) fn carried_feature(dp: &Dataplane, sw: u32, arc: &str, n: &str) -> bool {
    node::FEATURES.iter().any(|f| f.arc == arc && f.node == n) && carried_interface(dp, sw)
}

/// The configuration holds what version 6 adds.
pub(super) fn needs_version_6(dp: &Dataplane) -> bool {
    !wg::list(dp, None).is_empty()
}

fn keypair_json(k: &KeypairState) -> Value {
    json!({
        "send_key": hex(&k.keys.send),
        "recv_key": hex(&k.keys.recv),
        "local_index": k.keys.local_index,
        "remote_index": k.keys.remote_index,
        "initiator": k.keys.initiator,
        "birth_ms": k.birth_ms,
        "sent": k.sent,
        "confirmed": k.confirmed,
        "replay_top": k.replay.0,
        "replay_bits": k.replay.1.to_vec(),
    })
}

/// The `wireguard` section.
pub(super) fn capture(dp: &Dataplane, out: &mut Map<String, Value>) {
    let (ifs, peers, clock) = wg::hand_over(dp);
    let ifs: Vec<Value> = ifs
        .iter()
        .map(|i| {
            json!({
                "sw": i.sw_if_index,
                "instance": i.instance,
                "port": i.port,
                "src": i.src.to_string(),
                "private_key": hex(&i.private),
            })
        })
        .collect();
    let peers: Vec<Value> = peers
        .iter()
        .map(|p| {
            let c = &p.config;
            let a = &p.activity;
            let g = PeerActivity::load;
            let allowed: Vec<String> = c.allowed.iter().map(|&(a, l)| format!("{a}/{l}")).collect();
            json!({
                "index": p.index,
                "sw": c.sw_if_index,
                "public_key": hex(&c.public),
                "psk": hex(&c.psk),
                "endpoint": c.endpoint.to_string(),
                "port": c.port,
                "table_id": c.table_id,
                "persistent_keepalive": c.persistent_keepalive,
                "allowed": allowed,
                "last_sent_ms": g(&a.last_sent_ms),
                "last_recv_ms": g(&a.last_recv_ms),
                "last_recv_data_ms": g(&a.last_recv_data_ms),
                "last_sent_data_ms": g(&a.last_sent_data_ms),
                "rx_bytes": g(&a.rx_bytes),
                "tx_bytes": g(&a.tx_bytes),
                "current": p.current.as_ref().map(keypair_json),
                "previous": p.previous.as_ref().map(keypair_json),
                "last_initiation_ts": hex(&p.last_initiation_ts),
                "last_handshake_ms": p.last_handshake_ms,
                "cookie": p.cookie.map(|(c, at)| json!({"cookie": hex(&c), "at_ms": at})),
            })
        })
        .collect();
    out.insert(
        "wireguard".into(),
        json!({"clock_ms": clock, "interfaces": ifs, "peers": peers}),
    );
}

fn bytes<const N: usize>(v: &Value, k: &str) -> Result<[u8; N], String> {
    unhex(v, k)?.try_into().map_err(|_| bad(k))
}

fn addr(v: &Value, k: &str) -> Result<IpAddr, String> {
    text(v, k)?.parse().map_err(|_| bad(k))
}

fn small<T: TryFrom<u64>>(v: &Value, k: &str) -> Result<T, String> {
    T::try_from(num(v, k)?).map_err(|_| bad(k))
}

fn keypair_of(v: &Value, at: &impl Fn(u64) -> u64) -> Result<Option<KeypairState>, String> {
    if v.is_null() {
        return Ok(None);
    }
    let words = list(v, "replay_bits")?
        .iter()
        .map(|w| w.as_u64().ok_or_else(|| bad("replay_bits")))
        .collect::<Result<Vec<u64>, String>>()?;
    let bits: [u64; WORDS] = words.try_into().map_err(|_| bad("replay_bits"))?;
    Ok(Some(KeypairState {
        keys: SessionKeys {
            send: bytes(v, "send_key")?,
            recv: bytes(v, "recv_key")?,
            local_index: num32(v, "local_index")?,
            remote_index: num32(v, "remote_index")?,
            initiator: flag(v, "initiator")?,
        },
        birth_ms: at(num(v, "birth_ms")?),
        sent: num(v, "sent")?,
        confirmed: flag(v, "confirmed")?,
        replay: (num(v, "replay_top")?, bits),
    }))
}

/// The `wireguard` section of a version 6 snapshot: the interfaces (rebuilt under their
/// indices already) into the engine with their encap features, then the peers with their
/// sessions; `f` is the restore's forwarding lock. An interface of type wireguard without
/// its entry is refused, as a tunnel without its tunnel.
pub(super) fn restore(dp: &Dataplane, f: &mut Forwarding, snap: &Value) -> Result<(), String> {
    let w = get(snap, "wireguard")?;
    let old_clock = num(w, "clock_ms")?;
    // The old clock continued: its times as they are; else moved by the difference.
    let new_clock = wg::now_ms();
    let continued = wg::continue_clock(old_clock);
    let at = move |t: u64| match t {
        0 => 0,
        t if continued => t,
        t => (t + new_clock).saturating_sub(old_clock).max(1),
    };
    for i in list(w, "interfaces")? {
        let h = IfHandover {
            sw_if_index: num32(i, "sw")?,
            instance: num32(i, "instance")?,
            port: small(i, "port")?,
            src: addr(i, "src")?,
            private: bytes::<32>(i, "private_key")?,
        };
        wg::restore_interface(dp, f, &h)
            .map_err(|e| format!("wg interface on {}: {e}", h.sw_if_index))?;
    }
    for p in list(w, "peers")? {
        let allowed = list(p, "allowed")?
            .iter()
            .map(|a| {
                let (ip, len) = a
                    .as_str()
                    .and_then(|s| s.split_once('/'))
                    .ok_or_else(|| bad("allowed"))?;
                let ip: IpAddr = ip.parse().map_err(|_| bad("allowed"))?;
                let len: u8 = len.parse().map_err(|_| bad("allowed"))?;
                Ok((ip, len))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let public: Key = bytes(p, "public_key")?;
        let ms = |k: &str| num(p, k).map(at);
        let cookie = match get(p, "cookie")? {
            Value::Null => None,
            c => Some((bytes::<16>(c, "cookie")?, at(num(c, "at_ms")?))),
        };
        let h = PeerHandover {
            index: num32(p, "index")?,
            config: PeerConfig {
                sw_if_index: num32(p, "sw")?,
                public,
                psk: bytes(p, "psk")?,
                endpoint: addr(p, "endpoint")?,
                port: small(p, "port")?,
                table_id: num32(p, "table_id")?,
                encap_fib: 0,
                persistent_keepalive: small(p, "persistent_keepalive")?,
                allowed,
            },
            activity: PeerActivity {
                last_sent_ms: ms("last_sent_ms")?.into(),
                last_recv_ms: ms("last_recv_ms")?.into(),
                last_recv_data_ms: ms("last_recv_data_ms")?.into(),
                last_sent_data_ms: ms("last_sent_data_ms")?.into(),
                rx_bytes: num(p, "rx_bytes")?.into(),
                tx_bytes: num(p, "tx_bytes")?.into(),
                ..Default::default()
            },
            current: keypair_of(get(p, "current")?, &at)?,
            previous: keypair_of(get(p, "previous")?, &at)?,
            last_initiation_ts: bytes(p, "last_initiation_ts")?,
            last_handshake_ms: ms("last_handshake_ms")?,
            cookie,
        };
        let index = h.index;
        wg::restore_peer(dp, f, h).map_err(|e| format!("wg peer {index}: {e}"))?;
    }
    Ok(())
}

/// An interface of type wireguard in `snap` without its wg entry would carry nothing:
/// refused.
pub(super) fn check_interfaces(dp: &Dataplane, snap: &Value) -> Result<(), String> {
    for i in list(snap, "interfaces")? {
        if text(i, "dev_type")? == "wireguard" && !carried_interface(dp, num32(i, "sw")?) {
            return Err(format!(
                "snapshot: interface {} (wireguard) without its wg interface",
                text(i, "name")?
            ));
        }
    }
    Ok(())
}

/// The old process, when the new one is about to poll the devices: each keypair's first
/// counter that is the new one's, `[[receiver index, counter], ..]`; from here on this
/// process's keypairs stop short of them (a failed take-over gives them back).
pub(super) fn counters_json(dp: &Dataplane) -> Value {
    let c: Vec<Value> = wg::hand_over_counters(dp)
        .iter()
        .map(|&(idx, first)| json!([idx, first]))
        .collect();
    Value::Array(c)
}

/// The new process: send on each carried keypair from the counter the old one handed over
/// (`counters`, [`counters_json`]'s answer; null when there was no one to ask, as in a test).
pub(super) fn apply_counters(dp: &Dataplane, counters: &Value) -> Result<(), String> {
    let Some(list) = counters.as_array() else {
        return Ok(());
    };
    let firsts = list
        .iter()
        .map(|c| {
            let idx = c
                .get(0)
                .and_then(Value::as_u64)
                .and_then(|i| u32::try_from(i).ok());
            let first = c.get(1).and_then(Value::as_u64);
            idx.zip(first).ok_or_else(|| bad("wireguard counters"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let found = wg::take_over_counters(dp, &firsts);
    if found != firsts.len() {
        return Err(format!(
            "wireguard counters: {} of {} keypairs unknown",
            firsts.len() - found,
            firsts.len()
        ));
    }
    Ok(())
}
