//! Interoperability with DPDK's net_memif, driven through dpdk-testpmd in
//! `macswap` forwarding mode: every frame we send must come back with
//! source and destination MAC swapped and the rest byte-identical.
//!
//! Skips (with a message) when `dpdk-testpmd` is not installed. Tests are
//! serialized: testpmd busy-polls a core and the CI box has two.

mod common;

#[path = "../../test-support/skip.rs"]
mod skip;

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use memif::{Config, Event, Interface, PacketBuf, Role};

static SERIAL: Mutex<()> = Mutex::new(());

/// A running testpmd, killed (and its runtime dir removed) on drop.
struct Testpmd {
    child: Child,
    _stdin: ChildStdin,
    prefix: String,
    log: String,
}

impl Testpmd {
    fn spawn(bin: &PathBuf, role: &str, sock: &str, queues: u16) -> Testpmd {
        let prefix = format!("rvpp-memif-{}-{}", std::process::id(), nanos());
        let log = format!("/tmp/{prefix}.log");
        let out = File::create(&log).unwrap();
        let mut child = Command::new(bin)
            .args([
                "--no-huge",
                "-m",
                "512",
                "--no-pci",
                // Both lcores on CPU 1: the forwarding lcore spins, and the test and rvpp
                // need CPU 0 on a two-core machine.
                "--lcores=0@1,1@1",
                "--file-prefix",
                &prefix,
            ])
            .arg(format!(
                "--vdev=net_memif0,role={role},socket={sock},socket-abstract=no"
            ))
            .args([
                "--",
                "--total-num-mbufs=16384",
                "--forward-mode=macswap",
                "--auto-start",
                "--no-mlockall",
                "-i",
            ])
            .arg(format!("--rxq={queues}"))
            .arg(format!("--txq={queues}"))
            .stdin(Stdio::piped())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn dpdk-testpmd");
        let stdin = child.stdin.take().unwrap();
        Testpmd {
            child,
            _stdin: stdin,
            prefix,
            log,
        }
    }

    fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        s.lines()
            .rev()
            .take(25)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Testpmd {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{}", self.prefix));
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        } else {
            eprintln!("testpmd log {}:\n{}", self.log, self.log_tail());
        }
    }
}

const PROBE: u32 = 0xFFFF_0000;

/// Ethernet frame: dst 02::02, src 02::01, IPv4 type, seq, pattern.
fn frame(len: usize, seq: u32) -> Vec<u8> {
    let mut f = make_packet(len, seq);
    f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14..18].copy_from_slice(&seq.to_be_bytes());
    f
}

fn swapped(mut f: Vec<u8>) -> Vec<u8> {
    let (a, b) = f.split_at_mut(6);
    a.swap_with_slice(&mut b[..6]);
    f
}

fn seq_of(p: &[u8]) -> u32 {
    p.get(14..18)
        .map_or(u32::MAX, |s| u32::from_be_bytes(s.try_into().unwrap()))
}

fn wait_connected(ifc: &mut Interface, pmd: &Testpmd, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        assert!(
            Instant::now() < deadline,
            "no connection with testpmd; log:\n{}",
            pmd.log_tail()
        );
        if let Some(Event::Connected { remote_name, .. }) = ifc.poll_control() {
            assert!(remote_name.contains("DPDK"), "peer name {remote_name:?}");
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn wait_disconnected(ifc: &mut Interface) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < deadline, "disconnect not noticed");
        if let Some(Event::Disconnected { .. }) = ifc.poll_control() {
            return;
        }
        // Bursts while the peer is gone must be harmless.
        let mut b = bufs(4, 64);
        ifc.rx_burst(0, &mut b);
        ifc.tx_burst(0, &[frame(64, 1)]);
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// testpmd starts forwarding a little after the link comes up; frames
/// sent before that are dropped by it. Probe each queue until one echo
/// arrives, then drain.
fn warm_up(ifc: &mut Interface, pmd: &Testpmd, queues: usize) {
    let mut b = bufs(32, 10_000);
    for q in 0..queues {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = Instant::now() - Duration::from_secs(1);
        'probe: loop {
            assert!(
                Instant::now() < deadline,
                "testpmd never echoed on queue {q}; log:\n{}",
                pmd.log_tail()
            );
            ifc.poll_control();
            if last.elapsed() > Duration::from_millis(50) {
                ifc.tx_burst(q, &[frame(64, PROBE | q as u32)]);
                last = Instant::now();
            }
            let n = ifc.rx_burst(q, &mut b);
            if b[..n]
                .iter()
                .any(|p| seq_of(p.as_slice()) == PROBE | q as u32)
            {
                break 'probe;
            }
        }
    }
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(100) {
        for q in 0..queues {
            ifc.rx_burst(q, &mut b);
        }
    }
}

/// Send `count` frames of each size on each queue with a bounded window
/// (testpmd drops rather than waits when our ring is full) and check
/// every one comes back MAC-swapped, on the same queue, intact.
fn traffic(ifc: &mut Interface, queues: usize, sizes: &[usize], count: u32) {
    let mut b: Vec<PacketBuf> = bufs(64, 10_000);
    let mut seq = 0u32;
    for q in 0..queues {
        for &size in sizes {
            let first = seq;
            let last = seq + count;
            let mut next = first;
            let mut got = 0u32;
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut batch: Vec<Vec<u8>> = Vec::new();
            while got < count {
                assert!(
                    Instant::now() < deadline,
                    "q{q} size {size}: {got}/{count} came back"
                );
                ifc.poll_control();
                assert!(ifc.is_connected(), "lost connection during traffic");
                if next < last && next - first - got < 128 {
                    batch.clear();
                    batch.extend((next..last.min(next + 16)).map(|s| frame(size, s)));
                    next += ifc.tx_burst(q, &batch) as u32;
                }
                let n = ifc.rx_burst(q, &mut b);
                for p in &b[..n] {
                    let s = seq_of(p.as_slice());
                    if s & PROBE == PROBE {
                        continue; // late warm-up echo
                    }
                    assert!(
                        (first..last).contains(&s),
                        "q{q}: unexpected seq {s} (size {size})"
                    );
                    assert_eq!(p.len(), size, "seq {s}: length");
                    assert!(
                        p.as_slice() == &swapped(frame(size, s))[..],
                        "seq {s}: content mismatch"
                    );
                    got += 1;
                }
            }
            seq = last;
        }
    }
}

const SIZES: &[usize] = &[64, 128, 512, 1500, 2048, 2049, 4000, 9000];

fn run(role_ours: Role, queues: u16) {
    let Some(bin) = skip::need_tool("dpdk-testpmd") else {
        return;
    };
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sock = unique_path("pmd");
    let mut cfg = Config::new(role_ours, &sock);
    cfg.num_s2m_rings = queues;
    cfg.num_m2s_rings = queues;
    let (mut ifc, pmd) = if role_ours == Role::Server {
        let ifc = Interface::new(cfg).unwrap();
        (ifc, Testpmd::spawn(&bin, "client", &sock, queues))
    } else {
        let pmd = Testpmd::spawn(&bin, "server", &sock, queues);
        (Interface::new(cfg).unwrap(), pmd)
    };
    wait_connected(&mut ifc, &pmd, 20);
    assert_eq!(ifc.rx_queues(), queues as usize);
    assert_eq!(ifc.tx_queues(), queues as usize);
    warm_up(&mut ifc, &pmd, queues as usize);
    traffic(&mut ifc, queues as usize, SIZES, 200);
    assert_eq!(ifc.stats().ring_errors, 0);
    assert_eq!(ifc.stats().rx_dropped, 0);
}

#[test]
fn we_are_server_one_queue() {
    run(Role::Server, 1);
}

#[test]
fn we_are_server_two_queues() {
    run(Role::Server, 2);
}

#[test]
fn we_are_client_one_queue() {
    run(Role::Client, 1);
}

#[test]
fn we_are_client_two_queues() {
    run(Role::Client, 2);
}

/// Kill testpmd in the middle of traffic, start a new one, recover.
fn restart(role_ours: Role) {
    let Some(bin) = skip::need_tool("dpdk-testpmd") else {
        return;
    };
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sock = unique_path("pmdrs");
    let peer_role = if role_ours == Role::Server {
        "client"
    } else {
        "server"
    };
    let mut ifc = if role_ours == Role::Server {
        Some(Interface::new(Config::new(role_ours, &sock)).unwrap())
    } else {
        None
    };
    let mut pmd = Testpmd::spawn(&bin, peer_role, &sock, 1);
    let mut ifc = ifc
        .take()
        .unwrap_or_else(|| Interface::new(Config::new(role_ours, &sock)).unwrap());
    for round in 0..2 {
        wait_connected(&mut ifc, &pmd, 20);
        warm_up(&mut ifc, &pmd, 1);
        traffic(&mut ifc, 1, &[64, 1500, 9000], 100);
        // Mid-traffic: fill the rings, then kill the peer.
        let burst: Vec<Vec<u8>> = (0..64).map(|s| frame(1000, 50_000 + s)).collect();
        ifc.tx_burst(0, &burst);
        pmd.kill();
        wait_disconnected(&mut ifc);
        if round == 0 {
            // A killed DPDK server leaves its socket file behind.
            if role_ours == Role::Client {
                let _ = std::fs::remove_file(&sock);
            }
            pmd = Testpmd::spawn(&bin, peer_role, &sock, 1);
        }
    }
    assert_eq!(ifc.stats().connects, 2);
    assert_eq!(ifc.stats().ring_errors, 0);
}

#[test]
fn testpmd_client_killed_and_restarted() {
    restart(Role::Server);
}

#[test]
fn testpmd_server_killed_and_restarted() {
    restart(Role::Client);
}
