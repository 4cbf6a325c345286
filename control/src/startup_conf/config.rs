//! The typed configuration: the stanzas rvpp honours, with VPP's defaults, built from the tree.

use std::path::{Path, PathBuf};

use super::values::{parse_cpu_mask, parse_memory_size, parse_uint, Ctx};
use super::{ConfError, ConfTree, ConfWarning, Node};

/// The configuration rvpp uses when it is started without `-c FILE` and without inline
/// configuration on the command line: run in the foreground, serve the CLI and the binary API
/// under `/run/rvpp`, main thread only (no workers).
pub const DEFAULT_STARTUP_CONF: &str = "\
unix {
  nodaemon
  cli-listen /run/rvpp/cli.sock
  runtime-dir /run/rvpp
}
socksvr { socket-name /run/rvpp/api.sock }
statseg { socket-name /run/rvpp/stats.sock }
cpu { workers 0 }
";

/// Origin name used for [`DEFAULT_STARTUP_CONF`] in messages.
pub const DEFAULT_ORIGIN: &str = "<built-in default>";

/// VPP's default runtime directory when running as root (`/run/<vlib_default_runtime_dir>`).
pub const DEFAULT_RUNTIME_DIR: &str = "/run/vpp";
/// VPP's default CLI prompt.
pub const DEFAULT_CLI_PROMPT: &str = "vpp# ";

/// A page size option (`page-size` in `buffers` / `statseg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageSize {
    /// The system's normal page size (`default`, `4k` on x86).
    Default,
    /// The system's default huge page size (`default-hugepage`).
    DefaultHugepage,
    Bytes(u64),
}

impl PageSize {
    pub fn parse(s: &str) -> Option<PageSize> {
        match s.to_ascii_lowercase().as_str() {
            "default" => Some(PageSize::Default),
            "default-hugepage" => Some(PageSize::DefaultHugepage),
            _ => parse_memory_size(s)
                .filter(|n| n.is_power_of_two())
                .map(PageSize::Bytes),
        }
    }
}

/// VPP log levels (`foreach_vlib_log_level`), most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Emerg,
    Alert,
    Crit,
    Error,
    Warn,
    Notice,
    Info,
    Debug,
    Disabled,
}

impl LogLevel {
    pub fn parse(s: &str) -> Option<LogLevel> {
        Some(match s.to_ascii_lowercase().as_str() {
            "emerg" => LogLevel::Emerg,
            "alert" => LogLevel::Alert,
            "crit" => LogLevel::Crit,
            "error" | "err" => LogLevel::Error,
            "warn" | "warning" => LogLevel::Warn,
            "notice" => LogLevel::Notice,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "disabled" | "off" => LogLevel::Disabled,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Emerg => "emerg",
            LogLevel::Alert => "alert",
            LogLevel::Crit => "crit",
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Notice => "notice",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Disabled => "disabled",
        }
    }

    /// The closest `log` crate filter (notice maps to info).
    pub fn to_level_filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Emerg | LogLevel::Alert | LogLevel::Crit | LogLevel::Error => {
                log::LevelFilter::Error
            }
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Notice | LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Disabled => log::LevelFilter::Off,
        }
    }
}

/// `unix { coredump-size ... }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoredumpSize {
    Unlimited,
    Bytes(u64),
}

/// `unix { gid ... }`: a numeric gid or a group name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GidSpec {
    Id(u32),
    Name(String),
}

impl GidSpec {
    /// Resolves a group name through the system group database.
    pub fn resolve(&self) -> std::io::Result<u32> {
        match self {
            GidSpec::Id(g) => Ok(*g),
            GidSpec::Name(name) => match nix::unistd::Group::from_name(name) {
                Ok(Some(g)) => Ok(g.gid.as_raw()),
                Ok(None) => Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("group `{name}` not found"),
                )),
                Err(e) => Err(std::io::Error::from(e)),
            },
        }
    }
}

/// `unix { ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct UnixConfig {
    pub nodaemon: bool,
    pub interactive: bool,
    pub nosyslog: bool,
    pub nocolor: bool,
    pub nobanner: bool,
    /// `cli-listen`: a socket path (or VPP's `host:port` form, kept as text). `None` = no CLI
    /// socket (VPP only listens when configured).
    pub cli_listen: Option<String>,
    pub cli_prompt: String,
    pub cli_line_mode: bool,
    pub cli_no_banner: bool,
    pub cli_no_pager: bool,
    pub cli_history_limit: u32,
    pub cli_pager_buffer_limit: u32,
    pub poll_sleep_usec: Option<u32>,
    /// `log FILE`: CLI command log.
    pub log: Option<PathBuf>,
    pub full_coredump: bool,
    pub coredump_size: Option<CoredumpSize>,
    pub gid: Option<GidSpec>,
    /// `exec FILE` / `startup-config FILE`: CLI script run at startup.
    pub exec: Option<PathBuf>,
    pub pidfile: Option<PathBuf>,
    /// `runtime-dir` (default `/run/vpp`); `use-current-dir` replaces it with the cwd.
    pub runtime_dir: PathBuf,
    pub use_current_dir: bool,
}

impl Default for UnixConfig {
    fn default() -> Self {
        UnixConfig {
            nodaemon: false,
            interactive: false,
            nosyslog: false,
            nocolor: false,
            nobanner: false,
            cli_listen: None,
            cli_prompt: DEFAULT_CLI_PROMPT.to_string(),
            cli_line_mode: false,
            cli_no_banner: false,
            cli_no_pager: false,
            cli_history_limit: 50,
            cli_pager_buffer_limit: 100_000,
            poll_sleep_usec: None,
            log: None,
            full_coredump: false,
            coredump_size: None,
            gid: None,
            exec: None,
            pidfile: None,
            runtime_dir: PathBuf::from(DEFAULT_RUNTIME_DIR),
            use_current_dir: false,
        }
    }
}

impl UnixConfig {
    /// The CLI socket path, if `cli-listen` names a filesystem path (not `host:port`).
    pub fn cli_socket_path(&self) -> Option<PathBuf> {
        let l = self.cli_listen.as_deref()?;
        if l.starts_with('/') || l.starts_with('.') || !l.contains(':') {
            Some(PathBuf::from(l))
        } else {
            None
        }
    }
}

/// `api-trace { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTraceConfig {
    pub on: bool,
    /// Trace ring size (VPP default 256k entries).
    pub nitems: u32,
    pub save_api_table: Option<String>,
}

impl Default for ApiTraceConfig {
    fn default() -> Self {
        ApiTraceConfig {
            on: false,
            nitems: 256 << 10,
            save_api_table: None,
        }
    }
}

/// `socksvr { ... }` (present = listen).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocksvrConfig {
    /// Default `<runtime-dir>/api.sock`.
    pub socket_name: PathBuf,
}

/// `cpu { ... }`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CpuConfig {
    pub main_core: Option<u32>,
    /// `corelist-workers` / `coremask-workers`, sorted.
    pub corelist_workers: Option<Vec<u32>>,
    /// `workers N`.
    pub workers: Option<u32>,
    pub skip_cores: u32,
    pub relative: bool,
    pub use_pthreads: bool,
    pub thread_prefix: Option<String>,
    pub numa_heap_size: Option<u64>,
    pub scheduler_policy: Option<String>,
    pub scheduler_priority: Option<u32>,
}

impl CpuConfig {
    /// Number of worker threads (0 = main thread only).
    pub fn n_workers(&self) -> usize {
        match (&self.corelist_workers, self.workers) {
            (Some(l), _) => l.len(),
            (None, Some(n)) => n as usize,
            (None, None) => 0,
        }
    }

    /// The CPU for each worker, when known: the corelist, or for `workers N` with a `main-core`,
    /// VPP's placement (cores after main-core + skip-cores, in order). `None` entries float.
    pub fn worker_cores(&self) -> Vec<Option<u32>> {
        if let Some(l) = &self.corelist_workers {
            return l.iter().map(|&c| Some(c)).collect();
        }
        let n = self.workers.unwrap_or(0);
        match self.main_core {
            Some(m) => (0..n).map(|i| Some(m + 1 + self.skip_cores + i)).collect(),
            None => (0..n).map(|_| None).collect(),
        }
    }
}

/// `buffers { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuffersConfig {
    /// Default 16384.
    pub buffers_per_numa: u32,
    /// `default data-size N`, default 2048.
    pub default_data_size: u32,
    pub page_size: Option<PageSize>,
    /// `layout natural|packed`.
    pub layout: Option<String>,
    /// `numa N { buffers M }` overrides.
    pub numa: Vec<(u32, u32)>,
    /// `no-hugetlb` (calico's VPP; written by vpp-manager without hugepages).
    pub no_hugetlb: bool,
}

impl Default for BuffersConfig {
    fn default() -> Self {
        BuffersConfig {
            buffers_per_numa: 16384,
            default_data_size: 2048,
            page_size: None,
            layout: None,
            numa: Vec::new(),
            no_hugetlb: false,
        }
    }
}

/// `statseg { ... }` (the stats segment is always served).
#[derive(Debug, Clone, PartialEq)]
pub struct StatsegConfig {
    /// Default `<runtime-dir>/stats.sock`.
    pub socket_name: PathBuf,
    /// Segment size, default 32 MiB.
    pub size: u64,
    pub page_size: Option<PageSize>,
    pub per_node_counters: bool,
    /// Seconds, default 10.
    pub update_interval: f64,
}

/// `metrics { listen <ip:port> }`: rvpp's own Prometheus endpoint (rvpp only; VPP has no such
/// stanza). Off unless `listen` is given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsConfig {
    pub listen: Option<std::net::SocketAddr>,
}

/// `cnat { session-max N }`: VPP's cnat plugin section. `session_max` is how many flows the
/// session table holds (VPP's limit, at most 2^24); `None` keeps rvpp's default,
/// `rvpp_dataplane::cnat::CnatConfig::default()`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CnatStartupConfig {
    pub session_max: Option<u32>,
}

/// VPP's `CNAT_MAX_SESSIONS`.
pub const CNAT_SESSION_MAX_LIMIT: u32 = 1 << 24;

/// One `plugin NAME { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginConfig {
    pub name: String,
    pub enable: bool,
    pub disable: bool,
    pub skip_version_check: bool,
    pub line: usize,
}

/// `plugins { ... }`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PluginsConfig {
    pub path: Option<String>,
    pub add_path: Option<String>,
    pub name_filter: Option<String>,
    /// `plugin default { disable }`.
    pub default_disable: bool,
    pub plugins: Vec<PluginConfig>,
}

impl PluginsConfig {
    /// Whether plugin `name` (e.g. `dpdk_plugin.so`) is enabled under this configuration.
    pub fn is_enabled(&self, name: &str) -> bool {
        match self.plugins.iter().find(|p| p.name == name) {
            Some(p) if p.enable => true,
            Some(p) if p.disable => false,
            _ => !self.default_disable,
        }
    }
}

/// `logging { class NAME { ... } }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogClassConfig {
    pub class: String,
    pub level: Option<LogLevel>,
    pub syslog_level: Option<LogLevel>,
    pub rate_limit: Option<u32>,
}

/// `logging { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggingConfig {
    /// Default `notice`.
    pub default_log_level: LogLevel,
    /// Default `warn`.
    pub default_syslog_log_level: LogLevel,
    /// Default `disabled`.
    pub default_kmsg_log_level: LogLevel,
    /// Log ring size, default 512.
    pub size: u32,
    /// Seconds, default 3.
    pub unthrottle_time: u32,
    pub add_to_elog: bool,
    pub classes: Vec<LogClassConfig>,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            default_log_level: LogLevel::Notice,
            default_syslog_log_level: LogLevel::Warn,
            default_kmsg_log_level: LogLevel::Disabled,
            size: 512,
            unthrottle_time: 3,
            add_to_elog: false,
            classes: Vec::new(),
        }
    }
}

/// `dpdk { dev ADDR { ... } }` (also `dev default { ... }`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DpdkDevConfig {
    /// PCI address (`0000:00:04.0`), VMBUS id, or `default`.
    pub addr: String,
    pub num_rx_queues: Option<u32>,
    pub num_tx_queues: Option<u32>,
    pub num_rx_desc: Option<u32>,
    pub num_tx_desc: Option<u32>,
    pub name: Option<String>,
    /// Interface tag; calico finds its uplink by tag `main-<ifname>`.
    pub tag: Option<String>,
    pub workers: Option<Vec<u32>>,
    pub devargs: Option<String>,
    pub tso: Option<bool>,
    pub no_rx_interrupts: bool,
    pub line: usize,
}

/// `dpdk { ... }`: the typed subset plus the full subtree in `node`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DpdkConfig {
    pub devs: Vec<DpdkDevConfig>,
    pub dev_default: Option<DpdkDevConfig>,
    pub vdevs: Vec<String>,
    pub no_hugetlb: bool,
    pub iova_mode: Option<String>,
    pub socket_mem: Option<String>,
    pub uio_driver: Option<String>,
    pub no_pci: bool,
    pub no_multi_seg: bool,
    pub no_tx_checksum_offload: bool,
    pub enable_tcp_udp_checksum: bool,
    /// The whole `dpdk` section(s), merged, as parsed.
    pub node: Node,
}

impl DpdkConfig {
    /// Device config for `addr`, falling back to `dev default`.
    pub fn dev(&self, addr: &str) -> Option<&DpdkDevConfig> {
        self.devs
            .iter()
            .find(|d| d.addr.eq_ignore_ascii_case(addr))
            .or(self.dev_default.as_ref())
    }
}

/// The typed startup configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct StartupConfig {
    pub unix: UnixConfig,
    pub api_trace: ApiTraceConfig,
    /// `None` when there is no `socksvr` stanza: do not serve the binary API socket.
    pub socksvr: Option<SocksvrConfig>,
    pub cpu: CpuConfig,
    pub buffers: BuffersConfig,
    pub statseg: StatsegConfig,
    pub metrics: MetricsConfig,
    pub cnat: CnatStartupConfig,
    pub plugins: PluginsConfig,
    pub logging: LoggingConfig,
    /// `None` when there is no `dpdk` stanza.
    pub dpdk: Option<DpdkConfig>,
    /// `plugin_path` at top level (VPP accepts it outside a section).
    pub plugin_path: Option<String>,
    /// Everything, as parsed.
    pub tree: ConfTree,
    /// Ignored options/sections, for the caller to log.
    pub warnings: Vec<ConfWarning>,
}

impl StartupConfig {
    /// Parses startup.conf text. `origin` names it in messages (normally the file path).
    pub fn parse(src: &str, origin: &str) -> Result<StartupConfig, ConfError> {
        let mut warnings = Vec::new();
        let tree = ConfTree::parse(src, origin, &mut warnings)?;
        from_tree(tree, warnings)
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<StartupConfig, ConfError> {
        let origin = path.display().to_string();
        let text = std::fs::read(path).map_err(|e| {
            ConfError::new(
                &origin,
                0,
                format!("failed to open configuration file: {e}"),
            )
        })?;
        let text = String::from_utf8_lossy(&text);
        StartupConfig::parse(&text, &origin)
    }

    /// [`DEFAULT_STARTUP_CONF`], parsed.
    pub fn builtin_default() -> StartupConfig {
        StartupConfig::parse(DEFAULT_STARTUP_CONF, DEFAULT_ORIGIN)
            .expect("DEFAULT_STARTUP_CONF parses")
    }

    /// The CLI socket path (`unix { cli-listen }`), if any.
    pub fn cli_socket(&self) -> Option<PathBuf> {
        self.unix.cli_socket_path()
    }

    /// The binary API socket path, if the API socket is enabled.
    pub fn api_socket(&self) -> Option<&Path> {
        self.socksvr.as_ref().map(|s| s.socket_name.as_path())
    }
}

fn from_tree(tree: ConfTree, mut warnings: Vec<ConfWarning>) -> Result<StartupConfig, ConfError> {
    let cx = Ctx {
        origin: &tree.origin,
    };

    // unix
    let mut unix = UnixConfig::default();
    let mut runtime_dir_set = false;
    for sec in tree.sections("unix") {
        for n in sec.children() {
            match n.name.as_str() {
                "nodaemon" => unix.nodaemon = true,
                "interactive" => unix.interactive = true,
                "nosyslog" => unix.nosyslog = true,
                "nocolor" => unix.nocolor = true,
                "nobanner" => unix.nobanner = true,
                "use-current-dir" => unix.use_current_dir = true,
                "cli-line-mode" => unix.cli_line_mode = true,
                "cli-no-banner" => unix.cli_no_banner = true,
                "cli-no-pager" => unix.cli_no_pager = true,
                "full-coredump" => unix.full_coredump = true,
                "cli-prompt" => unix.cli_prompt = cx.value(n)?.to_string(),
                "cli-listen" => unix.cli_listen = Some(cx.value(n)?.to_string()),
                "runtime-dir" => {
                    unix.runtime_dir = cx.path(n)?;
                    runtime_dir_set = true;
                }
                "poll-sleep-usec" => unix.poll_sleep_usec = Some(cx.u32(n)?),
                "cli-pager-buffer-limit" => unix.cli_pager_buffer_limit = cx.u32(n)?,
                "cli-history-limit" => unix.cli_history_limit = cx.u32(n)?,
                "coredump-size" => {
                    let v = cx.value(n)?;
                    unix.coredump_size = Some(if v == "unlimited" {
                        CoredumpSize::Unlimited
                    } else {
                        CoredumpSize::Bytes(cx.size(n)?)
                    });
                }
                "startup-config" | "exec" => unix.exec = Some(cx.path(n)?),
                "log" => unix.log = Some(cx.path(n)?),
                "gid" => {
                    let v = cx.value(n)?;
                    unix.gid = Some(match v.parse::<u32>() {
                        Ok(g) => GidSpec::Id(g),
                        Err(_) => GidSpec::Name(v.to_string()),
                    });
                }
                "pidfile" => unix.pidfile = Some(cx.path(n)?),
                _ => {} // unknown: already warned
            }
        }
    }
    if unix.use_current_dir && !runtime_dir_set {
        if let Ok(cwd) = std::env::current_dir() {
            unix.runtime_dir = cwd;
        }
    }

    // api-trace
    let mut api_trace = ApiTraceConfig::default();
    for sec in tree.sections("api-trace") {
        for n in sec.children() {
            match n.name.as_str() {
                "on" | "enable" => api_trace.on = true,
                "nitems" => api_trace.nitems = cx.u32(n)?,
                "save-api-table" => api_trace.save_api_table = Some(cx.value(n)?.to_string()),
                _ => {}
            }
        }
    }

    // socksvr
    let mut socksvr = None;
    for sec in tree.sections("socksvr") {
        let s = socksvr.get_or_insert_with(|| SocksvrConfig {
            socket_name: PathBuf::new(),
        });
        for n in sec.children() {
            if n.name == "socket-name" {
                s.socket_name = cx.path(n)?;
            }
        }
    }
    if let Some(s) = socksvr.as_mut() {
        if s.socket_name.as_os_str().is_empty() {
            s.socket_name = unix.runtime_dir.join("api.sock");
        }
    }

    // cpu
    let mut cpu = CpuConfig::default();
    for sec in tree.sections("cpu") {
        for n in sec.children() {
            match n.name.as_str() {
                "use-pthreads" => cpu.use_pthreads = true,
                "relative" => cpu.relative = true,
                "thread-prefix" => cpu.thread_prefix = Some(cx.value(n)?.to_string()),
                "main-core" => cpu.main_core = Some(cx.u32(n)?),
                "skip-cores" => cpu.skip_cores = cx.u32(n)?,
                "numa-heap-size" => cpu.numa_heap_size = Some(cx.size(n)?),
                "scheduler-policy" => {
                    let v = cx.value(n)?;
                    if !matches!(v, "rr" | "fifo" | "batch" | "idle" | "other") {
                        return Err(cx.err(
                            n,
                            format!("`scheduler-policy` expects rr, fifo, batch, idle or other, got `{v}`"),
                        ));
                    }
                    cpu.scheduler_policy = Some(v.to_string());
                }
                "scheduler-priority" => cpu.scheduler_priority = Some(cx.u32(n)?),
                "workers" => {
                    if cpu.workers.is_some() || cpu.corelist_workers.is_some() {
                        return Err(cx.err(n, "number of 'workers' threads is already configured"));
                    }
                    cpu.workers = Some(cx.u32(n)?);
                }
                k if k.starts_with("corelist-") || k.starts_with("coremask-") => {
                    let thread = &k[9..];
                    if thread != "workers" {
                        warnings.push(ConfWarning {
                            origin: tree.origin.clone(),
                            line: n.line,
                            message: format!("`{k}`: rvpp has no `{thread}` thread type, ignored"),
                        });
                        continue;
                    }
                    if cpu.workers.is_some() || cpu.corelist_workers.is_some() {
                        return Err(cx.err(
                            n,
                            "core placement of 'workers' threads is already configured",
                        ));
                    }
                    let list = if k.starts_with("corelist-") {
                        cx.cpu_list(n)?
                    } else {
                        let v = cx.value(n)?;
                        parse_cpu_mask(v).map_err(|e| cx.err(n, format!("`{k}`: {e}")))?
                    };
                    cpu.corelist_workers = Some(list);
                }
                _ => {}
            }
        }
        let line = sec.line;
        if cpu.corelist_workers.is_some() && cpu.main_core.is_none() {
            return Err(ConfError::new(
                &tree.origin,
                line,
                "main-core must be specified when using corelist-* or coremask-* attribute",
            ));
        }
        if cpu.skip_cores != 0 && cpu.main_core.is_none() {
            return Err(ConfError::new(
                &tree.origin,
                line,
                "main-core must be specified when using skip-cores attribute",
            ));
        }
        if cpu.relative && cpu.main_core.is_none() {
            return Err(ConfError::new(
                &tree.origin,
                line,
                "main-core must be specified in relative mode",
            ));
        }
    }

    // buffers
    let mut buffers = BuffersConfig::default();
    for sec in tree.sections("buffers") {
        for n in sec.children() {
            match n.name.as_str() {
                "buffers-per-numa" => buffers.buffers_per_numa = cx.u32(n)?,
                "page-size" => buffers.page_size = Some(cx.page_size(n)?),
                "no-hugetlb" => buffers.no_hugetlb = true,
                "layout" => {
                    let v = cx.value(n)?;
                    if !matches!(v, "natural" | "packed") {
                        return Err(
                            cx.err(n, format!("`layout` expects natural or packed, got `{v}`"))
                        );
                    }
                    buffers.layout = Some(v.to_string());
                }
                "default" => {
                    if n.args.first().map(String::as_str) != Some("data-size") {
                        return Err(cx.err(
                            n,
                            format!(
                                "expected `default data-size N`, got `default {}`",
                                n.args.join(" ")
                            ),
                        ));
                    }
                    let v = &n.args[1];
                    buffers.default_data_size = parse_uint(v)
                        .and_then(|x| u32::try_from(x).ok())
                        .filter(|&x| x > 0)
                        .ok_or_else(|| {
                            cx.err(
                                n,
                                format!(
                                    "`default data-size` expects a positive integer, got `{v}`"
                                ),
                            )
                        })?;
                }
                "numa" => {
                    let numa = parse_uint(cx.value(n)?)
                        .and_then(|x| u32::try_from(x).ok())
                        .filter(|&x| x < 16)
                        .ok_or_else(|| cx.err(n, "invalid numa node"))?;
                    for c in n.children() {
                        if c.name == "buffers" {
                            buffers.numa.push((numa, cx.u32(c)?));
                        }
                    }
                }
                _ => {}
            }
        }
    }

    // statseg
    let mut statseg = StatsegConfig {
        socket_name: PathBuf::new(),
        size: 32 << 20,
        page_size: None,
        per_node_counters: false,
        update_interval: 10.0,
    };
    for sec in tree.sections("statseg") {
        for n in sec.children() {
            match n.name.as_str() {
                "socket-name" => statseg.socket_name = cx.path(n)?,
                "size" => statseg.size = cx.size(n)?,
                "page-size" => statseg.page_size = Some(cx.page_size(n)?),
                "per-node-counters" => {
                    statseg.per_node_counters = match cx.value(n)? {
                        "on" | "enable" => true,
                        "off" | "disable" => false,
                        v => {
                            return Err(cx.err(
                                n,
                                format!("`per-node-counters` expects on or off, got `{v}`"),
                            ))
                        }
                    }
                }
                "update-interval" => statseg.update_interval = cx.f64(n)?,
                _ => {}
            }
        }
    }
    if statseg.socket_name.as_os_str().is_empty() {
        statseg.socket_name = unix.runtime_dir.join("stats.sock");
    }

    // metrics
    let mut metrics = MetricsConfig::default();
    for sec in tree.sections("metrics") {
        for n in sec.children() {
            if n.name == "listen" {
                let v = cx.value(n)?;
                let addr = v.parse::<std::net::SocketAddr>().map_err(|_| {
                    cx.err(
                        n,
                        format!(
                            "`metrics listen` expects an address and port such as \
                             127.0.0.1:9482 or [::1]:9482, got `{v}`"
                        ),
                    )
                })?;
                metrics.listen = Some(addr);
            }
        }
    }

    // cnat
    let mut cnat = CnatStartupConfig::default();
    for sec in tree.sections("cnat") {
        for n in sec.children() {
            if n.name == "session-max" {
                let v = cx.u32(n)?;
                if v == 0 || v > CNAT_SESSION_MAX_LIMIT {
                    return Err(cx.err(
                        n,
                        format!("cnat session-max {v} is not in 1..={CNAT_SESSION_MAX_LIMIT}"),
                    ));
                }
                cnat.session_max = Some(v);
            }
        }
    }

    // plugins
    let mut plugins = PluginsConfig::default();
    for sec in tree.sections("plugins") {
        for n in sec.children() {
            match n.name.as_str() {
                "path" => plugins.path = Some(cx.value(n)?.to_string()),
                "add-path" => plugins.add_path = Some(cx.value(n)?.to_string()),
                "name-filter" => plugins.name_filter = Some(cx.value(n)?.to_string()),
                "plugin" => {
                    let name = cx.value(n)?.to_string();
                    let enable = n.has("enable");
                    let disable = n.has("disable");
                    if name == "default" {
                        plugins.default_disable = disable;
                        continue;
                    }
                    if enable && disable {
                        return Err(cx.err(
                            n,
                            format!("please specify either enable or disable for plugin '{name}'"),
                        ));
                    }
                    if plugins.plugins.iter().any(|p| p.name == name) {
                        return Err(cx.err(n, format!("plugin '{name}' already configured")));
                    }
                    plugins.plugins.push(PluginConfig {
                        name,
                        enable,
                        disable,
                        skip_version_check: n.has("skip-version-check"),
                        line: n.line,
                    });
                }
                _ => {}
            }
        }
    }
    let plugin_path = tree
        .nodes
        .iter()
        .rfind(|n| n.name == "plugin_path")
        .and_then(|n| n.arg().map(str::to_string));

    // logging
    let mut logging = LoggingConfig::default();
    for sec in tree.sections("logging") {
        for n in sec.children() {
            match n.name.as_str() {
                "size" => logging.size = cx.u32(n)?,
                "unthrottle-time" => logging.unthrottle_time = cx.u32(n)?,
                "default-log-level" => logging.default_log_level = cx.log_level(n)?,
                "default-syslog-log-level" => logging.default_syslog_log_level = cx.log_level(n)?,
                "default-kmsg-log-level" => logging.default_kmsg_log_level = cx.log_level(n)?,
                "add-to-elog" => logging.add_to_elog = true,
                "class" => {
                    let mut c = LogClassConfig {
                        class: cx.value(n)?.to_string(),
                        level: None,
                        syslog_level: None,
                        rate_limit: None,
                    };
                    for o in n.children() {
                        match o.name.as_str() {
                            "level" => c.level = Some(cx.log_level(o)?),
                            "syslog-level" => c.syslog_level = Some(cx.log_level(o)?),
                            "rate-limit" => c.rate_limit = Some(cx.u32(o)?),
                            _ => {}
                        }
                    }
                    logging.classes.push(c);
                }
                _ => {}
            }
        }
    }

    // dpdk
    let mut dpdk: Option<DpdkConfig> = None;
    for sec in tree.sections("dpdk") {
        let d = dpdk.get_or_insert_with(|| DpdkConfig {
            node: Node {
                name: "dpdk".into(),
                args: Vec::new(),
                children: Some(Vec::new()),
                line: sec.line,
            },
            ..Default::default()
        });
        d.node
            .children
            .get_or_insert_with(Vec::new)
            .extend(sec.children().iter().cloned());
        for n in sec.children() {
            match n.name.as_str() {
                "no-hugetlb" | "no-huge" => d.no_hugetlb = true,
                "no-pci" => d.no_pci = true,
                "no-multi-seg" => d.no_multi_seg = true,
                "no-tx-checksum-offload" => d.no_tx_checksum_offload = true,
                "enable-tcp-udp-checksum" => d.enable_tcp_udp_checksum = true,
                "iova-mode" => {
                    let v = cx.value(n)?;
                    if !matches!(v, "va" | "pa") {
                        return Err(cx.err(n, format!("`iova-mode` expects va or pa, got `{v}`")));
                    }
                    d.iova_mode = Some(v.to_string());
                }
                "socket-mem" => d.socket_mem = Some(cx.value(n)?.to_string()),
                "uio-driver" => d.uio_driver = Some(cx.value(n)?.to_string()),
                "vdev" => d.vdevs.push(cx.value(n)?.to_string()),
                "dev" => {
                    let dev = dpdk_dev(&cx, n)?;
                    if dev.addr == "default" {
                        d.dev_default = Some(dev);
                    } else if d
                        .devs
                        .iter()
                        .any(|x| x.addr.eq_ignore_ascii_case(&dev.addr))
                    {
                        return Err(cx.err(n, format!("device {} is configured twice", dev.addr)));
                    } else {
                        d.devs.push(dev);
                    }
                }
                _ => {}
            }
        }
    }

    Ok(StartupConfig {
        unix,
        api_trace,
        socksvr,
        cpu,
        buffers,
        statseg,
        metrics,
        cnat,
        plugins,
        logging,
        dpdk,
        plugin_path,
        tree,
        warnings,
    })
}

fn is_pci_addr(s: &str) -> bool {
    // [dddd:]bb:dd.f, hex digits
    let parts: Vec<&str> = s.split(':').collect();
    let (dom, bus, devfn) = match parts.as_slice() {
        [d, b, df] => (Some(*d), *b, *df),
        [b, df] => (None, *b, *df),
        _ => return false,
    };
    let hex = |x: &str, n: usize| {
        x.len() <= n && !x.is_empty() && x.bytes().all(|c| c.is_ascii_hexdigit())
    };
    let Some((dev, func)) = devfn.split_once('.') else {
        return false;
    };
    (dom.is_none() || hex(dom.unwrap_or_default(), 4)) && hex(bus, 2) && hex(dev, 2) && hex(func, 1)
}

fn dpdk_dev(cx: &Ctx<'_>, n: &Node) -> Result<DpdkDevConfig, ConfError> {
    let addr = cx.value(n)?.to_string();
    // VMBUS ids are UUIDs; accept those and PCI addresses.
    let is_uuid = addr.len() == 36 && addr.bytes().filter(|&b| b == b'-').count() == 4;
    if addr != "default" && !is_pci_addr(&addr) && !is_uuid {
        return Err(cx.err(
            n,
            format!("`dev` expects a PCI address such as 0000:00:04.0, got `{addr}`"),
        ));
    }
    let mut dev = DpdkDevConfig {
        addr,
        line: n.line,
        ..Default::default()
    };
    for o in n.children() {
        match o.name.as_str() {
            "num-rx-queues" => dev.num_rx_queues = Some(cx.u32(o)?),
            "num-tx-queues" => dev.num_tx_queues = Some(cx.u32(o)?),
            "num-rx-desc" => dev.num_rx_desc = Some(cx.u32(o)?),
            "num-tx-desc" => dev.num_tx_desc = Some(cx.u32(o)?),
            "name" => dev.name = Some(cx.value(o)?.to_string()),
            "tag" => dev.tag = Some(cx.value(o)?.to_string()),
            "workers" => dev.workers = Some(cx.cpu_list(o)?),
            "devargs" => dev.devargs = Some(cx.value(o)?.to_string()),
            "no-rx-interrupts" => dev.no_rx_interrupts = true,
            "tso" => {
                dev.tso = Some(match cx.value(o)? {
                    "on" => true,
                    "off" => false,
                    v => return Err(cx.err(o, format!("`tso` expects on or off, got `{v}`"))),
                })
            }
            _ => {}
        }
    }
    Ok(dev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cnat_session_max() {
        let c = StartupConfig::parse("cnat { session-max 64 }", "t").unwrap();
        assert_eq!(c.cnat.session_max, Some(64));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(StartupConfig::builtin_default().cnat.session_max, None);
        for bad in ["0", "16777217", "many"] {
            let e = StartupConfig::parse(&format!("cnat {{ session-max {bad} }}"), "t");
            assert!(e.is_err(), "session-max {bad} accepted");
        }
        let c = StartupConfig::parse("cnat { session-max-age 30 }", "t").unwrap();
        assert_eq!(
            c.warnings.len(),
            1,
            "an option rvpp ignores is warned about"
        );
    }

    #[test]
    fn default_conf_parses_without_warnings() {
        let c = StartupConfig::builtin_default();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert!(c.unix.nodaemon);
        assert_eq!(c.cli_socket(), Some(PathBuf::from("/run/rvpp/cli.sock")));
        assert_eq!(c.cpu.n_workers(), 0);
        assert_eq!(c.api_socket(), Some(Path::new("/run/rvpp/api.sock")));
        assert_eq!(c.statseg.socket_name, PathBuf::from("/run/rvpp/stats.sock"));
    }

    #[test]
    fn single_line_and_multi_line_agree() {
        let a = StartupConfig::parse(
            "unix { nodaemon cli-listen /run/vpp/cli.sock gid vpp }",
            "a",
        )
        .unwrap();
        let b = StartupConfig::parse(
            "unix {\n  nodaemon\n  cli-listen /run/vpp/cli.sock\n  gid vpp\n}\n",
            "b",
        )
        .unwrap();
        assert_eq!(a.unix, b.unix);
        assert_eq!(a.unix.gid, Some(GidSpec::Name("vpp".into())));
    }

    #[test]
    fn pci_addresses() {
        assert!(is_pci_addr("0000:00:04.0"));
        assert!(is_pci_addr("00:04.0"));
        assert!(!is_pci_addr("net_null0"));
    }
}
