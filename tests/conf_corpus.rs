//! Real configurations (from `shared/corpus/get-real-configs.sh`, given by `NGINX_RS_CORPUS`):
//! every file is parsed by nginx-rs and tested by real nginx, and the two must agree on syntax.
//!
//! nginx stops at its first error, and most of its errors are about meaning (unknown directive,
//! wrong context, missing certificate...), which is not the parser's business. So per file:
//! - nginx reports a parse-level error (tokenizer, block balance, `include`): ours must be the
//!   same message at the same FILE:LINE;
//! - nginx reports another error at FILE:LINE: nginx read everything before it, so we must not
//!   fail earlier in that file;
//! - nginx accepts the file, or fails only after reading all of it (no FILE:LINE): we must parse
//!   it without error.
//!
//! Relative includes resolve against a conf prefix that mirrors the file's directory.
//! Each file is included from a wrapper: at main level if it has top-level `events`/`http`, else
//! inside `http {}`; if nginx says a directive "is not allowed here", it is retried inside
//! `server { location / { } }`, which lets nginx read more of location-level snippets.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nginx_rs::conf::{self, LoadOptions, Origin};

mod conf_support;

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else if p.is_file() {
            out.push(p);
        }
    }
}

fn is_parse_level(message: &str) -> bool {
    [
        "unexpected ",
        "too long parameter",
        "open() ",
        "pread() ",
        "invalid number of arguments in \"include\"",
        "directive \"include\"",
    ]
    .iter()
    .any(|p| message.starts_with(p))
}

/// `[emerg] MESSAGE in FILE:LINE` -> (MESSAGE, Some((FILE, LINE))).
fn split_verdict(v: &str) -> (String, Option<(String, u32)>) {
    let body = v.split_once("] ").map_or(v, |(_, m)| m);
    if let Some((msg, at)) = body.rsplit_once(" in ") {
        if let Some((file, line)) = at.rsplit_once(':') {
            if let Ok(line) = line.parse() {
                return (msg.to_string(), Some((file.to_string(), line)));
            }
        }
    }
    (body.to_string(), None)
}

/// A fresh conf prefix whose entries are symlinks to the file's siblings, so that relative
/// `include`s resolve as the package meant them to, for nginx and for us.
fn conf_prefix_for(scratch: &Path, file: &Path) -> PathBuf {
    let n = fs::read_dir(scratch).map_or(0, |d| d.count());
    let dir = scratch.join(format!("p{n}"));
    fs::create_dir_all(&dir).expect("scratch dir");
    if let Some(Ok(entries)) = file.parent().map(fs::read_dir) {
        for e in entries.flatten() {
            let _ = std::os::unix::fs::symlink(e.path(), dir.join(e.file_name()));
        }
    }
    dir
}

#[test]
fn real_configs_tokenize_like_nginx() {
    let Some(dir) = std::env::var_os("NGINX_RS_CORPUS") else {
        println!("skipped: set NGINX_RS_CORPUS to a directory filled by get-real-configs.sh");
        return;
    };
    if !conf_support::nginx_installed() {
        println!("skipped: {} is not installed", conf_support::NGINX);
        return;
    }
    let mut files = Vec::new();
    files_under(Path::new(&dir), &mut files);
    files.sort();
    assert!(!files.is_empty(), "no files under {dir:?}");

    let scratch = tempfile::tempdir().expect("tempdir");
    let (mut same_error, mut both_ok, mut later_semantic, mut post_parse) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    let mut big_seen = false;

    for file in &files {
        let path = fs::canonicalize(file).unwrap_or_else(|_| file.clone());
        let name = path.display().to_string();
        big_seen |= name.ends_with("big.conf");
        let text = fs::read(&path).expect("corpus file readable");
        let tmp = conf_prefix_for(scratch.path(), &path);
        let opts = LoadOptions {
            conf_prefix: tmp.clone(),
        };
        let strip = format!("{}/", tmp.display());
        let ours = conf::parse_bytes(&text, Arc::from(name.as_str()), &opts);
        let main_level = ours
            .directives
            .iter()
            .any(|d| d.name == "events" || d.name == "http");
        let mut wrapper = if main_level {
            format!("include \"{name}\";\n")
        } else {
            format!("events {{}} http {{ include \"{name}\"; }}\n")
        };
        let mut verdict = conf_support::nginx_test(&tmp, &wrapper);
        if verdict
            .as_deref()
            .is_some_and(|v| v.contains("is not allowed here"))
            && !main_level
        {
            wrapper = format!(
                "events {{}} http {{ server {{ location / {{ include \"{name}\"; }} }} }}\n"
            );
            verdict = conf_support::nginx_test(&tmp, &wrapper);
        }
        let our_error = ours
            .error
            .as_ref()
            .map(|e| e.to_string().replace(&strip, ""));
        match verdict {
            None if our_error.is_none() => both_ok += 1,
            None => failures.push(format!("{name}: nginx accepts it, we say {our_error:?}")),
            Some(v) => {
                let (message, at) = split_verdict(&v);
                if is_parse_level(&message) && at.is_some() {
                    if our_error.as_deref() == Some(v.as_str()) {
                        println!("same error: {v}");
                        same_error += 1;
                    } else {
                        failures.push(format!("{name}: nginx says {v:?}, we say {our_error:?}"));
                    }
                    continue;
                }
                let Some((nfile, nline)) = at else {
                    // Reported after the whole configuration was read: no syntax error exists.
                    if our_error.is_none() {
                        post_parse += 1;
                    } else {
                        failures.push(format!(
                            "{name}: nginx read it all ({v:?}), we say {our_error:?}"
                        ));
                    }
                    continue;
                };
                let ours_earlier = ours.error.as_ref().and_then(|e| match &e.origin {
                    Origin::At(s) => Some((s.file.to_string(), s.line)),
                    _ => None,
                });
                match ours_earlier {
                    Some((f, l)) if f == nfile && l < nline => failures.push(format!(
                        "{name}: nginx read up to line {nline} ({v:?}), we fail earlier: {our_error:?}"
                    )),
                    _ => later_semantic += 1,
                }
            }
        }
    }
    println!(
        "{} files: {both_ok} accepted by both, {same_error} same parse error, \
         {later_semantic} nginx stops at a non-syntax error (we read at least as far), \
         {post_parse} nginx fails after reading everything (we parse them)",
        files.len()
    );
    assert!(big_seen, "the corpus has no big.conf");
    assert!(
        failures.is_empty(),
        "{} files disagree with nginx:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
