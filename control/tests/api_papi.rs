//! The real rvpp binary driven by vpp_papi over its binary API socket (see tests/api/papi_api.py).

#[path = "api/common.rs"]
mod common;

#[test]
fn papi_drives_rvpp() {
    let mut r = common::Rvpp::start("papi", "");
    let meta = std::fs::metadata(&r.api).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o770,
        "root and the group connect, others do not"
    );
    let Some(out) = r.check_python("papi_api.py", &[]) else {
        return;
    };
    assert!(out.contains("ALL OK"));
}

/// 8 clients at once (each in its own process), 20 rounds: every client finds exactly the 50
/// routes it added in ip_route_dump (tests/api/papi_concurrent.py). The threads this once
/// used lost a route now and then to vpp_papi's decoder, not to rvpp (see the script).
#[test]
fn papi_concurrent_clients() {
    let mut r = common::Rvpp::start("papi-conc", "");
    let Some(out) = r.check_python("papi_concurrent.py", &["20"]) else {
        return;
    };
    assert!(out.contains("ALL OK"));
}

/// Deletes a veth (its peer goes with it).
struct VethGuard(String);

impl Drop for VethGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.0])
            .output();
    }
}

/// memif sockets and interfaces (a connected server/client pair), rx placement over two
/// workers, rx mode, promiscuous mode, and af_xdp on a veth when root (tests/api/papi_devices.py).
#[test]
fn papi_devices() {
    let mut r = common::Rvpp::start("papi-dev", "workers 2");
    let pid = std::process::id() % 100_000;
    let veth = format!("rvx{pid}");
    let mut guard = None;
    if common::skip::is_root() {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &veth])
            .output();
        let ok = std::process::Command::new("ip")
            .args([
                "link",
                "add",
                &veth,
                "type",
                "veth",
                "peer",
                "name",
                &format!("rvy{pid}"),
            ])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip link add {veth} type veth failed");
        guard = Some(VethGuard(veth.clone()));
        let _ = std::process::Command::new("ip")
            .args(["link", "set", &veth, "up"])
            .status();
    } else {
        common::skip::skip("needs root: papi_devices.py leaves out af_xdp on a veth");
    }
    let dir = r.dir.display().to_string();
    let arg = if guard.is_some() { veth.as_str() } else { "-" };
    let Some(out) = r.check_python("papi_devices.py", &[&dir, arg]) else {
        return;
    };
    assert!(out.contains("ALL OK"));
    drop(guard);
}

/// cnat programmed as calico programs it: translations, SNAT, the feature (papi_cnat.py).
#[test]
fn papi_cnat() {
    let mut r = common::Rvpp::start("papi-cnat", "");
    let Some(out) = r.check_python("papi_cnat.py", &[]) else {
        return;
    };
    assert!(out.contains("ALL OK"));
}

/// SRv6 programmed as calico's agent programs it, the dumps and VPP's codes (papi_srv6.py).
#[test]
fn papi_srv6() {
    let mut r = common::Rvpp::start("papi-srv6", "");
    let Some(out) = r.check_python("papi_srv6.py", &[]) else {
        return;
    };
    assert!(out.contains("ALL OK"));
}

/// npol programmed as calico's felix server programs it, and refused bad input (papi_npol.py).
#[test]
fn papi_npol() {
    let mut r = common::Rvpp::start("papi-npol", "");
    let Some(out) = r.check_python("papi_npol.py", &[]) else {
        return;
    };
    assert!(out.contains("ALL OK"));
}
