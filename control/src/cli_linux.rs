//! CLI for Linux-facing devices, in VPP's syntax:
//!
//! ```text
//! create tap [id <n>] [host-if-name <name>] [host-ns <netns-name|path|pid:N>] [host-mtu-size <n>]
//!            [host-mac-addr <mac>] [tun] [num-rx-queues <n>] [num-tx-queues <n>]
//!            [rx-ring-size <n>] [tx-ring-size <n>] [persist] [attach] [gso] [csum-offload]
//! delete tap <name> | delete tap sw_if_index <n>
//! create host-interface name <ifname> [netns <ns>] [num-rx-queues <n>] [hw-addr <mac>]
//!            [qdisc-bypass-disable] [gso]
//! delete host-interface name <ifname>
//! create interface af_xdp host-if <ifname> [name <name>] [netns <ns>] [num-rx-queues <n>]
//!            [rxq-size <n>] [txq-size <n>] [mode auto|copy|zero-copy] [zero-copy|no-zero-copy]
//!            [xdp-mode auto|native|generic]
//! delete interface af_xdp <name>
//! show linux-interfaces
//! ```
//!
//! The devices are the control service's (`service::linux`: naming, the host-interface
//! monitor); this module only reads the syntax and prints the answer.

use crate::daemon::Dataplane;
use crate::service::linux::{self, Kind, TapRequest};
use rvpp_dataplane::wire::parse_mac;
use rvpp_drivers::af_packet::AfPacketConfig;
use rvpp_drivers::af_xdp::{AfXdpConfig, XdpAttach, XdpMode};
use rvpp_drivers::tap::{TapConfig, TapMode};
use std::fmt::Write;
use std::sync::Arc;

/// Handle a device CLI line; None if the line is not one of these commands.
pub fn execute(dp: &Arc<Dataplane>, words: &[&str]) -> Option<Result<String, String>> {
    let taps = &[Kind::Tap, Kind::Tun];
    let r = match words {
        ["create", "tap", rest @ ..] => create_tap(dp, rest),
        ["tap", "connect", ..] => Err("use `create tap'".into()),
        ["delete", "tap", "sw_if_index", n] => match n.parse::<u32>() {
            Ok(sw) => delete(dp, sw, taps),
            Err(_) => Err(format!("bad sw_if_index `{n}'")),
        },
        ["delete", "tap", name] => delete_named(dp, name, taps),
        ["create", "host-interface", rest @ ..] => create_host_interface(dp, rest),
        ["delete", "host-interface", "name", ifname] => {
            delete_named(dp, &format!("host-{ifname}"), &[Kind::AfPacket])
        }
        ["create", "interface", "af_xdp", rest @ ..] | ["create", "int", "af_xdp", rest @ ..] => {
            create_af_xdp(dp, rest)
        }
        ["delete", "interface", "af_xdp", name] | ["delete", "int", "af_xdp", name] => {
            delete_named(dp, name, &[Kind::AfXdp])
        }
        ["show", "linux-interfaces"] | ["show", "tap"] | ["show", "tun"] => Ok(show(dp)),
        _ => return None,
    };
    Some(r)
}

fn num<T: std::str::FromStr>(k: &str, v: Option<&&str>) -> Result<T, String> {
    v.and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("`{k}' needs a number"))
}

fn val<'a>(k: &str, v: Option<&&'a str>) -> Result<&'a str, String> {
    v.copied().ok_or_else(|| format!("`{k}' needs a value"))
}

fn created(r: crate::service::SvcResult<(u32, String)>) -> Result<String, String> {
    r.map(|(_, name)| format!("{name}\n"))
        .map_err(|e| e.to_string())
}

fn create_tap(dp: &Arc<Dataplane>, w: &[&str]) -> Result<String, String> {
    let mut cfg = TapConfig::default();
    let mut id: Option<u32> = None;
    let (mut rxq, mut txq) = (1u16, 1u16);
    let mut tun = false;
    let mut it = w.iter();
    while let Some(&k) = it.next() {
        match k {
            "id" => id = Some(num(k, it.next())?),
            "host-if-name" => cfg.name = val(k, it.next())?.to_string(),
            "host-ns" => cfg.netns = Some(val(k, it.next())?.to_string()),
            "host-mtu-size" => cfg.mtu = Some(num(k, it.next())?),
            "host-mac-addr" => {
                cfg.mac = Some(
                    parse_mac(val(k, it.next())?).ok_or_else(|| "bad host-mac-addr".to_string())?,
                )
            }
            "tun" => tun = true,
            "num-rx-queues" => rxq = num(k, it.next())?,
            "num-tx-queues" => txq = num(k, it.next())?,
            "rx-ring-size" | "tx-ring-size" => {
                let _: u32 = num(k, it.next())?;
            }
            "persist" => cfg.persist = true,
            "attach" => cfg.attach = true,
            "gso" => cfg.gso = true,
            "csum-offload" => cfg.csum_offload = true,
            "gro-coalesce" | "packed" | "in-order" | "consistent-qp" => {}
            "host-bridge" | "host-ip4-addr" | "host-ip6-addr" | "host-ip4-gw" | "host-ip6-gw" => {
                return Err(format!(
                    "`{k}' is not supported: configure the Linux side with ip(8)"
                ))
            }
            other => return Err(format!("unknown input `{other}'")),
        }
    }
    cfg.mode = if tun { TapMode::Tun } else { TapMode::Tap };
    cfg.queues = rxq.max(txq).max(1);
    created(linux::create_tap(
        dp,
        TapRequest {
            id,
            cfg,
            mac: None,
            tag: String::new(),
            watch: true,
        },
    ))
}

fn create_host_interface(dp: &Arc<Dataplane>, w: &[&str]) -> Result<String, String> {
    let mut cfg = AfPacketConfig {
        qdisc_bypass: true,
        ..Default::default()
    };
    let mut hw: Option<[u8; 6]> = None;
    let mut it = w.iter();
    while let Some(&k) = it.next() {
        match k {
            "name" => cfg.host_if_name = val(k, it.next())?.to_string(),
            "netns" => cfg.netns = Some(val(k, it.next())?.to_string()),
            "num-rx-queues" | "num-tx-queues" => cfg.queues = num(k, it.next())?,
            "hw-addr" => hw = Some(parse_mac(val(k, it.next())?).ok_or("bad hw-addr")?),
            "qdisc-bypass-disable" => cfg.qdisc_bypass = false,
            "gso" | "cksum-gso" => cfg.vnet_hdr = true,
            "promisc" => cfg.promisc = true,
            "rx-size" | "tx-size" | "rx-per-block" | "tx-per-block" | "rx-frame-size"
            | "tx-frame-size" => {
                let _: u32 = num(k, it.next())?;
            }
            "v2" | "v3" => {}
            other => return Err(format!("unknown input `{other}'")),
        }
    }
    if cfg.host_if_name.is_empty() {
        return Err("create host-interface name <ifname> ...".into());
    }
    created(linux::create_af_packet(dp, cfg, true, hw, true))
}

fn create_af_xdp(dp: &Arc<Dataplane>, w: &[&str]) -> Result<String, String> {
    let mut cfg = AfXdpConfig::default();
    let mut name: Option<String> = None;
    let mut it = w.iter();
    while let Some(&k) = it.next() {
        match k {
            "host-if" => cfg.host_if_name = val(k, it.next())?.to_string(),
            "name" => name = Some(val(k, it.next())?.to_string()),
            "netns" => cfg.netns = Some(val(k, it.next())?.to_string()),
            "num-rx-queues" => cfg.queues = num(k, it.next())?,
            "rxq-size" | "txq-size" | "rx-queue-size" | "tx-queue-size" => {
                cfg.ring_size = num(k, it.next())?
            }
            "mode" => {
                let v = val(k, it.next())?;
                cfg.mode = XdpMode::parse(v).ok_or_else(|| format!("bad mode `{v}'"))?
            }
            "zero-copy" => cfg.mode = XdpMode::ZeroCopy,
            "no-zero-copy" => cfg.mode = XdpMode::Copy,
            "xdp-mode" => {
                cfg.attach = match val(k, it.next())? {
                    "auto" => XdpAttach::Auto,
                    "native" | "drv" => XdpAttach::Native,
                    "generic" | "skb" => XdpAttach::Generic,
                    v => return Err(format!("bad xdp-mode `{v}'")),
                }
            }
            "no-syscall-lock" => {}
            "prog" => return Err("`prog' is not supported: rvpp loads its own XDP program".into()),
            other => return Err(format!("unknown input `{other}'")),
        }
    }
    if cfg.host_if_name.is_empty() {
        return Err("create interface af_xdp host-if <ifname> ...".into());
    }
    created(linux::create_af_xdp(dp, cfg, name, true))
}

fn delete_named(dp: &Arc<Dataplane>, name: &str, kinds: &[Kind]) -> Result<String, String> {
    match linux::find(dp, name, kinds) {
        Some(sw) => delete(dp, sw, kinds),
        None => Err(format!("unknown interface `{name}'")),
    }
}

fn delete(dp: &Arc<Dataplane>, sw: u32, kinds: &[Kind]) -> Result<String, String> {
    linux::delete(dp, sw, kinds)
        .map(|()| String::new())
        .map_err(|e| e.to_string())
}

fn show(dp: &Dataplane) -> String {
    let mut s = String::new();
    for d in linux::list(dp) {
        let _ = writeln!(
            s,
            "{} (sw_if_index {}): {} {} in {} ifindex {} link {}",
            d.name,
            d.sw,
            d.kind.name(),
            d.host_if,
            d.netns.as_deref().unwrap_or("(rvpp's namespace)"),
            d.ifindex,
            if d.running { "up" } else { "down" }
        );
    }
    s
}
