//! `mla-lab report --splice FILE`: a document carries the report's numbers between markers, so
//! that no figure in it is copied by hand. A block
//!
//! ```text
//! <!-- report: verdicts -->
//! (anything: replaced)
//! <!-- /report -->
//! ```
//!
//! is replaced by the report's section of that name ([`super::pages::sections`]); the text
//! around the blocks is left as it is, its line endings (`\r\n` stays `\r\n`) too. A marker
//! line that is almost one (`<!-- report:verdicts -->`, a `<!-- /report` cut short), a block
//! whose section these runs leave empty (no converted runs for `conversion`), and a name no
//! section has are refused, naming the file and the line: the document is not written.

use anyhow::{Result, bail};

const OPEN: &str = "<!-- report: ";
const CLOSE: &str = "<!-- /report -->";

/// `text` with every marked block replaced by its section; `file` names the document in errors.
pub fn splice(file: &str, text: &str, sections: &[(&str, String)]) -> Result<String> {
    let mut out = String::new();
    let mut lines = text.lines().enumerate();
    let mut blocks = 0;
    while let Some((i, line)) = lines.next() {
        out += line;
        out += "\n";
        let Some(name) = line
            .trim()
            .strip_prefix(OPEN)
            .and_then(|r| r.strip_suffix(" -->"))
        else {
            if line.trim() == CLOSE {
                bail!(
                    "{file}:{}: {CLOSE} without a {OPEN}NAME --> above it",
                    i + 1
                );
            }
            if malformed(line) {
                bail!(
                    "{file}:{}: {:?} is not a marker; accepted: {OPEN}NAME --> and {CLOSE}, each \
                     alone on its line",
                    i + 1,
                    line.trim()
                );
            }
            continue;
        };
        let Some((_, body)) = sections.iter().find(|(n, _)| *n == name) else {
            let known: Vec<&str> = sections.iter().map(|(n, _)| *n).collect();
            bail!(
                "{file}:{}: no report section {name:?} (accepted: {})",
                i + 1,
                known.join(", ")
            );
        };
        if body.trim().is_empty() {
            bail!(
                "{file}:{}: the report section {name:?} is empty for these runs (e.g. no converted \
                 runs); accepted: runs that fill it, or a document without that block",
                i + 1
            );
        }
        if !lines.any(|(_, l)| l.trim() == CLOSE) {
            bail!(
                "{file}:{}: the block {name:?} has no {CLOSE} below it",
                i + 1
            );
        }
        out += body;
        if !body.ends_with('\n') {
            out += "\n";
        }
        out += CLOSE;
        out += "\n";
        blocks += 1;
    }
    if blocks == 0 {
        bail!("{file}: no {OPEN}NAME --> block to fill");
    }
    if !text.ends_with('\n') {
        out.pop();
    }
    // The document's own line endings.
    if text.contains("\r\n") {
        out = out.replace("\r\n", "\n").replace('\n', "\r\n");
    }
    Ok(out)
}

/// A line meant as a marker that is not one: it begins like one, but is not exactly one.
fn malformed(line: &str) -> bool {
    let t = line.trim();
    let squashed: String = t.chars().filter(|c| !c.is_whitespace()).collect();
    (squashed.starts_with("<!--report") || squashed.starts_with("<!--/report")) && t != CLOSE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sections() -> Vec<(&'static str, String)> {
        vec![("a", "| x |\n".into()), ("b", "- y".into())]
    }

    #[test]
    fn blocks_are_replaced_and_the_text_around_them_kept() {
        let text = "intro\n<!-- report: a -->\nold 1.23\n<!-- /report -->\nmid\n<!-- report: b -->\n<!-- /report -->\nend\n";
        let out = splice("doc.md", text, &sections()).unwrap();
        assert_eq!(
            out,
            "intro\n<!-- report: a -->\n| x |\n<!-- /report -->\nmid\n<!-- report: b -->\n- y\n<!-- /report -->\nend\n"
        );
        // Splicing again changes nothing.
        assert_eq!(splice("doc.md", &out, &sections()).unwrap(), out);
    }

    #[test]
    fn a_bad_block_is_refused_naming_the_file_and_line() {
        let err = |t: &str| splice("doc.md", t, &sections()).unwrap_err().to_string();
        let e = err("x\n<!-- report: c -->\n<!-- /report -->\n");
        assert!(
            e.contains("doc.md:2") && e.contains("\"c\"") && e.contains("a, b"),
            "{e}"
        );
        let e = err("<!-- report: a -->\nold\n");
        assert!(
            e.contains("doc.md:1") && e.contains("no <!-- /report -->"),
            "{e}"
        );
        let e = err("<!-- /report -->\n");
        assert!(e.contains("doc.md:1"), "{e}");
        let e = err("no markers\n");
        assert!(e.contains("no <!-- report: NAME --> block"), "{e}");
        for bad in [
            "<!-- report:a -->",
            "<!--report: a -->",
            "<!-- /report",
            "<!-- report: a",
        ] {
            let e = err(&format!("x\n{bad}\n<!-- report: b -->\n<!-- /report -->\n"));
            assert!(
                e.contains("doc.md:2") && e.contains("not a marker"),
                "{bad}: {e}"
            );
        }
        let empty = vec![("a", "\n".to_string())];
        let e = splice(
            "doc.md",
            "<!-- report: a -->\nold\n<!-- /report -->\n",
            &empty,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("doc.md:1") && e.contains("empty"), "{e}");
    }

    #[test]
    fn a_document_with_crlf_line_endings_keeps_them() {
        let text = "intro\r\n<!-- report: b -->\r\nold\r\n<!-- /report -->\r\nend\r\n";
        let out = splice("doc.md", text, &sections()).unwrap();
        assert_eq!(
            out,
            "intro\r\n<!-- report: b -->\r\n- y\r\n<!-- /report -->\r\nend\r\n"
        );
    }
}
