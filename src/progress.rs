//! Progress reporting: an indicatif bar when stderr is a terminal, plain summary lines
//! otherwise (CI logs and pipes get no control characters).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// A task with a known amount of work.
pub struct Progress {
    bar: Option<ProgressBar>,
    what: String,
    started: Instant,
}

impl Progress {
    pub fn new(what: &str, total: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:>14} [{bar:30}] {pos}/{len} {per_sec} eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_message(what.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            what: what.to_string(),
            started: Instant::now(),
        }
    }

    pub fn inc(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    /// Ends the task and prints `what: summary (time)` to stderr.
    pub fn finish(self, summary: &str) -> Duration {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let took = self.started.elapsed();
        eprintln!("{}: {summary} ({:.2} s)", self.what, took.as_secs_f64());
        took
    }
}
