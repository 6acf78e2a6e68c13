//! Evaluating a trained run: validation loss on fixed windows ([`loss`]), story-quality probes
//! that need no judge ([`probes`]), and an optional LLM judge ([`judge`]).

pub mod judge;
pub mod probes;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Result, bail};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::module::Module;
use serde::Serialize;

use crate::artifacts::Run;
use crate::artifacts::records::{JudgeReport, LossReport, ProbeReport};
use crate::data::dataset::{TokenBatcher, TokenWindows};
use crate::data::{tinystories, tokens};
use crate::model::Gpt;

/// Windows per forward pass when `mla-lab eval` and the study score a run (the loss does not
/// depend on it; memory does).
pub const EVAL_BATCH: usize = 16;

/// Mean loss over the first `max_windows` tiled windows of `stream`, `batch` at a time.
pub fn loss(
    model: &Gpt,
    stream: Vec<u32>,
    max_windows: usize,
    batch: usize,
    what: &str,
) -> Result<LossReport> {
    let context = model.context();
    let unigram_entropy = tokens::unigram_entropy(&stream);
    let windows = TokenWindows::validation(Arc::new(stream), context)?;
    let n = windows.len().min(max_windows);
    if n == 0 {
        bail!("no window to evaluate");
    }
    let device = model.devices()[0].clone();
    let mut total = 0.0;
    let mut i = 0;
    while i < n {
        let items: Vec<_> = (i..(i + batch).min(n)).map(|j| windows.window(j)).collect();
        let count = items.len();
        let b = TokenBatcher.batch(items, &device);
        let l: f32 = model.loss(b.inputs, b.targets).into_scalar();
        total += l as f64 * count as f64;
        i += count;
    }
    let loss = total / n as f64;
    Ok(LossReport {
        data: what.into(),
        loss,
        perplexity: loss.exp(),
        windows: n,
        tokens: n * context,
        unigram_entropy,
    })
}

/// The tokens to evaluate a run on: its own validation split (from the token cache, rebuilt if
/// missing), or the stories of `file` encoded with the run's tokenizer, each followed by
/// `<|endoftext|>` as in training.
pub fn stream(run: &Run, file: Option<&Path>, cache_root: &Path) -> Result<(Vec<u32>, String)> {
    match file {
        None => {
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
            Ok((data.val, "validation split".into()))
        }
        Some(path) => {
            let stories = tinystories::load(path)?;
            let mut ids = Vec::new();
            for s in &stories {
                ids.extend(run.tokenizer.encode(s)?);
                ids.push(run.tokenizer.eot());
            }
            Ok((ids, path.display().to_string()))
        }
    }
}

/// What `mla-lab eval` measures.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// A story file to score instead of the run's validation split.
    pub data: Option<PathBuf>,
    /// Windows of `context` tokens to score, from the start of the stream.
    pub windows: usize,
    /// Story probes; none when `probes.stories` is 0.
    pub probes: probes::ProbeOptions,
    /// An LLM judge and how many stories it grades.
    pub judge: Option<(judge::JudgeConfig, usize)>,
    /// The token cache folder (`<artifacts>/cache`).
    pub cache: PathBuf,
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
                "probes on {} held-out stories: character consistency {}, object consistency {}, grammar {}, 3-gram repetition {}, distinct-2 {}, distinct-3 {}\n",
                p.stories,
                p.character_consistency,
                p.object_consistency,
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
    let (stream, what) = stream(run, opts.data.as_deref(), &opts.cache)?;
    let loss = loss(&run.model, stream, opts.windows, EVAL_BATCH, &what)?;
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
    fn loss_is_the_mean_over_windows_whatever_the_batch() {
        let device = crate::backend::test_device();
        let (_, config) = variants().remove(0);
        let model = config.init(&device);
        let stream: Vec<u32> = (0..500u32).map(|i| (i * 7 + i / 3) % 61).collect();
        let one = loss(&model, stream.clone(), 20, 1, "s").unwrap();
        let many = loss(&model, stream.clone(), 20, 7, "s").unwrap();
        assert!((one.loss - many.loss).abs() < 1e-5, "{one:?} {many:?}");
        assert_eq!(one.windows, 20);
        assert_eq!(one.tokens, 20 * config.context);
        // Untrained: about ln(vocab).
        assert!((one.loss - (61f64).ln()).abs() < 0.5, "{}", one.loss);
        // Fewer windows than asked when the stream is short.
        let all = loss(&model, stream, 10_000, 8, "s").unwrap();
        assert_eq!(all.windows, 499 / config.context);
    }
}
