//! `rvpp-bench memif-loop` (being built).

pub fn run(_args: &[String]) -> Result<serde_json::Value, String> {
    Err("memif-loop: not built yet".into())
}
