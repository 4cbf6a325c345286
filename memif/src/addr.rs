//! Parsing of socket specifications as calico/VPP write them.

use crate::sys::SocketName;

/// Where to find (or create) the control socket.
///
/// Accepted forms:
/// * `/run/vpp/memif.sock` — filesystem path;
/// * `@name` or `abstract:name` — Linux abstract socket `name`;
/// * either followed by `,netns_name=/var/run/netns/NAME` to create the
///   socket inside that network namespace (abstract names are per netns).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketSpec {
    /// Path or abstract name.
    pub name: SocketName,
    /// Network namespace file to create the socket in.
    pub netns: Option<String>,
}

impl SocketSpec {
    /// Parse a specification; see the type docs for the syntax.
    pub fn parse(s: &str) -> Result<SocketSpec, String> {
        let mut parts = s.split(',');
        let first = parts.next().unwrap_or("").trim();
        let name = if let Some(a) = first.strip_prefix("abstract:") {
            SocketName::Abstract(a.to_string())
        } else if let Some(a) = first.strip_prefix('@') {
            SocketName::Abstract(a.to_string())
        } else {
            SocketName::Path(first.to_string())
        };
        match &name {
            SocketName::Abstract(n) | SocketName::Path(n) if n.is_empty() => {
                return Err(format!("empty socket name in {s:?}"))
            }
            _ => {}
        }
        let mut netns = None;
        for p in parts {
            let p = p.trim();
            if let Some(v) = p.strip_prefix("netns_name=") {
                if v.is_empty() {
                    return Err(format!("empty netns_name in {s:?}"));
                }
                netns = Some(v.to_string());
            } else if !p.is_empty() {
                return Err(format!("unknown socket option {p:?} in {s:?}"));
            }
        }
        Ok(SocketSpec { name, netns })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_calico_forms() {
        assert_eq!(
            SocketSpec::parse("abstract:vpp/memif-eth0,netns_name=/var/run/netns/cni-1").unwrap(),
            SocketSpec {
                name: SocketName::Abstract("vpp/memif-eth0".into()),
                netns: Some("/var/run/netns/cni-1".into())
            }
        );
        assert_eq!(
            SocketSpec::parse("@x").unwrap().name,
            SocketName::Abstract("x".into())
        );
        assert_eq!(
            SocketSpec::parse("/run/m.sock").unwrap().name,
            SocketName::Path("/run/m.sock".into())
        );
        assert!(SocketSpec::parse("abstract:").is_err());
        assert!(SocketSpec::parse("/a,bogus=1").is_err());
    }
}
