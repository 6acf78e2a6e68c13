//! `report.md`: the variants, the story probes, the judge and the claims, as Markdown tables.

use super::claims::findings;
use super::runs::{RunData, baseline, common_context, full_rank};
use crate::artifacts::records::{Share, Stat};
use crate::info::percent;

/// A Markdown table: the first `left` columns are left-aligned, the others right-aligned.
struct Table {
    head: Vec<String>,
    left: usize,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(head: &[&str], left: usize) -> Table {
        Table {
            head: head.iter().map(|h| h.to_string()).collect(),
            left,
            rows: vec![],
        }
    }

    fn render(&self) -> String {
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        let align: Vec<&str> = (0..self.head.len())
            .map(|i| if i < self.left { "---" } else { "---:" })
            .collect();
        let mut s = line(&self.head);
        s += &format!("|{}|\n", align.join("|"));
        for row in &self.rows {
            s += &line(row);
        }
        s
    }
}

fn or_dash(x: Option<String>) -> String {
    x.unwrap_or_else(|| "-".into())
}

fn variants(runs: &[RunData]) -> Table {
    let base = baseline(runs);
    let ctx = common_context(runs);
    let kv_head = format!("KV vs {}", base.name);
    let loss_head = format!("Δ loss vs {}", base.name);
    let decode_head = format!(
        "decode tok/s{}",
        ctx.map_or(String::new(), |c| format!(" @{c}"))
    );
    let mut t = Table::new(
        &[
            "experiment",
            "attention",
            "params",
            "KV B/token (f32)",
            &kv_head,
            "val loss",
            &loss_head,
            "unigram entropy",
            "train tok/s",
            &decode_head,
            "vs full rank",
        ],
        2,
    );
    for r in runs {
        let kv_change = 100.0 * (r.kv_bytes() as f64 / base.kv_bytes() as f64 - 1.0);
        let dl = match (r.val_loss(), base.val_loss()) {
            (Some(a), Some(b)) => Some(percent(100.0 * (a / b - 1.0))),
            _ => None,
        };
        let vs_full = match (ctx, full_rank(runs, r)) {
            (Some(c), Some(f)) => match (r.decode_at(c), f.decode_at(c)) {
                (Some(a), Some(b)) => Some(format!("{:.2}×", a / b)),
                _ => None,
            },
            _ => None,
        };
        let entropy = r
            .eval
            .as_ref()
            .map(|e| e.unigram_entropy)
            .unwrap_or(r.summary.val_unigram_entropy);
        t.rows.push(vec![
            r.name.clone(),
            r.label(),
            format!("{:.2}M", r.summary.params as f64 / 1e6),
            r.kv_bytes().to_string(),
            percent(kv_change),
            or_dash(r.val_loss().map(|v| format!("{v:.4}"))),
            or_dash(dl),
            format!("{entropy:.3}"),
            or_dash(r.summary.tokens_per_s.map(|v| format!("{v:.0}"))),
            or_dash(ctx.and_then(|c| r.decode_at(c)).map(|v| format!("{v:.1}"))),
            or_dash(vs_full),
        ]);
    }
    t
}

fn probes(runs: &[RunData]) -> Table {
    let mut t = Table::new(
        &[
            "experiment",
            "character consistency",
            "object consistency",
            "grammar proxy",
            "3-gram repetition",
            "distinct-2",
            "distinct-3",
            "words/continuation",
        ],
        1,
    );
    let share = |s: &Share| format!("{s:.2}");
    for r in runs {
        if let Some(p) = &r.probes {
            t.rows.push(vec![
                r.name.clone(),
                share(&p.character_consistency),
                share(&p.object_consistency),
                share(&p.grammar),
                share(&p.repetition_3gram),
                share(&p.distinct_2),
                share(&p.distinct_3),
                format!("{:.1}", p.mean_words),
            ]);
        }
    }
    t
}

fn judge(runs: &[RunData]) -> Table {
    let mut t = Table::new(
        &[
            "experiment",
            "judge",
            "stories",
            "grammar",
            "creativity",
            "consistency",
        ],
        2,
    );
    let stat = |x: &Stat| format!("{:.2} ± {:.2}", x.mean, x.sd);
    for r in runs {
        if let Some(j) = &r.judge {
            t.rows.push(vec![
                r.name.clone(),
                j.model.clone(),
                j.stories.to_string(),
                stat(&j.grammar),
                stat(&j.creativity),
                stat(&j.consistency),
            ]);
        }
    }
    t
}

fn claims(runs: &[RunData]) -> Table {
    let mut t = Table::new(
        &[
            "claim (Mehta et al., arXiv 2506.09342)",
            "measured here",
            "verdict",
        ],
        3,
    );
    for f in findings(runs) {
        t.rows
            .push(vec![f.claim.text(), f.measured, f.verdict.to_string()]);
    }
    t
}

/// The plots `report.md` shows, as (file stem, title).
pub const PLOTS: [(&str, &str); 3] = [
    ("val_loss", "Validation loss vs step"),
    ("pareto", "KV bytes per token vs validation loss"),
    ("decode_speed", "Decode tokens/s vs context (batch 1)"),
];

/// `report.md`.
pub fn markdown(runs: &[RunData], machine: &str) -> String {
    let mut s = format!(
        "# mla-lab report\n\n\
         {} runs; baseline `{}`. Machine: {machine}. Validation loss: `mla-lab eval` on the held-out split when present, else the last validation of training.\n\n",
        runs.len(),
        baseline(runs).name
    );
    s += "## Variants\n\n";
    s += &variants(runs).render();
    if runs.iter().any(|r| r.probes.is_some()) {
        s += "\n## Story probes (held-out synthetic stories, cut at the resolution)\n\n";
        s += &probes(runs).render();
    }
    if runs.iter().any(|r| r.judge.is_some()) {
        s += "\n## LLM judge (1-10, mean ± sd)\n\n";
        s += &judge(runs).render();
    }
    s += "\n## The paper's claims\n\n";
    s += &claims(runs).render();
    s += "\n## Plots\n\n";
    for (file, title) in PLOTS {
        s += &format!("![{title}]({file}.svg)\n\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_text_left_and_numbers_right() {
        let mut t = Table::new(&["name", "kind", "n"], 2);
        t.rows.push(vec!["a".into(), "b".into(), "1".into()]);
        assert_eq!(
            t.render(),
            "| name | kind | n |\n|---|---|---:|\n| a | b | 1 |\n"
        );
    }
}
