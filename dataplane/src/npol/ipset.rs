//! Ipsets: sets of addresses, networks, or (address, protocol, port) triples that rules
//! match against (`NPOL_IP_SET`, `NPOL_PORT_IP_SET`).

use super::Net;
use ahash::AHashSet;
use std::net::IpAddr;

/// What an ipset holds (`npol_ipset_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpSetKind {
    Ip,
    IpAndPort,
    Net,
}

impl IpSetKind {
    pub fn from_api(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Ip),
            1 => Some(Self::IpAndPort),
            2 => Some(Self::Net),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::IpAndPort => "ip-and-port",
            Self::Net => "net",
        }
    }
}

/// One member, of the kind of its set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Member {
    Ip(IpAddr),
    Net(Net),
    /// (address, L4 protocol, port).
    Tuple(IpAddr, u8, u16),
}

impl Member {
    pub fn kind(&self) -> IpSetKind {
        match self {
            Member::Ip(_) => IpSetKind::Ip,
            Member::Net(_) => IpSetKind::Net,
            Member::Tuple(..) => IpSetKind::IpAndPort,
        }
    }
}

/// Every ipset by id. Each is shared between table versions and copied only when an edit
/// changes it, so an edit elsewhere does not copy a 100k-member set.
pub type IpSets = std::collections::BTreeMap<u32, std::sync::Arc<IpSet>>;

#[derive(Clone, Debug)]
pub struct IpSet {
    pub kind: IpSetKind,
    ips: AHashSet<IpAddr>,
    tuples: AHashSet<(IpAddr, u8, u16)>,
    /// Networks, scanned in order (npol scans its members the same way).
    nets: Vec<Net>,
}

impl IpSet {
    pub fn new(kind: IpSetKind) -> Self {
        Self {
            kind,
            ips: AHashSet::new(),
            tuples: AHashSet::new(),
            nets: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.ips.len() + self.tuples.len() + self.nets.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains_member(&self, m: &Member) -> bool {
        match m {
            Member::Ip(a) => self.ips.contains(a),
            Member::Net(n) => self.nets.contains(n),
            Member::Tuple(a, p, port) => self.tuples.contains(&(*a, *p, *port)),
        }
    }

    /// Add `m` (already there: nothing changes). The caller checked its kind.
    pub(super) fn insert(&mut self, m: Member) {
        match m {
            Member::Ip(a) => {
                self.ips.insert(a);
            }
            Member::Net(n) => {
                if !self.nets.contains(&n) {
                    self.nets.push(n);
                }
            }
            Member::Tuple(a, p, port) => {
                self.tuples.insert((a, p, port));
            }
        }
    }

    pub(super) fn remove(&mut self, m: &Member) {
        match m {
            Member::Ip(a) => {
                self.ips.remove(a);
            }
            Member::Net(n) => self.nets.retain(|x| x != n),
            Member::Tuple(a, p, port) => {
                self.tuples.remove(&(*a, *p, *port));
            }
        }
    }

    /// An `IP_SET` match: `addr` is one of the addresses, or in one of the networks.
    #[inline]
    pub fn contains_ip(&self, addr: IpAddr) -> bool {
        match self.kind {
            IpSetKind::Ip => self.ips.contains(&addr),
            IpSetKind::Net => self.nets.iter().any(|n| n.contains(addr)),
            IpSetKind::IpAndPort => false,
        }
    }

    /// A `PORT_IP_SET` match: (address, protocol, port) is a member.
    #[inline]
    pub fn contains_tuple(&self, addr: IpAddr, proto: u8, port: u16) -> bool {
        self.kind == IpSetKind::IpAndPort && self.tuples.contains(&(addr, proto, port))
    }

    /// Every member, sorted (for `show npol ipsets`).
    pub fn members(&self) -> Vec<Member> {
        let mut v: Vec<Member> = self
            .ips
            .iter()
            .map(|a| Member::Ip(*a))
            .chain(self.nets.iter().map(|n| Member::Net(*n)))
            .chain(
                self.tuples
                    .iter()
                    .map(|&(a, p, port)| Member::Tuple(a, p, port)),
            )
            .collect();
        v.sort();
        v
    }
}
