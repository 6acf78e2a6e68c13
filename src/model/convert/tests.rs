use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{ModuleSnapshot, bridge};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::*;
use crate::backend::test_device;
use crate::model::tests::max_abs_diff;

/// A tiny learned-position MHA model and its MLA target at `rank`, unnormed.
fn configs(rank: usize, layout: LatentLayout) -> (GptConfig, GptConfig) {
    let source = GptConfig {
        vocab_size: 61,
        context: 16,
        d_model: 32,
        n_layers: 2,
        n_heads: 4,
        mlp_ratio: 2,
        positions: Positions::Learned,
        attention: AttentionConfig::mha(4),
        tie_embeddings: true,
    };
    let target = GptConfig {
        attention: AttentionConfig::Mla(MlaConfig {
            rank,
            layout,
            rope_dim: 0,
            latent_norm: false,
        }),
        ..source.clone()
    };
    (source, target)
}

/// The source model with large random weights, so that attention patterns move the logits.
fn source_model(config: &GptConfig, device: &Device) -> Gpt {
    device.seed(21);
    let model = config.init(device);
    let scaled: Vec<PackTensor> = model
        .collect(None, None, false)
        .into_iter()
        .map(|t| {
            let data = bridge::to_data(&t).unwrap();
            let shape: Vec<usize> = data.shape().iter().copied().collect();
            let fresh: Tensor<1> = Tensor::random(
                [shape.iter().product::<usize>()],
                burn::tensor::Distribution::Normal(0.0, 0.3),
                device,
            );
            let fresh = if shape.len() == 1 {
                fresh.add_scalar(1.0) // gains near 1
            } else {
                fresh
            };
            bridge::from_data(
                TensorData::new(fresh.into_data().try_to_vec::<f32>().unwrap(), shape),
                t.name.clone(),
                None,
            )
        })
        .collect();
    let mut model = model;
    let applied = model.apply(scaled, None, None, false);
    assert!(applied.errors.is_empty() && applied.missing.is_empty());
    model
}

fn tokens(device: &Device) -> Tensor<2, Int> {
    let ids: Vec<i64> = (0..32).map(|i| (7 * i + 3) % 61).collect();
    Tensor::from_data(TensorData::new(ids, [2, 16]), device)
}

/// One weight of `model`, by name.
fn weight(model: &Gpt, name: &str, device: &Device) -> Tensor<2> {
    let t = model
        .collect(None, None, false)
        .into_iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no {name}"));
    Tensor::from_data(bridge::to_data(&t).unwrap(), device)
}

/// `model` with one weight replaced.
fn with_weight(mut model: Gpt, name: &str, w: Tensor<2>) -> Gpt {
    let t = bridge::from_data(w.into_data(), name.into(), None);
    let applied = model.apply(vec![t], None, None, false);
    assert_eq!(applied.applied, [name]);
    model
}

#[test]
fn at_full_rank_the_converted_model_computes_what_the_mha_model_did() {
    let device = test_device();
    for layout in [LatentLayout::Joint, LatentLayout::Separate] {
        let (source_config, target) = configs(32, layout);
        let source = source_model(&source_config, &device);
        let (converted, conversion) =
            mha_to_mla(&source, &source_config, &target, &device).unwrap();
        let want = source.forward(tokens(&device));
        let scale = want.clone().abs().max().into_scalar::<f32>();
        assert!(
            scale > 1.0,
            "logits too small to tell models apart: {scale}"
        );
        let diff = max_abs_diff(converted.forward(tokens(&device)), want.clone());
        assert!(diff < 1e-4 * scale, "{layout:?}: logits differ by {diff}");
        assert!(conversion.energy.iter().all(|&e| (e - 1.0).abs() < 1e-9));
        // It bites: a transposed factor, or the smallest singular value dropped, is caught.
        let name = "blocks.1.attn.Mla.w_uk.weight";
        let w_uk = weight(&converted, name, &device); // [r, h*dh], square here
        let transposed = with_weight(converted.clone(), name, w_uk.transpose());
        let name = "blocks.0.attn.Mla.w_dkv.weight";
        let w_dkv = weight(&converted, name, &device); // [d, latents*r]
        let last = match layout {
            LatentLayout::Joint => 31,
            LatentLayout::Separate => 63,
        };
        let dropped = w_dkv
            .clone()
            .slice_assign([0..32, last..last + 1], Tensor::zeros([32, 1], &device));
        let dropped = with_weight(converted.clone(), name, dropped);
        for (what, model) in [("transposed W^UK", transposed), ("dropped σ", dropped)] {
            let off = max_abs_diff(model.forward(tokens(&device)), want.clone());
            assert!(off > 1e-4 * scale, "{layout:?}, {what}: only {off} off");
        }
    }
}

#[test]
fn the_energy_kept_is_the_share_of_the_squared_norm_the_factors_keep() {
    let device = test_device();
    let (source_config, target) = configs(16, LatentLayout::Joint);
    let source = source_model(&source_config, &device);
    let (converted, conversion) = mha_to_mla(&source, &source_config, &target, &device).unwrap();
    assert_eq!(
        (conversion.method.as_str(), conversion.rank),
        ("svd joint", 16)
    );
    assert_eq!(conversion.energy.len(), 2);
    for (layer, &energy) in conversion.energy.iter().enumerate() {
        let w = |model: &Gpt, name: String| weight(model, &name, &device);
        let at = |w: &str| format!("blocks.{layer}.attn.Mha.{w}.weight");
        let to = |w: &str| format!("blocks.{layer}.attn.Mla.{w}.weight");
        let m = Tensor::cat(vec![w(&source, at("wk")), w(&source, at("wv"))], 1); // [d, 2d]
        let up = Tensor::cat(
            vec![w(&converted, to("w_uk")), w(&converted, to("w_uv"))],
            1,
        ); // [r, 2d]
        let rebuilt = w(&converted, to("w_dkv")).matmul(up); // [d, 2d]
        let sq = |t: Tensor<2>| t.powi_scalar(2).sum().into_scalar::<f32>() as f64;
        // Eckart–Young: what the truncation loses is the dropped singular values' share.
        let kept = 1.0 - sq(m.clone() - rebuilt) / sq(m);
        assert!(energy > 0.3 && energy < 1.0, "layer {layer}: {energy}");
        assert!(
            (energy - kept).abs() < 1e-4,
            "layer {layer}: {energy} vs {kept}"
        );
    }
}

#[test]
fn what_cannot_be_converted_is_refused_by_its_field() {
    let (source, target) = configs(16, LatentLayout::Joint);
    assert!(check(&source, &target).is_ok());
    let field = |source: &GptConfig, target: &GptConfig| check(source, target).unwrap_err().field;
    let rotary = GptConfig {
        positions: Positions::Rope(10_000.0),
        ..source.clone()
    };
    // A rotary source needs a rotary target of a width that divides d_h (8 here), and a
    // learned one none.
    assert_eq!(field(&rotary, &target), "model.attention.rope_dim");
    let (rotary, rotary_target) = rotary_configs(4);
    assert!(check(&rotary, &rotary_target).is_ok());
    assert_eq!(field(&source, &rotary_target), "model.attention.rope_dim");
    assert_eq!(
        field(&rotary, &rotary_configs(6).1),
        "model.attention.rope_dim"
    );
    let gqa = GptConfig {
        attention: AttentionConfig::mha(2),
        ..source.clone()
    };
    assert_eq!(field(&gqa, &target), "model.attention");
    let normed = GptConfig {
        attention: AttentionConfig::mla(16, LatentLayout::Joint, 0),
        ..source.clone()
    };
    assert_eq!(field(&source, &normed), "model.attention.latent_norm");
    let wider = GptConfig {
        mlp_ratio: 4,
        ..target.clone()
    };
    assert_eq!(field(&source, &wider), "model");
    // The source's own model is a control: taken unchanged.
    assert_eq!(check(&source, &source), Ok(None));
}

/// A tiny MHA+RoPE model (4 heads of 8) and its MLA+RoPE target at full rank, separate
/// latents, unnormed, with a shared rotary key of `rope_dim`.
fn rotary_configs(rope_dim: usize) -> (GptConfig, GptConfig) {
    let (source, target) = configs(32, LatentLayout::Separate);
    let source = GptConfig {
        positions: Positions::Rope(10_000.0),
        ..source
    };
    let AttentionConfig::Mla(mla) = target.attention else {
        unreachable!()
    };
    let target = GptConfig {
        attention: AttentionConfig::Mla(MlaConfig { rope_dim, ..mla }),
        ..source.clone()
    };
    (source, target)
}

/// `model` with each layer's `W_K` (`[32, 4 heads · 8]`) remade so that the rotary pairs
/// `p ∈ pairs` (of 4 per head) hold one direction across heads: columns `p` and `p + 4` of
/// head `j` are `α_jp a_p` and `α_jp b_p`; the other pairs are zero.
fn keys_of_one_direction(model: Gpt, pairs: &[usize], device: &Device) -> Gpt {
    let (d, heads, dh) = (32, 4, 8);
    let mut model = model;
    for layer in 0..2 {
        let draw = |n: usize| -> Vec<f32> {
            Tensor::<1>::random([n], burn::tensor::Distribution::Normal(0.0, 0.3), device)
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        };
        let mut w = vec![0f32; d * heads * dh]; // [d, heads*dh], row-major
        for &p in pairs {
            let (a, b, alpha) = (draw(d), draw(d), draw(heads));
            for j in 0..heads {
                for row in 0..d {
                    w[row * heads * dh + j * dh + p] = alpha[j] * a[row];
                    w[row * heads * dh + j * dh + p + dh / 2] = alpha[j] * b[row];
                }
            }
        }
        let w = Tensor::from_data(TensorData::new(w, [d, heads * dh]), device);
        model = with_weight(model, &format!("blocks.{layer}.attn.Mha.wk.weight"), w);
    }
    model
}

#[test]
fn a_rotary_model_whose_rotated_keys_point_one_way_across_heads_converts_exactly() {
    let device = test_device();
    // rope_dim 4 of d_h 8: the shared key turns the source's pairs 0 and 2.
    let (source_config, target) = rotary_configs(4);
    let source = source_model(&source_config, &device);
    let exact = keys_of_one_direction(source.clone(), &[0, 2], &device);
    let (converted, conversion) = mha_to_mla(&exact, &source_config, &target, &device).unwrap();
    let want = exact.forward(tokens(&device));
    let scale = want.clone().abs().max().into_scalar::<f32>();
    assert!(scale > 1.0, "logits too small: {scale}");
    let diff = max_abs_diff(converted.forward(tokens(&device)), want.clone());
    assert!(diff < 1e-4 * scale, "logits differ by {diff}");
    assert_eq!(conversion.rotary.len(), 2);
    for kept in conversion.rotary.iter().chain(&conversion.energy) {
        assert!((kept - 1.0).abs() < 1e-5, "{conversion:?}");
    }
    assert!(
        conversion
            .method
            .starts_with("shared rotary key of every 2th")
    );
    // It bites: the shared key's pair halves swapped (a rotation the other way) is caught...
    let name = "blocks.0.attn.Mla.w_kr.weight";
    let w_kr = weight(&converted, name, &device); // [32, 4]
    let swapped = Tensor::cat(vec![w_kr.clone().narrow(1, 2, 2), w_kr.narrow(1, 0, 2)], 1);
    let swapped = with_weight(converted.clone(), name, swapped);
    let off = max_abs_diff(swapped.forward(tokens(&device)), want);
    assert!(off > 1e-4 * scale, "swapped halves: only {off} off");
    // ... and keys on the pairs the target cannot turn (1 and 3) lose their rotation: the
    // same construction there is no longer exact, and nothing of it is kept rotated.
    let odd = keys_of_one_direction(source.clone(), &[1, 3], &device);
    let (converted, conversion) = mha_to_mla(&odd, &source_config, &target, &device).unwrap();
    let want = odd.forward(tokens(&device));
    let off = max_abs_diff(converted.forward(tokens(&device)), want.clone());
    let scale = want.abs().max().into_scalar::<f32>();
    assert!(off > 1e-3 * scale, "odd pairs: only {off} off");
    assert!(
        conversion.rotary.iter().all(|&k| k < 1e-6),
        "{conversion:?}"
    );
    // A source with keys in every direction keeps part of them rotated.
    let (_, conversion) = mha_to_mla(&source, &source_config, &target, &device).unwrap();
    assert!(
        conversion.rotary.iter().all(|&k| k > 0.05 && k < 0.9),
        "{conversion:?}"
    );
}
