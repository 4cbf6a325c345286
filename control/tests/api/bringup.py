#!/usr/bin/env python3
"""Calico bring-up replays against rvpp (run by control/tests/api_bringup.rs).

usage: bringup.py <apidir> <api socket> <uplink> <peer ns> <host ns> <host ns path> <pod ns> <pod ns path> udp|no-udp

The uplink veth end is in rvpp's namespace; its peer (198.18.10.2/24, with a route to the pod
subnet via the node) is in <peer ns>. The node address 198.18.10.1/24 is on rvpp's uplink and,
as calico leaves it, on the Linux side of the host tap (in <host ns> here, to keep the test's
own namespace clean). The tun pod gets 198.18.20.5.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time

from checks import check, ok

try:
    from vpp_papi.vpp_papi import VPPApiClient
except ImportError as e:  # pragma: no cover
    print("vpp_papi not importable: %s" % e)
    sys.exit(77)

APIDIR, SOCK, UPLINK, PEER_NS, HOST_NS, HOST_NS_PATH, POD_NS, POD_NS_PATH, UDP = sys.argv[1:10]
NONE = 0xFFFFFFFF
LABELS = [{"is_uniform": 0, "label": 0, "ttl": 0, "exp": 0}] * 16
NODE4, PEER4, POD4 = "198.18.10.1", "198.18.10.2", "198.18.20.5"
NODE6 = "fd00:10::1"
UPLINK_MAC = "02:aa:00:00:00:01"  # the uplink's "original" MAC, given to the host tap
HOST_TAP = "vpptap0"
AFS = [(0, "ip4"), (1, "ip6")]


UNIMPLEMENTED = -9


def refused(r, what, want=UNIMPLEMENTED):
    """What rvpp cannot do is answered as such, never with a fake 0."""
    check(r.retval == want, "%s -> %d (retval %d)" % (what, want, r.retval))
    return r


def unimplemented_dump(rows):
    rows = list(rows)
    return len(rows) == 1 and type(rows[0]).__name__ == "memclnt_keepalive_reply" and rows[0].retval == -9


def path(sw=NONE, nh=None, table=0, v6=False):
    p = {"sw_if_index": sw, "table_id": table, "weight": 1, "proto": 1 if v6 else 0,
         "label_stack": LABELS}
    if nh:
        p["nh"] = {"address": {"ip6" if v6 else "ip4": nh}}
    return p


def default_mroute(vpp, af, table, via_table, is_add):
    """calico's default mroute of a pod VRF: a lookup in another table."""
    zero = {"ip6": "::"} if af else {"ip4": "0.0.0.0"}
    return vpp.api.ip_mroute_add_del(is_add=is_add, is_multipath=0, route={
        "table_id": table, "entry_flags": 0, "rpf_id": 0,
        "prefix": {"af": af, "grp_address_length": 0, "grp_address": zero, "src_address": zero},
        "n_paths": 1, "paths": [{"itf_flags": 2, "path": path(table=via_table, v6=bool(af))}]})


def route(vpp, pfx, paths, table=0, is_add=1):
    return vpp.api.ip_route_add_del(is_add=is_add, is_multipath=0, route={
        "table_id": table, "prefix": pfx, "n_paths": len(paths), "paths": paths})


def default(af):
    return "::/0" if af else "0.0.0.0/0"


def sh(*args, check_rc=True):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    if check_rc and r.returncode != 0:
        raise AssertionError("%s: %s %s" % (" ".join(args), r.stdout, r.stderr))
    return r


def ns(name, *args, check_rc=True):
    return sh("ip", "netns", "exec", name, *args, check_rc=check_rc)


def reachable(src_ns, dst):
    """Echo replies out of 5 (best of 3 rounds: the first packets may wait on ARP)."""
    best = 0
    for _ in range(3):
        r = ns(src_ns, "ping", "-c", "5", "-i", "0.2", "-W", "2", dst, check_rc=False)
        for line in r.stdout.splitlines():
            if "received" in line:
                best = max(best, int(line.split("received")[0].split(",")[-1].strip()))
        if best >= 3:
            break
    return best


UDP_SERVER = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(10)
print("ready", flush=True)
d, a = s.recvfrom(2048)
s.sendto(d[::-1], a)
"""

UDP_CLIENT = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
for i in range(int(sys.argv[3])):
    s.sendto(b"rvpp-hello", (sys.argv[1], int(sys.argv[2])))
    try:
        d, a = s.recvfrom(2048)
        print(d.decode()); break
    except socket.timeout:
        pass
"""


SPOOF = r"""
import socket, struct, sys
src, dst, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
udp = struct.pack("!HHHH", 40000, port, 12, 0) + b"spof"
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                 socket.inet_aton(src), socket.inet_aton(dst))
for _ in range(3):
    s.sendto(ip + udp, (dst, 0))
"""


def spoof_udp(src_ns, src, dst, port):
    """Three UDP packets from `src_ns` with a source address it does not have."""
    ns(src_ns, sys.executable, "-c", SPOOF, src, dst, str(port))
    time.sleep(0.3)


def urpf_drops(vpp):
    """The 'uRPF Drop' count of ip4-rx-urpf-loose, as `show errors` gives it."""
    for line in vpp.api.cli_inband(cmd="show errors").reply.splitlines():
        if "ip4-rx-urpf-loose" in line and "uRPF Drop" in line:
            return int(line.split()[0])
    return 0


FRAME_LISTEN = r"""
import socket, sys, time
# every frame of one ethertype in the namespace: prints the destination MAC of the first one
# that carries the marker
ethertype, marker = int(sys.argv[1], 16), sys.argv[2].encode()
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype))
s.settimeout(1)
print("ready", flush=True)
end = time.time() + 5
while time.time() < end:
    try:
        f = s.recv(4096)
    except socket.timeout:
        continue
    if marker in f:
        print(f[:6].hex())
        break
"""

BCAST_SEND = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, sys.argv[1].encode())
for _ in range(5):
    s.sendto(b"bcast-rvpp", ("255.255.255.255", int(sys.argv[2])))
    time.sleep(0.2)
"""

MCAST6_SEND = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, socket.if_nametoindex(sys.argv[1]))
for _ in range(5):
    s.sendto(b"mcast-rvpp", (sys.argv[2], int(sys.argv[3]), 0, socket.if_nametoindex(sys.argv[1])))
    time.sleep(0.2)
"""


TTL_LISTEN = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_RECVTTL", 12), 1)  # 12 on Linux
s.bind(("0.0.0.0", int(sys.argv[1])))
s.settimeout(5)
print("ready", flush=True)
d, anc, _, _ = s.recvmsg(2048, socket.CMSG_SPACE(4))
for lvl, ty, data in anc:
    if lvl == socket.IPPROTO_IP and ty == socket.IP_TTL:
        print(int.from_bytes(data[:4], sys.byteorder))
"""


def ttl_seen(src_ns, dst_ns, dst, port, ttl):
    """The TTL a UDP packet sent from `src_ns` with `ttl` has when it reaches `dst_ns`."""
    lst = subprocess.Popen(["ip", "netns", "exec", dst_ns, sys.executable, "-c", TTL_LISTEN, str(port)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lst.stdout.readline()
        ns(src_ns, sys.executable, "-c", "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
           "s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, %d); s.sendto(b'ttl', ('%s', %d))" % (ttl, dst, port))
        out, err = lst.communicate(timeout=10)
        if not out.strip():
            print("ttl listener:", err)
        return int(out.strip()) if out.strip() else None
    finally:
        if lst.poll() is None:
            lst.kill()


def frame_seen(dst_ns, ethertype, marker, send):
    """The destination MAC of the first frame with `marker` seen in `dst_ns` while `send` runs."""
    lst = subprocess.Popen(["ip", "netns", "exec", dst_ns, sys.executable, "-c", FRAME_LISTEN, ethertype,
                            marker], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lst.stdout.readline()
        send()
        out, _ = lst.communicate(timeout=10)
        print("frame listener (%s):" % marker, out.strip())
        return out.strip()
    finally:
        if lst.poll() is None:
            lst.kill()


def broadcast_reaches(src_ns, dev, dst_ns, port):
    """A UDP broadcast sent on `dev` in `src_ns` reaches `dst_ns` as an Ethernet broadcast."""
    send = lambda: ns(src_ns, sys.executable, "-c", BCAST_SEND, dev, str(port))
    return frame_seen(dst_ns, "0800", "bcast-rvpp", send) == "ff" * 6


def mcast6_relayed(src_ns, dev, dst_ns, group, port):
    """UDP to link-scope `group` sent on `dev` in `src_ns` reaches `dst_ns` at the group's MAC."""
    send = lambda: ns(src_ns, sys.executable, "-c", MCAST6_SEND, dev, group, str(port))
    mac = "3333" + socket.inet_pton(socket.AF_INET6, group)[12:].hex()
    return frame_seen(dst_ns, "86dd", "mcast-rvpp", send) == mac


def udp_exchange(server_ns, client_ns, addr, port, tries=8):
    srv = subprocess.Popen(["ip", "netns", "exec", server_ns, sys.executable, "-c", UDP_SERVER,
                            addr, str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        srv.stdout.readline()
        r = ns(client_ns, sys.executable, "-c", UDP_CLIENT, addr, str(port), str(tries), check_rc=False)
        if r.stdout.strip() != "olleh-ppvr":
            srv.kill()
            print("udp client:", r.stdout, r.stderr, "server:", srv.communicate())
        return r.stdout.strip()
    finally:
        srv.kill()
        srv.wait()


def node_bringup(vpp):
    """semantics.md §A, vpp-manager's runVpp."""
    ok(vpp.api.control_ping(), "control_ping")
    for af, n in AFS:  # allocateStaticVRFs
        ok(vpp.api.ip_table_add_del(is_add=1, table={"table_id": 1, "is_ip6": af, "name": "punt-table-" + n}),
           "punt table " + n)
        ok(vpp.api.ip_table_add_del(is_add=1, table={"table_id": 2, "is_ip6": af, "name": "calico-pods-" + n}),
           "pod table " + n)
        ok(route(vpp, default(af), [path(table=0, v6=bool(af))], table=2), "pod table default -> table 0 " + n)
        ok(vpp.api.ip_neighbor_config(af=af, max_number=50000, max_age=30, recycle=0), "ip_neighbor_config " + n)
    for af, n in AFS:  # configureGlobalPunt
        ok(vpp.api.add_del_ip_punt_redirect_v2(is_add=1, punt={
            "rx_sw_if_index": NONE, "af": af, "n_paths": 1, "paths": [path(table=1, v6=bool(af))]}),
            "punt redirect to punt table " + n)
        for proto in (6, 17):
            ok(vpp.api.set_punt(is_add=1, punt={"type": 0, "punt": {"l4": {"af": af, "protocol": proto,
                                                                                 "port": 0xFFFF}}}),
                    "set_punt l4 %d %s" % (proto, n))
    rs = vpp.api.punt_reason_dump(reason={"name": "ip6-nd-neigh-adv"})
    check(len(rs) >= 1 and rs[0].reason.name == "ip6-nd-neigh-adv", "punt reason ip6-nd-neigh-adv")
    ok(vpp.api.set_punt(is_add=0, punt={"type": 2, "punt": {"exception": {"id": rs[0].reason.id}}}),
            "stop punting NAs")

    # uplink (af_packet)
    r = ok(vpp.api.af_packet_create_v3(mode=1, use_random_hw_addr=0, hw_addr=UPLINK_MAC,
                                       host_if_name=UPLINK, num_rx_queues=1, num_tx_queues=1,
                                       flags=1), "af_packet_create_v3")
    up = r.sw_if_index
    ok(vpp.api.sw_interface_tag_add_del(is_add=1, sw_if_index=up, tag="main-" + UPLINK), "uplink tag")
    ok(vpp.api.feature_gso_enable_disable(sw_if_index=up, enable_disable=1), "gso uplink")
    ok(vpp.api.sw_interface_set_mtu(sw_if_index=up, mtu=[1500, 0, 0, 0]), "uplink mtu")
    ok(vpp.api.sw_interface_set_rx_mode(sw_if_index=up, queue_id_valid=0, mode=2), "uplink rx interrupt")
    ok(vpp.api.sw_interface_ip6_enable_disable(sw_if_index=up, enable=1), "uplink ip6")
    ok(vpp.api.sw_interface_ip6nd_ra_config(sw_if_index=up, suppress=1), "uplink ra suppress (rvpp sends none)")
    refused(vpp.api.sw_interface_ip6nd_ra_config(sw_if_index=up, suppress=0), "uplink ra on")
    check(vpp.api.feature_cnat_enable_disable(sw_if_index=up, enable_disable=1).retval == 0,
          "cnat feature on the uplink")
    ok(vpp.api.sw_interface_set_flags(sw_if_index=up, flags=1), "uplink up")
    ok(vpp.api.sw_interface_add_del_address(sw_if_index=up, is_add=1, prefix=NODE4 + "/24"), "uplink address")
    ok(vpp.api.sw_interface_add_del_address(sw_if_index=up, is_add=1, prefix="fd00:10::1/64"), "uplink v6")
    ok(route(vpp, "0.0.0.0/0", [path(up, PEER4)]), "default route via the gateway")

    # host tap
    r = ok(vpp.api.tap_create_v3(id=NONE, use_random_mac=1, num_rx_queues=1, num_tx_queues=1,
                                 tx_ring_sz=256, rx_ring_sz=256, host_mtu_set=1, host_mtu_size=1500,
                                 host_mac_addr_set=1, host_mac_addr=UPLINK_MAC, tap_flags=0,
                                 host_namespace_set=1, host_namespace=HOST_NS_PATH,
                                 host_if_name_set=1, host_if_name=HOST_TAP, tag="host-" + UPLINK,
                                 host_ip4_prefix_set=1, host_ip4_prefix=NODE4 + "/24",
                                 host_ip6_prefix_set=1, host_ip6_prefix=NODE6 + "/64"),
           "host tap_create_v3 with the node's addresses on the Linux side")
    tap = r.sw_if_index
    vrfs = {}
    for af, n in AFS:  # setupTapVRF
        r = ok(vpp.api.ip_table_allocate(table={"table_id": NONE, "is_ip6": af,
                                                "name": "host-tap-%s-%s" % (UPLINK, n)}), "tap vrf " + n)
        vrf = vrfs[af] = r.table.table_id
        if af == 0:
            # host broadcasts (DHCP) out of the uplink: calico's path "via ffff:…:ffff"
            ok(route(vpp, "255.255.255.255/32", [path(up, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", v6=True)],
                     table=vrf), "broadcast route")
        else:
            for g in ("ff02::1", "ff02::2", "ff02::16", "ff02::1:2"):
                # paths {uplink, ACCEPT|FORWARD} and {tap, ACCEPT} (mfib_types)
                ok(vpp.api.ip_mroute_add_del(is_add=1, is_multipath=0, route={
                    "table_id": vrf, "entry_flags": 0, "rpf_id": 0,
                    "prefix": {"af": 1, "grp_address_length": 128, "grp_address": {"ip6": g},
                               "src_address": {"ip6": "::"}},
                    "n_paths": 2, "paths": [{"itf_flags": 2 | 4, "path": path(up, v6=True)},
                                            {"itf_flags": 2, "path": path(tap, v6=True)}]}), "mroute " + g)
        ok(route(vpp, default(af), [path(table=0, v6=bool(af))], table=vrf), "tap vrf default " + n)
        ok(vpp.api.sw_interface_set_table(sw_if_index=tap, is_ipv6=af, vrf_id=vrf), "tap in its vrf " + n)
    ok(route(vpp, NODE4 + "/32", [path(tap, NODE4)], table=vrfs[0]), "node address via tap in tap vrf")
    ok(vpp.api.ip_neighbor_add_del(is_add=1, neighbor={"sw_if_index": tap, "flags": 1, "mac_address": UPLINK_MAC,
                                                       "ip_address": NODE4}), "static neighbour on tap")
    ok(vpp.api.sw_interface_ip6_enable_disable(sw_if_index=tap, enable=1), "tap ip6")
    ok(vpp.api.sw_interface_add_del_address(sw_if_index=tap, is_add=1, prefix="169.254.0.1/32"), "tap 169.254.0.1")
    ok(vpp.api.sw_interface_set_rx_placement(sw_if_index=tap, queue_id=0, worker_id=0, is_main=0), "tap placement")
    # without workers, worker 0 and main are both rvpp's one forwarding thread (as in VPP)
    ok(vpp.api.sw_interface_set_rx_placement(sw_if_index=tap, queue_id=0, worker_id=0, is_main=1), "tap on main")
    check(vpp.api.sw_interface_set_rx_placement(sw_if_index=tap, queue_id=0, worker_id=1, is_main=0).retval == -9,
          "no worker 1 -> -9 (VPP's answer to placement errors)")
    check(vpp.api.sw_interface_set_rx_placement(sw_if_index=tap, queue_id=3, worker_id=0, is_main=0).retval == -9,
          "no queue 3 -> -9")
    # tx placement: the placement in effect is accepted (one thread, 0, sends on the one
    # queue); rvpp does not move tx queues, and says so
    ok(vpp.api.sw_interface_set_tx_placement(sw_if_index=tap, queue_id=0, array_size=1, threads=[0]),
       "tx queue 0 on thread 0, as it is")
    refused(vpp.api.sw_interface_set_tx_placement(sw_if_index=tap, queue_id=0, array_size=1, threads=[1]),
            "tx queue 0 to thread 1")
    refused(vpp.api.sw_interface_set_tx_placement(sw_if_index=tap, queue_id=3, array_size=1, threads=[0]),
            "no tx queue 3")
    ok(vpp.api.sw_interface_set_mtu(sw_if_index=tap, mtu=[9216, 0, 0, 0]), "tap mtu")
    ok(vpp.api.sw_interface_ip6nd_ra_config(sw_if_index=tap, suppress=1), "tap ra suppress")
    ok(vpp.api.ip6nd_proxy_enable_disable_v2(sw_if_index=tap, is_enable=1, flags=1), "tap nd proxy")
    refused(vpp.api.ip6nd_proxy_enable_disable_v2(sw_if_index=9999, is_enable=1, flags=1), "nd proxy, bad index", -2)
    ok(route(vpp, NODE4 + "/24", [path(tap, NODE4)], table=1), "punt table route to the host")
    everything = {"table_id": vrfs[0], "low": "0.0.0.0", "hi": "255.255.255.255"}
    ok(vpp.api.proxy_arp_add_del(is_add=1, proxy=everything), "proxy arp")
    ok(vpp.api.proxy_arp_add_del(is_add=1, proxy=everything), "proxy arp twice (VPP: no error)")
    refused(vpp.api.proxy_arp_add_del(is_add=1, proxy=dict(everything, table_id=0xbad0)), "proxy arp, no table", -3)
    refused(vpp.api.proxy_arp_add_del(is_add=0, proxy=dict(everything, low="1.2.3.4")), "proxy arp del, none", -6)
    ok(vpp.api.proxy_arp_intfc_enable_disable(sw_if_index=tap, enable=1), "proxy arp on tap")
    refused(vpp.api.proxy_arp_intfc_enable_disable(sw_if_index=9999, enable=1), "proxy arp, bad index", -2)
    ok(vpp.api.feature_gso_enable_disable(sw_if_index=tap, enable_disable=1), "gso tap")
    ok(vpp.api.sw_interface_set_rx_mode(sw_if_index=tap, queue_id_valid=0, mode=3), "tap adaptive")
    ok(vpp.api.ip_ttl_fixup_configure(src_sw_if_index=tap, dst_sw_if_index=up, enable=1), "ttl fixup tap -> uplink")
    refused(vpp.api.ip_ttl_fixup_configure(src_sw_if_index=tap, dst_sw_if_index=9999, enable=1),
            "ttl fixup to a missing interface", -2)
    ok(vpp.api.sw_interface_set_flags(sw_if_index=tap, flags=1), "tap up")
    return up, tap, vrfs


def host_side(vpp):
    """tap_create_v3's Linux-side options: a bridge there, and what is refused."""
    br = "rvbr%d" % (time.time_ns() % 100000)
    ns(HOST_NS, "ip", "link", "add", br, "type", "bridge")
    r = ok(vpp.api.tap_create_v3(id=NONE, use_random_mac=1, num_rx_queues=1, tap_flags=0,
                                 host_namespace_set=1, host_namespace=HOST_NS_PATH,
                                 host_if_name_set=1, host_if_name="rvbrtap",
                                 host_bridge_set=1, host_bridge=br), "tap on a host bridge")
    link = ns(HOST_NS, "ip", "-o", "link", "show", "rvbrtap").stdout
    check("master " + br in link, "enslaved to the bridge: %s" % link)
    ok(vpp.api.tap_delete_v2(sw_if_index=r.sw_if_index), "bridged tap delete")
    before = {d.sw_if_index for d in vpp.api.sw_interface_dump(sw_if_index=NONE)}
    refused(vpp.api.tap_create_v3(id=NONE, use_random_mac=1, num_rx_queues=1, tap_flags=0,
                                  host_namespace_set=1, host_namespace=HOST_NS_PATH,
                                  host_if_name_set=1, host_if_name="rvbrtap2",
                                  host_bridge_set=1, host_bridge="rvpp-no-such-br"),
            "a missing host bridge", want=-145)
    refused(vpp.api.tap_create_v3(id=NONE, use_random_mac=1, num_rx_queues=1, tap_flags=0,
                                  host_namespace_set=1, host_namespace=HOST_NS_PATH,
                                  host_if_name_set=1, host_if_name="rvbrtap3",
                                  host_ip4_gw_set=1, host_ip4_gw=PEER4),
            "a host gateway (not configured by rvpp)")
    after = {d.sw_if_index for d in vpp.api.sw_interface_dump(sw_if_index=NONE)}
    check(before == after, "refused taps leave no interface")
    for dev in ("rvbrtap2", "rvbrtap3"):
        check(ns(HOST_NS, "ip", "link", "show", dev, check_rc=False).returncode != 0,
              "nor a Linux device " + dev)
    ns(HOST_NS, "ip", "link", "del", br)


def vxlan_tunnel_api(vpp):
    """calico-vpp's vxlan_add_del_tunnel_v3 (L3 mode), its dump, and the errors VPP gives."""
    check(list(vpp.api.vxlan_tunnel_v2_dump(sw_if_index=NONE)) == [], "no vxlan tunnels yet")
    # calico: decap_next_index = add_node_next(vxlan4-input -> ip4-input)
    nxt = ok(vpp.api.add_node_next(node_name="vxlan4-input", next_name="ip4-input"), "add_node_next")
    same = ok(vpp.api.get_next_index(node_name="vxlan4-input", next_name="ip4-input"), "get_next_index")
    check(same.next_index == nxt.next_index, "add_node_next and get_next_index agree")
    ok(vpp.api.get_node_index(node_name="vxlan6-input"), "get_node_index vxlan6-input")
    check(vpp.api.get_node_index(node_name="no-such-node").retval == -63, "unknown node -> -63")
    check(vpp.api.get_next_index(node_name="vxlan4-input", next_name="nope").retval == -64,
          "unknown next -> -64")
    check(vpp.api.add_node_next(node_name="vxlan4-input", next_name="ip6-rewrite").retval == -9,
          "a new edge at run time -> UNIMPLEMENTED")
    vx = dict(instance=NONE, src_address="198.18.0.1", dst_address="198.18.0.2", src_port=4789,
              dst_port=4789, mcast_sw_if_index=NONE, encap_vrf_id=0,
              decap_next_index=nxt.next_index, vni=4096, is_l3=True)
    drop = vpp.api.get_next_index(node_name="vxlan4-input", next_name="error-drop").next_index
    check(vpp.api.vxlan_add_del_tunnel_v3(is_add=True, **dict(vx, decap_next_index=drop)).retval == -9,
          "a decap_next_index rvpp's decap would not follow -> UNIMPLEMENTED")
    r = ok(vpp.api.vxlan_add_del_tunnel_v3(is_add=True, **vx), "vxlan add")
    rows = list(vpp.api.vxlan_tunnel_v2_dump(sw_if_index=NONE))
    check(len(rows) == 1 and rows[0].sw_if_index == r.sw_if_index and rows[0].vni == 4096
          and str(rows[0].dst_address) == "198.18.0.2" and rows[0].instance == 0
          and rows[0].decap_next_index == nxt.next_index, "vxlan dump")
    names = [i.interface_name for i in vpp.api.sw_interface_dump(sw_if_index=r.sw_if_index)]
    check(names == ["vxlan_tunnel0"], "vxlan interface named as VPP names it: %s" % names)
    check(vpp.api.vxlan_add_del_tunnel_v3(is_add=True, **vx).retval == -75, "vxlan TUNNEL_EXIST")
    ok(vpp.api.vxlan_add_del_tunnel_v3(is_add=False, **vx), "vxlan del")
    check(vpp.api.vxlan_add_del_tunnel_v3(is_add=False, **vx).retval == -6, "vxlan del twice")
    check(list(vpp.api.vxlan_tunnel_v2_dump(sw_if_index=NONE)) == [], "vxlan gone")


def ipip_tunnel_api(vpp):
    """calico-vpp's ipip_add_tunnel / ipip_tunnel_dump / ipip_del_tunnel and VPP's errors."""
    check(list(vpp.api.ipip_tunnel_dump(sw_if_index=NONE)) == [], "no ipip tunnels yet")
    t = dict(instance=NONE, src="198.18.0.1", dst="198.18.0.3", sw_if_index=0, table_id=0,
             flags=0, mode=0, dscp=0)
    r = ok(vpp.api.ipip_add_tunnel(tunnel=t), "ipip add")
    rows = list(vpp.api.ipip_tunnel_dump(sw_if_index=NONE))
    check(len(rows) == 1 and rows[0].tunnel.sw_if_index == r.sw_if_index
          and str(rows[0].tunnel.dst) == "198.18.0.3" and rows[0].tunnel.instance == 0, "ipip dump")
    names = [i.interface_name for i in vpp.api.sw_interface_dump(sw_if_index=r.sw_if_index)]
    check(names == ["ipip0"], "ipip interface named as VPP names it: %s" % names)
    check(vpp.api.ipip_add_tunnel(tunnel=t).retval == -79, "ipip IF_ALREADY_EXISTS")
    check(vpp.api.ipip_add_tunnel(tunnel=dict(t, dst="198.18.0.4", mode=1)).retval == -9,
          "multipoint ipip UNIMPLEMENTED")
    ok(vpp.api.ipip_del_tunnel(sw_if_index=r.sw_if_index), "ipip del")
    check(vpp.api.ipip_del_tunnel(sw_if_index=r.sw_if_index).retval == -6, "ipip del twice")
    check(list(vpp.api.ipip_tunnel_dump(sw_if_index=NONE)) == [], "ipip gone")


DNS4 = "198.18.30.53"  # the DNS address calico's redirectToHostRules name


def dst3_match(proto, dst, port):
    """calico's FiveTuple.GetMatch for a (proto, dst, dst port) rule: an IPv4 + UDP header."""
    m = bytearray(28)
    m[9] = proto
    m[16:20] = socket.inet_aton(dst)
    m[22:24] = port.to_bytes(2, "big")
    return bytes(m)


# calico's DstThreeTupleMask, padded to whole vectors (ExtendToVector)
DST3_MASK = dst3_match(0xFF, "255.255.255.255", 0xFFFF) + bytes(4)


def redirect_to_host_rules(vpp, tap):
    """The CNI server's createRedirectToHostRules (semantics.md §B): one table, a redirect per
    rule to the node address on the host tap; and VPP's answers to bad input."""
    rules = [(17, DNS4, 53), (6, DNS4, 53)]
    r = ok(vpp.api.classify_add_del_table(is_add=1, del_chain=0, table_index=NONE, nbuckets=2 * len(rules),
                                          memory_size=2 * len(rules) * (32 + 32) * 2 * 2, skip_n_vectors=0,
                                          match_n_vectors=2, next_table_index=NONE, miss_next_index=NONE,
                                          current_data_flag=1, current_data_offset=0, mask_len=32, mask=DST3_MASK),
           "classify_add_del_table (calico's dst 3-tuple mask)")
    table = r.new_table_index
    check((r.skip_n_vectors, r.match_n_vectors) == (0, 2), "table %d: skip 0, match 2" % table)
    for proto, ip, port in rules:
        m = dst3_match(proto, ip, port)
        ok(vpp.api.ip_session_redirect_add_v2(table_index=table, match_len=len(m), match=m, n_paths=1,
                                              paths=[path(tap, NODE4)]),
           "ip_session_redirect_add_v2 proto %d %s:%d -> host tap" % (proto, ip, port))
    bad = dict(is_add=1, del_chain=0, table_index=NONE, nbuckets=2, skip_n_vectors=0, match_n_vectors=2,
               next_table_index=NONE, miss_next_index=NONE, current_data_flag=1, current_data_offset=0)
    refused(vpp.api.classify_add_del_table(**dict(bad, mask_len=28, mask=DST3_MASK[:28])), "mask not whole vectors", -7)
    refused(vpp.api.classify_add_del_table(**dict(bad, match_n_vectors=6, mask_len=96, mask=bytes(96))), "6 match vectors", -7)
    refused(vpp.api.classify_add_del_table(**dict(bad, nbuckets=0, mask_len=32, mask=DST3_MASK)), "no buckets", -7)
    refused(vpp.api.classify_add_del_table(**dict(bad, next_table_index=4321, mask_len=32, mask=DST3_MASK)),
            "chained to a missing table", -65)
    refused(vpp.api.classify_add_del_table(is_add=0, table_index=4321, mask_len=0, mask=b""), "del of a missing table", -65)
    m = dst3_match(17, DNS4, 53)
    refused(vpp.api.ip_session_redirect_add_v2(table_index=4321, match_len=len(m), match=m, n_paths=1,
                                               paths=[path(tap, NODE4)]), "redirect into a missing table", -65)
    refused(vpp.api.ip_session_redirect_add_v2(table_index=table, match_len=len(m), match=m, n_paths=1,
                                               paths=[path(9999, NODE4)]), "redirect via a missing interface", -2)
    refused(vpp.api.ip_session_redirect_add_v2(table_index=table, match_len=len(m), match=m, n_paths=0,
                                               paths=[]), "redirect without paths", -52)
    gone = dst3_match(17, DNS4, 54)
    refused(vpp.api.ip_session_redirect_del(table_index=table, match_len=len(gone), match=gone),
            "del of a redirect that is not there", -6)
    refused(vpp.api.input_acl_set_interface(sw_if_index=tap, ip4_table_index=4321, ip6_table_index=NONE,
                                            l2_table_index=NONE, is_add=1), "input acl with a missing table", -65)
    refused(vpp.api.input_acl_set_interface(sw_if_index=9999, ip4_table_index=table, ip6_table_index=NONE,
                                            l2_table_index=NONE, is_add=1), "input acl on a missing interface", -2)
    # VPP's add with an index updates the table's next table and miss action
    upd = dict(bad, table_index=table, mask_len=0, mask=b"")
    ok(vpp.api.classify_add_del_table(**upd), "classify table update")
    refused(vpp.api.classify_add_del_table(**dict(upd, next_table_index=table)), "a table chained to itself", -7)
    refused(vpp.api.classify_add_del_table(**dict(upd, table_index=4321)), "update of a missing table", -65)
    shown = vpp.api.cli_inband(cmd="show classify tables").reply
    check(any(l.split()[:5] == [str(table), "4", "0", "2", "2"] for l in shown.splitlines()),
          "show classify tables: 4 buckets, 2 sessions: %r" % shown)
    return table


DNS_SEND = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(3):
    s.sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))
    time.sleep(0.2)
"""


def seen_on_host_tap(dst, port, marker, src_ns=None):
    """The destination MAC of a UDP packet the pod (or `src_ns`) sends to dst:port, as seen
    behind the host tap (empty: it never got there)."""
    send = lambda: ns(src_ns or POD_NS, sys.executable, "-c", DNS_SEND, dst, str(port), marker)
    return frame_seen(HOST_NS, "0800", marker, send)


def pbl_client(addr, sw, nh, table, ranges, id=NONE):
    return {"id": id, "addr": addr, "paths": path(sw, nh), "flags": 0, "table_id": table,
            "n_ports": len(ranges), "port_ranges": [{"start": a, "end": b, "iproto": p} for p, a, b in ranges]}


def pbl_checks(vpp, tap):
    """calico's PBL client on the pod address (its memif ports; the host tap stands in for the
    memif here): UDP to the ports goes along the client's path, the rest to the pod."""
    c = pbl_client(POD4, tap, NODE4, 0, [(17, 5570, 5571)])
    pid = ok(vpp.api.pbl_client_update(client=c), "pbl_client_update").id
    again = ok(vpp.api.pbl_client_update(client=dict(c, id=pid)), "pbl_client_update of an existing id")
    check(again.id == pid, "the same id (%d, %d)" % (pid, again.id))
    refused(vpp.api.pbl_client_update(client=dict(c, table_id=0xbad0)), "pbl client in a missing table", -3)
    refused(vpp.api.pbl_client_del(id=pid + 100), "pbl_client_del of a missing client", -6)
    shown = vpp.api.cli_inband(cmd="show pbl client").reply
    check("%s table 0 ports [udp 5570-5571]" % POD4 in shown, "show pbl client: %r" % shown)
    mac = seen_on_host_tap(POD4, 5570, "rvpp-pbl-port", src_ns=PEER_NS)
    tcheck(mac == UPLINK_MAC.replace(":", ""), "UDP to a PBL port of the pod goes along the client's path (%r)" % mac)
    tcheck(udp_exchange(POD_NS, PEER_NS, POD4, 5572) == "olleh-ppvr", "UDP to another port reaches the pod")
    check("pbl: to the client's path" in vpp.api.cli_inband(cmd="show errors").reply, "pbl counted")
    ok(vpp.api.pbl_client_del(id=pid), "pbl_client_del")
    tcheck(udp_exchange(POD_NS, PEER_NS, POD4, 5570) == "olleh-ppvr", "without the client port 5570 reaches the pod")
    check(vpp.api.cli_inband(cmd="show pbl client").reply.strip() == "", "no pbl clients left")


def redirected(vpp):
    for line in vpp.api.cli_inband(cmd="show errors").reply.splitlines():
        if "ip4-inacl" in line and "redirected by a session" in line:
            return int(line.split()[0])
    return 0


def pod_bringup(vpp, tap):
    """semantics.md §B/§C for one tun pod, with felix's npol programming of it."""
    r = ok(vpp.api.show_threads(), "show_threads")
    check(r.count >= 1, "threads %d" % r.count)
    ok(vpp.api.show_version(), "show_version")
    global ALL_PODS
    ALL_PODS = all_pods = ok(vpp.api.npol_ipset_create(type=0), "npol all-pods ipset").set_id
    ok(vpp.api.npol_ipset_add_del_members(set_id=all_pods, is_add=1, len=1,
                                          members=[{"val": {"address": POD4}}]), "pod in all-pods")
    check(vpp.api.cnat_set_snat_policy(policy=2).retval == 0, "cnat K8S snat policy")
    check(vpp.api.ipsec_set_async_mode(async_enable=1).retval == UNIMPLEMENTED,
          "ipsec async mode answers -9 (crypto runs inline on the workers; calico logs it)")
    vxlan_tunnel_api(vpp)
    ipip_tunnel_api(vpp)
    check(unimplemented_dump(vpp.api.log_dump(start_timestamp=0)), "log_dump answers UNIMPLEMENTED")
    for dump in ("sr_localsids_dump", "sr_policies_dump", "sr_steering_pol_dump"):
        check(list(getattr(vpp.api, dump)()) == [], dump + " is empty before calico programs SRv6")
    check(list(vpp.api.wireguard_interface_dump(show_private_key=1, sw_if_index=NONE)) == [],
          "no wireguard interfaces yet")

    global REDIRECT_TABLE
    REDIRECT_TABLE = redirect_to_host_rules(vpp, tap)
    names = [t.table.name for t in vpp.api.ip_table_dump()]
    check("pod-net-ip4" not in names, "pod not present yet")
    pod_vrf = {}
    for af, n in AFS:
        r = ok(vpp.api.ip_table_allocate(table={"table_id": NONE, "is_ip6": af, "name": "pod-net-" + n}),
               "pod vrf " + n)
        pod_vrf[af] = r.table.table_id
        ok(route(vpp, default(af), [path(table=2, v6=bool(af))], table=pod_vrf[af]), "pod vrf default " + n)
        ok(default_mroute(vpp, af, pod_vrf[af], 2, 1), "pod vrf default mroute -> table 2 " + n)
    r = ok(vpp.api.create_loopback(mac_address="02:00:00:00:00:01"), "pod loopback")
    lo = r.sw_if_index
    for af, n in AFS:
        ok(vpp.api.sw_interface_set_table(sw_if_index=lo, is_ipv6=af, vrf_id=pod_vrf[af]), "loopback vrf " + n)
    ok(vpp.api.cnat_snat_policy_add_del_if(sw_if_index=lo, is_add=1, table=2), "lo is a POD interface")
    ok(vpp.api.feature_cnat_enable_disable(sw_if_index=lo, enable_disable=1), "cnat on lo")
    ok(vpp.api.sw_interface_add_del_address(sw_if_index=lo, is_add=1, prefix=POD4 + "/32"), "pod ip on loopback")

    TUN = 16
    r = ok(vpp.api.tap_create_v3(id=NONE, use_random_mac=1, num_rx_queues=1, num_tx_queues=1,
                                 tx_ring_sz=256, rx_ring_sz=256, host_mtu_set=1, host_mtu_size=1500,
                                 tap_flags=TUN, host_namespace_set=1, host_namespace=POD_NS_PATH,
                                 host_if_name_set=1, host_if_name="eth0", tag="pod-tun"), "pod tun")
    tun = r.sw_if_index
    r = vpp.api.tap_create_v3(id=NONE, use_random_mac=1, num_rx_queues=1, tap_flags=TUN,
                              host_namespace_set=1, host_namespace="/var/run/netns/rvpp-no-such-ns",
                              host_if_name_set=1, host_if_name="eth0")
    check(r.retval == -12, "missing netns -> -12")
    ok(vpp.api.cnat_snat_policy_add_del_if(sw_if_index=tun, is_add=1, table=2), "tun is a POD interface")
    ok(vpp.api.feature_cnat_enable_disable(sw_if_index=tun, enable_disable=1), "cnat on tun")
    ok(vpp.api.sw_interface_set_rx_placement(sw_if_index=tun, queue_id=0, worker_id=0, is_main=0), "tun placement")
    for af, n in AFS:
        ok(vpp.api.sw_interface_set_table(sw_if_index=tun, is_ipv6=af, vrf_id=pod_vrf[af]), "tun vrf " + n)
    ok(vpp.api.sw_interface_set_mtu(sw_if_index=tun, mtu=[9216, 0, 0, 0]), "tun mtu")
    ok(vpp.api.sw_interface_set_flags(sw_if_index=tun, flags=1), "tun up")
    ok(vpp.api.sw_interface_set_rx_mode(sw_if_index=tun, queue_id_valid=0, mode=3), "tun rx mode")
    ok(vpp.api.sw_interface_set_unnumbered(sw_if_index=lo, unnumbered_sw_if_index=tun, is_add=1), "tun unnumbered")
    # the CNI side configures the pod's netns
    sh("ip", "-n", POD_NS, "addr", "add", POD4 + "/32", "dev", "eth0")
    sh("ip", "-n", POD_NS, "link", "set", "eth0", "up")
    sh("ip", "-n", POD_NS, "route", "add", "default", "dev", "eth0")
    ok(route(vpp, POD4 + "/32", [path(tun)]), "route to the pod")
    # the CNI server: redirect rules exist, so the pod tap gets the table on input
    ok(vpp.api.input_acl_set_interface(sw_if_index=tun, ip4_table_index=REDIRECT_TABLE, ip6_table_index=NONE,
                                       l2_table_index=NONE, is_add=1), "input_acl_set_interface on the tun")
    acl = vpp.api.cli_inband(cmd="show inacl type ip4").reply
    check(any(l.split()[:2] == [str(tun), str(REDIRECT_TABLE)] for l in acl.splitlines()),
          "show inacl type ip4 lists the tun: %r" % acl)
    refused(vpp.api.classify_add_del_table(is_add=0, table_index=REDIRECT_TABLE, mask_len=0, mask=b""), "del of a table in use", -155)
    # felix's workload endpoint: no policies, a profile allowing everything both ways.
    allow = ok(vpp.api.npol_rule_create(rule={"action": 0, "filters": [{}] * 3, "num_entries": 0,
                                              "matches": []}), "npol allow-all rule").rule_id
    profile = ok(vpp.api.npol_policy_create(num_items=2, rules=[{"is_inbound": 1, "rule_id": allow},
                                                                {"is_inbound": 0, "rule_id": allow}]),
                 "npol profile").policy_id
    global PROFILE
    PROFILE = profile
    ok(vpp.api.npol_configure_policies(sw_if_index=tun, num_rx_policies=0, num_tx_policies=0, total_ids=1,
                                       invert_rx_tx=0, policy_default_rx=2, policy_default_tx=2,
                                       profile_default_rx=1, profile_default_tx=1, policy_ids=[profile]),
       "npol_configure_policies on the tun")
    # strict RPF as calico sets it: a source is accepted only if it has a route in the RPF VRF
    rpf = {}
    for af, n in AFS:
        r = ok(vpp.api.ip_table_allocate(table={"table_id": NONE, "is_ip6": af, "name": "pod-rpf-" + n}),
               "rpf vrf " + n)
        rpf[af] = r.table.table_id
    ok(route(vpp, POD4 + "/32", [path(tun, POD4)], table=rpf[0]), "pod address in the rpf vrf")
    refused(vpp.api.urpf_update_v2(is_input=1, mode=1, af=0, sw_if_index=9999, table_id=rpf[0]),
            "urpf on an unknown interface", -2)
    refused(vpp.api.urpf_update_v2(is_input=1, mode=1, af=0, sw_if_index=tun, table_id=0xbad0),
            "urpf against an unknown table", -7)
    refused(vpp.api.urpf_update_v2(is_input=1, mode=7, af=0, sw_if_index=tun, table_id=rpf[0]),
            "urpf with an unknown mode", -7)
    for af, n in AFS:
        ok(vpp.api.urpf_update_v2(is_input=1, mode=1, af=af, sw_if_index=tun, table_id=rpf[af]),
           "urpf loose on the tun against the rpf vrf " + n)
    feats = vpp.api.cli_inband(cmd="show urpf").reply
    check("ip4 rx loose table %d" % rpf[0] in feats, "show urpf lists the check: %r" % feats)
    return lo, tun, pod_vrf, rpf


VPP = None
PROFILE = None
ALL_PODS = None
REDIRECT_TABLE = None


def diag():
    for c in ("show errors", "show interface", "show ip neighbors"):
        print(VPP.api.cli_inband(cmd=c).reply)
    for n, dev in ((HOST_NS, HOST_TAP), (POD_NS, "eth0")):
        print(ns(n, "ip", "-s", "link", "show", dev, check_rc=False).stdout)
        print(ns(n, "ip", "neigh", check_rc=False).stdout)
    print(ns(PEER_NS, "ip", "neigh", check_rc=False).stdout)


def tcheck(cond, what):
    if not cond:
        diag()
    check(cond, what)


def take_over_pause(vpp, d):
    """Says `ready` in directory `d`, waits for `go` (the harness's take-over done), and
    connects to the new rvpp on the same socket."""
    vpp.disconnect()
    open(os.path.join(d, "ready"), "w").close()
    end = time.time() + 90
    while not os.path.exists(os.path.join(d, "go")):
        check(time.time() < end, "the harness's take-over finished within 90 s")
        time.sleep(0.1)
    new = VPPApiClient(apidir=APIDIR, server_address=SOCK, read_timeout=15)
    new.connect("calico-agent")
    return new


def main():
    global VPP
    vpp = VPPApiClient(apidir=APIDIR, server_address=SOCK, read_timeout=15)
    vpp.connect("vpp-manager")
    up, tap, vrfs = node_bringup(vpp)
    host_side(vpp)
    vpp.disconnect()  # vpp-manager leaves once configured

    vpp = VPPApiClient(apidir=APIDIR, server_address=SOCK, read_timeout=15)
    vpp.connect("calico-agent")
    lo, tun, pod_vrf, rpf = pod_bringup(vpp, tap)
    VPP = vpp

    # dumps
    ifs = {d.sw_if_index: d for d in vpp.api.sw_interface_dump(sw_if_index=0)}
    check(ifs[up].tag == "main-" + UPLINK and ifs[up].interface_name == "host-" + UPLINK, "uplink in dump")
    check(str(ifs[up].l2_address) == UPLINK_MAC, "uplink mac")
    check(ifs[tap].tag == "host-" + UPLINK and int(ifs[tap].flags) & 1, "host tap in dump, up")
    check(ifs[tun].tag == "pod-tun" and ifs[tun].interface_name.startswith("tun"), "tun in dump")
    tables = {(t.table.name, t.table.is_ip6): t.table.table_id for t in vpp.api.ip_table_dump()}
    check(tables.get(("pod-net-ip4", False)) == pod_vrf[0] and tables.get(("punt-table-ip6", True)) == 1,
          "VRFs found by name")
    r0 = {str(d.route.prefix): d.route for d in vpp.api.ip_route_dump(table={"table_id": 0, "is_ip6": 0})}
    check(POD4 + "/32" in r0 and r0[POD4 + "/32"].paths[0].sw_if_index == tun, "pod route in table 0")
    check("0.0.0.0/0" in r0 and str(r0["0.0.0.0/0"].paths[0].nh.address.ip4) == PEER4, "default route")
    r2 = {str(d.route.prefix): d.route for d in vpp.api.ip_route_dump(table={"table_id": 2, "is_ip6": 0})}
    check(r2["0.0.0.0/0"].paths[0].sw_if_index == NONE and r2["0.0.0.0/0"].paths[0].table_id == 0,
          "pod table default is a lookup in table 0")
    rp = {str(d.route.prefix): d.route for d in vpp.api.ip_route_dump(table={"table_id": pod_vrf[0], "is_ip6": 0})}
    check(rp["0.0.0.0/0"].paths[0].sw_if_index == NONE and rp["0.0.0.0/0"].paths[0].table_id == 2,
          "pod vrf default is a lookup in table 2 (whose default looks up in table 0)")
    check(POD4 + "/32" in rp, "the pod address is local in the pod VRF (interfaces stay in their VRF)")
    rt = {str(d.route.prefix): d.route for d in vpp.api.ip_route_dump(table={"table_id": vrfs[0], "is_ip6": 0})}
    check(rt["0.0.0.0/0"].paths[0].table_id == 0 and NODE4 + "/32" in rt, "host tap vrf: default -> table 0")
    r6 = {str(d.route.prefix): d.route for d in vpp.api.ip_route_dump(table={"table_id": pod_vrf[1], "is_ip6": 1})}
    check(r6["::/0"].paths[0].table_id == 2, "pod vrf ip6 default is a lookup in table 2")
    pr = list(vpp.api.ip_punt_redirect_v2_dump(sw_if_index=NONE, af=0))
    check(len(pr) == 1 and pr[0].punt.paths[0].table_id == 1, "punt redirect dump")
    nb = [n for n in vpp.api.ip_neighbor_dump(sw_if_index=tap, af=0)]
    check(any(str(n.neighbor.ip_address) == NODE4 for n in nb), "static neighbour dump")
    un = {u.sw_if_index: u.ip_sw_if_index for u in vpp.api.ip_unnumbered_dump(sw_if_index=NONE)}
    check(un.get(tun) == lo, "unnumbered dump")
    tap_mac = str(ifs[tap].l2_address)

    # traffic: host tap <-> uplink peer (host side keeps the node address, calico style,
    # put there by tap_create_v3's host prefixes)
    a = ns(HOST_NS, "ip", "-o", "addr", "show", "dev", HOST_TAP).stdout
    check(NODE4 + "/24" in a and NODE6 + "/64" in a, "host tap has the node addresses: %s" % a)
    # the host resolves its gateway (and anything else) to the tap by rvpp's proxy ARP, and
    # IPv6 neighbours by its ND proxy
    sh("ip", "-n", HOST_NS, "neigh", "flush", "dev", HOST_TAP)
    ns(HOST_NS, sys.executable, "-c", "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
       ".sendto(b'x', ('%s', 9))" % PEER4)
    time.sleep(0.5)
    neigh = ns(HOST_NS, "ip", "neigh", "show", PEER4, "dev", HOST_TAP).stdout
    tcheck(tap_mac.lower() in neigh.lower(), "host's ARP for its gateway answered by proxy: %r" % neigh)
    # Linux asks from its global address once that has passed DAD (before, from its link-local
    # one, which ND proxy does not answer, as VPP's)
    for _ in range(50):
        if "tentative" not in ns(HOST_NS, "ip", "-6", "addr", "show", "dev", HOST_TAP).stdout:
            break
        time.sleep(0.1)
    ns(HOST_NS, sys.executable, "-c", "import socket; socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)"
       ".sendto(b'x', ('fd00:10::2', 9))")
    time.sleep(0.5)
    neigh6 = ns(HOST_NS, "ip", "-6", "neigh", "show", "fd00:10::2", "dev", HOST_TAP).stdout
    tcheck(tap_mac.lower() in neigh6.lower(), "host's NS for fd00:10::2 answered by ND proxy: %r" % neigh6)
    errs = vpp.api.cli_inband(cmd="show errors").reply
    check("ARP replies sent by proxy" in errs and "answered by ND proxy" in errs, "proxy counters in show errors")
    check("Table %d   0.0.0.0 - 255.255.255.255" % vrfs[0] in vpp.api.cli_inband(cmd="show arp proxy").reply,
          "show arp proxy")
    if shutil.which("ping"):
        got = reachable(HOST_NS, PEER4)
        tcheck(got >= 3, "host -> uplink peer ping (%d/5)" % got)
        got = reachable(POD_NS, PEER4)
        tcheck(got >= 3, "pod -> uplink peer ping (%d/5)" % got)
        got = reachable(PEER_NS, POD4)
        tcheck(got >= 3, "uplink peer -> pod ping (%d/5)" % got)
        # neighbour ageing: with a 1 s age the peer is probed, answers, and stays
        cfg = vpp.api.cli_inband(cmd="show ip neighbor-config").reply
        check("limit:50000, age:30, recycle:0" in cfg, "ip_neighbor_config applied: %r" % cfg)
        vpp.api.cli_inband(cmd="set ip neighbor-config ip4 age 1")
        time.sleep(7)  # entries are swept once a second: a probe about every 2 s
        cfg = vpp.api.cli_inband(cmd="show ip neighbor-config").reply
        probes = int(cfg.split("probes sent: ")[1].split(",")[0])
        peers = [str(x.neighbor.ip_address) for x in vpp.api.ip_neighbor_dump(sw_if_index=up, af=0)]
        tcheck(probes >= 2 and PEER4 in peers, "aged peer probed (%d probes) and kept: %s" % (probes, peers))
        vpp.api.cli_inband(cmd="set ip neighbor-config ip4 age 30")
    else:
        print("no ping binary: UDP only")
    if UDP == "udp":
        tcheck(broadcast_reaches(HOST_NS, HOST_TAP, PEER_NS, 6767), "host broadcast forwarded out of the uplink")
        tcheck(mcast6_relayed(HOST_NS, HOST_TAP, PEER_NS, "ff02::1:2", 547),
               "host's DHCPv6 multicast relayed to the uplink by the tap VRF's mroute")
        ttl = ttl_seen(HOST_NS, PEER_NS, PEER4, 6768, 5)
        tcheck(ttl == 5, "host -> uplink peer keeps its TTL through rvpp (ttl fixup): %s" % ttl)
        vpp.api.ip_ttl_fixup_configure(src_sw_if_index=tap, dst_sw_if_index=up, enable=0)
        ttl = ttl_seen(HOST_NS, PEER_NS, PEER4, 6769, 5)
        tcheck(ttl == 4, "without the fixup rvpp is a hop: %s" % ttl)
        ok(vpp.api.ip_ttl_fixup_configure(src_sw_if_index=tap, dst_sw_if_index=up, enable=1), "ttl fixup back")
        got = udp_exchange(HOST_NS, PEER_NS, NODE4, 5555)
        tcheck(got == "olleh-ppvr",
              "uplink peer -> host UDP (punted to the host tap) and back")
        tcheck(udp_exchange(POD_NS, PEER_NS, POD4, 5556) == "olleh-ppvr", "uplink peer -> pod UDP and back")
        tcheck(udp_exchange(PEER_NS, POD_NS, PEER4, 5557) == "olleh-ppvr", "pod -> uplink peer UDP and back")
        # the punt redirect is a lookup in the punt table as it is now, not a copy of it
        ok(route(vpp, NODE4 + "/24", [], table=1, is_add=0), "punt table route del")
        check(udp_exchange(HOST_NS, PEER_NS, NODE4, 5558, tries=2) != "olleh-ppvr",
              "nothing reaches the host while the punt table has no route")
        ok(vpp.api.ip_table_add_del(is_add=0, table={"table_id": 1, "is_ip6": 0}), "punt table del (locked)")
        tables = {(t.table.table_id, t.table.is_ip6) for t in vpp.api.ip_table_dump()}
        check((1, False) in tables, "a table a punt redirect looks up in stays")
        ok(route(vpp, NODE4 + "/24", [path(tap, NODE4)], table=1), "punt table route back")
        tcheck(udp_exchange(HOST_NS, PEER_NS, NODE4, 5559) == "olleh-ppvr", "punted to the host tap again")
        # pod isolation: an ingress (tx) policy denies UDP to one port; the rest passes to the
        # allow-all profile
        deny = ok(vpp.api.npol_rule_create(rule={
            "action": 1, "filters": [{"type": 3, "value": 17, "should_match": 1}, {}, {}], "num_entries": 1,
            "matches": [{"is_src": 0, "is_not": 0, "type": 1, "data": {"port_range": {"start": 5560, "end": 5560}}}]}),
            "npol rule: deny udp/5560").rule_id
        ingress = ok(vpp.api.npol_policy_create(num_items=1, rules=[{"is_inbound": 0, "rule_id": deny}]),
                     "npol ingress policy").policy_id
        ok(vpp.api.npol_configure_policies(sw_if_index=tun, num_rx_policies=0, num_tx_policies=1, total_ids=2,
                                           invert_rx_tx=0, policy_default_rx=2, policy_default_tx=2,
                                           profile_default_rx=1, profile_default_tx=1,
                                           policy_ids=[ingress, PROFILE]), "npol ingress policy on the tun")
        tcheck(udp_exchange(POD_NS, PEER_NS, POD4, 5560, tries=2) != "olleh-ppvr", "uplink peer -> pod UDP/5560 denied")
        tcheck(udp_exchange(POD_NS, PEER_NS, POD4, 5561) == "olleh-ppvr", "uplink peer -> pod UDP/5561 allowed")
        errs = vpp.api.cli_inband(cmd="show errors").reply
        check("policy deny" in errs and "new flow allowed by policy" in errs, "npol counters in show errors")
        cached = lambda: int(vpp.api.cli_inband(cmd="show npol interfaces").reply.split("cached verdicts: ")[1].split()[0])
        check(cached() > 0, "verdicts cached (%d)" % cached())
        ok(vpp.api.cnat_session_purge(), "cnat_session_purge")
        check(cached() == 0, "cnat_session_purge clears npol's verdicts too")
        # uRPF: a source the rpf vrf has no route for is dropped and counted; the pod's own passes
        before = urpf_drops(vpp)
        spoof_udp(POD_NS, "198.18.21.9", PEER4, 5562)
        check(urpf_drops(vpp) - before >= 3, "spoofed sources from the pod dropped by uRPF (%d)"
              % (urpf_drops(vpp) - before))
        tcheck(udp_exchange(PEER_NS, POD_NS, PEER4, 5563) == "olleh-ppvr", "the pod's own source passes uRPF")
        # the pod's DNS query is redirected to the host tap (to the node address's MAC there);
        # UDP to another port of the same address goes its way (the default route)
        before = redirected(vpp)
        mac = seen_on_host_tap(DNS4, 53, "rvpp-dns-query")
        tcheck(mac == UPLINK_MAC.replace(":", ""), "pod DNS query redirected to the host tap (%r)" % mac)
        check(redirected(vpp) - before >= 3, "ip4-inacl counted the redirects (%d)" % (redirected(vpp) - before))
        tcheck(seen_on_host_tap(DNS4, 54, "rvpp-not-dns") == "", "UDP to port 54 is not redirected")
        check("via %s" % NODE4 in vpp.api.cli_inband(cmd="show ip session redirect").reply,
              "show ip session redirect")
        errs = vpp.api.cli_inband(cmd="show errors").reply
        check("input ACL hits" in errs and "input ACL misses" in errs, "ip4-inacl hits and misses counted")
        pbl_checks(vpp, tap)

    if os.environ.get("RVPP_TAKEOVER_PAUSE"):
        # api_bringup.rs replaces this rvpp by a new one (`rvpp --take-over`) with the pod up;
        # its traffic and policy still work after, and its deletion below runs against the
        # new one.
        vpp = take_over_pause(vpp, os.environ["RVPP_TAKEOVER_PAUSE"])
        VPP = vpp
        if UDP == "udp":
            tcheck(udp_exchange(POD_NS, PEER_NS, POD4, 5570) == "olleh-ppvr",
                   "after the take-over: uplink peer -> pod UDP and back")
            tcheck(udp_exchange(PEER_NS, POD_NS, PEER4, 5571) == "olleh-ppvr",
                   "after the take-over: pod -> uplink peer UDP and back")
            tcheck(udp_exchange(POD_NS, PEER_NS, POD4, 5560, tries=2) != "olleh-ppvr",
                   "after the take-over: the pod's ingress policy still denies UDP/5560")
            mac = seen_on_host_tap(DNS4, 53, "rvpp-dns-query")
            tcheck(mac == UPLINK_MAC.replace(":", ""), "after the take-over: DNS still redirected (%r)" % mac)

    # pod delete reverses it
    ok(vpp.api.input_acl_set_interface(sw_if_index=tun, ip4_table_index=REDIRECT_TABLE, ip6_table_index=NONE,
                                       l2_table_index=NONE, is_add=0), "input acl off the tun")
    check(vpp.api.cli_inband(cmd="show inacl type ip4").reply.strip().count("\n") == 0, "no input acl left")
    for af, n in AFS:
        ok(vpp.api.urpf_update_v2(is_input=1, mode=0, af=af, sw_if_index=tun, table_id=rpf[af]), "urpf off " + n)
    check(vpp.api.cli_inband(cmd="show urpf").reply.strip() == "", "no uRPF checks left")
    ok(route(vpp, POD4 + "/32", [], table=rpf[0], is_add=0), "rpf route del")
    for af, n in AFS:
        ok(vpp.api.ip_table_add_del(is_add=0, table={"table_id": rpf[af], "is_ip6": af}), "rpf vrf del " + n)
    ok(route(vpp, POD4 + "/32", [], is_add=0), "pod route del")
    ok(vpp.api.sw_interface_set_flags(sw_if_index=tun, flags=0), "tun down")
    ok(vpp.api.tap_delete_v2(sw_if_index=tun), "tap_delete_v2")
    ok(vpp.api.delete_loopback(sw_if_index=lo), "delete_loopback")
    for af, n in AFS:
        ok(default_mroute(vpp, af, pod_vrf[af], 2, 0), "pod vrf default mroute del " + n)
        ok(route(vpp, default(af), [], table=pod_vrf[af], is_add=0), "pod vrf default del " + n)
        ok(vpp.api.ip_table_add_del(is_add=0, table={"table_id": pod_vrf[af], "is_ip6": af}), "pod vrf del " + n)
    ifs = {d.sw_if_index for d in vpp.api.sw_interface_dump(sw_if_index=NONE)}
    check(tun not in ifs and lo not in ifs, "pod interfaces gone")
    names = [t.table.name for t in vpp.api.ip_table_dump()]
    check("pod-net-ip4" not in names, "pod vrf gone")
    check(vpp.api.tap_delete_v2(sw_if_index=tun).retval == -2, "tap_delete_v2 twice -> -2")
    r = sh("ip", "-n", POD_NS, "link", "show", "eth0", check_rc=False)
    check(r.returncode != 0, "pod tun removed from Linux")
    for proto in (17, 6):
        m = dst3_match(proto, DNS4, 53)
        ok(vpp.api.ip_session_redirect_del(table_index=REDIRECT_TABLE, match_len=len(m), match=m),
           "ip_session_redirect_del proto %d" % proto)
    check(vpp.api.cli_inband(cmd="show ip session redirect").reply.strip() == "", "no redirects left")
    ok(vpp.api.classify_add_del_table(is_add=0, table_index=REDIRECT_TABLE, mask_len=0, mask=b""), "classify table del")
    refused(vpp.api.classify_add_del_table(is_add=0, table_index=REDIRECT_TABLE, mask_len=0, mask=b""), "classify table del twice", -65)
    vpp.disconnect()
    print(json.dumps({"uplink": up, "tap": tap, "tun": tun}))
    print("ALL OK")


if __name__ == "__main__":
    main()
