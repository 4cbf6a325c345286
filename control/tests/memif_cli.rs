//! memif through the rvpp binary and rvppctl: create sockets and interfaces with VPP's CLI
//! syntax, route IPv4 through a memif pair inside one rvpp (server and zero-copy client on the
//! same socket file), through dpdk-testpmd (macswap; skipped without it), delete, and check that
//! no buffers leak.

#[path = "../../test-support/skip.rs"]
mod skip;

mod common;

use common::{buffers_in_use, ctl, used_column, wait_for, Rvpp};
use std::path::Path;
use std::process::{Child, Command, Stdio};

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000_000
}

fn start(tag: &str) -> Rvpp {
    Rvpp::start(
        &format!("memifcli-{tag}"),
        "buffers { buffers-per-numa 16384 }\ncpu { workers 0 }",
    )
}

fn ok(sock: &Path, cmd: &str) -> String {
    let o = ctl(sock, cmd);
    assert!(
        !o.contains("unknown") && !o.contains("bad ") && !o.contains("does not"),
        "{cmd}: {o}"
    );
    o
}

/// Counter `what` (e.g. "rx packets") of interface `ifn` in `show interface`.
fn counter(sock: &Path, ifn: &str, what: &str) -> u64 {
    let out = ctl(sock, "show interface");
    let mut cur = "";
    for l in out.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if !l.starts_with(' ') && !f.is_empty() {
            cur = f[0];
        }
        if cur == ifn {
            if let Some(p) = l.find(what) {
                let v = l[p + what.len()..].trim();
                return v
                    .parse()
                    .unwrap_or_else(|e| panic!("{ifn} {what} {v:?}: {e}\n{out}"));
            }
        }
    }
    0
}

fn connected(show: &str) -> usize {
    show.lines()
        .filter(|l| l.trim_start().starts_with("flags") && l.ends_with(" connected"))
        .count()
}

/// How many interfaces in `show memif` have no ring errors and no rx drops.
fn clean_memifs(show: &str) -> usize {
    show.lines()
        .filter(|l| l.trim_start().starts_with("ring-errors 0 rx-dropped 0 "))
        .count()
}

/// The leak check cannot pass on output it does not understand.
#[test]
#[should_panic(expected = "no Used column")]
fn used_column_rejects_unknown_output() {
    used_column("Pool Name  Index  Avail\ndefault-numa-0  0  100\n");
}

#[test]
fn clean_memifs_counts_each_interface() {
    let one_dirty = "memif1/7\n  ring-errors 0 rx-dropped 0 rx-no-buffers 0\n\
                     memif2/7\n  ring-errors 3 rx-dropped 0 rx-no-buffers 0\n";
    assert_eq!(clean_memifs(one_dirty), 1);
    assert_eq!(used_column("Avail   Used  \ndefault 0 5 7\n"), 7);
}

#[test]
fn memif_pair_routes_and_deletes_cleanly() {
    let r = start("pair");
    let s = &r.cli;
    let file = r.dir.join("m.sock");
    let before = buffers_in_use(s);
    ok(
        s,
        &format!("create memif socket id 1 filename {}", file.display()),
    );
    ok(
        s,
        &format!("create memif socket id 2 filename {}", file.display()),
    );
    assert_eq!(
        ok(
            s,
            "create interface memif id 7 socket-id 1 master rx-queues 2 tx-queues 2"
        )
        .trim(),
        "memif1/7"
    );
    assert_eq!(
        ok(
            s,
            "create interface memif socket-id 2 id 7 slave ring-size 512 rx-queues 2 tx-queues 2"
        )
        .trim(),
        "memif2/7"
    );
    let bad = ctl(s, "create interface memif id 8 socket-id 1 master");
    assert!(bad.contains("one per socket"), "{bad}");
    let bad = ctl(s, "create interface memif id 1 socket-id 9");
    assert!(bad.contains("does not exist"), "{bad}");
    wait_for("memif connected", 10, || {
        connected(&ctl(s, "show memif")) == 2
    });
    let hw = ctl(s, "show hardware");
    assert!(hw.contains("memif1/7"), "{hw}");
    for c in [
        "create packet-generator interface pg0 count 5000 size 600 dst 198.19.7.0/24",
        "create null interface null1",
        "set interface state pg0 up",
        "set interface state null1 up",
        "set interface state memif1/7 up",
        "set interface state memif2/7 up",
        "set interface ip address pg0 198.18.0.1/24",
        "set interface ip address memif1/7 10.0.0.1/30",
        "ip table add 5",
        "set interface ip table memif2/7 5",
        "set interface ip table null1 5",
        "set interface ip address memif2/7 10.0.1.1/30",
        "set interface ip address null1 10.0.2.1/30",
        "set ip neighbor null1 10.0.2.2 02:00:00:00:00:09",
        "ip route add 198.19.7.0/24 table 5 via 10.0.2.2 null1",
    ] {
        ok(s, c);
    }
    // memif2/7's MAC as the neighbour on memif1/7, so frames are accepted there.
    let m = ctl(s, "show memif memif2/7");
    let mac = m
        .lines()
        .find_map(|l| l.trim().strip_prefix("hw-addr "))
        .expect("hw-addr")
        .to_string();
    ok(s, &format!("set ip neighbor memif1/7 10.0.0.2 {mac}"));
    ok(s, "ip route add 198.19.7.0/24 via 10.0.0.2 memif1/7");
    ok(s, "packet-generator enable");
    wait_for("packets through the memif pair", 10, || {
        counter(s, "null1", "tx packets") == 5000
    });
    assert_eq!(counter(s, "memif1/7", "tx packets"), 5000);
    assert_eq!(counter(s, "memif2/7", "rx packets"), 5000);
    let sm = ctl(s, "show memif");
    assert!(sm.contains("zero-copy"), "{sm}");
    // Both ends clean, not just one of the two.
    assert_eq!(clean_memifs(&sm), 2, "{sm}");
    ok(s, "delete interface memif memif2/7");
    wait_for("server sees the client go", 5, || {
        ctl(s, "show memif memif1/7").contains("disconnected")
    });
    ok(s, "delete interface memif memif1/7");
    assert!(!ctl(s, "show interface").contains("memif"));
    ok(s, "delete memif socket id 2");
    // Buffers: whatever pg and the memifs held is back.
    wait_for("buffers back", 5, || {
        let u = buffers_in_use(s);
        eprintln!("buffers in use: {u} (before: {before})");
        u <= before
    });
}

struct Testpmd(Child, String);

impl Drop for Testpmd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{}", self.1));
    }
}

/// testpmd as the memif client on `file`, `queues` queue pairs, macswap forwarding, its
/// console on `stdout` (unbuffered, so that an answer reaches a log while testpmd runs).
fn macswap_client(bin: &Path, file: &Path, queues: u32, stdout: Stdio) -> Testpmd {
    let prefix = format!("rvpp-memifcli-{}-{}", std::process::id(), nanos());
    Testpmd(
        Command::new("stdbuf")
            .arg("-o0")
            .arg(bin)
            .args(["--no-huge", "-m", "512", "--no-pci", "--lcores=0@1,1@1"])
            .args(["--file-prefix", &prefix])
            .arg(format!(
                "--vdev=net_memif0,role=client,socket={},socket-abstract=no",
                file.display()
            ))
            .args(["--", "--total-num-mbufs=16384", "--forward-mode=macswap"])
            .arg(format!("--rxq={queues}"))
            .arg(format!("--txq={queues}"))
            .args(["--auto-start", "--no-mlockall", "-i"])
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        prefix,
    )
}

/// rvpp as memif server in IP... no: Ethernet mode, routing into testpmd (macswap sends every
/// frame back to rvpp, which routes it out again until the TTL runs out).
#[test]
fn rvpp_routes_through_testpmd() {
    let Some(bin) = skip::need_tool("dpdk-testpmd") else {
        return;
    };
    let r = start("pmd");
    let s = &r.cli;
    let file = r.dir.join("pmd.sock");
    ok(
        s,
        &format!("create memif socket id 3 filename {}", file.display()),
    );
    assert_eq!(
        ok(s, "create interface memif id 0 socket-id 3").trim(),
        "memif3/0"
    );
    let _pmd = macswap_client(&bin, &file, 1, Stdio::null());
    wait_for("testpmd connected", 20, || {
        connected(&ctl(s, "show memif")) == 1
    });
    assert!(ctl(s, "show memif").contains("remote-name \"DPDK"));
    for c in [
        "create packet-generator interface pg0 count 100000 size 64 dst 198.19.7.0/24",
        "set interface state pg0 up",
        "set interface state memif3/0 up",
        "set interface ip address pg0 198.18.0.1/24",
        "set interface ip address memif3/0 10.0.0.1/30",
        "set ip neighbor memif3/0 10.0.0.2 02:00:00:00:00:02",
        "ip route add 198.19.7.0/24 via 10.0.0.2 memif3/0",
    ] {
        ok(s, c);
    }
    // testpmd drops for a moment after link up; keep the stream running until frames return.
    ok(s, "packet-generator enable");
    wait_for("frames back from testpmd", 20, || {
        counter(s, "memif3/0", "rx packets") > 1000
    });
    let sm = ctl(s, "show memif");
    assert!(sm.contains("ring-errors 0 "), "{sm}");
}

/// rvpp with one worker as the server of a 3-queue-pair memif: testpmd (macswap, 3 queues)
/// must receive on all three of rvpp's tx rings, since rvpp spreads flows by flow hash over
/// the queues it has more of than workers (before, everything left on ring 0).
#[test]
fn one_worker_spreads_flows_over_three_tx_rings() {
    let Some(bin) = skip::need_tool("dpdk-testpmd") else {
        return;
    };
    let r = start("spread");
    let s = &r.cli;
    let file = r.dir.join("spread.sock");
    ok(
        s,
        &format!("create memif socket id 4 filename {}", file.display()),
    );
    ok(
        s,
        "create interface memif id 0 socket-id 4 rx-queues 3 tx-queues 3",
    );
    let log = r.dir.join("testpmd.log");
    let mut pmd = macswap_client(&bin, &file, 3, std::fs::File::create(&log).unwrap().into());
    wait_for("testpmd connected", 20, || {
        connected(&ctl(s, "show memif")) == 1
    });
    assert!(
        ctl(s, "show memif").contains("tx-rings 3"),
        "{}",
        ctl(s, "show memif")
    );
    for c in [
        "create packet-generator interface pg0 count 60000 size 64 dst 198.19.7.0/24",
        "set interface state pg0 up",
        "set interface state memif4/0 up",
        "set interface ip address pg0 198.18.0.1/24",
        "set interface ip address memif4/0 10.0.0.1/30",
        "set ip neighbor memif4/0 10.0.0.2 02:00:00:00:00:02",
        "ip route add 198.19.7.0/24 via 10.0.0.2 memif4/0",
    ] {
        ok(s, c);
    }
    ok(s, "packet-generator enable");
    wait_for("frames back from testpmd", 20, || {
        counter(s, "memif4/0", "rx packets") > 30000
    });
    // testpmd's per-queue receive counters: what rvpp sent on each of its tx rings.
    let per_queue = |pmd: &mut Testpmd| -> Vec<u64> {
        use std::io::Write;
        let from = std::fs::metadata(&log).map_or(0, |m| m.len() as usize);
        let stdin = pmd.0.stdin.as_mut().unwrap();
        writeln!(stdin, "show port xstats 0").unwrap();
        stdin.flush().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let text = &text[from.min(text.len())..];
            let got: Vec<u64> = (0..3)
                .filter_map(|q| {
                    let key = format!("rx_q{q}_packets:");
                    text.lines()
                        .find(|l| l.trim_start().starts_with(&key))
                        .and_then(|l| l.split(':').nth(1)?.trim().parse().ok())
                })
                .collect();
            if got.len() == 3 {
                return got;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no per-queue counters from testpmd:\n{text}"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    let q = per_queue(&mut pmd);
    let total: u64 = q.iter().sum();
    assert!(total > 30000, "testpmd received {q:?}");
    for (i, n) in q.iter().enumerate() {
        assert!(
            *n > total / 10,
            "ring {i} carried {n} of {total} ({q:?}): flows are not spread"
        );
    }
    let sm = ctl(s, "show memif");
    assert!(sm.contains("ring-errors 0 "), "{sm}");
}
