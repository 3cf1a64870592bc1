//! Problems in an input file (a workflow, an inventory), each with file, line and column
//! ([`Diagnostic`]), reported all at once ([`Diagnostics`]); and [`Source`], which turns byte
//! spans into lines and columns. Only positions live here: the messages are written where the
//! problem is found.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in an input file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", file.display())]
pub struct Diagnostic {
    /// The file.
    pub file: PathBuf,
    /// Line, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
    /// What is wrong, lowercase, without a trailing period.
    pub message: String,
}

/// Every problem found in a file, ordered by position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Sorts by line and column, keeping the order of problems found at the same place, and drops
    /// exact repeats.
    pub(crate) fn new(mut list: Vec<Diagnostic>) -> Self {
        list.sort_by_key(|d| (d.line, d.column));
        list.dedup();
        Diagnostics(list)
    }

    /// The problems.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    /// How many problems.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none (never true for a returned error).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// A file's path and text, for turning byte offsets into lines and columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    path: PathBuf,
    text: String,
}

impl Source {
    /// A file's path and the text read from it.
    pub fn new(path: &Path, text: &str) -> Self {
        Source { path: path.to_owned(), text: text.to_owned() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The line and column (both from 1, column in characters) of a byte offset.
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line = before.matches('\n').count() + 1;
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    /// A diagnostic at the start of `span`.
    pub fn at(&self, span: &Range<usize>, message: impl Into<String>) -> Diagnostic {
        let (line, column) = self.line_column(span.start);
        self.at_line(line, column, message)
    }

    /// A diagnostic at a line and column.
    pub fn at_line(&self, line: usize, column: usize, message: impl Into<String>) -> Diagnostic {
        Diagnostic { file: self.path.clone(), line, column, message: message.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines_and_character_columns() {
        let s = Source::new(Path::new("w.toml"), "a = 1\nb = \"é\"x\n");
        assert_eq!(s.line_column(0), (1, 1));
        assert_eq!(s.line_column(6), (2, 1));
        // `x` is after a two-byte character: column counts characters.
        assert_eq!(s.line_column(14), (2, 8));
        assert_eq!(s.line_column(1000), (3, 1));
        let d = s.at(&(6..7), "bad");
        assert_eq!(d.to_string(), "w.toml:2:1: bad");
    }
}
