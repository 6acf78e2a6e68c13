//! What training an experiment takes in memory, worked out from its file alone (nothing is
//! allocated): parameters, their gradients, AdamW's two moments, the activations a forward
//! pass keeps for the backward pass at the file's batch and context, and, for generation, the
//! KV cache of one sequence at full context. All in f32. `info` prints it; `train` refuses a
//! run whose estimate exceeds the memory the machine has free, and `bench` a batch and context
//! whose weights, filled cache and prompt's forward pass would not fit
//! ([`MemoryEstimate::inference`], [`check_bench`]).

use serde::Serialize;

use crate::experiment::{Experiment, divisors_below};
use crate::model::GptConfig;
use crate::model::gpt::head_chunk_rows;

const F32: u128 = 4;

/// Bytes, by what holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemoryEstimate {
    pub params: u64,
    /// The gradients: twice over in passes of a micro-batch (the step's sum and the pass's).
    pub gradients: u64,
    /// AdamW's first and second moments.
    pub optimizer: u64,
    /// Kept by one forward pass for its backward pass, at `micro_batch` (else `batch_size`)
    /// × context tokens ([`GptConfig::training_activations`]).
    pub activations: u64,
    /// The KV cache: for training's estimate ([`MemoryEstimate::of`]), generation's for one
    /// sequence at full context; for inference's ([`MemoryEstimate::inference`]), the batch's.
    pub kv_cache: u64,
}

impl MemoryEstimate {
    /// Training as the file asks: passes of `train.micro_batch` rows, else the whole batch.
    pub fn of(exp: &Experiment) -> MemoryEstimate {
        MemoryEstimate::of_pass(exp, exp.train.rows_per_pass())
    }

    /// Training with `rows` rows of the batch in one forward and backward pass.
    pub fn of_pass(exp: &Experiment, rows: usize) -> MemoryEstimate {
        let m = &exp.model;
        let params = m.param_count() as u128;
        let tokens = rows.saturating_mul(m.context);
        // In passes, the step's summed gradients are held beside the pass's own.
        let gradient_sets = if rows < exp.train.batch_size { 2 } else { 1 };
        MemoryEstimate {
            params: bytes(params),
            gradients: bytes(gradient_sets * params),
            optimizer: bytes(2 * params),
            activations: bytes(
                tokens as u128 * m.body_activations_per_token() as u128
                    + m.head_activations(tokens) as u128,
            ),
            kv_cache: bytes(m.kv_elems_per_token() as u128 * m.context as u128),
        }
    }

    /// What a forward pass over `batch` sequences of `context` tokens into a KV cache holds: the
    /// weights, the cache (allocated whole for the model's own context, whatever it is filled
    /// to), and the activations ([`inference_activations_per_token`]). No gradients, no
    /// optimizer state.
    pub fn inference(model: &GptConfig, batch: usize, context: usize) -> MemoryEstimate {
        let tokens = batch as u128 * context as u128;
        MemoryEstimate {
            params: bytes(model.param_count() as u128),
            gradients: 0,
            optimizer: 0,
            activations: bytes(tokens * inference_activations_per_token(model, context) as u128),
            kv_cache: bytes(
                batch as u128 * model.context as u128 * model.kv_elems_per_token() as u128,
            ),
        }
    }

    /// What one decode step holds over a cache filled to `context` without a prefill (bench's
    /// random fill): the weights, the cache, and the step's activations: those of `batch` new
    /// tokens ([`inference_activations_per_token`]), plus one layer's keys and values spelled
    /// out over the whole cache (`2 · batch · context · d_model`: naive MLA up-projects them,
    /// GQA widens its shared heads), a bound for every path.
    pub fn decode_step(model: &GptConfig, batch: usize, context: usize) -> MemoryEstimate {
        let spelled_out = 2 * batch as u128 * context as u128 * model.d_model as u128;
        MemoryEstimate {
            activations: bytes(
                batch as u128 * inference_activations_per_token(model, context) as u128
                    + spelled_out,
            ),
            ..MemoryEstimate::inference(model, batch, 0)
        }
    }

    /// Everything an inference pass holds at once ([`MemoryEstimate::inference`]).
    pub fn inference_total(&self) -> u64 {
        [self.params, self.kv_cache, self.activations]
            .into_iter()
            .fold(0u64, u64::saturating_add)
    }

    /// Everything a training step holds at once.
    pub fn training(&self) -> u64 {
        [
            self.params,
            self.gradients,
            self.optimizer,
            self.activations,
        ]
        .into_iter()
        .fold(0u64, u64::saturating_add)
    }

    /// `parameters 4.2 MiB, gradients …`: the parts of [`MemoryEstimate::training`].
    pub fn parts(&self) -> String {
        format!(
            "parameters {}, gradients {}, AdamW state {}, activations {}",
            human(self.params),
            human(self.gradients),
            human(self.optimizer),
            human(self.activations)
        )
    }
}

/// Elements a forward pass without gradients holds per token at once, at `context`: training's
/// count ([`GptConfig::activations_per_token`]) with two blocks' activations instead of every
/// block's (a block's are freed once the next has its input; two, to be safe), then the
/// logits and what turns them into a token.
pub fn inference_activations_per_token(model: &GptConfig, context: usize) -> usize {
    let (d, hidden) = (model.d_model, model.mlp_ratio * model.d_model);
    let attention = model
        .attention
        .activations_per_token(&model.attention_dims(), context);
    let block = attention + 4 * d + 2 * hidden;
    d + model.n_layers.min(2) * block + d + 3 * model.vocab_size
}

/// f32 elements to bytes, saturating.
fn bytes(elems: u128) -> u64 {
    u64::try_from(elems.saturating_mul(F32)).unwrap_or(u64::MAX)
}

/// The largest single tensor a training pass of `rows` rows allocates, by what it is, and its
/// bytes: one layer's attention scores, the MLP's hidden activations, the logits (whole, or
/// one chunk of them), or a vocabulary-sized matrix (the embedding, its gradient, AdamW's
/// moments). A device that caps one allocation (wgpu's largest buffer) must hold it.
pub fn largest_tensor(exp: &Experiment, rows: usize) -> (String, u64) {
    let m = &exp.model;
    let (ctx, d, vocab) = (m.context, m.d_model, m.vocab_size);
    let tokens = rows.saturating_mul(ctx);
    let chunk = head_chunk_rows(vocab);
    let logits = if tokens <= chunk {
        (
            format!("the logits, {rows} × {ctx} × {vocab}"),
            tokens as u128 * vocab as u128,
        )
    } else {
        (
            format!("a chunk of the logits, {chunk} × {vocab}"),
            chunk as u128 * vocab as u128,
        )
    };
    let hidden = m.mlp_ratio * d;
    [
        (
            format!(
                "one layer's attention scores, {rows} × {} × {ctx} × {ctx}",
                m.n_heads
            ),
            rows as u128 * m.n_heads as u128 * ctx as u128 * ctx as u128,
        ),
        (
            format!("the MLP's hidden activations, {rows} × {ctx} × {hidden}"),
            tokens as u128 * hidden as u128,
        ),
        logits,
        (
            format!("the embedding, {vocab} × {d}"),
            vocab as u128 * d as u128,
        ),
    ]
    .into_iter()
    .max_by_key(|(_, elems)| *elems)
    .map(|(what, elems)| (what, bytes(elems)))
    .expect("four candidates")
}

/// Why a run is not started on a device that caps one allocation (a wgpu adapter's largest
/// buffer): a pass's largest tensor exceeds the cap.
#[derive(Debug, thiserror::Error)]
#[error(
    "{what} take {} in one buffer, but {device} allows at most {} in one; {}",
    human(*bytes),
    human(*cap),
    remedy(*fits, *rows)
)]
pub struct TooLarge {
    /// The largest tensor of a pass ([`largest_tensor`]) and its bytes.
    pub what: String,
    pub bytes: u64,
    pub cap: u64,
    pub device: String,
    /// Rows per pass, as asked.
    pub rows: usize,
    /// The largest micro-batch (a divisor of `rows`) whose largest tensor fits, with its bytes.
    pub fits: Option<(usize, u64)>,
}

/// Whether every tensor of a pass of `rows` rows fits in one allocation of at most `cap` bytes
/// on `device`; when not, the largest divisor of `rows` that would.
pub fn check_allocation(
    exp: &Experiment,
    rows: usize,
    cap: u64,
    device: &str,
) -> Result<(), TooLarge> {
    let (what, bytes) = largest_tensor(exp, rows);
    if bytes <= cap {
        return Ok(());
    }
    let fits = divisors_below(rows, rows)
        .map(|m| (m, largest_tensor(exp, m).1))
        .find(|(_, b)| *b <= cap);
    Err(TooLarge {
        what,
        bytes,
        cap,
        device: device.into(),
        rows,
        fits,
    })
}

/// `512 KiB`, `3.4 MiB`, `1.2 GiB`.
pub fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

/// Why a run is not started: its estimate exceeds the memory available.
#[derive(Debug, thiserror::Error)]
#[error(
    "training needs about {} ({}) in passes of {rows} rows, but {where_} has {} available; the \
     largest part is {}; {}",
    human(estimate.training()),
    estimate.parts(),
    human(*available),
    largest.0,
    remedy(*fits, *rows)
)]
pub struct TooBig {
    pub estimate: MemoryEstimate,
    pub available: u64,
    /// What holds the memory: "this machine", "the GPU".
    pub where_: String,
    /// Rows of the batch per forward and backward pass, as asked.
    pub rows: usize,
    /// The largest single tensor of a pass ([`largest_tensor`]).
    pub largest: (String, u64),
    /// The largest micro-batch (a divisor of `rows`) whose estimate fits, if any.
    pub fits: Option<(usize, u64)>,
}

fn remedy(fits: Option<(usize, u64)>, rows: usize) -> String {
    match fits {
        Some((m, need)) if m < rows => format!(
            "train.micro_batch {m} would fit (about {}): the same run in passes of {m} rows",
            human(need)
        ),
        _ => "no micro-batch fits: lower model.context, or use a smaller model".into(),
    }
}

/// Whether training `exp` in passes of `rows` rows fits in `available` bytes of `where_`; when
/// it does not, the largest divisor of `rows` that would.
pub fn check_pass(
    exp: &Experiment,
    rows: usize,
    available: u64,
    where_: &str,
) -> Result<MemoryEstimate, Box<TooBig>> {
    let estimate = MemoryEstimate::of_pass(exp, rows);
    if estimate.training() <= available {
        return Ok(estimate);
    }
    let fits = divisors_below(rows, rows)
        .map(|m| (m, MemoryEstimate::of_pass(exp, m).training()))
        .find(|(_, need)| *need <= available);
    Err(Box::new(TooBig {
        estimate,
        available,
        where_: where_.into(),
        rows,
        largest: largest_tensor(exp, rows),
        fits,
    }))
}

/// Why a bench is not started: its largest case, with every model's weights loaded, exceeds
/// the memory available.
#[derive(Debug, thiserror::Error)]
#[error(
    "batch {batch} at context {context} needs about {} (weights {}, KV cache {}, forward pass {}), but this machine has {} available",
    human(self.total()),
    human(*weights),
    human(case.kv_cache),
    human(case.activations),
    human(*available)
)]
pub struct BenchTooBig {
    pub batch: usize,
    pub context: usize,
    /// Every model's weights, all loaded at once.
    pub weights: u64,
    /// The largest case (its `params` already counted in `weights`).
    pub case: MemoryEstimate,
    pub available: u64,
}

impl BenchTooBig {
    pub fn total(&self) -> u64 {
        self.weights
            .saturating_add(self.case.kv_cache)
            .saturating_add(self.case.activations)
    }
}

/// The bytes a bench of `models` at every batch and context holds at its peak (every model's
/// weights, and the largest case's cache and forward pass: a prefill's when `prefill`, else a
/// decode step's; contexts past a model's own are not benched), or an error when that exceeds
/// `available` bytes.
pub fn check_bench(
    models: &[&GptConfig],
    batches: &[usize],
    contexts: &[usize],
    prefill: bool,
    available: u64,
) -> Result<u64, BenchTooBig> {
    let weights = models
        .iter()
        .map(|m| MemoryEstimate::inference(m, 0, 0).params)
        .fold(0u64, u64::saturating_add);
    let mut largest: Option<BenchTooBig> = None;
    for m in models {
        for &batch in batches {
            for &context in contexts.iter().filter(|&&c| c <= m.context) {
                let case = if prefill {
                    MemoryEstimate::inference(m, batch, context)
                } else {
                    MemoryEstimate::decode_step(m, batch, context)
                };
                let candidate = BenchTooBig {
                    batch,
                    context,
                    weights,
                    case,
                    available,
                };
                if largest
                    .as_ref()
                    .is_none_or(|l| candidate.total() > l.total())
                {
                    largest = Some(candidate);
                }
            }
        }
    }
    match largest {
        Some(l) if l.total() > available => Err(l),
        Some(l) => Ok(l.total()),
        None => Ok(weights),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Experiment {
        Experiment::load(crate::files::source("experiments/small/mha.ron")).unwrap()
    }

    #[test]
    fn parameters_gradients_and_adam_state_come_from_the_parameter_count() {
        let exp = small();
        let e = MemoryEstimate::of(&exp);
        let params = exp.model.param_count() as u64 * 4;
        assert_eq!(
            (e.params, e.gradients, e.optimizer),
            (params, params, 2 * params)
        );
        assert_eq!(
            e.kv_cache,
            (exp.model.kv_bytes_per_token(burn::tensor::DType::F32) * exp.model.context) as u64
        );
        assert_eq!(e.training(), 4 * params + e.activations);
    }

    #[test]
    fn activations_grow_with_the_batch_and_faster_than_linearly_with_the_context() {
        let exp = small();
        let base = MemoryEstimate::of(&exp).activations;
        let mut twice_batch = exp.clone();
        twice_batch.train.batch_size *= 2;
        assert_eq!(MemoryEstimate::of(&twice_batch).activations, 2 * base);
        let mut twice_context = exp.clone();
        twice_context.model.context *= 2;
        // Twice the tokens, and each token's attention row twice as long.
        assert!(MemoryEstimate::of(&twice_context).activations > 2 * base);
    }

    #[test]
    fn the_paper_scale_head_holds_a_chunk_of_logits_and_micro_batches_lower_the_peak() {
        let exp = Experiment::load(crate::files::source("experiments/mla_rope_half.ron")).unwrap();
        let m = &exp.model;
        let tokens = exp.train.batch_size * m.context;
        // The whole batch's logits, softmax and gradient would be 3 × 3.3 GB; a chunk's are
        // 3 × 64 MiB, plus the positions' and the embedding's gradients.
        let whole = 3 * tokens * m.vocab_size;
        assert!(m.head_activations(tokens) < whole / 10);
        assert_eq!(
            m.head_activations(tokens),
            3 * head_chunk_rows(m.vocab_size) * m.vocab_size
                + tokens * m.d_model
                + m.vocab_size * m.d_model
        );
        // At a few positions the head is computed whole.
        assert_eq!(m.head_activations(100), 300 * m.vocab_size);
        // A micro-batch of 8 rows holds a quarter of the body's activations.
        let (all, eighth) = (
            MemoryEstimate::of_pass(&exp, 32),
            MemoryEstimate::of_pass(&exp, 8),
        );
        assert!(
            eighth.activations < all.activations / 3,
            "{eighth:?} {all:?}"
        );
        assert_eq!(eighth.params, all.params);
        let mut file = exp.clone();
        file.train.micro_batch = Some(8);
        assert_eq!(MemoryEstimate::of(&file), eighth);
        // Refused with the micro-batch that fits, and what the largest tensor is.
        let available = eighth.training() + 1;
        let err = check_pass(&exp, 32, available, "the GPU").unwrap_err();
        assert_eq!(err.fits.map(|f| f.0), Some(8));
        let text = err.to_string();
        assert!(
            text.contains("the GPU has")
                && text.contains("train.micro_batch 8 would fit")
                && text.contains("attention scores, 32 × 6 × 512 × 512"),
            "{text}"
        );
        let none = check_pass(&exp, 32, eighth.params, "the GPU").unwrap_err();
        assert!(none.fits.is_none() && none.to_string().contains("no micro-batch fits"));
        assert!(check_pass(&exp, 8, available, "the GPU").is_ok());
        // A device that caps one buffer at 100 MiB: the scores of 32 rows (192 MiB) do not
        // fit, those of 16 (96 MiB) do.
        let err = check_allocation(&exp, 32, 100 << 20, "wgpu: test").unwrap_err();
        assert_eq!(err.fits.map(|f| f.0), Some(16));
        let text = err.to_string();
        assert!(
            text.contains("attention scores") && text.contains("train.micro_batch 16 would fit"),
            "{text}"
        );
        assert!(check_allocation(&exp, 16, 100 << 20, "wgpu: test").is_ok());
        // The largest tensor: at one row the embedding, above it the scores.
        assert!(largest_tensor(&exp, 1).0.starts_with("the embedding"));
        assert_eq!(largest_tensor(&exp, 32).1, 32 * 6 * 512 * 512 * 4);
    }

    #[test]
    fn a_run_past_the_memory_available_is_refused_with_the_estimate() {
        let mut exp = small();
        exp.model.context = crate::model::validate::MAX_CONTEXT;
        let check =
            |exp: &Experiment| check_pass(exp, exp.train.rows_per_pass(), 24 << 30, "this machine");
        let err = check(&exp).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("2.0 PiB") && text.contains("activations"),
            "{text}"
        );
        assert!(text.contains("24.0 GiB available"), "{text}");
        assert!(check(&small()).is_ok());
    }

    #[test]
    fn a_bench_past_the_memory_available_names_its_largest_case() {
        let exp = small();
        let m = &exp.model;
        let one = MemoryEstimate::inference(m, 1, 64);
        assert_eq!(one.params, m.param_count() as u64 * 4);
        // The cache is allocated for the model's whole context, whatever it is filled to.
        assert_eq!(
            one.kv_cache,
            (m.kv_bytes_per_token(burn::tensor::DType::F32) * m.context) as u64
        );
        assert_eq!(MemoryEstimate::inference(m, 1, 16).kv_cache, one.kv_cache);
        let twice = MemoryEstimate::inference(m, 2, 64);
        assert_eq!(
            (twice.kv_cache, twice.activations),
            (2 * one.kv_cache, 2 * one.activations)
        );
        assert_eq!(
            one.inference_total(),
            one.params + one.kv_cache + one.activations
        );
        // Training's count with two blocks instead of every block (the same for two layers).
        let at_64 = GptConfig {
            context: 64,
            ..m.clone()
        };
        assert!(m.n_layers > 2);
        let training_per_token = |m: &GptConfig| m.body_activations_per_token() + 3 * m.vocab_size;
        assert!(inference_activations_per_token(m, 64) < training_per_token(&at_64));
        let two_layers = GptConfig {
            n_layers: 2,
            ..at_64
        };
        assert_eq!(
            inference_activations_per_token(&two_layers, 64),
            training_per_token(&two_layers)
        );
        let models = [m, m];
        let fits = check_bench(&models, &[1], &[64, 128], true, 24 << 30).unwrap();
        let at_128 = MemoryEstimate::inference(m, 1, 128);
        assert_eq!(fits, 2 * one.params + at_128.kv_cache + at_128.activations);
        // Contexts past the model's own are not benched, so not counted.
        let beyond = check_bench(&models, &[1_000_000_000], &[m.context + 1], true, 24 << 30);
        assert_eq!(beyond.unwrap(), 2 * one.params);
        let err = check_bench(&models, &[1, 1_000_000_000], &[16, 64], true, 24 << 30).unwrap_err();
        assert_eq!((err.batch, err.context), (1_000_000_000, 64));
        let text = err.to_string();
        assert!(
            text.contains("batch 1000000000 at context 64")
                && text.contains("KV cache")
                && text.contains("24.0 GiB available"),
            "{text}"
        );
        // Filled without a prefill, the peak is one step's: its new tokens and one layer's
        // keys and values over the cache, not a prompt's forward pass.
        let step = check_bench(&models, &[4], &[128], false, 24 << 30).unwrap();
        let at_128 = MemoryEstimate::inference(m, 4, 128);
        let step_activations =
            4 * inference_activations_per_token(m, 128) + 2 * 4 * 128 * m.d_model;
        assert_eq!(
            step,
            2 * one.params + at_128.kv_cache + 4 * step_activations as u64
        );
        assert!(step < check_bench(&models, &[4], &[128], true, 24 << 30).unwrap());
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(3 << 20), "3.0 MiB");
        assert_eq!(human(u64::MAX), "16.0 EiB");
    }
}
