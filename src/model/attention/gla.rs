//! Grouped latent attention (GLA): Zadouri, Strauss and Dao, "Hardware-Efficient Attention for
//! Fast Decoding" (arXiv 2505.21487, 2025), as the authors' `LlamaFlashGLA` computes it. MLA's
//! latent is split into `g` latent heads, each with its own RMSNorm; latent head `j` serves query
//! heads `j·h/g .. (j+1)·h/g`, as a key/value head serves its group in GQA. One decoupled rotary
//! key is shared by every query head, as in MLA. Only the latent heads and the rotary key are
//! cached. Weights are named as in [`super::mla`], with `j` the latent head of query head `i`:
//!
//! ```text
//! c_j   = kv_norm_j(W^DKV_j h)          j = 1..g     latent head j, width r: cached
//! k^R   = RoPE(W^KR h)                               one rotary key, width d_h^R: cached
//! q^C_i = W^Q_i h,  q^R_i = RoPE(W^QR_i h)           i = 1..n_heads
//! k^C_i = W^UK_i c_j,  v^C_i = W^UV_i c_j            j = i / (n_heads / g)
//! score_i = (q^C_i·k^C_i + q^R_i·k^R) / sqrt(d_h + d_h^R)
//! u     = W^O [softmax(score_i) v^C_i]_i
//! ```
//!
//! A token costs `g·r + d_h^R` cached elements per layer. `g = 1` is MLA with one joint latent
//! (`Mla(layout: Joint)`), weight for weight. With `rope_dim: 0` the model uses learned
//! positions, as MLA without RoPE does.
//!
//! Where this departs from the authors' code, on purpose: their `W^DKV` yields the latent heads
//! and the rotary key as one product (`[c_1 .. c_g, k^R]`), ours as two (`W^DKV`, `W^KR`): the
//! same map, its columns named apart. Their queries pass through a low-rank `W^DQ`, an RMSNorm
//! and `W^UQ`; ours are `W^Q h`, as in our MLA, so that the two differ only in the latent. Their
//! projections carry biases; none of ours do. Their width `r` is `2·d_h`; here it is the
//! config's `rank`.
//!
//! Caching, attending and both decode paths are the latent core's ([`super::latent`]) with `g`
//! latents: each latent head is read once per step for all its query heads.

use burn::module::Module;
use burn::nn::{Linear, RmsNorm, RmsNormConfig};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::common::{
    AttentionDims, MlaDecode, VariantConfig, VariantModule, rope_suffix, validate_rope_dim,
};
use super::latent::{Absorbed, LatentCache, LatentHeads};
use crate::model::field::FieldError;
use crate::model::init;
use crate::model::rope::Rope;
use crate::model::slot::CacheSpec;

/// A GLA layer as experiment files write it: `Gla(groups: 2, rank: 32, rope_dim: 8)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlaConfig {
    /// Latent heads `g`; each serves `n_heads / g` query heads.
    pub groups: usize,
    /// Width `r` of each latent head.
    pub rank: usize,
    /// Width of the rotary key all heads share (`d_h^R`); 0 = no RoPE inside GLA.
    pub rope_dim: usize,
}

impl VariantConfig for GlaConfig {
    type Module = Gla;

    fn init(&self, dims: AttentionDims, device: &Device) -> Gla {
        let (d, h, dh) = (dims.d_model, dims.n_heads, dims.d_head());
        let (g, r, dr) = (self.groups, self.rank, self.rope_dim);
        let linear = |i, o| init::linear(i, o, false, init::STD, device);
        let rotary = dr > 0;
        Gla {
            w_q: linear(d, h * dh),
            w_qr: rotary.then(|| linear(d, h * dr)),
            w_dkv: linear(d, g * r),
            kv_norm: (0..g).map(|_| RmsNormConfig::new(r).init(device)).collect(),
            w_uk: linear(r, h * dh),
            w_uv: linear(r, h * dh),
            w_kr: rotary.then(|| linear(d, dr)),
            wo: init::linear(h * dh, d, false, init::residual_std(dims.n_layers), device),
            rope: dims.rotary_tables(dr, device),
            n_heads: h,
            d_head: dh,
            groups: g,
            rank: r,
            rope_dim: dr,
            decode: MlaDecode::default(),
        }
    }

    /// Problems with this config in a model of `dims`; fields are named from `model`.
    fn validate(&self, dims: &AttentionDims) -> Vec<FieldError> {
        let (g, h) = (self.groups, dims.n_heads);
        let mut errs = vec![];
        if g == 0 || g > h || !h.is_multiple_of(g) {
            errs.push(FieldError::new(
                "attention.groups",
                format!(
                    "{g} does not divide n_heads = {h}; accepted: a divisor of n_heads (1 = MLA \
                     with a joint latent)"
                ),
            ));
        }
        if self.rank == 0 || self.rank > dims.d_model {
            errs.push(FieldError::new(
                "attention.rank",
                format!(
                    "{} is out of range; accepted: 1..={} (at most d_model)",
                    self.rank, dims.d_model
                ),
            ));
        }
        errs.extend(validate_rope_dim(
            self.rope_dim,
            dims.d_head(),
            dims.rope(),
            "GLA",
        ));
        errs
    }

    /// Elements cached per token per layer: every latent head and the rotary key.
    fn kv_elems_per_token(&self, _dims: &AttentionDims) -> usize {
        self.groups * self.rank + self.rope_dim
    }

    /// Parameters of one layer: `W^Q`, `W^O`; `W^DKV` and the latent heads' norms; `W^UK`,
    /// `W^UV`; `W^QR`, `W^KR`.
    fn param_count(&self, dims: &AttentionDims) -> usize {
        let (d, h) = (dims.d_model, dims.n_heads);
        let (g, r, dr) = (self.groups, self.rank, self.rope_dim);
        2 * d * d + g * (d * r + r) + 2 * r * d + (h + 1) * d * dr
    }

    /// Elements kept for the backward pass per token, beyond what every variant keeps: q;
    /// latents and their norms; k and v up-projected; the rotary parts, rotated, and their
    /// scores' inputs.
    fn activations_per_token(&self, dims: &AttentionDims) -> usize {
        let (d, h, dr) = (dims.d_model, dims.n_heads, self.rope_dim);
        let rotary = if dr > 0 {
            2 * (h + 1) * dr + 2 * h * (dims.d_head() + dr)
        } else {
            0
        };
        d + 2 * self.groups * self.rank + 2 * d + rotary
    }

    /// `GLA-2+RoPE8 r=32`.
    fn label(&self, _dims: &AttentionDims) -> String {
        let rope = rope_suffix(self.rope_dim);
        format!("GLA-{}{rope} r={}", self.groups, self.rank)
    }

    /// Each latent head's width.
    fn rank(&self) -> Option<usize> {
        Some(self.rank)
    }

    /// The same layer with latent heads `rank` wide.
    fn with_rank(&self, rank: usize) -> Option<Self> {
        Some(GlaConfig { rank, ..*self })
    }

    /// Left out by the reproduced paper: a row beyond it.
    fn beyond_the_paper(&self) -> bool {
        true
    }

    /// The reference path and the absorbed one.
    fn decode_paths(&self) -> &'static [MlaDecode] {
        &[MlaDecode::Naive, MlaDecode::Absorbed]
    }
}

#[derive(Module, Debug)]
pub struct Gla {
    /// `W^Q`: `d_model -> n_heads * d_head`
    w_q: Linear,
    /// `W^QR`: `d_model -> n_heads * rope_dim` (decoupled RoPE only)
    w_qr: Option<Linear>,
    /// `[W^DKV_1; ...; W^DKV_g]`: `d_model -> groups * rank`
    w_dkv: Linear,
    /// One RMSNorm per latent head.
    kv_norm: Vec<RmsNorm>,
    /// `W^UK`: `rank -> n_heads * d_head`; head i reads its latent head's `c_j`.
    w_uk: Linear,
    /// `W^UV`: `rank -> n_heads * d_head`
    w_uv: Linear,
    /// `W^KR`: `d_model -> rope_dim`, one key for all heads (decoupled RoPE only)
    w_kr: Option<Linear>,
    /// `W^O`: `n_heads * d_head -> d_model`
    wo: Linear,
    /// Rotation tables of width `rope_dim`.
    rope: Option<Rope>,
    n_heads: usize,
    d_head: usize,
    groups: usize,
    rank: usize,
    rope_dim: usize,
    #[module(skip)]
    decode: MlaDecode,
}

impl Gla {
    /// The weights and sizes the latent core computes with: `groups` latent heads.
    fn heads(&self) -> LatentHeads<'_> {
        LatentHeads {
            w_q: &self.w_q,
            w_qr: self.w_qr.as_ref(),
            w_kr: self.w_kr.as_ref(),
            w_uk: &self.w_uk,
            w_uv: &self.w_uv,
            wo: &self.wo,
            rope: self.rope.as_ref(),
            n_heads: self.n_heads,
            d_head: self.d_head,
            groups: self.groups,
            rank: self.rank,
            rope_dim: self.rope_dim,
            decode: self.decode,
        }
    }

    /// `W^UK` and `W^UV` laid out per query head for the absorbed decode path.
    pub fn absorbed(&self) -> Absorbed {
        self.heads().absorbed()
    }

    /// The current tokens' latent heads, each normalised by its own RMSNorm; each is its own
    /// key latent and value latent.
    ///
    /// # Shapes
    /// - x: `[batch, seq, d_model]`
    /// - output: `[batch, groups, seq, rank]` twice
    fn latents(&self, x: Tensor<3>) -> (Tensor<4>, Tensor<4>) {
        let [b, t, _] = x.dims();
        let (g, r) = (self.groups, self.rank);
        let c = self.w_dkv.forward(x).reshape([b, t, g, r]); // [b, t, g, r]
        let heads: Vec<Tensor<4>> = self
            .kv_norm
            .iter()
            .enumerate()
            .map(|(j, norm)| norm.forward(c.clone().narrow(2, j, 1))) // [b, t, 1, r]
            .collect();
        let c = Tensor::cat(heads, 2).swap_dims(1, 2); // [b, g, t, r]
        (c.clone(), c)
    }
}

impl VariantModule for Gla {
    type Cache = GlaCache;

    /// # Shapes
    /// - x: `[batch, seq, d_model]`
    /// - output: `[batch, seq, d_model]`
    fn forward(&self, x: Tensor<3>, cache: Option<&mut Self::Cache>, start: usize) -> Tensor<3> {
        let latents = self.latents(x.clone());
        self.heads().forward(x, latents, cache, start)
    }

    /// An empty cache of latent heads (and the rotary key), with the absorbed path's weights
    /// when that is the path chosen.
    fn new_cache(&self, spec: &CacheSpec) -> GlaCache {
        self.heads().new_cache(spec, false)
    }

    /// Chooses how to attend over the cached latents.
    fn set_decode(&mut self, decode: MlaDecode) {
        self.decode = decode;
    }
}

/// What a GLA layer caches: its latent heads (`[batch, groups, capacity, rank]`) and the
/// rotary key.
pub type GlaCache = LatentCache;
