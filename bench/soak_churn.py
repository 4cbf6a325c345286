#!/usr/bin/env python3
"""Configuration churn for `rvpp-bench soak`, through vpp_papi as calico drives VPP.

usage: soak_churn.py <apidir> <api socket> <seconds> <churn netns path> <uplink sw_if_index> <uplink next hop> <routes>

Until <seconds> have passed, round after round:
  - a tun pod added and deleted with semantics.md's §C messages (pod VRFs with their default
    routes, loopback, tun in <churn netns>, tables, MTU, flags, unnumbered, the /32 route, cnat
    and npol on the tun), then taken down in reverse;
  - <routes> /32 routes added in table 0 via the uplink, then deleted (a wave);
  - 256 neighbours on the uplink added and deleted;
  - 100 services (cnat translations) added and deleted;
  - 50 policy rules with a policy over them created and deleted.
Every reply must be 0. One JSON line per round on stdout; the exit status is 1 when any reply
was not 0 (the line names the first).
"""
import json
import sys
import time

try:
    from vpp_papi.vpp_papi import VPPApiClient
except ImportError as e:  # pragma: no cover
    print("vpp_papi not importable: %s" % e, file=sys.stderr)
    sys.exit(77)

APIDIR, SOCK, SECONDS, CHURN_NS, UPLINK, NEXT_HOP, ROUTES = sys.argv[1:8]
UPLINK = int(UPLINK)
ROUTES = int(ROUTES)
NONE = 0xFFFFFFFF
LABELS = [{"is_uniform": 0, "label": 0, "ttl": 0, "exp": 0}] * 16
TUN = 16


class Failed(Exception):
    pass


def ok(r, what):
    if r.retval != 0:
        raise Failed("%s: retval %d" % (what, r.retval))
    return r


def path(sw=NONE, nh=None, table=0, v6=False):
    p = {"sw_if_index": sw, "table_id": table, "weight": 1, "preference": 0, "type": 0,
         "flags": 0, "proto": 1 if v6 else 0, "n_labels": 0, "label_stack": LABELS}
    if nh:
        p["nh"] = {"address": {"ip6" if v6 else "ip4": nh}}
    return p


def route(vpp, pfx, paths, table=0, is_add=1):
    return vpp.api.ip_route_add_del(is_add=is_add, is_multipath=0,
                                    route={"table_id": table, "prefix": pfx, "n_paths": len(paths),
                                           "paths": paths})


def pod_cycle(vpp, i):
    """One pod through the agent's add sequence, then its delete sequence."""
    pod4 = "198.18.30.%d" % (2 + i % 250)
    vrf = {}
    for af, n in ((0, "ip4"), (1, "ip6")):
        r = ok(vpp.api.ip_table_allocate(table={"table_id": NONE, "is_ip6": af,
                                                "name": "soak-pod-%s-%d" % (n, i)}), "pod vrf")
        vrf[af] = r.table.table_id
        dflt = "::/0" if af else "0.0.0.0/0"
        ok(route(vpp, dflt, [path(table=0, v6=bool(af))], table=vrf[af]), "pod vrf default")
    lo = ok(vpp.api.create_loopback(mac_address="02:00:00:00:00:01"), "loopback").sw_if_index
    for af in (0, 1):
        ok(vpp.api.sw_interface_set_table(sw_if_index=lo, is_ipv6=af, vrf_id=vrf[af]), "lo vrf")
    ok(vpp.api.sw_interface_add_del_address(sw_if_index=lo, is_add=1, prefix=pod4 + "/32"), "lo addr")
    tun = ok(vpp.api.tap_create_v3(id=NONE, use_random_mac=1, num_rx_queues=1, num_tx_queues=1,
                                   tx_ring_sz=256, rx_ring_sz=256, host_mtu_set=1, host_mtu_size=1500,
                                   tap_flags=TUN, host_namespace_set=1, host_namespace=CHURN_NS,
                                   host_if_name_set=1, host_if_name="eth%d" % (i % 1000),
                                   tag="soak-pod"), "tun").sw_if_index
    ok(vpp.api.feature_cnat_enable_disable(sw_if_index=tun, enable_disable=1), "cnat on tun")
    for af in (0, 1):
        ok(vpp.api.sw_interface_set_table(sw_if_index=tun, is_ipv6=af, vrf_id=vrf[af]), "tun vrf")
    ok(vpp.api.sw_interface_set_mtu(sw_if_index=tun, mtu=[1500, 0, 0, 0]), "tun mtu")
    ok(vpp.api.sw_interface_set_flags(sw_if_index=tun, flags=1), "tun up")
    ok(vpp.api.sw_interface_set_unnumbered(sw_if_index=lo, unnumbered_sw_if_index=tun, is_add=1),
       "unnumbered")
    ok(route(vpp, pod4 + "/32", [path(tun)]), "pod route")
    rule = ok(vpp.api.npol_rule_create(rule={"action": 0, "filters": [{}] * 3, "num_entries": 0,
                                             "matches": []}), "rule").rule_id
    prof = ok(vpp.api.npol_policy_create(num_items=1, rules=[{"is_inbound": 1, "rule_id": rule}]),
              "profile").policy_id
    ok(vpp.api.npol_configure_policies(sw_if_index=tun, num_rx_policies=0, num_tx_policies=0,
                                       total_ids=1, invert_rx_tx=0, policy_default_rx=2,
                                       policy_default_tx=2, profile_default_rx=1, profile_default_tx=1,
                                       policy_ids=[prof]), "npol on tun")
    # delete, as the agent's DelVppInterface
    ok(vpp.api.npol_configure_policies(sw_if_index=tun, num_rx_policies=0, num_tx_policies=0,
                                       total_ids=0, invert_rx_tx=0, policy_default_rx=0,
                                       policy_default_tx=0, profile_default_rx=0, profile_default_tx=0,
                                       policy_ids=[]), "npol off")
    ok(vpp.api.npol_policy_delete(policy_id=prof), "profile del")
    ok(vpp.api.npol_rule_delete(rule_id=rule), "rule del")
    ok(route(vpp, pod4 + "/32", [path(tun)], is_add=0), "pod route del")
    ok(vpp.api.feature_cnat_enable_disable(sw_if_index=tun, enable_disable=0), "cnat off")
    ok(vpp.api.tap_delete_v2(sw_if_index=tun), "tun del")
    ok(vpp.api.delete_loopback(sw_if_index=lo), "loopback del")
    for af in (0, 1):
        dflt = "::/0" if af else "0.0.0.0/0"
        ok(route(vpp, dflt, [path(table=0, v6=bool(af))], table=vrf[af], is_add=0), "vrf default del")
        ok(vpp.api.ip_table_add_del(is_add=0, table={"table_id": vrf[af], "is_ip6": af}), "vrf del")


def route_wave(vpp, n):
    base = (198 << 24) | (19 << 16)
    dsts = ["%d.%d.%d.%d/32" % (198, 19, (a >> 8) & 0xff, a & 0xff) for a in
            (base + k for k in range(n))]
    via = [path(UPLINK, NEXT_HOP)]
    for d in dsts:
        ok(route(vpp, d, via), "wave add")
    for d in dsts:
        ok(route(vpp, d, via, is_add=0), "wave del")


def neighbours(vpp):
    for add in (1, 0):
        for k in range(256):
            ok(vpp.api.ip_neighbor_add_del(is_add=add, neighbor={
                "sw_if_index": UPLINK, "flags": 1, "mac_address": "02:00:00:00:%02x:%02x" % (k >> 8, k & 0xff),
                "ip_address": "198.18.40.%d" % k}), "neighbour")


def services(vpp):
    ids = []
    for k in range(100):
        vip = {"addr": "198.19.250.%d" % k, "port": 80, "sw_if_index": NONE, "if_af": 0}
        dst = {"addr": "198.18.30.%d" % (2 + k), "port": 8080, "sw_if_index": NONE, "if_af": 0}
        src = {"addr": "0.0.0.0", "port": 0, "sw_if_index": NONE, "if_af": 0}
        r = ok(vpp.api.cnat_translation_update(translation={
            "vip": vip, "ip_proto": 6, "is_real_ip": 0, "flags": 3, "lb_type": 0, "n_paths": 1,
            "flow_hash_config": 0, "paths": [{"src_ep": src, "dst_ep": dst}]}), "service add")
        ids.append(r.id)
    for i in ids:
        ok(vpp.api.cnat_translation_del(id=i), "service del")


def policies(vpp):
    rules = [ok(vpp.api.npol_rule_create(rule={"action": 1, "filters": [{}] * 3, "num_entries": 0,
                                               "matches": []}), "rule").rule_id for _ in range(50)]
    pol = ok(vpp.api.npol_policy_create(num_items=len(rules),
                                        rules=[{"is_inbound": 1, "rule_id": r} for r in rules]),
             "policy").policy_id
    ok(vpp.api.npol_policy_delete(policy_id=pol), "policy del")
    for r in rules:
        ok(vpp.api.npol_rule_delete(rule_id=r), "rule del")


def main():
    vpp = VPPApiClient(apidir=APIDIR, server_address=SOCK, read_timeout=30)
    vpp.connect("soak-churn")
    deadline = time.time() + float(SECONDS)
    rounds = 0
    status = 0
    while time.time() < deadline:
        t = time.time()
        step = "pod"
        try:
            pod_cycle(vpp, rounds)
            step = "routes"
            route_wave(vpp, ROUTES)
            step = "neighbours"
            neighbours(vpp)
            step = "services"
            services(vpp)
            step = "policies"
            policies(vpp)
            rounds += 1
            print(json.dumps({"round": rounds, "seconds": round(time.time() - t, 2)}), flush=True)
        except Failed as e:
            print(json.dumps({"round": rounds + 1, "step": step, "error": str(e)}), flush=True)
            status = 1
            break
    vpp.disconnect()
    sys.exit(status)


if __name__ == "__main__":
    main()
