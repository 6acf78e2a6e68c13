//! A run's TensorBoard events (`tb/`), read back: by mla-lab's own reader always, and by the
//! `tensorboard` package's event reader where `MLA_LAB_TENSORBOARD_PYTHON` names a Python that
//! has it (CI sets it): every scalar of `metrics.csv`, at its step, and the run's end.

mod common;

use std::path::Path;
use std::process::Command;

use common::arg;
use mla_lab::artifacts::tensorboard::{
    EVAL_LOSS, KV_BYTES, LR, TOKENS_PER_S, TRAIN_LOSS, VAL_LOSS,
};

/// TensorBoard's own reader: every scalar of the event files in `tb`, as `tag step value`.
const READ: &str = r#"
import sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
ea = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
ea.Reload()
for tag in ea.Tags()["scalars"]:
    for e in ea.Scalars(tag):
        print(tag, e.step, repr(e.value))
"#;

/// What each tag should hold: `(step, value, tolerance)`, from the run's records. The
/// tolerance is the precision metrics.csv prints (6 decimals for a loss, 4 significant digits
/// for the rate, 1 decimal for tok/s) plus float32's rounding of the event's value.
fn expected(run: &Path) -> Vec<(&'static str, usize, f64, f64)> {
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let mut want = vec![];
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let step: usize = f[0].parse().unwrap();
        let mut add = |tag, text: &str, tol: fn(f64) -> f64| {
            if !text.is_empty() {
                let v: f64 = text.parse().unwrap();
                want.push((tag, step, v, tol(v)));
            }
        };
        add(TRAIN_LOSS, f[1], |v| 6e-7 + v.abs() * 1e-7);
        add(VAL_LOSS, f[2], |v| 6e-7 + v.abs() * 1e-7);
        add(LR, f[3], |v| v.abs() * 6e-4);
        add(TOKENS_PER_S, f[4], |v| 0.06 + v.abs() * 1e-7);
    }
    let json = |name: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(run.join(name)).unwrap()).unwrap()
    };
    let (summary, eval) = (json("summary.json"), json("eval.json"));
    let steps = summary["steps"].as_u64().unwrap() as usize;
    let kv = summary["kv_bytes_per_token_f32"].as_f64().unwrap();
    want.push((KV_BYTES, steps, kv, 0.0));
    let loss = eval["loss"].as_f64().unwrap();
    want.push((EVAL_LOSS, steps, loss, loss * 1e-7));
    want
}

/// Every expected scalar is in `got` once, within its tolerance, and nothing else is.
fn compare(got: &[(String, usize, f64)], want: &[(&str, usize, f64, f64)], reader: &str) {
    assert_eq!(got.len(), want.len(), "{reader}: {got:?}");
    for (tag, step, v, tol) in want {
        let found: Vec<&(String, usize, f64)> = got
            .iter()
            .filter(|(t, s, _)| t == tag && s == step)
            .collect();
        assert_eq!(found.len(), 1, "{reader}: {tag} at step {step}: {found:?}");
        let diff = (found[0].2 - v).abs();
        assert!(
            diff <= *tol,
            "{reader}: {tag} at step {step}: {} against {v}",
            found[0].2
        );
    }
}

#[test]
fn a_runs_events_hold_every_metrics_row_and_its_end() {
    let dir = common::fresh_dir("tensorboard", "run");
    let art = dir.join("artifacts");
    let ran = common::mla_lab(&[
        "--backend",
        "cpu",
        "study",
        "experiments/check/mla_rope_half.ron",
        "--artifacts",
        arg(&art),
        "--contexts",
        "16,32",
        "--probe-stories",
        "4",
    ]);
    assert!(ran.ok(), "{}", ran.stderr);
    let run = art.join("mla_rope_half_check");
    let want = expected(&run);
    assert!(want.len() >= 3 * 4 + 2, "{want:?}");

    let ours: Vec<(String, usize, f64)> = mla_lab::artifacts::tensorboard::read(&run.join("tb"))
        .unwrap()
        .into_iter()
        .map(|(t, s, v)| (t, s, v as f64))
        .collect();
    compare(&ours, &want, "mla-lab's reader");

    let Ok(python) = std::env::var("MLA_LAB_TENSORBOARD_PYTHON") else {
        eprintln!(
            "a_runs_events_hold_every_metrics_row_and_its_end: MLA_LAB_TENSORBOARD_PYTHON is not \
             set, so TensorBoard's own reader is skipped (CI sets it)"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        return;
    };
    let out = Command::new(&python)
        .args(["-c", READ, arg(&run.join("tb"))])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{python}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<(String, usize, f64)> = stdout
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (
                f[0].to_string(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect();
    compare(&theirs, &want, "TensorBoard's reader");
    std::fs::remove_dir_all(&dir).unwrap();
}
