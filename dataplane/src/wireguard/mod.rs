//! WireGuard (VPP's wireguard plugin as calico-vpp drives it): wg interfaces are tunnel
//! interfaces `wgN`; their peers, allowed IPs and keypairs are one published [`WgTable`].
//!
//! - `noise`: the Noise_IKpsk2 handshake, MAC1/MAC2 and cookie replies (control side).
//! - `session`: keypairs and the anti-replay window in atomics (shared by every worker).
//! - `table`: what the workers read, published whole on a change.
//! - `engine`: handshakes, cookies under load, timers (rekey, keepalive, expiry) and roaming,
//!   run by the control thread from [`Wireguard::handshakes`] and [`Wireguard::events`], the
//!   lock-free queues the workers fill without allocating.
//! - `node`: `wg4-output-tun` / `wg6-output-tun` (encrypt on the interface's output arcs) and
//!   `wg4-input` / `wg6-input` (UDP to a wg port from ip4-/ip6-local: decrypt, check the inner
//!   source against the peer's allowed IPs, on to ip4-/ip6-input on the wg interface).
//!
//! Why our own protocol code and not boringtun's `noise` module: its `Tunn` is one object per
//! peer mutated through `&mut self` (handshake, timers and the data path together), so
//! several workers sending to one peer would need a lock per packet, and its handshake does
//! not hand out the transport keys the workers need. The handshake uses the crates it uses
//! (x25519-dalek, chacha20poly1305, blake2); the data path ring's ChaCha20-Poly1305 (fewer
//! instructions, `session.rs`). boringtun is the second implementation the tests talk to.

pub mod engine;
pub mod node;
pub mod noise;
pub mod session;
pub mod table;

use crate::rcu::Published;
use crossbeam_queue::ArrayQueue;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

pub use table::WgTable;

/// Handshake messages queued for the engine; beyond this they are counted drops.
pub const HANDSHAKE_QUEUE: usize = 1024;
/// Queued handshakes past which the engine is under load and answers cookie replies to
/// messages without a valid MAC2.
pub const UNDER_LOAD: usize = HANDSHAKE_QUEUE / 8;

/// A handshake message a worker received, copied whole (no allocation).
#[derive(Clone, Copy)]
pub struct HandshakePacket {
    pub sw_if_index: u32,
    pub src: IpAddr,
    pub src_port: u16,
    pub len: u8,
    pub data: [u8; noise::INITIATION_LEN],
}

impl HandshakePacket {
    pub fn bytes(&self) -> &[u8] {
        &self.data[..self.len as usize]
    }
}

/// What a worker asks of the engine.
#[derive(Clone, Copy, Debug)]
pub enum Event {
    /// The peer has traffic and no keypair to send it on, or its keypair wants a rekey.
    WantHandshake(u32),
    /// An authenticated packet of the peer came from a new address (roaming).
    Roamed { peer: u32, src: IpAddr, port: u16 },
}

/// Counters of the engine's decisions (the workers' are node errors).
#[derive(Default, Debug)]
pub struct EngineCounters {
    pub initiations_sent: AtomicU64,
    pub initiations_received: AtomicU64,
    pub responses_sent: AtomicU64,
    pub responses_received: AtomicU64,
    pub handshakes_completed: AtomicU64,
    pub cookies_sent: AtomicU64,
    pub cookies_received: AtomicU64,
    pub keepalives_sent: AtomicU64,
    /// Refusals, each a dropped handshake message.
    pub handshake_decrypt_failed: AtomicU64,
    pub handshake_unknown_peer: AtomicU64,
    pub handshake_replayed: AtomicU64,
    pub handshake_unknown_index: AtomicU64,
    pub handshake_bad_mac2: AtomicU64,
    pub handshake_malformed: AtomicU64,
    pub keypairs_expired: AtomicU64,
}

impl EngineCounters {
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
    /// (name, value) of each, for the CLI.
    pub fn list(&self) -> Vec<(&'static str, u64)> {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("initiations sent", g(&self.initiations_sent)),
            ("initiations received", g(&self.initiations_received)),
            ("responses sent", g(&self.responses_sent)),
            ("responses received", g(&self.responses_received)),
            ("handshakes completed", g(&self.handshakes_completed)),
            ("cookie replies sent", g(&self.cookies_sent)),
            ("cookie replies received", g(&self.cookies_received)),
            ("keepalives sent", g(&self.keepalives_sent)),
            (
                "handshake: decrypt failed (dropped)",
                g(&self.handshake_decrypt_failed),
            ),
            (
                "handshake: unknown peer key (dropped)",
                g(&self.handshake_unknown_peer),
            ),
            (
                "handshake: replayed initiation (dropped)",
                g(&self.handshake_replayed),
            ),
            (
                "handshake: unknown receiver index (dropped)",
                g(&self.handshake_unknown_index),
            ),
            (
                "handshake: under load without valid mac2 (cookie sent)",
                g(&self.handshake_bad_mac2),
            ),
            (
                "handshake: malformed (dropped)",
                g(&self.handshake_malformed),
            ),
            ("keypairs expired", g(&self.keypairs_expired)),
        ]
    }
}

/// The one WireGuard state of a dataplane (a feature table): the workers' published table and
/// clock, their queues to the engine, and the engine itself (control thread only).
pub struct Wireguard {
    pub table: Published<WgTable>,
    /// The engine's clock in ms, stored at each tick; the workers' notion of now.
    pub clock_ms: AtomicU64,
    pub handshakes: ArrayQueue<HandshakePacket>,
    pub events: ArrayQueue<Event>,
    pub counters: EngineCounters,
    pub engine: Mutex<engine::Engine>,
}

impl Default for Wireguard {
    fn default() -> Self {
        Self {
            table: Published::new(WgTable::default()),
            clock_ms: AtomicU64::new(0),
            handshakes: ArrayQueue::new(HANDSHAKE_QUEUE),
            events: ArrayQueue::new(HANDSHAKE_QUEUE),
            counters: EngineCounters::default(),
            engine: Mutex::new(engine::Engine::default()),
        }
    }
}

impl Wireguard {
    #[inline(always)]
    pub fn now_ms(&self) -> u64 {
        self.clock_ms.load(Ordering::Relaxed)
    }
}

/// UDP ports a wg interface listens on, which ip4-/ip6-local hand to wg4-/wg6-input (VPP's
/// udp_register_dst_port). Process-wide, one relaxed load per UDP packet for us; the control
/// service sets a port while a wg interface has it.
static PORTS: [AtomicU64; 1024] = [const { AtomicU64::new(0) }; 1024];

/// Start or stop handing UDP to `port` to WireGuard.
pub fn set_listening(port: u16, on: bool) {
    let (w, bit) = (port as usize / 64, 1u64 << (port % 64));
    if on {
        PORTS[w].fetch_or(bit, Ordering::Relaxed);
    } else {
        PORTS[w].fetch_and(!bit, Ordering::Relaxed);
    }
}

/// UDP to `port` is WireGuard's.
#[inline(always)]
pub fn is_listening(port: u16) -> bool {
    PORTS[port as usize / 64].load(Ordering::Relaxed) & (1u64 << (port % 64)) != 0
}
