//! What a run learns before it trains: how long the whole run will take and, on a GPU, whether
//! a pass fits. Forward and backward passes of the first batch's first row are timed on the
//! real model (their gradients are dropped: nothing is trained), before the run's folder is
//! kept; on a GPU where a row is quick ([`QUICK_PASS`]), passes of the whole micro-batch too. A
//! device that cannot hold a pass fails here, in words, and leaves no folder; one that can gets
//! a projected wall time, with the tier and backends to use instead when that is more than a
//! few hours.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use burn::tensor::Tensor;

use super::memory::human;
use crate::data::dataset::TokenBatch;
use crate::model::Gpt;

/// Past this a run is long enough to say what runs sooner.
pub const LONG_RUN: Duration = Duration::from_secs(3 * 3600);

/// On a GPU, a one-row pass quicker than this is followed by passes of the whole
/// micro-batch, which check that the card holds one. Otherwise (a CPU, where a pass of 32 rows
/// at paper scale takes a minute or more) the one-row pass is scaled by the rows, so that the
/// projection comes within seconds; the CPU's memory is checked by the estimate beforehand.
pub const QUICK_PASS: Duration = Duration::from_secs(2);

/// What the timed pass found.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    /// One forward and backward pass of `timed_rows` rows (the quicker of two).
    pub pass: Duration,
    pub timed_rows: usize,
    /// Rows per pass of the run (its micro-batch); a pass takes `pass` scaled by
    /// `rows / timed_rows`.
    pub rows: usize,
    pub context: usize,
    /// Passes per optimizer step on one device (`rows_per_device / micro_batch`).
    pub passes_per_step: usize,
    /// Devices whose passes share the same cores (several replicas on one CPU), else 1.
    pub serial_devices: usize,
    /// Optimizer steps left to train.
    pub steps: usize,
}

impl Projection {
    /// One optimizer step: its passes, one device after another where they share the cores.
    /// The optimizer's own update is left out (small next to a pass).
    pub fn step(&self) -> Duration {
        let pass = self
            .pass
            .mul_f64(self.rows as f64 / self.timed_rows.max(1) as f64);
        pass * (self.passes_per_step * self.serial_devices) as u32
    }

    /// Training's wall time for the steps left; validation is not counted.
    pub fn total(&self) -> Duration {
        self.step() * self.steps as u32
    }

    pub fn is_long(&self) -> bool {
        self.total() > LONG_RUN
    }

    /// `a pass of 1 row × 512 tokens takes 2.4 s on cpu (flex); 10000 steps of 1 pass each
    /// (scaled to 32 rows): about 8 d 21 h of training (validation not counted)`, and what to
    /// do instead when that is long.
    pub fn text(&self, device: &str) -> String {
        let scaled = if self.timed_rows == self.rows {
            String::new()
        } else {
            format!(" (scaled to {} rows)", self.rows)
        };
        let mut out = format!(
            "a pass of {} row{} × {} tokens takes {} on {device}; {} steps of {} pass{} \
             each{scaled}: about {} of training (validation not counted)",
            self.timed_rows,
            if self.timed_rows == 1 { "" } else { "s" },
            self.context,
            duration(self.pass),
            self.steps,
            self.passes_per_step * self.serial_devices,
            if self.passes_per_step * self.serial_devices == 1 {
                ""
            } else {
                "es"
            },
            duration(self.total())
        );
        if self.is_long() {
            out += &format!(
                "\n  That is more than {}. For a run in minutes, not days: the tiny tier, \
                 experiments/tiny/ (the same rows at d_model 128, a 2,048-token BPE, context 256; \
                 20-50 minutes a run on a 2-core CPU with LibTorch, measured). Faster for this \
                 file: LibTorch (build with --features tch, then --backend libtorch; about 1.2x \
                 flex at paper scale on a 2-core CPU, measured) or a GPU (--features wgpu or \
                 cuda). See docs/training.md, \"What the paper's \
                 command costs\".",
                duration(LONG_RUN)
            );
        }
        out
    }
}

/// `45 s`, `12 min`, `3 h 20 min`, `2 d 17 h`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 48.0 * 3600.0 {
        let m = (s / 60.0).round() as u64;
        format!("{} h {} min", m / 60, m % 60)
    } else {
        let h = (s / 3600.0).round() as u64;
        format!("{} d {} h", h / 24, h % 24)
    }
}

/// Why the timed pass failed: the device could not hold it, or something else went wrong.
#[derive(Debug, thiserror::Error)]
pub enum PassFailed {
    #[error(
        "step {step}: the device ran out of memory on a forward and backward pass of {rows} \
         rows × {context} tokens{}; {remedy}",
        size.map(|b| format!(" (an allocation of {})", human(b))).unwrap_or_default()
    )]
    OutOfMemory {
        /// 0: the timed pass before training; else the optimizer step that failed.
        step: usize,
        rows: usize,
        context: usize,
        /// The allocation that failed, when the device said.
        size: Option<u64>,
        /// What to lower: `--micro-batch 8` or the like.
        remedy: String,
        /// The device's own words, for a bug report.
        detail: String,
    },
    #[error("step {step}: {message}")]
    Other { step: usize, message: String },
}

/// Times one forward and backward pass of `batch` (its gradients dropped). A panic inside the
/// backend (how burn's devices report a failed allocation) is caught and put in words;
/// `remedy` says what to lower when the device ran out of memory.
pub fn time_pass(model: &Gpt, batch: TokenBatch, remedy: &str) -> Result<Duration, PassFailed> {
    let [rows, context] = batch.inputs.dims();
    let device = batch.inputs.device();
    let started = Instant::now();
    // The default hook would print the panic (and burn's chain of messages) before it is put
    // in words here; nothing else runs while the pass does.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = catch_unwind(AssertUnwindSafe(|| {
        let loss = model.loss(batch.inputs, batch.targets);
        let grads = loss.backward();
        drop(grads);
        // Waits for the device (asynchronous backends return before they compute).
        let _ = Tensor::<1>::zeros([1], &device).into_scalar::<f32>();
    }));
    std::panic::set_hook(hook);
    match result {
        Ok(()) => Ok(started.elapsed()),
        Err(payload) => Err(in_words(
            &panic_message(payload.as_ref()),
            0,
            rows,
            context,
            remedy,
        )),
    }
}

/// The message a panic carried.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".into())
}

/// A device error at `step` (0: the timed pass before training) as one line: an allocation
/// failure or out-of-memory error with its size where the message has one, anything else as
/// its last line.
pub fn in_words(
    message: &str,
    step: usize,
    rows: usize,
    context: usize,
    remedy: &str,
) -> PassFailed {
    let lower = message.to_ascii_lowercase();
    let memory = ["allocate", "out of memory", "outofmemory", "out_of_memory"]
        .iter()
        .any(|k| lower.contains(k));
    if !memory {
        let last = message.lines().rev().find(|l| !l.trim().is_empty());
        return PassFailed::Other {
            step,
            message: last.unwrap_or(message).trim().to_string(),
        };
    }
    PassFailed::OutOfMemory {
        step,
        rows,
        context,
        size: allocation_size(message),
        remedy: remedy.to_string(),
        detail: message.to_string(),
    }
}

/// The size in bytes an allocation message names: the number after "size" (wgpu: `can't
/// allocate buffer of size: 3293642752`), or one with a unit (LibTorch: `Tried to allocate
/// 3.07 GiB`).
fn allocation_size(message: &str) -> Option<u64> {
    let lower = message.to_ascii_lowercase();
    if let Some(at) = lower.rfind("size") {
        let digits: String = lower[at + 4..]
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(|c| c.is_ascii_digit())
            .collect();
        if let Ok(n) = digits.parse() {
            return Some(n);
        }
    }
    let at = lower.find("allocate")?;
    let rest = &lower[at + "allocate".len()..];
    let number: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let value: f64 = number.parse().ok()?;
    let unit = rest.trim_start()[number.len()..].trim_start();
    let scale = [
        ("gib", 1u64 << 30),
        ("mib", 1 << 20),
        ("kib", 1 << 10),
        ("b", 1),
    ]
    .iter()
    .find(|(u, _)| unit.starts_with(u))?
    .1;
    Some((value * scale as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_projection_adds_up_its_passes_and_says_when_it_is_long() {
        let p = Projection {
            pass: Duration::from_secs(6),
            timed_rows: 8,
            rows: 8,
            context: 512,
            passes_per_step: 4,
            serial_devices: 1,
            steps: 10_000,
        };
        assert_eq!(p.step(), Duration::from_secs(24));
        assert_eq!(p.total(), Duration::from_secs(240_000));
        let text = p.text("cpu (flex)");
        assert!(
            text.contains("a pass of 8 rows × 512 tokens takes 6.0 s on cpu (flex)")
                && text.contains("10000 steps of 4 passes each: about 2 d 19 h")
                && text.contains("experiments/tiny/")
                && text.contains("--features tch"),
            "{text}"
        );
        let short = Projection {
            steps: 100,
            ..p.clone()
        };
        assert!(!short.is_long() && !short.text("x").contains("experiments/tiny/"));
        // One row timed, scaled to the micro-batch's 8.
        let one_row = Projection {
            pass: Duration::from_millis(750),
            timed_rows: 1,
            ..p.clone()
        };
        assert_eq!(one_row.step(), p.step());
        assert!(
            one_row
                .text("cpu")
                .contains("a pass of 1 row × 512 tokens takes 0.8 s on cpu; 10000 steps of 4 passes each (scaled to 8 rows)"),
            "{}",
            one_row.text("cpu")
        );
        assert_eq!(duration(Duration::from_secs(3 * 3600 + 1200)), "3 h 20 min");
        assert_eq!(duration(Duration::from_secs(720)), "12 min");
    }

    #[test]
    fn device_errors_become_one_line_with_the_size_and_the_option() {
        let wgpu = "Failed to execute ... \nCaused by:\n  Allocation error: can't allocate buffer of size: 3293642752";
        let e = in_words(wgpu, 0, 32, 512, "set --micro-batch 8");
        let text = e.to_string();
        assert!(
            text.contains("step 0: the device ran out of memory on a forward and backward pass")
                && text.contains("32 rows × 512 tokens")
                && text.contains("an allocation of 3.1 GiB")
                && text.ends_with("set --micro-batch 8")
                && !text.contains('\n'),
            "{text}"
        );
        let torch = "CUDA out of memory. Tried to allocate 3.07 GiB (GPU 0; 7.79 GiB total)";
        let PassFailed::OutOfMemory { size, step, .. } = in_words(torch, 7, 32, 512, "") else {
            panic!("not read as out of memory")
        };
        assert_eq!((size, step), (Some((3.07 * (1u64 << 30) as f64) as u64), 7));
        let other = in_words("Caused by:\n  index out of bounds\n", 3, 1, 1, "");
        assert_eq!(other.to_string(), "step 3: index out of bounds");
    }
}
