//! What snapshot version 7 adds: SA-level IPsec, so that ESP-protected traffic flows on across
//! a live restart under the same SAs. The SAs under their ids (`ipsec_sad_entry_add_del_v3`:
//! SPI, algorithms, keys, salt, ESN, anti-replay, direction, NAT-T ports with the peer's port
//! as it moved, tunnel endpoints and table) with their outbound sequence number and inbound
//! replay window; the `ipsecN` interfaces (`ipsec_itf_create`; rebuilt under their
//! sw_if_index with the other interfaces); the protections (`ipsec_tunnel_protect_update`).
//! Each is rebuilt through the service call that made it.
//!
//! The sequence numbers move like WireGuard's counters: when the new process is about to poll
//! the devices it asks (`I`) for them; the old one keeps the next
//! [`rvpp_dataplane::ipsec::sa::HANDOVER_RESERVE`] of each SA for its last moments and hands
//! over the rest, with the replay windows as they are then. A take-over that fails after that
//! moves the old one's numbers past what the new one may have used. IKEv2 (its profiles and
//! IKE SAs) is not carried: a node with a profile still refuses the take-over.
//!
//! Keys travel only in the snapshot, over the take-over socket (root only, its peer checked to
//! be of this process's user), and are never logged.

use super::overlay::{hex, unhex};
use super::{bad, flag, get, list, num, num32, text};
use crate::daemon::Dataplane;
use crate::service::ipsec::{self as svc, CryptoAlg, IntegAlg};
use rvpp_dataplane::forwarding::Forwarding;
use rvpp_dataplane::ipsec::replay::WORDS;
use rvpp_dataplane::ipsec::SaState;
use rvpp_dataplane::nodes::esp;
use serde_json::{json, Map, Value};
use std::net::IpAddr;

/// Interface `sw` is an `ipsecN` interface.
pub(super) fn carried_interface(f: &Forwarding, sw: u32) -> bool {
    svc::is_itf(f, sw)
}

/// Feature `arc`/`node` on `sw` is ESP's, on an `ipsecN` interface or a protected one (their
/// restore turns it on).
pub(super) fn carried_feature(dp: &Dataplane, f: &Forwarding, sw: u32, arc: &str, n: &str) -> bool {
    esp::FEATURES.iter().any(|e| e.arc == arc && e.node == n)
        && (svc::is_itf(f, sw) || !svc::protections(dp, Some(sw)).is_empty())
}

/// The configuration holds what version 7 adds.
pub(super) fn needs_version_7(dp: &Dataplane, f: &Forwarding) -> bool {
    !svc::sas(dp).is_empty()
        || f.ifs()
            .ifs
            .iter()
            .flatten()
            .any(|i| svc::is_itf(f, i.sw_if_index))
}

fn state_json(st: &SaState) -> Value {
    json!({
        "seq": st.seq,
        "replay_top": st.replay.0,
        "replay_bits": st.replay.1.to_vec(),
        "udp_dst": st.udp_dst,
    })
}

fn state_of(v: &Value) -> Result<SaState, String> {
    let words = list(v, "replay_bits")?
        .iter()
        .map(|w| w.as_u64().ok_or_else(|| bad("replay_bits")))
        .collect::<Result<Vec<u64>, String>>()?;
    let bits: [u64; WORDS] = words.try_into().map_err(|_| bad("replay_bits"))?;
    Ok(SaState {
        seq: num(v, "seq")?,
        replay: (num(v, "replay_top")?, bits),
        udp_dst: u16::try_from(num(v, "udp_dst")?).map_err(|_| bad("udp_dst"))?,
    })
}

/// The `ipsec` section.
pub(super) fn capture(dp: &Dataplane, f: &Forwarding, out: &mut Map<String, Value>) {
    let sas: Vec<Value> = svc::sas(dp)
        .iter()
        .map(|sa| {
            let c = &sa.cfg;
            json!({
                "id": c.id,
                "spi": c.spi,
                "crypto_alg": c.alg.vpp(),
                "crypto_key": hex(&c.key),
                "integ_alg": c.integ.vpp(),
                "integ_key": hex(&c.integ_key),
                "salt": c.salt,
                "esn": c.esn,
                "anti_replay": c.anti_replay,
                "inbound": c.inbound,
                "udp_encap": c.udp_encap.map(|(s, d)| json!([s, d])),
                "tunnel": c.tunnel.map(|t| json!({
                    "src": t.src.to_string(),
                    "dst": t.dst.to_string(),
                    "table_id": t.table_id,
                })),
                "state": state_json(&sa.state()),
            })
        })
        .collect();
    let itfs: Vec<Value> = f
        .ifs()
        .ifs
        .iter()
        .flatten()
        .filter(|i| svc::is_itf(f, i.sw_if_index))
        .map(|i| json!({"sw": i.sw_if_index, "name": i.name}))
        .collect();
    let protect: Vec<Value> = svc::protections(dp, None)
        .iter()
        .map(|p| json!({"sw": p.sw_if_index, "sa_out": p.sa_out, "sa_in": p.sa_in}))
        .collect();
    out.insert(
        "ipsec".into(),
        json!({"sas": sas, "interfaces": itfs, "protections": protect}),
    );
}

/// The `ipsecN` interfaces of a version 7 snapshot (rebuilt under their indices already) get
/// their features; `f` is the restore's forwarding lock. An interface of type ipsec without
/// its entry is refused, as a tunnel without its tunnel.
pub(super) fn interfaces_restore(f: &mut Forwarding, snap: &Value) -> Result<(), String> {
    let itfs = list(get(snap, "ipsec")?, "interfaces")?;
    for i in list(snap, "interfaces")? {
        let sw = num32(i, "sw")?;
        let listed = itfs
            .iter()
            .any(|x| x.get("sw").and_then(Value::as_u64) == Some(sw.into()));
        if text(i, "dev_type")? == "ipsec" && !listed {
            return Err(format!(
                "snapshot: interface {} (ipsec) without its ipsec entry",
                text(i, "name")?
            ));
        }
    }
    for i in itfs {
        let sw = num32(i, "sw")?;
        let name = text(i, "name")?;
        let instance = name
            .strip_prefix("ipsec")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad(&format!("ipsec interface name {name}")))?;
        svc::itf_restore(f, sw, instance).map_err(|e| format!("interface {name}: {}", e.msg))?;
    }
    Ok(())
}

fn addr(v: &Value, k: &str) -> Result<IpAddr, String> {
    text(v, k)?.parse().map_err(|_| bad(k))
}

fn sa_request(v: &Value) -> Result<svc::SaRequest, String> {
    let port = |x: &Value| x.as_u64().and_then(|n| u16::try_from(n).ok());
    let udp_encap = match get(v, "udp_encap")? {
        Value::Null => None,
        x => match x.as_array().map(|a| &a[..]) {
            Some([s, d]) => Some(port(s).zip(port(d)).ok_or_else(|| bad("udp_encap"))?),
            _ => return Err(bad("udp_encap")),
        },
    };
    let tunnel = match get(v, "tunnel")? {
        Value::Null => None,
        t => Some((addr(t, "src")?, addr(t, "dst")?, num32(t, "table_id")?)),
    };
    Ok(svc::SaRequest {
        id: num32(v, "id")?,
        spi: num32(v, "spi")?,
        alg: CryptoAlg::from_vpp(num32(v, "crypto_alg")?).ok_or_else(|| bad("crypto_alg"))?,
        key: unhex(v, "crypto_key")?,
        integ: IntegAlg::from_vpp(num32(v, "integ_alg")?).ok_or_else(|| bad("integ_alg"))?,
        integ_key: unhex(v, "integ_key")?,
        salt: num32(v, "salt")?,
        esn: flag(v, "esn")?,
        anti_replay: flag(v, "anti_replay")?,
        inbound: flag(v, "inbound")?,
        udp_encap,
        tunnel,
    })
}

/// The SAs of a version 7 snapshot with their numbering, then the protections (the tunnels
/// and interfaces they name are rebuilt already). Outside the forwarding lock: the service
/// calls take it.
pub(super) fn restore(dp: &Dataplane, snap: &Value) -> Result<(), String> {
    let s = get(snap, "ipsec")?;
    for v in list(s, "sas")? {
        let r = sa_request(v)?;
        let id = r.id;
        let st = state_of(get(v, "state")?)?;
        svc::sa_restore(dp, r, &st).map_err(|e| format!("ipsec SA {id}: {}", e.msg))?;
    }
    for p in list(s, "protections")? {
        let sw = num32(p, "sw")?;
        let ins = list(p, "sa_in")?
            .iter()
            .map(|x| {
                x.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| bad("sa_in"))
            })
            .collect::<Result<Vec<u32>, String>>()?;
        svc::protect_update(dp, sw, num32(p, "sa_out")?, &ins)
            .map_err(|e| format!("ipsec protection of sw_if_index {sw}: {}", e.msg))?;
    }
    Ok(())
}

/// The old process, when the new one is about to poll the devices: `[{id, last, state}, ..]`,
/// each SA's last sequence number this process keeps and its numbering as it is now.
pub(super) fn seqs_json(dp: &Dataplane) -> Value {
    let s: Vec<Value> = svc::hand_over_seqs(dp)
        .iter()
        .map(|(id, last, st)| json!({"id": id, "last": last, "state": state_json(st)}))
        .collect();
    Value::Array(s)
}

/// The new process: number each carried SA from after what the old one kept (`seqs`,
/// [`seqs_json`]'s answer; null when there was no one to ask, as in a test).
pub(super) fn apply_seqs(dp: &Dataplane, seqs: &Value) -> Result<(), String> {
    let Some(list) = seqs.as_array() else {
        return Ok(());
    };
    let seqs = list
        .iter()
        .map(|v| {
            Ok((
                num32(v, "id")?,
                num(v, "last")?,
                state_of(get(v, "state")?)?,
            ))
        })
        .collect::<Result<Vec<_>, String>>()
        .map_err(|e| format!("ipsec sequence numbers: {e}"))?;
    let found = svc::take_over_seqs(dp, &seqs);
    if found != seqs.len() {
        return Err(format!(
            "ipsec sequence numbers: {} of {} SAs unknown",
            seqs.len() - found,
            seqs.len()
        ));
    }
    Ok(())
}
