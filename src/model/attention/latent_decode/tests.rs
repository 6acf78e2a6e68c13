use burn::tensor::{DType, Device, Distribution, Tensor};

use super::{Avx2Fma, attend, attend_built};
use crate::model::attention::latent::{Latents, attend_latent_reference};
use crate::model::tests::max_abs_diff;

fn normal<const D: usize>(shape: [usize; D], std: f64, device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(0.0, std), device)
}

/// One decode step's inputs.
struct Step {
    q_lat: Tensor<4>,
    q_r: Option<Tensor<4>>,
    c_k: Tensor<4>,
    c_v: Tensor<4>,
    k_r: Option<Tensor<3>>,
}

#[derive(Clone, Copy)]
enum Values {
    /// `c_V` is `c_K` (the joint latent).
    Joint,
    /// A buffer of its own.
    Separate,
    /// Stored keys-last, so that its rows are not contiguous and the kernel copies it.
    Transposed,
}

impl Step {
    /// Views as a cache gives them and more: `c_K` and `k^R` from their buffers' fourth
    /// position (an offset) with rows longer than their width, the queries of a
    /// `[heads, batch, groups, width]` tensor with its dimensions permuted. Scores are
    /// about `std` wide (queries `std / √(rank + rope_dim)`, as the model's scale makes
    /// them): 4 makes the softmax peaked and moves the running maximum from block to block,
    /// 0.3 spreads the weights over every key.
    fn new([b, g, m, s, r, dr]: [usize; 6], values: Values, std: f64, device: &Device) -> Step {
        let q_std = std / ((r + dr) as f64).sqrt();
        // [b, g, m, width]
        let queries = |width| normal([m, b, g, width], q_std, device).permute([1, 2, 0, 3]);
        let c_k = normal([b, g, s + 5, r + 3], 1.0, device)
            .narrow(2, 3, s)
            .narrow(3, 0, r); // [b, g, s, r]
        let c_v = match values {
            Values::Joint => c_k.clone(),
            Values::Separate => normal([b, g, s, r], 1.0, device),
            Values::Transposed => normal([b, g, r, s], 1.0, device).swap_dims(2, 3), // [b, g, s, r]
        };
        let rotary = dr > 0;
        let k_r = || {
            normal([b, s + 5, dr + 2], 1.0, device)
                .narrow(1, 3, s)
                .narrow(2, 1, dr) // [b, s, dr]
        };
        Step {
            q_lat: queries(r),
            q_r: rotary.then(|| queries(dr)),
            c_k,
            c_v,
            k_r: rotary.then(k_r),
        }
    }

    fn one_pass(&self, simd: Option<Avx2Fma>) -> Option<Tensor<4>> {
        let (q_r, k_r) = (self.q_r.as_ref(), self.k_r.as_ref());
        attend_built(&self.q_lat, q_r, &self.c_k, &self.c_v, k_r, simd)
    }

    /// The products over the same inputs, `[batch, groups, heads per group, rank]`.
    fn reference(&self) -> Tensor<4> {
        let [b, g, m, r] = self.q_lat.dims();
        let s = self.c_k.dims()[2];
        // [b, g, m, d] -> [b, g*m, 1, d]: head j*m + k is latent j's k-th query.
        let heads = |q: &Tensor<4>| {
            let d = q.dims()[3];
            q.clone().reshape([b, g * m, 1, d]) // [b, h, 1, d]
        };
        let lat = Latents {
            c_k: self.c_k.clone(),
            c_v: self.c_v.clone(),
            k_r: self.k_r.clone(),
        };
        let q_r = self.q_r.as_ref().map(heads);
        let out = attend_latent_reference(heads(&self.q_lat), q_r, lat, s - 1);
        out.reshape([b, g, m, r]) // [b, g, m, r]
    }

    /// The largest difference between the kernel and the products.
    fn diff(&self, simd: Option<Avx2Fma>) -> f32 {
        let out = self
            .one_pass(simd)
            .expect("flex f32 tensors take the kernel");
        max_abs_diff(out, self.reference())
    }
}

/// The portable build, and the AVX2 + FMA one where this CPU has them.
fn builds() -> Vec<Option<Avx2Fma>> {
    std::iter::once(None)
        .chain(Avx2Fma::detect().map(Some))
        .collect()
}

#[test]
fn one_pass_equals_the_products() {
    let device = Device::flex();
    device.seed(5);
    // [batch, latents, heads per latent, keys, rank, rope_dim]: one key; keys across
    // blocks of 32 with a partial last one; more heads than one group holds and a rank with
    // a tail; one sequence, whose heads split over the threads, without a rotary part;
    // paper scale; latent heads sharing the rotary key (GLA), with and without it.
    let cases = [
        ([1, 1, 6, 1, 16, 8], Values::Joint, 4.0),
        ([2, 1, 6, 70, 24, 8], Values::Separate, 4.0),
        ([3, 1, 11, 33, 13, 4], Values::Joint, 4.0),
        ([1, 1, 3, 100, 32, 0], Values::Transposed, 4.0),
        ([2, 1, 5, 90, 20, 6], Values::Separate, 0.3),
        ([4, 1, 6, 200, 192, 32], Values::Separate, 4.0),
        ([2, 2, 3, 70, 24, 8], Values::Joint, 4.0),
        ([1, 4, 2, 40, 16, 0], Values::Joint, 1.0),
    ];
    for (shape, values, std) in cases {
        let step = Step::new(shape, values, std, &device);
        for simd in builds() {
            let diff = step.diff(simd);
            let case = format!("{shape:?}, std {std}, avx2 {}", simd.is_some());
            assert!(diff <= 1e-4, "{case}: kernel and products differ by {diff}");
        }
    }
}

/// Heads split into groups when sequences are fewer than threads; every split gives the
/// same heads.
#[test]
fn any_number_of_threads_gives_the_products() {
    let device = Device::flex();
    device.seed(6);
    for threads in [1, 3, 4, 7] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool");
        for batch in [1, 2, 3] {
            let step = Step::new([batch, 1, 6, 40, 16, 8], Values::Separate, 1.0, &device);
            for simd in builds() {
                let diff = pool.install(|| step.diff(simd));
                let case = format!("{threads} threads, batch {batch}");
                assert!(diff <= 1e-4, "{case}: kernel and products differ by {diff}");
            }
        }
    }
}

/// What the kernel does not take goes to the reference: training graphs (it has no
/// backward pass), caches in half precision, a rotary query without its key, no sequence.
#[test]
fn what_the_kernel_does_not_take_falls_back() {
    let device = Device::flex();
    let step = Step::new([2, 1, 4, 9, 8, 4], Values::Separate, 1.0, &device);
    assert!(step.one_pass(None).is_some());
    let autodiff = Device::flex().autodiff();
    let trained = Step::new([2, 1, 4, 9, 8, 4], Values::Separate, 1.0, &autodiff);
    assert!(trained.one_pass(None).is_none(), "autodiff");
    let half = Step {
        c_k: step.c_k.clone().cast(DType::F16),
        ..Step::new([2, 1, 4, 9, 8, 4], Values::Separate, 1.0, &device)
    };
    assert!(half.one_pass(None).is_none(), "f16 cache");
    let no_key = Step {
        k_r: None,
        ..Step::new([2, 1, 4, 9, 8, 4], Values::Separate, 1.0, &device)
    };
    assert!(
        no_key.one_pass(None).is_none(),
        "rotary query without its key"
    );
    let nothing = Step::new([0, 1, 4, 9, 8, 4], Values::Separate, 1.0, &device);
    assert!(nothing.one_pass(None).is_none(), "batch 0");
    let (q, c) = (&step.q_lat, &step.c_k);
    assert!(attend(q, None, c, c, None).is_some());
}
