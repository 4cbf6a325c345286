//! WireGuard's Noise_IKpsk2 handshake (whitepaper §5.4) and its cookie MACs (§5.4.4, §5.4.7),
//! on x25519-dalek, chacha20poly1305 and blake2. Runs on the control side only: the workers
//! see nothing of it but the transport keys it derives and the MAC1 check.

use blake2::digest::consts::U16;
use blake2::digest::{FixedOutput, Update};
use blake2::{Blake2s256, Blake2sMac, Digest};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Tag, XChaCha20Poly1305};
use hmac::SimpleHmac;
use x25519_dalek::{PublicKey, StaticSecret};

pub const CONSTRUCTION: &[u8] = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
pub const IDENTIFIER: &[u8] = b"WireGuard v1 zx2c4 Jason@zx2c4.com";
const LABEL_MAC1: &[u8] = b"mac1----";
const LABEL_COOKIE: &[u8] = b"cookie--";

pub const MSG_INITIATION: u8 = 1;
pub const MSG_RESPONSE: u8 = 2;
pub const MSG_COOKIE_REPLY: u8 = 3;
pub const MSG_DATA: u8 = 4;
pub const INITIATION_LEN: usize = 148;
pub const RESPONSE_LEN: usize = 92;
pub const COOKIE_REPLY_LEN: usize = 64;
/// Type, reserved, receiver index, counter.
pub const DATA_HDR: usize = 16;
pub const TAG_LEN: usize = 16;

pub type Key = [u8; 32];

/// Why a handshake message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HsError {
    /// Wrong length or type.
    Malformed,
    /// An AEAD field did not open: wrong keys or a tampered message.
    Decrypt,
    /// The initiator's static key is no peer of this interface.
    UnknownPeer,
    /// The initiation's timestamp is not newer than the last one (a replayed initiation).
    Replay,
    /// A response or cookie reply for no handshake in progress.
    UnknownIndex,
}

pub fn hash(parts: &[&[u8]]) -> Key {
    let mut h = Blake2s256::new();
    for p in parts {
        Digest::update(&mut h, p);
    }
    h.finalize().into()
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Key {
    let mut m = <SimpleHmac<Blake2s256> as KeyInit>::new_from_slice(key).expect("any key length");
    for p in parts {
        Update::update(&mut m, p);
    }
    m.finalize_fixed().into()
}

/// KDF_n of the whitepaper: n chained HMAC outputs keyed by HMAC(key, input).
fn kdf<const N: usize>(key: &Key, input: &[u8]) -> [Key; N] {
    let t0 = hmac(key, &[input]);
    let mut out = [[0u8; 32]; N];
    let mut prev: Option<Key> = None;
    for (i, o) in out.iter_mut().enumerate() {
        let n = [i as u8 + 1];
        *o = match prev {
            None => hmac(&t0, &[&n]),
            Some(p) => hmac(&t0, &[&p, &n]),
        };
        prev = Some(*o);
    }
    out
}

/// Keyed BLAKE2s with a 16-byte output (MAC1, MAC2, cookies).
pub fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    let mut m = <Blake2sMac<U16> as blake2::digest::KeyInit>::new_from_slice(key)
        .expect("key of at most 32 bytes");
    for p in parts {
        Update::update(&mut m, p);
    }
    m.finalize_fixed().into()
}

/// A counter nonce: 4 zero bytes, then the counter little-endian.
#[inline(always)]
pub fn nonce(counter: u64) -> chacha20poly1305::Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    n.into()
}

fn seal(key: &Key, buf: &mut [u8], aad: &[u8]) -> Tag {
    ChaCha20Poly1305::new(key.into())
        .encrypt_in_place_detached(&nonce(0), aad, buf)
        .expect("handshake fields are short")
}

fn open(key: &Key, buf: &mut [u8], tag: &[u8], aad: &[u8]) -> Result<(), HsError> {
    ChaCha20Poly1305::new(key.into())
        .decrypt_in_place_detached(&nonce(0), aad, buf, Tag::from_slice(tag))
        .map_err(|_| HsError::Decrypt)
}

fn dh(secret: &StaticSecret, public: &Key) -> Key {
    secret.diffie_hellman(&PublicKey::from(*public)).to_bytes()
}

/// A public key from a private one.
pub fn public_key(private: &Key) -> Key {
    PublicKey::from(&StaticSecret::from(*private)).to_bytes()
}

/// 32 random bytes (a private key, an ephemeral, a cookie secret).
pub fn random_key() -> Key {
    let mut k = [0u8; 32];
    getrandom::getrandom(&mut k).expect("the kernel's random source");
    k
}

/// TAI64N of a Unix time in nanoseconds.
pub fn tai64n(unix_nanos: u128) -> [u8; 12] {
    let mut t = [0u8; 12];
    let secs = (unix_nanos / 1_000_000_000) as u64 + (1u64 << 62);
    t[..8].copy_from_slice(&secs.to_be_bytes());
    t[8..].copy_from_slice(&((unix_nanos % 1_000_000_000) as u32).to_be_bytes());
    t
}

/// This interface's static key and the MAC keys derived from it.
#[derive(Clone)]
pub struct Identity {
    secret: StaticSecret,
    pub private: Key,
    pub public: Key,
    /// HASH(LABEL_MAC1 || our public key): what MAC1 of messages to us is keyed with.
    pub mac1_key: Key,
    /// HASH(LABEL_COOKIE || our public key): what our cookie replies are sealed with.
    pub cookie_key: Key,
}

impl Identity {
    pub fn new(private: Key) -> Self {
        let secret = StaticSecret::from(private);
        let public = PublicKey::from(&secret).to_bytes();
        Self {
            secret,
            private,
            public,
            mac1_key: hash(&[LABEL_MAC1, &public]),
            cookie_key: hash(&[LABEL_COOKIE, &public]),
        }
    }
}

/// A peer's static key and what the handshake precomputes from it.
#[derive(Clone)]
pub struct PeerKeys {
    pub public: Key,
    pub psk: Key,
    /// DH(our static, their static).
    ss: Key,
    /// MAC1 and cookie keys of messages we send to this peer.
    pub mac1_key: Key,
    pub cookie_key: Key,
}

impl PeerKeys {
    pub fn new(id: &Identity, public: Key, psk: Key) -> Self {
        Self {
            public,
            psk,
            ss: dh(&id.secret, &public),
            mac1_key: hash(&[LABEL_MAC1, &public]),
            cookie_key: hash(&[LABEL_COOKIE, &public]),
        }
    }
}

/// Transport keys a handshake ends with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionKeys {
    pub send: Key,
    pub recv: Key,
    /// Our index (what the peer puts in its receiver field).
    pub local_index: u32,
    /// The peer's index (what we put in ours).
    pub remote_index: u32,
    pub initiator: bool,
}

/// An initiation we sent and wait for the response to.
#[derive(Clone)]
pub struct Initiator {
    pub local_index: u32,
    eph: StaticSecret,
    c: Key,
    h: Key,
    /// MAC1 of the initiation, the associated data of a cookie reply to it.
    pub mac1: [u8; 16],
}

fn initial_chain(responder_public: &Key) -> (Key, Key) {
    let c = hash(&[CONSTRUCTION]);
    let h = hash(&[&c, IDENTIFIER]);
    (c, hash(&[&h, responder_public]))
}

/// Fill MAC1 and MAC2 (`cookie`, or zeros) at the end of handshake message `msg`.
pub fn set_macs(msg: &mut [u8], mac1_key: &Key, cookie: Option<&[u8; 16]>) -> [u8; 16] {
    let n = msg.len();
    let m1 = mac(mac1_key, &[&msg[..n - 32]]);
    msg[n - 32..n - 16].copy_from_slice(&m1);
    let m2 = cookie.map_or([0; 16], |c| mac(c, &[&msg[..n - 16]]));
    msg[n - 16..].copy_from_slice(&m2);
    m1
}

/// MAC1 of a handshake message to us is right (`mac1_key` is ours).
pub fn mac1_ok(msg: &[u8], mac1_key: &Key) -> bool {
    let n = msg.len();
    n >= 32 && mac(mac1_key, &[&msg[..n - 32]]) == msg[n - 32..n - 16]
}

/// MAC2 of a handshake message is the one `cookie` gives.
pub fn mac2_ok(msg: &[u8], cookie: &[u8; 16]) -> bool {
    let n = msg.len();
    n >= 32 && mac(cookie, &[&msg[..n - 16]]) == msg[n - 16..]
}

/// Handshake initiation (type 1) to `peer`, with ephemeral private key `eph`.
pub fn initiation(
    id: &Identity,
    peer: &PeerKeys,
    local_index: u32,
    eph: Key,
    timestamp: [u8; 12],
    cookie: Option<&[u8; 16]>,
) -> ([u8; INITIATION_LEN], Initiator) {
    let mut m = [0u8; INITIATION_LEN];
    m[0] = MSG_INITIATION;
    m[4..8].copy_from_slice(&local_index.to_le_bytes());
    let (c, h) = initial_chain(&peer.public);
    let eph = StaticSecret::from(eph);
    let e_pub = PublicKey::from(&eph).to_bytes();
    m[8..40].copy_from_slice(&e_pub);
    let [c] = kdf::<1>(&c, &e_pub);
    let h = hash(&[&h, &e_pub]);
    let [c, k] = kdf::<2>(&c, &dh(&eph, &peer.public));
    m[40..72].copy_from_slice(&id.public);
    let tag = seal(&k, &mut m[40..72], &h);
    m[72..88].copy_from_slice(&tag);
    let h = hash(&[&h, &m[40..88]]);
    let [c, k] = kdf::<2>(&c, &peer.ss);
    m[88..100].copy_from_slice(&timestamp);
    let tag = seal(&k, &mut m[88..100], &h);
    m[100..116].copy_from_slice(&tag);
    let h = hash(&[&h, &m[88..116]]);
    let mac1 = set_macs(&mut m, &peer.mac1_key, cookie);
    (
        m,
        Initiator {
            local_index,
            eph,
            c,
            h,
            mac1,
        },
    )
}

/// An initiation we accepted, before we answer it.
pub struct SeenInitiation {
    pub peer_public: Key,
    pub remote_index: u32,
    pub timestamp: [u8; 12],
    e_pub: Key,
    c: Key,
    h: Key,
}

/// Open an initiation (MACs already checked); `peer` finds the sender's keys by its public
/// key. `last_timestamp` refuses a replayed initiation.
pub fn consume_initiation<'p>(
    id: &Identity,
    m: &[u8],
    peer: impl FnOnce(&Key) -> Option<(&'p PeerKeys, [u8; 12])>,
) -> Result<(SeenInitiation, &'p PeerKeys), HsError> {
    if m.len() != INITIATION_LEN || m[0] != MSG_INITIATION {
        return Err(HsError::Malformed);
    }
    let remote_index = u32::from_le_bytes([m[4], m[5], m[6], m[7]]);
    let (c, h) = initial_chain(&id.public);
    let mut e_pub = [0u8; 32];
    e_pub.copy_from_slice(&m[8..40]);
    let [c] = kdf::<1>(&c, &e_pub);
    let h = hash(&[&h, &e_pub]);
    let [c, k] = kdf::<2>(&c, &dh(&id.secret, &e_pub));
    let mut s = [0u8; 32];
    s.copy_from_slice(&m[40..72]);
    open(&k, &mut s, &m[72..88], &h)?;
    let h = hash(&[&h, &m[40..88]]);
    let (pk, last) = peer(&s).ok_or(HsError::UnknownPeer)?;
    let [c, k] = kdf::<2>(&c, &pk.ss);
    let mut ts = [0u8; 12];
    ts.copy_from_slice(&m[88..100]);
    open(&k, &mut ts, &m[100..116], &h)?;
    if ts <= last {
        return Err(HsError::Replay);
    }
    let h = hash(&[&h, &m[88..116]]);
    Ok((
        SeenInitiation {
            peer_public: s,
            remote_index,
            timestamp: ts,
            e_pub,
            c,
            h,
        },
        pk,
    ))
}

/// Handshake response (type 2) to an accepted initiation; the responder's session keys.
pub fn response(
    peer: &PeerKeys,
    seen: &SeenInitiation,
    local_index: u32,
    eph: Key,
    cookie: Option<&[u8; 16]>,
) -> ([u8; RESPONSE_LEN], SessionKeys) {
    let mut m = [0u8; RESPONSE_LEN];
    m[0] = MSG_RESPONSE;
    m[4..8].copy_from_slice(&local_index.to_le_bytes());
    m[8..12].copy_from_slice(&seen.remote_index.to_le_bytes());
    let eph = StaticSecret::from(eph);
    let e_pub = PublicKey::from(&eph).to_bytes();
    m[12..44].copy_from_slice(&e_pub);
    let [c] = kdf::<1>(&seen.c, &e_pub);
    let h = hash(&[&seen.h, &e_pub]);
    let [c] = kdf::<1>(&c, &dh(&eph, &seen.e_pub));
    let [c] = kdf::<1>(&c, &dh(&eph, &peer.public));
    let [c, t, k] = kdf::<3>(&c, &peer.psk);
    let h = hash(&[&h, &t]);
    let tag = seal(&k, &mut [], &h);
    m[44..60].copy_from_slice(&tag);
    let [recv, send] = kdf::<2>(&c, &[]);
    set_macs(&mut m, &peer.mac1_key, cookie);
    (
        m,
        SessionKeys {
            send,
            recv,
            local_index,
            remote_index: seen.remote_index,
            initiator: false,
        },
    )
}

/// The receiver index of a response or cookie reply (our index).
pub fn receiver_index(m: &[u8]) -> Option<u32> {
    let r = m.get(4..8)?;
    Some(u32::from_le_bytes([r[0], r[1], r[2], r[3]]))
}

/// Open a response to our initiation `st` (MACs already checked): the initiator's keys.
pub fn consume_response(
    id: &Identity,
    peer: &PeerKeys,
    st: &Initiator,
    m: &[u8],
) -> Result<SessionKeys, HsError> {
    if m.len() != RESPONSE_LEN || m[0] != MSG_RESPONSE {
        return Err(HsError::Malformed);
    }
    if u32::from_le_bytes([m[8], m[9], m[10], m[11]]) != st.local_index {
        return Err(HsError::UnknownIndex);
    }
    let remote_index = u32::from_le_bytes([m[4], m[5], m[6], m[7]]);
    let mut e_pub = [0u8; 32];
    e_pub.copy_from_slice(&m[12..44]);
    let [c] = kdf::<1>(&st.c, &e_pub);
    let h = hash(&[&st.h, &e_pub]);
    let [c] = kdf::<1>(&c, &dh(&st.eph, &e_pub));
    let [c] = kdf::<1>(&c, &dh(&id.secret, &e_pub));
    let [c, t, k] = kdf::<3>(&c, &peer.psk);
    let h = hash(&[&h, &t]);
    open(&k, &mut [], &m[44..60], &h)?;
    let [send, recv] = kdf::<2>(&c, &[]);
    Ok(SessionKeys {
        send,
        recv,
        local_index: st.local_index,
        remote_index,
        initiator: true,
    })
}

/// The cookie for a sender at `addr` (its address and port bytes) under secret `secret`.
pub fn cookie(secret: &Key, addr: &[u8]) -> [u8; 16] {
    mac(secret, &[addr])
}

/// Cookie reply (type 3) to a handshake message whose sender index is `receiver` and whose
/// MAC1 was `mac1`; sealed with our cookie key.
pub fn cookie_reply(
    id: &Identity,
    receiver: u32,
    mac1: &[u8],
    cookie: &[u8; 16],
    nonce24: [u8; 24],
) -> [u8; COOKIE_REPLY_LEN] {
    let mut m = [0u8; COOKIE_REPLY_LEN];
    m[0] = MSG_COOKIE_REPLY;
    m[4..8].copy_from_slice(&receiver.to_le_bytes());
    m[8..32].copy_from_slice(&nonce24);
    m[32..48].copy_from_slice(cookie);
    let tag = XChaCha20Poly1305::new((&id.cookie_key).into())
        .encrypt_in_place_detached((&nonce24).into(), mac1, &mut m[32..48])
        .expect("16 bytes");
    m[48..64].copy_from_slice(&tag);
    m
}

/// Open a cookie reply from `peer` to our message whose MAC1 was `mac1`.
pub fn consume_cookie_reply(
    peer: &PeerKeys,
    mac1: &[u8; 16],
    m: &[u8],
) -> Result<[u8; 16], HsError> {
    if m.len() != COOKIE_REPLY_LEN || m[0] != MSG_COOKIE_REPLY {
        return Err(HsError::Malformed);
    }
    let mut c = [0u8; 16];
    c.copy_from_slice(&m[32..48]);
    let n: [u8; 24] = m[8..32].try_into().map_err(|_| HsError::Malformed)?;
    XChaCha20Poly1305::new((&peer.cookie_key).into())
        .decrypt_in_place_detached((&n).into(), mac1, &mut c, Tag::from_slice(&m[48..64]))
        .map_err(|_| HsError::Decrypt)?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Identity, Identity) {
        (Identity::new([1; 32]), Identity::new([2; 32]))
    }

    #[test]
    fn handshake_between_two_of_ours_gives_mirrored_keys() {
        let (a, b) = pair();
        let a_pk = PeerKeys::new(&a, b.public, [0; 32]);
        let b_pk = PeerKeys::new(&b, a.public, [0; 32]);
        let (m1, st) = initiation(&a, &a_pk, 7, [3; 32], tai64n(1), None);
        assert!(mac1_ok(&m1, &b.mac1_key));
        assert!(!mac1_ok(&m1, &a.mac1_key));
        let (seen, pk) =
            consume_initiation(&b, &m1, |k| (*k == a.public).then_some((&b_pk, [0; 12]))).unwrap();
        assert_eq!(seen.remote_index, 7);
        let (m2, kb) = response(pk, &seen, 9, [4; 32], None);
        assert!(mac1_ok(&m2, &a.mac1_key));
        let ka = consume_response(&a, &a_pk, &st, &m2).unwrap();
        assert_eq!((ka.send, ka.recv), (kb.recv, kb.send));
        assert_eq!((ka.remote_index, kb.remote_index), (9, 7));
        assert_ne!(ka.send, ka.recv);
    }

    #[test]
    fn replayed_or_tampered_initiation_is_refused() {
        let (a, b) = pair();
        let a_pk = PeerKeys::new(&a, b.public, [0; 32]);
        let b_pk = PeerKeys::new(&b, a.public, [0; 32]);
        let (m1, _) = initiation(&a, &a_pk, 7, [3; 32], tai64n(5), None);
        let same_ts = consume_initiation(&b, &m1, |_| Some((&b_pk, tai64n(5))));
        assert_eq!(same_ts.err(), Some(HsError::Replay));
        let mut bad = m1;
        bad[50] ^= 1;
        assert_eq!(
            consume_initiation(&b, &bad, |_| Some((&b_pk, [0; 12]))).err(),
            Some(HsError::Decrypt)
        );
        let unknown = consume_initiation(&b, &m1, |_| None);
        assert_eq!(unknown.err(), Some(HsError::UnknownPeer));
    }

    #[test]
    fn cookie_reply_opens_with_the_right_mac1_only() {
        let (a, b) = pair();
        let a_pk = PeerKeys::new(&a, b.public, [0; 32]);
        let secret = [9; 32];
        let ck = cookie(&secret, &[198, 18, 0, 1, 0xca, 0x6c]);
        let (m1, st) = initiation(&a, &a_pk, 7, [3; 32], tai64n(1), None);
        let r = cookie_reply(&b, 7, &m1[116..132], &ck, [5; 24]);
        assert_eq!(consume_cookie_reply(&a_pk, &st.mac1, &r), Ok(ck));
        assert_eq!(
            consume_cookie_reply(&a_pk, &[0; 16], &r),
            Err(HsError::Decrypt)
        );
        let (m1, _) = initiation(&a, &a_pk, 8, [3; 32], tai64n(2), Some(&ck));
        assert!(mac2_ok(&m1, &ck));
        assert!(!mac2_ok(&m1, &[0; 16]));
    }
}
