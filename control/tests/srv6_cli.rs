//! SRv6 through the CLI, in VPP's syntax and output: localsids of each behaviour, a policy
//! with lists added, reweighted and removed, steering and its removal (the steered route comes
//! back), the errors for duplicates and missing objects. The API side is tests/api/papi_srv6.py;
//! both call one service, so what one makes the other lists.

mod common;

use common::Rvpp;

fn ok(r: &Rvpp, c: &str) {
    let out = r.ctl(c);
    assert!(out.trim().is_empty(), "{c}: {out}");
}

#[test]
fn cli_programs_and_shows_srv6_as_vpp_does() {
    let r = Rvpp::start("srv6-cli", "");
    assert_eq!(r.ctl("create loopback interface").trim(), "loop0");
    ok(&r, "set interface state loop0 up");
    ok(&r, "set interface ip address loop0 fd00::1/64");
    ok(&r, "set interface ip address loop0 198.18.0.1/24");
    ok(&r, "set sr encaps source addr fd00::1");
    assert!(r.ctl("show sr encaps source addr").contains("fd00::1"));
    ok(&r, "sr localsid address fd00:1::d4 behavior end.dt4 0");
    ok(&r, "sr localsid address fd00:1::d6 behavior end.dt6 0");
    ok(&r, "sr localsid address fd00:1::e behavior end psp");
    ok(
        &r,
        "sr localsid address fd00:1::a behavior end.x loop0 fd00::2",
    );
    ok(
        &r,
        "sr localsid address fd00:1::dd4 behavior end.dx4 loop0 198.18.0.2",
    );
    assert!(r
        .ctl("sr localsid address fd00:1::d4 behavior end.dt4 0")
        .contains("exists"));
    assert!(r
        .ctl("sr localsid address fd00:1::d9 behavior end.dt4 42")
        .contains("no"));
    assert!(r
        .ctl("sr localsid address fd00:1::dd6 behavior end.dx6 loop0 198.18.0.2")
        .contains("family"));
    let ls = r.ctl("show sr localsids");
    for want in [
        "SRv6 - My LocalSID Table:",
        "\tAddress: \tfd00:1::d4/128\n\tBehavior: \tDT4 (Endpoint with decapsulation and specific IPv4 table lookup)\n\tTable: \t0",
        "\tAddress: \tfd00:1::e/128\n\tBehavior: \tEnd\n\tPSP: \tTrue",
        "X (Endpoint with Layer-3 cross-connect)\n\tIface:  \tloop0\n\tNext hop: \tfd00::2",
        "DX4 (Endpoint with decapsulation and IPv4 cross-connect)",
    ] {
        assert!(ls.contains(want), "{want:?} not in\n{ls}");
    }
    assert!(r.ctl("show ip6 fib").contains("fd00:1::d4/128"));

    ok(
        &r,
        "sr policy add bsid fd00:1::b1 next fd00:2::e next fd00:2::d4 encap",
    );
    assert!(r
        .ctl("sr policy add bsid fd00:1::b1 next fd00:2::1 encap")
        .contains("exists"));
    assert!(r
        .ctl("sr policy add bsid fd00:1::b2 next fd00:2::1 insert")
        .contains("not implemented"));
    ok(
        &r,
        "sr policy mod bsid fd00:1::b1 add sl next fd00:3::d4 weight 3",
    );
    ok(&r, "sr policy mod bsid fd00:1::b1 mod sl index 0 weight 2");
    let p = r.ctl("show sr policies");
    for want in [
        "[0].-\tBSID: fd00:1::b1\n\tBehavior: Encapsulation\n\tType: Default\n\tFIB table: 0",
        "  \t[0].- < fd00:2::e, fd00:2::d4 > weight: 2",
        "  \t[1].- < fd00:3::d4 > weight: 3",
    ] {
        assert!(p.contains(want), "{want:?} not in\n{p}");
    }
    ok(&r, "sr policy mod bsid fd00:1::b1 del sl index 0");
    assert!(!r.ctl("show sr policies").contains("fd00:2::e"));
    assert!(r
        .ctl("sr policy mod bsid fd00:1::b1 del sl index 0")
        .contains("no SID list"));

    // Steering forwards over the prefix's API route; removing it brings the route back.
    ok(&r, "ip route add 198.19.64.0/24 via 198.18.0.2 loop0");
    ok(&r, "sr steer l3 198.19.64.0/24 via bsid fd00:1::b1");
    ok(&r, "sr steer l3 fd10:64::/64 via bsid fd00:1::b1");
    assert!(r
        .ctl("sr steer l3 198.19.65.0/24 via bsid fd00:1::b9")
        .contains("no policy"));
    let st = r.ctl("show sr steering-policies");
    assert!(
        st.contains("L3 198.19.64.0/24\tfd00:1::b1") && st.contains("L3 fd10:64::/64\tfd00:1::b1"),
        "{st}"
    );
    assert!(r
        .ctl("show ip fib 198.19.64.0/24")
        .contains("sr policy index 0"));
    ok(&r, "sr steer del l3 198.19.64.0/24");
    assert!(r
        .ctl("sr steer del l3 198.19.64.0/24")
        .contains("not steered"));
    assert!(r
        .ctl("show ip fib 198.19.64.0/24")
        .contains("via 198.18.0.2"));

    // The policy goes with its steering; the localsids go with their /128s.
    ok(&r, "sr policy del bsid fd00:1::b1");
    assert!(r.ctl("show sr steering-policies").lines().count() == 2);
    assert!(!r.ctl("show sr policies").contains("BSID"));
    ok(&r, "sr localsid del address fd00:1::d4");
    assert!(r
        .ctl("sr localsid del address fd00:1::d4")
        .contains("no localsid"));
    assert!(!r.ctl("show sr localsids").contains("fd00:1::d4"));
    assert!(!r.ctl("show ip6 fib").contains("fd00:1::d4/128"));
}

/// `show ip fib <prefix>` of table 0.
fn fib(r: &Rvpp, p: &str) -> String {
    r.ctl(&format!("show ip fib {p}"))
}

/// SRv6's routes are the FIB's SR source, as in VPP (interface > SR > API): an API route for
/// a steered prefix (or a localsid's or BSID's /128) waits under it whatever is done to it
/// meanwhile, and forwards as it is then when the SR entry goes; an interface's attached
/// subnet outranks a steering.
#[test]
fn srv6_routes_are_their_own_fib_source() {
    let r = Rvpp::start("srv6-src", "");
    assert_eq!(r.ctl("create loopback interface").trim(), "loop0");
    ok(&r, "set interface state loop0 up");
    ok(&r, "set interface ip address loop0 fd00::1/64");
    ok(&r, "set interface ip address loop0 198.18.0.1/24");
    ok(&r, "set sr encaps source addr fd00::1");
    ok(&r, "sr policy add bsid fd00:1::b1 next fd00:2::e encap");

    // An API route changed while steered waits, and comes back as changed.
    ok(&r, "ip route add 198.19.64.0/24 via 198.18.0.2 loop0");
    ok(&r, "sr steer l3 198.19.64.0/24 via bsid fd00:1::b1");
    ok(&r, "ip route add 198.19.64.0/24 via 198.18.0.3 loop0");
    let out = fib(&r, "198.19.64.0/24");
    assert!(
        out.contains("buckets:1] src:SR\n    [@")
            && out.contains("sr policy index 0")
            && out.contains("  src:API waiting: 198.18.0.3 loop0")
            && !out.contains("via 198.18.0.3"),
        "the steering forwards, the API route waits:\n{out}"
    );
    ok(&r, "sr steer del l3 198.19.64.0/24");
    let out = fib(&r, "198.19.64.0/24");
    assert!(
        out.contains("src:API") && out.contains("via 198.18.0.3") && !out.contains("sr policy"),
        "the API route as it is now forwards:\n{out}"
    );

    // Deleting the API route under a steering leaves the steering.
    ok(&r, "ip route add 198.19.65.0/24 via 198.18.0.2 loop0");
    ok(&r, "sr steer l3 198.19.65.0/24 via bsid fd00:1::b1");
    ok(&r, "ip route del 198.19.65.0/24 via 198.18.0.2 loop0");
    let out = fib(&r, "198.19.65.0/24");
    assert!(
        out.contains("198.19.65.0/24\n") && out.contains("sr policy index 0"),
        "still steered:\n{out}"
    );
    ok(&r, "sr steer del l3 198.19.65.0/24");
    assert!(
        !r.ctl("show ip fib").contains("198.19.65.0/24"),
        "nothing is left of the prefix"
    );

    // A localsid's and a BSID's /128 are SR's too: an API route for them waits, and forwards
    // when the localsid goes.
    ok(&r, "sr localsid address fd00:1::d4 behavior end.dt4 0");
    ok(&r, "ip route add fd00:1::d4/128 via fd00::2 loop0");
    ok(&r, "ip route add fd00:1::b1/128 via fd00::2 loop0");
    for (sid, what) in [
        ("fd00:1::d4/128", "sr localsid index 0"),
        ("fd00:1::b1/128", "sr policy index 0"),
    ] {
        let out = r.ctl(&format!("show ip6 fib {sid}"));
        assert!(
            out.contains("] src:SR\n")
                && out.contains(what)
                && out.contains("  src:API waiting: fd00::2 loop0")
                && !out.contains("via fd00::2"),
            "the SR entry forwards, the API route waits:\n{out}"
        );
    }
    ok(&r, "sr localsid del address fd00:1::d4");
    let out = r.ctl("show ip6 fib fd00:1::d4/128");
    assert!(
        out.contains("fd00:1::d4/128\n")
            && out.contains("] src:API\n")
            && out.contains("via fd00::2"),
        "the API route forwards:\n{out}"
    );

    // An attached subnet outranks the steering; it forwards once the address goes, and when
    // the steering goes too nothing is left.
    ok(&r, "sr steer l3 198.18.0.0/24 via bsid fd00:1::b1");
    let out = fib(&r, "198.18.0.0/24");
    assert!(
        out.contains("src:interface")
            && out.contains("glean loop0")
            && out.contains("  src:SR waiting: sr policy index 0"),
        "the attached route forwards, the steering waits:\n{out}"
    );
    ok(&r, "set interface ip address del loop0 198.18.0.1/24");
    let out = fib(&r, "198.18.0.0/24");
    assert!(
        out.contains("198.18.0.0/24\n") && out.contains("src:SR") && !out.contains("glean"),
        "the steering forwards:\n{out}"
    );
    ok(&r, "set interface ip address loop0 198.18.0.1/24");
    ok(&r, "sr steer del l3 198.18.0.0/24");
    let out = fib(&r, "198.18.0.0/24");
    assert!(
        out.contains("src:interface") && out.contains("glean loop0") && !out.contains("src:SR"),
        "the attached route, alone:\n{out}"
    );
}

/// Several SR objects on one /128 (a localsid or BSID that is also steered, a localsid at a
/// BSID) each keep their claim: a steering forwards over a localsid over a BSID, and removing
/// one hands the /128 to the next rather than taking the SR entry away.
#[test]
fn sr_objects_sharing_a_prefix_each_keep_their_claim() {
    let r = Rvpp::start("srv6-share", "");
    assert_eq!(r.ctl("create loopback interface").trim(), "loop0");
    ok(&r, "set interface state loop0 up");
    ok(&r, "set interface ip address loop0 fd00::1/64");
    ok(&r, "set sr encaps source addr fd00::1");
    ok(&r, "sr policy add bsid fd00:1::b1 next fd00:2::e encap");
    let sr_of = |p: &str| {
        let out = r.ctl(&format!("show ip6 fib {p}"));
        assert!(out.contains(&format!("{p}\n")), "{p} is in the FIB:\n{out}");
        out
    };

    // A localsid steered: the steering forwards; without it the localsid does again.
    ok(&r, "sr localsid address fd00:1::d4 behavior end.dt4 0");
    ok(&r, "sr steer l3 fd00:1::d4/128 via bsid fd00:1::b1");
    let out = sr_of("fd00:1::d4/128");
    assert!(out.contains("sr policy index 0"), "steered:\n{out}");
    ok(&r, "sr steer del l3 fd00:1::d4/128");
    let out = sr_of("fd00:1::d4/128");
    assert!(
        out.contains("sr localsid index 0"),
        "the localsid is back:\n{out}"
    );

    // The reverse: the localsid goes, the steering stays.
    ok(&r, "sr steer l3 fd00:1::d4/128 via bsid fd00:1::b1");
    ok(&r, "sr localsid del address fd00:1::d4");
    let out = sr_of("fd00:1::d4/128");
    assert!(out.contains("sr policy index 0"), "still steered:\n{out}");
    ok(&r, "sr steer del l3 fd00:1::d4/128");
    assert!(
        !r.ctl("show ip6 fib").contains("fd00:1::d4/128"),
        "nothing left"
    );

    // A localsid at a BSID outranks it; either removal leaves the other.
    ok(&r, "sr localsid address fd00:1::b1 behavior end");
    let out = sr_of("fd00:1::b1/128");
    assert!(out.contains("sr localsid index 0"), "the localsid:\n{out}");
    ok(&r, "sr localsid del address fd00:1::b1");
    let out = sr_of("fd00:1::b1/128");
    assert!(
        out.contains("sr policy index 0"),
        "the BSID is back:\n{out}"
    );
    ok(&r, "sr localsid address fd00:1::b1 behavior end");
    ok(&r, "sr policy del bsid fd00:1::b1");
    let out = sr_of("fd00:1::b1/128");
    assert!(
        out.contains("sr localsid index 0"),
        "the localsid stays:\n{out}"
    );
}
