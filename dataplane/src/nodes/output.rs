//! interface-output (hands packets to device tx queues, a VXLAN tunnel's to its encap) and
//! error-drop (counts and frees).

use crate::buffer::{flags, BufferMeta};
use crate::graph::{Node, NodeInfo, CONSUMED};
use crate::runtime::{clocks, Ctx};
use crate::tables::{if_flags, IfTable};

/// Frees every packet it gets, counting each under the reason in `meta.error`.
pub struct ErrorDrop;

crate::node_errors! {
    pub mod drop_error {
        BAD_EDGE => "no such next edge (node bug)",
    }
}

impl Node for ErrorDrop {
    fn info(&self) -> NodeInfo {
        NodeInfo::internal("error-drop", &[], drop_error::NAMES)
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        let cap = &cx.stats.capture;
        if cap.active(&cap.drop) {
            cap.take(cx.bufs, bufs, |m| m.rx_sw_if_index);
        }
        for &bi in bufs.iter() {
            let m = cx.bufs.meta(bi);
            let (e, rx) = (m.error, m.rx_sw_if_index);
            cx.count_global(e, 1);
            if let Some(c) = cx.stats.ifs.get(rx as usize) {
                c.drops.add(1);
            }
        }
        cx.bufs.free(bufs);
        nexts.fill(CONSUMED);
    }
}

/// Sends each packet on its `tx_sw_if_index` through this worker's tx queue for it.
pub struct InterfaceOutput;

crate::next_edges! {
    mod next {
        DROP => "error-drop",
        GSO => "gso-segment",
        VXLAN => "vxlan4-encap",
    }
}

/// The packet carries an offload (GSO super-frame, L4 checksum left to the device) that its
/// egress device cannot do: software must (gso-segment). No device takes one through a
/// tunnel's headers.
#[inline(always)]
fn needs_fixup(ifs: &IfTable, m: &BufferMeta) -> bool {
    if m.flags & (flags::GSO | flags::OFFLOAD_L4_CKSUM) == 0 {
        return false;
    }
    if m.flags & flags::TUNNEL_OFFLOAD != 0 {
        return true;
    }
    let dev = ifs.fast(m.tx_sw_if_index).flags;
    (m.flags & flags::GSO != 0 && dev & if_flags::TX_GSO == 0)
        || (m.flags & flags::OFFLOAD_L4_CKSUM != 0 && dev & if_flags::TX_CSUM == 0)
}
crate::node_errors! {
    pub mod error {
        NO_TXQ => "interface has no tx queue on this thread",
        DOWN => "interface is down",
        FULL => "tx queue full",
    }
}

impl Node for InterfaceOutput {
    fn info(&self) -> NodeInfo {
        NodeInfo::internal("interface-output", next::NAMES, error::NAMES)
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        let ifs = cx.tables.ifs.get();
        let n = bufs.len();
        let mut i = 0;
        while i < n {
            let m = cx.bufs.meta(bufs[i]);
            let sw = m.tx_sw_if_index;
            let fix = needs_fixup(ifs, m);
            let mut bytes = m.chain_len();
            let mut j = i + 1;
            while j < n {
                let m = cx.bufs.meta(bufs[j]);
                if m.tx_sw_if_index != sw || needs_fixup(ifs, m) != fix {
                    break;
                }
                bytes += m.chain_len();
                j += 1;
            }
            if fix {
                nexts[i..j].fill(next::GSO);
                i = j;
                continue;
            }
            let run = &mut bufs[i..j];
            let fast = ifs.fast(sw);
            let error = if fast.flags & if_flags::ADMIN_UP == 0 {
                Some(error::DOWN)
            } else {
                None
            };
            let sent = match (error, cx.tx.get(sw)) {
                (Some(e), _) => {
                    drop_run(cx, run, &mut nexts[i..j], e);
                    0
                }
                // A VXLAN tunnel has no queue: its encap sends what comes here (ARP
                // answered inside it, a cross-connect into it) inside the outer headers.
                (None, None) if fast.flags & if_flags::TX_VXLAN != 0 => {
                    nexts[i..j].fill(next::VXLAN);
                    0
                }
                (None, None) => {
                    drop_run(cx, run, &mut nexts[i..j], error::NO_TXQ);
                    0
                }
                (None, Some((q, node))) => {
                    let node = *node;
                    let cap = &cx.stats.capture;
                    if cap.active(&cap.tx) {
                        cap.take(cx.bufs, run, |m| m.tx_sw_if_index);
                    }
                    let t0 = clocks();
                    let sent = q.tx_reorder(cx.bufs, run);
                    let dt = clocks() - t0;
                    cx.charge(node, sent as u64, dt);
                    nexts[i..i + sent].fill(CONSUMED);
                    if sent < run.len() {
                        drop_run(cx, &run[sent..], &mut nexts[i + sent..j], error::FULL);
                    }
                    sent
                }
            };
            if sent > 0 {
                if let Some(c) = cx.stats.ifs.get(sw as usize) {
                    c.tx_packets.add(sent as u64);
                    c.tx_bytes.add(if sent == run.len() {
                        bytes
                    } else {
                        bytes * sent as u64 / run.len() as u64
                    });
                }
            }
            i = j;
        }
    }
}

fn drop_run(cx: &mut Ctx<'_>, run: &[u32], nexts: &mut [u16], code: u16) {
    let e = cx.error(code);
    for &bi in run {
        let m = cx.bufs.meta(bi);
        m.error = e;
        let tx = m.tx_sw_if_index;
        if let Some(c) = cx.stats.ifs.get(tx as usize) {
            c.tx_errors.add(1);
        }
    }
    nexts.fill(next::DROP);
}
