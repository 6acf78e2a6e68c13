//! Evaluating a trained run: validation loss on fixed windows ([`loss`]), story-quality probes
//! that need no judge ([`probes`]), and an optional LLM judge ([`judge`]).

pub mod judge;
pub mod probes;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use burn::data::dataloader::batcher::Batcher;
use burn::module::Module;
use burn::tensor::activation::log_softmax;
use serde::Serialize;

use crate::artifacts::records::{JudgeReport, LossReport, ProbeReport};
use crate::artifacts::run::Run;
use crate::data::config::DataSource;
use crate::data::dataset::{TokenBatcher, Window};
use crate::data::tinystories::{self, Piece};
use crate::data::{stories, tokens};
use crate::experiment::Experiment;
use crate::model::Gpt;
use crate::options::InvalidOption;

/// Windows per forward pass when `mla-lab eval` and the study score a run (the loss does not
/// depend on it; memory does).
pub const EVAL_BATCH: usize = 16;

/// Where the windows that score a stream start: every `context / 2` tokens, so that windows
/// overlap by half. The first window scores all its positions; each later one scores only its
/// second half, where every token has at least `context / 2` tokens before it. Every token of
/// the stream but the first is then scored exactly once, up to the last full window.
fn window_starts(len: usize, context: usize) -> Vec<usize> {
    let stride = (context / 2).max(1);
    (0..)
        .map(|i| i * stride)
        .take_while(|&start| start + context < len)
        .collect()
}

/// Mean next-token loss over all of `stream` (or its first `max_windows` windows), in
/// half-overlapping windows of `context` tokens ([`window_starts`]), `batch` windows at a
/// time.
pub fn loss(
    model: &Gpt,
    stream: Vec<u32>,
    max_windows: Option<usize>,
    batch: usize,
    what: &str,
) -> Result<LossReport> {
    let context = model.context();
    let unigram_entropy = tokens::unigram_entropy(&stream);
    let mut starts = window_starts(stream.len(), context);
    starts.truncate(max_windows.unwrap_or(usize::MAX));
    if starts.is_empty() {
        bail!(
            "{what}: {} tokens, fewer than one window of context + 1 = {}",
            stream.len(),
            context + 1
        );
    }
    let device = model.devices()[0].clone();
    let first_scored = |start: usize| if start == 0 { 0 } else { context - context / 2 };
    let (mut total, mut scored) = (0.0f64, 0usize);
    for chunk in starts.chunks(batch.max(1)) {
        let items: Vec<Window> = chunk
            .iter()
            .map(|&s| Window(stream[s..s + context + 1].to_vec()))
            .collect();
        let b = TokenBatcher.batch(items, &device);
        let logp = log_softmax(model.forward(b.inputs), 2); // [n, context, vocab]
        let picked = logp.gather(2, b.targets.unsqueeze_dim::<3>(2)); // [n, context, 1]
        let picked: Vec<f32> = picked
            .into_data()
            .try_to_vec()
            .map_err(|e| anyhow::anyhow!("reading losses: {e:?}"))?;
        for (w, &start) in chunk.iter().enumerate() {
            for pos in first_scored(start)..context {
                total -= picked[w * context + pos] as f64;
                scored += 1;
            }
        }
    }
    let loss = total / scored as f64;
    Ok(LossReport {
        data: what.into(),
        loss,
        perplexity: loss.exp(),
        windows: starts.len(),
        max_windows,
        tokens: scored,
        unigram_entropy,
        checkpoint_step: None,
    })
}

/// Tokens that fill `windows` windows of `context` tokens ([`window_starts`]).
fn tokens_for(windows: usize, context: usize) -> usize {
    let stride = (context / 2).max(1);
    windows
        .saturating_sub(1)
        .saturating_mul(stride)
        .saturating_add(context + 1)
}

/// The tokens to evaluate a run on: its own validation split (from the token cache, rebuilt if
/// missing), or the stories of `file` encoded with the run's tokenizer, each followed by
/// `<|endoftext|>` as in training. A file is read only as far as the first `max_windows`
/// windows reach (the tokens they cover, no more), so that a quick look at a large file reads
/// a little of it.
pub fn stream(
    run: &Run,
    file: Option<&Path>,
    cache_root: &Path,
    max_windows: Option<usize>,
) -> Result<(Vec<u32>, String)> {
    let Some(path) = file else {
        let exp = &run.experiment;
        let data = tokens::prepare(&exp.data, exp.seed, cache_root)?;
        if data.tokenizer.fingerprint() != run.tokenizer.fingerprint() {
            bail!(
                "{}: the token cache was made with another tokenizer than {}'s; \
                 delete it or evaluate on a story file",
                data.dir.display(),
                run.dir.display()
            );
        }
        return Ok((data.val, "validation split".into()));
    };
    let limit = max_windows.map(|w| tokens_for(w, run.model.context()));
    let (mut ids, mut failed) = (Vec::new(), None);
    tinystories::read(path, |piece| {
        let more = match piece {
            Piece::Text(text) => run.tokenizer.encode(text),
            Piece::End => Ok(vec![run.tokenizer.eot()]),
        };
        match more {
            Ok(more) => ids.extend(more),
            Err(e) => {
                failed = Some(e);
                return ControlFlow::Break(());
            }
        }
        if limit.is_some_and(|n| ids.len() >= n) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    if let Some(e) = failed {
        return Err(e.context(path.display().to_string()));
    }
    ids.truncate(limit.unwrap_or(usize::MAX));
    Ok((ids, path.display().to_string()))
}

/// The corpus's entropy floor on the validation split, nats per token: the entropy the
/// generator's draws put into the held-out stories (a lower bound, [`crate::data::stories::Story::entropy`]),
/// summed, over the split's tokens (each story's and its `<|endoftext|>`). No model can reach a
/// lower expected loss on that split. `None` for a corpus read from a file, whose draws are
/// unknown.
pub fn entropy_floor(exp: &Experiment, cache_root: &Path) -> Result<Option<f64>> {
    let Some(nats) = split_entropy(exp)? else {
        return Ok(None);
    };
    let data = tokens::prepare(&exp.data, exp.seed, cache_root)?;
    Ok(Some(nats / data.manifest.val_tokens as f64))
}

/// The entropy the generator's draws put into the validation split's stories, nats in all (the
/// numerator of [`entropy_floor`]); `None` for a corpus read from a file.
pub fn split_entropy(exp: &Experiment) -> Result<Option<f64>> {
    let DataSource::Synthetic { count, seed } = exp.data.source else {
        return Ok(None);
    };
    let is_val = tokens::split(count, exp.data.val_fraction, exp.seed)?;
    Ok(Some(
        (0..count)
            .filter(|&i| is_val[i])
            .map(|i| stories::story(seed, i).entropy)
            .sum(),
    ))
}

/// What `mla-lab eval` measures.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// A story file to score instead of the run's validation split.
    pub data: Option<PathBuf>,
    /// Scores only the first this many windows (a quick look), reading a story file only as
    /// far as they reach; `None`: all of the stream.
    pub windows: Option<usize>,
    /// Story probes; none when `probes.stories` is 0.
    pub probes: probes::ProbeOptions,
    /// An LLM judge and how many stories it grades.
    pub judge: Option<(judge::JudgeConfig, usize)>,
    /// The token cache folder (`<artifacts>/cache`).
    pub cache: PathBuf,
}

impl EvalOptions {
    /// The loss alone on the run's own validation split: its first `windows` windows (`None`:
    /// all of them), no probes and no judge; `cache` is the token cache folder.
    pub fn loss_only(windows: Option<usize>, cache: PathBuf) -> EvalOptions {
        EvalOptions {
            data: None,
            windows,
            probes: probes::ProbeOptions {
                stories: 0,
                ..Default::default()
            },
            judge: None,
            cache,
        }
    }
}

/// A run's loss, and its probes and judge's grades when asked for.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub loss: LossReport,
    pub probes: Option<ProbeReport>,
    pub judge: Option<JudgeReport>,
}

impl Evaluation {
    /// The text `mla-lab eval` prints: a line each for loss, probes and judge.
    pub fn text(&self, name: &str) -> String {
        let r = &self.loss;
        let mut s = format!(
            "{name}: val loss {:.4} (ppl {:.2}) on {} ({} windows, {} tokens); unigram entropy {:.3}\n",
            r.loss, r.perplexity, r.data, r.windows, r.tokens, r.unigram_entropy
        );
        if let Some(p) = &self.probes {
            s += &format!(
                "probes on {} held-out stories: character consistency {}, object consistency {}, attribute consistency {}, grammar {}, 3-gram repetition {}, distinct-2 {}, distinct-3 {}\n",
                p.stories,
                p.character_consistency,
                p.object_consistency,
                p.attribute_consistency
                    .map_or_else(|| "-".to_string(), |s| s.to_string()),
                p.grammar,
                p.repetition_3gram,
                p.distinct_2,
                p.distinct_3
            );
        }
        if let Some(j) = &self.judge {
            s += &format!(
                "judge {} on {} stories: grammar {:.2} ± {:.2}, creativity {:.2} ± {:.2}, consistency {:.2} ± {:.2}\n",
                j.model,
                j.stories,
                j.grammar.mean,
                j.grammar.sd,
                j.creativity.mean,
                j.creativity.sd,
                j.consistency.mean,
                j.consistency.sd
            );
        }
        s
    }
}

/// Loss, then the probes and the judge when `opts` asks for them.
pub fn evaluate(run: &Run, opts: &EvalOptions) -> Result<Evaluation> {
    if opts.windows == Some(0) {
        return Err(InvalidOption::new(
            "windows",
            0,
            "at least 1 window (or leave it out: the whole split or file)",
        )
        .into());
    }
    // The run's own split and held-out stories must be those of the data it trained on.
    if opts.data.is_none() || opts.probes.stories > 0 || opts.judge.is_some() {
        run.check_data()?;
    }
    let (stream, what) = stream(run, opts.data.as_deref(), &opts.cache, opts.windows)?;
    let mut loss = loss(&run.model, stream, opts.windows, EVAL_BATCH, &what)?;
    loss.checkpoint_step = run.checkpoint_step;
    let probes = (opts.probes.stories > 0)
        .then(|| probes::run(&run.model, &run.tokenizer, &run.experiment, &opts.probes))
        .transpose()?;
    let judge = match &opts.judge {
        Some((cfg, n)) => Some(judge::judge(
            cfg,
            &probes::for_judge(run, &opts.probes, *n)?,
        )?),
        None => None,
    };
    Ok(Evaluation {
        loss,
        probes,
        judge,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::variants;

    #[test]
    fn loss_scores_every_token_once_whatever_the_batch() {
        let device = crate::backend::test_device();
        let (_, config) = variants().remove(0);
        let model = config.init(&device);
        let context = config.context;
        let stream: Vec<u32> = (0..500u32).map(|i| (i * 7 + i / 3) % 61).collect();
        let one = loss(&model, stream.clone(), None, 1, "s").unwrap();
        let many = loss(&model, stream.clone(), None, 7, "s").unwrap();
        assert!((one.loss - many.loss).abs() < 1e-5, "{one:?} {many:?}");
        // Windows every context/2 tokens while one fits; together they score each token from
        // the second to the end of the last window once.
        let starts = window_starts(stream.len(), context);
        assert_eq!(one.windows, starts.len());
        assert_eq!(one.tokens, starts.last().unwrap() + context);
        assert!(stream.len() - one.tokens <= context / 2 + 1, "{one:?}");
        // Untrained: about ln(vocab).
        assert!((one.loss - (61f64).ln()).abs() < 0.5, "{}", one.loss);
        // The first window alone scores its every position.
        let first = loss(&model, stream.clone(), Some(1), 1, "s").unwrap();
        assert_eq!((first.windows, first.tokens), (1, context));
        let too_short = loss(&model, stream[..context].to_vec(), None, 1, "short");
        assert!(too_short.unwrap_err().to_string().contains("short"));
    }

    #[test]
    fn scoring_with_half_windows_matches_the_full_forward_on_one_window() {
        // With a stream of exactly one window, the loss is the model's own mean loss.
        let device = crate::backend::test_device();
        let (_, config) = variants().remove(0);
        let model = config.init(&device);
        let stream: Vec<u32> = (0..=config.context as u32).map(|i| (i * 5) % 61).collect();
        let r = loss(&model, stream.clone(), None, 4, "s").unwrap();
        let b = TokenBatcher.batch(vec![Window(stream)], &device);
        let reference: f32 = model.loss(b.inputs, b.targets).into_scalar();
        assert!(
            (r.loss - reference as f64).abs() < 1e-5,
            "{} {reference}",
            r.loss
        );
    }
}
