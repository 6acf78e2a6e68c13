//! The `mla-lab` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use burn::tensor::DType;
use clap::{Parser, Subcommand, ValueEnum};

use mla_lab::backend::{self, BackendChoice};
use mla_lab::experiment::Experiment;
use mla_lab::info::{InfoRow, table};

/// Train small GPTs with MHA, MLA and MLA+RoPE attention and measure what each costs.
#[derive(Parser, Debug)]
#[command(name = "mla-lab", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// An experiment file to run (same as `mla-lab train FILE`).
    experiment: Option<PathBuf>,
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
    Train { file: PathBuf },
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
        (Some(Command::Train { file }), _) | (None, Some(file)) => train(&file, cli.backend),
        (None, None) => bail!("nothing to do: give an experiment file, or see `mla-lab --help`"),
    }
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

fn train(file: &PathBuf, choice: BackendChoice) -> Result<()> {
    Experiment::load(file)?;
    let (name, _device) = backend::select(choice)?;
    bail!(
        "{}: the experiment is valid and would run on {name}, but training is not built yet \
         (it arrives with the trainer); `mla-lab info {}` shows its costs",
        file.display(),
        file.display()
    )
}
