//! test-support/skip.rs itself: a missing prerequisite fails under CI and is logged otherwise.
//! Runs this binary's `child` test in a subprocess with the environment under test.

#[path = "../../test-support/skip.rs"]
mod skip;

use std::process::{Command, Output};

/// The subject of the checks below: skips when RVPP_SKIP_CHILD is set, else does nothing
/// (it is not a test of its own).
#[test]
fn child() {
    if std::env::var_os("RVPP_SKIP_CHILD").is_some() {
        skip::skip("pretend prerequisite");
    }
}

fn run_child(ci: &str, log: &std::path::Path) -> Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--test-threads", "1"])
        .env("RVPP_SKIP_CHILD", "1")
        .env("CI", ci)
        .env("RVPP_SKIP_LOG", log)
        .output()
        .unwrap()
}

#[test]
fn fails_under_ci_and_is_logged_otherwise() {
    let log = std::env::temp_dir().join(format!("rvpp-skip-selftest-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);

    let out = run_child("", &log);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "a skip outside CI passes: {err}");
    assert!(
        err.contains("SKIPPED: skip_helper::child: pretend prerequisite"),
        "{err}"
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        logged,
        "SKIPPED: skip_helper::child: pretend prerequisite\n"
    );

    let out = run_child("true", &log);
    let so = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "a skip under CI must fail:\n{so}");
    assert!(so.contains("prerequisite missing under CI"), "{so}");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        logged,
        "CI failures are not skips"
    );
    let _ = std::fs::remove_file(&log);
}
