//! `mla-lab convert`: a trained MHA run made into an MLA run that training fine-tunes. The new
//! run folder holds the target experiment, the converted weights it starts from
//! (`converted.bpk`, [`crate::model::convert`]) and what was done (`conversion.json`); `train`
//! on the target experiment, with the source's training seed, then starts from those weights
//! instead of drawn ones, and its summary names the conversion as the run's initialisation.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::artifacts::RunFolder;
use crate::artifacts::records::Converted;
use crate::artifacts::run::Run;
use crate::backend::{self, BackendChoice};
use crate::experiment::Experiment;
use crate::files;
use crate::model::convert::mha_to_mla;

/// A converted run, ready to fine-tune.
#[derive(Debug)]
pub struct ConvertedRun {
    pub dir: PathBuf,
    /// The training seed to fine-tune it with, where its folder is named after one.
    pub seed: Option<u64>,
    pub converted: Converted,
}

/// Converts the trained run in `source_dir` to the experiment in `target_file`, into a new run
/// folder under `artifacts` named as `train` names the target's (with the source's seed when
/// the source's folder carries one). Refused, before anything is written, where the source has
/// not finished or is being trained, where the target
/// trains on other data than the source or names another source (`convert_from`), where the
/// conversion cannot be made ([`crate::model::convert::check`]), or where the folder holds a
/// conversion or a run already.
pub fn convert(
    source_dir: &Path,
    target_file: &Path,
    artifacts: &Path,
    backend_choice: BackendChoice,
) -> Result<ConvertedRun> {
    // Only a finished run, and none that a trainer is at work in: the weights converted, and
    // those the conversion's cost is measured against after, are the run's final ones.
    let source_folder = RunFolder::new(source_dir);
    if source_folder.finished()?.is_none() {
        bail!(
            "{}: not a finished run (no summary.json: still training, or stopped before its last \
             step); accepted: a run that training finished (resume it to its end first)",
            source_dir.display()
        );
    }
    drop(
        source_folder
            .lock()
            .with_context(|| format!("converting {}", source_dir.display()))?,
    );
    let device = backend::find(backend_choice)?.device;
    let source = Run::load(source_dir, &device)?;
    let target = Experiment::load(target_file)?;
    let from = &source.experiment;
    if target.data != from.data || target.seed != from.seed {
        bail!(
            "{}: data and seed differ from the source run's ({}); accepted: the source's data \
             section and data seed, so that the converted run sees the same tokens",
            target_file.display(),
            source_dir.display()
        );
    }
    if let Some(named) = &target.convert_from
        && *named != from.name
    {
        bail!(
            "{}: convert_from: {named:?}, and {} is a run of {:?}; accepted: a run of {named}",
            target_file.display(),
            source_dir.display(),
            from.name
        );
    }
    let seed = from.training_seed();
    let seeded = RunFolder::new(source_dir).name() == format!("{}-s{seed}", from.name);
    let (target, text) = if seeded {
        let exp = target.with_training_seed(seed);
        let text = exp.to_ron();
        (exp, text)
    } else {
        (target, std::fs::read_to_string(target_file)?)
    };
    let (model, conversion) = mha_to_mla(&source.model, &from.model, &target.model, &device)
        .with_context(|| {
            format!(
                "converting {} to {}",
                source_dir.display(),
                target_file.display()
            )
        })?;
    let folder = RunFolder::for_seed(artifacts, &target.name, seeded.then_some(seed));
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same(&folder.dir, source_dir) {
        bail!(
            "{}: its experiment is named {:?}, as the source's, so its run folder would be the \
             source run {}; accepted: a target experiment with a name of its own",
            target_file.display(),
            target.name,
            source_dir.display()
        );
    }
    // A folder a conversion was cut short in (no start weights yet) holds nothing to keep.
    if folder.start_weights().exists() || folder.has_results() {
        bail!(
            "{}: holds a run already; a converted run goes to a new folder (remove it to convert \
             again)",
            folder.dir.display()
        );
    }
    std::fs::create_dir_all(&folder.dir)
        .with_context(|| format!("{}: cannot create", folder.dir.display()))?;
    let converted = Converted {
        source: source_dir.display().to_string(),
        source_experiment: from.name.clone(),
        conversion,
        target: Some(text.clone()),
    };
    files::write(&folder.experiment(), text.as_bytes())?;
    let source_tokenizer = RunFolder::new(source_dir).tokenizer();
    if source_tokenizer.exists() {
        files::write(&folder.tokenizer(), &std::fs::read(&source_tokenizer)?)?;
    }
    // The weights last: a folder with them is a finished conversion.
    files::write_json(&folder.conversion(), &converted)?;
    files::write_with(&folder.start_weights(), |tmp| {
        use burn::module::Module;
        model
            .clone()
            .save_file(tmp)
            .map_err(|e| anyhow::anyhow!("{e}"))
    })?;
    Ok(ConvertedRun {
        dir: folder.dir,
        seed: seeded.then_some(seed),
        converted,
    })
}
