//! Multi-head latent attention, DeepSeek-V2 (arXiv 2405.04434) §2.1, weights named after its
//! equations (9)–(19):
//!
//! ```text
//! c_KV = kv_norm(W^DKV h)                      (9)   latent, the only thing cached (+ k^R)
//! k^C  = W^UK c_KV,   v^C = W^UV c_KV          (10, 11)
//! q^C  = W^Q h                                 queries are not compressed here
//! q^R  = RoPE(W^QR h)  per head                (15)
//! k^R  = RoPE(W^KR h)  shared by all heads     (16)
//! score = (q^C·k^C + q^R·k^R) / sqrt(d_h + d_h^R)
//! u    = W^O [softmax(score) v^C]              (19)
//! ```
//!
//! `LatentLayout::Separate` gives K and V their own latents (`c_K = kv_norm(W^DK h)`,
//! `c_V = v_norm(W^DV h)`); `W^DK` and `W^DV` are stored stacked in `w_dkv`. With
//! `latent_norm: false` the latents go unnormed (`c_KV = W^DKV h`): the form a model converted
//! from MHA takes, exact at full rank (`model::convert`).
//!
//! Both layouts are the latent core's single latent ([`super::latent`]): it caches, attends
//! and decodes (`Naive` or `Absorbed`, [`MlaDecode`]); this file makes the latents.
//!
//! This file owns the rest of the variant: its config as experiment files write it and its
//! validation, its module, its formulas (KV elements, parameters, activations), its label and
//! its decode paths.

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

/// An MLA layer as experiment files write it: `Mla(rank: 64, layout: Separate, rope_dim: 16)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "MlaInFile")]
pub struct MlaConfig {
    /// Width `r` of each latent (`d_c` in DeepSeek-V2).
    pub rank: usize,
    /// One latent shared by K and V, or one each.
    pub layout: LatentLayout,
    /// Width of the decoupled rotary key/query part (`d_h^R`); 0 = no RoPE inside MLA.
    pub rope_dim: usize,
    /// DeepSeek's RMSNorm on each latent (`kv_norm`, and `v_norm` with separate latents); the
    /// default. `false` caches the latent as `W^DKV h` is: what a model converted from MHA
    /// needs, since a norm rescales each token's latent and no linear map undoes that. Written
    /// in a file only when `false`.
    #[serde(skip_serializing_if = "is_true")]
    pub latent_norm: bool,
}

fn is_true(b: &bool) -> bool {
    *b
}

/// [`MlaConfig`] as files may write it: the former `decode` field (the decode path, now chosen
/// when running) is still accepted, so older files parse, and then dropped, so it never tells
/// two experiments apart. The experiment loader notes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename = "MlaConfig")]
struct MlaInFile {
    rank: usize,
    layout: LatentLayout,
    rope_dim: usize,
    #[serde(default = "MlaInFile::normed")]
    latent_norm: bool,
    /// Read so that an old file parses (and a bad value is still refused), then dropped.
    #[serde(default, rename = "decode")]
    _decode: MlaDecode,
}

impl MlaInFile {
    fn normed() -> bool {
        true
    }
}

impl From<MlaInFile> for MlaConfig {
    fn from(f: MlaInFile) -> Self {
        MlaConfig {
            rank: f.rank,
            layout: f.layout,
            rope_dim: f.rope_dim,
            latent_norm: f.latent_norm,
        }
    }
}

/// How MLA's latent is shared between keys and values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LatentLayout {
    /// DeepSeek-V2: one latent `c_KV` of width `rank` for both K and V.
    Joint,
    /// K and V each have their own latent of width `rank` (`c_K`, `c_V`).
    Separate,
}

impl LatentLayout {
    /// Number of latents of width `rank` cached per token.
    pub fn latents(self) -> usize {
        match self {
            LatentLayout::Joint => 1,
            LatentLayout::Separate => 2,
        }
    }
}

#[derive(Module, Debug)]
pub struct Mla {
    /// `W^Q`: `d_model -> n_heads * d_head`
    w_q: Linear,
    /// `W^QR`: `d_model -> n_heads * rope_dim` (decoupled RoPE only)
    w_qr: Option<Linear>,
    /// `W^DKV`: `d_model -> rank` (joint) or `d_model -> 2 * rank` (`[W^DK; W^DV]`, separate)
    w_dkv: Linear,
    /// RMSNorm on `c_KV` (joint) or `c_K` (separate), unless the latents go unnormed
    kv_norm: Option<RmsNorm>,
    /// RMSNorm on `c_V` (separate and normed only)
    v_norm: Option<RmsNorm>,
    /// `W^UK`: `rank -> n_heads * d_head`
    w_uk: Linear,
    /// `W^UV`: `rank -> n_heads * d_head`
    w_uv: Linear,
    /// `W^KR`: `d_model -> rope_dim` (decoupled RoPE only)
    w_kr: Option<Linear>,
    /// `W^O`: `n_heads * d_head -> d_model`
    wo: Linear,
    /// Rotation tables of width `rope_dim`.
    rope: Option<Rope>,
    n_heads: usize,
    d_head: usize,
    rank: usize,
    rope_dim: usize,
    #[module(skip)]
    layout: LatentLayout,
    #[module(skip)]
    pub(crate) decode: MlaDecode,
}

impl VariantConfig for MlaConfig {
    type Module = Mla;

    fn init(&self, dims: AttentionDims, device: &Device) -> Mla {
        let d = dims.d_model;
        let h = dims.n_heads;
        let dh = dims.d_head();
        let (r, dr) = (self.rank, self.rope_dim);
        let linear = |i, o| init::linear(i, o, false, init::STD, device);
        let rotary = dr > 0;
        Mla {
            w_q: linear(d, h * dh),
            w_qr: rotary.then(|| linear(d, h * dr)),
            w_dkv: linear(d, self.layout.latents() * r),
            kv_norm: self.latent_norm.then(|| RmsNormConfig::new(r).init(device)),
            v_norm: (self.latent_norm && self.layout == LatentLayout::Separate)
                .then(|| RmsNormConfig::new(r).init(device)),
            w_uk: linear(r, h * dh),
            w_uv: linear(r, h * dh),
            w_kr: rotary.then(|| linear(d, dr)),
            wo: init::linear(h * dh, d, false, init::residual_std(dims.n_layers), device),
            rope: dims.rotary_tables(dr, device),
            n_heads: h,
            d_head: dh,
            rank: r,
            rope_dim: dr,
            layout: self.layout,
            decode: MlaDecode::default(),
        }
    }

    /// Problems with this config in a model of `dims`; fields are named from `model`.
    fn validate(&self, dims: &AttentionDims) -> Vec<FieldError> {
        let (rank, rope_dim, d_head) = (self.rank, self.rope_dim, dims.d_head());
        let mut errs = vec![];
        if rank == 0 || rank > dims.d_model {
            errs.push(FieldError::new(
                "attention.rank",
                format!(
                    "{rank} is out of range; accepted: 1..={} (at most d_model)",
                    dims.d_model
                ),
            ));
        }
        errs.extend(validate_rope_dim(rope_dim, d_head, dims.rope(), "MLA"));
        errs
    }

    /// Elements cached per token per layer: the latent(s) and the shared rotary key.
    fn kv_elems_per_token(&self, _dims: &AttentionDims) -> usize {
        self.layout.latents() * self.rank + self.rope_dim
    }

    /// Parameters of one layer: `W^Q`, `W^O`; `W^DKV` and the latents' norms (one gain per
    /// channel); `W^UK`, `W^UV`; `W^QR`, `W^KR`.
    fn param_count(&self, dims: &AttentionDims) -> usize {
        let (d, h, r, dr) = (dims.d_model, dims.n_heads, self.rank, self.rope_dim);
        let latents = self.layout.latents();
        let norm = if self.latent_norm { r } else { 0 };
        2 * d * d + latents * (d * r + norm) + 2 * r * d + (h + 1) * d * dr
    }

    /// Elements kept for the backward pass per token, beyond what every variant keeps: q;
    /// latents and their norms (where normed); k and v up-projected; the rotary parts, rotated, and q and k
    /// with them appended.
    fn activations_per_token(&self, dims: &AttentionDims) -> usize {
        let (d, h, dr) = (dims.d_model, dims.n_heads, self.rope_dim);
        let rotary = if dr > 0 {
            2 * (h + 1) * dr + 2 * h * (dims.d_head() + dr)
        } else {
            0
        };
        let kept = if self.latent_norm { 2 } else { 1 };
        d + kept * self.layout.latents() * self.rank + 2 * d + rotary
    }

    /// `MLA+RoPE32 r=192 sep`, `MLA r=128 joint no-norm`.
    fn label(&self, _dims: &AttentionDims) -> String {
        let rope = rope_suffix(self.rope_dim);
        let layout = match self.layout {
            LatentLayout::Joint => "joint",
            LatentLayout::Separate => "sep",
        };
        let norm = if self.latent_norm { "" } else { " no-norm" };
        format!("MLA{rope} r={} {layout}{norm}", self.rank)
    }

    /// The latent's width.
    fn rank(&self) -> Option<usize> {
        Some(self.rank)
    }

    /// The same layer with latents of width `rank`.
    fn with_rank(&self, rank: usize) -> Option<Self> {
        Some(MlaConfig { rank, ..*self })
    }

    /// The reference path and the absorbed one.
    fn decode_paths(&self) -> &'static [MlaDecode] {
        &[MlaDecode::Naive, MlaDecode::Absorbed]
    }
}

impl Mla {
    /// The weights and sizes the latent core computes with: one latent (a K/V pair with
    /// separate latents) read by every head.
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
            groups: 1,
            rank: self.rank,
            rope_dim: self.rope_dim,
            decode: self.decode,
        }
    }

    /// `W^UK` and `W^UV` laid out per head for the absorbed decode path.
    pub fn absorbed(&self) -> Absorbed {
        self.heads().absorbed()
    }

    /// The current tokens' latents, equation (9): `c_KV` twice (joint), or `c_K` and `c_V`.
    ///
    /// # Shapes
    /// - x: `[batch, seq, d_model]`
    /// - output: `[batch, 1, seq, rank]` each
    fn latents(&self, x: Tensor<3>) -> (Tensor<4>, Tensor<4>) {
        let [b, t, _] = x.dims();
        let r = self.rank;
        let one = |c: Tensor<3>| c.reshape([b, 1, t, r]); // [b, 1, t, r]
        let normed = |norm: &Option<RmsNorm>, c: Tensor<3>| match norm {
            Some(norm) => norm.forward(c),
            None => c,
        };
        let c = self.w_dkv.forward(x); // [b, t, latents * r]
        match self.layout {
            LatentLayout::Separate => (
                one(normed(&self.kv_norm, c.clone().narrow(2, 0, r))), // c_K
                one(normed(&self.v_norm, c.narrow(2, r, r))),          // c_V
            ),
            LatentLayout::Joint => {
                let c_kv = one(normed(&self.kv_norm, c));
                (c_kv.clone(), c_kv)
            }
        }
    }
}

impl VariantModule for Mla {
    type Cache = MlaCache;

    /// # Shapes
    /// - x: `[batch, seq, d_model]`
    /// - output: `[batch, seq, d_model]`
    fn forward(&self, x: Tensor<3>, cache: Option<&mut Self::Cache>, start: usize) -> Tensor<3> {
        let latents = self.latents(x.clone());
        self.heads().forward(x, latents, cache, start)
    }

    /// An empty cache of latents (and the rotary key), with the absorbed path's weights
    /// when that is the path chosen.
    fn new_cache(&self, spec: &CacheSpec) -> MlaCache {
        let separate = self.layout == LatentLayout::Separate;
        self.heads().new_cache(spec, separate)
    }

    /// Chooses how to attend over the cached latent.
    fn set_decode(&mut self, decode: MlaDecode) {
        self.decode = decode;
    }
}

/// What an MLA layer caches: its latent (`[batch, 1, capacity, rank]`, two with separate
/// latents) and the rotary key.
pub type MlaCache = LatentCache;
