//! The option table: how many values each known option takes and whether a block follows.

/// Whether an option is followed by a `{ ... }` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockRule {
    /// Never.
    No,
    /// Optionally (`dev 0000:00:04.0` or `dev 0000:00:04.0 { ... }`).
    Optional,
    /// Always (`plugin X { enable }`, top-level sections).
    Required,
}

/// How many values an option takes and whether a block follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionSpec {
    pub values: usize,
    pub block: BlockRule,
}

const fn spec(values: usize, block: BlockRule) -> Option<OptionSpec> {
    Some(OptionSpec { values, block })
}
const FLAG: Option<OptionSpec> = spec(0, BlockRule::No);
const VALUE: Option<OptionSpec> = spec(1, BlockRule::No);
const SECTION: Option<OptionSpec> = spec(0, BlockRule::Required);

/// Top-level sections rvpp interprets.
pub const HONOURED_SECTIONS: &[&str] = &[
    "unix",
    "api-trace",
    "socksvr",
    "cpu",
    "buffers",
    "statseg",
    "metrics",
    "cnat",
    "plugins",
    "logging",
    "dpdk",
];

/// Other top-level sections VPP accepts; rvpp keeps them in the tree and warns that they are
/// ignored.
pub(super) const VPP_SECTIONS: &[&str] = &[
    "memory",
    "api-segment",
    "api-queue",
    "vlib",
    "node",
    "physmem",
    "trace",
    "unix-cli",
    "crypto-engines",
    "devices",
    "ethernet",
    "ip",
    "ip6",
    "mpls",
    "interface",
    "l3fib",
    "punt",
    "ipsec",
    "l2fib",
    "l2learn",
    "session",
    "tcp",
    "tls",
    "udp",
    "tuntap",
    "sfdp",
    "nat",
    "acl-plugin",
    "lcp",
    "linux-cp",
    "vhost-user",
    "heapsize",
];

/// The option table: how options group in a given section path (`[]` = top level,
/// `["dpdk", "dev"]` = inside a `dev` block of `dpdk`). `None` = not a known option there.
pub fn option_spec(path: &[&str], key: &str) -> Option<OptionSpec> {
    use BlockRule::*;
    match path {
        [] => match key {
            k if HONOURED_SECTIONS.contains(&k) || VPP_SECTIONS.contains(&k) => SECTION,
            "plugin_path" | "test_plugin_path" => VALUE,
            _ => None,
        },
        ["unix"] => match key {
            "interactive" | "nodaemon" | "nosyslog" | "nocolor" | "nobanner"
            | "use-current-dir" | "cli-line-mode" | "cli-no-banner" | "cli-no-pager"
            | "full-coredump" => FLAG,
            "cli-prompt"
            | "cli-listen"
            | "runtime-dir"
            | "poll-sleep-usec"
            | "cli-pager-buffer-limit"
            | "cli-history-limit"
            | "coredump-size"
            | "startup-config"
            | "exec"
            | "log"
            | "gid"
            | "pidfile" => VALUE,
            _ => None,
        },
        ["api-trace"] => match key {
            "on" | "enable" => FLAG,
            "nitems" | "save-api-table" => VALUE,
            _ => None,
        },
        ["socksvr"] => match key {
            "default" => FLAG,
            "socket-name" => VALUE,
            _ => None,
        },
        ["cpu"] => match key {
            "use-pthreads" | "relative" => FLAG,
            "thread-prefix" | "main-core" | "skip-cores" | "numa-heap-size" | "workers"
            | "scheduler-policy" | "scheduler-priority" => VALUE,
            k if k.starts_with("corelist-") || k.starts_with("coremask-") => VALUE,
            _ => None,
        },
        ["buffers"] => match key {
            "no-hugetlb" => FLAG,
            "buffers-per-numa" | "page-size" | "layout" => VALUE,
            "default" => spec(2, No), // default data-size N
            "numa" => spec(1, Required),
            _ => None,
        },
        ["buffers", "numa"] => match key {
            "buffers" => VALUE,
            _ => None,
        },
        ["statseg"] => match key {
            "default" => FLAG,
            "socket-name" | "size" | "page-size" | "per-node-counters" | "update-interval" => VALUE,
            _ => None,
        },
        ["metrics"] => match key {
            "listen" => VALUE,
            _ => None,
        },
        // VPP's cnat plugin section; rvpp honours `session-max` (the other VPP options are
        // unknown here and warned about).
        ["cnat"] => match key {
            "session-max" => VALUE,
            _ => None,
        },
        ["plugins"] => match key {
            "path" | "add-path" | "name-filter" | "vat-path" | "vat-name-filter" => VALUE,
            "plugin" => spec(1, Required),
            _ => None,
        },
        ["plugins", "plugin"] => match key {
            "enable" | "disable" | "skip-version-check" => FLAG,
            _ => None,
        },
        ["logging"] => match key {
            "add-to-elog" => FLAG,
            "size"
            | "unthrottle-time"
            | "default-log-level"
            | "default-syslog-log-level"
            | "default-kmsg-log-level" => VALUE,
            "class" => spec(1, Required),
            _ => None,
        },
        ["logging", "class"] => match key {
            "level" | "syslog-level" | "kmsg-level" | "rate-limit" => VALUE,
            _ => None,
        },
        ["dpdk"] => match key {
            "no-hugetlb"
            | "telemetry"
            | "enable-tcp-udp-checksum"
            | "enable-outer-checksum-offload"
            | "no-tx-checksum-offload"
            | "decimal-interface-names"
            | "no-multi-seg"
            | "enable-mbuf-fast-free"
            | "enable-lro"
            | "uio-bind-force"
            | "no-pci"
            | "no-vmbus"
            | "default"
            | "no-shconf"
            | "no-hpet"
            | "no-huge"
            | "vmware-tsc-map" => FLAG,
            "max-simd-bitwidth"
            | "link-state-poll-interval"
            | "stats-poll-interval"
            | "uio-driver"
            | "socket-mem"
            | "blacklist"
            | "trace-dir"
            | "trace-bufsz"
            | "trace"
            | "huge-dir"
            | "proc-type"
            | "file-prefix"
            | "vdev"
            | "log-level"
            | "block"
            | "iova-mode"
            | "base-virtaddr"
            | "mem-alloc-request"
            | "force-ranks" => VALUE,
            "dev" => spec(1, Optional),
            _ => None,
        },
        ["dpdk", "dev"] => match key {
            "no-rx-interrupts" => FLAG,
            "num-rx-queues" | "num-tx-queues" | "num-rx-desc" | "num-tx-desc" | "name" | "tag"
            | "workers" | "tso" | "devargs" | "rss-queues" | "max-lro-pkt-size" => VALUE,
            "rss" => SECTION,
            _ => None,
        },
        _ => None,
    }
}

/// Whether `path` is a section whose options rvpp (or VPP) knows, i.e. where unknown options get a
/// warning (inside an unknown section everything is kept silently: the section got the warning).
pub(super) fn path_is_known(path: &[&str]) -> bool {
    match path {
        [] => true,
        [s] => HONOURED_SECTIONS.contains(s),
        ["buffers", "numa"] | ["plugins", "plugin"] | ["logging", "class"] | ["dpdk", "dev"] => {
            true
        }
        _ => false,
    }
}
