#!/usr/bin/env python3
"""SRv6 between rvpp and scapy, an independent SRv6 implementation that stands in for
srv6_linux's Linux node on the uplink tap (run by control/tests/srv6_scapy.rs, which sets up
rvpp's side as srv6_linux does: common::srv6_node). scapy reads and writes the uplink's frames
in the peer namespace (whose kernel has no address and no IPv6, so it stays silent) and the
pod tap's frames in the pod namespace, whose kernel also pings.

- H.Encaps: what the pod sends to 198.19.9.0/24 and fd09::/64 leaves the uplink from fd00::1
  to the first SID with an SRH (segment list, Segments Left, Last Entry, next header) around
  the intact inner packet.
- End.DT4 / End.DT6: scapy encapsulates toward fd00:1::d4 / ::d6 with an SRH (as Linux's
  `encap seg6 mode encap`) and without (as VPP's one-SID encap); the pod gets the inner
  packet, one hop on. The pod's pings go round: scapy answers them as Linux's End, End.DX4 /
  End.DT6 and the remote pod would.
- Bad input: Segments Left 1 at End.DT4 (ICMPv6 parameter problem), an SRH longer than the
  packet, an IPv4 payload at End.DT6: each a counted drop, nothing reaches the pod.
- Volume: 200 packets each way and 200 bad ones, so that the Rust side's pool check (96
  buffers of slack) sees a buffer leaked per packet on any of these paths.

usage: scapy_srv6.py <apidir> <api socket> <peer ns> <pod ns>
Exits 77 when vpp_papi or scapy is not importable; raises on the first failed check.
"""
import functools
import subprocess
import sys
import time

from checks import check

try:
    from vpp_papi.vpp_papi import VPPApiClient
    from scapy.all import IP, UDP, ICMP, IPv6, Raw, ICMPv6EchoRequest, ICMPv6EchoReply
    from scapy.layers.inet6 import IPv6ExtHdrSegmentRouting, ICMPv6ParamProblem
    from scapy_cnat import Pod, csum_ok, err_count, sh
except ImportError as e:  # pragma: no cover
    print("vpp_papi or scapy not importable: %s" % e)
    sys.exit(77)

APIDIR, SOCK, PEER_NS, POD_NS = sys.argv[1:5]
ENCAP_SRC, PEER = "fd00::1", "fd00::2"
POD4, POD6, REMOTE4, REMOTE6 = "198.19.0.2", "fd01::2", "198.19.9.1", "fd09::1"
# The peer's SIDs in rvpp's policies (End, then End.DX4 / End.DT6), and rvpp's localsids.
POLICY4 = ["fd00:2::e", "fd00:2::d4"]
POLICY6 = ["fd00:2::e", "fd00:2::d6"]
DT4, DT6 = "fd00:1::d4", "fd00:1::d6"
IPPROTO_IPIP, IPPROTO_IPV6, IPPROTO_ROUTING = 4, 41, 43
LOCALSID, ENCAP4, ENCAP6 = "sr-localsid", "sr-pl-rewrite-encaps-v4", "sr-pl-rewrite-encaps"
DECAPSULATED = "sr localsid packets decapsulated"
ENCAPSULATED = "sr policy packets encapsulated"


def mac_in(ns, dev):
    return sh("ip", "netns", "exec", ns, "cat", "/sys/class/net/%s/address" % dev).strip()


def rvpp_mac(vpp, name):
    for i in vpp.api.sw_interface_dump():
        if i.interface_name == name:
            return str(i.l2_address)
    raise AssertionError("rvpp has no %s" % name)


def encapsulated(inner, sid, srh=True):
    """`inner` sent from the peer to `sid`: with a one-SID SRH as Linux's `encap seg6 mode
    encap` builds it, or as a bare IPv6 header as VPP's one-SID encap."""
    nh = IPPROTO_IPIP if isinstance(inner, IP) else IPPROTO_IPV6
    if not srh:
        return IPv6(src=PEER, dst=sid, nh=nh, hlim=64) / inner
    return (IPv6(src=PEER, dst=sid, nh=IPPROTO_ROUTING, hlim=64)
            / IPv6ExtHdrSegmentRouting(nh=nh, addresses=[sid], segleft=0, lastentry=0) / inner)


def to_policy(sids):
    """Matches what rvpp sent toward `sids`' first SID (check_encap checks the rest)."""
    return lambda p: IPv6 in p and p[IPv6].dst == sids[0]


def check_encap(p, sids, v4, what):
    """p is H.Encaps of an IPv4 (v4) or IPv6 packet into `sids`: its inner packet."""
    check(p.src == ENCAP_SRC and p.dst == sids[0],
          "%s: outer %s -> %s, the encaps source to the first SID" % (what, p.src, p.dst))
    check(p.hlim == 64, "%s: outer hop limit 64 (%d)" % (what, p.hlim))
    check(p.nh == IPPROTO_ROUTING, "%s: outer next header is a routing header (%d)" % (what, p.nh))
    check(p.plen == len(bytes(p.payload)), "%s: outer payload length %d" % (what, p.plen))
    srh = p.payload
    check(isinstance(srh, IPv6ExtHdrSegmentRouting) and srh.type == 4,
          "%s: the routing header is an SRH (%s)" % (what, srh.summary()))
    # RFC 8754: Segment List[0] is the last segment, the first SID is at [Last Entry].
    check(list(srh.addresses) == list(reversed(sids)),
          "%s: segment list %s, the path reversed" % (what, srh.addresses))
    check(srh.len == 2 * len(sids), "%s: SRH length %d" % (what, srh.len))
    check(srh.segleft == len(sids) - 1, "%s: Segments Left %d" % (what, srh.segleft))
    check(srh.lastentry == len(sids) - 1, "%s: Last Entry %d" % (what, srh.lastentry))
    want = IPPROTO_IPIP if v4 else IPPROTO_IPV6
    check(srh.nh == want, "%s: SRH next header %d (%d)" % (what, want, srh.nh))
    inner = srh.payload
    check(isinstance(inner, IP if v4 else IPv6), "%s: inner %s" % (what, inner.summary()))
    csum_ok(inner, what + ": the inner packet")
    return inner


def one_hop_on(p):
    """`p` as the next hop receives it: TTL / hop limit one less (checksums recomputed)."""
    q = p.__class__(bytes(p))
    if isinstance(q, IP):
        q.ttl -= 1
        q.chksum = None
    else:
        q.hlim -= 1
    return bytes(q.__class__(bytes(q)))


def encaps_from_the_pod(count, pod, peer):
    """scapy in the pod sends to the steered prefixes; scapy on the uplink checks rvpp's
    H.Encaps byte by byte."""
    for v4 in (True, False):
        fam, sids, node = ("IPv4", POLICY4, ENCAP4) if v4 else ("IPv6", POLICY6, ENCAP6)
        if v4:
            sent = (IP(src=POD4, dst=REMOTE4, ttl=64, tos=0x28, id=4242)
                    / UDP(sport=4001, dport=5001) / Raw(b"rvpp-srv6-encap-v4"))
        else:
            sent = (IPv6(src=POD6, dst=REMOTE6, hlim=64, tc=0x28, fl=0x12345)
                    / UDP(sport=4001, dport=5001) / Raw(b"rvpp-srv6-encap-v6"))
        sent = sent.__class__(bytes(sent))
        n0 = count(node, ENCAPSULATED)
        peer.drain()
        pod.send(sent)
        what = "%s from the pod, steered" % fam
        got = peer.expect(to_policy(sids), what)
        inner = check_encap(got, sids, v4, what)
        check(bytes(inner) == bytes(sent), "%s: the inner packet as the pod sent it" % what)
        check(got.tc == 0x28, "%s: outer traffic class copied from the inner %#x" % (what, got.tc))
        if not v4:
            check(got.fl == 0x12345, "%s: outer flow label copied from the inner" % what)
        check(count(node, ENCAPSULATED) == n0 + 1, "%s: counted by %s" % (what, node))


def decaps_to_the_pod(count, pod, peer):
    """scapy on the uplink encapsulates toward rvpp's End.DT4 / End.DT6, with and without an
    SRH; the pod gets the inner packet one hop on."""
    port = 5200
    for sid, v4 in ((DT4, True), (DT6, False)):
        for srh in (True, False):
            port += 1
            if v4:
                inner = (IP(src=REMOTE4, dst=POD4, ttl=64, id=port)
                         / UDP(sport=4002, dport=port) / Raw(b"rvpp-srv6-decap-v4"))
            else:
                inner = (IPv6(src=REMOTE6, dst=POD6, hlim=64, fl=port)
                         / UDP(sport=4002, dport=port) / Raw(b"rvpp-srv6-decap-v6"))
            inner = inner.__class__(bytes(inner))
            what = "%s to %s %s an SRH" % ("IPv4" if v4 else "IPv6", sid,
                                           "with" if srh else "without")
            n0 = count(LOCALSID, DECAPSULATED)
            pod.drain()
            peer.send(encapsulated(inner, sid, srh))
            got = pod.expect(lambda p, port=port: UDP in p and p[UDP].dport == port, what)
            csum_ok(got, what + ": at the pod")
            check(bytes(got) == one_hop_on(inner), "%s: the inner packet, one hop on" % what)
            check(count(LOCALSID, DECAPSULATED) == n0 + 1, "%s: counted as decapsulated" % what)


def pings_go_round(count, pod, peer):
    """The pod's kernel pings the remote pod; scapy answers as Linux's End and End.DX4 /
    End.DT6 and the remote pod would: the reply comes back encapsulated (IPv4 with an SRH,
    IPv6 without) to rvpp's End.DT4 / End.DT6."""
    for v4 in (True, False):
        dst, sids = (REMOTE4, POLICY4) if v4 else (REMOTE6, POLICY6)
        fam = "IPv4" if v4 else "IPv6"
        peer.drain()
        ping = subprocess.Popen(["ip", "netns", "exec", POD_NS, "ping", "-c", "3", "-i", "0.2",
                                 "-W", "2", dst], stdout=subprocess.PIPE, text=True)
        is_request = (lambda p: ICMP in p and p[ICMP].type == 8) if v4 else \
            (lambda p: ICMPv6EchoRequest in p)
        for n in range(3):
            what = "%s ping %d from the pod's kernel" % (fam, n + 1)
            got = peer.expect(lambda p: to_policy(sids)(p) and is_request(p), what, timeout=3)
            req = check_encap(got, sids, v4, what)
            if v4:
                reply = (IP(src=REMOTE4, dst=POD4, ttl=64)
                         / ICMP(type=0, id=req[ICMP].id, seq=req[ICMP].seq) / Raw(req[Raw].load))
                peer.send(encapsulated(reply, DT4, srh=True))
            else:
                e = req[ICMPv6EchoRequest]
                reply = IPv6(src=REMOTE6, dst=POD6, hlim=64) / ICMPv6EchoReply(id=e.id, seq=e.seq,
                                                                               data=e.data)
                peer.send(encapsulated(reply, DT6, srh=False))
        out, _ = ping.communicate(timeout=10)
        check(ping.returncode == 0 and " 0% packet loss" in out,
              "%s: the pod's pings answered through both SRv6 directions\n%s" % (fam, out))


def bad_input(count, pod, peer):
    """Each a counted drop; nothing reaches the pod."""
    # Segments Left 1 at a decapsulating SID: RFC 8986 4.4 / 4.6, a parameter problem.
    inner = IP(src=REMOTE4, dst=POD4) / UDP(sport=4003, dport=5301) / Raw(b"segments left")
    pkt = (IPv6(src=PEER, dst=DT4, nh=IPPROTO_ROUTING)
           / IPv6ExtHdrSegmentRouting(nh=IPPROTO_IPIP, addresses=["fd00:2::99", DT4],
                                      segleft=1, lastentry=1) / inner)
    reason = "sr localsid: segments left not 0 at a decap SID"
    n0, d0 = count(LOCALSID, reason), count(LOCALSID, DECAPSULATED)
    pod.drain()
    peer.drain()
    peer.send(pkt)
    err = peer.expect(lambda p: ICMPv6ParamProblem in p, "Segments Left 1 at End.DT4")
    pp = err[ICMPv6ParamProblem]
    # The pointer is the offset of Segments Left: 40 (IPv6) + 3.
    check(err.dst == PEER and pp.code == 0 and pp.ptr == 43,
          "Segments Left 1 at End.DT4: parameter problem to the sender, code %d pointer %d"
          % (pp.code, pp.ptr))
    pod.nothing(lambda p: UDP in p and p[UDP].dport == 5301, "Segments Left 1 at End.DT4")
    check(count(LOCALSID, reason) == n0 + 1, "Segments Left 1 at End.DT4: counted")

    # An SRH whose length (3 segments) runs past the packet (2 segments' worth).
    srh = bytes([IPPROTO_IPV6, 6, 4, 0, 2, 0, 0, 0]) + bytes(32)
    pkt = IPv6(src=PEER, dst=DT6, nh=IPPROTO_ROUTING, plen=len(srh)) / Raw(srh)
    reason = "sr localsid: SRH or payload length overruns the packet"
    n0 = count(LOCALSID, reason)
    peer.send(pkt)
    pod.nothing(lambda p: IPv6 in p and p[IPv6].src == PEER, "a truncated SRH to End.DT6")
    peer.nothing(lambda p: ICMPv6ParamProblem in p, "a truncated SRH to End.DT6: no ICMP")
    check(count(LOCALSID, reason) == n0 + 1, "a truncated SRH to End.DT6: counted")

    # An IPv4 payload at End.DT6.
    inner = IP(src=REMOTE4, dst=POD4) / UDP(sport=4003, dport=5302) / Raw(b"wrong family")
    reason = "sr localsid: payload does not match the behaviour"
    n0 = count(LOCALSID, reason)
    peer.send(encapsulated(inner, DT6, srh=True))
    pod.nothing(lambda p: UDP in p and p[UDP].dport == 5302, "IPv4 at End.DT6")
    check(count(LOCALSID, reason) == n0 + 1, "IPv4 at End.DT6: counted")
    check(count(LOCALSID, DECAPSULATED) == d0, "none of them counted as decapsulated")


def volume(count, pod, peer, n=200):
    """`n` packets each way and `n` bad ones: more than the pool check's slack (96), so a
    buffer leaked per packet on any of these paths shows there."""
    pod.drain()
    peer.drain()
    d0 = count(LOCALSID, DECAPSULATED)
    for i in range(n):
        inner = IP(src=REMOTE4, dst=POD4, id=i) / UDP(sport=4004, dport=5400) / Raw(b"volume")
        peer.send(encapsulated(inner, DT4, srh=bool(i % 2)))
    got = pod.recv_all(lambda p: UDP in p and p[UDP].dport == 5400, 5, want=n)
    check(len(got) == n and count(LOCALSID, DECAPSULATED) == d0 + n,
          "%d of %d decapsulated packets at the pod" % (len(got), n))
    e0 = count(ENCAP4, ENCAPSULATED)
    for i in range(n):
        pod.send(IP(src=POD4, dst=REMOTE4, id=i) / UDP(sport=4004, dport=5401) / Raw(b"volume"))
    got = peer.recv_all(lambda p: to_policy(POLICY4)(p) and UDP in p and p[UDP].dport == 5401,
                        5, want=n)
    check(len(got) == n and count(ENCAP4, ENCAPSULATED) == e0 + n,
          "%d of %d encapsulated packets at the peer" % (len(got), n))
    reason = "sr localsid: SRH or payload length overruns the packet"
    t0 = count(LOCALSID, reason)
    srh = bytes([IPPROTO_IPV6, 6, 4, 0, 2, 0, 0, 0]) + bytes(32)
    for _ in range(n):
        peer.send(IPv6(src=PEER, dst=DT6, nh=IPPROTO_ROUTING, plen=len(srh)) / Raw(srh))
    for _ in range(50):
        if count(LOCALSID, reason) == t0 + n:
            break
        time.sleep(0.1)
    check(count(LOCALSID, reason) == t0 + n, "%d truncated SRHs counted" % n)


def main():
    vpp = VPPApiClient(apidir=APIDIR, server_address=SOCK, read_timeout=10)
    vpp.connect("scapy-srv6")
    count = functools.partial(err_count, vpp)
    up, tap1 = rvpp_mac(vpp, "tap0"), rvpp_mac(vpp, "tap1")
    peer = Pod("peer", PEER_NS, None, PEER, ifname="up0", l2=(mac_in(PEER_NS, "up0"), up))
    pod = Pod("pod", POD_NS, POD4, POD6, l2=(mac_in(POD_NS, "eth0"), tap1))
    peer.open()
    pod.open()
    try:
        for scenario in (encaps_from_the_pod, decaps_to_the_pod, pings_go_round, bad_input,
                         volume):
            scenario(count, pod, peer)
    except Exception:
        print(vpp.api.cli_inband(cmd="show errors").reply)
        raise
    vpp.disconnect()
    print("ALL OK")


if __name__ == "__main__":
    main()
