#!/usr/bin/env python3
"""ESP against an independent implementation (scapy's SecurityAssociation) through the real
rvpp daemon configured with vpp_papi (run by control/tests/ipsec_scapy.rs). A tun into a
namespace of the test's own is the uplink to a "peer node" played by scapy: rvpp has ipip0
198.18.0.1 -> 198.18.0.2 protected by SA 10 (out, AES-GCM-256, ESN) and SA 20 (in, AES-GCM-128,
ESN + anti-replay). scapy seals an ICMP echo to rvpp's tunnel address 198.19.255.1; rvpp opens
it, answers, seals the reply; scapy opens the reply. Then a replay, a tampered packet and an
unknown SPI are sent and must each be counted and dropped. Last, the protection moves to
AES-CBC-128 + HMAC-SHA1-96 SAs, then to AES-CBC-256 + HMAC-SHA-256-128 with ESN, and echoes
and a tampered packet go through each. Then NAT-T SAs whose udp_dst_port is 40001 (the peer
behind a NAT): rvpp opens ESP in UDP from 40001 and seals its replies to 40001.

usage: scapy_ipsec.py <apidir> <api socket> <peer ns>
Exits 77 when vpp_papi or scapy is not importable; raises (non-zero exit) on the first failed
check.
"""
import os
import sys

try:
    from vpp_papi.vpp_papi import VPPApiClient
    from scapy.all import IP, ICMP, UDP, Raw
    from scapy.layers.ipsec import SecurityAssociation, ESP
except ImportError as e:  # pragma: no cover
    print("vpp_papi or scapy not importable: %s" % e)
    sys.exit(77)

APIDIR, SOCK, PEER_NS = sys.argv[1:4]
# The tun and AF_PACKET helpers of the cnat suite, which reads its own argv at import.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
_argv, sys.argv = sys.argv, sys.argv[:3] + ["-"] * 4
import scapy_cnat as pods  # noqa: E402
sys.argv = _argv

check, ok = pods.check, pods.ok
NONE = pods.NONE
KEY_OUT = bytes(range(32))             # SA 10, rvpp -> peer, AES-GCM-256
KEY_IN = bytes(range(100, 116))        # SA 20, peer -> rvpp, AES-GCM-128
SALT_OUT, SALT_IN = 0x0A0B0C0D, 0x01020304
ESN, ANTI_REPLAY, INBOUND = 1, 2, 64


def sad(vpp, sad_id, spi, alg, key, salt, flags, integ=0, integ_key=b"", ports=(4500, 4500)):
    return vpp.api.ipsec_sad_entry_add_del_v3(is_add=True, entry={
        "sad_id": sad_id, "spi": spi, "protocol": 50, "crypto_algorithm": alg,
        "crypto_key": {"length": len(key), "data": key}, "integrity_algorithm": integ,
        "integrity_key": {"length": len(integ_key), "data": integ_key}, "flags": flags,
        "salt": salt, "udp_src_port": ports[0], "udp_dst_port": ports[1]})


def cli(vpp, cmd):
    return vpp.api.cli_inband(cmd=cmd).reply


def errors(vpp, reason):
    return sum(int(l.split()[0]) for l in cli(vpp, "show errors").splitlines()
               if reason in l and l.split()[0].isdigit())


def main():
    vpp = VPPApiClient(apidir=APIDIR, server_address=SOCK, read_timeout=15)
    vpp.connect("scapy-ipsec")
    peer = pods.Pod("peer", PEER_NS, "198.18.0.2", "fd00::2")
    up = pods.tun_create(vpp, peer)
    ok(vpp.api.sw_interface_add_del_address(sw_if_index=up, is_add=1, prefix="198.18.0.1/24"),
       "uplink address")
    ok(vpp.api.sw_interface_set_flags(sw_if_index=up, flags=1), "uplink up")
    pods.sh("ip", "-n", PEER_NS, "link", "set", "eth0", "up")
    r = ok(vpp.api.ipip_add_tunnel(tunnel={"src": "198.18.0.1", "dst": "198.18.0.2",
                                           "instance": NONE, "table_id": 0}), "ipip0")
    t = r.sw_if_index
    ok(vpp.api.sw_interface_add_del_address(sw_if_index=t, is_add=1, prefix="198.19.255.1/32"),
       "tunnel address")
    ok(vpp.api.sw_interface_set_flags(sw_if_index=t, flags=1), "ipip0 up")
    ok(vpp.api.ip_route_add_del(is_add=1, route={
        "table_id": 0, "prefix": "198.19.9.0/24", "n_paths": 1,
        "paths": [{"sw_if_index": t, "table_id": 0, "weight": 1, "proto": 0,
                   "nh": {"address": {"ip4": "0.0.0.0"}}, "label_stack": pods.LABELS}]}),
       "pods behind the peer via ipip0")
    ok(sad(vpp, 10, 0x1000, 9, KEY_OUT, SALT_OUT, ESN | ANTI_REPLAY), "SA 10 out")
    ok(sad(vpp, 20, 0x2000, 7, KEY_IN, SALT_IN, ESN | ANTI_REPLAY | INBOUND), "SA 20 in")
    ok(vpp.api.ipsec_tunnel_protect_update(tunnel={
        "sw_if_index": t, "nh": "0.0.0.0", "sa_out": 10, "n_sa_in": 1, "sa_in": [20]}),
       "ipip0 protected")

    to_rvpp = SecurityAssociation(
        ESP, spi=0x2000, crypt_algo="AES-GCM", crypt_key=KEY_IN + SALT_IN.to_bytes(4, "big"),
        auth_algo="NULL", tunnel_header=IP(src="198.18.0.2", dst="198.18.0.1"), esn_en=True, esn=0)
    from_rvpp = SecurityAssociation(
        ESP, spi=0x1000, crypt_algo="AES-GCM", crypt_key=KEY_OUT + SALT_OUT.to_bytes(4, "big"),
        auth_algo="NULL", tunnel_header=IP(src="198.18.0.1", dst="198.18.0.2"), esn_en=True, esn=0)
    peer.open()
    peer.drain()

    def is_esp_from_rvpp(p):
        return IP in p and p[IP].proto == 50 and p[IP].src == "198.18.0.1"

    def echo(seq, payload=b"rvpp-esp"):
        inner = IP(src="198.19.9.9", dst="198.19.255.1") / ICMP(id=77, seq=seq) / Raw(payload)
        return to_rvpp.encrypt(inner, seq_num=seq)

    for seq in (1, 2, 3):
        peer.send(echo(seq))
        got = peer.recv_all(is_esp_from_rvpp, 3, want=1)
        check(len(got) == 1, "echo %d: rvpp sent one ESP packet back" % seq)
        check(got[0][ESP].spi == 0x1000 and got[0][ESP].seq == seq,
              "echo %d: SA 10's SPI and sequence number %d" % (seq, seq))
        inner = from_rvpp.decrypt(got[0])
        check(ICMP in inner and inner[ICMP].type == 0 and inner[ICMP].id == 77
              and inner[ICMP].seq == seq and bytes(inner[Raw]) == b"rvpp-esp",
              "echo %d: scapy opened rvpp's echo reply" % seq)
        check(inner[IP].src == "198.19.255.1" and inner[IP].dst == "198.19.9.9",
              "echo %d: inner addresses" % seq)

    peer.send(echo(2))
    check(not peer.recv_all(is_esp_from_rvpp, 1), "a replayed packet is not answered")
    check(errors(vpp, "replayed or too old") == 1, "and counted as a replay")
    bad = bytearray(bytes(echo(4)))
    bad[-5] ^= 0x01
    peer.send(IP(bytes(bad)))
    check(not peer.recv_all(is_esp_from_rvpp, 1), "a tampered packet is not answered")
    check(errors(vpp, "integrity check failed") == 1, "and counted as an integrity failure")
    other = SecurityAssociation(
        ESP, spi=0x2999, crypt_algo="AES-GCM", crypt_key=KEY_IN + SALT_IN.to_bytes(4, "big"),
        auth_algo="NULL", tunnel_header=IP(src="198.18.0.2", dst="198.18.0.1"))
    peer.send(other.encrypt(IP(src="198.19.9.9", dst="198.19.255.1") / ICMP(), seq_num=1))
    check(not peer.recv_all(is_esp_from_rvpp, 1), "an unknown SPI is not answered")
    check(errors(vpp, "no inbound SA for the SPI") == 1, "and counted as an unknown SPI")
    # The genuine packet 4 still passes: the tampered copy did not mark its number.
    peer.send(echo(4))
    check(len(peer.recv_all(is_esp_from_rvpp, 3, want=1)) == 1, "echo 4 after its tampered copy")
    sa = cli(vpp, "show ipsec sa 20")
    check("last-seq-inbound 4" in sa, "SA 20's window top is 4: " + sa.strip())

    # AES-CBC with HMAC (RFC 3602, 2404, 4868): VPP's numbers 1/3 (AES-CBC-128/256) and 2/4
    # (SHA1-96, SHA-256-128), scapy's names.
    integrity_failures = errors(vpp, "integrity check failed")
    for n, (alg, klen, integ, name, scapy_crypt, scapy_auth, esn) in enumerate([
            (1, 16, 2, "sha1-96", "AES-CBC", "HMAC-SHA1-96", False),
            (3, 32, 4, "sha-256-128", "AES-CBC", "SHA2-256-128", True)]):
        out_id, in_id, spi_out, spi_in = 30 + 2 * n, 31 + 2 * n, 0x3000 + n, 0x4000 + n
        k_out, k_in = bytes(range(n, n + klen)), bytes(range(50 + n, 50 + n + klen))
        a_out, a_in = bytes(range(150, 182)), bytes(range(200, 232))
        flags = (ESN if esn else 0) | ANTI_REPLAY
        ok(sad(vpp, out_id, spi_out, alg, k_out, 0, flags, integ, a_out), "CBC SA out %d" % n)
        ok(sad(vpp, in_id, spi_in, alg, k_in, 0, flags | INBOUND, integ, a_in),
           "CBC SA in %d" % n)
        ok(vpp.api.ipsec_tunnel_protect_update(tunnel={
            "sw_if_index": t, "nh": "0.0.0.0", "sa_out": out_id, "n_sa_in": 1,
            "sa_in": [in_id]}), "ipip0 protected by CBC pair %d" % n)
        check("integrity alg %s" % name in cli(vpp, "show ipsec sa %d" % out_id),
              "show ipsec sa %d names %s" % (out_id, name))
        to_rvpp = SecurityAssociation(
            ESP, spi=spi_in, crypt_algo=scapy_crypt, crypt_key=k_in, auth_algo=scapy_auth,
            auth_key=a_in, tunnel_header=IP(src="198.18.0.2", dst="198.18.0.1"),
            esn_en=esn, esn=0)
        from_rvpp = SecurityAssociation(
            ESP, spi=spi_out, crypt_algo=scapy_crypt, crypt_key=k_out, auth_algo=scapy_auth,
            auth_key=a_out, tunnel_header=IP(src="198.18.0.1", dst="198.18.0.2"),
            esn_en=esn, esn=0)
        for seq in (1, 2):
            inner = IP(src="198.19.9.9", dst="198.19.255.1") / ICMP(id=88, seq=seq) / Raw(b"cbc")
            peer.send(to_rvpp.encrypt(inner, seq_num=seq))
            got = peer.recv_all(is_esp_from_rvpp, 3, want=1)
            check(len(got) == 1, "CBC %d echo %d: rvpp sent one ESP packet back" % (n, seq))
            check(got[0][ESP].spi == spi_out and got[0][ESP].seq == seq,
                  "CBC %d echo %d: SPI and sequence number" % (n, seq))
            back = from_rvpp.decrypt(got[0])
            check(ICMP in back and back[ICMP].type == 0 and back[ICMP].seq == seq
                  and bytes(back[Raw]) == b"cbc", "CBC %d echo %d: scapy opened the reply" % (n, seq))
        bad = bytearray(bytes(to_rvpp.encrypt(
            IP(src="198.19.9.9", dst="198.19.255.1") / ICMP(id=88, seq=3), seq_num=3)))
        bad[40] ^= 0x01
        peer.send(IP(bytes(bad)))
        check(not peer.recv_all(is_esp_from_rvpp, 1), "CBC %d: a tampered packet is dropped" % n)
        integrity_failures += 1
        check(errors(vpp, "integrity check failed") == integrity_failures,
              "CBC %d: and counted as an integrity failure" % n)

    # NAT-T from the SA-level message: udp_src_port/udp_dst_port are what rvpp sends with.
    udp_encap = 16
    ok(sad(vpp, 40, 0x5000, 9, KEY_OUT, SALT_OUT, ANTI_REPLAY | udp_encap, ports=(4500, 40001)),
       "NAT-T SA out to port 40001")
    ok(sad(vpp, 41, 0x6000, 7, KEY_IN, SALT_IN, ANTI_REPLAY | INBOUND | udp_encap,
           ports=(4500, 40001)), "NAT-T SA in")
    ok(vpp.api.ipsec_tunnel_protect_update(tunnel={
        "sw_if_index": t, "nh": "0.0.0.0", "sa_out": 40, "n_sa_in": 1, "sa_in": [41]}),
       "ipip0 protected by the NAT-T pair")
    check("udp-encap src-port 4500 dst-port 40001" in cli(vpp, "show ipsec sa 40"),
          "show ipsec sa 40: the ports the message gave")
    to_rvpp = SecurityAssociation(
        ESP, spi=0x6000, crypt_algo="AES-GCM", crypt_key=KEY_IN + SALT_IN.to_bytes(4, "big"),
        auth_algo="NULL", tunnel_header=IP(src="198.18.0.2", dst="198.18.0.1"),
        nat_t_header=UDP(sport=40001, dport=4500))
    from_rvpp = SecurityAssociation(
        ESP, spi=0x5000, crypt_algo="AES-GCM", crypt_key=KEY_OUT + SALT_OUT.to_bytes(4, "big"),
        auth_algo="NULL", tunnel_header=IP(src="198.18.0.1", dst="198.18.0.2"),
        nat_t_header=UDP(sport=4500, dport=40001))

    def is_natt_from_rvpp(p):
        return IP in p and UDP in p and p[IP].src == "198.18.0.1" and p[UDP].sport == 4500

    for seq in (1, 2):
        inner = IP(src="198.19.9.9", dst="198.19.255.1") / ICMP(id=99, seq=seq) / Raw(b"nat-t")
        peer.send(to_rvpp.encrypt(inner, seq_num=seq))
        got = peer.recv_all(is_natt_from_rvpp, 3, want=1)
        check(len(got) == 1, "NAT-T echo %d: rvpp sent one ESP-in-UDP packet back" % seq)
        check(got[0][UDP].dport == 40001, "NAT-T echo %d: to udp_dst_port 40001" % seq)
        back = from_rvpp.decrypt(got[0])
        check(ICMP in back and back[ICMP].type == 0 and back[ICMP].seq == seq
              and bytes(back[Raw]) == b"nat-t", "NAT-T echo %d: scapy opened the reply" % seq)
    vpp.disconnect()
    print("ALL OK")


main()
