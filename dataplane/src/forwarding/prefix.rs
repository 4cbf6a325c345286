//! Prefixes of either family.

use crate::wire;
use std::net::IpAddr;

/// A prefix in either family, host-order address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Prefix {
    V4(u32, u8),
    V6(u128, u8),
}

impl Prefix {
    pub fn is_ip6(&self) -> bool {
        matches!(self, Prefix::V6(..))
    }
    pub fn prefix_len(&self) -> u8 {
        match *self {
            Prefix::V4(_, l) | Prefix::V6(_, l) => l,
        }
    }
    /// 32 or 128.
    pub fn max_len(&self) -> u8 {
        if self.is_ip6() {
            128
        } else {
            32
        }
    }
    /// The address alone, as a host prefix.
    pub fn host(self) -> Self {
        match self {
            Prefix::V4(a, _) => Prefix::V4(a, 32),
            Prefix::V6(a, _) => Prefix::V6(a, 128),
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
