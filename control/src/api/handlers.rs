//! Message handlers: the API state beside the dataplane, and the route table of the router.

use super::convert::{self, rv, ApiPath, NONE};
use super::devices;
use crate::daemon::Dataplane;
use rvpp_dataplane::forwarding::{Af, Forwarding, Path, PathKind, Prefix, Source};
use rvpp_vppapi::defs as d;
use rvpp_vppapi::transport::{Response, Router};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

/// Punt reasons VPP registers that calico looks up (`ip6-nd-neigh-adv` is calico's patch).
pub const PUNT_REASONS: &[&str] = &[
    "ipsec4-spi-o-udp-0",
    "ipsec4-no-such-tunnel",
    "ipsec6-no-such-tunnel",
    "ipsec6-spi-o-udp-0",
    "ip4-acl-deny",
    "ip6-acl-deny",
    "ip6-packet-too-big",
    "ip6-nd-neigh-adv",
];

/// Registrations for `sw_interface_event`: client_index -> pid.
pub type EventRegs = Arc<Mutex<BTreeMap<u32, u32>>>;

/// An `ip_punt_redirect(_v2)` as configured (the dataplane holds what it resolved to).
struct PuntEntry {
    ip6: bool,
    rx: Option<u32>,
    paths: Vec<d::FibPath>,
    /// The table the redirect looks up in, when its path is a table lookup.
    table: Option<u32>,
}

/// What the API keeps beside the dataplane.
pub struct State {
    pub dp: Arc<Dataplane>,
    pub regs: EventRegs,
    pub kick: Sender<()>,
    punts: Vec<PuntEntry>,
    /// Tables `ip_table_add_del` deleted while in use: VPP drops the API's lock and the table
    /// goes when its last user (a bound interface, a lookup into it) lets go. (is_ip6, id).
    doomed: BTreeSet<(bool, u32)>,
    /// Rx modes set through the API, per (sw_if_index, queue).
    rx_modes: BTreeMap<(u32, u16), rvpp_dataplane::device::RxMode>,
    next_table_id: u32,
}

impl State {
    pub fn new(dp: Arc<Dataplane>, regs: EventRegs, kick: Sender<()>) -> Self {
        Self {
            dp,
            regs,
            kick,
            punts: Vec::new(),
            doomed: BTreeSet::new(),
            rx_modes: BTreeMap::new(),
            next_table_id: 0x1000,
        }
    }

    pub(super) fn kick(&self) {
        let _ = self.kick.send(());
    }

    /// Delete the tables whose API lock is gone once nothing uses them any more.
    pub(super) fn reap_tables(&mut self) {
        if self.doomed.is_empty() {
            return;
        }
        let dp = self.dp.clone();
        let mut f = dp.fwd();
        let doomed = std::mem::take(&mut self.doomed);
        for (ip6, t) in doomed {
            if self.punt_uses_table(ip6, t) {
                self.doomed.insert((ip6, t));
                continue;
            }
            match f.table_del(Af::from_is_ip6(ip6), t) {
                Ok(()) => {}
                Err(rvpp_dataplane::forwarding::FwdError::TableInUse) => {
                    self.doomed.insert((ip6, t));
                }
                Err(_) => {}
            }
        }
    }

    /// Forget what is kept about the interfaces the control service deleted since the last
    /// look (through the API or the CLI).
    pub(super) fn forget_deleted(&mut self) {
        for sw in self.dp.svc.take_gone() {
            self.forget_interface(sw);
        }
    }

    /// Forget everything kept about an interface that went away.
    fn forget_interface(&mut self, sw: u32) {
        self.rx_modes.retain(|k, _| k.0 != sw);
        // Its policies go with it: a new interface given the same index starts unconfigured.
        self.dp.npol().unconfigure(sw);
        // Punt redirects for packets received on it go with it (as VPP's do).
        let gone: Vec<bool> = self
            .punts
            .iter()
            .filter(|e| e.rx == Some(sw))
            .map(|e| e.ip6)
            .collect();
        if !gone.is_empty() {
            self.punts.retain(|e| e.rx != Some(sw));
            let mut f = self.dp.fwd();
            for ip6 in gone {
                Self::remove_punt(&mut f, ip6, Some(sw));
            }
        }
        self.reap_tables();
    }

    /// Install a punt redirect in the dataplane: into a table (a lookup there, VPP's DEAG
    /// path, what calico's punt table uses) or out of an interface. Without a usable path the
    /// redirect is removed. Returns the table looked up in, if any.
    fn install_punt(
        f: &mut Forwarding,
        ip6: bool,
        rx: Option<u32>,
        paths: &[d::FibPath],
    ) -> Result<Option<u32>, i32> {
        for p in paths {
            match convert::path_in(p, ip6) {
                ApiPath::Fwd(Path {
                    kind: PathKind::Lookup(t),
                    ..
                }) => {
                    return f
                        .punt_redirect_table(Af::from_is_ip6(ip6), rx, t, true)
                        .map(|()| Some(t))
                        .map_err(|e| convert::fwd_rv(&e))
                }
                ApiPath::Fwd(Path {
                    kind: PathKind::Normal,
                    sw_if_index: Some(s),
                    next_hop,
                    ..
                }) => {
                    return f
                        .punt_redirect(Af::from_is_ip6(ip6), rx, s, next_hop, true)
                        .map(|()| None)
                        .map_err(|e| convert::fwd_rv(&e))
                }
                _ => {}
            }
        }
        Self::remove_punt(f, ip6, rx);
        Ok(None)
    }

    /// Remove the dataplane's redirect for `rx` (whatever it points at: removal only matches
    /// the rx interface; table 0 always exists).
    fn remove_punt(f: &mut Forwarding, ip6: bool, rx: Option<u32>) {
        let _ = f.punt_redirect_table(Af::from_is_ip6(ip6), rx, 0, false);
    }

    /// True when a punt redirect looks up in table `t` (VPP holds a lock on it).
    fn punt_uses_table(&self, ip6: bool, t: u32) -> bool {
        self.punts
            .iter()
            .any(|e| e.ip6 == ip6 && e.table == Some(t))
    }

    // ----- routes ----------------------------------------------------------------------------

    fn route_add_del(&mut self, m: &d::IpRouteAddDel) -> i32 {
        let r = &m.route;
        let p = match convert::prefix_in(&r.prefix) {
            Ok(p) => p.masked(),
            Err(e) => return e,
        };
        let ip6 = p.is_ip6();
        let t = r.table_id;
        let dp = self.dp.clone();
        let mut f = dp.fwd();
        if f.fib_index(p.af(), t).is_none() {
            return rv::NO_SUCH_FIB;
        }
        // A delete of the whole entry ignores its paths (as VPP's); otherwise every path must
        // be one the dataplane forwards on, or nothing changes.
        let mut fwd: Vec<Path> = Vec::new();
        if m.is_add || m.is_multipath {
            for x in &r.paths {
                match convert::path_in(x, ip6) {
                    ApiPath::Fwd(path) => fwd.push(path),
                    ApiPath::Other => return rv::UNIMPLEMENTED,
                }
            }
        }
        if m.is_add {
            if r.paths.is_empty() {
                return rv::NO_PATHS_IN_ROUTE;
            }
            for x in &fwd {
                match (x.kind, x.sw_if_index) {
                    (_, Some(s)) if f.iface(s).is_err() => return rv::INVALID_SW_IF_INDEX,
                    (PathKind::Lookup(lt), _) if f.fib_index(p.af(), lt).is_none() => {
                        return rv::NO_SUCH_FIB
                    }
                    _ => {}
                }
            }
        }
        let api_route = |f: &Forwarding| f.route_get(t, p).filter(|r| r.source == Source::Api);
        let res = match (m.is_add, m.is_multipath) {
            (true, false) => f.route_add(t, p, fwd),
            (true, true) => f.route_add_paths(t, p, fwd),
            (false, false) => {
                if api_route(&f).is_some() {
                    let _ = f.route_del(t, p);
                }
                Ok(())
            }
            (false, true) => match api_route(&f) {
                Some(cur) => {
                    let left: Vec<Path> = cur
                        .paths
                        .iter()
                        .filter(|x| !fwd.iter().any(|g| same_path(g, x)))
                        .copied()
                        .collect();
                    if left.is_empty() {
                        f.route_del(t, p)
                    } else if left.len() != cur.paths.len() {
                        f.route_add(t, p, left)
                    } else {
                        Ok(())
                    }
                }
                None => Ok(()),
            },
        };
        convert::retval(res)
    }

    fn route_dump(&self, m: &d::IpRouteDump) -> Vec<d::IpRouteDetails> {
        let ip6 = m.table.is_ip6;
        let t = m.table.table_id;
        let f = self.dp.fwd();
        if f.fib_index(Af::from_is_ip6(ip6), t).is_none() {
            return vec![];
        }
        f.routes(Af::from_is_ip6(ip6), t)
            .into_iter()
            .map(|(p, r)| d::IpRouteDetails {
                context: 0,
                route: d::IpRoute {
                    table_id: t,
                    stats_index: 0,
                    prefix: convert::prefix_out(p),
                    n_paths: 0,
                    paths: r
                        .paths
                        .iter()
                        .map(|x| convert::path_out(x, ip6, t))
                        .collect(),
                },
            })
            .collect()
    }
}

fn same_path(a: &Path, b: &Path) -> bool {
    a.kind == b.kind && a.next_hop == b.next_hop && a.sw_if_index == b.sw_if_index
}

macro_rules! reply {
    ($t:ident, $rv:expr) => {
        Response::reply(d::$t {
            context: 0,
            retval: $rv,
        })
    };
}

fn sw_ok(f: &Forwarding, sw: u32) -> i32 {
    if f.iface(sw).is_ok() {
        0
    } else {
        rv::INVALID_SW_IF_INDEX
    }
}

/// A per-interface setting rvpp has no machinery for: -2 for a bad interface, else -9.
fn unimplemented_on(f: &Forwarding, sw: u32) -> i32 {
    match sw_ok(f, sw) {
        0 => rv::UNIMPLEMENTED,
        e => e,
    }
}

fn interface_details(
    f: &Forwarding,
    i: &rvpp_dataplane::tables::Interface,
) -> d::SwInterfaceDetails {
    let mut flags = 0;
    if i.admin_up {
        flags |= 1;
    }
    if i.link_up {
        flags |= 2;
    }
    let (l3, ip4, ip6) = (
        u32::from(i.mtu),
        u32::from(f.adj_mtu(i.sw_if_index, Af::Ip4)),
        u32::from(f.adj_mtu(i.sw_if_index, Af::Ip6)),
    );
    d::SwInterfaceDetails {
        sw_if_index: d::InterfaceIndex(i.sw_if_index),
        sup_sw_if_index: i.sub_of.map_or(i.sw_if_index, |s| s.0),
        l2_address: d::MacAddress(i.mac),
        flags: d::IfStatusFlags(flags),
        type_: if i.sub_of.is_some() {
            d::IfType::IF_API_TYPE_SUB
        } else {
            d::IfType::IF_API_TYPE_HARDWARE
        },
        link_duplex: d::LinkDuplex::LINK_DUPLEX_API_FULL,
        link_mtu: i.mtu,
        mtu: [l3, ip4, ip6, l3],
        sub_id: i.sub_of.map_or(0, |s| s.1 as u32),
        sub_number_of_tags: u8::from(i.sub_of.is_some()),
        sub_outer_vlan_id: i.sub_of.map_or(0, |s| s.1),
        interface_name: i.name.clone(),
        interface_dev_type: i.dev_type.clone(),
        tag: i.tag.clone(),
        ..Default::default()
    }
}

fn show_threads(dp: &Dataplane) -> d::ShowThreadsReply {
    let pid = std::process::id();
    let mut t = vec![d::ThreadData {
        id: 0,
        name: "vpp_main".into(),
        type_: String::new(),
        pid,
        cpu_id: dp
            .workers
            .first()
            .filter(|w| w.thread == 0)
            .and_then(|w| w.core)
            .unwrap_or(0),
        core: 0,
        cpu_socket: 0,
    }];
    for w in dp.workers.iter().filter(|w| w.thread != 0) {
        t.push(d::ThreadData {
            id: w.thread as u32,
            name: w.name.clone(),
            type_: "workers".into(),
            pid,
            cpu_id: w.core.unwrap_or(0),
            core: w.core.unwrap_or(0),
            cpu_socket: 0,
        });
    }
    d::ShowThreadsReply {
        context: 0,
        retval: 0,
        count: 0,
        thread_data: t,
    }
}

/// `sw_interface_set_rx_mode`: the mode of one interface's rx queues (or of `queue_id`).
/// rvpp's workers choose how to wait per thread, so each worker holding one of these queues
/// waits as the most demanding mode set on the queues it holds asks (polling, then adaptive,
/// then interrupt: as in VPP, a thread with a polling queue polls); other workers are left
/// alone.
fn rx_mode(s: &mut State, m: &d::SwInterfaceSetRxMode) -> i32 {
    use rvpp_dataplane::device::RxMode;
    let sw = m.sw_if_index.0;
    match s.dp.fwd().iface(sw) {
        Err(_) => return rv::INVALID_SW_IF_INDEX,
        Ok(i) if i.sub_of.is_some() => return rv::INVALID_VALUE,
        Ok(_) => {}
    }
    let mode = match m.mode {
        d::RxMode::RX_MODE_API_POLLING => RxMode::Polling,
        d::RxMode::RX_MODE_API_INTERRUPT => RxMode::Interrupt,
        d::RxMode::RX_MODE_API_ADAPTIVE | d::RxMode::RX_MODE_API_DEFAULT => RxMode::Adaptive,
        // VPP answers every error of set_hw_interface_change_rx_mode with UNIMPLEMENTED.
        _ => return rv::UNIMPLEMENTED,
    };
    let dp = s.dp.clone();
    let mut devs = dp.devices.lock().unwrap_or_else(|e| e.into_inner());
    let Some(dev) = devs.get_mut(&sw) else {
        // No rx queues (a loopback): nothing to change, unless a queue was named.
        return if m.queue_id_valid {
            rv::UNIMPLEMENTED
        } else {
            0
        };
    };
    let queues: Vec<(u16, usize)> = dev
        .rx_placement
        .iter()
        .copied()
        .filter(|q| !m.queue_id_valid || q.0 as u32 == m.queue_id)
        .collect();
    if queues.is_empty() && m.queue_id_valid {
        return rv::UNIMPLEMENTED; // "unknown queue"
    }
    if !m.queue_id_valid {
        dev.rx_mode = mode;
    }
    for &(q, _) in &queues {
        s.rx_modes.insert((sw, q), mode);
    }
    let workers: BTreeSet<usize> = queues.iter().map(|q| q.1).collect();
    apply_rx_modes(s, &devs, workers);
    0
}

/// Set each of `workers` to wait as the queues placed on it ask (see [`rx_mode`]); a worker
/// none of whose queues has a mode set keeps its own.
fn apply_rx_modes(
    s: &State,
    devs: &BTreeMap<u32, crate::daemon::DeviceInfo>,
    workers: impl IntoIterator<Item = usize>,
) {
    use rvpp_dataplane::device::RxMode;
    let rank = |m: &RxMode| match m {
        RxMode::Polling => 2,
        RxMode::Adaptive => 1,
        _ => 0,
    };
    for wi in workers {
        let want = devs
            .values()
            .flat_map(|d| {
                d.rx_placement
                    .iter()
                    .filter(move |q| q.1 == wi)
                    .filter_map(move |q| s.rx_modes.get(&(d.sw_if_index, q.0)))
            })
            .max_by_key(|m| rank(m));
        if let (Some(&m), Some(w)) = (want, s.dp.workers.get(wi)) {
            w.send(crate::daemon::WorkerCmd::SetRxMode(m));
        }
    }
}

/// `sw_interface_set_rx_placement`: move an rx queue to a thread, counted as VPP counts them
/// (`is_main`: thread 0; otherwise worker `worker_id` is thread `worker_id + 1`, or thread 0
/// when there are no workers). rvpp's forwarding threads are the same: with `workers 0` its
/// only one is "vpp_main" (thread 0); with workers, the main thread forwards nothing, so a
/// queue cannot go there. Errors are VPP's: -2 bad interface, -7 not a hardware interface,
/// -9 (UNIMPLEMENTED, what VPP answers for every placement error) for an unknown queue or
/// thread.
fn rx_placement(s: &State, m: &d::SwInterfaceSetRxPlacement) -> i32 {
    let sw = m.sw_if_index.0;
    match s.dp.fwd().iface(sw) {
        Err(_) => return rv::INVALID_SW_IF_INDEX,
        Ok(i) if i.sub_of.is_some() => return rv::INVALID_VALUE,
        Ok(_) => {}
    }
    let has_workers = s.dp.workers.iter().any(|w| w.thread != 0);
    let thread = if m.is_main {
        0
    } else {
        m.worker_id as usize + usize::from(has_workers)
    };
    let Some(wi) = s.dp.workers.iter().position(|w| w.thread == thread) else {
        log::warn!("api: rx placement of sw_if_index {sw}: no forwarding thread {thread}");
        return rv::UNIMPLEMENTED;
    };
    let Ok(queue) = u16::try_from(m.queue_id) else {
        return rv::UNIMPLEMENTED;
    };
    let from =
        s.dp.devices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&sw)
            .and_then(|d| d.rx_placement.iter().find(|q| q.0 == queue).map(|q| q.1));
    match s.dp.place_rx(sw, queue, wi) {
        Ok(()) => {
            // The queue's mode moves with it.
            let devs = s.dp.devices.lock().unwrap_or_else(|e| e.into_inner());
            apply_rx_modes(s, &devs, from.into_iter().chain([wi]));
            0
        }
        Err(e) => {
            log::warn!("api: rx placement of sw_if_index {sw} queue {queue}: {e}");
            rv::UNIMPLEMENTED
        }
    }
}

/// The router with every handled message.
fn node_index(dp: &Dataplane, name: &str) -> Option<usize> {
    dp.graph_names.iter().position(|n| *n == name)
}

/// (retval, edge index) of `next` from `node`. VPP's codes: -63 no such node, -64 no such next
/// node (or, for get_next_index, no such edge); a missing edge add_node_next would create: -9.
fn next_index(dp: &Dataplane, node: &str, next: &str, add: bool) -> (i32, u32) {
    let (node, next) = (convert::text(node), convert::text(next));
    let Some(n) = node_index(dp, node) else {
        return (rv::NO_SUCH_NODE, NONE);
    };
    let edges = dp.graph_edges.get(n).map_or(&[][..], |e| &e[..]);
    match edges.iter().position(|e| *e == next) {
        Some(i) => (0, i as u32),
        None if add && node_index(dp, next).is_some() => {
            log::warn!("api: add_node_next: the graph is fixed; {node} has no edge to {next}");
            (rv::UNIMPLEMENTED, NONE)
        }
        None => (rv::NO_SUCH_NODE2, NONE),
    }
}

pub fn router(state: State) -> Router<State> {
    let mut r = Router::new(state);
    r.on_disconnect(|s: &mut State, ci| {
        s.regs.lock().unwrap_or_else(|e| e.into_inner()).remove(&ci);
    });

    // ----- vpe / vlib ------------------------------------------------------------------------
    r.on(|_s: &mut State, _m: d::ShowVersion, _c| {
        Response::reply(d::ShowVersionReply {
            context: 0,
            retval: 0,
            program: "vpe".into(),
            version: format!("v{}-rvpp", crate::cli::VERSION),
            build_date: String::new(),
            build_directory: "rvpp".into(),
        })
    });
    r.on(|s: &mut State, _m: d::ShowThreads, _c| Response::reply(show_threads(&s.dp)));
    r.on(|s: &mut State, m: d::CliInband, _c| {
        let out = crate::cli::execute(&s.dp, &m.cmd);
        s.kick();
        Response::reply(d::CliInbandReply {
            context: 0,
            retval: 0,
            reply: out,
        })
    });

    // ----- interfaces ------------------------------------------------------------------------
    r.on(|s: &mut State, m: d::SwInterfaceDump, _c| {
        let f = s.dp.fwd();
        let want = m.sw_if_index.0;
        let filt = m.name_filter_valid.then(|| m.name_filter.to_lowercase());
        let v: Vec<d::SwInterfaceDetails> = f
            .ifs()
            .ifs
            .iter()
            .flatten()
            .filter(|i| want == 0 || want == NONE || i.sw_if_index == want)
            .filter(|i| {
                filt.as_ref()
                    .is_none_or(|n| i.name.to_lowercase().contains(n.as_str()))
            })
            .map(|i| interface_details(&f, i))
            .collect();
        Response::stream(v)
    });
    r.on(|s: &mut State, m: d::SwInterfaceSetFlags, _c| {
        let up = m
            .flags
            .contains(d::IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP);
        let rv = convert::retval(s.dp.fwd().set_admin_up(m.sw_if_index.0, up));
        s.kick();
        reply!(SwInterfaceSetFlagsReply, rv)
    });
    r.on(|s: &mut State, m: d::WantInterfaceEvents, c| {
        let mut regs = s.regs.lock().unwrap_or_else(|e| e.into_inner());
        let rv = match (m.enable_disable != 0, regs.contains_key(&c.client_index)) {
            (true, false) => {
                regs.insert(c.client_index, m.pid);
                0
            }
            (false, true) => {
                regs.remove(&c.client_index);
                0
            }
            _ => rv::INVALID_REGISTRATION,
        };
        reply!(WantInterfaceEventsReply, rv)
    });
    r.on(|s: &mut State, m: d::SwInterfaceAddDelAddress, _c| {
        let sw = m.sw_if_index.0;
        let mut f = s.dp.fwd();
        let rv = if f.iface(sw).is_err() {
            rv::INVALID_SW_IF_INDEX
        } else if m.del_all {
            let i = f.iface(sw).cloned().expect("checked");
            let all: Vec<Prefix> = i
                .ip4_addrs
                .iter()
                .map(|&(a, l)| Prefix::V4(a, l))
                .chain(i.ip6_addrs.iter().map(|&(a, l)| Prefix::V6(a, l)))
                .collect();
            convert::retval(all.into_iter().try_for_each(|p| f.address_del(sw, p)))
        } else {
            match convert::prefix_in(&m.prefix.0) {
                Err(e) => e,
                Ok(p) if m.is_add => convert::retval(f.address_add(sw, p)),
                Ok(p) => match f.address_del(sw, p) {
                    Err(rvpp_dataplane::forwarding::FwdError::NoSuchEntry) => {
                        rv::ADDRESS_NOT_FOUND_FOR_INTERFACE
                    }
                    r => convert::retval(r),
                },
            }
        };
        reply!(SwInterfaceAddDelAddressReply, rv)
    });
    r.on(|s: &mut State, m: d::SwInterfaceSetTable, _c| {
        let (sw, ip6, vrf) = (m.sw_if_index.0, m.is_ipv6, m.vrf_id);
        let dp = s.dp.clone();
        let mut f = dp.fwd();
        let rv = if f.iface(sw).is_err() {
            rv::INVALID_SW_IF_INDEX
        } else if f.fib_index(Af::from_is_ip6(ip6), vrf).is_none() {
            rv::NO_SUCH_FIB
        } else {
            // The interface is in the VRF asked for; a VRF whose default route is a table
            // lookup (calico's pod and host-tap VRFs) continues in that table.
            convert::retval(f.set_table(sw, Af::from_is_ip6(ip6), vrf))
        };
        drop(f);
        s.reap_tables();
        reply!(SwInterfaceSetTableReply, rv)
    });
    r.on(|s: &mut State, m: d::SwInterfaceSetMtu, _c| {
        // mtu[] is VPP's [L3, IP4, IP6, MPLS]: L3 is the interface's MTU (0 keeps it); a
        // non-zero IP4/IP6 MTU caps packets of that family (fragmentation / too big), 0
        // follows L3. rvpp forwards no MPLS: a non-zero MPLS MTU has nothing to apply to.
        let sw = m.sw_if_index.0;
        let [l3, ip4, ip6, mpls] = m.mtu;
        let mut f = s.dp.fwd();
        let rv = if f.iface(sw).is_err() {
            rv::INVALID_SW_IF_INDEX
        } else if m.mtu.iter().any(|&x| x > u32::from(u16::MAX)) {
            rv::INVALID_VALUE
        } else if mpls != 0 {
            rv::UNIMPLEMENTED
        } else {
            let r = match l3 {
                0 => Ok(()),
                l3 => f.set_mtu(sw, l3 as u16),
            };
            convert::retval(r.and_then(|()| f.set_protocol_mtu(sw, ip4 as u16, ip6 as u16)))
        };
        reply!(SwInterfaceSetMtuReply, rv)
    });
    r.on(|s: &mut State, m: d::SwInterfaceSetMacAddress, _c| {
        let rv = convert::retval(s.dp.fwd().set_mac(m.sw_if_index.0, m.mac_address.0));
        reply!(SwInterfaceSetMacAddressReply, rv)
    });
    r.on(|s: &mut State, m: d::SwInterfaceTagAddDel, _c| {
        let tag = if m.is_add { convert::text(&m.tag) } else { "" };
        let rv = convert::retval(s.dp.fwd().set_tag(m.sw_if_index.0, tag));
        reply!(SwInterfaceTagAddDelReply, rv)
    });
    r.on(|s: &mut State, m: d::SwInterfaceSetRxMode, _c| {
        let rv = rx_mode(s, &m);
        reply!(SwInterfaceSetRxModeReply, rv)
    });
    r.on(|s: &mut State, m: d::SwInterfaceSetRxPlacement, _c| {
        let rv = rx_placement(s, &m);
        reply!(SwInterfaceSetRxPlacementReply, rv)
    });
    r.on(|s: &mut State, m: d::SwInterfaceSetTxPlacement, _c| {
        // Every worker has its own tx queue (or a shared one) fixed at attach: no placement.
        reply!(
            SwInterfaceSetTxPlacementReply,
            unimplemented_on(&s.dp.fwd(), m.sw_if_index.0)
        )
    });
    r.on(|s: &mut State, m: d::SwInterfaceSetPromisc, _c| {
        let sw = m.sw_if_index.0;
        let mut f = s.dp.fwd();
        // VPP: only ethernet interfaces accept all frames (INVALID_VALUE otherwise).
        let rv = match f.iface(sw) {
            Err(_) => rv::INVALID_SW_IF_INDEX,
            Ok(i) if !i.l2 => rv::INVALID_VALUE,
            Ok(_) => convert::retval(f.set_promisc(sw, m.promisc_on)),
        };
        reply!(SwInterfaceSetPromiscReply, rv)
    });
    r.on(|s: &mut State, m: d::SwInterfaceSetUnnumbered, _c| {
        let (donor, borrower) = (m.sw_if_index.0, m.unnumbered_sw_if_index.0);
        let mut f = s.dp.fwd();
        let rv = if f.iface(donor).is_err() {
            rv::INVALID_SW_IF_INDEX
        } else if f.iface(borrower).is_err() {
            -10 // INVALID_SW_IF_INDEX_2
        } else {
            convert::retval(f.set_unnumbered(borrower, m.is_add.then_some(donor)))
        };
        reply!(SwInterfaceSetUnnumberedReply, rv)
    });
    r.on(|s: &mut State, m: d::SwInterfaceIp6EnableDisable, _c| {
        let rv = convert::retval(s.dp.fwd().enable_ip6(m.sw_if_index.0, m.enable));
        reply!(SwInterfaceIp6EnableDisableReply, rv)
    });
    r.on(|s: &mut State, m: d::CreateLoopback, _c| {
        let (rv, sw) = devices::create_loopback(s, m.mac_address.0);
        Response::reply(d::CreateLoopbackReply {
            context: 0,
            retval: rv,
            sw_if_index: d::InterfaceIndex(sw),
        })
    });
    r.on(|s: &mut State, m: d::DeleteLoopback, _c| {
        let rv = devices::delete_interface(s, m.sw_if_index.0, "loopback");
        reply!(DeleteLoopbackReply, rv)
    });
    // The graph is fixed when it is built: node and edge indices are what the workers use,
    // and add_node_next succeeds only for an edge the node already has (calico asks for
    // vxlan4-input -> ip4-input); a new edge at run time answers -9.
    r.on(|s: &mut State, m: d::GetNodeIndex, _c| {
        let (rv, i) = match node_index(&s.dp, convert::text(&m.node_name)) {
            Some(i) => (0, i as u32),
            None => (rv::NO_SUCH_NODE, NONE),
        };
        Response::reply(d::GetNodeIndexReply {
            context: 0,
            retval: rv,
            node_index: i,
        })
    });
    r.on(|s: &mut State, m: d::GetNextIndex, _c| {
        let (rv, i) = next_index(&s.dp, &m.node_name, &m.next_name, false);
        Response::reply(d::GetNextIndexReply {
            context: 0,
            retval: rv,
            next_index: i,
        })
    });
    r.on(|s: &mut State, m: d::AddNodeNext, _c| {
        let (rv, i) = next_index(&s.dp, &m.node_name, &m.next_name, true);
        Response::reply(d::AddNodeNextReply {
            context: 0,
            retval: rv,
            next_index: i,
        })
    });
    r.on(|s: &mut State, m: d::IpipAddTunnel, _c| {
        let (rv, sw) = devices::ipip_add(s, &m);
        Response::reply(d::IpipAddTunnelReply {
            context: 0,
            retval: rv,
            sw_if_index: d::InterfaceIndex(sw),
        })
    });
    r.on(|s: &mut State, m: d::IpipDelTunnel, _c| {
        let rv = devices::ipip_del(s, m.sw_if_index.0);
        reply!(IpipDelTunnelReply, rv)
    });
    r.on(|s: &mut State, m: d::IpipTunnelDump, _c| {
        Response::stream(devices::ipip_dump(s, m.sw_if_index.0))
    });
    r.on(|s: &mut State, m: d::VxlanAddDelTunnelV3, _c| {
        let (rv, sw) = devices::vxlan_add_del(s, &m);
        Response::reply(d::VxlanAddDelTunnelV3Reply {
            context: 0,
            retval: rv,
            sw_if_index: d::InterfaceIndex(sw),
        })
    });
    r.on(|s: &mut State, m: d::VxlanTunnelV2Dump, _c| {
        Response::stream(devices::vxlan_dump(s, m.sw_if_index.0))
    });
    r.on(|s: &mut State, m: d::IpAddressDump, _c| {
        let f = s.dp.fwd();
        let sw = m.sw_if_index.0;
        let v: Vec<d::IpAddressDetails> = match f.iface(sw) {
            Err(_) => vec![],
            Ok(i) => {
                let ps: Vec<Prefix> = if m.is_ipv6 {
                    i.ip6_addrs.iter().map(|&(a, l)| Prefix::V6(a, l)).collect()
                } else {
                    i.ip4_addrs.iter().map(|&(a, l)| Prefix::V4(a, l)).collect()
                };
                ps.into_iter()
                    .map(|p| d::IpAddressDetails {
                        context: 0,
                        sw_if_index: d::InterfaceIndex(sw),
                        prefix: d::AddressWithPrefix(convert::prefix_out(p)),
                    })
                    .collect()
            }
        };
        Response::stream(v)
    });
    r.on(|s: &mut State, m: d::IpUnnumberedDump, _c| {
        let f = s.dp.fwd();
        let want = m.sw_if_index.0;
        let v: Vec<d::IpUnnumberedDetails> = f
            .ifs()
            .ifs
            .iter()
            .flatten()
            .filter(|i| want == NONE || i.sw_if_index == want)
            .filter_map(|i| {
                i.unnumbered_of.map(|u| d::IpUnnumberedDetails {
                    context: 0,
                    sw_if_index: d::InterfaceIndex(i.sw_if_index),
                    ip_sw_if_index: d::InterfaceIndex(u),
                })
            })
            .collect();
        Response::stream(v)
    });
    r.on(|s: &mut State, m: d::FeatureEnableDisable, _c| {
        // VPP: an unknown (arc, feature) is INVALID_VALUE, an unknown interface
        // INVALID_SW_IF_INDEX.
        let (arc, feature) = (convert::text(&m.arc_name), convert::text(&m.feature_name));
        let r =
            s.dp.fwd()
                .feature_enable(m.sw_if_index.0, arc, feature, m.enable);
        reply!(FeatureEnableDisableReply, convert::retval(r))
    });
    r.on(|s: &mut State, m: d::FeatureGsoEnableDisable, _c| {
        // rvpp segments GSO super-frames in software (gso-segment) on every interface whose
        // device cannot take them: enabling is already in effect; it cannot be turned off.
        let rv = match sw_ok(&s.dp.fwd(), m.sw_if_index.0) {
            0 if m.enable_disable => 0,
            0 => rv::UNIMPLEMENTED,
            e => e,
        };
        reply!(FeatureGsoEnableDisableReply, rv)
    });

    // ----- tables and routes -----------------------------------------------------------------
    r.on(|s: &mut State, m: d::IpTableAddDel, _c| {
        let (ip6, t) = (m.table.is_ip6, m.table.table_id);
        let dp = s.dp.clone();
        let mut f = dp.fwd();
        // VPP's ip_table_delete answers 0 and drops the API's lock: the table goes at once if
        // nothing else uses it, else when its last user (an interface bound to it, a route or
        // punt redirect looking up in it) lets go. The default table is never deleted.
        let rv = if m.is_add {
            s.doomed.remove(&(ip6, t));
            convert::retval(f.table_add(Af::from_is_ip6(ip6), t, convert::text(&m.table.name)))
        } else {
            if t != 0 && f.fib_index(Af::from_is_ip6(ip6), t).is_some() {
                s.doomed.insert((ip6, t));
            }
            0
        };
        drop(f);
        s.reap_tables();
        reply!(IpTableAddDelReply, rv)
    });
    r.on(|s: &mut State, m: d::IpTableAllocate, _c| {
        let ip6 = m.table.is_ip6;
        let mut f = s.dp.fwd();
        let mut t = m.table.table_id;
        if t == NONE {
            while f.fib_index(Af::from_is_ip6(ip6), s.next_table_id).is_some() {
                s.next_table_id += 1;
            }
            t = s.next_table_id;
            s.next_table_id += 1;
        }
        s.doomed.remove(&(ip6, t));
        let rv =
            convert::retval(f.table_add(Af::from_is_ip6(ip6), t, convert::text(&m.table.name)));
        let name = f
            .tables(Af::from_is_ip6(ip6))
            .into_iter()
            .find(|x| x.0 == t)
            .map_or(String::new(), |x| x.1);
        Response::reply(d::IpTableAllocateReply {
            context: 0,
            retval: rv,
            table: d::IpTable {
                table_id: t,
                is_ip6: ip6,
                name,
            },
        })
    });
    r.on(|s: &mut State, _m: d::IpTableDump, _c| {
        let f = s.dp.fwd();
        let v: Vec<d::IpTableDetails> = [false, true]
            .into_iter()
            .flat_map(|ip6| {
                f.tables(Af::from_is_ip6(ip6))
                    .into_iter()
                    .map(move |(t, name)| d::IpTableDetails {
                        context: 0,
                        table: d::IpTable {
                            table_id: t,
                            is_ip6: ip6,
                            name,
                        },
                    })
            })
            .collect();
        Response::stream(v)
    });
    r.on(|s: &mut State, m: d::IpRouteAddDel, _c| {
        let rv = s.route_add_del(&m);
        s.reap_tables();
        Response::reply(d::IpRouteAddDelReply {
            context: 0,
            retval: rv,
            stats_index: 0,
        })
    });
    r.on(|s: &mut State, m: d::IpRouteDump, _c| Response::stream(s.route_dump(&m)));
    r.on(|s: &mut State, m: d::IpMrouteAddDel, _c| {
        // No multicast FIB: nothing would forward by the entry.
        let rt = &m.route;
        let ip6 = rt.prefix.af == d::AddressFamily::ADDRESS_IP6;
        let rv = if s
            .dp
            .fwd()
            .fib_index(Af::from_is_ip6(ip6), rt.table_id)
            .is_none()
        {
            rv::NO_SUCH_FIB
        } else {
            rv::UNIMPLEMENTED
        };
        Response::reply(d::IpMrouteAddDelReply {
            context: 0,
            retval: rv,
            stats_index: 0,
        })
    });

    // ----- neighbours ------------------------------------------------------------------------
    r.on(|s: &mut State, m: d::IpNeighborAddDel, _c| {
        let n = &m.neighbor;
        let ip = convert::addr_ip(&n.ip_address);
        let sw = n.sw_if_index.0;
        let is_static = n
            .flags
            .contains(d::IpNeighborFlags::IP_API_NEIGHBOR_FLAG_STATIC);
        let mut f = s.dp.fwd();
        let rv = if f.iface(sw).is_err() {
            rv::INVALID_SW_IF_INDEX
        } else if m.is_add {
            convert::retval(f.neighbor_add(sw, ip, n.mac_address.0, is_static))
        } else {
            convert::retval(f.neighbor_del(sw, ip))
        };
        Response::reply(d::IpNeighborAddDelReply {
            context: 0,
            retval: rv,
            stats_index: 0,
        })
    });
    r.on(|_s: &mut State, _m: d::IpNeighborConfig, _c| {
        // The neighbour table has no limit, no ageing and no recycling to configure.
        reply!(IpNeighborConfigReply, rv::UNIMPLEMENTED)
    });
    r.on(|s: &mut State, m: d::IpNeighborDump, _c| {
        let ip6 = convert::is_ip6(m.af);
        let want = m.sw_if_index.0;
        let v: Vec<d::IpNeighborDetails> =
            s.dp.fwd()
                .neighbors()
                .into_iter()
                .filter(|n| n.ip.is_ipv6() == ip6 && (want == NONE || n.sw_if_index == want))
                .map(|n| d::IpNeighborDetails {
                    context: 0,
                    age: 0.0,
                    neighbor: d::IpNeighbor {
                        sw_if_index: d::InterfaceIndex(n.sw_if_index),
                        flags: if n.is_static {
                            d::IpNeighborFlags::IP_API_NEIGHBOR_FLAG_STATIC
                        } else {
                            d::IpNeighborFlags::IP_API_NEIGHBOR_FLAG_NONE
                        },
                        mac_address: d::MacAddress(n.mac),
                        ip_address: convert::ip_addr(n.ip),
                    },
                })
                .collect();
        Response::stream(v)
    });
    r.on(|s: &mut State, m: d::ProxyArpAddDel, _c| {
        let p = &m.proxy;
        // ip4-arp answers only for the interface's own addresses: no proxy ranges.
        let rv = if s.dp.fwd().fib_index(Af::Ip4, p.table_id).is_none() {
            rv::NO_SUCH_FIB
        } else {
            rv::UNIMPLEMENTED
        };
        reply!(ProxyArpAddDelReply, rv)
    });
    r.on(|s: &mut State, m: d::ProxyArpIntfcEnableDisable, _c| {
        let rv = unimplemented_on(&s.dp.fwd(), m.sw_if_index.0);
        reply!(ProxyArpIntfcEnableDisableReply, rv)
    });
    r.on(|s: &mut State, m: d::SwInterfaceIp6ndRaConfig, _c| {
        // No router advertisement engine: nothing to configure or suppress.
        let rv = unimplemented_on(&s.dp.fwd(), m.sw_if_index.0);
        reply!(SwInterfaceIp6ndRaConfigReply, rv)
    });
    r.on(|s: &mut State, m: d::Ip6ndProxyEnableDisableV2, _c| {
        // ip6 ND answers only for the interface's own addresses: no ND proxy.
        let rv = unimplemented_on(&s.dp.fwd(), m.sw_if_index.0);
        reply!(Ip6ndProxyEnableDisableV2Reply, rv)
    });

    // ----- punt ------------------------------------------------------------------------------
    r.on(|s: &mut State, m: d::AddDelIpPuntRedirectV2, _c| {
        let p = &m.punt;
        let ip6 = convert::is_ip6(p.af);
        let rx = (p.rx_sw_if_index.0 != NONE).then_some(p.rx_sw_if_index.0);
        let dp = s.dp.clone();
        let mut f = dp.fwd();
        if rx.is_some_and(|r| f.iface(r).is_err()) {
            return reply!(AddDelIpPuntRedirectV2Reply, rv::INVALID_SW_IF_INDEX);
        }
        let pos = s.punts.iter().position(|e| e.ip6 == ip6 && e.rx == rx);
        if m.is_add {
            for x in &p.paths {
                match convert::path_in(x, ip6) {
                    ApiPath::Fwd(Path {
                        kind: PathKind::Lookup(t),
                        ..
                    }) if f.fib_index(Af::from_is_ip6(ip6), t).is_none() => {
                        return reply!(AddDelIpPuntRedirectV2Reply, rv::NO_SUCH_FIB)
                    }
                    ApiPath::Fwd(Path {
                        sw_if_index: Some(sw),
                        ..
                    }) if f.iface(sw).is_err() => {
                        return reply!(AddDelIpPuntRedirectV2Reply, rv::INVALID_SW_IF_INDEX)
                    }
                    _ => {}
                }
            }
            let table = match State::install_punt(&mut f, ip6, rx, &p.paths) {
                Ok(t) => t,
                Err(rv) => return reply!(AddDelIpPuntRedirectV2Reply, rv),
            };
            let e = PuntEntry {
                ip6,
                rx,
                paths: p.paths.clone(),
                table,
            };
            match pos {
                Some(i) => s.punts[i] = e,
                None => s.punts.push(e),
            }
        } else if let Some(i) = pos {
            s.punts.remove(i);
            State::remove_punt(&mut f, ip6, rx);
            drop(f);
            s.reap_tables();
        }
        reply!(AddDelIpPuntRedirectV2Reply, 0)
    });
    r.on(|s: &mut State, m: d::IpPuntRedirectV2Dump, _c| {
        let ip6 = convert::is_ip6(m.af);
        let want = m.sw_if_index.0;
        let v: Vec<d::IpPuntRedirectV2Details> = s
            .punts
            .iter()
            .filter(|e| e.ip6 == ip6 && (want == NONE || e.rx == Some(want)))
            .map(|e| d::IpPuntRedirectV2Details {
                context: 0,
                punt: d::PuntRedirectV2 {
                    rx_sw_if_index: d::InterfaceIndex(e.rx.unwrap_or(NONE)),
                    af: m.af,
                    n_paths: 0,
                    paths: e.paths.clone(),
                },
            })
            .collect();
        Response::stream(v)
    });
    r.on(|_s: &mut State, m: d::SetPunt, _c| {
        let p = &m.punt;
        let rv = match p.type_ {
            d::PuntType::PUNT_API_TYPE_EXCEPTION => match p.punt.get::<d::PuntException>() {
                // What rvpp punts is fixed by its nodes, not by reason registrations.
                Ok(x) if (x.id as usize) < PUNT_REASONS.len() => rv::UNIMPLEMENTED,
                _ => rv::INVALID_VALUE,
            },
            // Local L4 traffic is punted (or not) by ip4/ip6-local, whatever the port.
            d::PuntType::PUNT_API_TYPE_L4 => match p.punt.get::<d::PuntL4>() {
                Ok(_) => rv::UNIMPLEMENTED,
                Err(_) => rv::INVALID_VALUE,
            },
            _ => rv::UNIMPLEMENTED,
        };
        reply!(SetPuntReply, rv)
    });
    r.on(|_s: &mut State, m: d::PuntReasonDump, _c| {
        let want = convert::text(&m.reason.name);
        let v: Vec<d::PuntReasonDetails> = PUNT_REASONS
            .iter()
            .enumerate()
            .filter(|(_, n)| want.is_empty() || **n == want)
            .map(|(i, n)| d::PuntReasonDetails {
                context: 0,
                reason: d::PuntReason {
                    id: i as u32,
                    name: n.to_string(),
                },
            })
            .collect();
        Response::stream(v)
    });

    // ----- devices ---------------------------------------------------------------------------
    r.on(|s: &mut State, m: d::TapCreateV3, _c| {
        let (rv, sw) = devices::tap_create(s, &m);
        Response::reply(d::TapCreateV3Reply {
            context: 0,
            retval: rv,
            sw_if_index: d::InterfaceIndex(sw),
        })
    });
    r.on(|s: &mut State, m: d::TapDeleteV2, _c| {
        let rv = devices::tap_delete(s, m.sw_if_index.0);
        reply!(TapDeleteV2Reply, rv)
    });
    r.on(|s: &mut State, m: d::AfPacketCreateV3, _c| {
        let (rv, sw) = devices::af_packet_create(s, &m);
        Response::reply(d::AfPacketCreateV3Reply {
            context: 0,
            retval: rv,
            sw_if_index: d::InterfaceIndex(sw),
        })
    });
    r.on(|s: &mut State, m: d::AfPacketDelete, _c| {
        let rv = devices::af_packet_delete(s, convert::text(&m.host_if_name));
        reply!(AfPacketDeleteReply, rv)
    });
    r.on(|s: &mut State, m: d::AfXdpCreateV3, _c| {
        let (rv, sw) = devices::af_xdp_create(s, &m);
        Response::reply(d::AfXdpCreateV3Reply {
            context: 0,
            retval: rv,
            sw_if_index: d::InterfaceIndex(sw),
        })
    });
    r.on(|s: &mut State, m: d::AfXdpDelete, _c| {
        let rv = devices::af_xdp_delete(s, m.sw_if_index.0);
        reply!(AfXdpDeleteReply, rv)
    });
    r.on(|s: &mut State, m: d::MemifSocketFilenameAddDelV2, _c| {
        let (rv, id) = super::memif::socket_add_del(s, &m);
        Response::reply(d::MemifSocketFilenameAddDelV2Reply {
            context: 0,
            retval: rv,
            socket_id: id,
        })
    });
    r.on(|s: &mut State, _m: d::MemifSocketFilenameDump, _c| {
        Response::stream(super::memif::socket_dump(s))
    });
    r.on(|s: &mut State, m: d::MemifCreate, _c| {
        let (rv, sw) = super::memif::create(s, &m);
        Response::reply(d::MemifCreateReply {
            context: 0,
            retval: rv,
            sw_if_index: d::InterfaceIndex(sw),
        })
    });
    r.on(|s: &mut State, m: d::MemifDelete, _c| {
        let rv = super::memif::delete(s, m.sw_if_index.0);
        reply!(MemifDeleteReply, rv)
    });
    r.on(|s: &mut State, _m: d::MemifDump, _c| Response::stream(super::memif::dump(s)));
    super::cnat::register(&mut r);
    super::npol::register(&mut r);
    r
}
