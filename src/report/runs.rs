//! The runs a report compares, read back from their folders, and the questions the report asks
//! of them: which is the baseline, which is a run's full-rank peer, how fast each decodes.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::artifacts::records::{
    BenchRow, ConversionEval, Converted, DecodePath, JudgeReport, LossReport, ProbeReport, Sample,
    TrainSummary,
};
use crate::artifacts::{RunFolder, metrics, read_json};
use crate::experiment::Experiment;
use crate::infer::bench::is_full_rank_of;
use crate::model::{AttentionConfig, GptConfig, LatentLayout, Positions};

/// The attribute consistency from which a run counts as copying the story's attribute.
pub const COPIED_AT: f64 = 0.5;

/// Everything known about one run.
#[derive(Clone)]
pub struct RunData {
    /// The experiment's name, shared by its seeds.
    pub name: String,
    /// The run folder's name: the experiment's, with `-s<seed>` for one of several seeds.
    pub folder: String,
    /// The run folder.
    pub dir: std::path::PathBuf,
    /// The training seed.
    pub seed: u64,
    pub experiment: Experiment,
    pub summary: TrainSummary,
    pub eval: Option<LossReport>,
    pub probes: Option<ProbeReport>,
    pub judge: Option<JudgeReport>,
    /// Continuations of the fixed prompts (`samples.json`), when the study wrote them.
    pub samples: Vec<Sample>,
    pub bench: Vec<BenchRow>,
    /// (step, val loss) from metrics.csv.
    pub val_curve: Vec<(usize, f64)>,
    /// The corpus's entropy floor on the validation split ([`crate::eval::entropy_floor`]),
    /// nats/token, where known.
    pub floor: Option<f64>,
    /// For a run fine-tuned from a conversion (`mla-lab convert`): what was converted, how,
    /// and what the conversion cost before fine-tuning, where measured.
    pub converted: Option<(Converted, Option<ConversionEval>)>,
}

impl RunData {
    /// Reads the run in `dir`; every record it holds must read ([`RunFolder::check_records`]).
    pub fn load(dir: &Path) -> Result<RunData> {
        let folder = RunFolder::new(dir);
        let experiment = Experiment::load(folder.experiment())?;
        folder.check_records()?;
        let summary: TrainSummary = read_json(&folder.summary())?.with_context(|| {
            format!(
                "{}: no summary.json; the run has not finished (train it, or run `mla-lab study`)",
                dir.display()
            )
        })?;
        let (rows, damaged) = metrics::read_whole(&folder.metrics())?;
        for d in damaged {
            eprintln!(
                "report: {}:{}: not a metrics row, left out of the curve",
                folder.metrics().display(),
                d.line
            );
        }
        let val_curve = rows
            .into_iter()
            .filter_map(|r| Some((r.step, r.val_loss?)))
            .collect();
        Ok(RunData {
            name: experiment.name.clone(),
            folder: folder.name(),
            dir: dir.to_path_buf(),
            seed: experiment.training_seed(),
            summary,
            eval: read_json(&folder.eval())?,
            probes: read_json(&folder.probes())?,
            judge: read_json(&folder.judge())?,
            samples: read_json(&folder.samples())?.unwrap_or_default(),
            bench: read_json(&folder.bench())?.unwrap_or_default(),
            val_curve,
            experiment,
            floor: None,
            converted: read_json::<Converted>(&folder.conversion())?
                .map(|c| Ok::<_, anyhow::Error>((c, read_json(&folder.conversion_eval())?)))
                .transpose()?,
        })
    }

    /// Validation loss: the `eval` figure (more windows) when there is one, else the last
    /// validation during training.
    pub fn val_loss(&self) -> Option<f64> {
        self.eval
            .as_ref()
            .map(|e| e.loss)
            .or(self.summary.final_val_loss)
    }

    /// This run as if its validation loss were `nats` lower where the verdicts read it (its
    /// `eval` loss and last validation; not its curve or perplexity): a what-if,
    /// [`super::peaks::at_best_peaks`].
    pub fn with_loss_lowered(&self, nats: f64) -> RunData {
        let mut r = self.clone();
        if let Some(e) = &mut r.eval {
            e.loss -= nats;
        }
        if let Some(l) = &mut r.summary.final_val_loss {
            *l -= nats;
        }
        r
    }

    /// Validation loss above the corpus's entropy floor.
    pub fn excess_loss(&self) -> Option<f64> {
        Some(self.val_loss()? - self.floor?)
    }

    pub fn kv_bytes(&self) -> usize {
        self.experiment
            .model
            .kv_bytes_per_token(burn::tensor::DType::F32)
    }

    pub fn label(&self) -> String {
        self.experiment.model.label()
    }

    /// MLA (rank, rope_dim, layout).
    pub fn mla(&self) -> Option<(usize, usize, LatentLayout)> {
        match self.experiment.model.attention {
            AttentionConfig::Mla(c) => Some((c.rank, c.rope_dim, c.layout)),
            _ => None,
        }
    }

    /// Decode tokens/s at `context` (batch 1; absorbed path for MLA).
    pub fn decode_at(&self, context: usize) -> Option<f64> {
        self.decode_row_at(context).map(|r| r.decode_tokens_per_s)
    }

    /// The mean of the character, object, attribute (where measured) and grammar probes: one
    /// story-quality score. `None` when a probe has no cases (probes of no stories, or no
    /// continuation that names anyone): a share of nothing has no value, and a mean over fewer
    /// probes would not compare with a peer's over all of them.
    pub fn story_score(&self) -> Option<f64> {
        let p = self.probes.as_ref()?;
        let parts: Vec<_> = [
            Some(p.character_consistency),
            Some(p.object_consistency),
            p.attribute_consistency,
            Some(p.grammar),
        ]
        .into_iter()
        .flatten()
        .collect();
        if parts.iter().any(|s| s.n == 0) {
            return None;
        }
        Some(parts.iter().map(|s| s.value).sum::<f64>() / parts.len() as f64)
    }

    /// Whether the run copies a story's attribute ("the red kite"): its attribute consistency
    /// is at least [`COPIED_AT`]. Learned positions either learn to copy or do not; the share
    /// is near 0 or near 1. `None` where it was not measured or had no cases.
    pub fn copied(&self) -> Option<bool> {
        let a = self.probes.as_ref()?.attribute_consistency?;
        (a.n > 0).then_some(a.value >= COPIED_AT)
    }

    /// ms/token at `context`, the median over the bench's rounds (batch 1, absorbed path for
    /// MLA).
    pub fn decode_ms_at(&self, context: usize) -> Option<f64> {
        self.decode_row_at(context).map(|r| r.decode_ms_per_token)
    }

    /// ms/token at `context` as [`RunData::decode_ms_at`], unless its bench began with other
    /// work on the machine ([`BenchRow::under_load`]); a bench from before `bench.json` kept
    /// the load counts as alone, and the report says how many there are.
    pub fn decode_ms_alone(&self, context: usize) -> Option<f64> {
        self.decode_row_alone(context)
            .map(|r| r.decode_ms_per_token)
    }

    /// Decode tokens/s at `context` as [`RunData::decode_at`], unless benched under load.
    pub fn decode_alone(&self, context: usize) -> Option<f64> {
        self.decode_row_alone(context)
            .map(|r| r.decode_tokens_per_s)
    }

    /// The bench row at `context`, unless its bench began under load.
    fn decode_row_alone(&self, context: usize) -> Option<&BenchRow> {
        self.decode_row_at(context).filter(|r| !r.under_load())
    }

    /// The bench row at `context` (batch 1, absorbed path for MLA).
    pub fn decode_row_at(&self, context: usize) -> Option<&BenchRow> {
        self.batch_one_decode().find(|r| r.context == context)
    }

    /// The bench rows the report shows: batch 1, and MLA's absorbed path.
    pub fn batch_one_decode(&self) -> impl Iterator<Item = &BenchRow> {
        self.bench
            .iter()
            .filter(|r| r.batch == 1 && r.decode != DecodePath::Naive)
    }
}

/// The runs of one experiment, one per training seed.
pub struct Variant<'a> {
    pub name: String,
    pub runs: Vec<&'a RunData>,
}

impl<'a> Variant<'a> {
    /// The first run: what the seeds share (experiment, parameters, cache).
    pub fn first(&self) -> &'a RunData {
        self.runs[0]
    }

    /// `metric` of every run that has it.
    pub fn values(&self, metric: impl Fn(&RunData) -> Option<f64>) -> Vec<f64> {
        self.runs.iter().filter_map(|r| metric(r)).collect()
    }

    /// `metric` of this variant and of `other`, paired by training seed: only runs that drew
    /// their initial weights the same way (their summaries' `initialisation`) share their
    /// random numbers, so only they are paired; a run drawn another way has no partner.
    pub fn paired(
        &self,
        other: &Variant,
        metric: impl Fn(&RunData) -> Option<f64>,
    ) -> Vec<(f64, f64)> {
        self.runs
            .iter()
            .filter_map(|r| {
                let o = other.runs.iter().find(|o| {
                    o.seed == r.seed && o.summary.initialisation == r.summary.initialisation
                })?;
                Some((metric(r)?, metric(o)?))
            })
            .collect()
    }
}

impl<'a> Variant<'a> {
    /// The runs of this variant that `keep` keeps, as a variant of the same name.
    pub fn only(&self, keep: impl Fn(&RunData) -> bool) -> Variant<'a> {
        Variant {
            name: self.name.clone(),
            runs: self.runs.iter().copied().filter(|r| keep(r)).collect(),
        }
    }
}

impl Variant<'_> {
    /// The change of validation loss against `base`, `100 (loss / base loss - 1)`, seed by seed.
    pub fn loss_change(&self, base: &Variant) -> Vec<f64> {
        self.paired(base, RunData::val_loss)
            .into_iter()
            .map(|(a, b)| 100.0 * (a / b - 1.0))
            .collect()
    }
}

/// The baselines losses are compared with, those present: MHA with learned positions (the
/// paper's), then MHA+RoPE.
pub fn baselines<'a>(variants: &'a [Variant<'a>]) -> Vec<&'a Variant<'a>> {
    let model = |v: &Variant| v.first().experiment.model.clone();
    let mha = variants.iter().find(|v| is_paper_baseline(&model(v)));
    let mha_rope = variants
        .iter()
        .find(|v| is_mha(&model(v)) && matches!(model(v).positions, Positions::Rope(_)));
    [mha, mha_rope].into_iter().flatten().collect()
}

/// Refuses runs a report would count twice or group wrongly, naming both folders: two runs of
/// one experiment name and training seed, or runs of one name that differ in more than their
/// training seed (they are not seeds of one experiment).
pub fn one_run_per_seed(runs: &[RunData]) -> Result<()> {
    for (i, r) in runs.iter().enumerate() {
        for o in runs[..i].iter().filter(|o| o.name == r.name) {
            if o.seed == r.seed {
                bail!(
                    "{} and {} are both runs of {:?} with training seed {}: each run is \
                     counted once; leave one out",
                    o.dir.display(),
                    r.dir.display(),
                    r.name,
                    r.seed
                );
            }
            let fields = o
                .experiment
                .with_training_seed(0)
                .run_differences(&r.experiment.with_training_seed(0));
            if !fields.is_empty() {
                bail!(
                    "{} and {} are runs of two different experiments named {:?} ({}): a report \
                     compares seeds of one experiment; rename one",
                    o.dir.display(),
                    r.dir.display(),
                    r.name,
                    fields.join("; ")
                );
            }
        }
    }
    Ok(())
}

/// The runs grouped by experiment, in the order they first appear.
pub fn variants(runs: &[RunData]) -> Vec<Variant<'_>> {
    let mut out: Vec<Variant> = vec![];
    for r in runs {
        match out.iter_mut().find(|v| v.name == r.name) {
            Some(v) => v.runs.push(r),
            None => out.push(Variant {
                name: r.name.clone(),
                runs: vec![r],
            }),
        }
    }
    out
}

/// The baseline: the MHA run with learned positions, else any MHA run, else the first.
pub fn baseline(runs: &[RunData]) -> &RunData {
    runs.iter()
        .find(|r| is_paper_baseline(&r.experiment.model))
        .or_else(|| runs.iter().find(|r| is_mha(&r.experiment.model)))
        .unwrap_or(&runs[0])
}

/// Decode speed of `v` over `full`'s at context `c`, seed by seed: full rank's ms/token over
/// `v`'s, each its median over its bench's rounds, for the seeds both benched with no other
/// work on the machine ([`RunData::decode_ms_alone`]). One ratio per seed: rounds of two
/// benches are not paired (they ran at different times).
pub fn speed_ratios(v: &Variant, full: &Variant, c: usize) -> Vec<f64> {
    v.paired(full, |r| r.decode_ms_alone(c))
        .into_iter()
        .map(|(v, f)| f / v)
        .collect()
}

/// The variant with `v`'s attention at full rank ([`is_full_rank_of`]).
pub fn full_rank<'a>(variants: &'a [Variant<'a>], v: &Variant) -> Option<&'a Variant<'a>> {
    let model = &v.first().experiment.model;
    variants
        .iter()
        .find(|f| is_full_rank_of(&f.first().experiment.model, model))
}

/// Full multi-head attention: as many key/value heads as query heads.
pub fn is_mha(model: &GptConfig) -> bool {
    matches!(&model.attention, AttentionConfig::Mha(c) if c.kv_heads == model.n_heads)
}

/// The paper's baseline: MHA with learned positions.
pub fn is_paper_baseline(model: &GptConfig) -> bool {
    is_mha(model) && model.positions == Positions::Learned
}

/// The largest context benched for every run that was benched (a run not yet benched, such as
/// one whose seed's other runs are still to train, leaves the others' speed as it is).
pub fn common_context(runs: &[RunData]) -> Option<usize> {
    let benched: Vec<&RunData> = runs.iter().filter(|r| !r.bench.is_empty()).collect();
    let mut contexts: Vec<usize> = benched
        .first()?
        .bench
        .iter()
        .map(|r| r.context)
        .filter(|c| benched.iter().all(|r| r.decode_at(*c).is_some()))
        .collect();
    contexts.sort_unstable();
    contexts.last().copied()
}
