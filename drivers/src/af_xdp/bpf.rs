//! rvpp's XDP program and what it takes to attach and remove it, with raw `bpf(2)` and
//! rtnetlink calls (no libbpf object files, no bpffs).
//!
//! The program is six instructions: redirect every frame into the XSKMAP slot of the queue it
//! arrived on, or pass it to the kernel stack when no socket sits in that slot:
//!
//! ```text
//! r2 = *(u32 *)(r1 + 16)          ; ctx->rx_queue_index
//! r1 = map_fd ll                  ; the XSKMAP
//! r3 = XDP_PASS                   ; action when the slot is empty
//! call bpf_redirect_map
//! exit
//! ```
//!
//! It is attached with a bpf_link (`BPF_LINK_CREATE`), so the kernel detaches it as soon as
//! the link's fd is closed, including when rvpp is killed with SIGKILL. Only on kernels
//! without XDP links (before 5.9) is it attached through netlink, where it would outlive a
//! crash; [`remove_stale`] takes such a left-over rvpp program off before a new attach.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The program's name as the kernel reports it (`bpftool prog`, `ip link`).
pub const PROG_NAME: &str = "rvpp_xsk";
const MAP_NAME: &str = "rvpp_xsks";

// linux/bpf.h
const BPF_MAP_CREATE: u32 = 0;
const BPF_MAP_UPDATE_ELEM: u32 = 2;
const BPF_MAP_DELETE_ELEM: u32 = 3;
const BPF_PROG_LOAD: u32 = 5;
const BPF_PROG_GET_FD_BY_ID: u32 = 13;
const BPF_OBJ_GET_INFO_BY_FD: u32 = 15;
const BPF_LINK_CREATE: u32 = 28;
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;

/// `XDP_FLAGS_*` (linux/if_link.h).
pub const XDP_FLAGS_UPDATE_IF_NOEXIST: u32 = 1;
pub const XDP_FLAGS_SKB_MODE: u32 = 2;
pub const XDP_FLAGS_DRV_MODE: u32 = 4;

// rtnetlink
const IFLA_XDP: u16 = 43;
const IFLA_XDP_FD: u16 = 1;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_FLAGS: u16 = 3;
const IFLA_XDP_PROG_ID: u16 = 4;
const XDP_ATTACHED_DRV: u8 = 1;
const XDP_ATTACHED_SKB: u8 = 2;
const XDP_ATTACHED_HW: u8 = 3;
const XDP_ATTACHED_MULTI: u8 = 4;
const IFLA_XDP_DRV_PROG_ID: u16 = 5;
const IFLA_XDP_SKB_PROG_ID: u16 = 6;
const NLA_F_NESTED: u16 = 1 << 15;

/// `union bpf_attr`, as bytes: every command fills the fields it uses at their offsets.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Self {
        Self([0; 128])
    }
    fn u32(&mut self, off: usize, v: u32) -> &mut Self {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(&mut self, off: usize, v: u64) -> &mut Self {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn name(&mut self, off: usize, n: &str) -> &mut Self {
        let b = n.as_bytes();
        let l = b.len().min(15);
        self.0[off..off + l].copy_from_slice(&b[..l]);
        self
    }
}

fn bpf(cmd: u32, attr: &mut Attr) -> io::Result<i64> {
    // SAFETY: attr is a 128-byte, 8-aligned buffer laid out as the command's part of
    // `union bpf_attr`; pointers stored in it point at memory that outlives the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr.0.as_mut_ptr(),
            attr.0.len() as libc::c_long,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r)
}

fn bpf_fd(cmd: u32, attr: &mut Attr) -> io::Result<OwnedFd> {
    let fd = bpf(cmd, attr)? as RawFd;
    // SAFETY: these commands return a new fd that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The loaded program and its XSKMAP.
pub struct Program {
    pub prog: OwnedFd,
    pub map: OwnedFd,
    pub id: u32,
}

/// One eBPF instruction.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0] = code;
    b[1] = (src << 4) | (dst & 0xf);
    b[2..4].copy_from_slice(&off.to_le_bytes());
    b[4..8].copy_from_slice(&imm.to_le_bytes());
    b
}

/// Create an XSKMAP with `slots` entries and load the redirect program against it.
pub fn load(slots: u32) -> io::Result<Program> {
    let mut a = Attr::new();
    a.u32(0, BPF_MAP_TYPE_XSKMAP)
        .u32(4, 4)
        .u32(8, 4)
        .u32(12, slots.max(1))
        .name(28, MAP_NAME);
    let map = bpf_fd(BPF_MAP_CREATE, &mut a)
        .map_err(|e| io::Error::new(e.kind(), format!("bpf map create (XSKMAP): {e}")))?;
    let code: Vec<u8> = [
        insn(0x61, 2, 1, 16, 0),              // ldxw r2, [r1 + 16]
        insn(0x18, 1, 1, 0, map.as_raw_fd()), // ld_imm64 r1, map (BPF_PSEUDO_MAP_FD)
        insn(0, 0, 0, 0, 0),                  //   (second half)
        insn(0xb7, 3, 0, 0, 2),               // mov64 r3, XDP_PASS
        insn(0x85, 0, 0, 0, 51),              // call bpf_redirect_map
        insn(0x95, 0, 0, 0, 0),               // exit
    ]
    .concat();
    let license = c"GPL";
    let mut log = vec![0u8; 4096];
    let mut a = Attr::new();
    a.u32(0, BPF_PROG_TYPE_XDP)
        .u32(4, (code.len() / 8) as u32)
        .u64(8, code.as_ptr() as u64)
        .u64(16, license.as_ptr() as u64)
        .u32(24, 1)
        .u32(28, log.len() as u32)
        .u64(32, log.as_mut_ptr() as u64)
        .name(48, PROG_NAME)
        .u32(68, BPF_XDP);
    let prog = match bpf_fd(BPF_PROG_LOAD, &mut a) {
        Ok(p) => p,
        Err(e) => {
            let n = log.iter().position(|&c| c == 0).unwrap_or(log.len());
            return Err(io::Error::new(
                e.kind(),
                format!(
                    "bpf prog load: {e}: {}",
                    String::from_utf8_lossy(&log[..n]).trim()
                ),
            ));
        }
    };
    let id = prog_info(prog.as_raw_fd())?.0;
    Ok(Program { prog, map, id })
}

/// (id, name) of a loaded program.
fn prog_info(fd: RawFd) -> io::Result<(u32, String)> {
    let mut info = [0u8; 256];
    let mut a = Attr::new();
    a.u32(0, fd as u32)
        .u32(4, info.len() as u32)
        .u64(8, info.as_mut_ptr() as u64);
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut a)?;
    let id = u32::from_ne_bytes([info[4], info[5], info[6], info[7]]);
    // struct bpf_prog_info: name[16] at offset 64.
    let nb = &info[64..80];
    let n = nb.iter().position(|&c| c == 0).unwrap_or(16);
    Ok((id, String::from_utf8_lossy(&nb[..n]).into_owned()))
}

/// Name of the program with this id.
pub fn prog_name(id: u32) -> io::Result<String> {
    let mut a = Attr::new();
    a.u32(0, id);
    let fd = bpf_fd(BPF_PROG_GET_FD_BY_ID, &mut a)?;
    Ok(prog_info(fd.as_raw_fd())?.1)
}

/// Put socket `xsk` in slot `queue`.
pub fn map_set(map: RawFd, queue: u32, xsk: RawFd) -> io::Result<()> {
    let key = queue;
    let val = xsk as u32;
    let mut a = Attr::new();
    a.u32(0, map as u32)
        .u64(8, &key as *const u32 as u64)
        .u64(16, &val as *const u32 as u64)
        .u64(24, 0);
    bpf(BPF_MAP_UPDATE_ELEM, &mut a)
        .map(|_| ())
        .map_err(|e| io::Error::new(e.kind(), format!("XSKMAP update slot {queue}: {e}")))
}

/// Empty slot `queue` (the kernel also does this when the socket closes).
pub fn map_clear(map: RawFd, queue: u32) {
    let key = queue;
    let mut a = Attr::new();
    a.u32(0, map as u32).u64(8, &key as *const u32 as u64);
    let _ = bpf(BPF_MAP_DELETE_ELEM, &mut a);
}

/// Attach with a bpf_link in the calling thread's namespace. `flags` picks the mode
/// (`XDP_FLAGS_DRV_MODE` or `XDP_FLAGS_SKB_MODE`). The program stays attached while the
/// returned fd is open.
pub fn link_create(prog: RawFd, ifindex: u32, flags: u32) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.u32(0, prog as u32)
        .u32(4, ifindex)
        .u32(8, BPF_XDP)
        .u32(12, flags);
    bpf_fd(BPF_LINK_CREATE, &mut a)
}

// ---------------------------------------------------------------------------------------------
// rtnetlink: what XDP program an interface has, and netlink attach/detach.

/// What `RTM_GETLINK` says about an interface's XDP attachment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpState {
    /// `XDP_ATTACHED_*`: 0 none, 1 driver, 2 generic (skb), 3 offload, 4 several.
    pub attached: u8,
    pub prog_id: u32,
    pub drv_prog_id: u32,
    pub skb_prog_id: u32,
}

impl XdpState {
    /// (program id, mode flag) pairs that are attached.
    pub fn programs(&self) -> Vec<(u32, u32)> {
        let mut v = Vec::new();
        match self.attached {
            XDP_ATTACHED_DRV => v.push((self.prog_id, XDP_FLAGS_DRV_MODE)),
            XDP_ATTACHED_SKB => v.push((self.prog_id, XDP_FLAGS_SKB_MODE)),
            XDP_ATTACHED_HW => v.push((self.prog_id, 8)),
            XDP_ATTACHED_MULTI => {
                if self.drv_prog_id != 0 {
                    v.push((self.drv_prog_id, XDP_FLAGS_DRV_MODE));
                }
                if self.skb_prog_id != 0 {
                    v.push((self.skb_prog_id, XDP_FLAGS_SKB_MODE));
                }
            }
            _ => {}
        }
        v
    }
}

fn nl_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2), checked; the fd is owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh fd, ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let tv = libc::timeval {
        tv_sec: 2,
        tv_usec: 0,
    };
    // SAFETY: SO_RCVTIMEO takes a timeval, which tv is.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    Ok(fd)
}

fn push_attr(m: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    m.extend_from_slice(&(len as u16).to_ne_bytes());
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(payload);
    while !m.len().is_multiple_of(4) {
        m.push(0);
    }
}

/// An rtnetlink request for `ifindex`: nlmsghdr + ifinfomsg + `attrs`.
fn link_msg(ty: u16, flags: u16, ifindex: u32, attrs: &[u8]) -> Vec<u8> {
    let mut m = vec![0u8; 16];
    // struct ifinfomsg: family, pad, type, index, flags, change.
    let mut ifi = [0u8; 16];
    ifi[4..8].copy_from_slice(&(ifindex as i32).to_ne_bytes());
    m.extend_from_slice(&ifi);
    m.extend_from_slice(attrs);
    let len = m.len() as u32;
    m[0..4].copy_from_slice(&len.to_ne_bytes());
    m[4..6].copy_from_slice(&ty.to_ne_bytes());
    m[6..8].copy_from_slice(&(flags | libc::NLM_F_REQUEST as u16).to_ne_bytes());
    m[8..12].copy_from_slice(&1u32.to_ne_bytes());
    m
}

/// Send one request and return the first reply message's (type, payload).
fn nl_call(req: &[u8]) -> io::Result<(u16, Vec<u8>)> {
    let s = nl_socket()?;
    // SAFETY: sending our own buffer on our socket; the kernel is the default destination.
    let r = unsafe { libc::send(s.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 65536];
    // SAFETY: receiving into our own buffer of that length.
    let n = unsafe { libc::recv(s.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 16 {
        return Err(if n < 0 {
            io::Error::last_os_error()
        } else {
            io::Error::other("short netlink reply")
        });
    }
    buf.truncate(n as usize);
    let len = (u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize).min(buf.len());
    let ty = u16::from_ne_bytes([buf[4], buf[5]]);
    if ty == libc::NLMSG_ERROR as u16 {
        if len < 20 {
            return Err(io::Error::other("short netlink error"));
        }
        let err = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
        if err != 0 {
            return Err(io::Error::from_raw_os_error(-err));
        }
        return Ok((ty, Vec::new()));
    }
    Ok((ty, buf[16..len].to_vec()))
}

/// Iterate over netlink attributes in `b`: (type without flags, payload).
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            return None;
        }
        let p = &b[4..len];
        let adv = len.div_ceil(4) * 4;
        b = &b[adv.min(b.len())..];
        Some((ty, p))
    })
}

fn u32_of(p: &[u8]) -> u32 {
    p.get(..4)
        .map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

/// The interface's XDP attachment, in the calling thread's namespace.
pub fn xdp_state(ifindex: u32) -> io::Result<XdpState> {
    let req = link_msg(libc::RTM_GETLINK, 0, ifindex, &[]);
    let (ty, payload) = nl_call(&req)?;
    if ty != libc::RTM_NEWLINK || payload.len() < 16 {
        return Err(io::Error::other("unexpected RTM_GETLINK reply"));
    }
    let mut st = XdpState::default();
    for (t, p) in attrs(&payload[16..]) {
        if t != IFLA_XDP {
            continue;
        }
        for (x, v) in attrs(p) {
            match x {
                IFLA_XDP_ATTACHED => st.attached = v.first().copied().unwrap_or(0),
                IFLA_XDP_PROG_ID => st.prog_id = u32_of(v),
                IFLA_XDP_DRV_PROG_ID => st.drv_prog_id = u32_of(v),
                IFLA_XDP_SKB_PROG_ID => st.skb_prog_id = u32_of(v),
                _ => {}
            }
        }
    }
    Ok(st)
}

/// Attach (`prog` = Some) or detach (None) through netlink (`IFLA_XDP`), in mode `flags`.
pub fn netlink_set(ifindex: u32, prog: Option<RawFd>, flags: u32) -> io::Result<()> {
    let mut inner = Vec::new();
    push_attr(&mut inner, IFLA_XDP_FD, &prog.unwrap_or(-1).to_ne_bytes());
    push_attr(&mut inner, IFLA_XDP_FLAGS, &flags.to_ne_bytes());
    let mut a = Vec::new();
    push_attr(&mut a, IFLA_XDP | NLA_F_NESTED, &inner);
    let req = link_msg(libc::RTM_SETLINK, libc::NLM_F_ACK as u16, ifindex, &a);
    nl_call(&req).map(|_| ())
}

/// Detach every rvpp XDP program (by name) left on the interface by a run that could not
/// remove it. Programs of anyone else are left alone. Returns the ids removed.
pub fn remove_stale(ifindex: u32) -> io::Result<Vec<u32>> {
    let st = xdp_state(ifindex)?;
    let mut gone = Vec::new();
    for (id, mode) in st.programs() {
        if prog_name(id).ok().as_deref() != Some(PROG_NAME) {
            continue;
        }
        // A program attached through a live bpf_link refuses netlink detach (EBUSY): it
        // belongs to a running rvpp, which is not stale.
        match netlink_set(ifindex, None, mode) {
            Ok(()) => gone.push(id),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_encode() {
        assert_eq!(insn(0x61, 2, 1, 16, 0), [0x61, 0x12, 16, 0, 0, 0, 0, 0]);
        assert_eq!(insn(0x85, 0, 0, 0, 51), [0x85, 0, 0, 0, 51, 0, 0, 0]);
    }

    #[test]
    fn attributes_parse_and_stop_on_garbage() {
        let mut m = Vec::new();
        push_attr(&mut m, 4, &7u32.to_ne_bytes());
        push_attr(&mut m, 2, &[1]);
        let v: Vec<_> = attrs(&m).collect();
        assert_eq!(v.len(), 2);
        assert_eq!((v[0].0, u32_of(v[0].1)), (4, 7));
        assert_eq!(v[1], (2, &[1u8][..]));
        assert_eq!(attrs(&[0xff, 0xff, 0, 0, 1]).count(), 0);
        assert_eq!(attrs(&[2, 0, 0, 0]).count(), 0);
    }

    #[test]
    fn xdp_state_lists_programs() {
        let s = XdpState {
            attached: XDP_ATTACHED_MULTI,
            drv_prog_id: 5,
            skb_prog_id: 6,
            ..Default::default()
        };
        assert_eq!(
            s.programs(),
            vec![(5, XDP_FLAGS_DRV_MODE), (6, XDP_FLAGS_SKB_MODE)]
        );
        assert!(XdpState::default().programs().is_empty());
    }
}
