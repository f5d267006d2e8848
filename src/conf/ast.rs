//! The raw form of a configuration: what the text says, before any meaning is given to it.

use std::fmt;
use std::sync::Arc;

/// Where something was written: file, 1-based line and column.
///
/// `line` follows nginx: for a directive it is the line of the token that ended it (its `;` or `{`),
/// because that is the line nginx names in every message about the directive.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Span {
    pub file: Arc<str>,
    pub line: u32,
    pub col: u32,
}

impl Span {
    pub fn new(file: Arc<str>, line: u32, col: u32) -> Span {
        Span { file, line, col }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// How an argument was written. nginx treats the three alike except where a handler asks
/// (e.g. `if` conditions, `map` keys), so the parser keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quote {
    Bare,
    Single,
    Double,
}

/// One word of a directive, escapes already decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arg {
    pub value: String,
    pub quote: Quote,
    /// Start of the word (for the caret line under an error).
    pub span: Span,
}

/// `name arg1 arg2 ... ;` or `name args... { block }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directive {
    pub name: String,
    pub args: Vec<Arg>,
    /// `Some` when the directive opened a block with `{`.
    pub block: Option<Vec<Directive>>,
    /// Line of the terminating `;` or `{` (nginx's line); column of the directive name.
    pub span: Span,
}

impl Directive {
    pub fn arg(&self, i: usize) -> Option<&str> {
        self.args.get(i).map(|a| a.value.as_str())
    }
}

/// One file that was read, kept for `-T` and for caret lines under errors.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub path: Arc<str>,
    pub text: Arc<[u8]>,
}
