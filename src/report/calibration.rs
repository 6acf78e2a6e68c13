//! `mla-lab calibrate`: where a tier's validation loss flattens, from long runs at a constant
//! learning rate. Each run's curve (validation loss against tokens seen, from `metrics.csv`)
//! is fitted with `L(t) = L∞ + A·t^(−α)` ([`fit::power_law`]) over its tail, and the budget
//! is read off the fit two ways: where the fitted loss is within 0.02 nats of `L∞`, and where
//! one more doubling of tokens gains under 1%. Writes `calibration.md` and a plot of the curves
//! with their fits. Runs need not have finished: a curve is whatever `metrics.csv` holds.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::fit::{PowerLaw, power_law};
use super::markdown::Table;
use super::plots::{Chart, Point, Series, plot};
use crate::artifacts::{RunFolder, metrics};
use crate::experiment::Experiment;

/// Within this many nats of `L∞`: the first budget rule.
pub const WITHIN_NATS: f64 = 0.02;
/// One more doubling gains less than this share: the second.
pub const FLAT_PER_DOUBLING: f64 = 0.01;

/// One calibration run's curve and fit.
pub struct Curve {
    pub folder: String,
    pub experiment: Experiment,
    /// (tokens seen, validation loss).
    pub points: Vec<(f64, f64)>,
    /// The points fitted: those from `fit_from` tokens on.
    pub fit_from: f64,
    pub fit: Option<PowerLaw>,
    pub tokens_per_s: Option<f64>,
    pub floor: Option<f64>,
}

impl Curve {
    /// The curve of the run in `dir`, fitted from `fit_from_step` (default: the second half of
    /// the steps it has).
    pub fn load(dir: &Path, fit_from_step: Option<usize>) -> Result<Curve> {
        let folder = RunFolder::new(dir);
        let experiment = Experiment::load(folder.experiment())
            .with_context(|| format!("{}: not a run folder", dir.display()))?;
        let rows = metrics::read(&folder.metrics());
        let tokens_per_step = (experiment.train.batch_size * experiment.model.context) as f64;
        let points: Vec<(f64, f64)> = rows
            .iter()
            .filter_map(|r| Some((r.step as f64 * tokens_per_step, r.val_loss?)))
            .collect();
        if points.len() < 3 {
            bail!(
                "{}: {} validation points in metrics.csv; a fit needs at least 3",
                dir.display(),
                points.len()
            );
        }
        let last_step = rows.last().map_or(0, |r| r.step);
        let fit_from = fit_from_step.unwrap_or(last_step / 2) as f64 * tokens_per_step;
        let tail: Vec<(f64, f64)> = points
            .iter()
            .copied()
            .filter(|&(t, _)| t >= fit_from)
            .collect();
        Ok(Curve {
            folder: folder.name(),
            fit: power_law(&tail),
            fit_from,
            points,
            tokens_per_s: metrics::totals(&rows).tokens_per_s,
            floor: None,
            experiment,
        })
    }
}

/// Tokens in millions, one decimal (`12.3M`).
fn millions(tokens: f64) -> String {
    format!("{:.1}M", tokens / 1e6)
}

/// The Markdown of `calibration.md`.
pub fn markdown(curves: &[Curve], machine: &str) -> String {
    let mut s = String::from("# Calibration\n\n");
    s += &format!(
        "Validation loss against tokens seen, fitted with L(t) = L∞ + A·t^(−α) over each \
         curve's tail. Budget: where the fitted loss is within {WITHIN_NATS} nats of L∞, and \
         where one more doubling of tokens gains under {:.0}%. Machine: {machine}.\n\n",
        FLAT_PER_DOUBLING * 100.0
    );
    let mut fits = Table::new(
        &[
            "run",
            "params",
            "lr",
            "tokens seen",
            "last val loss",
            "fitted from",
            "L∞",
            "A",
            "α",
            "rmse",
            &format!("within {WITHIN_NATS} of L∞"),
            &format!("<{:.0}% per doubling", FLAT_PER_DOUBLING * 100.0),
            "entropy floor",
            "L∞ − floor",
            "tok/s",
        ],
        1,
    );
    for c in curves {
        let (last_t, last_l) = *c.points.last().expect("at least 3 points");
        let f = c.fit;
        let num = |v: Option<f64>, digits: usize| v.map_or("-".into(), |v| format!("{v:.digits$}"));
        fits.rows.push(vec![
            c.folder.clone(),
            crate::info::millions(c.experiment.model.param_count()),
            format!("{:e}", c.experiment.train.lr),
            millions(last_t),
            format!("{last_l:.4}"),
            millions(c.fit_from),
            num(f.map(|f| f.l_inf), 4),
            num(f.map(|f| f.a), 1),
            num(f.map(|f| f.alpha), 3),
            num(f.map(|f| f.rmse), 4),
            f.map_or("-".into(), |f| millions(f.tokens_within(WITHIN_NATS))),
            f.map_or("-".into(), |f| {
                millions(f.tokens_flat(FLAT_PER_DOUBLING, c.points[0].0))
            }),
            num(c.floor, 4),
            num(f.zip(c.floor).map(|(f, floor)| f.l_inf - floor), 4),
            num(c.tokens_per_s, 0),
        ]);
    }
    s += &fits.render();
    s += "\n## Curves\n\n";
    let mut curve = Table::new(&["tokens"], 1);
    curve.head.extend(curves.iter().map(|c| c.folder.clone()));
    let mut tokens: Vec<f64> = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.0))
        .collect();
    tokens.sort_by(f64::total_cmp);
    tokens.dedup();
    for t in tokens {
        let mut row = vec![millions(t)];
        for c in curves {
            row.push(
                c.points
                    .iter()
                    .find(|p| p.0 == t)
                    .map_or("".into(), |p| format!("{:.4}", p.1)),
            );
        }
        curve.rows.push(row);
    }
    s += &curve.render();
    s
}

/// Fits every run of `run_dirs`; writes `calibration.md` and `calibration.{svg,png}` into
/// `out`; returns the files written.
pub fn write(
    run_dirs: &[PathBuf],
    out: &Path,
    fit_from_step: Option<usize>,
    machine: &str,
) -> Result<Vec<PathBuf>> {
    if run_dirs.is_empty() {
        bail!("no run folders to calibrate from");
    }
    let mut curves: Vec<Curve> = run_dirs
        .iter()
        .map(|d| Curve::load(d, fit_from_step))
        .collect::<Result<_>>()?;
    for (c, dir) in curves.iter_mut().zip(run_dirs) {
        c.floor = super::floor_of(&c.experiment, dir);
    }
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let md = out.join("calibration.md");
    crate::files::write(&md, markdown(&curves, machine).as_bytes())?;
    let mut files = vec![md];
    let mut series: Series = vec![];
    for c in &curves {
        let pts = |f: &dyn Fn(f64, f64) -> f64| {
            c.points
                .iter()
                .map(|&(t, l)| Point {
                    x: t / 1e6,
                    y: f(t, l),
                    bar: None,
                })
                .collect::<Vec<_>>()
        };
        series.push((c.folder.clone(), pts(&|_, l| l)));
        if let Some(fit) = c.fit {
            let fitted = c
                .points
                .iter()
                .filter(|p| p.0 >= c.fit_from)
                .map(|&(t, _)| Point {
                    x: t / 1e6,
                    y: fit.at(t),
                    bar: None,
                })
                .collect();
            series.push((format!("{} fit", c.folder), fitted));
        }
    }
    files.extend(plot(
        out,
        "calibration",
        Chart {
            title: "Validation loss against tokens seen, with the power-law fits",
            x_label: "tokens seen (millions)",
            y_label: "validation loss (nats/token)",
            series: &series,
            points_only: false,
            frontier: None,
        },
    )?);
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifacts::metrics::MetricsRow;

    #[test]
    fn a_run_folder_curve_is_fitted_over_its_tail() {
        let scratch = crate::data::Scratch::new("calibration");
        let dir = scratch.0.join("run");
        std::fs::create_dir_all(&dir).unwrap();
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/tiny/mha_rope.ron");
        std::fs::copy(src, dir.join("experiment.ron")).unwrap();
        let exp = Experiment::load(src).unwrap();
        let per_step = (exp.train.batch_size * exp.model.context) as f64;
        let truth = PowerLaw {
            l_inf: 0.5,
            a: 300.0,
            alpha: 0.5,
            rmse: 0.0,
        };
        for step in (100..=3000).step_by(100) {
            let row = MetricsRow {
                step,
                train_loss: Some(1.0),
                val_loss: Some(truth.at(step as f64 * per_step)),
                lr: 2e-3,
                tokens_per_s: 9000.0,
                elapsed_s: step as f64,
            };
            metrics::append(&dir.join("metrics.csv"), &row).unwrap();
        }
        let curve = Curve::load(&dir, None).unwrap();
        assert_eq!(curve.points.len(), 30);
        assert_eq!(curve.fit_from, 1500.0 * per_step);
        let fit = curve.fit.unwrap();
        assert!((fit.l_inf - 0.5).abs() < 1e-2, "{fit:?}");
        let md = markdown(&[curve], "test machine");
        assert!(md.contains("| run |") && md.contains("| 12.3M |"), "{md}");
    }
}
