#!/usr/bin/env python3
"""npol over the binary API, programmed the way calico-vpp-agent's felix server programs it,
and the bad input it must refuse without changing anything (run by control/tests/api_papi.rs).

usage: papi_npol.py <apidir> <api socket>
Exits 77 when vpp_papi is not importable; raises (non-zero exit) on the first failed check.
"""
import sys

try:
    from vpp_papi.vpp_papi import VPPApiClient
except ImportError as e:  # pragma: no cover
    print("vpp_papi not importable: %s" % e)
    sys.exit(77)

APIDIR, SOCK = sys.argv[1], sys.argv[2]
NONE = 0xFFFFFFFF
NO_SUCH_ENTRY, INVALID_VALUE, INVALID_SW_IF_INDEX, RSRC_IN_USE = -6, -7, -2, -155
IP, IP_AND_PORT, NET = 0, 1, 2
ALLOW, DENY, LOG, PASS = 0, 1, 2, 3
CIDR, PORT_RANGE, PORT_IP_SET, IP_SET = 0, 1, 2, 3
D_ALLOW, D_DENY, D_PASS = 0, 1, 2
F_NONE, F_ICMP_TYPE, F_ICMP_CODE, F_L4_PROTO = 0, 1, 2, 3


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok:", what)


def rv(r, want, what):
    check(r.retval == want, "%s -> %d (retval %d)" % (what, want, r.retval))
    return r


def rule(action, matches=(), filters=()):
    f = list(filters) + [{"type": F_NONE, "value": 0, "should_match": 0}] * (3 - len(filters))
    return {"action": action, "filters": f, "num_entries": len(matches), "matches": list(matches)}


def m(kind, data, is_src=0, is_not=0):
    return {"is_src": is_src, "is_not": is_not, "type": kind, "data": data}


def members(vpp, set_id, add, vals):
    return vpp.api.npol_ipset_add_del_members(set_id=set_id, is_add=add, len=len(vals),
                                              members=[{"val": v} for v in vals])


def configure(vpp, sw, rx=(), tx=(), profiles=(), invert=0, defaults=(D_ALLOW, D_ALLOW, D_ALLOW, D_ALLOW)):
    ids = list(rx) + list(tx) + list(profiles)
    return vpp.api.npol_configure_policies(sw_if_index=sw, num_rx_policies=len(rx), num_tx_policies=len(tx),
                                           total_ids=len(ids), invert_rx_tx=invert,
                                           policy_default_rx=defaults[0], policy_default_tx=defaults[1],
                                           profile_default_rx=defaults[2], profile_default_tx=defaults[3],
                                           policy_ids=ids)


def main():
    vpp = VPPApiClient(apidir=APIDIR, server_address=SOCK, read_timeout=10)
    vpp.connect("papi-npol")
    lo = vpp.api.create_loopback(mac_address="02:00:00:00:00:01").sw_if_index

    # ipsets of each kind, members added and deleted in bulk
    ips = rv(vpp.api.npol_ipset_create(type=IP), 0, "ip ipset").set_id
    nets = rv(vpp.api.npol_ipset_create(type=NET), 0, "net ipset").set_id
    ports = rv(vpp.api.npol_ipset_create(type=IP_AND_PORT), 0, "ip-and-port ipset").set_id
    check(len({ips, nets, ports}) == 3, "three ids %r" % [ips, nets, ports])
    rv(members(vpp, ips, 1, [{"address": "198.18.0.%d" % i} for i in range(1, 101)] + [{"address": "fd00::1"}]),
       0, "101 addresses in one message")
    rv(members(vpp, nets, 1, [{"prefix": "198.18.64.0/18"}, {"prefix": "fd00:1::/64"}]), 0, "networks")
    rv(members(vpp, ports, 1, [{"tuple": {"address": "198.18.0.7", "l4_proto": 6, "port": 8080}}]), 0,
       "an (address, proto, port)")
    rv(members(vpp, ips, 0, [{"address": "198.18.0.%d" % i} for i in range(51, 101)]), 0, "50 deleted in bulk")
    rv(vpp.api.npol_ipset_create(type=7), INVALID_VALUE, "unknown ipset type")
    rv(members(vpp, 4242, 1, [{"address": "198.18.0.1"}]), NO_SUCH_ENTRY, "members of an unknown ipset")
    rv(members(vpp, ips, 0, [{"address": "198.18.0.1"}, {"address": "198.18.0.200"}]), NO_SUCH_ENTRY,
       "deleting a member not there (and its companion stays)")
    rv(members(vpp, ips, 0, [{"address": "198.18.0.1"}]), 0, "the companion was still there")
    rv(members(vpp, nets, 1, [{"prefix": "198.18.0.0/33"}]), INVALID_VALUE, "a /33")

    # rules: every match type and filter
    r_cidr = rv(vpp.api.npol_rule_create(rule=rule(ALLOW, [m(CIDR, {"cidr": "198.18.0.0/24"}, is_src=1),
                                                       m(CIDR, {"cidr": "198.18.0.128/25"}, is_src=1, is_not=1)])),
                0, "cidr rule").rule_id
    r_ports = rv(vpp.api.npol_rule_create(rule=rule(DENY, [m(PORT_RANGE, {"port_range": {"start": 22, "end": 23}}),
                                                        m(PORT_IP_SET, {"set_id": {"set_id": ports}})],
                                                    [{"type": F_L4_PROTO, "value": 6, "should_match": 1}])),
                 0, "port rule").rule_id
    r_sets = rv(vpp.api.npol_rule_create(rule=rule(PASS, [m(IP_SET, {"set_id": {"set_id": ips}}, is_src=1),
                                                       m(IP_SET, {"set_id": {"set_id": nets}})])),
                0, "ipset rule").rule_id
    r_icmp = rv(vpp.api.npol_rule_create(rule=rule(ALLOW, [], [{"type": F_ICMP_TYPE, "value": 8, "should_match": 1},
                                                            {"type": F_ICMP_CODE, "value": 0, "should_match": 1}])),
                0, "icmp echo rule").rule_id
    rv(vpp.api.npol_rule_create(rule=rule(ALLOW, [m(IP_SET, {"set_id": {"set_id": 4242}})])), NO_SUCH_ENTRY,
       "a rule naming an unknown ipset")
    rv(vpp.api.npol_rule_create(rule=rule(ALLOW, [m(PORT_IP_SET, {"set_id": {"set_id": ips}})])), INVALID_VALUE,
       "a port match on an ip ipset")
    rv(vpp.api.npol_rule_create(rule=rule(9)), INVALID_VALUE, "unknown action")
    rv(vpp.api.npol_rule_create(rule=rule(ALLOW, [m(PORT_RANGE, {"port_range": {"start": 90, "end": 80}})])),
       INVALID_VALUE, "a port range ending before it starts")
    rv(vpp.api.npol_rule_update(rule_id=r_icmp, rule=rule(DENY)), 0, "rule update")
    rv(vpp.api.npol_rule_update(rule_id=4242, rule=rule(DENY)), NO_SUCH_ENTRY, "update of an unknown rule")

    # policies and an interface, as felix: ingress (tx) policies, a profile, default deny
    pol = rv(vpp.api.npol_policy_create(num_items=3, rules=[{"is_inbound": 1, "rule_id": r_cidr},
                                                            {"is_inbound": 0, "rule_id": r_ports},
                                                            {"is_inbound": 0, "rule_id": r_sets}]),
             0, "policy").policy_id
    prof = rv(vpp.api.npol_policy_create(num_items=1, rules=[{"is_inbound": 1, "rule_id": r_icmp}]),
              0, "profile").policy_id
    rv(vpp.api.npol_policy_create(num_items=1, rules=[{"is_inbound": 1, "rule_id": 4242}]), NO_SUCH_ENTRY,
       "a policy naming an unknown rule")
    rv(vpp.api.npol_policy_update(policy_id=pol, num_items=1, rules=[{"is_inbound": 1, "rule_id": r_cidr}]), 0,
       "policy update")
    # rvpp's tier markers (Calico's tiers): accepted in the lists, not looked up as policies
    rv(configure(vpp, lo, rx=[pol, 0xFFFFFFFE, pol, 0xFFFFFFFD], tx=[pol], profiles=[prof]), 0,
       "npol_configure_policies with tier markers")
    rv(configure(vpp, lo, rx=[pol, 0xFFFFFFF0], tx=[pol], profiles=[prof]), NO_SUCH_ENTRY,
       "an id next to the markers is still a policy to find")
    rv(configure(vpp, lo, rx=[pol], tx=[pol], profiles=[prof], defaults=(D_DENY, D_DENY, D_PASS, D_DENY)), 0,
       "npol_configure_policies")
    name = [i.interface_name for i in vpp.api.sw_interface_dump() if i.sw_if_index == lo][0]
    feats = vpp.api.cli_inband(cmd="show interface features " + name).reply
    check(all(f in feats for f in ("npol-rx-ip4", "npol-rx-ip6", "npol-tx-ip4", "npol-tx-ip6")),
          "configure enables the four npol features: %r" % feats)
    cli = lambda c: vpp.api.cli_inband(cmd=c).reply
    out = cli("show npol ipsets")
    for want in ("[ipset %d] ip (50 members)" % ips, "[ipset %d] net (2 members)" % nets,
                 "[ipset %d] ip-and-port (1 members)" % ports, "198.18.64.0/18", "198.18.0.7 proto 6 port 8080"):
        check(want in out, "show npol ipsets has %r" % want)
    check("198.18.0.1\n" not in out and "198.18.0.51\n" not in out, "deleted members are gone")
    out = cli("show npol rules")
    check("[rule %d] allow src 198.18.0.0/24 src !198.18.0.128/25" % r_cidr in out, "cidr rule shown: %s" % out)
    check("[rule %d] deny proto==6 dst port 22-23 dst port-ipset %d" % (r_ports, ports) in out, "port rule shown")
    check("[rule %d] deny\n" % r_icmp in out, "the updated rule shown")
    out = cli("show npol policies")
    check("[policy %d] inbound [%d] outbound []" % (pol, r_cidr) in out, "updated policy shown: %s" % out)
    out = cli("show npol interfaces")
    check("%s (sw_if_index %d): rx [%d] tx [%d] profiles [%d] invert_rx_tx 0 policy-default rx deny tx deny "
          "profile-default rx pass tx deny" % (name, lo, pol, pol, prof) in out, "interface shown: %s" % out)
    match = lambda rest: cli("npol match %s %s" % (name, rest)).strip()
    check(match("rx 198.18.0.5;1000->198.19.0.1;80 tcp") == "allow", "npol match: the cidr rule allows")
    check(match("rx 198.18.0.200;1000->198.19.0.1;80 tcp") == "deny", "npol match: the negated /25 falls to the default")
    check(match("tx 198.18.0.5;1000->198.19.0.1;80 tcp") == "deny", "npol match: tx has no rule, default deny")
    check(cli("npol match %s rx 198.18.0.5->fd00::1 tcp" % name).startswith("addresses of two"), "npol match refuses mixed families")
    rv(configure(vpp, lo, rx=[4242]), NO_SUCH_ENTRY, "configure with an unknown policy")
    check("rx [%d] tx [%d]" % (pol, pol) in cli("show npol interfaces"), "a refused configure changes nothing")

    # rvpp's host endpoint sections (invert_rx_tx=1): [untracked.., U, pre-DNAT.., P, normal..];
    # received packets walk the tx list, the only one that may hold pre-DNAT policies
    U, P = 0xFFFFFFFC, 0xFFFFFFFB
    stage_feats = ("npol-untracked-rx-ip4", "npol-untracked-rx-ip6", "npol-untracked-tx-ip4",
                   "npol-untracked-tx-ip6", "npol-prednat-ip4", "npol-prednat-ip6")
    feats_of = lambda: cli("show interface features " + name)
    before, feats_before = cli("show npol interfaces"), feats_of()
    check(not any(f in feats_before for f in stage_feats), "no stage nodes without sections")
    for what, kw in [
        ("sections on a pod interface (invert_rx_tx=0)", dict(rx=[pol], tx=[pol, U, pol])),
        ("an untracked marker repeated", dict(tx=[pol, U, pol, U], invert=1)),
        ("a pre-DNAT marker repeated", dict(tx=[pol, P, P], invert=1)),
        ("markers out of order", dict(tx=[pol, P, pol, U, pol], invert=1)),
        ("pre-DNAT in the list sent packets walk", dict(rx=[pol, P], tx=[pol], invert=1)),
        ("a section marker in the profiles", dict(profiles=[prof, U], invert=1)),
        ("a tier marker in a section", dict(tx=[pol, 0xFFFFFFFE, U], invert=1)),
    ]:
        rv(configure(vpp, lo, **kw), INVALID_VALUE, what)
        check(cli("show npol interfaces") == before and feats_of() == feats_before, "%s changes nothing" % what)
    rv(configure(vpp, lo, rx=[pol, U, pol], tx=[pol, U, prof, P, pol], invert=1), 0,
       "a host endpoint with untracked and pre-DNAT sections")
    out = cli("show npol interfaces")
    want = ("rx untracked [%d] pre-dnat [] normal [%d] tx untracked [%d] pre-dnat [%d] normal [%d] "
            "profiles [] invert_rx_tx 1" % (pol, pol, pol, prof, pol))
    check(want in out, "sections shown: %s" % out)
    # sent packets walk the rx list, whose untracked policy's inbound rule allows 198.18.0.0/24
    check(match("tx 198.18.0.5;1000->198.19.0.1;80 tcp") == "allow (untracked)",
          "npol match names the untracked stage")
    check(match("tx 198.18.0.200;1000->198.19.0.1;80 tcp") == "allow",
          "npol match: no untracked match, the normal stage's default")
    feats = feats_of()
    check(all(f in feats for f in stage_feats), "sections enable the stage nodes: %r" % feats)
    rv(configure(vpp, lo, tx=[prof, P, pol], invert=1), 0, "only a pre-DNAT section")
    feats = feats_of()
    check("npol-prednat-ip4" in feats and "npol-untracked-rx-ip4" not in feats and
          "npol-untracked-tx-ip6" not in feats, "an empty section's nodes are off: %r" % feats)
    rv(configure(vpp, lo, rx=[pol], tx=[pol], profiles=[prof], defaults=(D_DENY, D_DENY, D_PASS, D_DENY)), 0,
       "back to no sections")
    check(not any(f in feats_of() for f in stage_feats), "and no stage node")
    rv(configure(vpp, 4242, rx=[pol]), INVALID_SW_IF_INDEX, "configure on an unknown interface")
    rv(vpp.api.npol_configure_policies(sw_if_index=lo, num_rx_policies=2, num_tx_policies=1, total_ids=1,
                                       policy_ids=[pol]), INVALID_VALUE, "counts beyond the ids")
    rv(configure(vpp, lo, defaults=(D_ALLOW, 5, D_ALLOW, D_ALLOW)), INVALID_VALUE, "unknown default")

    # what is in use cannot go; in reverse order everything can
    rv(vpp.api.npol_ipset_delete(set_id=ips), RSRC_IN_USE, "delete an ipset a rule names")
    rv(vpp.api.npol_rule_delete(rule_id=r_cidr), RSRC_IN_USE, "delete a rule a policy names")
    rv(vpp.api.npol_policy_delete(policy_id=pol), RSRC_IN_USE, "delete a policy an interface uses")
    rv(configure(vpp, lo), 0, "unconfigure (no policies, defaults allow)")
    for p in (pol, prof):
        rv(vpp.api.npol_policy_delete(policy_id=p), 0, "policy %d deleted" % p)
    rv(vpp.api.npol_policy_delete(policy_id=pol), NO_SUCH_ENTRY, "policy deleted twice")
    for r in (r_cidr, r_ports, r_sets, r_icmp):
        rv(vpp.api.npol_rule_delete(rule_id=r), 0, "rule %d deleted" % r)
    for s in (ips, nets, ports):
        rv(vpp.api.npol_ipset_delete(set_id=s), 0, "ipset %d deleted" % s)
    rv(vpp.api.npol_ipset_delete(set_id=ips), NO_SUCH_ENTRY, "ipset deleted twice")

    # 100k members in one message, then all deleted in one
    big = rv(vpp.api.npol_ipset_create(type=IP), 0, "ipset for 100k members").set_id
    many = [{"address": "10.%d.%d.%d" % (i >> 16, (i >> 8) & 255, i & 255)} for i in range(100000)]
    rv(members(vpp, big, 1, many), 0, "100k members added in one message")
    rv(members(vpp, big, 0, many), 0, "and deleted in one (each was there)")
    rv(members(vpp, big, 0, many[:1]), NO_SUCH_ENTRY, "gone")
    rv(vpp.api.npol_ipset_delete(set_id=big), 0, "big ipset deleted")

    # a configure on a deleted interface
    p2 = rv(vpp.api.npol_policy_create(num_items=0, rules=[]), 0, "empty policy").policy_id
    rv(vpp.api.delete_loopback(sw_if_index=lo), 0, "loopback deleted")
    rv(configure(vpp, lo, rx=[p2]), INVALID_SW_IF_INDEX, "configure on a deleted interface")
    rv(vpp.api.npol_policy_delete(policy_id=p2), 0, "unused policy deleted")
    vpp.disconnect()
    print("ALL OK")


if __name__ == "__main__":
    main()
