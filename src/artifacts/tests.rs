use super::*;

/// A copy of a committed records entry of the tiny study, in a fresh folder.
fn entry(tag: &str) -> (PathBuf, RunFolder) {
    let dir = std::env::temp_dir().join(format!("mla-lab-entry-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let committed = files::source("docs/results-tiny/runs/mha_tiny-s1");
    files::copy_tree(&committed, &dir.join("run")).unwrap();
    (dir.clone(), RunFolder::new(dir.join("run")))
}

#[test]
fn an_entry_is_written_whole_keeping_its_measurements_of_the_same_run() {
    let (dir, run) = entry("whole");
    let kept = RunFolder::new(dir.join("records/run"));
    assert!(write_entry(&run, &kept).unwrap());
    assert!(!write_entry(&run, &kept).unwrap(), "nothing changed");
    std::fs::write(kept.dir.join("notes.txt"), "mine").unwrap();
    std::fs::write(kept.dir.join(".eval.json.4000000000-0.tmp"), "half").unwrap();
    // The folder's bench is removed to bench again: the entry keeps its own meanwhile.
    let bench = std::fs::read(run.bench()).unwrap();
    std::fs::remove_file(run.bench()).unwrap();
    let mut eval: records::LossReport = read_json(&run.eval()).unwrap().unwrap();
    eval.windows += 1;
    files::write_json(&run.eval(), &eval).unwrap();
    assert!(write_entry(&run, &kept).unwrap());
    assert_eq!(std::fs::read(kept.bench()).unwrap(), bench);
    assert_eq!(
        read_json::<records::LossReport>(&kept.eval()).unwrap(),
        Some(eval)
    );
    assert_eq!(
        std::fs::read_to_string(kept.dir.join("notes.txt")).unwrap(),
        "mine"
    );
    assert!(!kept.dir.join(".eval.json.4000000000-0.tmp").exists());
    // Another run (another summary): the old run's bench goes with it.
    let mut summary: TrainSummary = read_json(&run.summary()).unwrap().unwrap();
    summary.wall_time_s += 1.0;
    files::write_json(&run.summary(), &summary).unwrap();
    assert!(write_entry(&run, &kept).unwrap());
    assert!(!kept.bench().exists());
    // A record that does not parse is refused, and the entry stays as it was.
    let before = std::fs::read(kept.probes()).unwrap();
    std::fs::write(run.probes(), "{\"stories\":").unwrap();
    let err = write_entry(&run, &kept).unwrap_err().to_string();
    assert!(
        err.contains("probes.json") && err.contains("stays as it is"),
        "{err}"
    );
    assert_eq!(std::fs::read(kept.probes()).unwrap(), before);
    let names: Vec<String> = std::fs::read_dir(dir.join("records"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names
            .iter()
            .filter(|n| *n != ".run.lock")
            .collect::<Vec<_>>(),
        ["run"],
        "no temporary left beside the entry"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The run `run` with its eval's window count set to `windows`: another version of its records.
fn version(run: &RunFolder, windows: usize) {
    let mut eval: records::LossReport = read_json(&run.eval()).unwrap().unwrap();
    eval.windows = windows;
    files::write_json(&run.eval(), &eval).unwrap();
}

#[test]
fn writers_sharing_one_records_folder_leave_every_entry_whole_and_refuse_a_race() {
    let (dir, run) = entry("writers");
    let records = dir.join("records");
    let n = 6;
    let sources: Vec<RunFolder> = (0..n)
        .map(|i| {
            let source = RunFolder::new(dir.join(format!("run-{i}")));
            files::copy_tree(&run.dir, &source.dir).unwrap();
            source
        })
        .collect();
    let entry_of = |i: usize| RunFolder::new(records.join(format!("run-{i}")));
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        // A reader checks every entry it finds, all the time, while they are written.
        let reader = s.spawn(|| {
            let mut checked = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                for i in 0..n {
                    let e = entry_of(i);
                    if e.dir.is_dir() {
                        e.check_records().unwrap();
                        assert!(
                            e.missing().is_empty(),
                            "{}: {:?}",
                            e.dir.display(),
                            e.missing()
                        );
                        checked += 1;
                    }
                }
            }
            checked
        });
        let writers: Vec<_> = (0..n)
            .map(|i| {
                let (source, kept) = (&sources[i], entry_of(i));
                s.spawn(move || {
                    for round in 0..8 {
                        version(source, 1000 + 10 * i + round);
                        assert!(write_entry(source, &kept).unwrap());
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0, "the reader saw entries");
    });
    for (i, source) in sources.iter().enumerate() {
        let kept = entry_of(i);
        for (from, to) in source.records().iter().zip(kept.records()) {
            assert_eq!(
                std::fs::read(from).ok(),
                std::fs::read(&to).ok(),
                "{}",
                to.display()
            );
        }
    }
    let mut names: Vec<String> = std::fs::read_dir(&records)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want: Vec<String> = (0..n)
        .flat_map(|i| [format!(".run-{i}.lock"), format!("run-{i}")])
        .collect();
    want.sort();
    assert_eq!(names, want, "each entry once, no temporary left");

    // Two writers of one entry: while one holds it, the other is refused, naming the holder,
    // and the entry stays as the first left it.
    let kept = entry_of(0);
    let before = std::fs::read(kept.eval()).unwrap();
    let held = kept.lock_entry().unwrap();
    version(&sources[0], 7);
    let err = write_entry(&sources[0], &kept).unwrap_err();
    let busy = err.downcast_ref::<lock::Busy>().expect("refused as busy");
    assert_eq!(busy.holder, format!("process {}", std::process::id()));
    assert_eq!(std::fs::read(kept.eval()).unwrap(), before);
    drop(held);
    assert!(write_entry(&sources[0], &kept).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn metrics_rows_that_do_not_rise_or_pass_the_last_step_never_reach_the_records() {
    let (dir, run) = entry("metrics-order");
    let kept = RunFolder::new(dir.join("records/run"));
    let good = std::fs::read_to_string(run.metrics()).unwrap();
    let last = metrics::read(&run.metrics()).last().unwrap().step;
    let summary: TrainSummary = read_json(&run.summary()).unwrap().unwrap();
    assert_eq!(last, summary.steps);
    // Rows appended after the run's end: an earlier step, then one past its last step.
    for (extra, says) in [
        (
            format!("{},2.928010,,1.000e-3,100.0,1.00\n", last / 2),
            "after step",
        ),
        (
            format!("{},2.928010,,1.000e-3,100.0,1.00\n", last + 50),
            "past the run's last step",
        ),
    ] {
        std::fs::write(run.metrics(), format!("{good}{extra}")).unwrap();
        let err = format!("{:#}", write_entry(&run, &kept).unwrap_err());
        assert!(
            err.contains("metrics.csv") && err.contains(says) && err.contains("stays as it is"),
            "{err}"
        );
        assert!(!kept.dir.exists(), "nothing kept");
    }
    std::fs::write(run.metrics(), &good).unwrap();
    assert!(write_entry(&run, &kept).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_run_whose_data_file_changed_is_refused_and_one_whose_did_not_is_not() {
    let (dir, run) = entry("data-changed");
    let stories = dir.join("stories.txt");
    std::fs::write(
        &stories,
        "Once upon a time there was a cat.\n<|endoftext|>\n",
    )
    .unwrap();
    let mut exp = Experiment::load(run.experiment()).unwrap();
    exp.data.source = crate::data::config::DataSource::TinyStories {
        path: stories.clone(),
    };
    let (_, trained_on) = crate::data::tokens::fingerprint(&exp.data.source).unwrap();
    let mut summary: TrainSummary = read_json(&run.summary()).unwrap().unwrap();
    summary.data_fingerprint = Some(trained_on);
    files::write_json(&run.summary(), &summary).unwrap();
    run.check_data(&exp).unwrap();
    std::fs::write(
        &stories,
        "Once upon a time there was a dog.\n<|endoftext|>\n",
    )
    .unwrap();
    let err = run.check_data(&exp).unwrap_err().to_string();
    assert!(
        err.contains("trained on data with content file-")
            && err.contains("stories.txt")
            && err.contains("holds file-"),
        "{err}"
    );
    // A summary from before fingerprints: nothing to compare.
    summary.data_fingerprint = None;
    files::write_json(&run.summary(), &summary).unwrap();
    run.check_data(&exp).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_entry_to_restore_from_is_complete_and_reads() {
    let (dir, run) = entry("check");
    check_entry(&run).unwrap();
    std::fs::write(run.metrics(), "garbage\n").unwrap();
    let err = format!("{:#}", check_entry(&run).unwrap_err());
    assert!(
        err.contains("metrics.csv") && err.contains("remove the entry"),
        "{err}"
    );
    std::fs::remove_file(run.metrics()).unwrap();
    std::fs::remove_file(run.samples()).unwrap();
    let err = format!("{:#}", check_entry(&run).unwrap_err());
    assert!(
        err.contains("incomplete records entry (no metrics.csv, samples.json)"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_summary_past_its_experiments_steps_or_a_conversion_of_another_source_is_refused() {
    let (dir, run) = entry("cross");
    let mut summary: TrainSummary = read_json(&run.summary()).unwrap().unwrap();
    let max = Experiment::load(run.experiment()).unwrap().train.max_steps;
    summary.steps = 10 * max;
    files::write_json(&run.summary(), &summary).unwrap();
    let err = format!("{:#}", run.check_records().unwrap_err().why);
    assert!(
        err.contains("summary.json") && err.contains("`steps`") && err.contains(&max.to_string()),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();

    let dir = std::env::temp_dir().join(format!("mla-lab-entry-convert-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let committed = files::source("docs/results-tiny/convert/mha_rope_to_mla_rope_half_tiny-s1");
    files::copy_tree(&committed, &dir).unwrap();
    let run = RunFolder::new(&dir);
    run.check_records().unwrap();
    let mut converted: records::Converted = read_json(&run.conversion()).unwrap().unwrap();
    let whole = converted.clone();
    for (rank, layers) in [(0, 4), (32, 4), (64, 3)] {
        converted.conversion.rank = rank;
        converted.conversion.energy = vec![0.9; layers];
        files::write_json(&run.conversion(), &converted).unwrap();
        let err = format!("{:#}", run.check_records().unwrap_err().why);
        assert!(
            err.contains("conversion.json") && err.contains("`rank`"),
            "{err}"
        );
    }
    converted = whole;
    converted.source_experiment = "nobody_tiny".into();
    files::write_json(&run.conversion(), &converted).unwrap();
    let err = format!("{:#}", run.check_records().unwrap_err().why);
    assert!(
        err.contains("conversion.json") && err.contains("source_experiment"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
