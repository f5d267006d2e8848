//! Statements to directive trees, with `include` expanded in place (nginx's `ngx_conf_parse`).
//!
//! Like nginx, the parser reads statement after statement and stops at the first error; whatever
//! was read before stays in the tree (see [`Parsed`]). It works with explicit stacks instead of
//! recursion, so hostile nesting cannot overflow the stack.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::ast::{Directive, SourceFile};
use super::error::ConfError;
use super::lexer::Source;
use super::reader::{Event, Reader};

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
    Parser::run(Reader::open(path, opts))
}

/// Parses text already in memory, named `file` in spans (includes still read from disk).
pub fn parse_bytes(text: &[u8], file: Arc<str>, opts: &LoadOptions) -> Parsed {
    Parser::run(Reader::new(Arc::from(text), file, opts, Source::File))
}

/// Parses the `-g` command-line parameter: main-context directives; errors say `in command line`.
pub fn parse_param(text: &str, opts: &LoadOptions) -> Parsed {
    Parser::run(Reader::new(
        Arc::from(text.as_bytes()),
        Arc::from("command line"),
        opts,
        Source::Param,
    ))
}

/// Builds the tree from a [`Reader`]: open blocks on a stack, innermost last.
struct Parser {
    blocks: Vec<Directive>,
    top: Vec<Directive>,
}

impl Parser {
    fn run(mut reader: Reader) -> Parsed {
        let mut p = Parser {
            blocks: Vec::new(),
            top: Vec::new(),
        };
        for event in reader.by_ref() {
            match event {
                Event::Directive(d) if d.block.is_some() => p.blocks.push(d),
                Event::Directive(d) => p.children().push(d),
                Event::BlockEnd(_) => {
                    if let Some(mut done) = p.blocks.pop() {
                        // Blocks grow by doubling; give back the slack of finished ones.
                        if let Some(children) = done.block.as_mut() {
                            children.shrink_to_fit();
                        }
                        p.children().push(done);
                    }
                }
            }
        }
        // Attach unfinished blocks to their parents so the partial tree is complete.
        while let Some(open) = p.blocks.pop() {
            p.children().push(open);
        }
        p.top.shrink_to_fit();
        let (files, error) = reader.finish();
        Parsed {
            directives: p.top,
            files,
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
}

// Unit tests only: their unwraps run on fixed inputs, never on config or request input,
// and a panic there is a failed test.
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
