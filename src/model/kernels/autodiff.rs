//! `FusedOps` for `Autodiff<Flex, C>`: each kernel's forward (from [`super::flex`]) recorded as
//! one node of burn's autodiff graph with a hand-written `Backward`, which keeps only what its
//! backward reads (the attention: inputs, output, log-sum-exp; LayerNorm: input, γ, each row's
//! mean and inverse deviation; GELU: the input; RoPE: the tables) and runs the kernel's backward.

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::tensor::FloatTensor;
use burn::tensor::DType;
use rayon::prelude::*;

use super::attention;
use super::flex::{
    NORM_ROWS, PIECE, attention_dims, attention_forward, data, gelu_forward, layer_norm_forward,
    rope_forward, rows,
};
use super::ops::FusedOps;
use super::simd;

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
