//! `mla-lab slurm`: a study's runs handed to a Slurm cluster. One array job runs one
//! (experiment, seed) run a task, each as `study` runs it (train, eval, probe, bench) in a
//! folder of its own, each keeping its records in the shared records folder; one report job,
//! after the array whatever became of it (`afterany`), writes the report over the runs whose
//! records landed and names the tasks that did not finish.
//!
//! ```text
//! <dir>/array.sbatch     the array: task i runs the i-th line of tasks.tsv
//! <dir>/report.sbatch    the report job
//! <dir>/tasks.tsv        task, experiment file, seed, run name
//! <dir>/logs/            each job's output (%A_%a.out)
//! ```
//!
//! Slurm does the scheduling: requeue after a kill, preemption or time-out (`--requeue`; the
//! task's study resumes from the run's last checkpoint, as `train --resume` does, where its
//! folder is still there), dependencies, GPUs by `--gres`. A task whose run already has its
//! records restores them and ends, so submitting again finishes what is missing. Each command
//! line is written out whole in the script, quoted, to be read before it runs. The caller
//! (the command line) says what each task and the report run ([`Commands`]).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::experiment::Experiment;
use crate::files;
use crate::options::InvalidOption;

/// One task of the array: one experiment at one seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub file: PathBuf,
    pub seed: u64,
    /// The run's name, `<experiment>-s<seed>`: its folder and its records entry.
    pub run: String,
}

/// The `#SBATCH` settings, each passed through as given.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub partition: Option<String>,
    pub time: Option<String>,
    pub gres: Option<String>,
    pub gpus_per_task: Option<String>,
    pub cpus_per_task: Option<usize>,
    pub mem: Option<String>,
    /// At most this many tasks at once (`--array=0-N%P`).
    pub array_parallel: Option<usize>,
    pub account: Option<String>,
    /// Let Slurm requeue a task that was killed, preempted or timed out.
    pub requeue: bool,
    /// More `#SBATCH` lines, each without the prefix (`--qos=long`).
    pub extra: Vec<String>,
}

/// What each job runs, as argument lists (the program first), built by the caller.
pub struct Commands<'a> {
    /// Task `i`'s command line.
    pub task: &'a dyn Fn(&Task) -> Vec<String>,
    /// The report's command line, before and after the records entries it reads.
    pub report: (Vec<String>, Vec<String>),
    /// The shared records folder the tasks write and the report reads.
    pub records: PathBuf,
}

/// The files [`write`] made.
#[derive(Debug, Clone)]
pub struct Scripts {
    pub array: PathBuf,
    pub report: PathBuf,
    pub tasks: PathBuf,
}

/// Job ids of a submission.
#[derive(Debug, Clone, PartialEq)]
pub struct Submitted {
    pub array: String,
    pub report: String,
}

/// Every (experiment, seed) of `files` and `seeds`, seed-major as `study` runs them, with
/// absolute paths (a job starts wherever Slurm starts it).
pub fn tasks(files: &[PathBuf], seeds: &[u64]) -> Result<Vec<Task>> {
    if seeds.is_empty() {
        bail!("slurm: no seeds: a task is one experiment at one seed (e.g. --seeds 1,2,3)");
    }
    let mut tasks = vec![];
    for &seed in seeds {
        for file in files {
            let exp = Experiment::load(file)?;
            let file = std::path::absolute(file)
                .with_context(|| format!("{}: cannot resolve", file.display()))?;
            tasks.push(Task {
                file,
                seed,
                run: format!("{}-s{seed}", exp.name),
            });
        }
    }
    Ok(tasks)
}

/// A value fit for an `#SBATCH` line: printable, one line, no spaces.
fn setting(field: &'static str, value: &str) -> Result<(), InvalidOption> {
    if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(InvalidOption::new(
            field,
            format!("{value:?}"),
            "a value of one word, without spaces or line breaks, as sbatch takes it",
        ));
    }
    Ok(())
}

impl Settings {
    /// The settings passed through as given: each one's field and its sbatch option.
    fn given(&self) -> [(&'static str, &'static str, &Option<String>); 6] {
        [
            ("partition", "partition", &self.partition),
            ("time", "time", &self.time),
            ("gres", "gres", &self.gres),
            ("gpus_per_task", "gpus-per-task", &self.gpus_per_task),
            ("mem", "mem", &self.mem),
            ("account", "account", &self.account),
        ]
    }

    /// Refuses what sbatch could not read, or what would end the line it is written on.
    pub fn check(&self) -> Result<(), InvalidOption> {
        for (field, _, value) in self.given() {
            if let Some(v) = value {
                setting(field, v)?;
            }
        }
        if self.cpus_per_task == Some(0) {
            return Err(InvalidOption::new("cpus_per_task", 0, "at least 1"));
        }
        if self.array_parallel == Some(0) {
            return Err(InvalidOption::new(
                "array_parallel",
                0,
                "at least 1 task at once",
            ));
        }
        for line in &self.extra {
            if !line.starts_with('-') || line.chars().any(char::is_control) {
                return Err(InvalidOption::new(
                    "sbatch",
                    format!("{line:?}"),
                    "an sbatch option on one line, as it follows #SBATCH (e.g. --qos=long)",
                ));
            }
        }
        Ok(())
    }

    fn lines(&self, array: String, logs: &Path) -> Vec<String> {
        let mut lines = vec![
            "--job-name=mla-lab".to_string(),
            array,
            format!("--output={}/%A_%a.out", logs.display()),
        ];
        for (_, option, value) in self.given() {
            if let Some(v) = value {
                lines.push(format!("--{option}={v}"));
            }
        }
        if let Some(n) = self.cpus_per_task {
            lines.push(format!("--cpus-per-task={n}"));
        }
        lines.push(
            if self.requeue {
                "--requeue"
            } else {
                "--no-requeue"
            }
            .into(),
        );
        lines.extend(self.extra.iter().cloned());
        lines
    }
}

/// `word` quoted for bash: as it is where it needs no quotes, else in single quotes.
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,%+@".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn command_line(words: &[String]) -> String {
    words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

fn header(lines: &[String], purpose: &str) -> String {
    let mut text = String::from("#!/usr/bin/env bash\n");
    for l in lines {
        text += &format!("#SBATCH {l}\n");
    }
    text += &format!("# {purpose}; written by `mla-lab slurm`.\nset -euo pipefail\n");
    text
}

/// The array job's script.
pub fn array_script(
    tasks: &[Task],
    settings: &Settings,
    commands: &Commands,
    dir: &Path,
) -> String {
    let array = match settings.array_parallel {
        Some(p) => format!("--array=0-{}%{p}", tasks.len() - 1),
        None => format!("--array=0-{}", tasks.len() - 1),
    };
    let mut text = header(
        &settings.lines(array, &dir.join("logs")),
        "One (experiment, seed) run a task, as `mla-lab study` runs it",
    );
    // flex spreads its work over every CPU it sees: on a shared node, those Slurm gave.
    text += "if [ -n \"${SLURM_CPUS_PER_TASK:-}\" ]; then export RAYON_NUM_THREADS=$SLURM_CPUS_PER_TASK; fi\n";
    text += "echo \"mla-lab: task ${SLURM_ARRAY_TASK_ID} on $(hostname), restart ${SLURM_RESTART_COUNT:-0}\"\n";
    text += "case \"$SLURM_ARRAY_TASK_ID\" in\n";
    for (i, task) in tasks.iter().enumerate() {
        text += &format!(
            "{i}) # {}\n    set -- {}\n    ;;\n",
            task.run,
            command_line(&(commands.task)(task))
        );
    }
    text += "*)\n    echo \"mla-lab: no task ${SLURM_ARRAY_TASK_ID} in this array\" >&2\n    exit 2\n    ;;\nesac\nexec \"$@\"\n";
    text
}

/// The report job's script: the report over the records entries that are whole (a run's last
/// record, `bench.json`, is there), and the names of the tasks whose runs are not.
pub fn report_script(
    tasks: &[Task],
    settings: &Settings,
    commands: &Commands,
    dir: &Path,
) -> String {
    // The array's settings and extra lines, but its GPUs and requeue: the report needs neither.
    let lines = Settings {
        requeue: false,
        gres: None,
        gpus_per_task: None,
        array_parallel: None,
        ..settings.clone()
    }
    .lines(String::new(), &dir.join("logs"))
    .into_iter()
    .filter(|l| !l.is_empty())
    .map(|l| l.replace("%A_%a", "report-%j"))
    .collect::<Vec<_>>();
    let mut text = header(&lines, "The study's report, after its array");
    text += &format!(
        "records={}\n",
        quote(&commands.records.display().to_string())
    );
    text += "runs=(";
    for task in tasks {
        text += &format!(" {}", quote(&task.run));
    }
    text += " )\nlanded=()\nunfinished=()\n";
    text += "for i in \"${!runs[@]}\"; do\n";
    text += "    if [ -f \"$records/${runs[i]}/bench.json\" ]; then\n";
    text += "        landed+=(\"$records/${runs[i]}\")\n";
    text += "    else\n        unfinished+=(\"task $i (${runs[i]})\")\n    fi\ndone\n";
    text += "for t in \"${unfinished[@]}\"; do echo \"mla-lab: did not finish: $t\"; done\n";
    text += "if [ ${#landed[@]} -eq 0 ]; then\n    echo \"mla-lab: no task finished: no report\" >&2\n    exit 1\nfi\n";
    let (before, after) = &commands.report;
    text += &format!(
        "exec {} \"${{landed[@]}}\" {}\n",
        command_line(before),
        command_line(after)
    );
    text
}

/// Writes the scripts and the task list into `dir`.
pub fn write(
    tasks: &[Task],
    settings: &Settings,
    commands: &Commands,
    dir: &Path,
) -> Result<Scripts> {
    settings.check()?;
    if tasks.is_empty() {
        bail!("slurm: no tasks");
    }
    let dir =
        std::path::absolute(dir).with_context(|| format!("{}: cannot resolve", dir.display()))?;
    std::fs::create_dir_all(dir.join("logs"))
        .with_context(|| format!("{}: cannot create", dir.join("logs").display()))?;
    let scripts = Scripts {
        array: dir.join("array.sbatch"),
        report: dir.join("report.sbatch"),
        tasks: dir.join("tasks.tsv"),
    };
    let mut list = String::from("task\texperiment\tseed\trun\n");
    for (i, t) in tasks.iter().enumerate() {
        list += &format!("{i}\t{}\t{}\t{}\n", t.file.display(), t.seed, t.run);
    }
    files::write(&scripts.tasks, list.as_bytes())?;
    files::write(
        &scripts.array,
        array_script(tasks, settings, commands, &dir).as_bytes(),
    )?;
    files::write(
        &scripts.report,
        report_script(tasks, settings, commands, &dir).as_bytes(),
    )?;
    Ok(scripts)
}

/// The `sbatch` calls that submit `scripts`, the report's dependency on `ARRAY` standing for
/// the array's job id.
pub fn sbatch_lines(scripts: &Scripts) -> [Vec<String>; 2] {
    let s = |p: &Path| p.display().to_string();
    [
        vec!["sbatch".into(), "--parsable".into(), s(&scripts.array)],
        vec![
            "sbatch".into(),
            "--parsable".into(),
            "--dependency=afterany:ARRAY".into(),
            s(&scripts.report),
        ],
    ]
}

fn sbatch(args: &[String]) -> Result<String> {
    let out = Command::new("sbatch")
        .args(args)
        .output()
        .context("slurm: cannot run sbatch (is Slurm's client on the PATH?)")?;
    if !out.status.success() {
        bail!(
            "slurm: sbatch {} failed: {}",
            command_line(args),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    // `--parsable` prints `id` or `id;cluster`.
    let text = String::from_utf8_lossy(&out.stdout);
    let id = text.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        bail!("slurm: sbatch printed {:?}, not a job id", text.trim());
    }
    Ok(id)
}

/// Submits the array, then the report after it.
pub fn submit(scripts: &Scripts) -> Result<Submitted> {
    let [array, report] = sbatch_lines(scripts);
    let array = sbatch(&array[1..])?;
    let report: Vec<String> = report[1..]
        .iter()
        .map(|a| a.replace("ARRAY", &array))
        .collect();
    let report = sbatch(&report)?;
    Ok(Submitted { array, report })
}

#[cfg(test)]
mod tests;
