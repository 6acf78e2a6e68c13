//! What every number of every record may be: the one table ([`FIELDS`]) the readers check
//! each record against before it reaches a report, a summary or a restore. A value outside its
//! range is one mla-lab could not have written (a loss below 0, a share of 7.5, a grade of 50
//! on a 1–10 scale, a speed of −1000 tok/s): the record is refused, naming the file and the
//! field. Absent and `null` values pass here; whether a field may be absent is the record
//! type's to say.
//!
//! Beyond each field alone, what a run folder's records must say of each other and of its
//! experiment ([`across`]).
//!
//! A field's path: `a.b` is `b` inside the object `a`; `[]` is every element of an array (the
//! whole file, `bench.json`, or a field, `energy[]`). `metrics.csv`'s columns are fields too.

use std::path::PathBuf;

use anyhow::{Result, anyhow, bail};
use serde_json::Value;

use super::records::{Converted, TrainSummary};
use super::{BadRecord, RunFolder, metrics, read_json};
use crate::experiment::Experiment;

/// A range of values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Range {
    /// Nats per token: finite, at least 0 (a cross-entropy never is below).
    Loss,
    /// Finite, at least 0: a count, a duration, an entropy, a spread, a load.
    NonNegative,
    /// Finite, above 0: a speed, a time per token, a ratio of two speeds or sizes.
    Positive,
    /// A whole number, at least 1: a size, a step, a number of things that cannot be none.
    AtLeastOne,
    /// A share, 0 to 1.
    Share,
    /// At least 1: a perplexity, `e` to a loss.
    Perplexity,
    /// A judge's grade, 1 to 10 (its mean too).
    Grade,
}

impl Range {
    /// Whether `v` lies in the range.
    pub fn holds(self, v: f64) -> bool {
        v.is_finite()
            && match self {
                Range::Loss | Range::NonNegative => v >= 0.0,
                Range::Positive => v > 0.0,
                Range::AtLeastOne => v >= 1.0 && v.fract() == 0.0,
                Range::Share => (0.0..=1.0).contains(&v),
                Range::Perplexity => v >= 1.0,
                Range::Grade => (1.0..=10.0).contains(&v),
            }
    }

    /// What is accepted, in words.
    pub fn accepted(self) -> &'static str {
        match self {
            Range::Loss => "a finite number of nats, at least 0",
            Range::NonNegative => "a finite number, at least 0",
            Range::Positive => "a finite number above 0",
            Range::AtLeastOne => "a whole number, at least 1",
            Range::Share => "a share, from 0 to 1",
            Range::Perplexity => "a finite number, at least 1",
            Range::Grade => "a grade from 1 to 10",
        }
    }

    /// A value outside the range (for the tests that plant one).
    pub fn outside(self) -> f64 {
        match self {
            Range::Loss | Range::NonNegative | Range::Positive => -1000.0,
            Range::AtLeastOne | Range::Perplexity => 0.5,
            Range::Share => 7.5,
            Range::Grade => 50.0,
        }
    }
}

use Range::*;

/// Every number of every record file, with its range.
pub const FIELDS: &[(&str, &str, Range)] = &[
    // summary.json: TrainSummary
    ("summary.json", "params", AtLeastOne),
    ("summary.json", "non_embedding_params", AtLeastOne),
    ("summary.json", "kv_bytes_per_token_f32", AtLeastOne),
    ("summary.json", "steps", AtLeastOne),
    ("summary.json", "tokens_seen", AtLeastOne),
    ("summary.json", "final_train_loss", Loss),
    ("summary.json", "final_val_loss", Loss),
    ("summary.json", "final_val_perplexity", Perplexity),
    ("summary.json", "val_unigram_entropy", NonNegative),
    ("summary.json", "tokens_per_s", Positive),
    ("summary.json", "wall_time_s", NonNegative),
    ("summary.json", "devices", AtLeastOne),
    // eval.json: LossReport
    ("eval.json", "loss", Loss),
    ("eval.json", "perplexity", Perplexity),
    ("eval.json", "windows", AtLeastOne),
    ("eval.json", "max_windows", AtLeastOne),
    ("eval.json", "tokens", AtLeastOne),
    ("eval.json", "unigram_entropy", NonNegative),
    ("eval.json", "checkpoint_step", AtLeastOne),
    // probes.json: ProbeReport (each share with its count)
    ("probes.json", "stories", AtLeastOne),
    ("probes.json", "character_consistency.value", Share),
    ("probes.json", "character_consistency.n", NonNegative),
    ("probes.json", "object_consistency.value", Share),
    ("probes.json", "object_consistency.n", NonNegative),
    ("probes.json", "attribute_consistency.value", Share),
    ("probes.json", "attribute_consistency.n", NonNegative),
    ("probes.json", "repetition_3gram.value", Share),
    ("probes.json", "repetition_3gram.n", NonNegative),
    ("probes.json", "distinct_2.value", Share),
    ("probes.json", "distinct_2.n", NonNegative),
    ("probes.json", "distinct_3.value", Share),
    ("probes.json", "distinct_3.n", NonNegative),
    ("probes.json", "grammar.value", Share),
    ("probes.json", "grammar.n", NonNegative),
    ("probes.json", "mean_words", NonNegative),
    // judge.json: JudgeReport
    ("judge.json", "stories", AtLeastOne),
    ("judge.json", "grammar.mean", Grade),
    ("judge.json", "grammar.sd", NonNegative),
    ("judge.json", "creativity.mean", Grade),
    ("judge.json", "creativity.sd", NonNegative),
    ("judge.json", "consistency.mean", Grade),
    ("judge.json", "consistency.sd", NonNegative),
    // samples.json: Sample rows
    ("samples.json", "[].seed", NonNegative),
    ("samples.json", "[].temperature", NonNegative),
    // bench.json: BenchRow rows
    ("bench.json", "[].rank", AtLeastOne),
    ("bench.json", "[].d_model", AtLeastOne),
    ("bench.json", "[].batch", AtLeastOne),
    ("bench.json", "[].context", AtLeastOne),
    ("bench.json", "[].kv_bytes_per_token_formula", AtLeastOne),
    ("bench.json", "[].kv_bytes_per_token_measured", AtLeastOne),
    ("bench.json", "[].cache_bytes", AtLeastOne),
    ("bench.json", "[].prefill_tokens_per_s", Positive),
    ("bench.json", "[].decode_tokens_per_s", Positive),
    ("bench.json", "[].decode_ms_per_token", Positive),
    ("bench.json", "[].decode_bytes_per_step", AtLeastOne),
    ("bench.json", "[].decode_gb_per_s", Positive),
    ("bench.json", "[].decode_ms_per_token_range[]", Positive),
    ("bench.json", "[].decode_steps", AtLeastOne),
    ("bench.json", "[].repeats", AtLeastOne),
    ("bench.json", "[].decode_ms_per_token_rounds[]", Positive),
    ("bench.json", "[].kv_vs_first", Positive),
    ("bench.json", "[].decode_vs_first", Positive),
    ("bench.json", "[].decode_vs_full_rank", Positive),
    ("bench.json", "[].load_before", NonNegative),
    ("bench.json", "[].cpu_threads", AtLeastOne),
    // conversion.json: Converted
    // 0: the source taken unchanged (a control); else the target's latent rank (checked
    // against the experiment, with one energy per layer, by `RunFolder::check_records`).
    ("conversion.json", "rank", NonNegative),
    ("conversion.json", "energy[]", Share),
    ("conversion.json", "rotary[]", Share),
    // conversion_eval.json: two LossReports
    ("conversion_eval.json", "source.loss", Loss),
    ("conversion_eval.json", "source.perplexity", Perplexity),
    ("conversion_eval.json", "source.windows", AtLeastOne),
    ("conversion_eval.json", "source.max_windows", AtLeastOne),
    ("conversion_eval.json", "source.tokens", AtLeastOne),
    (
        "conversion_eval.json",
        "source.unigram_entropy",
        NonNegative,
    ),
    ("conversion_eval.json", "source.checkpoint_step", AtLeastOne),
    ("conversion_eval.json", "converted.loss", Loss),
    ("conversion_eval.json", "converted.perplexity", Perplexity),
    ("conversion_eval.json", "converted.windows", AtLeastOne),
    ("conversion_eval.json", "converted.max_windows", AtLeastOne),
    ("conversion_eval.json", "converted.tokens", AtLeastOne),
    (
        "conversion_eval.json",
        "converted.unigram_entropy",
        NonNegative,
    ),
    (
        "conversion_eval.json",
        "converted.checkpoint_step",
        AtLeastOne,
    ),
    // metrics.csv: its columns
    ("metrics.csv", "step", AtLeastOne),
    ("metrics.csv", "train_loss", Loss),
    ("metrics.csv", "val_loss", Loss),
    ("metrics.csv", "lr", NonNegative),
    ("metrics.csv", "tokens_per_s", NonNegative),
    ("metrics.csv", "elapsed_s", NonNegative),
];

/// The range of `field` of the record file `file`, where the table has one.
pub fn range_of(file: &str, field: &str) -> Option<Range> {
    FIELDS
        .iter()
        .find(|(f, p, _)| *f == file && *p == field)
        .map(|(.., r)| *r)
}

/// The values at `path` in `value`, with each one's path written out (`[3].rank`).
fn at<'a>(value: &'a Value, path: &str, shown: String, out: &mut Vec<(String, &'a Value)>) {
    if path.is_empty() {
        out.push((shown, value));
        return;
    }
    let (head, rest) = match path.find(['.', '[']) {
        Some(0) if path.starts_with("[]") => {
            let rest = path[2..].strip_prefix('.').unwrap_or(&path[2..]);
            if let Value::Array(items) = value {
                for (i, item) in items.iter().enumerate() {
                    at(item, rest, format!("{shown}[{i}]"), out);
                }
            }
            return;
        }
        Some(i) => (
            &path[..i],
            path[i..].strip_prefix('.').unwrap_or(&path[i..]),
        ),
        None => (path, ""),
    };
    if let Some(inner) = value.get(head) {
        let shown = if shown.is_empty() {
            head.to_string()
        } else {
            format!("{shown}.{head}")
        };
        at(inner, rest, shown, out);
    }
}

/// Checks every field of the record `value`, read from a file named `file`, against
/// [`FIELDS`]: the first value outside its range (or not a number where one is due) is an
/// error naming the field, the value and what is accepted.
pub fn check(file: &str, value: &Value) -> Result<()> {
    for (_, path, range) in FIELDS.iter().filter(|(f, ..)| *f == file) {
        let mut found = vec![];
        at(value, path, String::new(), &mut found);
        for (shown, v) in found {
            let ok = match v {
                Value::Null => true,
                Value::Number(n) => n.as_f64().is_some_and(|x| range.holds(x)),
                _ => false,
            };
            if !ok {
                bail!(
                    "field `{shown}` is {v}: not what mla-lab writes there (accepted: {})",
                    range.accepted()
                );
            }
        }
    }
    Ok(())
}

/// Checks one number of `metrics.csv`'s column `column`.
pub fn check_column(column: &str, v: f64) -> Result<()> {
    match range_of("metrics.csv", column) {
        Some(range) if !range.holds(v) => bail!(
            "column `{column}` is {v}: not what mla-lab writes there (accepted: {})",
            range.accepted()
        ),
        _ => Ok(()),
    }
}

/// What the records of `folder` must say of each other and of its experiment: no metrics row
/// past the summary's last step, no more steps than the experiment's `max_steps`, a summary of
/// this experiment, and a conversion of its `convert_from` at its rank (0 and no energies: the
/// source's model unchanged; else one energy per layer).
pub fn across(folder: &RunFolder) -> Result<(), BadRecord> {
    let bad = |file: PathBuf, why: anyhow::Error| Err(BadRecord { file, why });
    let experiment = match folder.experiment().exists() {
        true => Experiment::load(folder.experiment()).ok(),
        false => None,
    };
    let summary: Option<TrainSummary> = read_json(&folder.summary()).ok().flatten();
    let last_row = metrics::read(&folder.metrics()).last().map(|r| r.step);
    if let (Some(summary), Some(last)) = (&summary, last_row)
        && last > summary.steps
    {
        return bad(
            folder.metrics(),
            anyhow!(
                "{}: not what mla-lab writes there (a row of step {last}, past the run's last \
                 step {} in {})",
                folder.metrics().display(),
                summary.steps,
                folder.summary().display()
            ),
        );
    }
    let Some(exp) = experiment else {
        return Ok(());
    };
    if let Some(summary) = &summary {
        if summary.steps > exp.train.max_steps {
            return bad(
                folder.summary(),
                anyhow!(
                    "{}: field `steps` is {}: not what mla-lab writes there (accepted: at most \
                     the experiment's max_steps, {} in {})",
                    folder.summary().display(),
                    summary.steps,
                    exp.train.max_steps,
                    folder.experiment().display()
                ),
            );
        }
        if summary.experiment != exp.name {
            return bad(
                folder.summary(),
                anyhow!(
                    "{}: the summary of a run of {:?}, beside the experiment {:?} in {}",
                    folder.summary().display(),
                    summary.experiment,
                    exp.name,
                    folder.experiment().display()
                ),
            );
        }
    }
    let Some(converted) = read_json::<Converted>(&folder.conversion()).ok().flatten() else {
        return Ok(());
    };
    if exp.convert_from.as_deref() != Some(converted.source_experiment.as_str()) {
        return bad(
            folder.conversion(),
            anyhow!(
                "{}: field `source_experiment` is {:?}: not what mla-lab writes there \
                 (accepted: the experiment's convert_from, {} in {})",
                folder.conversion().display(),
                converted.source_experiment,
                exp.convert_from
                    .as_ref()
                    .map_or("none".to_string(), |s| format!("{s:?}")),
                folder.experiment().display()
            ),
        );
    }
    let c = &converted.conversion;
    let (want_rank, layers) = match exp.model.attention.rank() {
        // A latent target: its rank, and one energy per layer.
        Some(rank) if c.rank != 0 => (rank, exp.model.n_layers),
        // The source's own model, unchanged: no rank, no energy.
        _ => (0, 0),
    };
    if c.rank != want_rank || c.energy.len() != layers {
        return bad(
            folder.conversion(),
            anyhow!(
                "{}: fields `rank` {} and `energy` ({} values): not what mla-lab writes there \
                 (accepted for {}: rank {want_rank} with {layers} values, one a layer)",
                folder.conversion().display(),
                c.rank,
                c.energy.len(),
                folder.experiment().display()
            ),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests;
