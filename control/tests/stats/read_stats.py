#!/usr/bin/env python3
"""Read rvpp's stats segment with vpp_papi's VPPStats and print what the Rust test checks.

Usage: read_stats.py <stats.sock>
Output: tab-separated lines; `SKIP<TAB>reason` if vpp_papi cannot be imported.
"""
import sys

try:
    from vpp_papi.vpp_stats import VPPStats
except Exception as e:  # pylint: disable=broad-except
    print("SKIP\tvpp_papi not importable: %s" % e)
    sys.exit(0)


def main():
    s = VPPStats(socketname=sys.argv[1])
    s.connect()
    print("version\t%d" % s.version)
    print("epoch\t%d" % s.epoch)
    print("dirsize\t%d" % len(s.directory))
    names = s["/if/names"]
    rx = s["/if/rx"]
    tx = s["/if/tx"]
    drops = s["/if/drops"]
    txerr = s["/if/tx-error"]
    print("threads\t%d" % len(rx))
    for i, n in enumerate(names):
        print("name\t%d\t%s" % (i, n))
        print("rx\t%d\t%d\t%d" % (i, rx[:, i].sum_packets(), rx[:, i].sum_octets()))
        print("tx\t%d\t%d\t%d" % (i, tx[:, i].sum_packets(), tx[:, i].sum_octets()))
        print("drops\t%d\t%d" % (i, drops[:, i].sum()))
        print("tx-error\t%d\t%d" % (i, txerr[:, i].sum()))
        # The per-interface symlink VPP adds for every counter.
        link = "/interfaces/%s/rx" % n.replace("/", "_")
        print("ifsym\t%d\t%d" % (i, s[link].sum_packets()))
    for k, v in sorted(s.set_errors().items()):
        print("err\t%s\t%d" % (k, v))
    for k in s.ls(["^/sys/", "^/buffer-pools/"]):
        e = s.directory[k]
        if e.type in (1, 9):
            print("scalar\t%s\t%d" % (k, s[k]))
    s.disconnect()


if __name__ == "__main__":
    main()
