//! ESP through the whole graph: two rvpp graphs ("a" and "b") whose ipip0 tunnels protect each
//! other with AES-GCM SAs. A pod packet sealed by a's esp4-encrypt-tun is opened by b's
//! esp4-decrypt-tun and routed to b's pod; replayed, tampered, unknown-SPI, short and
//! badly padded packets are each dropped under their own counter; the buffer pools end where
//! they started. scapy's independent ESP opens what rvpp seals and seals (with ESN) what
//! rvpp opens.

mod common;
#[path = "../../test-support/skip.rs"]
mod skip;
use common::*;
use etherparse::{Ethernet2Header, IpNumber, Ipv4Header, PacketBuilder, SlicedPacket};
use rvpp_dataplane::buffer::BufferPool;
use rvpp_dataplane::feature::FeatureTables;
use rvpp_dataplane::forwarding::{Path, Prefix};
use rvpp_dataplane::ipsec::{self, CryptoAlg, IntegAlg, IpsecTable, Outer, Protect, Sa, SaConfig};
use rvpp_dataplane::nodes::esp::{self, decrypt_error, encrypt_error, DECRYPT4};
use rvpp_dataplane::nodes::ipip;
use rvpp_dataplane::runtime::Runtime;
use rvpp_dataplane::tables::Shared;
use std::net::IpAddr;
use std::sync::Arc;

const KEY_AB: [u8; 16] = [0x11; 16];
const KEY_BA: [u8; 16] = [0x22; 16];
const SPI_AB: u32 = 0x0000_0a0b;
const SPI_BA: u32 = 0x0000_0b0a;

struct Lab {
    pool: Arc<BufferPool>,
    rt: Runtime,
    up: Frames,
    pod: Frames,
    if_up: u32,
    if_pod: u32,
    tunnel: u32,
    table: Arc<ipsec::Table>,
}

fn a(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn sa(
    id: u32,
    spi: u32,
    key: &[u8],
    esn: bool,
    inbound: bool,
    natt: Option<(u16, u16)>,
) -> Arc<Sa> {
    Arc::new(
        Sa::new(SaConfig {
            id,
            spi,
            alg: if key.len() == 16 {
                CryptoAlg::AesGcm128
            } else {
                CryptoAlg::AesGcm256
            },
            key: key.to_vec(),
            integ: IntegAlg::None,
            integ_key: vec![],
            salt: 0x0102_0304,
            esn,
            anti_replay: true,
            inbound,
            udp_encap: natt,
            tunnel: None,
        })
        .unwrap(),
    )
}

/// Side a: uplink 198.18.0.1 (MAC0, peer PEER0), pod net 198.19.0.0/24 on pg1, remote pods
/// 198.19.202.0/24 via ipip0 to 198.18.0.2. Side b mirrors it (its uplink MAC is PEER0).
/// How a lab's SAs and outer headers differ from the plain case.
#[derive(Clone, Copy, Default)]
struct Opts {
    esn: bool,
    /// NAT-T: UDP between outer IP and ESP, with the (source, destination) ports a's
    /// outbound SA sends with; b's sends from 4500 to 4500 (a NAT in front of b would map it).
    natt: Option<(u16, u16)>,
    /// IPv6 outer headers (uplink fd00::1/64 and fd00::2).
    v6: bool,
}

fn lab(side_b: bool, esn: bool) -> Lab {
    lab_with(
        side_b,
        Opts {
            esn,
            ..Default::default()
        },
    )
}

fn lab_with(side_b: bool, o: Opts) -> Lab {
    let esn = o.esn;
    let pool = BufferPool::with_backing(4096, 2048, false).unwrap();
    let shared = Shared::new();
    let tables = FeatureTables::default();
    let (graph, mut fwd) = common::feature_graph(&shared, &tables);
    let (mac_up, peer_up) = if side_b { (PEER0, MAC0) } else { (MAC0, PEER0) };
    let (mut me, mut peer, pods, remote) = if side_b {
        (
            "198.18.0.2",
            "198.18.0.1",
            "198.19.202.1/24",
            "198.19.0.0/24",
        )
    } else {
        (
            "198.18.0.1",
            "198.18.0.2",
            "198.19.0.1/24",
            "198.19.202.0/24",
        )
    };
    let plen = if o.v6 {
        (me, peer) = if side_b {
            ("fd00::2", "fd00::1")
        } else {
            ("fd00::1", "fd00::2")
        };
        64
    } else {
        24
    };
    let if_up = fwd.interface_add("pg0", "pg", mac_up, true, 1500).unwrap();
    let if_pod = fwd.interface_add("pg1", "pg", MAC1, true, 1500).unwrap();
    let t0 = fwd
        .interface_add("ipip0", "ipip", [0; 6], false, 1480)
        .unwrap();
    fwd.address_add(if_up, Prefix::parse(&format!("{me}/{plen}")).unwrap())
        .unwrap();
    fwd.address_add(if_pod, Prefix::parse(pods).unwrap())
        .unwrap();
    for sw in [if_up, if_pod, t0] {
        fwd.set_admin_up(sw, true).unwrap();
    }
    fwd.set_unnumbered(t0, Some(if_up)).unwrap();
    // What the control service turns on for a protected ipip tunnel.
    for f in [ipip::ENCAP4, ipip::ENCAP6].iter().chain(esp::FEATURES) {
        fwd.feature_enable(t0, f.arc, f.node, true).unwrap();
    }
    fwd.neighbor_add(if_up, a(peer), peer_up, true).unwrap();
    let pod_host = if side_b { "198.19.202.7" } else { "198.19.0.2" };
    fwd.neighbor_add(if_pod, a(pod_host), PEER1, true).unwrap();
    fwd.route_add(0, Prefix::parse(remote).unwrap(), vec![Path::attached(t0)])
        .unwrap();
    let mut ts = ipip::Tunnels::default();
    ts.insert(ipip::Tunnel {
        sw_if_index: t0,
        instance: 0,
        src: a(me),
        dst: a(peer),
        encap_fib: 0,
        table_id: 0,
        flags: 0,
        dscp: 0,
    });
    tables.get::<ipip::Table>().publish(ts);
    let (out_spi, out_key, in_spi, in_key) = if side_b {
        (SPI_BA, KEY_BA, SPI_AB, KEY_AB)
    } else {
        (SPI_AB, KEY_AB, SPI_BA, KEY_BA)
    };
    let mut it = IpsecTable::default();
    let natt_out = if side_b {
        o.natt.map(|_| (4500, 4500))
    } else {
        o.natt
    };
    let out = sa(1, out_spi, &out_key, esn, false, natt_out);
    it.insert_sa(out.clone());
    it.insert_sa(sa(2, in_spi, &in_key, esn, true, o.natt));
    it.set_protect(Protect {
        sw_if_index: t0,
        out,
        sa_in: vec![2],
        outer: Outer {
            src: a(me),
            dst: a(peer),
            encap_fib: 0,
        },
    });
    let table = tables.get::<ipsec::Table>();
    table.publish(it);
    let mut rt = Runtime::new(graph, pool.local(), shared, 0, "test".into()).unwrap();
    let (up, pod) = (Frames::default(), Frames::default());
    rt.set_tx(if_up, Box::new(Capture(up.clone()))).unwrap();
    rt.set_tx(if_pod, Box::new(Capture(pod.clone()))).unwrap();
    drop(fwd);
    Lab {
        pool,
        rt,
        up,
        pod,
        if_up,
        if_pod,
        tunnel: t0,
        table,
    }
}

impl Lab {
    fn send(&mut self, sw: u32, frame: &[u8]) {
        let bufs = self.rt.buffers();
        let bi = bufs.alloc_from_bytes(frame).unwrap();
        bufs.meta(bi).rx_sw_if_index = sw;
        self.rt.inject("ethernet-input", &[bi]).unwrap();
    }
    fn error(&self, node: &str, code: u16) -> u64 {
        let i = self.rt.graph().error_index(node, code).unwrap();
        self.rt.stats().errors[i as usize].get()
    }
    fn take(f: &Frames) -> Vec<Vec<u8>> {
        std::mem::take(&mut *f.lock().unwrap())
    }
    fn no_leaks(mut self) {
        self.rt.buffers().flush();
        drop(self.rt);
        assert_eq!(self.pool.in_use(), 0, "buffers leaked");
        assert_eq!(self.pool.double_frees(), 0);
    }
    /// A pod packet from a's pod to b's, sealed by this (side a) lab: the uplink frame.
    fn seal(&mut self, payload: &[u8]) -> Vec<u8> {
        let f = pod_frame([198, 19, 0, 2], [198, 19, 202, 7], payload);
        let sw = self.if_pod;
        self.send(sw, &f);
        let mut out = Lab::take(&self.up);
        assert_eq!(out.len(), 1, "one ESP packet on the uplink");
        out.pop().unwrap()
    }
}

fn pod_frame(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(PEER1, MAC1)
        .ipv4(src, dst, 64)
        .udp(1000, 2000);
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

/// The uplink frame's outer IPv4 header and ESP bytes.
fn outer(frame: &[u8]) -> (Ipv4Header, Vec<u8>) {
    let (eth, rest) = Ethernet2Header::from_slice(frame).unwrap();
    assert_eq!((eth.destination, eth.source), (PEER0, MAC0));
    let (ip, esp) = Ipv4Header::from_slice(rest).unwrap();
    (ip, esp.to_vec())
}

#[test]
fn sealed_by_a_opened_by_b_and_routed_to_the_pod() {
    for esn in [false, true] {
        let (mut la, mut lb) = (lab(false, esn), lab(true, esn));
        for (i, len) in [0usize, 1, 2, 3, 17, 1000].into_iter().enumerate() {
            let payload: Vec<u8> = (0..len).map(|v| v as u8).collect();
            let frame = la.seal(&payload);
            let (ip, esp) = outer(&frame);
            assert_eq!(ip.protocol, IpNumber(50));
            assert_eq!(
                (ip.source, ip.destination),
                ([198, 18, 0, 1], [198, 18, 0, 2])
            );
            assert_eq!(ip.time_to_live, 64);
            assert_eq!(&esp[..4], &SPI_AB.to_be_bytes());
            assert_eq!(
                &esp[4..8],
                &(i as u32 + 1).to_be_bytes(),
                "sequence numbers 1, 2, ..."
            );
            assert_eq!((esp.len() - 16 - 16) % 4, 0);
            let inner_ip_len = 20 + 8 + len;
            assert!(
                !esp.windows(payload.len().max(4))
                    .any(|w| len >= 4 && w == &payload[..]),
                "payload not in clear"
            );
            let if_up = lb.if_up;
            lb.send(if_up, &frame);
            let got = Lab::take(&lb.pod);
            assert_eq!(got.len(), 1, "b delivers the inner packet");
            let p = SlicedPacket::from_ethernet(&got[0]).unwrap();
            let Some(etherparse::NetSlice::Ipv4(ip4)) = p.net else {
                panic!("not ipv4")
            };
            assert_eq!(ip4.header().source(), [198, 19, 0, 2]);
            assert_eq!(ip4.header().destination(), [198, 19, 202, 7]);
            assert_eq!(ip4.header().total_len() as usize, inner_ip_len);
            assert_eq!(ip4.header().ttl(), 62, "decremented once at each side");
            let Some(etherparse::TransportSlice::Udp(u)) = p.transport else {
                panic!("not udp")
            };
            assert_eq!(u.payload(), &payload[..]);
        }
        assert_eq!(la.error("esp4-encrypt-tun", encrypt_error::ENCRYPTED), 6);
        assert_eq!(lb.error(DECRYPT4, decrypt_error::DECRYPTED), 6);
        la.no_leaks();
        lb.no_leaks();
    }
}

#[test]
fn replayed_tampered_unknown_spi_short_and_bad_padding_each_counted() {
    let (mut la, mut lb) = (lab(false, false), lab(true, false));
    let up = lb.if_up;
    let f1 = la.seal(b"first packet");
    lb.send(up, &f1);
    lb.send(up, &f1);
    assert_eq!(Lab::take(&lb.pod).len(), 1, "the replay is dropped");
    assert_eq!(lb.error(DECRYPT4, decrypt_error::REPLAY), 1);

    let mut f2 = la.seal(b"second packet");
    let n = f2.len();
    f2[n - 20] ^= 0x40;
    lb.send(up, &f2);
    assert_eq!(lb.error(DECRYPT4, decrypt_error::INTEGRITY), 1);
    // A tampered packet does not mark its sequence number: the genuine one still passes.
    f2[n - 20] ^= 0x40;
    lb.send(up, &f2);
    assert_eq!(Lab::take(&lb.pod).len(), 1);

    let mut f3 = la.seal(b"third");
    f3[14 + 20] ^= 0xff; // SPI
    lb.send(up, &f3);
    assert_eq!(lb.error(DECRYPT4, decrypt_error::UNKNOWN_SPI), 1);

    // Truncated to 20 bytes of ESP, the outer header saying so: too short for header, IV,
    // trailer and ICV.
    let f4 = la.seal(b"fourth");
    let mut stub = f4[..14 + 20 + 20].to_vec();
    fix_outer(&mut stub);
    lb.send(up, &stub);
    assert_eq!(lb.error(DECRYPT4, decrypt_error::SHORT), 1);

    // Bad padding under a good ICV: sealed by a's SA directly with pad bytes 1, 3.
    let sa_ab = sa(9, SPI_AB, &KEY_AB, false, false, None);
    sa_ab.set_seq_outbound(100);
    let mut esp = vec![0u8; 16 + 20 + 4 + 16];
    let inner = Ipv4Header::new(0, 64, IpNumber::UDP, [198, 19, 0, 2], [198, 19, 202, 7]).unwrap();
    esp[16..36].copy_from_slice(&inner.to_bytes());
    esp[36..40].copy_from_slice(&[1, 3, 2, 4]);
    let seq = sa_ab.next_seq().unwrap();
    sa_ab.seal(seq, &mut esp).unwrap();
    let mut frame = f1[..14 + 20].to_vec();
    frame.extend_from_slice(&esp);
    fix_outer(&mut frame);
    lb.send(up, &frame);
    assert_eq!(lb.error(DECRYPT4, decrypt_error::BAD_PADDING), 1);
    assert!(Lab::take(&lb.pod).is_empty());
    la.no_leaks();
    lb.no_leaks();
}

#[test]
fn sequence_rollover_without_esn_is_refused_and_counted() {
    let mut la = lab(false, false);
    let out = la.table.load().protect(la.tunnel).unwrap().out.clone();
    out.set_seq_outbound(u32::MAX as u64);
    let f = pod_frame([198, 19, 0, 2], [198, 19, 202, 7], b"x");
    let sw = la.if_pod;
    la.send(sw, &f);
    assert!(Lab::take(&la.up).is_empty());
    assert_eq!(la.error("esp4-encrypt-tun", encrypt_error::SEQ_ROLLOVER), 1);
    la.no_leaks();
}

#[test]
fn rekey_make_before_break_old_and_new_inbound_both_accepted() {
    let (mut la, mut lb) = (lab(false, false), lab(true, false));
    let up = lb.if_up;
    let old = la.seal(b"under the old SA");
    // b accepts a new inbound SA beside the old one; then a switches its outbound to it.
    let new_key = [0x33u8; 16];
    let mut tb = (*lb.table.load()).clone();
    tb.insert_sa(sa(3, 0x0c0c, &new_key, false, true, None));
    let mut p = tb.protect(lb.tunnel).unwrap().clone();
    p.sa_in = vec![2, 3];
    tb.set_protect(p);
    lb.table.publish(tb);
    let mut ta = (*la.table.load()).clone();
    let new_out = sa(4, 0x0c0c, &new_key, false, false, None);
    ta.insert_sa(new_out.clone());
    let mut p = ta.protect(la.tunnel).unwrap().clone();
    p.out = new_out;
    ta.set_protect(p);
    la.table.publish(ta);
    let new = la.seal(b"under the new SA");
    assert_eq!(&outer(&new).1[..4], &0x0c0cu32.to_be_bytes());
    lb.send(up, &new);
    lb.send(up, &old);
    assert_eq!(
        Lab::take(&lb.pod).len(),
        2,
        "in-flight packets of the old SA still land"
    );
    la.no_leaks();
    lb.no_leaks();
}

/// Set the outer IPv4 total length and checksum of an Ethernet frame.
fn fix_outer(f: &mut [u8]) {
    let tl = (f.len() - 14) as u16;
    f[16..18].copy_from_slice(&tl.to_be_bytes());
    if let Some(mut h) = rvpp_dataplane::wire::Ip4HdrMut::new(&mut f[14..34]) {
        h.fill_checksum();
    }
}

const SCAPY: &str = r#"
import sys
from scapy.all import IP, UDP, Raw
from scapy.layers.ipsec import SecurityAssociation, ESP
mode, hexin = sys.argv[1], sys.argv[2]
key_ab = bytes([0x11]*16) + bytes.fromhex("01020304")
key_ba = bytes([0x22]*16) + bytes.fromhex("01020304")
if mode == "open":
    sa = SecurityAssociation(ESP, spi=0x0a0b, crypt_algo="AES-GCM", crypt_key=key_ab,
        auth_algo="NULL", tunnel_header=IP(src="198.18.0.1", dst="198.18.0.2"),
        esn_en=True, esn=0)
    inner = sa.decrypt(IP(bytes.fromhex(hexin)))
    print(bytes(inner[UDP].payload).hex())
else:
    sa = SecurityAssociation(ESP, spi=0x0b0a, crypt_algo="AES-GCM", crypt_key=key_ba,
        auth_algo="NULL", tunnel_header=IP(src="198.18.0.2", dst="198.18.0.1"),
        esn_en=True, esn=1)
    p = IP(src="198.19.202.7", dst="198.19.0.2")/UDP(sport=2000, dport=1000)/Raw(bytes.fromhex(hexin))
    print(bytes(sa.encrypt(p, seq_num=5)).hex())
"#;

fn scapy(mode: &str, hex_in: &str) -> Vec<u8> {
    let out = std::process::Command::new("python3")
        .args(["-c", SCAPY, mode, hex_in])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scapy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8(out.stdout).unwrap();
    let s = s.trim();
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|v| format!("{v:02x}")).collect()
}

#[test]
fn scapy_opens_what_rvpp_seals_and_rvpp_opens_what_scapy_seals_with_esn() {
    if !skip::need_python_module("scapy.layers.ipsec") {
        return;
    }
    // rvpp -> scapy (ESN SA, high half 0).
    let mut la = lab(false, true);
    let frame = la.seal(b"from rvpp to scapy");
    assert_eq!(scapy("open", &hex(&frame[14..])), b"from rvpp to scapy");
    la.no_leaks();
    // scapy -> rvpp: ESN high half 1, so rvpp must infer it from its window.
    let mut lb_a = lab(false, true);
    let inb = lb_a.table.load().sa(2).unwrap().clone();
    // Put the window at the start of epoch 1 so that low half 5 means (1 << 32) | 5.
    assert!(inb.replay.accept(1 << 32));
    let ip = scapy("seal", &hex(b"from scapy to rvpp"));
    let mut f = Vec::new();
    f.extend_from_slice(&MAC0);
    f.extend_from_slice(&PEER0);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&ip);
    let up = lb_a.if_up;
    lb_a.send(up, &f);
    let got = Lab::take(&lb_a.pod);
    assert_eq!(got.len(), 1, "rvpp opened scapy's packet");
    let p = SlicedPacket::from_ethernet(&got[0]).unwrap();
    let Some(etherparse::TransportSlice::Udp(u)) = p.transport else {
        panic!("not udp")
    };
    assert_eq!(u.payload(), b"from scapy to rvpp");
    assert_eq!(inb.replay.top(), (1 << 32) | 5);
    lb_a.no_leaks();
}

/// The packet the pod behind b received, as (source, destination, UDP payload).
fn delivered(l: &Lab) -> Vec<([u8; 4], [u8; 4], Vec<u8>)> {
    Lab::take(&l.pod)
        .iter()
        .map(|f| {
            let p = SlicedPacket::from_ethernet(f).unwrap();
            let Some(etherparse::NetSlice::Ipv4(ip4)) = p.net else {
                panic!("not ipv4")
            };
            let Some(etherparse::TransportSlice::Udp(u)) = p.transport else {
                panic!("not udp")
            };
            (
                ip4.header().source(),
                ip4.header().destination(),
                u.payload().to_vec(),
            )
        })
        .collect()
}

#[test]
fn nat_t_udp_4500_carries_esp_and_leaves_ike_alone() {
    let o = Opts {
        natt: Some((4500, 4500)),
        ..Default::default()
    };
    let (mut la, mut lb) = (lab_with(false, o), lab_with(true, o));
    let frame = la.seal(b"over nat-t");
    let (ip, rest) = outer(&frame);
    assert_eq!(ip.protocol, IpNumber::UDP);
    let (udp, esp) = etherparse::UdpHeader::from_slice(&rest).unwrap();
    assert_eq!((udp.source_port, udp.destination_port), (4500, 4500));
    assert_eq!(udp.length as usize, rest.len());
    assert_eq!(udp.checksum, 0, "IPv4: no UDP checksum");
    assert_eq!(&esp[..4], &SPI_AB.to_be_bytes());
    let up = lb.if_up;
    lb.send(up, &frame);
    let got = delivered(&lb);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].2, b"over nat-t");
    // The same datagram with IKE's zero marker where the SPI was: not ESP's.
    let mut ike = frame.clone();
    ike[14 + 20 + 8..14 + 20 + 12].copy_from_slice(&[0; 4]);
    lb.send(up, &ike);
    assert!(delivered(&lb).is_empty());
    for code in [
        decrypt_error::UNKNOWN_SPI,
        decrypt_error::SHORT,
        decrypt_error::INTEGRITY,
    ] {
        assert_eq!(lb.error(DECRYPT4, code), 0, "IKE went to ESP");
    }
    assert_eq!(lb.error(DECRYPT4, decrypt_error::DECRYPTED), 1);
    la.no_leaks();
    lb.no_leaks();
}

/// The UDP ports of a NAT-T frame sealed by a lab.
fn natt_ports(frame: &[u8]) -> (u16, u16) {
    let (ip, rest) = Ipv4Header::from_slice(&frame[14..]).unwrap();
    assert_eq!(ip.protocol, IpNumber::UDP);
    let (udp, _) = etherparse::UdpHeader::from_slice(rest).unwrap();
    (udp.source_port, udp.destination_port)
}

#[test]
fn nat_t_to_a_mapped_peer_port_follows_the_port_ike_learns() {
    // A NAT in front of b maps b's 4500 to 40001 outside: a sends there, b's packets come
    // from there.
    let o = Opts {
        natt: Some((4500, 40001)),
        ..Default::default()
    };
    let (mut la, mut lb) = (lab_with(false, o), lab_with(true, o));
    // The NAT's rewrites: toward b the destination goes back to 4500, from b the source
    // becomes the mapped port.
    let to_b = |f: &mut [u8]| f[14 + 22..14 + 24].copy_from_slice(&4500u16.to_be_bytes());
    let from_b = |f: &mut [u8]| f[14 + 20..14 + 22].copy_from_slice(&40001u16.to_be_bytes());
    let mut frame = la.seal(b"to the mapped port");
    assert_eq!(natt_ports(&frame), (4500, 40001));
    to_b(&mut frame);
    let up = lb.if_up;
    lb.send(up, &frame);
    assert_eq!(delivered(&lb)[0].2, b"to the mapped port");
    // From b: sealed 4500 -> 4500, then from 40001 after the NAT; a opens it whatever the
    // source port.
    let f = pod_frame([198, 19, 202, 7], [198, 19, 0, 2], b"from the mapped port");
    let pod = lb.if_pod;
    lb.send(pod, &f);
    let mut back = Lab::take(&lb.up).pop().expect("b sealed it");
    assert_eq!(natt_ports(&back), (4500, 4500));
    from_b(&mut back);
    let up_a = la.if_up;
    la.send(up_a, &back);
    let got = delivered(&la);
    assert_eq!(got.len(), 1, "a opened it");
    assert_eq!(got[0].2, b"from the mapped port");
    // The NAT remapped b to 40077 and IKE learned it: the same SA (its sequence numbers go
    // on) sends there from now on.
    let out = la.table.load().sa(1).unwrap().clone();
    assert!(out.set_udp_dst_port(40077));
    assert_eq!(out.udp_encap(), Some((4500, 40077)));
    let mut frame = la.seal(b"after the remap");
    assert_eq!(natt_ports(&frame), (4500, 40077));
    assert_eq!(
        outer(&frame).1[8 + 4..8 + 8],
        2u32.to_be_bytes(),
        "sequence number 2"
    );
    to_b(&mut frame);
    lb.send(up, &frame);
    assert_eq!(delivered(&lb)[0].2, b"after the remap");
    // An SA without NAT-T has no port to move.
    let plain = sa(9, 0x99, &KEY_AB, false, false, None);
    assert!(!plain.set_udp_dst_port(40077));
    assert_eq!(plain.udp_encap(), None);
    la.no_leaks();
    lb.no_leaks();
}

#[test]
fn ipv6_outer_headers_sealed_and_opened_by_esp6_decrypt_tun() {
    let o = Opts {
        v6: true,
        esn: true,
        ..Default::default()
    };
    let (mut la, mut lb) = (lab_with(false, o), lab_with(true, o));
    let frame = la.seal(b"over ipv6");
    let (eth, rest) = Ethernet2Header::from_slice(&frame).unwrap();
    assert_eq!(eth.ether_type, etherparse::EtherType::IPV6);
    let (ip6, esp) = etherparse::Ipv6Header::from_slice(rest).unwrap();
    assert_eq!(ip6.next_header, IpNumber(50));
    assert_eq!(
        ip6.source,
        "fd00::1".parse::<std::net::Ipv6Addr>().unwrap().octets()
    );
    assert_eq!(ip6.payload_length as usize, esp.len());
    let up = lb.if_up;
    lb.send(up, &frame);
    let got = delivered(&lb);
    assert_eq!(got.len(), 1, "b opened it");
    assert_eq!(got[0].2, b"over ipv6");
    assert_eq!(lb.error("esp6-decrypt-tun", decrypt_error::DECRYPTED), 1);
    la.no_leaks();
    lb.no_leaks();
}

/// A pod's TCP super-frame into the protected tunnel is cut before it is sealed (gso-ip4), so
/// b opens one ESP packet per segment and its pod gets every segment with right checksums; a
/// packet that left its checksum to the device is completed before it is sealed.
#[test]
fn a_pods_super_frame_is_segmented_then_sealed() {
    use common::tunnel_offload::*;
    let (mut la, mut lb) = (lab(false, false), lab(true, false));
    for (n, gso) in [(4000, Some(1300)), (700, None)] {
        let f = pod_tcp(PEER1, MAC1, [198, 19, 0, 2], [198, 19, 202, 7], n);
        let pod = la.if_pod;
        inject_offload(&mut la.rt, pod, &f, gso);
        let sealed = Lab::take(&la.up);
        assert_eq!(sealed.len(), n.div_ceil(1300), "one ESP packet per segment");
        for e in &sealed {
            let up = lb.if_up;
            lb.send(up, e);
        }
        let got = Lab::take(&lb.pod);
        check_segments(&got, false, Encap::Plain, 1300, n);
    }
    assert_eq!(la.error("esp4-encrypt-tun", encrypt_error::GSO), 0);
    la.no_leaks();
    lb.no_leaks();
}

/// Packets around a super-frame in one vector keep their places: the segments leave between
/// the packet before and the one after (a flow's order holds through gso-ip4).
#[test]
fn segments_keep_their_place_in_the_vector() {
    use common::tunnel_offload::*;
    let (mut la, mut lb) = (lab(false, false), lab(true, false));
    let before = pod_frame([198, 19, 0, 2], [198, 19, 202, 7], &[1; 10]);
    let sf = pod_tcp(PEER1, MAC1, [198, 19, 0, 2], [198, 19, 202, 7], 3000);
    let after = pod_frame([198, 19, 0, 2], [198, 19, 202, 7], &[2; 20]);
    let pod = la.if_pod;
    let bufs = la.rt.buffers();
    let idx: Vec<u32> = [&before, &sf, &after]
        .iter()
        .map(|f| bufs.alloc_from_bytes(f).unwrap())
        .collect();
    for &bi in &idx {
        bufs.meta(bi).rx_sw_if_index = pod;
    }
    let m = bufs.meta(idx[1]);
    m.flags |= rvpp_dataplane::buffer::flags::GSO | rvpp_dataplane::buffer::flags::OFFLOAD_L4_CKSUM;
    m.gso_size = 1300;
    la.rt.inject("ethernet-input", &idx).unwrap();
    for e in Lab::take(&la.up) {
        let up = lb.if_up;
        lb.send(up, &e);
    }
    let got = Lab::take(&lb.pod);
    let protos: Vec<u8> = got.iter().map(|f| f[14 + 9]).collect();
    assert_eq!(protos, [17, 6, 6, 6, 17], "udp, the 3 segments, udp");
    check_segments(&got[1..4], false, Encap::Plain, 1300, 3000);
    assert_eq!(got[0].len(), 14 + 28 + 10);
    assert_eq!(got[4].len(), 14 + 28 + 20);
    la.no_leaks();
    lb.no_leaks();
}
