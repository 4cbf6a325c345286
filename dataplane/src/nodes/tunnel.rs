//! What the tunnel nodes (vxlan, ipip) share: the encap loop that finds each packet's tunnel
//! by its tx interface and the outer packet's metadata; the decap loop and the inner packet's.

use crate::buffer::{flags, Buf, BufferMeta};
use crate::runtime::Ctx;
use crate::tables::if_flags;

/// An encap node's own codes for the outcomes the shared loop decides.
pub(crate) struct EncapCodes {
    pub encapsulated: u16,
    pub down: u16,
    pub no_tunnel: u16,
    pub drop: u16,
}

/// Encapsulate a vector: each packet's tx interface names its tunnel (`tunnel`); a tunnel
/// that is down or an interface that is not one is a counted drop, else `encap` builds the
/// outer headers and says the next edge (or the error to drop with).
#[inline(always)]
pub(crate) fn encap_vector<'t, T: 't>(
    cx: &mut Ctx<'_>,
    bufs: &[u32],
    nexts: &mut [u16],
    codes: &EncapCodes,
    tunnel: impl Fn(u32) -> Option<&'t T>,
    mut encap: impl FnMut(&mut Buf<'_>, &T) -> Result<u16, u16>,
) {
    let errs = cx.errs();
    let ifs = cx.tables.ifs.get();
    let mut done = 0;
    for (&bi, next_out) in bufs.iter().zip(nexts.iter_mut()) {
        let mut b = cx.bufs.get(bi);
        let tx = b.meta.tx_sw_if_index;
        let r = match tunnel(tx) {
            Some(_) if ifs.fast(tx).flags & if_flags::ADMIN_UP == 0 => Err(codes.down),
            Some(t) => encap(&mut b, t),
            None => Err(codes.no_tunnel),
        };
        *next_out = match r {
            Ok(n) => {
                done += 1;
                n
            }
            Err(e) => {
                b.meta.error = errs.error(e);
                codes.drop
            }
        };
    }
    errs.count(codes.encapsulated, done);
}

/// The outer packet starts at `current_data`, is looked up again in `encap_fib`, and counts
/// as ours (no TTL decrement on the way out).
#[inline(always)]
pub(crate) fn outer_packet(m: &mut BufferMeta, encap_fib: u32) {
    m.fib_index = encap_fib;
    m.relookups += 1;
    m.flags |= flags::LOCALLY_ORIGINATED;
    m.l3_hdr_offset = m.current_data;
}

/// A decap node's own codes for the outcomes the shared loop decides.
pub(crate) struct DecapCodes {
    pub decapsulated: u16,
    pub down: u16,
    pub drop: u16,
}

/// Decapsulate a vector: `decap` strips the outer headers, names the tunnel interface as the
/// rx interface and says the inner packet's next edge (or the error to drop with). A tunnel
/// that is down is a counted drop; each packet decapsulated counts as received on its tunnel.
#[inline(always)]
pub(crate) fn decap_vector(
    cx: &mut Ctx<'_>,
    bufs: &[u32],
    nexts: &mut [u16],
    codes: &DecapCodes,
    mut decap: impl FnMut(&mut Buf<'_>) -> Result<u16, u16>,
) {
    let errs = cx.errs();
    let ifs = cx.tables.ifs.get();
    let mut done = 0;
    for (&bi, next_out) in bufs.iter().zip(nexts.iter_mut()) {
        let mut b = cx.bufs.get(bi);
        *next_out = match decap(&mut b) {
            Ok(_) if ifs.fast(b.meta.rx_sw_if_index).flags & if_flags::ADMIN_UP == 0 => {
                b.meta.error = errs.error(codes.down);
                codes.drop
            }
            Ok(n) => {
                done += 1;
                let len = b.data().len() as u64;
                if let Some(c) = cx.stats.ifs.get(b.meta.rx_sw_if_index as usize) {
                    c.rx_packets.add(1);
                    c.rx_bytes.add(len);
                }
                n
            }
            Err(e) => {
                b.meta.error = errs.error(e);
                codes.drop
            }
        };
    }
    errs.count(codes.decapsulated, done);
}

/// The inner packet, now at `current_data`, arrives on tunnel interface `sw` as if received
/// there: not ours, no L2 header parsed yet, no lookups or features run on it so far.
#[inline(always)]
pub(crate) fn inner_packet(m: &mut BufferMeta, sw: u32) {
    m.rx_sw_if_index = sw;
    m.flags &= !(flags::LOCALLY_ORIGINATED | flags::L2_HDR_VALID);
    m.relookups = 0;
    m.feature_mask = 0;
}
