//! Punt messages: redirects (`ip_punt_redirect_v2`, the control service's `service::punt`, the
//! same ones `ip punt redirect` edits), and the reasons and registrations VPP's punt
//! infrastructure has and rvpp's fixed local path does not.

use super::convert::{self, rv, ApiPath, NONE};
use super::handlers::State;
use crate::service::punt::{self, Redirect};
use rvpp_dataplane::forwarding::Af;
use rvpp_vppapi::defs as d;
use rvpp_vppapi::transport::{Response, Router};

/// Punt reasons VPP registers that calico looks up (`ip6-nd-neigh-adv` is calico's patch).
pub const PUNT_REASONS: &[&str] = &[
    "ipsec4-spi-o-udp-0",
    "ipsec4-no-such-tunnel",
    "ipsec6-no-such-tunnel",
    "ipsec6-spi-o-udp-0",
    "ip4-acl-deny",
    "ip6-acl-deny",
    "ip6-packet-too-big",
    "ip6-nd-neigh-adv",
];

fn redirect_add_del(s: &State, m: &d::AddDelIpPuntRedirectV2) -> i32 {
    let p = &m.punt;
    let ip6 = convert::is_ip6(p.af);
    let af = Af::from_is_ip6(ip6);
    let rx = (p.rx_sw_if_index.0 != NONE).then_some(p.rx_sw_if_index.0);
    if !m.is_add {
        return convert::svc_retval(punt::del(&s.dp, af, rx));
    }
    // Paths the dataplane cannot redirect to are kept out: a redirect with none sends nothing.
    let paths = p
        .paths
        .iter()
        .filter_map(|x| match convert::path_in(x, ip6) {
            ApiPath::Fwd(path) => Some(path),
            ApiPath::Other => None,
        })
        .collect();
    convert::svc_retval(punt::add(&s.dp, Redirect { af, rx, paths }))
}

fn redirect_dump(s: &State, m: &d::IpPuntRedirectV2Dump) -> Vec<d::IpPuntRedirectV2Details> {
    let ip6 = convert::is_ip6(m.af);
    let want = (m.sw_if_index.0 != NONE).then_some(m.sw_if_index.0);
    punt::list(&s.dp, Af::from_is_ip6(ip6), want)
        .into_iter()
        .map(|e| d::IpPuntRedirectV2Details {
            context: 0,
            punt: d::PuntRedirectV2 {
                rx_sw_if_index: d::InterfaceIndex(e.rx.unwrap_or(NONE)),
                af: m.af,
                n_paths: 0,
                paths: e
                    .paths
                    .iter()
                    .map(|x| convert::path_out(x, ip6, 0))
                    .collect(),
            },
        })
        .collect()
}

/// `set_punt`, against what rvpp's local path does: every local TCP or UDP packet it does not
/// terminate is punted (to the punt redirect), and none of the exception reasons ever is.
/// So registering L4 punts and withdrawing exception punts are what rvpp does already; the
/// opposites are not something it can do.
fn set_punt(m: &d::SetPunt) -> i32 {
    let p = &m.punt;
    match p.type_ {
        d::PuntType::PUNT_API_TYPE_EXCEPTION => match p.punt.get::<d::PuntException>() {
            Ok(x) if (x.id as usize) < PUNT_REASONS.len() => {
                if m.is_add {
                    rv::UNIMPLEMENTED
                } else {
                    0
                }
            }
            _ => rv::INVALID_VALUE,
        },
        d::PuntType::PUNT_API_TYPE_L4 => match p.punt.get::<d::PuntL4>() {
            Ok(l4) => {
                let (udp, tcp) = (
                    l4.protocol == d::IpProto::IP_API_PROTO_UDP,
                    l4.protocol == d::IpProto::IP_API_PROTO_TCP,
                );
                // VPP's errors: only UDP and TCP, and TCP only for all ports.
                if !(udp || tcp) || (tcp && l4.port != u16::MAX) {
                    rv::UNSPECIFIED
                } else if m.is_add {
                    0
                } else {
                    rv::UNIMPLEMENTED
                }
            }
            Err(_) => rv::INVALID_VALUE,
        },
        _ => rv::UNIMPLEMENTED,
    }
}

pub(super) fn register(r: &mut Router<State>) {
    r.on(|s: &mut State, m: d::AddDelIpPuntRedirectV2, _c| {
        reply!(AddDelIpPuntRedirectV2Reply, redirect_add_del(s, &m))
    });
    r.on(|s: &mut State, m: d::IpPuntRedirectV2Dump, _c| Response::stream(redirect_dump(s, &m)));
    r.on(|_s: &mut State, m: d::SetPunt, _c| reply!(SetPuntReply, set_punt(&m)));
    r.on(|_s: &mut State, m: d::PuntReasonDump, _c| {
        let want = convert::text(&m.reason.name);
        let v: Vec<d::PuntReasonDetails> = PUNT_REASONS
            .iter()
            .enumerate()
            .filter(|(_, n)| want.is_empty() || **n == want)
            .map(|(i, n)| d::PuntReasonDetails {
                context: 0,
                reason: d::PuntReason {
                    id: i as u32,
                    name: n.to_string(),
                },
            })
            .collect();
        Response::stream(v)
    });
}
