//! `rvpp-bench`: benchmarks, each printed next to a peer, with `--json` for one JSON line.

mod api_rate;
#[path = "../../test-support/charon.rs"]
mod charon;
mod cnat;
mod dpdk_null;
mod env;
mod fib;
mod graph;
mod ipsec;
mod memif_loop;
mod overlay;
mod pod_remote;
mod pod_tcp;
mod policy;
mod scrape;
mod service_crr;
mod soak;
mod srv6;
mod testpmd;
mod uplink;
mod wireguard;

const USAGE: &str = "usage: rvpp-bench <benchmark> [options] [--json]
  graph [--path ip4|ip6|xconnect|npol|cnat|cnat-npol] [--flows N] [--routes N] [--route-mix internet|dpdk] [--seconds S] [--runs R] [--size B] [--pages auto|no-hugetlb|both] [--testpmd PATH | --no-peer]
                one-core IPv4 forwarding graph, next to testpmd 5tswap on net_null in the same run
  cnat [--flows 10000,100000,1000000] [--seconds S] [--runs R] [--size B] [--calico-snat] [--vpp-build DIR]
                one-core cnat (k8s services): established-flow Mpps and clocks/pkt, new sessions/s,
                next to the same graph without cnat and (--vpp-build) VPP's cnat in the same run
  ipsec [--seconds S] [--runs R] [--no-openssl] [--no-dpdk] [--size B]... [--cipher C]...
                one-core ESP AES-GCM-128/-256 encrypt and decrypt at 64 B, 1400 B, IMIX, next to
                aws-lc-rs's raw AES-GCM, openssl speed -evp and dpdk-test-crypto-perf
                (crypto_aesni_gcm) in the same run
  srv6 [--sizes 64,1400] [--seconds S] [--runs R]
                one-core SRv6 H.Encaps and End.DT4: Mpps and clocks/pkt next to plain IPv4 / IPv6
                forwarding in the same run (VPP CSIT's 13.4 Mpps H.Encaps quoted)
  overlay [--sizes 64,1400] [--seconds S] [--runs R] [--nodes] [--case NAME [--inner6]]
                one-core IPIP and VXLAN (L3) encap and decap: Mpps and clocks/pkt next to plain
                IPv4 forwarding of the same inner frames in the same run, and what they add;
                --case NAME alone (forward, ipip-/vxlan-encap/-decap, and ipip6-/vxlan6-...
                with an IPv6 outer header)
  policy [--rules 100,1000,10000] [--traces N] [--ipset N] [--runs R] [--acl PATH | --no-acl]
                npol's new-flow verdict next to DPDK's rte_acl (dpdk-test-acl) on the same
                rules and tuples, answers cross-checked first; rule-update cost
  fib [--routes N] [--lookups N] [--reps N] [--passes N] [--tbl8 N] [--seed N] [--dpdk PATH | --no-dpdk]
                lookups/s next to DPDK's rte_fib (dpdk-test-fib) on the same routes
  memif-loop [--runs R] [--seconds S] [--sizes 64,1518] [--testpmd PATH] [--queues N]
                rvpp (L2 xconnect, IPv4 routing) as DUT between two memif ports of dpdk-testpmd,
                vs testpmd io forwarding in the DUT seat
  pod-tcp [--runs R] [--seconds S] [--no-gso] [--workers N] [--queues N]
                iperf3 pod to pod through rvpp vs the Linux kernel (root)
  pod-remote [--runs R] [--seconds S] [--uplink af_packet|af_xdp|tap] [--no-wireguard] [--no-ipsec]
                iperf3 TCP from a pod here to a pod on a Linux node, flat, over VXLAN, over
                WireGuard (wireguard-go on the Linux node) and over IPsec (IKEv2 PSK, ESP
                AES-GCM-256 in UDP, to strongSwan's charon with kernel-libipsec on the Linux
                node), vs a Linux node in rvpp's seat (root)
  service-crr [--services 1,1000,10000] [--seconds S] [--runs R] [--conns C]
              [--rx-mode polling|interrupt|adaptive] [--workers N]
                TCP connect-request-response to a ClusterIP through rvpp's cnat vs the kernel
                with kube-proxy's nftables rules, per service count; rvpp's workers in the
                given rx mode (default polling) (root)
  uplink [--runs R] [--seconds S]
                64 B pps into and out of the uplink: AF_XDP vs AF_PACKET (root)
  api-rate [--routes N] [--rate-routes N] [--clients N]
                ip_route_add_del per second; 1M routes programmed under traffic
  scrape [--runs R] [--seconds S] [--interval-ms I]
                what a GET /metrics every I ms costs rvpp's forwarding, next to no scrapes in
                the same run (clocks/pkt from the node counters)
  soak [--minutes M] [--sample-secs S] [--warmup-secs W] [--routes N]
                rvpp under steady pod traffic while calico-like churn runs through the API;
                RSS, threads, fds, buffers and FIB bytes sampled, slopes reported (root)
  wireguard [--seconds S] [--runs R] [--sizes 64,1400,imix] [--no-wireguard-go]
                WireGuard encrypt + decrypt on one core (64 B, 1400 B, IMIX) next to the raw
                chacha20poly1305 crate, and wireguard-go with iperf3 between two namespaces (root)
  dpdk-null [--runs R] [--seconds S] [--size B] [--routes N] [--rx copy|in-place|both]
                rvpp between two DPDK net_null ports vs testpmd io (build with --features dpdk)
";

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    args.retain(|a| a != "--json");
    let Some(which) = args.first().cloned() else {
        eprint!("{USAGE}");
        std::process::exit(2);
    };
    let rest = &args[1..];
    // The CRR load generator and server, which service-crr runs inside the pods' namespaces.
    let helper = match which.as_str() {
        "__crr-client" => Some(service_crr::client(rest)),
        "__crr-server" => Some(service_crr::server(rest)),
        // npol's verdict over one policy case, for callgrind (bench/README.md, policy).
        "__npol-cost" => Some(policy::cost(rest)),
        _ => None,
    };
    if let Some(r) = helper {
        if let Err(e) = r {
            eprintln!("rvpp-bench {which}: {e}");
            std::process::exit(1);
        }
        return;
    }
    let r = match which.as_str() {
        "graph" => graph::run(rest),
        "cnat" => cnat::run(rest),
        "srv6" => srv6::run(rest),
        "overlay" => overlay::run(rest),
        "fib" => fib::run(rest),
        "policy" => policy::run(rest),
        "ipsec" => ipsec::run(rest),
        "memif-loop" => memif_loop::run(rest),
        "pod-tcp" => pod_tcp::run(rest),
        "pod-remote" => pod_remote::run(rest),
        "service-crr" => service_crr::run(rest),
        "uplink" => uplink::run(rest),
        "api-rate" => api_rate::run(rest),
        "dpdk-null" => dpdk_null::run(rest),
        "scrape" => scrape::run(rest),
        "soak" => soak::run(rest),
        "wireguard" => wireguard::run(rest),
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            return;
        }
        other => Err(format!("unknown benchmark {other}\n{USAGE}")),
    };
    match r {
        Ok(mut v) => {
            if let Some(o) = v.as_object_mut() {
                o.insert("environment".into(), env::describe());
            }
            if json {
                println!("{v}");
            }
        }
        Err(e) => {
            eprintln!("rvpp-bench {which}: {e}");
            std::process::exit(1);
        }
    }
}
