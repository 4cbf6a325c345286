//! Security associations: the algorithm and key, the outbound sequence number and the inbound
//! replay window, and the per-packet ESP seal/open over a packet's bytes in place (RFC 4303).
//! - AES-GCM as RFC 4106: 4-byte salt + 8-byte explicit IV as the nonce, the SPI and sequence
//!   number (with ESN: SPI, high half, low half) as the AAD, a 16-byte ICV after the ciphertext.
//! - AES-CBC as RFC 3602 with HMAC-SHA1-96 (RFC 2404) or HMAC-SHA-256-96/128 (RFC 4868): a
//!   16-byte IV, the payload padded to the block, the ICV over ESP header, IV and ciphertext
//!   (with ESN, the high half appended to what is authenticated, RFC 4303 §3.3.2.1), checked
//!   before anything is decrypted.
//!
//! Crypto is aws-lc-rs (docs/crypto.md says why); nothing here allocates.

use super::replay::ReplayWindow;
use crate::handover::{Refusal, SendSeq};
use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{
    DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext, UnboundCipherKey,
};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::{constant_time, hmac};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU16, Ordering};

/// ESP header: SPI and sequence number.
pub const ESP_HDR: usize = 8;
/// The explicit IV of AES-GCM (RFC 4106 §3.1).
pub const GCM_IV: usize = 8;
/// The AES-GCM ICV (16 bytes, the only length rvpp sends or accepts).
pub const GCM_ICV: usize = 16;
/// From the ESP header to the payload, with AES-GCM.
pub const HEAD: usize = ESP_HDR + GCM_IV;
/// The IV of AES-CBC, one block.
pub const CBC_IV: usize = 16;
/// The most an SA puts before the payload (AES-CBC's header and IV).
pub const MAX_HEAD: usize = ESP_HDR + CBC_IV;
/// NAT-T (RFC 3948): UDP port, and the 4 zero bytes that mark an IKE message on it.
pub const NATT_PORT: u16 = 4500;

/// The ciphers rvpp implements, with VPP's `ipsec_crypto_alg` numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CryptoAlg {
    AesCbc128,
    AesCbc192,
    AesCbc256,
    AesGcm128,
    AesGcm256,
}

impl CryptoAlg {
    /// VPP's `IPSEC_API_CRYPTO_ALG_*`.
    pub fn from_vpp(n: u32) -> Option<Self> {
        match n {
            1 => Some(Self::AesCbc128),
            2 => Some(Self::AesCbc192),
            3 => Some(Self::AesCbc256),
            7 => Some(Self::AesGcm128),
            9 => Some(Self::AesGcm256),
            _ => None,
        }
    }
    pub fn vpp(self) -> u32 {
        match self {
            Self::AesCbc128 => 1,
            Self::AesCbc192 => 2,
            Self::AesCbc256 => 3,
            Self::AesGcm128 => 7,
            Self::AesGcm256 => 9,
        }
    }
    pub fn key_len(self) -> usize {
        match self {
            Self::AesCbc128 | Self::AesGcm128 => 16,
            Self::AesCbc192 => 24,
            Self::AesCbc256 | Self::AesGcm256 => 32,
        }
    }
    /// An AEAD, which takes no integrity algorithm.
    pub fn is_aead(self) -> bool {
        matches!(self, Self::AesGcm128 | Self::AesGcm256)
    }
    /// VPP's name in `show ipsec sa`.
    pub fn name(self) -> &'static str {
        match self {
            Self::AesCbc128 => "aes-cbc-128",
            Self::AesCbc192 => "aes-cbc-192",
            Self::AesCbc256 => "aes-cbc-256",
            Self::AesGcm128 => "aes-gcm-128",
            Self::AesGcm256 => "aes-gcm-256",
        }
    }
    fn aead(self) -> &'static aead::Algorithm {
        match self {
            Self::AesGcm256 => &aead::AES_256_GCM,
            _ => &aead::AES_128_GCM,
        }
    }
    fn block_cipher(self) -> &'static aws_lc_rs::cipher::Algorithm {
        match self {
            Self::AesCbc192 => &aws_lc_rs::cipher::AES_192,
            Self::AesCbc256 | Self::AesGcm256 => &aws_lc_rs::cipher::AES_256,
            _ => &aws_lc_rs::cipher::AES_128,
        }
    }
}

/// The integrity algorithms rvpp implements (with AES-CBC), with VPP's `ipsec_integ_alg`
/// numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IntegAlg {
    #[default]
    None,
    Sha1_96,
    Sha256_96,
    Sha256_128,
}

impl IntegAlg {
    /// VPP's `IPSEC_API_INTEG_ALG_*`.
    pub fn from_vpp(n: u32) -> Option<Self> {
        match n {
            0 => Some(Self::None),
            2 => Some(Self::Sha1_96),
            3 => Some(Self::Sha256_96),
            4 => Some(Self::Sha256_128),
            _ => None,
        }
    }
    pub fn vpp(self) -> u32 {
        match self {
            Self::None => 0,
            Self::Sha1_96 => 2,
            Self::Sha256_96 => 3,
            Self::Sha256_128 => 4,
        }
    }
    /// The ICV's length on the wire (the HMAC truncated).
    pub fn icv_len(self) -> usize {
        match self {
            Self::None => 0,
            Self::Sha1_96 | Self::Sha256_96 => 12,
            Self::Sha256_128 => 16,
        }
    }
    /// VPP's name in `show ipsec sa`.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Sha1_96 => "sha1-96",
            Self::Sha256_96 => "sha-256-96",
            Self::Sha256_128 => "sha-256-128",
        }
    }
    fn hmac(self) -> hmac::Algorithm {
        match self {
            Self::Sha1_96 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            _ => hmac::HMAC_SHA256,
        }
    }
}

/// The tunnel-mode endpoints of an SA (VPP's `tunnel` in `ipsec_sad_entry_v3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SaTunnel {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The FIB the outer packet is looked up in.
    pub encap_fib: u32,
    pub table_id: u32,
}

/// What an SA is made from (a child SA from IKEv2, or `ipsec_sad_entry_add_del_v3`).
#[derive(Clone, PartialEq, Eq)]
pub struct SaConfig {
    /// VPP's sad_id: the control plane's name for the SA.
    pub id: u32,
    pub spi: u32,
    pub alg: CryptoAlg,
    pub key: Vec<u8>,
    /// With AES-CBC; `None` with AES-GCM.
    pub integ: IntegAlg,
    pub integ_key: Vec<u8>,
    /// The 4 bytes of the GCM nonce that precede the IV (from the key material in IKEv2).
    pub salt: u32,
    pub esn: bool,
    pub anti_replay: bool,
    pub inbound: bool,
    /// NAT-T: UDP (source, destination) ports for what this SA sends, as made; the peer's
    /// port may move later ([`Sa::udp_encap`] is the one in use).
    pub udp_encap: Option<(u16, u16)>,
    pub tunnel: Option<SaTunnel>,
}

impl std::fmt::Debug for SaConfig {
    /// Everything but the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaConfig")
            .field("id", &self.id)
            .field("spi", &format_args!("{:#x}", self.spi))
            .field("alg", &self.alg)
            .field("integ", &self.integ)
            .field("esn", &self.esn)
            .field("anti_replay", &self.anti_replay)
            .field("inbound", &self.inbound)
            .field("udp_encap", &self.udp_encap)
            .field("tunnel", &self.tunnel)
            .finish_non_exhaustive()
    }
}

/// Why an SA cannot be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SaError {
    KeyLength {
        want: usize,
        got: usize,
    },
    /// The cipher and integrity algorithm do not go together (why).
    Integrity(&'static str),
    Crypto,
}

impl std::fmt::Display for SaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::KeyLength { want, got } => {
                write!(f, "key is {got} bytes, the cipher takes {want}")
            }
            Self::Integrity(why) => f.write_str(why),
            Self::Crypto => write!(f, "the crypto library refused the key"),
        }
    }
}

/// Why a packet was not sealed or opened; the nodes count each under its own name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EspDrop {
    /// Without ESN the 32-bit sequence number would wrap (RFC 4303 §3.3.3): refused.
    SeqRollover,
    /// A live restart gave the SA's next sequence numbers to the new process.
    SeqHandedOver,
    Replay,
    Integrity,
    BadPadding,
    Short,
}

/// Sequence numbers the old process of a live restart may still seal with once the new one is
/// about to poll its devices (until its own workers stop); the new one starts past them. Half
/// of rvpp's replay window ([`super::replay::WINDOW`]), so that a peer still accepts the old
/// process's last packets after the new one's first.
pub const HANDOVER_RESERVE: u64 = super::replay::WINDOW / 2;
/// How far a failed take-over moves an SA past the numbers it handed over: past any the new
/// process may have used (2^28 packets: minutes at any rate rvpp seals, and the old process
/// waits at most 30 s for the new one's READY). Not more, even with ESN: the peer infers the
/// high half from the low one it sees (RFC 4303 Appendix A), which follows a jump only well
/// short of 2^32.
pub const HANDOVER_ABANDONED_JUMP: u64 = 1 << 28;

/// An SA's outbound numbering: sequence number p + 1 is position p (ESP numbers from 1), so
/// positions used are the last number used.
type SeqNumbers = SendSeq<HANDOVER_RESERVE, HANDOVER_ABANDONED_JUMP>;

/// An SA's numbering as a live restart carries it: the last outbound sequence number used, the
/// inbound replay window (highest accepted, words) and the NAT-T peer port now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaState {
    pub seq: u64,
    pub replay: (u64, [u64; super::replay::WORDS]),
    pub udp_dst: u16,
}

/// One SA as the workers use it. Shared by `Arc` between table versions, so its sequence
/// number and replay window survive every republish.
pub struct Sa {
    pub cfg: SaConfig,
    cipher: Cipher,
    /// The outbound sequence numbers: up to 2^32 - 1 without ESN, 2^64 - 1 with, or fewer
    /// while a live restart's new process holds the numbers past some ([`Sa::hand_over`]).
    seq: SeqNumbers,
    /// NAT-T: the peer's UDP port now. A NAT in front of the peer may map it anywhere and
    /// remap it later; IKE learns the new one and moves it here (no republish, so the
    /// sequence number and window carry on).
    udp_dst: AtomicU16,
    pub replay: ReplayWindow,
}

enum Cipher {
    Gcm(LessSafeKey),
    // Boxed: the expanded AES and HMAC keys are ~2.7 KiB, read once per packet either way.
    Cbc(Box<CbcHmac>),
}

struct CbcHmac {
    enc: EncryptingKey,
    dec: DecryptingKey,
    /// Encrypts (SPI, sequence number) into each packet's IV: unique per packet, and, under a
    /// random key of the SA's own, unpredictable, as RFC 3602 §2 asks of a CBC IV.
    iv: EncryptingKey,
    mac: hmac::Key,
    icv: usize,
}

impl std::fmt::Debug for Sa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sa")
            .field("cfg", &self.cfg)
            .field("seq", &self.seq_outbound())
            .finish_non_exhaustive()
    }
}

/// Padding plus the pad-length and next-header bytes after a payload of `n` bytes, so that the
/// ciphertext ends on a 4-byte boundary (RFC 4303 §2.4), as AES-GCM needs.
#[inline(always)]
pub fn trailer_len(n: usize) -> usize {
    trailer_len_to(n, 4)
}

/// The same, to a boundary of `block` bytes (16 for AES-CBC).
#[inline(always)]
pub fn trailer_len_to(n: usize, block: usize) -> usize {
    (block - (n + 2) % block) % block + 2
}

/// Write the trailer (padding 1, 2, 3 …, its length, `next_header`) into `t`, whose length
/// is [`trailer_len`].
#[inline(always)]
pub fn write_trailer(t: &mut [u8], next_header: u8) {
    let pad = t.len() - 2;
    for (i, v) in t[..pad].iter_mut().enumerate() {
        *v = i as u8 + 1;
    }
    t[pad] = pad as u8;
    t[pad + 1] = next_header;
}

impl Sa {
    pub fn new(cfg: SaConfig) -> Result<Self, SaError> {
        let want = cfg.alg.key_len();
        if cfg.key.len() != want {
            return Err(SaError::KeyLength {
                want,
                got: cfg.key.len(),
            });
        }
        let cipher = if cfg.alg.is_aead() {
            if cfg.integ != IntegAlg::None {
                return Err(SaError::Integrity("AES-GCM takes no integrity algorithm"));
            }
            let key = UnboundKey::new(cfg.alg.aead(), &cfg.key).map_err(|_| SaError::Crypto)?;
            Cipher::Gcm(LessSafeKey::new(key))
        } else {
            if cfg.integ == IntegAlg::None {
                return Err(SaError::Integrity("AES-CBC needs an integrity algorithm"));
            }
            if cfg.integ_key.is_empty() {
                return Err(SaError::Integrity("the integrity key is empty"));
            }
            let block = |k: &[u8]| {
                UnboundCipherKey::new(cfg.alg.block_cipher(), k).map_err(|_| SaError::Crypto)
            };
            let mut iv_key = vec![0u8; cfg.alg.key_len()];
            getrandom::getrandom(&mut iv_key).map_err(|_| SaError::Crypto)?;
            Cipher::Cbc(Box::new(CbcHmac {
                enc: EncryptingKey::cbc(block(&cfg.key)?).map_err(|_| SaError::Crypto)?,
                dec: DecryptingKey::cbc(block(&cfg.key)?).map_err(|_| SaError::Crypto)?,
                iv: EncryptingKey::ecb(block(&iv_key)?).map_err(|_| SaError::Crypto)?,
                mac: hmac::Key::new(cfg.integ.hmac(), &cfg.integ_key),
                icv: cfg.integ.icv_len(),
            }))
        };
        Ok(Self {
            cipher,
            seq: SeqNumbers::new(0, if cfg.esn { u64::MAX } else { u32::MAX as u64 }),
            udp_dst: AtomicU16::new(cfg.udp_encap.map_or(0, |(_, d)| d)),
            replay: ReplayWindow::default(),
            cfg,
        })
    }

    /// Bytes from the ESP header to the payload: header and IV.
    #[inline(always)]
    pub fn head_len(&self) -> usize {
        match self.cipher {
            Cipher::Gcm(_) => HEAD,
            Cipher::Cbc(_) => MAX_HEAD,
        }
    }

    /// The ICV's length.
    #[inline(always)]
    pub fn icv_len(&self) -> usize {
        match &self.cipher {
            Cipher::Gcm(_) => GCM_ICV,
            Cipher::Cbc(c) => c.icv,
        }
    }

    /// The trailer (padding, pad length, next header) after a payload of `n` bytes.
    #[inline(always)]
    pub fn trailer_len(&self, n: usize) -> usize {
        match self.cipher {
            Cipher::Gcm(_) => trailer_len(n),
            Cipher::Cbc(_) => trailer_len_to(n, 16),
        }
    }

    /// NAT-T: the UDP (source, destination) ports to send with now; `None` without NAT-T.
    #[inline(always)]
    pub fn udp_encap(&self) -> Option<(u16, u16)> {
        let (src, _) = self.cfg.udp_encap?;
        Some((src, self.udp_dst.load(Ordering::Relaxed)))
    }

    /// The peer's NAT moved it to `port`: packets sealed from now on go there. False (and
    /// nothing changes) on an SA without NAT-T.
    pub fn set_udp_dst_port(&self, port: u16) -> bool {
        if self.cfg.udp_encap.is_none() {
            return false;
        }
        self.udp_dst.store(port, Ordering::Relaxed);
        true
    }

    /// The last outbound sequence number used.
    pub fn seq_outbound(&self) -> u64 {
        self.seq.used()
    }

    /// Start the outbound numbering after `seq` (tests of the rollover; an SA starts at 0).
    pub fn set_seq_outbound(&self, seq: u64) {
        self.seq.set_used(seq);
    }

    /// The next outbound sequence number, or rollover: never wraps to 0.
    #[inline(always)]
    pub fn next_seq(&self) -> Result<u64, EspDrop> {
        match self.seq.next() {
            Some(p) => Ok(p + 1),
            None => Err(match self.seq.refusal() {
                Refusal::HandedOver => EspDrop::SeqHandedOver,
                Refusal::Exhausted => EspDrop::SeqRollover,
            }),
        }
    }

    /// For a live restart: the outbound numbering and the replay window as they stand.
    pub fn state(&self) -> SaState {
        SaState {
            seq: self.seq.used(),
            replay: self.replay.state(),
            udp_dst: self.udp_dst.load(Ordering::Relaxed),
        }
    }

    /// A live restart's new process: carry on from `st` (before any packet of the SA).
    pub fn resume(&self, st: &SaState) {
        self.seq.set_used(st.seq);
        self.replay.restore(st.replay);
        if self.cfg.udp_encap.is_some() {
            self.udp_dst.store(st.udp_dst, Ordering::Relaxed);
        }
    }

    /// For a live restart, just before the new process starts sending: the last sequence
    /// number this process keeps. It may still seal [`HANDOVER_RESERVE`] more packets (its
    /// workers run until the new one is ready), never past it; the new one starts after it
    /// ([`Self::skip_to`]). Undone by [`Self::take_back`].
    pub fn hand_over(&self) -> u64 {
        self.seq.hand_over()
    }

    /// The new process of a live restart: number from after `last` (what the old one's
    /// [`Self::hand_over`] kept), if past where this one is.
    pub fn skip_to(&self, last: u64) {
        self.seq.skip_to(last);
    }

    /// A live restart gave this SA's next numbers to another process.
    pub fn handed_over(&self) -> bool {
        self.seq.handed_over()
    }

    /// The take-over failed after [`Self::hand_over`]: send on, from past anything the new
    /// process may have used (never a number twice: with AES-GCM the number is the nonce).
    /// Without ESN the jump stops at the end of the 32-bit space (the SA then refuses to
    /// send, as at a rollover) rather than wrap.
    pub fn take_back(&self) {
        self.seq.take_back();
    }

    #[inline(always)]
    fn nonce(&self, iv: [u8; 8]) -> Nonce {
        let mut n = [0u8; 12];
        n[..4].copy_from_slice(&self.cfg.salt.to_be_bytes());
        n[4..].copy_from_slice(&iv);
        Nonce::assume_unique_for_key(n)
    }

    /// The AAD and its length: SPI + low half, or with ESN SPI + high + low half.
    #[inline(always)]
    fn aad(&self, seq: u64) -> ([u8; 12], usize) {
        let mut a = [0u8; 12];
        a[..4].copy_from_slice(&self.cfg.spi.to_be_bytes());
        if self.cfg.esn {
            a[4..].copy_from_slice(&seq.to_be_bytes());
            (a, 12)
        } else {
            a[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
            (a, 8)
        }
    }

    /// Seal in place. `esp` is [ESP header | IV | payload with its trailer | ICV], laid out
    /// with [`Self::head_len`], [`Self::trailer_len`] and [`Self::icv_len`]: the header, IV and
    /// ICV are written here, the payload is encrypted.
    #[inline(always)]
    pub fn seal(&self, seq: u64, esp: &mut [u8]) -> Result<(), EspDrop> {
        let (head, icv) = (self.head_len(), self.icv_len());
        if esp.len() < head + icv {
            return Err(EspDrop::Short);
        }
        esp[..4].copy_from_slice(&self.cfg.spi.to_be_bytes());
        esp[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
        let end = esp.len() - icv;
        match &self.cipher {
            Cipher::Gcm(key) => {
                // The IV is the 64-bit sequence number, unique per key.
                let iv = seq.to_be_bytes();
                esp[8..16].copy_from_slice(&iv);
                let (aad, n) = self.aad(seq);
                let (body, icv) = esp[HEAD..].split_at_mut(end - HEAD);
                let tag = key
                    .seal_in_place_separate_tag(self.nonce(iv), Aad::from(&aad[..n]), body)
                    .map_err(|_| EspDrop::Integrity)?;
                icv.copy_from_slice(tag.as_ref());
            }
            Cipher::Cbc(c) => {
                if !(end - MAX_HEAD).is_multiple_of(16) {
                    return Err(EspDrop::Short);
                }
                let mut iv = [0u8; CBC_IV];
                iv[..4].copy_from_slice(&self.cfg.spi.to_be_bytes());
                iv[8..].copy_from_slice(&seq.to_be_bytes());
                c.iv.less_safe_encrypt(&mut iv, EncryptionContext::None)
                    .map_err(|_| EspDrop::Integrity)?;
                esp[ESP_HDR..MAX_HEAD].copy_from_slice(&iv);
                c.enc
                    .less_safe_encrypt(
                        &mut esp[MAX_HEAD..end],
                        EncryptionContext::Iv128(FixedLength::from(iv)),
                    )
                    .map_err(|_| EspDrop::Integrity)?;
                let tag = self.cbc_icv(c, seq, &esp[..end]);
                esp[end..].copy_from_slice(&tag.as_ref()[..c.icv]);
            }
        }
        Ok(())
    }

    /// The HMAC over what ESP authenticates: `authed`, and with ESN the high half after it.
    #[inline(always)]
    fn cbc_icv(&self, c: &CbcHmac, seq: u64, authed: &[u8]) -> hmac::Tag {
        let mut m = hmac::Context::with_key(&c.mac);
        m.update(authed);
        if self.cfg.esn {
            m.update(&((seq >> 32) as u32).to_be_bytes());
        }
        m.sign()
    }

    /// Verify and decrypt in place the ESP packet `esp` (from the ESP header to the end of the
    /// ICV) whose full sequence number is `seq`. Returns (inner length, next header): the
    /// inner packet is `esp[head_len()..head_len() + len]`. The replay window is the caller's.
    #[inline(always)]
    pub fn open(&self, seq: u64, esp: &mut [u8]) -> Result<(usize, u8), EspDrop> {
        let (head, icv) = (self.head_len(), self.icv_len());
        if esp.len() < head + 4 + icv {
            return Err(EspDrop::Short);
        }
        let end = esp.len() - icv;
        let pt = match &self.cipher {
            Cipher::Gcm(key) => {
                let mut iv = [0u8; 8];
                iv.copy_from_slice(&esp[8..16]);
                let (aad, n) = self.aad(seq);
                &*key
                    .open_in_place(self.nonce(iv), Aad::from(&aad[..n]), &mut esp[HEAD..])
                    .map_err(|_| EspDrop::Integrity)?
            }
            Cipher::Cbc(c) => {
                if !(end - MAX_HEAD).is_multiple_of(16) {
                    return Err(EspDrop::Short);
                }
                let tag = self.cbc_icv(c, seq, &esp[..end]);
                constant_time::verify_slices_are_equal(&tag.as_ref()[..c.icv], &esp[end..])
                    .map_err(|_| EspDrop::Integrity)?;
                let mut iv = [0u8; CBC_IV];
                iv.copy_from_slice(&esp[ESP_HDR..MAX_HEAD]);
                &*c.dec
                    .decrypt(
                        &mut esp[MAX_HEAD..end],
                        DecryptionContext::Iv128(FixedLength::from(iv)),
                    )
                    .map_err(|_| EspDrop::Integrity)?
            }
        };
        let len = pt.len();
        let (pad, nh) = (pt[len - 2] as usize, pt[len - 1]);
        if pad + 2 > len
            || !pt[len - 2 - pad..len - 2]
                .iter()
                .enumerate()
                .all(|(i, &v)| v == i as u8 + 1)
        {
            return Err(EspDrop::BadPadding);
        }
        Ok((len - 2 - pad, nh))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn cfg(alg: CryptoAlg, esn: bool) -> SaConfig {
        SaConfig {
            id: 1,
            spi: 0x1000,
            alg,
            key: (0..alg.key_len() as u8).collect(),
            integ: if alg.is_aead() {
                IntegAlg::None
            } else {
                IntegAlg::Sha256_128
            },
            integ_key: if alg.is_aead() {
                vec![]
            } else {
                (100..132).collect()
            },
            salt: 0xcafe_f00d,
            esn,
            anti_replay: true,
            inbound: false,
            udp_encap: None,
            tunnel: None,
        }
    }

    fn packet(sa: &Sa, seq: u64, inner: &[u8]) -> Vec<u8> {
        let (h, n) = (sa.head_len(), inner.len());
        let t = sa.trailer_len(n);
        let mut v = vec![0u8; h + n + t + sa.icv_len()];
        v[h..h + n].copy_from_slice(inner);
        write_trailer(&mut v[h + n..h + n + t], 4);
        sa.seal(seq, &mut v).unwrap();
        v
    }

    const ALL: [CryptoAlg; 5] = [
        CryptoAlg::AesCbc128,
        CryptoAlg::AesCbc192,
        CryptoAlg::AesCbc256,
        CryptoAlg::AesGcm128,
        CryptoAlg::AesGcm256,
    ];

    fn cbc(integ: IntegAlg, esn: bool) -> Sa {
        let mut c = cfg(CryptoAlg::AesCbc128, esn);
        c.integ = integ;
        Sa::new(c).unwrap()
    }

    #[test]
    fn cbc_with_each_integrity_algorithm_round_trips_and_sizes_its_icv() {
        for (integ, icv) in [
            (IntegAlg::Sha1_96, 12),
            (IntegAlg::Sha256_96, 12),
            (IntegAlg::Sha256_128, 16),
        ] {
            for esn in [false, true] {
                let sa = cbc(integ, esn);
                assert_eq!((sa.head_len(), sa.icv_len()), (24, icv));
                for n in 0..40usize {
                    let inner: Vec<u8> = (0..n as u8).collect();
                    let seq = (3u64 << 32) | 7;
                    let mut p = packet(&sa, seq, &inner);
                    assert_eq!((p.len() - 24 - icv) % 16, 0, "whole blocks");
                    assert_eq!(sa.open(seq, &mut p).unwrap(), (n, 4));
                    assert_eq!(&p[24..24 + n], &inner[..]);
                }
            }
        }
    }

    #[test]
    fn cbc_ivs_differ_per_packet_and_per_sa() {
        let (a, b) = (cbc(IntegAlg::Sha1_96, false), cbc(IntegAlg::Sha1_96, false));
        let iv = |sa: &Sa, seq| packet(sa, seq, b"same")[8..24].to_vec();
        assert_ne!(iv(&a, 1), iv(&a, 2));
        assert_ne!(iv(&a, 1), iv(&b, 1), "each SA draws its own IV key");
        assert_ne!(
            packet(&a, 1, b"same")[24..40],
            packet(&a, 2, b"same")[24..40],
            "so equal payloads encrypt differently"
        );
    }

    #[test]
    fn cbc_icv_covers_header_iv_ciphertext_and_the_esn_high_half() {
        let sa = cbc(IntegAlg::Sha256_128, true);
        let seq = (1u64 << 32) | 9;
        let p = packet(&sa, seq, b"hello world!");
        assert_eq!(sa.open(9, &mut p.clone()), Err(EspDrop::Integrity));
        for at in [0, 5, 8, 23, 24, p.len() - 17, p.len() - 1] {
            let mut t = p.clone();
            t[at] ^= 0x80;
            assert_eq!(sa.open(seq, &mut t), Err(EspDrop::Integrity), "byte {at}");
        }
        let mut short = p[..p.len() - 3].to_vec();
        assert_eq!(
            sa.open(seq, &mut short),
            Err(EspDrop::Short),
            "not whole blocks"
        );
        assert!(sa.open(seq, &mut p.clone()).is_ok());
    }

    #[test]
    fn cipher_and_integrity_must_go_together() {
        let mut c = cfg(CryptoAlg::AesCbc256, false);
        c.integ = IntegAlg::None;
        assert!(matches!(Sa::new(c), Err(SaError::Integrity(_))));
        let mut c = cfg(CryptoAlg::AesCbc256, false);
        c.integ_key.clear();
        assert!(matches!(Sa::new(c), Err(SaError::Integrity(_))));
        let mut c = cfg(CryptoAlg::AesGcm128, false);
        c.integ = IntegAlg::Sha1_96;
        assert!(matches!(Sa::new(c), Err(SaError::Integrity(_))));
        for alg in ALL {
            assert_eq!(CryptoAlg::from_vpp(alg.vpp()), Some(alg));
            assert!(Sa::new(cfg(alg, false)).is_ok(), "{alg:?}");
        }
        assert_eq!(CryptoAlg::from_vpp(4), None, "AES-CTR is not implemented");
        assert_eq!(IntegAlg::from_vpp(1), None, "MD5 is not implemented");
    }

    #[test]
    fn seal_then_open_every_length_every_cipher_with_and_without_esn() {
        for alg in ALL {
            for esn in [false, true] {
                let sa = Sa::new(cfg(alg, esn)).unwrap();
                for n in 0..70usize {
                    let inner: Vec<u8> = (0..n as u8).collect();
                    let seq = (5u64 << 32) | n as u64;
                    let mut p = packet(&sa, seq, &inner);
                    let h = sa.head_len();
                    assert_eq!((p.len() - h - sa.icv_len()) % 4, 0, "aligned");
                    assert_eq!(sa.open(seq, &mut p).unwrap(), (n, 4));
                    assert_eq!(&p[h..h + n], &inner[..]);
                }
            }
        }
    }

    #[test]
    fn the_esn_high_half_is_authenticated() {
        let sa = Sa::new(cfg(CryptoAlg::AesGcm128, true)).unwrap();
        let mut p = packet(&sa, (1 << 32) | 9, b"abcd");
        assert_eq!(sa.open(9, &mut p.clone()), Err(EspDrop::Integrity));
        assert!(sa.open((1 << 32) | 9, &mut p).is_ok());
    }

    #[test]
    fn tampered_and_bad_padding_are_told_apart() {
        let sa = Sa::new(cfg(CryptoAlg::AesGcm128, false)).unwrap();
        let mut p = packet(&sa, 3, b"hello world!");
        p[HEAD + 2] ^= 1;
        assert_eq!(sa.open(3, &mut p), Err(EspDrop::Integrity));
        // Sealed with a wrong pad byte: the ICV is good, the padding is not.
        let mut v = vec![0u8; HEAD + 4 + 4 + GCM_ICV];
        v[HEAD + 4..HEAD + 8].copy_from_slice(&[1, 3, 2, 4]);
        sa.seal(4, &mut v).unwrap();
        assert_eq!(sa.open(4, &mut v), Err(EspDrop::BadPadding));
        let mut v = vec![0u8; HEAD + 4 + 4 + GCM_ICV];
        v[HEAD + 4..HEAD + 8].copy_from_slice(&[0, 0, 9, 4]);
        sa.seal(5, &mut v).unwrap();
        assert_eq!(
            sa.open(5, &mut v),
            Err(EspDrop::BadPadding),
            "pad longer than payload"
        );
        assert_eq!(
            sa.open(5, &mut v[..HEAD + 3 + GCM_ICV].to_vec()),
            Err(EspDrop::Short)
        );
    }

    #[test]
    fn sequence_numbers_refuse_to_wrap_without_esn() {
        let sa = Sa::new(cfg(CryptoAlg::AesGcm128, false)).unwrap();
        assert_eq!(sa.next_seq(), Ok(1));
        sa.set_seq_outbound(u32::MAX as u64 - 1);
        assert_eq!(sa.next_seq(), Ok(u32::MAX as u64));
        assert_eq!(sa.next_seq(), Err(EspDrop::SeqRollover));
        assert_eq!(sa.next_seq(), Err(EspDrop::SeqRollover));
        let esn = Sa::new(cfg(CryptoAlg::AesGcm128, true)).unwrap();
        esn.set_seq_outbound(u32::MAX as u64);
        assert_eq!(
            esn.next_seq(),
            Ok(1 << 32),
            "ESN carries into the high half"
        );
    }

    /// A live restart carries an SA's numbering and window; the numbers it hands over are
    /// those after the last it keeps, and the drops say which refusal is which. (The split
    /// itself is `crate::handover`'s to test.)
    #[test]
    fn a_resumed_sa_numbers_on_and_tells_a_hand_over_from_a_rollover() {
        for esn in [true, false] {
            let old = Sa::new(cfg(CryptoAlg::AesGcm128, esn)).unwrap();
            for _ in 0..10 {
                old.next_seq().unwrap();
            }
            assert!(old.replay.accept(3));
            let st = old.state();
            assert_eq!(st.seq, 10);
            let new = Sa::new(cfg(CryptoAlg::AesGcm128, esn)).unwrap();
            new.resume(&st);
            assert!(!new.replay.check(3) && new.replay.check(2));
            let last = old.hand_over();
            assert_eq!(last, 10 + HANDOVER_RESERVE);
            new.skip_to(last);
            assert_eq!(new.next_seq(), Ok(last + 1));
            assert_eq!(
                std::iter::from_fn(|| old.next_seq().ok()).last(),
                Some(last)
            );
            assert_eq!(old.next_seq(), Err(EspDrop::SeqHandedOver));
            old.take_back();
            assert_eq!(old.next_seq(), Ok(last + HANDOVER_ABANDONED_JUMP + 1));
        }
        // Without ESN, near the end of the space, the jump stops there rather than wrap.
        let sa = Sa::new(cfg(CryptoAlg::AesGcm128, false)).unwrap();
        sa.set_seq_outbound(u32::MAX as u64 - 5000);
        sa.hand_over();
        sa.take_back();
        assert_eq!(sa.next_seq(), Err(EspDrop::SeqRollover));
    }

    #[test]
    fn wrong_key_length_is_refused() {
        let mut c = cfg(CryptoAlg::AesGcm256, false);
        c.key.truncate(16);
        assert_eq!(
            Sa::new(c).unwrap_err(),
            SaError::KeyLength { want: 32, got: 16 }
        );
    }

    /// A fixed vector against a silent change of the nonce layout (salt | explicit IV) or of
    /// the cipher: NIST's GCM test case 3 (AES-128, 12-byte IV, 64-byte plaintext) laid out as
    /// ESP. The AAD is ESP's, so only the ciphertext (the keystream, which the AAD does not
    /// touch) is NIST's; the ICV and the AAD are cross-checked by scapy's ESP
    /// (control/tests/ipsec_scapy.rs).
    #[test]
    fn known_answer_nist_gcm_case_3_in_esp_layout() {
        let key = hex("feffe9928665731c6d6a8f9467308308");
        let iv = hex("cafebabefacedbaddecaf888");
        let pt = hex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255");
        let ct = hex("42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985");
        let mut c = cfg(CryptoAlg::AesGcm128, false);
        c.key = key;
        c.salt = u32::from_be_bytes(iv[..4].try_into().unwrap());
        let sa = Sa::new(c).unwrap();
        let seq = u64::from_be_bytes(iv[4..].try_into().unwrap());
        let mut v = vec![0u8; HEAD + pt.len() + GCM_ICV];
        v[HEAD..HEAD + pt.len()].copy_from_slice(&pt);
        sa.seal(seq, &mut v).unwrap();
        assert_eq!(
            &v[HEAD..HEAD + ct.len()],
            &ct[..],
            "NIST GCM test case 3 ciphertext"
        );
        assert_eq!(
            &v[8..16],
            &iv[4..],
            "the explicit IV is the sequence number"
        );
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }
}
