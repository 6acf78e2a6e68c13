//! The report's learning-rate section: each row's best peak in the sweep, and the loss claims
//! judged again at those peaks.

use super::cells::or_dash;
use crate::report::claims::{LOSS_COST, NO_ROPE_COST, NO_ROPE_WORSE, ROPE_GAIN, findings};
use crate::report::peaks::{Peak, at_best_peaks, gain_of};
use crate::report::runs::RunData;
use crate::table::Table;

/// The swept rows' peaks: where each trained, the sweep's losses, its best peak and the gain.
pub(super) fn peaks_table(peaks: &[Peak]) -> Table {
    let mut t = Table::new(
        &[
            "experiment",
            "trained at",
            "sweep: last validation loss at each peak",
            "best peak in the sweep",
            "gain at the best peak (nats)",
        ],
        1,
    );
    for p in peaks {
        let sweep: Vec<String> = p
            .sweep
            .iter()
            .map(|(lr, loss)| format!("{lr:e}: {loss:.4}"))
            .collect();
        t.rows.push(vec![
            p.name.clone(),
            format!("{:e}", p.trained),
            sweep.join(", "),
            format!(
                "{:e}{}",
                p.best().0,
                if p.best_at_edge() { " (its edge)" } else { "" }
            ),
            or_dash(p.gain().map(|g| format!("{g:.4}"))),
        ]);
    }
    t
}

/// The loss claims judged at the common peak and again as if every swept row had trained at
/// its best peak ([`at_best_peaks`]), side by side; with the number of verdicts that change.
pub(super) fn peak_verdicts(runs: &[RunData], peaks: &[Peak]) -> (Table, usize) {
    let mut t = Table::new(
        &[
            "claim",
            "baseline",
            "verdict at the common peak",
            "measured at each row's best peak",
            "verdict at each row's best peak",
            "not swept (at their trained peak)",
        ],
        6,
    );
    let shifted = at_best_peaks(runs, peaks);
    let mut changed = 0;
    let loss_claim = |f: &crate::report::claims::Finding| {
        [LOSS_COST, NO_ROPE_WORSE, NO_ROPE_COST, ROPE_GAIN].contains(&f.claim)
            && !f.values.is_empty()
    };
    let common = findings(runs).into_iter().filter(loss_claim);
    for (f, g) in common.zip(findings(&shifted).into_iter().filter(loss_claim)) {
        changed += usize::from(f.verdict != g.verdict);
        let unswept: Vec<&str> = [&g.subject, &g.baseline]
            .into_iter()
            .flatten()
            .filter(|name| gain_of(peaks, name).is_none())
            .map(String::as_str)
            .collect();
        t.rows.push(vec![
            f.claim.statement.to_string(),
            f.baseline.clone().unwrap_or_else(|| "-".into()),
            f.verdict_text(),
            g.measured(),
            g.verdict_text(),
            or_dash((!unswept.is_empty()).then(|| unswept.join(", "))),
        ]);
    }
    (t, changed)
}

/// The section on the peak learning rate: empty without a sweep.
pub(super) fn peaks_section(runs: &[RunData], peaks: &[Peak]) -> String {
    if peaks.is_empty() {
        return String::new();
    }
    let (verdicts, changed) = peak_verdicts(runs, peaks);
    let mut s = "\n### The peak learning rate: the common peak against each row's best\n\n\
         Every verdict above is at the peak learning rate the runs trained at. A sweep of the \
         peak (the row's experiment at its own peak and at others, the same schedule, one seed \
         each) places each swept row's best. Below, the loss claims are judged again as if \
         every swept row had trained at its best peak: each of its runs' loss lowered by the \
         row's gain, the sweep's loss at the trained peak less its loss at the best. One seed \
         per peak makes a gain an estimate no finer than the seeds' spread; it is applied to \
         every seed alike, and its own error is not in the intervals. A row without a gain (no \
         sweep, or none at its own peak) keeps its losses; as a gain is never negative, its \
         change against a baseline at its best is at most the one shown where it is measured, \
         at least the one shown where it is the baseline."
        .to_string();
    s += "\n\n";
    s += &peaks_table(peaks).render();
    s += "\n";
    s += &verdicts.render();
    s += &match changed {
        0 => "\nNo verdict changes between the common peak and each row's best.\n".to_string(),
        1 => "\nOne verdict changes between the common peak and each row's best.\n".to_string(),
        n => format!("\n{n} verdicts change between the common peak and each row's best.\n"),
    };
    s
}
