//! The command line: `vpp -c FILE`, `vpp unix { ... } ...`.

use std::path::PathBuf;

use super::{ConfError, StartupConfig, DEFAULT_ORIGIN, DEFAULT_STARTUP_CONF};

/// Origin name used for configuration given as command-line words.
pub const CMDLINE_ORIGIN: &str = "<command line>";

/// What VPP's command line asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandLine {
    /// `-c FILE` / `-cFILE` / `--config FILE`.
    pub config_file: Option<PathBuf>,
    /// `-i`: interactive (like `unix { interactive }`).
    pub interactive: bool,
    /// `-v` / `--version`.
    pub version: bool,
    /// `-h` / `--help`.
    pub help: bool,
    /// Configuration given as words (`vpp unix { nodaemon } cpu { workers 0 }`), when there is no
    /// `-c`.
    pub inline_config: Option<String>,
}

impl CommandLine {
    /// Parses arguments (without the program name) the way VPP does.
    pub fn parse<I, S>(args: I) -> Result<CommandLine, ConfError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let args: Vec<String> = args.into_iter().map(|s| s.as_ref().to_string()).collect();
        let mut cl = CommandLine::default();
        let mut rest = Vec::new();
        let mut i = 0;
        let err = |m: String| ConfError::new(CMDLINE_ORIGIN, 0, m);
        while i < args.len() {
            let a = &args[i];
            i += 1;
            match a.as_str() {
                "-c" | "--config" => {
                    let f = args
                        .get(i)
                        .ok_or_else(|| err(format!("option '{a}' requires an argument")))?;
                    cl.config_file = Some(PathBuf::from(f));
                    i += 1;
                }
                "-i" => cl.interactive = true,
                "-v" | "--version" => cl.version = true,
                "-h" | "--help" => cl.help = true,
                "--no-alloc-intercept" => {}
                _ if a.starts_with("--config=") => {
                    cl.config_file = Some(PathBuf::from(&a["--config=".len()..]))
                }
                _ if a.starts_with("-c") && a.len() > 2 => {
                    cl.config_file = Some(PathBuf::from(&a[2..]))
                }
                _ if a.starts_with('-') && a.len() > 1 && rest.is_empty() => {
                    return Err(err(format!("unrecognized option '{a}'")))
                }
                _ => rest.push(a.clone()),
            }
        }
        if !rest.is_empty() {
            cl.inline_config = Some(rest.join(" "));
        }
        Ok(cl)
    }

    /// Loads the configuration this command line selects: the `-c` file, else the inline
    /// configuration, else [`DEFAULT_STARTUP_CONF`]. `-i` sets `unix.interactive`.
    pub fn load(&self) -> Result<StartupConfig, ConfError> {
        let mut cfg = if let Some(f) = &self.config_file {
            StartupConfig::load(f)?
        } else if let Some(inline) = &self.inline_config {
            StartupConfig::parse(inline, CMDLINE_ORIGIN)?
        } else {
            StartupConfig::parse(DEFAULT_STARTUP_CONF, DEFAULT_ORIGIN)?
        };
        if self.interactive {
            cfg.unix.interactive = true;
        }
        Ok(cfg)
    }
}

/// `vpp`-style loading from process arguments (without the program name).
pub fn load_from_args<I, S>(args: I) -> Result<StartupConfig, ConfError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    CommandLine::parse(args)?.load()
}
