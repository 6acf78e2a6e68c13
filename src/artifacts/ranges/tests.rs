use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::*;
use crate::artifacts::RunFolder;

/// Committed records: a tiny study's run and a converted run; a judge's report as `study`
/// writes one (none is committed).
fn samples() -> Vec<(PathBuf, &'static str, Value)> {
    let run = crate::files::source("docs/results-tiny/runs/mha_tiny-s1");
    let converted =
        crate::files::source("docs/results-tiny/convert/mha_rope_to_mla_rope_half_tiny-s1");
    let read = |dir: &Path, name: &'static str| {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        (
            dir.to_path_buf(),
            name,
            serde_json::from_str(&text).unwrap(),
        )
    };
    let judge = json!({"model": "m", "stories": 20,
        "grammar": {"mean": 7.5, "sd": 1.0}, "creativity": {"mean": 6.0, "sd": 1.5},
        "consistency": {"mean": 8.0, "sd": 0.5}});
    vec![
        read(&run, "summary.json"),
        read(&run, "eval.json"),
        read(&run, "probes.json"),
        read(&run, "samples.json"),
        read(&run, "bench.json"),
        read(&converted, "conversion.json"),
        read(&converted, "conversion_eval.json"),
        (run.clone(), "judge.json", judge),
    ]
}

/// Every numeric leaf of `value`, its path with `[]` for any array index.
fn leaves(value: &Value, path: String, out: &mut Vec<String>) {
    match value {
        Value::Number(_) => out.push(path),
        Value::Array(items) => {
            for item in items {
                leaves(item, format!("{path}[]"), out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                leaves(v, p, out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_number_of_every_record_has_a_range_and_the_records_hold_them() {
    for (_, file, value) in samples() {
        let mut found = vec![];
        leaves(&value, String::new(), &mut found);
        assert!(!found.is_empty(), "{file}");
        for path in found {
            assert!(
                range_of(file, &path).is_some(),
                "{file}: `{path}` has no range in FIELDS"
            );
        }
        check(file, &value).unwrap();
    }
}

/// Sets every value at `path` to `x`, making the leaf (and a `null` or absent object on the
/// way) where the record left it out.
fn set(value: &mut Value, path: &str, x: f64) {
    if path.is_empty() {
        *value = json!(x);
        return;
    }
    if let Some(rest) = path.strip_prefix("[]") {
        let rest = rest.strip_prefix('.').unwrap_or(rest);
        match value {
            Value::Array(items) if !items.is_empty() => {
                for item in items {
                    set(item, rest, x);
                }
            }
            // An empty or absent list gets one element.
            _ => {
                let mut one = if rest.is_empty() { json!(0) } else { json!({}) };
                set(&mut one, rest, x);
                *value = json!([one]);
            }
        }
        return;
    }
    let cut = path.find(['.', '[']).unwrap_or(path.len());
    let (head, rest) = (&path[..cut], &path[cut..]);
    let rest = rest.strip_prefix('.').unwrap_or(rest);
    if !value.is_object() {
        *value = json!({});
    }
    let slot = value
        .as_object_mut()
        .unwrap()
        .entry(head.to_string())
        .or_insert(Value::Null);
    if rest.is_empty() {
        *slot = json!(x);
    } else {
        if slot.is_null() && !rest.starts_with('[') {
            *slot = json!({});
        }
        set(slot, rest, x);
    }
}

#[test]
fn a_value_outside_its_range_is_refused_naming_the_file_and_the_field() {
    let scratch = crate::data::Scratch::new("ranges");
    let folder = RunFolder::new(&scratch.0);
    let samples = samples();
    for (file, path, range) in FIELDS.iter().filter(|(f, ..)| *f != "metrics.csv") {
        let (_, _, sample) = samples.iter().find(|(_, f, _)| f == file).unwrap();
        let mut bad = sample.clone();
        set(&mut bad, path, range.outside());
        let written = scratch.0.join(file);
        std::fs::write(&written, bad.to_string()).unwrap();
        let err = folder.check_record(&written);
        let err = format!(
            "{:#}",
            err.expect_err(&format!("{file}: {path} at {}", range.outside()))
                .why
        );
        let field = path.rsplit(['.', ']']).next().unwrap();
        assert!(
            err.contains(*file) && err.contains(field) && err.contains("accepted"),
            "{file} `{path}`: {err}"
        );
        std::fs::remove_file(&written).unwrap();
    }
    // metrics.csv: each column of a row.
    let run = crate::files::source("docs/results-tiny/runs/mha_tiny-s1");
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    for (i, column) in header.iter().enumerate() {
        let range = range_of("metrics.csv", column).expect("every column has a range");
        let mut lines: Vec<String> = csv.lines().map(String::from).collect();
        let mut row: Vec<String> = lines[3].split(',').map(String::from).collect();
        row[i] = if *column == "step" {
            "0".into()
        } else {
            range.outside().to_string()
        };
        if *column == "step" {
            // A step of 0 first, so that the steps still rise.
            lines.remove(3);
            lines.insert(1, row.join(","));
        } else {
            lines[3] = row.join(",");
        }
        let written = folder.metrics();
        std::fs::write(&written, lines.join("\n") + "\n").unwrap();
        let err = format!("{:#}", folder.check_record(&written).unwrap_err().why);
        assert!(
            err.contains("metrics.csv") && err.contains(column) && err.contains("accepted"),
            "{column}: {err}"
        );
        // NaN, which parses as a number, is refused too.
        if *column != "step" {
            row[i] = "NaN".into();
            lines[3] = row.join(",");
            std::fs::write(&written, lines.join("\n") + "\n").unwrap();
            assert!(folder.check_record(&written).is_err(), "{column}: NaN");
        }
    }
}

#[test]
fn ranges_hold_their_edges() {
    assert!(Range::Share.holds(0.0) && Range::Share.holds(1.0) && !Range::Share.holds(1.01));
    assert!(Range::Grade.holds(1.0) && Range::Grade.holds(10.0) && !Range::Grade.holds(0.9));
    assert!(!Range::AtLeastOne.holds(0.0) && !Range::AtLeastOne.holds(1.5));
    assert!(Range::Loss.holds(0.0) && !Range::Loss.holds(-1e-9) && !Range::Loss.holds(f64::NAN));
    assert!(!Range::Positive.holds(0.0) && !Range::Positive.holds(f64::INFINITY));
    for (.., range) in FIELDS {
        assert!(!range.holds(range.outside()), "{range:?}");
    }
}
