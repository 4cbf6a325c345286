//! memif over the API: socket filenames (`memif_socket_filename_add_del_v2`, `_dump`) and
//! interfaces (`memif_create`, `memif_delete`, `memif_dump`). Sockets and interfaces are the
//! control service's (`service::memif`), the same ones the CLI's `create memif socket` /
//! `create interface memif` / `show memif` work on.

use super::convert::{self, rv};
use super::handlers::State;
use crate::service::memif::{self as svc, MemifRequest};
use rvpp_drivers::memif::{Mode, Role};
use rvpp_vppapi::defs as d;
use rvpp_vppapi::transport::{Response, Router};

/// `memif_socket_filename_add_del_v2`: (retval, socket id). `~0` on add picks a free id.
pub fn socket_add_del(s: &mut State, m: &d::MemifSocketFilenameAddDelV2) -> (i32, u32) {
    let id = m.socket_id;
    let r = if m.is_add {
        let want = (id != convert::NONE).then_some(id);
        svc::socket_add(&s.dp, want, convert::text(&m.socket_filename))
    } else if id == convert::NONE {
        return (rv::INVALID_ARGUMENT, id);
    } else {
        svc::socket_del(&s.dp, id).map(|()| id)
    };
    match r {
        Ok(id) => (0, id),
        Err(e) => {
            log::warn!("api: memif socket {id}: {e}");
            (e.retval, id)
        }
    }
}

pub fn socket_dump(s: &State) -> Vec<d::MemifSocketFilenameDetails> {
    svc::sockets(&s.dp)
        .into_iter()
        .map(|(id, f)| d::MemifSocketFilenameDetails {
            context: 0,
            socket_id: id,
            socket_filename: f,
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
    let req = MemifRequest {
        id: m.id,
        socket_id: m.socket_id,
        role,
        mode,
        rx_queues: u32::from(m.rx_queues),
        tx_queues: u32::from(m.tx_queues),
        ring_size: m.ring_size,
        buffer_size: u32::from(m.buffer_size),
        secret: Some(convert::text(&m.secret).to_string()),
        mac: Some(m.hw_addr.0),
        zero_copy: !m.no_zero_copy,
    };
    let r = svc::create(&s.dp, req);
    s.kick();
    match r {
        Ok((sw, _)) => (0, sw),
        Err(e) => {
            log::warn!("api: memif_create: {e}");
            (e.retval, convert::NONE)
        }
    }
}

/// `memif_delete`: -2 unless the interface is a memif.
pub fn delete(s: &mut State, sw: u32) -> i32 {
    let r = svc::delete(&s.dp, sw);
    super::devices::deleted(s, "memif_delete", r)
}

pub fn dump(s: &State) -> Vec<d::MemifDetails> {
    let rows = svc::each(&s.dp, |sw, e| {
        let c = e.dev.config();
        (
            sw,
            c.id,
            c.role,
            c.mode,
            e.dev.zero_copy(),
            e.socket_id,
            e.ring_size,
            e.buffer_size,
        )
    });
    let f = s.dp.fwd();
    rows.into_iter()
        .filter_map(|(sw, id, role, mode, zero_copy, socket_id, ring, bsize)| {
            let i = f.iface(sw).ok()?;
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
                id,
                role: if role == Role::Client {
                    d::MemifRole::MEMIF_ROLE_API_SLAVE
                } else {
                    d::MemifRole::MEMIF_ROLE_API_MASTER
                },
                mode: if mode == Mode::Ip {
                    d::MemifMode::MEMIF_MODE_API_IP
                } else {
                    d::MemifMode::MEMIF_MODE_API_ETHERNET
                },
                zero_copy,
                socket_id,
                ring_size: ring,
                buffer_size: bsize as u16,
                flags: d::IfStatusFlags(flags),
                if_name: i.name.clone(),
            })
        })
        .collect()
}

pub(super) fn register(r: &mut Router<State>) {
    r.on(|s: &mut State, m: d::MemifSocketFilenameAddDelV2, _c| {
        let (rv, id) = socket_add_del(s, &m);
        Response::reply(d::MemifSocketFilenameAddDelV2Reply {
            context: 0,
            retval: rv,
            socket_id: id,
        })
    });
    r.on(|s: &mut State, _m: d::MemifSocketFilenameDump, _c| Response::stream(socket_dump(s)));
    r.on(|s: &mut State, m: d::MemifCreate, _c| {
        let (rv, sw) = create(s, &m);
        Response::reply(d::MemifCreateReply {
            context: 0,
            retval: rv,
            sw_if_index: d::InterfaceIndex(sw),
        })
    });
    r.on(|s: &mut State, m: d::MemifDelete, _c| {
        let rv = delete(s, m.sw_if_index.0);
        reply!(MemifDeleteReply, rv)
    });
    r.on(|s: &mut State, _m: d::MemifDump, _c| Response::stream(dump(s)));
}
