//! Value parsers: integers, sizes, CPU lists and masks, and the per-option checks that name
//! `file:line` when a value does not parse.

use std::path::PathBuf;

use super::{ConfError, LogLevel, Node, PageSize};

pub(super) struct Ctx<'a> {
    pub(super) origin: &'a str,
}

impl Ctx<'_> {
    pub(super) fn err(&self, node: &Node, msg: impl Into<String>) -> ConfError {
        ConfError::new(self.origin, node.line, msg)
    }

    pub(super) fn value<'n>(&self, node: &'n Node) -> Result<&'n str, ConfError> {
        node.arg()
            .ok_or_else(|| self.err(node, format!("`{}` needs a value", node.name)))
    }

    pub(super) fn u32(&self, node: &Node) -> Result<u32, ConfError> {
        let v = self.value(node)?;
        parse_uint(v)
            .and_then(|x| u32::try_from(x).ok())
            .ok_or_else(|| {
                self.err(
                    node,
                    format!("`{}` expects an unsigned integer, got `{v}`", node.name),
                )
            })
    }

    pub(super) fn f64(&self, node: &Node) -> Result<f64, ConfError> {
        let v = self.value(node)?;
        v.parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| self.err(node, format!("`{}` expects a number, got `{v}`", node.name)))
    }

    pub(super) fn size(&self, node: &Node) -> Result<u64, ConfError> {
        let v = self.value(node)?;
        parse_memory_size(v).ok_or_else(|| {
            self.err(
                node,
                format!(
                    "`{}` expects a size such as 4096, 64k, 32M or 1G, got `{v}`",
                    node.name
                ),
            )
        })
    }

    pub(super) fn page_size(&self, node: &Node) -> Result<PageSize, ConfError> {
        let v = self.value(node)?;
        PageSize::parse(v).ok_or_else(|| {
            self.err(
                node,
                format!(
                    "`{}` expects a page size (4k, 2M, 1G, default, default-hugepage), got `{v}`",
                    node.name
                ),
            )
        })
    }

    pub(super) fn path(&self, node: &Node) -> Result<PathBuf, ConfError> {
        Ok(PathBuf::from(self.value(node)?))
    }

    pub(super) fn cpu_list(&self, node: &Node) -> Result<Vec<u32>, ConfError> {
        let v = self.value(node)?;
        parse_cpu_list(v)
            .map_err(|e| self.err(node, format!("`{}`: bad CPU list `{v}`: {e}", node.name)))
    }

    pub(super) fn log_level(&self, node: &Node) -> Result<LogLevel, ConfError> {
        let v = self.value(node)?;
        LogLevel::parse(v).ok_or_else(|| {
            self.err(
                node,
                format!(
                    "`{}` expects a log level (emerg, alert, crit, error, warn, notice, info, debug, disabled), got `{v}`",
                    node.name
                ),
            )
        })
    }
}

/// Parses a decimal or `0x` hexadecimal unsigned integer.
pub fn parse_uint(s: &str) -> Option<u64> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// Parses a VPP memory size: a number with an optional `k`/`m`/`g`/`t` suffix (binary
/// multiples, optionally followed by `b`), e.g. `4096`, `64k`, `32M`, `1G`, `2gb`.
pub fn parse_memory_size(s: &str) -> Option<u64> {
    let lower = s.to_ascii_lowercase();
    let t = lower.strip_suffix('b').unwrap_or(&lower);
    let (num, shift) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 10),
        'm' => (&t[..t.len() - 1], 20),
        'g' => (&t[..t.len() - 1], 30),
        't' => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let n = parse_uint(num)?;
    n.checked_mul(1u64 << shift)
}

/// Parses a CPU list such as `2-3,5` or `0,4-7` (VPP's `unformat_bitmap_list`). Returns sorted,
/// de-duplicated CPU numbers.
pub fn parse_cpu_list(s: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err("empty element".into());
        }
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let a: u32 = a.parse().map_err(|_| format!("`{part}` is not a number"))?;
        let b: u32 = b.parse().map_err(|_| format!("`{part}` is not a number"))?;
        if b < a {
            return Err(format!("range `{part}` is reversed"));
        }
        if b - a > 4096 {
            return Err(format!("range `{part}` is too large"));
        }
        out.extend(a..=b);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Parses a hexadecimal CPU mask such as `0x0c` into CPU numbers.
pub fn parse_cpu_mask(s: &str) -> Result<Vec<u32>, String> {
    let h = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if h.is_empty() || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("`{s}` is not a hexadecimal mask"));
    }
    let mut out = Vec::new();
    for (i, c) in h.bytes().rev().enumerate() {
        let v = (c as char).to_digit(16).expect("hex digit");
        for bit in 0..4 {
            if v & (1 << bit) != 0 {
                out.push((i * 4 + bit) as u32);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("2-3,5").unwrap(), vec![2, 3, 5]);
        assert_eq!(parse_cpu_list("7,1-2,2").unwrap(), vec![1, 2, 7]);
        assert!(parse_cpu_list("3-2").is_err());
        assert!(parse_cpu_list("a").is_err());
        assert_eq!(parse_cpu_mask("0x0c").unwrap(), vec![2, 3]);
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory_size("4096"), Some(4096));
        assert_eq!(parse_memory_size("64k"), Some(64 << 10));
        assert_eq!(parse_memory_size("32M"), Some(32 << 20));
        assert_eq!(parse_memory_size("1G"), Some(1 << 30));
        assert_eq!(parse_memory_size("2gb"), Some(2 << 30));
        assert_eq!(parse_memory_size("x"), None);
    }
}
