//! A trained run loaded from its folder: its experiment, model, tokenizer and which weights.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use burn::tensor::Device;

use super::{RunFolder, checkpoints, load_weights};
use crate::data::tokenizer::Tokenizer;
use crate::experiment::Experiment;
use crate::model::Gpt;

/// A trained run, loaded from its folder.
pub struct Run {
    pub dir: PathBuf,
    pub experiment: Experiment,
    pub model: Gpt,
    pub tokenizer: Tokenizer,
    /// The weights file that was loaded.
    pub weights: PathBuf,
    /// The step of the checkpoint loaded, for a run that has not finished (no `model.bpk`
    /// yet): its newest complete checkpoint stands in for the trained weights.
    pub checkpoint_step: Option<usize>,
}

impl Run {
    /// [`RunFolder::check_data`] of this run.
    pub fn check_data(&self) -> Result<()> {
        RunFolder::new(&self.dir).check_data(&self.experiment)
    }

    pub fn load(dir: &Path, device: &Device) -> Result<Run> {
        Run::load_weights(dir, None, device)
    }

    /// The run in `dir` with the weights a converted run started from (`converted.bpk`),
    /// fine-tuned or not.
    pub fn load_start(dir: &Path, device: &Device) -> Result<Run> {
        let start = RunFolder::new(dir).start_weights();
        if !start.exists() {
            bail!(
                "{}: no converted weights; is it a converted run?",
                start.display()
            );
        }
        Run::load_weights(dir, Some(start), device)
    }

    /// The run in `dir` with `weights`, or with [`RunFolder::weights_to_load`]'s.
    fn load_weights(dir: &Path, weights: Option<PathBuf>, device: &Device) -> Result<Run> {
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
        let weights = weights
            .or_else(|| folder.weights_to_load())
            .ok_or_else(|| {
                anyhow!(
                    "{}: no weights (neither model.bpk nor a checkpoint); has the run started?",
                    dir.display()
                )
            })?;
        let model = load_weights(experiment.model.init(device), &weights)
            .with_context(|| format!("loading the run of {}", exp_file.display()))?;
        let checkpoint_step = (weights != folder.weights() && weights != folder.start_weights())
            .then(|| checkpoints::latest_complete(dir))
            .flatten()
            .map(|epoch| epoch * experiment.train.eval_every);
        Ok(Run {
            dir: dir.to_path_buf(),
            experiment,
            model,
            tokenizer,
            weights,
            checkpoint_step,
        })
    }
}
