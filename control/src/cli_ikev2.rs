//! IKEv2 CLI, thin over `service::ikev2`: `show ikev2 profile`, `show ikev2 sa` (IKE SAs with
//! the child SAs installed for them) and `show ikev2 counters` (the engines' and the service's
//! counters by reason), `ikev2 initiate (rekey-child-sa | del-child-sa) <spi>` (our SPI, hex, as
//! `show ikev2 sa` prints it), `set ikev2 rekey-seq <packets>|default` (rvpp's: rekey a child
//! without ESN after that many packets out; the default is 3/4 of the 32-bit space). Keys are
//! never shown.

use crate::daemon::Dataplane;
use crate::service::ikev2 as svc;
use std::fmt::Write;
use std::sync::Arc;

pub fn execute(dp: &Arc<Dataplane>, words: &[&str]) -> Option<Result<String, String>> {
    Some(match words {
        ["show", "ikev2", "profile", ..] => Ok(show_profiles(dp)),
        ["show", "ikev2", "sa", ..] => Ok(show_sas(dp)),
        ["show", "ikev2", "counters", ..] => Ok(show_counters(dp)),
        ["ikev2", "initiate", what, spi] => child(dp, what, spi),
        ["set", "ikev2", "rekey-seq", n] => rekey_seq(dp, n),
        _ => return None,
    })
}

fn rekey_seq(dp: &Dataplane, n: &str) -> Result<String, String> {
    let n = match n {
        "default" => None,
        n => Some(n.parse().map_err(|_| format!("bad packet count `{n}'"))?),
    };
    svc::set_rekey_seq(dp, n).map_err(|e| e.to_string())?;
    Ok(String::new())
}

fn child(dp: &Dataplane, what: &str, spi: &str) -> Result<String, String> {
    let action = match what {
        "rekey-child-sa" => svc::ChildAction::Rekey,
        "del-child-sa" => svc::ChildAction::Delete,
        _ => return Err("usage: ikev2 initiate (rekey-child-sa | del-child-sa) <spi>".into()),
    };
    let spi = u32::from_str_radix(spi.trim_start_matches("0x"), 16)
        .map_err(|_| format!("bad SPI `{spi}' (hex)"))?;
    svc::child_action(dp, spi, action).map_err(|e| e.to_string())?;
    Ok(String::new())
}

fn if_name(dp: &Dataplane, sw: u32) -> String {
    dp.fwd()
        .iface(sw)
        .map_or_else(|_| format!("sw_if_index {sw}"), |i| i.name.clone())
}

fn show_profiles(dp: &Dataplane) -> String {
    let mut s = String::new();
    for p in svc::profiles(dp) {
        let _ = writeln!(s, "profile {}", p.name);
        if let Some(a) = &p.auth {
            let _ = writeln!(s, "  auth-method shared-key-mic ({} bytes)", a.data.len());
        }
        if let Some(id) = &p.local_id {
            let _ = writeln!(s, "  local id-type {id}");
        }
        if let Some(id) = &p.remote_id {
            let _ = writeln!(s, "  remote id-type {id}");
        }
        for (side, ts) in [("local", p.ts_local), ("remote", p.ts_remote)] {
            if let Some(t) = ts {
                let _ = writeln!(
                    s,
                    "  {side} ts protocol {} ports {} - {} addr {} - {}",
                    t.protocol, t.start_port, t.end_port, t.start, t.end
                );
            }
        }
        if let Some((sw, addr)) = p.responder {
            let _ = writeln!(s, "  responder {} {addr}", if_name(dp, sw));
        }
        if let Some(t) = p.ike {
            let _ = writeln!(s, "  ike-crypto-alg {:?}", t.suite);
        }
        if let Some(t) = p.esp {
            let _ = writeln!(s, "  esp-crypto-alg {:?}", t.suite.encr);
        }
        if let Some(sw) = p.tun_itf {
            let _ = writeln!(s, "  protected tunnel {}", if_name(dp, sw));
        }
    }
    s
}

fn show_sas(dp: &Dataplane) -> String {
    let mut s = String::new();
    for v in svc::sas(dp) {
        let i = &v.ike;
        let _ = writeln!(
            s,
            "profile {} {} local {} remote {} ispi {:016x} rspi {:016x} {}{}",
            i.profile,
            if i.initiator {
                "initiator"
            } else {
                "responder"
            },
            v.local,
            i.peer,
            i.spi_i,
            i.spi_r,
            if i.established {
                "established"
            } else {
                "negotiating"
            },
            if i.nat { " nat-t" } else { "" },
        );
        let _ = writeln!(s, "  {:?}", i.suite);
        for c in &v.children {
            let _ = writeln!(
                s,
                "  child sa spi-in {:08x} spi-out {:08x} {:?}{} sa-in {} sa-out {} on {}",
                c.spi_in,
                c.spi_out,
                c.encr,
                if c.udp_encap { " udp-encap" } else { "" },
                c.sa_in,
                c.sa_out,
                if_name(dp, c.sw_if_index)
            );
        }
    }
    s
}

fn show_counters(dp: &Dataplane) -> String {
    let mut s = String::new();
    for (name, n) in svc::counters(dp) {
        let _ = writeln!(s, "{n:>12} {name}");
    }
    s
}
