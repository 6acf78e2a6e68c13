//! Fused training kernels for flex, reached through burn's backend extension, each with its own
//! backward pass under autodiff.
//!
//! burn-flex runs each operation of a composed layer as its own pass over memory, most of them on
//! one core: causal attention writes the `[batch, heads, seq, keys]` scores, their mask, their
//! softmax and its backward to fresh memory (docs/performance.md has the profile). The kernels
//! here do one such layer in one multi-threaded pass:
//!
//! - [`causal_attention`]: scores, mask, softmax and the weighted sum per block of query rows,
//!   the backward recomputing the probabilities from the saved log-sum-exp ([`attention`]).
//! - [`cross_entropy`]: the loss of each row of logits and, in the same pass, their gradient,
//!   rows on every core (outside autodiff: the head's loss computes its own gradient).
//! - [`layer_norm`]: each row's mean, variance and affine map in one pass, rows on every core;
//!   the backward from the saved mean and inverse deviation, `dγ` and `dβ` summed per piece of
//!   rows and then over the pieces.
//! - [`rope`]: rotary positions turned in one pass, read in place from the strided view that
//!   splits heads (no copy first), written row-major for the attention; the backward turns the
//!   gradient back.
//! - [`gelu`]: the exact GELU and its derivative, element-wise on every core, `erf` and `exp`
//!   vectorised ([`simd`]); the backward keeps only the input.
//!
//! Each public function returns `None` unless every input is an f32 tensor on flex (with or
//! without autodiff), and the caller then takes the composed reference, which every other backend
//! runs and the tests hold the kernel to. [`set_fused`] turns the kernels off for a whole process
//! (the benchmarks' `burn` rows).
//!
//! The extension trait ([`FusedOps`], `ops.rs`) is implemented for `Flex` (the forward,
//! `flex.rs`) and for `Autodiff<Flex, C>` (the forward, with a `Backward` node that runs the
//! kernel's backward, `autodiff.rs`). This file is the front: the functions on `Tensor`s the
//! model calls.

pub mod attention;
mod autodiff;
mod flex;
pub mod ops;
pub mod simd;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, Ordering};

use burn::backend::flex::Flex;
use burn::backend::{Dispatch, DispatchTensorKind};
use burn::tensor::{DType, Int, Tensor};

pub use ops::FusedOps;

static FUSED: AtomicBool = AtomicBool::new(true);

/// Whether the fused kernels run where they apply (the default), or every layer takes its
/// composed reference (burn's own operations): for benchmarks that put both side by side.
pub fn set_fused(on: bool) {
    FUSED.store(on, Ordering::Relaxed);
}

/// Whether the fused kernels are on ([`set_fused`]).
pub fn fused() -> bool {
    FUSED.load(Ordering::Relaxed)
}

/// Whether the kernels would take `t`: an f32 tensor on flex, tracked or not, the kernels on.
pub fn applies<const D: usize>(t: &Tensor<D>) -> bool {
    on_flex(t)
}

/// Whether `t` lives on flex as f32, tracked or not, and the kernels are on.
fn on_flex<const D: usize>(t: &Tensor<D>) -> bool {
    if t.dtype() != DType::F32 || !fused() {
        return false;
    }
    match &t.clone().into_dispatch().kind {
        DispatchTensorKind::Flex(_) => true,
        DispatchTensorKind::Autodiff(inner) => matches!(**inner, DispatchTensorKind::Flex(_)),
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

/// [`super::attention::common::causal_attention_reference`] by the kernel, or `None` where it
/// does not apply (another backend or dtype, an empty size, the kernels off).
///
/// # Shapes
/// - q: `[batch, heads, seq, d_k]`, k: `[batch, kv_heads, start + seq, d_k]`,
///   v: `[batch, kv_heads, start + seq, d_v]`
/// - output: `[batch, heads, seq, d_v]`
pub fn causal_attention(
    q: &Tensor<4>,
    k: &Tensor<4>,
    v: &Tensor<4>,
    start: usize,
) -> Option<Tensor<4>> {
    let empty = [q, k, v].iter().any(|t| t.dims().contains(&0));
    if empty || ![q, k, v].iter().all(|t| on_flex(t)) {
        return None;
    }
    let out = <Dispatch as FusedOps>::causal_attention(
        q.clone().into_dispatch(),
        k.clone().into_dispatch(),
        v.clone().into_dispatch(),
        start,
    );
    Some(Tensor::from_dispatch(out))
}

/// The exact GELU by the kernel, or `None` where it does not apply.
pub fn gelu<const D: usize>(x: &Tensor<D>) -> Option<Tensor<D>> {
    if x.dims().contains(&0) || !on_flex(x) {
        return None;
    }
    Some(Tensor::from_dispatch(<Dispatch as FusedOps>::gelu(
        x.clone().into_dispatch(),
    )))
}

/// The summed cross-entropy of the rows of `logits` (`[rows, vocab]`, not tracked) against
/// `targets` (`[rows]`), and with `grad_scale` the logits' gradient
/// `(softmax − onehot(target)) · grad_scale` (written over the logits): one pass per row, rows
/// on every core. `None` off flex.
pub fn cross_entropy(
    logits: Tensor<2>,
    targets: &Tensor<1, Int>,
    grad_scale: Option<f32>,
) -> Option<(f64, Option<Tensor<2>>)> {
    if logits.dims().contains(&0) || !on_flex(&logits) {
        return None;
    }
    let rows = logits.dims()[0];
    let targets = targets
        .clone()
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .ok()?;
    assert_eq!(targets.len(), rows, "cross-entropy kernel: targets");
    let logits = logits.try_into_primitive::<Flex>().ok()?;
    let (loss, grad) = flex::cross_entropy(logits, &targets, grad_scale);
    Some((loss, grad.map(Tensor::from_primitive::<Flex>)))
}

/// LayerNorm over the last dimension by the kernel (burn's `LayerNorm` with the same `γ`, `β`
/// and `ε`), or `None` where it does not apply.
///
/// # Shapes
/// - x: `[.., d]`, gamma, beta: `[d]`
/// - output: as x
pub fn layer_norm<const D: usize>(
    x: &Tensor<D>,
    gamma: &Tensor<1>,
    beta: &Tensor<1>,
    epsilon: f64,
) -> Option<Tensor<D>> {
    if x.dims().contains(&0)
        || ![on_flex(x), on_flex(gamma), on_flex(beta)]
            .iter()
            .all(|&f| f)
    {
        return None;
    }
    Some(Tensor::from_dispatch(<Dispatch as FusedOps>::layer_norm(
        x.clone().into_dispatch(),
        gamma.clone().into_dispatch(),
        beta.clone().into_dispatch(),
        epsilon,
    )))
}

/// `x` turned by the rotary tables at positions `start..` by the kernel, or `None` where it
/// does not apply.
///
/// # Shapes
/// - x: `[batch, heads, seq, dim]`, cos, sin: `[context, dim / 2]`
/// - output: `[batch, heads, seq, dim]`
pub fn rope(x: &Tensor<4>, cos: &Tensor<2>, sin: &Tensor<2>, start: usize) -> Option<Tensor<4>> {
    if x.dims().contains(&0) || ![on_flex(x), on_flex(cos), on_flex(sin)].iter().all(|&f| f) {
        return None;
    }
    Some(Tensor::from_dispatch(<Dispatch as FusedOps>::rope(
        x.clone().into_dispatch(),
        cos.clone().into_dispatch(),
        sin.clone().into_dispatch(),
        start,
    )))
}
