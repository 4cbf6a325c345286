//! rvpp's own Prometheus endpoint (`metrics { listen <ip:port> }`): `GET /metrics` in the text
//! exposition format 0.0.4, so no exporter has to sit between the stats segment and Prometheus.
//!
//! The values are the ones `show interface`, `show errors`, `show runtime` and the stats segment
//! print: each worker's `ThreadStats` counters (relaxed atomics the worker alone writes) minus
//! the `clear` baseline. A scrape only loads them; it takes no lock a worker takes per packet
//! (the interface table comes from its published snapshot, route counts from the control
//! side's `Forwarding`, which workers never lock).
//!
//! Serving: an accept thread hands each connection to a thread of its own, at most
//! [`MAX_CONNECTIONS`] at a time; past that a client gets 503 at once, so a flood of scrapes
//! costs a bounded number of threads. A connection carries one request: the head must arrive
//! within [`REQUEST_DEADLINE`] (each read waits [`READ_TIMEOUT`] at most) and fit in
//! [`MAX_REQUEST`] bytes (else 431), so a slow or half-open client holds one thread for a few
//! seconds and never delays another client. GET and HEAD of `/metrics` only (404 for other
//! paths, 405 for other methods, 400 for what is not HTTP/1.x).

use crate::api::MessageCounts;
use crate::daemon::Dataplane;
use rvpp_dataplane::forwarding::Af;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 8;
/// The largest request head (request line and headers) read.
pub const MAX_REQUEST: usize = 8192;
/// How long one read may wait.
pub const READ_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the whole request head may take to arrive.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(3);
/// How long writing the answer may block on a client that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A running endpoint; dropping it stops accepting (connections being served finish).
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// The address it listens on (the real port when the configured one was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the blocking accept with a connection of our own.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        if let Some(j) = self.accept.take() {
            let _ = j.join();
        }
    }
}

/// Listen on `addr` and serve `GET /metrics`.
/// `api`: the binary API's message counts, when the API is served.
pub fn serve(
    dp: Arc<Dataplane>,
    api: Option<Arc<MessageCounts>>,
    addr: SocketAddr,
) -> std::io::Result<MetricsServer> {
    let listener = TcpListener::bind(addr)?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let active = Arc::new(AtomicUsize::new(0));
    let accept = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("metrics-accept".into())
            .spawn(move || {
                for s in listener.incoming() {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    match s {
                        Ok(s) => accept_one(&dp, &api, &active, s),
                        // Out of descriptors, say: do not spin on it.
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })?
    };
    Ok(MetricsServer {
        addr,
        stop,
        accept: Some(accept),
    })
}

/// Decrements the active-connection count when a connection's thread ends, however it ends.
struct Slot(Arc<AtomicUsize>);
impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn accept_one(
    dp: &Arc<Dataplane>,
    api: &Option<Arc<MessageCounts>>,
    active: &Arc<AtomicUsize>,
    mut s: TcpStream,
) {
    let _ = s.set_write_timeout(Some(WRITE_TIMEOUT));
    if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
        active.fetch_sub(1, Ordering::AcqRel);
        // A fresh socket's send buffer is empty: this small write does not block.
        let _ = s.set_write_timeout(Some(Duration::from_millis(100)));
        // The accept thread waits on a rejected client 20 ms at most: long enough to take a
        // request already sent (closing on unread bytes would reset the connection and lose
        // the answer), too short for a flood of them to delay accepting.
        let _ = s.set_read_timeout(Some(Duration::from_millis(20)));
        let mut sink = [0u8; 4096];
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(20) {
            match s.read(&mut sink) {
                Ok(n) if n > 0 && head_end(&sink[..n]).is_none() => {}
                _ => break,
            }
        }
        let busy = answer("503 Service Unavailable", "text/plain", b"busy\n", false);
        let _ = s.write_all(&busy);
        let _ = s.shutdown(Shutdown::Write);
        return;
    }
    let slot = Slot(active.clone());
    let (dp, api) = (dp.clone(), api.clone());
    let r = std::thread::Builder::new()
        .name("metrics-client".into())
        .spawn(move || {
            let _slot = slot;
            serve_connection(&dp, api.as_deref(), s);
        });
    if let Err(e) = r {
        // The closure (and with it the slot) was dropped: the count is already back.
        log::warn!("metrics: cannot start a client thread: {e}");
    }
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    Metrics { head_only: bool },
    NotFound,
    MethodNotAllowed,
    Bad,
}

/// Parse a request head (everything before the blank line).
fn parse_head(head: &[u8]) -> Request {
    let Ok(head) = std::str::from_utf8(head) else {
        return Request::Bad;
    };
    let line = head.lines().next().unwrap_or("");
    let mut w = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (w.next(), w.next(), w.next(), w.next())
    else {
        return Request::Bad;
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !target.starts_with('/') {
        return Request::Bad;
    }
    if method != "GET" && method != "HEAD" {
        return Request::MethodNotAllowed;
    }
    let path = target.split('?').next().unwrap_or(target);
    if path != "/metrics" {
        return Request::NotFound;
    }
    Request::Metrics {
        head_only: method == "HEAD",
    }
}

/// Why reading a request head stopped.
enum Head {
    Complete(usize),
    TooLarge,
    /// Timed out or closed before the blank line.
    Incomplete,
}

/// Read until the blank line that ends the head, within the size limit and the deadline.
fn read_head(s: &mut TcpStream, buf: &mut [u8; MAX_REQUEST]) -> Head {
    let start = Instant::now();
    let mut n = 0;
    loop {
        if let Some(end) = head_end(&buf[..n]) {
            return Head::Complete(end);
        }
        if n == buf.len() {
            return Head::TooLarge;
        }
        let left = REQUEST_DEADLINE.saturating_sub(start.elapsed());
        if left.is_zero() || s.set_read_timeout(Some(left.min(READ_TIMEOUT))).is_err() {
            return Head::Incomplete;
        }
        match s.read(&mut buf[n..]) {
            Ok(0) => return Head::Incomplete,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Head::Incomplete,
        }
    }
}

/// Where the head ends (`\r\n\r\n`, or a bare `\n\n`).
fn head_end(b: &[u8]) -> Option<usize> {
    (0..b.len()).find(|&i| b[i..].starts_with(b"\r\n\r\n") || b[i..].starts_with(b"\n\n"))
}

fn serve_connection(dp: &Dataplane, api: Option<&MessageCounts>, mut s: TcpStream) {
    let mut buf = [0u8; MAX_REQUEST];
    let req = match read_head(&mut s, &mut buf) {
        Head::Complete(end) => parse_head(&buf[..end]),
        Head::TooLarge => {
            respond(
                &mut s,
                "431 Request Header Fields Too Large",
                "text/plain",
                b"request head too large\n",
                false,
            );
            return;
        }
        Head::Incomplete => {
            respond(
                &mut s,
                "408 Request Timeout",
                "text/plain",
                b"no complete request\n",
                false,
            );
            return;
        }
    };
    match req {
        Request::Metrics { head_only } => {
            let body = render(dp, api);
            respond(&mut s, "200 OK", CONTENT_TYPE, body.as_bytes(), head_only);
        }
        Request::NotFound => respond(
            &mut s,
            "404 Not Found",
            "text/plain",
            b"only /metrics is served\n",
            false,
        ),
        Request::MethodNotAllowed => respond(
            &mut s,
            "405 Method Not Allowed",
            "text/plain",
            b"only GET and HEAD\n",
            false,
        ),
        Request::Bad => respond(
            &mut s,
            "400 Bad Request",
            "text/plain",
            b"not an HTTP/1.x request\n",
            false,
        ),
    }
}

/// An answer's bytes; one request per connection, so always `Connection: close`.
fn answer(status: &str, ctype: &str, body: &[u8], head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status.starts_with("405") {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

/// Answer on a connection's own thread, then close it gracefully.
fn respond(s: &mut TcpStream, status: &str, ctype: &str, body: &[u8], head_only: bool) {
    let _ = s.write_all(&answer(status, ctype, body, head_only));
    let _ = s.flush();
    // Say we are done, then let the client's unread bytes (an oversized head) go, so the
    // close does not turn into a reset that could discard the answer.
    let _ = s.shutdown(Shutdown::Write);
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 1024];
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(500) {
        match s.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

// ----- the exposition ------------------------------------------------------------------------

/// A label value escaped for the text format (backslash, double quote, newline).
fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// Writes families: `# HELP`, `# TYPE` once per family, then its samples.
struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape(val));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {v}");
    }
}

/// A ratio, 0 when the denominator is.
fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// The whole exposition, from the counters as they are now.
pub fn render(dp: &Dataplane, api: Option<&MessageCounts>) -> String {
    let b = dp
        .baseline
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let ifs = dp.shared.ifs.load();
    let mut o = Out(String::with_capacity(64 << 10));

    // Interfaces: counters summed over workers, as `show interface` and /if/* do.
    const IF_FAMILIES: [(&str, &str); 6] = [
        ("rx_packets", "Packets received on the interface."),
        ("rx_bytes", "Bytes received on the interface."),
        ("tx_packets", "Packets sent on the interface."),
        ("tx_bytes", "Bytes sent on the interface."),
        ("drops", "Packets dropped on the interface (/if/drops)."),
        (
            "tx_errors",
            "Packets the interface failed to send (/if/tx-error).",
        ),
    ];
    let present: Vec<_> = ifs.ifs.iter().flatten().collect();
    let totals: Vec<[u64; 6]> = present
        .iter()
        .map(|i| {
            let sw = i.sw_if_index as usize;
            let mut t = [0u64; 6];
            for (wi, w) in dp.workers.iter().enumerate() {
                let Some(c) = w.stats.ifs.get(sw) else {
                    continue;
                };
                let v = [
                    c.rx_packets.get(),
                    c.rx_bytes.get(),
                    c.tx_packets.get(),
                    c.tx_bytes.get(),
                    c.drops.get(),
                    c.tx_errors.get(),
                ];
                let base = b.ifs.get(&(wi, sw)).copied().unwrap_or([0; 6]);
                for k in 0..6 {
                    t[k] = t[k].wrapping_add(v[k].saturating_sub(base[k]));
                }
            }
            t
        })
        .collect();
    for (k, (what, help)) in IF_FAMILIES.iter().enumerate() {
        let name = format!("rvpp_interface_{what}_total");
        o.family(&name, "counter", help);
        for (i, t) in present.iter().zip(&totals) {
            o.sample(&name, &[("interface", &i.name), ("tag", &i.tag)], t[k]);
        }
    }
    o.family(
        "rvpp_interface_up",
        "gauge",
        "1 when the interface is admin up and its link is up.",
    );
    for i in &present {
        let up = u8::from(i.admin_up && i.link_up);
        o.sample(
            "rvpp_interface_up",
            &[("interface", &i.name), ("tag", &i.tag)],
            up,
        );
    }

    // Error counters by node and reason, as `show errors` and /err/<node>/<reason>.
    o.family(
        "rvpp_errors_total",
        "counter",
        "Packets counted under a node's error reason (drops, and info counters such as sent or punted).",
    );
    for (ei, (node, reason)) in dp.error_names.iter().enumerate() {
        let mut total = 0u64;
        for (wi, w) in dp.workers.iter().enumerate() {
            let base = b.errors.get(&(wi, ei)).copied().unwrap_or(0);
            total = total.wrapping_add(w.stats.errors[ei].get().saturating_sub(base));
        }
        let sev = crate::cli::error_severity(reason);
        o.sample(
            "rvpp_errors_total",
            &[("node", node), ("reason", reason), ("severity", sev)],
            total,
        );
    }

    // Workers and nodes, as `show runtime` and /sys/node/*.
    let hz = rvpp_dataplane::runtime::tsc_hz().max(1) as f64;
    let uptime = dp.started.elapsed().as_secs_f64();
    struct W {
        thread: String,
        name: String,
        calls: u64,
        vectors: u64,
        clocks: u64,
        rx: u64,
        loops: u64,
        idle_loops: u64,
    }
    let mut per_worker = Vec::new();
    let mut node_rows = Vec::new();
    for (wi, w) in dp.workers.iter().enumerate() {
        let (mut calls, mut vectors, mut clocks) = (0u64, 0u64, 0u64);
        let thread = w.thread.to_string();
        for (ni, c) in w.stats.nodes.iter().enumerate() {
            let base = b.nodes.get(&(wi, ni)).copied().unwrap_or([0; 3]);
            let v = [
                c.calls.get().saturating_sub(base[0]),
                c.vectors.get().saturating_sub(base[1]),
                c.clocks.get().saturating_sub(base[2]),
            ];
            calls = calls.wrapping_add(v[0]);
            vectors = vectors.wrapping_add(v[1]);
            clocks = clocks.wrapping_add(v[2]);
            if v[0] > 0 {
                node_rows.push((dp.graph_names[ni], w.name.as_str(), thread.clone(), v));
            }
        }
        let rx = w
            .stats
            .ifs
            .iter()
            .enumerate()
            .map(|(sw, c)| {
                let base = b.ifs.get(&(wi, sw)).map_or(0, |v| v[0]);
                c.rx_packets.get().saturating_sub(base)
            })
            .fold(0u64, u64::wrapping_add);
        per_worker.push(W {
            thread,
            name: w.name.clone(),
            calls,
            vectors,
            clocks,
            rx,
            loops: w.stats.loops.get(),
            idle_loops: w.stats.idle_loops.get(),
        });
    }
    const NODE_FAMILIES: [(&str, &str); 3] = [
        (
            "rvpp_node_calls_total",
            "Calls of a node that had packets, per worker.",
        ),
        (
            "rvpp_node_packets_total",
            "Packets (VPP's vectors) a node processed, per worker.",
        ),
        (
            "rvpp_node_clocks_total",
            "TSC clocks a node spent on its packets, per worker.",
        ),
    ];
    for (k, (name, help)) in NODE_FAMILIES.iter().enumerate() {
        o.family(name, "counter", help);
        for (node, worker, thread, v) in &node_rows {
            o.sample(
                name,
                &[("node", node), ("worker", worker), ("thread", thread)],
                v[k],
            );
        }
    }
    let worker_family =
        |o: &mut Out, name: &str, kind: &str, help: &str, f: &dyn Fn(&W) -> String| {
            o.family(name, kind, help);
            for w in &per_worker {
                o.sample(name, &[("worker", &w.name), ("thread", &w.thread)], f(w));
            }
        };
    worker_family(
        &mut o,
        "rvpp_worker_busy_seconds_total",
        "counter",
        "Time the worker spent in nodes processing packets (node clocks / TSC rate).",
        &|w| format!("{}", w.clocks as f64 / hz),
    );
    worker_family(
        &mut o,
        "rvpp_worker_idle_seconds_total",
        "counter",
        "Time the worker was not processing packets: polling empty queues, sleeping, dispatch.",
        &|w| format!("{}", (uptime - w.clocks as f64 / hz).max(0.0)),
    );
    worker_family(
        &mut o,
        "rvpp_worker_loops_total",
        "counter",
        "Dispatch rounds the worker ran.",
        &|w| w.loops.to_string(),
    );
    worker_family(
        &mut o,
        "rvpp_worker_idle_loops_total",
        "counter",
        "Dispatch rounds in which no rx queue had packets.",
        &|w| w.idle_loops.to_string(),
    );
    worker_family(
        &mut o,
        "rvpp_worker_vectors_per_call",
        "gauge",
        "Packets per node call since start or clear (show runtime's Vectors/Call).",
        &|w| format!("{}", ratio(w.vectors, w.calls)),
    );
    worker_family(
        &mut o,
        "rvpp_worker_clocks_per_packet",
        "gauge",
        "Node clocks per packet received by the worker since start or clear.",
        &|w| format!("{}", ratio(w.clocks, w.rx)),
    );

    // Buffers, as `show buffers` and /buffer-pools/*.
    let p = &dp.pool;
    o.family(
        "rvpp_buffers",
        "gauge",
        "Packet buffers of the pool by state (in_use, cached by workers, available).",
    );
    for (state, n) in [
        ("in_use", p.in_use()),
        ("cached", p.cached_count()),
        ("available", p.free_count()),
    ] {
        o.sample("rvpp_buffers", &[("state", state)], n);
    }
    o.family(
        "rvpp_buffers_capacity",
        "gauge",
        "Packet buffers in the pool.",
    );
    o.sample("rvpp_buffers_capacity", &[], p.capacity());
    o.family(
        "rvpp_buffer_data_size_bytes",
        "gauge",
        "Data bytes of one packet buffer.",
    );
    o.sample("rvpp_buffer_data_size_bytes", &[], p.data_size());

    // FIB sizes from the control side's tables (the writer's lock; workers never take it).
    let (r4, r6, t4, t6) = {
        let f = dp.fwd();
        (
            f.route_count(Af::Ip4),
            f.route_count(Af::Ip6),
            f.tables(Af::Ip4).len(),
            f.tables(Af::Ip6).len(),
        )
    };
    o.family(
        "rvpp_fib_routes",
        "gauge",
        "Routes in all FIB tables of a family.",
    );
    o.sample("rvpp_fib_routes", &[("family", "ip4")], r4);
    o.sample("rvpp_fib_routes", &[("family", "ip6")], r6);
    o.family("rvpp_fib_tables", "gauge", "FIB tables of a family.");
    o.sample("rvpp_fib_tables", &[("family", "ip4")], t4);
    o.sample("rvpp_fib_tables", &[("family", "ip6")], t6);

    if let Some(api) = api {
        o.family(
            "rvpp_api_messages_total",
            "counter",
            "Binary API requests handled, by message (result unimplemented: answered -9).",
        );
        for (msg, handled, unimplemented) in api.snapshot() {
            for (result, n) in [("handled", handled), ("unimplemented", unimplemented)] {
                if n > 0 {
                    o.sample(
                        "rvpp_api_messages_total",
                        &[("message", msg), ("result", result)],
                        n,
                    );
                }
            }
        }
    }

    o.family(
        "rvpp_wireguard_handshake_events_total",
        "counter",
        "WireGuard's control-side handshake events and refusals (show wireguard interface).",
    );
    for (event, n) in crate::service::wireguard::counters(dp) {
        o.sample(
            "rvpp_wireguard_handshake_events_total",
            &[("event", event)],
            n,
        );
    }

    o.family(
        "rvpp_ikev2_events_total",
        "counter",
        "IKEv2 messages, refusals and child SA installs by reason (show ikev2 counters).",
    );
    for (event, n) in crate::service::ikev2::counters(dp) {
        o.sample("rvpp_ikev2_events_total", &[("event", event)], n);
    }

    o.family("rvpp_interfaces", "gauge", "Interfaces, local0 included.");
    o.sample("rvpp_interfaces", &[], present.len());
    o.family(
        "rvpp_uptime_seconds",
        "gauge",
        "Seconds since the dataplane started.",
    );
    o.sample("rvpp_uptime_seconds", &[], uptime);
    o.family("rvpp_workers", "gauge", "Forwarding threads.");
    o.sample("rvpp_workers", &[], dp.workers.len());
    o.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads() {
        let m = |h: &str| parse_head(h.as_bytes());
        assert_eq!(
            m("GET /metrics HTTP/1.1\r\nHost: x"),
            Request::Metrics { head_only: false }
        );
        assert_eq!(
            m("GET /metrics?x=1 HTTP/1.0"),
            Request::Metrics { head_only: false }
        );
        assert_eq!(
            m("HEAD /metrics HTTP/1.1"),
            Request::Metrics { head_only: true }
        );
        assert_eq!(m("GET / HTTP/1.1"), Request::NotFound);
        assert_eq!(m("GET /metricsx HTTP/1.1"), Request::NotFound);
        assert_eq!(m("POST /metrics HTTP/1.1"), Request::MethodNotAllowed);
        assert_eq!(m("DELETE /x HTTP/1.1"), Request::MethodNotAllowed);
        assert_eq!(m("GET /metrics"), Request::Bad);
        assert_eq!(m("GET /metrics SPDY/3"), Request::Bad);
        assert_eq!(m("GET metrics HTTP/1.1"), Request::Bad);
        assert_eq!(m(""), Request::Bad);
        assert_eq!(parse_head(b"GET /\xff HTTP/1.1"), Request::Bad);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\n"), Some(14));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n"), None);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("x\ny"), "x\\ny");
    }
}
