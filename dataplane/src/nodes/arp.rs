//! ARP: arp-input answers requests for our addresses (and, with proxy ARP, for targets in a
//! proxy range) and learns senders; ip4-arp resolves
//! next hops (glean and incomplete adjacencies) by turning the waiting packet into a request.

use crate::buffer::Buf;
use crate::graph::{Node, NodeInfo};
use crate::runtime::Ctx;
use crate::tables::{AdjKind, IfTable, Learned};
use crate::wire::{self, ArpPkt, EthHdr, Mac, BROADCAST_MAC};

pub struct ArpInput;

crate::next_edges! {
    mod arp_input_next {
        DROP => "error-drop",
        OUTPUT => "interface-output",
    }
}

crate::node_errors! {
    pub mod arp_error {
        REPLIES_SENT => "ARP replies sent",
        PROXY_REPLIES_SENT => "ARP replies sent by proxy",
        LEARNED => "ARP entries learned (sent to the control thread)",
        BAD_FORMAT => "ARP bad format",
        NOT_FOR_US => "ARP not for us",
        LEARN_QUEUE_FULL => "ARP learn queue full",
        NO_L2 => "ARP on an interface without L2 header",
        CONSUMED => "ARP packets consumed after learning",
    }
}

/// `ip` is one of the interface's own addresses.
fn is_ours(ifs: &IfTable, sw: u32, ip: u32) -> bool {
    let Some(i) = ifs.get(sw) else { return false };
    let i = match i.unnumbered_of.and_then(|u| ifs.get(u)) {
        Some(u) => u,
        None => i,
    };
    i.ip4_addrs.iter().any(|a| a.0 == ip)
}

/// `ip` is in one of the interface's connected subnets.
fn is_connected(ifs: &IfTable, sw: u32, ip: u32) -> bool {
    let Some(i) = ifs.get(sw) else { return false };
    i.ip4_addrs.iter().any(|&(a, l)| {
        let m = if l == 0 { 0 } else { u32::MAX << (32 - l) };
        a & m == ip & m
    })
}

impl Node for ArpInput {
    fn info(&self) -> NodeInfo {
        NodeInfo::internal("arp-input", arp_input_next::NAMES, arp_error::NAMES)
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        let errs = cx.errs();
        let ifs = cx.tables.ifs.get();
        for (i, &bi) in bufs.iter().enumerate() {
            let mut b = cx.bufs.get(bi);
            let rx = b.meta.rx_sw_if_index;
            let Some(mut arp) = ArpPkt::new(b.data_mut()) else {
                b.meta.error = errs.error(arp_error::BAD_FORMAT);
                nexts[i] = arp_input_next::DROP;
                continue;
            };
            if !arp.is_ether_ip4() || !matches!(arp.op(), wire::ARP_OP_REQUEST | wire::ARP_OP_REPLY)
            {
                b.meta.error = errs.error(arp_error::BAD_FORMAT);
                nexts[i] = arp_input_next::DROP;
                continue;
            }
            let (op, smac, sip, tip) =
                (arp.op(), arp.sender_mac(), arp.sender_ip(), arp.target_ip());
            let for_us = is_ours(ifs, rx, tip);
            // VPP's arp-proxy: a request for a target in a proxy range of the interface's
            // table is answered with our MAC (not a gratuitous one: it announces the sender).
            let proxied =
                !for_us && op == wire::ARP_OP_REQUEST && sip != tip && ifs.proxies_arp(rx, tip);
            // Learn senders on our subnets, and anyone who asks us (they will talk to us next).
            if sip != 0 && smac[0] & 1 == 0 && (for_us || is_connected(ifs, rx, sip)) {
                let ev = Learned::Ip4Neighbor {
                    sw_if_index: rx,
                    ip: sip,
                    mac: smac,
                };
                if cx.shared.learned.push(ev).is_ok() {
                    errs.count(arp_error::LEARNED, 1);
                } else {
                    errs.count(arp_error::LEARN_QUEUE_FULL, 1);
                }
            }
            if op != wire::ARP_OP_REQUEST || !(for_us || proxied) {
                b.meta.error = errs.error(if for_us {
                    arp_error::CONSUMED
                } else {
                    arp_error::NOT_FOR_US
                });
                nexts[i] = arp_input_next::DROP;
                continue;
            }
            let our_mac = ifs.fast(rx).mac;
            arp.fill(wire::ARP_OP_REPLY, &our_mac, tip, &smac, sip);
            // Put the Ethernet header back, addressed to the asker.
            if !b.retreat(wire::ETH_HDR) {
                b.meta.error = errs.error(arp_error::NO_L2);
                nexts[i] = arp_input_next::DROP;
                continue;
            }
            if let Some(mut eth) = EthHdr::new(b.data_mut()) {
                eth.set_dst(&smac);
                eth.set_src(&our_mac);
                eth.set_ethertype(wire::ETHERTYPE_ARP);
            }
            b.set_len(wire::ETH_HDR + wire::ARP_PKT);
            b.meta.tx_sw_if_index = rx;
            errs.count(
                if proxied {
                    arp_error::PROXY_REPLIES_SENT
                } else {
                    arp_error::REPLIES_SENT
                },
                1,
            );
            nexts[i] = arp_input_next::OUTPUT;
        }
    }

    fn trace(&self, b: &Buf<'_>) -> String {
        crate::runtime::hex_line(b.data())
    }
}

/// Resolves glean and incomplete adjacencies: the packet waiting for resolution is turned into
/// the ARP request (no allocation) and the request is rate-limited per target.
#[derive(Default)]
pub struct Ip4Arp {
    throttle: super::ResolveThrottle,
}

crate::next_edges! {
    mod ip4_arp_next {
        DROP => "error-drop",
        OUTPUT => "interface-output",
    }
}

crate::node_errors! {
    pub mod glean_error {
        REQUEST_SENT => "ARP requests sent (packet consumed)",
        THROTTLED => "ARP requests throttled (dropped)",
        NO_SOURCE => "ARP no source address on interface (dropped)",
        NOT_ETHERNET => "ARP on a non-ethernet interface (dropped)",
    }
}

impl Node for Ip4Arp {
    fn info(&self) -> NodeInfo {
        NodeInfo::internal("ip4-arp", ip4_arp_next::NAMES, glean_error::NAMES)
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        let errs = cx.errs();
        let ifs = cx.tables.ifs.get();
        let fwd = cx.tables.fwd.get();
        // Resolve a target at most every ~1 ms per thread.
        let gap = crate::runtime::tsc_hz() / 1000;
        for (i, &bi) in bufs.iter().enumerate() {
            let now = cx.now;
            let b = cx.bufs.get(bi);
            let adj = fwd.adj(b.meta.adj_index);
            let target = match adj.kind {
                AdjKind::Incomplete => adj.next_hop as u32,
                _ => wire::Ip4Hdr::new(b.data()).map_or(0, |h| h.dst()),
            };
            let sw = adj.sw_if_index;
            let fast = ifs.fast(sw);
            if fast.flags & crate::tables::if_flags::L2 == 0 {
                b.meta.error = errs.error(glean_error::NOT_ETHERNET);
                nexts[i] = ip4_arp_next::DROP;
                continue;
            }
            if self.throttle.throttled(target as u128, now, gap) {
                b.meta.error = errs.error(glean_error::THROTTLED);
                nexts[i] = ip4_arp_next::DROP;
                continue;
            }
            let Some(src) = ifs.ip4_source(sw) else {
                b.meta.error = errs.error(glean_error::NO_SOURCE);
                nexts[i] = ip4_arp_next::DROP;
                continue;
            };
            self.throttle.asked(target as u128, now);
            cx.bufs.free_tail(bi);
            let mut b = cx.bufs.get(bi);
            write_request(&mut b, &fast.mac, src, target);
            b.meta.tx_sw_if_index = sw;
            errs.count(glean_error::REQUEST_SENT, 1);
            nexts[i] = ip4_arp_next::OUTPUT;
        }
    }
}

/// Overwrite the buffer with a broadcast ARP request for `target`.
fn write_request(b: &mut Buf<'_>, our_mac: &Mac, src: u32, target: u32) {
    b.meta.current_data = 0;
    b.set_len(60);
    let d = b.data_mut();
    d.fill(0);
    if let Some(mut eth) = EthHdr::new(d) {
        eth.set_dst(&BROADCAST_MAC);
        eth.set_src(our_mac);
        eth.set_ethertype(wire::ETHERTYPE_ARP);
    }
    if let Some(mut arp) = ArpPkt::new(&mut d[wire::ETH_HDR..]) {
        arp.fill(wire::ARP_OP_REQUEST, our_mac, src, &[0; 6], target);
    }
}
