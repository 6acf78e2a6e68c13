//! One RON file is one experiment: name, seed, model, data and training sections.
//!
//! Unknown fields are rejected; a syntax or type error names the file and line:column; a
//! value that parses but cannot work (d_model not divisible by n_heads, rank > d_model, …) is
//! reported with the file, the line:column of the field, its dotted path and what is accepted,
//! before anything runs.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::config::{DataConfig, DataSource, TokenizerConfig};
use crate::model::GptConfig;
use crate::model::validate::FieldError;

/// The largest batch a file may ask for (what fits in memory is judged by the estimate).
pub const MAX_BATCH: usize = 1 << 16;

/// Training hyper-parameters (used by the trainer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// The training seed: initial weights and the order of training windows. Written
    /// `seed: 2`; absent, the experiment's `seed` serves. (`mla-lab study --seeds` sets it.)
    #[serde(
        deserialize_with = "bare_some",
        serialize_with = "bare_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub seed: Option<u64>,
    /// The seed of the initial weights alone, where it should differ from `seed` (e.g. one
    /// initialisation under several window orders: `study --seeds` then varies the order).
    /// Absent, the training seed serves.
    #[serde(
        deserialize_with = "bare_some",
        serialize_with = "bare_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub init_seed: Option<u64>,
    /// The seed of the order of training windows alone; absent, the training seed serves.
    #[serde(
        deserialize_with = "bare_some",
        serialize_with = "bare_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub order_seed: Option<u64>,
    pub batch_size: usize,
    /// Rows of the batch one forward and backward pass takes on one device, where the whole
    /// batch (or a device's share of it) would not fit: the gradients of the passes are summed
    /// before the one optimizer step, so the run is the same, only the peak memory is lower.
    /// Written `micro_batch: 8`; absent, one pass takes a device's whole share. A divisor of
    /// `batch_size` (of each device's share with `--devices`). `--micro-batch` overrides it.
    #[serde(
        deserialize_with = "bare_some",
        serialize_with = "bare_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub micro_batch: Option<usize>,
    pub max_steps: usize,
    /// Peak learning rate after warmup.
    pub lr: f64,
    /// Floor of the cosine decay.
    pub min_lr: f64,
    pub warmup_steps: usize,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// Gradient-norm clip, applied to each parameter tensor on its own (burn's
    /// `GradientClipping::Norm`), not to the global norm as PyTorch's `clip_grad_norm_` does.
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

/// Reads `seed: 2` (RON would otherwise ask for `Some(2)`).
fn bare_some<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

fn bare_value<S: serde::Serializer, T: Serialize>(
    value: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => v.serialize(s),
        None => s.serialize_none(),
    }
}

impl TrainConfig {
    /// Rows of the batch in one forward and backward pass on one device: `micro_batch`, else
    /// the whole batch.
    pub fn rows_per_pass(&self) -> usize {
        self.micro_batch.unwrap_or(self.batch_size)
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            seed: None,
            init_seed: None,
            order_seed: None,
            batch_size: 16,
            micro_batch: None,
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
    /// The data seed: the train/validation split and the BPE (the story generator has its
    /// own, in `data.source`). Runs that differ only in their training seed share one token
    /// cache and one validation set.
    pub seed: u64,
    pub model: GptConfig,
    pub data: DataConfig,
    #[serde(default)]
    pub train: TrainConfig,
    /// The experiment whose trained runs this one fine-tunes after `mla-lab convert` made them
    /// into this model (`convert_from: Some("mha_tiny")`): its runs never start from drawn weights,
    /// and `study` converts the source's run of each seed first. Absent for other experiments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convert_from: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error("{path}: cannot read the experiment file")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{col}: {message}")]
    Parse {
        path: String,
        line: usize,
        col: usize,
        message: String,
    },
    #[error("{path}: invalid experiment:\n{}", list(.problems))]
    Invalid {
        path: String,
        problems: Vec<Problem>,
    },
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

/// Fields of an experiment that change how its run is logged, checkpointed and split into
/// passes, not what it learns: two experiments that differ only in these make the same run (a
/// run may resume with a smaller `micro_batch` on a smaller device).
pub const BOOKKEEPING: [&str; 4] = [
    "train.log_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.micro_batch",
];

/// `1, 2, 4, 8, 16`: the divisors of `n`, for messages.
pub fn divisors(n: usize) -> String {
    (1..=n)
        .filter(|d| n.is_multiple_of(*d))
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The divisors of `n` below `below`, largest first: the micro-batches smaller than one that
/// did not fit.
pub fn divisors_below(n: usize, below: usize) -> impl Iterator<Item = usize> {
    (1..below.min(n + 1))
        .rev()
        .filter(move |d| n.is_multiple_of(*d))
}

impl Experiment {
    /// The seed of initial weights and window order: `train.seed`, else `seed`.
    pub fn training_seed(&self) -> u64 {
        self.train.seed.unwrap_or(self.seed)
    }

    /// The seed of the initial weights: `train.init_seed`, else the training seed.
    pub fn init_seed(&self) -> u64 {
        self.train.init_seed.unwrap_or(self.training_seed())
    }

    /// The seed of the order of training windows: `train.order_seed`, else the training seed.
    pub fn order_seed(&self) -> u64 {
        self.train.order_seed.unwrap_or(self.training_seed())
    }

    /// This experiment with its training seed set to `seed` (both the initial weights and the
    /// window order, but where the file sets `init_seed` or `order_seed` on its own).
    pub fn with_training_seed(&self, seed: u64) -> Experiment {
        let mut exp = self.clone();
        exp.train.seed = Some(seed);
        exp
    }

    /// The fields where `other` differs from this experiment, as dotted paths from the top of
    /// the file with both values (this one's first): `train.max_steps: 40 against 60`. Empty
    /// when the two are equal.
    pub fn differences(&self, other: &Experiment) -> Vec<String> {
        self.differences_but(other, &[])
    }

    /// [`Experiment::differences`] that make another run: all but [`BOOKKEEPING`], which change
    /// how a run is logged and checkpointed, not what it learns.
    pub fn run_differences(&self, other: &Experiment) -> Vec<String> {
        self.differences_but(other, &BOOKKEEPING)
    }

    fn differences_but(&self, other: &Experiment, skip: &[&str]) -> Vec<String> {
        use serde_json::Value;
        fn walk(
            path: &str,
            a: Option<&Value>,
            b: Option<&Value>,
            skip: &[&str],
            out: &mut Vec<String>,
        ) {
            if skip.contains(&path) {
                return;
            }
            let show = |v: Option<&Value>| v.map_or_else(|| "absent".into(), Value::to_string);
            let variant = |o: &serde_json::Map<String, Value>| {
                o.keys().any(|k| k.starts_with(char::is_uppercase))
            };
            match (a, b) {
                // Two enum variants (`Mla`, `Mha`) differ as wholes.
                (Some(Value::Object(x)), Some(Value::Object(y)))
                    if !(variant(x) || variant(y)) || x.keys().eq(y.keys()) =>
                {
                    let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
                    keys.sort();
                    keys.dedup();
                    for key in keys {
                        // An enum's variant name is not a field the file names.
                        let inner = if key.starts_with(char::is_uppercase) {
                            path.to_string()
                        } else if path.is_empty() {
                            key.clone()
                        } else {
                            format!("{path}.{key}")
                        };
                        walk(&inner, x.get(key), y.get(key), skip, out);
                    }
                }
                _ if a != b => out.push(format!("{path}: {} against {}", show(a), show(b))),
                _ => {}
            }
        }
        let json = |e: &Experiment| serde_json::to_value(e).expect("an experiment serialises");
        let mut out = vec![];
        walk("", Some(&json(self)), Some(&json(other)), skip, &mut out);
        out
    }

    /// The experiment as RON, which [`Experiment::parse`] reads back as an equal experiment.
    pub fn to_ron(&self) -> String {
        ron_options()
            .to_string_pretty(self, ron::ser::PrettyConfig::default())
            .expect("an experiment serialises")
    }

    /// Reads, parses and validates an experiment file.
    pub fn load(path: impl AsRef<Path>) -> Result<Experiment, ExperimentError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ExperimentError::Io {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    /// Parses and validates experiment text; `path` is only used in messages.
    pub fn parse(text: &str, path: &str) -> Result<Experiment, ExperimentError> {
        // A byte-order mark, which some editors write first, is no part of the RON.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let exp: Experiment = ron_options()
            .from_str(text)
            .map_err(|e| ExperimentError::Parse {
                path: path.to_string(),
                line: e.position.line,
                col: e.position.col,
                message: e.code.to_string(),
            })?;
        let problems: Vec<Problem> = exp
            .validate()
            .into_iter()
            .map(|error| Problem {
                at: locate(text, &error.field),
                error,
            })
            .collect();
        if let Some((line, col)) = locate(text, "model.attention.decode") {
            note_once(&format!(
                "{path}:{line}:{col}: model.attention.decode is ignored: the decode path is no \
                 longer part of an experiment; choose it when running (generate and eval \
                 take the naive path on request; bench measures both)"
            ));
        }
        if problems.is_empty() {
            Ok(exp)
        } else {
            Err(ExperimentError::Invalid {
                path: path.to_string(),
                problems,
            })
        }
    }

    /// Every problem, with fields as dotted paths from the top of the file.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errs: Vec<FieldError> = self
            .model
            .validate()
            .into_iter()
            .map(|e| FieldError {
                field: format!("model.{}", e.field),
                ..e
            })
            .collect();
        errs.extend(self.validate_name_and_data());
        errs.extend(self.train.validate());
        errs
    }

    /// Problems with the name (a folder's) and the data section, and with the vocabulary the
    /// model and the tokenizer must share.
    fn validate_name_and_data(&self) -> Vec<FieldError> {
        let mut errs = vec![];
        let mut bad = |field: &str, message: String| errs.push(FieldError::new(field, message));
        let name_ok = |name: &str| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
                && !name.starts_with('.')
        };
        if !name_ok(&self.name) {
            bad(
                "name",
                format!(
                    "{:?} cannot name a folder; accepted: letters, digits, '_', '-', '.'",
                    self.name
                ),
            );
        }
        // An experiment's name, never a path: checked before any folder is looked at.
        if let Some(source) = &self.convert_from
            && !name_ok(source)
        {
            bad(
                "convert_from",
                format!(
                    "{source:?} is not an experiment's name; accepted: the source experiment's \
                     name (letters, digits, '_', '-', '.'), not a path"
                ),
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
                format!(
                    "{vocab_size} is too small; accepted: at least 257 (256 bytes + <|endoftext|>)"
                ),
            );
        }
        if let DataSource::Synthetic { count, .. } = self.data.source
            && let Err(e) =
                crate::data::stories::files::check_count(count, crate::backend::available_memory())
        {
            bad("data.source.count", format!("{count}: accepted: {e}"));
        }
        if !(self.data.val_fraction > 0.0 && self.data.val_fraction < 1.0) {
            bad(
                "data.val_fraction",
                format!(
                    "{} is out of range; accepted: 0 < val_fraction < 1",
                    self.data.val_fraction
                ),
            );
        }
        errs
    }
}

impl TrainConfig {
    /// Problems with the train section, named from the top of the file.
    pub fn validate(&self) -> Vec<FieldError> {
        let t = self;
        let mut errs = vec![];
        let mut bad = |field: &str, message: String| errs.push(FieldError::new(field, message));
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
        if let Some(m) = t.micro_batch
            && (m == 0 || !t.batch_size.is_multiple_of(m))
        {
            bad(
                "train.micro_batch",
                format!(
                    "{m} does not divide train.batch_size {}; accepted: {}",
                    t.batch_size,
                    divisors(t.batch_size)
                ),
            );
        }
        if t.batch_size > MAX_BATCH {
            bad(
                "train.batch_size",
                format!("{}; accepted: 1 to {MAX_BATCH}", t.batch_size),
            );
        }
        if !(t.lr.is_finite() && t.lr > 0.0 && t.lr <= 1.0) {
            bad("train.lr", format!("{}; accepted: 0 < lr <= 1", t.lr));
        }
        if !(t.min_lr.is_finite() && t.min_lr >= 0.0 && t.min_lr <= t.lr) {
            bad(
                "train.min_lr",
                format!("{}; accepted: 0 <= min_lr <= lr ({})", t.min_lr, t.lr),
            );
        }
        if t.eval_every > 0
            && t.checkpoint_every > 0
            && !t.checkpoint_every.is_multiple_of(t.eval_every)
        {
            bad(
                "train.checkpoint_every",
                format!(
                    "{} is not a multiple of eval_every = {}; accepted: a multiple of eval_every \
                     (checkpoints are written after a validation)",
                    t.checkpoint_every, t.eval_every
                ),
            );
        }
        if t.warmup_steps > t.max_steps {
            bad(
                "train.warmup_steps",
                format!("{} exceeds max_steps = {}", t.warmup_steps, t.max_steps),
            );
        }
        for (field, v) in [("train.beta1", t.beta1), ("train.beta2", t.beta2)] {
            if !(0.0..1.0).contains(&v) {
                bad(field, format!("{v}; accepted: 0 <= beta < 1"));
            }
        }
        if !(t.weight_decay.is_finite() && t.weight_decay >= 0.0) {
            bad(
                "train.weight_decay",
                format!("{}; accepted: >= 0", t.weight_decay),
            );
        }
        if !(t.grad_clip.is_finite() && t.grad_clip > 0.0) {
            bad("train.grad_clip", format!("{}; accepted: > 0", t.grad_clip));
        }
        errs
    }
}

/// Prints a note on stderr, once per process: a file is read several times by one command.
fn note_once(note: &str) {
    static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if !seen.iter().any(|s| s == note) {
        eprintln!("note: {note}");
        seen.push(note.to_string());
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

/// How experiment files are read and written: with `unwrap_variant_newtypes` on by default, so
/// that an attention variant's struct is written inside its arm's parentheses,
/// `Mla(rank: 64, ...)`, without a `#![enable(...)]` line.
fn ron_options() -> ron::Options {
    ron::Options::default()
        .with_default_extension(ron::extensions::Extensions::UNWRAP_VARIANT_NEWTYPES)
}

#[cfg(test)]
mod tests;
