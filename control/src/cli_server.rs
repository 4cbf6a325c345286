//! The CLI socket (`unix { cli-listen /run/vpp/cli.sock }`), speaking what VPP's `vppctl` speaks.
//!
//! Protocol, as implemented by VPP (`src/vlib/unix/cli.c`) and its client (`src/vpp/app/vppctl.c`):
//!
//! * The server speaks first. On accept it sends telnet options: `WONT/DONT LINEMODE`,
//!   `WILL/DO SGA`, `WILL ECHO`, `DONT ECHO`, `DO TTYPE`, `SB TTYPE SEND SE`, `DO NAWS`,
//!   `SB NAWS 1 SE` (the last is not a valid NAWS request, VPP sends it anyway).
//! * `vppctl` waits for `IAC SB TTYPE ...` and answers `IAC SB TTYPE IS <term> IAC SE`, where
//!   `<term>` is `$TERM` in an interactive session and `vppctl` when running one command (or when
//!   stdin is not a terminal). Interactive sessions also answer `SB NAWS` with the window size.
//! * Terminal type `vppctl` makes the session non-interactive: line mode, no echo, no banner, no
//!   prompt, no pager; after each command's output the server sends one NUL byte. The client counts
//!   NULs: once the output of its command is acknowledged it sends `quit\n`, the server closes, and
//!   the client exits at EOF. The command itself is sent right after the TTYPE answer, terminated
//!   by `\n` and a NUL (`"show version\n\0"`).
//! * Any other terminal type is an interactive character-mode session: the server echoes and edits
//!   the line, prints a banner and the prompt (`vpp# `), and uses CRLF line ends.
//! * If the client never answers TTYPE, VPP starts the session as interactive after 1 s.
//! * `quit`, `q` and `exit` end the session.
//!
//! rvpp additions: a client that sends plain text before any telnet traffic (for example
//! `echo "show version" | socat - UNIX-CONNECT:/run/vpp/cli.sock`, or `nc -U`) gets a plain session:
//! no telnet bytes, no prompt, no NUL, just each command's output. To tell the two apart the server
//! waits a short moment ([`CliOptions::plain_detect`]) for the client to speak before sending its
//! telnet options (vppctl never speaks first). Lines longer than [`CliOptions::max_line`] are
//! discarded with an error message and counted in [`CliStats::overlong_lines`].

use std::collections::HashMap;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::io::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::startup_conf::UnixConfig;

/// Runs one CLI command line and returns its output.
pub type Executor = Arc<dyn Fn(&str) -> String + Send + Sync>;

// Telnet bytes (RFC 854 and friends).
pub const IAC: u8 = 255;
pub const DONT: u8 = 254;
pub const DO: u8 = 253;
pub const WONT: u8 = 252;
pub const WILL: u8 = 251;
pub const SB: u8 = 250;
pub const AYT: u8 = 246;
pub const SE: u8 = 240;
pub const TELOPT_ECHO: u8 = 1;
pub const TELOPT_SGA: u8 = 3;
pub const TELOPT_TTYPE: u8 = 24;
pub const TELOPT_NAWS: u8 = 31;
pub const TELOPT_LINEMODE: u8 = 34;
/// `TTYPE IS` / `TTYPE SEND`.
pub const TTYPE_IS: u8 = 0;
pub const TTYPE_SEND: u8 = 1;

/// The options VPP sends on accept (same bytes, same order).
pub const TELNET_NEGOTIATION: [u8; 36] = [
    IAC,
    WONT,
    TELOPT_LINEMODE,
    IAC,
    DONT,
    TELOPT_LINEMODE,
    IAC,
    WILL,
    TELOPT_SGA,
    IAC,
    DO,
    TELOPT_SGA,
    IAC,
    WILL,
    TELOPT_ECHO,
    IAC,
    DONT,
    TELOPT_ECHO,
    IAC,
    DO,
    TELOPT_TTYPE,
    IAC,
    SB,
    TELOPT_TTYPE,
    TTYPE_SEND,
    IAC,
    SE,
    IAC,
    DO,
    TELOPT_NAWS,
    IAC,
    SB,
    TELOPT_NAWS,
    1,
    IAC,
    SE,
];

/// Terminal type that marks a non-interactive session.
pub const NONINTERACTIVE_TTYPE: &str = "vppctl";

/// Longest telnet sub-negotiation accepted (VPP: 32).
const MAX_SB_LEN: usize = 64;
const DEFAULT_WIDTH: u16 = 80;
const DEFAULT_HEIGHT: u16 = 24;
const MAX_TERMINAL: u16 = 512;

/// Server options.
#[derive(Debug, Clone)]
pub struct CliOptions {
    /// Prompt for interactive sessions (VPP: `vpp# `; `unix { cli-prompt }`).
    pub prompt: String,
    /// Banner printed when an interactive session starts (`None` = no banner).
    pub banner: Option<String>,
    /// Socket file mode: root and the `unix { gid }` group only (see `socket_access`).
    pub mode: u32,
    /// Group owner for the socket file (`unix { gid }`).
    pub gid: Option<u32>,
    /// Longest accepted command line, in bytes.
    pub max_line: usize,
    /// Most concurrent sessions; more are refused with a message.
    pub max_sessions: usize,
    /// `unix { cli-line-mode }`: never negotiate telnet; every session is a plain line session.
    pub line_mode: bool,
    /// How long to wait for a client to speak first (plain-client detection) before sending the
    /// telnet options. Zero disables plain-client detection before negotiation.
    pub plain_detect: Duration,
    /// How long to wait for the terminal type before starting an interactive session (VPP: 1 s).
    pub ttype_timeout: Duration,
    /// Write timeout for a client that does not read its output.
    pub write_timeout: Duration,
}

impl Default for CliOptions {
    fn default() -> Self {
        CliOptions {
            prompt: crate::startup_conf::DEFAULT_CLI_PROMPT.to_string(),
            banner: Some(DEFAULT_BANNER.to_string()),
            mode: crate::socket_access::SOCKET_MODE,
            gid: None,
            max_line: 16 * 1024,
            max_sessions: 128,
            line_mode: false,
            plain_detect: Duration::from_millis(25),
            ttype_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(30),
        }
    }
}

impl CliOptions {
    /// Options from `unix { ... }`: prompt, banner flags, line mode. The gid is not resolved here
    /// (see [`crate::startup_conf::GidSpec::resolve`]).
    pub fn from_unix(u: &UnixConfig) -> CliOptions {
        CliOptions {
            prompt: u.cli_prompt.clone(),
            banner: if u.cli_no_banner || u.nobanner {
                None
            } else {
                Some(DEFAULT_BANNER.to_string())
            },
            line_mode: u.cli_line_mode,
            ..CliOptions::default()
        }
    }
}

/// Banner for interactive sessions.
pub const DEFAULT_BANNER: &str = "rvpp: VPP-compatible dataplane (type `quit` to leave)\n\n";

/// Counters, readable while the server runs.
#[derive(Debug, Default)]
pub struct CliStats {
    pub sessions_accepted: AtomicU64,
    pub sessions_active: AtomicU64,
    pub sessions_refused: AtomicU64,
    pub commands: AtomicU64,
    pub overlong_lines: AtomicU64,
    /// Sessions that ended because a write to the client failed (client gone mid-command).
    pub write_errors: AtomicU64,
}

/// A bound, not yet running, CLI socket.
pub struct CliServer {
    listener: UnixListener,
    path: PathBuf,
    ident: (u64, u64),
    opts: CliOptions,
    stats: Arc<CliStats>,
}

impl CliServer {
    /// Binds the socket at `path`: creates the parent directory if needed, replaces a stale socket
    /// file (one nobody listens on), refuses when another process is listening or the path is not
    /// a socket, and sets the file mode (and group) from `opts`.
    pub fn bind(path: &Path, opts: CliOptions) -> io::Result<CliServer> {
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() && !parent.exists() {
                std::fs::create_dir_all(parent)?;
            }
        }
        match std::fs::symlink_metadata(path) {
            Ok(md) if md.file_type().is_socket() => match UnixStream::connect(path) {
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("active listener on '{}'", path.display()),
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    std::fs::remove_file(path)?
                }
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("checking existing socket '{}': {e}", path.display()),
                    ))
                }
            },
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "file '{}' already exists and is not a socket",
                        path.display()
                    ),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(opts.mode))?;
        if let Some(gid) = opts.gid {
            std::os::unix::fs::chown(path, None, Some(gid))?;
        }
        Self::adopt(listener, path, opts)
    }

    /// A socket already listening at `path` (one a live restart handed over).
    pub fn adopt(listener: UnixListener, path: &Path, opts: CliOptions) -> io::Result<CliServer> {
        let md = std::fs::metadata(path)?;
        Ok(CliServer {
            listener,
            path: path.to_path_buf(),
            ident: (md.dev(), md.ino()),
            opts,
            stats: Arc::new(CliStats::default()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn stats(&self) -> Arc<CliStats> {
        self.stats.clone()
    }

    /// Starts the accept loop on its own thread; each session gets a thread and calls `exec`
    /// for every command line.
    pub fn spawn(self, exec: Executor) -> io::Result<CliServerHandle> {
        let stop = Arc::new(AtomicBool::new(false));
        let sessions: Arc<Mutex<HashMap<u64, UnixStream>>> = Arc::default();
        // Our own handle on the listening socket, to wake the accept thread with shutdown().
        let listener = OwnedFd::from(self.listener.try_clone()?);
        let path = self.path.clone();
        let ident = self.ident;
        let stats = self.stats.clone();
        let (stop2, sessions2) = (stop.clone(), sessions.clone());
        let thread = std::thread::Builder::new()
            .name("cli-listen".into())
            .spawn(move || self.accept_loop(exec, stop2, sessions2))?;
        Ok(CliServerHandle {
            path,
            ident,
            stats,
            stop,
            sessions,
            listener: Some(listener),
            thread: Some(thread),
        })
    }

    /// Runs the accept loop on the calling thread (until the process exits).
    pub fn run(self, exec: Executor) {
        self.accept_loop(exec, Arc::default(), Arc::default())
    }

    fn accept_loop(
        self,
        exec: Executor,
        stop: Arc<AtomicBool>,
        sessions: Arc<Mutex<HashMap<u64, UnixStream>>>,
    ) {
        let mut next_id = 0u64;
        log::info!("CLI listening on {}", self.path.display());
        loop {
            let accepted = self.listener.accept();
            if stop.load(Ordering::Acquire) {
                break;
            }
            let stream = match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    if e.kind() != io::ErrorKind::Interrupted {
                        log::warn!("CLI accept on {}: {e}", self.path.display());
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    continue;
                }
            };
            self.stats.sessions_accepted.fetch_add(1, Ordering::Relaxed);
            if self.stats.sessions_active.load(Ordering::Relaxed) as usize >= self.opts.max_sessions
            {
                self.stats.sessions_refused.fetch_add(1, Ordering::Relaxed);
                let _ = send_all(&stream, b"too many CLI sessions, try again later\n");
                continue;
            }
            next_id += 1;
            let id = next_id;
            if let Ok(clone) = stream.try_clone() {
                sessions.lock().expect("sessions lock").insert(id, clone);
            }
            self.stats.sessions_active.fetch_add(1, Ordering::Relaxed);
            let (exec, opts, stats, registry) = (
                exec.clone(),
                self.opts.clone(),
                self.stats.clone(),
                sessions.clone(),
            );
            let spawned = std::thread::Builder::new()
                .name(format!("cli-session-{id}"))
                .spawn(move || {
                    let mut s = Session::new(stream, &exec, &opts, &stats);
                    match s.run() {
                        Ok(()) => {
                            if s.quit {
                                s.close_gracefully();
                            }
                            log::debug!("CLI session {id} closed")
                        }
                        Err(e) => {
                            if is_disconnect(&e) {
                                stats.write_errors.fetch_add(1, Ordering::Relaxed);
                            }
                            log::debug!("CLI session {id} ended: {e}");
                        }
                    }
                    let _ = s.stream.shutdown(std::net::Shutdown::Both);
                    registry.lock().expect("sessions lock").remove(&id);
                    stats.sessions_active.fetch_sub(1, Ordering::Relaxed);
                });
            if let Err(e) = spawned {
                log::warn!("CLI: cannot start a session thread: {e}");
                if let Some(s) = sessions.lock().expect("sessions lock").remove(&id) {
                    let _ = send_all(&s, b"cannot start a CLI session\n");
                }
                self.stats.sessions_active.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

/// A running CLI server. Dropping it (or [`CliServerHandle::shutdown`]) stops accepting, closes
/// the sessions and removes the socket file.
pub struct CliServerHandle {
    path: PathBuf,
    ident: (u64, u64),
    stats: Arc<CliStats>,
    stop: Arc<AtomicBool>,
    sessions: Arc<Mutex<HashMap<u64, UnixStream>>>,
    /// A duplicate of the accept thread's listening socket, kept until that thread is joined.
    listener: Option<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

impl CliServerHandle {
    /// The listening socket (a live restart hands it to the next process).
    pub fn listener(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.listener.as_ref().map(std::os::fd::AsFd::as_fd)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn stats(&self) -> &CliStats {
        &self.stats
    }

    /// Number of sessions currently open.
    pub fn active_sessions(&self) -> usize {
        self.sessions.lock().expect("sessions lock").len()
    }

    /// Stops the server and waits for the accept thread.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.stop.store(true, Ordering::Release);
        // Wake the blocked accept(): shutdown() on a listening socket makes accept fail on Linux;
        // a connection attempt covers other systems.
        if let Some(l) = &self.listener {
            let _ = rustix::net::shutdown(l, rustix::net::Shutdown::Both);
        }
        let _ = UnixStream::connect(&self.path);
        let _ = thread.join();
        self.listener = None;
        for (_, s) in self.sessions.lock().expect("sessions lock").drain() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        // Remove the socket file only if it is still ours.
        if let Ok(md) = std::fs::symlink_metadata(&self.path) {
            if (md.dev(), md.ino()) == self.ident {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

impl Drop for CliServerHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}

fn is_disconnect(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
    )
}

/// Writes everything, without SIGPIPE when the peer is gone.
fn send_all(stream: &UnixStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match rustix::net::send(stream, buf, rustix::net::SendFlags::NOSIGNAL) {
            Ok(n) => buf = &buf[n..],
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Connected; nothing decided yet.
    Pending,
    /// Telnet session with terminal type `vppctl`: line mode, NUL after each command.
    Vppctl,
    /// Telnet character-mode session with echo, editing and prompt.
    Interactive,
    /// Plain text, no telnet: output only.
    Plain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EscState {
    Idle,
    Escape,
    Csi,
    Ss3,
}

enum Telnet {
    NeedMore,
    Consumed(usize),
}

struct Session<'a> {
    stream: UnixStream,
    exec: &'a Executor,
    opts: &'a CliOptions,
    stats: &'a CliStats,
    mode: Mode,
    negotiated: bool,
    got_telnet: bool,
    started: bool,
    ansi: bool,
    width: u16,
    height: u16,
    pending: Vec<u8>,
    line: Vec<u8>,
    overlong: bool,
    last_cr: bool,
    esc: EscState,
    history: Vec<String>,
    hist_pos: usize,
    quit: bool,
}

impl<'a> Session<'a> {
    fn new(
        stream: UnixStream,
        exec: &'a Executor,
        opts: &'a CliOptions,
        stats: &'a CliStats,
    ) -> Self {
        Session {
            stream,
            exec,
            opts,
            stats,
            mode: Mode::Pending,
            negotiated: false,
            got_telnet: false,
            started: false,
            ansi: false,
            width: DEFAULT_WIDTH,
            height: DEFAULT_HEIGHT,
            pending: Vec::new(),
            line: Vec::new(),
            overlong: false,
            last_cr: false,
            esc: EscState::Idle,
            history: Vec::new(),
            hist_pos: 0,
            quit: false,
        }
    }

    fn send(&self, b: &[u8]) -> io::Result<()> {
        send_all(&self.stream, b)
    }

    fn run(&mut self) -> io::Result<()> {
        self.stream
            .set_write_timeout(Some(self.opts.write_timeout))?;
        let mut buf = vec![0u8; 4096];
        if self.opts.line_mode {
            self.mode = Mode::Plain;
            self.started = true;
        } else if !self.opts.plain_detect.is_zero() {
            // Give a plain client the chance to speak first.
            self.stream.set_read_timeout(Some(self.opts.plain_detect))?;
            match self.stream.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    if buf[0] != IAC {
                        self.mode = Mode::Plain;
                        self.started = true;
                    } else {
                        self.negotiate()?;
                    }
                    self.feed(&buf[..n])?;
                }
                Err(e) if is_timeout(&e) => self.negotiate()?,
                Err(e) => return Err(e),
            }
        } else {
            self.negotiate()?;
        }
        let deadline = Instant::now() + self.opts.ttype_timeout;
        while !self.quit {
            if self.started {
                self.stream.set_read_timeout(None)?;
            } else {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    // VPP's failsafe: no terminal type, start as interactive.
                    self.mode = Mode::Interactive;
                    self.start()?;
                    continue;
                }
                self.stream.set_read_timeout(Some(left))?;
            }
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    // EOF (possibly a half-close): run what is left of a line-mode command so
                    // `echo cmd | socat` style clients get their output.
                    if matches!(self.mode, Mode::Plain | Mode::Vppctl)
                        && !self.line.is_empty()
                        && !self.overlong
                    {
                        let line = std::mem::take(&mut self.line);
                        self.execute(&line)?;
                    }
                    return Ok(());
                }
                Ok(n) => self.feed(&buf[..n])?,
                Err(e) if is_timeout(&e) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// After `quit`: the client may still be sending (vppctl repeats `quit` while it reads the
    /// last output). Closing with unread input would reset the connection, and vppctl would die of
    /// SIGPIPE before printing everything it received; so half-close, then drain briefly.
    fn close_gracefully(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut buf = [0u8; 4096];
        let mut drained = 0usize;
        while drained < (1 << 20) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.stream.set_read_timeout(Some(left)).is_err() {
                break;
            }
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => drained += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }

    fn negotiate(&mut self) -> io::Result<()> {
        self.negotiated = true;
        self.send(&TELNET_NEGOTIATION)
    }

    /// Starts the session: banner and prompt for interactive sessions.
    fn start(&mut self) -> io::Result<()> {
        if self.started {
            return Ok(());
        }
        self.started = true;
        if self.mode == Mode::Interactive {
            let mut out = b"\r".to_vec();
            if let Some(b) = &self.opts.banner {
                out.extend_from_slice(&crlf(b.as_bytes()));
            }
            out.extend_from_slice(self.opts.prompt.as_bytes());
            self.send(&out)?;
        }
        Ok(())
    }

    fn feed(&mut self, data: &[u8]) -> io::Result<()> {
        self.pending.extend_from_slice(data);
        let buf = std::mem::take(&mut self.pending);
        let mut i = 0;
        while i < buf.len() && !self.quit {
            let b = buf[i];
            if b == IAC && self.mode != Mode::Plain {
                match self.telnet(&buf[i..])? {
                    Telnet::NeedMore => break,
                    Telnet::Consumed(n) => {
                        i += n;
                        continue;
                    }
                }
            }
            if self.mode == Mode::Pending {
                // Text before any terminal type: a telnet client that does not do TTYPE starts
                // interactive (as VPP); a client that never spoke telnet is plain.
                self.mode = if self.got_telnet {
                    Mode::Interactive
                } else {
                    Mode::Plain
                };
                if self.mode == Mode::Interactive {
                    self.start()?;
                } else {
                    self.started = true;
                }
            }
            match self.mode {
                Mode::Interactive => self.edit(b)?,
                _ => self.line_byte(b)?,
            }
            i += 1;
        }
        if i < buf.len() && !self.quit {
            self.pending = buf[i..].to_vec();
        }
        Ok(())
    }

    /// Handles a telnet command at the start of `b` (`b[0] == IAC`).
    fn telnet(&mut self, b: &[u8]) -> io::Result<Telnet> {
        if b.len() < 2 {
            return Ok(Telnet::NeedMore);
        }
        self.got_telnet = true;
        let consumed = match b[1] {
            IAC => 2, // escaped 0xff: meaningless here, dropped (as VPP)
            WILL | WONT | DO | DONT => {
                if b.len() < 3 {
                    return Ok(Telnet::NeedMore);
                }
                3
            }
            SB => {
                let end = (3..b.len().min(MAX_SB_LEN)).find(|&j| b[j - 1] == IAC && b[j] == SE);
                match end {
                    Some(j) => {
                        if b.len() > 2 {
                            self.suboption(b[2], &b[3..j - 1])?;
                        }
                        j + 1
                    }
                    None if b.len() >= MAX_SB_LEN => 1, // runaway: drop the IAC
                    None => return Ok(Telnet::NeedMore),
                }
            }
            AYT => {
                self.send(b"rvpp (fd.io VPP compatible)\r\n")?;
                2
            }
            _ => 2,
        };
        Ok(Telnet::Consumed(consumed))
    }

    fn suboption(&mut self, opt: u8, data: &[u8]) -> io::Result<()> {
        match opt {
            TELOPT_TTYPE if data.first() == Some(&TTYPE_IS) => {
                let term = String::from_utf8_lossy(&data[1..]).to_string();
                self.ansi = [
                    "xterm",
                    "xterm-color",
                    "xterm-256color",
                    "screen",
                    "screen-256color",
                    "ansi",
                ]
                .iter()
                .any(|t| t.eq_ignore_ascii_case(&term));
                if term.eq_ignore_ascii_case(NONINTERACTIVE_TTYPE) {
                    self.mode = Mode::Vppctl;
                } else if self.mode == Mode::Pending {
                    self.mode = Mode::Interactive;
                }
                self.start()?;
            }
            TELOPT_NAWS if data.len() == 4 => {
                let w = u16::from_be_bytes([data[0], data[1]]);
                let h = u16::from_be_bytes([data[2], data[3]]);
                self.width = if w == 0 {
                    DEFAULT_WIDTH
                } else {
                    w.min(MAX_TERMINAL)
                };
                self.height = if h == 0 {
                    DEFAULT_HEIGHT
                } else {
                    h.min(MAX_TERMINAL)
                };
            }
            _ => {}
        }
        Ok(())
    }

    /// Line-mode input (vppctl and plain sessions).
    fn line_byte(&mut self, b: u8) -> io::Result<()> {
        match b {
            b'\n' => {
                let line = std::mem::take(&mut self.line);
                if std::mem::take(&mut self.overlong) {
                    self.overlong_line()?;
                } else {
                    self.execute(&line)?;
                }
            }
            b'\r' | 0 => {}
            _ => self.push_byte(b),
        }
        Ok(())
    }

    fn push_byte(&mut self, b: u8) {
        if self.overlong {
            return;
        }
        if self.line.len() >= self.opts.max_line {
            self.overlong = true;
            self.line.clear();
            return;
        }
        self.line.push(b);
    }

    fn overlong_line(&mut self) -> io::Result<()> {
        self.stats.overlong_lines.fetch_add(1, Ordering::Relaxed);
        log::warn!(
            "CLI: discarded a command line longer than {} bytes",
            self.opts.max_line
        );
        let msg = format!(
            "error: command line too long (limit {} bytes), discarded\n",
            self.opts.max_line
        );
        self.reply(msg.as_bytes())
    }

    /// Sends a command's output with the session's end-of-output marker.
    fn reply(&mut self, out: &[u8]) -> io::Result<()> {
        let mut v = Vec::with_capacity(out.len() + 8);
        match self.mode {
            Mode::Interactive => {
                v.extend_from_slice(&crlf(out));
                v.extend_from_slice(self.opts.prompt.as_bytes());
            }
            Mode::Vppctl => {
                v.extend_from_slice(out);
                v.push(0);
            }
            Mode::Plain | Mode::Pending => v.extend_from_slice(out),
        }
        self.send(&v)
    }

    fn execute(&mut self, raw: &[u8]) -> io::Result<()> {
        let text = String::from_utf8_lossy(raw);
        let cmd = text.trim();
        if matches!(cmd, "quit" | "q" | "exit") {
            self.quit = true;
            return Ok(());
        }
        if cmd.is_empty() {
            // vppctl needs an acknowledgement even for an empty command.
            return self.reply(b"");
        }
        if self.mode == Mode::Interactive && self.history.last().map(String::as_str) != Some(cmd) {
            self.history.push(cmd.to_string());
            if self.history.len() > 100 {
                self.history.remove(0);
            }
        }
        self.stats.commands.fetch_add(1, Ordering::Relaxed);
        let mut out = (self.exec)(cmd).into_bytes();
        if !out.is_empty() && !out.ends_with(b"\n") {
            out.push(b'\n');
        }
        self.reply(&out)
    }

    /// Character-mode input with echo and simple line editing.
    fn edit(&mut self, b: u8) -> io::Result<()> {
        match self.esc {
            EscState::Escape => {
                self.esc = match b {
                    b'[' => EscState::Csi,
                    b'O' => EscState::Ss3,
                    _ => EscState::Idle,
                };
                return Ok(());
            }
            EscState::Csi | EscState::Ss3 => {
                if (0x40..=0x7e).contains(&b) {
                    self.esc = EscState::Idle;
                    match b {
                        b'A' => self.history_move(-1)?,
                        b'B' => self.history_move(1)?,
                        _ => {}
                    }
                }
                return Ok(());
            }
            EscState::Idle => {}
        }
        let after_cr = std::mem::take(&mut self.last_cr);
        match b {
            b'\r' | b'\n' => {
                if b == b'\n' && after_cr {
                    return Ok(()); // CR LF
                }
                self.last_cr = b == b'\r';
                self.send(b"\r\n")?;
                let line = std::mem::take(&mut self.line);
                self.hist_pos = self.history.len();
                if std::mem::take(&mut self.overlong) {
                    self.overlong_line()
                } else {
                    self.execute(&line)
                }
            }
            0 if after_cr => Ok(()), // CR NUL
            0x1b => {
                self.esc = EscState::Escape;
                Ok(())
            }
            0x7f | 0x08 => {
                if self.line.pop().is_some() {
                    self.send(b"\x08 \x08")?;
                }
                Ok(())
            }
            0x03 => {
                // ^C: abandon the line.
                self.line.clear();
                self.overlong = false;
                let mut v = b"^C\r\n".to_vec();
                v.extend_from_slice(self.opts.prompt.as_bytes());
                self.send(&v)
            }
            0x04 => {
                if self.line.is_empty() {
                    self.send(b"quit\r\n")?;
                    self.quit = true;
                }
                Ok(())
            }
            0x15 => self.replace_line(Vec::new()), // ^U
            0x0c => {
                // ^L: redraw
                let mut v = Vec::new();
                if self.ansi {
                    v.extend_from_slice(b"\x1b[2J\x1b[H");
                } else {
                    v.extend_from_slice(b"\r\n");
                }
                v.extend_from_slice(self.opts.prompt.as_bytes());
                v.extend_from_slice(&self.line);
                self.send(&v)
            }
            0x20..=0x7e | 0x80..=0xfe => {
                let was_overlong = self.overlong;
                self.push_byte(b);
                if !self.overlong {
                    self.send(&[b])?;
                } else if !was_overlong {
                    self.send(b"\r\n")?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn replace_line(&mut self, new: Vec<u8>) -> io::Result<()> {
        let mut v = Vec::new();
        for _ in 0..self.line.len() {
            v.extend_from_slice(b"\x08 \x08");
        }
        v.extend_from_slice(&new);
        self.line = new;
        self.send(&v)
    }

    fn history_move(&mut self, dir: isize) -> io::Result<()> {
        if self.history.is_empty() {
            return Ok(());
        }
        let len = self.history.len() as isize;
        let pos = (self.hist_pos as isize + dir).clamp(0, len);
        self.hist_pos = pos as usize;
        let new = if pos == len {
            Vec::new()
        } else {
            self.history[pos as usize].clone().into_bytes()
        };
        self.replace_line(new)
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// `\n` → `\r\n` (leaving existing `\r\n` alone).
fn crlf(b: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(b.len() + b.len() / 16);
    let mut prev = 0u8;
    for &c in b {
        if c == b'\n' && prev != b'\r' {
            v.push(b'\r');
        }
        v.push(c);
        prev = c;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_conversion() {
        assert_eq!(crlf(b"a\nb\r\nc"), b"a\r\nb\r\nc".to_vec());
    }

    #[test]
    fn negotiation_matches_vpp() {
        // IAC SB TTYPE SEND IAC SE is what vppctl waits for.
        let n = &TELNET_NEGOTIATION;
        assert!(n
            .windows(6)
            .any(|w| w == [IAC, SB, TELOPT_TTYPE, TTYPE_SEND, IAC, SE]));
    }
}
