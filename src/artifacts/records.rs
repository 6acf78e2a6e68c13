//! The typed records a run folder holds, one per file: `summary.json` ([`TrainSummary`]),
//! `eval.json` ([`LossReport`]), `probes.json` ([`ProbeReport`]), `judge.json`
//! ([`JudgeReport`]), `samples.json` ([`Sample`]s) and `bench.json` ([`BenchRow`]s). The commands that measure write them;
//! `report` and `study` read them back through the same types.

use serde::{Deserialize, Deserializer, Serialize};

use crate::model::MlaDecode;

/// A loss read back from a record: nats per token, finite and not below zero (a cross-entropy
/// never is). Anything else is refused, so that a hand-edited or damaged record cannot reach a
/// report.
fn loss<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    checked_loss(v).map_err(serde::de::Error::custom)
}

/// [`loss`] where the record may have none.
fn optional_loss<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Option::<f64>::deserialize(d)?
        .map(|v| checked_loss(v).map_err(serde::de::Error::custom))
        .transpose()
}

fn checked_loss(v: f64) -> Result<f64, String> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!(
            "a loss of {v} is not one (accepted: a finite number of nats, at least 0)"
        ))
    }
}

/// `summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainSummary {
    pub experiment: String,
    pub params: usize,
    pub non_embedding_params: usize,
    pub kv_bytes_per_token_f32: usize,
    pub steps: usize,
    pub tokens_seen: usize,
    #[serde(default, deserialize_with = "optional_loss")]
    pub final_train_loss: Option<f64>,
    #[serde(default, deserialize_with = "optional_loss")]
    pub final_val_loss: Option<f64>,
    pub final_val_perplexity: Option<f64>,
    /// Unigram entropy of the validation tokens (nats/token): the bar the val loss should
    /// end well below.
    pub val_unigram_entropy: f64,
    /// Training tokens per second over the whole run (every invocation that trained it),
    /// validation left out.
    #[serde(default)]
    pub tokens_per_s: Option<f64>,
    /// Seconds the run took: the training time of earlier invocations of a resumed run (up
    /// to the checkpoint each was resumed from) and all of the last one.
    pub wall_time_s: f64,
    pub backend: String,
    /// Devices the last invocation trained on (a resumed run may change their number), and
    /// how burn-train spread the batch over them.
    #[serde(default = "one")]
    pub devices: usize,
    #[serde(default)]
    pub strategy: Option<String>,
    #[serde(default)]
    pub git_revision: Option<String>,
    /// The content of the data source the run trained on ([`crate::data::tokens::fingerprint`]:
    /// a stories file's hash, or the generator's version, count and seed); absent in summaries
    /// written before it was recorded.
    #[serde(default)]
    pub data_fingerprint: Option<String>,
    /// How the initial weights were drawn ([`crate::model::init::SCHEME`]); absent in summaries
    /// written before it was recorded, whose weights came from the training backend's own
    /// generator (so a seed named a run within one backend only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialisation: Option<String>,
}

fn one() -> usize {
    1
}

impl TrainSummary {
    /// What to say of a run whose final validation loss is no better than the validation
    /// tokens' unigram entropy, the loss of predicting each token by its frequency alone: it has
    /// learned nothing of the text (a finite divergence, say, that the stop on a non-finite loss
    /// does not catch). `None` for a run below it.
    pub fn learned_nothing(&self) -> Option<String> {
        let loss = self.final_val_loss?;
        (loss >= self.val_unigram_entropy).then(|| {
            format!(
                "{}: its final validation loss {loss:.4} is no better than the validation tokens' \
                 unigram entropy {:.4} (each token guessed by its frequency alone): the run has \
                 learned nothing of the text yet (too few steps, or a learning rate too high \
                 for it)",
                self.experiment, self.val_unigram_entropy
            )
        })
    }
}

/// The line `mla-lab train` ends with.
impl std::fmt::Display for TrainSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} steps, {} tokens, final val loss {} (unigram entropy {:.3}), {} training tok/s, {:.1} s on {}",
            self.experiment,
            self.steps,
            self.tokens_seen,
            self.final_val_loss
                .map_or("-".into(), |v| format!("{v:.4} (ppl {:.2})", v.exp())),
            self.val_unigram_entropy,
            self.tokens_per_s.map_or("-".into(), |t| format!("{t:.0}")),
            self.wall_time_s,
            self.backend
        )?;
        if self.devices > 1 {
            write!(f, " × {} devices", self.devices)?;
        }
        Ok(())
    }
}

/// Loss of a model on a token stream.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LossReport {
    /// What was evaluated: `validation split` or a file.
    pub data: String,
    /// Mean next-token cross-entropy, nats per token.
    #[serde(deserialize_with = "loss")]
    pub loss: f64,
    pub perplexity: f64,
    /// Windows of `context` tokens, starting every `context / 2` tokens.
    pub windows: usize,
    /// The most windows asked for (`eval --windows`); `None`: the whole stream, as in records
    /// written before this was kept.
    #[serde(default)]
    pub max_windows: Option<usize>,
    /// Tokens scored: each once, with at least `context / 2` tokens before it (but in the
    /// first window).
    pub tokens: usize,
    /// Unigram entropy of the same stream (nats/token), for scale.
    pub unigram_entropy: f64,
    /// The step of the checkpoint evaluated, when the run had not finished (its newest
    /// checkpoint stood in for the trained weights); absent for a finished run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_step: Option<usize>,
}

/// A share `hits / n`, with its sample size.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Share {
    pub value: f64,
    pub n: usize,
}

/// `0.812 (n=131)`; the precision applies to the value (default 3).
impl std::fmt::Display for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let digits = f.precision().unwrap_or(3);
        if self.n == 0 {
            // A share of nothing is no value: not 0.
            return write!(f, "- (n=0, nothing to count)");
        }
        write!(f, "{:.digits$} (n={})", self.value, self.n)
    }
}

impl Share {
    pub fn new(hits: usize, n: usize) -> Share {
        Share {
            value: if n == 0 { 0.0 } else { hits as f64 / n as f64 },
            n,
        }
    }
}

/// One continuation of a fixed prompt (`samples.json`, for the report's examples).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Sample {
    pub prompt: String,
    pub seed: u64,
    pub temperature: f32,
    /// The text generated after the prompt.
    pub text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProbeReport {
    /// Stories continued.
    pub stories: usize,
    /// Continuations naming only the story's own cast (main character, companion), of those
    /// naming anyone.
    pub character_consistency: Share,
    /// Continuations naming the own object and no other, of those naming any.
    pub object_consistency: Share,
    /// Continuations that name the own object with one of the generator's attribute words
    /// before it ("the *green* kite"): the share where every such word is the story's own
    /// ("red kite"). Harder than `object_consistency`: the attribute has to be copied from the
    /// setting, where the noun alone may be guessed from the plot. `None` in records written
    /// before it was measured.
    #[serde(default)]
    pub attribute_consistency: Option<Share>,
    /// Repeated word 3-grams within a continuation, over all 3-grams.
    pub repetition_3gram: Share,
    pub distinct_2: Share,
    pub distinct_3: Share,
    /// Complete sentences ending properly with only corpus words.
    pub grammar: Share,
    /// Mean words per continuation.
    pub mean_words: f64,
    /// A few continuations, for reading.
    pub examples: Vec<Example>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Example {
    pub prompt: String,
    pub continuation: String,
    pub character: String,
    pub object: String,
}

/// Mean and standard deviation of one score over the stories.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Stat {
    pub mean: f64,
    pub sd: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JudgeReport {
    pub model: String,
    pub stories: usize,
    pub grammar: Stat,
    pub creativity: Stat,
    pub consistency: Stat,
}

/// How a row decoded: through cached keys and values (MHA/GQA/MQA), or MLA's naive or absorbed
/// path over the cached latent. Written `-`, `naive`, `absorbed` in tables and JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DecodePath {
    #[serde(rename = "-")]
    KeysValues,
    #[serde(rename = "naive")]
    Naive,
    #[serde(rename = "absorbed")]
    Absorbed,
}

impl From<Option<MlaDecode>> for DecodePath {
    fn from(mla: Option<MlaDecode>) -> Self {
        match mla {
            None => DecodePath::KeysValues,
            Some(MlaDecode::Naive) => DecodePath::Naive,
            Some(MlaDecode::Absorbed) => DecodePath::Absorbed,
        }
    }
}

impl std::fmt::Display for DecodePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DecodePath::KeysValues => "-",
            DecodePath::Naive => "naive",
            DecodePath::Absorbed => "absorbed",
        })
    }
}

/// How a bench filled the cache before timing decode steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheFill {
    /// A prompt of random tokens, prefilled through the model (and timed).
    #[default]
    Prefill,
    /// N(0, 1) values written straight into the cache (`KvCache::fill_random`); no prefill.
    Random,
}

impl CacheFill {
    pub const ALL: [CacheFill; 2] = [CacheFill::Prefill, CacheFill::Random];

    /// The word in JSON, tables and `bench --fill`.
    pub fn name(self) -> &'static str {
        match self {
            CacheFill::Prefill => "prefill",
            CacheFill::Random => "random",
        }
    }
}

impl std::fmt::Display for CacheFill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One model, context, batch and decode path.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchRow {
    pub experiment: String,
    /// The run folder whose weights were timed (`mha_tiny-s2`), apart from its experiment's
    /// name; `None` for an experiment file's random weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    pub attention: String,
    pub decode: DecodePath,
    pub rank: Option<usize>,
    pub d_model: usize,
    pub batch: usize,
    pub context: usize,
    pub kv_bytes_per_token_formula: usize,
    pub kv_bytes_per_token_measured: usize,
    /// Bytes the filled cache holds: `context * batch * bytes per token`.
    pub cache_bytes: usize,
    /// How the cache was filled (files written before this was recorded prefilled).
    #[serde(default)]
    pub fill: CacheFill,
    /// Prefill speed; `None` when the cache was filled without a prefill.
    pub prefill_tokens_per_s: Option<f64>,
    pub decode_tokens_per_s: f64,
    pub decode_ms_per_token: f64,
    /// Bytes one decode step must read at least, from the formulas: every weight once (a
    /// learned position table only its row) and the whole filled cache of the batch.
    #[serde(default)]
    pub decode_bytes_per_step: Option<usize>,
    /// `decode_bytes_per_step` over the median step time, GB/s (10^9 bytes).
    #[serde(default)]
    pub decode_gb_per_s: Option<f64>,
    /// The fastest and the slowest of the timed runs, ms/token (absent in files written before
    /// it was recorded).
    #[serde(default)]
    pub decode_ms_per_token_range: Option<(f64, f64)>,
    /// Timed decode steps per run, and timed runs.
    #[serde(default)]
    pub decode_steps: Option<usize>,
    #[serde(default)]
    pub repeats: Option<usize>,
    /// ms/token of every timed round, in round order (rounds interleave all rows of one bench,
    /// so round `i` of two rows ran side by side).
    #[serde(default)]
    pub decode_ms_per_token_rounds: Vec<f64>,
    /// `kv bytes / kv bytes of the first model`.
    pub kv_vs_first: f64,
    /// `decode tokens/s / that of the first model` (same context, batch).
    pub decode_vs_first: f64,
    /// For MLA: `decode tokens/s / that of the full-rank MLA row` (same positions, layout,
    /// decode path, context, batch), when one was benched.
    pub decode_vs_full_rank: Option<f64>,
    pub weights: String,
    /// The machine's 1-minute load average when the bench began ([`crate::backend::load_average`]),
    /// and the CPU threads it has: a load near or past this process's own threads means other
    /// work shared the cores. Absent in rows benched before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_before: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_threads: Option<usize>,
}

impl BenchRow {
    /// Whether other work shared the machine when the row was benched: a 1-minute load of at
    /// least half the CPU threads before this bench began (which is itself idle then: it has
    /// loaded its models and not started timing).
    pub fn under_load(&self) -> bool {
        match (self.load_before, self.cpu_threads) {
            (Some(load), Some(threads)) => load >= threads as f64 / 2.0,
            _ => false,
        }
    }
}

/// What `mla-lab convert` made a run's start weights from (`conversion.json`), and how; the
/// run's summary carries it as its `initialisation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Converted {
    /// The source run's folder, as given.
    pub source: String,
    /// The source run's experiment.
    pub source_experiment: String,
    #[serde(flatten)]
    pub conversion: crate::model::convert::Conversion,
    /// The target experiment the weights were converted for, as RON: what fine-tuning checks
    /// the experiment it is given against (absent in records written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl Converted {
    /// The fields of the experiment a conversion depends on: what a fine-tune's experiment must
    /// share with the target the weights were converted for.
    pub const IDENTITY: [&'static str; 4] = ["model", "data", "seed", "convert_from"];

    /// What differs, in the fields the conversion depends on ([`Converted::IDENTITY`]), between
    /// the target it was made for and `exp`; nothing where the record does not say its target.
    pub fn differences(&self, exp: &crate::experiment::Experiment) -> Vec<String> {
        let Some(text) = &self.target else {
            return vec![];
        };
        let Ok(target) = crate::experiment::Experiment::parse(text, "conversion.json") else {
            return vec!["target: unreadable in conversion.json".into()];
        };
        target
            .differences(exp)
            .into_iter()
            .filter(|d| Self::IDENTITY.iter().any(|f| d.starts_with(f)))
            .collect()
    }
}

/// A converted run's source and its converted weights, before any fine-tuning, scored on the
/// same validation windows (`conversion_eval.json`): what the conversion itself cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversionEval {
    pub source: LossReport,
    pub converted: LossReport,
}

impl std::fmt::Display for Converted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let energy: Vec<String> = self
            .conversion
            .energy
            .iter()
            .map(|e| format!("{e:.4}"))
            .collect();
        if self.conversion.energy.is_empty() {
            return write!(
                f,
                "converted from {} ({}): {}",
                self.source_experiment, self.source, self.conversion.method
            );
        }
        write!(
            f,
            "converted from {} ({}): {} at rank {}, energy kept per layer {}",
            self.source_experiment,
            self.source,
            self.conversion.method,
            self.conversion.rank,
            energy.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval_json(loss: &str) -> String {
        format!(
            r#"{{"data":"validation split","loss":{loss},"perplexity":1.5,"windows":3,"tokens":90,"unigram_entropy":5.4}}"#
        )
    }

    #[test]
    fn a_bench_begun_with_half_the_threads_busy_is_under_load() {
        let row = |load, threads| {
            BenchRow {
            load_before: load,
            cpu_threads: threads,
            ..serde_json::from_str(
                r#"{"experiment":"x","attention":"MHA","decode":"-","rank":null,"d_model":8,"batch":1,"context":4,"kv_bytes_per_token_formula":4,"kv_bytes_per_token_measured":4,"cache_bytes":16,"prefill_tokens_per_s":null,"decode_tokens_per_s":1.0,"decode_ms_per_token":1.0,"kv_vs_first":1.0,"decode_vs_first":1.0,"decode_vs_full_rank":null,"weights":"random"}"#,
            )
            .unwrap()
        }
        };
        assert!(!row(None, None).under_load(), "unknown: not flagged");
        assert!(!row(Some(0.4), Some(2)).under_load());
        assert!(row(Some(1.0), Some(2)).under_load());
        assert!(row(Some(2.1), Some(2)).under_load());
        assert!(!row(Some(2.1), Some(16)).under_load());
    }

    #[test]
    fn a_share_of_nothing_reads_as_no_value() {
        assert_eq!(Share::new(0, 0).to_string(), "- (n=0, nothing to count)");
        assert_eq!(Share::new(1, 4).to_string(), "0.250 (n=4)");
        assert_eq!(format!("{:.1}", Share::new(1, 4)), "0.2 (n=4)");
    }

    #[test]
    fn a_loss_below_zero_or_out_of_range_is_refused_and_a_real_one_read() {
        let read = |loss: &str| serde_json::from_str::<LossReport>(&eval_json(loss));
        assert_eq!(read("0.4404").unwrap().loss, 0.4404);
        assert_eq!(read("0.0").unwrap().loss, 0.0);
        for bad in ["-5.0", "-1e-9", "1e999"] {
            let err = read(bad).unwrap_err().to_string();
            assert!(
                err.contains("is not one") || err.contains("out of range"),
                "{bad}: {err}"
            );
        }
        let summary = |val: &str| {
            format!(
                r#"{{"experiment":"x","params":1,"non_embedding_params":1,"kv_bytes_per_token_f32":4,"steps":1,"tokens_seen":1,"final_train_loss":1.0,"final_val_loss":{val},"final_val_perplexity":null,"val_unigram_entropy":5.0,"wall_time_s":1.0,"backend":"cpu (flex)"}}"#
            )
        };
        let ok: TrainSummary = serde_json::from_str(&summary("null")).unwrap();
        assert_eq!(ok.final_val_loss, None);
        assert_eq!(ok.learned_nothing(), None);
        // Above the unigram entropy (5.0 here): learned nothing; below it: a run that learned.
        let hopeless: TrainSummary = serde_json::from_str(&summary("11.9")).unwrap();
        let said = hopeless.learned_nothing().expect("a warning");
        assert!(
            said.contains("11.9000") && said.contains("5.0000"),
            "{said}"
        );
        let learned: TrainSummary = serde_json::from_str(&summary("2.5")).unwrap();
        assert_eq!(learned.learned_nothing(), None);
        let err = serde_json::from_str::<TrainSummary>(&summary("-5.0")).unwrap_err();
        assert!(err.to_string().contains("a loss of -5 is not one"), "{err}");
    }
}
