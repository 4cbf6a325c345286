//! `rvpp`: the dataplane daemon. Runs as `rvpp -c /etc/vpp/startup.conf` (or as `vpp`).
#![forbid(unsafe_code)]

use rvpp_control::cli;
use rvpp_control::cli_server::{CliOptions, CliServer};
use rvpp_control::daemon::{Dataplane, DataplaneConfig};
use rvpp_control::startup_conf::{CommandLine, StartupConfig};
use rvpp_control::takeover::Listener;
use rvpp_dataplane::device::RxMode;
use rvpp_drivers::wait::Signals;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const HELP: &str =
    "rvpp: a userspace vector packet processor, drop-in for VPP in Calico's VPP dataplane

usage: rvpp [-c FILE] [VPP-style config words...]
  -c FILE        read startup.conf FILE (VPP syntax: unix, cpu, buffers, socksvr, statseg, dpdk ...)
  -h, --help     this text
  -v, --version  print the version
  --write-api-json DIR
                 write the binary API's .api.json files (for vpp_papi's apidir) and exit
  --take-over SOCKET
                 live restart: take over from the rvpp listening on SOCKET (its API socket
                 path, else its CLI socket path, plus `.takeover`), keeping its taps/tuns,
                 af_packet uplinks and memif servers (the pods stay connected), their
                 sw_if_index values, its configuration and its API and CLI sockets;
                 it exits once this one forwards. Refused, with the old one left running,
                 when its configuration holds what cannot be carried yet (README.md)

With -c, `socksvr { socket-name }` serves VPP's binary API, `statseg { socket-name }` the stats
segment, `unix { cli-listen }` the CLI, `metrics { listen 127.0.0.1:9482 }` Prometheus metrics
on http://<ip:port>/metrics (off by default), `cnat { session-max N, session-max-age S,
tcp-max-age S, session-cleanup-timeout S, scanner on|off }` the cnat session table's size, its
timeouts and its scanner; `dpdk { ... }` takes DPDK devices (built with the `dpdk` feature).
The API, CLI and stats sockets are mode 0770 with the group of `unix { gid }`.
The CLI (`rvppctl ... help`) and the API cover interfaces, tables, routes, neighbours (limits,
ageing, proxy ARP, ND proxy), punt, uRPF, multicast routes, TTL fixup, the classifier (input ACL
tables, session redirects: calico's DNS to the host tap), PBL clients, cnat (services, SNAT),
npol (policies), VXLAN, IPIP, IPsec ESP (AES-GCM SAs protecting IPIP and ipsecN
interfaces), WireGuard and SRv6 (policies, localsids, steering). Without -c, rvpp starts from an embedded default: a main thread that forwards, the CLI socket on
/run/rvpp/cli.sock, and a demo (a packet generator pg0 routed to a null interface null1).
Talk to it with `rvppctl -s /run/rvpp/cli.sock show runtime` (or vppctl). Stop it with SIGINT or
SIGTERM. SIGUSR2 upgrades in place: rvpp starts the binary it was started as (argv[0], e.g. a
newly installed /usr/bin/vpp) with its arguments and --take-over as its child, then becomes a
stand-in with the same pid (`rvpp --stand-in <pid>`: forwards SIGINT/SIGTERM/SIGHUP/SIGUSR2,
exits with the new rvpp's status), for a parent that waits on that pid such as vpp-manager.
Environment: RVPP_LOG=error|warn|info|debug overrides the log level.
";

/// CLI lines run at start when no config file is given: something to look at.
const DEMO_EXEC: &str = "
create packet-generator interface pg0 count 50000000 size 64 dst 198.19.0.0/17
create null interface null1
set interface ip address pg0 198.18.0.1/24
set interface ip address null1 198.19.255.1/30
set ip neighbor null1 198.19.255.2 02:00:00:00:00:02
ip route add 198.19.0.0/16 via 198.19.255.2 null1
set interface state null1 up
set interface state pg0 up
packet-generator enable
";

struct Logger(log::LevelFilter);
impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= self.0
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            eprintln!(
                "rvpp[{}]: {}: {}",
                std::process::id(),
                r.level().as_str().to_lowercase(),
                r.args()
            );
        }
    }
    fn flush(&self) {}
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, pid] = args.as_slice() {
        if flag == "--stand-in" {
            // What a live upgrade leaves of the old process (rvpp_control::takeover).
            rvpp_control::takeover::stand_in(pid.parse().unwrap_or(0));
        }
    }
    if let [flag, dir] = args.as_slice() {
        if flag == "--write-api-json" {
            // What vpp_papi's apidir needs: one <module>.api.json per module.
            match rvpp_vppapi::apijson::write_api_json_dir(std::path::Path::new(dir)) {
                Ok(files) => {
                    println!("wrote {} .api.json files to {dir}", files.len());
                    return;
                }
                Err(e) => {
                    eprintln!("rvpp: {dir}: {e}");
                    std::process::exit(1);
                }
            }
        }
    }
    let (args, take_over) = match take_over_arg(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("rvpp: {e}");
            std::process::exit(1);
        }
    };
    let cmd = match CommandLine::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rvpp: {e}");
            std::process::exit(1);
        }
    };
    if cmd.help {
        print!("{HELP}");
        return;
    }
    if cmd.version {
        println!("vpp v{}-rvpp", cli::VERSION);
        return;
    }
    let cfg = match cmd.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rvpp: {e}");
            std::process::exit(1);
        }
    };
    let level = match std::env::var("RVPP_LOG").ok().as_deref() {
        Some("error") => log::LevelFilter::Error,
        Some("warn") => log::LevelFilter::Warn,
        Some("debug") => log::LevelFilter::Debug,
        Some("info") => log::LevelFilter::Info,
        _ => cfg
            .logging
            .default_log_level
            .to_level_filter()
            .max(log::LevelFilter::Info),
    };
    let _ = log::set_logger(Box::leak(Box::new(Logger(level))));
    log::set_max_level(level);
    for w in &cfg.warnings {
        log::warn!("{w}");
    }
    if let Err(e) = run(
        &cfg,
        cmd.config_file.is_none() && cmd.inline_config.is_none(),
        take_over.as_deref(),
        &args,
    ) {
        log::error!("{e}");
        std::process::exit(1);
    }
}

/// `--take-over <socket>` (or `--take-over=<socket>`) out of the arguments.
fn take_over_arg(args: Vec<String>) -> Result<(Vec<String>, Option<PathBuf>), String> {
    let mut rest = Vec::new();
    let mut path = None;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if a == "--take-over" {
            let p = it
                .next()
                .ok_or("--take-over needs the running rvpp's handover socket")?;
            path = Some(PathBuf::from(p));
        } else if let Some(p) = a.strip_prefix("--take-over=") {
            path = Some(PathBuf::from(p));
        } else {
            rest.push(a);
        }
    }
    Ok((rest, path))
}

fn run(
    cfg: &StartupConfig,
    demo: bool,
    take_over: Option<&Path>,
    args: &[String],
) -> Result<(), String> {
    let signals = Signals::block_termination().map_err(|e| format!("signals: {e}"))?;
    // Before anything of ours is bound: a refusal leaves nothing behind.
    let mut incoming = match take_over {
        Some(p) => {
            let inc = rvpp_control::takeover::connect(p)?;
            log::info!(
                "take-over: received the configuration of pid {} ({} fds)",
                inc.old_pid,
                inc.fds.len()
            );
            Some(inc)
        }
        None => None,
    };
    let dcfg = DataplaneConfig {
        buffers: cfg.buffers.buffers_per_numa,
        data_size: cfg.buffers.default_data_size as usize,
        try_hugepages: !cfg.buffers.no_hugetlb,
        main_core: cfg.cpu.main_core,
        worker_cores: cfg.cpu.worker_cores(),
        rx_mode: RxMode::Adaptive,
        cnat: cfg.cnat.clone(),
    };
    let dp = Dataplane::start(&dcfg)?;
    if let Some(inc) = &mut incoming {
        let t = std::time::Instant::now();
        inc.restore(&dp)?;
        log::info!(
            "take-over: configuration rebuilt and devices polled in {} ms",
            t.elapsed().as_millis()
        );
        inc.ready()?;
        log::info!("take-over: pid {} has stopped forwarding", inc.old_pid);
    }
    #[cfg(feature = "dpdk")]
    let _dpdk = rvpp_control::dpdk_setup::start(&dp, cfg.dpdk.as_ref(), cfg.cpu.main_core)?;
    let exec: rvpp_control::cli_server::Executor = {
        let dp = dp.clone();
        Arc::new(move |line: &str| {
            let _running = dp.config_shared();
            cli::execute(&dp, line)
        })
    };
    // A group that does not resolve is a startup error, not a socket quietly left to root.
    let gid = match &cfg.unix.gid {
        Some(g) => Some(g.resolve().map_err(|e| format!("unix {{ gid }}: {e}"))?),
        None => None,
    };
    let cli_handle = match cfg.cli_socket() {
        Some(path) => {
            let mut opts = CliOptions::from_unix(&cfg.unix);
            opts.gid = gid;
            let srv = match incoming.as_mut().and_then(|i| i.listener("cli", &path)) {
                Some(l) => {
                    log::info!("CLI: the socket handed over");
                    CliServer::adopt(l, &path, opts)
                }
                None => CliServer::bind(&path, opts),
            }
            .map_err(|e| format!("cli-listen {}: {e}", path.display()))?;
            log::info!("CLI on {}", path.display());
            Some(srv.spawn(exec.clone()).map_err(|e| format!("cli: {e}"))?)
        }
        None => None,
    };
    let stats_opts = rvpp_control::stats::Options {
        per_node_counters: cfg.statseg.per_node_counters,
        gid,
    };
    let stats = match rvpp_control::stats::start_with_options(
        dp.clone(),
        &cfg.statseg.socket_name,
        cfg.statseg.size,
        stats_opts,
    ) {
        Ok(s) => {
            log::info!("stats segment on {}", cfg.statseg.socket_name.display());
            Some(s)
        }
        Err(e) => {
            log::error!(
                "stats segment on {}: {e}",
                cfg.statseg.socket_name.display()
            );
            None
        }
    };
    let api = match cfg.api_socket() {
        Some(path) => match match incoming.as_mut().and_then(|i| i.listener("api", path)) {
            Some(l) => {
                log::info!("binary API: the socket handed over");
                rvpp_control::api::serve_on(dp.clone(), l, path)
            }
            None => rvpp_control::api::serve(dp.clone(), path, gid),
        } {
            Ok(s) => {
                log::info!("binary API on {}", path.display());
                Some(s)
            }
            Err(e) => {
                log::error!("binary API on {}: {e}", path.display());
                None
            }
        },
        None => None,
    };
    let metrics = match cfg.metrics.listen {
        Some(addr) => {
            let counts = api.as_ref().map(|a| a.message_counts());
            // After a take-over the old process may hold the port for a few more moments.
            let t = std::time::Instant::now();
            let srv = loop {
                match rvpp_control::metrics::serve(dp.clone(), counts.clone(), addr) {
                    Err(e)
                        if e.kind() == std::io::ErrorKind::AddrInUse
                            && incoming.is_some()
                            && t.elapsed() < Duration::from_secs(5) =>
                    {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    r => break r.map_err(|e| format!("metrics listen {addr}: {e}"))?,
                }
            };
            log::info!("Prometheus metrics on http://{}/metrics", srv.local_addr());
            Some(srv)
        }
        None => None,
    };
    if let Some(p) = &cfg.unix.pidfile {
        if let Err(e) = std::fs::write(p, format!("{}\n", std::process::id())) {
            log::warn!("pidfile {}: {e}", p.display());
        }
    }
    let _handover = match rvpp_control::takeover::socket_path(cfg) {
        Some(path) => {
            let mut ls = Vec::new();
            if let (Some(a), Some(p)) = (&api, cfg.api_socket()) {
                let fd = a
                    .listener()
                    .try_clone()
                    .map_err(|e| format!("api socket: {e}"))?;
                ls.push(Listener {
                    name: "api",
                    path: p.to_path_buf(),
                    fd: fd.into(),
                });
            }
            if let (Some(c), Some(p)) = (&cli_handle, cfg.cli_socket()) {
                if let Some(l) = c.listener() {
                    let fd = l
                        .try_clone_to_owned()
                        .map_err(|e| format!("cli socket: {e}"))?;
                    ls.push(Listener {
                        name: "cli",
                        path: p,
                        fd,
                    });
                }
            }
            match rvpp_control::takeover::listen(dp.clone(), &path, ls) {
                Ok(h) => {
                    log::info!("take-over socket on {}", path.display());
                    Some(h)
                }
                Err(e) => {
                    log::error!("take-over socket {}: {e}", path.display());
                    None
                }
            }
        }
        None => None,
    };
    let mut lines: Vec<String> = Vec::new();
    if incoming.is_some() {
        // The configuration came with the take-over; replaying the exec file would add to it.
        log::info!("take-over: not running the exec file");
    } else if demo {
        lines.extend(DEMO_EXEC.lines().map(String::from));
    }
    if let Some(f) = cfg.unix.exec.as_ref().filter(|_| incoming.is_none()) {
        match std::fs::read_to_string(f) {
            Ok(s) => lines.extend(s.lines().map(String::from)),
            Err(e) => log::error!("exec {}: {e}", f.display()),
        }
    }
    for (n, l) in lines.iter().enumerate() {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with("comment") {
            continue;
        }
        let out = exec(l);
        if !out.trim().is_empty() {
            log::info!("exec line {}: {l}: {}", n + 1, out.trim());
        }
    }
    log::info!(
        "rvpp v{} up: {} forwarding thread(s)",
        cli::VERSION,
        dp.workers.len()
    );
    let mut upgrade: Option<std::process::Child> = None;
    let sig = loop {
        match signals.wait(Duration::from_millis(10)) {
            Some(libc::SIGUSR2) => {
                match (
                    &upgrade,
                    rvpp_control::takeover::socket_path(cfg),
                    std::env::args_os().next(),
                ) {
                    (Some(_), _, _) => log::warn!("live upgrade: one is under way"),
                    (None, Some(sock), Some(exe)) => {
                        match rvpp_control::takeover::start_upgrade(&exe, args, &sock) {
                            Ok(c) => upgrade = Some(c),
                            Err(e) => log::error!("live upgrade: {e}"),
                        }
                    }
                    _ => log::error!("live upgrade: no take-over socket (no API or CLI socket)"),
                }
            }
            Some(s) => break s,
            None => {}
        }
        if let Some(st) = upgrade.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
            rvpp_control::takeover::upgrade_failed(st);
            upgrade = None;
        }
        dp.housekeeping();
        if let Some(s) = &stats {
            s.update();
        }
    };
    log::info!("signal {sig}: stopping");
    drop(metrics);
    drop(api);
    drop(stats);
    drop(cli_handle);
    dp.stop();
    if let Some(p) = &cfg.unix.pidfile {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}
