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
//! `c_V = v_norm(W^DV h)`); `W^DK` and `W^DV` are stored stacked in `w_dkv`.
//!
//! Two ways to attend over a cached latent, chosen by [`MlaDecode`]:
//! - `Naive` (reference): up-project the whole latent to K and V, then ordinary attention.
//! - `Absorbed`: `q^C·(W^UK c) = (W^UK^T q^C)·c`, so the query is moved into latent space and
//!   the scores are taken against the latent directly; likewise `W^UV` is applied after
//!   weighting the latent. Per step this costs `O(seq * heads * rank)` instead of
//!   `O(seq * rank * heads * d_head)`. `W^UK` and `W^UV` are laid out per head once, when the
//!   cache is made ([`Absorbed`]), and all heads take their scores against the shared latent as
//!   the rows of one product.
//!
//! This file owns everything about the variant: its config as experiment files write it and
//! its validation, its module, its cache, its formulas (KV elements, parameters, activations),
//! its label and its decode paths.

use burn::module::Module;
use burn::nn::{Linear, RmsNorm, RmsNormConfig};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::common::{
    AttentionDims, MlaDecode, VariantCache, VariantConfig, VariantModule, causal_softmax,
};
#[cfg(feature = "flex")]
use super::latent_decode;
use crate::model::field::FieldError;
use crate::model::init;
use crate::model::rope::{Rope, RopeConfig};
use crate::model::slot::{CacheSlot, CacheSpec, SlotBytes};
use crate::rng::Rng;

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
    /// Read so that an old file parses (and a bad value is still refused), then dropped.
    #[serde(default, rename = "decode")]
    _decode: MlaDecode,
}

impl From<MlaInFile> for MlaConfig {
    fn from(f: MlaInFile) -> Self {
        MlaConfig {
            rank: f.rank,
            layout: f.layout,
            rope_dim: f.rope_dim,
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
    /// RMSNorm on `c_KV` (joint) or `c_K` (separate)
    kv_norm: RmsNorm,
    /// RMSNorm on `c_V` (separate only)
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
        let theta = dims.rope_theta.unwrap_or(10_000.0);
        Mla {
            w_q: linear(d, h * dh),
            w_qr: rotary.then(|| linear(d, h * dr)),
            w_dkv: linear(d, self.layout.latents() * r),
            kv_norm: RmsNormConfig::new(r).init(device),
            v_norm: (self.layout == LatentLayout::Separate)
                .then(|| RmsNormConfig::new(r).init(device)),
            w_uk: linear(r, h * dh),
            w_uv: linear(r, h * dh),
            w_kr: rotary.then(|| linear(d, dr)),
            wo: init::linear(h * dh, d, false, init::residual_std(dims.n_layers), device),
            rope: rotary.then(|| {
                RopeConfig {
                    dim: dr,
                    context: dims.context,
                    theta,
                }
                .init(device)
            }),
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
        2 * d * d + latents * (d * r + r) + 2 * r * d + (h + 1) * d * dr
    }

    /// Elements kept for the backward pass per token, beyond what every variant keeps: q;
    /// latents and their norms; k and v up-projected; the rotary parts, rotated, and q and k
    /// with them appended.
    fn activations_per_token(&self, dims: &AttentionDims) -> usize {
        let (d, h, dr) = (dims.d_model, dims.n_heads, self.rope_dim);
        let rotary = if dr > 0 {
            2 * (h + 1) * dr + 2 * h * (dims.d_head() + dr)
        } else {
            0
        };
        d + 2 * self.layout.latents() * self.rank + 2 * d + rotary
    }

    /// `MLA+RoPE32 r=192 sep`.
    fn label(&self, _dims: &AttentionDims) -> String {
        let rope = if self.rope_dim > 0 {
            format!("+RoPE{}", self.rope_dim)
        } else {
            String::new()
        };
        let layout = match self.layout {
            LatentLayout::Joint => "joint",
            LatentLayout::Separate => "sep",
        };
        format!("MLA{rope} r={} {layout}", self.rank)
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

/// Problems with a decoupled rotary width `rope_dim` for heads of `d_head` in a model with
/// (`rope`) or without rotary positions; `variant` names the attention in messages. Shared by
/// the latent variants (MLA, GLA), whose only positions are their rotary parts.
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

/// What the current tokens contribute: latents and rotary key, before caching.
struct Latents {
    /// `[batch, seq, rank]`
    c_k: Tensor<3>,
    /// `[batch, seq, rank]` (same tensor as `c_k` with the joint layout)
    c_v: Tensor<3>,
    /// `[batch, seq, rope_dim]`, already rotated
    k_r: Option<Tensor<3>>,
}

/// The absorbed path's weights: `W^UK` and `W^UV` laid out per head (DeepSeek-V2 §2.1.2: `W^UK`
/// absorbed on the query side, `W^UV` on the output side), made once when [`Mla::new_cache`]
/// makes the cache that holds them, instead of on every decode step. A cache belongs to the
/// model that made it.
///
/// Multiplying `W^Q W^UK` and `W^UV W^O` out into single matrices was tried too: one product
/// fewer per side, but `2·d·h·r` weights against `2·(d·h·d_h + r·h·d_h)`, twice as many at
/// r = d/2 and three times at full rank, which would tilt the comparison between ranks that the
/// study makes; measured side by side it was no faster at small scale. Not kept.
#[derive(Debug, Clone)]
pub struct Absorbed {
    /// `[1, heads, d_head, rank]`: head i's `W^UK_i^T`.
    pub w_uk: Tensor<4>,
    /// `[1, heads, rank, d_head]`: head i's `W^UV_i`.
    pub w_uv: Tensor<4>,
}

impl Absorbed {
    /// The weights `decode` attends with: none for `Naive`; for `Absorbed`, those `held` by
    /// the cache, made with it, or made now, once, for a cache made for `Naive`.
    pub fn for_path(
        decode: MlaDecode,
        held: &mut Option<Absorbed>,
        make: impl FnOnce() -> Absorbed,
    ) -> Option<Absorbed> {
        match decode {
            MlaDecode::Naive => None,
            MlaDecode::Absorbed => Some(held.get_or_insert_with(make).clone()),
        }
    }

    /// Lays out `W^UK` and `W^UV` (`rank -> heads * d_head` each) per head.
    pub fn new(w_uk: &Linear, w_uv: &Linear, heads: usize, dh: usize, r: usize) -> Self {
        // W^UK as per-head [dh, r] blocks: weight [r, h*dh] -> [r, h, dh] -> [h, dh, r].
        let w_uk = w_uk
            .weight
            .val()
            .reshape([r, heads, dh])
            .permute([1, 2, 0])
            .unsqueeze_dim::<4>(0); // [1, h, dh, r]
        // W^UV as per-head [r, dh] blocks: weight [r, h*dh] -> [r, h, dh] -> [h, r, dh].
        let w_uv = w_uv
            .weight
            .val()
            .reshape([r, heads, dh])
            .swap_dims(0, 1)
            .unsqueeze_dim::<4>(0); // [1, h, r, dh]
        Absorbed { w_uk, w_uv }
    }
}

impl Mla {
    /// `W^UK` and `W^UV` laid out per head for the absorbed decode path.
    pub fn absorbed(&self) -> Absorbed {
        Absorbed::new(&self.w_uk, &self.w_uv, self.n_heads, self.d_head, self.rank)
    }

    /// Latents and rotary key of the current tokens.
    fn latents(&self, x: Tensor<3>, start: usize) -> Latents {
        let [b, t, _] = x.dims();
        let r = self.rank;
        let k_r = match (&self.w_kr, &self.rope) {
            (Some(w_kr), Some(rope)) => {
                let k_r = w_kr.forward(x.clone()).reshape([b, 1, t, self.rope_dim]); // [b, 1, t, dr]
                Some(rope.apply(k_r, start).reshape([b, t, self.rope_dim])) // [b, t, dr]
            }
            _ => None,
        };
        let c = self.w_dkv.forward(x); // [b, t, latents * r]
        match (self.layout, &self.v_norm) {
            (LatentLayout::Separate, Some(v_norm)) => Latents {
                c_k: self.kv_norm.forward(c.clone().narrow(2, 0, r)), // [b, t, r]
                c_v: v_norm.forward(c.narrow(2, r, r)),               // [b, t, r]
                k_r,
            },
            _ => {
                let c_kv = self.kv_norm.forward(c); // [b, t, r]
                Latents {
                    c_k: c_kv.clone(),
                    c_v: c_kv,
                    k_r,
                }
            }
        }
    }

    /// `1 / sqrt(d_h + d_h^R)`, applied to the queries.
    fn scale(&self) -> f64 {
        ((self.d_head + self.rope_dim) as f64).powf(-0.5)
    }

    /// Rotary part of the scores, `q^R·k^R`, or `None` without decoupled RoPE.
    ///
    /// `k^R` is shared by all heads, so the heads become rows of one product per sequence: the
    /// key is read once, where a product broadcast over heads would read it once per head.
    ///
    /// # Shapes
    /// - q_r: `[batch, heads, seq, rope_dim]`, k_r: `[batch, keys, rope_dim]`
    /// - output: `[batch, heads, seq, keys]`
    fn rope_scores(q_r: Option<Tensor<4>>, k_r: Option<Tensor<3>>) -> Option<Tensor<4>> {
        match (q_r, k_r) {
            (Some(q_r), Some(k_r)) => {
                let [b, h, t, dr] = q_r.dims();
                let s = k_r.dims()[1];
                let q_r = q_r.reshape([b, h * t, dr]); // [b, h*t, dr]
                let scores = q_r.matmul(k_r.swap_dims(1, 2)); // [b, h*t, s]
                Some(scores.reshape([b, h, t, s])) // [b, h, t, s]
            }
            _ => None,
        }
    }

    /// Reference path: materialise K and V from the latent. The queries arrive scaled.
    fn attend_naive(
        &self,
        q_c: Tensor<4>,
        q_r: Option<Tensor<4>>,
        lat: Latents,
        start: usize,
    ) -> Tensor<4> {
        let [b, s, _] = lat.c_k.dims();
        let (h, dh) = (self.n_heads, self.d_head);
        let k_c = self
            .w_uk
            .forward(lat.c_k)
            .reshape([b, s, h, dh])
            .swap_dims(1, 2); // [b, h, s, dh]
        let v_c = self
            .w_uv
            .forward(lat.c_v)
            .reshape([b, s, h, dh])
            .swap_dims(1, 2); // [b, h, s, dh]
        let mut scores = q_c.matmul(k_c.swap_dims(2, 3)); // [b, h, t, s]
        if let Some(rs) = Self::rope_scores(q_r, lat.k_r) {
            scores = scores + rs;
        }
        let weights = causal_softmax(scores, start);
        weights.matmul(v_c) // [b, h, t, dh]
    }

    /// Absorbed path: never leaves latent space until after the weighted sum. The queries
    /// arrive scaled.
    ///
    /// # Shapes
    /// - q_c: `[batch, heads, seq, d_head]`, q_r: `[batch, heads, seq, rope_dim]`
    /// - output: `[batch, heads, seq, d_head]`
    fn attend_absorbed(
        &self,
        q_c: Tensor<4>,
        q_r: Option<Tensor<4>>,
        lat: Latents,
        absorbed: &Absorbed,
        start: usize,
    ) -> Tensor<4> {
        let q_lat = q_c.matmul(absorbed.w_uk.clone()); // [b, h, t, r]
        let o_lat = Self::attend_latent(q_lat, q_r, lat, start); // [b, h, t, r]
        o_lat.matmul(absorbed.w_uv.clone()) // [b, h, t, dh]
    }

    /// Attention in latent space, `softmax(q_lat·c_K^T + q^R·k^R^T)·c_V`: a decode step (one
    /// token per sequence) on the CPU backend takes [`latent_decode::attend`], one pass over
    /// the cache; everything else takes [`Mla::attend_latent_reference`].
    ///
    /// # Shapes
    /// - q_lat: `[batch, heads, seq, rank]`, q_r: `[batch, heads, seq, rope_dim]`
    /// - output: `[batch, heads, seq, rank]`
    fn attend_latent(
        q_lat: Tensor<4>,
        q_r: Option<Tensor<4>>,
        lat: Latents,
        start: usize,
    ) -> Tensor<4> {
        #[cfg(feature = "flex")]
        if let [b, h, 1, r] = q_lat.dims() {
            let one = |q: &Tensor<4>| {
                let d = q.dims()[3];
                q.clone().reshape([b, h, d]) // [b, h, d]
            };
            let keys = lat.c_k.dims()[1];
            assert_eq!(
                keys,
                start + 1,
                "MLA decode: {keys} keys for a query at {start}"
            );
            let q_r1 = q_r.as_ref().map(one);
            let one_pass = latent_decode::attend(
                &one(&q_lat),
                q_r1.as_ref(),
                &lat.c_k,
                &lat.c_v,
                lat.k_r.as_ref(),
            );
            if let Some(o_lat) = one_pass {
                return o_lat.reshape([b, h, 1, r]); // [b, h, 1, r]
            }
        }
        Self::attend_latent_reference(q_lat, q_r, lat.c_k, lat.c_v, lat.k_r, start)
    }

    /// Reference for [`Mla::attend_latent`], as products. Every head reads the same latent, so
    /// the heads become rows of one product per sequence: the latent is read once per product,
    /// not once per head as a product broadcast over heads would.
    ///
    /// # Shapes
    /// - q_lat: `[batch, heads, seq, rank]`, q_r: `[batch, heads, seq, rope_dim]`
    /// - c_k, c_v: `[batch, keys, rank]`, k_r: `[batch, keys, rope_dim]`
    /// - output: `[batch, heads, seq, rank]`
    pub(crate) fn attend_latent_reference(
        q_lat: Tensor<4>,
        q_r: Option<Tensor<4>>,
        c_k: Tensor<3>,
        c_v: Tensor<3>,
        k_r: Option<Tensor<3>>,
        start: usize,
    ) -> Tensor<4> {
        let [b, h, t, r] = q_lat.dims();
        let s = c_k.dims()[1];
        let q_lat = q_lat.reshape([b, h * t, r]); // [b, h*t, r]
        let scores = q_lat.matmul(c_k.swap_dims(1, 2)); // [b, h*t, s]
        let mut scores = scores.reshape([b, h, t, s]); // [b, h, t, s]
        if let Some(rs) = Self::rope_scores(q_r, k_r) {
            scores = scores + rs;
        }
        let weights = causal_softmax(scores, start); // [b, h, t, s]
        let o_lat = weights.reshape([b, h * t, s]).matmul(c_v); // [b, h*t, r]
        o_lat.reshape([b, h, t, r]) // [b, h, t, r]
    }
}

impl VariantModule for Mla {
    type Cache = MlaCache;

    /// # Shapes
    /// - x: `[batch, seq, d_model]`
    /// - output: `[batch, seq, d_model]`
    fn forward(&self, x: Tensor<3>, cache: Option<&mut Self::Cache>, start: usize) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let (h, dh, dr) = (self.n_heads, self.d_head, self.rope_dim);
        // Queries are scaled rather than scores: they are smaller than [b, h, t, s].
        let scale = self.scale();

        let q_r = match (&self.w_qr, &self.rope) {
            (Some(w_qr), Some(rope)) => {
                let q_r = w_qr
                    .forward(x.clone())
                    .reshape([b, t, h, dr])
                    .swap_dims(1, 2); // [b, h, t, dr]
                Some(rope.apply(q_r, start).mul_scalar(scale))
            }
            _ => None,
        };
        let new = self.latents(x.clone(), start);

        let (lat, absorbed) = match cache {
            Some(c) => {
                let s = start + t;
                c.c_k.write(new.c_k, start);
                if let Some(c_v) = c.c_v.as_mut() {
                    c_v.write(new.c_v, start);
                }
                if let (Some(slot), Some(k_r)) = (c.k_r.as_mut(), new.k_r) {
                    slot.write(k_r, start);
                }
                let c_k = c.c_k.read(s);
                let lat = Latents {
                    c_v: c
                        .c_v
                        .as_ref()
                        .map(|v| v.read(s))
                        .unwrap_or_else(|| c_k.clone()),
                    c_k,
                    k_r: c.k_r.as_ref().map(|k| k.read(s)),
                };
                let absorbed = Absorbed::for_path(self.decode, &mut c.absorbed, || self.absorbed());
                (lat, absorbed)
            }
            // Training and cache-free forwards use the reference path.
            None => (new, None),
        };

        let q_c = self
            .w_q
            .forward(x)
            .reshape([b, t, h, dh])
            .swap_dims(1, 2) // [b, h, t, dh]
            .mul_scalar(scale);
        let out = match absorbed {
            Some(absorbed) => self.attend_absorbed(q_c, q_r, lat, &absorbed, start),
            None => self.attend_naive(q_c, q_r, lat, start),
        }; // [b, h, t, dh]
        let out = out.swap_dims(1, 2).reshape([b, t, h * dh]); // [b, t, h*dh]
        self.wo.forward(out)
    }

    /// An empty cache of latents (and the rotary key), with the absorbed path's weights
    /// when that is the path chosen.
    fn new_cache(&self, spec: &CacheSpec) -> MlaCache {
        MlaCache {
            absorbed: (self.decode == MlaDecode::Absorbed).then(|| self.absorbed()),
            c_k: spec.slot(self.rank),
            c_v: (self.layout == LatentLayout::Separate).then(|| spec.slot(self.rank)),
            k_r: (self.rope_dim > 0).then(|| spec.slot(self.rope_dim)),
        }
    }

    /// Chooses how to attend over the cached latent.
    fn set_decode(&mut self, decode: MlaDecode) {
        self.decode = decode;
    }
}

/// What an MLA layer caches.
#[derive(Debug)]
pub struct MlaCache {
    /// The absorbed decode path's per-head `W^UK`/`W^UV`, made with the cache from the model
    /// that made it. Weights, not cached tokens: not counted in its bytes.
    pub absorbed: Option<Absorbed>,
    /// `c_KV` (joint) or `c_K` (separate): `[batch, capacity, rank]`
    pub c_k: CacheSlot<3>,
    /// `c_V` with separate latents: `[batch, capacity, rank]`
    pub c_v: Option<CacheSlot<3>>,
    /// Rotated shared key `k^R`: `[batch, capacity, rope_dim]`
    pub k_r: Option<CacheSlot<3>>,
}

impl MlaCache {
    fn slots(&self) -> impl Iterator<Item = &CacheSlot<3>> {
        std::iter::once(&self.c_k)
            .chain(self.c_v.as_ref())
            .chain(self.k_r.as_ref())
    }
}

impl VariantCache for MlaCache {
    fn slot_bytes(&self) -> Vec<SlotBytes> {
        self.slots().map(CacheSlot::bytes).collect()
    }

    fn fill_random(&mut self, len: usize, rng: &mut Rng) {
        self.c_k.fill_random(len, rng);
        for slot in self.c_v.iter_mut().chain(self.k_r.iter_mut()) {
            slot.fill_random(len, rng);
        }
    }
}
