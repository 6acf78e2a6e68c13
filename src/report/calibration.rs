//! `mla-lab calibrate`: where a tier's validation loss flattens, from long runs at a constant
//! learning rate. Each run's curve (validation loss against tokens seen, from `metrics.csv`)
//! is fitted with `L(t) = L∞ + A·t^(−α)` ([`fit::power_law`]) over its tail, and the budget
//! is read off the fit two ways: where the fitted loss is within 0.02 nats of `L∞`, and where
//! one more doubling of tokens gains under 1%. Writes `calibration.md` and a plot of the curves
//! with their fits. Runs need not have finished: a curve is whatever `metrics.csv` holds. Why a
//! curve has no fit, and each line of a `metrics.csv` that is not a row, is said on stderr and
//! in `calibration.md`. Nothing is written beside the run folders: the token cache the entropy
//! floor needs is read from `<artifacts>/cache` when training left it there, else made under
//! the output folder.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::fit::{NoFit, PowerLaw, power_law};
use super::plots::{Chart, Point, Series, plot};
use crate::artifacts::RunFolder;
use crate::artifacts::metrics::{self, Damaged, HEADER, MetricsRow};
use crate::experiment::Experiment;
use crate::table::Table;

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
    /// The points fitted: those from `fit_from` tokens on (step `fit_from_step`).
    pub fit_from: f64,
    pub fit_from_step: usize,
    /// The fit, or why there is none, in words.
    pub fit: Result<PowerLaw, String>,
    /// Validation points the fit went through.
    pub fitted_points: usize,
    pub tokens_per_s: Option<f64>,
    pub floor: Option<f64>,
    /// One line per line of `metrics.csv` that is not a row and was left out.
    pub skipped: Vec<String>,
}

impl Curve {
    /// The curve of the run in `dir`, fitted from `fit_from_step` (default: the second half of
    /// the steps it has).
    pub fn load(dir: &Path, fit_from_step: Option<usize>) -> Result<Curve> {
        let folder = RunFolder::new(dir);
        let experiment = Experiment::load(folder.experiment())
            .with_context(|| format!("{}: not a run folder", dir.display()))?;
        let (rows, skipped) = read_rows(&folder.metrics())?;
        let tokens_per_step = (experiment.train.batch_size * experiment.model.context) as f64;
        let validated: Vec<(usize, f64)> = rows
            .iter()
            .filter_map(|r| Some((r.step, r.val_loss?)))
            .collect();
        let last_step = rows.last().map_or(0, |r| r.step);
        let from = fit_from_step.unwrap_or(last_step / 2);
        // A power law in t has no value at t = 0: a step-0 point is shown, not fitted.
        let tail: Vec<(usize, f64)> = validated
            .iter()
            .copied()
            .filter(|&(step, _)| step >= from && step > 0)
            .collect();
        let tokens = |step: usize| step as f64 * tokens_per_step;
        let fit = power_law(
            &tail
                .iter()
                .map(|&(s, l)| (tokens(s), l))
                .collect::<Vec<_>>(),
        )
        .map_err(|why| match why {
            NoFit::TooFew(_) if validated.len() < 3 => format!(
                "{} validation points in metrics.csv in all; a fit needs at least 3",
                validated.len()
            ),
            why => no_fit(why, &tail, from, validated.last().map_or(0, |p| p.0)),
        });
        Ok(Curve {
            folder: folder.name(),
            fit,
            fitted_points: tail.len(),
            fit_from: tokens(from),
            fit_from_step: from,
            points: validated.iter().map(|&(s, l)| (tokens(s), l)).collect(),
            tokens_per_s: metrics::totals(&rows).tokens_per_s,
            floor: None,
            experiment,
            skipped,
        })
    }
}

impl Curve {
    /// Refuses a fit that cannot be one: a loss that flattens below zero, or below the corpus's
    /// entropy floor (`floor`, once known), which no model can reach. Its budgets would be read
    /// off an impossible curve, so the fit goes and says why.
    pub fn judge(&mut self) {
        let Ok(fit) = self.fit else { return };
        let below = if fit.l_inf < 0.0 {
            Some("below zero".to_string())
        } else {
            self.floor
                .filter(|&floor| fit.l_inf < floor)
                .map(|floor| format!("below the corpus's entropy floor {floor:.4}"))
        };
        if let Some(below) = below {
            self.fit = Err(format!(
                "the fitted L∞ {:.4} is {below}, which no model reaches: the tail from step {} \
                 has not bent toward its plateau; no budget is read from it (fit from an \
                 earlier step, or train longer)",
                fit.l_inf, self.fit_from_step
            ));
        }
    }
}

/// Why the `tail` of a curve, from step `from` on (its last validation at step `last`), has
/// no fit.
fn no_fit(why: NoFit, tail: &[(usize, f64)], from: usize, last: usize) -> String {
    match why {
        NoFit::TooFew(n) if from > last => format!(
            "{n} validation points from step {from} on, past the last validation (step {last}); a fit needs at least 3"
        ),
        NoFit::TooFew(n) => format!(
            "{n} validation points from step {from} on; a fit needs at least 3: fit from an earlier step"
        ),
        NoFit::Unusable(i) => format!(
            "validation loss {} at step {}; a fit needs finite losses from step {from} on",
            tail[i].1, tail[i].0
        ),
        NoFit::DoesNotFall => format!(
            "the validation loss does not fall from step {from} on (the best fit of L∞ + A·t^(−α) has A ≤ 0)"
        ),
    }
}

/// The rows of a `metrics.csv`, and a line naming each line that is not a row (a line cut
/// short by a kill, a damaged file) and is left out. Bytes that are not UTF-8 spoil their line
/// only.
fn read_rows(path: &Path) -> Result<(Vec<MetricsRow>, Vec<String>)> {
    let (rows, damaged) = metrics::read_checked(path)?;
    let skipped = damaged
        .iter()
        .map(|Damaged { line, text }| {
            let shown: String = text.chars().take(60).collect();
            let more = if shown.len() < text.len() { "…" } else { "" };
            format!(
                "{}:{line}: not a row of {HEADER}, left out: {shown:?}{more}",
                path.display()
            )
        })
        .collect();
    Ok((rows, skipped))
}

/// What calibrate says besides its tables: each missing fit and why, and each line of a
/// `metrics.csv` left out.
pub fn notes(curves: &[Curve]) -> Vec<String> {
    let mut notes = vec![];
    for c in curves {
        match &c.fit {
            Err(why) => notes.push(format!("{}: no fit: {why}", c.folder)),
            Ok(_) if c.fitted_points == 3 => notes.push(format!(
                "{}: the fit goes through exactly 3 points with 3 parameters: it has no residual \
                 to judge it by (rmse 0 says nothing); fit from an earlier step",
                c.folder
            )),
            Ok(_) => {}
        }
        notes.extend(c.skipped.iter().cloned());
    }
    notes
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
        let f = c.fit.as_ref().ok().copied();
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
    let notes = notes(curves);
    if !notes.is_empty() {
        s += "\n## Notes\n\n";
        for n in notes {
            s += &format!("- {n}\n");
        }
    }
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
    crate::artifacts::distinct_paths(run_dirs, "run folder")?;
    let mut curves: Vec<Curve> = run_dirs
        .iter()
        .map(|d| Curve::load(d, fit_from_step))
        .collect::<Result<_>>()?;
    // Two copies of one run would be fitted as two.
    for (i, c) in curves.iter().enumerate() {
        if let Some(o) = curves[..i].iter().find(|o| o.experiment == c.experiment) {
            bail!(
                "{} and {} are both runs of {:?} with training seed {}: each run is counted once; \
                 leave one out",
                o.folder,
                c.folder,
                c.experiment.name,
                c.experiment.training_seed()
            );
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    for (c, dir) in curves.iter_mut().zip(run_dirs) {
        c.floor = super::floor_of(&c.experiment, dir, out);
        c.judge();
    }
    for note in notes(&curves) {
        eprintln!("calibrate: {note}");
    }
    let md = out.join("calibration.md");
    crate::files::write(&md, markdown(&curves, machine).as_bytes())?;
    let mut files = vec![md];
    let (series, fits) = curves_and_fits(&curves);
    let title = format!(
        "Validation loss against tokens seen, and the power-law fits (dashed); {}",
        schedules(&curves)
    );
    files.extend(plot(
        out,
        "calibration",
        Chart {
            title: &title,
            x_label: "tokens seen (millions)",
            y_label: "validation loss (nats/token)",
            series: &series,
            points_only: false,
            frontier: None,
            fits: Some(&fits),
        },
    )?);
    Ok(files)
}

/// Each curve's points, and its fit over the tokens it was fitted on (empty where it has none,
/// so that fit i goes with curve i).
fn curves_and_fits(curves: &[Curve]) -> (Series, Series) {
    let mut series: Series = vec![];
    let mut fits: Series = vec![];
    for c in curves {
        let points = c
            .points
            .iter()
            .filter(|p| p.1.is_finite())
            .map(|&(t, l)| Point::at(t / 1e6, l))
            .collect();
        series.push((c.folder.clone(), points));
        let fitted = match &c.fit {
            Ok(fit) => c
                .points
                .iter()
                .filter(|p| p.0 >= c.fit_from && p.0 > 0.0)
                .map(|&(t, _)| Point::at(t / 1e6, fit.at(t)))
                .collect(),
            Err(_) => vec![],
        };
        fits.push((format!("{} fit", c.folder), fitted));
    }
    (series, fits)
}

/// The learning-rate schedule the curves were trained with, in words: a calibration is often
/// run at a constant rate, not the study's schedule, and its plot must say so.
fn schedules(curves: &[Curve]) -> String {
    let mut out: Vec<String> = curves
        .iter()
        .map(|c| {
            let t = &c.experiment.train;
            if t.lr == t.min_lr {
                format!(
                    "constant lr {:e} after {} warmup steps",
                    t.lr, t.warmup_steps
                )
            } else {
                format!("cosine lr {:e} to {:e}", t.lr, t.min_lr)
            }
        })
        .collect();
    out.dedup();
    out.join("; ")
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
        let src = crate::files::source("experiments/tiny/mha_rope.ron");
        std::fs::copy(&src, dir.join("experiment.ron")).unwrap();
        let exp = Experiment::load(&src).unwrap();
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
        let fit = curve.fit.as_ref().copied().unwrap();
        assert!((fit.l_inf - 0.5).abs() < 1e-2, "{fit:?}");
        let md = markdown(&[curve], "test machine");
        assert!(md.contains("| run |") && md.contains("| 12.3M |"), "{md}");
    }

    fn curve_with(fit: PowerLaw, floor: Option<f64>, fitted_points: usize) -> Curve {
        let src = crate::files::source("experiments/tiny/mha_rope.ron");
        Curve {
            folder: "run".into(),
            experiment: Experiment::load(&src).unwrap(),
            points: vec![(1e6, 0.9), (2e6, 0.8), (3e6, 0.75)],
            fit_from: 1e6,
            fit_from_step: 380,
            fit: Ok(fit),
            fitted_points,
            tokens_per_s: None,
            floor,
            skipped: vec![],
        }
    }

    #[test]
    fn a_fit_below_zero_or_the_entropy_floor_is_no_fit_and_publishes_no_budget() {
        let fit = |l_inf| PowerLaw {
            l_inf,
            a: 300.0,
            alpha: 0.5,
            rmse: 0.0,
        };
        // calibrate --fit-from-step 380 on a short run once gave L∞ −38.13.
        for (l_inf, floor, says) in [
            (-38.13, None, "is below zero"),
            (0.25, Some(0.30), "below the corpus's entropy floor 0.3000"),
        ] {
            let mut c = curve_with(fit(l_inf), floor, 5);
            c.judge();
            let why = c.fit.as_ref().unwrap_err();
            assert!(why.contains(says) && why.contains("no budget"), "{why}");
            let md = markdown(&[c], "test machine");
            assert!(
                !md.contains("inf M") && !md.contains(&format!("| {l_inf:.4} |")),
                "{md}"
            );
            assert!(md.contains("no fit"), "{md}");
        }
        // At or above the floor it stands.
        let mut c = curve_with(fit(0.31), Some(0.30), 5);
        c.judge();
        assert!(c.fit.is_ok());
        assert!(notes(&[c]).is_empty());
        // Three points, three parameters: said.
        let c = curve_with(fit(0.31), Some(0.30), 3);
        let notes = notes(&[c]);
        assert!(notes[0].contains("no residual to judge it by"), "{notes:?}");
    }
}
