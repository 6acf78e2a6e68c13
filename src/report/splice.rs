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
//! around the blocks is left as it is.

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
    Ok(out)
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
    }
}
