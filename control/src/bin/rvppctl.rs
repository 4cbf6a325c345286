//! `rvppctl`: a `vppctl`-compatible client for the CLI socket of rvpp (or VPP).
//!
//! ```text
//! rvppctl [-s SOCKET] [command words...]
//! ```
//!
//! With command words it runs that one command and prints its output. Without, it reads command
//! lines from stdin (showing a `vpp# ` prompt when stdin is a terminal) and prints each command's
//! output. The socket is `-s SOCKET`, else `$RVPPCTL_SOCKET`, else the first existing of vppctl's
//! locations (`/run/vpp/cli.sock`, `/var/run/vpp/cli.sock`, `/var/run/user/<uid>/vpp/cli.sock`,
//! `./cli.sock`).
//!
//! Protocol (the same as vppctl in non-interactive mode): wait for the server's telnet
//! `SB TTYPE SEND`, answer terminal type `vppctl` (which makes the server skip prompt and echo and
//! end each command's output with a NUL byte), send the command line, print everything up to the
//! NUL, then send `quit` and read to EOF.
#![forbid(unsafe_code)]

use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const IAC: u8 = 255;
const SB: u8 = 250;
const SE: u8 = 240;
const TELOPT_TTYPE: u8 = 24;

const SOCKET_LOCATIONS: &[&str] = &[
    "/run/vpp/cli.sock",
    "/var/run/vpp/cli.sock",
    "/var/run/user/%d/vpp/cli.sock",
    "./cli.sock",
];

/// How long to wait for the server's telnet options before sending anyway (for servers that do
/// not negotiate, e.g. a CLI in line mode).
const NEGOTIATION_WAIT: Duration = Duration::from_secs(2);

struct Conn {
    stream: UnixStream,
    /// Bytes read but not yet processed (an incomplete telnet sequence).
    pending: Vec<u8>,
    sent_ttype: bool,
    eof: bool,
}

enum Event {
    /// A NUL (end of one command's output).
    Ack,
    Eof,
}

impl Conn {
    fn new(stream: UnixStream) -> Conn {
        Conn {
            stream,
            pending: Vec::new(),
            sent_ttype: false,
            eof: false,
        }
    }

    fn send(&mut self, b: &[u8]) -> io::Result<()> {
        self.stream.write_all(b)
    }

    /// Processes pending bytes (printing output, answering telnet); if that does not reach a NUL,
    /// reads once more. Returns `Ack` at a NUL (later bytes stay pending), `Eof` at end of stream,
    /// `None` when the caller should call again.
    fn pump(&mut self, out: &mut dyn Write) -> io::Result<Option<Event>> {
        if let Some(ev) = self.process(out)? {
            return Ok(Some(ev));
        }
        if self.eof {
            // Incomplete telnet bytes cannot complete any more.
            self.pending.clear();
            return Ok(Some(Event::Eof));
        }
        let mut buf = [0u8; 4096];
        match self.stream.read(&mut buf) {
            Ok(0) => self.eof = true,
            Ok(n) => self.pending.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => self.eof = true,
            Err(e) => return Err(e),
        }
        Ok(None)
    }

    fn process(&mut self, out: &mut dyn Write) -> io::Result<Option<Event>> {
        let buf = std::mem::take(&mut self.pending);
        let mut i = 0;
        let mut text = Vec::new();
        let mut event = None;
        while i < buf.len() {
            let b = buf[i];
            if b == IAC {
                if buf.len() - i < 2 {
                    break;
                }
                if buf[i + 1] == SB {
                    // IAC SB opt ... IAC SE
                    let Some(end) = (i + 3..buf.len()).find(|&j| buf[j - 1] == IAC && buf[j] == SE)
                    else {
                        if buf.len() - i > 256 {
                            i += 1; // runaway; drop the IAC
                            continue;
                        }
                        break;
                    };
                    if buf[i + 2] == TELOPT_TTYPE {
                        let mut reply = vec![IAC, SB, TELOPT_TTYPE, 0];
                        reply.extend_from_slice(b"vppctl");
                        reply.extend_from_slice(&[IAC, SE]);
                        self.send(&reply)?;
                        self.sent_ttype = true;
                    }
                    i = end + 1;
                } else {
                    if buf.len() - i < 3 {
                        break;
                    }
                    i += 3; // IAC WILL/WONT/DO/DONT opt (vppctl skips 3 for any command)
                }
                continue;
            }
            i += 1;
            if b == 0 {
                event = Some(Event::Ack);
                break;
            }
            text.push(b);
        }
        out.write_all(&text)?;
        out.flush()?;
        self.pending = buf[i..].to_vec();
        Ok(event)
    }

    /// Waits until the server asked for (and got) the terminal type, or a timeout passed.
    fn handshake(&mut self, out: &mut dyn Write) -> io::Result<()> {
        self.stream
            .set_read_timeout(Some(Duration::from_millis(100)))?;
        let start = std::time::Instant::now();
        while !self.sent_ttype && !self.eof && start.elapsed() < NEGOTIATION_WAIT {
            if let Some(Event::Eof) = self.pump(out)? {
                break;
            }
        }
        self.stream.set_read_timeout(None)
    }

    /// Sends one command line and prints its output, up to the server's NUL. Returns false at EOF.
    fn command(&mut self, line: &str, out: &mut dyn Write) -> io::Result<bool> {
        let mut b = line.as_bytes().to_vec();
        b.push(b'\n');
        b.push(0); // as vppctl does
        self.send(&b)?;
        loop {
            match self.pump(out)? {
                Some(Event::Ack) => return Ok(true),
                Some(Event::Eof) => return Ok(false),
                None => {}
            }
        }
    }

    /// Asks the server to close and prints whatever else it sends until EOF.
    fn quit(&mut self, out: &mut dyn Write) -> io::Result<()> {
        if !self.eof {
            // The server may already be gone; that is fine.
            let _ = self.send(b"quit\n");
        }
        while !matches!(self.pump(out)?, Some(Event::Eof)) {}
        Ok(())
    }
}

fn find_socket() -> Result<PathBuf, String> {
    let uid = rustix::process::getuid().as_raw();
    let mut tried = Vec::new();
    for loc in SOCKET_LOCATIONS {
        let p = loc.replace("%d", &uid.to_string());
        if std::path::Path::new(&p).exists() {
            return Ok(PathBuf::from(p));
        }
        tried.push(p);
    }
    Err(format!(
        "Could not find VPP CLI socket (tried {}); use -s SOCKET or set RVPPCTL_SOCKET",
        tried.join(", ")
    ))
}

fn usage() -> &'static str {
    "usage: rvppctl [-s SOCKET] [command words...]\n\
     Runs one CLI command on rvpp/VPP, or reads commands from stdin when none is given.\n\
     Socket: -s SOCKET, else $RVPPCTL_SOCKET, else /run/vpp/cli.sock (vppctl's search order).\n"
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut socket: Option<PathBuf> = None;
    // Like vppctl: `-s SOCKET` must come first; everything after is the command.
    if args.first().map(String::as_str) == Some("-s") {
        if args.len() < 2 {
            eprintln!("rvppctl: option -s needs a socket path\n{}", usage());
            return ExitCode::from(2);
        }
        socket = Some(PathBuf::from(args[1].clone()));
        args.drain(..2);
    } else if let Some(p) = args.first().and_then(|a| a.strip_prefix("-s")) {
        if !p.is_empty() && !p.starts_with('-') {
            socket = Some(PathBuf::from(p));
            args.remove(0);
        }
    }
    if args.len() == 1 && matches!(args[0].as_str(), "--help" | "-h") {
        print!("{}", usage());
        return ExitCode::SUCCESS;
    }
    let socket = match socket {
        Some(s) => s,
        None => match std::env::var_os("RVPPCTL_SOCKET") {
            Some(s) if !s.is_empty() => PathBuf::from(s),
            _ => match find_socket() {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("rvppctl: {e}");
                    return ExitCode::from(1);
                }
            },
        },
    };
    let stream = match UnixStream::connect(&socket) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "rvppctl: cannot connect to CLI socket {}: {e} (is rvpp running?)",
                socket.display()
            );
            return ExitCode::from(1);
        }
    };
    match run(stream, &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvppctl: {}: {e}", socket.display());
            ExitCode::from(1)
        }
    }
}

fn run(stream: UnixStream, args: &[String]) -> io::Result<()> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut conn = Conn::new(stream);
    conn.handshake(&mut out)?;
    if !args.is_empty() {
        if conn.command(&args.join(" "), &mut out)? {
            conn.quit(&mut out)?;
        }
        return Ok(());
    }
    let stdin = io::stdin();
    let tty = stdin.is_terminal();
    let mut input = stdin.lock();
    let mut line = String::new();
    loop {
        if tty {
            write!(out, "vpp# ")?;
            out.flush()?;
        }
        line.clear();
        if input.read_line(&mut line)? == 0 {
            if tty {
                writeln!(out)?;
            }
            break;
        }
        let cmd = line.trim_end_matches(['\n', '\r']);
        if matches!(cmd.trim(), "quit" | "q" | "exit") {
            break;
        }
        if !conn.command(cmd, &mut out)? {
            return Ok(()); // server closed
        }
    }
    conn.quit(&mut out)
}
