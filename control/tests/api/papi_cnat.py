#!/usr/bin/env python3
"""cnat over the binary API, programmed the way calico-vpp-agent programs it (run by
control/tests/api_papi.rs).

usage: papi_cnat.py <apidir> <api socket>
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
ALLOC_PORT, NO_CLIENT = 1, 8


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok:", what)


def ep(addr, port):
    return {"addr": addr, "sw_if_index": NONE, "if_af": 0, "port": port}


ALL_CNAT = {"ip4-unicast": ["cnat-input-ip4"], "ip6-unicast": ["cnat-input-ip6"],
            "ip4-output": ["cnat-output-ip4"], "ip6-output": ["cnat-output-ip6"],
            "ip4-local": [], "ip6-local": []}


def configured(vpp, ifname):
    """arc -> features shown by `show interface features`."""
    out, arc = {}, None
    for line in vpp.api.cli_inband(cmd="show interface features " + ifname).reply.splitlines():
        if line.endswith(":") and not line.startswith(" "):
            arc = line[:-1]
            out[arc] = []
        elif line.startswith("  ") and arc and line.strip() != "none configured":
            out[arc].append(line.strip())
    return out


def main():
    vpp = VPPApiClient(apidir=APIDIR, server_address=SOCK, read_timeout=10)
    vpp.connect("papi-cnat")
    lo = vpp.api.create_loopback(mac_address="02:00:00:00:00:01").sw_if_index

    r = vpp.api.feature_cnat_enable_disable(sw_if_index=lo, enable_disable=True)
    check(r.retval == 0, "feature_cnat_enable_disable on a real interface -> 0")
    r = vpp.api.feature_cnat_enable_disable(sw_if_index=4242, enable_disable=True)
    check(r.retval == -2, "feature_cnat_enable_disable on a bad interface -> %d" % r.retval)
    name = [i.interface_name for i in vpp.api.sw_interface_dump() if i.sw_if_index == lo][0]
    check(configured(vpp, name) == ALL_CNAT, "all four cnat features on: %r" % configured(vpp, name))
    # Each is a feature of the generic handler too.
    r = vpp.api.feature_enable_disable(sw_if_index=lo, enable=False, arc_name="ip4-output",
                                       feature_name="cnat-output-ip4")
    check(r.retval == 0 and configured(vpp, name).get("ip4-output") == [],
          "feature_enable_disable turns cnat-output-ip4 off alone")
    r = vpp.api.feature_enable_disable(sw_if_index=lo, enable=True, arc_name="ip4-output",
                                       feature_name="cnat-output-ip4")
    check(r.retval == 0 and configured(vpp, name) == ALL_CNAT, "and on again")

    # A ClusterIP service port as calico's service handler writes it.
    tr = {
        "vip": ep("198.19.255.1", 80),
        "id": 0,
        "ip_proto": 6,
        "is_real_ip": 0,
        "flags": ALLOC_PORT | NO_CLIENT,
        "lb_type": 0,
        "flow_hash_config": 0,
        "n_paths": 2,
        "paths": [
            {"src_ep": ep("0.0.0.0", 0), "dst_ep": ep("198.18.5.2", 8080), "flags": 0},
            {"src_ep": ep("0.0.0.0", 0), "dst_ep": ep("198.18.5.3", 8080), "flags": 0},
        ],
    }
    r = vpp.api.cnat_translation_update(translation=tr)
    check(r.retval == 0, "cnat_translation_update -> id %d" % r.id)
    tid = r.id
    r2 = vpp.api.cnat_translation_update(translation=tr)
    check(r2.retval == 0 and r2.id == tid, "an update keeps the id")
    out = vpp.api.cli_inband(cmd="show cnat translation").reply
    check("[%d] 198.19.255.1;80 TCP lb:default flags:0x9 fhc:0x9f" % tid in out, out)
    check("-> 198.18.5.2;8080" in out and "-> 198.18.5.3;8080" in out, "both paths shown")

    dump = vpp.api.cnat_translation_dump()
    check(len(dump) == 1, "cnat_translation_dump: one translation")
    t = dump[0].translation
    check(t.id == tid and str(t.vip.addr) == "198.19.255.1" and t.vip.port == 80
          and t.ip_proto == 6 and t.flags == ALLOC_PORT | NO_CLIENT and t.lb_type == 0,
          "the dump gives back what was programmed: %s" % (t,))
    check(sorted((str(p.dst_ep.addr), p.dst_ep.port) for p in t.paths)
          == [("198.18.5.2", 8080), ("198.18.5.3", 8080)], "and its paths")

    bad = dict(tr, n_paths=1, paths=[{"src_ep": ep("0.0.0.0", 0), "dst_ep": ep("fd00::5", 80), "flags": 0}])
    r = vpp.api.cnat_translation_update(translation=bad)
    check(r.retval == -7, "a path of the other family is refused (%d)" % r.retval)
    r = vpp.api.cnat_translation_update(translation=dict(tr, ip_proto=47))
    check(r.retval == -7, "GRE is no translation protocol")

    # SNAT, as the agent's bring-up sends it.
    r = vpp.api.cnat_set_snat_addresses_v2(fwd_fib_index=0, ret_fib_index=0,
                                           snat_ip4="198.18.0.1", snat_ip6="fd00::1",
                                           sw_if_index=NONE, flags=2 | 4)
    check(r.retval == 0, "cnat_set_snat_addresses_v2")
    r = vpp.api.cnat_snat_policy_add_del_exclude_pfx(is_add=1, prefix="198.18.0.0/16")
    check(r.retval == 0, "exclude prefix")
    r = vpp.api.cnat_set_snat_policy(policy=2)
    check(r.retval == 0, "K8S policy")
    r = vpp.api.cnat_snat_policy_add_del_if(sw_if_index=lo, is_add=1, table=2)
    check(r.retval == 0, "POD interface")
    r = vpp.api.cnat_snat_policy_add_del_if(sw_if_index=4242, is_add=1, table=2)
    check(r.retval == -2, "POD interface that does not exist")
    out = vpp.api.cli_inband(cmd="show cnat snat").reply
    check("snat ip4: 198.18.0.1 ip6: fd00::1" in out and "exclude 198.18.0.0/16" in out
          and "K8s" in out and "Pod interfaces: [%d]" % lo in out, out)

    r = vpp.api.cnat_get_snat_addresses()
    check(r.retval == 0 and str(r.snat_ip4) == "198.18.0.1" and str(r.snat_ip6) == "fd00::1",
          "cnat_get_snat_addresses")

    # The CLI edits the same SNAT configuration, in VPP's `set cnat snat-policy ...` syntax.
    name = [i.interface_name for i in vpp.api.sw_interface_dump() if i.sw_if_index == lo][0]
    for cmd in ["set cnat snat-policy addr 198.18.0.7 fd00::7",
                "set cnat snat-policy prefix 198.19.0.0/16",
                "set cnat snat-policy prefix del 198.18.0.0/16",
                "set cnat snat-policy if del table k8s " + name,
                "set cnat snat-policy if table host " + name,
                "set cnat snat-policy if-pfx"]:
        out = vpp.api.cli_inband(cmd=cmd).reply
        check(out.strip() == "", "%s: %s" % (cmd, out))
    r = vpp.api.cnat_get_snat_addresses()
    check(str(r.snat_ip4) == "198.18.0.7" and str(r.snat_ip6) == "fd00::7",
          "the CLI's SNAT addresses read through the API")
    out = vpp.api.cli_inband(cmd="show cnat snat").reply
    check("exclude 198.19.0.0/16" in out and "exclude 198.18.0.0/16" not in out
          and "policy: IfPfx" in out and "Host interfaces: [%d]" % lo in out
          and "Pod interfaces: []" in out, out)
    for cmd, want in [("set cnat snat-policy if table k8s no-such-if", "no-such-if"),
                      ("set cnat snat-policy prefix 198.19.0.0/33", "bad prefix"),
                      ("set cnat snat-policy if table pods " + name, "unknown table"),
                      ("set cnat snat-policy sideways", "unknown input")]:
        out = vpp.api.cli_inband(cmd=cmd).reply
        check(want in out, "%s: %s" % (cmd, out))
    r = vpp.api.cnat_set_snat_policy(policy=2)
    check(r.retval == 0, "back to the K8S policy")
    check(vpp.api.cnat_session_dump() == [], "no traffic, no sessions")
    r = vpp.api.cnat_session_purge()
    check(r.retval == 0, "cnat_session_purge")
    r = vpp.api.cnat_translation_del(id=tid)
    check(r.retval == 0, "cnat_translation_del")
    r = vpp.api.cnat_translation_del(id=tid)
    check(r.retval == -6, "deleting it twice -> NO_SUCH_ENTRY")
    out = vpp.api.cli_inband(cmd="show cnat translation").reply
    check("198.19.255.1" not in out, "gone from show cnat translation")
    r = vpp.api.feature_cnat_enable_disable(sw_if_index=lo, enable_disable=False)
    check(r.retval == 0, "disable")
    check(all(v == [] for v in configured(vpp, name).values()), "no feature left on")
    vpp.disconnect()
    print("ALL OK")


if __name__ == "__main__":
    main()
