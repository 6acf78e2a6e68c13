//! The run folder, `artifacts/<name>/`: where each of its files lives ([`RunFolder`]), the
//! typed records written there ([`records`]), its checkpoints' names ([`checkpoints`]), and a
//! trained run loaded back ([`Run`]). Every write goes through [`crate::files`], whole or not
//! at all.
//!
//! ```text
//! artifacts/<name>/
//!   experiment.ron      the experiment file the run was started from
//!   tokenizer.json      its BPE (absent for GPT-2's)
//!   train.lock          held by the process training into the folder (see [`lock`])
//!   metrics.csv         step, train loss, val loss, lr, tok/s, elapsed (see [`metrics`])
//!   tb/                 the same rows, then the KV bytes and the eval loss, as TensorBoard
//!                       events (see [`tensorboard`])
//!   checkpoint/         {model,optim,scheduler}-<epoch>.bpk (see [`checkpoints`])
//!   model.bpk           final weights (burn), and model.safetensors (other tools)
//!   summary.json        TrainSummary, written last by `train`
//!   eval.json  probes.json  judge.json  samples.json  bench.json   written by `study`
//!   converted.bpk  conversion.json  conversion_eval.json   a converted run's start (`convert`)
//! artifacts/cache/      the token cache the run folders share
//! ```
//!
//! These names are written here only: everything else asks [`RunFolder`] for a path.

pub mod checkpoints;
pub mod lock;
pub mod metrics;
pub mod ranges;
pub mod records;
pub mod run;
pub mod tensorboard;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use burn::module::Module;
use burn::store::{ModuleRecord, ModuleSnapshot, SafetensorsStore};
use serde::de::DeserializeOwned;

use crate::experiment::Experiment;
use crate::files;
use records::TrainSummary;

/// The paths of one run folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFolder {
    pub dir: PathBuf,
}

impl RunFolder {
    pub fn new(dir: impl Into<PathBuf>) -> RunFolder {
        RunFolder { dir: dir.into() }
    }

    /// `<artifacts>/<name>`.
    pub fn of(artifacts: &Path, name: &str) -> RunFolder {
        RunFolder::new(artifacts.join(name))
    }

    /// `<artifacts>/<name>`, or `<artifacts>/<name>-s<seed>` for a run of one training seed
    /// among several (the folders of one experiment sort together).
    pub fn for_seed(artifacts: &Path, name: &str, seed: Option<u64>) -> RunFolder {
        match seed {
            Some(seed) => RunFolder::of(artifacts, &format!("{name}-s{seed}")),
            None => RunFolder::of(artifacts, name),
        }
    }

    /// The token cache the run folders of `artifacts` share (`<artifacts>/cache`).
    pub fn token_cache(artifacts: &Path) -> PathBuf {
        artifacts.join("cache")
    }

    /// The folder's own name (`mla_small-s2`).
    pub fn name(&self) -> String {
        self.dir.file_name().map_or_else(
            || self.dir.display().to_string(),
            |n| n.to_string_lossy().to_string(),
        )
    }

    pub fn experiment(&self) -> PathBuf {
        self.dir.join("experiment.ron")
    }
    pub fn tokenizer(&self) -> PathBuf {
        self.dir.join("tokenizer.json")
    }
    pub fn tensorboard(&self) -> PathBuf {
        self.dir.join("tb")
    }

    pub fn metrics(&self) -> PathBuf {
        self.dir.join("metrics.csv")
    }
    pub fn checkpoints(&self) -> PathBuf {
        self.dir.join("checkpoint")
    }
    /// The final weights in burn's format.
    pub fn weights(&self) -> PathBuf {
        self.dir.join("model.bpk")
    }
    pub fn safetensors(&self) -> PathBuf {
        self.dir.join("model.safetensors")
    }
    pub fn summary(&self) -> PathBuf {
        self.dir.join("summary.json")
    }
    pub fn eval(&self) -> PathBuf {
        self.dir.join("eval.json")
    }
    pub fn probes(&self) -> PathBuf {
        self.dir.join("probes.json")
    }
    pub fn judge(&self) -> PathBuf {
        self.dir.join("judge.json")
    }
    pub fn bench(&self) -> PathBuf {
        self.dir.join("bench.json")
    }
    pub fn samples(&self) -> PathBuf {
        self.dir.join("samples.json")
    }
    /// The weights a converted run starts from (`mla-lab convert`), in place of drawn ones.
    pub fn start_weights(&self) -> PathBuf {
        self.dir.join("converted.bpk")
    }
    /// What `mla-lab convert` did to make the start weights, and from which run.
    pub fn conversion(&self) -> PathBuf {
        self.dir.join("conversion.json")
    }
    /// The loss of the source and of the start weights of a converted run, before fine-tuning.
    pub fn conversion_eval(&self) -> PathBuf {
        self.dir.join("conversion_eval.json")
    }
    /// How the run's first invocation drew the initial weights (the summary's
    /// `initialisation`), for the invocations that resume it.
    pub fn initialisation(&self) -> PathBuf {
        self.dir.join("initialisation.txt")
    }

    /// The run's records: every small file that says what the run was and what was measured
    /// on it (no weights, checkpoints or tokenizer). `study --records` keeps these.
    pub fn records(&self) -> [PathBuf; 10] {
        [
            self.experiment(),
            self.metrics(),
            self.summary(),
            self.eval(),
            self.probes(),
            self.samples(),
            self.judge(),
            self.bench(),
            self.conversion(),
            self.conversion_eval(),
        ]
    }

    /// Every path mla-lab writes in the folder: its records, weights, tokenizer, checkpoints,
    /// curves and lock.
    pub fn own_files(&self) -> Vec<PathBuf> {
        let mut all = self.records().to_vec();
        all.extend([
            self.tokenizer(),
            self.weights(),
            self.safetensors(),
            self.start_weights(),
            self.checkpoints(),
            self.tensorboard(),
            self.initialisation(),
            self.lock_file(),
        ]);
        all
    }

    /// Those of [`RunFolder::own_files`] that are symbolic links.
    pub fn links(&self) -> Vec<PathBuf> {
        self.own_files()
            .into_iter()
            .filter(|p| {
                p.symlink_metadata()
                    .is_ok_and(|m| m.file_type().is_symlink())
            })
            .collect()
    }

    /// Whether the folder holds anything of a run beyond its experiment: metrics, weights, a
    /// summary or checkpoints (a run that never reached its first checkpoint holds none).
    pub fn has_results(&self) -> bool {
        [
            self.metrics(),
            self.weights(),
            self.summary(),
            self.checkpoints(),
        ]
        .iter()
        .any(|f| f.exists())
    }

    /// Reads every record the folder holds as the type mla-lab writes there, and checks they
    /// are of one run and agree with its experiment ([`ranges::across`]): the first that is not
    /// is a [`BadRecord`] naming the file. Missing records are not an error
    /// ([`RunFolder::missing`]).
    pub fn check_records(&self) -> Result<(), BadRecord> {
        for file in self.records() {
            self.check_record(&file)?;
        }
        ranges::across(self)
    }

    /// Reads the record `file` of this folder (one of [`RunFolder::records`]) as the type
    /// mla-lab writes there; a missing file is no error.
    pub fn check_record(&self, file: &Path) -> Result<(), BadRecord> {
        fn parse<T: DeserializeOwned>(path: &Path) -> Result<()> {
            read_json::<T>(path).map(|_| ())
        }
        if !file.exists() {
            return Ok(());
        }
        let read = if *file == self.experiment() {
            Experiment::load(file).map(|_| ()).map_err(Into::into)
        } else if *file == self.metrics() {
            metrics::read_whole(file).map(|_| ())
        } else if *file == self.summary() {
            parse::<TrainSummary>(file)
        } else if *file == self.eval() {
            parse::<records::LossReport>(file)
        } else if *file == self.probes() {
            parse::<records::ProbeReport>(file)
        } else if *file == self.samples() {
            parse::<Vec<records::Sample>>(file)
        } else if *file == self.judge() {
            parse::<records::JudgeReport>(file)
        } else if *file == self.bench() {
            parse::<Vec<records::BenchRow>>(file)
        } else if *file == self.conversion() {
            parse::<records::Converted>(file)
        } else if *file == self.conversion_eval() {
            parse::<records::ConversionEval>(file)
        } else {
            Ok(())
        };
        read.map_err(|why| BadRecord {
            file: file.to_path_buf(),
            why,
        })
    }

    /// Whether `file` is a measurement `study` takes again when its file is gone (eval, probes,
    /// samples, judge, bench, a conversion's eval), not a record of the training.
    pub fn is_measurement(&self, file: &Path) -> bool {
        [
            self.conversion_eval(),
            self.eval(),
            self.probes(),
            self.samples(),
            self.judge(),
            self.bench(),
        ]
        .iter()
        .any(|f| f == file)
    }

    /// The records a finished and measured run has that this folder lacks, by file name: its
    /// experiment, metrics, summary, loss, probes and samples (a judge and a bench are
    /// optional: `study` benches a seed's runs together, after each is measured).
    pub fn missing(&self) -> Vec<String> {
        [
            self.experiment(),
            self.metrics(),
            self.summary(),
            self.eval(),
            self.probes(),
            self.samples(),
        ]
        .iter()
        .filter(|f| !f.exists())
        .map(|f| file_name(f))
        .collect()
    }

    /// Whether the run here was made by `exp` (read from `file`): its `experiment.ron` holds
    /// the same experiment (model, data and data seed, training and training seed; logging and
    /// checkpointing aside: [`crate::experiment::BOOKKEEPING`]), and the
    /// data it trained on had the content `data` has now (where both are known:
    /// [`crate::data::tokens::fingerprint`]). [`NotThisRun`] names both files and what differs.
    pub fn check_identity(&self, exp: &Experiment, file: &Path, data: Option<&str>) -> Result<()> {
        let theirs = Experiment::load(self.experiment())?;
        let mut fields = theirs.run_differences(exp);
        let trained_on = read_json::<TrainSummary>(&self.summary())
            .ok()
            .flatten()
            .and_then(|s| s.data_fingerprint);
        if let (Some(then), Some(now)) = (trained_on, data)
            && then != now
        {
            fields.push(format!(
                "data: the run trained on content {then}, the source holds {now} now"
            ));
        }
        if fields.is_empty() {
            return Ok(());
        }
        Err(NotThisRun {
            dir: self.dir.clone(),
            file: file.to_path_buf(),
            fields,
        }
        .into())
    }

    /// Refuses a run of `exp` whose data source holds other content now than the run trained
    /// on (its summary's `data_fingerprint` against [`crate::data::tokens::fingerprint`] of the
    /// source today), as `study` does: its validation split and held-out stories would be
    /// another corpus's. Where either is unknown (an unfinished run, a summary from before
    /// fingerprints, a source that cannot be read) there is nothing to compare, and reading the
    /// data, where it is needed, fails on its own.
    pub fn check_data(&self, exp: &Experiment) -> Result<()> {
        let then = read_json::<TrainSummary>(&self.summary())?.and_then(|s| s.data_fingerprint);
        let Some(then) = then else { return Ok(()) };
        let Ok((source, now)) = crate::data::tokens::fingerprint(&exp.data.source) else {
            return Ok(());
        };
        if then != now {
            bail!(
                "{}: the run trained on data with content {then}, and {source} holds {now} now: \
                 its validation split and held-out stories are not the ones it trained beside; \
                 put the data back, or train the run again",
                self.dir.display()
            );
        }
        Ok(())
    }

    /// The summary of a finished run: `train` writes it last.
    pub fn finished(&self) -> Result<Option<TrainSummary>> {
        read_json(&self.summary())
    }

    /// The weights to load: `model.bpk` of a finished run, else its newest checkpoint, else
    /// the weights a converted run starts from.
    pub fn weights_to_load(&self) -> Option<PathBuf> {
        let final_weights = self.weights();
        if final_weights.exists() {
            return Some(final_weights);
        }
        checkpoints::latest_complete(&self.dir)
            .map(|epoch| checkpoints::path(&self.dir, "model", epoch))
            .or_else(|| Some(self.start_weights()).filter(|w| w.exists()))
    }
}

/// A run folder or records entry that holds a run of another experiment than the one it is
/// taken for. The library names no flags; the command line adds the one that changes this.
#[derive(Debug, thiserror::Error)]
#[error(
    "{} holds a run of another experiment than {}: {}",
    .dir.join("experiment.ron").display(),
    .file.display(),
    .fields.join("; ")
)]
pub struct NotThisRun {
    pub dir: PathBuf,
    /// The experiment file it was taken for.
    pub file: PathBuf,
    /// What differs: `field: the run's value against the file's`.
    pub fields: Vec<String>,
}

/// A record that is not what mla-lab writes there.
#[derive(Debug, thiserror::Error)]
#[error("{why:#}")]
pub struct BadRecord {
    pub file: PathBuf,
    /// Why, naming the file.
    pub why: anyhow::Error,
}

/// Refuses a list that names one file or folder twice (also by another path to it), naming
/// both: each run is counted once. `what` says what the paths are.
pub fn distinct_paths(paths: &[PathBuf], what: &str) -> Result<()> {
    let real = |p: &PathBuf| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
    for (i, p) in paths.iter().enumerate() {
        if let Some(q) = paths[..i].iter().find(|q| real(q) == real(p)) {
            if q.as_os_str() == p.as_os_str() {
                bail!(
                    "{}: {what} given twice; each run is counted once",
                    p.display()
                );
            }
            bail!(
                "{} and {}: one {what} given twice; each run is counted once",
                q.display(),
                p.display()
            );
        }
    }
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into(),
    )
}

/// Copies the records `from` has into the run folder `to` (made if missing), each file whole
/// and the summary last, so a copy cut short never looks like a finished run.
pub fn copy_records(from: &RunFolder, to: &RunFolder) -> Result<()> {
    std::fs::create_dir_all(&to.dir)
        .with_context(|| format!("{}: cannot create", to.dir.display()))?;
    let pairs = from.records().into_iter().zip(to.records());
    let (summary, rest): (Vec<_>, Vec<_>) = pairs.partition(|(src, _)| *src == from.summary());
    for (src, dst) in rest.into_iter().chain(summary) {
        if src.exists() {
            let bytes =
                std::fs::read(&src).with_context(|| format!("{}: cannot read", src.display()))?;
            files::write(&dst, &bytes)?;
        }
    }
    Ok(())
}

/// Writes the records of the run folder `from` as the records entry `to`, whole: they are read
/// first ([`RunFolder::check_records`]), so a file that does not parse is an error naming it and
/// never replaces one that does; then, holding the entry's lock ([`RunFolder::lock_entry`]: a
/// second writer is refused), they go into a temporary folder beside `to` that takes its place. Files of the old entry that are not records are kept. Returns whether the entry
/// changed (nothing is written when it holds the same bytes).
pub fn write_entry(from: &RunFolder, to: &RunFolder) -> Result<bool> {
    from.check_records()
        .map_err(|e| anyhow!("{e}; the records entry {} stays as it is", to.dir.display()))?;
    let missing = from.missing();
    if !missing.is_empty() {
        bail!(
            "{}: not a finished, measured run (no {}); its records entry {} stays as it is",
            from.dir.display(),
            missing.join(", "),
            to.dir.display()
        );
    }
    // What the new entry holds, record by record: the folder's; where the folder lacks a
    // measurement of this same run (one summary) that the entry has and that reads (a
    // bench.json removed to bench again), the entry's, until the folder has it anew.
    let same_run = to.summary().exists()
        && std::fs::read(from.summary()).ok() == std::fs::read(to.summary()).ok();
    let chosen: Vec<(Option<PathBuf>, PathBuf)> = from
        .records()
        .into_iter()
        .zip(to.records())
        .map(|(f, t)| {
            let kept =
                same_run && to.is_measurement(&t) && t.exists() && to.check_record(&t).is_ok();
            let source = if f.exists() {
                Some(f)
            } else {
                kept.then(|| t.clone())
            };
            (source, t)
        })
        .collect();
    let unchanged = chosen.iter().all(|(source, t)| {
        source.as_ref().and_then(|s| std::fs::read(s).ok()) == std::fs::read(t).ok()
    });
    if unchanged {
        return Ok(false);
    }
    let parent = to.dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .with_context(|| format!("{}: cannot create", parent.display()))?;
    // Tasks on many nodes share one records folder: one writer an entry at a time, and a
    // second that races it is refused rather than interleaved.
    let _held = to
        .lock_entry()
        .with_context(|| format!("keeping the records of {}", from.dir.display()))?;
    files::remove_stale(&to.dir);
    let tmp = files::temporary(&to.dir);
    let written = (|| -> Result<()> {
        std::fs::create_dir(&tmp).with_context(|| format!("{}: cannot create", tmp.display()))?;
        for (source, t) in &chosen {
            if let Some(source) = source {
                let bytes = std::fs::read(source)
                    .with_context(|| format!("{}: cannot read", source.display()))?;
                files::write(&tmp.join(file_name(t)), &bytes)?;
            }
        }
        // Anything else someone put in the entry stays (hidden temporaries aside).
        if to.dir.is_dir() {
            let records = to.records();
            for e in std::fs::read_dir(&to.dir)
                .with_context(|| format!("{}: cannot list", to.dir.display()))?
            {
                let path = e?.path();
                if !records.contains(&path) && !file_name(&path).starts_with('.') {
                    files::copy_tree(&path, &tmp.join(file_name(&path)))?;
                }
            }
        }
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e.context(format!("{}: cannot write", to.dir.display())));
    }
    files::replace_dir(&tmp, &to.dir)?;
    Ok(true)
}

/// Reads the records entry `entry` before a run is restored from it: complete, every file what
/// mla-lab writes there. A broken entry is an error naming it and saying what to do.
pub fn check_entry(entry: &RunFolder) -> Result<()> {
    entry.check_records().map_err(|e| {
        anyhow!(
            "{e:#}; the records entry {} is broken: repair that file, or remove the entry to \
             train the run again",
            entry.dir.display()
        )
    })?;
    let missing = entry.missing();
    if !missing.is_empty() {
        bail!(
            "{}: incomplete records entry (no {}), and a run restored from records has no \
             weights to measure them: put the files back, or remove the entry to train the run \
             again",
            entry.dir.display(),
            missing.join(", ")
        );
    }
    Ok(())
}

/// Reads a record; `None` when the file does not exist, an error naming it when it is not
/// what mla-lab writes there.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not what mla-lab writes there", path.display()))?;
    // Every number in the range mla-lab writes ([`ranges::FIELDS`]), before the type reads it.
    let name = path
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    ranges::check(&name, &value).with_context(|| path.display().to_string())?;
    serde_json::from_value(value)
        .map(Some)
        .with_context(|| format!("{}: not what mla-lab writes there", path.display()))
}

/// Reads a burnpack of weights and applies it to `model`; the error names the file and says
/// whether it could not be read or does not fit.
pub fn load_weights<M: Module>(model: M, file: &Path) -> Result<M> {
    let record =
        ModuleRecord::load(file).map_err(|e| anyhow!("{}: cannot read: {e}", file.display()))?;
    model.try_load_record(record).map_err(|e| {
        anyhow!(
            "{}: does not fit this experiment's model: {e}",
            file.display()
        )
    })
}

/// The trained weights: `model.bpk` (burn's format, what `generate`/`eval` load) and
/// `model.safetensors` (for other tools), both written through a temporary file.
pub fn save_weights<M: Module>(model: &M, folder: &RunFolder) -> Result<()> {
    files::write_with(&folder.weights(), |tmp| {
        model.clone().save_file(tmp).map_err(|e| anyhow!("{e}"))
    })?;
    files::write_with(&folder.safetensors(), |tmp| {
        let mut store = SafetensorsStore::from_file(tmp);
        model.save_into(&mut store).map_err(|e| anyhow!("{e}"))
    })
}

#[cfg(test)]
mod tests;
