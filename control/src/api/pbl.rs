//! `pbl_client_update`, `pbl_client_del` (calico's private PBL plugin), over `service::pbl`.

use super::convert::{self, rv, ApiPath, NONE};
use super::handlers::State;
use crate::service::pbl;
use crate::service::SvcError;
use rvpp_vppapi::defs as d;
use rvpp_vppapi::transport::{Response, Router};

fn update(s: &State, c: &d::PblClient) -> Result<u32, SvcError> {
    let addr = convert::addr_ip(&c.addr);
    let path = match convert::path_in(&c.paths, addr.is_ipv6()) {
        ApiPath::Fwd(p) => p,
        ApiPath::Other => {
            return Err(SvcError::new(
                rv::UNIMPLEMENTED,
                "a path rvpp cannot forward on",
            ))
        }
    };
    // As VPP: the end is at least the start; protocols without ports are ignored.
    let ranges = c.port_ranges[..(c.n_ports as usize).min(c.port_ranges.len())]
        .iter()
        .filter(|r| matches!(r.iproto.0, 6 | 17 | 132))
        .map(|r| (r.iproto.0, r.start, r.end.max(r.start)))
        .collect();
    let id = (c.id != NONE).then_some(c.id);
    pbl::update(&s.dp, id, c.table_id, addr, &path, ranges)
}

pub(super) fn register(r: &mut Router<State>) {
    r.on(|s: &mut State, m: d::PblClientUpdate, _c| {
        let (retval, id) = match update(s, &m.client) {
            Ok(id) => (0, id),
            Err(e) => {
                log::warn!("api: pbl_client_update: {e}");
                (e.retval, NONE)
            }
        };
        Response::reply(d::PblClientUpdateReply {
            context: 0,
            retval,
            id,
        })
    });
    r.on(|s: &mut State, m: d::PblClientDel, _c| {
        reply!(
            PblClientDelReply,
            convert::svc_retval(pbl::del(&s.dp, m.id))
        )
    });
}
