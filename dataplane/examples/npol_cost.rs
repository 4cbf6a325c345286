//! Instruction cost of npol's new-flow verdict, for callgrind, on the rules and tuples of
//! `rvpp-bench policy --traces <traces>` (the same generator and seed):
//!   cargo build --release -p rvpp-dataplane --example npol_cost
//!   valgrind --tool=callgrind --toggle-collect='npol_cost::one' \
//!     target/release/examples/npol_cost <100|1000|10000|ipset> [traces (20000)]
//! `one` is `npol::verdict` for one tuple; the instruction count over the run divided by the
//! tuples is the cost. Add `--cache-sim=yes` for the misses (the ipset case is memory-bound).
use rvpp_dataplane::npol::ipset::{IpSetKind, Member};
use rvpp_dataplane::npol::rule::{Action, Entry, Filter, FilterKind, MatchData, Rule};
use rvpp_dataplane::npol::{
    verdict, Direction, FiveTuple, IfConfig, Net, Npol, NpolTables, Policy, PolicyDefault, Verdict,
};
use std::net::{IpAddr, Ipv4Addr};

const SW: u32 = 1;

#[inline(never)]
fn one(t: &NpolTables, p: &FiveTuple) -> Verdict {
    verdict(t, SW, Direction::Rx, p)
}

/// bench/src/graph.rs's xorshift64*.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

// From here to `npol_rule`: bench/src/policy.rs's generator, unchanged.
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

fn rx_only(policy: u32) -> IfConfig {
    let deny = PolicyDefault::Deny;
    IfConfig {
        rx_policies: vec![policy],
        tx_policies: vec![],
        profiles: vec![],
        invert_rx_tx: false,
        policy_default_rx: deny,
        policy_default_tx: deny,
        profile_default_rx: deny,
        profile_default_tx: deny,
    }
}

/// The tables of one policy holding `rules` (ids 0..), configured on SW's rx side.
fn install(ipsets: Vec<(u32, IpSetKind, Vec<Member>)>, rules: Vec<Rule>) -> Npol {
    let npol = Npol::default();
    let policy = Policy {
        inbound: (0..rules.len() as u32).collect(),
        outbound: vec![],
    };
    let rules = rules.into_iter().enumerate().map(|(i, r)| (i as u32, r));
    npol.restore(
        ipsets,
        rules.collect(),
        vec![(0, policy)],
        vec![(SW, rx_only(0))],
    )
    .expect("restore");
    npol
}

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_else(|| "100".into());
    let n_traces: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    // The bench's cases in its order, so each draws what it draws there.
    let mut rng = Rng(0x0005_eed0_fac1);
    let mut chosen = None;
    for n in [100usize, 1000, 10000] {
        let specs = gen_rules(n, &mut rng);
        let trace = gen_trace(&specs, n_traces, &mut rng);
        if case == n.to_string() {
            let rules = specs.iter().enumerate().map(|(i, s)| npol_rule(i, s));
            chosen = Some((install(vec![], rules.collect()), trace));
        }
    }
    if case == "ipset" {
        let ipset = 100_000usize;
        let members: Vec<u32> = (0..ipset)
            .map(|_| 0x0a80_0000 | (rng.next() as u32 & 0x007f_ffff))
            .collect();
        let m = members
            .iter()
            .map(|&a| Member::Ip(IpAddr::V4(Ipv4Addr::from(a))))
            .collect();
        let rule = Rule {
            action: Action::Allow,
            filters: vec![],
            entries: vec![Entry {
                is_src: false,
                is_not: false,
                data: MatchData::IpSet(0),
            }],
        };
        let trace = (0..n_traces)
            .map(|i| {
                let dst = if i % 2 == 0 {
                    members[(rng.next() % ipset as u64) as usize]
                } else {
                    rng.next() as u32
                };
                tuple(rng.next() as u32, dst, 6, rng.next() as u16, 80)
            })
            .collect();
        chosen = Some((install(vec![(0, IpSetKind::Ip, m)], vec![rule]), trace));
    }
    let Some((npol, trace)) = chosen else {
        eprintln!("usage: npol_cost <100|1000|10000|ipset> [traces]");
        std::process::exit(2);
    };
    let t = npol.tables.load();
    let allowed = trace
        .iter()
        .filter(|p| one(&t, std::hint::black_box(p)) == Verdict::Allow)
        .count();
    println!("{case}: {} tuples, {allowed} allowed", trace.len());
}
