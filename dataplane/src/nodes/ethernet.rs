//! ethernet-input: checks the frame is for us, maps 802.1Q tags to sub-interfaces, and sends
//! the payload to ip4-input, ip6-input or arp-input.

use crate::buffer::{flags, Buf};
use crate::graph::{Node, NodeInfo, NodeKind};
use crate::runtime::Ctx;
use crate::tables::{if_flags, IfFast};
use crate::wire::{self, EthHdr};

#[derive(Default)]
pub struct EthernetInput;

crate::next_edges! {
    mod next {
        DROP => "error-drop",
        IP4 => "ip4-input",
        IP6 => "ip6-input",
        ARP => "arp-input",
        XCONNECT => "interface-output",
    }
}

crate::node_errors! {
    pub mod error {
        TOO_SHORT => "frame too short",
        DOWN => "interface is down",
        UNKNOWN_VLAN => "unknown vlan",
        MAC_MISMATCH => "l3 mac mismatch",
        UNKNOWN_TYPE => "unknown ethernet type",
    }
}

impl Node for EthernetInput {
    fn info(&self) -> NodeInfo {
        NodeInfo {
            name: "ethernet-input",
            kind: NodeKind::Internal,
            next_nodes: next::NAMES,
            errors: error::NAMES,
        }
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        let errs = cx.errs();
        let ifs = cx.tables.ifs.get();
        let mut last_if = u32::MAX;
        let mut fast = IfFast::default();
        let mut view = cx.bufs.view();
        for (i, (&bi, next_out)) in bufs.iter().zip(nexts.iter_mut()).enumerate() {
            if let Some(&n) = bufs.get(i + crate::graph::PREFETCH_AHEAD) {
                view.prefetch(n);
            }
            let mut b = view.get(bi);
            let rx = b.meta.rx_sw_if_index;
            if rx != last_if {
                last_if = rx;
                fast = ifs.fast(rx);
            }
            let (next, err) = classify(&mut b, &fast, ifs);
            if next == next::DROP {
                b.meta.error = errs.error(err);
            }
            *next_out = next;
        }
    }

    fn trace(&self, b: &Buf<'_>) -> String {
        format!(
            "rx sw_if_index {} l3 offset {}",
            b.meta.rx_sw_if_index, b.meta.l3_hdr_offset
        )
    }
}

#[inline(always)]
fn classify(b: &mut Buf<'_>, fast: &IfFast, ifs: &crate::tables::IfTable) -> (u16, u16) {
    let d = b.data_mut();
    let Some(eth) = EthHdr::new(d) else {
        return (next::DROP, error::TOO_SHORT);
    };
    if fast.flags & if_flags::ADMIN_UP == 0 {
        return (next::DROP, error::DOWN);
    }
    if fast.xconnect != u32::MAX {
        // L2 cross-connect: the frame leaves as it came.
        b.meta.tx_sw_if_index = fast.xconnect;
        return (next::XCONNECT, 0);
    }
    let mut et = eth.ethertype();
    if et != wire::ETHERTYPE_VLAN {
        // Untagged: the common case, without the sub-interface lookup.
        if eth.0[0] & 1 == 0 && eth.0[..6] != fast.mac && fast.flags & if_flags::PROMISC == 0 {
            return (next::DROP, error::MAC_MISMATCH);
        }
        let next = match et {
            wire::ETHERTYPE_IP4 => next::IP4,
            wire::ETHERTYPE_IP6 => next::IP6,
            wire::ETHERTYPE_ARP => next::ARP,
            _ => return (next::DROP, error::UNKNOWN_TYPE),
        };
        // EthHdr::new proved at least ETH_HDR bytes, so this cannot underflow.
        let m = &mut *b.meta;
        m.l2_hdr_offset = m.current_data;
        m.flags |= flags::L2_HDR_VALID;
        m.current_data += wire::ETH_HDR as i16;
        m.current_length -= wire::ETH_HDR as u16;
        m.l3_hdr_offset = m.current_data;
        return (next, 0);
    }
    let dst = eth.dst();
    let mut hdr_len = wire::ETH_HDR;
    let mut rx_if_fast = *fast;
    if et == wire::ETHERTYPE_VLAN {
        if d.len() < wire::ETH_HDR + wire::VLAN_HDR {
            return (next::DROP, error::TOO_SHORT);
        }
        let vid = u16::from_be_bytes([d[14], d[15]]) & 0x0fff;
        et = u16::from_be_bytes([d[16], d[17]]);
        hdr_len += wire::VLAN_HDR;
        let Some(sub) = ifs.vlan_subif(b.meta.rx_sw_if_index, vid) else {
            return (next::DROP, error::UNKNOWN_VLAN);
        };
        rx_if_fast = ifs.fast(sub);
        if rx_if_fast.flags & if_flags::ADMIN_UP == 0 {
            return (next::DROP, error::DOWN);
        }
        b.meta.rx_sw_if_index = sub;
    }
    // Unicast frames must be for our MAC unless the interface is promiscuous.
    if dst[0] & 1 == 0 && dst != rx_if_fast.mac && rx_if_fast.flags & if_flags::PROMISC == 0 {
        return (next::DROP, error::MAC_MISMATCH);
    }
    let next = match et {
        wire::ETHERTYPE_IP4 => next::IP4,
        wire::ETHERTYPE_IP6 => next::IP6,
        wire::ETHERTYPE_ARP => next::ARP,
        _ => return (next::DROP, error::UNKNOWN_TYPE),
    };
    b.meta.l2_hdr_offset = b.meta.current_data;
    b.meta.flags |= flags::L2_HDR_VALID;
    b.advance(hdr_len);
    b.meta.l3_hdr_offset = b.meta.current_data;
    (next, 0)
}
