//! Configuration errors, formatted the way nginx formats them.

use std::fmt;

use super::ast::Span;

/// nginx's log levels, most severe first (the order `error_log` filters by).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Emerg,
    Alert,
    Crit,
    Error,
    Warn,
    Notice,
    Info,
    Debug,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Emerg => "emerg",
            Level::Alert => "alert",
            Level::Crit => "crit",
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Notice => "notice",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        Some(match s {
            "emerg" => Level::Emerg,
            "alert" => Level::Alert,
            "crit" => Level::Crit,
            "error" => Level::Error,
            "warn" => Level::Warn,
            "notice" => Level::Notice,
            "info" => Level::Info,
            "debug" => Level::Debug,
            _ => return None,
        })
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an error points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A place in a file: printed as ` in FILE:LINE`.
    At(Span),
    /// The `-g` flag: printed as ` in command line`.
    CommandLine,
    /// No place (e.g. a file that could not be opened at all): nothing printed after the message.
    Nowhere,
}

/// An error in a configuration: `MESSAGE in FILE:LINE`, plus optional help lines that nginx-rs adds
/// after the nginx-format line (never instead of it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfError {
    pub level: Level,
    pub message: String,
    pub origin: Origin,
    /// Extra lines such as `did you mean "proxy_pass"?`.
    pub hints: Vec<String>,
}

impl ConfError {
    pub fn emerg(message: impl Into<String>, span: &Span) -> ConfError {
        ConfError {
            level: Level::Emerg,
            message: message.into(),
            origin: Origin::At(span.clone()),
            hints: Vec::new(),
        }
    }

    pub fn nowhere(message: impl Into<String>) -> ConfError {
        ConfError {
            level: Level::Emerg,
            message: message.into(),
            origin: Origin::Nowhere,
            hints: Vec::new(),
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> ConfError {
        self.hints.push(hint.into());
        self
    }

    pub fn span(&self) -> Option<&Span> {
        match &self.origin {
            Origin::At(s) => Some(s),
            _ => None,
        }
    }
}

/// The nginx-format part only: `[emerg] MESSAGE in FILE:LINE` without the program prefix.
impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.level, self.message)?;
        match &self.origin {
            Origin::At(span) => write!(f, " in {}:{}", span.file, span.line),
            Origin::CommandLine => write!(f, " in command line"),
            Origin::Nowhere => Ok(()),
        }
    }
}

impl std::error::Error for ConfError {}
