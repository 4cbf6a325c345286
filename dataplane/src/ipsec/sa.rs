//! Security associations: the algorithm and key, the outbound sequence number and the inbound
//! replay window, and the per-packet ESP seal/open over a packet's bytes in place (RFC 4303
//! with AES-GCM as RFC 4106: 4-byte salt + 8-byte explicit IV as the nonce, the SPI and
//! sequence number (with ESN: SPI, high half, low half) as the AAD, a 16-byte ICV after the
//! ciphertext). Crypto is aws-lc-rs (docs/crypto.md says why); nothing here allocates.

use super::replay::ReplayWindow;
use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// ESP header: SPI and sequence number.
pub const ESP_HDR: usize = 8;
/// The explicit IV of AES-GCM (RFC 4106 §3.1).
pub const GCM_IV: usize = 8;
/// The AES-GCM ICV (16 bytes, the only length rvpp sends or accepts).
pub const GCM_ICV: usize = 16;
/// From the ESP header to the payload.
pub const HEAD: usize = ESP_HDR + GCM_IV;
/// NAT-T (RFC 3948): UDP port, and the 4 zero bytes that mark an IKE message on it.
pub const NATT_PORT: u16 = 4500;

/// The ciphers rvpp implements, with VPP's `ipsec_crypto_alg` numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CryptoAlg {
    AesGcm128,
    AesGcm256,
}

impl CryptoAlg {
    /// VPP's `IPSEC_API_CRYPTO_ALG_*`.
    pub fn from_vpp(n: u32) -> Option<Self> {
        match n {
            7 => Some(Self::AesGcm128),
            9 => Some(Self::AesGcm256),
            _ => None,
        }
    }
    pub fn vpp(self) -> u32 {
        match self {
            Self::AesGcm128 => 7,
            Self::AesGcm256 => 9,
        }
    }
    pub fn key_len(self) -> usize {
        match self {
            Self::AesGcm128 => 16,
            Self::AesGcm256 => 32,
        }
    }
    /// VPP's name in `show ipsec sa`.
    pub fn name(self) -> &'static str {
        match self {
            Self::AesGcm128 => "aes-gcm-128",
            Self::AesGcm256 => "aes-gcm-256",
        }
    }
    fn aead(self) -> &'static aead::Algorithm {
        match self {
            Self::AesGcm128 => &aead::AES_128_GCM,
            Self::AesGcm256 => &aead::AES_256_GCM,
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
    /// The 4 bytes of the GCM nonce that precede the IV (from the key material in IKEv2).
    pub salt: u32,
    pub esn: bool,
    pub anti_replay: bool,
    pub inbound: bool,
    /// NAT-T: UDP (source, destination) ports for what this SA sends.
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
    KeyLength { want: usize, got: usize },
    Crypto,
}

impl std::fmt::Display for SaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::KeyLength { want, got } => {
                write!(f, "key is {got} bytes, the cipher takes {want}")
            }
            Self::Crypto => write!(f, "the crypto library refused the key"),
        }
    }
}

/// Why a packet was not sealed or opened; the nodes count each under its own name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EspDrop {
    /// Without ESN the 32-bit sequence number would wrap (RFC 4303 §3.3.3): refused.
    SeqRollover,
    Replay,
    Integrity,
    BadPadding,
    Short,
}

/// One SA as the workers use it. Shared by `Arc` between table versions, so its sequence
/// number and replay window survive every republish.
pub struct Sa {
    pub cfg: SaConfig,
    key: LessSafeKey,
    /// The last outbound sequence number used (the next packet takes one more).
    seq: AtomicU64,
    pub replay: ReplayWindow,
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
/// ciphertext ends on a 4-byte boundary (RFC 4303 §2.4).
#[inline(always)]
pub fn trailer_len(n: usize) -> usize {
    (4 - (n + 2) % 4) % 4 + 2
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
        let key = UnboundKey::new(cfg.alg.aead(), &cfg.key).map_err(|_| SaError::Crypto)?;
        Ok(Self {
            cfg,
            key: LessSafeKey::new(key),
            seq: AtomicU64::new(0),
            replay: ReplayWindow::default(),
        })
    }

    /// The last outbound sequence number used.
    pub fn seq_outbound(&self) -> u64 {
        self.seq.load(Ordering::Relaxed)
    }

    /// Start the outbound numbering after `seq` (tests of the rollover; an SA starts at 0).
    pub fn set_seq_outbound(&self, seq: u64) {
        self.seq.store(seq, Ordering::Relaxed);
    }

    /// The next outbound sequence number, or rollover: never wraps to 0.
    #[inline(always)]
    pub fn next_seq(&self) -> Result<u64, EspDrop> {
        let limit = if self.cfg.esn {
            u64::MAX
        } else {
            u32::MAX as u64
        };
        // fetch_update keeps the counter at the limit instead of running past it.
        self.seq
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                (s < limit).then_some(s + 1)
            })
            .map(|s| s + 1)
            .map_err(|_| EspDrop::SeqRollover)
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

    /// Seal in place. `esp` is [ESP header | IV | payload with its trailer | ICV]: the header,
    /// IV (the 64-bit sequence number, unique per key) and ICV are written here, the payload is
    /// encrypted. `esp.len() >= HEAD + GCM_ICV`.
    #[inline(always)]
    pub fn seal(&self, seq: u64, esp: &mut [u8]) -> Result<(), EspDrop> {
        if esp.len() < HEAD + GCM_ICV {
            return Err(EspDrop::Short);
        }
        let iv = seq.to_be_bytes();
        esp[..4].copy_from_slice(&self.cfg.spi.to_be_bytes());
        esp[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
        esp[8..16].copy_from_slice(&iv);
        let (aad, n) = self.aad(seq);
        let end = esp.len() - GCM_ICV;
        let (body, icv) = esp[HEAD..].split_at_mut(end - HEAD);
        let tag = self
            .key
            .seal_in_place_separate_tag(self.nonce(iv), Aad::from(&aad[..n]), body)
            .map_err(|_| EspDrop::Integrity)?;
        icv.copy_from_slice(tag.as_ref());
        Ok(())
    }

    /// Verify and decrypt in place the ESP packet `esp` (from the ESP header to the end of the
    /// ICV) whose full sequence number is `seq`. Returns (inner length, next header): the
    /// inner packet is `esp[HEAD..HEAD + len]`. The replay window is the caller's.
    #[inline(always)]
    pub fn open(&self, seq: u64, esp: &mut [u8]) -> Result<(usize, u8), EspDrop> {
        if esp.len() < HEAD + 4 + GCM_ICV {
            return Err(EspDrop::Short);
        }
        let mut iv = [0u8; 8];
        iv.copy_from_slice(&esp[8..16]);
        let (aad, n) = self.aad(seq);
        let pt = self
            .key
            .open_in_place(self.nonce(iv), Aad::from(&aad[..n]), &mut esp[HEAD..])
            .map_err(|_| EspDrop::Integrity)?;
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
            salt: 0xcafe_f00d,
            esn,
            anti_replay: true,
            inbound: false,
            udp_encap: None,
            tunnel: None,
        }
    }

    fn packet(sa: &Sa, seq: u64, inner: &[u8]) -> Vec<u8> {
        let t = trailer_len(inner.len());
        let mut v = vec![0u8; HEAD + inner.len() + t + GCM_ICV];
        v[HEAD..HEAD + inner.len()].copy_from_slice(inner);
        write_trailer(&mut v[HEAD + inner.len()..HEAD + inner.len() + t], 4);
        sa.seal(seq, &mut v).unwrap();
        v
    }

    #[test]
    fn seal_then_open_every_length_both_keys_with_and_without_esn() {
        for alg in [CryptoAlg::AesGcm128, CryptoAlg::AesGcm256] {
            for esn in [false, true] {
                let sa = Sa::new(cfg(alg, esn)).unwrap();
                for n in 0..70usize {
                    let inner: Vec<u8> = (0..n as u8).collect();
                    let seq = (5u64 << 32) | n as u64;
                    let mut p = packet(&sa, seq, &inner);
                    assert_eq!((p.len() - HEAD - GCM_ICV) % 4, 0, "aligned");
                    assert_eq!(sa.open(seq, &mut p).unwrap(), (n, 4));
                    assert_eq!(&p[HEAD..HEAD + n], &inner[..]);
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
