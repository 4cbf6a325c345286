#!/usr/bin/env python3
"""Tag an interface through the binary API, as calico does (sw_interface_tag_add_del).

usage: papi_tag.py <apidir> <api socket> <interface name> <tag>
Exit 77 if vpp_papi cannot be imported.
"""
import sys

try:
    from vpp_papi.vpp_papi import VPPApiClient
except ImportError as e:
    print("vpp_papi not importable: %s" % e)
    sys.exit(77)


def main():
    apidir, sock, ifname, tag = sys.argv[1:5]
    vpp = VPPApiClient(apidir=apidir, server_address=sock, read_timeout=10)
    vpp.connect("metrics-test")
    try:
        sw = [i.sw_if_index for i in vpp.api.sw_interface_dump() if i.interface_name == ifname]
        if len(sw) != 1:
            raise AssertionError("%s not in sw_interface_dump" % ifname)
        r = vpp.api.sw_interface_tag_add_del(is_add=True, sw_if_index=sw[0], tag=tag)
        if r.retval != 0:
            raise AssertionError("sw_interface_tag_add_del: retval %d" % r.retval)
        print("tagged\t%d" % sw[0])
    finally:
        vpp.disconnect()


if __name__ == "__main__":
    main()
