//! Every experiment file shipped under `experiments/` parses and validates, and the
//! paper-scale rows have the shape the paper describes.

use std::path::{Path, PathBuf};

use burn::tensor::DType;
use mla_lab::experiment::Experiment;
use mla_lab::info::InfoRow;

fn ron_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ron"))
        .collect();
    files.sort();
    files
}

fn experiments_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments")
}

/// Every folder of experiment files: paper scale, then each tier's (`small/`, `tiny/`, …).
fn tiers() -> Vec<PathBuf> {
    let root = experiments_dir();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 4, "{dirs:?}");
    [vec![root], dirs].concat()
}

#[test]
fn every_experiment_file_is_valid() {
    let mut count = 0;
    for dir in tiers() {
        for file in ron_files(&dir) {
            Experiment::load(&file).unwrap_or_else(|e| panic!("{e}"));
            count += 1;
        }
    }
    assert!(
        count >= 30,
        "expected the paper-scale, small, tiny and calibration rows, found {count} files"
    );
}

#[test]
fn experiment_names_are_unique() {
    let mut names: Vec<String> = tiers()
        .iter()
        .flat_map(|d| ron_files(d))
        .map(|f| Experiment::load(f).unwrap().name)
        .collect();
    let n = names.len();
    names.sort();
    names.dedup();
    assert_eq!(
        names.len(),
        n,
        "two experiments would share an artifact folder"
    );
}

fn load(name: &str) -> Experiment {
    Experiment::load(experiments_dir().join(name)).unwrap()
}

#[test]
fn paper_scale_mha_has_about_30m_parameters() {
    let row = InfoRow::new(&load("mha.ron"), DType::F32);
    assert!(
        (29_000_000..=31_000_000).contains(&row.params),
        "{} parameters",
        row.params
    );
    let m = load("mha.ron").model;
    assert_eq!(
        (m.n_layers, m.d_model, m.n_heads, m.vocab_size, m.context),
        (6, 384, 6, 50_257, 512)
    );
}

#[test]
fn mla_rope_half_cuts_the_cache_near_the_papers_45_percent() {
    let row = InfoRow::new(&load("mla_rope_half.ron"), DType::F32);
    assert!(
        (-47.0..=-43.0).contains(&row.kv_change_vs_mha_pct),
        "mla_rope_half changes the KV cache by {:.1}%",
        row.kv_change_vs_mha_pct
    );
    let joint = InfoRow::new(&load("mla_rope_half_joint.ron"), DType::F32);
    assert!(joint.kv_bytes_per_token < row.kv_bytes_per_token);
}
