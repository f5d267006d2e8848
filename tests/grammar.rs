//! Golden tests for the configuration language: `grammar-tests/ok/*.conf` must parse and dump to
//! the `.ast` next to them; `grammar-tests/err/*.conf` must fail with the one-line error in the
//! `.err` next to them. Every mismatch is collected before failing; `UPDATE_GOLDEN=1` rewrites the
//! expectations instead.
//!
//! A second test runs real nginx (`nginx -t`) on every case and checks it agrees with the golden
//! files: they are nginx's truth, not ours. Cases are fragments of `http {}` unless their first
//! line is `# main` (then they are main-context files). Relative `include`s in cases resolve
//! against `grammar-tests/`, for us and for nginx alike.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nginx_rs::cli::SystemResolver;
use nginx_rs::conf::{self, LoadOptions};
use nginx_rs::plan::{self, CompileOptions, Shape};

mod conf_support;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("grammar-tests")
}

/// The context a case is written for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Level {
    Main,
    Http,
}

fn level_of(text: &[u8]) -> Level {
    if text.starts_with(b"# main") {
        Level::Main
    } else {
        Level::Http
    }
}

/// What the pipeline says about one case: the dump of the tree, or the nginx-format error line.
type Outcome = Result<String, String>;

/// THE pipeline under test: parse, then check the tree like `nginx -t` (as the contents of
/// `http {}` unless the case is `# main`), with the options `tests/plan_golden.rs` uses. For a
/// parse-only run, return the parse result without compiling; nothing else here depends on it.
fn pipeline(text: &[u8], rel: &str, level: Level) -> Outcome {
    let gt = root();
    let load = LoadOptions {
        conf_prefix: gt.clone(),
    };
    let parsed = conf::parse_bytes(text, Arc::from(rel), &load);
    let strip = format!("{}/", gt.display());
    let opts = CompileOptions {
        shape: match level {
            Level::Main => Shape::Full,
            Level::Http => Shape::Fragment,
        },
        resolver: Arc::new(SystemResolver),
        default_listen_port: 80,
        // nginx checks `user` only as root, and the goldens come from nginx run as this user.
        // SAFETY: geteuid has no preconditions and cannot fail.
        superuser: unsafe { libc::geteuid() } == 0,
        ..Default::default()
    };
    match plan::compile(&parsed, &opts) {
        Err(e) => Err(e.to_string().replace(&strip, "")),
        Ok(_) => Ok(conf::dump(&parsed.directives, rel, &strip)),
    }
}

/// `(relative name, path)` of every case in `dir` (`ok` or `err`), sorted; subfolders hold
/// included files, not cases.
fn cases(dir: &str) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(root().join(dir)) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_some_and(|x| x == "conf") && path.is_file() {
            let name = format!("{dir}/{}", e.file_name().to_string_lossy());
            out.push((name, path));
        }
    }
    out.sort();
    out
}

#[test]
fn golden_cases() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    let mut count = 0;
    for dir in ["ok", "err"] {
        for (rel, path) in cases(dir) {
            count += 1;
            let text = fs::read(&path).expect("case readable");
            let outcome = pipeline(&text, &rel, level_of(&text));
            let (ext, actual) = match (dir, outcome) {
                ("ok", Ok(dump)) => ("ast", dump),
                ("ok", Err(e)) => ("ast", format!("UNEXPECTED ERROR: {e}\n")),
                (_, Err(e)) => ("err", format!("{e}\n")),
                (_, Ok(_)) => ("err", "UNEXPECTED SUCCESS\n".to_string()),
            };
            let golden = path.with_extension(ext);
            if update {
                fs::write(&golden, &actual).expect("golden writable");
                continue;
            }
            let expected = fs::read_to_string(&golden).unwrap_or_default();
            if expected != actual {
                failures.push(format!(
                    "{rel}:\n--- expected ({})\n{expected}--- actual\n{actual}",
                    golden.display()
                ));
            }
        }
    }
    assert!(count >= 200, "only {count} golden cases");
    assert!(
        failures.is_empty(),
        "{} of {count} golden cases differ (UPDATE_GOLDEN=1 rewrites them):\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Runs `nginx -t` on a case wrapped so that its lines stay its own.
fn nginx_verdict(tmp: &Path, rel: &str, level: Level) -> Option<String> {
    let wrapper = match level {
        Level::Main => format!("include {rel};\n"),
        Level::Http => format!("events {{}} http {{ include {rel}; }}\n"),
    };
    conf_support::nginx_test(tmp, &wrapper)
}

#[test]
fn nginx_agrees_with_goldens() {
    if !conf_support::nginx_installed() {
        println!("skipped: {} is not installed", conf_support::NGINX);
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    for dir in ["ok", "err"] {
        std::os::unix::fs::symlink(root().join(dir), tmp.path().join(dir)).expect("symlink");
    }
    let mut failures = Vec::new();
    for dir in ["ok", "err"] {
        for (rel, path) in cases(dir) {
            let text = fs::read(&path).expect("case readable");
            let verdict = nginx_verdict(tmp.path(), &rel, level_of(&text));
            let expected = if dir == "ok" {
                None
            } else {
                let golden = fs::read_to_string(path.with_extension("err")).unwrap_or_default();
                Some(golden.trim_end().to_string())
            };
            if verdict != expected {
                failures.push(format!(
                    "{rel}: golden {expected:?}, nginx says {verdict:?}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "nginx disagrees with {} golden cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
