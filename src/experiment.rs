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
                 longer part of an experiment; choose it when running (`--naive` on generate \
                 and eval; bench measures both)"
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
        let name_ok = !self.name.is_empty()
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
            && !self.name.starts_with('.');
        if !name_ok {
            bad(
                "name",
                format!(
                    "{:?} cannot name a folder; accepted: letters, digits, '_', '-', '.'",
                    self.name
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
                crate::data::stories::check_count(count, crate::backend::available_memory())
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
mod tests {
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
}
