//! Study records you can trust, through the command line: a run is counted once, only for the
//! experiment that made it; a records entry is read strictly and written whole; options that
//! cannot produce an answer are refused before anything trains.
//!
//! Most tests start from one small study (two experiments, seed 1, `--records`), made once and
//! copied into each test's own folder.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::arg as s;

fn fresh_dir(tag: &str) -> PathBuf {
    common::fresh_dir("records", tag)
}

/// `mla-lab ARGS` from the project's root: whether it succeeded, stdout, stderr.
fn mla_lab(args: &[&str]) -> (bool, String, String) {
    let ran = common::mla_lab(args);
    (ran.ok(), ran.stdout, ran.stderr)
}

/// A tiny experiment (d_model 32, 2 layers, a 300-token BPE, batch 4, `steps` steps).
fn experiment(name: &str, attention: &str, positions: &str, steps: usize) -> String {
    format!(
        r#"(name: "{name}", seed: 5,
            model: (vocab_size: 300, context: 32, d_model: 32, n_layers: 2, n_heads: 4,
                    positions: {positions}, attention: {attention}),
            data: (source: Synthetic(count: 300, seed: 2), tokenizer: Bpe(vocab_size: 300)),
            train: (batch_size: 4, max_steps: {steps}, lr: 3e-3, min_lr: 3e-4, warmup_steps: 2,
                    eval_every: 10, checkpoint_every: 10, eval_batches: 2, log_every: 10))"#
    )
}

const P: (&str, &str, &str) = (
    "p",
    "Mla(rank: 16, layout: Separate, rope_dim: 4)",
    "Rope(10000.0)",
);
const Q: (&str, &str, &str) = ("q", "Mha(kv_heads: 4)", "Learned");

/// Writes `p.ron` (MLA+RoPE) and `q.ron` (MHA) into `dir/exps`; returns their paths.
fn write_experiments(dir: &Path) -> (PathBuf, PathBuf) {
    let exps = dir.join("exps");
    std::fs::create_dir_all(&exps).unwrap();
    let write = |(name, attention, positions): (&str, &str, &str)| {
        let f = exps.join(format!("{name}.ron"));
        std::fs::write(&f, experiment(name, attention, positions, 10)).unwrap();
        f
    };
    (write(P), write(Q))
}

/// The study's options past its inputs: artifacts, records and the small measurements.
fn study_args<'a>(exps: &[&'a str], artifacts: &'a str, records: &'a str) -> Vec<&'a str> {
    let mut args = vec!["study"];
    args.extend(exps);
    args.extend([
        "--artifacts",
        artifacts,
        "--records",
        records,
        "--seeds",
        "1",
        "--eval-windows",
        "4",
        "--probe-stories",
        "3",
        "--contexts",
        "8,16",
    ]);
    args
}

/// One study of p and q at seed 1 with `--records`, made once: (folder with `exps/`,
/// `artifacts/` and `records/`).
fn studied() -> &'static Path {
    static DONE: OnceLock<PathBuf> = OnceLock::new();
    DONE.get_or_init(|| {
        let dir = fresh_dir("base");
        let (p, q) = write_experiments(&dir);
        let (art, rec) = (dir.join("artifacts"), dir.join("records"));
        let (ok, out, err) = mla_lab(&study_args(&[s(&p), s(&q)], s(&art), s(&rec)));
        assert!(ok, "{out}\n{err}");
        dir
    })
}

/// `cp -r from to`.
fn copy_dir(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .unwrap()
        .success();
    assert!(ok, "copying {} to {}", from.display(), to.display());
}

/// A copy of the study for one test: `dir/{exps,artifacts,records}`.
fn copy_of_study(tag: &str) -> PathBuf {
    let dir = fresh_dir(tag);
    for sub in ["exps", "artifacts", "records"] {
        copy_dir(&studied().join(sub), &dir.join(sub));
    }
    dir
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

fn parses(p: &Path) -> bool {
    serde_json::from_str::<serde_json::Value>(&read(p)).is_ok()
}

/// Finding 1: `report A A` counted one run as two seeds.
#[test]
fn report_refuses_a_run_given_twice_or_two_runs_of_one_seed() {
    let base = studied();
    let dir = fresh_dir("report-twice");
    let (p1, q1) = (base.join("artifacts/p-s1"), base.join("artifacts/q-s1"));
    let out = dir.join("report");
    let (ok, _, err) = mla_lab(&["report", s(&p1), s(&p1), s(&q1), s(&q1), "--out", s(&out)]);
    assert!(!ok && err.contains("given twice"), "{err}");
    assert!(!out.join("report.md").exists());
    // The same folder by another path.
    let dotted = base.join("artifacts/./p-s1");
    let (ok, _, err) = mla_lab(&["report", s(&p1), s(&dotted), "--out", s(&out)]);
    assert!(!ok && err.contains("given twice"), "{err}");
    // A copy of a run is the same run: one (experiment, seed), one row.
    let copy = dir.join("p-s1-copy");
    copy_dir(&p1, &copy);
    let (ok, _, err) = mla_lab(&["report", s(&p1), s(&copy), s(&q1), "--out", s(&out)]);
    assert!(
        !ok && err.contains("both runs of \"p\" with training seed 1"),
        "{err}"
    );
    // Each once: a report.
    let (ok, _, err) = mla_lab(&["report", s(&p1), s(&q1), "--out", s(&out)]);
    assert!(ok, "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A sweep of the peak learning rate places a row's best peak, and the loss claims are
/// judged again with that row's runs lowered by its gain (the sweep's loss at the row's peak less
/// its best); a sweep run of no row, or two at one peak, is refused, named.
#[test]
fn report_judges_the_loss_claims_again_at_each_rows_best_peak() {
    let base = studied();
    let dir = fresh_dir("report-sweep");
    let (p1, q1) = (base.join("artifacts/p-s1"), base.join("artifacts/q-s1"));
    // q (trained at 3e-3) swept: its best peak 6e-3, 0.05 nats below its own.
    let sweep = |folder: &str, lr: f64, loss: f64, edit: &dyn Fn(String) -> String| {
        let run = dir.join(folder);
        copy_dir(&q1, &run);
        for f in ["eval.json", "probes.json", "bench.json", "samples.json"] {
            let _ = std::fs::remove_file(run.join(f));
        }
        let name = format!("q_lr{lr:e}");
        let exp = experiment(&name, Q.1, Q.2, 10).replace(
            "lr: 3e-3, min_lr: 3e-4",
            &format!("lr: {lr:e}, min_lr: {:e}", lr / 10.0),
        );
        std::fs::write(run.join("experiment.ron"), edit(exp)).unwrap();
        let mut summary: serde_json::Value =
            serde_json::from_str(&read(&run.join("summary.json"))).unwrap();
        summary["experiment"] = name.into();
        summary["final_val_loss"] = loss.into();
        std::fs::write(run.join("summary.json"), summary.to_string()).unwrap();
        run
    };
    let same = |e: String| e;
    let runs = [
        sweep("q_lr1.5e-3", 1.5e-3, 2.30, &same),
        sweep("q_lr3e-3", 3e-3, 2.10, &same),
        sweep("q_lr6e-3", 6e-3, 2.05, &same),
    ];
    let out = dir.join("report");
    let report_with = |sweep: &[&PathBuf]| -> (bool, String, String) {
        let mut args = vec!["report", s(&p1), s(&q1), "--sweep"];
        args.extend(sweep.iter().map(|r| s(r)));
        args.extend(["--out", s(&out)]);
        mla_lab(&args)
    };
    let (ok, _, err) = report_with(&[&runs[0], &runs[1], &runs[2]]);
    assert!(ok, "{err}");
    let report = read(&out.join("report.md"));
    assert!(
        report.contains(
            "| q | 3e-3 | 1.5e-3: 2.3000, 3e-3: 2.1000, 6e-3: 2.0500 | 6e-3 (its edge) | 0.0500 |"
        ),
        "{report}"
    );
    // p has no sweep: named beside each comparison, at its trained peak.
    assert!(report.contains("| inconclusive | p |"), "{report}");
    // p's change against q, with q's loss 0.05 lower and p's as it was.
    let eval = |run: &Path| -> f64 {
        let v: serde_json::Value = serde_json::from_str(&read(&run.join("eval.json"))).unwrap();
        v["loss"].as_f64().unwrap()
    };
    let (lp, lq) = (eval(&p1), eval(&q1));
    let at_best = format!(
        "p vs q: {:+.2}% (one value",
        100.0 * (lp / (lq - 0.05) - 1.0)
    );
    let common = format!("p vs q: {:+.2}% (one value", 100.0 * (lp / lq - 1.0));
    assert!(
        report.contains(&at_best) && report.contains(&common),
        "{report}"
    );
    assert!(report.contains("No verdict changes"), "{report}");
    // Without a run at q's own peak there is no gain: q keeps its losses too.
    let (ok, _, err) = report_with(&[&runs[0], &runs[2]]);
    assert!(ok, "{err}");
    let report = read(&out.join("report.md"));
    assert!(
        report.contains("| q | 3e-3 | 1.5e-3: 2.3000, 6e-3: 2.0500 | 6e-3 (its edge) | - |")
            && report.contains("| inconclusive | p, q |")
            && !report.contains(&at_best),
        "{report}"
    );

    // A run of another schedule is no row's sweep; two runs at one peak are one too many.
    let other = sweep("q_steps", 6e-3, 2.0, &|e| {
        e.replace("max_steps: 10", "max_steps: 12")
    });
    let (ok, _, err) = report_with(&[&other]);
    assert!(
        !ok && err.contains("q_steps") && err.contains("a sweep run of no row"),
        "{err}"
    );
    let again = sweep("q_again", 6e-3, 2.0, &same);
    let (ok, _, err) = report_with(&[&runs[2], &again]);
    assert!(
        !ok && err.contains("q_again") && err.contains("a second sweep run of q"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Findings 1 and 2: `study p.ron p.ron` counted one experiment twice, and of two files with one
/// name the second was silently dropped. Both are refused before anything is trained.
#[test]
fn study_refuses_a_file_twice_and_two_files_of_one_name_before_training() {
    let dir = fresh_dir("study-twice");
    let (p, q) = write_experiments(&dir);
    let art = dir.join("artifacts");
    let rec = dir.join("records");
    let (ok, _, err) = mla_lab(&study_args(&[s(&p), s(&p), s(&q)], s(&art), s(&rec)));
    assert!(!ok && err.contains("given twice"), "{err}");
    // The folder and a file in it name that file twice too.
    let exps = dir.join("exps");
    let (ok, _, err) = mla_lab(&study_args(&[s(&exps), s(&p)], s(&art), s(&rec)));
    assert!(!ok && err.contains("given twice"), "{err}");
    // Another file named "p", of another model.
    let other = dir.join("p_mha.ron");
    std::fs::write(&other, experiment("p", Q.1, Q.2, 10)).unwrap();
    let (ok, _, err) = mla_lab(&study_args(&[s(&p), s(&other)], s(&art), s(&rec)));
    assert!(!ok && err.contains("are both named \"p\""), "{err}");
    assert!(!art.join("p-s1").exists(), "nothing trained");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Finding 2: after `max_steps` changed in a studied file, `study` reported the old run as the
/// new experiment. It is refused, naming the field, until `--force` trains it again.
#[test]
fn study_refuses_the_run_of_an_edited_file_until_force() {
    let dir = copy_of_study("edited");
    let (art, rec) = (dir.join("artifacts"), dir.join("records"));
    let p = dir.join("exps/p.ron");
    let q = dir.join("exps/q.ron");
    std::fs::write(&p, experiment(P.0, P.1, P.2, 20)).unwrap();
    let args = study_args(&[s(&p), s(&q)], s(&art), s(&rec));
    let (ok, out, err) = mla_lab(&args);
    assert!(!ok, "{out}");
    assert!(
        err.contains("train.max_steps: 10 against 20")
            && err.contains("p-s1/experiment.ron")
            && err.contains("--force"),
        "{err}"
    );
    assert!(!out.contains("training"), "{out}");
    let steps = |f: &Path| -> u64 {
        let v: serde_json::Value = serde_json::from_str(&read(f)).unwrap();
        v["steps"].as_u64().unwrap()
    };
    assert_eq!(steps(&art.join("p-s1/summary.json")), 10);
    // The records entry alone (the artifacts gone) is refused the same way.
    let fresh = dir.join("fresh");
    let (ok, _, err) = mla_lab(&study_args(&[s(&p), s(&q)], s(&fresh), s(&rec)));
    assert!(
        !ok && err.contains("train.max_steps: 10 against 20") && err.contains("records/p-s1"),
        "{err}"
    );
    let mut force = args.clone();
    force.push("--force");
    let (ok, out, err) = mla_lab(&force);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("p-s1: training again"), "{out}");
    assert!(!out.contains("q-s1: training"), "{out}");
    assert_eq!(steps(&art.join("p-s1/summary.json")), 20);
    assert_eq!(steps(&rec.join("p-s1/summary.json")), 20);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Finding 2: another experiment's records copied into a run's entry were reported as that
/// run. The entry is refused, naming both files.
#[test]
fn study_refuses_a_records_entry_of_another_experiment() {
    let dir = copy_of_study("copied-entry");
    let rec = dir.join("records");
    std::fs::remove_dir_all(rec.join("p-s1")).unwrap();
    copy_dir(&rec.join("q-s1"), &rec.join("p-s1"));
    let (p, q) = (dir.join("exps/p.ron"), dir.join("exps/q.ron"));
    let fresh = dir.join("fresh");
    let (ok, out, err) = mla_lab(&study_args(&[s(&p), s(&q)], s(&fresh), s(&rec)));
    assert!(!ok, "{out}");
    assert!(
        err.contains("records/p-s1/experiment.ron holds a run of another experiment than")
            && err.contains("exps/p.ron")
            && err.contains("model.attention"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Finding 3: a corrupt file in a run folder was copied over its good record.
#[test]
fn a_corrupt_file_in_a_run_folder_never_replaces_its_good_record() {
    let dir = copy_of_study("corrupt-run-file");
    let (art, rec) = (dir.join("artifacts"), dir.join("records"));
    let good = read(&rec.join("p-s1/eval.json"));
    std::fs::write(art.join("p-s1/eval.json"), "{\"data\":").unwrap();
    let (p, q) = (dir.join("exps/p.ron"), dir.join("exps/q.ron"));
    let args = study_args(&[s(&p), s(&q)], s(&art), s(&rec));
    let (ok, _, err) = mla_lab(&args);
    assert_eq!(read(&rec.join("p-s1/eval.json")), good);
    assert!(!ok, "a broken record is an error");
    assert!(
        err.contains("artifacts/p-s1/eval.json") && err.contains("remove"),
        "{err}"
    );
    // Done as the message says: measured again, and kept.
    std::fs::remove_file(art.join("p-s1/eval.json")).unwrap();
    let (ok, out, err) = mla_lab(&args);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("p-s1: eval"), "{out}");
    assert!(parses(&rec.join("p-s1/eval.json")));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Finding 3: a corrupt record restored into fresh artifacts was reported under the artifacts'
/// name, and a repair made in the records was overwritten by the next run.
#[test]
fn a_corrupt_record_is_named_where_it_is_and_its_repair_is_kept() {
    let dir = copy_of_study("corrupt-record");
    let rec = dir.join("records");
    let eval = rec.join("p-s1/eval.json");
    let good = read(&eval);
    std::fs::write(&eval, "{\"data\":").unwrap();
    let (p, q) = (dir.join("exps/p.ron"), dir.join("exps/q.ron"));
    let fresh = dir.join("fresh");
    let args = study_args(&[s(&p), s(&q)], s(&fresh), s(&rec));
    let (ok, _, err) = mla_lab(&args);
    assert!(!ok);
    assert!(
        err.contains("records/p-s1/eval.json")
            && !err.contains("fresh/p-s1")
            && err.contains("remove the entry"),
        "{err}"
    );
    assert!(
        !fresh.join("p-s1/summary.json").exists(),
        "nothing restored"
    );
    let repaired = good.replace('\n', "\n ");
    std::fs::write(&eval, &repaired).unwrap();
    let (ok, out, err) = mla_lab(&args);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("p-s1: restoring its records"), "{out}");
    assert_eq!(read(&eval), repaired, "the repair stays");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Finding 4: an entry without probes and samples blocked every later study with
/// "tokenizer.json: not a tokenizer file". It is named, with what to do, and where the run's
/// folder still has them, the entry is written whole again.
#[test]
fn a_partial_records_entry_is_named_and_written_whole_again() {
    let dir = copy_of_study("partial-entry");
    let (art, rec) = (dir.join("artifacts"), dir.join("records"));
    for f in ["probes.json", "samples.json"] {
        std::fs::remove_file(rec.join("p-s1").join(f)).unwrap();
    }
    let (p, q) = (dir.join("exps/p.ron"), dir.join("exps/q.ron"));
    let fresh = dir.join("fresh");
    let (ok, _, err) = mla_lab(&study_args(&[s(&p), s(&q)], s(&fresh), s(&rec)));
    assert!(!ok);
    assert!(
        err.contains("records/p-s1: incomplete records entry (no probes.json, samples.json)")
            && err.contains("remove the entry"),
        "{err}"
    );
    assert!(!err.contains("tokenizer"), "{err}");
    let (ok, out, err) = mla_lab(&study_args(&[s(&p), s(&q)], s(&art), s(&rec)));
    assert!(ok, "{out}\n{err}");
    for f in ["probes.json", "samples.json"] {
        assert!(parses(&rec.join("p-s1").join(f)), "{f}");
    }
    // Whole: no temporary left beside the entries (only the entries' locks).
    let names: Vec<String> = std::fs::read_dir(&rec)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.starts_with('.') || n.ends_with(".lock")),
        "{names:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// POOR: a garbage `metrics.csv` in the records was restored with exit 0, and the run's curve
/// left the report without a word.
#[test]
fn a_garbage_metrics_file_in_the_records_is_refused() {
    let dir = copy_of_study("garbage-metrics");
    let rec = dir.join("records");
    std::fs::write(rec.join("p-s1/metrics.csv"), "garbage\n\u{1}\u{2}\n").unwrap();
    let (p, q) = (dir.join("exps/p.ron"), dir.join("exps/q.ron"));
    let fresh = dir.join("fresh");
    let (ok, _, err) = mla_lab(&study_args(&[s(&p), s(&q)], s(&fresh), s(&rec)));
    assert!(!ok);
    assert!(err.contains("records/p-s1/metrics.csv"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Finding 5 and POOR: `--probe-stories 0` gave the story claim a verdict on no stories, and
/// `--eval-windows 0` was refused only after all training, naming eval's flag; so were bench
/// contexts that cannot be measured. All are refused before anything runs, naming study's
/// flags.
#[test]
fn options_without_an_answer_are_refused_before_training() {
    let dir = fresh_dir("options");
    let (p, q) = write_experiments(&dir);
    let art = dir.join("artifacts");
    let rec = dir.join("records");
    for (flag, value, accepted) in [
        (
            "--probe-stories",
            "0",
            "--probe-stories 0: accepted: at least 1",
        ),
        (
            "--eval-windows",
            "0",
            "--eval-windows 0: accepted: at least 1",
        ),
        // Contexts the bench cannot fill, found before training rather than after it.
        (
            "--contexts",
            "1,8",
            "--contexts 1: accepted: cache fill levels of at least 2",
        ),
        (
            "--contexts",
            "64",
            "a context of 32 tokens: --contexts 64: accepted",
        ),
    ] {
        let mut args = study_args(&[s(&p), s(&q)], s(&art), s(&rec));
        let at = args.iter().position(|a| *a == flag).unwrap();
        args[at + 1] = value;
        let (ok, out, err) = mla_lab(&args);
        assert!(!ok && err.contains(accepted), "{err}");
        assert!(!out.contains("training"), "{out}");
        assert!(!art.join("p-s1").exists(), "nothing trained");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// POOR: two processes writing one file went through one fixed temporary name.
#[test]
fn temporary_names_are_unique_to_the_process_and_the_write() {
    let file = Path::new("/tmp/x/summary.json");
    let (a, b) = (
        mla_lab::files::temporary(file),
        mla_lab::files::temporary(file),
    );
    assert_ne!(a, b);
    let pid = std::process::id().to_string();
    assert!(a.to_string_lossy().contains(&pid), "{}", a.display());
    assert_eq!(a.parent(), file.parent());
}

/// Finding 2, the data: a run trained on other data than the file's source holds now (another
/// stories file's content, or another version of the generator) is not taken for a run of it.
#[test]
fn study_refuses_a_run_trained_on_other_data() {
    let dir = copy_of_study("data-changed");
    let (art, rec) = (dir.join("artifacts"), dir.join("records"));
    let summary = art.join("p-s1/summary.json");
    let mut v: serde_json::Value = serde_json::from_str(&read(&summary)).unwrap();
    let now = v["data_fingerprint"].as_str().unwrap().to_string();
    assert!(now.starts_with("synthetic-v"), "{now}");
    v["data_fingerprint"] = "synthetic-v0-300-2".into();
    std::fs::write(&summary, v.to_string()).unwrap();
    let (p, q) = (dir.join("exps/p.ron"), dir.join("exps/q.ron"));
    let (ok, out, err) = mla_lab(&study_args(&[s(&p), s(&q)], s(&art), s(&rec)));
    assert!(!ok, "{out}");
    assert!(
        err.contains(&format!(
            "data: the run trained on content synthetic-v0-300-2, the source holds {now} now"
        )) && err.contains("--force"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Finding 2, with `--force`: a folder holding another experiment's run is replaced by the
/// records entry of this one where there is one (nothing is trained), and a folder with an
/// unfinished training is not measured through its checkpoint once the entry is restored.
#[test]
fn force_restores_a_matching_entry_over_a_folder_of_another_experiment() {
    let dir = copy_of_study("force-restore");
    let (art, rec) = (dir.join("artifacts"), dir.join("records"));
    let copy = art.join("p-s1/experiment.ron");
    std::fs::write(&copy, read(&copy).replace("max_steps: 10", "max_steps: 20")).unwrap();
    let (p, q) = (dir.join("exps/p.ron"), dir.join("exps/q.ron"));
    let mut args = study_args(&[s(&p), s(&q)], s(&art), s(&rec));
    let (ok, _, err) = mla_lab(&args);
    assert!(
        !ok && err.contains("train.max_steps: 20 against 10"),
        "{err}"
    );
    args.push("--force");
    let (ok, out, err) = mla_lab(&args);
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("p-s1: restoring its records") && out.contains("(what its folder held goes)"),
        "{out}"
    );
    assert!(!out.contains("training"), "{out}");
    assert_eq!(read(&copy), read(&rec.join("p-s1/experiment.ron")));
    assert!(
        !art.join("p-s1/model.bpk").exists(),
        "the other run's weights went"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A run folder is replaced only by the process that holds its lock: a study restoring a run
/// from its records while a trainer works in that folder is refused, and the folder is left as
/// it is; once the trainer is gone the restore goes ahead.
#[test]
fn a_restore_from_records_waits_for_no_trainer_and_deletes_nothing_under_one() {
    let dir = copy_of_study("restore-locked");
    let (art, rec) = (dir.join("artifacts"), dir.join("records"));
    let copy = art.join("p-s1/experiment.ron");
    std::fs::write(&copy, read(&copy).replace("max_steps: 10", "max_steps: 20")).unwrap();
    let (p, q) = (dir.join("exps/p.ron"), dir.join("exps/q.ron"));
    let mut args = study_args(&[s(&p), s(&q)], s(&art), s(&rec));
    args.push("--force");
    // This process stands in for a trainer: it holds the folder's lock as `train` does.
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(art.join("p-s1/train.lock"))
        .unwrap();
    lock.try_lock().unwrap();
    let before = std::fs::read(art.join("p-s1/model.bpk")).unwrap();
    let (ok, out, err) = mla_lab(&args);
    assert!(!ok, "{out}");
    assert!(err.contains("in use by another mla-lab"), "{err}");
    assert!(!out.contains("restoring its records"), "{out}");
    assert_eq!(std::fs::read(art.join("p-s1/model.bpk")).unwrap(), before);
    assert!(
        read(&copy).contains("max_steps: 20"),
        "the folder is as it was"
    );
    drop(lock);
    let (ok, out, err) = mla_lab(&args);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("p-s1: restoring its records"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Finding 1: runs of one name are grouped as seeds of one experiment only when they differ
/// in nothing but the seed (bookkeeping aside).
#[test]
fn report_refuses_two_experiments_of_one_name() {
    let base = studied();
    let dir = fresh_dir("report-two-named");
    let other = dir.join("p-s2");
    copy_dir(&base.join("artifacts/p-s1"), &other);
    let exp = other.join("experiment.ron");
    let text = read(&exp);
    // Another seed and a longer run: not a seed of p.
    let seeded = text.replace("seed: 1,", "seed: 2,");
    assert_ne!(seeded, text, "{text}");
    std::fs::write(&exp, seeded.replace("max_steps: 10", "max_steps: 20")).unwrap();
    let out = dir.join("report");
    let p1 = base.join("artifacts/p-s1");
    let (ok, _, err) = mla_lab(&["report", s(&p1), s(&other), "--out", s(&out)]);
    assert!(
        !ok && err.contains("runs of two different experiments named \"p\"")
            && err.contains("train.max_steps: 10 against 20"),
        "{err}"
    );
    // Only the seed (and how often it logged) differ: two seeds of p.
    std::fs::write(&exp, seeded.replace("log_every: 10", "log_every: 5")).unwrap();
    let (ok, _, err) = mla_lab(&["report", s(&p1), s(&other), "--out", s(&out)]);
    assert!(ok, "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Finding 1 for calibrate: one run given twice, or two copies of it, is fitted once.
#[test]
fn calibrate_refuses_a_run_given_twice() {
    let base = studied();
    let dir = fresh_dir("calibrate-twice");
    let p1 = base.join("artifacts/p-s1");
    let copy = dir.join("p-s1-copy");
    copy_dir(&p1, &copy);
    let out = dir.join("calibration");
    let (ok, _, err) = mla_lab(&["calibrate", s(&p1), s(&p1), "--out", s(&out)]);
    assert!(!ok && err.contains("given twice"), "{err}");
    let (ok, _, err) = mla_lab(&["calibrate", s(&p1), s(&copy), "--out", s(&out)]);
    assert!(
        !ok && err.contains("both runs of \"p\" with training seed 1"),
        "{err}"
    );
    assert!(!out.join("calibration.md").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
