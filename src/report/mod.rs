//! `mla-lab report`: the paper's comparisons from run folders, as `report.md` and plots.
//!
//! Reads each run's `summary.json`, `metrics.csv`, and when present `eval.json`,
//! `probes.json`, `judge.json` and `bench.json` (written by `mla-lab study`): [`runs`]. The
//! paper's claims and their criteria are data, judged into findings: [`claims`]. Then the
//! Markdown ([`markdown`]) and the plots ([`plots`]).

pub mod calibration;
pub mod claims;
pub mod decode_map;
pub mod fit;
pub mod markdown;
pub mod peaks;
pub mod plots;
pub mod runs;
pub mod stats;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::artifacts::RunFolder;
use crate::data::tokens;
use crate::experiment::Experiment;

use crate::infer::bench::spread;
use markdown::markdown;
use plots::{Chart, Point, Series, pareto_frontier, plot};
use runs::{RunData, variants};
use stats::Spread;

/// The mean of `values` at `x`, with a bar from their least to their greatest when there are
/// several.
fn point(x: f64, values: &[f64]) -> Point {
    let s = Spread::of(values).expect("a value at every step listed");
    let (lo, hi) = spread(values);
    Point {
        x,
        y: s.mean,
        bar: (s.n > 1).then_some((lo, hi)),
    }
}

/// The entropy floor of each run's validation split, worked out once per data section and
/// seed ([`floor_of`]). A floor that cannot be worked out is left out, with a note.
fn add_floors(runs: &mut [RunData], dirs: &[PathBuf], out: &Path) {
    let mut known: Vec<((crate::data::config::DataConfig, u64), Option<f64>)> = vec![];
    for (run, dir) in runs.iter_mut().zip(dirs) {
        let key = (run.experiment.data.clone(), run.experiment.seed);
        if let Some((_, floor)) = known.iter().find(|(k, _)| *k == key) {
            run.floor = *floor;
            continue;
        }
        let floor = floor_of(&run.experiment, dir, out);
        run.floor = floor;
        known.push((key, floor));
    }
}

/// The entropy floor of the validation split of `exp`, run in `dir`: its token count read from
/// the token cache training left beside the run folders (`<artifacts>/cache`) where it is there,
/// else from a cache made under `out`, so that nothing is written beside the inputs. `None`,
/// with a note, where it cannot be worked out.
pub(crate) fn floor_of(exp: &Experiment, dir: &Path, out: &Path) -> Option<f64> {
    let beside = RunFolder::token_cache(dir.parent().unwrap_or(Path::new("")));
    let floor = || -> Result<Option<f64>> {
        let Some(nats) = crate::eval::split_entropy(exp)? else {
            return Ok(None);
        };
        let val_tokens = match manifest_in(&beside, exp) {
            Some(m) => m.val_tokens,
            None => {
                tokens::prepare(&exp.data, exp.seed, &RunFolder::token_cache(out))?
                    .manifest
                    .val_tokens
            }
        };
        Ok(Some(nats / val_tokens as f64))
    };
    floor().unwrap_or_else(|e| {
        eprintln!("no entropy floor for {}: {e:#}", dir.display());
        None
    })
}

/// The manifest of the token cache of `exp`'s data under `root`, when there is one made from
/// the same inputs.
fn manifest_in(root: &Path, exp: &Experiment) -> Option<tokens::Manifest> {
    let (_, fingerprint) = tokens::fingerprint(&exp.data.source).ok()?;
    let path = tokens::cache_dir(root, &exp.data, &fingerprint, exp.seed).join("manifest.json");
    let m: tokens::Manifest = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    (m.source_fingerprint == fingerprint
        && m.split_seed == exp.seed
        && m.val_fraction == exp.data.val_fraction
        && m.val_tokens > 0)
        .then_some(m)
}

/// Writes `report.md` and the plots into `out`; returns the files written. `sweep_dirs`: runs
/// of a sweep of the peak learning rate, to judge the loss claims again at each row's best
/// peak ([`peaks`]); none, no such judgement.
pub fn write(
    run_dirs: &[PathBuf],
    sweep_dirs: &[PathBuf],
    out: &Path,
    machine: &str,
) -> Result<Vec<PathBuf>> {
    if run_dirs.is_empty() {
        bail!("no run folders to report on");
    }
    let all: Vec<PathBuf> = run_dirs.iter().chain(sweep_dirs).cloned().collect();
    crate::artifacts::distinct_paths(&all, "run folder")?;
    let load = |dirs: &[PathBuf]| -> Result<Vec<RunData>> {
        dirs.iter().map(|d| RunData::load(d)).collect()
    };
    let mut runs = load(run_dirs)?;
    runs::one_run_per_seed(&runs)?;
    let peaks = peaks::peaks(&variants(&runs), &load(sweep_dirs)?)?;
    add_floors(&mut runs, run_dirs, out);
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let plots = plots(&runs, out)?;
    // The report links the plots that were drawn (a plot without data is left out).
    let plotted: Vec<&str> = plots
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "svg"))
        .filter_map(|f| f.file_stem()?.to_str())
        .collect();
    let md = out.join("report.md");
    crate::files::write(&md, markdown(&runs, &peaks, machine, &plotted).as_bytes())?;
    let mut files = vec![md];
    files.extend(plots.iter().cloned());
    Ok(files)
}

/// Draws the report's plots into `out`; returns the files written.
fn plots(runs: &[RunData], out: &Path) -> Result<Vec<PathBuf>> {
    let mut files = vec![];
    let variants = variants(runs);
    files.extend(plot(
        out,
        "val_loss",
        Chart {
            title: "Validation loss (mean over seeds, bars: min to max)",
            x_label: "step",
            y_label: "val loss (nats/token)",
            series: &val_loss_curves(&variants),
            points_only: false,
            frontier: None,
        },
    )?);
    let pareto = kv_against_loss(&variants);
    let means: Vec<(f64, f64)> = pareto.iter().map(|(_, p)| (p[0].x, p[0].y)).collect();
    files.extend(plot(
        out,
        "pareto",
        Chart {
            title: "KV cache vs validation loss (mean ± sd over seeds)",
            x_label: "KV bytes per token (f32)",
            y_label: "val loss (nats/token)",
            series: &pareto,
            points_only: true,
            frontier: Some(pareto_frontier(&means)),
        },
    )?);
    files.extend(plot(
        out,
        "decode_speed",
        Chart {
            title: "Decode speed (batch 1, absorbed MLA; bars: slowest to fastest round)",
            x_label: "context (cached tokens)",
            y_label: "decode tokens/s",
            series: &decode_speeds(&variants),
            points_only: false,
            frontier: None,
        },
    )?);
    Ok(files)
}

/// Validation loss by step: the mean over seeds, with their spread (min to max).
fn val_loss_curves(variants: &[runs::Variant]) -> Series {
    variants
        .iter()
        .map(|v| {
            let mut steps: Vec<usize> = v
                .runs
                .iter()
                .flat_map(|r| r.val_curve.iter().map(|&(s, _)| s))
                .collect();
            steps.sort_unstable();
            steps.dedup();
            let pts = steps
                .into_iter()
                .map(|s| {
                    let at: Vec<f64> = v
                        .runs
                        .iter()
                        .filter_map(|r| r.val_curve.iter().find(|c| c.0 == s).map(|c| c.1))
                        .collect();
                    point(s as f64, &at)
                })
                .collect();
            (v.name.clone(), pts)
        })
        .collect()
}

/// KV bytes against validation loss: mean ± sd over seeds.
fn kv_against_loss(variants: &[runs::Variant]) -> Series {
    variants
        .iter()
        .filter_map(|v| {
            let losses = v.values(RunData::val_loss);
            let s = Spread::of(&losses)?;
            let bar = (s.n > 1).then_some((s.mean - s.sd, s.mean + s.sd));
            let x = v.first().kv_bytes() as f64;
            Some((v.name.clone(), vec![Point { x, y: s.mean, bar }]))
        })
        .collect()
}

/// Decode speed by context: each run's median over its rounds, mean over seeds, with the
/// fastest and slowest round of any seed.
fn decode_speeds(variants: &[runs::Variant]) -> Series {
    variants
        .iter()
        .map(|v| {
            let mut contexts: Vec<usize> = v
                .runs
                .iter()
                .flat_map(|r| r.batch_one_decode().map(|b| b.context))
                .collect();
            contexts.sort_unstable();
            contexts.dedup();
            let pts = contexts
                .into_iter()
                .filter_map(|c| {
                    let medians = v.values(|r| r.decode_at(c));
                    let s = Spread::of(&medians)?;
                    let rounds: Vec<f64> = v
                        .runs
                        .iter()
                        .filter_map(|r| r.rounds_at(c))
                        .flatten()
                        .map(|ms| 1e3 / ms)
                        .collect();
                    let bar = (!rounds.is_empty()).then(|| spread(&rounds));
                    Some(Point {
                        x: c as f64,
                        y: s.mean,
                        bar,
                    })
                })
                .collect();
            (v.name.clone(), pts)
        })
        .collect()
}
