//! Network namespaces: run code inside one, and test helpers that create namespaces and veths.
//!
//! A namespace is named the way VPP's `host_namespace` is: `pid:N` (`/proc/N/ns/net`), an
//! absolute path (`/var/run/netns/cni-…`), or a bare name under `/var/run/netns`.
//! `setns` is per thread, so [`run`] switches only the calling thread and always switches back;
//! fds opened inside (tun queues, packet sockets, ioctl sockets) stay bound to that namespace.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// Where bare namespace names live (iproute2's convention).
pub const NETNS_RUN_DIR: &str = "/var/run/netns";

/// The filesystem path of a namespace spec: `pid:N`, an absolute path, or a name.
pub fn ns_path(spec: &str) -> io::Result<PathBuf> {
    if let Some(pid) = spec.strip_prefix("pid:") {
        let pid: u32 = pid.parse().map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("bad netns {spec:?}"))
        })?;
        return Ok(PathBuf::from(format!("/proc/{pid}/ns/net")));
    }
    if spec.is_empty() || spec.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad netns {spec:?}"),
        ));
    }
    if spec.starts_with('/') {
        return Ok(PathBuf::from(spec));
    }
    if spec.contains('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad netns name {spec:?}"),
        ));
    }
    Ok(PathBuf::from(NETNS_RUN_DIR).join(spec))
}

/// Open the namespace of a spec (fails like VPP's SYSCALL_ERROR_2 when it does not exist).
pub fn open(spec: &str) -> io::Result<File> {
    let p = ns_path(spec)?;
    File::open(&p).map_err(|e| io::Error::new(e.kind(), format!("netns {}: {e}", p.display())))
}

fn current_thread_ns() -> io::Result<File> {
    File::open("/proc/thread-self/ns/net")
}

fn same_ns(a: &File, b: &File) -> bool {
    match (a.metadata(), b.metadata()) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

fn setns(f: &File) -> io::Result<()> {
    // SAFETY: setns on a namespace fd we hold open; only affects the calling thread.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Switches the thread back to its original namespace when dropped (also while unwinding).
struct Restore(File);

impl Drop for Restore {
    fn drop(&mut self) {
        if let Err(e) = setns(&self.0) {
            // A thread stuck in a foreign namespace would silently misconfigure everything it
            // touches afterwards; stopping is the only safe answer.
            log::error!("netns: cannot return to the original namespace: {e}");
            std::process::abort();
        }
    }
}

/// Run `f` with the calling thread inside namespace `spec`, then switch back (on every path,
/// including a panic in `f`). `None` runs `f` where we are.
pub fn run<T>(spec: Option<&str>, f: impl FnOnce() -> T) -> io::Result<T> {
    let Some(spec) = spec else { return Ok(f()) };
    let target = open(spec)?;
    let orig = current_thread_ns()?;
    if same_ns(&orig, &target) {
        return Ok(f());
    }
    setns(&target)?;
    let _restore = Restore(orig);
    Ok(f())
}

/// As [`run`], on a short-lived helper thread, leaving the caller's thread untouched.
pub fn run_on_thread<T: Send>(spec: &str, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    let target = open(spec)?;
    std::thread::scope(|s| {
        s.spawn(move || {
            setns(&target)?;
            Ok(f())
        })
        .join()
        .map_err(|_| io::Error::other("netns helper thread panicked"))?
    })
}

/// True when running as root (tests that need namespaces skip otherwise).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn sh(args: &[&str]) -> io::Result<Output> {
    let out = Command::new(args[0]).args(&args[1..]).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out)
}

static NEXT_NS: AtomicU32 = AtomicU32::new(0);

/// A uniquely named namespace for tests (`rvpp-t-<pid>-<n>`), deleted on drop.
pub struct TestNetns {
    name: String,
}

impl TestNetns {
    /// Create a fresh namespace with `lo` up.
    pub fn new() -> io::Result<Self> {
        let name = format!(
            "rvpp-t-{}-{}",
            std::process::id(),
            NEXT_NS.fetch_add(1, Ordering::Relaxed)
        );
        sh(&["ip", "netns", "add", &name])?;
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/var/run/netns/<name>`, the form calico passes.
    pub fn path(&self) -> String {
        format!("{NETNS_RUN_DIR}/{}", self.name)
    }

    /// Run a command inside the namespace; an error carries its stderr.
    pub fn exec(&self, args: &[&str]) -> io::Result<Output> {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        sh(&v)
    }

    /// `ip <args>` inside the namespace.
    pub fn ip(&self, args: &[&str]) -> io::Result<Output> {
        let mut v = vec!["ip", "-n", &self.name];
        v.extend_from_slice(args);
        sh(&v)
    }

    /// Run `f` inside the namespace on this thread.
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> io::Result<T> {
        run(Some(&self.path()), f)
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        // Deleting the namespace also deletes every virtual device still inside it.
        if let Err(e) = sh(&["ip", "netns", "del", &self.name]) {
            eprintln!("cleanup: {e}");
        }
    }
}

/// Create a veth pair `a` (in `ns_a`) <-> `b` (in `ns_b`), both up.
pub fn veth_pair(a: &str, ns_a: &TestNetns, b: &str, ns_b: &TestNetns) -> io::Result<()> {
    ns_a.ip(&[
        "link", "add", a, "type", "veth", "peer", "name", b, "netns", &ns_b.name,
    ])?;
    ns_a.ip(&["link", "set", a, "up"])?;
    ns_b.ip(&["link", "set", b, "up"])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_map_to_paths() {
        assert_eq!(ns_path("pid:1").unwrap(), PathBuf::from("/proc/1/ns/net"));
        assert_eq!(
            ns_path("/var/run/netns/cni-1").unwrap(),
            PathBuf::from("/var/run/netns/cni-1")
        );
        assert_eq!(
            ns_path("calico-vpp-ns").unwrap(),
            PathBuf::from("/var/run/netns/calico-vpp-ns")
        );
        assert!(ns_path("pid:x").is_err());
        assert!(ns_path("").is_err());
        assert!(ns_path("a/b").is_err());
    }

    #[test]
    fn run_switches_and_restores() {
        if !is_root() {
            eprintln!("skipping: needs root for network namespaces");
            return;
        }
        let before = current_thread_ns().unwrap();
        let ns = TestNetns::new().unwrap();
        let inside = ns.run(|| current_thread_ns().unwrap()).unwrap();
        assert!(!same_ns(&before, &inside));
        assert!(same_ns(&before, &current_thread_ns().unwrap()));
        // A panic inside still restores.
        let r = std::panic::catch_unwind(|| ns.run(|| panic!("boom")));
        assert!(r.is_err());
        assert!(same_ns(&before, &current_thread_ns().unwrap()));
        let t = run_on_thread(&ns.path(), || current_thread_ns().unwrap()).unwrap();
        assert!(same_ns(&t, &inside));
        assert!(run(Some("rvpp-no-such-ns"), || ()).is_err());
    }
}
