//! IPv6: ip6-input, ip6-lookup, ip6-rewrite, ip6-local (echo, neighbor discovery, punt),
//! ip6-discover (neighbor solicitation for glean/incomplete adjacencies), ip6-icmp-error.
//!
//! Formats follow RFC 8200 (header, extension headers), RFC 4443 (ICMPv6) and RFC 4861
//! (neighbor discovery).

mod addr;
mod csum;
mod discover;
mod ext_hdr;
mod icmp_error_node;
mod input;
mod l2;
mod local;
mod lookup;
mod nd;
pub(crate) use nd::write_nd;
mod rewrite;

pub use addr::{
    is_link_local, is_multicast, is_our_ip6, link_local_from_mac, multicast_mac, solicited_node,
    ALL_NODES, ALL_ROUTERS,
};
pub use discover::{discover_error, Ip6Discover};
pub use icmp_error_node::{icmp_error, set_icmp6_error, Ip6IcmpError};
pub(crate) use input::addresses_ok;
pub use input::{input_error, Ip6Input};
pub use local::{local_error, Ip6Local};
pub use lookup::{dst6, flow_hash6, lookup_error, Ip6Lookup};
pub use rewrite::{rewrite_error, Ip6Rewrite};

use crate::buffer::Buf;
use crate::graph::Node;
use crate::wire::{self, Ip6Hdr};

/// The IPv6 nodes of the standard graph.
pub fn nodes() -> Vec<Box<dyn Node>> {
    vec![
        Box::new(Ip6Input::default()),
        Box::new(Ip6Lookup::default()),
        Box::new(Ip6Rewrite::default()),
        Box::new(Ip6Local),
        Box::new(Ip6Discover::default()),
        Box::new(Ip6IcmpError::default()),
    ]
}

/// ICMPv6 types, codes and ND constants rvpp uses.
pub mod icmp6 {
    /// The message types, from the typed views in `wire`.
    pub use crate::wire::l4::icmp6_type::*;
    /// Destination unreachable codes.
    pub const NO_ROUTE: u8 = 0;
    pub const ADMIN_PROHIBITED: u8 = 1;
    pub const BEYOND_SCOPE: u8 = 2;
    pub const ADDR_UNREACH: u8 = 3;
    pub const PORT_UNREACH: u8 = 4;
    /// Time exceeded code: hop limit exceeded in transit.
    pub const HOP_LIMIT_EXCEEDED: u8 = 0;
    /// ND option types.
    pub const OPT_SOURCE_LL: u8 = 1;
    pub const OPT_TARGET_LL: u8 = 2;
    /// NA flags, in the first byte after the checksum.
    pub const NA_ROUTER: u8 = 0x80;
    pub const NA_SOLICITED: u8 = 0x40;
    pub const NA_OVERRIDE: u8 = 0x20;
    /// NS and NA: 4 bytes header, 4 reserved/flags, 16 target.
    pub const ND_LEN: usize = 24;
    /// An Ethernet link-layer address option.
    pub const LL_OPT_LEN: usize = 8;
}

/// Extension header (and related) next-header values.
pub mod ext {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const NO_NEXT: u8 = 59;
    pub const DEST_OPTS: u8 = 60;
}

pub fn trace_ip6(b: &Buf<'_>) -> String {
    let Some(h) = Ip6Hdr::new(b.data()) else {
        return "IP6: (truncated)".into();
    };
    let (src, dst) = (wire::fmt_ip6(h.src()), wire::fmt_ip6(h.dst()));
    format!(
        "IP6: {src} -> {dst} next {} hop limit {} payload {} fib {}",
        h.next_header(),
        h.hop_limit(),
        h.payload_len(),
        b.meta.fib_index
    )
}
