//! A Markdown table: what `info`, `bench` and `report` print their rows as.

/// A Markdown table: the first `left` columns (and any named in [`Table::left_aligned`]) are
/// left-aligned, the others right-aligned.
pub struct Table {
    pub head: Vec<String>,
    pub left: usize,
    pub rows: Vec<Vec<String>>,
    also_left: Vec<usize>,
}

impl Table {
    pub fn new(head: &[&str], left: usize) -> Table {
        Table {
            head: head.iter().map(|h| h.to_string()).collect(),
            left,
            rows: vec![],
            also_left: vec![],
        }
    }

    /// The same table with column `col` left-aligned too (a word among numbers).
    pub fn left_aligned(mut self, col: usize) -> Table {
        self.also_left.push(col);
        self
    }

    pub fn render(&self) -> String {
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        let align: Vec<&str> = (0..self.head.len())
            .map(|i| {
                if i < self.left || self.also_left.contains(&i) {
                    "---"
                } else {
                    "---:"
                }
            })
            .collect();
        let mut s = line(&self.head);
        s += &format!("|{}|\n", align.join("|"));
        for row in &self.rows {
            s += &line(row);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_aligns_words_left_and_numbers_right() {
        let mut t = Table::new(&["name", "n", "kind", "x"], 1).left_aligned(2);
        t.rows
            .push(vec!["a".into(), "1".into(), "b".into(), "2.5".into()]);
        assert_eq!(
            t.render(),
            "| name | n | kind | x |\n|---|---:|---|---:|\n| a | 1 | b | 2.5 |\n"
        );
    }
}
