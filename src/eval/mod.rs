//! Evaluating a trained run: validation loss on fixed windows ([`loss`]), story-quality probes
//! that need no judge ([`probes`]), and an optional LLM judge ([`judge`]).

pub mod judge;
pub mod probes;

use std::path::Path;
use std::sync::Arc;

use anyhow::{Result, bail};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::module::Module;
use serde::{Deserialize, Serialize};

use crate::data::dataset::{TokenBatcher, TokenWindows};
use crate::data::{tinystories, tokens};
use crate::infer::generate::Run;
use crate::model::Gpt;

/// Loss of a model on a token stream.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LossReport {
    /// What was evaluated: `validation split` or a file.
    pub data: String,
    /// Mean next-token cross-entropy, nats per token.
    pub loss: f64,
    pub perplexity: f64,
    /// Windows of `context` tokens, tiling the stream from its start.
    pub windows: usize,
    /// Tokens scored (`windows * context`).
    pub tokens: usize,
    /// Unigram entropy of the same stream (nats/token), for scale.
    pub unigram_entropy: f64,
}

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
                     delete it or evaluate with --data",
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
