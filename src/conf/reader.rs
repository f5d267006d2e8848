//! A streaming reader: one directive at a time, `include` expanded in place (nginx's
//! `ngx_conf_parse` loop without the handler call).
//!
//! This is what both consumers of the configuration language are built on: the tree builder
//! ([`super::parser`], for `conf::dump`, the grammar goldens and tools) and `plan`'s compiler,
//! which walks the reader directly so that a large file never exists as a whole tree next to the
//! Plan. Like nginx, it stops at the first error; everything read before stays read.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::ast::{Directive, FileName, SourceFile, Span};
use super::error::{ConfError, Level, Origin};
use super::include;
use super::lexer::{Lexer, Source, Statement, Word, WINDOW};
use super::parser::{LoadOptions, MAX_DEPTH};

/// What [`Reader::next`] read.
#[derive(Debug)]
pub enum Event {
    /// A directive; when it opens a block, `block` is `Some` of an empty list and the block's
    /// contents follow as further events, up to the matching [`Event::BlockEnd`].
    Directive(Directive),
    /// The `}` closing the innermost open block (file and line of the `}`, column 1).
    BlockEnd(Span),
}

/// One file being read: its text, the tokenizer position, and how deep the block stack was when
/// it started (a `}` may not close a block opened by another file, nor may a file end inside one
/// of its own blocks).
struct FileFrame {
    /// The file's name, interned for spans.
    file: FileName,
    lexer: Lexer,
    /// The `-g` text or a file: decides how errors are located.
    source: Source,
    base_depth: usize,
    /// Identity for cycle detection (canonical path when it exists).
    identity: PathBuf,
    /// Files still to read for the current `include` (a glob), in reverse order.
    pending: Vec<PathBuf>,
    /// The `include` directive those pending files came from.
    include_span: Option<Span>,
}

/// Reads a configuration directive by directive; see the module docs.
pub struct Reader {
    opts: LoadOptions,
    /// Every file read so far, the main one first (see [`super::Parsed::files`]).
    files: Vec<SourceFile>,
    stack: Vec<FileFrame>,
    /// Blocks open now.
    depth: usize,
    /// Files are tokenized as they are read, and their text is not kept.
    streaming: bool,
    error: Option<ConfError>,
}

impl Reader {
    /// Reads `path` and every file it includes. `path` names the file in spans as given.
    pub fn open(path: &Path, opts: &LoadOptions) -> Reader {
        let name: Arc<str> = Arc::from(path.to_string_lossy().as_ref());
        match include::read_conf_file(path, &name) {
            Ok(text) => Reader::new(Arc::from(text), name, opts, Source::File),
            Err(message) => {
                let mut r = Reader::empty(opts);
                r.error = Some(message.into_error(Origin::Nowhere));
                r
            }
        }
    }

    /// Like [`Reader::open`], but reads each file as it is tokenized, through a window of
    /// [`super::lexer::WINDOW`] bytes, and keeps no text ([`SourceFile::text`] is `None`): what
    /// `-t` uses, so that a large file is never in memory whole.
    pub fn streaming(path: &Path, opts: &LoadOptions) -> Reader {
        let mut r = Reader::empty(opts);
        r.streaming = true;
        let name: Arc<str> = Arc::from(path.to_string_lossy().as_ref());
        match include::open_conf_stream(path, &name, WINDOW) {
            Ok((head, rest)) => {
                r.files.push(SourceFile {
                    path: name.clone(),
                    text: None,
                });
                let file = FileName::from(&name);
                let lexer = Lexer::streaming(head, rest, file, Source::File);
                let identity = include::identity(path);
                r.stack
                    .push(new_frame(name, lexer, identity, 0, Source::File));
            }
            Err(message) => r.error = Some(message.into_error(Origin::Nowhere)),
        }
        r
    }

    /// Reads text already in memory, named `name` in spans (includes still read from disk);
    /// `source` says whether it is a file or the `-g` parameter.
    pub fn new(text: Arc<[u8]>, name: Arc<str>, opts: &LoadOptions, source: Source) -> Reader {
        let mut r = Reader::empty(opts);
        if source == Source::File {
            r.files.push(SourceFile {
                path: name.clone(),
                text: Some(text.clone()),
            });
        }
        let identity = include::identity(Path::new(name.as_ref()));
        let lexer = Lexer::new(text, FileName::from(&name), source);
        r.stack.push(new_frame(name, lexer, identity, 0, source));
        r
    }

    fn empty(opts: &LoadOptions) -> Reader {
        Reader {
            opts: opts.clone(),
            files: Vec::new(),
            stack: Vec::new(),
            depth: 0,
            error: None,
            streaming: false,
        }
    }

    /// The error that stopped the reader, if any.
    pub fn error(&self) -> Option<&ConfError> {
        self.error.as_ref()
    }

    /// Blocks open now (a reader stopped by an error keeps the depth it had).
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Every file read so far, the main one first.
    pub fn files(&self) -> &[SourceFile] {
        &self.files
    }

    /// The files read and the error that stopped the reader.
    pub fn finish(self) -> (Vec<SourceFile>, Option<ConfError>) {
        (self.files, self.error)
    }

    fn error_at(
        &self,
        source: Source,
        message: impl Into<String>,
        file: &FileName,
        line: u32,
    ) -> ConfError {
        let origin = match source {
            Source::Param => Origin::CommandLine,
            Source::File => Origin::At(Span::new(*file, line, 0)),
        };
        ConfError {
            level: Level::Emerg,
            message: message.into(),
            origin,
            hints: Vec::new(),
        }
    }

    fn step(&mut self) -> Result<Option<Event>, ConfError> {
        while let Some(frame) = self.stack.last_mut() {
            // A glob include still has files to read: open the next one.
            if let Some(path) = frame.pending.pop() {
                let span = frame.include_span.clone();
                let child = self.open_include(&path, span)?;
                self.stack.push(child);
                continue;
            }
            let file = frame.file;
            let base_depth = frame.base_depth;
            let source = frame.source;
            let statement = frame.lexer.next_statement();
            let statement =
                statement.map_err(|e| self.error_at(source, e.message, &file, e.line))?;
            match statement {
                Statement::Eof { line } => {
                    if self.depth > base_depth {
                        return Err(self.error_at(
                            source,
                            "unexpected end of file, expecting \"}\"",
                            &file,
                            line,
                        ));
                    }
                    self.stack.pop();
                }
                Statement::BlockEnd { line } => {
                    if self.depth <= base_depth {
                        return Err(self.error_at(source, "unexpected \"}\"", &file, line));
                    }
                    self.depth -= 1;
                    return Ok(Some(Event::BlockEnd(Span::new(file, line, 1))));
                }
                Statement::Directive {
                    name,
                    args,
                    opens_block,
                    line,
                } => {
                    if name.value == "include" {
                        let span = Span::new(file, line, name.span.col);
                        let paths = self.include_paths(source, &args, opens_block, &span)?;
                        if let Some(frame) = self.stack.last_mut() {
                            frame.pending = paths.into_iter().rev().collect();
                            frame.include_span = Some(span);
                        }
                        continue;
                    }
                    if opens_block && source == Source::Param {
                        return Err(self.error_at(
                            source,
                            "block directives are not supported in -g option",
                            &file,
                            line,
                        ));
                    }
                    if opens_block {
                        if self.depth >= MAX_DEPTH {
                            return Err(self.error_at(
                                source,
                                format!("blocks are nested deeper than {MAX_DEPTH} levels"),
                                &file,
                                line,
                            ));
                        }
                        self.depth += 1;
                    }
                    return Ok(Some(Event::Directive(make_directive(
                        name,
                        args,
                        opens_block,
                        &file,
                        line,
                    ))));
                }
            }
        }
        Ok(None)
    }

    /// Checks an `include` statement like nginx's dispatcher and expands its argument to the
    /// files to read, in order.
    fn include_paths(
        &self,
        source: Source,
        args: &[Word],
        opens_block: bool,
        span: &Span,
    ) -> Result<Vec<PathBuf>, ConfError> {
        let at = |m: String| self.error_at(source, m, &span.file, span.line);
        if opens_block {
            return Err(at("directive \"include\" is not terminated by \";\"".into()));
        }
        if args.len() != 1 {
            return Err(at(
                "invalid number of arguments in \"include\" directive".into()
            ));
        }
        let origin = match source {
            Source::Param => Origin::CommandLine,
            Source::File => Origin::At(span.clone()),
        };
        include::expand(&args[0].value, &self.opts.conf_prefix).map_err(|m| m.into_error(origin))
    }

    fn open_include(&mut self, path: &Path, span: Option<Span>) -> Result<FileFrame, ConfError> {
        let from_param = self.stack.last().is_some_and(|f| f.source == Source::Param);
        let origin = match span {
            _ if from_param => Origin::CommandLine,
            Some(s) => Origin::At(s),
            None => Origin::Nowhere,
        };
        let name: Arc<str> = Arc::from(path.to_string_lossy().as_ref());
        let identity = include::identity(path);
        if self.stack.iter().any(|f| f.identity == identity) {
            let message = format!("include cycle: \"{name}\" is already being read");
            return Err(ConfError {
                level: Level::Emerg,
                message,
                origin,
                hints: Vec::new(),
            });
        }
        let file = FileName::from(&name);
        let (lexer, text) = if self.streaming {
            match include::open_conf_stream(path, &name, WINDOW) {
                Ok((head, rest)) => (Lexer::streaming(head, rest, file, Source::File), None),
                Err(m) => return Err(m.into_error(origin)),
            }
        } else {
            match include::read_conf_file(path, &name) {
                Ok(t) => {
                    let t: Arc<[u8]> = Arc::from(t);
                    (Lexer::new(t.clone(), file, Source::File), Some(t))
                }
                Err(m) => return Err(m.into_error(origin)),
            }
        };
        if !self.files.iter().any(|f| f.path == name) {
            self.files.push(SourceFile {
                path: name.clone(),
                text,
            });
        }
        Ok(new_frame(name, lexer, identity, self.depth, Source::File))
    }
}

impl Iterator for Reader {
    type Item = Event;

    /// The next directive or block end; `None` at the end of the input or after an error (then
    /// [`Reader::error`] says which).
    fn next(&mut self) -> Option<Event> {
        if self.error.is_some() {
            return None;
        }
        match self.step() {
            Ok(e) => e,
            Err(e) => {
                self.error = Some(e);
                self.stack.clear();
                None
            }
        }
    }
}

fn new_frame(
    name: Arc<str>,
    lexer: Lexer,
    identity: PathBuf,
    base_depth: usize,
    source: Source,
) -> FileFrame {
    let file = FileName::from(&name);
    FileFrame {
        lexer,
        file,
        source,
        base_depth,
        identity,
        pending: Vec::new(),
        include_span: None,
    }
}

fn make_directive(
    name: Word,
    args: Vec<Word>,
    opens_block: bool,
    file: &FileName,
    line: u32,
) -> Directive {
    Directive {
        name: name.value,
        args,
        block: opens_block.then(Vec::new),
        span: Span::new(*file, line, name.span.col),
    }
}
