//! Training on a disk that fills up: a sentence naming the folder, no panic, and a resume that
//! ends where an uninterrupted run ends. The full disk is a small tmpfs, which needs root and a
//! system that lets it mount one (CI's); elsewhere that part skips, saying so. Always: training
//! writes nothing of burn-train's own metric logs (`train/`, `valid/`), whose writer threads
//! panic on a full disk.

mod common;

use std::path::Path;
use std::process::Command;

use common::arg;

/// The check experiment at 400 steps, checkpointed every 40.
fn longer(dir: &Path) -> std::path::PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/check/mla_rope_half.ron");
    let mut text = std::fs::read_to_string(src).unwrap();
    for (from, to) in [
        ("max_steps: 12", "max_steps: 400"),
        ("eval_every: 4", "eval_every: 40"),
        ("checkpoint_every: 4", "checkpoint_every: 40"),
    ] {
        assert!(text.contains(from), "{from}");
        text = text.replace(from, to);
    }
    let file = dir.join("full.ron");
    std::fs::write(&file, text).unwrap();
    file
}

fn train(file: &Path, art: &Path, resume: bool) -> common::Ran {
    let mut args = vec![
        "--backend",
        "cpu",
        "train",
        arg(file),
        "--artifacts",
        arg(art),
        "--headless",
    ];
    if resume {
        args.push("--resume");
    }
    common::mla_lab(&args)
}

fn free_bytes(dir: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1", arg(dir)])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_full_disk_stops_training_with_a_sentence_and_the_run_resumes_to_the_same_end() {
    let dir = common::fresh_dir("disk-full", "run");
    let file = longer(&dir);
    // The run on a roomy disk: the end to reach, and no burn-train log folders.
    let roomy = dir.join("roomy");
    let ran = train(&file, &roomy, false);
    assert!(ran.ok(), "{}", ran.stderr);
    let run = roomy.join("mla_rope_half_check");
    for burn_log in ["train", "valid"] {
        assert!(!run.join(burn_log).exists(), "{burn_log}/ written");
    }
    let end = |out: &str| out.lines().last().unwrap_or("").to_string();
    let want = end(&ran.stdout);

    let disk = dir.join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs", arg(&disk)])
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        eprintln!(
            "a_full_disk_stops_training_with_a_sentence_and_the_run_resumes_to_the_same_end: \
             cannot mount a small tmpfs here (not root, or not allowed): the full disk is skipped"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        return;
    }
    let art = disk.join("art");
    // The token cache first, then fill the disk but for room for one checkpoint.
    std::fs::create_dir_all(&art).unwrap();
    let ran = common::mla_lab(&["data", "prepare", arg(&file), "--artifacts", arg(&art)]);
    assert!(ran.ok(), "{}", ran.stderr);
    let filler = disk.join("filler");
    let room = 650_000;
    let fill = free_bytes(&disk).saturating_sub(room);
    let status = Command::new("fallocate")
        .args(["-l", &fill.to_string(), arg(&filler)])
        .status()
        .unwrap();
    assert!(status.success());
    let full = train(&file, &art, false);
    let _ = std::fs::remove_file(&filler);
    let result = || {
        assert!(!full.ok(), "{}", full.stdout);
        assert!(!full.stderr.contains("panicked"), "{}", full.stderr);
        let run_dir = art.join("mla_rope_half_check").display().to_string();
        assert!(
            full.stderr.contains("the disk is full while writing")
                && full.stderr.contains(&run_dir)
                && full.stderr.contains("--resume"),
            "{}",
            full.stderr
        );
        let resumed = train(&file, &art, true);
        assert!(resumed.ok(), "{}", resumed.stderr);
        let loss = |line: &str| {
            line.split("final val loss ")
                .nth(1)
                .map(|s| s[..6].to_string())
        };
        assert_eq!(loss(&end(&resumed.stdout)), loss(&want));
    };
    let outcome = std::panic::catch_unwind(result);
    let _ = Command::new("umount").arg(arg(&disk)).status();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
