//! Reliability checks of the command line: what `bench`, `calibrate` and `eval`
//! do with values and files at the edges, run as a user would.

mod common;

use std::path::{Path, PathBuf};

use common::arg;

fn fresh_dir(tag: &str) -> PathBuf {
    common::fresh_dir("checks", tag)
}

/// `mla-lab ARGS` on the CPU: its exit code, stdout and stderr.
fn mla_lab(args: &[&str]) -> (Option<i32>, String, String) {
    let ran = common::mla_lab(&[&["--backend", "cpu"], args].concat());
    (ran.code, ran.stdout, ran.stderr)
}

/// A tiny experiment file (d_model 32, 2 layers, context 32, a 300-token BPE on 300 synthetic
/// stories, batch 4) in `dir`.
fn tiny_experiment(dir: &Path, name: &str, max_steps: usize) -> PathBuf {
    let path = dir.join(format!("{name}.ron"));
    let text = format!(
        r#"(name: "{name}", seed: 5,
            model: (vocab_size: 300, context: 32, d_model: 32, n_layers: 2, n_heads: 4,
                    positions: Rope(10000.0),
                    attention: Mla(rank: 16, layout: Separate, rope_dim: 4)),
            data: (source: Synthetic(count: 300, seed: 2), tokenizer: Bpe(vocab_size: 300)),
            train: (batch_size: 4, max_steps: {max_steps}, lr: 3e-3, min_lr: 3e-4,
                    warmup_steps: 2, eval_every: 5, eval_batches: 2, log_every: 5))"#
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn bench_refuses_a_batch_past_the_memory_available_without_a_panic() {
    let dir = fresh_dir("bench-memory");
    let exp = tiny_experiment(&dir, "tiny", 10);
    let (code, out, err) = mla_lab(&[
        "bench",
        arg(&exp),
        "--batch",
        "1000000000",
        "--contexts",
        "16",
        "--decode-tokens",
        "2",
        "--repeats",
        "1",
    ]);
    // Before: `memory allocation of … bytes failed`, a backtrace and exit 134.
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        err.contains("--batch 1000000000")
            && err.contains("at context 16")
            && err.contains("KV cache")
            && err.contains("available"),
        "{err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("memory allocation"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bench_says_when_it_caps_the_decode_steps() {
    let dir = fresh_dir("bench-cap");
    let exp = tiny_experiment(&dir, "tiny", 10);
    let (code, out, err) = mla_lab(&[
        "bench",
        arg(&exp),
        "--contexts",
        "16",
        "--decode-tokens",
        "100000000",
        "--repeats",
        "1",
        "--json",
    ]);
    assert_eq!(code, Some(0), "{err}");
    // Before: 8 steps run, and nothing said so.
    assert!(
        err.contains("--decode-tokens 100000000 capped at 8 for context 16"),
        "{err}"
    );
    for line in out.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(row["decode_steps"], 8, "{row}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bench_refuses_a_context_with_no_room_for_a_prompt() {
    let dir = fresh_dir("bench-context");
    let exp = tiny_experiment(&dir, "tiny", 10);
    let (code, out, err) = mla_lab(&["bench", arg(&exp), "--contexts", "1", "--repeats", "1"]);
    // Before: a panic (exit 101) slicing the prompt's logits, which had no token.
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("--contexts 1: accepted: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A run folder made by hand: the tiny experiment and a `metrics.csv` of these lines.
fn fake_run(runs: &Path, name: &str, lines: &[String]) -> PathBuf {
    let dir = runs.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let exp = tiny_experiment(runs, name, 1000);
    std::fs::rename(&exp, dir.join("experiment.ron")).unwrap();
    let mut text = String::from("step,train_loss,val_loss,lr,tokens_per_s,elapsed_s\n");
    for l in lines {
        text += l;
        text.push('\n');
    }
    std::fs::write(dir.join("metrics.csv"), text).unwrap();
    dir
}

/// `metrics.csv` rows validated every 50 steps to 1000, the validation loss of each from `val`.
fn rows(val: impl Fn(usize) -> String) -> Vec<String> {
    (1..=20)
        .map(|i| {
            let step = 50 * i;
            format!("{step},2.000000,{},3.000e-3,1000.0,{step}.00", val(step))
        })
        .collect()
}

/// A curve that flattens: L = 1 + 30 / sqrt(step).
fn falling(step: usize) -> String {
    format!("{:.6}", 1.0 + 30.0 / (step as f64).sqrt())
}

#[test]
fn calibrate_says_why_a_curve_has_no_fit() {
    let dir = fresh_dir("calibrate-why");
    let runs = dir.join("runs");
    let good = fake_run(&runs, "falls", &rows(falling));
    let rising = fake_run(
        &runs,
        "rises",
        &rows(|s| format!("{:.6}", 1.0 + s as f64 / 1e3)),
    );
    let flat = fake_run(&runs, "flat", &rows(|_| "2.500000".into()));
    let nan = fake_run(
        &runs,
        "diverges",
        &rows(|s| if s >= 800 { "NaN".into() } else { falling(s) }),
    );
    let out = dir.join("out");
    let (code, _, err) = mla_lab(&[
        "calibrate",
        arg(&good),
        arg(&rising),
        arg(&flat),
        arg(&nan),
        "--out",
        arg(&out),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let md = std::fs::read_to_string(out.join("calibration.md")).unwrap();
    // Before: "-" in the fit columns, and no word of why.
    for text in [&err, &md] {
        assert!(!text.contains("falls: no fit"), "{text}");
        assert!(
            text.contains("rises: no fit: the validation loss does not fall from step 500 on"),
            "{text}"
        );
        assert!(
            text.contains("flat: no fit: the validation loss does not fall from step 500 on"),
            "{text}"
        );
        assert!(
            text.contains("diverges: no fit: validation loss NaN at step 800"),
            "{text}"
        );
    }
    let (code, _, err) = mla_lab(&[
        "calibrate",
        arg(&good),
        "--out",
        arg(&out),
        "--fit-from-step",
        "5000",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let md = std::fs::read_to_string(out.join("calibration.md")).unwrap();
    for text in [&err, &md] {
        assert!(
            text.contains(
                "falls: no fit: 0 validation points from step 5000 on, past the last validation (step 1000)"
            ),
            "{text}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn calibrate_warns_of_each_damaged_metrics_row() {
    let dir = fresh_dir("calibrate-damaged");
    let runs = dir.join("runs");
    let mut lines = rows(falling);
    lines.insert(3, "200,2.0,garbage,3.000e-3,1000.0,200.00".into());
    lines.push("1050,2.1".into());
    let run = fake_run(&runs, "torn", &lines);
    let out = dir.join("out");
    let (code, _, err) = mla_lab(&["calibrate", arg(&run), "--out", arg(&out)]);
    assert_eq!(code, Some(0), "{err}");
    let metrics = run.join("metrics.csv").display().to_string();
    // Before: both lines left out without a word. Line 1 is the header.
    for line in [5, 23] {
        assert!(err.contains(&format!("{metrics}:{line}: ")), "{err}");
    }
    assert_eq!(err.matches("left out").count(), 2, "{err}");
    let md = std::fs::read_to_string(out.join("calibration.md")).unwrap();
    assert!(md.contains("metrics.csv:23: "), "{md}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn calibrate_writes_nothing_beside_its_inputs() {
    let dir = fresh_dir("calibrate-beside");
    let runs = dir.join("runs");
    let run = fake_run(&runs, "falls", &rows(falling));
    let out = dir.join("out");
    let (code, _, err) = mla_lab(&["calibrate", arg(&run), "--out", arg(&out)]);
    assert_eq!(code, Some(0), "{err}");
    let beside: Vec<String> = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // Before: a token cache in runs/cache, made for the entropy floor.
    assert_eq!(beside, ["falls"], "{err}");
    let mut inside: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    inside.sort();
    assert_eq!(inside, ["experiment.ron", "metrics.csv"]);
    // The floor is still worked out (the synthetic corpus's), from a cache under --out.
    let md = std::fs::read_to_string(out.join("calibration.md")).unwrap();
    let head: Vec<&str> = md
        .lines()
        .find(|l| l.starts_with("| run |"))
        .unwrap()
        .split('|')
        .collect();
    let row: Vec<&str> = md
        .lines()
        .find(|l| l.starts_with("| falls |"))
        .unwrap()
        .split('|')
        .collect();
    let floor = head
        .iter()
        .position(|c| c.trim() == "entropy floor")
        .unwrap();
    assert!(row[floor].trim().parse::<f64>().is_ok(), "{md}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn eval_on_a_file_reads_only_as_far_as_the_windows_asked_for() {
    let dir = fresh_dir("eval-windows");
    let exp = tiny_experiment(&dir, "tiny", 10);
    let art = dir.join("artifacts");
    let (code, _, err) = mla_lab(&["train", arg(&exp), "--artifacts", arg(&art), "--headless"]);
    assert_eq!(code, Some(0), "{err}");
    let run = art.join("tiny");
    let stories: Vec<String> = (0..40)
        .map(|i| format!("Tom had a red ball number {i}. He threw it to Lily and she laughed."))
        .collect();
    let head = stories.join("\n<|endoftext|>\n") + "\n<|endoftext|>\n";
    let clean = dir.join("clean.txt");
    std::fs::write(&clean, &head).unwrap();
    // The same stories, then bytes that are not UTF-8; and as JSON lines, then a broken line.
    let bad_text = dir.join("bad.txt");
    std::fs::write(&bad_text, [head.as_bytes(), b"Caf\xe9 \xff\xfe\n"].concat()).unwrap();
    let bad_lines = dir.join("bad.jsonl");
    let jsonl: String = stories
        .iter()
        .map(|s| format!("{{\"text\": {s:?}}}\n"))
        .collect();
    std::fs::write(&bad_lines, jsonl + "{\"text\": \"cut short\n").unwrap();
    let eval = |data: &Path, windows: Option<&str>| {
        let mut args = vec!["eval", arg(&run), "--data", arg(data), "--json"];
        if let Some(w) = windows {
            args.extend(["--windows", w]);
        }
        mla_lab(&args)
    };
    let loss = |out: &str| -> (f64, u64) {
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        (
            v["loss"]["loss"].as_f64().unwrap(),
            v["loss"]["windows"].as_u64().unwrap(),
        )
    };
    let (code, out, err) = eval(&clean, Some("3"));
    assert_eq!(code, Some(0), "{err}");
    let (expected, windows) = loss(&out);
    assert_eq!(windows, 3);
    for bad in [&bad_text, &bad_lines] {
        // Before: the whole file was read first, so its tail failed the run.
        let (code, out, err) = eval(bad, Some("3"));
        assert_eq!(code, Some(0), "{}: {err}", bad.display());
        let (got, windows) = loss(&out);
        assert_eq!(windows, 3);
        assert!((got - expected).abs() < 1e-9, "{got} against {expected}");
        // Without --windows the whole file is read, tail and all.
        let (code, _, err) = eval(bad, None);
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains(&bad.display().to_string()), "{err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The tiny study's committed report, and the figures `docs/results-tiny/README.md`, README.md and
/// `docs/results.md` carry between their `<!-- report: … -->` markers, are what `report` writes
/// from the committed records: a figure cannot drift from the runs. And a changed record (an
/// `eval.json` edited by hand) shows as a difference.
#[test]
fn the_committed_tiny_report_and_results_pages_are_regenerated_from_their_records() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let list = |dir: &str, keep: &dyn Fn(&str) -> bool| -> Vec<String> {
        let mut all: Vec<String> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| keep(n))
            .map(|n| format!("{dir}/{n}"))
            .collect();
        all.sort();
        all
    };
    // As docs/results-tiny/README.md writes the command: runs/*_tiny-s[0-9]*, the converted
    // runs (convert/*_{to,continued}_*-s[0-9]*, not their sources), the sweep.
    let seeded = |n: &str| {
        n.split_once("_tiny-s")
            .is_some_and(|(_, s)| s.starts_with(|c: char| c.is_ascii_digit()))
    };
    let mut runs = list("docs/results-tiny/runs", &seeded);
    runs.extend(list("docs/results-tiny/convert", &|n| {
        seeded(n) && (n.contains("_to_") || n.contains("_continued_"))
    }));
    let sweep = list("docs/results-tiny/lr-sweep", &|_| true);
    assert!(runs.len() >= 40, "{} runs", runs.len());
    let pages = [
        "docs/results-tiny/README.md",
        "docs/results.md",
        "README.md",
    ];
    // REPORT RUNS: the report and the two pages written from RUNS, into a fresh folder.
    let report = |tag: &str, runs: &[String]| -> PathBuf {
        let out = fresh_dir(tag);
        let copies: Vec<PathBuf> = pages
            .iter()
            .enumerate()
            .map(|(i, page)| {
                let copy = out.join(format!("page{i}.md"));
                std::fs::copy(root.join(page), &copy).unwrap();
                copy
            })
            .collect();
        let mut args: Vec<&str> = vec!["report"];
        args.extend(runs.iter().map(String::as_str));
        args.push("--sweep");
        args.extend(sweep.iter().map(String::as_str));
        args.extend(["--out", arg(&out), "--splice"]);
        args.extend(copies.iter().map(|c| arg(c)));
        let (code, stdout, stderr) = mla_lab(&args);
        assert_eq!(code, Some(0), "{stdout}{stderr}");
        out
    };
    let out = report("tiny-report", &runs);
    let written = |file: &str| std::fs::read_to_string(out.join(file)).unwrap();
    let committed = |file: &str| std::fs::read_to_string(root.join(file)).unwrap();
    for (written, committed, name) in [
        (
            written("report.md"),
            committed("docs/results-tiny/report.md"),
            "docs/results-tiny/report.md",
        ),
        (written("page0.md"), committed(pages[0]), pages[0]),
        (written("page1.md"), committed(pages[1]), pages[1]),
        (written("page2.md"), committed(pages[2]), pages[2]),
    ] {
        if written != committed {
            let first = written
                .lines()
                .zip(committed.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(written.lines().count().min(committed.lines().count()));
            panic!(
                "{name} is not what its records give, from line {}:\n\
                 written:   {:?}\ncommitted: {:?}\n(write it again with the command in \
                 docs/results-tiny/README.md)",
                first + 1,
                written.lines().nth(first),
                committed.lines().nth(first)
            );
        }
    }
    // One run's eval.json edited by hand (its loss 0.01 nats lower): the pages change.
    let edited = fresh_dir("tiny-report-edited");
    let victim = runs
        .iter()
        .find(|r| r.contains("mla_rope_half_tiny-s1"))
        .unwrap();
    let copy = edited.join("mla_rope_half_tiny-s1");
    std::fs::create_dir_all(&copy).unwrap();
    for e in std::fs::read_dir(root.join(victim)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), copy.join(e.file_name())).unwrap();
    }
    let mut eval: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(copy.join("eval.json")).unwrap()).unwrap();
    let loss = eval["loss"].as_f64().unwrap();
    eval["loss"] = (loss - 0.01).into();
    std::fs::write(copy.join("eval.json"), eval.to_string()).unwrap();
    let swapped: Vec<String> = runs
        .iter()
        .map(|r| {
            if r == victim {
                arg(&copy).to_string()
            } else {
                r.clone()
            }
        })
        .collect();
    let out2 = report("tiny-report-changed", &swapped);
    for (i, page) in pages.iter().enumerate() {
        let again = std::fs::read_to_string(out2.join(format!("page{i}.md"))).unwrap();
        assert_ne!(
            again,
            committed(page),
            "{page} did not change with a record"
        );
    }
    for dir in [out, out2, edited] {
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
