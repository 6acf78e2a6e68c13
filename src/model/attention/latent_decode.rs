//! Absorbed decode over a shared latent in one pass, on the CPU backend (flex).
//!
//! One decode step of absorbed MLA attends every head of a sequence over the same cached latent:
//!
//! ```text
//! o_i = softmax_j(q_i·c_K,j + q^R_i·k^R_j) · c_V        for each head i, over keys j
//! ```
//!
//! As products (the reference, [`super::mla`]'s `attend_latent`) that is two batched matmuls with
//! as many rows as heads (6 at paper scale) against thousands of keys. burn-flex hands each to
//! the `gemm` crate, whose 16-row AVX2 tile is then 37.5% used and whose packing copies the
//! latent; LibTorch's BLAS does no better on these shapes. At batch 16 / cache 2048 they run at
//! 10–20 GFLOP/s and read the cache at 3 GB/s, a fifth of this machine's bandwidth
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
use burn::tensor::{DType, Shape, Tensor};
use rayon::prelude::*;

/// f32 lanes of one accumulator: an AVX2 register.
const LANES: usize = 8;
/// Keys per block: 32 rows of a 192-wide latent are 24 KiB, within L1 for the weighted sum.
const BLOCK: usize = 32;
/// Keys ahead of the one being read whose rows are prefetched.
const PREFETCH: usize = 8;
/// Heads taken together from one read of a key; more are split into groups.
const MAX_ROWS: usize = 8;

/// `softmax(q_lat·c_kᵀ + q_r·k_rᵀ)·c_v` for one query token per sequence, every key visible.
///
/// # Shapes
/// - q_lat: `[batch, heads, rank]`, q_r: `[batch, heads, rope_dim]` (scaled queries)
/// - c_k, c_v: `[batch, keys, rank]`, k_r: `[batch, keys, rope_dim]` (views of the cache)
/// - output: `[batch, heads, rank]`
///
/// `None` unless every tensor is a flex f32 tensor without autodiff.
pub fn attend(
    q_lat: &Tensor<3>,
    q_r: Option<&Tensor<3>>,
    c_k: &Tensor<3>,
    c_v: &Tensor<3>,
    k_r: Option<&Tensor<3>>,
) -> Option<Tensor<3>> {
    attend_built(q_lat, q_r, c_k, c_v, k_r, fma_available())
}

/// [`attend`] with the AVX2 + FMA build (`fused`, only where the CPU has them) or the portable
/// one.
fn attend_built(
    q_lat: &Tensor<3>,
    q_r: Option<&Tensor<3>>,
    c_k: &Tensor<3>,
    c_v: &Tensor<3>,
    k_r: Option<&Tensor<3>>,
    fused: bool,
) -> Option<Tensor<3>> {
    if q_r.is_some() != k_r.is_some() {
        return None;
    }
    let flex = |t: &Tensor<3>| {
        let t = t.clone().try_into_primitive::<Flex>().ok()?;
        let strides_ok = t.layout().strides().iter().all(|&s| s >= 0);
        (t.dtype() == DType::F32).then(|| {
            if strides_ok && t.layout().strides()[2] == 1 {
                t
            } else {
                t.to_contiguous()
            }
        })
    };
    let q_lat = flex(q_lat)?;
    let c_k = flex(c_k)?;
    let c_v = flex(c_v)?;
    let (q_r, k_r) = match (q_r, k_r) {
        (Some(q), Some(k)) => (Some(flex(q)?), Some(flex(k)?)),
        _ => (None, None),
    };
    let [b, h, r] = dims(&q_lat);
    let s = dims(&c_k)[1];
    let problem = Problem {
        heads: h,
        keys: s,
        q_lat: Rows::of(&q_lat),
        q_r: q_r.as_ref().map(Rows::of),
        c_k: Rows::of(&c_k),
        c_v: Rows::of(&c_v),
        k_r: k_r.as_ref().map(Rows::of),
    };
    problem.check(b);
    let mut out = FlexTensor::empty(Shape::from(vec![b, h, r]), DType::F32);
    problem.run(out.storage_mut::<f32>(), b, fused);
    Some(Tensor::from_primitive::<Flex>(out))
}

fn dims(t: &FlexTensor) -> [usize; 3] {
    let shape = t.layout().shape();
    [shape[0], shape[1], shape[2]]
}

/// Rows of a `[batch, n, width]` tensor with unit inner stride, read in place.
struct Rows<'a> {
    data: &'a [f32],
    start: usize,
    batch_stride: usize,
    row_stride: usize,
    shape: [usize; 3],
}

impl<'a> Rows<'a> {
    fn of(t: &'a FlexTensor) -> Self {
        let layout = t.layout();
        let strides = layout.strides();
        Rows {
            data: t.storage::<f32>(),
            start: layout.start_offset(),
            batch_stride: strides[0] as usize,
            row_stride: strides[1] as usize,
            shape: dims(t),
        }
    }

    #[inline(always)]
    fn row(&self, batch: usize, i: usize) -> &'a [f32] {
        let at = self.start + batch * self.batch_stride + i * self.row_stride;
        &self.data[at..at + self.shape[2]]
    }
}

struct Problem<'a> {
    heads: usize,
    keys: usize,
    q_lat: Rows<'a>,
    q_r: Option<Rows<'a>>,
    c_k: Rows<'a>,
    c_v: Rows<'a>,
    k_r: Option<Rows<'a>>,
}

impl Problem<'_> {
    /// Shapes agree: a caller's bug, not the user's input, so a panic.
    fn check(&self, batch: usize) {
        let [h, r, s] = [self.heads, self.q_lat.shape[2], self.keys];
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
    fn run(&self, out: &mut [f32], batch: usize, fused: bool) {
        let (h, r) = (self.heads, self.q_lat.shape[2]);
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
                1 => self.unit::<1>(b, first, acc, fused),
                2 => self.unit::<2>(b, first, acc, fused),
                3 => self.unit::<3>(b, first, acc, fused),
                4 => self.unit::<4>(b, first, acc, fused),
                5 => self.unit::<5>(b, first, acc, fused),
                6 => self.unit::<6>(b, first, acc, fused),
                7 => self.unit::<7>(b, first, acc, fused),
                8 => self.unit::<8>(b, first, acc, fused),
                _ => unreachable!("groups hold at most {MAX_ROWS} heads"),
            }
        });
    }

    /// Heads `first..first + N` of sequence `b` into `acc` (`[N, rank]`), compiled for AVX2 and
    /// FMA when the CPU has them.
    fn unit<const N: usize>(&self, b: usize, first: usize, acc: &mut [f32], fused: bool) {
        #[cfg(target_arch = "x86_64")]
        if fused {
            // SAFETY: `fused` is true only when the CPU reports AVX2 and FMA.
            unsafe { self.unit_avx2::<N>(b, first, acc) };
            return;
        }
        let _ = fused;
        self.unit_body::<N, false>(b, first, acc);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn unit_avx2<const N: usize>(&self, b: usize, first: usize, acc: &mut [f32]) {
        self.unit_body::<N, true>(b, first, acc);
    }

    #[inline(always)]
    fn unit_body<const N: usize, const FUSED: bool>(
        &self,
        b: usize,
        first: usize,
        acc: &mut [f32],
    ) {
        let r = self.q_lat.shape[2];
        let q: [&[f32]; N] = std::array::from_fn(|i| self.q_lat.row(b, first + i));
        let q_r: Option<[&[f32]; N]> = self
            .q_r
            .as_ref()
            .map(|q_r| std::array::from_fn(|i| q_r.row(b, first + i)));
        let mut max = [f32::NEG_INFINITY; N];
        let mut sum = [0f32; N];
        // Per head, the scores of the block's keys, then their softmax weights.
        let mut w = [[0f32; BLOCK]; N];
        acc.fill(0.0);
        for j0 in (0..self.keys).step_by(BLOCK) {
            let n = BLOCK.min(self.keys - j0);
            for (jj, j) in (j0..j0 + n).enumerate() {
                if j + PREFETCH < self.keys {
                    prefetch(self.c_k.row(b, j + PREFETCH));
                    prefetch(self.c_v.row(b, j + PREFETCH));
                    if let Some(k_r) = &self.k_r {
                        prefetch(k_r.row(b, j + PREFETCH));
                    }
                }
                let s = dots::<N, FUSED>(&q, self.c_k.row(b, j));
                let s_r = match (&q_r, &self.k_r) {
                    (Some(q_r), Some(k_r)) => dots::<N, FUSED>(q_r, k_r.row(b, j)),
                    _ => [0.0; N],
                };
                for i in 0..N {
                    w[i][jj] = s[i] + s_r[i];
                }
            }
            for i in 0..N {
                let block_max = w[i][..n].iter().copied().fold(f32::NEG_INFINITY, f32::max);
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
            let v: [&[f32]; BLOCK] = std::array::from_fn(|jj| {
                if jj < n {
                    self.c_v.row(b, j0 + jj)
                } else {
                    &[]
                }
            });
            weighted_sum::<N, FUSED>(acc, &w, &v[..n], r);
        }
        for i in 0..N {
            let inv = 1.0 / sum[i];
            for a in &mut acc[i * r..(i + 1) * r] {
                *a *= inv;
            }
        }
    }
}

#[inline(always)]
fn madd<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FUSED { a.mul_add(b, c) } else { a * b + c }
}

/// `acc += w * b`, lane by lane.
#[inline(always)]
fn axpy8<const FUSED: bool>(acc: &mut [f32; LANES], w: f32, b: &[f32; LANES]) {
    for l in 0..LANES {
        acc[l] = madd::<FUSED>(w, b[l], acc[l]);
    }
}

/// `q_i·k` for the N query rows, reading `k` once: the N dot products advance together, as N
/// independent chains of FMAs.
#[inline(always)]
fn dots<const N: usize, const FUSED: bool>(q: &[&[f32]; N], k: &[f32]) -> [f32; N] {
    for q in q {
        assert_eq!(q.len(), k.len(), "latent_decode: query and key widths");
    }
    #[cfg(target_arch = "x86_64")]
    if FUSED {
        // SAFETY: FUSED is set only inside `unit_avx2`, reached after the CPU reported AVX2 and
        // FMA; the widths were checked above.
        return unsafe { dots_avx2::<N>(q, k) };
    }
    let (k_chunks, k_tail) = k.as_chunks::<LANES>();
    let mut lanes = [[0f32; LANES]; N];
    for (c, kc) in k_chunks.iter().enumerate() {
        for i in 0..N {
            let qc = &q[i].as_chunks::<LANES>().0[c];
            for l in 0..LANES {
                lanes[i][l] = madd::<FUSED>(qc[l], kc[l], lanes[i][l]);
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
fn weighted_sum<const N: usize, const FUSED: bool>(
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
                axpy8::<FUSED>(&mut reg[i], w[i][jj], vc);
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

/// Whether the AVX2 + FMA build of the kernel can run here.
fn fma_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution, Tensor};

    use super::{attend, attend_built, fma_available};
    use crate::model::attention::Mla;
    use crate::model::tests::max_abs_diff;

    fn normal(shape: [usize; 3], std: f64, device: &Device) -> Tensor<3> {
        Tensor::random(shape, Distribution::Normal(0.0, std), device)
    }

    /// The first `keys` positions of a longer buffer, as `CacheSlot::read` gives them.
    fn cache_view(batch: usize, keys: usize, width: usize, device: &Device) -> Tensor<3> {
        normal([batch, keys + 5, width], 1.0, device).narrow(1, 0, keys)
    }

    /// The kernel (the AVX2 + FMA build or the portable one) and the reference's products over
    /// the same inputs, `[batch, heads, rank]`.
    fn both(
        q_lat: Tensor<3>,
        q_r: Option<Tensor<3>>,
        c_k: Tensor<3>,
        c_v: Tensor<3>,
        k_r: Option<Tensor<3>>,
        fused: bool,
    ) -> (Option<Tensor<3>>, Tensor<3>) {
        let fused = attend_built(&q_lat, q_r.as_ref(), &c_k, &c_v, k_r.as_ref(), fused);
        let [b, h, r] = q_lat.dims();
        let s = c_k.dims()[1];
        let one = |q: Tensor<3>| {
            let d = q.dims()[2];
            q.reshape([b, h, 1, d])
        };
        let reference =
            Mla::attend_latent_reference(one(q_lat), q_r.map(one), c_k, c_v, k_r, s - 1);
        (fused, reference.reshape([b, h, r]))
    }

    #[test]
    fn one_pass_equals_the_products() {
        let device = Device::flex();
        // (batch, heads, keys, rank, rope_dim, joint latent): one key; keys across blocks of 32
        // with a partial last one; more heads than one group holds and a rank with a tail; one
        // sequence, whose heads split over the threads, without a rotary part; paper scale.
        let cases = [
            (1, 6, 1, 16, 8, true),
            (2, 6, 70, 24, 8, false),
            (3, 11, 33, 13, 4, true),
            (1, 3, 100, 32, 0, true),
            (4, 6, 200, 192, 32, false),
        ];
        for (b, h, s, r, dr, joint) in cases {
            // Queries 4σ wide, so that the running maximum moves from block to block.
            let q_lat = normal([b, h, r], 4.0, &device);
            let c_k = cache_view(b, s, r, &device);
            let c_v = if joint {
                c_k.clone()
            } else {
                cache_view(b, s, r, &device)
            };
            let (q_r, k_r) = match dr {
                0 => (None, None),
                _ => (
                    Some(normal([b, h, dr], 4.0, &device)),
                    Some(cache_view(b, s, dr, &device)),
                ),
            };
            let builds = [false, true].into_iter().filter(|&f| !f || fma_available());
            for fused in builds {
                let inputs = (q_lat.clone(), q_r.clone(), c_k.clone(), c_v.clone());
                let (out, reference) =
                    both(inputs.0, inputs.1, inputs.2, inputs.3, k_r.clone(), fused);
                let out = out.expect("flex f32 tensors take the kernel");
                let diff = max_abs_diff(out, reference);
                let case =
                    format!("batch {b}, heads {h}, keys {s}, rank {r}, rope {dr}, fma {fused}");
                assert!(diff <= 1e-4, "{case}: kernel and products differ by {diff}");
            }
        }
    }

    /// Training graphs never reach the kernel: it has no backward pass.
    #[test]
    fn autodiff_tensors_take_the_reference() {
        let device = Device::flex().autodiff();
        let (b, h, s, r) = (2, 4, 9, 8);
        let c = cache_view(b, s, r, &device);
        let q_lat = normal([b, h, r], 1.0, &device);
        assert!(attend(&q_lat, None, &c, &c, None).is_none());
    }
}
