//! The API, CLI and stats sockets admit root and the `unix { gid }` group only: each file is
//! mode 0770 owned by that group, a user outside it is refused, a user in it connects, and a
//! group that does not resolve stops start-up with an error naming it.

#[path = "../../test-support/skip.rs"]
mod skip;

mod common;

use common::{Opts, Rvpp};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn wait_for_log(r: &Rvpp, text: &str) {
    let t = Instant::now();
    while !r.log().contains(text) {
        assert!(t.elapsed() < Duration::from_secs(5), "{}", r.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A group no account on the machine has as its primary one.
const GID: u32 = 54_321;
const NOBODY: u32 = 65_534;

/// Connect to `path` as uid `NOBODY` with group `gid` and no supplementary groups; the
/// connect's errno name, or "ok".
fn connect_as(path: &Path, gid: u32, seqpacket: bool) -> String {
    let kind = if seqpacket {
        "SOCK_SEQPACKET"
    } else {
        "SOCK_STREAM"
    };
    let py = format!(
        "import socket,errno\ns=socket.socket(socket.AF_UNIX, socket.{kind})\ntry:\n  s.connect({:?}); print('ok')\nexcept OSError as e: print(errno.errorcode[e.errno])",
        path.display().to_string()
    );
    // Debian's python3 (python3-pip depends on it): a pyenv one under /root is out of reach
    // of the other user. std drops the supplementary groups when it sets the uid.
    let out = Command::new("/usr/bin/python3")
        .uid(NOBODY)
        .gid(gid)
        .args(["-c", &py])
        .stderr(Stdio::inherit())
        .output()
        .expect("setpriv");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn sockets_admit_root_and_the_configured_group_only() {
    if !skip::need_root("connecting as another user") {
        return;
    }
    let r = Rvpp::start_with(
        "sockacc",
        Opts {
            unix: &format!("gid {GID}"),
            conf:
                "socksvr { socket-name {dir}/api.sock }\nstatseg { socket-name {dir}/stats.sock }",
            wait_for: &["api.sock", "stats.sock"],
            ..Default::default()
        },
    );
    // The test directory is root's; let the other user reach the files in it.
    std::fs::set_permissions(&r.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for (name, seqpacket) in [
        ("api.sock", false),
        ("cli.sock", false),
        ("stats.sock", true),
    ] {
        let p = r.path(name);
        let md = std::fs::metadata(&p).unwrap();
        assert_eq!(
            md.mode() & 0o777,
            0o770,
            "{name} mode {:o}",
            md.mode() & 0o777
        );
        assert_eq!(md.gid(), GID, "{name} group");
        assert_eq!(
            connect_as(&p, NOBODY, seqpacket),
            "EACCES",
            "{name}: a stranger"
        );
        assert_eq!(
            connect_as(&p, GID, seqpacket),
            "ok",
            "{name}: a group member"
        );
    }
    // The CLI still answers root.
    assert!(r.ctl("show version").contains("rvpp"));
}

#[test]
fn a_group_that_does_not_resolve_stops_start_up() {
    let err = common::start_refused(
        "sockacc-badgid",
        "unix { nodaemon cli-listen {dir}/cli.sock gid no-such-group-rvpp }\n",
    );
    assert!(err.contains("no-such-group-rvpp"), "{err}");
}

/// The take-over socket hands out the whole configuration, WireGuard's private and session
/// keys with it: mode 0600, and a peer of another uid that reaches it anyway (a mode changed
/// by hand, or the instant between bind and chmod) is refused by its SO_PEERCRED.
#[test]
fn the_take_over_socket_admits_root_only() {
    if !skip::need_root("connecting as another user") {
        return;
    }
    let r = Rvpp::start_with(
        "sockacc-to",
        Opts {
            conf: "socksvr { socket-name {dir}/api.sock }",
            log_file: true,
            wait_for: &["api.sock", "api.sock.takeover"],
            ..Default::default()
        },
    );
    std::fs::set_permissions(&r.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let p = r.path("api.sock.takeover");
    let md = std::fs::metadata(&p).unwrap();
    assert_eq!(md.mode() & 0o777, 0o600, "mode {:o}", md.mode() & 0o777);
    assert_eq!(connect_as(&p, NOBODY, true), "EACCES", "a stranger");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
    let py = format!(
        "import socket\ns=socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n\
         s.connect({:?}); s.send(b'rvpp-takeover-1'); print(s.recv(65536)[:1].decode())",
        p.display().to_string()
    );
    let out = Command::new("/usr/bin/python3")
        .uid(NOBODY)
        .gid(NOBODY)
        .args(["-c", &py])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(answer, "R", "a stranger was not refused: {answer:?}");
    wait_for_log(&r, "not this process's user");
    // The running rvpp goes on.
    assert!(r.ctl("show version").contains("rvpp"));
}
