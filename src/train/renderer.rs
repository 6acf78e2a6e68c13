//! What a training run shows and records. Always: `metrics.csv` rows, and a stop through the
//! learner's interrupter when the training loss turns NaN or infinite. In a terminal: burn-train's
//! dashboard, to which every event is forwarded. Otherwise (CI, pipes, `--headless`): one clean
//! line every `log_every` steps, in place of burn-train's plain renderer, which prints a debug
//! dump of its progress structs per batch.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burn::train::Interrupter;
use burn::train::logger::{EvaluationProgressLogger, TrainingProgressLogger};
use burn::train::metric::store::Split;
use burn::train::metric::{
    LearningRateMetric, LossMetric, Metric, MetricDefinition, MetricId, NumericEntry,
};
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining,
};

use crate::artifacts::RunFolder;
use crate::artifacts::metrics::{self, MetricsRow};
use crate::artifacts::tensorboard;

/// What the run has seen, shared with the caller after the learner returns.
#[derive(Debug, Default, Clone)]
pub struct RunRecord {
    pub step: usize,
    pub last_train_loss: Option<f64>,
    pub last_val_loss: Option<f64>,
    pub diverged: Option<String>,
    /// Training tokens per second, validation time excluded.
    pub tokens_per_s: Option<f64>,
}

/// The metrics a run records, told apart by the metric that registered them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tracked {
    Loss,
    LearningRate,
}

impl Tracked {
    fn of(definition: &MetricDefinition) -> Option<Tracked> {
        if definition.name == LossMetric::new().name() {
            Some(Tracked::Loss)
        } else if definition.name == LearningRateMetric::new().name() {
            Some(Tracked::LearningRate)
        } else {
            None
        }
    }
}

/// What a run is, as the renderer counts steps, tokens and lines.
#[derive(Debug, Clone, Copy)]
pub struct RenderPlan {
    pub batch_size: usize,
    pub context: usize,
    /// Optimizer steps per learner epoch (`eval_every`).
    pub steps_per_epoch: usize,
    pub max_steps: usize,
    /// A line and a `metrics.csv` row every this many steps.
    pub log_every: usize,
    /// Devices that each report every step (burn-train sends one event per device's shard): a
    /// step is done when each has reported, and its loss is their mean.
    pub devices: usize,
}

/// Wall and training time of the run, earlier invocations included: tokens/s leaves the time
/// spent validating out.
struct Clock {
    started: Instant,
    /// Time spent validating in this invocation.
    validating: Duration,
    valid_started: Option<Instant>,
    /// What earlier invocations of a resumed run trained: steps, seconds and training seconds.
    before: (usize, Duration, Duration),
    /// The step this invocation started at.
    start_step: usize,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            started: Instant::now(),
            validating: Duration::ZERO,
            valid_started: None,
            before: (0, Duration::ZERO, Duration::ZERO),
            start_step: 0,
        }
    }

    fn start(&mut self, step: usize) {
        self.start_step = step;
        self.started = Instant::now();
    }

    /// Training tokens per second at `step`, over `tokens_per_step` tokens a step.
    fn tokens_per_s(&self, step: usize, tokens_per_step: usize) -> f64 {
        let (steps_before, _, training_before) = self.before;
        let done = steps_before + step.saturating_sub(self.start_step);
        let training = training_before + self.started.elapsed().saturating_sub(self.validating);
        (done * tokens_per_step) as f64 / training.as_secs_f64().max(1e-9)
    }

    fn elapsed_s(&self) -> f64 {
        (self.before.1 + self.started.elapsed()).as_secs_f64()
    }
}

/// Stops the run through the learner's interrupter when the training loss turns NaN or
/// infinite, and says where in the record.
struct DivergenceGuard {
    interrupter: Interrupter,
}

impl DivergenceGuard {
    fn check(&self, loss: f64, record: &Mutex<RunRecord>) {
        if loss.is_finite() {
            return;
        }
        let mut r = record.lock().unwrap();
        if r.diverged.is_none() {
            r.diverged = Some(format!("training loss became {loss} at step {}", r.step));
            self.interrupter.stop(Some("non-finite loss"));
        }
    }
}

/// One progress line per logged step, where no dashboard shows the run.
struct Printer {
    print: bool,
    max_steps: usize,
}

impl Printer {
    fn line(&self, row: &MetricsRow, tokens_per_step: usize) {
        if !self.print {
            return;
        }
        let (step, rate) = (row.step, row.tokens_per_s);
        let left = (self.max_steps - step.min(self.max_steps)) * tokens_per_step;
        let eta = if rate > 0.0 { left as f64 / rate } else { 0.0 };
        let loss = row.train_loss.map_or("-".into(), |l| format!("{l:.4}"));
        let val = row.val_loss.map_or(String::new(), |v| {
            format!("  val {v:.4} (ppl {:.2})", v.exp())
        });
        println!(
            "step {step:>6}/{}  loss {loss}{val}  lr {:.2e}  {rate:.0} tok/s  eta {}",
            self.max_steps,
            row.lr,
            hms(eta)
        );
    }
}

/// burn-train's renderer for a run: follows the steps and their losses, then hands each
/// logged step to the recorder (`metrics.csv`), the printer and the divergence guard, and
/// forwards every event to the dashboard when there is one.
pub struct StepRenderer {
    plan: RenderPlan,
    tracked: HashMap<MetricId, Tracked>,
    epoch: usize,
    in_valid: bool,
    lr: f64,
    train_loss: Option<f64>,
    /// The losses of the current step's shards reported so far.
    shard_losses: Vec<f64>,
    clock: Clock,
    /// `metrics.csv`, a row per logged step.
    csv: PathBuf,
    /// `tb/`, the same rows as TensorBoard events.
    tb: PathBuf,
    printer: Printer,
    guard: DivergenceGuard,
    /// The dashboard every event is also sent to (then no lines are printed).
    dashboard: Option<Box<dyn MetricsRenderer>>,
    pub record: Arc<Mutex<RunRecord>>,
}

impl StepRenderer {
    /// Records into `folder`'s `metrics.csv` and TensorBoard events; prints lines when `print`;
    /// stops the run through `interrupter`.
    pub fn new(
        plan: RenderPlan,
        folder: &RunFolder,
        print: bool,
        interrupter: Interrupter,
    ) -> StepRenderer {
        StepRenderer {
            plan: RenderPlan {
                devices: plan.devices.max(1),
                ..plan
            },
            tracked: HashMap::new(),
            epoch: 0,
            in_valid: false,
            lr: 0.0,
            train_loss: None,
            shard_losses: vec![],
            clock: Clock::new(),
            csv: folder.metrics(),
            tb: folder.tensorboard(),
            printer: Printer {
                print,
                max_steps: plan.max_steps,
            },
            guard: DivergenceGuard { interrupter },
            dashboard: None,
            record: Arc::new(Mutex::new(RunRecord::default())),
        }
    }

    /// Shows burn-train's terminal dashboard instead of progress lines.
    pub fn with_dashboard(mut self, dashboard: Box<dyn MetricsRenderer>) -> Self {
        self.printer.print = false;
        self.dashboard = Some(dashboard);
        self
    }

    /// Continues the times and rates of a resumed run from the last row it kept.
    pub fn continuing(mut self, last: &MetricsRow) -> Self {
        let tokens = (last.step * self.tokens_per_step()) as f64;
        let training = if last.tokens_per_s > 0.0 {
            tokens / last.tokens_per_s
        } else {
            last.elapsed_s
        };
        self.clock.before = (
            last.step,
            Duration::from_secs_f64(last.elapsed_s.max(0.0)),
            Duration::from_secs_f64(training.max(0.0)),
        );
        self
    }

    fn tokens_per_step(&self) -> usize {
        self.plan.batch_size * self.plan.context
    }

    fn dashboard(&mut self, f: impl FnOnce(&mut dyn MetricsRenderer)) {
        if let Some(d) = self.dashboard.as_deref_mut() {
            f(d)
        }
    }

    fn value(&self, state: &MetricState) -> Option<(Tracked, f64)> {
        match state {
            MetricState::Numeric(entry, Some(n)) => {
                Some((*self.tracked.get(&entry.metric_id)?, n.current()))
            }
            _ => None,
        }
    }

    fn step(&self) -> usize {
        self.record.lock().unwrap().step
    }

    fn tokens_per_s(&self) -> f64 {
        self.clock.tokens_per_s(self.step(), self.tokens_per_step())
    }

    /// The current step's row, into `metrics.csv` and on a line.
    fn log(&self, val_loss: Option<f64>) {
        let row = MetricsRow {
            step: self.step(),
            train_loss: self.train_loss,
            val_loss,
            lr: self.lr,
            tokens_per_s: self.tokens_per_s(),
            elapsed_s: self.clock.elapsed_s(),
        };
        self.printer.line(&row, self.tokens_per_step());
        // A full disk must not stop training; the checkpoints still are written (or fail loudly).
        let _ = metrics::append(&self.csv, &row);
        let _ = tensorboard::append_row(&self.tb, &row);
    }
}

/// `MetricState` is not `Clone`; its parts are.
fn copy(state: &MetricState) -> MetricState {
    match state {
        MetricState::Generic(e) => MetricState::Generic(e.clone()),
        MetricState::Numeric(e, n) => MetricState::Numeric(e.clone(), n.clone()),
    }
}

fn hms(s: f64) -> String {
    let s = s.round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

impl MetricsRendererTraining for StepRenderer {
    fn update_train(&mut self, state: MetricState) {
        self.dashboard(|d| d.update_train(copy(&state)));
        // The epoch's mean, sent at its end: rows and lines show the step's own values.
        if let MetricState::Numeric(_, Some(NumericEntry::Final(_))) = state {
            return;
        }
        let Some((metric, v)) = self.value(&state) else {
            return;
        };
        if metric == Tracked::LearningRate {
            self.lr = v;
        } else if metric == Tracked::Loss {
            self.shard_losses.push(v);
            self.guard.check(v, &self.record);
        }
    }

    fn update_valid(&mut self, state: MetricState) {
        self.dashboard(|d| d.update_valid(copy(&state)));
        if let Some((Tracked::Loss, v)) = self.value(&state) {
            self.record.lock().unwrap().last_val_loss = Some(v);
        }
    }

    fn on_train_end(
        &mut self,
        summary: Option<burn::train::LearnerSummary>,
    ) -> Result<(), Box<dyn core::error::Error>> {
        match self.dashboard.as_deref_mut() {
            Some(d) => d.on_train_end(summary),
            None => Ok(()),
        }
    }
}

impl TrainingProgressLogger for StepRenderer {
    fn start(
        &mut self,
        total: usize,
        starting_epoch: usize,
        items: Option<usize>,
        label: Option<&str>,
    ) {
        self.dashboard(|d| d.start(total, starting_epoch, items, label));
        // burn-train counts epochs from 1 here; `epoch` holds the 0-based index of the epoch
        // being trained (update_epoch then reports the number of epochs completed).
        self.epoch = starting_epoch.saturating_sub(1);
        let step = self.epoch * self.plan.steps_per_epoch;
        self.record.lock().unwrap().step = step;
        self.clock.start(step);
    }

    fn update_epoch(&mut self, epoch: usize) {
        self.dashboard(|d| d.update_epoch(epoch));
        self.epoch = epoch;
    }

    fn start_split(&mut self, split: &str, total_items: usize) {
        self.dashboard(|d| d.start_split(split, total_items));
        // burn-train names its splits after its `Split` type.
        self.in_valid = split == <&str>::from(Split::Valid);
        if self.in_valid {
            self.clock.valid_started = Some(Instant::now());
        }
    }

    fn update_split(&mut self, items_processed: usize) {
        self.dashboard(|d| d.update_split(items_processed));
        if self.in_valid || self.shard_losses.len() < self.plan.devices {
            return;
        }
        let n = self.shard_losses.len() as f64;
        self.train_loss = Some(self.shard_losses.drain(..).sum::<f64>() / n);
        // `epoch` is the 0-based index of the epoch being trained.
        let plan = self.plan;
        let step = self.epoch * plan.steps_per_epoch + items_processed / plan.batch_size;
        {
            let mut r = self.record.lock().unwrap();
            r.step = step;
            r.last_train_loss = self.train_loss;
        }
        let rate = self.tokens_per_s();
        self.record.lock().unwrap().tokens_per_s = Some(rate);
        // A step that ends an epoch gets its line and row after validation, with the val loss.
        let validates = step.is_multiple_of(plan.steps_per_epoch) || step == plan.max_steps;
        if step.is_multiple_of(plan.log_every) && !validates {
            self.log(None);
        }
    }

    fn end_split(&mut self) {
        self.dashboard(|d| d.end_split());
        if self.in_valid {
            if let Some(t) = self.clock.valid_started.take() {
                self.clock.validating += t.elapsed();
            }
            let val = self.record.lock().unwrap().last_val_loss;
            self.log(val);
        }
    }

    fn end(&mut self) {
        self.dashboard(|d| d.end());
    }

    fn log_event_training(&mut self, event: String) {
        self.dashboard(|d| d.log_event_training(event));
    }
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
    fn manual_close(&mut self) {
        self.dashboard(|d| d.manual_close());
    }

    fn register_metric(&mut self, definition: MetricDefinition) {
        self.dashboard(|d| d.register_metric(definition.clone()));
        if let Some(t) = Tracked::of(&definition) {
            self.tracked.insert(definition.metric_id, t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::train::metric::{LossMetric, MetricEntry, NumericEntry, SerializedEntry};

    fn loss_state(id: &MetricId, v: f64) -> MetricState {
        let entry = SerializedEntry::new(format!("{v}"), format!("{v}"));
        MetricState::Numeric(
            MetricEntry::new(id.clone(), entry),
            Some(NumericEntry::Value(v)),
        )
    }

    /// Batches of 2 windows of 8 tokens, epochs of 5 steps, 20 steps, every step logged.
    fn plan(devices: usize) -> RenderPlan {
        RenderPlan {
            batch_size: 2,
            context: 8,
            steps_per_epoch: 5,
            max_steps: 20,
            log_every: 1,
            devices,
        }
    }

    fn renderer(
        tag: &str,
        devices: usize,
    ) -> (StepRenderer, MetricId, Interrupter, crate::data::Scratch) {
        let scratch = crate::data::Scratch::new(tag);
        let interrupter = Interrupter::new();
        let mut r = StepRenderer::new(
            plan(devices),
            &RunFolder::new(&scratch.0),
            false,
            interrupter.clone(),
        );
        let id = MetricId::new(Arc::new("loss".to_string()));
        r.register_metric(MetricDefinition::new(id.clone(), &LossMetric::new()));
        r.start(4, 1, None, None);
        r.start_split("train", 10);
        (r, id, interrupter, scratch)
    }

    #[test]
    fn a_non_finite_loss_stops_the_run_and_says_where() {
        let (mut r, id, interrupter, _scratch) = renderer("nan-stop", 1);
        r.update_train(loss_state(&id, 3.0));
        r.update_split(2 * 3);
        assert!(!interrupter.should_stop());
        r.update_train(loss_state(&id, f64::NAN));
        assert!(interrupter.should_stop());
        let why = r.record.lock().unwrap().diverged.clone().unwrap();
        assert_eq!(why, "training loss became NaN at step 3");
    }

    #[test]
    fn rows_are_one_per_step_and_the_validated_step_carries_the_val_loss() {
        let (mut r, id, _, scratch) = renderer("rows", 1);
        for step in 1..=5 {
            r.update_train(loss_state(&id, 10.0 - step as f64));
            r.update_split(2 * step);
        }
        r.start_split("valid", 4);
        r.update_valid(loss_state(&id, 4.5));
        r.end_split();
        let csv = std::fs::read_to_string(scratch.0.join("metrics.csv")).unwrap();
        let steps: Vec<&str> = csv.lines().map(|l| l.split(',').next().unwrap()).collect();
        assert_eq!(steps, ["step", "1", "2", "3", "4", "5"], "{csv}");
        let last: Vec<&str> = csv.lines().last().unwrap().split(',').collect();
        assert_eq!((last[1], last[2]), ("5.000000", "4.500000"), "{csv}");
    }

    #[test]
    fn on_two_devices_a_step_is_one_row_with_the_mean_of_its_shards_losses() {
        let (mut r, id, _, scratch) = renderer("devices", 2);
        for step in 1..=3 {
            // burn-train: one event per device, each with the step's combined progress.
            r.update_train(loss_state(&id, 2.0 * step as f64));
            r.update_split(2 * step);
            assert_eq!(r.step(), step - 1, "a step waits for its second shard");
            r.update_train(loss_state(&id, 2.0 * step as f64 + 1.0));
            r.update_split(2 * step);
            assert_eq!(r.step(), step);
        }
        let csv = std::fs::read_to_string(scratch.0.join("metrics.csv")).unwrap();
        let rows: Vec<(&str, &str)> = csv
            .lines()
            .skip(1)
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                (f[0], f[1])
            })
            .collect();
        assert_eq!(
            rows,
            [("1", "2.500000"), ("2", "4.500000"), ("3", "6.500000")],
            "{csv}"
        );
    }

    #[test]
    fn a_resumed_run_continues_the_times_and_rates_of_the_rows_it_kept() {
        let scratch = crate::data::Scratch::new("continuing");
        // 16 tokens a step; the killed run kept step 5 after 100 s, 80 of them training.
        let last = MetricsRow {
            step: 5,
            train_loss: Some(3.0),
            val_loss: Some(3.1),
            lr: 1e-3,
            tokens_per_s: 1.0,
            elapsed_s: 100.0,
        };
        let mut r = StepRenderer::new(
            plan(1),
            &RunFolder::new(&scratch.0),
            false,
            Interrupter::new(),
        )
        .continuing(&last);
        let id = MetricId::new(Arc::new("loss".to_string()));
        r.register_metric(MetricDefinition::new(id.clone(), &LossMetric::new()));
        r.start(4, 2, None, None); // the second epoch: steps 6..=10
        r.start_split("train", 10);
        r.update_train(loss_state(&id, 2.9));
        r.update_split(2);
        let rows = metrics::read(&scratch.0.join("metrics.csv"));
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(row.step, 6);
        assert!((100.0..101.0).contains(&row.elapsed_s), "{row:?}");
        // 6 steps × 16 tokens over just over 80 s.
        assert!((1.15..1.21).contains(&row.tokens_per_s), "{row:?}");
    }
}
