//! Attention variants. Each variant's file owns everything about it: its config as experiment
//! files write it and its validation, its module, its cache, its formulas and its label. The
//! three enums here ([`AttentionConfig`], [`Attention`], [`LayerCache`]) only delegate, one arm
//! per variant, through [`each_variant!`].
//!
//! - [`Mha`]: standard multi-head attention with `kv_heads` key/value heads
//!   (`kv_heads == n_heads` is MHA, `1` is MQA, in between GQA).
//! - [`Mla`]: multi-head latent attention from DeepSeek-V2 (arXiv 2405.04434, §2.1), with an
//!   optional decoupled RoPE part.
//! - [`Gla`]: grouped latent attention (arXiv 2505.21487): MLA's latent split into heads, each
//!   serving a group of query heads, with one rotary key shared by all.
//! - [`Gta`]: grouped-tied attention (arXiv 2505.21487): one tied state per key/value group,
//!   its whole the value and its first part the key, with one rotary key shared by all heads.
//!
//! MLA and GLA make their latents and hand them to the latent core ([`latent`]), which caches
//! them, attends over them and owns both decode paths.
//!
//! Modules are stateless: the per-layer [`LayerCache`] is passed into `forward`.
//!
//! To add a variant: its file, whose config, module and cache implement the contract in
//! [`common`] ([`VariantConfig`], [`VariantModule`], [`VariantCache`]: the compiler checks it),
//! then one arm in each enum below, one line in each rule of [`each_variant!`] and one in
//! [`Attention::forward`].

pub mod common;
pub mod gla;
pub mod gta;
pub mod latent;
#[cfg(feature = "flex")]
pub mod latent_decode;
pub mod mha;
pub mod mla;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

pub use common::{AttentionDims, MlaDecode, VariantCache, VariantConfig, VariantModule};

pub use gla::{Gla, GlaCache, GlaConfig};
pub use gta::{Gta, GtaCache, GtaConfig};
pub use latent::{Absorbed, LatentCache};
pub use mha::{Mha, MhaCache, MhaConfig};
pub use mla::{LatentLayout, Mla, MlaCache, MlaConfig};

use crate::model::field::FieldError;
use crate::model::slot::{CacheSpec, SlotBytes};
use crate::rng::Rng;

/// A `match` over every variant of one of the three enums (they share their arm names):
/// `each_variant!(value, Enum, v => body)` runs `body` with the arm's value bound to `v`;
/// `each_variant!(value, Enum => Out, v => body)` wraps `body` in `Out`'s arm of the same name.
macro_rules! each_variant {
    ($value:expr, $enum:ident, $v:ident => $body:expr) => {
        match $value {
            $enum::Mha($v) => $body,
            $enum::Mla($v) => $body,
            $enum::Gla($v) => $body,
            $enum::Gta($v) => $body,
        }
    };
    ($value:expr, $enum:ident => $out:ident, $v:ident => $body:expr) => {
        match $value {
            $enum::Mha($v) => $out::Mha($body),
            $enum::Mla($v) => $out::Mla($body),
            $enum::Gla($v) => $out::Gla($body),
            $enum::Gta($v) => $out::Gta($body),
        }
    };
}

/// Which attention a block uses. RON: `Mha(kv_heads: 6)`,
/// `Mla(rank: 192, layout: Separate, rope_dim: 32)`, `Gla(groups: 2, rank: 96, rope_dim: 16)` or
/// `Gta(groups: 2, rope_dim: 16)`.
/// Experiment files are read and written with RON's `unwrap_variant_newtypes`, so an arm's
/// struct is written inside the arm's parentheses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AttentionConfig {
    /// Multi-head attention with `kv_heads` key/value heads.
    Mha(MhaConfig),
    /// Multi-head latent attention.
    Mla(MlaConfig),
    /// Grouped latent attention: MLA's latent split into heads.
    Gla(GlaConfig),
    /// Grouped-tied attention: one state per group is both key and value.
    Gta(GtaConfig),
}

impl AttentionConfig {
    pub fn mha(kv_heads: usize) -> Self {
        AttentionConfig::Mha(MhaConfig { kv_heads })
    }

    pub fn mla(rank: usize, layout: LatentLayout, rope_dim: usize) -> Self {
        AttentionConfig::Mla(MlaConfig {
            rank,
            layout,
            rope_dim,
            latent_norm: true,
        })
    }

    pub fn init(&self, dims: AttentionDims, device: &Device) -> Attention {
        each_variant!(self, AttentionConfig => Attention, c => c.init(dims, device))
    }

    /// Problems with the variant's fields in a model of `dims` (checked only once `dims` is
    /// itself valid); fields are named from `model`.
    pub fn validate(&self, dims: &AttentionDims) -> Vec<FieldError> {
        each_variant!(self, AttentionConfig, c => c.validate(dims))
    }

    /// Elements cached per token per layer, from the formula.
    pub fn kv_elems_per_token(&self, dims: &AttentionDims) -> usize {
        each_variant!(self, AttentionConfig, c => c.kv_elems_per_token(dims))
    }

    /// Parameters of one attention layer, from the config alone (no bias anywhere).
    pub fn param_count(&self, dims: &AttentionDims) -> usize {
        each_variant!(self, AttentionConfig, c => c.param_count(dims))
    }

    /// Elements the forward pass of one layer keeps per token for the backward pass, over
    /// `seq` tokens of context: the normalised input, the attention output before `W^O` and,
    /// per head, one row of scores and one of probabilities; then what the variant computes.
    /// An estimate (a backend may keep more or fewer).
    pub fn activations_per_token(&self, dims: &AttentionDims, seq: usize) -> usize {
        let common = 2 * dims.d_model + 2 * dims.n_heads * seq;
        common + each_variant!(self, AttentionConfig, c => c.activations_per_token(dims))
    }

    /// Short human-readable name, e.g. `MLA+RoPE32 r=192 sep` or `MHA+RoPE`.
    pub fn label(&self, dims: &AttentionDims) -> String {
        each_variant!(self, AttentionConfig, c => c.label(dims))
    }

    /// The width of the variant's latent, `None` for a variant without one.
    pub fn rank(&self) -> Option<usize> {
        each_variant!(self, AttentionConfig, c => c.rank())
    }

    /// The same attention with its latent `rank` wide (`None` for a variant without one).
    pub fn with_rank(&self, rank: usize) -> Option<AttentionConfig> {
        Some(each_variant!(self, AttentionConfig => AttentionConfig, c => c.with_rank(rank)?))
    }

    /// Whether the reproduced paper left the variant out ([`VariantConfig::beyond_the_paper`]).
    pub fn beyond_the_paper(&self) -> bool {
        each_variant!(self, AttentionConfig, c => c.beyond_the_paper())
    }

    /// The decode paths the variant has beyond the plain one: empty for a variant with one
    /// way to attend over its cache.
    pub fn decode_paths(&self) -> &'static [MlaDecode] {
        each_variant!(self, AttentionConfig, c => c.decode_paths())
    }
}

/// A block's attention module.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Attention {
    Mha(Mha),
    Mla(Mla),
    Gla(Gla),
    Gta(Gta),
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
        // The layer's own arm of the cache: a model builds each layer's cache from that layer,
        // so another arm is a bug, not an input.
        macro_rules! own {
            ($arm:ident) => {
                cache.map(|c| match c {
                    LayerCache::$arm(c) => c,
                    other => panic!("{} layer given a {} cache", stringify!($arm), other.kind()),
                })
            };
        }
        match self {
            Attention::Mha(m) => m.forward(x, own!(Mha), start),
            Attention::Mla(m) => m.forward(x, own!(Mla), start),
            Attention::Gla(m) => m.forward(x, own!(Gla), start),
            Attention::Gta(m) => m.forward(x, own!(Gta), start),
        }
    }

    /// An empty cache for `batch` sequences of up to `capacity` tokens.
    pub fn new_cache(&self, spec: &CacheSpec) -> LayerCache {
        each_variant!(self, Attention => LayerCache, m => m.new_cache(spec))
    }

    /// Chooses the decode path of a variant that has several (no effect on the others).
    pub fn set_decode(&mut self, decode: MlaDecode) {
        each_variant!(self, Attention, m => m.set_decode(decode))
    }
}

/// One layer's cache, made by its attention. (Arms hold tensor handles, not data: their size
/// gap is harmless.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum LayerCache {
    Mha(MhaCache),
    Mla(MlaCache),
    Gla(GlaCache),
    Gta(GtaCache),
}

impl LayerCache {
    /// The variant whose cache it is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            LayerCache::Mha(_) => "Mha",
            LayerCache::Mla(_) => "Mla",
            LayerCache::Gla(_) => "Gla",
            LayerCache::Gta(_) => "Gta",
        }
    }

    fn slot_bytes(&self) -> Vec<SlotBytes> {
        each_variant!(self, LayerCache, c => c.slot_bytes())
    }

    /// Bytes held by all buffers (all positions, filled or not): what the tests hold against
    /// the formula.
    #[cfg(test)]
    pub fn bytes_allocated(&self) -> usize {
        self.slot_bytes().iter().map(|s| s.allocated).sum()
    }

    /// Bytes one sequence position takes across the batch.
    pub fn bytes_per_position(&self) -> usize {
        self.slot_bytes().iter().map(|s| s.per_position).sum()
    }

    /// Fills positions `0..len` of every buffer with N(0, 1) values.
    pub(crate) fn fill_random(&mut self, len: usize, rng: &mut Rng) {
        each_variant!(self, LayerCache, c => c.fill_random(len, rng))
    }
}
