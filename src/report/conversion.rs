//! Runs fine-tuned from a conversion (`mla-lab convert`, beyond the paper): what converting a
//! trained MHA model cost before fine-tuning, what the fine-tune recovered, and how far the
//! result is from MLA trained from scratch on the tier's whole budget.
//!
//! The conversion's cost is paired by seed (a converted run and its source, scored on the same
//! windows: `conversion_eval.json`), and so is the fine-tune's change against the source. Runs
//! trained from scratch drew their weights independently of the converted ones, so that gap is
//! a difference of two independent means, with Welch's interval.

use super::markdown::cells::{mean_sd, or_dash, with_interval};
use super::plots::{Point, Series};
use super::runs::{RunData, Variant, variants};
use super::stats::{Interval, Spread};
use crate::model::attention::MlaConfig;
use crate::model::{AttentionConfig, GptConfig, LatentLayout};
use crate::table::Table;

/// The converted rows' tables, headed and explained; empty without converted runs.
/// `scratch`: the runs trained from drawn weights that the fine-tuned ones are compared with.
pub fn section(converted: &[RunData], scratch: &[RunData]) -> String {
    if converted.is_empty() {
        return String::new();
    }
    format!(
        "## Converted from MHA (beyond the paper)\n\n\
         A trained MHA run made into MLA by `mla-lab convert` (docs/convert.md), then \
         fine-tuned for its experiment's steps. Losses are on the validation split, the \
         source and the converted weights on the same windows before any fine-tuning; Δs \
         against the source are paired by seed, with 95% t-intervals; the gaps to runs \
         trained from scratch are differences of independent means, with Welch's 95% \
         interval.\n\n{}",
        tables(converted, scratch)
    )
}

/// The cost table, the fine-tune table and what going without the latent norm costs, as the
/// report and the pages carry them; empty without converted runs.
pub fn tables(converted: &[RunData], scratch: &[RunData]) -> String {
    if converted.is_empty() {
        return String::new();
    }
    format!(
        "{}\n{}\n{}",
        cost_table(converted).render(),
        fine_tune_table(converted, scratch).render(),
        norm_text(scratch)
    )
}

/// One line per conversion (controls aside), for a page's first screen: the cache it saves,
/// what converting cost, and where the fine-tune left it against its control and against the
/// same MLA from scratch; cells of [`cost_table`] and [`fine_tune_table`].
pub fn summary_lines(converted: &[RunData], scratch: &[RunData]) -> String {
    let (cost, fine) = (cost_table(converted), fine_tune_table(converted, scratch));
    let controls = variants(converted)
        .iter()
        .map(is_control)
        .collect::<Vec<_>>();
    let mut s = String::new();
    for ((c, f), control) in cost.rows.iter().zip(&fine.rows).zip(controls) {
        if control {
            continue;
        }
        s += &format!(
            "- {} ({}, {} seeds): a {} smaller cache; right after conversion {} nats against \
             the source; after {} fine-tune steps {} against the source fine-tuned alike, and \
             {} against the same MLA trained from scratch with its latent norm.\n",
            c[0], c[1], c[2], c[4], c[9], f[1], f[4], f[5]
        );
    }
    s
}

/// Whether the converted runs of `v` are a control: the source's own model, unchanged.
fn is_control(v: &Variant) -> bool {
    v.first().experiment.model == source_model(v.first())
}

/// What going without the latent norm costs MLA trained from scratch: each unnormed MLA row
/// against the same model with the norm, as a table headed by a line; empty where no unnormed
/// row was trained from scratch.
pub fn norm_text(scratch: &[RunData]) -> String {
    let scratch = variants(scratch);
    let mut t = Table::new(
        &["from scratch", "against", "Δ loss (Welch's 95% interval)"],
        2,
    );
    for v in &scratch {
        let model = &v.first().experiment.model;
        let unnormed = matches!(model.attention, AttentionConfig::Mla(m) if !m.latent_norm);
        let twin = from_scratch(&scratch, |m| *m == normed(model));
        if let (true, Some(twin)) = (unnormed, twin) {
            let losses = v.values(|r| r.eval.as_ref().map(|e| e.loss));
            t.rows.push(vec![
                format!("`{}`", v.name),
                format!("`{}`", twin.name),
                gap(&losses, Some(twin)),
            ]);
        }
    }
    if t.rows.is_empty() {
        return String::new();
    }
    format!(
        "What going without the latent norm costs MLA trained from scratch on the tier's whole \
         budget (a converted model must go without it):\n\n{}",
        t.render()
    )
}

/// Per converted experiment: its cache against its source's, the energy its factors keep,
/// the loss of the source and of the converted weights, and the conversion's cost.
pub fn cost_table(converted: &[RunData]) -> Table {
    let mut t = Table::new(
        &[
            "experiment",
            "from → to",
            "seeds",
            "KV B/token",
            "cache saved",
            "energy kept",
            "kept rotated",
            "source loss",
            "converted loss",
            "Δ converted − source",
        ],
        3,
    );
    for v in variants(converted) {
        let first = v.first();
        let kv = first.kv_bytes();
        let source_kv = source_model(first).kv_bytes_per_token(burn::tensor::DType::F32);
        let mean_of = |per_run: fn(&RunData) -> Vec<f64>| {
            let all: Vec<f64> = v.runs.iter().flat_map(|r| per_run(r)).collect();
            Spread::of(&all).map(|s| format!("{:.4}", s.mean))
        };
        let cost = |r: &RunData| r.converted.as_ref()?.1.clone();
        let source: Vec<f64> = v.values(|r| Some(cost(r)?.source.loss));
        let after: Vec<f64> = v.values(|r| Some(cost(r)?.converted.loss));
        let change: Vec<f64> = v.values(|r| cost(r).map(|c| c.converted.loss - c.source.loss));
        t.rows.push(vec![
            format!("`{}`", v.name),
            format!("{} → {}", source_model(first).label(), first.label()),
            v.runs.len().to_string(),
            kv.to_string(),
            format!("{:.1}%", 100.0 * (1.0 - kv as f64 / source_kv as f64)),
            or_dash(mean_of(|r| energy(r, |c| &c.energy))),
            or_dash(mean_of(|r| energy(r, |c| &c.rotary))),
            mean_sd(&source, 4),
            mean_sd(&after, 4),
            with_interval(&change, 4, ""),
        ]);
    }
    t
}

/// Per converted experiment: the loss after fine-tuning, its change against the source and
/// against its control (the source fine-tuned alike), both paired by seed, and its gap to the
/// same model (latent norm on) and to MLA+RoPE at r = d/2, trained from scratch.
pub fn fine_tune_table(converted: &[RunData], scratch: &[RunData]) -> Table {
    let mut t = Table::new(
        &[
            "experiment",
            "fine-tune steps",
            "fine-tuned loss",
            "Δ fine-tuned − source",
            "vs the source fine-tuned alike",
            "vs the same model from scratch",
            "vs MLA+RoPE r=d/2 from scratch",
        ],
        2,
    );
    let scratch = variants(scratch);
    let all = variants(converted);
    for v in &all {
        let first = v.first();
        let fine: Vec<f64> = v.values(|r| r.eval.as_ref().map(|e| e.loss));
        let change: Vec<f64> = v.values(|r| {
            Some(r.eval.as_ref()?.loss - r.converted.as_ref()?.1.as_ref()?.source.loss)
        });
        let target = first.experiment.model.clone();
        let same = from_scratch(&scratch, |m| *m == normed(&target));
        let rope_half = from_scratch(&scratch, |m| is_rope_half(m, &target));
        let control = all.iter().find(|c| {
            is_control(c) && !is_control(v) && c.first().experiment.model == source_model(first)
        });
        let against_control = control.map_or("-".into(), |c| {
            let pairs = same_source(v, c);
            let diffs: Vec<f64> = pairs.iter().map(|(a, b)| a - b).collect();
            format!("{} (`{}`)", with_interval(&diffs, 4, ""), c.name)
        });
        t.rows.push(vec![
            format!("`{}`", v.name),
            first.summary.steps.to_string(),
            mean_sd(&fine, 4),
            with_interval(&change, 4, ""),
            against_control,
            gap(&fine, same),
            gap(&fine, rope_half),
        ]);
    }
    t
}

/// The fine-tuned losses of `a` and `b`, run by run where both were made from the same source
/// run (the same seed's): the pairs a control is compared in.
fn same_source(a: &Variant, b: &Variant) -> Vec<(f64, f64)> {
    let source = |r: &RunData| r.converted.as_ref().map(|(c, _)| c.source.clone());
    a.runs
        .iter()
        .filter_map(|r| {
            let o = b
                .runs
                .iter()
                .find(|o| o.seed == r.seed && source(o) == source(r))?;
            Some((r.eval.as_ref()?.loss, o.eval.as_ref()?.loss))
        })
        .collect()
}

/// Training's periodic validation loss against the fine-tune's step, one series per converted
/// run, in the order given: what the fine-tune recovers, step by step.
pub fn curves(converted: &[RunData]) -> Series {
    converted
        .iter()
        .map(|r| {
            let points = r
                .val_curve
                .iter()
                .map(|&(step, loss)| Point::at(step as f64, loss))
                .collect();
            (format!("{} s{}", r.name, r.seed), points)
        })
        .collect()
}

/// The model a converted run was converted from: MHA with one key/value head per query head
/// and the same positions ([`crate::model::convert::check`] allows no other).
fn source_model(run: &RunData) -> GptConfig {
    let model = &run.experiment.model;
    GptConfig {
        attention: AttentionConfig::mha(model.n_heads),
        ..model.clone()
    }
}

/// `model` with its MLA latents normed, as MLA trained from scratch has them.
fn normed(model: &GptConfig) -> GptConfig {
    match model.attention {
        AttentionConfig::Mla(m) => GptConfig {
            attention: AttentionConfig::Mla(MlaConfig {
                latent_norm: true,
                ..m
            }),
            ..model.clone()
        },
        _ => model.clone(),
    }
}

/// Whether `model` is MLA+RoPE at r = d/2 with separate latents (the paper's headline row),
/// otherwise the shape of `like` (width, depth, heads, vocabulary, context).
fn is_rope_half(model: &GptConfig, like: &GptConfig) -> bool {
    let shape = |m: &GptConfig| (m.vocab_size, m.context, m.d_model, m.n_layers, m.n_heads);
    matches!(
        model.attention,
        AttentionConfig::Mla(m) if m.rank * 2 == model.d_model
            && m.layout == LatentLayout::Separate
            && m.rope_dim > 0
            && m.latent_norm
    ) && shape(model) == shape(like)
}

/// The variant trained from scratch whose model `matches`, the one with most seeds.
fn from_scratch<'a>(
    scratch: &'a [Variant<'a>],
    matches: impl Fn(&GptConfig) -> bool,
) -> Option<&'a Variant<'a>> {
    scratch
        .iter()
        .filter(|v| matches(&v.first().experiment.model))
        .max_by_key(|v| v.runs.len())
}

/// `fine`'s mean loss minus `base`'s, Welch's 95% interval and the share of `base`'s mean:
/// `+0.0123 [+0.0050, +0.0196] (+2.8%; n = 3 against 10, mla_rope_half_tiny)`.
fn gap(fine: &[f64], base: Option<&Variant>) -> String {
    let Some(base) = base else {
        return "-".into();
    };
    let scratch: Vec<f64> = base.values(|r| r.eval.as_ref().map(|e| e.loss));
    let (Some(f), Some(s)) = (Spread::of(fine), Spread::of(&scratch)) else {
        return "-".into();
    };
    let diff = f.mean - s.mean;
    let interval = Interval::welch(fine, &scratch, 0.95)
        .map_or(String::new(), |i| format!(" [{:+.4}, {:+.4}]", i.lo, i.hi));
    format!(
        "{diff:+.4}{interval} ({:+.1}%; n = {} against {}, `{}`)",
        100.0 * diff / s.mean,
        f.n,
        s.n,
        base.name
    )
}

/// `field` of a run's conversion, per layer.
fn energy(run: &RunData, field: fn(&crate::model::convert::Conversion) -> &Vec<f64>) -> Vec<f64> {
    run.converted
        .as_ref()
        .map_or(vec![], |(c, _)| field(&c.conversion).clone())
}
