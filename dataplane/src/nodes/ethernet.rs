//! ethernet-input: checks the frame is for us, maps 802.1Q tags to sub-interfaces, and sends
//! the payload to ip4-input, ip6-input or arp-input.

use crate::buffer::{flags, for_each_prefetched, Buf};
use crate::graph::{Node, NodeInfo};
use crate::runtime::{Ctx, Errors};
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
        NodeInfo::internal("ethernet-input", next::NAMES, error::NAMES)
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        let errs = cx.errs();
        let ifs = cx.tables.ifs.get();
        let mut last_if = u32::MAX;
        let mut path = RxPath::Other;
        let mut view = cx.bufs.view();
        let mut v = view.vector(bufs);
        let n = v.len().min(nexts.len());
        for_each_prefetched!(v, n, PREFETCH_AHEAD, |i| {
            nexts[i] = {
                let rx = v.meta(i).rx_sw_if_index;
                if rx != last_if {
                    last_if = rx;
                    path = RxPath::of(&ifs.fast(rx));
                }
                let fast = match path {
                    RxPath::Plain(p) => untagged_fast(&mut v.get(i), p),
                    RxPath::Xconnect(tx) => xconnect_fast(&mut v.get(i), tx),
                    RxPath::Other => None,
                };
                match fast {
                    Some(next) => next,
                    None => slow(&mut v.get(i), ifs, errs),
                }
            };
        });
    }

    fn trace(&self, b: &Buf<'_>) -> String {
        format!(
            "rx sw_if_index {} l3 offset {}",
            b.meta.rx_sw_if_index, b.meta.l3_hdr_offset
        )
    }
}

/// Buffers ahead whose metadata and first line are prefetched.
const PREFETCH_AHEAD: usize = 8;

/// How a run of frames from one rx interface is decided: a plain interface's and a
/// cross-connected one's common frames in the loop, everything else by `classify`.
#[derive(Clone, Copy)]
enum RxPath {
    Plain(PlainIf),
    /// Up and cross-connected to this tx interface.
    Xconnect(u32),
    Other,
}

impl RxPath {
    #[inline(always)]
    fn of(f: &IfFast) -> Self {
        if f.flags & if_flags::ADMIN_UP != 0 && f.xconnect != u32::MAX {
            return Self::Xconnect(f.xconnect);
        }
        PlainIf::of(f).map_or(Self::Other, Self::Plain)
    }
}

/// A cross-connected interface's frame leaves as it came; what `classify` does for it.
#[inline(always)]
fn xconnect_fast(b: &mut Buf<'_>, tx: u32) -> Option<u16> {
    b.head::<{ wire::ETH_HDR }>()?;
    b.meta.tx_sw_if_index = tx;
    Some(next::XCONNECT)
}

/// An interface whose frames take the fast path: up, not promiscuous, not cross-connected.
#[derive(Clone, Copy)]
struct PlainIf {
    /// Its MAC in the low 48 bits, as the first 8 frame bytes load little-endian.
    mac: u64,
}

impl PlainIf {
    #[inline(always)]
    fn of(f: &IfFast) -> Option<Self> {
        let plain = f.flags & (if_flags::ADMIN_UP | if_flags::PROMISC) == if_flags::ADMIN_UP
            && f.xconnect == u32::MAX;
        let m = f.mac;
        plain.then_some(Self {
            mac: u64::from_le_bytes([m[0], m[1], m[2], m[3], m[4], m[5], 0, 0]),
        })
    }
}

/// The common case in a few plain loads: an untagged IPv4 or IPv6 frame for our MAC (or a
/// group address) on a plain interface. None: anything else, which `classify` decides. What
/// this returns and writes is exactly what `classify` would for the same frame.
#[inline(always)]
fn untagged_fast(b: &mut Buf<'_>, p: PlainIf) -> Option<u16> {
    let h = b.head::<{ wire::ETH_HDR }>()?;
    let w = u64::from_le_bytes(*h.first_chunk::<8>()?);
    // The ethertype as it lies in memory, against constants in the same order (no swap).
    let et = u16::from_ne_bytes([h[12], h[13]]);
    // Unicast to another MAC is for `classify` (to drop); group bit set or our MAC passes.
    if w & 1 == 0 && (w ^ p.mac) << 16 != 0 {
        return None;
    }
    const IP4: u16 = wire::ETHERTYPE_IP4.to_be();
    const IP6: u16 = wire::ETHERTYPE_IP6.to_be();
    let next = match et {
        IP4 => next::IP4,
        IP6 => next::IP6,
        _ => return None,
    };
    // head() proved at least ETH_HDR bytes.
    strip_untagged(b.meta);
    Some(next)
}

/// Past an untagged Ethernet header the buffer holds whole, as ethernet-input leaves a frame
/// for ip4-/ip6-/arp-input: the L2 header marked valid where it was, the L3 one after it.
#[inline(always)]
pub(crate) fn strip_untagged(m: &mut crate::buffer::BufferMeta) {
    m.l2_hdr_offset = m.current_data;
    m.flags |= flags::L2_HDR_VALID;
    m.current_data += wire::ETH_HDR as i16;
    m.current_length -= wire::ETH_HDR as u16;
    m.l3_hdr_offset = m.current_data;
}

/// `f`'s MAC as [`unicast_ip_to`] compares it, when ethernet-input sends a frame addressed to
/// it on to ip4-/ip6-input (up and not cross-connected; promiscuity changes nothing for our
/// own MAC).
#[inline(always)]
pub(crate) fn unicast_mac(f: &IfFast) -> Option<u64> {
    PlainIf::of(&IfFast {
        flags: f.flags & !if_flags::PROMISC,
        ..*f
    })
    .map(|p| p.mac)
}

/// An untagged IPv4 or IPv6 frame to exactly `mac` ([`unicast_mac`]'s): stripped as
/// ethernet-input would; Some(whether it is IPv6). Anything else (another MAC, a group
/// address, a VLAN tag, ARP) is left as it was, for ethernet-input.
#[inline(always)]
pub(crate) fn unicast_ip_to(b: &mut Buf<'_>, mac: u64) -> Option<bool> {
    let h = b.head::<{ wire::ETH_HDR }>()?;
    let w = u64::from_le_bytes(*h.first_chunk::<8>()?);
    if (w ^ mac) << 16 != 0 {
        return None;
    }
    let v6 = match u16::from_be_bytes([h[12], h[13]]) {
        wire::ETHERTYPE_IP4 => false,
        wire::ETHERTYPE_IP6 => true,
        _ => return None,
    };
    strip_untagged(b.meta);
    Some(v6)
}

/// Everything but the fast path, out of the hot loop.
#[inline(never)]
fn slow(b: &mut Buf<'_>, ifs: &crate::tables::IfTable, errs: Errors<'_>) -> u16 {
    let (next, err) = classify(b, &ifs.fast(b.meta.rx_sw_if_index), ifs);
    if next == next::DROP {
        b.meta.error = errs.error(err);
    }
    next
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
        // EthHdr::new proved at least ETH_HDR bytes.
        strip_untagged(b.meta);
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
