//! `rvpp-bench wireguard`: WireGuard's per-packet work on one core. rvpp: the data path's own
//! `seal_payload` / `open_payload` (padding, ChaCha20-Poly1305, the replay window, the data
//! header) on a keypair pair, encrypt then decrypt of each packet, at 64 B, 1400 B and IMIX.
//! Peers in the same run: the raw chacha20poly1305 crate on the same sizes (the ceiling: the
//! AEAD rvpp uses, alone), ring's ChaCha20-Poly1305 (the other candidate AEAD), and (root, wireguard-go and iperf3 present) wireguard-go between two
//! namespaces with iperf3 through it.

pub const HELP: &str = "rvpp-bench wireguard [--seconds S | --batches N] [--runs N]
    [--sizes 64,1400,imix] [--no-wireguard-go] [--wg-go-seconds S] [--json]
  One core. Per size: rvpp's encrypt + decrypt (the wg nodes' seal_payload/open_payload with
  the replay window), next to the raw chacha20poly1305 crate's and ring's seal + open of the
  same bytes, run in alternation: Mpps, Gbit/s of plaintext, clocks/packet (one encrypt and one decrypt),
  and rvpp / raw. Then wireguard-go between two namespaces, iperf3 TCP through it (root;
  the whole path: TUN, UDP sockets, kernel, both ends on this machine), and rvpp's 1400 B
  figure over it (not like for like: rvpp's is the crypto path alone). --batches N runs a
  fixed N batches of 256 packets per measurement instead (for instruction counts under
  callgrind).";

use rvpp_dataplane::runtime::{clocks, tsc_hz};
use rvpp_dataplane::wireguard::node::{open_payload, seal_payload};
use rvpp_dataplane::wireguard::noise::{SessionKeys, DATA_HDR, MSG_DATA, TAG_LEN};
use rvpp_dataplane::wireguard::session::Keypair;
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Simple IMIX: 7 x 64 B, 4 x 576 B, 1 x 1400 B.
const IMIX: [usize; 12] = [64, 64, 64, 64, 64, 64, 64, 576, 576, 576, 576, 1400];
const BATCH: usize = 256;

#[derive(Clone, Copy, Default)]
struct Rate {
    mpps: f64,
    gbps: f64,
    clocks: f64,
}

fn sizes_of(name: &str) -> Result<Vec<usize>, String> {
    if name == "imix" {
        return Ok(IMIX.to_vec());
    }
    let n: usize = name.parse().map_err(|_| format!("bad size {name}"))?;
    if !(20..=9000).contains(&n) {
        return Err(format!("size {n} out of 20..=9000"));
    }
    Ok(vec![n])
}

/// How long a measurement runs: `seconds`, or exactly `batches` batches.
#[derive(Clone, Copy)]
struct Budget {
    seconds: f64,
    batches: Option<u64>,
}

impl Budget {
    fn more(&self, started: Instant, done: u64) -> bool {
        match self.batches {
            Some(n) => done < n,
            None => started.elapsed().as_secs_f64() < self.seconds,
        }
    }
}

/// Run `one(packet length, buffer)` over a batch of buffers until the budget is spent.
fn drive(
    budget: Budget,
    lens: &[usize],
    mut one: impl FnMut(usize, &mut [u8]) -> bool,
) -> Result<Rate, String> {
    let cap = lens.iter().max().copied().unwrap_or(64) + DATA_HDR + TAG_LEN + 16;
    let mut bufs: Vec<Vec<u8>> = (0..BATCH).map(|i| vec![(i & 0xff) as u8; cap]).collect();
    let (mut pkts, mut bytes, mut clk) = (0u64, 0u64, 0u64);
    let t = Instant::now();
    while budget.more(t, pkts / BATCH as u64) {
        let c0 = clocks();
        for (i, b) in bufs.iter_mut().enumerate() {
            let len = lens[i % lens.len()];
            if !one(len, b) {
                return Err("a packet failed to open".into());
            }
            bytes += len as u64;
        }
        clk += clocks() - c0;
        pkts += BATCH as u64;
    }
    let secs = clk as f64 / tsc_hz() as f64;
    Ok(Rate {
        mpps: pkts as f64 / secs / 1e6,
        gbps: bytes as f64 * 8.0 / secs / 1e9,
        clocks: clk as f64 / pkts.max(1) as f64,
    })
}

fn keypairs() -> (Keypair, Keypair) {
    let k = |send, recv, initiator| SessionKeys {
        send,
        recv,
        local_index: 1,
        remote_index: 2,
        initiator,
    };
    (
        Keypair::new(&k([1; 32], [2; 32], true), 0),
        Keypair::new(&k([2; 32], [1; 32], true), 0),
    )
}

/// rvpp: header, seal, then open (replay window included) of each packet in place.
// Not inlined, so that callgrind tells rvpp's instructions from the crate's.
#[inline(never)]
fn rvpp_rate(budget: Budget, lens: &[usize]) -> Result<Rate, String> {
    let (tx, rx) = keypairs();
    drive(budget, lens, |len, b| {
        let Some(c) = tx.next_counter() else {
            return false;
        };
        b[0] = MSG_DATA;
        b[4..8].copy_from_slice(&tx.remote_index.to_le_bytes());
        b[8..16].copy_from_slice(&c.to_le_bytes());
        let Some(n) = seal_payload(&tx, c, &mut b[DATA_HDR..], len) else {
            return false;
        };
        open_payload(&rx, c, &mut b[DATA_HDR..DATA_HDR + n]).is_ok()
    })
}

/// The crate alone: seal and open of the same bytes, no padding, header or window.
#[inline(never)]
fn raw_rate(budget: Budget, lens: &[usize]) -> Result<Rate, String> {
    use chacha20poly1305::aead::{AeadInPlace, KeyInit};
    use chacha20poly1305::ChaCha20Poly1305;
    let c = ChaCha20Poly1305::new(&[1u8; 32].into());
    let mut ctr = 0u64;
    drive(budget, lens, |len, b| {
        ctr += 1;
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&ctr.to_le_bytes());
        let n = n.into();
        let Ok(tag) = c.encrypt_in_place_detached(&n, &[], &mut b[..len]) else {
            return false;
        };
        c.decrypt_in_place_detached(&n, &[], &mut b[..len], &tag)
            .is_ok()
    })
}

/// ring's ChaCha20-Poly1305 (assembly) on the same bytes: the other candidate AEAD.
#[inline(never)]
fn ring_rate(budget: Budget, lens: &[usize]) -> Result<Rate, String> {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
    let k = UnboundKey::new(&CHACHA20_POLY1305, &[1u8; 32]).map_err(|_| "ring key")?;
    let k = LessSafeKey::new(k);
    let mut ctr = 0u64;
    drive(budget, lens, |len, b| {
        ctr += 1;
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&ctr.to_le_bytes());
        let nonce = || Nonce::assume_unique_for_key(n);
        let Ok(tag) = k.seal_in_place_separate_tag(nonce(), Aad::empty(), &mut b[..len]) else {
            return false;
        };
        k.open_in_place_separate_tag(nonce(), Aad::empty(), tag, &mut b[..len], 0..)
            .is_ok()
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn r2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A child killed when dropped (the wireguard-go daemons, however the run ends).
pub(crate) struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Run `cmd` with `input` on its stdin; its trimmed stdout. Errors name the command only.
pub(crate) fn piped(cmd: &[&str], input: &str) -> Result<String, String> {
    use std::io::Write;
    let mut c = Command::new(cmd[0])
        .args(&cmd[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", cmd[0]))?;
    if let Some(mut i) = c.stdin.take() {
        i.write_all(input.as_bytes()).map_err(|e| e.to_string())?;
    }
    let o = c.wait_with_output().map_err(|e| e.to_string())?;
    if !o.status.success() {
        return Err(format!(
            "{}: {}",
            cmd.join(" "),
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// `wg set` of a wireguard-go device in `ns`: its private key, listen port and one peer. The
/// private key goes on stdin: never in a command line or an error message.
pub(crate) fn wg_set(
    ns: &str,
    dev: &str,
    private_key: &str,
    port: &str,
    peer: &str,
    endpoint: &str,
    allowed: &str,
) -> Result<(), String> {
    piped(
        &[
            "ip",
            "netns",
            "exec",
            ns,
            "wg",
            "set",
            dev,
            "private-key",
            "/dev/stdin",
            "listen-port",
            port,
            "peer",
            peer,
            "endpoint",
            endpoint,
            "allowed-ips",
            allowed,
        ],
        private_key,
    )
    .map(|_| ())
}

/// Two namespaces joined by a veth, wireguard-go in each, iperf3 through the tunnel: Gbit/s.
fn wireguard_go(seconds: u32) -> Result<f64, String> {
    struct Ns(String);
    impl Drop for Ns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let sh = |script: &str| -> Result<String, String> {
        let o = Command::new("sh")
            .args(["-c", script])
            .output()
            .map_err(|e| e.to_string())?;
        if !o.status.success() {
            return Err(format!("{script}: {}", String::from_utf8_lossy(&o.stderr)));
        }
        Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let pid = std::process::id();
    let (a, b) = (format!("rvpp-bwa-{pid}"), format!("rvpp-bwb-{pid}"));
    let _guards = [Ns(a.clone()), Ns(b.clone())];
    sh(&format!(
        "ip netns add {a} && ip netns add {b} && \
         ip -n {a} link add v0 type veth peer name v1 netns {b} && \
         ip -n {a} addr add 198.18.100.1/30 dev v0 && ip -n {b} addr add 198.18.100.2/30 dev v1 && \
         ip -n {a} link set v0 up && ip -n {b} link set v1 up && \
         ip -n {a} link set lo up && ip -n {b} link set lo up"
    ))?;
    // Foreground, so they end with the run; one UAPI socket name each (the socket directory
    // is not per namespace).
    let mut daemons = Vec::new();
    for (ns, dev) in [(&a, "wgba0"), (&b, "wgbb0")] {
        let c = Command::new("ip")
            .args(["netns", "exec", ns, "wireguard-go", "-f", dev])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("wireguard-go: {e}"))?;
        daemons.push(Killed(c));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (ka, kb) = (sh("wg genkey")?, sh("wg genkey")?);
    let pub_of = |k: &str| piped(&["wg", "pubkey"], k);
    let (pa, pb) = (pub_of(&ka)?, pub_of(&kb)?);
    for (ns, dev, key, peer, me, other) in
        [(&a, "wgba0", &ka, &pb, 1, 2), (&b, "wgbb0", &kb, &pa, 2, 1)]
    {
        let (port, other_port) = (51900 + me, 51900 + other);
        let (port, ep) = (port.to_string(), format!("198.18.100.{other}:{other_port}"));
        let allowed = format!("198.19.100.{other}/32");
        wg_set(ns, dev, key, &port, peer, &ep, &allowed)?;
        sh(&format!(
            "ip -n {ns} addr add 198.19.100.{me}/24 dev {dev} && ip -n {ns} link set {dev} mtu 1420 up"
        ))?;
    }
    let mut server = Command::new("ip")
        .args([
            "netns",
            "exec",
            &b,
            "iperf3",
            "-s",
            "-1",
            "-B",
            "198.19.100.2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    std::thread::sleep(std::time::Duration::from_millis(500));
    let out = Command::new("ip")
        .args(["netns", "exec", &a, "iperf3", "-c", "198.19.100.2", "-J"])
        .args(["-t", &seconds.to_string()])
        .output()
        .map_err(|e| e.to_string());
    let _ = server.kill();
    let _ = server.wait();
    drop(daemons);
    let out = out?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("iperf3 -J: {e}: {}", String::from_utf8_lossy(&out.stderr)))?;
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .map(|b| b / 1e9)
        .ok_or_else(|| format!("iperf3 gave no receiver figure: {v}"))
}

pub fn run(args: &[String]) -> Result<serde_json::Value, String> {
    let (mut seconds, mut runs, mut wg_go_secs) = (2.0f64, 3usize, 5u32);
    let mut sizes = vec!["64".to_string(), "1400".into(), "imix".into()];
    let mut peer_go = true;
    let mut batches = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .ok_or_else(|| format!("{a} needs a value\n{HELP}"))
        };
        match a.as_str() {
            "--seconds" => seconds = val()?.parse().map_err(|_| "bad --seconds")?,
            "--runs" => runs = val()?.parse().map_err(|_| "bad --runs")?,
            "--sizes" => sizes = val()?.split(',').map(str::to_string).collect(),
            "--wg-go-seconds" => wg_go_secs = val()?.parse().map_err(|_| "bad --wg-go-seconds")?,
            "--batches" => batches = Some(val()?.parse().map_err(|_| "bad --batches")?),
            "--no-wireguard-go" => peer_go = false,
            "-h" | "--help" => {
                println!("{HELP}");
                return Ok(json!({}));
            }
            o => return Err(format!("unknown option {o}\n{HELP}")),
        }
    }
    let runs = runs.max(1);
    let budget = Budget { seconds, batches };
    let mut rows = Vec::new();
    let mut rvpp_1400 = None;
    println!("size    impl   Mpps    Gbit/s  clocks/pkt (encrypt + decrypt)");
    for name in &sizes {
        let lens = sizes_of(name)?;
        let (mut mine, mut raw, mut rng) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            mine.push(rvpp_rate(budget, &lens)?);
            raw.push(raw_rate(budget, &lens)?);
            rng.push(ring_rate(budget, &lens)?);
        }
        let med = |v: &[Rate]| {
            let m = |f: fn(&Rate) -> f64| median(v.iter().map(f).collect());
            Rate {
                mpps: m(|r| r.mpps),
                gbps: m(|r| r.gbps),
                clocks: m(|r| r.clocks),
            }
        };
        let (m, r, g) = (med(&mine), med(&raw), med(&rng));
        for (what, x) in [("rvpp", m), ("raw", r), ("ring", g)] {
            println!(
                "{name:<7} {what:<6} {:<7.2} {:<7.2} {:.0}",
                x.mpps, x.gbps, x.clocks
            );
        }
        let over = |b: Rate| if b.gbps > 0.0 { m.gbps / b.gbps } else { 0.0 };
        let (ratio, ratio_ring) = (over(r), over(g));
        println!(
            "{name:<7} rvpp / raw chacha20poly1305: {ratio:.2}, rvpp / raw ring: {ratio_ring:.2}"
        );
        if name == "1400" {
            rvpp_1400 = Some(m.gbps);
        }
        let j = |x: Rate| json!({"mpps": r2(x.mpps), "gbps": r2(x.gbps), "clocks_per_packet": r2(x.clocks)});
        rows.push(json!({
            "size": name,
            "rvpp": j(m),
            "raw_chacha20poly1305": j(r),
            "raw_ring_chacha20_poly1305": j(g),
            "ratio_rvpp_to_raw": r2(ratio),
            "ratio_rvpp_to_ring": r2(ratio_ring),
        }));
    }
    let go = if !peer_go {
        json!(null)
    } else if go_peer_missing() {
        println!("wireguard-go: skipped (needs root, wireguard-go, wg and iperf3)");
        json!({"skipped": "needs root, wireguard-go, wg and iperf3"})
    } else {
        match wireguard_go(wg_go_secs) {
            Ok(g) => {
                println!("wireguard-go iperf3 TCP through two namespaces: {g:.2} Gbit/s");
                let ratio = rvpp_1400.map(|m| r2(m / g.max(1e-9)));
                if let Some(x) = ratio {
                    println!(
                        "rvpp 1400 B in-process / wireguard-go iperf3: {x:.2} (not like for like)"
                    );
                }
                json!({"iperf3_gbps": r2(g), "ratio_rvpp_1400_to_wireguard_go": ratio})
            }
            Err(e) => {
                println!("wireguard-go: failed: {e}");
                json!({"error": e})
            }
        }
    };
    Ok(json!({
        "benchmark": "wireguard",
        "seconds": seconds,
        "batches": batches,
        "runs": runs,
        "sizes": rows,
        "wireguard_go": go,
    }))
}

/// wireguard-go's peer needs root and the tools.
fn go_peer_missing() -> bool {
    // The effective uid, from /proc.
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false);
    let have = |t: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    !(root && have("wireguard-go") && have("wg") && have("iperf3"))
}
