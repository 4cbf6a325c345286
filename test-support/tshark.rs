//! Reading a capture back with tshark, an independent pcap reader: a capture tshark rejects
//! fails the test. Included by tests that write pcaps: `#[path = "../../test-support/tshark.rs"]
//! mod tshark;` (next to `mod skip;`).
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// tshark's one-line summaries of `file`; panics when tshark cannot read it.
pub fn read(tshark: &Path, file: &Path) -> String {
    let t = Command::new(tshark).arg("-r").arg(file).output().unwrap();
    assert!(
        t.status.success(),
        "tshark rejects {}: {}",
        file.display(),
        String::from_utf8_lossy(&t.stderr)
    );
    String::from_utf8_lossy(&t.stdout).into_owned()
}

#[test]
fn a_capture_tshark_rejects_fails_the_test() {
    // The old checks only looked at tshark's output when it exited 0, so a capture tshark
    // could not read passed them. A file that is not a pcap must now fail `read`.
    let Some(tshark) = super::skip::need_tool("tshark") else {
        return;
    };
    let f = std::env::temp_dir().join(format!(
        "rvpp-not-a-pcap-{}-{}",
        std::process::id(),
        env!("CARGO_CRATE_NAME")
    ));
    std::fs::write(&f, b"this is not a capture").unwrap();
    let r = std::panic::catch_unwind(|| read(&tshark, &f));
    let _ = std::fs::remove_file(&f);
    let msg = r.expect_err("tshark read a file that is not a capture");
    let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("tshark rejects"), "{msg}");
}
