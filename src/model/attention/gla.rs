//! Grouped latent attention (GLA): Zadouri, Strauss and Dao, "Hardware-Efficient Attention for
//! Fast Decoding" (arXiv 2505.21487, 2025). MLA's latent is split into `g` latent heads, each
//! with its own decoupled rotary key; each latent head serves `n_heads / g` query heads, as a
//! key/value head serves its group in GQA. Only the latents and the rotary keys are cached.
//! Weights are named as in [`super::mla`], with `j` the latent head of query head `i`:
//!
//! ```text
//! c_j   = kv_norm_j(W^DKV_j h)          j = 1..g     latent head j, width r: cached
//! k^R_j = RoPE(W^KR_j h)                j = 1..g     its rotary key, width d_h^R: cached
//! q^C_i = W^Q_i h,  q^R_i = RoPE(W^QR_i h)           i = 1..n_heads
//! k^C_i = W^UK_i c_j,  v^C_i = W^UV_i c_j            j = i / (n_heads / g)
//! score_i = (q^C_i·k^C_i + q^R_i·k^R_j) / sqrt(d_h + d_h^R)
//! u     = W^O [softmax(score_i) v^C_i]_i
//! ```
//!
//! A token costs `g·(r + d_h^R)` cached elements per layer. `g = 1` is MLA with one joint latent
//! (`Mla(layout: Joint)`); GLA-2 with `r` and `d_h^R` each half of an MLA's caches as much as it.
//! The latent heads' norms have gains of their own. With `rope_dim: 0` the model uses learned
//! positions, as MLA without RoPE does.
//!
//! Two ways to attend over the cached latents, as for MLA ([`MlaDecode`]): `Naive` up-projects
//! each latent head to its query heads' K and V; `Absorbed` moves each query into its latent
//! head's space (`W^UK_i^T q^C_i`), takes the scores against the latent itself, and applies
//! `W^UV_i` after the weighted sum. A latent head's query heads are the rows of one product
//! against it, so each latent is read once per step.

use burn::module::Module;
use burn::nn::{Linear, RmsNorm, RmsNormConfig};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::common::{
    AttentionDims, MlaDecode, VariantCache, VariantConfig, VariantModule, causal_softmax,
};
#[cfg(feature = "flex")]
use super::latent_decode;
use super::mla::{Absorbed, validate_rope_dim};
use crate::model::field::FieldError;
use crate::model::init;
use crate::model::rope::{Rope, RopeConfig};
use crate::model::slot::{CacheSlot, CacheSpec, SlotBytes};
use crate::rng::Rng;

/// A GLA layer as experiment files write it: `Gla(groups: 2, rank: 32, rope_dim: 8)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlaConfig {
    /// Latent heads `g`; each serves `n_heads / g` query heads.
    pub groups: usize,
    /// Width `r` of each latent head.
    pub rank: usize,
    /// Width of each latent head's rotary key (`d_h^R`); 0 = no RoPE inside GLA.
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
            w_kr: rotary.then(|| linear(d, g * dr)),
            wo: init::linear(h * dh, d, false, init::residual_std(dims.n_layers), device),
            rope: rotary.then(|| {
                RopeConfig {
                    dim: dr,
                    context: dims.context,
                    theta: dims.rope_theta.unwrap_or(10_000.0),
                }
                .init(device)
            }),
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

    /// Elements cached per token per layer: every latent head and its rotary key.
    fn kv_elems_per_token(&self, _dims: &AttentionDims) -> usize {
        self.groups * (self.rank + self.rope_dim)
    }

    /// Parameters of one layer: `W^Q`, `W^O`; `W^DKV` and the latent heads' norms; `W^UK`,
    /// `W^UV`; `W^QR`, `W^KR`.
    fn param_count(&self, dims: &AttentionDims) -> usize {
        let (d, h) = (dims.d_model, dims.n_heads);
        let (g, r, dr) = (self.groups, self.rank, self.rope_dim);
        2 * d * d + g * (d * r + r) + 2 * r * d + (h + g) * d * dr
    }

    /// Elements kept for the backward pass per token, beyond what every variant keeps: q;
    /// latents and their norms; k and v up-projected; the rotary parts, rotated, and their
    /// scores' inputs.
    fn activations_per_token(&self, dims: &AttentionDims) -> usize {
        let (d, h, dr) = (dims.d_model, dims.n_heads, self.rope_dim);
        let rotary = if dr > 0 {
            2 * (h + self.groups) * dr + 2 * h * (dims.d_head() + dr)
        } else {
            0
        };
        d + 2 * self.groups * self.rank + 2 * d + rotary
    }

    /// `GLA-2+RoPE8 r=32`.
    fn label(&self, _dims: &AttentionDims) -> String {
        let rope = if self.rope_dim > 0 {
            format!("+RoPE{}", self.rope_dim)
        } else {
            String::new()
        };
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
    /// `[W^KR_1; ...; W^KR_g]`: `d_model -> groups * rope_dim` (decoupled RoPE only)
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

/// What GLA attends over: latent heads and their rotary keys, grouped.
struct Latents {
    /// `[batch, groups, seq, rank]`
    c: Tensor<4>,
    /// `[batch, groups, seq, rope_dim]`, already rotated
    k_r: Option<Tensor<4>>,
}

impl Gla {
    /// `W^UK` and `W^UV` laid out per query head for the absorbed decode path.
    pub fn absorbed(&self) -> Absorbed {
        Absorbed::new(&self.w_uk, &self.w_uv, self.n_heads, self.d_head, self.rank)
    }

    /// Latent heads and rotary keys of the current tokens.
    fn latents(&self, x: Tensor<3>, start: usize) -> Latents {
        let [b, t, _] = x.dims();
        let (g, r, dr) = (self.groups, self.rank, self.rope_dim);
        let k_r = match (&self.w_kr, &self.rope) {
            (Some(w_kr), Some(rope)) => {
                let k_r = w_kr
                    .forward(x.clone())
                    .reshape([b, t, g, dr])
                    .swap_dims(1, 2); // [b, g, t, dr]
                Some(rope.apply(k_r, start))
            }
            _ => None,
        };
        let c = self.w_dkv.forward(x).reshape([b, t, g, r]); // [b, t, g, r]
        let heads: Vec<Tensor<4>> = self
            .kv_norm
            .iter()
            .enumerate()
            .map(|(j, norm)| norm.forward(c.clone().narrow(2, j, 1))) // [b, t, 1, r]
            .collect();
        let c = Tensor::cat(heads, 2).swap_dims(1, 2); // [b, g, t, r]
        Latents { c, k_r }
    }

    /// Query heads grouped by their latent head: `[b, h, t, w]` -> `[b, g, (h/g)·t, w]`, head
    /// `i = j·(h/g) + k` of latent head `j` giving rows `k·t..(k+1)·t` of group `j`.
    fn grouped(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, h, t, w] = x.dims();
        x.reshape([b, self.groups, h / self.groups * t, w]) // [b, g, m*t, w]
    }

    /// Rotary part of the scores, `q^R_i·k^R_j`, or `None` without decoupled RoPE.
    ///
    /// # Shapes
    /// - q_r: `[batch, heads, seq, rope_dim]`, k_r: `[batch, groups, keys, rope_dim]`
    /// - output: `[batch, heads, seq, keys]`
    fn rope_scores(&self, q_r: Option<Tensor<4>>, k_r: Option<Tensor<4>>) -> Option<Tensor<4>> {
        let (q_r, k_r) = (q_r?, k_r?);
        let [b, h, t, _] = q_r.dims();
        let s = k_r.dims()[2];
        let scores = self.grouped(q_r).matmul(k_r.swap_dims(2, 3)); // [b, g, m*t, s]
        Some(scores.reshape([b, h, t, s])) // [b, h, t, s]
    }

    /// Reference path: materialise every query head's K and V from its latent head. The
    /// queries arrive scaled.
    fn attend_naive(
        &self,
        q_c: Tensor<4>,
        q_r: Option<Tensor<4>>,
        lat: Latents,
        start: usize,
    ) -> Tensor<4> {
        let [b, g, s, r] = lat.c.dims();
        let (h, dh) = (self.n_heads, self.d_head);
        let m = h / g;
        // Latent head j up-projects only its own query heads' columns of W^UK and W^UV.
        let up = |w: &Linear| {
            let w = w.weight.val().reshape([1, r, g, m * dh]).swap_dims(1, 2); // [1, g, r, m*dh]
            lat.c
                .clone()
                .matmul(w) // [b, g, s, m*dh]
                .reshape([b, g, s, m, dh])
                .swap_dims(2, 3) // [b, g, m, s, dh]
                .reshape([b, h, s, dh]) // [b, h, s, dh]
        };
        let (k_c, v_c) = (up(&self.w_uk), up(&self.w_uv));
        let mut scores = q_c.matmul(k_c.swap_dims(2, 3)); // [b, h, t, s]
        if let Some(rs) = self.rope_scores(q_r, lat.k_r) {
            scores = scores + rs;
        }
        causal_softmax(scores, start).matmul(v_c) // [b, h, t, dh]
    }

    /// Absorbed path: each query head moves into its latent head's space, and a latent head's
    /// query heads are the rows of one product against it. The queries arrive scaled.
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
        let [b, h, t, _] = q_c.dims();
        let [_, _, s, r] = lat.c.dims();
        let q_lat = q_c.matmul(absorbed.w_uk.clone()); // [b, h, t, r]
        // A decode step on the CPU backend: one pass over each latent head, for all its query
        // heads (the products below are its reference, and serve everything else).
        #[cfg(feature = "flex")]
        if t == 1 {
            assert_eq!(s, start + 1, "GLA decode: {s} keys for a query at {start}");
            let per_group = |q: &Tensor<4>| self.grouped(q.clone()); // [b, g, m, w]
            let q_r1 = q_r.as_ref().map(per_group);
            let one_pass = latent_decode::attend_groups(
                &per_group(&q_lat),
                q_r1.as_ref(),
                &lat.c,
                lat.k_r.as_ref(),
            );
            if let Some(o_lat) = one_pass {
                let o_lat = o_lat.reshape([b, h, 1, r]); // [b, h, 1, r]
                return o_lat.matmul(absorbed.w_uv.clone()); // [b, h, 1, dh]
            }
        }
        let scores = self.grouped(q_lat).matmul(lat.c.clone().swap_dims(2, 3)); // [b, g, m*t, s]
        let mut scores = scores.reshape([b, h, t, s]); // [b, h, t, s]
        if let Some(rs) = self.rope_scores(q_r, lat.k_r) {
            scores = scores + rs;
        }
        let weights = causal_softmax(scores, start); // [b, h, t, s]
        let o_lat = self.grouped(weights).matmul(lat.c); // [b, g, m*t, r]
        o_lat.reshape([b, h, t, r]).matmul(absorbed.w_uv.clone()) // [b, h, t, dh]
    }
}

impl VariantModule for Gla {
    type Cache = GlaCache;

    /// # Shapes
    /// - x: `[batch, seq, d_model]`
    /// - output: `[batch, seq, d_model]`
    fn forward(&self, x: Tensor<3>, cache: Option<&mut Self::Cache>, start: usize) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let (h, dh, dr) = (self.n_heads, self.d_head, self.rope_dim);
        // Queries are scaled rather than scores: they are smaller than [b, h, t, s].
        let scale = ((dh + dr) as f64).powf(-0.5);
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
                c.c.write(new.c, start);
                if let (Some(slot), Some(k_r)) = (c.k_r.as_mut(), new.k_r) {
                    slot.write(k_r, start);
                }
                let lat = Latents {
                    c: c.c.read(s),
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

    /// An empty cache of latent heads (and their rotary keys), with the absorbed path's
    /// weights when that is the path chosen.
    fn new_cache(&self, spec: &CacheSpec) -> GlaCache {
        let slot = |width| {
            CacheSlot::zeros(
                [spec.batch, self.groups, spec.capacity, width],
                spec.dtype,
                &spec.device,
            )
        };
        GlaCache {
            absorbed: (self.decode == MlaDecode::Absorbed).then(|| self.absorbed()),
            c: slot(self.rank),
            k_r: (self.rope_dim > 0).then(|| slot(self.rope_dim)),
        }
    }

    /// Chooses how to attend over the cached latents.
    fn set_decode(&mut self, decode: MlaDecode) {
        self.decode = decode;
    }
}

/// What a GLA layer caches.
#[derive(Debug)]
pub struct GlaCache {
    /// The absorbed decode path's per-head `W^UK`/`W^UV`, made with the cache. Weights, not
    /// cached tokens: not counted in its bytes.
    pub absorbed: Option<Absorbed>,
    /// The latent heads `c_j`: `[batch, groups, capacity, rank]`
    pub c: CacheSlot<4>,
    /// Their rotated keys `k^R_j`: `[batch, groups, capacity, rope_dim]`
    pub k_r: Option<CacheSlot<4>>,
}

impl VariantCache for GlaCache {
    fn slot_bytes(&self) -> Vec<SlotBytes> {
        std::iter::once(&self.c)
            .chain(self.k_r.as_ref())
            .map(CacheSlot::bytes)
            .collect()
    }

    fn fill_random(&mut self, len: usize, rng: &mut Rng) {
        self.c.fill_random(len, rng);
        if let Some(k_r) = self.k_r.as_mut() {
            k_r.fill_random(len, rng);
        }
    }
}
