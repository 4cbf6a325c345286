//! IKEv2 CLI, thin over `service::ikev2` (the same calls as the API's `ikev2_*` handlers).
//!
//! Configuration in VPP's syntax: `ikev2 profile add|del <name>`, `ikev2 profile set <name>`
//! `auth shared-key-mic string|hex <psk>`, `id local|remote <type> <data>`,
//! `traffic-selector local|remote ip-range <a> - <b> port-range <p> - <q> protocol <n>`,
//! `responder <if> <addr>`, `tunnel <if>`, `ike-crypto-alg <alg> <bits> [ike-integ-alg <alg>]
//! ike-dh <group>`, `esp-crypto-alg <alg> <bits> [esp-integ-alg <alg>]`, and
//! `ikev2 initiate sa-init <name>`. Algorithm names are VPP's; a name VPP knows but rvpp does
//! not run is passed on by number and refused by the service, as the API refuses it.
//!
//! Also `show ikev2 profile`, `show ikev2 sa` (IKE SAs with the child SAs installed for them),
//! `show ikev2 counters` (the engines' and the service's counters by reason),
//! `ikev2 initiate (rekey-child-sa | del-child-sa) <spi>` (our SPI, hex, as `show ikev2 sa`
//! prints it), `set ikev2 rekey-seq <packets>|default` (rvpp's: rekey a child without ESN after
//! that many packets out; the default is 3/4 of the 32-bit space). Keys are never shown.

use crate::cli::sw;
use crate::cli_ipsec::hex;
use crate::daemon::Dataplane;
use crate::service::ikev2 as svc;
use ikev2::wire::{id_type, AUTH_SHARED_KEY};
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

pub fn execute(dp: &Arc<Dataplane>, words: &[&str]) -> Option<Result<String, String>> {
    Some(match words {
        ["show", "ikev2", "profile", ..] => Ok(show_profiles(dp)),
        ["show", "ikev2", "sa", ..] => Ok(show_sas(dp)),
        ["show", "ikev2", "counters", ..] => Ok(show_counters(dp)),
        ["ikev2", "profile", "add", name] => done(svc::profile_add(dp, name)),
        ["ikev2", "profile", "del", name] => done(svc::profile_del(dp, name)),
        ["ikev2", "profile", "set", name, rest @ ..] => profile_set(dp, name, rest),
        ["ikev2", "profile", ..] => Err(PROFILE_USAGE.into()),
        ["ikev2", "initiate", "sa-init", name] => done(svc::initiate(dp, name)),
        ["ikev2", "initiate", what, spi] => child(dp, what, spi),
        ["set", "ikev2", "rekey-seq", n] => rekey_seq(dp, n),
        _ => return None,
    })
}

const PROFILE_USAGE: &str = "usage: ikev2 profile add|del <name> | ikev2 profile set <name> \
auth shared-key-mic string|hex <psk> | id local|remote ip4-addr|ip6-addr|fqdn|rfc822|der-asn1-dn|der-asn1-gn|key-id <data> \
| traffic-selector local|remote ip-range <addr> - <addr> port-range <port> - <port> protocol <n> \
| responder <if> <addr> | tunnel <if> \
| ike-crypto-alg aes-cbc|aes-gcm-16 128|256 [ike-integ-alg sha1-96|hmac-sha2-256-128] ike-dh modp-2048|ecp-256|curve25519 \
| esp-crypto-alg aes-gcm-16 128|256";

fn done(r: crate::service::SvcResult<()>) -> Result<String, String> {
    r.map(|()| String::new()).map_err(|e| e.to_string())
}

/// VPP's names for IKEv2 transform ids (IANA's numbers), as its `unformat_ikev2_transform_*`
/// read them. rvpp runs a few of each; the service refuses the rest by number.
const ENCR_NAMES: &[(&str, u8)] = &[
    ("des-iv64", 1),
    ("des", 2),
    ("3des", 3),
    ("rc5", 4),
    ("idea", 5),
    ("cast", 6),
    ("blowfish", 7),
    ("3idea", 8),
    ("des-iv32", 9),
    ("null", 11),
    ("aes-cbc", 12),
    ("aes-ctr", 13),
    ("aes-ccm-8", 14),
    ("aes-ccm-12", 15),
    ("aes-ccm-16", 16),
    ("aes-gcm-8", 18),
    ("aes-gcm-12", 19),
    ("aes-gcm-16", 20),
];

const INTEG_NAMES: &[(&str, u8)] = &[
    ("none", 0),
    ("md5-96", 1),
    ("sha1-96", 2),
    ("des-mac", 3),
    ("kpdk-md5", 4),
    ("aes-xcbc-96", 5),
    ("md5-128", 6),
    ("sha1-160", 7),
    ("cmac-96", 8),
    ("aes-128-gmac", 9),
    ("aes-192-gmac", 10),
    ("aes-256-gmac", 11),
    ("hmac-sha2-256-128", 12),
    ("hmac-sha2-384-192", 13),
    ("hmac-sha2-512-256", 14),
];

/// `curve25519` (31) is rvpp's addition: VPP's list stops at the brainpool groups.
const DH_NAMES: &[(&str, u8)] = &[
    ("none", 0),
    ("modp-768", 1),
    ("modp-1024", 2),
    ("modp-1536", 5),
    ("modp-2048", 14),
    ("modp-3072", 15),
    ("modp-4096", 16),
    ("modp-6144", 17),
    ("modp-8192", 18),
    ("ecp-256", 19),
    ("ecp-384", 20),
    ("ecp-521", 21),
    ("modp-1024-160", 22),
    ("modp-2048-224", 23),
    ("modp-2048-256", 24),
    ("ecp-192", 25),
    ("ecp-224", 26),
    ("brainpool-224", 27),
    ("brainpool-256", 28),
    ("brainpool-384", 29),
    ("brainpool-512", 30),
    ("curve25519", 31),
];

/// VPP's id type names (`unformat_ikev2_id_type`).
const ID_NAMES: &[(&str, u8)] = &[
    ("ip4-addr", id_type::IPV4_ADDR),
    ("fqdn", id_type::FQDN),
    ("rfc822", id_type::RFC822_ADDR),
    ("ip6-addr", id_type::IPV6_ADDR),
    ("der-asn1-dn", id_type::DER_ASN1_DN),
    ("der-asn1-gn", id_type::DER_ASN1_GN),
    ("key-id", id_type::KEY_ID),
];

fn named(table: &[(&str, u8)], what: &str, name: &str) -> Result<u8, String> {
    table
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, id)| id)
        .ok_or_else(|| {
            let known: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
            format!("unknown {what} `{name}' (one of {})", known.join(", "))
        })
}

fn name_of(table: &[(&'static str, u8)], id: u8) -> String {
    table
        .iter()
        .find(|&&(_, i)| i == id)
        .map_or_else(|| id.to_string(), |(n, _)| n.to_string())
}

fn num<T: std::str::FromStr>(what: &str, s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("bad {what} `{s}'"))
}

fn side(s: &str) -> Result<bool, String> {
    match s {
        "local" => Ok(true),
        "remote" => Ok(false),
        _ => Err(format!("expected local or remote, got `{s}'")),
    }
}

fn profile_set(dp: &Dataplane, name: &str, w: &[&str]) -> Result<String, String> {
    match w {
        ["auth", "shared-key-mic", "string", psk] => done(svc::set_auth(
            dp,
            name,
            AUTH_SHARED_KEY,
            false,
            psk.as_bytes(),
        )),
        ["auth", "shared-key-mic", "hex", psk] => {
            done(svc::set_auth(dp, name, AUTH_SHARED_KEY, true, &hex(psk)?))
        }
        // rsa-sig (1): the service refuses the method as not implemented.
        ["auth", "rsa-sig", "cert-file", file] => {
            done(svc::set_auth(dp, name, 1, false, file.as_bytes()))
        }
        ["id", which, kind, data] => {
            let is_local = side(which)?;
            let kind = named(ID_NAMES, "id type", kind)?;
            done(svc::set_id(dp, name, is_local, kind, &id_data(kind, data)?))
        }
        ["traffic-selector", which, "ip-range", a, "-", b, "port-range", p, "-", q, "protocol", n] =>
        {
            let is_local = side(which)?;
            let ts = svc::Ts::from_range(
                num("protocol", n)?,
                num("port", p)?,
                num("port", q)?,
                num("address", a)?,
                num("address", b)?,
            )
            .map_err(|e| e.to_string())?;
            done(svc::set_ts(dp, name, is_local, ts))
        }
        ["responder", itf, addr] => {
            let addr: IpAddr = num("address", addr)?;
            done(svc::set_responder(dp, name, sw(dp, itf)?, addr))
        }
        ["tunnel", itf] => done(svc::set_tunnel_interface(dp, name, sw(dp, itf)?)),
        ["ike-crypto-alg", alg, bits, rest @ ..] => {
            let (integ, dh) = match rest {
                ["ike-integ-alg", integ, "ike-dh", dh] => (*integ, *dh),
                ["ike-dh", dh] => ("none", *dh),
                _ => return Err(PROFILE_USAGE.into()),
            };
            let (encr, bits, integ) = cipher(alg, bits, integ)?;
            let dh = named(DH_NAMES, "DH group", dh)?;
            done(svc::set_ike_transforms(dp, name, encr, bits, integ, 0, dh))
        }
        ["esp-crypto-alg", alg, bits, rest @ ..] => {
            let integ = match rest {
                ["esp-integ-alg", integ] => *integ,
                [] => "none",
                _ => return Err(PROFILE_USAGE.into()),
            };
            let (encr, bits, integ) = cipher(alg, bits, integ)?;
            done(svc::set_esp_transforms(dp, name, encr, bits, integ))
        }
        ["udp-encap"] | ["sa-lifetime", ..] | ["ipsec-over-udp", ..] | ["disable-natt"] => Err(
            format!("ikev2 profile set {}: not implemented in rvpp", w[0]),
        ),
        _ => Err(PROFILE_USAGE.into()),
    }
}

/// An encryption algorithm, its key size and an integrity algorithm, by VPP's names, as ids.
fn cipher(alg: &str, bits: &str, integ: &str) -> Result<(u8, u32, u8), String> {
    Ok((
        named(ENCR_NAMES, "encryption algorithm", alg)?,
        num("key size", bits)?,
        named(INTEG_NAMES, "integrity algorithm", integ)?,
    ))
}

/// An id's bytes as VPP's CLI reads them: an address for the address types, else `0x` and hex,
/// else the text itself.
fn id_data(kind: u8, data: &str) -> Result<Vec<u8>, String> {
    Ok(match kind {
        id_type::IPV4_ADDR => num::<Ipv4Addr>("IPv4 address", data)?.octets().to_vec(),
        id_type::IPV6_ADDR => num::<Ipv6Addr>("IPv6 address", data)?.octets().to_vec(),
        _ if data.starts_with("0x") => hex(data)?,
        _ => data.as_bytes().to_vec(),
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

/// An id as the CLI sets it: its type's name, then the address, `0x` and hex for a key id or a
/// DER name, or the text.
fn id_text(id: &svc::Id) -> String {
    let kind = name_of(ID_NAMES, id.kind);
    let data = match (id.kind, id.data.len()) {
        (id_type::IPV4_ADDR, 4) | (id_type::IPV6_ADDR, 16) => {
            let mut a = [0u8; 16];
            a[..id.data.len()].copy_from_slice(&id.data);
            if id.data.len() == 4 {
                Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string()
            } else {
                Ipv6Addr::from(a).to_string()
            }
        }
        (id_type::KEY_ID | id_type::DER_ASN1_DN | id_type::DER_ASN1_GN, _) => {
            let digits: String = id.data.iter().map(|b| format!("{b:02x}")).collect();
            format!("0x{digits}")
        }
        _ => String::from_utf8_lossy(&id.data).into_owned(),
    };
    format!("{kind} {data}")
}

fn show_profiles(dp: &Dataplane) -> String {
    let mut s = String::new();
    for p in svc::profiles(dp) {
        let _ = writeln!(s, "profile {}", p.name);
        if let Some(a) = &p.auth {
            let _ = writeln!(s, "  auth-method shared-key-mic ({} bytes)", a.data.len());
        }
        for (side, id) in [("local", &p.local_id), ("remote", &p.remote_id)] {
            if let Some(id) = id {
                let _ = writeln!(s, "  {side} id-type {}", id_text(id));
            }
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
        // As VPP prints them, which is also the syntax that sets them.
        if let Some(t) = p.ike {
            let _ = writeln!(
                s,
                "  ike-crypto-alg {} {} ike-integ-alg {} ike-dh {} prf {:?}",
                name_of(ENCR_NAMES, t.crypto_alg),
                t.key_bits,
                name_of(INTEG_NAMES, t.integ_alg),
                name_of(DH_NAMES, t.dh_group),
                t.suite.prf
            );
        }
        if let Some(t) = p.esp {
            let _ = writeln!(
                s,
                "  esp-crypto-alg {} {} esp-integ-alg {}",
                name_of(ENCR_NAMES, t.crypto_alg),
                t.key_bits,
                name_of(INTEG_NAMES, t.integ_alg)
            );
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
