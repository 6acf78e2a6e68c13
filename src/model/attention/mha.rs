//! Multi-head attention with grouped key/value heads (MHA / GQA / MQA), optionally rotary.
//!
//! `kv_heads == n_heads` is Vaswani et al.'s MHA; `kv_heads == 1` is MQA (Shazeer 2019);
//! values in between are GQA (Ainslie et al. 2023). The cache holds K and V, `kv_heads` wide.
//!
//! This file owns everything about the variant: its config as experiment files write it
//! (`Mha(kv_heads: 4)`) and its validation, its module, its cache, its formulas (KV elements,
//! parameters, activations) and its label.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::common::{
    AttentionDims, MlaDecode, VariantCache, VariantConfig, VariantModule, causal_attention,
};
use crate::model::field::FieldError;
use crate::model::init;
use crate::model::rope::{Rope, RopeConfig};
use crate::model::slot::{CacheSlot, CacheSpec, SlotBytes};
use crate::rng::Rng;

/// An MHA/GQA/MQA layer as experiment files write it: `Mha(kv_heads: 4)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MhaConfig {
    /// Key/value heads: `n_heads` is MHA, 1 is MQA, a divisor in between GQA.
    pub kv_heads: usize,
}

impl VariantConfig for MhaConfig {
    type Module = Mha;

    fn init(&self, dims: AttentionDims, device: &Device) -> Mha {
        let d = dims.d_model;
        let h = dims.n_heads;
        let dh = dims.d_head();
        let linear = |i, o| init::linear(i, o, false, init::STD, device);
        Mha {
            wq: linear(d, h * dh),
            wk: linear(d, self.kv_heads * dh),
            wv: linear(d, self.kv_heads * dh),
            wo: init::linear(h * dh, d, false, init::residual_std(dims.n_layers), device),
            rope: dims.rope_theta.map(|theta| {
                RopeConfig {
                    dim: dh,
                    context: dims.context,
                    theta,
                }
                .init(device)
            }),
            n_heads: h,
            kv_heads: self.kv_heads,
            d_head: dh,
        }
    }

    /// Problems with this config in a model of `dims`; fields are named from `model`.
    fn validate(&self, dims: &AttentionDims) -> Vec<FieldError> {
        let (kv_heads, n_heads) = (self.kv_heads, dims.n_heads);
        let mut errs = vec![];
        if kv_heads == 0 || kv_heads > n_heads || !n_heads.is_multiple_of(kv_heads) {
            errs.push(FieldError::new(
                "attention.kv_heads",
                format!(
                    "{kv_heads} does not divide n_heads = {n_heads}; accepted: a divisor of \
                     n_heads ({n_heads} = MHA, 1 = MQA, in between GQA)"
                ),
            ));
        }
        if dims.rope() && !dims.d_head().is_multiple_of(2) {
            errs.push(FieldError::new(
                "positions",
                format!(
                    "RoPE needs an even head dimension, d_model / n_heads = {}",
                    dims.d_head()
                ),
            ));
        }
        errs
    }

    /// Elements cached per token per layer: K and V of every key/value head.
    fn kv_elems_per_token(&self, dims: &AttentionDims) -> usize {
        2 * self.kv_heads * dims.d_head()
    }

    /// Parameters of one layer: `W^Q`, `W^O` (`d × d`), `W^K`, `W^V` (`d × kv_heads·d_head`).
    fn param_count(&self, dims: &AttentionDims) -> usize {
        let d = dims.d_model;
        2 * d * d + 2 * d * self.kv_heads * dims.d_head()
    }

    /// Elements kept for the backward pass per token, beyond what every variant keeps
    /// ([`super::AttentionConfig::activations_per_token`]): q, k, v; rotated q and k; k and v
    /// repeated to every head when shared.
    fn activations_per_token(&self, dims: &AttentionDims) -> usize {
        let d = dims.d_model;
        let kv = self.kv_heads * dims.d_head();
        d + 2 * kv
            + (d + kv)
            + if self.kv_heads < dims.n_heads {
                2 * d
            } else {
                0
            }
    }

    /// `MHA`, `MQA` or `GQA kv=2`, with `+RoPE` when the model rotates q and k.
    fn label(&self, dims: &AttentionDims) -> String {
        let rope = if dims.rope() { "+RoPE" } else { "" };
        match self.kv_heads {
            k if k == dims.n_heads => format!("MHA{rope}"),
            1 => format!("MQA{rope}"),
            k => format!("GQA{rope} kv={k}"),
        }
    }

    /// No latent: no rank.
    fn rank(&self) -> Option<usize> {
        None
    }

    /// No latent to resize.
    fn with_rank(&self, _rank: usize) -> Option<Self> {
        None
    }

    /// One way to decode: attend over the cached K and V.
    fn decode_paths(&self) -> &'static [MlaDecode] {
        &[]
    }
}

#[derive(Module, Debug)]
pub struct Mha {
    /// `W^Q`: `d_model -> n_heads * d_head`
    wq: Linear,
    /// `W^K`: `d_model -> kv_heads * d_head`
    wk: Linear,
    /// `W^V`: `d_model -> kv_heads * d_head`
    wv: Linear,
    /// `W^O`: `n_heads * d_head -> d_model`
    wo: Linear,
    /// Rotates q and k when the model uses rotary positions.
    rope: Option<Rope>,
    n_heads: usize,
    kv_heads: usize,
    d_head: usize,
}

impl VariantModule for Mha {
    type Cache = MhaCache;

    /// # Shapes
    /// - x: `[batch, seq, d_model]`
    /// - output: `[batch, seq, d_model]`
    fn forward(&self, x: Tensor<3>, cache: Option<&mut Self::Cache>, start: usize) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let (h, kvh, dh) = (self.n_heads, self.kv_heads, self.d_head);

        let q = self
            .wq
            .forward(x.clone())
            .reshape([b, t, h, dh])
            .swap_dims(1, 2); // [b, h, t, dh]
        let k = self
            .wk
            .forward(x.clone())
            .reshape([b, t, kvh, dh])
            .swap_dims(1, 2); // [b, kvh, t, dh]
        let v = self.wv.forward(x).reshape([b, t, kvh, dh]).swap_dims(1, 2); // [b, kvh, t, dh]
        let (q, k) = match &self.rope {
            Some(rope) => (rope.apply(q, start), rope.apply(k, start)),
            None => (q, k),
        };

        let (k, v) = match cache {
            Some(c) => {
                c.k.write(k, start);
                c.v.write(v, start);
                (c.k.read(start + t), c.v.read(start + t)) // [b, kvh, s, dh]
            }
            None => (k, v),
        };
        // Scale the queries rather than the scores: [b, h, t, dh] is smaller than [b, h, t, s].
        let q = q.mul_scalar((dh as f64).powf(-0.5));
        let out = causal_attention(q, k, v, start); // [b, h, t, dh]
        let out = out.swap_dims(1, 2).reshape([b, t, h * dh]); // [b, t, h*dh]
        self.wo.forward(out)
    }

    /// An empty cache of K and V.
    fn new_cache(&self, spec: &CacheSpec) -> MhaCache {
        let shape = [spec.batch, self.kv_heads, spec.capacity, self.d_head];
        let slot = || CacheSlot::zeros(shape, spec.dtype, &spec.device);
        MhaCache {
            k: slot(),
            v: slot(),
        }
    }
}

/// K and V of an MHA/GQA/MQA layer: `[batch, kv_heads, capacity, d_head]` each.
#[derive(Debug)]
pub struct MhaCache {
    pub k: CacheSlot<4>,
    pub v: CacheSlot<4>,
}

impl VariantCache for MhaCache {
    fn slot_bytes(&self) -> Vec<SlotBytes> {
        vec![self.k.bytes(), self.v.bytes()]
    }

    fn fill_random(&mut self, len: usize, rng: &mut Rng) {
        self.k.fill_random(len, rng);
        self.v.fill_random(len, rng);
    }
}
