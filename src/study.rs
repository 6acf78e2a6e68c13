//! `mla-lab study`: train every experiment that has no finished run, then evaluate, probe and
//! bench each, then write the report. Each step leaves a file in the run folder
//! (`summary.json`, `eval.json`, `probes.json`, `samples.json`, `judge.json`, `bench.json`); a
//! step whose file exists is skipped, so an interrupted study continues where it stopped (probes
//! are redone for another number of stories, or when older than attribute consistency). With
//! `--records DIR` every run's records are also kept in `DIR/<run>/` and restored from there,
//! so a study can continue on a machine whose artifacts are gone.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::Device;

use crate::artifacts::records::BenchRow;
use crate::artifacts::{
    BadRecord, RunFolder, check_entry, checkpoints, copy_records, read_json, write_entry,
};
use crate::backend;
use crate::data::tokens;
use crate::experiment::Experiment;
use crate::files::write_json;
use crate::infer::bench::{self, Subject};
use crate::options::InvalidOption;
use crate::train::run as train;

mod analyse;
pub mod convert;
mod options;
mod stale;

pub use analyse::analyse;
use analyse::step;
pub use options::StudyOptions;

/// Experiment files given as files or folders (every `.ron` inside, sorted). A file given twice
/// (also through its folder) is refused: each run is counted once.
pub fn experiment_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let files = listed_files(inputs)?;
    crate::artifacts::distinct_paths(&files, "experiment file")?;
    Ok(files)
}

fn listed_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = vec![];
    for p in inputs {
        if p.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("{}: cannot list", p.display()))?
                .filter_map(|e| Some(e.ok()?.path()))
                .filter(|f| f.extension().is_some_and(|e| e == "ron"))
                .collect();
            inside.sort();
            if inside.is_empty() {
                bail!("{}: no .ron experiment files in this folder", p.display());
            }
            files.extend(inside);
        } else {
            files.push(p.clone());
        }
    }
    Ok(files)
}

/// MHA first (the baseline of ratios), then the rest in the order given.
fn baseline_first(mut exps: Vec<(PathBuf, Experiment)>) -> Vec<(PathBuf, Experiment)> {
    if let Some(i) = exps
        .iter()
        .position(|(_, e)| crate::report::runs::is_paper_baseline(&e.model))
    {
        let base = exps.remove(i);
        exps.insert(0, base);
    }
    exps
}

/// Two files of one experiment name would share their run folders: refused, naming both.
fn distinct_names(exps: &[(PathBuf, Experiment)]) -> Result<()> {
    for (i, (file, exp)) in exps.iter().enumerate() {
        if let Some((other, _)) = exps[..i].iter().find(|(_, e)| e.name == exp.name) {
            bail!(
                "{} and {} are both named {:?}: their runs would share one folder; give each \
                 experiment its own name",
                other.display(),
                file.display(),
                exp.name
            );
        }
    }
    Ok(())
}

/// One run of the study: an experiment file at one seed, its run folder, and its records
/// entry (with `--records`).
struct Planned<'a> {
    file: &'a PathBuf,
    /// The content of its data ([`tokens::fingerprint`]), where it can be read.
    data: Option<&'a str>,
    /// The experiment as the run records it: the file's, with the seed set.
    exp: Experiment,
    seed: Option<u64>,
    folder: RunFolder,
    kept: Option<RunFolder>,
    /// The folder holds another experiment's run, to train again (`--force`).
    retrain: bool,
    /// The run is restored from its records entry (checked whole before anything trains).
    restore: bool,
}

/// Whether the run in `folder` (when it holds one) was made by `exp`: `Ok(false)` when it was
/// or there is none; `Ok(true)`, another experiment's (or one whose `experiment.ron` does not
/// read), to be replaced (`force`); otherwise the mismatch as an error.
fn other_run(
    folder: &RunFolder,
    exp: &Experiment,
    file: &Path,
    data: Option<&str>,
    force: bool,
) -> Result<bool> {
    if !folder.experiment().exists() || !folder.has_results() {
        return Ok(false);
    }
    match folder.check_identity(exp, file, data) {
        Ok(()) => Ok(false),
        // Another experiment's, or one whose experiment.ron does not read.
        Err(_) if force => Ok(true),
        Err(e) => Err(e),
    }
}

/// Runs the study; returns the report's files.
pub fn study(inputs: &[PathBuf], opts: &StudyOptions, machine: &str) -> Result<Vec<PathBuf>> {
    opts.check()?;
    let exps = read_experiments(inputs, opts)?;
    // The content of each file's data (a stories file's hash), where it can be read: a run
    // restored from its records needs no data.
    let data: Vec<Option<String>> = exps
        .iter()
        .map(|(_, e)| tokens::fingerprint(&e.data.source).ok().map(|(_, fp)| fp))
        .collect();
    let plan = plan(&exps, &data, opts)?;
    let device = backend::select(opts.backend)?.device;
    let mut dirs = vec![];
    // Seed by seed: every experiment's first seed is trained, evaluated and benched before any
    // second seed starts, so an interrupted study already has one complete set.
    for runs in plan.chunk_by(|a, b| a.seed == b.seed) {
        let mut pass = vec![];
        for run in runs {
            let folder = &run.folder;
            restore_or_train(run, opts)?;
            // What was trained or restored is this experiment's (a kill may have left a folder
            // behind), and every record in it reads.
            folder.check_identity(&run.exp, run.file, run.data)?;
            folder
                .check_records()
                .map_err(|e| broken_run_file(e, folder))?;
            analyse(folder, opts, &device)?;
            if let Some(kept) = &run.kept {
                keep(folder, kept)?;
            }
            pass.push(folder.dir.clone());
        }
        bench_together(&pass, opts, &device)?;
        for run in runs {
            if let Some(kept) = &run.kept {
                keep(&run.folder, kept)?;
            }
        }
        dirs.extend(pass);
    }
    step("report", &format!("writing {}", opts.report.display()));
    crate::report::write(&dirs, &[], &opts.report, machine, &[])
}

/// Every experiment file of `inputs`, read, the baseline first: a bad one, two of one name or
/// one that no bench context fits stops the study before hours of training.
fn read_experiments(inputs: &[PathBuf], opts: &StudyOptions) -> Result<Vec<(PathBuf, Experiment)>> {
    let files = experiment_files(inputs)?;
    let exps = files
        .iter()
        .map(|f| Ok((f.clone(), Experiment::load(f)?)))
        .collect::<Result<Vec<_>>>()?;
    distinct_names(&exps)?;
    for (file, exp) in &exps {
        benchable(file, exp, &opts.bench.contexts)?;
    }
    let exps = baseline_first(exps);
    convert::check_sources(&exps)?;
    Ok(exps)
}

/// Every run of the study, seed by seed: its folder, its records entry, and whether it is
/// restored from the entry or trained (again). Every run's folder and records entry are
/// checked before anything is trained: a run made by another experiment (an edited file, a
/// copied entry) is never taken for this one.
fn plan<'a>(
    exps: &'a [(PathBuf, Experiment)],
    data: &'a [Option<String>],
    opts: &StudyOptions,
) -> Result<Vec<Planned<'a>>> {
    // Without --seeds, each file's own training seed, in `<name>/`.
    let seeds: Vec<Option<u64>> = if opts.seeds.is_empty() {
        vec![None]
    } else {
        opts.seeds.iter().copied().map(Some).collect()
    };
    let mut plan = vec![];
    for &seed in &seeds {
        for ((file, exp), data) in exps.iter().zip(data) {
            let exp = seed.map_or_else(|| exp.clone(), |s| exp.with_training_seed(s));
            let folder = RunFolder::for_seed(&opts.artifacts, &exp.name, seed);
            let kept = opts
                .records
                .as_ref()
                .map(|r| RunFolder::of(r, &folder.name()));
            let data = data.as_deref();
            let retrain = other_run(&folder, &exp, file, data, opts.force)?;
            let ignore_kept = match &kept {
                Some(k) => other_run(k, &exp, file, data, opts.force)?,
                None => false,
            };
            let restore = kept
                .as_ref()
                .is_some_and(|k| k.summary().exists() && !ignore_kept)
                && (retrain || !folder.summary().exists());
            // Every record the study will take as it is reads, before anything trains.
            if restore && let Some(k) = &kept {
                check_entry(k)?;
            } else if !retrain && folder.summary().exists() {
                folder
                    .check_records()
                    .map_err(|e| broken_run_file(e, &folder))?;
            }
            plan.push(Planned {
                file,
                data,
                exp,
                seed,
                folder,
                kept,
                retrain,
                restore,
            });
        }
    }
    Ok(plan)
}

/// Brings one planned run's folder up to a finished run: from its records entry, by
/// training (resuming where a checkpoint is), or as it is.
fn restore_or_train(run: &Planned, opts: &StudyOptions) -> Result<()> {
    let Planned { folder, kept, .. } = run;
    let shown = folder.name();
    if run.restore
        && let Some(kept) = kept
    {
        // A finished run's records supersede whatever this folder holds: another experiment's
        // run (`--force`), or an unfinished training whose checkpoint would otherwise be
        // measured as the run.
        let dropped = run.retrain || folder.has_results();
        // Whatever replaces a folder holds its lock meanwhile: a trainer working in it refuses
        // the restore, and none can start until the records are in place.
        std::fs::create_dir_all(&folder.dir)
            .with_context(|| format!("{}: cannot create", folder.dir.display()))?;
        let _held = folder
            .lock()
            .with_context(|| format!("study: restoring {shown} from {}", kept.dir.display()))?;
        step(
            &shown,
            &format!(
                "restoring its records from {}{}",
                kept.dir.display(),
                if dropped {
                    " (what its folder held goes)"
                } else {
                    ""
                }
            ),
        );
        if dropped {
            clear(folder);
        }
        copy_records(kept, folder)?;
    } else if run.retrain || !folder.summary().exists() {
        let resume = !run.retrain && checkpoints::latest_complete(&folder.dir).is_some();
        step(
            &shown,
            if run.retrain {
                "training again (its folder held another experiment's run)"
            } else if resume {
                "resuming training"
            } else {
                "training"
            },
        );
        if !run.retrain
            && let Some(done) = convert::convert_first(
                run.file,
                &run.exp,
                folder,
                run.seed,
                &opts.artifacts,
                opts.backend,
            )?
        {
            step(&shown, &done.converted.to_string());
        }
        let t = train::TrainOptions {
            artifacts: opts.artifacts.clone(),
            resume,
            force: run.retrain,
            display: train::Display::Lines,
            backend: opts.backend,
            seed: run.seed,
            devices: None,
            micro_batch: None,
        };
        // A study's runs show their lines, never a dashboard: nothing to wait for.
        train::run(run.file, &t, &mut |event| println!("{event}"))
            .with_context(|| format!("study: training {}", run.file.display()))?;
    }
    Ok(())
}

/// Refuses an experiment that no bench context fits, before anything trains.
fn benchable(file: &Path, exp: &Experiment, contexts: &[usize]) -> Result<()> {
    if contexts.iter().any(|&c| c <= exp.model.context) {
        return Ok(());
    }
    let listed: Vec<String> = contexts.iter().map(usize::to_string).collect();
    Err(anyhow::Error::new(InvalidOption::new(
        "contexts",
        listed.join(","),
        "at least one cache fill level up to each experiment's context",
    ))
    .context(format!(
        "{}: a context of {} tokens",
        file.display(),
        exp.model.context
    )))
}

/// Writes the records entry `kept` from `folder`, whole, saying so when it changed.
fn keep(folder: &RunFolder, kept: &RunFolder) -> Result<()> {
    if write_entry(folder, kept)? {
        step(
            &folder.name(),
            &format!("records kept in {}", kept.dir.display()),
        );
    }
    Ok(())
}

/// The records of a run folder about to be replaced by those of its records entry.
fn clear(folder: &RunFolder) {
    for f in folder.records() {
        let _ = std::fs::remove_file(f);
    }
    for f in [folder.weights(), folder.safetensors(), folder.tokenizer()] {
        let _ = std::fs::remove_file(f);
    }
    let _ = std::fs::remove_dir_all(folder.checkpoints());
}

/// A record in a run folder that does not read, with what to do about it: a measurement is
/// taken again once its file is gone; a training record needs the run trained again.
fn broken_run_file(e: BadRecord, folder: &RunFolder) -> anyhow::Error {
    if folder.is_measurement(&e.file) {
        anyhow::anyhow!(
            "{e}; remove {} and run the study again to measure it again",
            e.file.display()
        )
    } else {
        anyhow::anyhow!(
            "{e}; the run's training record is damaged: repair it, or remove {} to train the run \
             again",
            folder.dir.display()
        )
    }
}

/// Benches every run of `dirs` (one seed's) that has no `bench.json` yet in one interleaved
/// bench, so their decode speeds are measured side by side, then writes each run's rows into
/// its folder.
fn bench_together(dirs: &[PathBuf], opts: &StudyOptions, device: &Device) -> Result<()> {
    // A bench asked differently is redone for every run of the seed, so that they stay side by
    // side (their rounds are paired).
    let mut stale = vec![];
    for dir in dirs {
        let folder = RunFolder::new(dir.as_path());
        if let Some(rows) = read_json::<Vec<BenchRow>>(&folder.bench())? {
            let model = Experiment::load(folder.experiment())?.model;
            if let Some(why) = stale::stale_bench(&rows, &opts.bench, &model) {
                stale.push(format!("{}: {why}", folder.name()));
            }
        }
    }
    // A run restored from its records has no weights: its bench of the trained weights is
    // kept rather than replaced by a random model's.
    let weights = dirs
        .iter()
        .all(|d| RunFolder::new(d.as_path()).weights_to_load().is_some());
    if !stale.is_empty() && !weights {
        let why = stale.join("; ");
        step(
            "bench",
            &format!("kept ({why}): no weights here to redo them"),
        );
        stale.clear();
    }
    let todo: Vec<&PathBuf> = dirs
        .iter()
        .filter(|d| !stale.is_empty() || !RunFolder::new(d.as_path()).bench().exists())
        .collect();
    if todo.is_empty() {
        return Ok(());
    }
    if !stale.is_empty() {
        step(
            "bench",
            &format!("again, asked differently ({})", stale.join("; ")),
        );
    }
    step("bench", &format!("{} runs side by side", todo.len()));
    let mut subjects = Vec::new();
    for dir in &todo {
        // A run restored from its records has no weights; its speed is a random model's (the
        // bench row says so), which decodes as fast.
        let folder = RunFolder::new(dir.as_path());
        let source = match folder.weights_to_load() {
            Some(_) => dir.to_path_buf(),
            None => folder.experiment(),
        };
        let mut s = Subject::load(&source, None, device)?;
        // Seeds of one experiment share its name: rows go back to their run by the folder's.
        s.run = Some(folder.name());
        subjects.push(s);
    }
    for (context, steps) in bench::capped(&opts.bench, &subjects) {
        let asked = opts.bench.decode_tokens;
        step(
            "bench",
            &format!(
                "{asked} decode steps capped at {steps} for context {context} ({})",
                bench::CAPPED_WHY
            ),
        );
    }
    let rows = bench::bench(subjects, &opts.bench, device, |_| {})?;
    for dir in todo {
        let folder = RunFolder::new(dir.as_path());
        let name = Some(folder.name());
        let own: Vec<_> = rows.iter().filter(|r| r.run == name).cloned().collect();
        write_json(&folder.bench(), &own)?;
    }
    Ok(())
}
