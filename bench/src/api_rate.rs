//! `rvpp-bench api-rate`: how fast rvpp takes routes over the VPP binary API.
//!
//! Starts the release `rvpp` next to this binary with a binary-API socket and measures:
//! * ip_route_add_del per second from one pipelined client (all requests sent without
//!   waiting, replies collected by a second thread), adds then deletes;
//! * the same from 8 clients at once;
//! * the time to program 1M routes while a packet generator forwards to a null interface
//!   through a prefix that does not change, and whether any of that traffic was lost
//!   (generated packets vs null1 tx).
//!
//! The client is written here against the wire format (16-byte frame header, big-endian
//! packed messages, ids from the sockclnt_create table), as a govpp client would see it.

use serde_json::json;
use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const USAGE: &str =
    "api-rate [--routes N (1000000)] [--rate-routes N (200000)] [--clients N (8)] [--rvpp PATH]";

fn frame(p: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&[0u8; 8]);
    out.extend_from_slice(&(p.len() as u32).to_be_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(p);
}

fn read_msg(r: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut h = [0u8; 16];
    r.read_exact(&mut h)?;
    let n = u32::from_be_bytes([h[8], h[9], h[10], h[11]]) as usize;
    let mut p = vec![0u8; n];
    r.read_exact(&mut p)?;
    Ok(p)
}

fn id_of(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[0], p[1]])
}

fn be32(p: &[u8], o: usize) -> u32 {
    u32::from_be_bytes([p[o], p[o + 1], p[o + 2], p[o + 3]])
}

/// One API connection after the handshake.
struct Conn {
    s: UnixStream,
    index: u32,
    ids: HashMap<String, u16>,
}

impl Conn {
    fn connect(path: &Path, name: &str) -> Result<Conn, String> {
        let mut s = UnixStream::connect(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut m = 15u16.to_be_bytes().to_vec();
        m.extend_from_slice(&1u32.to_be_bytes());
        let mut n = name.as_bytes().to_vec();
        n.resize(64, 0);
        m.extend_from_slice(&n);
        let mut f = Vec::new();
        frame(&m, &mut f);
        s.write_all(&f).map_err(|e| e.to_string())?;
        let p = read_msg(&mut s).map_err(|e| format!("handshake: {e}"))?;
        if id_of(&p) != 16 || p.len() < 20 {
            return Err("bad sockclnt_create_reply".into());
        }
        let index = be32(&p, 14);
        let count = u16::from_be_bytes([p[18], p[19]]) as usize;
        let ids = p[20..]
            .chunks(66)
            .take(count)
            .map(|e| {
                let name = String::from_utf8_lossy(&e[2..]);
                (
                    name.trim_end_matches('\0').to_string(),
                    u16::from_be_bytes([e[0], e[1]]),
                )
            })
            .collect();
        Ok(Conn { s, index, ids })
    }

    fn id(&self, name_crc: &str) -> Result<u16, String> {
        self.ids
            .get(name_crc)
            .copied()
            .ok_or_else(|| format!("rvpp does not advertise {name_crc}"))
    }

    /// `cli_inband`, waiting for its reply.
    fn cli(&mut self, cmd: &str) -> Result<String, String> {
        let (req, rep) = (
            self.id("cli_inband_f8377302")?,
            self.id("cli_inband_reply_05879051")?,
        );
        let mut m = req.to_be_bytes().to_vec();
        m.extend_from_slice(&self.index.to_be_bytes());
        m.extend_from_slice(&7u32.to_be_bytes());
        m.extend_from_slice(&(cmd.len() as u32).to_be_bytes());
        m.extend_from_slice(cmd.as_bytes());
        let mut f = Vec::new();
        frame(&m, &mut f);
        self.s.write_all(&f).map_err(|e| e.to_string())?;
        loop {
            let p = read_msg(&mut self.s).map_err(|e| format!("cli {cmd}: {e}"))?;
            if id_of(&p) == rep && p.len() >= 14 {
                let n = be32(&p, 10) as usize;
                let text = String::from_utf8_lossy(&p[14..(14 + n).min(p.len())]).into_owned();
                if be32(&p, 6) != 0 {
                    return Err(format!("cli {cmd}: retval {}", be32(&p, 6) as i32));
                }
                return Ok(text);
            }
        }
    }
}

/// A route request for `dst/len` in table 0 via `nh` on `sw`.
#[allow(clippy::too_many_arguments)] // one argument per wire field that varies
fn route_msg(
    id: u16,
    index: u32,
    ctx: u32,
    add: bool,
    dst: u32,
    len: u8,
    nh: u32,
    sw: u32,
) -> Vec<u8> {
    let mut m = Vec::with_capacity(206);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&index.to_be_bytes());
    m.extend_from_slice(&ctx.to_be_bytes());
    m.push(add as u8); // is_add
    m.push(0); // is_multipath: replace
    m.extend_from_slice(&0u32.to_be_bytes()); // table_id
    m.extend_from_slice(&0u32.to_be_bytes()); // stats_index
    m.push(0); // af ip4
    let mut un = [0u8; 16];
    un[..4].copy_from_slice(&dst.to_be_bytes());
    m.extend_from_slice(&un);
    m.push(len);
    m.push(1); // n_paths
    m.extend_from_slice(&sw.to_be_bytes());
    m.extend_from_slice(&0u32.to_be_bytes()); // table_id
    m.extend_from_slice(&0u32.to_be_bytes()); // rpf_id
    m.push(1); // weight
    m.push(0); // preference
    m.extend_from_slice(&0u32.to_be_bytes()); // type NORMAL
    m.extend_from_slice(&0u32.to_be_bytes()); // flags
    m.extend_from_slice(&0u32.to_be_bytes()); // proto IP4
    let mut nhu = [0u8; 16];
    nhu[..4].copy_from_slice(&nh.to_be_bytes());
    m.extend_from_slice(&nhu);
    m.extend_from_slice(&[0u8; 12]); // via_label, obj_id, classify_table_index
    m.push(0); // n_labels
    m.extend_from_slice(&[0u8; 16 * 7]); // label_stack
    debug_assert_eq!(m.len(), 206);
    m
}

/// Send `dsts` as one pipelined burst on `conn`; returns (seconds, failures).
fn pipelined(
    conn: Conn,
    add: bool,
    dsts: Vec<u32>,
    nh: u32,
    sw: u32,
) -> Result<(f64, u64), String> {
    let req = conn.id("ip_route_add_del_b8ecfe0d")?;
    let rep = conn.id("ip_route_add_del_reply_1992deab")?;
    let n = dsts.len();
    let rd = conn.s.try_clone().map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let reader = std::thread::spawn(move || -> Result<u64, String> {
        let mut r = BufReader::with_capacity(1 << 20, rd);
        let (mut got, mut failed) = (0usize, 0u64);
        while got < n {
            let p = read_msg(&mut r).map_err(|e| format!("reply {got}/{n}: {e}"))?;
            if id_of(&p) == rep {
                got += 1;
                if be32(&p, 6) != 0 {
                    failed += 1;
                }
            }
        }
        Ok(failed)
    });
    let mut w = BufWriter::with_capacity(1 << 20, &conn.s);
    let mut f = Vec::with_capacity(256);
    for (i, d) in dsts.iter().enumerate() {
        f.clear();
        frame(
            &route_msg(req, conn.index, i as u32, add, *d, 24, nh, sw),
            &mut f,
        );
        w.write_all(&f).map_err(|e| e.to_string())?;
    }
    w.flush().map_err(|e| e.to_string())?;
    drop(w);
    let failed = reader.join().map_err(|_| "reader panicked")??;
    Ok((t0.elapsed().as_secs_f64(), failed))
}

/// `count` distinct /24s from 32.0.0.0 on, skipping `skip` of them (host order).
fn prefixes(skip: usize, count: usize) -> Vec<u32> {
    (skip..skip + count)
        .map(|i| 0x2000_0000u32 + ((i as u32) << 8))
        .collect()
}

/// Interface counters from `show interface`: name -> counter -> value.
fn counters(c: &mut Conn) -> Result<HashMap<String, HashMap<String, u64>>, String> {
    let out = c.cli("show interface")?;
    let mut m: HashMap<String, HashMap<String, u64>> = HashMap::new();
    let mut cur = String::new();
    for line in out.lines().skip(1) {
        if !line.starts_with(' ') {
            cur = line.split_whitespace().next().unwrap_or("").to_string();
        }
        if line.len() > 66 {
            let rest = &line[66..];
            let mut it = rest.rsplitn(2, ' ');
            let v = it.next().unwrap_or("").trim();
            let k = it.next().unwrap_or("").trim();
            if let Ok(v) = v.parse::<u64>() {
                m.entry(cur.clone()).or_default().insert(k.to_string(), v);
            }
        }
    }
    Ok(m)
}

fn counter(c: &mut Conn, ifn: &str, k: &str) -> Result<u64, String> {
    Ok(counters(c)?
        .get(ifn)
        .and_then(|m| m.get(k))
        .copied()
        .unwrap_or(0))
}

/// Wait until `ifn`'s `k` stops moving; returns the value.
fn settle(c: &mut Conn, ifn: &str, k: &str) -> Result<u64, String> {
    let mut last = counter(c, ifn, k)?;
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let v = counter(c, ifn, k)?;
        if v == last {
            return Ok(v);
        }
        last = v;
    }
}

/// A release rvpp started for a benchmark; killed and its directory removed on drop.
pub(crate) struct Daemon {
    child: Child,
    dir: PathBuf,
}

impl Daemon {
    /// Starts `rvpp -c <dir>/startup.conf` with `conf` and waits up to 20 s for `ready`.
    pub(crate) fn spawn(
        rvpp: &Path,
        dir: PathBuf,
        conf: &str,
        ready: impl Fn() -> bool,
    ) -> Result<Daemon, String> {
        let path = dir.join("startup.conf");
        std::fs::write(&path, conf).map_err(|e| e.to_string())?;
        let child = Command::new(rvpp)
            .arg("-c")
            .arg(&path)
            .env("RVPP_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("{}: {e}", rvpp.display()))?;
        let mut d = Daemon { child, dir };
        let t = Instant::now();
        while !ready() {
            if let Ok(Some(st)) = d.child.try_wait() {
                return Err(format!("rvpp exited at start: {st}"));
            }
            if t.elapsed() > Duration::from_secs(20) {
                return Err("rvpp did not become ready in 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(d)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start(rvpp: &Path) -> Result<(Daemon, PathBuf), String> {
    let dir = std::env::temp_dir().join(format!("rvpp-api-rate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let api = dir.join("api.sock");
    let conf = format!(
        "unix {{ nodaemon cli-listen {} }}\nsocksvr {{ socket-name {} }}\nstatseg {{ socket-name {} }}\nbuffers {{ buffers-per-numa 32768 }}\n",
        dir.join("cli.sock").display(),
        api.display(),
        dir.join("stats.sock").display()
    );
    let d = Daemon::spawn(rvpp, dir, &conf, || api.exists())?;
    Ok((d, api))
}

/// The release `rvpp` built beside this binary.
pub(crate) fn rvpp_beside() -> Result<PathBuf, String> {
    Ok(std::env::current_exe()
        .map_err(|e| e.to_string())?
        .with_file_name("rvpp"))
}

/// A clear error when `rvpp` was not built.
pub(crate) fn require(rvpp: &Path) -> Result<(), String> {
    if rvpp.exists() {
        return Ok(());
    }
    Err(format!(
        "{} not found (cargo build --release -p rvpp-control)",
        rvpp.display()
    ))
}

pub fn run(args: &[String]) -> Result<serde_json::Value, String> {
    let mut routes = 1_000_000usize;
    let mut rate_routes = 200_000usize;
    let mut clients = 8usize;
    let mut rvpp = rvpp_beside()?;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--routes" => routes = val()?.parse().map_err(|_| "bad --routes")?,
            "--rate-routes" => rate_routes = val()?.parse().map_err(|_| "bad --rate-routes")?,
            "--clients" => clients = val()?.parse().map_err(|_| "bad --clients")?,
            "--rvpp" => rvpp = PathBuf::from(val()?),
            _ => return Err(format!("unknown option {a}\n{USAGE}")),
        }
    }
    require(&rvpp)?;
    let clients = clients.max(1);
    let (_daemon, api) = start(&rvpp)?;
    let mut ctl = Conn::connect(&api, "api-rate-ctl")?;

    // pg -> null through 198.19.0.0/16, which the programming below never touches.
    for l in [
        "create null interface null1",
        "set interface ip address null1 198.19.255.1/30",
        "set ip neighbor null1 198.19.255.2 02:00:00:00:00:02",
        "ip route add 198.19.0.0/16 via 198.19.255.2 null1",
        "set interface state null1 up",
    ] {
        ctl.cli(l)?;
    }
    let sw = ctl
        .cli("show interface")?
        .lines()
        .find(|l| l.starts_with("null1 "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|x| x.parse::<u32>().ok())
        .ok_or("no null1 in show interface")?;
    let nh = 0xc613_ff02u32; // 198.19.255.2

    // 1. One pipelined client.
    let (t_add, f_add) = pipelined(
        Conn::connect(&api, "api-rate-1")?,
        true,
        prefixes(0, rate_routes),
        nh,
        sw,
    )?;
    let (t_del, f_del) = pipelined(
        Conn::connect(&api, "api-rate-1")?,
        false,
        prefixes(0, rate_routes),
        nh,
        sw,
    )?;
    let one_add = rate_routes as f64 / t_add;
    let one_del = rate_routes as f64 / t_del;
    println!(
        "1 pipelined client: {rate_routes} adds in {t_add:.3} s = {:.0}/s; deletes {:.0}/s (failed {})",
        one_add,
        one_del,
        f_add + f_del
    );

    // 2. N clients at once, each its own share of prefixes.
    let per = rate_routes / clients;
    let multi = |add: bool| -> Result<(f64, u64), String> {
        let conns: Vec<Conn> = (0..clients)
            .map(|k| Conn::connect(&api, &format!("api-rate-m{k}")))
            .collect::<Result<_, _>>()?;
        let t0 = Instant::now();
        let hs: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(k, c)| {
                std::thread::spawn(move || pipelined(c, add, prefixes(k * per, per), nh, sw))
            })
            .collect();
        let mut failed = 0;
        for h in hs {
            failed += h.join().map_err(|_| "client panicked")??.1;
        }
        Ok((t0.elapsed().as_secs_f64(), failed))
    };
    let (tm_add, fm_add) = multi(true)?;
    let (tm_del, fm_del) = multi(false)?;
    let multi_add = (per * clients) as f64 / tm_add;
    let multi_del = (per * clients) as f64 / tm_del;
    println!(
        "{clients} clients: {} adds in {tm_add:.3} s = {multi_add:.0}/s; deletes {multi_del:.0}/s (failed {})",
        per * clients,
        fm_add + fm_del
    );

    // 3. Calibrate the packet rate, then run traffic long enough to cover the programming.
    let cal_n = 20_000_000u64;
    ctl.cli(&format!(
        "create packet-generator interface pgcal count {cal_n} size 64 dst 198.19.128.0/24"
    ))?;
    ctl.cli("set interface ip address pgcal 198.18.1.1/24")?;
    ctl.cli("set interface state pgcal up")?;
    let cal0 = counter(&mut ctl, "null1", "tx packets")?;
    ctl.cli("packet-generator enable")?;
    let t0 = Instant::now();
    while counter(&mut ctl, "null1", "tx packets")? - cal0 < cal_n {
        if t0.elapsed() > Duration::from_secs(60) {
            return Err("calibration traffic did not finish".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let pps = cal_n as f64 / t0.elapsed().as_secs_f64();
    // Traffic for about twice the expected programming time, plus half a second.
    let expect_s = routes as f64 / one_add.max(1.0) * 2.0 + 0.5;
    let count = ((pps * expect_s) as u64).clamp(1_000_000, 2_000_000_000);
    ctl.cli(&format!(
        "create packet-generator interface pg0 count {count} size 64 dst 198.19.0.0/24"
    ))?;
    ctl.cli("set interface ip address pg0 198.18.0.1/24")?;
    ctl.cli("set interface state pg0 up")?;
    let base_tx = counter(&mut ctl, "null1", "tx packets")?;
    ctl.cli("packet-generator enable")?;
    std::thread::sleep(Duration::from_millis(50));
    let tx_at_start = counter(&mut ctl, "null1", "tx packets")? - base_tx;
    let (t_prog, f_prog) = pipelined(
        Conn::connect(&api, "api-rate-1m")?,
        true,
        prefixes(0, routes),
        nh,
        sw,
    )?;
    let tx_at_end = counter(&mut ctl, "null1", "tx packets")? - base_tx;
    let sent = settle(&mut ctl, "pg0", "rx packets")?;
    let tx = settle(&mut ctl, "null1", "tx packets")? - base_tx;
    let lost = sent.saturating_sub(tx);
    let overlapped = tx_at_start > 0 && tx_at_end < count;
    // The rate the traffic really had while routes were being programmed (the calibration
    // rate above was measured before, on an idle control plane).
    let during_pps = tx_at_end.saturating_sub(tx_at_start) as f64 / t_prog;
    println!(
        "{routes} routes programmed in {t_prog:.3} s ({:.0}/s, failed {f_prog}) under {:.1} Mpps \
         (calibrated beforehand: {:.1}); unchanged prefix: {sent} generated, {tx} forwarded, {lost} lost{}",
        routes as f64 / t_prog,
        during_pps / 1e6,
        pps / 1e6,
        if overlapped {
            ""
        } else {
            " (traffic ended before programming did)"
        }
    );
    Ok(json!({
        "benchmark": "api-rate",
        "pipelined_1_client": {"routes": rate_routes, "add_per_s": one_add, "del_per_s": one_del, "failed": f_add + f_del},
        "clients": clients,
        "pipelined_n_clients": {"routes": per * clients, "add_per_s": multi_add, "del_per_s": multi_del, "failed": fm_add + fm_del},
        "program_1m": {"routes": routes, "seconds": t_prog, "per_s": routes as f64 / t_prog, "failed": f_prog,
                        "traffic_pps_during_programming": during_pps,
                        "calibration_pps_before_programming": pps,
                        "generated": sent, "forwarded": tx, "lost": lost,
                        "traffic_overlapped": overlapped},
        "targets": {"pipelined_per_s": 500000, "program_1m_s": 5.0},
        // Every target, and nothing failed anywhere, and the traffic really overlapped.
        "meets_targets": one_add >= 500_000.0 && multi_add >= 500_000.0 && t_prog < 5.0
            && lost == 0 && overlapped
            && f_prog + f_add + f_del + fm_add + fm_del == 0,
    }))
}
