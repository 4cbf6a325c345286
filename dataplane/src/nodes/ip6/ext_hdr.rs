//! Extension-header walk (RFC 8200): bounded, every length checked, options validated.

use crate::wire::{Ip6Hdr, IP6_HDR};

use super::ext;
use super::local::local_error;

/// Extension headers walked before a chain is called too long.
const MAX_EXT_HDRS: usize = 8;

/// Why an extension-header walk stopped short (local_error codes).
type WalkError = u16;

/// Walk the extension headers of the IPv6 packet in `d` (which ends where the packet or the
/// first buffer ends). Returns (upper-layer protocol, its offset). Every length is checked
/// against `d` and the walk is bounded. `strict` (packets for us) also rejects options that
/// demand a discard, routing headers with segments left and real fragments; otherwise a
/// non-first fragment stops the walk with protocol `ext::FRAGMENT`.
pub(super) fn walk_ext(d: &[u8], strict: bool) -> Result<(u8, usize), WalkError> {
    let Some(h) = Ip6Hdr::new(d) else {
        return Err(local_error::BAD_EXT);
    };
    let mut nh = h.next_header();
    let mut off = IP6_HDR;
    for n in 0..=MAX_EXT_HDRS {
        match nh {
            ext::HOP_BY_HOP | ext::ROUTING | ext::DEST_OPTS => {
                // Hop-by-hop may only follow the IPv6 header (RFC 8200 4.1).
                if n == MAX_EXT_HDRS || (nh == ext::HOP_BY_HOP && n != 0) {
                    return Err(if n == MAX_EXT_HDRS {
                        local_error::EXT_TOO_LONG
                    } else {
                        local_error::BAD_EXT
                    });
                }
                let Some(&[next, units]) = d.get(off..off + 2).and_then(|s| s.first_chunk()) else {
                    return Err(local_error::BAD_EXT);
                };
                let len = (units as usize + 1) * 8;
                let Some(hdr) = d.get(off..off + len) else {
                    return Err(local_error::BAD_EXT);
                };
                if strict {
                    if nh == ext::ROUTING {
                        if hdr[3] != 0 {
                            return Err(local_error::ROUTING_HDR);
                        }
                    } else {
                        options_ok(&hdr[2..])?;
                    }
                }
                nh = next;
                off += len;
            }
            ext::FRAGMENT => {
                if n == MAX_EXT_HDRS {
                    return Err(local_error::EXT_TOO_LONG);
                }
                let Some(hdr) = d.get(off..off + 8) else {
                    return Err(local_error::BAD_EXT);
                };
                let fo = u16::from_be_bytes([hdr[2], hdr[3]]);
                // Offset 0 without more fragments is an atomic fragment: a whole packet
                // (RFC 6946).
                if fo & 0xfff9 != 0 {
                    if strict {
                        return Err(local_error::FRAGMENT);
                    }
                    if fo & 0xfff8 != 0 {
                        return Ok((ext::FRAGMENT, off));
                    }
                }
                nh = hdr[0];
                off += 8;
            }
            _ => return Ok((nh, off)),
        }
    }
    Err(local_error::EXT_TOO_LONG)
}

/// Check the TLV options of a hop-by-hop or destination options header (RFC 8200 4.2).
fn options_ok(mut o: &[u8]) -> Result<(), WalkError> {
    while let Some(&t) = o.first() {
        if t == 0 {
            // Pad1.
            o = &o[1..];
            continue;
        }
        let Some(&l) = o.get(1) else {
            return Err(local_error::BAD_EXT);
        };
        let n = 2 + l as usize;
        if n > o.len() {
            return Err(local_error::BAD_EXT);
        }
        // We know PadN and nothing else: an unknown option whose top two bits are not 00
        // must make us discard the packet.
        if t != 1 && t >> 6 != 0 {
            return Err(local_error::BAD_OPTION);
        }
        o = &o[n..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_walk_is_bounded_and_checked() {
        assert!(options_ok(&[0, 0, 1, 2, 0, 0]).is_ok());
        assert_eq!(options_ok(&[1, 9, 0]), Err(local_error::BAD_EXT));
        assert_eq!(options_ok(&[1]), Err(local_error::BAD_EXT));
        assert_eq!(
            options_ok(&[0xc2, 4, 0, 0, 0, 0]),
            Err(local_error::BAD_OPTION)
        );
        assert!(options_ok(&[0x1e, 0]).is_ok());
    }
}
