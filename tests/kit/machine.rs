//! Facts about the machine and a process that reports print beside their numbers: the CPU, how
//! shared the machine was, memory, and latency percentiles.

/// Resident and peak resident memory of a process, in MiB, from `/proc/<pid>/status` (NaN
/// where it cannot be read).
pub fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |name: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0)
}

/// p50 and p99 of latencies in microseconds, in milliseconds (NaN when there are none).
pub fn percentiles(latencies_us: &[u32]) -> (f64, f64) {
    if latencies_us.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mut sorted = latencies_us.to_vec();
    sorted.sort_unstable();
    let at = |q: f64| f64::from(sorted[((sorted.len() - 1) as f64 * q).round() as usize]) / 1000.0;
    (at(0.50), at(0.99))
}

/// The CPU's model name, from `/proc/cpuinfo`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// The 1, 5 and 15-minute load averages, which say how much the machine was shared.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
