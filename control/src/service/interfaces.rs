//! Interfaces of every kind: loopbacks, and deleting whatever a device is.

use super::{linux, lowest_free, random_mac, Driver, SvcError, SvcResult};
use crate::daemon::Dataplane;
use std::sync::Arc;

/// A loopback, named as VPP names them: `loop<N>` with the lowest free N. `mac` all zero picks
/// a random one. Returns its sw_if_index and name.
pub fn create_loopback(dp: &Arc<Dataplane>, mac: [u8; 6]) -> SvcResult<(u32, String)> {
    let mac = if mac == [0; 6] { random_mac() } else { mac };
    let (sw, name) = {
        let mut f = dp.fwd();
        let n = lowest_free(|n| f.ifs().by_name(&format!("loop{n}")).is_some());
        let name = format!("loop{n}");
        (f.interface_add(&name, "loopback", mac, true, 9000)?, name)
    };
    attach_loopback(dp, sw);
    dp.svc.changed();
    Ok((sw, name))
}

/// A loopback's device: no rx, a tx that drops.
pub(super) fn attach_loopback(dp: &Dataplane, sw: u32) {
    dp.attach(sw, "loopback", String::new(), vec![], |_| {
        Some(Box::new(rvpp_drivers::pg::NullTx::default()))
    });
}

/// The sw_if_index of interface `name` if its device type is `kind`.
pub fn by_name(dp: &Dataplane, name: &str, kind: &str) -> Option<u32> {
    dp.fwd()
        .ifs()
        .by_name(name)
        .filter(|i| i.dev_type == kind)
        .map(|i| i.sw_if_index)
}

/// Remove interface `sw` if its device type is `kind`, with its queues and its driver: a memif
/// disconnects its peer, a persistent tap is released in Linux. Returns the Linux side's error
/// when the interface went but the device stayed (VPP answers that with SYSCALL_ERROR_1).
pub fn delete(dp: &Arc<Dataplane>, sw: u32, kind: &str) -> SvcResult<()> {
    match dp.fwd().iface(sw) {
        Ok(i) if i.dev_type == kind && sw != 0 => {}
        _ => {
            return Err(SvcError::new(
                super::rv::INVALID_SW_IF_INDEX,
                format!("sw_if_index {sw} is not a {kind} interface"),
            ))
        }
    }
    let driver = dp.detach(sw).map(|d| d.driver);
    // Stop a memif's control thread (it disconnects the peer) before the interface goes: its
    // link callback takes the forwarding lock, which must not be held here.
    let linux = match driver {
        Some(Driver::Memif(mut m)) => {
            m.dev.stop();
            None
        }
        Some(Driver::Linux(l)) => Some(l),
        _ => None,
    };
    let r = dp.fwd().interface_del(sw);
    super::interface_gone(dp, sw);
    dp.svc.changed();
    r?;
    if let Some(l) = linux {
        linux::release(&l)?;
    }
    Ok(())
}
