//! The model zoo's equivalence tests, on tiny configs (CPU, seconds):
//! full forward == cached decode, naive MLA == absorbed MLA, causality, and bytes held by the
//! cache == the model's formula.

use burn::tensor::{DType, Device, Int, Tensor, TensorData};

use super::attention::LayerCache;
use super::attention::{AttentionConfig, GlaConfig, GtaConfig, LatentLayout, MlaDecode};
use super::cache::KvCache;
use super::gpt::{Gpt, GptConfig, Positions};
use super::slot::CacheSlot;
use crate::backend::test_device;

mod formulas;

const VOCAB: usize = 61;
const CONTEXT: usize = 16;

fn tiny(positions: Positions, attention: AttentionConfig) -> GptConfig {
    GptConfig {
        vocab_size: VOCAB,
        context: CONTEXT,
        d_model: 32,
        n_layers: 2,
        n_heads: 4,
        mlp_ratio: 2,
        positions,
        attention,
        tie_embeddings: true,
    }
}

fn mla(rank: usize, layout: LatentLayout, rope_dim: usize) -> AttentionConfig {
    AttentionConfig::mla(rank, layout, rope_dim)
}

fn gla(groups: usize, rank: usize, rope_dim: usize) -> AttentionConfig {
    AttentionConfig::Gla(GlaConfig {
        groups,
        rank,
        rope_dim,
    })
}

fn gta(groups: usize, rope_dim: usize) -> AttentionConfig {
    AttentionConfig::Gta(GtaConfig { groups, rope_dim })
}

/// Every variant the zoo has, each valid.
pub(crate) fn variants() -> Vec<(&'static str, GptConfig)> {
    let rope = Positions::Rope(10_000.0);
    let v = vec![
        ("mha", tiny(Positions::Learned, AttentionConfig::mha(4))),
        ("mha_rope", tiny(rope, AttentionConfig::mha(4))),
        ("gqa_rope", tiny(rope, AttentionConfig::mha(2))),
        ("mqa", tiny(Positions::Learned, AttentionConfig::mha(1))),
        (
            "mla_sep",
            tiny(Positions::Learned, mla(16, LatentLayout::Separate, 0)),
        ),
        (
            "mla_joint",
            tiny(Positions::Learned, mla(12, LatentLayout::Joint, 0)),
        ),
        (
            "mla_rope_sep",
            tiny(rope, mla(8, LatentLayout::Separate, 4)),
        ),
        (
            "mla_rope_joint",
            tiny(rope, mla(16, LatentLayout::Joint, 8)),
        ),
        ("gla2_rope", tiny(rope, gla(2, 8, 4))),
        ("gla4", tiny(Positions::Learned, gla(4, 6, 0))),
        ("gta2_rope", tiny(rope, gta(2, 4))),
        ("gta1", tiny(Positions::Learned, gta(1, 0))),
    ];
    for (name, c) in &v {
        assert!(c.validate().is_empty(), "{name}: {:?}", c.validate());
    }
    v
}

/// The MLA rows of [`variants`].
fn mla_variants() -> impl Iterator<Item = (&'static str, GptConfig)> {
    variants()
        .into_iter()
        .filter(|(_, c)| !c.attention.decode_paths().is_empty())
}

fn tokens(batch: usize, seq: usize, seed: u64, device: &Device) -> Tensor<2, Int> {
    // A small LCG keeps the tokens independent of any backend RNG.
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let ids: Vec<i64> = (0..batch * seq)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) % VOCAB as u64) as i64
        })
        .collect();
    Tensor::from_data(TensorData::new(ids, [batch, seq]), device)
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// The first `len` positions of `slot` hold N(0, 1)-like values, the rest zeros.
fn assert_filled<const D: usize>(slot: &CacheSlot<D>, len: usize, name: &str) {
    let all = slot.read(slot.capacity());
    let values = |t: Tensor<D>| t.into_data().try_to_vec::<f32>().unwrap();
    let kept = values(all.clone().narrow(D - 2, 0, len));
    let rest = values(all.narrow(D - 2, len, slot.capacity() - len));
    let var = kept.iter().map(|x| x * x).sum::<f32>() / kept.len() as f32;
    assert!((0.6..1.4).contains(&var), "{name}: variance {var}");
    assert!(rest.iter().all(|&x| x == 0.0), "{name}: past the fill");
}

/// [`crate::compare::max_abs_diff`] of two tensors of one shape: fails on NaN or infinity.
pub(crate) fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    assert_eq!(a.dims(), b.dims());
    crate::compare::max_abs_diff(&values(a), &values(b), "tensors")
}

fn init(config: &GptConfig, device: &Device) -> Gpt {
    device.seed(7);
    config.init(device)
}

/// Runs `tokens` through the cache in chunks of the given sizes and stacks the logits.
fn cached_logits(
    model: &Gpt,
    tokens: &Tensor<2, Int>,
    chunks: &[usize],
    device: &Device,
) -> Tensor<3> {
    let [batch, seq] = tokens.dims();
    assert_eq!(chunks.iter().sum::<usize>(), seq);
    let mut cache = model.new_cache(batch, DType::F32, device);
    let mut start = 0;
    let mut out = Vec::new();
    for &n in chunks {
        out.push(model.forward_cached(tokens.clone().narrow(1, start, n), &mut cache));
        start += n;
        assert_eq!(cache.len(), start);
    }
    Tensor::cat(out, 1)
}

#[test]
fn logits_have_the_right_shape() {
    let device = test_device();
    for (name, config) in variants() {
        let model = init(&config, &device);
        let logits = model.forward(tokens(3, 9, 1, &device));
        assert_eq!(logits.dims(), [3, 9, VOCAB], "{name}");
    }
}

#[test]
fn later_tokens_do_not_change_earlier_logits() {
    let device = test_device();
    for (name, config) in variants() {
        let model = init(&config, &device);
        let a = tokens(2, 12, 3, &device);
        // Change the token at position 7 only.
        let b = a.clone().slice_assign(
            [0..2, 7..8],
            a.clone()
                .narrow(1, 7, 1)
                .add_scalar(1)
                .remainder_scalar(VOCAB as i64),
        );
        let (la, lb) = (model.forward(a), model.forward(b));
        let before = max_abs_diff(la.clone().narrow(1, 0, 7), lb.clone().narrow(1, 0, 7));
        let at = max_abs_diff(la.narrow(1, 7, 1), lb.narrow(1, 7, 1));
        assert!(before == 0.0, "{name}: earlier logits moved by {before}");
        assert!(
            at > 1e-4,
            "{name}: the changed token did not change its own logits ({at})"
        );
    }
}

#[test]
fn cached_decode_matches_full_forward_for_every_variant() {
    let device = test_device();
    for (name, config) in variants() {
        for decode in [MlaDecode::Naive, MlaDecode::Absorbed] {
            let model = init(&config, &device).with_mla_decode(decode);
            let toks = tokens(2, CONTEXT, 5, &device);
            let full = model.forward(toks.clone());
            // Token by token from an empty cache, up to the full context.
            let one_by_one = cached_logits(&model, &toks, &[1; CONTEXT], &device);
            let diff = max_abs_diff(full.clone(), one_by_one);
            assert!(
                diff <= 1e-4,
                "{name} {decode:?}: token-by-token differs by {diff}"
            );
            // A prompt prefilled at once, then chunks (exercises the offset causal mask).
            let chunked = cached_logits(&model, &toks, &[5, 1, 3, 1, 6], &device);
            let diff = max_abs_diff(full, chunked);
            assert!(
                diff <= 1e-4,
                "{name} {decode:?}: prefill + chunks differs by {diff}"
            );
        }
    }
}

#[test]
fn mla_naive_and_absorbed_paths_agree() {
    let device = test_device();
    for (name, config) in mla_variants() {
        let model = init(&config, &device);
        let toks = tokens(2, 11, 9, &device);
        let naive = cached_logits(
            &model.clone().with_mla_decode(MlaDecode::Naive),
            &toks,
            &[6, 1, 1, 3],
            &device,
        );
        let absorbed = cached_logits(
            &model.with_mla_decode(MlaDecode::Absorbed),
            &toks,
            &[6, 1, 1, 3],
            &device,
        );
        let diff = max_abs_diff(naive, absorbed);
        assert!(diff <= 1e-4, "{name}: naive vs absorbed differ by {diff}");
    }
}

/// A cache made for the naive path carries no per-head absorbed weights; the absorbed path
/// makes them on its first step and must still agree with the full forward.
#[test]
fn absorbed_decode_through_a_cache_made_for_naive_matches_the_full_forward() {
    let device = test_device();
    for (name, config) in mla_variants() {
        let model = init(&config, &device);
        let toks = tokens(2, 7, 5, &device);
        let full = model.forward(toks.clone());
        let naive = model.clone().with_mla_decode(MlaDecode::Naive);
        let mut cache = naive.new_cache(2, DType::F32, &device);
        let absorbed = model.with_mla_decode(MlaDecode::Absorbed);
        let out: Vec<_> = (0..7)
            .map(|i| absorbed.forward_cached(toks.clone().narrow(1, i, 1), &mut cache))
            .collect();
        let diff = max_abs_diff(full, Tensor::cat(out, 1));
        assert!(diff <= 1e-4, "{name}: differs by {diff}");
    }
}

/// `fill_random` stands in for a prefill in the decode bench: it fills the asked positions of
/// every buffer with N(0, 1) values and leaves the rest empty, and both MLA paths decode over
/// it alike (the equivalence holds for any cache, not only one a prefill wrote).
#[test]
fn a_randomly_filled_cache_holds_its_positions_and_both_mla_paths_agree_over_it() {
    let device = test_device();
    let filled = |model: &Gpt, len| {
        let mut cache = model.new_cache(2, DType::F32, &device);
        cache.fill_random(len, 11);
        cache
    };
    for (name, config) in variants() {
        let model = init(&config, &device);
        let len = CONTEXT - 2;
        let mut cache = filled(&model, len);
        assert_eq!(cache.len(), len);
        let per_token = config.kv_bytes_per_token(DType::F32);
        assert_eq!(cache.bytes_used(), per_token * 2 * len, "{name}");
        for layer in &cache.layers {
            match layer {
                LayerCache::Mha(c) => [&c.k, &c.v].map(|s| assert_filled(s, len, name)),
                LayerCache::Gta(c) => {
                    assert_filled(&c.s, len, name);
                    c.k_r.iter().for_each(|s| assert_filled(s, len, name));
                    [(); 2]
                }
                LayerCache::Mla(c) | LayerCache::Gla(c) => {
                    c.latent_slots().for_each(|s| assert_filled(s, len, name));
                    c.k_r.iter().for_each(|s| assert_filled(s, len, name));
                    [(); 2]
                }
            };
        }
        let toks = tokens(2, 2, 3, &device);
        let step = |model: &Gpt, cache: &mut KvCache| {
            let out: Vec<_> = (0..2)
                .map(|i| model.forward_cached(toks.clone().narrow(1, i, 1), cache))
                .collect();
            Tensor::cat(out, 1)
        };
        if !config.attention.decode_paths().is_empty() {
            let naive = model.clone().with_mla_decode(MlaDecode::Naive);
            let absorbed = model.clone().with_mla_decode(MlaDecode::Absorbed);
            let a = step(&naive, &mut filled(&naive, len));
            let b = step(&absorbed, &mut filled(&absorbed, len));
            let diff = max_abs_diff(a, b);
            assert!(diff <= 1e-4, "{name}: naive vs absorbed differ by {diff}");
        } else {
            step(&model, &mut cache);
            assert_eq!(cache.len(), len + 2);
        }
    }
}

#[test]
fn random_inputs_flow_through_rope_and_norms_without_nan() {
    let device = test_device();
    for (name, config) in variants() {
        let model = init(&config, &device);
        let logits = model.forward(tokens(1, CONTEXT, 11, &device));
        let v = values(logits);
        assert!(v.iter().all(|x| x.is_finite()), "{name}: non-finite logits");
    }
}

#[test]
fn every_variant_learns_a_fixed_batch() {
    use burn::optim::{AdamWConfig, GradientsParams};
    let device = test_device().autodiff();
    let toks = tokens(2, CONTEXT + 1, 13, &device);
    let inputs = toks.clone().narrow(1, 0, CONTEXT);
    let targets = toks.narrow(1, 1, CONTEXT);
    for (name, config) in variants() {
        device.seed(3);
        let mut model = config.init(&device);
        let mut optim = AdamWConfig::new().init();
        let first = model
            .loss(inputs.clone(), targets.clone())
            .into_scalar::<f32>();
        // A uniform guess over the vocabulary costs ln(vocab) nats.
        assert!(
            (first - (VOCAB as f32).ln()).abs() < 1.0,
            "{name}: initial loss {first}"
        );
        let mut last = first;
        for _ in 0..40 {
            let loss = model.loss(inputs.clone(), targets.clone());
            last = loss.clone().into_scalar::<f32>();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(1e-2, model, grads);
        }
        assert!(last < 0.5 * first, "{name}: loss {first} -> {last}");
    }
}

#[test]
fn weights_start_as_gpt2_initialises_them() {
    use burn::store::ModuleSnapshot;
    let device = test_device();
    device.seed(3);
    let n_layers = 4;
    let config = GptConfig {
        vocab_size: 512,
        context: 64,
        d_model: 128,
        n_layers,
        n_heads: 4,
        mlp_ratio: 4,
        positions: Positions::Learned,
        attention: mla(64, LatentLayout::Separate, 0),
        tie_embeddings: true,
    };
    let model = config.init(&device);
    let residual = 0.02 / (2.0 * n_layers as f64).sqrt();
    let mut seen = 0;
    for t in model.collect(None, None, false) {
        let bytes = t.to_bytes().unwrap();
        let xs: Vec<f64> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64)
            .collect();
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        let name = t.name.as_str();
        let want = if name.ends_with(".bias") || name.ends_with(".beta") {
            Some((0.0, 0.0))
        } else if name.ends_with(".gamma") {
            Some((1.0, 0.0))
        } else if name.ends_with("wo.weight") || name.ends_with("proj.weight") {
            Some((0.0, residual))
        } else if name.ends_with(".weight") {
            Some((0.0, 0.02))
        } else {
            None
        };
        let (m, s) = want.unwrap_or_else(|| panic!("unexpected parameter {name}"));
        assert!((mean - m).abs() < 0.1 * s.max(1e-3), "{name}: mean {mean}");
        assert!((sd - s).abs() <= 0.1 * s, "{name}: sd {sd}, want {s}");
        seen += 1;
    }
    // wte, wpe, ln_f (2), and per block: ln_1, ln_2 (2 each), fc, proj (2 each), and MLA's
    // w_q, w_dkv, kv_norm, v_norm, w_uk, w_uv, wo.
    assert_eq!(seen, 4 + n_layers * (4 + 4 + 7));
}

/// Every parameter's gradient in `grads`, flattened, in the module's order.
fn param_grads(model: &Gpt, grads: &burn::tensor::Gradients) -> Vec<Vec<f32>> {
    use burn::module::{Module, ModuleVisitor, Param};
    struct Collect<'a>(&'a burn::tensor::Gradients, Vec<Vec<f32>>);
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let grad = param
                .val()
                .grad(self.0)
                .expect("every parameter has a gradient");
            self.1.push(grad.into_data().try_to_vec::<f32>().unwrap());
        }
    }
    let mut collect = Collect(grads, Vec::new());
    model.visit(&mut collect);
    collect.1
}

#[test]
fn chunked_loss_matches_the_whole_logits_loss_and_its_gradients() {
    let device = test_device().autodiff();
    let (batch, seq) = (3, CONTEXT);
    let toks = tokens(batch, seq + 1, 21, &device);
    let inputs = toks.clone().narrow(1, 0, seq);
    let targets = toks.narrow(1, 1, seq);
    let tied = tiny(Positions::Rope(10_000.0), mla(8, LatentLayout::Separate, 4));
    let untied = GptConfig {
        tie_embeddings: false,
        ..tiny(Positions::Learned, AttentionConfig::mha(4))
    };
    for (name, config) in [("tied", tied), ("untied", untied)] {
        let model = init(&config, &device);
        let whole = Gpt::cross_entropy(model.forward(inputs.clone()), targets.clone());
        let want = whole.clone().into_scalar::<f32>();
        let want_grads = param_grads(&model, &whole.backward());
        // 48 rows: chunks that divide them, one that does not, and one row at a time.
        for chunk in [16, 7, 1] {
            let loss = model.head_loss(
                model.hidden(inputs.clone(), None, 0),
                targets.clone(),
                chunk,
            );
            let got = loss.clone().into_scalar::<f32>();
            assert!(
                (got - want).abs() < 1e-5,
                "{name}, chunk {chunk}: loss {got} vs {want}"
            );
            let got_grads = param_grads(&model, &loss.backward());
            assert_eq!(got_grads.len(), want_grads.len());
            for (i, (g, w)) in got_grads.iter().zip(&want_grads).enumerate() {
                let diff = crate::compare::max_abs_diff(g, w, &format!("{name}: parameter {i}"));
                assert!(
                    diff < 1e-5,
                    "{name}, chunk {chunk}: parameter {i} off by {diff}"
                );
            }
        }
        // Without autodiff (validation) the loss alone, the same.
        let plain = burn::module::Module::valid(&model);
        let got = plain
            .head_loss(
                plain.hidden(inputs.clone().without_autodiff(), None, 0),
                targets.clone().without_autodiff(),
                7,
            )
            .into_scalar::<f32>();
        assert!(
            (got - want).abs() < 1e-5,
            "{name}: validation loss {got} vs {want}"
        );
    }
}

/// The equivalence tests' comparison fails on a planted NaN in a model's output.
#[test]
#[should_panic(expected = "index 1 is NaN")]
fn a_planted_nan_fails_the_equivalence_comparison() {
    let device = crate::backend::test_device();
    let a = Tensor::<1>::from_floats([1.0, f32::NAN, 3.0], &device);
    let b = Tensor::<1>::from_floats([1.0, 2.0, 3.5], &device);
    max_abs_diff(a, b);
}
