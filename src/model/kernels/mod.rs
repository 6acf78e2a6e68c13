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
//! The extension trait ([`FusedOps`]) is implemented for `Flex` (the forward) and for
//! `Autodiff<Flex, C>` (the forward, with a `Backward` node that runs the kernel's backward).

pub mod attention;
pub mod simd;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, Ordering};

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Dispatch, DispatchTensorKind, backend_extension};
use burn::tensor::{DType, Int, Shape, Tensor};
use rayon::prelude::*;

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

/// The training kernels as a backend extension.
#[backend_extension(Flex, Autodiff)]
pub trait FusedOps: burn::backend::Backend {
    /// `softmax(q·kᵀ)·v`, causal, heads grouped over key/value heads (see [`attention`]).
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
    let [rows, vocab] = logits.dims();
    let targets = targets
        .clone()
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .ok()?;
    assert_eq!(targets.len(), rows, "cross-entropy kernel: targets");
    let mut logits = rows_of(logits.try_into_primitive::<Flex>().ok()?);
    let simd = simd::Simd::detect();
    let data = logits.storage_mut::<f32>();
    let loss: f64 = data
        .par_chunks_mut(vocab)
        .zip(targets.par_iter())
        .map(|(row, &t)| {
            let t = usize::try_from(t)
                .ok()
                .filter(|&t| t < vocab)
                .unwrap_or_else(|| {
                    panic!("cross-entropy kernel: target {t} of a {vocab}-token vocabulary")
                });
            simd::cross_entropy_row(
                simd,
                row,
                t,
                grad_scale.unwrap_or(0.0),
                grad_scale.is_some(),
            ) as f64
        })
        .sum();
    Some((
        loss,
        grad_scale.map(|_| Tensor::from_primitive::<Flex>(logits)),
    ))
}

/// A flex tensor, owned, row-major and starting at its buffer's first element, for a kernel to
/// write over (copied when it is a view or shared).
fn rows_of(t: FlexTensor) -> FlexTensor {
    if t.is_contiguous() && t.layout().start_offset() == 0 && t.is_unique() {
        t
    } else {
        t.to_contiguous()
    }
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

/// Rows per piece of work in the row-wise kernels (RoPE).
const ROPE_ROWS: usize = 256;

/// Rows of `x` (`[batch, heads, seq, dim]`, any strides with unit inner stride, or copied into
/// such) turned by `sign`·angle at positions `start..`, written row-major.
fn rope_forward(
    x: &FlexTensor,
    cos: &FlexTensor,
    sin: &FlexTensor,
    start: usize,
    sign: f32,
) -> FlexTensor {
    let x = if x.layout().strides()[3] == 1 && x.layout().strides().iter().all(|&s| s >= 0) {
        x.clone()
    } else {
        x.to_contiguous()
    };
    let layout = x.layout();
    let (shape, strides) = (layout.shape(), layout.strides());
    let (h, t, d) = (shape[1], shape[2], shape[3]);
    let (cos, sin) = (rows(cos), rows(sin));
    let half = d / 2;
    assert_eq!(cos.layout().shape()[1], half, "rope kernel: table width");
    assert!(
        start + t <= cos.layout().shape()[0],
        "rope kernel: positions past the table"
    );
    let (cos, sin) = (data(&cos), data(&sin));
    let (src, first) = (x.storage::<f32>(), layout.start_offset());
    let [s0, s1, s2] = [
        strides[0] as usize,
        strides[1] as usize,
        strides[2] as usize,
    ];
    let mut y = FlexTensor::empty(shape.clone(), DType::F32);
    let simd = simd::Simd::detect();
    y.storage_mut::<f32>()
        .par_chunks_mut(ROPE_ROWS * d)
        .enumerate()
        .for_each(|(piece, y)| {
            for (i, y) in y.chunks_mut(d).enumerate() {
                let row = piece * ROPE_ROWS + i;
                let (b, hh, p) = (row / (h * t), (row / t) % h, row % t);
                let at = first + b * s0 + hh * s1 + p * s2;
                let table = (start + p) * half;
                let (c, s) = (&cos[table..table + half], &sin[table..table + half]);
                simd::rope_row(simd, &src[at..at + d], c, s, sign, y);
            }
        });
    y
}

/// Rows per piece of work in LayerNorm.
const NORM_ROWS: usize = 64;

/// The forward on flex: the output, and each row's mean and inverse deviation.
fn layer_norm_forward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    epsilon: f64,
) -> (FlexTensor, Vec<f32>, Vec<f32>) {
    let (x, gamma, beta) = (rows(x), rows(gamma), rows(beta));
    let d = gamma.layout().shape().num_elements();
    let n = x.layout().shape().num_elements() / d;
    let mut y = FlexTensor::empty(x.layout().shape().clone(), DType::F32);
    let (mut mean, mut rstd) = (vec![0.0f32; n], vec![0.0f32; n]);
    let simd = simd::Simd::detect();
    let (g, b) = (data(&gamma), data(&beta));
    y.storage_mut::<f32>()
        .par_chunks_mut(NORM_ROWS * d)
        .zip(data(&x).par_chunks(NORM_ROWS * d))
        .zip(
            mean.par_chunks_mut(NORM_ROWS)
                .zip(rstd.par_chunks_mut(NORM_ROWS)),
        )
        .for_each(|((y, x), (mean, rstd))| {
            for (r, (y, x)) in y.chunks_mut(d).zip(x.chunks(d)).enumerate() {
                (mean[r], rstd[r]) = simd::layer_norm_row(simd, x, g, b, epsilon as f32, y);
            }
        });
    (y, mean, rstd)
}

/// Elements per piece of work in the element-wise kernels: 64 KiB of f32.
const PIECE: usize = 1 << 14;

/// `f` over matching pieces of `x` and `y` on rayon's threads.
fn pieces(x: &[f32], y: &mut [f32], f: impl Fn(&[f32], &mut [f32]) + Sync) {
    y.par_chunks_mut(PIECE)
        .zip(x.par_chunks(PIECE))
        .for_each(|(y, x)| f(x, y));
}

fn gelu_forward(x: &FlexTensor) -> FlexTensor {
    let x = rows(x);
    let mut y = FlexTensor::empty(x.layout().shape().clone(), DType::F32);
    let simd = simd::Simd::detect();
    pieces(data(&x), y.storage_mut::<f32>(), |x, y| {
        simd::gelu(simd, x, y)
    });
    y
}

/// A flex tensor whose elements lie in row-major order (copied into one when it is a strided
/// view).
fn rows(t: &FlexTensor) -> FlexTensor {
    if t.is_contiguous() {
        t.clone()
    } else {
        t.to_contiguous()
    }
}

/// The elements of a row-major flex tensor ([`rows`]), exactly: a view's buffer may hold more
/// (a cache's read of its first positions).
fn data(t: &FlexTensor) -> &[f32] {
    let start = t.layout().start_offset();
    &t.storage::<f32>()[start..start + t.layout().shape().num_elements()]
}

fn attention_dims(q: &FlexTensor, k: &FlexTensor, v: &FlexTensor, start: usize) -> attention::Dims {
    let (qs, ks, vs) = (q.layout().shape(), k.layout().shape(), v.layout().shape());
    assert!(
        qs.num_dims() == 4 && ks.num_dims() == 4 && vs.num_dims() == 4,
        "attention kernel: rank-4 inputs"
    );
    attention::Dims {
        batch: qs[0],
        heads: qs[1],
        kv_heads: ks[1],
        seq: qs[2],
        keys: ks[2],
        d_k: qs[3],
        d_v: vs[3],
        start,
    }
}

/// The forward on flex: output and log-sum-exp, inputs made row-major.
fn attention_forward(
    q: &FlexTensor,
    k: &FlexTensor,
    v: &FlexTensor,
    start: usize,
) -> (FlexTensor, FlexTensor) {
    let (q, k, v) = (rows(q), rows(k), rows(v));
    let dims = attention_dims(&q, &k, &v, start);
    let out_shape = Shape::from([dims.batch, dims.heads, dims.seq, dims.d_v]);
    let mut out = FlexTensor::empty(out_shape, DType::F32);
    let mut lse = FlexTensor::empty(Shape::from([dims.batch, dims.heads, dims.seq]), DType::F32);
    attention::forward(
        dims,
        data(&q),
        data(&k),
        data(&v),
        out.storage_mut::<f32>(),
        lse.storage_mut::<f32>(),
    );
    (out, lse)
}

impl FusedOps for Flex {
    fn causal_attention(q: FlexTensor, k: FlexTensor, v: FlexTensor, start: usize) -> FlexTensor {
        attention_forward(&q, &k, &v, start).0
    }

    fn gelu(x: FlexTensor) -> FlexTensor {
        gelu_forward(&x)
    }

    fn layer_norm(x: FlexTensor, gamma: FlexTensor, beta: FlexTensor, epsilon: f64) -> FlexTensor {
        layer_norm_forward(&x, &gamma, &beta, epsilon).0
    }

    fn rope(x: FlexTensor, cos: FlexTensor, sin: FlexTensor, start: usize) -> FlexTensor {
        rope_forward(&x, &cos, &sin, start, 1.0)
    }
}

/// What the attention's backward reads: the row-major inputs, the output, its log-sum-exp.
#[derive(Debug, Clone)]
struct AttentionSaved {
    q: FlexTensor,
    k: FlexTensor,
    v: FlexTensor,
    out: FlexTensor,
    lse: FlexTensor,
    start: usize,
}

#[derive(Debug)]
struct AttentionBackward;

impl Backward<Flex, 3> for AttentionBackward {
    type State = AttentionSaved;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_q, node_k, node_v] = ops.parents;
        let d_out = rows(&grads.consume::<Flex>(&ops.node));
        let s = ops.state;
        let dims = attention_dims(&s.q, &s.k, &s.v, s.start);
        let mut dq = FlexTensor::empty(s.q.layout().shape().clone(), DType::F32);
        let mut dk = FlexTensor::zeros(s.k.layout().shape().clone(), DType::F32);
        let mut dv = FlexTensor::zeros(s.v.layout().shape().clone(), DType::F32);
        attention::backward(
            dims,
            attention::Saved {
                q: data(&s.q),
                k: data(&s.k),
                v: data(&s.v),
                out: data(&s.out),
                lse: data(&s.lse),
            },
            data(&d_out),
            attention::Grads {
                dq: dq.storage_mut::<f32>(),
                dk: dk.storage_mut::<f32>(),
                dv: dv.storage_mut::<f32>(),
            },
        );
        for (node, grad) in [(node_q, dq), (node_k, dk), (node_v, dv)] {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

#[derive(Debug)]
struct GeluBackward;

impl Backward<Flex, 1> for GeluBackward {
    /// The input, row-major.
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let dy = rows(&grads.consume::<Flex>(&ops.node));
        let Some(node) = node else { return };
        let x = ops.state;
        let mut dx = FlexTensor::empty(x.layout().shape().clone(), DType::F32);
        let simd = simd::Simd::detect();
        let (x, dy) = (data(&x), data(&dy));
        dx.storage_mut::<f32>()
            .par_chunks_mut(PIECE)
            .zip(x.par_chunks(PIECE).zip(dy.par_chunks(PIECE)))
            .for_each(|(dx, (x, dy))| simd::gelu_grad(simd, x, dy, dx));
        grads.register::<Flex>(node.id, dx);
    }
}

/// What LayerNorm's backward reads: the row-major input and `γ`, each row's mean and inverse
/// deviation.
#[derive(Debug, Clone)]
struct NormSaved {
    x: FlexTensor,
    gamma: FlexTensor,
    mean: Vec<f32>,
    rstd: Vec<f32>,
}

#[derive(Debug)]
struct NormBackward;

impl Backward<Flex, 3> for NormBackward {
    type State = NormSaved;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let dy = rows(&grads.consume::<Flex>(&ops.node));
        let s = ops.state;
        let d = s.gamma.layout().shape().num_elements();
        let mut dx = FlexTensor::empty(s.x.layout().shape().clone(), DType::F32);
        let simd = simd::Simd::detect();
        let (x, dy, gamma) = (data(&s.x), data(&dy), data(&s.gamma));
        // Each piece of rows sums its own dγ and dβ; the pieces' sums are added after.
        let partial: Vec<(Vec<f32>, Vec<f32>)> = dx
            .storage_mut::<f32>()
            .par_chunks_mut(NORM_ROWS * d)
            .enumerate()
            .map(|(piece, dx)| {
                let (mut dgamma, mut dbeta) = (vec![0.0f32; d], vec![0.0f32; d]);
                for (r, dx) in dx.chunks_mut(d).enumerate() {
                    let row = piece * NORM_ROWS + r;
                    let norm_row = simd::NormRow {
                        x: &x[row * d..][..d],
                        dy: &dy[row * d..][..d],
                        gamma,
                        mean: s.mean[row],
                        rstd: s.rstd[row],
                    };
                    simd::layer_norm_grad_row(simd, &norm_row, dx, &mut dgamma, &mut dbeta);
                }
                (dgamma, dbeta)
            })
            .collect();
        let (mut dgamma, mut dbeta) = (vec![0.0f32; d], vec![0.0f32; d]);
        for (pg, pb) in &partial {
            dgamma.iter_mut().zip(pg).for_each(|(a, b)| *a += b);
            dbeta.iter_mut().zip(pb).for_each(|(a, b)| *a += b);
        }
        let param = |v: Vec<f32>| FlexTensor::from_data(burn::tensor::TensorData::new(v, [d]));
        for (node, grad) in [
            (node_x, dx),
            (node_gamma, param(dgamma)),
            (node_beta, param(dbeta)),
        ] {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

/// What RoPE's backward reads: the tables (constants) and the first position.
#[derive(Debug, Clone)]
struct RopeSaved {
    cos: FlexTensor,
    sin: FlexTensor,
    start: usize,
}

#[derive(Debug)]
struct RopeBackward;

impl Backward<Flex, 1> for RopeBackward {
    type State = RopeSaved;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let Some(node) = node else { return };
        let s = ops.state;
        // A rotation's transpose turns back by the same angle.
        grads.register::<Flex>(node.id, rope_forward(&dy, &s.cos, &s.sin, s.start, -1.0));
    }
}

impl<C: CheckpointStrategy> FusedOps for Autodiff<Flex, C> {
    fn rope(
        x: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
        start: usize,
    ) -> FloatTensor<Self> {
        // The tables are constants: only x is a parent.
        let (cos, sin) = (cos.primitive().clone(), sin.primitive().clone());
        let y = rope_forward(x.primitive(), &cos, &sin, start, 1.0);
        match RopeBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(RopeSaved { cos, sin, start }, y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let prep = NormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful();
        let (x, gamma, beta) = (
            rows(x.primitive()),
            rows(gamma.primitive()),
            rows(beta.primitive()),
        );
        let (y, mean, rstd) = layer_norm_forward(&x, &gamma, &beta, epsilon);
        match prep {
            OpsKind::Tracked(prep) => prep.finish(
                NormSaved {
                    x,
                    gamma,
                    mean,
                    rstd,
                },
                y,
            ),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match GeluBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let x = rows(x.primitive());
                let y = gelu_forward(&x);
                prep.finish(x, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(gelu_forward(x.primitive())),
        }
    }

    fn causal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        start: usize,
    ) -> FloatTensor<Self> {
        let prep = AttentionBackward
            .prepare::<C>([q.node(), k.node(), v.node()])
            .compute_bound()
            .stateful();
        let (q, k, v) = (
            rows(q.primitive()),
            rows(k.primitive()),
            rows(v.primitive()),
        );
        match prep {
            OpsKind::Tracked(prep) => {
                let (out, lse) = attention_forward(&q, &k, &v, start);
                let saved = AttentionSaved {
                    q,
                    k,
                    v,
                    out: out.clone(),
                    lse,
                    start,
                };
                prep.finish(saved, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(attention_forward(&q, &k, &v, start).0),
        }
    }
}
