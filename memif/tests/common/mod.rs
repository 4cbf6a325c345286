//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use memif::{Event, Interface, PacketBuf};

/// A socket path unique to this process and tag.
pub fn unique_path(tag: &str) -> String {
    format!(
        "/tmp/rvpp-memif-{}-{}-{}.sock",
        tag,
        std::process::id(),
        nanos()
    )
}

pub fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000_000
}

/// Drive both interfaces until both report Connected.
pub fn connect_pair(a: &mut Interface, b: &mut Interface) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut ca, mut cb) = (false, false);
    while !(ca && cb) {
        assert!(Instant::now() < deadline, "pair did not connect");
        while let Some(e) = a.poll_control() {
            if matches!(e, Event::Connected { .. }) {
                ca = true;
            }
        }
        while let Some(e) = b.poll_control() {
            if matches!(e, Event::Connected { .. }) {
                cb = true;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Deterministic packet of `len` bytes tagged with `seq`.
pub fn make_packet(len: usize, seq: u32) -> Vec<u8> {
    let mut p: Vec<u8> = (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(seq) as u8)
        .collect();
    if len >= 4 {
        p[..4].copy_from_slice(&seq.to_be_bytes());
    }
    p
}

pub fn bufs(n: usize, cap: usize) -> Vec<PacketBuf> {
    (0..n).map(|_| PacketBuf::new(cap)).collect()
}

/// Send `pkts` from `tx` queue `q` to `rx` queue `q`, polling `rx` until
/// all arrive (in order); returns what arrived.
pub fn transfer(
    tx: &mut Interface,
    rx: &mut Interface,
    q: usize,
    pkts: &[Vec<u8>],
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut next = 0;
    let mut b = bufs(32, 10_000);
    let deadline = Instant::now() + Duration::from_secs(10);
    while out.len() < pkts.len() {
        assert!(
            Instant::now() < deadline,
            "transfer stalled at {}/{}",
            out.len(),
            pkts.len()
        );
        if next < pkts.len() {
            let end = (next + 32).min(pkts.len());
            next += tx.tx_burst(q, &pkts[next..end]);
        }
        let n = rx.rx_burst(q, &mut b);
        out.extend(b[..n].iter().map(|p| p.as_slice().to_vec()));
    }
    out
}
