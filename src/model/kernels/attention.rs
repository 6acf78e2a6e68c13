//! Causal attention for training on flex, forward and backward, without a T×T tensor per head.
//!
//! For query head `i` (of key/value head `i / g`, `g = heads / kv_heads`), rows `a` at absolute
//! positions `start + a`, keys `j ≤ start + a` (the queries arrive scaled):
//!
//! ```text
//! S = Q Kᵀ,   P_aj = exp(S_aj − L_a),   L_a = log Σ_j exp S_aj,   O = P V
//! ```
//!
//! and, given `dO` (FlashAttention-2, Dao 2023, Algorithm 2, with whole rows of keys):
//!
//! ```text
//! D_a = dO_a · O_a,   dV = Pᵀ dO,   dP = dO Vᵀ,   dS = P ⊙ (dP − D),   dQ = dS K,   dK = dSᵀ Q
//! ```
//!
//! Work is split over (sequence, key/value head) on rayon's threads; each takes its group's query
//! heads in blocks of [`BLOCK`] rows, against the keys the block can see. A block's scores live in
//! one `BLOCK × keys` scratch row set per task, reused: the forward keeps only `O` and `L`
//! (`[heads, seq]`), and the backward recomputes `P` from them. The five products of a block run
//! in the `gemm` crate (the one flex's matmul uses) on strided views, so nothing is transposed or
//! copied. `dK` and `dV` of a key/value head are summed over its query heads inside its own task:
//! no two threads write one row.
//!
//! The composed reference ([`super::super::attention::common::causal_attention_reference`]) is
//! what every other backend runs, and the tests hold the two together, values and gradients.

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

use super::simd::{self, Simd};

/// Query rows taken together against their visible keys.
pub const BLOCK: usize = 64;

/// The sizes of one attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    pub batch: usize,
    pub heads: usize,
    pub kv_heads: usize,
    /// Query rows per sequence.
    pub seq: usize,
    /// Keys per sequence: `start + seq`.
    pub keys: usize,
    pub d_k: usize,
    pub d_v: usize,
    /// Absolute position of the first query row.
    pub start: usize,
}

impl Dims {
    fn group(&self) -> usize {
        self.heads / self.kv_heads
    }

    /// Keys query row `a` sees: `0..=start + a`.
    fn visible(&self, a: usize) -> usize {
        self.start + a + 1
    }

    /// Shapes agree: a caller's bug, so a panic with the sizes.
    pub fn check(&self, q: usize, k: usize, v: usize) {
        assert!(
            self.kv_heads > 0 && self.heads.is_multiple_of(self.kv_heads),
            "attention kernel: {} heads over {} key/value heads",
            self.heads,
            self.kv_heads
        );
        assert_eq!(self.keys, self.start + self.seq, "attention kernel: keys");
        assert_eq!(
            q,
            self.batch * self.heads * self.seq * self.d_k,
            "attention kernel: q"
        );
        assert_eq!(
            k,
            self.batch * self.kv_heads * self.keys * self.d_k,
            "attention kernel: k"
        );
        assert_eq!(
            v,
            self.batch * self.kv_heads * self.keys * self.d_v,
            "attention kernel: v"
        );
    }
}

/// `C = A·B` (or `C += A·B` with `add`), `m × n` from `m × k` and `k × n`, each matrix given by
/// its pointer and its (row, column) strides in elements.
///
/// # Safety
/// Every pointer covers its matrix under its strides, and `c` overlaps neither input.
#[allow(clippy::too_many_arguments)]
unsafe fn product(
    (m, n, k): (usize, usize, usize),
    c: (*mut f32, usize, usize),
    add: bool,
    a: (*const f32, usize, usize),
    b: (*const f32, usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the caller's contract; gemm reads and writes only within the strides given.
    unsafe {
        gemm(
            m,
            n,
            k,
            c.0,
            c.2 as isize,
            c.1 as isize,
            add,
            a.0,
            a.2 as isize,
            a.1 as isize,
            b.0,
            b.2 as isize,
            b.1 as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        )
    }
}

/// One (sequence, key/value head)'s inputs, row-major.
struct Head<'a> {
    /// The group's queries, `[g, seq, d_k]`.
    q: &'a [f32],
    /// `[keys, d_k]`
    k: &'a [f32],
    /// `[keys, d_v]`
    v: &'a [f32],
}

fn head<'a>(dims: &Dims, q: &'a [f32], k: &'a [f32], v: &'a [f32], task: usize) -> Head<'a> {
    let (g, t, s) = (dims.group(), dims.seq, dims.keys);
    Head {
        q: &q[task * g * t * dims.d_k..][..g * t * dims.d_k],
        k: &k[task * s * dims.d_k..][..s * dims.d_k],
        v: &v[task * s * dims.d_v..][..s * dims.d_v],
    }
}

/// `S = Q_blk Kᵀ` for query rows `a0..a0+rows` of the group's head `j`, into `scores`
/// (`rows × keys`, row stride `dims.keys`), over the first `kend` keys.
fn scores(
    dims: &Dims,
    h: &Head,
    j: usize,
    a0: usize,
    rows: usize,
    kend: usize,
    scores: &mut [f32],
) {
    let (t, dk, s) = (dims.seq, dims.d_k, dims.keys);
    let q = &h.q[(j * t + a0) * dk..][..rows * dk];
    // SAFETY: q is rows × dk, K's first kend rows are kend × dk (read as its transpose), and
    // scores holds rows × s ≥ rows × kend.
    unsafe {
        product(
            (rows, kend, dk),
            (scores.as_mut_ptr(), s, 1),
            false,
            (q.as_ptr(), dk, 1),
            (h.k.as_ptr(), 1, dk),
        )
    }
}

/// Output `[batch, heads, seq, d_v]` and log-sum-exp `[batch, heads, seq]` of the inputs
/// (`q`: `[batch, heads, seq, d_k]`, `k`: `[batch, kv_heads, keys, d_k]`, `v`: `[batch,
/// kv_heads, keys, d_v]`, row-major).
pub fn forward(dims: Dims, q: &[f32], k: &[f32], v: &[f32], out: &mut [f32], lse: &mut [f32]) {
    dims.check(q.len(), k.len(), v.len());
    let (g, t, s, dv) = (dims.group(), dims.seq, dims.keys, dims.d_v);
    let simd = Simd::detect();
    out.par_chunks_mut(g * t * dv)
        .zip(lse.par_chunks_mut(g * t))
        .enumerate()
        .for_each(|(task, (out, lse))| {
            let h = head(&dims, q, k, v, task);
            let mut p = vec![0.0f32; BLOCK.min(t) * s];
            for j in 0..g {
                for a0 in (0..t).step_by(BLOCK) {
                    let rows = BLOCK.min(t - a0);
                    let kend = dims.visible(a0 + rows - 1);
                    scores(&dims, &h, j, a0, rows, kend, &mut p);
                    for r in 0..rows {
                        let row = &mut p[r * s..r * s + kend];
                        let n = dims.visible(a0 + r);
                        lse[j * t + a0 + r] = simd::softmax_row(simd, row, n);
                    }
                    let o = &mut out[(j * t + a0) * dv..][..rows * dv];
                    // SAFETY: P is rows × kend (stride s), V's first kend rows kend × dv, and o
                    // rows × dv, apart from both.
                    unsafe {
                        product(
                            (rows, dv, kend),
                            (o.as_mut_ptr(), dv, 1),
                            false,
                            (p.as_ptr(), s, 1),
                            (h.v.as_ptr(), dv, 1),
                        )
                    }
                }
            }
        });
}

/// The forward's results a backward pass reads.
pub struct Saved<'a> {
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub out: &'a [f32],
    pub lse: &'a [f32],
}

/// Where the backward pass writes `dQ`, `dK` and `dV` (shaped as `q`, `k`, `v`); `dk` and `dv`
/// arrive zeroed.
pub struct Grads<'a> {
    pub dq: &'a mut [f32],
    pub dk: &'a mut [f32],
    pub dv: &'a mut [f32],
}

/// `dQ`, `dK`, `dV` from the output's gradient `d_out` (`[batch, heads, seq, d_v]`).
pub fn backward(dims: Dims, saved: Saved, d_out: &[f32], grads: Grads) {
    dims.check(saved.q.len(), saved.k.len(), saved.v.len());
    let (g, t, s, dk, dv) = (dims.group(), dims.seq, dims.keys, dims.d_k, dims.d_v);
    let simd = Simd::detect();
    grads
        .dq
        .par_chunks_mut(g * t * dk)
        .zip(grads.dk.par_chunks_mut(s * dk))
        .zip(grads.dv.par_chunks_mut(s * dv))
        .enumerate()
        .for_each(|(task, ((dq, dk_head), dv_head))| {
            let h = head(&dims, saved.q, saved.k, saved.v, task);
            let o = &saved.out[task * g * t * dv..][..g * t * dv];
            let d_o = &d_out[task * g * t * dv..][..g * t * dv];
            let lse = &saved.lse[task * g * t..][..g * t];
            let rows_max = BLOCK.min(t);
            let (mut p, mut ds) = (vec![0.0f32; rows_max * s], vec![0.0f32; rows_max * s]);
            for j in 0..g {
                for a0 in (0..t).step_by(BLOCK) {
                    let rows = BLOCK.min(t - a0);
                    let kend = dims.visible(a0 + rows - 1);
                    let first = j * t + a0;
                    let d_o_blk = &d_o[first * dv..][..rows * dv];
                    let q_blk = &h.q[first * dk..][..rows * dk];
                    scores(&dims, &h, j, a0, rows, kend, &mut p);
                    // SAFETY (the products below): P and dS are rows × kend with stride s, read
                    // transposed where named; dO rows × dv; V, K kend rows; dV, dK kend rows of
                    // this task's own head; dQ rows × dk of this task's own rows.
                    unsafe {
                        // dP = dO Vᵀ
                        product(
                            (rows, kend, dv),
                            (ds.as_mut_ptr(), s, 1),
                            false,
                            (d_o_blk.as_ptr(), dv, 1),
                            (h.v.as_ptr(), 1, dv),
                        );
                    }
                    for r in 0..rows {
                        let n = dims.visible(a0 + r);
                        let d =
                            simd::dot(simd, &d_o_blk[r * dv..][..dv], &o[(first + r) * dv..][..dv]);
                        let (p_row, ds_row) =
                            (&mut p[r * s..r * s + kend], &mut ds[r * s..r * s + kend]);
                        simd::softmax_grad_row(simd, p_row, ds_row, n, lse[first + r], d);
                    }
                    unsafe {
                        // dV += Pᵀ dO
                        product(
                            (kend, dv, rows),
                            (dv_head.as_mut_ptr(), dv, 1),
                            true,
                            (p.as_ptr(), 1, s),
                            (d_o_blk.as_ptr(), dv, 1),
                        );
                        // dQ = dS K
                        product(
                            (rows, dk, kend),
                            (dq[first * dk..].as_mut_ptr(), dk, 1),
                            false,
                            (ds.as_ptr(), s, 1),
                            (h.k.as_ptr(), dk, 1),
                        );
                        // dK += dSᵀ Q
                        product(
                            (kend, dk, rows),
                            (dk_head.as_mut_ptr(), dk, 1),
                            true,
                            (ds.as_ptr(), 1, s),
                            (q_blk.as_ptr(), dk, 1),
                        );
                    }
                }
            }
        });
}
