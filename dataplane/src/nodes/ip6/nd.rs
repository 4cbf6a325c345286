//! Neighbor discovery messages (RFC 4861): reading link-layer address options and writing NS/NA.

use crate::wire::{self, Ip6HdrMut, Mac, IP6_HDR};

use super::icmp6;

/// The link-layer address in the first option of type `want` (None if absent); None overall
/// when an option is malformed (zero length or running past the message).
pub(super) fn nd_lladdr(o: &[u8], want: u8) -> Option<Option<Mac>> {
    let mut opts = crate::wire::NdOptions::new(o);
    let mut found = None;
    for (kind, body) in &mut opts {
        if kind == want && found.is_none() {
            found = body.first_chunk::<6>().copied();
        }
    }
    (!opts.malformed()).then_some(found)
}

/// Write IPv6 + NS/NA with one link-layer address option into `d` (72 bytes).
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_nd(
    d: &mut [u8],
    src: u128,
    dst: u128,
    ty: u8,
    nd_flags: u8,
    target: u128,
    opt: u8,
    mac: &Mac,
) {
    let len = icmp6::ND_LEN + icmp6::LL_OPT_LEN;
    if let Some(mut h) = Ip6HdrMut::new(d) {
        h.init(src, dst, wire::IP_PROTO_IPV6_ICMP, 255, len as u16);
    }
    let m = &mut d[IP6_HDR..IP6_HDR + len];
    m.fill(0);
    m[0] = ty;
    m[4] = nd_flags;
    m[8..24].copy_from_slice(&target.to_be_bytes());
    m[24] = opt;
    m[25] = 1;
    m[26..32].copy_from_slice(mac);
    let pseudo = wire::ip6_pseudo_sum(src, dst, len as u32, wire::IP_PROTO_IPV6_ICMP);
    let c = wire::fold(wire::ones_sum(m, pseudo));
    m[2..4].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nd_options_reject_zero_length() {
        let mut o = [1u8, 1, 1, 2, 3, 4, 5, 6];
        assert_eq!(nd_lladdr(&o, 1), Some(Some([1, 2, 3, 4, 5, 6])));
        assert_eq!(nd_lladdr(&o, 2), Some(None));
        o[1] = 0;
        assert_eq!(nd_lladdr(&o, 1), None);
        o[1] = 2;
        assert_eq!(nd_lladdr(&o, 1), None);
        assert_eq!(nd_lladdr(&[], 1), Some(None));
    }
}
