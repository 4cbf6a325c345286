//! AF_XDP uplinks (VPP's `af_xdp_create`), with xsk-rs over libxdp.
//!
//! * rvpp's own XDP program ([`bpf`]) redirects every frame to the AF_XDP socket bound to the
//!   queue it arrived on. It is attached with a bpf_link, native (driver) mode first and
//!   generic (skb) mode when the driver has no XDP support; the link dies with its fd, so
//!   stopping rvpp, or killing it, leaves nothing on the interface. A program from an older
//!   run attached through netlink is found by name and removed at create.
//! * One socket per queue, each with its own UMEM. xsk-rs allocates the UMEM itself (it takes
//!   no outside memory and no unaligned-chunk flag), and the buffer pool's stride
//!   (128 + 256 + 2048 rounded to 64 = 2432 bytes) is not the power of two an aligned UMEM
//!   needs, so frames are copied between UMEM frames and pool buffers, one `memcpy` of the
//!   packet each way. Where the NIC supports it the socket is bound zero-copy (the kernel then
//!   skips its own copy); on veth and in generic mode it is bound in copy mode.
//! * A queue's UMEM is split in two: the rx half circulates through the fill and rx rings and
//!   belongs to the worker polling that rx queue; the tx half circulates through the tx and
//!   completion rings and belongs to the worker sending on it. Each ring has one producer and
//!   one consumer, so the two workers never share a frame or a ring.
//! * `need_wakeup` is used: tx is kicked with `sendto` only when the kernel asks for it (copy
//!   mode always does), the fill ring is kicked with `poll` likewise.

pub mod bpf;

use crate::netdev::{ctl_socket, get_mac, get_mtu, if_index, QueueStats};
use crate::netns;
use rvpp_dataplane::graph::DeviceNodes;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;

/// The graph nodes of AF_XDP interfaces.
pub const INPUT_NODE: &str = "af-xdp-input";
pub const TX_NODE: &str = "af-xdp-tx";
pub const NODES: DeviceNodes = DeviceNodes::new(INPUT_NODE, TX_NODE);

/// How the sockets bind (`mode` in VPP's CLI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    /// Zero-copy when the driver supports it, copy otherwise.
    Auto,
    Copy,
    ZeroCopy,
}

impl XdpMode {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "auto" => Some(Self::Auto),
            "copy" => Some(Self::Copy),
            "zero-copy" | "zerocopy" => Some(Self::ZeroCopy),
            _ => None,
        }
    }
}

/// Where the XDP program runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpAttach {
    /// Native when the driver has XDP, generic otherwise.
    Auto,
    Native,
    Generic,
}

#[derive(Clone, Debug)]
pub struct AfXdpConfig {
    pub host_if_name: String,
    /// `pid:N`, a path or a name under /var/run/netns; None = ours.
    pub netns: Option<String>,
    /// Queues 0..queues of the interface, one socket each.
    pub queues: u16,
    pub mode: XdpMode,
    pub attach: XdpAttach,
    /// Ring sizes (power of two); each UMEM has twice this many frames.
    pub ring_size: u32,
}

impl Default for AfXdpConfig {
    fn default() -> Self {
        Self {
            host_if_name: String::new(),
            netns: None,
            queues: 1,
            mode: XdpMode::Auto,
            attach: XdpAttach::Auto,
            ring_size: 2048,
        }
    }
}

#[derive(Clone, Debug)]
pub struct AfXdpInfo {
    pub host_if_name: String,
    pub netns: Option<String>,
    pub ifindex: u32,
    pub mac: [u8; 6],
    pub mtu: u32,
    pub queues: u16,
    pub zero_copy: bool,
    /// The program runs in the driver (false: generic/skb mode).
    pub native: bool,
    pub prog_id: u32,
    /// Stale rvpp programs removed before attaching.
    pub removed_stale: Vec<u32>,
    pub stats: Vec<Arc<QueueStats>>,
}

/// UMEM frame size: the smallest the kernel allows; 2048 - 256 bytes of XDP headroom leaves
/// 1792 bytes for a frame, enough for a 1500-byte MTU plus Ethernet and VLAN headers.
pub const FRAME_SIZE: u32 = 2048;
/// Largest frame a UMEM frame carries.
pub const MAX_FRAME: usize = (FRAME_SIZE - 256) as usize;

/// Names, MAC and MTU of the interface, in the calling thread's namespace.
fn probe(name: &str) -> io::Result<(u32, [u8; 6], u32)> {
    let ctl = ctl_socket()?;
    let ifindex = if_index(ctl.as_raw_fd(), name)
        .map_err(|e| io::Error::new(e.kind(), format!("af_xdp: {name}: {e}")))?;
    Ok((
        ifindex,
        get_mac(ctl.as_raw_fd(), name)?,
        get_mtu(ctl.as_raw_fd(), name)?,
    ))
}

/// Remove rvpp XDP programs a crashed run left on `host_if_name` (netlink-attached ones; a
/// link-attached program goes away with its process). Returns their ids.
pub fn cleanup_stale(host_if_name: &str, ns: Option<&str>) -> io::Result<Vec<u32>> {
    netns::run(ns, || {
        let (ifindex, _, _) = probe(host_if_name)?;
        bpf::remove_stale(ifindex)
    })?
}

/// The XDP program state of an interface: (attached program ids with their names).
pub fn attached_programs(host_if_name: &str, ns: Option<&str>) -> io::Result<Vec<(u32, String)>> {
    netns::run(ns, || {
        let (ifindex, _, _) = probe(host_if_name)?;
        let st = bpf::xdp_state(ifindex)?;
        Ok(st
            .programs()
            .into_iter()
            .map(|(id, _)| (id, bpf::prog_name(id).unwrap_or_default()))
            .collect())
    })?
}

/// Attach rvpp's program through netlink, the way a run without bpf_link support would, and
/// leave it there: what a crash of such a run leaves behind (for tests of the cleanup).
pub fn attach_legacy_for_test(host_if_name: &str, ns: Option<&str>) -> io::Result<u32> {
    netns::run(ns, || {
        let (ifindex, _, _) = probe(host_if_name)?;
        let p = bpf::load(1)?;
        bpf::netlink_set(
            ifindex,
            Some(p.prog.as_raw_fd()),
            bpf::XDP_FLAGS_SKB_MODE | bpf::XDP_FLAGS_UPDATE_IF_NOEXIST,
        )?;
        Ok(p.id)
    })?
}

#[cfg(feature = "af_xdp")]
mod xsk;
#[cfg(feature = "af_xdp")]
pub use xsk::{AfXdp, AfXdpRxQueue, AfXdpTxQueue};

/// Stand-in when rvpp is built without the `af_xdp` feature.
#[cfg(not(feature = "af_xdp"))]
pub struct AfXdp;

#[cfg(not(feature = "af_xdp"))]
impl AfXdp {
    pub fn create(
        _cfg: &AfXdpConfig,
        _sw_if_index: u32,
    ) -> io::Result<crate::netdev::Queues<AfXdpInfo>> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "af_xdp: rvpp was built without the af_xdp feature",
        ))
    }
}

/// What the monitor needs to know about a host interface rvpp drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostLink {
    pub ifindex: u32,
    /// `IFF_UP`.
    pub admin_up: bool,
    /// `IFF_RUNNING` (carrier).
    pub running: bool,
}

/// The state of `name` in namespace `ns`: Ok(None) when the interface is gone, Err when the
/// namespace cannot be entered (deleted).
pub fn host_link(name: &str, ns: Option<&str>) -> io::Result<Option<HostLink>> {
    netns::run(ns, || {
        let ctl = ctl_socket()?;
        let ifindex = match if_index(ctl.as_raw_fd(), name) {
            Ok(i) => i,
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut r = crate::netdev::IfReq::new(name)?;
        crate::netdev::ioctl_ifreq(ctl.as_raw_fd(), libc::SIOCGIFFLAGS, &mut r)?;
        let f = i16::from_ne_bytes([r.u[0], r.u[1]]) as i32;
        Ok(Some(HostLink {
            ifindex,
            admin_up: f & libc::IFF_UP != 0,
            running: f & libc::IFF_RUNNING != 0,
        }))
    })?
}
