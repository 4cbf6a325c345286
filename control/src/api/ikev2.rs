//! The ikev2 messages calico sends, translated to `service::ikev2`: profiles, their
//! authentication, identities, traffic selectors, transforms, responder and tunnel interface,
//! `ikev2_initiate_sa_init` and `ikev2_profile_dump`. What rvpp cannot honour answers the
//! service's error (-9 for an algorithm or method it lacks), never a silent success.

use super::convert::{self, addr_ip};
use super::handlers::State;
use crate::service::ikev2::{self as svc, ProfileConf, Ts};
use crate::service::SvcResult;
use rvpp_vppapi::defs as d;
use rvpp_vppapi::transport::{Response, Router};

/// The retval of a service call, logged when refused.
fn done(what: &str, name: &str, r: SvcResult<()>) -> i32 {
    if let Err(e) = &r {
        log::warn!("api: {what} {name}: {e}");
    }
    convert::svc_retval(r)
}

fn profile_add_del(s: &State, m: &d::Ikev2ProfileAddDel) -> i32 {
    let r = if m.is_add {
        svc::profile_add(&s.dp, &m.name)
    } else {
        svc::profile_del(&s.dp, &m.name)
    };
    done("ikev2_profile_add_del", &m.name, r)
}

fn set_ts(s: &State, m: &d::Ikev2ProfileSetTs) -> i32 {
    let t = &m.ts;
    let r = Ts::from_range(
        t.protocol_id,
        t.start_port,
        t.end_port,
        addr_ip(&t.start_addr),
        addr_ip(&t.end_addr),
    )
    .and_then(|ts| svc::set_ts(&s.dp, &m.name, t.is_local, ts));
    done("ikev2_profile_set_ts", &m.name, r)
}

fn api_id(id: Option<&svc::Id>) -> d::Ikev2Id {
    let Some(id) = id else {
        return d::Ikev2Id::default();
    };
    // The field is a string: an IPv4 id's four bytes are not text, so it shows as a dotted
    // quad; other ids as their bytes when they are text.
    let data = match id.kind {
        ikev2::wire::id_type::IPV4_ADDR if id.data.len() == 4 => {
            std::net::Ipv4Addr::new(id.data[0], id.data[1], id.data[2], id.data[3]).to_string()
        }
        _ => String::from_utf8_lossy(&id.data).into_owned(),
    };
    d::Ikev2Id {
        type_: id.kind,
        data_len: id.data.len() as u8,
        data,
    }
}

fn api_ts(t: Option<Ts>, is_local: bool) -> d::Ikev2Ts {
    let Some(t) = t else {
        return d::Ikev2Ts {
            is_local,
            ..Default::default()
        };
    };
    d::Ikev2Ts {
        sa_index: convert::NONE,
        child_sa_index: convert::NONE,
        is_local,
        protocol_id: t.protocol,
        start_port: t.start_port,
        end_port: t.end_port,
        start_addr: convert::ip_addr(t.start.into()),
        end_addr: convert::ip_addr(t.end.into()),
    }
}

/// One profile as VPP's `ikev2_profile_details` gives it (the PSK included, as VPP does).
fn details(p: &ProfileConf) -> d::Ikev2ProfileDetails {
    let (resp_sw, resp_addr) = p
        .responder
        .unwrap_or((convert::NONE, std::net::Ipv4Addr::UNSPECIFIED.into()));
    let ike = p.ike.map_or(d::Ikev2IkeTransforms::default(), |t| {
        d::Ikev2IkeTransforms {
            crypto_alg: t.crypto_alg,
            crypto_key_size: t.key_bits,
            integ_alg: t.integ_alg,
            prf_alg: t.prf_alg,
            dh_group: t.dh_group,
        }
    });
    let esp = p.esp.map_or(d::Ikev2EspTransforms::default(), |t| {
        d::Ikev2EspTransforms {
            crypto_alg: t.crypto_alg,
            crypto_key_size: t.key_bits,
            integ_alg: t.integ_alg,
        }
    });
    let auth = p
        .auth
        .as_ref()
        .map_or(d::Ikev2Auth::default(), |a| d::Ikev2Auth {
            method: a.method,
            hex: a.is_hex as u8,
            data_len: a.data.len() as u32,
            data: a.data.clone(),
        });
    d::Ikev2ProfileDetails {
        context: 0,
        profile: d::Ikev2Profile {
            name: p.name.clone(),
            loc_id: api_id(p.local_id.as_ref()),
            rem_id: api_id(p.remote_id.as_ref()),
            loc_ts: api_ts(p.ts_local, true),
            rem_ts: api_ts(p.ts_remote, false),
            responder: d::Ikev2Responder {
                sw_if_index: d::InterfaceIndex(resp_sw),
                addr: convert::ip_addr(resp_addr),
            },
            ike_ts: ike,
            esp_ts: esp,
            lifetime: 0,
            lifetime_maxdata: 0,
            lifetime_jitter: 0,
            handover: 0,
            ipsec_over_udp_port: 4500,
            tun_itf: p.tun_itf.unwrap_or(convert::NONE),
            udp_encap: false,
            natt_disabled: false,
            auth,
        },
    }
}

pub(super) fn register(r: &mut Router<State>) {
    r.on(|s: &mut State, m: d::Ikev2ProfileAddDel, _c| {
        reply!(Ikev2ProfileAddDelReply, profile_add_del(s, &m))
    });
    r.on(|s: &mut State, m: d::Ikev2ProfileSetAuth, _c| {
        let r = svc::set_auth(&s.dp, &m.name, m.auth_method, m.is_hex, &m.data);
        reply!(
            Ikev2ProfileSetAuthReply,
            done("ikev2_profile_set_auth", &m.name, r)
        )
    });
    r.on(|s: &mut State, m: d::Ikev2ProfileSetId, _c| {
        let r = svc::set_id(&s.dp, &m.name, m.is_local, m.id_type, &m.data);
        reply!(
            Ikev2ProfileSetIdReply,
            done("ikev2_profile_set_id", &m.name, r)
        )
    });
    r.on(|s: &mut State, m: d::Ikev2ProfileSetTs, _c| {
        reply!(Ikev2ProfileSetTsReply, set_ts(s, &m))
    });
    r.on(|s: &mut State, m: d::Ikev2SetIkeTransforms, _c| {
        let t = &m.tr;
        let r = svc::set_ike_transforms(
            &s.dp,
            &m.name,
            t.crypto_alg,
            t.crypto_key_size,
            t.integ_alg,
            t.prf_alg,
            t.dh_group,
        );
        reply!(
            Ikev2SetIkeTransformsReply,
            done("ikev2_set_ike_transforms", &m.name, r)
        )
    });
    r.on(|s: &mut State, m: d::Ikev2SetEspTransforms, _c| {
        let t = &m.tr;
        let r =
            svc::set_esp_transforms(&s.dp, &m.name, t.crypto_alg, t.crypto_key_size, t.integ_alg);
        reply!(
            Ikev2SetEspTransformsReply,
            done("ikev2_set_esp_transforms", &m.name, r)
        )
    });
    r.on(|s: &mut State, m: d::Ikev2SetResponder, _c| {
        let resp = &m.responder;
        let r = svc::set_responder(&s.dp, &m.name, resp.sw_if_index.0, addr_ip(&resp.addr));
        reply!(
            Ikev2SetResponderReply,
            done("ikev2_set_responder", &m.name, r)
        )
    });
    r.on(|s: &mut State, m: d::Ikev2SetTunnelInterface, _c| {
        let r = svc::set_tunnel_interface(&s.dp, &m.name, m.sw_if_index.0);
        s.kick();
        reply!(
            Ikev2SetTunnelInterfaceReply,
            done("ikev2_set_tunnel_interface", &m.name, r)
        )
    });
    r.on(|s: &mut State, m: d::Ikev2InitiateSaInit, _c| {
        let r = svc::initiate(&s.dp, &m.name);
        reply!(
            Ikev2InitiateSaInitReply,
            done("ikev2_initiate_sa_init", &m.name, r)
        )
    });
    r.on(|s: &mut State, _m: d::Ikev2ProfileDump, _c| {
        Response::stream(svc::profiles(&s.dp).iter().map(details))
    });
}

#[cfg(test)]
mod tests {
    use rvpp_vppapi::defs as d;
    use rvpp_vppapi::Message;

    /// The CRCs calico's bindings were generated with (messages.tsv).
    #[test]
    fn ikev2_messages_have_calicos_crcs() {
        for (crc, want) in [
            (d::Ikev2InitiateSaInit::DEF.published_crc, 0xebf79a66),
            (d::Ikev2ProfileAddDel::DEF.published_crc, 0x2c925b55),
            (d::Ikev2ProfileDump::DEF.published_crc, 0x51077d14),
            (d::Ikev2ProfileDetails::DEF.published_crc, 0x3e3e895b),
            (d::Ikev2ProfileSetAuth::DEF.published_crc, 0x642c97cd),
            (d::Ikev2ProfileSetId::DEF.published_crc, 0x4d7e2418),
            (d::Ikev2ProfileSetTs::DEF.published_crc, 0x8eb8cfd1),
            (d::Ikev2SetEspTransforms::DEF.published_crc, 0xa63dc205),
            (d::Ikev2SetIkeTransforms::DEF.published_crc, 0xaa99fec0),
            (d::Ikev2SetResponder::DEF.published_crc, 0xa2055df1),
            (d::Ikev2SetTunnelInterface::DEF.published_crc, 0xca67182c),
            (d::Ikev2InitiateSaInitReply::DEF.published_crc, 0xe8d4e804),
        ] {
            assert_eq!(crc, want);
        }
        for def in [
            &d::Ikev2InitiateSaInit::DEF,
            &d::Ikev2ProfileAddDel::DEF,
            &d::Ikev2ProfileDump::DEF,
            &d::Ikev2ProfileDetails::DEF,
            &d::Ikev2ProfileSetAuth::DEF,
            &d::Ikev2ProfileSetId::DEF,
            &d::Ikev2ProfileSetTs::DEF,
            &d::Ikev2SetEspTransforms::DEF,
            &d::Ikev2SetIkeTransforms::DEF,
            &d::Ikev2SetResponder::DEF,
            &d::Ikev2SetTunnelInterface::DEF,
        ] {
            assert_eq!(def.compute_crc(), def.published_crc, "{}", def.name);
        }
    }
}
