//! The training kernels' backend extension: one trait, whose `#[backend_extension]` routes a
//! call on a `Dispatch` tensor to flex's implementation ([`super::flex`]) or, under autodiff, to
//! `Autodiff<Flex, C>`'s ([`super::autodiff`]). A leaf: the trait alone.

use burn::backend::backend_extension;
use burn::backend::tensor::FloatTensor;

/// The training kernels as a backend extension.
#[backend_extension(Flex, Autodiff)]
pub trait FusedOps: burn::backend::Backend {
    /// `softmax(q·kᵀ)·v`, causal, heads grouped over key/value heads (see [`super::attention`]).
    fn causal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        start: usize,
    ) -> FloatTensor<Self>;

    /// The exact GELU, `x Φ(x)`, element-wise.
    fn gelu(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// Rotary embedding of `[batch, heads, seq, dim]` rows at positions `start..` by the
    /// `[context, dim / 2]` tables (`rope.rs`'s pairs).
    fn rope(
        x: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
        start: usize,
    ) -> FloatTensor<Self>;

    /// LayerNorm over the last dimension: `(x − μ) / √(σ² + ε) · γ + β`.
    fn layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;
}
