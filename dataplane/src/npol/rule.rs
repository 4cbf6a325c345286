//! Rules: an action, up to three filters and a list of match entries, matched as VPP's npol
//! plugin matches them (`npol_match.c`), except that the ICMP filters read the packet's real
//! ICMP type and code.
//!
//! A rule matches a packet iff
//! - every filter matches (an ICMP type/code filter never matches a non-ICMP packet, whatever
//!   `should_match` says);
//! - for each of src and dst: if the rule has positive CIDR entries, one contains the address;
//!   if it has positive IP_SET entries, one contains the address; no negated CIDR or IP_SET
//!   entry contains it;
//! - for each of src and dst: if the rule has positive PORT_RANGE or PORT_IP_SET entries, the
//!   port is in one of the ranges or (address, protocol, port) is in one of the sets (the two
//!   kinds are OR-ed); no negated range contains the port and no negated set holds the triple.

use super::ipset::IpSets;
use super::{FiveTuple, Net};

use std::net::IpAddr;

/// `npol_rule_action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
    /// Matches, but decides nothing: the policy's walk stops there and the next policy runs.
    Log,
    /// Skip the remaining policies and go to the profiles.
    Pass,
}

impl Action {
    pub fn from_api(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Allow),
            1 => Some(Self::Deny),
            2 => Some(Self::Log),
            3 => Some(Self::Pass),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Log => "log",
            Self::Pass => "pass",
        }
    }
}

/// What a filter looks at (`npol_rule_filter_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterKind {
    None,
    IcmpType,
    IcmpCode,
    L4Proto,
}

impl FilterKind {
    pub fn from_api(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::None),
            1 => Some(Self::IcmpType),
            2 => Some(Self::IcmpCode),
            3 => Some(Self::L4Proto),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Filter {
    pub kind: FilterKind,
    pub value: u32,
    /// true: the packet's property must equal `value`; false: it must differ.
    pub should_match: bool,
}

impl Filter {
    #[inline]
    fn matches(&self, p: &FiveTuple) -> bool {
        let got = match self.kind {
            FilterKind::None => return true,
            FilterKind::L4Proto => p.proto as u32,
            FilterKind::IcmpType | FilterKind::IcmpCode if !p.is_icmp() => return false,
            FilterKind::IcmpType => p.icmp_type as u32,
            FilterKind::IcmpCode => p.icmp_code as u32,
        };
        (got == self.value) == self.should_match
    }
}

/// What an entry matches (`npol_entry_type` and its data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchData {
    Cidr(Net),
    /// Inclusive port range.
    PortRange(u16, u16),
    /// An `IpAndPort` ipset's id.
    PortIpSet(u32),
    /// An `Ip` or `Net` ipset's id.
    IpSet(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub is_src: bool,
    pub is_not: bool,
    pub data: MatchData,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub action: Action,
    pub filters: Vec<Filter>,
    pub entries: Vec<Entry>,
}

impl Rule {
    /// The ipsets this rule names.
    pub fn ipsets(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries.iter().filter_map(|e| match e.data {
            MatchData::PortIpSet(s) | MatchData::IpSet(s) => Some(s),
            _ => None,
        })
    }

    /// Does the rule match `p`? `sets` holds every ipset the rule names (checked when the
    /// rule was accepted; a missing one matches nothing).
    pub fn matches(&self, sets: &IpSets, p: &FiveTuple) -> bool {
        self.filters.iter().all(|f| f.matches(p))
            && self.side_matches(sets, p, true)
            && self.side_matches(sets, p, false)
    }

    fn side_matches(&self, sets: &IpSets, p: &FiveTuple, src: bool) -> bool {
        let (addr, port) = if src {
            (p.src, p.sport)
        } else {
            (p.dst, p.dport)
        };
        let in_set = |id: u32| sets.get(&id).is_some_and(|s| s.contains_ip(addr));
        let in_tuple_set = |id: u32| {
            sets.get(&id)
                .is_some_and(|s| s.contains_tuple(addr, p.proto, port))
        };
        // One pass: for each positive category, whether it exists and whether one matched.
        let (mut cidr, mut cidr_hit) = (false, false);
        let (mut set, mut set_hit) = (false, false);
        let (mut ports, mut port_hit) = (false, false);
        for e in self.entries.iter().filter(|e| e.is_src == src) {
            let hit = match e.data {
                MatchData::Cidr(n) => n.contains(addr),
                MatchData::PortRange(lo, hi) => lo <= port && port <= hi,
                MatchData::PortIpSet(id) => in_tuple_set(id),
                MatchData::IpSet(id) => in_set(id),
            };
            if e.is_not {
                if hit {
                    return false;
                }
                continue;
            }
            match e.data {
                MatchData::Cidr(_) => (cidr, cidr_hit) = (true, cidr_hit || hit),
                MatchData::IpSet(_) => (set, set_hit) = (true, set_hit || hit),
                MatchData::PortRange(..) | MatchData::PortIpSet(_) => {
                    (ports, port_hit) = (true, port_hit || hit)
                }
            }
        }
        (!cidr || cidr_hit) && (!set || set_hit) && (!ports || port_hit)
    }
}

/// For a rule's address-family check: a CIDR of the other family never contains `a`.
impl Net {
    #[inline]
    pub fn contains(&self, a: IpAddr) -> bool {
        match (self.addr, a) {
            (IpAddr::V4(n), IpAddr::V4(x)) => {
                let m = mask32(self.len);
                u32::from(x) & m == u32::from(n) & m
            }
            (IpAddr::V6(n), IpAddr::V6(x)) => {
                let m = mask128(self.len);
                u128::from(x) & m == u128::from(n) & m
            }
            _ => false,
        }
    }
}

#[inline]
pub(super) fn mask32(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len.min(32) as u32)
    }
}

#[inline]
pub(super) fn mask128(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len.min(128) as u32)
    }
}
