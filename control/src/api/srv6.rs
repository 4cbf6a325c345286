//! The `sr` messages calico sends (`sr_set_encap_source`, `sr_localsid_add_del`,
//! `sr_policy_add`, `sr_policy_mod`, `sr_policy_del`, `sr_steering_add_del`) and the three
//! dumps, over `service::srv6`.

use super::convert::{self, rv, svc_retval, NONE};
use super::handlers::State;
use crate::service::srv6::{self as svc, LocalsidSpec, PolicyOp, PolicySpec};
use rvpp_dataplane::forwarding::Prefix;
use rvpp_dataplane::srv6::Behavior;
use rvpp_vppapi::defs as d;
use rvpp_vppapi::transport::{Response, Router};
use std::net::{IpAddr, Ipv6Addr};

fn ip6(a: &d::Ip6Address) -> Ipv6Addr {
    Ipv6Addr::from(a.0)
}

fn sids(l: &d::Srv6SidList) -> Vec<Ipv6Addr> {
    l.sids.iter().take(l.num_sids as usize).map(ip6).collect()
}

fn sid_list_out(l: &rvpp_dataplane::srv6::SidList) -> d::Srv6SidList {
    let mut out = d::Srv6SidList {
        num_sids: l.sids.len() as u8,
        weight: l.weight,
        ..Default::default()
    };
    for (o, s) in out.sids.iter_mut().zip(&l.sids) {
        *o = d::Ip6Address(s.to_be_bytes());
    }
    out
}

fn localsid_add_del(s: &State, m: &d::SrLocalsidAddDel) -> i32 {
    if m.is_del {
        return svc_retval(svc::localsid_del(&s.dp, ip6(&m.localsid)));
    }
    let Some(behavior) = Behavior::from_api(m.behavior.0) else {
        return rv::UNIMPLEMENTED;
    };
    let nh = convert::addr_ip(&m.nh_addr);
    let nh = (!nh.is_unspecified()).then_some(nh);
    // VPP's DT4/DT6 take their table from sw_if_index (its "VRF variant"); ~0 is table 0
    // there as calico sends 0.
    let sw = m.sw_if_index.0;
    let spec = LocalsidSpec {
        sid: ip6(&m.localsid),
        behavior,
        end_psp: m.end_psp,
        fib_table: m.fib_table,
        decap_table: if sw == NONE { 0 } else { sw },
        sw_if_index: sw,
        nh,
    };
    svc_retval(svc::localsid_add(&s.dp, spec))
}

fn policy_add(s: &State, m: &d::SrPolicyAdd) -> i32 {
    let spec = PolicySpec {
        bsid: ip6(&m.bsid_addr),
        // VPP takes the weight of the SID list (sids.weight), not the message's.
        weight: m.sids.weight,
        is_encap: m.is_encap,
        is_spray: m.is_spray,
        reduced: false,
        fib_table: m.fib_table,
        sids: sids(&m.sids),
    };
    svc_retval(svc::policy_add(&s.dp, spec))
}

fn policy_mod(s: &State, m: &d::SrPolicyMod) -> i32 {
    let op = match m.operation {
        d::SrPolicyOp::SR_POLICY_OP_API_ADD => PolicyOp::AddList,
        d::SrPolicyOp::SR_POLICY_OP_API_DEL => PolicyOp::DelList,
        d::SrPolicyOp::SR_POLICY_OP_API_MOD => PolicyOp::SetWeight,
        _ => return rv::INVALID_VALUE,
    };
    let weight = if op == PolicyOp::AddList {
        m.sids.weight
    } else {
        m.weight
    };
    svc_retval(svc::policy_mod(
        &s.dp,
        ip6(&m.bsid_addr),
        m.sr_policy_index,
        op,
        m.sl_index,
        weight,
        &sids(&m.sids),
    ))
}

fn steering_add_del(s: &State, m: &d::SrSteeringAddDel) -> i32 {
    let ip6_traffic = match m.traffic_type {
        d::SrSteer::SR_STEER_API_IPV4 => false,
        d::SrSteer::SR_STEER_API_IPV6 => true,
        d::SrSteer::SR_STEER_API_L2 => return rv::UNIMPLEMENTED,
        _ => return svc::sr_rv::EXISTS_OR_MISSING,
    };
    let p = match convert::prefix_in(&m.prefix) {
        Ok(p) if matches!(p, Prefix::V6(..)) == ip6_traffic => p,
        Ok(_) => return rv::INVALID_VALUE,
        Err(e) => return e,
    };
    if m.is_del {
        svc_retval(svc::steer_del(&s.dp, m.table_id, p))
    } else {
        svc_retval(svc::steer_add(
            &s.dp,
            ip6(&m.bsid_addr),
            m.sr_policy_index,
            m.table_id,
            p,
        ))
    }
}

fn localsids_dump(s: &State) -> Vec<d::SrLocalsidsDetails> {
    svc::localsids(&s.dp)
        .into_iter()
        .map(|l| d::SrLocalsidsDetails {
            context: 0,
            addr: d::Ip6Address(l.sid.to_be_bytes()),
            end_psp: l.end_psp,
            behavior: d::SrBehavior(l.behavior.api()),
            fib_table: l.fib_table,
            vlan_index: 0,
            xconnect_nh_addr: convert::ip_addr(l.nh.unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED))),
            // As VPP: DT4/DT6 give the table looked up in, the others their interface.
            xconnect_iface_or_vrf_table: match l.behavior {
                Behavior::DT4 | Behavior::DT6 => l.decap_table,
                _ => l.sw_if_index,
            },
        })
        .collect()
}

fn policies_dump(s: &State) -> Vec<d::SrPoliciesDetails> {
    svc::policies(&s.dp)
        .into_iter()
        .map(|(_, p)| d::SrPoliciesDetails {
            context: 0,
            bsid: d::Ip6Address(p.bsid.to_be_bytes()),
            is_spray: p.is_spray,
            is_encap: p.is_encap,
            fib_table: p.fib_table,
            num_sid_lists: p.sid_lists.len() as u8,
            sid_lists: p.sid_lists.iter().map(sid_list_out).collect(),
        })
        .collect()
}

fn steering_dump(s: &State) -> Vec<d::SrSteeringPolDetails> {
    svc::steering(&s.dp)
        .into_iter()
        .map(|(st, bsid)| d::SrSteeringPolDetails {
            context: 0,
            traffic_type: if matches!(st.prefix, Prefix::V6(..)) {
                d::SrSteer::SR_STEER_API_IPV6
            } else {
                d::SrSteer::SR_STEER_API_IPV4
            },
            fib_table: st.table_id,
            prefix: convert::prefix_out(st.prefix),
            sw_if_index: d::InterfaceIndex(NONE),
            bsid: d::Ip6Address(bsid.octets()),
        })
        .collect()
}

pub(super) fn register(r: &mut Router<State>) {
    r.on(|s: &mut State, m: d::SrSetEncapSource, _c| {
        reply!(
            SrSetEncapSourceReply,
            svc_retval(svc::set_encap_source(&s.dp, ip6(&m.encaps_source)))
        )
    });
    r.on(|s: &mut State, m: d::SrLocalsidAddDel, _c| {
        reply!(SrLocalsidAddDelReply, localsid_add_del(s, &m))
    });
    r.on(|s: &mut State, m: d::SrPolicyAdd, _c| reply!(SrPolicyAddReply, policy_add(s, &m)));
    r.on(|s: &mut State, m: d::SrPolicyMod, _c| reply!(SrPolicyModReply, policy_mod(s, &m)));
    r.on(|s: &mut State, m: d::SrPolicyDel, _c| {
        reply!(
            SrPolicyDelReply,
            svc_retval(svc::policy_del(&s.dp, ip6(&m.bsid_addr), m.sr_policy_index))
        )
    });
    r.on(|s: &mut State, m: d::SrSteeringAddDel, _c| {
        reply!(SrSteeringAddDelReply, steering_add_del(s, &m))
    });
    r.on(|s: &mut State, _m: d::SrLocalsidsDump, _c| Response::stream(localsids_dump(s)));
    r.on(|s: &mut State, _m: d::SrPoliciesDump, _c| Response::stream(policies_dump(s)));
    r.on(|s: &mut State, _m: d::SrSteeringPolDump, _c| Response::stream(steering_dump(s)));
}
