//! One RON file is one experiment: name, seed, model, data and training sections.
//!
//! Unknown fields are rejected; a syntax or type error names the file and line:column; a
//! value that parses but cannot work (d_model not divisible by n_heads, rank > d_model, …) is
//! reported with the file, the line:column of the field, its dotted path and what is accepted,
//! before anything runs.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::GptConfig;
use crate::model::validate::FieldError;

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

/// Training hyper-parameters (used by the trainer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub batch_size: usize,
    pub max_steps: usize,
    /// Peak learning rate after warmup.
    pub lr: f64,
    /// Floor of the cosine decay.
    pub min_lr: f64,
    pub warmup_steps: usize,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// Global gradient-norm clip.
    pub grad_clip: f64,
    /// Validate every this many steps.
    pub eval_every: usize,
    /// Validation batches per evaluation.
    pub eval_batches: usize,
    pub checkpoint_every: usize,
    pub keep_checkpoints: usize,
    /// Print a progress line every this many steps (headless).
    pub log_every: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            batch_size: 16,
            max_steps: 1000,
            lr: 6e-4,
            min_lr: 6e-5,
            warmup_steps: 100,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.95,
            grad_clip: 1.0,
            eval_every: 250,
            eval_batches: 20,
            checkpoint_every: 250,
            keep_checkpoints: 3,
            log_every: 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Names the artifact folder `artifacts/<name>/`.
    pub name: String,
    pub seed: u64,
    pub model: GptConfig,
    pub data: DataConfig,
    #[serde(default)]
    pub train: TrainConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error("{path}: cannot read the experiment file: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{col}: {message}")]
    Parse { path: String, line: usize, col: usize, message: String },
    #[error("{path}: invalid experiment:\n{}", list(.problems))]
    Invalid { path: String, problems: Vec<Problem> },
}

/// A field that parsed but cannot work.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Line and column of the field in the file, where it could be found.
    pub at: Option<(usize, usize)>,
    pub error: FieldError,
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| match p.at {
            Some((line, col)) => format!("  {line}:{col}: {}", p.error),
            None => format!("  {}", p.error),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Experiment {
    /// Reads, parses and validates an experiment file.
    pub fn load(path: impl AsRef<Path>) -> Result<Experiment, ExperimentError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ExperimentError::Io { path: shown.clone(), source })?;
        Self::parse(&text, &shown)
    }

    /// Parses and validates experiment text; `path` is only used in messages.
    pub fn parse(text: &str, path: &str) -> Result<Experiment, ExperimentError> {
        let exp: Experiment = ron::from_str(text).map_err(|e| ExperimentError::Parse {
            path: path.to_string(),
            line: e.position.line,
            col: e.position.col,
            message: e.code.to_string(),
        })?;
        let problems: Vec<Problem> = exp
            .validate()
            .into_iter()
            .map(|error| Problem { at: locate(text, &error.field), error })
            .collect();
        if problems.is_empty() {
            Ok(exp)
        } else {
            Err(ExperimentError::Invalid { path: path.to_string(), problems })
        }
    }

    /// Every problem, with fields as dotted paths from the top of the file.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errs: Vec<FieldError> = self
            .model
            .validate()
            .into_iter()
            .map(|e| FieldError { field: format!("model.{}", e.field), ..e })
            .collect();
        let mut bad = |field: &str, message: String| errs.push(FieldError { field: field.into(), message });
        let name_ok = !self.name.is_empty()
            && self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
            && !self.name.starts_with('.');
        if !name_ok {
            bad(
                "name",
                format!("{:?} cannot name a folder; accepted: letters, digits, '_', '-', '.'", self.name),
            );
        }
        let vocab = self.data.tokenizer.vocab_size();
        if self.model.vocab_size != vocab {
            bad(
                "model.vocab_size",
                format!(
                    "{} does not match the tokenizer's {vocab} tokens; accepted: {vocab}",
                    self.model.vocab_size
                ),
            );
        }
        if let TokenizerConfig::Bpe { vocab_size } = self.data.tokenizer
            && vocab_size < 257
        {
            bad(
                "data.tokenizer.vocab_size",
                format!("{vocab_size} is too small; accepted: at least 257 (256 bytes + <|endoftext|>)"),
            );
        }
        if let DataSource::Synthetic { count: 0, .. } = self.data.source {
            bad("data.source.count", "is 0; accepted: a positive number of stories".into());
        }
        if !(self.data.val_fraction > 0.0 && self.data.val_fraction < 1.0) {
            bad("data.val_fraction", format!("{} is out of range; accepted: 0 < val_fraction < 1", self.data.val_fraction));
        }
        let t = &self.train;
        for (field, v) in [
            ("train.batch_size", t.batch_size),
            ("train.max_steps", t.max_steps),
            ("train.eval_every", t.eval_every),
            ("train.eval_batches", t.eval_batches),
            ("train.checkpoint_every", t.checkpoint_every),
            ("train.keep_checkpoints", t.keep_checkpoints),
            ("train.log_every", t.log_every),
        ] {
            if v == 0 {
                bad(field, "is 0; accepted: a positive integer".into());
            }
        }
        if !(t.lr.is_finite() && t.lr > 0.0) {
            bad("train.lr", format!("{}; accepted: a positive learning rate", t.lr));
        }
        if !(t.min_lr.is_finite() && t.min_lr >= 0.0 && t.min_lr <= t.lr) {
            bad("train.min_lr", format!("{}; accepted: 0 <= min_lr <= lr ({})", t.min_lr, t.lr));
        }
        if t.warmup_steps > t.max_steps {
            bad("train.warmup_steps", format!("{} exceeds max_steps = {}", t.warmup_steps, t.max_steps));
        }
        for (field, v) in [("train.beta1", t.beta1), ("train.beta2", t.beta2)] {
            if !(0.0..1.0).contains(&v) {
                bad(field, format!("{v}; accepted: 0 <= beta < 1"));
            }
        }
        if !(t.weight_decay.is_finite() && t.weight_decay >= 0.0) {
            bad("train.weight_decay", format!("{}; accepted: >= 0", t.weight_decay));
        }
        if !(t.grad_clip.is_finite() && t.grad_clip > 0.0) {
            bad("train.grad_clip", format!("{}; accepted: > 0", t.grad_clip));
        }
        errs
    }
}

/// Line and column (1-based) of a dotted field path such as `model.attention.rank`, found by
/// searching for each key in turn after the previous one. `None` where the key is not written
/// in the file (a default).
pub fn locate(text: &str, field: &str) -> Option<(usize, usize)> {
    let mut from = 0;
    let mut found = None;
    for key in field.split('.') {
        let at = find_key(&text[from..], key)? + from;
        from = at + key.len();
        found = Some(at);
    }
    let at = found?;
    let line = text[..at].matches('\n').count() + 1;
    let col = at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
    Some((line, col))
}

/// Offset of `key` used as a field name (`key:` as a whole word), skipping `//` comments.
fn find_key(text: &str, key: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let code = line.split("//").next().unwrap_or("");
        let mut search = 0;
        while let Some(i) = code[search..].find(key) {
            let i = search + i;
            let before_ok = i == 0 || !is_ident(code.as_bytes()[i - 1]);
            let rest = &code[i + key.len()..];
            if before_ok && rest.trim_start().starts_with(':') {
                return Some(offset + i);
            }
            search = i + key.len();
        }
        offset += line.len();
    }
    None
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}
