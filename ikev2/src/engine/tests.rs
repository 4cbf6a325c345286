use super::*;
use std::net::Ipv4Addr;

const A: &str = "198.18.0.1:500";
const B: &str = "198.18.0.2:500";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn pair(psk_a: &[u8], psk_b: &[u8]) -> (Engine, Engine) {
    let (ia, ib) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2));
    let mut a = Engine::new(Config::default(), addr(A));
    a.add_profile(Profile::calico("p", addr(B), psk_a, ia, ib));
    let mut b = Engine::new(Config::default(), addr(B));
    b.add_profile(Profile::calico("p", addr(A), psk_b, ib, ia));
    (a, b)
}

/// Moves datagrams between the two engines until both are quiet; returns the other events.
fn run(now: Instant, a: &mut Engine, b: &mut Engine) -> (Vec<Event>, Vec<Event>) {
    let no_nat = Nat {
        ike: IKE_PORT,
        natt: NAT_T_PORT,
    };
    run_nat(now, &no_nat, a, b)
}

fn ups(ev: &[Event]) -> Vec<ChildSa> {
    ev.iter()
        .filter_map(|e| {
            if let Event::ChildUp(c) = e {
                Some(c.clone())
            } else {
                None
            }
        })
        .collect()
}

fn downs(ev: &[Event]) -> Vec<ChildSa> {
    ev.iter()
        .filter_map(|e| {
            if let Event::ChildDown(c) = e {
                Some(c.clone())
            } else {
                None
            }
        })
        .collect()
}

fn mirrored(x: &ChildSa, y: &ChildSa) {
    assert_eq!(x.spi_in, y.spi_out);
    assert_eq!(x.spi_out, y.spi_in);
    assert_eq!(x.encr_key_in, y.encr_key_out);
    assert_eq!(x.encr_key_out, y.encr_key_in);
    assert_eq!(x.salt_in, y.salt_out);
    assert_ne!(x.encr_key_in, x.encr_key_out);
    assert_eq!(x.encr_key_in.len(), 32);
    assert_eq!(x.salt_in.len(), 4);
}

fn up(a: &mut Engine, b: &mut Engine, now: Instant) -> (ChildSa, ChildSa) {
    assert!(a.initiate(now, "p").unwrap());
    // calico's once-a-second re-initiate is a no-op.
    assert!(!a.initiate(now, "p").unwrap());
    let (ea, eb) = run(now, a, b);
    let (ca, cb) = (ups(&ea), ups(&eb));
    assert_eq!((ca.len(), cb.len()), (1, 1), "{ea:?} {eb:?}");
    mirrored(&ca[0], &cb[0]);
    assert!(a.is_established("p") && b.is_established("p"));
    assert_eq!(b.half_open(), 0);
    (ca[0].clone(), cb[0].clone())
}

#[test]
fn calico_profile_comes_up_with_mirrored_child_keys() {
    let (mut a, mut b) = pair(b"secret", b"secret");
    let (ca, _) = up(&mut a, &mut b, Instant::now());
    assert_eq!(ca.encr, Encr::AesGcm16 { bits: 256 });
    assert_eq!(ca.ts_local, vec![TrafficSelector::ipv4_any()]);
}

#[test]
fn other_suites_and_invalid_ke_retry() {
    let (mut a, mut b) = pair(b"k", b"k");
    let x = IkeSuite {
        encr: Encr::AesGcm16 { bits: 128 },
        prf: crypto::Prf::HmacSha256,
        integ: None,
        dh: DhGroup::Curve25519,
    };
    let y = IkeSuite {
        encr: Encr::AesCbc { bits: 128 },
        prf: crypto::Prf::HmacSha256,
        integ: Some(Integ::HmacSha256_128),
        dh: DhGroup::Ecp256,
    };
    let esp = EspSuite {
        encr: Encr::AesCbc { bits: 128 },
        integ: Some(Integ::HmacSha256_128),
        esn: true,
        pfs: None,
    };
    a.profiles[0].ike = vec![x, y];
    a.profiles[0].esp = vec![EspSuite::CALICO, esp];
    // The responder takes only y: a's KE (X25519) is refused with INVALID_KE_PAYLOAD(19).
    b.profiles[0].ike = vec![y];
    b.profiles[0].esp = vec![esp];
    let now = Instant::now();
    a.initiate(now, "p").unwrap();
    let (ea, eb) = run(now, &mut a, &mut b);
    assert_eq!(b.counters.invalid_ke_sent, 1);
    assert_eq!(a.counters.invalid_ke_retries, 1);
    let (ca, cb) = (ups(&ea), ups(&eb));
    assert_eq!(ca.len(), 1);
    assert_eq!(ca[0].integ, Some(Integ::HmacSha256_128));
    assert!(ca[0].esn);
    assert_eq!(ca[0].integ_key_in, cb[0].integ_key_out);
    assert!(ca[0].salt_in.is_empty());
}

#[test]
fn wrong_psk_fails_on_both_sides() {
    let (mut a, mut b) = pair(b"right", b"wrong");
    let now = Instant::now();
    a.initiate(now, "p").unwrap();
    let (ea, eb) = run(now, &mut a, &mut b);
    assert!(ups(&ea).is_empty() && ups(&eb).is_empty());
    assert_eq!(b.counters.auth_failed, 1);
    assert_eq!(a.counters.auth_failed, 1);
    let failed = |ev: &[Event]| {
        ev.iter().any(|e| {
            matches!(
                e,
                Event::IkeDown {
                    reason: DownReason::AuthenticationFailed,
                    ..
                }
            )
        })
    };
    assert!(failed(&ea) && failed(&eb));
    assert_eq!(
        (a.ike_sa_count(), b.ike_sa_count(), b.half_open()),
        (0, 0, 0)
    );
}

#[test]
fn no_common_proposal() {
    let (mut a, mut b) = pair(b"k", b"k");
    b.profiles[0].ike[0].encr = Encr::AesCbc { bits: 128 };
    let now = Instant::now();
    a.initiate(now, "p").unwrap();
    let (ea, _) = run(now, &mut a, &mut b);
    assert!(ea.iter().any(|e| matches!(
        e,
        Event::IkeDown {
            reason: DownReason::NoProposalChosen,
            ..
        }
    )));
    assert_eq!(b.ike_sa_count(), 0);
}

#[test]
fn child_rekey_ike_rekey_and_delete() {
    let (mut a, mut b) = pair(b"k", b"k");
    let now = Instant::now();
    let (ca, _) = up(&mut a, &mut b, now);
    // Child rekey from the responder's side.
    let cb_spi = ca.spi_out;
    assert!(b.rekey_child(cb_spi));
    b.handle_timeout(now);
    let (ea, eb) = run(now, &mut a, &mut b);
    let (na, nb) = (ups(&ea), ups(&eb));
    assert_eq!((na.len(), nb.len()), (1, 1));
    mirrored(&na[0], &nb[0]);
    assert_ne!(na[0].encr_key_in, ca.encr_key_in);
    assert_eq!(
        downs(&ea).iter().map(|c| c.spi_in).collect::<Vec<_>>(),
        vec![ca.spi_in]
    );
    assert_eq!(downs(&eb).len(), 1);
    assert_eq!(a.children("p").len(), 1);
    // IKE rekey from the initiator: children survive, the old IKE SA goes.
    assert!(a.rekey_ike("p"));
    a.handle_timeout(now);
    let (ea, eb) = run(now, &mut a, &mut b);
    assert!(downs(&ea).is_empty() && downs(&eb).is_empty(), "{ea:?}");
    assert_eq!((a.ike_sa_count(), b.ike_sa_count()), (1, 1));
    assert_eq!(b.children("p"), vec![nb[0].clone()]);
    // The rekeyed IKE SA still works: a child rekey over it, then delete everything.
    assert!(a.rekey_child(na[0].spi_in));
    a.handle_timeout(now);
    let (ea, eb) = run(now, &mut a, &mut b);
    mirrored(&ups(&ea)[0], &ups(&eb)[0]);
    assert!(a.delete_ike("p"));
    a.handle_timeout(now);
    let (ea, eb) = run(now, &mut a, &mut b);
    assert_eq!((downs(&ea).len(), downs(&eb).len()), (1, 1));
    assert_eq!((a.ike_sa_count(), b.ike_sa_count()), (0, 0));
}

#[test]
fn retransmission_then_timeout() {
    let (mut a, _) = pair(b"k", b"k");
    let now = Instant::now();
    a.initiate(now, "p").unwrap();
    let mut sent = 0;
    let mut t = now;
    let mut down = false;
    for _ in 0..200 {
        t = a.next_timeout().unwrap_or(t + Duration::from_secs(1));
        a.handle_timeout(t);
        while let Some(e) = a.poll_event() {
            match e {
                Event::Send { .. } => sent += 1,
                Event::IkeDown {
                    reason: DownReason::Timeout,
                    ..
                } => down = true,
                _ => {}
            }
        }
        if down {
            break;
        }
    }
    assert!(down);
    assert_eq!(sent, Config::default().retransmit_tries as usize);
    // Backoff: the last try came well after the first.
    assert!(t - now >= Duration::from_secs(8), "{:?}", t - now);
}

#[test]
fn dpd_and_retransmitted_request_answered_from_cache() {
    let (mut a, mut b) = pair(b"k", b"k");
    let now = Instant::now();
    up(&mut a, &mut b, now);
    let later = now + Duration::from_secs(31);
    a.handle_timeout(later);
    let Some(Event::Send { data, .. }) = a.poll_event() else {
        panic!("no DPD")
    };
    b.handle_datagram(later, 500, addr(A), &data);
    b.handle_datagram(later, 500, addr(A), &data);
    assert_eq!(b.counters.retransmits_answered, 1);
    let mut answers = 0;
    while let Some(e) = b.poll_event() {
        if let Event::Send { data, .. } = e {
            answers += 1;
            a.handle_datagram(later, 500, addr(B), &data);
        }
    }
    assert_eq!(answers, 2);
    // The second answer is for a request no longer pending.
    assert_eq!(a.counters.bad_message_id, 1);
    assert!(a.is_established("p"));
}

#[test]
fn init_flood_gets_cookies_and_memory_stays_bounded() {
    let cfg = Config {
        cookie_threshold: 8,
        max_half_open: 16,
        ..Config::default()
    };
    let mut b = Engine::new(cfg, addr(B));
    b.add_profile(Profile::calico(
        "p",
        addr(A),
        b"k",
        Ipv4Addr::new(198, 18, 0, 2),
        Ipv4Addr::new(198, 18, 0, 1),
    ));
    let now = Instant::now();
    for _ in 0..1000 {
        let mut a = Engine::new(Config::default(), addr(A));
        a.add_profile(Profile::calico(
            "p",
            addr(B),
            b"k",
            Ipv4Addr::new(198, 18, 0, 1),
            Ipv4Addr::new(198, 18, 0, 2),
        ));
        a.initiate(now, "p").unwrap();
        let Some(Event::Send { data, .. }) = a.poll_event() else {
            panic!()
        };
        b.handle_datagram(now, 500, addr(A), &data);
        while b.poll_event().is_some() {}
    }
    assert_eq!(b.half_open(), 8);
    assert_eq!(b.ike_sa_count(), 8);
    assert_eq!(b.counters.cookies_sent, 992);
    // A real initiator answers the cookie and gets through.
    let mut a = Engine::new(Config::default(), addr(A));
    a.add_profile(Profile::calico(
        "p",
        addr(B),
        b"k",
        Ipv4Addr::new(198, 18, 0, 1),
        Ipv4Addr::new(198, 18, 0, 2),
    ));
    a.initiate(now, "p").unwrap();
    let (ea, _) = run(now, &mut a, &mut b);
    assert_eq!(ups(&ea).len(), 1);
    // Half-open SAs expire.
    b.handle_timeout(now + Duration::from_secs(31));
    assert_eq!(b.half_open(), 0);
    assert_eq!(b.counters.half_open_expired, 8);
}

#[test]
fn garbage_and_tampering_are_counted_not_fatal() {
    let (mut a, mut b) = pair(b"k", b"k");
    let now = Instant::now();
    up(&mut a, &mut b, now);
    b.handle_datagram(now, 500, addr(A), &[0u8; 3]);
    assert_eq!(b.counters.malformed, 1);
    a.rekey_child(a.children("p")[0].spi_in);
    a.handle_timeout(now);
    let Some(Event::Send { mut data, .. }) = a.poll_event() else {
        panic!()
    };
    let n = data.len();
    data[n - 1] ^= 0x55;
    b.handle_datagram(now, 500, addr(A), &data);
    assert_eq!(b.counters.integrity_failed, 1);
    assert!(b.poll_event().is_none());
}

/// (a, b) where a thinks it is 10.0.0.1 and b sees it as 198.18.0.1, as behind a NAT.
fn behind_nat() -> (Engine, Engine) {
    let (_, b) = pair(b"k", b"k");
    let mut a = Engine::new(Config::default(), addr("10.0.0.1:500"));
    a.add_profile(Profile::calico(
        "p",
        addr(B),
        b"k",
        Ipv4Addr::new(198, 18, 0, 1),
        Ipv4Addr::new(198, 18, 0, 2),
    ));
    (a, b)
}

#[test]
fn nat_detected_moves_ike_to_4500_and_children_to_udp_encap() {
    let (mut a, mut b) = behind_nat();
    let now = Instant::now();
    a.initiate(now, "p").unwrap();
    let Some(Event::Send {
        from_port: 500,
        data,
        ..
    }) = a.poll_event()
    else {
        panic!()
    };
    b.handle_datagram(now, 500, addr(A), &data);
    let Some(Event::Send {
        from_port: 500,
        data,
        ..
    }) = b.poll_event()
    else {
        panic!()
    };
    a.handle_datagram(now, 500, addr(B), &data);
    let Some(Event::Send {
        from_port: 4500,
        to,
        data,
    }) = a.poll_event()
    else {
        panic!("IKE_AUTH not from 4500")
    };
    assert_eq!(to, addr("198.18.0.2:4500"));
    assert_eq!(data[..4], [0, 0, 0, 0]);
    // Without the marker it is not IKE.
    b.handle_datagram(now, 4500, addr("198.18.0.1:4500"), &data[4..]);
    assert_eq!(b.counters.not_ike, 1);
    b.handle_datagram(now, 4500, addr("198.18.0.1:4500"), &data);
    let (ea, eb) = run(now, &mut a, &mut b);
    let (ca, cb) = (ups(&ea), ups(&eb));
    assert_eq!(
        (ca.len(), cb.len()),
        (1, 1),
        "{ea:?} {eb:?} {:?} {:?}",
        a.counters,
        b.counters
    );
    assert!(ca[0].udp_encap && cb[0].udp_encap);
    mirrored(&ca[0], &cb[0]);
}

/// A NAT in front of engine a: a's ports 500 and 4500 leave as 198.18.0.1:`ike` and :`natt`
/// (500 and 4500: no NAT); only datagrams to those come back in.
struct Nat {
    ike: u16,
    natt: u16,
}

impl Nat {
    fn out(&self, port: u16) -> u16 {
        if port == IKE_PORT {
            self.ike
        } else {
            self.natt
        }
    }
    /// a's own port for a datagram b sent to `to`; b must answer to the mapped port.
    fn back(&self, to: SocketAddr) -> u16 {
        assert_eq!(to.ip(), addr(A).ip());
        match to.port() {
            p if p == self.ike => IKE_PORT,
            p if p == self.natt => NAT_T_PORT,
            p => panic!(
                "b sent to port {p}, which the NAT does not map (500 -> {}, 4500 -> {})",
                self.ike, self.natt
            ),
        }
    }
}

/// Moves datagrams through the NAT until both are quiet; the other events.
fn run_nat(now: Instant, nat: &Nat, a: &mut Engine, b: &mut Engine) -> (Vec<Event>, Vec<Event>) {
    let (mut ea, mut eb) = (Vec::new(), Vec::new());
    for _ in 0..50 {
        let mut moved = false;
        while let Some(e) = a.poll_event() {
            match e {
                Event::Send {
                    from_port,
                    to,
                    data,
                } => {
                    moved = true;
                    let from = SocketAddr::new(addr(A).ip(), nat.out(from_port));
                    b.handle_datagram(now, to.port(), from, &data);
                }
                e => ea.push(e),
            }
        }
        while let Some(e) = b.poll_event() {
            match e {
                Event::Send {
                    from_port,
                    to,
                    data,
                } => {
                    moved = true;
                    let from = SocketAddr::new(addr(B).ip(), from_port);
                    a.handle_datagram(now, nat.back(to), from, &data);
                }
                e => eb.push(e),
            }
        }
        if !moved {
            break;
        }
    }
    (ea, eb)
}

#[test]
fn a_peer_behind_a_port_mapping_nat_is_answered_on_its_mapped_ports_and_followed() {
    let (mut a, mut b) = behind_nat();
    let now = Instant::now();
    let mut nat = Nat {
        ike: 40000,
        natt: 40001,
    };
    a.initiate(now, "p").unwrap();
    let (ea, eb) = run_nat(now, &nat, &mut a, &mut b);
    let (ca, cb) = (ups(&ea), ups(&eb));
    assert_eq!(
        (ca.len(), cb.len()),
        (1, 1),
        "{ea:?} {eb:?} {:?}",
        b.counters
    );
    mirrored(&ca[0], &cb[0]);
    // b's ESP in UDP goes to the port a's IKE came from last, not 4500.
    assert!(cb[0].udp_encap);
    assert_eq!(cb[0].peer, addr("198.18.0.1:40001"));
    assert_eq!(b.ike_sas()[0].peer, addr("198.18.0.1:40001"));
    // The IKE_SA_INIT came from :40000, the SA moved on to :40001: its index entry still goes.
    assert!(b.init_index.is_empty(), "{:?}", b.init_index);
    assert_eq!(b.counters.peer_moved, 0, "no child had to follow yet");
    // The NAT forgets a and maps its 4500 anew; a's next request (a child rekey) comes from
    // there, b answers there and tells its embedder the children's port moved.
    nat.natt = 40077;
    assert!(a.rekey_child(ca[0].spi_in));
    a.handle_timeout(now);
    let (ea, eb) = run_nat(now, &nat, &mut a, &mut b);
    let moved: Vec<_> = eb
        .iter()
        .filter_map(|e| match e {
            Event::PeerMoved {
                profile,
                spis_in,
                peer,
            } => Some((profile.clone(), spis_in.clone(), *peer)),
            _ => None,
        })
        .collect();
    assert_eq!(
        moved,
        vec![(
            "p".to_string(),
            vec![cb[0].spi_in],
            addr("198.18.0.1:40077")
        )]
    );
    assert_eq!(b.counters.peer_moved, 1);
    let (na, nb) = (ups(&ea), ups(&eb));
    assert_eq!((na.len(), nb.len()), (1, 1), "{ea:?} {eb:?}");
    assert_eq!(nb[0].peer, addr("198.18.0.1:40077"), "the new child too");
    // The sink hears of it through deliver().
    #[derive(Default)]
    struct Sink(Vec<(String, Vec<u32>, SocketAddr)>);
    impl ChildSaSink for Sink {
        fn child_up(&mut self, _: &ChildSa) {}
        fn child_down(&mut self, _: &ChildSa) {}
        fn peer_moved(&mut self, profile: &str, spis_in: &[u32], peer: SocketAddr) {
            self.0.push((profile.into(), spis_in.to_vec(), peer));
        }
    }
    let mut sink = Sink::default();
    let e = eb
        .into_iter()
        .find(|e| matches!(e, Event::PeerMoved { .. }))
        .unwrap();
    assert!(e.deliver(&mut sink).is_none());
    assert_eq!(sink.0, moved);
    // a, behind the NAT, does not follow b once established (RFC 7296 §2.23): b's request
    // arriving from another port is answered where b is.
    assert!(b.rekey_child(nb[0].spi_in));
    b.handle_timeout(now);
    let Some(Event::Send { data, .. }) = b.poll_event() else {
        panic!("b's rekey request")
    };
    a.handle_datagram(now, NAT_T_PORT, addr("198.18.0.2:4600"), &data);
    let mut to = None;
    while let Some(e) = a.poll_event() {
        match e {
            Event::Send { to: t, .. } => to = Some(t),
            Event::PeerMoved { .. } => panic!("a followed b from behind its NAT"),
            _ => {}
        }
    }
    assert_eq!(to, Some(addr("198.18.0.2:4500")));
    assert_eq!(a.counters.peer_move_ignored, 1);
    assert_eq!(a.ike_sas()[0].peer, addr("198.18.0.2:4500"));
}

#[test]
fn child_and_ike_lifetimes_trigger_rekeys() {
    let (mut a, mut b) = pair(b"k", b"k");
    a.profiles[0].child_rekey_after = Some(Duration::from_secs(60));
    a.profiles[0].ike_rekey_after = Some(Duration::from_secs(100));
    let now = Instant::now();
    let (ca, _) = up(&mut a, &mut b, now);
    let t = a.next_timeout().unwrap();
    assert!(t <= now + Duration::from_secs(60));
    let t1 = now + Duration::from_secs(61);
    a.handle_timeout(t1);
    let (ea, _) = run(t1, &mut a, &mut b);
    assert_eq!(ups(&ea).len(), 1);
    assert_eq!(downs(&ea)[0].spi_in, ca.spi_in);
    let t2 = now + Duration::from_secs(101);
    a.handle_timeout(t2);
    let (ea, _) = run(t2, &mut a, &mut b);
    assert!(
        ea.iter().any(|e| matches!(
            e,
            Event::IkeDown {
                reason: DownReason::Rekeyed,
                ..
            }
        )),
        "{ea:?}"
    );
    assert_eq!((a.ike_sa_count(), b.ike_sa_count()), (1, 1));
    assert_eq!(a.children("p").len(), 1);
}

/// Runs a whole exchange, handing message `which` (0-3: INIT request and response, AUTH
/// request and response) to its receiver first mutated and truncated, then intact.
fn exchange_with_mutation(
    which: usize,
    mutate: impl Fn(&mut Vec<u8>),
    cut: usize,
) -> (Vec<Event>, Vec<Event>) {
    let (mut a, b) = pair(b"k", b"k");
    let now = Instant::now();
    a.initiate(now, "p").unwrap();
    let mut engines = [a, b];
    let mut evs = [Vec::new(), Vec::new()];
    let mut n = 0;
    for _ in 0..6 {
        for side in 0..2 {
            let from_addr = if side == 0 { addr(A) } else { addr(B) };
            while let Some(e) = engines[side].poll_event() {
                let Event::Send { data, .. } = e else {
                    evs[side].push(e);
                    continue;
                };
                let to = &mut engines[1 - side];
                if n == which {
                    let mut bad = data.clone();
                    mutate(&mut bad);
                    to.handle_datagram(now, 500, from_addr, &bad);
                    to.handle_datagram(now, 500, from_addr, &data[..cut % data.len()]);
                }
                n += 1;
                to.handle_datagram(now, 500, from_addr, &data);
            }
        }
    }
    let [ea, eb] = evs;
    (ea, eb)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Truncated and altered IKE_SA_INIT and IKE_AUTH messages never panic either side, and
    /// whatever comes up afterwards has matching keys on both sides.
    #[test]
    fn mutated_exchanges_never_panic(which in 0usize..4, pos in 0usize..2000, val in proptest::num::u8::ANY, cut in 0usize..2000) {
        let (ea, eb) = exchange_with_mutation(which, |d| {
            let p = pos % d.len();
            d[p] = if d[p] == val { val ^ 0x80 } else { val };
        }, cut);
        let (ua, ub) = (ups(&ea), ups(&eb));
        if let (Some(x), Some(y)) = (ua.first(), ub.first()) {
            mirrored(x, y);
        }
    }
}

#[test]
fn a_dropped_mutation_leaves_the_exchange_intact() {
    // Flipping a byte of the AUTH request's ICV: dropped as an integrity failure, and the
    // genuine message that follows still brings the child up.
    let (ea, eb) = exchange_with_mutation(2, |d| *d.last_mut().unwrap() ^= 1, 10);
    mirrored(&ups(&ea)[0], &ups(&eb)[0]);
}

#[test]
fn sa_listing_and_profile_removal() {
    let (mut a, mut b) = pair(b"k", b"k");
    let now = Instant::now();
    up(&mut a, &mut b, now);
    let la = a.ike_sas();
    assert_eq!(la.len(), 1);
    assert!(la[0].initiator && la[0].established && !la[0].nat);
    assert_eq!((la[0].suite, la[0].children), (IkeSuite::CALICO, 1));
    let lb = b.ike_sas();
    assert_eq!((lb[0].spi_i, lb[0].spi_r), (la[0].spi_i, la[0].spi_r));
    assert!(a.remove_profile("p"));
    assert!(!a.remove_profile("p"));
    let (ea, eb) = run(now, &mut a, &mut b);
    assert_eq!((downs(&ea).len(), downs(&eb).len()), (1, 1));
    assert_eq!((a.ike_sa_count(), b.ike_sa_count()), (0, 0));
    assert!(a.initiate(now, "p").is_err());
}

#[test]
fn timers_never_stay_in_the_past_and_a_stale_rekeyed_sa_expires() {
    let (mut a, mut b) = pair(b"k", b"k");
    let now = Instant::now();
    up(&mut a, &mut b, now);
    // b rekeys the IKE SA, but its Delete of the old one is lost.
    assert!(b.rekey_ike("p"));
    b.handle_timeout(now);
    let Some(Event::Send { data, .. }) = b.poll_event() else {
        panic!()
    };
    a.handle_datagram(now, 500, addr(B), &data);
    let Some(Event::Send { data, .. }) = a.poll_event() else {
        panic!()
    };
    b.handle_datagram(now, 500, addr(A), &data);
    while a.poll_event().is_some() {}
    assert_eq!(a.ike_sa_count(), 2);
    a.cfg.dpd_interval = None;
    let mut t = now;
    let mut rounds = 0;
    while let Some(next) = a.next_timeout() {
        assert!(next > t, "timer stuck at {:?}", next - now);
        t = next;
        a.handle_timeout(t);
        while a.poll_event().is_some() {}
        rounds += 1;
        assert!(rounds < 5);
    }
    assert!(t >= now + Duration::from_secs(30));
    assert_eq!(
        a.ike_sa_count(),
        1,
        "the superseded IKE SA was not forgotten"
    );
    assert_eq!(a.children("p").len(), 1);
}

#[test]
fn simultaneous_child_rekeys_leave_one_child() {
    for _ in 0..8 {
        let (mut a, mut b) = pair(b"k", b"k");
        let now = Instant::now();
        let (ca, cb) = up(&mut a, &mut b, now);
        assert!(a.rekey_child(ca.spi_in) && b.rekey_child(cb.spi_in));
        a.handle_timeout(now);
        b.handle_timeout(now);
        // The two requests cross.
        let Some(Event::Send { data: ra, .. }) = a.poll_event() else {
            panic!()
        };
        let Some(Event::Send { data: rb, .. }) = b.poll_event() else {
            panic!()
        };
        b.handle_datagram(now, 500, addr(A), &ra);
        a.handle_datagram(now, 500, addr(B), &rb);
        run(now, &mut a, &mut b);
        let (la, lb) = (a.children("p"), b.children("p"));
        assert_eq!((la.len(), lb.len()), (1, 1), "{la:?} {lb:?}");
        mirrored(&la[0], &lb[0]);
        assert_ne!(la[0].spi_in, ca.spi_in);
    }
}

#[test]
fn cookies_survive_one_secret_rotation_but_not_two() {
    for (wait, accepted) in [(301, true), (601, false)] {
        let (mut a, mut b) = pair(b"k", b"k");
        b.cfg.cookie_threshold = 0;
        let now = Instant::now();
        a.initiate(now, "p").unwrap();
        let Some(Event::Send { data: first, .. }) = a.poll_event() else {
            panic!()
        };
        b.handle_datagram(now, 500, addr(A), &first);
        let Some(Event::Send { data: cookie, .. }) = b.poll_event() else {
            panic!()
        };
        a.handle_datagram(now, 500, addr(B), &cookie);
        let Some(Event::Send {
            data: with_cookie, ..
        }) = a.poll_event()
        else {
            panic!()
        };
        // Something else rotates the secret meanwhile (once at 301 s, again at 601 s).
        let mut other = a.poll_event();
        assert!(other.is_none());
        for t in (301..=wait).step_by(300) {
            b.handle_datagram(now + Duration::from_secs(t), 500, addr(A), &first);
            other = b.poll_event();
        }
        assert!(matches!(other, Some(Event::Send { .. })));
        b.handle_datagram(now + Duration::from_secs(wait), 500, addr(A), &with_cookie);
        assert_eq!(b.half_open() == 1, accepted, "cookie after {wait} s");
    }
}

#[test]
fn debug_output_has_no_key_material() {
    let (mut a, mut b) = pair(b"the-psk-value", b"the-psk-value");
    let (ca, _) = up(&mut a, &mut b, Instant::now());
    let s = format!(
        "{:?} {:?} {:?}",
        a.profiles[0],
        ca,
        Event::ChildUp(ca.clone())
    );
    assert!(
        !s.contains("the-psk-value") && !s.contains("116, 104, 101"),
        "{s}"
    );
    for key in [&ca.encr_key_in, &ca.encr_key_out] {
        assert!(
            !s.contains(&format!("{key:?}")) && !s.contains(&format!("{:?}", key[0..4].to_vec()))
        );
    }
}

#[test]
fn an_ike_sa_without_its_child_is_deleted_so_initiate_starts_over() {
    let (mut a, mut b) = pair(b"k", b"k");
    b.profiles[0].esp[0].encr = Encr::AesGcm16 { bits: 128 };
    let now = Instant::now();
    a.initiate(now, "p").unwrap();
    let (ea, _) = run(now, &mut a, &mut b);
    assert!(ups(&ea).is_empty());
    assert!(ea.iter().any(|e| matches!(e, Event::IkeUp { .. })));
    assert!(ea.iter().any(|e| matches!(
        e,
        Event::IkeDown {
            reason: DownReason::Deleted,
            ..
        }
    )));
    assert_eq!((a.ike_sa_count(), b.ike_sa_count()), (0, 0));
    assert_eq!(b.counters.no_proposal_chosen, 1);
    assert!(a.initiate(now, "p").unwrap());
}

#[test]
fn initial_contact_from_a_restarted_peer_replaces_the_stale_sas() {
    let (mut a, mut b) = pair(b"k", b"k");
    let now = Instant::now();
    let (_, cb) = up(&mut a, &mut b, now);
    // a restarts: a fresh engine, same profile, no memory of the old SA.
    let (mut a2, _) = pair(b"k", b"k");
    a2.initiate(now, "p").unwrap();
    let (_, eb) = run(now, &mut a2, &mut b);
    assert_eq!(downs(&eb), vec![cb]);
    assert!(eb.iter().any(|e| matches!(
        e,
        Event::IkeDown {
            reason: DownReason::Replaced,
            ..
        }
    )));
    assert_eq!(ups(&eb).len(), 1);
    assert_eq!((b.ike_sa_count(), b.children("p").len()), (1, 1));
}
