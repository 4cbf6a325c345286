//! Address families and prefixes of either family.

use crate::wire;
use std::net::IpAddr;

/// An address family: what the writer's per-family tables, routes and punt lists are keyed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Af {
    Ip4,
    Ip6,
}

impl Af {
    /// The family of an address.
    pub fn of(ip: &IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Af::Ip4,
            IpAddr::V6(_) => Af::Ip6,
        }
    }
    /// From a binary-API message's `is_ip6` flag.
    pub fn from_is_ip6(is_ip6: bool) -> Self {
        if is_ip6 {
            Af::Ip6
        } else {
            Af::Ip4
        }
    }
    pub fn is_ip6(self) -> bool {
        self == Af::Ip6
    }
    /// 32 or 128: the longest prefix.
    pub fn max_len(self) -> u8 {
        match self {
            Af::Ip4 => 32,
            Af::Ip6 => 128,
        }
    }
    /// 0 or 1, for per-family arrays.
    pub fn index(self) -> usize {
        self as usize
    }
    /// "ipv4" or "ipv6", as VPP names a family's default table ("ipv4-VRF:0").
    pub fn name(self) -> &'static str {
        match self {
            Af::Ip4 => "ipv4",
            Af::Ip6 => "ipv6",
        }
    }
}

/// A prefix in either family, host-order address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Prefix {
    V4(u32, u8),
    V6(u128, u8),
}

impl Prefix {
    pub fn af(&self) -> Af {
        match self {
            Prefix::V4(..) => Af::Ip4,
            Prefix::V6(..) => Af::Ip6,
        }
    }
    pub fn is_ip6(&self) -> bool {
        self.af().is_ip6()
    }
    pub fn prefix_len(&self) -> u8 {
        match *self {
            Prefix::V4(_, l) | Prefix::V6(_, l) => l,
        }
    }
    /// 32 or 128.
    pub fn max_len(&self) -> u8 {
        self.af().max_len()
    }
    /// The address alone, as a host prefix.
    pub fn host(self) -> Self {
        match self {
            Prefix::V4(a, _) => Prefix::V4(a, 32),
            Prefix::V6(a, _) => Prefix::V6(a, 128),
        }
    }
    /// An address as a host prefix (/32 or /128).
    pub fn host_of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Prefix::V4(u32::from(a), 32),
            IpAddr::V6(a) => Prefix::V6(u128::from(a), 128),
        }
    }
    /// The prefix with host bits cleared.
    pub fn masked(self) -> Self {
        match self {
            Prefix::V4(a, l) => Prefix::V4(a & mask4(l), l),
            Prefix::V6(a, l) => Prefix::V6(a & mask6(l), l),
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        let (a, l) = s.split_once('/').unwrap_or((s, ""));
        match a.parse::<IpAddr>().ok()? {
            IpAddr::V4(a) => {
                let l = if l.is_empty() { 32 } else { l.parse().ok()? };
                (l <= 32).then(|| Prefix::V4(u32::from(a), l))
            }
            IpAddr::V6(a) => {
                let l = if l.is_empty() { 128 } else { l.parse().ok()? };
                (l <= 128).then(|| Prefix::V6(u128::from(a), l))
            }
        }
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Prefix::V4(a, l) => write!(f, "{}/{l}", wire::fmt_ip4(a)),
            Prefix::V6(a, l) => write!(f, "{}/{l}", wire::fmt_ip6(a)),
        }
    }
}

pub fn mask4(l: u8) -> u32 {
    if l == 0 {
        0
    } else {
        u32::MAX << (32 - l.min(32))
    }
}
pub fn mask6(l: u8) -> u128 {
    if l == 0 {
        0
    } else {
        u128::MAX << (128 - l.min(128))
    }
}
