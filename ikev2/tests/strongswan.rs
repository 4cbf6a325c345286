//! Interop with strongSwan 5.9 (charon with kernel-libipsec, configured through swanctl) in
//! network namespaces: rvpp's engine (the ikev2-peer binary) as initiator and as responder, with
//! calico's proposals and strongSwan's defaults; child keys compared with the ones charon logs;
//! rekeys, deletes, a wrong PSK and an IKE_SA_INIT flood answered with cookies.
//!
//! kernel-libipsec only does ESP in UDP, so charon runs with `encap = yes` (it fakes a NAT and
//! both sides move IKE to port 4500).

#[path = "../../test-support/charon.rs"]
mod charon;
#[path = "../../test-support/skip.rs"]
mod skip;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use charon::CHARON;
const RVPP: &str = "198.18.0.1";
const SWAN: &str = "198.18.0.2";
/// One lab at a time: charon is heavy, and the machine is shared.
static SERIAL: Mutex<()> = Mutex::new(());

fn sh(args: &[&str]) -> std::process::Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn ok(args: &[&str]) {
    let o = sh(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

struct Conn<'a> {
    ike: Option<&'a str>,
    esp: Option<&'a str>,
    psk: &'a str,
    /// charon's dpd_delay ("0s": none).
    dpd: &'a str,
}

const CALICO: Conn = Conn {
    ike: Some("aes256-sha1-modp2048"),
    esp: Some("aes256gcm16"),
    psk: "s3cret",
    dpd: "0s",
};
const DEFAULTS: Conn = Conn {
    ike: None,
    esp: None,
    psk: "s3cret",
    dpd: "0s",
};

struct Peer {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Peer {
    /// The next line starting with `prefix` (earlier lines are kept in `seen`).
    fn wait(&mut self, prefix: &str, secs: u64) -> String {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.starts_with(prefix) {
                        return l;
                    }
                }
                Err(_) => panic!(
                    "no {prefix:?} from ikev2-peer within {secs} s; saw {:#?}",
                    self.seen
                ),
            }
        }
    }
}

struct Lab {
    ns_r: String,
    ns_s: String,
    dir: PathBuf,
    charon: Option<Child>,
    peer: Option<Peer>,
}

impl Lab {
    fn new(name: &str, conn: &Conn) -> Option<Lab> {
        if !skip::need_root("to create network namespaces") {
            return None;
        }
        if !Path::new(CHARON).exists() {
            skip::skip(
                "strongSwan's charon is not installed (scripts/install-deps.sh installs it)",
            );
            return None;
        }
        skip::need_tool("swanctl")?;
        let tag = format!("{name}{}", std::process::id() % 100000);
        let dir = std::env::temp_dir().join(format!("rvpp-ikev2-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("run")).unwrap();
        let lab = Lab {
            ns_r: format!("ikr-{tag}"),
            ns_s: format!("iks-{tag}"),
            dir,
            charon: None,
            peer: None,
        };
        let (vr, vs) = (format!("ivr{tag}"), format!("ivs{tag}"));
        ok(&["ip", "netns", "add", &lab.ns_r]);
        ok(&["ip", "netns", "add", &lab.ns_s]);
        ok(&[
            "ip", "link", "add", &vr, "netns", &lab.ns_r, "type", "veth", "peer", "name", &vs,
            "netns", &lab.ns_s,
        ]);
        for (ns, dev, a) in [(&lab.ns_r, &vr, RVPP), (&lab.ns_s, &vs, SWAN)] {
            ok(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{a}/24"),
                "dev",
                dev,
            ]);
            ok(&["ip", "-n", ns, "link", "set", dev, "up"]);
            ok(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        let mut lab = lab;
        lab.start_charon(conn);
        Some(lab)
    }

    /// A lab with ikev2-peer started with `args` (split at spaces).
    fn start(name: &str, conn: &Conn, args: &str) -> Option<Lab> {
        let mut lab = Lab::new(name, conn)?;
        lab.start_peer(&args.split_whitespace().collect::<Vec<_>>());
        Some(lab)
    }

    fn vici(&self) -> String {
        charon::vici(&self.dir)
    }

    /// Kills charon (as a crash would: no Delete sent) and starts a fresh one.
    fn restart_charon(&mut self, conn: &Conn) {
        if let Some(mut c) = self.charon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(self.dir.join("charon.vici"));
        let _ = std::fs::remove_file(self.dir.join("run/charon.pid"));
        let _ = std::fs::remove_file(self.dir.join("charon.log"));
        self.start_charon(conn);
    }

    fn start_charon(&mut self, conn: &Conn) {
        charon::write_conf(&self.dir, &["ike = 2", "chd = 4"]);
        self.write_swanctl(conn);
        let child = charon::spawn(&self.ns_s, &self.dir);
        self.charon = Some(child);
        let sock = self.dir.join("charon.vici");
        let end = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            assert!(
                Instant::now() < end,
                "charon did not open its vici socket: {}",
                self.file("charon.out")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let o = self.swanctl(&[
            "--load-all",
            "--file",
            &self.dir.join("swanctl.conf").display().to_string(),
        ]);
        assert!(o.contains("loaded connection 'rvpp'"), "{o}");
    }

    fn write_swanctl(&self, c: &Conn) {
        let ike = c
            .ike
            .map(|p| format!("    proposals = {p}\n"))
            .unwrap_or_default();
        let esp = c
            .esp
            .map(|p| format!("        esp_proposals = {p}\n"))
            .unwrap_or_default();
        let conf = format!(
            "connections {{\n  rvpp {{\n    local_addrs = {SWAN}\n    remote_addrs = {RVPP}\n    version = 2\n    \
             encap = yes\n    dpd_delay = {}\n{ike}    local {{\n      auth = psk\n      id = {SWAN}\n    }}\n    remote {{\n      \
             auth = psk\n      id = {RVPP}\n    }}\n    children {{\n      rvpp {{\n        local_ts = 0.0.0.0/0\n        \
             remote_ts = 0.0.0.0/0\n{esp}      }}\n      narrow {{\n        local_ts = 198.18.20.0/24\n        \
             remote_ts = 198.18.10.0/24\n{esp}      }}\n    }}\n  }}\n}}\nsecrets {{\n  ike-1 {{\n    id-1 = {RVPP}\n    \
             id-2 = {SWAN}\n    secret = \"{}\"\n  }}\n}}\n",
            c.dpd, c.psk
        );
        std::fs::write(self.dir.join("swanctl.conf"), conf).unwrap();
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    fn swanctl(&self, args: &[&str]) -> String {
        let mut a = vec!["netns", "exec", &self.ns_s, "swanctl"];
        a.push(args[0]);
        let vici = self.vici();
        a.extend(["--uri", &vici]);
        a.extend(&args[1..]);
        let o = Command::new("ip")
            .args(&a)
            .env("STRONGSWAN_CONF", self.dir.join("strongswan.conf"))
            .output()
            .expect("swanctl");
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
    }

    fn start_peer(&mut self, args: &[&str]) {
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns_r,
                env!("CARGO_BIN_EXE_ikev2-peer"),
                "--local",
                RVPP,
                "--remote",
                SWAN,
            ])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ikev2-peer");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        self.peer = Some(Peer {
            child,
            lines: rx,
            seen: Vec::new(),
        });
        // Its sockets are bound once it says so.
        self.peer().wait("READY", 10);
    }

    fn peer(&mut self) -> &mut Peer {
        self.peer.as_mut().unwrap()
    }

    /// Pairs (initiator's key, responder's key) charon derived for each child, in order.
    fn charon_child_keys(&self, what: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        let log = self.file("charon.log");
        let lines: Vec<&str> = log.lines().collect();
        let dump = |i: usize| -> Vec<u8> {
            let mut v = Vec::new();
            for l in &lines[i + 1..] {
                // "09[CHD]   16: E6 FF ...  ascii"
                let Some((_, rest)) = l.split_once("[CHD]") else {
                    break;
                };
                let Some((off, bytes)) = rest.split_once(": ") else {
                    break;
                };
                if off.trim().parse::<usize>().is_err() {
                    break;
                }
                let hex = bytes.split("  ").next().unwrap_or("");
                v.extend(
                    hex.split(' ')
                        .filter(|h| h.len() == 2)
                        .map(|h| u8::from_str_radix(h, 16).unwrap()),
                );
            }
            v
        };
        let find = |label: &str| -> Vec<Vec<u8>> {
            lines
                .iter()
                .enumerate()
                .filter(|(_, l)| l.contains(&format!("{what} {label} key =>")))
                .map(|(i, _)| dump(i))
                .collect()
        };
        find("initiator")
            .into_iter()
            .zip(find("responder"))
            .collect()
    }

    /// The child in a CHILD_UP line has the keys charon derived, in the right directions.
    fn check_keys(&self, up: &str) {
        let f = fields(up);
        let enc = (
            [unhex(&f["key_out"]), unhex(&f["salt_out"])].concat(),
            [unhex(&f["key_in"]), unhex(&f["salt_in"])].concat(),
        );
        let integ = (unhex(&f["integ_out"]), unhex(&f["integ_in"]));
        // charon may still be writing them (it logs when it installs, after our message).
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let found = |what: &str, (o, i): &(Vec<u8>, Vec<u8>)| {
                o.is_empty()
                    || self
                        .charon_child_keys(what)
                        .iter()
                        .any(|(a, b)| (a, b) == (o, i) || (a, b) == (i, o))
            };
            if found("encryption", &enc) && found("integrity", &integ) {
                return;
            }
            assert!(
                Instant::now() < end,
                "child {up} not among charon's keys ({} pairs)",
                self.charon_child_keys("encryption").len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// charon's state of this child in `swanctl --list-sas` (INSTALLED, DELETED...), if listed.
    fn child_state(&self, up: &str) -> Option<String> {
        let f = fields(up);
        let sas = self.swanctl(&["--list-sas"]);
        assert!(sas.contains("ESTABLISHED"), "{sas}");
        // One block per child; charon's inbound SPI is our outbound one.
        let block = sas
            .split("  rvpp: #")
            .find(|b| b.contains(&format!("in  {}", f["spi_out"])))?;
        assert!(block.contains(&format!("out {}", f["spi_in"])), "{sas}");
        block.split(", ").nth(2).map(str::to_string)
    }

    /// The next CHILD_UP, installed in charon with the same keys.
    fn up_checked(&mut self, secs: u64) -> String {
        let up = self.peer().wait("CHILD_UP", secs);
        self.check_installed(&up);
        self.check_keys(&up);
        up
    }

    fn charon_initiates(&self) {
        let o = self.swanctl(&["--initiate", "--child", "rvpp", "--timeout", "15"]);
        assert!(o.contains("initiate completed successfully"), "{o}");
    }

    fn check_installed(&self, up: &str) {
        assert_eq!(self.child_state(up).as_deref(), Some("INSTALLED"), "{up}");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut p) = self.peer.take() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        if let Some(mut c) = self.charon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = sh(&["ip", "netns", "del", &self.ns_r]);
        let _ = sh(&["ip", "netns", "del", &self.ns_s]);
        if std::thread::panicking() {
            let _ = std::io::stderr()
                .write_all(format!("charon log kept in {}\n", self.dir.display()).as_bytes());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn fields(line: &str) -> std::collections::HashMap<String, String> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// charon sent ("generating") or got ("parsed") a child rekey with a KE payload.
fn pfs_rekey(log: &str, how: &str) -> bool {
    log.lines().any(|l| {
        l.contains(&format!("{how} CREATE_CHILD_SA request"))
            && l.ends_with("[ N(REKEY_SA) SA No KE TSi TSr ]")
    })
}

/// A charon log line for an IKE message without payloads (DPD).
fn empty_message(log: &str, what: &str) -> bool {
    log.lines().any(|l| l.contains(what) && l.ends_with("[ ]"))
}

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn rvpp_initiates_with_calico_proposals_rekeys_and_deletes() {
    let _g = lock();
    let Some(mut lab) = Lab::start("ci",
        &CALICO, "--psk s3cret --initiate --actions wait-up,sleep:1,rekey-child,sleep:2,rekey-ike,sleep:2,delete-ike --run-for 2") else {
        return;
    };
    let first = lab.up_checked(20);
    assert!(first.contains("encr=AesGcm16 { bits: 256 }"), "{first}");
    let sas = lab.swanctl(&["--list-sas"]);
    assert!(
        sas.contains("AES_CBC-256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_2048"),
        "{sas}"
    );
    assert!(
        sas.contains("TUNNEL-in-UDP") && sas.contains("ESP:AES_GCM_16-256"),
        "{sas}"
    );
    // Child rekey: a new child, then the old one deleted.
    let second = lab.peer().wait("CHILD_UP", 10);
    lab.check_keys(&second);
    let down = lab.peer().wait("CHILD_DOWN", 10);
    assert_eq!(fields(&down)["spi_in"], fields(&first)["spi_in"]);
    std::thread::sleep(Duration::from_millis(300));
    lab.check_installed(&second);
    // charon keeps a rekeyed child's inbound SA a few seconds, as DELETED.
    assert_eq!(lab.child_state(&first).as_deref(), Some("DELETED"));
    // IKE rekey: the new IKE SA carries the child; the old one is deleted.
    let ike2 = lab.peer().wait("IKE_UP", 10);
    lab.peer().wait("IKE_DOWN Rekeyed", 10);
    std::thread::sleep(Duration::from_millis(300));
    let sas = lab.swanctl(&["--list-sas"]);
    assert!(
        sas.contains(&format!("{}_i", fields(&ike2)["spi_i"])),
        "{ike2} {sas}"
    );
    lab.check_installed(&second);
    // Delete: everything goes on both sides.
    let down = lab.peer().wait("CHILD_DOWN", 10);
    assert_eq!(fields(&down)["spi_in"], fields(&second)["spi_in"]);
    lab.peer().wait("IKE_DOWN Deleted", 5);
    std::thread::sleep(Duration::from_millis(300));
    let sas = lab.swanctl(&["--list-sas"]);
    assert!(!sas.contains("ESTABLISHED"), "{sas}");
    let counters = lab.peer().wait("COUNTERS", 10);
    assert!(
        counters.contains("integrity_failed: 0") && counters.contains("malformed: 0"),
        "{counters}"
    );
}

#[test]
fn rvpp_responds_with_calico_proposals_to_charon_rekeys_dpd_and_delete() {
    let _g = lock();
    let conn = Conn {
        dpd: "1s",
        ..CALICO
    };
    let Some(mut lab) = Lab::start("cr", &conn, "--psk s3cret --run-for 30") else {
        return;
    };
    lab.charon_initiates();
    let first = lab.up_checked(5);
    // charon's DPD (an empty INFORMATIONAL after 1 s without traffic) is answered.
    std::thread::sleep(Duration::from_millis(2500));
    let log = lab.file("charon.log");
    assert!(
        empty_message(&log, "generating INFORMATIONAL request")
            && empty_message(&log, "parsed INFORMATIONAL response"),
        "no DPD from charon answered"
    );
    let o = lab.swanctl(&["--rekey", "--child", "rvpp"]);
    assert!(o.contains("rekey completed successfully"), "{o}");
    let second = lab.peer().wait("CHILD_UP", 10);
    lab.check_keys(&second);
    let down = lab.peer().wait("CHILD_DOWN", 10);
    assert_eq!(fields(&down)["spi_in"], fields(&first)["spi_in"]);
    let o = lab.swanctl(&["--rekey", "--ike", "rvpp"]);
    assert!(o.contains("rekey completed successfully"), "{o}");
    lab.peer().wait("IKE_UP", 10);
    std::thread::sleep(Duration::from_millis(500));
    lab.check_installed(&second);
    let o = lab.swanctl(&["--terminate", "--ike", "rvpp", "--timeout", "10"]);
    assert!(o.contains("terminate completed successfully"), "{o}");
    let down = lab.peer().wait("CHILD_DOWN", 10);
    assert_eq!(fields(&down)["spi_in"], fields(&second)["spi_in"]);
    lab.peer().wait("IKE_DOWN PeerDeleted", 5);
}

#[test]
fn strongswan_default_proposals_both_roles() {
    let _g = lock();
    let Some(mut lab) = Lab::start(
        "di",
        &DEFAULTS,
        "--psk s3cret --suites default --initiate --run-for 30",
    ) else {
        return;
    };
    // strongSwan's defaults: X25519 and AES-GCM-128 ESP, not calico's transforms.
    let up = lab.up_checked(20);
    assert!(up.contains("encr=AesGcm16 { bits: 128 }"), "{up}");
    let sas = lab.swanctl(&["--list-sas"]);
    assert!(sas.contains("CURVE_25519"), "{sas}");
    drop(lab);
    let Some(mut lab) = Lab::start(
        "dr",
        &DEFAULTS,
        "--psk s3cret --suites default --run-for 30",
    ) else {
        return;
    };
    lab.charon_initiates();
    let up = lab.up_checked(5);
    assert!(up.contains("encr=AesGcm16 { bits: 128 }"), "{up}");
    let sas = lab.swanctl(&["--list-sas"]);
    assert!(
        sas.contains("AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519"),
        "{sas}"
    );
}

#[test]
fn wrong_psk_is_authentication_failed_on_both_sides() {
    let _g = lock();
    let Some(mut lab) = Lab::start("wi", &CALICO, "--psk not-the-secret --initiate --run-for 3")
    else {
        return;
    };
    lab.peer().wait("IKE_DOWN AuthenticationFailed", 20);
    let log = lab.file("charon.log");
    assert!(
        log.contains("MAC mismatched"),
        "charon did not refuse our AUTH"
    );
    assert!(lab.peer().wait("COUNTERS", 10).contains("auth_failed: 1"));
    assert!(!lab.swanctl(&["--list-sas"]).contains("ESTABLISHED"));
    drop(lab);
    // charon initiates with the wrong key: we refuse it.
    let Some(mut lab) = Lab::start("wr", &CALICO, "--psk not-the-secret --run-for 8") else {
        return;
    };
    std::thread::sleep(Duration::from_millis(300));
    let o = lab.swanctl(&["--initiate", "--child", "rvpp", "--timeout", "10"]);
    assert!(!o.contains("completed successfully"), "{o}");
    assert!(
        lab.file("charon.log")
            .contains("received AUTHENTICATION_FAILED notify error"),
        "{o}"
    );
    let c = lab.peer().wait("COUNTERS", 15);
    assert!(c.contains("auth_failed: 1"), "{c}");
    assert!(!lab.peer().seen.iter().any(|l| l.starts_with("CHILD_UP")));
}

#[test]
fn ike_sa_init_flood_gets_cookies_and_charon_still_connects() {
    let _g = lock();
    let Some(mut lab) = Lab::start(
        "fl",
        &CALICO,
        "--psk s3cret --cookie-threshold 5 --run-for 12",
    ) else {
        return;
    };
    let flood = sh(&[
        "ip",
        "netns",
        "exec",
        &lab.ns_s,
        env!("CARGO_BIN_EXE_ikev2-peer"),
        "--flood",
        "300",
        "--local",
        SWAN,
        "--remote",
        RVPP,
    ]);
    assert!(String::from_utf8_lossy(&flood.stdout).contains("FLOOD sent 300"));
    std::thread::sleep(Duration::from_millis(500));
    // Five half-open SAs hold the threshold: charon has to answer a cookie.
    lab.charon_initiates();
    assert!(
        lab.file("charon.log").contains("N(COOKIE)"),
        "no cookie seen by charon"
    );
    let up = lab.peer().wait("CHILD_UP", 5);
    lab.check_keys(&up);
    let c = lab.peer().wait("COUNTERS", 20);
    let f: std::collections::HashMap<String, u64> = c
        .trim_start_matches("COUNTERS Counters {")
        .trim_end_matches('}')
        .split(',')
        .filter_map(|kv| kv.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().parse().unwrap_or(0)))
        .collect();
    // 295 of the flood plus charon's first try.
    assert!(f["cookies_sent"] >= 296, "{c}");
    assert_eq!(f["half_open_full"], 0, "{c}");
}

#[test]
fn ecp256_invalid_ke_retry_cbc_esp_and_gcm_ike_with_pfs_rekey() {
    let _g = lock();
    // charon takes only ECP-256: our first KE (X25519) gets INVALID_KE_PAYLOAD and we retry;
    // ESP with AES-CBC, HMAC-SHA-256 (integrity keys compared too). Not ESN: kernel-libipsec
    // refuses to install ESN SAs ("ESN not supported").
    let conn = Conn {
        ike: Some("aes128-sha256-ecp256"),
        esp: Some("aes128-sha256"),
        psk: "s3cret",
        dpd: "0s",
    };
    let Some(mut lab) = Lab::start(
        "ke",
        &conn,
        "--psk s3cret --suites default --initiate --run-for 1",
    ) else {
        return;
    };
    let up = lab.up_checked(20);
    assert!(
        up.contains("integ=Some(HmacSha256_128)") && up.contains("esn=false"),
        "{up}"
    );
    assert!(lab.file("charon.log").contains("N(INVAL_KE)"));
    assert!(lab
        .peer()
        .wait("COUNTERS", 10)
        .contains("invalid_ke_retries: 1"));
    drop(lab);
    // The IKE SA under AES-GCM; charon initiates and rekeys the child with PFS (a KE in
    // CREATE_CHILD_SA, so g^ir goes into the child's KEYMAT).
    let conn = Conn {
        ike: Some("aes128gcm16-prfsha256-ecp256"),
        esp: Some("aes128gcm16-ecp256"),
        psk: "s3cret",
        dpd: "0s",
    };
    let Some(mut lab) = Lab::start("gc", &conn, "--psk s3cret --suites default --run-for 30")
    else {
        return;
    };
    lab.charon_initiates();
    let first = lab.peer().wait("CHILD_UP", 5);
    lab.check_keys(&first);
    let o = lab.swanctl(&["--rekey", "--child", "rvpp"]);
    assert!(o.contains("rekey completed successfully"), "{o}");
    let second = lab.peer().wait("CHILD_UP", 10);
    lab.check_keys(&second);
    assert!(pfs_rekey(&lab.file("charon.log"), "generating"));
    let sas = lab.swanctl(&["--list-sas"]);
    assert!(
        sas.contains("AES_GCM_16-128/PRF_HMAC_SHA2_256/ECP_256"),
        "{sas}"
    );
}

#[test]
fn rvpp_rekeys_with_pfs_and_sends_dpd() {
    let _g = lock();
    let conn = Conn {
        ike: Some("aes128-sha256-ecp256"),
        esp: Some("aes128gcm16-ecp256"),
        psk: "s3cret",
        dpd: "0s",
    };
    let Some(mut lab) = Lab::start(
        "pf",
        &conn,
        "--psk s3cret --suites default --pfs 19 --dpd 1 --initiate --actions wait-up,sleep:1,rekey-child --run-for 4",
    ) else {
        return;
    };
    let first = lab.up_checked(20);
    let second = lab.up_checked(10);
    assert_ne!(fields(&first)["key_in"], fields(&second)["key_in"]);
    lab.peer().wait("CHILD_DOWN", 10);
    let c = lab.peer().wait("COUNTERS", 10);
    assert!(c.contains("integrity_failed: 0"), "{c}");
    let log = lab.file("charon.log");
    assert!(pfs_rekey(&log, "parsed"), "no PFS rekey in charon's log");
    // Our DPD (an empty INFORMATIONAL after 1 s without hearing from charon) is answered.
    assert!(
        empty_message(&log, "parsed INFORMATIONAL request")
            && empty_message(&log, "generating INFORMATIONAL response"),
        "no DPD from rvpp"
    );
}

#[test]
fn a_child_charon_refuses_takes_the_ike_sa_down_with_it() {
    let _g = lock();
    // charon's ESP proposal is not calico's: IKE_AUTH answers NO_PROPOSAL_CHOSEN for the child.
    let conn = Conn {
        esp: Some("aes128gcm16"),
        ..CALICO
    };
    let Some(mut lab) = Lab::start("np", &conn, "--psk s3cret --initiate --run-for 2") else {
        return;
    };
    lab.peer().wait("IKE_UP", 20);
    lab.peer().wait("IKE_DOWN Deleted", 10);
    assert!(lab.file("charon.log").contains("N(NO_PROP)"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(!lab.swanctl(&["--list-sas"]).contains("ESTABLISHED"));
    lab.peer().wait("COUNTERS", 10);
    assert!(!lab.peer().seen.iter().any(|l| l.starts_with("CHILD_UP")));
}

#[test]
fn a_restarted_charon_replaces_our_stale_sas_with_initial_contact() {
    let _g = lock();
    let Some(mut lab) = Lab::start("rs", &CALICO, "--psk s3cret --run-for 30") else {
        return;
    };
    lab.charon_initiates();
    let first = lab.up_checked(5);
    lab.restart_charon(&CALICO);
    lab.charon_initiates();
    let second = lab.up_checked(5);
    assert!(lab.file("charon.log").contains("N(INIT_CONTACT)"));
    // The stale child went down before the new one came up.
    let seen = &lab.peer().seen;
    let down = format!("CHILD_DOWN spi_in={}", fields(&first)["spi_in"]);
    assert!(seen.iter().any(|l| l.starts_with(&down)), "{seen:#?}");
    assert!(seen.iter().any(|l| l == "IKE_DOWN Replaced"), "{seen:#?}");
    assert_ne!(fields(&first)["spi_in"], fields(&second)["spi_in"]);
}

#[test]
fn charon_adds_a_second_narrower_child_and_we_narrow_our_selectors() {
    let _g = lock();
    let Some(mut lab) = Lab::start("ts", &CALICO, "--psk s3cret --run-for 30") else {
        return;
    };
    lab.charon_initiates();
    let first = lab.up_checked(5);
    assert!(
        first.contains("ts_local=0.0.0.0-255.255.255.255 ts_remote=0.0.0.0-255.255.255.255"),
        "{first}"
    );
    // A new child in CREATE_CHILD_SA (no REKEY_SA): our 0.0.0.0/0 narrowed to charon's /24s.
    // charon routes the child's traffic from an address of its local selector.
    ok(&[
        "ip",
        "-n",
        &lab.ns_s,
        "addr",
        "add",
        "198.18.20.1/32",
        "dev",
        "lo",
    ]);
    let o = lab.swanctl(&["--initiate", "--child", "narrow", "--timeout", "15"]);
    assert!(o.contains("initiate completed successfully"), "{o}");
    let second = lab.up_checked(5);
    assert!(
        second.contains("ts_local=198.18.10.0-198.18.10.255 ts_remote=198.18.20.0-198.18.20.255"),
        "{second}"
    );
    lab.check_installed(&first);
    let sas = lab.swanctl(&["--list-sas"]);
    assert!(
        sas.contains("local  198.18.20.0/24") && sas.contains("remote 198.18.10.0/24"),
        "{sas}"
    );
}
