//! What the machine was like when a benchmark ran: every JSON result carries it, so a figure
//! that does not reproduce can be traced to hugepages, THP modes or the CPU rather than to rvpp.

use serde_json::{json, Value};

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The bracketed (active) word of a sysfs mode list such as "always [madvise] never".
fn active_mode(path: &str) -> Option<String> {
    let s = read(path)?;
    let w = s.split_whitespace().find(|w| w.starts_with('['))?;
    Some(w.trim_matches(['[', ']']).to_string())
}

fn meminfo(key: &str) -> Option<u64> {
    let m = read("/proc/meminfo")?;
    m.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn cpu_model() -> Option<String> {
    let c = read("/proc/cpuinfo")?;
    c.lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
}

/// The environment block of every benchmark's JSON.
pub fn describe() -> Value {
    json!({
        "cpu_model": cpu_model(),
        "cpus_online": read("/proc/cpuinfo").map(|c| c.lines().filter(|l| l.starts_with("processor")).count()),
        "tsc_ghz": rvpp_dataplane::runtime::tsc_hz() as f64 / 1e9,
        "kernel": read("/proc/sys/kernel/osrelease"),
        "hugepages_2m_reserved": meminfo("HugePages_Total:"),
        "hugepages_2m_free_at_end": meminfo("HugePages_Free:"),
        "thp_enabled": active_mode("/sys/kernel/mm/transparent_hugepage/enabled"),
        "thp_shmem_enabled": active_mode("/sys/kernel/mm/transparent_hugepage/shmem_enabled"),
        "thp_defrag": active_mode("/sys/kernel/mm/transparent_hugepage/defrag"),
        "load_average": read("/proc/loadavg"),
    })
}

/// TSC ticks per step of a dependent integer chain on this core, about 2 ms of work. A vCPU
/// that shares its host core (another guest, or our own second thread pinned there) shows as
/// a larger figure; here about 1.3 when the core is ours and 2.3-2.9 when it is shared. Taken
/// before and after a run, it tells a run measured on a full core from one that was not.
pub fn cpu_probe() -> f64 {
    const STEPS: u64 = 2_000_000;
    let t0 = rvpp_dataplane::runtime::clocks();
    let mut y = 1u64;
    for _ in 0..STEPS {
        y = std::hint::black_box(y.wrapping_mul(3).wrapping_add(1));
    }
    std::hint::black_box(y);
    (rvpp_dataplane::runtime::clocks() - t0) as f64 / STEPS as f64
}
