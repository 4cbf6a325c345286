#!/usr/bin/env python3
"""An IPIP tunnel as a host endpoint (npol with `invert_rx_tx=1`, as calico-vpp configures
uplinks and tunnels), end to end: rvpp as a daemon configured through vpp_papi, scapy in
namespaces attached by tun pods (run by control/tests/npol_scapy.rs). The outside host X plays
the remote node: it sends IPIP to this node's address on the uplink tun, carrying traffic from
a remote pod R to the local pod B, and receives B's replies encapsulated. The tunnel is set up
as calico does (unnumbered to the uplink, cnat on, the remote pod block routed through it).

usage: scapy_npol_tunnel.py <apidir> <api socket> <backend ns> <outside ns>
Exits 77 when vpp_papi or scapy is not importable; raises on the first failed check.
"""
from checks import check, ok
from scapy_cnat import NONE, flow, is_flow, reply_of, route, path, err_count, B1_4, X4, IP, TCP
from scapy_npol_host import backend_and_outside, port_policy, ALLOW, D_DENY

NODE4 = "198.19.30.254"  # this node's address on the uplink, the tunnel's source
R4 = "198.19.40.2"  # a pod on the remote node, in a block routed through the tunnel


def from_remote_pod(dport, sport):
    return IP(src=X4, dst=NODE4, proto=4, ttl=64) / flow(R4, B1_4, "tcp", sport, dport)


def encapsulated(sport=None, dport=None):
    """IPIP from this node to X whose inner packet is B's to R."""
    def m(q):
        if not (IP in q and q[IP].proto == 4 and q[IP].src == NODE4 and q[IP].dst == X4):
            return False
        inner = q[IP].payload
        return (isinstance(inner, IP) and inner.src == B1_4 and inner.dst == R4 and TCP in inner
                and (sport is None or inner[TCP].sport == sport)
                and (dport is None or inner[TCP].dport == dport))
    return m


def tunnel_policies(vpp, sw, tx, default):
    ok(vpp.api.npol_configure_policies(sw_if_index=sw, num_rx_policies=0, num_tx_policies=len(tx),
                                       total_ids=len(tx), invert_rx_tx=1, policy_default_rx=default,
                                       policy_default_tx=default, profile_default_rx=default,
                                       profile_default_tx=default, policy_ids=list(tx)),
       "npol_configure_policies on the tunnel %r" % list(tx))


def main():
    vpp, b, x = backend_and_outside()
    ok(vpp.api.sw_interface_add_del_address(sw_if_index=x.sw, is_add=1, prefix=NODE4 + "/24"),
       "the node's address on the uplink")
    t = ok(vpp.api.ipip_add_tunnel(tunnel=dict(instance=NONE, src=NODE4, dst=X4, sw_if_index=0,
                                               table_id=0, flags=0, mode=0, dscp=0)),
           "ipip_add_tunnel").sw_if_index
    ok(vpp.api.sw_interface_set_unnumbered(sw_if_index=x.sw, unnumbered_sw_if_index=t, is_add=1),
       "tunnel unnumbered to the uplink")
    ok(vpp.api.feature_cnat_enable_disable(sw_if_index=t, enable_disable=1), "cnat on the tunnel")
    ok(vpp.api.sw_interface_set_flags(sw_if_index=t, flags=1), "tunnel up")
    ok(route(vpp, "198.19.40.0/24", [path(t)]), "the remote pod block via the tunnel")
    ssh = port_policy(vpp, ALLOW, 22)
    tunnel_policies(vpp, t, [ssh], D_DENY)
    b.drain()
    x.drain()
    try:
        # Allowed in: the remote pod's connection to :22 reaches B, decapsulated.
        x.send(from_remote_pod(22, 41022))
        got = b.expect(is_flow(src=R4, dst=B1_4, dport=22), "R -> B:22 through the tunnel")
        # Its reply goes back out through the tunnel on the session's verdict.
        b.send(reply_of(got))
        x.expect(encapsulated(sport=22, dport=41022), "B's reply, encapsulated to X")
        # Denied in: :23 is not in the tunnel's policy, and the default denies.
        n_rx = err_count(vpp, "npol-rx-ip4", "policy deny")
        x.send(from_remote_pod(23, 41023))
        b.nothing(is_flow(dport=23), "R -> B:23 through the tunnel")
        check(err_count(vpp, "npol-rx-ip4", "policy deny") == n_rx + 1,
              "the tunnel's deny counted on npol-rx-ip4")
        # Out: what B starts toward the remote pod walks the tunnel's other direction, which has
        # no policies and a default deny.
        n_tx = err_count(vpp, "npol-tx-ip4", "policy deny")
        b.send(flow(B1_4, R4, "tcp", 9000, 9000))
        x.nothing(encapsulated(sport=9000), "B -> R unsolicited")
        check(err_count(vpp, "npol-tx-ip4", "policy deny") == n_tx + 1,
              "the unsolicited packet counted on npol-tx-ip4")
        # With the tunnel's defaults allowing, the same packets pass: the policy decided.
        tunnel_policies(vpp, t, [], ALLOW)
        x.send(from_remote_pod(23, 41024))
        b.expect(is_flow(src=R4, dst=B1_4, dport=23), "R -> B:23 with the tunnel open")
        b.send(flow(B1_4, R4, "tcp", 9001, 9001))
        x.expect(encapsulated(sport=9001), "B -> R with the tunnel open")
    except Exception:
        print(vpp.api.cli_inband(cmd="show errors").reply)
        print(vpp.api.cli_inband(cmd="show npol interfaces").reply)
        raise
    vpp.disconnect()
    print("ALL OK")


if __name__ == "__main__":
    main()
