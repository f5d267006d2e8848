//! A throwaway tokenizer for tests only, until the real parser (`conf::parser`) lands: words,
//! quotes with `\"`-style escapes, `#` comments, `;`, `{`, `}`. Spans follow nginx (line of the
//! terminating `;` or `{`). Not nginx's full rules; never used by the binary.

#![allow(dead_code)]

use std::sync::Arc;

use super::conf_api::{Arg, ConfError, Directive, Parsed, Quote, SourceFile, Span};

pub fn parse(text: &str, file: &str) -> Parsed {
    let file: Arc<str> = file.into();
    let mut toks: Vec<(String, Quote, u32, u32, bool)> = Vec::new(); // word, quote, line, col, special
    let b = text.as_bytes();
    let (mut i, mut line, mut col) = (0usize, 1u32, 1u32);
    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => {
                line += 1;
                col = 1;
                i += 1;
                continue;
            }
            b' ' | b'\t' | b'\r' => {}
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b';' | b'{' | b'}' => {
                toks.push(((c as char).to_string(), Quote::Bare, line, col, true))
            }
            b'"' | b'\'' => {
                let (sl, sc) = (line, col);
                let mut w = String::new();
                i += 1;
                col += 1;
                while i < b.len() && b[i] != c {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        i += 1;
                        col += 1;
                        match b[i] {
                            b'n' => w.push('\n'),
                            b't' => w.push('\t'),
                            b'r' => w.push('\r'),
                            x if x == c || x == b'\\' => w.push(x as char),
                            x => {
                                w.push('\\');
                                w.push(x as char)
                            }
                        }
                    } else {
                        if b[i] == b'\n' {
                            line += 1;
                            col = 0;
                        }
                        w.push(b[i] as char);
                    }
                    i += 1;
                    col += 1;
                }
                toks.push((
                    w,
                    if c == b'"' {
                        Quote::Double
                    } else {
                        Quote::Single
                    },
                    sl,
                    sc,
                    false,
                ));
            }
            _ => {
                let (sl, sc) = (line, col);
                let start = i;
                while i < b.len()
                    && !matches!(b[i], b' ' | b'\t' | b'\r' | b'\n' | b';' | b'{' | b'}')
                {
                    if b[i] == b'$' && i + 1 < b.len() && b[i + 1] == b'{' {
                        while i < b.len() && b[i] != b'}' {
                            i += 1;
                            col += 1;
                        }
                    }
                    i += 1;
                    col += 1;
                }
                toks.push((text[start..i].to_string(), Quote::Bare, sl, sc, false));
                continue;
            }
        }
        i += 1;
        col += 1;
    }
    let mut pos = 0;
    let mut err = None;
    let directives = block(&toks, &mut pos, &file, &mut err, true);
    Parsed {
        directives,
        files: vec![SourceFile {
            path: file.clone(),
            text: Some(text.as_bytes().into()),
        }],
        error: err,
    }
}

fn block(
    t: &[(String, Quote, u32, u32, bool)],
    pos: &mut usize,
    file: &Arc<str>,
    err: &mut Option<ConfError>,
    top: bool,
) -> Vec<Directive> {
    let mut out = Vec::new();
    while *pos < t.len() && err.is_none() {
        let (w, _, l, c, special) = &t[*pos];
        if *special && w == "}" {
            if top {
                *err = Some(ConfError::emerg(
                    "unexpected \"}\"",
                    &Span::new(file.into(), *l, *c),
                ));
            }
            *pos += 1;
            return out;
        }
        if *special {
            *err = Some(ConfError::emerg(
                format!("unexpected \"{w}\""),
                &Span::new(file.into(), *l, *c),
            ));
            return out;
        }
        let name = w.clone();
        let (nl, nc) = (*l, *c);
        *pos += 1;
        let mut args = Vec::new();
        loop {
            let Some((w, q, l, c, special)) = t.get(*pos) else {
                *err = Some(ConfError::emerg(
                    "unexpected end of file, expecting \";\" or \"}\"",
                    &Span::new(file.into(), nl, nc),
                ));
                return out;
            };
            *pos += 1;
            if *special {
                let span = Span::new(file.into(), *l, nc);
                let _ = nl;
                match w.as_str() {
                    ";" => out.push(Directive {
                        name: name.into(),
                        args,
                        block: None,
                        span,
                    }),
                    "{" => {
                        let inner = block(t, pos, file, err, false);
                        out.push(Directive {
                            name: name.into(),
                            args,
                            block: Some(inner),
                            span,
                        });
                    }
                    _ => {
                        *err = Some(ConfError::emerg("unexpected \"}\"", &span));
                    }
                }
                break;
            }
            args.push(Arg {
                value: w.clone().into(),
                quote: *q,
                span: Span::new(file.into(), *l, *c),
            });
        }
    }
    out
}
