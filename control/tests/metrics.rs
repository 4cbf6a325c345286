//! rvpp's Prometheus endpoint (`metrics { listen }`) against the real daemon: a scrape parsed
//! by prometheus_client's text parser agrees with `show interface`, `show errors`, `show ip
//! fib` and the stats segment as vpp_papi's VPPStats reads it; bad HTTP clients (oversized,
//! half-open, a flood, wrong method or path) get an answer or a timeout and never hold up
//! another scrape or the forwarding.

#[path = "../../test-support/skip.rs"]
mod skip;

mod common;
use common::{if_counter, pg_to_null, wait_for, Opts, Rvpp};

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A port nothing listens on now (the kernel's pick for an ephemeral bind).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// rvpp with the API, the stats segment and the metrics endpoint; `cpu` is the cpu stanza's body.
fn start(tag: &str, cpu: &str) -> (Rvpp, SocketAddr) {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let conf = format!(
        "buffers {{ buffers-per-numa 8192 }}\ncpu {{ {cpu} }}\n\
         socksvr {{ socket-name {{dir}}/api.sock }}\n\
         statseg {{ socket-name {{dir}}/stats.sock }}\n\
         metrics {{ listen {addr} }}"
    );
    let r = Rvpp::start_with(
        &format!("metrics-{tag}"),
        Opts {
            conf: &conf,
            log_file: true,
            wait_for: &["api.sock", "stats.sock"],
            ..Default::default()
        },
    );
    wait_for("the metrics port", 10, || TcpStream::connect(addr).is_ok());
    (r, addr)
}

/// An HTTP answer: status code, head, body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// Send `req` on a new connection and read the answer to the end (the server closes).
fn http(addr: SocketAddr, req: &[u8]) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may answer (431) and stop reading before all of an oversized request is in.
    let _ = s.write_all(req);
    read_answer(&mut s)
}

fn read_answer(s: &mut TcpStream) -> Answer {
    let mut raw = Vec::new();
    if let Err(e) = s.read_to_end(&mut raw) {
        assert!(!raw.is_empty(), "no answer: {e}");
    }
    let text = String::from_utf8(raw).expect("answer is UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("status line: {head}"));
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("Content-Length")
        .parse()
        .unwrap();
    if !body.is_empty() {
        // (A HEAD answer has the length of the body it leaves out.)
        assert_eq!(len, body.len(), "Content-Length against the body");
    }
    Answer {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

fn scrape(addr: SocketAddr) -> String {
    let a = http(addr, b"GET /metrics HTTP/1.1\r\nHost: rvpp\r\n\r\n");
    assert_eq!(a.status, 200, "{}", a.head);
    assert!(
        a.head
            .contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
        "{}",
        a.head
    );
    a.body
}

/// A parsed scrape: family types, and samples by (name, sorted labels).
struct Scrape {
    types: BTreeMap<String, String>,
    samples: BTreeMap<(String, Vec<(String, String)>), f64>,
}

impl Scrape {
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut l: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        l.sort();
        *self
            .samples
            .get(&(name.to_string(), l))
            .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
    }
    /// Samples of `name` with label `key` = `value`.
    fn with<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = (BTreeMap<&'a str, &'a str>, f64)> + 'a {
        self.samples
            .iter()
            .filter(move |((n, _), _)| n == name)
            .map(|((_, l), v)| {
                (
                    l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
                    *v,
                )
            })
    }
}

/// Parse `body` with prometheus_client; None (after a skip) when it is not installed.
fn parse(r: &Rvpp, body: &str) -> Option<Scrape> {
    let file = r.path("scrape.txt");
    std::fs::write(&file, body).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/metrics/parse_metrics.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&file)
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.code() == Some(77) {
        skip::skip(text.trim());
        return None;
    }
    assert!(
        out.status.success(),
        "prometheus_client rejected the scrape: {}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut s = Scrape {
        types: BTreeMap::new(),
        samples: BTreeMap::new(),
    };
    for l in text.lines() {
        let f: Vec<&str> = l.split('\t').collect();
        match f[0] {
            "family" => {
                s.types.insert(f[1].to_string(), f[2].to_string());
            }
            "sample" => {
                let labels = f[2]
                    .split('\x1f')
                    .filter(|kv| !kv.is_empty())
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap();
                        (k.to_string(), v.to_string())
                    })
                    .collect();
                let v: f64 = f[3].parse().unwrap();
                assert!(
                    s.samples.insert((f[1].to_string(), labels), v).is_none(),
                    "duplicate sample {l}"
                );
            }
            _ => panic!("parse_metrics.py: {l}"),
        }
    }
    Some(s)
}

/// Interface names in `show interface`.
fn if_names(int: &str) -> Vec<String> {
    int.lines()
        .skip(1)
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

/// `show errors`: (node, reason) -> count.
fn show_errors(out: &str) -> BTreeMap<(String, String), u64> {
    let mut m = BTreeMap::new();
    for l in out.lines().skip(1) {
        let w: Vec<&str> = l.split_whitespace().collect();
        if w.len() < 4 {
            continue;
        }
        let reason = w[2..w.len() - 1].join(" ");
        m.insert((w[1].to_string(), reason), w[0].parse().unwrap());
    }
    m
}

/// What tests/stats/read_stats.py (vpp_papi's VPPStats) prints, by line kind and key.
fn vppstats(r: &Rvpp) -> Option<BTreeMap<(String, String), Vec<u64>>> {
    if !skip::need_python_module("vpp_papi.vpp_stats") {
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/stats/read_stats.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(r.path("stats.sock"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "read_stats.py: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut m = BTreeMap::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split('\t').collect();
        match f.as_slice() {
            // name <sw_if_index> <name>: keyed by the name.
            ["name", sw, name] => {
                m.insert(("name".into(), name.to_string()), vec![sw.parse().unwrap()]);
            }
            [kind, key, nums @ ..] => {
                let nums = nums.iter().filter_map(|x| x.parse().ok()).collect();
                m.insert((kind.to_string(), key.to_string()), nums);
            }
            _ => {}
        }
    }
    Some(m)
}

/// Tag `ifname` through the binary API as calico does; false (after a skip) without vpp_papi.
fn api_tag(r: &Rvpp, ifname: &str, tag: &str) -> bool {
    let apidir = r.path("api-json");
    rvpp_vppapi::apijson::write_api_json_dir(&apidir).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/metrics/papi_tag.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&apidir)
        .arg(r.path("api.sock"))
        .arg(ifname)
        .arg(tag)
        .output()
        .unwrap();
    if out.status.code() == Some(77) {
        skip::skip(String::from_utf8_lossy(&out.stdout).trim());
        return false;
    }
    assert!(
        out.status.success(),
        "papi_tag.py: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

/// Run `count` pg packets to null1 and wait until every one is forwarded or counted; half
/// of them hit a drop route, so error counters move too.
fn traffic(r: &Rvpp, count: u64) {
    for c in pg_to_null(count) {
        r.ctl(&c);
    }
    r.ctl("ip route add 198.19.7.128/25 drop");
    r.ctl("packet-generator enable");
    wait_for("traffic done", 60, || {
        let int = r.ctl("show interface");
        let errs: u64 = show_errors(&r.ctl("show errors")).values().sum();
        if_counter(&int, "pg0", "rx packets") == count
            && if_counter(&int, "null1", "tx packets") + errs >= count
    });
}

#[test]
fn scrape_agrees_with_the_cli_and_the_stats_segment() {
    let (r, addr) = start("agree", "main-core 0 corelist-workers 1");
    traffic(&r, 1000);
    let tagged = api_tag(&r, "pg0", "calico \"uplink\"\\1");
    // The traffic has stopped: what follows reads stable counters. The stats segment is
    // rewritten every 10 ms; let it catch up.
    std::thread::sleep(Duration::from_millis(300));
    let int = r.ctl("show interface");
    let errs = show_errors(&r.ctl("show errors"));
    let fib = r.ctl("show ip fib");
    let body = scrape(addr);
    let stats = vppstats(&r);
    let Some(m) = parse(&r, &body) else { return };

    // Types: counters end in _total (the parser strips it from the family name).
    for (fam, ty) in &m.types {
        let has_total = m.samples.keys().any(|(n, _)| n == &format!("{fam}_total"));
        assert_eq!(ty == "counter", has_total, "{fam} is a {ty}");
        assert!(fam.starts_with("rvpp_"), "{fam}");
    }

    // Interfaces, against `show interface`, with the calico tag as a label.
    let names = if_names(&int);
    assert!(names.contains(&"pg0".into()) && names.contains(&"null1".into()));
    assert_eq!(m.get("rvpp_interfaces", &[]) as usize, names.len());
    for name in &names {
        let tag = if name == "pg0" && tagged {
            "calico \"uplink\"\\1"
        } else {
            ""
        };
        let l = [("interface", name.as_str()), ("tag", tag)];
        for (metric, cli) in [
            ("rx_packets", "rx packets"),
            ("rx_bytes", "rx bytes"),
            ("tx_packets", "tx packets"),
            ("tx_bytes", "tx bytes"),
            ("drops", "drops"),
        ] {
            let v = m.get(&format!("rvpp_interface_{metric}_total"), &l);
            assert_eq!(
                v as u64,
                if_counter(&int, name, cli),
                "{name} {metric}\n{int}"
            );
        }
    }
    assert_eq!(
        m.get(
            "rvpp_interface_rx_packets_total",
            &[
                ("interface", "pg0"),
                ("tag", if tagged { "calico \"uplink\"\\1" } else { "" })
            ]
        ),
        1000.0
    );

    // Error counters, against `show errors` (which lists the non-zero ones).
    let mut nonzero = BTreeMap::new();
    for (l, v) in m.with("rvpp_errors_total") {
        assert!(matches!(l["severity"], "info" | "error"), "{l:?}");
        if v > 0.0 {
            nonzero.insert((l["node"].to_string(), l["reason"].to_string()), v as u64);
        }
    }
    assert!(!errs.is_empty(), "the traffic counts something");
    assert_eq!(nonzero, errs);

    // Workers: vpp_wk_0 forwarded everything.
    let wk = [("worker", "vpp_wk_0"), ("thread", "1")];
    assert_eq!(m.get("rvpp_workers", &[]), 1.0);
    assert!(m.get("rvpp_worker_busy_seconds_total", &wk) > 0.0);
    assert!(m.get("rvpp_worker_idle_seconds_total", &wk) > 0.0);
    assert!(m.get("rvpp_worker_vectors_per_call", &wk) >= 1.0);
    assert!(m.get("rvpp_worker_clocks_per_packet", &wk) > 0.0);
    assert!(m.get("rvpp_worker_loops_total", &wk) >= m.get("rvpp_worker_idle_loops_total", &wk));
    let lookup = [
        ("node", "ip4-lookup"),
        ("worker", "vpp_wk_0"),
        ("thread", "1"),
    ];
    assert_eq!(m.get("rvpp_node_packets_total", &lookup), 1000.0);
    assert!(
        if_counter(&int, "null1", "tx packets") < 1000,
        "some were dropped\n{int}"
    );
    assert!(m.get("rvpp_node_calls_total", &lookup) >= 1.0);

    // FIB sizes, against the `routes:N` of every table in `show ip fib`.
    let cli_routes: usize = fib
        .lines()
        .filter_map(|l| l.split("routes:").nth(1)?.trim().parse::<usize>().ok())
        .sum();
    assert!(cli_routes >= 1, "{fib}");
    assert_eq!(
        m.get("rvpp_fib_routes", &[("family", "ip4")]) as usize,
        cli_routes
    );

    // Buffers.
    let buf = |s: &str| m.get("rvpp_buffers", &[("state", s)]);
    assert_eq!(m.get("rvpp_buffers_capacity", &[]), 8192.0);
    assert_eq!(buf("in_use") + buf("cached") + buf("available"), 8192.0);

    // The binary API's message counts.
    if tagged {
        let l = [
            ("message", "sw_interface_tag_add_del"),
            ("result", "handled"),
        ];
        assert_eq!(m.get("rvpp_api_messages_total", &l), 1.0);
        let l = [("message", "sw_interface_dump"), ("result", "handled")];
        assert!(m.get("rvpp_api_messages_total", &l) >= 1.0);
    }

    // The stats segment as VPPStats reads it: the same interface and error counters.
    if let Some(st) = stats {
        let key = |k: &str, v: &str| (k.to_string(), v.to_string());
        for name in &names {
            let sw = st[&key("name", name)][0].to_string();
            let tag = if name == "pg0" && tagged {
                "calico \"uplink\"\\1"
            } else {
                ""
            };
            let l = [("interface", name.as_str()), ("tag", tag)];
            let g = |f: &str| m.get(&format!("rvpp_interface_{f}_total"), &l) as u64;
            assert_eq!(
                st[&key("rx", &sw)],
                vec![g("rx_packets"), g("rx_bytes")],
                "{name}"
            );
            assert_eq!(
                st[&key("tx", &sw)],
                vec![g("tx_packets"), g("tx_bytes")],
                "{name}"
            );
            assert_eq!(st[&key("drops", &sw)], vec![g("drops")], "{name}");
        }
        let mut seg_errs = 0;
        for (l, v) in m.with("rvpp_errors_total") {
            let k = key("err", &format!("/err/{}/{}", l["node"], l["reason"]));
            if let Some(seg) = st.get(&k) {
                assert_eq!(seg, &vec![v as u64], "{k:?}");
                seg_errs += 1;
            }
        }
        assert_eq!(
            seg_errs,
            st.keys().filter(|k| k.0 == "err").count(),
            "every /err/ entry has its sample"
        );
        let pool = |s: &str| st[&key("scalar", &format!("/buffer-pools/default-numa-0/{s}"))][0];
        assert_eq!(pool("available") as f64, buf("available"));
        assert_eq!(pool("used") as f64, buf("in_use"));
    }
    r.stop();
}

/// Requests the endpoint refuses get the right status, and the server answers on.
#[test]
fn bad_requests_get_a_status() {
    let (r, addr) = start("bad", "workers 0");
    let status = |req: &[u8]| http(addr, req).status;
    assert_eq!(status(b"GET /metrics HTTP/1.0\r\n\r\n"), 200);
    assert_eq!(status(b"GET /metrics?name[]=x HTTP/1.1\n\n"), 200);
    let head = http(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let a = http(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(a.status, 405);
    assert!(a.head.contains("Allow: GET, HEAD"), "{}", a.head);
    assert_eq!(status(b"PUT / HTTP/1.1\r\n\r\n"), 405);
    assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), 404);
    assert_eq!(status(b"GET /metrics/x HTTP/1.1\r\n\r\n"), 404);
    assert_eq!(status(b"hello\r\n\r\n"), 400);
    assert_eq!(status(b"GET /metrics HTTP/2\r\n\r\n"), 400);
    assert_eq!(status(b"\xff\xfe /metrics HTTP/1.1\r\n\r\n"), 400);
    // An oversized request: 64 KiB of headers.
    let mut big = b"GET /metrics HTTP/1.1\r\n".to_vec();
    while big.len() < 64 << 10 {
        big.extend_from_slice(
            b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
        );
    }
    big.extend_from_slice(b"\r\n");
    assert_eq!(status(&big), 431);
    // A head that never ends but stays under the limit: answered when the deadline passes.
    let t = Instant::now();
    assert_eq!(status(b"GET /metrics HTTP/1.1\r\nX: y\r\n"), 408);
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    assert_eq!(status(b"GET /metrics HTTP/1.1\r\n\r\n"), 200);
    assert!(r.log().contains("Prometheus metrics on http://127.0.0.1:"));
    r.stop();
}

/// Half-open and idle clients, and more of them than the server serves at once, neither delay
/// another scrape nor the forwarding.
#[test]
fn slow_clients_and_floods_do_not_hold_the_server() {
    let (r, addr) = start("slow", "workers 0");
    // A half-open client (connects, sends nothing) and a slow one (half a request line).
    let mut idle = TcpStream::connect(addr).unwrap();
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /met").unwrap();
    let t = Instant::now();
    scrape(addr);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "a scrape beside a half-open client took {:?}",
        t.elapsed()
    );
    for s in [&mut idle, &mut slow] {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        assert_eq!(read_answer(s).status, 408, "the server gives up on it");
    }
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());

    // Forwarding under a flood: traffic runs while the connection cap is held and scrapes
    // keep coming.
    for c in pg_to_null(200_000) {
        r.ctl(&c);
    }
    r.ctl("packet-generator enable");
    let held: Vec<TcpStream> = (0..rvpp_control::metrics::MAX_CONNECTIONS)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let busy = http(addr, b"GET /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(busy.status, 503, "past the cap: {}", busy.head);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let mut answered = 0;
    let flood = Instant::now();
    // Well inside the held connections' request deadline (they are not given up on yet).
    while flood.elapsed() < Duration::from_millis(1500) {
        let s = http(addr, b"GET /metrics HTTP/1.1\r\n\r\n").status;
        assert_eq!(s, 503);
        answered += 1;
    }
    assert!(answered > 10, "{answered} answers in 1.5 s");
    drop(held);
    wait_for("the traffic forwarded", 60, || {
        let int = r.ctl("show interface");
        if_counter(&int, "pg0", "rx packets") == 200_000
    });
    let int = r.ctl("show interface");
    assert_eq!(if_counter(&int, "null1", "tx packets"), 200_000, "{int}");
    // The held connections closed; the server serves again.
    wait_for("a scrape after the flood", 10, || {
        http(addr, b"GET /metrics HTTP/1.1\r\n\r\n").status == 200
    });
    r.stop();
}

/// The value of the sample line starting with `prefix` (a plain text lookup, for polling).
fn sample_value(body: &str, prefix: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Scrapes while a worker forwards: every counter only grows, and the scrape after the
/// traffic still parses and agrees with `show interface`.
#[test]
fn counters_only_grow_while_traffic_runs() {
    let (r, addr) = start("live", "main-core 0 corelist-workers 1");
    const COUNT: u64 = 300_000;
    for c in pg_to_null(COUNT) {
        r.ctl(&c);
    }
    r.ctl("packet-generator enable");
    let rx = r#"rvpp_interface_rx_packets_total{interface="pg0",tag=""} "#;
    let tx = r#"rvpp_interface_tx_packets_total{interface="null1",tag=""} "#;
    let busy = r#"rvpp_worker_busy_seconds_total{worker="vpp_wk_0",thread="1"} "#;
    let mut last = [0f64; 3];
    let mut scrapes = 0;
    let t = Instant::now();
    loop {
        let body = scrape(addr);
        let now = [rx, tx, busy].map(|p| sample_value(&body, p).expect(p));
        for k in 0..3 {
            assert!(now[k] >= last[k], "{k}: {} after {}", now[k], last[k]);
        }
        last = now;
        scrapes += 1;
        if now[0] as u64 == COUNT && now[1] as u64 == COUNT {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "traffic stuck at {now:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(scrapes >= 2, "the traffic outlasted one scrape");
    let body = scrape(addr);
    let Some(m) = parse(&r, &body) else { return };
    let int = r.ctl("show interface");
    let l = [("interface", "null1"), ("tag", "")];
    assert_eq!(
        m.get("rvpp_interface_tx_packets_total", &l) as u64,
        if_counter(&int, "null1", "tx packets")
    );
    r.stop();
}
