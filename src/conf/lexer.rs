//! nginx's tokenizer (`ngx_conf_read_token` of nginx 1.22), rule for rule.
//!
//! The lexer hands out one *statement* at a time, exactly like nginx: the words of a directive up
//! to its `;` or `{`, a `}`, or the end of the text. The token shapes (spaces, comments, quoted
//! strings, bare words) are nom parsers; the small state machine around them reproduces nginx's
//! quirks, because configurations in the wild depend on them:
//!
//! - A closing quote must be followed by whitespace, `;`, `{` or `)`; `)` starts a new word
//!   (`if ($a = "x")` gives the words `($a`, `=`, `x`, `)`).
//! - `$` followed by `{` does not open a block: `${var}` stays inside the word. `}`, `#`, quotes
//!   and `(` are ordinary characters inside a bare word.
//! - A backslash makes the next byte (any byte, even a newline) part of the word. When the word is
//!   stored, `\" \' \\` lose the backslash, `\n \r \t` become control characters, and any other
//!   backslash is kept.
//! - nginx reads files through a 4096-byte buffer and fails with `too long parameter` when one
//!   token (counted from where nginx last moved its `start` mark) does not fit; that is reproduced
//!   byte-exactly, since long quoted strings with a missing quote are a real mistake.
//! - Lines are nginx's: the line of the byte that completed the statement.

use nom::branch::alt;
use nom::bytes::complete::{tag, take, take_till, take_while, take_while1};
use nom::combinator::{opt, recognize};
use nom::multi::many0_count;
use nom::sequence::preceded;
use nom::{IResult, Parser};

use std::sync::Arc;

use super::ast::{Arg, FileName, Quote, Span, Text};

/// nginx's `NGX_CONF_BUFFER`: the longest token nginx can hold while reading a file.
pub const CONF_BUFFER: usize = 4096;

/// One word of a statement, escapes decoded, spanned at its start (its opening quote for quoted
/// words). The directive name is the first word; the parser keeps the rest as its arguments.
pub type Word = Arg;

/// What one call to [`Lexer::next_statement`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Statement {
    /// Words terminated by `;` (`opens_block == false`) or `{`; `line` is the terminator's line.
    /// `args` is allocated at its exact length (large configurations hold hundreds of thousands).
    Directive {
        name: Word,
        args: Vec<Word>,
        opens_block: bool,
        line: u32,
    },
    /// A `}` with no words before it.
    BlockEnd { line: u32 },
    /// End of the text with no words pending.
    Eof { line: u32 },
}

/// A tokenizer error: nginx's message (without ` in FILE:LINE`) and the line nginx reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LexError {
    pub message: String,
    pub line: u32,
}

/// Where the text comes from: a file, or the `-g` command-line parameter (nginx words a few
/// errors differently there and never hits the buffer limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    File,
    Param,
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn spaces(i: &[u8]) -> IResult<&[u8], &[u8]> {
    take_while(is_space).parse(i)
}

/// `#` comment body, up to (not including) the newline.
fn comment(i: &[u8]) -> IResult<&[u8], &[u8]> {
    take_till(|c| c == b'\n').parse(i)
}

/// A backslash and the byte it protects (or nothing at the end of the text).
fn escape_pair(i: &[u8]) -> IResult<&[u8], &[u8]> {
    recognize(preceded(tag(&b"\\"[..]), opt(take(1usize)))).parse(i)
}

/// The inside of a quoted string, up to (not including) the closing quote `q`.
fn quoted_body(q: u8, i: &[u8]) -> IResult<&[u8], &[u8]> {
    recognize(many0_count(alt((
        escape_pair,
        take_while1(move |c| c != q && c != b'\\'),
    ))))
    .parse(i)
}

/// A bare word: stops before whitespace, `;` or `{`, except that `{` right after `$` (any number
/// of them) belongs to the word, and a backslash protects the next byte.
fn bare_word(i: &[u8]) -> IResult<&[u8], &[u8]> {
    recognize(many0_count(alt((
        escape_pair,
        recognize(preceded(tag(&b"$"[..]), take_while(|c| c == b'{'))),
        take_while1(|c| !is_space(c) && !matches!(c, b';' | b'{' | b'\\' | b'$')),
    ))))
    .parse(i)
}

/// A word's text: its bytes as they are when they hold no escape (the common case, with no
/// intermediate buffer), else decoded.
fn word_text(raw: &[u8]) -> Text {
    if memchr::memchr(b'\\', raw).is_none() {
        if let Ok(s) = std::str::from_utf8(raw) {
            return Text::new(s);
        }
    }
    into_string(unescape(raw)).into()
}

/// Decodes nginx's escapes in a word's raw bytes.
fn unescape(raw: &[u8]) -> Vec<u8> {
    if memchr::memchr(b'\\', raw).is_none() {
        return raw.to_vec();
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        if c == b'\\' {
            match raw.get(i + 1) {
                Some(&n @ (b'"' | b'\'' | b'\\')) => {
                    out.push(n);
                    i += 2;
                    continue;
                }
                Some(b't') => {
                    out.push(b'\t');
                    i += 2;
                    continue;
                }
                Some(b'r') => {
                    out.push(b'\r');
                    i += 2;
                    continue;
                }
                Some(b'n') => {
                    out.push(b'\n');
                    i += 2;
                    continue;
                }
                _ => {}
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

fn into_string(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// A byte as nginx's `%c` prints it (non-UTF-8 bytes become U+FFFD in our `String` messages).
fn byte_str(c: u8) -> String {
    into_string(vec![c])
}

/// How much text a streaming lexer keeps ahead of the statement it reads (nginx's own buffer is
/// 4096 bytes; a statement that does not fit is read again with a larger window).
pub const WINDOW: usize = 64 * 1024;

/// nginx's tokenizer over one text: all of it in memory, or a window over a file that is read as
/// the statements are ([`Lexer::streaming`]).
///
/// A streaming lexer keeps the text from the start of the current line onward (so columns and
/// lines are still known) and at least [`WINDOW`] bytes ahead. It reads each statement on that
/// window as if the window's end were the end of the text: every answer that depends on where
/// the text ends is an end-of-file statement or an error, so on those (and only those, before the
/// real end) it reads more and reads the statement again. The tokens are the same as on the whole
/// text, byte for byte.
pub struct Lexer {
    /// The text, or the window: byte 0 is the start of a line.
    src: Arc<[u8]>,
    /// The rest of the file, for a streaming lexer that has not reached the end.
    more: Option<Box<dyn std::io::Read>>,
    /// [`WINDOW`] (tests make it tiny to cross every boundary).
    window: usize,
    /// The file name put in every word's span.
    file: FileName,
    pos: usize,
    source: Source,
    /// Words of the statement being read; reused so each statement allocates only its arguments.
    scratch: Vec<Word>,
    /// nginx's `start` mark: the buffer must hold every byte from here to the current one.
    mark: usize,
    /// A position whose line is nginx's `start_line` (see [`Lexer::line_of`]).
    mark_line_at: usize,
    // Incremental line counting: `line` is the 1-based line of byte `scan`.
    scan: usize,
    line: u32,
    line_start: usize,
}

impl Lexer {
    pub fn new(src: Arc<[u8]>, file: FileName, source: Source) -> Lexer {
        Lexer {
            src,
            more: None,
            window: WINDOW,
            file,
            pos: 0,
            source,
            scratch: Vec::with_capacity(8),
            mark: 0,
            mark_line_at: 0,
            scan: 0,
            line: 1,
            line_start: 0,
        }
    }

    /// A lexer over `head` (the file's first bytes) followed by whatever `rest` yields.
    pub fn streaming(
        head: Vec<u8>,
        rest: Box<dyn std::io::Read>,
        file: FileName,
        source: Source,
    ) -> Lexer {
        let mut lx = Lexer::new(Arc::from(head), file, source);
        lx.more = Some(rest);
        lx
    }

    /// Drops the text before the current line and reads until `ahead` bytes follow `pos` (or the
    /// file ends).
    fn refill(&mut self, ahead: usize) -> Result<(), LexError> {
        let Some(more) = self.more.as_mut() else {
            return Ok(());
        };
        let drop = self.line_start;
        let kept = &self.src[drop..];
        let want = (self.pos - drop) + ahead;
        let mut buf = Vec::with_capacity(want.max(kept.len()));
        buf.extend_from_slice(kept);
        let mut eof = false;
        let mut failed = None;
        while buf.len() < want {
            let room = want - buf.len();
            let r: &mut dyn std::io::Read = &mut **more;
            match std::io::Read::read_to_end(&mut std::io::Read::take(r, room as u64), &mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            let line = self.line;
            let message = format!(
                "pread() \"{}\" failed {}",
                self.file,
                super::include::errno_text(&e)
            );
            return Err(self.err(message, line));
        }
        if eof {
            self.more = None;
        }
        self.src = Arc::from(buf);
        self.pos -= drop;
        self.scan -= drop;
        self.line_start = 0;
        self.mark = self.pos;
        self.mark_line_at = self.pos;
        Ok(())
    }

    /// Line and column (1-based) of the byte at `p`; `p` never decreases between calls except on
    /// error paths, which recount.
    fn line_col(&mut self, p: usize) -> (u32, u32) {
        let p = p.min(self.src.len());
        if p < self.scan {
            return self.recount(p);
        }
        for nl in memchr::memchr_iter(b'\n', &self.src[self.scan..p]) {
            self.line = self.line.saturating_add(1);
            self.line_start = self.scan + nl + 1;
        }
        self.scan = p;
        (self.line, col_of(p, self.line_start))
    }

    /// Line and column of `p` from the counted position, forward or back, without moving it
    /// (byte 0 of the text kept is always the start of a line).
    fn recount(&self, p: usize) -> (u32, u32) {
        let p = p.min(self.src.len());
        let (line, start) = if p >= self.scan {
            let n = memchr::memchr_iter(b'\n', &self.src[self.scan..p]).count();
            let n = u32::try_from(n).unwrap_or(u32::MAX);
            let start = memchr::memrchr(b'\n', &self.src[self.line_start..p])
                .map_or(self.line_start, |i| self.line_start + i + 1);
            (self.line.saturating_add(n), start)
        } else {
            let n = memchr::memchr_iter(b'\n', &self.src[p..self.scan]).count();
            let n = u32::try_from(n).unwrap_or(u32::MAX);
            let start = memchr::memrchr(b'\n', &self.src[..p]).map_or(0, |i| i + 1);
            (self.line.saturating_sub(n), start)
        };
        (line, col_of(p, start))
    }

    /// nginx's current line after it consumed the byte at `p` (a newline counts at once).
    fn line_after(&mut self, p: usize) -> u32 {
        self.line_col(p + 1).0
    }

    fn line_of(&mut self, p: usize) -> u32 {
        self.line_col(p).0
    }

    fn err(&mut self, message: String, line: u32) -> LexError {
        LexError { message, line }
    }

    /// nginx moves its `start` mark to `p` (it consumed byte `p` between words).
    fn set_mark(&mut self, p: usize) {
        self.mark = p;
        self.mark_line_at = p + 1;
    }

    /// nginx refills its buffer at `mark + CONF_BUFFER`; reaching byte `p` at or past that point
    /// with the mark unmoved is a "too long parameter". `quote` says whether the byte at the
    /// limit lies inside a quoted string (which changes the message).
    fn check_room(&mut self, p: usize, quote: Option<u8>) -> Result<(), LexError> {
        if self.source == Source::Param {
            return Ok(());
        }
        let limit = self.mark + CONF_BUFFER;
        if p < limit || limit >= self.src.len() {
            return Ok(());
        }
        let line = self.recount(self.mark_line_at).0;
        let message = match quote {
            Some(q) => format!(
                "too long parameter, probably missing terminating \"{}\" character",
                q as char
            ),
            None => {
                let end = (self.mark + 10).min(self.src.len());
                let head = into_string(self.src[self.mark..end].to_vec());
                format!("too long parameter \"{head}...\" started")
            }
        };
        Err(self.err(message, line))
    }

    /// The end of the text while a statement is pending (`words` non-empty or inside a word).
    fn eof_error(&mut self, quote: Option<u8>) -> LexError {
        let len = self.src.len();
        if let Err(e) = self.check_room(len, quote) {
            return e;
        }
        let line = self.line_of(len);
        let message = match self.source {
            Source::File => "unexpected end of file, expecting \";\" or \"}\"",
            Source::Param => "unexpected end of parameter, expecting \";\"",
        };
        self.err(message.to_string(), line)
    }

    /// Reads the next statement, like one call of `ngx_conf_read_token`.
    pub fn next_statement(&mut self) -> Result<Statement, LexError> {
        if self.more.is_none() {
            return self.statement();
        }
        // Refill when less than half a window is left (not on every statement: a refill copies
        // the window).
        let mut ahead = self.window;
        if self.src.len() - self.pos < self.window / 2 {
            self.refill(ahead)?;
        }
        loop {
            let saved = (self.pos, self.scan, self.line, self.line_start);
            let result = self.statement();
            let settled = matches!(
                result,
                Ok(Statement::Directive { .. } | Statement::BlockEnd { .. })
            );
            if settled || self.more.is_none() {
                return result;
            }
            // The end of the window decided (or may have): read further and try again.
            (self.pos, self.scan, self.line, self.line_start) = saved;
            ahead = ahead.saturating_mul(2);
            self.refill(ahead)?;
        }
    }

    /// One statement on the text in memory (see [`Lexer`] for the streaming case).
    fn statement(&mut self) -> Result<Statement, LexError> {
        let src = self.src.clone();
        let len = src.len();
        let mut words = std::mem::take(&mut self.scratch);
        words.clear();
        self.mark = self.pos;
        self.mark_line_at = self.pos;

        loop {
            // Between words: every byte consumed here moves nginx's mark.
            let (_, ws) = spaces(&src[self.pos..]).map_err(|_| self.nom_bug())?;
            if !ws.is_empty() {
                self.check_room(self.pos, None)?;
                self.pos += ws.len();
                self.set_mark(self.pos - 1);
            }
            if self.pos >= len {
                self.check_room(len, None)?;
                if words.is_empty() {
                    let line = self.line_of(len);
                    return Ok(Statement::Eof { line });
                }
                return Err(self.eof_error(None));
            }
            let p = self.pos;
            let c = src[p];
            self.check_room(p, None)?;
            self.set_mark(p);
            match c {
                b';' | b'{' => {
                    let line = self.line_after(p);
                    if words.is_empty() {
                        return Err(self.err(format!("unexpected \"{}\"", c as char), line));
                    }
                    self.pos = p + 1;
                    return Ok(self.finish(words, c == b'{', line));
                }
                b'}' => {
                    let line = self.line_after(p);
                    if !words.is_empty() {
                        return Err(self.err("unexpected \"}\"".to_string(), line));
                    }
                    self.pos = p + 1;
                    return Ok(Statement::BlockEnd { line });
                }
                b'#' => {
                    let (_, body) = comment(&src[p..]).map_err(|_| self.nom_bug())?;
                    self.pos = p + body.len();
                    // The newline (if any) is consumed as whitespace on the next turn.
                }
                b'"' | b'\'' => {
                    let (line, col) = self.line_col(p);
                    self.mark = p + 1;
                    let (_, body) = quoted_body(c, &src[p + 1..]).map_err(|_| self.nom_bug())?;
                    let close = p + 1 + body.len();
                    if close >= len || src[close] != c {
                        // Only the end of the text stops a quoted string early.
                        return Err(self.eof_error(Some(c)));
                    }
                    self.check_room(close, Some(c))?;
                    words.push(Word {
                        value: word_text(body),
                        quote: if c == b'"' {
                            Quote::Double
                        } else {
                            Quote::Single
                        },
                        span: Span::new(self.file, line, col),
                    });
                    // After a closing quote nginx needs a space, `;`, `{` or `)`.
                    let n = close + 1;
                    if n >= len {
                        return Err(self.eof_error(None));
                    }
                    let next = src[n];
                    self.check_room(n, None)?;
                    match next {
                        b';' | b'{' => {
                            let line = self.line_after(n);
                            self.pos = n + 1;
                            return Ok(self.finish(words, next == b'{', line));
                        }
                        b')' => {
                            self.set_mark(n);
                            self.pos = n;
                            if let Some(stmt) = self.bare(&mut words)? {
                                return Ok(stmt);
                            }
                        }
                        c if is_space(c) => self.pos = n + 1,
                        other => {
                            let line = self.line_after(n);
                            let msg = format!("unexpected \"{}\"", byte_str(other));
                            return Err(self.err(msg, line));
                        }
                    }
                }
                _ => {
                    if let Some(stmt) = self.bare(&mut words)? {
                        return Ok(stmt);
                    }
                }
            }
        }
    }

    /// Reads a bare word starting at `self.pos` and its terminator. Returns the statement when
    /// the terminator was `;` or `{`.
    fn bare(&mut self, words: &mut Vec<Word>) -> Result<Option<Statement>, LexError> {
        let src = self.src.clone();
        let p = self.pos;
        let (line, col) = self.line_col(p);
        let (_, raw) = bare_word(&src[p..]).map_err(|_| self.nom_bug())?;
        // The first byte is never a terminator here, so the word is never empty.
        let end = p + raw.len().max(1);
        if end >= src.len() {
            return Err(self.eof_error(None));
        }
        self.check_room(end, None)?;
        words.push(Word {
            value: word_text(&src[p..end]),
            quote: Quote::Bare,
            span: Span::new(self.file, line, col),
        });
        let t = src[end];
        self.pos = end + 1;
        if t == b';' || t == b'{' {
            let line = self.line_after(end);
            return Ok(Some(self.finish(std::mem::take(words), t == b'{', line)));
        }
        Ok(None)
    }

    /// Splits the words into name and exact-size arguments and keeps the buffer for next time.
    fn finish(&mut self, mut words: Vec<Word>, opens_block: bool, line: u32) -> Statement {
        let mut drain = words.drain(..);
        // Callers only finish a statement that has words; an empty name is the harmless fallback.
        let name = drain.next().unwrap_or_else(|| Word {
            value: Text::default(),
            quote: Quote::Bare,
            span: Span::new(self.file, line, 0),
        });
        let args: Vec<Word> = drain.collect();
        self.scratch = words;
        Statement::Directive {
            name,
            args,
            opens_block,
            line,
        }
    }

    /// The token parsers above never fail (they accept empty input); this turns an impossible
    /// failure into an error value instead of a panic.
    fn nom_bug(&mut self) -> LexError {
        let line = self.line_of(self.pos);
        LexError {
            message: "internal tokenizer error".to_string(),
            line,
        }
    }

    /// The whole text has been consumed.
    pub fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }
}

fn col_of(p: usize, line_start: usize) -> u32 {
    u32::try_from(p - line_start + 1).unwrap_or(u32::MAX)
}

// Unit tests only: their unwraps run on fixed inputs, never on config or request input.
#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str) -> Result<Vec<Statement>, LexError> {
        let lx = Lexer::new(
            Arc::from(text.as_bytes()),
            FileName::from("t"),
            Source::File,
        );
        let whole = run(lx);
        // The streaming lexer must agree on every input, at every window size.
        for window in [1, 2, 3, 7, 64, 4096] {
            for head in [0, 1, 5] {
                let head = head.min(text.len());
                let mut lx = Lexer::streaming(
                    text.as_bytes()[..head].to_vec(),
                    Box::new(Trickle(text.as_bytes()[head..].to_vec(), 0)),
                    FileName::from("t"),
                    Source::File,
                );
                lx.window = window;
                assert_eq!(run(lx), whole, "window {window}, head {head}: {text:?}");
            }
        }
        whole
    }

    /// Hands out its bytes 3 at a time.
    struct Trickle(Vec<u8>, usize);

    impl std::io::Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(3).min(self.0.len() - self.1);
            buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.1 += n;
            Ok(n)
        }
    }

    #[test]
    fn streaming_agrees_on_a_long_text() {
        let mut text = String::new();
        for i in 0..3000 {
            text.push_str(&format!(
                "location = /ok{i} {{\n  return 200 \"a;{{b}}\\\"{i}\";  # c{i} ;{{\n}}\n"
            ));
        }
        text.push_str("x 'unterminated\n");
        let e = all(&text).unwrap_err();
        assert!(e.message.starts_with("unexpected end of file"), "{e:?}");
        let ok = all(&text[..text.len() - 17]).unwrap();
        assert_eq!(ok.len(), 3000 * 3 + 1);
    }

    fn run(mut lx: Lexer) -> Result<Vec<Statement>, LexError> {
        let mut out = Vec::new();
        loop {
            let s = lx.next_statement()?;
            let done = matches!(s, Statement::Eof { .. });
            out.push(s);
            if done {
                return Ok(out);
            }
        }
    }

    fn words(text: &str) -> Vec<Vec<(String, Quote)>> {
        all(text)
            .unwrap()
            .into_iter()
            .filter_map(|s| match s {
                Statement::Directive { name, args, .. } => Some(
                    std::iter::once(name)
                        .chain(args)
                        .map(|w| (w.value.to_string(), w.quote))
                        .collect(),
                ),
                _ => None,
            })
            .collect()
    }

    fn vals(text: &str) -> Vec<String> {
        words(text).remove(0).into_iter().map(|w| w.0).collect()
    }

    fn err(text: &str) -> (String, u32) {
        let e = all(text).unwrap_err();
        (e.message, e.line)
    }

    #[test]
    fn simple_words_and_lines() {
        let s = all("a b;\nc {\n}\n").unwrap();
        assert_eq!(s.len(), 4);
        assert!(matches!(
            s[1],
            Statement::Directive {
                opens_block: true,
                line: 2,
                ..
            }
        ));
        assert_eq!(s[2], Statement::BlockEnd { line: 3 });
        assert_eq!(s[3], Statement::Eof { line: 4 });
    }

    #[test]
    fn line_is_terminator_line() {
        let s = all("a\nb\n\n;").unwrap();
        assert!(matches!(s[0], Statement::Directive { line: 4, .. }));
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(vals(r#"a "x y" 'p;q';"#), ["a", "x y", "p;q"]);
        assert_eq!(vals(r#"a "\"\'\\\n\r\t\q";"#), ["a", "\"'\\\n\r\t\\q"]);
        assert_eq!(vals(r"a b\ c\;d;"), ["a", "b\\ c\\;d"]);
        assert_eq!(vals(r"a \x;"), ["a", "\\x"]);
        let w = words(r#"a "" '';"#);
        assert_eq!(w[0][1], (String::new(), Quote::Double));
        assert_eq!(w[0][2], (String::new(), Quote::Single));
    }

    #[test]
    fn variables_with_braces_stay_in_the_word() {
        assert_eq!(
            vals("a ${x}y a${b}c $${{z;"),
            ["a", "${x}y", "a${b}c", "$${{z"]
        );
        let s = all("a b{}").unwrap();
        assert!(
            matches!(&s[0], Statement::Directive { opens_block: true, args, .. } if args.len() == 1)
        );
    }

    #[test]
    fn ordinary_bytes_inside_bare_words() {
        assert_eq!(vals("a b}c#d\"e'f;"), ["a", "b}c#d\"e'f"]);
    }

    #[test]
    fn paren_after_quote_starts_a_word() {
        assert_eq!(vals(r#"if ($a = "x") {"#), ["if", "($a", "=", "x", ")"]);
        assert_eq!(vals(r#"if ($a = "x"){"#), ["if", "($a", "=", "x", ")"]);
    }

    #[test]
    fn comments() {
        assert_eq!(vals("a # c ; {\n b;"), ["a", "b"]);
        assert_eq!(all("# only").unwrap(), vec![Statement::Eof { line: 1 }]);
    }

    #[test]
    fn errors_like_nginx() {
        assert_eq!(err("a \"b\"c;"), ("unexpected \"c\"".into(), 1));
        assert_eq!(err(";"), ("unexpected \";\"".into(), 1));
        assert_eq!(err("\n{"), ("unexpected \"{\"".into(), 2));
        assert_eq!(err("a }"), ("unexpected \"}\"".into(), 1));
        let eof = "unexpected end of file, expecting \";\" or \"}\"".to_string();
        assert_eq!(err("a\n"), (eof.clone(), 2));
        assert_eq!(err("a \"b\n"), (eof.clone(), 2));
        assert_eq!(err("a \"b\""), (eof.clone(), 1));
        assert_eq!(err("a b\\"), (eof, 1));
    }

    #[test]
    fn too_long_parameters() {
        let long = format!("a {};\nb;\n", "x".repeat(5000));
        assert_eq!(
            err(&long),
            ("too long parameter \"xxxxxxxxxx...\" started".into(), 1)
        );
        let q = format!("a\n\"{}\";\nb;\n", "x".repeat(5000));
        assert_eq!(
            err(&q),
            (
                "too long parameter, probably missing terminating \"\"\" character".into(),
                2
            )
        );
        let fits = format!("a {};\nb;\n", "x".repeat(4000));
        assert!(all(&fits).is_ok());
        // Whitespace moves nginx's mark; a long comment does not.
        let ws = format!("a;{}b;\n", " ".repeat(9000));
        assert!(all(&ws).is_ok());
        let c = format!("a;\n#{}\nb;\n", "x".repeat(5000));
        assert_eq!(err(&c).1, 2);
    }

    #[test]
    fn columns() {
        let s = all("ab  cd;\n  \"e\";").unwrap();
        match &s[1] {
            Statement::Directive { name, .. } => {
                assert_eq!((name.span.line, name.span.col), (2, 3))
            }
            other => panic!("unexpected {other:?}"),
        }
        match &s[0] {
            Statement::Directive { args, .. } => assert_eq!(args[0].span.col, 5),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn param_source() {
        let mut lx = Lexer::new(
            Arc::from(&b"daemon off"[..]),
            FileName::from("t"),
            Source::Param,
        );
        let e = lx.next_statement().unwrap_err();
        assert_eq!(e.message, "unexpected end of parameter, expecting \";\"");
    }
}
