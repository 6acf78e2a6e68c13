//! Checkpoint files of a run folder: `checkpoint/{model,optim,scheduler}-<epoch>.bpk`, one
//! learner epoch being `eval_every` steps. A checkpoint counts only when all three files of its
//! epoch exist (a run killed while saving or rotating can leave some).

use std::path::{Path, PathBuf};

use super::RunFolder;

/// The three records of a checkpoint, as burn-train's default checkpointers name them.
pub const PARTS: [&str; 3] = ["model", "optim", "scheduler"];

pub fn path(dir: &Path, part: &str, epoch: usize) -> PathBuf {
    RunFolder::new(dir)
        .checkpoints()
        .join(format!("{part}-{epoch}.bpk"))
}

/// Epochs of `run_dir` with at least one checkpoint file (a killed run can leave some parts
/// of an epoch it was saving or rotating out), ascending.
pub fn present(run_dir: &Path) -> Vec<usize> {
    let Ok(entries) = std::fs::read_dir(RunFolder::new(run_dir).checkpoints()) else {
        return vec![];
    };
    let mut epochs: Vec<usize> = entries
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let rest = PARTS
                .iter()
                .find_map(|p| name.strip_prefix(p)?.strip_prefix('-'))?;
            rest.strip_suffix(".bpk")?.parse().ok()
        })
        .collect();
    epochs.sort_unstable();
    epochs.dedup();
    epochs
}

/// Epochs of `run_dir` with all three checkpoint files, ascending.
pub fn complete(run_dir: &Path) -> Vec<usize> {
    present(run_dir)
        .into_iter()
        .filter(|&epoch| PARTS.iter().all(|p| path(run_dir, p, epoch).exists()))
        .collect()
}

/// The newest complete checkpoint of `run_dir`.
pub fn latest_complete(run_dir: &Path) -> Option<usize> {
    complete(run_dir).last().copied()
}
