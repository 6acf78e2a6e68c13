//! `mla-lab bench`: what each variant's KV cache holds and how fast it prefills and decodes.
//!
//! Per model, context and batch: KV bytes per token from the formula and measured from the
//! live cache after filling it, the cache's total bytes, prefill tokens/s, and decode
//! tokens/s and ms/token with the cache filled to that context (MLA: both decode paths).
//! Timings are the median of `repeats` rounds after a warm-up round, with the device
//! synchronised before the clock is read; the rounds interleave the rows, and each row reports
//! the range of its rounds. Weights are random unless a run folder is given: speed does not
//! depend on training.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::artifacts::RunFolder;
use crate::artifacts::records::{BenchRow, CacheFill, DecodePath};
use crate::artifacts::run::Run;
use crate::experiment::Experiment;
use crate::model::validate::MAX_CONTEXT;
use crate::model::{Gpt, GptConfig, MlaDecode, Positions};
use crate::options::InvalidOption;
use anyhow::{Result, bail};
use burn::tensor::{DType, Device, Int, Tensor, TensorData};

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub contexts: Vec<usize>,
    pub batches: Vec<usize>,
    /// Timed decode steps per run.
    pub decode_tokens: usize,
    pub repeats: usize,
    /// How the cache is filled before the timed steps.
    pub fill: CacheFill,
    /// MLA's decode paths to time (MHA rows have one path and are always timed).
    pub mla_paths: Vec<MlaDecode>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            contexts: vec![128, 256, 512],
            batches: vec![1],
            decode_tokens: 64,
            repeats: 7,
            fill: CacheFill::Prefill,
            mla_paths: vec![MlaDecode::Naive, MlaDecode::Absorbed],
        }
    }
}

/// A model to bench: an experiment file (random weights) or a run folder (its weights).
pub struct Subject {
    /// The experiment's name.
    pub name: String,
    /// The run folder's name, for a run's weights.
    pub run: Option<String>,
    pub config: GptConfig,
    pub model: Gpt,
    pub weights: String,
    /// The step of the checkpoint loaded for a run that has not finished
    /// ([`Run::checkpoint_step`]).
    pub checkpoint_step: Option<usize>,
}

impl Subject {
    /// `context`, when given, replaces an experiment file's context (random weights only: a
    /// run's trained weights fix its positions), so that decode speed can be measured past the
    /// context a model was trained at.
    pub fn load(path: &Path, context: Option<usize>, device: &Device) -> Result<Subject> {
        let refuse = |n: usize, accepted| {
            anyhow::Error::new(InvalidOption::new("model_context", n, accepted))
                .context(format!("bench {}", path.display()))
        };
        if path.is_dir() {
            if let Some(n) = context {
                return Err(refuse(
                    n,
                    "with experiment files only (random weights); a run folder's trained weights fix its context",
                ));
            }
            let run = Run::load(path, device)?;
            run.check_data()?;
            return Ok(Subject {
                name: run.experiment.name.clone(),
                run: Some(RunFolder::new(path).name()),
                config: run.experiment.model.clone(),
                model: run.model,
                weights: run.weights.display().to_string(),
                checkpoint_step: run.checkpoint_step,
            });
        }
        let mut exp = Experiment::load(path)?;
        if let Some(n) = context {
            if n == 0 || n > MAX_CONTEXT {
                return Err(refuse(n, "1 to 1048576 tokens"));
            }
            exp.model.context = n;
        }
        Ok(Subject {
            name: exp.name.clone(),
            run: None,
            model: exp.model.init_drawn(exp.init_seed(), device),
            config: exp.model,
            weights: "random".into(),
            checkpoint_step: None,
        })
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn random_tokens(batch: usize, seq: usize, vocab: usize, device: &Device) -> Tensor<2, Int> {
    let ids: Vec<i64> = (0..batch * seq)
        .map(|i| ((i * 7919 + 13) % vocab) as i64)
        .collect();
    Tensor::from_data(TensorData::new(ids, [batch, seq]), device)
}

/// Fills `context - n` positions (by a timed prefill, or directly), then times `n`
/// single-token greedy steps; returns (prefill seconds, if prefilled; decode seconds; measured
/// bytes per token; cache bytes).
fn one_run(
    model: &Gpt,
    fill: CacheFill,
    batch: usize,
    context: usize,
    n: usize,
    device: &Device,
) -> Result<(Option<f64>, f64, usize, usize)> {
    let vocab = model.vocab_size();
    let mut cache = model.new_cache(batch, DType::F32, device);
    let (prefill, mut next) = match fill {
        CacheFill::Prefill => {
            let prompt = random_tokens(batch, context - n, vocab, device);
            device.sync()?;
            let t = Instant::now();
            let logits = model.forward_cached(prompt, &mut cache); // [batch, context - n, vocab]
            device.sync()?;
            let prefill = t.elapsed().as_secs_f64();
            let [_, seq, _] = logits.dims();
            let next = logits.narrow(1, seq - 1, 1).argmax(2).reshape([batch, 1]); // [batch, 1]
            (Some(prefill), next)
        }
        CacheFill::Random => {
            cache.fill_random(context - n, 0);
            (None, random_tokens(batch, 1, vocab, device))
        }
    };
    device.sync()?;
    let t = Instant::now();
    for _ in 0..n {
        let logits = model.forward_cached(next, &mut cache); // [batch, 1, vocab]
        next = logits.argmax(2).reshape([batch, 1]); // [batch, 1]
    }
    device.sync()?;
    let decode = t.elapsed().as_secs_f64();
    Ok((prefill, decode, cache.bytes_per_token(), cache.bytes_used()))
}

/// The decode paths to time for `config`: those of `mla_paths` its attention has, or its one
/// plain path (`None`) when it has no others.
pub fn decode_paths(config: &GptConfig, mla_paths: &[MlaDecode]) -> Vec<Option<MlaDecode>> {
    let has = config.attention.decode_paths();
    if has.is_empty() {
        return vec![None];
    }
    mla_paths
        .iter()
        .filter(|p| has.contains(p))
        .copied()
        .map(Some)
        .collect()
}

/// Bytes a decode step at `context` must read at least (f32): every weight once, and the
/// cache of the batch as filled at that step (`positions` keys). Rows read by a lookup (the
/// token embedding of an untied head, a learned position table) are left out: a step reads
/// one row of them per sequence. What a path reads beyond this (naive MLA's up-projected K and
/// V, copies a backend makes) shows up as fewer GB/s, which is the point of the figure.
pub fn decode_bytes_per_step(config: &GptConfig, batch: usize, positions: usize) -> usize {
    let d = config.d_model;
    let looked_up = match config.positions {
        Positions::Learned => config.context * d,
        Positions::Rope(_) => 0,
    } + if config.tie_embeddings {
        0
    } else {
        config.vocab_size * d
    };
    let weights = (config.param_count() - looked_up) * DType::F32.size();
    weights + batch * positions * config.kv_bytes_per_token(DType::F32)
}

/// Timed decode steps at `context`: `decode_tokens`, but at most half the context (and at
/// least one), since a prompt of the rest fills the cache first.
pub fn decode_steps(decode_tokens: usize, context: usize) -> usize {
    decode_tokens.min(context / 2).max(1)
}

/// The contexts at which the bench of `subjects` times fewer decode steps than `opts` asks
/// ([`decode_steps`]), with the steps it times there.
pub fn capped(opts: &BenchOptions, subjects: &[Subject]) -> Vec<(usize, usize)> {
    let longest = subjects.iter().map(|s| s.config.context).max().unwrap_or(0);
    let mut contexts = opts.contexts.clone();
    contexts.sort_unstable();
    contexts.dedup();
    contexts
        .into_iter()
        .filter(|&c| c <= longest)
        .map(|c| (c, decode_steps(opts.decode_tokens, c)))
        .filter(|&(_, steps)| steps < opts.decode_tokens)
        .collect()
}

/// Why [`capped`] caps.
pub const CAPPED_WHY: &str =
    "the decode steps fill the cache after a prompt of at least half the context";

/// One measured configuration: a model (with its decode path), a batch and a context.
struct Case<'a> {
    subject: &'a Subject,
    model: Gpt,
    decode: Option<MlaDecode>,
    batch: usize,
    context: usize,
    /// Timed decode steps per run.
    steps: usize,
}

/// Benches every subject; `progress` hears about each row once it is measured.
///
/// Runs are interleaved: one warm-up run of every case, then `repeats` rounds that each run
/// every case once, so a slow spell of a shared machine spreads over all rows instead of
/// landing on one. Each row reports the median and the range over the rounds.
pub fn bench(
    subjects: Vec<Subject>,
    opts: &BenchOptions,
    device: &Device,
    mut progress: impl FnMut(&BenchRow),
) -> Result<Vec<BenchRow>> {
    check(&subjects, opts)?;
    let cases = cases(&subjects, opts);
    if cases.is_empty() {
        bail!(
            "none of the contexts {:?} fits any model's context; nothing to measure",
            opts.contexts
        );
    }
    let load_before = crate::backend::load_average();
    let cpu_threads = std::thread::available_parallelism().ok().map(|n| n.get());
    let timings = time_rounds(&cases, opts, device)?;
    let mut rows: Vec<BenchRow> = Vec::new();
    for (case, timed) in cases.iter().zip(timings) {
        let mut row = row(case, timed, opts);
        (row.load_before, row.cpu_threads) = (load_before, cpu_threads);
        progress(&row);
        rows.push(row);
    }
    let configs: Vec<&GptConfig> = cases.iter().map(|c| &c.subject.config).collect();
    add_ratios(&mut rows, &configs);
    Ok(rows)
}

/// Refuses options with nothing to time; says which contexts a model skips.
fn check(subjects: &[Subject], opts: &BenchOptions) -> Result<()> {
    if subjects.is_empty() {
        bail!("nothing to bench");
    }
    if opts.repeats == 0 {
        return Err(InvalidOption::new("repeats", 0, "at least 1 timed round").into());
    }
    if opts.decode_tokens == 0 {
        return Err(InvalidOption::new("decode_tokens", 0, "at least 1 decode step").into());
    }
    if opts.mla_paths.is_empty() {
        let accepted = "naive, absorbed or both";
        return Err(InvalidOption::new("mla_paths", "none", accepted).into());
    }
    if let Some(&c) = opts.contexts.iter().find(|&&c| c < 2) {
        let accepted =
            "cache fill levels of at least 2 tokens: a prompt of one, then a decode step";
        return Err(InvalidOption::new("contexts", c, accepted).into());
    }
    for s in subjects {
        let beyond: Vec<usize> = opts
            .contexts
            .iter()
            .copied()
            .filter(|&c| c > s.config.context)
            .collect();
        if !beyond.is_empty() {
            eprintln!(
                "bench: {}: contexts {beyond:?} skipped, beyond its context of {} tokens",
                s.name, s.config.context
            );
        }
    }
    Ok(())
}

/// Every subject on each of its decode paths, at every batch and every context it fits.
fn cases<'a>(subjects: &'a [Subject], opts: &BenchOptions) -> Vec<Case<'a>> {
    let mut cases = Vec::new();
    for s in subjects {
        let c = &s.config;
        for decode in decode_paths(c, &opts.mla_paths) {
            let model = match decode {
                Some(d) => s.model.clone().with_mla_decode(d),
                None => s.model.clone(),
            };
            for &batch in &opts.batches {
                for &context in opts.contexts.iter().filter(|&&x| x <= c.context) {
                    cases.push(Case {
                        subject: s,
                        model: model.clone(),
                        decode,
                        batch,
                        context,
                        steps: decode_steps(opts.decode_tokens, context),
                    });
                }
            }
        }
    }
    cases
}

/// What the timed rounds of one case measured.
struct Timings {
    /// Prefill seconds per round (none when the cache was filled directly).
    prefill: Vec<f64>,
    /// Decode seconds per round.
    decode: Vec<f64>,
    /// Cache bytes per token and in all, measured from the cache.
    bytes_per_token: usize,
    cache_bytes: usize,
}

/// A warm-up round of every case, then `repeats` rounds of every case, interleaved.
fn time_rounds(cases: &[Case], opts: &BenchOptions, device: &Device) -> Result<Vec<Timings>> {
    let repeats = opts.repeats;
    let mut timings: Vec<Timings> = cases
        .iter()
        .map(|_| Timings {
            prefill: Vec::with_capacity(repeats),
            decode: Vec::with_capacity(repeats),
            bytes_per_token: 0,
            cache_bytes: 0,
        })
        .collect();
    for round in 0..=repeats {
        for (case, t) in cases.iter().zip(&mut timings) {
            let (p, d, per_token, bytes) = one_run(
                &case.model,
                opts.fill,
                case.batch,
                case.context,
                case.steps,
                device,
            )?;
            (t.bytes_per_token, t.cache_bytes) = (per_token, bytes);
            if round > 0 {
                // round 0 is the warm-up
                t.prefill.extend(p);
                t.decode.push(d);
            }
        }
    }
    Ok(timings)
}

/// One case's row: medians and ranges over the rounds, bytes and rates; ratios come later.
fn row(case: &Case, timed: Timings, opts: &BenchOptions) -> BenchRow {
    let (s, c) = (case.subject, &case.subject.config);
    let (batch, context, n) = (case.batch, case.context, case.steps);
    let ms = |secs: f64| 1e3 * secs / n as f64;
    let (lo, hi) = spread(&timed.decode);
    let rounds: Vec<f64> = timed.decode.iter().map(|&d| ms(d)).collect();
    let prefill = (!timed.prefill.is_empty()).then(|| median(timed.prefill.clone()));
    let dec = median(timed.decode.clone());
    // Step i (0-based) reads the context - n + i + 1 positions filled by then.
    let bytes: usize = (0..n)
        .map(|i| decode_bytes_per_step(c, batch, context - n + i + 1))
        .sum::<usize>()
        / n;
    BenchRow {
        experiment: s.name.clone(),
        run: s.run.clone(),
        attention: c.label(),
        decode: case.decode.into(),
        rank: c.attention.rank(),
        d_model: c.d_model,
        batch,
        context,
        kv_bytes_per_token_formula: c.kv_bytes_per_token(DType::F32),
        kv_bytes_per_token_measured: timed.bytes_per_token,
        cache_bytes: timed.cache_bytes,
        fill: opts.fill,
        prefill_tokens_per_s: prefill.map(|p| (batch * (context - n)) as f64 / p),
        decode_tokens_per_s: (batch * n) as f64 / dec,
        decode_ms_per_token: ms(dec),
        decode_bytes_per_step: Some(bytes),
        decode_gb_per_s: Some(bytes as f64 * n as f64 / dec / 1e9),
        decode_ms_per_token_range: Some((ms(lo), ms(hi))),
        decode_steps: Some(n),
        repeats: Some(opts.repeats),
        decode_ms_per_token_rounds: rounds,
        kv_vs_first: 1.0,
        decode_vs_first: 1.0,
        decode_vs_full_rank: None,
        weights: s.weights.clone(),
        load_before: None,
        cpu_threads: None,
    }
}

/// The smallest and the largest of `xs` (infinities for none).
pub fn spread(xs: &[f64]) -> (f64, f64) {
    xs.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

/// Whether `full` is `cut`'s attention with its latent at full rank (as wide as the model), in a
/// model of the same width: what a cut rank's decode speed is compared with. A model at full
/// rank is its own.
pub fn is_full_rank_of(full: &GptConfig, cut: &GptConfig) -> bool {
    full.d_model == cut.d_model
        && full.attention.rank() == Some(full.d_model)
        && cut.attention.with_rank(full.d_model).as_ref() == Some(&full.attention)
}

/// Whether `full` is the full-rank row of `row` ([`is_full_rank_of`]), measured the same way:
/// decode path, batch and context.
fn full_rank_of(row: (&BenchRow, &GptConfig), full: (&BenchRow, &GptConfig)) -> bool {
    is_full_rank_of(full.1, row.1)
        && full.0.decode == row.0.decode
        && full.0.batch == row.0.batch
        && full.0.context == row.0.context
}

/// Fills the ratios against the first model and the full-rank one; `configs[i]` is the model
/// of `rows[i]`.
fn add_ratios(rows: &mut [BenchRow], configs: &[&GptConfig]) {
    let first_name = rows[0].experiment.clone();
    let snapshot = rows.to_vec();
    for (row, config) in rows.iter_mut().zip(configs) {
        // The first model's row at the same context and batch (its absorbed path if MLA).
        if let Some(base) = snapshot.iter().find(|b| {
            b.experiment == first_name
                && b.batch == row.batch
                && b.context == row.context
                && b.decode != DecodePath::Naive
        }) {
            row.kv_vs_first =
                row.kv_bytes_per_token_measured as f64 / base.kv_bytes_per_token_measured as f64;
            row.decode_vs_first = row.decode_tokens_per_s / base.decode_tokens_per_s;
        }
        if let Some((full, _)) = snapshot
            .iter()
            .zip(configs)
            .find(|(b, c)| full_rank_of((row, config), (b, c)))
        {
            row.decode_vs_full_rank = Some(row.decode_tokens_per_s / full.decode_tokens_per_s);
        }
    }
}

/// The Markdown table.
pub fn table(rows: &[BenchRow]) -> String {
    let mut t = crate::table::Table::new(
        &[
            "experiment",
            "attention",
            "decode",
            "batch",
            "context",
            "KV B/token formula",
            "KV B/token measured",
            "cache KiB",
            "fill",
            "prefill tok/s",
            "decode tok/s",
            "ms/token",
            "ms/token range",
            "read/step MiB",
            "GB/s",
            "KV vs first",
            "decode vs first",
            "decode vs full rank",
        ],
        3,
    )
    .left_aligned(8);
    for r in rows {
        t.rows.push(vec![
            r.experiment.clone(),
            r.attention.clone(),
            r.decode.to_string(),
            r.batch.to_string(),
            r.context.to_string(),
            r.kv_bytes_per_token_formula.to_string(),
            r.kv_bytes_per_token_measured.to_string(),
            format!("{:.1}", r.cache_bytes as f64 / 1024.0),
            r.fill.to_string(),
            r.prefill_tokens_per_s
                .map_or("-".into(), |p| format!("{p:.0}")),
            format!("{:.1}", r.decode_tokens_per_s),
            format!("{:.2}", r.decode_ms_per_token),
            r.decode_ms_per_token_range
                .map_or("-".into(), |(lo, hi)| format!("{lo:.2}–{hi:.2}")),
            r.decode_bytes_per_step
                .map_or("-".into(), |b| format!("{:.1}", b as f64 / MIB)),
            r.decode_gb_per_s.map_or("-".into(), |g| format!("{g:.1}")),
            format!("{:.3}", r.kv_vs_first),
            format!("{:.2}×", r.decode_vs_first),
            r.decode_vs_full_rank
                .map_or("-".into(), |x| format!("{x:.2}×")),
        ]);
    }
    t.render()
}

const MIB: f64 = 1024.0 * 1024.0;

/// Inputs that are files or run folders, in the order given.
pub fn subjects(
    paths: &[PathBuf],
    context: Option<usize>,
    device: &Device,
) -> Result<Vec<Subject>> {
    // The same file twice would only print the same row twice.
    crate::artifacts::distinct_paths(paths, "bench input")?;
    paths
        .iter()
        .map(|p| Subject::load(p, context, device))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests;
