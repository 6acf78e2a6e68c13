//! What a training call reports as it goes ([`TrainEvent`]): values for the caller to show,
//! and to act on (the CLI gives a long run's projection time to be read before its dashboard
//! takes the screen). The library prints none of them and waits for nothing.

use std::fmt;

/// One thing a training call has to say before its steps begin.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainEvent {
    /// Several devices share each step's batch, `rows_each` rows of `batch` on each.
    Shared {
        run: String,
        devices: usize,
        backend: String,
        /// The devices are replicas side by side on the one CPU device.
        replicas_on_cpu: bool,
        strategy: &'static str,
        rows_each: usize,
        batch: usize,
    },
    /// Each device takes its rows in `passes` micro-batches of `rows`, their gradients summed
    /// into one step of `batch`.
    MicroBatches {
        run: String,
        rows: usize,
        passes: usize,
        batch: usize,
    },
    /// The preflight's projection of the training time; `long` past the length at which it
    /// also says what runs faster.
    Projected {
        run: String,
        text: String,
        long: bool,
    },
}

impl fmt::Display for TrainEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrainEvent::Shared {
                run,
                devices,
                backend,
                replicas_on_cpu,
                strategy,
                rows_each,
                batch,
            } => {
                let shared = if *replicas_on_cpu {
                    ", replicas side by side on the one CPU device"
                } else {
                    ""
                };
                write!(
                    f,
                    "{run}: {devices} devices on {backend}{shared}: {strategy}; {rows_each} rows \
                     of the batch of {batch} each"
                )
            }
            TrainEvent::MicroBatches {
                run,
                rows,
                passes,
                batch,
            } => write!(
                f,
                "{run}: micro-batches of {rows} rows, {passes} passes per step on each device, \
                 their gradients summed into one step of the batch of {batch}"
            ),
            TrainEvent::Projected { run, text, .. } => write!(f, "{run}: {text}"),
        }
    }
}
