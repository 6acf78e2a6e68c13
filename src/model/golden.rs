//! Golden tests: the model against a reference it did not write. `tests/golden/` holds, for each
//! attention variant, a tiny GPT with fixed large random weights (written by `cargo run
//! --example golden`) and the logits `tests/golden/reference.py` computes for it from the
//! published equations in NumPy (float64). The equivalence tests show the model agrees with
//! itself; these catch a mistake made the same way on every path: a softmax scale, the K/V
//! latent order, the RoPE pair convention, the GELU.

use std::path::PathBuf;

use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use serde::Deserialize;

use super::{Gpt, GptConfig, MlaDecode};

/// Largest |logit − reference| allowed: float32 against float64 over two layers, on logits of
/// magnitude up to ~7. The models agree to about 2e-6; the mutations named above move the
/// logits by 2e-4 (tanh-GELU) to 0.1.
const TOLERANCE: f32 = 2e-5;

/// The reference's logits for a batch of different token sequences.
#[derive(Deserialize)]
struct Expected {
    /// `[batch][seq]`
    tokens: Vec<Vec<u32>>,
    /// `[batch][seq][vocab]`
    logits: Vec<Vec<Vec<f32>>>,
}

fn golden_dir() -> PathBuf {
    crate::files::source("tests/golden")
}

fn load(name: &str, device: &Device) -> (Gpt, Expected) {
    let dir = golden_dir();
    let read = |f: String| std::fs::read_to_string(dir.join(&f)).expect(&f);
    let config: GptConfig = serde_json::from_str(&read(format!("{name}.json"))).unwrap();
    let expected: Expected = serde_json::from_str(&read(format!("{name}.expected.json"))).unwrap();
    let mut model = config.init(device);
    let mut store = SafetensorsStore::from_file(dir.join(format!("{name}.safetensors")));
    let applied = model.load_from(&mut store).unwrap();
    assert!(
        applied.missing.is_empty() && applied.unused.is_empty() && applied.errors.is_empty(),
        "{name}: {applied:?}"
    );
    (model, expected)
}

fn max_diff(logits: Tensor<3>, expected: &Expected) -> f32 {
    let got = logits.into_data().try_to_vec::<f32>().unwrap();
    let want: Vec<f32> = expected
        .logits
        .iter()
        .flatten()
        .flatten()
        .copied()
        .collect();
    crate::compare::max_abs_diff(&got, &want, "logits against the reference")
}

/// The golden comparison fails on a model that outputs NaN where the reference has a number.
#[test]
#[should_panic(expected = "logits against the reference: index 0 is NaN")]
fn a_planted_nan_in_the_logits_fails_the_golden_comparison() {
    let device = crate::backend::test_device();
    let (_, expected) = load("mha", &device);
    let dims = [
        expected.logits.len(),
        expected.logits[0].len(),
        expected.logits[0][0].len(),
    ];
    let nan = Tensor::<3>::full(dims, f32::NAN, &device);
    max_diff(nan, &expected);
}

/// Every golden variant: each needs its `<name>.json`, `.safetensors` and `.expected.json`.
const NAMES: [&str; 8] = [
    "mha",
    "mha_rope",
    "gqa_rope",
    "mla",
    "mla_rope",
    "mla_rope_joint",
    "gla_rope",
    "gta_rope",
];

#[test]
fn every_variant_matches_the_published_equations() {
    let device = crate::backend::test_device();
    for name in NAMES {
        let (model, expected) = load(name, &device);
        let batch = expected.tokens.len();
        let n = expected.tokens[0].len();
        // The rows differ, so a model that mixes the rows of a batch (a swap, a broadcast of
        // row 0) cannot match the reference, which runs each row alone.
        assert!(batch >= 2, "{name}: a batch of {batch}");
        let row = |r: &Vec<Vec<f32>>| r.iter().flatten().copied().collect::<Vec<f32>>();
        let (a, b) = (row(&expected.logits[0]), row(&expected.logits[1]));
        assert!(crate::compare::max_abs_diff(&a, &b, name) > 100.0 * TOLERANCE);
        let ids: Vec<i64> = expected
            .tokens
            .iter()
            .flatten()
            .map(|&t| t as i64)
            .collect();
        let tokens = Tensor::<2, Int>::from_data(TensorData::new(ids, [batch, n]), &device);
        let full = max_diff(model.forward(tokens.clone()), &expected);
        assert!(full < TOLERANCE, "{name}: full forward off by {full}");
        // Token by token through the cache, on each decode path.
        for decode in [MlaDecode::Naive, MlaDecode::Absorbed] {
            let model = model.clone().with_mla_decode(decode);
            let mut cache = model.new_cache(batch, DType::F32, &device);
            let steps: Vec<Tensor<3>> = (0..n)
                .map(|i| model.forward_cached(tokens.clone().narrow(1, i, 1), &mut cache))
                .collect();
            let cached = max_diff(Tensor::cat(steps, 1), &expected);
            assert!(
                cached < TOLERANCE,
                "{name} {decode:?}: cached decode off by {cached}"
            );
        }
    }
}

#[test]
fn every_fixture_in_the_folder_is_checked() {
    let mut found: Vec<String> = std::fs::read_dir(golden_dir())
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            let stem = name.strip_suffix(".json")?;
            (!stem.ends_with(".expected")).then(|| stem.to_string())
        })
        .collect();
    found.sort();
    let mut names = NAMES.map(String::from).to_vec();
    names.sort();
    assert_eq!(found, names);
}
