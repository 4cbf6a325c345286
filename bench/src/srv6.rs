//! `rvpp-bench srv6`: one core, the in-process graph (pg-input -> ... -> null-tx). H.Encaps
//! (IPv4 payload steered into a one-SID policy: ip4-lookup -> sr-pl-rewrite-encaps-v4 ->
//! interface-output) next to plain IPv4 forwarding of the same packets, End.DT4 (IPv6 +
//! SRH(SL 0) + IPv4 to our SID: ip6-lookup -> sr-localsid -> interface-output) and End.DT6
//! (the same with an IPv6 payload) each next to plain IPv6 forwarding of its own frames, all
//! in the same run, at each size. Mpps, and clocks per packet from the runtime's node
//! counters. VPP's figure is quoted, not measured here.

use crate::graph::{
    alternate, error_count, measure, r2, Measured, SizedRuns, TwoPorts, GEN_MAC, PG_MAC,
};
use rvpp_dataplane::feature::FeatureTables;
use rvpp_dataplane::fib::Ip4FibConfig;
use rvpp_dataplane::forwarding::{Path, PathKind, Prefix};
use rvpp_dataplane::srv6::{self, Behavior, Localsid, Policy, SidList, Srv6};
use rvpp_drivers::pg::PgStream;
use serde_json::json;
use std::time::Duration;

/// FD.io CSIT, VPP 22.10, Ice Lake, 2 threads on 1 core: SRv6 H.Encaps 78 B (NDR), as
/// the issue quotes it.
const VPP_CSIT_ENCAP_MPPS: f64 = 13.4;
const WARMUP: Duration = Duration::from_millis(300);
const SRC6: u128 = 0xfd00_0019_0000_0000_0000_0000_0000_0001;
const SID_REMOTE: u128 = 0xfd00_0002_0000_0000_0000_0000_0000_00d4;
const SID_LOCAL: u128 = 0xfd00_0001_0000_0000_0000_0000_0000_00d4;
const SID_LOCAL6: u128 = 0xfd00_0001_0000_0000_0000_0000_0000_00d6;
/// A plain IPv6 destination (the default route's), for End.DT6's inner packets and the
/// plain IPv6 peers.
const PLAIN6: u128 = 0xfd00_00a0_0000_0000_0000_0000_0000_0007;
/// Steered IPv4 destinations (198.20.0.0/16) and plain ones (198.19.1.0/24 via null0's
/// neighbour: outside null0's connected 198.19.0.0/24, which outranks an API route of the same
/// prefix and would send the packets to ip4-arp).
const STEERED: u32 = 0xc614_0007;
const PLAIN: u32 = 0xc613_0107;

#[derive(Clone, Copy, PartialEq)]
enum Case {
    Ip4,
    Encap,
    /// The End.DT4 (false) or End.DT6 (true) frames to a plain IPv6 destination.
    Ip6(bool),
    Dt4,
    Dt6,
}

/// The SRv6 frame End.DT4 (`inner6` false) or End.DT6 receives: outer IPv6 to our SID, an
/// SRH of one segment (SL 0), an IPv4/UDP packet to PLAIN or an IPv6/UDP one to PLAIN6,
/// `size` bytes in all (at least the headers).
fn decap_frame(size: usize, inner6: bool) -> Vec<u8> {
    let (sid, inner_hdrs) = if inner6 {
        (SID_LOCAL6, 40 + 8)
    } else {
        (SID_LOCAL, 28)
    };
    let size = size.max(14 + 40 + 24 + inner_hdrs);
    let mut f = vec![0u8; size];
    f[0..6].copy_from_slice(&PG_MAC);
    f[6..12].copy_from_slice(&GEN_MAC);
    f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    let inner_len = size - 14 - 40 - 24;
    if let Some(mut h) = rvpp_dataplane::wire::Ip6HdrMut::new(&mut f[14..]) {
        h.init(
            0xfd00_0018_0000_0000_0000_0000_0000_0002,
            sid,
            43,
            64,
            (24 + inner_len) as u16,
        );
    }
    let proto = if inner6 { 41 } else { 4 };
    let _ = rvpp_dataplane::wire::srh::emit(&mut f[54..], proto, &[sid], 0);
    if inner6 {
        if let Some(mut h) = rvpp_dataplane::wire::Ip6HdrMut::new(&mut f[78..]) {
            h.init(SRC6 + 1, PLAIN6, 17, 64, (inner_len - 40) as u16);
        }
    } else if let Some(mut h) = rvpp_dataplane::wire::Ip4HdrMut::new(&mut f[78..]) {
        h.init(0xc612_0002, PLAIN, 17, 64, inner_len as u16);
    }
    f
}

fn run_case(case: Case, size: usize, seconds: f64) -> Result<Measured, String> {
    let fib = Ip4FibConfig {
        tbl8_groups: 1 << 12,
        huge_pages: false,
    };
    let mut ports = TwoPorts::new(fib, true)?;
    let (pg, out, nh) = (ports.pg, ports.out, ports.nh);
    let fwd = &mut ports.fwd;
    let e = |e: rvpp_dataplane::forwarding::FwdError| e.to_string();
    for (s, a) in [(pg, "fd00:18::1/64"), (out, "fd00:19::1/64")] {
        fwd.address_add(s, Prefix::parse(a).expect("addr6"))
            .map_err(e)?;
    }
    let nh6 = "fd00:19::2".parse().expect("nh6");
    fwd.neighbor_add(out, nh6, [2, 0, 0, 0, 0, 9], true)
        .map_err(e)?;
    fwd.route_add(
        0,
        Prefix::V4(PLAIN & 0xffff_ff00, 24),
        vec![Path::via(nh, Some(out))],
    )
    .map_err(e)?;
    // Everything IPv6 (the SID's locator, the plain IPv6 destination) via null0.
    fwd.route_add(0, Prefix::V6(0, 0), vec![Path::via(nh6, Some(out))])
        .map_err(e)?;
    let tables = FeatureTables::default();
    let mut sr = Srv6 {
        encap_source: SRC6,
        ..Default::default()
    };
    let mut p = Policy::new(1, true, false, 0, 0);
    p.sid_lists
        .push(SidList::new(0, 1, vec![SID_REMOTE], SRC6, false).ok_or("sid list")?);
    p.rebalance();
    sr.policies.push(Some(p));
    for (sid, behavior) in [(SID_LOCAL, Behavior::DT4), (SID_LOCAL6, Behavior::DT6)] {
        sr.localsids.push(Some(Localsid::dt(sid, behavior, 0, 0)));
    }
    tables.get::<srv6::Table>().publish(sr);
    fwd.route_add(
        0,
        Prefix::V4(STEERED & 0xffff_0000, 16),
        vec![Path::special(PathKind::SrPolicy(0))],
    )
    .map_err(e)?;
    for (i, sid) in [SID_LOCAL, SID_LOCAL6].into_iter().enumerate() {
        fwd.route_add(
            0,
            Prefix::V6(sid, 128),
            vec![Path::special(PathKind::SrLocalsid(i as u32))],
        )
        .map_err(e)?;
    }
    let graph = rvpp_drivers::graph_builder(&tables).build()?;
    let stream = match case {
        Case::Ip4 => PgStream::ip4_udp(pg, PG_MAC, GEN_MAC, 0xc612_0002, &[PLAIN], size),
        Case::Encap => PgStream::ip4_udp(pg, PG_MAC, GEN_MAC, 0xc612_0002, &[STEERED], size),
        // The same frame to a plain IPv6 destination: forwarded, not decapsulated.
        Case::Ip6(inner6) => {
            let mut f = decap_frame(size, inner6);
            f[38..54].copy_from_slice(&PLAIN6.to_be_bytes());
            PgStream::ip6_frame(pg, f)
        }
        Case::Dt4 => PgStream::ip6_frame(pg, decap_frame(size, false)),
        Case::Dt6 => PgStream::ip6_frame(pg, decap_frame(size, true)),
    };
    let mut rt = ports.runtime(graph, stream)?;
    let m = measure(&mut rt, out, WARMUP, seconds);
    if m.packets == 0 {
        return Err("nothing left null0: the path is broken".into());
    }
    if let Some(n) = m.off_path() {
        return Err(format!("packets reached {n}: the path is broken"));
    }
    // The packets took the SRv6 path (not a plain route, not a drop).
    let on_path = |node: &str, code: u16| error_count(&rt, node, code);
    let sr_done = match case {
        Case::Encap => on_path(srv6::encap::ENCAP4, srv6::encap::error::ENCAPSULATED),
        Case::Dt4 | Case::Dt6 => on_path(srv6::localsid::NAME, srv6::localsid::error::DECAPSULATED),
        _ => m.packets,
    };
    if sr_done < m.packets {
        return Err(format!(
            "{} of {} packets took the SRv6 path",
            sr_done, m.packets
        ));
    }
    Ok(m)
}

pub fn run(args: &[String]) -> Result<serde_json::Value, String> {
    let SizedRuns {
        seconds,
        runs,
        sizes,
    } = SizedRuns::parse(args)?;
    let mut out = Vec::new();
    println!(
        "srv6, one core, in-process graph; peers measured in the same run. VPP reference \
         (quoted, not measured here): FD.io CSIT 22.10 Ice Lake 2 threads/1 core, H.Encaps \
         {VPP_CSIT_ENCAP_MPPS} Mpps"
    );
    for &size in &sizes {
        for (what, case, peer_name, peer) in [
            ("H.Encaps", Case::Encap, "ipv4 forwarding", Case::Ip4),
            ("End.DT4", Case::Dt4, "ipv6 forwarding", Case::Ip6(false)),
            ("End.DT6", Case::Dt6, "ipv6 forwarding", Case::Ip6(true)),
        ] {
            let (m, c, pm, pc) = alternate(
                runs,
                || run_case(case, size, seconds),
                || run_case(peer, size, seconds),
            )?;
            println!(
                "{what:9} {size:5} B: {m:6.2} Mpps {c:6.1} clocks/pkt | {peer_name} {pm:6.2} Mpps \
                 {pc:6.1} clocks/pkt | ratio {:.2}",
                m / pm.max(1e-9)
            );
            out.push(json!({
                "case": what, "size": size, "mpps": r2(m), "clocks_per_packet": r2(c),
                "peer": peer_name, "peer_mpps": r2(pm), "peer_clocks_per_packet": r2(pc),
                "ratio": r2(m / pm.max(1e-9)),
            }));
        }
    }
    Ok(json!({
        "benchmark": "srv6",
        "seconds": seconds,
        "runs": runs,
        "results": out,
        "vpp_reference": {"h_encaps_mpps": VPP_CSIT_ENCAP_MPPS,
            "source": "FD.io CSIT 22.10, Ice Lake, 2 threads 1 core (quoted)"},
    }))
}
