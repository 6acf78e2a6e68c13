//! Text generation: prefill the prompt in one forward pass, then one token per step through
//! the KV cache. [`generate_uncached`] re-runs the full forward every step: the reference the
//! cached path is tested against.

use anyhow::{Result, anyhow, bail};
use burn::module::Module;
use burn::tensor::{DType, Device, Int, Tensor, TensorData};

use super::sampling::{Sampler, SamplingConfig};
use crate::artifacts::records::Sample;
use crate::data::tokenizer::Tokenizer;
use crate::model::Gpt;

/// When to stop.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_new_tokens: usize,
    /// Stop after emitting this token (`<|endoftext|>`), not included in the output.
    pub stop: Option<u32>,
}

fn check_prompt(prompt: &[u32], context: usize) -> Result<()> {
    if prompt.is_empty() {
        bail!("the prompt is empty; give at least one token");
    }
    if prompt.len() >= context {
        bail!(
            "the prompt is {} tokens; the model's context is {context}, so it must be at most {} to leave room for one new token",
            prompt.len(),
            context - 1
        );
    }
    Ok(())
}

/// The last position's logits of `[1, seq, vocab]`, on the host.
fn last_logits(logits: Tensor<3>) -> Result<Vec<f32>> {
    let [_, seq, vocab] = logits.dims();
    logits
        .narrow(1, seq - 1, 1)
        .reshape([vocab]) // [vocab]
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow!("reading logits: {e:?}"))
}

fn tokens(ids: &[u32], device: &Device) -> Tensor<2, Int> {
    let ids: Vec<i64> = ids.iter().map(|&t| t as i64).collect();
    let n = ids.len();
    Tensor::from_data(TensorData::new(ids, [1, n]), device)
}

/// Generates after `prompt` through the KV cache, calling `on_token` as each token is chosen.
/// Stops at `limits.stop`, after `max_new_tokens`, or when the context is full.
pub fn generate(
    model: &Gpt,
    prompt: &[u32],
    sampler: &mut Sampler,
    limits: Limits,
    mut on_token: impl FnMut(u32),
) -> Result<Vec<u32>> {
    let context = model.context();
    check_prompt(prompt, context)?;
    let device = model.devices()[0].clone();
    let mut cache = model.new_cache(1, DType::F32, &device);
    let mut logits = model.forward_cached(tokens(prompt, &device), &mut cache);
    let mut out = Vec::new();
    while out.len() < limits.max_new_tokens {
        let next = sampler.sample(&last_logits(logits)?);
        if Some(next) == limits.stop {
            break;
        }
        out.push(next);
        on_token(next);
        if cache.len() == context {
            break;
        }
        logits = model.forward_cached(tokens(&[next], &device), &mut cache);
    }
    Ok(out)
}

/// Reference: the same loop, re-running the full forward over everything so far each step.
pub fn generate_uncached(
    model: &Gpt,
    prompt: &[u32],
    sampler: &mut Sampler,
    limits: Limits,
) -> Result<Vec<u32>> {
    let context = model.context();
    check_prompt(prompt, context)?;
    let device = model.devices()[0].clone();
    let mut seq = prompt.to_vec();
    let mut out = Vec::new();
    while out.len() < limits.max_new_tokens {
        let next = sampler.sample(&last_logits(model.forward(tokens(&seq, &device)))?);
        if Some(next) == limits.stop {
            break;
        }
        out.push(next);
        if seq.len() == context {
            break;
        }
        seq.push(next);
    }
    Ok(out)
}

/// How `mla-lab generate` continues a prompt.
#[derive(Debug, Clone, Copy)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    pub sampling: SamplingConfig,
    pub seed: u64,
}

/// What [`continue_text`] would refuse, found before anything is shown: the sampling options,
/// and a prompt that is empty or leaves the model's context no room. Returns the prompt's ids.
pub fn check(
    model: &Gpt,
    tokenizer: &Tokenizer,
    prompt: &str,
    opts: &GenerateOptions,
) -> Result<Vec<u32>> {
    opts.sampling.validate()?;
    let ids = tokenizer.encode(prompt)?;
    check_prompt(&ids, model.context())?;
    Ok(ids)
}

/// Continues the text `prompt` until `<|endoftext|>`, the token limit or a full context,
/// handing each piece of text to `on_text` as soon as it decodes completely.
pub fn continue_text(
    model: &Gpt,
    tokenizer: &Tokenizer,
    prompt: &str,
    opts: &GenerateOptions,
    mut on_text: impl FnMut(&str),
) -> Result<()> {
    let ids = check(model, tokenizer, prompt, opts)?;
    let limits = Limits {
        max_new_tokens: opts.max_new_tokens,
        stop: Some(tokenizer.eot()),
    };
    let mut sampler = Sampler::new(opts.sampling, opts.seed);
    let mut stream = TextStream::default();
    let mut failed = None;
    generate(model, &ids, &mut sampler, limits, |id| {
        match stream.push(tokenizer, id) {
            Ok(piece) => on_text(&piece),
            Err(e) => failed = Some(e),
        }
    })?;
    failed.map_or(Ok(()), Err)
}

/// The prompts every run of a study continues for the report's examples, each with its own
/// seed (`1, 2, 3`): the openings of the built-in corpus's stories.
pub const SAMPLE_PROMPTS: [&str; 3] = [
    "Once upon a time",
    "One sunny day, Mia the bunny and her friend Leo went to the park",
    "Tom was a kind boy who loved his red ball",
];

/// Continuations of [`SAMPLE_PROMPTS`], sampled at temperature 0.8; a prompt that takes more
/// than half of the model's context is left out (there would be little room to continue it).
pub fn samples(model: &Gpt, tokenizer: &Tokenizer, max_new_tokens: usize) -> Result<Vec<Sample>> {
    let temperature = 0.8;
    let mut fitting = vec![];
    for (prompt, seed) in SAMPLE_PROMPTS.iter().zip(1u64..) {
        if tokenizer.encode(prompt)?.len() <= model.context() / 2 {
            fitting.push((prompt, seed));
        }
    }
    fitting
        .into_iter()
        .map(|(prompt, seed)| {
            let opts = GenerateOptions {
                max_new_tokens,
                sampling: SamplingConfig {
                    temperature,
                    top_k: None,
                    top_p: None,
                },
                seed,
            };
            let mut text = String::new();
            continue_text(model, tokenizer, prompt, &opts, |piece| {
                text.push_str(piece)
            })?;
            Ok(Sample {
                prompt: prompt.to_string(),
                seed,
                temperature,
                text,
            })
        })
        .collect()
}

/// Turns a growing list of token ids into text pieces to print: a BPE token can end in the
/// middle of a UTF-8 character, so only text that decodes completely is released.
#[derive(Default)]
pub struct TextStream {
    ids: Vec<u32>,
    printed: usize,
}

impl TextStream {
    /// The new text after `id`, possibly empty.
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> Result<String> {
        self.ids.push(id);
        let text = tokenizer.decode(&self.ids)?;
        if text.ends_with('\u{FFFD}') || text.len() < self.printed {
            return Ok(String::new());
        }
        let piece = text[self.printed..].to_string();
        self.printed = text.len();
        Ok(piece)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infer::sampling::SamplingConfig;
    use crate::model::tests::variants as all_variants;

    #[test]
    fn cached_generation_matches_full_forward_generation_for_every_variant() {
        let device = crate::backend::test_device();
        let prompt = [3u32, 17, 42, 5, 9];
        for (name, config) in all_variants() {
            device.seed(11);
            let model = config.init(&device);
            let limits = Limits {
                max_new_tokens: config.context - prompt.len(),
                stop: None,
            };
            let greedy = || Sampler::new(SamplingConfig::greedy(), 0);
            let cached = generate(&model, &prompt, &mut greedy(), limits, |_| {}).unwrap();
            let full = generate_uncached(&model, &prompt, &mut greedy(), limits).unwrap();
            assert_eq!(cached.len(), config.context - prompt.len(), "{name}");
            assert_eq!(
                cached, full,
                "{name}: cached decode diverged from full forward"
            );
            // Sampling too: same seed, same logits (up to float noise), same tokens.
            let sampled = SamplingConfig {
                temperature: 1.0,
                top_k: Some(20),
                top_p: Some(0.9),
            };
            let a = generate(
                &model,
                &prompt,
                &mut Sampler::new(sampled, 5),
                limits,
                |_| {},
            );
            let b = generate_uncached(&model, &prompt, &mut Sampler::new(sampled, 5), limits);
            assert_eq!(a.unwrap(), b.unwrap(), "{name}: sampled");
        }
    }

    #[test]
    fn stops_at_the_stop_token_and_at_the_limit() {
        let device = crate::backend::test_device();
        let (_, config) = all_variants().remove(0);
        let model = config.init(&device);
        let prompt = [1u32, 2, 3];
        let mut greedy = Sampler::new(SamplingConfig::greedy(), 0);
        let free = Limits {
            max_new_tokens: 6,
            stop: None,
        };
        let mut seen = vec![];
        let out = generate(&model, &prompt, &mut greedy, free, |t| seen.push(t)).unwrap();
        assert_eq!(out.len(), 6);
        assert_eq!(seen, out, "every token is streamed as it is chosen");
        // Stopping at the third token's id ends before it (it may occur earlier too).
        let stop = out[2];
        let first = out.iter().position(|&t| t == stop).unwrap();
        let limited = Limits {
            max_new_tokens: 6,
            stop: Some(stop),
        };
        let out2 = generate(&model, &prompt, &mut greedy, limited, |_| {}).unwrap();
        assert_eq!(out2, out[..first].to_vec());
    }

    #[test]
    fn a_prompt_that_fills_the_context_is_an_error() {
        let device = crate::backend::test_device();
        let (_, config) = all_variants().remove(0);
        let model = config.init(&device);
        let prompt = vec![1u32; config.context];
        let limits = Limits {
            max_new_tokens: 1,
            stop: None,
        };
        let mut greedy = Sampler::new(SamplingConfig::greedy(), 0);
        let err = generate(&model, &prompt, &mut greedy, limits, |_| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("context") && err.contains(&format!("{}", config.context - 1)));
    }
}
