//! VPP `startup.conf` parsing.
//!
//! VPP reads its configuration as one stream of whitespace-separated tokens: newlines carry no
//! meaning, `#` starts a comment that runs to the end of the line, and a section is
//! `name { ... }`. Options inside a section are words followed by as many values as that option
//! takes, sometimes with a nested `{ ... }` block (`dpdk { dev 0000:00:04.0 { num-rx-queues 2 } }`,
//! `plugins { plugin dpdk_plugin.so { disable } }`). Because the file is a token stream, both
//! `unix { nodaemon cli-listen /run/vpp/cli.sock }` on one line and the same options spread over
//! many lines mean the same thing.
//!
//! This module produces two views of a file:
//!
//! * a generic [`ConfTree`] of [`Node`]s (`name args... [{ children }]`), which keeps every
//!   section, including ones rvpp does not interpret;
//! * a typed [`StartupConfig`] with the stanzas rvpp honours, with VPP's defaults.
//!
//! Grouping tokens into options needs to know how many values each option takes; for the options
//! VPP documents that comes from a built-in table (see [`option_spec`]). An option that is not in
//! the table takes the words that follow it on the same line (stopping at the next known option or
//! a block). Unknown options and sections never fail the parse: they are kept in the tree and
//! reported in [`StartupConfig::warnings`] so the caller can log them. Syntax errors (unbalanced
//! braces, a known option missing its value, a value that does not parse) are [`ConfError`]s that
//! name `file:line`.

mod cmdline;
mod config;
mod error;
mod lexer;
mod options;
mod tree;
mod values;

pub use cmdline::{load_from_args, CommandLine, CMDLINE_ORIGIN};
pub use config::{
    ApiTraceConfig, BuffersConfig, CnatConfig, CoredumpSize, CpuConfig, DpdkConfig, DpdkDevConfig,
    GidSpec, LogClassConfig, LogLevel, LoggingConfig, MetricsConfig, PageSize, PluginConfig,
    PluginsConfig, SocksvrConfig, StartupConfig, StatsegConfig, UnixConfig, DEFAULT_CLI_PROMPT,
    DEFAULT_ORIGIN, DEFAULT_RUNTIME_DIR, DEFAULT_STARTUP_CONF,
};
pub use error::{ConfError, ConfWarning};
pub use options::{option_spec, BlockRule, OptionSpec, HONOURED_SECTIONS};
pub use tree::{ConfTree, Node};
pub use values::{parse_cpu_list, parse_cpu_mask, parse_memory_size, parse_uint};
