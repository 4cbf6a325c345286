//! Thin, checked wrappers over the libc calls memif needs: seqpacket
//! sockets with SCM_RIGHTS, memfd, eventfd and mmap.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::time::Duration;

use crate::proto::MSG_SIZE;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Where a control socket lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocketName {
    /// A filesystem path.
    Path(String),
    /// A Linux abstract socket name (no leading NUL; it is added).
    Abstract(String),
}

/// Build a `sockaddr_un` and its exact length. Abstract names use the
/// exact length (no NUL padding), as VPP, libmemif and gomemif do.
fn sockaddr(name: &SocketName) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let (bytes, skip) = match name {
        SocketName::Path(p) => (p.as_bytes(), 0usize),
        SocketName::Abstract(a) => (a.as_bytes(), 1usize),
    };
    // Leave room for the terminating NUL of a path.
    if bytes.is_empty() || bytes.len() + skip >= sa.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad unix socket name",
        ));
    }
    for (i, b) in bytes.iter().enumerate() {
        sa.sun_path[i + skip] = *b as libc::c_char;
    }
    let base = std::mem::size_of::<libc::sa_family_t>();
    let len = match name {
        SocketName::Path(_) => base + bytes.len() + 1,
        SocketName::Abstract(_) => base + 1 + bytes.len(),
    };
    Ok((sa, len as libc::socklen_t))
}

/// Create an AF_UNIX SOCK_SEQPACKET socket, optionally inside another
/// network namespace (abstract socket names are per netns).
pub fn seqpacket_socket(netns: Option<&str>) -> io::Result<OwnedFd> {
    match netns {
        None => raw_socket(),
        Some(path) => {
            let path = path.to_string();
            // setns() affects only the calling thread; do it on a throwaway
            // thread so the caller's thread never changes namespace.
            std::thread::Builder::new()
                .name("memif-netns".into())
                .spawn(move || -> io::Result<OwnedFd> {
                    let ns = std::fs::File::open(&path)?;
                    // SAFETY: plain syscall on a valid fd we own.
                    cvt(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) })?;
                    raw_socket()
                })?
                .join()
                .map_err(|_| io::Error::other("netns helper thread panicked"))?
        }
    }
}

fn raw_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the returned fd is checked and then owned.
    let fd =
        cvt(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: fd was just returned by socket() and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Bind and listen.
pub fn listen(fd: &OwnedFd, name: &SocketName) -> io::Result<()> {
    let (sa, len) = sockaddr(name)?;
    // SAFETY: sa is a valid sockaddr_un of length len.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sa as *const _ as *const libc::sockaddr,
            len,
        )
    })?;
    // SAFETY: plain syscall.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), 8) })?;
    set_nonblocking(fd.as_raw_fd(), true)
}

/// Connect a socket without blocking (a full listen backlog gives
/// `WouldBlock` instead of a hang); the socket is blocking afterwards.
pub fn connect(fd: &OwnedFd, name: &SocketName) -> io::Result<()> {
    let (sa, len) = sockaddr(name)?;
    set_nonblocking(fd.as_raw_fd(), true)?;
    // SAFETY: sa is a valid sockaddr_un of length len.
    cvt(unsafe {
        libc::connect(
            fd.as_raw_fd(),
            &sa as *const _ as *const libc::sockaddr,
            len,
        )
    })?;
    set_nonblocking(fd.as_raw_fd(), false)
}

/// Accept one pending connection, if any.
pub fn accept(fd: &OwnedFd) -> io::Result<Option<OwnedFd>> {
    // SAFETY: null address pointers are allowed by accept4.
    let r = unsafe {
        libc::accept4(
            fd.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::WouldBlock {
            Ok(None)
        } else {
            Err(e)
        };
    }
    // SAFETY: r is a fresh fd from accept4.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(r) }))
}

fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: fcntl on a valid fd.
    let fl = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    let fl = if on {
        fl | libc::O_NONBLOCK
    } else {
        fl & !libc::O_NONBLOCK
    };
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, fl) })?;
    Ok(())
}

/// Bound blocking sends so a peer that never reads cannot hang us.
pub fn set_send_timeout(fd: &OwnedFd, t: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: t.as_secs() as libc::time_t,
        tv_usec: t.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: tv is a valid timeval for SO_SNDTIMEO.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            &tv as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// Send one control message, with at most one fd attached.
pub fn send_msg(sock: &OwnedFd, msg: &[u8; MSG_SIZE], fd: Option<RawFd>) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: msg.as_ptr() as *mut libc::c_void,
        iov_len: MSG_SIZE,
    };
    // u64 array keeps the control buffer aligned for cmsghdr.
    let mut ctl = [0u64; 4];
    // SAFETY: msghdr is plain old data; zero is a valid initial state.
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    if let Some(fd) = fd {
        // SAFETY: CMSG_SPACE is a pure computation.
        let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
        debug_assert!(space <= std::mem::size_of_val(&ctl));
        mh.msg_control = ctl.as_mut_ptr() as *mut libc::c_void;
        mh.msg_controllen = space as _;
        // SAFETY: msg_control points at `space` writable, aligned bytes, so
        // CMSG_FIRSTHDR is non-null and CMSG_DATA has room for one int.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&mh);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut RawFd, fd);
        }
    }
    // SAFETY: mh references iov/ctl which outlive the call.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &mh, libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != MSG_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short control message send",
        ));
    }
    Ok(())
}

/// Result of a non-blocking receive.
pub enum Recv {
    /// Nothing pending.
    Empty,
    /// Peer closed the connection.
    Closed,
    /// A datagram of `len` bytes (may be != 128; the caller checks) and
    /// the first fd passed with it. Any extra fds are closed.
    Msg {
        len: usize,
        fd: Option<OwnedFd>,
        truncated: bool,
    },
}

/// Receive one datagram without blocking.
pub fn recv_msg(sock: &OwnedFd, buf: &mut [u8; MSG_SIZE]) -> io::Result<Recv> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: MSG_SIZE,
    };
    // Room for a few fds and credentials; extra fds are closed below.
    let mut ctl = [0u64; 16];
    // SAFETY: msghdr is plain old data.
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.as_mut_ptr() as *mut libc::c_void;
    mh.msg_controllen = std::mem::size_of_val(&ctl) as _;
    // SAFETY: mh references live buffers; MSG_CMSG_CLOEXEC keeps fds private.
    let n = unsafe {
        libc::recvmsg(
            sock.as_raw_fd(),
            &mut mh,
            libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::WouldBlock {
            Ok(Recv::Empty)
        } else {
            Err(e)
        };
    }
    let mut first: Option<OwnedFd> = None;
    // SAFETY: the kernel filled msg_control/msg_controllen; the CMSG_*
    // macros walk it within those bounds. Each fd found is a fresh fd
    // installed in our table for us, so taking ownership is sound.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&mh);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c) as *const RawFd;
                let hdr = libc::CMSG_LEN(0) as usize;
                let count =
                    ((*c).cmsg_len as usize).saturating_sub(hdr) / std::mem::size_of::<RawFd>();
                for i in 0..count {
                    let fd = OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i)));
                    if first.is_none() {
                        first = Some(fd);
                    } // else: dropped, i.e. closed
                }
            }
            c = libc::CMSG_NXTHDR(&mh, c);
        }
    }
    if n == 0 {
        return Ok(Recv::Closed);
    }
    let truncated = mh.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0;
    Ok(Recv::Msg {
        len: n as usize,
        fd: first,
        truncated,
    })
}

/// Create a non-blocking eventfd.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; result checked.
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
    // SAFETY: fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Signal an eventfd; errors (e.g. counter overflow) are harmless here.
pub fn eventfd_kick(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64.
    unsafe { libc::write(fd, &one as *const u64 as *const libc::c_void, 8) };
}

/// Drain an eventfd; returns true if it was signalled.
pub fn eventfd_drain(fd: RawFd) -> bool {
    let mut v: u64 = 0;
    // SAFETY: reads 8 bytes into a live u64; fd is non-blocking.
    unsafe { libc::read(fd, &mut v as *mut u64 as *mut libc::c_void, 8) == 8 }
}

/// Create a memfd of `size` bytes, trying hugepages first. Returns the
/// fd and the (possibly rounded up) size.
pub fn memfd(name: &str, size: usize) -> io::Result<(OwnedFd, usize)> {
    let cname = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "nul in name"))?;
    const HUGE: usize = 2 << 20;
    // SAFETY: cname is a valid C string.
    let h = unsafe {
        libc::memfd_create(
            cname.as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING | libc::MFD_HUGETLB,
        )
    };
    if h >= 0 {
        // SAFETY: fresh fd.
        let fd = unsafe { OwnedFd::from_raw_fd(h) };
        let hsize = size.div_ceil(HUGE) * HUGE;
        // ftruncate succeeds even when no hugepages are free; the failure
        // would only show as SIGBUS on first touch. Probe by mapping and
        // populating; fall back to normal pages if that fails.
        // SAFETY: plain syscall on an owned fd.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), hsize as libc::off_t) } == 0 {
            if let Ok(m) = Mmap::map_flags(fd.as_raw_fd(), hsize, libc::MAP_POPULATE) {
                drop(m);
                seal_shrink(&fd);
                return Ok((fd, hsize));
            }
        }
    }
    // SAFETY: cname is a valid C string.
    let r = cvt(unsafe {
        libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
    })?;
    // SAFETY: fresh fd.
    let fd = unsafe { OwnedFd::from_raw_fd(r) };
    // SAFETY: plain syscall on an owned fd.
    cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), size as libc::off_t) })?;
    seal_shrink(&fd);
    Ok((fd, size))
}

/// The peer maps our memfd and may ftruncate it; forbid shrinking so it can
/// never make our own mapping SIGBUS. Best effort (hugetlbfs memfds accept
/// seals since Linux 4.16).
fn seal_shrink(fd: &OwnedFd) {
    // SAFETY: F_ADD_SEALS takes an int argument and no pointers; fd is open.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, libc::F_SEAL_SHRINK) };
}

/// Size of the file behind `fd` (0 for things that are not files).
pub fn fd_size(fd: RawFd) -> io::Result<u64> {
    // SAFETY: stat is plain old data; fstat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is a valid out-pointer.
    cvt(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st.st_size.max(0) as u64)
}

/// A shared read/write mapping, unmapped on drop.
pub struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory; access is synchronized by the
// ring protocol (atomics on head/tail), not by this handle.
unsafe impl Send for Mmap {}
// SAFETY: the handle exposes only the base pointer and length; every
// access to the memory goes through raw pointers/atomics at call sites.
unsafe impl Sync for Mmap {}

impl Mmap {
    /// Map `len` bytes of `fd` shared, read/write.
    pub fn map(fd: RawFd, len: usize) -> io::Result<Mmap> {
        Self::map_flags(fd, len, 0)
    }

    fn map_flags(fd: RawFd, len: usize, extra: libc::c_int) -> io::Result<Mmap> {
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "zero-length mapping",
            ));
        }
        // SAFETY: a fresh mapping at a kernel-chosen address cannot alias
        // any Rust object; failure is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | extra,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mmap {
            ptr: NonNull::new(p as *mut u8)
                .ok_or_else(|| io::Error::other("mmap returned null"))?,
            len,
        })
    }

    /// Base address.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: ptr/len came from a successful mmap and are unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.len) };
    }
}
