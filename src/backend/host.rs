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

/// Asks glibc's allocator to keep the memory a process frees for its next allocations rather
/// than hand it back to the kernel: blocks below 32 MiB come from the heap (not a fresh mapping
/// each), the heap is never trimmed, and it grows 64 MiB at a time. A training step frees and
/// makes again the same tensors every step; handed back, each of their pages is zeroed by the
/// kernel on first touch, one fault at a time, on one core (on the tiny tier that was a third of
/// a step on flex; docs/performance.md). The cost is a resident size that stays at its peak. A
/// no-op off glibc. Call it once, first thing, before the process's threads start.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets the allocator's parameters; it is called before other threads.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}
