//! The `mla-lab` command line, run as a user would.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::arg;

fn fresh_dir(tag: &str) -> PathBuf {
    common::fresh_dir("cli", tag)
}

/// `mla-lab ARGS` from the project's root: whether it succeeded, stdout, stderr.
fn mla_lab(args: &[&str]) -> (bool, String, String) {
    mla_lab_in(Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

/// `mla_lab` run from the folder `cwd`.
fn mla_lab_in(cwd: &Path, args: &[&str]) -> (bool, String, String) {
    let ran = common::mla_lab_in(cwd, args);
    (ran.ok(), ran.stdout, ran.stderr)
}

#[test]
fn info_prints_one_table_for_several_files() {
    let (ok, out, err) = mla_lab(&[
        "info",
        "experiments/mha.ron",
        "experiments/mla_rope_half.ron",
    ]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].starts_with("| experiment |"));
    assert!(
        lines[2].contains("| mha | MHA |") && lines[2].contains("| 18432 |"),
        "{out}"
    );
    assert!(
        lines[3].contains("| mla_rope_half |") && lines[3].contains("| 9984 | -45.8% |"),
        "{out}"
    );
}

#[test]
fn info_json_is_one_object_per_file() {
    let (ok, out, err) = mla_lab(&["info", "--json", "--dtype", "bf16", "experiments/gqa.ron"]);
    assert!(ok, "{err}");
    let row: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(row["experiment"], "gqa");
    // 6 layers × 2 (K, V) × 2 kv heads × 64 × 2 bytes.
    assert_eq!(row["kv_bytes_per_token"], 6 * 2 * 2 * 64 * 2);
    // In passes of 8 rows: a quarter of the body's activations, the gradients twice over.
    let (ok, out, err) = mla_lab(&[
        "info",
        "--json",
        "--micro-batch",
        "8",
        "experiments/gqa.ron",
    ]);
    assert!(ok, "{err}");
    let eighth: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let bytes = |r: &serde_json::Value, k: &str| r["memory"][k].as_u64().unwrap();
    assert!(bytes(&eighth, "activations") < bytes(&row, "activations") / 3);
    assert_eq!(bytes(&eighth, "gradients"), 2 * bytes(&row, "gradients"));
    let (ok, _, err) = mla_lab(&["info", "--micro-batch", "3", "experiments/gqa.ron"]);
    assert!(
        !ok && err.contains("gqa.ron: --micro-batch 3")
            && err.contains("accepted: 1, 2, 4, 8, 16, 32"),
        "{err}"
    );
}

#[test]
fn info_on_a_bad_file_names_it_and_fails() {
    let dir = fresh_dir("info");
    let bad = dir.join("bad.ron");
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/mha.ron"))
            .unwrap()
            .replace("n_heads: 6,", "n_heads: 5,");
    std::fs::write(&bad, text).unwrap();
    let (ok, _, err) = mla_lab(&["info", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("bad.ron") && err.contains("model.d_model"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_tiny_experiment_trains_and_a_second_run_is_refused() {
    let dir = fresh_dir("train");
    let exp = rope_experiment(
        &dir,
        "tiny",
        1,
        400,
        "max_steps: 40, lr: 3e-3, min_lr: 3e-4, warmup_steps: 5,
         eval_every: 10, eval_batches: 4, log_every: 10, keep_checkpoints: 2",
    );
    let art = dir.join("artifacts");
    // Run from a folder outside the checkout.
    let (ok, out, err) = mla_lab_in(
        &dir,
        &[
            "--backend",
            "cpu",
            exp.to_str().unwrap(),
            "--artifacts",
            art.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    // Clean progress lines, no debug dumps of burn's progress structs.
    assert!(
        out.contains("step     40/40") && !out.contains("ProgressSnapshot"),
        "{out}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(art.join("tiny/summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["steps"], 40);
    // The records name the commit the binary was built from, not the folder it ran in.
    let head = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    if head.status.success() {
        let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
        assert!(
            summary["git_revision"]
                .as_str()
                .is_some_and(|r| r.starts_with(&head)),
            "{summary}"
        );
    }
    let csv = std::fs::read_to_string(art.join("tiny/metrics.csv")).unwrap();
    let losses: Vec<f64> = csv
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(1)?.parse().ok())
        .collect();
    assert!(
        losses.last().unwrap() < &(losses[0] - 0.5),
        "loss did not fall: {losses:?}"
    );
    for f in ["experiment.ron", "tokenizer.json", "checkpoint/model-4.bpk"] {
        assert!(art.join("tiny").join(f).exists(), "{f} missing");
    }
    // Generation from the run: streamed text after the prompt; same seed, same text.
    let run = art.join("tiny");
    let story = |seed: &str, temperature: &str| {
        let (ok, out, err) = mla_lab(&[
            "generate",
            run.to_str().unwrap(),
            "--prompt",
            "Once upon a time",
            "--max-new-tokens",
            "20",
            "--seed",
            seed,
            "--temperature",
            temperature,
        ]);
        assert!(ok, "{err}");
        assert!(out.starts_with("Once upon a time"), "{out}");
        out
    };
    assert_eq!(story("1", "0.8"), story("1", "0.8"));
    assert_ne!(story("1", "1.5"), story("2", "1.5"));
    assert_eq!(story("1", "0"), story("2", "0"), "greedy ignores the seed");
    // A refused option or prompt is refused before anything is shown: stdout stays empty.
    for (bad, says) in [
        (&["--top-p", "2"][..], "--top-p"),
        (&["--top-p", "NaN"][..], "--top-p"),
        (&["--top-k", "0"][..], "--top-k"),
        (&["--temperature", "NaN"][..], "--temperature"),
        (&["--temperature", "inf"][..], "--temperature"),
        (&["--temperature=-1"][..], "--temperature"),
    ] {
        let (ok, out, err) = mla_lab(&[&["generate", run.to_str().unwrap()], bad].concat());
        assert!(
            !ok && err.contains(says) && out.is_empty(),
            "{bad:?}: {out}{err}"
        );
    }
    let long = "Once upon a time ".repeat(40);
    let (ok, out, err) = mla_lab(&["generate", run.to_str().unwrap(), "--prompt", &long]);
    assert!(
        !ok && err.contains("context is 32") && out.is_empty(),
        "{out}{err}"
    );

    // Evaluating on a user's file: its errors are about that file.
    let short = dir.join("short.txt");
    std::fs::write(&short, "Once upon a time.\n<|endoftext|>\n").unwrap();
    let (ok, _, err) = mla_lab(&[
        "eval",
        run.to_str().unwrap(),
        "--data",
        short.to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("short.txt: ")
            && err.contains("fewer than one window")
            && !err.contains("validation"),
        "{err}"
    );
    let (ok, _, err) = mla_lab(&["eval", run.to_str().unwrap(), "--windows", "0"]);
    assert!(!ok && err.contains("--windows 0: accepted"), "{err}");

    // The finished run, trained into again: refused without --force, and --resume says it is
    // finished; neither changes a byte of it, not even with its checkpoints deleted.
    let train_args = [
        "--backend",
        "cpu",
        exp.to_str().unwrap(),
        "--artifacts",
        art.to_str().unwrap(),
    ];
    let files = |dir: &Path| {
        let mut all = vec![];
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() && !path.ends_with("train.lock") {
                all.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
        all.sort();
        all
    };
    // Killed after its last checkpoint but before its summary: --resume trains nothing more
    // and writes the same weights and losses.
    let summary_before = std::fs::read_to_string(run.join("summary.json")).unwrap();
    let weights_before = std::fs::read(run.join("model.bpk")).unwrap();
    std::fs::remove_file(run.join("summary.json")).unwrap();
    std::fs::remove_file(run.join("model.bpk")).unwrap();
    let mut resume_args = train_args.to_vec();
    resume_args.push("--resume");
    let (ok, out, err) = mla_lab(&resume_args);
    assert!(ok && out.contains("40 steps"), "{out}{err}");
    assert_eq!(
        std::fs::read(run.join("model.bpk")).unwrap(),
        weights_before
    );
    let field = |text: &str, key: &str| {
        serde_json::from_str::<serde_json::Value>(text).unwrap()[key].clone()
    };
    let summary_after = std::fs::read_to_string(run.join("summary.json")).unwrap();
    for key in [
        "steps",
        "final_train_loss",
        "final_val_loss",
        "tokens_per_s",
    ] {
        assert_eq!(
            field(&summary_after, key),
            field(&summary_before, key),
            "{key}"
        );
    }
    // The time of the run is kept, not restarted.
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let wall = field(&summary_after, "wall_time_s").as_f64().unwrap();
    assert!(wall >= *elapsed(&csv).last().unwrap(), "{wall}");

    let finished = files(&run);
    let (ok, _, err) = mla_lab(&train_args);
    assert!(
        !ok && err.contains("finished run (40 steps)") && err.contains("--force"),
        "{err}"
    );
    let (ok, out, err) = mla_lab(&resume_args);
    assert!(ok, "{err}");
    assert!(out.contains("finished run; nothing to resume"), "{out}");
    std::fs::remove_dir_all(run.join("checkpoint")).unwrap();
    let (ok, _, err) = mla_lab(&train_args);
    assert!(!ok && err.contains("finished run"), "{err}");
    let (ok, out, _) = mla_lab(&resume_args);
    assert!(ok && out.contains("nothing to resume"), "{out}");
    assert!(finished == files(&run), "a finished run changed");
    // --force trains it again, and what was measured on the old weights goes with them.
    std::fs::write(run.join("eval.json"), "{}").unwrap();
    let mut force_args = train_args.to_vec();
    force_args.push("--force");
    let (ok, _, err) = mla_lab(&force_args);
    assert!(ok, "{err}");
    assert!(run.join("summary.json").exists() && !run.join("eval.json").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn data_stories_writes_text_and_metadata() {
    let dir = fresh_dir("stories");
    let out = dir.join("sub/stories.txt");
    let (ok, stdout, err) = mla_lab(&[
        "data",
        "stories",
        "--count",
        "50",
        "--seed",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(stdout.contains("50 stories (50 distinct)"), "{stdout}");
    assert!(stdout.contains("unigram entropy"), "{stdout}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().filter(|l| *l == "<|endoftext|>").count(), 50);
    let meta = std::fs::read_to_string(dir.join("sub/stories.meta.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(meta.lines().next().unwrap()).unwrap();
    assert_eq!(first["id"], 0);
    assert!(text.starts_with(&text[..first["resolution_start"].as_u64().unwrap() as usize]));
    assert_eq!(meta.lines().count(), 50);
    // The same seed writes the same bytes.
    let again = dir.join("again.txt");
    let (ok, _, _) = mla_lab(&[
        "data",
        "stories",
        "--count",
        "50",
        "--seed",
        "3",
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(ok);
    assert_eq!(std::fs::read(&again).unwrap(), text.as_bytes());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Steps and train losses of a metrics.csv.
fn metric_rows(csv: &str) -> Vec<(usize, f64)> {
    csv.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].parse().unwrap(), f[1].parse().unwrap())
        })
        .collect()
}

#[test]
fn a_run_killed_with_sigkill_resumes_from_its_last_checkpoint() {
    let dir = fresh_dir("resume");
    let exp = rope_experiment(
        &dir,
        "resume",
        3,
        400,
        "max_steps: 600, lr: 3e-3, min_lr: 3e-4, warmup_steps: 5,
         eval_every: 10, checkpoint_every: 10, eval_batches: 2, log_every: 5,
         keep_checkpoints: 2",
    );
    let art = dir.join("artifacts");
    let run_dir = art.join("resume");
    let args = [
        "--backend",
        "cpu",
        "train",
        exp.to_str().unwrap(),
        "--artifacts",
        art.to_str().unwrap(),
    ];
    let mut child = Background::start(&args);
    // Kill as soon as the third checkpoint is complete.
    wait_for(120, "third checkpoint", || {
        ["model", "optim", "scheduler"]
            .iter()
            .all(|p| run_dir.join(format!("checkpoint/{p}-3.bpk")).exists())
    });
    child.kill(); // SIGKILL
    assert!(
        !run_dir.join("summary.json").exists(),
        "the run finished before it was killed; the test needs a longer run"
    );
    let before = metric_rows(&std::fs::read_to_string(run_dir.join("metrics.csv")).unwrap());
    // The newest checkpoint left complete: the step the run resumes from.
    let complete = |epoch: usize| {
        ["model", "optim", "scheduler"]
            .iter()
            .all(|p| run_dir.join(format!("checkpoint/{p}-{epoch}.bpk")).exists())
    };
    let resumed_from = 10 * (3..100).take_while(|&e| complete(e)).last().unwrap();

    // Without --resume the folder is refused and nothing is touched.
    let (ok, _, err) = mla_lab(&args);
    assert!(!ok && err.contains("--resume"), "{err}");

    let mut resumed_args = args.to_vec();
    resumed_args.push("--resume");
    let (ok, out, err) = mla_lab(&resumed_args);
    assert!(ok, "{err}");
    assert!(out.contains("600 steps"), "{out}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["steps"], 600);

    let csv = std::fs::read_to_string(run_dir.join("metrics.csv")).unwrap();
    let after = metric_rows(&csv);
    // Time runs on across the resume; the summary covers both invocations.
    let times = elapsed(&csv);
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    let last_kept = times[before.iter().take_while(|r| r.0 <= resumed_from).count() - 1];
    let wall = summary["wall_time_s"].as_f64().unwrap();
    assert!(
        wall >= *times.last().unwrap() && wall > last_kept,
        "{wall} {times:?}"
    );
    let steps: Vec<usize> = after.iter().map(|r| r.0).collect();
    let expected: Vec<usize> = (1..=120).map(|i| i * 5).collect();
    assert_eq!(steps, expected, "each logged step once, in order");
    // The TensorBoard events were written again from the rows kept at the resume: each
    // step's training loss once, as metrics.csv has it.
    let events = mla_lab::artifacts::tensorboard::read(&run_dir.join("tb")).unwrap();
    let train: Vec<(usize, f32)> = events
        .iter()
        .filter(|(tag, ..)| tag == mla_lab::artifacts::tensorboard::TRAIN_LOSS)
        .map(|(_, step, v)| (*step, *v))
        .collect();
    assert_eq!(train.len(), after.len(), "{train:?}");
    for ((step, v), (s, loss)) in train.iter().zip(&after) {
        assert!(
            step == s && (*v as f64 - loss).abs() < 2e-6,
            "{step} {v} against {s} {loss}"
        );
    }
    // Rows up to the checkpoint the run resumed from are the killed run's own rows.
    for (a, b) in before
        .iter()
        .zip(&after)
        .take_while(|(a, _)| a.0 <= resumed_from)
    {
        assert_eq!(a, b);
    }
    // The curve continues: the first losses after resuming are near where it stopped, far
    // below the untrained loss (~ln 300 = 5.7).
    let at = |rows: &[(usize, f64)], s: usize| rows.iter().find(|r| r.0 == s).unwrap().1;
    let first_after = at(&after, resumed_from + 5);
    let initial = after[0].1;
    assert!(
        first_after < at(&after, resumed_from) + 0.3 && first_after < initial - 0.5,
        "restarted instead of resuming: {after:?}"
    );
    // Only the newest two checkpoints are kept, and no temporary of the killed save.
    let mut kept: Vec<String> = std::fs::read_dir(run_dir.join("checkpoint"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    kept.sort();
    assert_eq!(kept.len(), 6, "{kept:?}");
    assert!(run_dir.join("checkpoint/model-60.bpk").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The `elapsed_s` column of a metrics.csv.
fn elapsed(csv: &str) -> Vec<f64> {
    csv.lines()
        .skip(1)
        .map(|l| l.split(',').nth(5).unwrap().parse().unwrap())
        .collect()
}

/// A trainer started in the background, killed when the test ends, passed or failed (a failed
/// assertion must not leave it training).
struct Background(std::process::Child);

impl Background {
    fn start(args: &[&str]) -> Background {
        Background(
            Command::new(env!("CARGO_BIN_EXE_mla-lab"))
                .args(args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        )
    }

    /// SIGKILL, and wait for it to be gone.
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until `done` holds, failing after `secs` seconds.
fn wait_for(secs: u64, what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "no {what} after {secs} s"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

#[test]
fn a_second_trainer_is_refused_while_the_first_holds_the_folder_and_not_after_it_dies() {
    let dir = fresh_dir("lock");
    // Far more steps than the test waits for.
    let exp = rope_experiment(
        &dir,
        "locked",
        3,
        300,
        "max_steps: 1000000, warmup_steps: 5, eval_every: 10, checkpoint_every: 10,
         eval_batches: 2, log_every: 10",
    );
    let art = dir.join("artifacts");
    let run_dir = art.join("locked");
    let args = [
        "--backend",
        "cpu",
        "train",
        exp.to_str().unwrap(),
        "--artifacts",
        art.to_str().unwrap(),
    ];
    let mut first = Background::start(&args);
    let pid = first.0.id().to_string();
    wait_for(120, "first checkpoint", || {
        run_dir.join("checkpoint/scheduler-1.bpk").exists()
    });
    let lock = std::fs::read_to_string(run_dir.join("train.lock")).unwrap();
    assert_eq!(lock.trim(), pid);
    for extra in [None, Some("--resume"), Some("--force")] {
        let mut second = args.to_vec();
        second.extend(extra);
        let (ok, _, err) = mla_lab(&second);
        assert!(
            !ok && err.contains("in use by another mla-lab")
                && err.contains(&format!("process {pid}"))
                && err.contains(run_dir.to_str().unwrap()),
            "{extra:?}: {err}"
        );
    }
    first.kill(); // SIGKILL: no chance to clean up
    // The dead process's lock is gone with it: what refuses now is the folder's content.
    let (ok, _, err) = mla_lab(&args);
    assert!(!ok && err.contains("already holds a run"), "{err}");

    // Two trainers started at once into one folder: one trains, the other is refused (or, if
    // it comes late, finds the run finished); the record has every step once, in order.
    // (The same file, rewritten: `args` names it.)
    std::fs::write(
        &exp,
        experiment(
            "raced",
            3,
            300,
            MLA_ROPE_HALF,
            "Rope(10000.0)",
            "max_steps: 60, warmup_steps: 5, eval_every: 5, checkpoint_every: 5,
             eval_batches: 2, log_every: 5",
        ),
    )
    .unwrap();
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_mla-lab"))
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    let won: Vec<bool> = outs.iter().map(|o| o.status.success()).collect();
    assert_eq!(won.iter().filter(|&&w| w).count(), 1, "{outs:?}");
    let loser =
        String::from_utf8_lossy(&outs[won.iter().position(|&w| !w).unwrap()].stderr).to_string();
    assert!(
        loser.contains("in use by another mla-lab") || loser.contains("finished run"),
        "{loser}"
    );
    let steps: Vec<usize> =
        metric_rows(&std::fs::read_to_string(art.join("raced/metrics.csv")).unwrap())
            .iter()
            .map(|r| r.0)
            .collect();
    assert_eq!(steps, (1..=12).map(|i| i * 5).collect::<Vec<_>>());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_run_that_cannot_start_is_refused_before_it_leaves_anything() {
    let dir = fresh_dir("refused");
    let art = dir.join("artifacts");
    let write = |name: &str, text: String| {
        let path = dir.join(format!("{name}.ron"));
        std::fs::write(&path, text).unwrap();
        path
    };
    let train = |file: &Path| {
        mla_lab(&[
            "--backend",
            "cpu",
            "train",
            file.to_str().unwrap(),
            "--artifacts",
            art.to_str().unwrap(),
        ])
    };
    let small = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/small/mha.ron"),
    )
    .unwrap();
    // A context past any bound: named with its field and range, by `info` too.
    let huge = write("huge", small.replace("context: 256", "context: 1000000000"));
    for (ok, _, err) in [train(&huge), mla_lab(&["info", huge.to_str().unwrap()])] {
        assert!(
            !ok && err.contains("huge.ron")
                && err.contains("model.context")
                && err.contains("accepted: 1 to 1048576"),
            "{err}"
        );
    }
    // A context within the bounds whose training cannot fit any machine: `info` works it out
    // without allocating, `train` refuses with the estimate.
    let big = write("big", small.replace("context: 256", "context: 1048576"));
    let (ok, out, err) = mla_lab(&["info", big.to_str().unwrap()]);
    assert!(ok && out.contains("PiB"), "{out}{err}");
    let (ok, _, err) = train(&big);
    assert!(
        !ok && err.contains("big.ron: training needs about")
            && err.contains("AdamW state")
            && err.contains("available"),
        "{err}"
    );
    // A start that fails after the folder was made (a story file that is not there) takes
    // the folder away with it.
    let missing = write(
        "missing",
        experiment(
            "missing",
            1,
            10,
            MLA_ROPE_HALF,
            "Rope(10000.0)",
            "max_steps: 10, warmup_steps: 2",
        )
        .replace(
            "Synthetic(count: 10, seed: 2)",
            &format!("TinyStories(path: {:?})", dir.join("nowhere.txt")),
        ),
    );
    let (ok, _, err) = train(&missing);
    assert!(!ok && err.contains("nowhere.txt"), "{err}");
    // One cause, said once.
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
    let left: Vec<_> = std::fs::read_dir(&art)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.iter()
            .all(|n| n != "missing" && n != "big" && n != "huge"),
        "{left:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn bench_prints_measured_cache_bytes_and_speeds() {
    let (ok, out, err) = mla_lab(&[
        "bench",
        "experiments/small/mha.ron",
        "experiments/small/mla_rope_half.ron",
        "--contexts",
        "16,32",
        "--decode-tokens",
        "2",
        "--repeats",
        "1",
        "--json",
    ]);
    assert!(ok, "{err}");
    let rows = json_lines(&out);
    // MHA: 2 contexts; MLA: 2 paths × 2 contexts.
    assert_eq!(rows.len(), 6, "{out}");
    for r in &rows {
        assert_eq!(
            r["kv_bytes_per_token_measured"], r["kv_bytes_per_token_formula"],
            "{r}"
        );
        assert!(r["decode_tokens_per_s"].as_f64().unwrap() > 0.0);
    }
    // 4 layers × (2·128 + 32) × 4 bytes against 4 × 2·256 × 4.
    let mla = rows.iter().find(|r| r["decode"] == "absorbed").unwrap();
    assert_eq!(mla["kv_bytes_per_token_measured"], 4608);
    assert_eq!(mla["kv_vs_first"], 4608.0 / 8192.0);
    let (ok, _, err) = mla_lab(&["bench", "experiments/small/mha.ron", "--contexts", "0"]);
    assert!(!ok && err.contains("--contexts"), "{err}");
    // A cache written straight in: no prefill timed, one MLA path, bytes and GB/s per row.
    let (ok, out, err) = mla_lab(&[
        "bench",
        "experiments/small/mha.ron",
        "experiments/small/mla_rope_half.ron",
        "--contexts",
        "32",
        "--batch",
        "2",
        "--decode-tokens",
        "2",
        "--repeats",
        "1",
        "--fill",
        "random",
        "--mla-paths",
        "absorbed",
        "--json",
    ]);
    assert!(ok, "{err}");
    let rows = json_lines(&out);
    assert_eq!(rows.len(), 2, "{out}");
    for r in &rows {
        assert_eq!(r["fill"], "random", "{r}");
        assert!(r["prefill_tokens_per_s"].is_null(), "{r}");
        assert!(r["decode_gb_per_s"].as_f64().unwrap() > 0.0, "{r}");
        assert_ne!(r["decode"], "naive", "{r}");
    }
    // The cache read grows with the positions filled: steps read 31 and 32 of them.
    let kv = rows[0]["kv_bytes_per_token_formula"].as_u64().unwrap();
    let weights = rows[0]["decode_bytes_per_step"].as_u64().unwrap() - 2 * kv * 63 / 2;
    assert!(weights > 0 && weights.is_multiple_of(4), "{}", rows[0]);
    let (ok, _, err) = mla_lab(&["bench", "experiments/small/mha.ron", "--mla-paths", "fast"]);
    assert!(
        !ok && err.contains("--mla-paths") && err.contains("naive"),
        "{err}"
    );
    let (ok, out, err) = mla_lab(&["bandwidth", "--mib", "48", "--passes", "2", "--json"]);
    assert!(ok, "{err}");
    let bw: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(bw["best_gb_per_s"].as_f64().unwrap() > 0.0, "{out}");
}

/// MLA+RoPE at r = d/2 for the tiny models (d_model 32).
const MLA_ROPE_HALF: &str = "Mla(rank: 16, layout: Separate, rope_dim: 4)";

/// A tiny experiment (d_model 32, 2 layers, a 300-token BPE, batch 4) on `stories` synthetic
/// stories; `train` holds the train section's fields past the batch size.
fn experiment(
    name: &str,
    seed: u64,
    stories: usize,
    attention: &str,
    positions: &str,
    train: &str,
) -> String {
    format!(
        r#"(name: "{name}", seed: {seed},
            model: (vocab_size: 300, context: 32, d_model: 32, n_layers: 2, n_heads: 4,
                    positions: {positions}, attention: {attention}),
            data: (source: Synthetic(count: {stories}, seed: 2), tokenizer: Bpe(vocab_size: 300)),
            train: (batch_size: 4, {train}))"#
    )
}

fn tiny_experiment(name: &str, attention: &str, positions: &str) -> String {
    experiment(
        name,
        5,
        300,
        attention,
        positions,
        "max_steps: 30, lr: 3e-3, min_lr: 3e-4, warmup_steps: 3,
         eval_every: 10, checkpoint_every: 10, eval_batches: 2, log_every: 10",
    )
}

#[test]
fn study_of_two_seeds_trains_evaluates_benches_and_reports_then_skips_finished_work() {
    let dir = fresh_dir("study");
    let exps = dir.join("exps");
    std::fs::create_dir_all(&exps).unwrap();
    // d_model 32: r = 16 is d/2.
    for (name, attention, positions) in [
        (
            "a_mla_rope_half",
            "Mla(rank: 16, layout: Separate, rope_dim: 4)",
            "Rope(10000.0)",
        ),
        ("z_mha", "Mha(kv_heads: 4)", "Learned"),
    ] {
        std::fs::write(
            exps.join(format!("{name}.ron")),
            tiny_experiment(name, attention, positions),
        )
        .unwrap();
    }
    let art = dir.join("artifacts");
    let args = [
        "study",
        exps.to_str().unwrap(),
        "--artifacts",
        art.to_str().unwrap(),
        "--seeds",
        "1,2",
        "--contexts",
        "8,16",
        "--probe-stories",
        "3",
    ];
    let (ok, out, err) = mla_lab(&args);
    assert!(ok, "{out}\n{err}");
    let runs = [
        "z_mha-s1",
        "z_mha-s2",
        "a_mla_rope_half-s1",
        "a_mla_rope_half-s2",
    ];
    for run in runs {
        for f in [
            "summary.json",
            "eval.json",
            "probes.json",
            "samples.json",
            "bench.json",
        ] {
            assert!(art.join(run).join(f).exists(), "{run}/{f}");
        }
    }
    // The seeds share the tokenizer and the validation set, and differ in training.
    let read = |run: &str, f: &str| std::fs::read(art.join(run).join(f)).unwrap();
    assert_eq!(
        read("z_mha-s1", "tokenizer.json"),
        read("z_mha-s2", "tokenizer.json")
    );
    let eval = |run: &str| String::from_utf8(read(run, "eval.json")).unwrap();
    let tokens = |e: String| {
        e.lines()
            .find(|l| l.contains("\"tokens\""))
            .unwrap()
            .to_string()
    };
    assert_eq!(tokens(eval("z_mha-s1")), tokens(eval("z_mha-s2")));
    assert_ne!(read("z_mha-s1", "model.bpk"), read("z_mha-s2", "model.bpk"));
    let report = std::fs::read_to_string(art.join("report/report.md")).unwrap();
    // MHA is the baseline even though it sorts last.
    assert!(report.contains("baseline `z_mha`"), "{report}");
    assert!(
        report.contains("4 runs of 2 experiments, training seeds [1, 2]"),
        "{report}"
    );
    // Aggregated rows: one per experiment, over two seeds.
    assert!(report.contains("| z_mha | MHA | "), "{report}");
    assert!(
        report.contains("| a_mla_rope_half | MLA+RoPE4 r=16 sep | "),
        "{report}"
    );
    // Per-seed rows.
    for (run, exp, seed) in [
        ("z_mha-s1", "z_mha", 1),
        ("a_mla_rope_half-s2", "a_mla_rope_half", 2),
    ] {
        assert!(
            report.contains(&format!("| {run} | {exp} | {seed} | ")),
            "{report}"
        );
    }
    assert!(report.contains("## Story probes"), "{report}");
    // The best and the worst variant's continuations of the fixed prompts, quoted.
    assert!(
        report.contains("## Samples")
            && report.contains("(best, validation loss")
            && report.contains("(worst, validation loss")
            && report.contains("> Once upon a time"),
        "{report}"
    );
    // KV: (2·16 + 4) against 2·32 elements per layer: 43.75% smaller, exact, in the band.
    assert!(
        report.contains(
            "a_mla_rope_half vs MHA: +43.75% (exact, n = 1) | +40.00% to +50.00% | consistent"
        ),
        "{report}"
    );
    // Loss claims: paired over the two seeds.
    assert!(report.contains("a_mla_rope_half vs z_mha: "), "{report}");
    assert!(report.contains("n = 2)"), "{report}");
    // Every claim has a verdict of the rule's four, and its power analysis.
    let claims = &report[report.find("## The paper's claims").unwrap()..];
    let rows: Vec<Vec<&str>> = claims
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| claim") && l.matches('|').count() == 7)
        .map(|l| l.split(" | ").collect())
        .collect();
    // One baseline (MHA with learned positions): the KV cut, four loss claims ("+0.3%", "worse
    // without RoPE" one-sided, then by 3-5%, "2% better"), speed, stories.
    assert_eq!(rows.len(), 7, "{claims}");
    for row in &rows {
        let verdict = row[4];
        assert!(
            [
                "consistent",
                "contradicted",
                "inconclusive",
                "not reproduced here"
            ]
            .iter()
            .any(|v| verdict.starts_with(v)),
            "{row:?}"
        );
    }
    assert!(
        claims.contains("### Changes of validation loss in three units")
            && claims.contains("| a_mla_rope_half vs z_mha | "),
        "{claims}"
    );
    // Plots need a system font. .ci/run installs DejaVu and sets MLA_LAB_REQUIRE_FONT, so there
    // a missing font fails instead of skipping the plot checks.
    let font = std::path::Path::new("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf").exists();
    assert!(
        font || std::env::var_os("MLA_LAB_REQUIRE_FONT").is_none(),
        "MLA_LAB_REQUIRE_FONT is set but DejaVuSans.ttf is missing: the plots were not drawn"
    );
    if font {
        for plot in ["val_loss", "pareto", "loss_change_vs_z_mha"] {
            let svg = std::fs::read_to_string(art.join(format!("report/{plot}.svg"))).unwrap();
            assert!(svg.contains("<svg") && svg.contains("z_mha"), "{plot}");
            let png = std::fs::read(art.join(format!("report/{plot}.png"))).unwrap();
            assert!(png.starts_with(b"\x89PNG"), "{plot}.png");
            assert!(report.contains(&format!("]({plot}.svg)")), "{report}");
        }
        // No full-rank row to pair the decode speed with: no speed plot, and no link to one.
        assert!(!art.join("report/decode_speed.svg").exists());
        assert!(!report.contains("decode_speed"), "{report}");
    }
    // Again: everything is there, nothing is redone.
    let remeasured =
        |out: &str| out.contains("training") || out.contains(": eval") || out.contains(": bench");
    let (ok, out, err) = mla_lab(&args);
    assert!(ok, "{err}");
    assert!(!remeasured(&out), "{out}");
    // Kept records carry the study to a machine whose artifacts are gone: nothing is trained
    // or measured again there, and the report is the same.
    let records = dir.join("records");
    let mut keep = args.to_vec();
    keep.extend(["--records", records.to_str().unwrap()]);
    let (ok, _, err) = mla_lab(&keep);
    assert!(ok, "{err}");
    assert!(records.join("z_mha-s2/bench.json").exists());
    assert!(
        !records.join("z_mha-s2/model.bpk").exists(),
        "records hold no weights"
    );
    let elsewhere = dir.join("elsewhere");
    let mut restore = keep.clone();
    restore[3] = elsewhere.to_str().unwrap();
    let (ok, out, err) = mla_lab(&restore);
    assert!(ok, "{err}");
    assert!(
        out.contains("z_mha-s2: restoring its records") && !remeasured(&out),
        "{out}"
    );
    let report = |a: &Path| std::fs::read_to_string(a.join("report/report.md")).unwrap();
    assert_eq!(report(&elsewhere), report(&art));
    // Probes of another number of stories are redone where the weights are, and kept, with a
    // word, where they are not; nothing else is redone. So are probes written before attribute
    // consistency was measured.
    let probes = |run: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(run.join("probes.json")).unwrap()).unwrap()
    };
    let mut more = restore.clone();
    more[9] = "4";
    let (ok, out, err) = mla_lab(&more);
    assert!(ok, "{err}");
    assert!(
        out.contains("z_mha-s1: probes kept (3 stories, 4 asked): no weights here to redo them"),
        "{out}"
    );
    assert_eq!(probes(&elsewhere.join("z_mha-s1"))["stories"], 3);
    let old = art.join("z_mha-s2/probes.json");
    let mut without = probes(&art.join("z_mha-s2"));
    without
        .as_object_mut()
        .unwrap()
        .remove("attribute_consistency");
    std::fs::write(&old, without.to_string()).unwrap();
    let (ok, out, err) = mla_lab(&keep);
    assert!(ok, "{err}");
    assert!(
        out.contains("z_mha-s2: probes again (written before attribute consistency)")
            && !out.contains("z_mha-s1: probes")
            && !out.contains(": samples")
            && !remeasured(&out),
        "{out}"
    );
    assert!(probes(&records.join("z_mha-s2"))["attribute_consistency"].is_object());
    more[3] = art.to_str().unwrap();
    let (ok, out, err) = mla_lab(&more);
    assert!(ok, "{err}");
    assert!(
        out.contains("a_mla_rope_half-s2: probes again (3 stories, 4 asked)") && !remeasured(&out),
        "{out}"
    );
    for run in runs {
        assert_eq!(probes(&art.join(run))["stories"], 4, "{run}");
        assert_eq!(probes(&records.join(run))["stories"], 4, "{run}");
    }
    // So are an eval and a bench asked differently: records keep the options that made them.
    // A bench is redone for every run of the seed, so that they stay side by side.
    let mut other = more.clone();
    other[7] = "8";
    other.extend(["--eval-windows", "2"]);
    let (ok, out, err) = mla_lab(&other);
    assert!(ok, "{err}");
    assert!(
        out.contains("z_mha-s1: eval again (the whole split, 2 windows asked)")
            && out.contains("bench: again, asked differently (z_mha-s1: rows [")
            && out.contains("bench: 2 runs side by side")
            && !out.contains("training"),
        "{out}"
    );
    let json = |f: PathBuf| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap()
    };
    for run in runs {
        assert_eq!(json(art.join(run).join("eval.json"))["max_windows"], 2);
        let rows = json(art.join(run).join("bench.json"));
        let contexts: Vec<_> = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["context"])
            .collect();
        assert!(contexts.iter().all(|c| *c == 8), "{run}: {contexts:?}");
        assert_eq!(rows[0]["run"], run);
    }
    let (ok, out, err) = mla_lab(&other);
    assert!(ok && !remeasured(&out), "{out}\n{err}");
    // Where the runs were restored from their records, there are no weights to bench again:
    // the benches of the trained weights are kept, with a word.
    let mut restored = other.clone();
    restored[3] = elsewhere.to_str().unwrap();
    restored[7] = "8";
    let (ok, out, err) = mla_lab(&restored);
    assert!(ok, "{err}");
    assert!(
        out.contains("bench: kept (")
            && out.contains("no weights here to redo them")
            && !out.contains("side by side")
            && !out.contains("training"),
        "{out}"
    );
    // report alone, on two of the runs.
    let (ok, out, err) = mla_lab(&[
        "report",
        art.join("z_mha-s1").to_str().unwrap(),
        art.join("a_mla_rope_half-s1").to_str().unwrap(),
        "--out",
        dir.join("r2").to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("report.md"), "{out}");
    let one_seed = std::fs::read_to_string(dir.join("r2/report.md")).unwrap();
    assert!(one_seed.contains("one value: no interval"), "{one_seed}");
    let (ok, _, err) = mla_lab(&["report", dir.to_str().unwrap()]);
    assert!(!ok && err.contains("experiment.ron"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Writes `<dir>/<name>.ron`, an MLA+RoPE r = d/2 experiment on `stories` synthetic stories
/// with `train` as its train section, and returns its path.
fn rope_experiment(dir: &Path, name: &str, seed: u64, stories: usize, train: &str) -> PathBuf {
    let exp = dir.join(format!("{name}.ron"));
    let text = experiment(name, seed, stories, MLA_ROPE_HALF, "Rope(10000.0)", train);
    std::fs::write(&exp, text).unwrap();
    exp
}

/// Every weight of a trained run, in module order.
fn trained_weights(dir: &Path) -> Vec<f32> {
    use burn::store::ModuleSnapshot;
    let run = mla_lab::artifacts::run::Run::load(dir, &mla_lab::backend::test_device()).unwrap();
    run.model
        .collect(None, None, false)
        .iter()
        .flat_map(|t| {
            let bytes = t.to_bytes().unwrap().to_vec();
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    mla_lab::compare::max_abs_diff(a, b, "trained weights")
}

/// The weights' comparison fails on a planted NaN, as every equivalence test's does.
#[test]
#[should_panic(expected = "trained weights: index 2 is NaN")]
fn a_planted_nan_in_trained_weights_fails_their_comparison() {
    max_difference(&[0.5, 0.25, f32::NAN], &[0.5, 0.25, 0.125]);
}

/// `mla-lab --backend cpu train FILE --artifacts ART [--headless] EXTRA…`: whether it
/// succeeded, its stdout and its stderr.
fn train_on_cpu(file: &Path, art: &Path, headless: bool, extra: &[&str]) -> (bool, String, String) {
    let mut args = vec!["--backend", "cpu", "train", file.to_str().unwrap()];
    if headless {
        args.push("--headless");
    }
    args.extend_from_slice(&["--artifacts", art.to_str().unwrap()]);
    args.extend_from_slice(extra);
    mla_lab(&args)
}

/// Makes a finished run with checkpoints at steps 4, 8 and 12 look killed after its second
/// checkpoint: no summary, no final weights, no third checkpoint.
fn cut_back_to_second_checkpoint(run: &Path) {
    for f in ["summary.json", "model.bpk", "model.safetensors"] {
        std::fs::remove_file(run.join(f)).unwrap();
    }
    for p in ["model", "optim", "scheduler"] {
        std::fs::remove_file(run.join(format!("checkpoint/{p}-3.bpk"))).unwrap();
    }
}

/// Asserts that `run` trained what `reference` did, up to the order in which floats were
/// added: `steps` rows of metrics.csv each, the same loss at every step and the same final
/// weights, within 1e-4.
fn assert_same_training(reference: &Path, run: &Path, steps: usize, what: &str) {
    let rows = |d: &Path| metric_rows(&std::fs::read_to_string(d.join("metrics.csv")).unwrap());
    let (want, got) = (rows(reference), rows(run));
    assert_eq!((want.len(), got.len()), (steps, steps), "{what}");
    for (a, b) in want.iter().zip(&got) {
        assert_eq!(a.0, b.0);
        assert!(
            (a.1 - b.1).abs() < 1e-4,
            "{what}, step {}: {} vs {}",
            a.0,
            a.1,
            b.1
        );
    }
    let d = max_difference(&trained_weights(reference), &trained_weights(run));
    eprintln!("{what}: weights differ by at most {d}");
    assert!(d < 1e-4, "{what}: weights differ by {d}");
}

#[test]
fn micro_batches_train_what_the_whole_batch_does_and_a_resume_may_change_them() {
    let dir = fresh_dir("micro");
    let train_section = "max_steps: 12, lr: 3e-3, min_lr: 3e-4, warmup_steps: 2, eval_every: 4,
         checkpoint_every: 4, eval_batches: 2, log_every: 1, keep_checkpoints: 3";
    let exp = rope_experiment(&dir, "micro", 3, 300, train_section);
    let train = |art: &str, file: &Path, extra: &[&str]| {
        let art = dir.join(art);
        let (ok, out, err) = train_on_cpu(file, &art, true, extra);
        assert!(ok, "{out}\n{err}");
        (art.join("micro"), out)
    };
    let (whole, out) = train("whole", &exp, &[]);
    // Before training, timed passes (on the CPU of one row, scaled) and the projected wall
    // time.
    assert!(
        out.contains("micro: a pass of 1 row × 32 tokens takes")
            && out.contains("12 steps of 1 pass each (scaled to 4 rows): about")
            && !out.contains("experiments/tiny/"),
        "{out}"
    );
    let (ones, out) = train("ones", &exp, &["--micro-batch", "1"]);
    assert!(
        out.contains("micro-batches of 1 rows, 4 passes per step")
            && out.contains("a pass of 1 row × 32 tokens")
            && out.contains("12 steps of 4 passes each"),
        "{out}"
    );
    // Micro-batches on each of two devices; and the file's own train.micro_batch.
    let (both, out) = train("both", &exp, &["--devices", "2", "--micro-batch", "1"]);
    assert!(
        out.contains("2 devices") && out.contains("2 passes per step"),
        "{out}"
    );
    let in_file = dir.join("in_file");
    std::fs::create_dir_all(&in_file).unwrap();
    let file = rope_experiment(
        &in_file,
        "micro",
        3,
        300,
        &format!("{train_section}, micro_batch: 2"),
    );
    let (twos, out) = train("twos", &file, &[]);
    assert!(out.contains("micro-batches of 2 rows"), "{out}");
    // The same curve, step by step, and the same weights, up to the order of float sums.
    for (name, run) in [("1 row", &ones), ("2 devices", &both), ("2 rows", &twos)] {
        assert_same_training(&whole, run, 12, &format!("micro-batches, {name}"));
    }

    // A run stopped after its second checkpoint resumes in passes of one row (micro_batch
    // makes no other run) and ends where the whole-batch run ended.
    let (three, _) = train("three", &exp, &[]);
    cut_back_to_second_checkpoint(&three);
    let (_, out) = train("three", &exp, &["--resume", "--micro-batch", "1"]);
    assert!(out.contains("micro-batches of 1 rows"), "{out}");
    let d = max_difference(&trained_weights(&whole), &trained_weights(&three));
    assert!(
        d < 1e-4,
        "resumed in micro-batches, the weights differ by {d}"
    );

    // A micro-batch that does not divide the batch, or a device's share, is refused up
    // front with the divisors, and leaves no folder.
    let refused = |file: &Path, extra: &[&str], want: &[&str]| {
        let art = dir.join("refused");
        let (ok, _, err) = train_on_cpu(file, &art, false, extra);
        assert!(!ok, "{extra:?}");
        for w in want {
            assert!(err.contains(w), "{extra:?}: {err}");
        }
        assert!(
            !art.join("micro").exists(),
            "{extra:?}: a refused run left a folder"
        );
    };
    refused(
        &exp,
        &["--micro-batch", "3"],
        &["--micro-batch 3", "accepted: 1, 2, 4"],
    );
    refused(
        &exp,
        &["--micro-batch", "4", "--devices", "2"],
        &["--micro-batch 4", "2 rows", "accepted: 1, 2"],
    );
    let bad = dir.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let file = rope_experiment(
        &bad,
        "micro",
        3,
        300,
        &format!("{train_section}, micro_batch: 3"),
    );
    refused(
        &file,
        &[],
        &[
            "train.micro_batch",
            "3 does not divide",
            "accepted: 1, 2, 4",
        ],
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn two_devices_train_what_one_does_and_a_resume_may_change_their_number() {
    let dir = fresh_dir("devices");
    let exp = rope_experiment(
        &dir,
        "devices",
        3,
        300,
        "max_steps: 12, lr: 3e-3, min_lr: 3e-4, warmup_steps: 2, eval_every: 4,
         checkpoint_every: 4, eval_batches: 2, log_every: 1, keep_checkpoints: 3",
    );
    let train = |art: &str, extra: &[&str]| {
        let art = dir.join(art);
        let (ok, out, err) = train_on_cpu(&exp, &art, true, extra);
        assert!(ok, "{out}\n{err}");
        (art.join("devices"), out)
    };
    let (one, _) = train("one", &[]);
    let (two, out) = train("two", &["--devices", "2"]);
    assert!(
        out.contains("2 devices") && out.contains("2 rows of the batch of 4"),
        "{out}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(two.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["devices"], 2);
    assert!(
        summary["strategy"]
            .as_str()
            .unwrap()
            .starts_with("multi-device"),
        "{summary}"
    );
    // The same curve, step by step (the shards' mean is the batch's mean), and the same
    // weights, up to the order in which floats were added.
    assert_same_training(&one, &two, 12, "two devices");

    // A run stopped after its second checkpoint (step 8) resumes on two devices and ends
    // where the one-device run ended.
    let (three, _) = train("three", &[]);
    cut_back_to_second_checkpoint(&three);
    let (_, out) = train("three", &["--resume", "--devices", "2"]);
    assert!(out.contains("2 devices"), "{out}");
    let rows3 = metric_rows(&std::fs::read_to_string(three.join("metrics.csv")).unwrap());
    assert_eq!(
        rows3.iter().map(|r| r.0).collect::<Vec<_>>(),
        (1..=12).collect::<Vec<_>>()
    );
    let d = max_difference(&trained_weights(&one), &trained_weights(&three));
    assert!(
        d < 1e-4,
        "resumed on two devices, the weights differ by {d}"
    );

    // A batch that does not split, and devices a CPU does not have, are refused up front.
    let refused = |spec: &str, want: &[&str]| {
        let art = dir.join("refused");
        let (ok, _, err) = train_on_cpu(&exp, &art, false, &["--devices", spec]);
        assert!(!ok, "{spec}");
        for w in want {
            assert!(err.contains(w), "{spec}: {err}");
        }
        assert!(
            !art.join("devices").exists(),
            "{spec}: a refused run left a folder"
        );
    };
    refused(
        "3",
        &["train.batch_size 4", "3 devices", "accepted", "1, 2, 4"],
    );
    refused(
        "0,1",
        &[
            "--devices 0,1",
            "one device of backend",
            "count N of replicas",
        ],
    );
    refused("0", &["--devices", "accepted"]);
    refused("1,1", &["--devices", "distinct"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The GPU code path on whatever wgpu adapter the machine has (Mesa's llvmpipe where there is
/// no GPU): the same run as on the CPU, from the same initial weights. Skipped, saying so, in a
/// build without `--features wgpu` or on a machine without an adapter.
#[test]
fn a_tiny_experiment_trains_on_wgpu_as_on_the_cpu() {
    trains_as_on_the_cpu("wgpu", &["no wgpu backend", "no wgpu adapter"]);
}

/// CUDA's kernels, compiled by CubeCL through LLVM for this CPU (burn-cpu): the same run as on
/// the CPU. Skipped, saying so, in a build without `--features cubecl-cpu`.
#[test]
fn a_tiny_experiment_trains_on_cubecl_cpu_as_on_the_cpu() {
    trains_as_on_the_cpu("cubecl-cpu", &["no CubeCL CPU backend"]);
}

/// Trains one tiny experiment for 12 steps on `backend` and on flex, and asserts the loss at
/// every step and the final weights agree within float32's reordering (see the library test
/// twenty_training_steps_agree_on_every_backend). Skipped, saying so, when `backend` fails with
/// one of `missing` (not built, no device).
fn trains_as_on_the_cpu(backend: &str, missing: &[&str]) {
    let dir = fresh_dir(backend);
    let exp = rope_experiment(
        &dir,
        "other",
        4,
        300,
        "max_steps: 12, lr: 3e-3, min_lr: 3e-4, warmup_steps: 2, eval_every: 4,
         checkpoint_every: 4, eval_batches: 2, log_every: 1",
    );
    let train = |backend: &str| {
        let art = dir.join(backend);
        let args = [
            "--backend",
            backend,
            "train",
            exp.to_str().unwrap(),
            "--headless",
        ];
        let (ok, out, err) =
            mla_lab(&[&args[..], &["--artifacts", art.to_str().unwrap()]].concat());
        (ok, out, err, art.join("other"))
    };
    let (ok, out, err, other) = train(backend);
    if !ok && missing.iter().any(|m| err.contains(m)) {
        eprintln!(
            "skipped: no {backend} here ({})",
            err.lines().last().unwrap_or("")
        );
        std::fs::remove_dir_all(&dir).unwrap();
        return;
    }
    assert!(ok, "{out}\n{err}");
    let (ok, out, err, cpu) = train("cpu");
    assert!(ok, "{out}\n{err}");
    let summary = |run: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap()
    };
    let (on_other, on_cpu) = (summary(&other), summary(&cpu));
    assert!(
        on_other["backend"].as_str().unwrap().starts_with(backend),
        "{on_other}"
    );
    assert_eq!(on_other["initialisation"], on_cpu["initialisation"]);
    assert!(on_other["initialisation"].is_string(), "{on_other}");
    assert_same_training(&cpu, &other, 12, &format!("{backend} against the CPU"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// mla-lab's fused kernels on flex (attention, LayerNorm, GELU, the loss: the default) against
/// burn's composed operations (`--composed`), from the same initial weights: the same loss at
/// each of 12 steps and the same weights, within float32's reordering, for MLA+RoPE (the latent
/// path, its shared rotary key beside each head's key) and grouped MHA.
#[test]
fn fused_kernels_train_as_burns_composed_operations() {
    let dir = fresh_dir("composed");
    let steps = "max_steps: 12, lr: 3e-3, min_lr: 3e-4, warmup_steps: 2, eval_every: 4,
         checkpoint_every: 4, eval_batches: 2, log_every: 1";
    for (name, attention, positions) in [
        ("mla", MLA_ROPE_HALF, "Rope(10000.0)"),
        ("gqa", "Mha(kv_heads: 2)", "Learned"),
    ] {
        let exp = dir.join(format!("{name}.ron"));
        std::fs::write(&exp, experiment(name, 6, 300, attention, positions, steps)).unwrap();
        let train = |art: &str, extra: &[&str]| {
            let art = dir.join(art);
            let (ok, out, err) = train_on_cpu(&exp, &art, true, extra);
            assert!(ok, "{out}\n{err}");
            art.join(name)
        };
        let (fused, composed) = (train("fused", &[]), train("composed", &["--composed"]));
        assert_same_training(
            &composed,
            &fused,
            12,
            &format!("{name}: fused against composed"),
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn devices_lists_each_backend_and_the_one_chosen() {
    let (ok, out, err) = mla_lab(&["--backend", "cpu", "devices"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("cpu        cpu ("), "{out}");
    assert_eq!(lines.len(), 6, "{out}");
    assert!(lines[5].starts_with("--backend cpu: cpu ("), "{out}");
    // A backend with no device here fails, after the list, naming why.
    for (backend, feature) in [
        ("cuda", "cuda"),
        ("libtorch", "tch"),
        ("wgpu", "wgpu"),
        ("cubecl-cpu", "cubecl-cpu"),
    ] {
        let (ok, out, err) = mla_lab(&["--backend", backend, "devices"]);
        let built = out
            .lines()
            .any(|l| l.starts_with(backend) && !l.contains("none:"));
        assert_eq!(ok, built, "{backend}: {out}{err}");
        if !built {
            assert!(
                out.contains(&format!("--features {feature}")) || out.contains("no "),
                "{out}"
            );
            assert!(err.contains(&format!("backend {backend}")), "{err}");
        }
    }
}

/// `convert` makes a trained MHA run into MLA: at full rank (and unnormed latents) the
/// converted run's validation loss is the source's, a second conversion into the same folder is
/// refused, and `train` on the target fine-tunes it from the converted weights, its summary
/// naming the conversion.
#[test]
fn a_study_converts_each_seeds_mha_run_measures_what_it_cost_and_reports_the_fine_tune() {
    let dir = fresh_dir("convert");
    let (exps, art) = (dir.join("exps"), dir.join("art"));
    std::fs::create_dir_all(&exps).unwrap();
    let steps = "max_steps: 8, lr: 3e-3, min_lr: 3e-4, warmup_steps: 2, eval_every: 4, \
                 checkpoint_every: 4, eval_batches: 2, log_every: 4";
    let write = |name: &str, attention: &str, positions: &str, from: Option<&str>| {
        let file = exps.join(format!("{name}.ron"));
        let mut text = experiment(name, 5, 300, attention, positions, steps);
        if let Some(from) = from {
            text = text.replacen(
                "seed: 5,",
                &format!("seed: 5, convert_from: Some({from:?}),"),
                1,
            );
        }
        std::fs::write(&file, text).unwrap();
        file
    };
    let rope = "Rope(10000.0)";
    write("mha", "Mha(kv_heads: 4)", "Learned", None);
    write("mha_rope", "Mha(kv_heads: 4)", rope, None);
    // The control: the source's own model, taken unchanged and fine-tuned alike.
    write("mha_cont", "Mha(kv_heads: 4)", "Learned", Some("mha"));
    // Full rank (r = d = 32): the learned-position conversion is exact.
    let mla = write(
        "mla_conv",
        "Mla(rank: 32, layout: Separate, rope_dim: 0, latent_norm: false)",
        "Learned",
        Some("mha"),
    );
    write(
        "mla_rope_conv",
        "Mla(rank: 32, layout: Separate, rope_dim: 4, latent_norm: false)",
        rope,
        Some("mha_rope"),
    );
    // Without a conversion to start from, training is refused and leaves no folder.
    let (ok, _, err) = train_on_cpu(&mla, &art, true, &[]);
    assert!(
        !ok && err.contains("convert_from") && err.contains("drawn"),
        "{err}"
    );
    assert!(!art.join("mla_conv").exists());
    // The sources sort first, so each seed's source trains before its conversion.
    let (ok, out, err) = mla_lab(&[
        "--backend",
        "cpu",
        "study",
        arg(&exps),
        "--artifacts",
        arg(&art),
        "--seeds",
        "1,2",
        "--contexts",
        "8,16",
        "--probe-stories",
        "2",
    ]);
    assert!(ok, "{out}{err}");
    let json = |file: PathBuf| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap()
    };
    for seed in [1, 2] {
        let run = art.join(format!("mla_conv-s{seed}"));
        let cost = json(run.join("conversion_eval.json"));
        let (source, converted) = (
            cost["source"]["loss"].as_f64().unwrap(),
            cost["converted"]["loss"].as_f64().unwrap(),
        );
        assert!(
            (source - converted).abs() < 1e-4,
            "seed {seed}: {source} against {converted}"
        );
        let init = json(run.join("summary.json"))["initialisation"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            init.starts_with("converted from mha") && init.contains("svd separate at rank 32"),
            "{init}"
        );
        let rotary = json(art.join(format!("mla_rope_conv-s{seed}/conversion.json")));
        assert_eq!(rotary["rotary"].as_array().unwrap().len(), 2, "{rotary}");
    }
    // The report gives the converted rows their own section and keeps them out of the rest.
    let report = std::fs::read_to_string(art.join("report/report.md")).unwrap();
    let (rest, section) = report
        .split_once("## Converted from MHA (beyond the paper)")
        .unwrap();
    assert!(
        !rest.contains("mla_conv") && !rest.contains("mla_rope_conv"),
        "{rest}"
    );
    assert!(
        section.contains("`mla_conv`") && section.contains("`mla_rope_conv`"),
        "{section}"
    );
    // `convert` by hand: a new folder, its cost measured; a second conversion there is refused.
    let convert_into = |source: &str, target: &Path, into: &str, extra: &[&str]| {
        let (source, into) = (art.join(source), dir.join(into));
        let mut args = vec![
            "--backend",
            "cpu",
            "convert",
            arg(&source),
            "--to",
            arg(target),
        ];
        args.extend(["--artifacts", arg(&into)]);
        args.extend(extra);
        mla_lab(&args)
    };
    let convert = || convert_into("mha-s1", &mla, "art2", &[]);
    let (ok, out, err) = convert();
    assert!(
        ok && out.contains("converted from mha") && out.contains("validation loss on"),
        "{out}{err}"
    );
    assert!(dir.join("art2/mla_conv-s1/conversion_eval.json").exists());
    let (ok, _, err) = convert();
    assert!(!ok && err.contains("holds a run already"), "{err}");

    // The conversion carries the target it was made for: a fine-tune of the target edited
    // since (other data) is refused, and nothing of the conversion is touched.
    let converted = dir.join("art2/mla_conv-s1");
    // Scored before any fine-tune: a note says whose weights stand in.
    let (ok, _, err) = mla_lab(&[
        "--backend",
        "cpu",
        "eval",
        arg(&converted),
        "--windows",
        "2",
    ]);
    assert!(ok && err.contains("has not been fine-tuned"), "{err}");
    let edited = dir.join("edited");
    std::fs::create_dir_all(&edited).unwrap();
    let edited_file = edited.join("mla_conv.ron");
    let text = std::fs::read_to_string(&mla).unwrap();
    let other_data = "Synthetic(count: 300, seed: 3)";
    assert!(text.contains("Synthetic(count: 300, seed: 2)"), "{text}");
    std::fs::write(
        &edited_file,
        text.replace("Synthetic(count: 300, seed: 2)", other_data),
    )
    .unwrap();
    let start = std::fs::read(converted.join("converted.bpk")).unwrap();
    let (ok, _, err) = train_on_cpu(&edited_file, &dir.join("art2"), true, &["--seed", "1"]);
    assert!(
        !ok && err.contains("converted weights") && err.contains("data.source"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(converted.join("converted.bpk")).unwrap(),
        start
    );
    assert!(!converted.join("metrics.csv").exists());
    // Fine-tuned, then forced again with the same target: the conversion stays whole and the
    // new run starts from it, its summary saying so.
    let (ok, _, err) = train_on_cpu(&mla, &dir.join("art2"), true, &["--seed", "1"]);
    assert!(ok, "{err}");
    let (ok, _, err) = train_on_cpu(&mla, &dir.join("art2"), true, &["--seed", "1", "--force"]);
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read(converted.join("converted.bpk")).unwrap(),
        start
    );
    let init = json(converted.join("summary.json"))["initialisation"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(init.starts_with("converted from mha"), "{init}");
    assert!(converted.join("conversion.json").exists());
    // Forced with the edited target: the conversion goes whole, and with it any claim to it;
    // training then asks for a conversion first, as for a new folder.
    let (ok, _, err) = train_on_cpu(
        &edited_file,
        &dir.join("art2"),
        true,
        &["--seed", "1", "--force"],
    );
    assert!(!ok && err.contains("convert_from"), "{err}");
    assert!(
        !converted.join("converted.bpk").exists() && !converted.join("conversion.json").exists()
    );

    // A source that has not finished (its summary gone, as in a run still training or killed)
    // is refused before anything is written.
    std::fs::remove_file(art.join("mha-s2/summary.json")).unwrap();
    let (ok, _, err) = convert_into("mha-s2", &mla, "art3", &[]);
    assert!(!ok && err.contains("not a finished run"), "{err}");
    assert!(!dir.join("art3").exists());
    // An option that cannot be used is refused, by its flag, before anything is written.
    let (ok, _, err) = convert_into("mha-s1", &mla, "art4", &["--eval-windows", "0"]);
    assert!(!ok && err.contains("--eval-windows 0"), "{err}");
    assert!(!dir.join("art4").exists());
    // A target named as its source: its folder would be the source run's, which is refused as
    // such, not as a folder to remove.
    let same = dir.join("same/mha.ron");
    std::fs::create_dir_all(same.parent().unwrap()).unwrap();
    std::fs::write(
        &same,
        std::fs::read_to_string(&mla)
            .unwrap()
            .replacen("name: \"mla_conv\"", "name: \"mha\"", 1),
    )
    .unwrap();
    // Into the study's own artifacts, where the source run is.
    let (ok, _, err) = convert_into("mha-s1", &same, "art", &[]);
    assert!(!ok && err.contains("a name of its own"), "{err}");
    assert!(art.join("mha-s1/summary.json").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
