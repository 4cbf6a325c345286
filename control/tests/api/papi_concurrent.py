#!/usr/bin/env python3
"""Many rounds of 8 API clients at once, each adding 50 routes, dumping and deleting them
(run by control/tests/api_papi.rs). Every client must find exactly its own routes in
ip_route_dump in every round.

usage: papi_concurrent.py <apidir> <api socket> <rounds>
"""
import sys

from papi_api import check, client, concurrent_route_clients

ROUNDS = int(sys.argv[3])


def main():
    vpp = client("papi-conc")
    lo = vpp.api.create_loopback(mac_address="02:00:00:00:0c:01").sw_if_index
    check(vpp.api.sw_interface_set_flags(sw_if_index=lo, flags=1).retval == 0, "loop up")
    r = vpp.api.sw_interface_add_del_address(sw_if_index=lo, is_add=1, prefix="198.18.5.1/24")
    check(r.retval == 0, "loop address")
    for n in range(ROUNDS):
        errors = concurrent_route_clients(lo, 8, 50)
        check(not errors, "round %d: 8 concurrent clients %s" % (n, errors))
    left = [d for d in vpp.api.ip_route_dump(table={"table_id": 0, "is_ip6": 0})
            if str(d.route.prefix).startswith("198.19.")]
    check(not left, "every client's routes are gone: %s" % left)
    vpp.disconnect()
    print("ALL OK")


if __name__ == "__main__":
    main()
