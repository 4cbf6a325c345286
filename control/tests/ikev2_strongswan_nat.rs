//! NAT traversal toward a peer whose ports a NAT remaps: strongSwan's charon (kernel-libipsec)
//! in a namespace behind a router namespace that masquerades it to 198.18.0.2 with source ports
//! 40000-40100, and rvpp (the daemon, configured over vpp_papi as calico does) as the responder
//! on 198.18.0.1. charon's IKE and ESP in UDP reach rvpp's 500/4500 from mapped ports; rvpp must
//! answer IKE to the port the last authenticated message came from and send ESP in UDP to the
//! peer's mapped 4500. Then the router forgets its mappings and maps anew (40200-40300): rvpp
//! learns the new port from charon's next IKE message (DPD) and its child SA follows, with no
//! rekey; rvpp then rekeys the child itself (a request of its own to the new port). And rvpp
//! as the initiator toward charon behind a NAT that forwards its outside 500/4500 to charon:
//! rvpp detects the NAT from charon's payloads and moves to 4500; that once more with rvpp set
//! up by CLI only (VPP's `ikev2 profile` commands) instead of vpp_papi.
//! Checked: the child comes up, pings pass both ways between the inner addresses (pod
//! 198.19.0.2 behind rvpp, 198.19.1.2 on charon's side), and every ESP packet on the router's
//! outside veth is UDP between 198.18.0.1:4500 and 198.18.0.2:<a mapped port>.
//!
//! Addresses: rvpp uplink 198.18.0.1/24, router outside 198.18.0.2/24 and inside 198.18.9.1/24,
//! charon 198.18.9.2/24.

#[path = "../../test-support/charon.rs"]
mod charon;
#[path = "api/common.rs"]
mod common;

use common::harness::{counted, ping, quiet, wait_for, Killed, Netns};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use charon::CHARON;

/// charon in `ns` with its own strongswan.conf, vici socket and /run (a mount namespace).
struct Charon {
    ns: String,
    dir: PathBuf,
    _proc: Killed,
}

impl Charon {
    fn start(ns: &Netns, dir: PathBuf) -> Charon {
        std::fs::create_dir_all(&dir).unwrap();
        charon::write_conf(&dir, &["ike = 2", "net = 2"]);
        // calico's proposals; charon detects the NAT itself (no `encap`), and sends DPD
        // after 2 s without inbound traffic.
        let swanctl = "connections {\n  rvpp {\n    local_addrs = 198.18.9.2\n    remote_addrs = 198.18.0.1\n    \
             version = 2\n    proposals = aes256-sha1-modp2048\n    dpd_delay = 2s\n    local {\n      auth = psk\n      \
             id = 198.18.9.2\n    }\n    remote {\n      auth = psk\n      id = 198.18.0.1\n    }\n    children {\n      \
             rvpp {\n        local_ts = 198.19.1.0/24\n        remote_ts = 198.19.0.0/24\n        \
             esp_proposals = aes256gcm16\n      }\n    }\n  }\n}\nsecrets {\n  ike-1 {\n    id-1 = 198.18.0.1\n    \
             id-2 = 198.18.9.2\n    secret = \"natted-psk\"\n  }\n}\n";
        std::fs::write(dir.join("swanctl.conf"), swanctl).unwrap();
        let proc = charon::spawn(&ns.0, &dir);
        let c = Charon {
            ns: ns.0.clone(),
            dir,
            _proc: Killed(proc),
        };
        wait_for("charon's vici socket", 10, || {
            c.dir.join("charon.vici").exists()
        });
        let o = c.swanctl(&[
            "--load-all",
            "--file",
            &c.dir.join("swanctl.conf").display().to_string(),
        ]);
        assert!(o.contains("loaded connection 'rvpp'"), "{o}");
        c
    }

    fn swanctl(&self, args: &[&str]) -> String {
        charon::swanctl(&self.ns, &self.dir, args).expect("swanctl")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("charon.log")).unwrap_or_default()
    }
}

/// The router forgets every connection it tracks (conntrack flush over ctnetlink), so the next
/// packet from charon gets a new mapping.
fn forget_mappings(router: &Netns) {
    let py = "import socket, struct\n\
              s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)\n\
              s.bind((0, 0))\n\
              s.send(struct.pack('=IHHII', 20, (1 << 8) | 2, 1 | 4, 1, 0) + struct.pack('=BBH', 2, 0, 0))\n\
              r = s.recv(4096)\n\
              assert struct.unpack('=i', r[16:20])[0] == 0, r\n";
    let o = router.exec(&["python3", "-c", py]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Masquerade what leaves the router's outside veth to source ports `lo`-`hi`.
fn masquerade(router: &Netns, lo: u16, hi: u16) {
    router.sh(&format!(
        "nft flush chain ip nat post && nft add rule ip nat post oifname up1 meta l4proto udp masquerade to :{lo}-{hi}"
    ));
}

/// Every ESP-in-UDP packet in the capture as (source, destination) "addr.port".
fn esp_in_udp(pcap: &Path) -> Vec<(String, String)> {
    let o = Command::new("tcpdump")
        .args(["-nn", "-r"])
        .arg(pcap)
        // A non-zero SPI where IKE has its zero marker (keepalives are 1 byte: too short).
        .arg("udp port 4500 and udp[8:4] != 0")
        .output()
        .expect("tcpdump -r");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.get(1) == Some(&"IP"))
                .then(|| (w[2].to_string(), w[4].trim_end_matches(':').to_string()))
        })
        .collect()
}

/// The mapped port of 198.18.0.2 in one packet between it and rvpp's 4500.
fn mapped_port(p: &(String, String)) -> u16 {
    let (rvpp, nat) = if p.0.starts_with("198.18.0.1.") {
        (&p.0, &p.1)
    } else {
        (&p.1, &p.0)
    };
    assert_eq!(rvpp, "198.18.0.1.4500", "{p:?}");
    nat.strip_prefix("198.18.0.2.")
        .unwrap_or_else(|| panic!("{p:?}"))
        .parse()
        .unwrap()
}

/// The destination port of rvpp's outbound NAT-T SA in `show ipsec sa`.
fn sa_dst_port(sa: &str) -> u16 {
    let w: Vec<&str> = sa.split_whitespace().collect();
    let i = w
        .iter()
        .position(|x| *x == "dst-port")
        .unwrap_or_else(|| panic!("{sa}"));
    w[i + 1].parse().unwrap()
}

fn wait_ping(pod: &Netns, dst: &str, secs: u64) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if ping(pod, dst, "1").0 {
            return true;
        }
    }
    false
}

/// The namespaces, rvpp (its uplink in the router, its pod), charon (loaded, idle) and a capture
/// on the router's outside veth. Dropped in this order: charon and the capture first.
struct Lab {
    charon: Charon,
    pcap: PathBuf,
    dump: Option<Killed>,
    r: common::Rvpp,
    router: Netns,
    pod: Netns,
    swan: Netns,
}

/// One lab at a time: charon is heavy, and the machine is shared.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Lab {
    fn new(tag: &str) -> Option<Lab> {
        if !common::skip::need_root("for taps and namespaces of the test's own") {
            return None;
        }
        if !Path::new(CHARON).exists() {
            common::skip::skip("strongSwan's charon is not installed (scripts/install-deps.sh)");
            return None;
        }
        for t in ["swanctl", "nft", "tcpdump"] {
            common::skip::need_tool(t)?;
        }
        let pid = std::process::id();
        let router = Netns::new(format!("rvpp-{tag}r-{pid}"));
        let pod = Netns::new(format!("rvpp-{tag}p-{pid}"));
        let swan = Netns::new(format!("rvpp-{tag}s-{pid}"));
        let r = common::pod_node(tag, 1, &router, &pod);
        router.ip("addr add 198.18.0.2/24 dev up1");
        router.ip("link set up1 up");
        router.ip("link set lo up");
        let inside = format!("{tag}{}", pid % 100000);
        Command::new("ip")
            .args([
                "link", "add", &inside, "netns", &router.0, "type", "veth", "peer", "name", "eth0",
                "netns", &swan.0,
            ])
            .status()
            .unwrap();
        router.ip(&format!("addr add 198.18.9.1/24 dev {inside}"));
        router.ip(&format!("link set {inside} up"));
        swan.ip("addr add 198.18.9.2/24 dev eth0");
        swan.ip("link set eth0 up");
        swan.ip("link set lo up");
        swan.ip("addr add 198.19.1.2/32 dev lo");
        swan.ip("route add default via 198.18.9.1");
        swan.sh("sysctl -qw net.ipv4.conf.all.rp_filter=0");
        router.sh("sysctl -qw net.ipv4.ip_forward=1");
        router.sh(
            "nft add table ip nat && nft add chain ip nat post '{ type nat hook postrouting priority 100; }'",
        );
        masquerade(&router, 40000, 40100);
        let pcap = r.path("outside.pcap");
        let dump = Killed(
            router
                .cmd(&["tcpdump", "-i", "up1", "-nn", "-U", "-s", "200", "-w"])
                .arg(&pcap)
                .arg("udp")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("tcpdump"),
        );
        std::thread::sleep(Duration::from_millis(500));
        let charon = Charon::start(&swan, common::harness::test_dir(&format!("{tag}-charon")));
        Some(Lab {
            charon,
            pcap,
            dump: Some(dump),
            r,
            router,
            pod,
            swan,
        })
    }

    /// Stops the capture; its ESP-in-UDP packets.
    fn esp_on_the_wire(&mut self) -> Vec<(String, String)> {
        // tcpdump writes what it has read (-U); give it the last packets before it is killed.
        std::thread::sleep(Duration::from_millis(700));
        drop(self.dump.take());
        esp_in_udp(&self.pcap)
    }

    /// The child is up on both sides and carries pings both ways.
    fn pings_pass(&self) {
        let sas = self.charon.swanctl(&["--list-sas"]);
        println!("charon:\n{sas}");
        assert!(sas.contains("INSTALLED, TUNNEL-in-UDP"), "{sas}");
        let _ = self.swan.exec(&[
            "ip",
            "route",
            "add",
            "198.19.0.0/24",
            "dev",
            "ipsec0",
            "src",
            "198.19.1.2",
        ]);
        // The first packet toward the pod resolves its neighbour.
        let _ = ping(&self.pod, "198.19.1.2", "1");
        let (good, text) = ping(&self.pod, "198.19.1.2", "5");
        assert!(
            good,
            "pod -> charon's side:\n{text}\n{}",
            self.r.ctl("show errors")
        );
        let (good, text) = ping(&self.swan, "198.19.0.2", "5");
        assert!(
            good,
            "charon's side -> pod:\n{text}\n{}",
            self.r.ctl("show errors")
        );
    }
}

#[test]
fn charon_behind_a_port_remapping_nat_to_rvpp_as_responder() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut lab) = Lab::new("natr") else {
        return;
    };
    let Some(out) = lab.r.check_python("papi_ikev2_nat.py", &["responder"]) else {
        return;
    };
    assert!(out.contains("ALL OK"));
    let o = lab
        .charon
        .swanctl(&["--initiate", "--child", "rvpp", "--timeout", "20"]);
    let r = &lab.r;
    assert!(
        o.contains("initiate completed successfully"),
        "{o}\nrvpp:\n{}\n{}\ncharon log:\n{}",
        r.ctl("show ikev2 sa"),
        r.ctl("show ikev2 counters"),
        lab.charon.log()
    );
    let ike = r.ctl("show ikev2 sa");
    println!("rvpp:\n{ike}");
    assert!(
        ike.contains("established") && ike.contains("responder"),
        "{ike}"
    );
    let port = sa_dst_port(&r.ctl("show ipsec sa"));
    assert!((40000..=40100).contains(&port), "ESP in UDP to {port}");
    lab.pings_pass();
    let e = r.ctl("show errors");
    assert!(counted(&e, "esp encrypt: packets sealed") >= 10, "{e}");
    assert!(counted(&e, "esp decrypt: packets opened") >= 10, "{e}");

    // The router forgets charon and maps it anew: charon's DPD (nothing reaches it any more)
    // comes from the new port, rvpp follows with the same child.
    let spi = r.ctl("show ikev2 sa");
    masquerade(&lab.router, 40200, 40300);
    forget_mappings(&lab.router);
    let followed = wait_ping(&lab.pod, "198.19.1.2", 30);
    let sa = r.ctl("show ipsec sa");
    assert!(
        followed,
        "no ping after the NAT remapped charon:\n{sa}\n{}\n{}\n{}",
        r.ctl("show ikev2 sa"),
        r.ctl("show ikev2 counters"),
        r.ctl("show errors")
    );
    let port2 = sa_dst_port(&sa);
    assert!(
        (40200..=40300).contains(&port2),
        "ESP in UDP to {port2}:\n{sa}"
    );
    let now = r.ctl("show ikev2 sa");
    let children = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.contains("child sa"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        children(&now),
        children(&spi),
        "the same child, no rekey:\n{now}"
    );
    assert!(
        now.contains(&format!("remote 198.18.0.2:{port2} ")),
        "{now}"
    );
    assert!(counted(&r.ctl("show ikev2 counters"), "peer address moved") >= 1);
    let (good, text) = ping(&lab.swan, "198.19.0.2", "3");
    assert!(good, "charon's side -> pod after the remap:\n{text}");

    // rvpp's own request (a child rekey) goes to the new port; charon installs the new child.
    let old = spi
        .split_whitespace()
        .skip_while(|w| *w != "spi-in")
        .nth(1)
        .unwrap()
        .to_string();
    quiet(r.ctl(&format!("ikev2 initiate rekey-child-sa {old}")));
    wait_for("the rekeyed child", 15, || {
        let s = r.ctl("show ikev2 sa");
        s.contains("child sa spi-in") && !s.contains(&old)
    });
    let (good, text) = ping(&lab.pod, "198.19.1.2", "3");
    assert!(
        good,
        "after rvpp's rekey:\n{text}\n{}",
        lab.charon.swanctl(&["--list-sas"])
    );
    assert_eq!(sa_dst_port(&r.ctl("show ipsec sa")), port2);

    let esp = lab.esp_on_the_wire();
    let ports: std::collections::BTreeSet<u16> = esp.iter().map(mapped_port).collect();
    println!(
        "{} ESP-in-UDP packets on the outside, mapped ports {ports:?}",
        esp.len()
    );
    assert!(ports
        .iter()
        .all(|p| (40000..=40100).contains(p) || (40200..=40300).contains(p)));
    for from_rvpp in [true, false] {
        for range in [40000..=40100, 40200..=40300] {
            assert!(
                esp.iter()
                    .any(|p| p.0.starts_with("198.18.0.1.") == from_rvpp
                        && range.contains(&mapped_port(p))),
                "no ESP {} rvpp on {range:?}: {esp:?}",
                if from_rvpp { "from" } else { "to" }
            );
        }
    }
    assert!(lab.r.alive());
}

#[test]
fn rvpp_initiates_to_charon_behind_a_nat_that_forwards_its_ike_ports() {
    initiate_to_charon_behind_a_forwarding_nat("nati", |lab| {
        let out = lab.r.check_python("papi_ikev2_nat.py", &["initiator"])?;
        assert!(out.contains("ALL OK"));
        Some(())
    });
}

/// The same with rvpp's tunnel, route and profile set by CLI only (VPP's `ikev2 profile`
/// syntax), then `ikev2 initiate sa-init` once a second until the child is up.
#[test]
fn rvpp_configured_by_cli_initiates_to_charon_behind_a_nat() {
    initiate_to_charon_behind_a_forwarding_nat("natc", |lab| {
        let p = "pr_198.18.0.1_to_198.18.9.2";
        let any = "ip-range 0.0.0.0 - 255.255.255.255 port-range 0 - 65535 protocol 0";
        for cmd in [
            "create ipip tunnel src 198.18.0.1 dst 198.18.0.2".to_string(),
            "set interface unnumbered ipip0 use tap0".into(),
            "set interface state ipip0 up".into(),
            "ip route add 198.19.1.0/24 via ipip0".into(),
            format!("ikev2 profile add {p}"),
            format!("ikev2 profile set {p} tunnel ipip0"),
            format!("ikev2 profile set {p} auth shared-key-mic string natted-psk"),
            format!("ikev2 profile set {p} id local ip4-addr 198.18.0.1"),
            format!("ikev2 profile set {p} id remote ip4-addr 198.18.9.2"),
            format!("ikev2 profile set {p} traffic-selector local {any}"),
            format!("ikev2 profile set {p} traffic-selector remote {any}"),
            format!("ikev2 profile set {p} responder tap0 198.18.0.2"),
            format!(
                "ikev2 profile set {p} ike-crypto-alg aes-cbc 256 ike-integ-alg sha1-96 ike-dh modp-2048"
            ),
            format!("ikev2 profile set {p} esp-crypto-alg aes-gcm-16 256"),
        ] {
            let out = lab.r.ctl(&cmd);
            assert!(out.trim() == "ipip0" || out.trim().is_empty(), "{cmd}: {out}");
        }
        wait_for("the child SA, initiated by CLI", 20, || {
            quiet(lab.r.ctl(&format!("ikev2 initiate sa-init {p}")));
            std::thread::sleep(Duration::from_millis(500));
            lab.r.ctl("show ikev2 sa").contains("child sa spi-in")
        });
        Some(())
    });
}

/// rvpp, set up by `configure` (None: skipped), initiates toward charon behind a router that
/// forwards its outside 500 and 4500 to charon; NAT-T, pings and the wire are checked.
fn initiate_to_charon_behind_a_forwarding_nat(
    tag: &str,
    configure: impl FnOnce(&mut Lab) -> Option<()>,
) {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut lab) = Lab::new(tag) else {
        return;
    };
    // The router forwards 500 and 4500 of its outside address to charon.
    lab.router.sh(
        "nft add chain ip nat pre '{ type nat hook prerouting priority -100; }' && \
         nft add rule ip nat pre iifname up1 udp dport '{ 500, 4500 }' dnat to 198.18.9.2",
    );
    if configure(&mut lab).is_none() {
        return;
    }
    let ike = lab.r.ctl("show ikev2 sa");
    println!("rvpp:\n{ike}");
    // charon's NAT detection payloads name 198.18.9.2: we see the NAT and move to 4500.
    assert!(
        ike.contains("initiator")
            && ike.contains("remote 198.18.0.2:4500 ")
            && ike.contains("established nat-t"),
        "{ike}"
    );
    assert_eq!(sa_dst_port(&lab.r.ctl("show ipsec sa")), 4500);
    lab.pings_pass();
    let esp = lab.esp_on_the_wire();
    println!("{} ESP-in-UDP packets on the outside", esp.len());
    assert!(esp.len() >= 16, "{esp:?}");
    assert!(esp.iter().all(|p| mapped_port(p) == 4500), "{esp:?}");
    assert!(
        esp.iter().any(|p| p.0 == "198.18.0.1.4500")
            && esp.iter().any(|p| p.1 == "198.18.0.1.4500")
    );
    assert!(lab.r.alive());
}
