//! The sections other pages carry (`report --splice`): the short variants table and its rows
//! the claims compare, the verdict lines, the units table and the copying section.

use super::claims::findings;
use super::conversion::{self, summary_lines};
use super::markdown::{copy_failures, failure_differences, loss_change_table, variants_table};
use super::runs::RunData;
use crate::table::Table;

/// The parts of the report that other documents carry, by name, for `mla-lab report --splice`
/// ([`super::splice`]): `variants` (the loss table, short), `headline` (its rows that the claims
/// compare), `verdicts` (one line per claim and baseline), `units` (the claims' changes in three
/// units), `copying` (the failures to copy and their difference), `conversion` (the converted
/// runs' tables, [`super::conversion`]; empty without them) and `conversion-summary` (a line
/// per conversion).
pub fn sections(runs: &[RunData], converted: &[RunData]) -> Vec<(&'static str, String)> {
    let mut copying = copy_failures(runs).render();
    copying += &failure_differences(runs);
    vec![
        ("variants", short_variants_table(runs).render()),
        ("headline", headline_table(runs).render()),
        ("verdicts", verdict_lines(runs)),
        ("units", loss_change_table(runs).render()),
        ("copying", copying),
        ("conversion", conversion::tables(converted, runs)),
        ("conversion-summary", summary_lines(converted, runs)),
    ]
}

/// The variants table ([`variants_table`]) without its tokens, excess, entropy and speed
/// columns, for the pages that carry it: the same cells, fewer of them, headed for a page.
pub(super) fn short_variants_table(runs: &[RunData]) -> Table {
    let full = variants_table(runs);
    // (column of the full table, its head on a page); the loss changes keep theirs, shortened.
    let mut keep: Vec<(usize, String)> = vec![];
    for (i, head) in full.head.iter().enumerate() {
        let short = match head.as_str() {
            "experiment" | "attention" | "params" | "seeds" => head.clone(),
            "KV B/token (f32)" => "KV B/token".into(),
            "val loss" => "val loss (mean ± sd)".into(),
            h if h.starts_with("KV vs ") => head.clone(),
            h if h.starts_with("Δ loss vs ") => h.replacen("Δ loss vs ", "Δ vs ", 1),
            _ => continue,
        };
        keep.push((i, short));
    }
    let head: Vec<&str> = keep.iter().map(|(_, h)| h.as_str()).collect();
    let mut t = Table::new(&head, 2);
    for row in &full.rows {
        let mut cells: Vec<String> = keep.iter().map(|(i, _)| row[*i].clone()).collect();
        cells[0] = format!("`{}`", cells[0]);
        t.rows.push(cells);
    }
    t
}

/// The short variants table's rows that a claim compares, as subject or baseline: the
/// paper's headline comparison, for a page's first screen.
fn headline_table(runs: &[RunData]) -> Table {
    let compared: Vec<String> = findings(runs)
        .into_iter()
        .flat_map(|f| [f.subject, f.baseline])
        .flatten()
        .map(|name| format!("`{name}`"))
        .collect();
    let mut t = short_variants_table(runs);
    t.rows.retain(|row| compared.contains(&row[0]));
    t
}

/// One line per claim and baseline, the paper's baseline (MHA without RoPE) first and named as
/// such: the verdict, what was measured, the band and the power.
pub(super) fn verdict_lines(runs: &[RunData]) -> String {
    let mut s = String::new();
    let paper: Vec<String> = runs
        .iter()
        .filter(|r| super::runs::is_paper_baseline(&r.experiment.model))
        .map(|r| r.name.clone())
        .collect();
    for f in findings(runs) {
        let against = f.baseline.as_ref().map_or(String::new(), |b| {
            if paper.contains(b) {
                format!(" against `{b}` (the paper's baseline: MHA without RoPE)")
            } else {
                format!(" against `{b}` (our stronger control, not the paper's baseline)")
            }
        });
        s += &format!(
            "- **{}**{against}: **{}**. {}; the band that agrees: {}.",
            f.claim.statement,
            f.verdict_text(),
            f.measured(),
            f.claim.band_text()
        );
        if let Some(p) = f.power_text() {
            s += &format!(" Power: {p}.");
        }
        s += "\n";
    }
    s
}
