//! SRv6 (VPP's `sr` plugin as calico-vpp programs it): SR policies that encapsulate (H.Encaps,
//! H.Encaps.Red) the packets of prefixes steered into them, and localsids (End, End.X,
//! End.DT4, End.DT6, End.DX4, End.DX6, PSP where flagged).
//!
//! How packets get here: the control service installs a route whose path is
//! `PathKind::SrPolicy(i)` (a steered prefix, or the policy's BSID /128) or
//! `PathKind::SrLocalsid(i)` (a SID /128); its adjacency (`AdjKind::SrPolicy`/`SrLocalsid`,
//! `lookup_fib` = i) sends ip4-/ip6-lookup straight to `sr-pl-rewrite-encaps[-v4]` or
//! `sr-localsid`, which read entry i of the one [`Table`]. The table is published whole
//! (`rcu::Published`) before any route names a new entry, so a worker never sees an index it
//! cannot resolve; an index that went away meanwhile is a counted drop.
//!
//! Each SID list carries its outer header prebuilt (IPv6 + SRH), so encapsulating is one copy
//! and three fixups. The SID lists of a policy are chosen per flow from weighted buckets.

pub mod encap;
pub mod localsid;

use crate::rcu::Published;
use crate::wire::srh::{self, MAX_SEGMENTS, SRH_MAX};
use crate::wire::{Ip6HdrMut, IP6_HDR};
use std::net::IpAddr;

/// Outer hop limit (VPP's `sr_encaps_hop_limit` default).
pub const ENCAP_HOP_LIMIT: u8 = 64;
/// The longest outer header a SID list prepends.
pub const REWRITE_MAX: usize = IP6_HDR + SRH_MAX;
/// Buckets a policy's weighted choice uses at most.
pub const MAX_BUCKETS: usize = 64;

/// A localsid's behaviour (VPP's `sr_behavior` numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Behavior {
    End,
    X,
    DX6,
    DX4,
    DT6,
    DT4,
}

impl Behavior {
    /// VPP's API value.
    pub fn api(self) -> u8 {
        match self {
            Behavior::End => 1,
            Behavior::X => 2,
            Behavior::DX6 => 6,
            Behavior::DX4 => 7,
            Behavior::DT6 => 8,
            Behavior::DT4 => 9,
        }
    }
    pub fn from_api(v: u8) -> Option<Self> {
        Some(match v {
            1 => Behavior::End,
            2 => Behavior::X,
            6 => Behavior::DX6,
            7 => Behavior::DX4,
            8 => Behavior::DT6,
            9 => Behavior::DT4,
            _ => return None,
        })
    }
    /// VPP's CLI name (`show sr localsids`, `sr localsid ... behavior <name>`).
    pub fn name(self) -> &'static str {
        match self {
            Behavior::End => "end",
            Behavior::X => "end.x",
            Behavior::DX6 => "end.dx6",
            Behavior::DX4 => "end.dx4",
            Behavior::DT6 => "end.dt6",
            Behavior::DT4 => "end.dt4",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            Behavior::End,
            Behavior::X,
            Behavior::DX6,
            Behavior::DX4,
            Behavior::DT6,
            Behavior::DT4,
        ]
        .into_iter()
        .find(|b| b.name().eq_ignore_ascii_case(s))
    }
    /// Cross-connects to a next hop (End.X, End.DX4, End.DX6).
    pub fn xconnect(self) -> bool {
        matches!(self, Behavior::X | Behavior::DX4 | Behavior::DX6)
    }
}

/// One SID list of a policy, with the outer header it prepends.
#[derive(Clone, Debug)]
pub struct SidList {
    /// VPP's segment-list index (unique over all policies; `sr_policy_mod`'s `sl_index`).
    pub index: u32,
    pub weight: u32,
    /// In the order the packet visits them.
    pub sids: Vec<u128>,
    rewrite: [u8; REWRITE_MAX],
    rewrite_len: u16,
    /// Where the next-header byte for the payload is (6: no SRH; 40: the SRH's).
    next_header_at: u8,
}

impl SidList {
    /// The SID list `sids` (1..=16) encapsulated from `source`; `reduced`: H.Encaps.Red (the
    /// first SID only in the destination). None for an empty or too long list.
    pub fn new(
        index: u32,
        weight: u32,
        sids: Vec<u128>,
        source: u128,
        reduced: bool,
    ) -> Option<Self> {
        if sids.is_empty() || sids.len() > MAX_SEGMENTS {
            return None;
        }
        let mut rewrite = [0u8; REWRITE_MAX];
        // As VPP: one SID needs no SRH; the reduced form leaves the first SID out of it.
        let in_srh: &[u128] = if sids.len() == 1 {
            &[]
        } else if reduced {
            &sids[1..]
        } else {
            &sids
        };
        let srh_len = if in_srh.is_empty() {
            0
        } else {
            srh::emit(&mut rewrite[IP6_HDR..], 0, in_srh, (sids.len() - 1) as u8)?
        };
        let next = if srh_len == 0 {
            0
        } else {
            crate::wire::tunnel::IP_PROTO_ROUTING
        };
        Ip6HdrMut::new(&mut rewrite)?.init(source, sids[0], next, ENCAP_HOP_LIMIT, srh_len as u16);
        Some(Self {
            index,
            weight,
            sids,
            rewrite,
            rewrite_len: (IP6_HDR + srh_len) as u16,
            next_header_at: if srh_len == 0 { 6 } else { IP6_HDR as u8 },
        })
    }

    /// The outer header (its payload length counts the SRH only).
    #[inline(always)]
    pub fn rewrite(&self) -> &[u8] {
        &self.rewrite[..self.rewrite_len as usize]
    }
}

/// An SR policy.
#[derive(Clone, Debug)]
pub struct Policy {
    pub bsid: u128,
    pub is_encap: bool,
    pub is_spray: bool,
    /// H.Encaps.Red (rvpp's CLI `encap.red`; the API's policies are VPP's H.Encaps).
    pub reduced: bool,
    /// The table id the BSID is installed in (~0 given: 0).
    pub fib_table: u32,
    /// Where the outer packet is looked up.
    pub encap_fib: u32,
    pub sid_lists: Vec<SidList>,
    /// Positions in `sid_lists`, each repeated by its weight (scaled to MAX_BUCKETS).
    buckets: Vec<u8>,
}

impl Policy {
    pub fn new(bsid: u128, is_encap: bool, is_spray: bool, fib_table: u32, encap_fib: u32) -> Self {
        Self {
            bsid,
            is_encap,
            is_spray,
            reduced: false,
            fib_table,
            encap_fib,
            sid_lists: Vec::new(),
            buckets: Vec::new(),
        }
    }

    /// Rebuild the weighted buckets after the lists changed.
    pub fn rebalance(&mut self) {
        self.buckets.clear();
        let total: u64 = self.sid_lists.iter().map(|l| l.weight.max(1) as u64).sum();
        for (i, l) in self.sid_lists.iter().enumerate().take(MAX_BUCKETS) {
            let w = l.weight.max(1) as u64;
            let n = if total <= MAX_BUCKETS as u64 {
                w
            } else {
                (w * MAX_BUCKETS as u64 / total).max(1)
            };
            self.buckets
                .extend(std::iter::repeat_n(i as u8, n as usize));
        }
    }

    /// Rebuild every list's header from `source` (the encap source changed).
    pub fn rebuild(&mut self, source: u128) {
        for l in &mut self.sid_lists {
            if let Some(n) = SidList::new(l.index, l.weight, l.sids.clone(), source, self.reduced) {
                *l = n;
            }
        }
    }

    /// The list a flow with hash `h` takes.
    #[inline(always)]
    pub fn pick(&self, h: u32) -> Option<&SidList> {
        let n = self.buckets.len();
        if n <= 1 {
            return self.sid_lists.first();
        }
        let i = *self.buckets.get(h as usize % n)? as usize;
        self.sid_lists.get(i)
    }
}

/// A localsid.
#[derive(Clone, Debug)]
pub struct Localsid {
    pub sid: u128,
    pub behavior: Behavior,
    pub end_psp: bool,
    /// The table id its /128 is installed in.
    pub fib_table: u32,
    /// End.DT4 / End.DT6: the table the inner packet is looked up in (id, and its FIB index).
    pub decap_table: u32,
    pub decap_fib: u32,
    /// End.X / End.DX4 / End.DX6: the next hop, its interface and the adjacency to it.
    pub nh: Option<IpAddr>,
    pub sw_if_index: u32,
    pub adj: u32,
}

impl Localsid {
    /// An End.DT4 / End.DT6 localsid (`behavior`) whose /128 is in table 0 and whose inner
    /// packets are looked up in table `decap_table` (FIB index `decap_fib`).
    pub fn dt(sid: u128, behavior: Behavior, decap_table: u32, decap_fib: u32) -> Self {
        Self {
            sid,
            behavior,
            end_psp: false,
            fib_table: 0,
            decap_table,
            decap_fib,
            nh: None,
            sw_if_index: u32::MAX,
            adj: 0,
        }
    }
}

/// Everything the SRv6 nodes read, published whole.
#[derive(Clone, Debug, Default)]
pub struct Srv6 {
    pub encap_source: u128,
    pub policies: Vec<Option<Policy>>,
    pub localsids: Vec<Option<Localsid>>,
}

impl Srv6 {
    #[inline(always)]
    pub fn policy(&self, i: u32) -> Option<&Policy> {
        self.policies.get(i as usize).and_then(|p| p.as_ref())
    }
    #[inline(always)]
    pub fn localsid(&self, i: u32) -> Option<&Localsid> {
        self.localsids.get(i as usize).and_then(|l| l.as_ref())
    }
}

pub type Table = Published<Srv6>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_share_the_buckets() {
        let mut p = Policy::new(1, true, false, 0, 0);
        for (i, w) in [(0, 1), (1, 3)] {
            p.sid_lists
                .push(SidList::new(i, w, vec![10 + i as u128], 5, false).unwrap());
        }
        p.rebalance();
        let picks: Vec<u32> = (0..4).map(|h| p.pick(h).unwrap().index).collect();
        assert_eq!(picks, [0, 1, 1, 1]);
        p.sid_lists[0].weight = 1000;
        p.rebalance();
        assert!(p.buckets.len() <= MAX_BUCKETS && p.buckets.contains(&1));
    }

    #[test]
    fn one_sid_has_no_srh_and_reduced_leaves_the_first_out() {
        let l = SidList::new(0, 1, vec![7], 5, false).unwrap();
        assert_eq!(l.rewrite().len(), 40);
        assert_eq!(l.rewrite()[6], 0, "next header filled per packet");
        let full = SidList::new(0, 1, vec![7, 8, 9], 5, false).unwrap();
        assert_eq!(full.rewrite().len(), 40 + 8 + 48);
        let red = SidList::new(0, 1, vec![7, 8, 9], 5, true).unwrap();
        assert_eq!(red.rewrite().len(), 40 + 8 + 32);
        let s = srh::Srh::parse(&red.rewrite()[40..]).unwrap();
        assert_eq!((s.segments_left(), s.last_entry()), (2, 1));
        assert_eq!((s.segment(0), s.segment(1)), (Some(9), Some(8)));
        assert!(SidList::new(0, 1, vec![], 5, false).is_none());
        assert!(SidList::new(0, 1, vec![1; 17], 5, false).is_none());
    }
}
