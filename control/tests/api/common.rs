//! The api_* tests' layer over the shared harness (`tests/common`): rvpp serving the binary
//! API and the stats segment, the .api.json files vpp_papi loads, and python helpers.
#![allow(dead_code)]

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "../common/api_client.rs"]
pub mod client;
#[path = "../common/mod.rs"]
pub mod harness;
#[path = "../../../test-support/skip.rs"]
pub mod skip;

/// A running rvpp with its API socket (`api`) and the API JSON directory (`apidir`); the rest
/// (process, directory, CLI socket, clean-up) is the shared harness's.
pub struct Rvpp {
    rvpp: harness::Rvpp,
    pub api: PathBuf,
    pub apidir: PathBuf,
}

impl Deref for Rvpp {
    type Target = harness::Rvpp;
    fn deref(&self) -> &harness::Rvpp {
        &self.rvpp
    }
}

impl DerefMut for Rvpp {
    fn deref_mut(&mut self) -> &mut harness::Rvpp {
        &mut self.rvpp
    }
}

impl Rvpp {
    /// Start rvpp; `cpu` is the body of the cpu stanza (e.g. "" or "workers 2").
    pub fn start(tag: &str, cpu: &str) -> Rvpp {
        Self::start_with_sections(tag, cpu, "")
    }

    /// As [`Rvpp::start`], with more startup.conf sections (e.g. "cnat { session-max 64 }").
    pub fn start_with_sections(tag: &str, cpu: &str, sections: &str) -> Rvpp {
        let conf = format!(
            "socksvr {{ socket-name {{dir}}/api.sock }}\nstatseg {{ socket-name {{dir}}/stats.sock }}\nbuffers {{ buffers-per-numa 16384 }}\ncpu {{ {cpu} }}\n{sections}\n"
        );
        let rvpp = harness::Rvpp::start_with(
            &format!("api-{tag}"),
            harness::Opts {
                conf: &conf,
                log_file: true,
                wait_for: &["api.sock"],
                ..Default::default()
            },
        );
        let apidir = rvpp.path("api-json");
        rvpp_vppapi::apijson::write_api_json_dir(&apidir).unwrap();
        Rvpp {
            api: rvpp.path("api.sock"),
            apidir,
            rvpp,
        }
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Run `control/tests/api/<script>` with args; None when vpp_papi is missing (exit 77),
    /// after [`skip::skip`] (a failure under CI).
    pub fn python(&self, script: &str, args: &[&str]) -> Option<Output> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/api")
            .join(script);
        let out = Command::new("python3")
            .arg(path)
            .arg(&self.apidir)
            .arg(&self.api)
            .args(args)
            .output()
            .expect("python3");
        if out.status.code() == Some(77) {
            skip::skip(&format!(
                "vpp_papi not importable: {}",
                String::from_utf8_lossy(&out.stdout).trim()
            ));
            return None;
        }
        Some(out)
    }

    pub fn check_python(&mut self, script: &str, args: &[&str]) -> Option<String> {
        let out = self.python(script, args)?;
        let so = String::from_utf8_lossy(&out.stdout).into_owned();
        let se = String::from_utf8_lossy(&out.stderr).into_owned();
        println!("{so}");
        assert!(
            out.status.success(),
            "{script} failed ({}):\nstdout:\n{so}\nstderr:\n{se}\nrvpp log:\n{}",
            out.status,
            self.log()
        );
        assert!(self.alive(), "rvpp died: {}", self.log());
        Some(so)
    }
}
