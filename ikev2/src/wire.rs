//! IKEv2 wire format (RFC 7296 §3): typed, length-checked parse and emit of the header and
//! payloads. Every length is checked against what is left; malformed input is a `WireError`.

use std::net::Ipv4Addr;

pub const HEADER_LEN: usize = 28;
pub const VERSION: u8 = 0x20;

pub mod exchange {
    pub const IKE_SA_INIT: u8 = 34;
    pub const IKE_AUTH: u8 = 35;
    pub const CREATE_CHILD_SA: u8 = 36;
    pub const INFORMATIONAL: u8 = 37;
}

pub mod flags {
    pub const INITIATOR: u8 = 0x08;
    pub const RESPONSE: u8 = 0x20;
}

pub mod payload {
    pub const NONE: u8 = 0;
    pub const SA: u8 = 33;
    pub const KE: u8 = 34;
    pub const IDI: u8 = 35;
    pub const IDR: u8 = 36;
    pub const CERT: u8 = 37;
    pub const CERTREQ: u8 = 38;
    pub const AUTH: u8 = 39;
    pub const NONCE: u8 = 40;
    pub const NOTIFY: u8 = 41;
    pub const DELETE: u8 = 42;
    pub const VENDOR: u8 = 43;
    pub const TSI: u8 = 44;
    pub const TSR: u8 = 45;
    pub const SK: u8 = 46;
    pub const CP: u8 = 47;
    pub const EAP: u8 = 48;
}

pub mod notify {
    pub const UNSUPPORTED_CRITICAL_PAYLOAD: u16 = 1;
    pub const INVALID_IKE_SPI: u16 = 4;
    pub const INVALID_SYNTAX: u16 = 7;
    pub const INVALID_MESSAGE_ID: u16 = 9;
    pub const NO_PROPOSAL_CHOSEN: u16 = 14;
    pub const INVALID_KE_PAYLOAD: u16 = 17;
    pub const AUTHENTICATION_FAILED: u16 = 24;
    pub const TS_UNACCEPTABLE: u16 = 38;
    pub const TEMPORARY_FAILURE: u16 = 43;
    pub const CHILD_SA_NOT_FOUND: u16 = 44;
    /// Types below this are errors (RFC 7296 §3.10.1).
    pub const FIRST_STATUS: u16 = 16384;
    pub const INITIAL_CONTACT: u16 = 16384;
    pub const NAT_DETECTION_SOURCE_IP: u16 = 16388;
    pub const NAT_DETECTION_DESTINATION_IP: u16 = 16389;
    pub const COOKIE: u16 = 16390;
    pub const USE_TRANSPORT_MODE: u16 = 16391;
    pub const REKEY_SA: u16 = 16393;
}

pub mod proto {
    pub const IKE: u8 = 1;
    pub const AH: u8 = 2;
    pub const ESP: u8 = 3;
}

pub mod transform {
    pub const ENCR: u8 = 1;
    pub const PRF: u8 = 2;
    pub const INTEG: u8 = 3;
    pub const DH: u8 = 4;
    pub const ESN: u8 = 5;
    /// Attribute type of the key length (TV format).
    pub const ATTR_KEY_LENGTH: u16 = 14;
}

pub mod id_type {
    pub const IPV4_ADDR: u8 = 1;
    pub const FQDN: u8 = 2;
    pub const RFC822_ADDR: u8 = 3;
    pub const IPV6_ADDR: u8 = 5;
    pub const DER_ASN1_DN: u8 = 9;
    pub const DER_ASN1_GN: u8 = 10;
    pub const KEY_ID: u8 = 11;
}

pub const AUTH_SHARED_KEY: u8 = 2;
pub const TS_IPV4_ADDR_RANGE: u8 = 7;
pub const TS_IPV6_ADDR_RANGE: u8 = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// Fewer bytes than a header or a length field says.
    Truncated(&'static str),
    /// A length field smaller than its fixed part, or one that disagrees with its content.
    BadLength(&'static str),
    /// Major version other than 2.
    BadVersion(u8),
    /// A payload we do not know with the critical bit set (answer UNSUPPORTED_CRITICAL_PAYLOAD).
    UnsupportedCritical(u8),
    /// The SK payload was not the last one.
    SkNotLast,
    /// Something structurally wrong inside a payload.
    Syntax(&'static str),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for WireError {}

type Result<T> = std::result::Result<T, WireError>;

/// A bounds-checked reader over a byte slice.
struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, what }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(WireError::Truncated(self.what));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }
    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub spi_i: u64,
    pub spi_r: u64,
    pub next_payload: u8,
    pub version: u8,
    pub exchange: u8,
    pub flags: u8,
    pub message_id: u32,
    pub length: u32,
}

impl Header {
    pub fn parse(buf: &[u8]) -> Result<Header> {
        let mut r = Reader::new(buf, "header");
        let h = Header {
            spi_i: r.u64()?,
            spi_r: r.u64()?,
            next_payload: r.u8()?,
            version: r.u8()?,
            exchange: r.u8()?,
            flags: r.u8()?,
            message_id: r.u32()?,
            length: r.u32()?,
        };
        if h.version >> 4 != 2 {
            return Err(WireError::BadVersion(h.version));
        }
        Ok(h)
    }
    pub fn is_response(&self) -> bool {
        self.flags & flags::RESPONSE != 0
    }
    pub fn from_initiator(&self) -> bool {
        self.flags & flags::INITIATOR != 0
    }
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.spi_i.to_be_bytes());
        out.extend_from_slice(&self.spi_r.to_be_bytes());
        out.push(self.next_payload);
        out.push(self.version);
        out.push(self.exchange);
        out.push(self.flags);
        out.extend_from_slice(&self.message_id.to_be_bytes());
        out.extend_from_slice(&self.length.to_be_bytes());
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    pub kind: u8,
    pub id: u16,
    /// Key length attribute in bits, when present.
    pub key_len: Option<u16>,
}

impl Transform {
    pub fn new(kind: u8, id: u16) -> Self {
        Transform {
            kind,
            id,
            key_len: None,
        }
    }
    pub fn with_key(kind: u8, id: u16, bits: u16) -> Self {
        Transform {
            kind,
            id,
            key_len: Some(bits),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub num: u8,
    pub protocol: u8,
    pub spi: Vec<u8>,
    pub transforms: Vec<Transform>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Ipv4(Ipv4Addr),
    Other { kind: u8, data: Vec<u8> },
}

impl Identity {
    /// The ID payload body after the generic header (RestOfIDPayload in RFC 7296 §2.15).
    pub fn body(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(8);
        match self {
            Identity::Ipv4(a) => {
                v.extend_from_slice(&[id_type::IPV4_ADDR, 0, 0, 0]);
                v.extend_from_slice(&a.octets());
            }
            Identity::Other { kind, data } => {
                v.extend_from_slice(&[*kind, 0, 0, 0]);
                v.extend_from_slice(data);
            }
        }
        v
    }
    fn parse(body: &[u8]) -> Result<Identity> {
        let mut r = Reader::new(body, "ID");
        let kind = r.u8()?;
        r.take(3)?;
        let data = r.rest();
        if kind == id_type::IPV4_ADDR {
            if data.len() != 4 {
                return Err(WireError::BadLength("ID_IPV4_ADDR"));
            }
            return Ok(Identity::Ipv4(Ipv4Addr::new(
                data[0], data[1], data[2], data[3],
            )));
        }
        Ok(Identity::Other {
            kind,
            data: data.to_vec(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficSelector {
    pub ts_type: u8,
    pub ip_proto: u8,
    pub start_port: u16,
    pub end_port: u16,
    /// 4 bytes for IPv4, 16 for IPv6.
    pub start_addr: Vec<u8>,
    pub end_addr: Vec<u8>,
}

impl TrafficSelector {
    /// Every IPv4 address, every protocol and port: what calico configures.
    pub fn ipv4_any() -> Self {
        Self::ipv4_range(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST)
    }
    pub fn ipv4_range(start: Ipv4Addr, end: Ipv4Addr) -> Self {
        TrafficSelector {
            ts_type: TS_IPV4_ADDR_RANGE,
            ip_proto: 0,
            start_port: 0,
            end_port: 65535,
            start_addr: start.octets().to_vec(),
            end_addr: end.octets().to_vec(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub protocol: u8,
    pub spi: Vec<u8>,
    pub kind: u16,
    pub data: Vec<u8>,
}

impl Notify {
    pub fn new(kind: u16, data: Vec<u8>) -> Self {
        Notify {
            protocol: 0,
            spi: Vec::new(),
            kind,
            data,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    pub protocol: u8,
    pub spi_size: u8,
    pub spis: Vec<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Sa(Vec<Proposal>),
    Ke {
        group: u16,
        data: Vec<u8>,
    },
    IdI(Identity),
    IdR(Identity),
    Auth {
        method: u8,
        data: Vec<u8>,
    },
    Nonce(Vec<u8>),
    Notify(Notify),
    Delete(Delete),
    Vendor(Vec<u8>),
    TsI(Vec<TrafficSelector>),
    TsR(Vec<TrafficSelector>),
    /// The SK payload as received: IV, ciphertext and ICV; `first` is the first inner payload type.
    Encrypted {
        first: u8,
        body: Vec<u8>,
    },
    /// A non-critical payload we do not interpret (CERTREQ, CP, ...): skipped.
    Other {
        kind: u8,
        data: Vec<u8>,
    },
}

impl Payload {
    pub fn kind(&self) -> u8 {
        match self {
            Payload::Sa(_) => payload::SA,
            Payload::Ke { .. } => payload::KE,
            Payload::IdI(_) => payload::IDI,
            Payload::IdR(_) => payload::IDR,
            Payload::Auth { .. } => payload::AUTH,
            Payload::Nonce(_) => payload::NONCE,
            Payload::Notify(_) => payload::NOTIFY,
            Payload::Delete(_) => payload::DELETE,
            Payload::Vendor(_) => payload::VENDOR,
            Payload::TsI(_) => payload::TSI,
            Payload::TsR(_) => payload::TSR,
            Payload::Encrypted { .. } => payload::SK,
            Payload::Other { kind, .. } => *kind,
        }
    }

    fn parse(kind: u8, critical: bool, body: &[u8], next: u8) -> Result<Payload> {
        Ok(match kind {
            payload::SA => Payload::Sa(parse_proposals(body)?),
            payload::KE => {
                let mut r = Reader::new(body, "KE");
                let group = r.u16()?;
                r.take(2)?;
                Payload::Ke {
                    group,
                    data: r.rest().to_vec(),
                }
            }
            payload::IDI => Payload::IdI(Identity::parse(body)?),
            payload::IDR => Payload::IdR(Identity::parse(body)?),
            payload::AUTH => {
                let mut r = Reader::new(body, "AUTH");
                let method = r.u8()?;
                r.take(3)?;
                Payload::Auth {
                    method,
                    data: r.rest().to_vec(),
                }
            }
            payload::NONCE => {
                // RFC 7296 §3.9: 16 to 256 octets.
                if body.len() < 16 || body.len() > 256 {
                    return Err(WireError::BadLength("nonce"));
                }
                Payload::Nonce(body.to_vec())
            }
            payload::NOTIFY => {
                let mut r = Reader::new(body, "notify");
                let protocol = r.u8()?;
                let spi_size = r.u8()? as usize;
                let kind = r.u16()?;
                let spi = r.take(spi_size)?.to_vec();
                Payload::Notify(Notify {
                    protocol,
                    spi,
                    kind,
                    data: r.rest().to_vec(),
                })
            }
            payload::DELETE => {
                let mut r = Reader::new(body, "delete");
                let protocol = r.u8()?;
                let spi_size = r.u8()?;
                let n = r.u16()? as usize;
                if spi_size as usize * n != r.buf.len() {
                    return Err(WireError::BadLength("delete SPIs"));
                }
                let mut spis = Vec::with_capacity(n);
                for _ in 0..n {
                    spis.push(r.take(spi_size as usize)?.to_vec());
                }
                Payload::Delete(Delete {
                    protocol,
                    spi_size,
                    spis,
                })
            }
            payload::VENDOR => Payload::Vendor(body.to_vec()),
            payload::TSI => Payload::TsI(parse_selectors(body)?),
            payload::TSR => Payload::TsR(parse_selectors(body)?),
            payload::SK => Payload::Encrypted {
                first: next,
                body: body.to_vec(),
            },
            payload::CERT | payload::CERTREQ | payload::CP | payload::EAP => Payload::Other {
                kind,
                data: body.to_vec(),
            },
            _ if critical => return Err(WireError::UnsupportedCritical(kind)),
            _ => Payload::Other {
                kind,
                data: body.to_vec(),
            },
        })
    }

    /// Appends the payload body (no generic header).
    fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            Payload::Sa(props) => encode_proposals(props, out),
            Payload::Ke { group, data } => {
                out.extend_from_slice(&group.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(data);
            }
            Payload::IdI(id) | Payload::IdR(id) => out.extend_from_slice(&id.body()),
            Payload::Auth { method, data } => {
                out.extend_from_slice(&[*method, 0, 0, 0]);
                out.extend_from_slice(data);
            }
            Payload::Nonce(n) => out.extend_from_slice(n),
            Payload::Notify(n) => {
                out.push(n.protocol);
                out.push(n.spi.len() as u8);
                out.extend_from_slice(&n.kind.to_be_bytes());
                out.extend_from_slice(&n.spi);
                out.extend_from_slice(&n.data);
            }
            Payload::Delete(d) => {
                out.push(d.protocol);
                out.push(d.spi_size);
                out.extend_from_slice(&(d.spis.len() as u16).to_be_bytes());
                for s in &d.spis {
                    out.extend_from_slice(s);
                }
            }
            Payload::Vendor(v) => out.extend_from_slice(v),
            Payload::TsI(ts) | Payload::TsR(ts) => {
                out.extend_from_slice(&[ts.len() as u8, 0, 0, 0]);
                for t in ts {
                    out.push(t.ts_type);
                    out.push(t.ip_proto);
                    let len = 8 + t.start_addr.len() + t.end_addr.len();
                    out.extend_from_slice(&(len as u16).to_be_bytes());
                    out.extend_from_slice(&t.start_port.to_be_bytes());
                    out.extend_from_slice(&t.end_port.to_be_bytes());
                    out.extend_from_slice(&t.start_addr);
                    out.extend_from_slice(&t.end_addr);
                }
            }
            Payload::Encrypted { body, .. } => out.extend_from_slice(body),
            Payload::Other { data, .. } => out.extend_from_slice(data),
        }
    }
}

fn parse_proposals(body: &[u8]) -> Result<Vec<Proposal>> {
    let mut r = Reader::new(body, "SA");
    let mut out = Vec::new();
    loop {
        let more = r.u8()?;
        r.u8()?;
        let len = r.u16()? as usize;
        if len < 8 {
            return Err(WireError::BadLength("proposal"));
        }
        let mut p = Reader::new(r.take(len - 4)?, "proposal");
        let num = p.u8()?;
        let protocol = p.u8()?;
        let spi_size = p.u8()? as usize;
        let ntrans = p.u8()?;
        let spi = p.take(spi_size)?.to_vec();
        let mut transforms = Vec::with_capacity(ntrans as usize);
        for i in 0..ntrans {
            let tmore = p.u8()?;
            p.u8()?;
            let tlen = p.u16()? as usize;
            if tlen < 8 {
                return Err(WireError::BadLength("transform"));
            }
            let mut t = Reader::new(p.take(tlen - 4)?, "transform");
            let kind = t.u8()?;
            t.u8()?;
            let id = t.u16()?;
            let mut key_len = None;
            while !t.is_empty() {
                let at = t.u16()?;
                if at & 0x8000 != 0 {
                    let v = t.u16()?;
                    if at & 0x7fff == transform::ATTR_KEY_LENGTH {
                        key_len = Some(v);
                    }
                } else {
                    let alen = t.u16()? as usize;
                    t.take(alen)?;
                }
            }
            let last = i + 1 == ntrans;
            if (tmore == 0) != last || (tmore != 0 && tmore != 3) {
                return Err(WireError::Syntax("transform last/more"));
            }
            transforms.push(Transform { kind, id, key_len });
        }
        if !p.is_empty() {
            return Err(WireError::BadLength("proposal trailing bytes"));
        }
        out.push(Proposal {
            num,
            protocol,
            spi,
            transforms,
        });
        match more {
            0 => break,
            2 => continue,
            _ => return Err(WireError::Syntax("proposal last/more")),
        }
    }
    if !r.is_empty() {
        return Err(WireError::BadLength("SA trailing bytes"));
    }
    Ok(out)
}

fn encode_proposals(props: &[Proposal], out: &mut Vec<u8>) {
    for (pi, p) in props.iter().enumerate() {
        let start = out.len();
        out.push(if pi + 1 == props.len() { 0 } else { 2 });
        out.extend_from_slice(&[0, 0, 0]);
        out.push(p.num);
        out.push(p.protocol);
        out.push(p.spi.len() as u8);
        out.push(p.transforms.len() as u8);
        out.extend_from_slice(&p.spi);
        for (ti, t) in p.transforms.iter().enumerate() {
            out.push(if ti + 1 == p.transforms.len() { 0 } else { 3 });
            out.push(0);
            let len: u16 = if t.key_len.is_some() { 12 } else { 8 };
            out.extend_from_slice(&len.to_be_bytes());
            out.push(t.kind);
            out.push(0);
            out.extend_from_slice(&t.id.to_be_bytes());
            if let Some(k) = t.key_len {
                out.extend_from_slice(&(0x8000 | transform::ATTR_KEY_LENGTH).to_be_bytes());
                out.extend_from_slice(&k.to_be_bytes());
            }
        }
        let len = (out.len() - start) as u16;
        out[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
    }
}

fn parse_selectors(body: &[u8]) -> Result<Vec<TrafficSelector>> {
    let mut r = Reader::new(body, "TS");
    let n = r.u8()?;
    r.take(3)?;
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let ts_type = r.u8()?;
        let ip_proto = r.u8()?;
        let len = r.u16()? as usize;
        let alen = match ts_type {
            TS_IPV4_ADDR_RANGE => 4,
            TS_IPV6_ADDR_RANGE => 16,
            _ => return Err(WireError::Syntax("TS type")),
        };
        if len != 8 + 2 * alen {
            return Err(WireError::BadLength("TS"));
        }
        let start_port = r.u16()?;
        let end_port = r.u16()?;
        let start_addr = r.take(alen)?.to_vec();
        let end_addr = r.take(alen)?.to_vec();
        out.push(TrafficSelector {
            ts_type,
            ip_proto,
            start_port,
            end_port,
            start_addr,
            end_addr,
        });
    }
    if !r.is_empty() {
        return Err(WireError::BadLength("TS trailing bytes"));
    }
    Ok(out)
}

/// Parses a payload chain starting with type `first`. Stops after an SK payload (it must be
/// last: RFC 7296 §3.14).
pub fn parse_payloads(mut first: u8, buf: &[u8]) -> Result<Vec<Payload>> {
    let mut r = Reader::new(buf, "payload");
    let mut out = Vec::new();
    while first != payload::NONE {
        let next = r.u8()?;
        let critical = r.u8()? & 0x80 != 0;
        let len = r.u16()? as usize;
        if len < 4 {
            return Err(WireError::BadLength("payload header"));
        }
        let body = r.take(len - 4)?;
        let p = Payload::parse(first, critical, body, next)?;
        out.push(p);
        if first == payload::SK {
            if !r.is_empty() {
                return Err(WireError::SkNotLast);
            }
            return Ok(out);
        }
        first = next;
    }
    if !r.is_empty() {
        return Err(WireError::BadLength("bytes after the last payload"));
    }
    Ok(out)
}

/// Encodes a payload chain; returns the type of the first payload (for the header or SK's
/// next-payload field).
pub fn encode_payloads(payloads: &[Payload], out: &mut Vec<u8>) -> u8 {
    for (i, p) in payloads.iter().enumerate() {
        let next = match p {
            Payload::Encrypted { first, .. } => *first,
            _ => payloads.get(i + 1).map_or(payload::NONE, Payload::kind),
        };
        let start = out.len();
        out.extend_from_slice(&[next, 0, 0, 0]);
        p.encode_body(out);
        let len = (out.len() - start) as u16;
        out[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
    }
    payloads.first().map_or(payload::NONE, Payload::kind)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub payloads: Vec<Payload>,
}

/// Largest datagram accepted; RFC 7296 §2 requires 1280 at least, and we take no fragments.
pub const MAX_MESSAGE: usize = 65535;

impl Message {
    /// Parses a whole datagram; the header's length must equal the datagram's.
    pub fn parse(buf: &[u8]) -> Result<Message> {
        let header = Header::parse(buf)?;
        if header.length as usize != buf.len() || buf.len() < HEADER_LEN {
            return Err(WireError::BadLength("message length"));
        }
        let payloads = parse_payloads(header.next_payload, &buf[HEADER_LEN..])?;
        Ok(Message { header, payloads })
    }

    /// Encodes header and payloads, setting next_payload and length.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        self.header.encode(&mut out);
        let first = encode_payloads(&self.payloads, &mut out);
        out[16] = first;
        let len = out.len() as u32;
        out[24..28].copy_from_slice(&len.to_be_bytes());
        out
    }

    pub fn notify(&self, kind: u16) -> Option<&Notify> {
        find_notify(&self.payloads, kind)
    }
}

pub fn find_notify(payloads: &[Payload], kind: u16) -> Option<&Notify> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.kind == kind => Some(n),
        _ => None,
    })
}

/// The first error notify (type < 16384), if any.
pub fn error_notify(payloads: &[Payload]) -> Option<u16> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.kind < notify::FIRST_STATUS => Some(n.kind),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Message {
        Message {
            header: Header {
                spi_i: 0x0102030405060708,
                spi_r: 0,
                next_payload: 0,
                version: VERSION,
                exchange: exchange::IKE_SA_INIT,
                flags: flags::INITIATOR,
                message_id: 0,
                length: 0,
            },
            payloads: vec![
                Payload::Sa(vec![Proposal {
                    num: 1,
                    protocol: proto::IKE,
                    spi: vec![],
                    transforms: vec![
                        Transform::with_key(transform::ENCR, 12, 256),
                        Transform::new(transform::PRF, 2),
                        Transform::new(transform::INTEG, 2),
                        Transform::new(transform::DH, 14),
                    ],
                }]),
                Payload::Ke {
                    group: 14,
                    data: vec![7; 256],
                },
                Payload::Nonce(vec![9; 32]),
                Payload::Notify(Notify::new(notify::NAT_DETECTION_SOURCE_IP, vec![1; 20])),
                Payload::Vendor(vec![1, 2, 3]),
                Payload::TsI(vec![TrafficSelector::ipv4_any()]),
                Payload::IdI(Identity::Ipv4(Ipv4Addr::new(198, 18, 0, 1))),
                Payload::Delete(Delete {
                    protocol: proto::ESP,
                    spi_size: 4,
                    spis: vec![vec![1, 2, 3, 4]],
                }),
            ],
        }
    }

    #[test]
    fn round_trip() {
        let m = sample();
        let bytes = m.encode();
        let mut back = Message::parse(&bytes).unwrap();
        assert_eq!(back.header.length as usize, bytes.len());
        assert_eq!(back.header.next_payload, payload::SA);
        back.header.length = 0;
        back.header.next_payload = 0;
        assert_eq!(back, m);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample().encode();
        for n in 0..bytes.len() {
            assert!(Message::parse(&bytes[..n]).is_err(), "prefix {n} parsed");
            // A prefix with a header length patched to match still fails inside the payloads.
            if n >= HEADER_LEN {
                let mut b = bytes[..n].to_vec();
                b[24..28].copy_from_slice(&(n as u32).to_be_bytes());
                assert!(Message::parse(&b).is_err(), "patched prefix {n} parsed");
            }
        }
    }

    #[test]
    fn unknown_critical_payload_is_refused() {
        let mut m = sample();
        m.payloads = vec![Payload::Other {
            kind: 200,
            data: vec![1],
        }];
        let mut b = m.encode();
        assert!(Message::parse(&b).is_ok());
        b[HEADER_LEN + 1] = 0x80;
        assert_eq!(Message::parse(&b), Err(WireError::UnsupportedCritical(200)));
    }

    #[test]
    fn sk_must_be_last() {
        let mut m = sample();
        m.payloads = vec![Payload::Encrypted {
            first: payload::IDI,
            body: vec![0; 40],
        }];
        let mut b = m.encode();
        assert!(Message::parse(&b).is_ok());
        b.extend_from_slice(&[0, 0, 0, 4]);
        let l = b.len() as u32;
        b[24..28].copy_from_slice(&l.to_be_bytes());
        assert_eq!(Message::parse(&b), Err(WireError::SkNotLast));
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = Message::parse(&data);
        }

        #[test]
        fn mutated_messages_never_panic(pos in 0usize..400, val in proptest::num::u8::ANY) {
            let mut b = sample().encode();
            let p = pos % b.len();
            b[p] = val;
            let _ = Message::parse(&b);
        }
    }
}
