//! What the tunnel nodes (vxlan, ipip) share: the encap loop that finds each packet's tunnel
//! by its tx interface and the outer packet's metadata; the decap loop and the inner packet's.

use crate::buffer::{flags, Buf, BufferMeta};
use crate::runtime::Ctx;
use crate::tables::if_flags;

const UP: u16 = if_flags::ADMIN_UP | if_flags::LINK_UP;

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
            // Admin down, or link down (an IKEv2-protected tunnel without its child SA yet).
            Some(_) if ifs.fast(tx).flags & UP != UP => Err(codes.down),
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

/// A tunnel kind's entry: its interface, and the key its received packets are matched by.
pub trait TunnelEntry: Clone {
    type Key: std::hash::Hash + Eq + Clone + std::fmt::Debug;
    fn sw_if_index(&self) -> u32;
    fn decap_key(&self) -> Self::Key;
}

/// Every tunnel of one kind, by sw_if_index (encap) and by decap key (decap).
#[derive(Clone, Debug)]
pub struct TunnelSet<T: TunnelEntry> {
    by_sw: Vec<Option<T>>,
    decap: std::collections::HashMap<T::Key, u32, ahash::RandomState>,
}

impl<T: TunnelEntry> Default for TunnelSet<T> {
    fn default() -> Self {
        Self {
            by_sw: Vec::new(),
            decap: Default::default(),
        }
    }
}

impl<T: TunnelEntry> TunnelSet<T> {
    /// The tunnel on interface `sw`.
    #[inline(always)]
    pub fn get(&self, sw: u32) -> Option<&T> {
        self.by_sw.get(sw as usize).and_then(|t| t.as_ref())
    }

    /// The interface of the tunnel whose packets carry `key`.
    #[inline(always)]
    pub fn decap_sw(&self, key: &T::Key) -> Option<u32> {
        if self.decap.is_empty() {
            return None;
        }
        self.decap.get(key).copied()
    }

    /// The tunnel with this decap key, if any (one may exist per key).
    pub fn find_key(&self, key: &T::Key) -> Option<&T> {
        self.decap.get(key).and_then(|&sw| self.get(sw))
    }

    /// Add (or replace) a tunnel.
    pub fn insert(&mut self, t: T) {
        let i = t.sw_if_index() as usize;
        if self.by_sw.len() <= i {
            self.by_sw.resize(i + 1, None);
        }
        if let Some(old) = self.by_sw[i].take() {
            self.decap.remove(&old.decap_key());
        }
        self.decap.insert(t.decap_key(), t.sw_if_index());
        self.by_sw[i] = Some(t);
    }

    /// Remove the tunnel on `sw`.
    pub fn remove(&mut self, sw: u32) -> Option<T> {
        let t = self.by_sw.get_mut(sw as usize)?.take()?;
        self.decap.remove(&t.decap_key());
        Some(t)
    }

    /// Every tunnel, by sw_if_index.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.by_sw.iter().flatten()
    }
}

/// An outer address as decap keys hold it: its bits, and whether it is IPv6.
pub fn addr_bits(a: std::net::IpAddr) -> (u128, bool) {
    match a {
        std::net::IpAddr::V4(v) => (u32::from(v) as u128, false),
        std::net::IpAddr::V6(v) => (u128::from(v), true),
    }
}
