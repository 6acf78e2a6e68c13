use super::*;
use crate::model::tests::variants;

/// Every variant of the model zoo with random weights, as bench subjects.
pub(crate) fn zoo(device: &Device) -> Vec<Subject> {
    variants()
        .into_iter()
        .map(|(name, config)| random_subject(name, config, device))
        .collect()
}

fn random_subject(name: &str, config: GptConfig, device: &Device) -> Subject {
    Subject {
        name: name.into(),
        run: None,
        model: config.init(device),
        config,
        weights: "random".into(),
        checkpoint_step: None,
    }
}

/// The options both zoo benches ask: three contexts (one past the zoo's 16), two batches.
pub(crate) fn zoo_options() -> BenchOptions {
    BenchOptions {
        contexts: vec![8, 16, 64],
        batches: vec![1, 2],
        decode_tokens: 3,
        repeats: 1,
        ..BenchOptions::default()
    }
}

#[test]
fn one_file_given_twice_is_refused() {
    let device = crate::backend::test_device();
    let file = crate::files::source("experiments/check/mla_rope_half.ron");
    let err = subjects(&[file.clone(), file], None, &device)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("given twice"), "{err}");
}

#[test]
fn measured_bytes_equal_the_formula_and_ratios_are_against_the_first_and_full_rank() {
    let device = crate::backend::test_device();
    let subjects = zoo(&device);
    let opts = zoo_options();
    // Every variant once per decode path it has, × 2 batches × 2 contexts (64 > context 16).
    let paths: usize = subjects
        .iter()
        .map(|s| s.config.attention.decode_paths().len().max(1))
        .sum();
    assert!(paths > subjects.len(), "some variant has two paths");
    let rows = bench(subjects, &opts, &device, |_| {}).unwrap();
    assert_eq!(rows.len(), paths * 2 * 2);
    for r in &rows {
        assert_eq!(
            r.kv_bytes_per_token_measured, r.kv_bytes_per_token_formula,
            "{}",
            r.experiment
        );
        assert_eq!(
            r.cache_bytes,
            r.context * r.batch * r.kv_bytes_per_token_formula
        );
        assert!(r.decode_tokens_per_s > 0.0 && r.prefill_tokens_per_s.unwrap() > 0.0);
        let expected =
            r.kv_bytes_per_token_formula as f64 / rows[0].kv_bytes_per_token_formula as f64;
        assert!((r.kv_vs_first - expected).abs() < 1e-12);
    }
    assert_eq!(rows[0].decode_vs_first, 1.0);
    // No full-rank MLA among the tiny variants (d_model 32): no ratio.
    assert!(rows.iter().all(|r| r.decode_vs_full_rank.is_none()));
    let md = table(&rows);
    assert_eq!(md.lines().count(), rows.len() + 2);
}

#[test]
fn full_rank_ratio_pairs_rows_of_the_same_family() {
    let row = |rank, attention: &str, tps| BenchRow {
        experiment: format!("r{rank}"),
        run: None,
        attention: attention.into(),
        decode: DecodePath::Absorbed,
        rank: Some(rank),
        d_model: 256,
        batch: 1,
        context: 512,
        kv_bytes_per_token_formula: rank,
        kv_bytes_per_token_measured: rank,
        cache_bytes: 0,
        fill: CacheFill::Prefill,
        prefill_tokens_per_s: Some(1.0),
        decode_tokens_per_s: tps,
        decode_ms_per_token: 0.0,
        decode_bytes_per_step: None,
        decode_gb_per_s: None,
        decode_ms_per_token_range: None,
        decode_steps: None,
        repeats: None,
        decode_ms_per_token_rounds: vec![],
        kv_vs_first: 1.0,
        decode_vs_first: 1.0,
        decode_vs_full_rank: None,
        weights: "random".into(),
        load_before: None,
        cpu_threads: None,
    };
    let mut rows = vec![
        row(128, "MLA+RoPE r=128 sep", 300.0),
        row(256, "MLA+RoPE r=256 sep", 200.0),
        row(128, "MLA r=128 sep", 100.0),
    ];
    let config = |rank, rope_dim| GptConfig {
        vocab_size: 64,
        context: 512,
        d_model: 256,
        n_layers: 1,
        n_heads: 4,
        mlp_ratio: 2,
        positions: if rope_dim > 0 {
            crate::model::Positions::Rope(10_000.0)
        } else {
            crate::model::Positions::Learned
        },
        attention: crate::model::AttentionConfig::mla(
            rank,
            crate::model::LatentLayout::Separate,
            rope_dim,
        ),
        tie_embeddings: true,
    };
    let configs = [config(128, 32), config(256, 32), config(128, 0)];
    add_ratios(&mut rows, &configs.iter().collect::<Vec<_>>());
    assert_eq!(rows[0].decode_vs_full_rank, Some(1.5));
    assert_eq!(rows[1].decode_vs_full_rank, Some(1.0));
    assert_eq!(
        rows[2].decode_vs_full_rank, None,
        "no full-rank MLA without RoPE"
    );
    assert_eq!(rows[2].kv_vs_first, 1.0);
    assert!((rows[1].decode_vs_first - 200.0 / 300.0).abs() < 1e-12);
}

#[test]
fn nothing_to_measure_and_zero_rounds_are_errors_not_panics() {
    let device = crate::backend::test_device();
    let subject = || {
        let (name, config) = variants().remove(0);
        random_subject(name, config, &device)
    };
    let opts = |contexts: Vec<usize>, repeats, decode_tokens| BenchOptions {
        contexts,
        batches: vec![1],
        decode_tokens,
        repeats,
        ..BenchOptions::default()
    };
    let err = bench(vec![subject()], &opts(vec![512], 1, 2), &device, |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[512]") && err.contains("nothing to measure"),
        "{err}"
    );
    for (contexts, repeats, tokens, option) in [
        (vec![8], 0, 2, "repeats"),
        (vec![8], 1, 0, "decode_tokens"),
        // No token left for a prompt.
        (vec![8, 1], 1, 2, "contexts"),
    ] {
        let err = bench(
            vec![subject()],
            &opts(contexts, repeats, tokens),
            &device,
            |_| {},
        )
        .unwrap_err();
        let bad = err.downcast_ref::<InvalidOption>().unwrap();
        assert_eq!(bad.option, option);
    }
}

#[test]
fn model_context_rebuilds_an_experiment_longer_and_refuses_run_folders() {
    let device = crate::backend::test_device();
    let file = crate::files::source("experiments/tiny/mha.ron");
    let own = Subject::load(&file, None, &device).unwrap();
    assert_eq!(own.config.context, 256);
    let long = Subject::load(&file, Some(512), &device).unwrap();
    assert_eq!(long.config.context, 512);
    let opts = BenchOptions {
        contexts: vec![384],
        batches: vec![1],
        decode_tokens: 2,
        repeats: 1,
        ..BenchOptions::default()
    };
    // Learned positions past the file's 256: the position table was built 512 long.
    let rows = bench(vec![long], &opts, &device, |_| {}).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].context, 384);
    for (path, n) in [(file.as_path(), 0), (file.as_path(), MAX_CONTEXT + 1)] {
        let err = Subject::load(path, Some(n), &device).err().unwrap();
        let bad = err.downcast_ref::<InvalidOption>().unwrap();
        assert_eq!(
            (bad.option, bad.value.clone()),
            ("model_context", n.to_string())
        );
    }
    let dir = std::env::temp_dir();
    let err = Subject::load(&dir, Some(512), &device).err().unwrap();
    let bad = err.downcast_ref::<InvalidOption>().unwrap();
    assert!(bad.accepted.contains("experiment files only"), "{err:#}");
}

#[test]
fn decode_paths_keep_their_words_in_json_and_tables() {
    for (path, word) in [
        (DecodePath::KeysValues, "-"),
        (DecodePath::Naive, "naive"),
        (DecodePath::Absorbed, "absorbed"),
    ] {
        assert_eq!(serde_json::to_string(&path).unwrap(), format!("\"{word}\""));
        assert_eq!(path.to_string(), word);
        let back: DecodePath = serde_json::from_str(&format!("\"{word}\"")).unwrap();
        assert_eq!(back, path);
    }
}
