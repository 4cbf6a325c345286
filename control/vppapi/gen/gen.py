#!/usr/bin/env python3
"""Development-time generator for rvpp-vppapi message definitions.

Reads the VPP JSON API definitions (the compatibility reference in
shared/vpp-compat/api-json) and the list of messages calico uses
(shared/vpp-compat/messages.tsv), and writes Rust macro invocations into
src/defs/.  The generated Rust is committed; neither the build nor the tests
need the JSON.  The CRCs written here are the *published* constants; the crate
recomputes every CRC from the Rust field definitions and its tests compare.

Usage: python3 gen/gen.py [--compat DIR]   (run from control/vppapi)
"""

import argparse
import glob
import json
import os
import sys

PRIMS = {"u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64", "f64", "bool"}
PRIM_SIZE = {"u8": 1, "u16": 2, "u32": 4, "u64": 8, "i8": 1, "i16": 2, "i32": 4,
             "i64": 8, "f64": 8, "bool": 1}
RUST_KEYWORDS = {
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn",
    "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref",
    "return", "self", "Self", "static", "struct", "super", "trait", "true", "type", "unsafe",
    "use", "where", "while", "async", "await", "dyn", "abstract", "become", "box", "do",
    "final", "macro", "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
}
# Enum members marked [backwards_compatible] in the .api sources (VPP 2ddeeeac).
# vppapigen leaves them out of the enum's CRC text; the JSON does not mark them.
BACKWARDS_COMPATIBLE = {
    "AF_PACKET_API_FLAG_VERSION_2", "AF_XDP_API_FLAGS_MAC_REUSE", "TAP_API_FLAG_PACKED",
    "TAP_API_FLAG_IN_ORDER", "TAP_API_FLAG_CONSISTENT_QP", "CLASSIFY_API_ACTION_MARK_FLOW",
    "VIRTIO_API_FLAG_BUFFERING", "VIRTIO_API_FLAG_RSS", "IPSEC_API_CRYPTO_ALG_CHACHA20_POLY1305",
    "IPSEC_API_CRYPTO_ALG_AES_NULL_GMAC_128", "IPSEC_API_CRYPTO_ALG_AES_NULL_GMAC_192",
    "IPSEC_API_CRYPTO_ALG_AES_NULL_GMAC_256", "IPSEC_API_SAD_FLAG_ASYNC",
    "SR_BEHAVIOR_API_END_UN_PERF", "SR_BEHAVIOR_API_END_UN", "SR_BEHAVIOR_API_UA",
    "TUNNEL_API_ENCAP_DECAP_FLAG_ENCAP_INNER_HASH",
    "TUNNEL_API_ENCAP_DECAP_FLAG_ENCAP_COPY_HOP_LIMIT",
    "TUNNEL_API_ENCAP_DECAP_FLAG_ENCAP_COPY_FLOW_LABEL",
}
# Modules whose messages are all carried (handshake, basics).
WHOLE_MODULES = ["memclnt", "vlib", "vpe"]
# Messages calico does not send that rvpp serves anyway: cnat's dumps (VPP has them at
# calico's base; `show`-style checks and tools use them).
EXTRA_MESSAGES = {
    "cnat": [
        "cnat_translation_dump", "cnat_translation_details",
        "cnat_session_dump", "cnat_session_details",
        "cnat_get_snat_addresses", "cnat_get_snat_addresses_reply",
    ],
}
# Message options kept in the emitted JSON (help texts and comments are dropped).
KEEP_MSG_OPTIONS = {"deprecated", "in_progress", "status", "replaced_by"}


def camel(name):
    return "".join(p[:1].upper() + p[1:] for p in name.split("_"))


def rust_type(api_ty):
    if api_ty in PRIMS:
        return api_ty
    assert api_ty.startswith("vl_api_") and api_ty.endswith("_t"), api_ty
    return camel(api_ty[len("vl_api_"):-2])


def type_key(api_ty):
    return api_ty[len("vl_api_"):-2]


def rs_str(s):
    return 'r#"' + s + '"#' if '"' in s else '"' + s + '"'


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    crate = os.path.dirname(here)
    ap.add_argument("--compat", default="/work/shared/vpp-compat")
    args = ap.parse_args()

    jsons = {}
    for f in sorted(glob.glob(os.path.join(args.compat, "api-json", "*.api.json"))):
        mod = os.path.basename(f)[: -len(".api.json")]
        with open(f) as fh:
            jsons[mod] = json.load(fh)

    # ---- all types, with the module that defines them
    mod_of_file = {}
    for mod in jsons:
        mod_of_file[mod] = mod
    types = {}  # name -> (kind, data, module)
    for mod, j in jsons.items():
        imported = set()
        for imp in j.get("imports", []):
            base = os.path.basename(imp)[: -len(".api")]
            if base in jsons:
                ij = jsons[base]
                for k in ("types", "unions", "enums", "enumflags"):
                    imported.update(t[0] for t in ij[k])
                imported.update(ij["aliases"].keys())
        for k in ("types", "unions", "enums", "enumflags"):
            for t in j[k]:
                owner = mod if t[0] not in imported else None
                prev = types.get(t[0])
                if prev is None or (prev[2] is None and owner):
                    types[t[0]] = (k, t, owner)
        for a, v in j["aliases"].items():
            owner = mod if a not in imported else None
            prev = types.get(a)
            if prev is None or (prev[2] is None and owner):
                types[a] = ("aliases", v, owner)

    # ---- message selection
    wanted = {}  # module -> set(names)
    with open(os.path.join(args.compat, "messages.tsv")) as fh:
        rows = [l.rstrip("\n").split("\t") for l in fh if l.strip()]
    hdr = rows[0]
    for r in rows[1:]:
        d = dict(zip(hdr, r))
        mod, name = d["module"], d["message_name"]
        wanted.setdefault(mod, set()).add(name)
        rep = d["reply_name"]
        if d["kind"] == "dump":
            wanted[mod].add(rep.split()[0])
        elif d["kind"] in ("request", "transport"):
            wanted[mod].add(rep)
    for mod in WHOLE_MODULES:
        wanted.setdefault(mod, set()).update(m[0] for m in jsons[mod]["messages"])
    for mod, names in EXTRA_MESSAGES.items():
        wanted.setdefault(mod, set()).update(names)

    published = {}
    for r in rows[1:]:
        d = dict(zip(hdr, r))
        published[d["message_name"]] = d["crc"]
        if d["reply_crc"] not in ("-", ""):
            published[d["reply_name"].split()[0]] = d["reply_crc"]

    # ---- per-module message lists (JSON order = registration order)
    modules = []
    all_rust_names = {}
    used_types = set()
    for mod in sorted(wanted, key=lambda m: (WHOLE_MODULES.index(m) if m in WHOLE_MODULES else 99, m)):
        j = jsons[mod]
        byname = {m[0]: m for m in j["messages"]}
        for n in wanted[mod]:
            if n not in byname:
                sys.exit("message %s not in %s" % (n, mod))
        msgs = [m for m in j["messages"] if m[0] in wanted[mod]]
        svc = j["services"]
        kinds = {}
        for caller, s in svc.items():
            kinds[caller] = "Request"
            if s["reply"] != "null":
                kinds.setdefault(s["reply"], "Details" if s.get("stream") else "Reply")
            if s.get("stream_msg"):
                kinds[s["stream_msg"]] = "Details"
            for e in s.get("events", []):
                kinds[e] = "Event"
        out_msgs = []
        for m in msgs:
            name = m[0]
            meta = m[-1]
            fields = [f for f in m[1:-1]]
            assert fields[0] == ["u16", "_vl_msg_id"], name
            fields = fields[1:]
            fnames = [f[1] for f in fields]
            kind = kinds.get(name)
            if kind is None:
                if fnames[:2] == ["client_index", "context"]:
                    kind = "Request"
                elif fnames[:1] == ["context"]:
                    kind = "Reply"
                else:
                    kind = "Other"
            if name == "control_ping_reply":
                kind = "Reply"
            crc = int(meta["crc"], 16)
            if name in published:
                assert int(published[name], 16) == crc, name
            opts = {k: v for k, v in meta.get("options", {}).items() if k in KEEP_MSG_OPTIONS}
            rn = camel(name)
            assert rn not in all_rust_names, rn
            all_rust_names[rn] = name
            out_msgs.append((name, rn, kind, crc, opts, fields))
            collect_types(fields, types, used_types)
        services = []
        names = {m[0] for m in out_msgs}
        for caller, s in svc.items():
            if caller in names and (s["reply"] == "null" or s["reply"] in names):
                services.append((caller, s))
        mopts = j.get("options", {})
        modules.append((mod, int(j["vl_api_version"], 16), mopts, out_msgs, services))

    # ---- types: dependency order
    order = []
    seen = set()

    def visit(t):
        if t in seen:
            return
        seen.add(t)
        kind, data, _ = types[t]
        for dep in type_deps(kind, data):
            visit(dep)
        order.append(t)

    for t in sorted(used_types):
        visit(t)

    out = []
    out.append("// @generated by control/vppapi/gen/gen.py from the VPP JSON API reference. Do not edit.\n")
    out.append("//! VPP API types (typedefs, unions, enums, enum flags, aliases) used by the carried messages.\n")
    out.append("#![allow(non_camel_case_types)]\n")
    sizes = {}
    floaty = {}
    plain = {}
    for t in order:
        kind, data, owner = types[t]
        owner = owner or "unknown"
        rn = camel(t)
        assert rn not in all_rust_names, rn
        all_rust_names[rn] = t
        if kind in ("enums", "enumflags"):
            base = data[-1]["enumtype"]
            sizes[t] = PRIM_SIZE[base]
            floaty[t] = False
            plain[t] = True
            out.append("vpp_enum! {\n    %s = \"%s\" in \"%s\", %s %s {\n" % (
                rn, t, owner, "flags" if kind == "enumflags" else "enum", base))
            for name, val in data[1:-1]:
                assert val >= 0
                bc = " [bc]" if name in BACKWARDS_COMPATIBLE else ""
                out.append("        %s = %d%s,\n" % (name, val, bc))
            out.append("    }\n}\n\n")
        elif kind == "aliases":
            ty = data["type"]
            inner = rust_type(ty)
            if "length" in data:
                spec = "array(%s, %d)" % (inner, data["length"])
                sizes[t] = data["length"] * size_of(ty, sizes)
            else:
                spec = "scalar(%s)" % inner
                sizes[t] = size_of(ty, sizes)
            floaty[t] = ty == "f64" or floaty.get(type_key(ty) if ty not in PRIMS else "", False)
            plain[t] = ty in PRIMS or plain.get(type_key(ty), False)
            derive = "#[derive(%s)] " % ", ".join((["Copy"] if plain[t] else []) + ([] if floaty[t] else ["Eq", "Hash"]))
            derive = "" if derive == "#[derive()] " else derive
            out.append("vpp_alias! { %s%s = \"%s\" in \"%s\", %s }\n\n" % (derive, rn, t, owner, spec))
        elif kind == "unions":
            fl = data[1:]
            sz = max(field_size(f, sizes) for f in fl)
            sizes[t] = sz
            floaty[t] = False
            plain[t] = True
            out.append("vpp_union! {\n    %s = \"%s\" in \"%s\", size %d {\n" % (rn, t, owner, sz))
            for f in fl:
                out.append("        %s,\n" % field_spec(f, fl))
            out.append("    }\n}\n\n")
        else:
            fl = [f for f in data[1:] if isinstance(f, list)]
            sizes[t] = sum(field_size(f, sizes) for f in fl)
            floaty[t] = any(f[0] == "f64" or floaty.get(type_key(f[0]) if f[0] not in PRIMS else "", False) for f in fl)
            plain[t] = all(is_plain(f, plain) for f in fl)
            derive = "#[derive(%s)]\n    " % ", ".join((["Copy"] if plain[t] else []) + ([] if floaty[t] else ["Eq", "Hash"]))
            derive = "" if derive.startswith("#[derive()]") else derive
            out.append("vpp_typedef! {\n    %s%s = \"%s\" in \"%s\" {\n" % (derive, rn, t, owner))
            for f in fl:
                out.append("        %s,\n" % field_spec(f, fl))
            out.append("    }\n}\n\n")
    write(os.path.join(crate, "src", "defs", "types.rs"), "".join(out))

    for mod, ver, mopts, msgs, services in modules:
        o = []
        o.append("// @generated by control/vppapi/gen/gen.py from the VPP JSON API reference. Do not edit.\n")
        o.append("//! Messages of the `%s` API module.\n" % mod)
        o.append("#[allow(unused_imports)]\nuse super::types::*;\nuse crate::schema::{ModuleDef, ServiceDef};\nuse crate::Message;\n\n")
        for name, rn, kind, crc, opts, fields in msgs:
            floatm = any(f[0] == "f64" or floaty.get(type_key(f[0]) if f[0] not in PRIMS else "", False) for f in fields)
            derive = "" if floatm else "#[derive(Eq, Hash)]\n    "
            o.append("vpp_message! {\n    %s%s = \"%s\" in \"%s\", crc 0x%08x, kind %s, options %s {\n" % (
                derive, rn, name, mod, crc, kind, rs_str(json.dumps(opts, separators=(",", ":")))))
            for f in fields:
                o.append("        %s,\n" % field_spec(f, fields))
            o.append("    }\n}\n\n")
        o.append("/// The `%s` module: its messages in VPP registration order.\n" % mod)
        o.append("pub static %s_MODULE: ModuleDef = ModuleDef {\n" % mod.upper())
        o.append("    name: \"%s\",\n    vl_api_version: 0x%08x,\n" % (mod, ver))
        o.append("    options: %s,\n" % rs_str(json.dumps(mopts, separators=(",", ":"))))
        o.append("    messages: &[\n")
        for name, rn, kind, crc, opts, fields in msgs:
            o.append("        &%s::DEF,\n" % rn)
        o.append("    ],\n    services: &[\n")
        for caller, s in services:
            ev = ", ".join('"%s"' % e for e in s.get("events", []))
            o.append("        ServiceDef { caller: \"%s\", reply: \"%s\", stream: %s, stream_msg: %s, events: &[%s] },\n" % (
                caller, s["reply"], "true" if s.get("stream") else "false",
                ('Some("%s")' % s["stream_msg"]) if s.get("stream_msg") else "None", ev))
        o.append("    ],\n};\n")
        write(os.path.join(crate, "src", "defs", mod + ".rs"), "".join(o))

    o = []
    o.append("// @generated by control/vppapi/gen/gen.py from the VPP JSON API reference. Do not edit.\n")
    o.append("//! Generated message and type definitions.\n\n")
    o.append("pub mod types;\n")
    for mod, *_ in modules:
        o.append("pub mod %s;\n" % mod)
    o.append("\npub use types::*;\n")
    for mod, *_ in modules:
        o.append("pub use %s::*;\n" % mod)
    o.append("\n/// Every carried module, memclnt first, in message-id registration order.\n")
    o.append("pub static MODULES: &[&crate::schema::ModuleDef] = &[\n")
    for mod, *_ in modules:
        o.append("    &%s::%s_MODULE,\n" % (mod, mod.upper()))
    o.append("];\n")
    write(os.path.join(crate, "src", "defs", "mod.rs"), "".join(o))
    # Keep the committed files byte-identical to `cargo fmt` output.
    import subprocess
    subprocess.run(["rustfmt", "--edition", "2021"] + sorted(glob.glob(os.path.join(crate, "src", "defs", "*.rs"))), check=True)
    print("modules %d, messages %d, types %d" % (len(modules), sum(len(m[3]) for m in modules), len(order)))


def is_plain(f, plain):
    if f[0] == "string":
        return False
    if len(f) >= 4 and isinstance(f[3], str):
        return False
    return f[0] in PRIMS or plain.get(type_key(f[0]), False)


def write(path, text):
    with open(path, "w") as fh:
        fh.write(text)


def type_deps(kind, data):
    if kind in ("enums", "enumflags"):
        return []
    if kind == "aliases":
        ty = data["type"]
        return [] if ty in PRIMS else [type_key(ty)]
    deps = []
    for f in data[1:]:
        if isinstance(f, list) and f[0] not in PRIMS and f[0] != "string":
            deps.append(type_key(f[0]))
    return deps


def collect_types(fields, types, used):
    for f in fields:
        if f[0] in PRIMS or f[0] == "string":
            continue
        k = type_key(f[0])
        if k in used:
            continue
        used.add(k)
        kind, data, _ = types[k]
        sub = []
        if kind == "aliases":
            if data["type"] not in PRIMS:
                sub = [[data["type"], "x"]]
        elif kind in ("types", "unions"):
            sub = [x for x in data[1:] if isinstance(x, list)]
        collect_types(sub, types, used)


def size_of(ty, sizes):
    if ty in PRIMS:
        return PRIM_SIZE[ty]
    return sizes[type_key(ty)]


def field_size(f, sizes):
    ty = f[0]
    if len(f) >= 3 and isinstance(f[2], int):
        if len(f) >= 4 and isinstance(f[3], str):
            return 0
        if ty == "string":
            return f[2] if f[2] else 4
        return f[2] * size_of(ty, sizes)
    return size_of(ty, sizes)


def field_spec(f, siblings):
    ty, name = f[0], f[1]
    rest = f[2:]
    opts = None
    if rest and isinstance(rest[-1], dict):
        opts = rest[-1]
        rest = rest[:-1]
    fname = name
    alias = ""
    if name in RUST_KEYWORDS:
        fname = name + "_"
        alias = ' as "%s"' % name
    vla_users = [s for s in siblings if len(s) >= 4 and isinstance(s[3], str) and s[3] == name]
    if not rest:
        if vla_users:
            assert ty in ("u8", "u16", "u32", "u64", "i8", "i16", "i32"), (name, ty)
            assert len(vla_users) == 1
            spec = "count(%s, %s)" % (ty, vla_users[0][1] + ("_" if vla_users[0][1] in RUST_KEYWORDS else ""))
        else:
            spec = "scalar(%s)" % rust_type(ty)
    elif len(rest) == 1:
        n = rest[0]
        if ty == "string":
            spec = "string(%d)" % n if n else "vstring()"
        else:
            assert n > 0, f
            spec = "array(%s, %d)" % (rust_type(ty), n)
    else:
        n, lf = rest
        assert n == 0 and isinstance(lf, str), f
        cnt = [s for s in siblings if s[1] == lf][0]
        assert ty != "string", f
        spec = "vla(%s, %s, %s)" % (rust_type(ty), lf + ("_" if lf in RUST_KEYWORDS else ""), cnt[0])
    o = ""
    if opts:
        o = " [%s]" % rs_str(json.dumps(opts, separators=(",", ":")))
    return "%s%s: %s%s" % (fname, alias, spec, o)


if __name__ == "__main__":
    main()
