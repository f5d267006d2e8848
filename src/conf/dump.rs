//! A stable, readable text form of a directive tree, used by the golden tests.
//!
//! One directive per line, children indented by two spaces:
//!
//! ```text
//! server {  [1:1]
//!   listen 80 "a b" 'c';  [2:3]
//! }
//! ```
//!
//! Arguments show how they were quoted; quoted ones escape `\`, the quote, and control bytes, bare
//! ones escape whatever would otherwise end or split them. `[L:C]` is nginx's line (that of the
//! terminating `;` or `{`) and the column of the name. Directives from another file than `main`
//! show that file first: `[inc/a.conf 1:1]`.

use std::fmt::Write;

use super::ast::{Arg, Directive, Quote};

/// Dumps `directives`; spans in files other than `main` are prefixed with their file name, with
/// `strip` removed from its front.
pub fn dump(directives: &[Directive], main: &str, strip: &str) -> String {
    let mut out = String::new();
    // Explicit stack: (directive, depth, closing?) so deep trees cannot overflow the stack.
    let mut stack: Vec<(&Directive, usize, bool)> =
        directives.iter().rev().map(|d| (d, 0, false)).collect();
    while let Some((d, depth, closing)) = stack.pop() {
        let indent = "  ".repeat(depth);
        if closing {
            let _ = writeln!(out, "{indent}}}");
            continue;
        }
        let _ = write!(out, "{indent}{}", bare(&d.name));
        for a in &d.args {
            out.push(' ');
            out.push_str(&arg(a));
        }
        let file = if &*d.span.file == main {
            String::new()
        } else {
            let f = d.span.file.strip_prefix(strip).unwrap_or(&d.span.file);
            format!("{f} ")
        };
        match &d.block {
            None => {
                let _ = writeln!(out, ";  [{file}{}:{}]", d.span.line, d.span.col);
            }
            Some(children) => {
                let _ = writeln!(out, " {{  [{file}{}:{}]", d.span.line, d.span.col);
                stack.push((d, depth, true));
                stack.extend(children.iter().rev().map(|c| (c, depth + 1, false)));
            }
        }
    }
    out
}

fn arg(a: &Arg) -> String {
    match a.quote {
        Quote::Bare => bare(&a.value),
        Quote::Double => quoted(&a.value, '"'),
        Quote::Single => quoted(&a.value, '\''),
    }
}

fn escape_control(c: char, out: &mut String) -> bool {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if c.is_control() => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        _ => return false,
    }
    true
}

fn quoted(v: &str, q: char) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push(q);
    for c in v.chars() {
        if c == q || c == '\\' {
            out.push('\\');
            out.push(c);
        } else if !escape_control(c, &mut out) {
            out.push(c);
        }
    }
    out.push(q);
    out
}

fn bare(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, ' ' | '"' | '\'' | '\\' | ';' | '{' | '}' | '#') {
            out.push('\\');
            out.push(c);
        } else if !escape_control(c, &mut out) {
            out.push(c);
        }
    }
    if out.is_empty() {
        out.push_str("\\0");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::{parse_bytes, LoadOptions};
    use std::sync::Arc;

    #[test]
    fn dump_shape() {
        let opts = LoadOptions {
            conf_prefix: "/nonexistent".into(),
        };
        let p = parse_bytes(
            b"server {\n  listen 80 \"a b\" 'c\\'d';\n  x \"\\n\"\n;\n}\n",
            Arc::from("m.conf"),
            &opts,
        );
        assert!(p.error.is_none());
        assert_eq!(
            dump(&p.directives, "m.conf", ""),
            "server {  [1:1]\n  listen 80 \"a b\" 'c\\'d';  [2:3]\n  x \"\\n\";  [4:3]\n}\n"
        );
    }
}
