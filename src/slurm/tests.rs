use super::*;

fn check_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/check/mla_rope_half.ron")
}

fn printing(words: &[&str]) -> Vec<String> {
    ["printf", "%s\\n"]
        .iter()
        .chain(words)
        .map(|w| w.to_string())
        .collect()
}

/// Runs `script` with bash as Slurm would, task `task`; its standard output and status.
fn run(script: &str, task: &str) -> (bool, String) {
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .env("SLURM_ARRAY_TASK_ID", task)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn tasks_are_every_experiment_at_every_seed_seed_by_seed() {
    let t = tasks(&[check_file()], &[3, 1]).unwrap();
    let runs: Vec<(&str, u64)> = t.iter().map(|t| (t.run.as_str(), t.seed)).collect();
    assert_eq!(
        runs,
        [("mla_rope_half_check-s3", 3), ("mla_rope_half_check-s1", 1)]
    );
    assert!(t[0].file.is_absolute());
    assert!(tasks(&[check_file()], &[]).is_err());
}

#[test]
fn each_task_runs_its_own_command_line_word_for_word() {
    let t = tasks(&[check_file()], &[1, 2]).unwrap();
    let tricky = ["a b", "it's", "$HOME", "`date`", "x;y", ""];
    let task = |t: &Task| {
        let mut w = printing(&tricky);
        w.push(t.run.clone());
        w
    };
    let commands = Commands {
        task: &task,
        report: (vec![], vec![]),
        records: PathBuf::from("records"),
    };
    let settings = Settings {
        partition: Some("gpu".into()),
        cpus_per_task: Some(2),
        array_parallel: Some(1),
        requeue: true,
        extra: vec!["--qos=long".into()],
        ..Settings::default()
    };
    let script = array_script(&t, &settings, &commands, Path::new("/jobs"));
    for line in [
        "#SBATCH --array=0-1%1",
        "#SBATCH --partition=gpu",
        "#SBATCH --cpus-per-task=2",
        "#SBATCH --requeue",
        "#SBATCH --qos=long",
        "#SBATCH --output=/jobs/logs/%A_%a.out",
    ] {
        assert!(
            script.lines().any(|l| l == line),
            "no {line:?} in\n{script}"
        );
    }
    let (ok, out) = run(&script, "1");
    assert!(ok, "{out}");
    let words: Vec<&str> = out.lines().skip(1).collect();
    let mut want = tricky.to_vec();
    want.push("mla_rope_half_check-s2");
    assert_eq!(words, want);
    let (ok, _) = run(&script, "2");
    assert!(!ok, "a task the array does not have fails");
}

#[test]
fn the_report_reads_the_runs_that_landed_and_names_those_that_did_not() {
    let scratch = crate::data::Scratch::new("slurm-report");
    let records = scratch.0.join("records dir");
    let t = tasks(&[check_file()], &[1, 2, 3]).unwrap();
    for (run, whole) in [(&t[0].run, true), (&t[2].run, false)] {
        std::fs::create_dir_all(records.join(run)).unwrap();
        std::fs::write(records.join(run).join("summary.json"), "{}").unwrap();
        if whole {
            std::fs::write(records.join(run).join("bench.json"), "[]").unwrap();
        }
    }
    let none = |_: &Task| vec![];
    let commands = Commands {
        task: &none,
        report: (
            printing(&["report"]),
            vec!["--out".into(), "the out".into()],
        ),
        records: records.clone(),
    };
    let settings = Settings {
        gres: Some("gpu:1".into()),
        extra: vec!["--qos=long".into()],
        ..Settings::default()
    };
    let script = report_script(&t, &settings, &commands, &scratch.0);
    assert!(
        !script.contains("--array") && !script.contains("gpu:1"),
        "{script}"
    );
    assert!(
        script.lines().any(|l| l == "#SBATCH --qos=long"),
        "{script}"
    );
    let (ok, out) = run(&script, "");
    assert!(ok, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    let landed = records.join(&t[0].run).display().to_string();
    assert_eq!(
        lines,
        [
            "mla-lab: did not finish: task 1 (mla_rope_half_check-s2)",
            "mla-lab: did not finish: task 2 (mla_rope_half_check-s3)",
            "report",
            landed.as_str(),
            "--out",
            "the out"
        ]
    );
    // Nothing landed: no report, and the job fails.
    std::fs::remove_dir_all(&records).unwrap();
    let (ok, _) = run(&script, "");
    assert!(!ok);
}

#[test]
fn settings_that_would_break_the_script_are_refused_by_name() {
    let bad = [
        Settings {
            partition: Some("gpu\n#SBATCH --x".into()),
            ..Settings::default()
        },
        Settings {
            time: Some("1 day".into()),
            ..Settings::default()
        },
        Settings {
            array_parallel: Some(0),
            ..Settings::default()
        },
        Settings {
            extra: vec!["qos=long".into()],
            ..Settings::default()
        },
    ];
    let fields = ["partition", "time", "array_parallel", "sbatch"];
    for (s, field) in bad.iter().zip(fields) {
        let e = s.check().unwrap_err();
        assert_eq!(e.option, field, "{e}");
    }
    assert!(Settings::default().check().is_ok());
}

#[test]
fn scripts_are_written_whole_beside_their_task_list() {
    let scratch = crate::data::Scratch::new("slurm-write");
    let t = tasks(&[check_file()], &[1]).unwrap();
    let task = |t: &Task| vec!["mla-lab".to_string(), t.run.clone()];
    let commands = Commands {
        task: &task,
        report: (vec!["mla-lab".into()], vec![]),
        records: scratch.0.join("records"),
    };
    let s = write(&t, &Settings::default(), &commands, &scratch.0.join("job")).unwrap();
    let list = std::fs::read_to_string(&s.tasks).unwrap();
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(list.contains("\tmla_rope_half_check-s1"), "{list}");
    assert!(
        std::fs::read_to_string(&s.array)
            .unwrap()
            .contains("mla-lab mla_rope_half_check-s1")
    );
    assert!(scratch.0.join("job/logs").is_dir());
    let [array, report] = sbatch_lines(&s);
    assert_eq!(array[..2], ["sbatch", "--parsable"]);
    assert!(report.contains(&"--dependency=afterany:ARRAY".to_string()));
}
