//! `mla-lab slurm` on a real Slurm cluster: CI starts a single-node one
//! (`scripts/slurm-local.sh`) and these tests submit to it. Each skips, saying so, where
//! `sbatch` is not on the PATH or no cluster answers `sinfo`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::arg;

const CHECK: &str = "experiments/check/mla_rope_half.ron";

/// Whether a cluster answers; says why not where none does.
fn cluster(test: &str) -> bool {
    let up = Command::new("sinfo")
        .arg("-h")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !up {
        eprintln!(
            "{test}: skipped: no Slurm cluster answers here (sbatch/sinfo not on the PATH, or \
             none running: scripts/slurm-local.sh starts one, as CI does)"
        );
    }
    up
}

fn wait_for(secs: u64, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until Slurm no longer lists `job` (it ended, however it ended).
fn wait_gone(job: &str) {
    wait_for(900, &format!("job {job} to end"), || {
        let out = Command::new("squeue")
            .args(["-h", "-j", job])
            .output()
            .unwrap();
        // squeue fails on a job id it has forgotten: that too is gone.
        !out.status.success() || String::from_utf8_lossy(&out.stdout).trim().is_empty()
    });
}

/// The job ids `mla-lab slurm` printed: (array, report).
fn submitted(out: &str) -> (String, String) {
    let id = |what: &str| {
        let line = out
            .lines()
            .find(|l| l.starts_with(what))
            .unwrap_or_else(|| panic!("no {what:?} in {out}"));
        line[what.len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    (id("submitted array job "), id("submitted report job "))
}

/// A study's common flags for the check experiments: bench contexts they fit, few stories.
fn study_flags(records: &Path, art: &Path) -> Vec<String> {
    [
        "--records",
        arg(records),
        "--artifacts",
        arg(art),
        "--contexts",
        "16,32",
        "--probe-stories",
        "8",
    ]
    .map(String::from)
    .to_vec()
}

fn run(args: &[String]) -> String {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ran = common::mla_lab(&args);
    assert!(ran.ok(), "mla-lab {args:?}: {}", ran.stderr);
    ran.stdout
}

fn words(w: &[&str]) -> Vec<String> {
    w.iter().map(|s| s.to_string()).collect()
}

/// What must be equal, bit for bit, between two runs of one experiment and seed: every logged
/// step's training and validation loss, and the evaluation's loss.
fn losses(entry: &Path) -> (Vec<String>, String) {
    let csv = std::fs::read_to_string(entry.join("metrics.csv")).unwrap();
    let rows = csv
        .lines()
        .map(|l| l.split(',').take(3).collect::<Vec<_>>().join(","))
        .collect();
    let eval: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(entry.join("eval.json")).unwrap()).unwrap();
    (rows, eval["loss"].to_string())
}

/// Runs `study FILE --seeds SEEDS` here, into `dir/local`, and returns its folder, the folder
/// `dir/cluster` for the same study on the cluster, and `slurm`'s arguments for it.
fn local_study_then_slurm(dir: &Path, file: &str, seeds: &str) -> (PathBuf, PathBuf, Vec<String>) {
    let (local, on_cluster) = (dir.join("local"), dir.join("cluster"));
    let mut study = words(&["--backend", "cpu", "study", file, "--seeds", seeds]);
    study.extend(study_flags(&local.join("records"), &local.join("art")));
    run(&study);
    let mut slurm = words(&["--backend", "cpu", "slurm", file, "--seeds", seeds]);
    slurm.extend(study_flags(
        &on_cluster.join("records"),
        &on_cluster.join("art"),
    ));
    (local, on_cluster, slurm)
}

#[test]
fn an_array_of_three_seeds_trains_as_study_does_and_its_report_follows() {
    let test = "an_array_of_three_seeds_trains_as_study_does_and_its_report_follows";
    if !cluster(test) {
        return;
    }
    let dir = common::fresh_dir("slurm", "array");
    let (local, on_cluster, mut slurm) = local_study_then_slurm(&dir, CHECK, "1,2,3");
    slurm.extend(words(&[
        "--cpus-per-task",
        "2",
        "--requeue",
        "--time",
        "0:20:00",
    ]));

    // --dry-run: scripts that sbatch accepts, and nothing submitted.
    let mut dry = slurm.clone();
    dry.extend(words(&["--dry-run", "--scripts", arg(&dir.join("dry"))]));
    let out = run(&dry);
    assert!(
        out.contains("to submit") && !out.contains("submitted"),
        "{out}"
    );
    for script in ["array.sbatch", "report.sbatch"] {
        let test_only = Command::new("sbatch")
            .args(["--test-only", arg(&dir.join("dry").join(script))])
            .output()
            .unwrap();
        assert!(
            test_only.status.success(),
            "sbatch --test-only {script}: {}",
            String::from_utf8_lossy(&test_only.stderr)
        );
    }

    let out = run(&slurm);
    let (array, report) = submitted(&out);
    wait_gone(&array);
    wait_gone(&report);
    let logs = on_cluster.join("art/slurm/logs");
    let report_log = std::fs::read_to_string(logs.join(format!("report-{report}.out"))).unwrap();
    assert!(!report_log.contains("did not finish"), "{report_log}");
    assert!(
        on_cluster.join("art/report/report.md").exists(),
        "{report_log}"
    );
    for seed in 1..=3 {
        let run = format!("mla_rope_half_check-s{seed}");
        let task_log = std::fs::read_to_string(logs.join(format!("{array}_{}.out", seed - 1)));
        let (theirs, ours) = (
            losses(&on_cluster.join("records").join(&run)),
            losses(&local.join("records").join(&run)),
        );
        assert_eq!(theirs, ours, "{run}: {task_log:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The check experiment at `steps` steps, validated, checkpointed and logged every 50.
fn longer_check(dir: &Path, steps: usize) -> PathBuf {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(CHECK)).unwrap();
    let mut longer = text.replace("\"mla_rope_half_check\"", "\"requeue_check\"");
    for (from, to) in [
        ("max_steps: 12", format!("max_steps: {steps}")),
        ("eval_every: 4", "eval_every: 50".into()),
        ("checkpoint_every: 4", "checkpoint_every: 50".into()),
        ("log_every: 4", "log_every: 50".into()),
    ] {
        assert!(longer.contains(from), "{CHECK} has no {from:?}");
        longer = longer.replace(from, &to);
    }
    let file = dir.join("requeue_check.ron");
    std::fs::write(&file, longer).unwrap();
    file
}

#[test]
fn a_requeued_task_resumes_from_its_checkpoint_to_the_same_losses() {
    let test = "a_requeued_task_resumes_from_its_checkpoint_to_the_same_losses";
    if !cluster(test) {
        return;
    }
    let dir = common::fresh_dir("slurm", "requeue");
    let file = longer_check(&dir, 3000);
    let (local, on_cluster, mut slurm) = local_study_then_slurm(&dir, arg(&file), "1");
    slurm.extend(words(&["--cpus-per-task", "2", "--requeue"]));
    let (array, report) = submitted(&run(&slurm));
    // Requeued once its second checkpoint is whole: the task starts again, and its study
    // resumes the run from that checkpoint.
    let checkpoint = on_cluster.join("art/tasks/requeue_check-s1/requeue_check-s1/checkpoint");
    wait_for(600, "the task's second checkpoint", || {
        ["model", "optim", "scheduler"]
            .iter()
            .all(|p| checkpoint.join(format!("{p}-2.bpk")).exists())
    });
    let requeue = Command::new("scontrol")
        .args(["requeue", &format!("{array}_0")])
        .output()
        .unwrap();
    assert!(
        requeue.status.success(),
        "scontrol requeue: {}",
        String::from_utf8_lossy(&requeue.stderr)
    );
    // Slurm holds a requeued job two minutes or so before it may start again; no need to here.
    let task = format!("{array}_0");
    wait_for(
        60,
        "the requeued task to wait, then to be let start now",
        || {
            let state = Command::new("squeue")
                .args(["-h", "-j", &task, "-o", "%T"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&state.stdout).trim() == "PENDING"
                && Command::new("scontrol")
                    .args(["update", &format!("JobId={task}"), "StartTime=now"])
                    .output()
                    .is_ok_and(|o| o.status.success())
        },
    );
    wait_gone(&array);
    wait_gone(&report);
    let task_log = std::fs::read_to_string(
        on_cluster
            .join("art/slurm/logs")
            .join(format!("{array}_0.out")),
    )
    .unwrap();
    assert!(
        task_log.contains("restart 1") && task_log.contains("resuming training"),
        "the task was not requeued mid-run (a longer run would be): {task_log}"
    );
    let (theirs, ours) = (
        losses(&on_cluster.join("records/requeue_check-s1")),
        losses(&local.join("records/requeue_check-s1")),
    );
    assert_eq!(theirs, ours, "{task_log}");
    std::fs::remove_dir_all(&dir).unwrap();
}
