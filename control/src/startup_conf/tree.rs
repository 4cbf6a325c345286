//! The generic tree: options grouped into [`Node`]s by the option table, and printed back.

use std::fmt;

use super::lexer::{build_items, lex, Item};
use super::options::{option_spec, path_is_known, BlockRule, VPP_SECTIONS};
use super::{ConfError, ConfWarning};

/// One option: `name args... [{ children }]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Node {
    pub name: String,
    pub args: Vec<String>,
    /// `Some` when the option is followed by a `{ ... }` block (possibly empty).
    pub children: Option<Vec<Node>>,
    /// Line of the option's name.
    pub line: usize,
}

impl Node {
    /// First argument, if any.
    pub fn arg(&self) -> Option<&str> {
        self.args.first().map(String::as_str)
    }
    /// Children (empty slice when there is no block).
    pub fn children(&self) -> &[Node] {
        self.children.as_deref().unwrap_or(&[])
    }
    /// First child named `name`.
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children().iter().find(|n| n.name == name)
    }
    /// All children named `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children().iter().filter(move |n| n.name == name)
    }
    /// Whether a flag-like child `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.child(name).is_some()
    }

    fn write_to(&self, f: &mut fmt::Formatter<'_>, indent: usize) -> fmt::Result {
        write!(
            f,
            "{:indent$}{}",
            "",
            quote_word(&self.name),
            indent = indent
        )?;
        for a in &self.args {
            write!(f, " {}", quote_word(a))?;
        }
        if let Some(children) = &self.children {
            if children.is_empty() {
                write!(f, " {{ }}")?;
            } else {
                writeln!(f, " {{")?;
                for c in children {
                    c.write_to(f, indent + 2)?;
                }
                write!(f, "{:indent$}}}", "", indent = indent)?;
            }
        }
        writeln!(f)
    }
}

fn quote_word(w: &str) -> String {
    if !w.is_empty()
        && !w
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '{' | '}' | '#' | '"' | '\\'))
    {
        return w.to_string();
    }
    let mut s = String::from("\"");
    for c in w.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

/// The whole file as a tree of [`Node`]s (top-level sections are nodes with no args and a block).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfTree {
    pub origin: String,
    pub nodes: Vec<Node>,
}

impl ConfTree {
    /// Parses the text into a tree, collecting warnings for unknown options/sections.
    pub fn parse(
        src: &str,
        origin: &str,
        warnings: &mut Vec<ConfWarning>,
    ) -> Result<ConfTree, ConfError> {
        let items = build_items(lex(src, origin)?, origin)?;
        let nodes = group(&items, &[], origin, warnings)?;
        Ok(ConfTree {
            origin: origin.to_string(),
            nodes,
        })
    }

    /// All top-level sections named `name`, in file order (VPP merges repeated sections).
    pub fn sections<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.nodes.iter().filter(move |n| n.name == name)
    }

    /// First top-level section named `name`.
    pub fn section(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

/// Re-serialises the tree as a startup.conf (one option per line, comments dropped).
impl fmt::Display for ConfTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for n in &self.nodes {
            n.write_to(f, 0)?;
        }
        Ok(())
    }
}

fn describe_path(path: &[String]) -> String {
    if path.is_empty() {
        "at top level".to_string()
    } else {
        format!("in `{} {{ }}`", path.join(" "))
    }
}

fn group(
    items: &[Item],
    path: &[String],
    origin: &str,
    warnings: &mut Vec<ConfWarning>,
) -> Result<Vec<Node>, ConfError> {
    let pref: Vec<&str> = path.iter().map(String::as_str).collect();
    let known_path = path_is_known(&pref);
    let mut nodes = Vec::new();
    let mut i = 0;
    while i < items.len() {
        let (name, line) = match &items[i] {
            Item::Word { text, line } => (text.clone(), *line),
            Item::Block { line, .. } => {
                return Err(ConfError::new(
                    origin,
                    *line,
                    format!(
                        "unexpected `{{` {} (a block must follow an option name)",
                        describe_path(path)
                    ),
                ))
            }
        };
        i += 1;
        let spec = if known_path {
            option_spec(&pref, &name)
        } else {
            None
        };
        let mut args = Vec::new();
        let mut block: Option<&[Item]> = None;
        match spec {
            Some(spec) => {
                for _ in 0..spec.values {
                    match items.get(i) {
                        Some(Item::Word { text, .. }) => {
                            args.push(text.clone());
                            i += 1;
                        }
                        other => {
                            let what = if spec.values == 1 {
                                "a value".to_string()
                            } else {
                                format!("{} values", spec.values)
                            };
                            let found = if other.is_none() {
                                "the end of the section"
                            } else {
                                "`{`"
                            };
                            return Err(ConfError::new(
                                origin,
                                line,
                                format!(
                                    "`{name}` {} needs {what}, found {found}",
                                    describe_path(path)
                                ),
                            ));
                        }
                    }
                }
                match (spec.block, items.get(i)) {
                    (BlockRule::No, Some(Item::Block { line: bl, .. })) => {
                        return Err(ConfError::new(
                            origin,
                            *bl,
                            format!(
                                "`{name}` {} does not take a `{{ }}` block",
                                describe_path(path)
                            ),
                        ))
                    }
                    (
                        BlockRule::Optional | BlockRule::Required,
                        Some(Item::Block { items, .. }),
                    ) => {
                        block = Some(items);
                        i += 1;
                    }
                    (BlockRule::Required, _) => {
                        return Err(ConfError::new(
                            origin,
                            line,
                            format!(
                                "`{}` {} must be followed by `{{ ... }}`",
                                std::iter::once(name.as_str())
                                    .chain(args.iter().map(String::as_str))
                                    .collect::<Vec<_>>()
                                    .join(" "),
                                describe_path(path)
                            ),
                        ))
                    }
                    _ => {}
                }
            }
            None => {
                // Unknown option: it takes the words after it on the same line, up to the next
                // known option; a block right after it belongs to it.
                while let Some(Item::Word { text, line: wl }) = items.get(i) {
                    if *wl != line || (known_path && option_spec(&pref, text).is_some()) {
                        break;
                    }
                    args.push(text.clone());
                    i += 1;
                }
                if let Some(Item::Block { items, .. }) = items.get(i) {
                    block = Some(items);
                    i += 1;
                }
                if known_path {
                    let message = if path.is_empty() {
                        format!("unknown section `{name}`, ignored")
                    } else {
                        format!(
                            "unknown option `{}` {}, ignored",
                            std::iter::once(name.as_str())
                                .chain(args.iter().map(String::as_str))
                                .collect::<Vec<_>>()
                                .join(" "),
                            describe_path(path)
                        )
                    };
                    warnings.push(ConfWarning {
                        origin: origin.to_string(),
                        line,
                        message,
                    });
                }
            }
        }
        if path.is_empty() && spec.is_some() && VPP_SECTIONS.contains(&name.as_str()) {
            warnings.push(ConfWarning {
                origin: origin.to_string(),
                line,
                message: format!("section `{name}` is not supported by rvpp, ignored"),
            });
        }
        let children = match block {
            Some(b) => {
                let mut child_path = path.to_vec();
                child_path.push(name.clone());
                Some(group(b, &child_path, origin, warnings)?)
            }
            None => None,
        };
        nodes.push(Node {
            name,
            args,
            children,
            line,
        });
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::startup_conf::StartupConfig;

    #[test]
    fn tree_roundtrips() {
        let src = "dpdk { dev 0000:00:04.0 { num-rx-queues 2 tag main-eth0 } vdev net_null0 }";
        let c = StartupConfig::parse(src, "t").unwrap();
        let again = StartupConfig::parse(&c.tree.to_string(), "t2").unwrap();
        assert_eq!(c.tree.nodes, {
            let mut n = again.tree.nodes.clone();
            // line numbers differ after reformatting; compare structure only
            fn strip(v: &mut [Node]) {
                for n in v {
                    n.line = 0;
                    if let Some(c) = n.children.as_mut() {
                        strip(c)
                    }
                }
            }
            let mut a = c.tree.nodes.clone();
            strip(&mut a);
            strip(&mut n);
            assert_eq!(a, n);
            c.tree.nodes.clone()
        });
    }
}
