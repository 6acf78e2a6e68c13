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
//!
//! [`read`] streams a file: it hands on each story in pieces of about [`PIECE_BYTES`] as the
//! file is read, and stops reading when its caller has enough, so that what it holds is what
//! was asked for, not the file ([`load`] collects every story).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use serde::de::{DeserializeSeed, Error as _, SeqAccess, Visitor};

use super::stories::END_OF_TEXT;

/// Bytes of a story handed on at once, at most where its text allows a cut ([`Piece`]).
pub const PIECE_BYTES: usize = 64 * 1024;

/// Bytes read from a text file at once.
const BLOCK_BYTES: usize = 64 * 1024;

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

/// Part of a file's stories, in order: each story comes as one or more `Text` pieces, then
/// `End`. A story is cut only right before a space that follows a non-space, where GPT-2's
/// pre-tokenizer (and the byte-level BPE's, which uses the same pattern) splits the text
/// anyway: encoding the pieces one by one gives the tokens of the whole story.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a str),
    End,
}

/// Reads every story in `path`.
pub fn load(path: impl AsRef<Path>) -> Result<Vec<String>, LoadError> {
    let (mut stories, mut current) = (Vec::new(), String::new());
    read(path, |piece| {
        match piece {
            Piece::Text(t) => current.push_str(t),
            Piece::End => stories.push(std::mem::take(&mut current)),
        }
        ControlFlow::Continue(())
    })?;
    Ok(stories)
}

/// Streams the stories of `path` to `each`, piece by piece, until the file ends or `each`
/// breaks; only then is a file without stories an error.
pub fn read(
    path: impl AsRef<Path>,
    each: impl FnMut(Piece) -> ControlFlow<()>,
) -> Result<(), LoadError> {
    read_in_pieces(path.as_ref(), (PIECE_BYTES, BLOCK_BYTES), each)
}

/// [`read`] with pieces of about `piece_bytes` and text read `block_bytes` at a time.
fn read_in_pieces(
    path: &Path,
    (piece_bytes, block_bytes): (usize, usize),
    mut each: impl FnMut(Piece) -> ControlFlow<()>,
) -> Result<(), LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let open = || File::open(path).map(BufReader::new).map_err(io);
    // The first character that is not whitespace (after a byte-order mark) tells the format
    // when the extension does not; none at all is an empty file.
    let (bom, first) = first_byte(open()?).map_err(io)?;
    let Some(first) = first else {
        if !bom {
            return Err(LoadError::Empty {
                path: path.to_path_buf(),
            });
        }
        return Err(LoadError::NoStories {
            path: path.to_path_buf(),
        });
    };
    let mut pieces = Pieces::new(&mut each, piece_bytes);
    let mut reader = open()?;
    if bom {
        reader.read_exact(&mut [0; 3]).map_err(io)?;
    }
    let offset = if bom { 3 } else { 0 };
    let flow = match detect(path, &char::from(first).to_string()) {
        Format::Text => read_text(reader, offset, block_bytes, &mut pieces),
        Format::JsonLines => read_json_lines(reader, offset, &mut pieces),
        Format::JsonArray => read_json_array(reader, &mut pieces),
    }
    .map_err(|e| e.at(path))?;
    if flow.is_continue() && pieces.stories == 0 {
        return Err(LoadError::NoStories {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Whether `reader` starts with a UTF-8 byte-order mark, and its first byte that is not ASCII
/// whitespace after it.
fn first_byte(mut reader: impl BufRead) -> std::io::Result<(bool, Option<u8>)> {
    let mut bom = false;
    let mut at_start = true;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok((bom, None));
        }
        if at_start && buf.len() >= 3 && buf.starts_with(b"\xEF\xBB\xBF") {
            bom = true;
            reader.consume(3);
            continue;
        }
        at_start = false;
        if let Some(&b) = buf.iter().find(|b| !b.is_ascii_whitespace()) {
            return Ok((bom, Some(b)));
        }
        let n = buf.len();
        reader.consume(n);
    }
}

/// A read error before its file's path is known.
enum ReadError {
    Io(std::io::Error),
    NotUtf8(usize),
    Json(usize, String),
}

impl ReadError {
    fn at(self, path: &Path) -> LoadError {
        let path = path.to_path_buf();
        match self {
            ReadError::Io(source) => LoadError::Io { path, source },
            ReadError::NotUtf8(offset) => LoadError::NotUtf8 { path, offset },
            ReadError::Json(line, message) => LoadError::Json {
                path,
                line,
                message,
            },
        }
    }
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// Cuts stories into [`Piece`]s as their text arrives, trimmed, empty ones dropped.
struct Pieces<'a, F> {
    each: &'a mut F,
    /// The current story's text not handed on yet (its leading whitespace dropped).
    text: String,
    /// Whether some of the current story has been handed on.
    started: bool,
    /// Cut once `text` is longer than this.
    cut_at: usize,
    piece_bytes: usize,
    /// Stories handed on.
    stories: usize,
}

impl<'a, F: FnMut(Piece) -> ControlFlow<()>> Pieces<'a, F> {
    fn new(each: &'a mut F, piece_bytes: usize) -> Self {
        Pieces {
            each,
            text: String::new(),
            started: false,
            cut_at: piece_bytes,
            piece_bytes,
            stories: 0,
        }
    }

    /// Adds text to the current story, handing on what can be cut.
    fn push(&mut self, s: &str) -> ControlFlow<()> {
        let s = if self.text.is_empty() && !self.started {
            s.trim_start()
        } else {
            s
        };
        self.text.push_str(s);
        if self.text.len() <= self.cut_at {
            return ControlFlow::Continue(());
        }
        match last_cut(&self.text) {
            Some(i) => {
                (self.each)(Piece::Text(&self.text[..i]))?;
                self.started = true;
                self.text.drain(..i);
                self.cut_at = self.piece_bytes;
            }
            // No cut point yet: look again once the text has doubled, not at every push.
            None => self.cut_at = 2 * self.text.len(),
        }
        ControlFlow::Continue(())
    }

    /// Ends the current story (dropped when it was only whitespace).
    fn end(&mut self) -> ControlFlow<()> {
        let rest = self.text.trim_end();
        let flow = if rest.is_empty() && !self.started {
            ControlFlow::Continue(())
        } else {
            self.stories += 1;
            if !rest.is_empty() {
                (self.each)(Piece::Text(rest))?;
            }
            (self.each)(Piece::End)
        };
        self.text.clear();
        self.started = false;
        self.cut_at = self.piece_bytes;
        flow
    }

    /// One whole story.
    fn story(&mut self, s: &str) -> ControlFlow<()> {
        // Pushed a piece at a time so that a long story is cut as a streamed one is.
        let mut rest = s;
        while rest.len() > self.piece_bytes {
            let mut at = self.piece_bytes;
            while !rest.is_char_boundary(at) {
                at += 1;
            }
            self.push(&rest[..at])?;
            rest = &rest[at..];
        }
        self.push(rest)?;
        self.end()
    }
}

/// The last place `text` can be cut without changing its tokens: a space after a non-space.
fn last_cut(text: &str) -> Option<usize> {
    text.rmatch_indices(' ').map(|(i, _)| i).find(|&i| {
        text[..i]
            .chars()
            .next_back()
            .is_some_and(|c| !c.is_whitespace())
    })
}

/// Stories separated by `<|endoftext|>` lines, read a block at a time ([`parse_text`]'s rules:
/// a `\r\n` line end read as `\n`).
fn read_text<F: FnMut(Piece) -> ControlFlow<()>>(
    mut reader: impl Read,
    mut offset: usize,
    block_bytes: usize,
    pieces: &mut Pieces<F>,
) -> Result<ControlFlow<()>, ReadError> {
    let mut lines = TextLines {
        line: String::new(),
        maybe_separator: true,
        held_cr: false,
    };
    // Room for a block and the bytes of a character the last one cut.
    let mut buf = vec![0u8; block_bytes.max(1) + 3];
    // Bytes of a character cut by the end of the last block, at the start of `buf`.
    let mut kept = 0;
    loop {
        let n = match reader.read(&mut buf[kept..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            if kept > 0 {
                return Err(ReadError::NotUtf8(offset));
            }
            return Ok(lines.finish(pieces));
        }
        let filled = kept + n;
        let (valid, invalid) = match std::str::from_utf8(&buf[..filled]) {
            Ok(s) => (s.len(), false),
            // A character cut by the block's end: its first bytes wait for the next block.
            Err(e) => (e.valid_up_to(), e.error_len().is_some()),
        };
        let text = std::str::from_utf8(&buf[..valid]).expect("checked above");
        // What comes before a bad byte is read first: a caller may have enough by then.
        if lines.add(text, pieces).is_break() {
            return Ok(ControlFlow::Break(()));
        }
        if invalid {
            return Err(ReadError::NotUtf8(offset + valid));
        }
        buf.copy_within(valid..filled, 0);
        kept = filled - valid;
        offset += valid;
    }
}

/// The lines of a text file as they arrive in blocks: a line that may still turn out to be a
/// separator is held until it ends; any other goes on into the story at once.
struct TextLines {
    line: String,
    maybe_separator: bool,
    /// A `\r` held back from the story until the next character says whether it ends a line.
    held_cr: bool,
}

impl TextLines {
    fn add<F: FnMut(Piece) -> ControlFlow<()>>(
        &mut self,
        text: &str,
        pieces: &mut Pieces<F>,
    ) -> ControlFlow<()> {
        for part in text.split_inclusive('\n') {
            let ends_line = part.ends_with('\n');
            if self.maybe_separator {
                self.line.push_str(part);
                if ends_line {
                    self.end_line(pieces)?;
                } else if !may_be_separator(&self.line) {
                    let line = std::mem::take(&mut self.line);
                    self.maybe_separator = false;
                    self.story_text(&line, pieces)?;
                }
            } else {
                self.story_text(part, pieces)?;
                self.maybe_separator = ends_line;
            }
        }
        ControlFlow::Continue(())
    }

    fn end_line<F: FnMut(Piece) -> ControlFlow<()>>(
        &mut self,
        pieces: &mut Pieces<F>,
    ) -> ControlFlow<()> {
        let line = std::mem::take(&mut self.line);
        if line.trim() == END_OF_TEXT {
            pieces.end()
        } else {
            self.story_text(&line, pieces)
        }
    }

    /// Story text, with `\r\n` read as `\n`.
    fn story_text<F: FnMut(Piece) -> ControlFlow<()>>(
        &mut self,
        s: &str,
        pieces: &mut Pieces<F>,
    ) -> ControlFlow<()> {
        if std::mem::take(&mut self.held_cr) && !s.starts_with('\n') {
            pieces.push("\r")?;
        }
        if let Some(head) = s.strip_suffix("\r\n") {
            pieces.push(head)?;
            pieces.push("\n")
        } else if let Some(head) = s.strip_suffix('\r') {
            self.held_cr = true;
            pieces.push(head)
        } else {
            pieces.push(s)
        }
    }

    fn finish<F: FnMut(Piece) -> ControlFlow<()>>(
        &mut self,
        pieces: &mut Pieces<F>,
    ) -> ControlFlow<()> {
        if !self.line.is_empty() {
            self.end_line(pieces)?;
        }
        if std::mem::take(&mut self.held_cr) {
            pieces.push("\r")?;
        }
        pieces.end()
    }
}

/// Whether a line read so far may still be an `<|endoftext|>` line.
fn may_be_separator(line: &str) -> bool {
    END_OF_TEXT.starts_with(line.trim())
}

/// One `{"text": …}` or `{"story": …}` object per line, read a line at a time.
fn read_json_lines<F: FnMut(Piece) -> ControlFlow<()>>(
    mut reader: impl BufRead,
    mut offset: usize,
    pieces: &mut Pieces<F>,
) -> Result<ControlFlow<()>, ReadError> {
    let mut bytes = Vec::new();
    for number in 1.. {
        bytes.clear();
        if reader.read_until(b'\n', &mut bytes)? == 0 {
            break;
        }
        let line = std::str::from_utf8(&bytes)
            .map_err(|e| ReadError::NotUtf8(offset + e.valid_up_to()))?;
        offset += bytes.len();
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| ReadError::Json(number, e.to_string()))?;
        match story_field(&v, &["text", "story"]) {
            Ok(Some(s)) => {
                if pieces.story(&s).is_break() {
                    return Ok(ControlFlow::Break(()));
                }
            }
            Ok(None) => {}
            Err(m) => return Err(ReadError::Json(number, m)),
        }
    }
    Ok(ControlFlow::Continue(()))
}

/// A JSON array of `{"story": …}` objects, read an element at a time.
fn read_json_array<F: FnMut(Piece) -> ControlFlow<()>>(
    reader: impl Read,
    pieces: &mut Pieces<F>,
) -> Result<ControlFlow<()>, ReadError> {
    let mut de = serde_json::Deserializer::from_reader(reader);
    let mut stopped = false;
    let read = ArrayStories {
        pieces,
        stopped: &mut stopped,
    }
    .deserialize(&mut de);
    if stopped {
        return Ok(ControlFlow::Break(()));
    }
    read.and_then(|()| de.end())
        .map_err(|e| ReadError::Json(e.line(), e.to_string()))?;
    Ok(ControlFlow::Continue(()))
}

/// Hands on the stories of a JSON array's elements as serde reads them.
struct ArrayStories<'p, 'a, F> {
    pieces: &'p mut Pieces<'a, F>,
    stopped: &'p mut bool,
}

impl<'de, F: FnMut(Piece) -> ControlFlow<()>> DeserializeSeed<'de> for ArrayStories<'_, '_, F> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(Piece) -> ControlFlow<()>> Visitor<'de> for ArrayStories<'_, '_, F> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of objects with a \"story\" field")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while let Some(v) = seq.next_element::<serde_json::Value>()? {
            match story_field(&v, &["story"]) {
                Ok(Some(s)) => {
                    if self.pieces.story(&s).is_break() {
                        *self.stopped = true;
                        return Err(A::Error::custom("stopped: enough stories"));
                    }
                }
                Ok(None) => {}
                Err(m) => return Err(A::Error::custom(format!("element {i}: {m}"))),
            }
            i += 1;
        }
        Ok(())
    }
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

#[cfg(test)]
mod tests;
