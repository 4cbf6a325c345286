//! CLI socket: rvppctl, raw vppctl-style telnet bytes, plain clients, concurrency, disconnects.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvpp_control::cli_server::*;

const RVPPCTL: &str = env!("CARGO_BIN_EXE_rvppctl");

fn temp_sock(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "rvpp-cli-{}-{}-{}",
        std::process::id(),
        name,
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("cli.sock")
}

/// A toy CLI: `show version`, `echo ...`, `silent` (no output), `slow` (sleeps), `big` (lots).
fn toy_executor(calls: Arc<AtomicUsize>) -> Executor {
    Arc::new(move |cmd: &str| {
        calls.fetch_add(1, Ordering::SeqCst);
        let mut words = cmd.split_whitespace();
        match words.next() {
            Some("show") if cmd == "show version" => "vpp v24.02-rvpp built by test".to_string(),
            Some("echo") => words.collect::<Vec<_>>().join(" "),
            Some("silent") => String::new(),
            Some("slow") => {
                std::thread::sleep(Duration::from_millis(300));
                "slow done\n".to_string()
            }
            Some("big") => (0..2000).map(|i| format!("line {i}\n")).collect(),
            _ => format!("unknown input `{cmd}'\n"),
        }
    })
}

fn start(name: &str) -> (CliServerHandle, Arc<AtomicUsize>) {
    let path = temp_sock(name);
    let calls = Arc::new(AtomicUsize::new(0));
    let server = CliServer::bind(&path, CliOptions::default()).unwrap();
    let handle = server.spawn(toy_executor(calls.clone())).unwrap();
    (handle, calls)
}

fn rvppctl(sock: &Path, words: &[&str]) -> std::process::Output {
    let mut args = vec!["-s", sock.to_str().unwrap()];
    args.extend_from_slice(words);
    Command::new(RVPPCTL).args(&args).output().unwrap()
}

/// Reads until `pred` holds on what was read, EOF, or timeout.
fn read_until(s: &mut UnixStream, pred: impl Fn(&[u8]) -> bool) -> (Vec<u8>, bool) {
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if pred(&got) {
            return (got, false);
        }
        match s.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (got, true),
        }
    }
    panic!("timeout; got {:?}", String::from_utf8_lossy(&got));
}

fn contains(h: &[u8], n: &[u8]) -> bool {
    h.windows(n.len()).any(|w| w == n)
}

/// What vppctl sends for `vppctl show version`: wait for SB TTYPE, answer `vppctl`, send the
/// command with `\n` and a NUL, wait for the NUL, send `quit\n`, read to EOF.
fn vppctl_exchange(sock: &Path, cmd: &str) -> Vec<u8> {
    let mut s = UnixStream::connect(sock).unwrap();
    let (nego, _) = read_until(&mut s, |b| {
        contains(b, &[IAC, SB, TELOPT_TTYPE, TTYPE_SEND, IAC, SE])
    });
    assert!(nego.starts_with(&[IAC, WONT, TELOPT_LINEMODE]));
    let mut msg = vec![IAC, SB, TELOPT_TTYPE, TTYPE_IS];
    msg.extend_from_slice(b"vppctl");
    msg.extend_from_slice(&[IAC, SE]);
    msg.extend_from_slice(cmd.as_bytes());
    msg.extend_from_slice(b"\n\0");
    s.write_all(&msg).unwrap();
    let (out, eof) = read_until(&mut s, |b| b.contains(&0));
    assert!(!eof, "server closed before acknowledging");
    let nul = out.iter().position(|&b| b == 0).unwrap();
    assert_eq!(nul, out.len() - 1, "nothing after the NUL");
    s.write_all(b"quit\n").unwrap();
    let (rest, eof) = read_until(&mut s, |_| false);
    assert!(eof && rest.is_empty(), "expected EOF after quit");
    out[..nul].to_vec()
}

#[test]
fn rvppctl_runs_one_command() {
    let (h, calls) = start("one");
    let out = rvppctl(h.path(), &["show", "version"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "vpp v24.02-rvpp built by test\n"
    );
    // Commands without output still finish (the NUL acknowledges them).
    let out = rvppctl(h.path(), &["silent"]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    // Large output arrives whole.
    let out = rvppctl(h.path(), &["big"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 2000);
    assert!(text.ends_with("line 1999\n"));
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // RVPPCTL_SOCKET selects the socket when -s is absent.
    let out = Command::new(RVPPCTL)
        .args(["echo", "hi", "there"])
        .env("RVPPCTL_SOCKET", h.path())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi there\n");
}

#[test]
fn rvppctl_reads_commands_from_stdin() {
    let (h, _) = start("stdin");
    let mut child = Command::new(RVPPCTL)
        .args(["-s", h.path().to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo one\nsilent\n\necho two\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "one\ntwo\n");
}

#[test]
fn rvppctl_connect_failure_is_reported() {
    let missing = temp_sock("missing");
    let out = rvppctl(&missing, &["show", "version"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect to CLI socket"), "{err}");
    assert!(err.contains(missing.to_str().unwrap()), "{err}");
}

#[test]
fn raw_vppctl_bytes() {
    let (h, _) = start("raw");
    let out = vppctl_exchange(h.path(), "show version");
    assert_eq!(out, b"vpp v24.02-rvpp built by test\n");
    // Empty command: still acknowledged.
    assert_eq!(vppctl_exchange(h.path(), ""), b"");
    // TTYPE answer split across writes, one byte at a time.
    let mut s = UnixStream::connect(h.path()).unwrap();
    read_until(&mut s, |b| contains(b, &[IAC, SB, TELOPT_TTYPE]));
    let mut msg = vec![IAC, SB, TELOPT_TTYPE, TTYPE_IS];
    msg.extend_from_slice(b"VPPCTL");
    msg.extend_from_slice(&[IAC, SE]);
    msg.extend_from_slice(b"echo split\n");
    for b in msg {
        s.write_all(&[b]).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    let (out, _) = read_until(&mut s, |b| b.contains(&0));
    assert!(out.ends_with(b"split\n\0"), "{out:?}");
}

#[test]
fn interactive_telnet_session() {
    let (h, _) = start("interactive");
    let mut s = UnixStream::connect(h.path()).unwrap();
    read_until(&mut s, |b| contains(b, &[IAC, SB, TELOPT_TTYPE]));
    let mut msg = vec![IAC, SB, TELOPT_TTYPE, TTYPE_IS];
    msg.extend_from_slice(b"xterm");
    msg.extend_from_slice(&[IAC, SE, IAC, SB, TELOPT_NAWS, 0, 120, 0, 40, IAC, SE]);
    s.write_all(&msg).unwrap();
    let (banner, _) = read_until(&mut s, |b| b.ends_with(b"vpp# "));
    assert!(!banner.contains(&0));
    // Typed characters are echoed, backspace edits, CR LF runs the command.
    s.write_all(b"echo hellx\x7fo\r\n").unwrap();
    let (out, _) = read_until(&mut s, |b| b.ends_with(b"vpp# "));
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("echo hellx\x08 \x08o\r\n"), "{text:?}");
    assert!(text.contains("hello\r\nvpp# "), "{text:?}");
    s.write_all(b"quit\r\n").unwrap();
    let (_, eof) = read_until(&mut s, |_| false);
    assert!(eof);
}

#[test]
fn plain_clients_get_no_telnet_bytes() {
    let (h, _) = start("plain");
    // Like `echo "show version" | nc -U`: speak first, no telnet.
    let mut s = UnixStream::connect(h.path()).unwrap();
    s.write_all(b"show version\necho plain\n").unwrap();
    let (out, _) = read_until(&mut s, |b| b.ends_with(b"plain\n"));
    assert_eq!(out, b"vpp v24.02-rvpp built by test\nplain\n");
    s.write_all(b"exit\n").unwrap();
    let (rest, eof) = read_until(&mut s, |_| false);
    assert!(eof && rest.is_empty());

    // Like socat: the last command without newline, then a half-close; output still comes.
    let mut s = UnixStream::connect(h.path()).unwrap();
    s.write_all(b"echo half").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let (out, eof) = read_until(&mut s, |_| false);
    assert!(eof);
    assert_eq!(out, b"half\n");
}

#[test]
fn concurrent_clients() {
    let (h, calls) = start("concurrent");
    let path = h.path().to_path_buf();
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let path = path.clone();
            std::thread::spawn(move || {
                for j in 0..5 {
                    let want = format!("client {i} cmd {j}\n");
                    let out = vppctl_exchange(&path, &format!("echo client {i} cmd {j}"));
                    assert_eq!(String::from_utf8_lossy(&out), want);
                }
            })
        })
        .collect();
    // Meanwhile some rvppctl processes too.
    let procs: Vec<_> = (0..4)
        .map(|i| {
            Command::new(RVPPCTL)
                .args(["-s", path.to_str().unwrap(), "echo", "proc", &i.to_string()])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for (i, p) in procs.into_iter().enumerate() {
        let out = p.wait_with_output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("proc {i}\n"));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 16 * 5 + 4);
    assert!(h.stats().sessions_accepted.load(Ordering::Relaxed) >= 84);
}

#[test]
fn disconnects_mid_command_and_long_lines() {
    let (h, calls) = start("disconnect");
    // 1. Client sends a slow command and disconnects before the output.
    {
        let mut s = UnixStream::connect(h.path()).unwrap();
        read_until(&mut s, |b| contains(b, &[IAC, SB, TELOPT_TTYPE]));
        let mut msg = vec![IAC, SB, TELOPT_TTYPE, TTYPE_IS];
        msg.extend_from_slice(b"vppctl");
        msg.extend_from_slice(&[IAC, SE]);
        msg.extend_from_slice(b"slow\n\0");
        s.write_all(&msg).unwrap();
    }
    // 2. Client disconnects in the middle of the telnet negotiation.
    {
        let mut s = UnixStream::connect(h.path()).unwrap();
        read_until(&mut s, |b| contains(b, &[IAC, SB, TELOPT_TTYPE]));
        s.write_all(&[IAC, SB, TELOPT_TTYPE, TTYPE_IS, b'v'])
            .unwrap();
    }
    // 3. Client disconnects in the middle of a command line.
    {
        let mut s = UnixStream::connect(h.path()).unwrap();
        s.write_all(b"echo never finish").unwrap();
    }
    // 4. Client connects and leaves at once.
    drop(UnixStream::connect(h.path()).unwrap());
    // 5. rvppctl killed while its command runs.
    let mut child = Command::new(RVPPCTL)
        .args(["-s", h.path().to_str().unwrap(), "slow"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    child.kill().unwrap();
    child.wait().unwrap();

    // A very long line is refused with a counted error; the session survives.
    let mut s = UnixStream::connect(h.path()).unwrap();
    read_until(&mut s, |b| contains(b, &[IAC, SB, TELOPT_TTYPE]));
    let mut msg = vec![IAC, SB, TELOPT_TTYPE, TTYPE_IS];
    msg.extend_from_slice(b"vppctl");
    msg.extend_from_slice(&[IAC, SE]);
    s.write_all(&msg).unwrap();
    let long = vec![b'x'; 1 << 20];
    s.write_all(&long).unwrap();
    s.write_all(b"\necho after\n").unwrap();
    let (out, _) = read_until(&mut s, |b| b.iter().filter(|&&c| c == 0).count() == 2);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("error: command line too long"), "{text}");
    assert!(text.ends_with("\0after\n\0"), "{text:?}");
    assert_eq!(h.stats().overlong_lines.load(Ordering::Relaxed), 1);
    drop(s);

    // The server is still fine.
    let out = rvppctl(h.path(), &["show", "version"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "vpp v24.02-rvpp built by test\n"
    );
    // Sessions wind down (the slow ones finish their command first).
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.active_sessions() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(h.active_sessions(), 0);
    assert!(calls.load(Ordering::SeqCst) >= 2);
}

#[test]
fn bind_replaces_stale_socket_and_refuses_live_one() {
    let path = temp_sock("stale");
    // A stale socket file: bound, then the listener dropped (the file stays).
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let calls = Arc::new(AtomicUsize::new(0));
    let h = CliServer::bind(&path, CliOptions::default())
        .unwrap()
        .spawn(toy_executor(calls.clone()))
        .unwrap();
    // Root and the group only (docs/security.md).
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o770);
    // A second server on a live socket is refused.
    let e = CliServer::bind(&path, CliOptions::default()).err().unwrap();
    assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
    // A regular file is not replaced.
    let file = path.with_file_name("not-a-socket");
    std::fs::write(&file, b"x").unwrap();
    assert!(CliServer::bind(&file, CliOptions::default()).is_err());
    assert!(file.exists());
    // Shutdown removes the socket and stops serving.
    h.shutdown();
    assert!(!path.exists());
    assert!(UnixStream::connect(&path).is_err());
}
