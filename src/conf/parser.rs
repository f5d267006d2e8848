//! Statements to directive trees, with `include` expanded in place (nginx's `ngx_conf_parse`).
//!
//! Like nginx, the parser reads statement after statement and stops at the first error; whatever
//! was read before stays in the tree (see [`Parsed`]). It works with explicit stacks instead of
//! recursion, so hostile nesting cannot overflow the stack.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::ast::{Directive, FileName, SourceFile, Span};
use super::error::{ConfError, Level, Origin};
use super::include;
use super::lexer::{Lexer, Source, Statement, Word};

/// Blocks nested deeper than this are refused (nginx has no limit, but no real configuration
/// comes close, and every later stage walks the tree recursively).
pub const MAX_DEPTH: usize = 100;

/// What parsing produced. On a syntax error nginx has already handled every directive before the
/// error, so the partial tree is kept: `plan` checks it first and reports `error` only if those
/// directives were all fine. An unfinished block appears with the directives read so far.
#[derive(Debug, Default)]
pub struct Parsed {
    pub directives: Vec<Directive>,
    /// Every file read, the main one first, then includes in the order they were first read
    /// (for `-T`; like nginx's dump, a file included twice appears once).
    pub files: Vec<SourceFile>,
    pub error: Option<ConfError>,
}

#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Relative `include` paths resolve against this (nginx's conf prefix: the directory of `-c`).
    pub conf_prefix: PathBuf,
}

/// Reads `path` and every file it includes. `path` names the file in spans as given.
pub fn load_file(path: &Path, opts: &LoadOptions) -> Parsed {
    let name: Arc<str> = Arc::from(path.to_string_lossy().as_ref());
    match include::read_conf_file(path, &name) {
        Ok(text) => parse_bytes(&text, name, opts),
        Err(message) => Parsed {
            error: Some(message.into_error(Origin::Nowhere)),
            ..Parsed::default()
        },
    }
}

/// Parses text already in memory, named `file` in spans (includes still read from disk).
pub fn parse_bytes(text: &[u8], file: Arc<str>, opts: &LoadOptions) -> Parsed {
    Parser::new(opts, Source::File).run(text, file)
}

/// Parses the `-g` command-line parameter: main-context directives; errors say `in command line`.
pub fn parse_param(text: &str, opts: &LoadOptions) -> Parsed {
    Parser::new(opts, Source::Param).run(text.as_bytes(), Arc::from("command line"))
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

struct Parser<'o> {
    opts: &'o LoadOptions,
    source: Source,
    files: Vec<SourceFile>,
    /// Open blocks, innermost last; each has `block: Some(children so far)`.
    blocks: Vec<Directive>,
    top: Vec<Directive>,
}

impl<'o> Parser<'o> {
    fn new(opts: &'o LoadOptions, source: Source) -> Parser<'o> {
        Parser {
            opts,
            source,
            files: Vec::new(),
            blocks: Vec::new(),
            top: Vec::new(),
        }
    }

    fn run(mut self, text: &[u8], name: Arc<str>) -> Parsed {
        let text: Arc<[u8]> = Arc::from(text);
        if self.source == Source::File {
            self.files.push(SourceFile {
                path: name.clone(),
                text: text.clone(),
            });
        }
        let identity = include::identity(Path::new(name.as_ref()));
        let error = self.parse_all(name, text, identity).err();
        // Attach unfinished blocks to their parents so the partial tree is complete.
        while let Some(open) = self.blocks.pop() {
            self.children().push(open);
        }
        self.top.shrink_to_fit();
        Parsed {
            directives: self.top,
            files: self.files,
            error,
        }
    }

    fn children(&mut self) -> &mut Vec<Directive> {
        match self.blocks.last_mut() {
            // Every directive on the block stack was pushed with `block: Some(..)`.
            Some(d) => d.block.get_or_insert_with(Vec::new),
            None => &mut self.top,
        }
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

    fn parse_all(
        &mut self,
        name: Arc<str>,
        text: Arc<[u8]>,
        identity: PathBuf,
    ) -> Result<(), ConfError> {
        let mut stack: Vec<FileFrame> = Vec::new();
        stack.push(new_frame(name, text, identity, 0, self.source));

        while let Some(frame) = stack.last_mut() {
            // A glob include still has files to read: open the next one.
            if let Some(path) = frame.pending.pop() {
                let span = frame.include_span.clone();
                let child = self.open_include(&path, span, &stack)?;
                stack.push(child);
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
                    if self.blocks.len() > base_depth {
                        return Err(self.error_at(
                            source,
                            "unexpected end of file, expecting \"}\"",
                            &file,
                            line,
                        ));
                    }
                    stack.pop();
                }
                Statement::BlockEnd { line } => {
                    if self.blocks.len() <= base_depth {
                        return Err(self.error_at(source, "unexpected \"}\"", &file, line));
                    }
                    if let Some(mut done) = self.blocks.pop() {
                        // Blocks grow by doubling; give back the slack of finished ones.
                        if let Some(children) = done.block.as_mut() {
                            children.shrink_to_fit();
                        }
                        self.children().push(done);
                    }
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
                        if let Some(frame) = stack.last_mut() {
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
                    let directive = make_directive(name, args, opens_block, &file, line);
                    if opens_block {
                        if self.blocks.len() >= MAX_DEPTH {
                            return Err(self.error_at(
                                source,
                                format!("blocks are nested deeper than {MAX_DEPTH} levels"),
                                &file,
                                line,
                            ));
                        }
                        self.blocks.push(directive);
                    } else {
                        self.children().push(directive);
                    }
                }
            }
        }
        Ok(())
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

    fn open_include(
        &mut self,
        path: &Path,
        span: Option<Span>,
        stack: &[FileFrame],
    ) -> Result<FileFrame, ConfError> {
        let from_param = stack.last().is_some_and(|f| f.source == Source::Param);
        let origin = match span {
            _ if from_param => Origin::CommandLine,
            Some(s) => Origin::At(s),
            None => Origin::Nowhere,
        };
        let name: Arc<str> = Arc::from(path.to_string_lossy().as_ref());
        let identity = include::identity(path);
        if stack.iter().any(|f| f.identity == identity) {
            let message = format!("include cycle: \"{name}\" is already being read");
            return Err(ConfError {
                level: Level::Emerg,
                message,
                origin,
                hints: Vec::new(),
            });
        }
        let text: Arc<[u8]> = match include::read_conf_file(path, &name) {
            Ok(t) => Arc::from(t),
            Err(m) => return Err(m.into_error(origin)),
        };
        if !self.files.iter().any(|f| f.path == name) {
            self.files.push(SourceFile {
                path: name.clone(),
                text: text.clone(),
            });
        }
        Ok(new_frame(
            name,
            text,
            identity,
            self.blocks.len(),
            Source::File,
        ))
    }
}

fn new_frame(
    name: Arc<str>,
    text: Arc<[u8]>,
    identity: PathBuf,
    base_depth: usize,
    source: Source,
) -> FileFrame {
    let file = FileName::from(&name);
    FileFrame {
        lexer: Lexer::new(text, file, source),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn opts(dir: &Path) -> LoadOptions {
        LoadOptions {
            conf_prefix: dir.to_path_buf(),
        }
    }

    fn parse(text: &str) -> Parsed {
        parse_bytes(
            text.as_bytes(),
            Arc::from("/t/m.conf"),
            &opts(Path::new("/nonexistent")),
        )
    }

    fn err(p: &Parsed) -> String {
        p.error.as_ref().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn tree_and_spans() {
        let p = parse("http {\n  server {\n    listen\n      80;\n  }\n}\n");
        assert!(p.error.is_none());
        let http = &p.directives[0];
        let server = &http.block.as_ref().unwrap()[0];
        let listen = &server.block.as_ref().unwrap()[0];
        assert_eq!((server.span.line, server.span.col), (2, 3));
        assert_eq!((listen.span.line, listen.span.col), (4, 5));
        assert_eq!((listen.args[0].span.line, listen.args[0].span.col), (4, 7));
        assert_eq!(listen.arg(0), Some("80"));
        assert_eq!(p.files.len(), 1);
    }

    #[test]
    fn partial_tree_on_eof_in_block() {
        let p = parse("a 1;\nserver {\n  listen 80;\n  location / {\n    return 204;\n");
        assert_eq!(
            err(&p),
            "[emerg] unexpected end of file, expecting \"}\" in /t/m.conf:6"
        );
        assert_eq!(p.directives.len(), 2);
        let server = &p.directives[1];
        let kids = server.block.as_ref().unwrap();
        assert_eq!(kids.len(), 2);
        assert_eq!(kids[1].block.as_ref().unwrap()[0].name, "return");
    }

    #[test]
    fn partial_tree_stops_before_bad_statement() {
        let p = parse("server {\n  listen 80;\n  add_header X \"a\"b;\n  root /x;\n}\n");
        assert_eq!(err(&p), "[emerg] unexpected \"b\" in /t/m.conf:3");
        let kids = p.directives[0].block.as_ref().unwrap();
        assert_eq!(kids.len(), 1);
    }

    #[test]
    fn stray_close_brace() {
        let p = parse("a;\n}\nb;\n");
        assert_eq!(err(&p), "[emerg] unexpected \"}\" in /t/m.conf:2");
        assert_eq!(p.directives.len(), 1);
    }

    #[test]
    fn includes_in_place_with_own_spans() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("conf.d")).unwrap();
        fs::write(dir.path().join("conf.d/b.conf"), "b 2;\n").unwrap();
        fs::write(dir.path().join("conf.d/a.conf"), "\na 1;\n").unwrap();
        let main = dir.path().join("nginx.conf");
        fs::write(&main, "http {\n  include conf.d/*.conf;\n  c 3;\n}\n").unwrap();
        let p = load_file(&main, &opts(dir.path()));
        assert!(p.error.is_none(), "{:?}", p.error);
        let kids = p.directives[0].block.as_ref().unwrap();
        let names: Vec<_> = kids.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert!(kids[0].span.file.ends_with("conf.d/a.conf"));
        assert_eq!(kids[0].span.line, 2);
        assert_eq!(kids[2].span.line, 3);
        assert_eq!(p.files.len(), 3);
        assert!(p.files[1].path.ends_with("a.conf"));
    }

    #[test]
    fn include_cycle_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.conf");
        fs::write(&a, "x 1;\ninclude b.conf;\n").unwrap();
        fs::write(dir.path().join("b.conf"), "include a.conf;\n").unwrap();
        let p = load_file(&a, &opts(dir.path()));
        let e = p.error.expect("cycle detected");
        assert!(e.message.starts_with("include cycle: "), "{e}");
        assert_eq!(e.span().map(|s| s.line), Some(1));
        assert!(e.span().is_some_and(|s| s.file.ends_with("b.conf")));
        assert_eq!(p.directives.len(), 1);
    }

    #[test]
    fn missing_main_file_has_no_location() {
        let p = load_file(Path::new("/nonexistent/nginx.conf"), &opts(Path::new("/")));
        assert_eq!(
            err(&p),
            "[emerg] open() \"/nonexistent/nginx.conf\" failed (2: No such file or directory)"
        );
    }

    #[test]
    fn include_argument_errors() {
        let p = parse("include;\n");
        assert_eq!(
            err(&p),
            "[emerg] invalid number of arguments in \"include\" directive in /t/m.conf:1"
        );
        let p = parse("include a {\n");
        assert_eq!(
            err(&p),
            "[emerg] directive \"include\" is not terminated by \";\" in /t/m.conf:1"
        );
    }

    #[test]
    fn nesting_limit() {
        let deep = "a {".repeat(MAX_DEPTH + 5);
        let p = parse(&deep);
        let e = err(&p);
        assert!(e.contains("nested deeper"), "{e}");
        // The partial tree is still complete down to the limit.
        let mut depth = 0;
        let mut cur = &p.directives;
        while let Some(d) = cur.first() {
            depth += 1;
            cur = d.block.as_ref().unwrap();
        }
        assert_eq!(depth, MAX_DEPTH);
    }

    #[test]
    fn command_line_parameter() {
        let o = opts(Path::new("/nonexistent"));
        let p = parse_param("daemon off; master_process on;", &o);
        assert!(p.error.is_none());
        assert_eq!(p.directives.len(), 2);
        assert!(p.files.is_empty());
        let p = parse_param("events {}", &o);
        assert_eq!(
            err(&p),
            "[emerg] block directives are not supported in -g option in command line"
        );
        let p = parse_param("daemon off", &o);
        assert_eq!(
            err(&p),
            "[emerg] unexpected end of parameter, expecting \";\" in command line"
        );
    }
}
