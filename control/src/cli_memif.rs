//! CLI for memif interfaces, in VPP's syntax:
//!
//! ```text
//! create memif socket id <n> filename <path | abstract:name[,netns_name=...]>
//! delete memif socket id <n>
//! create interface memif [id <n>] [socket-id <n>] [server|client|master|slave]
//!     [mode ethernet|ip] [rx-queues <n>] [tx-queues <n>] [ring-size <n>] [buffer-size <n>]
//!     [secret <s>] [hw-addr <mac>]            -> prints memif<socket-id>/<id>
//! delete interface memif <name>
//! show memif [<name>]
//! ```
//!
//! Socket id 0 is `/run/vpp/memif.sock`, as in VPP. A server socket carries one interface (what
//! calico creates per pod); clients may share a socket id. Sockets and interfaces are the
//! control service's (`service::memif`), shared with the API's memif messages.

use crate::daemon::Dataplane;
use crate::service::memif::{self as svc, mode_name, role_name, MemifRequest};
use rvpp_dataplane::wire::{fmt_mac, parse_mac};
use rvpp_drivers::memif::{Mode, Role};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Handle a memif CLI line; None if the line is not a memif command.
pub fn execute(dp: &Arc<Dataplane>, words: &[&str]) -> Option<Result<String, String>> {
    Some(match words {
        ["create", "memif", "socket", rest @ ..] => socket_add(dp, rest),
        ["delete", "memif", "socket", rest @ ..] => socket_del(dp, rest),
        ["create", "interface", "memif", rest @ ..] => create(dp, rest),
        ["delete", "interface", "memif", name] => delete(dp, name),
        ["show", "memif", rest @ ..] => Ok(show(dp, rest.first().copied())),
        _ => return None,
    })
}

fn num(k: &str, v: Option<&&str>) -> Result<u32, String> {
    v.and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("`{k}' needs a number"))
}

fn socket_add(dp: &Arc<Dataplane>, w: &[&str]) -> Result<String, String> {
    let (mut id, mut file) = (None, None);
    let mut it = w.iter();
    while let Some(k) = it.next() {
        match *k {
            "id" => id = Some(num(k, it.next())?),
            "filename" | "socket" => {
                file = Some(it.next().ok_or("`filename' needs a value")?.to_string())
            }
            _ => return Err(format!("unknown input `{k}'")),
        }
    }
    let id = id.ok_or("create memif socket id <n> filename <path>")?;
    let file = file.ok_or("create memif socket id <n> filename <path>")?;
    svc::socket_add(dp, Some(id), &file)
        .map(|_| String::new())
        .map_err(|e| e.to_string())
}

fn socket_del(dp: &Arc<Dataplane>, w: &[&str]) -> Result<String, String> {
    let id = match w {
        ["id", n] => n.parse::<u32>().map_err(|_| "bad socket id")?,
        _ => return Err("delete memif socket id <n>".into()),
    };
    svc::socket_del(dp, id)
        .map(|()| String::new())
        .map_err(|e| e.to_string())
}

fn create(dp: &Arc<Dataplane>, w: &[&str]) -> Result<String, String> {
    let mut id = 0u32;
    let mut socket_id = 0u32;
    let mut role = Role::Server;
    let mut mode = Mode::Ethernet;
    let (mut rxq, mut txq) = (1u32, 1u32);
    let mut ring = 1024u32;
    let mut bsize = 2048u32;
    let mut secret = None;
    let mut mac = None;
    let mut zero_copy = true;
    let mut it = w.iter();
    while let Some(k) = it.next() {
        match *k {
            "id" => id = num(k, it.next())?,
            "socket-id" | "socket_id" => socket_id = num(k, it.next())?,
            "server" | "master" => role = Role::Server,
            "client" | "slave" => role = Role::Client,
            "mode" => {
                mode = match it.next().copied() {
                    Some("ethernet") => Mode::Ethernet,
                    Some("ip") => Mode::Ip,
                    m => return Err(format!("unsupported mode {m:?} (ethernet or ip)")),
                }
            }
            "rx-queues" | "rx_queues" => rxq = num(k, it.next())?,
            "tx-queues" | "tx_queues" => txq = num(k, it.next())?,
            "ring-size" | "ring_size" => ring = num(k, it.next())?,
            "buffer-size" | "buffer_size" => bsize = num(k, it.next())?,
            "secret" => secret = Some(it.next().ok_or("`secret' needs a value")?.to_string()),
            "hw-addr" | "hw_addr" => {
                let v = it.next().ok_or("`hw-addr' needs a value")?;
                mac = Some(parse_mac(v).ok_or_else(|| format!("bad mac `{v}'"))?);
            }
            "no-zero-copy" => zero_copy = false,
            "rx-mode" | "rx_mode" => {
                it.next();
            }
            _ => return Err(format!("unknown input `{k}'")),
        }
    }
    let req = MemifRequest {
        id,
        socket_id,
        role,
        mode,
        rx_queues: rxq,
        tx_queues: txq,
        ring_size: ring,
        buffer_size: bsize,
        secret,
        mac,
        zero_copy,
    };
    svc::create(dp, req)
        .map(|(_, name)| format!("{name}\n"))
        .map_err(|e| e.to_string())
}

fn delete(dp: &Arc<Dataplane>, name: &str) -> Result<String, String> {
    let sw = crate::service::interfaces::by_name(dp, name, "memif")
        .ok_or_else(|| format!("unknown memif interface `{name}'"))?;
    svc::delete(dp, sw)
        .map(|()| String::new())
        .map_err(|e| e.to_string())
}

fn show(dp: &Arc<Dataplane>, only: Option<&str>) -> String {
    let admin: BTreeMap<u32, (String, bool, [u8; 6])> = {
        let f = dp.fwd();
        f.ifs()
            .ifs
            .iter()
            .flatten()
            .map(|i| (i.sw_if_index, (i.name.clone(), i.admin_up, i.mac)))
            .collect()
    };
    let mut s = String::new();
    if only.is_none() {
        let servers = svc::each(dp, |_, e| {
            (e.socket_id, e.dev.config().role == Role::Server)
        });
        let _ = writeln!(s, "sockets\n  {:<4}{:<14}filename", "id", "listener");
        for (id, f) in svc::sockets(dp) {
            let listeners = servers.iter().filter(|&&(i, srv)| i == id && srv).count();
            let l = if listeners > 0 {
                format!("yes ({listeners})")
            } else {
                "no".into()
            };
            let _ = writeln!(s, "  {id:<4}{l:<14}{f}");
        }
        s.push('\n');
    }
    for part in svc::each(dp, |sw, e| {
        let (name, up, mac) = admin.get(&sw).cloned().unwrap_or_default();
        if only.is_some_and(|o| o != name) {
            return String::new();
        }
        let mut s = String::new();
        let c = e.dev.config();
        let stt = e.dev.status();
        let _ = writeln!(s, "interface {name}");
        let _ = writeln!(s, "  remote-name \"{}\"", stt.remote_name);
        let _ = writeln!(s, "  remote-interface \"{}\"", stt.remote_if_name);
        let _ = writeln!(
            s,
            "  socket-id {} id {} mode {}",
            e.socket_id,
            c.id,
            mode_name(c.mode)
        );
        let mut flags = vec![];
        if up {
            flags.push("admin-up");
        }
        flags.push(role_name(c.role));
        if e.dev.zero_copy() {
            flags.push("zero-copy");
        }
        flags.push(if stt.connected {
            "connected"
        } else {
            "disconnected"
        });
        let _ = writeln!(s, "  flags {}", flags.join(" "));
        if c.mode == Mode::Ethernet {
            let _ = writeln!(s, "  hw-addr {}", fmt_mac(&mac));
        }
        let _ = writeln!(
            s,
            "  configured rx-queues {} tx-queues {}; live rx-rings {} tx-rings {} ring-size {}",
            c.rx_queues, c.tx_queues, stt.rx_rings, stt.tx_rings, stt.ring_size
        );
        if stt.connected {
            let regions: Vec<String> = stt
                .regions
                .iter()
                .enumerate()
                .map(|(i, z)| format!("{i}: {z} bytes"))
                .collect();
            let _ = writeln!(s, "  regions {}", regions.join(", "));
        }
        let k = e.dev.counters();
        let _ = writeln!(
            s,
            "  connects {} last-disconnect \"{}\"",
            stt.connects, stt.last_disconnect
        );
        let _ = writeln!(
            s,
            "  ring-errors {} rx-dropped {} rx-no-buffers {} tx-ring-full {} tx-dropped {} copied-bytes {}",
            k.ring_errors.load(Ordering::Relaxed),
            k.rx_dropped.load(Ordering::Relaxed),
            k.rx_no_buffers.load(Ordering::Relaxed),
            k.tx_full.load(Ordering::Relaxed),
            k.tx_dropped.load(Ordering::Relaxed),
            k.copied_bytes.load(Ordering::Relaxed),
        );
        let busy = e.dev.lock_busy();
        if busy > 0 {
            // Sent as "tx queue full"; here is why.
            let _ = writeln!(
                s,
                "  tx-ring-busy {busy} (not sent: a take-over's other rvpp held the tx ring)"
            );
        }
        s
    }) {
        s.push_str(&part);
    }
    s
}
