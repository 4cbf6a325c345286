//! rvpp on a machine with reserved 2 MiB hugepages, as every Calico-VPP node has: the pool must
//! come up on them, forward, report its backing, and give the pages back at exit. (A mincore
//! call sized for 2 MiB pages instead of 4 KiB ones once corrupted the heap here at start.)

#[path = "../../test-support/skip.rs"]
mod skip;

mod common;

use common::Rvpp;
use std::time::{Duration, Instant};

const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";

/// The tests here count the machine's free hugepages, which every rvpp takes from (its default
/// FIB table too), so they run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn meminfo(key: &str) -> u64 {
    let m = std::fs::read_to_string("/proc/meminfo").unwrap();
    m.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{key} not in /proc/meminfo"))
}

/// Reserves `extra` more 2 MiB pages for the test's life and restores the old count after,
/// even when the test fails.
struct Hugepages {
    before: u64,
}

impl Hugepages {
    fn reserve(extra: u64) -> Option<Self> {
        let before: u64 = std::fs::read_to_string(NR_HUGEPAGES)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        std::fs::write(NR_HUGEPAGES, format!("{}", before + extra)).ok()?;
        let guard = Self { before };
        // The kernel may find fewer contiguous 2 MiB blocks than asked for, and other
        // processes may hold some; half is plenty for the test's 20 MiB pool.
        (meminfo("HugePages_Free:") >= extra / 2).then_some(guard)
    }
}

impl Drop for Hugepages {
    fn drop(&mut self) {
        let _ = std::fs::write(NR_HUGEPAGES, format!("{}", self.before));
    }
}

fn start(tag: &str, buffers: &str) -> Rvpp {
    Rvpp::start(
        tag,
        &format!("statseg {{ socket-name {{dir}}/stats.sock }}\nbuffers {{ {buffers} }}\ncpu {{ workers 0 }}"),
    )
}

/// Routes 20,000 generated packets to a null interface and waits until all are sent.
fn forward(r: &Rvpp) {
    for c in common::pg_to_null(20_000) {
        r.ctl(&c);
    }
    r.ctl("packet-generator enable");
    let t = Instant::now();
    loop {
        let int = r.ctl("show interface");
        let tx = int
            .lines()
            .skip_while(|l| !l.starts_with("null1"))
            .find(|l| l.contains("tx packets"))
            .and_then(|l| l.split_whitespace().last()?.parse::<u64>().ok());
        if tx == Some(20000) {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "forwarded {tx:?}:\n{int}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn rvpp_starts_forwards_and_releases_hugepages() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !skip::need_root("to reserve hugepages") {
        return;
    }
    // 8192 buffers of 2 KiB: a 20 MiB pool, 10 pages; ask for more so it fits with slack.
    let pages = Hugepages::reserve(64).expect("could not reserve 64 hugepages");
    let free_before = meminfo("HugePages_Free:");
    let r = start("on", "buffers-per-numa 8192");
    let show = r.ctl("show buffers");
    assert!(show.contains("backing: hugetlb"), "{show}");
    assert!(show.contains("page size 2048 KiB"), "{show}");
    let status = std::fs::read_to_string(format!("/proc/{}/status", r.child.id())).unwrap();
    let held_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("HugetlbPages:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(
        held_kb >= 20 << 10,
        "rvpp maps {held_kb} kB of hugetlb pages"
    );
    forward(&r);
    r.stop();
    assert!(
        meminfo("HugePages_Free:") >= free_before,
        "hugepages not released at exit"
    );
    drop(pages);
}

#[test]
fn rvpp_without_hugetlb_falls_back_and_forwards() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let r = start("off", "buffers-per-numa 8192 no-hugetlb");
    let show = r.ctl("show buffers");
    assert!(!show.contains("backing: hugetlb"), "{show}");
    assert!(show.contains("not tried"), "{show}");
    forward(&r);
    r.stop();
}
