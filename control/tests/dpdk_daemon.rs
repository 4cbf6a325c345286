//! rvpp with a `dpdk` stanza of net_null vdevs: it shows the devices in `show hardware`,
//! routes what net_null0 receives out of net_null1, and stops on SIGTERM. A bad device ends
//! rvpp with an error naming it, not a hang.
#![cfg(feature = "dpdk")]

mod common;

use common::{if_counter as counter, Opts, Rvpp};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn dpdk_conf(dpdk: &str) -> String {
    format!("buffers {{ buffers-per-numa 16384 }}\ncpu {{ workers 0 }}\ndpdk {{ {dpdk} }}")
}

/// Device counter `field` of the `dir` ("rx" or "tx") line of `ifname` in `show hardware`
/// ("  tx packets N bytes N errors N no-mbuf N"); panics when it is not there.
fn hw_counter(hw: &str, ifname: &str, dir: &str, field: &str) -> u64 {
    let line = hw
        .lines()
        .skip_while(|l| !l.starts_with(ifname))
        .skip(1)
        .take_while(|l| l.starts_with(' '))
        .find(|l| l.trim_start().starts_with(&format!("{dir} packets ")))
        .unwrap_or_else(|| panic!("no {ifname} {dir} counters in:\n{hw}"));
    let words: Vec<&str> = line.split_whitespace().skip(1).collect();
    let at = words.chunks(2).find(|kv| kv[0] == field);
    at.and_then(|kv| kv.get(1)?.parse().ok())
        .unwrap_or_else(|| panic!("{ifname} {dir} {field} not a number in {line:?}"))
}

#[test]
fn net_null_vdevs_forward_and_show_in_hardware() {
    let conf = dpdk_conf(
        "no-hugetlb vdev net_null0 vdev net_null1 dev default { num-rx-queues 1 num-rx-desc 512 }",
    );
    let r = Rvpp::start_with(
        "dpdk-fwd",
        Opts {
            conf: &conf,
            timeout: Duration::from_secs(30),
            log_file: true,
            ..Default::default()
        },
    );
    let hw = r.ctl("show hardware");
    for want in [
        "net_null0",
        "net_null1",
        "driver net_null",
        "rx queues 1 x 512 desc",
    ] {
        assert!(hw.contains(want), "show hardware lacks {want}:\n{hw}");
    }
    // net_null's packets get an IPv4/UDP header to 198.19.0.1 (see dpdk_setup).
    for c in [
        "set interface ip address net_null0 198.18.0.1/24",
        "set interface ip address net_null1 198.19.255.1/30",
        "set ip neighbor net_null1 198.19.255.2 02:00:00:00:00:02",
        "ip route add 198.19.0.0/16 via 198.19.255.2 net_null1",
        "set interface state net_null1 up",
        "set interface state net_null0 up",
    ] {
        let out = r.ctl(c);
        assert!(!out.contains("unknown"), "{c}: {out}");
    }
    let t = Instant::now();
    let sent = loop {
        let int = r.ctl("show interface");
        let tx = counter(&int, "net_null1", "tx packets");
        if tx > 10_000 {
            break tx;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "net_null1 transmits nothing:\n{int}\n{}",
            r.ctl("show errors")
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(r.ctl("show runtime").contains("dpdk-input"));
    // The device's own counters reach show hardware within the refresh period.
    std::thread::sleep(Duration::from_millis(1200));
    let hw = r.ctl("show hardware");
    let after = counter(&r.ctl("show interface"), "net_null1", "tx packets");
    // The device counted what rvpp sent: at least what the interface counter had before the
    // refresh period, at most what it has now, and nothing failed.
    let dev_tx = hw_counter(&hw, "net_null1", "tx", "packets");
    assert!(
        (sent..=after).contains(&dev_tx),
        "net_null1 device tx {dev_tx}, interface tx {sent} before, {after} after:\n{hw}"
    );
    assert_eq!(hw_counter(&hw, "net_null1", "tx", "errors"), 0, "{hw}");
    assert_eq!(hw_counter(&hw, "net_null1", "tx", "no-mbuf"), 0, "{hw}");
    assert!(hw_counter(&hw, "net_null0", "rx", "packets") > 0, "{hw}");
    r.stop();
}

#[test]
fn unknown_device_is_a_clear_error() {
    let dir = common::test_dir("dpdk-bad");
    let conf = dir.join("startup.conf");
    std::fs::write(&conf, dpdk_conf("no-hugetlb vdev net_bogus0")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rvpp"))
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("rvpp hangs on a bad dpdk device");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!st.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("net_bogus0"), "{err}");
}

#[test]
fn the_device_counter_check_sees_a_device_that_sent_nothing() {
    // show hardware always prints the "tx packets" label, so the old check passed even when
    // the device counted nothing. The counter's value must now sit in the interface's range.
    let hw = "net_null1                          2     up   net_null1\n  driver net_null\n  rx packets 10 bytes 640 errors 0 no-mbuf 0\n  tx packets 0 bytes 0 errors 0 no-mbuf 0\n";
    assert!(hw.contains("tx packets"), "the old assertion held");
    let dev_tx = hw_counter(hw, "net_null1", "tx", "packets");
    assert!(!(1000..=2000).contains(&dev_tx));
    assert_eq!(hw_counter(hw, "net_null1", "rx", "packets"), 10);
}
