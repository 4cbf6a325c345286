//! Offloads through tunnels, checked independently: a pod's TCP super-frame (or a packet whose
//! checksum the pod left to the device) is sent into a tunnel, and each frame that leaves the
//! uplink is parsed and its every length and checksum verified with etherparse's own
//! checksum code, the inner payload put back together and compared.

use etherparse::{Ipv4Header, Ipv6Header, TcpHeader, UdpHeader};
use rvpp_dataplane::buffer::flags;
use rvpp_dataplane::runtime::Runtime;

/// The pod's TCP sequence number at the start of the super-frame.
pub const SEQ0: u32 = 7_000_000;
const ID0: u16 = 0xfff0;

/// A TCP packet from the pod (IPv4 with DF, ACK|PSH|FIN on, the TCP checksum wrong on purpose:
/// the device is to compute it), as it arrives on a pod-side Ethernet interface.
pub fn pod_tcp(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    n: usize,
) -> Vec<u8> {
    let payload = payload(n);
    let mut tcp = TcpHeader::new(40000, 443, SEQ0, 501);
    tcp.ack = true;
    tcp.psh = true;
    tcp.fin = true;
    tcp.acknowledgment_number = 99;
    tcp.checksum = 0x1234;
    let mut ip = Ipv4Header::new(
        (tcp.header_len() + n) as u16,
        64,
        etherparse::IpNumber::TCP,
        src,
        dst,
    )
    .unwrap();
    ip.identification = ID0;
    ip.dont_fragment = true;
    ip.header_checksum = ip.calc_header_checksum();
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    ip.write(&mut f).unwrap();
    tcp.write(&mut f).unwrap();
    f.extend_from_slice(&payload);
    f
}

/// The pod's payload bytes: a pattern whose shifts show up.
pub fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

/// Inject `frame` on `sw` with the tap's offload marks: GSO with `gso_size` when given, and
/// the L4 checksum left to do.
pub fn inject_offload(rt: &mut Runtime, sw: u32, frame: &[u8], gso_size: Option<u16>) {
    let bufs = rt.buffers();
    let bi = bufs.alloc_from_bytes(frame).unwrap();
    let m = bufs.meta(bi);
    m.rx_sw_if_index = sw;
    m.flags |= flags::OFFLOAD_L4_CKSUM;
    if let Some(g) = gso_size {
        m.flags |= flags::GSO;
        m.gso_size = g;
    }
    rt.inject("ethernet-input", &[bi]).unwrap();
}

/// What lies between the outer IP header and the inner one.
#[derive(Clone, Copy, Debug)]
pub enum Encap {
    /// UDP to 4789 and VXLAN with this VNI, then an inner Ethernet header when `l2`.
    Vxlan { vni: u32, l2: bool },
    /// Nothing: IPIP (IPv4 in IPv4 or IPv6).
    Ipip,
    /// An SRv6 encap: this many bytes of SRH (0: none) after the outer IPv6 header.
    Srh(usize),
    /// No outer header: the segments as delivered after decap (or decryption).
    Plain,
}

/// Check frames (Ethernet first) as the segments of [`pod_tcp`]'s `n`-byte payload cut at
/// `mss`; `v6` is the outer family. Returns the segment count.
pub fn check_segments(frames: &[Vec<u8>], v6: bool, encap: Encap, mss: usize, n: usize) -> usize {
    assert!(!frames.is_empty(), "nothing left");
    let mut data = Vec::new();
    for (k, f) in frames.iter().enumerate() {
        let what = format!("segment {k} of {}", frames.len());
        let inner_ip = match encap {
            Encap::Plain => &f[14..],
            _ => outer_checked(f, v6, encap, k, &what),
        };
        let (h, rest) = Ipv4Header::from_slice(inner_ip).unwrap();
        assert_eq!(
            h.total_len as usize,
            inner_ip.len(),
            "{what}: inner ipv4 length"
        );
        assert_eq!(
            h.header_checksum,
            h.calc_header_checksum(),
            "{what}: inner ipv4 sum"
        );
        assert_eq!(
            h.identification,
            ID0.wrapping_add(k as u16),
            "{what}: inner id"
        );
        let (t, body) = TcpHeader::from_slice(rest).unwrap();
        let want = t.calc_checksum_ipv4(&h, body).unwrap();
        assert_eq!(t.checksum, want, "{what}: inner tcp checksum");
        assert_eq!(t.sequence_number, SEQ0 + data.len() as u32, "{what}: seq");
        let last = k + 1 == frames.len();
        assert_eq!(
            (t.fin, t.psh),
            (last, last),
            "{what}: FIN/PSH on the last only"
        );
        assert!(
            body.len() <= mss,
            "{what}: {} bytes over mss {mss}",
            body.len()
        );
        data.extend_from_slice(body);
    }
    assert_eq!(data, payload(n), "the payload, put back together");
    assert_eq!(frames.len(), n.div_ceil(mss));
    frames.len()
}

/// Check segment `k`'s outer headers (`f` starts at Ethernet); the inner IP packet.
fn outer_checked<'f>(f: &'f [u8], v6: bool, encap: Encap, k: usize, what: &str) -> &'f [u8] {
    let ethertype: &[u8] = if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] };
    assert_eq!(&f[12..14], ethertype, "{what}");
    let ip = &f[14..];
    // The outer header: lengths and (IPv4) header checksum and ID.
    let (outer_src, outer_dst, after) = if v6 {
        let (h, rest) = Ipv6Header::from_slice(ip).unwrap();
        assert_eq!(
            h.payload_length as usize,
            rest.len(),
            "{what}: outer ipv6 length"
        );
        (h.source.to_vec(), h.destination.to_vec(), rest)
    } else {
        let (h, rest) = Ipv4Header::from_slice(ip).unwrap();
        assert_eq!(h.total_len as usize, ip.len(), "{what}: outer ipv4 length");
        assert_eq!(
            h.header_checksum,
            h.calc_header_checksum(),
            "{what}: outer ipv4 sum"
        );
        assert_eq!(h.identification, k as u16, "{what}: outer ipv4 id");
        (h.source.to_vec(), h.destination.to_vec(), rest)
    };
    match encap {
        Encap::Vxlan { vni, l2 } => {
            let (u, rest) = UdpHeader::from_slice(after).unwrap();
            assert_eq!(u.destination_port, 4789, "{what}");
            assert_eq!(u.length as usize, after.len(), "{what}: udp length");
            if v6 {
                let h = Ipv6Header {
                    source: outer_src.try_into().unwrap(),
                    destination: outer_dst.try_into().unwrap(),
                    ..Default::default()
                };
                let want = u.calc_checksum_ipv6(&h, rest).unwrap();
                assert_eq!(u.checksum, want, "{what}: outer udp checksum over ipv6");
            } else {
                assert_eq!(
                    u.checksum, 0,
                    "{what}: ipv4 vxlan sends a zero udp checksum"
                );
            }
            assert_eq!(rest[0], 0x08, "{what}: vxlan flags");
            assert_eq!(u32::from_be_bytes(rest[4..8].try_into().unwrap()) >> 8, vni);
            let inner = &rest[8..];
            if l2 {
                assert_eq!(&inner[12..14], &[0x08, 0x00], "{what}: inner ethertype");
                &inner[14..]
            } else {
                inner
            }
        }
        Encap::Srh(n) => &after[n..],
        Encap::Ipip | Encap::Plain => after,
    }
}
