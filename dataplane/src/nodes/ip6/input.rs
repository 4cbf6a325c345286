//! ip6-input's IPv6 parts (the node is `family::Input`): header checks, then ip6-lookup or
//! the ip6-unicast feature arc.

use crate::buffer::{flags, Buf};
use crate::graph::NodeInfo;
use crate::nodes::family::{input_family, Input, V6};
use crate::wire::{Ip6Hdr, IP6_HDR};

use super::addr::LOOPBACK;
use super::ext;

/// ip6-input: header checks, then ip6-lookup or the ip6-unicast feature arc.
pub type Ip6Input = Input<V6>;

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

#[rustfmt::skip]
input_family!(V6: "ip6-input", input_next, input_error, expired: HOP_LIMIT_EXPIRED,
    counted: HOP_BY_HOP, plain: plain_header_ok, check: check);

/// The common case of `check` in one pass: version 6, no hop-by-hop header, hop limit
/// non-zero, a source that is not multicast, neither address loopback, and the payload
/// length exactly the buffer's or shorter (link padding, trimmed as `check` does).
#[inline(always)]
fn plain_header_ok(b: &mut Buf<'_>) -> bool {
    let Some(h) = b.head::<IP6_HDR>() else {
        return false;
    };
    let h = Ip6Hdr(h);
    if h.0[0] >> 4 != 6 || h.next_header() == ext::HOP_BY_HOP || h.hop_limit() == 0 {
        return false;
    }
    if !addresses_ok(&h) {
        return false;
    }
    let tl = IP6_HDR + h.payload_len() as usize;
    let len = b.meta.current_length as usize;
    if tl == len {
        return true;
    }
    if tl > len || b.meta.flags & flags::NEXT_PRESENT != 0 {
        return false;
    }
    b.set_len(tl);
    true
}

/// Validate an IPv6 header in place; trims link padding. Ok(has hop-by-hop options).
#[inline(always)]
fn check(b: &mut Buf<'_>) -> Result<bool, u16> {
    let h = Ip6Hdr::new(b.data()).ok_or(input_error::TOO_SHORT)?;
    if h.version() != 6 {
        return Err(input_error::BAD_VERSION);
    }
    let tl = IP6_HDR + h.payload_len() as usize;
    if tl > b.total_len() {
        return Err(input_error::BAD_LENGTH);
    }
    if !addresses_ok(&h) {
        return Err(input_error::BAD_ADDRESS);
    }
    if h.hop_limit() == 0 {
        return Err(input_error::HOP_LIMIT_EXPIRED);
    }
    let hbh = h.next_header() == ext::HOP_BY_HOP;
    if tl < b.data().len() && b.meta.flags & flags::NEXT_PRESENT == 0 {
        b.set_len(tl);
    }
    Ok(hbh)
}

/// RFC 4291: multicast is never a source; loopback never crosses a wire.
#[inline(always)]
pub(crate) fn addresses_ok(h: &Ip6Hdr<'_>) -> bool {
    h.0[8] != 0xff && h.src() != LOOPBACK && h.dst() != LOOPBACK
}
