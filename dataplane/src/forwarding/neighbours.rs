//! Neighbours (ARP/ND entries): static, learned by workers, and the host routes they own.

use super::adjacencies::nh_bits;
use super::{fib_of, AdjKey, Af, Forwarding, FwdError, Path, Prefix, Source};
use crate::tables::{AdjKind, Learned};
use crate::wire::Mac;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A neighbour entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Neighbor {
    pub sw_if_index: u32,
    pub ip: IpAddr,
    pub mac: Mac,
    pub is_static: bool,
}

/// `ip_neighbor_config` for one family: how many learned entries it keeps, when they age.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighborConfig {
    /// Learned entries at most; a new one past it is refused, or with `recycle` replaces the
    /// least recently confirmed.
    pub max_number: u32,
    /// Seconds after which a learned entry not confirmed since is probed (0: never).
    pub max_age: u32,
    pub recycle: bool,
}

impl Default for NeighborConfig {
    /// VPP's defaults.
    fn default() -> Self {
        Self {
            max_number: 50_000,
            max_age: 0,
            recycle: false,
        }
    }
}

/// How long a probed entry has to answer before it is removed.
pub const PROBE_WAIT: Duration = Duration::from_secs(3);

/// How often [`Forwarding::neighbor_age`] looks at the learned entries.
const AGE_SWEEP: Duration = Duration::from_secs(1);

/// When a learned entry was last confirmed, and whether it has been probed since.
#[derive(Clone, Copy, Debug)]
pub(super) struct Seen {
    at: Instant,
    probed: Option<Instant>,
}

/// A learned entry that has reached its age: ask it again (unicast ARP request or NS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub sw_if_index: u32,
    pub ip: IpAddr,
    pub mac: Mac,
}

/// What the learned-entry bookkeeping did, for `show ip neighbor-config`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NeighborCounts {
    /// New learned entries refused at the limit.
    pub refused: u64,
    /// Entries removed to make room (recycle).
    pub recycled: u64,
    pub probes: u64,
    /// Entries removed after a probe went unanswered.
    pub aged: u64,
}

impl Forwarding {
    pub fn neighbor_config(&self, af: Af) -> NeighborConfig {
        self.neighbor_cfg[af as usize]
    }

    pub fn set_neighbor_config(&mut self, af: Af, c: NeighborConfig) {
        self.neighbor_cfg[af as usize] = c;
    }

    pub fn neighbor_counts(&self) -> NeighborCounts {
        self.neighbor_counts
    }

    /// The learned entries of `ip`'s family.
    fn seen_of(&mut self, ip: &IpAddr) -> &mut BTreeMap<(u32, IpAddr), Seen> {
        &mut self.neighbor_seen[Af::of(ip) as usize]
    }

    /// The learned entry of `af` confirmed longest ago.
    fn oldest_learned(&self, af: Af) -> Option<(u32, IpAddr)> {
        self.neighbor_seen[af as usize]
            .iter()
            .min_by_key(|(_, s)| s.at)
            .map(|(k, _)| *k)
    }

    /// Learned entries at their age get a probe; probed ones that stayed silent for
    /// [`PROBE_WAIT`] go. Returns the probes to send. Sweeps at most once a second (ages are
    /// in seconds), however often it is called.
    pub fn neighbor_age(&mut self, now: Instant) -> Vec<Probe> {
        let mut probes = Vec::new();
        if self.neighbor_sweep.is_some_and(|t| now < t) {
            return probes;
        }
        self.neighbor_sweep = Some(now + AGE_SWEEP);
        let mut gone = Vec::new();
        for (seen, cfg) in self.neighbor_seen.iter_mut().zip(self.neighbor_cfg) {
            if cfg.max_age == 0 {
                continue;
            }
            let age = Duration::from_secs(cfg.max_age as u64);
            for (k, s) in seen.iter_mut() {
                if now.saturating_duration_since(s.at) < age {
                    continue;
                }
                match s.probed {
                    None => {
                        s.probed = Some(now);
                        if let Some(n) = self.neighbors.get(k) {
                            probes.push(Probe {
                                sw_if_index: k.0,
                                ip: k.1,
                                mac: n.mac,
                            });
                        }
                    }
                    Some(t) if now.saturating_duration_since(t) >= PROBE_WAIT => gone.push(*k),
                    Some(_) => {}
                }
            }
        }
        self.neighbor_counts.probes += probes.len() as u64;
        self.neighbor_counts.aged += gone.len() as u64;
        for (sw, ip) in gone {
            let _ = self.neighbor_del(sw, ip);
        }
        probes
    }

    pub fn neighbor_add(
        &mut self,
        sw: u32,
        ip: IpAddr,
        mac: Mac,
        is_static: bool,
    ) -> Result<(), FwdError> {
        let i = self.iface(sw)?.clone();
        if let Some(n) = self.neighbors.get(&(sw, ip)) {
            if n.mac == mac && (n.is_static || !is_static) {
                return Ok(());
            }
        }
        if is_static {
            self.seen_of(&ip).remove(&(sw, ip));
        } else {
            let seen = Seen {
                at: Instant::now(),
                probed: None,
            };
            self.seen_of(&ip).insert((sw, ip), seen);
        }
        self.neighbors.insert(
            (sw, ip),
            Neighbor {
                sw_if_index: sw,
                ip,
                mac,
                is_static,
            },
        );
        let (nhv, af) = (nh_bits(ip), Af::of(&ip));
        // Complete (or update) the adjacency in place: every route through it follows.
        let ai = self.neighbor_adj(sw, ip);
        if i.l2 {
            let (rewrite, rewrite_len, tx) = self.l2_rewrite(sw, mac, af);
            let a = &mut self.fwd.adjs[ai as usize];
            a.kind = AdjKind::Rewrite;
            a.rewrite = rewrite;
            a.rewrite_len = rewrite_len;
            a.sw_if_index = tx;
            a.next_hop = nhv;
            self.fwd_dirty = true;
        }
        // The host route (under any other source's route for it, which then forwards), unless
        // a neighbour of this address on another interface of the table gave it first.
        let (t, host) = (self.table_id_of(af, fib_of(&i, af)), Prefix::host_of(ip));
        let given = self.route_get(t, host);
        if given.is_none_or(|r| r.paths_of(Source::AdjFib).is_none()) {
            self.route_set(t, host, vec![Path::via(ip, Some(sw))], Source::AdjFib)?;
        }
        self.publish();
        Ok(())
    }

    pub fn neighbor_del(&mut self, sw: u32, ip: IpAddr) -> Result<(), FwdError> {
        self.neighbors
            .remove(&(sw, ip))
            .ok_or(FwdError::NoSuchEntry)?;
        self.seen_of(&ip).remove(&(sw, ip));
        let (nh, af) = (nh_bits(ip), Af::of(&ip));
        if let Some(&ai) = self.adj_index.get(&AdjKey::Neighbor { sw, nh, af }) {
            let a = &mut self.fwd.adjs[ai as usize];
            a.kind = AdjKind::Incomplete;
            a.rewrite_len = 0;
            a.sw_if_index = sw;
            self.fwd_dirty = true;
        }
        if let Ok(i) = self.iface(sw).cloned() {
            let (t, host) = (self.table_id_of(af, fib_of(&i, af)), Prefix::host_of(ip));
            let ours = self.route_get(t, host).is_some_and(|r| {
                r.paths_of(Source::AdjFib)
                    .is_some_and(|ps| ps.iter().any(|x| x.sw_if_index == Some(sw)))
            });
            if ours {
                let _ = self.route_del_source(t, host, Source::AdjFib);
            }
        }
        self.publish();
        Ok(())
    }

    pub fn neighbors(&self) -> Vec<Neighbor> {
        self.neighbors.values().copied().collect()
    }

    /// Apply what workers learned (ARP/ND). Returns how many entries changed.
    pub fn apply_learned(&mut self) -> usize {
        self.apply_learned_at(Instant::now())
    }

    /// [`Self::apply_learned`] at `now`: a known sender is confirmed (its age starts again),
    /// a new one is added within the family's limit.
    pub fn apply_learned_at(&mut self, now: Instant) -> usize {
        let mut n = 0;
        while let Some(ev) = self.shared.learned.pop() {
            let (sw, ip, mac) = match ev {
                Learned::Ip4Neighbor {
                    sw_if_index,
                    ip,
                    mac,
                } => (sw_if_index, IpAddr::from(std::net::Ipv4Addr::from(ip)), mac),
                Learned::Ip6Neighbor {
                    sw_if_index,
                    ip,
                    mac,
                } => (sw_if_index, IpAddr::from(std::net::Ipv6Addr::from(ip)), mac),
            };
            let known = self.neighbors.get(&(sw, ip)).copied();
            if known.is_some_and(|e| e.is_static) {
                continue;
            }
            if known.is_some_and(|e| e.mac == mac) {
                if let Some(s) = self.seen_of(&ip).get_mut(&(sw, ip)) {
                    *s = Seen {
                        at: now,
                        probed: None,
                    };
                }
                continue;
            }
            let af = Af::of(&ip);
            let cfg = self.neighbor_cfg[af as usize];
            if known.is_none() && self.seen_of(&ip).len() >= cfg.max_number as usize {
                match self.oldest_learned(af).filter(|_| cfg.recycle) {
                    Some((osw, oip)) => {
                        let _ = self.neighbor_del(osw, oip);
                        self.neighbor_counts.recycled += 1;
                    }
                    None => {
                        self.neighbor_counts.refused += 1;
                        continue;
                    }
                }
            }
            if self.neighbor_add(sw, ip, mac, false).is_ok() {
                if let Some(s) = self.seen_of(&ip).get_mut(&(sw, ip)) {
                    s.at = now;
                }
                n += 1;
            }
        }
        n
    }
}

impl Forwarding {
    /// The frame that probes `p`: a unicast ARP request or neighbor solicitation to its MAC,
    /// from the interface's address, and the interface it leaves by. None: the interface has
    /// no address to ask from (the entry then simply ages out).
    pub fn probe_frame(&self, p: &Probe) -> Option<(u32, Vec<u8>)> {
        use crate::nodes::ip6::{icmp6, link_local_from_mac};
        let af = Af::of(&p.ip);
        let i = self.ifs.get(p.sw_if_index)?;
        if !i.l2 {
            return None;
        }
        let (rw, len, tx) = self.l2_rewrite(p.sw_if_index, p.mac, af);
        let mut f = rw[..len as usize].to_vec();
        match p.ip {
            IpAddr::V4(ip) => {
                let src = self.ifs.ip4_source(p.sw_if_index)?;
                let n = f.len();
                f[n - 2..].copy_from_slice(&crate::wire::ETHERTYPE_ARP.to_be_bytes());
                f.resize(n + crate::wire::ARP_PKT, 0);
                let mut arp = crate::wire::ArpPkt::new(&mut f[n..])?;
                arp.fill(crate::wire::ARP_OP_REQUEST, &i.mac, src, &[0; 6], ip.into());
            }
            IpAddr::V6(ip) => {
                let src = self
                    .ifs
                    .ip6_source(p.sw_if_index)
                    .unwrap_or_else(|| link_local_from_mac(&i.mac));
                let n = f.len();
                f.resize(
                    n + crate::wire::IP6_HDR + icmp6::ND_LEN + icmp6::LL_OPT_LEN,
                    0,
                );
                let ip = u128::from(ip);
                crate::nodes::ip6::write_nd(
                    &mut f[n..],
                    src,
                    ip,
                    icmp6::NEIGHBOR_SOLICIT,
                    0,
                    ip,
                    icmp6::OPT_SOURCE_LL,
                    &i.mac,
                );
            }
        }
        Some((tx, f))
    }
}
