//! deploy/install.sh against the built binaries, in a temporary prefix: rvpp becomes `vpp` and
//! rvppctl `vppctl` (copies or symlinks), re-running changes nothing, a foreign `vpp` is only
//! replaced with `--force` (and restored by `--uninstall`), `--uninstall` removes only what it
//! installed. Then the installed `vpp` runs calico-vpp's startup.conf template the way
//! vpp-manager starts it (`vpp -c startup.conf`), answers `vppctl show version`, is upgraded in
//! place (binaries installed again, SIGUSR2: a live restart behind the same pid) and stops on
//! SIGTERM.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const RVPP: &str = env!("CARGO_BIN_EXE_rvpp");
const RVPPCTL: &str = env!("CARGO_BIN_EXE_rvppctl");

/// calico-vpp's startup.conf template (vpp-container.md §3), verbatim; paths are rewritten by
/// [`calico_conf`].
const CALICO_TEMPLATE: &str = "\
unix { nodaemon  full-coredump  cli-listen /var/run/vpp/cli.sock  pidfile /run/vpp/vpp.pid  exec /etc/vpp/startup.exec }
api-trace { on }
cpu { workers 0 }
socksvr { socket-name /var/run/vpp/vpp-api.sock }
plugins { plugin default { enable }  plugin dpdk_plugin.so { disable }  plugin ping_plugin.so { disable }
          plugin bpf_trace_filter.so { enable }  plugin dispatch_trace_plugin.so { enable } }
buffers { buffers-per-numa 131072 }
";

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("rvpp-deploy-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/install.sh")
}

fn install(prefix: &Path, args: &[&str]) -> Output {
    Command::new("bash")
        .arg(script())
        .args(["--rvpp", RVPP, "--rvppctl", RVPPCTL, "--prefix"])
        .arg(prefix)
        .args(args)
        .output()
        .unwrap()
}

fn install_ok(prefix: &Path, args: &[&str]) -> String {
    let out = install(prefix, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "install.sh {args:?} failed:\n{text}");
    text
}

/// Every file and symlink under `dir`: path -> content or `-> target`.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(base: &Path, d: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(base).unwrap().to_path_buf();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.file_type().is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                out.insert(rel, format!("-> {}", t.display()).into_bytes());
            } else if m.is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn version_of(bin: &Path) -> String {
    let out = Command::new(bin).arg("--version").output().unwrap();
    assert!(out.status.success(), "{} --version", bin.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write_exec(p: &Path, text: &str) {
    std::fs::write(p, text).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn install_copy_symlink_rerun_and_uninstall() {
    let t = TempDir::new("install");
    let p = &t.0;
    let bin = p.join("usr/bin");
    std::fs::create_dir_all(&bin).unwrap();
    // Someone else's file in the same directory is never touched.
    write_exec(&bin.join("other"), "#!/bin/sh\necho other\n");
    let before = snapshot(p);

    install_ok(p, &["--copy"]);
    let want_version = version_of(Path::new(RVPP));
    assert!(want_version.contains("rvpp"), "{want_version}");
    assert_eq!(version_of(&bin.join("vpp")), want_version);
    assert_eq!(version_of(&bin.join("rvpp")), want_version);
    assert_eq!(
        std::fs::read(bin.join("vppctl")).unwrap(),
        std::fs::read(RVPPCTL).unwrap(),
        "vppctl is rvppctl"
    );
    assert!(p.join("var/lib/rvpp/install-manifest").is_file());
    let copied = snapshot(p);
    install_ok(p, &["--copy"]);
    assert_eq!(snapshot(p), copied, "a second run changes nothing");

    // Switching to symlinks replaces what it installed itself, without --force.
    install_ok(p, &["--symlink"]);
    assert_eq!(
        std::fs::read_link(bin.join("vpp")).unwrap(),
        Path::new("rvpp")
    );
    assert_eq!(
        std::fs::read_link(bin.join("vppctl")).unwrap(),
        Path::new("rvppctl")
    );
    assert_eq!(version_of(&bin.join("vpp")), want_version);
    let linked = snapshot(p);
    install_ok(p, &["--symlink"]);
    assert_eq!(snapshot(p), linked, "a second run changes nothing");

    let out = install_ok(p, &["--uninstall"]);
    assert_eq!(
        snapshot(p),
        before,
        "uninstall leaves the prefix as it was:\n{out}"
    );
    assert!(!p.join("var/lib/rvpp").exists());
    // Nothing left to uninstall is an error, and still touches nothing.
    assert!(!install(p, &["--uninstall"]).status.success());
    assert_eq!(snapshot(p), before);
}

#[test]
fn foreign_vpp_needs_force_and_comes_back_on_uninstall() {
    let t = TempDir::new("foreign");
    let p = &t.0;
    let bin = p.join("usr/bin");
    std::fs::create_dir_all(&bin).unwrap();
    let real = "#!/bin/sh\necho 'vpp v24.10-release'\n";
    write_exec(&bin.join("vpp"), real);
    let before = snapshot(p);

    for mode in ["--copy", "--symlink"] {
        let out = install(p, &[mode]);
        assert!(!out.status.success(), "a foreign vpp was replaced ({mode})");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--force"), "{err}");
        assert_eq!(snapshot(p), before, "a refusal changes nothing ({mode})");
    }

    install_ok(p, &["--force"]);
    assert_eq!(
        std::fs::read_to_string(bin.join("vpp.rvpp-orig")).unwrap(),
        real
    );
    assert!(version_of(&bin.join("vpp")).contains("rvpp"));
    // Now vpp is its own: re-running needs no --force and keeps the original's copy.
    let installed = snapshot(p);
    install_ok(p, &[]);
    assert_eq!(snapshot(p), installed);

    // A file replaced after installation is someone else's again: uninstall leaves it.
    write_exec(&bin.join("vppctl"), "#!/bin/sh\necho mine\n");
    let out = install_ok(p, &["--uninstall"]);
    assert_eq!(
        std::fs::read_to_string(bin.join("vpp")).unwrap(),
        real,
        "{out}"
    );
    assert!(!bin.join("vpp.rvpp-orig").exists());
    assert!(!bin.join("rvpp").exists() && !bin.join("rvppctl").exists());
    assert_eq!(
        std::fs::read_to_string(bin.join("vppctl")).unwrap(),
        "#!/bin/sh\necho mine\n",
        "{out}"
    );
    // Refuses a source that is not rvpp (here: the fake VPP).
    let out = Command::new("bash")
        .arg(script())
        .arg("--rvpp")
        .arg(bin.join("vpp"))
        .args(["--rvppctl", RVPPCTL, "--prefix"])
        .arg(p.join("other"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!p.join("other/usr/bin/vpp").exists());
}

/// calico's template with its paths moved into `dir`, runnable here: no hugepages needed (rvpp
/// falls back to ordinary memory), no DPDK (the plugin is disabled in the template), main
/// thread only (`workers 0`, as calico has it); the stats socket, which the template leaves at
/// VPP's default `<runtime-dir>/stats.sock`, lands in `dir` through `runtime-dir`.
fn calico_conf(dir: &Path) -> String {
    let d = dir.display();
    CALICO_TEMPLATE
        .replace("/var/run/vpp/", &format!("{d}/"))
        .replace("/run/vpp/", &format!("{d}/"))
        .replace("/etc/vpp/", &format!("{d}/"))
        .replace(
            "unix { nodaemon",
            &format!("unix {{ runtime-dir {d}  nodaemon"),
        )
}

#[test]
fn installed_vpp_runs_calicos_startup_conf() {
    let t = TempDir::new("run");
    let p = &t.0;
    install_ok(p, &["--symlink"]);
    let run = p.join("run");
    std::fs::create_dir_all(&run).unwrap();
    let conf = run.join("startup.conf");
    std::fs::write(&conf, calico_conf(&run)).unwrap();
    // What vpp-manager writes to startup.exec (CALICOVPP_CONFIG_EXEC_TEMPLATE lines).
    std::fs::write(run.join("startup.exec"), "show version\n").unwrap();

    let mut child = Command::new(p.join("usr/bin/vpp"))
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let cli = run.join("cli.sock");
    let api = run.join("vpp-api.sock");
    let t0 = Instant::now();
    while !(cli.exists() && api.exists()) {
        if let Some(st) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "vpp exited ({st}) before its sockets appeared:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if t0.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "no CLI/API socket after 30 s:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // `vppctl show version` answers rvpp's; the pidfile's pid.
    let answers = |when: &str| {
        let out = Command::new(p.join("usr/bin/vppctl"))
            .arg("-s")
            .arg(&cli)
            .args(["show", "version"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("rvpp"),
            "{when}: {text}"
        );
        std::fs::read_to_string(run.join("vpp.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
            .unwrap_or(0)
    };
    assert_eq!(answers("started"), child.id(), "pidfile");

    // A rolling upgrade in place (deploy/README.md): the new binaries installed over the
    // running ones, then SIGUSR2. The pid vpp-manager waits on stays, as a stand-in.
    install_ok(p, &["--copy"]);
    let cmdline = |pid: u32| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default()
    };
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::USR2,
    );
    let t0 = Instant::now();
    while !cmdline(child.id()).contains("--stand-in") {
        assert!(child.try_wait().unwrap().is_none(), "vpp exited on SIGUSR2");
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no stand-in after SIGUSR2"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The new rvpp writes the pidfile once it serves the sockets, a moment after the stand-in.
    let t0 = Instant::now();
    let new = loop {
        let pid = answers("after the upgrade");
        if pid != child.id() {
            break pid;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the pidfile names the old pid"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(cmdline(new).contains("--take-over"), "{}", cmdline(new));

    // vpp-manager forwards SIGTERM to VPP as SIGINT; the pod's own stop is SIGTERM. Both stop it.
    // Our child, not yet waited for, so its pid cannot have been reused.
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    );
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("vpp still running 10 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    assert!(status.success(), "exit after SIGTERM: {status}\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        cmdline(new).is_empty(),
        "the upgraded rvpp outlived its stand-in"
    );
}
