//! `rvpp-bench ipsec`: ESP AES-GCM-128 and -256 on one core, in process. Encrypt: inner IPv4
//! packets routed into a protected ipip0 are injected at `esp4-encrypt-tun` (then ip4-lookup,
//! ip4-rewrite and a sink that frees them); decrypt: ESP packets sealed beforehand by the
//! peer's SA are injected at `esp4-decrypt-tun` (then ip4-input, lookup, rewrite, sink). The
//! ESP node's own clocks per packet (the runtime's per-node TSC counters) give its Gbit/s and
//! Mpps. Peers in the same run: aws-lc-rs's raw AES-GCM seal / open on the same payload sizes
//! (the ceiling), `openssl speed -evp aes-{128,256}-gcm` (the reference), and DPDK's
//! `dpdk-test-crypto-perf` on the intel-ipsec-mb PMD (`crypto_aesni_gcm`), its worker lcore on
//! the benchmark's core.

pub const HELP: &str =
    "rvpp-bench ipsec [--seconds S] [--runs N] [--no-openssl] [--no-dpdk] [--json]
                 [--size 64|576|1400|1500]... [--cipher aes-128-gcm|aes-256-gcm]...
  One core, in process. ESP AES-GCM-128/-256 encrypt (esp4-encrypt-tun) and decrypt
  (esp4-decrypt-tun) at 64 B, 1400 B and IMIX (7 x 64, 4 x 576, 1 x 1500 B inner packets):
  Gbit/s of inner packets, Mpps and clocks/packet of the ESP node, each next to aws-lc-rs's
  raw AES-GCM on the same payload (ratio: ESP / raw), openssl speed -evp (ratio: ESP /
  openssl) and dpdk-test-crypto-perf's throughput test on crypto_aesni_gcm with the same
  payload and AAD sizes (ratio: ESP / dpdk), all measured in this run. Median of N runs of S
  seconds per figure (crypto-perf: about S seconds of operations per size). --size and
  --cipher measure only those cases (for profiling); rows needing other sizes show NaN.";

use rvpp_dataplane::buffer::{BufferPool, Buffers};
use rvpp_dataplane::device::TxQueue;
use rvpp_dataplane::feature::FeatureTables;
use rvpp_dataplane::forwarding::{Forwarding, Path, Prefix};
use rvpp_dataplane::graph::DeviceNodes;
use rvpp_dataplane::ipsec::sa::{trailer_len, write_trailer, GCM_ICV, HEAD};
use rvpp_dataplane::ipsec::{self, CryptoAlg, IntegAlg, IpsecTable, Outer, Protect, Sa, SaConfig};
use rvpp_dataplane::nodes::{esp, ipip, standard_with};
use rvpp_dataplane::runtime::{clocks, tsc_hz, Runtime};
use rvpp_dataplane::tables::Shared;
use serde_json::json;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Inner IPv4 packet sizes measured; 64 and 1400 are reported, IMIX is made of 64/576/1500.
const SIZES: [usize; 4] = [64, 576, 1400, 1500];
const IMIX: [(usize, f64); 3] = [(64, 7.0), (576, 4.0), (1500, 1.0)];
const VECTOR: usize = 256;
const MAC_UP: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_PEER: [u8; 6] = [2, 0, 0, 0, 0, 2];
/// Pre-sealed packets per size for decrypt, replayed in a cycle: the decrypt SA has neither
/// anti-replay nor ESN (whose high half would move on), the encrypt SA has both.
const SEALED: usize = 4096;

/// A tx queue that frees what it is given.
struct Sink;

impl TxQueue for Sink {
    fn tx_node(&self) -> &'static str {
        "pg-tx"
    }
    fn tx(&mut self, bufs: &mut Buffers, pkts: &[u32]) -> usize {
        bufs.free(pkts);
        pkts.len()
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

fn sa(alg: CryptoAlg, spi: u32, esn: bool) -> Result<Arc<Sa>, String> {
    Sa::new(SaConfig {
        id: spi,
        spi,
        alg,
        key: vec![0x5a; alg.key_len()],
        integ: IntegAlg::None,
        integ_key: vec![],
        salt: 0x0102_0304,
        esn,
        anti_replay: esn,
        inbound: false,
        udp_encap: None,
        tunnel: None,
    })
    .map(Arc::new)
    .map_err(|e| e.to_string())
}

struct Bench {
    rt: Runtime,
    tunnel: u32,
    up: u32,
}

/// up0 198.18.0.1/24 (peer 198.18.0.2), ipip0 198.18.0.1 -> .2 protected by `out` (sealing)
/// and `inb` (opening); 198.19.0.0/16 routed into ipip0, 198.19.1.0/24 (what decrypt
/// delivers) routed out of up0.
fn bench(out: Arc<Sa>, inb: Arc<Sa>) -> Result<Bench, String> {
    let e = |e: rvpp_dataplane::forwarding::FwdError| e.to_string();
    let pool = BufferPool::with_backing(16384, 2048, false).map_err(|e| e.to_string())?;
    let shared = Shared::new();
    let tables = FeatureTables::default();
    let graph = standard_with(&tables)
        .device(DeviceNodes::tx_only("pg-tx"))
        .build()?;
    let mut fwd = Forwarding::new(shared.clone());
    fwd.use_features(graph.features.clone());
    let up = fwd
        .interface_add("up0", "pg", MAC_UP, true, 9000)
        .map_err(e)?;
    let tunnel = fwd
        .interface_add("ipip0", "ipip", [0; 6], false, 9000)
        .map_err(e)?;
    fwd.address_add(up, Prefix::parse("198.18.0.1/24").ok_or("prefix")?)
        .map_err(e)?;
    fwd.address_add(tunnel, Prefix::parse("198.19.255.1/32").ok_or("prefix")?)
        .map_err(e)?;
    for sw in [up, tunnel] {
        fwd.set_admin_up(sw, true).map_err(e)?;
    }
    for f in [esp::ENCRYPT4, esp::ENCRYPT6] {
        fwd.feature_enable(tunnel, f.arc, f.node, true).map_err(e)?;
    }
    fwd.neighbor_add(up, ip("198.18.0.2"), MAC_PEER, true)
        .map_err(e)?;
    fwd.route_add(
        0,
        Prefix::parse("198.19.0.0/16").ok_or("prefix")?,
        vec![Path::attached(tunnel)],
    )
    .map_err(e)?;
    fwd.route_add(
        0,
        Prefix::parse("198.19.1.0/24").ok_or("prefix")?,
        vec![Path::via(ip("198.18.0.2"), Some(up))],
    )
    .map_err(e)?;
    let mut ts = ipip::Tunnels::default();
    ts.insert(ipip::Tunnel {
        sw_if_index: tunnel,
        instance: 0,
        src: ip("198.18.0.1"),
        dst: ip("198.18.0.2"),
        encap_fib: 0,
        table_id: 0,
        flags: 0,
        dscp: 0,
    });
    tables.get::<ipip::Table>().publish(ts);
    let mut it = IpsecTable::default();
    let in_id = inb.cfg.id;
    it.insert_sa(out.clone());
    it.insert_sa(inb);
    it.set_protect(Protect {
        sw_if_index: tunnel,
        out,
        sa_in: vec![in_id],
        outer: Outer {
            src: ip("198.18.0.1"),
            dst: ip("198.18.0.2"),
            encap_fib: 0,
        },
    });
    tables.get::<ipsec::Table>().publish(it);
    let mut rt = Runtime::new(graph, pool.local(), shared, 0, "bench".into())?;
    rt.set_tx(up, Box::new(Sink))?;
    drop(fwd);
    Ok(Bench { rt, tunnel, up })
}

/// A 20-byte IPv4 header with its checksum.
fn ip4_header(total_len: usize, proto: u8, src: [u8; 4], dst: [u8; 4]) -> [u8; 20] {
    let mut h = [0u8; 20];
    if let Some(mut w) = rvpp_dataplane::wire::Ip4HdrMut::new(&mut h) {
        let ip = |a: [u8; 4]| u32::from_be_bytes(a);
        w.init(ip(src), ip(dst), proto, 64, total_len as u16);
    }
    h
}

/// An inner IPv4/UDP packet of `len` bytes to `dst`.
fn inner(len: usize, dst: [u8; 4]) -> Vec<u8> {
    let mut p = vec![0u8; len.max(28)];
    let h = ip4_header(p.len(), 17, [198, 19, 2, 2], dst);
    p[..20].copy_from_slice(&h);
    p
}

/// The ESP packet (outer IPv4 198.18.0.2 -> .1) carrying `inner`, sealed by `sa` with `seq`.
fn sealed(sa: &Sa, seq: u64, inner: &[u8]) -> Result<Vec<u8>, String> {
    let t = trailer_len(inner.len());
    let esp_len = HEAD + inner.len() + t + GCM_ICV;
    let mut p = vec![0u8; 20 + esp_len];
    let h = ip4_header(p.len(), 50, [198, 18, 0, 2], [198, 18, 0, 1]);
    p[..20].copy_from_slice(&h);
    let body = &mut p[20..];
    body[HEAD..HEAD + inner.len()].copy_from_slice(inner);
    write_trailer(&mut body[HEAD + inner.len()..HEAD + inner.len() + t], 4);
    sa.seal(seq, body).map_err(|e| format!("{e:?}"))?;
    Ok(p)
}

/// Clocks per packet of `node` while vectors of `packets` (cycled) are injected into it for
/// `secs`, after a short warm-up; checks that `counted` (the node's success counter) grew by
/// every packet.
fn node_clocks(
    b: &mut Bench,
    node: &str,
    ok_code: u16,
    packets: &[Vec<u8>],
    tx_sw: Option<u32>,
    secs: f64,
) -> Result<f64, String> {
    let idx = b.rt.graph().index(node).ok_or("no node")? as usize;
    let ok_i =
        b.rt.graph()
            .error_index(node, ok_code)
            .ok_or("no counter")? as usize;
    let stats = b.rt.stats();
    let mut bis = vec![0u32; VECTOR];
    let mut k = 0;
    let mut run = |b: &mut Bench, d: Duration| -> Result<(), String> {
        let t = Instant::now();
        while t.elapsed() < d {
            for bi in bis.iter_mut() {
                let bufs = b.rt.buffers();
                *bi = bufs
                    .alloc_from_bytes(&packets[k % packets.len()])
                    .ok_or("buffer pool empty")?;
                let m = bufs.meta(*bi);
                m.rx_sw_if_index = b.up;
                if let Some(sw) = tx_sw {
                    m.tx_sw_if_index = sw;
                }
                k += 1;
            }
            b.rt.inject(node, &bis)?;
        }
        Ok(())
    };
    run(b, Duration::from_millis(100))?;
    let (c0, v0, ok0) = (
        stats.nodes[idx].clocks.get(),
        stats.nodes[idx].vectors.get(),
        stats.errors[ok_i].get(),
    );
    run(b, Duration::from_secs_f64(secs))?;
    let (c, v, ok) = (
        stats.nodes[idx].clocks.get() - c0,
        stats.nodes[idx].vectors.get() - v0,
        stats.errors[ok_i].get() - ok0,
    );
    if v == 0 || ok != v {
        return Err(format!("{node}: {ok} of {v} packets succeeded"));
    }
    Ok(c as f64 / v as f64)
}

/// aws-lc-rs's raw AES-GCM on `len` bytes: (seal, open) clocks per call.
fn raw_clocks(alg: CryptoAlg, len: usize, secs: f64) -> Result<(f64, f64), String> {
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};
    let a = if alg == CryptoAlg::AesGcm128 {
        &AES_128_GCM
    } else {
        &AES_256_GCM
    };
    let key = LessSafeKey::new(UnboundKey::new(a, &vec![0x5a; alg.key_len()]).map_err(|_| "key")?);
    let mut buf = vec![0u8; len + 16];
    let nonce = || Nonce::assume_unique_for_key([1; 12]);
    let mut seal = |n: u64| -> Result<(), String> {
        for _ in 0..n {
            let tag = key
                .seal_in_place_separate_tag(nonce(), Aad::from(&[0u8; 12]), &mut buf[..len])
                .map_err(|_| "seal")?;
            let _ = std::hint::black_box(tag);
        }
        Ok(())
    };
    let per = |f: &mut dyn FnMut(u64) -> Result<(), String>| -> Result<f64, String> {
        f(1000)?;
        let (t, c0) = (Instant::now(), clocks());
        let mut n = 0u64;
        while t.elapsed().as_secs_f64() < secs {
            f(1000)?;
            n += 1000;
        }
        Ok((clocks() - c0) as f64 / n as f64)
    };
    let s = per(&mut seal)?;
    // A valid packet to open again and again.
    let mut sealed = vec![0u8; len + 16];
    let tag = key
        .seal_in_place_separate_tag(nonce(), Aad::from(&[0u8; 12]), &mut sealed[..len])
        .map_err(|_| "seal")?;
    sealed[len..].copy_from_slice(tag.as_ref());
    let mut work = sealed.clone();
    let mut open = |n: u64| -> Result<(), String> {
        for _ in 0..n {
            work.copy_from_slice(&sealed);
            let p = key
                .open_in_place(nonce(), Aad::from(&[0u8; 12]), &mut work)
                .map_err(|_| "open")?;
            std::hint::black_box(p);
        }
        Ok(())
    };
    let o = per(&mut open)?;
    Ok((s, o))
}

/// `openssl speed -evp <cipher> -seconds S -bytes N`: bytes per second, None if openssl is
/// missing or says something unexpected.
fn openssl_speed(cipher: &str, len: usize, secs: f64) -> Option<f64> {
    let out = std::process::Command::new("openssl")
        .args(["speed", "-evp", cipher, "-seconds"])
        .arg(format!("{}", secs.ceil().max(1.0) as u64))
        .args(["-bytes", &len.to_string()])
        .output()
        .ok()?;
    parse_openssl(&String::from_utf8_lossy(&out.stdout), cipher)
}

/// The figure on openssl speed's result line (`AES-128-GCM   2673179.09k`), in bytes/s.
fn parse_openssl(text: &str, cipher: &str) -> Option<f64> {
    let line = text
        .lines()
        .rev()
        .find(|l| l.to_ascii_lowercase().starts_with(cipher))?;
    let v = line.split_whitespace().last()?;
    v.strip_suffix('k')?.parse::<f64>().ok().map(|k| k * 1000.0)
}

/// One result row of crypto-perf's throughput test: the tool's own figures for one buffer size.
#[derive(Clone, Copy, Debug, PartialEq)]
struct PerfRow {
    size: usize,
    mops: f64,
    /// Of the buffer (payload) bytes, as the tool counts them.
    gbps: f64,
    cycles: f64,
}

const CRYPTO_PERF: &str = "dpdk-test-crypto-perf";

/// Whether `prog` is an executable file on PATH.
fn on_path(prog: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            std::fs::metadata(d.join(prog))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// The EAL's runtime directory for `prefix`: /var/run/dpdk as root, else under
/// $XDG_RUNTIME_DIR (or /tmp), as eal_create_runtime_dir makes it.
fn eal_runtime_dir(prefix: &str) -> std::path::PathBuf {
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|v| v.split_whitespace().nth(1))
            == Some("0")
    });
    let base = if root {
        "/var/run".into()
    } else {
        std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/tmp".into())
    };
    std::path::Path::new(&base).join("dpdk").join(prefix)
}

/// Why a crypto-perf run gave no figure, from its exit status and output: a missing PMD
/// shows only as an EAL device-parse error, so it is named here.
fn crypto_perf_failure(status: &str, stdout: &str, stderr: &str) -> String {
    if stderr.contains("Unable to parse device") || stdout.contains("No crypto devices type") {
        return format!(
            "the crypto_aesni_gcm PMD did not load (Debian package librte-crypto-ipsec-mb23, in \
             /usr/lib/x86_64-linux-gnu/dpdk/pmds-*) ({status})"
        );
    }
    let last = stderr
        .lines()
        .chain(stdout.lines())
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("no output");
    format!("{CRYPTO_PERF} gave no usable figure ({status}): {last}")
}

/// One `dpdk-test-crypto-perf` throughput test on the intel-ipsec-mb AES-GCM PMD: AES-GCM
/// with a `key`-byte key, encrypt or decrypt, `aad` bytes of AAD and a 16-byte tag, one
/// buffer size per entry of `payloads`, its worker lcore on CPU `core` and its main lcore on
/// another (the main lcore spins while it waits). Returns the tool's row for each size, or
/// why there is no figure. `--no-huge` makes no hugepage files; the runtime directory the EAL
/// makes anyway is removed.
fn crypto_perf(
    key: usize,
    decrypt: bool,
    aad: usize,
    payloads: &[usize],
    core: usize,
    secs: f64,
) -> Result<Vec<PerfRow>, String> {
    if !on_path(CRYPTO_PERF) {
        return Err(format!(
            "{CRYPTO_PERF} is not on PATH (Debian package dpdk)"
        ));
    }
    let main = if core == 0 { 1 } else { 0 };
    let prefix = format!("rvpp-bench-cperf-{}", std::process::id());
    let sizes = payloads
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",");
    // About `secs` of the slowest size (1400 B runs at about 5 M ops/s here).
    let ops = ((secs * 5e6) as u64).clamp(100_000, 50_000_000).to_string();
    let out = std::process::Command::new("taskset")
        .args(["-c", &format!("{main},{core}"), CRYPTO_PERF])
        .args(["--lcores", &format!("0@{main},1@{core}")])
        .args([
            "--no-huge",
            "-m",
            "1024",
            "--no-pci",
            "--no-telemetry",
            "--file-prefix",
            &prefix,
        ])
        .args(["--vdev", "crypto_aesni_gcm0", "--log-level", "error", "--"])
        .args([
            "--ptest",
            "throughput",
            "--devtype",
            "crypto_aesni_gcm",
            "--silent",
        ])
        .args(["--optype", "aead", "--aead-algo", "aes-gcm", "--aead-op"])
        .arg(if decrypt { "decrypt" } else { "encrypt" })
        .args(["--aead-key-sz", &key.to_string(), "--aead-iv-sz", "12"])
        .args(["--aead-aad-sz", &aad.to_string(), "--digest-sz", "16"])
        .args(["--buffer-sz", &sizes, "--total-ops", &ops])
        .output();
    let _ = std::fs::remove_dir_all(eal_runtime_dir(&prefix));
    let out = out.map_err(|e| format!("taskset {CRYPTO_PERF}: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let got = parse_crypto_perf(&text);
    if payloads.iter().all(|p| got.iter().any(|g| g.size == *p)) {
        return Ok(got);
    }
    Err(crypto_perf_failure(
        &out.status.to_string(),
        &text,
        &String::from_utf8_lossy(&out.stderr),
    ))
}

/// The result rows of crypto-perf's throughput test (`lcore, Buf Size, Burst Size, Enqueued,
/// Dequeued, Failed Enq, Failed Deq, MOps, Gbps, Cycles/Buf`). A row that dequeued less than
/// it enqueued, failed any operation or has a figure that is not a positive number is left
/// out.
fn parse_crypto_perf(text: &str) -> Vec<PerfRow> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [_, size, _, enq, deq, fail_enq, fail_deq, mops, gbps, cycles] = f[..] else {
                return None;
            };
            let n = |s: &str| s.parse::<u64>().ok();
            let pos = |s: &str| s.parse::<f64>().ok().filter(|x| x.is_finite() && *x > 0.0);
            let (enq, deq) = (n(enq)?, n(deq)?);
            if enq == 0 || deq != enq || n(fail_enq)? != 0 || n(fail_deq)? != 0 {
                return None;
            }
            Some(PerfRow {
                size: n(size)? as usize,
                mops: pos(mops)?,
                gbps: pos(gbps)?,
                cycles: pos(cycles)?,
            })
        })
        .collect()
}

/// One reported size: (bytes per packet, ESP clocks, raw library, openssl and crypto-perf
/// clocks).
type Case = (f64, f64, f64, f64, f64);

/// IMIX's average (bytes, clocks) per packet from per-size clocks.
fn imix(per: &dyn Fn(usize) -> f64) -> (f64, f64) {
    let n: f64 = IMIX.iter().map(|x| x.1).sum();
    let bytes = IMIX.iter().map(|&(l, w)| l as f64 * w).sum::<f64>() / n;
    let clk = IMIX.iter().map(|&(l, w)| per(l) * w).sum::<f64>() / n;
    (bytes, clk)
}

pub fn run(args: &[String]) -> Result<serde_json::Value, String> {
    let (mut seconds, mut runs, mut openssl, mut dpdk) = (2.0f64, 3usize, true, true);
    let (mut sizes, mut ciphers) = (Vec::new(), Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--seconds" => seconds = val()?.parse().map_err(|_| "bad --seconds")?,
            "--runs" => runs = val()?.parse().map_err(|_| "bad --runs")?,
            "--no-openssl" => openssl = false,
            "--no-dpdk" => dpdk = false,
            // Filters for profiling one case (callgrind); rows that need a size left out are NaN.
            "--size" => {
                let l: usize = val()?.parse().map_err(|_| "bad --size")?;
                if !SIZES.contains(&l) {
                    return Err(format!("--size must be one of {SIZES:?}"));
                }
                sizes.push(l);
            }
            "--cipher" => match val()?.as_str() {
                "aes-128-gcm" => ciphers.push(CryptoAlg::AesGcm128),
                "aes-256-gcm" => ciphers.push(CryptoAlg::AesGcm256),
                _ => return Err("--cipher is aes-128-gcm or aes-256-gcm".into()),
            },
            "--help" | "-h" => {
                println!("{HELP}");
                return Ok(json!({"benchmark": "ipsec", "help": true}));
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    if runs == 0 || seconds <= 0.0 {
        return Err("--runs and --seconds must be positive".into());
    }
    let hz = tsc_hz() as f64;
    // On the last core, as graph and cnat run; crypto-perf's worker lcore goes there too.
    let core = core_affinity::get_core_ids().and_then(|ids| ids.last().copied());
    if let Some(c) = core {
        core_affinity::set_for_current(c);
    }
    let core = core.map_or(0, |c| c.id);
    let mut dpdk_skipped: Option<String> = (!dpdk).then(|| "--no-dpdk".to_string());
    let mut rows = Vec::new();
    println!("ESP AES-GCM on one core (figures unmeasured unless run on a quiet machine)");
    println!(
        "{:<12} {:<8} {:>6} {:>9} {:>8} {:>9} {:>9} {:>8} {:>9} {:>8} {:>9} {:>8}",
        "cipher",
        "dir",
        "size",
        "clk/pkt",
        "Mpps",
        "Gbit/s",
        "raw Gb/s",
        "esp/raw",
        "ossl Gb/s",
        "esp/ossl",
        "dpdk Gb/s",
        "esp/dpdk"
    );
    if sizes.is_empty() {
        sizes = SIZES.to_vec();
    }
    if ciphers.is_empty() {
        ciphers = vec![CryptoAlg::AesGcm128, CryptoAlg::AesGcm256];
    }
    for &alg in &ciphers {
        let cipher = if alg == CryptoAlg::AesGcm128 {
            "aes-128-gcm"
        } else {
            "aes-256-gcm"
        };
        // Per size: median clocks of encrypt and decrypt, raw seal/open, openssl bytes/s.
        let mut enc = Vec::new();
        let mut dec = Vec::new();
        let mut raw = Vec::new();
        let mut ossl = Vec::new();
        for &len in &sizes {
            let (mut e, mut d, mut rs, mut ro) = (vec![], vec![], vec![], vec![]);
            for _ in 0..runs {
                // Interleaved per run: ESP encrypt, ESP decrypt, raw library.
                let peer_out = sa(alg, 0x2000, false)?;
                let mut b = bench(sa(alg, 0x1000, true)?, sa(alg, 0x2000, false)?)?;
                let tunnel = b.tunnel;
                let pkt = inner(len, [198, 19, 7, 7]);
                e.push(node_clocks(
                    &mut b,
                    "esp4-encrypt-tun",
                    esp::encrypt_error::ENCRYPTED,
                    std::slice::from_ref(&pkt),
                    Some(tunnel),
                    seconds,
                )?);
                let sealed_pkts = (1..=SEALED as u64)
                    .map(|s| sealed(&peer_out, s, &inner(len, [198, 19, 1, 7])))
                    .collect::<Result<Vec<_>, _>>()?;
                d.push(node_clocks(
                    &mut b,
                    esp::DECRYPT4,
                    esp::decrypt_error::DECRYPTED,
                    &sealed_pkts,
                    None,
                    seconds,
                )?);
                let payload = len + trailer_len(len);
                let (s, o) = raw_clocks(alg, payload, seconds)?;
                rs.push(s);
                ro.push(o);
            }
            enc.push((len, crate::graph::median(e)));
            dec.push((len, crate::graph::median(d)));
            raw.push((len, crate::graph::median(rs), crate::graph::median(ro)));
            ossl.push((
                len,
                if openssl {
                    openssl_speed(cipher, len, seconds)
                } else {
                    None
                },
            ));
        }
        // crypto-perf on the payloads the ESP node seals (inner packet and trailer), with the
        // SAs' AAD: 12 bytes for the encrypt SA (ESN), 8 for the decrypt SA.
        let key = if alg == CryptoAlg::AesGcm128 { 16 } else { 32 };
        let payloads: Vec<usize> = sizes.iter().map(|&l| l + trailer_len(l)).collect();
        // Per direction and size: median cycles per buffer, and the tool's own MOps.
        let mut dpdk_clk: [Vec<(usize, f64)>; 2] = [Vec::new(), Vec::new()];
        let mut dpdk_mops: [Vec<(usize, f64)>; 2] = [Vec::new(), Vec::new()];
        let med = |v: Vec<f64>| {
            if v.is_empty() {
                f64::NAN
            } else {
                crate::graph::median(v)
            }
        };
        for (i, (decrypt, aad)) in [(false, 12), (true, 8)].into_iter().enumerate() {
            let mut per: Vec<Vec<PerfRow>> = vec![Vec::new(); sizes.len()];
            for _ in 0..runs {
                if dpdk_skipped.is_some() {
                    break;
                }
                match crypto_perf(key, decrypt, aad, &payloads, core, seconds) {
                    Ok(got) => {
                        for (j, p) in payloads.iter().enumerate() {
                            per[j].extend(got.iter().filter(|g| g.size == *p));
                        }
                    }
                    Err(e) => dpdk_skipped = Some(e),
                }
            }
            if dpdk_skipped.is_none() {
                for (&l, v) in sizes.iter().zip(per) {
                    dpdk_clk[i].push((l, med(v.iter().map(|r| r.cycles).collect())));
                    dpdk_mops[i].push((l, med(v.iter().map(|r| r.mops).collect())));
                }
            }
        }
        let at =
            |v: &[(usize, f64)], l: usize| v.iter().find(|x| x.0 == l).map_or(f64::NAN, |x| x.1);
        let raw_at = |l: usize, open: bool| {
            raw.iter()
                .find(|x| x.0 == l)
                .map_or(f64::NAN, |x| if open { x.2 } else { x.1 })
        };
        // openssl as clocks per packet of that size.
        let ossl_clk = |l: usize| {
            ossl.iter()
                .find(|x| x.0 == l)
                .and_then(|x| x.1)
                .map_or(f64::NAN, |bps| l as f64 * hz / bps)
        };
        for (dir, v, open) in [("encrypt", &enc, false), ("decrypt", &dec, true)] {
            let d = &dpdk_clk[usize::from(open)];
            let dm = &dpdk_mops[usize::from(open)];
            let cases: [(&str, Case); 3] = [
                (
                    "64",
                    (64.0, at(v, 64), raw_at(64, open), ossl_clk(64), at(d, 64)),
                ),
                (
                    "1400",
                    (
                        1400.0,
                        at(v, 1400),
                        raw_at(1400, open),
                        ossl_clk(1400),
                        at(d, 1400),
                    ),
                ),
                ("imix", {
                    let (bytes, c) = imix(&|l| at(v, l));
                    let raw = imix(&|l| raw_at(l, open)).1;
                    (bytes, c, raw, imix(&ossl_clk).1, imix(&|l| at(d, l)).1)
                }),
            ];
            for (name, (bytes, clk, raw_clk, ossl_c, dpdk_c)) in cases {
                // The tool's own MOps at that size (IMIX is derived from cycles only).
                let tool_mops = name.parse::<usize>().map_or(f64::NAN, |l| at(dm, l));
                let g = bytes * 8.0 * hz / clk / 1e9;
                let mpps = hz / clk / 1e6;
                let raw_g = bytes * 8.0 * hz / raw_clk / 1e9;
                let ossl_g = bytes * 8.0 * hz / ossl_c / 1e9;
                let dpdk_g = bytes * 8.0 * hz / dpdk_c / 1e9;
                println!(
                    "{:<12} {:<8} {:>6} {:>9.0} {:>8.2} {:>9.2} {:>9.2} {:>8.2} {:>9.2} {:>8.2} {:>9.2} {:>8.2}",
                    cipher,
                    dir,
                    name,
                    clk,
                    mpps,
                    g,
                    raw_g,
                    g / raw_g,
                    ossl_g,
                    g / ossl_g,
                    dpdk_g,
                    g / dpdk_g
                );
                let finite = |x: f64| if x.is_finite() { json!(x) } else { json!(null) };
                rows.push(json!({
                    "cipher": cipher, "dir": dir, "size": name, "clocks_per_packet": clk,
                    "mpps": mpps, "gbps": g, "raw_gbps": raw_g, "ratio_raw": g / raw_g,
                    "openssl_gbps": finite(ossl_g), "ratio_openssl": finite(g / ossl_g),
                    "dpdk_gbps": finite(dpdk_g), "ratio_dpdk": finite(g / dpdk_g),
                    "dpdk_clocks_per_packet": finite(dpdk_c), "dpdk_tool_mops": finite(tool_mops),
                }));
            }
        }
    }
    if let Some(why) = &dpdk_skipped {
        println!("dpdk-test-crypto-perf peer skipped: {why}");
    }
    Ok(json!({
        "benchmark": "ipsec",
        "core": core,
        "dpdk_peer_skipped": dpdk_skipped,
        "seconds": seconds,
        "runs": runs,
        "tsc_hz": hz,
        "rows": rows,
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn openssl_result_line_parsed() {
        let t = "The 'numbers' are in 1000s of bytes per second processed.\ntype           1400 bytes\nAES-128-GCM    2673179.09k\n";
        assert_eq!(
            super::parse_openssl(t, "aes-128-gcm"),
            Some(2_673_179_090.0)
        );
        assert_eq!(super::parse_openssl("nothing", "aes-128-gcm"), None);
    }

    use super::{crypto_perf_failure, parse_crypto_perf, PerfRow};

    /// Captured from a real run here (dpdk 22.11, `--ptest throughput --devtype
    /// crypto_aesni_gcm --buffer-sz 68,1404`, AES-128-GCM encrypt, 12-byte AAD), stdout as is.
    const CRYPTO_PERF_OUT: &str = include_str!("../testdata/crypto-perf-throughput.txt");
    /// The same table broken: a row that lost operations, one with failed enqueues, a `-nan`
    /// figure and a row cut off mid-line, then an EAL exit.
    const CRYPTO_PERF_BAD: &str = include_str!("../testdata/crypto-perf-malformed.txt");

    #[test]
    fn crypto_perf_rows_of_a_real_run_parsed() {
        assert_eq!(
            parse_crypto_perf(CRYPTO_PERF_OUT),
            vec![
                PerfRow {
                    size: 68,
                    mops: 5.2526,
                    gbps: 2.8574,
                    cycles: 494.99
                },
                PerfRow {
                    size: 1404,
                    mops: 1.4991,
                    gbps: 16.8381,
                    cycles: 1734.36
                },
            ]
        );
    }

    #[test]
    fn crypto_perf_malformed_rows_are_left_out() {
        assert_eq!(parse_crypto_perf(CRYPTO_PERF_BAD), vec![]);
        // Each fault alone, on the real output.
        let lost = CRYPTO_PERF_OUT.replace("200000      200000", "200000      199999");
        assert_eq!(parse_crypto_perf(&lost), vec![]);
        let zero = CRYPTO_PERF_OUT.replace("494.99", "0.00");
        assert_eq!(parse_crypto_perf(&zero).len(), 1);
        assert_eq!(parse_crypto_perf(""), vec![]);
    }

    #[test]
    fn crypto_perf_missing_pmd_is_named() {
        let eal = "EAL: failed to parse device \"crypto_aesni_gcm0\"\nEAL: Unable to parse device 'crypto_aesni_gcm0'\nEAL: Unregistering with invalid input parameter\n";
        let why = crypto_perf_failure("exit status: 1", "", eal);
        assert!(why.contains("crypto_aesni_gcm PMD did not load"), "{why}");
        let other = crypto_perf_failure(
            "exit status: 1",
            "",
            "EAL: Cannot get hugepage information.\n",
        );
        assert!(
            other.ends_with("EAL: Cannot get hugepage information."),
            "{other}"
        );
    }
}
