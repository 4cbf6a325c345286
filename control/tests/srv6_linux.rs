//! SRv6 against the Linux kernel's seg6 / seg6local. A "pod" netns hangs off rvpp's tap1; a
//! "Linux node" netns off tap0 (the uplink, fd00::/64: rvpp ::1, Linux ::2). rvpp's localsids
//! are fd00:1::/48 (End.DT4 fd00:1::d4, End.DT6 fd00:1::d6), Linux's fd00:2::/48 (End
//! fd00:2::e, End.DX4 fd00:2::d4 to a "remote pod" netns 198.19.9.1 behind a veth, End.DT6
//! fd00:2::d6 into the main table; this kernel has no VRF module, so no End.DT4 there).
//!
//! The pod pings the remote pod's 198.19.9.1 and fd09::1: the request is steered by rvpp into
//! a two-SID policy (H.Encaps with an SRH, End on Linux, then End.DX4 / End.DT6 on Linux);
//! the reply is encapsulated by Linux (`encap seg6 mode encap`) toward
//! rvpp's End.DT4 / End.DT6. tshark on the Linux uplink checks the SRH rvpp sent. rvpp's side
//! is `common::srv6_node`, shared with srv6_scapy.
//!
//! A kernel built without CONFIG_IPV6_SEG6_LWTUNNEL cannot be this peer: the test is then a
//! logged skip, also under CI (`skip::kernel_lacks`); srv6_scapy checks the same rvpp side
//! with scapy as the peer.

#[path = "../../test-support/skip.rs"]
mod skip;

#[path = "../../test-support/tshark.rs"]
mod tshark;

#[path = "../../test-support/netns.rs"]
mod netns;

mod common;

use common::Rvpp;
use netns::Netns;

fn ok(out: String) {
    assert!(out.trim().is_empty(), "rvppctl said: {out}");
}

/// The count `show errors` prints for a reason, summed over the nodes that have it.
fn error_count(errors: &str, reason: &str) -> u64 {
    errors
        .lines()
        .filter(|l| l.contains(reason))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Whether this kernel has seg6 lightweight tunnels: a seg6local route in a namespace of
/// its own. Only ip's answer for a kernel built without them says no; any other failure is
/// left to the test's own routes to report.
fn kernel_has_seg6_lwt() -> bool {
    let probe = Netns::new("sr6probe");
    let out = probe.try_ip("-6 route add fd00:2::e/128 encap seg6local action End dev lo");
    !String::from_utf8_lossy(&out.stderr).contains("lwt encapsulation type not supported")
}

#[test]
fn rvpp_and_linux_srv6_both_ways() {
    if !skip::need_root("for taps, seg6 routes and a VRF in namespaces of the test's own") {
        return;
    }
    if !kernel_has_seg6_lwt() {
        skip::kernel_lacks(
            "CONFIG_IPV6_SEG6_LWTUNNEL (seg6 / seg6local routes)",
            "srv6_scapy (the same rvpp side, scapy as the peer node)",
        );
        return;
    }
    let Some(tshark) = skip::need_tool("tshark") else {
        return;
    };
    let linux = Netns::new("sr6l");
    let pod = Netns::new("sr6p");
    let remote = Netns::new("sr6r");
    let r = Rvpp::start("srv6-linux", "buffers { buffers-per-numa 8192 }");
    common::srv6_node(&r, linux.name(), pod.name());

    // The Linux node: uplink, a veth to the remote pod, its localsids, and
    // the way back to rvpp's pods through rvpp's localsids.
    linux.ip("addr add fd00::2/64 dev up0 nodad");
    linux.ip("link set up0 up");
    linux.ip(&format!(
        "link add l0 type veth peer name r0 netns {}",
        remote.name()
    ));
    linux.ip("addr add 198.19.9.254/24 dev l0");
    linux.ip("addr add fd09::fe/64 dev l0 nodad");
    linux.ip("link set l0 up");
    remote.ip("addr add 198.19.9.1/24 dev r0");
    remote.ip("link set r0 mtu 1400");
    remote.ip("link set r0 up");
    remote.ip("addr add fd09::1/64 dev r0 nodad");
    remote.ip("route add default via 198.19.9.254");
    remote.ip("-6 route add default via fd09::fe");
    for s in [
        "net.ipv6.conf.all.forwarding=1",
        "net.ipv4.conf.all.forwarding=1",
        "net.ipv6.conf.all.seg6_enabled=1",
        "net.ipv6.conf.up0.seg6_enabled=1",
    ] {
        let o = linux.exec(&["sysctl", "-w", s]);
        assert!(
            o.status.success(),
            "sysctl {s}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    linux.ip("-6 route add fd00:1::/48 via fd00::1 dev up0");
    linux.ip("-6 route add fd00:2::e/128 encap seg6local action End dev up0");
    linux.ip("-6 route add fd00:2::d4/128 encap seg6local action End.DX4 nh4 198.19.9.1 dev l0");
    linux.ip("-6 route add fd00:2::d6/128 encap seg6local action End.DT6 table 254 dev up0");
    linux.ip("route add 198.19.0.0/24 encap seg6 mode encap segs fd00:1::d4 dev up0");
    linux.ip("-6 route add fd01::/64 encap seg6 mode encap segs fd00:1::d6 dev up0");

    // Buffers in use with both taps idle: the traffic below must give back what it took
    // (each tap rx queue's refill stash moves with its traffic: 96 buffers of slack, as
    // dataplane_faults.rs allows).
    let before = common::buffers_in_use(&r.cli);
    let pcap = r.path("up0.pcap");
    let pcap_s = pcap.to_string_lossy().to_string();
    // Stopped by SIGINT after 4 s, so that tcpdump writes out all it saw.
    let mut cap = linux.spawn(&[
        "timeout", "-s", "INT", "4", "tcpdump", "-U", "-i", "up0", "-w", &pcap_s, "ip6",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(700));
    for (dst, what) in [("198.19.9.1", "IPv4"), ("fd09::1", "IPv6")] {
        let ping = pod.exec(&["ping", "-c", "3", "-i", "0.2", "-W", "2", dst]);
        let text = String::from_utf8_lossy(&ping.stdout).to_string();
        assert!(
            ping.status.success() && text.contains(" 0% packet loss"),
            "{what} ping across SRv6 failed:\n{text}\n{}\n{}",
            r.ctl("show errors"),
            String::from_utf8_lossy(&linux.exec(&["ip", "-6", "route"]).stdout)
        );
    }
    let _ = cap.wait();
    let errors = r.ctl("show errors");
    assert!(
        error_count(&errors, "sr policy packets encapsulated") >= 6,
        "{errors}"
    );
    assert!(
        error_count(&errors, "sr localsid packets decapsulated") >= 6,
        "{errors}"
    );

    // The SRH rvpp sent: two segments, Segments Left 1, toward Linux's End SID.
    let t = std::process::Command::new(&tshark)
        .args([
            "-r",
            &pcap_s,
            "-Y",
            "ipv6.src == fd00::1 && ipv6.dst == fd00:2::e",
            "-V",
        ])
        .output()
        .unwrap();
    assert!(
        t.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&t.stderr)
    );
    let v = String::from_utf8_lossy(&t.stdout);
    assert!(v.contains("Segment Routing"), "no SRH seen:\n{v}");
    assert!(v.contains("Segments Left: 1"), "{v}");
    assert!(
        v.contains("fd00:2::d4") && v.contains("fd00:2::d6"),
        "{}",
        tshark::read(&tshark, &pcap)
    );
    // And what Linux sent to rvpp's End.DT4 carried an SRH too.
    let t = std::process::Command::new(&tshark)
        .args(["-r", &pcap_s, "-Y", "ipv6.dst == fd00:1::d4", "-V"])
        .output()
        .unwrap();
    let v = String::from_utf8_lossy(&t.stdout);
    assert!(
        v.contains("Segment Routing") && v.contains("Internet Protocol Version 4"),
        "{v}"
    );

    // TCP through both directions: iperf3 pod -> remote pod (MTUs leave room for the outer
    // IPv6 + SRH: rvpp sends no ICMP too-big for the outer MTU yet).
    if let Some(iperf) = skip::need_tool("iperf3") {
        let iperf = iperf.to_string_lossy().to_string();
        let mut srv = remote.spawn(&[&iperf, "-s", "-1", "-B", "198.19.9.1"]);
        std::thread::sleep(std::time::Duration::from_millis(500));
        let c = pod.exec(&[&iperf, "-c", "198.19.9.1", "-t", "2", "-J"]);
        let _ = srv.kill();
        let _ = srv.wait();
        let j = String::from_utf8_lossy(&c.stdout).to_string();
        let bps = j
            .split("\"sum_received\"")
            .nth(1)
            .and_then(|t| t.split("\"bits_per_second\":").nth(1))
            .and_then(|t| t.split([',', '}']).next())
            .and_then(|t| t.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        assert!(
            c.status.success() && bps > 1e6,
            "iperf3 through SRv6: {bps} bit/s\n{j}"
        );
        eprintln!(
            "iperf3 pod -> remote pod through SRv6 (debug build, not a benchmark): {:.0} Mbit/s",
            bps / 1e6
        );
    }

    // Unsteered, the pod's packets no longer reach Linux through SRv6.
    ok(r.ctl("sr steer del l3 198.19.9.0/24"));
    let ping = pod.exec(&["ping", "-c", "1", "-W", "1", "198.19.9.1"]);
    assert!(!ping.status.success(), "a reply without steering");
    common::wait_for("the pool back to its idle level", 10, || {
        common::buffers_in_use(&r.cli) <= before + 96
    });
    drop(r);
}
