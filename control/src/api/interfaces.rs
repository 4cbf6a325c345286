//! Interface messages: dump, flags, events, MTU, MAC, tag, rx mode and placement, promisc,
//! unnumbered, ip6 enable. Creating and deleting devices is devices.rs / memif.rs.

use super::convert::{self, rv, NONE};
use super::handlers::State;
use crate::service::queues;
use rvpp_dataplane::forwarding::{Af, Forwarding};
use rvpp_vppapi::defs as d;
use rvpp_vppapi::transport::{Response, Router};

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

/// `sw_interface_set_rx_mode`: the mode of one interface's rx queues (or of `queue_id`),
/// as `service::queues` applies it to the workers holding them.
fn rx_mode(s: &State, m: &d::SwInterfaceSetRxMode) -> i32 {
    use rvpp_dataplane::device::RxMode;
    let sw = m.sw_if_index.0;
    let mode = match m.mode {
        d::RxMode::RX_MODE_API_POLLING => Some(RxMode::Polling),
        d::RxMode::RX_MODE_API_INTERRUPT => Some(RxMode::Interrupt),
        d::RxMode::RX_MODE_API_ADAPTIVE | d::RxMode::RX_MODE_API_DEFAULT => Some(RxMode::Adaptive),
        _ => None,
    };
    let queue = if m.queue_id_valid {
        u16::try_from(m.queue_id).ok().map(Some)
    } else {
        Some(None)
    };
    match (mode, queue) {
        (Some(mode), Some(queue)) => {
            convert::svc_retval(queues::set_rx_mode(&s.dp, sw, queue, mode))
        }
        // VPP answers every error of set_hw_interface_change_rx_mode past the interface
        // check with UNIMPLEMENTED (an unknown mode, a queue that cannot exist).
        _ => match queues::hardware(&s.dp, sw) {
            Ok(()) => rv::UNIMPLEMENTED,
            Err(e) => e.retval,
        },
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
    if let Err(e) = queues::hardware(&s.dp, sw) {
        return e.retval;
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
    match queues::place_rx(&s.dp, sw, queue, wi) {
        Ok(()) => 0,
        Err(e) => {
            log::warn!("api: rx placement of sw_if_index {sw} queue {queue}: {e}");
            e.retval
        }
    }
}

pub(super) fn register(r: &mut Router<State>) {
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
        let n = (m.array_size as usize).min(m.threads.len());
        let r = crate::service::queues::set_tx_placement(
            &s.dp,
            m.sw_if_index.0,
            m.queue_id,
            &m.threads[..n],
        );
        if let Err(e) = &r {
            log::warn!("api: sw_interface_set_tx_placement: {e}");
        }
        reply!(SwInterfaceSetTxPlacementReply, convert::svc_retval(r))
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
}
