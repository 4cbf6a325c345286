//! Configuration errors (fatal, with `origin:line`) and warnings (ignored options).

use std::fmt;

/// A configuration error: where (`origin:line`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfError {
    /// File name (or `<command line>`, `<built-in default>`).
    pub origin: String,
    /// 1-based line number; 0 when the error is not about a particular line (e.g. unreadable file).
    pub line: usize,
    pub message: String,
}

impl ConfError {
    pub(super) fn new(origin: &str, line: usize, message: impl Into<String>) -> Self {
        ConfError {
            origin: origin.to_string(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.origin, self.message)
        } else {
            write!(f, "{}:{}: {}", self.origin, self.line, self.message)
        }
    }
}

impl std::error::Error for ConfError {}

/// Something in the file that rvpp ignores (unknown option or section). Never fatal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfWarning {
    pub origin: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ConfWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.origin, self.line, self.message)
    }
}
