//! Rotary position embeddings (RoFormer, arXiv 2104.09864), in one place.
//!
//! **Pair convention (used everywhere in mla-lab):** a rotated vector of width `D` is split
//! in halves, and element `i` is paired with element `i + D/2` (the "rotate half" layout of
//! GPT-NeoX and Llama). Pair `i` at position `p` turns by the angle `p * theta^(-2i/D)`:
//!
//! ```text
//! out[i]       = x[i] * cos - x[i + D/2] * sin
//! out[i + D/2] = x[i + D/2] * cos + x[i] * sin
//! ```
//!
//! The cosine and sine tables are computed once for the whole context in `init` and sliced
//! at the query's absolute position, so a cached decode step rotates exactly like the same
//! position in a full forward.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

/// Builds a [`Rope`] table.
#[derive(Debug, Clone)]
pub struct RopeConfig {
    /// Width of the rotated vectors (even).
    pub dim: usize,
    /// Longest position the table covers.
    pub context: usize,
    /// Base of the frequencies (10,000 in RoFormer).
    pub theta: f64,
}

/// Precomputed rotation tables. Constants, not parameters.
#[derive(Module, Debug)]
pub struct Rope {
    /// `[context, dim / 2]`
    cos: Tensor<2>,
    /// `[context, dim / 2]`
    sin: Tensor<2>,
}

impl RopeConfig {
    pub fn init(&self, device: &Device) -> Rope {
        assert!(
            self.dim > 0 && self.dim.is_multiple_of(2),
            "RoPE width must be even and positive, got {}",
            self.dim
        );
        let half = self.dim / 2;
        let mut cos = Vec::with_capacity(self.context * half);
        let mut sin = Vec::with_capacity(self.context * half);
        for pos in 0..self.context {
            for i in 0..half {
                let freq = self.theta.powf(-2.0 * i as f64 / self.dim as f64);
                let angle = pos as f64 * freq;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        let shape = [self.context, half];
        Rope {
            cos: Tensor::from_data(TensorData::new(cos, shape), device),
            sin: Tensor::from_data(TensorData::new(sin, shape), device),
        }
    }
}

impl Rope {
    /// Rotates `x` as if its sequence axis started at absolute position `start`.
    ///
    /// # Shapes
    /// - x: `[batch, heads, seq, dim]`
    /// - output: `[batch, heads, seq, dim]`
    pub fn apply(&self, x: Tensor<4>, start: usize) -> Tensor<4> {
        let [_, _, seq, dim] = x.dims();
        let half = dim / 2;
        let [context, table_half] = self.cos.dims();
        assert_eq!(
            table_half, half,
            "RoPE table width {table_half} != dim/2 {half}"
        );
        assert!(
            start + seq <= context,
            "RoPE position {} beyond context {context}",
            start + seq
        );
        #[cfg(feature = "flex")]
        if let Some(y) = crate::model::kernels::rope(&x, &self.cos, &self.sin, start) {
            return y;
        }
        self.apply_reference(x, start)
    }

    /// [`Rope::apply`] by burn's composed operations: what every backend but flex runs, and what
    /// the fused kernel is tested against.
    ///
    /// # Shapes
    /// - x: `[batch, heads, seq, dim]`
    /// - output: `[batch, heads, seq, dim]`
    pub fn apply_reference(&self, x: Tensor<4>, start: usize) -> Tensor<4> {
        let [_, _, seq, dim] = x.dims();
        let half = dim / 2;
        let cos = self
            .cos
            .clone()
            .narrow(0, start, seq)
            .reshape([1, 1, seq, half]); // [1, 1, seq, half]
        let sin = self
            .sin
            .clone()
            .narrow(0, start, seq)
            .reshape([1, 1, seq, half]); // [1, 1, seq, half]
        let x1 = x.clone().narrow(3, 0, half); // [batch, heads, seq, half]
        let x2 = x.narrow(3, half, half); // [batch, heads, seq, half]
        let r1 = x1.clone() * cos.clone() - x2.clone() * sin.clone();
        let r2 = x2 * cos + x1 * sin;
        Tensor::cat(vec![r1, r2], 3) // [batch, heads, seq, dim]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::test_device;

    fn to_vec(t: Tensor<4>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn rotates_pairs_i_and_i_plus_half() {
        let device = test_device();
        let rope = RopeConfig {
            dim: 4,
            context: 8,
            theta: 100.0,
        }
        .init(&device);
        // x = e_0 (the first element of pair 0), at position 3.
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 0.0, 0.0], [1, 1, 1, 4]),
            &device,
        );
        let out = to_vec(rope.apply(x, 3));
        // Pair 0 turns by 3 * 100^0 = 3 rad: (cos 3, 0, sin 3, 0).
        let want = [3f32.cos(), 0.0, 3f32.sin(), 0.0];
        for (o, w) in out.iter().zip(want) {
            assert!((o - w).abs() < 1e-6, "{out:?} vs {want:?}");
        }
    }

    #[test]
    fn preserves_norm_and_relative_angle() {
        let device = test_device();
        let rope = RopeConfig {
            dim: 8,
            context: 32,
            theta: 10_000.0,
        }
        .init(&device);
        let q = Tensor::<4>::random(
            [1, 1, 1, 8],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let k = Tensor::<4>::random(
            [1, 1, 1, 8],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let dot = |a: Tensor<4>, b: Tensor<4>| (a * b).sum().into_scalar::<f32>();
        // <R(p) q, R(p') k> depends on p - p' only.
        let a = dot(rope.apply(q.clone(), 7), rope.apply(k.clone(), 4));
        let b = dot(rope.apply(q.clone(), 20), rope.apply(k.clone(), 17));
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        let n0 = dot(q.clone(), q.clone());
        let n1 = dot(rope.apply(q.clone(), 11), rope.apply(q, 11));
        assert!((n0 - n1).abs() < 1e-4, "{n0} vs {n1}");
    }
}
