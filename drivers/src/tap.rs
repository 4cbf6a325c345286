//! Linux tun/tap devices through `/dev/net/tun`, the way VPP's `tap_create_v3` makes them.
//!
//! * tun mode (`IFF_TUN`, calico's default for pods): L3 frames; rx picks ip4/ip6 by the
//!   version nibble. tap mode (`IFF_TAP`): Ethernet frames to ethernet-input.
//! * One fd per queue (`IFF_MULTI_QUEUE` when more than one), all non-blocking, `IFF_NO_PI`.
//! * With a vnet header (`IFF_VNET_HDR`, 10 bytes) the checksum/TSO offloads negotiated with
//!   `TUNSETOFFLOAD` are carried per packet: on rx they become buffer flags
//!   (`OFFLOAD_L4_CKSUM`, `GSO` + `gso_size`), on tx they are written from the flags.
//! * The device is created inside the target namespace (the fd is opened there), and its
//!   MTU, MAC and up state are set with ioctls on a socket made in that namespace.
//! * A non-persistent device disappears when its last queue fd closes; a persistent one stays
//!   until [`delete`] clears the flag (or its namespace goes away).

use rvpp_dataplane::buffer::{flags, BufferPool, Buffers};
use rvpp_dataplane::device::{RxQueue, TxQueue};
use rvpp_dataplane::graph::rx_next;
use rvpp_dataplane::graph::DeviceNodes;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Weak};

/// The graph nodes of tap (L2) and tun (L3) interfaces; both transmit through tap-tx.
pub const TAP_INPUT_NODE: &str = "tap-input";
pub const TUN_INPUT_NODE: &str = "tun-input";
pub const TX_NODE: &str = "tap-tx";
pub const TAP_NODES: DeviceNodes = DeviceNodes::new(TAP_INPUT_NODE, TX_NODE);
pub const TUN_NODES: DeviceNodes = DeviceNodes::input_only(TUN_INPUT_NODE);

use crate::netdev::{
    ctl_socket, get_mac, get_mtu, if_index, ioctl_ifreq, set_mac, set_mtu, set_tx_queue_len,
    set_up, IfReq,
};
use crate::netns;

// Moved to `netdev` and `vnet_hdr`; still reachable here for existing callers.
pub use crate::netdev::{QueueStats, Queues};
pub use crate::vnet_hdr::{
    VnetHdr, VIRTIO_NET_HDR_F_DATA_VALID, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_ECN,
    VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_TCPV6,
    VIRTIO_NET_HDR_GSO_UDP, VIRTIO_NET_HDR_GSO_UDP_L4, VNET_HDR_LEN,
};

fn ioctl_int(fd: RawFd, req: libc::Ioctl, v: libc::c_ulong) -> io::Result<()> {
    // SAFETY: the TUNSET* requests used with this take their argument by value.
    if unsafe { libc::ioctl(fd, req, v) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn ioctl_int_ptr(fd: RawFd, req: libc::Ioctl, v: &mut libc::c_int) -> io::Result<()> {
    // SAFETY: the request reads an int through the pointer, which points at one.
    if unsafe { libc::ioctl(fd, req, v as *mut libc::c_int) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A failure configuring the Linux side's addresses or bridge (VPP's NETLINK_ERROR), as
/// opposed to creating the device.
#[derive(Debug)]
pub struct HostSideError(pub io::Error);

impl std::fmt::Display for HostSideError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tap host side: {}", self.0)
    }
}

impl std::error::Error for HostSideError {}

/// Whether a tap creation error came from configuring the Linux side (see [`HostSideError`]).
pub fn is_host_side_error(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|x| x.is::<HostSideError>())
}

/// The Linux side's addresses and bridge, in the namespace we are in (`tap_create_v3`'s
/// `host_ip4_prefix`, `host_ip6_prefix`, `host_bridge`).
fn host_side(sock: RawFd, name: &str, cfg: &TapConfig) -> io::Result<()> {
    if let Some((a, len)) = cfg.host_ip4 {
        if len > 32 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "ip4 prefix length",
            ));
        }
        let sin = |r: &mut IfReq, a: std::net::Ipv4Addr| {
            r.u[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            r.u[4..8].copy_from_slice(&a.octets());
        };
        let mut r = IfReq::new(name)?;
        sin(&mut r, a);
        ioctl_ifreq(sock, libc::SIOCSIFADDR, &mut r)?;
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        let mut r = IfReq::new(name)?;
        sin(&mut r, mask.into());
        ioctl_ifreq(sock, libc::SIOCSIFNETMASK, &mut r)?;
    }
    if let Some((a, len)) = cfg.host_ip6 {
        if len > 128 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "ip6 prefix length",
            ));
        }
        // `struct in6_ifreq` {in6_addr, u32 prefixlen, int ifindex} is 24 bytes: laid out in
        // an IfReq (40), on an AF_INET6 socket of this namespace.
        let s6 = std::net::UdpSocket::bind((std::net::Ipv6Addr::UNSPECIFIED, 0))?;
        let mut r = IfReq {
            name: [0; libc::IFNAMSIZ],
            u: [0; 24],
        };
        r.name.copy_from_slice(&a.octets());
        r.u[..4].copy_from_slice(&u32::from(len).to_ne_bytes());
        r.u[4..8].copy_from_slice(&(if_index(sock, name)? as i32).to_ne_bytes());
        ioctl_ifreq(s6.as_raw_fd(), libc::SIOCSIFADDR, &mut r)?;
    }
    if let Some(br) = &cfg.host_bridge {
        let mut r = IfReq::new(br)?;
        r.set_int(if_index(sock, name)? as i32);
        // SIOCBRADDIF (linux/sockios.h; libc has it for Android only).
        ioctl_ifreq(sock, 0x89a2 as libc::Ioctl, &mut r)?;
    }
    Ok(())
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Configuration and creation

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TapMode {
    /// L3 (`IFF_TUN`): IP packets, no Ethernet header.
    Tun,
    /// L2 (`IFF_TAP`): Ethernet frames.
    Tap,
}

/// What `tap_create_v3` asks for, in driver terms.
#[derive(Clone, Debug)]
pub struct TapConfig {
    /// Linux-side name (`host_if_name`); empty lets the kernel pick `tunN`/`tapN`.
    pub name: String,
    /// `host_namespace`: `pid:N`, a path, or a name under /var/run/netns; None = ours.
    pub netns: Option<String>,
    pub mode: TapMode,
    /// Queue pairs; more than one sets `IFF_MULTI_QUEUE`.
    pub queues: u16,
    /// Linux-side MTU (`host_mtu_set`); None leaves the kernel default.
    pub mtu: Option<u32>,
    /// Linux-side MAC (`host_mac_addr_set`), tap mode only.
    pub mac: Option<[u8; 6]>,
    /// Exchange a virtio_net_hdr with every packet (needed for any offload).
    pub vnet_hdr: bool,
    /// Let the kernel hand us packets with the L4 checksum left to do (TAP_FLAG_CSUM_OFFLOAD).
    pub csum_offload: bool,
    /// TSO4/TSO6 super-frames both ways (TAP_FLAG_GSO); implies checksum offload.
    pub gso: bool,
    /// Keep the device after our fds close (TAP_FLAG_PERSIST).
    pub persist: bool,
    /// Attach to an existing device of that name instead of failing (TAP_FLAG_ATTACH).
    pub attach: bool,
    /// Bring the Linux side up.
    pub up: bool,
    /// Linux-side IPv4 address and prefix length (`host_ip4_prefix`).
    pub host_ip4: Option<(std::net::Ipv4Addr, u8)>,
    /// Linux-side IPv6 address and prefix length (`host_ip6_prefix`).
    pub host_ip6: Option<(std::net::Ipv6Addr, u8)>,
    /// A Linux bridge (in the tap's namespace) to enslave the Linux side to (`host_bridge`).
    pub host_bridge: Option<String>,
}

impl Default for TapConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            netns: None,
            mode: TapMode::Tun,
            queues: 1,
            mtu: None,
            mac: None,
            vnet_hdr: false,
            csum_offload: false,
            gso: false,
            persist: false,
            attach: false,
            up: true,
            host_ip4: None,
            host_ip6: None,
            host_bridge: None,
        }
    }
}

/// What was created.
#[derive(Clone, Debug)]
pub struct TapInfo {
    /// Linux-side name (the kernel's choice if the config left it empty).
    pub name: String,
    pub netns: Option<String>,
    /// ifindex inside its namespace.
    pub ifindex: u32,
    pub mode: TapMode,
    pub queues: u16,
    pub multi_queue: bool,
    pub mtu: u32,
    /// Linux-side MAC (tap mode).
    pub mac: Option<[u8; 6]>,
    pub vnet_hdr: bool,
    /// `TUN_F_*` bits accepted by `TUNSETOFFLOAD`.
    pub offloads: u32,
    pub persist: bool,
    /// False when we attached to a device that already existed.
    pub created: bool,
    /// Per-queue counters, index = queue id.
    pub stats: Vec<Arc<QueueStats>>,
    /// Each queue's fd while the queues live: a single-queue device cannot be attached to a
    /// second time, so [`delete`] clears the persist flag through queue 0's; a live restart
    /// hands them all to the next process ([`TapInfo::queue_fds`], [`Tap::adopt`]).
    fds: Vec<Weak<OwnedFd>>,
}

impl TapInfo {
    /// The queues' fds, in queue order, while every queue still lives (None once one is gone).
    pub fn queue_fds(&self) -> Option<Vec<Arc<OwnedFd>>> {
        self.fds.iter().map(Weak::upgrade).collect()
    }

    /// The description of a device another process created, for [`Tap::adopt`].
    #[allow(clippy::too_many_arguments)]
    pub fn adopted(
        name: String,
        netns: Option<String>,
        ifindex: u32,
        mode: TapMode,
        multi_queue: bool,
        mtu: u32,
        mac: Option<[u8; 6]>,
        vnet_hdr: bool,
        offloads: u32,
        persist: bool,
    ) -> TapInfo {
        TapInfo {
            name,
            netns,
            ifindex,
            mode,
            queues: 0,
            multi_queue,
            mtu,
            mac,
            vnet_hdr,
            offloads,
            persist,
            created: true,
            stats: Vec::new(),
            fds: Vec::new(),
        }
    }
}

/// Most buffers one received frame may span.
const MAX_SEGS: usize = 64;
/// Largest GSO frame the kernel hands a tun/tap (64 KiB IP packet + Ethernet + VLAN).
const MAX_GSO_FRAME: usize = 65535 + 18;

fn tun_flags(cfg: &TapConfig, multi: bool) -> i16 {
    let mut f = libc::IFF_NO_PI;
    f |= match cfg.mode {
        TapMode::Tun => libc::IFF_TUN,
        TapMode::Tap => libc::IFF_TAP,
    };
    if multi {
        f |= libc::IFF_MULTI_QUEUE;
    }
    if cfg.vnet_hdr || cfg.gso || cfg.csum_offload {
        f |= libc::IFF_VNET_HDR;
    }
    f as i16
}

/// Open one queue of `name` (creating the device if needed). Returns the fd and the name the
/// kernel used.
fn open_queue(name: &str, tflags: i16) -> io::Result<(OwnedFd, String)> {
    // SAFETY: open(2) with a static NUL-terminated path; the result is checked.
    let fd = unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("/dev/net/tun: {e}")));
    }
    // SAFETY: fd is fresh and ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut r = IfReq::new(name)?;
    r.set_short(tflags);
    ioctl_ifreq(fd.as_raw_fd(), libc::TUNSETIFF, &mut r)
        .map_err(|e| io::Error::new(e.kind(), format!("TUNSETIFF {name:?}: {e}")))?;
    Ok((fd, r.name()))
}

fn negotiate_offloads(fd: RawFd, cfg: &TapConfig) -> u32 {
    let want = if cfg.gso {
        libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6
    } else if cfg.csum_offload {
        libc::TUN_F_CSUM
    } else {
        0
    };
    // Fall back step by step: an older kernel may refuse some bits.
    for w in [want, want & libc::TUN_F_CSUM, 0] {
        if ioctl_int(fd, libc::TUNSETOFFLOAD, w as libc::c_ulong).is_ok() {
            return w;
        }
    }
    0
}

/// Entry points for tun/tap devices.
pub struct Tap;

impl Tap {
    /// Create (or attach to) the device described by `cfg` and return its queues.
    pub fn create(cfg: &TapConfig, sw_if_index: u32) -> io::Result<Queues<TapInfo>> {
        Self::create_queues(cfg, sw_if_index).map(crate::netdev::boxed)
    }

    /// As [`Tap::create`], with the concrete queue types.
    pub fn create_queues(
        cfg: &TapConfig,
        sw_if_index: u32,
    ) -> io::Result<(Vec<TapRxQueue>, Vec<TapTxQueue>, TapInfo)> {
        if cfg.queues == 0 || cfg.queues > 256 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("tap: bad queue count {}", cfg.queues),
            ));
        }
        netns::run(cfg.netns.as_deref(), || create_here(cfg, sw_if_index))?
    }
}

/// Packets the kernel queues per queue toward us on a device we create (its `txqueuelen`; the
/// kernel's default for tun/tap is 500). What the pod sends waits there until a worker reads
/// it, so it is how long a worker may be kept off its core before the kernel drops: 500 full
/// frames are ~0.6 ms at 10 Gbit/s, too little on shared cores (the soak lost 2.3 % of a UDP
/// stream there). 4096 entries cost 32 KiB of pointers per queue; packets only when backlogged.
pub const HOST_TX_QUEUE_LEN: u32 = 4096;

fn create_here(
    cfg: &TapConfig,
    sw_if_index: u32,
) -> io::Result<(Vec<TapRxQueue>, Vec<TapTxQueue>, TapInfo)> {
    let sock = ctl_socket()?;
    let s = sock.as_raw_fd();
    let exists = !cfg.name.is_empty() && if_index(s, &cfg.name).is_ok();
    if exists && !cfg.attach {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("tap: interface {} already exists", cfg.name),
        ));
    }
    let mut multi = cfg.queues > 1;
    let (first, name) = match open_queue(&cfg.name, tun_flags(cfg, multi)) {
        Ok(v) => v,
        // An existing device keeps its queue mode; one queue works with either.
        Err(e) if exists && cfg.queues == 1 && errno(&e) == libc::EINVAL => {
            multi = true;
            open_queue(&cfg.name, tun_flags(cfg, multi))?
        }
        Err(e) => return Err(e),
    };
    let mut fds = vec![first];
    for _ in 1..cfg.queues {
        fds.push(open_queue(&name, tun_flags(cfg, multi))?.0);
    }
    let f0 = fds[0].as_raw_fd();
    // From here on a failure drops the fds, which removes a device we just created unless
    // persist was already set; clear it on error so nothing is left behind.
    let setup = || -> io::Result<TapInfo> {
        let vnet = cfg.vnet_hdr || cfg.gso || cfg.csum_offload;
        let mut offloads = 0;
        if vnet {
            let mut sz = VNET_HDR_LEN as libc::c_int;
            ioctl_int_ptr(f0, libc::TUNSETVNETHDRSZ, &mut sz)?;
            offloads = negotiate_offloads(f0, cfg);
        }
        ioctl_int(f0, libc::TUNSETPERSIST, cfg.persist as libc::c_ulong)?;
        if let Some(mtu) = cfg.mtu {
            set_mtu(s, &name, mtu)?;
        }
        if !exists {
            set_tx_queue_len(s, &name, HOST_TX_QUEUE_LEN)?;
        }
        let mut mac = None;
        if cfg.mode == TapMode::Tap {
            if let Some(m) = cfg.mac {
                set_mac(s, &name, m)?;
            }
            mac = get_mac(s, &name).ok();
        }
        if cfg.up {
            set_up(s, &name, true)?;
        }
        host_side(s, &name, cfg).map_err(|e| io::Error::new(e.kind(), HostSideError(e)))?;
        Ok(TapInfo {
            name: name.clone(),
            netns: cfg.netns.clone(),
            ifindex: if_index(s, &name)?,
            mode: cfg.mode,
            queues: cfg.queues,
            multi_queue: multi,
            mtu: get_mtu(s, &name)?,
            mac,
            vnet_hdr: vnet,
            offloads,
            persist: cfg.persist,
            created: !exists,
            stats: Vec::new(),
            fds: Vec::new(),
        })
    };
    let info = match setup() {
        Ok(i) => i,
        Err(e) => {
            if !exists {
                let _ = ioctl_int(f0, libc::TUNSETPERSIST, 0);
            }
            return Err(e);
        }
    };
    Ok(queues_of(fds, info, sw_if_index))
}

/// The queues over `fds` (one per queue, in order) of the device `info` describes; `info`
/// gets their counters and weak handles.
fn queues_of(
    fds: Vec<OwnedFd>,
    mut info: TapInfo,
    sw_if_index: u32,
) -> (Vec<TapRxQueue>, Vec<TapTxQueue>, TapInfo) {
    let gso = info.offloads & (libc::TUN_F_TSO4 | libc::TUN_F_TSO6) != 0;
    let max_frame = if gso {
        MAX_GSO_FRAME
    } else {
        // Room for the largest MTU-sized frame plus Ethernet + one VLAN tag.
        info.mtu.max(1500) as usize + 18
    };
    info.queues = fds.len() as u16;
    info.stats = (0..fds.len())
        .map(|_| Arc::new(QueueStats::default()))
        .collect();
    info.fds.clear();
    let mut rx = Vec::new();
    let mut tx = Vec::new();
    for (q, fd) in fds.into_iter().enumerate() {
        let fd = Arc::new(fd);
        info.fds.push(Arc::downgrade(&fd));
        rx.push(TapRxQueue {
            fd: fd.clone(),
            sw_if_index,
            queue_id: q as u16,
            mode: info.mode,
            vnet: info.vnet_hdr,
            max_frame,
            segs: 0,
            stash: Vec::new(),
            stash_cap: 0,
            pool: None,
            stats: info.stats[q].clone(),
            error_logged: false,
        });
        tx.push(TapTxQueue {
            fd,
            mode: info.mode,
            vnet: info.vnet_hdr,
            stats: info.stats[q].clone(),
            error_logged: false,
        });
    }
    (rx, tx, info)
}

impl Tap {
    /// Queues over the fds of a device another rvpp created and handed over (a live restart):
    /// nothing is opened or configured, the kernel keeps the device and its queued packets.
    pub fn adopt(
        fds: Vec<OwnedFd>,
        info: TapInfo,
        sw_if_index: u32,
    ) -> io::Result<Queues<TapInfo>> {
        if fds.is_empty() || fds.len() > 256 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("tap {}: {} queue fds handed over", info.name, fds.len()),
            ));
        }
        Ok(crate::netdev::boxed(queues_of(fds, info, sw_if_index)))
    }
}

/// Make a tap go away: clear `TUNSETPERSIST` on a persistent device (attaching to it for a
/// moment) so it is removed when the last queue fd closes. A non-persistent device needs
/// nothing: dropping its queues closes the fds. A device that is already gone is fine.
pub fn delete(info: &TapInfo) -> io::Result<()> {
    if !info.persist {
        return Ok(());
    }
    if let Some(fd) = info.fds.first().and_then(Weak::upgrade) {
        return ioctl_int(fd.as_raw_fd(), libc::TUNSETPERSIST, 0);
    }
    remove_persistent(&info.name, info.netns.as_deref(), info.mode, info.vnet_hdr)
}

/// Clear the persist flag of device `name` in `netns` (see [`delete`]).
pub fn remove_persistent(
    name: &str,
    netns: Option<&str>,
    mode: TapMode,
    vnet_hdr: bool,
) -> io::Result<()> {
    netns::run(netns, || {
        let sock = ctl_socket()?;
        if if_index(sock.as_raw_fd(), name).is_err() {
            return Ok(());
        }
        let cfg = TapConfig {
            mode,
            vnet_hdr,
            ..Default::default()
        };
        // EBUSY: a single-queue device whose last fd is still being closed (e.g. held for a
        // moment by a child between fork and exec); it frees up shortly.
        let mut tries = 0;
        let (fd, _) = loop {
            let r = match open_queue(name, tun_flags(&cfg, false)) {
                Err(e) if errno(&e) == libc::EINVAL => open_queue(name, tun_flags(&cfg, true)),
                r => r,
            };
            match r {
                Err(e) if errno(&e) == libc::EBUSY && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                r => break r?,
            }
        };
        ioctl_int(fd.as_raw_fd(), libc::TUNSETPERSIST, 0)
    })?
}

// ---------------------------------------------------------------------------------------------
// Queues

/// Receive side of one tun/tap queue.
pub struct TapRxQueue {
    fd: Arc<OwnedFd>,
    sw_if_index: u32,
    queue_id: u16,
    mode: TapMode,
    vnet: bool,
    max_frame: usize,
    /// Buffers a frame may span, from max_frame and the pool's data size (set on first rx).
    segs: usize,
    /// Buffers allocated ahead: a read needs room for the largest frame before we know its
    /// size. Unused ones stay here for the next read.
    stash: Vec<u32>,
    /// How many buffers the stash is topped up to.
    stash_cap: usize,
    /// To give the stash back when the queue is dropped.
    pool: Option<Arc<BufferPool>>,
    stats: Arc<QueueStats>,
    error_logged: bool,
}

impl TapRxQueue {
    pub fn stats(&self) -> &Arc<QueueStats> {
        &self.stats
    }

    fn refill(&mut self, bufs: &mut Buffers) {
        let have = self.stash.len();
        self.stash.resize(self.stash_cap, 0);
        let got = bufs.alloc(&mut self.stash[have..]);
        self.stash.truncate(have + got);
    }
}

impl Drop for TapRxQueue {
    fn drop(&mut self) {
        if let Some(p) = &self.pool {
            if !self.stash.is_empty() {
                p.local().free(&self.stash);
            }
        }
    }
}

impl RxQueue for TapRxQueue {
    fn input_node(&self) -> &'static str {
        match self.mode {
            TapMode::Tun => TUN_INPUT_NODE,
            TapMode::Tap => TAP_INPUT_NODE,
        }
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

    fn rx(&mut self, bufs: &mut Buffers, out: &mut [u32], nexts: &mut [u16]) -> usize {
        let ds = bufs.pool().data_size();
        if self.pool.is_none() {
            self.pool = Some(bufs.pool().clone());
            self.segs = self.max_frame.div_ceil(ds).clamp(1, MAX_SEGS);
            self.stash_cap = (2 * self.segs).max(32);
            self.stash.reserve_exact(self.stash_cap);
        }
        let segs = self.segs;
        let vlen = if self.vnet { VNET_HDR_LEN } else { 0 };
        let limit = out.len().min(nexts.len());
        let (mut n, mut bytes, mut trunc, mut errs, mut nobuf) = (0usize, 0u64, 0u64, 0u64, 0u64);
        while n < limit {
            if self.stash.len() < segs {
                self.refill(bufs);
                if self.stash.len() < segs {
                    nobuf += 1;
                    break;
                }
            }
            let mut hdr = [0u8; VNET_HDR_LEN];
            let mut iov = [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; MAX_SEGS + 1];
            let mut k = 0;
            if self.vnet {
                iov[0] = libc::iovec {
                    iov_base: hdr.as_mut_ptr().cast(),
                    iov_len: VNET_HDR_LEN,
                };
                k = 1;
            }
            let top = self.stash.len();
            for j in 0..segs {
                let mut b = bufs.get(self.stash[top - 1 - j]);
                let t = b.tail_room_mut();
                iov[k] = libc::iovec {
                    iov_base: t.as_mut_ptr().cast(),
                    iov_len: t.len(),
                };
                k += 1;
            }
            let room: usize = iov[..k].iter().map(|v| v.iov_len).sum();
            // SAFETY: every iovec points into memory we own for its full length: the local
            // header array, or the tail room of stash buffers (owned by this queue until they
            // are handed out). The kernel writes at most iov_len bytes into each.
            let r = unsafe { libc::readv(self.fd.as_raw_fd(), iov.as_ptr(), k as libc::c_int) };
            if r < 0 {
                let e = io::Error::last_os_error();
                match errno(&e) {
                    libc::EAGAIN => {}
                    libc::EINTR => continue,
                    _ => {
                        errs += 1;
                        if !self.error_logged {
                            self.error_logged = true;
                            log::warn!("tap rx queue {}: read: {e}", self.queue_id);
                        }
                    }
                }
                break;
            }
            let r = r as usize;
            // tun reports the full frame length even when it did not fit.
            if r > room || r <= vlen {
                trunc += 1;
                continue;
            }
            let plen = r - vlen;
            let used = plen.div_ceil(ds);
            let head = self.stash[top - 1];
            let mut left = plen;
            for j in 0..used {
                let bi = self.stash[top - 1 - j];
                let next = (j + 1 < used).then(|| self.stash[top - 2 - j]);
                let m = bufs.meta(bi);
                m.current_length = left.min(ds) as u16;
                left -= m.current_length as usize;
                if let Some(nb) = next {
                    m.flags |= flags::NEXT_PRESENT;
                    m.next_buffer = nb;
                }
            }
            self.stash.truncate(top - used);
            let b = bufs.get(head);
            let first = b.data().first().copied().unwrap_or(0);
            let m = b.meta;
            m.rx_sw_if_index = self.sw_if_index;
            if used > 1 {
                m.total_length_not_including_first_buffer = (plen - ds) as u32;
            }
            let (next, l3) = match self.mode {
                TapMode::Tap => (rx_next::ETHERNET, 14),
                TapMode::Tun => match first >> 4 {
                    4 => (rx_next::IP4, 0),
                    6 => (rx_next::IP6, 0),
                    _ => (rx_next::DROP, 0),
                },
            };
            if self.vnet {
                VnetHdr::parse(&hdr).apply_rx(m, l3);
            }
            out[n] = head;
            nexts[n] = next;
            n += 1;
            bytes += plen as u64;
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

/// Transmit side of one tun/tap queue: one `writev` per packet.
pub struct TapTxQueue {
    fd: Arc<OwnedFd>,
    mode: TapMode,
    vnet: bool,
    stats: Arc<QueueStats>,
    error_logged: bool,
}

impl TapTxQueue {
    pub fn stats(&self) -> &Arc<QueueStats> {
        &self.stats
    }
}

impl TxQueue for TapTxQueue {
    fn tx_node(&self) -> &'static str {
        TX_NODE
    }

    fn tx(&mut self, bufs: &mut Buffers, pkts: &[u32]) -> usize {
        let (mut sent, mut bytes, mut errs, mut full) = (0u64, 0u64, 0u64, 0u64);
        let mut done = 0;
        'pkts: for &head in pkts {
            let mut hdr = if self.vnet {
                let b = bufs.get(head);
                VnetHdr::for_tx(b.meta, b.data(), self.mode == TapMode::Tap).to_bytes()
            } else {
                [0u8; VNET_HDR_LEN]
            };
            let mut iov = [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; MAX_SEGS + 1];
            let mut k = 0;
            if self.vnet {
                iov[0] = libc::iovec {
                    iov_base: hdr.as_mut_ptr().cast(),
                    iov_len: VNET_HDR_LEN,
                };
                k = 1;
            }
            let mut bi = head;
            let mut len = 0usize;
            loop {
                if k == iov.len() {
                    // A chain longer than any frame we could have built: drop it.
                    errs += 1;
                    done += 1;
                    continue 'pkts;
                }
                let b = bufs.get(bi);
                let d = b.data();
                iov[k] = libc::iovec {
                    iov_base: d.as_ptr() as *mut libc::c_void,
                    iov_len: d.len(),
                };
                k += 1;
                len += d.len();
                if b.meta.flags & flags::NEXT_PRESENT == 0 {
                    break;
                }
                bi = b.meta.next_buffer;
            }
            let r = loop {
                // SAFETY: the iovecs point at the local header and at packet bytes of buffers
                // we own until they are freed below; writev only reads them.
                let r =
                    unsafe { libc::writev(self.fd.as_raw_fd(), iov.as_ptr(), k as libc::c_int) };
                if r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                break r;
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                let en = errno(&e);
                if en == libc::EAGAIN || en == libc::ENOBUFS {
                    full += 1;
                    break;
                }
                errs += 1;
                if !self.error_logged {
                    self.error_logged = true;
                    log::warn!("tap tx: write: {e}");
                }
            } else {
                sent += 1;
                bytes += len as u64;
            }
            done += 1;
        }
        bufs.free(&pkts[..done]);
        let s = &self.stats;
        QueueStats::add(&s.tx_packets, sent);
        QueueStats::add(&s.tx_bytes, bytes);
        QueueStats::add(&s.tx_errors, errs);
        QueueStats::add(&s.tx_full, full);
        done
    }
}
