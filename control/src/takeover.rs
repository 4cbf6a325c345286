//! Live restart: `rvpp -c startup.conf --take-over <socket>` takes over from the running rvpp
//! with the pods' devices kept, so an upgrade loses no pod traffic (restarting VPP tears down
//! every tap).
//!
//! The running rvpp listens on a handover socket ([`socket_path`]: the API socket's path, else
//! the CLI socket's, with `.takeover` appended; mode 0600, and a peer of another uid than
//! this process's, by SO_PEERCRED, is refused: the snapshot carries WireGuard's keys). The
//! exchange, one SOCK_SEQPACKET message each:
//! 1. new -> old: [`HELLO`].
//! 2. old: closes the configuration gate and takes the forwarding lock (every API request, CLI
//!    command and change of its own waits from here on, so none is acknowledged and then
//!    lost) and captures the configuration
//!    (`service::snapshot`). It holds an object the snapshot cannot carry: `R<reason>`, the
//!    lock is let go and the old process goes on as before. Otherwise `S<json>` pieces,
//!    `F` messages with the tap/tun queue fds, the af_packet rx socket fds, each memif server's
//!    listening socket, control connection, region memfds, ring eventfds and ring-lock page
//!    (its control thread stops here) and the API and CLI listening sockets (SCM_RIGHTS),
//!    then `E`.
//! 3. new: starts its workers, rebuilds the tables with the same sw_if_index values, asks
//!    with `W` for WireGuard's send counters when it carries WireGuard (old: keeps the next
//!    1024 of each keypair for its own last moments and answers `W<json>` with the rest), and
//!    with `I` for IPsec's sequence numbers when it carries IPsec (old: keeps the next 512 of
//!    each SA and answers `I<json>` with the rest and its replay windows as they are), and
//!    places the adopted queues on its workers, which poll them at once beside the old
//!    ones (a packet is read by one of the two; the kernel queues hold what neither has read
//!    yet), then sends `READY`. An af_packet's rx queues wait: two readers of one mmap'd ring
//!    would both read its frames. A memif's rings are polled at once by both processes, one
//!    at a time by the ring locks (`rvpp_drivers::memif`): its tx ring must take what either
//!    reads from the taps for it.
//! 4. old: stops its workers, sends `B` and exits without closing the sockets it handed over
//!    (the files stay, the new process accepts on the same sockets: no connection is refused).
//!    Before stopping its workers it stops its af_packet rx queues between two calls and sends
//!    `Q`: the new process polls those rings from there, where the old one left them.
//! 5. new: once the old process is gone, owns its memif devices (they say goodbye to the
//!    peer when deleted from now on), then serves the API and CLI on the adopted listeners and
//!    opens its own handover socket.
//!
//! The new process failing anywhere before `READY` (its connection closes) leaves the old one
//! running as it was: it still holds every device and socket, and drives its memif control
//! connections again.
//!
//! An upgrade in place under a parent that waits on rvpp's pid (calico's vpp-manager cleans up
//! when its child exits): SIGUSR2 makes rvpp start `<argv0> <its arguments> --take-over
//! <socket>` as its own child ([`start_upgrade`]); once that child has taken over, the old
//! process execs itself as `rvpp --stand-in <pid>` ([`stand_in`]): about 6 MiB resident that keep
//! the pid, forward SIGINT/SIGTERM/SIGHUP/SIGUSR2 to the new rvpp and exit with its status.

use crate::daemon::Dataplane;
use crate::service::snapshot;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};
use serde_json::Value;
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The new process's first message.
pub const HELLO: &[u8] = b"rvpp-takeover-1";
const READY: &[u8] = b"READY";
/// The new process about to poll the devices asks for WireGuard's send counters; the answer is
/// `W` and their JSON.
const WG_COUNTERS: &[u8] = b"W";
/// The same for IPsec's sequence numbers and replay windows: answered with `I` and their JSON.
const IPSEC_SEQS: &[u8] = b"I";
/// Largest message: one JSON piece.
const PIECE: usize = 60 * 1024;
/// Fds per `F` message (the kernel's SCM_MAX_FD is 253).
const FDS_PER_MSG: usize = 200;
/// How long either side waits for the other's next message.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Test hook: the new process waits this many milliseconds after rebuilding the configuration,
/// before it asks for WireGuard's counters and polls the devices (a slow restore), the old one
/// forwarding alone meanwhile.
pub const HOLD_BEFORE_DEVICES_ENV: &str = "RVPP_TEST_TAKEOVER_HOLD_BEFORE_DEVICES_MS";
/// The pid of the child [`start_upgrade`] started, while it runs (0: none).
static UPGRADE_CHILD: AtomicI32 = AtomicI32::new(0);

/// Test hook: the new process aborts after adopting everything, before `READY`.
pub const ABORT_BEFORE_READY_ENV: &str = "RVPP_TEST_TAKEOVER_ABORT_BEFORE_READY";
/// Test hook: the new process waits this many milliseconds before `READY`, both processes
/// forwarding meanwhile (what a slow restore or a busy machine does), so that a test sees the
/// two share the devices for long.
pub const HOLD_BEFORE_READY_ENV: &str = "RVPP_TEST_TAKEOVER_HOLD_BEFORE_READY_MS";

/// Where a running rvpp with this configuration listens for a take-over.
pub fn socket_path(cfg: &crate::startup_conf::StartupConfig) -> Option<PathBuf> {
    let base = cfg
        .api_socket()
        .map(Path::to_path_buf)
        .or_else(|| cfg.cli_socket())?;
    let mut s = base.into_os_string();
    s.push(".takeover");
    Some(PathBuf::from(s))
}

fn io_err(what: &str, e: impl std::fmt::Display) -> String {
    format!("take-over: {what}: {e}")
}

fn seqpacket() -> std::io::Result<OwnedFd> {
    Ok(rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

fn send(fd: BorrowedFd<'_>, msg: &[u8], fds: &[BorrowedFd<'_>]) -> std::io::Result<()> {
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    let mut cmsg = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !cmsg.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(std::io::Error::other("ancillary buffer too small"));
    }
    let n = rustix::net::sendmsg(fd, &[IoSlice::new(msg)], &mut cmsg, SendFlags::NOSIGNAL)?;
    if n != msg.len() {
        return Err(std::io::Error::other("short send"));
    }
    Ok(())
}

/// One message and the fds that came with it. An empty message is the peer gone.
fn recv(fd: BorrowedFd<'_>, fds: &mut Vec<OwnedFd>) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; PIECE + 16];
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(FDS_PER_MSG))];
    let mut cmsg = RecvAncillaryBuffer::new(&mut space);
    let r = rustix::net::recvmsg(
        fd,
        &mut [IoSliceMut::new(&mut buf)],
        &mut cmsg,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    for m in cmsg.drain() {
        if let RecvAncillaryMessage::ScmRights(got) = m {
            fds.extend(got);
        }
    }
    if r.flags.intersects(ReturnFlags::TRUNC | ReturnFlags::CTRUNC) {
        return Err(std::io::Error::other("truncated message"));
    }
    buf.truncate(r.bytes);
    Ok(buf)
}

fn set_timeout(fd: BorrowedFd<'_>, d: Duration) {
    let _ =
        rustix::net::sockopt::set_socket_timeout(fd, rustix::net::sockopt::Timeout::Recv, Some(d));
}

/// A socket handed over with the configuration: which one (`api`, `cli`) and its path.
pub struct Listener {
    pub name: &'static str,
    pub path: PathBuf,
    pub fd: OwnedFd,
}

// ---------------------------------------------------------------------------------------------
// The running process's side

/// The handover socket of a running rvpp. Dropping it removes the socket file (if still ours).
pub struct Handover {
    path: PathBuf,
    ident: (u64, u64),
}

impl Drop for Handover {
    fn drop(&mut self) {
        if let Ok(md) = std::fs::symlink_metadata(&self.path) {
            if (md.dev(), md.ino()) == self.ident {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// Listen for a take-over on `path` (replacing a stale file). A take-over that succeeds ends
/// this process.
pub fn listen(
    dp: Arc<Dataplane>,
    path: &Path,
    listeners: Vec<Listener>,
) -> std::io::Result<Handover> {
    use std::os::unix::fs::PermissionsExt;
    let sock = seqpacket()?;
    let _ = std::fs::remove_file(path);
    rustix::net::bind(&sock, &SocketAddrUnix::new(path)?)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    rustix::net::listen(&sock, 2)?;
    let md = std::fs::metadata(path)?;
    std::thread::Builder::new()
        .name("rvpp-handover".into())
        .spawn(move || loop {
            let conn = match rustix::net::accept_with(&sock, SocketFlags::CLOEXEC) {
                Ok(c) => c,
                Err(e) => {
                    log::warn!("take-over socket: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            if let Err(e) = hand_over(&dp, conn.as_fd(), &listeners) {
                log::warn!("{e}; this rvpp keeps running");
            }
        })?;
    Ok(Handover {
        path: path.to_path_buf(),
        ident: (md.dev(), md.ino()),
    })
}

/// One take-over attempt. Returns only when it failed (the process exits when it succeeds).
fn hand_over(dp: &Dataplane, conn: BorrowedFd<'_>, listeners: &[Listener]) -> Result<(), String> {
    set_timeout(conn, STEP_TIMEOUT);
    let mut stray = Vec::new();
    let hello = recv(conn, &mut stray).map_err(|e| io_err("hello", e))?;
    if hello != HELLO || !stray.is_empty() {
        return Err("take-over: not a take-over request".into());
    }
    let cred = rustix::net::sockopt::socket_peercred(conn).map_err(|e| io_err("peer", e))?;
    let peer = cred.pid.as_raw_nonzero().get();
    // The snapshot holds WireGuard's private and session keys: only this process's own user
    // (root) gets it, whatever the socket file's mode was before its chmod.
    if cred.uid != rustix::process::geteuid() {
        let _ = send(conn, b"Rnot the same user", &[]);
        return Err(format!(
            "take-over requested by pid {peer} of uid {} refused: not this process's user",
            cred.uid.as_raw()
        ));
    }
    log::info!("take-over requested by pid {peer}");
    // Held until this process exits: a change made now would be in neither process. The gate
    // waits for the API request or CLI command under way; the forwarding lock stops the
    // daemon's own changes (learned neighbours, the host-link monitor).
    let _gate = dp.config_exclusive();
    let frozen = dp.fwd();
    // The capture stops the memif control threads (the new process reads the connections
    // next) and hands the WireGuard keypairs' next counters over; any failure from here on
    // undoes both.
    let _resume = Resume(dp);
    let snap = match snapshot::capture(dp, &frozen) {
        Ok(s) => s,
        Err(why) => {
            let _ = send(conn, format!("R{why}").as_bytes(), &[]);
            return Err(format!("take-over by pid {peer} refused: {why}"));
        }
    };
    let mut json = snap.json;
    let mut fds: Vec<BorrowedFd<'_>> = snap.fds.iter().map(|f| f.as_fd()).collect();
    let mut ls = Vec::new();
    for l in listeners {
        ls.push(serde_json::json!({"name": l.name, "path": l.path, "fd": fds.len()}));
        fds.push(l.fd.as_fd());
    }
    json["listeners"] = Value::Array(ls);
    json["pid"] = std::process::id().into();
    let text = json.to_string();
    let step = |what: &str, r: std::io::Result<()>| r.map_err(|e| io_err(what, e));
    for piece in text.as_bytes().chunks(PIECE) {
        let mut m = Vec::with_capacity(piece.len() + 1);
        m.push(b'S');
        m.extend_from_slice(piece);
        step("sending the snapshot", send(conn, &m, &[]))?;
    }
    for group in fds.chunks(FDS_PER_MSG) {
        step("sending fds", send(conn, b"F", group))?;
    }
    step("sending the end", send(conn, b"E", &[]))?;
    log::info!(
        "take-over: sent the configuration ({} bytes) and {} fds to pid {peer}; waiting for it",
        text.len(),
        fds.len()
    );
    // `W` / `I`: the new process is about to poll the devices and asks for WireGuard's
    // counters, IPsec's sequence numbers.
    let mut answer = recv(conn, &mut stray);
    loop {
        let (tag, body) = match &answer {
            Ok(m) if m == WG_COUNTERS => (WG_COUNTERS, snapshot::wireguard_counters(dp)),
            Ok(m) if m == IPSEC_SEQS => (IPSEC_SEQS, snapshot::ipsec_seqs(dp)),
            _ => break,
        };
        let mut m = tag.to_vec();
        m.extend_from_slice(body.to_string().as_bytes());
        step("sending the send counters", send(conn, &m, &[]))?;
        answer = recv(conn, &mut stray);
    }
    match answer {
        Ok(m) if m == READY => {}
        Ok(m) if m.is_empty() => {
            return Err(format!(
                "take-over: pid {peer} went away before it was ready"
            ))
        }
        Ok(_) => {
            return Err(format!(
                "take-over: pid {peer} sent something else than READY"
            ))
        }
        Err(e) => return Err(io_err(&format!("waiting for pid {peer}"), e)),
    }
    // The new process reads the af_packet rings from here: stopping the workers takes long
    // enough to fill them.
    if snapshot::close_af_packet_rx(dp) > 0 {
        if let Err(e) = send(conn, b"Q", &[]) {
            snapshot::open_af_packet_rx(dp);
            return Err(io_err("af_packet rx stopped", e));
        }
    }
    let t = Instant::now();
    let stopped = dp.stop_workers(Duration::from_secs(2));
    log::info!(
        "take-over: pid {peer} is forwarding; workers {} in {} us; exiting",
        if stopped {
            "stopped"
        } else {
            "not all stopped"
        },
        t.elapsed().as_micros()
    );
    let _ = send(conn, b"B", &[]);
    if peer != 0 && UPGRADE_CHILD.load(Ordering::Acquire) == peer {
        become_stand_in(peer);
    }
    // Without destructors: the handed-over sockets must stay open and their files in place.
    std::process::exit(0);
}

/// Drives this process's memif control connections again and takes its WireGuard keypairs'
/// counters and IPsec SAs' sequence numbers back when dropped: only on a failed take-over, as
/// a successful one exits without destructors.
struct Resume<'a>(&'a Dataplane);

impl Drop for Resume<'_> {
    fn drop(&mut self) {
        snapshot::resume_memif(self.0);
        snapshot::take_back_wireguard(self.0);
        snapshot::take_back_ipsec(self.0);
    }
}

/// SIGUSR2: start the binary at `exe` (the path this rvpp was started as, now holding the new
/// version) with `args` and `--take-over <socket>`, as this process's child. The caller reaps
/// it with [`upgrade_failed`] if it exits without taking over.
pub fn start_upgrade(
    exe: &std::ffi::OsStr,
    args: &[String],
    socket: &Path,
) -> std::io::Result<std::process::Child> {
    let child = std::process::Command::new(exe)
        .args(args)
        .arg("--take-over")
        .arg(socket)
        .spawn()?;
    UPGRADE_CHILD.store(child.id() as i32, Ordering::Release);
    log::info!(
        "live upgrade: started {} as pid {}",
        Path::new(exe).display(),
        child.id()
    );
    Ok(child)
}

/// The upgrade child exited before taking over: this process goes on.
pub fn upgrade_failed(status: std::process::ExitStatus) {
    UPGRADE_CHILD.store(0, Ordering::Release);
    log::warn!(
        "live upgrade: the new rvpp exited ({status}) without taking over; this one keeps running"
    );
}

/// Replace this process (workers stopped, everything handed over) with a stand-in for `pid`,
/// releasing its memory; without exec, stand in as it is.
fn become_stand_in(pid: i32) -> ! {
    use std::os::unix::process::CommandExt;
    let e = std::process::Command::new("/proc/self/exe")
        .arg0("rvpp")
        .arg("--stand-in")
        .arg(pid.to_string())
        .exec();
    log::error!("live upgrade: exec of the stand-in: {e}; standing in without it");
    stand_in(pid)
}

/// `rvpp --stand-in <pid>`: keep this pid for the parent that waits on it; forward SIGINT,
/// SIGTERM, SIGHUP and SIGUSR2 to child `pid`; exit with its status (128 + its signal).
pub fn stand_in(pid: i32) -> ! {
    use rustix::process::{kill_process, waitpid, Pid, Signal, WaitOptions};
    let Some(p) = Pid::from_raw(pid) else {
        std::process::exit(2)
    };
    let signals = match rvpp_drivers::wait::Signals::block_termination() {
        Ok(s) => s,
        Err(_) => std::process::exit(2),
    };
    loop {
        match waitpid(Some(p), WaitOptions::NOHANG) {
            Ok(Some((_, st))) => {
                let code = st
                    .exit_status()
                    .or_else(|| st.terminating_signal().map(|s| 128 + s))
                    .unwrap_or(1);
                std::process::exit(code);
            }
            Ok(None) => {}
            Err(_) => std::process::exit(1),
        }
        let sig = match signals.wait(Duration::from_millis(100)) {
            Some(libc::SIGINT) => Signal::INT,
            Some(libc::SIGTERM) => Signal::TERM,
            Some(libc::SIGHUP) => Signal::HUP,
            Some(libc::SIGUSR2) => Signal::USR2,
            _ => continue,
        };
        let _ = kill_process(p, sig);
    }
}

// ---------------------------------------------------------------------------------------------
// The new process's side

/// A test hook's wait: the milliseconds in variable `env`, at most 10 s.
fn hold(env: &str) {
    if let Some(ms) = std::env::var(env).ok().and_then(|v| v.parse::<u64>().ok()) {
        log::warn!("take-over: {env} is set: waiting {ms} ms");
        std::thread::sleep(Duration::from_millis(ms.min(10_000)));
    }
}

/// What the running rvpp handed over.
pub struct Incoming {
    conn: OwnedFd,
    pub snapshot: Value,
    /// The fds by slot; a restore takes each one it uses.
    pub fds: Vec<Option<OwnedFd>>,
    pub old_pid: u64,
    /// The af_packet rx queues, polled once the old process has stopped, and the memif devices.
    late: snapshot::Late,
}

/// Ask the rvpp listening on `path` for its configuration and devices.
pub fn connect(path: &Path) -> Result<Incoming, String> {
    let conn = seqpacket().map_err(|e| io_err("socket", e))?;
    let addr = SocketAddrUnix::new(path).map_err(|e| io_err(&path.display().to_string(), e))?;
    rustix::net::connect(&conn, &addr).map_err(|e| io_err(&path.display().to_string(), e))?;
    set_timeout(conn.as_fd(), STEP_TIMEOUT);
    send(conn.as_fd(), HELLO, &[]).map_err(|e| io_err("hello", e))?;
    let mut text = Vec::new();
    let mut fds = Vec::new();
    loop {
        let m = recv(conn.as_fd(), &mut fds).map_err(|e| io_err("receiving", e))?;
        match m.split_first() {
            None => return Err("take-over: the running rvpp closed the connection".into()),
            Some((b'R', why)) => {
                return Err(format!(
                    "take-over refused by the running rvpp (it keeps running): {}",
                    String::from_utf8_lossy(why)
                ))
            }
            Some((b'S', piece)) => text.extend_from_slice(piece),
            Some((b'F', _)) => {}
            Some((b'E', _)) => break,
            Some(_) => return Err("take-over: unexpected message".into()),
        }
    }
    let snapshot: Value = serde_json::from_slice(&text).map_err(|e| io_err("the snapshot", e))?;
    let old_pid = snapshot.get("pid").and_then(Value::as_u64).unwrap_or(0);
    Ok(Incoming {
        conn,
        snapshot,
        fds: fds.into_iter().map(Some).collect(),
        old_pid,
        late: snapshot::Late::default(),
    })
}

impl Incoming {
    /// Rebuild the configuration in `dp` and put the devices on its workers.
    pub fn restore(&mut self, dp: &Arc<Dataplane>) -> Result<(), String> {
        let conn = self.conn.as_fd();
        let mut held = false;
        let mut ask = |what: snapshot::Ask| -> Result<Value, String> {
            if !std::mem::replace(&mut held, true) {
                hold(HOLD_BEFORE_DEVICES_ENV);
            }
            let (tag, name) = match what {
                snapshot::Ask::WireguardCounters => (WG_COUNTERS, "wireguard's counters"),
                snapshot::Ask::IpsecSeqs => (IPSEC_SEQS, "ipsec's sequence numbers"),
            };
            send(conn, tag, &[]).map_err(|e| io_err(&format!("asking for {name}"), e))?;
            let mut stray = Vec::new();
            let m = recv(conn, &mut stray).map_err(|e| io_err(name, e))?;
            let body = m
                .strip_prefix(tag)
                .ok_or_else(|| format!("take-over: unexpected answer for {name}"))?;
            serde_json::from_slice(body).map_err(|e| io_err(name, e))
        };
        self.late = snapshot::restore_with(dp, &self.snapshot, &mut self.fds, &mut ask)?;
        Ok(())
    }

    /// The handed-over listening socket `name`, if the old process served it at `path` too.
    pub fn listener(
        &mut self,
        name: &str,
        path: &Path,
    ) -> Option<std::os::unix::net::UnixListener> {
        let l = self
            .snapshot
            .get("listeners")?
            .as_array()?
            .iter()
            .find(|l| l.get("name").and_then(Value::as_str) == Some(name))?;
        if l.get("path").and_then(Value::as_str) != path.to_str() {
            return None;
        }
        let slot = l.get("fd")?.as_u64()? as usize;
        self.fds.get_mut(slot)?.take().map(Into::into)
    }

    /// Tell the old process this one forwards and wait until its workers have stopped; the
    /// af_packet rings are read from its `Q` on.
    pub fn ready(&mut self) -> Result<(), String> {
        if std::env::var_os(ABORT_BEFORE_READY_ENV).is_some() {
            log::error!("take-over: {ABORT_BEFORE_READY_ENV} is set: aborting before READY");
            std::process::abort();
        }
        hold(HOLD_BEFORE_READY_ENV);
        send(self.conn.as_fd(), READY, &[]).map_err(|e| io_err("ready", e))?;
        let mut stray = Vec::new();
        let mut answer = recv(self.conn.as_fd(), &mut stray);
        if !self.late.no_gates() {
            // `Q`: its af_packet queues read no more (a close: it is gone).
            snapshot::attach_late(&mut self.late);
            if matches!(&answer, Ok(m) if m == b"Q") {
                answer = recv(self.conn.as_fd(), &mut stray);
            }
        }
        match answer {
            // It exits right after `B`; a close without it still means it is going.
            Ok(m) if m == b"B" || m.is_empty() => {}
            Ok(_) => return Err("take-over: unexpected answer to READY".into()),
            Err(e) => return Err(io_err("waiting for the old process to stop", e)),
        }
        // Its end of the connection closes when it is gone, and with it the sockets it did not
        // hand over (the stats segment's), whose paths this process binds next.
        set_timeout(self.conn.as_fd(), Duration::from_secs(5));
        if !matches!(recv(self.conn.as_fd(), &mut stray), Ok(m) if m.is_empty()) {
            log::warn!("take-over: pid {} has not exited yet", self.old_pid);
        }
        snapshot::own_late(std::mem::take(&mut self.late));
        Ok(())
    }
}
