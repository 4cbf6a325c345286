#!/usr/bin/env python3
"""One rvpp node set up as calico-vpp sets up its IKEv2 peer (agent/connectivity/ipsec.go),
toward a strongSwan behind a NAT. Run by control/tests/ikev2_strongswan_nat.rs, which made the
uplink (tap0, 198.18.0.1/24; the NAT's outside address is 198.18.0.2) and the pod (tap1, pod
block 198.19.0.0/24), and which runs charon (id 198.18.9.2, pod block 198.19.1.0/24).

usage: papi_ikev2_nat.py <apidir> <api socket> (responder | initiator)
                         [<local addr> <peer addr> <peer id> <peer pod block> <uplink> <psk>]

The optional six replace the NAT lab's values (rvpp-bench pod-remote sets rvpp up toward charon
on a remote node with them: its peer address is then charon's own).

Both: the ipip tunnel to the NAT's outside address (unnumbered to the uplink, admin up, the far
pod block routed through it) and the profile (tunnel, PSK, ids, selectors). initiator also sets
the responder and calico's transforms and initiates once a second until the tunnel is up.
"""
import sys
import time

from checks import check, ip4, link_up, ok, sw_of

try:
    from vpp_papi.vpp_papi import VPPApiClient
except ImportError as e:  # pragma: no cover
    print("vpp_papi not importable: %s" % e)
    sys.exit(77)

APIDIR, SOCK, ROLE = sys.argv[1:4]
PEER = sys.argv[4:10] or ["198.18.0.1", "198.18.0.2", "198.18.9.2", "198.19.1.0/24", "tap0",
                          "natted-psk"]
ME, PEER_ADDR, PEER_ID, PEER_PODS, UPLINK, PSK = PEER[:5] + [PEER[5].encode()]
NONE = 0xFFFFFFFF
LABELS = [{"is_uniform": 0, "label": 0, "ttl": 0, "exp": 0}] * 16
PROFILE = "pr_%s_to_%s" % (ME, PEER_ID)
ENCR_AES_CBC, ENCR_AES_GCM_16, INTEG_SHA1_96, DH_MODP_2048 = 12, 20, 2, 14
AUTH_SHARED_KEY, ID_IPV4 = 2, 1


def main():
    vpp = VPPApiClient(apidir=APIDIR, server_address=SOCK, read_timeout=15)
    vpp.connect("ikev2-nat-test")
    r = ok(vpp.api.ipip_add_tunnel(tunnel={"src": ME, "dst": PEER_ADDR, "instance": NONE,
                                           "table_id": 0, "flags": 0, "mode": 0, "dscp": 0}),
           "ipip_add_tunnel")
    sw = r.sw_if_index
    ok(vpp.api.sw_interface_set_unnumbered(sw_if_index=sw_of(vpp, UPLINK),
                                           unnumbered_sw_if_index=sw, is_add=1), "unnumbered")
    ok(vpp.api.sw_interface_set_flags(sw_if_index=sw, flags=1), "ipip admin up")
    path = {"sw_if_index": sw, "table_id": 0, "weight": 1, "proto": 0, "label_stack": LABELS}
    ok(vpp.api.ip_route_add_del(is_add=1, is_multipath=1, route={
        "table_id": 0, "prefix": PEER_PODS, "n_paths": 1, "paths": [path]}), "pod route")
    ok(vpp.api.ikev2_profile_add_del(name=PROFILE, is_add=1), "ikev2_profile_add_del")
    ok(vpp.api.ikev2_set_tunnel_interface(name=PROFILE, sw_if_index=sw), "set_tunnel_interface")
    ok(vpp.api.ikev2_profile_set_auth(name=PROFILE, auth_method=AUTH_SHARED_KEY, is_hex=0,
                                      data_len=len(PSK), data=PSK), "set_auth")
    ok(vpp.api.ikev2_profile_set_id(name=PROFILE, is_local=1, id_type=ID_IPV4, data_len=4,
                                    data=ip4(ME)), "local id")
    ok(vpp.api.ikev2_profile_set_id(name=PROFILE, is_local=0, id_type=ID_IPV4, data_len=4,
                                    data=ip4(PEER_ID)), "remote id")
    for is_local in (1, 0):
        ok(vpp.api.ikev2_profile_set_ts(name=PROFILE, ts={
            "is_local": is_local, "protocol_id": 0, "start_port": 0, "end_port": 65535,
            "start_addr": "0.0.0.0", "end_addr": "255.255.255.255"}), "ts")
    if ROLE == "initiator":
        ok(vpp.api.ikev2_set_responder(name=PROFILE, responder={
            "sw_if_index": sw_of(vpp, UPLINK), "addr": PEER_ADDR}), "set_responder")
        ok(vpp.api.ikev2_set_ike_transforms(name=PROFILE, tr={
            "crypto_alg": ENCR_AES_CBC, "crypto_key_size": 256, "integ_alg": INTEG_SHA1_96,
            "dh_group": DH_MODP_2048}), "set_ike_transforms")
        ok(vpp.api.ikev2_set_esp_transforms(name=PROFILE, tr={
            "crypto_alg": ENCR_AES_GCM_16, "crypto_key_size": 256, "integ_alg": 0}),
            "set_esp_transforms")
        up = False
        for _ in range(20):
            ok(vpp.api.ikev2_initiate_sa_init(name=PROFILE), "ikev2_initiate_sa_init")
            time.sleep(1)
            if link_up(vpp, sw):
                up = True
                break
        check(up, "the tunnel is up after IKE")
    vpp.disconnect()
    print("ALL OK")


if __name__ == "__main__":
    main()
