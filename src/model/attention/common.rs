//! What every attention variant shares and what each must provide: the sizes a layer gets from
//! the model ([`AttentionDims`]), the decode paths ([`MlaDecode`]), the causal softmax, and the
//! contract as three traits the compiler checks ([`VariantConfig`], [`VariantModule`],
//! [`VariantCache`]). A leaf under the variants: it imports none of them, and `mod.rs`'s enums
//! dispatch to them through these traits.

use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::model::field::FieldError;
use crate::model::rope::{Rope, RopeConfig};
use crate::model::slot::{CacheSpec, SlotBytes};
use crate::rng::Rng;

/// A variant's config, as experiment files write it: it builds the module and states the
/// variant's formulas.
pub trait VariantConfig: Sized {
    type Module: VariantModule;
    /// The module, its weights drawn for a model of `dims`.
    fn init(&self, dims: AttentionDims, device: &Device) -> Self::Module;
    /// Problems with the variant's fields in a model of `dims` (named from `model`).
    fn validate(&self, dims: &AttentionDims) -> Vec<FieldError>;
    /// Elements cached per token per layer, from the formula.
    fn kv_elems_per_token(&self, dims: &AttentionDims) -> usize;
    /// Parameters of one attention layer (no bias anywhere).
    fn param_count(&self, dims: &AttentionDims) -> usize;
    /// Elements the variant's own forward keeps per token for the backward pass, beyond what
    /// every variant keeps ([`super::AttentionConfig::activations_per_token`]).
    fn activations_per_token(&self, dims: &AttentionDims) -> usize;
    /// Short human-readable name, e.g. `MLA+RoPE32 r=192 sep`.
    fn label(&self, dims: &AttentionDims) -> String;
    /// The width of the variant's latent, `None` for a variant without one.
    fn rank(&self) -> Option<usize>;
    /// The same attention with its latent `rank` wide, `None` for a variant without one.
    fn with_rank(&self, rank: usize) -> Option<Self>;
    /// The decode paths beyond the plain one: empty for a variant with one way to attend.
    fn decode_paths(&self) -> &'static [MlaDecode];
    /// Whether the paper this study reproduces (Mehta et al., arXiv 2506.09342: MHA, MLA,
    /// MLA+RoPE, and GQA as a cache baseline) left the variant out: reports mark its rows.
    fn beyond_the_paper(&self) -> bool {
        false
    }
}

/// A variant's module: stateless, its cache passed in.
pub trait VariantModule {
    type Cache: VariantCache;
    /// Attends causally over `x`, whose first token sits at absolute position `start`; with a
    /// cache, writes the new entries at `start..start+seq` and attends over all cached so far.
    ///
    /// # Shapes
    /// - x: `[batch, seq, d_model]`
    /// - output: `[batch, seq, d_model]`
    fn forward(&self, x: Tensor<3>, cache: Option<&mut Self::Cache>, start: usize) -> Tensor<3>;
    /// An empty cache for `spec.batch` sequences of up to `spec.capacity` tokens.
    fn new_cache(&self, spec: &CacheSpec) -> Self::Cache;
    /// Chooses the decode path of a variant that has several; a variant with one has nothing
    /// to choose.
    fn set_decode(&mut self, _decode: MlaDecode) {}
}

/// A variant's per-layer cache, built from [`crate::model::slot::CacheSlot`]s.
pub trait VariantCache {
    /// What each of its buffers holds.
    fn slot_bytes(&self) -> Vec<SlotBytes>;
    /// Fills positions `0..len` of every buffer with N(0, 1) values.
    fn fill_random(&mut self, len: usize, rng: &mut Rng);
}

/// How a latent variant attends over its cached latent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum MlaDecode {
    /// Reference path: up-project the whole cached latent to K and V every step.
    Naive,
    /// Fold `W_UK` into the query and `W_UV` into the output; attend over the latent itself.
    #[default]
    Absorbed,
}

/// Sizes a layer's attention needs from the model.
#[derive(Debug, Clone, Copy)]
pub struct AttentionDims {
    pub d_model: usize,
    pub n_heads: usize,
    pub context: usize,
    /// `Some(theta)` when the model uses rotary positions.
    pub rope_theta: Option<f64>,
    /// Blocks in the model: the output projection's initial scale depends on it.
    pub n_layers: usize,
}

impl AttentionDims {
    pub fn d_head(&self) -> usize {
        self.d_model / self.n_heads
    }

    /// Whether the model uses rotary positions.
    pub fn rope(&self) -> bool {
        self.rope_theta.is_some()
    }

    /// Rotation tables `dim` wide for the model's context (at its theta, or the usual 10,000
    /// where it has none), or `None` for a variant with no rotary part (`dim` 0).
    pub fn rotary_tables(&self, dim: usize, device: &Device) -> Option<Rope> {
        (dim > 0).then(|| {
            RopeConfig {
                dim,
                context: self.context,
                theta: self.rope_theta.unwrap_or(10_000.0),
            }
            .init(device)
        })
    }
}

/// `softmax(q·kᵀ)·v` over keys `0..start+seq` with a causal mask, each group of
/// `heads / kv_heads` query heads sharing one key/value head (query head `i` reads key/value head
/// `i / (heads / kv_heads)`); the queries arrive scaled. The composed reference: any backend, any
/// autodiff.
///
/// # Shapes
/// - q: `[batch, heads, seq, d_k]`, k: `[batch, kv_heads, keys, d_k]`,
///   v: `[batch, kv_heads, keys, d_v]`
/// - output: `[batch, heads, seq, d_v]`
pub fn causal_attention_reference(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    start: usize,
) -> Tensor<4> {
    let [b, h, t, dk] = q.dims();
    let [_, kvh, s, dv] = v.dims();
    // Each group of g = heads / kv_heads query heads shares one K/V head: the group's
    // queries become the rows of one product against that head, so K and V are read once
    // per group and never copied out per query head. (Spelling K and V out to every head by
    // expand + reshape copied the whole cache every decode step: at batch 16, cache 2048,
    // GQA decoded 7× slower than MHA on flex.)
    let g = h / kvh;
    let q = q.reshape([b, kvh, g * t, dk]); // [b, kvh, g*t, dk]
    let scores = q.matmul(k.swap_dims(2, 3)); // [b, kvh, g*t, s]
    let weights = causal_softmax(scores.reshape([b, h, t, s]), start); // [b, h, t, s]
    let out = weights.reshape([b, kvh, g * t, s]).matmul(v); // [b, kvh, g*t, dv]
    out.reshape([b, h, t, dv]) // [b, h, t, dv]
}

/// [`causal_attention_reference`]'s result, by the fastest path the tensors allow.
///
/// # Shapes
/// - q: `[batch, heads, seq, d_k]`, k: `[batch, kv_heads, keys, d_k]`,
///   v: `[batch, kv_heads, keys, d_v]`
/// - output: `[batch, heads, seq, d_v]`
pub fn causal_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, start: usize) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if let Some(out) = crate::model::kernels::causal_attention(&q, &k, &v, start) {
        return out;
    }
    causal_attention_reference(q, k, v, start)
}

/// Softmax over keys with a causal mask for queries at absolute positions
/// `start..start+seq` against keys at `0..keys`.
///
/// # Shapes
/// - scores: `[batch, heads, seq, keys]`
/// - output: `[batch, heads, seq, keys]`
pub(crate) fn causal_softmax(scores: Tensor<4>, start: usize) -> Tensor<4> {
    let [_, _, seq, keys] = scores.dims();
    assert_eq!(
        keys,
        start + seq,
        "causal_softmax: {keys} keys for queries at {start}..{}",
        start + seq
    );
    // A single query at the end sees every key: no mask to build.
    let scores = if seq > 1 {
        // tril_mask is true *above* the kept triangle: key j > query position start + i.
        let mask = Tensor::<2, Bool>::tril_mask([seq, keys], start as i64, &scores.device());
        scores.mask_fill(mask.reshape([1, 1, seq, keys]), f32::NEG_INFINITY) // [batch, heads, seq, keys]
    } else {
        scores
    };
    softmax(scores, 3)
}

/// A label's rotary part: `+RoPE16` for a decoupled rotary width of 16, nothing for 0.
pub(crate) fn rope_suffix(rope_dim: usize) -> String {
    if rope_dim > 0 {
        format!("+RoPE{rope_dim}")
    } else {
        String::new()
    }
}

/// Rotary part of the scores, `q^R_i·k^R`, or `None` without decoupled RoPE, for the variants
/// whose one rotary key serves every head (MLA, GLA, GTA). `k^R` is shared by all heads, so the heads become rows of one product per sequence: the key is read once, where
/// a product broadcast over heads would read it once per head.
///
/// # Shapes
/// - q_r: `[batch, heads, seq, rope_dim]`, k_r: `[batch, keys, rope_dim]`
/// - output: `[batch, heads, seq, keys]`
pub(crate) fn shared_key_scores(
    q_r: Option<Tensor<4>>,
    k_r: Option<Tensor<3>>,
) -> Option<Tensor<4>> {
    let (q_r, k_r) = (q_r?, k_r?);
    let [b, h, t, dr] = q_r.dims();
    let s = k_r.dims()[1];
    let scores = q_r.reshape([b, h * t, dr]).matmul(k_r.swap_dims(1, 2)); // [b, h*t, s]
    Some(scores.reshape([b, h, t, s])) // [b, h, t, s]
}

/// Problems with a decoupled rotary width `rope_dim` for heads of `d_head` in a model with
/// (`rope`) or without rotary positions; `variant` names the attention in messages. Shared by
/// the variants whose only positions are their rotary parts (MLA, GLA, GTA).
pub(crate) fn validate_rope_dim(
    rope_dim: usize,
    d_head: usize,
    rope: bool,
    variant: &str,
) -> Vec<FieldError> {
    let mut errs = vec![];
    if !rope_dim.is_multiple_of(2) {
        errs.push(FieldError::new(
            "attention.rope_dim",
            format!("{rope_dim} is odd; accepted: an even number (0 = no RoPE)"),
        ));
    }
    if rope_dim > d_head {
        errs.push(FieldError::new(
            "attention.rope_dim",
            format!("{rope_dim} exceeds the head dimension {d_head}; accepted: 0..={d_head}, even"),
        ));
    }
    match (rope, rope_dim) {
        (false, r) if r > 0 => errs.push(FieldError::new(
            "positions",
            format!(
                "Learned positions with {variant} rope_dim = {r}: decoupled RoPE carries the \
                 positions; accepted: Rope(theta), or rope_dim: 0 with Learned"
            ),
        )),
        (true, 0) => errs.push(FieldError::new(
            "positions",
            format!(
                "Rope positions with {variant} rope_dim = 0: RoPE cannot rotate compressed keys, \
                 so the model would see no positions; accepted: Learned, or rope_dim > 0 with \
                 Rope(theta)"
            ),
        )),
        _ => {}
    }
    errs
}
