//! `mla-lab slurm`'s flags: a study's runs as a Slurm job array and its report job
//! ([`mla_lab::slurm`]), each task's command line the `study` of one run.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use mla_lab::backend::BackendChoice;
use mla_lab::slurm::{self, Commands, Settings, Task};
use mla_lab::study::{StudyOptions, experiment_files};

use super::{JudgeArgs, StudyArgs, parse_seeds};

#[derive(clap::Args, Debug)]
pub struct SlurmArgs {
    /// Experiment files or folders of them (e.g. experiments/tiny/).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Training seeds, e.g. 1,2,3 or 1-46: one task per experiment and seed (`<name>-s<seed>`).
    #[arg(long, required = true)]
    seeds: String,
    /// The shared records folder every task writes its run's records into (`DIR/<run>/`), and
    /// the report reads; a run whose records are there is restored, not trained again.
    #[arg(long, value_name = "DIR", required = true)]
    records: PathBuf,
    /// Where each task's run folder and token cache live, `<artifacts>/tasks/<run>/`, on a file
    /// system every node sees (a requeued task resumes from its checkpoint there).
    #[arg(long, default_value = "artifacts")]
    artifacts: PathBuf,
    /// Node-local scratch for the tasks' run folders instead (`<scratch>/mla-lab/<run>/`):
    /// faster, but a task requeued on another node trains from the start.
    #[arg(long, value_name = "DIR")]
    scratch: Option<PathBuf>,
    /// The report job's folder (default <artifacts>/report).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where the job scripts, the task list and the jobs' logs go (default <artifacts>/slurm).
    #[arg(long, value_name = "DIR")]
    scripts: Option<PathBuf>,
    /// Score only the first N validation windows; default: the whole held-out split.
    #[arg(long)]
    eval_windows: Option<usize>,
    #[arg(long, default_value_t = 50)]
    probe_stories: usize,
    #[arg(long, default_value = "64,128,256,512")]
    contexts: String,
    /// sbatch --partition.
    #[arg(long)]
    partition: Option<String>,
    /// sbatch --time, per task (e.g. 2:00:00).
    #[arg(long)]
    time: Option<String>,
    /// sbatch --gres (e.g. gpu:1).
    #[arg(long)]
    gres: Option<String>,
    /// sbatch --gpus-per-task.
    #[arg(long)]
    gpus_per_task: Option<String>,
    /// sbatch --cpus-per-task; flex's threads follow it.
    #[arg(long)]
    cpus_per_task: Option<usize>,
    /// sbatch --mem (e.g. 8G).
    #[arg(long)]
    mem: Option<String>,
    /// At most N tasks at once (the array's %N).
    #[arg(long, value_name = "N")]
    array_parallel: Option<usize>,
    /// sbatch --account.
    #[arg(long)]
    account: Option<String>,
    /// Let Slurm requeue a task that was killed, preempted or timed out; it resumes from its
    /// run's last checkpoint.
    #[arg(long)]
    requeue: bool,
    /// One more #SBATCH line for both jobs, as it follows #SBATCH (e.g. --qos=long); repeatable.
    #[arg(long, value_name = "OPTION", allow_hyphen_values = true)]
    sbatch: Vec<String>,
    /// Write the scripts and say how to submit them, without submitting.
    #[arg(long)]
    dry_run: bool,
}

/// The study a task runs, checked as `study` checks its own flags.
fn study_options(args: &SlurmArgs, backend: BackendChoice) -> Result<StudyOptions> {
    let study = StudyArgs {
        inputs: args.inputs.clone(),
        artifacts: args.artifacts.clone(),
        out: args.out.clone(),
        eval_windows: args.eval_windows,
        probe_stories: args.probe_stories,
        contexts: args.contexts.clone(),
        seeds: Some(args.seeds.clone()),
        records: Some(args.records.clone()),
        force: false,
        // A task has no judge: it would need the key on every node.
        judge: JudgeArgs {
            judge_url: None,
            judge_model: String::new(),
            judge_key_env: String::new(),
            judge_stories: 1,
            judge_timeout_s: 1,
        },
    };
    let opts = study.options(backend)?;
    opts.check()?;
    Ok(opts)
}

fn absolute(path: &Path) -> Result<String> {
    Ok(std::path::absolute(path)
        .with_context(|| format!("{}: cannot resolve", path.display()))?
        .display()
        .to_string())
}

/// Writes the scripts, and submits them unless `--dry-run`; the lines to print.
pub fn run(args: &SlurmArgs, backend: BackendChoice, composed: bool) -> Result<Vec<String>> {
    let opts = study_options(args, backend)?;
    let tasks = slurm::tasks(&experiment_files(&args.inputs)?, &parse_seeds(&args.seeds)?)?;
    let exe = std::env::current_exe().context("slurm: where is this mla-lab?")?;
    let exe = exe.display().to_string();
    let records = absolute(&args.records)?;
    let home = match &args.scratch {
        Some(scratch) => Path::new(&absolute(scratch)?).join("mla-lab"),
        None => Path::new(&absolute(&args.artifacts)?).join("tasks"),
    };
    let contexts: Vec<String> = opts.bench.contexts.iter().map(usize::to_string).collect();
    let task = |t: &Task| {
        let art = home.join(&t.run).display().to_string();
        let mut w: Vec<String> = vec![exe.clone(), "--backend".into(), backend.name().into()];
        if composed {
            w.push("--composed".into());
        }
        w.extend([
            "study".into(),
            t.file.display().to_string(),
            "--seeds".into(),
            t.seed.to_string(),
            "--records".into(),
            records.clone(),
            "--artifacts".into(),
            art.clone(),
            "--out".into(),
            format!("{art}/report"),
            "--probe-stories".into(),
            args.probe_stories.to_string(),
            "--contexts".into(),
            contexts.join(","),
        ]);
        if let Some(n) = args.eval_windows {
            w.extend(["--eval-windows".into(), n.to_string()]);
        }
        w
    };
    let commands = Commands {
        task: &task,
        report: (
            vec![exe.clone(), "report".into()],
            vec!["--out".into(), absolute(&opts.report)?],
        ),
        records: PathBuf::from(&records),
    };
    let settings = Settings {
        partition: args.partition.clone(),
        time: args.time.clone(),
        gres: args.gres.clone(),
        gpus_per_task: args.gpus_per_task.clone(),
        cpus_per_task: args.cpus_per_task,
        mem: args.mem.clone(),
        array_parallel: args.array_parallel,
        account: args.account.clone(),
        requeue: args.requeue,
        extra: args.sbatch.clone(),
    };
    let dir = args
        .scripts
        .clone()
        .unwrap_or_else(|| args.artifacts.join("slurm"));
    let scripts = slurm::write(&tasks, &settings, &commands, &dir)?;
    let mut lines = vec![
        format!("wrote {} ({} tasks)", scripts.array.display(), tasks.len()),
        format!("wrote {}", scripts.report.display()),
        format!("wrote {}", scripts.tasks.display()),
    ];
    if args.dry_run {
        let [array, report] = slurm::sbatch_lines(&scripts);
        lines.push("to submit (ARRAY: the id the first prints):".into());
        lines.push(format!("  {}", array.join(" ")));
        lines.push(format!("  {}", report.join(" ")));
    } else {
        let ids = slurm::submit(&scripts)?;
        lines.push(format!(
            "submitted array job {} ({} tasks)",
            ids.array,
            tasks.len()
        ));
        lines.push(format!(
            "submitted report job {} (after the array: afterany)",
            ids.report
        ));
    }
    Ok(lines)
}
