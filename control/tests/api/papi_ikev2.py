#!/usr/bin/env python3
"""Two rvpp nodes joined by IKEv2-protected IPIP as calico-vpp's agent joins them
(agent/connectivity/ipsec.go, semantics.md §D IPsec/IKEv2), over vpp_papi. Run by
control/tests/ikev2_papi.rs, which made the uplinks (tap0, 198.18.0.N/24) and the pods (tap1,
pod block 198.19.N-1.0/24) and checks the SAs and the traffic afterwards.

usage: papi_ikev2.py <apidir> <api socket A> <api socket B> (calico | wrong-psk)

calico: per node the ipip tunnel to the other (unnumbered to the uplink, admin up, the other's
pod block routed through it), then the profile in calico's order: ikev2_profile_add_del,
ikev2_set_tunnel_interface, ikev2_profile_set_auth (PSK), ikev2_profile_set_id local and remote
(IPv4 addresses), ikev2_profile_set_ts local and remote (everything). A (the lower address) is the
initiator: ikev2_set_responder, ikev2_set_ike_transforms (AES-CBC-256, HMAC-SHA1-96, MODP-2048),
ikev2_set_esp_transforms (AES-GCM-16 256), then ikev2_initiate_sa_init once a second until the
tunnel reports link up in sw_interface_dump on both nodes. What rvpp refuses is checked on the way.

wrong-psk: A's tunnel made again (the test deleted it), both profiles deleted and made again
with different keys; A initiates for three seconds; the tunnels must stay down.
"""
import sys
import time

from checks import check, ip4, link_up, ok, sw_of

try:
    from vpp_papi.vpp_papi import VPPApiClient
except ImportError as e:  # pragma: no cover
    print("vpp_papi not importable: %s" % e)
    sys.exit(77)

APIDIR, SOCK_A, SOCK_B, PHASE = sys.argv[1:5]
NONE = 0xFFFFFFFF
LABELS = [{"is_uniform": 0, "label": 0, "ttl": 0, "exp": 0}] * 16
NODES = {"A": ("198.18.0.1", "198.19.0.0/24"), "B": ("198.18.0.2", "198.19.1.0/24")}
PROFILE = "pr_198.18.0.1_to_198.18.0.2"
ENCR_AES_CBC, ENCR_AES_GCM_16, INTEG_SHA1_96, DH_MODP_2048 = 12, 20, 2, 14
AUTH_SHARED_KEY, ID_IPV4 = 2, 1


def tunnel_up(vpp, name, other):
    """calico's per-peer IPIP tunnel; its sw_if_index."""
    me, you = NODES[name][0], NODES[other][0]
    r = ok(vpp.api.ipip_add_tunnel(tunnel={"src": me, "dst": you, "instance": NONE,
                                           "table_id": 0, "flags": 0, "mode": 0, "dscp": 0}),
           name + " ipip_add_tunnel")
    sw = r.sw_if_index
    ok(vpp.api.sw_interface_set_unnumbered(sw_if_index=sw_of(vpp, "tap0"),
                                           unnumbered_sw_if_index=sw, is_add=1),
       name + " ipip unnumbered to the uplink")
    ok(vpp.api.sw_interface_set_flags(sw_if_index=sw, flags=1), name + " ipip admin up")
    path = {"sw_if_index": sw, "table_id": 0, "weight": 1, "proto": 0, "label_stack": LABELS}
    ok(vpp.api.ip_route_add_del(is_add=1, is_multipath=1, route={
        "table_id": 0, "prefix": NODES[other][1], "n_paths": 1, "paths": [path]}),
        name + " peer pod block via the tunnel")
    return sw


def profile_up(vpp, name, other, sw, psk):
    """The profile in calico's order (both roles); returns nothing."""
    me, you = NODES[name][0], NODES[other][0]
    ok(vpp.api.ikev2_profile_add_del(name=PROFILE, is_add=1), name + " ikev2_profile_add_del")
    check(vpp.api.ikev2_profile_add_del(name=PROFILE, is_add=1).retval != 0,
          name + " the same profile twice is refused")
    ok(vpp.api.ikev2_set_tunnel_interface(name=PROFILE, sw_if_index=sw),
       name + " ikev2_set_tunnel_interface")
    check(not link_up(vpp, sw), name + " a protected tunnel is link-down until its child SA")
    check(vpp.api.ikev2_set_tunnel_interface(name=PROFILE, sw_if_index=sw_of(vpp, "tap0")).retval
          == -2, name + " a tunnel interface that is not a tunnel: INVALID_SW_IF_INDEX")
    check(vpp.api.ikev2_profile_set_auth(name=PROFILE, auth_method=1, is_hex=0, data_len=3,
                                         data=b"abc").retval == -9,
          name + " rsa-sig: UNIMPLEMENTED")
    ok(vpp.api.ikev2_profile_set_auth(name=PROFILE, auth_method=AUTH_SHARED_KEY, is_hex=0,
                                      data_len=len(psk), data=psk), name + " set_auth")
    ok(vpp.api.ikev2_profile_set_id(name=PROFILE, is_local=1, id_type=ID_IPV4, data_len=4,
                                    data=ip4(me)), name + " local id")
    ok(vpp.api.ikev2_profile_set_id(name=PROFILE, is_local=0, id_type=ID_IPV4, data_len=4,
                                    data=ip4(you)), name + " remote id")
    for is_local in (1, 0):
        ok(vpp.api.ikev2_profile_set_ts(name=PROFILE, ts={
            "is_local": is_local, "protocol_id": 0, "start_port": 0, "end_port": 65535,
            "start_addr": "0.0.0.0", "end_addr": "255.255.255.255"}),
           name + " ts %s" % ("local" if is_local else "remote"))
    check(vpp.api.ikev2_profile_set_id(name="nope", is_local=1, id_type=ID_IPV4, data_len=4,
                                       data=ip4(me)).retval == -6,
          name + " an unknown profile: NO_SUCH_ENTRY")
    if name != "A":
        check(vpp.api.ikev2_initiate_sa_init(name=PROFILE).retval != 0,
              name + " initiate without a responder is refused")
        return
    ok(vpp.api.ikev2_set_responder(name=PROFILE, responder={"sw_if_index": sw_of(vpp, "tap0"),
                                                            "addr": you}),
       name + " ikev2_set_responder")
    ok(vpp.api.ikev2_set_ike_transforms(name=PROFILE, tr={
        "crypto_alg": ENCR_AES_CBC, "crypto_key_size": 256, "integ_alg": INTEG_SHA1_96,
        "dh_group": DH_MODP_2048}), name + " ikev2_set_ike_transforms")
    check(vpp.api.ikev2_set_esp_transforms(name=PROFILE, tr={
        "crypto_alg": ENCR_AES_CBC, "crypto_key_size": 256, "integ_alg": INTEG_SHA1_96}).retval
          == -9, name + " ESP AES-CBC (the data path lacks it): UNIMPLEMENTED")
    ok(vpp.api.ikev2_set_esp_transforms(name=PROFILE, tr={
        "crypto_alg": ENCR_AES_GCM_16, "crypto_key_size": 256, "integ_alg": 0}),
        name + " ikev2_set_esp_transforms")
    rows = list(vpp.api.ikev2_profile_dump())
    check(len(rows) == 1, name + " ikev2_profile_dump: one profile")
    p = rows[0].profile
    check(p.name == PROFILE and p.tun_itf == sw, name + " dump: name and tunnel")
    check(p.loc_id.type == ID_IPV4 and p.loc_id.data_len == 4 and p.rem_id.data_len == 4,
          name + " dump: ids")
    check(p.loc_ts.end_port == 65535 and str(p.rem_ts.end_addr) == "255.255.255.255",
          name + " dump: selectors")
    check(str(p.responder.addr) == you and p.responder.sw_if_index == sw_of(vpp, "tap0"),
          name + " dump: responder")
    check(p.ike_ts.crypto_alg == ENCR_AES_CBC and p.ike_ts.crypto_key_size == 256
          and p.ike_ts.dh_group == DH_MODP_2048 and p.esp_ts.crypto_alg == ENCR_AES_GCM_16,
          name + " dump: transforms")
    check(p.auth.method == AUTH_SHARED_KEY and bytes(p.auth.data) == psk, name + " dump: auth")


def initiate_until_up(a, b, sw_a, sw_b, secs):
    """calico's loop: initiate once a second until the tunnel is up; whether both came up."""
    for _ in range(secs):
        ok(a.api.ikev2_initiate_sa_init(name=PROFILE), "A ikev2_initiate_sa_init")
        time.sleep(1)
        if link_up(a, sw_a) and link_up(b, sw_b):
            return True
    return False


def main():
    a = VPPApiClient(apidir=APIDIR, server_address=SOCK_A, read_timeout=15)
    b = VPPApiClient(apidir=APIDIR, server_address=SOCK_B, read_timeout=15)
    a.connect("ikev2-test-a")
    b.connect("ikev2-test-b")
    if PHASE == "calico":
        sw_a = tunnel_up(a, "A", "B")
        sw_b = tunnel_up(b, "B", "A")
        profile_up(b, "B", "A", sw_b, b"calico-psk")
        profile_up(a, "A", "B", sw_a, b"calico-psk")
        check(initiate_until_up(a, b, sw_a, sw_b, 15), "both tunnels up after IKE")
        v6 = ok(a.api.ipip_add_tunnel(tunnel={"src": "fd00::1", "dst": "fd00::2", "instance": NONE,
                                              "table_id": 0, "flags": 0, "mode": 0, "dscp": 0}),
                "A an IPv6 ipip tunnel").sw_if_index
        ok(a.api.ikev2_profile_add_del(name="v6", is_add=1), "A a profile for it")
        ok(a.api.ikev2_set_tunnel_interface(name="v6", sw_if_index=v6), "A on the IPv6 tunnel")
        ok(a.api.ikev2_set_responder(name="v6", responder={"sw_if_index": sw_of(a, "tap0"),
                                                           "addr": NODES["B"][0]}),
           "A v6 responder")
        check(a.api.ikev2_initiate_sa_init(name="v6").retval == -9,
              "A IKE over an IPv6 tunnel: UNIMPLEMENTED")
        ok(a.api.ikev2_profile_add_del(name="v6", is_add=0), "A v6 profile delete")
        ok(a.api.ipip_del_tunnel(sw_if_index=v6), "A IPv6 tunnel delete")
    else:
        # The test deleted A's tunnel: calico makes a new one.
        sw_a, sw_b = tunnel_up(a, "A", "B"), sw_of(b, "ipip0")
        for vpp, name in ((a, "A"), (b, "B")):
            ok(vpp.api.ikev2_profile_add_del(name=PROFILE, is_add=0), name + " profile delete")
            check(vpp.api.ikev2_profile_add_del(name=PROFILE, is_add=0).retval == -6,
                  name + " delete twice: NO_SUCH_ENTRY")
        for _ in range(20):
            if not link_up(b, sw_b):
                break
            time.sleep(0.1)
        check(not link_up(b, sw_b), "B's profile gone, its tunnel down")
        profile_up(b, "B", "A", sw_b, b"the-right-key")
        profile_up(a, "A", "B", sw_a, b"a-wrong-key")
        check(not initiate_until_up(a, b, sw_a, sw_b, 3), "no tunnel up with a wrong PSK")
    a.disconnect()
    b.disconnect()
    print("ALL OK")


if __name__ == "__main__":
    main()
