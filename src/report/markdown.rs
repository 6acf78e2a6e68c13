//! `report.md`: the variants, the story probes, the judge and the claims, as Markdown tables.

use super::claims::{findings, loss_changes};
use super::peaks::Peak;
use super::runs::{
    COPIED_AT, RunData, Variant, baseline, baselines, common_context, full_rank, speed_ratios,
    variants,
};
use super::stats::{Interval, Spread};
use crate::artifacts::records::{ProbeReport, Share, Stat};
use crate::info::percent;
use crate::table::Table;

mod best_peaks;
pub(crate) mod cells;
mod copying;

use best_peaks::peaks_section;
use cells::{mean_sd, or_dash, with_interval};
use copying::band_in_nats;
pub(crate) use copying::{copy_failures, failure_differences};

/// The paired change of validation loss against `base`, `mean (95% CI)` in percent.
fn loss_change(v: &Variant, base: &Variant) -> String {
    if v.name == base.name {
        return "(baseline)".into();
    }
    let d = v.loss_change(base);
    let Some(s) = Spread::of(&d) else {
        return "-".into();
    };
    match Interval::t(&d, 0.95) {
        Some(i) => format!("{} [{}, {}]", percent(s.mean), percent(i.lo), percent(i.hi)),
        None => percent(s.mean),
    }
}

/// Decode tokens/s at `c`: each run's median over its rounds, then mean ± sd over the seeds
/// whose bench did not begin under load (as far as the bench kept the machine's load).
fn decode(v: &Variant, c: Option<usize>) -> String {
    let Some(c) = c else { return "-".into() };
    mean_sd(&v.values(|r| r.decode_alone(c)), 1)
}

/// Decode speed over the full-rank peer's, paired by seed: the mean of the per-seed ratios with
/// its 95% t-interval, and the seeds ([`speed_ratios`]).
fn vs_full_rank(v: &Variant, variants: &[Variant], c: Option<usize>) -> String {
    let (Some(c), Some(full)) = (c, full_rank(variants, v)) else {
        return "-".into();
    };
    if v.name == full.name {
        return "(full rank)".into();
    }
    let ratios = speed_ratios(v, full, c);
    let Some(s) = Spread::of(&ratios) else {
        return "-".into();
    };
    match Interval::t(&ratios, 0.95) {
        Some(i) => format!("{:.2}× [{:.2}, {:.2}], n={}", s.mean, i.lo, i.hi, s.n),
        None => format!("{:.2}×, n=1", s.mean),
    }
}

/// The machine's load when each bench began, as far as the records say: which benches were
/// left out of the speed figures, and how many cannot be judged (benched before `bench.json`
/// kept the load).
fn bench_loads(runs: &[RunData], c: Option<usize>) -> String {
    let Some(c) = c else { return String::new() };
    let rows: Vec<(&RunData, &crate::artifacts::records::BenchRow)> = runs
        .iter()
        .filter_map(|r| Some((r, r.decode_row_at(c)?)))
        .collect();
    let loaded: Vec<&str> = rows
        .iter()
        .filter(|(_, b)| b.under_load())
        .map(|(r, _)| r.folder.as_str())
        .collect();
    let unknown = rows.iter().filter(|(_, b)| b.load_before.is_none()).count();
    let mut s = format!(
        "Decode speed at context {c}: tok/s over the seeds whose bench did not begin under load, \
         as far as each bench kept the machine's load (a bench made before that was kept cannot \
         be flagged: it may have shared the machine); *vs full rank* is full rank's ms/token over the row's, seed by seed (each \
         run's median over its bench's rounds), the mean with a 95% t-interval over the seeds \
         both rows benched. "
    );
    s += &match loaded.len() {
        0 => "No bench began under load. ".to_string(),
        _ => format!(
            "Left out, begun under load (a 1-minute load of half the CPU threads or more): {}. ",
            loaded.join(", ")
        ),
    };
    if unknown > 0 {
        s += &format!(
            "{unknown} of {} benches were made before `bench.json` kept the machine's load: \
             they cannot be flagged, and are counted as alone.",
            rows.len()
        );
    }
    s + "\n\n"
}

/// The load a run's bench began under: `0.31 of 2 threads`, flagged when it is a load.
fn load_text(r: &RunData, c: Option<usize>) -> String {
    let Some(b) = c.and_then(|c| r.decode_row_at(c)) else {
        return "-".into();
    };
    match (b.load_before, b.cpu_threads) {
        (Some(l), Some(t)) if b.under_load() => format!("{l:.2} of {t} threads: under load"),
        (Some(l), Some(t)) => format!("{l:.2} of {t} threads"),
        _ => "not recorded".into(),
    }
}

pub(crate) fn variants_table(runs: &[RunData]) -> Table {
    let variants = variants(runs);
    let base = baseline(runs);
    let bases = baselines(&variants);
    let ctx = common_context(runs);
    let kv_head = format!("KV vs {}", base.name);
    let decode_head = format!(
        "decode tok/s{}",
        ctx.map_or(String::new(), |c| format!(" @{c}"))
    );
    let loss_heads: Vec<String> = bases
        .iter()
        .map(|b| format!("Δ loss vs {} [95% CI]", b.name))
        .collect();
    let mut head = vec![
        "experiment",
        "attention",
        "params",
        "KV B/token (f32)",
        &kv_head,
        "seeds",
        "tokens seen",
        "val loss",
        "excess loss",
    ];
    head.extend(loss_heads.iter().map(String::as_str));
    head.extend([
        "unigram entropy",
        "train tok/s",
        &decode_head,
        "vs full rank",
    ]);
    let mut t = Table::new(&head, 2);
    for v in &variants {
        let r = v.first();
        let kv_change = 100.0 * (r.kv_bytes() as f64 / base.kv_bytes() as f64 - 1.0);
        let entropy = r
            .eval
            .as_ref()
            .map(|e| e.unigram_entropy)
            .unwrap_or(r.summary.val_unigram_entropy);
        let beyond = r.experiment.model.attention.beyond_the_paper();
        let mut row = vec![
            v.name.clone(),
            r.label() + if beyond { " (beyond the paper)" } else { "" },
            format!("{:.2}M", r.summary.params as f64 / 1e6),
            r.kv_bytes().to_string(),
            percent(kv_change),
            v.runs.len().to_string(),
            format!("{:.2}M", r.summary.tokens_seen as f64 / 1e6),
            mean_sd(&v.values(RunData::val_loss), 4),
            mean_sd(&v.values(RunData::excess_loss), 4),
        ];
        row.extend(bases.iter().map(|b| loss_change(v, b)));
        row.extend([
            format!("{entropy:.3}"),
            mean_sd(&v.values(|r| r.summary.tokens_per_s), 0),
            decode(v, ctx),
            vs_full_rank(v, &variants, ctx),
        ]);
        t.rows.push(row);
    }
    t
}

fn seeds_table(runs: &[RunData]) -> Table {
    let ctx = common_context(runs);
    let decode_head = format!(
        "decode tok/s{}",
        ctx.map_or(String::new(), |c| format!(" @{c}"))
    );
    let mut t = Table::new(
        &[
            "run",
            "experiment",
            "seed",
            "val loss",
            "excess loss",
            "scored tokens",
            "story score",
            &decode_head,
            "load at bench",
        ],
        2,
    );
    for r in runs {
        t.rows.push(vec![
            r.folder.clone(),
            r.name.clone(),
            r.seed.to_string(),
            or_dash(r.val_loss().map(|v| format!("{v:.4}"))),
            or_dash(r.excess_loss().map(|v| format!("{v:.4}"))),
            or_dash(r.eval.as_ref().map(|e| e.tokens.to_string())),
            or_dash(r.story_score().map(|v| format!("{v:.3}"))),
            or_dash(ctx.and_then(|c| r.decode_at(c)).map(|v| format!("{v:.1}"))),
            load_text(r, ctx),
        ]);
    }
    t
}

fn probes(runs: &[RunData]) -> Table {
    let mut t = Table::new(
        &[
            "experiment",
            "seeds",
            "character consistency",
            "object consistency",
            "attribute consistency",
            "grammar proxy",
            "3-gram repetition",
            "distinct-2",
            "distinct-3",
            "story score",
            "words/continuation",
        ],
        1,
    );
    for v in variants(runs) {
        let share = |f: fn(&ProbeReport) -> Share| {
            mean_sd(&v.values(|r| r.probes.as_ref().map(|p| f(p).value)), 2)
        };
        if v.runs.iter().all(|r| r.probes.is_none()) {
            continue;
        }
        t.rows.push(vec![
            v.name.clone(),
            v.runs.len().to_string(),
            share(|p| p.character_consistency),
            share(|p| p.object_consistency),
            mean_sd(
                &v.values(|r| Some(r.probes.as_ref()?.attribute_consistency?.value)),
                2,
            ),
            share(|p| p.grammar),
            share(|p| p.repetition_3gram),
            share(|p| p.distinct_2),
            share(|p| p.distinct_3),
            mean_sd(&v.values(RunData::story_score), 3),
            mean_sd(&v.values(|r| r.probes.as_ref().map(|p| p.mean_words)), 1),
        ]);
    }
    t
}

fn judge(runs: &[RunData]) -> Table {
    let mut t = Table::new(
        &[
            "run",
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
                r.folder.clone(),
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
            "baseline",
            "measured here",
            "band that agrees",
            "verdict",
            "power (the equivalence rule's, or a one-sided test's)",
        ],
        6,
    );
    for f in findings(runs) {
        t.rows.push(vec![
            f.claim.statement.to_string(),
            f.baseline.clone().unwrap_or_else(|| "-".into()),
            f.measured(),
            f.claim.band_text(),
            f.verdict_text(),
            f.power_text().unwrap_or_else(|| "-".into()),
        ]);
    }
    t
}

pub(crate) fn loss_change_table(runs: &[RunData]) -> Table {
    let mut t = Table::new(
        &[
            "change of validation loss",
            "% of raw loss [95% CI]",
            "nats [95% CI]",
            "% of excess loss [95% CI]",
            "seeds",
        ],
        1,
    );
    for c in loss_changes(runs) {
        t.rows.push(vec![
            c.compared.clone(),
            with_interval(&c.raw_percent, 2, "%"),
            with_interval(&c.nats, 4, ""),
            with_interval(&c.excess_percent, 1, "%"),
            c.raw_percent.len().to_string(),
        ]);
    }
    t
}

/// The plots `report.md` shows, as (file stem, title).
pub const PLOTS: [(&str, &str); 4] = [
    ("val_loss", "Training's validation loss by step"),
    (
        "loss_change_vs_",
        "Change of eval loss against a baseline, paired by seed",
    ),
    ("pareto", "KV bytes per token against eval loss"),
    (
        "decode_speed",
        "Decode speed over the full-rank row's, paired by seed",
    ),
];

/// Which initial weights rows share under one seed, by how the runs drew them (their
/// summaries' `initialisation`).
fn shared_draws(runs: &[RunData]) -> &'static str {
    let drawn_by_path = runs
        .iter()
        .filter(|r| r.summary.initialisation.is_some())
        .count();
    if drawn_by_path == runs.len() {
        "Under one training seed, rows start from the same draws for every weight they both \
         have (the same path in the model and the same shape): mla-lab draws each weight from a \
         stream keyed by the seed and its path, the same on every backend. MHA and MLA share \
         their embeddings and MLPs; MHA with learned positions and with RoPE differ only by the \
         position table."
    } else if drawn_by_path == 0 {
        "Under one training seed, rows start from the same draws wherever their parameters line \
         up: burn draws them lazily from one seeded stream in model order, so rows whose \
         attention layers draw as many weights (MHA and MLA at r = d/2 without RoPE) share their \
         embeddings and MLP weights, and all rows share their token embeddings."
    } else {
        "The runs drew their initial weights two ways (their summaries' `initialisation`): by \
         mla-lab's streams keyed by each weight's path, where rows share every weight they both \
         have, and, in runs that do not record it, from the backend's one seeded stream in model \
         order, where rows share what lines up in that order (their token embeddings at least). \
         Two runs are paired by seed only when they drew their weights the same way, a rule \
         fixed before any comparison: a run drawn the other way has no partner, and its changes \
         of loss are left out (a `-`) rather than paired with a run of other random numbers."
    }
}

/// `report.md`.
pub fn markdown(runs: &[RunData], peaks: &[Peak], machine: &str, plotted: &[&str]) -> String {
    let mut seeds: Vec<u64> = runs.iter().map(|r| r.seed).collect();
    seeds.sort_unstable();
    seeds.dedup();
    let mut backends: Vec<&str> = runs.iter().map(|r| r.summary.backend.as_str()).collect();
    backends.sort_unstable();
    backends.dedup();
    let mut s = format!(
        "# mla-lab report\n\n\
         {} runs of {} experiments, training seeds {:?}; baseline `{}`. Machine: {machine}; trained on {}.\n\n\
         Validation loss: `mla-lab eval` over the whole held-out split when present (windows \
         every context/2 tokens, each token scored once), else the last validation of training. \
         Runs of one experiment share the data seed (split, tokenizer, validation set) and differ \
         in the training seed (initial weights, window order); a change of loss is taken seed by \
         seed, as a percentage of the baseline's raw loss, with a 95% t-interval over the seeds. \
         {} This is kept, as common random numbers for the paired changes: a seed that fails for \
         both rows of a pair is one event, not two.\n\n",
        runs.len(),
        variants(runs).len(),
        seeds,
        baseline(runs).name,
        backends.join(", "),
        shared_draws(runs)
    );
    let floors: Vec<f64> = runs.iter().filter_map(|r| r.floor).collect();
    if let Some(f) = floors.first() {
        s += &format!(
            "Entropy floor of the held-out split: {f:.4} nats/token, the entropy the story \
             generator's draws put into those stories over their tokens (a lower bound: draws the \
             text does not show are left out), below which no model's expected loss can go. \
             *Excess loss* is the validation loss above it. Verdicts use the change of raw loss, as \
             the paper does; the excess shows how far each model still is from the corpus.\n\n"
        );
    }
    s += "## Variants (mean ± sd over seeds)\n\n";
    s += &variants_table(runs).render();
    s += "\n";
    s += &bench_loads(runs, common_context(runs));
    s += "## Runs\n\n";
    s += &seeds_table(runs).render();
    if runs.iter().any(|r| r.probes.is_some()) {
        s += "\n## Story probes (held-out synthetic stories, cut at the resolution; mean ± sd over seeds)\n\n";
        s += &probes(runs).render();
    }
    if runs.iter().any(|r| r.judge.is_some()) {
        s += "\n## LLM judge (1-10, mean ± sd)\n\n";
        s += &judge(runs).render();
    }
    s += &samples(runs);
    s += "\n## The paper's claims\n\n";
    s += &format!(
        "Each claim is judged on its measurement across seeds against the band of values that \
         agrees with it: {} The KV cut is a formula, exact. The speed claim's unit is the run: \
         each run's median over its interleaved bench rounds, paired by seed; measured on other \
         hardware than the paper's, a speed that would contradict it is *not reproduced here*. \
         *Power*: for a bounded band, the seeds at which the equivalence rule holds with 80% \
         probability were the true change the paper's figure (the band's middle) or the mean \
         observed here, with the observed sd and with the sd at its 90% upper limit, and the \
         probability it holds with the seeds run; for a band open on one side, the same for a \
         one-sided test at 5%. Exact up to quadrature over the sample sd (checked against a \
         simulation of the rule in the tests). A plan for the next seeds, not a verdict.\n\n",
        super::stats::RULE
    );
    s += &claims(runs).render();
    s += &band_in_nats(runs);
    let failures = copy_failures(runs);
    if !failures.rows.is_empty() {
        s += &format!(
            "\n### Copying the story's attribute\n\n\
             A run copies the attribute of a story's object (\"the red kite\", not \"the green \
             kite\") when its attribute consistency is at least {COPIED_AT}; the share is near 0 \
             or near 1 per run. How often runs fail, with the exact 95% interval of the rate:\n\n"
        );
        s += &failures.render();
        s += &failure_differences(runs);
    }
    let pairing = super::pairing::table(runs);
    if !pairing.rows.is_empty() {
        s += "\n### How much pairing by seed buys\n\n\
              Each row against each baseline over the seeds both ran: the seed-paired \
              correlation of their validation losses ρ (95% Fisher-z interval), the sd of the \
              paired change (percent of the baseline's loss) with its 90% upper limit, and the \
              paired variance over what independent seeds would give, var(a − b) / (var(a) + \
              var(b)), with its 95% bootstrap interval over seeds. Below 1, pairing saves seeds \
              in proportion; above 1, it costs them.\n\n";
        s += &pairing.render();
    }
    let changes = loss_change_table(runs);
    if !changes.rows.is_empty() {
        s += "\n### Changes of validation loss in three units\n\n\
              Seed by seed against each baseline: as a percentage of the baseline's raw loss (the \
              paper's unit, which the bands above use), in nats, and as a percentage of the \
              baseline's loss above the entropy floor (how much of what is left to learn).\n\n";
        s += &changes.render();
    }
    s += &peaks_section(runs, peaks);
    // In PLOTS' order; a stem ending in `_` names a family (one plot per baseline).
    let drawn: Vec<(&str, &str)> = PLOTS
        .iter()
        .flat_map(|(stem, title)| {
            plotted
                .iter()
                .filter(move |f| **f == *stem || (stem.ends_with('_') && f.starts_with(stem)))
                .map(move |f| (*f, *title))
        })
        .collect();
    if !drawn.is_empty() {
        s += "\n## Plots\n\n";
    }
    for (file, title) in drawn {
        s += &format!("![{title}]({file}.svg)\n\n");
    }
    s
}

/// The continuations of the fixed prompts by the variants with the lowest and the highest
/// mean validation loss (their first seed's run), quoted; empty when no run has samples.
fn samples(runs: &[RunData]) -> String {
    let mut ranked: Vec<(f64, Variant)> = variants(runs)
        .into_iter()
        .filter(|v| !v.first().samples.is_empty())
        .filter_map(|v| Some((Spread::of(&v.values(RunData::val_loss))?.mean, v)))
        .collect();
    if ranked.len() < 2 {
        return String::new();
    }
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut s = "\n## Samples (the best and the worst variant by validation loss)\n\n".to_string();
    let first = ranked.first().unwrap();
    let last = ranked.last().unwrap();
    for (what, (loss, v)) in [("best", first), ("worst", last)] {
        let run = v.first();
        s += &format!(
            "**{}** ({what}, validation loss {loss:.4}; run `{}`):\n\n",
            v.name, run.folder
        );
        for sample in &run.samples {
            let text = format!("{}{}", sample.prompt, sample.text);
            let quoted: Vec<String> = text.lines().map(|l| format!("> {l}")).collect();
            s += &format!(
                "Seed {}, temperature {}:\n\n{}\n\n",
                sample.seed,
                sample.temperature,
                quoted.join("\n")
            );
        }
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
