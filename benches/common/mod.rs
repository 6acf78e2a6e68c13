//! What the training benches share: the experiment files named on the command line (or the
//! bench's defaults), and the device that `BACKEND` names (default `cpu`, flex), with autodiff.
//! Each bench includes it as `mod common;`.

use burn::tensor::Device;
use mla_lab::backend::{self, BackendChoice};

/// The arguments that are not flags, or `defaults` when there are none.
pub fn files(defaults: &[&str]) -> Vec<String> {
    let files: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if files.is_empty() {
        defaults.iter().map(|f| f.to_string()).collect()
    } else {
        files
    }
}

/// The backend's name and its device with autodiff, as `BACKEND` names it (`cpu` when unset;
/// any `--backend` value); glibc's allocator set as the binary sets it
/// (`backend::keep_freed_memory`), so that a bench times what a run does.
pub fn training_device() -> (String, Device) {
    backend::keep_freed_memory();
    let choice = std::env::var("BACKEND").unwrap_or_else(|_| "cpu".into());
    let choice = choice
        .parse::<BackendChoice>()
        .unwrap_or_else(|e| panic!("BACKEND={choice}: {e}"));
    let backend::Selected { name, device, .. } =
        backend::select(choice).unwrap_or_else(|e| panic!("{e}"));
    (name.to_string(), device.autodiff())
}
