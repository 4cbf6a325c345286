//! The npol API module (network policies) on the dataplane's one `Npol`. Thin translation:
//! decode, call `rvpp_dataplane::npol`, answer its verdict as a retval. Every edit is checked
//! whole there, so a refused message changes nothing.
//!
//! Retvals: -6 NO_SUCH_ENTRY for an unknown ipset, rule, policy or member to delete; -7
//! INVALID_VALUE for an unknown enum value, a prefix too long, an address family that is
//! neither IPv4 nor IPv6, an ipset of the wrong kind, a port range whose start is after its
//! end, policy counts that do not add up, or misplaced untracked/pre-DNAT section markers
//! (`rvpp_dataplane::npol::section`); -2 INVALID_SW_IF_INDEX for a configure on an
//! interface that does not exist; -155 RSRC_IN_USE for deleting what is still referenced.

use super::convert::{self, rv, NONE};
use super::handlers::State;
use rvpp_dataplane::nodes::npol as npol_nodes;
use rvpp_dataplane::npol::ipset::{IpSetKind, Member};
use rvpp_dataplane::npol::rule::{Action, Entry, Filter, FilterKind, MatchData, Rule};
use rvpp_dataplane::npol::{IfConfig, Net, NpolError, Policy, PolicyDefault};
use rvpp_vppapi::defs as d;
use rvpp_vppapi::transport::{Response, Router};
use std::net::IpAddr;

/// VPP's retval for a refused edit.
pub fn npol_rv(e: &NpolError) -> i32 {
    match e {
        NpolError::NoSuchIpset(_)
        | NpolError::NoSuchRule(_)
        | NpolError::NoSuchPolicy(_)
        | NpolError::NoSuchMember(_) => rv::NO_SUCH_ENTRY,
        NpolError::WrongIpsetKind { .. } | NpolError::Invalid(_) => rv::INVALID_VALUE,
        NpolError::InUse(..) => rv::RSRC_IN_USE,
    }
}

fn result_rv<T>(r: Result<T, NpolError>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => npol_rv(&e),
    }
}

fn addr_in(a: &d::Address) -> Result<IpAddr, i32> {
    match a.af {
        d::AddressFamily::ADDRESS_IP4 | d::AddressFamily::ADDRESS_IP6 => Ok(convert::addr_ip(a)),
        _ => Err(rv::INVALID_VALUE),
    }
}

fn net_in(p: &d::Prefix) -> Result<Net, i32> {
    Net::new(addr_in(&p.address)?, p.len).ok_or(rv::INVALID_VALUE)
}

/// A member of a set of `kind`: the union is read as that kind's member type.
fn member_in(kind: IpSetKind, m: &d::NpolIpsetMember) -> Result<Member, i32> {
    let bad = |_| rv::INVALID_VALUE;
    Ok(match kind {
        IpSetKind::Ip => Member::Ip(addr_in(&m.val.get::<d::Address>().map_err(bad)?)?),
        IpSetKind::Net => Member::Net(net_in(&m.val.get::<d::Prefix>().map_err(bad)?)?),
        IpSetKind::IpAndPort => {
            let t = m.val.get::<d::NpolThreeTuple>().map_err(bad)?;
            Member::Tuple(addr_in(&t.address)?, t.l4_proto, t.port)
        }
    })
}

fn entry_in(e: &d::NpolRuleEntry) -> Result<Entry, i32> {
    let bad = |_| rv::INVALID_VALUE;
    let data = match e.type_ {
        d::NpolEntryType::NPOL_CIDR => {
            MatchData::Cidr(net_in(&e.data.get::<d::Prefix>().map_err(bad)?)?)
        }
        d::NpolEntryType::NPOL_PORT_RANGE => {
            let r = e.data.get::<d::NpolPortRange>().map_err(bad)?;
            MatchData::PortRange(r.start, r.end)
        }
        // Both set kinds carry the set id (npol decodes NPOL_IP_SET's data as a set id too).
        d::NpolEntryType::NPOL_PORT_IP_SET => {
            MatchData::PortIpSet(e.data.get::<d::NpolEntrySetId>().map_err(bad)?.set_id)
        }
        d::NpolEntryType::NPOL_IP_SET => {
            MatchData::IpSet(e.data.get::<d::NpolEntrySetId>().map_err(bad)?.set_id)
        }
        _ => return Err(rv::INVALID_VALUE),
    };
    Ok(Entry {
        is_src: e.is_src,
        is_not: e.is_not,
        data,
    })
}

/// A rule from the API, or the retval refusing it.
pub fn rule_in(r: &d::NpolRule) -> Result<Rule, i32> {
    let action = Action::from_api(r.action.0).ok_or(rv::INVALID_VALUE)?;
    let filters = r
        .filters
        .iter()
        .map(|f| {
            Ok(Filter {
                kind: FilterKind::from_api(f.type_.0).ok_or(rv::INVALID_VALUE)?,
                value: f.value,
                should_match: f.should_match != 0,
            })
        })
        .collect::<Result<Vec<_>, i32>>()?;
    let entries = r.matches.iter().map(entry_in).collect::<Result<_, _>>()?;
    Ok(Rule {
        action,
        filters,
        entries,
    })
}

fn policy_in(items: &[d::NpolPolicyItem]) -> Policy {
    let mut p = Policy::default();
    for i in items {
        if i.is_inbound {
            p.inbound.push(i.rule_id);
        } else {
            p.outbound.push(i.rule_id);
        }
    }
    p
}

fn default_in(v: d::NpolPolicyDefault) -> Result<PolicyDefault, i32> {
    PolicyDefault::from_api(v.0).ok_or(rv::INVALID_VALUE)
}

/// `npol_configure_policies`' ids split into rx policies, tx policies and profiles.
fn if_config_in(m: &d::NpolConfigurePolicies) -> Result<IfConfig, i32> {
    let (rx, tx) = (m.num_rx_policies as usize, m.num_tx_policies as usize);
    if rx.checked_add(tx).is_none_or(|n| n > m.policy_ids.len()) {
        return Err(rv::INVALID_VALUE);
    }
    let ids = &m.policy_ids;
    Ok(IfConfig {
        rx_policies: ids[..rx].to_vec(),
        tx_policies: ids[rx..rx + tx].to_vec(),
        profiles: ids[rx + tx..].to_vec(),
        invert_rx_tx: m.invert_rx_tx != 0,
        policy_default_rx: default_in(m.policy_default_rx)?,
        policy_default_tx: default_in(m.policy_default_tx)?,
        profile_default_rx: default_in(m.profile_default_rx)?,
        profile_default_tx: default_in(m.profile_default_tx)?,
    })
}

/// The npol messages' handlers.
pub fn register(r: &mut Router<State>) {
    r.on(|s: &mut State, m: d::NpolIpsetCreate, _c| {
        let (rv, set_id) = match IpSetKind::from_api(m.type_.0) {
            Some(k) => (0, s.dp.npol().ipset_create(k)),
            None => (rv::INVALID_VALUE, NONE),
        };
        Response::reply(d::NpolIpsetCreateReply {
            context: 0,
            retval: rv,
            set_id,
        })
    });
    r.on(|s: &mut State, m: d::NpolIpsetAddDelMembers, _c| {
        let npol = s.dp.npol();
        let Some(kind) = npol.tables.load().ipsets.get(&m.set_id).map(|x| x.kind) else {
            return reply!(NpolIpsetAddDelMembersReply, rv::NO_SUCH_ENTRY);
        };
        let members: Result<Vec<Member>, i32> =
            m.members.iter().map(|x| member_in(kind, x)).collect();
        let rv = match members {
            Ok(v) => result_rv(npol.ipset_add_del(m.set_id, m.is_add, &v)),
            Err(e) => e,
        };
        reply!(NpolIpsetAddDelMembersReply, rv)
    });
    r.on(|s: &mut State, m: d::NpolIpsetDelete, _c| {
        reply!(
            NpolIpsetDeleteReply,
            result_rv(s.dp.npol().ipset_delete(m.set_id))
        )
    });
    r.on(|s: &mut State, m: d::NpolRuleCreate, _c| {
        let r = rule_in(&m.rule).and_then(|r| s.dp.npol().rule_create(r).map_err(|e| npol_rv(&e)));
        let (rv, rule_id) = match r {
            Ok(id) => (0, id),
            Err(e) => (e, NONE),
        };
        Response::reply(d::NpolRuleCreateReply {
            context: 0,
            retval: rv,
            rule_id,
        })
    });
    r.on(|s: &mut State, m: d::NpolRuleUpdate, _c| {
        let rv = match rule_in(&m.rule) {
            Ok(r) => result_rv(s.dp.npol().rule_update(m.rule_id, r)),
            Err(e) => e,
        };
        reply!(NpolRuleUpdateReply, rv)
    });
    r.on(|s: &mut State, m: d::NpolRuleDelete, _c| {
        reply!(
            NpolRuleDeleteReply,
            result_rv(s.dp.npol().rule_delete(m.rule_id))
        )
    });
    r.on(|s: &mut State, m: d::NpolPolicyCreate, _c| {
        let (rv, policy_id) = match s.dp.npol().policy_create(policy_in(&m.rules)) {
            Ok(id) => (0, id),
            Err(e) => (npol_rv(&e), NONE),
        };
        Response::reply(d::NpolPolicyCreateReply {
            context: 0,
            retval: rv,
            policy_id,
        })
    });
    r.on(|s: &mut State, m: d::NpolPolicyUpdate, _c| {
        let r = s.dp.npol().policy_update(m.policy_id, policy_in(&m.rules));
        reply!(NpolPolicyUpdateReply, result_rv(r))
    });
    r.on(|s: &mut State, m: d::NpolPolicyDelete, _c| {
        reply!(
            NpolPolicyDeleteReply,
            result_rv(s.dp.npol().policy_delete(m.policy_id))
        )
    });
    r.on(|s: &mut State, m: d::NpolConfigurePolicies, _c| {
        let sw = m.sw_if_index;
        if sw == 0 || s.dp.fwd().iface(sw).is_err() {
            return reply!(NpolConfigurePoliciesReply, rv::INVALID_SW_IF_INDEX);
        }
        let rv = match if_config_in(&m).map(|c| s.dp.npol().configure(sw, c)) {
            Ok(Ok(())) => {
                // Packets on the interface go through the policy nodes from now on, and
                // through the untracked and pre-DNAT ones where it has such sections.
                let c = s.dp.npol().tables.load().ifaces.get(&sw).cloned();
                let mut fwd = s.dp.fwd();
                let r = npol_nodes::feature_enable(&mut fwd, sw, true)
                    .and_then(|()| npol_nodes::stages_enable(&mut fwd, sw, c.as_deref()));
                if r.is_err() {
                    // Unconfigured, the interface allows all: no stage node stays on either.
                    let _ = npol_nodes::stages_enable(&mut fwd, sw, None);
                    drop(fwd);
                    s.dp.npol().unconfigure(sw);
                }
                convert::retval(r)
            }
            Ok(Err(e)) => npol_rv(&e),
            Err(e) => e,
        };
        reply!(NpolConfigurePoliciesReply, rv)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(a: [u8; 4], len: u8) -> d::Prefix {
        d::Prefix {
            address: convert::ip_addr(IpAddr::from(a)),
            len,
        }
    }

    fn rule_entry(ty: d::NpolEntryType, data: d::NpolEntryData) -> d::NpolRuleEntry {
        d::NpolRuleEntry {
            is_src: true,
            is_not: false,
            type_: ty,
            data,
        }
    }

    fn api_rule(action: u8, matches: Vec<d::NpolRuleEntry>) -> d::NpolRule {
        d::NpolRule {
            action: d::NpolRuleAction(action),
            filters: [d::NpolRuleFilter::default(); 3],
            num_entries: 0,
            matches,
        }
    }

    #[test]
    fn rule_entries_decode_from_their_unions() {
        let cidr = rule_entry(
            d::NpolEntryType::NPOL_CIDR,
            d::NpolEntryData::from_member(&prefix([198, 18, 1, 0], 24)),
        );
        let ports = rule_entry(
            d::NpolEntryType::NPOL_PORT_RANGE,
            d::NpolEntryData::from_member(&d::NpolPortRange {
                start: 80,
                end: 443,
            }),
        );
        let set = rule_entry(
            d::NpolEntryType::NPOL_IP_SET,
            d::NpolEntryData::from_member(&d::NpolEntrySetId { set_id: 7 }),
        );
        let r = rule_in(&api_rule(1, vec![cidr, ports, set])).unwrap();
        assert_eq!(r.action, Action::Deny);
        assert_eq!(r.filters.len(), 3);
        let want = [
            MatchData::Cidr(Net::new("198.18.1.0".parse().unwrap(), 24).unwrap()),
            MatchData::PortRange(80, 443),
            MatchData::IpSet(7),
        ];
        let got: Vec<MatchData> = r.entries.iter().map(|e| e.data).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn malformed_rules_are_refused() {
        // Unknown action, unknown entry type, a /33, an unknown address family.
        assert_eq!(rule_in(&api_rule(4, vec![])), Err(rv::INVALID_VALUE));
        let odd = rule_entry(d::NpolEntryType(9), d::NpolEntryData::default());
        assert_eq!(rule_in(&api_rule(0, vec![odd])), Err(rv::INVALID_VALUE));
        let long = rule_entry(
            d::NpolEntryType::NPOL_CIDR,
            d::NpolEntryData::from_member(&prefix([198, 18, 1, 0], 33)),
        );
        assert_eq!(rule_in(&api_rule(0, vec![long])), Err(rv::INVALID_VALUE));
        let mut p = prefix([198, 18, 1, 0], 24);
        p.address.af = d::AddressFamily(7);
        let af = rule_entry(
            d::NpolEntryType::NPOL_CIDR,
            d::NpolEntryData::from_member(&p),
        );
        assert_eq!(rule_in(&api_rule(0, vec![af])), Err(rv::INVALID_VALUE));
        let mut bad_filter = api_rule(0, vec![]);
        bad_filter.filters[1].type_ = d::NpolRuleFilterType(4);
        assert_eq!(rule_in(&bad_filter), Err(rv::INVALID_VALUE));
    }

    #[test]
    fn configure_counts_must_fit_the_ids() {
        let m = d::NpolConfigurePolicies {
            num_rx_policies: 2,
            num_tx_policies: 1,
            policy_ids: vec![4, 5, 6, 7],
            policy_default_rx: d::NpolPolicyDefault(1),
            ..Default::default()
        };
        let c = if_config_in(&m).unwrap();
        assert_eq!(
            (c.rx_policies, c.tx_policies, c.profiles),
            (vec![4, 5], vec![6], vec![7])
        );
        assert_eq!(c.policy_default_rx, PolicyDefault::Deny);
        let over = d::NpolConfigurePolicies {
            num_rx_policies: 3,
            num_tx_policies: 2,
            ..m.clone()
        };
        assert_eq!(if_config_in(&over), Err(rv::INVALID_VALUE));
        let wrap = d::NpolConfigurePolicies {
            num_rx_policies: u32::MAX,
            num_tx_policies: 2,
            ..m.clone()
        };
        assert_eq!(if_config_in(&wrap), Err(rv::INVALID_VALUE));
        let bad_default = d::NpolConfigurePolicies {
            profile_default_tx: d::NpolPolicyDefault(3),
            ..m
        };
        assert_eq!(if_config_in(&bad_default), Err(rv::INVALID_VALUE));
    }
}
