//! `rvpp-bench api-rate` (being built).

pub fn run(_args: &[String]) -> Result<serde_json::Value, String> {
    Err("api-rate: not built yet".into())
}
