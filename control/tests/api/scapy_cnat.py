#!/usr/bin/env python3
"""cnat end to end, checked with an independent packet implementation (scapy): rvpp runs as a
daemon, is configured through vpp_papi as calico-vpp configures it, and packets are built and
parsed by scapy in network namespaces attached to rvpp by tun pods (run by
control/tests/cnat_scapy.rs, with rvpp started with `cnat { session-max 64 }`, once without
workers and once with two: then the client's queue is on one worker, the others' on the
other).

usage: scapy_cnat.py <apidir> <api socket> <client ns> <backend1 ns> <backend2 ns> <outside ns>

Pods: client C, backends B1 and B2 (tun pods, each in its own pod VRF -> table 2 -> table 0,
as calico's pod bring-up), and an outside host X behind a tun that is not a pod interface
(the uplink's role: table 0's default routes point at it). No addresses are configured in the
namespaces, so their kernels stay silent: scapy sends and receives on AF_PACKET sockets bound
to each namespace's eth0.

Exits 77 when vpp_papi or scapy is not importable; raises (non-zero exit) on the first
failed check.
"""
import ctypes
import os
import select
import socket
import subprocess
import sys
import time

from checks import check, ok

try:
    from vpp_papi.vpp_papi import VPPApiClient
    from scapy.all import (IP, TCP, UDP, ICMP, IPv6, Raw, ICMPv6DestUnreach, ICMPv6TimeExceeded,
                           IPv6ExtHdrFragment, Ether, fragment, fragment6)
except ImportError as e:  # pragma: no cover
    print("vpp_papi or scapy not importable: %s" % e)
    sys.exit(77)

NONE = 0xFFFFFFFF
LABELS = [{"is_uniform": 0, "label": 0, "ttl": 0, "exp": 0}] * 16
TUN = 16
CLONE_NEWNET = 0x40000000
ETH_P_ALL, ETH_P_IP, ETH_P_IPV6 = 0x0003, 0x0800, 0x86DD
PACKET_OUTGOING = 4
SESSION_MAX = 64  # the Rust side's `cnat { session-max 64 }`

# Translation flags (cnat.api, and rvpp's own 0x20 / 0x40) and path flags.
ALLOC_PORT, NO_CLIENT, AFFINITY, LOCAL_ONLY = 1, 8, 0x20, 0x40
PATH_LOCAL = 0x40
FHC_DEFAULT, FHC_SRC_PORT = 0x9F, 4

C4, C6 = "198.18.20.5", "fd00:20::5"
B1_4, B1_6 = "198.18.20.10", "fd00:20::10"
B2_4, B2_6 = "198.18.20.11", "fd00:20::11"
X4, X6 = "198.19.30.1", "fd00:30::1"
SNAT4, SNAT6 = "198.19.0.1", "fd00:19::1"
VIP4, VIP6 = "198.19.255.1", "fd00:ff::1"

libc = ctypes.CDLL(None, use_errno=True)


def sh(*args):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise AssertionError("%s: %s %s" % (" ".join(args), r.stdout, r.stderr))
    return r.stdout


class Pod:
    """One namespace's eth0 (or `ifname`), seen through an AF_PACKET socket opened inside it.
    On a tun it carries bare IP; on a tap set `l2` to (our MAC, rvpp's MAC): frames are sent
    with that Ethernet header and received ones stripped of theirs."""

    def __init__(self, name, ns, ip4, ip6, ifname="eth0", l2=None):
        self.name, self.ns, self.ip4, self.ip6 = name, ns, ip4, ip6
        self.ifname, self.l2 = ifname, l2
        self.path = "/var/run/netns/" + ns
        self.sock = None
        self.sw = None

    def open(self):
        me = os.open("/proc/self/ns/net", os.O_RDONLY)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns " + self.path)
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            s.bind((self.ifname, 0))
            s.setblocking(False)
            self.sock = s
        finally:
            if libc.setns(me, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
            os.close(fd)
            os.close(me)

    def drain(self):
        while True:
            try:
                self.sock.recv(65535)
            except BlockingIOError:
                return

    def send(self, pkt):
        data = bytes(pkt)
        proto = ETH_P_IPV6 if data[0] >> 4 == 6 else ETH_P_IP
        if self.l2:
            data = bytes(Ether(src=self.l2[0], dst=self.l2[1], type=proto)) + data
        self.sock.sendto(data, (self.ifname, proto))

    def recv_all(self, match, timeout, want=None):
        """Packets `match` accepts within `timeout` s (stops early once `want` arrived)."""
        got, end = [], time.time() + timeout
        while want is None or len(got) < want:
            r, _, _ = select.select([self.sock], [], [], max(0.0, end - time.time()))
            if not r:
                break
            try:
                data, addr = self.sock.recvfrom(65535)
            except BlockingIOError:
                continue
            if addr[2] == PACKET_OUTGOING or not data:
                continue
            if self.l2:
                if data[12:14] not in (b"\x08\x00", b"\x86\xdd"):
                    continue
                data = data[14:]
            p = parse(data)
            if p is not None and match(p):
                got.append(p)
        return got

    def expect(self, match, what, timeout=2.0):
        got = self.recv_all(match, timeout, want=1)
        check(len(got) == 1, "%s: arrives at %s" % (what, self.name))
        return got[0]

    def nothing(self, match, what, timeout=0.5):
        got = self.recv_all(match, timeout)
        check(got == [], "%s: nothing at %s (%s)" % (what, self.name, [g.summary() for g in got]))


def first_of(pods, match, timeout=1.0):
    """The pod whose socket first sees a packet `match` accepts (None: none within `timeout`)."""
    end = time.time() + timeout
    while time.time() < end:
        r, _, _ = select.select([p.sock for p in pods], [], [], max(0.0, end - time.time()))
        for pod in pods:
            if pod.sock in r and pod.recv_all(match, 0.0, want=1):
                return pod
    return None


def parse(data):
    v = data[0] >> 4
    if v == 4:
        return IP(data)
    if v == 6:
        return IPv6(data)
    return None


def ip_of(v6):
    return IPv6 if v6 else IP


def l4(p):
    return p[TCP] if TCP in p else p[UDP]


def bad_checksums(p):
    """The checksum fields scapy computes differently: every layer's, the quoted ones of an
    ICMP error included (rebuilt from the packet's bytes with each checksum left out)."""
    raw = bytes(p)
    q = p.__class__(raw)
    fields = []
    layer = q
    while layer is not None and layer.name != "NoPayload":
        for f in ("chksum", "cksum"):
            if f in layer.fields:
                fields.append((layer.name, f, layer.getfieldval(f)))
                layer.setfieldval(f, None)
        layer = layer.payload if layer.payload else None
    r = p.__class__(bytes(q))
    bad, layer, i = [], r, 0
    while layer is not None and layer.name != "NoPayload" and i < len(fields):
        for f in ("chksum", "cksum"):
            if f in layer.fields and i < len(fields):
                name, fname, want = fields[i]
                if layer.getfieldval(f) != want:
                    bad.append("%s.%s %#x, scapy: %#x" % (name, fname, want, layer.getfieldval(f)))
                i += 1
        layer = layer.payload if layer.payload else None
    return bad


def csum_ok(p, what):
    b = bad_checksums(p)
    check(b == [], "%s: checksums valid (%s)" % (what, b))


def flow(src, dst, proto, sport, dport, payload=b"rvpp-cnat", flags="S", seq=1000):
    v6 = ":" in src
    ipl = IPv6(src=src, dst=dst, hlim=64) if v6 else IP(src=src, dst=dst, ttl=64, id=sport)
    if proto == "tcp":
        return ipl / TCP(sport=sport, dport=dport, flags=flags, seq=seq) / Raw(payload)
    return ipl / UDP(sport=sport, dport=dport) / Raw(payload)


def is_flow(src=None, dst=None, sport=None, dport=None):
    def m(p):
        if TCP not in p and UDP not in p:
            return False
        if ICMP in p or ICMPv6DestUnreach in p or ICMPv6TimeExceeded in p:
            return False
        x = l4(p)
        return ((src is None or p.src == src) and (dst is None or p.dst == dst)
                and (sport is None or x.sport == sport) and (dport is None or x.dport == dport))
    return m


def reply_of(p, payload=b"reply", flags="SA"):
    """The answer a backend's stack would give to `p` (addresses and ports swapped)."""
    x = l4(p)
    v6 = IPv6 in p
    ipl = IPv6(src=p.dst, dst=p.src, hlim=64) if v6 else IP(src=p.dst, dst=p.src, ttl=64)
    if TCP in p:
        return ipl / TCP(sport=x.dport, dport=x.sport, flags=flags, seq=5000, ack=x.seq + 1) / Raw(payload)
    return ipl / UDP(sport=x.dport, dport=x.sport) / Raw(payload)


# ---- calico-style configuration -------------------------------------------------------------

def path(sw=NONE, table=0, v6=False):
    return {"sw_if_index": sw, "table_id": table, "weight": 1, "proto": 1 if v6 else 0,
            "label_stack": LABELS}


def route(vpp, pfx, paths, table=0, is_add=1):
    return vpp.api.ip_route_add_del(is_add=is_add, is_multipath=0, route={
        "table_id": table, "prefix": pfx, "n_paths": len(paths), "paths": paths})


def node_bringup(vpp):
    for af in (0, 1):
        ok(vpp.api.ip_table_add_del(is_add=1, table={"table_id": 2, "is_ip6": af,
                                                     "name": "calico-pods-ip%d" % (6 if af else 4)}),
           "pod table")
        ok(route(vpp, "::/0" if af else "0.0.0.0/0", [path(table=0, v6=bool(af))], table=2),
           "pod table default -> table 0")
    ok(vpp.api.cnat_set_snat_addresses_v2(fwd_fib_index=0, ret_fib_index=0, snat_ip4=SNAT4,
                                          snat_ip6=SNAT6, sw_if_index=NONE, flags=2 | 4),
       "cnat_set_snat_addresses_v2")
    for pfx in ("198.18.0.0/16", "fd00:20::/64"):  # the pod CIDRs calico excludes
        ok(vpp.api.cnat_snat_policy_add_del_exclude_pfx(is_add=1, prefix=pfx), "exclude " + pfx)
    ok(vpp.api.cnat_set_snat_policy(policy=2), "K8S snat policy")


def tun_create(vpp, pod):
    # The namespace's kernel has no IPv6 (no router solicitations, no DAD) and no addresses.
    sh("ip", "netns", "exec", pod.ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1",
       "net.ipv6.conf.default.disable_ipv6=1")
    r = ok(vpp.api.tap_create_v3(id=NONE, use_random_mac=1, num_rx_queues=1, num_tx_queues=1,
                                 tx_ring_sz=256, rx_ring_sz=256, host_mtu_set=1, host_mtu_size=1500,
                                 tap_flags=TUN, host_namespace_set=1, host_namespace=pod.path,
                                 host_if_name_set=1, host_if_name="eth0", tag="pod-" + pod.name),
           "tun for " + pod.name)
    pod.sw = r.sw_if_index
    return pod.sw


def pod_bringup(vpp, pod):
    """calico's tun pod: a pod VRF, a loopback for unnumbered, the tun, cnat on both."""
    vrf = {}
    for af in (0, 1):
        r = ok(vpp.api.ip_table_allocate(table={"table_id": NONE, "is_ip6": af,
                                                "name": "pod-%s-ip%d" % (pod.name, 6 if af else 4)}),
               "pod vrf")
        vrf[af] = r.table.table_id
        ok(route(vpp, "::/0" if af else "0.0.0.0/0", [path(table=2, v6=bool(af))], table=vrf[af]),
           "pod vrf default -> table 2")
    lo = ok(vpp.api.create_loopback(mac_address="02:00:00:00:00:01"), "loopback").sw_if_index
    for af in (0, 1):
        ok(vpp.api.sw_interface_set_table(sw_if_index=lo, is_ipv6=af, vrf_id=vrf[af]), "lo vrf")
    ok(vpp.api.cnat_snat_policy_add_del_if(sw_if_index=lo, is_add=1, table=2), "lo POD interface")
    ok(vpp.api.feature_cnat_enable_disable(sw_if_index=lo, enable_disable=1), "cnat on lo")
    ok(vpp.api.sw_interface_add_del_address(sw_if_index=lo, is_add=1, prefix=pod.ip4 + "/32"), "lo address")
    ok(vpp.api.sw_interface_add_del_address(sw_if_index=lo, is_add=1, prefix=pod.ip6 + "/128"), "lo address6")
    tun = tun_create(vpp, pod)
    ok(vpp.api.cnat_snat_policy_add_del_if(sw_if_index=tun, is_add=1, table=2), "tun POD interface")
    ok(vpp.api.feature_cnat_enable_disable(sw_if_index=tun, enable_disable=1), "cnat on tun")
    for af in (0, 1):
        ok(vpp.api.sw_interface_set_table(sw_if_index=tun, is_ipv6=af, vrf_id=vrf[af]), "tun vrf")
    ok(vpp.api.sw_interface_ip6_enable_disable(sw_if_index=tun, enable=1), "tun ip6")
    ok(vpp.api.sw_interface_set_mtu(sw_if_index=tun, mtu=[9216, 0, 0, 0]), "tun mtu")
    ok(vpp.api.sw_interface_set_flags(sw_if_index=tun, flags=1), "tun up")
    ok(vpp.api.sw_interface_set_rx_mode(sw_if_index=tun, queue_id_valid=0, mode=3), "tun rx mode")
    ok(vpp.api.sw_interface_set_unnumbered(sw_if_index=lo, unnumbered_sw_if_index=tun, is_add=1),
       "tun unnumbered")
    sh("ip", "-n", pod.ns, "link", "set", "eth0", "up")
    ok(route(vpp, pod.ip4 + "/32", [path(tun)]), "route to " + pod.name)
    ok(route(vpp, pod.ip6 + "/128", [path(tun, v6=True)]), "route6 to " + pod.name)
    pod.open()


def outside_bringup(vpp, pod):
    """The outside world behind a tun in table 0 that is no pod interface (the uplink's role)."""
    tun = tun_create(vpp, pod)
    ok(vpp.api.feature_cnat_enable_disable(sw_if_index=tun, enable_disable=1), "cnat on outside")
    ok(vpp.api.sw_interface_ip6_enable_disable(sw_if_index=tun, enable=1), "outside ip6")
    ok(vpp.api.sw_interface_set_flags(sw_if_index=tun, flags=1), "outside up")
    sh("ip", "-n", pod.ns, "link", "set", "eth0", "up")
    ok(route(vpp, "0.0.0.0/0", [path(tun)]), "default route outside")
    ok(route(vpp, "::/0", [path(tun, v6=True)]), "default route6 outside")
    pod.open()


def ep(addr, port):
    return {"addr": addr, "sw_if_index": NONE, "if_af": 0, "port": port}


def translation(vpp, vip, port, proto, backends, flags=ALLOC_PORT | NO_CLIENT, fhc=0):
    """cnat_translation_update as calico's service handler sends it; backends are
    (addr, port[, path flags])."""
    paths = [{"src_ep": ep("::" if ":" in vip else "0.0.0.0", 0), "dst_ep": ep(b[0], b[1]),
              "flags": b[2] if len(b) > 2 else 0} for b in backends]
    r = vpp.api.cnat_translation_update(translation={
        "vip": ep(vip, port), "id": 0, "ip_proto": 6 if proto == "tcp" else 17, "is_real_ip": 0,
        "flags": flags, "lb_type": 0, "flow_hash_config": fhc, "n_paths": len(paths), "paths": paths})
    ok(r, "cnat_translation_update %s;%d %s -> %s" % (vip, port, proto, backends))
    return r.id


def sessions(vpp):
    return [(str(s.session.tuple.addr[0]), s.session.tuple.port[0], str(s.session.tuple.addr[1]),
             s.session.tuple.port[1], int(s.session.tuple.ip_proto)) for s in vpp.api.cnat_session_dump()]


def err_count(vpp, node, reason):
    for line in vpp.api.cli_inband(cmd="show errors").reply.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[1] == node and parts[2].startswith(reason):
            return int(parts[0])
    return 0


def purge(vpp):
    ok(vpp.api.cnat_session_purge(), "cnat_session_purge")
    check(sessions(vpp) == [], "no sessions left")


# ---- scenarios ------------------------------------------------------------------------------

def translate_and_back(vpp, c, b1, v6, proto, sport):
    vip, cip, bip = (VIP6, C6, B1_6) if v6 else (VIP4, C4, B1_4)
    vport, bport = (80, 8080) if proto == "tcp" else (53, 5353)
    what = "%s %s %s;%d" % ("ip6" if v6 else "ip4", proto, vip, vport)
    b1.drain()
    c.send(flow(cip, vip, proto, sport, vport))
    p = b1.expect(is_flow(dst=bip), what + " DNAT")
    check(p.src == cip and l4(p).sport == sport and l4(p).dport == bport
          and bytes(l4(p).payload) == b"rvpp-cnat", "%s: backend sees %s" % (what, p.summary()))
    check((p.hlim if v6 else p.ttl) == 63, what + ": TTL decremented once")
    csum_ok(p, what + " at the backend")
    c.drain()
    b1.send(reply_of(p))
    r = c.expect(is_flow(dst=cip, dport=sport), what + " reply")
    check(r.src == vip and l4(r).sport == vport and bytes(l4(r).payload) == b"reply",
          "%s: the reply comes from the VIP: %s" % (what, r.summary()))
    csum_ok(r, what + " reply at the client")
    return p


def passes_unchanged(frm, to, pkt, what):
    """`pkt` from `frm` reaches `to` with its addresses and ports as sent."""
    to.drain()
    frm.send(pkt)
    x = l4(pkt)
    p = to.expect(is_flow(src=pkt.src, dst=pkt.dst, sport=x.sport, dport=x.dport), what + " unchanged")
    check(bytes(l4(p).payload) == bytes(x.payload), what + ": payload kept")
    csum_ok(p, what)


def scenario_translate(vpp, c, b1, b2, x):
    for v6 in (False, True):
        vip, bip = (VIP6, B1_6) if v6 else (VIP4, B1_4)
        translation(vpp, vip, 80, "tcp", [(bip, 8080)])
        translation(vpp, vip, 53, "udp", [(bip, 5353)])
    for v6 in (False, True):
        for proto in ("tcp", "udp"):
            translate_and_back(vpp, c, b1, v6, proto, 40001)
    for v6 in (False, True):
        vip, cip, bip = (VIP6, C6, B1_6) if v6 else (VIP4, C4, B1_4)
        # An unknown port of a VIP follows the FIB (the default route, to the outside).
        passes_unchanged(c, x, flow(cip, vip, "tcp", 40002, 81), "unknown VIP port")
        # A backend's packet without a session passes unchanged.
        passes_unchanged(b1, c, flow(bip, cip, "udp", 8080, 40999), "backend without a session")


def scenario_icmp_errors(vpp, c, b1, b2, x):
    """The backend (or a router before it) answers the translated flow with an ICMP error:
    the client gets it with the outer and the quoted headers translated back."""
    for v6 in (False, True):
        vip, cip, bip = (VIP6, C6, B1_6) if v6 else (VIP4, C4, B1_4)
        for proto, vport in (("udp", 53), ("tcp", 80)):
            for kind in ("unreach", "ttl"):
                sport = 40100 + (10 if proto == "tcp" else 0) + (1 if kind == "ttl" else 0)
                what = "icmp%s %s %s" % ("6" if v6 else "", kind, proto)
                b1.drain()
                c.send(flow(cip, vip, proto, sport, vport))
                p = b1.expect(is_flow(dst=bip, sport=sport), what + ": the flow")
                router = bip if kind == "unreach" else ("fd00:20::99" if v6 else "198.18.20.99")
                if v6:
                    err = ICMPv6DestUnreach(code=4) if kind == "unreach" else ICMPv6TimeExceeded(code=0)
                    e = IPv6(src=router, dst=cip, hlim=64) / err / bytes(p)
                else:
                    err = ICMP(type=3, code=3) if kind == "unreach" else ICMP(type=11, code=0)
                    e = IP(src=router, dst=cip, ttl=64) / err / bytes(p)
                c.drain()
                b1.send(e)

                def is_err(q):
                    return ((ICMPv6DestUnreach in q or ICMPv6TimeExceeded in q) if v6
                            else (ICMP in q and q[ICMP].type in (3, 11)))
                r = c.expect(is_err, what)
                inner = r[IPv6][1] if v6 else r[ICMP].payload
                ix = inner.payload
                want_src = vip if kind == "unreach" else router
                check(r.src == want_src and r.dst == cip, "%s: outer %s -> %s" % (what, r.src, r.dst))
                check(inner.src == cip and inner.dst == vip and ix.sport == sport and ix.dport == vport,
                      "%s: quoted flow back to %s;%d -> %s;%d" % (what, inner.src, ix.sport, inner.dst, ix.dport))
                csum_ok(r, what)


def scenario_update_delete(vpp, c, b1, b2, x):
    purge(vpp)
    vip = "198.19.255.2"
    tid = translation(vpp, vip, 80, "tcp", [(B1_4, 8080)])
    old = list(range(41000, 41004))
    for sp in old:
        c.send(flow(C4, vip, "tcp", sp, 80))
        b1.expect(is_flow(dst=B1_4, sport=sp), "flow %d to B1" % sp)
    check(len(sessions(vpp)) == 2 * len(old), "two session entries a flow")
    check(translation(vpp, vip, 80, "tcp", [(B1_4, 8080), (B2_4, 8080)]) == tid, "an update keeps the id")
    check(len(sessions(vpp)) == 2 * len(old), "adding a backend removes no session")
    for sp in old:
        c.send(flow(C4, vip, "tcp", sp, 80, flags="A", seq=1001))
        b1.expect(is_flow(dst=B1_4, sport=sp), "an existing flow %d keeps B1" % sp)
    b2.nothing(is_flow(dst=B2_4), "existing flows after the update")
    to = {}
    for sp in range(41100, 41116):
        c.send(flow(C4, vip, "tcp", sp, 80))
        got = first_of((b1, b2), is_flow(sport=sp))
        check(got is not None, "new flow %d reaches a backend" % sp)
        to[sp] = got
    n2 = sum(1 for b in to.values() if b is b2)
    check(0 < n2 < len(to), "new flows spread over the new backend list (%d of %d to B2)" % (n2, len(to)))
    check(len(sessions(vpp)) == 2 * (len(old) + len(to)), "a session pair for each")
    # Dropping B1: exactly the sessions to B1 go; those to B2 stay.
    translation(vpp, vip, 80, "tcp", [(B2_4, 8080)])
    left = sessions(vpp)
    check(len(left) == 2 * n2, "update to [B2] leaves the %d B2 flows' sessions (%d entries)" % (n2, len(left)))
    check(all(B1_4 not in (s[0], s[2]) for s in left), "no session names B1")
    c.send(flow(C4, vip, "tcp", old[0], 80, flags="A", seq=1002))
    b2.expect(is_flow(dst=B2_4, sport=old[0]), "a flow whose backend went is re-balanced to B2")

    # Delete: a second translation's sessions go with it, the others stay.
    vip3 = "198.19.255.3"
    tid3 = translation(vpp, vip3, 80, "udp", [(B1_4, 7000)])
    before = sorted(sessions(vpp))
    for sp in (42000, 42001):
        c.send(flow(C4, vip3, "udp", sp, 80))
        b1.expect(is_flow(dst=B1_4, dport=7000, sport=sp), "udp flow %d to the second VIP" % sp)
    check(len(sessions(vpp)) == len(before) + 4, "the second VIP's flows have sessions")
    ok(vpp.api.cnat_translation_del(id=tid3), "cnat_translation_del")
    check(sorted(sessions(vpp)) == before, "delete removes exactly its sessions")
    passes_unchanged(c, x, flow(C4, vip3, "udp", 42000, 80), "a deleted VIP follows the FIB")
    ok(vpp.api.cnat_translation_del(id=tid), "del the updated translation")
    check(sessions(vpp) == [], "and its sessions")


def backends_of(vpp, c, b1, b2, vip, sports, proto="tcp", vport=80):
    """For each source port, which backend a new flow from C reached."""
    seen = {}
    for sp in sports:
        c.send(flow(C4, vip, proto, sp, vport))
        got = first_of((b1, b2), is_flow(sport=sp))
        check(got is not None, "flow %d to %s reaches a backend" % (sp, vip))
        seen[sp] = got.name
    b1.nothing(is_flow(), "no flow reaches two backends", timeout=0.1)
    b2.nothing(is_flow(), "no flow reaches two backends", timeout=0.1)
    return seen


def scenario_hashing(vpp, c, b1, b2, x):
    purge(vpp)
    both = [(B1_4, 8080), (B2_4, 8080)]
    # Default flow hash: the source port counts (16 flows on 2 backends use both).
    t0 = translation(vpp, "198.19.255.4", 80, "tcp", both)
    seen = backends_of(vpp, c, b1, b2, "198.19.255.4", range(43000, 43016))
    check(len(set(seen.values())) == 2, "default flow hash spreads a client's ports: %s" % seen)
    # Without the source port: one client's flows all hash to one backend.
    t1 = translation(vpp, "198.19.255.5", 80, "tcp", both, fhc=FHC_DEFAULT & ~FHC_SRC_PORT)
    seen = backends_of(vpp, c, b1, b2, "198.19.255.5", range(43100, 43116))
    check(len(set(seen.values())) == 1, "flow_hash_config without src port: one backend %s" % set(seen.values()))
    # ClientIP affinity (rvpp's flag 0x20): the default hash, yet a client sticks to its backend.
    t2 = translation(vpp, "198.19.255.6", 80, "tcp", both, flags=ALLOC_PORT | NO_CLIENT | AFFINITY)
    seen = backends_of(vpp, c, b1, b2, "198.19.255.6", range(43200, 43216))
    check(len(set(seen.values())) == 1, "ClientIP affinity: one backend %s" % set(seen.values()))
    # externalTrafficPolicy=Local (translation 0x40): only paths flagged local (0x40).
    t3 = translation(vpp, "198.19.255.7", 80, "tcp", [(B1_4, 8080), (B2_4, 8080, PATH_LOCAL)],
                     flags=ALLOC_PORT | NO_CLIENT | LOCAL_ONLY)
    seen = backends_of(vpp, c, b1, b2, "198.19.255.7", range(43300, 43316))
    check(set(seen.values()) == {"B2"}, "externalTrafficPolicy=Local: only the local path %s" % set(seen.values()))
    for t in (t0, t1, t2, t3):
        ok(vpp.api.cnat_translation_del(id=t), "del")


def scenario_no_backends(vpp, c, b1, b2, x):
    """A VIP with no usable path answers ICMP port unreachable (kube-proxy's REJECT)."""
    t0 = translation(vpp, "198.19.255.8", 80, "tcp", [])
    t1 = translation(vpp, "198.19.255.9", 80, "tcp", [(B1_4, 8080)], flags=ALLOC_PORT | NO_CLIENT | LOCAL_ONLY)
    t2 = translation(vpp, "fd00:ff::8", 53, "udp", [])
    for vip, proto, vport, what in (("198.19.255.8", "tcp", 80, "no backends"),
                                    ("198.19.255.9", "tcp", 80, "Local policy, no local backend"),
                                    ("fd00:ff::8", "udp", 53, "ip6 no backends")):
        v6 = ":" in vip
        cip = C6 if v6 else C4
        for b in (b1, b2, x):
            b.drain()
        c.drain()
        c.send(flow(cip, vip, proto, 44000, vport))
        if v6:
            r = c.expect(lambda q: ICMPv6DestUnreach in q and q[ICMPv6DestUnreach].code == 4, what)
            inner = r[IPv6][1]
        else:
            r = c.expect(lambda q: ICMP in q and q[ICMP].type == 3 and q[ICMP].code == 3, what)
            inner = r[ICMP].payload
        check(inner.dst == vip and inner.payload.dport == vport and r.dst == cip,
              "%s: port unreachable quoting the VIP" % what)
        csum_ok(r, what)
        for b in (b1, b2, x):
            b.nothing(is_flow(sport=44000), what, timeout=0.2)
    for t in (t0, t1, t2):
        ok(vpp.api.cnat_translation_del(id=t), "del")


def scenario_fragments(vpp, c, b1, b2, x):
    """Non-first fragments (no ports) follow the first fragment's translation."""
    for v6 in (False, True):
        vip, cip, bip = (VIP6, C6, B1_6) if v6 else (VIP4, C4, B1_4)
        what = "ip%s fragments" % ("6" if v6 else "4")
        big = bytes(range(256)) * 12
        if v6:
            pkt = IPv6(src=cip, dst=vip, hlim=64) / IPv6ExtHdrFragment(id=0x1234) / UDP(sport=45000, dport=53) / Raw(big)
            frags = fragment6(pkt, 1280)
        else:
            pkt = IP(src=cip, dst=vip, ttl=64, id=0x1234) / UDP(sport=45000, dport=53) / Raw(big)
            frags = fragment(pkt, fragsize=1000)
        check(len(frags) >= 3, "%s: %d fragments" % (what, len(frags)))
        b1.drain()
        for f in frags:
            c.send(f)

        def is_frag(q):
            if q.dst != bip:
                return False
            if v6:
                return IPv6ExtHdrFragment in q and q[IPv6ExtHdrFragment].id == 0x1234
            return IP in q and q[IP].id == 0x1234
        got = b1.recv_all(is_frag, 2.0, want=len(frags))
        check(len(got) == len(frags), "%s: all %d reach the backend (%d)" % (what, len(frags), len(got)))
        check(all(g.src == cip for g in got), what + ": source kept")
        if v6:
            parts = [(g[IPv6ExtHdrFragment].offset, bytes(g[IPv6ExtHdrFragment].payload)) for g in got]
        else:
            for g in got:
                csum_ok(IP(bytes(g)[:g.ihl * 4]), what + ": IP header of fragment at %d" % g.frag)
            parts = [(g.frag, bytes(g[IP].payload)) for g in got]
        whole = b"".join(d for _, d in sorted(parts))
        u = UDP(whole)
        check(u.sport == 45000 and u.dport == 5353 and bytes(u.payload) == big,
              what + ": reassembled, to the backend's port")
        ipl = IPv6(src=cip, dst=bip) if v6 else IP(src=cip, dst=bip, proto=17)
        csum_ok(ip_of(v6)(bytes(ipl / u)), what + ": reassembled datagram")


def scenario_snat(vpp, c, b1, b2, x):
    """K8S policy: C has natOutgoing (INCLUDE tables): to the outside it is SNATed, to an
    excluded prefix (the pod CIDR) not; a purge clears the sessions."""
    purge(vpp)
    ok(vpp.api.cnat_snat_policy_add_del_if(sw_if_index=c.sw, is_add=1, table=0), "C natOutgoing ip4")
    ok(vpp.api.cnat_snat_policy_add_del_if(sw_if_index=c.sw, is_add=1, table=1), "C natOutgoing ip6")
    late_replies = []
    for v6 in (False, True):
        cip, xip, snat, bip = (C6, X6, SNAT6, B1_6) if v6 else (C4, X4, SNAT4, B1_4)
        for proto in ("tcp", "udp"):
            what = "snat ip%s %s" % ("6" if v6 else "4", proto)
            x.drain()
            c.send(flow(cip, xip, proto, 46000, 80))
            p = x.expect(is_flow(dst=xip, dport=80), what)
            check(p.src == snat and 49152 <= l4(p).sport <= 65535,
                  "%s: from the SNAT address and an allocated port (%s)" % (what, p.summary()))
            csum_ok(p, what)
            late_replies.append(reply_of(p))
            c.drain()
            x.send(late_replies[-1])
            r = c.expect(is_flow(dst=cip, dport=46000), what + " reply")
            check(r.src == xip and l4(r).sport == 80, "%s: reply restored (%s)" % (what, r.summary()))
            csum_ok(r, what + " reply")
        b1.drain()
        c.send(flow(cip, bip, "tcp", 46001, 9000))
        p = b1.expect(is_flow(dst=bip, dport=9000), "to an excluded prefix")
        check(p.src == cip and p[TCP].sport == 46001, "excluded prefix: not SNATed (%s)" % p.summary())
    check(len(sessions(vpp)) > 0, "SNAT sessions dumped")
    purge(vpp)
    c.drain()
    for rp in late_replies:
        x.send(rp)
    c.nothing(is_flow(dport=46000), "replies after the purge")
    ok(vpp.api.cnat_snat_policy_add_del_if(sw_if_index=c.sw, is_add=0, table=0), "C natOutgoing off")
    ok(vpp.api.cnat_snat_policy_add_del_if(sw_if_index=c.sw, is_add=0, table=1), "C natOutgoing6 off")


def scenario_session_limit(vpp, c, b1, b2, x):
    """`cnat { session-max 64 }`: the 65th new flow is dropped and counted."""
    purge(vpp)
    t = translation(vpp, "198.19.255.10", 80, "udp", [(B1_4, 7000)])
    full0 = err_count(vpp, "cnat-input-ip4", "cnat session table full")
    extra = 6
    b1.drain()
    for sp in range(47000, 47000 + SESSION_MAX + extra):
        c.send(flow(C4, "198.19.255.10", "udp", sp, 80))
        time.sleep(0.001)
    got = b1.recv_all(is_flow(dst=B1_4, dport=7000), 1.5, want=SESSION_MAX + extra)
    check(len(got) == SESSION_MAX, "session-max %d: %d of %d new flows pass" % (SESSION_MAX, len(got), SESSION_MAX + extra))
    check(len(sessions(vpp)) == 2 * SESSION_MAX, "the table holds %d flows" % SESSION_MAX)
    full = err_count(vpp, "cnat-input-ip4", "cnat session table full") - full0
    check(full == extra, "the %d others counted as 'cnat session table full' (%d)" % (extra, full))
    purge(vpp)
    c.send(flow(C4, "198.19.255.10", "udp", 47999, 80))
    b1.expect(is_flow(dst=B1_4, sport=47999), "after a purge new flows pass again")
    ok(vpp.api.cnat_translation_del(id=t), "del")


SCENARIOS = [scenario_translate, scenario_icmp_errors, scenario_update_delete, scenario_hashing,
             scenario_fragments, scenario_snat, scenario_session_limit, scenario_no_backends]


def main():
    # Read here, not at import: scapy_npol_host.py imports the helpers above.
    APIDIR, SOCK, C_NS, B1_NS, B2_NS, X_NS = sys.argv[1:7]
    only = sys.argv[7:]  # scenario names to run (all when none)
    vpp = VPPApiClient(apidir=APIDIR, server_address=SOCK, read_timeout=10)
    vpp.connect("calico-agent")
    c, b1, b2 = Pod("C", C_NS, C4, C6), Pod("B1", B1_NS, B1_4, B1_6), Pod("B2", B2_NS, B2_4, B2_6)
    x = Pod("X", X_NS, X4, X6)
    node_bringup(vpp)
    for p in (c, b1, b2):
        pod_bringup(vpp, p)
    outside_bringup(vpp, x)
    workers = ok(vpp.api.show_threads(), "show_threads").count - 1
    if workers >= 2:
        # The client's queue on one worker, the backends' and the outside's on the other:
        # every reply is un-NATed by another worker than the one that made its session.
        for p, w in ((c, 0), (b1, 1), (b2, 1), (x, 1)):
            ok(vpp.api.sw_interface_set_rx_placement(sw_if_index=p.sw, queue_id=0, worker_id=w, is_main=0),
               "%s's queue on worker %d" % (p.name, w))
    for s in SCENARIOS:
        if only and s.__name__ not in only:
            continue
        t0 = time.time()
        try:
            s(vpp, c, b1, b2, x)
        except Exception:
            print(vpp.api.cli_inband(cmd="show errors").reply)
            print(vpp.api.cli_inband(cmd="show cnat session").reply)
            raise
        print("scenario %s passed in %.1f s" % (s.__name__, time.time() - t0))
    vpp.disconnect()
    print("ALL OK")


if __name__ == "__main__":
    main()
