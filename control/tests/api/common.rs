//! Shared by the api_* tests: start the real `rvpp` with a temp startup.conf serving the
//! binary API and CLI sockets, write the .api.json files, and run python helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "../../../test-support/skip.rs"]
pub mod skip;

pub struct Rvpp {
    pub child: Child,
    pub dir: PathBuf,
    pub api: PathBuf,
    pub cli: PathBuf,
    pub apidir: PathBuf,
}

impl Drop for Rvpp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Rvpp {
    /// Start rvpp; `cpu` is the body of the cpu stanza (e.g. "" or "workers 2").
    pub fn start(tag: &str, cpu: &str) -> Rvpp {
        let dir = std::env::temp_dir().join(format!("rvpp-api-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let api = dir.join("api.sock");
        let cli = dir.join("cli.sock");
        let apidir = dir.join("api-json");
        rvpp_vppapi::apijson::write_api_json_dir(&apidir).unwrap();
        let conf = dir.join("startup.conf");
        std::fs::write(
            &conf,
            format!(
                "unix {{ nodaemon cli-listen {} }}\nsocksvr {{ socket-name {} }}\nstatseg {{ socket-name {} }}\nbuffers {{ buffers-per-numa 16384 }}\ncpu {{ {cpu} }}\n",
                cli.display(),
                api.display(),
                dir.join("stats.sock").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("rvpp.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_rvpp"))
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut r = Rvpp {
            child,
            dir,
            api,
            cli,
            apidir,
        };
        let t = Instant::now();
        while !r.api.exists() {
            if let Ok(Some(st)) = r.child.try_wait() {
                panic!("rvpp exited ({st}): {}", r.log());
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "no API socket: {}",
                r.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rvpp.log")).unwrap_or_default()
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
