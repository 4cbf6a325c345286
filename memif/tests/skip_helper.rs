//! test-support/skip.rs itself: a missing prerequisite fails under CI and is logged otherwise;
//! a kernel that lacks a covered feature is logged, under CI too.
//! Runs this binary's `child` test in a subprocess with the environment under test.

#[path = "../../test-support/skip.rs"]
mod skip;

use std::process::{Command, Output};

/// The subjects of the checks below: they skip when RVPP_SKIP_CHILD is set, else do nothing
/// (they are not tests of their own).
#[test]
fn child() {
    if std::env::var_os("RVPP_SKIP_CHILD").is_some() {
        skip::skip("pretend prerequisite");
    }
}

#[test]
fn kernel_child() {
    if let Some(covered_by) = std::env::var_os("RVPP_SKIP_CHILD") {
        skip::kernel_lacks("CONFIG_PRETEND", &covered_by.to_string_lossy());
    }
}

fn run_child(ci: &str, log: &std::path::Path) -> Output {
    run(ci, log, "child", "1")
}

fn run(ci: &str, log: &std::path::Path, child: &str, covered_by: &str) -> Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", child, "--test-threads", "1"])
        .env("RVPP_SKIP_CHILD", covered_by)
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

#[test]
fn a_kernel_without_a_covered_feature_is_logged_also_under_ci() {
    let log = std::env::temp_dir().join(format!("rvpp-skip-kernel-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let want = "SKIPPED: skip_helper::kernel_child: the kernel lacks CONFIG_PRETEND; \
                covered by other_test\n";
    for ci in ["", "true"] {
        let out = run(ci, &log, "kernel_child", "other_test");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "CI={ci:?}: {err}");
        assert!(err.contains(want.trim_end()), "CI={ci:?}: {err}");
    }
    assert_eq!(std::fs::read_to_string(&log).unwrap(), want.repeat(2));
    // Naming no covering test is a bug in the caller, not a skip.
    let out = run("true", &log, "kernel_child", " ");
    let so = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{so}");
    assert!(so.contains("needs the test that covers"), "{so}");
    let _ = std::fs::remove_file(&log);
}
