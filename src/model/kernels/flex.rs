//! The kernels' forward passes on flex tensors, and `FusedOps` for `Flex`: each makes its
//! inputs row-major where a kernel needs it (a copy only for a strided view it cannot read),
//! runs the loops of [`super::attention`] and [`super::simd`] on rayon's threads, and returns a
//! fresh flex tensor. [`super::autodiff`] calls the same forwards and keeps what its backward
//! reads.

use burn::backend::flex::{Flex, FlexTensor};
use burn::tensor::{DType, Shape};
use rayon::prelude::*;

use super::attention;
use super::ops::FusedOps;
use super::simd;

/// The summed cross-entropy of the rows of `logits` (`[rows, vocab]`) against `targets`, and
/// with `grad_scale` the logits' gradient written over them ([`super::cross_entropy`]).
pub(super) fn cross_entropy(
    logits: FlexTensor,
    targets: &[i64],
    grad_scale: Option<f32>,
) -> (f64, Option<FlexTensor>) {
    let vocab = logits.layout().shape()[1];
    let mut logits = rows_of(logits);
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
    (loss, grad_scale.map(|_| logits))
}

/// A flex tensor, owned, row-major and starting at its buffer's first element, for a kernel to
/// write over (copied when it is a view or shared).
pub(super) fn rows_of(t: FlexTensor) -> FlexTensor {
    if t.is_contiguous() && t.layout().start_offset() == 0 && t.is_unique() {
        t
    } else {
        t.to_contiguous()
    }
}

/// Rows per piece of work in the row-wise kernels (RoPE).
const ROPE_ROWS: usize = 256;

/// Rows of `x` (`[batch, heads, seq, dim]`, any strides with unit inner stride, or copied into
/// such) turned by `sign`·angle at positions `start..`, written row-major.
pub(super) fn rope_forward(
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
pub(super) const NORM_ROWS: usize = 64;

/// The forward on flex: the output, and each row's mean and inverse deviation.
pub(super) fn layer_norm_forward(
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
pub(super) const PIECE: usize = 1 << 14;

/// `f` over matching pieces of `x` and `y` on rayon's threads.
pub(super) fn pieces(x: &[f32], y: &mut [f32], f: impl Fn(&[f32], &mut [f32]) + Sync) {
    y.par_chunks_mut(PIECE)
        .zip(x.par_chunks(PIECE))
        .for_each(|(y, x)| f(x, y));
}

pub(super) fn gelu_forward(x: &FlexTensor) -> FlexTensor {
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
pub(super) fn rows(t: &FlexTensor) -> FlexTensor {
    if t.is_contiguous() {
        t.clone()
    } else {
        t.to_contiguous()
    }
}

/// The elements of a row-major flex tensor ([`rows`]), exactly: a view's buffer may hold more
/// (a cache's read of its first positions).
pub(super) fn data(t: &FlexTensor) -> &[f32] {
    let start = t.layout().start_offset();
    &t.storage::<f32>()[start..start + t.layout().shape().num_elements()]
}

pub(super) fn attention_dims(
    q: &FlexTensor,
    k: &FlexTensor,
    v: &FlexTensor,
    start: usize,
) -> attention::Dims {
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
pub(super) fn attention_forward(
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
