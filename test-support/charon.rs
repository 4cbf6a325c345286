//! strongSwan's charon for interop tests: a strongswan.conf for a lab (kernel-libipsec, which
//! does ESP in UDP over a TUN in the namespace; no routes installed; quick retransmits; vici and
//! the log in the lab's directory), and charon started in a network namespace with a mount
//! namespace of its own whose /run is the lab's directory (charon.pid per lab).
// Each includer uses part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command};

pub const CHARON: &str = "/usr/lib/ipsec/charon";

/// The vici URI of the charon whose lab directory is `dir`.
pub fn vici(dir: &Path) -> String {
    format!("unix://{}/charon.vici", dir.display())
}

/// Write `dir`/strongswan.conf; `levels` are filelog lines such as "ike = 2".
pub fn write_conf(dir: &Path, levels: &[&str]) {
    let d = dir.display();
    let levels: String = levels.iter().map(|l| format!("      {l}\n")).collect();
    let conf = format!(
        "charon {{\n  load = random nonce aes sha1 sha2 hmac gmp gcm openssl kdf pem pkcs1 x509 \
         kernel-libipsec kernel-netlink socket-default vici\n  install_routes = no\n  \
         retransmit_timeout = 1\n  retransmit_tries = 3\n  plugins {{\n    vici {{ socket = {} }}\n  }}\n  \
         filelog {{\n    log {{\n      path = {d}/charon.log\n      default = 1\n{levels}      \
         flush_line = yes\n    }}\n  }}\n  syslog {{\n    daemon {{\n      default = -1\n    }}\n  }}\n}}\n",
        vici(dir)
    );
    std::fs::write(dir.join("strongswan.conf"), conf).unwrap();
}

/// charon in netns `ns` with `dir`/strongswan.conf, its output in `dir`/charon.out.
pub fn spawn(ns: &str, dir: &Path) -> Child {
    std::fs::create_dir_all(dir.join("run")).unwrap();
    let out = std::fs::File::create(dir.join("charon.out")).unwrap();
    let script = format!("mount --bind {}/run /run && exec {CHARON}", dir.display());
    Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
        ])
        .arg(&script)
        .env("STRONGSWAN_CONF", dir.join("strongswan.conf"))
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("start charon")
}

/// `swanctl <verb> --uri <vici of dir> <rest>` in netns `ns`: its stdout and stderr together.
pub fn swanctl(ns: &str, dir: &Path, args: &[&str]) -> std::io::Result<String> {
    let (verb, rest) = args.split_first().unwrap_or((&"--stats", &[]));
    let o = Command::new("ip")
        .args(["netns", "exec", ns, "swanctl", verb, "--uri", &vici(dir)])
        .args(rest)
        .env("STRONGSWAN_CONF", dir.join("strongswan.conf"))
        .output()?;
    Ok(String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr))
}
