//! The raw form of a configuration: what the text says, before any meaning is given to it.

use std::fmt;
use std::sync::Arc;

pub use super::text::Text;

/// The name of a configuration file, interned: a 4-byte handle that reads as the `&str` it names.
///
/// Spans are the most numerous thing in a tree and a Plan (every directive, argument, location and
/// rewrite step has one), so they hold this instead of a pointer to the name. Names live in one
/// process-wide table, deduplicated and never freed: it grows only with the number of distinct
/// file names ever read (the same files on every reload add nothing).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileName(u32);

/// The interned names: index = handle; the map finds an existing handle.
struct Names {
    by_id: Vec<&'static str>,
    ids: std::collections::HashMap<&'static str, u32>,
}

fn names() -> &'static std::sync::RwLock<Names> {
    static NAMES: std::sync::OnceLock<std::sync::RwLock<Names>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        std::sync::RwLock::new(Names {
            by_id: Vec::new(),
            ids: std::collections::HashMap::new(),
        })
    })
}

impl FileName {
    /// The handle of `name`, interning it on first use.
    pub fn new(name: &str) -> FileName {
        // A poisoned lock only means another thread panicked mid-insert; the table is still
        // consistent (an insert is two pushes that cannot fail halfway in a way we read).
        if let Some(&id) = names()
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .ids
            .get(name)
        {
            return FileName(id);
        }
        let mut t = names().write().unwrap_or_else(|e| e.into_inner());
        if let Some(&id) = t.ids.get(name) {
            return FileName(id);
        }
        let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
        let id = u32::try_from(t.by_id.len()).unwrap_or(u32::MAX);
        t.by_id.push(leaked);
        t.ids.insert(leaked, id);
        FileName(id)
    }

    pub fn as_str(&self) -> &'static str {
        names()
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_id
            .get(self.0 as usize)
            .copied()
            .unwrap_or("?")
    }
}

impl std::ops::Deref for FileName {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for FileName {
    fn from(s: &str) -> FileName {
        FileName::new(s)
    }
}

impl From<&Arc<str>> for FileName {
    fn from(s: &Arc<str>) -> FileName {
        FileName::new(s)
    }
}

impl From<Arc<str>> for FileName {
    fn from(s: Arc<str>) -> FileName {
        FileName::new(&s)
    }
}

impl From<String> for FileName {
    fn from(s: String) -> FileName {
        FileName::new(&s)
    }
}

impl PartialEq<str> for FileName {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for FileName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Where something was written: file, 1-based line and column (12 bytes; cloning is a copy).
///
/// `line` follows nginx: for a directive it is the line of the token that ended it (its `;` or `{`),
/// because that is the line nginx names in every message about the directive.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Span {
    pub file: FileName,
    pub line: u32,
    pub col: u32,
}

impl Span {
    pub fn new(file: FileName, line: u32, col: u32) -> Span {
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
    pub value: Text,
    pub quote: Quote,
    /// Start of the word (for the caret line under an error).
    pub span: Span,
}

/// `name arg1 arg2 ... ;` or `name args... { block }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directive {
    pub name: Text,
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
    /// `None` when the file was read as a stream and not kept ([`super::Reader::streaming`]).
    pub text: Option<Arc<[u8]>>,
}

impl SourceFile {
    /// The text: as kept, or read again when only the name was kept.
    pub fn bytes(&self) -> std::io::Result<std::borrow::Cow<'_, [u8]>> {
        match &self.text {
            Some(t) => Ok(std::borrow::Cow::Borrowed(t)),
            None => super::include::read_file(std::path::Path::new(&*self.path))
                .map(std::borrow::Cow::Owned),
        }
    }
}
