//! Tests of [`super`]: the formats, and the streamed reader against the whole-file parser.

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

/// Reads `path` in pieces of `piece` bytes and blocks of `block`: the stories, and whether
/// every piece after a story's first starts at a space after a non-space.
fn pieces_of(path: &Path, piece: usize, block: usize) -> (Vec<String>, bool) {
    let (mut stories, mut current, mut cut_right) = (vec![], String::new(), true);
    read_in_pieces(path, (piece, block), |p| {
        match p {
            Piece::Text(t) => {
                if !current.is_empty() {
                    let after = current
                        .chars()
                        .next_back()
                        .is_some_and(|c| !c.is_whitespace());
                    cut_right &= after && t.starts_with(' ');
                }
                current.push_str(t)
            }
            Piece::End => stories.push(std::mem::take(&mut current)),
        }
        ControlFlow::Continue(())
    })
    .unwrap();
    (stories, cut_right)
}

#[test]
fn streamed_in_small_blocks_and_pieces_the_stories_are_the_whole_text_parsers() {
    let dir = Scratch::new("stream");
    let text = "\n\nOnce upon a time,  Tom said, “Hi!”\r\nThe end.\r\n<|endoftext|>\r\n\n\
                Lily’s cat\rslept   well.\n  <|endoftext|>  \n\n<|endoftext|>\n\
                <|endoftext|> is no separator here\n<|end\n  Last  story ends.  \r";
    let p = dir.write("s.txt", format!("\u{feff}{text}").as_bytes());
    let want = parse_text(text);
    assert_eq!(want.len(), 3, "{want:?}");
    for block in [1, 2, 3, 7, 64, BLOCK_BYTES] {
        for piece in [1, 5, PIECE_BYTES] {
            let (stories, cut_right) = pieces_of(&p, piece, block);
            assert_eq!(stories, want, "block {block}, piece {piece}");
            assert!(cut_right, "block {block}, piece {piece}");
        }
    }
    // A story longer than a piece is handed on in pieces, in JSON as in text.
    let long = "A dog ran far. ".repeat(10_000);
    let q = dir.write("long.jsonl", format!("{{\"text\": {long:?}}}\n").as_bytes());
    let (stories, cut_right) = pieces_of(&q, 1000, BLOCK_BYTES);
    assert_eq!(stories, vec![long.trim()]);
    assert!(cut_right);
}

#[test]
fn a_story_encoded_piece_by_piece_has_the_tokens_of_the_whole() {
    use crate::data::tokenizer::Tokenizer;
    let dir = Scratch::new("pieces");
    let story = "Once upon a time,  there was a   dog named \"Rex\".\n\nHe said: 'I'm 3 years \
                 old!'  The end. \t ok... 12 345 it's\u{a0}odd  “quotes”   here";
    let p = dir.write("s.txt", story.as_bytes());
    let bpe = Tokenizer::train_bpe(std::iter::once(story), 300).unwrap();
    for tk in [Tokenizer::gpt2().unwrap(), bpe] {
        let whole = tk.encode(story).unwrap();
        for piece in [1, 4, 16] {
            let mut ids = vec![];
            read_in_pieces(&p, (piece, 7), |p| {
                if let Piece::Text(t) = p {
                    ids.extend(tk.encode(t).unwrap());
                }
                ControlFlow::Continue(())
            })
            .unwrap();
            assert_eq!(ids, whole, "{} in pieces of {piece}", tk.name());
        }
    }
}

#[test]
fn reading_stops_when_the_caller_has_enough_before_a_bad_tail() {
    let dir = Scratch::new("stop");
    let head = "One.\n<|endoftext|>\nTwo.\n<|endoftext|>\n";
    let files = [
        dir.write("a.txt", &[head.as_bytes(), b"Caf\xe9\n"].concat()),
        dir.write(
            "a.jsonl",
            b"{\"text\": \"One.\"}\n{\"story\": \"Two.\"}\n{\"text\": \n",
        ),
        dir.write(
            "a.json",
            b"[{\"story\": \"One.\"}, {\"story\": \"Two.\"}, {\"text\": 3}]",
        ),
    ];
    for f in &files {
        assert!(load(f).is_err(), "{}", f.display());
        let mut ends = 0;
        read(f, |p| {
            ends += usize::from(p == Piece::End);
            if ends == 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
        assert_eq!(ends, 2, "{}", f.display());
    }
    let err = load(&files[0]).unwrap_err().to_string();
    assert!(err.contains(&format!("offset {}", head.len() + 3)), "{err}");
}

/// The real samples in `../shared/data/tinystories/`, where this checkout has them (their
/// README gives the story counts).
#[test]
fn shared_tinystories_samples_load() {
    let dir = crate::files::source("../shared/data/tinystories");
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
        // Streamed, as the whole text is parsed.
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        assert!(stories == parse_text(text), "{file}");
        assert!(
            stories
                .iter()
                .all(|s| !s.contains(END_OF_TEXT) && s.trim() == s)
        );
    }
    // Encoded in small pieces, real stories give the tokens they give whole.
    let gpt2 = crate::data::tokenizer::Tokenizer::gpt2().unwrap();
    let path = dir.join("valid-v1-first1000.txt");
    let mut whole = vec![];
    for s in load(&path).unwrap() {
        whole.extend(gpt2.encode(&s).unwrap());
        whole.push(gpt2.eot());
    }
    let mut pieces = vec![];
    read_in_pieces(&path, (40, 1000), |p| {
        match p {
            Piece::Text(t) => pieces.extend(gpt2.encode(t).unwrap()),
            Piece::End => pieces.push(gpt2.eot()),
        }
        ControlFlow::Continue(())
    })
    .unwrap();
    assert!(pieces == whole);
}
