//! The report's copying section: how often each variant copied its prompt, and how the
//! variants' failures differ, with intervals.

use super::cells::share;
use crate::report::runs::{RunData, baselines, variants};
use crate::report::stats::{Spread, clopper_pearson, mcnemar_exact};
use crate::table::Table;

/// How often each variant's runs fail to copy a story's attribute, with the 95% Clopper–Pearson
/// interval of the rate.
pub(crate) fn copy_failures(runs: &[RunData]) -> Table {
    let mut t = Table::new(
        &[
            "experiment",
            "positions",
            "runs probed",
            "failed to copy",
            "failure rate [95% Clopper–Pearson]",
        ],
        2,
    );
    for v in variants(runs) {
        let copied: Vec<bool> = v.runs.iter().filter_map(|r| r.copied()).collect();
        let failed = copied.iter().filter(|c| !**c).count();
        let Some((lo, hi)) = clopper_pearson(failed, copied.len(), 0.95) else {
            continue;
        };
        let positions = match v.first().experiment.model.positions {
            crate::model::Positions::Learned => "learned",
            crate::model::Positions::Rope(_) => "RoPE",
        };
        t.rows.push(vec![
            v.name.clone(),
            positions.into(),
            copied.len().to_string(),
            failed.to_string(),
            format!(
                "{} [{}, {}]",
                share(failed as f64 / copied.len() as f64),
                share(lo),
                share(hi)
            ),
        ]);
    }
    t
}

/// What the "+0.3%" band's ±1 point of raw loss is worth against each baseline: in nats, and as
/// a share of the baseline's loss above the entropy floor (where the floor is known).
pub(super) fn band_in_nats(runs: &[RunData]) -> String {
    let variants = variants(runs);
    let floor = runs.iter().find_map(|r| r.floor);
    let mut s = String::new();
    for base in baselines(&variants) {
        let losses: Vec<f64> = base.runs.iter().filter_map(|r| r.val_loss()).collect();
        let Some(mean) = Spread::of(&losses).map(|sp| sp.mean) else {
            continue;
        };
        let point = mean / 100.0;
        let excess = floor
            .filter(|&f| mean > f)
            .map(|f| {
                format!(
                    ", {:.1}% of its {:.4} nats above the entropy floor",
                    100.0 * point / (mean - f),
                    mean - f
                )
            })
            .unwrap_or_default();
        s += &format!(
            "\nOne point of the \"+0.3%\" band against {} (mean loss {mean:.4}) is \
             {point:.4} nats{excess}.\n",
            base.name
        );
    }
    s
}

/// Between every two rows with learned positions, seed by seed: how often each failed to copy,
/// and McNemar's exact test on the seeds where only one of the two failed (the runs are paired
/// by seed, so their outcomes are not two independent samples).
pub(crate) fn failure_differences(runs: &[RunData]) -> String {
    let learned: Vec<_> = variants(runs)
        .into_iter()
        .filter(|v| v.first().experiment.model.positions == crate::model::Positions::Learned)
        .collect();
    let mut s = String::new();
    for (i, a) in learned.iter().enumerate() {
        for b in &learned[i + 1..] {
            // (a failed, b failed) for each seed both rows probed.
            let pairs: Vec<(bool, bool)> = a
                .runs
                .iter()
                .filter_map(|ra| {
                    let rb = b.runs.iter().find(|rb| rb.seed == ra.seed)?;
                    Some((!ra.copied()?, !rb.copied()?))
                })
                .collect();
            if pairs.len() < 5 {
                continue;
            }
            let count = |f: &dyn Fn(&(bool, bool)) -> bool| pairs.iter().filter(|p| f(p)).count();
            let (ka, kb) = (count(&|p| p.0), count(&|p| p.1));
            let (only_a, only_b) = (count(&|p| p.0 && !p.1), count(&|p| p.1 && !p.0));
            let p = mcnemar_exact(only_a, only_b);
            s += &format!(
                "\n{} against {}, paired by seed ({} seeds both probed): {kb} failed against \
                 {ka}; {only_b} seeds where only {} failed, {only_a} where only {} did; \
                 McNemar's exact test, two-sided: p = {p:.2}{}.\n",
                b.name,
                a.name,
                pairs.len(),
                b.name,
                a.name,
                if p < 0.05 {
                    ""
                } else {
                    " (no difference shown at these counts)"
                }
            );
        }
    }
    s
}
