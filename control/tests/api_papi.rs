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
        0o775,
        "socket allows group write"
    );
    let Some(out) = r.check_python("papi_api.py", &[]) else {
        return;
    };
    assert!(out.contains("ALL OK"));
}
