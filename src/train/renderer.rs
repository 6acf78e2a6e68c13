//! What a training run shows and records when stdout is not a terminal (CI, pipes,
//! `--headless`): one clean line every `log_every` steps, and `metrics.csv` rows. It replaces
//! burn-train's plain renderer, which prints a debug dump of its progress structs per batch.
//! A NaN or infinite training loss stops the run through the learner's interrupter.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use burn::train::Interrupter;
use burn::train::logger::{EvaluationProgressLogger, TrainingProgressLogger};
use burn::train::metric::{MetricDefinition, MetricId};
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining,
};

/// What the run has seen, shared with the caller after the learner returns.
#[derive(Debug, Default, Clone)]
pub struct RunRecord {
    pub step: usize,
    pub last_train_loss: Option<f64>,
    pub last_val_loss: Option<f64>,
    pub diverged: Option<String>,
}

pub struct StepRenderer {
    names: HashMap<MetricId, String>,
    batch_size: usize,
    context: usize,
    steps_per_epoch: usize,
    max_steps: usize,
    log_every: usize,
    epoch: usize,
    in_valid: bool,
    lr: f64,
    train_loss: Option<f64>,
    started: Instant,
    start_step: usize,
    csv: PathBuf,
    print: bool,
    interrupter: Interrupter,
    pub record: Arc<Mutex<RunRecord>>,
}

impl StepRenderer {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        batch_size: usize,
        context: usize,
        steps_per_epoch: usize,
        max_steps: usize,
        log_every: usize,
        csv: PathBuf,
        print: bool,
        interrupter: Interrupter,
    ) -> StepRenderer {
        StepRenderer {
            names: HashMap::new(),
            batch_size,
            context,
            steps_per_epoch,
            max_steps,
            log_every,
            epoch: 0,
            in_valid: false,
            lr: 0.0,
            train_loss: None,
            started: Instant::now(),
            start_step: 0,
            csv,
            print,
            interrupter,
            record: Arc::new(Mutex::new(RunRecord::default())),
        }
    }

    fn value(&self, state: &MetricState) -> Option<(String, f64)> {
        match state {
            MetricState::Numeric(entry, Some(n)) => {
                let name = self.names.get(&entry.metric_id)?.clone();
                Some((name, n.current()))
            }
            _ => None,
        }
    }

    fn step(&self) -> usize {
        self.record.lock().unwrap().step
    }

    fn tokens_per_s(&self) -> f64 {
        let done = self.step().saturating_sub(self.start_step) * self.batch_size * self.context;
        done as f64 / self.started.elapsed().as_secs_f64().max(1e-9)
    }

    fn row(&self, val_loss: Option<f64>) {
        let step = self.step();
        let fmt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
        let line = format!(
            "{step},{},{},{:.3e},{:.1},{:.2}\n",
            fmt(self.train_loss),
            fmt(val_loss),
            self.lr,
            self.tokens_per_s(),
            self.started.elapsed().as_secs_f64()
        );
        let new = !self.csv.exists();
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.csv)
        {
            if new {
                let _ = f.write_all(b"step,train_loss,val_loss,lr,tokens_per_s,elapsed_s\n");
            }
            let _ = f.write_all(line.as_bytes());
        }
    }

    fn line(&self, val_loss: Option<f64>) {
        if !self.print {
            return;
        }
        let step = self.step();
        let rate = self.tokens_per_s();
        let left = (self.max_steps - step.min(self.max_steps)) * self.batch_size * self.context;
        let eta = if rate > 0.0 { left as f64 / rate } else { 0.0 };
        let loss = self.train_loss.map_or("-".into(), |l| format!("{l:.4}"));
        let val = val_loss.map_or(String::new(), |v| {
            format!("  val {v:.4} (ppl {:.2})", v.exp())
        });
        println!(
            "step {step:>6}/{}  loss {loss}{val}  lr {:.2e}  {rate:.0} tok/s  eta {}",
            self.max_steps,
            self.lr,
            hms(eta)
        );
    }
}

fn hms(s: f64) -> String {
    let s = s.round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

impl MetricsRendererTraining for StepRenderer {
    fn update_train(&mut self, state: MetricState) {
        let Some((name, v)) = self.value(&state) else {
            return;
        };
        if name.contains("Learning") {
            self.lr = v;
        } else if name == "Loss" {
            self.train_loss = Some(v);
            if !v.is_finite() {
                let mut r = self.record.lock().unwrap();
                if r.diverged.is_none() {
                    r.diverged = Some(format!("training loss became {v} at step {}", r.step));
                    self.interrupter.stop(Some("non-finite loss"));
                }
            }
        }
    }

    fn update_valid(&mut self, state: MetricState) {
        if let Some((name, v)) = self.value(&state)
            && name == "Loss"
        {
            self.record.lock().unwrap().last_val_loss = Some(v);
        }
    }

    fn on_train_end(
        &mut self,
        _summary: Option<burn::train::LearnerSummary>,
    ) -> Result<(), Box<dyn core::error::Error>> {
        Ok(())
    }
}

impl TrainingProgressLogger for StepRenderer {
    fn start(
        &mut self,
        _total: usize,
        starting_epoch: usize,
        _items: Option<usize>,
        _label: Option<&str>,
    ) {
        // burn-train counts epochs from 1 here; `epoch` holds the 0-based index of the epoch
        // being trained (update_epoch then reports the number of epochs completed).
        self.epoch = starting_epoch.saturating_sub(1);
        self.start_step = self.epoch * self.steps_per_epoch;
        self.record.lock().unwrap().step = self.start_step;
        self.started = Instant::now();
    }

    fn update_epoch(&mut self, epoch: usize) {
        self.epoch = epoch;
    }

    fn start_split(&mut self, split: &str, _total_items: usize) {
        self.in_valid = split.to_ascii_lowercase().contains("valid");
    }

    fn update_split(&mut self, items_processed: usize) {
        if self.in_valid {
            return;
        }
        // `epoch` is the 0-based index of the epoch being trained.
        let step = self.epoch * self.steps_per_epoch + items_processed / self.batch_size;
        {
            let mut r = self.record.lock().unwrap();
            r.step = step;
            r.last_train_loss = self.train_loss;
        }
        if step.is_multiple_of(self.log_every) {
            self.line(None);
            self.row(None);
        }
    }

    fn end_split(&mut self) {
        if self.in_valid {
            let val = self.record.lock().unwrap().last_val_loss;
            self.line(val);
            self.row(val);
        }
    }

    fn end(&mut self) {}

    fn log_event_training(&mut self, _event: String) {}
}

impl EvaluationProgressLogger for StepRenderer {
    fn start_global_progress(&mut self, _total_tests: usize) {}
    fn start_test(&mut self, _name: &str, _total_items: usize) {}
    fn update_test_progress(&mut self, _items_processed: usize) {}
    fn end_test(&mut self) {}
    fn end_global_progress(&mut self) {}
    fn log_event_evaluation(&mut self, _event: String) {}
}

impl MetricsRendererEvaluation for StepRenderer {
    fn update_test(&mut self, _name: EvaluationName, _state: MetricState) {}
}

impl MetricsRenderer for StepRenderer {
    fn manual_close(&mut self) {}

    fn register_metric(&mut self, definition: MetricDefinition) {
        self.names
            .insert(definition.metric_id, definition.name.to_string());
    }
}
