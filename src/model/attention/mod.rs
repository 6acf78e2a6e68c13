//! Attention variants: one config enum, one module enum, one cache enum, one `match` each.
//!
//! - [`Mha`]: standard multi-head attention with `kv_heads` key/value heads
//!   (`kv_heads == n_heads` is MHA, `1` is MQA, in between GQA).
//! - [`Mla`]: multi-head latent attention from DeepSeek-V2 (arXiv 2405.04434, §2.1), with an
//!   optional decoupled RoPE part.
//!
//! Modules are stateless: the per-layer [`LayerCache`] is passed into `forward`.

pub mod mha;
pub mod mla;

use burn::module::Module;
use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Device, Tensor};
use serde::{Deserialize, Serialize};

pub use mha::{Mha, MhaConfig};
pub use mla::{Mla, MlaConfig};

use crate::model::cache::{CacheSpec, LayerCache};

/// Which attention a block uses. RON: `Mha(kv_heads: 6)` or
/// `Mla(rank: 192, layout: Separate, rope_dim: 32)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "AttentionInFile")]
pub enum AttentionConfig {
    /// Multi-head attention with `kv_heads` key/value heads.
    Mha { kv_heads: usize },
    /// Multi-head latent attention.
    Mla {
        /// Width `r` of each latent (`d_c` in DeepSeek-V2).
        rank: usize,
        /// One latent shared by K and V, or one each.
        layout: LatentLayout,
        /// Width of the decoupled rotary key/query part (`d_h^R`); 0 = no RoPE inside MLA.
        rope_dim: usize,
    },
}

/// [`AttentionConfig`] as files may write it: MLA's former `decode` field (the decode path, now
/// chosen when running) is still accepted, so older files parse, and then dropped, so it never
/// tells two experiments apart. [`crate::model::validate`] does not see it; the experiment
/// loader notes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename = "AttentionConfig")]
enum AttentionInFile {
    Mha {
        kv_heads: usize,
    },
    Mla {
        rank: usize,
        layout: LatentLayout,
        rope_dim: usize,
        #[serde(default)]
        #[allow(dead_code)]
        decode: MlaDecode,
    },
}

impl From<AttentionInFile> for AttentionConfig {
    fn from(a: AttentionInFile) -> Self {
        match a {
            AttentionInFile::Mha { kv_heads } => AttentionConfig::Mha { kv_heads },
            AttentionInFile::Mla {
                rank,
                layout,
                rope_dim,
                decode: _,
            } => AttentionConfig::Mla {
                rank,
                layout,
                rope_dim,
            },
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

/// How MLA attends over the cached latent.
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
}

impl AttentionConfig {
    pub fn init(&self, dims: AttentionDims, device: &Device) -> Attention {
        match *self {
            AttentionConfig::Mha { kv_heads } => {
                Attention::Mha(MhaConfig { dims, kv_heads }.init(device))
            }
            AttentionConfig::Mla {
                rank,
                layout,
                rope_dim,
            } => Attention::Mla(
                MlaConfig {
                    dims,
                    rank,
                    layout,
                    rope_dim,
                    decode: MlaDecode::default(),
                }
                .init(device),
            ),
        }
    }

    /// Elements cached per token per layer, from the formula.
    pub fn kv_elems_per_token(&self, d_model: usize, n_heads: usize) -> usize {
        match *self {
            AttentionConfig::Mha { kv_heads } => 2 * kv_heads * (d_model / n_heads),
            AttentionConfig::Mla {
                rank,
                layout,
                rope_dim,
                ..
            } => layout.latents() * rank + rope_dim,
        }
    }

    /// Short human-readable name, e.g. `MLA+RoPE32 r=192 sep`; `rope` says whether an MHA
    /// layer rotates q and k.
    /// Parameters of one attention layer, from the config alone (no bias anywhere; the MLA
    /// latents' RMSNorms have one gain per channel).
    pub fn param_count(&self, d_model: usize, n_heads: usize) -> usize {
        let (d, dh) = (d_model, d_model / n_heads);
        match *self {
            AttentionConfig::Mha { kv_heads } => 2 * d * d + 2 * d * kv_heads * dh,
            AttentionConfig::Mla {
                rank,
                layout,
                rope_dim,
            } => {
                let latents = layout.latents();
                // W^Q, W^O; W^DKV and the norms; W^UK, W^UV; W^QR, W^KR.
                2 * d * d
                    + latents * (d * rank + rank)
                    + 2 * rank * d
                    + (n_heads + 1) * d * rope_dim
            }
        }
    }

    /// Elements the forward pass of one layer keeps per token for the backward pass, over
    /// `seq` tokens of context: the projections it computes and, per head, one row of scores
    /// and one of probabilities. An estimate (a backend may keep more or fewer).
    pub fn activations_per_token(&self, d_model: usize, n_heads: usize, seq: usize) -> usize {
        let (d, dh) = (d_model, d_model / n_heads);
        // Normalised input, attention output before W^O, scores and probabilities.
        let common = 2 * d + 2 * n_heads * seq;
        common
            + match *self {
                // q, k, v; rotated q and k; k and v repeated to every head when shared.
                AttentionConfig::Mha { kv_heads } => {
                    let kv = kv_heads * dh;
                    d + 2 * kv + (d + kv) + if kv_heads < n_heads { 2 * d } else { 0 }
                }
                // q; latents and their norms; k and v up-projected; the rotary parts, rotated,
                // and q and k with them appended.
                AttentionConfig::Mla {
                    rank,
                    layout,
                    rope_dim,
                } => {
                    let rotary = if rope_dim > 0 {
                        2 * (n_heads + 1) * rope_dim + 2 * n_heads * (dh + rope_dim)
                    } else {
                        0
                    };
                    d + 2 * layout.latents() * rank + 2 * d + rotary
                }
            }
    }

    pub fn label(&self, n_heads: usize, rope: bool) -> String {
        let rope_tag = if rope { "+RoPE" } else { "" };
        match *self {
            AttentionConfig::Mha { kv_heads } if kv_heads == n_heads => format!("MHA{rope_tag}"),
            AttentionConfig::Mha { kv_heads: 1 } => format!("MQA{rope_tag}"),
            AttentionConfig::Mha { kv_heads } => format!("GQA{rope_tag} kv={kv_heads}"),
            AttentionConfig::Mla {
                rank,
                layout,
                rope_dim,
                ..
            } => {
                let rope = if rope_dim > 0 {
                    format!("+RoPE{rope_dim}")
                } else {
                    String::new()
                };
                let layout = match layout {
                    LatentLayout::Joint => "joint",
                    LatentLayout::Separate => "sep",
                };
                format!("MLA{rope} r={rank} {layout}")
            }
        }
    }
}

/// A block's attention module.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Attention {
    Mha(Mha),
    Mla(Mla),
}

impl Attention {
    /// Attends causally over `x`, whose first token sits at absolute position `start`.
    /// With a cache, the new keys/values (or latents) are written at `start..start+seq` and the
    /// queries attend over everything cached so far.
    ///
    /// # Shapes
    /// - x: `[batch, seq, d_model]`
    /// - output: `[batch, seq, d_model]`
    pub fn forward(&self, x: Tensor<3>, cache: Option<&mut LayerCache>, start: usize) -> Tensor<3> {
        match self {
            Attention::Mha(m) => m.forward(x, cache, start),
            Attention::Mla(m) => m.forward(x, cache, start),
        }
    }

    /// An empty cache for `batch` sequences of up to `capacity` tokens.
    pub fn new_cache(&self, spec: &CacheSpec) -> LayerCache {
        match self {
            Attention::Mha(m) => m.new_cache(spec),
            Attention::Mla(m) => m.new_cache(spec),
        }
    }

    pub fn set_decode(&mut self, decode: MlaDecode) {
        if let Attention::Mla(m) = self {
            m.decode = decode;
        }
    }
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
