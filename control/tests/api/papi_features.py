#!/usr/bin/env python3
"""Feature arcs over the binary API and the CLI with vpp_papi (run by control/tests/features.rs):
feature_enable_disable by (arc, feature) name, `set interface feature`, `show features` and
`show interface features` agree, and unknown names get VPP's return values.

usage: papi_features.py <apidir> <api socket>
Exits 77 when vpp_papi is not importable; raises (non-zero exit) on the first failed check.
"""
import sys

try:
    from vpp_papi.vpp_papi import VPPApiClient
except ImportError as e:  # pragma: no cover
    print("vpp_papi not importable: %s" % e)
    sys.exit(77)

APIDIR, SOCK = sys.argv[1:3]
INVALID_SW_IF_INDEX = -2
INVALID_VALUE = -7


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok:", what)


def cli(vpp, cmd):
    return vpp.api.cli_inband(cmd=cmd).reply


def configured(vpp, ifname):
    """arc -> features shown by `show interface features`."""
    out, arc = {}, None
    for line in cli(vpp, "show interface features " + ifname).splitlines():
        if line.endswith(":") and not line.startswith(" "):
            arc = line[:-1]
            out[arc] = []
        elif line.startswith("  ") and arc and line.strip() != "none configured":
            out[arc].append(line.strip())
    return out


def main():
    vpp = VPPApiClient(apidir=APIDIR, server_address=SOCK, read_timeout=15)
    vpp.connect("papi-features")
    r = vpp.api.create_loopback(mac_address="02:00:00:00:00:01")
    check(r.retval == 0, "loopback created")
    sw = r.sw_if_index
    name = [i.interface_name for i in vpp.api.sw_interface_dump() if i.sw_if_index == sw][0]

    feats = cli(vpp, "show features verbose")
    for arc in ("ip4-unicast", "ip6-unicast", "ip4-output", "ip6-output", "ip4-local", "ip6-local"):
        check(arc in feats, "show features lists arc " + arc)
    check("ip4-udp-deny" in feats, "show features lists ip4-udp-deny")
    check(configured(vpp, name).get("ip4-unicast") == [], "nothing configured at first")

    r = vpp.api.feature_enable_disable(
        sw_if_index=sw, enable=True, arc_name="ip4-unicast", feature_name="ip4-udp-deny")
    check(r.retval == 0, "API enables ip4-udp-deny")
    check(configured(vpp, name)["ip4-unicast"] == ["ip4-udp-deny"], "CLI shows it enabled")
    out = cli(vpp, "set interface feature %s ip4-udp-deny arc ip4-unicast disable" % name)
    check(out.strip() == "", "CLI disables it: %r" % out)
    check(configured(vpp, name)["ip4-unicast"] == [], "API view after CLI disable: none")
    out = cli(vpp, "set interface feature %s ip4-udp-deny arc ip4-unicast" % name)
    check(out.strip() == "", "CLI enables it again")
    r = vpp.api.feature_enable_disable(
        sw_if_index=sw, enable=False, arc_name="ip4-unicast", feature_name="ip4-udp-deny")
    check(r.retval == 0 and configured(vpp, name)["ip4-unicast"] == [], "API disables it")

    for arc, feat in (("ip4-unicast", "no-such-feature"), ("no-such-arc", "ip4-udp-deny"),
                      ("ip4-output", "ip4-udp-deny")):
        r = vpp.api.feature_enable_disable(
            sw_if_index=sw, enable=True, arc_name=arc, feature_name=feat)
        check(r.retval == INVALID_VALUE, "(%s, %s) -> INVALID_VALUE (got %d)" % (arc, feat, r.retval))
    r = vpp.api.feature_enable_disable(
        sw_if_index=12345, enable=True, arc_name="ip4-unicast", feature_name="ip4-udp-deny")
    check(r.retval == INVALID_SW_IF_INDEX, "unknown interface -> INVALID_SW_IF_INDEX")
    out = cli(vpp, "set interface feature %s no-such-feature arc ip4-unicast" % name)
    check("no feature 'no-such-feature' on arc 'ip4-unicast'" in out, "CLI names the error: %r" % out)
    check(all(v == [] for v in configured(vpp, name).values()), "errors changed nothing")
    vpp.disconnect()
    print("ALL OK")


if __name__ == "__main__":
    main()
