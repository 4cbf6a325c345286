#!/usr/bin/env python3
"""IPsec SA-level messages over the binary API with vpp_papi (run by control/tests/ipsec_api.rs):
ipsec_sad_entry_add_del_v3, ipsec_tunnel_protect_update/del/dump, ipsec_itf_create/delete,
ipsec_set_async_mode and crypto_sw_scheduler_set_worker, with VPP's return values for what
rvpp refuses (-9 for a crypto placement other than inline on each worker), and the CLI's `show ipsec ...` agreeing with the API.

usage: papi_ipsec.py <apidir> <api socket>
Exits 77 when vpp_papi is not importable; raises (non-zero exit) on the first failed check.
"""
import sys

try:
    from vpp_papi.vpp_papi import VPPApiClient
except ImportError as e:  # pragma: no cover
    print("vpp_papi not importable: %s" % e)
    sys.exit(77)

APIDIR, SOCK = sys.argv[1:3]
NO_SUCH_ENTRY = -6
INVALID_VALUE = -7
UNIMPLEMENTED = -9
INVALID_INTERFACE = -71
ENTRY_ALREADY_EXISTS = -116
RSRC_IN_USE = -155

GCM128, GCM256, CBC128, CTR128 = 7, 9, 1, 4
SHA1_96, MD5_96 = 2, 1
ESN, ANTI_REPLAY, IS_TUNNEL, INBOUND = 1, 2, 4, 64


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok:", what)


def cli(vpp, cmd):
    return vpp.api.cli_inband(cmd=cmd).reply


def sa(vpp, sad_id, spi, alg=GCM128, keylen=16, flags=ESN | ANTI_REPLAY, is_add=True,
       protocol=50, integ=0, integ_key=b"", tunnel=None):
    entry = {
        "sad_id": sad_id,
        "spi": spi,
        "protocol": protocol,
        "crypto_algorithm": alg,
        "crypto_key": {"length": keylen, "data": bytes(range(keylen))},
        "integrity_algorithm": integ,
        "integrity_key": {"length": len(integ_key), "data": integ_key},
        "flags": flags,
        "salt": 0x01020304,
        "udp_src_port": 4500,
        "udp_dst_port": 4500,
    }
    if tunnel:
        entry["tunnel"] = {"src": tunnel[0], "dst": tunnel[1], "table_id": 0}
    return vpp.api.ipsec_sad_entry_add_del_v3(is_add=is_add, entry=entry).retval


def protect(vpp, sw, out, ins):
    return vpp.api.ipsec_tunnel_protect_update(
        tunnel={"sw_if_index": sw, "nh": "0.0.0.0", "sa_out": out, "n_sa_in": len(ins), "sa_in": ins}
    ).retval


def main():
    vpp = VPPApiClient(apidir=APIDIR, server_address=SOCK, read_timeout=15)
    vpp.connect("papi-ipsec")
    r = vpp.api.ipip_add_tunnel(tunnel={"src": "198.18.0.1", "dst": "198.18.0.2", "instance": 0xFFFFFFFF, "table_id": 0})
    check(r.retval == 0, "ipip tunnel created")
    ipip = r.sw_if_index

    check(sa(vpp, 10, 0x1000) == 0, "outbound AES-GCM-128 ESN SA added")
    check(sa(vpp, 20, 0x2000, alg=GCM256, keylen=32, flags=ESN | ANTI_REPLAY | INBOUND) == 0,
          "inbound AES-GCM-256 SA added")
    check(sa(vpp, 10, 0x1001) == ENTRY_ALREADY_EXISTS, "a used sad_id is refused")
    check(sa(vpp, 11, 0x1002, alg=CTR128) == UNIMPLEMENTED, "AES-CTR answers -9")
    check(sa(vpp, 11, 0x1002, alg=CBC128, integ=MD5_96, integ_key=bytes(16)) == UNIMPLEMENTED,
          "HMAC-MD5 answers -9")
    check(sa(vpp, 11, 0x1002, alg=CBC128) == INVALID_VALUE, "AES-CBC without integrity is refused")
    check(sa(vpp, 11, 0x1002, alg=CBC128, integ=SHA1_96) == INVALID_VALUE,
          "AES-CBC with an empty integrity key is refused")
    check(sa(vpp, 12, 0x1003, alg=GCM128, integ=SHA1_96, integ_key=bytes(20)) == INVALID_VALUE,
          "AES-GCM with an integrity algorithm is refused")
    check(sa(vpp, 11, 0x1002, alg=CBC128, integ=SHA1_96, integ_key=bytes(20)) == 0,
          "AES-CBC-128 + HMAC-SHA1-96 SA added")
    check(sa(vpp, 11, 0x1002, is_add=False) == 0, "and deleted")
    check(sa(vpp, 11, 0x1002, protocol=51) == UNIMPLEMENTED, "AH answers -9")
    check(sa(vpp, 11, 0x1002, keylen=20) == INVALID_VALUE, "a wrong key length is refused")
    check(sa(vpp, 11, 0, keylen=16) == INVALID_VALUE, "SPI 0 is refused")

    check(protect(vpp, ipip, 10, [99]) == NO_SUCH_ENTRY, "protection with an unknown SA refused")
    check(protect(vpp, ipip, 10, [20]) == 0, "ipip tunnel protected")
    d = list(vpp.api.ipsec_tunnel_protect_dump(sw_if_index=0xFFFFFFFF))
    check(len(d) == 1 and d[0].tun.sw_if_index == ipip and d[0].tun.sa_out == 10
          and list(d[0].tun.sa_in) == [20], "protect dump: the interface, sa_out and sa_in")
    check("ipip0" in cli(vpp, "show ipsec protect"), "show ipsec protect lists ipip0")
    shown = cli(vpp, "show ipsec sa")
    check("aes-gcm-128" in shown and "aes-gcm-256" in shown, "show ipsec sa lists both SAs")
    check(sa(vpp, 10, 0x1000, is_add=False) == RSRC_IN_USE, "an SA in use is not deleted")
    feats = cli(vpp, "show interface features ipip0")
    check("esp4-encrypt-tun" in feats, "protection enables esp4-encrypt-tun on the tunnel")

    r = vpp.api.ipsec_tunnel_protect_del(sw_if_index=ipip, nh="0.0.0.0")
    check(r.retval == 0, "protection removed")
    r = vpp.api.ipsec_tunnel_protect_del(sw_if_index=ipip, nh="0.0.0.0")
    check(r.retval == NO_SUCH_ENTRY, "removing it again: -6")
    check("esp4-encrypt-tun" not in cli(vpp, "show interface features ipip0"),
          "unprotected ipip sends plain IPIP again")
    check(sa(vpp, 10, 0x1000, is_add=False) == 0, "SA deleted once unused")
    check(sa(vpp, 10, 0x1000, is_add=False) == NO_SUCH_ENTRY, "deleting it again: -6")

    r = vpp.api.ipsec_itf_create(itf={"user_instance": 0xFFFFFFFF, "mode": 0})
    check(r.retval == 0, "ipsec interface created")
    itf = r.sw_if_index
    names = {i.sw_if_index: i.interface_name for i in vpp.api.sw_interface_dump()}
    check(names.get(itf) == "ipsec0", "it is named ipsec0")
    check(sa(vpp, 30, 0x3000) == 0, "a transport SA")
    check(protect(vpp, itf, 30, [20]) == INVALID_VALUE, "ipsec0 needs a tunnel-mode SA")
    check(sa(vpp, 31, 0x3001, flags=IS_TUNNEL, tunnel=("198.18.0.1", "198.18.0.3")) == 0,
          "a tunnel-mode SA")
    check(protect(vpp, itf, 31, [20]) == 0, "ipsec0 protected by the tunnel-mode SA")
    check("198.18.0.1 -> 198.18.0.3" in cli(vpp, "show ipsec tunnel"), "show ipsec tunnel: its endpoints")
    check(protect(vpp, ipip, 30, [20]) == ENTRY_ALREADY_EXISTS,
          "an inbound SPI is accepted on one interface only")
    check(vpp.api.ipsec_itf_delete(sw_if_index=itf).retval == 0, "ipsec0 deleted")
    check(len(list(vpp.api.ipsec_tunnel_protect_dump(sw_if_index=0xFFFFFFFF))) == 0,
          "its protection went with it")
    check(vpp.api.ipsec_itf_delete(sw_if_index=itf).retval != 0, "deleting it again fails")
    r = vpp.api.ipsec_itf_create(itf={"user_instance": 0xFFFFFFFF, "mode": 1})
    check(r.retval == UNIMPLEMENTED, "multipoint ipsec interfaces answer -9")

    check(vpp.api.ipsec_set_async_mode(async_enable=True).retval == UNIMPLEMENTED,
          "async crypto answers -9: crypto runs inline on each worker")
    check(vpp.api.ipsec_set_async_mode(async_enable=False).retval == 0,
          "sync crypto, what rvpp does, answers 0")
    check(vpp.api.crypto_sw_scheduler_set_worker(worker_index=0, crypto_enable=True).retval == 0,
          "crypto on worker 0 accepted")
    check(vpp.api.crypto_sw_scheduler_set_worker(worker_index=0, crypto_enable=False).retval
          == UNIMPLEMENTED, "keeping a worker out of crypto answers -9")
    check(vpp.api.crypto_sw_scheduler_set_worker(worker_index=99, crypto_enable=True).retval
          == INVALID_VALUE, "a worker that does not exist: -7")
    vpp.disconnect()
    print("ALL OK")


main()
