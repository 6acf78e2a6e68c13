//! The study's policy on records already there: whether a run's bench, eval or probes answer
//! what this study asks, and why not. Records keep every option that shaped them, so one asked
//! differently is redone rather than reused.

use anyhow::Result;

use super::options::StudyOptions;
use crate::artifacts::records::{BenchRow, DecodePath, LossReport, ProbeReport};
use crate::artifacts::{RunFolder, read_json};
use crate::eval::probes::ProbeOptions;
use crate::infer::bench::{BenchOptions, decode_paths, decode_steps};
use crate::model::GptConfig;

/// Why `rows` (one model's bench) do not answer what `opts` asks of `config`: other contexts,
/// batches or decode paths, another cache fill, other decode steps or rounds. `None` when they
/// do. The rows keep every option that shapes them, so a bench asked differently is redone.
pub fn stale_bench(rows: &[BenchRow], opts: &BenchOptions, config: &GptConfig) -> Option<String> {
    let key = |c: usize, b: usize, d: DecodePath| format!("context {c} batch {b} {d}");
    let mut asked: Vec<String> = vec![];
    for decode in decode_paths(config, &opts.mla_paths) {
        for &batch in &opts.batches {
            for &context in opts.contexts.iter().filter(|&&c| c <= config.context) {
                asked.push(key(context, batch, decode.into()));
            }
        }
    }
    let mut have: Vec<String> = rows
        .iter()
        .map(|r| key(r.context, r.batch, r.decode))
        .collect();
    asked.sort();
    asked.dedup();
    have.sort();
    if have != asked {
        return Some(format!(
            "rows [{}], [{}] asked",
            have.join(", "),
            asked.join(", ")
        ));
    }
    rows.iter().find_map(|r| {
        let steps = decode_steps(opts.decode_tokens, r.context);
        if r.fill != opts.fill {
            Some(format!(
                "cache {}, {} asked",
                r.fill.name(),
                opts.fill.name()
            ))
        } else if r.repeats != Some(opts.repeats) {
            Some(format!("{:?} rounds, {} asked", r.repeats, opts.repeats))
        } else if r.decode_steps != Some(steps) {
            Some(format!(
                "{:?} decode steps at context {}, {steps} asked",
                r.decode_steps, r.context
            ))
        } else {
            None
        }
    })
}

/// Why a run's `eval.json` does not answer what `opts` asks: another limit on its windows.
/// `None` when it does, or is missing.
pub(super) fn stale_eval(folder: &RunFolder, opts: &StudyOptions) -> Result<Option<String>> {
    let Some(old) = read_json::<LossReport>(&folder.eval())? else {
        return Ok(None);
    };
    let shown = |w: Option<usize>| w.map_or("the whole split".into(), |w| format!("{w} windows"));
    Ok((old.max_windows != opts.eval_windows).then(|| {
        format!(
            "{}, {} asked",
            shown(old.max_windows),
            shown(opts.eval_windows)
        )
    }))
}

/// Why a run's `probes.json` does not answer what `opts` asks: another number of stories, or
/// written before attribute consistency was measured. `None` when it does, or is missing.
pub(super) fn stale_probes(folder: &RunFolder, opts: &ProbeOptions) -> Result<Option<String>> {
    let Some(old) = read_json::<ProbeReport>(&folder.probes())? else {
        return Ok(None);
    };
    // More stories than the held-out split has probe all of them: that answers the question,
    // rather than being redone at every later study.
    let held_out = crate::experiment::Experiment::load(folder.experiment())
        .ok()
        .and_then(|e| crate::eval::probes::held_out_count(&e));
    let asked = held_out.map_or(opts.stories, |n| opts.stories.min(n));
    Ok(if old.stories != asked {
        Some(format!("{} stories, {asked} asked", old.stories))
    } else if old.attribute_consistency.is_none() {
        Some("written before attribute consistency".into())
    } else {
        None
    })
}

#[cfg(test)]
mod tests;
