//! IPsec SAs and tunnel protection: the one owner of `rvpp_dataplane::ipsec::Table`, which the
//! ESP nodes read. The binary API (`ipsec_sad_entry_add_del_v3`, `ipsec_tunnel_protect_*`,
//! `ipsec_itf_*`), the CLI (`show ipsec ...`, `ipsec sa add`, `ipsec tunnel protect`) and the
//! IKEv2 engine ([`child_sa_install`] / [`child_sa_remove`]) all come here. Every edit is made
//! on a copy and published whole under the forwarding lock (which orders it against tunnel
//! creation and deletion); SAs are shared by `Arc`, so sequence numbers and replay windows
//! carry across publishes.

use super::tunnel::{TunnelIf, TunnelKind};
use super::{rv, SvcError, SvcResult};
use crate::daemon::Dataplane;
use rvpp_dataplane::forwarding::{Af, Forwarding};
use rvpp_dataplane::ipsec::{
    self, IpsecTable, Outer, Protect, Sa, SaConfig, SaState, SaTunnel, MAX_SA_IN,
};
use rvpp_dataplane::nodes::{esp, ipip};
use std::net::IpAddr;
use std::sync::Arc;

pub use rvpp_dataplane::ipsec::{CryptoAlg, IntegAlg};

/// An SA to add: [`SaConfig`] with the tunnel's table named by its VPP table id (the service
/// resolves it to the FIB index).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaRequest {
    pub id: u32,
    pub spi: u32,
    pub alg: CryptoAlg,
    pub key: Vec<u8>,
    /// With AES-CBC (`None` with AES-GCM).
    pub integ: IntegAlg,
    pub integ_key: Vec<u8>,
    pub salt: u32,
    pub esn: bool,
    pub anti_replay: bool,
    pub inbound: bool,
    /// NAT-T: UDP (source, destination) ports of what the SA sends (IPv4 outer only).
    pub udp_encap: Option<(u16, u16)>,
    /// Tunnel mode endpoints (needed when the SA protects an `ipsecN` interface; an `ipipN`
    /// interface's own endpoints are used otherwise) and the outer packets' table id.
    pub tunnel: Option<(IpAddr, IpAddr, u32)>,
}

/// One negotiated child SA pair, as the IKEv2 engine installs it on a tunnel interface. The
/// SA ids are the engine's (unique among all SAs); `inbound.spi` is the SPI we chose and the
/// peer sends with, `outbound.spi` the peer's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildSa {
    pub inbound: SaRequest,
    pub outbound: SaRequest,
}

/// A protection as the front ends show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtectInfo {
    pub sw_if_index: u32,
    pub sa_out: u32,
    pub sa_in: Vec<u32>,
    pub outer: Outer,
}

const ITF: TunnelKind = TunnelKind {
    prefix: "ipsec",
    dev_type: "ipsec",
    encap: esp::FEATURES,
};

fn table(dp: &Dataplane) -> Arc<ipsec::Table> {
    dp.feature_tables.get::<ipsec::Table>()
}

fn err(rv: i32, m: impl Into<String>) -> SvcError {
    SvcError::new(rv, m)
}

fn make_sa(f: &Forwarding, r: SaRequest) -> SvcResult<Sa> {
    if r.spi == 0 {
        return Err(err(rv::INVALID_VALUE, "SPI 0 is reserved"));
    }
    let tunnel = match r.tunnel {
        None => None,
        Some((src, dst, table_id)) => {
            if src.is_ipv4() != dst.is_ipv4() || src.is_unspecified() || dst.is_unspecified() {
                return Err(err(
                    rv::INVALID_VALUE,
                    "tunnel source and destination must be two unicast addresses of one family",
                ));
            }
            let encap_fib = f
                .fib_index(Af::of(&src), table_id)
                .ok_or_else(|| err(rv::NO_SUCH_FIB, format!("no table {table_id}")))?;
            Some(SaTunnel {
                src,
                dst,
                encap_fib,
                table_id,
            })
        }
    };
    if r.udp_encap.is_some() && tunnel.is_some_and(|t| t.src.is_ipv6()) {
        return Err(err(
            rv::UNIMPLEMENTED,
            "UDP encapsulation over IPv6 is not supported",
        ));
    }
    Sa::new(SaConfig {
        id: r.id,
        spi: r.spi,
        alg: r.alg,
        key: r.key,
        integ: r.integ,
        integ_key: r.integ_key,
        salt: r.salt,
        esn: r.esn,
        anti_replay: r.anti_replay,
        inbound: r.inbound,
        udp_encap: r.udp_encap,
        tunnel,
    })
    .map_err(|e| err(rv::INVALID_VALUE, e.to_string()))
}

/// Add an SA. Its id must be new.
pub fn sa_add(dp: &Dataplane, r: SaRequest) -> SvcResult<()> {
    let t = table(dp);
    let f = dp.fwd();
    let cur = t.load();
    if cur.sa(r.id).is_some() {
        return Err(err(rv::ENTRY_ALREADY_EXISTS, format!("SA {} exists", r.id)));
    }
    let sa = make_sa(&f, r)?;
    let mut next = (*cur).clone();
    next.insert_sa(Arc::new(sa));
    t.publish(next);
    Ok(())
}

/// Delete an SA; refused while a protection names it.
pub fn sa_del(dp: &Dataplane, id: u32) -> SvcResult<()> {
    let t = table(dp);
    let _f = dp.fwd();
    let cur = t.load();
    if cur.sa(id).is_none() {
        return Err(err(rv::NO_SUCH_ENTRY, format!("no SA {id}")));
    }
    if let Some(sw) = cur.users(id).next() {
        return Err(err(
            rv::RSRC_IN_USE,
            format!("SA {id} protects sw_if_index {sw}; remove the protection first"),
        ));
    }
    let mut next = (*cur).clone();
    next.remove_sa(id);
    t.publish(next);
    Ok(())
}

/// Every SA, by id.
pub fn sas(dp: &Dataplane) -> Vec<Arc<Sa>> {
    table(dp).load().sas().cloned().collect()
}

/// The outer endpoints of interface `sw` protected by `out`: an ipip tunnel's own, else (an
/// `ipsecN` interface) the SA's tunnel.
fn outer_of(dp: &Dataplane, f: &Forwarding, sw: u32, out: &Sa) -> SvcResult<Outer> {
    let i = f.iface(sw)?;
    if let Some(t) = dp.feature_tables.get::<ipip::Table>().load().get(sw) {
        if out.cfg.udp_encap.is_some() && t.src.is_ipv6() {
            return Err(err(
                rv::UNIMPLEMENTED,
                "UDP encapsulation over IPv6 is not supported",
            ));
        }
        return Ok(Outer {
            src: t.src,
            dst: t.dst,
            encap_fib: t.encap_fib,
        });
    }
    if i.dev_type != ITF.dev_type {
        return Err(err(
            rv::INVALID_INTERFACE,
            format!("{} is not an ipip or ipsec interface", i.name),
        ));
    }
    let t = out.cfg.tunnel.ok_or_else(|| {
        err(
            rv::INVALID_VALUE,
            format!(
                "SA {} is not a tunnel-mode SA, which {} needs",
                out.cfg.id, i.name
            ),
        )
    })?;
    Ok(Outer {
        src: t.src,
        dst: t.dst,
        encap_fib: t.encap_fib,
    })
}

/// Set (or replace) the protection of interface `sw`: sealed with SA `sa_out`, opened with
/// any of `sa_in` (at most four). Replacing keeps the SAs' state; the ESP features are enabled
/// on the interface here.
pub fn protect_update(dp: &Dataplane, sw: u32, sa_out: u32, sa_in: &[u32]) -> SvcResult<()> {
    let t = table(dp);
    let mut f = dp.fwd();
    let next = protected(dp, &f, &t.load(), sw, sa_out, sa_in)?;
    for e in esp::FEATURES {
        f.feature_enable(sw, e.arc, e.node, true)?;
    }
    t.publish(next);
    Ok(())
}

/// `cur` with interface `sw` protected by `sa_out` and `sa_in`, checked.
fn protected(
    dp: &Dataplane,
    f: &Forwarding,
    cur: &IpsecTable,
    sw: u32,
    sa_out: u32,
    sa_in: &[u32],
) -> SvcResult<IpsecTable> {
    if sa_in.len() > MAX_SA_IN {
        return Err(err(
            rv::INVALID_VALUE,
            format!("at most {MAX_SA_IN} inbound SAs per interface"),
        ));
    }
    let out = cur
        .sa(sa_out)
        .ok_or_else(|| err(rv::NO_SUCH_ENTRY, format!("no SA {sa_out}")))?
        .clone();
    for id in sa_in {
        let sa = cur
            .sa(*id)
            .ok_or_else(|| err(rv::NO_SUCH_ENTRY, format!("no SA {id}")))?;
        if let Some(i) = cur.inbound(sa.cfg.spi) {
            if i.sw_if_index != sw {
                return Err(err(
                    rv::ENTRY_ALREADY_EXISTS,
                    format!(
                        "SPI {:#x} is already accepted on sw_if_index {}",
                        sa.cfg.spi, i.sw_if_index
                    ),
                ));
            }
        }
    }
    let outer = outer_of(dp, f, sw, &out)?;
    let mut next = cur.clone();
    next.set_protect(Protect {
        sw_if_index: sw,
        out,
        sa_in: sa_in.to_vec(),
        outer,
    });
    Ok(next)
}

/// Remove the protection of `sw` (its SAs stay).
pub fn protect_del(dp: &Dataplane, sw: u32) -> SvcResult<()> {
    let t = table(dp);
    let mut f = dp.fwd();
    let cur = t.load();
    if cur.protect(sw).is_none() {
        return Err(err(
            rv::NO_SUCH_ENTRY,
            format!("sw_if_index {sw} is not protected"),
        ));
    }
    let mut next = (*cur).clone();
    next.remove_protect(sw);
    // Unprotected, an ipip tunnel sends plain IPIP again; an ipsec interface drops (no SA).
    if dp
        .feature_tables
        .get::<ipip::Table>()
        .load()
        .get(sw)
        .is_some()
    {
        for e in esp::FEATURES {
            f.feature_enable(sw, e.arc, e.node, false)?;
        }
    }
    t.publish(next);
    Ok(())
}

/// Every protection, by sw_if_index; `only` limits it to one interface.
pub fn protections(dp: &Dataplane, only: Option<u32>) -> Vec<ProtectInfo> {
    table(dp)
        .load()
        .protections()
        .filter(|p| only.is_none_or(|s| s == p.sw_if_index))
        .map(|p| ProtectInfo {
            sw_if_index: p.sw_if_index,
            sa_out: p.out.cfg.id,
            sa_in: p.sa_in.clone(),
            outer: p.outer,
        })
        .collect()
}

/// Install a negotiated child SA pair on tunnel interface `sw`, make-before-break: both SAs
/// are added, the inbound one is accepted beside those already there (the oldest goes when
/// four are), and only then (a second publish) does the outbound switch to the new SA. The
/// old SAs stay until [`child_sa_remove`]: packets the peer sent under them still land.
pub fn child_sa_install(dp: &Dataplane, sw: u32, c: ChildSa) -> SvcResult<()> {
    child_sa_add(dp, sw, c, true)
}

/// As [`child_sa_install`], but the outbound SA stays the current one (when the interface has
/// one): for a rekey the peer started, whose new inbound SA the peer may not have yet.
/// [`child_sa_send_with`] switches once the peer is known to have it.
pub fn child_sa_accept(dp: &Dataplane, sw: u32, c: ChildSa) -> SvcResult<()> {
    child_sa_add(dp, sw, c, false)
}

/// The peer of NAT-T SA `id` is now at UDP `port` (IKE saw its NAT remap it): the SA sends
/// there from its next packet, keeping its sequence numbers.
pub fn sa_set_udp_dst_port(dp: &Dataplane, id: u32, port: u16) -> SvcResult<()> {
    let cur = table(dp).load();
    let sa = cur
        .sa(id)
        .ok_or_else(|| err(rv::NO_SUCH_ENTRY, format!("no SA {id}")))?;
    if !sa.set_udp_dst_port(port) {
        return Err(err(
            rv::INVALID_VALUE,
            format!("SA {id} has no UDP encapsulation"),
        ));
    }
    Ok(())
}

/// Send with SA `out_id` (already added, e.g. by [`child_sa_accept`]) on protected `sw`.
pub fn child_sa_send_with(dp: &Dataplane, sw: u32, out_id: u32) -> SvcResult<()> {
    let t = table(dp);
    let f = dp.fwd();
    let cur = t.load();
    let ins = cur
        .protect(sw)
        .ok_or_else(|| {
            err(
                rv::NO_SUCH_ENTRY,
                format!("sw_if_index {sw} is not protected"),
            )
        })?
        .sa_in
        .clone();
    let next = protected(dp, &f, &cur, sw, out_id, &ins)?;
    t.publish(next);
    Ok(())
}

fn child_sa_add(dp: &Dataplane, sw: u32, c: ChildSa, switch: bool) -> SvcResult<()> {
    let t = table(dp);
    let mut f = dp.fwd();
    let cur = t.load();
    let (in_id, out_id) = (c.inbound.id, c.outbound.id);
    if in_id == out_id {
        return Err(err(
            rv::INVALID_VALUE,
            "inbound and outbound SA ids are the same",
        ));
    }
    for id in [in_id, out_id] {
        if cur.sa(id).is_some() {
            return Err(err(rv::ENTRY_ALREADY_EXISTS, format!("SA {id} exists")));
        }
    }
    let (mut inbound, outbound) = (c.inbound, c.outbound);
    inbound.inbound = true;
    let sa_in = Arc::new(make_sa(&f, inbound)?);
    let sa_out = Arc::new(make_sa(&f, outbound)?);
    let mut staged = (*cur).clone();
    staged.insert_sa(sa_in);
    staged.insert_sa(sa_out);
    let (old_out, mut ins) = match cur.protect(sw) {
        Some(p) => (p.out.cfg.id, p.sa_in.clone()),
        None => (out_id, Vec::new()),
    };
    ins.push(in_id);
    if ins.len() > MAX_SA_IN {
        ins.remove(0);
    }
    // Step 1: the new inbound SA is accepted; we still send with the old outbound SA.
    let accepting = protected(dp, &f, &staged, sw, old_out, &ins)?;
    // Step 2, checked before step 1 is published so that a refusal changes nothing.
    let switched = protected(dp, &f, &accepting, sw, out_id, &ins)?;
    for e in esp::FEATURES {
        f.feature_enable(sw, e.arc, e.node, true)?;
    }
    t.publish(accepting);
    if switch {
        t.publish(switched);
    }
    Ok(())
}

/// Remove a child SA pair (after a rekey, or when the IKE SA goes): the inbound SA stops being
/// accepted on `sw`; when the outbound one is the protection's, the protection goes too. Then
/// both SAs are deleted. An id that does not exist is ignored (the pair may be half there).
pub fn child_sa_remove(
    dp: &Dataplane,
    sw: u32,
    inbound_id: u32,
    outbound_id: u32,
) -> SvcResult<()> {
    let t = table(dp);
    let mut f = dp.fwd();
    let cur = t.load();
    let mut next = (*cur).clone();
    if let Some(p) = cur.protect(sw) {
        if p.out.cfg.id == outbound_id {
            next.remove_protect(sw);
            if dp
                .feature_tables
                .get::<ipip::Table>()
                .load()
                .get(sw)
                .is_some()
            {
                for e in esp::FEATURES {
                    f.feature_enable(sw, e.arc, e.node, false)?;
                }
            }
        } else {
            let mut p = p.clone();
            p.sa_in.retain(|&id| id != inbound_id);
            next.set_protect(p);
        }
    }
    for id in [inbound_id, outbound_id] {
        if next.users(id).next().is_none() {
            next.remove_sa(id);
        }
    }
    t.publish(next);
    Ok(())
}

/// Create interface `ipsec<N>` (VPP's route-based IPsec interface): point to point, no MAC,
/// ESP encrypt on both output arcs; it sends once protected by a tunnel-mode SA.
pub fn itf_create(dp: &Dataplane, instance: Option<u32>) -> SvcResult<(u32, String)> {
    let r = {
        let mut f = dp.fwd();
        let instance = ITF.instance(&f, instance)?;
        ITF.add_interface(
            &mut f,
            instance,
            TunnelIf {
                mac: [0; 6],
                ethernet: false,
                mtu: 1500 - 20 - 8 - 8 - 16 - 4,
                admin_up: false,
            },
        )?
    };
    dp.svc.changed();
    Ok(r)
}

/// Delete an `ipsecN` interface (its protection goes with it).
pub fn itf_delete(dp: &Dataplane, sw: u32) -> SvcResult<()> {
    let mut f = dp.fwd();
    match f.iface(sw) {
        Ok(i) if i.dev_type == ITF.dev_type => {}
        _ => {
            return Err(err(
                rv::INVALID_SW_IF_INDEX,
                format!("sw_if_index {sw} is not an ipsec interface"),
            ))
        }
    }
    drop_protection(dp, sw);
    f.interface_del(sw)?;
    drop(f);
    super::interface_gone(dp, sw);
    dp.svc.changed();
    Ok(())
}

fn drop_protection(dp: &Dataplane, sw: u32) {
    let t = table(dp);
    let cur = t.load();
    if cur.protect(sw).is_some() {
        let mut next = (*cur).clone();
        next.remove_protect(sw);
        t.publish(next);
    }
}

/// Interface `sw` was deleted: its protection goes (the SAs stay, as in VPP).
pub fn interface_gone(dp: &Dataplane, sw: u32) {
    drop_protection(dp, sw);
}

// ---------------------------------------------------------------------------------------------
// Live restart (`super::snapshot`)

/// The request that makes an SA like `c` (its tunnel's table by id).
pub fn request_of(c: &SaConfig) -> SaRequest {
    SaRequest {
        id: c.id,
        spi: c.spi,
        alg: c.alg,
        key: c.key.clone(),
        integ: c.integ,
        integ_key: c.integ_key.clone(),
        salt: c.salt,
        esn: c.esn,
        anti_replay: c.anti_replay,
        inbound: c.inbound,
        udp_encap: c.udp_encap,
        tunnel: c.tunnel.map(|t| (t.src, t.dst, t.table_id)),
    }
}

/// A live restart's SA: added as [`sa_add`] adds it, then numbering on from `st`.
pub fn sa_restore(dp: &Dataplane, r: SaRequest, st: &SaState) -> SvcResult<()> {
    let id = r.id;
    sa_add(dp, r)?;
    if let Some(sa) = table(dp).load().sa(id) {
        sa.resume(st);
    }
    Ok(())
}

/// Interface `sw` is an `ipsecN` interface.
pub fn is_itf(f: &Forwarding, sw: u32) -> bool {
    f.iface(sw).is_ok_and(|i| i.dev_type == ITF.dev_type)
}

/// A live restart's `ipsecN` interface, rebuilt already under its index: its features on as
/// [`itf_create`] puts them.
pub fn itf_restore(f: &mut Forwarding, sw: u32, instance: u32) -> SvcResult<()> {
    ITF.adopt_interface(f, sw, instance)
}

/// For a live restart, when the next process is about to poll the devices: by SA id, the last
/// outbound sequence number this process keeps ([`Sa::hand_over`]) and the numbering as it
/// stands (its replay window the freshest); [`take_back`] undoes it.
pub fn hand_over_seqs(dp: &Dataplane) -> Vec<(u32, u64, SaState)> {
    sas(dp)
        .iter()
        .map(|sa| {
            let last = sa.hand_over();
            (sa.cfg.id, last, sa.state())
        })
        .collect()
}

/// The next process, before it polls a device: each SA numbers from after the old one's
/// `last` and takes its replay window as it is now; how many SAs it found.
pub fn take_over_seqs(dp: &Dataplane, seqs: &[(u32, u64, SaState)]) -> usize {
    let t = table(dp).load();
    seqs.iter()
        .filter_map(|(id, last, st)| {
            let sa = t.sa(*id)?;
            sa.resume(st);
            sa.skip_to(*last);
            Some(())
        })
        .count()
}

/// The take-over failed after [`hand_over_seqs`]: this process's SAs seal on, past any number
/// the next one may have used.
pub fn take_back(dp: &Dataplane) {
    for sa in sas(dp) {
        sa.take_back();
    }
}
