#!/usr/bin/env python3
"""Host endpoints and failsafe ports as the unchanged calico-vpp-agent programs them, checked
with real TCP and UDP (run by control/tests/hep_failsafe.rs).

usage: hep_failsafe.py <apidir> <api socket> <uplink> <peer ns> <host ns> <host ns path> <pod ns> <pod ns path> udp

bringup.py's node (vpp-manager: af_packet uplink, host tap whose Linux side holds the node
addresses, punt to the host) and tun pod; then what calico-vpp-agent/felix/felix_server.go's
Serve sends before felix connects (createAllPodsIpset, createEndpointToHostPolicy and the host
tap's default configuration, createAllowFromHostPolicy, createAllowToHostPolicy,
createFailSafePolicies with felix's default ports), and host_endpoint.go's Create / Update /
Delete for a host endpoint on the uplink (`interfaceName` = the uplink: the uplink gets the
forward configuration with invert_rx_tx=1, the host tap the host configuration). A host
endpoint's policies act on the host tap (traffic to and from the Linux host), its
applyOnForward policies on the uplink (traffic forwarded to and from pods).

Exits 77 when vpp_papi is not importable; raises on the first failed check.
"""
import json
import subprocess
import sys
import time

import bringup as B
from bringup import sh, ns, route, path, NODE4, NODE6, PEER4, POD4, HOST_NS, PEER_NS, POD_NS, HOST_TAP
from checks import check, ok
from vpp_papi.vpp_papi import VPPApiClient

PEER6 = "fd00:10::2"
PEER6_NEW = "fd00:10::3"  # never resolved before the host endpoint
# npol.api enums
A_ALLOW, A_DENY = 0, 1
D_ALLOW, D_DENY, D_PASS = 0, 1, 2
CIDR, PORT_RANGE, IP_SET = 0, 1, 3
F_L4_PROTO = 3
TCP, UDP = 6, 17
# felix/config/config_params.go's defaults, which felixConfig.New() gives the agent
FAILSAFE_IN = [("tcp", 22), ("udp", 68), ("tcp", 179), ("tcp", 2379), ("tcp", 2380), ("tcp", 5473),
               ("tcp", 6443), ("tcp", 6666), ("tcp", 6667)]
FAILSAFE_OUT = [("udp", 53), ("udp", 67), ("tcp", 179), ("tcp", 2379), ("tcp", 2380), ("tcp", 5473),
                ("tcp", 6443), ("tcp", 6666), ("tcp", 6667)]
ALLOWED = 8080  # the host endpoint policy's one allowed port
CLOSED_TCP, CLOSED_UDP = 9090, 9091  # ports no policy allows
FWD_IN, FWD_OUT = 8443, 8444  # the applyOnForward policy's ports
PROTO = {"tcp": TCP, "udp": UDP}

SERVER = r"""
import selectors, socket, sys
sel = selectors.DefaultSelector()
for spec in sys.argv[1:]:
    proto, port = spec.split(":")
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(socket.AF_INET6, kind)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", int(port)))
    if proto == "tcp":
        s.listen(64)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ, proto)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        s = key.fileobj
        try:
            if key.data == "tcp":
                c, _ = s.accept()
                c.settimeout(2)
                d = c.recv(64)
                c.sendall(d[::-1])
                c.close()
            else:
                d, a = s.recvfrom(64)
                s.sendto(d[::-1], a)
        except OSError:
            pass
"""

CLIENT = r"""
import json, socket, sys, threading
res = {}
def one(spec):
    proto, addr, port = spec.split("|")
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(fam, kind)
    s.settimeout(1.5 if proto == "tcp" else 0.5)
    try:
        if proto == "tcp":
            s.connect((addr, int(port)))
            s.sendall(b"rvpp-hep")
            res[spec] = s.recv(64) == b"peh-ppvr"
        else:
            res[spec] = False
            for _ in range(3):
                s.sendto(b"rvpp-hep", (addr, int(port)))
                try:
                    if s.recvfrom(64)[0] == b"peh-ppvr":
                        res[spec] = True
                        break
                except socket.timeout:
                    pass
    except OSError:
        res[spec] = False
    finally:
        s.close()
ts = [threading.Thread(target=one, args=(a,)) for a in sys.argv[1:]]
for t in ts:
    t.start()
for t in ts:
    t.join()
print(json.dumps(res))
"""

SERVERS = []


def serve(netns, ports):
    p = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", SERVER] +
                         ["%s:%d" % pp for pp in ports], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    SERVERS.append(p)
    check(p.stdout.readline().strip() == "ready", "servers in %s on %s" % (netns, ports))


def reach(netns, flows):
    """{(proto, addr, port): connected and answered} for flows started in `netns`."""
    specs = ["%s|%s|%d" % f for f in flows]
    r = ns(netns, sys.executable, "-c", CLIENT, *specs)
    got = json.loads(r.stdout)
    return {f: got["%s|%s|%d" % f] for f in flows}


VPP = None


def expect(netns, what, flows, want):
    """Every flow in `flows` from `netns` connects (and its reply comes back) iff `want`."""
    got = reach(netns, flows)
    bad = [f for f, v in got.items() if v != want]
    if bad:
        for c in ("show errors", "show npol interfaces", "show interface", "show ip6 neighbors"):
            print(VPP.api.cli_inband(cmd=c).reply)
        for n in (HOST_NS, PEER_NS):
            for a in (("-6", "addr"), ("-6", "neigh"), ("-6", "route")):
                print(n, a, ns(n, "ip", *a, check_rc=False).stdout)
    check(not bad, "%s: %s %s (wrong: %s)" % (what, "pass" if want else "denied", sorted(got), bad))


# --- the agent's objects (calico-vpp-agent/felix, vpplink/npol.go, vpplink/types/npol.go) ---

def rule_create(vpp, action, proto=None, dst_net=(), src_net=(), dst_ports=(), src_ipset=None,
                dst_ipset=None):
    """types.ToNpolRule: filters, then DstNet, SrcNet, DstPortRange, DstIPSet, SrcIPSet entries."""
    filters = [{"type": F_L4_PROTO, "value": proto, "should_match": 1}] if proto else []
    filters += [{"type": 0, "value": 0, "should_match": 0}] * (3 - len(filters))
    m = [{"is_src": 0, "is_not": 0, "type": CIDR, "data": {"cidr": n}} for n in dst_net]
    m += [{"is_src": 1, "is_not": 0, "type": CIDR, "data": {"cidr": n}} for n in src_net]
    m += [{"is_src": 0, "is_not": 0, "type": PORT_RANGE, "data": {"port_range": {"start": p, "end": p}}}
          for p in dst_ports]
    if dst_ipset is not None:
        m.append({"is_src": 0, "is_not": 0, "type": IP_SET, "data": {"set_id": {"set_id": dst_ipset}}})
    if src_ipset is not None:
        m.append({"is_src": 1, "is_not": 0, "type": IP_SET, "data": {"set_id": {"set_id": src_ipset}}})
    return ok(vpp.api.npol_rule_create(rule={"action": action, "filters": filters, "num_entries": len(m),
                                             "matches": m}), "npol_rule_create %s" % m).rule_id


def policy_create(vpp, inbound, outbound, what):
    """types.ToNpolPolicy: Calico's inbound rules are npol's is_inbound=0 items (pods' and hosts'
    point of view reversed), its outbound rules is_inbound=1."""
    items = [{"is_inbound": 0, "rule_id": r} for r in inbound] + [{"is_inbound": 1, "rule_id": r} for r in outbound]
    return ok(vpp.api.npol_policy_create(num_items=len(items), rules=items), "policy " + what).policy_id


def policy_update(vpp, pid, inbound, outbound, what):
    items = [{"is_inbound": 0, "rule_id": r} for r in inbound] + [{"is_inbound": 1, "rule_id": r} for r in outbound]
    ok(vpp.api.npol_policy_update(policy_id=pid, num_items=len(items), rules=items), "policy update " + what)


def conf(ingress=(), egress=(), profiles=(), def_in=D_ALLOW, def_eg=D_ALLOW):
    """types.NewInterfaceConfig and what the agent sets on it."""
    return {"ingress": list(ingress), "egress": list(egress), "profiles": list(profiles),
            "def_in": def_in, "def_eg": def_eg}


def configure(vpp, sw, c, invert, what):
    """vpplink ConfigurePolicies: rx = egress, tx = ingress (profile defaults DENY)."""
    ids = c["egress"] + c["ingress"] + c["profiles"]
    ok(vpp.api.npol_configure_policies(sw_if_index=sw, num_rx_policies=len(c["egress"]),
                                       num_tx_policies=len(c["ingress"]), total_ids=len(ids),
                                       invert_rx_tx=invert, policy_default_rx=c["def_eg"],
                                       policy_default_tx=c["def_in"], profile_default_rx=D_DENY,
                                       profile_default_tx=D_DENY, policy_ids=ids),
       "npol_configure_policies %s: %s invert=%d" % (what, c, invert))


class Agent:
    """The felix server's start (Serve, before felix connects)."""

    def __init__(self, vpp, all_pods, tap):
        self.vpp, self.all_pods, self.tap = vpp, all_pods, tap
        nodes = [NODE4 + "/32", NODE6 + "/128"]
        # createEndpointToHostPolicy (DefaultEndpointToHostAction ACCEPT)
        self.w2h_rule = rule_create(vpp, A_ALLOW, src_ipset=all_pods)
        self.w2h = policy_create(vpp, [self.w2h_rule], [], "workloads-to-host")
        self.default_tap = conf(ingress=[self.w2h])
        configure(vpp, tap, self.default_tap, 0, "host tap default")
        # createAllowFromHostPolicy
        out = rule_create(vpp, A_ALLOW, dst_ipset=all_pods)
        inn = rule_create(vpp, A_ALLOW, src_net=nodes)
        self.allow_from_host = policy_create(vpp, [inn], [out], "allow-from-host")
        # createAllowToHostPolicy
        inn = rule_create(vpp, A_ALLOW, dst_net=nodes)
        out = rule_create(vpp, A_ALLOW, src_net=nodes)
        self.allow_to_host = policy_create(vpp, [inn], [out], "allow-to-host")
        # createFailSafePolicies: the protocol and the destination port, both ways
        inn = [rule_create(vpp, A_ALLOW, proto=PROTO[p], dst_ports=[port]) for p, port in FAILSAFE_IN]
        out = [rule_create(vpp, A_ALLOW, proto=PROTO[p], dst_ports=[port]) for p, port in FAILSAFE_OUT]
        self.failsafe = policy_create(vpp, inn, out, "failsafe")

    def tap_conf(self, ingress, egress, profiles):
        """HostEndpoint.getTapPolicies."""
        c = conf(ingress, egress, profiles)
        if not ingress and not profiles:
            c["ingress"], c["def_in"] = [self.w2h, self.failsafe], D_DENY
        else:
            c["def_in"] = D_DENY if ingress else D_PASS
            c["ingress"] = [self.w2h, self.failsafe] + c["ingress"]
        if not egress and not profiles:
            c["egress"], c["def_eg"] = [self.allow_from_host, self.failsafe], D_DENY
        else:
            c["def_eg"] = D_DENY if egress else D_PASS
            c["egress"] = [self.allow_from_host, self.failsafe] + c["egress"]
        return c

    def forward_conf(self, ingress, egress, profiles):
        """HostEndpoint.getForwardPolicies."""
        c = conf(ingress, egress, profiles)
        if egress:
            c["egress"], c["def_eg"] = [self.allow_to_host] + egress, D_DENY
        elif profiles:
            c["def_eg"] = D_PASS
        if ingress:
            c["ingress"], c["def_in"] = [self.allow_to_host] + ingress, D_DENY
        elif profiles:
            c["def_in"] = D_PASS
        return c

    def hep(self, up, tiers=((), ()), forward=((), ()), profiles=()):
        """HostEndpoint.Create / Update: the uplink (no tunnels here) then the host tap."""
        configure(self.vpp, up, self.forward_conf(list(forward[0]), list(forward[1]), list(profiles)), 1,
                  "host endpoint uplink")
        configure(self.vpp, self.tap, self.tap_conf(list(tiers[0]), list(tiers[1]), list(profiles)), 0,
                  "host endpoint host tap")

    def hep_delete(self, up):
        configure(self.vpp, up, conf(), 0, "host endpoint removed: uplink")
        configure(self.vpp, self.tap, self.default_tap, 0, "host endpoint removed: host tap")


def ipv6_to_host(vpp, up, tap, vrfs):
    """What vpp-manager does for the node's IPv6 address as for its IPv4 one (bringup.py
    configures IPv4 only): a /128 in the tap VRF with a static neighbour, the punt table's
    route to the host."""
    ok(route(vpp, NODE6 + "/128", [path(tap, NODE6, v6=True)], table=vrfs[1]), "node6 via tap in tap vrf")
    ok(vpp.api.ip_neighbor_add_del(is_add=1, neighbor={"sw_if_index": tap, "flags": 1,
                                                       "mac_address": B.UPLINK_MAC, "ip_address": NODE6}),
       "static neighbour6 on tap")
    ok(route(vpp, NODE6 + "/128", [path(tap, NODE6, v6=True)], table=1), "punt table route6 to the host")


def main():
    global VPP
    vpp = VPPApiClient(apidir=B.APIDIR, server_address=B.SOCK, read_timeout=15)
    vpp.connect("vpp-manager")
    up, tap, vrfs = B.node_bringup(vpp)
    ipv6_to_host(vpp, up, tap, vrfs)
    vpp.disconnect()
    vpp = VPPApiClient(apidir=B.APIDIR, server_address=B.SOCK, read_timeout=15)
    vpp.connect("calico-agent")
    B.VPP = VPP = vpp
    B.pod_bringup(vpp, tap)
    all_pods = B.ALL_PODS
    # The host reaches the pods through the tap (calico's route to the pod CIDR).
    sh("ip", "-n", HOST_NS, "route", "add", "198.18.20.0/24", "dev", HOST_TAP)
    for _ in range(50):
        if "tentative" not in ns(HOST_NS, "ip", "-6", "addr", "show", "dev", HOST_TAP).stdout:
            break
        time.sleep(0.1)

    host_ports = sorted(set(FAILSAFE_IN + FAILSAFE_OUT + [("tcp", ALLOWED), ("tcp", CLOSED_TCP),
                                                         ("udp", CLOSED_UDP)]))
    peer_ports = sorted(set(FAILSAFE_IN + FAILSAFE_OUT + [("tcp", ALLOWED), ("tcp", CLOSED_TCP),
                                                         ("udp", CLOSED_UDP), ("tcp", FWD_IN),
                                                         ("tcp", FWD_OUT)]))
    pod_ports = [("tcp", CLOSED_TCP), ("tcp", FWD_IN), ("tcp", FWD_OUT)]
    try:
        serve(HOST_NS, host_ports)
        serve(PEER_NS, peer_ports)
        serve(POD_NS, pod_ports)
        run(vpp, up, tap, all_pods)
    finally:
        for p in SERVERS:
            p.kill()
            p.wait()
    vpp.disconnect()
    print("ALL OK")


def flows(addr, ports):
    return [(p, addr, port) for p, port in ports]


def run(vpp, up, tap, all_pods):
    agent = Agent(vpp, all_pods, tap)
    not_failsafe_in = [("tcp", CLOSED_TCP), ("udp", CLOSED_UDP), ("tcp", ALLOWED), ("udp", 53)]
    not_failsafe_out = [("tcp", CLOSED_TCP), ("udp", CLOSED_UDP), ("tcp", ALLOWED), ("tcp", 22), ("udp", 68)]
    # No host endpoint: the host tap's default configuration lets everything through.
    expect(PEER_NS, "no host endpoint: peer -> host", flows(NODE4, not_failsafe_in + FAILSAFE_IN), True)
    expect(HOST_NS, "no host endpoint: host -> peer", flows(PEER4, not_failsafe_out), True)
    expect(PEER_NS, "no host endpoint: ip6 peer -> host", flows(NODE6, not_failsafe_in), True)
    expect(HOST_NS, "no host endpoint: ip6 host -> peer", flows(PEER6, not_failsafe_out), True)

    # A host endpoint on the uplink with one ingress policy allowing TCP to ALLOWED.
    allow_rule = rule_create(vpp, A_ALLOW, proto=TCP, dst_ports=[ALLOWED])
    hep_pol = policy_create(vpp, [allow_rule], [], "host endpoint policy: allow tcp %d in" % ALLOWED)
    agent.hep(up, tiers=([hep_pol], []))
    for node, peer, v in ((NODE4, PEER4, "ip4"), (NODE6, PEER6, "ip6")):
        expect(PEER_NS, v + " host endpoint: peer -> host on the failsafe inbound ports", flows(node, FAILSAFE_IN), True)
        expect(PEER_NS, v + " host endpoint: peer -> host on the allowed port", flows(node, [("tcp", ALLOWED)]), True)
        expect(PEER_NS, v + " host endpoint: peer -> host elsewhere (default deny)",
               flows(node, [("tcp", CLOSED_TCP), ("udp", CLOSED_UDP), ("udp", 53), ("udp", 67)]), False)
        # no egress policy: the host may send to the failsafe outbound ports and to pods only
        expect(HOST_NS, v + " host endpoint: host -> peer on the failsafe outbound ports", flows(peer, FAILSAFE_OUT), True)
        expect(HOST_NS, v + " host endpoint: host -> peer elsewhere (default deny)",
               flows(peer, [("tcp", CLOSED_TCP), ("udp", CLOSED_UDP), ("tcp", ALLOWED), ("tcp", 22), ("udp", 68)]),
               False)
    # Neighbour discovery is not policed: the host resolves an address it has not seen
    # before (its solicitation and rvpp's proxy advertisement cross the host tap).
    expect(HOST_NS, "ip6 host endpoint: host -> a new neighbour on a failsafe port",
           flows(PEER6_NEW, [("tcp", 179)]), True)
    # workloads to host: DefaultEndpointToHostAction ACCEPT; host to pods: allow-from-host
    expect(POD_NS, "host endpoint: pod -> host on a closed port (workloads-to-host)",
           flows(NODE4, [("tcp", CLOSED_TCP)]), True)
    expect(HOST_NS, "host endpoint: host -> pod (allow-from-host)", flows(POD4, [("tcp", CLOSED_TCP)]), True)
    # forwarded pod traffic: the uplink has no forward policy
    expect(PEER_NS, "host endpoint: peer -> pod", flows(POD4, [("tcp", CLOSED_TCP)]), True)
    expect(POD_NS, "host endpoint: pod -> peer", flows(PEER4, [("tcp", CLOSED_TCP), ("udp", CLOSED_UDP)]), True)

    # An egress policy too (TCP to ALLOWED out): the host may now reach the peer there.
    out_rule = rule_create(vpp, A_ALLOW, proto=TCP, dst_ports=[ALLOWED])
    hep_out = policy_create(vpp, [], [out_rule], "host endpoint policy: allow tcp %d out" % ALLOWED)
    agent.hep(up, tiers=([hep_pol], [hep_out]))
    expect(HOST_NS, "egress policy: host -> peer on its port", flows(PEER4, [("tcp", ALLOWED)]), True)
    expect(HOST_NS, "egress policy: host -> peer elsewhere", flows(PEER4, [("tcp", CLOSED_TCP)]), False)
    expect(HOST_NS, "egress policy: host -> peer failsafe", flows(PEER4, [("udp", 53), ("tcp", 6443)]), True)

    # applyOnForward policies on the uplink (invert_rx_tx=1): in to FWD_IN, out to FWD_OUT.
    fin = rule_create(vpp, A_ALLOW, proto=TCP, dst_ports=[FWD_IN])
    fout = rule_create(vpp, A_ALLOW, proto=TCP, dst_ports=[FWD_OUT])
    fwd = policy_create(vpp, [fin], [fout], "applyOnForward policy")
    agent.hep(up, tiers=([hep_pol], [hep_out]), forward=([fwd], [fwd]))
    expect(PEER_NS, "forward policy: peer -> pod on its ingress port", flows(POD4, [("tcp", FWD_IN)]), True)
    expect(PEER_NS, "forward policy: peer -> pod elsewhere",
           flows(POD4, [("tcp", FWD_OUT), ("tcp", CLOSED_TCP)]), False)
    expect(POD_NS, "forward policy: pod -> peer on its egress port", flows(PEER4, [("tcp", FWD_OUT)]), True)
    expect(POD_NS, "forward policy: pod -> peer elsewhere", flows(PEER4, [("tcp", FWD_IN), ("tcp", CLOSED_TCP)]),
           False)
    # allow-to-host keeps the host's own traffic to the tap's policies
    expect(PEER_NS, "forward policy: peer -> host allowed and failsafe",
           flows(NODE4, [("tcp", ALLOWED), ("tcp", 22)]), True)
    expect(PEER_NS, "forward policy: peer -> host elsewhere", flows(NODE4, [("tcp", CLOSED_TCP)]), False)
    expect(HOST_NS, "forward policy: host -> peer", flows(PEER4, [("tcp", ALLOWED), ("tcp", 179)]), True)

    # An ingress-only applyOnForward policy: npol takes the default of the packet's direction,
    # not of the list invert_rx_tx picked (VPP's npol_match), so forwarded ingress falls to the
    # egress default (ALLOW) and forwarded egress to the ingress one (DENY): calico-vpp's
    # deviation from felix, kept as VPP has it (docs/features.md).
    fwd_in = policy_create(vpp, [fin], [], "applyOnForward ingress-only policy")
    agent.hep(up, tiers=([hep_pol], [hep_out]), forward=([fwd_in], []))
    expect(PEER_NS, "ingress-only forward policy: peer -> pod elsewhere (egress default)",
           flows(POD4, [("tcp", CLOSED_TCP)]), True)
    expect(POD_NS, "ingress-only forward policy: pod -> peer (ingress default)",
           flows(PEER4, [("tcp", FWD_OUT)]), False)

    # No policies, felix's default-allow profile (an automatic host endpoint): all passes.
    allow_all = rule_create(vpp, A_ALLOW)
    profile = policy_create(vpp, [allow_all], [allow_all], "profile projectcalico-default-allow")
    agent.hep(up, profiles=[profile])
    expect(PEER_NS, "default-allow profile: peer -> host", flows(NODE4, not_failsafe_in), True)
    expect(HOST_NS, "default-allow profile: host -> peer", flows(PEER4, not_failsafe_out), True)
    expect(PEER_NS, "default-allow profile: peer -> pod", flows(POD4, [("tcp", CLOSED_TCP)]), True)

    # No policies and no profile: only failsafe (and pods <-> host).
    agent.hep(up)
    expect(PEER_NS, "no policy: peer -> host failsafe", flows(NODE4, [("tcp", 22), ("udp", 68)]), True)
    expect(PEER_NS, "no policy: peer -> host elsewhere", flows(NODE4, [("tcp", ALLOWED), ("tcp", CLOSED_TCP)]), False)
    expect(POD_NS, "no policy: pod -> host", flows(NODE4, [("tcp", CLOSED_TCP)]), True)

    # DefaultEndpointToHostAction DROP (felix config change): the workloads-to-host rule
    # replaced (new rule, policy update, old rule deleted).
    drop = rule_create(vpp, A_DENY, src_ipset=all_pods)
    policy_update(vpp, agent.w2h, [drop], [], "workloads-to-host DROP")
    ok(vpp.api.npol_rule_delete(rule_id=agent.w2h_rule), "old workloads-to-host rule deleted")
    expect(POD_NS, "endpoint-to-host DROP: pod -> host", flows(NODE4, [("tcp", CLOSED_TCP), ("tcp", 22)]), False)
    expect(PEER_NS, "endpoint-to-host DROP: peer -> host failsafe", flows(NODE4, [("tcp", 22)]), True)

    # The host endpoint removed: the tap's default configuration again.
    agent.hep_delete(up)
    expect(PEER_NS, "removed: peer -> host", flows(NODE4, not_failsafe_in), True)
    expect(HOST_NS, "removed: host -> peer", flows(PEER4, not_failsafe_out), True)
    expect(POD_NS, "removed, endpoint-to-host DROP: pod -> host", flows(NODE4, [("tcp", CLOSED_TCP)]), False)


if __name__ == "__main__":
    main()
