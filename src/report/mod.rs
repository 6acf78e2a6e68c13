//! `mla-lab report`: the paper's comparisons from run folders, as `report.md` and plots.
//!
//! Reads each run's `summary.json`, `metrics.csv`, and when present `eval.json`,
//! `probes.json`, `judge.json` and `bench.json` (written by `mla-lab study`): [`runs`]. The
//! paper's claims and their criteria are data, judged into findings: [`claims`]. Then the
//! Markdown ([`markdown`]) and the plots ([`plots`]); and the numbers other documents carry,
//! between markers ([`splice`]).

pub mod calibration;
pub mod claims;
pub mod conversion;
pub mod decode_map;
pub mod fit;
pub mod markdown;
pub mod pages;
pub mod pairing;
pub mod peaks;
pub mod plots;
pub mod runs;
pub mod splice;
pub mod stats;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::artifacts::RunFolder;
use crate::data::tokens;
use crate::experiment::Experiment;

use markdown::markdown;
use plots::{Chart, Point, Series, pareto_frontier, plot};
use runs::{RunData, variants};
use stats::{Interval, Spread};

/// The mean of `values` at `x`, with a bar over its 95% t-interval when there are several;
/// hollow when there is one (nothing says how far it could be off).
fn point(x: f64, values: &[f64]) -> Point {
    let s = Spread::of(values).expect("a value at every step listed");
    Point {
        x,
        y: s.mean,
        bar: Interval::t(values, 0.95).map(|i| (i.lo, i.hi)),
        seeds: Some(s.n),
    }
}

/// A series' name with its number of seeds: `mha_tiny (n=10)`, or `n=1–10` where it varies.
fn named(name: &str, ns: impl IntoIterator<Item = usize>) -> String {
    let ns: Vec<usize> = ns.into_iter().collect();
    match (ns.iter().min(), ns.iter().max()) {
        (Some(lo), Some(hi)) if lo == hi => format!("{name} (n={lo})"),
        (Some(lo), Some(hi)) => format!("{name} (n={lo}–{hi})"),
        _ => name.to_string(),
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
    splice_into: &[PathBuf],
) -> Result<Vec<PathBuf>> {
    if run_dirs.is_empty() {
        bail!("no run folders to report on");
    }
    let all: Vec<PathBuf> = run_dirs.iter().chain(sweep_dirs).cloned().collect();
    crate::artifacts::distinct_paths(&all, "run folder")?;
    let load = |dirs: &[PathBuf]| -> Result<Vec<RunData>> {
        dirs.iter().map(|d| RunData::load(d)).collect()
    };
    // Runs fine-tuned from a conversion have their own section, and no place among the rows
    // trained from scratch, whose comparisons assume drawn weights and the tier's budget.
    let (mut converted, mut runs): (Vec<RunData>, Vec<RunData>) = load(run_dirs)?
        .into_iter()
        .partition(|r| r.converted.is_some());
    // Their rows by name, whatever order the folders were given in.
    converted.sort_by(|a, b| (&a.name, a.seed).cmp(&(&b.name, b.seed)));
    if runs.is_empty() {
        bail!("no run trained from scratch to report on beside the converted ones");
    }
    runs::one_run_per_seed(&runs)?;
    runs::one_run_per_seed(&converted)?;
    let peaks = peaks::peaks(&variants(&runs), &load(sweep_dirs)?)?;
    add_floors(&mut runs, run_dirs, out);
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let mut plots = plots(&runs, out)?;
    plots.extend(plot(
        out,
        "fine_tune",
        Chart {
            title: "Converted runs: validation loss by fine-tune step",
            x_label: "fine-tune step",
            y_label: "training's periodic validation loss (not the table's eval)",
            series: &conversion::curves(&converted),
            points_only: false,
            frontier: None,
            fits: None,
        },
    )?);
    // The report links the plots that were drawn (a plot without data is left out).
    let plotted: Vec<&str> = plots
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "svg"))
        .filter_map(|f| f.file_stem()?.to_str())
        .collect();
    let md = out.join("report.md");
    let mut text = markdown(&runs, &peaks, machine, &plotted);
    text += &conversion::section(&converted, &runs);
    if plotted.contains(&"fine_tune") {
        // A blank line first: right after a table, Markdown would take the image for a row.
        text += "\n![Converted runs' fine-tune](fine_tune.svg)\n";
    }
    crate::files::write(&md, text.as_bytes())?;
    let mut files = vec![md];
    files.extend(plots.iter().cloned());
    // Documents that carry the report's numbers between markers: all are read and checked
    // before any is written, so that a bad marker leaves every document as it was.
    let sections = pages::sections(&runs, &converted);
    let mut spliced = vec![];
    for doc in splice_into {
        // A link would be replaced by a plain file, the document it points to left stale.
        if doc
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            bail!(
                "{}: a link; --splice writes a document in place: name the document itself ({})",
                doc.display(),
                std::fs::canonicalize(doc).map_or("-".into(), |p| p.display().to_string())
            );
        }
        let text = std::fs::read_to_string(doc)
            .with_context(|| format!("{}: cannot read", doc.display()))?;
        spliced.push((
            doc,
            splice::splice(&doc.display().to_string(), &text, &sections)?,
        ));
    }
    for (doc, text) in spliced {
        // Written whole in the document's place, with its permissions (a read-only document
        // stays read-only).
        let permissions = std::fs::metadata(doc).map(|m| m.permissions());
        crate::files::write(doc, text.as_bytes())?;
        if let Ok(p) = permissions {
            std::fs::set_permissions(doc, p)
                .with_context(|| format!("{}: cannot keep its permissions", doc.display()))?;
        }
        files.push(doc.clone());
    }
    Ok(files)
}

/// Draws the report's plots into `out`; returns the files written. Every bar is a 95%
/// t-interval over seeds, every series names its seeds, and a point from one seed is hollow.
fn plots(runs: &[RunData], out: &Path) -> Result<Vec<PathBuf>> {
    let mut files = vec![];
    let variants = variants(runs);
    files.extend(plot(
        out,
        "val_loss",
        Chart {
            title: "Training's validation loss by step (its periodic batches, not the table's eval)",
            x_label: "step",
            y_label: "val loss (nats/token), mean [95% CI]",
            series: &val_loss_curves(&variants),
            points_only: false,
            frontier: None,
            fits: None,
        },
    )?);
    for base in runs::baselines(&variants) {
        let title = format!("Change of eval loss against {}, paired by seed", base.name);
        files.extend(plot(
            out,
            &format!("loss_change_vs_{}", base.name),
            Chart {
                title: &title,
                x_label: "KV bytes per token (f32)",
                y_label: "Δ loss (% of the baseline's), mean [95% CI]",
                series: &loss_changes_against(&variants, base),
                points_only: true,
                frontier: None,
                fits: None,
            },
        )?);
    }
    let pareto = kv_against_loss(&variants);
    // The frontier joins only the rows with the most seeds: a row of two could top it by luck.
    let most = variants.iter().map(|v| v.runs.len()).max().unwrap_or(0);
    let means: Vec<(f64, f64)> = variants
        .iter()
        .zip(&pareto)
        .filter(|(v, _)| v.runs.len() == most)
        .map(|(_, (_, p))| (p[0].x, p[0].y))
        .collect();
    let pareto_title =
        format!("KV cache against eval loss (mean [95% CI]); frontier over the {most}-seed rows");
    files.extend(plot(
        out,
        "pareto",
        Chart {
            title: &pareto_title,
            x_label: "KV bytes per token (f32)",
            y_label: "eval loss (nats/token)",
            series: &pareto,
            points_only: true,
            frontier: Some(pareto_frontier(&means)),
            fits: None,
        },
    )?);
    files.extend(plot(
        out,
        "decode_speed",
        Chart {
            title: "Decode speed over the full-rank row's, paired by seed (batch 1, absorbed MLA)",
            x_label: "context (cached tokens)",
            y_label: "full rank ms/token ÷ row's, mean [95% CI]",
            series: &decode_ratios(&variants),
            points_only: false,
            frontier: None,
            fits: None,
        },
    )?);
    Ok(files)
}

/// Validation loss by step: the mean over seeds, with its 95% interval.
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
            let mut ns = vec![];
            let pts = steps
                .into_iter()
                .map(|s| {
                    let at: Vec<f64> = v
                        .runs
                        .iter()
                        .filter_map(|r| r.val_curve.iter().find(|c| c.0 == s).map(|c| c.1))
                        .collect();
                    ns.push(at.len());
                    point(s as f64, &at)
                })
                .collect();
            (named(&v.name, ns), pts)
        })
        .collect()
}

/// Each row's change of eval loss against `base` (percent, paired by seed) at its KV bytes per
/// token: the mean with its 95% interval.
fn loss_changes_against(variants: &[runs::Variant], base: &runs::Variant) -> Series {
    variants
        .iter()
        .filter(|v| v.name != base.name)
        .filter_map(|v| {
            let d = v.loss_change(base);
            if d.is_empty() {
                return None;
            }
            let x = v.first().kv_bytes() as f64;
            Some((named(&v.name, [d.len()]), vec![point(x, &d)]))
        })
        .collect()
}

/// KV bytes against eval loss: the mean over seeds with its 95% interval.
fn kv_against_loss(variants: &[runs::Variant]) -> Series {
    variants
        .iter()
        .filter_map(|v| {
            let losses = v.values(RunData::val_loss);
            if losses.is_empty() {
                return None;
            }
            let x = v.first().kv_bytes() as f64;
            Some((named(&v.name, [losses.len()]), vec![point(x, &losses)]))
        })
        .collect()
}

/// Decode speed over the full-rank peer's by context, paired by seed ([`runs::speed_ratios`]):
/// the mean ratio with its 95% interval, for each row that has a full-rank peer.
fn decode_ratios(variants: &[runs::Variant]) -> Series {
    variants
        .iter()
        .filter_map(|v| {
            let full = runs::full_rank(variants, v).filter(|f| f.name != v.name)?;
            let mut contexts: Vec<usize> = v
                .runs
                .iter()
                .flat_map(|r| r.batch_one_decode().map(|b| b.context))
                .collect();
            contexts.sort_unstable();
            contexts.dedup();
            let mut ns = vec![];
            let pts: Vec<Point> = contexts
                .into_iter()
                .filter_map(|c| {
                    let ratios = runs::speed_ratios(v, full, c);
                    (!ratios.is_empty()).then(|| {
                        ns.push(ratios.len());
                        point(c as f64, &ratios)
                    })
                })
                .collect();
            (!pts.is_empty()).then(|| (named(&v.name, ns), pts))
        })
        .collect()
}
