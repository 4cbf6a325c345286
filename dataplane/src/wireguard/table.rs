//! What the workers read: wg interfaces, peers with their allowed IPs and keypairs, and the
//! keypairs by our receiver index. Published whole by the engine (a handshake, a peer or an
//! interface change); what changes per packet lives in atomics behind `Arc`s.

use super::noise::Key;
use super::session::Keypair;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

type Map<K, V> = HashMap<K, V, ahash::RandomState>;

/// A wg interface as the data path needs it.
#[derive(Clone, Debug)]
pub struct WgIf {
    pub sw_if_index: u32,
    pub instance: u32,
    pub port: u16,
    pub src: IpAddr,
    pub public: Key,
    /// HASH("mac1----" || our public key): handshake messages to us carry MAC1 under it.
    pub mac1_key: Key,
}

/// Per-peer facts workers write and the engine's timers read.
#[derive(Default, Debug)]
pub struct PeerActivity {
    pub last_sent_ms: AtomicU64,
    /// Last authenticated packet of any kind (keepalives too).
    pub last_recv_ms: AtomicU64,
    /// Last received data packet that was not a keepalive.
    pub last_recv_data_ms: AtomicU64,
    pub last_sent_data_ms: AtomicU64,
    /// A handshake request is queued for the engine (at most one at a time).
    pub handshake_wanted: AtomicBool,
    /// A new endpoint is queued for the engine.
    pub roam_reported: AtomicBool,
    pub rx_bytes: AtomicU64,
    pub tx_bytes: AtomicU64,
}

impl PeerActivity {
    pub fn load(a: &AtomicU64) -> u64 {
        a.load(Ordering::Relaxed)
    }
}

/// A peer of a wg interface.
#[derive(Clone, Debug)]
pub struct Peer {
    pub index: u32,
    pub sw_if_index: u32,
    pub public: Key,
    pub endpoint: IpAddr,
    pub port: u16,
    pub table_id: u32,
    /// FIB the outer packets are looked up in (the table of `table_id`).
    pub encap_fib: u32,
    pub persistent_keepalive: u16,
    pub allowed: Vec<(IpAddr, u8)>,
    pub activity: Arc<PeerActivity>,
    /// The newest keypair, and the one before it (still received on during a rekey).
    pub current: Option<Arc<Keypair>>,
    pub previous: Option<Arc<Keypair>>,
}

impl Peer {
    /// The keypair to send on: the newest once confirmed, else the one before.
    #[inline(always)]
    pub fn send_keypair(&self, now_ms: u64) -> Option<&Arc<Keypair>> {
        [self.current.as_ref(), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|k| k.confirmed.load(Ordering::Relaxed) && !k.expired(now_ms))
    }
}

impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keypair({} -> {})", self.local_index, self.remote_index)
    }
}

/// (interface, is IPv6, prefix length, masked address) -> peer index.
type AllowedKey = (u32, bool, u8, u128);

fn bits(a: IpAddr) -> (u128, bool) {
    match a {
        IpAddr::V4(v) => (u32::from(v) as u128, false),
        IpAddr::V6(v) => (u128::from(v), true),
    }
}

fn masked(a: u128, v6: bool, len: u8) -> u128 {
    let width = if v6 { 128 } else { 32 };
    if len == 0 {
        0
    } else {
        a & (u128::MAX << (width - len as u32)) & (u128::MAX >> (128 - width))
    }
}

/// Every wg interface and peer.
#[derive(Clone, Debug, Default)]
pub struct WgTable {
    ifs: Vec<Option<WgIf>>,
    /// Interfaces by listen port: several may share one (calico's IPv4 and IPv6 interfaces,
    /// both on 51820), told apart by their source address.
    by_port: Map<u16, Vec<u32>>,
    peers: Vec<Option<Peer>>,
    /// Our receiver index -> (peer index, keypair).
    by_index: Map<u32, (u32, Arc<Keypair>)>,
    allowed: Map<AllowedKey, u32>,
    /// Prefix lengths present, longest first, per family (IPv4, IPv6).
    lens: [Vec<u8>; 2],
}

impl WgTable {
    #[inline(always)]
    pub fn interface(&self, sw: u32) -> Option<&WgIf> {
        self.ifs.get(sw as usize)?.as_ref()
    }
    #[inline(always)]
    pub fn interface_on_port(&self, port: u16, dst: IpAddr) -> Option<&WgIf> {
        let sws = self.by_port.get(&port)?;
        let mut ifs = sws.iter().filter_map(|&sw| self.interface(sw));
        match sws.len() {
            1 => ifs.next(),
            _ => ifs.find(|i| i.src == dst),
        }
    }
    /// Some interface listens on `port`.
    pub fn port_in_use(&self, port: u16) -> bool {
        self.by_port.get(&port).is_some_and(|v| !v.is_empty())
    }
    #[inline(always)]
    pub fn peer(&self, index: u32) -> Option<&Peer> {
        self.peers.get(index as usize)?.as_ref()
    }
    /// The keypair the peer addressed with our receiver index `idx`.
    #[inline(always)]
    pub fn by_receiver(&self, idx: u32) -> Option<&(u32, Arc<Keypair>)> {
        self.by_index.get(&idx)
    }
    /// The peer of interface `sw` whose allowed IPs hold `addr` (longest prefix).
    #[inline(always)]
    pub fn peer_for(&self, sw: u32, addr: u128, v6: bool) -> Option<&Peer> {
        for &len in &self.lens[v6 as usize] {
            if let Some(&p) = self.allowed.get(&(sw, v6, len, masked(addr, v6, len))) {
                return self.peer(p);
            }
        }
        None
    }
    pub fn interfaces(&self) -> impl Iterator<Item = &WgIf> {
        self.ifs.iter().flatten()
    }
    pub fn peers(&self) -> impl Iterator<Item = &Peer> {
        self.peers.iter().flatten()
    }

    pub fn insert_interface(&mut self, i: WgIf) {
        let sw = i.sw_if_index as usize;
        if self.ifs.len() <= sw {
            self.ifs.resize(sw + 1, None);
        }
        let on_port = self.by_port.entry(i.port).or_default();
        if !on_port.contains(&i.sw_if_index) {
            on_port.push(i.sw_if_index);
        }
        self.ifs[sw] = Some(i);
    }

    pub fn remove_interface(&mut self, sw: u32) -> Option<WgIf> {
        let i = self.ifs.get_mut(sw as usize)?.take()?;
        if let Some(v) = self.by_port.get_mut(&i.port) {
            v.retain(|&x| x != sw);
            if v.is_empty() {
                self.by_port.remove(&i.port);
            }
        }
        Some(i)
    }

    /// The lowest free peer index.
    pub fn free_peer_index(&self) -> u32 {
        self.peers
            .iter()
            .position(|p| p.is_none())
            .unwrap_or(self.peers.len()) as u32
    }

    /// Add or replace a peer; its allowed IPs take precedence over any other peer's same
    /// prefix (as wg's, the last writer owns a prefix).
    pub fn insert_peer(&mut self, p: Peer) {
        let i = p.index as usize;
        if self.peers.len() <= i {
            self.peers.resize(i + 1, None);
        }
        self.remove_peer(p.index);
        for k in [&p.current, &p.previous].into_iter().flatten() {
            self.by_index.insert(k.local_index, (p.index, k.clone()));
        }
        for &(a, len) in &p.allowed {
            let (b, v6) = bits(a);
            self.allowed
                .insert((p.sw_if_index, v6, len, masked(b, v6, len)), p.index);
        }
        self.peers[i] = Some(p);
        self.relens();
    }

    pub fn remove_peer(&mut self, index: u32) -> Option<Peer> {
        let p = self.peers.get_mut(index as usize)?.take()?;
        self.by_index.retain(|_, (pi, _)| *pi != index);
        self.allowed.retain(|_, pi| *pi != index);
        self.relens();
        Some(p)
    }

    fn relens(&mut self) {
        let mut lens: [Vec<u8>; 2] = Default::default();
        for &(_, v6, len, _) in self.allowed.keys() {
            lens[v6 as usize].push(len);
        }
        for l in &mut lens {
            l.sort_unstable_by(|a, b| b.cmp(a));
            l.dedup();
        }
        self.lens = lens;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(index: u32, allowed: &[(&str, u8)]) -> Peer {
        Peer {
            index,
            sw_if_index: 1,
            public: [index as u8; 32],
            endpoint: "198.18.0.2".parse().unwrap(),
            port: 51820,
            table_id: 0,
            encap_fib: 0,
            persistent_keepalive: 0,
            allowed: allowed
                .iter()
                .map(|(a, l)| (a.parse().unwrap(), *l))
                .collect(),
            activity: Default::default(),
            current: None,
            previous: None,
        }
    }

    #[test]
    fn allowed_ips_longest_prefix_per_interface() {
        let mut t = WgTable::default();
        t.insert_peer(peer(0, &[("10.1.0.0", 16)]));
        t.insert_peer(peer(1, &[("10.1.2.0", 24), ("fd00::", 64)]));
        let a = |s: &str| bits(s.parse().unwrap());
        let find = |t: &WgTable, s: &str| {
            let (b, v6) = a(s);
            t.peer_for(1, b, v6).map(|p| p.index)
        };
        assert_eq!(find(&t, "10.1.2.3"), Some(1));
        assert_eq!(find(&t, "10.1.3.3"), Some(0));
        assert_eq!(find(&t, "10.2.0.1"), None);
        assert_eq!(find(&t, "fd00::5"), Some(1));
        let (b, v6) = a("10.1.2.3");
        assert!(t.peer_for(2, b, v6).is_none(), "another interface");
        t.remove_peer(1);
        assert_eq!(find(&t, "10.1.2.3"), Some(0));
        assert_eq!(find(&t, "fd00::5"), None);
        assert_eq!(t.free_peer_index(), 1);
    }
}
