//! The IPsec SA-level messages over `service::ipsec`: `ipsec_sad_entry_add_del_v3`,
//! `ipsec_tunnel_protect_update/del/dump`, `ipsec_itf_create/delete`; and the crypto
//! placement messages, `ipsec_set_async_mode` and `crypto_sw_scheduler_set_worker`. rvpp has
//! one placement: every worker seals and opens its own packets inline, a vector at a time. A
//! request for that placement answers 0; one for another (async crypto, a worker kept out of
//! crypto) answers UNIMPLEMENTED (docs/crypto.md). Calico logs such an error and carries on.

use super::convert::{self, addr_ip, rv, NONE};
use super::devices::{created, deleted};
use super::handlers::State;
use crate::service::ipsec::{self, CryptoAlg, IntegAlg, SaRequest};
use rvpp_vppapi::defs as d;
use rvpp_vppapi::transport::{Response, Router};

const FLAG_ESN: u32 = 1;
const FLAG_ANTI_REPLAY: u32 = 2;
const FLAG_IS_TUNNEL: u32 = 4;
const FLAG_IS_TUNNEL_V6: u32 = 8;
const FLAG_UDP_ENCAP: u32 = 16;
const FLAG_IS_INBOUND: u32 = 64;
const FLAGS_KNOWN: u32 = FLAG_ESN
    | FLAG_ANTI_REPLAY
    | FLAG_IS_TUNNEL
    | FLAG_IS_TUNNEL_V6
    | FLAG_UDP_ENCAP
    | FLAG_IS_INBOUND
    | 128;

/// The request an `ipsec_sad_entry_v3` describes, or VPP's retval for what rvpp lacks.
fn sa_request(e: &d::IpsecSadEntryV3) -> Result<SaRequest, i32> {
    if e.protocol != d::IpsecProto::IPSEC_API_PROTO_ESP {
        log::warn!("api: ipsec_sad_entry_add_del_v3: only ESP is implemented (not AH)");
        return Err(rv::UNIMPLEMENTED);
    }
    let Some(alg) = CryptoAlg::from_vpp(e.crypto_algorithm.0) else {
        log::warn!(
            "api: ipsec_sad_entry_add_del_v3: crypto algorithm {} is not implemented (AES-CBC-128/192/256, AES-GCM-128/256 are)",
            e.crypto_algorithm.0
        );
        return Err(rv::UNIMPLEMENTED);
    };
    let Some(integ) = IntegAlg::from_vpp(e.integrity_algorithm.0) else {
        log::warn!(
            "api: ipsec_sad_entry_add_del_v3: integrity algorithm {} is not implemented (SHA1-96, SHA-256-96, SHA-256-128 are)",
            e.integrity_algorithm.0
        );
        return Err(rv::UNIMPLEMENTED);
    };
    let flags = e.flags.0;
    if flags & !FLAGS_KNOWN != 0 {
        return Err(rv::INVALID_VALUE);
    }
    let len = (e.crypto_key.length as usize).min(e.crypto_key.data.len());
    let integ_len = (e.integrity_key.length as usize).min(e.integrity_key.data.len());
    let tunnel = (flags & FLAG_IS_TUNNEL != 0 || flags & FLAG_IS_TUNNEL_V6 != 0).then(|| {
        (
            addr_ip(&e.tunnel.src),
            addr_ip(&e.tunnel.dst),
            e.tunnel.table_id,
        )
    });
    Ok(SaRequest {
        id: e.sad_id,
        spi: e.spi,
        alg,
        key: e.crypto_key.data[..len].to_vec(),
        integ,
        integ_key: e.integrity_key.data[..integ_len].to_vec(),
        salt: e.salt,
        esn: flags & FLAG_ESN != 0,
        anti_replay: flags & FLAG_ANTI_REPLAY != 0,
        inbound: flags & FLAG_IS_INBOUND != 0,
        udp_encap: (flags & FLAG_UDP_ENCAP != 0).then_some((e.udp_src_port, e.udp_dst_port)),
        tunnel,
    })
}

fn sad_add_del(s: &State, m: &d::IpsecSadEntryAddDelV3) -> i32 {
    let r = if m.is_add {
        match sa_request(&m.entry) {
            Ok(req) => ipsec::sa_add(&s.dp, req),
            Err(rv) => return rv,
        }
    } else {
        ipsec::sa_del(&s.dp, m.entry.sad_id)
    };
    if let Err(e) = &r {
        log::warn!("api: ipsec_sad_entry_add_del_v3: {e}");
    }
    convert::svc_retval(r)
}

fn protect_update(s: &State, t: &d::IpsecTunnelProtect) -> i32 {
    if !addr_ip(&t.nh).is_unspecified() {
        log::warn!(
            "api: ipsec_tunnel_protect_update: a next hop (multipoint tunnels) is not implemented"
        );
        return rv::UNIMPLEMENTED;
    }
    let r = ipsec::protect_update(&s.dp, t.sw_if_index.0, t.sa_out, &t.sa_in);
    if let Err(e) = &r {
        log::warn!("api: ipsec_tunnel_protect_update: {e}");
    }
    convert::svc_retval(r)
}

fn protect_dump(s: &State, sw: u32) -> Vec<d::IpsecTunnelProtectDetails> {
    let only = (sw != NONE).then_some(sw);
    ipsec::protections(&s.dp, only)
        .into_iter()
        .map(|p| d::IpsecTunnelProtectDetails {
            context: 0,
            tun: d::IpsecTunnelProtect {
                sw_if_index: d::InterfaceIndex(p.sw_if_index),
                nh: convert::ip_addr(std::net::Ipv4Addr::UNSPECIFIED.into()),
                sa_out: p.sa_out,
                n_sa_in: p.sa_in.len() as u8,
                sa_in: p.sa_in,
            },
        })
        .collect()
}

/// crypto_sw_scheduler_set_worker: every worker already does its own crypto; a valid worker
/// index is accepted, another is -7 as in VPP.
fn set_worker(s: &State, m: &d::CryptoSwSchedulerSetWorker) -> i32 {
    let workers = s.dp.workers.len().max(1);
    if m.worker_index as usize >= workers {
        return rv::INVALID_VALUE;
    }
    if m.crypto_enable {
        return 0;
    }
    log::warn!(
        "api: crypto_sw_scheduler_set_worker {} off: unimplemented, every worker seals and opens its own packets",
        m.worker_index
    );
    rv::UNIMPLEMENTED
}

/// Async crypto would hand a vector's crypto to other threads; rvpp has no such threads.
fn set_async_mode(m: &d::IpsecSetAsyncMode) -> i32 {
    if !m.async_enable {
        return 0;
    }
    log::warn!("api: ipsec_set_async_mode 1: unimplemented, crypto runs inline on each worker");
    rv::UNIMPLEMENTED
}

pub(super) fn register(r: &mut Router<State>) {
    r.on(|s: &mut State, m: d::IpsecSadEntryAddDelV3, _c| {
        Response::reply(d::IpsecSadEntryAddDelV3Reply {
            context: 0,
            retval: sad_add_del(s, &m),
            stat_index: m.entry.sad_id,
        })
    });
    r.on(|s: &mut State, m: d::IpsecTunnelProtectUpdate, _c| {
        reply!(IpsecTunnelProtectUpdateReply, protect_update(s, &m.tunnel))
    });
    r.on(|s: &mut State, m: d::IpsecTunnelProtectDel, _c| {
        let r = ipsec::protect_del(&s.dp, m.sw_if_index.0);
        reply!(
            IpsecTunnelProtectDelReply,
            deleted(s, "ipsec_tunnel_protect_del", r)
        )
    });
    r.on(|s: &mut State, m: d::IpsecTunnelProtectDump, _c| {
        Response::stream(protect_dump(s, m.sw_if_index.0))
    });
    r.on(|s: &mut State, m: d::IpsecItfCreate, _c| {
        if m.itf.mode != d::TunnelMode::TUNNEL_API_MODE_P2P {
            log::warn!("api: ipsec_itf_create: only point-to-point interfaces are implemented");
            return Response::reply(d::IpsecItfCreateReply {
                context: 0,
                retval: rv::UNIMPLEMENTED,
                sw_if_index: d::InterfaceIndex(NONE),
            });
        }
        let inst = (m.itf.user_instance != NONE).then_some(m.itf.user_instance);
        let (retval, sw) = created(s, "ipsec_itf_create", ipsec::itf_create(&s.dp, inst));
        Response::reply(d::IpsecItfCreateReply {
            context: 0,
            retval,
            sw_if_index: d::InterfaceIndex(sw),
        })
    });
    r.on(|s: &mut State, m: d::IpsecItfDelete, _c| {
        let r = ipsec::itf_delete(&s.dp, m.sw_if_index.0);
        reply!(IpsecItfDeleteReply, deleted(s, "ipsec_itf_delete", r))
    });
    r.on(|_s: &mut State, m: d::IpsecSetAsyncMode, _c| {
        reply!(IpsecSetAsyncModeReply, set_async_mode(&m))
    });
    r.on(|s: &mut State, m: d::CryptoSwSchedulerSetWorker, _c| {
        reply!(CryptoSwSchedulerSetWorkerReply, set_worker(s, &m))
    });
}
