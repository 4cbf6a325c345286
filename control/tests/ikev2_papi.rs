//! rvpp to rvpp over IKEv2-negotiated ESP, configured by calico-vpp's IPsec message sequence
//! through vpp_papi (tests/api/papi_ikev2.py): two daemons, their uplinks bridged in a netns of
//! the test's own, a pod netns behind each. The IKE messages go through the graph (ip4-local ->
//! ike4-punt -> the control plane's engine, and back out through a worker). The IKE SA and the
//! child SA must come up on both, `show ikev2 sa` must list them, and pod A's pings to pod B must
//! cross the tunnel as ESP: also across a flood of junk to the IKE port, a child rekey the
//! responder starts, and one the initiator starts by itself when its sequence numbers run high
//! (`set ikev2 rekey-seq`). Deleting a tunnel takes its children on both sides; then a wrong PSK
//! must leave no SA, counted as an authentication failure on both sides, and the initiator keeps
//! trying by itself.
//!
//! Addresses: uplinks 198.18.0.1 (A, the initiator) and .2 /24; pod A 198.19.0.2, pod B
//! 198.19.1.2.

#[path = "api/common.rs"]
mod common;

use common::harness::{counted, ping, quiet, wait_for, word_after, Netns};

/// `n` pings from `pod` to pod B, 50 ms apart, with `during` run 0.4 s in; none may be lost.
fn ping_during(pod: &Netns, n: u32, during: impl FnOnce(), nodes: &[&common::Rvpp]) {
    let pinger = pod
        .cmd(&[
            "ping",
            "-c",
            &n.to_string(),
            "-i",
            "0.05",
            "-W",
            "2",
            "198.19.1.2",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("ping");
    std::thread::sleep(std::time::Duration::from_millis(400));
    during();
    let out = pinger.wait_with_output().expect("ping");
    let text = String::from_utf8_lossy(&out.stdout);
    let errors: Vec<String> = nodes.iter().map(|r| r.ctl("show errors")).collect();
    assert!(
        out.status.success() && text.contains(" 0% packet loss"),
        "ping across a rekey:\n{text}\n{}",
        errors.join("\n")
    );
}

#[test]
fn two_rvpp_nodes_over_ikev2_as_calico_configures_them() {
    if !common::skip::need_root("for taps and namespaces of the test's own") {
        return;
    }
    // Bound in this order so that the daemons drop before the namespaces.
    let common::TwoNodes {
        mid: _mid,
        pod_a,
        pod_b: _pod_b,
        mut a,
        b,
    } = common::two_pod_nodes("ike", "ik");
    let sock_b = b.api.display().to_string();

    let Some(out) = a.check_python("papi_ikev2.py", &[&sock_b, "calico"]) else {
        return;
    };
    assert!(out.contains("ALL OK"));
    for (name, r) in [("A", &a), ("B", &b)] {
        let sa = r.ctl("show ikev2 sa");
        println!("{name}: show ikev2 sa\n{sa}");
        let role = if name == "A" {
            "initiator"
        } else {
            "responder"
        };
        assert!(
            sa.contains("established") && sa.contains(role) && sa.contains("child sa spi-in"),
            "{name}: show ikev2 sa:\n{sa}\n{}",
            r.ctl("show ikev2 counters")
        );
        assert!(r.ctl("show ipsec protect").contains("ipip0"), "{name}");
        assert!(r
            .ctl("show ikev2 profile")
            .contains("protected tunnel ipip0"));
    }
    for (name, e) in ["A", "B"].iter().zip(common::ping_over_esp(&pod_a, &a, &b)) {
        let reason = "ike: messages queued for the IKEv2 engine";
        assert!(counted(&e, reason) >= 2, "{name}: {reason}: {e}");
    }

    // A flood of junk to B's IKE port (from pod A, routed by A): counted, and the SAs stay.
    let flood = pod_a.exec(&[
        "python3",
        "-c",
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         for i in range(20000):\n    s.sendto(bytes([i % 256]) * 120, ('198.18.0.2', 500))",
    ]);
    assert!(
        flood.status.success(),
        "{}",
        String::from_utf8_lossy(&flood.stderr)
    );
    wait_for("B to drain the flood", 10, || {
        let queued = counted(
            &b.ctl("show errors"),
            "ike: messages queued for the IKEv2 engine",
        );
        queued
            == counted(
                &b.ctl("show ikev2 counters"),
                "ike datagrams from the graph",
            )
    });
    let c = b.ctl("show ikev2 counters");
    assert!(counted(&c, "malformed (dropped)") >= 100, "{c}");
    let (good, text) = ping(&pod_a, "198.19.1.2", "3");
    assert!(good, "ping after an IKE flood: {text}\n{c}");
    assert!(b.ctl("show ikev2 sa").contains("established"));

    // A child rekey from the responder's side while pods talk: new SPIs on both, the old pair
    // gone, no ping lost.
    let old = word_after(&b.ctl("show ikev2 sa"), "spi-in");
    let rekey = || quiet(b.ctl(&format!("ikev2 initiate rekey-child-sa {old}")));
    ping_during(&pod_a, 30, rekey, &[&a, &b]);
    for (name, r) in [("A", &a), ("B", &b)] {
        let sa = r.ctl("show ikev2 sa");
        println!("{name}: after the rekey\n{sa}");
        assert_eq!(sa.matches("child sa spi-in").count(), 1, "{name}: {sa}");
        assert!(
            !sa.contains(&old),
            "{name}: the old child is still listed:\n{sa}"
        );
        let c = r.ctl("show ikev2 counters");
        assert!(counted(&c, "child SAs installed") >= 2, "{name}: {c}");
        assert!(counted(&c, "child SAs removed") >= 1, "{name}: {c}");
    }
    assert_ne!(word_after(&b.ctl("show ikev2 sa"), "spi-in"), old);

    // A rekeys by itself once its outbound SA has sent 20 packets (rvpp's knob; 3/4 of the
    // sequence space without ESN by default): from the initiator's side, again without loss.
    let before = counted(&a.ctl("show ikev2 counters"), "child SAs installed");
    quiet(a.ctl("set ikev2 rekey-seq 20"));
    ping_during(&pod_a, 60, || {}, &[&a, &b]);
    quiet(a.ctl("set ikev2 rekey-seq default"));
    let c = a.ctl("show ikev2 counters");
    assert!(
        counted(&c, "child rekeyed: sequence numbers ran high") >= 1,
        "{c}"
    );
    assert!(counted(&c, "child SAs installed") > before, "{c}");

    // Deleting A's tunnel takes the child SAs on it, on A and (by a Delete) on B; the profile no
    // longer names it.
    let sw = word_after(&a.ctl("show ipip tunnel"), "sw-if-idx");
    quiet(a.ctl(&format!("delete ipip tunnel sw_if_index {sw}")));
    wait_for("B's child deleted by A", 5, || {
        !b.ctl("show ikev2 sa").contains("child sa")
    });
    assert!(!a.ctl("show ikev2 sa").contains("child sa"));
    assert!(
        a.ctl("show ipsec sa").trim().is_empty(),
        "{}",
        a.ctl("show ipsec sa")
    );
    assert!(!a.ctl("show ikev2 profile").contains("protected tunnel"));

    // Deleting the profiles takes the SAs down; a wrong PSK brings none up.
    let Some(out) = a.check_python("papi_ikev2.py", &[&sock_b, "wrong-psk"]) else {
        return;
    };
    assert!(out.contains("ALL OK"));
    for (name, r) in [("A", &a), ("B", &b)] {
        let sa = r.ctl("show ikev2 sa");
        assert!(!sa.contains("established"), "{name}: {sa}");
        let c = r.ctl("show ikev2 counters");
        println!("{name}: show ikev2 counters\n{c}");
        assert!(counted(&c, "authentication failed") >= 1, "{name}: {c}");
        assert!(r.ctl("show ipsec protect").trim().is_empty(), "{name}");
    }
    // A keeps the profile it initiated up by itself, backing off.
    let tries = |r: &common::Rvpp| {
        counted(
            &r.ctl("show ikev2 counters"),
            "IKE SA lost, initiated again",
        )
    };
    let before = tries(&a);
    wait_for("A initiating again by itself", 5, || tries(&a) > before);
    let (good, text) = ping(&pod_a, "198.19.1.2", "1");
    assert!(!good, "a reply without SAs: {text}");
    let e = a.ctl("show errors");
    assert!(counted(&e, "tunnel interface is down") >= 1, "A: {e}");
    assert!(a.alive());
}
