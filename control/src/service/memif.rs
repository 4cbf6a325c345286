//! memif socket ids and interfaces (`memif<socket-id>/<id>`), one registry for the CLI's
//! `create memif socket` / `create interface memif` and the API's
//! `memif_socket_filename_add_del_v2` / `memif_create`.
//!
//! Socket id 0 is `/run/vpp/memif.sock` and cannot be changed, as in VPP. A socket is a
//! listener or a client socket, never both; ids are unique per socket; rvpp's server binds one
//! socket per interface.

use super::{interfaces, random_mac, rv, Driver, SvcError, SvcResult};
use crate::daemon::Dataplane;
use rvpp_dataplane::device::{RxQueue, TxQueue};
use rvpp_drivers::memif::{
    MemifConfig, MemifDevice, MemifHandoff, MemifOwner, MemifQueues, Mode, Role, SocketSpec,
};
use std::collections::BTreeMap;
use std::sync::Arc;

/// VPP's socket id 0.
pub const DEFAULT_SOCKET: &str = "/run/vpp/memif.sock";
/// Where VPP puts relative socket filenames (its runtime directory).
const RUNTIME_DIR: &str = "/run/vpp";

/// Socket filenames by id.
pub struct Sockets(BTreeMap<u32, String>);

impl Default for Sockets {
    fn default() -> Self {
        Self(BTreeMap::from([(0, DEFAULT_SOCKET.to_string())]))
    }
}

/// A memif interface's device.
pub struct MemifDev {
    pub socket_id: u32,
    pub ring_size: u32,
    pub buffer_size: u32,
    pub dev: MemifDevice,
}

/// `create interface memif` / `memif_create`.
pub struct MemifRequest {
    pub id: u32,
    pub socket_id: u32,
    pub role: Role,
    pub mode: Mode,
    pub rx_queues: u32,
    pub tx_queues: u32,
    /// 0: 1024.
    pub ring_size: u32,
    /// 0: 2048.
    pub buffer_size: u32,
    pub secret: Option<String>,
    /// None or all zero: a random MAC.
    pub mac: Option<[u8; 6]>,
    pub zero_copy: bool,
}

/// A filename as VPP stores it: abstract and absolute names as given, relative ones under
/// the runtime directory.
fn normalise(file: &str) -> String {
    if file.starts_with('/') || file.starts_with('@') || file.starts_with("abstract:") {
        file.to_string()
    } else {
        format!("{RUNTIME_DIR}/{file}")
    }
}

fn in_use(dp: &Dataplane, socket_id: u32) -> bool {
    dp.devices_lock()
        .values()
        .any(|d| matches!(&d.driver, Driver::Memif(m) if m.socket_id == socket_id))
}

/// Add socket `id` (None: the lowest free id) for `file`. An identical add is accepted
/// (VPP's); another filename for an existing id is not. Returns the id.
pub fn socket_add(dp: &Dataplane, id: Option<u32>, file: &str) -> SvcResult<u32> {
    if id == Some(0) {
        return Err(SvcError::new(
            rv::INVALID_ARGUMENT,
            "socket id 0 is the default socket and cannot be changed",
        ));
    }
    if file.is_empty() {
        return Err(SvcError::new(rv::INVALID_ARGUMENT, "no socket filename"));
    }
    let file = normalise(file);
    if let Err(e) = SocketSpec::parse(&file) {
        return Err(SvcError::new(
            rv::INVALID_ARGUMENT,
            format!("bad socket filename {file:?}: {e}"),
        ));
    }
    let mut s = dp.svc.memif_sockets();
    let id = id.unwrap_or_else(|| super::lowest_free(|i| s.0.contains_key(&i)));
    match s.0.get(&id) {
        Some(f) if *f == file => Ok(id),
        Some(f) => Err(SvcError::new(
            rv::ENTRY_ALREADY_EXISTS,
            format!("socket id {id} is {f}"),
        )),
        None => {
            s.0.insert(id, file);
            Ok(id)
        }
    }
}

pub fn socket_del(dp: &Dataplane, id: u32) -> SvcResult<()> {
    if id == 0 || !dp.svc.memif_sockets().0.contains_key(&id) {
        return Err(SvcError::new(
            rv::INVALID_ARGUMENT,
            format!("socket id {id} does not exist or cannot be deleted"),
        ));
    }
    if in_use(dp, id) {
        return Err(SvcError::new(
            rv::UNEXPECTED_INTF_STATE,
            format!("socket id {id} is in use"),
        ));
    }
    dp.svc.memif_sockets().0.remove(&id);
    Ok(())
}

/// Socket ids and filenames, by id.
pub fn sockets(dp: &Dataplane) -> Vec<(u32, String)> {
    dp.svc
        .memif_sockets()
        .0
        .iter()
        .map(|(&i, f)| (i, f.clone()))
        .collect()
}

pub fn create(dp: &Arc<Dataplane>, m: MemifRequest) -> SvcResult<(u32, String)> {
    let bad = |s: String| Err(SvcError::new(rv::INVALID_ARGUMENT, s));
    let ring = if m.ring_size == 0 { 1024 } else { m.ring_size };
    if !ring.is_power_of_two() || !(8..=1 << 14).contains(&ring) {
        return bad(format!(
            "ring size {ring} must be a power of 2 in 8..=16384"
        ));
    }
    let bsize = if m.buffer_size == 0 {
        2048
    } else {
        m.buffer_size
    };
    let (rxq, txq) = (m.rx_queues.max(1), m.tx_queues.max(1));
    if rxq > 255 || txq > 255 {
        return bad("rx-queues and tx-queues must be 1..=255".into());
    }
    if m.secret.as_ref().is_some_and(|s| s.len() > 24) {
        return bad("secret is longer than 24 characters".into());
    }
    let (socket_id, id, role) = (m.socket_id, m.id, m.role);
    let name = format!("memif{socket_id}/{id}");
    let Some(file) = dp.svc.memif_sockets().0.get(&socket_id).cloned() else {
        return bad(format!("socket id {socket_id} does not exist"));
    };
    for d in dp.devices_lock().values() {
        let Driver::Memif(e) = &d.driver else {
            continue;
        };
        let c = e.dev.config();
        if e.socket_id == socket_id && (c.role != role || c.id == id || role == Role::Server) {
            let why = if role == Role::Server && c.role == Role::Server {
                "a server interface (one per socket)".to_string()
            } else {
                format!(
                    "{} interface id {}",
                    if c.role == Role::Server {
                        "server"
                    } else {
                        "client"
                    },
                    c.id
                )
            };
            return Err(SvcError::new(
                rv::SUBIF_ALREADY_EXISTS,
                format!("socket id {socket_id} already has {why}"),
            ));
        }
    }
    let mac = m.mac.filter(|m| *m != [0; 6]).unwrap_or_else(random_mac);
    let sw = dp
        .fwd()
        .interface_add(&name, "memif", mac, m.mode == Mode::Ethernet, 9000)?;
    let _ = dp.fwd().set_link_up(sw, false);
    let mut cfg = MemifConfig::new(role, &file, id);
    cfg.mode = m.mode;
    cfg.rx_queues = rxq as u16;
    cfg.tx_queues = txq as u16;
    cfg.log2_ring_size = ring.trailing_zeros() as u8;
    cfg.buffer_size = bsize;
    cfg.secret = m.secret.filter(|s| !s.is_empty());
    cfg.if_name = name.clone();
    cfg.zero_copy = m.zero_copy;
    let on_link = link_watch(dp, sw);
    let MemifQueues { device, rx, tx } =
        match MemifDevice::start(cfg, sw, dp.pool.clone(), dp.workers.len(), on_link) {
            Ok(q) => q,
            Err(e) => {
                let _ = dp.fwd().interface_del(sw);
                let code = if e.kind() == std::io::ErrorKind::InvalidInput {
                    rv::INVALID_ARGUMENT
                } else {
                    rv::SYSCALL_ERROR_1
                };
                return Err(SvcError::new(code, format!("memif {name} on {file}: {e}")));
            }
        };
    let detail = format!(
        "memif {} id {id} socket {file} mode {} rx-queues {rxq} tx-queues {txq} ring-size {ring}{}",
        role_name(role),
        mode_name(m.mode),
        if role == Role::Client && device.zero_copy() {
            " zero-copy"
        } else {
            ""
        }
    );
    let dev = MemifDev {
        socket_id,
        ring_size: ring,
        buffer_size: bsize,
        dev: device,
    };
    place(dp, sw, detail, dev, rx, tx);
    Ok((sw, name))
}

/// The interface's link follows the peer's connection.
fn link_watch(dp: &Arc<Dataplane>, sw: u32) -> Box<dyn FnMut(bool) + Send> {
    let weak = Arc::downgrade(dp);
    Box::new(move |up: bool| {
        if let Some(dp) = weak.upgrade() {
            if !dp.stopping() {
                let _ = dp.fwd().set_link_up(sw, up);
                dp.svc.changed();
            }
        }
    })
}

fn place(
    dp: &Arc<Dataplane>,
    sw: u32,
    detail: String,
    dev: MemifDev,
    rx: Vec<rvpp_drivers::memif::MemifRxQueue>,
    tx: Vec<rvpp_drivers::memif::MemifTxQueue>,
) {
    let rx: Vec<Box<dyn RxQueue>> = rx
        .into_iter()
        .map(|q| Box::new(q) as Box<dyn RxQueue>)
        .collect();
    let tx: Vec<Box<dyn TxQueue>> = tx
        .into_iter()
        .map(|q| Box::new(q) as Box<dyn TxQueue>)
        .collect();
    dp.attach_queues(sw, "memif", detail, Driver::Memif(dev), rx, tx);
    dp.svc.changed();
}

/// A memif server another rvpp handed over (`snapshot::restore`), at `sw`, which the restore
/// made; its tx queues placed, its rx queues returned for the caller to place once every
/// device can send. The owner makes it this process's once the other has stopped.
pub fn adopt(
    dp: &Arc<Dataplane>,
    sw: u32,
    (socket_id, ring_size, buffer_size): (u32, u32, u32),
    cfg: MemifConfig,
    handoff: MemifHandoff,
    detail: String,
) -> Result<(MemifOwner, Vec<Box<dyn RxQueue>>), String> {
    let name = cfg.if_name.clone();
    let on_link = link_watch(dp, sw);
    let MemifQueues { device, rx, tx } =
        MemifDevice::adopt(cfg, handoff, sw, dp.pool.clone(), dp.workers.len(), on_link)
            .map_err(|e| format!("adopting {name}: {e}"))?;
    let owner = device.owner();
    let dev = MemifDev {
        socket_id,
        ring_size,
        buffer_size,
        dev: device,
    };
    place(dp, sw, detail, dev, Vec::new(), tx);
    let rx = rx
        .into_iter()
        .map(|q| Box::new(q) as Box<dyn RxQueue>)
        .collect();
    Ok((owner, rx))
}

/// Delete memif interface `sw`.
pub fn delete(dp: &Arc<Dataplane>, sw: u32) -> SvcResult<()> {
    interfaces::delete(dp, sw, "memif")
}

/// Visit every memif interface, by sw_if_index.
pub fn each<R>(dp: &Dataplane, mut f: impl FnMut(u32, &MemifDev) -> R) -> Vec<R> {
    dp.devices_lock()
        .iter()
        .filter_map(|(&sw, d)| match &d.driver {
            Driver::Memif(m) => Some(f(sw, m)),
            _ => None,
        })
        .collect()
}

pub fn role_name(r: Role) -> &'static str {
    match r {
        Role::Server => "master",
        Role::Client => "slave",
    }
}

pub fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Ethernet => "ethernet",
        Mode::Ip => "ip",
        Mode::PuntInject => "punt-inject",
    }
}
