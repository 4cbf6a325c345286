//! `rvpp-bench pod-remote [--runs N] [--seconds S] [--uplink af_packet|af_xdp|tap] [--no-wireguard]`:
//! iperf3 TCP from a pod on this node to a pod on a remote Linux Calico node, flat over the
//! uplink, over VXLAN (issue 15) and over WireGuard (issue 16), next to the
//! same topology with a Linux node in rvpp's seat, in the same run.
//!
//! * The remote node is a namespace with the kernel routing two veth pods (198.18.3.2 reached
//!   flat, 198.18.4.2 reached over VXLAN) and a `vxlan` device as felix makes `vxlan.calico`
//!   (VNI 4096, port 4789, a static neighbour carrying the peer's VTEP MAC).
//! * rvpp's node: rvpp with two tun pods (198.18.1.2 talks flat, 198.18.5.2 over VXLAN) and
//!   its uplink a tap into the remote node's namespace; `vxlan_tunnel0` in L2 mode toward the
//!   Linux VTEP. The uplink is a tap into the remote node's namespace (default; no vhost-net
//!   here: a syscall per packet), or a veth opened with AF_PACKET or AF_XDP as vpp-manager
//!   opens a real uplink; then, for AF_XDP, the remote end of the veth has its offloads off, as
//!   the lab's has (AF_XDP takes plain frames); the af_packet uplink has the vnet header and
//!   takes the veth's super-frames and unfinished checksums as they come.
//!   Both pods' tuns have GSO on, as calico sets it: the VXLAN pod's super-frames are
//!   encapsulated whole and segmented after (gso-segment fixes the outer headers too).
//! * The kernel's node: the same pods on veths (proxy ARP, 169.254.1.1, as calico's Linux
//!   dataplane), a veth uplink into its own remote node, and a kernel `vxlan` device.
//!
//! * WireGuard (issue 16), when wireguard-go and wg are here: a third pod on each side
//!   (198.18.7.2) reaches a pod on the remote node (198.18.6.2) through WireGuard, as a Linux
//!   Calico node in WireGuard mode routes pod blocks into `wireguard.cali`. The remote node's
//!   WireGuard is wireguard-go (this kernel has no wireguard module); rvpp's is its own `wg0`
//!   (`generate-key`, the peer's public key and the pod block as allowed IP); the kernel's node
//!   runs wireguard-go in rvpp's seat. `--no-wireguard` leaves these cases out.
//!
//! IPIP is not measured: this kernel has no ipip module, so no Linux peer can terminate it.
//! Runs alternate rvpp and kernel for each case; medians and the ratio rvpp / kernel.

use crate::pod_tcp::{iperf, ipn, median, nsx, sh, tcp_gbps, tun_pod, veth_pod, wait_for, Lab};
use crate::wireguard::{piped, wg_set, Killed};
use serde_json::{json, Value};
use std::time::Duration;

const OUR_VTEP_MAC: &str = "02:fe:00:00:00:c0";
const LINUX_VTEP_MAC: &str = "66:01:02:03:04:05";
const KERNEL_NODE_VTEP_MAC: &str = "66:01:02:03:04:06";

/// `ip -n <ns> <words>`.
fn ipw(ns: &str, words: &str) -> Result<String, String> {
    ipn(ns, &words.split_whitespace().collect::<Vec<_>>())
}

/// A `vxlan` device as felix makes `vxlan.calico` (VNI 4096, port 4789, no learning): `vx0`
/// in `ns` from `local` to `remote` over `up0`, with address `addr`/24, the peer VTEP's
/// static neighbour, and `pods` routed through it.
fn kernel_vxlan(
    ns: &str,
    ends: (&str, &str),
    mac: &str,
    addr: &str,
    peer: (&str, &str),
    pods: &str,
) -> Result<(), String> {
    let (local, remote) = ends;
    let (peer_addr, peer_mac) = peer;
    ipw(ns, &format!("link add vx0 type vxlan id 4096 dstport 4789 local {local} remote {remote} dev up0 nolearning"))?;
    ipw(ns, &format!("link set vx0 address {mac}"))?;
    ipw(ns, &format!("addr add {addr}/24 dev vx0"))?;
    ipw(ns, "link set vx0 up")?;
    ipw(
        ns,
        &format!("neigh replace {peer_addr} lladdr {peer_mac} dev vx0 nud permanent"),
    )?;
    ipw(
        ns,
        &format!("route add {pods} via {peer_addr} dev vx0 onlink"),
    )?;
    Ok(())
}

/// The remote Linux node in namespace `r`, whose uplink `up0` (already there) faces the node
/// under test at 198.18.0.1: its two pods, routes back, and the vxlan device.
fn linux_remote(
    lab: &mut Lab,
    tag: &str,
    r: &str,
    peer_vtep_mac: &str,
) -> Result<(String, String), String> {
    let flat = lab.ns(&format!("{tag}-rp3"))?;
    let vx = lab.ns(&format!("{tag}-rp4"))?;
    veth_pod(r, &flat, "cali3", "198.18.3.2")?;
    veth_pod(r, &vx, "cali4", "198.18.4.2")?;
    ipw(r, "addr add 198.18.0.2/30 dev up0")?;
    ipw(r, "link set up0 up")?;
    ipw(r, "route add 198.18.1.0/24 via 198.18.0.1 dev up0")?;
    kernel_vxlan(
        r,
        ("198.18.0.2", "198.18.0.1"),
        LINUX_VTEP_MAC,
        "198.19.255.2",
        ("198.19.255.1", peer_vtep_mac),
        "198.18.5.0/24",
    )?;
    Ok((flat, vx))
}

fn mac_of(ns: &str, dev: &str) -> Result<String, String> {
    Ok(nsx(ns, &["cat", &format!("/sys/class/net/{dev}/address")])?
        .trim()
        .to_string())
}

/// A wireguard-go device `dev` in `ns` with a fresh key, listening on 51820; the daemon ends
/// with the value. The private key stays in this process (given to `wg` on its stdin).
struct WgGo {
    daemon: Killed,
    ns: String,
    dev: String,
    private: String,
    public: String,
}

fn wg_go(ns: &str, dev: &str) -> Result<WgGo, String> {
    let c = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "wireguard-go", "-f", dev])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("wireguard-go: {e}"))?;
    let daemon = Killed(c);
    if !wait_for(Duration::from_secs(10), || {
        ipn(ns, &["link", "show", dev]).is_ok()
    }) {
        return Err(format!("wireguard-go made no {dev} in {ns}"));
    }
    let private = sh(&["wg", "genkey"])?.trim().to_string();
    let public = piped(&["wg", "pubkey"], &private)?;
    Ok(WgGo {
        daemon,
        ns: ns.into(),
        dev: dev.into(),
        private,
        public,
    })
}

impl Drop for WgGo {
    /// Killed, wireguard-go leaves its UAPI socket behind: remove it.
    fn drop(&mut self) {
        let _ = self.daemon.0.kill();
        let _ = self.daemon.0.wait();
        let _ = std::fs::remove_file(format!("/var/run/wireguard/{}.sock", self.dev));
    }
}

impl WgGo {
    /// Its one peer (`peer_pub` at `endpoint`, sending from `allowed`), MTU 1440 as calico
    /// gives `wireguard.cali` on a 1500-byte uplink, up, and `allowed` routed into it.
    fn peer(&self, peer_pub: &str, endpoint: &str, allowed: &str) -> Result<(), String> {
        let (ns, dev) = (&self.ns, &self.dev);
        wg_set(ns, dev, &self.private, "51820", peer_pub, endpoint, allowed)?;
        ipw(ns, &format!("link set {dev} mtu 1440 up"))?;
        ipw(ns, &format!("route add {allowed} dev {dev}"))?;
        Ok(())
    }
}

/// wireguard-go and wg are installed.
fn have_wireguard_go() -> bool {
    ["wireguard-go", "wg"].iter().all(|t| {
        std::process::Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// The remote node's WireGuard side: a pod at 198.18.6.2 and a wireguard-go device whose peer
/// is the node under test at 198.18.0.1 (pods 198.18.7.0/24), given that node's public key.
fn wg_remote(lab: &mut Lab, tag: &str, r: &str, dev: &str) -> Result<(String, WgGo), String> {
    let pod = lab.ns(&format!("{tag}-rp6"))?;
    veth_pod(r, &pod, "cali6", "198.18.6.2")?;
    Ok((pod, wg_go(r, dev)?))
}

/// wireguard-go interface names, unique on the machine (their UAPI sockets share one
/// directory across namespaces).
fn wg_dev(which: &str) -> String {
    format!("rvwg{which}{}", std::process::id() % 100_000)
}

struct Side {
    flat_client: String,
    vx_client: String,
    flat_server: String,
    vx_server: String,
    /// The WireGuard pods (client here, server on the remote node) and the wireguard-go
    /// daemons, when measured.
    wg: Option<(String, String, Vec<WgGo>)>,
}

fn rvpp_side(lab: &mut Lab, uplink: &str, wireguard: bool) -> Result<Side, String> {
    let node = lab.ns("node")?;
    let p1 = lab.ns("p1")?;
    let p5 = lab.ns("p5")?;
    let p7 = lab.ns("p7")?;
    let remote = lab.ns("remote")?;
    let (create, up) = if uplink == "tap" {
        (
            format!("create tap id 2 host-ns {remote} host-if-name up0"),
            "tap2",
        )
    } else {
        ipw(
            &node,
            &format!("link add up0 type veth peer name up0 netns {remote}"),
        )?;
        ipw(&node, "link set up0 up")?;
        // As the lab does: for AF_XDP (plain frames) the remote end fills its checksums and
        // segments; the af_packet uplink has the vnet header and takes the veth's offloads.
        if uplink == "af_xdp" {
            nsx(
                &remote,
                &[
                    "ethtool", "-K", "up0", "tx", "off", "tso", "off", "gso", "off", "gro", "off",
                ],
            )?;
        }
        if uplink == "af_xdp" {
            (
                "create interface af_xdp host-if up0 num-rx-queues 1".into(),
                "up0/0",
            )
        } else {
            ("create host-interface name up0 gso".into(), "host-up0")
        }
    };
    let setup = format!(
        "create tap id 0 host-if-name eth0 host-ns {p1} tun host-mtu-size 1400 gso\n\
         create tap id 1 host-if-name eth0 host-ns {p5} tun host-mtu-size 1400 gso\n\
         create tap id 7 host-if-name eth0 host-ns {p7} tun host-mtu-size 1400 gso\n\
         {create}\n\
         set interface state tun0 up\nset interface state tun1 up\nset interface state tun7 up\n\
         ip route add 198.18.1.2/32 via tun0\nip route add 198.18.5.2/32 via tun1\n\
         ip route add 198.18.7.2/32 via tun7\n\
         set interface ip address {up} 198.18.0.1/30\nset interface state {up} up\n\
         create vxlan tunnel src 198.18.0.1 dst 198.18.0.2 vni 4096\n\
         set interface mac address vxlan_tunnel0 {OUR_VTEP_MAC}\n\
         set interface ip address vxlan_tunnel0 198.19.255.1/24\n\
         set interface state vxlan_tunnel0 up\n\
         set ip neighbor vxlan_tunnel0 198.19.255.2 {LINUX_VTEP_MAC}\n\
         ip route add 198.18.3.0/24 via 198.18.0.2 {up}\n\
         ip route add 198.18.4.0/24 via 198.19.255.2 vxlan_tunnel0\n"
    );
    lab.start_rvpp(&node, "buffers { buffers-per-numa 65536 }", &setup)?;
    for (ns, dev) in [
        (&p1, "eth0"),
        (&p5, "eth0"),
        (&p7, "eth0"),
        (&remote, "up0"),
    ] {
        if !wait_for(Duration::from_secs(10), || {
            ipn(ns, &["link", "show", dev]).is_ok()
        }) {
            return Err(format!("rvpp did not create {dev} in {ns}"));
        }
    }
    tun_pod(&p1, "198.18.1.2")?;
    tun_pod(&p5, "198.18.5.2")?;
    tun_pod(&p7, "198.18.7.2")?;
    let (flat, vx) = linux_remote(lab, "r", &remote, OUR_VTEP_MAC)?;
    let up0 = mac_of(&remote, "up0")?;
    let out = lab.ctl(&format!("set ip neighbor {up} 198.18.0.2 {up0}"))?;
    if !out.trim().is_empty() {
        return Err(format!("rvpp: {out}"));
    }
    let wg = if wireguard {
        let (server, theirs) = wg_remote(lab, "r", &remote, &wg_dev("r"))?;
        let wg0 = lab.ctl("wireguard create listen-port 51820 generate-key src 198.18.0.1")?;
        let wg0 = wg0.trim().to_string();
        let show = lab.ctl("show wireguard interface")?;
        let ours = show
            .split("public-key:")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .ok_or_else(|| format!("no public key in: {show}"))?
            .to_string();
        for cmd in [
            format!(
                "wireguard peer add {wg0} public-key {} endpoint 198.18.0.2 port 51820 \
                 allowed-ip 198.18.6.0/24",
                theirs.public
            ),
            format!("set interface ip address {wg0} 198.19.254.1/32"),
            format!("set interface state {wg0} up"),
            format!("ip route add 198.18.6.0/24 via {wg0}"),
        ] {
            let out = lab.ctl(&cmd)?;
            if out.contains("rror") || out.contains("nknown") {
                return Err(format!("rvpp: {cmd}: {out}"));
            }
        }
        theirs.peer(&ours, "198.18.0.1:51820", "198.18.7.0/24")?;
        Some((p7, server, vec![theirs]))
    } else {
        None
    };
    Ok(Side {
        flat_client: p1,
        vx_client: p5,
        flat_server: flat,
        vx_server: vx,
        wg,
    })
}

fn kernel_side(lab: &mut Lab, wireguard: bool) -> Result<Side, String> {
    let node = lab.ns("knode")?;
    let p1 = lab.ns("kp1")?;
    let p5 = lab.ns("kp5")?;
    let remote = lab.ns("kremote")?;
    veth_pod(&node, &p1, "cali1", "198.18.1.2")?;
    veth_pod(&node, &p5, "cali5", "198.18.5.2")?;
    ipw(
        &node,
        &format!("link add up0 type veth peer name up0 netns {remote}"),
    )?;
    ipw(&node, "addr add 198.18.0.1/30 dev up0")?;
    ipw(&node, "link set up0 up")?;
    ipw(&node, "route add 198.18.3.0/24 via 198.18.0.2 dev up0")?;
    kernel_vxlan(
        &node,
        ("198.18.0.1", "198.18.0.2"),
        KERNEL_NODE_VTEP_MAC,
        "198.19.255.1",
        ("198.19.255.2", LINUX_VTEP_MAC),
        "198.18.4.0/24",
    )?;
    let (flat, vx) = linux_remote(lab, "k", &remote, KERNEL_NODE_VTEP_MAC)?;
    let wg = if wireguard {
        let p7 = lab.ns("kp7")?;
        veth_pod(&node, &p7, "cali7", "198.18.7.2")?;
        let ours = wg_go(&node, &wg_dev("k"))?;
        let (server, theirs) = wg_remote(lab, "k", &remote, &wg_dev("kr"))?;
        ours.peer(&theirs.public, "198.18.0.2:51820", "198.18.6.0/24")?;
        theirs.peer(&ours.public, "198.18.0.1:51820", "198.18.7.0/24")?;
        Some((p7, server, vec![ours, theirs]))
    } else {
        None
    };
    Ok(Side {
        flat_client: p1,
        vx_client: p5,
        flat_server: flat,
        vx_server: vx,
        wg,
    })
}

pub fn run(args: &[String]) -> Result<Value, String> {
    let mut runs = 3usize;
    let mut secs = 3u32;
    let mut uplink = "tap".to_string();
    let mut wireguard = true;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => runs = it.next().and_then(|v| v.parse().ok()).ok_or("--runs N")?,
            "--seconds" => {
                secs = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--seconds S")?
            }
            "--uplink" => {
                uplink = it.next().cloned().ok_or("--uplink af_packet|af_xdp|tap")?;
                if !["af_packet", "af_xdp", "tap"].contains(&uplink.as_str()) {
                    return Err("--uplink af_packet|af_xdp|tap".into());
                }
            }
            "--no-wireguard" => wireguard = false,
            other => return Err(format!("unknown option {other}")),
        }
    }
    sh(&["iperf3", "--version"]).map_err(|_| "iperf3 not installed")?;
    let wg_skipped = wireguard && !have_wireguard_go();
    let wireguard = wireguard && !wg_skipped;
    let mut lab = Lab::new("pod-remote")?;
    let ours = rvpp_side(&mut lab, &uplink, wireguard)?;
    let theirs = kernel_side(&mut lab, wireguard)?;
    for s in [&ours, &theirs] {
        let wg = s.wg.as_ref().map(|(c, ..)| (c, "198.18.6.2"));
        for (c, dst) in [(&s.flat_client, "198.18.3.2"), (&s.vx_client, "198.18.4.2")]
            .into_iter()
            .chain(wg)
        {
            nsx(c, &["ping", "-c", "2", "-i", "0.2", "-W", "2", dst])
                .map_err(|e| format!("warm-up ping to {dst}: {e}"))?;
        }
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Path {
        Flat,
        Vxlan,
        Wireguard,
    }
    type Case<'a> = (&'a str, Path, Vec<&'a str>);
    let mut cases: Vec<Case> = vec![
        ("flat_tcp_1_stream_gbps", Path::Flat, vec![]),
        ("flat_tcp_4_streams_gbps", Path::Flat, vec!["-P", "4"]),
        ("vxlan_tcp_1_stream_gbps", Path::Vxlan, vec![]),
        ("vxlan_tcp_4_streams_gbps", Path::Vxlan, vec!["-P", "4"]),
    ];
    if wireguard {
        cases.push(("wireguard_tcp_1_stream_gbps", Path::Wireguard, vec![]));
        cases.push((
            "wireguard_tcp_4_streams_gbps",
            Path::Wireguard,
            vec!["-P", "4"],
        ));
    }
    let mut res: Vec<(Vec<f64>, Vec<f64>)> = vec![(vec![], vec![]); cases.len()];
    for r in 0..runs {
        for (ci, (name, path, extra)) in cases.iter().enumerate() {
            // Alternate who goes first from run to run.
            let order = if r % 2 == 0 { [0, 1] } else { [1, 0] };
            for which in order {
                let s = if which == 0 { &ours } else { &theirs };
                let (c, srv, dst) = match (path, &s.wg) {
                    (Path::Flat, _) => (&s.flat_client, &s.flat_server, "198.18.3.2"),
                    (Path::Vxlan, _) => (&s.vx_client, &s.vx_server, "198.18.4.2"),
                    (Path::Wireguard, Some((c, srv, _))) => (c, srv, "198.18.6.2"),
                    (Path::Wireguard, None) => return Err("no WireGuard pods on this side".into()),
                };
                let g = iperf(c, srv, dst, secs, extra)
                    .and_then(|v| tcp_gbps(&v))
                    .map_err(|e| match which {
                        0 => format!(
                            "{e}\nrvpp's show errors:\n{}",
                            lab.ctl("show errors").unwrap_or_default()
                        ),
                        _ => e,
                    })?;
                let who = if which == 0 { "rvpp" } else { "kernel" };
                println!("run {}/{runs} {name:<28} {who:<7} {g:.2} Gbit/s", r + 1);
                if which == 0 {
                    res[ci].0.push(g);
                } else {
                    res[ci].1.push(g);
                }
            }
        }
    }
    let errors = lab.ctl("show errors").unwrap_or_default();
    let mut out = serde_json::Map::new();
    println!("pod-remote (medians of {runs} interleaved runs of {secs} s; rvpp uplink {uplink}; pods MTU 1400; IPIP not measured: no ipip module here):");
    for (ci, (name, ..)) in cases.iter().enumerate() {
        let (a, b) = &mut res[ci];
        let (ma, mb) = (median(a), median(b));
        let ratio = if mb > 0.0 { ma / mb } else { 0.0 };
        println!("  {name:<28} rvpp {ma:6.2} kernel {mb:6.2} ratio {ratio:.2}");
        out.insert(
            name.to_string(),
            json!({"rvpp": ma, "kernel": mb, "ratio": ratio, "rvpp_runs": a, "kernel_runs": b}),
        );
    }
    let drops: Vec<String> = errors
        .lines()
        .filter(|l| l.contains("dropped") || l.contains("error"))
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|n| n.parse::<u64>().is_ok_and(|n| n > 0))
        })
        .map(|l| l.trim().to_string())
        .collect();
    if !drops.is_empty() {
        println!("  rvpp's error-severity counters during the runs (events such as segmentation included):");
        for d in &drops {
            println!("    {d}");
        }
    }
    Ok(json!({
        "benchmark": "pod-remote",
        "peer": "the same topology with a Linux node (veth pods, kernel routing, kernel vxlan) in rvpp's seat",
        "runs": runs,
        "seconds": secs,
        "mtu": 1400,
        "rvpp_uplink": uplink,
        "rvpp_flat_pod_gso": true,
        "rvpp_vxlan_pod_gso": true,
        "ipip": "not measured: the kernel here has no ipip module",
        "wireguard": if wireguard {
            "rvpp's wg0 to wireguard-go on the remote node; the kernel's node runs wireguard-go in rvpp's seat (no wireguard module here)"
        } else if wg_skipped {
            "skipped: wireguard-go or wg not installed"
        } else {
            "left out (--no-wireguard)"
        },
        "results": out,
        "rvpp_error_counters": drops,
    }))
}
