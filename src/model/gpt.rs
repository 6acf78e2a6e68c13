//! A GPT-2-shaped decoder (Radford et al. 2019): token embedding, positions (learned or
//! rotary), `n_layers` pre-norm blocks of attention + GELU MLP, final LayerNorm, LM head tied
//! to the embedding by default.
//!
//! Cost accounting lives here: [`Gpt::param_count`], [`GptConfig::kv_elems_per_token`],
//! [`GptConfig::kv_bytes_per_token`]; the cache made by [`Gpt::new_cache`] reports what it
//! really holds.

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Embedding, LayerNorm, LayerNormConfig, Linear};
use burn::tensor::activation::gelu;
use burn::tensor::{DType, Device, IndexingUpdateOp, Int, Tensor};
use serde::{Deserialize, Serialize};

use super::attention::{Attention, AttentionConfig, AttentionDims, LayerCache, MlaDecode};
use super::init;
use crate::model::cache::KvCache;
use crate::model::slot::CacheSpec;

/// How the model knows where a token is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Positions {
    /// Absolute learned position embeddings added to the token embedding (GPT-2).
    Learned,
    /// Rotary embeddings with this base, applied inside attention: to q and k for MHA, to the
    /// decoupled rotary part for MLA.
    Rope(f64),
}

fn default_mlp_ratio() -> usize {
    4
}

fn default_tie() -> bool {
    true
}

/// The model section of an experiment file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GptConfig {
    /// Vocabulary size of the tokenizer.
    pub vocab_size: usize,
    /// Longest sequence, in tokens (training windows and the KV cache).
    pub context: usize,
    /// Residual width `d`.
    pub d_model: usize,
    pub n_layers: usize,
    /// Query heads; `d_head = d_model / n_heads`.
    pub n_heads: usize,
    /// MLP hidden width is `mlp_ratio * d_model` (default 4).
    #[serde(default = "default_mlp_ratio")]
    pub mlp_ratio: usize,
    pub positions: Positions,
    pub attention: AttentionConfig,
    /// Share the token embedding with the LM head (default true).
    #[serde(default = "default_tie")]
    pub tie_embeddings: bool,
}

impl GptConfig {
    pub fn d_head(&self) -> usize {
        self.d_model / self.n_heads
    }

    /// KV elements cached per token in one layer, from the formula.
    pub fn kv_elems_per_token_per_layer(&self) -> usize {
        self.attention.kv_elems_per_token(&self.attention_dims())
    }

    /// KV elements cached per token over all layers, from the formula.
    pub fn kv_elems_per_token(&self) -> usize {
        self.n_layers * self.kv_elems_per_token_per_layer()
    }

    /// KV bytes cached per token over all layers when stored as `dtype`.
    pub fn kv_bytes_per_token(&self, dtype: DType) -> usize {
        self.kv_elems_per_token() * dtype.size()
    }

    /// The same model with standard MHA (and the same positions where MHA can use them):
    /// the baseline for KV-cache reductions.
    pub fn mha_baseline(&self) -> GptConfig {
        GptConfig {
            attention: AttentionConfig::mha(self.n_heads),
            ..self.clone()
        }
    }

    /// What the attention of each layer needs to know of the model.
    pub fn attention_dims(&self) -> AttentionDims {
        AttentionDims {
            d_model: self.d_model,
            n_heads: self.n_heads,
            context: self.context,
            rope_theta: match self.positions {
                Positions::Rope(theta) => Some(theta),
                Positions::Learned => None,
            },
            n_layers: self.n_layers,
        }
    }

    /// The attention's short name, e.g. `MLA+RoPE32 r=192 sep` or `MHA+RoPE`.
    pub fn label(&self) -> String {
        self.attention.label(&self.attention_dims())
    }

    /// Parameters outside the embedding tables and the LM head, from the config alone (what
    /// [`Gpt::non_embedding_param_count`] counts on a built model).
    pub fn non_embedding_param_count(&self) -> usize {
        let (d, hidden) = (self.d_model, self.mlp_ratio * self.d_model);
        let layer_norm = 2 * d;
        let mlp = (d * hidden + hidden) + (hidden * d + d);
        let attention = self.attention.param_count(&self.attention_dims());
        self.n_layers * (2 * layer_norm + attention + mlp) + layer_norm
    }

    /// All parameters, from the config alone (what [`Gpt::param_count`] counts on a built
    /// model, without building it).
    pub fn param_count(&self) -> usize {
        let d = self.d_model;
        let learned = matches!(self.positions, Positions::Learned);
        self.non_embedding_param_count()
            + self.vocab_size * d
            + if learned { self.context * d } else { 0 }
            + if self.tie_embeddings {
                0
            } else {
                d * self.vocab_size
            }
    }

    /// Elements a training forward pass keeps per token for the backward pass up to the head,
    /// with windows of the full context: the embedding, each block's attention
    /// ([`AttentionConfig::activations_per_token`]), its two norms, residual sums and MLP
    /// (input, hidden before and after GELU), and the final norm. An estimate.
    pub fn body_activations_per_token(&self) -> usize {
        let (d, hidden) = (self.d_model, self.mlp_ratio * self.d_model);
        let attention = self
            .attention
            .activations_per_token(&self.attention_dims(), self.context);
        let block = attention + 4 * d + 2 * hidden;
        d + self.n_layers * block + d
    }

    /// Elements the head and the loss hold at once over `tokens` positions ([`Gpt::loss`]): the
    /// logits, their softmax and its gradient, for all positions when they fit in one chunk
    /// ([`head_chunk_rows`]); else for one chunk, plus the gradients of the positions and of
    /// the head's matrix that the chunks add up.
    pub fn head_activations(&self, tokens: usize) -> usize {
        let (vocab, d) = (self.vocab_size, self.d_model);
        let chunk = head_chunk_rows(vocab);
        if tokens <= chunk {
            3 * tokens * vocab
        } else {
            3 * chunk * vocab + tokens * d + vocab * d
        }
    }

    /// Elements a training forward pass keeps for the backward pass over `tokens` positions
    /// (one pass: a micro-batch's rows × context).
    pub fn training_activations(&self, tokens: usize) -> usize {
        tokens * self.body_activations_per_token() + self.head_activations(tokens)
    }

    /// The model as a run starts: every weight drawn now from `seed` ([`init::draw`]), the
    /// same numbers on every backend.
    pub fn init_drawn(&self, seed: u64, device: &Device) -> Gpt {
        let model = self.init(device);
        init::draw(&model, seed);
        model
    }

    /// The model with its weights still to draw (when first used, or by [`init::draw`]).
    pub fn init(&self, device: &Device) -> Gpt {
        let d = self.d_model;
        let dims = self.attention_dims();
        let residual = init::residual_std(self.n_layers);
        let blocks = (0..self.n_layers)
            .map(|_| Block {
                ln_1: LayerNormConfig::new(d)
                    .with_epsilon(NORM_EPSILON)
                    .init(device),
                attn: self.attention.init(dims, device),
                ln_2: LayerNormConfig::new(d)
                    .with_epsilon(NORM_EPSILON)
                    .init(device),
                fc: init::linear(d, self.mlp_ratio * d, true, init::STD, device),
                proj: init::linear(self.mlp_ratio * d, d, true, residual, device),
            })
            .collect();
        Gpt {
            // Not burn's default N(0, 1), which would make tied-head logits ~sqrt(d_model) wide
            // at the start (an initial loss of 24 nats instead of ln(vocab)).
            wte: init::embedding(self.vocab_size, d, init::STD, device),
            wpe: matches!(self.positions, Positions::Learned)
                .then(|| init::embedding(self.context, d, init::STD, device)),
            blocks,
            ln_f: LayerNormConfig::new(d)
                .with_epsilon(NORM_EPSILON)
                .init(device),
            lm_head: (!self.tie_embeddings)
                .then(|| init::linear(d, self.vocab_size, false, init::STD, device)),
            context: self.context,
        }
    }
}

/// Pre-norm transformer block: `x + attn(ln_1 x)`, then `x + mlp(ln_2 x)`.
#[derive(Module, Debug)]
pub struct Block {
    ln_1: LayerNorm,
    attn: Attention,
    ln_2: LayerNorm,
    fc: Linear,
    proj: Linear,
}

impl Block {
    /// # Shapes
    /// - x: `[batch, seq, d_model]`
    /// - output: `[batch, seq, d_model]`
    fn forward(&self, x: Tensor<3>, cache: Option<&mut LayerCache>, start: usize) -> Tensor<3> {
        let x = x.clone() + self.attn.forward(layer_norm(&self.ln_1, x), cache, start);
        let hidden = mlp_gelu(self.fc.forward(layer_norm(&self.ln_2, x.clone()))); // [batch, seq, mlp_ratio*d]
        x + self.proj.forward(hidden)
    }
}

/// Every LayerNorm's ε: burn's default, named so that the fused kernel uses the same.
const NORM_EPSILON: f64 = 1e-5;

/// `norm`'s LayerNorm of `x`: by the fused kernel on flex, else burn's.
///
/// # Shapes
/// - x: `[.., d_model]`
/// - output: as x
pub fn layer_norm<const D: usize>(norm: &LayerNorm, x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if let Some(beta) = &norm.beta
        && let Some(y) =
            crate::model::kernels::layer_norm(&x, &norm.gamma.val(), &beta.val(), NORM_EPSILON)
    {
        return y;
    }
    norm.forward(x)
}

/// The exact GELU: by the fused kernel on flex, else burn's.
pub fn mlp_gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if let Some(y) = crate::model::kernels::gelu(&x) {
        return y;
    }
    gelu(x)
}

#[derive(Module, Debug)]
pub struct Gpt {
    /// Token embedding `[vocab, d_model]`; also the LM head when tied.
    wte: Embedding,
    /// Learned absolute positions `[context, d_model]`.
    wpe: Option<Embedding>,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    /// Untied LM head.
    lm_head: Option<Linear>,
    context: usize,
}

impl Gpt {
    /// Full causal forward over whole sequences (training, evaluation).
    ///
    /// # Shapes
    /// - tokens: `[batch, seq]`
    /// - output: logits `[batch, seq, vocab]`
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        self.run(tokens, None, 0)
    }

    /// Mean next-token cross-entropy (nats per token): the training objective.
    ///
    /// # Shapes
    /// - inputs, targets: `[batch, seq]`
    /// - output: `[1]`
    pub fn loss(&self, inputs: Tensor<2, Int>, targets: Tensor<2, Int>) -> Tensor<1> {
        let rows = head_chunk_rows(self.vocab_size());
        self.head_loss(self.hidden(inputs, None, 0), targets, rows)
    }

    /// The LM head and the mean cross-entropy over `x`, the final norm's output: in one piece
    /// when its rows fit in one chunk of `chunk` rows, else chunk by chunk
    /// ([`chunked_cross_entropy`]), never holding more than one chunk's logits.
    ///
    /// # Shapes
    /// - x: `[batch, seq, d_model]`, targets: `[batch, seq]`
    /// - output: `[1]`
    pub fn head_loss(&self, x: Tensor<3>, targets: Tensor<2, Int>, chunk: usize) -> Tensor<1> {
        let [batch, seq, d] = x.dims();
        if batch * seq <= chunk {
            return Gpt::cross_entropy(self.head(x), targets);
        }
        chunked_cross_entropy(
            x.reshape([batch * seq, d]), // [rows, d]
            self.head_weight(),
            targets.reshape([batch * seq]), // [rows]
            chunk,
        )
    }

    /// # Shapes
    /// - logits: `[batch, seq, vocab]`, targets: `[batch, seq]`
    /// - output: `[1]`
    pub fn cross_entropy(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<1> {
        let [batch, seq, vocab] = logits.dims();
        let logits = logits.reshape([batch * seq, vocab]); // [batch*seq, vocab]
        let targets = targets.reshape([batch * seq]); // [batch*seq]
        CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits, targets)
    }

    /// Forward through the cache: `tokens` continue the sequences already cached (a prompt
    /// prefill, or one new token per step). Positions come from the cache.
    ///
    /// # Shapes
    /// - tokens: `[batch, seq]`
    /// - output: logits `[batch, seq, vocab]`
    pub fn forward_cached(&self, tokens: Tensor<2, Int>, cache: &mut KvCache) -> Tensor<3> {
        let [batch, seq] = tokens.dims();
        assert_eq!(
            batch,
            cache.batch(),
            "cache made for batch {}, got {batch}",
            cache.batch()
        );
        let start = cache.len();
        let logits = self.run(tokens, Some(cache), start);
        cache.advance(seq);
        logits
    }

    fn run(&self, tokens: Tensor<2, Int>, cache: Option<&mut KvCache>, start: usize) -> Tensor<3> {
        self.head(self.hidden(tokens, cache, start))
    }

    /// Embeddings, blocks and the final norm: what the LM head reads.
    ///
    /// # Shapes
    /// - tokens: `[batch, seq]`
    /// - output: `[batch, seq, d_model]`
    pub(crate) fn hidden(
        &self,
        tokens: Tensor<2, Int>,
        mut cache: Option<&mut KvCache>,
        start: usize,
    ) -> Tensor<3> {
        let [_, seq] = tokens.dims();
        assert!(
            start + seq <= self.context,
            "sequence of {} tokens exceeds the context of {}",
            start + seq,
            self.context
        );
        let device = tokens.device();
        let mut x = self.wte.forward(tokens); // [batch, seq, d]
        if let Some(wpe) = &self.wpe {
            let pos = Tensor::<1, Int>::arange(start as i64..(start + seq) as i64, &device)
                .reshape([1, seq]); // [1, seq]
            x = x + wpe.forward(pos); // [batch, seq, d] + [1, seq, d]
        }
        for (i, block) in self.blocks.iter().enumerate() {
            let layer_cache = cache.as_deref_mut().map(|c| &mut c.layers[i]);
            x = block.forward(x, layer_cache, start);
        }
        layer_norm(&self.ln_f, x)
    }

    /// # Shapes
    /// - x: `[batch, seq, d_model]`
    /// - output: logits `[batch, seq, vocab]`
    fn head(&self, x: Tensor<3>) -> Tensor<3> {
        match &self.lm_head {
            Some(head) => head.forward(x),
            None => tied_head(x, self.wte.weight.val()),
        }
    }

    /// The head's matrix with one row per token of the vocabulary: `[vocab, d_model]` (the
    /// embedding when tied; burn's `Linear` stores `[d_model, vocab]`).
    fn head_weight(&self) -> Tensor<2> {
        match &self.lm_head {
            Some(head) => head.weight.val().transpose(),
            None => self.wte.weight.val(),
        }
    }

    /// An empty cache for `batch` sequences, preallocated for the whole context.
    pub fn new_cache(&self, batch: usize, dtype: DType, device: &Device) -> KvCache {
        let spec = CacheSpec {
            batch,
            capacity: self.context,
            dtype,
            device: device.clone(),
        };
        let layers = self
            .blocks
            .iter()
            .map(|b| b.attn.new_cache(&spec))
            .collect();
        KvCache::new(layers, batch, self.context)
    }

    /// Choose the MLA decode path (no effect on MHA layers).
    pub fn with_mla_decode(mut self, decode: MlaDecode) -> Self {
        for block in self.blocks.iter_mut() {
            block.attn.set_decode(decode);
        }
        self
    }

    pub fn context(&self) -> usize {
        self.context
    }

    pub fn vocab_size(&self) -> usize {
        self.wte.weight.val().dims()[0]
    }

    /// All parameters (a tied head counts once).
    pub fn param_count(&self) -> usize {
        self.num_params()
    }

    /// Parameters outside the embedding tables and the LM head (Kaplan et al.'s `N`).
    pub fn non_embedding_param_count(&self) -> usize {
        self.num_params()
            - self.wte.num_params()
            - self.wpe.as_ref().map_or(0, |e| e.num_params())
            - self.lm_head.as_ref().map_or(0, |h| h.num_params())
    }
}

/// Rows (batch × seq) up to which the tied head multiplies the embedding by the activations
/// rather than the activations by the transposed embedding.
const FEW_ROWS: usize = 64;

/// Logits through the embedding matrix (tied head). `x @ wte^T` makes the CPU backend copy the
/// transposed `[d, vocab]` matrix on every call: negligible next to a training batch, but it
/// was ~75 ms of the ~80 ms per decoded token at paper scale. For a few rows (decoding),
/// `(wte @ x^T)^T` reads `wte` as stored and transposes only the small result.
///
/// # Shapes
/// - x: `[batch, seq, d]`, wte: `[vocab, d]`
/// - output: `[batch, seq, vocab]`
fn tied_head(x: Tensor<3>, wte: Tensor<2>) -> Tensor<3> {
    let [batch, seq, _] = x.dims();
    if batch * seq <= FEW_ROWS {
        tied_head_few_rows(x, wte)
    } else {
        let w = wte.transpose().unsqueeze_dim::<3>(0); // [1, d, vocab]
        x.matmul(w) // [batch, seq, vocab]
    }
}

fn tied_head_few_rows(x: Tensor<3>, wte: Tensor<2>) -> Tensor<3> {
    let [batch, seq, d] = x.dims();
    let vocab = wte.dims()[0];
    let rows = x.reshape([batch * seq, d]); // [rows, d]
    let logits = match head_blocks(vocab) {
        // One product per block of the vocabulary, as a batch: the CPU backend runs the
        // blocks of a batched product on all cores, where the one [vocab, d] x [d, rows]
        // product (a matrix-vector product when decoding one sequence) would run on one.
        Some(blocks) => wte
            .reshape([blocks, vocab / blocks, d]) // [blocks, vocab/blocks, d]
            .matmul(rows.transpose().unsqueeze_dim::<3>(0)) // [blocks, vocab/blocks, rows]
            .reshape([vocab, batch * seq]), // [vocab, rows]
        None => wte.matmul(rows.transpose()), // [vocab, rows]
    };
    logits
        .transpose() // [rows, vocab]
        .reshape([batch, seq, vocab]) // [batch, seq, vocab]
}

/// Splits the vocabulary into equal blocks for [`tied_head_few_rows`]: the largest divisor of
/// `vocab` from 4 to 64 (50,257 = 29 · 1,733 gives 29; 2,048 gives 64), or `None` when there is
/// none and the head stays one product.
fn head_blocks(vocab: usize) -> Option<usize> {
    (4..=64usize).rev().find(|b| vocab.is_multiple_of(*b))
}

/// Elements of the logits the training loss holds at once: 2^24, 64 MiB in f32 (the chunk's
/// exponentials and probabilities are as large). At paper scale (vocabulary 50,257) a chunk is
/// 333 positions; the whole batch's logits (32 × 512 positions) would be 3.3 GB, and as much
/// again for their gradient.
pub const HEAD_CHUNK_ELEMS: usize = 1 << 24;

/// Positions per chunk of the loss for `vocab` ([`HEAD_CHUNK_ELEMS`]).
pub fn head_chunk_rows(vocab: usize) -> usize {
    (HEAD_CHUNK_ELEMS / vocab.max(1)).max(1)
}

/// Mean cross-entropy of the logits `x · wᵀ` against `targets`, computed `chunk` rows at a
/// time, with its gradient computed in the same pass.
///
/// For each chunk: logits `z = x_c wᵀ`, `log Σ exp z − z_target` summed into the loss, and the
/// logits' gradient `(softmax(z) − onehot(target)) / rows`, from which `∂x_c` and the chunk's
/// share of `∂w` follow. Then the chunk's logits go. This is all outside autodiff, so autodiff
/// keeps no logits either; the gradients enter the graph through
/// `s = Σ x ⊙ ∂x + Σ w ⊙ ∂w` (with `∂x`, `∂w` constants): the loss returned is `s − s̄ + L`,
/// where `s̄` is `s` detached, which is `L` in value and has `∂x`, `∂w` as its gradients.
/// Without autodiff (validation) only the loss is computed.
///
/// # Shapes
/// - x: `[rows, d]`, w: `[vocab, d]`, targets: `[rows]`
/// - output: `[1]`
pub fn chunked_cross_entropy(
    x: Tensor<2>,
    w: Tensor<2>,
    targets: Tensor<1, Int>,
    chunk: usize,
) -> Tensor<1> {
    let [rows, d] = x.dims();
    let vocab = w.dims()[0];
    let grads = x.is_tracked() || w.is_tracked();
    let (xi, wi) = (x.clone().without_autodiff(), w.clone().without_autodiff());
    let targets = targets.without_autodiff();
    let device = xi.device();
    let wt = wi.clone().transpose(); // [d, vocab]
    let mut total = Tensor::<1>::zeros([1], &device);
    let mut dx = Vec::new();
    let mut dw = grads.then(|| Tensor::<2>::zeros([vocab, d], &device));
    for start in (0..rows).step_by(chunk.max(1)) {
        let len = chunk.min(rows - start);
        let xc = xi.clone().narrow(0, start, len); // [len, d]
        let tc = targets.clone().narrow(0, start, len).reshape([len, 1]); // [len, 1]
        let logits = xc.clone().matmul(wt.clone()); // [len, vocab]
        let (sum, dlogits) = chunk_loss(logits, tc, dw.is_some().then_some(rows));
        total = total + sum;
        if let (Some(dw), Some(dlogits)) = (dw.as_mut(), dlogits) {
            dx.push(dlogits.clone().matmul(wi.clone())); // [len, d]
            *dw = dw.clone() + dlogits.transpose().matmul(xc); // [vocab, d]
        }
    }
    let loss = total / rows as f64;
    let Some(dw) = dw else {
        return loss;
    };
    let dx = Tensor::cat(dx, 0); // [rows, d]
    let s = (x * dx).sum() + (w * dw).sum(); // [1]
    s.clone() - s.detach() + loss
}

/// One chunk of [`chunked_cross_entropy`]: `Σ log Σ exp z − z_target` over its rows and, with
/// `grad_rows` (the rows the loss is averaged over), the logits' gradient
/// `(softmax(z) − onehot(target)) / grad_rows`. On flex one pass per row computes both.
///
/// # Shapes
/// - logits: `[len, vocab]`, targets: `[len, 1]`
/// - output: `[1]`, and `[len, vocab]`
fn chunk_loss(
    logits: Tensor<2>,
    targets: Tensor<2, Int>,
    grad_rows: Option<usize>,
) -> (Tensor<1>, Option<Tensor<2>>) {
    let [len, _] = logits.dims();
    let device = logits.device();
    #[cfg(feature = "flex")]
    if crate::model::kernels::applies(&logits) {
        let (sum, dlogits) = crate::model::kernels::cross_entropy(
            logits,
            &targets.reshape([len]),
            grad_rows.map(|rows| 1.0 / rows as f32),
        )
        .expect("the kernel applies to flex tensors");
        return (Tensor::from_floats([sum as f32], &device), dlogits);
    }
    let shifted = logits.clone() - logits.max_dim(1); // [len, vocab]
    let exp = shifted.clone().exp(); // [len, vocab]
    let sum = exp.clone().sum_dim(1); // [len, 1]
    let picked = shifted.gather(1, targets.clone()); // [len, 1]
    let loss = (sum.clone().log() - picked).sum();
    let dlogits = grad_rows.map(|rows| {
        let minus_one = Tensor::<2>::full([len, 1], -1.0, &device);
        (exp / sum).scatter(1, targets, minus_one, IndexingUpdateOp::Add) / rows as f64 // [len, vocab]
    });
    (loss, dlogits)
}

#[cfg(test)]
mod head_tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn both_tied_head_paths_give_the_same_logits() {
        let device = crate::backend::test_device();
        // 97 is prime: one product; 96 splits into 48 blocks.
        assert_eq!(head_blocks(97), None);
        assert_eq!(head_blocks(96), Some(48));
        assert_eq!(head_blocks(50_257), Some(29));
        for vocab in [97, 96] {
            tied_head_paths_agree(vocab, &device);
        }
    }

    fn tied_head_paths_agree(vocab: usize, device: &Device) {
        let wte = Tensor::<2>::random([vocab, 16], Distribution::Normal(0.0, 1.0), device);
        for (batch, seq) in [(1, 1), (2, 3), (4, 40)] {
            let x = Tensor::<3>::random([batch, seq, 16], Distribution::Normal(0.0, 1.0), device);
            let many = x
                .clone()
                .matmul(wte.clone().transpose().unsqueeze_dim::<3>(0));
            let few = tied_head_few_rows(x.clone(), wte.clone());
            let auto = tied_head(x, wte.clone());
            assert_eq!(few.dims(), [batch, seq, vocab]);
            let diff = |a: Tensor<3>, b: Tensor<3>| a.sub(b).abs().max().into_scalar::<f32>();
            assert!(diff(many.clone(), few) < 1e-4);
            assert!(diff(many, auto) < 1e-4);
        }
    }
}
