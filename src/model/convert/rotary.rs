//! The rotary part of an MHA+RoPE layer moved into MLA's one shared rotary key, by TransMLA's
//! observation (Meng et al., arXiv 2502.07864, its "RoRoPE"): RoPE turns pair `p` of every
//! head's key by the same angle, so any orthogonal mix *across heads* within one pair commutes
//! with the rotation. Mixed so that one direction carries most of the pair's energy, that
//! direction becomes the shared key `k^R`; what is left of each head's key loses its rotation
//! and joins the part the SVD factors (`super`).
//!
//! MHA2MLA's partial RoPE (arXiv 2502.14837) instead keeps a rotary key per head, and our MLA
//! has one shared `k^R` (DeepSeek's form), which is why the rotation is TransMLA's. The pairs
//! that stay rotated are fixed by the target: its rotary width `d_h^R` turns pair `i` at
//! `θ^(−2i/d_h^R)`, which is the source's pair `p = i·m` with `m = d_h / d_h^R` (every `m`-th
//! frequency: MHA2MLA's "uniform" choice). Per head `j` and kept pair `p`, with `a_j`, `b_j`
//! the two key columns of the pair (`rope.rs`'s "rotate half": elements `p` and `p + d_h/2`),
//! `A = [a_1 … a_H]`, `B = [b_1 … b_H]` (`d × H`), and `u` the top right singular vector of
//! `[A; B]` (the direction across heads that keeps most of `‖A‖² + ‖B‖²`; a data-free choice,
//! as if the layer's inputs were white, where TransMLA measures keys on calibration text):
//!
//! ```text
//! W^KR[:, i], W^KR[:, i + d_h^R/2]        = A u, B u                 one key for all heads
//! W^QR_j[:, i], W^QR_j[:, i + d_h^R/2]    = c u_j W_Q,j[:, p], c u_j W_Q,j[:, p + d_h/2]
//! W^C_K,j[:, p], W^C_K,j[:, p + d_h/2]    = a_j − u_j A u, b_j − u_j B u     (no rotation)
//! W^C_K,j at the pairs not kept           = W_K,j                            (no rotation)
//! W^Q                                     = c W_Q,   c = sqrt((d_h + d_h^R) / d_h)
//! then q_jᵀ R k_j = u_j q_jᵀ R (A u) + q_jᵀ R k^C_j  ≈  q^R_j·k^R + q_jᵀ k^C_j
//! ```
//!
//! `c` gives back the source's softmax scale `1/sqrt(d_h)` under MLA's `1/sqrt(d_h + d_h^R)`.
//! The only approximation is dropping the rotation of `k^C`: exact where each kept pair's keys
//! are one direction across heads (`[A; B]` of rank one) and the other pairs' keys are zero.
//! Then `W^C_K` joins `W_V` in the SVD as an MHA layer's `W_K` would.

use burn::linalg::svd;
use burn::tensor::{Tensor, TensorData};

/// QR sweeps the SVD may take per singular value.
const SVD_SWEEPS: usize = 200;

/// A layer's queries and keys with the rotary part moved into one shared key.
pub struct RotarySplit {
    /// `c W_Q`: `[d, h·d_h]`
    pub w_q: Tensor<2>,
    /// `W^QR`: `[d, h·d_h^R]`
    pub w_qr: Tensor<2>,
    /// `W^KR`: `[d, d_h^R]`
    pub w_kr: Tensor<2>,
    /// `W^C_K`, the keys left unrotated: `[d, h·d_h]`
    pub w_kc: Tensor<2>,
    /// The share of `‖W_K‖²_F` the shared rotary key keeps.
    pub kept: f64,
}

/// Splits an MHA+RoPE layer's `w_q` and `w_k` (`[d, heads·d_h]`, applied as `x W`) for an MLA
/// layer of rotary width `rope_dim` (even, dividing `d_h`: [`super::check`] refuses others).
pub fn split(w_q: Tensor<2>, w_k: Tensor<2>, heads: usize, rope_dim: usize) -> RotarySplit {
    let [d, width] = w_k.dims();
    let dh = width / heads;
    let (half_h, half_r, m) = (dh / 2, rope_dim / 2, dh / rope_dim);
    let c = ((dh + rope_dim) as f64 / dh as f64).sqrt();
    let device = w_k.device();
    let column = |w: &Tensor<2>, at: usize| w.clone().narrow(1, at, 1); // [d, 1]
    let mut w_kc = w_k.clone();
    let mut w_qr = Tensor::<2>::zeros([d, heads * rope_dim], &device);
    let mut w_kr = Tensor::<2>::zeros([d, rope_dim], &device);
    let mut rotated = 0.0;
    for i in 0..half_r {
        let p = i * m;
        let across = |offset: usize| {
            Tensor::cat(
                (0..heads)
                    .map(|j| column(&w_k, j * dh + p + offset))
                    .collect(),
                1,
            ) // [d, heads]
        };
        let (a, b) = (across(0), across(half_h));
        let (_, s, vt) = svd::<2, 1>(Tensor::cat(vec![a.clone(), b.clone()], 0), SVD_SWEEPS);
        let u = vt.narrow(0, 0, 1); // [1, heads]
        rotated += (values(s.narrow(0, 0, 1))[0] as f64).powi(2);
        let (ka, kb) = (
            a.clone().matmul(u.clone().transpose()),
            b.clone().matmul(u.clone().transpose()),
        ); // [d, 1]
        let (rest_a, rest_b) = (
            a - ka.clone().matmul(u.clone()),
            b - kb.clone().matmul(u.clone()),
        ); // [d, heads]
        w_kr = w_kr
            .slice_assign([0..d, i..i + 1], ka)
            .slice_assign([0..d, i + half_r..i + half_r + 1], kb);
        let u = values(u);
        for (j, &u_j) in u.iter().enumerate() {
            let (col, q_col) = (j * dh + p, j * rope_dim + i);
            let scaled = |at: usize| column(&w_q, at).mul_scalar(c * u_j as f64);
            w_kc = w_kc
                .slice_assign([0..d, col..col + 1], rest_a.clone().narrow(1, j, 1))
                .slice_assign(
                    [0..d, col + half_h..col + half_h + 1],
                    rest_b.clone().narrow(1, j, 1),
                );
            w_qr = w_qr
                .slice_assign([0..d, q_col..q_col + 1], scaled(col))
                .slice_assign(
                    [0..d, q_col + half_r..q_col + half_r + 1],
                    scaled(col + half_h),
                );
        }
    }
    let total = values(w_k.powi_scalar(2).sum())[0] as f64;
    RotarySplit {
        w_q: w_q.mul_scalar(c),
        w_qr,
        w_kr,
        w_kc,
        kept: if total > 0.0 { rotated / total } else { 1.0 },
    }
}

/// The values of `t`, as `f32`s.
pub(super) fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    let data: TensorData = t.into_data().convert::<f32>();
    data.try_to_vec::<f32>().expect("f32 values")
}
