//! The peak learning rate each row would train best at, from a sweep of that peak (runs of the
//! row's experiment that differ from it only in the peak, its floor with it, and the training
//! seed), and the loss claims judged again as if every swept row had trained at its best peak.
//!
//! The what-if lowers every run of a swept row by the row's gain: the sweep's loss at the peak
//! the row trained at minus its loss at the best peak. A sweep has one seed per peak, so a gain
//! is an estimate no finer than the seed-to-seed spread; it shifts every seed of a row alike. A
//! row without a sweep keeps its losses.

use anyhow::{Result, bail};

use super::runs::{RunData, Variant};
use crate::experiment::Experiment;

/// One row's sweep of the peak learning rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Peak {
    /// The row: its experiment's name.
    pub name: String,
    /// The peak its runs trained at.
    pub trained: f64,
    /// (peak, last validation loss during training) of each sweep run, by peak.
    pub sweep: Vec<(f64, f64)>,
}

impl Peak {
    /// The peak with the lowest loss, and that loss.
    pub fn best(&self) -> (f64, f64) {
        self.sweep
            .iter()
            .copied()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("a sweep has runs")
    }

    /// Whether the best peak is the sweep's lowest or highest: the optimum may lie beyond it.
    pub fn best_at_edge(&self) -> bool {
        let best = self.best().0;
        self.sweep.len() > 1
            && [self.sweep[0].0, self.sweep[self.sweep.len() - 1].0]
                .iter()
                .any(|&edge| same_rate(edge, best))
    }

    /// The sweep's loss at the peak the row trained at; `None` where the sweep has no run there.
    pub fn at_trained(&self) -> Option<f64> {
        self.sweep
            .iter()
            .find(|(lr, _)| same_rate(*lr, self.trained))
            .map(|&(_, loss)| loss)
    }

    /// How much lower, in nats, the row's loss would be at its best peak; `None` where the sweep
    /// has no run at the row's peak.
    pub fn gain(&self) -> Option<f64> {
        Some(self.at_trained()? - self.best().1)
    }
}

fn same_rate(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// `exp` with what a sweep varies set aside: its name, its training seeds, its peak and its
/// floor (compared as a fraction of the peak by [`same_schedule`]).
fn but_the_peak(exp: &Experiment) -> Experiment {
    let mut e = exp.clone();
    e.name.clear();
    e.train.seed = None;
    e.train.init_seed = None;
    e.train.order_seed = None;
    e.train.lr = 0.0;
    e.train.min_lr = 0.0;
    e
}

/// Whether `a` and `b` are one experiment but for the peak: the same in everything
/// [`but_the_peak`] keeps, with the floor the same fraction of the peak.
fn same_but_the_peak(a: &Experiment, b: &Experiment) -> bool {
    let floor = |e: &Experiment| e.train.min_lr / e.train.lr;
    but_the_peak(a).run_differences(&but_the_peak(b)).is_empty() && same_rate(floor(a), floor(b))
}

/// The sweep of each row of `variants` among `sweep`'s runs: those whose experiment is the
/// row's but for the peak. A sweep's loss is its run's last validation during training (every
/// sweep run has one; not `eval`, which only some might). A sweep run that fits no row or two,
/// one without a last validation, or two runs of one row at one peak, is refused, named.
pub fn peaks(variants: &[Variant], sweep: &[RunData]) -> Result<Vec<Peak>> {
    let mut out: Vec<Peak> = vec![];
    for run in sweep {
        let rows: Vec<&Variant> = variants
            .iter()
            .filter(|v| same_but_the_peak(&v.first().experiment, &run.experiment))
            .collect();
        let row = match rows.as_slice() {
            [row] => row,
            [] => bail!(
                "{}: a sweep run of no row reported (its experiment, but for the peak learning \
                 rate and the seeds, is none of the runs')",
                run.dir.display()
            ),
            [a, b, ..] => bail!(
                "{}: a sweep run of two rows, {} and {} (their experiments differ only in name, \
                 peak or seeds): leave one out",
                run.dir.display(),
                a.name,
                b.name
            ),
        };
        let Some(loss) = run.summary.final_val_loss else {
            bail!(
                "{}: summary.json has no final_val_loss (a sweep run needs a validation at its \
                 end)",
                run.dir.display()
            );
        };
        let lr = run.experiment.train.lr;
        let peak = match out.iter_mut().find(|p| p.name == row.name) {
            Some(p) => p,
            None => {
                out.push(Peak {
                    name: row.name.clone(),
                    trained: row.first().experiment.train.lr,
                    sweep: vec![],
                });
                out.last_mut().expect("just pushed")
            }
        };
        if peak.sweep.iter().any(|(l, _)| same_rate(*l, lr)) {
            bail!(
                "{}: a second sweep run of {} at peak {lr:e}: each peak is counted once",
                run.dir.display(),
                row.name
            );
        }
        peak.sweep.push((lr, loss));
        peak.sweep.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    Ok(out)
}

/// `runs` as if every swept row had trained at its best peak: each run's loss lowered by its
/// row's gain ([`Peak::gain`]); rows without a sweep, or whose sweep misses their own peak,
/// unchanged.
pub fn at_best_peaks(runs: &[RunData], peaks: &[Peak]) -> Vec<RunData> {
    runs.iter()
        .map(|r| r.with_loss_lowered(gain_of(peaks, &r.name).unwrap_or(0.0)))
        .collect()
}

/// The gain of the row `name` ([`Peak::gain`]); `None` where it has no sweep, or none at its own
/// peak.
pub fn gain_of(peaks: &[Peak], name: &str) -> Option<f64> {
    peaks.iter().find(|p| p.name == name).and_then(Peak::gain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier(file: &str) -> Experiment {
        Experiment::load(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap()
    }

    fn at_peak(exp: &Experiment, lr: f64, name: &str) -> Experiment {
        let mut e = exp.clone();
        e.name = name.into();
        e.train.seed = None;
        e.train.lr = lr;
        e.train.min_lr = lr / 10.0;
        e
    }

    #[test]
    fn a_sweep_run_is_its_row_but_for_the_peak_and_the_seeds() {
        let mha = tier("experiments/tiny/mha.ron").with_training_seed(3);
        for lr in [2e-3, 4e-3, 8e-3, 3e-3, 7e-4] {
            let swept = at_peak(&mha, lr, "mha_tiny_lr");
            assert!(same_but_the_peak(&swept, &mha), "{lr}");
        }
        // Another floor, another schedule, another row: not the row's sweep.
        let mut floor = at_peak(&mha, 8e-3, "x");
        floor.train.min_lr = 4e-4;
        assert!(!same_but_the_peak(&floor, &mha));
        let mut steps = at_peak(&mha, 8e-3, "x");
        steps.train.max_steps += 1;
        assert!(!same_but_the_peak(&steps, &mha));
        let rope = tier("experiments/tiny/mha_rope.ron");
        assert!(!same_but_the_peak(&rope, &mha));
    }

    #[test]
    fn the_gain_is_the_sweeps_loss_at_the_rows_peak_less_its_best() {
        let p = Peak {
            name: "mha_tiny".into(),
            trained: 4e-3,
            sweep: vec![(2e-3, 0.5969), (4e-3, 0.5172), (8e-3, 0.5134)],
        };
        assert_eq!(p.best(), (8e-3, 0.5134));
        assert!(p.best_at_edge(), "8e-3 is the sweep's highest peak");
        assert!((p.gain().unwrap() - 0.0038).abs() < 1e-12);
        let inside = Peak {
            sweep: vec![(2e-3, 0.5969), (4e-3, 0.5172), (8e-3, 0.5234)],
            ..p.clone()
        };
        assert!(!inside.best_at_edge());
        // Trained at the best peak: no gain.
        let flat = Peak {
            trained: 8e-3,
            ..p.clone()
        };
        assert_eq!(flat.gain(), Some(0.0));
        // A sweep that misses the row's own peak says nothing of the gain.
        let missing = Peak { trained: 1e-3, ..p };
        assert_eq!(missing.gain(), None);
    }
}
