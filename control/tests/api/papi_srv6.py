#!/usr/bin/env python3
"""SRv6 over the binary API in the order calico-vpp-agent's connectivity/srv6.go sends it
(encap source, END_DT4/END_DT6 localsids, a policy then sr_policy_mod ADD for more SID lists,
steering of an IPv4 and an IPv6 prefix), the three dumps, VPP's return codes for bad input, and
teardown (run by control/tests/api_papi.rs).

usage: papi_srv6.py <apidir> <api socket>
Exits 77 when vpp_papi is not importable; raises (non-zero exit) on the first failed check.
"""
import ipaddress
import sys

try:
    from vpp_papi.vpp_papi import VPPApiClient
except ImportError as e:  # pragma: no cover
    print("vpp_papi not importable: %s" % e)
    sys.exit(77)

APIDIR, SOCK = sys.argv[1], sys.argv[2]
END, X, DX6, DX4, DT6, DT4 = 1, 2, 6, 7, 8, 9
OP_ADD, OP_DEL, OP_MOD = 1, 2, 3
STEER_IPV4, STEER_IPV6, STEER_L2 = 4, 6, 2
NODE = "fd00::1"


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok:", what)


def rv(r, want, what):
    check(r.retval == want, "%s -> %d (retval %d)" % (what, want, r.retval))
    return r


def sids(*s, weight=1):
    return {"num_sids": len(s), "weight": weight, "sids": list(s) + ["::"] * (16 - len(s))}


def a6(x):
    return ipaddress.IPv6Address(str(x))


def main():
    vpp = VPPApiClient(apidir=APIDIR, server_address=SOCK, read_timeout=10)
    vpp.connect("papi-srv6")
    api = vpp.api
    rv(api.sr_set_encap_source(encaps_source=NODE), 0, "encap source")
    for sid, b in (("fd00:1::d4", DT4), ("fd00:1::d6", DT6)):
        rv(api.sr_localsid_add_del(is_del=0, localsid=sid, end_psp=0, behavior=b, sw_if_index=0,
                                   vlan_index=0, fib_table=0, nh_addr="::"), 0, "localsid %s" % sid)
    rv(api.sr_localsid_add_del(is_del=0, localsid="fd00:1::d4", behavior=DT4, fib_table=0), -1,
       "the same localsid again")
    rv(api.sr_localsid_add_del(is_del=0, localsid="fd00:1::99", behavior=DT4, fib_table=77), -3,
       "a localsid in a table that does not exist")
    rv(api.sr_localsid_add_del(is_del=1, localsid="fd00:1::98", behavior=DT4), -2,
       "deleting a localsid not there")
    rv(api.sr_localsid_add_del(is_del=0, localsid="fd00:1::97", behavior=5, fib_table=0), -9,
       "End.DX2 is not implemented")
    ls = list(api.sr_localsids_dump())
    check(sorted((str(d.addr), d.behavior, d.fib_table, d.xconnect_iface_or_vrf_table) for d in ls)
          == [("fd00:1::d4", DT4, 0, 0), ("fd00:1::d6", DT6, 0, 0)], "localsids dump %s" % ls)
    routes = [str(r.route.prefix) for r in api.ip_route_dump(table={"table_id": 0, "is_ip6": 1})]
    check("fd00:1::d4/128" in routes, "the SID's /128 is in the FIB")

    bsid = "fd00:1::b1"
    rv(api.sr_policy_add(bsid_addr=bsid, weight=1, is_encap=1, is_spray=0, fib_table=0,
                         sids=sids("fd00:2::d4")), 0, "policy")
    rv(api.sr_policy_mod(bsid_addr=bsid, sr_policy_index=0, fib_table=0, operation=OP_ADD,
                         sl_index=0, weight=1, sids=sids("fd00:2::e", "fd00:3::d4", weight=3)), 0,
       "a second SID list (sr_policy_mod ADD)")
    rv(api.sr_policy_add(bsid_addr=bsid, weight=1, is_encap=1, fib_table=0, sids=sids("fd00:2::d4")),
       -12, "the same BSID again")
    rv(api.sr_policy_add(bsid_addr="fd00:1::b9", weight=1, is_encap=1, fib_table=55,
                         sids=sids("fd00:2::d4")), -13, "a policy in a table that does not exist")
    rv(api.sr_policy_mod(bsid_addr="fd00:1::b9", operation=OP_ADD, sids=sids("fd00:2::1")), -1,
       "modifying a policy not there")
    pol = list(api.sr_policies_dump())
    check(len(pol) == 1 and str(pol[0].bsid) == bsid and pol[0].is_encap and pol[0].num_sid_lists == 2,
          "policies dump %s" % pol)
    lists = [(l.num_sids, l.weight, [str(s) for s in l.sids[:l.num_sids]]) for l in pol[0].sid_lists]
    check(lists == [(1, 1, ["fd00:2::d4"]), (2, 3, ["fd00:2::e", "fd00:3::d4"])], "SID lists %s" % lists)
    rv(api.sr_policy_mod(bsid_addr=bsid, operation=OP_MOD, sl_index=1, weight=5,
                         sids=sids()), 0, "weight of list 1")
    check(list(api.sr_policies_dump())[0].sid_lists[1].weight == 5, "weight 5 dumped")
    rv(api.sr_policy_mod(bsid_addr=bsid, operation=OP_DEL, sl_index=7, sids=sids()), -1, "removing a list not there")

    for pfx, tt in (("198.19.64.0/24", STEER_IPV4), ("fd10:64::/64", STEER_IPV6)):
        rv(api.sr_steering_add_del(is_del=0, bsid_addr=bsid, sr_policy_index=0, table_id=0,
                                   prefix=pfx, sw_if_index=0, traffic_type=tt), 0, "steer %s" % pfx)
    rv(api.sr_steering_add_del(is_del=0, bsid_addr="fd00:1::b9", table_id=0, prefix="198.19.65.0/24",
                               traffic_type=STEER_IPV4), -2, "steering into a policy not there")
    rv(api.sr_steering_add_del(is_del=0, bsid_addr=bsid, table_id=0, prefix="198.19.65.0/24",
                               traffic_type=STEER_IPV6), -7, "an IPv4 prefix as IPv6 traffic")
    rv(api.sr_steering_add_del(is_del=1, bsid_addr=bsid, table_id=0, prefix="198.19.66.0/24",
                               traffic_type=STEER_IPV4), -3, "unsteering a prefix not steered")
    st = sorted((str(d.prefix), d.traffic_type, d.fib_table, str(d.bsid)) for d in api.sr_steering_pol_dump())
    check(st == [("198.19.64.0/24", STEER_IPV4, 0, bsid), ("fd10:64::/64", STEER_IPV6, 0, bsid)],
          "steering dump %s" % st)
    rv(api.sr_steering_add_del(is_del=1, bsid_addr=bsid, table_id=0, prefix="198.19.64.0/24",
                               traffic_type=STEER_IPV4), 0, "unsteer the IPv4 prefix")
    check(len(list(api.sr_steering_pol_dump())) == 1, "one steering left")

    # calico's rollback: the policy goes, and its steering with it
    rv(api.sr_policy_del(bsid_addr=bsid, sr_policy_index=0), 0, "policy deleted")
    rv(api.sr_policy_del(bsid_addr=bsid, sr_policy_index=0), -1, "deleted twice")
    check(list(api.sr_policies_dump()) == [] and list(api.sr_steering_pol_dump()) == [],
          "no policy, no steering left")
    for sid in ("fd00:1::d4", "fd00:1::d6"):
        rv(api.sr_localsid_add_del(is_del=1, localsid=sid), 0, "localsid %s deleted" % sid)
    check(list(api.sr_localsids_dump()) == [], "no localsid left")
    routes = [str(r.route.prefix) for r in api.ip_route_dump(table={"table_id": 0, "is_ip6": 1})]
    check("fd00:1::d4/128" not in routes and bsid + "/128" not in routes, "their routes are gone")
    vpp.disconnect()
    print("ALL OK")


if __name__ == "__main__":
    main()
