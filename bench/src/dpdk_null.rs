//! `rvpp-bench dpdk-null` (being built).

pub fn run(_args: &[String]) -> Result<serde_json::Value, String> {
    Err("dpdk-null: not built yet".into())
}
