//! Rx queue modes and placement. rvpp's workers choose how to wait per thread, so each worker
//! holding a queue with a mode set waits as the most demanding mode among its queues asks
//! (polling, then adaptive, then interrupt: as in VPP, a thread with a polling queue polls);
//! a worker none of whose queues has a mode set keeps its own. A queue's mode moves with it.

use super::{lock, rv, SvcError, SvcResult};
use crate::daemon::{Dataplane, DeviceInfo, WorkerCmd};
use rvpp_dataplane::device::RxMode;
use std::collections::{BTreeMap, BTreeSet};

/// Modes set per (sw_if_index, queue).
pub type RxModes = BTreeMap<(u32, u16), RxMode>;

/// A hardware interface (not a sub-interface): INVALID_SW_IF_INDEX / INVALID_VALUE otherwise.
pub fn hardware(dp: &Dataplane, sw: u32) -> SvcResult<()> {
    match dp.fwd().iface(sw) {
        Err(e) => Err(e.into()),
        Ok(i) if i.sub_of.is_some() => Err(SvcError::new(
            rv::INVALID_VALUE,
            format!("sw_if_index {sw} is a sub-interface"),
        )),
        Ok(_) => Ok(()),
    }
}

/// Set the mode of interface `sw`'s rx queues, or of `queue` only. An interface without rx
/// queues (a loopback) has nothing to change, unless a queue is named. VPP answers every
/// error past the interface check with UNIMPLEMENTED.
pub fn set_rx_mode(dp: &Dataplane, sw: u32, queue: Option<u16>, mode: RxMode) -> SvcResult<()> {
    hardware(dp, sw)?;
    let unknown = |what: String| Err(SvcError::new(rv::UNIMPLEMENTED, what));
    let mut modes = lock(&dp.svc.rx_modes);
    let mut devs = dp.devices.lock().unwrap_or_else(|e| e.into_inner());
    let Some(dev) = devs.get_mut(&sw) else {
        return match queue {
            Some(q) => unknown(format!("sw_if_index {sw} has no rx queue {q}")),
            None => Ok(()),
        };
    };
    let queues: Vec<(u16, usize)> = dev
        .rx_placement
        .iter()
        .copied()
        .filter(|q| queue.is_none_or(|want| q.0 == want))
        .collect();
    if let Some(q) = queue {
        if queues.is_empty() {
            return unknown(format!("sw_if_index {sw} has no rx queue {q}"));
        }
    } else {
        dev.rx_mode = mode;
    }
    for &(q, _) in &queues {
        modes.insert((sw, q), mode);
    }
    apply(dp, &modes, &devs, queues.iter().map(|q| q.1).collect());
    Ok(())
}

/// Every queue's mode as set: ((sw_if_index, queue), mode).
pub fn rx_mode_list(dp: &Dataplane) -> Vec<((u32, u16), RxMode)> {
    lock(&dp.svc.rx_modes)
        .iter()
        .map(|(&k, &m)| (k, m))
        .collect()
}

/// Move rx queue `queue` of interface `sw` to forwarding thread `worker` (an index into
/// `Dataplane::workers`).
pub fn place_rx(dp: &Dataplane, sw: u32, queue: u16, worker: usize) -> SvcResult<()> {
    hardware(dp, sw)?;
    let modes = lock(&dp.svc.rx_modes);
    let from = dp
        .devices
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&sw)
        .and_then(|d| d.rx_placement.iter().find(|q| q.0 == queue).map(|q| q.1));
    dp.place_rx(sw, queue, worker)
        .map_err(|e| SvcError::new(rv::UNIMPLEMENTED, e))?;
    let devs = dp.devices.lock().unwrap_or_else(|e| e.into_inner());
    apply(
        dp,
        &modes,
        &devs,
        from.into_iter().chain([worker]).collect(),
    );
    Ok(())
}

/// Set each of `workers` to wait as the queues placed on it ask.
fn apply(
    dp: &Dataplane,
    modes: &RxModes,
    devs: &BTreeMap<u32, DeviceInfo>,
    workers: BTreeSet<usize>,
) {
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
                    .filter_map(move |q| modes.get(&(d.sw_if_index, q.0)))
            })
            .max_by_key(|m| rank(m));
        if let (Some(&m), Some(w)) = (want, dp.workers.get(wi)) {
            w.send(WorkerCmd::SetRxMode(m));
        }
    }
}

/// Interface `sw` went: its queues' modes go with it.
pub(super) fn interface_gone(dp: &Dataplane, sw: u32) {
    lock(&dp.svc.rx_modes).retain(|k, _| k.0 != sw);
}

/// `sw_interface_set_tx_placement`: rvpp places each device's tx queues once, when it attaches
/// them (`DeviceInfo::tx_placement`). A request for the placement in effect is answered 0;
/// any other (or a queue that does not exist) UNIMPLEMENTED, VPP's answer to placement errors.
pub fn set_tx_placement(dp: &Dataplane, sw: u32, queue: u32, threads: &[u32]) -> SvcResult<()> {
    hardware(dp, sw)?;
    let devs = dp.devices.lock().unwrap_or_else(|e| e.into_inner());
    let n = dp.workers.len();
    let now: BTreeSet<u32> = devs
        .get(&sw)
        .map(|d| d.tx_placement(queue as usize, n))
        .unwrap_or_default()
        .into_iter()
        .map(|w| dp.workers[w].thread as u32)
        .collect();
    if now.is_empty() {
        return Err(SvcError::new(
            rv::UNIMPLEMENTED,
            format!("sw_if_index {sw} has no tx queue {queue}"),
        ));
    }
    let want: BTreeSet<u32> = threads.iter().copied().collect();
    if want != now {
        return Err(SvcError::new(
            rv::UNIMPLEMENTED,
            format!("tx queue {queue} of sw_if_index {sw} is used by threads {now:?}; rvpp does not move tx queues"),
        ));
    }
    Ok(())
}
