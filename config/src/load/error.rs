//! Configuration errors as users see them: `file:line:column: error: path: message`.
//!
//! Invariants:
//! - Line and column are 1-based; the column counts characters, not bytes, so that it
//!   matches what an editor shows for non-ASCII lines.
//! - [`ConfigErrors`] is never empty and keeps its errors sorted by position, so the
//!   rendering is stable and reads top to bottom like the file.

use std::fmt;
use std::ops::Range;

/// Exit status of a binary whose configuration is invalid: `EX_CONFIG` from BSD
/// `sysexits.h`, so that service managers and scripts can tell "fix the file" apart from
/// a crash (1) or a usage error (64).
pub const EXIT_CONFIG_INVALID: i32 = 78;

/// A 1-based position in a configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// Converts a byte offset into `src` to a line and character column. Offsets past the
    /// end (or inside a UTF-8 sequence) are clamped rather than trusted, because spans
    /// come from a parser that may have recovered from broken input.
    pub fn from_offset(src: &str, offset: usize) -> Location {
        let mut offset = offset.min(src.len());
        while !src.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &src[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Location {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    /// The file as the user named it.
    pub file: String,
    /// `None` when the problem concerns the whole file (it cannot be read).
    pub location: Option<Location>,
    /// Dotted key path such as `check[2].interval`; empty for file-level problems.
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub(crate) fn at(
        file: &str,
        src: &str,
        span: &Range<usize>,
        path: &str,
        message: String,
    ) -> Self {
        ConfigError {
            file: file.to_string(),
            location: Some(Location::from_offset(src, span.start)),
            path: path.to_string(),
            message,
        }
    }

    pub(crate) fn whole_file(file: &str, message: String) -> Self {
        ConfigError {
            file: file.to_string(),
            location: None,
            path: String::new(),
            message,
        }
    }

    fn render(&self) -> String {
        let mut out = self.file.clone();
        if let Some(loc) = self.location {
            out.push_str(&format!(":{}:{}", loc.line, loc.column));
        }
        out.push_str(": error: ");
        if !self.path.is_empty() {
            out.push_str(&self.path);
            out.push_str(": ");
        }
        out.push_str(&self.message);
        out
    }
}

/// Every problem found in one file. Loading never stops at the first problem: fixing a
/// file one error per run is what makes strict configuration painful.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    errors: Vec<ConfigError>,
}

impl ConfigErrors {
    /// Sorts by position and drops exact duplicates; `None` when there is nothing to report.
    pub(crate) fn from_vec(mut errors: Vec<ConfigError>) -> Option<Self> {
        if errors.is_empty() {
            return None;
        }
        errors.sort_by_key(|e| e.location);
        errors.dedup();
        Some(ConfigErrors { errors })
    }

    pub(crate) fn single(error: ConfigError) -> Self {
        ConfigErrors {
            errors: vec![error],
        }
    }

    pub fn errors(&self) -> &[ConfigError] {
        &self.errors
    }

    /// The rendered errors, one string per error, in file order.
    pub fn messages(&self) -> Vec<String> {
        self.errors.iter().map(ToString::to_string).collect()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_one_based_and_count_characters() {
        let src = "a = 1\nbé = \"x\"\n";
        assert_eq!(
            Location::from_offset(src, 0),
            Location { line: 1, column: 1 }
        );
        // byte 6 is 'b', byte 9 is the space after 'é' (2 bytes)
        assert_eq!(
            Location::from_offset(src, 9),
            Location { line: 2, column: 3 }
        );
        // inside the 'é' sequence: clamped back to its start
        assert_eq!(
            Location::from_offset(src, 8),
            Location { line: 2, column: 2 }
        );
        assert_eq!(
            Location::from_offset(src, 999),
            Location { line: 3, column: 1 }
        );
    }

    #[test]
    fn errors_render_sorted_one_per_line() {
        let src = "a\nb\n";
        let e2 = ConfigError::at("x.toml", src, &(2..3), "b", "second".into());
        let e1 = ConfigError::at("x.toml", src, &(0..1), "", "first".into());
        let all = ConfigErrors::from_vec(vec![e2, e1]).expect("two errors");
        assert_eq!(
            all.to_string(),
            "x.toml:1:1: error: first\nx.toml:2:1: error: b: second"
        );
    }
}
