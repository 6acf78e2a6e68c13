//! `mla-lab info`: what an experiment's model costs, from its config alone (arithmetic only,
//! nothing is allocated): parameters, KV-cache size per token against MHA of the same width
//! and depth, and the memory training and generation take ([`MemoryEstimate`]).

use burn::tensor::DType;
use serde::Serialize;

use crate::experiment::Experiment;
use crate::train::memory::{MemoryEstimate, human};

/// One experiment's costs.
#[derive(Debug, Clone, Serialize)]
pub struct InfoRow {
    pub experiment: String,
    pub attention: String,
    pub params: usize,
    pub non_embedding_params: usize,
    pub kv_elems_per_token_per_layer: usize,
    pub kv_elems_per_token: usize,
    pub dtype: String,
    pub kv_bytes_per_token_per_layer: usize,
    pub kv_bytes_per_token: usize,
    /// KV bytes of MHA with the same width and depth.
    pub mha_kv_bytes_per_token: usize,
    /// `kv / kv_mha - 1`, in percent (negative = smaller cache than MHA).
    pub kv_change_vs_mha_pct: f64,
    /// Training at the file's batch and context, and generation's cache, in bytes (f32).
    pub memory: MemoryEstimate,
    /// `memory.training()`.
    pub train_memory_bytes: u64,
}

impl InfoRow {
    pub fn new(exp: &Experiment, dtype: DType) -> InfoRow {
        let m = &exp.model;
        let memory = MemoryEstimate::of(exp);
        let kv = m.kv_bytes_per_token(dtype);
        let mha = m.mha_baseline().kv_bytes_per_token(dtype);
        InfoRow {
            experiment: exp.name.clone(),
            attention: m.label(),
            params: m.param_count(),
            non_embedding_params: m.non_embedding_param_count(),
            kv_elems_per_token_per_layer: m.kv_elems_per_token_per_layer(),
            kv_elems_per_token: m.kv_elems_per_token(),
            dtype: format!("{dtype:?}").to_lowercase(),
            kv_bytes_per_token_per_layer: m.kv_elems_per_token_per_layer() * dtype.size(),
            kv_bytes_per_token: kv,
            mha_kv_bytes_per_token: mha,
            kv_change_vs_mha_pct: 100.0 * (kv as f64 - mha as f64) / mha as f64,
            train_memory_bytes: memory.training(),
            memory,
        }
    }
}

pub fn millions(n: usize) -> String {
    format!("{:.2}M", n as f64 / 1e6)
}

/// `+4.2%`, `-45.8%`, and `0.0%` rather than `-0.0%`.
/// A signed percentage with one decimal, `0.0%` for changes that round to nothing.
pub fn percent(p: f64) -> String {
    if p.abs() < 0.05 {
        "0.0%".to_string()
    } else {
        format!("{p:+.1}%")
    }
}

/// A Markdown table of the rows.
pub fn table(rows: &[InfoRow]) -> String {
    let dtype = rows.first().map_or("f32".to_string(), |r| r.dtype.clone());
    let per_layer = format!("KV B/tok/layer ({dtype})");
    let mut t = crate::table::Table::new(
        &[
            "experiment",
            "attention",
            "params",
            "non-emb",
            "KV elems/tok/layer",
            &per_layer,
            "KV B/tok",
            "vs MHA",
            "train memory (est.)",
            "KV at context (f32)",
        ],
        2,
    );
    for r in rows {
        t.rows.push(vec![
            r.experiment.clone(),
            r.attention.clone(),
            millions(r.params),
            millions(r.non_embedding_params),
            r.kv_elems_per_token_per_layer.to_string(),
            r.kv_bytes_per_token_per_layer.to_string(),
            r.kv_bytes_per_token.to_string(),
            percent(r.kv_change_vs_mha_pct),
            human(r.train_memory_bytes),
            human(r.memory.kv_cache),
        ]);
    }
    t.render()
}
