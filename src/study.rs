//! `mla-lab study`: train every experiment that has no finished run, then evaluate, probe and
//! bench each, then write the report. Each step leaves a file in the run folder
//! (`summary.json`, `eval.json`, `probes.json`, `judge.json`, `bench.json`); a step whose file
//! exists is skipped, so an interrupted study continues where it stopped.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::Device;

use crate::backend::{self, BackendChoice};
use crate::eval::judge::JudgeConfig;
use crate::eval::probes::{self, ProbeOptions};
use crate::experiment::Experiment;
use crate::files::write_json;
use crate::infer::bench::{self, BenchOptions, Subject};
use crate::infer::generate::Run;
use crate::train::{checkpoint, run as train};

#[derive(Debug, Clone)]
pub struct StudyOptions {
    pub artifacts: PathBuf,
    pub backend: BackendChoice,
    /// Validation windows for `eval.json`.
    pub eval_windows: usize,
    pub probes: ProbeOptions,
    pub bench: BenchOptions,
    pub judge: Option<(JudgeConfig, usize)>,
    /// Where the report goes (default `<artifacts>/report`).
    pub report: PathBuf,
}

/// Experiment files given as files or folders (every `.ron` inside, sorted).
pub fn experiment_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
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
        .position(|(_, e)| crate::report::is_baseline(&e.model))
    {
        let base = exps.remove(i);
        exps.insert(0, base);
    }
    exps
}

fn step(name: &str, what: &str) {
    println!("study: {name}: {what}");
}

/// Runs the study; returns the report's files.
pub fn study(inputs: &[PathBuf], opts: &StudyOptions, machine: &str) -> Result<Vec<PathBuf>> {
    let files = experiment_files(inputs)?;
    // Read every file first: a bad one stops the study before hours of training.
    let exps = files
        .iter()
        .map(|f| Ok((f.clone(), Experiment::load(f)?)))
        .collect::<Result<Vec<_>>>()?;
    let exps = baseline_first(exps);
    let (_, device) = backend::select(opts.backend)?;
    let mut dirs = vec![];
    for (file, exp) in &exps {
        let dir = opts.artifacts.join(&exp.name);
        if !dir.join("summary.json").exists() {
            let resume = checkpoint::latest_complete(&dir).is_some();
            step(
                &exp.name,
                if resume {
                    "resuming training"
                } else {
                    "training"
                },
            );
            let t = train::TrainOptions {
                artifacts: opts.artifacts.clone(),
                resume,
                force: false,
                display: train::Display::Lines,
                backend: opts.backend,
            };
            train::run(file, &t).with_context(|| format!("study: training {}", file.display()))?;
        }
        analyse(&dir, opts, &device)?;
        dirs.push(dir);
    }
    step("report", &format!("writing {}", opts.report.display()));
    crate::report::write(&dirs, &opts.report, machine)
}

/// Eval, probes, judge and bench of one finished run, each skipped when its file exists.
pub fn analyse(dir: &Path, opts: &StudyOptions, device: &Device) -> Result<()> {
    let run = Run::load(dir, device)?;
    let name = run.experiment.name.clone();
    let eval_file = dir.join("eval.json");
    if !eval_file.exists() {
        step(&name, "eval");
        let (stream, what) = crate::eval::stream(&run, None, &opts.artifacts.join("cache"))?;
        let r = crate::eval::loss(
            &run.model,
            stream,
            opts.eval_windows,
            crate::eval::EVAL_BATCH,
            &what,
        )?;
        write_json(&eval_file, &r)?;
    }
    let probe_file = dir.join("probes.json");
    if !probe_file.exists() {
        step(&name, "probes");
        let r = probes::run(&run.model, &run.tokenizer, &run.experiment, &opts.probes)?;
        write_json(&probe_file, &r)?;
    }
    if let Some((judge, n)) = &opts.judge {
        let judge_file = dir.join("judge.json");
        if !judge_file.exists() {
            step(&name, "judge");
            let stories = probes_for_judge(&run, &opts.probes, *n)?;
            write_json(&judge_file, &crate::eval::judge::judge(judge, &stories)?)?;
        }
    }
    let bench_file = dir.join("bench.json");
    if !bench_file.exists() {
        step(&name, "bench");
        let subject = Subject {
            name: name.clone(),
            config: run.experiment.model.clone(),
            model: run.model.clone(),
            weights: run.weights.display().to_string(),
        };
        let rows = bench::bench(vec![subject], &opts.bench, device, |_| {})?;
        write_json(&bench_file, &rows)?;
    }
    Ok(())
}

/// (beginning, continuation) pairs for the judge: the probes' held-out stories.
pub fn probes_for_judge(run: &Run, o: &ProbeOptions, n: usize) -> Result<Vec<(String, String)>> {
    let mut out = vec![];
    for story in probes::held_out(&run.experiment, n)? {
        let prompt = story.text[..story.meta.resolution_start].to_string();
        let (text, _) =
            probes::continue_story(&run.model, &run.tokenizer, &prompt, story.meta.id, o)?;
        out.push((prompt, text));
    }
    Ok(out)
}
