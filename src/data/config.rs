//! The `data` section of an experiment file: where the stories come from, how they become
//! tokens, and how many are held out.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where the stories come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum DataSource {
    /// `count` generated stories from `seed` (built in, no download).
    Synthetic { count: usize, seed: u64 },
    /// A TinyStories file (`.txt`, JSON array or JSON lines).
    TinyStories { path: PathBuf },
}

/// How text becomes tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum TokenizerConfig {
    /// GPT-2's BPE, 50,257 tokens.
    Gpt2,
    /// A byte-level BPE trained on the training split.
    Bpe { vocab_size: usize },
}

impl TokenizerConfig {
    pub fn vocab_size(&self) -> usize {
        match self {
            TokenizerConfig::Gpt2 => 50_257,
            TokenizerConfig::Bpe { vocab_size } => *vocab_size,
        }
    }
}

fn default_val_fraction() -> f64 {
    0.05
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub source: DataSource,
    pub tokenizer: TokenizerConfig,
    /// Fraction of stories held out for validation (default 0.05).
    #[serde(default = "default_val_fraction")]
    pub val_fraction: f64,
}
