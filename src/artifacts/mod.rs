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
//!   checkpoint/         {model,optim,scheduler}-<epoch>.bpk
//!   model.bpk           final weights (burn), and model.safetensors (other tools)
//!   summary.json        TrainSummary, written last by `train`
//!   eval.json  probes.json  judge.json  samples.json  bench.json   written by `study`
//! ```

pub mod checkpoints;
pub mod lock;
pub mod metrics;
pub mod records;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use burn::module::Module;
use burn::store::{ModuleRecord, ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use serde::de::DeserializeOwned;

use crate::data::tokenizer::Tokenizer;
use crate::experiment::Experiment;
use crate::files;
use crate::model::Gpt;
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

    /// The run's records: every small file that says what the run was and what was measured
    /// on it (no weights, checkpoints or tokenizer). `study --records` keeps these.
    pub fn records(&self) -> [PathBuf; 8] {
        [
            self.experiment(),
            self.metrics(),
            self.summary(),
            self.eval(),
            self.probes(),
            self.samples(),
            self.judge(),
            self.bench(),
        ]
    }

    /// The summary of a finished run: `train` writes it last.
    pub fn finished(&self) -> Result<Option<TrainSummary>> {
        read_json(&self.summary())
    }

    /// The weights to load: `model.bpk` of a finished run, else its newest checkpoint.
    pub fn weights_to_load(&self) -> Option<PathBuf> {
        let final_weights = self.weights();
        if final_weights.exists() {
            return Some(final_weights);
        }
        checkpoints::latest_complete(&self.dir)
            .map(|epoch| checkpoints::path(&self.dir, "model", epoch))
    }
}

/// Copies the records `from` has into `to` (made if missing), each file whole.
pub fn copy_records(from: &RunFolder, to: &RunFolder) -> Result<()> {
    std::fs::create_dir_all(&to.dir)
        .with_context(|| format!("{}: cannot create", to.dir.display()))?;
    for (src, dst) in from.records().iter().zip(to.records()) {
        if src.exists() {
            let bytes =
                std::fs::read(src).with_context(|| format!("{}: cannot read", src.display()))?;
            files::write(&dst, &bytes)?;
        }
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
    serde_json::from_str(&text)
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

/// A trained run, loaded from its folder.
pub struct Run {
    pub dir: PathBuf,
    pub experiment: Experiment,
    pub model: Gpt,
    pub tokenizer: Tokenizer,
    /// The weights file that was loaded.
    pub weights: PathBuf,
}

impl Run {
    pub fn load(dir: &Path, device: &Device) -> Result<Run> {
        let folder = RunFolder::new(dir);
        let exp_file = folder.experiment();
        if !exp_file.exists() {
            bail!(
                "{}: not a run folder (no experiment.ron); train one with `mla-lab train FILE`",
                dir.display()
            );
        }
        let experiment = Experiment::load(&exp_file)?;
        let tokenizer = Tokenizer::for_config(&experiment.data.tokenizer, &folder.tokenizer())?;
        let weights = folder.weights_to_load().ok_or_else(|| {
            anyhow!(
                "{}: no weights (neither model.bpk nor a checkpoint); has the run started?",
                dir.display()
            )
        })?;
        let model = load_weights(experiment.model.init(device), &weights)
            .with_context(|| format!("loading the run of {}", exp_file.display()))?;
        Ok(Run {
            dir: dir.to_path_buf(),
            experiment,
            model,
            tokenizer,
            weights,
        })
    }
}
