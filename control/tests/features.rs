//! Feature arcs through the real rvpp: the binary API's feature_enable_disable and the CLI
//! (`set interface feature`, `show features`, `show interface features`) over one writer
//! (tests/api/papi_features.py).

#[path = "api/common.rs"]
mod common;

#[test]
fn features_by_name_over_api_and_cli() {
    let mut r = common::Rvpp::start("features", "");
    let Some(out) = r.check_python("papi_features.py", &[]) else {
        return;
    };
    assert!(out.contains("ALL OK"));
}
