//! WireGuard through the whole graph: two rvpp "nodes" in one process (each its own graph,
//! tables and engine), their uplinks wired together by the test. Pod A's packet starts the
//! handshake, the engines answer each other, and data flows both ways, checked with
//! etherparse. Then bad input, each a counted drop with every buffer back in the pool: a
//! replayed, a tampered, a truncated message, an unknown receiver index, a handshake with a bad
//! MAC1, an inner source outside the allowed IPs, an unknown static key. And the engine's
//! rules: cookie replies under load, rekey after REKEY_AFTER_TIME, keys dropped after
//! REJECT_AFTER_TIME, persistent keepalive, and a roaming endpoint.
//!
//! Node A: uplink pg0 198.18.0.1/24, pod 198.19.0.2 on pg1 (198.19.0.1/24).
//! Node B: uplink pg0 198.18.0.2/24, pod 198.19.1.2 on pg1 (198.19.1.1/24). Port 51820.
//! With IPv6 added: uplinks fd00::N/64, pods fd00:19:N-1::2 behind wg0 (IPv4 outer) and
//! fd00:29:N-1::2 behind wg1 (IPv6 outer, sharing port 51820 with wg0).

mod common;
use common::*;
use etherparse::{Ethernet2Header, Ipv4Header, PacketBuilder};
use rvpp_dataplane::buffer::BufferPool;
use rvpp_dataplane::feature::FeatureTables;
use rvpp_dataplane::forwarding::{Forwarding, Path, Prefix};
use rvpp_dataplane::runtime::Runtime;
use rvpp_dataplane::tables::Shared;
use rvpp_dataplane::wireguard::engine::{Outgoing, PeerConfig};
use rvpp_dataplane::wireguard::node::{self, encap_error, input_error};
use rvpp_dataplane::wireguard::{self as wgdp, noise, session, Wireguard};
use std::net::IpAddr;
use std::sync::Arc;

const PORT: u16 = 51820;

struct Node {
    pool: Arc<BufferPool>,
    fwd: Forwarding,
    rt: Runtime,
    wg: Arc<Wireguard>,
    up: Frames,
    pod: Frames,
    if_up: u32,
    if_pod: u32,
    wg_sw: u32,
    public: noise::Key,
}

fn a(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// One node: `me` is 1 (A) or 2 (B); its uplink MAC, its peer's.
fn node(me: u8, private: noise::Key) -> Node {
    let (my_mac, their_mac) = if me == 1 {
        (MAC0, PEER0)
    } else {
        (PEER0, MAC0)
    };
    let pool = BufferPool::with_backing(2048, 2048, false).unwrap();
    let shared = Shared::new();
    let tables = FeatureTables::default();
    let (graph, mut fwd) = feature_graph(&shared, &tables);
    let if_up = fwd.interface_add("pg0", "pg", my_mac, true, 1500).unwrap();
    let if_pod = fwd.interface_add("pg1", "pg", MAC1, true, 1500).unwrap();
    let wg_sw = fwd
        .interface_add("wg0", "wireguard", [0; 6], false, 1420)
        .unwrap();
    let pod_net = format!("198.19.{}.1/24", me - 1);
    for (sw, p) in [(if_up, format!("198.18.0.{me}/24")), (if_pod, pod_net)] {
        fwd.address_add(sw, Prefix::parse(&p).unwrap()).unwrap();
    }
    for sw in [if_up, if_pod, wg_sw] {
        fwd.set_admin_up(sw, true).unwrap();
    }
    fwd.set_unnumbered(wg_sw, Some(if_up)).unwrap();
    // What the control service turns on for a wireguard interface.
    for f in node::FEATURES {
        fwd.feature_enable(wg_sw, f.arc, f.node, true).unwrap();
    }
    let other = 3 - me;
    fwd.neighbor_add(if_up, a(&format!("198.18.0.{other}")), their_mac, true)
        .unwrap();
    fwd.neighbor_add(if_pod, a(&format!("198.19.{}.2", me - 1)), PEER1, true)
        .unwrap();
    let remote_pods = Prefix::parse(&format!("198.19.{}.0/24", other - 1)).unwrap();
    fwd.route_add(0, remote_pods, vec![Path::attached(wg_sw)])
        .unwrap();
    let wg = tables.get::<Wireguard>();
    let i = wg.engine.lock().unwrap().add_interface(
        &wg,
        (wg_sw, 0, PORT, a(&format!("198.18.0.{me}"))),
        private,
        1,
    );
    wgdp::set_listening(PORT, true);
    let mut rt = Runtime::new(graph, pool.local(), shared, 0, "test".into()).unwrap();
    let (up, pod) = (Frames::default(), Frames::default());
    rt.set_tx(if_up, Box::new(Capture(up.clone()))).unwrap();
    rt.set_tx(if_pod, Box::new(Capture(pod.clone()))).unwrap();
    Node {
        pool,
        fwd,
        rt,
        wg,
        up,
        pod,
        if_up,
        if_pod,
        wg_sw,
        public: i.public,
    }
}

impl Node {
    fn add_peer(&self, public: noise::Key, other: u8, keepalive: u16) -> u32 {
        let endpoint = a(&format!("198.18.0.{other}"));
        let allowed = [
            format!("198.19.{}.0/24", other - 1),
            format!("fd00:19:{}::/64", other - 1),
        ];
        self.add_peer_on(self.wg_sw, public, (endpoint, PORT), &allowed, keepalive)
    }
    fn add_peer_on(
        &self,
        sw: u32,
        public: noise::Key,
        (endpoint, port): (IpAddr, u16),
        allowed: &[String],
        keepalive: u16,
    ) -> u32 {
        let allowed = allowed
            .iter()
            .map(|p| {
                let (ip, len) = p.split_once('/').unwrap();
                (a(ip), len.parse().unwrap())
            })
            .collect();
        let c = PeerConfig {
            sw_if_index: sw,
            public,
            psk: [0; 32],
            endpoint,
            port,
            table_id: 0,
            encap_fib: 0,
            persistent_keepalive: keepalive,
            allowed,
        };
        self.wg
            .engine
            .lock()
            .unwrap()
            .add_peer(&self.wg, c)
            .unwrap()
    }
    /// IPv6: addresses on both sides, IPv6 pods behind wg0 (fd00:19:N::/64), and wg1 with an
    /// IPv6 source on wg0's port (as calico's two interfaces share 51820) for pods in
    /// fd00:29:N::/64. wg1's sw_if_index and key.
    fn add_v6(&mut self, me: u8, private: noise::Key) -> (u32, noise::Key) {
        let other = 3 - me;
        let their_mac = if me == 1 { PEER0 } else { MAC0 };
        let (up, pod, wg0) = (self.if_up, self.if_pod, self.wg_sw);
        let f = &mut self.fwd;
        for (sw, p) in [
            (up, format!("fd00::{me}/64")),
            (pod, format!("fd00:19:{}::1/64", me - 1)),
            (pod, format!("fd00:29:{}::1/64", me - 1)),
        ] {
            f.address_add(sw, Prefix::parse(&p).unwrap()).unwrap();
        }
        f.neighbor_add(up, a(&format!("fd00::{other}")), their_mac, true)
            .unwrap();
        for n in ["19", "29"] {
            f.neighbor_add(pod, a(&format!("fd00:{n}:{}::2", me - 1)), PEER1, true)
                .unwrap();
        }
        let wg1 = f
            .interface_add("wg1", "wireguard", [0; 6], false, 1400)
            .unwrap();
        f.set_admin_up(wg1, true).unwrap();
        f.set_unnumbered(wg1, Some(up)).unwrap();
        for feat in node::FEATURES {
            f.feature_enable(wg1, feat.arc, feat.node, true).unwrap();
        }
        for (n, sw) in [("19", wg0), ("29", wg1)] {
            let p = Prefix::parse(&format!("fd00:{n}:{}::/64", other - 1)).unwrap();
            f.route_add(0, p, vec![Path::attached(sw)]).unwrap();
        }
        let i = self.wg.engine.lock().unwrap().add_interface(
            &self.wg,
            (wg1, 1, PORT, a(&format!("fd00::{me}"))),
            private,
            1,
        );
        (wg1, i.public)
    }
    fn send(&mut self, sw: u32, frame: &[u8]) {
        let bufs = self.rt.buffers();
        let bi = bufs.alloc_from_bytes(frame).unwrap();
        bufs.meta(bi).rx_sw_if_index = sw;
        self.rt.inject("ethernet-input", &[bi]).unwrap();
    }
    fn rx_uplink(&mut self, frames: Vec<Vec<u8>>) {
        let sw = self.if_up;
        for f in frames {
            self.send(sw, &f);
        }
    }
    fn rx_pod(&mut self, frame: &[u8]) {
        let sw = self.if_pod;
        self.send(sw, frame);
    }
    /// Run the engine at `now_ms`; inject what it sends.
    fn tick(&mut self, now_ms: u64) -> usize {
        let out: Vec<Outgoing> =
            self.wg
                .engine
                .lock()
                .unwrap()
                .tick(&self.wg, now_ms, now_ns(now_ms));
        let n = out.len();
        for o in out {
            let bufs = self.rt.buffers();
            let bi = bufs.alloc_from_bytes(&o.frame).unwrap();
            let m = bufs.meta(bi);
            m.fib_index = o.fib_index;
            m.flags |= rvpp_dataplane::buffer::flags::LOCALLY_ORIGINATED;
            let lookup = if o.frame[0] >> 4 == 6 {
                "ip6-lookup"
            } else {
                "ip4-lookup"
            };
            self.rt.inject(lookup, &[bi]).unwrap();
        }
        n
    }
    fn error(&self, n: &str, code: u16) -> u64 {
        let i = self.rt.graph().error_index(n, code).unwrap();
        self.rt.stats().errors[i as usize].get()
    }
    fn input(&self, code: u16) -> u64 {
        self.error(node::INPUT4, code)
    }
    fn no_leaks(mut self) {
        self.rt.buffers().flush();
        drop(self.rt);
        assert_eq!(self.pool.in_use(), 0, "buffers leaked");
        assert_eq!(self.pool.double_frees(), 0);
    }
}

/// The TAI64N clock the engines stamp initiations with, tied to the test's clock.
fn now_ns(ms: u64) -> u128 {
    1_700_000_000_000_000_000 + ms as u128 * 1_000_000
}

fn take(f: &Frames) -> Vec<Vec<u8>> {
    std::mem::take(&mut *f.lock().unwrap())
}

/// A UDP packet from pod A (198.19.0.2, or `src`) to pod B, as pod A's tap sends it.
fn pod_a_frame(src: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(PEER1, MAC1)
        .ipv4(src, [198, 19, 1, 2], 64)
        .udp(1000, 2000);
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

fn pod_b_frame(payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(PEER1, MAC1)
        .ipv4([198, 19, 1, 2], [198, 19, 0, 2], 64)
        .udp(2000, 1000);
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

/// A's packet `first` (dropped: no keys) starts a handshake the engines finish at `t`..`t+2`;
/// A's keepalive confirms the keypair at B. `v6`: the outer headers are IPv6.
fn handshake(na: &mut Node, nb: &mut Node, first: &[u8], t: u64, v6: bool) {
    let (encap, input) = if v6 {
        (node::ENCAP6.node, node::INPUT6)
    } else {
        (node::ENCAP4.node, node::INPUT4)
    };
    let no_keys = na.error(encap, encap_error::NO_KEYS);
    let (hs, ka) = (
        nb.error(input, input_error::HANDSHAKE),
        nb.error(input, input_error::KEEPALIVE),
    );
    na.rx_pod(first);
    assert_eq!(na.error(encap, encap_error::NO_KEYS), no_keys + 1);
    assert_eq!(na.tick(t), 1, "an initiation");
    nb.rx_uplink(take(&na.up));
    assert_eq!(nb.error(input, input_error::HANDSHAKE), hs + 1);
    assert_eq!(nb.tick(t + 1), 1, "a response");
    na.rx_uplink(take(&nb.up));
    assert_eq!(na.tick(t + 2), 1, "the confirming keepalive");
    nb.rx_uplink(take(&na.up));
    assert_eq!(nb.error(input, input_error::KEEPALIVE), ka + 1);
}

/// Two nodes that know each other, with A's first packet having driven the handshake to
/// its end.
fn pair() -> (Node, Node) {
    let (mut na, mut nb) = (node(1, [0xa1; 32]), node(2, [0xb2; 32]));
    na.add_peer(nb.public, 2, 0);
    nb.add_peer(na.public, 1, 0);
    na.tick(1000);
    nb.tick(1000);
    handshake(
        &mut na,
        &mut nb,
        &pod_a_frame([198, 19, 0, 2], b"first"),
        1001,
        false,
    );
    (na, nb)
}

/// A UDP packet between IPv6 pods.
fn pod6_frame(src: &str, dst: &str, payload: &[u8]) -> Vec<u8> {
    let o = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap().octets();
    let b = PacketBuilder::ethernet2(PEER1, MAC1)
        .ipv6(o(src), o(dst), 64)
        .udp(1000, 2000);
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

fn inner_payload(frame: &[u8]) -> (Ipv4Header, Vec<u8>) {
    let (_, rest) = Ethernet2Header::from_slice(frame).unwrap();
    let (ih, l4) = Ipv4Header::from_slice(rest).unwrap();
    (ih, l4[8..].to_vec())
}

#[test]
fn handshake_then_data_both_ways() {
    let (mut na, mut nb) = pair();
    na.rx_pod(&pod_a_frame([198, 19, 0, 2], b"hello from pod a"));
    let wire = take(&na.up);
    assert_eq!(wire.len(), 1);
    // On the wire: UDP 51820 -> 51820, a data message, padded to 16 with its tag.
    let (_, rest) = Ethernet2Header::from_slice(&wire[0]).unwrap();
    let (outer, udp) = Ipv4Header::from_slice(rest).unwrap();
    assert_eq!(
        (outer.source, outer.destination),
        ([198, 18, 0, 1], [198, 18, 0, 2])
    );
    assert_eq!(outer.header_checksum, outer.calc_header_checksum());
    assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), PORT);
    assert_eq!(udp[8], noise::MSG_DATA);
    assert_eq!((udp.len() - 8 - 16 - 16) % 16, 0);
    nb.rx_uplink(wire);
    let got = take(&nb.pod);
    assert_eq!(got.len(), 1, "decrypted and forwarded to pod b");
    let (ih, payload) = inner_payload(&got[0]);
    assert_eq!(
        (ih.source, ih.destination),
        ([198, 19, 0, 2], [198, 19, 1, 2])
    );
    assert_eq!(ih.time_to_live, 62, "one hop at each node");
    assert_eq!(payload, b"hello from pod a");
    // And back: B sends on the keypair A's keepalive confirmed.
    nb.rx_pod(&pod_b_frame(b"and back"));
    na.rx_uplink(take(&nb.up));
    let got = take(&na.pod);
    assert_eq!(got.len(), 1);
    assert_eq!(inner_payload(&got[0]).1, b"and back");
    assert_eq!(
        na.input(input_error::DECRYPTED),
        1,
        "B's data (the response is a handshake)"
    );
    na.no_leaks();
    nb.no_leaks();
}

#[test]
fn bad_input_is_counted_and_every_buffer_comes_back() {
    let (mut na, mut nb) = pair();
    na.rx_pod(&pod_a_frame([198, 19, 0, 2], b"payload to replay"));
    let good = take(&na.up).remove(0);
    nb.rx_uplink(vec![good.clone()]);
    assert_eq!(take(&nb.pod).len(), 1);
    // The same message again: a replay.
    nb.rx_uplink(vec![good.clone()]);
    assert_eq!(nb.input(input_error::REPLAY), 1);
    // A byte of ciphertext flipped (a new counter, so it is not a replay).
    na.rx_pod(&pod_a_frame([198, 19, 0, 2], b"payload to tamper"));
    let mut bad = take(&na.up).remove(0);
    let n = bad.len();
    bad[n - 20] ^= 0x40;
    nb.rx_uplink(vec![bad]);
    assert_eq!(nb.input(input_error::DECRYPT), 1);
    // An unknown receiver index (offset: eth 14 + ip 20 + udp 8 + 4).
    let mut unknown = good.clone();
    unknown[14 + 20 + 8 + 4] ^= 0xff;
    nb.rx_uplink(vec![unknown]);
    assert_eq!(nb.input(input_error::UNKNOWN_RECEIVER), 1);
    // Truncated: a data message shorter than header + tag (the IP and UDP lengths shrunk).
    let mut short = good[..14 + 20 + 8 + 20].to_vec();
    short[16..18].copy_from_slice(&((20 + 8 + 20) as u16).to_be_bytes());
    let mut h = Ipv4Header::from_slice(&short[14..]).unwrap().0;
    h.header_checksum = h.calc_header_checksum();
    short[14..34].copy_from_slice(&h.to_bytes());
    short[38..40].copy_from_slice(&((8 + 20) as u16).to_be_bytes());
    nb.rx_uplink(vec![short]);
    assert_eq!(nb.input(input_error::SHORT), 1);
    // An inner source outside A's allowed IPs at B.
    na.rx_pod(&pod_a_frame([198, 19, 9, 9], b"spoofed source"));
    nb.rx_uplink(take(&na.up));
    assert_eq!(nb.input(input_error::ALLOWED_IPS), 1);
    assert!(take(&nb.pod).is_empty());
    // A handshake initiation whose MAC1 is wrong never reaches the engine.
    let ctl_before = nb.input(input_error::HANDSHAKE);
    na.tick(1003 + session::REKEY_AFTER_TIME_MS);
    na.rx_pod(&pod_a_frame([198, 19, 0, 2], b"rekey"));
    na.tick(1004 + session::REKEY_AFTER_TIME_MS);
    let mut init: Vec<Vec<u8>> = take(&na.up)
        .into_iter()
        .filter(|f| f.len() == 14 + 20 + 8 + noise::INITIATION_LEN)
        .collect();
    assert_eq!(init.len(), 1, "the rekey initiation");
    let mut bad_mac = init[0].clone();
    bad_mac[14 + 20 + 8 + 116] ^= 1;
    nb.rx_uplink(vec![bad_mac]);
    assert_eq!(nb.input(input_error::BAD_MAC), 1);
    assert_eq!(nb.input(input_error::HANDSHAKE), ctl_before);
    nb.rx_uplink(std::mem::take(&mut init));
    assert_eq!(nb.input(input_error::HANDSHAKE), ctl_before + 1);
    na.no_leaks();
    nb.no_leaks();
}

#[test]
fn an_unknown_static_key_is_refused_and_counted() {
    let (mut na, mut nb) = (node(1, [0xa1; 32]), node(2, [0xb2; 32]));
    na.add_peer(nb.public, 2, 0);
    // B knows some other key for its peer, not A's.
    nb.add_peer(noise::public_key(&[0x77; 32]), 1, 0);
    na.rx_pod(&pod_a_frame([198, 19, 0, 2], b"x"));
    na.tick(10);
    nb.rx_uplink(take(&na.up));
    assert_eq!(nb.tick(11), 0, "no response");
    let c = |w: &Wireguard| {
        w.counters
            .handshake_unknown_peer
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    assert_eq!(c(&nb.wg), 1);
    na.no_leaks();
    nb.no_leaks();
}

#[test]
fn under_load_the_responder_asks_for_a_cookie_first() {
    let (mut na, mut nb) = (node(1, [0xa1; 32]), node(2, [0xb2; 32]));
    na.add_peer(nb.public, 2, 0);
    nb.add_peer(na.public, 1, 0);
    nb.wg.engine.lock().unwrap().under_load_at = 0;
    na.rx_pod(&pod_a_frame([198, 19, 0, 2], b"x"));
    na.tick(10);
    nb.rx_uplink(take(&na.up));
    assert_eq!(nb.tick(11), 1, "a cookie reply, not a response");
    let cookie = take(&nb.up);
    assert_eq!(cookie[0].len(), 14 + 20 + 8 + noise::COOKIE_REPLY_LEN);
    na.rx_uplink(cookie);
    na.tick(12);
    let load = std::sync::atomic::Ordering::Relaxed;
    assert_eq!(na.wg.counters.cookies_received.load(load), 1);
    // The retry after REKEY_TIMEOUT carries MAC2 and is answered.
    assert_eq!(na.tick(12 + session::REKEY_TIMEOUT_MS), 1);
    nb.rx_uplink(take(&na.up));
    assert_eq!(nb.tick(13 + session::REKEY_TIMEOUT_MS), 1);
    assert_eq!(nb.wg.counters.handshakes_completed.load(load), 1);
    assert_eq!(nb.wg.counters.handshake_bad_mac2.load(load), 1);
    na.rx_uplink(take(&nb.up));
    assert_eq!(
        na.tick(14 + session::REKEY_TIMEOUT_MS),
        1,
        "the confirming keepalive"
    );
    assert_eq!(na.wg.counters.handshakes_completed.load(load), 1);
    na.no_leaks();
    nb.no_leaks();
}

#[test]
fn timers_rekey_expire_keepalive_and_roaming() {
    let (mut na, mut nb) = pair();
    let load = std::sync::atomic::Ordering::Relaxed;
    // Past REKEY_AFTER_TIME the initiator's next packet still goes out and asks for a rekey.
    let t = 1003 + session::REKEY_AFTER_TIME_MS;
    na.tick(t);
    na.rx_pod(&pod_a_frame([198, 19, 0, 2], b"late"));
    assert_eq!(na.error(node::ENCAP4.node, encap_error::ENCRYPTED), 1);
    let sent = na.wg.counters.initiations_sent.load(load);
    na.tick(t + 1);
    assert_eq!(
        na.wg.counters.initiations_sent.load(load),
        sent + 1,
        "rekey initiation"
    );
    take(&na.up);
    // Past REJECT_AFTER_TIME the keys are gone on both sides.
    let t = 1003 + session::REJECT_AFTER_TIME_MS;
    na.tick(t);
    nb.tick(t);
    assert!(nb.wg.counters.keypairs_expired.load(load) >= 1);
    nb.rx_pod(&pod_b_frame(b"too late"));
    assert_eq!(nb.error(node::ENCAP4.node, encap_error::NO_KEYS), 1);
    na.no_leaks();
    nb.no_leaks();

    // Persistent keepalive: a peer with 1 s sends one a second after its last packet.
    let (mut na, mut nb) = (node(1, [0xa1; 32]), node(2, [0xb2; 32]));
    na.add_peer(nb.public, 2, 1);
    nb.add_peer(na.public, 1, 0);
    na.tick(2000);
    assert_eq!(
        na.wg.counters.initiations_sent.load(load),
        1,
        "keepalive needs keys first"
    );
    nb.rx_uplink(take(&na.up));
    nb.tick(2001);
    na.rx_uplink(take(&nb.up));
    na.tick(2002);
    nb.rx_uplink(take(&na.up));
    let ka = na.wg.counters.keepalives_sent.load(load);
    na.tick(2500);
    assert_eq!(na.wg.counters.keepalives_sent.load(load), ka, "not yet");
    na.tick(3100);
    assert_eq!(na.wg.counters.keepalives_sent.load(load), ka + 1);
    // Roaming: B sees A's keepalive from a new address and answers there from then on.
    let mut moved = take(&na.up).remove(0);
    moved[14 + 12..14 + 16].copy_from_slice(&[198, 18, 0, 3]);
    let mut h = Ipv4Header::from_slice(&moved[14..]).unwrap().0;
    h.header_checksum = h.calc_header_checksum();
    moved[14..34].copy_from_slice(&h.to_bytes());
    nb.rx_uplink(vec![moved]);
    assert_eq!(nb.input(input_error::KEEPALIVE), 2);
    nb.tick(3101);
    let t = nb.wg.table.load();
    let p = t.peers().next().unwrap();
    assert_eq!(p.endpoint, a("198.18.0.3"), "endpoint follows the peer");
    na.no_leaks();
    nb.no_leaks();
}

#[test]
fn ipv6_inner_over_ipv4_and_ipv6_outer() {
    use etherparse::{Ipv6Header, UdpHeader};
    let (mut na, mut nb) = pair();
    let (wg1a, pub_a) = na.add_v6(1, [0xa3; 32]);
    let (wg1b, pub_b) = nb.add_v6(2, [0xb4; 32]);
    let check_pod6 = |f: &[u8], src: &str, want: &[u8]| {
        let (ih, rest) = Ipv6Header::from_slice(&f[14..]).unwrap();
        assert_eq!(std::net::Ipv6Addr::from(ih.source), a(src));
        assert_eq!(ih.hop_limit, 62);
        assert!(rest.ends_with(want));
    };
    // IPv6 pods over wg0's IPv4 outer keypair.
    na.rx_pod(&pod6_frame("fd00:19:0::2", "fd00:19:1::2", b"v6 over v4"));
    nb.rx_uplink(take(&na.up));
    let got = take(&nb.pod);
    assert_eq!(
        got.len(),
        1,
        "{:?}",
        nb.rt.graph().error_index(node::INPUT4, 0)
    );
    check_pod6(&got[0], "fd00:19:0::2", b"v6 over v4");
    // wg1: IPv6 outside too, its own peers and handshake.
    let v6_pods = |n: u8| [format!("fd00:29:{n}::/64")];
    na.add_peer_on(wg1a, pub_b, (a("fd00::2"), PORT), &v6_pods(1), 0);
    nb.add_peer_on(wg1b, pub_a, (a("fd00::1"), PORT), &v6_pods(0), 0);
    let pkt = pod6_frame("fd00:29:0::2", "fd00:29:1::2", b"v6 over v6");
    handshake(&mut na, &mut nb, &pkt, 2000, true);
    na.rx_pod(&pkt);
    let wire = take(&na.up);
    assert_eq!(wire.len(), 1);
    let (oh, l4) = Ipv6Header::from_slice(&wire[0][14..]).unwrap();
    assert_eq!(std::net::Ipv6Addr::from(oh.destination), a("fd00::2"));
    let (udp, payload) = UdpHeader::from_slice(l4).unwrap();
    assert_eq!(udp.destination_port, PORT);
    assert_eq!(
        udp.checksum,
        udp.calc_checksum_ipv6(&oh, payload).unwrap(),
        "IPv6 outer UDP checksum"
    );
    nb.rx_uplink(wire);
    let got = take(&nb.pod);
    assert_eq!(got.len(), 1);
    check_pod6(&got[0], "fd00:29:0::2", b"v6 over v6");
    assert_eq!(nb.error(node::INPUT6, input_error::DECRYPTED), 1);
    na.no_leaks();
    nb.no_leaks();
}

#[test]
fn a_handshake_flood_fills_the_queue_and_is_answered_with_cookies_only() {
    let (mut na, mut nb) = (node(1, [0xa1; 32]), node(2, [0xb2; 32]));
    na.add_peer(nb.public, 2, 0);
    nb.add_peer(na.public, 1, 0);
    na.rx_pod(&pod_a_frame([198, 19, 0, 2], b"x"));
    na.tick(10);
    let init = take(&na.up).remove(0);
    // Copies of one initiation (its MAC1 is valid): the queue takes its capacity, the rest
    // are counted drops at the node.
    let extra = 500;
    for _ in 0..wgdp::HANDSHAKE_QUEUE + extra {
        nb.rx_uplink(vec![init.clone()]);
    }
    assert_eq!(
        nb.input(input_error::HANDSHAKE),
        wgdp::HANDSHAKE_QUEUE as u64
    );
    assert_eq!(nb.input(input_error::QUEUE_FULL), extra as u64);
    // Under load every one gets a cookie reply (no MAC2 yet), a bounded number per tick,
    // and none costs a response or a keypair.
    let per_tick = nb.wg.engine.lock().unwrap().per_tick;
    let mut t = 11;
    while !nb.wg.handshakes.is_empty() {
        assert!(nb.tick(t) <= per_tick);
        take(&nb.up);
        t += 1;
    }
    let load = std::sync::atomic::Ordering::Relaxed;
    let c = &nb.wg.counters;
    assert_eq!(c.cookies_sent.load(load), wgdp::HANDSHAKE_QUEUE as u64);
    assert_eq!(c.responses_sent.load(load), 0);
    assert!(nb.wg.table.load().peers().all(|p| p.current.is_none()));
    na.no_leaks();
    nb.no_leaks();
}

#[test]
fn a_checksum_left_to_offload_is_completed_before_encryption() {
    let (mut na, mut nb) = pair();
    // As a tap with checksum offload hands it over: the UDP checksum field holds anything.
    let mut f = pod_a_frame([198, 19, 0, 2], b"offloaded checksum");
    f[14 + 20 + 6..14 + 20 + 8].copy_from_slice(&[0x12, 0x34]);
    let bufs = na.rt.buffers();
    let bi = bufs.alloc_from_bytes(&f).unwrap();
    let m = bufs.meta(bi);
    m.rx_sw_if_index = na.if_pod;
    m.flags |= rvpp_dataplane::buffer::flags::OFFLOAD_L4_CKSUM;
    na.rt.inject("ethernet-input", &[bi]).unwrap();
    nb.rx_uplink(take(&na.up));
    let got = take(&nb.pod);
    assert_eq!(got.len(), 1);
    let (ih, l4) = Ipv4Header::from_slice(&got[0][14..]).unwrap();
    let (udp, payload) = etherparse::UdpHeader::from_slice(l4).unwrap();
    assert_eq!(payload, b"offloaded checksum");
    assert_eq!(udp.checksum, udp.calc_checksum_ipv4(&ih, payload).unwrap());
    na.no_leaks();
    nb.no_leaks();
}

/// A pod's TCP super-frame into the wireguard interface is cut before it is sealed (gso-ip4):
/// B opens one packet per segment and its pod gets every segment with right checksums.
#[test]
fn a_pods_super_frame_is_segmented_then_sealed() {
    use common::tunnel_offload::*;
    let (mut na, mut nb) = pair();
    let f = pod_tcp(PEER1, MAC1, [198, 19, 0, 2], [198, 19, 1, 2], 5000);
    let pod = na.if_pod;
    inject_offload(&mut na.rt, pod, &f, Some(1300));
    let sealed = take(&na.up);
    assert_eq!(sealed.len(), 4, "one wireguard packet per segment");
    nb.rx_uplink(sealed);
    check_segments(&take(&nb.pod), false, Encap::Plain, 1300, 5000);
    assert_eq!(na.error(node::ENCAP4.node, encap_error::GSO), 0);
    na.no_leaks();
    nb.no_leaks();
}

/// A live restart's hand-over of A's keypair: A sends on the counters it kept (the peer
/// takes them), then drops under its own counter instead of reusing the next holder's; after
/// a failed take-over (take-back) it sends again, past them, and the peer takes that too.
#[test]
fn a_handed_over_keypair_stops_short_then_sends_on_when_taken_back() {
    use rvpp_dataplane::wireguard::session::HANDOVER_RESERVE;
    let (mut na, mut nb) = pair();
    let k = {
        let t = na.wg.table.load();
        let k = t.peers().next().unwrap().current.clone().unwrap();
        k
    };
    let first = k.hand_over();
    let frame = pod_a_frame([198, 19, 0, 2], b"after the hand-over");
    let left = first - k.sent();
    assert!(left <= HANDOVER_RESERVE);
    for _ in 0..left {
        na.rx_pod(&frame);
    }
    nb.rx_uplink(take(&na.up));
    assert_eq!(
        take(&nb.pod).len() as u64,
        left,
        "the peer takes the kept counters"
    );
    na.rx_pod(&frame);
    assert!(take(&na.up).is_empty());
    assert_eq!(na.error(node::ENCAP4.node, encap_error::HANDED_OVER), 1);
    k.take_back();
    na.rx_pod(&frame);
    nb.rx_uplink(take(&na.up));
    assert_eq!(take(&nb.pod).len(), 1, "the peer takes the jump");
    na.no_leaks();
    nb.no_leaks();
}
