//! IKEv2 profiles as calico configures them (`ikev2_profile_*`, `ikev2_set_*`), run by the
//! `ikev2` crate's sans-I/O engine on the control thread. The profiles as configured are the one
//! source of truth (the API's dump and the CLI's `show ikev2 profile` read them); each complete
//! profile is translated into the engine's `Profile`, in the engine of its local address (one
//! engine per local IPv4 address, since the engine's NAT detection hashes its one address).
//!
//! Packets: the graph's `ike4-punt` queues IKE (UDP 500, UDP 4500 with the zero marker) for our
//! addresses; [`tick`] (housekeeping, every 10 ms) feeds them to the engines, runs their timers
//! and returns their datagrams as IP packets, which a worker routes out (`WorkerCmd::Inject`).
//! Negotiated child SAs are installed by [`Installer`] (the engine's `ChildSaSink`) through
//! `service::ipsec::child_sa_install` on the profile's tunnel interface (`ikev2_set_tunnel_interface`,
//! calico's ipipN), which is link-down until its first child is up and again once its last is
//! gone, so that nothing crosses it in the clear.

use super::ipsec::{self, CryptoAlg, SaRequest};
use super::{lock, rv, SvcError, SvcResult};
use crate::daemon::Dataplane;
use ikev2::crypto::{DhGroup, Encr, IkeSuite, Integ, Prf};
use ikev2::wire::{id_type, Identity, TrafficSelector, AUTH_SHARED_KEY};
use ikev2::{ChildSa, ChildSaSink, Config, DownReason, Engine, EspSuite, IkeSaInfo, Profile};
use rvpp_dataplane::nodes::{ike, ipip};
use rvpp_dataplane::wireguard::engine::{udp_packet, Outgoing};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// VPP's `IKEV2_TRANSFORM_ENCR_TYPE_*`, `_INTEG_TYPE_*`, `_PRF_TYPE_*` are IANA's numbers.
const ENCR_AES_CBC: u8 = 12;
const ENCR_AES_GCM_16: u8 = 20;
const INTEG_NONE: u8 = 0;

/// An authentication method and its data (the PSK), as configured.
#[derive(Clone, PartialEq, Eq)]
pub struct Auth {
    pub method: u8,
    pub is_hex: bool,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Auth {
    // The PSK stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Auth {{ method: {}, {} bytes }}",
            self.method,
            self.data.len()
        )
    }
}

/// An identity (`ikev2_profile_set_id`): VPP's id type and its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Id {
    pub kind: u8,
    pub data: Vec<u8>,
}

impl Id {
    fn identity(&self) -> Identity {
        match (self.kind, <[u8; 4]>::try_from(self.data.as_slice())) {
            (id_type::IPV4_ADDR, Ok(a)) => Identity::Ipv4(Ipv4Addr::from(a)),
            _ => Identity::Other {
                kind: self.kind,
                data: self.data.clone(),
            },
        }
    }
    fn ipv4(&self) -> Option<Ipv4Addr> {
        match self.identity() {
            Identity::Ipv4(a) => Some(a),
            Identity::Other { .. } => None,
        }
    }
}

/// A traffic selector (`ikev2_profile_set_ts`), IPv4 only (the engine's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ts {
    pub protocol: u8,
    pub start_port: u16,
    pub end_port: u16,
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
}

impl Ts {
    /// A selector from addresses as the API and the CLI give them: IPv6 ranges are refused
    /// (the engine's selectors are IPv4).
    pub fn from_range(
        protocol: u8,
        start_port: u16,
        end_port: u16,
        start: IpAddr,
        end: IpAddr,
    ) -> SvcResult<Ts> {
        match (start, end) {
            (IpAddr::V4(start), IpAddr::V4(end)) => Ok(Ts {
                protocol,
                start_port,
                end_port,
                start,
                end,
            }),
            _ => Err(err(
                rv::UNIMPLEMENTED,
                "IPv6 traffic selectors are not implemented",
            )),
        }
    }

    fn selector(&self) -> TrafficSelector {
        let mut t = TrafficSelector::ipv4_range(self.start, self.end);
        t.ip_proto = self.protocol;
        t.start_port = self.start_port;
        t.end_port = self.end_port;
        t
    }
}

/// `ikev2_set_ike_transforms` as sent, and the suite it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IkeTransforms {
    pub crypto_alg: u8,
    pub key_bits: u32,
    pub integ_alg: u8,
    pub prf_alg: u8,
    pub dh_group: u8,
    pub suite: IkeSuite,
}

/// `ikev2_set_esp_transforms` as sent, and the suite it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EspTransforms {
    pub crypto_alg: u8,
    pub key_bits: u32,
    pub integ_alg: u8,
    pub suite: EspSuite,
}

/// A profile as configured; what is unset is None.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProfileConf {
    pub name: String,
    pub auth: Option<Auth>,
    pub local_id: Option<Id>,
    pub remote_id: Option<Id>,
    pub ts_local: Option<Ts>,
    pub ts_remote: Option<Ts>,
    /// `ikev2_set_responder`: (uplink sw_if_index, peer address); only the initiator sets it.
    pub responder: Option<(u32, IpAddr)>,
    pub ike: Option<IkeTransforms>,
    pub esp: Option<EspTransforms>,
    pub tun_itf: Option<u32>,
}

/// Refusals and events of this service beside the engines' own counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub datagrams: u64,
    /// IKE to a local address no profile uses.
    pub no_engine_for_address: u64,
    pub children_installed: u64,
    pub children_removed: u64,
    /// A child whose suite the ESP data path cannot run (refused and deleted with the peer).
    pub child_unsupported_suite: u64,
    /// A child of a profile without a tunnel interface (refused and deleted with the peer).
    pub child_no_tunnel: u64,
    /// `child_sa_install` refused it (refused and deleted with the peer).
    pub child_install_failed: u64,
    /// IKE_SA_INIT started again for a kept-up profile whose IKE SA was gone.
    pub reinitiated: u64,
    /// Children rekeyed because their outbound sequence number neared the end.
    pub rekeyed_for_seq: u64,
}

/// A child SA on the data path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Installed {
    pub profile: String,
    pub sw_if_index: u32,
    pub spi_in: u32,
    pub spi_out: u32,
    pub sa_in: u32,
    pub sa_out: u32,
    pub encr: Encr,
    pub udp_encap: bool,
    /// Its outbound SA is the tunnel's (else it only receives, until the child it replaces goes).
    pub sending: bool,
    /// Its sequence numbers ran high and a rekey was asked for.
    pub rekeying: bool,
}

struct Slot {
    engine: Engine,
    /// The FIB the engine's datagrams are routed in (the tunnel's encap table).
    fib_index: u32,
}

/// The service's state (`service::State::ikev2`).
#[derive(Default)]
pub struct Ikev2 {
    profiles: BTreeMap<String, ProfileConf>,
    engines: BTreeMap<Ipv4Addr, Slot>,
    /// Profiles in an engine, and its local address.
    applied: BTreeMap<String, Ipv4Addr>,
    /// Installed child SAs by our SPI.
    children: HashMap<u32, Installed>,
    next_sa_id: u32,
    counters: Counters,
    /// The engines' datagrams made outside [`tick`], sent by the next one.
    outbox: Vec<Outgoing>,
    /// Profiles `ikev2_initiate_sa_init` started, kept up: when their IKE SA is gone (dead peer,
    /// peer restarted as responder, refused), they start again, backing off to 30 s.
    keep_up: BTreeMap<String, Retry>,
    /// An outbound SA without ESN that has sent this many packets is rekeyed (None: the default).
    rekey_seq: Option<u64>,
    last_seq_check: Option<Instant>,
}

/// Without ESN the 32-bit sequence number must not wrap (the data path refuses to): rekey at
/// three quarters of it, leaving time for the exchange at any rate.
pub const REKEY_SEQ: u64 = 3 << 30;

struct Retry {
    next: Instant,
    wait: Duration,
}

const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// SA ids the service gives its child SAs: a range of their own beside the API's.
const SA_ID_BASE: u32 = 0x4b45_0000;

fn state(dp: &Dataplane) -> std::sync::MutexGuard<'_, Ikev2> {
    lock(&dp.svc.ikev2)
}

fn err(rv: i32, m: impl Into<String>) -> SvcError {
    SvcError::new(rv, m)
}

fn no_profile(name: &str) -> SvcError {
    err(rv::NO_SUCH_ENTRY, format!("no ikev2 profile {name}"))
}

/// Edit profile `name`, then push the result to its engine.
fn edit(dp: &Dataplane, name: &str, f: impl FnOnce(&mut ProfileConf)) -> SvcResult<()> {
    let mut st = state(dp);
    let p = st.profiles.get_mut(name).ok_or_else(|| no_profile(name))?;
    f(p);
    apply(dp, &mut st, name);
    Ok(())
}

pub fn profile_add(dp: &Dataplane, name: &str) -> SvcResult<()> {
    if name.is_empty() {
        return Err(err(rv::INVALID_VALUE, "a profile needs a name"));
    }
    let mut st = state(dp);
    if st.profiles.contains_key(name) {
        return Err(err(
            rv::ENTRY_ALREADY_EXISTS,
            format!("ikev2 profile {name} exists"),
        ));
    }
    st.profiles.insert(
        name.to_string(),
        ProfileConf {
            name: name.to_string(),
            ..Default::default()
        },
    );
    ike::set_enabled(true);
    Ok(())
}

/// Delete a profile: its IKE SAs are deleted with the peer and its children removed.
pub fn profile_del(dp: &Dataplane, name: &str) -> SvcResult<()> {
    let mut st = state(dp);
    st.profiles.remove(name).ok_or_else(|| no_profile(name))?;
    st.keep_up.remove(name);
    if let Some(local) = st.applied.remove(name) {
        if let Some(s) = st.engines.get_mut(&local) {
            s.engine.remove_profile(name);
        }
        drain(dp, &mut st, Instant::now());
    }
    ike::set_enabled(!st.profiles.is_empty());
    Ok(())
}

pub fn set_auth(
    dp: &Dataplane,
    name: &str,
    method: u8,
    is_hex: bool,
    data: &[u8],
) -> SvcResult<()> {
    if method != AUTH_SHARED_KEY {
        return Err(err(
            rv::UNIMPLEMENTED,
            format!("auth method {method}: only shared-key-mic (2) is implemented"),
        ));
    }
    if data.is_empty() {
        return Err(err(rv::INVALID_VALUE, "an empty pre-shared key"));
    }
    let auth = Auth {
        method,
        is_hex,
        data: data.to_vec(),
    };
    edit(dp, name, |p| p.auth = Some(auth))
}

pub fn set_id(dp: &Dataplane, name: &str, is_local: bool, kind: u8, data: &[u8]) -> SvcResult<()> {
    let ok = match kind {
        id_type::IPV4_ADDR => data.len() == 4,
        id_type::IPV6_ADDR => data.len() == 16,
        // Compared as bytes, as VPP does: a DER name is as good an identity as a key id.
        id_type::FQDN
        | id_type::RFC822_ADDR
        | id_type::DER_ASN1_DN
        | id_type::DER_ASN1_GN
        | id_type::KEY_ID => !data.is_empty(),
        _ => false,
    };
    if !ok {
        return Err(err(
            rv::INVALID_VALUE,
            format!("id type {kind} with {} bytes of data", data.len()),
        ));
    }
    let id = Id {
        kind,
        data: data.to_vec(),
    };
    edit(dp, name, |p| {
        if is_local {
            p.local_id = Some(id);
        } else {
            p.remote_id = Some(id);
        }
    })
}

pub fn set_ts(dp: &Dataplane, name: &str, is_local: bool, ts: Ts) -> SvcResult<()> {
    if ts.start > ts.end || ts.start_port > ts.end_port {
        return Err(err(
            rv::INVALID_VALUE,
            "traffic selector range ends before it starts",
        ));
    }
    edit(dp, name, |p| {
        if is_local {
            p.ts_local = Some(ts);
        } else {
            p.ts_remote = Some(ts);
        }
    })
}

/// The engine's AES key size from VPP's `crypto_key_size` (bits).
fn aes_bits(bits: u32) -> Option<u16> {
    matches!(bits, 128 | 256).then_some(bits as u16)
}

fn integ_of(alg: u8) -> Result<Option<Integ>, ()> {
    match alg {
        INTEG_NONE => Ok(None),
        a => Integ::from_id(a as u16).map(Some).ok_or(()),
    }
}

pub fn set_ike_transforms(
    dp: &Dataplane,
    name: &str,
    crypto_alg: u8,
    key_bits: u32,
    integ_alg: u8,
    prf_alg: u8,
    dh_group: u8,
) -> SvcResult<()> {
    let unimpl = |what: String| Err(err(rv::UNIMPLEMENTED, what));
    let Some(bits) = aes_bits(key_bits) else {
        return unimpl(format!(
            "IKE key size {key_bits} (AES-128/256 are implemented)"
        ));
    };
    let encr = match crypto_alg {
        ENCR_AES_CBC => Encr::AesCbc { bits },
        ENCR_AES_GCM_16 => Encr::AesGcm16 { bits },
        a => {
            return unimpl(format!(
                "IKE encryption {a} (AES-CBC 12 and AES-GCM-16 20 are implemented)"
            ))
        }
    };
    let Ok(integ) = integ_of(integ_alg) else {
        return unimpl(format!(
            "IKE integrity {integ_alg} (HMAC-SHA1-96 2, HMAC-SHA256-128 12)"
        ));
    };
    if matches!(encr, Encr::AesCbc { .. }) == integ.is_none() {
        return Err(err(
            rv::INVALID_VALUE,
            "AES-CBC needs an integrity algorithm and AES-GCM takes none",
        ));
    }
    // VPP takes the PRF from the integrity algorithm; an explicit one wins here.
    let prf = match (prf_alg, integ) {
        (0, Some(Integ::HmacSha1_96)) => Prf::HmacSha1,
        (0, _) => Prf::HmacSha256,
        (p, _) => match Prf::from_id(p as u16) {
            Some(p) => p,
            None => return unimpl(format!("IKE PRF {p} (HMAC-SHA1 2, HMAC-SHA256 5)")),
        },
    };
    let Some(dh) = DhGroup::from_id(dh_group as u16) else {
        return unimpl(format!(
            "DH group {dh_group} (14, 19 and 31 are implemented)"
        ));
    };
    let t = IkeTransforms {
        crypto_alg,
        key_bits,
        integ_alg,
        prf_alg,
        dh_group,
        suite: IkeSuite {
            encr,
            prf,
            integ,
            dh,
        },
    };
    edit(dp, name, |p| p.ike = Some(t))
}

/// The ESP data path runs AES-GCM-16 only: anything else is refused here, so that no child is
/// negotiated that cannot be installed.
pub fn set_esp_transforms(
    dp: &Dataplane,
    name: &str,
    crypto_alg: u8,
    key_bits: u32,
    integ_alg: u8,
) -> SvcResult<()> {
    let Some(bits) = aes_bits(key_bits) else {
        return Err(err(rv::UNIMPLEMENTED, format!("ESP key size {key_bits}")));
    };
    if crypto_alg != ENCR_AES_GCM_16 || integ_alg != INTEG_NONE {
        return Err(err(
            rv::UNIMPLEMENTED,
            format!(
                "ESP encryption {crypto_alg} integrity {integ_alg}: the data path runs AES-GCM-16 (20) without integrity only"
            ),
        ));
    }
    let t = EspTransforms {
        crypto_alg,
        key_bits,
        integ_alg,
        suite: EspSuite {
            encr: Encr::AesGcm16 { bits },
            integ: None,
            esn: false,
            pfs: None,
        },
    };
    edit(dp, name, |p| p.esp = Some(t))
}

pub fn set_responder(dp: &Dataplane, name: &str, sw: u32, addr: IpAddr) -> SvcResult<()> {
    dp.fwd().iface(sw)?;
    if !addr.is_ipv4() || addr.is_unspecified() {
        return Err(err(
            rv::UNIMPLEMENTED,
            "the responder must be a unicast IPv4 address (IKE over IPv6 is not implemented)",
        ));
    }
    edit(dp, name, |p| p.responder = Some((sw, addr)))
}

/// The profile's SAs protect `sw`, an ipip tunnel, which stays link-down until a child is up.
pub fn set_tunnel_interface(dp: &Dataplane, name: &str, sw: u32) -> SvcResult<()> {
    let mut st = state(dp);
    if !st.profiles.contains_key(name) {
        return Err(no_profile(name));
    }
    {
        let mut f = dp.fwd();
        f.iface(sw)?;
        if dp
            .feature_tables
            .get::<ipip::Table>()
            .load()
            .get(sw)
            .is_none()
        {
            return Err(err(
                rv::INVALID_SW_IF_INDEX,
                format!("sw_if_index {sw} is not an ipip tunnel"),
            ));
        }
        if !st.children.values().any(|c| c.sw_if_index == sw) {
            f.set_link_up(sw, false)?;
        }
    }
    if let Some(p) = st.profiles.get_mut(name) {
        p.tun_itf = Some(sw);
    }
    apply(dp, &mut st, name);
    drop(st);
    dp.svc.changed();
    Ok(())
}

/// Start IKE_SA_INIT; a no-op while the profile has an IKE SA (calico sends it every second).
pub fn initiate(dp: &Dataplane, name: &str) -> SvcResult<()> {
    let mut st = state(dp);
    let p = st.profiles.get(name).ok_or_else(|| no_profile(name))?;
    if p.responder.is_none() {
        return Err(err(
            rv::INVALID_VALUE,
            format!("profile {name} has no responder (ikev2_set_responder)"),
        ));
    }
    let v6_tunnel = p.tun_itf.is_some_and(|sw| {
        let t = dp.feature_tables.get::<ipip::Table>().load();
        t.get(sw).is_some_and(|t| t.src.is_ipv6())
    });
    if v6_tunnel {
        return Err(err(
            rv::UNIMPLEMENTED,
            format!("profile {name}: IKE over IPv6 is not implemented"),
        ));
    }
    let Some(&local) = st.applied.get(name) else {
        let why = engine_profile(dp, p).err().unwrap_or_default();
        return Err(err(
            rv::INVALID_VALUE,
            format!("profile {name} is incomplete: {why}"),
        ));
    };
    let now = Instant::now();
    let s = st
        .engines
        .get_mut(&local)
        .ok_or_else(|| err(rv::UNSPECIFIED, "profile without its engine"))?;
    s.engine
        .initiate(now, name)
        .map_err(|e| err(rv::INVALID_VALUE, format!("profile {name}: {e}")))?;
    st.keep_up.entry(name.to_string()).or_insert(Retry {
        next: now + RETRY_FIRST,
        wait: RETRY_FIRST,
    });
    drain(dp, &mut st, now);
    Ok(())
}

/// How often outbound sequence numbers are looked at.
const SEQ_CHECK: Duration = Duration::from_secs(1);

/// Ask for a rekey of every sending child without ESN whose outbound SA has used up
/// `rekey_seq` sequence numbers (the exchange starts in this tick's timer pass).
fn rekey_worn(dp: &Dataplane, st: &mut Ikev2) {
    let limit = st.rekey_seq.unwrap_or(REKEY_SEQ);
    if !st.children.values().any(|c| c.sending && !c.rekeying) {
        return;
    }
    let seqs: HashMap<u32, (u64, bool)> = ipsec::sas(dp)
        .iter()
        .map(|s| (s.cfg.id, (s.seq_outbound(), s.cfg.esn)))
        .collect();
    let Ikev2 {
        children,
        engines,
        counters,
        ..
    } = st;
    for c in children.values_mut().filter(|c| c.sending && !c.rekeying) {
        let Some(&(seq, esn)) = seqs.get(&c.sa_out) else {
            continue;
        };
        if esn || seq < limit {
            continue;
        }
        if engines.values_mut().any(|s| s.engine.rekey_child(c.spi_in)) {
            log::info!(
                "ikev2: profile {}: child {:08x} sent {seq} packets, rekeying",
                c.profile,
                c.spi_in
            );
            c.rekeying = true;
            counters.rekeyed_for_seq += 1;
        }
    }
}

/// Rekey children once their outbound SA has sent `n` packets (None: [`REKEY_SEQ`]).
pub fn set_rekey_seq(dp: &Dataplane, n: Option<u64>) -> SvcResult<()> {
    if n.is_some_and(|n| n == 0 || n > REKEY_SEQ) {
        return Err(err(
            rv::INVALID_VALUE,
            format!("rekey-seq must be 1 to {REKEY_SEQ}"),
        ));
    }
    state(dp).rekey_seq = n;
    Ok(())
}

/// Start the kept-up profiles whose IKE SA is gone and whose retry is due.
fn keep_up(st: &mut Ikev2, now: Instant) {
    let Ikev2 {
        keep_up,
        applied,
        engines,
        counters,
        ..
    } = st;
    for (name, r) in keep_up.iter_mut().filter(|(_, r)| r.next <= now) {
        let Some(s) = applied.get(name).and_then(|l| engines.get_mut(l)) else {
            continue;
        };
        if s.engine.is_established(name) {
            r.wait = RETRY_FIRST;
        } else if s.engine.initiate(now, name) == Ok(true) {
            counters.reinitiated += 1;
            r.wait = (r.wait * 2).min(RETRY_MAX);
        }
        r.next = now + r.wait;
    }
}

/// What an operator can ask of a negotiated child SA (VPP's `ikev2 initiate rekey-child-sa` /
/// `del-child-sa`), named by our (inbound) SPI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildAction {
    Rekey,
    Delete,
}

/// Start a CREATE_CHILD_SA rekey or an INFORMATIONAL delete of the child with our SPI `spi`.
pub fn child_action(dp: &Dataplane, spi: u32, what: ChildAction) -> SvcResult<()> {
    let mut st = state(dp);
    let now = Instant::now();
    let mut found = false;
    for s in st.engines.values_mut() {
        let queued = match what {
            ChildAction::Rekey => s.engine.rekey_child(spi),
            ChildAction::Delete => s.engine.delete_child(spi),
        };
        if queued {
            s.engine.handle_timeout(now);
            found = true;
        }
    }
    if !found {
        return Err(err(
            rv::NO_SUCH_ENTRY,
            format!("no child SA with SPI {spi:08x}"),
        ));
    }
    drain(dp, &mut st, now);
    Ok(())
}

/// Interface `sw` was deleted: children installed on it go (deleted with the peer too) and
/// profiles stop naming it, so that a new interface given its index is not protected by them.
pub fn interface_gone(dp: &Dataplane, sw: u32) {
    let mut st = state(dp);
    let gone: Vec<u32> = st
        .children
        .iter()
        .filter(|(_, c)| c.sw_if_index == sw)
        .map(|(spi, _)| *spi)
        .collect();
    for spi in &gone {
        if let Some(c) = st.children.remove(spi) {
            if let Err(e) = ipsec::child_sa_remove(dp, sw, c.sa_in, c.sa_out) {
                log::warn!(
                    "ikev2: profile {}: removing child SA {spi:08x}: {e}",
                    c.profile
                );
            }
            st.counters.children_removed += 1;
        }
    }
    let named: Vec<String> = st
        .profiles
        .values()
        .filter(|p| p.tun_itf == Some(sw))
        .map(|p| p.name.clone())
        .collect();
    for name in named {
        if let Some(p) = st.profiles.get_mut(&name) {
            p.tun_itf = None;
        }
        apply(dp, &mut st, &name);
    }
    delete_children(dp, &mut st, &gone, Instant::now());
}

/// Delete children (our SPIs) with their peers; the exchanges start now.
fn delete_children(dp: &Dataplane, st: &mut Ikev2, spis: &[u32], now: Instant) {
    if spis.is_empty() {
        return;
    }
    for s in st.engines.values_mut() {
        for spi in spis {
            s.engine.delete_child(*spi);
        }
        s.engine.handle_timeout(now);
    }
    drain(dp, st, now);
}

/// Every profile as configured.
pub fn profiles(dp: &Dataplane) -> Vec<ProfileConf> {
    state(dp).profiles.values().cloned().collect()
}

/// An IKE SA and its installed children, for `show ikev2 sa`.
pub struct SaView {
    pub local: Ipv4Addr,
    pub ike: IkeSaInfo,
    pub children: Vec<Installed>,
}

pub fn sas(dp: &Dataplane) -> Vec<SaView> {
    let st = state(dp);
    let mut out = Vec::new();
    for (local, s) in &st.engines {
        for ike in s.engine.ike_sas() {
            let spis: Vec<u32> = s
                .engine
                .children(&ike.profile)
                .iter()
                .map(|c| c.spi_in)
                .collect();
            let mut children: Vec<Installed> = spis
                .iter()
                .filter_map(|spi| st.children.get(spi).cloned())
                .collect();
            children.sort_by_key(|c| c.sa_in);
            out.push(SaView {
                local: *local,
                ike,
                children,
            });
        }
    }
    out
}

/// The service's counters and every engine's, summed, by name.
pub fn counters(dp: &Dataplane) -> Vec<(&'static str, u64)> {
    let st = state(dp);
    let mut engines = ikev2::Counters::default().list();
    for s in st.engines.values() {
        for (sum, (_, n)) in engines.iter_mut().zip(s.engine.counters.list()) {
            sum.1 += n;
        }
    }
    let s = &st.counters;
    let mut v = vec![
        ("ike datagrams from the graph", s.datagrams),
        (
            "ike to an address without a profile (dropped)",
            s.no_engine_for_address,
        ),
    ];
    v.extend(engines);
    v.extend([
        ("child SAs installed", s.children_installed),
        ("child SAs removed", s.children_removed),
        (
            "child refused: suite the ESP data path lacks",
            s.child_unsupported_suite,
        ),
        (
            "child refused: profile has no tunnel interface",
            s.child_no_tunnel,
        ),
        ("child refused: install failed", s.child_install_failed),
        ("IKE SA lost, initiated again", s.reinitiated),
        (
            "child rekeyed: sequence numbers ran high",
            s.rekeyed_for_seq,
        ),
    ]);
    v
}

/// Feed queued IKE datagrams to their engines, run the timers, act on what they produce; the
/// packets to route out.
pub fn tick(dp: &Dataplane) -> Vec<Outgoing> {
    let punt = dp.feature_tables.get::<ike::IkePunt>();
    let mut st = state(dp);
    if st.engines.is_empty() && punt.queue.is_empty() && st.outbox.is_empty() {
        return Vec::new();
    }
    let now = Instant::now();
    // At most a queue's worth per tick: under a flood the workers refill the recycled slots as
    // fast as they come back, and the rest of housekeeping must still run.
    for _ in 0..ike::QUEUE {
        let Some(d) = punt.queue.pop() else { break };
        st.counters.datagrams += 1;
        let from = SocketAddr::new(d.src.into(), d.src_port);
        match st.engines.get_mut(&d.dst) {
            Some(s) => s.engine.handle_datagram(now, d.dst_port, from, d.payload()),
            None => st.counters.no_engine_for_address += 1,
        }
        punt.recycle(d);
    }
    keep_up(&mut st, now);
    if st.last_seq_check.is_none_or(|t| now - t >= SEQ_CHECK) {
        st.last_seq_check = Some(now);
        rekey_worn(dp, &mut st);
    }
    for s in st.engines.values_mut() {
        if s.engine.next_timeout().is_some_and(|t| t <= now) {
            s.engine.handle_timeout(now);
        }
    }
    drain(dp, &mut st, now);
    std::mem::take(&mut st.outbox)
}

/// Every engine's events: datagrams to the outbox, child and IKE SA changes to the installer.
/// Children the installer refuses are deleted with the peer, whose exchange starts here.
fn drain(dp: &Dataplane, st: &mut Ikev2, now: Instant) {
    let mut events = Vec::new();
    for (local, s) in st.engines.iter_mut() {
        while let Some(e) = s.engine.poll_event() {
            events.push((*local, s.fib_index, e));
        }
    }
    if events.is_empty() {
        return;
    }
    let tunnels: BTreeMap<String, Option<u32>> = st
        .profiles
        .iter()
        .map(|(n, p)| (n.clone(), p.tun_itf))
        .collect();
    let mut inst = Installer {
        dp,
        tunnels: &tunnels,
        children: &mut st.children,
        next_sa_id: &mut st.next_sa_id,
        counters: &mut st.counters,
        refused: Vec::new(),
    };
    for (local, fib_index, e) in events {
        if let Some((from_port, to, data)) = e.deliver(&mut inst) {
            st.outbox.push(Outgoing {
                fib_index,
                frame: udp_packet(local.into(), from_port, to.ip(), to.port(), &data),
            });
        }
    }
    let refused = std::mem::take(&mut inst.refused);
    delete_children(dp, st, &refused, now);
}

/// The engine's `ChildSaSink`: child SAs onto the profile's tunnel through the IPsec service.
pub struct Installer<'a> {
    dp: &'a Dataplane,
    tunnels: &'a BTreeMap<String, Option<u32>>,
    children: &'a mut HashMap<u32, Installed>,
    next_sa_id: &'a mut u32,
    counters: &'a mut Counters,
    /// Our SPIs of children refused, to delete with the peer.
    refused: Vec<u32>,
}

impl Installer<'_> {
    fn sa_id(&mut self) -> u32 {
        let taken: std::collections::HashSet<u32> =
            ipsec::sas(self.dp).iter().map(|s| s.cfg.id).collect();
        loop {
            let id = SA_ID_BASE.wrapping_add(*self.next_sa_id);
            *self.next_sa_id = self.next_sa_id.wrapping_add(1);
            if !taken.contains(&id) {
                return id;
            }
        }
    }

    fn set_link(&self, sw: u32) {
        let up = self.children.values().any(|c| c.sw_if_index == sw);
        if let Err(e) = self.dp.fwd().set_link_up(sw, up) {
            log::warn!("ikev2: link of sw_if_index {sw}: {e}");
        }
        self.dp.svc.changed();
    }

    fn install(&mut self, c: &ChildSa, sw: u32, alg: CryptoAlg) -> SvcResult<Installed> {
        let salt = |s: &[u8]| <[u8; 4]>::try_from(s).map(u32::from_be_bytes).unwrap_or(0);
        // ESP in UDP goes to the port the peer's IKE comes from (a NAT may have moved it).
        let udp = c.udp_encap.then_some((ike::NATT_PORT, c.peer.port()));
        let (sa_in, sa_out) = (self.sa_id(), self.sa_id());
        let req = |id, spi, key: &[u8], s: &[u8], inbound| SaRequest {
            id,
            spi,
            alg,
            key: key.to_vec(),
            // Only AES-GCM children are negotiated (see the ESP suites above).
            integ: ipsec::IntegAlg::None,
            integ_key: Vec::new(),
            salt: salt(s),
            esn: c.esn,
            anti_replay: true,
            inbound,
            udp_encap: udp,
            tunnel: None,
        };
        let pair = ipsec::ChildSa {
            inbound: req(sa_in, c.spi_in, &c.encr_key_in, &c.salt_in, true),
            outbound: req(sa_out, c.spi_out, &c.encr_key_out, &c.salt_out, false),
        };
        // A rekey the peer started: keep sending on the current child until the peer deletes
        // it (then it has the new inbound SA), as the rekey's initiator switches on the answer.
        let sending = c.we_initiated
            || !self
                .children
                .values()
                .any(|i| i.sw_if_index == sw && i.sending);
        if sending {
            ipsec::child_sa_install(self.dp, sw, pair)?;
            for i in self.children.values_mut().filter(|i| i.sw_if_index == sw) {
                i.sending = false;
            }
        } else {
            ipsec::child_sa_accept(self.dp, sw, pair)?;
        }
        Ok(Installed {
            sending,
            rekeying: false,
            profile: c.profile.clone(),
            sw_if_index: sw,
            spi_in: c.spi_in,
            spi_out: c.spi_out,
            sa_in,
            sa_out,
            encr: c.encr,
            udp_encap: c.udp_encap,
        })
    }
}

/// The data path's algorithm for a child's suite, if it has one.
fn data_path_alg(c: &ChildSa) -> Option<CryptoAlg> {
    match (c.encr, c.integ) {
        (Encr::AesGcm16 { bits: 128 }, None) => Some(CryptoAlg::AesGcm128),
        (Encr::AesGcm16 { bits: 256 }, None) => Some(CryptoAlg::AesGcm256),
        _ => None,
    }
}

impl ChildSaSink for Installer<'_> {
    fn child_up(&mut self, c: &ChildSa) {
        let Some(sw) = self.tunnels.get(&c.profile).copied().flatten() else {
            log::warn!(
                "ikev2: profile {}: child SA {c:?} refused: no tunnel interface",
                c.profile
            );
            self.counters.child_no_tunnel += 1;
            self.refused.push(c.spi_in);
            return;
        };
        let Some(alg) = data_path_alg(c) else {
            log::warn!(
                "ikev2: profile {}: child SA {c:?} refused: the ESP data path runs AES-GCM only",
                c.profile
            );
            self.counters.child_unsupported_suite += 1;
            self.refused.push(c.spi_in);
            return;
        };
        match self.install(c, sw, alg) {
            Ok(i) => {
                log::info!(
                    "ikev2: profile {}: child SA in {:08x} out {:08x} on sw_if_index {sw}",
                    c.profile,
                    c.spi_in,
                    c.spi_out
                );
                self.children.insert(c.spi_in, i);
                self.counters.children_installed += 1;
                self.set_link(sw);
            }
            Err(e) => {
                log::warn!(
                    "ikev2: profile {}: child SA {c:?} not installed: {e}",
                    c.profile
                );
                self.counters.child_install_failed += 1;
                self.refused.push(c.spi_in);
            }
        }
    }

    fn child_down(&mut self, c: &ChildSa) {
        let Some(i) = self.children.remove(&c.spi_in) else {
            return;
        };
        if i.sending {
            // The child that replaces it (the newest on the tunnel) sends from now on.
            let next = self
                .children
                .values_mut()
                .filter(|n| n.sw_if_index == i.sw_if_index)
                .max_by_key(|n| n.sa_out);
            if let Some(n) = next {
                match ipsec::child_sa_send_with(self.dp, n.sw_if_index, n.sa_out) {
                    Ok(()) => n.sending = true,
                    Err(e) => log::warn!(
                        "ikev2: profile {}: switching to child SA {:08x}: {e}",
                        n.profile,
                        n.spi_in
                    ),
                }
            }
        }
        if let Err(e) = ipsec::child_sa_remove(self.dp, i.sw_if_index, i.sa_in, i.sa_out) {
            log::warn!("ikev2: profile {}: removing child SA {c:?}: {e}", c.profile);
        }
        self.counters.children_removed += 1;
        self.set_link(i.sw_if_index);
    }

    fn ike_up(&mut self, profile: &str, spi_i: u64, spi_r: u64) {
        log::info!("ikev2: profile {profile}: IKE SA {spi_i:016x}/{spi_r:016x} up");
    }

    fn ike_down(&mut self, profile: &str, reason: &DownReason) {
        log::info!("ikev2: profile {profile}: IKE SA down: {reason:?}");
    }

    fn peer_moved(&mut self, profile: &str, spis_in: &[u32], peer: SocketAddr) {
        log::info!("ikev2: profile {profile}: peer now at {peer}");
        for spi in spis_in {
            let Some(i) = self.children.get(spi).filter(|i| i.udp_encap) else {
                continue;
            };
            // The tunnel's far address is configured; only the port follows the NAT. The
            // inbound SA sends nothing, but shows the same ports.
            let far = self
                .dp
                .feature_tables
                .get::<ipip::Table>()
                .load()
                .get(i.sw_if_index)
                .map(|t| t.dst);
            if far.is_some_and(|d| d != peer.ip()) {
                log::warn!(
                    "ikev2: profile {profile}: child {spi:08x}: the peer moved to another address ({peer}); ESP stays on the tunnel's"
                );
                continue;
            }
            for id in [i.sa_out, i.sa_in] {
                if let Err(e) = ipsec::sa_set_udp_dst_port(self.dp, id, peer.port()) {
                    log::warn!("ikev2: profile {profile}: child {spi:08x}: {e}");
                }
            }
        }
    }
}

/// What an engine needs of a profile: (profile, local address, FIB for its datagrams), or
/// what is missing.
fn engine_profile(dp: &Dataplane, p: &ProfileConf) -> Result<(Profile, Ipv4Addr, u32), String> {
    let tunnel = p.tun_itf.and_then(|sw| {
        dp.feature_tables
            .get::<ipip::Table>()
            .load()
            .get(sw)
            .copied()
    });
    let v4 = |a: IpAddr| match a {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    };
    let auth = p
        .auth
        .as_ref()
        .ok_or("no authentication (ikev2_profile_set_auth)")?;
    let local_id = p
        .local_id
        .as_ref()
        .ok_or("no local id (ikev2_profile_set_id)")?;
    // The peer: the responder we were given, else the tunnel's far end, else the remote id.
    let peer = p
        .responder
        .and_then(|r| v4(r.1))
        .or_else(|| tunnel.and_then(|t| v4(t.dst)))
        .or_else(|| p.remote_id.as_ref().and_then(Id::ipv4))
        .ok_or("no peer address (a responder, an IPv4 tunnel or an IPv4 remote id)")?;
    let f = dp.fwd();
    let local = tunnel
        .and_then(|t| v4(t.src))
        .or_else(|| {
            p.responder
                .and_then(|r| f.ifs().ip4_source(r.0))
                .map(Ipv4Addr::from)
        })
        .or_else(|| local_id.ipv4())
        .ok_or("no local address (an IPv4 tunnel, an uplink address or an IPv4 local id)")?;
    let fib_index = tunnel.map_or(0, |t| t.encap_fib);
    let ike = match p.ike {
        Some(t) => vec![t.suite],
        None => responder_ike_suites(),
    };
    let esp = match p.esp {
        Some(t) => vec![t.suite],
        None => data_path_esp_suites(),
    };
    let any = TrafficSelector::ipv4_any();
    Ok((
        Profile {
            name: p.name.clone(),
            peer: SocketAddr::new(peer.into(), ike::IKE_PORT),
            psk: auth.data.clone(),
            local_id: local_id.identity(),
            remote_id: p.remote_id.as_ref().map(Id::identity),
            ike,
            esp,
            ts_local: p.ts_local.map_or(any.clone(), |t| t.selector()),
            ts_remote: p.ts_remote.map_or(any, |t| t.selector()),
            child_rekey_after: None,
            ike_rekey_after: None,
        },
        local,
        fib_index,
    ))
}

/// A profile without `ikev2_set_ike_transforms` (calico's responder) accepts calico's suite
/// and the common strongSwan ones, as VPP's responder accepts any suite it implements.
fn responder_ike_suites() -> Vec<IkeSuite> {
    let suite = |encr, prf, integ, dh| IkeSuite {
        encr,
        prf,
        integ,
        dh,
    };
    let mut v = vec![IkeSuite::CALICO];
    for dh in [DhGroup::Modp2048, DhGroup::Ecp256, DhGroup::Curve25519] {
        for bits in [256, 128] {
            v.push(suite(
                Encr::AesCbc { bits },
                Prf::HmacSha256,
                Some(Integ::HmacSha256_128),
                dh,
            ));
            v.push(suite(
                Encr::AesCbc { bits },
                Prf::HmacSha1,
                Some(Integ::HmacSha1_96),
                dh,
            ));
            v.push(suite(Encr::AesGcm16 { bits }, Prf::HmacSha256, None, dh));
        }
    }
    v.dedup();
    v
}

/// What the ESP data path can install: AES-GCM-16, 256 or 128, no ESN.
fn data_path_esp_suites() -> Vec<EspSuite> {
    [256, 128]
        .map(|bits| EspSuite {
            encr: Encr::AesGcm16 { bits },
            integ: None,
            esn: false,
            pfs: None,
        })
        .to_vec()
}

/// Push profile `name` to the engine of its local address (or take it out while incomplete).
fn apply(dp: &Dataplane, st: &mut Ikev2, name: &str) {
    let want = st
        .profiles
        .get(name)
        .map(|p| engine_profile(dp, p))
        .and_then(Result::ok);
    let now = Instant::now();
    let old = st.applied.get(name).copied();
    if let Some(local) = old {
        if want.as_ref().is_none_or(|w| w.1 != local) {
            if let Some(s) = st.engines.get_mut(&local) {
                s.engine.remove_profile(name);
            }
            st.applied.remove(name);
        }
    }
    if let Some((profile, local, fib_index)) = want {
        let s = st.engines.entry(local).or_insert_with(|| Slot {
            engine: Engine::new(
                Config::default(),
                SocketAddr::new(local.into(), ike::IKE_PORT),
            ),
            fib_index,
        });
        s.fib_index = fib_index;
        s.engine.add_profile(profile);
        st.applied.insert(name.to_string(), local);
    }
    drain(dp, st, now);
}
