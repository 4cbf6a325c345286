//! Conversions between API types and the dataplane's, and VPP's return codes.

use rvpp_dataplane::forwarding::{FwdError, Path, PathKind, Prefix};
use rvpp_vppapi::defs as d;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use crate::service::{fwd_rv, rv};

/// `~0`: "any interface" / "no interface".
pub const NONE: u32 = u32::MAX;

/// The retval of a control service call.
pub fn svc_retval<T>(r: crate::service::SvcResult<T>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.retval,
    }
}

pub fn retval<T>(r: Result<T, FwdError>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => fwd_rv(&e),
    }
}

pub fn is_ip6(af: d::AddressFamily) -> bool {
    af == d::AddressFamily::ADDRESS_IP6
}

pub fn ip4_of(b: &[u8; 16]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

pub fn addr_ip(a: &d::Address) -> IpAddr {
    if is_ip6(a.af) {
        IpAddr::V6(Ipv6Addr::from(a.un.0))
    } else {
        IpAddr::V4(ip4_of(&a.un.0))
    }
}

pub fn ip_addr(ip: IpAddr) -> d::Address {
    let mut un = [0u8; 16];
    match ip {
        IpAddr::V4(a) => {
            un[..4].copy_from_slice(&a.octets());
            d::Address {
                af: d::AddressFamily::ADDRESS_IP4,
                un: d::AddressUnion(un),
            }
        }
        IpAddr::V6(a) => d::Address {
            af: d::AddressFamily::ADDRESS_IP6,
            un: d::AddressUnion(a.octets()),
        },
    }
}

/// An API prefix; the address keeps its host bits (interface addresses need them).
pub fn prefix_in(p: &d::Prefix) -> Result<Prefix, i32> {
    match addr_ip(&p.address) {
        IpAddr::V4(a) if p.len <= 32 => Ok(Prefix::V4(u32::from(a), p.len)),
        IpAddr::V6(a) if p.len <= 128 => Ok(Prefix::V6(u128::from(a), p.len)),
        _ => Err(rv::INVALID_VALUE),
    }
}

pub fn prefix_out(p: Prefix) -> d::Prefix {
    match p {
        Prefix::V4(a, l) => d::Prefix {
            address: ip_addr(IpAddr::V4(Ipv4Addr::from(a))),
            len: l,
        },
        Prefix::V6(a, l) => d::Prefix {
            address: ip_addr(IpAddr::V6(Ipv6Addr::from(a))),
            len: l,
        },
    }
}

/// A decoded `fib_path`: what the dataplane can do with it, or why not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiPath {
    /// Expressible as a dataplane path (a table lookup, VPP's DEAG path, included).
    Fwd(Path),
    /// A path the dataplane cannot forward on (another path type, a next hop of the other
    /// family): refused with UNIMPLEMENTED, VPP's answer for what it cannot do.
    Other,
}

fn nh_of(p: &d::FibPath) -> Option<IpAddr> {
    let b = &p.nh.address.0;
    if p.proto == d::FibPathNhProto::FIB_API_PATH_NH_PROTO_IP6 {
        let a = Ipv6Addr::from(*b);
        (!a.is_unspecified()).then_some(IpAddr::V6(a))
    } else {
        let a = ip4_of(b);
        (!a.is_unspecified()).then_some(IpAddr::V4(a))
    }
}

/// Decode one path of a route of family `ip6` (VPP's fib_api_path_decode, the cases calico uses).
pub fn path_in(p: &d::FibPath, ip6: bool) -> ApiPath {
    use d::FibPathType as T;
    let weight = p.weight.max(1);
    let preference = p.preference;
    let special = |k| {
        let mut x = Path::special(k);
        x.weight = weight;
        x.preference = preference;
        ApiPath::Fwd(x)
    };
    match p.type_ {
        T::FIB_API_PATH_TYPE_LOCAL => special(PathKind::Local),
        T::FIB_API_PATH_TYPE_DROP => special(PathKind::Drop),
        T::FIB_API_PATH_TYPE_ICMP_UNREACH => special(PathKind::Unreachable),
        T::FIB_API_PATH_TYPE_ICMP_PROHIBIT => special(PathKind::Prohibit),
        T::FIB_API_PATH_TYPE_NORMAL => {
            let mut nh = nh_of(p);
            let sw = (p.sw_if_index != NONE).then_some(p.sw_if_index);
            // calico's host-tap VRF sends IPv4 broadcasts (DHCP) out of the uplink with a path
            // "via ffff:…:ffff": rvpp reads an all-ones next hop as the link's broadcast.
            if !ip6 && nh == Some(IpAddr::V6(Ipv6Addr::from(u128::MAX))) {
                nh = Some(IpAddr::V4(Ipv4Addr::BROADCAST));
            }
            // Any other next hop of the other family is not forwardable.
            if nh.is_some_and(|n| n.is_ipv6() != ip6) {
                return ApiPath::Other;
            }
            let mut x = match (nh, sw) {
                // No interface, no next hop: look up again in `table_id` (DEAG).
                (None, None) => Path::lookup(p.table_id),
                (None, Some(s)) => Path::attached(s),
                (Some(n), s) => Path::via(n, s),
            };
            x.weight = weight;
            x.preference = preference;
            ApiPath::Fwd(x)
        }
        _ => ApiPath::Other,
    }
}

/// Encode a dataplane path for dumps.
pub fn path_out(p: &Path, ip6: bool, table_id: u32) -> d::FibPath {
    use d::FibPathType as T;
    let ty = match p.kind {
        PathKind::Normal => T::FIB_API_PATH_TYPE_NORMAL,
        PathKind::Local => T::FIB_API_PATH_TYPE_LOCAL,
        PathKind::Drop => T::FIB_API_PATH_TYPE_DROP,
        PathKind::Unreachable => T::FIB_API_PATH_TYPE_ICMP_UNREACH,
        PathKind::Prohibit => T::FIB_API_PATH_TYPE_ICMP_PROHIBIT,
        // VPP shows SR-sourced entries' DPOs as paths without a next hop.
        PathKind::Lookup(_) | PathKind::SrPolicy(_) | PathKind::SrLocalsid(_) => {
            T::FIB_API_PATH_TYPE_NORMAL
        }
    };
    // A table lookup is VPP's "deag" path: no interface, no next hop, the table to look in.
    let table_id = match p.kind {
        PathKind::Lookup(t) => t,
        _ => table_id,
    };
    let nh6 = p.next_hop.map_or(ip6, |n| n.is_ipv6());
    let mut nh = [0u8; 16];
    match p.next_hop {
        Some(IpAddr::V4(a)) => nh[..4].copy_from_slice(&a.octets()),
        Some(IpAddr::V6(a)) => nh = a.octets(),
        None => {}
    }
    d::FibPath {
        sw_if_index: p.sw_if_index.unwrap_or(NONE),
        table_id,
        rpf_id: 0,
        weight: p.weight,
        preference: p.preference,
        type_: ty,
        flags: d::FibPathFlags::FIB_API_PATH_FLAG_NONE,
        proto: if nh6 {
            d::FibPathNhProto::FIB_API_PATH_NH_PROTO_IP6
        } else {
            d::FibPathNhProto::FIB_API_PATH_NH_PROTO_IP4
        },
        nh: d::FibPathNh {
            address: d::AddressUnion(nh),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The NUL-free text of a fixed string field.
pub fn text(s: &str) -> &str {
    s.trim_end_matches('\0')
}
