//! `rvpp-bench uplink` (being built).

pub fn run(_args: &[String]) -> Result<serde_json::Value, String> {
    Err("uplink: not built yet".into())
}
