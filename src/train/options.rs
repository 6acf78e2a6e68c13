//! What a `train` call is asked to do beyond its experiment file: where, how shown, on which
//! backend and devices, and whether to resume or start over.

use std::path::PathBuf;

use burn::tensor::Device;
use burn::train::{ExecutionStrategy, MultiDeviceOptim};

use crate::backend::{BackendChoice, DeviceSpec};

#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Where run folders and the token cache live.
    pub artifacts: PathBuf,
    pub resume: bool,
    /// Start over in a folder that holds another run.
    pub force: bool,
    pub display: Display,
    pub backend: BackendChoice,
    /// A training seed that replaces the file's; the run goes to `<name>-s<seed>`.
    pub seed: Option<u64>,
    /// Devices of the backend to train on, the batch split evenly across them; `None`: one.
    pub devices: Option<DeviceSpec>,
    /// Rows per forward and backward pass on a device, instead of the file's
    /// `train.micro_batch`.
    pub micro_batch: Option<usize>,
}

/// How burn-train spreads a step over the devices.
///
/// Always `MultiDevice` for several devices, CUDA included, although burn offers DDP there:
/// under burn-train 0.22's DDP every worker reports on its own, so the last shard of an epoch
/// can arrive after validation has begun (rows of `metrics.csv` would shift), and a worker
/// that stops on the interrupter (a NaN loss, the dashboard's quit) while another waits in the
/// all-reduce hangs the run. Neither can happen in `MultiDevice`, which steps all devices from
/// one thread. DDP waits for a machine with GPUs to prove it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Single,
    /// A thread per device, each on its shard; the gradients summed on the first device, which
    /// steps the optimizer (burn-train's `MultiDevice` with `OptimMainDevice`).
    MultiDevice,
}

impl Strategy {
    pub fn for_devices(devices: usize) -> Strategy {
        if devices == 1 {
            Strategy::Single
        } else {
            Strategy::MultiDevice
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Strategy::Single => "single device",
            Strategy::MultiDevice => "multi-device (gradients summed on the first device)",
        }
    }

    pub(super) fn execution(self, devices: Vec<Device>) -> ExecutionStrategy {
        match self {
            Strategy::Single => ExecutionStrategy::single(devices[0].clone()),
            Strategy::MultiDevice => {
                ExecutionStrategy::multi(devices, MultiDeviceOptim::OptimMainDevice)
            }
        }
    }
}

/// How a run shows its progress (metrics.csv is written either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// burn-train's terminal dashboard.
    Dashboard,
    /// One line every `log_every` steps.
    Lines,
}
