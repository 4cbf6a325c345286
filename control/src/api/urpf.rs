//! `urpf_update_v2`: the uRPF check on an interface, through the control service's
//! `service::urpf` (the same checks `set urpf` edits).

use super::convert::{self, rv, NONE};
use super::handlers::State;
use crate::service::urpf;
use rvpp_dataplane::forwarding::Af;
use rvpp_dataplane::nodes::urpf::{Dir, Mode};
use rvpp_vppapi::defs as d;
use rvpp_vppapi::transport::Router;

fn update(s: &State, m: &d::UrpfUpdateV2) -> i32 {
    // VPP's order: the interface, the mode, the family, then the table.
    if s.dp.fwd().iface(m.sw_if_index.0).is_err() {
        return rv::INVALID_SW_IF_INDEX;
    }
    let mode = match m.mode {
        d::UrpfMode::URPF_API_MODE_OFF => None,
        d::UrpfMode::URPF_API_MODE_LOOSE => Some(Mode::Loose),
        d::UrpfMode::URPF_API_MODE_STRICT => Some(Mode::Strict),
        _ => return rv::INVALID_VALUE,
    };
    let af = match m.af {
        d::AddressFamily::ADDRESS_IP4 => Af::Ip4,
        d::AddressFamily::ADDRESS_IP6 => Af::Ip6,
        _ => return rv::INVALID_ADDRESS_FAMILY,
    };
    let dir = if m.is_input { Dir::Rx } else { Dir::Tx };
    let table = (m.table_id != NONE).then_some(m.table_id);
    convert::svc_retval(urpf::update(&s.dp, af, dir, m.sw_if_index.0, mode, table))
}

pub(super) fn register(r: &mut Router<State>) {
    r.on(|s: &mut State, m: d::UrpfUpdateV2, _c| reply!(UrpfUpdateV2Reply, update(s, &m)));
}
