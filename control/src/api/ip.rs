//! IP messages: interface addresses and tables, routes, neighbours, and the proxy/ND settings
//! rvpp has no machinery for. Addresses, tables, routes and neighbours are the control
//! service's (`service::addresses`, `tables`, `routes`, `neighbours`), the same ones the CLI
//! edits.

use super::convert::{self, rv, ApiPath, NONE};
use super::handlers::{sw_ok, State};
use crate::service::routes::Change;
use crate::service::{addresses, mroutes, neighbours, routes, tables, ttl_fixup};
use rvpp_dataplane::forwarding::{Af, NeighborConfig, Path};
use rvpp_vppapi::defs as d;
use rvpp_vppapi::transport::{Response, Router};

/// `sw_interface_add_del_address`, with `del_all`.
fn address_add_del(s: &State, m: &d::SwInterfaceAddDelAddress) -> i32 {
    let sw = m.sw_if_index.0;
    if s.dp.fwd().iface(sw).is_err() {
        return rv::INVALID_SW_IF_INDEX;
    }
    let r = if m.del_all {
        addresses::del_all(&s.dp, sw)
    } else {
        match convert::prefix_in(&m.prefix.0) {
            Err(e) => return e,
            Ok(p) if m.is_add => addresses::add(&s.dp, sw, p),
            Ok(p) => addresses::del(&s.dp, sw, p),
        }
    };
    convert::svc_retval(r)
}

fn address_dump(s: &State, m: &d::IpAddressDump) -> Vec<d::IpAddressDetails> {
    let sw = m.sw_if_index.0;
    addresses::of(&s.dp, sw)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.is_ip6() == m.is_ipv6)
        .map(|p| d::IpAddressDetails {
            context: 0,
            sw_if_index: d::InterfaceIndex(sw),
            prefix: d::AddressWithPrefix(convert::prefix_out(p)),
        })
        .collect()
}

fn route_add_del(s: &State, m: &d::IpRouteAddDel) -> i32 {
    let r = &m.route;
    let p = match convert::prefix_in(&r.prefix) {
        Ok(p) => p.masked(),
        Err(e) => return e,
    };
    // A delete of the whole entry ignores its paths (as VPP's); otherwise every path must be
    // one the dataplane forwards on, or nothing changes.
    let mut paths: Vec<Path> = Vec::new();
    if m.is_add || m.is_multipath {
        for x in &r.paths {
            match convert::path_in(x, p.is_ip6()) {
                ApiPath::Fwd(path) => paths.push(path),
                ApiPath::Other => {
                    // The table must exist before anything else is looked at.
                    if s.dp.fwd().fib_index(p.af(), r.table_id).is_none() {
                        return rv::NO_SUCH_FIB;
                    }
                    return rv::UNIMPLEMENTED;
                }
            }
        }
    }
    let change = match (m.is_add, m.is_multipath) {
        (true, false) => Change::Set,
        (true, true) => Change::AddPaths,
        (false, false) => Change::Delete,
        (false, true) => Change::DeletePaths,
    };
    convert::svc_retval(routes::change(&s.dp, r.table_id, p, paths, change))
}

fn route_dump(s: &State, m: &d::IpRouteDump) -> Vec<d::IpRouteDetails> {
    let ip6 = m.table.is_ip6;
    let t = m.table.table_id;
    let Some(rs) = routes::list(&s.dp, Af::from_is_ip6(ip6), t) else {
        return vec![];
    };
    rs.into_iter()
        .map(|(p, r)| d::IpRouteDetails {
            context: 0,
            route: d::IpRoute {
                table_id: t,
                stats_index: 0,
                prefix: convert::prefix_out(p),
                n_paths: 0,
                paths: r
                    .paths
                    .iter()
                    .map(|x| convert::path_out(x, ip6, t))
                    .collect(),
            },
        })
        .collect()
}

fn neighbor_dump(s: &State, m: &d::IpNeighborDump) -> Vec<d::IpNeighborDetails> {
    let ip6 = convert::is_ip6(m.af);
    let want = m.sw_if_index.0;
    neighbours::list(&s.dp)
        .into_iter()
        .filter(|n| n.ip.is_ipv6() == ip6 && (want == NONE || n.sw_if_index == want))
        .map(|n| d::IpNeighborDetails {
            context: 0,
            age: 0.0,
            neighbor: d::IpNeighbor {
                sw_if_index: d::InterfaceIndex(n.sw_if_index),
                flags: if n.is_static {
                    d::IpNeighborFlags::IP_API_NEIGHBOR_FLAG_STATIC
                } else {
                    d::IpNeighborFlags::IP_API_NEIGHBOR_FLAG_NONE
                },
                mac_address: d::MacAddress(n.mac),
                ip_address: convert::ip_addr(n.ip),
            },
        })
        .collect()
}

fn mroute_add_del(s: &State, m: &d::IpMrouteAddDel) -> i32 {
    use d::MfibItfFlags as F;
    let rt = &m.route;
    let p = &rt.prefix;
    let af = Af::from_is_ip6(p.af == d::AddressFamily::ADDRESS_IP6);
    let (group, src) = match af {
        Af::Ip6 => (
            u128::from_be_bytes(p.grp_address.0),
            u128::from_be_bytes(p.src_address.0),
        ),
        Af::Ip4 => {
            let v4 = |b: &[u8; 16]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as u128;
            (v4(&p.grp_address.0), v4(&p.src_address.0))
        }
    };
    if src != 0 {
        // Source-specific (S,G) routes: rvpp keeps only (*,G).
        return rv::UNIMPLEMENTED;
    }
    let paths = rt
        .paths
        .iter()
        .map(|x| {
            let sw = (x.path.sw_if_index != NONE).then_some(x.path.sw_if_index);
            mroutes::MPath {
                sw,
                lookup: sw.is_none().then_some(x.path.table_id),
                accept: x.itf_flags.0 & F::MFIB_API_ITF_FLAG_ACCEPT.0 != 0,
                forward: x.itf_flags.0 & F::MFIB_API_ITF_FLAG_FORWARD.0 != 0,
            }
        })
        .collect();
    let len = p.grp_address_length.min(255) as u8;
    convert::svc_retval(mroutes::update(
        &s.dp,
        af,
        rt.table_id,
        group,
        len,
        paths,
        m.is_add,
    ))
}

pub(super) fn register(r: &mut Router<State>) {
    // ----- addresses and interface tables ----------------------------------------------------
    r.on(|s: &mut State, m: d::SwInterfaceAddDelAddress, _c| {
        reply!(SwInterfaceAddDelAddressReply, address_add_del(s, &m))
    });
    r.on(|s: &mut State, m: d::IpAddressDump, _c| Response::stream(address_dump(s, &m)));
    r.on(|s: &mut State, m: d::SwInterfaceSetTable, _c| {
        // The interface is in the VRF asked for; a VRF whose default route is a table lookup
        // (calico's pod and host-tap VRFs) continues in that table.
        let af = Af::from_is_ip6(m.is_ipv6);
        let rv = convert::svc_retval(tables::bind(&s.dp, m.sw_if_index.0, af, m.vrf_id));
        reply!(SwInterfaceSetTableReply, rv)
    });

    // ----- tables and routes -----------------------------------------------------------------
    r.on(|s: &mut State, m: d::IpTableAddDel, _c| {
        let (af, t) = (Af::from_is_ip6(m.table.is_ip6), m.table.table_id);
        let rv = if m.is_add {
            convert::svc_retval(tables::add(&s.dp, af, t, convert::text(&m.table.name)))
        } else {
            tables::del(&s.dp, af, t);
            0
        };
        reply!(IpTableAddDelReply, rv)
    });
    r.on(|s: &mut State, m: d::IpTableAllocate, _c| {
        let ip6 = m.table.is_ip6;
        let want = (m.table.table_id != NONE).then_some(m.table.table_id);
        let (r, t, name) = tables::allocate(
            &s.dp,
            Af::from_is_ip6(ip6),
            want,
            convert::text(&m.table.name),
        );
        Response::reply(d::IpTableAllocateReply {
            context: 0,
            retval: convert::svc_retval(r),
            table: d::IpTable {
                table_id: t,
                is_ip6: ip6,
                name,
            },
        })
    });
    r.on(|s: &mut State, _m: d::IpTableDump, _c| {
        let v: Vec<d::IpTableDetails> = [false, true]
            .into_iter()
            .flat_map(|ip6| {
                tables::list(&s.dp, Af::from_is_ip6(ip6))
                    .into_iter()
                    .map(move |(t, name)| d::IpTableDetails {
                        context: 0,
                        table: d::IpTable {
                            table_id: t,
                            is_ip6: ip6,
                            name,
                        },
                    })
            })
            .collect();
        Response::stream(v)
    });
    r.on(|s: &mut State, m: d::IpRouteAddDel, _c| {
        Response::reply(d::IpRouteAddDelReply {
            context: 0,
            retval: route_add_del(s, &m),
            stats_index: 0,
        })
    });
    r.on(|s: &mut State, m: d::IpRouteDump, _c| Response::stream(route_dump(s, &m)));
    r.on(|s: &mut State, m: d::IpMrouteAddDel, _c| {
        Response::reply(d::IpMrouteAddDelReply {
            context: 0,
            retval: mroute_add_del(s, &m),
            stats_index: 0,
        })
    });

    // ----- neighbours ------------------------------------------------------------------------
    r.on(|s: &mut State, m: d::IpNeighborAddDel, _c| {
        let n = &m.neighbor;
        let (sw, ip) = (n.sw_if_index.0, convert::addr_ip(&n.ip_address));
        let is_static = n
            .flags
            .contains(d::IpNeighborFlags::IP_API_NEIGHBOR_FLAG_STATIC);
        let r = if m.is_add {
            neighbours::add(&s.dp, sw, ip, n.mac_address.0, is_static)
        } else {
            neighbours::del(&s.dp, sw, ip)
        };
        Response::reply(d::IpNeighborAddDelReply {
            context: 0,
            retval: convert::svc_retval(r),
            stats_index: 0,
        })
    });
    r.on(|s: &mut State, m: d::IpNeighborConfig, _c| {
        let af = match m.af {
            d::AddressFamily::ADDRESS_IP4 => Af::Ip4,
            d::AddressFamily::ADDRESS_IP6 => Af::Ip6,
            _ => return reply!(IpNeighborConfigReply, rv::INVALID_ADDRESS_FAMILY),
        };
        let c = NeighborConfig {
            max_number: m.max_number,
            max_age: m.max_age,
            recycle: m.recycle,
        };
        neighbours::set_config(&s.dp, af, c);
        reply!(IpNeighborConfigReply, 0)
    });
    r.on(|s: &mut State, m: d::IpNeighborDump, _c| Response::stream(neighbor_dump(s, &m)));
    r.on(|s: &mut State, m: d::ProxyArpAddDel, _c| {
        let p = &m.proxy;
        let (lo, hi) = (u32::from_be_bytes(p.low.0), u32::from_be_bytes(p.hi.0));
        let r = neighbours::proxy_arp_range(&s.dp, p.table_id, lo, hi, m.is_add);
        reply!(ProxyArpAddDelReply, convert::svc_retval(r))
    });
    r.on(|s: &mut State, m: d::ProxyArpIntfcEnableDisable, _c| {
        let r = neighbours::set_proxy(&s.dp, m.sw_if_index.0, Af::Ip4, m.enable);
        reply!(ProxyArpIntfcEnableDisableReply, convert::svc_retval(r))
    });
    r.on(|s: &mut State, m: d::IpTtlFixupConfigure, _c| {
        let (src, dst) = (m.src_sw_if_index.0, m.dst_sw_if_index.0);
        let r = ttl_fixup::configure(&s.dp, src, dst, m.enable);
        reply!(IpTtlFixupConfigureReply, convert::svc_retval(r))
    });
    r.on(|s: &mut State, m: d::SwInterfaceIp6ndRaConfig, _c| {
        // rvpp sends no router advertisements: suppressing them is what it does already;
        // asking for them is not something it can do.
        let rv = match sw_ok(&s.dp.fwd(), m.sw_if_index.0) {
            0 if m.suppress != 0 && !m.is_no => 0,
            0 => rv::UNIMPLEMENTED,
            e => e,
        };
        reply!(SwInterfaceIp6ndRaConfigReply, rv)
    });
    r.on(|s: &mut State, m: d::Ip6ndProxyEnableDisableV2, _c| {
        // Any flags: rvpp's ND proxy answers for every target (calico's NO_DST_FILTER).
        let r = neighbours::set_proxy(&s.dp, m.sw_if_index.0, Af::Ip6, m.is_enable);
        reply!(Ip6ndProxyEnableDisableV2Reply, convert::svc_retval(r))
    });
}
