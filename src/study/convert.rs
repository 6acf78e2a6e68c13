//! Converted runs in a study: made from the source experiment's run of the same seed before
//! they fine-tune (an experiment that names `convert_from`), and what the conversion cost,
//! measured before any fine-tuning (`conversion_eval.json`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::Device;

use crate::artifacts::RunFolder;
use crate::artifacts::read_json;
use crate::artifacts::records::{ConversionEval, Converted};
use crate::artifacts::run::Run;
use crate::backend::BackendChoice;
use crate::eval::EvalOptions;
use crate::experiment::Experiment;
use crate::train::convert::{ConvertedRun, convert};

/// Converts the run of `exp.convert_from` at `seed` (in `artifacts`) to the experiment of
/// `file`, into `folder`, when `exp` fine-tunes a conversion and `folder` holds neither its
/// start weights nor a run; `None` when there is nothing to convert. The source run must have
/// finished: a study trains it first when its experiment comes earlier in the study.
pub fn convert_first(
    file: &Path,
    exp: &Experiment,
    folder: &RunFolder,
    seed: Option<u64>,
    artifacts: &Path,
    backend: BackendChoice,
) -> Result<Option<ConvertedRun>> {
    let Some(source) = &exp.convert_from else {
        return Ok(None);
    };
    if folder.start_weights().exists() || folder.has_results() {
        return Ok(None);
    }
    let from = RunFolder::for_seed(artifacts, source, seed);
    if from.finished()?.is_none() {
        bail!(
            "{}: convert_from: {source:?}, and {} holds no finished run of it to convert; \
             accepted: {source}'s experiment file earlier in the same study, or its run trained \
             there first",
            file.display(),
            from.dir.display()
        );
    }
    convert(&from.dir, file, artifacts, backend).map(Some)
}

/// Refuses, before anything trains, a study whose converted experiment names a source in the
/// same study that cannot serve: one listed after it (each seed's source must train first) or
/// one on other data or another data seed (the conversion would see other tokens). A source
/// outside the study is looked for in the artifacts when its turn comes.
pub fn check_sources(exps: &[(PathBuf, Experiment)]) -> Result<()> {
    for (i, (file, exp)) in exps.iter().enumerate() {
        let Some(source) = &exp.convert_from else {
            continue;
        };
        let Some(j) = exps.iter().position(|(_, e)| &e.name == source) else {
            continue;
        };
        let (source_file, from) = &exps[j];
        if j > i {
            bail!(
                "{}: convert_from: {source:?}, whose file {} comes after it in the study; \
                 accepted: the source listed first (each seed's source trains before its \
                 conversion)",
                file.display(),
                source_file.display()
            );
        }
        if from.data != exp.data || from.seed != exp.seed {
            bail!(
                "{}: convert_from: {source:?}, and {} trains on other data or another data seed; \
                 accepted: the source's data section and data seed",
                file.display(),
                source_file.display()
            );
        }
    }
    Ok(())
}

/// Scores the converted run in `folder` before fine-tuning, and its source, on the same
/// validation windows (`windows`; `None`: the whole split), with the token cache `cache`.
pub fn measure(
    folder: &RunFolder,
    windows: Option<usize>,
    cache: PathBuf,
    device: &Device,
) -> Result<ConversionEval> {
    let converted: Converted = read_json(&folder.conversion())?.with_context(|| {
        format!(
            "{}: missing; not a converted run",
            folder.conversion().display()
        )
    })?;
    let opts = EvalOptions::loss_only(windows, cache);
    let loss = |run: &Run| -> Result<_> { Ok(crate::eval::evaluate(run, &opts)?.loss) };
    let source = Run::load(Path::new(&converted.source), device).with_context(|| {
        format!(
            "{}: the source of the converted run {}",
            converted.source,
            folder.dir.display()
        )
    })?;
    Ok(ConversionEval {
        source: loss(&source)?,
        converted: loss(&Run::load_start(&folder.dir, device)?)?,
    })
}

/// `mla-lab convert`: the run in `source` converted to the experiment of `file` (a new run
/// folder under `artifacts`, [`convert`]), and what the conversion cost measured on `windows`
/// validation windows (`None`: the whole split) into its `conversion_eval.json`.
pub fn convert_and_measure(
    source: &Path,
    file: &Path,
    artifacts: &Path,
    backend: BackendChoice,
    windows: Option<usize>,
) -> Result<(ConvertedRun, ConversionEval)> {
    // Every option before anything is written: a refused one leaves no folder to remove.
    if windows == Some(0) {
        return Err(crate::options::InvalidOption::new(
            "eval_windows",
            0,
            "at least 1 window (or leave it out: the whole held-out split)",
        )
        .into());
    }
    let done = convert(source, file, artifacts, backend)?;
    let device = crate::backend::select(backend)?.device;
    let folder = RunFolder::new(&done.dir);
    let measured = measure(&folder, windows, RunFolder::token_cache(artifacts), &device)?;
    crate::files::write_json(&folder.conversion_eval(), &measured)?;
    Ok((done, measured))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(file: &str) -> (PathBuf, Experiment) {
        let path = crate::files::source(file);
        let exp = Experiment::load(&path).unwrap();
        (path, exp)
    }

    #[test]
    fn a_source_listed_after_its_conversion_or_on_other_data_is_refused_first() {
        let source = read("experiments/tiny/mha.ron");
        let target = read("experiments/tiny-convert/mha_to_mla_half.ron");
        assert_eq!(
            target.1.convert_from.as_deref(),
            Some(source.1.name.as_str())
        );
        check_sources(&[source.clone(), target.clone()]).unwrap();
        let err = check_sources(&[target.clone(), source.clone()]).unwrap_err();
        assert!(err.to_string().contains("comes after it"), "{err}");
        let mut other = source.clone();
        other.1.seed += 1;
        let err = check_sources(&[other, target.clone()]).unwrap_err();
        assert!(err.to_string().contains("other data"), "{err}");
        // A source outside the study is looked for when its turn comes.
        check_sources(&[target]).unwrap();
    }
}
