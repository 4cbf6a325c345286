#!/usr/bin/env python3
"""One control service behind the CLI, the API and the stats segment (run by
control/tests/api_service.rs): objects created through the API are deleted through the CLI,
and the reverse; after every step `show interface`, sw_interface_dump and the stats segment's
/if/names list the same interfaces, and `show memif`, memif_dump and
memif_socket_filename_dump the same memifs and sockets. Then the same for an address, a
table, a route, a neighbour and a punt redirect on a loopback: ip_address_dump,
ip_table_dump, ip_route_dump, ip_neighbor_dump and ip_punt_redirect_v2_dump agree with
`show interface address`, `show ip table`, `show ip fib table`, `show ip neighbors` and
`show ip punt redirect`.

usage: papi_service.py <apidir> <api socket> <cli socket> <stats socket> <rvppctl> <dir> <netns|->
"""
import subprocess
import sys
import time

try:
    from vpp_papi.vpp_papi import VPPApiClient
    from vpp_papi.vpp_stats import VPPStats
except ImportError as e:  # pragma: no cover
    print("vpp_papi not importable: %s" % e)
    sys.exit(77)

APIDIR, SOCK, CLI, STATS, RVPPCTL, DIR, NETNS = sys.argv[1:8]
NETNS = None if NETNS == "-" else NETNS
NONE = 0xFFFFFFFF
LABELS = [{"is_uniform": 0, "label": 0, "ttl": 0, "exp": 0}] * 16


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok:", what)


def cli(cmd):
    out = subprocess.run([RVPPCTL, "-s", CLI] + cmd.split(), capture_output=True, text=True,
                         timeout=20, check=True).stdout
    return out


def cli_ok(cmd):
    out = cli(cmd)
    check("unknown" not in out and "error" not in out.lower() and "not " not in out,
          "cli `%s' -> %r" % (cmd, out.strip()))
    return out.strip()


def cli_interfaces():
    out = {}
    for line in cli("show interface").splitlines()[1:]:
        w = line.split()
        # counter lines under an interface start with blanks
        if not line.startswith(" ") and len(w) >= 2 and w[1].isdigit():
            out[int(w[1])] = w[0]
    return out


def cli_memifs():
    """(sockets {id: file}, interfaces {name: socket id}) from `show memif`."""
    socks, ifs, name = {}, {}, None
    lines = cli("show memif").splitlines()
    section = None
    for line in lines:
        w = line.split()
        if line.startswith("sockets"):
            section = "sockets"
        elif line.startswith("interface "):
            section, name = "if", w[1]
        elif section == "sockets" and len(w) >= 3 and w[0].isdigit():
            socks[int(w[0])] = w[-1]
        elif section == "if" and w and w[0] == "socket-id":
            ifs[name] = int(w[1])
    return socks, ifs


def api_interfaces(vpp):
    return {d.sw_if_index: d.interface_name for d in vpp.api.sw_interface_dump(sw_if_index=NONE)}


def api_memifs(vpp):
    socks = {d.socket_id: d.socket_filename for d in vpp.api.memif_socket_filename_dump()}
    ifs = {d.if_name: d.socket_id for d in vpp.api.memif_dump()}
    return socks, ifs


def stats_interfaces(stats):
    names = stats["/if/names"]
    return {i: n for i, n in enumerate(names) if n and n != "deleted"}


def agree(vpp, stats, want, what):
    """Every view lists the interfaces `want` ({name}); the stats segment catches up within 2 s
    (it is rebuilt by the main thread's 10 ms refresh)."""
    api = api_interfaces(vpp)
    check(set(api.values()) == set(want) | {"local0"} and api.get(0) == "local0",
          "%s: sw_interface_dump lists %s" % (what, sorted(api.values())))
    check(cli_interfaces() == api, "%s: show interface agrees with sw_interface_dump: %s vs %s"
          % (what, cli_interfaces(), api))
    deadline = time.time() + 2
    while stats_interfaces(stats) != api and time.time() < deadline:
        time.sleep(0.02)
    check(stats_interfaces(stats) == api,
          "%s: /if/names agrees: %s vs %s" % (what, stats_interfaces(stats), api))
    socks, ifs = api_memifs(vpp)
    check(cli_memifs() == (socks, ifs),
          "%s: show memif agrees with memif_dump/memif_socket_filename_dump: %s vs %s"
          % (what, cli_memifs(), (socks, ifs)))
    return api


def host_link(ns, name):
    """Whether Linux interface `name` exists in namespace `ns`."""
    return subprocess.run(["ip", "-n", ns, "link", "show", name], capture_output=True).returncode == 0


def host_link_gone(ns, name):
    """True once `name` has left `ns` (within 2 s: the workers close a tap's queues, and with
    them the device, after the delete has answered)."""
    deadline = time.time() + 2
    while host_link(ns, name) and time.time() < deadline:
        time.sleep(0.02)
    return not host_link(ns, name)


def sw_of(views, name):
    return next(sw for sw, n in views.items() if n == name)


def ip4(b):
    return ".".join(str(x) for x in bytes(b)[:4])


def cli_l3():
    """({(ifname, prefix)} from `show interface address`."""
    out, name = set(), None
    for line in cli("show interface address").splitlines():
        w = line.split()
        if not line.startswith(" ") and w:
            name = w[0]
        elif w[:1] == ["L3"]:
            out.add((name, w[1]))
    return out


def cli_tables():
    return {int(w[1].split(":")[1]): w[2] for w in
            (line.split() for line in cli("show ip table").splitlines()) if len(w) >= 3}


def cli_routes(table):
    """Prefixes of table `table` from `show ip fib table`: the unindented lines with a /."""
    return {line.strip() for line in cli("show ip fib table %d" % table).splitlines()
            if not line.startswith(" ") and "/" in line and "fib_index" not in line}


def cli_neighbors():
    out = set()
    for line in cli("show ip neighbors").splitlines()[1:]:
        w = line.split()
        if len(w) == 4:
            out.add((w[3], w[0], w[2]))
    return out


def cli_punts():
    out = set()
    for line in cli("show ip punt redirect").splitlines():
        w = line.split()
        if len(w) >= 7 and w[3:6] == ["lookup", "in", "table"]:
            out.add((w[1], int(w[6])))
    return out


def api_l3(vpp, names):
    out = set()
    for sw, name in names.items():
        for a in vpp.api.ip_address_dump(sw_if_index=sw, is_ipv6=0):
            out.add((name, str(a.prefix)))
    return out


def api_routes(vpp, table):
    return {str(r.route.prefix) for r in
            vpp.api.ip_route_dump(table={"table_id": table, "is_ip6": 0})}


def api_neighbors(vpp, names):
    return {(names[n.neighbor.sw_if_index], str(n.neighbor.ip_address),
             str(n.neighbor.mac_address))
            for n in vpp.api.ip_neighbor_dump(sw_if_index=NONE, af=0)}


def api_punts(vpp, names):
    return {(names.get(p.punt.rx_sw_if_index, "all"), p.punt.paths[0].table_id)
            for p in vpp.api.ip_punt_redirect_v2_dump(sw_if_index=NONE, af=0)}


def ip_agree(vpp, stats, ifs, want, what):
    """The interfaces `ifs` and, in every view, exactly the objects `want` holds:
    l3 {(if, prefix)}, tables {id}, routes {table: {prefix}} (those added, beside what the
    table has of its own), neighbors {(if, ip, mac)}, punts {(rx, table)}."""
    names = agree(vpp, stats, ifs, what)
    l3 = api_l3(vpp, names)
    check(l3 == want["l3"] and cli_l3() == l3,
          "%s: addresses: api %s, cli %s, want %s" % (what, l3, cli_l3(), want["l3"]))
    api_t = {t.table.table_id: t.table.name for t in vpp.api.ip_table_dump() if not t.table.is_ip6}
    check(set(api_t) == {0} | want["tables"] and cli_tables() == api_t,
          "%s: tables: api %s, cli %s" % (what, api_t, cli_tables()))
    for t in {0} | want["tables"]:
        api_r, cli_r = api_routes(vpp, t), cli_routes(t)
        check(api_r == cli_r and want["routes"].get(t, set()) <= api_r,
              "%s: table %d routes: api %s, cli %s" % (what, t, sorted(api_r), sorted(cli_r)))
    for t, ps in want["gone"].items():
        check(not ps & api_routes(vpp, t), "%s: table %d has none of %s" % (what, t, ps))
    n = api_neighbors(vpp, names)
    check(n == want["neighbors"] and cli_neighbors() == n,
          "%s: neighbours: api %s, cli %s" % (what, n, cli_neighbors()))
    pu = api_punts(vpp, names)
    check(pu == want["punts"] and cli_punts() == pu,
          "%s: punt redirects: api %s, cli %s" % (what, pu, cli_punts()))
    return names


def ip_objects(vpp, stats):
    """Address, table, route, neighbour and punt redirect: API -> CLI, then CLI -> API."""
    mac = "02:00:00:00:0b:01"
    nothing = {"l3": set(), "tables": set(), "routes": {}, "gone": {}, "neighbors": set(),
               "punts": set()}
    # --- created through the API, deleted through the CLI --------------------------------
    r = vpp.api.create_loopback(mac_address="02:00:00:00:0a:11")
    check(r.retval == 0, "api create_loopback for the ip objects")
    lo = r.sw_if_index
    check(vpp.api.sw_interface_add_del_address(sw_if_index=lo, is_add=1,
                                               prefix="198.18.5.1/24").retval == 0, "api address")
    check(vpp.api.ip_table_add_del(is_add=1, table={"table_id": 77, "is_ip6": 0,
                                                    "name": "svc-77"}).retval == 0, "api table 77")
    path = {"sw_if_index": lo, "table_id": 77, "nh": {"address": {"ip4": "198.18.5.2"}},
            "proto": 0, "type": 0, "weight": 1, "label_stack": LABELS}
    r = vpp.api.ip_route_add_del(is_add=1, route={"table_id": 77, "prefix": "198.18.77.0/24",
                                                  "n_paths": 1, "paths": [path]})
    check(r.retval == 0, "api route in table 77")
    r = vpp.api.ip_neighbor_add_del(is_add=1, neighbor={
        "sw_if_index": lo, "flags": 1, "mac_address": mac, "ip_address": "198.18.5.2"})
    check(r.retval == 0, "api neighbour")
    deag = {"sw_if_index": NONE, "table_id": 77, "proto": 0, "type": 0, "weight": 1,
            "label_stack": LABELS}
    r = vpp.api.add_del_ip_punt_redirect_v2(is_add=1, punt={
        "rx_sw_if_index": lo, "af": 0, "n_paths": 1, "paths": [deag]})
    check(r.retval == 0, "api punt redirect from loop0 into table 77")
    want = {"l3": {("loop0", "198.18.5.1/24")}, "tables": {77},
            "routes": {77: {"198.18.77.0/24"}}, "gone": {},
            "neighbors": {("loop0", "198.18.5.2", mac)}, "punts": {("loop0", 77)}}
    ip_agree(vpp, stats, ["loop0"], want, "after the API's ip objects")

    cli_ok("ip route del 198.18.77.0/24 table 77")
    want["routes"], want["gone"] = {}, {77: {"198.18.77.0/24"}}
    ip_agree(vpp, stats, ["loop0"], want, "CLI deleted the API's route")
    cli_ok("set ip neighbor del loop0 198.18.5.2")
    want["neighbors"] = set()
    ip_agree(vpp, stats, ["loop0"], want, "CLI deleted the API's neighbour")
    cli_ok("ip table del 77")
    ip_agree(vpp, stats, ["loop0"], want, "CLI's table del: the API's punt redirect holds 77")
    cli_ok("ip punt redirect del rx loop0")
    want["punts"], want["tables"] = set(), set()
    ip_agree(vpp, stats, ["loop0"], want, "CLI deleted the punt redirect: table 77 went too")
    cli_ok("set interface ip address del loop0 198.18.5.1/24")
    want["l3"] = set()
    ip_agree(vpp, stats, ["loop0"], want, "CLI deleted the API's address")
    cli_ok("delete loopback interface intfc loop0")
    ip_agree(vpp, stats, [], nothing, "CLI deleted the loopback")

    # --- created through the CLI, deleted through the API --------------------------------
    check(cli_ok("create loopback interface") == "loop0", "CLI loop0 for the ip objects")
    cli_ok("set interface ip address loop0 198.18.6.1/24")
    cli_ok("ip table add 78")
    cli_ok("ip route add 198.18.78.0/24 table 78 via 198.18.6.2 loop0")
    cli_ok("set ip neighbor loop0 198.18.6.2 %s" % mac)
    cli_ok("ip punt redirect add rx loop0 table 78")
    want = {"l3": {("loop0", "198.18.6.1/24")}, "tables": {78},
            "routes": {78: {"198.18.78.0/24"}}, "gone": {},
            "neighbors": {("loop0", "198.18.6.2", mac)}, "punts": {("loop0", 78)}}
    names = ip_agree(vpp, stats, ["loop0"], want, "after the CLI's ip objects")
    lo = sw_of(names, "loop0")
    r = vpp.api.ip_route_add_del(is_add=0, route={"table_id": 78, "prefix": "198.18.78.0/24",
                                                  "n_paths": 0, "paths": []})
    check(r.retval == 0, "api deleted the CLI's route")
    want["routes"], want["gone"] = {}, {78: {"198.18.78.0/24"}}
    ip_agree(vpp, stats, ["loop0"], want, "API deleted the CLI's route")
    r = vpp.api.ip_neighbor_add_del(is_add=0, neighbor={
        "sw_if_index": lo, "mac_address": mac, "ip_address": "198.18.6.2"})
    check(r.retval == 0, "api deleted the CLI's neighbour")
    want["neighbors"] = set()
    ip_agree(vpp, stats, ["loop0"], want, "API deleted the CLI's neighbour")
    r = vpp.api.add_del_ip_punt_redirect_v2(is_add=0, punt={
        "rx_sw_if_index": lo, "af": 0, "n_paths": 0, "paths": []})
    check(r.retval == 0, "api deleted the CLI's punt redirect")
    want["punts"] = set()
    ip_agree(vpp, stats, ["loop0"], want, "API deleted the CLI's punt redirect")
    check(vpp.api.ip_table_add_del(is_add=0, table={"table_id": 78, "is_ip6": 0}).retval == 0,
          "api deleted the CLI's table")
    want["tables"] = set()
    ip_agree(vpp, stats, ["loop0"], want, "API deleted the CLI's table")
    check(vpp.api.sw_interface_add_del_address(sw_if_index=lo, is_add=0,
                                               prefix="198.18.6.1/24").retval == 0,
          "api deleted the CLI's address")
    want["l3"] = set()
    ip_agree(vpp, stats, ["loop0"], want, "API deleted the CLI's address")
    check(vpp.api.delete_loopback(sw_if_index=lo).retval == 0, "api deleted the CLI's loopback")
    ip_agree(vpp, stats, [], nothing, "ip objects all gone")


def main():
    vpp = VPPApiClient(apidir=APIDIR, server_address=SOCK, read_timeout=10)
    vpp.connect("papi-service")
    stats = VPPStats(socketname=STATS)
    stats.connect()
    sock_a, sock_b = DIR + "/svc-a.sock", DIR + "/svc-b.sock"

    agree(vpp, stats, [], "fresh rvpp: local0 only")

    # --- created through the API, deleted through the CLI --------------------------------
    r = vpp.api.create_loopback(mac_address="02:00:00:00:0a:01")
    check(r.retval == 0, "api create_loopback")
    r = vpp.api.create_loopback(mac_address="02:00:00:00:0a:02")
    check(r.retval == 0 and r.sw_if_index != 0, "api create_loopback again (never index 0)")
    r = vpp.api.memif_socket_filename_add_del_v2(is_add=1, socket_id=NONE, socket_filename=sock_a)
    check(r.retval == 0 and r.socket_id == 1, "api memif socket: the lowest free id is 1: %s" % (r,))
    r = vpp.api.memif_create(role=0, mode=0, socket_id=1, id=4, ring_size=512)
    check(r.retval == 0, "api memif_create on socket 1 id 4")
    want = ["loop0", "loop1", "memif1/4"]
    if NETNS:
        r = vpp.api.tap_create_v3(id=NONE, host_namespace_set=1, host_namespace=NETNS,
                                  host_if_name_set=1, host_if_name="svc0", tap_flags=0)
        check(r.retval == 0, "api tap_create_v3 in %s" % NETNS)
        want.append("tap0")
    views = agree(vpp, stats, want, "after the API's creates")
    check(cli_memifs()[0].get(1) == sock_a, "show memif lists the API's socket 1")

    cli_ok("delete loopback interface intfc loop0")
    want.remove("loop0")
    agree(vpp, stats, want, "CLI deleted the API's loop0")
    out = cli_ok("create loopback interface")
    check(out == "loop0", "the CLI's next loopback takes the lowest free instance: %s" % out)
    want.append("loop0")
    agree(vpp, stats, want, "CLI created loop0 again")
    r = vpp.api.memif_socket_filename_add_del_v2(is_add=0, socket_id=1, socket_filename="")
    check(r.retval == -74, "the API cannot delete socket 1 while the memif uses it: %d" % r.retval)
    check("in use" in cli("delete memif socket id 1"), "nor can the CLI")
    cli_ok("delete interface memif memif1/4")
    want.remove("memif1/4")
    agree(vpp, stats, want, "CLI deleted the API's memif1/4")
    cli_ok("delete memif socket id 1")
    agree(vpp, stats, want, "CLI deleted the API's socket 1")
    check(1 not in api_memifs(vpp)[0], "memif_socket_filename_dump has no socket 1")
    if NETNS:
        check(host_link(NETNS, "svc0"), "the API's tap is in %s" % NETNS)
        cli_ok("delete tap tap0")
        want.remove("tap0")
        check(host_link_gone(NETNS, "svc0"), "the CLI's delete removed it from Linux")
        agree(vpp, stats, want, "CLI deleted the API's tap0")
    for name in ("loop0", "loop1"):
        cli_ok("delete loopback interface intfc %s" % name)
        want.remove(name)
    agree(vpp, stats, want, "CLI deleted every loopback")

    # --- created through the CLI, deleted through the API --------------------------------
    check(cli_ok("create loopback interface") == "loop0", "CLI loop0")
    check(cli_ok("create loopback interface") == "loop1", "CLI loop1")
    cli_ok("create memif socket id 2 filename %s" % sock_b)
    check(cli_ok("create interface memif socket-id 2 id 3 master") == "memif2/3", "CLI memif2/3")
    want = ["loop0", "loop1", "memif2/3"]
    if NETNS:
        out = cli_ok("create tap host-ns %s host-if-name svc1" % NETNS)
        check(out == "tap0", "the CLI's tap takes the lowest free id: %s" % out)
        want.append("tap0")
    views = agree(vpp, stats, want, "after the CLI's creates")
    m = [d for d in vpp.api.memif_dump() if d.if_name == "memif2/3"]
    check(len(m) == 1 and m[0].socket_id == 2 and m[0].id == 3, "memif_dump shows the CLI's memif")
    r = vpp.api.memif_socket_filename_add_del_v2(is_add=1, socket_id=2, socket_filename=sock_a)
    check(r.retval == -116, "the API cannot redefine the CLI's socket 2: %d" % r.retval)

    check(vpp.api.delete_loopback(sw_if_index=sw_of(views, "loop0")).retval == 0, "api delete loop0")
    want.remove("loop0")
    agree(vpp, stats, want, "API deleted the CLI's loop0")
    r = vpp.api.create_loopback(mac_address="02:00:00:00:0a:03")
    views = agree(vpp, stats, want + ["loop0"], "API created a loopback")
    check(views[r.sw_if_index] == "loop0", "the API's loopback takes the lowest free instance too")
    check(vpp.api.memif_delete(sw_if_index=sw_of(views, "memif2/3")).retval == 0, "api memif_delete")
    want.remove("memif2/3")
    r = vpp.api.memif_socket_filename_add_del_v2(is_add=0, socket_id=2, socket_filename="")
    check(r.retval == 0, "api deleted the CLI's socket 2")
    agree(vpp, stats, want + ["loop0"], "API deleted the CLI's memif and socket")
    check(sorted(api_memifs(vpp)[0]) == [0], "only socket 0 is left")
    if NETNS:
        check(host_link(NETNS, "svc1"), "the CLI's tap is in %s" % NETNS)
        check(vpp.api.tap_delete_v2(sw_if_index=sw_of(views, "tap0")).retval == 0, "api tap_delete_v2")
        want.remove("tap0")
        check(host_link_gone(NETNS, "svc1"), "the API's delete removed it from Linux")
    for name in ("loop0", "loop1"):
        check(vpp.api.delete_loopback(sw_if_index=sw_of(views, name)).retval == 0,
              "api delete " + name)
    want.remove("loop1")
    agree(vpp, stats, [], "everything deleted: local0 only")
    r = vpp.api.delete_loopback(sw_if_index=0)
    check(r.retval == -2, "local0 is not a loopback to delete")
    ip_objects(vpp, stats)
    vpp.disconnect()
    print("ALL OK")


if __name__ == "__main__":
    main()
