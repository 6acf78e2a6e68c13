//! The `mla-lab` command line, run as a user would.

use std::path::Path;
use std::process::Command;

fn mla_lab(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mla-lab"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn info_prints_one_table_for_several_files() {
    let (ok, out, err) = mla_lab(&[
        "info",
        "experiments/mha.ron",
        "experiments/mla_rope_half.ron",
    ]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].starts_with("| experiment |"));
    assert!(
        lines[2].contains("| mha | MHA |") && lines[2].contains("| 18432 |"),
        "{out}"
    );
    assert!(
        lines[3].contains("| mla_rope_half |") && lines[3].contains("| 9984 | -45.8% |"),
        "{out}"
    );
}

#[test]
fn info_json_is_one_object_per_file() {
    let (ok, out, err) = mla_lab(&["info", "--json", "--dtype", "bf16", "experiments/gqa.ron"]);
    assert!(ok, "{err}");
    let row: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(row["experiment"], "gqa");
    // 6 layers × 2 (K, V) × 2 kv heads × 64 × 2 bytes.
    assert_eq!(row["kv_bytes_per_token"], 6 * 2 * 2 * 64 * 2);
}

#[test]
fn info_on_a_bad_file_names_it_and_fails() {
    let dir = std::env::temp_dir().join(format!("mla-lab-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.ron");
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/mha.ron"))
            .unwrap()
            .replace("n_heads: 6,", "n_heads: 5,");
    std::fs::write(&bad, text).unwrap();
    let (ok, _, err) = mla_lab(&["info", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("bad.ron") && err.contains("model.d_model"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_tiny_experiment_trains_and_a_second_run_is_refused() {
    let dir = std::env::temp_dir().join(format!("mla-lab-cli-train-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exp = dir.join("tiny.ron");
    std::fs::write(
        &exp,
        r#"(name: "tiny", seed: 1,
            model: (vocab_size: 300, context: 32, d_model: 32, n_layers: 2, n_heads: 4,
                    positions: Rope(10000.0), attention: Mla(rank: 16, layout: Separate, rope_dim: 4)),
            data: (source: Synthetic(count: 400, seed: 2), tokenizer: Bpe(vocab_size: 300)),
            train: (batch_size: 4, max_steps: 40, lr: 3e-3, min_lr: 3e-4, warmup_steps: 5,
                    eval_every: 10, eval_batches: 4, log_every: 10, keep_checkpoints: 2))"#,
    )
    .unwrap();
    let art = dir.join("artifacts");
    let (ok, out, err) = mla_lab(&[
        "--backend",
        "cpu",
        exp.to_str().unwrap(),
        "--artifacts",
        art.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    // Clean progress lines, no debug dumps of burn's progress structs.
    assert!(
        out.contains("step     40/40") && !out.contains("ProgressSnapshot"),
        "{out}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(art.join("tiny/summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["steps"], 40);
    let csv = std::fs::read_to_string(art.join("tiny/metrics.csv")).unwrap();
    let losses: Vec<f64> = csv
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(1)?.parse().ok())
        .collect();
    assert!(
        losses.last().unwrap() < &(losses[0] - 0.5),
        "loss did not fall: {losses:?}"
    );
    for f in ["experiment.ron", "tokenizer.json", "checkpoint/model-4.bpk"] {
        assert!(art.join("tiny").join(f).exists(), "{f} missing");
    }
    // Same folder again without --resume/--force: refused, nothing lost.
    let (ok, _, err) = mla_lab(&[
        "--backend",
        "cpu",
        exp.to_str().unwrap(),
        "--artifacts",
        art.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("--resume"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn data_stories_writes_text_and_metadata() {
    let dir = std::env::temp_dir().join(format!("mla-lab-cli-stories-{}", std::process::id()));
    let out = dir.join("sub/stories.txt");
    let (ok, stdout, err) = mla_lab(&[
        "data",
        "stories",
        "--count",
        "50",
        "--seed",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(stdout.contains("50 stories (50 distinct)"), "{stdout}");
    assert!(stdout.contains("unigram entropy"), "{stdout}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().filter(|l| *l == "<|endoftext|>").count(), 50);
    let meta = std::fs::read_to_string(dir.join("sub/stories.meta.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(meta.lines().next().unwrap()).unwrap();
    assert_eq!(first["id"], 0);
    assert!(text.starts_with(&text[..first["resolution_start"].as_u64().unwrap() as usize]));
    assert_eq!(meta.lines().count(), 50);
    // The same seed writes the same bytes.
    let again = dir.join("again.txt");
    let (ok, _, _) = mla_lab(&[
        "data",
        "stories",
        "--count",
        "50",
        "--seed",
        "3",
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(ok);
    assert_eq!(std::fs::read(&again).unwrap(), text.as_bytes());
    std::fs::remove_dir_all(&dir).unwrap();
}
