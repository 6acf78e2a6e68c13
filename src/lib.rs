//! mla-lab: train small GPTs with MHA, MLA and MLA+RoPE attention and measure what each one
//! costs (KV cache, decode speed) and buys (validation loss, story quality).
//!
//! Reproduces and extends Mehta et al., "Latent Multi-Head Attention for Small Language
//! Models" (arXiv 2506.09342), with MLA as in DeepSeek-V2 (arXiv 2405.04434).

pub mod artifacts;
pub mod backend;
pub mod compare;
pub mod data;
pub mod eval;
pub mod experiment;
pub mod files;
pub mod infer;
pub mod info;
pub mod model;
pub mod options;
pub mod progress;
pub mod report;
pub mod rng;
pub mod slurm;
pub mod study;
pub mod table;
pub mod train;
