//! Errors that point into the file: every error names the file, the line
//! and the column (1-based) of the setting at fault, and says what was
//! expected.

use std::fmt;
use std::ops::Range;

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}:{column}: {message}")]
pub struct ConfigError {
    /// The file (or other source) name shown to the operator.
    pub origin: String,
    /// 1-based line; 0 when the file could not be read at all.
    pub line: usize,
    /// 1-based column in characters; 0 when the file could not be read.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

/// Every problem found in one file, in file order. Never empty when
/// returned as an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    /// One error per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Collects errors as byte spans while a document is read; turned into
/// [`ConfigErrors`] with lines and columns at the end.
pub(crate) struct Diagnostics<'s> {
    /// The document, to turn byte offsets into lines and columns.
    src: &'s str,
    /// (byte offset, message), in the order found.
    found: Vec<(usize, String)>,
}

impl<'s> Diagnostics<'s> {
    pub(crate) fn new(src: &'s str) -> Self {
        Diagnostics {
            src,
            found: Vec::new(),
        }
    }

    /// Records a problem at the start of `span`.
    pub(crate) fn push(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.found.push((span.start, message.into()));
    }

    /// How many problems were recorded so far.
    pub(crate) fn len(&self) -> usize {
        self.found.len()
    }

    /// The 1-based line holding byte `offset`.
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        position(self.src, offset).0
    }

    /// `Ok` when nothing was recorded, otherwise every error in file order
    /// (errors at the same place keep the order they were found in).
    pub(crate) fn finish(mut self, origin: &str) -> Result<(), ConfigErrors> {
        if self.found.is_empty() {
            return Ok(());
        }
        self.found.sort_by_key(|(offset, _)| *offset);
        let errors = self
            .found
            .into_iter()
            .map(|(offset, message)| at(origin, self.src, offset, message))
            .collect();
        Err(ConfigErrors(errors))
    }
}

/// An error at byte `offset` of `src`.
pub(crate) fn at(origin: &str, src: &str, offset: usize, message: String) -> ConfigError {
    let (line, column) = position(src, offset);
    ConfigError {
        origin: origin.to_string(),
        line,
        column,
        message,
    }
}

/// 1-based (line, column) of byte `offset`; columns count characters.
fn position(src: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(src.len());
    while !src.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &src[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let src = "a = 1\nné = \"x\"\n";
        assert_eq!(position(src, 0), (1, 1));
        assert_eq!(position(src, 4), (1, 5));
        assert_eq!(position(src, 6), (2, 1));
        // "é" is two bytes but one column: the space after it is column 3.
        assert_eq!(position(src, 9), (2, 3));
        assert_eq!(position(src, src.len()), (3, 1));
    }

    #[test]
    fn display_is_one_error_per_line() {
        let errors = ConfigErrors(vec![
            at("f.toml", "x", 0, "first".into()),
            at("f.toml", "x\ny", 2, "second".into()),
        ]);
        assert_eq!(errors.to_string(), "f.toml:1:1: first\nf.toml:2:1: second");
    }
}
