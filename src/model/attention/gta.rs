//! Grouped-tied attention (GTA): Zadouri, Strauss and Dao, "Hardware-Efficient Attention for
//! Fast Decoding" (arXiv 2505.21487, 2025), as the authors' `LlamaFlashGTA` computes it. Each of
//! `g` key/value groups caches one tied state of `d_h`, serving `n_heads / g` query heads as a
//! key/value head does in GQA: the value is the whole state, the key its first `d_h − d_h^R`
//! dimensions followed by one rotary key of `d_h^R` shared by every head. With `j` the group of
//! query head `i`:
//!
//! ```text
//! s_j   = W^KV_j h                      j = 1..g     tied state, width d_h: cached
//! k^R   = RoPE(W^KR h)                               one rotary key, width d_h^R: cached
//! [q^C_i, q^R_i] = W^Q_i h              q^C_i of d_h − d_h^R, q^R_i of d_h^R, rotated
//! k_i   = [s_j[..d_h − d_h^R], k^R],    v_i = s_j    j = i / (n_heads / g)
//! score_i = (q^C_i·s_j[..d_h − d_h^R] + q^R_i·k^R) / sqrt(d_h)
//! u     = W^O [softmax(score_i) v_i]_i
//! ```
//!
//! A token costs `g·d_h + d_h^R` cached elements per layer: about half of GQA's `2·g·d_h` at
//! the same group count. With `rope_dim: 0` the model uses learned positions and the key is
//! the whole state.
//!
//! Where this departs from the authors' code, on purpose: their projections carry biases, none
//! of ours do; their cache stores the rotary key once per query head, ours once.
//!
//! This file owns everything about the variant: its config as experiment files write it
//! (`Gta(groups: 2, rope_dim: 16)`) and its validation, its module, its cache, its formulas
//! (KV elements, parameters, activations) and its label.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::common::{
    AttentionDims, MlaDecode, VariantCache, VariantConfig, VariantModule, causal_softmax,
    rope_suffix, shared_key_scores, validate_rope_dim,
};
use crate::model::field::FieldError;
use crate::model::init;
use crate::model::rope::Rope;
use crate::model::slot::{CacheSlot, CacheSpec, SlotBytes};
use crate::rng::Rng;

/// A GTA layer as experiment files write it: `Gta(groups: 2, rope_dim: 16)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GtaConfig {
    /// Key/value groups `g`, each caching one tied state; each serves `n_heads / g` query heads.
    pub groups: usize,
    /// Width of the rotary key all heads share (`d_h^R`); 0 = no RoPE inside GTA.
    pub rope_dim: usize,
}

impl VariantConfig for GtaConfig {
    type Module = Gta;

    fn init(&self, dims: AttentionDims, device: &Device) -> Gta {
        let (d, h, dh) = (dims.d_model, dims.n_heads, dims.d_head());
        let (g, dr) = (self.groups, self.rope_dim);
        let linear = |i, o| init::linear(i, o, false, init::STD, device);
        let rotary = dr > 0;
        Gta {
            w_q: linear(d, h * dh),
            w_kv: linear(d, g * dh),
            w_kr: rotary.then(|| linear(d, dr)),
            wo: init::linear(h * dh, d, false, init::residual_std(dims.n_layers), device),
            rope: dims.rotary_tables(dr, device),
            n_heads: h,
            d_head: dh,
            groups: g,
            rope_dim: dr,
        }
    }

    /// Problems with this config in a model of `dims`; fields are named from `model`.
    fn validate(&self, dims: &AttentionDims) -> Vec<FieldError> {
        let (g, h, dh) = (self.groups, dims.n_heads, dims.d_head());
        let mut errs = vec![];
        if g == 0 || g > h || !h.is_multiple_of(g) {
            errs.push(FieldError::new(
                "attention.groups",
                format!("{g} does not divide n_heads = {h}; accepted: a divisor of n_heads"),
            ));
        }
        errs.extend(validate_rope_dim(self.rope_dim, dh, dims.rope(), "GTA"));
        if self.rope_dim == dh {
            errs.push(FieldError::new(
                "attention.rope_dim",
                format!(
                    "{dh} leaves the key no dimension of the tied state; accepted: 0..{dh}, even"
                ),
            ));
        }
        errs
    }

    /// Elements cached per token per layer: every group's tied state and the rotary key.
    fn kv_elems_per_token(&self, dims: &AttentionDims) -> usize {
        self.groups * dims.d_head() + self.rope_dim
    }

    /// Parameters of one layer: `W^Q`, `W^O` (`d × d`), `W^KV` (`d × g·d_h`), `W^KR`
    /// (`d × d_h^R`).
    fn param_count(&self, dims: &AttentionDims) -> usize {
        let d = dims.d_model;
        2 * d * d + d * self.groups * dims.d_head() + d * self.rope_dim
    }

    /// Elements kept for the backward pass per token, beyond what every variant keeps: q; the
    /// tied states; the rotary key and query parts, before and after rotation.
    fn activations_per_token(&self, dims: &AttentionDims) -> usize {
        let (d, h, dr) = (dims.d_model, dims.n_heads, self.rope_dim);
        d + self.groups * dims.d_head() + 2 * (h + 1) * dr
    }

    /// `GTA-2+RoPE16`.
    fn label(&self, _dims: &AttentionDims) -> String {
        let rope = rope_suffix(self.rope_dim);
        format!("GTA-{}{rope}", self.groups)
    }

    /// No latent: no rank.
    fn rank(&self) -> Option<usize> {
        None
    }

    /// No latent to resize.
    fn with_rank(&self, _rank: usize) -> Option<Self> {
        None
    }

    /// Left out by the reproduced paper: a row beyond it.
    fn beyond_the_paper(&self) -> bool {
        true
    }

    /// One way to decode: attend over the cached states.
    fn decode_paths(&self) -> &'static [MlaDecode] {
        &[]
    }
}

#[derive(Module, Debug)]
pub struct Gta {
    /// `W^Q`: `d_model -> n_heads * d_head`; each head's last `rope_dim` columns are `q^R_i`
    w_q: Linear,
    /// `[W^KV_1; ...; W^KV_g]`: `d_model -> groups * d_head`
    w_kv: Linear,
    /// `W^KR`: `d_model -> rope_dim`, one key for all heads (RoPE only)
    w_kr: Option<Linear>,
    /// `W^O`: `n_heads * d_head -> d_model`
    wo: Linear,
    /// Rotation tables of width `rope_dim`.
    rope: Option<Rope>,
    n_heads: usize,
    d_head: usize,
    groups: usize,
    rope_dim: usize,
}

impl Gta {
    /// `[q^C_i, q^R_i]` per head, scaled by `1 / sqrt(d_h)`, `q^R_i` rotated.
    ///
    /// # Shapes
    /// - x: `[batch, seq, d_model]`
    /// - output: `[batch, heads, seq, d_head - rope_dim]`, `[batch, heads, seq, rope_dim]`
    fn queries(&self, x: Tensor<3>, start: usize) -> (Tensor<4>, Option<Tensor<4>>) {
        let [b, t, _] = x.dims();
        let (h, dh, dr) = (self.n_heads, self.d_head, self.rope_dim);
        // Queries are scaled rather than scores: they are smaller than [b, h, t, s].
        let q = self
            .w_q
            .forward(x)
            .reshape([b, t, h, dh])
            .swap_dims(1, 2) // [b, h, t, dh]
            .mul_scalar((dh as f64).powf(-0.5));
        match &self.rope {
            Some(rope) => {
                let q_r = rope.apply(q.clone().narrow(3, dh - dr, dr), start); // [b, h, t, dr]
                (q.narrow(3, 0, dh - dr), Some(q_r)) // [b, h, t, dh - dr]
            }
            None => (q, None),
        }
    }

    /// The current tokens' tied states and rotary key.
    ///
    /// # Shapes
    /// - x: `[batch, seq, d_model]`
    /// - output: `[batch, groups, seq, d_head]`, `[batch, seq, rope_dim]`
    fn states(&self, x: Tensor<3>, start: usize) -> (Tensor<4>, Option<Tensor<3>>) {
        let [b, t, _] = x.dims();
        let (g, dh, dr) = (self.groups, self.d_head, self.rope_dim);
        let k_r = match (&self.w_kr, &self.rope) {
            (Some(w_kr), Some(rope)) => {
                let k_r = w_kr.forward(x.clone()).reshape([b, 1, t, dr]); // [b, 1, t, dr]
                Some(rope.apply(k_r, start).reshape([b, t, dr])) // [b, t, dr]
            }
            _ => None,
        };
        let s = self.w_kv.forward(x).reshape([b, t, g, dh]).swap_dims(1, 2); // [b, g, t, dh]
        (s, k_r)
    }
}

impl VariantModule for Gta {
    type Cache = GtaCache;

    /// # Shapes
    /// - x: `[batch, seq, d_model]`
    /// - output: `[batch, seq, d_model]`
    fn forward(&self, x: Tensor<3>, cache: Option<&mut Self::Cache>, start: usize) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let (h, g, dh, dr) = (self.n_heads, self.groups, self.d_head, self.rope_dim);
        let (q_c, q_r) = self.queries(x.clone(), start);
        let (states, k_r) = self.states(x, start);
        let (states, k_r) = match cache {
            Some(c) => {
                let s = start + t;
                c.s.write(states, start);
                if let (Some(slot), Some(k_r)) = (c.k_r.as_mut(), k_r) {
                    slot.write(k_r, start);
                }
                (c.s.read(s), c.k_r.as_ref().map(|k| k.read(s)))
            }
            None => (states, k_r),
        };
        let s = start + t;
        // A group's query heads are the rows of one product against its state, as in GQA:
        // query head i is row block i % m of group i / m.
        let m = h / g;
        let keys = states.clone().narrow(3, 0, dh - dr); // [b, g, s, dh - dr]
        let q_c = q_c.reshape([b, g, m * t, dh - dr]); // [b, g, m*t, dh - dr]
        let scores = q_c.matmul(keys.swap_dims(2, 3)).reshape([b, h, t, s]); // [b, h, t, s]
        let scores = match shared_key_scores(q_r, k_r) {
            Some(rotary) => scores + rotary,
            None => scores,
        };
        let weights = causal_softmax(scores, start).reshape([b, g, m * t, s]); // [b, g, m*t, s]
        let out = weights.matmul(states).reshape([b, h, t, dh]); // [b, h, t, dh]
        let out = out.swap_dims(1, 2).reshape([b, t, h * dh]); // [b, t, h*dh]
        self.wo.forward(out)
    }

    /// An empty cache of tied states and the rotary key.
    fn new_cache(&self, spec: &CacheSpec) -> GtaCache {
        GtaCache {
            s: CacheSlot::zeros(
                [spec.batch, self.groups, spec.capacity, self.d_head],
                spec.dtype,
                &spec.device,
            ),
            k_r: (self.rope_dim > 0).then(|| spec.slot(self.rope_dim)),
        }
    }
}

/// What a GTA layer caches.
#[derive(Debug)]
pub struct GtaCache {
    /// The tied states `s_j`: `[batch, groups, capacity, d_head]`
    pub s: CacheSlot<4>,
    /// The rotated shared key `k^R`: `[batch, capacity, rope_dim]`
    pub k_r: Option<CacheSlot<3>>,
}

impl VariantCache for GtaCache {
    fn slot_bytes(&self) -> Vec<SlotBytes> {
        std::iter::once(self.s.bytes())
            .chain(self.k_r.as_ref().map(CacheSlot::bytes))
            .collect()
    }

    fn fill_random(&mut self, len: usize, rng: &mut Rng) {
        self.s.fill_random(len, rng);
        if let Some(k_r) = self.k_r.as_mut() {
            k_r.fill_random(len, rng);
        }
    }
}
