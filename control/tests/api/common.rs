//! The api_* tests' layer over the shared harness (`tests/common`): rvpp serving the binary
//! API and the stats segment, the .api.json files vpp_papi loads, and python helpers.
#![allow(dead_code)]

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "../common/api_client.rs"]
pub mod client;
#[path = "../common/mod.rs"]
pub mod harness;
#[path = "../../../test-support/skip.rs"]
pub mod skip;

/// A running rvpp with its API socket (`api`) and the API JSON directory (`apidir`); the rest
/// (process, directory, CLI socket, clean-up) is the shared harness's.
pub struct Rvpp {
    rvpp: harness::Rvpp,
    pub api: PathBuf,
    pub apidir: PathBuf,
}

impl Deref for Rvpp {
    type Target = harness::Rvpp;
    fn deref(&self) -> &harness::Rvpp {
        &self.rvpp
    }
}

impl DerefMut for Rvpp {
    fn deref_mut(&mut self) -> &mut harness::Rvpp {
        &mut self.rvpp
    }
}

impl Rvpp {
    /// Start rvpp; `cpu` is the body of the cpu stanza (e.g. "" or "workers 2").
    pub fn start(tag: &str, cpu: &str) -> Rvpp {
        Self::start_with_sections(tag, cpu, "")
    }

    /// As [`Rvpp::start`], with more startup.conf sections (e.g. "cnat { session-max 64 }").
    pub fn start_with_sections(tag: &str, cpu: &str, sections: &str) -> Rvpp {
        let conf = format!(
            "socksvr {{ socket-name {{dir}}/api.sock }}\nstatseg {{ socket-name {{dir}}/stats.sock }}\nbuffers {{ buffers-per-numa 16384 }}\ncpu {{ {cpu} }}\n{sections}\n"
        );
        let rvpp = harness::Rvpp::start_with(
            &format!("api-{tag}"),
            harness::Opts {
                conf: &conf,
                log_file: true,
                wait_for: &["api.sock"],
                ..Default::default()
            },
        );
        let apidir = rvpp.path("api-json");
        rvpp_vppapi::apijson::write_api_json_dir(&apidir).unwrap();
        Rvpp {
            api: rvpp.path("api.sock"),
            apidir,
            rvpp,
        }
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Run `control/tests/api/<script>` with args; None when vpp_papi is missing (exit 77),
    /// after [`skip::skip`] (a failure under CI).
    pub fn python(&self, script: &str, args: &[&str]) -> Option<Output> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/api")
            .join(script);
        let out = Command::new("python3")
            .arg(path)
            .arg(&self.apidir)
            .arg(&self.api)
            .args(args)
            .output()
            .expect("python3");
        if out.status.code() == Some(77) {
            skip::skip(&format!(
                "vpp_papi not importable: {}",
                String::from_utf8_lossy(&out.stdout).trim()
            ));
            return None;
        }
        Some(out)
    }

    pub fn check_python(&mut self, script: &str, args: &[&str]) -> Option<String> {
        let out = self.python(script, args)?;
        let so = String::from_utf8_lossy(&out.stdout).into_owned();
        let se = String::from_utf8_lossy(&out.stderr).into_owned();
        println!("{so}");
        assert!(
            out.status.success(),
            "{script} failed ({}):\nstdout:\n{so}\nstderr:\n{se}\nrvpp log:\n{}",
            out.status,
            self.log()
        );
        assert!(self.alive(), "rvpp died: {}", self.log());
        Some(so)
    }
}

/// One of two nodes joined through `mid` (`n` is 1 or 2): rvpp tagged `tag<n>` with its uplink
/// tap0 in `mid` as `up<n>` (198.18.0.n/24) and its pod tap1 into `pod` (pod 198.19.n-1.2,
/// rvpp 198.19.n-1.1/24, the pod's default route).
pub fn pod_node(tag: &str, n: u8, mid: &harness::Netns, pod: &harness::Netns) -> Rvpp {
    let r = Rvpp::start(&format!("{tag}{n}"), "");
    let up = r.ctl(&format!("create tap host-ns {} host-if-name up{n}", mid.0));
    assert_eq!(up.trim(), "tap0", "{up}");
    let tp = r.ctl(&format!("create tap host-ns {} host-if-name eth0", pod.0));
    assert_eq!(tp.trim(), "tap1", "{tp}");
    harness::quiet(r.ctl(&format!("set interface ip address tap0 198.18.0.{n}/24")));
    harness::quiet(r.ctl(&format!(
        "set interface ip address tap1 198.19.{}.1/24",
        n - 1
    )));
    harness::quiet(r.ctl("set interface state tap0 up"));
    harness::quiet(r.ctl("set interface state tap1 up"));
    pod.ip("link set lo up");
    pod.ip(&format!("addr add 198.19.{}.2/24 dev eth0", n - 1));
    pod.ip("link set eth0 up");
    pod.ip(&format!("route add default via 198.19.{}.1", n - 1));
    r
}

/// Two [`pod_node`]s tagged `tag1`, `tag2`, their uplinks bridged in `mid`. Fields drop in
/// order: the daemons before the namespaces their taps are in.
pub struct TwoNodes {
    pub a: Rvpp,
    pub b: Rvpp,
    pub pod_a: harness::Netns,
    pub pod_b: harness::Netns,
    pub mid: harness::Netns,
}

/// [`TwoNodes`]; `ns` names the namespaces (`rvpp-<ns>m|a|b-<pid>`).
pub fn two_pod_nodes(tag: &str, ns: &str) -> TwoNodes {
    let pid = std::process::id();
    let mid = harness::Netns::new(format!("rvpp-{ns}m-{pid}"));
    let pod_a = harness::Netns::new(format!("rvpp-{ns}a-{pid}"));
    let pod_b = harness::Netns::new(format!("rvpp-{ns}b-{pid}"));
    let a = pod_node(tag, 1, &mid, &pod_a);
    let b = pod_node(tag, 2, &mid, &pod_b);
    bridge_uplinks(&mid);
    TwoNodes {
        a,
        b,
        pod_a,
        pod_b,
        mid,
    }
}

/// `pod_a` pings pod B (198.19.1.2) 5 times across the ESP tunnel between nodes `a` and `b`:
/// all must pass, sealed and opened by both; returns both nodes' `show errors`.
pub fn ping_over_esp(pod_a: &harness::Netns, a: &Rvpp, b: &Rvpp) -> [String; 2] {
    // The first packet to each pod resolves its neighbour (consumed by ip4-arp, as VPP's).
    let _ = harness::ping(pod_a, "198.19.1.2", "1");
    let (good, text) = harness::ping(pod_a, "198.19.1.2", "5");
    let errors = [a.ctl("show errors"), b.ctl("show errors")];
    let [ea, eb] = &errors;
    assert!(
        good,
        "ping across IKEv2 ESP failed:\n{text}\nA:\n{ea}\nB:\n{eb}"
    );
    for (name, e) in [("A", ea), ("B", eb)] {
        for reason in ["esp encrypt: packets sealed", "esp decrypt: packets opened"] {
            assert!(harness::counted(e, reason) >= 5, "{name}: {reason}: {e}");
        }
    }
    errors
}

/// Bridge the two nodes' uplinks `up1` and `up2` in `mid`.
pub fn bridge_uplinks(mid: &harness::Netns) {
    mid.ip("link add br0 type bridge");
    for l in ["up1", "up2"] {
        mid.ip(&format!("link set {l} master br0"));
        mid.ip(&format!("link set {l} up"));
    }
    mid.ip("link set br0 up");
}

/// Deletes the root-namespace end of the uplink veth (the peer end goes with its namespace).
pub struct LinkGuard(pub String);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).output();
    }
}

/// Run `ip` in rvpp's namespace; a failure fails the test with ip's stderr.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
