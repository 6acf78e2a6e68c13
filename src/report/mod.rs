//! `mla-lab report`: the paper's comparisons from run folders, as `report.md` and plots.
//!
//! Reads each run's `summary.json`, `metrics.csv`, and when present `eval.json`,
//! `probes.json`, `judge.json` and `bench.json` (written by `mla-lab study`): [`runs`]. The
//! paper's claims and their criteria are data, judged into findings: [`claims`]. Then the
//! Markdown ([`markdown`]) and the plots ([`plots`]).

pub mod claims;
pub mod markdown;
pub mod plots;
pub mod runs;
pub mod stats;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use markdown::markdown;
use plots::{Chart, Series, plot};
use runs::RunData;

/// Writes `report.md` and the plots into `out`; returns the files written.
pub fn write(run_dirs: &[PathBuf], out: &Path, machine: &str) -> Result<Vec<PathBuf>> {
    if run_dirs.is_empty() {
        bail!("no run folders to report on");
    }
    let runs: Vec<RunData> = run_dirs
        .iter()
        .map(|d| RunData::load(d))
        .collect::<Result<_>>()?;
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let mut files = vec![];
    let md = out.join("report.md");
    crate::files::write(&md, markdown(&runs, machine).as_bytes())?;
    files.push(md);
    let curves: Series = runs
        .iter()
        .map(|r| {
            (
                r.name.clone(),
                r.val_curve.iter().map(|&(s, l)| (s as f64, l)).collect(),
            )
        })
        .collect();
    files.extend(plot(
        out,
        "val_loss",
        Chart {
            title: "Validation loss",
            x_label: "step",
            y_label: "val loss (nats/token)",
            series: &curves,
            points_only: false,
        },
    )?);
    let pareto: Series = runs
        .iter()
        .filter_map(|r| Some((r.name.clone(), vec![(r.kv_bytes() as f64, r.val_loss()?)])))
        .collect();
    files.extend(plot(
        out,
        "pareto",
        Chart {
            title: "KV cache vs validation loss",
            x_label: "KV bytes per token (f32)",
            y_label: "val loss (nats/token)",
            series: &pareto,
            points_only: true,
        },
    )?);
    let speed: Series = runs
        .iter()
        .map(|r| {
            let mut pts: Vec<(f64, f64)> = r
                .batch_one_decode()
                .map(|b| (b.context as f64, b.decode_tokens_per_s))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            (r.name.clone(), pts)
        })
        .collect();
    files.extend(plot(
        out,
        "decode_speed",
        Chart {
            title: "Decode speed (batch 1, absorbed MLA)",
            x_label: "context (cached tokens)",
            y_label: "decode tokens/s",
            series: &speed,
            points_only: false,
        },
    )?);
    Ok(files)
}
