//! Each fused kernel against its composed reference on flex: values and every gradient, on odd
//! shapes (rows not a multiple of the block, one head, batch 1, grouped heads, `d_k ≠ d_v`), and
//! NaN carried through rather than hidden.

use burn::tensor::{Device, Distribution, Tensor};

use super::*;
use crate::model::attention::common::causal_attention_reference;

use crate::compare::max_abs_diff;

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// `max |got − want| ≤ tol · max(1, max |want|)`.
fn assert_close<const D: usize>(got: Tensor<D>, want: Tensor<D>, tol: f32, what: &str) {
    assert_eq!(got.dims(), want.dims(), "{what}: shapes");
    let (got, want) = (values(got), values(want));
    let scale = want.iter().fold(1.0f32, |m, x| m.max(x.abs()));
    let diff = max_abs_diff(&got, &want, what);
    assert!(diff <= tol * scale, "{what}: off by {diff} (scale {scale})");
}

fn flex() -> Device {
    Device::flex().autodiff()
}

fn random<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

/// Output and the gradients of `Σ out ⊙ g` with respect to q, k and v, by `attend`.
fn run(
    attend: impl Fn(Tensor<4>, Tensor<4>, Tensor<4>) -> Tensor<4>,
    [q, k, v, g]: [&Tensor<4>; 4],
) -> [Tensor<4>; 4] {
    let (q, k, v) = (
        q.clone().require_grad(),
        k.clone().require_grad(),
        v.clone().require_grad(),
    );
    let out = attend(q.clone(), k.clone(), v.clone());
    let grads = (out.clone() * g.clone()).sum().backward();
    let grad = |t: &Tensor<4>| t.grad(&grads).expect("a gradient");
    [out.without_autodiff(), grad(&q), grad(&k), grad(&v)]
}

/// Fused against composed at `[batch, heads, seq, d_k]` queries over `kv_heads`, values `d_v`
/// wide, training's `start` 0.
fn fused_equals_composed(
    batch: usize,
    heads: usize,
    kv_heads: usize,
    seq: usize,
    d_k: usize,
    d_v: usize,
) {
    let device = flex();
    device.seed(seq as u64);
    // Scaled queries, as the variants pass them.
    let q = random([batch, heads, seq, d_k], &device).mul_scalar((d_k as f64).powf(-0.5));
    let k = random([batch, kv_heads, seq, d_k], &device);
    let v = random([batch, kv_heads, seq, d_v], &device);
    let g = random([batch, heads, seq, d_v], &device);
    let fused = run(
        |q, k, v| causal_attention(&q, &k, &v, 0).expect("the kernel applies on flex"),
        [&q, &k, &v, &g],
    );
    let composed = run(
        |q, k, v| causal_attention_reference(q, k, v, 0),
        [&q, &k, &v, &g],
    );
    let shape = format!("[{batch}, {heads}/{kv_heads}, {seq}, {d_k}/{d_v}]");
    for ((got, want), name) in fused
        .into_iter()
        .zip(composed)
        .zip(["out", "dq", "dk", "dv"])
    {
        assert_close(got, want, 2e-5, &format!("{name} at {shape}"));
    }
}

#[test]
fn fused_attention_equals_composed_values_and_gradients() {
    // Rows across blocks and not a multiple of one.
    fused_equals_composed(2, 4, 4, 70, 16, 16);
    fused_equals_composed(2, 2, 2, 2 * attention::BLOCK + 3, 8, 8);
    // One head, batch 1, one row.
    fused_equals_composed(1, 1, 1, 5, 8, 8);
    fused_equals_composed(1, 1, 1, 1, 4, 4);
    // Grouped and multi-query heads; a key wider than the value (MLA's rotary part).
    fused_equals_composed(2, 4, 2, 33, 8, 8);
    fused_equals_composed(1, 4, 1, 40, 8, 8);
    fused_equals_composed(2, 4, 4, 37, 24, 16);
}

#[test]
fn fused_attention_continues_a_cache() {
    // Queries at positions 5..12 against 12 keys, as a prefill after a cached prompt.
    let device = Device::flex();
    let (q, k, v) = (
        random([2, 4, 7, 8], &device),
        random([2, 2, 12, 8], &device),
        random([2, 2, 12, 6], &device),
    );
    let fused = causal_attention(&q, &k, &v, 5).expect("the kernel applies on flex");
    assert_close(
        fused,
        causal_attention_reference(q, k, v, 5),
        2e-5,
        "out from position 5",
    );
}

#[test]
fn fused_attention_carries_nan_to_the_rows_that_see_it() {
    let device = Device::flex();
    let (q, mut k, v) = (
        random([1, 1, 6, 4], &device),
        random([1, 1, 6, 4], &device),
        random([1, 1, 6, 4], &device),
    );
    // Key 3 is NaN: rows 0..3 do not see it, rows 3.. do.
    k = k.slice_assign(
        [0..1, 0..1, 3..4, 0..1],
        Tensor::full([1, 1, 1, 1], f32::NAN, &device),
    );
    let out = values(causal_attention(&q, &k, &v, 0).expect("the kernel applies on flex"));
    for (i, x) in out.iter().enumerate() {
        assert_eq!(x.is_nan(), i / 4 >= 3, "row {} value {x}", i / 4);
    }
}

#[test]
fn fused_gelu_equals_composed_values_and_gradient() {
    let device = flex();
    device.seed(3);
    // More elements than one piece, and not a multiple of one; tails of both signs.
    let x = random([3, 7, 2341], &device).mul_scalar(3.0);
    let g = random([3, 7, 2341], &device);
    let run = |act: &dyn Fn(Tensor<3>) -> Tensor<3>| {
        let x = x.clone().require_grad();
        let y = act(x.clone());
        let grads = (y.clone() * g.clone()).sum().backward();
        (y.without_autodiff(), x.grad(&grads).expect("a gradient"))
    };
    let (y, dx) = run(&|x| gelu(&x).expect("the kernel applies on flex"));
    let (y_ref, dx_ref) = run(&burn::tensor::activation::gelu);
    assert_close(y, y_ref, 1e-6, "gelu");
    assert_close(dx, dx_ref, 1e-6, "gelu's gradient");
}

#[test]
fn fused_gelu_keeps_nan() {
    let device = Device::flex();
    let x = Tensor::<1>::from_floats([1.0, f32::NAN, -2.0], &device);
    let y = values(gelu(&x).expect("the kernel applies on flex"));
    assert!(!y[0].is_nan() && y[1].is_nan() && !y[2].is_nan(), "{y:?}");
}

#[test]
fn fused_cross_entropy_equals_composed_loss_and_gradient() {
    use burn::tensor::Int;
    use burn::tensor::activation::log_softmax;
    let device = Device::flex();
    device.seed(5);
    let (rows, vocab) = (37, 301);
    let logits = random([rows, vocab], &device).mul_scalar(4.0);
    let ids: Vec<i64> = (0..rows as i64).map(|i| (i * 97) % vocab as i64).collect();
    let targets = Tensor::<1, Int>::from_ints(ids.as_slice(), &device);
    let scale = 1.0 / rows as f32;
    let (loss, grad) = cross_entropy(logits.clone(), &targets, Some(scale)).expect("flex");
    let (loss_only, none) = cross_entropy(logits.clone(), &targets, None).expect("flex");
    assert!(
        none.is_none() && loss_only == loss,
        "{loss_only} against {loss}"
    );

    let log_p = log_softmax(logits, 1); // [rows, vocab]
    let picked = log_p.clone().gather(1, targets.clone().reshape([rows, 1]));
    let want = -values(picked.sum())[0] as f64;
    assert!(
        loss.is_finite() && (loss - want).abs() <= 1e-5 * want.abs().max(1.0),
        "loss {loss} against {want}"
    );
    let onehot = targets.one_hot(vocab).float(); // [rows, vocab]
    let want_grad = (log_p.exp() - onehot).mul_scalar(scale);
    assert_close(
        grad.expect("a gradient"),
        want_grad,
        1e-6,
        "logits' gradient",
    );
}

#[test]
fn fused_cross_entropy_is_nan_when_a_logit_is() {
    use burn::tensor::Int;
    let device = Device::flex();
    let logits = Tensor::<2>::from_floats([[1.0, 2.0], [f32::NAN, 0.0]], &device);
    let targets = Tensor::<1, Int>::from_ints([0, 1], &device);
    let (loss, grad) = cross_entropy(logits, &targets, Some(0.5)).expect("flex");
    assert!(loss.is_nan());
    let grad = values(grad.expect("a gradient"));
    assert!(
        grad[..2].iter().all(|x| x.is_finite()) && grad[2..].iter().all(|x| x.is_nan()),
        "{grad:?}"
    );
}

#[test]
fn fused_layer_norm_equals_composed_values_and_gradients() {
    use burn::module::Param;
    use burn::nn::LayerNormConfig;
    let device = flex();
    device.seed(9);
    // Rows not a multiple of a piece; a shifted, spread input.
    let x = random([3, 45, 24], &device).mul_scalar(2.0).add_scalar(0.7);
    let g = random([3, 45, 24], &device);
    let gamma = random([24], &device).mul_scalar(0.3).add_scalar(1.0);
    let beta = random([24], &device);
    let run = |fused: bool| {
        let x = x.clone().require_grad();
        let (gamma, beta) = (gamma.clone().require_grad(), beta.clone().require_grad());
        let y = if fused {
            layer_norm(&x, &gamma, &beta, 1e-5).expect("the kernel applies on flex")
        } else {
            let mut norm = LayerNormConfig::new(24).with_epsilon(1e-5).init(&device);
            norm.gamma = Param::from_tensor(gamma.clone());
            norm.beta = Some(Param::from_tensor(beta.clone()));
            norm.forward(x.clone())
        };
        let grads = (y.clone() * g.clone()).sum().backward();
        let grad = |t: &Tensor<1>| t.grad(&grads).expect("a gradient");
        (
            y.without_autodiff(),
            x.grad(&grads).expect("a gradient"),
            grad(&gamma),
            grad(&beta),
        )
    };
    let (fused, composed) = (run(true), run(false));
    assert_close(fused.0, composed.0, 1e-5, "layer norm");
    assert_close(fused.1, composed.1, 1e-5, "dx");
    assert_close(fused.2, composed.2, 1e-5, "dγ");
    assert_close(fused.3, composed.3, 1e-5, "dβ");
}

#[test]
fn fused_rope_equals_composed_on_a_strided_view_with_its_gradient() {
    use crate::model::rope::RopeConfig;
    let device = flex();
    device.seed(11);
    let (b, t, h, d) = (2, 37, 3, 8);
    let table = RopeConfig {
        dim: d,
        context: 64,
        theta: 10_000.0,
    }
    .init(&device);
    // Heads split from `[batch, seq, heads·dim]` as the variants do: a strided view.
    let x = random([b, t, h * d], &device);
    let g = random([b, h, t, d], &device);
    let run = |fused: bool, start: usize| {
        let x = x.clone().require_grad();
        let heads = x.clone().reshape([b, t, h, d]).swap_dims(1, 2); // [b, h, t, d]
        assert!(applies(&heads));
        let y = if fused {
            table.apply(heads, start)
        } else {
            table.apply_reference(heads, start)
        };
        let grads = (y.clone() * g.clone()).sum().backward();
        (y.without_autodiff(), x.grad(&grads).expect("a gradient"))
    };
    for start in [0, 20] {
        let (y, dx) = run(true, start);
        let (y_ref, dx_ref) = run(false, start);
        assert_close(y, y_ref, 1e-6, &format!("rope from position {start}"));
        assert_close(
            dx,
            dx_ref,
            1e-6,
            &format!("rope's gradient from position {start}"),
        );
    }
}

/// A kernel whose output carries a planted NaN fails its equivalence test against the
/// reference, however close the other values are.
#[test]
#[should_panic(expected = "gelu with a planted NaN: index 1 is NaN")]
fn a_planted_nan_fails_the_kernels_equivalence_test() {
    let device = flex();
    let x = Tensor::<1>::from_floats([1.0, f32::NAN, -2.0], &device);
    let want = Tensor::<1>::from_floats([1.0, 0.5, -2.0], &device);
    let got = gelu(&x).expect("the kernel applies on flex");
    assert_close(
        got,
        burn::tensor::activation::gelu(want),
        1.0,
        "gelu with a planted NaN",
    );
}
