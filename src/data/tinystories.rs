//! Reads stories from the formats TinyStories (Eldan & Li, arXiv 2305.07759) ships in:
//!
//! - text (`TinyStories-train.txt`, `TinyStoriesV2-GPT4-train.txt`): stories separated by
//!   lines holding only `<|endoftext|>`, with stray blank lines, CRLF line ends and curly
//!   quotes left as they are;
//! - a JSON array of objects with a `story` field (the `all_data` archive's `data*.json`);
//! - JSON lines, one object per line with a `text` or `story` field.
//!
//! The format is taken from the extension (`.txt`, `.json`, `.jsonl`/`.ndjson`), otherwise from
//! the first character. Each story is trimmed; empty ones are dropped.

use std::path::{Path, PathBuf};

use super::stories::END_OF_TEXT;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: cannot read")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: the file is empty")]
    Empty { path: PathBuf },
    #[error(
        "{path}: not UTF-8 text (invalid byte at offset {offset}); accepted: UTF-8 .txt, .json or .jsonl"
    )]
    NotUtf8 { path: PathBuf, offset: usize },
    #[error("{path}:{line}: {message}")]
    Json {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error(
        "{path}: no stories found; accepted: text with `<|endoftext|>` separator lines, a JSON array of \
         objects with a \"story\" field, or JSON lines with a \"text\" or \"story\" field"
    )]
    NoStories { path: PathBuf },
}

/// File formats the loader reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    JsonArray,
    JsonLines,
}

/// Reads every story in `path`.
pub fn load(path: impl AsRef<Path>) -> Result<Vec<String>, LoadError> {
    let path = path.as_ref();
    let p = || path.to_path_buf();
    let bytes = std::fs::read(path).map_err(|source| LoadError::Io { path: p(), source })?;
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(LoadError::Empty { path: p() });
    }
    let text = std::str::from_utf8(&bytes).map_err(|e| LoadError::NotUtf8 {
        path: p(),
        offset: e.valid_up_to(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let stories = match detect(path, text) {
        Format::Text => parse_text(text),
        Format::JsonArray => parse_json_array(text).map_err(|(line, message)| LoadError::Json {
            path: p(),
            line,
            message,
        })?,
        Format::JsonLines => parse_json_lines(text).map_err(|(line, message)| LoadError::Json {
            path: p(),
            line,
            message,
        })?,
    };
    if stories.is_empty() {
        return Err(LoadError::NoStories { path: p() });
    }
    Ok(stories)
}

pub fn detect(path: &Path, text: &str) -> Format {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("txt") => Format::Text,
        Some("json") => Format::JsonArray,
        Some("jsonl" | "ndjson") => Format::JsonLines,
        _ => match text.trim_start().chars().next() {
            Some('[') => Format::JsonArray,
            Some('{') => Format::JsonLines,
            _ => Format::Text,
        },
    }
}

/// Stories separated by `<|endoftext|>` lines.
pub fn parse_text(text: &str) -> Vec<String> {
    let mut stories = Vec::new();
    let mut current = String::new();
    let mut push = |s: &mut String| {
        let t = s.trim();
        if !t.is_empty() {
            stories.push(t.to_string());
        }
        s.clear();
    };
    for line in text.split_inclusive('\n') {
        if line.trim() == END_OF_TEXT {
            push(&mut current);
        } else {
            current.push_str(&line.replace("\r\n", "\n"));
        }
    }
    push(&mut current);
    stories
}

fn story_field(v: &serde_json::Value, fields: &[&str]) -> Result<Option<String>, String> {
    let obj = v
        .as_object()
        .ok_or_else(|| format!("expected an object, found {}", kind(v)))?;
    for f in fields {
        match obj.get(*f) {
            Some(serde_json::Value::String(s)) => {
                let t = s.trim();
                return Ok((!t.is_empty()).then(|| t.to_string()));
            }
            Some(other) => {
                return Err(format!(
                    "field \"{f}\" is {}, expected a string",
                    kind(other)
                ));
            }
            None => {}
        }
    }
    Err(format!(
        "no {} field",
        fields
            .iter()
            .map(|f| format!("\"{f}\""))
            .collect::<Vec<_>>()
            .join(" or ")
    ))
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// A JSON array of `{"story": …}` objects. Errors carry a line number.
fn parse_json_array(text: &str) -> Result<Vec<String>, (usize, String)> {
    let items: Vec<serde_json::Value> =
        serde_json::from_str(text).map_err(|e| (e.line(), e.to_string()))?;
    let mut out = Vec::new();
    for (i, v) in items.iter().enumerate() {
        if let Some(s) = story_field(v, &["story"]).map_err(|m| (1, format!("element {i}: {m}")))? {
            out.push(s);
        }
    }
    Ok(out)
}

/// One `{"text": …}` or `{"story": …}` object per line.
fn parse_json_lines(text: &str) -> Result<Vec<String>, (usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| (i + 1, e.to_string()))?;
        if let Some(s) = story_field(&v, &["text", "story"]).map_err(|m| (i + 1, m))? {
            out.push(s);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::data::Scratch;

    #[test]
    fn text_format_v1_and_v2_quirks() {
        let dir = Scratch::new("txt");
        // Leading blank lines, CRLF, curly quotes, blank lines after separators, empty story,
        // no trailing separator.
        let text = "\n\nOnce upon a time, Tom said, “Hi!”\r\nThe end.\r\n<|endoftext|>\r\n\n\
                    Lily’s cat slept.\n<|endoftext|>\n\n<|endoftext|>\n  Last story.  \n\n";
        let p = dir.write("v2.txt", text.as_bytes());
        assert_eq!(
            load(&p).unwrap(),
            vec![
                "Once upon a time, Tom said, “Hi!”\nThe end.",
                "Lily’s cat slept.",
                "Last story."
            ]
        );
    }

    #[test]
    fn json_array_with_story_field() {
        let dir = Scratch::new("json");
        let p = dir.write(
            "data00.json",
            br#"[{"story": " A dog ran. ", "instruction": {"words": ["dog"]}, "summary": "s", "source": "GPT-4"},
                {"story": ""}, {"story": "A cat sat."}]"#,
        );
        assert_eq!(load(&p).unwrap(), vec!["A dog ran.", "A cat sat."]);
        let bad = dir.write("bad.json", br#"[{"story": "ok"}, {"text": 3}]"#);
        let err = load(&bad).unwrap_err().to_string();
        assert!(
            err.contains("bad.json") && err.contains("element 1") && err.contains("\"story\""),
            "{err}"
        );
    }

    #[test]
    fn json_lines_with_text_or_story() {
        let dir = Scratch::new("jsonl");
        let p = dir.write(
            "s.jsonl",
            b"{\"text\": \"One.\"}\n\n{\"story\": \"Two.\", \"id\": 2}\n",
        );
        assert_eq!(load(&p).unwrap(), vec!["One.", "Two."]);
        // Sniffed without an extension.
        let q = dir.write("noext", b"{\"text\": \"Three.\"}\n");
        assert_eq!(load(&q).unwrap(), vec!["Three."]);
        let bad = dir.write("bad.jsonl", b"{\"text\": \"One.\"}\n{\"text\": \n");
        let err = load(&bad).unwrap_err().to_string();
        assert!(err.contains("bad.jsonl:2:"), "{err}");
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let dir = Scratch::new("bad");
        let missing = dir.0.join("missing.txt");
        let err = load(&missing).unwrap_err().to_string();
        assert!(
            err.contains("missing.txt") && err.contains("cannot read"),
            "{err}"
        );
        let empty = dir.write("empty.txt", b"  \n\n");
        assert!(
            load(&empty)
                .unwrap_err()
                .to_string()
                .contains("empty.txt: the file is empty")
        );
        let binary = dir.write("latin1.txt", b"Caf\xe9 story\n");
        let err = load(&binary).unwrap_err().to_string();
        assert!(
            err.contains("latin1.txt") && err.contains("offset 3"),
            "{err}"
        );
        let none = dir.write("none.txt", b"<|endoftext|>\n\n<|endoftext|>\n");
        assert!(
            load(&none)
                .unwrap_err()
                .to_string()
                .contains("none.txt: no stories found")
        );
    }

    /// The real samples in `../shared/data/tinystories/`, where this checkout has them (their
    /// README gives the story counts).
    #[test]
    fn shared_tinystories_samples_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/tinystories");
        if !dir.exists() {
            eprintln!("skipped: {} not present", dir.display());
            return;
        }
        for (file, count) in [
            ("train-v1-head.txt", 2316),
            ("train-v2gpt4-head.txt", 1727),
            ("valid-v1-first1000.txt", 1000),
        ] {
            let stories = load(dir.join(file)).unwrap();
            assert_eq!(stories.len(), count, "{file}");
            assert!(
                stories
                    .iter()
                    .all(|s| !s.contains(END_OF_TEXT) && s.trim() == s)
            );
        }
    }
}
