//! The corpus on disk: stories written in the TinyStories text format with their metadata,
//! after a check that the count fits in memory, and what was written.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::{END_OF_TEXT, generate_shown, split_sentences};

/// Writes stories in the TinyStories text format: each story, then a line holding only
/// `<|endoftext|>`.
pub fn write_text<'a>(
    mut w: impl std::io::Write,
    texts: impl IntoIterator<Item = &'a str>,
) -> std::io::Result<()> {
    for text in texts {
        writeln!(w, "{text}")?;
        writeln!(w, "{END_OF_TEXT}")?;
    }
    w.flush()
}

/// Memory a generated story takes while a corpus is held whole (its text, metadata and place in
/// the list), a generous round figure: 100,000 stories peaked at 105 MB (`data stories`,
/// maximum resident set) and the token cache holds each story's text once more.
pub const STORY_BYTES: u64 = 2_000;

/// Whether `count` stories can be generated here: at least one, and their memory
/// ([`STORY_BYTES`] each) within what the machine has free (`available`, bytes; `None` where it
/// cannot be told). The error says what is accepted, and what the count would take.
pub fn check_count(count: usize, available: Option<u64>) -> Result<(), String> {
    if count == 0 {
        return Err("a positive number of stories".into());
    }
    let need = (count as u64).saturating_mul(STORY_BYTES);
    match available {
        Some(free) if need > free => Err(format!(
            "at most {} stories ({count} would take about {} of memory while they are \
             generated, and this machine has {} free)",
            free / STORY_BYTES,
            gib(need),
            gib(free),
        )),
        _ => Ok(()),
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// `mla-lab data stories`: `count` stories from `seed` into `out` (the TinyStories text format)
/// and their metadata into `meta` (JSON lines), each file written whole; returns the corpus's
/// statistics. Refused before anything is generated: a count [`check_count`] refuses, and
/// `out` and `meta` naming one file (by their canonical paths where they exist).
pub fn write_files(count: usize, seed: u64, out: &Path, meta: &Path) -> Result<CorpusStats> {
    use crate::options::InvalidOption;
    if let Err(why) = check_count(count, crate::backend::available_memory()) {
        return Err(InvalidOption::new("count", count, why).into());
    }
    if same_file(out, meta) {
        let accepted = format!(
            "a file other than the stories' ({}), which the metadata would replace",
            out.display()
        );
        return Err(InvalidOption::new("meta", meta.display(), accepted).into());
    }
    let stories = generate_shown(count, seed);
    for p in [out, meta] {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("{}: cannot create", dir.display()))?;
        }
    }
    let create = |tmp: &Path| {
        std::fs::File::create(tmp)
            .map(std::io::BufWriter::new)
            .with_context(|| format!("{}: cannot create", tmp.display()))
    };
    crate::files::write_with(out, |tmp| {
        Ok(write_text(
            create(tmp)?,
            stories.iter().map(|s| s.text.as_str()),
        )?)
    })?;
    crate::files::write_with(meta, |tmp| {
        let mut w = create(tmp)?;
        for s in &stories {
            serde_json::to_writer(&mut w, &s.meta)?;
            writeln!(w)?;
        }
        Ok(w.flush()?)
    })?;
    Ok(CorpusStats::of(stories.iter().map(|s| s.text.as_str())))
}

/// Whether two paths name one file: equal once resolved as the system will resolve them when
/// the files are written ([`resolved`]), or the same existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    resolved(a) == resolved(b)
}

/// `p` as an absolute path with its links and `..` resolved: its longest part that exists,
/// canonical (links followed), then the rest taken lexically, `..` dropping the folder before
/// it, as the system will once the folders that do not exist yet are made (`data/nox/../k.txt`
/// is `data/k.txt`).
fn resolved(p: &Path) -> std::path::PathBuf {
    use std::path::Component;
    let absolute = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut out = std::path::PathBuf::new();
    let mut exists = true;
    for c in absolute.components() {
        if exists {
            match out.join(c).canonicalize() {
                Ok(real) => {
                    out = real;
                    continue;
                }
                Err(_) => exists = false,
            }
        }
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// How varied a corpus is.
#[derive(Debug, Clone, Serialize)]
pub struct CorpusStats {
    pub stories: usize,
    pub distinct_stories: usize,
    pub sentences: usize,
    pub distinct_sentences: usize,
    pub words: usize,
    pub distinct_words: usize,
    /// Entropy of the word unigram distribution, bits per word.
    pub unigram_entropy_bits: f64,
}

/// One line: counts, distinct counts and the word entropy.
impl std::fmt::Display for CorpusStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} stories ({} distinct), {} sentences ({} distinct), {} words ({} distinct), \
             unigram entropy {:.3} bits/word",
            self.stories,
            self.distinct_stories,
            self.sentences,
            self.distinct_sentences,
            self.words,
            self.distinct_words,
            self.unigram_entropy_bits
        )
    }
}

impl CorpusStats {
    pub fn of<'a>(texts: impl IntoIterator<Item = &'a str>) -> CorpusStats {
        let mut stories = 0;
        let mut distinct_stories = HashSet::new();
        let mut sentences = 0;
        let mut distinct_sentences = HashSet::new();
        let mut words: HashMap<String, usize> = HashMap::new();
        let mut total_words = 0;
        for text in texts {
            stories += 1;
            distinct_stories.insert(text);
            for s in split_sentences(text) {
                sentences += 1;
                distinct_sentences.insert(s);
            }
            for w in text.split_whitespace() {
                let w: String = w
                    .chars()
                    .filter(|c| c.is_alphanumeric() || *c == '\'')
                    .collect();
                if !w.is_empty() {
                    *words.entry(w.to_lowercase()).or_default() += 1;
                    total_words += 1;
                }
            }
        }
        let n = total_words as f64;
        let entropy = words
            .values()
            .map(|&c| c as f64 / n)
            .map(|p| -p * p.log2())
            .sum();
        CorpusStats {
            stories,
            distinct_stories: distinct_stories.len(),
            sentences,
            distinct_sentences: distinct_sentences.len(),
            words: total_words,
            distinct_words: words.len(),
            unigram_entropy_bits: entropy,
        }
    }
}
