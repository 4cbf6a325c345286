//! memif over the API: socket filenames (`memif_socket_filename_add_del_v2`, `_dump`) and
//! interfaces (`memif_create`, `memif_delete`, `memif_dump`), on the same driver calls as
//! `create memif socket` / `create interface memif` (cli_memif.rs).
//!
//! The registry is the API's own: sockets and interfaces made here are not listed by the
//! CLI's `show memif` and the CLI's are not in `memif_dump` (cli_memif keeps its state
//! private; see the report for the `pub` it would need to share one registry, as VPP has).

use super::convert::{self, rv};
use super::devices;
use super::handlers::State;
use rvpp_dataplane::device::{RxQueue, TxQueue};
use rvpp_drivers::memif::{MemifConfig, MemifDevice, MemifQueues, Mode, Role, SocketSpec};
use rvpp_vppapi::defs as d;
use std::collections::BTreeMap;
use std::sync::Arc;

/// VPP's socket id 0.
const DEFAULT_SOCKET: &str = "/run/vpp/memif.sock";
/// Where VPP puts relative socket filenames (its runtime directory).
const RUNTIME_DIR: &str = "/run/vpp";

struct Entry {
    socket_id: u32,
    ring_size: u32,
    buffer_size: u16,
    dev: MemifDevice,
}

/// Socket filenames by id, and the memif interfaces by sw_if_index.
pub struct Memifs {
    sockets: BTreeMap<u32, String>,
    ifs: BTreeMap<u32, Entry>,
    next_socket_id: u32,
}

impl Default for Memifs {
    fn default() -> Self {
        Self {
            sockets: BTreeMap::from([(0, DEFAULT_SOCKET.to_string())]),
            ifs: BTreeMap::new(),
            next_socket_id: 1,
        }
    }
}

impl Memifs {
    fn in_use(&self, socket_id: u32) -> bool {
        self.ifs.values().any(|e| e.socket_id == socket_id)
    }
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

/// `memif_socket_filename_add_del_v2`: (retval, socket id). `~0` on add picks a free id.
pub fn socket_add_del(s: &mut State, m: &d::MemifSocketFilenameAddDelV2) -> (i32, u32) {
    let mut id = m.socket_id;
    let st = &mut s.memif;
    if id == 0 {
        return (rv::INVALID_ARGUMENT, id);
    }
    if !m.is_add {
        if id == convert::NONE || !st.sockets.contains_key(&id) {
            return (rv::INVALID_ARGUMENT, id);
        }
        if st.in_use(id) {
            return (rv::UNEXPECTED_INTF_STATE, id);
        }
        st.sockets.remove(&id);
        return (0, id);
    }
    if id == convert::NONE {
        while st.sockets.contains_key(&st.next_socket_id) || st.next_socket_id == convert::NONE {
            st.next_socket_id = st.next_socket_id.wrapping_add(1).max(1);
        }
        id = st.next_socket_id;
        st.next_socket_id = st.next_socket_id.wrapping_add(1).max(1);
    }
    let file = convert::text(&m.socket_filename);
    if file.is_empty() {
        return (rv::INVALID_ARGUMENT, id);
    }
    let file = normalise(file);
    if let Err(e) = SocketSpec::parse(&file) {
        log::warn!("api: memif socket {id} {file:?}: {e}");
        return (rv::INVALID_ARGUMENT, id);
    }
    match st.sockets.get(&id) {
        // VPP silently accepts an identical add, and refuses another filename.
        Some(f) if *f == file => (0, id),
        Some(_) => (rv::ENTRY_ALREADY_EXISTS, id),
        None => {
            st.sockets.insert(id, file);
            (0, id)
        }
    }
}

pub fn socket_dump(s: &State) -> Vec<d::MemifSocketFilenameDetails> {
    s.memif
        .sockets
        .iter()
        .map(|(&id, f)| d::MemifSocketFilenameDetails {
            context: 0,
            socket_id: id,
            socket_filename: f.clone(),
        })
        .collect()
}

/// `memif_create`: (retval, sw_if_index). Defaults as VPP's handler: ring 1024, buffers
/// 2048 bytes, one queue each way. A server takes the queue counts asked for (at least one)
/// as the most its peer may use; rvpp needs them up front to place the rx queues.
pub fn create(s: &mut State, m: &d::MemifCreate) -> (i32, u32) {
    let role = if m.role == d::MemifRole::MEMIF_ROLE_API_SLAVE {
        Role::Client
    } else {
        Role::Server
    };
    let mode = match m.mode {
        d::MemifMode::MEMIF_MODE_API_ETHERNET => Mode::Ethernet,
        d::MemifMode::MEMIF_MODE_API_IP => Mode::Ip,
        _ => {
            log::warn!("api: memif_create: only ethernet and ip modes are supported");
            return (rv::UNIMPLEMENTED, convert::NONE);
        }
    };
    let ring = if m.ring_size == 0 { 1024 } else { m.ring_size };
    if !ring.is_power_of_two() || !(8..=1 << 14).contains(&ring) {
        return (rv::INVALID_ARGUMENT, convert::NONE);
    }
    let bsize = if m.buffer_size == 0 {
        2048
    } else {
        m.buffer_size
    };
    let (rxq, txq) = (m.rx_queues.max(1), m.tx_queues.max(1));
    let secret = convert::text(&m.secret);
    let (socket_id, id) = (m.socket_id, m.id);
    let name = format!("memif{socket_id}/{id}");
    let Some(file) = s.memif.sockets.get(&socket_id).cloned() else {
        return (rv::INVALID_ARGUMENT, convert::NONE); // "unknown socket id"
    };
    // A socket is a listener or a client socket, never both; ids are unique per socket;
    // rvpp's server binds one socket per interface.
    for e in s.memif.ifs.values().filter(|e| e.socket_id == socket_id) {
        let c = e.dev.config();
        if c.role != role || c.id == id || role == Role::Server {
            return (rv::SUBIF_ALREADY_EXISTS, convert::NONE);
        }
    }
    let mac = if m.hw_addr.0 == [0; 6] {
        devices::random_mac()
    } else {
        m.hw_addr.0
    };
    let sw = match s
        .dp
        .fwd()
        .interface_add(&name, "memif", mac, mode == Mode::Ethernet, 9000)
    {
        Ok(sw) => sw,
        Err(e) => return (convert::fwd_rv(&e), convert::NONE),
    };
    let _ = s.dp.fwd().set_link_up(sw, false);
    let mut cfg = MemifConfig::new(role, &file, id);
    cfg.mode = mode;
    cfg.rx_queues = u16::from(rxq);
    cfg.tx_queues = u16::from(txq);
    cfg.log2_ring_size = ring.trailing_zeros() as u8;
    cfg.buffer_size = u32::from(bsize);
    cfg.secret = (!secret.is_empty()).then(|| secret.to_string());
    cfg.if_name = name.clone();
    cfg.zero_copy = !m.no_zero_copy;
    let weak = Arc::downgrade(&s.dp);
    let kick = s.kick.clone();
    let on_link = Box::new(move |up: bool| {
        if let Some(dp) = weak.upgrade() {
            if !dp.stopping() {
                let _ = dp.fwd().set_link_up(sw, up);
                let _ = kick.send(());
            }
        }
    });
    let MemifQueues { device, rx, tx } =
        match MemifDevice::start(cfg, sw, s.dp.pool.clone(), s.dp.workers.len(), on_link) {
            Ok(q) => q,
            Err(e) => {
                log::warn!("api: memif_create {name} on {file}: {e}");
                let _ = s.dp.fwd().interface_del(sw);
                let rv = if e.kind() == std::io::ErrorKind::InvalidInput {
                    rv::INVALID_ARGUMENT
                } else {
                    rv::SYSCALL_ERROR_1
                };
                return (rv, convert::NONE);
            }
        };
    let detail = format!(
        "memif {} id {id} socket {file} mode {} rx-queues {rxq} tx-queues {txq} ring-size {ring}",
        if role == Role::Server {
            "master"
        } else {
            "slave"
        },
        if mode == Mode::Ip { "ip" } else { "ethernet" },
    );
    let rx: Vec<Box<dyn RxQueue>> = rx
        .into_iter()
        .map(|q| Box::new(q) as Box<dyn RxQueue>)
        .collect();
    let tx: Vec<Box<dyn TxQueue>> = tx
        .into_iter()
        .map(|q| Box::new(q) as Box<dyn TxQueue>)
        .collect();
    devices::attach(s, sw, "memif", detail, rx, tx);
    s.memif.ifs.insert(
        sw,
        Entry {
            socket_id,
            ring_size: ring,
            buffer_size: bsize,
            dev: device,
        },
    );
    (0, sw)
}

/// `memif_delete`: -2 unless the interface is a memif.
pub fn delete(s: &mut State, sw: u32) -> i32 {
    let Some(e) = s.memif.ifs.remove(&sw) else {
        return rv::INVALID_SW_IF_INDEX;
    };
    s.dp.detach(sw);
    // Stop the device's control thread (it disconnects the peer) before the interface goes:
    // its link callback takes the forwarding lock, so that lock must not be held here.
    let mut dev = e.dev;
    dev.stop();
    drop(dev);
    let r = s.dp.fwd().interface_del(sw);
    s.forget_interface(sw);
    s.kick();
    convert::retval(r)
}

pub fn dump(s: &State) -> Vec<d::MemifDetails> {
    let f = s.dp.fwd();
    s.memif
        .ifs
        .iter()
        .filter_map(|(&sw, e)| {
            let i = f.iface(sw).ok()?;
            let c = e.dev.config();
            let mut flags = 0;
            if i.admin_up {
                flags |= 1;
            }
            if i.link_up {
                flags |= 2;
            }
            Some(d::MemifDetails {
                context: 0,
                sw_if_index: d::InterfaceIndex(sw),
                hw_addr: d::MacAddress(i.mac),
                id: c.id,
                role: if c.role == Role::Client {
                    d::MemifRole::MEMIF_ROLE_API_SLAVE
                } else {
                    d::MemifRole::MEMIF_ROLE_API_MASTER
                },
                mode: if c.mode == Mode::Ip {
                    d::MemifMode::MEMIF_MODE_API_IP
                } else {
                    d::MemifMode::MEMIF_MODE_API_ETHERNET
                },
                zero_copy: e.dev.zero_copy(),
                socket_id: e.socket_id,
                ring_size: e.ring_size,
                buffer_size: e.buffer_size,
                flags: d::IfStatusFlags(flags),
                if_name: i.name.clone(),
            })
        })
        .collect()
}
