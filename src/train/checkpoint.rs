//! Writing and verifying a run's checkpoints (their names: [`crate::artifacts::checkpoints`]).
//!
//! burn-train's file checkpointer writes straight to the final name, so a run killed while
//! writing leaves a truncated file that `--resume` would then fail on. [`AtomicCheckpointer`]
//! writes a temporary file and renames it into place; a checkpoint counts only when all three
//! of its files exist ([`crate::artifacts::checkpoints::latest_complete`]), and it is read once
//! before training resumes ([`verify`]) so a corrupt or mismatched one is an error that names
//! the file, not a panic inside the learner.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use burn::module::Module;
use burn::optim::OptimizerRecord;
use burn::optim::lr_scheduler::LrSchedulerRecord;
use burn::train::checkpoint::{
    Checkpoint, Checkpointer, CheckpointerError, CheckpointingAction, CheckpointingStrategy,
};
use burn::train::metric::store::EventStoreClient;

use crate::artifacts::checkpoints::{PARTS, path};
use crate::artifacts::{RunFolder, load_weights};

/// Writes `<dir>/<name>-<epoch>.bpk` through a temporary file and a rename.
pub struct AtomicCheckpointer {
    dir: PathBuf,
    name: &'static str,
}

impl AtomicCheckpointer {
    /// The checkpointers for model, optimizer and scheduler of the run in `run_dir`.
    pub fn for_run(run_dir: &Path) -> [AtomicCheckpointer; 3] {
        let dir = RunFolder::new(run_dir).checkpoints();
        std::fs::create_dir_all(&dir).ok();
        // Temporaries of a run killed while saving.
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with('.') && name.ends_with(".tmp") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        PARTS.map(|name| AtomicCheckpointer {
            dir: dir.clone(),
            name,
        })
    }

    fn path(&self, epoch: usize) -> PathBuf {
        self.dir.join(format!("{}-{epoch}.bpk", self.name))
    }
}

impl<R: Checkpoint> Checkpointer<R> for AtomicCheckpointer {
    fn save(&self, epoch: usize, record: R) -> Result<(), CheckpointerError> {
        let path = self.path(epoch);
        crate::files::remove_stale(&path);
        let tmp = crate::files::temporary(&path);
        record.save(tmp.clone())?;
        std::fs::rename(&tmp, path).map_err(CheckpointerError::IOError)
    }

    fn delete(&self, epoch: usize) -> Result<(), CheckpointerError> {
        match std::fs::remove_file(self.path(epoch)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(CheckpointerError::IOError(e))
            }
            _ => Ok(()),
        }
    }

    fn restore(&self, epoch: usize) -> Result<R, CheckpointerError> {
        R::load(self.path(epoch))
    }
}

/// Reads checkpoint `epoch` and returns `model` with its weights, so a corrupt file or one
/// from another model is an error here rather than a panic inside the learner.
pub fn verify<M: Module>(run_dir: &Path, epoch: usize, model: M) -> Result<M> {
    let bad = |part: &str| {
        format!(
            "{}: cannot resume from this checkpoint",
            path(run_dir, part, epoch).display()
        )
    };
    let model =
        load_weights(model, &path(run_dir, "model", epoch)).with_context(|| bad("model"))?;
    OptimizerRecord::load(path(run_dir, "optim", epoch))
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| bad("optim"))?;
    LrSchedulerRecord::load(path(run_dir, "scheduler", epoch))
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| bad("scheduler"))?;
    Ok(model)
}

/// Save every `every` epochs and at the last one; keep the newest `keep`.
pub struct EveryNKeepLast {
    every: usize,
    last: usize,
    keep: usize,
    saved: Vec<usize>,
}

impl EveryNKeepLast {
    /// `existing`: checkpoints already in the folder (a resumed run), so old ones are rotated
    /// out too.
    pub fn new(every: usize, last: usize, keep: usize, existing: Vec<usize>) -> Self {
        EveryNKeepLast {
            every,
            last,
            keep: keep.max(1),
            saved: existing,
        }
    }

    /// The actions for the end of `epoch` (1-based, as burn-train counts).
    pub fn actions(&mut self, epoch: usize) -> Vec<CheckpointingAction> {
        if !(epoch.is_multiple_of(self.every) || epoch == self.last) {
            return vec![];
        }
        let mut actions = vec![CheckpointingAction::Save];
        self.saved.retain(|&e| e < epoch);
        self.saved.push(epoch);
        while self.saved.len() > self.keep {
            actions.push(CheckpointingAction::Delete(self.saved.remove(0)));
        }
        actions
    }
}

impl CheckpointingStrategy for EveryNKeepLast {
    fn checkpointing(
        &mut self,
        epoch: usize,
        _store: &EventStoreClient,
    ) -> Vec<CheckpointingAction> {
        self.actions(epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifacts::checkpoints::latest_complete;
    use CheckpointingAction::{Delete, Save};
    use burn::store::ModuleRecord;

    #[test]
    fn saves_every_n_epochs_and_the_last_and_keeps_the_newest() {
        let mut s = EveryNKeepLast::new(2, 7, 2, vec![]);
        let got: Vec<_> = (1..=7).map(|e| s.actions(e)).collect();
        assert_eq!(
            got,
            vec![
                vec![],
                vec![Save],
                vec![],
                vec![Save],
                vec![],
                vec![Save, Delete(2)],
                vec![Save, Delete(4)],
            ]
        );
    }

    #[test]
    fn a_resumed_run_rotates_the_checkpoints_it_found() {
        let mut s = EveryNKeepLast::new(1, 10, 2, vec![1, 2, 3]);
        // Resumed from 3: saving 4 drops 1 and 2.
        assert_eq!(s.actions(4), vec![Save, Delete(1), Delete(2)]);
    }

    #[test]
    fn only_complete_checkpoints_count_and_saves_are_atomic() {
        let scratch = crate::data::Scratch::new("ckpt");
        let run = &scratch.0;
        let [model, _, _] = AtomicCheckpointer::for_run(run);
        let device = crate::backend::test_device();
        let lin = burn::nn::LinearConfig::new(3, 2).init(&device);
        Checkpointer::<ModuleRecord>::save(&model, 5, lin.clone().into_record()).unwrap();
        let files: Vec<String> = std::fs::read_dir(RunFolder::new(run.as_path()).checkpoints())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(files, vec!["model-5.bpk".to_string()], "no temporary left");
        // Model alone is not a checkpoint to resume from.
        assert_eq!(latest_complete(run), None);
        for part in ["optim", "scheduler"] {
            std::fs::write(path(run, part, 5), b"x").unwrap();
        }
        assert_eq!(latest_complete(run), Some(5));
        // ... but a corrupt optimizer file is reported by name when verified.
        let err = format!("{:#}", verify(run, 5, lin).unwrap_err());
        assert!(err.contains("optim-5.bpk"), "{err}");
    }

    #[test]
    fn a_checkpoint_of_another_model_is_refused() {
        let scratch = crate::data::Scratch::new("ckpt-other");
        let run = &scratch.0;
        let [model, _, _] = AtomicCheckpointer::for_run(run);
        let device = crate::backend::test_device();
        let saved = burn::nn::LinearConfig::new(3, 2).init(&device);
        Checkpointer::<ModuleRecord>::save(&model, 1, saved.into_record()).unwrap();
        let other = burn::nn::LinearConfig::new(4, 2).init(&device);
        let err = format!("{:#}", verify(run, 1, other).unwrap_err());
        assert!(
            err.contains("model-1.bpk") && err.contains("this experiment's model"),
            "{err}"
        );
    }
}
