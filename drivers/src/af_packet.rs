//! AF_PACKET host interfaces (VPP's `af_packet_create_v3`): mmap'd rings on packet sockets.
//!
//! * rx: one socket per queue with a `TPACKET_V3` (block-based) ring; several queues join one
//!   `PACKET_FANOUT` hash group so each flow lands on one queue. Frames are copied into pool
//!   buffers; a block goes back to the kernel once all its packets are copied.
//! * tx: one socket per queue with a `TPACKET_V2` ring (V3 tx rings are frame-based anyway);
//!   packets are copied into frames and one `send()` per flush kicks the kernel. The tx socket
//!   is bound with protocol 0, so it never receives. With the vnet header, the datagrams
//!   gso-segment cut from one VXLAN super-frame share one frame as a UDP GSO packet
//!   (`UdpRun`).
//! * The kernel's drops before the rx ring (`PACKET_STATISTICS` `tp_drops`) are read when a
//!   block says it is losing, and when idle, into [`QueueStats::rx_kernel_drops`].
//! * `PACKET_VNET_HDR` carries checksum/GSO offloads like a tap's vnet header,
//!   `PACKET_QDISC_BYPASS` skips the qdisc, `PACKET_IGNORE_OUTGOING` keeps our own (and the
//!   host's) transmissions out of the rx ring.
//!
//! Ring layout facts follow the kernel's packet_mmap documentation and `linux/if_packet.h`.
//! Every offset and length read from a ring is checked against the ring before a slice is
//! formed, so a confused kernel or a corrupted block cannot make us read out of bounds.

use crate::netdev::{ctl_socket, get_mac, get_mtu, if_index, QueueStats, Queues};
use crate::netns;
use crate::vnet_hdr::{
    VnetHdr, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_ECN, VIRTIO_NET_HDR_GSO_UDP_L4,
    VNET_HDR_LEN,
};
use rvpp_dataplane::buffer::{flags, Buffers};
use rvpp_dataplane::device::{RxQueue, TxQueue};
use rvpp_dataplane::graph::rx_next;
use rvpp_dataplane::graph::DeviceNodes;
use rvpp_dataplane::tables::FwdTable;
use rvpp_dataplane::wire::{fold, ip4_pseudo_sum, ip6_pseudo_sum, ones_sum};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};

/// The graph nodes of af_packet interfaces.
pub const INPUT_NODE: &str = "af-packet-input";
pub const TX_NODE: &str = "af-packet-tx";
pub const NODES: DeviceNodes = DeviceNodes::new(INPUT_NODE, TX_NODE);

// linux/if_packet.h
const PACKET_ADD_MEMBERSHIP: i32 = 1;
const PACKET_RX_RING: i32 = 5;
const PACKET_STATISTICS: i32 = 6;
const PACKET_VERSION: i32 = 10;
const PACKET_TX_RING: i32 = 13;
const PACKET_LOSS: i32 = 14;
const PACKET_VNET_HDR: i32 = 15;
const PACKET_FANOUT: i32 = 18;
const PACKET_QDISC_BYPASS: i32 = 20;
const PACKET_IGNORE_OUTGOING: i32 = 23;
const PACKET_MR_PROMISC: u16 = 1;
const TPACKET_V2: i32 = 1;
const TPACKET_V3: i32 = 2;
const PACKET_FANOUT_HASH: u32 = 0;
const PACKET_FANOUT_FLAG_UNIQUEID: u32 = 0x2000;
const PACKET_FANOUT_FLAG_DEFRAG: u32 = 0x8000;
const PACKET_OUTGOING: u8 = 4;

const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
/// On a V3 block: the kernel dropped frames since we last read `PACKET_STATISTICS`.
const TP_STATUS_LOSING: u32 = 1 << 2;
const TP_STATUS_AVAILABLE: u32 = 0;
const TP_STATUS_SEND_REQUEST: u32 = 1;
const TP_STATUS_WRONG_FORMAT: u32 = 4;

/// `struct tpacket_block_desc` fields (version, offset_to_priv, then tpacket_hdr_v1).
const BLK_STATUS: usize = 8;
const BLK_NUM_PKTS: usize = 12;
const BLK_FIRST_PKT: usize = 16;
/// `seq_num`: the kernel numbers blocks as it opens them.
const BLK_SEQ: usize = 24;
/// Size of the block descriptor the kernel writes before the first packet.
const BLK_HDR_LEN: usize = 48;
/// `struct tpacket3_hdr` fields.
const T3_NEXT: usize = 0;
const T3_SNAPLEN: usize = 12;
const T3_LEN: usize = 16;
const T3_STATUS: usize = 20;
const T3_MAC: usize = 24;
const T3_NET: usize = 26;
/// The packet's L4 checksum is partial (sent by this host with checksum offload, e.g. from
/// the other end of a veth): the field holds the pseudo-header sum only.
const TP_STATUS_CSUMNOTREADY: u32 = 1 << 3;
/// TPACKET_ALIGN(sizeof(tpacket3_hdr)): where the kernel puts the `sockaddr_ll`.
const T3_SLL: usize = 48;
/// Offset of `sll_pkttype` in `sockaddr_ll`.
const SLL_PKTTYPE: usize = 10;
/// `struct tpacket2_hdr` fields.
const T2_STATUS: usize = 0;
const T2_LEN: usize = 4;
const T2_SNAPLEN: usize = 8;
/// Where tx data starts in a V2 frame: TPACKET2_HDRLEN - sizeof(sockaddr_ll) = 52 - 20.
const T2_DATA: usize = 32;

const PAGE: usize = 4096;

fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

/// What `af_packet_create_v3` asks for, in driver terms.
#[derive(Clone, Debug)]
pub struct AfPacketConfig {
    /// The Linux interface to attach to.
    pub host_if_name: String,
    /// Namespace the interface lives in (`pid:N`, path or name); None = ours.
    pub netns: Option<String>,
    /// rx sockets in one fanout group, and as many tx sockets.
    pub queues: u16,
    /// rx ring: bytes per block (page multiple, must hold the largest frame: a GRO'd
    /// super-frame reaches 64 KiB even without `vnet_hdr`).
    pub rx_block_size: u32,
    /// The kernel closes a block after `rx_block_timeout_ms` however few frames it holds, so at
    /// a trickle each block carries a millisecond of traffic: the block count is how many
    /// milliseconds the reader may stall (a live restart's hand-over, a busy worker) before
    /// the kernel drops.
    pub rx_block_count: u32,
    /// tx ring: frames; their size follows the MTU (or 64 KiB with `vnet_hdr`).
    pub tx_frame_count: u32,
    /// 0 = derive from the MTU.
    pub tx_frame_size: u32,
    /// `PACKET_QDISC_BYPASS` (the AfPacketQdiscBypass annotation).
    pub qdisc_bypass: bool,
    /// `PACKET_VNET_HDR`: checksum and GSO offloads (AF_PACKET_API_FLAG_CKSUM_GSO).
    pub vnet_hdr: bool,
    /// Put the interface in promiscuous mode for as long as the sockets live.
    pub promisc: bool,
    /// How long (ms) the kernel waits before handing over a partly filled rx block.
    pub rx_block_timeout_ms: u32,
}

impl Default for AfPacketConfig {
    fn default() -> Self {
        Self {
            host_if_name: String::new(),
            netns: None,
            queues: 1,
            rx_block_size: 128 << 10,
            rx_block_count: 64,
            tx_frame_count: 1024,
            tx_frame_size: 0,
            qdisc_bypass: false,
            vnet_hdr: false,
            promisc: false,
            rx_block_timeout_ms: 1,
        }
    }
}

/// Lets a live restart stop an interface's rx queues between two rx calls, without waiting
/// for the workers to stop: the new owner of the rings must not read them while an old
/// queue still does.
#[derive(Debug, Default)]
pub struct RxGate {
    closed: std::sync::atomic::AtomicBool,
    /// rx calls under way.
    busy: AtomicU32,
}

impl RxGate {
    /// No rx call reads the rings from now on; false if one was still under way after `wait`.
    pub fn close(&self, wait: std::time::Duration) -> bool {
        self.closed.store(true, Ordering::SeqCst);
        let t = std::time::Instant::now();
        while self.busy.load(Ordering::SeqCst) != 0 {
            if t.elapsed() > wait {
                return false;
            }
            std::thread::yield_now();
        }
        true
    }

    /// Read again (a take-over that failed).
    pub fn open(&self) {
        self.closed.store(false, Ordering::SeqCst);
    }
}

/// What was opened.
#[derive(Clone, Debug)]
pub struct AfPacketInfo {
    pub host_if_name: String,
    pub netns: Option<String>,
    pub ifindex: u32,
    /// The host interface's MAC (VPP gives its interface the same one).
    pub mac: [u8; 6],
    pub mtu: u32,
    pub queues: u16,
    pub vnet_hdr: bool,
    /// Fanout group id (0 with a single queue).
    pub fanout_id: u16,
    pub tx_frame_size: u32,
    /// Per-queue counters, index = queue id (rx and tx of queue i share one).
    pub stats: Vec<Arc<QueueStats>>,
    /// What it was opened with (a live restart opens the same rings again).
    pub cfg: AfPacketConfig,
    /// The rx sockets, for a live restart to hand over; alive while their queues are.
    pub rx_fds: Vec<Weak<OwnedFd>>,
    /// Shared by its rx queues.
    pub rx_gate: Arc<RxGate>,
}

impl AfPacketInfo {
    /// The rx sockets, by queue; None once a queue is gone.
    pub fn rx_queue_fds(&self) -> Option<Vec<Arc<OwnedFd>>> {
        self.rx_fds.iter().map(Weak::upgrade).collect()
    }
}

/// An mmap'd packet ring, unmapped on drop.
struct Ring {
    base: *mut u8,
    len: usize,
}

// SAFETY: the mapping is owned by exactly one queue, which is owned by one worker at a time;
// the only other party touching it is the kernel, synchronised through the status words.
unsafe impl Send for Ring {}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: base/len come from a successful mmap and nothing uses them after drop.
        unsafe {
            libc::munmap(self.base.cast(), self.len);
        }
    }
}

impl Ring {
    fn map(fd: RawFd, len: usize) -> io::Result<Self> {
        // SAFETY: mapping the ring the kernel just set up on fd, with its exact size; checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            base: p.cast(),
            len,
        })
    }

    /// The status word at `off`, shared with the kernel.
    #[inline(always)]
    fn status(&self, off: usize) -> Option<&AtomicU32> {
        if off & 3 != 0 || off + 4 > self.len {
            return None;
        }
        // SAFETY: in bounds and 4-aligned (checked; base is page-aligned); the kernel writes
        // this word concurrently, so it is only accessed atomically.
        Some(unsafe { &*self.base.add(off).cast::<AtomicU32>() })
    }

    #[inline(always)]
    fn u32_at(&self, off: usize) -> Option<u32> {
        let b = self.bytes(off, 4)?;
        Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The u64 at `off` (8-aligned), read once: the kernel may be writing it (a block header
    /// it owns).
    fn seq_at(&self, off: usize) -> Option<u64> {
        if off & 7 != 0 || off.checked_add(8)? > self.len {
            return None;
        }
        // SAFETY: in bounds and 8-aligned (checked; base is page-aligned); a volatile read of
        // plain data, whatever value it sees is only used to order blocks.
        Some(unsafe { std::ptr::read_volatile(self.base.add(off).cast::<u64>()) })
    }

    /// Write `v` at `off` inside a block we own (status USER: the kernel does not touch it).
    fn set_u32(&mut self, off: usize, v: u32) {
        if let Some(b) = self.bytes_mut(off, 4) {
            b.copy_from_slice(&v.to_ne_bytes());
        }
    }

    #[inline(always)]
    fn u16_at(&self, off: usize) -> Option<u16> {
        let b = self.bytes(off, 2)?;
        Some(u16::from_ne_bytes([b[0], b[1]]))
    }

    /// `len` bytes at `off`, if they lie inside the ring.
    #[inline(always)]
    fn bytes(&self, off: usize, len: usize) -> Option<&[u8]> {
        if off.checked_add(len)? > self.len {
            return None;
        }
        // SAFETY: the range is inside the mapping (checked). Only called on regions the
        // kernel has handed to us (status USER / AVAILABLE), so it is not writing them.
        Some(unsafe { std::slice::from_raw_parts(self.base.add(off), len) })
    }

    #[inline(always)]
    fn bytes_mut(&mut self, off: usize, len: usize) -> Option<&mut [u8]> {
        if off.checked_add(len)? > self.len {
            return None;
        }
        // SAFETY: inside the mapping (checked); only called on frames in AVAILABLE state,
        // which the kernel does not touch until we set SEND_REQUEST.
        Some(unsafe { std::slice::from_raw_parts_mut(self.base.add(off), len) })
    }
}

fn packet_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); protocol 0 means no packets until bind. Result checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh fd, ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn setsockopt<T>(fd: RawFd, opt: i32, val: &T, what: &str) -> io::Result<()> {
    // SAFETY: val points at a T that lives across the call; the length is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            opt,
            (val as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("af_packet {what}: {e}")));
    }
    Ok(())
}

fn bind_ll(fd: RawFd, ifindex: u32, proto: u16) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain data; zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto.to_be();
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: binding to a properly sized sockaddr_ll.
    let rc = unsafe {
        libc::bind(
            fd,
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("af_packet bind: {e}")));
    }
    Ok(())
}

/// Take (and clear) a pending socket error, if any, without blocking.
fn take_socket_error(fd: RawFd) -> Option<io::Error> {
    let mut p = libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let rc = unsafe { libc::poll(&mut p, 1, 0) };
    if rc <= 0 || p.revents & (libc::POLLERR | libc::POLLNVAL) == 0 {
        return None;
    }
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: SO_ERROR writes an int into err; len holds its size.
    unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    Some(if err != 0 {
        io::Error::from_raw_os_error(err)
    } else {
        io::Error::other("socket error")
    })
}

/// Entry points for AF_PACKET interfaces.
pub struct AfPacket;

impl AfPacket {
    /// Open `cfg.queues` rx/tx queue pairs on the host interface.
    pub fn create(cfg: &AfPacketConfig, sw_if_index: u32) -> io::Result<Queues<AfPacketInfo>> {
        Self::create_queues(cfg, sw_if_index).map(crate::netdev::boxed)
    }

    /// As [`AfPacket::create`], with the concrete queue types.
    pub fn create_queues(
        cfg: &AfPacketConfig,
        sw_if_index: u32,
    ) -> io::Result<(Vec<AfPacketRxQueue>, Vec<AfPacketTxQueue>, AfPacketInfo)> {
        let bad = |m: String| Err(io::Error::new(io::ErrorKind::InvalidInput, m));
        if cfg.queues == 0 || cfg.queues > 64 {
            return bad(format!("af_packet: bad queue count {}", cfg.queues));
        }
        let bs = cfg.rx_block_size as usize;
        if bs < 2 * PAGE || bs & (PAGE - 1) != 0 || cfg.rx_block_count < 2 {
            return bad(format!(
                "af_packet: bad rx ring {} x {}",
                cfg.rx_block_count, cfg.rx_block_size
            ));
        }
        if cfg.tx_frame_count == 0 {
            return bad("af_packet: tx_frame_count is 0".into());
        }
        netns::run(cfg.netns.as_deref(), || open_here(cfg, sw_if_index))?
    }
}

fn open_here(
    cfg: &AfPacketConfig,
    sw_if_index: u32,
) -> io::Result<(Vec<AfPacketRxQueue>, Vec<AfPacketTxQueue>, AfPacketInfo)> {
    let link = Link::of(cfg)?;
    let ifindex = link.ifindex;
    let stats = link.queue_stats(cfg);
    let mut rx = Vec::new();
    let gate = Arc::new(RxGate::default());
    let mut fanout_id = 0u16;
    for (q, st) in stats.iter().enumerate() {
        let (sock, ring) = open_rx(cfg, ifindex)?;
        if cfg.queues > 1 {
            fanout_id = join_fanout(sock.as_raw_fd(), q == 0, fanout_id)?;
        }
        if q == 0 && cfg.promisc {
            #[repr(C)]
            struct PacketMreq {
                ifindex: i32,
                typ: u16,
                alen: u16,
                addr: [u8; 8],
            }
            let m = PacketMreq {
                ifindex: ifindex as i32,
                typ: PACKET_MR_PROMISC,
                alen: 0,
                addr: [0; 8],
            };
            setsockopt(sock.as_raw_fd(), PACKET_ADD_MEMBERSHIP, &m, "promisc")?;
        }
        rx.push(AfPacketRxQueue {
            fd: Arc::new(sock),
            ring,
            block_size: cfg.rx_block_size as usize,
            block_nr: cfg.rx_block_count as usize,
            blk: 0,
            resume: false,
            in_block: false,
            pkts_left: 0,
            off: 0,
            vnet: cfg.vnet_hdr,
            sw_if_index,
            queue_id: q as u16,
            stats: st.clone(),
            idle: 0,
            error_logged: false,
            gate: gate.clone(),
        });
    }
    link.finish(cfg, rx, stats, fanout_id, gate)
}

/// What both opening and adopting read of the host interface.
struct Link {
    ifindex: u32,
    mac: [u8; 6],
    mtu: u32,
    tx_frame_size: usize,
}

impl Link {
    fn of(cfg: &AfPacketConfig) -> io::Result<Self> {
        let ctl = ctl_socket()?;
        let name = &cfg.host_if_name;
        let ifindex = if_index(ctl.as_raw_fd(), name)
            .map_err(|e| io::Error::new(e.kind(), format!("af_packet: {name}: {e}")))?;
        let mac = get_mac(ctl.as_raw_fd(), name)?;
        let mtu = get_mtu(ctl.as_raw_fd(), name)?;
        let tx_frame_size = tx_frame_size(cfg, mtu)?;
        Ok(Self {
            ifindex,
            mac,
            mtu,
            tx_frame_size,
        })
    }

    fn queue_stats(&self, cfg: &AfPacketConfig) -> Vec<Arc<QueueStats>> {
        (0..cfg.queues)
            .map(|_| Arc::new(QueueStats::default()))
            .collect()
    }

    /// Open the tx queues (new sockets either way) beside `rx`, and describe the whole.
    fn finish(
        self,
        cfg: &AfPacketConfig,
        rx: Vec<AfPacketRxQueue>,
        stats: Vec<Arc<QueueStats>>,
        fanout_id: u16,
        gate: Arc<RxGate>,
    ) -> io::Result<(Vec<AfPacketRxQueue>, Vec<AfPacketTxQueue>, AfPacketInfo)> {
        let mut tx = Vec::new();
        for st in stats.iter() {
            tx.push(open_tx(cfg, self.ifindex, self.tx_frame_size, st.clone())?);
        }
        let rx_fds = rx.iter().map(|q| Arc::downgrade(&q.fd)).collect();
        Ok((
            rx,
            tx,
            AfPacketInfo {
                host_if_name: cfg.host_if_name.clone(),
                netns: cfg.netns.clone(),
                ifindex: self.ifindex,
                mac: self.mac,
                mtu: self.mtu,
                queues: cfg.queues,
                vnet_hdr: cfg.vnet_hdr,
                fanout_id,
                tx_frame_size: self.tx_frame_size as u32,
                stats,
                cfg: cfg.clone(),
                rx_fds,
                rx_gate: gate,
            },
        ))
    }
}

/// The rx queue over a socket another process opened with `cfg` (a live restart): its ring
/// mapped again, reading from where that process stopped, which the ring itself says at the
/// first read ([`AfPacketRxQueue::resume_block`]; a block left partly read has its header
/// pointing at the rest, `rx` keeps it so).
fn adopt_rx(
    cfg: &AfPacketConfig,
    sock: OwnedFd,
    sw_if_index: u32,
    queue_id: u16,
    stats: Arc<QueueStats>,
    gate: Arc<RxGate>,
) -> io::Result<AfPacketRxQueue> {
    let (bs, nr) = (cfg.rx_block_size as usize, cfg.rx_block_count as usize);
    if bs < 2 * PAGE || bs & (PAGE - 1) != 0 || nr < 2 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("af_packet: bad rx ring {nr} x {bs}"),
        ));
    }
    let ring = Ring::map(sock.as_raw_fd(), bs * nr)?;
    Ok(AfPacketRxQueue {
        fd: Arc::new(sock),
        ring,
        block_size: bs,
        block_nr: nr,
        blk: 0,
        resume: true,
        in_block: false,
        pkts_left: 0,
        off: 0,
        vnet: cfg.vnet_hdr,
        sw_if_index,
        queue_id,
        stats,
        idle: 0,
        error_logged: false,
        gate,
    })
}

impl AfPacket {
    /// Take over an af_packet interface from another process: its rx sockets (`rx_fds`, one
    /// per queue, in their fanout group), whose rings hold what it has not read, and new tx
    /// sockets (a tx ring's frames are sent once queued: nothing of the old one's to carry).
    /// The rx queues read nothing until `rx_gate.open()`: that is for once the other process
    /// has stopped reading (two readers of one ring would both read its frames).
    pub fn adopt(
        cfg: &AfPacketConfig,
        rx_fds: Vec<OwnedFd>,
        fanout_id: u16,
        sw_if_index: u32,
    ) -> io::Result<(Vec<AfPacketRxQueue>, Vec<AfPacketTxQueue>, AfPacketInfo)> {
        if rx_fds.len() != cfg.queues as usize || rx_fds.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "af_packet: {} rx sockets for {} queues",
                    rx_fds.len(),
                    cfg.queues
                ),
            ));
        }
        netns::run(cfg.netns.as_deref(), || {
            let link = Link::of(cfg)?;
            let stats = link.queue_stats(cfg);
            let mut rx = Vec::new();
            // Closed until the other process has stopped reading.
            let gate = Arc::new(RxGate::default());
            gate.closed.store(true, Ordering::SeqCst);
            for (q, (fd, st)) in rx_fds.into_iter().zip(&stats).enumerate() {
                rx.push(adopt_rx(
                    cfg,
                    fd,
                    sw_if_index,
                    q as u16,
                    st.clone(),
                    gate.clone(),
                )?);
            }
            link.finish(cfg, rx, stats, fanout_id, gate)
        })?
    }
}

fn tx_frame_size(cfg: &AfPacketConfig, mtu: u32) -> io::Result<usize> {
    let vlen = if cfg.vnet_hdr { VNET_HDR_LEN } else { 0 };
    let max_frame = if cfg.vnet_hdr {
        65535 + 18
    } else {
        mtu as usize + 18
    };
    let tx_frame_size = if cfg.tx_frame_size != 0 {
        round_up(cfg.tx_frame_size as usize, 16)
    } else {
        round_up(T2_DATA + vlen + max_frame, 16)
    };
    if tx_frame_size < T2_DATA + vlen + 64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("af_packet: tx frame size {tx_frame_size} too small"),
        ));
    }
    Ok(tx_frame_size)
}

fn open_rx(cfg: &AfPacketConfig, ifindex: u32) -> io::Result<(OwnedFd, Ring)> {
    let sock = packet_socket()?;
    let fd = sock.as_raw_fd();
    setsockopt(fd, PACKET_VERSION, &TPACKET_V3, "TPACKET_V3")?;
    if cfg.vnet_hdr {
        setsockopt(fd, PACKET_VNET_HDR, &1i32, "PACKET_VNET_HDR")?;
    }
    let frame = 2048u32;
    let req = [
        cfg.rx_block_size,
        cfg.rx_block_count,
        frame,
        cfg.rx_block_size / frame * cfg.rx_block_count,
        cfg.rx_block_timeout_ms,
        0, // sizeof_priv
        0, // feature_req_word
    ];
    setsockopt(fd, PACKET_RX_RING, &req, "PACKET_RX_RING")?;
    let ring = Ring::map(fd, cfg.rx_block_size as usize * cfg.rx_block_count as usize)?;
    bind_ll(fd, ifindex, libc::ETH_P_ALL as u16)?;
    // Not on every kernel; outgoing frames are also skipped by pkttype below.
    let _ = setsockopt(fd, PACKET_IGNORE_OUTGOING, &1i32, "ignore outgoing");
    Ok((sock, ring))
}

/// Join (or, for the first queue, create with a kernel-chosen id) the hash fanout group.
fn join_fanout(fd: RawFd, first: bool, id: u16) -> io::Result<u16> {
    let ty = PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG;
    if !first {
        let v: u32 = id as u32 | (ty << 16);
        setsockopt(fd, PACKET_FANOUT, &v, "PACKET_FANOUT")?;
        return Ok(id);
    }
    let v: u32 = (ty | PACKET_FANOUT_FLAG_UNIQUEID) << 16;
    setsockopt(fd, PACKET_FANOUT, &v, "PACKET_FANOUT")?;
    let mut got: u32 = 0;
    let mut len = 4 as libc::socklen_t;
    // SAFETY: PACKET_FANOUT reads back a u32 into got; len holds its size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_PACKET,
            PACKET_FANOUT,
            (&mut got as *mut u32).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(got as u16)
}

fn open_tx(
    cfg: &AfPacketConfig,
    ifindex: u32,
    frame_size: usize,
    stats: Arc<QueueStats>,
) -> io::Result<AfPacketTxQueue> {
    let sock = packet_socket()?;
    let fd = sock.as_raw_fd();
    setsockopt(fd, PACKET_VERSION, &TPACKET_V2, "TPACKET_V2")?;
    if cfg.vnet_hdr {
        setsockopt(fd, PACKET_VNET_HDR, &1i32, "PACKET_VNET_HDR")?;
    }
    if cfg.qdisc_bypass {
        setsockopt(fd, PACKET_QDISC_BYPASS, &1i32, "PACKET_QDISC_BYPASS")?;
    }
    // A malformed frame is skipped (marked available) instead of stalling the ring.
    setsockopt(fd, PACKET_LOSS, &1i32, "PACKET_LOSS")?;
    let block_size = round_up(frame_size, PAGE);
    let fpb = block_size / frame_size;
    let block_nr = (cfg.tx_frame_count as usize).div_ceil(fpb);
    let frame_nr = block_nr * fpb;
    let req = [
        block_size as u32,
        block_nr as u32,
        frame_size as u32,
        frame_nr as u32,
    ];
    setsockopt(fd, PACKET_TX_RING, &req, "PACKET_TX_RING")?;
    let ring = Ring::map(fd, block_size * block_nr)?;
    // Protocol 0: this socket sends only; it is never handed received packets.
    bind_ll(fd, ifindex, 0)?;
    Ok(AfPacketTxQueue {
        fd: sock,
        ring,
        frame_size,
        block_size,
        fpb,
        frame_nr,
        head: 0,
        pending: 0,
        pending_pkts: 0,
        pending_bytes: 0,
        frame_pkts: vec![0; frame_nr],
        vnet: cfg.vnet_hdr,
        udp_gso: cfg.vnet_hdr && kernel_takes_udp_gso(),
        run: None,
        stats,
        error_logged: false,
    })
}

/// Whether packet sockets take `VIRTIO_NET_HDR_GSO_UDP_L4` (Linux 6.2, "Support USO offload
/// in vnet header"). An older kernel refuses the frame, and with `PACKET_LOSS` drops it
/// without telling us, so we must not send one there.
fn kernel_takes_udp_gso() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    kernel_at_least(&release, (6, 2))
}

/// `release` (as `uname -r` prints it) is `want` or later.
fn kernel_at_least(release: &str, want: (u32, u32)) -> bool {
    let mut it = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let (major, minor) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    (major, minor) >= want
}

/// Receive side of one queue: a TPACKET_V3 ring read block by block.
pub struct AfPacketRxQueue {
    fd: Arc<OwnedFd>,
    ring: Ring,
    block_size: usize,
    block_nr: usize,
    /// Block being read.
    blk: usize,
    /// Adopted: find `blk` in the ring at the first read, when the old owner has stopped.
    resume: bool,
    /// We own `blk` (status USER) and have not finished it.
    in_block: bool,
    pkts_left: u32,
    /// Offset of the next packet inside the block.
    off: usize,
    vnet: bool,
    sw_if_index: u32,
    queue_id: u16,
    stats: Arc<QueueStats>,
    /// Empty polls, to check for a socket error now and then.
    idle: u32,
    error_logged: bool,
    gate: Arc<RxGate>,
}

impl AfPacketRxQueue {
    pub fn stats(&self) -> &Arc<QueueStats> {
        &self.stats
    }

    /// Hand the current block back to the kernel and move to the next.
    fn release_block(&mut self) {
        if let Some(s) = self.ring.status(self.blk * self.block_size + BLK_STATUS) {
            // Release: our reads of the block happen before the kernel may reuse it.
            s.store(TP_STATUS_KERNEL, Ordering::Release);
        }
        self.in_block = false;
        self.blk = (self.blk + 1) % self.block_nr;
    }

    /// Count the frames the kernel dropped before the ring (`tp_drops`; reading resets it).
    fn read_kernel_drops(&mut self) {
        let mut st = [0u32; 3]; // struct tpacket_stats_v3
        let mut len = std::mem::size_of_val(&st) as libc::socklen_t;
        // SAFETY: PACKET_STATISTICS writes at most len bytes into st; len holds its size.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_STATISTICS,
                st.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if rc == 0 {
            QueueStats::add(&self.stats.rx_kernel_drops, st[1] as u64);
        }
    }

    fn check_error(&mut self) -> u64 {
        match take_socket_error(self.fd.as_raw_fd()) {
            Some(e) => {
                if !self.error_logged {
                    self.error_logged = true;
                    log::warn!("af_packet rx queue {}: {e}", self.queue_id);
                }
                1
            }
            None => 0,
        }
    }
}

impl RxQueue for AfPacketRxQueue {
    fn input_node(&self) -> &'static str {
        INPUT_NODE
    }
    fn sw_if_index(&self) -> u32 {
        self.sw_if_index
    }
    fn queue_id(&self) -> u16 {
        self.queue_id
    }
    fn rx_fd(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }
    fn ack_interrupt(&mut self) {
        // An error makes the fd permanently readable-with-POLLERR until it is taken.
        let e = self.check_error();
        QueueStats::add(&self.stats.rx_errors, e);
    }

    fn rx(&mut self, bufs: &mut Buffers, out: &mut [u32], nexts: &mut [u16]) -> usize {
        self.rx_gated(bufs, out, nexts, None)
    }

    fn rx_with(
        &mut self,
        bufs: &mut Buffers,
        out: &mut [u32],
        nexts: &mut [u16],
        fwd: &FwdTable,
    ) -> usize {
        self.rx_gated(bufs, out, nexts, Some(fwd))
    }
}

impl AfPacketRxQueue {
    /// `fwd`, when given, says which UDP ports are VXLAN's (else 4789 only).
    fn rx_gated(
        &mut self,
        bufs: &mut Buffers,
        out: &mut [u32],
        nexts: &mut [u16],
        fwd: Option<&FwdTable>,
    ) -> usize {
        // SeqCst pairs with `RxGate::close`: either it sees this call busy, or this call sees
        // the gate closed.
        self.gate.busy.fetch_add(1, Ordering::SeqCst);
        let n = if self.gate.closed.load(Ordering::SeqCst) {
            0
        } else {
            self.rx_ring(bufs, out, nexts, fwd)
        };
        self.gate.busy.fetch_sub(1, Ordering::SeqCst);
        n
    }
}

impl AfPacketRxQueue {
    /// Where the ring's previous owner stopped: the unread block the kernel closed first
    /// (lowest sequence number), else the block it is filling (highest).
    fn resume_block(&self) -> usize {
        let (bs, nr) = (self.block_size, self.block_nr);
        let seq = |b: usize| self.ring.seq_at(b * bs + BLK_SEQ).unwrap_or(0);
        let user = |b: usize| {
            self.ring
                .status(b * bs + BLK_STATUS)
                .is_some_and(|s| s.load(Ordering::Acquire) & TP_STATUS_USER != 0)
        };
        (0..nr)
            .filter(|&b| user(b))
            .min_by_key(|&b| seq(b))
            .or_else(|| (0..nr).max_by_key(|&b| seq(b)))
            .unwrap_or(0)
    }

    fn rx_ring(
        &mut self,
        bufs: &mut Buffers,
        out: &mut [u32],
        nexts: &mut [u16],
        fwd: Option<&FwdTable>,
    ) -> usize {
        if self.resume {
            self.resume = false;
            self.blk = self.resume_block();
        }
        let limit = out.len().min(nexts.len());
        let (mut n, mut bytes, mut trunc, mut errs, mut nobuf) = (0usize, 0u64, 0u64, 0u64, 0u64);
        let bs = self.block_size;
        while n < limit {
            let base = self.blk * bs;
            if !self.in_block {
                let st = match self.ring.status(base + BLK_STATUS) {
                    Some(s) => s.load(Ordering::Acquire),
                    None => 0,
                };
                if st & TP_STATUS_USER == 0 {
                    if n == 0 {
                        self.idle = self.idle.wrapping_add(1);
                        if self.idle & 255 == 0 {
                            errs += self.check_error();
                            self.read_kernel_drops();
                        }
                    }
                    break;
                }
                if st & TP_STATUS_LOSING != 0 {
                    // A syscall per block, only while the kernel is dropping.
                    self.read_kernel_drops();
                }
                let num = self.ring.u32_at(base + BLK_NUM_PKTS).unwrap_or(0);
                let first = self.ring.u32_at(base + BLK_FIRST_PKT).unwrap_or(0) as usize;
                self.in_block = true;
                self.pkts_left = num;
                self.off = first;
                if num > 0 && (first < BLK_HDR_LEN || first >= bs) {
                    errs += 1;
                    self.release_block();
                    continue;
                }
            }
            if self.pkts_left == 0 {
                self.release_block();
                continue;
            }
            // One packet at base + off; everything it claims must stay inside this block.
            let off = self.off;
            let hdr = base + off;
            let fields = (|| {
                if off + T3_SLL + SLL_PKTTYPE + 1 > bs {
                    return None;
                }
                let next = self.ring.u32_at(hdr + T3_NEXT)? as usize;
                let snap = self.ring.u32_at(hdr + T3_SNAPLEN)? as usize;
                let len = self.ring.u32_at(hdr + T3_LEN)? as usize;
                let mac = self.ring.u16_at(hdr + T3_MAC)? as usize;
                let net = self.ring.u16_at(hdr + T3_NET)? as usize;
                let status = self.ring.u32_at(hdr + T3_STATUS)?;
                let pkttype = self.ring.bytes(hdr + T3_SLL + SLL_PKTTYPE, 1)?[0];
                Some((next, snap, len, (mac, net), status, pkttype))
            })();
            let Some((next, snap, len, (mac, net), status, pkttype)) = fields else {
                errs += 1;
                self.release_block();
                continue;
            };
            let vnet = if self.vnet && mac >= T3_SLL + VNET_HDR_LEN {
                self.ring
                    .bytes(hdr + mac - VNET_HDR_LEN, VNET_HDR_LEN)
                    .map(|h| {
                        let mut a = [0u8; VNET_HDR_LEN];
                        a.copy_from_slice(h);
                        VnetHdr::parse(&a)
                    })
            } else {
                None
            };
            // A UDP GSO frame becomes several buffers: left for the next call when they would
            // not fit in this one's vector.
            let uso_seg = vnet
                .filter(|v| v.gso_type & !VIRTIO_NET_HDR_GSO_ECN == VIRTIO_NET_HDR_GSO_UDP_L4)
                .map(|v| v.gso_size as usize);
            if let Some(seg) = uso_seg {
                if n > 0 && n + len.div_ceil(seg.max(1)) > limit {
                    break;
                }
            }
            self.pkts_left -= 1;
            if self.pkts_left > 0 {
                if next == 0 || off + next >= bs {
                    errs += 1;
                    self.release_block();
                    continue;
                }
                self.off = off + next;
            }
            let vlen = if self.vnet { VNET_HDR_LEN } else { 0 };
            if mac < T3_SLL + vlen || off + mac + snap > bs {
                errs += 1;
                continue;
            }
            if pkttype == PACKET_OUTGOING {
                continue;
            }
            if snap < len || snap == 0 {
                trunc += 1;
                continue;
            }
            let Some(frame) = self.ring.bytes(hdr + mac, snap) else {
                errs += 1;
                continue;
            };
            if let Some(seg) = uso_seg {
                let room = out.get_mut(n..limit).unwrap_or_default();
                match split_udp_gso(bufs, frame, seg, self.sw_if_index, room, fwd) {
                    Ok(k) => {
                        for x in nexts.iter_mut().skip(n).take(k) {
                            *x = rx_next::ETHERNET;
                        }
                        n += k;
                        bytes += snap as u64;
                    }
                    Err(UsoError::NoBuffers) => nobuf += 1,
                    Err(UsoError::Malformed) => errs += 1,
                }
                continue;
            }
            let Some(bi) = bufs.alloc_from_bytes(frame) else {
                nobuf += 1;
                continue;
            };
            let m = bufs.meta(bi);
            m.rx_sw_if_index = self.sw_if_index;
            if let Some(v) = vnet {
                v.apply_rx(m, 14);
            } else if !self.vnet && status & TP_STATUS_CSUMNOTREADY != 0 {
                // Finished later where it must be (gso-segment, or a tap's vnet header),
                // else a pod or a remote node would drop it as corrupt.
                m.flags |= flags::OFFLOAD_L4_CKSUM;
                m.l3_hdr_offset = net.saturating_sub(mac) as i16;
            }
            out[n] = bi;
            nexts[n] = rx_next::ETHERNET;
            n += 1;
            bytes += snap as u64;
        }
        if self.in_block {
            // A block left partly read describes only the rest, so that a process taking the
            // socket over (a live restart) reads on from here: two stores per call.
            let base = self.blk * bs;
            let (left, off) = (self.pkts_left, self.off as u32);
            self.ring.set_u32(base + BLK_NUM_PKTS, left);
            self.ring.set_u32(base + BLK_FIRST_PKT, off);
        }
        if n > 0 {
            self.idle = 0;
        }
        let s = &self.stats;
        QueueStats::add(&s.rx_packets, n as u64);
        QueueStats::add(&s.rx_bytes, bytes);
        QueueStats::add(&s.rx_truncated, trunc);
        QueueStats::add(&s.rx_errors, errs);
        QueueStats::add(&s.rx_no_buffers, nobuf);
        n
    }
}

/// Why a received UDP GSO frame was not split.
#[derive(Debug, PartialEq)]
enum UsoError {
    /// Not a plain UDP packet over IPv4/IPv6, or a datagram would not fit a buffer, or more
    /// datagrams than a vector holds.
    Malformed,
    NoBuffers,
}

/// The most datagrams one received UDP GSO frame may hold (the kernel's UDP_MAX_SEGMENTS
/// since 6.10).
const USO_MAX_SEGS: usize = 128;

/// A UDP GSO frame (`VIRTIO_NET_HDR_GSO_UDP_L4`) that the kernel handed up whole: across a
/// veth, a peer's af_packet frame of merged VXLAN datagrams (see [`UdpRun`]) stays one skb up
/// to our socket. Nothing after the driver reads a UDP super-frame, so it is cut back into
/// its datagrams here, each with its own lengths and, for IPv4, ID (+1 each) and header
/// checksum. The UDP checksum is computed, except over IPv4 to a VXLAN port (4789, or one a
/// tunnel receives on as `fwd` publishes), where it is zero as rvpp's encap sends it (the
/// decap never reads it). Returns the buffers written to `out`; on error nothing is left
/// allocated.
fn split_udp_gso(
    bufs: &mut Buffers,
    frame: &[u8],
    seg: usize,
    sw: u32,
    out: &mut [u32],
    fwd: Option<&FwdTable>,
) -> Result<usize, UsoError> {
    let (l3, l4, v6) = udp_headers(frame).ok_or(UsoError::Malformed)?;
    let hl = l4 + 8;
    let payload = frame.get(hl..).ok_or(UsoError::Malformed)?;
    let hdr = frame.get(..hl).ok_or(UsoError::Malformed)?;
    if seg == 0 || payload.is_empty() {
        return Err(UsoError::Malformed);
    }
    let count = payload.len().div_ceil(seg);
    let mut idx = [0u32; USO_MAX_SEGS];
    let idx = match (idx.get_mut(..count), count <= out.len()) {
        (Some(i), true) => i,
        _ => return Err(UsoError::Malformed),
    };
    let got = bufs.alloc(idx);
    if got != count {
        bufs.free(idx.get(..got).unwrap_or_default());
        return Err(UsoError::NoBuffers);
    }
    let be16 = |o: usize| {
        hdr.get(o..o + 2)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
    };
    let id0 = if v6 { 0 } else { be16(l3 + 4) };
    let dport = be16(l4 + 2);
    let vxlan4 = !v6
        && fwd.map_or(dport == rvpp_dataplane::wire::tunnel::VXLAN_PORT, |f| {
            f.is_vxlan_port(false, dport)
        });
    for (i, (chunk, (&bi, o))) in payload
        .chunks(seg)
        .zip(idx.iter().zip(out.iter_mut()))
        .enumerate()
    {
        let total = hl + chunk.len();
        let mut b = bufs.get(bi);
        let fixed = (|| {
            let p = b.tail_room_mut().get_mut(..total)?;
            let (h, body) = p.split_at_mut(hl);
            h.copy_from_slice(hdr);
            body.copy_from_slice(chunk);
            let put = |p: &mut [u8], at: usize, v: u16| {
                p.get_mut(at..at + 2)
                    .map(|d| d.copy_from_slice(&v.to_be_bytes()))
            };
            let udp_len = (total - l4) as u16;
            put(p, l4 + 4, udp_len)?;
            put(p, l4 + 6, 0)?;
            if v6 {
                put(p, l3 + 4, (total - l3 - 40) as u16)?;
                let addr = |p: &[u8], at: usize| {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(p.get(at..at + 16)?);
                    Some(u128::from_be_bytes(a))
                };
                let ps = ip6_pseudo_sum(addr(p, l3 + 8)?, addr(p, l3 + 24)?, udp_len as u32, 17);
                let c = match fold(ones_sum(p.get(l4..)?, ps)) {
                    0 => 0xffff,
                    c => c,
                };
                put(p, l4 + 6, c)?;
            } else {
                put(p, l3 + 2, (total - l3) as u16)?;
                put(p, l3 + 4, id0.wrapping_add(i as u16))?;
                put(p, l3 + 10, 0)?;
                let c = fold(ones_sum(p.get(l3..l4)?, 0));
                put(p, l3 + 10, c)?;
                if !vxlan4 {
                    let a = |at: usize| {
                        let b = p.get(at..at + 4)?;
                        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                    };
                    let ps = ip4_pseudo_sum(a(l3 + 12)?, a(l3 + 16)?, udp_len, 17);
                    let c = match fold(ones_sum(p.get(l4..)?, ps)) {
                        0 => 0xffff,
                        c => c,
                    };
                    put(p, l4 + 6, c)?;
                }
            }
            Some(())
        })();
        b.meta.current_length = total as u16;
        b.meta.rx_sw_if_index = sw;
        b.meta.l3_hdr_offset = l3 as i16;
        *o = bi;
        if fixed.is_none() {
            bufs.free(idx);
            return Err(UsoError::Malformed);
        }
    }
    Ok(count)
}

/// Transmit side of one queue: a TPACKET_V2 ring, kicked once per flush.
pub struct AfPacketTxQueue {
    fd: OwnedFd,
    ring: Ring,
    frame_size: usize,
    block_size: usize,
    /// Frames per block.
    fpb: usize,
    frame_nr: usize,
    /// Next frame to fill.
    head: usize,
    /// Frames marked SEND_REQUEST since the last successful kick.
    pending: usize,
    /// Packets in the pending frames (a merged UDP frame holds several).
    pending_pkts: u64,
    pending_bytes: u64,
    /// Packets in each frame, for counting the ones a failed kick gives back.
    frame_pkts: Vec<u8>,
    vnet: bool,
    /// Merge gso-segment's UDP tunnel segments into UDP GSO frames (see [`UdpRun`]).
    udp_gso: bool,
    run: Option<UdpRun>,
    stats: Arc<QueueStats>,
    error_logged: bool,
}

/// The most segments merged into one frame: the kernel's UDP_MAX_SEGMENTS before 6.10.
const RUN_MAX_SEGS: usize = 64;
/// Longest outer header run compared: Ethernet, two VLAN tags, IPv6, UDP.
const RUN_MAX_HDR: usize = 14 + 8 + 40 + 8;

/// Consecutive UDP datagrams that gso-segment cut from one tunnel super-frame
/// (`flags::UDP_TUNNEL_SEGMENT`), being merged into one tx frame that the kernel segments
/// again (`VIRTIO_NET_HDR_GSO_UDP_L4`): the segments of a VXLAN super-frame cross af_packet,
/// the qdisc and a veth as one skb instead of 45. af_packet's vnet header has no UDP-tunnel
/// GSO type, so rvpp still builds every inner segment (headers and checksums); the kernel
/// only repeats the outer headers, with the lengths, IPv4 IDs (+1 each, as gso-segment sets
/// them) and the outer UDP checksum of each datagram. Measured on a veth toward a Linux
/// node (bench `pod-remote`): the Linux side then decapsulates the datagrams of one skb in
/// one softirq and GRO merges the inner TCP segments again, where 45 separate skbs each
/// crossed its whole receive path and woke the receiving socket.
///
/// A packet joins the run when its outer headers equal the first one's except the lengths,
/// the IPv4 ID (the next one) and the checksums, and its payload is the first one's size,
/// or smaller, which ends the run (the last segment).
struct UdpRun {
    /// Frame offset in the ring.
    foff: usize,
    /// Bytes of packet written after the vnet header.
    len: usize,
    l3: usize,
    l4: usize,
    v6: bool,
    /// UDP payload bytes per datagram (the first one's).
    seg: usize,
    pkts: usize,
    next_id: u16,
    /// A shorter datagram ended the run.
    ended: bool,
    hdr: [u8; RUN_MAX_HDR],
}

/// Where the outer IP and UDP headers of a UDP packet are: (l3, l4, v6). No IPv4 options
/// checked (`ihl` taken as it is), no IPv6 extension headers, no fragments.
fn udp_headers(p: &[u8]) -> Option<(usize, usize, bool)> {
    let mut off = 14;
    let mut et = u16::from_be_bytes([*p.get(12)?, *p.get(13)?]);
    let mut tags = 0;
    while et == 0x8100 || et == 0x88a8 {
        tags += 1;
        if tags > 2 {
            return None;
        }
        et = u16::from_be_bytes([*p.get(off + 2)?, *p.get(off + 3)?]);
        off += 4;
    }
    let (l4, v6) = match et {
        0x0800 => {
            let ihl = (*p.get(off)? & 0x0f) as usize * 4;
            let frag = u16::from_be_bytes([*p.get(off + 6)?, *p.get(off + 7)?]) & 0x3fff;
            if *p.get(off)? >> 4 != 4 || ihl != 20 || frag != 0 || *p.get(off + 9)? != 17 {
                return None;
            }
            (off + ihl, false)
        }
        0x86dd => {
            if *p.get(off)? >> 4 != 6 || *p.get(off + 6)? != 17 {
                return None;
            }
            (off + 40, true)
        }
        _ => return None,
    };
    (l4 + 8 <= RUN_MAX_HDR && l4 + 8 <= p.len()).then_some((off, l4, v6))
}

/// The IP and UDP lengths of a UDP packet `total` bytes long agree with it (no padding).
fn udp_lengths_agree(p: &[u8], (l3, l4, v6): (usize, usize, bool), total: usize) -> bool {
    let be = |o: usize| u16::from_be_bytes([p[o], p[o + 1]]) as usize;
    let ip_ok = if v6 {
        be(l3 + 4) + 40 + l3 == total
    } else {
        be(l3 + 2) + l3 == total
    };
    ip_ok && be(l4 + 4) + l4 == total
}

impl UdpRun {
    /// The header fields that must match the first datagram's: all but the lengths, the ID
    /// and the checksums.
    fn same_flow(&self, p: &[u8]) -> bool {
        let (l3, l4) = (self.l3, self.l4);
        let h = &self.hdr;
        let eq = |a: usize, b: usize| p.get(a..b) == h.get(a..b);
        if self.v6 {
            eq(0, l3 + 4) && eq(l3 + 6, l4 + 4)
        } else {
            eq(0, l3 + 2) && eq(l3 + 6, l3 + 10) && eq(l3 + 12, l4 + 4)
        }
    }
}

impl AfPacketTxQueue {
    pub fn stats(&self) -> &Arc<QueueStats> {
        &self.stats
    }

    fn frame_off(&self, i: usize) -> usize {
        (i / self.fpb) * self.block_size + (i % self.fpb) * self.frame_size
    }

    /// Ask the kernel to send every SEND_REQUEST frame.
    fn kick(&mut self) {
        if self.pending == 0 {
            return;
        }
        // SAFETY: send with no data on our own socket: it only processes the tx ring.
        let rc =
            unsafe { libc::send(self.fd.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT) };
        if rc >= 0 {
            QueueStats::add(&self.stats.tx_packets, self.pending_pkts);
            QueueStats::add(&self.stats.tx_bytes, self.pending_bytes);
            self.pending = 0;
            self.pending_pkts = 0;
            self.pending_bytes = 0;
            return;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            // Transient: the frames stay queued for the next kick.
            Some(libc::EAGAIN) | Some(libc::ENOBUFS) | Some(libc::EINTR) => {
                QueueStats::add(&self.stats.tx_full, 1);
            }
            _ => {
                if !self.error_logged {
                    self.error_logged = true;
                    log::warn!("af_packet tx: send: {e}");
                }
                // The kernel takes SEND_REQUEST frames in ring order, from a head of its own,
                // and only inside send(): what it did not take is the newest run of pending
                // frames. Take those back and move our head back to the first of them, so the
                // next frame we fill is the one the kernel looks at. (Reclaiming without
                // moving back left the kernel's head on an AVAILABLE frame after a link flap:
                // it then sent nothing until our head lapped the ring to it.)
                let (mut dropped, mut dropped_pkts) = (0usize, 0u64);
                while dropped < self.pending {
                    let i = (self.head + self.frame_nr - 1 - dropped) % self.frame_nr;
                    let Some(s) = self.ring.status(self.frame_off(i) + T2_STATUS) else {
                        break;
                    };
                    if s.compare_exchange(
                        TP_STATUS_SEND_REQUEST,
                        TP_STATUS_AVAILABLE,
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_err()
                    {
                        break;
                    }
                    dropped += 1;
                    dropped_pkts += self.frame_pkts.get(i).map_or(1, |&n| n as u64);
                }
                self.head = (self.head + self.frame_nr - dropped) % self.frame_nr;
                QueueStats::add(&self.stats.tx_errors, dropped_pkts.max(1));
                QueueStats::add(
                    &self.stats.tx_packets,
                    self.pending_pkts.saturating_sub(dropped_pkts),
                );
                self.pending = 0;
                self.pending_pkts = 0;
                self.pending_bytes = 0;
            }
        }
    }

    /// Whether frame `head` can be filled.
    fn head_free(&self) -> bool {
        match self.ring.status(self.frame_off(self.head) + T2_STATUS) {
            Some(s) => {
                let v = s.load(Ordering::Acquire);
                if v == TP_STATUS_WRONG_FORMAT {
                    // Only without PACKET_LOSS; reclaim the frame rather than stall.
                    s.store(TP_STATUS_AVAILABLE, Ordering::Release);
                    return true;
                }
                v == TP_STATUS_AVAILABLE
            }
            None => false,
        }
    }
}

impl AfPacketTxQueue {
    /// Add packet `bi` to the open UDP run, if it belongs there: true when it was copied.
    fn join_run(&mut self, bufs: &mut Buffers, bi: u32) -> bool {
        let vlen = VNET_HDR_LEN;
        let room = self.frame_size - T2_DATA - vlen;
        let Some(run) = self.run.as_ref() else {
            return false;
        };
        let hl = run.l4 + 8;
        let (total, payload) = {
            let b = bufs.get(bi);
            let total = b.total_len();
            if b.meta.flags & (flags::GSO | flags::OFFLOAD_L4_CKSUM) != 0
                || b.meta.flags & flags::UDP_TUNNEL_SEGMENT == 0
                || run.ended
                || run.pkts >= RUN_MAX_SEGS
                || total <= hl
            {
                return false;
            }
            let payload = total - hl;
            let p = b.data();
            let ip_len = run.len + payload - run.l3 - if run.v6 { 40 } else { 0 };
            let id_ok =
                run.v6 || p.get(run.l3 + 4..run.l3 + 6) == Some(&run.next_id.to_be_bytes()[..]);
            if payload > run.seg
                || run.len + payload > room
                || ip_len > 65535
                || p.len() < hl
                || !id_ok
                || !run.same_flow(p)
                || !udp_lengths_agree(p, (run.l3, run.l4, run.v6), total)
            {
                return false;
            }
            (total, payload)
        };
        let at = run.foff + T2_DATA + vlen + run.len;
        let Some(dst) = self.ring.bytes_mut(at, payload) else {
            return false;
        };
        let copied = bufs.copy_chain_from(bi, hl, dst);
        if copied != payload {
            return false;
        }
        let Some(run) = self.run.as_mut() else {
            return false;
        };
        run.len += payload;
        run.pkts += 1;
        run.next_id = run.next_id.wrapping_add(1);
        run.ended = payload < run.seg;
        self.pending_bytes += total as u64;
        true
    }

    /// Close the open UDP run: one datagram goes as it is; several become one UDP GSO frame
    /// (lengths, IPv4 checksum and the partial UDP checksum set for the whole, vnet header).
    /// Then the frame is handed to the kernel.
    fn close_run(&mut self) {
        let Some(run) = self.run.take() else {
            return;
        };
        let vlen = VNET_HDR_LEN;
        let data = run.foff + T2_DATA + vlen;
        if run.pkts > 1 {
            let Some(p) = self.ring.bytes_mut(data, run.l4 + 8) else {
                return;
            };
            let (l3, l4) = (run.l3, run.l4);
            let udp_len = (run.len - l4) as u16;
            let ps = if run.v6 {
                let pl = (run.len - l3 - 40) as u16;
                p[l3 + 4..l3 + 6].copy_from_slice(&pl.to_be_bytes());
                let a = |o: usize| {
                    let mut x = [0u8; 16];
                    x.copy_from_slice(&p[o..o + 16]);
                    u128::from_be_bytes(x)
                };
                ip6_pseudo_sum(a(l3 + 8), a(l3 + 24), udp_len as u32, 17)
            } else {
                let tl = (run.len - l3) as u16;
                p[l3 + 2..l3 + 4].copy_from_slice(&tl.to_be_bytes());
                p[l3 + 10] = 0;
                p[l3 + 11] = 0;
                let c = fold(ones_sum(&p[l3..l4], 0));
                p[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
                let a = |o: usize| u32::from_be_bytes([p[o], p[o + 1], p[o + 2], p[o + 3]]);
                ip4_pseudo_sum(a(l3 + 12), a(l3 + 16), udp_len, 17)
            };
            p[l4 + 4..l4 + 6].copy_from_slice(&udp_len.to_be_bytes());
            // CHECKSUM_PARTIAL: the field holds the pseudo-header sum, not inverted.
            p[l4 + 6..l4 + 8].copy_from_slice(&(!fold(ps)).to_be_bytes());
            let h = VnetHdr {
                flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
                gso_type: VIRTIO_NET_HDR_GSO_UDP_L4,
                hdr_len: (l4 + 8) as u16,
                gso_size: run.seg as u16,
                csum_start: l4 as u16,
                csum_offset: 6,
            };
            if let Some(d) = self.ring.bytes_mut(run.foff + T2_DATA, vlen) {
                d.copy_from_slice(&h.to_bytes());
            }
            QueueStats::add(&self.stats.tx_udp_gso_frames, 1);
        }
        self.send_frame(run.foff, vlen + run.len, run.pkts);
    }

    /// Mark the frame at head, `len` bytes after its header, for sending, and move on.
    fn send_frame(&mut self, foff: usize, len: usize, pkts: usize) {
        let len = len as u32;
        if let Some(d) = self.ring.bytes_mut(foff + T2_LEN, 8) {
            d[..4].copy_from_slice(&len.to_ne_bytes());
            d[T2_SNAPLEN - T2_LEN..].copy_from_slice(&len.to_ne_bytes());
        }
        if let Some(c) = self.frame_pkts.get_mut(self.head) {
            *c = pkts.min(u8::MAX as usize) as u8;
        }
        if let Some(s) = self.ring.status(foff + T2_STATUS) {
            // Release: the frame contents are visible before the kernel sees the request.
            s.store(TP_STATUS_SEND_REQUEST, Ordering::Release);
        }
        self.head = (self.head + 1) % self.frame_nr;
        self.pending += 1;
        self.pending_pkts += pkts as u64;
    }
}

impl TxQueue for AfPacketTxQueue {
    fn tx_node(&self) -> &'static str {
        TX_NODE
    }

    fn tx(&mut self, bufs: &mut Buffers, pkts: &[u32]) -> usize {
        let vlen = if self.vnet { VNET_HDR_LEN } else { 0 };
        let room = self.frame_size - T2_DATA;
        let (mut done, mut errs, mut full) = (0usize, 0u64, 0u64);
        for &bi in pkts {
            if self.run.is_some() {
                if self.join_run(bufs, bi) {
                    done += 1;
                    continue;
                }
                self.close_run();
            }
            if !self.head_free() {
                // Ring full: push what is queued and look once more.
                self.kick();
                if !self.head_free() {
                    full += 1;
                    break;
                }
            }
            let (total, hdr, seg) = {
                let b = bufs.get(bi);
                let hdr = self
                    .vnet
                    .then(|| VnetHdr::for_tx(b.meta, b.data(), true).to_bytes());
                let seg = b.meta.flags & flags::UDP_TUNNEL_SEGMENT != 0
                    && b.meta.flags & (flags::GSO | flags::OFFLOAD_L4_CKSUM) == 0;
                (b.total_len(), hdr, seg)
            };
            if vlen + total > room || total == 0 {
                errs += 1;
                done += 1;
                continue;
            }
            let foff = self.frame_off(self.head);
            let Some(dst) = self.ring.bytes_mut(foff + T2_DATA, vlen + total) else {
                errs += 1;
                done += 1;
                continue;
            };
            if let Some(h) = hdr {
                dst[..VNET_HDR_LEN].copy_from_slice(&h);
            }
            let copied = bufs.copy_chain(bi, &mut dst[vlen..]);
            self.pending_bytes += copied as u64;
            done += 1;
            // A tunnel's segment may start a run its siblings join (sent at the run's end).
            if self.udp_gso && seg && copied == total {
                let p = &dst[vlen..vlen + copied];
                if let Some(at) = udp_headers(p).filter(|&at| udp_lengths_agree(p, at, total)) {
                    let (l3, l4, v6) = at;
                    let mut hdr = [0u8; RUN_MAX_HDR];
                    hdr[..l4 + 8].copy_from_slice(&p[..l4 + 8]);
                    let id = u16::from_be_bytes([p[l3 + 4], p[l3 + 5]]);
                    self.run = Some(UdpRun {
                        foff,
                        len: copied,
                        l3,
                        l4,
                        v6,
                        seg: copied - l4 - 8,
                        pkts: 1,
                        next_id: id.wrapping_add(1),
                        ended: false,
                        hdr,
                    });
                    continue;
                }
            }
            self.send_frame(foff, vlen + copied, 1);
        }
        self.close_run();
        bufs.free(&pkts[..done]);
        QueueStats::add(&self.stats.tx_errors, errs);
        QueueStats::add(&self.stats.tx_full, full);
        done
    }

    fn flush(&mut self, _bufs: &mut Buffers) {
        self.kick();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_gso_needs_linux_6_2() {
        assert!(kernel_at_least("6.18.44-fc-v1300\n", (6, 2)));
        assert!(kernel_at_least("6.2.0", (6, 2)));
        assert!(!kernel_at_least("6.1.90-generic", (6, 2)));
        assert!(!kernel_at_least("5.15.0", (6, 2)));
        assert!(!kernel_at_least("", (6, 2)));
    }

    /// Ethernet + IPv4 + UDP to 4789 with `payload` bytes, IPv4 ID `id`.
    fn vxlan_like(id: u16, payload: usize) -> Vec<u8> {
        let mut p = vec![0u8; 42 + payload];
        p[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        p[14] = 0x45;
        p[16..18].copy_from_slice(&((28 + payload) as u16).to_be_bytes());
        p[18..20].copy_from_slice(&id.to_be_bytes());
        p[22] = 64;
        p[23] = 17;
        p[26..30].copy_from_slice(&[198, 18, 0, 1]);
        p[30..34].copy_from_slice(&[198, 18, 0, 2]);
        p[34..36].copy_from_slice(&1234u16.to_be_bytes());
        p[36..38].copy_from_slice(&4789u16.to_be_bytes());
        p[38..40].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
        p
    }

    #[test]
    fn only_datagrams_of_the_same_flow_join_a_run() {
        let first = vxlan_like(7, 100);
        let at = udp_headers(&first).unwrap();
        assert_eq!(at, (14, 34, false));
        assert!(udp_lengths_agree(&first, at, first.len()));
        assert!(!udp_lengths_agree(&first, at, first.len() + 2), "padding");
        let mut hdr = [0u8; RUN_MAX_HDR];
        hdr[..42].copy_from_slice(&first[..42]);
        let run = UdpRun {
            foff: 0,
            len: first.len(),
            l3: 14,
            l4: 34,
            v6: false,
            seg: 100,
            pkts: 1,
            next_id: 8,
            ended: false,
            hdr,
        };
        // Lengths, ID and checksums may differ; nothing else.
        let mut next = vxlan_like(8, 60);
        next[24] = 0xab;
        next[40] = 0xcd;
        assert!(run.same_flow(&next));
        let mut other_port = next.clone();
        other_port[35] ^= 1;
        assert!(!run.same_flow(&other_port));
        let mut other_ttl = next.clone();
        other_ttl[22] = 63;
        assert!(!run.same_flow(&other_ttl));
        // Not UDP, a fragment, IPv4 options: never merged.
        let mut tcp = first.clone();
        tcp[23] = 6;
        assert!(udp_headers(&tcp).is_none());
        let mut frag = first.clone();
        frag[20] = 0x20;
        assert!(udp_headers(&frag).is_none());
        let mut opts = first.clone();
        opts[14] = 0x46;
        assert!(udp_headers(&opts).is_none());
    }

    /// A UDP GSO frame as a peer's close_run makes it from three datagrams of 100, 100 and 60
    /// payload bytes: one header, the lengths of the whole.
    fn udp_gso_frame(v6: bool) -> Vec<u8> {
        let payload: Vec<u8> = (0..260u32).map(|i| (i * 7) as u8).collect();
        let mut p = if v6 {
            let mut p = vec![0u8; 62];
            p[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
            p[14] = 0x60;
            p[18..20].copy_from_slice(&((8 + 260) as u16).to_be_bytes());
            p[20] = 17;
            p[21] = 64;
            p[22] = 0xfd;
            p[37] = 1;
            p[38] = 0xfd;
            p[53] = 2;
            p[54..56].copy_from_slice(&1234u16.to_be_bytes());
            p[56..58].copy_from_slice(&4789u16.to_be_bytes());
            p[58..60].copy_from_slice(&((8 + 260) as u16).to_be_bytes());
            p
        } else {
            let mut p = vxlan_like(40, 0);
            p[16..18].copy_from_slice(&((28 + 260) as u16).to_be_bytes());
            p[38..40].copy_from_slice(&((8 + 260) as u16).to_be_bytes());
            p
        };
        p.extend_from_slice(&payload);
        p
    }

    #[test]
    fn a_received_udp_gso_frame_is_cut_back_into_its_datagrams() {
        for v6 in [false, true] {
            let pool = rvpp_dataplane::buffer::BufferPool::new(64, 2048).unwrap();
            let mut bufs = pool.local();
            let frame = udp_gso_frame(v6);
            let hl = if v6 { 62 } else { 42 };
            let mut out = [0u32; 8];
            let n = split_udp_gso(&mut bufs, &frame, 100, 9, &mut out, None).unwrap();
            assert_eq!(n, 3);
            for (i, (&bi, want)) in out.iter().zip([100usize, 100, 60]).enumerate() {
                let b = bufs.get(bi);
                assert_eq!(b.meta.rx_sw_if_index, 9);
                let d = b.data().to_vec();
                assert_eq!(d.len(), hl + want, "datagram {i}");
                let at = udp_headers(&d).unwrap();
                assert!(udp_lengths_agree(&d, at, d.len()), "datagram {i} lengths");
                // Each carries its own slice of the payload.
                assert_eq!(d[hl..], frame[hl + 100 * i..hl + 100 * i + want]);
                if v6 {
                    let a = |o: usize| u128::from_be_bytes(d[o..o + 16].try_into().unwrap());
                    let ps = ip6_pseudo_sum(a(22), a(38), (d.len() - 54) as u32, 17);
                    assert_eq!(fold(ones_sum(&d[54..], ps)), 0, "UDP checksum {i}");
                } else {
                    assert_eq!(u16::from_be_bytes([d[18], d[19]]), 40 + i as u16, "ID");
                    assert_eq!(fold(ones_sum(&d[14..34], 0)), 0, "IPv4 checksum {i}");
                    assert_eq!(d[40..42], [0, 0], "no UDP checksum over IPv4 VXLAN");
                }
            }
            bufs.free(&out[..n]);
            if !v6 {
                // Another port over IPv4 keeps a real UDP checksum.
                let mut quic = frame.clone();
                quic[36..38].copy_from_slice(&443u16.to_be_bytes());
                assert_eq!(
                    split_udp_gso(&mut bufs, &quic, 100, 9, &mut out, None),
                    Ok(3)
                );
                for &bi in &out[..3] {
                    let d = bufs.get(bi).data().to_vec();
                    let a = |o: usize| u32::from_be_bytes(d[o..o + 4].try_into().unwrap());
                    let ps = ip4_pseudo_sum(a(26), a(30), (d.len() - 34) as u16, 17);
                    assert_ne!(d[40..42], [0, 0]);
                    assert_eq!(fold(ones_sum(&d[34..], ps)), 0, "UDP checksum");
                }
                bufs.free(&out[..3]);
            }
            // Not enough room in the vector, or not UDP: nothing taken from the pool.
            let before = pool.available();
            let mut two = [0u32; 2];
            assert_eq!(
                split_udp_gso(&mut bufs, &frame, 100, 9, &mut two, None),
                Err(UsoError::Malformed)
            );
            let mut tcp = frame.clone();
            tcp[if v6 { 20 } else { 23 }] = 6;
            assert_eq!(
                split_udp_gso(&mut bufs, &tcp, 100, 9, &mut out, None),
                Err(UsoError::Malformed)
            );
            // A datagram larger than a buffer.
            let big = {
                let mut f = frame.clone();
                f.resize(hl + 5000, 0);
                f
            };
            assert_eq!(
                split_udp_gso(&mut bufs, &big, 4000, 9, &mut out, None),
                Err(UsoError::Malformed)
            );
            assert_eq!(pool.available(), before, "no buffer leaked");
        }
    }

    /// Over IPv4 a port a VXLAN tunnel receives on (published in the forwarding table) is
    /// VXLAN's as 4789 is: its datagrams keep a zero UDP checksum; an unregistered one gets
    /// a real checksum.
    #[test]
    fn a_udp_gso_frame_to_a_registered_vxlan_port_keeps_a_zero_udp_checksum() {
        let pool = rvpp_dataplane::buffer::BufferPool::new(64, 2048).unwrap();
        let mut bufs = pool.local();
        let mut fwd = FwdTable::default();
        fwd.vxlan_ports[0] = vec![8472];
        let mut frame = udp_gso_frame(false);
        let mut out = [0u32; 8];
        for (port, vxlan) in [(8472u16, true), (8473, false)] {
            frame[36..38].copy_from_slice(&port.to_be_bytes());
            let n = split_udp_gso(&mut bufs, &frame, 100, 9, &mut out, Some(&fwd)).unwrap();
            assert_eq!(n, 3);
            for &bi in &out[..n] {
                let d = bufs.get(bi).data().to_vec();
                assert_eq!(d[40..42] == [0, 0], vxlan, "port {port}: zero UDP checksum");
            }
            bufs.free(&out[..n]);
        }
    }

    #[test]
    fn ring_accessors_stay_in_bounds() {
        // An anonymous mapping stands in for a kernel ring.
        // SAFETY: plain anonymous mapping, checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        let mut r = Ring {
            base: p.cast(),
            len: PAGE,
        };
        assert!(r.bytes(PAGE - 4, 4).is_some());
        assert!(r.bytes(PAGE - 3, 4).is_none());
        assert!(r.bytes(usize::MAX, 2).is_none());
        assert!(r.bytes_mut(PAGE, 1).is_none());
        assert!(r.status(2).is_none());
        assert!(r.status(PAGE).is_none());
        assert!(r.u32_at(PAGE - 2).is_none());
        assert_eq!(r.u16_at(0), Some(0));
    }
}
