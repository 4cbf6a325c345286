//! ip4-/ip6-mcast-rewrite: a multicast packet a multicast route relays (the lookup has set
//! `tx_sw_if_index`) gets the group's Ethernet address (01:00:5e + 23 bits, 33:33 + 32 bits)
//! and the interface's own as source, and goes out. The TTL / hop limit is kept: the routes
//! calico programs relay link-scope groups (hop limit 1 or 255) between the host tap and the
//! uplink, which must not lose a hop.

use crate::graph::{Node, NodeInfo};
use crate::runtime::Ctx;
use crate::tables::if_flags;
use crate::wire::{self, Mac};

crate::next_edges! {
    mod next {
        DROP => "error-drop",
        OUTPUT => "interface-output",
    }
}

crate::node_errors! {
    pub mod error {
        RELAYED => "multicast packets relayed (counted)",
        NO_HEADROOM => "no room for the L2 header (dropped)",
        SUB_INTERFACE => "multicast relay to a VLAN sub-interface not supported (dropped)",
    }
}

/// The Ethernet address of group `dst`.
fn group_mac(ip6: bool, dst: &[u8]) -> Option<Mac> {
    if ip6 {
        let g = dst.get(24..40)?;
        Some([0x33, 0x33, g[12], g[13], g[14], g[15]])
    } else {
        let g = dst.get(16..20)?;
        Some([0x01, 0x00, 0x5e, g[1] & 0x7f, g[2], g[3]])
    }
}

pub struct McastRewrite {
    pub ip6: bool,
}

impl Node for McastRewrite {
    fn info(&self) -> NodeInfo {
        let name = if self.ip6 {
            "ip6-mcast-rewrite"
        } else {
            "ip4-mcast-rewrite"
        };
        NodeInfo::internal(name, next::NAMES, error::NAMES)
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        let errs = cx.errs();
        let ifs = cx.tables.ifs.get();
        let mut relayed = 0;
        let ethertype = if self.ip6 {
            wire::ETHERTYPE_IP6
        } else {
            wire::ETHERTYPE_IP4
        };
        for (&bi, next_out) in bufs.iter().zip(nexts.iter_mut()) {
            let mut b = cx.bufs.get(bi);
            let tx = b.meta.tx_sw_if_index;
            let fast = ifs.fast(tx);
            let mut code = None;
            if fast.flags & if_flags::L2 != 0 {
                if ifs.get(tx).is_some_and(|i| i.sub_of.is_some()) {
                    code = Some(error::SUB_INTERFACE);
                } else if let Some(mac) = group_mac(self.ip6, b.data()) {
                    if b.retreat(wire::ETH_HDR) {
                        if let Some(mut eth) = wire::EthHdr::new(b.data_mut()) {
                            eth.set_dst(&mac);
                            eth.set_src(&fast.mac);
                            eth.set_ethertype(ethertype);
                        }
                    } else {
                        code = Some(error::NO_HEADROOM);
                    }
                } else {
                    code = Some(error::NO_HEADROOM);
                }
            }
            *next_out = match code {
                Some(c) => {
                    b.meta.error = errs.error(c);
                    next::DROP
                }
                None => {
                    relayed += 1;
                    next::OUTPUT
                }
            };
        }
        errs.count(error::RELAYED, relayed);
    }
}
