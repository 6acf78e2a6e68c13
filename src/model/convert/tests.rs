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
    assert_eq!(field(&rotary, &target), "model.positions");
    let gqa = GptConfig {
        attention: AttentionConfig::mha(2),
        ..source.clone()
    };
    assert_eq!(field(&gqa, &target), "model.attention");
    let normed = GptConfig {
        attention: AttentionConfig::mla(16, LatentLayout::Joint, 0),
        ..source.clone()
    };
    assert_eq!(field(&source, &normed), "model.attention");
    let wider = GptConfig {
        mlp_ratio: 4,
        ..target.clone()
    };
    assert_eq!(field(&source, &wider), "model");
}
