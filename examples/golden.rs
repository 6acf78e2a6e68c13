//! Writes the golden-test models: for each attention variant a tiny GPT with fixed, large
//! random weights (`<variant>.safetensors`) and its config (`<variant>.json`). Then
//! `tests/golden/reference.py` computes their expected logits from the published equations.
//!
//!     cargo run --release --example golden -- tests/golden [variant ...]
//!     python3 tests/golden/reference.py tests/golden

use std::path::PathBuf;

use burn::module::{Module, ModuleMapper, Param};
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Distribution, Tensor};
use mla_lab::model::attention::{GlaConfig, GtaConfig};
use mla_lab::model::{AttentionConfig, GptConfig, LatentLayout, Positions};

/// Every weight drawn anew: matrices N(0, 0.3), vectors (norm gains, biases) 1 + N(0, 0.2),
/// large enough that attention patterns, scales and rotations move the logits.
struct Randomize;

impl ModuleMapper for Randomize {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let t = param.val();
        let (shape, device) = (t.shape(), t.device());
        let fresh = if D == 1 {
            Tensor::random(shape, Distribution::Normal(1.0, 0.2), &device)
        } else {
            Tensor::random(shape, Distribution::Normal(0.0, 0.3), &device)
        };
        Param::from_tensor(fresh)
    }
}

fn config(positions: Positions, attention: AttentionConfig) -> GptConfig {
    GptConfig {
        vocab_size: 32,
        context: 12,
        d_model: 24,
        n_layers: 2,
        n_heads: 2,
        mlp_ratio: 2,
        positions,
        attention,
        tie_embeddings: true,
    }
}

fn main() {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or("tests/golden".into()));
    std::fs::create_dir_all(&out).unwrap();
    let rope = Positions::Rope(10_000.0);
    let mla = |rank, layout, rope_dim| AttentionConfig::mla(rank, layout, rope_dim);
    let variants = [
        ("mha", config(Positions::Learned, AttentionConfig::mha(2))),
        ("mha_rope", config(rope, AttentionConfig::mha(2))),
        ("gqa_rope", {
            let mut c = config(rope, AttentionConfig::mha(2));
            c.n_heads = 4;
            c
        }),
        (
            "mla",
            config(Positions::Learned, mla(8, LatentLayout::Separate, 0)),
        ),
        ("mla_rope", config(rope, mla(8, LatentLayout::Separate, 4))),
        (
            "mla_rope_joint",
            config(rope, mla(8, LatentLayout::Joint, 4)),
        ),
        ("gla_rope", {
            // Four query heads over two latent heads: two per group.
            let gla = GlaConfig {
                groups: 2,
                rank: 8,
                rope_dim: 4,
            };
            let mut c = config(rope, AttentionConfig::Gla(gla));
            c.n_heads = 4;
            c
        }),
        ("gta_rope", {
            // Four query heads over two tied states of 6: keys of 4 tied dims and 2 rotary.
            let gta = GtaConfig {
                groups: 2,
                rope_dim: 2,
            };
            let mut c = config(rope, AttentionConfig::Gta(gta));
            c.n_heads = 4;
            c
        }),
    ];
    // Only the variants named after the folder, when any are: `golden -- DIR gla_rope`.
    let only: Vec<String> = std::env::args().skip(2).collect();
    let device = mla_lab::backend::cpu_device().expect("a CPU backend");
    for (i, (name, config)) in variants.into_iter().enumerate() {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        device.seed(100 + i as u64);
        let model = config.init(&device).map(&mut Randomize);
        let mut store = SafetensorsStore::from_file(out.join(format!("{name}.safetensors")));
        model.save_into(&mut store).unwrap();
        std::fs::write(
            out.join(format!("{name}.json")),
            serde_json::to_string_pretty(&config).unwrap(),
        )
        .unwrap();
        println!("wrote {name}");
    }
}
