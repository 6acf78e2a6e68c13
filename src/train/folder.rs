//! The run folder's life in `train`: made and locked, judged (start, resume, or leave a
//! finished run alone; never clear results without `force`), and removed again by one guard if
//! the run fails before it holds anything of its own.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use super::options::TrainOptions;
use crate::artifacts::lock::FolderLock;
use crate::artifacts::metrics::{self, MetricsRow};
use crate::artifacts::records::{Converted, TrainSummary};
use crate::artifacts::tensorboard;
use crate::artifacts::{RunFolder, checkpoints, read_json};
use crate::experiment::Experiment;
use crate::files;
use crate::model::init;

/// Why a run folder cannot be trained into as asked. The library names no flags; the command
/// line adds the one that changes the outcome.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("{} holds an unreadable experiment", .0.display())]
    Unreadable(PathBuf),
    #[error("{} holds a run of a different experiment (its experiment.ron differs)", .0.display())]
    Different(PathBuf),
    #[error("{} has no checkpoint to resume from", .0.display())]
    NothingToResume(PathBuf),
    #[error("{} already holds a run (checkpoint after step {step})", dir.display())]
    HoldsRun { dir: PathBuf, step: usize },
    #[error("{} already holds a finished run ({steps} steps)", dir.display())]
    Finished { dir: PathBuf, steps: usize },
    #[error("{name}: interrupted at step {step} ({why})")]
    Interrupted {
        name: String,
        step: usize,
        why: String,
    },
}

/// What `train` found in the run folder, and so what it does.
#[derive(Debug)]
pub(super) enum Start {
    Fresh,
    /// Continue after checkpoint `epoch`; `last` is the last metrics row it kept.
    Resume {
        epoch: usize,
        last: Option<MetricsRow>,
    },
    /// `--resume` of a run that has finished: nothing to do.
    Finished(TrainSummary),
}

/// Decides what to do with the run folder (locked by the caller): start, resume, or leave a
/// finished run alone. A folder holding results is never cleared without `force`.
pub(super) fn check_folder(
    folder: &RunFolder,
    exp: &Experiment,
    opts: &TrainOptions,
) -> Result<Start> {
    let dir = &folder.dir;
    let copy = folder.experiment();
    // Converted weights were made for one target: a fine-tune of another (its data, model or
    // source edited since) is refused, as any other run's identity is.
    let conversion = match folder.start_weights().exists() {
        true => read_json::<Converted>(&folder.conversion())?,
        false => None,
    };
    let converted_for_another = conversion.as_ref().map_or(vec![], |c| c.differences(exp));
    if !converted_for_another.is_empty() && !opts.force {
        bail!(
            "{}: its converted weights ({}) were made for another experiment than {}: {}; \
             convert the source again into a new folder",
            dir.display(),
            folder.start_weights().display(),
            exp.name,
            converted_for_another.join("; ")
        );
    }
    // A folder whose run never got to its first checkpoint holds nothing to protect.
    if copy.exists() && folder.has_results() && !opts.force {
        let theirs = Experiment::load(&copy).context(FolderError::Unreadable(dir.to_path_buf()))?;
        if !theirs.run_differences(exp).is_empty() {
            return Err(FolderError::Different(dir.to_path_buf()).into());
        }
    }
    if opts.force {
        for sub in [
            folder.checkpoints(),
            folder.tensorboard(),
            dir.join("train"),
            dir.join("valid"),
        ] {
            let _ = std::fs::remove_dir_all(sub);
        }
        // Every record but the experiment (written anew below) goes with the weights: what was
        // measured on the old weights must not pass for the new run's in `study`. A conversion
        // made for this experiment stays whole (its weights, what was done, what it cost), and
        // the run fine-tunes it again, its summary saying so; one made for another goes whole.
        let keep_conversion = conversion.is_some() && converted_for_another.is_empty();
        let conversion_files = [folder.conversion(), folder.conversion_eval()];
        let records = folder
            .records()
            .into_iter()
            .filter(|f| *f != copy && !(keep_conversion && conversion_files.contains(f)));
        let mut others = vec![
            folder.weights(),
            folder.safetensors(),
            folder.initialisation(),
            dir.join("experiment.log"),
        ];
        if !keep_conversion {
            others.push(folder.start_weights());
        }
        for f in records.chain(others) {
            let _ = std::fs::remove_file(f);
        }
        return Ok(Start::Fresh);
    }
    let finished = folder.finished()?;
    let latest = checkpoints::latest_complete(dir);
    match (opts.resume, finished, latest) {
        (true, Some(summary), _) => Ok(Start::Finished(summary)),
        (true, None, Some(epoch)) => {
            let last = metrics::keep_through(&folder.metrics(), epoch * exp.train.eval_every)?;
            tensorboard::rewrite(&folder.tensorboard(), &metrics::read(&folder.metrics()))?;
            Ok(Start::Resume { epoch, last })
        }
        // A converted run not yet fine-tuned starts from its converted weights.
        (true, None, None) if folder.start_weights().exists() => {
            let _ = std::fs::remove_file(folder.metrics());
            let _ = std::fs::remove_dir_all(folder.tensorboard());
            Ok(Start::Fresh)
        }
        (true, None, None) => Err(FolderError::NothingToResume(dir.to_path_buf()).into()),
        (false, Some(summary), _) => Err(FolderError::Finished {
            dir: dir.to_path_buf(),
            steps: summary.steps,
        }
        .into()),
        (false, None, Some(epoch)) => Err(FolderError::HoldsRun {
            dir: dir.to_path_buf(),
            step: epoch * exp.train.eval_every,
        }
        .into()),
        (false, None, None) => {
            // Final weights without a summary or a checkpoint: a run whose folder was pruned.
            if folder.weights().exists() {
                return Err(FolderError::Finished {
                    dir: dir.to_path_buf(),
                    steps: exp.train.max_steps,
                }
                .into());
            }
            let _ = std::fs::remove_file(folder.metrics());
            let _ = std::fs::remove_dir_all(folder.tensorboard());
            Ok(Start::Fresh)
        }
    }
}

/// A run folder this call created: removed again if the run fails before training starts,
/// so a failed start leaves nothing behind.
pub(super) struct NewFolder(Option<PathBuf>);

impl NewFolder {
    pub(super) fn keep(&mut self) {
        self.0 = None;
    }
}

impl Drop for NewFolder {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The run folder, locked for this process, and where in the run it starts.
pub(super) struct Open {
    pub(super) folder: RunFolder,
    pub(super) _lock: FolderLock,
    /// Removes the folder again if the run fails before it holds anything of its own.
    pub(super) new_folder: NewFolder,
    pub(super) created: bool,
    /// The checkpoint to resume after, and the last metrics row it kept.
    pub(super) resume_epoch: Option<usize>,
    pub(super) last_row: Option<MetricsRow>,
    /// How the weights were drawn, as the summary records it.
    pub(super) initialisation: Option<String>,
}

pub(super) enum Opening {
    /// `--resume` of a finished run: nothing to do.
    Finished {
        dir: PathBuf,
        summary: TrainSummary,
    },
    Open(Open),
}

/// Makes and locks the run folder of `exp`, decides from what it holds whether to start or
/// resume ([`check_folder`]), and writes the experiment and how its weights are drawn.
pub(super) fn open_folder(exp: &Experiment, text: &str, opts: &TrainOptions) -> Result<Opening> {
    let folder = RunFolder::for_seed(&opts.artifacts, &exp.name, opts.seed);
    let dir = folder.dir.clone();
    let created = !dir.exists();
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let lock = folder.lock()?;
    let mut new_folder = NewFolder(created.then(|| dir.clone()));
    let (resume_epoch, last_row) = match check_folder(&folder, exp, opts)? {
        Start::Finished(summary) => {
            new_folder.keep();
            return Ok(Opening::Finished { dir, summary });
        }
        Start::Resume { epoch, last } => (Some(epoch), last),
        Start::Fresh => (None, None),
    };
    files::write(&folder.experiment(), text.as_bytes())?;
    // How the weights were drawn: written as the run starts, read when it resumes (a run begun
    // before this was recorded says nothing).
    let initialisation = match resume_epoch {
        None => {
            let how = match read_json::<Converted>(&folder.conversion())? {
                Some(converted) => converted.to_string(),
                None => init::SCHEME.to_string(),
            };
            files::write(&folder.initialisation(), how.as_bytes())?;
            Some(how)
        }
        Some(_) => std::fs::read_to_string(folder.initialisation()).ok(),
    };
    Ok(Opening::Open(Open {
        folder,
        _lock: lock,
        new_folder,
        created,
        resume_epoch,
        last_row,
        initialisation,
    }))
}
