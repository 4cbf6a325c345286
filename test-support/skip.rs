//! What an integration test does when a prerequisite (root, a tool, a Python module) is
//! missing. Under CI (`CI` set and non-empty) it fails: a green CI run must have run everything.
//! Elsewhere it is a visible skip: `SKIPPED: <test>: <reason>` written to stderr past libtest's
//! capture, and the same line appended to the skip log (`$RVPP_SKIP_LOG`, default
//! /tmp/rvpp-skips.log), which scripts/test.sh prints at the end.
//!
//! One exception, [`kernel_lacks`]: the running kernel was built without a feature the test
//! needs (no install can add it) and another test covers what it checks. That skip is logged
//! the same way and does not fail CI; the caller names the covering test.
//!
//! One file for every crate's tests: `#[path = "../../test-support/skip.rs"] mod skip;`.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;

/// Give up on the running test, or a part of it, because `reason`: panics under CI, else
/// reports and logs the skip. The caller then returns or leaves that part out.
pub fn skip(reason: &str) {
    let test = test_name();
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("{test}: prerequisite missing under CI: {reason}");
    }
    log_skip(&test, reason);
}

/// Give up on the running test because the kernel was built without `feature` (no install adds
/// it) and `covered_by`, another test the caller names, checks the same code without it.
/// Logged as [`skip`] logs, but never a failure, also under CI. The caller then returns.
pub fn kernel_lacks(feature: &str, covered_by: &str) {
    assert!(
        !covered_by.trim().is_empty(),
        "kernel_lacks needs the test that covers the skipped one"
    );
    log_skip(
        &test_name(),
        &format!("the kernel lacks {feature}; covered by {covered_by}"),
    );
}

/// `<crate>::<test>`: libtest names each test's thread after the test.
fn test_name() -> String {
    let thread = std::thread::current();
    format!(
        "{}::{}",
        env!("CARGO_CRATE_NAME"),
        thread.name().unwrap_or("?")
    )
}

/// `SKIPPED: <test>: <reason>` to stderr and the skip log.
fn log_skip(test: &str, reason: &str) {
    let line = format!("SKIPPED: {test}: {reason}\n");
    // Straight to fd 2: libtest captures eprintln! of a passing test.
    let _ = std::io::stderr().write_all(line.as_bytes());
    let log = std::env::var_os("RVPP_SKIP_LOG").unwrap_or_else(|| "/tmp/rvpp-skips.log".into());
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        eprintln!("cannot append to skip log {}: {e}", log.to_string_lossy());
    }
}

/// True when the effective uid is 0 (the `Uid:` line of /proc/self/status).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let l = s.lines().find(|l| l.starts_with("Uid:"))?;
            Some(l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// True when running as root; otherwise skips (see [`skip`]) because of `why`.
pub fn need_root(why: &str) -> bool {
    let root = is_root();
    if !root {
        skip(&format!("needs root {why}"));
    }
    root
}

/// Where `tool` is on PATH, if anywhere.
pub fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// `tool` from PATH; otherwise skips (see [`skip`]) and returns None.
pub fn need_tool(tool: &str) -> Option<PathBuf> {
    let found = find_tool(tool);
    if found.is_none() {
        skip(&format!("{tool} not found in PATH"));
    }
    found
}

/// True when `python3 -c "import <module>"` works; otherwise skips (see [`skip`]).
pub fn need_python_module(module: &str) -> bool {
    let out = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output();
    match out {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            skip(&format!(
                "python3 cannot import {module}: {}",
                err.trim().lines().last().unwrap_or("")
            ));
            false
        }
        Err(e) => {
            skip(&format!("no python3: {e}"));
            false
        }
    }
}
