//! Run-time backend choice among those compiled in (cargo features `flex`, `ndarray`, `wgpu`,
//! `cuda`). `Device::default()` picks by what was compiled, not by what exists, so the choice
//! is always explicit here.

use anyhow::{Result, bail};
use burn::tensor::Device;

/// `--backend` on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    /// CUDA if compiled in and a card is present, then a wgpu adapter, then the CPU.
    Auto,
    Cpu,
    Wgpu,
    Cuda,
}

/// The compiled-in backends, for messages.
pub fn compiled_backends() -> Vec<&'static str> {
    let mut v = Vec::new();
    if cfg!(feature = "cuda") {
        v.push("cuda");
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

/// Picks a device and says which, e.g. `("cpu (flex)", device)`.
pub fn select(choice: BackendChoice) -> Result<(String, Device)> {
    let compiled = compiled_backends().join(", ");
    match choice {
        BackendChoice::Cuda => {
            #[cfg(feature = "cuda")]
            return cuda_device()
                .map(|d| ("cuda".to_string(), d))
                .ok_or_else(|| anyhow::anyhow!("--backend cuda: no CUDA device found"));
            #[allow(unreachable_code)]
            {
                bail!(
                    "--backend cuda: this build has no CUDA backend (compiled: {compiled}); rebuild with `--features cuda`"
                )
            }
        }
        BackendChoice::Wgpu => {
            #[cfg(feature = "wgpu")]
            return wgpu_device()
                .map(|d| ("wgpu".to_string(), d))
                .ok_or_else(|| anyhow::anyhow!("--backend wgpu: no wgpu adapter found"));
            #[allow(unreachable_code)]
            {
                bail!(
                    "--backend wgpu: this build has no wgpu backend (compiled: {compiled}); rebuild with `--features wgpu`"
                )
            }
        }
        BackendChoice::Cpu => match cpu_device() {
            Some(d) => Ok((cpu_name().to_string(), d)),
            None => bail!(
                "--backend cpu: this build has no CPU backend (compiled: {compiled}); rebuild with `--features flex`"
            ),
        },
        BackendChoice::Auto => {
            #[cfg(feature = "cuda")]
            if let Some(d) = cuda_device() {
                return Ok(("cuda".to_string(), d));
            }
            #[cfg(feature = "wgpu")]
            if let Some(d) = wgpu_device() {
                return Ok(("wgpu".to_string(), d));
            }
            match cpu_device() {
                Some(d) => Ok((cpu_name().to_string(), d)),
                None => bail!(
                    "--backend auto: no device found among the compiled backends ({compiled})"
                ),
            }
        }
    }
}

fn cpu_name() -> &'static str {
    if cfg!(feature = "flex") {
        "cpu (flex)"
    } else {
        "cpu (ndarray)"
    }
}

/// The CPU device used by unit tests.
pub fn test_device() -> Device {
    cpu_device().expect("tests need a CPU backend: build with the `flex` or `ndarray` feature")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_auto_find_the_cpu_here() {
        let (name, device) = select(BackendChoice::Cpu).unwrap();
        assert!(name.starts_with("cpu"), "{name}");
        assert_eq!(device, test_device());
        // No GPU backend in the default build: auto falls back to the CPU.
        if !cfg!(any(feature = "cuda", feature = "wgpu")) {
            assert_eq!(select(BackendChoice::Auto).unwrap().0, name);
        }
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
    }
}
