//! rvpp to rvpp over ESP-protected IPIP, as calico's IPsec mode sets it up (static SAs here;
//! IKEv2 installs the same through `service::ipsec::child_sa_install`). Two rvpp daemons, each
//! with a pod (a tap into a namespace of its own) and an uplink tap into a shared "wire"
//! namespace, which routes between the two uplink subnets as the network between nodes
//! would. Pods ping each other across the tunnels; a wrong key then stops the traffic and is
//! counted as an integrity failure.
//!
//! Addresses: node A uplink 198.18.1.1/24 (wire .2), node B 198.18.2.1/24 (wire .2); pods
//! 198.19.1.2 behind A (198.19.1.1), 198.19.2.2 behind B (198.19.2.1).

#[path = "../../test-support/skip.rs"]
mod skip;

mod common;

use common::Rvpp;
use std::process::Command;

struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let n = Netns(format!("rvpp-{tag}-{}", std::process::id()));
        let _ = Command::new("ip")
            .args(["netns", "del", &n.0])
            .stderr(std::process::Stdio::null())
            .status();
        assert!(Command::new("ip")
            .args(["netns", "add", &n.0])
            .status()
            .is_ok_and(|s| s.success()));
        n
    }
    fn ip(&self, args: &str) {
        let mut full = vec!["-n", self.0.as_str()];
        full.extend(args.split_whitespace());
        let out = Command::new("ip").args(&full).output().unwrap();
        assert!(
            out.status.success(),
            "ip {}: {}",
            full.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    fn exec(&self, cmd: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(cmd)
            .output()
            .unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ok(out: String) {
    assert!(out.trim().is_empty(), "rvppctl said: {out}");
}

/// The count `show errors` prints for a reason (0 when absent).
fn error_count(errors: &str, reason: &str) -> u64 {
    errors
        .lines()
        .filter(|l| l.contains(reason))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

const KEY_AB: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const KEY_BA: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

/// One node: uplink tap into `wire`, pod tap into `pod`, ipip0 to the other node protected by
/// SA 10 (out) and SA 20 (in).
fn node(r: &Rvpp, wire: &Netns, pod: &Netns, me: u8, peer: u8) {
    let (k_out, k_in) = if me == 1 {
        (KEY_AB, KEY_BA)
    } else {
        (KEY_BA, KEY_AB)
    };
    let (spi_out, spi_in) = if me == 1 {
        (0x1000, 0x2000)
    } else {
        (0x2000, 0x1000)
    };
    let up = r.ctl(&format!(
        "create tap host-ns {} host-if-name up{me}",
        wire.0
    ));
    assert_eq!(up.trim(), "tap0", "{up}");
    let p = r.ctl(&format!("create tap host-ns {} host-if-name eth0", pod.0));
    assert_eq!(p.trim(), "tap1", "{p}");
    for cmd in [
        format!("set interface ip address tap0 198.18.{me}.1/24"),
        format!("set interface ip address tap1 198.19.{me}.1/24"),
        "set interface state tap0 up".into(),
        "set interface state tap1 up".into(),
    ] {
        ok(r.ctl(&cmd));
    }
    let t = r.ctl(&format!(
        "create ipip tunnel src 198.18.{me}.1 dst 198.18.{peer}.1"
    ));
    assert_eq!(t.trim(), "ipip0", "{t}");
    for cmd in [
        format!("set interface ip address ipip0 198.19.255.{me}/32"),
        "set interface state ipip0 up".into(),
        format!("ip route add 198.18.{peer}.0/24 via 198.18.{me}.2 tap0"),
        format!("ip route add 198.19.{peer}.0/24 via ipip0"),
        format!("ipsec sa add 10 spi {spi_out} esp crypto-alg aes-gcm-256 crypto-key {k_out} salt 0x{me}{me} use-esn use-anti-replay"),
        format!("ipsec sa add 20 spi {spi_in} esp crypto-alg aes-gcm-256 crypto-key {k_in} salt 0x{peer}{peer} use-esn use-anti-replay inbound"),
        "ipsec tunnel protect ipip0 sa-in 20 sa-out 10".into(),
    ] {
        ok(r.ctl(&cmd));
    }
    pod.ip("link set lo up");
    pod.ip(&format!("addr add 198.19.{me}.2/24 dev eth0"));
    pod.ip("link set eth0 up");
    pod.ip(&format!("route add default via 198.19.{me}.1"));
    wire.ip(&format!("addr add 198.18.{me}.2/24 dev up{me}"));
    wire.ip(&format!("link set up{me} up"));
}

fn ping(pod: &Netns, dst: &str, n: &str) -> (bool, String) {
    let out = pod.exec(&["ping", "-c", n, "-i", "0.2", "-W", "2", dst]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    (
        out.status.success() && text.contains(" 0% packet loss"),
        text,
    )
}

#[test]
fn pods_ping_across_esp_protected_ipip_between_two_rvpps() {
    if !skip::need_root("for taps in namespaces of the test's own") {
        return;
    }
    let (wire, pa, pb) = (Netns::new("espw"), Netns::new("espa"), Netns::new("espb"));
    let conf = "buffers { buffers-per-numa 8192 }";
    let (ra, rb) = (Rvpp::start("esp-a", conf), Rvpp::start("esp-b", conf));
    node(&ra, &wire, &pa, 1, 2);
    node(&rb, &wire, &pb, 2, 1);
    wire.ip("link set lo up");
    let f = wire.exec(&["sysctl", "-w", "net.ipv4.ip_forward=1"]);
    assert!(f.status.success(), "{}", String::from_utf8_lossy(&f.stderr));

    // The first packets may wait on ARP at three hops.
    let _ = ping(&pa, "198.19.2.2", "2");
    let (good, text) = ping(&pa, "198.19.2.2", "5");
    let (ea, eb) = (ra.ctl("show errors"), rb.ctl("show errors"));
    assert!(
        good,
        "ping across ESP failed:\n{text}\nA:\n{ea}\nB:\n{eb}\nA sa:\n{}",
        ra.ctl("show ipsec sa")
    );
    for (name, e) in [("A", &ea), ("B", &eb)] {
        assert!(
            error_count(e, "esp encrypt: packets sealed") >= 5,
            "{name}: {e}"
        );
        assert!(
            error_count(e, "esp decrypt: packets opened") >= 5,
            "{name}: {e}"
        );
    }
    let sa = ra.ctl("show ipsec sa 10");
    assert!(sa.contains("aes-gcm-256") && sa.contains("esn"), "{sa}");
    assert!(ra.ctl("show ipsec protect").contains("ipip0"));
    assert!(ra
        .ctl("show ipsec tunnel")
        .contains("198.18.1.1 -> 198.18.2.1"));
    // An SA in use is not deleted.
    assert!(ra.ctl("ipsec sa del 10").contains("protects"));

    // B now expects A's packets under a key A does not have: each is an integrity failure.
    ok(rb.ctl(&format!(
        "ipsec sa add 21 spi 0x1001 esp crypto-alg aes-gcm-256 crypto-key {KEY_BA} salt 0x11 inbound"
    )));
    ok(rb.ctl("ipsec tunnel protect ipip0 sa-in 21 sa-out 10"));
    ok(ra.ctl(&format!(
        "ipsec sa add 11 spi 0x1001 esp crypto-alg aes-gcm-256 crypto-key {KEY_AB} salt 0x11"
    )));
    ok(ra.ctl("ipsec tunnel protect ipip0 sa-in 20 sa-out 11"));
    let (good, text) = ping(&pa, "198.19.2.2", "2");
    assert!(!good, "a reply through a wrong key: {text}");
    let eb = rb.ctl("show errors");
    assert!(
        error_count(&eb, "esp decrypt: integrity check failed") >= 2,
        "{eb}"
    );
    drop((ra, rb));
}
