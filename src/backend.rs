//! Run-time backend choice among those compiled in (cargo features `flex`, `ndarray`, `wgpu`,
//! `cuda`, `tch`). `Device::default()` picks by what was compiled, not by what exists, so the
//! choice is always explicit here.

use anyhow::{Result, bail};
use burn::tensor::Device;

/// Which backend to run on; written `auto`, `cpu`, `wgpu`, `cuda` or `libtorch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendChoice {
    /// CUDA if compiled in and a card is present, then LibTorch, then a wgpu adapter, then the
    /// CPU.
    Auto,
    Cpu,
    Wgpu,
    Cuda,
    /// burn's LibTorch backend (feature `tch`): its first CUDA device when torch sees one,
    /// else the CPU.
    Libtorch,
}

impl BackendChoice {
    pub const ALL: [BackendChoice; 5] = [
        BackendChoice::Auto,
        BackendChoice::Cpu,
        BackendChoice::Wgpu,
        BackendChoice::Cuda,
        BackendChoice::Libtorch,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Cpu => "cpu",
            BackendChoice::Wgpu => "wgpu",
            BackendChoice::Cuda => "cuda",
            BackendChoice::Libtorch => "libtorch",
        }
    }
}

impl std::str::FromStr for BackendChoice {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let names = || BackendChoice::ALL.map(BackendChoice::name).join(", ");
        BackendChoice::ALL
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| anyhow::anyhow!("backend {s:?}: accepted: {}", names()))
    }
}

/// The compiled-in backends, for messages.
pub fn compiled_backends() -> Vec<&'static str> {
    let mut v = Vec::new();
    if cfg!(feature = "cuda") {
        v.push("cuda");
    }
    if cfg!(feature = "tch") {
        v.push("libtorch");
    }
    if cfg!(feature = "wgpu") {
        v.push("wgpu");
    }
    if cfg!(feature = "flex") {
        v.push("cpu (flex)");
    } else if cfg!(feature = "ndarray") {
        v.push("cpu (ndarray)");
    }
    v
}

/// The CPU device, or `None` when no CPU backend was compiled in.
pub fn cpu_device() -> Option<Device> {
    #[cfg(feature = "flex")]
    return Some(Device::flex());
    // burn marks ndarray deprecated in favour of flex; it stays as an opt-in comparison.
    #[cfg(all(not(feature = "flex"), feature = "ndarray"))]
    #[allow(deprecated)]
    return Some(Device::ndarray());
    #[allow(unreachable_code)]
    None
}

#[cfg(feature = "cuda")]
fn cuda_device() -> Option<Device> {
    use burn::tensor::DeviceType;
    std::panic::catch_unwind(|| {
        Device::enumerate(DeviceType::Cuda)
            .into_vec()
            .into_iter()
            .next()
    })
    .ok()
    .flatten()
}

/// LibTorch's first CUDA device if torch sees one (`enumerate` lists only CUDA devices), else
/// LibTorch on the CPU.
#[cfg(feature = "tch")]
#[allow(deprecated)] // burn 0.22 marks the LibTorch backend deprecated; it is opt-in here.
fn libtorch_device() -> (String, Device) {
    use burn::tensor::DeviceType;
    let cuda = std::panic::catch_unwind(|| Device::enumerate(DeviceType::LibTorch).into_vec())
        .unwrap_or_default();
    if cuda.is_empty() {
        ("libtorch (cpu)".to_string(), Device::libtorch())
    } else {
        (
            "libtorch (cuda:0)".to_string(),
            Device::libtorch_cuda(0usize),
        )
    }
}

#[cfg(feature = "wgpu")]
fn wgpu_device() -> Option<Device> {
    use burn::tensor::DeviceType;
    std::panic::catch_unwind(|| {
        Device::enumerate(DeviceType::Wgpu)
            .into_vec()
            .into_iter()
            .next()
    })
    .ok()
    .flatten()
}

/// A device picked by [`select`].
#[derive(Debug, Clone)]
pub struct Selected {
    /// What it is, e.g. `cpu (flex)`, `libtorch (cuda:0)`.
    pub name: String,
    pub device: Device,
}

impl Selected {
    /// Whether its tensors live in the machine's own memory (a CPU backend, or LibTorch on
    /// the CPU) rather than on a card's.
    pub fn in_host_memory(&self) -> bool {
        self.name.starts_with("cpu") || self.name == "libtorch (cpu)"
    }
}

/// Picks a device and says which.
pub fn select(choice: BackendChoice) -> Result<Selected> {
    let (name, device) = pick(choice)?;
    Ok(Selected { name, device })
}

fn pick(choice: BackendChoice) -> Result<(String, Device)> {
    let compiled = compiled_backends().join(", ");
    match choice {
        BackendChoice::Cuda => {
            #[cfg(feature = "cuda")]
            return cuda_device()
                .map(|d| ("cuda".to_string(), d))
                .ok_or_else(|| anyhow::anyhow!("backend cuda: no CUDA device found"));
            #[allow(unreachable_code)]
            {
                bail!(
                    "backend cuda: this build has no CUDA backend (compiled: {compiled}); rebuild with `--features cuda`"
                )
            }
        }
        BackendChoice::Libtorch => {
            #[cfg(feature = "tch")]
            return Ok(libtorch_device());
            #[allow(unreachable_code)]
            {
                bail!(
                    "backend libtorch: this build has no LibTorch backend (compiled: {compiled}); rebuild with `--features tch` (see README, Backends)"
                )
            }
        }
        BackendChoice::Wgpu => {
            #[cfg(feature = "wgpu")]
            return wgpu_device()
                .map(|d| ("wgpu".to_string(), d))
                .ok_or_else(|| anyhow::anyhow!("backend wgpu: no wgpu adapter found"));
            #[allow(unreachable_code)]
            {
                bail!(
                    "backend wgpu: this build has no wgpu backend (compiled: {compiled}); rebuild with `--features wgpu`"
                )
            }
        }
        BackendChoice::Cpu => match cpu_device() {
            Some(d) => Ok((cpu_name().to_string(), d)),
            None => bail!(
                "backend cpu: this build has no CPU backend (compiled: {compiled}); rebuild with `--features flex`"
            ),
        },
        BackendChoice::Auto => {
            #[cfg(feature = "cuda")]
            if let Some(d) = cuda_device() {
                return Ok(("cuda".to_string(), d));
            }
            #[cfg(feature = "tch")]
            return Ok(libtorch_device());
            #[allow(unreachable_code)]
            {
                #[cfg(feature = "wgpu")]
                if let Some(d) = wgpu_device() {
                    return Ok(("wgpu".to_string(), d));
                }
                match cpu_device() {
                    Some(d) => Ok((cpu_name().to_string(), d)),
                    None => bail!(
                        "backend auto: no device found among the compiled backends ({compiled})"
                    ),
                }
            }
        }
    }
}

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

fn cpu_name() -> &'static str {
    if cfg!(feature = "flex") {
        "cpu (flex)"
    } else {
        "cpu (ndarray)"
    }
}

/// The device unit tests run on: the CPU backend, or LibTorch when built with `--features tch`
/// and run with `MLA_LAB_TEST_BACKEND=libtorch` (so the equivalence tests can be run on it).
pub fn test_device() -> Device {
    if std::env::var("MLA_LAB_TEST_BACKEND").as_deref() == Ok("libtorch") {
        #[cfg(feature = "tch")]
        return libtorch_device().1;
        #[allow(unreachable_code)]
        {
            panic!("MLA_LAB_TEST_BACKEND=libtorch needs a build with `--features tch`")
        }
    }
    cpu_device().expect("tests need a CPU backend: build with the `flex` or `ndarray` feature")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_names_parse_both_ways_and_others_are_refused_with_the_list() {
        for b in BackendChoice::ALL {
            assert_eq!(b.name().parse::<BackendChoice>().unwrap(), b);
        }
        assert_eq!(
            "LibTorch".parse::<BackendChoice>().unwrap(),
            BackendChoice::Libtorch
        );
        let err = "tpu".parse::<BackendChoice>().unwrap_err().to_string();
        assert!(
            err.contains("\"tpu\"") && err.contains("auto, cpu, wgpu, cuda, libtorch"),
            "{err}"
        );
    }

    #[test]
    fn cpu_and_auto_find_the_cpu_here() {
        let cpu = select(BackendChoice::Cpu).unwrap();
        assert!(cpu.name.starts_with("cpu"), "{}", cpu.name);
        assert!(cpu.in_host_memory());
        assert_eq!(Some(cpu.device), cpu_device());
        // No GPU backend or LibTorch in the default build: auto falls back to the CPU.
        if !cfg!(any(feature = "cuda", feature = "wgpu", feature = "tch")) {
            assert_eq!(select(BackendChoice::Auto).unwrap().name, cpu.name);
        }
        // Linux says how much memory is free; this machine has some.
        if cfg!(target_os = "linux") {
            assert!(available_memory().unwrap() > 1 << 20);
        }
    }

    #[test]
    fn test_device_follows_mla_lab_test_backend() {
        let libtorch = std::env::var("MLA_LAB_TEST_BACKEND").as_deref() == Ok("libtorch");
        assert_eq!(test_device() != cpu_device().unwrap(), libtorch);
    }

    #[test]
    fn a_backend_not_compiled_in_is_a_clear_error() {
        if !cfg!(feature = "cuda") {
            let err = select(BackendChoice::Cuda).unwrap_err().to_string();
            assert!(
                err.contains("--features cuda") && err.contains("compiled:"),
                "{err}"
            );
        }
        if !cfg!(feature = "wgpu") {
            let err = select(BackendChoice::Wgpu).unwrap_err().to_string();
            assert!(err.contains("--features wgpu"), "{err}");
        }
        if !cfg!(feature = "tch") {
            let err = select(BackendChoice::Libtorch).unwrap_err().to_string();
            assert!(err.contains("--features tch"), "{err}");
        }
    }
}
