//! The element-wise loops the fused kernels share, written once as plain loops that LLVM
//! vectorises, and compiled twice: for AVX2 + FMA (chosen at run time where the CPU has them)
//! and portably.
//!
//! `exp` is computed here rather than by `f32::exp`, which is a call per element that no loop
//! vectorises: `e^x = 2^n · p(r)`, `n = round(x / ln 2)`, `r = x − n ln 2` (ln 2 in two parts,
//! Cody and Waite), `p` the degree-6 Taylor polynomial of `e^r` on `|r| ≤ ln 2 / 2` (relative
//! error below 5e-7). Inputs below −87.33 give 0 (`f32::exp` gives subnormals there, below
//! 1.2e-38) and above 88.72 give +inf, as `f32::exp` does; NaN stays NaN (no comparison here drops it).

/// Proof that the CPU runs AVX2 and FMA instructions, or `None` for the portable build.
#[derive(Debug, Clone, Copy)]
pub struct Simd(());

impl Simd {
    pub fn detect() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Some(Simd(()));
        }
        None
    }
}

/// `pub fn $name(simd, args) -> ret`, running `$body(args)` compiled for AVX2 + FMA when `simd`
/// proves the CPU has them, and portably otherwise (`$body` is `#[inline(always)]`, so each
/// copy is compiled for its own target).
macro_rules! simd_fn {
    ($(#[$m:meta])* pub fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $body:ident;) => {
        $(#[$m])*
        pub fn $name(simd: Option<Simd>, $($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn fast($($arg: $ty),*) -> $ret {
                    $body($($arg),*)
                }
                if simd.is_some() {
                    // SAFETY: `Simd` is only made where the CPU has AVX2 and FMA.
                    return unsafe { fast($($arg),*) };
                }
            }
            let _ = simd;
            $body($($arg),*)
        }
    };
}

/// `e^x` (see the header).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Comparisons written so that NaN fails both and passes through.
    if x < -87.33 {
        return 0.0;
    }
    if x > 88.72 {
        return f32::INFINITY;
    }
    let n = (x * LOG2E).round();
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // 2^n by the exponent bits: n is in −126..=128 here (NaN casts to 0 and p is NaN).
    let two_n = f32::from_bits(((n as i32 + 127).clamp(1, 254) as u32) << 23);
    p * two_n
}

/// `erf(x)`: Abramowitz and Stegun 7.1.26 (absolute error 1.5e-7 in exact arithmetic, below
/// 5e-7 in f32), by [`exp`].
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_7,
        -1.453_152_1,
        1.061_405_4,
    ];
    let z = x.abs();
    let t = 1.0 / (1.0 + P * z);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    let y = 1.0 - poly * exp(-z * z);
    // NaN keeps its NaN: copysign would not change it, and y is NaN already.
    y.copysign(x)
}

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// `1 / √(2π)`
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

#[inline(always)]
fn gelu_body(x: &[f32], y: &mut [f32]) {
    for (x, y) in x.iter().zip(y.iter_mut()) {
        *y = 0.5 * x * (1.0 + erf(x * FRAC_1_SQRT_2));
    }
}

simd_fn! {
    /// `y = x Φ(x) = x (1 + erf(x / √2)) / 2`, the exact GELU (Hendrycks and Gimpel 2016).
    pub fn gelu(x: &[f32], y: &mut [f32]) -> () = gelu_body;
}

#[inline(always)]
fn gelu_grad_body(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    for ((x, dy), dx) in x.iter().zip(dy).zip(dx.iter_mut()) {
        let cdf = 0.5 * (1.0 + erf(x * FRAC_1_SQRT_2));
        let pdf = FRAC_1_SQRT_2PI * exp(-0.5 * x * x);
        *dx = dy * (cdf + x * pdf);
    }
}

simd_fn! {
    /// `dx = dy (Φ(x) + x φ(x))`, GELU's derivative times the output's gradient.
    pub fn gelu_grad(x: &[f32], dy: &[f32], dx: &mut [f32]) -> () = gelu_grad_body;
}

/// The largest of `row` (−inf when empty), or NaN when any is: a fold with `f32::max` would
/// drop NaN.
#[inline(always)]
fn max_keeping_nan(row: &[f32]) -> f32 {
    row.iter().fold(
        f32::NEG_INFINITY,
        |m, &x| if x > m || x.is_nan() { x } else { m },
    )
}

#[inline(always)]
fn cross_entropy_row_body(row: &mut [f32], target: usize, grad_scale: f32, grad: bool) -> f32 {
    let max = max_keeping_nan(row);
    let mut sum = 0.0f32;
    for x in row.iter() {
        sum += exp(x - max);
    }
    let lse = max + sum.ln();
    let loss = lse - row[target];
    if grad {
        for x in row.iter_mut() {
            *x = exp(*x - lse) * grad_scale;
        }
        row[target] -= grad_scale;
    }
    loss
}

simd_fn! {
    /// `log Σ_j exp z_j − z_target` of the logits `row`; with `grad`, the row becomes its
    /// gradient `(softmax(z) − onehot(target)) · grad_scale`.
    pub fn cross_entropy_row(row: &mut [f32], target: usize, grad_scale: f32, grad: bool) -> f32 =
        cross_entropy_row_body;
}

#[inline(always)]
fn layer_norm_row_body(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    y: &mut [f32],
) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / n;
    let rstd = 1.0 / (var + eps).sqrt();
    for (((y, x), g), b) in y.iter_mut().zip(x).zip(gamma).zip(beta) {
        *y = (x - mean) * rstd * g + b;
    }
    (mean, rstd)
}

simd_fn! {
    /// `y = (x − μ) / √(σ² + ε) · γ + β` over one row (σ² the biased variance); returns μ and
    /// `1 / √(σ² + ε)`.
    pub fn layer_norm_row(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32, y: &mut [f32]) -> (f32, f32) =
        layer_norm_row_body;
}

/// One row's share of LayerNorm's backward: what it needs, and where it adds.
pub struct NormRow<'a> {
    pub x: &'a [f32],
    pub dy: &'a [f32],
    pub gamma: &'a [f32],
    pub mean: f32,
    pub rstd: f32,
}

#[inline(always)]
fn layer_norm_grad_row_body(r: &NormRow, dx: &mut [f32], dgamma: &mut [f32], dbeta: &mut [f32]) {
    let n = r.x.len() as f32;
    let (mut a, mut b) = (0.0f32, 0.0f32);
    for ((x, dy), g) in r.x.iter().zip(r.dy).zip(r.gamma) {
        let xhat = (x - r.mean) * r.rstd;
        a += dy * g;
        b += dy * g * xhat;
    }
    let (a, b) = (a / n, b / n);
    for (((((dx, x), dy), g), dg), db) in dx
        .iter_mut()
        .zip(r.x)
        .zip(r.dy)
        .zip(r.gamma)
        .zip(dgamma.iter_mut())
        .zip(dbeta.iter_mut())
    {
        let xhat = (x - r.mean) * r.rstd;
        *dx = r.rstd * (dy * g - a - xhat * b);
        *dg += dy * xhat;
        *db += dy;
    }
}

simd_fn! {
    /// `dx = (g − mean(g) − x̂ mean(g ⊙ x̂)) / √(σ² + ε)` with `g = dy ⊙ γ`, `x̂` the normed
    /// row; adds `dy ⊙ x̂` to `dgamma` and `dy` to `dbeta`.
    pub fn layer_norm_grad_row(r: &NormRow, dx: &mut [f32], dgamma: &mut [f32], dbeta: &mut [f32]) -> () =
        layer_norm_grad_row_body;
}

#[inline(always)]
fn rope_row_body(x: &[f32], cos: &[f32], sin: &[f32], sign: f32, y: &mut [f32]) {
    let half = cos.len();
    let (x1, x2) = x.split_at(half);
    let (y1, y2) = y.split_at_mut(half);
    for i in 0..half {
        let (c, s) = (cos[i], sign * sin[i]);
        y1[i] = x1[i] * c - x2[i] * s;
        y2[i] = x2[i] * c + x1[i] * s;
    }
}

simd_fn! {
    /// One row turned by its position's angles, pair `i` with `i + D/2` (`rope.rs`):
    /// `y₁ = x₁ cos − x₂ sin`, `y₂ = x₂ cos + x₁ sin`; `sign` −1 turns back (the backward).
    pub fn rope_row(x: &[f32], cos: &[f32], sin: &[f32], sign: f32, y: &mut [f32]) -> () =
        rope_row_body;
}

simd_fn! {
    /// Softmax of `row[..n]` in place, `row[n..]` zeroed; returns `log Σ exp row[..n]`.
    pub fn softmax_row(row: &mut [f32], n: usize) -> f32 = softmax_row_body;
}

#[inline(always)]
fn softmax_row_body(row: &mut [f32], n: usize) -> f32 {
    let (live, masked) = row.split_at_mut(n);
    let max = max_keeping_nan(live);
    let mut sum = 0.0f32;
    for x in live.iter_mut() {
        *x = exp(*x - max);
        sum += *x;
    }
    let inv = 1.0 / sum;
    for x in live.iter_mut() {
        *x *= inv;
    }
    masked.fill(0.0);
    max + sum.ln()
}

simd_fn! {
    /// From scores `p[..n]` (in place to `P = exp(S − lse)`) and `dP` in `ds[..n]` (in place to
    /// `dS = P ⊙ (dP − d)`); both zeroed past `n`.
    pub fn softmax_grad_row(p: &mut [f32], ds: &mut [f32], n: usize, lse: f32, d: f32) -> () =
        softmax_grad_row_body;
}

#[inline(always)]
fn softmax_grad_row_body(p: &mut [f32], ds: &mut [f32], n: usize, lse: f32, d: f32) {
    for (p, ds) in p[..n].iter_mut().zip(ds[..n].iter_mut()) {
        *p = exp(*p - lse);
        *ds = *p * (*ds - d);
    }
    p[n..].fill(0.0);
    ds[n..].fill(0.0);
}

simd_fn! {
    /// `a · b`.
    pub fn dot(a: &[f32], b: &[f32]) -> f32 = dot_body;
}

#[inline(always)]
fn dot_body(a: &[f32], b: &[f32]) -> f32 {
    // Eight partial sums, so the loop vectorises without reordering one sum.
    let mut acc = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_the_standard_library_and_keeps_nan() {
        let mut worst = 0.0f64;
        // Past −87.33 the standard library's results are subnormal (below 1.2e-38), ours 0.
        for i in -8700..=8800 {
            let x = i as f32 * 0.01;
            let (ours, std) = (exp(x) as f64, x.exp() as f64);
            let rel = ((ours - std) / std).abs();
            assert!(rel.is_finite(), "exp({x}): {ours} against {std}");
            worst = worst.max(rel);
        }
        assert!(worst < 5e-7, "worst relative error {worst}");
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(100.0), f32::INFINITY);
    }

    #[test]
    fn erf_matches_its_series_and_keeps_nan() {
        // erf by its Taylor series, in f64, where it converges quickly (|x| ≤ 2), and the
        // complementary function's continued fraction beyond.
        let reference = |x: f64| -> f64 {
            if x.abs() <= 2.0 {
                let (mut term, mut sum, mut n) = (x, x, 0.0);
                while term.abs() > 1e-17 {
                    n += 1.0;
                    term *= -x * x / n;
                    sum += term / (2.0 * n + 1.0);
                }
                sum * 2.0 / std::f64::consts::PI.sqrt()
            } else {
                let z = x.abs();
                let mut f = 0.0;
                for k in (1..60).rev() {
                    f = (k as f64 / 2.0) / (z + f);
                }
                let erfc = (-z * z).exp() / std::f64::consts::PI.sqrt() / (z + f);
                (1.0 - erfc).copysign(x)
            }
        };
        for i in -600..=600 {
            let x = i as f32 * 0.01;
            let diff = (erf(x) as f64 - reference(x as f64)).abs();
            assert!(
                diff < 5e-7,
                "erf({x}) = {} against {}",
                erf(x),
                reference(x as f64)
            );
        }
        assert!(erf(f32::NAN).is_nan());
        assert_eq!(erf(f32::INFINITY), 1.0);
    }

    #[test]
    fn a_softmax_row_is_nan_when_a_score_is() {
        for simd in [None, Simd::detect()] {
            let mut row = vec![0.5, f32::NAN, 1.0, 7.0];
            let lse = softmax_row(simd, &mut row, 3);
            assert!(lse.is_nan() && row[..3].iter().all(|x| x.is_nan()));
            assert_eq!(row[3], 0.0);
        }
    }
}
