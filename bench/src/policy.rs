//! `rvpp-bench policy [--rules 100,1000,10000] [--traces N] [--ipset N] [--runs R]
//! [--acl PATH | --no-acl]`: npol's new-flow evaluation next to DPDK's rte_acl (issue 14).
//!
//! One core, in-process. Rule sets are ClassBench-like 5-tuple rules (source and destination
//! prefixes, port ranges, TCP/UDP/any) in one policy on one interface's rx side, first match
//! deciding, the default denying. The trace holds tuples drawn inside random rules, plus some
//! that match nothing. rvpp's figure is `npol::verdict` per tuple: what a flow's first packet
//! costs in npol-rx before its verdict is cached. The peer is dpdk-test-acl classifying the same
//! rules and tuples (rule order as priority) in the same run. Before anything is timed, the
//! first-matching rule of the first 2000 tuples is compared with rte_acl's answer for them: a
//! difference fails the run. An ipset case matches the destination against an ipset of
//! `--ipset` addresses; its peer is rte_acl with one /32 rule per member.
//!
//! Update cost: creating the rules one by one as the agent does (`npol_rule_create` each), the
//! policy and the interface's configuration, each published whole; then one rule updated with
//! the whole set in place.

use crate::graph::{median, r2, rx_only, Rng};
use rvpp_dataplane::npol::ipset::{IpSetKind, Member};
use rvpp_dataplane::npol::rule::{Action, Entry, Filter, FilterKind, MatchData, Rule};
use rvpp_dataplane::npol::{verdict, Direction, FiveTuple, Net, Npol, NpolTables, Policy, Verdict};
use rvpp_dataplane::runtime::{clocks, tsc_hz};
use serde_json::json;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const USAGE: &str = "policy [--rules 100,1000,10000] [--traces N (100000)] [--ipset N (100000)] [--runs R (3)] [--seconds S (1)] [--acl PATH | --no-acl]";
const SW: u32 = 1;
/// Tuples whose rte_acl answer is compared with rvpp's before timing.
const CHECKED: usize = 2000;

/// One generated rule, in the terms both classifiers take.
#[derive(Clone, Copy)]
struct Spec {
    src: (u32, u8),
    dst: (u32, u8),
    sport: (u16, u16),
    dport: (u16, u16),
    proto: Option<u8>,
}

fn prefix(rng: &mut Rng, base: u32, base_len: u8, lo: u8, hi: u8) -> (u32, u8) {
    let len = lo + (rng.next() % u64::from(hi - lo + 1)) as u8;
    let host = rng.next() as u32 & (u32::MAX >> base_len);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    (((base & !(u32::MAX >> base_len)) | host) & mask, len)
}

fn port_range(rng: &mut Rng, exact: u64, range: u64) -> (u16, u16) {
    let roll = rng.next() % 100;
    if roll < exact {
        let p = (rng.next() % 1024) as u16;
        (p, p)
    } else if roll < exact + range {
        let lo = (rng.next() % 60000) as u16;
        (lo, lo + (rng.next() % 2048) as u16)
    } else {
        (0, u16::MAX)
    }
}

fn gen_rules(n: usize, rng: &mut Rng) -> Vec<Spec> {
    (0..n)
        .map(|_| Spec {
            src: if rng.next() % 10 < 7 {
                prefix(rng, 0x0a00_0000, 8, 16, 24)
            } else {
                (0, 0)
            },
            dst: prefix(rng, 0x0a80_0000, 9, 24, 32),
            sport: port_range(rng, 0, 10),
            dport: port_range(rng, 60, 30),
            proto: match rng.next() % 10 {
                0..=4 => Some(6),
                5..=8 => Some(17),
                _ => None,
            },
        })
        .collect()
}

fn inside(rng: &mut Rng, (net, len): (u32, u8)) -> u32 {
    let host = if len == 0 { u32::MAX } else { u32::MAX >> len };
    net | (rng.next() as u32 & host)
}

fn in_range(rng: &mut Rng, (lo, hi): (u16, u16)) -> u16 {
    lo + (rng.next() % (u64::from(hi - lo) + 1)) as u16
}

fn tuple(src: u32, dst: u32, proto: u8, sport: u16, dport: u16) -> FiveTuple {
    FiveTuple {
        src: IpAddr::V4(Ipv4Addr::from(src)),
        dst: IpAddr::V4(Ipv4Addr::from(dst)),
        proto,
        sport,
        dport,
        icmp_type: 0,
        icmp_code: 0,
    }
}

/// Tuples inside random rules (nine in ten) or anywhere.
fn gen_trace(rules: &[Spec], n: usize, rng: &mut Rng) -> Vec<FiveTuple> {
    (0..n)
        .map(|_| {
            if rules.is_empty() || rng.next().is_multiple_of(10) {
                let proto = if rng.next().is_multiple_of(2) { 6 } else { 17 };
                return tuple(
                    rng.next() as u32,
                    rng.next() as u32,
                    proto,
                    rng.next() as u16,
                    rng.next() as u16,
                );
            }
            let r = rules[(rng.next() % rules.len() as u64) as usize];
            let proto = r
                .proto
                .unwrap_or(if rng.next().is_multiple_of(2) { 6 } else { 17 });
            tuple(
                inside(rng, r.src),
                inside(rng, r.dst),
                proto,
                in_range(rng, r.sport),
                in_range(rng, r.dport),
            )
        })
        .collect()
}

fn cidr(is_src: bool, (a, len): (u32, u8)) -> Entry {
    Entry {
        is_src,
        is_not: false,
        data: MatchData::Cidr(Net::new(IpAddr::V4(Ipv4Addr::from(a)), len).expect("prefix")),
    }
}

fn npol_rule(i: usize, s: &Spec) -> Rule {
    let mut entries = vec![cidr(true, s.src), cidr(false, s.dst)];
    for (is_src, (lo, hi)) in [(true, s.sport), (false, s.dport)] {
        if (lo, hi) != (0, u16::MAX) {
            entries.push(Entry {
                is_src,
                is_not: false,
                data: MatchData::PortRange(lo, hi),
            });
        }
    }
    Rule {
        action: if i.is_multiple_of(2) {
            Action::Allow
        } else {
            Action::Deny
        },
        filters: s
            .proto
            .map(|p| Filter {
                kind: FilterKind::L4Proto,
                value: u32::from(p),
                should_match: true,
            })
            .into_iter()
            .collect(),
        entries,
    }
}

fn acl_rules(specs: &[Spec]) -> String {
    let mut s = String::new();
    for r in specs {
        let (proto, mask) = r.proto.map_or((0, 0), |p| (p, 0xff));
        let _ = writeln!(
            s,
            "@{}/{} {}/{} {} : {} {} : {} {proto:#04x}/{mask:#04x}",
            Ipv4Addr::from(r.src.0),
            r.src.1,
            Ipv4Addr::from(r.dst.0),
            r.dst.1,
            r.sport.0,
            r.sport.1,
            r.dport.0,
            r.dport.1
        );
    }
    s
}

fn acl_traces(t: &[FiveTuple]) -> String {
    let mut s = String::new();
    for p in t {
        let v4 = |a: IpAddr| match a {
            IpAddr::V4(a) => u32::from(a),
            IpAddr::V6(_) => 0,
        };
        let _ = writeln!(
            s,
            "{:#010x} {:#010x} {} {} {}",
            v4(p.src),
            v4(p.dst),
            p.sport,
            p.dport,
            p.proto
        );
    }
    s
}

/// The policy's first matching rule for `p`, by its place in the policy.
fn first_match(t: &NpolTables, order: &[u32], p: &FiveTuple) -> Option<usize> {
    order
        .iter()
        .position(|id| t.rules.get(id).is_some_and(|r| r.matches(&t.ipsets, p)))
}

struct Built {
    npol: Npol,
    order: Vec<u32>,
    rules_ms: f64,
    policy_ms: f64,
    one_update_ms: f64,
}

fn configure(n: &Npol, policy: u32) -> Result<(), String> {
    n.configure(SW, rx_only(vec![policy]))
        .map_err(|e| e.to_string())
}

fn build(rules: Vec<Rule>) -> Result<Built, String> {
    let npol = Npol::default();
    let t = Instant::now();
    let mut order = Vec::with_capacity(rules.len());
    let first = rules.first().cloned();
    for r in rules {
        order.push(npol.rule_create(r).map_err(|e| e.to_string())?);
    }
    let rules_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let p = npol
        .policy_create(Policy {
            inbound: order.clone(),
            outbound: vec![],
        })
        .map_err(|e| e.to_string())?;
    configure(&npol, p)?;
    let policy_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    if let (Some(&id), Some(r)) = (order.first(), first) {
        npol.rule_update(id, r).map_err(|e| e.to_string())?;
    }
    let one_update_ms = t.elapsed().as_secs_f64() * 1e3;
    Ok(Built {
        npol,
        order,
        rules_ms,
        policy_ms,
        one_update_ms,
    })
}

/// Clocks per tuple of `verdict` over the trace, for at least `seconds` (and one full pass).
fn time_rvpp(t: &NpolTables, trace: &[FiveTuple], seconds: f64) -> (f64, u64) {
    let budget = (seconds * tsc_hz() as f64) as u64;
    let (mut done, mut allowed) = (0u64, 0u64);
    let t0 = clocks();
    loop {
        for p in trace {
            allowed +=
                u64::from(verdict(t, SW, Direction::Rx, std::hint::black_box(p)) == Verdict::Allow);
        }
        done += trace.len() as u64;
        if clocks() - t0 >= budget {
            break;
        }
    }
    ((clocks() - t0) as f64 / done as f64, allowed)
}

struct Acl {
    bin: PathBuf,
    core: usize,
}

impl Acl {
    fn run(
        &self,
        rules: &Path,
        traces: &Path,
        n_rules: usize,
        n_traces: usize,
        iter: u32,
        verbose: u32,
    ) -> Result<String, String> {
        let prefix = format!("rvpp-bench-acl-{}", std::process::id());
        let out = Command::new(&self.bin)
            .args(["--no-huge", "--no-pci", "--log-level=1", "-l"])
            .arg(self.core.to_string())
            .arg(format!("--file-prefix={prefix}"))
            .arg("--")
            .arg(format!("--rulesf={}", rules.display()))
            .arg(format!("--tracef={}", traces.display()))
            .arg(format!("--rulenum={}", n_rules.max(1)))
            .arg(format!("--tracenum={n_traces}"))
            .arg(format!("--iter={iter}"))
            .arg(format!("--verbose={verbose}"))
            .output();
        // EAL's shared-config files and socket, which it leaves behind at exit.
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{prefix}"));
        let out = out.map_err(|e| format!("{}: {e}", self.bin.display()))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(format!(
                "dpdk-test-acl failed: {}\n{text}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(text)
    }

    /// rte_acl's cycles per tuple over `iter` passes of the trace.
    fn time(
        &self,
        rules: &Path,
        traces: &Path,
        n_rules: usize,
        n_traces: usize,
        iter: u32,
    ) -> Result<f64, String> {
        let text = self.run(rules, traces, n_rules, n_traces, iter, 1)?;
        text.lines()
            .find(|l| l.starts_with("search_ip5tuples ") && l.contains("cycles/pkt"))
            .and_then(|l| l.split(", ").find(|f| f.ends_with("cycles/pkt")))
            .and_then(|f| f.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| format!("no cycles/pkt in dpdk-test-acl's output:\n{text}"))
    }

    /// rte_acl's matching rule (0-based, or None) for each of the first `n` tuples.
    fn answers(
        &self,
        rules: &Path,
        traces: &Path,
        n_rules: usize,
        n: usize,
    ) -> Result<Vec<Option<usize>>, String> {
        let text = self.run(rules, traces, n_rules, n, 1, 3)?;
        let got: Vec<Option<usize>> = text
            .lines()
            .filter(|l| l.starts_with("ipv4_5tuple:") && l.contains("category: 0,"))
            .filter_map(|l| l.rsplit("result: ").next()?.trim().parse::<u64>().ok())
            .map(|r| (r != u64::from(u32::MAX)).then_some(r as usize))
            .collect();
        if got.len() != n {
            return Err(format!(
                "dpdk-test-acl answered {} of {n} tuples",
                got.len()
            ));
        }
        Ok(got)
    }
}

/// Fails unless rvpp's first-matching rule equals rte_acl's for the first tuples.
fn cross_check(
    acl: &Acl,
    t: &NpolTables,
    order: &[u32],
    rules: &Path,
    traces: &Path,
    trace: &[FiveTuple],
    label: &str,
) -> Result<(), String> {
    let n = trace.len().min(CHECKED);
    let want = acl.answers(rules, traces, order.len(), n)?;
    for (i, (p, w)) in trace.iter().zip(&want).enumerate() {
        let got = first_match(t, order, p);
        if got != *w {
            return Err(format!(
                "{label}: tuple {i} ({p:?}): rvpp's first match {got:?}, rte_acl's {w:?}"
            ));
        }
    }
    Ok(())
}

struct Case {
    label: String,
    npol: Built,
    trace: Vec<FiveTuple>,
    /// rte_acl's rules, the trace, and the trace's first CHECKED tuples (dpdk-test-acl writes
    /// one record past `--tracenum` when the file is longer, so each file holds exactly what
    /// is read).
    acl_files: Option<(PathBuf, PathBuf, PathBuf)>,
}

/// The ipset case: its tables, the one rule's id, the members, the trace, and what the ipset,
/// rule, policy and configuration took (ms).
struct IpsetCase {
    npol: Npol,
    rule: u32,
    members: Vec<u32>,
    trace: Vec<FiveTuple>,
    rules_ms: f64,
}

/// One rule, the destination in an ipset of `ipset` random addresses (the peer has a /32 rule
/// each), and a trace half of members; `rng` after the rule-count cases, as `run` draws it.
fn ipset_case(ipset: usize, n_traces: usize, rng: &mut Rng) -> Result<IpsetCase, String> {
    let members: Vec<u32> = (0..ipset)
        .map(|_| 0x0a80_0000 | (rng.next() as u32 & 0x007f_ffff))
        .collect();
    let npol = Npol::default();
    let t = Instant::now();
    let set = npol.ipset_create(IpSetKind::Ip);
    let m: Vec<Member> = members
        .iter()
        .map(|&a| Member::Ip(IpAddr::V4(Ipv4Addr::from(a))))
        .collect();
    npol.ipset_add_del(set, true, &m)
        .map_err(|e| e.to_string())?;
    let id = npol
        .rule_create(Rule {
            action: Action::Allow,
            filters: vec![],
            entries: vec![Entry {
                is_src: false,
                is_not: false,
                data: MatchData::IpSet(set),
            }],
        })
        .map_err(|e| e.to_string())?;
    let p = npol
        .policy_create(Policy {
            inbound: vec![id],
            outbound: vec![],
        })
        .map_err(|e| e.to_string())?;
    configure(&npol, p)?;
    let rules_ms = t.elapsed().as_secs_f64() * 1e3;
    let trace: Vec<FiveTuple> = (0..n_traces)
        .map(|i| {
            let dst = if i % 2 == 0 {
                members[(rng.next() % ipset as u64) as usize]
            } else {
                rng.next() as u32
            };
            tuple(rng.next() as u32, dst, 6, rng.next() as u16, 80)
        })
        .collect();
    Ok(IpsetCase {
        npol,
        rule: id,
        members,
        trace,
        rules_ms,
    })
}

#[inline(never)]
fn cost_one(t: &NpolTables, p: &FiveTuple) -> Verdict {
    verdict(t, SW, Direction::Rx, p)
}

/// `__npol-cost <100|1000|10000|ipset> [traces (20000)]`: npol's verdict for every tuple of
/// one of `run`'s cases (the same generator and seed), nothing timed, for callgrind:
///   valgrind --tool=callgrind --toggle-collect='*policy::cost_one' \
///     target/release/rvpp-bench __npol-cost 100
/// The instructions collected over the tuples are the cost per verdict.
pub fn cost(args: &[String]) -> Result<(), String> {
    let case = args.first().map_or("100", |a| a.as_str());
    let n_traces: usize = match args.get(1) {
        Some(a) => a.parse().map_err(|_| "bad traces")?,
        None => 20_000,
    };
    // Every case in run's order, so each draws what it draws there.
    let mut rng = Rng(0x0005_eed0_fac1);
    let mut chosen = None;
    for n in [100usize, 1000, 10000] {
        let specs = gen_rules(n, &mut rng);
        let trace = gen_trace(&specs, n_traces, &mut rng);
        if case == n.to_string() {
            let rules = specs.iter().enumerate().map(|(i, s)| npol_rule(i, s));
            chosen = Some((build(rules.collect())?.npol, trace));
        }
    }
    if case == "ipset" {
        let c = ipset_case(100_000, n_traces, &mut rng)?;
        chosen = Some((c.npol, c.trace));
    }
    let (npol, trace) = chosen.ok_or("usage: __npol-cost <100|1000|10000|ipset> [traces]")?;
    let t = npol.tables.load();
    let allowed = trace
        .iter()
        .filter(|p| cost_one(&t, std::hint::black_box(p)) == Verdict::Allow)
        .count();
    println!("{case}: {} tuples, {allowed} allowed", trace.len());
    Ok(())
}

pub fn run(args: &[String]) -> Result<serde_json::Value, String> {
    let mut sizes = vec![100usize, 1000, 10000];
    let mut n_traces = 100_000usize;
    let mut ipset = 100_000usize;
    let mut runs = 3usize;
    let mut seconds = 1.0f64;
    let mut acl_bin = Some(PathBuf::from("dpdk-test-acl"));
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--rules" => {
                sizes = val()?
                    .split(',')
                    .map(|s| s.parse().map_err(|_| format!("bad --rules {s}")))
                    .collect::<Result<_, _>>()?
            }
            "--traces" => n_traces = val()?.parse().map_err(|_| "bad --traces")?,
            "--ipset" => ipset = val()?.parse().map_err(|_| "bad --ipset")?,
            "--runs" => runs = val()?.parse().map_err(|_| "bad --runs")?,
            "--seconds" => seconds = val()?.parse().map_err(|_| "bad --seconds")?,
            "--acl" => acl_bin = Some(PathBuf::from(val()?)),
            "--no-acl" => acl_bin = None,
            _ => return Err(format!("unknown option {a}\n{USAGE}")),
        }
    }
    if n_traces == 0 || runs == 0 {
        return Err(format!("--traces and --runs must be positive\n{USAGE}"));
    }
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let core = cores.last().copied();
    if let Some(c) = core {
        core_affinity::set_for_current(c);
    }
    let dir = std::env::temp_dir().join(format!("rvpp-bench-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let acl = acl_bin.map(|bin| Acl {
        bin,
        core: core.map_or(0, |c| c.id),
    });
    let write = |name: String, text: String| -> Result<PathBuf, String> {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| e.to_string())?;
        Ok(p)
    };

    let mut rng = Rng(0x0005_eed0_fac1);
    let mut cases = Vec::new();
    for &n in &sizes {
        let specs = gen_rules(n, &mut rng);
        let trace = gen_trace(&specs, n_traces, &mut rng);
        let built = build(
            specs
                .iter()
                .enumerate()
                .map(|(i, s)| npol_rule(i, s))
                .collect(),
        )?;
        let files = match &acl {
            Some(_) => Some((
                write(format!("rules-{n}"), acl_rules(&specs))?,
                write(format!("traces-{n}"), acl_traces(&trace))?,
                write(
                    format!("checked-{n}"),
                    acl_traces(&trace[..trace.len().min(CHECKED)]),
                )?,
            )),
            None => None,
        };
        cases.push(Case {
            label: format!("{n} rules"),
            npol: built,
            trace,
            acl_files: files,
        });
    }
    if ipset > 0 {
        let IpsetCase {
            npol,
            rule: id,
            members,
            trace,
            rules_ms,
        } = ipset_case(ipset, n_traces, &mut rng)?;
        let files = match &acl {
            Some(_) => {
                let specs: Vec<Spec> = members
                    .iter()
                    .map(|&a| Spec {
                        src: (0, 0),
                        dst: (a, 32),
                        sport: (0, u16::MAX),
                        dport: (0, u16::MAX),
                        proto: None,
                    })
                    .collect();
                Some((
                    write("rules-ipset".into(), acl_rules(&specs))?,
                    write("traces-ipset".into(), acl_traces(&trace))?,
                    write(
                        "checked-ipset".into(),
                        acl_traces(&trace[..trace.len().min(CHECKED)]),
                    )?,
                ))
            }
            None => None,
        };
        cases.push(Case {
            label: format!("ipset of {ipset}"),
            npol: Built {
                npol,
                order: vec![id],
                rules_ms,
                policy_ms: 0.0,
                one_update_ms: 0.0,
            },
            trace,
            acl_files: files,
        });
    }

    // The same answers before any timing.
    if let Some(acl) = &acl {
        for c in &cases {
            let (r, _, t) = c.acl_files.as_ref().expect("acl files");
            let tables = c.npol.npol.tables.load();
            if c.label.starts_with("ipset") {
                // rte_acl's answer is the member's rule; rvpp's is the one ipset rule.
                let want = acl.answers(r, t, ipset, c.trace.len().min(CHECKED))?;
                for (i, (p, w)) in c.trace.iter().zip(&want).enumerate() {
                    if first_match(&tables, &c.npol.order, p).is_some() != w.is_some() {
                        return Err(format!(
                            "{}: tuple {i}: rvpp and rte_acl disagree on membership",
                            c.label
                        ));
                    }
                }
            } else {
                cross_check(acl, &tables, &c.npol.order, r, t, &c.trace, &c.label)?;
            }
        }
    }

    let hz = tsc_hz() as f64;
    println!(
        "policy: npol's new-flow verdict (one policy, first match, default deny) vs rte_acl (dpdk-test-acl) on the same rules and {n_traces} tuples, one core, {runs} runs interleaved"
    );
    let mut results = Vec::new();
    for c in &cases {
        let tables = c.npol.npol.tables.load();
        let (mut ours, mut theirs, mut allowed) = (Vec::new(), Vec::new(), 0);
        for run in 0..runs {
            for acl_first in [run % 2 == 1, run % 2 == 0] {
                match (&acl, acl_first) {
                    (Some(acl), true) => {
                        let (r, t, _) = c.acl_files.as_ref().expect("acl files");
                        let n_rules = if c.label.starts_with("ipset") {
                            ipset
                        } else {
                            c.npol.order.len()
                        };
                        theirs.push(acl.time(r, t, n_rules, c.trace.len(), 10)?);
                    }
                    (_, false) => {
                        let (clk, a) = time_rvpp(&tables, &c.trace, seconds);
                        ours.push(clk);
                        allowed = a;
                    }
                    (None, true) => {}
                }
            }
        }
        let ours = median(ours);
        let theirs = (!theirs.is_empty()).then(|| median(theirs));
        let mlps = |clk: f64| hz / clk / 1e6;
        let peer = theirs.map_or("rte_acl not run".to_string(), |t| {
            format!(
                "rte_acl {t:9.1} clocks ({:7.2} M/s), ratio {:.3}",
                mlps(t),
                t / ours
            )
        });
        println!(
            "  {:>16}: rvpp {ours:9.1} clocks/tuple ({:7.2} M/s) | {peer}",
            c.label,
            mlps(ours)
        );
        results.push(json!({
            "case": c.label,
            "rvpp_clocks_per_tuple": r2(ours),
            "rvpp_mtuples_per_s": r2(mlps(ours)),
            "rte_acl_clocks_per_tuple": theirs.map(r2),
            "rte_acl_mtuples_per_s": theirs.map(|t| r2(mlps(t))),
            "ratio": theirs.map(|t| (t / ours * 1000.0).round() / 1000.0),
            "allowed_last_pass": allowed,
            "setup": {"rules_ms": r2(c.npol.rules_ms), "policy_and_configure_ms": r2(c.npol.policy_ms), "one_rule_update_ms": r2(c.npol.one_update_ms)},
        }));
    }
    println!("  update cost (each edit published whole, as the agent sends them):");
    for c in &cases {
        println!(
            "  {:>16}: {} rule creates {:.1} ms, policy + configure {:.2} ms, one rule update at this size {:.3} ms",
            c.label,
            c.npol.order.len(),
            c.npol.rules_ms,
            c.npol.policy_ms,
            c.npol.one_update_ms
        );
    }
    println!("  target: new-flow classification >= 1.0x rte_acl's rate (ratio = rte_acl clocks / rvpp clocks)");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(json!({
        "benchmark": "policy",
        "peer": acl.as_ref().map(|a| a.bin.display().to_string()),
        "traces": n_traces,
        "runs": runs,
        "checked_tuples": if acl.is_some() { CHECKED } else { 0 },
        "results": results,
    }))
}
