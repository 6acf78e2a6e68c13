//! What a study is asked to do: where runs live, which seeds, and how to eval, probe, judge
//! and bench them.

use std::path::PathBuf;

use crate::backend::BackendChoice;
use crate::eval::judge::JudgeConfig;
use crate::eval::probes::ProbeOptions;
use crate::infer::bench::BenchOptions;
use crate::options::InvalidOption;

/// A study's options, as the command line gives them.
#[derive(Debug, Clone)]
pub struct StudyOptions {
    pub artifacts: PathBuf,
    pub backend: BackendChoice,
    /// Validation windows for `eval.json`; `None`: the whole held-out split.
    pub eval_windows: Option<usize>,
    pub probes: ProbeOptions,
    pub bench: BenchOptions,
    pub judge: Option<(JudgeConfig, usize)>,
    /// Training seeds: one run of every experiment per seed, in `<name>-s<seed>/`; empty,
    /// one run each with the file's own seed, in `<name>/`.
    pub seeds: Vec<u64>,
    /// Where the report goes (default `<artifacts>/report`).
    pub report: PathBuf,
    /// A folder that keeps every run's records (`<records>/<run>/`, no weights), e.g. inside
    /// the checkout to commit: a finished run found there is restored instead of retrained, so
    /// a study can span machines and sessions whose artifacts do not survive.
    pub records: Option<PathBuf>,
    /// Train again a run whose folder or records entry holds a run of another experiment (its
    /// results go); without it such a run stops the study before anything is trained.
    pub force: bool,
}

impl StudyOptions {
    /// Refuses values that leave a claim without its statistic, before any training.
    pub fn check(&self) -> Result<(), InvalidOption> {
        if self.probes.stories == 0 {
            return Err(InvalidOption::new(
                "probe_stories",
                0,
                "at least 1: the story claims are scored on the probed stories",
            ));
        }
        if self.eval_windows == Some(0) {
            return Err(InvalidOption::new(
                "eval_windows",
                0,
                "at least 1, or leave it out for the whole held-out split",
            ));
        }
        if let Some(&c) = self.bench.contexts.iter().find(|&&c| c < 2) {
            return Err(InvalidOption::new(
                "contexts",
                c,
                "cache fill levels of at least 2 tokens: a prompt of one, then a decode step",
            ));
        }
        if let Some((_, 0)) = self.judge {
            return Err(InvalidOption::new(
                "judge_stories",
                0,
                "at least 1 story for the judge",
            ));
        }
        Ok(())
    }
}
