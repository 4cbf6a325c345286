//! rvpp's WireGuard handshake and transport against boringtun, a second implementation: an
//! initiation of ours is answered by boringtun, the keys agree both ways, and a tampered or
//! replayed data message is refused.

use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use rvpp_dataplane::wireguard::noise::{self, Identity, PeerKeys};
use rvpp_dataplane::wireguard::session::Keypair;

/// A minimal IPv4 packet (header only, protocol 253) from `src`.
fn ip4(src: [u8; 4], extra: usize) -> Vec<u8> {
    let mut p = vec![0u8; 20 + extra];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&((20 + extra) as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 253;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&[198, 18, 0, 1]);
    p
}

fn data_msg(k: &Keypair, plain: &[u8]) -> Vec<u8> {
    let c = k.next_counter().unwrap();
    let padded = (plain.len() + 15) & !15;
    let mut body = plain.to_vec();
    body.resize(padded, 0);
    let tag = k.seal(c, &mut body);
    let mut m = vec![noise::MSG_DATA, 0, 0, 0];
    m.extend_from_slice(&k.remote_index.to_le_bytes());
    m.extend_from_slice(&c.to_le_bytes());
    m.extend_from_slice(&body);
    m.extend_from_slice(&tag);
    m
}

#[test]
fn rvpp_initiates_boringtun_responds_and_data_flows_both_ways() {
    let ours = Identity::new([0x11; 32]);
    let theirs_secret = StaticSecret::from([0x22; 32]);
    let theirs_public = PublicKey::from(&theirs_secret);
    let mut bt = Tunn::new(
        theirs_secret,
        PublicKey::from(ours.public),
        None,
        None,
        1234,
        None,
    );
    let pk = PeerKeys::new(&ours, theirs_public.to_bytes(), [0; 32]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let (init, st) = noise::initiation(
        &ours,
        &pk,
        77,
        noise::random_key(),
        noise::tai64n(now),
        None,
    );
    let mut out = vec![0u8; 2048];
    let resp = match bt.decapsulate(None, &init, &mut out) {
        TunnResult::WriteToNetwork(r) => r.to_vec(),
        other => panic!(
            "boringtun did not answer the initiation: {:?}",
            kind(&other)
        ),
    };
    assert!(noise::mac1_ok(&resp, &ours.mac1_key));
    let keys = noise::consume_response(&ours, &pk, &st, &resp).expect("response opens");
    let kp = Keypair::new(&keys, 0);

    // Ours -> boringtun.
    let pkt = ip4([10, 0, 0, 1], 33);
    let m = data_msg(&kp, &pkt);
    match bt.decapsulate(None, &m, &mut out) {
        TunnResult::WriteToTunnelV4(p, src) => {
            assert_eq!(p, &pkt[..]);
            assert_eq!(src.octets(), [10, 0, 0, 1]);
        }
        other => panic!("boringtun refused our data: {:?}", kind(&other)),
    }
    // The same message again is a replay for boringtun too.
    assert!(matches!(
        bt.decapsulate(None, &m, &mut out),
        TunnResult::Err(_)
    ));

    // boringtun -> ours.
    let back = ip4([10, 0, 0, 2], 100);
    let enc = match bt.encapsulate(&back, &mut out) {
        TunnResult::WriteToNetwork(e) => e.to_vec(),
        other => panic!("boringtun did not encrypt: {:?}", kind(&other)),
    };
    assert_eq!(enc[0], noise::MSG_DATA);
    assert_eq!(u32::from_le_bytes(enc[4..8].try_into().unwrap()), 77);
    let ctr = u64::from_le_bytes(enc[8..16].try_into().unwrap());
    let n = enc.len();
    let tag: [u8; 16] = enc[n - 16..].try_into().unwrap();
    let mut body = enc[16..n - 16].to_vec();
    let mut tampered = body.clone();
    tampered[0] ^= 1;
    assert!(
        !kp.open(ctr, &mut tampered, &tag),
        "a tampered message must not open"
    );
    assert!(kp.open(ctr, &mut body, &tag));
    assert_eq!(&body[..back.len()], &back[..]);
    assert!(kp.replay.mark(ctr));
    assert!(!kp.replay.mark(ctr), "replayed counter");
}

#[test]
fn boringtun_initiates_rvpp_responds() {
    let ours = Identity::new([0x33; 32]);
    let theirs_secret = StaticSecret::from([0x44; 32]);
    let theirs_public = PublicKey::from(&theirs_secret).to_bytes();
    let mut bt = Tunn::new(
        theirs_secret,
        PublicKey::from(ours.public),
        None,
        None,
        99,
        None,
    );
    let mut out = vec![0u8; 2048];
    let init = match bt.format_handshake_initiation(&mut out, false) {
        TunnResult::WriteToNetwork(i) => i.to_vec(),
        other => panic!("no initiation: {:?}", kind(&other)),
    };
    assert!(noise::mac1_ok(&init, &ours.mac1_key));
    let pk = PeerKeys::new(&ours, theirs_public, [0; 32]);
    let (seen, pk) = noise::consume_initiation(&ours, &init, |k| {
        (*k == theirs_public).then_some((&pk, [0; 12]))
    })
    .expect("boringtun's initiation opens");
    let (resp, keys) = noise::response(pk, &seen, 555, noise::random_key(), None);
    // boringtun answers our response with a keepalive on the new keys.
    let ka = match bt.decapsulate(None, &resp, &mut out) {
        TunnResult::WriteToNetwork(k) => k.to_vec(),
        other => panic!("boringtun refused our response: {:?}", kind(&other)),
    };
    let kp = Keypair::new(&keys, 0);
    assert_eq!(ka.len(), 32, "a keepalive");
    let tag: [u8; 16] = ka[16..].try_into().unwrap();
    assert!(kp.open(0, &mut [], &tag));
    let pkt = ip4([10, 9, 9, 9], 0);
    match bt.decapsulate(None, &data_msg(&kp, &pkt), &mut out) {
        TunnResult::WriteToTunnelV4(p, _) => assert_eq!(p, &pkt[..]),
        other => panic!("boringtun refused our data: {:?}", kind(&other)),
    }
    // A wrong static key is refused before any keys exist.
    let stranger = Identity::new([0x55; 32]);
    assert!(!noise::mac1_ok(&init, &stranger.mac1_key));
    let r = noise::consume_initiation(&stranger, &init, |_| None);
    assert!(r.is_err());
}

fn kind(r: &TunnResult<'_>) -> &'static str {
    match r {
        TunnResult::Done => "done",
        TunnResult::Err(_) => "error",
        TunnResult::WriteToNetwork(_) => "network",
        TunnResult::WriteToTunnelV4(..) => "tunnel v4",
        TunnResult::WriteToTunnelV6(..) => "tunnel v6",
    }
}
