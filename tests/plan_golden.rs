//! Semantic error goldens: `grammar-tests/err/NNNN_*.conf` with NNNN >= 0500 are the plan's cases
//! (lower numbers are the tokenizer's, run by the grammar runner). Each must fail with exactly the
//! line in its `.err`, which was produced by real `nginx -t` (the case wrapped in
//! `events {} http { include CASE; }`, or run as is when its first line is `# main`). All
//! mismatches are collected before failing.
//!
//! A second test re-runs nginx on every case (where it is installed) and fails if nginx's first
//! `[emerg]` line differs from the golden file.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nginx_rs::conf::parser::{parse_bytes, LoadOptions, Parsed};
use nginx_rs::plan::{self, CompileOptions, Shape};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("grammar-tests")
}

/// The plan's cases: `err/NNNN_*.conf` with NNNN >= 500, sorted.
fn cases() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for e in fs::read_dir(root().join("err"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().to_string();
        let num: u32 = name.get(..4).and_then(|n| n.parse().ok()).unwrap_or(0);
        if num >= 500 && name.ends_with(".conf") {
            out.push((format!("err/{name}"), e.path()));
        }
    }
    out.sort();
    out
}

/// Parses with the real parser; while `conf::parser` is still the stub (it returns nothing for
/// non-empty text), falls back to the test-only tokenizer.
fn parse(text: &str, rel: &str) -> Parsed {
    let opts = LoadOptions {
        conf_prefix: root(),
    };
    let p = parse_bytes(text.as_bytes(), Arc::from(rel), &opts);
    if p.directives.is_empty() && p.error.is_none() && !text.trim().is_empty() {
        return support::mini::parse(text, rel);
    }
    p
}

fn verdict(text: &str, rel: &str) -> String {
    let parsed = parse(text, rel);
    let opts = CompileOptions {
        shape: if text.starts_with("# main") {
            Shape::Full
        } else {
            Shape::Fragment
        },
        resolver: Arc::new(nginx_rs::cli::SystemResolver),
        default_listen_port: 80,
        // nginx checks `user` only as root, and so do we: match how nginx ran the goldens.
        // SAFETY: geteuid has no preconditions.
        superuser: unsafe { libc::geteuid() } == 0,
        ..Default::default()
    };
    match plan::compile(&parsed, &opts) {
        Ok(_) => "ok".to_string(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn plan_error_goldens() {
    let mut failures = Vec::new();
    let all = cases();
    assert!(
        all.len() >= 80,
        "expected at least 80 plan cases, found {}",
        all.len()
    );
    for (rel, path) in &all {
        let text = fs::read_to_string(path).unwrap_or_default();
        let expected = fs::read_to_string(path.with_extension("err")).unwrap_or_default();
        let got = verdict(&text, rel);
        if got.trim() != expected.trim() {
            failures.push(format!(
                "{rel}\n  expected: {}\n  got:      {}",
                expected.trim(),
                got.trim()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

const NGINX: &str = "/usr/sbin/nginx";

#[test]
fn nginx_agrees_with_plan_goldens() {
    if !Path::new(NGINX).exists() {
        eprintln!("skipped: {NGINX} is not installed");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut failures = Vec::new();
    for (rel, path) in cases() {
        let text = fs::read_to_string(&path).unwrap_or_default();
        let conf = if text.starts_with("# main") {
            path.clone()
        } else {
            support::nginx::wrap_fragment(&path, tmp.path())
        };
        let out = support::nginx::nginx_t(&conf, tmp.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        let strip = format!("{}/", root().display());
        let line = stderr
            .lines()
            .find(|l| l.contains("[emerg]") || l.contains("[warn] invalid value"))
            .map(|l| normalize_nginx_line(l).replace(&strip, ""))
            .unwrap_or_else(|| "ok".into());
        let expected = fs::read_to_string(path.with_extension("err")).unwrap_or_default();
        if line.trim() != expected.trim() {
            failures.push(format!(
                "{rel}: golden {:?}, nginx says {line:?}",
                expected.trim()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "nginx disagrees:\n{}",
        failures.join("\n")
    );
}

/// `nginx: [emerg] M` or `2026/11/27 23:16:07 [emerg] 1441#1441: M` → `[emerg] M`.
fn normalize_nginx_line(l: &str) -> String {
    let Some(start) = l.find('[') else {
        return l.to_string();
    };
    let rest = &l[start..];
    let Some(end) = rest.find("] ") else {
        return rest.to_string();
    };
    let (level, msg) = (&rest[..end + 1], &rest[end + 2..]);
    // Drop the "PID#TID: " that timestamped lines carry.
    let msg = match msg.split_once(": ") {
        Some((pid, m))
            if pid.contains('#') && pid.bytes().all(|b| b.is_ascii_digit() || b == b'#') =>
        {
            m
        }
        _ => msg,
    };
    format!("{level} {msg}")
}

/// The CLI compiles while reading ([`plan::compile_file`]); the goldens above go through the
/// tree ([`plan::compile`]). Both must give the same verdict, warnings and files on every case,
/// grammar and plan alike, read as a fragment and as a full configuration.
#[test]
fn streaming_compile_agrees_with_tree() {
    let mut paths = Vec::new();
    for dir in ["ok", "err"] {
        for e in fs::read_dir(root().join(dir))
            .into_iter()
            .flatten()
            .flatten()
        {
            if e.path().extension().is_some_and(|x| x == "conf") {
                paths.push(e.path());
            }
        }
    }
    paths.sort();
    assert!(paths.len() >= 400, "found only {} cases", paths.len());
    let lopts = LoadOptions {
        conf_prefix: root(),
    };
    let mut failures = Vec::new();
    let mut errors = 0;
    for path in &paths {
        // Read as a stream (what `-t` does) and whole (serving, `-T`).
        for (shape, keep) in [Shape::Fragment, Shape::Full, Shape::Auto]
            .into_iter()
            .flat_map(|s| [(s, false), (s, true)])
        {
            let opts = CompileOptions {
                shape,
                resolver: Arc::new(plan::NoNetwork),
                default_listen_port: 80,
                ..Default::default()
            };
            let parsed = nginx_rs::conf::load_file(path, &lopts);
            let (tree, tree_warnings) = plan::compile_collecting(&parsed, &opts);
            let (stream, stream_warnings, sparsed) = plan::compile_file(path, &lopts, &opts, keep);
            let show = |r: &Result<plan::Plan, nginx_rs::conf::ConfError>| match r {
                Ok(p) => format!("ok, {} servers", p.http.servers.len()),
                Err(e) => e.to_string(),
            };
            let (t, s) = (show(&tree), show(&stream));
            errors += usize::from(tree.is_err());
            let tw: Vec<String> = tree_warnings.iter().map(|w| w.to_string()).collect();
            let sw: Vec<String> = stream_warnings.iter().map(|w| w.to_string()).collect();
            let tf: Vec<&str> = parsed.files.iter().map(|f| &*f.path).collect();
            let sf: Vec<&str> = sparsed.files.iter().map(|f| &*f.path).collect();
            // After an error the stream has read only up to it; the tree read everything.
            if t != s || tw != sw || (tree.is_ok() && tf != sf) {
                failures.push(format!(
                    "{} ({shape:?}, keep {keep})\n  tree:   {t} {tw:?} {tf:?}\n  stream: {s} {sw:?} {sf:?}",
                    path.display()
                ));
            }
        }
    }
    assert!(
        errors > 600,
        "only {errors} error verdicts: the cases did not run"
    );
    assert!(
        failures.is_empty(),
        "{} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
