//! ip6-local: packets for us: echo, neighbor discovery, and punt.

use crate::buffer::{flags, Buf, Buffers};
use crate::graph::{Node, NodeInfo};
use crate::runtime::{Ctx, Errors};
use crate::tables::{if_flags, AdjKind, FwdTable, IfTable, Learned};
use crate::wire::{self, Ip6Hdr, Ip6HdrMut, Mac, IP6_HDR};

use super::addr::{
    is_link_local, is_multicast, is_on_link, is_our_ip6, multicast_mac, source_for, ALL_NODES,
    SOLICITED_MASK, SOLICITED_PREFIX,
};
use super::csum::{chain_sum, csum_update};
use super::ext_hdr::walk_ext;
use super::icmp_error_node::set_icmp6_error;
use super::l2::{push_l2, save_l2};
use super::nd::{nd_lladdr, write_nd};
use super::{icmp6, trace_ip6};

pub struct Ip6Local;

crate::next_edges! {
    mod local_next {
        DROP => "error-drop",
        LOOKUP => "ip6-lookup",
        REWRITE => "ip6-rewrite",
        ICMP_ERROR => "ip6-icmp-error",
        OUTPUT => "interface-output",
        VXLAN => "vxlan6-input",
        IPIP => "ipip6-input",
        ESP => "esp6-decrypt-tun",
        WIREGUARD => "wg6-input",
    }
}

crate::node_errors! {
    pub mod local_error {
        ECHO_REPLIED => "ip6 echo requests answered",
        NS_ANSWERED => "ip6 neighbor solicitations answered",
        NS_PROXIED => "ip6 neighbor solicitations answered by ND proxy",
        LEARNED => "ip6 neighbors learned (sent to the control thread)",
        LEARN_QUEUE_FULL => "ip6 neighbor learn queue full",
        NA_CONSUMED => "ip6 neighbor advertisements consumed after learning",
        NS_NOT_FOR_US => "ip6 neighbor solicitations not for us",
        ROUTER_SOLICIT => "ip6 router solicitations (router advertisements not configured, dropped)",
        PUNTED => "ip6 packets punted to the host",
        NO_PUNT => "ip6 unknown protocol, no punt path (dropped)",
        FRAGMENT => "ip6 fragments for us (reassembly not supported)",
        BAD_EXT => "ip6 malformed extension header",
        EXT_TOO_LONG => "ip6 extension header chain too long",
        BAD_OPTION => "ip6 unrecognized option requiring discard",
        ROUTING_HDR => "ip6 routing header with segments left (not supported)",
        BAD_ICMP => "ip6 bad icmp6 packet (length or checksum)",
        BAD_ND => "ip6 invalid neighbor discovery packet",
        NO_L2 => "ip6 reply needs an L2 header the packet does not have (dropped)",
        NO_SOURCE => "ip6 no source address for reply (dropped)",
    }
}

impl Node for Ip6Local {
    fn info(&self) -> NodeInfo {
        NodeInfo::internal("ip6-local", local_next::NAMES, local_error::NAMES)
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        let errs = cx.errs();
        let ifs = cx.tables.ifs.get();
        let fwd = cx.tables.fwd.get();
        let mut l = Local {
            bufs: &mut *cx.bufs,
            shared: cx.shared,
            ifs,
            fwd,
            errs,
        };
        for (i, &bi) in bufs.iter().enumerate() {
            if let Some(&n) = bufs.get(i + 2) {
                l.bufs.prefetch(n);
            }
            let next = l.one(bi);
            if let Err(e) = next {
                l.bufs.meta(bi).error = errs.error(e);
            }
            nexts[i] = next.unwrap_or(local_next::DROP);
        }
    }

    fn trace(&self, b: &Buf<'_>) -> String {
        trace_ip6(b)
    }
}

/// What ip6-local works with, split out of `Ctx` so the per-packet steps can borrow buffers.
struct Local<'c, 'a> {
    bufs: &'c mut Buffers,
    shared: &'a crate::tables::Shared,
    ifs: &'a IfTable,
    fwd: &'a FwdTable,
    errs: Errors<'a>,
}

/// The parts of a packet for us that its handlers need.
#[derive(Clone, Copy)]
struct Pkt {
    rx: u32,
    src: u128,
    dst: u128,
    hop_limit: u8,
    /// Offset and length of the upper-layer message.
    l4: usize,
    l4_len: usize,
}

impl Local<'_, '_> {
    fn udp_dst_port(&mut self, bi: u32, p: &Pkt) -> Option<u16> {
        let b = self.bufs.get(bi);
        b.data()
            .get(p.l4 + 2..p.l4 + 4)
            .map(|x| u16::from_be_bytes([x[0], x[1]]))
    }

    /// Decide one packet: Ok(next edge) or Err(drop reason).
    fn one(&mut self, bi: u32) -> Result<u16, u16> {
        let (p, proto) = {
            let b = self.bufs.get(bi);
            let d = b.data();
            let Some(h) = Ip6Hdr::new(d) else {
                return Err(local_error::BAD_EXT);
            };
            let tl = IP6_HDR + h.payload_len() as usize;
            let (proto, l4) = walk_ext(&d[..tl.min(d.len())], true)?;
            let p = Pkt {
                rx: b.meta.rx_sw_if_index,
                src: h.src(),
                dst: h.dst(),
                hop_limit: h.hop_limit(),
                l4,
                l4_len: tl - l4,
            };
            (p, proto)
        };
        if proto == wire::IP_PROTO_IPV6_ICMP {
            if let Some(r) = self.icmp(bi, &p) {
                return r;
            }
        }
        if proto == wire::IP_PROTO_UDP
            && self
                .udp_dst_port(bi, &p)
                .is_some_and(|port| self.fwd.is_vxlan_port(true, port))
        {
            // VXLAN is decapsulated here (VPP's udp_register_dst_port: 4789 and each
            // tunnel's local port).
            return Ok(local_next::VXLAN);
        }
        if matches!(
            proto,
            crate::wire::tunnel::IP_PROTO_IPIP | crate::wire::tunnel::IP_PROTO_IPV6
        ) && p.l4 == IP6_HDR
        {
            // IP-in-IPv6 straight after the fixed header, as ipip6-encap sends it.
            return Ok(local_next::IPIP);
        }
        if proto == crate::wire::tunnel::IP_PROTO_ESP && p.l4 == IP6_HDR {
            // ESP straight after the fixed header (extension headers before it: punted).
            return Ok(local_next::ESP);
        }
        if proto == wire::IP_PROTO_UDP
            && self
                .udp_dst_port(bi, &p)
                .is_some_and(crate::wireguard::is_listening)
        {
            return Ok(local_next::WIREGUARD);
        }
        self.punt(bi, &p, proto)
    }

    /// Hand to the host through a punt redirect, or refuse.
    fn punt(&mut self, bi: u32, p: &Pkt, proto: u8) -> Result<u16, u16> {
        let mut b = self.bufs.get(bi);
        match self
            .fwd
            .punt6
            .iter()
            .find(|r| r.rx_sw_if_index.is_none_or(|x| x == p.rx))
        {
            Some(r) => {
                b.meta.flags |= flags::LOCALLY_ORIGINATED;
                self.errs.count(local_error::PUNTED, 1);
                let adj = self.fwd.adj(r.adj);
                if adj.kind == AdjKind::Lookup {
                    // Punt into a table (calico: the host tap's VRF).
                    b.meta.fib_index = adj.lookup_fib;
                    Ok(local_next::LOOKUP)
                } else {
                    b.meta.adj_index = r.adj;
                    Ok(local_next::REWRITE)
                }
            }
            None if matches!(proto, wire::IP_PROTO_TCP | wire::IP_PROTO_UDP)
                && !is_multicast(p.dst) =>
            {
                // Nobody listens: tell the sender as a host would.
                set_icmp6_error(&mut b, icmp6::DEST_UNREACH, icmp6::PORT_UNREACH, 0);
                b.meta.error = self.errs.error(local_error::NO_PUNT);
                Ok(local_next::ICMP_ERROR)
            }
            None => Err(local_error::NO_PUNT),
        }
    }

    /// ICMPv6 messages we answer ourselves; None for those the host should see.
    fn icmp(&mut self, bi: u32, p: &Pkt) -> Option<Result<u16, u16>> {
        let (ty, code) = {
            let b = self.bufs.get(bi);
            let d = b.data();
            // The fixed 8 bytes must be in the first buffer: replies rewrite them there.
            match d.get(p.l4..p.l4 + 8) {
                Some(s) => (s[0], s[1]),
                _ => return Some(Err(local_error::BAD_ICMP)),
            }
        };
        if !matches!(
            ty,
            icmp6::ECHO_REQUEST
                | icmp6::NEIGHBOR_SOLICIT
                | icmp6::NEIGHBOR_ADVERT
                | icmp6::ROUTER_SOLICIT
        ) {
            return None;
        }
        let pseudo = wire::ip6_pseudo_sum(p.src, p.dst, p.l4_len as u32, wire::IP_PROTO_IPV6_ICMP);
        match chain_sum(self.bufs, bi, p.l4, p.l4_len, pseudo) {
            Some(s) if wire::fold(s) == 0 => {}
            _ => return Some(Err(local_error::BAD_ICMP)),
        }
        if ty == icmp6::ECHO_REQUEST {
            return Some(self.echo(bi, p));
        }
        // Neighbor discovery is never forwarded: it must arrive with hop limit 255 (RFC 4861 6.1).
        if p.hop_limit != 255 || code != 0 {
            return Some(Err(local_error::BAD_ND));
        }
        Some(match ty {
            icmp6::NEIGHBOR_SOLICIT => self.solicit(bi, p),
            icmp6::NEIGHBOR_ADVERT => self.advert(bi, p),
            _ => Err(local_error::ROUTER_SOLICIT),
        })
    }

    /// Echo request -> echo reply in place.
    fn echo(&mut self, bi: u32, p: &Pkt) -> Result<u16, u16> {
        if p.src == 0 {
            // Nobody to answer.
            return Err(local_error::BAD_ICMP);
        }
        // A reply to a group comes from our unicast address on the link (RFC 4443 4.2).
        let our = if is_multicast(p.dst) {
            source_for(self.ifs, p.rx, p.src).ok_or(local_error::NO_SOURCE)?
        } else {
            p.dst
        };
        let fast = self.ifs.fast(p.rx);
        let mut b = self.bufs.get(bi);
        // Extension headers are not echoed: the ICMP message moves up behind the IPv6 header.
        if p.l4 > IP6_HDR {
            let len = b.data().len();
            b.data_mut().copy_within(p.l4..len, IP6_HDR);
            b.set_len(len - (p.l4 - IP6_HDR));
        }
        let d = b.data_mut();
        let old_word = u16::from_be_bytes([d[IP6_HDR], d[IP6_HDR + 1]]);
        let new_word = (icmp6::ECHO_REPLY as u16) << 8 | old_word & 0xff;
        let ulen = p.l4_len as u32;
        let old =
            wire::ip6_pseudo_sum(p.src, p.dst, ulen, wire::IP_PROTO_IPV6_ICMP) + old_word as u64;
        let new =
            wire::ip6_pseudo_sum(our, p.src, ulen, wire::IP_PROTO_IPV6_ICMP) + new_word as u64;
        let hc = u16::from_be_bytes([d[IP6_HDR + 2], d[IP6_HDR + 3]]);
        d[IP6_HDR] = icmp6::ECHO_REPLY;
        d[IP6_HDR + 2..IP6_HDR + 4].copy_from_slice(&csum_update(hc, old, new).to_be_bytes());
        if let Some(h) = Ip6HdrMut::new(d) {
            // Keep version, traffic class and flow label; rewrite the rest.
            h.0[4..6].copy_from_slice(&(p.l4_len as u16).to_be_bytes());
            h.0[6] = wire::IP_PROTO_IPV6_ICMP;
            h.0[7] = 64;
            h.0[8..24].copy_from_slice(&our.to_be_bytes());
            h.0[24..40].copy_from_slice(&p.src.to_be_bytes());
        }
        b.meta.flags |= flags::LOCALLY_ORIGINATED;
        self.errs.count(local_error::ECHO_REPLIED, 1);
        // An on-link (link-local) asker is answered straight back to its MAC.
        if is_link_local(p.src) {
            if let Some(l2) = save_l2(&mut b) {
                if push_l2(&mut b, &l2, &fast.mac, None) {
                    b.meta.tx_sw_if_index = p.rx;
                    return Ok(local_next::OUTPUT);
                }
            }
        }
        b.meta.fib_index = fast.ip6_fib;
        Ok(local_next::LOOKUP)
    }

    /// ND options after the fixed NS/NA part, which must be in the first buffer.
    fn nd_option(&mut self, bi: u32, p: &Pkt, want: u8) -> Result<(u128, Option<Mac>), u16> {
        let b = self.bufs.get(bi);
        let d = b.data();
        if p.l4_len < icmp6::ND_LEN {
            return Err(local_error::BAD_ND);
        }
        let Some(m) = d.get(p.l4..p.l4 + p.l4_len) else {
            return Err(local_error::BAD_ND);
        };
        let mut t = [0u8; 16];
        t.copy_from_slice(&m[8..24]);
        let target = u128::from_be_bytes(t);
        let mac = nd_lladdr(&m[icmp6::ND_LEN..], want).ok_or(local_error::BAD_ND)?;
        Ok((target, mac))
    }

    fn learn(&self, sw_if_index: u32, ip: u128, mac: Mac) {
        let ev = Learned::Ip6Neighbor {
            sw_if_index,
            ip,
            mac,
        };
        if self.shared.learned.push(ev).is_ok() {
            self.errs.count(local_error::LEARNED, 1);
        } else {
            self.errs.count(local_error::LEARN_QUEUE_FULL, 1);
        }
    }

    /// Neighbor solicitation: learn the asker, answer for our addresses (RFC 4861 7.1.1, 7.2.4).
    fn solicit(&mut self, bi: u32, p: &Pkt) -> Result<u16, u16> {
        let (target, sll) = self.nd_option(bi, p, icmp6::OPT_SOURCE_LL)?;
        let dad = p.src == 0;
        if is_multicast(target)
            || (dad && (p.dst & SOLICITED_MASK != SOLICITED_PREFIX || sll.is_some()))
        {
            return Err(local_error::BAD_ND);
        }
        // ND proxy (calico's host tap): answered for any target when the asker has a global
        // address and says its MAC, as VPP's ip6-nd proxy (with calico's NO_DST_FILTER).
        let proxied = !is_our_ip6(self.ifs, p.rx, target);
        if proxied
            && (self.ifs.fast(p.rx).flags & if_flags::ND_PROXY == 0
                || dad
                || is_link_local(p.src)
                || sll.is_none())
        {
            return Err(local_error::NS_NOT_FOR_US);
        }
        if let Some(mac) = sll.filter(|m| !dad && m[0] & 1 == 0) {
            self.learn(p.rx, p.src, mac);
        }
        let fast = self.ifs.fast(p.rx);
        self.bufs.free_tail(bi);
        let mut b = self.bufs.get(bi);
        let Some(l2) = save_l2(&mut b) else {
            return Err(local_error::NO_L2);
        };
        // A node doing DAD has no address yet: everyone hears the answer, unsolicited.
        let (to_ip, to_mac, fl) = if dad {
            (ALL_NODES, Some(multicast_mac(ALL_NODES)), 0)
        } else {
            (p.src, sll, icmp6::NA_SOLICITED)
        };
        let fl = fl | icmp6::NA_ROUTER | icmp6::NA_OVERRIDE;
        let len = IP6_HDR + icmp6::ND_LEN + icmp6::LL_OPT_LEN;
        if !b.set_len(len) {
            return Err(local_error::NO_L2);
        }
        write_nd(
            b.data_mut(),
            target,
            to_ip,
            icmp6::NEIGHBOR_ADVERT,
            fl,
            target,
            icmp6::OPT_TARGET_LL,
            &fast.mac,
        );
        if !push_l2(&mut b, &l2, &fast.mac, to_mac) {
            return Err(local_error::NO_L2);
        }
        b.meta.tx_sw_if_index = p.rx;
        b.meta.flags |= flags::LOCALLY_ORIGINATED;
        self.errs.count(
            if proxied {
                local_error::NS_PROXIED
            } else {
                local_error::NS_ANSWERED
            },
            1,
        );
        Ok(local_next::OUTPUT)
    }

    /// Neighbor advertisement: learn the target's MAC when it is on this link (RFC 4861 7.1.2).
    fn advert(&mut self, bi: u32, p: &Pkt) -> Result<u16, u16> {
        let (target, tll) = self.nd_option(bi, p, icmp6::OPT_TARGET_LL)?;
        let solicited = {
            let b = self.bufs.get(bi);
            b.data()[p.l4 + 4] & icmp6::NA_SOLICITED != 0
        };
        if is_multicast(target) || (is_multicast(p.dst) && solicited) {
            return Err(local_error::BAD_ND);
        }
        if let Some(mac) = tll.filter(|m| m[0] & 1 == 0) {
            if is_on_link(self.ifs, p.rx, target) && !is_our_ip6(self.ifs, p.rx, target) {
                self.learn(p.rx, target, mac);
            }
        }
        Err(local_error::NA_CONSUMED)
    }
}
