//! The API state beside the control service, and the router: one registration per API module.

use crate::daemon::Dataplane;
use rvpp_dataplane::forwarding::Forwarding;
use rvpp_vppapi::transport::Router;
use std::collections::BTreeMap;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use super::convert::rv;

/// Registrations for `sw_interface_event`: client_index -> pid.
pub type EventRegs = Arc<Mutex<BTreeMap<u32, u32>>>;

/// What the API keeps beside the control service: its event registrations.
pub struct State {
    pub dp: Arc<Dataplane>,
    pub regs: EventRegs,
    pub kick: Sender<()>,
}

impl State {
    pub fn new(dp: Arc<Dataplane>, regs: EventRegs, kick: Sender<()>) -> Self {
        Self { dp, regs, kick }
    }

    pub(super) fn kick(&self) {
        let _ = self.kick.send(());
    }
}

pub(super) fn sw_ok(f: &Forwarding, sw: u32) -> i32 {
    if f.iface(sw).is_ok() {
        0
    } else {
        rv::INVALID_SW_IF_INDEX
    }
}

/// A per-interface setting rvpp has no machinery for: -2 for a bad interface, else -9.
pub(super) fn unimplemented_on(f: &Forwarding, sw: u32) -> i32 {
    match sw_ok(f, sw) {
        0 => rv::UNIMPLEMENTED,
        e => e,
    }
}

/// The router with every handled message.
pub fn router(state: State) -> Router<State> {
    let mut r = Router::new(state);
    r.on_disconnect(|s: &mut State, ci| {
        s.regs.lock().unwrap_or_else(|e| e.into_inner()).remove(&ci);
    });
    super::misc::register(&mut r);
    super::interfaces::register(&mut r);
    super::features::register(&mut r);
    super::ip::register(&mut r);
    super::punt::register(&mut r);
    super::devices::register(&mut r);
    super::memif::register(&mut r);
    super::cnat::register(&mut r);
    super::npol::register(&mut r);
    super::urpf::register(&mut r);
    super::classify::register(&mut r);
    super::pbl::register(&mut r);
    super::ipsec::register(&mut r);
    super::ikev2::register(&mut r);
    super::wireguard::register(&mut r);
    super::srv6::register(&mut r);
    r
}
