//! The binary's command line: clap's types, each turned into the library's options for its
//! command. Not part of the library; nothing in `mla_lab` knows about flags.

use std::path::PathBuf;

use anyhow::{Result, bail};
use burn::tensor::DType;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand, ValueEnum};

use mla_lab::artifacts::records::CacheFill;
use mla_lab::artifacts::{NotThisRun, RunFolder};
use mla_lab::backend::{BackendChoice, DeviceSpec};
use mla_lab::eval::EvalOptions;
use mla_lab::eval::judge::JudgeConfig;
use mla_lab::eval::probes::ProbeOptions;
use mla_lab::infer::bench::BenchOptions;
use mla_lab::infer::generate::GenerateOptions;
use mla_lab::infer::sampling::SamplingConfig;
use mla_lab::model::MlaDecode;
use mla_lab::options::InvalidOption;
use mla_lab::study::StudyOptions;
use mla_lab::train::memory::{TooBig, TooLarge};
use mla_lab::train::run::{Display, FolderError, TrainOptions};

/// Train small GPTs with MHA, MLA and MLA+RoPE attention and measure what each costs.
#[derive(Parser, Debug)]
#[command(name = "mla-lab", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// An experiment file to run (same as `mla-lab train FILE`).
    pub experiment: Option<PathBuf>,
    #[command(flatten)]
    pub train: TrainArgs,
    /// Device to run on, among the backends compiled in: auto (CUDA, then LibTorch, then wgpu,
    /// then the CPU), cpu, wgpu, cuda, libtorch or cubecl-cpu (burn's CubeCL CPU backend).
    #[arg(long, global = true, default_value = "auto", value_parser = backend_parser())]
    pub backend: BackendChoice,
    /// On the CPU backend (flex), run every layer by burn's composed operations instead of
    /// mla-lab's fused training kernels (attention, LayerNorm, GELU, the loss): for speed
    /// comparisons; the results agree within rounding.
    #[arg(long, global = true)]
    pub composed: bool,
}

fn backend_parser() -> impl TypedValueParser<Value = BackendChoice> {
    PossibleValuesParser::new(BackendChoice::ALL.map(BackendChoice::name))
        .map(|name| name.parse().expect("one of the listed names"))
}

fn fill_parser() -> impl TypedValueParser<Value = CacheFill> {
    PossibleValuesParser::new(CacheFill::ALL.map(CacheFill::name)).map(|word| {
        *CacheFill::ALL
            .iter()
            .find(|f| f.name() == word)
            .expect("one of the listed words")
    })
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Parameters and KV-cache cost of experiments, one table.
    Info {
        /// Experiment RON files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        /// Element type the KV cache is counted in.
        #[arg(long, value_enum, default_value_t = CacheDtype::F32)]
        dtype: CacheDtype,
        /// The training memory in passes of this many rows (instead of each file's
        /// train.micro_batch): what `train --micro-batch N` would hold.
        #[arg(long)]
        micro_batch: Option<usize>,
    },
    /// Train an experiment.
    Train {
        file: PathBuf,
        #[command(flatten)]
        opts: TrainArgs,
    },
    /// Convert a trained MHA run to MLA: a new run folder whose weights are the run's with keys
    /// and values factored by SVD at the experiment's rank (an Mla attention with latent_norm:
    /// false; rope_dim: 0 for learned positions, else a divisor of the head width that the
    /// rotary part moves into), and the loss of both, measured; `train` on that experiment,
    /// with the run's --seed, fine-tunes it for the experiment's steps.
    Convert {
        /// The MHA run folder.
        run: PathBuf,
        /// The MLA experiment file: the source's model with only the attention changed, and
        /// its data.
        #[arg(long)]
        to: PathBuf,
        /// Where run folders live.
        #[arg(long, default_value = "artifacts")]
        artifacts: PathBuf,
        /// Score only the first N validation windows; default: the whole held-out split.
        #[arg(long, value_name = "N")]
        eval_windows: Option<usize>,
    },
    /// Generate and prepare data.
    #[command(subcommand)]
    Data(DataCommand),
    /// Continue a prompt with a trained run, streaming the text.
    Generate(GenerateArgs),
    /// Validation loss and perplexity of a run, on its held-out split or a story file.
    Eval(EvalArgs),
    /// Train what is missing, then eval, probe and bench every experiment, then report.
    Study(StudyArgs),
    /// A study on a Slurm cluster: one array task per experiment and seed, then the report.
    Slurm(Box<slurm::SlurmArgs>),
    /// The paper's tables and plots from finished runs.
    Report {
        /// Run folders.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Run folders of a sweep of the peak learning rate, after the run folders: a row's
        /// experiment at its own peak and at others, one seed each. The loss claims are judged
        /// again as if each swept row had trained at its best peak.
        #[arg(long, num_args = 1..)]
        sweep: Vec<PathBuf>,
        #[arg(long, default_value = "artifacts/report")]
        out: PathBuf,
        /// Documents whose `<!-- report: NAME -->` … `<!-- /report -->` blocks are filled with
        /// the report's sections (variants, verdicts, units, copying), in place.
        #[arg(long, num_args = 1..)]
        splice: Vec<PathBuf>,
    },
    /// Where validation loss flattens: fits L(t) = L∞ + A·t^(−α) to long runs' curves and
    /// writes calibration.md and a plot.
    Calibrate {
        /// Run folders (trained at a constant learning rate, validated often).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        #[arg(long, default_value = "artifacts/calibration")]
        out: PathBuf,
        /// Fit the points from this step on; default: the second half of each run.
        #[arg(long)]
        fit_from_step: Option<usize>,
    },
    /// KV-cache bytes and prefill/decode speed, side by side.
    Bench(BenchArgs),
    /// The decode map measured by `scripts/decode-map.sh run` (a folder of bench rows, PyTorch
    /// points and triads from one sitting) as `map.md` and plots.
    DecodeMap {
        /// The measurement folder.
        dir: PathBuf,
        /// Where `map.md` and the plots go.
        #[arg(long, default_value = "docs/decode")]
        out: PathBuf,
    },
    /// The machine's memory bandwidth (STREAM's triad), the roof for decode steps bound by
    /// memory.
    Bandwidth {
        /// Bytes of the three arrays together, MiB: several times the caches.
        #[arg(long, default_value_t = 1536)]
        mib: usize,
        /// Threads; defaults to the cores available.
        #[arg(long)]
        threads: Option<usize>,
        /// Timed passes; the best is the bandwidth.
        #[arg(long, default_value_t = 10)]
        passes: usize,
        /// A JSON object instead of a line.
        #[arg(long)]
        json: bool,
    },
    /// The device each backend would run on here (a software wgpu adapter marked so), and the
    /// one `--backend` takes.
    Devices,
}

#[derive(clap::Args, Debug, Clone)]
pub struct TrainArgs {
    /// Continue the run in the artifact folder from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Start over in an artifact folder that holds another run.
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    /// Progress lines instead of a dashboard.
    #[arg(long)]
    pub headless: bool,
    /// Artifacts folder.
    #[arg(long, default_value = "artifacts")]
    pub artifacts: PathBuf,
    /// Training seed (initial weights, window order) instead of the file's; the run goes to
    /// `<artifacts>/<name>-s<SEED>`.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Devices of the backend to train on, the file's batch split evenly across them: a count
    /// (4: the first four) or indices (0,1,2,3; one alone as 2,). On the CPU, which is one
    /// device, N replicas train side by side (the same arithmetic; not meant to be faster).
    #[arg(long)]
    pub devices: Option<DeviceSpec>,
    /// Rows of the batch per forward and backward pass on a device (instead of the file's
    /// train.micro_batch): the passes' gradients are summed into one optimizer step, so the run
    /// is the same with less memory. A divisor of the batch (of each device's share).
    #[arg(long)]
    pub micro_batch: Option<usize>,
}

impl TrainArgs {
    pub fn options(self, backend: BackendChoice, terminal: bool) -> TrainOptions {
        TrainOptions {
            artifacts: self.artifacts,
            resume: self.resume,
            force: self.force,
            display: if self.headless || !terminal {
                Display::Lines
            } else {
                Display::Dashboard
            },
            backend,
            seed: self.seed,
            devices: self.devices,
            micro_batch: self.micro_batch,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// Run folder, `artifacts/<name>`.
    pub run: PathBuf,
    #[arg(long, default_value = "Once upon a time")]
    pub prompt: String,
    #[arg(long, default_value_t = 200)]
    max_new_tokens: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Decode MLA through the reference path (up-projecting the latent every step).
    #[arg(long)]
    pub naive: bool,
}

impl GenerateArgs {
    pub fn options(&self) -> GenerateOptions {
        GenerateOptions {
            max_new_tokens: self.max_new_tokens,
            sampling: SamplingConfig {
                temperature: self.temperature,
                top_k: Some(self.top_k),
                top_p: Some(self.top_p),
            },
            seed: self.seed,
        }
    }
}

/// `--naive`: MLA's reference decode path instead of the absorbed one.
pub fn decode_path(naive: bool) -> MlaDecode {
    if naive {
        MlaDecode::Naive
    } else {
        MlaDecode::Absorbed
    }
}

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// Run folder, `artifacts/<name>`.
    pub run: PathBuf,
    /// Stories file (TinyStories txt/json/jsonl or `data stories` output) instead of the
    /// run's validation split.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Score only the first N windows (windows start every context/2 tokens); default: the
    /// whole split or file.
    #[arg(long)]
    windows: Option<usize>,
    /// Also run the story probes on this many held-out synthetic stories.
    #[arg(long, default_value_t = 0)]
    probes: usize,
    #[command(flatten)]
    judge: JudgeArgs,
    #[arg(long)]
    pub json: bool,
    /// Generate the probes' stories through MLA's reference decode path.
    #[arg(long)]
    pub naive: bool,
    #[arg(long, default_value = "artifacts")]
    artifacts: PathBuf,
}

impl EvalArgs {
    pub fn options(&self) -> EvalOptions {
        EvalOptions {
            data: self.data.clone(),
            windows: self.windows,
            probes: ProbeOptions {
                stories: self.probes,
                ..ProbeOptions::default()
            },
            judge: self.judge.config(),
            cache: RunFolder::token_cache(&self.artifacts),
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct StudyArgs {
    /// Experiment files or folders of them (e.g. experiments/small/).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    #[arg(long, default_value = "artifacts")]
    pub(crate) artifacts: PathBuf,
    /// Report folder (default <artifacts>/report).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Score only the first N validation windows; default: the whole held-out split.
    #[arg(long)]
    pub(crate) eval_windows: Option<usize>,
    #[arg(long, default_value_t = 50)]
    pub(crate) probe_stories: usize,
    #[arg(long, default_value = "64,128,256,512")]
    pub(crate) contexts: String,
    /// Training seeds, e.g. 1,2,3 or 1-10: one run of every experiment per seed (`<name>-s<seed>`),
    /// all sharing one token cache and validation set; the report gives mean ± sd and
    /// confidence intervals across them.
    #[arg(long)]
    pub(crate) seeds: Option<String>,
    /// Also keep every run's records (no weights) in DIR/<run>/, and restore a finished run
    /// from there instead of training it again: a study that spans sessions or machines (DIR
    /// inside the checkout, committed as runs finish).
    #[arg(long, value_name = "DIR")]
    pub(crate) records: Option<PathBuf>,
    /// Train again a run whose folder or records entry holds a run of another experiment
    /// (e.g. after the file was edited); its old results go.
    #[arg(long)]
    pub(crate) force: bool,
    #[command(flatten)]
    pub(crate) judge: JudgeArgs,
}

impl StudyArgs {
    pub fn options(&self, backend: BackendChoice) -> Result<StudyOptions> {
        Ok(StudyOptions {
            report: self
                .out
                .clone()
                .unwrap_or_else(|| self.artifacts.join("report")),
            artifacts: self.artifacts.clone(),
            backend,
            eval_windows: self.eval_windows,
            probes: ProbeOptions {
                stories: self.probe_stories,
                ..ProbeOptions::default()
            },
            bench: BenchOptions {
                contexts: parse_list("contexts", &self.contexts)?,
                ..BenchOptions::default()
            },
            judge: self.judge.config(),
            seeds: match &self.seeds {
                Some(list) => parse_seeds(list)?,
                None => vec![],
            },
            records: self.records.clone(),
            force: self.force,
        })
    }
}

/// Parses `1,2,3` or `1-46` or both (`1-3,7`): distinct non-negative integers, a range
/// `a-b` standing for a, a+1, …, b (at most 10,000 seeds in all).
pub(crate) fn parse_seeds(text: &str) -> Result<Vec<u64>> {
    let item = |v: &str| -> Option<Vec<u64>> {
        match v.trim().split_once('-') {
            Some((a, b)) => {
                let (a, b): (u64, u64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                (a <= b && b - a < 10_000).then(|| (a..=b).collect())
            }
            None => Some(vec![v.trim().parse().ok()?]),
        }
    };
    let seeds: Option<Vec<Vec<u64>>> = text.split(',').map(item).collect();
    match seeds.map(|s| s.concat()) {
        Some(s)
            if !s.is_empty()
                && s.len() <= 10_000
                && (1..s.len()).all(|i| !s[..i].contains(&s[i])) =>
        {
            Ok(s)
        }
        _ => bail!(
            "--seeds {text:?}: accepted: distinct non-negative integers separated by commas, or \
             ranges of them, e.g. 1,2,3 or 1-46 (at most 10000)"
        ),
    }
}

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Experiment files (random weights) or run folders (trained weights).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Cache fill levels; values above a model's context are skipped for it.
    #[arg(long, default_value = "128,256,512")]
    pub contexts: String,
    #[arg(long, default_value = "1")]
    pub batch: String,
    /// Build the experiment files' models with this context instead of their own (random
    /// weights), to measure decode speed past the context they train at.
    #[arg(long)]
    pub model_context: Option<usize>,
    /// Timed single-token decode steps per run.
    #[arg(long, default_value_t = 64)]
    decode_tokens: usize,
    /// Timed rounds over all rows (after one warm-up round); the median and the range are
    /// reported.
    #[arg(long, default_value_t = 7)]
    repeats: usize,
    /// How the cache is filled before the timed steps: `prefill` runs a prompt through the
    /// model (and times it); `random` writes N(0, 1) values straight into the cache, for
    /// large batches and long caches where a CPU prefill takes minutes (decode time does not
    /// depend on what the cache holds).
    #[arg(long, default_value = "prefill", value_parser = fill_parser())]
    fill: CacheFill,
    /// MLA decode paths to time, comma-separated: naive, absorbed.
    #[arg(long, default_value = "naive,absorbed")]
    mla_paths: String,
    /// One JSON object per row instead of the table.
    #[arg(long)]
    pub json: bool,
}

impl BenchArgs {
    pub fn options(&self) -> Result<BenchOptions> {
        Ok(BenchOptions {
            contexts: parse_list("contexts", &self.contexts)?,
            batches: parse_list("batch", &self.batch)?,
            decode_tokens: self.decode_tokens,
            repeats: self.repeats,
            fill: self.fill,
            mla_paths: mla_paths(&self.mla_paths)?,
        })
    }
}

/// `--mla-paths`: distinct names among naive and absorbed.
fn mla_paths(text: &str) -> Result<Vec<MlaDecode>> {
    let mut paths = Vec::new();
    for word in text.split(',').map(str::trim) {
        let path = match word {
            "naive" => MlaDecode::Naive,
            "absorbed" => MlaDecode::Absorbed,
            _ => bail!(
                "--mla-paths {text:?}: accepted: naive, absorbed or both, separated by a comma"
            ),
        };
        if !paths.contains(&path) {
            paths.push(path);
        }
    }
    Ok(paths)
}

#[derive(clap::Args, Debug, Clone)]
pub struct JudgeArgs {
    /// OpenAI-compatible endpoint for an LLM judge (e.g. http://localhost:8080/v1).
    #[arg(long)]
    judge_url: Option<String>,
    #[arg(long, default_value = "gpt-4o-mini")]
    judge_model: String,
    /// Environment variable holding the judge's API key.
    #[arg(long, default_value = "OPENAI_API_KEY")]
    judge_key_env: String,
    /// Stories the judge grades per run.
    #[arg(long, default_value_t = 20)]
    judge_stories: usize,
    #[arg(long, default_value_t = 60)]
    judge_timeout_s: u64,
}

impl JudgeArgs {
    fn config(&self) -> Option<(JudgeConfig, usize)> {
        let url = self.judge_url.clone()?;
        Some((
            JudgeConfig {
                url,
                model: self.judge_model.clone(),
                key: std::env::var(&self.judge_key_env).ok(),
                timeout: std::time::Duration::from_secs(self.judge_timeout_s),
            },
            self.judge_stories,
        ))
    }
}

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Write synthetic stories in the TinyStories text format, with metadata as JSON lines.
    Stories {
        #[arg(long, default_value_t = 100_000)]
        count: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Stories file to write.
        #[arg(long)]
        out: PathBuf,
        /// Metadata file (default: the stories file with `.meta.jsonl`).
        #[arg(long)]
        meta: Option<PathBuf>,
    },
    /// Tokenize experiments' data into the token cache (reused when the inputs match).
    Prepare {
        /// Experiment RON files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Artifacts folder; the cache goes to `<artifacts>/cache/tokens/`.
        #[arg(long, default_value = "artifacts")]
        artifacts: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CacheDtype {
    F32,
    F16,
    Bf16,
}

impl From<CacheDtype> for DType {
    fn from(d: CacheDtype) -> DType {
        match d {
            CacheDtype::F32 => DType::F32,
            CacheDtype::F16 => DType::F16,
            CacheDtype::Bf16 => DType::BF16,
        }
    }
}

/// An error as the command line shows it: its causes joined by `: `, an invalid option shown
/// as its flag (`top_p` as `--top-p`), and for a run folder that cannot be trained into as
/// asked, the flag that changes that.
pub fn explain(e: &anyhow::Error) -> String {
    let text: Vec<String> = e
        .chain()
        .map(|cause| match cause.downcast_ref::<InvalidOption>() {
            Some(o) => format!(
                "--{} {}: accepted: {}",
                o.option.replace('_', "-"),
                o.value,
                o.accepted
            ),
            None => cause.to_string(),
        })
        .collect();
    let text = text.join(": ");
    // A run refused for memory names the micro-batch that fits as the file's field; the
    // command line can give it too.
    let fits = e
        .downcast_ref::<TooBig>()
        .and_then(|t| t.fits.filter(|f| f.0 < t.rows))
        .or_else(|| {
            e.downcast_ref::<TooLarge>()
                .and_then(|t| t.fits.filter(|f| f.0 < t.rows))
        });
    if let Some((m, _)) = fits {
        return format!("{text} (on the command line: --micro-batch {m})");
    }
    if e.downcast_ref::<NotThisRun>().is_some() {
        return format!(
            "{text}; use --force to train it again (its results go), or remove that folder"
        );
    }
    match e.downcast_ref::<FolderError>() {
        Some(FolderError::Unreadable(_)) => format!("{text}; use --force to start over"),
        Some(FolderError::Different(_)) => {
            format!("{text}; use another name, or --force to replace it")
        }
        Some(FolderError::NothingToResume(_)) => format!("--resume: {text}"),
        Some(FolderError::Finished { .. }) => {
            format!("{text}; use --force to train it again (its results go), or another name")
        }
        Some(FolderError::HoldsRun { .. }) => {
            format!("{text}; use --resume to continue it or --force to start over")
        }
        Some(FolderError::Interrupted { .. }) => format!("{text}; continue with --resume"),
        None => text,
    }
}

/// Parses `128,256,512`, naming the flag on error.
pub fn parse_list(flag: &str, text: &str) -> Result<Vec<usize>> {
    let values: Result<Vec<usize>, _> = text.split(',').map(|v| v.trim().parse()).collect();
    match values {
        Ok(v) if !v.is_empty() && v.iter().all(|&x| x > 0) => Ok(v),
        _ => bail!(
            "--{flag} {text:?}: accepted: positive integers separated by commas, e.g. 128,256"
        ),
    }
}

pub mod slurm;

#[cfg(test)]
mod tests;
