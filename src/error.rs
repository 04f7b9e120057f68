//! Where in numasim's input a problem is, attached one way to any error:
//! the file, and within it the line or the key. Errors of the library say
//! what was expected; their [`Location`] says where.

use std::fmt;
use std::path::{Path, PathBuf};

/// A place in an input: a file, a line in it (1-based), a key (`fleet[0].count`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    pub file: Option<PathBuf>,
    pub line: Option<u64>,
    pub key: Option<String>,
}

impl Location {
    pub fn is_empty(&self) -> bool {
        self.file.is_none() && self.line.is_none() && self.key.is_none()
    }
}

/// `FILE: line N: KEY: `, each part only when known; empty when none is.
impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}: ", file.display())?;
        }
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        Ok(())
    }
}

/// An error that can say where it is. The innermost place wins: a location
/// already set is not overwritten by an outer caller's.
pub trait Locate: Sized {
    fn location_mut(&mut self) -> &mut Location;

    fn in_file(mut self, file: &Path) -> Self {
        self.location_mut()
            .file
            .get_or_insert_with(|| file.to_path_buf());
        self
    }

    fn at_line(mut self, line: u64) -> Self {
        self.location_mut().line.get_or_insert(line);
        self
    }

    fn at_key(mut self, key: impl Into<String>) -> Self {
        self.location_mut().key.get_or_insert_with(|| key.into());
        self
    }
}

/// The same on a `Result`'s error.
pub trait ResultExt<T, E: Locate> {
    fn in_file(self, file: &Path) -> Result<T, E>;
    fn at_key(self, key: impl Into<String>) -> Result<T, E>;
}

impl<T, E: Locate> ResultExt<T, E> for Result<T, E> {
    fn in_file(self, file: &Path) -> Result<T, E> {
        self.map_err(|e| e.in_file(file))
    }
    fn at_key(self, key: impl Into<String>) -> Result<T, E> {
        self.map_err(|e| e.at_key(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_reads_file_line_key() {
        let at = Location {
            file: Some("s.toml".into()),
            line: Some(7),
            key: Some("fleet[0].count".into()),
        };
        assert_eq!(at.to_string(), "s.toml: line 7: fleet[0].count: ");
        assert_eq!(Location::default().to_string(), "");
    }
}
