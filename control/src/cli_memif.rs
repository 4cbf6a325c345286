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
//! Socket id 0 is `/run/vpp/memif.sock` unless redefined, as in VPP. A server socket carries
//! one interface (what calico creates per pod); clients may share a socket id.

use crate::daemon::Dataplane;
use rvpp_dataplane::device::{RxQueue, TxQueue};
use rvpp_dataplane::wire::{fmt_mac, parse_mac};
use rvpp_drivers::memif::{MemifConfig, MemifDevice, MemifQueues, Mode, Role, SocketSpec};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

const DEFAULT_SOCKET: &str = "/run/vpp/memif.sock";

struct Entry {
    sw: u32,
    name: String,
    socket_id: u32,
    dev: MemifDevice,
}

#[derive(Default)]
struct State {
    sockets: BTreeMap<u32, String>,
    ifs: BTreeMap<u32, Entry>,
}

/// memif state per dataplane (keyed by its address: tests run several in one process).
static STATE: Mutex<Option<HashMap<usize, State>>> = Mutex::new(None);

fn with_state<R>(dp: &Arc<Dataplane>, f: impl FnOnce(&mut State) -> R) -> R {
    let mut g: MutexGuard<'_, _> = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let map = g.get_or_insert_with(HashMap::new);
    let st = map.entry(Arc::as_ptr(dp) as usize).or_insert_with(|| {
        let mut s = State::default();
        s.sockets.insert(0, DEFAULT_SOCKET.into());
        s
    });
    f(st)
}

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
    SocketSpec::parse(&file).map_err(|e| format!("bad socket filename: {e}"))?;
    with_state(dp, |st| {
        if st.ifs.values().any(|e| e.socket_id == id) {
            return Err(format!("socket id {id} is in use"));
        }
        st.sockets.insert(id, file);
        Ok(String::new())
    })
}

fn socket_del(dp: &Arc<Dataplane>, w: &[&str]) -> Result<String, String> {
    let id = match w {
        ["id", n] => n.parse::<u32>().map_err(|_| "bad socket id")?,
        _ => return Err("delete memif socket id <n>".into()),
    };
    with_state(dp, |st| {
        if st.ifs.values().any(|e| e.socket_id == id) {
            return Err(format!("socket id {id} is in use"));
        }
        st.sockets
            .remove(&id)
            .map(|_| String::new())
            .ok_or_else(|| format!("socket id {id} does not exist"))
    })
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
    if !ring.is_power_of_two() || !(8..=1 << 14).contains(&ring) {
        return Err(format!(
            "ring size {ring} must be a power of 2 in 8..=16384"
        ));
    }
    if !(1..=255).contains(&rxq) || !(1..=255).contains(&txq) {
        return Err("rx-queues and tx-queues must be 1..=255".into());
    }
    if secret.as_ref().is_some_and(|s| s.len() > 24) {
        return Err("secret is longer than 24 characters".into());
    }
    let name = format!("memif{socket_id}/{id}");
    let file = with_state(dp, |st| {
        let f = st
            .sockets
            .get(&socket_id)
            .cloned()
            .ok_or_else(|| format!("socket id {socket_id} does not exist"))?;
        if st.ifs.values().any(|e| e.name == name) {
            return Err(format!("{name} exists"));
        }
        if role == Role::Server
            && st
                .ifs
                .values()
                .any(|e| e.socket_id == socket_id && e.dev.config().role == Role::Server)
        {
            return Err(format!(
                "socket id {socket_id} already has a server interface (one per socket)"
            ));
        }
        Ok(f)
    })?;
    let mac = mac.unwrap_or_else(|| {
        let p = std::process::id();
        [
            0x02,
            0xfe,
            p as u8,
            (p >> 8) as u8,
            socket_id as u8,
            id as u8,
        ]
    });
    let l2 = mode == Mode::Ethernet;
    let sw = dp
        .fwd()
        .interface_add(&name, "memif", mac, l2, 9000)
        .map_err(|e| e.to_string())?;
    let _ = dp.fwd().set_link_up(sw, false);
    let mut cfg = MemifConfig::new(role, &file, id);
    cfg.mode = mode;
    cfg.rx_queues = rxq as u16;
    cfg.tx_queues = txq as u16;
    cfg.log2_ring_size = ring.trailing_zeros() as u8;
    cfg.buffer_size = bsize;
    cfg.secret = secret;
    cfg.if_name = name.clone();
    cfg.zero_copy = zero_copy;
    let weak = Arc::downgrade(dp);
    let on_link = Box::new(move |up: bool| {
        if let Some(dp) = weak.upgrade() {
            if !dp.stopping() {
                let _ = dp.fwd().set_link_up(sw, up);
            }
        }
    });
    let MemifQueues { device, rx, tx } =
        match MemifDevice::start(cfg, sw, dp.pool.clone(), dp.workers.len(), on_link) {
            Ok(q) => q,
            Err(e) => {
                let _ = dp.fwd().interface_del(sw);
                return Err(format!("memif {name}: {e}"));
            }
        };
    let detail =
        format!(
        "memif {} id {id} socket {file} mode {} rx-queues {rxq} tx-queues {txq} ring-size {ring}{}",
        role_name(role),
        mode_name(mode),
        if role == Role::Client { " zero-copy" } else { "" }
    );
    let rx: Vec<Box<dyn RxQueue>> = rx
        .into_iter()
        .map(|q| Box::new(q) as Box<dyn RxQueue>)
        .collect();
    let tx: Vec<Box<dyn TxQueue>> = tx
        .into_iter()
        .map(|q| Box::new(q) as Box<dyn TxQueue>)
        .collect();
    dp.attach_queues(sw, "memif", detail, rx, tx);
    with_state(dp, |st| {
        st.ifs.insert(
            sw,
            Entry {
                sw,
                name: name.clone(),
                socket_id,
                dev: device,
            },
        )
    });
    Ok(format!("{name}\n"))
}

fn delete(dp: &Arc<Dataplane>, name: &str) -> Result<String, String> {
    let entry = with_state(dp, |st| {
        let sw = st.ifs.values().find(|e| e.name == name).map(|e| e.sw)?;
        st.ifs.remove(&sw)
    })
    .ok_or_else(|| format!("unknown memif interface `{name}'"))?;
    dp.detach(entry.sw);
    // Stop the control thread (it sends DISCONNECT) before the interface goes away; the
    // callback takes the forwarding lock, so it must not be held here.
    let mut dev = entry.dev;
    dev.stop();
    drop(dev);
    dp.fwd()
        .interface_del(entry.sw)
        .map_err(|e| e.to_string())?;
    Ok(String::new())
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Server => "master",
        Role::Client => "slave",
    }
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Ethernet => "ethernet",
        Mode::Ip => "ip",
        Mode::PuntInject => "punt-inject",
    }
}

fn show(dp: &Arc<Dataplane>, only: Option<&str>) -> String {
    let admin: BTreeMap<u32, (bool, [u8; 6])> = {
        let f = dp.fwd();
        f.ifs()
            .ifs
            .iter()
            .flatten()
            .map(|i| (i.sw_if_index, (i.admin_up, i.mac)))
            .collect()
    };
    with_state(dp, |st| {
        let mut s = String::new();
        if only.is_none() {
            let _ = writeln!(s, "sockets\n  {:<4}{:<14}filename", "id", "listener");
            for (id, f) in &st.sockets {
                let users = st.ifs.values().filter(|e| e.socket_id == *id);
                let listeners = users
                    .filter(|e| e.dev.config().role == Role::Server)
                    .count();
                let l = if listeners > 0 {
                    format!("yes ({listeners})")
                } else {
                    "no".into()
                };
                let _ = writeln!(s, "  {id:<4}{l:<14}{f}");
            }
            s.push('\n');
        }
        for e in st.ifs.values() {
            if only.is_some_and(|o| o != e.name) {
                continue;
            }
            let c = e.dev.config();
            let stt = e.dev.status();
            let (up, mac) = admin.get(&e.sw).copied().unwrap_or((false, [0; 6]));
            let _ = writeln!(s, "interface {}", e.name);
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
        }
        s
    })
}
