use super::*;

/// A valid small experiment; tests replace one piece of it.
const GOOD: &str = r#"// a comment
(
    name: "t",
    seed: 1,
    model: (
        vocab_size: 4096,
        context: 128,
        d_model: 256,
        n_layers: 2,
        n_heads: 4,
        positions: Rope(10000.0),
        attention: Mla(rank: 128, layout: Separate, rope_dim: 32),
    ),
    data: (
        source: Synthetic(count: 1000, seed: 7),
        tokenizer: Bpe(vocab_size: 4096),
    ),
)
"#;

fn with(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "fixture lacks {from:?}");
    GOOD.replacen(from, to, 1)
}

fn error(text: &str) -> String {
    Experiment::parse(text, "exp.ron")
        .expect_err("should be rejected")
        .to_string()
}

fn assert_mentions(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "message lacks {p:?}:\n{msg}");
    }
}

#[test]
fn good_file_parses_with_defaults() {
    let exp = Experiment::parse(GOOD, "exp.ron").unwrap();
    assert_eq!(exp.model.mlp_ratio, 4);
    assert!(exp.model.tie_embeddings);
    assert_eq!(exp.data.val_fraction, 0.05);
    assert_eq!(exp.train, TrainConfig::default());
    assert!(matches!(
        exp.model.attention,
        crate::model::AttentionConfig::Mla(_)
    ));
}

#[test]
fn a_byte_order_mark_is_skipped() {
    let exp = Experiment::parse(&format!("\u{feff}{GOOD}"), "exp.ron").unwrap();
    assert_eq!(exp, Experiment::parse(GOOD, "exp.ron").unwrap());
}

#[test]
fn a_story_count_past_the_machines_memory_is_refused_in_validation() {
    // 10^12 stories would take 1.8 PiB: no machine has that free.
    let msg = error(&with("count: 1000,", "count: 1000000000000,"));
    assert_mentions(
        &msg,
        &["exp.ron", "data.source.count", "of memory", "at most"],
    );
    let msg = error(&with("count: 1000,", "count: 0,"));
    assert_mentions(&msg, &["data.source.count", "a positive number"]);
}

#[test]
fn differences_name_the_fields_and_both_values() {
    let a = Experiment::parse(&with("", ""), "a.ron").unwrap();
    assert!(a.differences(&a).is_empty());
    let mut b = a.with_training_seed(3);
    b.train.max_steps += 20;
    b.model.attention = crate::model::AttentionConfig::mha(1);
    let diff = a.differences(&b);
    assert_eq!(diff.len(), 3, "{diff:?}");
    assert!(
        diff.contains(&format!(
            "train.max_steps: {} against {}",
            a.train.max_steps, b.train.max_steps
        )),
        "{diff:?}"
    );
    assert!(
        diff.contains(&"train.seed: absent against 3".to_string()),
        "{diff:?}"
    );
    // Bookkeeping makes no other run.
    let mut logged = b.clone();
    logged.train.log_every += 1;
    logged.train.keep_checkpoints += 1;
    assert_eq!(b.run_differences(&logged), Vec::<String>::new());
    assert_eq!(b.differences(&logged).len(), 2);
    assert_eq!(a.run_differences(&logged).len(), 3);
    assert!(
        diff.iter()
            .any(|d| d.starts_with("model.attention: {\"Mla\"")
                && d.ends_with("against {\"Mha\":{\"kv_heads\":1}}")),
        "{diff:?}"
    );
}

#[test]
fn the_training_seed_splits_into_initial_weights_and_window_order() {
    let plain = Experiment::parse(GOOD, "exp.ron").unwrap();
    assert_eq!((plain.init_seed(), plain.order_seed()), (1, 1));
    let seeded = plain.with_training_seed(3);
    assert_eq!((seeded.init_seed(), seeded.order_seed()), (3, 3));
    let split = with(
        "        tokenizer: Bpe(vocab_size: 4096),\n    ),\n",
        "        tokenizer: Bpe(vocab_size: 4096),\n    ),\n    train: (init_seed: 9),\n",
    );
    let split = Experiment::parse(&split, "exp.ron").unwrap();
    // One initialisation, the order from the training seed: `--seeds` varies the order.
    let s2 = split.with_training_seed(2);
    assert_eq!(
        (s2.init_seed(), s2.order_seed(), s2.training_seed()),
        (9, 2, 2)
    );
    assert_eq!(Experiment::parse(&s2.to_ron(), "again.ron").unwrap(), s2);
    assert!(s2.to_ron().contains("init_seed: 9"), "{}", s2.to_ron());
}

#[test]
fn the_training_seed_defaults_to_the_seed_and_round_trips() {
    let plain = Experiment::parse(GOOD, "exp.ron").unwrap();
    assert_eq!(
        (plain.train.seed, plain.training_seed()),
        (None, plain.seed)
    );
    let seeded = with(
        "        tokenizer: Bpe(vocab_size: 4096),\n    ),",
        "        tokenizer: Bpe(vocab_size: 4096),\n    ),\n    train: (seed: 3),",
    );
    let seeded = Experiment::parse(&seeded, "exp.ron").unwrap();
    assert_eq!((seeded.train.seed, seeded.training_seed()), (Some(3), 3));
    assert_eq!(seeded, plain.with_training_seed(3));
    for exp in [plain, seeded] {
        assert_eq!(Experiment::parse(&exp.to_ron(), "back.ron").unwrap(), exp);
    }
}

#[test]
fn the_former_decode_field_parses_and_does_not_tell_experiments_apart() {
    let plain = Experiment::parse(GOOD, "exp.ron").unwrap();
    let old = with("rope_dim: 32)", "rope_dim: 32, decode: Naive)");
    assert_ne!(old, GOOD, "the fixture has an MLA rope_dim to follow");
    let parsed = Experiment::parse(&old, "old.ron").unwrap();
    assert_eq!(parsed, plain);
    assert!(locate(&old, "model.attention.decode").is_some());
    // Anything but a decode path is still an error.
    let msg = error(&with("rope_dim: 32)", "rope_dim: 32, decode: Fast)"));
    assert_mentions(&msg, &["exp.ron:", "Fast"]);
}

#[test]
fn unknown_field_is_rejected_with_position() {
    let msg = error(&with("n_layers: 2,", "n_layers: 2,\n        n_layer: 2,"));
    assert_mentions(&msg, &["exp.ron:10:", "n_layer"]);
}

#[test]
fn syntax_error_names_line_and_column() {
    let msg = error(&with("d_model: 256,", "d_model: 256,,"));
    assert_mentions(&msg, &["exp.ron:8:"]);
}

#[test]
fn wrong_type_names_line() {
    let msg = error(&with("n_heads: 4,", "n_heads: \"four\","));
    assert_mentions(&msg, &["exp.ron:10:"]);
}

#[test]
fn unknown_variant_lists_accepted_ones() {
    let msg = error(&with("layout: Separate", "layout: Split"));
    assert_mentions(&msg, &["exp.ron:12:", "Split", "Joint", "Separate"]);
}

#[test]
fn d_model_not_divisible_by_heads() {
    let msg = error(&with("n_heads: 4,", "n_heads: 5,"));
    assert_mentions(
        &msg,
        &[
            "exp.ron",
            "8:9: model.d_model",
            "256 is not divisible by n_heads = 5",
            "a multiple of n_heads",
        ],
    );
}

#[test]
fn rank_above_d_model() {
    let msg = error(&with("rank: 128", "rank: 300"));
    assert_mentions(&msg, &["12:24: model.attention.rank", "300", "1..=256"]);
}

#[test]
fn odd_rope_dim() {
    let msg = error(&with("rope_dim: 32", "rope_dim: 31"));
    assert_mentions(&msg, &["model.attention.rope_dim", "31 is odd", "even"]);
}

#[test]
fn rope_dim_above_head_dim() {
    let msg = error(&with("rope_dim: 32", "rope_dim: 80"));
    assert_mentions(
        &msg,
        &[
            "model.attention.rope_dim",
            "exceeds the head dimension 64",
            "0..=64",
        ],
    );
}

#[test]
fn kv_heads_must_divide_heads() {
    let msg = error(&with(
        "attention: Mla(rank: 128, layout: Separate, rope_dim: 32)",
        "attention: Mha(kv_heads: 3)",
    ));
    assert_mentions(
        &msg,
        &[
            "model.attention.kv_heads",
            "3 does not divide n_heads = 4",
            "a divisor of n_heads",
        ],
    );
}

#[test]
fn gla_is_written_like_the_other_variants_and_its_groups_must_divide_heads() {
    let gla = with(
        "attention: Mla(rank: 128, layout: Separate, rope_dim: 32)",
        "attention: Gla(groups: 2, rank: 64, rope_dim: 16)",
    );
    let exp = Experiment::parse(&gla, "exp.ron").unwrap();
    let ron = exp.to_ron();
    assert!(
        ron.contains("attention: Gla(") && !ron.contains("Gla(("),
        "{ron}"
    );
    assert_eq!(Experiment::parse(&ron, "back.ron").unwrap(), exp);
    let msg = error(&gla.replace("groups: 2", "groups: 3"));
    assert_mentions(
        &msg,
        &[
            "model.attention.groups",
            "3 does not divide n_heads = 4",
            "a divisor of n_heads",
        ],
    );
}

#[test]
fn learned_positions_with_decoupled_rope() {
    let msg = error(&with("positions: Rope(10000.0)", "positions: Learned"));
    assert_mentions(
        &msg,
        &[
            "11:9: model.positions",
            "Learned positions with MLA rope_dim = 32",
            "Rope(theta)",
        ],
    );
}

#[test]
fn rope_positions_with_mla_without_rope() {
    let msg = error(&with("rope_dim: 32", "rope_dim: 0"));
    assert_mentions(
        &msg,
        &["model.positions", "rope_dim = 0", "accepted: Learned"],
    );
}

#[test]
fn vocab_must_match_tokenizer() {
    let msg = error(&with("tokenizer: Bpe(vocab_size: 4096)", "tokenizer: Gpt2"));
    assert_mentions(
        &msg,
        &[
            "model.vocab_size",
            "4096 does not match the tokenizer's 50257 tokens",
        ],
    );
}

#[test]
fn several_problems_are_all_reported() {
    let msg = error(&with(
        "rank: 128, layout: Separate, rope_dim: 32",
        "rank: 0, layout: Separate, rope_dim: 33",
    ));
    assert_mentions(&msg, &["model.attention.rank", "33 is odd"]);
}

#[test]
fn bad_training_values() {
    let text = with(
        "    data: (",
        "    train: (lr: -1.0, warmup_steps: 5000, max_steps: 10, beta2: 1.5),\n    data: (",
    );
    let msg = error(&text);
    assert_mentions(
        &msg,
        &[
            "train.lr",
            "train.warmup_steps",
            "5000 exceeds max_steps = 10",
            "train.beta2",
        ],
    );
}

#[test]
fn missing_file_names_it() {
    let msg = Experiment::load("no/such/exp.ron").unwrap_err().to_string();
    assert_mentions(&msg, &["no/such/exp.ron", "cannot read"]);
}

#[test]
fn locate_skips_comments_and_prefixes() {
    let text = "// rank: in a comment\n(model: (my_rank: 1, attention: Mla(\n  rank: 5)))";
    assert_eq!(locate(text, "model.attention.rank"), Some((3, 3)));
    assert_eq!(locate(text, "model.missing"), None);
}

#[test]
fn a_convert_from_that_is_a_path_is_refused_as_a_name() {
    let msg = error(&with(
        "seed: 1,",
        "seed: 1,\n    convert_from: Some(\"../OUT/evil\"),",
    ));
    assert_mentions(
        &msg,
        &["exp.ron", "convert_from", "../OUT/evil", "not a path"],
    );
}
