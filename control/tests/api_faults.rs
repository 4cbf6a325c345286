//! Faults on the binary API socket of the real rvpp (issue 18): a client SIGKILLed in the
//! middle of a 100k-route dump and of a pipelined burst of adds, 64 clients connecting and
//! disconnecting while another pings, a client that sends half a message and stalls, one that
//! stops reading, and an agent that reconnects and must find exactly what it programmed. After each, rvpp answers
//! control_ping, its dumps equal what was programmed, its fd count is back to its baseline,
//! and a fresh packet-generator stream is forwarded to null1 in full. Across the two kills an
//! 8M-packet stream is running (checked at the kill) and every packet of it reaches null1;
//! the other faults check forwarding only afterwards (a stream throughout would take a core).
//!
//! The killed clients are this test binary run again as a child process (`fault_client`,
//! ignored on its own), so the kill is a real SIGKILL with the socket closed by the kernel.

#[path = "api/common.rs"]
mod common;

use common::client::{read_payload, route_add, Client};
use common::harness::{if_counter, wait_for};
use rvpp_vppapi::defs::*;
use rvpp_vppapi::Message;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The tests share two cores: one rvpp at a time keeps each fault's timing its own.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// 198.19.255.2, the neighbour on null1.
const NH: u32 = 0xc613_ff02;

/// rvpp with null1 as the egress of 198.19.0.0/16, and forwarding probes.
struct Fx {
    r: common::Rvpp,
    null1: u32,
    probes: u32,
    tag: &'static str,
    t0: Instant,
    _one: std::sync::MutexGuard<'static, ()>,
}

impl Fx {
    fn start(tag: &'static str) -> Fx {
        let one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let t0 = Instant::now();
        let r = common::Rvpp::start(tag, "");
        for l in [
            "create null interface null1",
            "set interface ip address null1 198.19.255.1/30",
            "set ip neighbor null1 198.19.255.2 02:00:00:00:00:02",
            "ip route add 198.19.0.0/16 via 198.19.255.2 null1",
            "set interface state null1 up",
        ] {
            r.ctl(l);
        }
        let null1 = r
            .ctl("show interface")
            .lines()
            .find(|l| l.starts_with("null1 "))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .expect("null1 in show interface");
        Fx {
            r,
            null1,
            probes: 0,
            tag,
            t0,
            _one: one,
        }
    }

    fn pid(&self) -> u32 {
        self.r.child.id()
    }

    /// rvpp's open file descriptors.
    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Wait (10 s at most) for the fd count to be back at `base`: every closed connection's
    /// socket is released.
    fn fds_back_to(&self, base: usize) {
        let t = Instant::now();
        while self.fds() != base {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "rvpp holds {} fds, {base} before",
                self.fds()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A new pg stream of `n` packets to null1, not started (its interface and address add
    /// routes to table 0: make it before taking a table's dump to compare with).
    fn stream(&mut self, n: u64) -> Stream {
        let k = self.probes;
        self.probes += 1;
        for l in [
            format!("create packet-generator interface pgp{k} count {n} size 64 dst 198.19.7.0/24"),
            format!("set interface ip address pgp{k} 198.18.{k}.1/24"),
            format!("set interface state pgp{k} up"),
        ] {
            self.r.ctl(&l);
        }
        Stream {
            pg: format!("pgp{k}"),
            n,
            tx0: 0,
            t0: Instant::now(),
        }
    }

    /// Start `s` (one stream at a time: null1's tx counts it).
    fn enable(&self, s: &mut Stream) {
        s.tx0 = if_counter(&self.r.ctl("show interface"), "null1", "tx packets");
        s.t0 = Instant::now();
        self.r.ctl("packet-generator enable");
    }

    /// Packets of `s` forwarded so far.
    fn forwarded(&self, s: &Stream) -> u64 {
        if_counter(&self.r.ctl("show interface"), "null1", "tx packets") - s.tx0
    }

    /// Every packet of `s` generated and forwarded to null1's tx.
    fn all_forwarded(&self, s: Stream) {
        // Generous: a debug rvpp on two shared cores under a loaded CI machine.
        wait_for("the stream forwarded to null1", 90, || {
            self.forwarded(&s) >= s.n
        });
        let int = self.r.ctl("show interface");
        assert_eq!(if_counter(&int, &s.pg, "rx packets"), s.n);
        assert_eq!(if_counter(&int, "null1", "tx packets") - s.tx0, s.n);
        println!(
            "{}: {} packets forwarded in {:?}",
            s.pg,
            s.n,
            s.t0.elapsed()
        );
    }

    /// A new stream of `n` packets, forwarded in full.
    fn forwards(&mut self, n: u64) {
        let mut s = self.stream(n);
        self.enable(&mut s);
        self.all_forwarded(s);
    }

    /// After the fault: alive, answering a ping on a new connection, forwarding a new stream.
    fn intact(mut self) {
        assert!(self.r.alive(), "rvpp died: {}", self.r.log());
        let mut c = Client::connect(&self.r.api, "check").unwrap();
        assert!(c.ping(0xc0ffee), "control_ping unanswered");
        self.forwards(10_000);
        println!("{}: {:?}", self.tag, self.t0.elapsed());
    }
}

/// A packet-generator stream to null1 (see [`Fx::stream`]).
struct Stream {
    pg: String,
    n: u64,
    /// null1's tx before it.
    tx0: u64,
    t0: Instant,
}

/// Packets of the stream that runs across a kill (a few seconds' worth in a debug build).
const ACROSS: u64 = 8_000_000;

/// The stream `s` is running at `when`: it has started and not finished, so the fault
/// happens while it forwards (that it then loses nothing is [`Fx::all_forwarded`]'s check).
fn across(fx: &Fx, s: &Stream, when: &str) {
    let n = fx.forwarded(s);
    println!("{}: {n} of {} forwarded at {when}", s.pg, s.n);
    assert!(n > 0 && n < s.n, "the stream is not running across {when}");
}

/// `count` distinct /24s from `base` on.
fn prefixes(base: u32, count: usize) -> Vec<u32> {
    (0..count as u32).map(|i| base + (i << 8)).collect()
}

/// A route as the tests compare them: (prefix, len, [(sw_if_index, next hop)]).
type RouteKey = (u32, u8, Vec<(u32, u32)>);

fn key(r: &IpRoute) -> RouteKey {
    let a = |u: &AddressUnion| u32::from_be_bytes([u.0[0], u.0[1], u.0[2], u.0[3]]);
    let mut paths: Vec<(u32, u32)> = r
        .paths
        .iter()
        .map(|p| (p.sw_if_index, a(&p.nh.address)))
        .collect();
    paths.sort();
    (a(&r.prefix.address.un), r.prefix.len, paths)
}

fn routes(c: &mut Client, table: u32, ctx: u32) -> BTreeSet<RouteKey> {
    let req = IpRouteDump {
        table: IpTable {
            table_id: table,
            ..Default::default()
        },
        ..Default::default()
    };
    c.dump::<_, IpRouteDetails>(&req, ctx)
        .unwrap()
        .iter()
        .map(|d| key(&d.route))
        .collect()
}

/// Add routes `dsts` in table 0 via NH on `sw`, pipelined on one connection (all requests
/// written by one thread, replies read by this one); panics unless every one succeeds.
fn program(api: &Path, dsts: &[u32], sw: u32) {
    let c = Client::connect(api, "program").unwrap();
    let mut burst = Vec::with_capacity(dsts.len() * 224);
    for (i, d) in dsts.iter().enumerate() {
        c.frame_into(&mut burst, &route_add(0, *d, sw, NH), i as u32);
    }
    let mut w = c.s.try_clone().unwrap();
    let writer = std::thread::spawn(move || w.write_all(&burst));
    let rep = c.id::<IpRouteAddDelReply>();
    let mut rd = c.rd;
    let mut got = 0;
    while got < dsts.len() {
        let p = read_payload(&mut rd).unwrap();
        if common::client::id_of(&p) == rep {
            let r = IpRouteAddDelReply::decode_msg(&p).unwrap();
            assert_eq!(r.retval, 0, "route {} refused", r.context);
            got += 1;
        }
    }
    writer.join().unwrap().unwrap();
}

/// This test binary run again as a client process in `mode` (see [`fault_client`]), its
/// progress lines readable.
fn spawn_client(api: &Path, mode: &str, sw: u32) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["fault_client", "--exact", "--ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .env("RVPP_FAULT_CLIENT", mode)
        .env("RVPP_FAULT_API", api)
        .env("RVPP_FAULT_SW", sw.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    (child, out)
}

/// Read the child's `progress N` lines until N >= `at`; returns the last N.
fn progress_until(out: &mut BufReader<std::process::ChildStdout>, at: u64) -> u64 {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "client exited early");
        if let Some(n) = line.trim().strip_prefix("progress ") {
            let n: u64 = n.parse().unwrap();
            if n >= at {
                return n;
            }
        }
    }
}

/// The client process: `dump` sends ip_route_dump for table 0 and reports the details it has
/// read; `burst` writes 100k route adds (from 64.0.0.0) pipelined and reports the replies it
/// has read, in order. Each reports after every 1000 and never stops on its own: its parent
/// kills it.
#[test]
#[ignore = "a client process for the other tests, which run and kill it"]
fn fault_client() {
    let Ok(mode) = std::env::var("RVPP_FAULT_CLIENT") else {
        return;
    };
    let api = PathBuf::from(std::env::var("RVPP_FAULT_API").unwrap());
    let sw: u32 = std::env::var("RVPP_FAULT_SW").unwrap().parse().unwrap();
    let c = Client::connect(&api, &mode).unwrap();
    let mut w = c.s.try_clone().unwrap();
    let (want, mut burst) = match mode.as_str() {
        "dump" => (c.id::<IpRouteDetails>(), Vec::new()),
        _ => (c.id::<IpRouteAddDelReply>(), Vec::new()),
    };
    if mode == "dump" {
        c.frame_into(&mut burst, &IpRouteDump::default(), 1);
        c.frame_into(&mut burst, &ControlPing::default(), 1);
    } else {
        for (i, d) in prefixes(0x4000_0000, 100_000).into_iter().enumerate() {
            c.frame_into(&mut burst, &route_add(0, d, sw, NH), i as u32);
        }
    }
    let stdout = std::io::stdout();
    if mode == "dump" {
        // Asked: the parent may kill it from here on.
        w.write_all(&burst).unwrap();
        writeln!(stdout.lock(), "progress 0").unwrap();
    } else {
        std::thread::spawn(move || w.write_all(&burst));
    }
    let mut rd = c.rd;
    let mut n = 0u64;
    loop {
        let p = read_payload(&mut rd).unwrap();
        if common::client::id_of(&p) != want {
            continue;
        }
        if mode == "burst" {
            let r = IpRouteAddDelReply::decode_msg(&p).unwrap();
            assert_eq!((r.context as u64, r.retval), (n, 0), "replies in order");
        }
        n += 1;
        if n.is_multiple_of(1000) {
            let mut o = stdout.lock();
            writeln!(o, "progress {n}").unwrap();
            o.flush().unwrap();
        }
    }
}

/// 100k routes; a client SIGKILLed while rvpp streams their dump (twice: once after reading
/// 5000 details, once right after sending the request); then another client dumps and gets
/// all of them.
#[test]
fn client_killed_in_a_large_dump() {
    let mut fx = Fx::start("kill-dump");
    let mut traffic = fx.stream(ACROSS);
    let mut obs = Client::connect(&fx.r.api, "observer").unwrap();
    let before = routes(&mut obs, 0, 1);
    let dsts = prefixes(0x2000_0000, 100_000);
    program(&fx.r.api, &dsts, fx.null1);
    let mut want = before.clone();
    want.extend(dsts.iter().map(|d| (*d, 24, vec![(fx.null1, NH)])));
    let base = fx.fds();
    fx.enable(&mut traffic);
    for at in [5000, 0] {
        let (mut child, mut out) = spawn_client(&fx.r.api, "dump", fx.null1);
        let n = progress_until(&mut out, at);
        assert!(n < 100_000, "the dump had not finished when killed");
        child.kill().unwrap();
        child.wait().unwrap();
        across(&fx, &traffic, "the kill");
        fx.fds_back_to(base);
        assert!(obs.ping(2));
    }
    fx.all_forwarded(traffic);
    let got = routes(&mut obs, 0, 3);
    assert_eq!(got.len(), want.len());
    assert!(
        got == want,
        "the dump after the kills is what was programmed"
    );
    fx.intact();
}

/// A client SIGKILLed in the middle of a pipelined burst of 100k adds, after it read at
/// least 20000 replies. rvpp handles a connection's requests in order and stops at the first
/// reply it cannot write, so what it applied is exactly the first K adds of the burst, with
/// every add the client saw answered among them: K >= replies seen.
#[test]
fn client_killed_in_a_burst_of_adds() {
    let mut fx = Fx::start("kill-burst");
    let mut traffic = fx.stream(ACROSS);
    let mut obs = Client::connect(&fx.r.api, "observer").unwrap();
    let before = routes(&mut obs, 0, 1);
    let base = fx.fds();
    fx.enable(&mut traffic);
    let (mut child, mut out) = spawn_client(&fx.r.api, "burst", fx.null1);
    let seen = progress_until(&mut out, 20_000);
    child.kill().unwrap();
    child.wait().unwrap();
    across(&fx, &traffic, "the kill");
    fx.fds_back_to(base);
    fx.all_forwarded(traffic);
    let got = routes(&mut obs, 0, 2);
    assert!(got.is_superset(&before));
    let added: BTreeSet<RouteKey> = got.difference(&before).cloned().collect();
    let k = added.len();
    let all = prefixes(0x4000_0000, 100_000);
    let first_k: BTreeSet<RouteKey> = all[..k]
        .iter()
        .map(|d| (*d, 24, vec![(fx.null1, NH)]))
        .collect();
    assert!(k as u64 >= seen, "{k} routes present, {seen} replies seen");
    assert!(
        added == first_k,
        "the routes present are the burst's first {k}"
    );
    println!("burst killed after {seen} replies seen: {k} of 100000 applied");
    assert!(obs.ping(3));
    fx.intact();
}

/// 64 clients connecting and disconnecting 5 times each (320 connections: a registered
/// client closing, one sending sockclnt_delete, one closing before its handshake), while
/// a steady client pings: every ping answered, the fd count back to its baseline.
#[test]
fn clients_connecting_and_disconnecting() {
    let fx = Fx::start("churn");
    let mut steady = Client::connect(&fx.r.api, "steady").unwrap();
    assert!(steady.ping(0));
    let base = fx.fds();
    let api = fx.r.api.clone();
    let churn: Vec<_> = (0..64u32)
        .map(|k| {
            let api = api.clone();
            std::thread::spawn(move || {
                for round in 0..5u32 {
                    match (k + round) % 3 {
                        0 => {
                            let mut c = Client::connect(&api, "churn").unwrap();
                            assert!(c.ping(round));
                        }
                        1 => {
                            let mut c = Client::connect(&api, "churn").unwrap();
                            let r: SockclntDeleteReply = c
                                .call(
                                    &SockclntDelete {
                                        index: c.index,
                                        ..Default::default()
                                    },
                                    round,
                                )
                                .unwrap();
                            assert_eq!(r.response, 1, "sockclnt_delete of its own registration");
                            assert!(c.closed());
                        }
                        _ => drop(UnixStream::connect(&api).unwrap()),
                    }
                }
            })
        })
        .collect();
    let mut pings = 0u32;
    while !churn.iter().all(|h| h.is_finished()) {
        pings += 1;
        assert!(steady.ping(pings), "ping {pings} during the churn");
    }
    for h in churn {
        h.join().unwrap();
    }
    assert!(pings > 0);
    fx.fds_back_to(base);
    assert!(steady.ping(pings + 1));
    println!("{pings} pings answered during the churn");
    fx.intact();
}

/// A client sends the header and part of a route add and stalls: others are served
/// meanwhile (pings, a dump, adds); when it sends the rest it is served; one that stalls and
/// then closes is dropped.
#[test]
fn half_a_message_stalls_only_its_sender() {
    let fx = Fx::start("half");
    let base = fx.fds();
    let mut other = Client::connect(&fx.r.api, "other").unwrap();
    let mut stall = Client::connect(&fx.r.api, "stall").unwrap();
    let mut gone = Client::connect(&fx.r.api, "gone").unwrap();
    let msg = |c: &Client, d: u32, ctx: u32| {
        let mut f = Vec::new();
        c.frame_into(&mut f, &route_add(0, d, fx.null1, NH), ctx);
        f
    };
    let half = msg(&stall, 0x5000_0000, 7);
    stall.s.write_all(&half[..16 + 40]).unwrap();
    let gone_half = msg(&gone, 0x5000_0100, 8);
    gone.s.write_all(&gone_half[..16 + 40]).unwrap();

    let t = Instant::now();
    for k in 0..100 {
        assert!(other.ping(k), "ping {k} beside a stalled client");
    }
    let r: IpRouteAddDelReply = other
        .call(&route_add(0, 0x5000_0200, fx.null1, NH), 200)
        .unwrap();
    assert_eq!(r.retval, 0);
    let got = routes(&mut other, 0, 201);
    assert!(got.contains(&(0x5000_0200, 24, vec![(fx.null1, NH)])));
    assert!(
        !got.iter().any(|r| r.0 == 0x5000_0000),
        "half a message applied"
    );
    println!("served beside the stalled clients in {:?}", t.elapsed());

    drop(gone);
    stall.s.write_all(&half[16 + 40..]).unwrap();
    let r: IpRouteAddDelReply = stall.recv(7).unwrap();
    assert_eq!(r.retval, 0);
    assert!(stall.ping(9));
    let got = routes(&mut other, 0, 202);
    assert!(got.contains(&(0x5000_0000, 24, vec![(fx.null1, NH)])));
    assert!(
        !got.iter().any(|r| r.0 == 0x5000_0100),
        "the closed one's half applied"
    );
    drop(stall);
    drop(other);
    fx.fds_back_to(base);
    fx.intact();
}

/// Interfaces as the tests compare them: sw_if_index -> (name, admin up).
fn interfaces(c: &mut Client, ctx: u32) -> BTreeMap<u32, (String, bool)> {
    let req = SwInterfaceDump {
        sw_if_index: InterfaceIndex(u32::MAX),
        ..Default::default()
    };
    c.dump::<_, SwInterfaceDetails>(&req, ctx)
        .unwrap()
        .into_iter()
        .map(|d| {
            let up = d.flags.0 & IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP.0 != 0;
            (d.sw_if_index.0, (d.interface_name, up))
        })
        .collect()
}

fn tables(c: &mut Client, ctx: u32) -> BTreeSet<(u32, bool, String)> {
    c.dump::<_, IpTableDetails>(&IpTableDump::default(), ctx)
        .unwrap()
        .into_iter()
        .map(|d| (d.table.table_id, d.table.is_ip6, d.table.name))
        .collect()
}

/// The agent restarting: it programs loopbacks (up, each in a table of its own), tables and
/// routes, goes away without sockclnt_delete, and a new connection dumps interfaces, tables
/// and routes and finds exactly what it programmed, beside what was there before.
#[test]
fn agent_reconnects_and_finds_its_state() {
    let fx = Fx::start("agent");
    let mut agent = Client::connect(&fx.r.api, "agent").unwrap();
    let ifs0 = interfaces(&mut agent, 1);
    let tables0 = tables(&mut agent, 2);
    let routes0 = routes(&mut agent, 0, 3);

    let mut want_ifs = ifs0.clone();
    let mut want_tables = tables0.clone();
    let mut want_routes: BTreeMap<u32, BTreeSet<RouteKey>> = BTreeMap::new();
    let mut ctx = 100;
    for k in 0..4u32 {
        let table = 1000 + k;
        ctx += 10;
        let name = format!("agent-vrf-{k}");
        let r: IpTableAddDelReply = agent
            .call(
                &IpTableAddDel {
                    is_add: true,
                    table: IpTable {
                        table_id: table,
                        is_ip6: false,
                        name: name.clone(),
                    },
                    ..Default::default()
                },
                ctx,
            )
            .unwrap();
        assert_eq!(r.retval, 0);
        want_tables.insert((table, false, name));
        // What a new table holds before anything is added to it.
        let mut want = routes(&mut agent, table, ctx + 1);
        let lo: CreateLoopbackReply = agent
            .call(
                &CreateLoopback {
                    mac_address: MacAddress([2, 0xaa, 0, 0, 0, k as u8]),
                    ..Default::default()
                },
                ctx + 2,
            )
            .unwrap();
        assert_eq!(lo.retval, 0);
        let sw = lo.sw_if_index.0;
        let r: SwInterfaceSetTableReply = agent
            .call(
                &SwInterfaceSetTable {
                    sw_if_index: InterfaceIndex(sw),
                    vrf_id: table,
                    ..Default::default()
                },
                ctx + 3,
            )
            .unwrap();
        assert_eq!(r.retval, 0);
        let r: SwInterfaceSetFlagsReply = agent
            .call(
                &SwInterfaceSetFlags {
                    sw_if_index: InterfaceIndex(sw),
                    flags: IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP,
                    ..Default::default()
                },
                ctx + 4,
            )
            .unwrap();
        assert_eq!(r.retval, 0);
        want_ifs.insert(sw, (format!("loop{k}"), true));
        for j in 0..50u32 {
            let dst = 0x6000_0000 + (k << 16) + (j << 8);
            let nh = 0x6400_0001 + k;
            let r: IpRouteAddDelReply =
                agent.call(&route_add(table, dst, sw, nh), ctx + 5).unwrap();
            assert_eq!(r.retval, 0, "route {j} in table {table}");
            want.insert((dst, 24, vec![(sw, nh)]));
        }
        want_routes.insert(table, want);
    }
    // Routes in table 0 too, beside what was there.
    let mut want0 = routes0.clone();
    for d in prefixes(0x6100_0000, 100) {
        let r: IpRouteAddDelReply = agent.call(&route_add(0, d, fx.null1, NH), 900).unwrap();
        assert_eq!(r.retval, 0);
        want0.insert((d, 24, vec![(fx.null1, NH)]));
    }
    want_routes.insert(0, want0);
    drop(agent);

    let mut agent = Client::connect(&fx.r.api, "agent").unwrap();
    let ifs = interfaces(&mut agent, 1);
    assert_eq!(ifs, want_ifs, "interfaces");
    assert_eq!(tables(&mut agent, 2), want_tables, "tables");
    for (t, want) in &want_routes {
        assert_eq!(&routes(&mut agent, *t, 3 + t), want, "routes of table {t}");
    }
    drop(agent);
    fx.intact();
}

/// A client registered for interface events that stops reading (its socket full of replies
/// it never takes) holds up others' events only until rvpp gives up on it: its writes make
/// no progress for SEND_TIMEOUT (5 s; a write that had made some progress first waits once
/// more), and it is disconnected. Before the fix the event publisher waited on it for ever.
#[test]
fn a_client_that_stops_reading_stalls_only_itself() {
    let fx = Fx::start("deaf");
    let want = WantInterfaceEvents {
        enable_disable: 1,
        pid: 1,
        ..Default::default()
    };
    let mut deaf = Client::connect(&fx.r.api, "deaf").unwrap();
    let r: WantInterfaceEventsReply = deaf.call(&want, 1).unwrap();
    assert_eq!(r.retval, 0);
    let mut other = Client::connect(&fx.r.api, "other").unwrap();
    // Longer than the wait below may be.
    other
        .s
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let r: WantInterfaceEventsReply = other.call(&want, 1).unwrap();
    assert_eq!(r.retval, 0);
    // Pings it never reads the replies of, until rvpp can write no more to it.
    let mut pings = Vec::new();
    for k in 0..200_000 {
        deaf.frame_into(&mut pings, &ControlPing::default(), k);
    }
    let mut w = deaf.s.try_clone().unwrap();
    let writer = std::thread::spawn(move || w.write_all(&pings));
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    fx.r.ctl("create loopback interface");
    let ev: SwInterfaceEvent = other.recv(0).unwrap();
    assert!(!ev.deleted);
    assert!(other.ping(2));
    let waited = t.elapsed();
    println!("event and ping beside a deaf client in {waited:?}");
    assert!(waited < Duration::from_secs(15), "held up {waited:?}");
    drop(deaf);
    let _ = writer.join();
    fx.intact();
}
