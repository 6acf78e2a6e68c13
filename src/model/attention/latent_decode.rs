//! Absorbed decode over a shared latent in one pass, on the CPU backend (flex).
//!
//! One decode step of absorbed MLA attends every head of a sequence over the same cached latent:
//!
//! ```text
//! o_i = softmax_j(q_i·c_K,j + q^R_i·k^R_j) · c_V        for each head i, over keys j
//! ```
//!
//! (GLA: the same for each latent head and its query heads.) As products, the reference
//! (`latent::attend_latent_reference`), that is two batched matmuls with as
//! many rows as heads (6 at paper scale) against thousands of keys, the rotary scores and a
//! softmax: four passes, in matrix kernels built for large tiles (the `gemm` crate's 16-row AVX2
//! tile is 37.5% used by 6 rows). At batch 16 / cache 2048 they take 7–8 ms a layer on flex
//! (`docs/decode/`).
//!
//! Here each cached row is read once per step for all heads: the scores of a block of keys,
//! an online softmax (the running maximum and sum per head, as in FlashAttention), then the
//! block's weighted latent rows added into each head's accumulator, which stays in L1. Sequences
//! (and, at small batches, groups of heads) run on rayon's threads. The result equals the
//! reference up to rounding; the tests hold them together.
//!
//! This is a kernel burn-flex could own (a decode attention for few query rows); until it does,
//! it lives here, reached through burn's documented primitive API (`Tensor::try_into_primitive`,
//! `Tensor::from_primitive`). Any other backend, dtype or an autodiff tensor gets `None` and
//! takes the reference.

use burn::backend::flex::{Flex, FlexTensor};
use burn::tensor::{DType, Tensor};
use rayon::prelude::*;

/// f32 lanes of one accumulator: an AVX2 register.
const LANES: usize = 8;
/// Keys per block: 32 rows of a 192-wide latent are 24 KiB, within L1 for the weighted sum.
const BLOCK: usize = 32;
/// Keys ahead of the one being read whose rows are prefetched.
const PREFETCH: usize = 8;
/// Heads taken together from one read of a key; more are split into groups.
const MAX_ROWS: usize = 8;

/// `softmax(q_lat·c_kᵀ + q_r·k_rᵀ)·c_v` for one query token per sequence, every key visible:
/// every (sequence, latent) pair attends as one sequence, the latent's query heads as the rows,
/// over its own latent, with the rotary key all latents share.
///
/// # Shapes
/// - q_lat: `[batch, groups, heads per group, rank]`, q_r: `[batch, groups, heads per group,
///   rope_dim]` (scaled queries)
/// - c_k, c_v: `[batch, groups, keys, rank]`, k_r: `[batch, keys, rope_dim]` (views of the
///   cache)
/// - output: `[batch, groups, heads per group, rank]`
///
/// `None` (the caller takes the reference) unless every tensor is a flex f32 tensor without
/// autodiff, no size is zero, and the rotary query and key come together.
pub fn attend(
    q_lat: &Tensor<4>,
    q_r: Option<&Tensor<4>>,
    c_k: &Tensor<4>,
    c_v: &Tensor<4>,
    k_r: Option<&Tensor<3>>,
) -> Option<Tensor<4>> {
    attend_built(q_lat, q_r, c_k, c_v, k_r, Avx2Fma::detect())
}

/// A flex f32 tensor whose rows have unit stride (copied into one if they do not), or `None`
/// for any other tensor.
fn flex_rows<const D: usize>(t: &Tensor<D>) -> Option<FlexTensor> {
    let t = t.clone().try_into_primitive::<Flex>().ok()?;
    let strides_ok = t.layout().strides().iter().all(|&s| s >= 0);
    (t.dtype() == DType::F32).then(|| {
        if strides_ok && t.layout().strides()[D - 1] == 1 {
            t
        } else {
            t.to_contiguous()
        }
    })
}

/// [`attend`] with the AVX2 + FMA build, given the proof that the CPU has them, or the portable
/// one (`None`).
fn attend_built(
    q_lat: &Tensor<4>,
    q_r: Option<&Tensor<4>>,
    c_k: &Tensor<4>,
    c_v: &Tensor<4>,
    k_r: Option<&Tensor<3>>,
    simd: Option<Avx2Fma>,
) -> Option<Tensor<4>> {
    let empty = [q_lat, c_k].iter().any(|t| t.dims().contains(&0));
    if empty || q_r.is_some() != k_r.is_some() {
        return None;
    }
    let q_lat = flex_rows(q_lat)?;
    let c_k = flex_rows(c_k)?;
    let c_v = flex_rows(c_v)?;
    let (q_r, k_r) = match (q_r, k_r) {
        (Some(q), Some(k)) => (Some(flex_rows(q)?), Some(flex_rows(k)?)),
        _ => (None, None),
    };
    let groups = q_lat.layout().shape()[1];
    let problem = Problem {
        q_lat: Rows::of(&q_lat),
        q_r: q_r.as_ref().map(Rows::of),
        c_k: Rows::of(&c_k),
        c_v: Rows::of(&c_v),
        k_r: k_r.as_ref().map(|k| Rows::shared(k, groups)),
    };
    problem.check();
    let mut out = FlexTensor::empty(q_lat.layout().shape().clone(), DType::F32);
    problem.run(out.storage_mut::<f32>(), simd);
    Some(Tensor::from_primitive::<Flex>(out))
}

/// Proof that the CPU runs AVX2 and FMA instructions: only [`Avx2Fma::detect`] makes one.
#[derive(Debug, Clone, Copy)]
struct Avx2Fma(());

impl Avx2Fma {
    fn detect() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Some(Avx2Fma(()));
        }
        None
    }
}

/// Rows of a `[batch, groups, n, width]` flex tensor with unit inner stride, read in place; a
/// sequence is a (batch, group) pair. A `[batch, n, width]` tensor shared by every group reads
/// as one whose groups are all the same rows ([`Rows::shared`]).
struct Rows<'a> {
    data: &'a [f32],
    start: usize,
    /// Groups per batch entry (1 for three dimensions).
    groups: usize,
    batch_stride: usize,
    group_stride: usize,
    row_stride: usize,
    /// `[sequences, n, width]`
    shape: [usize; 3],
}

impl<'a> Rows<'a> {
    /// The rows of a `[batch, groups, n, width]` tensor.
    fn of(t: &'a FlexTensor) -> Self {
        let layout = t.layout();
        let strides = layout.strides();
        Self::with_groups(t, layout.shape()[1], strides[1] as usize)
    }

    /// The rows of a `[batch, n, width]` tensor, read by each of `groups` groups.
    fn shared(t: &'a FlexTensor, groups: usize) -> Self {
        Self::with_groups(t, groups, 0)
    }

    fn with_groups(t: &'a FlexTensor, groups: usize, group_stride: usize) -> Self {
        let layout = t.layout();
        let (dims, strides) = (layout.shape(), layout.strides());
        let d = dims.num_dims();
        Rows {
            data: t.storage::<f32>(),
            start: layout.start_offset(),
            groups,
            batch_stride: strides[0] as usize,
            group_stride,
            row_stride: strides[d - 2] as usize,
            shape: [dims[0] * groups, dims[d - 2], dims[d - 1]],
        }
    }

    /// The rows of sequence `seq`.
    fn seq(&self, seq: usize) -> SeqRows<'a> {
        let (b, g) = (seq / self.groups, seq % self.groups);
        SeqRows {
            data: self.data,
            start: self.start + b * self.batch_stride + g * self.group_stride,
            row_stride: self.row_stride,
            width: self.shape[2],
        }
    }
}

/// The rows of one sequence.
#[derive(Clone, Copy)]
struct SeqRows<'a> {
    data: &'a [f32],
    start: usize,
    row_stride: usize,
    width: usize,
}

impl<'a> SeqRows<'a> {
    /// Whether both are the same rows of the same buffer.
    fn same(&self, other: &SeqRows) -> bool {
        std::ptr::eq(self.data, other.data)
            && (self.start, self.row_stride, self.width)
                == (other.start, other.row_stride, other.width)
    }

    #[inline(always)]
    fn row(&self, i: usize) -> &'a [f32] {
        let at = self.start + i * self.row_stride;
        &self.data[at..at + self.width]
    }
}

/// One decode step's inputs, read in place: the queries of every head and the cached rows.
struct Problem<'a> {
    q_lat: Rows<'a>,
    q_r: Option<Rows<'a>>,
    c_k: Rows<'a>,
    c_v: Rows<'a>,
    k_r: Option<Rows<'a>>,
}

impl Problem<'_> {
    /// Shapes agree: a caller's bug, not the user's input, so a panic.
    fn check(&self) {
        let [batch, h, r] = self.q_lat.shape;
        let s = self.keys();
        assert_eq!(self.c_k.shape, [batch, s, r], "latent_decode: c_k");
        assert_eq!(self.c_v.shape, [batch, s, r], "latent_decode: c_v");
        if let (Some(q_r), Some(k_r)) = (&self.q_r, &self.k_r) {
            let dr = q_r.shape[2];
            assert_eq!(q_r.shape, [batch, h, dr], "latent_decode: q_r");
            assert_eq!(k_r.shape, [batch, s, dr], "latent_decode: k_r");
        }
    }

    /// Splits the output into units of (sequence, group of heads) and runs them on rayon's
    /// threads: one group per sequence when there are sequences enough for the threads.
    fn run(&self, out: &mut [f32], simd: Option<Avx2Fma>) {
        let [batch, h, r] = self.q_lat.shape;
        let threads = rayon::current_num_threads();
        let groups = h.div_ceil(MAX_ROWS).max(threads.div_ceil(batch).min(h));
        let rows = h.div_ceil(groups);
        let units: Vec<(usize, usize, &mut [f32])> = out
            .chunks_mut(h * r)
            .enumerate()
            .flat_map(|(b, seq)| {
                seq.chunks_mut(rows * r)
                    .enumerate()
                    .map(move |(g, acc)| (b, g * rows, acc))
            })
            .collect();
        units.into_par_iter().for_each(|(b, first, acc)| {
            let n = acc.len() / r;
            match n {
                1 => self.unit::<1>(b, first, acc, simd),
                2 => self.unit::<2>(b, first, acc, simd),
                3 => self.unit::<3>(b, first, acc, simd),
                4 => self.unit::<4>(b, first, acc, simd),
                5 => self.unit::<5>(b, first, acc, simd),
                6 => self.unit::<6>(b, first, acc, simd),
                7 => self.unit::<7>(b, first, acc, simd),
                8 => self.unit::<8>(b, first, acc, simd),
                _ => unreachable!("groups hold at most {MAX_ROWS} heads"),
            }
        });
    }

    /// Cached positions every query sees.
    fn keys(&self) -> usize {
        self.c_k.shape[1]
    }

    /// Heads `first..first + N` of sequence `b` into `acc` (`[N, rank]`), compiled for AVX2 and
    /// FMA when the CPU has them.
    fn unit<const N: usize>(&self, b: usize, first: usize, acc: &mut [f32], simd: Option<Avx2Fma>) {
        match simd {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: an `Avx2Fma` exists only where the CPU reported AVX2 and FMA.
            Some(proof) => unsafe { self.unit_avx2::<N>(b, first, acc, proof) },
            _ => self.unit_body::<N, false>(b, first, acc),
        }
    }

    /// [`Problem::unit_body`] compiled with AVX2 and FMA enabled, and its `dots` in AVX2
    /// registers.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn unit_avx2<const N: usize>(&self, b: usize, first: usize, acc: &mut [f32], _: Avx2Fma) {
        self.unit_body::<N, true>(b, first, acc);
    }

    /// The step for N heads: per block of keys, their scores, the online softmax (running
    /// maximum and sum per head) and the weighted sum of their value rows. `AVX2` is true only
    /// when called from [`Problem::unit_avx2`]: it selects FMA and the intrinsics of
    /// [`dots_avx2`].
    #[inline(always)]
    fn unit_body<const N: usize, const AVX2: bool>(&self, b: usize, first: usize, acc: &mut [f32]) {
        let r = self.q_lat.shape[2];
        let q_lat = self.q_lat.seq(b);
        let q: [&[f32]; N] = std::array::from_fn(|i| q_lat.row(first + i));
        let q_r: Option<[&[f32]; N]> = self.q_r.as_ref().map(|q_r| {
            let q_r = q_r.seq(b);
            std::array::from_fn(|i| q_r.row(first + i))
        });
        let (c_k, c_v) = (self.c_k.seq(b), self.c_v.seq(b));
        // The joint latent (and GLA's) is its own value: its rows are prefetched once.
        let joint = c_k.same(&c_v);
        let k_r = self.k_r.as_ref().map(|k_r| k_r.seq(b));
        let keys = self.keys();
        let mut max = [f32::NEG_INFINITY; N];
        let mut sum = [0f32; N];
        // Per head, the scores of the block's keys, then their softmax weights.
        let mut w = [[0f32; BLOCK]; N];
        acc.fill(0.0);
        for j0 in (0..keys).step_by(BLOCK) {
            let n = BLOCK.min(keys - j0);
            for (jj, j) in (j0..j0 + n).enumerate() {
                if j + PREFETCH < keys {
                    prefetch(c_k.row(j + PREFETCH));
                    if !joint {
                        prefetch(c_v.row(j + PREFETCH));
                    }
                    if let Some(k_r) = &k_r {
                        prefetch(k_r.row(j + PREFETCH));
                    }
                }
                let s = dots::<N, AVX2>(&q, c_k.row(j));
                let s_r = match (&q_r, &k_r) {
                    (Some(q_r), Some(k_r)) => dots::<N, AVX2>(q_r, k_r.row(j)),
                    _ => [0.0; N],
                };
                for i in 0..N {
                    w[i][jj] = s[i] + s_r[i];
                }
            }
            for i in 0..N {
                let block_max = w[i][..n].iter().copied().fold(f32::NEG_INFINITY, f32::max);
                if block_max == f32::NEG_INFINITY {
                    // No key of the block counts (none does today: nothing is masked here).
                    w[i][..n].fill(0.0);
                    continue;
                }
                if block_max > max[i] {
                    // Earlier keys were weighed against a smaller maximum: rescale them.
                    let correction = (max[i] - block_max).exp();
                    sum[i] *= correction;
                    for a in &mut acc[i * r..(i + 1) * r] {
                        *a *= correction;
                    }
                    max[i] = block_max;
                }
                for x in &mut w[i][..n] {
                    *x = (*x - max[i]).exp();
                    sum[i] += *x;
                }
            }
            let v: [&[f32]; BLOCK] =
                std::array::from_fn(|jj| if jj < n { c_v.row(j0 + jj) } else { &[] });
            weighted_sum::<N, AVX2>(acc, &w, &v[..n], r);
        }
        for i in 0..N {
            let inv = 1.0 / sum[i];
            for a in &mut acc[i * r..(i + 1) * r] {
                *a *= inv;
            }
        }
    }
}

/// `a * b + c`, as one FMA instruction in the AVX2 + FMA build (elsewhere `mul_add` would be a
/// slow library call).
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// `acc += w * b`, lane by lane.
#[inline(always)]
fn axpy8<const FMA: bool>(acc: &mut [f32; LANES], w: f32, b: &[f32; LANES]) {
    for l in 0..LANES {
        acc[l] = madd::<FMA>(w, b[l], acc[l]);
    }
}

/// `q_i·k` for the N query rows, reading `k` once: the N dot products advance together, as N
/// independent chains of FMAs. `AVX2` only from [`Problem::unit_avx2`].
#[inline(always)]
fn dots<const N: usize, const AVX2: bool>(q: &[&[f32]; N], k: &[f32]) -> [f32; N] {
    for q in q {
        assert_eq!(q.len(), k.len(), "latent_decode: query and key widths");
    }
    #[cfg(target_arch = "x86_64")]
    if AVX2 {
        // SAFETY: AVX2 is true only inside `unit_avx2`, which takes the proof that the CPU runs
        // AVX2 and FMA; the widths were checked above.
        return unsafe { dots_avx2::<N>(q, k) };
    }
    let (k_chunks, k_tail) = k.as_chunks::<LANES>();
    let mut lanes = [[0f32; LANES]; N];
    for (c, kc) in k_chunks.iter().enumerate() {
        for i in 0..N {
            let qc = &q[i].as_chunks::<LANES>().0[c];
            for l in 0..LANES {
                lanes[i][l] = madd::<AVX2>(qc[l], kc[l], lanes[i][l]);
            }
        }
    }
    let tail_at = k_chunks.len() * LANES;
    std::array::from_fn(|i| {
        let tail: f32 = q[i][tail_at..].iter().zip(k_tail).map(|(a, b)| a * b).sum();
        lanes[i].iter().sum::<f32>() + tail
    })
}

/// [`dots`] in AVX2 registers. Left to itself the compiler vectorises the portable loop across
/// heads, with shuffles and spills.
///
/// # Safety
/// The CPU has AVX2 and FMA, and every `q[i]` is as long as `k`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn dots_avx2<const N: usize>(q: &[&[f32]; N], k: &[f32]) -> [f32; N] {
    use std::arch::x86_64::*;
    let chunks = k.len() / LANES;
    let mut acc = [_mm256_setzero_ps(); N];
    for c in 0..chunks {
        // SAFETY: c * LANES + LANES <= k.len() == q[i].len().
        let kc = unsafe { _mm256_loadu_ps(k.as_ptr().add(c * LANES)) };
        for i in 0..N {
            // SAFETY: as above.
            let qc = unsafe { _mm256_loadu_ps(q[i].as_ptr().add(c * LANES)) };
            acc[i] = _mm256_fmadd_ps(qc, kc, acc[i]);
        }
    }
    let tail_at = chunks * LANES;
    std::array::from_fn(|i| {
        let halves = _mm_add_ps(
            _mm256_castps256_ps128(acc[i]),
            _mm256_extractf128_ps(acc[i], 1),
        );
        let pairs = _mm_add_ps(halves, _mm_movehl_ps(halves, halves));
        let sum = _mm_add_ss(pairs, _mm_shuffle_ps(pairs, pairs, 1));
        let tail: f32 = q[i][tail_at..]
            .iter()
            .zip(&k[tail_at..])
            .map(|(a, b)| a * b)
            .sum();
        _mm_cvtss_f32(sum) + tail
    })
}

/// `acc_i += Σ_j w_ij v_j` for the N heads over the block's rows `v` (prefetched, in L1), one
/// lane-wide column of the latent at a time so that the N accumulators stay in registers.
#[inline(always)]
fn weighted_sum<const N: usize, const FMA: bool>(
    acc: &mut [f32],
    w: &[[f32; BLOCK]; N],
    v: &[&[f32]],
    r: usize,
) {
    let full = r / LANES * LANES;
    for c in (0..full).step_by(LANES) {
        let mut reg = [[0f32; LANES]; N];
        for (i, reg) in reg.iter_mut().enumerate() {
            reg.copy_from_slice(&acc[i * r + c..i * r + c + LANES]);
        }
        for (jj, row) in v.iter().enumerate() {
            let vc: &[f32; LANES] = row[c..c + LANES].try_into().expect("a full chunk");
            for i in 0..N {
                axpy8::<FMA>(&mut reg[i], w[i][jj], vc);
            }
        }
        for (i, reg) in reg.iter().enumerate() {
            acc[i * r + c..i * r + c + LANES].copy_from_slice(reg);
        }
    }
    for c in full..r {
        for (jj, row) in v.iter().enumerate() {
            for i in 0..N {
                acc[i * r + c] += w[i][jj] * row[c];
            }
        }
    }
}

/// Asks for the cache lines of `row` ahead of their use: the rows are read in order, but two or
/// three streams at once (`c_K`, `c_V`, `k^R`) outrun the hardware prefetcher.
#[inline(always)]
fn prefetch(row: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in row.chunks(16) {
        // SAFETY: a prefetch is a hint; it reads nothing and faults on nothing.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                line.as_ptr().cast(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

#[cfg(test)]
mod tests;
