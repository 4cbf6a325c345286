#!/usr/bin/env python3
"""A host endpoint's untracked and pre-DNAT policies (rvpp's npol extension) end to end: rvpp
as a daemon configured through vpp_papi, scapy sending and checking packets in namespaces
attached by tun pods (run by control/tests/npol_scapy.rs). The outside host X sits behind the
uplink (a tun in table 0, `invert_rx_tx=1`), the pod B behind a pod tun; a service VIP:80
has B:8080 as its backend. Then B's own policies: ingress to 8080 only, no egress, and its
reply and ICMP errors through the VIP still go out. Reuses scapy_cnat.py's pods and
calico-style bring-up.

usage: scapy_npol_host.py <apidir> <api socket> <backend ns> <outside ns>
Exits 77 when vpp_papi or scapy is not importable; raises on the first failed check.
"""
import sys

from checks import check, ok
from scapy_cnat import (Pod, node_bringup, pod_bringup, outside_bringup, translation, flow,
                        is_flow, reply_of, err_count, B1_4, B1_6, X4, X6, VIP4, VIP6, IP, IPv6,
                        ICMP, ICMPv6DestUnreach)
from vpp_papi.vpp_papi import VPPApiClient

APIDIR, SOCK, B_NS, X_NS = sys.argv[1:5]
END_UNTRACKED, END_PRE_DNAT = 0xFFFFFFFC, 0xFFFFFFFB
ALLOW, DENY = 0, 1
D_DENY = 1
PORT_RANGE, F_L4_PROTO, F_NONE = 1, 3, 0


def port_policy(vpp, action, port):
    """A policy whose outbound rule (what a host endpoint's received packets walk) is `action`
    for TCP to `port`."""
    f = [{"type": F_L4_PROTO, "value": 6, "should_match": 1}] + [{"type": F_NONE, "value": 0,
                                                                  "should_match": 0}] * 2
    m = [{"is_src": 0, "is_not": 0, "type": PORT_RANGE, "data": {"port_range": {"start": port, "end": port}}}]
    r = ok(vpp.api.npol_rule_create(rule={"action": action, "filters": f, "num_entries": 1, "matches": m}),
           "rule %s tcp dport %d" % ("allow" if action == ALLOW else "deny", port)).rule_id
    return ok(vpp.api.npol_policy_create(num_items=1, rules=[{"is_inbound": 0, "rule_id": r}]),
              "policy").policy_id


def uplink(vpp, sw, tx):
    """The host endpoint: received packets walk `tx`; nothing else, every default denies."""
    ok(vpp.api.npol_configure_policies(sw_if_index=sw, num_rx_policies=0, num_tx_policies=len(tx),
                                       total_ids=len(tx), invert_rx_tx=1, policy_default_rx=D_DENY,
                                       policy_default_tx=D_DENY, profile_default_rx=D_DENY,
                                       profile_default_tx=D_DENY, policy_ids=list(tx)),
       "npol_configure_policies on the uplink %r" % [hex(i) for i in tx])


def scenario(vpp, b, x, v6, pol):
    bip, xip, vip = (B1_6, X6, VIP6) if v6 else (B1_4, X4, VIP4)
    fam = "ip6" if v6 else "ip4"
    b.drain()
    x.drain()
    # Untracked allow, where the normal stage (nothing, default deny) would drop.
    p = flow(xip, bip, "tcp", 40022, 22)
    x.send(p)
    got = b.expect(is_flow(src=xip, dst=bip, dport=22), "%s untracked allow to :22" % fam)
    # Stateless: no session lets the reply out through the uplink's default deny.
    b.send(reply_of(got))
    x.nothing(is_flow(src=bip, sport=22), "%s the untracked flow's reply" % fam)
    # Untracked deny.
    n0 = err_count(vpp, "npol-untracked-rx-" + fam, "untracked or pre-DNAT policy deny")
    x.send(flow(xip, bip, "tcp", 40023, 23))
    b.nothing(is_flow(dport=23), "%s untracked deny of :23" % fam)
    check(err_count(vpp, "npol-untracked-rx-" + fam, "untracked or pre-DNAT policy deny") == n0 + 1,
          "%s counted as an untracked deny" % fam)
    # Pre-DNAT allow on the VIP's port: DNATed to the backend, its reply comes back from the VIP.
    uplink(vpp, x.sw, [pol["ssh"], pol["telnet"], END_UNTRACKED, pol["vip"], END_PRE_DNAT])
    x.send(flow(xip, vip, "tcp", 40080, 80))
    got = b.expect(is_flow(src=xip, dst=bip, dport=8080), "%s pre-DNAT allow of VIP:80" % fam)
    b.send(reply_of(got))
    x.expect(is_flow(src=vip, dst=xip, sport=80, dport=40080), "%s its reply from the VIP" % fam)
    # The backend's own port is not what the pre-DNAT rule allows, and nothing normal does.
    x.send(flow(xip, bip, "tcp", 40081, 8080))
    b.nothing(is_flow(dport=8080), "%s straight to the backend's port" % fam)
    # A pre-DNAT rule on the backend's port does not match before DNAT.
    uplink(vpp, x.sw, [pol["ssh"], pol["telnet"], END_UNTRACKED, pol["backend"], END_PRE_DNAT])
    x.send(flow(xip, vip, "tcp", 40082, 80))
    b.nothing(is_flow(dport=8080), "%s pre-DNAT rule on the backend's port, to the VIP" % fam)


def pod_ingress_only(vpp, sw, tx):
    """A pod: its ingress (tx) walks `tx`, its egress (rx) nothing; every default denies."""
    ok(vpp.api.npol_configure_policies(sw_if_index=sw, num_rx_policies=0, num_tx_policies=len(tx),
                                       total_ids=len(tx), invert_rx_tx=0, policy_default_rx=D_DENY,
                                       policy_default_tx=D_DENY, profile_default_rx=D_DENY,
                                       profile_default_tx=D_DENY, policy_ids=list(tx)),
       "npol_configure_policies on the pod %r" % list(tx))


def scenario_backend_egress_deny(vpp, b, x, v6, pol):
    """B, the VIP's backend, may receive TCP to 8080 and send nothing: its reply to a client
    that came through the VIP (un-NATed by cnat before B's egress policy sees it) still goes
    out, from the VIP, and so does an ICMP error about such a flow; anything else from B is
    dropped as a deny."""
    bip, xip, vip = (B1_6, X6, VIP6) if v6 else (B1_4, X4, VIP4)
    fam = "ip6" if v6 else "ip4"
    b.drain()
    x.drain()
    x.send(flow(xip, vip, "tcp", 40090, 80))
    got = b.expect(is_flow(src=xip, dst=bip, dport=8080), "%s VIP:80 reaches the backend" % fam)
    n0 = err_count(vpp, "npol-rx-" + fam, "policy deny")
    b.send(reply_of(got))
    x.expect(is_flow(src=vip, dst=xip, sport=80, dport=40090),
             "%s the backend's reply from the VIP through its egress deny" % fam)
    check(err_count(vpp, "npol-rx-" + fam, "policy deny") == n0, "%s the reply not denied" % fam)
    # B answers the next connection with a port unreachable: cnat translates it back, from
    # the VIP and quoting what X sent to the VIP, and it is an error about an allowed flow.
    x.send(flow(xip, vip, "tcp", 40092, 80))
    got = b.expect(is_flow(src=xip, dst=bip, dport=8080), "%s a second connection" % fam)
    if v6:
        b.send(IPv6(src=bip, dst=xip, hlim=64) / ICMPv6DestUnreach(code=4) / bytes(got))
    else:
        b.send(IP(src=bip, dst=xip, ttl=64) / ICMP(type=3, code=3) / bytes(got))

    def is_err(q):
        return ICMPv6DestUnreach in q if v6 else (ICMP in q and q[ICMP].type == 3)
    r = x.expect(is_err, "%s the backend's port unreachable through its egress deny" % fam)
    check(r.src == vip, "%s the error comes from the VIP (%s)" % (fam, r.src))
    check(err_count(vpp, "npol-rx-" + fam, "policy deny") == n0, "%s the error not denied" % fam)
    b.send(flow(bip, xip, "tcp", 8080, 40091))
    x.nothing(is_flow(src=bip), "%s unsolicited from the backend" % fam)
    x.nothing(is_flow(src=vip), "%s nor un-NATed" % fam)
    check(err_count(vpp, "npol-rx-" + fam, "policy deny") == n0 + 1,
          "%s the unsolicited packet counted as a deny" % fam)


def backend_and_outside():
    """Connected as the agent, the node brought up with pod B and the outside host X."""
    vpp = VPPApiClient(apidir=APIDIR, server_address=SOCK, read_timeout=10)
    vpp.connect("calico-agent")
    b, x = Pod("B", B_NS, B1_4, B1_6), Pod("X", X_NS, X4, X6)
    node_bringup(vpp)
    pod_bringup(vpp, b)
    outside_bringup(vpp, x)
    return vpp, b, x


def main():
    vpp, b, x = backend_and_outside()
    for vip, bip in ((VIP4, B1_4), (VIP6, B1_6)):
        translation(vpp, vip, 80, "tcp", [(bip, 8080)])
    pol = {"ssh": port_policy(vpp, ALLOW, 22), "telnet": port_policy(vpp, DENY, 23),
           "vip": port_policy(vpp, ALLOW, 80), "backend": port_policy(vpp, ALLOW, 8080)}
    for v6 in (False, True):
        uplink(vpp, x.sw, [pol["ssh"], pol["telnet"], END_UNTRACKED, pol["vip"], END_PRE_DNAT])
        try:
            scenario(vpp, b, x, v6, pol)
        except Exception:
            print(vpp.api.cli_inband(cmd="show errors").reply)
            print(vpp.api.cli_inband(cmd="show npol interfaces").reply)
            raise
    out = vpp.api.cli_inband(cmd="show npol interfaces").reply
    sections = out
    # The uplink allows everything from here; B polices its own ingress and egress.
    ok(vpp.api.npol_configure_policies(sw_if_index=x.sw, num_rx_policies=0, num_tx_policies=0,
                                       total_ids=0, invert_rx_tx=1, policy_default_rx=ALLOW,
                                       policy_default_tx=ALLOW, profile_default_rx=ALLOW,
                                       profile_default_tx=ALLOW, policy_ids=[]),
       "npol_configure_policies: the uplink allows all")
    pod_ingress_only(vpp, b.sw, [pol["backend"]])
    for v6 in (False, True):
        try:
            scenario_backend_egress_deny(vpp, b, x, v6, pol)
        except Exception:
            print(vpp.api.cli_inband(cmd="show errors").reply)
            print(vpp.api.cli_inband(cmd="show npol interfaces").reply)
            raise
    out = sections
    check("tx untracked [%d,%d] pre-dnat [%d] normal []" % (pol["ssh"], pol["telnet"], pol["backend"]) in out,
          "show npol interfaces shows the sections: %s" % out)
    vpp.disconnect()
    print("ALL OK")


if __name__ == "__main__":
    main()
