//! The control service: the one owner of interfaces with devices behind them (loopbacks, taps,
//! tuns, af_packet, af_xdp, memif and its socket ids) and of tables, routes, neighbours,
//! punt redirects and uRPF checks, whichever front end asks. The CLI
//! (`cli*.rs`) and the binary API (`api/`) parse their syntax, call these functions and render
//! the answer; neither keeps a registry of its own. Interface names and indices are the
//! dataplane's interface table (`Forwarding`), which the stats segment reads; what a device
//! needs beyond that (its driver handle, host link, socket id) is its [`Driver`] in
//! `Dataplane::devices`, next to its queue placement.
//!
//! Errors carry VPP's return code for the API and a sentence for the CLI.

pub mod addresses;
pub mod classify;
pub mod cnat;
pub mod ikev2;
pub mod interfaces;
pub mod ipip;
pub mod ipsec;
pub mod linux;
pub mod memif;
pub mod mroutes;
pub mod neighbours;
pub mod pbl;
pub mod punt;
pub mod queues;
pub mod routes;
pub mod snapshot;
pub mod srv6;
pub mod tables;
pub mod ttl_fixup;
pub mod tunnel;
pub mod urpf;
pub mod vxlan;
pub mod wireguard;

use rvpp_dataplane::forwarding::FwdError;
use std::fmt;
use std::sync::mpsc::Sender;
use std::sync::{Mutex, MutexGuard, Once};

/// `VNET_API_ERROR_*` (src/vnet/error.h).
pub mod rv {
    pub const UNSPECIFIED: i32 = -1;
    pub const INVALID_SW_IF_INDEX: i32 = -2;
    pub const NO_SUCH_FIB: i32 = -3;
    pub const NO_SUCH_ENTRY: i32 = -6;
    pub const INVALID_VALUE: i32 = -7;
    pub const UNIMPLEMENTED: i32 = -9;
    pub const SYSCALL_ERROR_1: i32 = -11;
    pub const SYSCALL_ERROR_2: i32 = -12;
    pub const INVALID_REGISTRATION: i32 = -31;
    pub const NO_PATHS_IN_ROUTE: i32 = -52;
    pub const NO_SUCH_NODE: i32 = -63;
    pub const NO_SUCH_NODE2: i32 = -64;
    pub const ADDRESS_NOT_FOUND_FOR_INTERFACE: i32 = -60;
    pub const SUBIF_ALREADY_EXISTS: i32 = -68;
    pub const INVALID_INTERFACE: i32 = -71;
    pub const INVALID_ARGUMENT: i32 = -73;
    pub const INVALID_ADDRESS_FAMILY: i32 = -97;
    pub const UNEXPECTED_INTF_STATE: i32 = -74;
    pub const TUNNEL_EXIST: i32 = -75;
    pub const IF_ALREADY_EXISTS: i32 = -79;
    pub const ADDRESS_FOUND_FOR_INTERFACE: i32 = -114;
    pub const ENTRY_ALREADY_EXISTS: i32 = -116;
    pub const NETLINK_ERROR: i32 = -145;
    pub const INSTANCE_IN_USE: i32 = -147;
    pub const RSRC_IN_USE: i32 = -155;
    pub const NO_SUCH_TABLE: i32 = -65;
}

/// VPP's return code for a forwarding error.
pub fn fwd_rv(e: &FwdError) -> i32 {
    match e {
        FwdError::NoSuchInterface(_) => rv::INVALID_SW_IF_INDEX,
        FwdError::NoSuchTable(_) => rv::NO_SUCH_FIB,
        FwdError::NoSuchEntry => rv::NO_SUCH_ENTRY,
        FwdError::AddressesPresent => rv::ADDRESS_FOUND_FOR_INTERFACE,
        FwdError::Invalid(_) => rv::INVALID_VALUE,
        // VPP's feature_enable_disable handler: no registration for (arc, feature).
        FwdError::Feature(_) => rv::INVALID_VALUE,
        FwdError::TableInUse | FwdError::TooManyInterfaces | FwdError::Fib(_) => rv::UNSPECIFIED,
    }
}

/// A refused or failed request: VPP's return code and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SvcError {
    pub retval: i32,
    pub msg: String,
}

impl SvcError {
    pub fn new(retval: i32, msg: impl Into<String>) -> Self {
        Self {
            retval,
            msg: msg.into(),
        }
    }
}

impl fmt::Display for SvcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl From<FwdError> for SvcError {
    fn from(e: FwdError) -> Self {
        Self::new(fwd_rv(&e), e.to_string())
    }
}

pub type SvcResult<T> = Result<T, SvcError>;

/// What a device is beyond its interface: the handle its driver needs to stop, and what the
/// front ends show about it.
pub enum Driver {
    /// Nothing to release but its queues (loopback, pg, null, pcap, dpdk).
    Plain,
    /// A Linux-facing device (tap/tun, af_packet, af_xdp).
    Linux(linux::LinuxDev),
    Memif(memif::MemifDev),
}

/// The lowest `n` for which `taken(n)` is false: VPP's instance numbering.
pub fn lowest_free(mut taken: impl FnMut(u32) -> bool) -> u32 {
    (0..u32::MAX).find(|&n| !taken(n)).unwrap_or(u32::MAX)
}

/// A locally administered unicast MAC (VPP's "random" MAC).
pub fn random_mac() -> [u8; 6] {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let v = h.finish().to_be_bytes();
    [0x02, 0xfe, v[0], v[1], v[2], v[3]]
}

/// Interface `sw` was deleted: what is configured on it goes (punt redirects received on it,
/// its queues' rx modes, its npol policies and cached verdicts: a new interface given its
/// index starts unconfigured) and tables it held may go.
fn interface_gone(dp: &crate::daemon::Dataplane, sw: u32) {
    punt::interface_gone(dp, sw);
    queues::interface_gone(dp, sw);
    urpf::interface_gone(dp, sw);
    mroutes::interface_gone(dp, sw);
    ttl_fixup::interface_gone(dp, sw);
    classify::interface_gone(dp, sw);
    ipsec::interface_gone(dp, sw);
    ikev2::interface_gone(dp, sw);
    dp.npol().unconfigure(sw);
    tables::reap(dp);
}

/// The service's own state beside the dataplane's tables (`Dataplane::svc`).
pub struct State {
    memif_sockets: Mutex<memif::Sockets>,
    tables: Mutex<tables::Tables>,
    punts: Mutex<Vec<punt::Redirect>>,
    rx_modes: Mutex<queues::RxModes>,
    urpf: Mutex<urpf::Checks>,
    mroutes: Mutex<mroutes::Mroutes>,
    /// SRv6 steering; its lock also orders every SRv6 edit.
    srv6: Mutex<srv6::Steering>,
    /// IKEv2 profiles, engines and the child SAs they installed.
    ikev2: Mutex<ikev2::Ikev2>,
    linux_monitor: Once,
    /// Woken after a change (the API's interface-event publisher).
    listeners: Mutex<Vec<Sender<()>>>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            memif_sockets: Default::default(),
            tables: Default::default(),
            punts: Default::default(),
            rx_modes: Default::default(),
            urpf: Default::default(),
            mroutes: Default::default(),
            srv6: Default::default(),
            ikev2: Default::default(),
            linux_monitor: Once::new(),
            listeners: Default::default(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl State {
    fn memif_sockets(&self) -> MutexGuard<'_, memif::Sockets> {
        lock(&self.memif_sockets)
    }
    /// Be woken after changes.
    pub fn subscribe(&self, tx: Sender<()>) {
        lock(&self.listeners).push(tx);
    }
    pub fn changed(&self) {
        lock(&self.listeners).retain(|t| t.send(()).is_ok());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_fill_the_lowest_gap() {
        assert_eq!(lowest_free(|_| false), 0);
        assert_eq!(lowest_free(|n| [0, 1, 3].contains(&n)), 2);
        assert_eq!(lowest_free(|n| n < 5), 5);
    }

    #[test]
    fn forwarding_errors_keep_vpp_codes() {
        let e: SvcError = FwdError::NoSuchInterface(7).into();
        assert_eq!(e.retval, rv::INVALID_SW_IF_INDEX);
        assert!(!e.msg.is_empty());
        let e: SvcError = FwdError::NoSuchTable(3).into();
        assert_eq!(e.retval, rv::NO_SUCH_FIB);
    }
}
