//! `rvpp-bench pod-tcp` (being built).

pub fn run(_args: &[String]) -> Result<serde_json::Value, String> {
    Err("pod-tcp: not built yet".into())
}
