//! `tb/`: a run's curves as TensorBoard event files, for watching a run that has no terminal (a
//! batch job) from anywhere TensorBoard, or W&B's `wandb sync --sync-tensorboard`, can read a
//! folder.
//!
//! The file is TensorFlow's record framing of `Event` protocol buffers, one scalar a record:
//!
//! ```text
//! record  = len: u64 LE · masked_crc32c(len): u32 LE · event bytes · masked_crc32c(event): u32 LE
//! masked  = ((crc >> 15) | (crc << 17)) + 0xa282ead8            (wrapping, on the CRC-32C)
//! Event   { 1: wall_time double, 2: step int64, 3: file_version string | 5: summary Summary }
//! Summary { 1: repeated Value }    Value { 1: tag string, 2: simple_value float }
//! ```
//!
//! The messages are derived with `prost` here rather than taken from a TensorBoard crate: the
//! one that fits (`tboard`) compiles TensorFlow's `.proto` files in its build script, which
//! needs `protoc` on every machine that builds mla-lab; these three messages are all a scalar
//! needs. The first record names the format (`brain.Event:2`), as TensorFlow's writer does.
//!
//! The event file mirrors `metrics.csv` row for row ([`append_row`]): each row's training and
//! validation loss, learning rate and tok/s, at the row's step, timed at the run's start plus
//! the row's `elapsed_s`. A resume that cuts `metrics.csv` back writes the file again from the
//! rows kept ([`rewrite`]), so no step appears twice. At the end, training adds the KV bytes per
//! token and evaluation its loss ([`append_scalars`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use prost::Message;

use super::metrics::MetricsRow;
use crate::files;

/// The tags of a row's scalars, as TensorBoard lists them.
pub const TRAIN_LOSS: &str = "loss/train";
pub const VAL_LOSS: &str = "loss/val";
pub const LR: &str = "lr";
pub const TOKENS_PER_S: &str = "tokens_per_s";
/// Written once, at the end of training.
pub const KV_BYTES: &str = "kv_bytes_per_token_f32";
/// Written by each evaluation of the trained run.
pub const EVAL_LOSS: &str = "eval/loss";

/// The file names start so; TensorBoard reads only files whose name holds `tfevents`.
const PREFIX: &str = "events.out.tfevents.";
const SUFFIX: &str = ".mla-lab";

#[derive(Clone, PartialEq, Message)]
struct Event {
    #[prost(double, tag = "1")]
    wall_time: f64,
    #[prost(int64, tag = "2")]
    step: i64,
    /// One of `file_version` and `summary` is set (a `oneof` in TensorFlow's message: the same
    /// bytes).
    #[prost(string, optional, tag = "3")]
    file_version: Option<String>,
    #[prost(message, optional, tag = "5")]
    summary: Option<Summary>,
}

#[derive(Clone, PartialEq, Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<Value>,
}

#[derive(Clone, PartialEq, Message)]
struct Value {
    #[prost(string, tag = "1")]
    tag: String,
    /// In a `oneof` in TensorFlow's message: present even where it is 0.
    #[prost(float, optional, tag = "2")]
    simple_value: Option<f32>,
}

/// TFRecord's checksum: the CRC-32C of `bytes`, rotated and offset.
fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One record: its length, the length's checksum, the event, the event's checksum.
fn record(event: &Event, out: &mut Vec<u8>) {
    let bytes = event.encode_to_vec();
    let len = (bytes.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(&bytes);
    out.extend_from_slice(&masked_crc(&bytes).to_le_bytes());
}

fn scalar(wall_time: f64, step: usize, tag: &str, value: f64) -> Event {
    Event {
        wall_time,
        step: step as i64,
        file_version: None,
        summary: Some(Summary {
            value: vec![Value {
                tag: tag.into(),
                simple_value: Some(value as f32),
            }],
        }),
    }
}

/// The event file in `tb`, with the run's start (seconds since the epoch) its name carries;
/// `None` where there is none yet.
fn existing(tb: &Path) -> Option<(PathBuf, f64)> {
    let entries = std::fs::read_dir(tb).ok()?;
    entries.flatten().find_map(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        let start = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
        Some((e.path(), start.parse::<f64>().ok()?))
    })
}

/// A new file's name for a run that starts now, and that start.
fn fresh(tb: &Path) -> (PathBuf, f64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    (tb.join(format!("{PREFIX}{now}{SUFFIX}")), now as f64)
}

fn header(start: f64, out: &mut Vec<u8>) {
    let version = Event {
        wall_time: start,
        step: 0,
        file_version: Some("brain.Event:2".into()),
        summary: None,
    };
    record(&version, out);
}

fn row_records(start: f64, row: &MetricsRow, out: &mut Vec<u8>) {
    let at = start + row.elapsed_s;
    let values = [
        (TRAIN_LOSS, row.train_loss),
        (VAL_LOSS, row.val_loss),
        (LR, Some(row.lr)),
        (TOKENS_PER_S, Some(row.tokens_per_s)),
    ];
    for (tag, value) in values {
        if let Some(v) = value {
            record(&scalar(at, row.step, tag, v), out);
        }
    }
}

/// Appends `bytes` to the event file in `tb`, making the folder and the file (its header first)
/// where there are none.
fn append(tb: &Path, bytes: impl FnOnce(f64) -> Vec<u8>) -> Result<()> {
    std::fs::create_dir_all(tb).with_context(|| format!("{}: cannot create", tb.display()))?;
    let (path, start, mut out) = match existing(tb) {
        Some((path, start)) => (path, start, vec![]),
        None => {
            let (path, start) = fresh(tb);
            let mut out = vec![];
            header(start, &mut out);
            (path, start, out)
        }
    };
    out.extend(bytes(start));
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("{}: cannot open", path.display()))?;
    f.write_all(&out)
        .with_context(|| format!("{}: cannot write", path.display()))
}

/// Appends one `metrics.csv` row's scalars.
pub fn append_row(tb: &Path, row: &MetricsRow) -> Result<()> {
    append(tb, |start| {
        let mut out = vec![];
        row_records(start, row, &mut out);
        out
    })
}

/// Appends scalars at `step`, timed now.
pub fn append_scalars(tb: &Path, step: usize, scalars: &[(&str, f64)]) -> Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    append(tb, |_| {
        let mut out = vec![];
        for (tag, v) in scalars {
            record(&scalar(now, step, tag, *v), &mut out);
        }
        out
    })
}

/// Writes the event file again, whole, from `rows` (a resume's kept rows), keeping the run's
/// start.
pub fn rewrite(tb: &Path, rows: &[MetricsRow]) -> Result<()> {
    std::fs::create_dir_all(tb).with_context(|| format!("{}: cannot create", tb.display()))?;
    let (path, start) = existing(tb).unwrap_or_else(|| fresh(tb));
    let mut out = vec![];
    header(start, &mut out);
    for row in rows {
        row_records(start, row, &mut out);
    }
    files::write(&path, &out)
}

/// The scalars of the event files in `tb` as `(tag, step, value)`, in the order written, for
/// tests: each record's framing and checksums checked.
pub fn read(tb: &Path) -> Result<Vec<(String, usize, f32)>> {
    let (path, _) = existing(tb).with_context(|| format!("{}: no event file", tb.display()))?;
    let bytes = std::fs::read(&path).with_context(|| format!("{}: cannot read", path.display()))?;
    let mut at = 0;
    let mut scalars = vec![];
    let bad = |what: &str| anyhow::anyhow!("{}: {what}", path.display());
    while at < bytes.len() {
        let len_bytes = bytes.get(at..at + 8).ok_or_else(|| bad("torn length"))?;
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
        let crc = |from: usize| {
            bytes
                .get(from..from + 4)
                .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
        };
        if crc(at + 8) != Some(masked_crc(len_bytes)) {
            return Err(bad("the length's checksum does not match"));
        }
        let body = bytes
            .get(at + 12..at + 12 + len)
            .ok_or_else(|| bad("torn event"))?;
        if crc(at + 12 + len) != Some(masked_crc(body)) {
            return Err(bad("the event's checksum does not match"));
        }
        let event = Event::decode(body).map_err(|e| bad(&format!("not an event: {e}")))?;
        for v in event.summary.into_iter().flat_map(|s| s.value) {
            let value = v
                .simple_value
                .ok_or_else(|| bad("a value without its scalar"))?;
            scalars.push((v.tag, event.step as usize, value));
        }
        at += 16 + len;
    }
    Ok(scalars)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(step: usize, val: Option<f64>) -> MetricsRow {
        MetricsRow {
            step,
            train_loss: Some(3.0 - step as f64 / 100.0),
            val_loss: val,
            lr: 1e-3 * step as f64,
            tokens_per_s: 10.0 * step as f64,
            elapsed_s: step as f64,
        }
    }

    #[test]
    fn masked_crc_of_tensorflows_own_example() {
        // TensorFlow's crc32c_test: the CRC-32C of 32 zero bytes is 0x8a9136aa; masked as
        // TFRecord masks it.
        assert_eq!(crc32c::crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(
            masked_crc(&[0u8; 32]),
            0x8a91_36aau32.rotate_right(15).wrapping_add(0xa282_ead8)
        );
    }

    #[test]
    fn rows_go_in_as_scalars_and_a_resume_writes_them_again_without_repeats() {
        let scratch = crate::data::Scratch::new("tensorboard");
        let tb = scratch.0.join("tb");
        for r in [row(10, None), row(20, Some(2.5)), row(30, None)] {
            append_row(&tb, &r).unwrap();
        }
        let got = read(&tb).unwrap();
        let steps = |tag: &str| -> Vec<(usize, f32)> {
            got.iter()
                .filter(|(t, ..)| t == tag)
                .map(|(_, s, v)| (*s, *v))
                .collect()
        };
        assert_eq!(steps(TRAIN_LOSS), [(10, 2.9), (20, 2.8), (30, 2.7)]);
        assert_eq!(steps(VAL_LOSS), [(20, 2.5)]);
        assert_eq!(steps(TOKENS_PER_S).len(), 3);
        // A resume from step 20: the file holds steps up to 20 once, then what follows.
        rewrite(&tb, &[row(10, None), row(20, Some(2.5))]).unwrap();
        append_row(&tb, &row(30, None)).unwrap();
        append_scalars(&tb, 30, &[(EVAL_LOSS, 2.25)]).unwrap();
        let again = read(&tb).unwrap();
        assert_eq!(again.len(), got.len() + 1);
        assert_eq!(&again[..got.len()], &got[..]);
        assert_eq!(again.last().unwrap(), &(EVAL_LOSS.to_string(), 30, 2.25));
        assert_eq!(std::fs::read_dir(&tb).unwrap().count(), 1, "one event file");
        // A damaged byte is found by the checksums.
        let (path, _) = existing(&tb).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 6] ^= 0x40;
        std::fs::write(&path, bytes).unwrap();
        assert!(read(&tb).is_err());
    }
}
