//! dpdk-testpmd as a same-run peer: forwarding between two net_null vdevs on one pinned core.
//!
//! `io` forwards without touching packets. `5tswap` with `copy` has net_null copy a packet into
//! each rx mbuf and testpmd read and rewrite its headers, so it touches packet memory as rvpp's
//! graph does: a peer whose speed moves with the machine's memory and cache state.

use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

struct Testpmd {
    child: Child,
    stdin: Option<ChildStdin>,
    log: std::path::PathBuf,
}

impl Drop for Testpmd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

impl Testpmd {
    fn cmd(&mut self, c: &str, wait: Duration) {
        if let Some(s) = &mut self.stdin {
            let _ = writeln!(s, "{c}");
            let _ = s.flush();
        }
        std::thread::sleep(wait);
    }
}

/// Sum of the numbers after `key` (such as `TX-packets:`) on every line of testpmd's output.
pub fn sum_counter(out: &str, key: &str) -> u64 {
    out.lines()
        .filter_map(|l| {
            let p = l.find(key)? + key.len();
            l[p..].split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

/// Mpps that testpmd forwards between two net_null ports of `size`-byte packets in forward
/// mode `mode` (io, 5tswap, macswap...), its forwarding lcore on `core`, for `seconds`.
pub fn null_forward(
    testpmd: &str,
    mode: &str,
    size: usize,
    copy: bool,
    seconds: f64,
    core: usize,
) -> Result<f64, String> {
    let tag = format!("rvpp-tp-{}", std::process::id());
    let log = std::env::temp_dir().join(format!("{tag}.log"));
    let f = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let main = if core == 0 { 1 } else { 0 };
    let copy = if copy { ",copy=1" } else { "" };
    let mut cmd = Command::new(testpmd);
    cmd.args([
        "--no-huge",
        "-m",
        "1024",
        "--no-pci",
        "--no-shconf",
        "--no-telemetry",
    ])
    .arg(format!("--file-prefix={tag}"))
    .arg(format!("--lcores=0@{main},1@{core}"))
    .arg(format!("--vdev=net_null0,size={size}{copy}"))
    .arg(format!("--vdev=net_null1,size={size}{copy}"))
    .arg("--")
    .args(["--no-mlockall", "-i", "--nb-cores=1"])
    .arg(format!("--forward-mode={mode}"))
    .arg("--total-num-mbufs=32768")
    .stdin(Stdio::piped())
    .stdout(f.try_clone().map_err(|e| e.to_string())?)
    .stderr(f);
    let mut child = cmd.spawn().map_err(|e| format!("{testpmd}: {e}"))?;
    let stdin = child.stdin.take();
    let mut t = Testpmd { child, stdin, log };
    let t0 = Instant::now();
    loop {
        let s = std::fs::read_to_string(&t.log).unwrap_or_default();
        if s.contains("testpmd>") {
            break;
        }
        if let Ok(Some(st)) = t.child.try_wait() {
            return Err(format!("testpmd exited ({st}):\n{s}"));
        }
        if t0.elapsed() > Duration::from_secs(30) {
            return Err(format!("testpmd did not start:\n{s}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // testpmd's stdout is block-buffered into the log: run start .. stop, quit, and read
    // the accumulated forward statistics that `stop` prints once it has exited.
    let start = Instant::now();
    t.cmd("start", Duration::from_secs_f64(seconds));
    t.cmd("stop", Duration::from_millis(0));
    let secs = start.elapsed().as_secs_f64();
    t.cmd("quit", Duration::from_millis(0));
    t.stdin = None;
    let t0 = Instant::now();
    while t.child.try_wait().map_err(|e| e.to_string())?.is_none() {
        if t0.elapsed() > Duration::from_secs(20) {
            return Err("testpmd does not quit".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = std::fs::read_to_string(&t.log).unwrap_or_default();
    let acc = out
        .split("Accumulated forward statistics")
        .nth(1)
        .unwrap_or("");
    let tx = acc.lines().take(4).collect::<Vec<_>>().join("\n");
    let tx = sum_counter(&tx, "TX-packets:");
    if tx == 0 {
        return Err(format!("testpmd forwarded nothing:\n{out}"));
    }
    Ok(tx as f64 / secs / 1e6)
}
