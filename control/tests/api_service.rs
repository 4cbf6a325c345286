//! One control service behind the CLI, the binary API and the stats segment: loopbacks, a
//! memif socket and interface, and (as root, in a netns of the test's own) a tap are created
//! through the API and deleted through the CLI, and the reverse; `show interface`,
//! `sw_interface_dump`, `/if/names`, `show memif`, `memif_dump` and
//! `memif_socket_filename_dump` agree at every step; then an address, a table, a route, a
//! neighbour and a punt redirect the same way, the API's dumps against `show interface
//! address`, `show ip table`, `show ip fib`, `show ip neighbors` and `show ip punt redirect`
//! (tests/api/papi_service.py).

#[path = "api/common.rs"]
mod common;

use std::process::Command;

/// A network namespace of the test's own, deleted even when the test fails.
struct Netns(String);

impl Netns {
    fn create() -> Option<Netns> {
        if !common::skip::is_root() {
            common::skip::skip("needs root: papi_service.py leaves out the tap");
            return None;
        }
        let name = format!("rvpp-svc-{}", std::process::id());
        // A namespace left by an earlier run of this pid, if any (usually none: quiet).
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(std::process::Stdio::null())
            .status();
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip netns add {name} failed");
        Some(Netns(name))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn api_and_cli_share_one_registry() {
    let ns = Netns::create();
    let mut r = common::Rvpp::start("svc", "");
    let (cli, stats, dir) = (
        r.cli.display().to_string(),
        r.dir.join("stats.sock").display().to_string(),
        r.dir.display().to_string(),
    );
    let netns = ns.as_ref().map_or("-", |n| n.0.as_str());
    let Some(out) = r.check_python(
        "papi_service.py",
        &[&cli, &stats, env!("CARGO_BIN_EXE_rvppctl"), &dir, netns],
    ) else {
        return;
    };
    assert!(out.contains("ALL OK"));
    drop(r);
    drop(ns);
}
