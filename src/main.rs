//! The `mla-lab` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use burn::tensor::DType;
use clap::{Parser, Subcommand, ValueEnum};

use mla_lab::backend::BackendChoice;
use mla_lab::data::{stories, tokens};
use mla_lab::eval::judge::JudgeConfig;
use mla_lab::eval::probes::{self, ProbeOptions};
use mla_lab::experiment::Experiment;
use mla_lab::infer::bench::{self, BenchOptions};
use mla_lab::infer::generate::{self, Limits, Run, TextStream};
use mla_lab::infer::sampling::{Sampler, SamplingConfig};
use mla_lab::info::{InfoRow, table};
use mla_lab::model::MlaDecode;
use mla_lab::report;
use mla_lab::study::{self, StudyOptions};
use mla_lab::train::run::{self, Display, TrainOptions};
use std::io::{IsTerminal, Write};

/// Train small GPTs with MHA, MLA and MLA+RoPE attention and measure what each costs.
#[derive(Parser, Debug)]
#[command(name = "mla-lab", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// An experiment file to run (same as `mla-lab train FILE`).
    experiment: Option<PathBuf>,
    #[command(flatten)]
    train: TrainArgs,
    /// Device to run on, among the backends compiled in.
    #[arg(long, global = true, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
}

#[derive(Subcommand, Debug)]
enum Command {
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
    },
    /// Train an experiment.
    Train {
        file: PathBuf,
        #[command(flatten)]
        opts: TrainArgs,
    },
    /// Generate and prepare data.
    #[command(subcommand)]
    Data(DataCommand),
    /// Continue a prompt with a trained run, streaming the text.
    Generate {
        /// Run folder, `artifacts/<name>`.
        run: PathBuf,
        #[arg(long, default_value = "Once upon a time")]
        prompt: String,
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
        naive: bool,
    },
    /// Validation loss and perplexity of a run, on its held-out split or a story file.
    Eval {
        /// Run folder, `artifacts/<name>`.
        run: PathBuf,
        /// Stories file (TinyStories txt/json/jsonl or `data stories` output) instead of the
        /// run's validation split.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Windows of `context` tokens to score (from the start of the stream).
        #[arg(long, default_value_t = 320)]
        windows: usize,
        /// Also run the story probes on this many held-out synthetic stories.
        #[arg(long, default_value_t = 0)]
        probes: usize,
        #[command(flatten)]
        judge: JudgeArgs,
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = "artifacts")]
        artifacts: PathBuf,
    },
    /// Train what is missing, then eval, probe and bench every experiment, then report.
    Study {
        /// Experiment files or folders of them (e.g. experiments/small/).
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        #[arg(long, default_value = "artifacts")]
        artifacts: PathBuf,
        /// Report folder (default <artifacts>/report).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, default_value_t = 320)]
        eval_windows: usize,
        #[arg(long, default_value_t = 50)]
        probe_stories: usize,
        #[arg(long, default_value = "64,128,256,512")]
        contexts: String,
        #[command(flatten)]
        judge: JudgeArgs,
    },
    /// The paper's tables and plots from finished runs.
    Report {
        /// Run folders.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        #[arg(long, default_value = "artifacts/report")]
        out: PathBuf,
    },
    /// KV-cache bytes and prefill/decode speed, side by side.
    Bench {
        /// Experiment files (random weights) or run folders (trained weights).
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Cache fill levels; values above a model's context are skipped for it.
        #[arg(long, default_value = "128,256,512")]
        contexts: String,
        #[arg(long, default_value = "1")]
        batch: String,
        /// Timed single-token decode steps per run.
        #[arg(long, default_value_t = 64)]
        decode_tokens: usize,
        /// Timed rounds over all rows (after one warm-up round); the median and the range are
        /// reported.
        #[arg(long, default_value_t = 7)]
        repeats: usize,
        /// One JSON object per row instead of the table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args, Debug, Clone)]
struct TrainArgs {
    /// Continue the run in the artifact folder from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Start over in an artifact folder that holds another run.
    #[arg(long)]
    force: bool,
    /// Progress lines instead of a dashboard.
    #[arg(long)]
    headless: bool,
    /// Artifacts folder.
    #[arg(long, default_value = "artifacts")]
    artifacts: PathBuf,
}

#[derive(clap::Args, Debug, Clone)]
struct JudgeArgs {
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
enum DataCommand {
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
enum CacheDtype {
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

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match (cli.command, cli.experiment) {
        (Some(Command::Info { files, json, dtype }), _) => info(&files, json, dtype.into()),
        (Some(Command::Train { file, opts }), _) => train(&file, opts, cli.backend),
        (None, Some(file)) => train(&file, cli.train, cli.backend),
        (Some(Command::Data(cmd)), _) => data(cmd),
        (
            Some(Command::Generate {
                run,
                prompt,
                max_new_tokens,
                temperature,
                top_k,
                top_p,
                seed,
                naive,
            }),
            _,
        ) => {
            let sampling = SamplingConfig {
                temperature,
                top_k: Some(top_k),
                top_p: Some(top_p),
            };
            generate(
                &run,
                &prompt,
                max_new_tokens,
                sampling,
                seed,
                naive,
                cli.backend,
            )
        }
        (
            Some(Command::Eval {
                run,
                data,
                windows,
                probes,
                judge,
                json,
                artifacts,
            }),
            _,
        ) => eval(
            &run,
            data.as_deref(),
            windows,
            probes,
            &judge,
            json,
            &artifacts,
            cli.backend,
        ),
        (
            Some(Command::Study {
                inputs,
                artifacts,
                out,
                eval_windows,
                probe_stories,
                contexts,
                judge,
            }),
            _,
        ) => {
            let (name, _) = mla_lab::backend::select(cli.backend)?;
            let opts = StudyOptions {
                report: out.unwrap_or_else(|| artifacts.join("report")),
                artifacts,
                backend: cli.backend,
                eval_windows,
                probes: ProbeOptions {
                    stories: probe_stories,
                    ..ProbeOptions::default()
                },
                bench: BenchOptions {
                    contexts: bench::parse_list("contexts", &contexts)?,
                    ..BenchOptions::default()
                },
                judge: judge.config(),
            };
            let files = study::study(&inputs, &opts, &machine(&name))?;
            for f in files {
                println!("wrote {}", f.display());
            }
            Ok(())
        }
        (Some(Command::Report { runs, out }), _) => {
            let (name, _) = mla_lab::backend::select(cli.backend)?;
            for f in report::write(&runs, &out, &machine(&name))? {
                println!("wrote {}", f.display());
            }
            Ok(())
        }
        (
            Some(Command::Bench {
                inputs,
                contexts,
                batch,
                decode_tokens,
                repeats,
                json,
            }),
            _,
        ) => {
            let opts = BenchOptions {
                contexts: bench::parse_list("contexts", &contexts)?,
                batches: bench::parse_list("batch", &batch)?,
                decode_tokens,
                repeats,
            };
            run_bench(&inputs, &opts, json, cli.backend)
        }
        (None, None) => bail!("nothing to do: give an experiment file, or see `mla-lab --help`"),
    }
}

fn generate(
    dir: &Path,
    prompt: &str,
    max_new_tokens: usize,
    sampling: SamplingConfig,
    seed: u64,
    naive: bool,
    backend: BackendChoice,
) -> Result<()> {
    sampling.validate()?;
    let (_, device) = mla_lab::backend::select(backend)?;
    let mut run = Run::load(dir, &device)?;
    if naive {
        run.model = run.model.with_mla_decode(MlaDecode::Naive);
    }
    let ids = run.tokenizer.encode(prompt)?;
    let limits = Limits {
        max_new_tokens,
        stop: Some(run.tokenizer.eot()),
    };
    let mut sampler = Sampler::new(sampling, seed);
    let mut stream = TextStream::default();
    let mut out = std::io::stdout().lock();
    write!(out, "{prompt}")?;
    out.flush()?;
    let mut failed = None;
    generate::generate(&run.model, &ids, &mut sampler, limits, |id| {
        match stream.push(&run.tokenizer, id) {
            Ok(piece) => {
                let _ = write!(out, "{piece}");
                let _ = out.flush();
            }
            Err(e) => failed = Some(e),
        }
    })?;
    writeln!(out)?;
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn run_bench(
    inputs: &[PathBuf],
    opts: &BenchOptions,
    json: bool,
    backend: BackendChoice,
) -> Result<()> {
    let (name, device) = mla_lab::backend::select(backend)?;
    let subjects = bench::subjects(inputs, &device)?;
    eprintln!(
        "bench on {name}: contexts {:?}, batch {:?}, {} decode steps, median of {} interleaved rounds after a warm-up round (rows print when all rounds are done)",
        opts.contexts, opts.batches, opts.decode_tokens, opts.repeats
    );
    let rows = bench::bench(subjects, opts, &device, |r| {
        eprintln!(
            "  {} {} batch {} context {}: {:.1} decode tok/s",
            r.experiment, r.decode, r.batch, r.context, r.decode_tokens_per_s
        )
    })?;
    if json {
        for r in &rows {
            println!("{}", serde_json::to_string(r)?);
        }
    } else {
        print!("{}", bench::table(&rows));
    }
    Ok(())
}

/// The machine in words, for reports.
fn machine(backend: &str) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{cores} CPU threads, {} {}, backend {backend}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

#[allow(clippy::too_many_arguments)]
fn eval(
    dir: &Path,
    data: Option<&Path>,
    windows: usize,
    probe_stories: usize,
    judge: &JudgeArgs,
    json: bool,
    artifacts: &Path,
    backend: BackendChoice,
) -> Result<()> {
    let (_, device) = mla_lab::backend::select(backend)?;
    let run = Run::load(dir, &device)?;
    let (stream, what) = mla_lab::eval::stream(&run, data, &artifacts.join("cache"))?;
    let r = mla_lab::eval::loss(
        &run.model,
        stream,
        windows,
        mla_lab::eval::EVAL_BATCH,
        &what,
    )?;
    let opts = ProbeOptions {
        stories: probe_stories,
        ..ProbeOptions::default()
    };
    let probes = (probe_stories > 0)
        .then(|| probes::run(&run.model, &run.tokenizer, &run.experiment, &opts))
        .transpose()?;
    let judged = match judge.config() {
        Some((cfg, n)) => Some(mla_lab::eval::judge::judge(
            &cfg,
            &study::probes_for_judge(&run, &opts, n)?,
        )?),
        None => None,
    };
    if json {
        let v = serde_json::json!({"loss": r, "probes": probes, "judge": judged});
        println!("{}", serde_json::to_string(&v)?);
        return Ok(());
    }
    println!(
        "{}: val loss {:.4} (ppl {:.2}) on {} ({} windows, {} tokens); unigram entropy {:.3}",
        run.experiment.name, r.loss, r.perplexity, r.data, r.windows, r.tokens, r.unigram_entropy
    );
    if let Some(p) = probes {
        println!(
            "probes on {} held-out stories: character consistency {}, object consistency {}, grammar {}, 3-gram repetition {}, distinct-2 {}, distinct-3 {}",
            p.stories,
            p.character_consistency,
            p.object_consistency,
            p.grammar,
            p.repetition_3gram,
            p.distinct_2,
            p.distinct_3
        );
    }
    if let Some(j) = judged {
        println!(
            "judge {} on {} stories: grammar {:.2} ± {:.2}, creativity {:.2} ± {:.2}, consistency {:.2} ± {:.2}",
            j.model,
            j.stories,
            j.grammar.mean,
            j.grammar.sd,
            j.creativity.mean,
            j.creativity.sd,
            j.consistency.mean,
            j.consistency.sd
        );
    }
    Ok(())
}

fn info(files: &[PathBuf], json: bool, dtype: DType) -> Result<()> {
    let mut rows = Vec::new();
    for file in files {
        let exp = Experiment::load(file)?;
        rows.push(InfoRow::new(&exp, dtype));
    }
    if json {
        for row in &rows {
            println!(
                "{}",
                serde_json::to_string(row).context("serialising a row")?
            );
        }
    } else {
        print!("{}", table(&rows));
    }
    Ok(())
}

fn train(file: &Path, args: TrainArgs, backend: BackendChoice) -> Result<()> {
    let opts = TrainOptions {
        artifacts: args.artifacts,
        resume: args.resume,
        force: args.force,
        display: if args.headless || !std::io::stdout().is_terminal() {
            Display::Lines
        } else {
            Display::Dashboard
        },
        backend,
    };
    let s = run::run(file, &opts)?;
    println!(
        "{}: {} steps, {} tokens, final val loss {} (unigram entropy {:.3}), {} training tok/s, {:.1} s on {}",
        s.experiment,
        s.steps,
        s.tokens_seen,
        s.final_val_loss
            .map_or("-".into(), |v| format!("{v:.4} (ppl {:.2})", v.exp())),
        s.val_unigram_entropy,
        s.tokens_per_s.map_or("-".into(), |t| format!("{t:.0}")),
        s.wall_time_s,
        s.backend
    );
    Ok(())
}

fn data(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Stories {
            count,
            seed,
            out,
            meta,
        } => {
            let meta = meta.unwrap_or_else(|| out.with_extension("meta.jsonl"));
            let stories = stories::generate_shown(count, seed);
            let create = |p: &PathBuf| {
                if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("{}: cannot create", dir.display()))?;
                }
                std::fs::File::create(p)
                    .map(std::io::BufWriter::new)
                    .with_context(|| format!("{}: cannot create", p.display()))
            };
            stories::write_text(create(&out)?, stories.iter().map(|s| s.text.as_str()))
                .with_context(|| format!("{}: cannot write", out.display()))?;
            let mut w = create(&meta)?;
            for s in &stories {
                serde_json::to_writer(&mut w, &s.meta)?;
                writeln!(w)?;
            }
            w.flush()
                .with_context(|| format!("{}: cannot write", meta.display()))?;
            let stats = stories::CorpusStats::of(stories.iter().map(|s| s.text.as_str()));
            println!("wrote {} and {}", out.display(), meta.display());
            println!(
                "{} stories ({} distinct), {} sentences ({} distinct), {} words ({} distinct), \
                 unigram entropy {:.3} bits/word",
                stats.stories,
                stats.distinct_stories,
                stats.sentences,
                stats.distinct_sentences,
                stats.words,
                stats.distinct_words,
                stats.unigram_entropy_bits
            );
            Ok(())
        }
        DataCommand::Prepare { files, artifacts } => {
            for file in files {
                let exp = Experiment::load(&file)?;
                let started = std::time::Instant::now();
                let d = tokens::prepare(&exp.data, exp.seed, &artifacts.join("cache"))?;
                let m = &d.manifest;
                println!(
                    "{}: {} stories ({} train, {} val) -> {} train + {} val tokens, {} ({} tokens), {} in {:.2} s{}",
                    exp.name,
                    m.stories,
                    m.train_stories,
                    m.val_stories,
                    m.train_tokens,
                    m.val_tokens,
                    d.tokenizer.name(),
                    m.vocab_size,
                    d.dir.display(),
                    started.elapsed().as_secs_f64(),
                    if d.reused { " (reused)" } else { "" }
                );
            }
            Ok(())
        }
    }
}
