//! The L2 header a packet arrived with, saved and turned around for a reply.

use crate::buffer::{flags, Buf};
use crate::wire::{self, Mac};

/// The L2 header a packet arrived with (Ethernet plus at most two tags).
pub(super) struct L2Hdr {
    bytes: [u8; 22],
    len: usize,
}

/// Copy the L2 header in front of the packet (which starts at its IPv6 header), if any.
pub(super) fn save_l2(b: &mut Buf<'_>) -> Option<L2Hdr> {
    if b.meta.flags & flags::L2_HDR_VALID == 0 {
        return None;
    }
    let len = b.meta.current_data as isize - b.meta.l2_hdr_offset as isize;
    if !(wire::ETH_HDR as isize..=22).contains(&len) {
        return None;
    }
    let len = len as usize;
    if !b.retreat(len) {
        return None;
    }
    let mut bytes = [0u8; 22];
    bytes[..len].copy_from_slice(&b.data()[..len]);
    b.advance(len);
    Some(L2Hdr { bytes, len })
}

/// Prepend `l2` turned around: to `to` (default: the frame's sender) from `our_mac`, keeping
/// its tags and ethertype.
pub(super) fn push_l2(b: &mut Buf<'_>, l2: &L2Hdr, our_mac: &Mac, to: Option<Mac>) -> bool {
    if !b.retreat(l2.len) {
        return false;
    }
    let mut sender = [0u8; 6];
    sender.copy_from_slice(&l2.bytes[6..12]);
    let d = b.data_mut();
    d[..l2.len].copy_from_slice(&l2.bytes[..l2.len]);
    d[0..6].copy_from_slice(&to.unwrap_or(sender));
    d[6..12].copy_from_slice(our_mac);
    true
}
