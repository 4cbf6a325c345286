#!/usr/bin/env python3
"""vpp_papi side of the rvpp-vppapi tests.

  papi_check.py load <apidir> <expected_name_crcs_file>
      load the emitted .api.json files with vpp_papi and compare the name_crc set.
  papi_check.py client <apidir> <socket>
      connect a real VPPApiClient to a test server and exercise the basics.
Exit 77 when vpp_papi is not importable (the Rust test then skips).
"""
import json
import sys

try:
    from vpp_papi.vpp_papi import VPPApiJSONFiles, VPPApiClient
except ImportError as e:  # pragma: no cover
    print("vpp_papi not importable: %s" % e)
    sys.exit(77)


def load(apidir, expected_file):
    files, messages, services = VPPApiJSONFiles.load_api(apidir=apidir)
    got = {name + "_" + m.crc[2:] for name, m in messages.items()}
    with open(expected_file) as fh:
        want = {l.strip() for l in fh if l.strip()}
    missing = sorted(want - got)
    extra = sorted(got - want)
    if missing or extra:
        print("missing:", missing[:20], "extra:", extra[:20])
        sys.exit(1)
    # papi must be able to unpack every message (an all-zero payload: empty VLAs/strings)
    for name, m in messages.items():
        m.unpack(bytes(8192))
    print("ok %d files %d messages %d services" % (len(files), len(got), len(services)))


def client(apidir, sock):
    import threading

    vpp = VPPApiClient(apidir=apidir, server_address=sock, read_timeout=5)
    got = []
    seen = threading.Event()

    def on_event(name, msg):
        if name == "sw_interface_event":
            got.append(msg)
            seen.set()

    vpp.register_event_callback(on_event)
    vpp.connect("papi-test")
    out = {}
    r = vpp.api.show_version()
    out["show_version"] = [r.retval, r.program, r.version]
    r = vpp.api.control_ping()
    out["control_ping"] = [r.retval, r.vpe_pid]
    r = vpp.api.sw_interface_dump()
    out["sw_interface_dump"] = [[d.sw_if_index, d.interface_name] for d in r]
    r = vpp.api.cli_inband(cmd="show version")
    out["cli_inband"] = [r.retval, r.reply]
    r = vpp.api.want_interface_events(enable_disable=1, pid=1234)
    out["want_interface_events"] = r.retval
    seen.wait(5)
    ev = got[0] if got else None
    out["event"] = [ev.sw_if_index, int(ev.flags), bool(ev.deleted)] if ev else None
    r = vpp.api.sw_interface_set_flags(sw_if_index=1, flags=1)
    out["unimplemented"] = r.retval
    vpp.disconnect()
    print(json.dumps(out))


if __name__ == "__main__":
    if sys.argv[1] == "load":
        load(sys.argv[2], sys.argv[3])
    else:
        client(sys.argv[2], sys.argv[3])
