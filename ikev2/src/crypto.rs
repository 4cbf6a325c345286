//! Algorithms (RustCrypto): Diffie-Hellman groups, PRFs and prf+, the SK payload ciphers and
//! integrity, and the PSK AUTH value (RFC 7296 §2.13-2.15, §2.17, §3.14; RFC 5282 for GCM).

use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use aes_gcm::aead::{Aead, KeyInit, Payload as AeadPayload};
use hmac::{Hmac, Mac};
use num_bigint::BigUint;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CryptoError {
    /// The peer's public value is the wrong size or not a valid point/element.
    BadPublicValue,
    /// ICV or AEAD tag mismatch.
    Integrity,
    /// Ciphertext length or padding wrong.
    BadCiphertext,
    /// No randomness from the OS.
    Random,
}

pub fn random_bytes(buf: &mut [u8]) -> Result<(), CryptoError> {
    getrandom::getrandom(buf).map_err(|_| CryptoError::Random)
}

pub fn random_vec(n: usize) -> Result<Vec<u8>, CryptoError> {
    let mut v = vec![0u8; n];
    random_bytes(&mut v)?;
    Ok(v)
}

/// Transform type 4 ids (IANA "Transform Type 4 - Key Exchange Method").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DhGroup {
    Modp2048 = 14,
    Ecp256 = 19,
    Curve25519 = 31,
}

impl DhGroup {
    pub fn from_id(id: u16) -> Option<DhGroup> {
        match id {
            14 => Some(DhGroup::Modp2048),
            19 => Some(DhGroup::Ecp256),
            31 => Some(DhGroup::Curve25519),
            _ => None,
        }
    }
    pub fn id(self) -> u16 {
        self as u16
    }
    pub fn public_len(self) -> usize {
        match self {
            DhGroup::Modp2048 => 256,
            DhGroup::Ecp256 => 64,
            DhGroup::Curve25519 => 32,
        }
    }
}

/// RFC 3526 §3, the 2048-bit MODP group's prime; the generator is 2.
const MODP2048_P: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1",
    "29024E088A67CC74020BBEA63B139B22514A08798E3404DD",
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245",
    "E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3D",
    "C2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F",
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D",
    "670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9",
    "DE2BCBF6955817183995497CEA956AE515D2261898FA0510",
    "15728E5A8AACAA68FFFFFFFFFFFFFFFF"
);

fn modp2048_p() -> BigUint {
    BigUint::parse_bytes(MODP2048_P.as_bytes(), 16).expect("constant prime parses")
}

fn left_pad(v: Vec<u8>, n: usize) -> Vec<u8> {
    if v.len() >= n {
        return v;
    }
    let mut out = vec![0u8; n - v.len()];
    out.extend_from_slice(&v);
    out
}

enum DhKey {
    Modp(BigUint),
    Ecp(p256::SecretKey),
    X25519(x25519_dalek::StaticSecret),
}

/// An ephemeral DH private value and its public value (the KE payload data).
pub struct DhSecret {
    pub group: DhGroup,
    key: DhKey,
    pub public: Vec<u8>,
}

impl std::fmt::Debug for DhSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DhSecret({:?})", self.group)
    }
}

impl DhSecret {
    pub fn generate(group: DhGroup) -> Result<DhSecret, CryptoError> {
        let mut seed = [0u8; 32];
        random_bytes(&mut seed)?;
        Self::from_private(group, &seed)
    }

    /// From given private bytes (tests with published vectors).
    pub fn from_private(group: DhGroup, private: &[u8; 32]) -> Result<DhSecret, CryptoError> {
        match group {
            DhGroup::Modp2048 => {
                // A 256-bit exponent: RFC 3526 §8 asks for twice the group's strength.
                let x = BigUint::from_bytes_be(private);
                let y = BigUint::from(2u32).modpow(&x, &modp2048_p());
                Ok(DhSecret {
                    group,
                    public: left_pad(y.to_bytes_be(), 256),
                    key: DhKey::Modp(x),
                })
            }
            DhGroup::Ecp256 => {
                let sk = p256::SecretKey::from_slice(private).map_err(|_| CryptoError::Random)?;
                use p256::elliptic_curve::sec1::ToEncodedPoint;
                let pt = sk.public_key().to_encoded_point(false);
                Ok(DhSecret {
                    group,
                    public: pt.as_bytes()[1..].to_vec(),
                    key: DhKey::Ecp(sk),
                })
            }
            DhGroup::Curve25519 => {
                let sk = x25519_dalek::StaticSecret::from(*private);
                let pk = x25519_dalek::PublicKey::from(&sk);
                Ok(DhSecret {
                    group,
                    public: pk.as_bytes().to_vec(),
                    key: DhKey::X25519(sk),
                })
            }
        }
    }

    /// g^ir from the peer's KE data.
    pub fn shared(&self, peer: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if peer.len() != self.group.public_len() {
            return Err(CryptoError::BadPublicValue);
        }
        match &self.key {
            DhKey::Modp(x) => {
                let p = modp2048_p();
                let y = BigUint::from_bytes_be(peer);
                let one = BigUint::from(1u32);
                if y <= one || y >= &p - &one {
                    return Err(CryptoError::BadPublicValue);
                }
                Ok(left_pad(y.modpow(x, &p).to_bytes_be(), 256))
            }
            DhKey::Ecp(sk) => {
                let mut sec1 = Vec::with_capacity(65);
                sec1.push(4);
                sec1.extend_from_slice(peer);
                let pk = p256::PublicKey::from_sec1_bytes(&sec1)
                    .map_err(|_| CryptoError::BadPublicValue)?;
                let s = p256::ecdh::diffie_hellman(sk.to_nonzero_scalar(), pk.as_affine());
                Ok(s.raw_secret_bytes().to_vec())
            }
            DhKey::X25519(sk) => {
                let mut a = [0u8; 32];
                a.copy_from_slice(peer);
                let s = sk.diffie_hellman(&x25519_dalek::PublicKey::from(a));
                if !s.was_contributory() {
                    return Err(CryptoError::BadPublicValue);
                }
                Ok(s.as_bytes().to_vec())
            }
        }
    }
}

/// Transform type 2 ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prf {
    HmacSha1 = 2,
    HmacSha256 = 5,
}

impl Prf {
    pub fn from_id(id: u16) -> Option<Prf> {
        match id {
            2 => Some(Prf::HmacSha1),
            5 => Some(Prf::HmacSha256),
            _ => None,
        }
    }
    pub fn id(self) -> u16 {
        self as u16
    }
    /// Output length, which is also the key length of SK_d, SK_pi, SK_pr.
    pub fn out_len(self) -> usize {
        match self {
            Prf::HmacSha1 => 20,
            Prf::HmacSha256 => 32,
        }
    }
    pub fn compute(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        match self {
            Prf::HmacSha1 => hmac_parts::<Hmac<sha1::Sha1>>(key, parts),
            Prf::HmacSha256 => hmac_parts::<Hmac<sha2::Sha256>>(key, parts),
        }
    }
    /// prf+ (RFC 7296 §2.13): T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n).
    pub fn plus(self, key: &[u8], seed: &[u8], len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + self.out_len());
        let mut t: Vec<u8> = Vec::new();
        let mut n: u8 = 1;
        while out.len() < len {
            t = self.compute(key, &[&t, seed, &[n]]);
            out.extend_from_slice(&t);
            n = n.wrapping_add(1);
        }
        out.truncate(len);
        out
    }
}

fn hmac_parts<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m =
        <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

/// Transform type 3 ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Integ {
    HmacSha1_96 = 2,
    HmacSha256_128 = 12,
}

impl Integ {
    pub fn from_id(id: u16) -> Option<Integ> {
        match id {
            2 => Some(Integ::HmacSha1_96),
            12 => Some(Integ::HmacSha256_128),
            _ => None,
        }
    }
    pub fn id(self) -> u16 {
        self as u16
    }
    pub fn key_len(self) -> usize {
        match self {
            Integ::HmacSha1_96 => 20,
            Integ::HmacSha256_128 => 32,
        }
    }
    pub fn icv_len(self) -> usize {
        match self {
            Integ::HmacSha1_96 => 12,
            Integ::HmacSha256_128 => 16,
        }
    }
    pub fn icv(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut full = match self {
            Integ::HmacSha1_96 => hmac_parts::<Hmac<sha1::Sha1>>(key, &[data]),
            Integ::HmacSha256_128 => hmac_parts::<Hmac<sha2::Sha256>>(key, &[data]),
        };
        full.truncate(self.icv_len());
        full
    }
}

pub const ENCR_AES_CBC: u16 = 12;
pub const ENCR_AES_GCM_16: u16 = 20;

/// Transform type 1 with its key length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encr {
    AesCbc { bits: u16 },
    AesGcm16 { bits: u16 },
}

impl Encr {
    pub fn from_id(id: u16, bits: Option<u16>) -> Option<Encr> {
        let bits = bits?;
        if !matches!(bits, 128 | 256) {
            return None;
        }
        match id {
            ENCR_AES_CBC => Some(Encr::AesCbc { bits }),
            ENCR_AES_GCM_16 => Some(Encr::AesGcm16 { bits }),
            _ => None,
        }
    }
    pub fn id(self) -> u16 {
        match self {
            Encr::AesCbc { .. } => ENCR_AES_CBC,
            Encr::AesGcm16 { .. } => ENCR_AES_GCM_16,
        }
    }
    pub fn bits(self) -> u16 {
        match self {
            Encr::AesCbc { bits } | Encr::AesGcm16 { bits } => bits,
        }
    }
    pub fn is_aead(self) -> bool {
        matches!(self, Encr::AesGcm16 { .. })
    }
    /// Bytes of keying material: the key, plus the 4-byte salt for GCM (RFC 4106 §8.1, RFC 5282 §7.1).
    pub fn keymat_len(self) -> usize {
        let k = self.bits() as usize / 8;
        if self.is_aead() {
            k + 4
        } else {
            k
        }
    }
    fn iv_len(self) -> usize {
        if self.is_aead() {
            8
        } else {
            16
        }
    }
}

/// Encryption and integrity for one direction of the IKE SA (SK_e* and SK_a*).
#[derive(Clone)]
pub struct SkKeys {
    pub encr: Encr,
    pub integ: Option<Integ>,
    pub ek: Vec<u8>,
    pub ak: Vec<u8>,
}

impl SkKeys {
    fn icv_len(&self) -> usize {
        match (self.encr.is_aead(), self.integ) {
            (true, _) => 16,
            (false, Some(i)) => i.icv_len(),
            (false, None) => 0,
        }
    }

    /// Completes a message whose buffer holds the IKE header and the SK generic header
    /// (lengths still to be set): appends IV, ciphertext of `inner` and the ICV, and fixes the
    /// header and SK lengths.
    pub fn seal(&self, out: &mut Vec<u8>, inner: &[u8]) -> Result<(), CryptoError> {
        let sk_start = out.len() - 4;
        let icv_len = self.icv_len();
        let block = if self.encr.is_aead() { 4 } else { 16 };
        let pad = (block - (inner.len() + 1) % block) % block;
        let ct_len = inner.len() + pad + 1;
        let iv_len = self.encr.iv_len();
        let total = out.len() + iv_len + ct_len + icv_len;
        let sk_len = (total - sk_start) as u16;
        out[sk_start + 2..sk_start + 4].copy_from_slice(&sk_len.to_be_bytes());
        out[24..28].copy_from_slice(&(total as u32).to_be_bytes());
        let mut iv = vec![0u8; iv_len];
        random_bytes(&mut iv)?;
        let mut plain = Vec::with_capacity(ct_len + 16);
        plain.extend_from_slice(inner);
        plain.resize(inner.len() + pad, 0);
        plain.push(pad as u8);
        match self.encr {
            Encr::AesCbc { bits } => {
                let n = plain.len();
                match bits {
                    128 => cbc::Encryptor::<aes::Aes128>::new_from_slices(&self.ek, &iv)
                        .map_err(|_| CryptoError::BadCiphertext)?
                        .encrypt_padded_mut::<NoPadding>(&mut plain, n)
                        .map_err(|_| CryptoError::BadCiphertext)?,
                    _ => cbc::Encryptor::<aes::Aes256>::new_from_slices(&self.ek, &iv)
                        .map_err(|_| CryptoError::BadCiphertext)?
                        .encrypt_padded_mut::<NoPadding>(&mut plain, n)
                        .map_err(|_| CryptoError::BadCiphertext)?,
                };
                out.extend_from_slice(&iv);
                out.extend_from_slice(&plain);
                let integ = self.integ.ok_or(CryptoError::Integrity)?;
                let icv = integ.icv(&self.ak, out);
                out.extend_from_slice(&icv);
            }
            Encr::AesGcm16 { .. } => {
                let aad = out.clone();
                let ct = self.gcm(&iv, true, &plain, &aad)?;
                out.extend_from_slice(&iv);
                out.extend_from_slice(&ct);
            }
        }
        debug_assert_eq!(out.len(), total);
        Ok(())
    }

    fn gcm(
        &self,
        iv: &[u8],
        encrypt: bool,
        data: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let klen = self.encr.bits() as usize / 8;
        if self.ek.len() != klen + 4 {
            return Err(CryptoError::BadCiphertext);
        }
        let mut nonce = [0u8; 12];
        nonce[..4].copy_from_slice(&self.ek[klen..]);
        nonce[4..].copy_from_slice(iv);
        let nonce = aes_gcm::Nonce::from_slice(&nonce);
        let p = AeadPayload { msg: data, aad };
        let r = match klen {
            16 => {
                let c = aes_gcm::Aes128Gcm::new_from_slice(&self.ek[..klen])
                    .map_err(|_| CryptoError::BadCiphertext)?;
                if encrypt {
                    c.encrypt(nonce, p)
                } else {
                    c.decrypt(nonce, p)
                }
            }
            _ => {
                let c = aes_gcm::Aes256Gcm::new_from_slice(&self.ek[..klen])
                    .map_err(|_| CryptoError::BadCiphertext)?;
                if encrypt {
                    c.encrypt(nonce, p)
                } else {
                    c.decrypt(nonce, p)
                }
            }
        };
        r.map_err(|_| CryptoError::Integrity)
    }

    /// Checks and decrypts the SK payload of `msg`, whose last `sk_body_len` bytes are the SK
    /// body (IV, ciphertext, ICV). Returns the inner payload bytes.
    pub fn open(&self, msg: &[u8], sk_body_len: usize) -> Result<Vec<u8>, CryptoError> {
        let icv_len = self.icv_len();
        let iv_len = self.encr.iv_len();
        if sk_body_len < iv_len + icv_len + 1 || msg.len() < sk_body_len + 4 {
            return Err(CryptoError::BadCiphertext);
        }
        let body_start = msg.len() - sk_body_len;
        let iv = &msg[body_start..body_start + iv_len];
        let mut plain = match self.encr {
            Encr::AesCbc { bits } => {
                let integ = self.integ.ok_or(CryptoError::Integrity)?;
                let (signed, icv) = msg.split_at(msg.len() - icv_len);
                let want = integ.icv(&self.ak, signed);
                if !constant_time_eq(&want, icv) {
                    return Err(CryptoError::Integrity);
                }
                let mut ct = msg[body_start + iv_len..msg.len() - icv_len].to_vec();
                if ct.is_empty() || ct.len() & 15 != 0 {
                    return Err(CryptoError::BadCiphertext);
                }
                match bits {
                    128 => cbc::Decryptor::<aes::Aes128>::new_from_slices(&self.ek, iv)
                        .map_err(|_| CryptoError::BadCiphertext)?
                        .decrypt_padded_mut::<NoPadding>(&mut ct)
                        .map_err(|_| CryptoError::BadCiphertext)?
                        .len(),
                    _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(&self.ek, iv)
                        .map_err(|_| CryptoError::BadCiphertext)?
                        .decrypt_padded_mut::<NoPadding>(&mut ct)
                        .map_err(|_| CryptoError::BadCiphertext)?
                        .len(),
                };
                ct
            }
            Encr::AesGcm16 { .. } => {
                let aad = &msg[..body_start];
                self.gcm(iv, false, &msg[body_start + iv_len..], aad)?
            }
        };
        let pad = *plain.last().ok_or(CryptoError::BadCiphertext)? as usize;
        if pad + 1 > plain.len() {
            return Err(CryptoError::BadCiphertext);
        }
        plain.truncate(plain.len() - pad - 1);
        Ok(plain)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An IKE SA's negotiated algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IkeSuite {
    pub encr: Encr,
    pub prf: Prf,
    /// None for AEAD.
    pub integ: Option<Integ>,
    pub dh: DhGroup,
}

impl IkeSuite {
    /// What calico configures: AES-CBC-256, HMAC-SHA1-96, PRF HMAC-SHA1, MODP-2048.
    pub const CALICO: IkeSuite = IkeSuite {
        encr: Encr::AesCbc { bits: 256 },
        prf: Prf::HmacSha1,
        integ: Some(Integ::HmacSha1_96),
        dh: DhGroup::Modp2048,
    };
}

/// The seven IKE SA keys (RFC 7296 §2.14).
#[derive(Clone)]
pub struct IkeKeys {
    pub prf: Prf,
    pub sk_d: Vec<u8>,
    /// SK_ei/SK_ai: protects what the original initiator sends.
    pub initiator: SkKeys,
    pub responder: SkKeys,
    pub sk_pi: Vec<u8>,
    pub sk_pr: Vec<u8>,
}

impl IkeKeys {
    /// From SKEYSEED and the seed Ni | Nr | SPIi | SPIr.
    pub fn derive(
        suite: &IkeSuite,
        skeyseed: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_i: u64,
        spi_r: u64,
    ) -> IkeKeys {
        let p = suite.prf;
        let ilen = suite.integ.map_or(0, Integ::key_len);
        let elen = suite.encr.keymat_len();
        let total = 3 * p.out_len() + 2 * ilen + 2 * elen;
        let seed = [ni, nr, &spi_i.to_be_bytes(), &spi_r.to_be_bytes()].concat();
        let km = p.plus(skeyseed, &seed, total);
        let mut at = 0;
        let mut take = |n: usize| {
            let v = km[at..at + n].to_vec();
            at += n;
            v
        };
        let sk_d = take(p.out_len());
        let ai = take(ilen);
        let ar = take(ilen);
        let ei = take(elen);
        let er = take(elen);
        let sk_pi = take(p.out_len());
        let sk_pr = take(p.out_len());
        IkeKeys {
            prf: p,
            sk_d,
            initiator: SkKeys {
                encr: suite.encr,
                integ: suite.integ,
                ek: ei,
                ak: ai,
            },
            responder: SkKeys {
                encr: suite.encr,
                integ: suite.integ,
                ek: er,
                ak: ar,
            },
            sk_pi,
            sk_pr,
        }
    }

    /// SKEYSEED = prf(Ni | Nr, g^ir) for a new IKE SA.
    pub fn skeyseed(prf: Prf, ni: &[u8], nr: &[u8], shared: &[u8]) -> Vec<u8> {
        prf.compute(&[ni, nr].concat(), &[shared])
    }

    /// SKEYSEED for an IKE SA rekey: prf(SK_d (old), g^ir (new) | Ni | Nr) (RFC 7296 §2.18).
    pub fn rekey_skeyseed(
        old_prf: Prf,
        old_sk_d: &[u8],
        shared: &[u8],
        ni: &[u8],
        nr: &[u8],
    ) -> Vec<u8> {
        old_prf.compute(old_sk_d, &[shared, ni, nr])
    }
}

const KEY_PAD: &[u8] = b"Key Pad for IKEv2";

/// PSK AUTH (RFC 7296 §2.15): prf(prf(PSK, "Key Pad for IKEv2"), message | peer nonce | prf(SK_p, ID body)).
pub fn psk_auth(
    prf: Prf,
    psk: &[u8],
    sk_p: &[u8],
    message: &[u8],
    peer_nonce: &[u8],
    id_body: &[u8],
) -> Vec<u8> {
    let mac_id = prf.compute(sk_p, &[id_body]);
    let key = prf.compute(psk, &[KEY_PAD]);
    prf.compute(&key, &[message, peer_nonce, &mac_id])
}

pub fn auth_eq(a: &[u8], b: &[u8]) -> bool {
    constant_time_eq(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn x25519_rfc7748_vector() {
        let a: [u8; 32] = hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
            .try_into()
            .unwrap();
        let b: [u8; 32] = hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
            .try_into()
            .unwrap();
        let sa = DhSecret::from_private(DhGroup::Curve25519, &a).unwrap();
        let sb = DhSecret::from_private(DhGroup::Curve25519, &b).unwrap();
        assert_eq!(
            sa.public,
            hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
        assert_eq!(
            sb.public,
            hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        );
        let k = hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
        assert_eq!(sa.shared(&sb.public).unwrap(), k);
        assert_eq!(sb.shared(&sa.public).unwrap(), k);
    }

    #[test]
    fn ecp256_rfc5903_vector() {
        let i: [u8; 32] = hex("C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433")
            .try_into()
            .unwrap();
        let r: [u8; 32] = hex("C6EF9C5D78AE012A011164ACB397CE2088685D8F06BF9BE0B283AB46476BEE53")
            .try_into()
            .unwrap();
        let si = DhSecret::from_private(DhGroup::Ecp256, &i).unwrap();
        let sr = DhSecret::from_private(DhGroup::Ecp256, &r).unwrap();
        assert_eq!(
            si.public,
            hex(
                "DAD0B65394221CF9B051E1FECA5787D098DFE637FC90B9EF945D0C377258118052\
                 71A0461CDB8252D61F1C456FA3E59AB1F45B33ACCF5F58389E0577B8990BB3"
            )
        );
        let girx = hex("D6840F6B42F6EDAFD13116E0E12565202FEF8E9ECE7DCE03812464D04B9442DE");
        assert_eq!(si.shared(&sr.public).unwrap(), girx);
        assert_eq!(sr.shared(&si.public).unwrap(), girx);
    }

    #[test]
    fn modp2048_agrees_and_rejects_degenerate_values() {
        let a = DhSecret::generate(DhGroup::Modp2048).unwrap();
        let b = DhSecret::generate(DhGroup::Modp2048).unwrap();
        assert_eq!(a.public.len(), 256);
        assert_eq!(a.shared(&b.public).unwrap(), b.shared(&a.public).unwrap());
        let mut one = vec![0u8; 256];
        one[255] = 1;
        assert_eq!(a.shared(&one), Err(CryptoError::BadPublicValue));
        assert_eq!(a.shared(&[0xff; 256]), Err(CryptoError::BadPublicValue));
        assert_eq!(a.shared(&[1; 10]), Err(CryptoError::BadPublicValue));
    }

    #[test]
    fn hmac_sha256_rfc4231_case1_and_prf_plus_structure() {
        let key = [0x0bu8; 20];
        assert_eq!(
            Prf::HmacSha256.compute(&key, &[b"Hi ", b"There"]),
            hex("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        );
        // RFC 2202 case 1 for HMAC-SHA1.
        assert_eq!(
            Prf::HmacSha1.compute(&key, &[b"Hi There"]),
            hex("b617318655057264e28bc0b6fb378c8ef146be00")
        );
        let seed = b"seed";
        let out = Prf::HmacSha1.plus(&key, seed, 50);
        let t1 = Prf::HmacSha1.compute(&key, &[seed, &[1]]);
        let t2 = Prf::HmacSha1.compute(&key, &[&t1, seed, &[2]]);
        let t3 = Prf::HmacSha1.compute(&key, &[&t2, seed, &[3]]);
        assert_eq!(out, [t1, t2, t3].concat()[..50].to_vec());
    }

    fn sk_round_trip(encr: Encr, integ: Option<Integ>) {
        let keys = SkKeys {
            encr,
            integ,
            ek: random_vec(encr.keymat_len()).unwrap(),
            ak: random_vec(integ.map_or(0, Integ::key_len)).unwrap(),
        };
        for n in [0usize, 1, 15, 16, 17, 100] {
            let inner = vec![0x5a; n];
            let mut msg = vec![0u8; 28];
            msg.extend_from_slice(&[35, 0, 0, 0]);
            keys.seal(&mut msg, &inner).unwrap();
            assert_eq!(keys.open(&msg, msg.len() - 32).unwrap(), inner);
            let mut bad = msg.clone();
            let l = bad.len();
            bad[l - 1] ^= 1;
            assert_eq!(keys.open(&bad, l - 32), Err(CryptoError::Integrity));
            // Truncations are errors too, never panics.
            for cut in 0..msg.len() {
                let _ = keys.open(&msg[..cut], cut.saturating_sub(32));
            }
        }
    }

    #[test]
    fn sk_payload_round_trips_and_detects_tampering() {
        sk_round_trip(Encr::AesCbc { bits: 256 }, Some(Integ::HmacSha1_96));
        sk_round_trip(Encr::AesCbc { bits: 128 }, Some(Integ::HmacSha256_128));
        sk_round_trip(Encr::AesGcm16 { bits: 256 }, None);
        sk_round_trip(Encr::AesGcm16 { bits: 128 }, None);
    }
}
