//! Shared memory and fd passing for VPP's stats segment: a memfd mapped into this process
//! (read-write for the daemon, read-only for a client), and the SOCK_SEQPACKET socket that
//! hands its fd to clients with SCM_RIGHTS.
//!
//! Every access to the mapping goes through bounds- and alignment-checked atomic loads and
//! stores, so the safe API cannot touch memory outside the mapping; a peer process may write
//! the same memory concurrently (that is the point), which atomics tolerate.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicU8, Ordering};

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A shared mapping of a file descriptor (normally a memfd).
pub struct SharedMem {
    fd: OwnedFd,
    ptr: NonNull<u8>,
    len: usize,
    writable: bool,
}

// SAFETY: the mapping is owned by this value and only accessed through atomics.
unsafe impl Send for SharedMem {}
// SAFETY: as above; concurrent atomic accesses from several threads are sound.
unsafe impl Sync for SharedMem {}

impl SharedMem {
    /// A new zero-filled memfd of `len` bytes (rounded up to 4 KiB), mapped read-write.
    pub fn create(name: &str, len: usize) -> io::Result<Self> {
        let len = len.max(4096).div_ceil(4096) * 4096;
        let cname = std::ffi::CString::new(name)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in memfd name"))?;
        // SAFETY: memfd_create takes a NUL-terminated name and flags; the result is checked.
        let raw = cvt(unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) })?;
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: ftruncate on a descriptor we own.
        cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) })?;
        Self::map(fd, len, true)
    }

    /// Map all of `fd` read-only (a client's view).
    pub fn map_readonly(fd: OwnedFd) -> io::Result<Self> {
        let len = std::fs::File::from(fd.try_clone()?).metadata()?.len() as usize;
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "empty segment"));
        }
        Self::map(fd, len, false)
    }

    /// Map all of `fd` read-write (another process's [`create`](Self::create)d memory).
    pub fn map_shared(fd: OwnedFd) -> io::Result<Self> {
        let len = std::fs::File::from(fd.try_clone()?).metadata()?.len() as usize;
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "empty segment"));
        }
        Self::map(fd, len, true)
    }

    /// The u32 at byte `off` of a writable mapping, for compare-and-swap; None when out of
    /// range, misaligned or read-only.
    pub fn atomic_u32(&self, off: usize) -> Option<&AtomicU32> {
        if !self.writable
            || !off.is_multiple_of(4)
            || off.checked_add(4).is_none_or(|e| e > self.len)
        {
            return None;
        }
        // SAFETY: off + 4 <= len and off is 4-aligned (the mapping is page-aligned), so this
        // is an aligned u32 inside the mapping, which lives as long as the returned borrow.
        Some(unsafe { &*(self.ptr.as_ptr().add(off) as *const AtomicU32) })
    }

    fn map(fd: OwnedFd, len: usize, writable: bool) -> io::Result<Self> {
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: a fresh shared mapping of `len` bytes of a descriptor we own; checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p as *mut u8).ok_or_else(|| io::Error::other("mmap gave NULL"))?;
        Ok(Self {
            fd,
            ptr,
            len,
            writable,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// This process's virtual address of the mapping (VPP publishes it as `base`).
    pub fn addr(&self) -> u64 {
        self.ptr.as_ptr() as u64
    }
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn at(&self, off: usize, size: usize) -> *mut u8 {
        assert!(
            off.checked_add(size).is_some_and(|e| e <= self.len) && off & (size - 1) == 0,
            "shared memory access {off}+{size} outside 0..{} or misaligned",
            self.len
        );
        // SAFETY: off + size <= len, so the result stays inside the mapping.
        unsafe { self.ptr.as_ptr().add(off) }
    }

    fn check_writable(&self) {
        assert!(self.writable, "write to a read-only shared mapping");
    }

    // Loads. A client's mapping is PROT_READ, and std's rules for atomics on read-only memory
    // allow only Relaxed loads of at most the target's size limit (8 bytes on x86_64 and
    // aarch64); an Acquire load there is undefined behaviour. So every load is Relaxed, and
    // the acquire ordering the segment protocol needs comes from a fence after it (a relaxed
    // load followed by an Acquire fence synchronises with a Release store it reads from, the
    // same as an Acquire load). The references are made with a cast, not `from_ptr`, whose
    // contract asks for memory valid for writes, which a read-only mapping is not.

    pub fn load_u64(&self, off: usize) -> u64 {
        // SAFETY: `at` checked bounds and 8-byte alignment (the base is page-aligned), the
        // mapping outlives the reference, and the only access through it is a Relaxed 8-byte
        // load, which std allows on read-only memory on x86_64/aarch64.
        let v = unsafe { &*(self.at(off, 8) as *const AtomicU64) }.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        v
    }
    pub fn load_u32(&self, off: usize) -> u32 {
        // SAFETY: as in load_u64, with 4 bytes and 4-byte alignment.
        let v = unsafe { &*(self.at(off, 4) as *const AtomicU32) }.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        v
    }
    pub fn load_u8(&self, off: usize) -> u8 {
        // SAFETY: as in load_u64, with 1 byte (always aligned).
        unsafe { &*(self.at(off, 1) as *const AtomicU8) }.load(Ordering::Relaxed)
    }
    /// Copy `out.len()` bytes from `off`.
    pub fn read_bytes(&self, off: usize, out: &mut [u8]) {
        for (i, b) in out.iter_mut().enumerate() {
            *b = self.load_u8(off + i);
        }
    }

    /// Store with release ordering (readers that see it see everything written before).
    pub fn store_u64(&self, off: usize, v: u64) {
        self.check_writable();
        // SAFETY: `at` checked bounds and alignment; the mapping is writable (checked above),
        // so the pointer is valid for reads and writes as `from_ptr` requires.
        unsafe { AtomicU64::from_ptr(self.at(off, 8) as *mut u64) }.store(v, Ordering::Release)
    }
    pub fn store_u32(&self, off: usize, v: u32) {
        self.check_writable();
        // SAFETY: `at` checked bounds and alignment; the mapping is writable.
        unsafe { AtomicU32::from_ptr(self.at(off, 4) as *mut u32) }.store(v, Ordering::Release)
    }
    pub fn store_u8(&self, off: usize, v: u8) {
        self.check_writable();
        // SAFETY: `at` checked bounds; the mapping is writable.
        unsafe { AtomicU8::from_ptr(self.at(off, 1)) }.store(v, Ordering::Relaxed)
    }
    pub fn write_bytes(&self, off: usize, data: &[u8]) {
        for (i, b) in data.iter().enumerate() {
            self.store_u8(off + i, *b);
        }
    }
    /// Zero `len` bytes from `off`.
    pub fn zero(&self, off: usize, len: usize) {
        let mut o = off;
        let end = off + len;
        while o < end && o & 7 != 0 {
            self.store_u8(o, 0);
            o += 1;
        }
        while o + 8 <= end {
            self.store_u64(o, 0);
            o += 8;
        }
        while o < end {
            self.store_u8(o, 0);
            o += 1;
        }
    }
}

impl Drop for SharedMem {
    fn drop(&mut self) {
        // SAFETY: unmapping the region we mapped; no references into it outlive `self`.
        unsafe { libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.len) };
    }
}

fn sockaddr(path: &Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain old data; all-zero is valid.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() || bytes.len() >= sa.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad unix socket path {}", path.display()),
        ));
    }
    for (i, b) in bytes.iter().enumerate() {
        sa.sun_path[i] = *b as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    Ok((sa, len as libc::socklen_t))
}

fn seqpacket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked.
    let raw =
        cvt(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Wait up to `timeout_ms` for `fd` to become readable.
fn poll_in(fd: RawFd, timeout_ms: i32) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e);
    }
    Ok(n > 0)
}

/// A listening AF_UNIX SOCK_SEQPACKET socket bound to a path.
pub struct SeqpacketListener {
    fd: OwnedFd,
}

impl SeqpacketListener {
    /// Bind `path` and listen. As VPP's `clib_socket_init`: a stale socket there (nobody
    /// listening) is replaced; a live listener or a non-socket file is an error.
    pub fn bind(path: &Path) -> io::Result<Self> {
        let (sa, len) = sockaddr(path)?;
        let fd = seqpacket()?;
        if let Ok(m) = std::fs::symlink_metadata(path) {
            use std::os::unix::fs::FileTypeExt;
            if !m.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("file {} already exists", path.display()),
                ));
            }
            let probe = seqpacket()?;
            // SAFETY: `sa` is a valid sockaddr_un of length `len`.
            let r = unsafe {
                libc::connect(
                    probe.as_raw_fd(),
                    &sa as *const libc::sockaddr_un as *const libc::sockaddr,
                    len,
                )
            };
            let refused =
                r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ECONNREFUSED);
            if !refused {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("active listener on {}", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        // SAFETY: `sa` is a valid sockaddr_un of length `len`.
        cvt(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sa as *const libc::sockaddr_un as *const libc::sockaddr,
                len,
            )
        })?;
        // SAFETY: listen on our socket.
        cvt(unsafe { libc::listen(fd.as_raw_fd(), 64) })?;
        Ok(Self { fd })
    }

    /// Accept one connection, waiting at most `timeout_ms`; `None` on timeout.
    pub fn accept_timeout(&self, timeout_ms: i32) -> io::Result<Option<OwnedFd>> {
        if !poll_in(self.fd.as_raw_fd(), timeout_ms)? {
            return Ok(None);
        }
        // SAFETY: accept4 with no peer address wanted; the result is checked.
        let raw = unsafe {
            libc::accept4(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            )
        };
        if raw < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) | Some(libc::ECONNABORTED) => Ok(None),
                _ => Err(e),
            };
        }
        // SAFETY: a fresh descriptor we own.
        Ok(Some(unsafe { OwnedFd::from_raw_fd(raw) }))
    }
}

/// Send `fd` over `sock` with SCM_RIGHTS in a message with no payload (as VPP does).
pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    let raw: libc::c_int = fd.as_raw_fd();
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
    let mut ctl = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    };
    // SAFETY: msghdr is plain old data; all-zero is valid.
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.as_mut_ptr() as *mut libc::c_void;
    mh.msg_controllen = space as _;
    // SAFETY: msg_control points at `space` zeroed, 8-aligned bytes, enough for one header
    // carrying one int; CMSG_FIRSTHDR/CMSG_DATA stay inside it.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&mh);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut libc::c_int, raw);
    }
    // SAFETY: `mh` and everything it points at live across the call.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &mh, libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Client side: connect to a SOCK_SEQPACKET socket at `path` and receive one fd
/// (VPP's stats socket sends the segment's memfd and closes).
pub fn recv_fd_from(path: &Path, timeout_ms: i32) -> io::Result<OwnedFd> {
    let (sa, len) = sockaddr(path)?;
    let sock = seqpacket()?;
    // SAFETY: `sa` is a valid sockaddr_un of length `len`.
    cvt(unsafe {
        libc::connect(
            sock.as_raw_fd(),
            &sa as *const libc::sockaddr_un as *const libc::sockaddr,
            len,
        )
    })?;
    if !poll_in(sock.as_raw_fd(), timeout_ms)? {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "no fd received"));
    }
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(4 * std::mem::size_of::<libc::c_int>() as u32) } as usize;
    let mut ctl = vec![0u64; space.div_ceil(8)];
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr() as *mut libc::c_void,
        iov_len: 1,
    };
    // SAFETY: msghdr is plain old data; all-zero is valid.
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.as_mut_ptr() as *mut libc::c_void;
    mh.msg_controllen = space as _;
    // SAFETY: `mh` points at live buffers of the stated sizes.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut mh, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut got: Option<OwnedFd> = None;
    // SAFETY: walking the control messages the kernel wrote into `ctl`, within
    // msg_controllen; CMSG_NXTHDR returns NULL at the end.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&mh);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c) as *const libc::c_int;
                let hdr = libc::CMSG_LEN(0) as usize;
                let n_fds = ((*c).cmsg_len as usize).saturating_sub(hdr)
                    / std::mem::size_of::<libc::c_int>();
                for i in 0..n_fds {
                    let f = std::ptr::read_unaligned(data.add(i));
                    let owned = OwnedFd::from_raw_fd(f);
                    if got.is_none() {
                        got = Some(owned);
                    }
                }
            }
            c = libc::CMSG_NXTHDR(&mh, c);
        }
    }
    got.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no SCM_RIGHTS fd in message"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memfd_roundtrip_over_seqpacket() {
        let m = SharedMem::create("shm-test", 10000).unwrap();
        assert_eq!(m.len(), 12288);
        m.store_u64(8, 0x1122_3344_5566_7788);
        m.write_bytes(100, b"hello");
        // Unique per run, not just per pid: another test process (or a helper's) may hold a
        // socket of the same pid-derived name.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path =
            std::env::temp_dir().join(format!("rvpp-shm-{}-{nanos}.sock", std::process::id()));
        let l = SeqpacketListener::bind(&path).unwrap();
        let p2 = path.clone();
        let client = std::thread::spawn(move || recv_fd_from(&p2, 5000));
        let conn = loop {
            if let Some(c) = l.accept_timeout(100).unwrap() {
                break c;
            }
        };
        send_fd(conn.as_fd(), m.fd()).unwrap();
        drop(conn);
        let fd = client.join().unwrap().unwrap();
        let r = SharedMem::map_readonly(fd).unwrap();
        assert_eq!(r.len(), m.len());
        assert_eq!(r.load_u64(8), 0x1122_3344_5566_7788);
        let mut b = [0u8; 5];
        r.read_bytes(100, &mut b);
        assert_eq!(&b, b"hello");
        m.store_u64(8, 7);
        assert_eq!(r.load_u64(8), 7);
        // A live listener is not stolen; a stale socket file is replaced.
        let e = SeqpacketListener::bind(&path).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        drop(l);
        // A child another test forks holds a copy of the listener until its exec (CLOEXEC),
        // so the socket can look live for a moment after the drop.
        let mut again = SeqpacketListener::bind(&path);
        for _ in 0..200 {
            match &again {
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    again = SeqpacketListener::bind(&path);
                }
                _ => break,
            }
        }
        let again = again.unwrap();
        drop(again);
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, b"x").unwrap();
        let e = SeqpacketListener::bind(&path).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    #[should_panic]
    fn out_of_bounds_panics() {
        let m = SharedMem::create("shm-test", 4096).unwrap();
        m.store_u64(4096, 1);
    }
}
