//! The formulas against what they count: cache bytes held, KV elements, parameters (by hand
//! and in the built model), and the fields each variant refuses.

use super::*;

#[test]
fn cache_holds_exactly_the_formula_bytes() {
    let device = test_device();
    for (name, config) in variants() {
        let model = init(&config, &device);
        let per_token = config.kv_bytes_per_token(DType::F32);
        let batch = 3;
        let mut cache = model.new_cache(batch, DType::F32, &device);
        assert_eq!(
            cache.bytes_per_token(),
            per_token,
            "{name}: bytes per token"
        );
        assert_eq!(
            cache.bytes_allocated(),
            per_token * batch * CONTEXT,
            "{name}: preallocated bytes"
        );
        model.forward_cached(tokens(batch, 5, 2, &device), &mut cache);
        assert_eq!(
            cache.bytes_used(),
            per_token * batch * 5,
            "{name}: after 5 tokens"
        );
        for _ in 5..CONTEXT {
            model.forward_cached(tokens(batch, 1, 4, &device), &mut cache);
        }
        assert_eq!(cache.len(), CONTEXT);
        assert_eq!(
            cache.bytes_used(),
            per_token * batch * CONTEXT,
            "{name}: filled cache"
        );
        assert_eq!(
            cache.bytes_used(),
            cache.bytes_allocated(),
            "{name}: filled == allocated"
        );
    }
}

#[test]
fn kv_formula_counts_latents_not_keys_and_values() {
    // Hand-computed per-layer elements for the tiny variants (d_head = 8, 4 heads).
    let want = [
        ("mha", 2 * 4 * 8),
        ("mha_rope", 2 * 4 * 8),
        ("gqa_rope", 2 * 2 * 8),
        ("mqa", 2 * 8),
        ("mla_sep", 2 * 16),
        ("mla_joint", 12),
        ("mla_rope_sep", 2 * 8 + 4),
        ("mla_rope_joint", 16 + 8),
        ("gla2_rope", 2 * 8 + 4),
        ("gla4", 4 * 6),
        ("gta2_rope", 2 * 8 + 4),
        ("gta1", 8),
    ];
    let variants = variants();
    // A variant added to the zoo must bring its hand count here.
    assert_eq!(variants.len(), want.len(), "one hand count per variant");
    for (name, config) in variants {
        let (_, elems) = *want
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("{name}: no hand count"));
        assert_eq!(config.kv_elems_per_token_per_layer(), elems, "{name}");
        assert_eq!(
            config.kv_bytes_per_token(DType::F32),
            2 * elems * 4,
            "{name}: 2 layers of f32"
        );
        assert_eq!(
            config.kv_bytes_per_token(DType::BF16),
            2 * elems * 2,
            "{name}: 2 layers of bf16"
        );
    }
}

#[test]
fn param_count_matches_hand_count_for_mha() {
    let device = test_device();
    let (d, v, c, l, hidden) = (32, VOCAB, CONTEXT, 2, 64);
    let ln = 2 * d;
    let block = ln + 4 * d * d + ln + (d * hidden + hidden) + (hidden * d + d);
    let embeddings = v * d + c * d;
    let config = tiny(Positions::Learned, AttentionConfig::mha(4));
    let model = config.init(&device);
    assert_eq!(model.param_count(), embeddings + l * block + ln);
    assert_eq!(model.non_embedding_param_count(), l * block + ln);
    // Untying adds a head of vocab × d (no bias) that is not counted as non-embedding.
    let untied = GptConfig {
        tie_embeddings: false,
        ..config
    }
    .init(&device);
    assert_eq!(untied.param_count(), embeddings + l * block + ln + d * v);
    assert_eq!(untied.non_embedding_param_count(), l * block + ln);
}

#[test]
fn the_config_counts_the_parameters_the_built_model_has() {
    let device = test_device();
    for (name, config) in variants() {
        for tie_embeddings in [true, false] {
            let config = GptConfig {
                tie_embeddings,
                ..config.clone()
            };
            let model = config.init(&device);
            assert_eq!(config.param_count(), model.param_count(), "{name}");
            assert_eq!(
                config.non_embedding_param_count(),
                model.non_embedding_param_count(),
                "{name}"
            );
        }
    }
}

#[test]
fn mla_param_count_matches_hand_count() {
    let device = test_device();
    // d = 32, 4 heads of 8, rank 8 separate, rope 4.
    let (d, h, dh, r, dr) = (32, 4, 8, 8, 4);
    let attn = d * h * dh + d * h * dr + d * 2 * r + r + r + 2 * r * h * dh + d * dr + h * dh * d;
    let config = tiny(
        Positions::Rope(10_000.0),
        mla(r, LatentLayout::Separate, dr),
    );
    let model = config.init(&device);
    let mha = tiny(Positions::Rope(10_000.0), AttentionConfig::mha(4)).init(&device);
    let mha_attn = 4 * d * d;
    assert_eq!(
        model.param_count() + 2 * mha_attn,
        mha.param_count() + 2 * attn
    );
}

#[test]
fn gla_param_count_matches_hand_count_and_one_group_costs_what_joint_mla_costs() {
    // d = 32, 4 heads of 8; 2 latent heads of rank 8 and one rotary key of 4.
    let (d, h, dh, g, r, dr) = (32, 4, 8, 2, 8, 4);
    let attn = d * h * dh // W^Q
        + d * h * dr // W^QR
        + d * g * r + g * r // W^DKV and one norm per latent head
        + 2 * r * h * dh // W^UK, W^UV
        + d * dr // W^KR
        + h * dh * d; // W^O
    let rope = Positions::Rope(10_000.0);
    let config = tiny(rope, gla(g, r, dr));
    assert_eq!(config.attention.param_count(&config.attention_dims()), attn);
    assert_eq!(config.kv_elems_per_token_per_layer(), g * r + dr);
    // One latent head is MLA with a joint latent: the same weights, cache and activations.
    let one = tiny(rope, gla(1, 16, 8));
    let joint = tiny(rope, mla(16, LatentLayout::Joint, 8));
    let dims = one.attention_dims();
    assert_eq!(
        one.attention.param_count(&dims),
        joint.attention.param_count(&dims)
    );
    assert_eq!(
        one.kv_elems_per_token_per_layer(),
        joint.kv_elems_per_token_per_layer()
    );
    assert_eq!(
        one.attention.activations_per_token(&dims, CONTEXT),
        joint.attention.activations_per_token(&dims, CONTEXT)
    );
}

#[test]
fn gta_param_count_matches_hand_count_and_caches_half_of_gqa_plus_the_rotary_key() {
    // d = 32, 4 heads of 8; 2 groups, a rotary key of 4.
    let (d, h, dh, g, dr) = (32, 4, 8, 2, 4);
    let attn = d * h * dh // W^Q
        + d * g * dh // W^KV: one tied state per group
        + d * dr // W^KR
        + h * dh * d; // W^O
    let rope = Positions::Rope(10_000.0);
    let config = tiny(rope, gta(g, dr));
    assert_eq!(config.attention.param_count(&config.attention_dims()), attn);
    let gqa = tiny(rope, AttentionConfig::mha(g));
    assert_eq!(
        2 * (config.kv_elems_per_token_per_layer() - dr),
        gqa.kv_elems_per_token_per_layer()
    );
}

#[test]
fn gta_refuses_groups_that_do_not_divide_the_heads_and_a_key_with_no_tied_part() {
    let rope = Positions::Rope(10_000.0);
    let fields = |c: GptConfig| -> Vec<String> {
        c.validate()
            .into_iter()
            .map(|e| e.field.to_string())
            .collect()
    };
    assert_eq!(fields(tiny(rope, gta(3, 4))), ["attention.groups"]);
    assert_eq!(fields(tiny(rope, gta(2, 8))), ["attention.rope_dim"]);
    assert_eq!(fields(tiny(rope, gta(2, 0))), ["positions"]);
    assert_eq!(fields(tiny(Positions::Learned, gta(2, 4))), ["positions"]);
    assert!(fields(tiny(rope, gta(4, 6))).is_empty());
}
