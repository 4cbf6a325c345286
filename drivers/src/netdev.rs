//! Pieces every Linux netdev driver (tap, af_packet, af_xdp) shares: per-queue counters, the
//! queue tuple a driver's `create` returns, and `struct ifreq` ioctls on a control socket.

use rvpp_dataplane::device::{RxQueue, TxQueue};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

/// Per-queue counters, shared between the worker that owns the queue and whoever reports.
#[derive(Debug, Default)]
pub struct QueueStats {
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    /// Packets left in the kernel (tap) or dropped (af_packet) because the pool was empty.
    pub rx_no_buffers: AtomicU64,
    /// Frames too long for the buffers/ring slot or shorter than their headers: dropped.
    pub rx_truncated: AtomicU64,
    /// Failed reads (device gone, socket error).
    pub rx_errors: AtomicU64,
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    /// Failed writes or kicks (device gone), and packets that could not be framed.
    pub tx_errors: AtomicU64,
    /// Times the device/ring was full and packets were handed back to the caller.
    pub tx_full: AtomicU64,
    /// af_packet: frames the kernel dropped before our rx ring (no room in it, or an offload
    /// the vnet header cannot express), from `PACKET_STATISTICS` `tp_drops`.
    pub rx_kernel_drops: AtomicU64,
    /// af_packet: UDP GSO frames sent, each several of gso-segment's tunnel segments.
    pub tx_udp_gso_frames: AtomicU64,
}

impl QueueStats {
    #[inline]
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        if n != 0 {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// `struct ifreq`: 16 bytes of name, then a 24-byte union.
#[repr(C, align(8))]
pub(crate) struct IfReq {
    pub name: [u8; libc::IFNAMSIZ],
    pub u: [u8; 24],
}

impl IfReq {
    pub(crate) fn new(name: &str) -> io::Result<Self> {
        let b = name.as_bytes();
        if b.len() >= libc::IFNAMSIZ || b.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad interface name {name:?}"),
            ));
        }
        let mut r = Self {
            name: [0; libc::IFNAMSIZ],
            u: [0; 24],
        };
        r.name[..b.len()].copy_from_slice(b);
        Ok(r)
    }
    pub(crate) fn name(&self) -> String {
        let n = self
            .name
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(self.name.len());
        String::from_utf8_lossy(&self.name[..n]).into_owned()
    }
    fn int(&self) -> i32 {
        i32::from_ne_bytes([self.u[0], self.u[1], self.u[2], self.u[3]])
    }
    pub(crate) fn set_int(&mut self, v: i32) {
        self.u[..4].copy_from_slice(&v.to_ne_bytes());
    }
    fn short(&self) -> i16 {
        i16::from_ne_bytes([self.u[0], self.u[1]])
    }
    pub(crate) fn set_short(&mut self, v: i16) {
        self.u[..2].copy_from_slice(&v.to_ne_bytes());
    }
}

pub(crate) fn ioctl_ifreq(fd: RawFd, req: libc::Ioctl, r: &mut IfReq) -> io::Result<()> {
    // SAFETY: every request we pass reads/writes at most a `struct ifreq`, which IfReq is.
    if unsafe { libc::ioctl(fd, req, r as *mut IfReq) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A socket for interface ioctls; it acts in the namespace it was created in.
pub(crate) fn ctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked and owned.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is fresh and ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The ifindex of `name` in the socket's namespace (ENODEV if absent).
pub(crate) fn if_index(sock: RawFd, name: &str) -> io::Result<u32> {
    let mut r = IfReq::new(name)?;
    ioctl_ifreq(sock, libc::SIOCGIFINDEX, &mut r)?;
    Ok(r.int() as u32)
}

pub(crate) fn set_mtu(sock: RawFd, name: &str, mtu: u32) -> io::Result<()> {
    let mut r = IfReq::new(name)?;
    r.set_int(mtu as i32);
    ioctl_ifreq(sock, libc::SIOCSIFMTU, &mut r)
}

pub(crate) fn set_tx_queue_len(sock: RawFd, name: &str, len: u32) -> io::Result<()> {
    let mut r = IfReq::new(name)?;
    r.set_int(len as i32);
    ioctl_ifreq(sock, libc::SIOCSIFTXQLEN, &mut r)
}

pub(crate) fn get_mtu(sock: RawFd, name: &str) -> io::Result<u32> {
    let mut r = IfReq::new(name)?;
    ioctl_ifreq(sock, libc::SIOCGIFMTU, &mut r)?;
    Ok(r.int() as u32)
}

pub(crate) fn set_mac(sock: RawFd, name: &str, mac: [u8; 6]) -> io::Result<()> {
    let mut r = IfReq::new(name)?;
    r.u[..2].copy_from_slice(&libc::ARPHRD_ETHER.to_ne_bytes());
    r.u[2..8].copy_from_slice(&mac);
    ioctl_ifreq(sock, libc::SIOCSIFHWADDR, &mut r)
}

pub(crate) fn get_mac(sock: RawFd, name: &str) -> io::Result<[u8; 6]> {
    let mut r = IfReq::new(name)?;
    ioctl_ifreq(sock, libc::SIOCGIFHWADDR, &mut r)?;
    let mut m = [0u8; 6];
    m.copy_from_slice(&r.u[2..8]);
    Ok(m)
}

/// Set or clear `IFF_UP` (keeping the other flags).
pub(crate) fn set_up(sock: RawFd, name: &str, up: bool) -> io::Result<()> {
    let mut r = IfReq::new(name)?;
    ioctl_ifreq(sock, libc::SIOCGIFFLAGS, &mut r)?;
    let f = r.short();
    let nf = if up {
        f | libc::IFF_UP as i16
    } else {
        f & !(libc::IFF_UP as i16)
    };
    if nf != f {
        r.set_short(nf);
        ioctl_ifreq(sock, libc::SIOCSIFFLAGS, &mut r)?;
    }
    Ok(())
}

/// What a driver's `create` returns: rx queues, tx queues (index = queue id), and details.
pub type Queues<I> = (Vec<Box<dyn RxQueue>>, Vec<Box<dyn TxQueue>>, I);

/// A driver's concrete queues as the boxed [`Queues`] the daemon places on workers.
pub fn boxed<R: RxQueue + 'static, T: TxQueue + 'static, I>(
    (rx, tx, info): (Vec<R>, Vec<T>, I),
) -> Queues<I> {
    let rx = rx
        .into_iter()
        .map(|q| Box::new(q) as Box<dyn RxQueue>)
        .collect();
    let tx = tx
        .into_iter()
        .map(|q| Box::new(q) as Box<dyn TxQueue>)
        .collect();
    (rx, tx, info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifreq_rejects_long_names() {
        assert!(IfReq::new("0123456789abcdef").is_err());
        assert_eq!(IfReq::new("eth0").unwrap().name(), "eth0");
    }
}
