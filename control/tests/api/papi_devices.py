#!/usr/bin/env python3
"""Devices over the binary API with vpp_papi (run by control/tests/api_papi.rs, rvpp with 2 workers):
memif sockets and interfaces (a server and a client in the same rvpp connect to each other),
rx placement, rx mode and promiscuous mode on them, af_xdp create/delete on a veth.

usage: papi_devices.py <apidir> <api socket> <scratch dir> <veth for af_xdp | ->
Exits 77 when vpp_papi is not importable; raises (non-zero exit) on the first failed check.
"""
import sys
import time

try:
    from vpp_papi.vpp_papi import VPPApiClient
except ImportError as e:  # pragma: no cover
    print("vpp_papi not importable: %s" % e)
    sys.exit(77)

APIDIR, SOCK, DIR, VETH = sys.argv[1:5]
NONE = 0xFFFFFFFF
UNIMPLEMENTED = -9


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok:", what)


def rv(r, want, what):
    check(r.retval == want, "%s -> %d (got %d)" % (what, want, r.retval))
    return r


def memifs(vpp):
    return {m.sw_if_index: m for m in vpp.api.memif_dump()}


def sockets(vpp):
    return {s.socket_id: s.socket_filename for s in vpp.api.memif_socket_filename_dump()}


def placement(vpp):
    """(interface name, queue) -> thread name, from `show interface rx-placement`."""
    out, name = {}, None
    for line in vpp.api.cli_inband(cmd="show interface rx-placement").reply.splitlines():
        if line and not line.startswith(" "):
            name = line.split()[0]
        elif line.strip().startswith("rx queue"):
            w = line.split()
            out[(name, int(w[2]))] = w[6].strip("(),")
    return out


def loops(vpp):
    """thread name -> main loops so far, from `show runtime`."""
    out, name = {}, None
    for line in vpp.api.cli_inband(cmd="show runtime").reply.splitlines():
        if line.startswith("Thread "):
            name = line.split()[2]
        elif " main loops" in line and name:
            out[name] = int(line.split(" main loops")[0].split()[-1])
    return out


def loop_rates(vpp, secs=1.0):
    a = loops(vpp)
    time.sleep(secs)
    b = loops(vpp)
    return {k: (b[k] - a.get(k, 0)) / secs for k in b}


def memif_tests(vpp):
    path = DIR + "/memif.sock"
    check(sockets(vpp).get(0) == "/run/vpp/memif.sock", "socket id 0 is VPP's default")
    r = rv(vpp.api.memif_socket_filename_add_del_v2(is_add=1, socket_id=NONE, socket_filename=path), 0,
           "socket add with id ~0")
    sid = r.socket_id
    check(sid not in (0, NONE), "allocated socket id %d" % sid)
    rv(vpp.api.memif_socket_filename_add_del_v2(is_add=1, socket_id=sid, socket_filename=path), 0,
       "identical socket add")
    rv(vpp.api.memif_socket_filename_add_del_v2(is_add=1, socket_id=sid, socket_filename=path + "x"), -116,
       "socket id reused for another file")
    rv(vpp.api.memif_socket_filename_add_del_v2(is_add=1, socket_id=0, socket_filename=path), -73,
       "socket id 0")
    check(sockets(vpp).get(sid) == path, "socket dump")

    rv(vpp.api.memif_create(role=0, mode=0, socket_id=4242), -73, "memif_create on an unknown socket")
    rv(vpp.api.memif_create(role=0, mode=0, socket_id=sid, ring_size=1000), -73, "ring size not a power of 2")
    r = rv(vpp.api.memif_create(role=0, mode=0, rx_queues=2, tx_queues=2, socket_id=sid, id=0,
                                hw_addr="02:00:00:00:10:01"), 0, "memif_create server")
    srv = r.sw_if_index
    rv(vpp.api.memif_create(role=0, mode=0, socket_id=sid, id=1), -68, "second server on the socket")
    rv(vpp.api.memif_socket_filename_add_del_v2(is_add=0, socket_id=sid), -74, "delete a socket in use")

    m = memifs(vpp).get(srv)
    check(m is not None and m.role == 0 and m.mode == 0 and m.socket_id == sid and m.id == 0,
          "memif_dump server")
    check(m.ring_size == 1024 and m.buffer_size == 2048 and not m.zero_copy, "server defaults")
    check(str(m.hw_addr) == "02:00:00:00:10:01" and m.if_name == "memif%d/0" % sid, "server mac and name")
    check(not int(m.flags) & 2, "server link down without a peer")
    d = vpp.api.sw_interface_dump(sw_if_index=srv)
    check(d and d[0].interface_dev_type == "memif", "memif in sw_interface_dump")

    # a client in the same rvpp, on its own socket id naming the same file
    cid = rv(vpp.api.memif_socket_filename_add_del_v2(is_add=1, socket_id=NONE, socket_filename=path), 0,
             "client socket").socket_id
    r = rv(vpp.api.memif_create(role=1, mode=0, rx_queues=2, tx_queues=2, socket_id=cid, id=0,
                                ring_size=512), 0, "memif_create client")
    cli = r.sw_if_index
    for sw in (srv, cli):
        rv(vpp.api.sw_interface_set_flags(sw_if_index=sw, flags=1), 0, "admin up %d" % sw)
    deadline = time.time() + 10
    while time.time() < deadline:
        ms = memifs(vpp)
        if all(int(ms[x].flags) & 3 == 3 for x in (srv, cli)):
            break
        time.sleep(0.1)
    ms = memifs(vpp)
    check(all(int(ms[x].flags) & 3 == 3 for x in (srv, cli)), "server and client connected (link up)")
    check(ms[cli].role == 1 and ms[cli].zero_copy and ms[cli].ring_size == 512, "client in memif_dump")
    return sid, cid, srv, cli


def rx_tests(vpp, srv, cli, lo):
    srv_name = memifs(vpp)[srv].if_name
    rv(vpp.api.sw_interface_set_rx_placement(sw_if_index=srv, queue_id=1, worker_id=1, is_main=0), 0,
       "rx placement queue 1 -> worker 1")
    rv(vpp.api.sw_interface_set_rx_placement(sw_if_index=srv, queue_id=0, worker_id=1, is_main=0), 0,
       "rx placement queue 0 -> worker 1")
    p = placement(vpp)
    check(p.get((srv_name, 0)) == "vpp_wk_1" and p.get((srv_name, 1)) == "vpp_wk_1",
          "both queues on vpp_wk_1: %s" % p)
    rv(vpp.api.sw_interface_set_rx_placement(sw_if_index=srv, queue_id=1, worker_id=0, is_main=0), 0,
       "rx placement queue 1 -> worker 0")
    check(placement(vpp).get((srv_name, 1)) == "vpp_wk_0", "queue 1 moved to vpp_wk_0")
    rv(vpp.api.sw_interface_set_rx_placement(sw_if_index=srv, queue_id=7, worker_id=0, is_main=0),
       UNIMPLEMENTED, "unknown queue")
    rv(vpp.api.sw_interface_set_rx_placement(sw_if_index=srv, queue_id=0, worker_id=2, is_main=0),
       UNIMPLEMENTED, "unknown worker")
    rv(vpp.api.sw_interface_set_rx_placement(sw_if_index=srv, queue_id=0, worker_id=0, is_main=1),
       UNIMPLEMENTED, "main thread forwards nothing with workers")
    rv(vpp.api.sw_interface_set_rx_placement(sw_if_index=lo, queue_id=0, worker_id=0, is_main=0),
       UNIMPLEMENTED, "loopback has no rx queue")
    rv(vpp.api.sw_interface_set_rx_placement(sw_if_index=999, queue_id=0, worker_id=0, is_main=0), -2,
       "rx placement on a missing interface")

    rv(vpp.api.sw_interface_set_rx_mode(sw_if_index=srv, queue_id_valid=0, mode=1), 0, "rx mode polling")
    check("mode polling" in vpp.api.cli_inband(cmd="show interface rx-placement").reply, "polling shown")
    rv(vpp.api.sw_interface_set_rx_mode(sw_if_index=srv, queue_id_valid=1, queue_id=7, mode=1), UNIMPLEMENTED,
       "rx mode on an unknown queue")
    rv(vpp.api.sw_interface_set_rx_mode(sw_if_index=cli, queue_id_valid=1, queue_id=1, mode=3), 0,
       "rx mode adaptive on queue 1")

    # an interface's rx mode applies to the workers holding its queues, not to every worker:
    # server queues on vpp_wk_1 polling, client queues on vpp_wk_0 in interrupt mode
    cli_name = memifs(vpp)[cli].if_name
    for sw, w in ((srv, 1), (cli, 0)):
        for q in (0, 1):
            rv(vpp.api.sw_interface_set_rx_placement(sw_if_index=sw, queue_id=q, worker_id=w, is_main=0), 0,
               "rx placement %d/%d -> worker %d" % (sw, q, w))
    p = placement(vpp)
    check(all(p.get((n, q)) == w for n, w in ((srv_name, "vpp_wk_1"), (cli_name, "vpp_wk_0")) for q in (0, 1)),
          "server on vpp_wk_1, client on vpp_wk_0: %s" % p)
    rv(vpp.api.sw_interface_set_rx_mode(sw_if_index=srv, queue_id_valid=0, mode=1), 0, "server polling")
    rv(vpp.api.sw_interface_set_rx_mode(sw_if_index=cli, queue_id_valid=0, mode=2), 0, "client interrupt")
    rates = loop_rates(vpp)
    check(rates["vpp_wk_1"] > 20000 and rates["vpp_wk_0"] < 2000,
          "only the server's worker polls (loops/s %s)" % rates)
    # a queue's mode moves with it: the polling server queue 1 joins the client on vpp_wk_0
    rv(vpp.api.sw_interface_set_rx_placement(sw_if_index=srv, queue_id=1, worker_id=0, is_main=0), 0,
       "server queue 1 -> worker 0")
    rates = loop_rates(vpp)
    check(rates["vpp_wk_0"] > 20000 and rates["vpp_wk_1"] > 20000, "both workers poll now (loops/s %s)" % rates)
    rv(vpp.api.sw_interface_set_rx_mode(sw_if_index=srv, queue_id_valid=1, queue_id=1, mode=2), 0,
       "server queue 1 interrupt")
    rates = loop_rates(vpp)
    check(rates["vpp_wk_0"] < 2000 and rates["vpp_wk_1"] > 20000,
          "queue_id: only that queue's worker changes (loops/s %s)" % rates)
    rv(vpp.api.sw_interface_set_rx_mode(sw_if_index=srv, queue_id_valid=0, mode=2), 0, "server interrupt")

    rv(vpp.api.sw_interface_set_promisc(sw_if_index=srv, promisc_on=1), 0, "promisc on")
    rv(vpp.api.sw_interface_set_promisc(sw_if_index=srv, promisc_on=0), 0, "promisc off")
    rv(vpp.api.sw_interface_set_promisc(sw_if_index=999, promisc_on=1), -2, "promisc on a missing interface")
    r = rv(vpp.api.memif_socket_filename_add_del_v2(is_add=1, socket_id=NONE, socket_filename=DIR + "/ip.sock"),
           0, "socket for an ip-mode memif")
    ipm = rv(vpp.api.memif_create(role=0, mode=1, socket_id=r.socket_id), 0, "memif_create ip mode").sw_if_index
    rv(vpp.api.sw_interface_set_promisc(sw_if_index=ipm, promisc_on=1), -7, "promisc on an ip-mode interface")
    rv(vpp.api.memif_delete(sw_if_index=ipm), 0, "memif_delete ip mode")
    rv(vpp.api.memif_socket_filename_add_del_v2(is_add=0, socket_id=r.socket_id), 0, "its socket del")


def af_xdp_tests(vpp):
    rv(vpp.api.af_xdp_create_v3(host_if="rvpp-no-such-if", rxq_num=1), -12, "af_xdp on a missing interface")
    if VETH == "-":
        print("note: no veth (not root): af_xdp create not exercised")
        return
    r = vpp.api.af_xdp_create_v3(host_if=VETH, rxq_num=1, rxq_size=1024, txq_size=1024, mode=0)
    rv(r, 0, "af_xdp_create_v3 on " + VETH)
    sw = r.sw_if_index
    d = vpp.api.sw_interface_dump(sw_if_index=sw)
    check(d and d[0].interface_name == VETH + "/0" and d[0].interface_dev_type == "af_xdp", "af_xdp in dump")
    rv(vpp.api.af_xdp_delete(sw_if_index=sw), 0, "af_xdp_delete")
    rv(vpp.api.af_xdp_delete(sw_if_index=sw), -2, "af_xdp_delete twice")


def main():
    vpp = VPPApiClient(apidir=APIDIR, server_address=SOCK, read_timeout=15)
    vpp.connect("papi-devices")
    lo = rv(vpp.api.create_loopback(mac_address="02:00:00:00:00:01"), 0, "loopback").sw_if_index
    sid, cid, srv, cli = memif_tests(vpp)
    rx_tests(vpp, srv, cli, lo)
    af_xdp_tests(vpp)

    rv(vpp.api.memif_delete(sw_if_index=lo), -2, "memif_delete on a loopback")
    rv(vpp.api.memif_delete(sw_if_index=cli), 0, "memif_delete client")
    rv(vpp.api.memif_delete(sw_if_index=srv), 0, "memif_delete server")
    rv(vpp.api.memif_delete(sw_if_index=srv), -2, "memif_delete twice")
    check(memifs(vpp) == {}, "memif_dump empty")
    ifs = {d.sw_if_index for d in vpp.api.sw_interface_dump(sw_if_index=NONE)}
    check(srv not in ifs and cli not in ifs, "memif interfaces gone")
    for s in (sid, cid):
        rv(vpp.api.memif_socket_filename_add_del_v2(is_add=0, socket_id=s), 0, "socket del %d" % s)
    rv(vpp.api.memif_socket_filename_add_del_v2(is_add=0, socket_id=sid), -73, "socket del twice")
    check(list(sockets(vpp)) == [0], "only socket 0 left")
    vpp.disconnect()
    print("ALL OK")


if __name__ == "__main__":
    main()
