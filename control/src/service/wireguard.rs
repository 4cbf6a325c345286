//! WireGuard interfaces and peers: each interface is a tunnel interface `wg<N>` (VPP's name,
//! lowest free instance or the one asked for) with `wg4-output-tun` / `wg6-output-tun` on
//! its output arcs; keys, peers and handshakes are the dataplane's `wireguard::Engine`. The
//! control thread's housekeeping ticks the engine and sends what it asks through a worker.
//! The CLI and the API both come here.

use super::tunnel::{TunnelIf, TunnelKind};
use super::{rv, SvcError, SvcResult};
use crate::daemon::Dataplane;
use rvpp_dataplane::forwarding::{Af, Forwarding};
use rvpp_dataplane::wireguard::engine::{
    IfHandover, Outgoing, PeerConfig, PeerError, PeerHandover,
};
use rvpp_dataplane::wireguard::noise::{self, Key};
use rvpp_dataplane::wireguard::table::{Peer, WgIf};
use rvpp_dataplane::wireguard::{self as wgdp, node, Wireguard};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// wg-quick's MTU for a 1500-byte uplink with IPv4 outer headers (IP 20 + UDP 8 + data header
/// 16 + tag 16, and up to 15 of padding, fit); 20 less with IPv6 outer headers.
const DEFAULT_MTU: u16 = 1420;

const KIND: TunnelKind = TunnelKind {
    prefix: "wg",
    dev_type: "wireguard",
    encap: node::FEATURES,
};

/// An interface to create (VPP's `wireguard_interface` fields).
#[derive(Clone, Copy, Debug)]
pub struct WgRequest {
    pub instance: Option<u32>,
    pub port: u16,
    pub src: IpAddr,
    /// None: generate one.
    pub private_key: Option<Key>,
}

/// A peer to add (VPP's `wireguard_peer` fields).
#[derive(Clone, Debug)]
pub struct PeerRequest {
    pub sw_if_index: u32,
    pub public_key: Key,
    pub endpoint: IpAddr,
    pub port: u16,
    pub persistent_keepalive: u16,
    pub table_id: u32,
    pub allowed: Vec<(IpAddr, u8)>,
}

fn wg(dp: &Dataplane) -> Arc<Wireguard> {
    dp.feature_tables.get::<Wireguard>()
}

/// When the engine's clock read 1 (its first call, or earlier: [`continue_clock`]).
static EPOCH: Mutex<Option<Instant>> = Mutex::new(None);

/// The engine's clock: ms since the first call (plus one, so 0 means never).
pub fn now_ms() -> u64 {
    let mut e = EPOCH.lock().unwrap_or_else(|e| e.into_inner());
    e.get_or_insert_with(Instant::now).elapsed().as_millis() as u64 + 1
}

/// A live restart: run this process's clock on from `old_ms`, the old process's clock at its
/// capture (both count on the system's monotonic clock), so that the times it handed over
/// (keypair births, activity) mean the same here. False when this clock cannot go back that
/// far (it then reads on as it was).
pub fn continue_clock(old_ms: u64) -> bool {
    let want = Instant::now().checked_sub(Duration::from_millis(old_ms.saturating_sub(1)));
    {
        let mut e = EPOCH.lock().unwrap_or_else(|e| e.into_inner());
        match (*e, want) {
            (Some(now), Some(w)) if w < now => *e = Some(w),
            (None, Some(w)) => *e = Some(w),
            _ => {}
        }
    }
    now_ms() >= old_ms
}

fn unix_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn engine(w: &Wireguard) -> std::sync::MutexGuard<'_, wgdp::engine::Engine> {
    w.engine.lock().unwrap_or_else(|e| e.into_inner())
}

/// Create an interface; its sw_if_index and name.
pub fn create(dp: &Arc<Dataplane>, r: WgRequest) -> SvcResult<(u32, String)> {
    let bad = |m: &str| Err(SvcError::new(rv::INVALID_VALUE, m.to_string()));
    if r.src.is_unspecified() || r.src.is_multicast() {
        return bad("the source address must be a unicast address");
    }
    if r.port == 0 {
        return bad("the listen port must not be 0");
    }
    let w = wg(dp);
    // Interfaces may share a port (calico's IPv4 and IPv6 ones), not a port and a source.
    if w.table
        .load()
        .interfaces()
        .any(|i| i.port == r.port && i.src == r.src)
    {
        return Err(SvcError::new(
            rv::ENTRY_ALREADY_EXISTS,
            format!(
                "udp port {} with source {} has a wg interface",
                r.port, r.src
            ),
        ));
    }
    let key = r.private_key.unwrap_or_else(noise::random_key);
    let (sw, name) = {
        let mut f = dp.fwd();
        let instance = KIND.instance(&f, r.instance)?;
        let looks = TunnelIf {
            mac: [0; 6],
            ethernet: false,
            mtu: if r.src.is_ipv6() {
                DEFAULT_MTU - 20
            } else {
                DEFAULT_MTU
            },
            admin_up: false,
        };
        let (sw, name) = KIND.add_interface(&mut f, instance, looks)?;
        engine(&w).add_interface(&w, (sw, instance, r.port, r.src), key, now_ms());
        wgdp::set_listening(r.port, true);
        (sw, name)
    };
    dp.svc.changed();
    Ok((sw, name))
}

/// Delete the interface on `sw` with its peers.
pub fn delete(dp: &Arc<Dataplane>, sw: u32) -> SvcResult<()> {
    let w = wg(dp);
    let mut f = dp.fwd();
    let Some(i) = w.table.load().interface(sw).cloned() else {
        return Err(SvcError::new(
            rv::INVALID_SW_IF_INDEX,
            format!("sw_if_index {sw} is not a wg interface"),
        ));
    };
    engine(&w).remove_interface(&w, sw);
    if !w.table.load().port_in_use(i.port) {
        wgdp::set_listening(i.port, false);
    }
    f.interface_del(sw)?;
    drop(f);
    super::interface_gone(dp, sw);
    dp.svc.changed();
    Ok(())
}

/// A live restart's interface `sw` (rebuilt already under its index by the restore, which
/// holds `f`): checked as [`create`] checks, its encap features on, in the engine.
pub fn restore_interface(dp: &Dataplane, f: &mut Forwarding, i: &IfHandover) -> SvcResult<()> {
    let w = wg(dp);
    if w.table
        .load()
        .interfaces()
        .any(|x| x.sw_if_index == i.sw_if_index || (x.port == i.port && x.src == i.src))
    {
        return Err(SvcError::new(
            rv::ENTRY_ALREADY_EXISTS,
            format!("wg interface on sw_if_index {} exists", i.sw_if_index),
        ));
    }
    if i.port == 0 || i.src.is_unspecified() || i.src.is_multicast() {
        return Err(SvcError::new(rv::INVALID_VALUE, "bad port or source"));
    }
    KIND.adopt_interface(f, i.sw_if_index, i.instance)?;
    let now = now_ms();
    w.clock_ms.store(now, std::sync::atomic::Ordering::Relaxed);
    engine(&w).add_interface(
        &w,
        (i.sw_if_index, i.instance, i.port, i.src),
        i.private,
        now,
    );
    wgdp::set_listening(i.port, true);
    Ok(())
}

/// A live restart's peer under its index, its outer table looked up again by id (`f`: the
/// restore's forwarding lock).
pub fn restore_peer(dp: &Dataplane, f: &Forwarding, mut p: PeerHandover) -> SvcResult<()> {
    let c = &mut p.config;
    c.encap_fib = f
        .fib_index(Af::of(&c.endpoint), c.table_id)
        .ok_or_else(|| SvcError::new(rv::NO_SUCH_FIB, format!("no table {}", c.table_id)))?;
    let w = wg(dp);
    let r = engine(&w).adopt_peer(&w, p);
    r.map_err(peer_error)
}

fn peer_error(e: PeerError) -> SvcError {
    match e {
        PeerError::NoInterface => {
            SvcError::new(rv::INVALID_SW_IF_INDEX, "not a wg interface".to_string())
        }
        PeerError::Exists => SvcError::new(
            rv::ENTRY_ALREADY_EXISTS,
            "the interface has a peer with this public key (or index)".to_string(),
        ),
    }
}

/// For a live restart: the interfaces and peers with their sessions, and the clock they are
/// in (the send counters follow: [`hand_over_counters`]).
pub fn hand_over(dp: &Dataplane) -> (Vec<IfHandover>, Vec<PeerHandover>, u64) {
    let w = wg(dp);
    let e = engine(&w);
    let (ifs, peers) = e.handover_state(&w);
    (ifs, peers, now_ms())
}

/// For a live restart, when the next process is about to poll the devices: each keypair's
/// first counter that is the next process's, by receiver index ([`take_back`] undoes it).
pub fn hand_over_counters(dp: &Dataplane) -> Vec<(u32, u64)> {
    let w = wg(dp);
    let e = engine(&w);
    e.hand_over_counters(&w)
}

/// The next process: its keypairs send from the counters the old one handed over; how many
/// keypairs it found.
pub fn take_over_counters(dp: &Dataplane, firsts: &[(u32, u64)]) -> usize {
    let w = wg(dp);
    let e = engine(&w);
    e.take_over_counters(&w, firsts)
}

/// The take-over failed: the keypairs are this process's again.
pub fn take_back(dp: &Dataplane) {
    let w = wg(dp);
    let e = engine(&w);
    e.take_back(&w);
}

/// Every wg interface (`only`: one) with its private key.
pub fn list(dp: &Dataplane, only: Option<u32>) -> Vec<(WgIf, Key)> {
    let w = wg(dp);
    let e = engine(&w);
    w.table
        .load()
        .interfaces()
        .filter(|i| only.is_none_or(|s| s == i.sw_if_index))
        .map(|i| (i.clone(), e.private_key(i.sw_if_index).unwrap_or([0; 32])))
        .collect()
}

/// Add a peer; its index.
pub fn peer_add(dp: &Arc<Dataplane>, r: PeerRequest) -> SvcResult<u32> {
    let w = wg(dp);
    let Some(i) = w.table.load().interface(r.sw_if_index).cloned() else {
        return Err(SvcError::new(
            rv::INVALID_SW_IF_INDEX,
            format!("sw_if_index {} is not a wg interface", r.sw_if_index),
        ));
    };
    if r.endpoint.is_ipv4() != i.src.is_ipv4() {
        return Err(SvcError::new(
            rv::INVALID_ADDRESS_FAMILY,
            "the endpoint and the interface's source are of different families".to_string(),
        ));
    }
    if r.port == 0 || r.endpoint.is_unspecified() {
        return Err(SvcError::new(
            rv::INVALID_VALUE,
            "a peer needs an endpoint address and port".to_string(),
        ));
    }
    let encap_fib = dp
        .fwd()
        .fib_index(Af::of(&r.endpoint), r.table_id)
        .ok_or_else(|| SvcError::new(rv::NO_SUCH_FIB, format!("no table {}", r.table_id)))?;
    let c = PeerConfig {
        sw_if_index: r.sw_if_index,
        public: r.public_key,
        psk: [0; 32],
        endpoint: r.endpoint,
        port: r.port,
        table_id: r.table_id,
        encap_fib,
        persistent_keepalive: r.persistent_keepalive,
        allowed: r.allowed,
    };
    let idx = engine(&w).add_peer(&w, c).map_err(peer_error)?;
    Ok(idx)
}

pub fn peer_remove(dp: &Arc<Dataplane>, index: u32) -> SvcResult<()> {
    let w = wg(dp);
    if engine(&w).remove_peer(&w, index) {
        Ok(())
    } else {
        Err(SvcError::new(
            rv::NO_SUCH_ENTRY,
            format!("no wg peer {index}"),
        ))
    }
}

/// A peer as the front ends show it.
pub struct PeerView {
    pub peer: Peer,
    pub established: bool,
    /// Seconds since its last handshake, if any.
    pub handshake_age_s: Option<u64>,
}

/// Every peer (`only`: one).
pub fn peers(dp: &Dataplane, only: Option<u32>) -> Vec<PeerView> {
    let w = wg(dp);
    let e = engine(&w);
    let now = now_ms();
    w.table
        .load()
        .peers()
        .filter(|p| only.is_none_or(|i| i == p.index))
        .map(|p| {
            let hs = e.last_handshake_ms(p.index);
            PeerView {
                established: p.send_keypair(w.now_ms()).is_some(),
                handshake_age_s: (hs != 0).then(|| now.saturating_sub(hs) / 1000),
                peer: p.clone(),
            }
        })
        .collect()
}

/// The engine's counters.
pub fn counters(dp: &Dataplane) -> Vec<(&'static str, u64)> {
    wg(dp).counters.list()
}

/// Run the engine once (queued handshakes, timers); the packets to send. Nothing to do
/// without wg interfaces.
pub fn tick(dp: &Dataplane) -> Vec<Outgoing> {
    let w = wg(dp);
    if w.table.load().interfaces().next().is_none() {
        return Vec::new();
    }
    let out = engine(&w).tick(&w, now_ms(), unix_nanos());
    out
}
