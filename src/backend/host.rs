//! What the host machine reports about itself: free memory and load.

/// Bytes of memory this machine has free for a new process: Linux's `MemAvailable`, capped
/// by the container's limit where there is one; `None` where neither can be read.
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let available = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()?
        * 1024;
    // cgroup v2: `max` when unlimited.
    let read = |f: &str| -> Option<u64> {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{f}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let in_container = match (read("memory.max"), read("memory.current")) {
        (Some(max), Some(current)) => Some(max.saturating_sub(current)),
        _ => None,
    };
    Some(in_container.map_or(available, |c| c.min(available)))
}

/// The machine's load average over the last minute (Linux's `/proc/loadavg`); `None` where it
/// cannot be read. A bench records it beside its timings: other work on the cores shows there.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
