//! Wire format of memif protocol version 2: control messages, ring header
//! and descriptor layout.
//!
//! Every control message is exactly [`MSG_SIZE`] bytes: a little-endian
//! `u16` type followed by a packed, type-specific body. Unused bytes are
//! zero. Decoding never panics: a short buffer or unknown type is an error.

/// Ring header magic written by the client; checked by the server.
pub const COOKIE: u32 = 0x03E3_1F20;
/// Protocol version 2.0 encoded as `major << 8 | minor`.
pub const VERSION: u16 = 2 << 8;
/// Size of every control message on the wire.
pub const MSG_SIZE: usize = 128;
/// Size of fixed-length name fields.
pub const NAME_SIZE: usize = 32;
/// Size of the secret field in INIT.
pub const SECRET_SIZE: usize = 24;
/// Size of the reason string in DISCONNECT.
pub const DISCONNECT_STRING_SIZE: usize = 96;

/// Descriptor flag: the packet continues in the next descriptor.
pub const DESC_FLAG_NEXT: u16 = 1;
/// Ring flag set by the receiver: "do not signal the eventfd, I poll".
pub const RING_FLAG_MASK_INT: u16 = 1;
/// ADD_RING flag: the ring carries client-to-server (S2M) traffic.
pub const ADD_RING_FLAG_S2M: u16 = 1;

/// Byte offset of `cookie` in the ring header.
pub const RING_COOKIE_OFFSET: usize = 0;
/// Byte offset of `flags` in the ring header.
pub const RING_FLAGS_OFFSET: usize = 4;
/// Byte offset of `head` in the ring header (first cache line).
pub const RING_HEAD_OFFSET: usize = 6;
/// Byte offset of `tail` in the ring header (second cache line).
pub const RING_TAIL_OFFSET: usize = 64;
/// Size of the ring header; descriptors start here (third cache line).
pub const RING_HEADER_SIZE: usize = 128;
/// Size of one descriptor.
pub const DESC_SIZE: usize = 16;
/// Largest ring we accept or advertise (2^14 slots, as DPDK).
pub const MAX_LOG2_RING_SIZE: u8 = 14;

/// Bytes a ring of `2^log2` descriptors occupies in a region.
pub const fn ring_bytes(log2: u8) -> usize {
    RING_HEADER_SIZE + DESC_SIZE * (1usize << log2)
}

/// Interface mode carried in INIT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Frames start with an Ethernet header.
    Ethernet,
    /// Frames are bare IPv4/IPv6 packets (what calico uses for pods).
    Ip,
    /// VPP punt/inject mode. Parsed so it can be rejected with a reason.
    PuntInject,
}

impl Mode {
    /// Wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            Mode::Ethernet => 0,
            Mode::Ip => 1,
            Mode::PuntInject => 2,
        }
    }
    /// Parse a wire value.
    pub fn from_u8(v: u8) -> Option<Mode> {
        match v {
            0 => Some(Mode::Ethernet),
            1 => Some(Mode::Ip),
            2 => Some(Mode::PuntInject),
            _ => None,
        }
    }
}

/// Message type numbers.
pub mod msg_type {
    /// ACK of INIT / ADD_REGION / ADD_RING.
    pub const ACK: u16 = 1;
    /// Server → client greeting with limits.
    pub const HELLO: u16 = 2;
    /// Client → server: interface id, mode, secret.
    pub const INIT: u16 = 3;
    /// Client → server: shared memory region (fd attached).
    pub const ADD_REGION: u16 = 4;
    /// Client → server: ring location (eventfd attached).
    pub const ADD_RING: u16 = 5;
    /// Client → server: all set up.
    pub const CONNECT: u16 = 6;
    /// Server → client: connection established.
    pub const CONNECTED: u16 = 7;
    /// Either way: tear down, with a reason.
    pub const DISCONNECT: u16 = 8;
}

/// HELLO body.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Hello {
    /// Peer application name.
    pub name: String,
    /// Lowest supported version.
    pub min_version: u16,
    /// Highest supported version.
    pub max_version: u16,
    /// Highest region index accepted.
    pub max_region: u16,
    /// Highest M2S (server→client) ring index accepted.
    pub max_m2s_ring: u16,
    /// Highest S2M (client→server) ring index accepted.
    pub max_s2m_ring: u16,
    /// Largest ring size (log2) accepted.
    pub max_log2_ring_size: u8,
}

/// INIT body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Init {
    /// Protocol version the client speaks.
    pub version: u16,
    /// Interface id the client wants.
    pub id: u32,
    /// Raw interface mode byte (see [`Mode::from_u8`]).
    pub mode: u8,
    /// Secret, NUL padded.
    pub secret: [u8; SECRET_SIZE],
    /// Client application name.
    pub name: String,
}

/// ADD_REGION body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddRegion {
    /// Region index (must be sequential from 0).
    pub index: u16,
    /// Region size in bytes.
    pub size: u64,
}

/// ADD_RING body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddRing {
    /// [`ADD_RING_FLAG_S2M`] or 0.
    pub flags: u16,
    /// Queue index within its direction.
    pub index: u16,
    /// Region holding the ring.
    pub region: u16,
    /// Byte offset of the ring header in that region.
    pub offset: u32,
    /// log2 of the number of descriptors.
    pub log2_ring_size: u8,
    /// Per-packet private header size (unused, 0).
    pub private_hdr_size: u16,
}

/// A decoded control message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// ACK.
    Ack,
    /// HELLO.
    Hello(Hello),
    /// INIT.
    Init(Init),
    /// ADD_REGION.
    AddRegion(AddRegion),
    /// ADD_RING.
    AddRing(AddRing),
    /// CONNECT with the client's interface name.
    Connect(String),
    /// CONNECTED with the server's interface name.
    Connected(String),
    /// DISCONNECT with code and reason.
    Disconnect(u32, String),
}

/// Why a received message could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Not exactly [`MSG_SIZE`] bytes.
    BadSize(usize),
    /// Type number outside 1..=8.
    UnknownType(u16),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::BadSize(n) => {
                write!(f, "control message of {n} bytes, expected {MSG_SIZE}")
            }
            DecodeError::UnknownType(t) => write!(f, "unknown control message type {t}"),
        }
    }
}

fn put_u16(b: &mut [u8; MSG_SIZE], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn put_u32(b: &mut [u8; MSG_SIZE], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(b: &mut [u8; MSG_SIZE], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
/// Copy a string into a fixed NUL-padded field, truncating so a NUL remains.
fn put_str(b: &mut [u8; MSG_SIZE], at: usize, len: usize, s: &[u8]) {
    let n = s.len().min(len - 1);
    b[at..at + n].copy_from_slice(&s[..n]);
}
fn get_u16(b: &[u8; MSG_SIZE], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn get_u32(b: &[u8; MSG_SIZE], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn get_u64(b: &[u8; MSG_SIZE], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}
/// Read a NUL-terminated (or full-length) field as lossy UTF-8.
fn get_str(b: &[u8; MSG_SIZE], at: usize, len: usize) -> String {
    let f = &b[at..at + len];
    let end = f.iter().position(|&c| c == 0).unwrap_or(len);
    String::from_utf8_lossy(&f[..end]).into_owned()
}

impl Msg {
    /// Encode into the fixed 128-byte wire form.
    pub fn encode(&self) -> [u8; MSG_SIZE] {
        let mut b = [0u8; MSG_SIZE];
        // Body starts right after the 2-byte type.
        const P: usize = 2;
        match self {
            Msg::Ack => put_u16(&mut b, 0, msg_type::ACK),
            Msg::Hello(h) => {
                put_u16(&mut b, 0, msg_type::HELLO);
                put_str(&mut b, P, NAME_SIZE, h.name.as_bytes());
                put_u16(&mut b, P + 32, h.min_version);
                put_u16(&mut b, P + 34, h.max_version);
                put_u16(&mut b, P + 36, h.max_region);
                put_u16(&mut b, P + 38, h.max_m2s_ring);
                put_u16(&mut b, P + 40, h.max_s2m_ring);
                b[P + 42] = h.max_log2_ring_size;
            }
            Msg::Init(i) => {
                put_u16(&mut b, 0, msg_type::INIT);
                put_u16(&mut b, P, i.version);
                put_u32(&mut b, P + 2, i.id);
                b[P + 6] = i.mode;
                b[P + 7..P + 7 + SECRET_SIZE].copy_from_slice(&i.secret);
                put_str(&mut b, P + 31, NAME_SIZE, i.name.as_bytes());
            }
            Msg::AddRegion(r) => {
                put_u16(&mut b, 0, msg_type::ADD_REGION);
                put_u16(&mut b, P, r.index);
                put_u64(&mut b, P + 2, r.size);
            }
            Msg::AddRing(r) => {
                put_u16(&mut b, 0, msg_type::ADD_RING);
                put_u16(&mut b, P, r.flags);
                put_u16(&mut b, P + 2, r.index);
                put_u16(&mut b, P + 4, r.region);
                put_u32(&mut b, P + 6, r.offset);
                b[P + 10] = r.log2_ring_size;
                put_u16(&mut b, P + 11, r.private_hdr_size);
            }
            Msg::Connect(n) => {
                put_u16(&mut b, 0, msg_type::CONNECT);
                put_str(&mut b, P, NAME_SIZE, n.as_bytes());
            }
            Msg::Connected(n) => {
                put_u16(&mut b, 0, msg_type::CONNECTED);
                put_str(&mut b, P, NAME_SIZE, n.as_bytes());
            }
            Msg::Disconnect(code, s) => {
                put_u16(&mut b, 0, msg_type::DISCONNECT);
                put_u32(&mut b, P, *code);
                put_str(&mut b, P + 4, DISCONNECT_STRING_SIZE, s.as_bytes());
            }
        }
        b
    }

    /// Decode a received datagram. Anything but exactly 128 bytes is rejected.
    pub fn decode(buf: &[u8]) -> Result<Msg, DecodeError> {
        let b: &[u8; MSG_SIZE] = buf
            .try_into()
            .map_err(|_| DecodeError::BadSize(buf.len()))?;
        const P: usize = 2;
        let t = get_u16(b, 0);
        Ok(match t {
            msg_type::ACK => Msg::Ack,
            msg_type::HELLO => Msg::Hello(Hello {
                name: get_str(b, P, NAME_SIZE),
                min_version: get_u16(b, P + 32),
                max_version: get_u16(b, P + 34),
                max_region: get_u16(b, P + 36),
                max_m2s_ring: get_u16(b, P + 38),
                max_s2m_ring: get_u16(b, P + 40),
                max_log2_ring_size: b[P + 42],
            }),
            msg_type::INIT => {
                let mut secret = [0u8; SECRET_SIZE];
                secret.copy_from_slice(&b[P + 7..P + 7 + SECRET_SIZE]);
                Msg::Init(Init {
                    version: get_u16(b, P),
                    id: get_u32(b, P + 2),
                    mode: b[P + 6],
                    secret,
                    name: get_str(b, P + 31, NAME_SIZE),
                })
            }
            msg_type::ADD_REGION => Msg::AddRegion(AddRegion {
                index: get_u16(b, P),
                size: get_u64(b, P + 2),
            }),
            msg_type::ADD_RING => Msg::AddRing(AddRing {
                flags: get_u16(b, P),
                index: get_u16(b, P + 2),
                region: get_u16(b, P + 4),
                offset: get_u32(b, P + 6),
                log2_ring_size: b[P + 10],
                private_hdr_size: get_u16(b, P + 11),
            }),
            msg_type::CONNECT => Msg::Connect(get_str(b, P, NAME_SIZE)),
            msg_type::CONNECTED => Msg::Connected(get_str(b, P, NAME_SIZE)),
            msg_type::DISCONNECT => {
                Msg::Disconnect(get_u32(b, P), get_str(b, P + 4, DISCONNECT_STRING_SIZE))
            }
            other => return Err(DecodeError::UnknownType(other)),
        })
    }

    /// Short name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Msg::Ack => "ACK",
            Msg::Hello(_) => "HELLO",
            Msg::Init(_) => "INIT",
            Msg::AddRegion(_) => "ADD_REGION",
            Msg::AddRing(_) => "ADD_RING",
            Msg::Connect(_) => "CONNECT",
            Msg::Connected(_) => "CONNECTED",
            Msg::Disconnect(..) => "DISCONNECT",
        }
    }
}

/// Copy `s` into a NUL-padded secret field (truncated to 24 bytes).
pub fn secret_field(s: &str) -> [u8; SECRET_SIZE] {
    let mut f = [0u8; SECRET_SIZE];
    let n = s.len().min(SECRET_SIZE);
    f[..n].copy_from_slice(&s.as_bytes()[..n]);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_offsets_match_the_c_structs() {
        // INIT: type(2) version(2) id(4) mode(1) secret(24) name(32)
        let m = Msg::Init(Init {
            version: VERSION,
            id: 0x01020304,
            mode: 1,
            secret: secret_field("abc"),
            name: "x".into(),
        });
        let b = m.encode();
        assert_eq!(&b[0..2], &[3, 0]);
        assert_eq!(&b[2..4], &[0, 2]);
        assert_eq!(&b[4..8], &[4, 3, 2, 1]);
        assert_eq!(b[8], 1);
        assert_eq!(&b[9..12], b"abc");
        assert_eq!(b[33], b'x');
        // ADD_RING: flags(2) index(2) region(2) offset(4) log2(1) priv(2)
        let r = AddRing {
            flags: 1,
            index: 2,
            region: 3,
            offset: 0x100,
            log2_ring_size: 10,
            private_hdr_size: 0,
        };
        let b = Msg::AddRing(r).encode();
        assert_eq!(&b[2..14], &[1, 0, 2, 0, 3, 0, 0, 1, 0, 0, 10, 0]);
        assert_eq!(Msg::decode(&b), Ok(Msg::AddRing(r)));
        let h = Hello {
            name: "n".into(),
            min_version: VERSION,
            max_version: VERSION,
            max_region: 3,
            max_m2s_ring: 1,
            max_s2m_ring: 1,
            max_log2_ring_size: 14,
        };
        let b = Msg::Hello(h.clone()).encode();
        assert_eq!(b[44], 14);
        assert_eq!(Msg::decode(&b), Ok(Msg::Hello(h)));
    }

    #[test]
    fn decode_rejects_garbage() {
        assert_eq!(Msg::decode(&[0u8; 10]), Err(DecodeError::BadSize(10)));
        let mut b = [0u8; MSG_SIZE];
        b[0] = 99;
        assert_eq!(Msg::decode(&b), Err(DecodeError::UnknownType(99)));
        // Names without a NUL terminator must not overrun.
        let mut b = [b'A'; MSG_SIZE];
        b[0] = 6;
        b[1] = 0;
        assert_eq!(Msg::decode(&b), Ok(Msg::Connect("A".repeat(32))));
    }
}
