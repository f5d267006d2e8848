//! nom parser and `include` expansion (owned by the conf work; stub until it lands).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::ast::{Directive, SourceFile};
use super::error::ConfError;

/// What parsing produced. On a syntax error nginx has already handled every directive before the
/// error, so the partial tree is kept: `plan` checks it first and reports `error` only if those
/// directives were all fine. An unfinished block appears with the directives read so far.
#[derive(Debug, Default)]
pub struct Parsed {
    pub directives: Vec<Directive>,
    /// Every file read, the main one first, then includes in the order they were read (for `-T`).
    pub files: Vec<SourceFile>,
    pub error: Option<ConfError>,
}

#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Relative `include` paths resolve against this (nginx's conf prefix: the directory of `-c`).
    pub conf_prefix: PathBuf,
}

/// Reads `path` and every file it includes.
pub fn load_file(_path: &Path, _opts: &LoadOptions) -> Parsed {
    Parsed::default()
}

/// Parses text already in memory, named `file` in spans (includes still read from disk).
pub fn parse_bytes(_text: &[u8], _file: Arc<str>, _opts: &LoadOptions) -> Parsed {
    Parsed::default()
}
