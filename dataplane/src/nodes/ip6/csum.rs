//! Checksum helpers: folding, and summing a buffer chain (the incremental update is `wire`'s).

use crate::buffer::{flags, Buffers};
use crate::wire::{self};

/// One's-complement sum folded to 16 bits, not inverted.
#[inline]
fn fold16(acc: u64) -> u16 {
    !wire::fold(acc)
}

pub(super) use crate::wire::csum_update;

/// One's-complement sum of `len` bytes of the chain at `head` from `off` bytes into its first
/// buffer, added to `acc`. None if the chain is shorter or broken.
pub(super) fn chain_sum(
    bufs: &mut Buffers,
    head: u32,
    off: usize,
    len: usize,
    mut acc: u64,
) -> Option<u64> {
    let (mut bi, mut skip, mut left, mut odd) = (head, off, len, false);
    // Bounded, so a corrupt (cyclic) chain cannot hang the worker.
    for _ in 0..1024 {
        let b = bufs.get(bi);
        let seg = b.data().get(skip..).unwrap_or(&[]);
        let take = seg.len().min(left);
        let s = fold16(wire::ones_sum(&seg[..take], 0));
        // A segment starting at an odd offset of the message has its bytes in swapped lanes.
        acc += if odd { s.swap_bytes() } else { s } as u64;
        odd ^= take % 2 == 1;
        left -= take;
        if left == 0 {
            return Some(acc);
        }
        if b.meta.flags & flags::NEXT_PRESENT == 0 {
            return None;
        }
        bi = b.meta.next_buffer;
        skip = 0;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip6(s: &str) -> u128 {
        u128::from(s.parse::<std::net::Ipv6Addr>().unwrap())
    }

    #[test]
    fn checksum_update_matches_recompute() {
        let mut msg = [0x80u8, 0, 0, 0, 0x12, 0x34, 0, 1, 9, 8, 7];
        let (s, t) = (ip6("2001:db8::1"), ip6("2001:db8::2"));
        let ps = wire::ip6_pseudo_sum(s, t, msg.len() as u32, 58);
        let c = wire::fold(wire::ones_sum(&msg, ps));
        msg[2..4].copy_from_slice(&c.to_be_bytes());
        let old = ps + 0x8000;
        msg[0] = 0x81;
        let ps2 = wire::ip6_pseudo_sum(t, s, msg.len() as u32, 58);
        let nc = csum_update(c, old, ps2 + 0x8100);
        msg[2..4].copy_from_slice(&nc.to_be_bytes());
        assert_eq!(wire::fold(wire::ones_sum(&msg, ps2)), 0);
    }
}
