//! The control side of WireGuard: interface and peer keys, handshakes (initiator and
//! responder), cookie replies when under load, and the timers. It runs on the control thread
//! (`tick`), reads the workers' queues, publishes keypairs into the [`WgTable`] and returns the
//! packets it wants sent (outer IP + UDP), which the daemon injects into ip4-/ip6-lookup.

use super::noise::{self, HsError, Identity, Initiator, Key, PeerKeys};
use super::session::{self, Keypair, KeypairState};
use super::table::{Peer, PeerActivity, WgIf};
use super::{EngineCounters as C, Event, HandshakePacket, Wireguard, UNDER_LOAD};
use crate::wire::{self, Ip4HdrMut, Ip6HdrMut, UdpHdrMut};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// An outer packet to send: IP + UDP + WireGuard message, looked up in `fib_index`.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub fib_index: u32,
    pub frame: Vec<u8>,
}

/// A peer to add.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    pub sw_if_index: u32,
    pub public: Key,
    pub psk: Key,
    pub endpoint: IpAddr,
    pub port: u16,
    pub table_id: u32,
    pub encap_fib: u32,
    pub persistent_keepalive: u16,
    pub allowed: Vec<(IpAddr, u8)>,
}

/// A wg interface as a live restart carries it.
#[derive(Clone, Debug)]
pub struct IfHandover {
    pub sw_if_index: u32,
    pub instance: u32,
    pub port: u16,
    pub src: IpAddr,
    pub private: Key,
}

/// A peer as a live restart carries it: its configuration (the endpoint as roamed; the
/// old process's `encap_fib`, which the new one looks up again by `table_id`), its activity,
/// its keypairs and the handshake state that must not start over: the last initiation's
/// timestamp (a replayed one stays refused), when the last handshake completed, a cookie.
/// Times are the engine's clock of the process that made them.
pub struct PeerHandover {
    pub index: u32,
    pub config: PeerConfig,
    pub activity: PeerActivity,
    pub current: Option<KeypairState>,
    pub previous: Option<KeypairState>,
    pub last_initiation_ts: [u8; 12],
    pub last_handshake_ms: u64,
    pub cookie: Option<([u8; 16], u64)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerError {
    NoInterface,
    Exists,
}

struct IfCtl {
    id: Identity,
    cookie_secret: Key,
    secret_ms: u64,
}

struct Pending {
    st: Initiator,
    sent_ms: u64,
}

struct PeerCtl {
    sw: u32,
    keys: PeerKeys,
    last_ts: [u8; 12],
    pending: Option<Pending>,
    /// When the current round of initiation attempts began.
    attempts_since: Option<u64>,
    cookie: Option<([u8; 16], u64)>,
    last_handshake_ms: u64,
}

/// Handshakes and timers of every wg interface.
pub struct Engine {
    ifs: HashMap<u32, IfCtl>,
    peers: HashMap<u32, PeerCtl>,
    /// Our index of an initiation in flight -> peer.
    pending: HashMap<u32, u32>,
    /// Queued handshakes at which the engine counts as under load (tests lower it).
    pub under_load_at: usize,
    /// Handshake messages handled per tick at most.
    pub per_tick: usize,
}

impl Default for Engine {
    fn default() -> Self {
        Self {
            ifs: HashMap::new(),
            peers: HashMap::new(),
            pending: HashMap::new(),
            under_load_at: UNDER_LOAD,
            per_tick: 256,
        }
    }
}

fn random_u32() -> u32 {
    let k = noise::random_key();
    u32::from_le_bytes([k[0], k[1], k[2], k[3]])
}

/// An outer IP + UDP packet around `payload`.
pub fn udp_packet(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, payload: &[u8]) -> Vec<u8> {
    let ulen = wire::l4::UDP_HDR + payload.len();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let tl = wire::IP4_HDR + ulen;
            let mut f = vec![0u8; tl];
            if let Some(mut h) = Ip4HdrMut::new(&mut f) {
                h.init(s.into(), d.into(), wire::IP_PROTO_UDP, 64, tl as u16);
            }
            if let Some(mut u) = UdpHdrMut::new(&mut f[wire::IP4_HDR..]) {
                u.init(sport, dport, ulen as u16);
            }
            f[wire::IP4_HDR + wire::l4::UDP_HDR..].copy_from_slice(payload);
            f
        }
        _ => {
            let (s, d) = (v6_bits(src), v6_bits(dst));
            let mut f = vec![0u8; wire::IP6_HDR + ulen];
            if let Some(mut h) = Ip6HdrMut::new(&mut f) {
                h.init(s, d, wire::IP_PROTO_UDP, 64, ulen as u16);
            }
            if let Some(mut u) = UdpHdrMut::new(&mut f[wire::IP6_HDR..]) {
                u.init(sport, dport, ulen as u16);
            }
            f[wire::IP6_HDR + wire::l4::UDP_HDR..].copy_from_slice(payload);
            let c = wire::l4::l4_checksum_ip6(s, d, wire::IP_PROTO_UDP, &f[wire::IP6_HDR..]);
            let c = if c == 0 { 0xffff } else { c };
            f[wire::IP6_HDR + 6..wire::IP6_HDR + 8].copy_from_slice(&c.to_be_bytes());
            f
        }
    }
}

fn v6_bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(v.to_ipv6_mapped()),
        IpAddr::V6(v) => u128::from(v),
    }
}

/// The bytes a cookie is computed over: source address, then port.
fn addr_bytes(a: IpAddr, port: u16) -> Vec<u8> {
    let mut v = match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    };
    v.extend_from_slice(&port.to_be_bytes());
    v
}

impl Engine {
    /// Add interface `sw` with `private` key (its public key is derived).
    pub fn add_interface(
        &mut self,
        wg: &Wireguard,
        w: (u32, u32, u16, IpAddr),
        private: Key,
        now_ms: u64,
    ) -> WgIf {
        let (sw, instance, port, src) = w;
        let id = Identity::new(private);
        let i = WgIf {
            sw_if_index: sw,
            instance,
            port,
            src,
            public: id.public,
            mac1_key: id.mac1_key,
        };
        self.ifs.insert(
            sw,
            IfCtl {
                id,
                cookie_secret: noise::random_key(),
                secret_ms: now_ms,
            },
        );
        let mut t = (*wg.table.load()).clone();
        t.insert_interface(i.clone());
        wg.table.publish(t);
        i
    }

    /// Remove interface `sw` and every peer on it.
    pub fn remove_interface(&mut self, wg: &Wireguard, sw: u32) {
        self.ifs.remove(&sw);
        let gone: Vec<u32> = self
            .peers
            .iter()
            .filter(|(_, p)| p.sw == sw)
            .map(|(&i, _)| i)
            .collect();
        let mut t = (*wg.table.load()).clone();
        for i in gone {
            self.peers.remove(&i);
            t.remove_peer(i);
        }
        self.pending.retain(|_, p| self.peers.contains_key(p));
        t.remove_interface(sw);
        wg.table.publish(t);
    }

    pub fn private_key(&self, sw: u32) -> Option<Key> {
        self.ifs.get(&sw).map(|i| i.id.private)
    }

    /// Add a peer; its index. A new peer is one with no keypairs, handshake or activity yet,
    /// put under the lowest free index.
    pub fn add_peer(&mut self, wg: &Wireguard, c: PeerConfig) -> Result<u32, PeerError> {
        let index = wg.table.load().free_peer_index();
        self.adopt_peer(
            wg,
            PeerHandover {
                index,
                config: c,
                activity: PeerActivity::default(),
                current: None,
                previous: None,
                last_initiation_ts: [0; 12],
                last_handshake_ms: 0,
                cookie: None,
            },
        )?;
        Ok(index)
    }

    pub fn remove_peer(&mut self, wg: &Wireguard, index: u32) -> bool {
        if self.peers.remove(&index).is_none() {
            return false;
        }
        self.pending.retain(|_, p| *p != index);
        let mut t = (*wg.table.load()).clone();
        t.remove_peer(index);
        wg.table.publish(t);
        true
    }

    /// For a live restart: every interface and peer with its sessions (their send counters
    /// go over later: [`Self::hand_over_counters`]). A handshake in flight is not carried: the
    /// next process starts it again when its keypair wants it.
    pub fn handover_state(&self, wg: &Wireguard) -> (Vec<IfHandover>, Vec<PeerHandover>) {
        let t = wg.table.load();
        let ifs = t
            .interfaces()
            .filter_map(|i| {
                Some(IfHandover {
                    sw_if_index: i.sw_if_index,
                    instance: i.instance,
                    port: i.port,
                    src: i.src,
                    private: self.ifs.get(&i.sw_if_index)?.id.private,
                })
            })
            .collect();
        let peers = t
            .peers()
            .filter_map(|p| {
                let ctl = self.peers.get(&p.index)?;
                let a = &p.activity;
                let g = PeerActivity::load;
                Some(PeerHandover {
                    index: p.index,
                    config: PeerConfig {
                        sw_if_index: p.sw_if_index,
                        public: p.public,
                        psk: ctl.keys.psk,
                        endpoint: p.endpoint,
                        port: p.port,
                        table_id: p.table_id,
                        encap_fib: p.encap_fib,
                        persistent_keepalive: p.persistent_keepalive,
                        allowed: p.allowed.clone(),
                    },
                    activity: PeerActivity {
                        last_sent_ms: g(&a.last_sent_ms).into(),
                        last_recv_ms: g(&a.last_recv_ms).into(),
                        last_recv_data_ms: g(&a.last_recv_data_ms).into(),
                        last_sent_data_ms: g(&a.last_sent_data_ms).into(),
                        rx_bytes: g(&a.rx_bytes).into(),
                        tx_bytes: g(&a.tx_bytes).into(),
                        ..Default::default()
                    },
                    current: p.current.as_ref().map(|k| k.state()),
                    previous: p.previous.as_ref().map(|k| k.state()),
                    last_initiation_ts: ctl.last_ts,
                    last_handshake_ms: ctl.last_handshake_ms,
                    cookie: ctl.cookie,
                })
            })
            .collect();
        (ifs, peers)
    }

    /// For a live restart, just before the next process polls the devices: each keypair's
    /// first send counter (by our receiver index) from which on it is the next process's
    /// (`Keypair::hand_over`; [`Self::take_back`] undoes it).
    pub fn hand_over_counters(&self, wg: &Wireguard) -> Vec<(u32, u64)> {
        let t = wg.table.load();
        t.peers()
            .flat_map(|p| [&p.current, &p.previous])
            .flatten()
            .map(|k| (k.local_index, k.hand_over()))
            .collect()
    }

    /// The next process: send on each keypair (by our receiver index) from the counter the old
    /// one handed over; how many it found.
    pub fn take_over_counters(&self, wg: &Wireguard, firsts: &[(u32, u64)]) -> usize {
        let t = wg.table.load();
        let mut found = 0;
        for &(idx, first) in firsts {
            if let Some((_, k)) = t.by_receiver(idx) {
                k.skip_to(first);
                found += 1;
            }
        }
        found
    }

    /// The take-over failed after [`Self::hand_over_counters`]: this process's keypairs send
    /// on.
    pub fn take_back(&self, wg: &Wireguard) {
        for p in wg.table.load().peers() {
            for k in [&p.current, &p.previous].into_iter().flatten() {
                k.take_back();
            }
        }
    }

    /// A peer a live restart carried, under its index, on an interface added already (its
    /// times in this engine's clock, its `encap_fib` this process's).
    pub fn adopt_peer(&mut self, wg: &Wireguard, p: PeerHandover) -> Result<(), PeerError> {
        let c = p.config;
        let i = self.ifs.get(&c.sw_if_index).ok_or(PeerError::NoInterface)?;
        let mut t = (*wg.table.load()).clone();
        if t.peer(p.index).is_some()
            || self
                .peers
                .values()
                .any(|x| x.sw == c.sw_if_index && x.keys.public == c.public)
        {
            return Err(PeerError::Exists);
        }
        let kp = |k: &Option<KeypairState>| k.as_ref().map(|k| Arc::new(Keypair::resumed(k)));
        let keys = PeerKeys::new(&i.id, c.public, c.psk);
        t.insert_peer(Peer {
            index: p.index,
            sw_if_index: c.sw_if_index,
            public: c.public,
            endpoint: c.endpoint,
            port: c.port,
            table_id: c.table_id,
            encap_fib: c.encap_fib,
            persistent_keepalive: c.persistent_keepalive,
            allowed: c.allowed,
            activity: Arc::new(p.activity),
            current: kp(&p.current),
            previous: kp(&p.previous),
        });
        wg.table.publish(t);
        self.peers.insert(
            p.index,
            PeerCtl {
                sw: c.sw_if_index,
                keys,
                last_ts: p.last_initiation_ts,
                pending: None,
                attempts_since: None,
                cookie: p.cookie,
                last_handshake_ms: p.last_handshake_ms,
            },
        );
        Ok(())
    }

    /// When the peer's last handshake completed (engine ms), 0 if never.
    pub fn last_handshake_ms(&self, index: u32) -> u64 {
        self.peers.get(&index).map_or(0, |p| p.last_handshake_ms)
    }

    /// Handle what the workers queued and run the timers; the packets to send.
    pub fn tick(&mut self, wg: &Wireguard, now_ms: u64, unix_nanos: u128) -> Vec<Outgoing> {
        wg.clock_ms.store(now_ms, Ordering::Relaxed);
        let mut out = Vec::new();
        while let Some(e) = wg.events.pop() {
            self.event(wg, e, now_ms, unix_nanos, &mut out);
        }
        let under_load = wg.handshakes.len() >= self.under_load_at;
        for _ in 0..self.per_tick {
            let Some(p) = wg.handshakes.pop() else { break };
            self.handshake(wg, &p, under_load, now_ms, &mut out);
        }
        self.timers(wg, now_ms, unix_nanos, &mut out);
        out
    }

    fn event(&mut self, wg: &Wireguard, e: Event, now_ms: u64, ns: u128, out: &mut Vec<Outgoing>) {
        let t = wg.table.load();
        match e {
            Event::WantHandshake(p) => {
                if let Some(peer) = t.peer(p) {
                    peer.activity
                        .handshake_wanted
                        .store(false, Ordering::Relaxed);
                    let fresh = self
                        .peers
                        .get(&p)
                        .and_then(|c| c.pending.as_ref())
                        .is_some_and(|x| {
                            now_ms.saturating_sub(x.sent_ms) < session::REKEY_TIMEOUT_MS
                        });
                    if !fresh {
                        self.initiate(wg, p, now_ms, ns, out);
                    }
                }
            }
            Event::Roamed { peer, src, port } => {
                if let Some(p) = t.peer(peer) {
                    p.activity.roam_reported.store(false, Ordering::Relaxed);
                    if (p.endpoint, p.port) != (src, port) {
                        self.set_endpoint(wg, peer, src, port);
                    }
                }
            }
        }
    }

    fn set_endpoint(&self, wg: &Wireguard, peer: u32, src: IpAddr, port: u16) {
        let mut t = (*wg.table.load()).clone();
        if let Some(mut p) = t.peer(peer).cloned() {
            if (p.endpoint, p.port) == (src, port) {
                return;
            }
            p.endpoint = src;
            p.port = port;
            t.insert_peer(p);
            wg.table.publish(t);
        }
    }

    fn free_index(&self, wg: &Wireguard) -> u32 {
        let t = wg.table.load();
        loop {
            let i = random_u32();
            if t.by_receiver(i).is_none() && !self.pending.contains_key(&i) {
                return i;
            }
        }
    }

    /// Send an initiation to peer `p` (a new one: new ephemeral, new index).
    fn initiate(&mut self, wg: &Wireguard, p: u32, now_ms: u64, ns: u128, out: &mut Vec<Outgoing>) {
        let t = wg.table.load();
        let (Some(peer), Some(i)) = (
            t.peer(p),
            t.interface(t.peer(p).map_or(u32::MAX, |x| x.sw_if_index)),
        ) else {
            return;
        };
        let local = self.free_index(wg);
        let Some(ctl) = self.peers.get_mut(&p) else {
            return;
        };
        let Some(ifc) = self.ifs.get(&ctl.sw) else {
            return;
        };
        let cookie = ctl
            .cookie
            .filter(|(_, at)| now_ms.saturating_sub(*at) < session::COOKIE_LIFETIME_MS)
            .map(|(c, _)| c);
        let (m, st) = noise::initiation(
            &ifc.id,
            &ctl.keys,
            local,
            noise::random_key(),
            noise::tai64n(ns),
            cookie.as_ref(),
        );
        if let Some(old) = ctl.pending.take() {
            self.pending.remove(&old.st.local_index);
        }
        ctl.pending = Some(Pending {
            st,
            sent_ms: now_ms,
        });
        ctl.attempts_since.get_or_insert(now_ms);
        self.pending.insert(local, p);
        C::bump(&wg.counters.initiations_sent);
        peer.activity.last_sent_ms.store(now_ms, Ordering::Relaxed);
        out.push(Outgoing {
            fib_index: peer.encap_fib,
            frame: udp_packet(i.src, i.port, peer.endpoint, peer.port, &m),
        });
    }

    fn cookie_reply(
        &self,
        wg: &Wireguard,
        p: &HandshakePacket,
        sender: u32,
        fib: u32,
        out: &mut Vec<Outgoing>,
    ) {
        let t = wg.table.load();
        let (Some(i), Some(ctl)) = (t.interface(p.sw_if_index), self.ifs.get(&p.sw_if_index))
        else {
            return;
        };
        let m = p.bytes();
        let mac1 = &m[m.len() - 32..m.len() - 16];
        let ck = noise::cookie(&ctl.cookie_secret, &addr_bytes(p.src, p.src_port));
        let mut n = [0u8; 24];
        n.copy_from_slice(&noise::random_key()[..24]);
        let r = noise::cookie_reply(&ctl.id, sender, mac1, &ck, n);
        C::bump(&wg.counters.cookies_sent);
        out.push(Outgoing {
            fib_index: fib,
            frame: udp_packet(i.src, i.port, p.src, p.src_port, &r),
        });
    }

    /// Under load, a message must carry MAC2 of the sender's current cookie.
    fn mac2_ok(&self, p: &HandshakePacket) -> bool {
        self.ifs.get(&p.sw_if_index).is_some_and(|c| {
            noise::mac2_ok(
                p.bytes(),
                &noise::cookie(&c.cookie_secret, &addr_bytes(p.src, p.src_port)),
            )
        })
    }

    fn refused(wg: &Wireguard, e: HsError) {
        let c = &wg.counters;
        C::bump(match e {
            HsError::Malformed => &c.handshake_malformed,
            HsError::Decrypt => &c.handshake_decrypt_failed,
            HsError::UnknownPeer => &c.handshake_unknown_peer,
            HsError::Replay => &c.handshake_replayed,
            HsError::UnknownIndex => &c.handshake_unknown_index,
        });
    }

    fn handshake(
        &mut self,
        wg: &Wireguard,
        p: &HandshakePacket,
        under_load: bool,
        now_ms: u64,
        out: &mut Vec<Outgoing>,
    ) {
        let m = p.bytes();
        let c = &wg.counters;
        let kind = (m[0], m.len());
        match kind {
            (noise::MSG_INITIATION, noise::INITIATION_LEN) => C::bump(&c.initiations_received),
            (noise::MSG_RESPONSE, noise::RESPONSE_LEN) => C::bump(&c.responses_received),
            _ => {}
        }
        let asks_for_work = matches!(
            kind,
            (noise::MSG_INITIATION, noise::INITIATION_LEN)
                | (noise::MSG_RESPONSE, noise::RESPONSE_LEN)
        );
        if asks_for_work && under_load && !self.mac2_ok(p) {
            // Prove the address first: a cookie reply costs us no DH.
            C::bump(&c.handshake_bad_mac2);
            let sender = u32::from_le_bytes([m[4], m[5], m[6], m[7]]);
            let fib = self.reply_fib(wg, p.sw_if_index);
            return self.cookie_reply(wg, p, sender, fib, out);
        }
        let r = match kind {
            (noise::MSG_INITIATION, noise::INITIATION_LEN) => self.respond(wg, p, now_ms, out),
            (noise::MSG_RESPONSE, noise::RESPONSE_LEN) => self.complete(wg, p, now_ms, out),
            (noise::MSG_COOKIE_REPLY, noise::COOKIE_REPLY_LEN) => self.take_cookie(wg, m, now_ms),
            _ => Err(HsError::Malformed),
        };
        if let Err(e) = r {
            Self::refused(wg, e);
        }
    }

    /// Replies to a sender we cannot name yet go out through the first peer's table, or the
    /// default table.
    fn reply_fib(&self, wg: &Wireguard, sw: u32) -> u32 {
        wg.table
            .load()
            .peers()
            .find(|x| x.sw_if_index == sw)
            .map_or(0, |x| x.encap_fib)
    }

    fn respond(
        &mut self,
        wg: &Wireguard,
        p: &HandshakePacket,
        now_ms: u64,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), HsError> {
        let ifc = self.ifs.get(&p.sw_if_index).ok_or(HsError::UnknownPeer)?;
        let sw = p.sw_if_index;
        let peers = &self.peers;
        let (seen, pk) = noise::consume_initiation(&ifc.id, p.bytes(), |k| {
            peers
                .values()
                .find(|c| c.sw == sw && c.keys.public == *k)
                .map(|c| (&c.keys, c.last_ts))
        })?;
        let index = *self
            .peers
            .iter()
            .find(|(_, c)| c.sw == sw && c.keys.public == seen.peer_public)
            .map(|(i, _)| i)
            .ok_or(HsError::UnknownPeer)?;
        let local = self.free_index(wg);
        let cookie = self.peers[&index]
            .cookie
            .filter(|(_, at)| now_ms.saturating_sub(*at) < session::COOKIE_LIFETIME_MS)
            .map(|(c, _)| c);
        let (m, keys) = noise::response(pk, &seen, local, noise::random_key(), cookie.as_ref());
        let ctl = self.peers.get_mut(&index).ok_or(HsError::UnknownPeer)?;
        ctl.last_ts = seen.timestamp;
        ctl.last_handshake_ms = now_ms;
        let kp = Arc::new(Keypair::new(&keys, now_ms));
        let mut t = (*wg.table.load()).clone();
        let mut peer = t.peer(index).cloned().ok_or(HsError::UnknownPeer)?;
        peer.previous = peer.current.take();
        peer.current = Some(kp);
        peer.endpoint = p.src;
        peer.port = p.src_port;
        let (fib, i) = (peer.encap_fib, t.interface(sw).cloned());
        peer.activity.last_sent_ms.store(now_ms, Ordering::Relaxed);
        t.insert_peer(peer);
        wg.table.publish(t);
        C::bump(&wg.counters.responses_sent);
        C::bump(&wg.counters.handshakes_completed);
        if let Some(i) = i {
            out.push(Outgoing {
                fib_index: fib,
                frame: udp_packet(i.src, i.port, p.src, p.src_port, &m),
            });
        }
        Ok(())
    }

    fn complete(
        &mut self,
        wg: &Wireguard,
        p: &HandshakePacket,
        now_ms: u64,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), HsError> {
        let m = p.bytes();
        let ours = u32::from_le_bytes([m[8], m[9], m[10], m[11]]);
        let index = *self.pending.get(&ours).ok_or(HsError::UnknownIndex)?;
        let ctl = self.peers.get_mut(&index).ok_or(HsError::UnknownIndex)?;
        let ifc = self.ifs.get(&ctl.sw).ok_or(HsError::UnknownIndex)?;
        let st = &ctl.pending.as_ref().ok_or(HsError::UnknownIndex)?.st;
        let keys = noise::consume_response(&ifc.id, &ctl.keys, st, m)?;
        ctl.pending = None;
        ctl.attempts_since = None;
        ctl.last_handshake_ms = now_ms;
        self.pending.remove(&ours);
        let kp = Arc::new(Keypair::new(&keys, now_ms));
        let mut t = (*wg.table.load()).clone();
        let mut peer = t.peer(index).cloned().ok_or(HsError::UnknownIndex)?;
        peer.previous = peer.current.take();
        peer.current = Some(kp.clone());
        peer.endpoint = p.src;
        peer.port = p.src_port;
        let (fib, i) = (peer.encap_fib, t.interface(peer.sw_if_index).cloned());
        let act = peer.activity.clone();
        t.insert_peer(peer);
        wg.table.publish(t);
        C::bump(&wg.counters.handshakes_completed);
        // The responder may send only once we used the keypair: confirm it now.
        if let Some(i) = i {
            out.push(keepalive(wg, &kp, &act, &i, p.src, p.src_port, fib, now_ms));
        }
        Ok(())
    }

    fn take_cookie(&mut self, wg: &Wireguard, m: &[u8], now_ms: u64) -> Result<(), HsError> {
        let ours = u32::from_le_bytes([m[4], m[5], m[6], m[7]]);
        let index = *self.pending.get(&ours).ok_or(HsError::UnknownIndex)?;
        let ctl = self.peers.get_mut(&index).ok_or(HsError::UnknownIndex)?;
        let st = &ctl.pending.as_ref().ok_or(HsError::UnknownIndex)?.st;
        let c = noise::consume_cookie_reply(&ctl.keys, &st.mac1, m)?;
        ctl.cookie = Some((c, now_ms));
        C::bump(&wg.counters.cookies_received);
        Ok(())
    }

    fn timers(&mut self, wg: &Wireguard, now_ms: u64, ns: u128, out: &mut Vec<Outgoing>) {
        for ctl in self.ifs.values_mut() {
            if now_ms.saturating_sub(ctl.secret_ms) >= session::COOKIE_LIFETIME_MS {
                ctl.cookie_secret = noise::random_key();
                ctl.secret_ms = now_ms;
            }
        }
        let t = wg.table.load();
        let mut expired = Vec::new();
        let mut initiate = Vec::new();
        for peer in t.peers() {
            let a = &peer.activity;
            let g = |x: &std::sync::atomic::AtomicU64| x.load(Ordering::Relaxed);
            if [&peer.current, &peer.previous]
                .into_iter()
                .flatten()
                .any(|k| k.expired(now_ms))
            {
                expired.push(peer.index);
            }
            let Some(ctl) = self.peers.get_mut(&peer.index) else {
                continue;
            };
            if let Some(pd) = &ctl.pending {
                if now_ms.saturating_sub(pd.sent_ms) >= session::REKEY_TIMEOUT_MS {
                    if ctl
                        .attempts_since
                        .is_some_and(|s| now_ms.saturating_sub(s) >= session::REKEY_ATTEMPT_TIME_MS)
                    {
                        self.pending.remove(&pd.st.local_index);
                        ctl.pending = None;
                        ctl.attempts_since = None;
                    } else {
                        initiate.push(peer.index);
                    }
                }
                continue;
            }
            let Some(i) = t.interface(peer.sw_if_index) else {
                continue;
            };
            let since_sent = now_ms.saturating_sub(g(&a.last_sent_ms));
            let pk = peer.persistent_keepalive as u64 * 1000;
            let kp = peer.send_keypair(now_ms);
            if pk > 0 && since_sent >= pk {
                match kp {
                    Some(k) => out.push(keepalive(
                        wg,
                        k,
                        a,
                        i,
                        peer.endpoint,
                        peer.port,
                        peer.encap_fib,
                        now_ms,
                    )),
                    None => initiate.push(peer.index),
                }
                continue;
            }
            let (rd, sd) = (g(&a.last_recv_data_ms), g(&a.last_sent_data_ms));
            if let Some(k) = kp {
                // Passive keepalive: data came in, nothing went out for KEEPALIVE_TIMEOUT.
                if rd > g(&a.last_sent_ms)
                    && now_ms.saturating_sub(rd) >= session::KEEPALIVE_TIMEOUT_MS
                {
                    out.push(keepalive(
                        wg,
                        k,
                        a,
                        i,
                        peer.endpoint,
                        peer.port,
                        peer.encap_fib,
                        now_ms,
                    ));
                    continue;
                }
            }
            // Data went out and nothing came back: the peer may have lost our keys.
            if sd > g(&a.last_recv_ms)
                && now_ms.saturating_sub(sd)
                    >= session::KEEPALIVE_TIMEOUT_MS + session::REKEY_TIMEOUT_MS
                && now_ms.saturating_sub(ctl.last_handshake_ms) >= session::REKEY_TIMEOUT_MS
            {
                initiate.push(peer.index);
            }
        }
        if !expired.is_empty() {
            let mut nt = (*t).clone();
            for i in expired {
                if let Some(mut p) = nt.peer(i).cloned() {
                    for slot in [&mut p.current, &mut p.previous] {
                        if slot.as_ref().is_some_and(|k| k.expired(now_ms)) {
                            *slot = None;
                            C::bump(&wg.counters.keypairs_expired);
                        }
                    }
                    nt.insert_peer(p);
                }
            }
            wg.table.publish(nt);
        }
        for p in initiate {
            self.initiate(wg, p, now_ms, ns, out);
        }
    }
}

/// A keepalive (an empty data message) to the peer on keypair `k`.
#[allow(clippy::too_many_arguments)]
fn keepalive(
    wg: &Wireguard,
    k: &Keypair,
    a: &PeerActivity,
    i: &WgIf,
    dst: IpAddr,
    port: u16,
    fib: u32,
    now_ms: u64,
) -> Outgoing {
    let mut m = [0u8; noise::DATA_HDR + noise::TAG_LEN];
    let c = k.next_counter().unwrap_or(u64::MAX);
    m[0] = noise::MSG_DATA;
    m[4..8].copy_from_slice(&k.remote_index.to_le_bytes());
    m[8..16].copy_from_slice(&c.to_le_bytes());
    let tag = k.seal(c, &mut []);
    m[16..].copy_from_slice(&tag);
    a.last_sent_ms.store(now_ms, Ordering::Relaxed);
    C::bump(&wg.counters.keepalives_sent);
    Outgoing {
        fib_index: fib,
        frame: udp_packet(i.src, i.port, dst, port, &m),
    }
}
