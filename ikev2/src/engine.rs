//! The sans-I/O IKEv2 engine: inputs are datagrams, commands and the time; outputs are
//! datagrams to send and child SA events (`Event`). Window size 1 both ways (RFC 7296 §2.3).

use crate::crypto::{self, psk_auth, DhGroup, DhSecret, Encr, IkeKeys, IkeSuite, Integ};
use crate::wire::{
    self, exchange, flags, notify, payload, proto, transform, Delete, Header, Identity, Message,
    Notify, Payload, Proposal, TrafficSelector, Transform,
};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// A child SA's algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspSuite {
    pub encr: Encr,
    /// None for AEAD.
    pub integ: Option<Integ>,
    pub esn: bool,
    /// DH group for rekeys with PFS (never used in IKE_AUTH).
    pub pfs: Option<DhGroup>,
}

impl EspSuite {
    /// What calico configures: AES-GCM-16 256, no integrity.
    pub const CALICO: EspSuite = EspSuite {
        encr: Encr::AesGcm16 { bits: 256 },
        integ: None,
        esn: false,
        pfs: None,
    };
}

#[derive(Clone)]
pub struct Profile {
    pub name: String,
    /// The peer's address; an IKE_SA_INIT from this IP is answered with this profile.
    pub peer: SocketAddr,
    pub psk: Vec<u8>,
    pub local_id: Identity,
    /// When set, the peer's ID must equal it.
    pub remote_id: Option<Identity>,
    pub ike: Vec<IkeSuite>,
    pub esp: Vec<EspSuite>,
    pub ts_local: TrafficSelector,
    pub ts_remote: TrafficSelector,
    pub child_rekey_after: Option<Duration>,
    pub ike_rekey_after: Option<Duration>,
}

impl std::fmt::Debug for Profile {
    // The PSK stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("name", &self.name)
            .field("peer", &self.peer)
            .field("psk", &"<redacted>")
            .field("local_id", &self.local_id)
            .field("remote_id", &self.remote_id)
            .field("ike", &self.ike)
            .field("esp", &self.esp)
            .finish_non_exhaustive()
    }
}

impl Profile {
    /// Calico's profile: its transforms, IPv4-address IDs and all-IPv4 selectors.
    pub fn calico(
        name: &str,
        peer: SocketAddr,
        psk: &[u8],
        local: std::net::Ipv4Addr,
        remote: std::net::Ipv4Addr,
    ) -> Self {
        Profile {
            name: name.to_string(),
            peer,
            psk: psk.to_vec(),
            local_id: Identity::Ipv4(local),
            remote_id: Some(Identity::Ipv4(remote)),
            ike: vec![IkeSuite::CALICO],
            esp: vec![EspSuite::CALICO],
            ts_local: TrafficSelector::ipv4_any(),
            ts_remote: TrafficSelector::ipv4_any(),
            child_rekey_after: None,
            ike_rekey_after: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Half-open IKE SAs above which IKE_SA_INIT needs a cookie (RFC 7296 §2.6).
    pub cookie_threshold: usize,
    /// Hard bound on half-open IKE SAs: beyond it IKE_SA_INIT is dropped (memory bound).
    pub max_half_open: usize,
    pub half_open_timeout: Duration,
    /// First retransmission after this; doubled each time.
    pub retransmit_timeout: Duration,
    pub retransmit_tries: u32,
    /// Send an empty INFORMATIONAL after this long without hearing from the peer.
    pub dpd_interval: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cookie_threshold: 64,
            max_half_open: 4096,
            half_open_timeout: Duration::from_secs(30),
            retransmit_timeout: Duration::from_millis(500),
            retransmit_tries: 6,
            dpd_interval: Some(Duration::from_secs(30)),
        }
    }
}

/// One negotiated child SA, as the ESP data path needs it. Keys are per direction.
#[derive(Clone, PartialEq, Eq)]
pub struct ChildSa {
    pub profile: String,
    pub local: SocketAddr,
    pub peer: SocketAddr,
    pub spi_in: u32,
    pub spi_out: u32,
    pub encr: Encr,
    pub encr_key_in: Vec<u8>,
    pub encr_key_out: Vec<u8>,
    /// GCM salt (RFC 4106), 4 bytes; empty for CBC.
    pub salt_in: Vec<u8>,
    pub salt_out: Vec<u8>,
    pub integ: Option<Integ>,
    pub integ_key_in: Vec<u8>,
    pub integ_key_out: Vec<u8>,
    pub esn: bool,
    /// ESP in UDP 4500 (RFC 3948).
    pub udp_encap: bool,
    pub ts_local: Vec<TrafficSelector>,
    pub ts_remote: Vec<TrafficSelector>,
    /// We sent the request that created it, so the peer had installed it when we learned of it
    /// and we may send on it at once. A child we answered for (the peer's rekey) is better sent
    /// on only once the peer has it: when it deletes the old child, or sends on the new one.
    pub we_initiated: bool,
}

impl std::fmt::Debug for ChildSa {
    // Keys stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ChildSa {{ profile: {}, spi_in: {:08x}, spi_out: {:08x}, {:?}, {:?}, esn: {} }}",
            self.profile, self.spi_in, self.spi_out, self.encr, self.integ, self.esn
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// We deleted it (command or rekey done).
    Deleted,
    /// The peer sent a Delete.
    PeerDeleted,
    /// No answer after every retransmission.
    Timeout,
    AuthenticationFailed,
    NoProposalChosen,
    /// The peer answered with this error notify.
    PeerError(u16),
    /// Replaced by a rekeyed IKE SA (children moved to it).
    Rekeyed,
    /// The peer started over (INITIAL_CONTACT in a new IKE SA's IKE_AUTH): it lost this one.
    Replaced,
}

#[derive(Debug, Clone)]
pub enum Event {
    /// `data` already has the non-ESP marker when `from_port` is 4500 (RFC 3948 §2.2).
    Send {
        from_port: u16,
        to: SocketAddr,
        data: Vec<u8>,
    },
    ChildUp(ChildSa),
    ChildDown(ChildSa),
    /// An authenticated message came from a new address of the peer (a NAT remapped it): the
    /// children (our inbound SPIs) now send ESP in UDP to `peer`.
    PeerMoved {
        profile: String,
        spis_in: Vec<u32>,
        peer: SocketAddr,
    },
    IkeUp {
        profile: String,
        spi_i: u64,
        spi_r: u64,
    },
    IkeDown {
        profile: String,
        spi_i: u64,
        spi_r: u64,
        reason: DownReason,
    },
}

/// What the embedding code implements to receive child SAs (e.g. the ESP SA install service).
pub trait ChildSaSink {
    fn child_up(&mut self, sa: &ChildSa);
    fn child_down(&mut self, sa: &ChildSa);
    fn ike_up(&mut self, _profile: &str, _spi_i: u64, _spi_r: u64) {}
    fn ike_down(&mut self, _profile: &str, _reason: &DownReason) {}
    /// The peer of these children (our inbound SPIs) moved to `peer` (a NAT remapped it).
    fn peer_moved(&mut self, _profile: &str, _spis_in: &[u32], _peer: SocketAddr) {}
}

impl Event {
    /// Hand an SA event to `sink`; a datagram to send comes back as (from_port, to, data).
    pub fn deliver(self, sink: &mut impl ChildSaSink) -> Option<(u16, SocketAddr, Vec<u8>)> {
        match self {
            Event::Send {
                from_port,
                to,
                data,
            } => return Some((from_port, to, data)),
            Event::ChildUp(c) => sink.child_up(&c),
            Event::ChildDown(c) => sink.child_down(&c),
            Event::PeerMoved {
                profile,
                spis_in,
                peer,
            } => sink.peer_moved(&profile, &spis_in, peer),
            Event::IkeUp {
                profile,
                spi_i,
                spi_r,
            } => sink.ike_up(&profile, spi_i, spi_r),
            Event::IkeDown {
                profile, reason, ..
            } => sink.ike_down(&profile, &reason),
        }
        None
    }
}

/// One IKE SA as `show ikev2 sa` / `ikev2_sa_dump` would list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeSaInfo {
    pub profile: String,
    pub initiator: bool,
    pub established: bool,
    pub spi_i: u64,
    pub spi_r: u64,
    pub peer: SocketAddr,
    pub suite: IkeSuite,
    pub nat: bool,
    pub children: usize,
}

/// Every refusal and drop, by reason.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counters {
    pub rx: u64,
    pub tx: u64,
    pub malformed: u64,
    pub integrity_failed: u64,
    pub unknown_spi: u64,
    pub unknown_peer: u64,
    pub bad_message_id: u64,
    pub retransmits_sent: u64,
    pub retransmits_answered: u64,
    pub cookies_sent: u64,
    pub half_open_full: u64,
    pub half_open_expired: u64,
    pub no_proposal_chosen: u64,
    pub invalid_ke_sent: u64,
    pub invalid_ke_retries: u64,
    pub auth_failed: u64,
    pub dh_failed: u64,
    pub unexpected: u64,
    pub not_ike: u64,
    pub peer_moved: u64,
    pub peer_move_ignored: u64,
}

impl Counters {
    /// Every counter with what it counts, in a fixed order (for `show ikev2 counters`).
    pub fn list(&self) -> [(&'static str, u64); 21] {
        [
            ("ike messages received", self.rx),
            ("ike messages sent", self.tx),
            ("malformed (dropped)", self.malformed),
            ("integrity check failed (dropped)", self.integrity_failed),
            ("unknown IKE SPI (dropped)", self.unknown_spi),
            (
                "IKE_SA_INIT from a peer without a profile (dropped)",
                self.unknown_peer,
            ),
            ("bad message id (dropped)", self.bad_message_id),
            ("retransmissions sent", self.retransmits_sent),
            ("retransmitted requests answered", self.retransmits_answered),
            ("cookies sent", self.cookies_sent),
            ("half-open limit reached (dropped)", self.half_open_full),
            ("half-open SAs expired", self.half_open_expired),
            ("no proposal chosen", self.no_proposal_chosen),
            ("INVALID_KE_PAYLOAD sent", self.invalid_ke_sent),
            ("INVALID_KE_PAYLOAD retries", self.invalid_ke_retries),
            ("authentication failed", self.auth_failed),
            ("DH computation failed", self.dh_failed),
            ("unexpected message (dropped)", self.unexpected),
            ("ESP or keepalive on 4500 (not IKE)", self.not_ike),
            ("peer address moved, children follow", self.peer_moved),
            (
                "peer address moved, not followed (we are behind a NAT)",
                self.peer_move_ignored,
            ),
        ]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    InitSent,
    /// Responder: IKE_SA_INIT answered, IKE_AUTH awaited (half-open).
    InitDone,
    AuthSent,
    Established,
}

enum Req {
    Init,
    Auth {
        spi_in: u32,
    },
    Child {
        rekey_of: Option<u32>,
        spi_in: u32,
        ni: Vec<u8>,
        dh: Option<DhSecret>,
    },
    RekeyIke {
        new_spi: u64,
        ni: Vec<u8>,
        dh: DhSecret,
    },
    DeleteChild {
        spi_in: u32,
    },
    DeleteIke,
    Dpd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    RekeyChild(u32),
    RekeyIke,
    DeleteChild(u32),
    DeleteIke,
    Dpd,
}

struct Pending {
    id: u32,
    data: Vec<u8>,
    next_at: Instant,
    tries: u32,
    req: Req,
}

struct Child {
    sa: ChildSa,
    created: Instant,
    /// A rekey or delete is under way.
    busy: bool,
    /// The peer rekeyed this child while our own rekey of it was pending (RFC 7296 §2.8.1):
    /// the peer's new child and the lowest nonce of its exchange.
    collision: Option<(u32, Vec<u8>)>,
}

struct IkeSa {
    profile: usize,
    /// We are the original initiator of this IKE SA.
    initiator: bool,
    state: State,
    peer: SocketAddr,
    spi_i: u64,
    spi_r: u64,
    suite: IkeSuite,
    keys: Option<IkeKeys>,
    ni: Vec<u8>,
    nr: Vec<u8>,
    dh: Option<DhSecret>,
    msg1: Vec<u8>,
    msg2: Vec<u8>,
    cookie: Option<Vec<u8>>,
    next_request_id: u32,
    expect_request_id: u32,
    last_response: Option<(u32, Vec<u8>)>,
    pending: Option<Pending>,
    work: VecDeque<Work>,
    children: Vec<Child>,
    created: Instant,
    last_rx: Instant,
    /// Children were moved to a rekeyed IKE SA; do not report them down with this one.
    superseded: bool,
    /// 500, or 4500 once a NAT was detected (RFC 7296 §2.23).
    local_port: u16,
    nat: bool,
    /// We are behind a NAT: once established, the peer's address is not followed.
    behind_nat: bool,
    /// Where the IKE_SA_INIT we answered came from (its `init_index` key): `peer` moves on
    /// (to 4500, or wherever a NAT maps the peer), the key does not.
    init_from: Option<SocketAddr>,
}

impl IkeSa {
    fn keys_out(&self) -> Option<&crypto::SkKeys> {
        self.keys.as_ref().map(|k| {
            if self.initiator {
                &k.initiator
            } else {
                &k.responder
            }
        })
    }
    fn keys_in(&self) -> Option<&crypto::SkKeys> {
        self.keys.as_ref().map(|k| {
            if self.initiator {
                &k.responder
            } else {
                &k.initiator
            }
        })
    }
    fn header(&self, exch: u8, id: u32, response: bool) -> Header {
        let mut f = if self.initiator { flags::INITIATOR } else { 0 };
        if response {
            f |= flags::RESPONSE;
        }
        Header {
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            next_payload: 0,
            version: wire::VERSION,
            exchange: exch,
            flags: f,
            message_id: id,
            length: 0,
        }
    }
    /// An SK-protected message.
    fn seal(&self, exch: u8, id: u32, response: bool, inner: &[Payload]) -> Option<Vec<u8>> {
        let keys = self.keys_out()?;
        let mut body = Vec::with_capacity(256);
        let first = wire::encode_payloads(inner, &mut body);
        let mut out = Vec::with_capacity(body.len() + 80);
        let mut h = self.header(exch, id, response);
        h.next_payload = payload::SK;
        h.encode(&mut out);
        out.extend_from_slice(&[first, 0, 0, 0]);
        keys.seal(&mut out, &body).ok()?;
        Some(out)
    }
}

pub struct Engine {
    cfg: Config,
    local: SocketAddr,
    profiles: Vec<Profile>,
    sas: HashMap<u64, IkeSa>,
    /// Responder: (peer, SPIi) of IKE_SA_INIT requests answered, for their retransmissions.
    init_index: HashMap<(SocketAddr, u64), u64>,
    half_open: usize,
    /// Current and previous cookie secrets, and when the current one was made.
    cookie_secrets: [Vec<u8>; 2],
    cookie_since: Option<Instant>,
    events: VecDeque<Event>,
    pub counters: Counters,
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = crypto::random_bytes(&mut b);
    u64::from_ne_bytes(b)
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    let _ = crypto::random_bytes(&mut b);
    u32::from_ne_bytes(b)
}

fn random_secret() -> Vec<u8> {
    let mut v = vec![0u8; 32];
    if crypto::random_bytes(&mut v).is_err() {
        // No OS randomness: a per-process value still differs between hosts and runs.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        v = crypto::Prf::HmacSha256.compute(
            &t.as_nanos().to_be_bytes(),
            &[&std::process::id().to_be_bytes()],
        );
    }
    v
}

fn nonce() -> Vec<u8> {
    crypto::random_vec(32).unwrap_or_else(|_| vec![0; 32])
}

fn ike_transforms(s: &IkeSuite) -> Vec<Transform> {
    let mut t = vec![
        Transform::with_key(transform::ENCR, s.encr.id(), s.encr.bits()),
        Transform::new(transform::PRF, s.prf.id()),
    ];
    if let Some(i) = s.integ {
        t.push(Transform::new(transform::INTEG, i.id()));
    }
    t.push(Transform::new(transform::DH, s.dh.id()));
    t
}

fn esp_transforms(s: &EspSuite, dh: Option<DhGroup>) -> Vec<Transform> {
    let mut t = vec![Transform::with_key(
        transform::ENCR,
        s.encr.id(),
        s.encr.bits(),
    )];
    if let Some(i) = s.integ {
        t.push(Transform::new(transform::INTEG, i.id()));
    }
    if let Some(g) = dh {
        t.push(Transform::new(transform::DH, g.id()));
    }
    t.push(Transform::new(transform::ESN, s.esn as u16));
    t
}

fn has(p: &Proposal, kind: u8, id: u16, key_len: Option<u16>) -> bool {
    p.transforms
        .iter()
        .any(|t| t.kind == kind && t.id == id && (key_len.is_none() || t.key_len == key_len))
}

fn no_integ(p: &Proposal) -> bool {
    p.transforms
        .iter()
        .all(|t| t.kind != transform::INTEG || t.id == 0)
}

fn ike_matches(p: &Proposal, s: &IkeSuite) -> bool {
    p.protocol == proto::IKE
        && has(p, transform::ENCR, s.encr.id(), Some(s.encr.bits()))
        && has(p, transform::PRF, s.prf.id(), None)
        && match s.integ {
            Some(i) => has(p, transform::INTEG, i.id(), None),
            None => no_integ(p),
        }
        && has(p, transform::DH, s.dh.id(), None)
}

/// Our suite for the peer's proposals: the peer's order, preferring the group its KE used.
fn select_ike(
    ours: &[IkeSuite],
    theirs: &[Proposal],
    ke_group: Option<u16>,
) -> Option<(u8, IkeSuite)> {
    for want_ke in [true, false] {
        for p in theirs {
            for s in ours {
                if (!want_ke || Some(s.dh.id()) == ke_group) && ike_matches(p, s) {
                    return Some((p.num, *s));
                }
            }
        }
    }
    None
}

/// Our ESP suite for the peer's proposals, and the DH group when a KE came along.
fn select_esp(
    ours: &[EspSuite],
    theirs: &[Proposal],
    ke_group: Option<u16>,
) -> Option<(Proposal, EspSuite, Option<DhGroup>)> {
    for p in theirs {
        if p.protocol != proto::ESP || p.spi.len() != 4 {
            continue;
        }
        for s in ours {
            let encr_ok = has(p, transform::ENCR, s.encr.id(), Some(s.encr.bits()));
            let integ_ok = match s.integ {
                Some(i) => has(p, transform::INTEG, i.id(), None),
                None => no_integ(p),
            };
            let esn_ok = has(p, transform::ESN, s.esn as u16, None)
                || (!s.esn && !p.transforms.iter().any(|t| t.kind == transform::ESN));
            let dh = match ke_group {
                Some(g) if has(p, transform::DH, g, None) => match DhGroup::from_id(g) {
                    Some(d) => Some(d),
                    None => continue,
                },
                Some(_) => continue,
                None => None,
            };
            if encr_ok && integ_ok && esn_ok {
                return Some((p.clone(), *s, dh));
            }
        }
    }
    None
}

fn v4(ts: &TrafficSelector) -> Option<(u32, u32)> {
    if ts.ts_type != wire::TS_IPV4_ADDR_RANGE {
        return None;
    }
    let a = u32::from_be_bytes(ts.start_addr.clone().try_into().ok()?);
    let b = u32::from_be_bytes(ts.end_addr.clone().try_into().ok()?);
    Some((a, b))
}

/// The intersection of our selector with the first of the peer's that overlaps it.
fn narrow(ours: &TrafficSelector, theirs: &[TrafficSelector]) -> Option<TrafficSelector> {
    let (oa, ob) = v4(ours)?;
    for t in theirs {
        let Some((ta, tb)) = v4(t) else { continue };
        let (a, b) = (oa.max(ta), ob.min(tb));
        let (pa, pb) = (
            ours.start_port.max(t.start_port),
            ours.end_port.min(t.end_port),
        );
        let proto = match (ours.ip_proto, t.ip_proto) {
            (0, p) | (p, 0) => p,
            (x, y) if x == y => x,
            _ => continue,
        };
        if a <= b && pa <= pb {
            let mut r = TrafficSelector::ipv4_range(a.into(), b.into());
            r.ip_proto = proto;
            r.start_port = pa;
            r.end_port = pb;
            return Some(r);
        }
    }
    None
}

struct Inner<'a> {
    payloads: &'a [Payload],
}

impl<'a> Inner<'a> {
    fn sa(&self) -> Option<&'a [Proposal]> {
        self.payloads.iter().find_map(|p| {
            if let Payload::Sa(v) = p {
                Some(v.as_slice())
            } else {
                None
            }
        })
    }
    fn ke(&self) -> Option<(u16, &'a [u8])> {
        self.payloads.iter().find_map(|p| {
            if let Payload::Ke { group, data } = p {
                Some((*group, data.as_slice()))
            } else {
                None
            }
        })
    }
    fn nonce(&self) -> Option<&'a [u8]> {
        self.payloads.iter().find_map(|p| {
            if let Payload::Nonce(n) = p {
                Some(n.as_slice())
            } else {
                None
            }
        })
    }
    fn idi(&self) -> Option<&'a Identity> {
        self.payloads.iter().find_map(|p| {
            if let Payload::IdI(i) = p {
                Some(i)
            } else {
                None
            }
        })
    }
    fn idr(&self) -> Option<&'a Identity> {
        self.payloads.iter().find_map(|p| {
            if let Payload::IdR(i) = p {
                Some(i)
            } else {
                None
            }
        })
    }
    fn auth(&self) -> Option<&'a [u8]> {
        self.payloads.iter().find_map(|p| match p {
            Payload::Auth {
                method: wire::AUTH_SHARED_KEY,
                data,
            } => Some(data.as_slice()),
            _ => None,
        })
    }
    fn tsi(&self) -> Option<&'a [TrafficSelector]> {
        self.payloads.iter().find_map(|p| {
            if let Payload::TsI(v) = p {
                Some(v.as_slice())
            } else {
                None
            }
        })
    }
    fn tsr(&self) -> Option<&'a [TrafficSelector]> {
        self.payloads.iter().find_map(|p| {
            if let Payload::TsR(v) = p {
                Some(v.as_slice())
            } else {
                None
            }
        })
    }
    fn notify(&self, kind: u16) -> Option<&'a Notify> {
        wire::find_notify(self.payloads, kind)
    }
    fn error(&self) -> Option<u16> {
        wire::error_notify(self.payloads)
    }
    fn deletes(&self) -> impl Iterator<Item = &'a Delete> {
        self.payloads.iter().filter_map(|p| {
            if let Payload::Delete(d) = p {
                Some(d)
            } else {
                None
            }
        })
    }
}

/// Child keys: KEYMAT = prf+(SK_d, [g^ir] | Ni | Nr), i->r encr, i->r integ, r->i encr, r->i integ.
#[allow(clippy::too_many_arguments)]
fn make_child(
    keys: &IkeKeys,
    profile: &Profile,
    local: SocketAddr,
    peer: SocketAddr,
    esp: &EspSuite,
    shared: Option<&[u8]>,
    ni: &[u8],
    nr: &[u8],
    we_initiated: bool,
    spi_in: u32,
    spi_out: u32,
    ts_local: Vec<TrafficSelector>,
    ts_remote: Vec<TrafficSelector>,
    nat: bool,
) -> ChildSa {
    let elen = esp.encr.keymat_len();
    let ilen = esp.integ.map_or(0, Integ::key_len);
    let seed = [shared.unwrap_or(&[]), ni, nr].concat();
    let km = keys.prf.plus(&keys.sk_d, &seed, 2 * (elen + ilen));
    let (ei, rest) = km.split_at(elen);
    let (ai, rest) = rest.split_at(ilen);
    let (er, ar) = rest.split_at(elen);
    let (e_in, a_in, e_out, a_out) = if we_initiated {
        (er, ar, ei, ai)
    } else {
        (ei, ai, er, ar)
    };
    let klen = esp.encr.bits() as usize / 8;
    let split = |e: &[u8]| -> (Vec<u8>, Vec<u8>) { (e[..klen].to_vec(), e[klen..].to_vec()) };
    let (encr_key_in, salt_in) = split(e_in);
    let (encr_key_out, salt_out) = split(e_out);
    ChildSa {
        profile: profile.name.clone(),
        local,
        peer,
        spi_in,
        spi_out,
        encr: esp.encr,
        encr_key_in,
        encr_key_out,
        salt_in,
        salt_out,
        integ: esp.integ,
        integ_key_in: a_in.to_vec(),
        integ_key_out: a_out.to_vec(),
        esn: esp.esn,
        udp_encap: nat,
        ts_local,
        ts_remote,
        we_initiated,
    }
}

pub const IKE_PORT: u16 = 500;
pub const NAT_T_PORT: u16 = 4500;

/// NAT_DETECTION_*_IP data: SHA-1(SPIi | SPIr | IP | port) (RFC 7296 §2.23).
fn nat_hash(spi_i: u64, spi_r: u64, a: SocketAddr) -> Vec<u8> {
    use sha1::Digest;
    let mut h = sha1::Sha1::new();
    h.update(spi_i.to_be_bytes());
    h.update(spi_r.to_be_bytes());
    match a.ip() {
        IpAddr::V4(x) => h.update(x.octets()),
        IpAddr::V6(x) => h.update(x.octets()),
    }
    h.update(a.port().to_be_bytes());
    h.finalize().to_vec()
}

fn nat_notifies(spi_i: u64, spi_r: u64, src: SocketAddr, dst: SocketAddr) -> [Payload; 2] {
    [
        Payload::Notify(Notify::new(
            notify::NAT_DETECTION_SOURCE_IP,
            nat_hash(spi_i, spi_r, src),
        )),
        Payload::Notify(Notify::new(
            notify::NAT_DETECTION_DESTINATION_IP,
            nat_hash(spi_i, spi_r, dst),
        )),
    ]
}

/// True when the peer's NAT_DETECTION payloads (if any) disagree with the addresses seen.
/// What a message's NAT_DETECTION payloads tell (RFC 7296 §2.23): which side is behind a NAT.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct NatSeen {
    peer_behind: bool,
    we_behind: bool,
}

impl NatSeen {
    fn any(self) -> bool {
        self.peer_behind || self.we_behind
    }
}

fn nat_detected(
    payloads: &[Payload],
    spi_i: u64,
    spi_r: u64,
    peer: SocketAddr,
    us: SocketAddr,
) -> NatSeen {
    let of = |kind| -> Vec<&Vec<u8>> {
        payloads
            .iter()
            .filter_map(|p| match p {
                Payload::Notify(n) if n.kind == kind => Some(&n.data),
                _ => None,
            })
            .collect()
    };
    let (src, dst) = (
        of(notify::NAT_DETECTION_SOURCE_IP),
        of(notify::NAT_DETECTION_DESTINATION_IP),
    );
    if src.is_empty() || dst.is_empty() {
        return NatSeen::default();
    }
    let want_src = nat_hash(spi_i, spi_r, peer);
    let want_dst = nat_hash(spi_i, spi_r, us);
    NatSeen {
        peer_behind: !src.iter().any(|h| **h == want_src),
        we_behind: !dst.iter().any(|h| **h == want_dst),
    }
}

/// The peer's ID is the one the profile expects, when it expects one.
fn id_ok(want: &Option<Identity>, got: &Identity) -> bool {
    match want {
        Some(w) => w == got,
        None => true,
    }
}

fn spi_u32(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.try_into().ok()?))
}

impl Engine {
    pub fn new(cfg: Config, local: SocketAddr) -> Self {
        Engine {
            cfg,
            local,
            profiles: Vec::new(),
            sas: HashMap::new(),
            init_index: HashMap::new(),
            half_open: 0,
            cookie_secrets: [random_secret(), random_secret()],
            cookie_since: None,
            events: VecDeque::new(),
            counters: Counters::default(),
        }
    }

    /// Adds or replaces a profile by name.
    pub fn add_profile(&mut self, p: Profile) {
        match self.profiles.iter_mut().find(|q| q.name == p.name) {
            Some(q) => *q = p,
            None => self.profiles.push(p),
        }
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub fn half_open(&self) -> usize {
        self.half_open
    }

    pub fn ike_sa_count(&self) -> usize {
        self.sas.len()
    }

    /// Established IKE SAs' children for a profile.
    pub fn children(&self, profile: &str) -> Vec<ChildSa> {
        self.sas
            .values()
            .filter(|s| {
                s.state == State::Established
                    && !s.superseded
                    && self.profiles[s.profile].name == profile
            })
            .flat_map(|s| s.children.iter().map(|c| c.sa.clone()))
            .collect()
    }

    /// Every IKE SA but those replaced by a rekey and waiting for their Delete.
    pub fn ike_sas(&self) -> Vec<IkeSaInfo> {
        self.sas
            .values()
            .filter(|s| !s.superseded)
            .map(|s| IkeSaInfo {
                profile: self.profiles[s.profile].name.clone(),
                initiator: s.initiator,
                established: s.state == State::Established,
                spi_i: s.spi_i,
                spi_r: s.spi_r,
                peer: s.peer,
                suite: s.suite,
                nat: s.nat,
                children: s.children.len(),
            })
            .collect()
    }

    /// Removes a profile (`ikev2_profile_add_del` with is_add=0): its established IKE SAs are
    /// deleted with the peer (best effort, one Delete each), and every SA of it is forgotten now,
    /// children reported down.
    pub fn remove_profile(&mut self, name: &str) -> bool {
        let Some(pi) = self.profile_index(name) else {
            return false;
        };
        let spis: Vec<u64> = self
            .sas
            .iter()
            .filter(|(_, s)| s.profile == pi)
            .map(|(k, _)| *k)
            .collect();
        for spi in spis {
            let Some(mut sa) = self.sas.remove(&spi) else {
                continue;
            };
            if sa.state == State::Established {
                let d = [Payload::Delete(Delete {
                    protocol: proto::IKE,
                    spi_size: 0,
                    spis: vec![],
                })];
                if let Some(data) = sa.seal(exchange::INFORMATIONAL, sa.next_request_id, false, &d)
                {
                    self.send(sa.local_port, sa.peer, data);
                }
            }
            self.sa_down(&mut sa, DownReason::Deleted);
        }
        self.profiles.remove(pi);
        // Profile indices above the removed one move down by one.
        for sa in self.sas.values_mut() {
            if sa.profile > pi {
                sa.profile -= 1;
            }
        }
        true
    }

    pub fn is_established(&self, profile: &str) -> bool {
        self.sas.values().any(|s| {
            s.state == State::Established
                && !s.superseded
                && self.profiles[s.profile].name == profile
        })
    }

    fn send(&mut self, from_port: u16, to: SocketAddr, mut data: Vec<u8>) {
        self.counters.tx += 1;
        if from_port == NAT_T_PORT {
            data.splice(0..0, [0u8; 4]);
        }
        self.events.push_back(Event::Send {
            from_port,
            to,
            data,
        });
    }

    fn profile_index(&self, name: &str) -> Option<usize> {
        self.profiles.iter().position(|p| p.name == name)
    }

    /// Starts IKE_SA_INIT for a profile; a no-op (false) while one is under way or up, so
    /// calico's once-a-second `ikev2_initiate_sa_init` is harmless.
    pub fn initiate(&mut self, now: Instant, profile: &str) -> Result<bool, &'static str> {
        let pi = self.profile_index(profile).ok_or("no such profile")?;
        if self.sas.values().any(|s| s.profile == pi && !s.superseded) {
            return Ok(false);
        }
        let p = &self.profiles[pi];
        let suite = *p.ike.first().ok_or("profile has no IKE transforms")?;
        let dh = DhSecret::generate(suite.dh).map_err(|_| "no randomness")?;
        let mut sa = IkeSa {
            profile: pi,
            initiator: true,
            state: State::InitSent,
            peer: p.peer,
            spi_i: random_u64() | 1,
            spi_r: 0,
            suite,
            keys: None,
            ni: nonce(),
            nr: Vec::new(),
            dh: Some(dh),
            msg1: Vec::new(),
            msg2: Vec::new(),
            cookie: None,
            next_request_id: 0,
            expect_request_id: 0,
            last_response: None,
            pending: None,
            work: VecDeque::new(),
            children: Vec::new(),
            created: now,
            last_rx: now,
            superseded: false,
            local_port: IKE_PORT,
            nat: false,
            behind_nat: false,
            init_from: None,
        };
        self.send_init(now, &mut sa);
        self.sas.insert(sa.spi_i, sa);
        Ok(true)
    }

    fn send_init(&mut self, now: Instant, sa: &mut IkeSa) {
        let p = &self.profiles[sa.profile];
        let Some(dh) = sa.dh.as_ref() else { return };
        let mut payloads = Vec::new();
        if let Some(c) = &sa.cookie {
            payloads.push(Payload::Notify(Notify::new(notify::COOKIE, c.clone())));
        }
        // The proposal with the KE's group goes first.
        let mut suites: Vec<&IkeSuite> = p.ike.iter().filter(|s| s.dh == dh.group).collect();
        suites.extend(p.ike.iter().filter(|s| s.dh != dh.group));
        let props = suites
            .iter()
            .enumerate()
            .map(|(i, s)| Proposal {
                num: i as u8 + 1,
                protocol: proto::IKE,
                spi: vec![],
                transforms: ike_transforms(s),
            })
            .collect();
        payloads.push(Payload::Sa(props));
        payloads.push(Payload::Ke {
            group: dh.group.id(),
            data: dh.public.clone(),
        });
        payloads.push(Payload::Nonce(sa.ni.clone()));
        payloads.extend(nat_notifies(sa.spi_i, 0, self.local, sa.peer));
        let m = Message {
            header: sa.header(exchange::IKE_SA_INIT, 0, false),
            payloads,
        };
        sa.msg1 = m.encode();
        sa.next_request_id = 1;
        self.start_request(now, sa, 0, sa.msg1.clone(), Req::Init);
    }

    fn start_request(&mut self, now: Instant, sa: &mut IkeSa, id: u32, data: Vec<u8>, req: Req) {
        self.send(sa.local_port, sa.peer, data.clone());
        sa.pending = Some(Pending {
            id,
            data,
            next_at: now + self.cfg.retransmit_timeout,
            tries: 0,
            req,
        });
    }

    fn request(&mut self, now: Instant, sa: &mut IkeSa, exch: u8, inner: &[Payload], req: Req) {
        let id = sa.next_request_id;
        let Some(data) = sa.seal(exch, id, false, inner) else {
            return;
        };
        sa.next_request_id = sa.next_request_id.wrapping_add(1);
        self.start_request(now, sa, id, data, req);
    }

    fn respond(&mut self, sa: &mut IkeSa, exch: u8, id: u32, inner: &[Payload]) {
        let Some(data) = sa.seal(exch, id, true, inner) else {
            return;
        };
        sa.last_response = Some((id, data.clone()));
        self.send(sa.local_port, sa.peer, data);
    }

    /// Queues a rekey of the child whose inbound SPI is `spi_in`.
    pub fn rekey_child(&mut self, spi_in: u32) -> bool {
        self.queue_work(
            |s| s.children.iter().any(|c| c.sa.spi_in == spi_in),
            Work::RekeyChild(spi_in),
        )
    }

    pub fn delete_child(&mut self, spi_in: u32) -> bool {
        self.queue_work(
            |s| s.children.iter().any(|c| c.sa.spi_in == spi_in),
            Work::DeleteChild(spi_in),
        )
    }

    pub fn rekey_ike(&mut self, profile: &str) -> bool {
        let Some(pi) = self.profile_index(profile) else {
            return false;
        };
        self.queue_work(|s| s.profile == pi, Work::RekeyIke)
    }

    pub fn delete_ike(&mut self, profile: &str) -> bool {
        let Some(pi) = self.profile_index(profile) else {
            return false;
        };
        self.queue_work(|s| s.profile == pi, Work::DeleteIke)
    }

    fn queue_work(&mut self, pick: impl Fn(&IkeSa) -> bool, w: Work) -> bool {
        match self
            .sas
            .values_mut()
            .find(|s| s.state == State::Established && !s.superseded && pick(s))
        {
            Some(sa) => {
                if !sa.work.contains(&w) {
                    sa.work.push_back(w);
                }
                true
            }
            None => false,
        }
    }

    /// The next instant `handle_timeout` has something to do.
    pub fn next_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut at = |i: Instant| t = Some(t.map_or(i, |x| x.min(i)));
        for sa in self.sas.values() {
            if let Some(p) = &sa.pending {
                at(p.next_at);
            }
            if sa.superseded {
                // Replaced by a rekey: only its Delete (ours pending, or the peer's) is awaited.
                if sa.pending.is_none() {
                    at(sa.last_rx + self.cfg.half_open_timeout);
                }
                continue;
            }
            match sa.state {
                State::InitDone => at(sa.created + self.cfg.half_open_timeout),
                State::Established if sa.pending.is_none() => {
                    if !sa.work.is_empty() {
                        at(sa.last_rx);
                    }
                    if let Some(d) = self.cfg.dpd_interval {
                        at(sa.last_rx + d);
                    }
                    let p = &self.profiles[sa.profile];
                    if let Some(r) = p.ike_rekey_after {
                        at(sa.created + r);
                    }
                    if let Some(r) = p.child_rekey_after {
                        for c in sa.children.iter().filter(|c| !c.busy) {
                            at(c.created + r);
                        }
                    }
                }
                _ => {}
            }
        }
        t
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let spis: Vec<u64> = self.sas.keys().copied().collect();
        for spi in spis {
            let Some(mut sa) = self.sas.remove(&spi) else {
                continue;
            };
            if sa.state == State::InitDone && now >= sa.created + self.cfg.half_open_timeout {
                self.counters.half_open_expired += 1;
                self.forget_half_open(&mut sa);
                continue;
            }
            if sa.superseded
                && sa.pending.is_none()
                && now >= sa.last_rx + self.cfg.half_open_timeout
            {
                // The peer rekeyed the IKE SA and never deleted the old one.
                self.sa_down(&mut sa, DownReason::Rekeyed);
                continue;
            }
            if let Some(p) = sa.pending.as_mut() {
                if now >= p.next_at {
                    if p.tries + 1 >= self.cfg.retransmit_tries {
                        log::info!(
                            "ikev2: {} no answer, IKE SA down",
                            self.profiles[sa.profile].name
                        );
                        self.sa_down(&mut sa, DownReason::Timeout);
                        continue;
                    }
                    p.tries += 1;
                    p.next_at = now + self.cfg.retransmit_timeout * (1 << p.tries.min(6));
                    let data = p.data.clone();
                    self.counters.retransmits_sent += 1;
                    self.send(sa.local_port, sa.peer, data);
                }
            }
            if sa.state == State::Established && !sa.superseded {
                self.schedule(now, &mut sa);
                if sa.pending.is_none() {
                    self.start_work(now, &mut sa);
                }
            }
            self.sas.insert(spi, sa);
        }
    }

    fn schedule(&mut self, now: Instant, sa: &mut IkeSa) {
        let p = &self.profiles[sa.profile];
        if let Some(r) = p.child_rekey_after {
            for c in sa
                .children
                .iter_mut()
                .filter(|c| !c.busy && now >= c.created + r)
            {
                c.busy = true;
                sa.work.push_back(Work::RekeyChild(c.sa.spi_in));
            }
        }
        if let Some(r) = p.ike_rekey_after {
            if now >= sa.created + r && !sa.work.contains(&Work::RekeyIke) {
                sa.work.push_back(Work::RekeyIke);
            }
        }
        if let Some(d) = self.cfg.dpd_interval {
            if now >= sa.last_rx + d && sa.work.is_empty() && sa.pending.is_none() {
                sa.work.push_back(Work::Dpd);
            }
        }
    }

    fn start_work(&mut self, now: Instant, sa: &mut IkeSa) {
        while let Some(w) = sa.work.pop_front() {
            let p = self.profiles[sa.profile].clone();
            match w {
                Work::Dpd => {
                    self.request(now, sa, exchange::INFORMATIONAL, &[], Req::Dpd);
                }
                Work::DeleteIke => {
                    let d = Delete {
                        protocol: proto::IKE,
                        spi_size: 0,
                        spis: vec![],
                    };
                    self.request(
                        now,
                        sa,
                        exchange::INFORMATIONAL,
                        &[Payload::Delete(d)],
                        Req::DeleteIke,
                    );
                }
                Work::DeleteChild(spi_in) => {
                    let Some(c) = sa.children.iter_mut().find(|c| c.sa.spi_in == spi_in) else {
                        continue;
                    };
                    c.busy = true;
                    let d = Delete {
                        protocol: proto::ESP,
                        spi_size: 4,
                        spis: vec![spi_in.to_be_bytes().to_vec()],
                    };
                    self.request(
                        now,
                        sa,
                        exchange::INFORMATIONAL,
                        &[Payload::Delete(d)],
                        Req::DeleteChild { spi_in },
                    );
                }
                Work::RekeyChild(old) => {
                    let Some(c) = sa.children.iter_mut().find(|c| c.sa.spi_in == old) else {
                        continue;
                    };
                    c.busy = true;
                    let (ts_l, ts_r) = (c.sa.ts_local.clone(), c.sa.ts_remote.clone());
                    let spi_in = self.new_child_spi();
                    let ni = nonce();
                    let pfs = p.esp.first().and_then(|s| s.pfs);
                    let dh = pfs.and_then(|g| DhSecret::generate(g).ok());
                    let mut inner = vec![Payload::Notify(Notify {
                        protocol: proto::ESP,
                        spi: old.to_be_bytes().to_vec(),
                        kind: notify::REKEY_SA,
                        data: vec![],
                    })];
                    inner.push(Payload::Sa(self.esp_proposals(&p, spi_in, pfs)));
                    inner.push(Payload::Nonce(ni.clone()));
                    if let Some(d) = &dh {
                        inner.push(Payload::Ke {
                            group: d.group.id(),
                            data: d.public.clone(),
                        });
                    }
                    inner.push(Payload::TsI(ts_l));
                    inner.push(Payload::TsR(ts_r));
                    self.request(
                        now,
                        sa,
                        exchange::CREATE_CHILD_SA,
                        &inner,
                        Req::Child {
                            rekey_of: Some(old),
                            spi_in,
                            ni,
                            dh,
                        },
                    );
                }
                Work::RekeyIke => {
                    let suite = sa.suite;
                    let Ok(dh) = DhSecret::generate(suite.dh) else {
                        continue;
                    };
                    let new_spi = random_u64() | 1;
                    let ni = nonce();
                    let inner = [
                        Payload::Sa(vec![Proposal {
                            num: 1,
                            protocol: proto::IKE,
                            spi: new_spi.to_be_bytes().to_vec(),
                            transforms: ike_transforms(&suite),
                        }]),
                        Payload::Nonce(ni.clone()),
                        Payload::Ke {
                            group: dh.group.id(),
                            data: dh.public.clone(),
                        },
                    ];
                    self.request(
                        now,
                        sa,
                        exchange::CREATE_CHILD_SA,
                        &inner,
                        Req::RekeyIke { new_spi, ni, dh },
                    );
                }
            }
            if sa.pending.is_some() {
                return;
            }
        }
    }

    fn new_child_spi(&self) -> u32 {
        loop {
            let s = random_u32();
            // SPIs 1-255 are reserved (RFC 4303 §2.1).
            if s > 255
                && !self
                    .sas
                    .values()
                    .any(|sa| sa.children.iter().any(|c| c.sa.spi_in == s))
            {
                return s;
            }
        }
    }

    fn esp_proposals(&self, p: &Profile, spi_in: u32, pfs: Option<DhGroup>) -> Vec<Proposal> {
        p.esp
            .iter()
            .enumerate()
            .map(|(i, s)| Proposal {
                num: i as u8 + 1,
                protocol: proto::ESP,
                spi: spi_in.to_be_bytes().to_vec(),
                transforms: esp_transforms(s, pfs),
            })
            .collect()
    }

    /// The peer's address moved (a NAT remapped it): its children's ESP in UDP must follow
    /// (RFC 7296 §2.23), so the embedding code hears of it.
    fn children_follow_peer(&mut self, sa: &mut IkeSa) {
        if sa.children.is_empty() {
            return;
        }
        for c in &mut sa.children {
            c.sa.peer = sa.peer;
        }
        self.counters.peer_moved += 1;
        self.events.push_back(Event::PeerMoved {
            profile: self.profiles[sa.profile].name.clone(),
            spis_in: sa.children.iter().map(|c| c.sa.spi_in).collect(),
            peer: sa.peer,
        });
    }

    fn forget_half_open(&mut self, sa: &mut IkeSa) {
        self.half_open = self.half_open.saturating_sub(1);
        self.forget_init(sa);
    }

    fn forget_init(&mut self, sa: &mut IkeSa) {
        if let Some(from) = sa.init_from.take() {
            self.init_index.remove(&(from, sa.spi_i));
        }
    }

    /// Ends an IKE SA (already removed from the map) and its children.
    fn sa_down(&mut self, sa: &mut IkeSa, reason: DownReason) {
        if sa.state == State::InitDone {
            self.forget_half_open(sa);
        }
        self.forget_init(sa);
        if !sa.superseded {
            for c in sa.children.drain(..) {
                self.events.push_back(Event::ChildDown(c.sa));
            }
        }
        self.events.push_back(Event::IkeDown {
            profile: self.profiles[sa.profile].name.clone(),
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            reason,
        });
    }

    /// Cookies last two rotations: a cookie handed out just before one still works.
    const COOKIE_ROTATION: Duration = Duration::from_secs(300);

    fn rotate_cookie_secret(&mut self, now: Instant) {
        let due = match self.cookie_since {
            Some(t) => now >= t + Self::COOKIE_ROTATION,
            None => true,
        };
        if due {
            let old = std::mem::replace(&mut self.cookie_secrets[0], random_secret());
            self.cookie_secrets[1] = old;
            self.cookie_since = Some(now);
        }
    }

    /// COOKIE data (RFC 7296 §2.6): HMAC(secret, Ni | IPi | SPIi).
    fn cookie_for(&self, secret: usize, from: SocketAddr, spi_i: u64, ni: &[u8]) -> Vec<u8> {
        let ip = match from.ip() {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        crypto::Prf::HmacSha256.compute(
            &self.cookie_secrets[secret],
            &[ni, &ip, &spi_i.to_be_bytes()],
        )
    }

    /// A datagram from `from` to our UDP port `local_port` (500, or 4500 with the non-ESP marker).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local_port: u16,
        from: SocketAddr,
        data: &[u8],
    ) {
        self.counters.rx += 1;
        let data = if local_port == NAT_T_PORT {
            match data.split_first_chunk::<4>() {
                Some(([0, 0, 0, 0], rest)) => rest,
                _ => {
                    // ESP (or a keepalive) on 4500 is the data path's, not ours.
                    self.counters.not_ike += 1;
                    return;
                }
            }
        } else {
            data
        };
        let msg = match Message::parse(data) {
            Ok(m) => m,
            Err(e) => {
                self.counters.malformed += 1;
                log::debug!("ikev2: malformed message from {from}: {e}");
                return;
            }
        };
        let h = msg.header;
        if h.exchange == exchange::IKE_SA_INIT {
            if h.is_response() {
                self.init_response(now, from, msg, data);
            } else {
                self.init_request(now, from, msg, data);
            }
            return;
        }
        let our_spi = if h.from_initiator() { h.spi_r } else { h.spi_i };
        let Some(mut sa) = self.sas.remove(&our_spi) else {
            self.counters.unknown_spi += 1;
            return;
        };
        if (sa.spi_i, sa.spi_r) != (h.spi_i, h.spi_r) || sa.initiator == h.from_initiator() {
            self.counters.unknown_spi += 1;
            self.sas.insert(our_spi, sa);
            return;
        }
        let keep = self.protected(now, local_port, from, &mut sa, &msg, data);
        if keep {
            self.sas.insert(our_spi, sa);
        }
    }

    /// An SK-protected message for `sa`; false when the SA is gone.
    #[allow(clippy::too_many_arguments)]
    fn protected(
        &mut self,
        now: Instant,
        local_port: u16,
        from: SocketAddr,
        sa: &mut IkeSa,
        msg: &Message,
        raw: &[u8],
    ) -> bool {
        let h = msg.header;
        if !h.is_response() {
            if Some(h.message_id) == sa.last_response.as_ref().map(|r| r.0)
                && h.message_id.wrapping_add(1) == sa.expect_request_id
            {
                self.counters.retransmits_answered += 1;
                let data = sa
                    .last_response
                    .as_ref()
                    .map(|r| r.1.clone())
                    .unwrap_or_default();
                self.send(sa.local_port, sa.peer, data);
                return true;
            }
            if h.message_id != sa.expect_request_id {
                self.counters.bad_message_id += 1;
                return true;
            }
        } else if sa.pending.as_ref().map(|p| p.id) != Some(h.message_id) {
            self.counters.bad_message_id += 1;
            return true;
        }
        let Some(Payload::Encrypted { first, body }) = msg.payloads.last() else {
            self.counters.malformed += 1;
            return true;
        };
        let Some(keys) = sa.keys_in() else {
            return true;
        };
        let plain = match keys.open(raw, body.len()) {
            Ok(p) => p,
            Err(_) => {
                self.counters.integrity_failed += 1;
                return true;
            }
        };
        let payloads = match wire::parse_payloads(*first, &plain) {
            Ok(p) => p,
            Err(_) => {
                self.counters.malformed += 1;
                return true;
            }
        };
        sa.last_rx = now;
        let moved = from != sa.peer || local_port != sa.local_port;
        // Authenticated: follow the peer's address (its move to 4500, or a NAT in front of it
        // remapping it). Behind a NAT ourselves, only until established: there the far side
        // does not move, and one packet from elsewhere must not move us (RFC 7296 §2.23).
        if moved && (sa.state != State::Established || !sa.behind_nat) {
            sa.peer = from;
            sa.local_port = local_port;
            self.children_follow_peer(sa);
        } else if moved {
            self.counters.peer_move_ignored += 1;
        }
        let inner = Inner {
            payloads: &payloads,
        };
        let keep = if h.is_response() {
            let Some(p) = sa.pending.take() else {
                return true;
            };
            self.response(now, sa, p.req, &inner)
        } else {
            sa.expect_request_id = sa.expect_request_id.wrapping_add(1);
            match h.exchange {
                exchange::IKE_AUTH if sa.state == State::InitDone => {
                    self.auth_request(now, sa, h.message_id, &inner)
                }
                exchange::CREATE_CHILD_SA if sa.state == State::Established => {
                    self.child_request(now, sa, h.message_id, &inner)
                }
                exchange::INFORMATIONAL
                    if sa.state == State::Established || sa.state == State::InitDone =>
                {
                    self.info_request(sa, h.message_id, &inner)
                }
                _ => {
                    self.counters.unexpected += 1;
                    sa.expect_request_id = sa.expect_request_id.wrapping_sub(1);
                    true
                }
            }
        };
        if keep && sa.state == State::Established && sa.pending.is_none() && !sa.superseded {
            self.start_work(now, sa);
        }
        keep
    }

    fn init_request(&mut self, now: Instant, from: SocketAddr, msg: Message, raw: &[u8]) {
        let h = msg.header;
        if h.spi_r != 0 || h.message_id != 0 || !h.from_initiator() {
            self.counters.malformed += 1;
            return;
        }
        if let Some(spi) = self.init_index.get(&(from, h.spi_i)) {
            if let Some(sa) = self.sas.get(spi) {
                if sa.state == State::InitDone {
                    self.counters.retransmits_answered += 1;
                    let d = sa.msg2.clone();
                    self.send(IKE_PORT, from, d);
                }
            }
            return;
        }
        let Some(pi) = self.profiles.iter().position(|p| p.peer.ip() == from.ip()) else {
            self.counters.unknown_peer += 1;
            return;
        };
        let inner = Inner {
            payloads: &msg.payloads,
        };
        let (Some(props), Some((group, ke)), Some(ni)) = (inner.sa(), inner.ke(), inner.nonce())
        else {
            self.counters.malformed += 1;
            return;
        };
        let reply = |payloads: Vec<Payload>| {
            let mut hh = h;
            hh.flags = flags::RESPONSE;
            Message {
                header: hh,
                payloads,
            }
            .encode()
        };
        if self.half_open >= self.cfg.cookie_threshold {
            self.rotate_cookie_secret(now);
            let want = self.cookie_for(0, from, h.spi_i, ni);
            let got = inner.notify(notify::COOKIE).map(|n| n.data.as_slice());
            let previous = got == Some(self.cookie_for(1, from, h.spi_i, ni).as_slice());
            if got != Some(want.as_slice()) && !previous {
                self.counters.cookies_sent += 1;
                let d = reply(vec![Payload::Notify(Notify::new(notify::COOKIE, want))]);
                self.send(IKE_PORT, from, d);
                return;
            }
        }
        if self.half_open >= self.cfg.max_half_open {
            self.counters.half_open_full += 1;
            return;
        }
        let prof = &self.profiles[pi];
        let Some((num, suite)) = select_ike(&prof.ike, props, Some(group)) else {
            self.counters.no_proposal_chosen += 1;
            let d = reply(vec![Payload::Notify(Notify::new(
                notify::NO_PROPOSAL_CHOSEN,
                vec![],
            ))]);
            self.send(IKE_PORT, from, d);
            return;
        };
        if group != suite.dh.id() {
            self.counters.invalid_ke_sent += 1;
            let d = reply(vec![Payload::Notify(Notify::new(
                notify::INVALID_KE_PAYLOAD,
                suite.dh.id().to_be_bytes().to_vec(),
            ))]);
            self.send(IKE_PORT, from, d);
            return;
        }
        let Ok(dh) = DhSecret::generate(suite.dh) else {
            return;
        };
        let Ok(shared) = dh.shared(ke) else {
            self.counters.dh_failed += 1;
            return;
        };
        let nr = nonce();
        let spi_r = random_u64() | 1;
        let seed = IkeKeys::skeyseed(suite.prf, ni, &nr, &shared);
        let keys = IkeKeys::derive(&suite, &seed, ni, &nr, h.spi_i, spi_r);
        let resp = Message {
            header: Header {
                spi_r,
                flags: flags::RESPONSE,
                ..h
            },
            payloads: vec![
                Payload::Sa(vec![Proposal {
                    num,
                    protocol: proto::IKE,
                    spi: vec![],
                    transforms: ike_transforms(&suite),
                }]),
                Payload::Ke {
                    group: suite.dh.id(),
                    data: dh.public.clone(),
                },
                Payload::Nonce(nr.clone()),
                nat_notifies(h.spi_i, spi_r, self.local, from)[0].clone(),
                nat_notifies(h.spi_i, spi_r, self.local, from)[1].clone(),
            ],
        };
        let nat = nat_detected(&msg.payloads, h.spi_i, 0, from, self.local);
        let msg2 = resp.encode();
        self.send(IKE_PORT, from, msg2.clone());
        let sa = IkeSa {
            profile: pi,
            initiator: false,
            state: State::InitDone,
            peer: from,
            spi_i: h.spi_i,
            spi_r,
            suite,
            keys: Some(keys),
            ni: ni.to_vec(),
            nr,
            dh: None,
            msg1: raw.to_vec(),
            msg2,
            cookie: None,
            next_request_id: 0,
            expect_request_id: 1,
            last_response: None,
            pending: None,
            work: VecDeque::new(),
            children: Vec::new(),
            created: now,
            last_rx: now,
            superseded: false,
            local_port: IKE_PORT,
            nat: nat.any(),
            behind_nat: nat.we_behind,
            init_from: Some(from),
        };
        self.half_open += 1;
        self.init_index.insert((from, h.spi_i), spi_r);
        self.sas.insert(spi_r, sa);
    }

    fn init_response(&mut self, now: Instant, from: SocketAddr, msg: Message, raw: &[u8]) {
        let h = msg.header;
        let Some(mut sa) = self.sas.remove(&h.spi_i) else {
            self.counters.unknown_spi += 1;
            return;
        };
        if sa.state != State::InitSent
            || !sa.initiator
            || h.from_initiator()
            || from.ip() != sa.peer.ip()
        {
            self.counters.unexpected += 1;
            self.sas.insert(h.spi_i, sa);
            return;
        }
        let inner = Inner {
            payloads: &msg.payloads,
        };
        if let Some(c) = inner.notify(notify::COOKIE) {
            sa.cookie = Some(c.data.clone());
            self.send_init(now, &mut sa);
            self.sas.insert(h.spi_i, sa);
            return;
        }
        if let Some(n) = inner.notify(notify::INVALID_KE_PAYLOAD) {
            let want = spi_u32(&[&[0, 0][..], &n.data].concat()).map(|g| g as u16);
            let p = &self.profiles[sa.profile];
            let ok = want
                .and_then(DhGroup::from_id)
                .filter(|g| p.ike.iter().any(|s| s.dh == *g));
            let cur = sa.dh.as_ref().map(|d| d.group);
            if let (Some(g), true) = (ok, ok != cur) {
                self.counters.invalid_ke_retries += 1;
                sa.dh = DhSecret::generate(g).ok();
                self.send_init(now, &mut sa);
                self.sas.insert(h.spi_i, sa);
                return;
            }
            self.sa_down(&mut sa, DownReason::PeerError(notify::INVALID_KE_PAYLOAD));
            return;
        }
        if let Some(e) = inner.error() {
            let reason = if e == notify::NO_PROPOSAL_CHOSEN {
                DownReason::NoProposalChosen
            } else {
                DownReason::PeerError(e)
            };
            self.sa_down(&mut sa, reason);
            return;
        }
        let p = self.profiles[sa.profile].clone();
        let (Some(props), Some((group, ke)), Some(nr)) = (inner.sa(), inner.ke(), inner.nonce())
        else {
            self.counters.malformed += 1;
            self.sas.insert(h.spi_i, sa);
            return;
        };
        let dh_group = sa.dh.as_ref().map(|d| d.group.id());
        let chosen = if props.len() == 1 {
            select_ike(&p.ike, props, dh_group)
        } else {
            None
        };
        let Some((_, suite)) =
            chosen.filter(|(_, s)| Some(s.dh.id()) == dh_group && group == s.dh.id())
        else {
            self.counters.no_proposal_chosen += 1;
            self.sa_down(&mut sa, DownReason::NoProposalChosen);
            return;
        };
        let Some(shared) = sa.dh.as_ref().and_then(|d| d.shared(ke).ok()) else {
            self.counters.dh_failed += 1;
            self.sa_down(&mut sa, DownReason::PeerError(0));
            return;
        };
        sa.suite = suite;
        sa.spi_r = h.spi_r;
        let seen = nat_detected(&msg.payloads, sa.spi_i, h.spi_r, from, self.local);
        sa.behind_nat = seen.we_behind;
        if seen.any() {
            sa.nat = true;
            sa.local_port = NAT_T_PORT;
            sa.peer.set_port(NAT_T_PORT);
        }
        sa.nr = nr.to_vec();
        sa.msg2 = raw.to_vec();
        let seed = IkeKeys::skeyseed(suite.prf, &sa.ni, nr, &shared);
        let keys = IkeKeys::derive(&suite, &seed, &sa.ni, nr, sa.spi_i, sa.spi_r);
        let idi = p.local_id.body();
        let auth = psk_auth(suite.prf, &p.psk, &keys.sk_pi, &sa.msg1, nr, &idi);
        sa.keys = Some(keys);
        sa.dh = None;
        sa.pending = None;
        let spi_in = self.new_child_spi();
        let mut inner = vec![Payload::IdI(p.local_id.clone())];
        if let Some(r) = &p.remote_id {
            inner.push(Payload::IdR(r.clone()));
        }
        inner.push(Payload::Auth {
            method: wire::AUTH_SHARED_KEY,
            data: auth,
        });
        inner.push(Payload::Notify(Notify::new(
            notify::INITIAL_CONTACT,
            vec![],
        )));
        inner.push(Payload::Sa(self.esp_proposals(&p, spi_in, None)));
        inner.push(Payload::TsI(vec![p.ts_local.clone()]));
        inner.push(Payload::TsR(vec![p.ts_remote.clone()]));
        sa.state = State::AuthSent;
        self.request(
            now,
            &mut sa,
            exchange::IKE_AUTH,
            &inner,
            Req::Auth { spi_in },
        );
        self.sas.insert(sa.spi_i, sa);
    }

    fn auth_request(&mut self, now: Instant, sa: &mut IkeSa, id: u32, inner: &Inner) -> bool {
        let p = self.profiles[sa.profile].clone();
        let Some(keys) = sa.keys.clone() else {
            return false;
        };
        let ok = match (inner.idi(), inner.auth()) {
            (Some(idi), Some(got)) => {
                let want = psk_auth(keys.prf, &p.psk, &keys.sk_pi, &sa.msg1, &sa.nr, &idi.body());
                crypto::auth_eq(&want, got) && id_ok(&p.remote_id, idi)
            }
            _ => false,
        };
        if !ok {
            self.counters.auth_failed += 1;
            log::info!("ikev2: {}: peer {} failed authentication", p.name, sa.peer);
            self.respond(
                sa,
                exchange::IKE_AUTH,
                id,
                &[Payload::Notify(Notify::new(
                    notify::AUTHENTICATION_FAILED,
                    vec![],
                ))],
            );
            self.sa_down(sa, DownReason::AuthenticationFailed);
            return false;
        }
        let idr = p.local_id.body();
        let auth = psk_auth(keys.prf, &p.psk, &keys.sk_pr, &sa.msg2, &sa.ni, &idr);
        let mut out = vec![
            Payload::IdR(p.local_id.clone()),
            Payload::Auth {
                method: wire::AUTH_SHARED_KEY,
                data: auth,
            },
        ];
        let (ni, nr) = (sa.ni.clone(), sa.nr.clone());
        let child = self.child_offer(sa, &p, &keys, inner, None, &ni, &nr, &mut out);
        self.respond(sa, exchange::IKE_AUTH, id, &out);
        sa.state = State::Established;
        sa.created = now;
        self.forget_half_open(sa);
        if inner.notify(notify::INITIAL_CONTACT).is_some() {
            // RFC 7296 §2.4: the peer has no other IKE SA with us (it restarted); ours with it
            // are stale, and so are their children in the data path.
            let stale: Vec<u64> = self
                .sas
                .iter()
                .filter(|(_, s)| s.profile == sa.profile && s.state == State::Established)
                .map(|(k, _)| *k)
                .collect();
            for spi in stale {
                if let Some(mut old) = self.sas.remove(&spi) {
                    self.sa_down(&mut old, DownReason::Replaced);
                }
            }
        }
        self.events.push_back(Event::IkeUp {
            profile: p.name.clone(),
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
        });
        if let Some(c) = child {
            self.events.push_back(Event::ChildUp(c.clone()));
            sa.children.push(Child {
                sa: c,
                created: now,
                busy: false,
                collision: None,
            });
        }
        true
    }

    /// Responder side of a child (in IKE_AUTH or CREATE_CHILD_SA): picks a suite and selectors
    /// and appends SA, [KEr,] TSi, TSr, or an error notify, to `out`.
    #[allow(clippy::too_many_arguments)]
    fn child_offer(
        &mut self,
        sa: &IkeSa,
        p: &Profile,
        keys: &IkeKeys,
        inner: &Inner,
        ke: Option<(u16, &[u8])>,
        ni: &[u8],
        nr: &[u8],
        out: &mut Vec<Payload>,
    ) -> Option<ChildSa> {
        let props = inner.sa().unwrap_or(&[]);
        let Some((mut chosen, suite, dh_group)) = select_esp(&p.esp, props, ke.map(|k| k.0)) else {
            self.counters.no_proposal_chosen += 1;
            out.push(Payload::Notify(Notify::new(
                notify::NO_PROPOSAL_CHOSEN,
                vec![],
            )));
            return None;
        };
        // The peer is the initiator of this exchange: its TSi is its side, our remote.
        let (Some(tsi), Some(tsr)) = (inner.tsi(), inner.tsr()) else {
            out.push(Payload::Notify(Notify::new(
                notify::TS_UNACCEPTABLE,
                vec![],
            )));
            return None;
        };
        let (Some(ts_remote), Some(ts_local)) =
            (narrow(&p.ts_remote, tsi), narrow(&p.ts_local, tsr))
        else {
            out.push(Payload::Notify(Notify::new(
                notify::TS_UNACCEPTABLE,
                vec![],
            )));
            return None;
        };
        let spi_out = spi_u32(&chosen.spi)?;
        let mut shared = None;
        let mut ker = None;
        if let (Some(g), Some((_, data))) = (dh_group, ke) {
            let dh = DhSecret::generate(g).ok()?;
            match dh.shared(data) {
                Ok(s) => shared = Some(s),
                Err(_) => {
                    self.counters.dh_failed += 1;
                    out.push(Payload::Notify(Notify::new(
                        notify::INVALID_KE_PAYLOAD,
                        g.id().to_be_bytes().to_vec(),
                    )));
                    return None;
                }
            }
            ker = Some(Payload::Ke {
                group: g.id(),
                data: dh.public.clone(),
            });
        }
        let spi_in = self.new_child_spi();
        chosen.spi = spi_in.to_be_bytes().to_vec();
        chosen.transforms = esp_transforms(&suite, dh_group);
        out.push(Payload::Sa(vec![chosen]));
        if let Some(k) = ker {
            out.push(Payload::Nonce(nr.to_vec()));
            out.push(k);
        }
        out.push(Payload::TsI(vec![ts_remote.clone()]));
        out.push(Payload::TsR(vec![ts_local.clone()]));
        Some(make_child(
            keys,
            p,
            self.local,
            sa.peer,
            &suite,
            shared.as_deref(),
            ni,
            nr,
            false,
            spi_in,
            spi_out,
            vec![ts_local],
            vec![ts_remote],
            sa.nat,
        ))
    }

    fn child_request(&mut self, now: Instant, sa: &mut IkeSa, id: u32, inner: &Inner) -> bool {
        let p = self.profiles[sa.profile].clone();
        let Some(keys) = sa.keys.clone() else {
            return false;
        };
        let Some(ni) = inner.nonce().map(<[u8]>::to_vec) else {
            self.respond(
                sa,
                exchange::CREATE_CHILD_SA,
                id,
                &[Payload::Notify(Notify::new(notify::INVALID_SYNTAX, vec![]))],
            );
            return true;
        };
        let nr = nonce();
        let props = inner.sa().unwrap_or(&[]);
        if props.first().map(|x| x.protocol) == Some(proto::IKE) {
            return self.ike_rekey_request(now, sa, id, inner, &ni, &nr);
        }
        let rekey_of = inner.notify(notify::REKEY_SA).and_then(|n| spi_u32(&n.spi));
        if let Some(old_out) = rekey_of {
            if !sa.children.iter().any(|c| c.sa.spi_out == old_out) {
                let n = Notify {
                    protocol: proto::ESP,
                    spi: old_out.to_be_bytes().to_vec(),
                    kind: notify::CHILD_SA_NOT_FOUND,
                    data: vec![],
                };
                self.respond(sa, exchange::CREATE_CHILD_SA, id, &[Payload::Notify(n)]);
                return true;
            }
        }
        let mut out = Vec::new();
        let ke = inner.ke();
        let child = self.child_offer(sa, &p, &keys, inner, ke, &ni, &nr, &mut out);
        if child.is_some() && ke.is_none() {
            // Nr goes right after SA (child_offer added it only with a KE).
            out.insert(1, Payload::Nonce(nr.clone()));
        }
        self.respond(sa, exchange::CREATE_CHILD_SA, id, &out);
        if let Some(c) = child {
            let ours_pending = match &sa.pending {
                Some(Pending {
                    req:
                        Req::Child {
                            rekey_of: Some(x), ..
                        },
                    ..
                }) => Some(*x),
                _ => None,
            };
            if let Some(old) = sa
                .children
                .iter_mut()
                .find(|c| Some(c.sa.spi_out) == rekey_of)
            {
                // The peer deletes the old one once the new one is up.
                old.busy = true;
                if ours_pending == Some(old.sa.spi_in) {
                    old.collision = Some((c.spi_in, ni.clone().min(nr.clone())));
                }
            }
            self.events.push_back(Event::ChildUp(c.clone()));
            sa.children.push(Child {
                sa: c,
                created: now,
                busy: false,
                collision: None,
            });
        }
        true
    }

    fn ike_rekey_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        id: u32,
        inner: &Inner,
        ni: &[u8],
        nr: &[u8],
    ) -> bool {
        let p = self.profiles[sa.profile].clone();
        let Some(old) = sa.keys.clone() else {
            return false;
        };
        let props = inner.sa().unwrap_or(&[]);
        let ke = inner.ke();
        let chosen = select_ike(&p.ike, props, ke.map(|k| k.0));
        let fail = |e: &mut Self, sa: &mut IkeSa, n: Notify| {
            e.respond(sa, exchange::CREATE_CHILD_SA, id, &[Payload::Notify(n)]);
            true
        };
        let Some((num, suite)) = chosen else {
            self.counters.no_proposal_chosen += 1;
            return fail(self, sa, Notify::new(notify::NO_PROPOSAL_CHOSEN, vec![]));
        };
        let Some((group, data)) = ke.filter(|k| k.0 == suite.dh.id()) else {
            return fail(
                self,
                sa,
                Notify::new(
                    notify::INVALID_KE_PAYLOAD,
                    suite.dh.id().to_be_bytes().to_vec(),
                ),
            );
        };
        let _ = group;
        let peer_spi = props
            .iter()
            .find(|x| x.num == num)
            .and_then(|x| x.spi.clone().try_into().ok())
            .map(u64::from_be_bytes);
        let (Some(peer_spi), Ok(dh)) = (peer_spi, DhSecret::generate(suite.dh)) else {
            return fail(self, sa, Notify::new(notify::INVALID_SYNTAX, vec![]));
        };
        let Ok(shared) = dh.shared(data) else {
            self.counters.dh_failed += 1;
            return fail(
                self,
                sa,
                Notify::new(
                    notify::INVALID_KE_PAYLOAD,
                    suite.dh.id().to_be_bytes().to_vec(),
                ),
            );
        };
        let new_spi = random_u64() | 1;
        let out = [
            Payload::Sa(vec![Proposal {
                num,
                protocol: proto::IKE,
                spi: new_spi.to_be_bytes().to_vec(),
                transforms: ike_transforms(&suite),
            }]),
            Payload::Nonce(nr.to_vec()),
            Payload::Ke {
                group: suite.dh.id(),
                data: dh.public.clone(),
            },
        ];
        self.respond(sa, exchange::CREATE_CHILD_SA, id, &out);
        let seed = IkeKeys::rekey_skeyseed(old.prf, &old.sk_d, &shared, ni, nr);
        let keys = IkeKeys::derive(&suite, &seed, ni, nr, peer_spi, new_spi);
        let new = self.rekeyed(now, sa, false, suite, keys, peer_spi, new_spi, ni, nr);
        self.sas.insert(new_spi, new);
        true
    }

    /// The IKE SA that replaces `old` after a rekey; the children move to it.
    #[allow(clippy::too_many_arguments)]
    fn rekeyed(
        &mut self,
        now: Instant,
        old: &mut IkeSa,
        initiator: bool,
        suite: IkeSuite,
        keys: IkeKeys,
        spi_i: u64,
        spi_r: u64,
        ni: &[u8],
        nr: &[u8],
    ) -> IkeSa {
        old.superseded = true;
        let children = std::mem::take(&mut old.children);
        let p = &self.profiles[old.profile];
        self.events.push_back(Event::IkeUp {
            profile: p.name.clone(),
            spi_i,
            spi_r,
        });
        IkeSa {
            profile: old.profile,
            initiator,
            state: State::Established,
            peer: old.peer,
            spi_i,
            spi_r,
            suite,
            keys: Some(keys),
            ni: ni.to_vec(),
            nr: nr.to_vec(),
            dh: None,
            msg1: Vec::new(),
            msg2: Vec::new(),
            cookie: None,
            next_request_id: 0,
            expect_request_id: 0,
            last_response: None,
            pending: None,
            work: VecDeque::new(),
            children,
            created: now,
            last_rx: now,
            superseded: false,
            local_port: old.local_port,
            nat: old.nat,
            behind_nat: old.behind_nat,
            init_from: None,
        }
    }

    fn info_request(&mut self, sa: &mut IkeSa, id: u32, inner: &Inner) -> bool {
        if inner.notify(notify::AUTHENTICATION_FAILED).is_some() {
            self.counters.auth_failed += 1;
            self.sa_down(sa, DownReason::AuthenticationFailed);
            return false;
        }
        let mut ours = Vec::new();
        for d in inner.deletes() {
            match d.protocol {
                proto::IKE => {
                    self.respond(sa, exchange::INFORMATIONAL, id, &[]);
                    self.sa_down(sa, DownReason::PeerDeleted);
                    return false;
                }
                proto::ESP => {
                    for s in d.spis.iter().filter_map(|s| spi_u32(s)) {
                        if let Some(i) = sa.children.iter().position(|c| c.sa.spi_out == s) {
                            let c = sa.children.remove(i);
                            ours.push(c.sa.spi_in.to_be_bytes().to_vec());
                            self.events.push_back(Event::ChildDown(c.sa));
                        }
                    }
                }
                _ => {}
            }
        }
        let out: Vec<Payload> = if ours.is_empty() {
            vec![]
        } else {
            vec![Payload::Delete(Delete {
                protocol: proto::ESP,
                spi_size: 4,
                spis: ours,
            })]
        };
        self.respond(sa, exchange::INFORMATIONAL, id, &out);
        true
    }

    fn response(&mut self, now: Instant, sa: &mut IkeSa, req: Req, inner: &Inner) -> bool {
        match req {
            Req::Init => true,
            Req::Auth { spi_in } => self.auth_response(now, sa, spi_in, inner),
            Req::Child {
                rekey_of,
                spi_in,
                ni,
                dh,
            } => {
                let p = self.profiles[sa.profile].clone();
                if let Some(e) = inner.error() {
                    log::info!("ikev2: {}: CREATE_CHILD_SA refused with notify {e}", p.name);
                    if let Some(c) = sa
                        .children
                        .iter_mut()
                        .find(|c| Some(c.sa.spi_in) == rekey_of)
                    {
                        // Try again a lifetime later, not at once.
                        c.busy = false;
                        c.created = now;
                    }
                    return true;
                }
                let Some(keys) = sa.keys.clone() else {
                    return false;
                };
                let nr = inner.nonce().unwrap_or(&[]).to_vec();
                let chosen = select_esp(&p.esp, inner.sa().unwrap_or(&[]), inner.ke().map(|k| k.0));
                let shared = match (&dh, inner.ke()) {
                    (Some(d), Some((_, data))) => d.shared(data).ok(),
                    _ => None,
                };
                let (Some((prop, suite, _)), Some(spi_out)) =
                    (chosen.clone(), chosen.and_then(|c| spi_u32(&c.0.spi)))
                else {
                    self.counters.no_proposal_chosen += 1;
                    return true;
                };
                let _ = prop;
                if dh.is_some() != shared.is_some() || nr.len() < 16 {
                    self.counters.unexpected += 1;
                    return true;
                }
                let ts_l = inner
                    .tsi()
                    .map(<[_]>::to_vec)
                    .unwrap_or_else(|| vec![p.ts_local.clone()]);
                let ts_r = inner
                    .tsr()
                    .map(<[_]>::to_vec)
                    .unwrap_or_else(|| vec![p.ts_remote.clone()]);
                let c = make_child(
                    &keys,
                    &p,
                    self.local,
                    sa.peer,
                    &suite,
                    shared.as_deref(),
                    &ni,
                    &nr,
                    true,
                    spi_in,
                    spi_out,
                    ts_l,
                    ts_r,
                    sa.nat,
                );
                self.events.push_back(Event::ChildUp(c.clone()));
                sa.children.push(Child {
                    sa: c,
                    created: now,
                    busy: false,
                    collision: None,
                });
                if let Some(old) = rekey_of {
                    // Both sides rekeyed this child at once: the new child from the exchange
                    // with the lowest nonce is redundant, and its initiator deletes it; the
                    // other exchange's initiator deletes the old child (RFC 7296 §2.8.1).
                    let ours_min = ni.clone().min(nr);
                    let theirs = sa
                        .children
                        .iter()
                        .find(|x| x.sa.spi_in == old)
                        .and_then(|x| x.collision.clone());
                    let victim = match theirs {
                        Some((_, their_min)) if ours_min < their_min => spi_in,
                        _ => old,
                    };
                    sa.work.push_front(Work::DeleteChild(victim));
                }
                true
            }
            Req::RekeyIke { new_spi, ni, dh } => {
                let Some(old) = sa.keys.clone() else {
                    return false;
                };
                let p = self.profiles[sa.profile].clone();
                if let Some(e) = inner.error() {
                    log::info!("ikev2: {}: IKE rekey refused with notify {e}", p.name);
                    sa.created = now;
                    return true;
                }
                let props = inner.sa().unwrap_or(&[]);
                let peer_spi = props
                    .first()
                    .and_then(|x| x.spi.clone().try_into().ok())
                    .map(u64::from_be_bytes);
                let shared = inner.ke().and_then(|(_, d)| dh.shared(d).ok());
                let (Some(nr), Some(peer_spi), Some(shared)) = (inner.nonce(), peer_spi, shared)
                else {
                    self.counters.unexpected += 1;
                    return true;
                };
                let suite = sa.suite;
                let seed = IkeKeys::rekey_skeyseed(old.prf, &old.sk_d, &shared, &ni, nr);
                let keys = IkeKeys::derive(&suite, &seed, &ni, nr, new_spi, peer_spi);
                let new = self.rekeyed(now, sa, true, suite, keys, new_spi, peer_spi, &ni, nr);
                self.sas.insert(new_spi, new);
                sa.work.clear();
                sa.work.push_back(Work::DeleteIke);
                self.start_work(now, sa);
                true
            }
            Req::DeleteChild { spi_in } => {
                if let Some(i) = sa.children.iter().position(|c| c.sa.spi_in == spi_in) {
                    let c = sa.children.remove(i);
                    self.events.push_back(Event::ChildDown(c.sa));
                }
                true
            }
            Req::DeleteIke => {
                let reason = if sa.superseded {
                    DownReason::Rekeyed
                } else {
                    DownReason::Deleted
                };
                self.sa_down(sa, reason);
                false
            }
            Req::Dpd => true,
        }
    }

    fn auth_response(&mut self, now: Instant, sa: &mut IkeSa, spi_in: u32, inner: &Inner) -> bool {
        let p = self.profiles[sa.profile].clone();
        if inner.notify(notify::AUTHENTICATION_FAILED).is_some() {
            self.counters.auth_failed += 1;
            log::info!("ikev2: {}: peer refused our authentication", p.name);
            self.sa_down(sa, DownReason::AuthenticationFailed);
            return false;
        }
        let Some(keys) = sa.keys.clone() else {
            return false;
        };
        let ok = match (inner.idr(), inner.auth()) {
            (Some(idr), Some(got)) => {
                let want = psk_auth(keys.prf, &p.psk, &keys.sk_pr, &sa.msg2, &sa.ni, &idr.body());
                crypto::auth_eq(&want, got) && id_ok(&p.remote_id, idr)
            }
            _ => false,
        };
        if !ok {
            self.counters.auth_failed += 1;
            log::info!(
                "ikev2: {}: responder {} failed authentication",
                p.name,
                sa.peer
            );
            // RFC 7296 §2.21.2: tell the peer in a new INFORMATIONAL, then forget the SA.
            let n = [Payload::Notify(Notify::new(
                notify::AUTHENTICATION_FAILED,
                vec![],
            ))];
            if let Some(d) = sa.seal(exchange::INFORMATIONAL, sa.next_request_id, false, &n) {
                self.send(sa.local_port, sa.peer, d);
            }
            self.sa_down(sa, DownReason::AuthenticationFailed);
            return false;
        }
        sa.state = State::Established;
        sa.created = now;
        self.events.push_back(Event::IkeUp {
            profile: p.name.clone(),
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
        });
        // Without its child the IKE SA is of no use to calico, and `initiate` would do
        // nothing while it exists: delete it, so that the next initiate starts over.
        let childless = |e: &mut Self, sa: &mut IkeSa, why: String| {
            log::info!(
                "ikev2: {}: IKE SA up but no child ({why}); deleting it",
                p.name
            );
            sa.work.push_back(Work::DeleteIke);
            e.start_work(now, sa);
            true
        };
        if let Some(e) = inner.error() {
            return childless(self, sa, format!("notify {e}"));
        }
        let chosen = select_esp(&p.esp, inner.sa().unwrap_or(&[]), None);
        let Some((prop, suite, _)) = chosen else {
            self.counters.no_proposal_chosen += 1;
            return childless(self, sa, "no acceptable ESP proposal".into());
        };
        let Some(spi_out) = spi_u32(&prop.spi) else {
            return childless(self, sa, "bad SPI".into());
        };
        let ts_l = inner.tsi().map(<[_]>::to_vec).unwrap_or_default();
        let ts_r = inner.tsr().map(<[_]>::to_vec).unwrap_or_default();
        let (ni, nr) = (sa.ni.clone(), sa.nr.clone());
        let c = make_child(
            &keys, &p, self.local, sa.peer, &suite, None, &ni, &nr, true, spi_in, spi_out, ts_l,
            ts_r, sa.nat,
        );
        self.events.push_back(Event::ChildUp(c.clone()));
        sa.children.push(Child {
            sa: c,
            created: now,
            busy: false,
            collision: None,
        });
        true
    }
}

#[cfg(test)]
mod tests;
