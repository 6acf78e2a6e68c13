//! Run-time backend choice among those compiled in (cargo features `flex`, `ndarray`, `wgpu`,
//! `cuda`, `tch`, `cubecl-cpu`). `Device::default()` picks by what was compiled, not by what
//! exists, so the choice is always explicit here.

use anyhow::{Result, bail};
use burn::tensor::Device;

use crate::options::InvalidOption;

/// Which backend to run on; written `auto`, `cpu`, `wgpu`, `cuda`, `libtorch` or `cubecl-cpu`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendChoice {
    /// CUDA if compiled in and a card is present, then LibTorch, then a wgpu adapter, then the
    /// CPU. Never `cubecl-cpu`: it is there to be asked for.
    Auto,
    Cpu,
    Wgpu,
    Cuda,
    /// burn's LibTorch backend (feature `tch`): its first CUDA device when torch sees one,
    /// else the CPU.
    Libtorch,
    /// burn's CubeCL CPU backend (burn-cpu, our feature `cubecl-cpu`): the kernels burn's CUDA
    /// backend runs, compiled by the same CubeCL → LLVM path for the host's CPU instead of
    /// NVPTX. CUDA's stand-in on a machine without a card.
    CubeclCpu,
}

impl BackendChoice {
    pub const ALL: [BackendChoice; 6] = [
        BackendChoice::Auto,
        BackendChoice::Cpu,
        BackendChoice::Wgpu,
        BackendChoice::Cuda,
        BackendChoice::Libtorch,
        BackendChoice::CubeclCpu,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Cpu => "cpu",
            BackendChoice::Wgpu => "wgpu",
            BackendChoice::Cuda => "cuda",
            BackendChoice::Libtorch => "libtorch",
            BackendChoice::CubeclCpu => "cubecl-cpu",
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
    if cfg!(feature = "cubecl-cpu") {
        v.push("cubecl-cpu");
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

/// burn-cpu's one device. Its first use compiles each kernel through LLVM for this CPU.
#[cfg(feature = "cubecl-cpu")]
fn cubecl_cpu_picked() -> Selected {
    Selected::new(Kind::CubeclCpu, "cubecl-cpu", Device::cpu())
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
fn libtorch_device() -> Selected {
    use burn::tensor::DeviceType;
    let cuda = std::panic::catch_unwind(|| Device::enumerate(DeviceType::LibTorch).into_vec())
        .unwrap_or_default();
    if cuda.is_empty() {
        Selected::new(Kind::LibTorchCpu, "libtorch (cpu)", Device::libtorch())
    } else {
        Selected::new(
            Kind::LibTorchCuda,
            "libtorch (cuda:0)",
            Device::libtorch_cuda(0usize),
        )
    }
}

/// wgpu's first adapter, whatever it is: what `--backend wgpu` takes (a software rasterizer
/// included, when asked for).
#[cfg(feature = "wgpu")]
fn wgpu_device() -> Option<Selected> {
    wgpu_first().map(wgpu_picked)
}

/// The device of wgpu's first adapter, not asked what it is (the unit tests' device).
#[cfg(feature = "wgpu")]
fn wgpu_first() -> Option<Device> {
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

/// wgpu's first adapter that is a GPU (discrete, then integrated, then virtual), never a
/// software rasterizer such as Mesa's llvmpipe, which wgpu lists as a CPU-type adapter: a
/// machine whose only Vulkan device is one trains faster on the CPU backend. What `auto` takes.
#[cfg(feature = "wgpu")]
fn wgpu_gpu() -> Option<Selected> {
    use burn::tensor::{DeviceKind, DeviceType};
    let all = std::panic::catch_unwind(|| Device::enumerate(DeviceType::Wgpu).into_vec()).ok()?;
    let kinds = [
        DeviceKind::DiscreteGpu as fn(usize) -> DeviceKind,
        DeviceKind::IntegratedGpu,
        DeviceKind::VirtualGpu,
    ];
    let device = kinds
        .iter()
        .flat_map(|kind| (0..all.len()).map(move |i| Device::wgpu(kind(i))))
        .find(|candidate| all.contains(candidate))?;
    Some(wgpu_picked(device))
}

/// A wgpu adapter, named and told apart as software or not by what wgpu says of it; its
/// largest buffer caps one tensor.
#[cfg(feature = "wgpu")]
fn wgpu_picked(device: Device) -> Selected {
    let identity = std::panic::catch_unwind(|| device.identity())
        .ok()
        .flatten();
    let adapter = identity
        .as_ref()
        .and_then(|identity| wgpu_adapter(&identity.name));
    let software = adapter.as_ref().is_some_and(|a| a.software);
    let mut name = identity.map_or("wgpu".into(), |identity| format!("wgpu: {}", identity.name));
    if software {
        name = format!("{name} {SOFTWARE}");
    }
    Selected {
        kind: Kind::Wgpu { software },
        name,
        device,
        max_allocation: adapter.map(|a| a.max_buffer_size.min(a.max_storage_buffer_binding_size)),
    }
}

/// `cuda: NVIDIA H200`: the backend and the device's own name, as runs record it (a wgpu
/// adapter is named the same way, `wgpu: llvmpipe (LLVM 15.0.6, 256 bits)`, by
/// [`wgpu_picked`], which marks a software one).
#[cfg(feature = "cuda")]
fn named(backend: &str, device: &Device) -> String {
    match std::panic::catch_unwind(|| device.identity())
        .ok()
        .flatten()
    {
        Some(identity) => format!("{backend}: {}", identity.name),
        None => backend.to_string(),
    }
}

/// What wgpu says of one adapter: whether it is a software rasterizer, and the largest buffer
/// and storage binding it allows (one tensor must fit in both).
#[cfg(feature = "wgpu")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WgpuAdapter {
    pub name: String,
    pub software: bool,
    pub max_buffer_size: u64,
    pub max_storage_buffer_binding_size: u64,
}

/// The adapter named `name`, as wgpu lists it on any graphics API.
#[cfg(feature = "wgpu")]
pub fn wgpu_adapter(name: &str) -> Option<WgpuAdapter> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapters =
        futures_lite::future::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    adapters.iter().find_map(|a| {
        let info = a.get_info();
        (info.name == name).then(|| {
            let limits = a.limits();
            WgpuAdapter {
                name: info.name.clone(),
                software: info.device_type == wgpu::DeviceType::Cpu,
                max_buffer_size: limits.max_buffer_size,
                max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
            }
        })
    })
}

/// Mesa's Vulkan drivers print `error: XDG_RUNTIME_DIR is invalid or not set in the
/// environment.` for each Vulkan instance opened (wgpu opens several) where that variable is
/// unset: containers, CI, `sudo`. No window is ever opened here, so the folder is not used;
/// pointing the variable at a private one keeps the drivers quiet. Call first thing in `main`,
/// before any thread starts. Nothing happens without the `wgpu` feature or where it is set.
pub fn quiet_vulkan_drivers() {
    #[cfg(all(feature = "wgpu", unix))]
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join("mla-lab-xdg-runtime");
        let private = std::fs::create_dir_all(&dir).is_ok()
            && std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).is_ok();
        if private {
            // SAFETY: called at the start of `main`, before any other thread exists.
            unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
        }
    }
}

/// What kind of device a [`Selected`] is: where its tensors live and how its siblings are
/// found follow from this, never from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// burn's own CPU backend (flex or ndarray).
    Cpu,
    /// LibTorch on the CPU.
    LibTorchCpu,
    /// LibTorch on a CUDA card.
    LibTorchCuda,
    /// A wgpu adapter; `software` for a rasterizer on the CPU, such as Mesa's llvmpipe.
    Wgpu { software: bool },
    /// burn's CUDA backend.
    Cuda,
    /// burn's CubeCL CPU backend (burn-cpu).
    CubeclCpu,
}

impl Kind {
    /// Whether its tensors live in the machine's own memory (a CPU backend, LibTorch on the
    /// CPU, a software wgpu adapter) rather than on a card's.
    pub fn in_host_memory(self) -> bool {
        matches!(
            self,
            Kind::Cpu | Kind::LibTorchCpu | Kind::CubeclCpu | Kind::Wgpu { software: true }
        )
    }
}

/// A device picked by [`select`].
#[derive(Debug, Clone)]
pub struct Selected {
    pub kind: Kind,
    /// What it is, for people and records, e.g. `cpu (flex)`, `libtorch (cuda:0)`, `wgpu:
    /// llvmpipe (LLVM 15.0.7, 256 bits) (software, on the CPU)`.
    pub name: String,
    pub device: Device,
    /// The largest single allocation the device allows, where it has a cap of its own (a wgpu
    /// adapter's largest buffer and storage binding).
    pub max_allocation: Option<u64>,
}

impl Selected {
    fn new(kind: Kind, name: &str, device: Device) -> Self {
        Selected {
            kind,
            name: name.to_string(),
            device,
            max_allocation: None,
        }
    }

    /// Whether its tensors live in the machine's own memory ([`Kind::in_host_memory`]).
    pub fn in_host_memory(&self) -> bool {
        self.kind.in_host_memory()
    }
}

/// How [`Selected::name`] ends for a software rasterizer.
#[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
const SOFTWARE: &str = "(software, on the CPU)";

/// Picks a device and says which, by name, on stderr.
pub fn select(choice: BackendChoice) -> Result<Selected> {
    let selected = find(choice)?;
    // On stderr: `eval --json` and the like keep stdout to their answer.
    eprintln!("device: {}", selected.name);
    Ok(selected)
}

/// The device `choice` takes, saying nothing.
pub fn find(choice: BackendChoice) -> Result<Selected> {
    let compiled = compiled_backends().join(", ");
    match choice {
        BackendChoice::Cuda => {
            #[cfg(feature = "cuda")]
            return cuda_picked()
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
                    "backend libtorch: this build has no LibTorch backend (compiled: {compiled}); rebuild with `--features tch` (see docs/backends.md)"
                )
            }
        }
        BackendChoice::Wgpu => {
            #[cfg(feature = "wgpu")]
            return wgpu_device()
                .ok_or_else(|| anyhow::anyhow!("backend wgpu: no wgpu adapter found"));
            #[allow(unreachable_code)]
            {
                bail!(
                    "backend wgpu: this build has no wgpu backend (compiled: {compiled}); rebuild with `--features wgpu`"
                )
            }
        }
        BackendChoice::CubeclCpu => {
            #[cfg(feature = "cubecl-cpu")]
            return Ok(cubecl_cpu_picked());
            #[allow(unreachable_code)]
            {
                bail!(
                    "backend cubecl-cpu: this build has no CubeCL CPU backend (compiled: {compiled}); rebuild with `--features cubecl-cpu` (see docs/backends.md: it needs LLVM 23, scripts/llvm-for-cubecl.sh offline)"
                )
            }
        }
        BackendChoice::Cpu => match cpu_picked() {
            Some(picked) => Ok(picked),
            None => bail!(
                "backend cpu: this build has no CPU backend (compiled: {compiled}); rebuild with `--features flex`"
            ),
        },
        BackendChoice::Auto => {
            #[cfg(feature = "cuda")]
            if let Some(picked) = cuda_picked() {
                return Ok(picked);
            }
            #[cfg(feature = "tch")]
            return Ok(libtorch_device());
            #[allow(unreachable_code)]
            {
                #[cfg(feature = "wgpu")]
                if let Some(picked) = wgpu_gpu() {
                    return Ok(picked);
                }
                match cpu_picked() {
                    Some(picked) => Ok(picked),
                    None => bail!(
                        "backend auto: no device found among the compiled backends ({compiled})"
                    ),
                }
            }
        }
    }
}

impl Selected {
    /// The devices `spec` names on this backend. GPUs are taken by index. The CPU is one
    /// device: `N` of it means `N` replicas that train side by side on the same cores, each on
    /// its share of the batch (the same arithmetic as `N` GPUs; not faster).
    pub fn devices(&self, spec: &DeviceSpec) -> Result<Vec<Device>> {
        if self.in_host_memory() {
            return match spec {
                DeviceSpec::Count(n) => Ok(vec![self.device.clone(); *n]),
                DeviceSpec::List(l) if l == &[0] => Ok(vec![self.device.clone()]),
                DeviceSpec::List(_) => Err(InvalidOption::new(
                    "devices",
                    spec,
                    format!(
                        "0, the one device of backend {}, or a count N of replicas that train \
                         side by side on it",
                        self.name
                    ),
                )
                .into()),
            };
        }
        let all = gpus(self.kind);
        let pick: Vec<usize> = match spec {
            DeviceSpec::Count(n) => (0..*n).collect(),
            DeviceSpec::List(l) => l.clone(),
        };
        if let Some(&missing) = pick.iter().find(|&&i| i >= all.len()) {
            let have: Vec<String> = (0..all.len()).map(|i| i.to_string()).collect();
            let accepted = format!(
                "indices of backend {}'s {} device(s), {} (there is no device {missing})",
                self.name,
                all.len(),
                have.join(", ")
            );
            return Err(InvalidOption::new("devices", spec, accepted).into());
        }
        Ok(pick.into_iter().map(|i| all[i].clone()).collect())
    }
}

/// Every device of a GPU backend, in index order.
fn gpus(kind: Kind) -> Vec<Device> {
    #[allow(unused_variables)]
    let kind = match kind {
        #[cfg(feature = "cuda")]
        Kind::Cuda => burn::tensor::DeviceType::Cuda,
        #[cfg(feature = "wgpu")]
        Kind::Wgpu { .. } => burn::tensor::DeviceType::Wgpu,
        #[cfg(feature = "tch")]
        Kind::LibTorchCuda => burn::tensor::DeviceType::LibTorch,
        _ => return vec![],
    };
    #[cfg(any(feature = "cuda", feature = "wgpu", feature = "tch"))]
    return std::panic::catch_unwind(|| Device::enumerate(kind).into_vec()).unwrap_or_default();
    #[allow(unreachable_code)]
    Vec::new()
}

fn cpu_name() -> &'static str {
    if cfg!(feature = "flex") {
        "cpu (flex)"
    } else {
        "cpu (ndarray)"
    }
}

fn cpu_picked() -> Option<Selected> {
    cpu_device().map(|d| Selected::new(Kind::Cpu, cpu_name(), d))
}

#[cfg(feature = "cuda")]
fn cuda_picked() -> Option<Selected> {
    cuda_device().map(|d| Selected::new(Kind::Cuda, &named("cuda", &d), d))
}

/// One device of every backend compiled in that has one here, the CPU first: LibTorch's (its
/// first CUDA device, else the CPU), wgpu's first adapter (a software one included), CUDA's
/// first card, burn-cpu's device. What the tests that hold backends against each other
/// compare.
pub fn every_backend() -> Vec<(String, Device)> {
    #[allow(unused_mut)]
    let mut all: Vec<Selected> = cpu_picked().into_iter().collect();
    #[cfg(feature = "tch")]
    all.push(libtorch_device());
    #[cfg(feature = "wgpu")]
    all.extend(wgpu_device());
    #[cfg(feature = "cuda")]
    all.extend(cuda_picked());
    #[cfg(feature = "cubecl-cpu")]
    all.push(cubecl_cpu_picked());
    all.into_iter().map(|s| (s.name, s.device)).collect()
}

/// What the tests that hold backends against each other compare: the CPU first, then where
/// `MLA_LAB_TEST_BACKEND` names another backend, that one alone (each backend's own test run
/// compares it once, and a GPU machine's check waits on no other), else every backend of
/// [`every_backend`].
pub fn compared_backends() -> Vec<(String, Device)> {
    let asked = std::env::var("MLA_LAB_TEST_BACKEND").unwrap_or_default();
    let mut all = every_backend();
    if !matches!(asked.as_str(), "" | "cpu") {
        let device = test_device();
        all.truncate(1);
        all.push((format!("{asked} (MLA_LAB_TEST_BACKEND)"), device));
    }
    all
}

/// The backends the library's tests can run on, by `MLA_LAB_TEST_BACKEND`'s value.
const TEST_BACKENDS: &str = "cpu (unset), libtorch (a build with `--features tch`), wgpu (a build \
                             with `--features wgpu` and an adapter: Mesa's llvmpipe will do), cuda \
                             (a build with `--features cuda` and a card), cubecl-cpu (a build with `--features cubecl-cpu`)";

/// The device unit tests run on: the CPU backend, or where `MLA_LAB_TEST_BACKEND` names one,
/// LibTorch (`libtorch`, built with `--features tch`), wgpu's first adapter (`wgpu`, built with
/// `--features wgpu`), the first CUDA card (`cuda`) or burn-cpu (`cubecl-cpu`, built with
/// `--features cubecl-cpu`), so that the equivalence tests run on it.
/// Any other value, or a backend not built or without a device, stops the tests with the
/// accepted values.
pub fn test_device() -> Device {
    let asked = std::env::var("MLA_LAB_TEST_BACKEND").unwrap_or_default();
    let device = match asked.as_str() {
        "" | "cpu" => cpu_device(),
        #[cfg(feature = "tch")]
        "libtorch" => Some(libtorch_device().device),
        #[cfg(feature = "wgpu")]
        "wgpu" => wgpu_first(),
        #[cfg(feature = "cuda")]
        "cuda" => cuda_device(),
        #[cfg(feature = "cubecl-cpu")]
        "cubecl-cpu" => Some(cubecl_cpu_picked().device),
        _ => None,
    };
    device.unwrap_or_else(|| {
        panic!(
            "MLA_LAB_TEST_BACKEND={asked:?}: no such device in this build (compiled: {}); accepted: {TEST_BACKENDS}",
            compiled_backends().join(", ")
        )
    })
}

mod devices;
mod host;

pub use devices::DeviceSpec;
pub use host::{available_memory, keep_freed_memory, load_average};

#[cfg(test)]
mod tests;
