//! IPsec's SA-level binary API through the real rvpp, with vpp_papi
//! (tests/api/papi_ipsec.py): SAs, tunnel protection, ipsecN interfaces, the async/crypto
//! worker messages, VPP's return values for what is refused, and the CLI agreeing.

#[path = "api/common.rs"]
mod common;

#[test]
fn ipsec_sa_protect_and_itf_over_the_api() {
    let mut r = common::Rvpp::start("ipsec-api", "");
    let Some(out) = r.check_python("papi_ipsec.py", &[]) else {
        return;
    };
    assert!(out.contains("ALL OK"));
}
