//! The `mla-lab` command line: parse ([`cli`]), build the command's options, call the
//! library, print what it returns.

mod cli;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use burn::tensor::DType;
use clap::Parser;

use cli::{BenchArgs, Cli, Command, DataCommand, EvalArgs, GenerateArgs, decode_path};
use mla_lab::artifacts::RunFolder;
use mla_lab::artifacts::records::CacheFill;
use mla_lab::artifacts::run::Run;
use mla_lab::backend::{self, BackendChoice};
use mla_lab::data::{stories, tokens};
use mla_lab::experiment::Experiment;
use mla_lab::infer::{bench, generate, roofline};
use mla_lab::info::{InfoRow, table};
use mla_lab::train::memory;
use mla_lab::{report, study};

fn main() -> ExitCode {
    backend::keep_freed_memory();
    backend::quiet_vulkan_drivers();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", cli::explain(&e));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let backend = cli.backend;
    #[cfg(feature = "flex")]
    mla_lab::model::kernels::set_fused(!cli.composed);
    let terminal = std::io::stdout().is_terminal();
    match (cli.command, cli.experiment) {
        (
            Some(Command::Info {
                files,
                json,
                dtype,
                micro_batch,
            }),
            _,
        ) => info(&files, json, dtype.into(), micro_batch),
        (Some(Command::Train { file, opts }), _) => train(&file, opts.options(backend, terminal)),
        (None, Some(file)) => train(&file, cli.train.options(backend, terminal)),
        (Some(Command::Data(cmd)), _) => data(cmd),
        (
            Some(Command::Convert {
                run,
                to,
                artifacts,
                eval_windows,
            }),
            _,
        ) => convert(&run, &to, &artifacts, backend, eval_windows),
        (Some(Command::Generate(args)), _) => generate(&args, backend),
        (Some(Command::Eval(args)), _) => eval(&args, backend),
        (Some(Command::Slurm(args)), _) => {
            for line in cli::slurm::run(&args, backend, cli.composed)? {
                println!("{line}");
            }
            Ok(())
        }
        (Some(Command::Study(args)), _) => {
            let opts = args.options(backend)?;
            print_written(study::study(&args.inputs, &opts, &machine())?);
            Ok(())
        }
        (
            Some(Command::Report {
                runs,
                sweep,
                out,
                splice,
            }),
            _,
        ) => {
            print_written(report::write(&runs, &sweep, &out, &machine(), &splice)?);
            Ok(())
        }
        (
            Some(Command::Calibrate {
                runs,
                out,
                fit_from_step,
            }),
            _,
        ) => {
            print_written(report::calibration::write(
                &runs,
                &out,
                fit_from_step,
                &machine(),
            )?);
            Ok(())
        }
        (Some(Command::Bench(args)), _) => run_bench(&args, backend),
        (Some(Command::Devices), _) => devices(backend),
        (Some(Command::DecodeMap { dir, out }), _) => {
            let map = report::decode_map::DecodeMap::load(&dir)?;
            for path in report::decode_map::render(&map, &out)? {
                println!("{}", path.display());
            }
            Ok(())
        }
        (
            Some(Command::Bandwidth {
                mib,
                threads,
                passes,
                json,
            }),
            _,
        ) => bandwidth(mib, threads, passes, json),
        (None, None) => bail!("nothing to do: give an experiment file, or see `mla-lab --help`"),
    }
}

/// One line a backend, then the choice: `--backend wgpu: wgpu: NVIDIA H200`. Fails, after the
/// list, when the chosen backend has no device here.
fn devices(choice: BackendChoice) -> Result<()> {
    for b in BackendChoice::ALL {
        if b != BackendChoice::Auto {
            let found = backend::find(b).map_or_else(|e| format!("none: {e}"), |s| s.name);
            println!("{:<10} {found}", b.name());
        }
    }
    let chosen = backend::find(choice)?;
    println!("--backend {}: {}", choice.name(), chosen.name);
    Ok(())
}

fn print_written(files: Vec<PathBuf>) {
    for f in files {
        println!("wrote {}", f.display());
    }
}

/// The machine in words, for reports (the backend each run used is in its summary).
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{cores} CPU threads, {} {}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

fn info(files: &[PathBuf], json: bool, dtype: DType, micro_batch: Option<usize>) -> Result<()> {
    let rows = files
        .iter()
        .map(|file| {
            let mut exp = Experiment::load(file)?;
            if let Some(m) = micro_batch {
                let batch = exp.train.batch_size;
                if m == 0 || !batch.is_multiple_of(m) {
                    bail!(
                        "{}: --micro-batch {m} does not divide train.batch_size {batch}; \
                         accepted: {}",
                        file.display(),
                        mla_lab::experiment::divisors(batch)
                    );
                }
                exp.train.micro_batch = Some(m);
            }
            Ok(InfoRow::new(&exp, dtype))
        })
        .collect::<Result<Vec<_>>>()?;
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

/// Trains one experiment file, showing what the run reports as it goes. A long run's
/// projection is left on screen for 10 s before its dashboard takes the screen.
fn train(file: &Path, opts: mla_lab::train::run::TrainOptions) -> Result<()> {
    use mla_lab::train::run::{Display, TrainEvent};
    let dashboard = opts.display == Display::Dashboard;
    let outcome = mla_lab::train::run::run(file, &opts, &mut |event| {
        println!("{event}");
        if dashboard && matches!(event, TrainEvent::Projected { long: true, .. }) {
            println!("(the dashboard starts in 10 s; Ctrl-C stops here)");
            std::thread::sleep(std::time::Duration::from_secs(10));
        }
    })?;
    println!("{outcome}");
    if let mla_lab::train::run::Outcome::Trained(summary) = &outcome
        && let Some(warning) = summary.learned_nothing()
    {
        eprintln!("warning: {warning}");
    }
    Ok(())
}

fn convert(
    run: &Path,
    to: &Path,
    artifacts: &Path,
    backend: BackendChoice,
    windows: Option<usize>,
) -> Result<()> {
    let (done, cost) =
        mla_lab::study::convert::convert_and_measure(run, to, artifacts, backend, windows)?;
    println!("{}: {}", done.dir.display(), done.converted);
    println!(
        "validation loss on {} windows: the source {:.4}, converted {:.4} ({:+.4})",
        cost.source.windows,
        cost.source.loss,
        cost.converted.loss,
        cost.converted.loss - cost.source.loss
    );
    let seed = done.seed.map_or(String::new(), |s| format!(" --seed {s}"));
    println!(
        "fine-tune it: mla-lab train {}{seed} --artifacts {}",
        to.display(),
        artifacts.display()
    );
    Ok(())
}

fn generate(args: &GenerateArgs, backend: BackendChoice) -> Result<()> {
    let opts = args.options();
    // Every option is checked before the run loads and before the prompt is shown.
    opts.sampling.validate()?;
    let device = backend::select(backend)?.device;
    let run = Run::load(&args.run, &device)?;
    say_checkpoint(
        &run.dir.display().to_string(),
        run.checkpoint_step,
        &run.weights.display().to_string(),
    );
    let model = run.model.with_mla_decode(decode_path(args.naive));
    generate::check(&model, &run.tokenizer, &args.prompt, &opts)?;
    let mut out = std::io::stdout().lock();
    write!(out, "{}", args.prompt)?;
    out.flush()?;
    generate::continue_text(&model, &run.tokenizer, &args.prompt, &opts, |piece| {
        let _ = write!(out, "{piece}");
        let _ = out.flush();
    })?;
    writeln!(out)?;
    Ok(())
}

fn eval(args: &EvalArgs, backend: BackendChoice) -> Result<()> {
    let device = backend::select(backend)?.device;
    let mut run = Run::load(&args.run, &device)?;
    say_checkpoint(
        &run.dir.display().to_string(),
        run.checkpoint_step,
        &run.weights.display().to_string(),
    );
    run.model = run.model.with_mla_decode(decode_path(args.naive));
    let result = mla_lab::eval::evaluate(&run, &args.options())?;
    if args.json {
        println!("{}", serde_json::to_string(&result)?);
    } else {
        print!("{}", result.text(&run.experiment.name));
    }
    Ok(())
}

/// On stderr, where a run has not finished: which checkpoint stands in for its weights.
fn say_checkpoint(run: &str, checkpoint_step: Option<usize>, weights: &str) {
    if let Some(step) = checkpoint_step {
        eprintln!(
            "note: {run} has not finished; its newest checkpoint (step {step}, {weights}) stands \
             in for the trained weights"
        );
    } else if Path::new(weights).file_name() == RunFolder::new("").start_weights().file_name() {
        eprintln!(
            "note: {run} has not been fine-tuned since its conversion; its converted start \
             weights ({weights}) stand in for the trained weights"
        );
    }
}

fn bandwidth(mib: usize, threads: Option<usize>, passes: usize, json: bool) -> Result<()> {
    let threads = threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let bytes = roofline::triad_bytes(mib, backend::available_memory())?;
    let bw = roofline::triad(bytes, threads, passes)?;
    if json {
        println!("{}", serde_json::to_string(&bw)?);
    } else {
        println!(
            "triad: {:.1} GB/s best, {:.1} GB/s median ({} passes over {} MiB, {} threads)",
            bw.best_gb_per_s,
            bw.median_gb_per_s,
            bw.passes,
            bw.bytes >> 20,
            bw.threads
        );
    }
    Ok(())
}

fn run_bench(args: &BenchArgs, backend: BackendChoice) -> Result<()> {
    let opts = args.options()?;
    let selected = backend::select(backend)?;
    let subjects = bench::subjects(&args.inputs, args.model_context, &selected.device)?;
    for s in &subjects {
        say_checkpoint(&s.name, s.checkpoint_step, &s.weights);
    }
    let configs: Vec<&mla_lab::model::GptConfig> = subjects.iter().map(|s| &s.config).collect();
    // A card's memory cannot be asked for here; the machine's can (as `train` does).
    if selected.in_host_memory()
        && let Some(available) = backend::available_memory()
    {
        let prefill = opts.fill == CacheFill::Prefill;
        memory::check_bench(&configs, &opts.batches, &opts.contexts, prefill, available).map_err(
            |e| {
                anyhow::anyhow!(
                    "--batch {} --contexts {}: {e}; lower --batch or --contexts",
                    args.batch,
                    args.contexts
                )
            },
        )?;
    }
    for (context, steps) in bench::capped(&opts, &subjects) {
        eprintln!(
            "bench: --decode-tokens {} capped at {steps} for context {context} ({})",
            opts.decode_tokens,
            bench::CAPPED_WHY
        );
    }
    let backend::Selected { name, device, .. } = selected;
    eprintln!(
        "bench on {name}: contexts {:?}, batch {:?}, {} decode steps, median of {} interleaved rounds after a warm-up round (rows print when all rounds are done)",
        opts.contexts, opts.batches, opts.decode_tokens, opts.repeats
    );
    let rows = bench::bench(subjects, &opts, &device, |r| {
        eprintln!(
            "  {} {} batch {} context {}: {:.1} decode tok/s",
            r.experiment, r.decode, r.batch, r.context, r.decode_tokens_per_s
        )
    })?;
    if let Some(r) = rows.iter().find(|r| r.under_load()) {
        eprintln!(
            "warning: the machine was busy when this bench began (1-minute load {:.2} on {} CPU \
             threads): other work shared the cores, so these timings are not of the models alone \
             (bench.json keeps the load beside them)",
            r.load_before.unwrap_or_default(),
            r.cpu_threads.unwrap_or_default()
        );
    }
    if args.json {
        for r in &rows {
            println!("{}", serde_json::to_string(r)?);
        }
    } else {
        print!("{}", bench::table(&rows));
    }
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
            let stats = stories::files::write_files(count, seed, &out, &meta)?;
            println!("wrote {} and {}", out.display(), meta.display());
            println!("{stats}");
        }
        DataCommand::Prepare { files, artifacts } => {
            for file in files {
                let exp = Experiment::load(&file)?;
                let started = std::time::Instant::now();
                let d = tokens::prepare(&exp.data, exp.seed, &RunFolder::token_cache(&artifacts))?;
                println!(
                    "{}: {} in {:.2} s{}",
                    exp.name,
                    d.describe(),
                    started.elapsed().as_secs_f64(),
                    if d.reused { " (reused)" } else { "" }
                );
            }
        }
    }
    Ok(())
}
