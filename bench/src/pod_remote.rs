//! `rvpp-bench pod-remote [--runs N] [--seconds S] [--uplink af_packet|af_xdp|tap] [--no-wireguard]
//! [--no-ipsec]`: iperf3 TCP from a pod on this node to a pod on a remote Linux Calico node, flat
//! over the uplink, over VXLAN (issue 15), over WireGuard and over IPsec (issue 16), next to the
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
//! * IPsec (issue 16), when strongSwan's charon, swanctl and vpp_papi are here: a fourth pod on
//!   each side (198.18.11.2) reaches a pod on the remote node (198.18.10.2) through IKEv2 (PSK)
//!   and ESP AES-GCM-256 in UDP. The remote node's IPsec is charon with kernel-libipsec (ESP in
//!   userspace over its TUN `ipsec0`: this kernel has no ESP), `encap = yes` as kernel-libipsec
//!   only does ESP in UDP, selectors 198.18.10.0/24 to 198.18.11.0/24, calico's proposals. rvpp
//!   is set up over vpp_papi as calico-vpp sets up a peer (control/tests/api/papi_ikev2_nat.py:
//!   an IPIP tunnel protected by an IKEv2 profile, the far pod block routed into it: calico's
//!   own path, though the CLI can set the same up) and answers charon's initiation. The kernel's node runs charon
//!   too (charon to charon, the same selectors and proposals). `--no-ipsec` leaves these out.
//!
//! IPIP is not measured: this kernel has no ipip module, so no Linux peer can terminate it.
//! Runs alternate rvpp and kernel for each case; medians and the ratio rvpp / kernel.

use crate::charon;
use crate::pod_tcp::{iperf, ipn, median, nsx, sh, tcp_gbps, tun_pod, veth_pod, wait_for, Lab};
use crate::wireguard::{piped, wg_set, Killed};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
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

/// The shell command `cmd` succeeds (quietly).
fn succeeds(cmd: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", cmd])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// wireguard-go and wg are installed.
fn have_wireguard_go() -> bool {
    ["wireguard-go", "wg"]
        .iter()
        .all(|t| succeeds(&format!("command -v {t}")))
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

/// The pod blocks of the IPsec pods: here (198.18.11.2) and on the remote node (198.18.10.2).
const IPSEC_HERE: &str = "198.18.11.0/24";
const IPSEC_THERE: &str = "198.18.10.0/24";
const IPSEC_PSK: &str = "pod-remote-psk";

/// What IPsec needs and is missing here, if anything.
fn ipsec_missing() -> Option<&'static str> {
    if !Path::new(charon::CHARON).exists() {
        return Some("strongSwan's charon is not installed");
    }
    if !succeeds("command -v swanctl") {
        return Some("swanctl is not installed");
    }
    if !succeeds("python3 -c 'import vpp_papi'") {
        return Some("python3 cannot import vpp_papi (rvpp's IKEv2 peer is set up over the API, as calico does)");
    }
    None
}

/// charon in `ns` with its own strongswan.conf, vici socket and /run under `dir`, one
/// connection `pods` loaded; killed when dropped (its directory goes with the lab's).
struct Charon {
    ns: String,
    dir: PathBuf,
    _daemon: Killed,
}

impl Charon {
    /// From `local` to `remote` (addresses are the IKE ids), child selectors `ts` (local,
    /// remote); calico's proposals (AES-CBC-256, SHA1, MODP-2048; ESP AES-GCM-16 256).
    /// `inside` (in the local selector) goes on lo: with no local address inside its local
    /// selector, charon here fails the child ("error installing route with policy").
    fn start(
        ns: &str,
        dir: PathBuf,
        ends: (&str, &str),
        ts: (&str, &str),
        inside: &str,
    ) -> Result<Self, String> {
        let (local, remote) = ends;
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        ipw(ns, &format!("addr add {inside}/32 dev lo"))?;
        // Inbound ESP leaves charon's TUN toward the pod: no reverse-path filter on it.
        nsx(
            ns,
            &[
                "sysctl",
                "-qw",
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.default.rp_filter=0",
            ],
        )?;
        charon::write_conf(&dir, &[]);
        let conf = format!(
            "connections {{\n  pods {{\n    local_addrs = {local}\n    remote_addrs = {remote}\n    \
             version = 2\n    encap = yes\n    proposals = aes256-sha1-modp2048\n    local {{\n      \
             auth = psk\n      id = {local}\n    }}\n    remote {{\n      auth = psk\n      \
             id = {remote}\n    }}\n    children {{\n      pods {{\n        local_ts = {}\n        \
             remote_ts = {}\n        esp_proposals = aes256gcm16\n      }}\n    }}\n  }}\n}}\n\
             secrets {{\n  ike-1 {{\n    id-1 = {local}\n    id-2 = {remote}\n    \
             secret = \"{IPSEC_PSK}\"\n  }}\n}}\n",
            ts.0, ts.1
        );
        let file = dir.join("swanctl.conf");
        std::fs::write(&file, conf).map_err(|e| format!("{}: {e}", file.display()))?;
        let c = Charon {
            ns: ns.into(),
            _daemon: Killed(charon::spawn(ns, &dir)),
            dir,
        };
        if !wait_for(Duration::from_secs(10), || {
            c.dir.join("charon.vici").exists()
        }) {
            return Err(format!(
                "charon in {ns} made no vici socket:\n{}",
                c.file("charon.out")
            ));
        }
        let o = c.swanctl(&["--load-all", "--file", &file.display().to_string()])?;
        if !o.contains("loaded connection 'pods'") {
            return Err(format!("swanctl --load-all in {ns}: {o}"));
        }
        Ok(c)
    }

    fn swanctl(&self, args: &[&str]) -> Result<String, String> {
        charon::swanctl(&self.ns, &self.dir, args).map_err(|e| format!("swanctl: {e}"))
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// Bring the child up from this side; `why` is what the peer can tell when it fails.
    fn initiate(&self, why: impl FnOnce() -> String) -> Result<(), String> {
        let o = self.swanctl(&["--initiate", "--child", "pods", "--timeout", "20"])?;
        if !o.contains("initiate completed successfully") {
            let log = self.file("charon.log");
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            return Err(format!(
                "IKEv2 from {}: {o}\npeer:\n{}\ncharon log (last lines):\n{}",
                self.ns,
                why(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ));
        }
        Ok(())
    }

    /// Route `far` (the peer's pod block) into kernel-libipsec's TUN (charon may have).
    fn route(&self, far: &str) -> Result<(), String> {
        ipw(&self.ns, &format!("route replace {far} dev ipsec0"))?;
        Ok(())
    }
}

/// The remote node's IPsec side: a pod at 198.18.10.2 and charon toward the node under test at
/// 198.18.0.1 (pods 198.18.11.0/24).
fn ipsec_remote(lab: &mut Lab, tag: &str, r: &str) -> Result<(String, Charon), String> {
    let pod = lab.ns(&format!("{tag}-rp10"))?;
    veth_pod(r, &pod, "cali10", "198.18.10.2")?;
    let c = Charon::start(
        r,
        lab.dir.join(format!("{tag}-remote-charon")),
        ("198.18.0.2", "198.18.0.1"),
        (IPSEC_THERE, IPSEC_HERE),
        "198.18.10.1",
    )?;
    Ok((pod, c))
}

/// The pods of an encrypted path (client here, server on the remote node) and what keeps it
/// up (wireguard-go daemons, charons).
type Encrypted<T> = Option<(String, String, Vec<T>)>;

struct Side {
    flat_client: String,
    vx_client: String,
    flat_server: String,
    vx_server: String,
    /// The WireGuard pods and the wireguard-go daemons, when measured.
    wg: Encrypted<WgGo>,
    /// The IPsec pods and the charons, when measured.
    ipsec: Encrypted<Charon>,
}

fn rvpp_side(lab: &mut Lab, uplink: &str, wireguard: bool, ipsec: bool) -> Result<Side, String> {
    let node = lab.ns("node")?;
    let p1 = lab.ns("p1")?;
    let p5 = lab.ns("p5")?;
    let p7 = lab.ns("p7")?;
    let p11 = lab.ns("p11")?;
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
         create tap id 11 host-if-name eth0 host-ns {p11} tun host-mtu-size 1400 gso\n\
         {create}\n\
         set interface state tun0 up\nset interface state tun1 up\nset interface state tun7 up\n\
         set interface state tun11 up\n\
         ip route add 198.18.1.2/32 via tun0\nip route add 198.18.5.2/32 via tun1\n\
         ip route add 198.18.7.2/32 via tun7\nip route add 198.18.11.2/32 via tun11\n\
         set interface ip address {up} 198.18.0.1/30\nset interface state {up} up\n\
         create vxlan tunnel src 198.18.0.1 dst 198.18.0.2 vni 4096\n\
         set interface mac address vxlan_tunnel0 {OUR_VTEP_MAC}\n\
         set interface ip address vxlan_tunnel0 198.19.255.1/24\n\
         set interface state vxlan_tunnel0 up\n\
         set ip neighbor vxlan_tunnel0 198.19.255.2 {LINUX_VTEP_MAC}\n\
         ip route add 198.18.3.0/24 via 198.18.0.2 {up}\n\
         ip route add 198.18.4.0/24 via 198.19.255.2 vxlan_tunnel0\n"
    );
    let api = lab.dir.join("api.sock");
    lab.start_rvpp(
        &node,
        &format!(
            "buffers {{ buffers-per-numa 65536 }}\nsocksvr {{ socket-name {} }}",
            api.display()
        ),
        &setup,
    )?;
    for (ns, dev) in [
        (&p1, "eth0"),
        (&p5, "eth0"),
        (&p7, "eth0"),
        (&p11, "eth0"),
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
    tun_pod(&p11, "198.18.11.2")?;
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
    let ipsec = if ipsec {
        let (server, theirs) = ipsec_remote(lab, "r", &remote)?;
        rvpp_ikev2_peer(lab, up, &api)?;
        theirs.initiate(|| {
            ["show ikev2 sa", "show ikev2 counters", "show errors"]
                .iter()
                .map(|c| lab.ctl(c).unwrap_or_default())
                .collect()
        })?;
        theirs.route(IPSEC_HERE)?;
        Some((p11, server, vec![theirs]))
    } else {
        None
    };
    Ok(Side {
        flat_client: p1,
        vx_client: p5,
        flat_server: flat,
        vx_server: vx,
        wg,
        ipsec,
    })
}

/// rvpp's IKEv2 peer toward charon at 198.18.0.2, set up over vpp_papi (api socket `api`) as
/// calico-vpp sets one up: the IPIP tunnel unnumbered to the uplink `up`, the far pod block
/// routed into it, the profile (PSK, IPv4 ids, selectors) protecting it. rvpp answers.
fn rvpp_ikev2_peer(lab: &Lab, up: &str, api: &Path) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let rvpp = exe.with_file_name("rvpp");
    let apidir = lab.dir.join("apidir");
    let apidir = apidir.to_str().unwrap_or("");
    sh(&[rvpp.to_str().unwrap_or("rvpp"), "--write-api-json", apidir])?;
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../control/tests/api/papi_ikev2_nat.py");
    let out = sh(&[
        "python3",
        script.to_str().unwrap_or(""),
        apidir,
        api.to_str().unwrap_or(""),
        "responder",
        "198.18.0.1",
        "198.18.0.2",
        "198.18.0.2",
        IPSEC_THERE,
        up,
        IPSEC_PSK,
    ])?;
    if !out.contains("ALL OK") {
        return Err(format!("rvpp's IKEv2 peer over vpp_papi: {out}"));
    }
    Ok(())
}

fn kernel_side(lab: &mut Lab, wireguard: bool, ipsec: bool) -> Result<Side, String> {
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
    let ipsec = if ipsec {
        let p11 = lab.ns("kp11")?;
        veth_pod(&node, &p11, "cali11", "198.18.11.2")?;
        let ours = Charon::start(
            &node,
            lab.dir.join("k-charon"),
            ("198.18.0.1", "198.18.0.2"),
            (IPSEC_HERE, IPSEC_THERE),
            "198.18.11.1",
        )?;
        let (server, theirs) = ipsec_remote(lab, "k", &remote)?;
        theirs.initiate(|| ours.file("charon.log"))?;
        ours.route(IPSEC_THERE)?;
        theirs.route(IPSEC_HERE)?;
        Some((p11, server, vec![ours, theirs]))
    } else {
        None
    };
    Ok(Side {
        flat_client: p1,
        vx_client: p5,
        flat_server: flat,
        vx_server: vx,
        wg,
        ipsec,
    })
}

pub fn run(args: &[String]) -> Result<Value, String> {
    let mut runs = 3usize;
    let mut secs = 3u32;
    let mut uplink = "tap".to_string();
    let mut wireguard = true;
    let mut ipsec = true;
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
            "--no-ipsec" => ipsec = false,
            other => return Err(format!("unknown option {other}")),
        }
    }
    sh(&["iperf3", "--version"]).map_err(|_| "iperf3 not installed")?;
    let wg_skipped = wireguard && !have_wireguard_go();
    let wireguard = wireguard && !wg_skipped;
    let ipsec_skipped = if ipsec { ipsec_missing() } else { None };
    if let Some(why) = ipsec_skipped {
        println!("pod-remote: IPsec cases skipped: {why}");
    }
    let ipsec = ipsec && ipsec_skipped.is_none();
    let mut lab = Lab::new("pod-remote")?;
    let ours = rvpp_side(&mut lab, &uplink, wireguard, ipsec)?;
    let theirs = kernel_side(&mut lab, wireguard, ipsec)?;
    for s in [&ours, &theirs] {
        let wg = s.wg.as_ref().map(|(c, ..)| (c, "198.18.6.2"));
        let esp = s.ipsec.as_ref().map(|(c, ..)| (c, "198.18.10.2"));
        for (c, dst) in [(&s.flat_client, "198.18.3.2"), (&s.vx_client, "198.18.4.2")]
            .into_iter()
            .chain(wg)
            .chain(esp)
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
        Ipsec,
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
    if ipsec {
        cases.push(("ipsec_tcp_1_stream_gbps", Path::Ipsec, vec![]));
        cases.push(("ipsec_tcp_4_streams_gbps", Path::Ipsec, vec!["-P", "4"]));
    }
    let mut res: Vec<(Vec<f64>, Vec<f64>)> = vec![(vec![], vec![]); cases.len()];
    for r in 0..runs {
        for (ci, (name, path, extra)) in cases.iter().enumerate() {
            // Alternate who goes first from run to run.
            let order = if r % 2 == 0 { [0, 1] } else { [1, 0] };
            for which in order {
                let s = if which == 0 { &ours } else { &theirs };
                let _paused = (which == 1).then(|| lab.rvpp_paused());
                let (c, srv, dst) = match (path, &s.wg, &s.ipsec) {
                    (Path::Flat, ..) => (&s.flat_client, &s.flat_server, "198.18.3.2"),
                    (Path::Vxlan, ..) => (&s.vx_client, &s.vx_server, "198.18.4.2"),
                    (Path::Wireguard, Some((c, srv, _)), _) => (c, srv, "198.18.6.2"),
                    (Path::Ipsec, _, Some((c, srv, _))) => (c, srv, "198.18.10.2"),
                    (Path::Wireguard | Path::Ipsec, ..) => {
                        return Err("no pods for that path on this side".into())
                    }
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
        "ipsec": if ipsec {
            "rvpp (IKEv2 responder, set up over vpp_papi as calico-vpp does: IPIP protected by ESP AES-GCM-256 in UDP) to strongSwan's charon with kernel-libipsec on the remote node; the kernel's node runs charon in rvpp's seat (no ESP in this kernel)".to_string()
        } else if let Some(why) = ipsec_skipped {
            format!("skipped: {why}")
        } else {
            "left out (--no-ipsec)".to_string()
        },
        "results": out,
        "rvpp_error_counters": drops,
    }))
}
