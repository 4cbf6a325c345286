//! ip6-input: header checks, then ip6-lookup or the ip6-unicast feature arc.

use crate::buffer::{flags, Buf};
use crate::feature::ArcEdges;
use crate::graph::{Node, NodeInfo};
use crate::runtime::Ctx;
use crate::tables::if_flags;
use crate::wire::{Ip6Hdr, IP6_HDR};

use super::addr::LOOPBACK;
use super::icmp_error_node::set_icmp6_error;
use super::{ext, icmp6, trace_ip6};

/// ip6-input starts the ip6-unicast arc: the builder appends the arc's edges to these.
#[derive(Default)]
pub struct Ip6Input {
    arc: ArcEdges,
}

crate::next_edges! {
    mod input_next {
        DROP => "error-drop",
        LOOKUP => "ip6-lookup",
        ICMP_ERROR => "ip6-icmp-error",
    }
}

crate::node_errors! {
    pub mod input_error {
        TOO_SHORT => "ip6 header too short",
        BAD_VERSION => "ip6 bad version",
        BAD_LENGTH => "ip6 payload length exceeds packet",
        HOP_LIMIT_EXPIRED => "ip6 hop limit expired",
        NOT_ENABLED => "ip6 not enabled on interface",
        BAD_ADDRESS => "ip6 bad address (multicast source or loopback)",
        HOP_BY_HOP => "ip6 packets with hop-by-hop options (counted, forwarded)",
    }
}

impl Node for Ip6Input {
    fn info(&self) -> NodeInfo {
        NodeInfo::internal("ip6-input", input_next::NAMES, input_error::NAMES)
    }

    fn attach_arc(&mut self, arc: ArcEdges) {
        self.arc = arc;
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        let errs = cx.errs();
        let ifs = cx.tables.ifs.get();
        let mut last_if = u32::MAX;
        let mut fast = Default::default();
        for (i, &bi) in bufs.iter().enumerate() {
            if let Some(&n) = bufs.get(i + 2) {
                cx.bufs.prefetch(n);
            }
            let mut b = cx.bufs.get(bi);
            let rx = b.meta.rx_sw_if_index;
            if rx != last_if {
                last_if = rx;
                fast = ifs.fast(rx);
            }
            nexts[i] = match check(&mut b, fast.flags) {
                Ok(hbh) => {
                    if hbh {
                        errs.count(input_error::HOP_BY_HOP, 1);
                    }
                    b.meta.fib_index = fast.ip6_fib;
                    b.meta.l3_hdr_offset = b.meta.current_data;
                    if fast.feat_ip6 == 0 {
                        input_next::LOOKUP
                    } else {
                        self.arc.enter(b.meta, fast.feat_ip6)
                    }
                }
                Err(input_error::HOP_LIMIT_EXPIRED) => {
                    b.meta.fib_index = fast.ip6_fib;
                    b.meta.l3_hdr_offset = b.meta.current_data;
                    set_icmp6_error(&mut b, icmp6::TIME_EXCEEDED, icmp6::HOP_LIMIT_EXCEEDED, 0);
                    b.meta.error = errs.error(input_error::HOP_LIMIT_EXPIRED);
                    input_next::ICMP_ERROR
                }
                Err(e) => {
                    b.meta.error = errs.error(e);
                    input_next::DROP
                }
            };
        }
    }

    fn trace(&self, b: &Buf<'_>) -> String {
        trace_ip6(b)
    }
}

/// Validate an IPv6 header in place; trims link padding. Ok(has hop-by-hop options).
#[inline(always)]
fn check(b: &mut Buf<'_>, if_flags_v: u16) -> Result<bool, u16> {
    if if_flags_v & if_flags::IP6 == 0 {
        return Err(input_error::NOT_ENABLED);
    }
    let d = b.data();
    let Some(h) = Ip6Hdr::new(d) else {
        return Err(input_error::TOO_SHORT);
    };
    if h.version() != 6 {
        return Err(input_error::BAD_VERSION);
    }
    let tl = IP6_HDR + h.payload_len() as usize;
    if tl > b.total_len() {
        return Err(input_error::BAD_LENGTH);
    }
    // RFC 4291: multicast is never a source; loopback never crosses a wire.
    if h.0[8] == 0xff || h.dst() == LOOPBACK || h.src() == LOOPBACK {
        return Err(input_error::BAD_ADDRESS);
    }
    if h.hop_limit() == 0 {
        return Err(input_error::HOP_LIMIT_EXPIRED);
    }
    let hbh = h.next_header() == ext::HOP_BY_HOP;
    if tl < d.len() && b.meta.flags & flags::NEXT_PRESENT == 0 {
        b.set_len(tl);
    }
    Ok(hbh)
}
