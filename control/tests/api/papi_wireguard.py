#!/usr/bin/env python3
"""Two rvpp nodes joined by WireGuard as calico-vpp's agent joins them
(agent/connectivity/wireguard.go, semantics.md §D WireGuard), over vpp_papi. Run by
control/tests/wireguard_papi.rs, which made the uplinks (tap0, 198.18.0.N/24) and the pods
(tap1, pod block 198.19.N-1.0/24) and checks the traffic afterwards.

usage: papi_wireguard.py <apidir> <api socket A> <api socket B>

Per node: the pod VRF (table 2), then wireguard_interface_create with generate_key=1 and the
node address as source, wireguard_interface_dump with show_private_key=1 to read the public
key back, cnat, unnumbered to the uplink, admin up. Per peer: wireguard_peer_add (public key,
port 51820, persistent_keepalive 1, endpoint = peer node, allowed IPs = its pod block and its
/32), the peer /32 in table 2 via the wg interface, the pod block in table 0 via {wg, nh =
block address}. An update is remove + add, as calico does it.
"""
import sys

from checks import check, ok

try:
    from vpp_papi.vpp_papi import VPPApiClient
except ImportError as e:  # pragma: no cover
    print("vpp_papi not importable: %s" % e)
    sys.exit(77)

APIDIR, SOCK_A, SOCK_B = sys.argv[1:4]
NONE = 0xFFFFFFFF
LABELS = [{"is_uniform": 0, "label": 0, "ttl": 0, "exp": 0}] * 16
NODES = {"A": ("198.18.0.1", "198.19.0.0/24", "198.19.0.0", "fd00:18::1"),
         "B": ("198.18.0.2", "198.19.1.0/24", "198.19.1.0", "fd00:18::2")}


def path(sw=NONE, nh=None, table=0):
    p = {"sw_if_index": sw, "table_id": table, "weight": 1, "proto": 0, "label_stack": LABELS}
    if nh:
        p["nh"] = {"address": {"ip4": nh}}
    return p


def route(vpp, pfx, paths, table=0, is_add=1):
    return vpp.api.ip_route_add_del(is_add=is_add, is_multipath=0, route={
        "table_id": table, "prefix": pfx, "n_paths": len(paths), "paths": paths})


def sw_of(vpp, name):
    return [i.sw_if_index for i in vpp.api.sw_interface_dump() if i.interface_name == name][0]


def node_up(vpp, name):
    """vpp-manager's pod VRF and the agent's wireguard interface; (sw_if_index, public key)."""
    addr = NODES[name][0]
    ok(vpp.api.ip_table_add_del(is_add=1, table={"table_id": 2, "is_ip6": 0,
                                                 "name": "calico-pods-ip4"}), name + " pod vrf")
    ok(route(vpp, "0.0.0.0/0", [path(table=0)], table=2), name + " pod vrf default -> table 0")
    check(list(vpp.api.wireguard_interface_dump(show_private_key=1, sw_if_index=NONE)) == [],
          name + " no wg interface yet")
    r = ok(vpp.api.wireguard_interface_create(
        interface={"user_instance": NONE, "port": 51820, "src_ip": addr}, generate_key=1),
        name + " wireguard_interface_create")
    wg = r.sw_if_index
    again = vpp.api.wireguard_interface_create(
        interface={"user_instance": NONE, "port": 51820, "src_ip": addr}, generate_key=1)
    check(again.retval != 0, name + " a second interface on the same port and source is refused")
    rows = list(vpp.api.wireguard_interface_dump(show_private_key=1, sw_if_index=wg))
    check(len(rows) == 1, name + " wireguard_interface_dump")
    i = rows[0].interface
    check(i.port == 51820 and str(i.src_ip) == addr and i.sw_if_index == wg, name + " dump fields")
    check(bytes(i.public_key) != bytes(32) and bytes(i.private_key) != bytes(32),
          name + " keys generated and shown")
    hidden = list(vpp.api.wireguard_interface_dump(show_private_key=0, sw_if_index=wg))[0]
    check(bytes(hidden.interface.private_key) == bytes(32), name + " private key hidden unless asked")
    names = [x.interface_name for x in vpp.api.sw_interface_dump(sw_if_index=wg)]
    check(names == ["wg0"], name + " named as VPP names it: %s" % names)
    # calico's other address family: the same port and the key read back, another source.
    v6 = ok(vpp.api.wireguard_interface_create(
        interface={"user_instance": NONE, "port": 51820, "src_ip": NODES[name][3],
                   "private_key": bytes(i.private_key)}, generate_key=0),
        name + " IPv6 interface with the IPv4 one's key").sw_if_index
    j = list(vpp.api.wireguard_interface_dump(show_private_key=1, sw_if_index=v6))[0].interface
    check(bytes(j.public_key) == bytes(i.public_key) and j.port == 51820,
          name + " same key, same port")
    check(len(list(vpp.api.wireguard_interface_dump(show_private_key=0, sw_if_index=NONE))) == 2,
          name + " two wg interfaces dumped")
    ok(vpp.api.wireguard_interface_delete(sw_if_index=v6), name + " wireguard_interface_delete")
    check(vpp.api.wireguard_interface_delete(sw_if_index=v6).retval == -2,
          name + " delete twice: INVALID_SW_IF_INDEX")
    ok(vpp.api.feature_cnat_enable_disable(sw_if_index=wg, enable_disable=1), name + " cnat on wg")
    ok(vpp.api.sw_interface_set_unnumbered(sw_if_index=sw_of(vpp, "tap0"),
                                           unnumbered_sw_if_index=wg, is_add=1), name + " unnumbered")
    ok(vpp.api.sw_interface_set_flags(sw_if_index=wg, flags=1), name + " wg admin up")
    return wg, bytes(i.public_key)


def peer(pub, wg, other):
    addr, block = NODES[other][:2]
    return {"public_key": pub, "port": 51820, "persistent_keepalive": 1, "table_id": 0,
            "endpoint": addr, "sw_if_index": wg, "n_allowed_ips": 2,
            "allowed_ips": [block, addr + "/32"]}


def peer_up(vpp, name, wg, pub, other):
    addr, block, block_addr = NODES[other][:3]
    bad = vpp.api.wireguard_peer_add(peer=peer(pub, 0x7777, other))
    check(bad.retval == -2, name + " peer on a non-wg interface: INVALID_SW_IF_INDEX")
    first = ok(vpp.api.wireguard_peer_add(peer=peer(pub, wg, other)), name + " wireguard_peer_add")
    dup = vpp.api.wireguard_peer_add(peer=peer(pub, wg, other))
    check(dup.retval != 0, name + " the same key twice is refused")
    # calico updates a peer by removing and adding it.
    ok(vpp.api.wireguard_peer_remove(peer_index=first.peer_index), name + " peer remove")
    check(vpp.api.wireguard_peer_remove(peer_index=first.peer_index).retval == -6,
          name + " peer remove twice: NO_SUCH_ENTRY")
    r = ok(vpp.api.wireguard_peer_add(peer=peer(pub, wg, other)), name + " peer add again")
    rows = list(vpp.api.wireguard_peers_dump(peer_index=NONE))
    check(len(rows) == 1 and rows[0].peer.peer_index == r.peer_index, name + " peers dump")
    p = rows[0].peer
    check(str(p.endpoint) == addr and p.port == 51820 and p.persistent_keepalive == 1
          and bytes(p.public_key) == pub and p.sw_if_index == wg, name + " peer fields")
    check(sorted(str(a) for a in p.allowed_ips) == sorted([block, addr + "/32"]),
          name + " allowed ips %s" % [str(a) for a in p.allowed_ips])
    ok(route(vpp, addr + "/32", [path(sw=wg)], table=2), name + " peer /32 in table 2 via wg")
    ok(route(vpp, block, [path(sw=wg, nh=block_addr)]), name + " pod block via {wg, block address}")


def main():
    a = VPPApiClient(apidir=APIDIR, server_address=SOCK_A, read_timeout=15)
    b = VPPApiClient(apidir=APIDIR, server_address=SOCK_B, read_timeout=15)
    a.connect("wg-test-a")
    b.connect("wg-test-b")
    wg_a, pub_a = node_up(a, "A")
    wg_b, pub_b = node_up(b, "B")
    check(pub_a != pub_b, "two nodes, two keys")
    peer_up(a, "A", wg_a, pub_b, "B")
    peer_up(b, "B", wg_b, pub_a, "A")
    a.disconnect()
    b.disconnect()
    print("ALL OK")


if __name__ == "__main__":
    main()
