//! The cnat API module on the dataplane's one `Cnat` (translations, SNAT, sessions) and the
//! interfaces' cnat features (`nodes::cnat::feature_enable`). Thin translation: the rules live
//! in `rvpp_dataplane::cnat`, and SNAT's checks in `service::cnat`, which the CLI shares.

use super::convert::{self, rv, NONE};
use super::handlers::State;
use crate::service::cnat as snat;
use rvpp_dataplane::cnat::snat::{IfTable, Policy};
use rvpp_dataplane::cnat::translation::{Endpoint, LbType, PathEp, Translation};
use rvpp_dataplane::nodes::cnat as cnat_nodes;
use rvpp_vppapi::defs as d;
use rvpp_vppapi::transport::{Response, Router};

const V4_MAPPED: u128 = 0xffff_0000_0000;

fn addr_in(a: &d::Address) -> (u128, bool) {
    if convert::is_ip6(a.af) {
        (u128::from_be_bytes(a.un.0), true)
    } else {
        let b = a.un.0;
        (
            V4_MAPPED | u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as u128,
            false,
        )
    }
}

fn addr_out(a: u128, ip6: bool) -> d::Address {
    let ip = if ip6 {
        std::net::IpAddr::V6(a.into())
    } else {
        std::net::IpAddr::V4((a as u32).into())
    };
    convert::ip_addr(ip)
}

fn ep_out(e: &Endpoint) -> d::CnatEndpoint {
    d::CnatEndpoint {
        addr: addr_out(e.addr, e.ip6),
        sw_if_index: d::InterfaceIndex(NONE),
        if_af: if e.ip6 {
            d::AddressFamily::ADDRESS_IP6
        } else {
            d::AddressFamily::ADDRESS_IP4
        },
        port: e.port,
    }
}

fn ep_in(e: &d::CnatEndpoint) -> Endpoint {
    let (addr, ip6) = addr_in(&e.addr);
    Endpoint {
        addr,
        port: e.port,
        ip6,
    }
}

/// A translation from the API, or the retval refusing it.
pub fn translation_in(t: &d::CnatTranslation) -> Result<Translation, i32> {
    let proto = t.ip_proto.0;
    if !matches!(proto, 6 | 17 | 132) {
        return Err(rv::INVALID_VALUE);
    }
    let vip = ep_in(&t.vip);
    if t.vip.sw_if_index.0 != NONE {
        // A VIP taken from an interface's address: rvpp resolves no interface addresses here.
        return Err(rv::UNIMPLEMENTED);
    }
    let lb = match t.lb_type.0 {
        0 => LbType::Default,
        1 => LbType::Maglev,
        _ => return Err(rv::INVALID_VALUE),
    };
    let mut paths = Vec::with_capacity(t.paths.len());
    for p in &t.paths {
        let (src, dst) = (ep_in(&p.src_ep), ep_in(&p.dst_ep));
        // A path of the other family could never be used: refuse it.
        if dst.ip6 != vip.ip6 || (src.is_set() && src.ip6 != vip.ip6) {
            return Err(rv::INVALID_VALUE);
        }
        paths.push(PathEp {
            src,
            dst,
            flags: p.flags,
        });
    }
    Ok(Translation {
        id: 0,
        vip,
        proto,
        is_real_ip: t.is_real_ip != 0,
        flags: t.flags,
        lb,
        flow_hash_config: t.flow_hash_config.0,
        paths,
        ..Default::default()
    })
}

/// The API's view of a translation (`cnat_translation_details`).
pub fn translation_out(t: &Translation) -> d::CnatTranslation {
    d::CnatTranslation {
        vip: ep_out(&t.vip),
        id: t.id,
        ip_proto: d::IpProto(t.proto),
        is_real_ip: t.is_real_ip as u8,
        flags: t.flags,
        lb_type: d::CnatLbType(match t.lb {
            LbType::Default => 0,
            LbType::Maglev => 1,
        }),
        n_paths: 0,
        flow_hash_config: d::IpFlowHashConfigV2(t.flow_hash_config),
        paths: t
            .paths
            .iter()
            .map(|p| d::CnatEndpointTuple {
                dst_ep: ep_out(&p.dst),
                src_ep: ep_out(&p.src),
                flags: p.flags,
            })
            .collect(),
    }
}

pub fn register(r: &mut Router<State>) {
    r.on(|s: &mut State, m: d::CnatTranslationUpdate, _c| {
        let (rv, id) = match translation_in(&m.translation) {
            Ok(t) => (0, s.dp.cnat().translation_update(t)),
            Err(e) => (e, NONE),
        };
        Response::reply(d::CnatTranslationUpdateReply {
            context: 0,
            retval: rv,
            id,
        })
    });
    r.on(|s: &mut State, m: d::CnatTranslationDel, _c| {
        let rv = if s.dp.cnat().translation_del(m.id) {
            0
        } else {
            rv::NO_SUCH_ENTRY
        };
        reply!(CnatTranslationDelReply, rv)
    });
    r.on(|s: &mut State, _m: d::CnatTranslationDump, _c| {
        let t = s.dp.cnat().translations.load();
        let mut v: Vec<&Translation> = t.iter().collect();
        v.sort_by_key(|t| t.id);
        let out: Vec<d::CnatTranslationDetails> = v
            .into_iter()
            .map(|t| d::CnatTranslationDetails {
                context: 0,
                translation: translation_out(t),
            })
            .collect();
        Response::stream(out)
    });
    r.on(|s: &mut State, _m: d::CnatSessionDump, _c| {
        let mut out = Vec::new();
        s.dp.cnat().sessions.for_each(|slot, k, x| {
            out.push(d::CnatSessionDetails {
                context: 0,
                session: d::CnatSession {
                    tuple: d::Cnat5tuple {
                        addr: [addr_out(k.src, k.ip6), addr_out(k.dst, k.ip6)],
                        port: [k.sport, k.dport],
                        ip_proto: d::IpProto(k.proto),
                    },
                    ts_index: slot as u32,
                    flags: x.flags as u32,
                },
            })
        });
        Response::stream(out)
    });
    r.on(|s: &mut State, _m: d::CnatGetSnatAddresses, _c| {
        let c = s.dp.cnat().snat.load();
        Response::reply(d::CnatGetSnatAddressesReply {
            context: 0,
            retval: 0,
            id: 0,
            snat_ip4: d::Ip4Address((c.ip4 as u32).to_be_bytes()),
            snat_ip6: d::Ip6Address(c.ip6.to_be_bytes()),
            sw_if_index: d::InterfaceIndex(c.sw_if_index),
        })
    });
    r.on(|s: &mut State, _m: d::CnatSessionPurge, _c| {
        s.dp.cnat().purge();
        // npol's verdicts are per session too (issue 14: a purge re-evaluates every flow).
        s.dp.npol().flush_flows();
        reply!(CnatSessionPurgeReply, 0)
    });
    r.on(|s: &mut State, m: d::CnatSetSnatAddressesV2, _c| {
        let ip4 = V4_MAPPED | u32::from_be_bytes(m.snat_ip4.0) as u128;
        let a = snat::SnatAddresses {
            ip4: if ip4 == V4_MAPPED { 0 } else { ip4 },
            ip6: u128::from_be_bytes(m.snat_ip6.0),
            sw_if_index: m.sw_if_index.0,
            fwd_fib_index: m.fwd_fib_index,
            ret_fib_index: m.ret_fib_index,
            flags: m.flags.0,
        };
        let rv = convert::svc_retval(snat::set_addresses(&s.dp, a));
        reply!(CnatSetSnatAddressesV2Reply, rv)
    });
    r.on(|s: &mut State, m: d::CnatSnatPolicyAddDelExcludePfx, _c| {
        let (a, ip6) = addr_in(&m.prefix.address);
        let rv = if !ip6 && m.prefix.len > 32 {
            rv::INVALID_VALUE
        } else {
            let len = if ip6 { m.prefix.len } else { m.prefix.len + 96 };
            convert::svc_retval(snat::exclude(&s.dp, a, len, m.is_add != 0))
        };
        reply!(CnatSnatPolicyAddDelExcludePfxReply, rv)
    });
    r.on(|s: &mut State, m: d::CnatSnatPolicyAddDelIf, _c| {
        let rv = match IfTable::from_u8(m.table.0) {
            None => rv::INVALID_VALUE,
            Some(t) => {
                convert::svc_retval(snat::interface(&s.dp, m.sw_if_index.0, t, m.is_add != 0))
            }
        };
        reply!(CnatSnatPolicyAddDelIfReply, rv)
    });
    r.on(|s: &mut State, m: d::CnatSetSnatPolicy, _c| {
        let p = match m.policy.0 {
            0 => Policy::None,
            1 => Policy::IfPfx,
            2 => Policy::K8s,
            3 => Policy::Dnat,
            _ => return reply!(CnatSetSnatPolicyReply, rv::INVALID_VALUE),
        };
        snat::set_policy(&s.dp, p);
        reply!(CnatSetSnatPolicyReply, 0)
    });
    r.on(|s: &mut State, m: d::FeatureCnatEnableDisable, _c| {
        let r = cnat_nodes::feature_enable(&mut s.dp.fwd(), m.sw_if_index.0, m.enable_disable);
        let rv = convert::retval(r);
        reply!(FeatureCnatEnableDisableReply, rv)
    });
}
