//! `metrics.csv`: one row per logged step, appended while a run trains, cut back to the
//! checkpoint a resumed run restarts from, and read back by `train` (for the summary of the
//! whole run) and `report` (for the curves). Its times run across resumes: `elapsed_s` is the
//! time of the run's kept steps since its first step, and `tokens_per_s` the rate over all of
//! them (validation left out).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::files;

pub const HEADER: &str = "step,train_loss,val_loss,lr,tokens_per_s,elapsed_s";

/// One row.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsRow {
    pub step: usize,
    pub train_loss: Option<f64>,
    /// Only on the steps that validated.
    pub val_loss: Option<f64>,
    pub lr: f64,
    /// Training tokens per second from step 0 to this step, validation left out.
    pub tokens_per_s: f64,
    /// Seconds from the run's first step to this one, over every invocation that trained it.
    pub elapsed_s: f64,
}

impl MetricsRow {
    pub fn line(&self) -> String {
        let fmt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
        format!(
            "{},{},{},{:.3e},{:.1},{:.2}",
            self.step,
            fmt(self.train_loss),
            fmt(self.val_loss),
            self.lr,
            self.tokens_per_s,
            self.elapsed_s
        )
    }

    /// A row as [`MetricsRow::line`] writes it; `None` for the header or a damaged line.
    pub fn parse(line: &str) -> Option<MetricsRow> {
        let f: Vec<&str> = line.trim_end().split(',').collect();
        let [step, train, val, lr, rate, elapsed] = f[..] else {
            return None;
        };
        let optional = |s: &str| -> Option<Option<f64>> {
            if s.is_empty() {
                Some(None)
            } else {
                s.parse().ok().map(Some)
            }
        };
        Some(MetricsRow {
            step: step.parse().ok()?,
            train_loss: optional(train)?,
            val_loss: optional(val)?,
            lr: lr.parse().ok()?,
            tokens_per_s: rate.parse().ok()?,
            elapsed_s: elapsed.parse().ok()?,
        })
    }
}

/// The rows of `path`; none when it does not exist. Lines that are not rows (a line cut short
/// by a kill) are skipped.
pub fn read(path: &Path) -> Vec<MetricsRow> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(MetricsRow::parse)
        .collect()
}

/// A line of `metrics.csv` that is not a row (a line cut short by a kill, a damaged file).
#[derive(Debug, Clone, PartialEq)]
pub struct Damaged {
    /// 1-based.
    pub line: usize,
    pub text: String,
}

/// The rows of `path` and the lines that are neither rows, nor the header on the first line,
/// nor blank. Unlike [`read`], a file that cannot be read is an error naming it.
pub fn read_checked(path: &Path) -> Result<(Vec<MetricsRow>, Vec<Damaged>)> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let (mut rows, mut damaged) = (vec![], vec![]);
    for (i, line) in String::from_utf8_lossy(&bytes).lines().enumerate() {
        match MetricsRow::parse(line) {
            Some(row) => rows.push(row),
            None if line.trim().is_empty() || (i == 0 && line.trim_end() == HEADER) => {}
            None => damaged.push(Damaged {
                line: i + 1,
                text: line.to_string(),
            }),
        }
    }
    Ok((rows, damaged))
}

/// The rows of a run's `path` and its damaged lines ([`read_checked`]), refusing a file that is
/// not a metrics file at all: one without the header on its first line, without a row, or whose
/// steps do not rise from row to row (as a run appends them, and a resume cuts them back).
pub fn read_whole(path: &Path) -> Result<(Vec<MetricsRow>, Vec<Damaged>)> {
    let (rows, damaged) = read_checked(path)?;
    let first = std::fs::read(path)
        .with_context(|| format!("{}: cannot read", path.display()))?
        .split(|&b| b == b'\n')
        .next()
        .map(|l| String::from_utf8_lossy(l).trim_end().to_string());
    if first.as_deref() != Some(HEADER) {
        bail!(
            "{}: not what mla-lab writes there (its first line is not the header {HEADER:?})",
            path.display()
        );
    }
    if rows.is_empty() {
        bail!("{}: not a single metrics row", path.display());
    }
    // Every value in the range mla-lab writes ([`super::ranges::FIELDS`]).
    for (i, r) in rows.iter().enumerate() {
        let values = [
            ("step", Some(r.step as f64)),
            ("train_loss", r.train_loss),
            ("val_loss", r.val_loss),
            ("lr", Some(r.lr)),
            ("tokens_per_s", Some(r.tokens_per_s)),
            ("elapsed_s", Some(r.elapsed_s)),
        ];
        for (column, v) in values {
            if let Some(v) = v {
                super::ranges::check_column(column, v).with_context(|| {
                    format!("{}: row {} (step {})", path.display(), i + 1, r.step)
                })?;
            }
        }
    }
    if let Some(i) = (1..rows.len()).find(|&i| rows[i].step <= rows[i - 1].step) {
        bail!(
            "{}: not what mla-lab writes there (row {} is step {} after step {}; the steps of a \
             run's rows rise)",
            path.display(),
            i + 1,
            rows[i].step,
            rows[i - 1].step
        );
    }
    Ok((rows, damaged))
}

/// Appends `row`, writing the header first into a new file.
pub fn append(path: &Path, row: &MetricsRow) -> std::io::Result<()> {
    let new = !path.exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut text = String::new();
    if new {
        text += HEADER;
        text.push('\n');
    }
    text += &row.line();
    text.push('\n');
    f.write_all(text.as_bytes())
}

/// Keeps the rows up to `step` (those written after the checkpoint a resumed run restarts
/// from go, so the resumed curve continues the file without repeating steps), and returns the
/// last row kept.
pub fn keep_through(path: &Path, step: usize) -> Result<Option<MetricsRow>> {
    if !path.exists() {
        return Ok(None);
    }
    let kept: Vec<MetricsRow> = read(path).into_iter().filter(|r| r.step <= step).collect();
    let mut text = String::from(HEADER);
    text.push('\n');
    for r in &kept {
        text += &r.line();
        text.push('\n');
    }
    files::write(path, text.as_bytes())?;
    Ok(kept.last().cloned())
}

/// What the rows say about the run as a whole.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub step: usize,
    pub last_train_loss: Option<f64>,
    pub last_val_loss: Option<f64>,
    pub tokens_per_s: Option<f64>,
    pub elapsed_s: f64,
}

pub fn totals(rows: &[MetricsRow]) -> Totals {
    let last = rows.last();
    Totals {
        step: last.map_or(0, |r| r.step),
        last_train_loss: rows.iter().rev().find_map(|r| r.train_loss),
        last_val_loss: rows.iter().rev().find_map(|r| r.val_loss),
        tokens_per_s: last.map(|r| r.tokens_per_s).filter(|&t| t > 0.0),
        elapsed_s: last.map_or(0.0, |r| r.elapsed_s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(step: usize, val: Option<f64>) -> MetricsRow {
        MetricsRow {
            step,
            train_loss: Some(2.0 + 1.0 / step as f64),
            val_loss: val,
            lr: 1e-3,
            tokens_per_s: 100.0 * step as f64,
            elapsed_s: step as f64 / 10.0,
        }
    }

    #[test]
    fn rows_survive_a_write_and_a_read_and_a_cut() {
        let scratch = crate::data::Scratch::new("metrics");
        let path = scratch.0.join("metrics.csv");
        let rows: Vec<MetricsRow> = (1..=6)
            .map(|s| row(5 * s, (s % 2 == 0).then_some(3.0 - s as f64 / 4.0)))
            .collect();
        for r in &rows {
            append(&path, r).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(HEADER), "{text}");
        let back = read(&path);
        assert_eq!(back.len(), 6);
        assert_eq!(back[1].val_loss, Some(2.5));
        assert_eq!(back[0].val_loss, None);
        assert_eq!(back[3].step, 20);
        // A torn last line (a kill mid-write) is not a row.
        std::fs::write(&path, format!("{text}35,2.1")).unwrap();
        assert_eq!(read(&path).len(), 6);
        let last = keep_through(&path, 17).unwrap().unwrap();
        assert_eq!(last.step, 15);
        assert_eq!(
            read(&path).iter().map(|r| r.step).collect::<Vec<_>>(),
            [5, 10, 15]
        );
        let t = totals(&read(&path));
        assert_eq!((t.step, t.last_val_loss), (15, Some(2.5)));
        assert_eq!(t.elapsed_s, 1.5);
    }
}
