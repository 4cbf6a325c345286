//! A network namespace of a test's own: a unique name, deleted on drop, also when the test
//! fails. Include with `#[path = "../../test-support/netns.rs"] mod netns;`.
#![allow(dead_code)]

use std::process::{Child, Command, Output, Stdio};

pub struct Netns(pub String);

impl Netns {
    /// `rvpp-<tag>-<pid>`, made afresh (a stale one of that name is removed), loopback up.
    pub fn new(tag: &str) -> Netns {
        let ns = Netns(format!("rvpp-{tag}-{}", std::process::id()));
        let _ = Command::new("ip")
            .args(["netns", "del", &ns.0])
            .stderr(Stdio::null())
            .status();
        let st = Command::new("ip").args(["netns", "add", &ns.0]).status();
        assert!(st.is_ok_and(|s| s.success()), "ip netns add {}", ns.0);
        ns.ip("link set lo up");
        ns
    }

    pub fn name(&self) -> &str {
        &self.0
    }

    /// `ip -n <ns> <args>`; panics with ip's message when it fails.
    pub fn ip(&self, args: &str) {
        let out = self.try_ip(args);
        assert!(
            out.status.success(),
            "ip -n {} {args}: {}",
            self.0,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `ip -n <ns> <args>`, whatever it answers.
    pub fn try_ip(&self, args: &str) -> Output {
        let mut full = vec!["-n", self.0.as_str()];
        full.extend(args.split_whitespace());
        Command::new("ip").args(&full).output().unwrap()
    }

    /// Run `cmd` inside the namespace and wait for it.
    pub fn exec(&self, cmd: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(cmd)
            .output()
            .unwrap()
    }

    /// Start `cmd` inside the namespace (output discarded).
    pub fn spawn(&self, cmd: &[&str]) -> Child {
        Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(cmd)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}
