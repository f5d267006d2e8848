//! The directive table against real nginx: for every directive nginx-rs implements and every
//! context (main, events, http, server, location, upstream, `if` in server and in location), nginx
//! and nginx-rs agree on whether the directive is allowed there. Each probe is `NAME;` with no
//! arguments: "is not allowed here" is decided before arguments are looked at, by both.

mod support;

use std::fs;
use std::path::Path;
use std::sync::Arc;

use nginx_rs::conf::parser::{parse_bytes, LoadOptions};
use nginx_rs::plan::{self, table, NoNetwork, Shape};

const NGINX: &str = "/usr/sbin/nginx";

/// Directives nginx 1.22 does not have (newer nginx, or nginx-rs's own).
const NOT_IN_NGINX_1_22: &[&str] = &["http2", "include", "metrics"];

fn contexts(name: &str) -> Vec<(&'static str, String)> {
    let p = format!("{name};");
    vec![
        ("main", format!("{p}\nevents {{}}\n")),
        ("events", format!("events {{ {p} }}\n")),
        ("http", format!("events {{}}\nhttp {{ {p} }}\n")),
        (
            "server",
            format!("events {{}}\nhttp {{ server {{ {p} }} }}\n"),
        ),
        (
            "location",
            format!("events {{}}\nhttp {{ server {{ location / {{ {p} }} }} }}\n"),
        ),
        (
            "upstream",
            format!("events {{}}\nhttp {{ upstream u {{ {p} server 127.0.0.1; }} }}\n"),
        ),
        (
            "if-server",
            format!("events {{}}\nhttp {{ server {{ if ($uri) {{ {p} }} }} }}\n"),
        ),
        (
            "if-location",
            format!("events {{}}\nhttp {{ server {{ location / {{ if ($uri) {{ {p} }} }} }} }}\n"),
        ),
    ]
}

#[test]
fn allowed_contexts_match_nginx() {
    if !Path::new(NGINX).exists() {
        eprintln!("skipped: {NGINX} is not installed");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = tmp.path().join("probe.conf");
    let mut names: Vec<&str> = table::COMMANDS.iter().map(|c| c.name).collect();
    names.sort();
    names.dedup();
    let mut failures = Vec::new();
    let (mut allowed, mut refused) = (0, 0);
    for name in names.into_iter().filter(|n| !NOT_IN_NGINX_1_22.contains(n)) {
        for (ctx, text) in contexts(name) {
            fs::write(&conf, &text).expect("write");
            let out = support::nginx::nginx_t(&conf, tmp.path());
            let not_allowed = format!("\"{name}\" directive is not allowed here");
            let theirs = String::from_utf8_lossy(&out.stderr).contains(&not_allowed);
            let parsed = parse_bytes(
                text.as_bytes(),
                Arc::from("probe.conf"),
                &LoadOptions {
                    conf_prefix: tmp.path().to_path_buf(),
                },
            );
            let ours = match plan::check(&parsed, Shape::Full, Arc::new(NoNetwork)) {
                Ok(_) => false,
                Err(e) => e.message == not_allowed,
            };
            if theirs {
                refused += 1;
            } else {
                allowed += 1;
            }
            if ours != theirs {
                failures.push(format!(
                    "{name} in {ctx}: nginx not-allowed={theirs}, nginx-rs not-allowed={ours}"
                ));
            }
        }
    }
    // Both verdicts must actually occur, or the probes test nothing.
    assert!(
        allowed > 100 && refused > 100,
        "allowed {allowed}, refused {refused}"
    );
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The wrapper that puts a directive in its first allowed context.
fn wrap_in(ctx: table::Ctx, stmt: &str) -> String {
    if ctx & table::MAIN != 0 {
        format!("{stmt}\nevents {{}}\n")
    } else if ctx & table::EVENT != 0 {
        format!("events {{ {stmt} }}\n")
    } else if ctx & table::HTTP != 0 {
        format!("events {{}}\nhttp {{ {stmt} }}\n")
    } else if ctx & table::SRV != 0 {
        format!("events {{}}\nhttp {{ server {{ {stmt} }} }}\n")
    } else if ctx & table::LOC != 0 {
        format!("events {{}}\nhttp {{ server {{ location / {{ {stmt} }} }} }}\n")
    } else {
        format!("events {{}}\nhttp {{ upstream u {{ {stmt} server 127.0.0.1; }} }}\n")
    }
}

#[test]
fn argument_counts_match_nginx() {
    if !Path::new(NGINX).exists() {
        eprintln!("skipped: {NGINX} is not installed");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = tmp.path().join("probe.conf");
    let mut failures = Vec::new();
    let mut refused = 0;
    for cmd in table::COMMANDS
        .iter()
        .filter(|c| !NOT_IN_NGINX_1_22.contains(&c.name))
    {
        for n in 0..=4 {
            let args = vec!["x"; n].join(" ");
            let stmt = if cmd.block {
                format!("{} {args} {{ }}", cmd.name)
            } else {
                format!("{} {args};", cmd.name)
            };
            let text = wrap_in(cmd.ctx, &stmt);
            fs::write(&conf, &text).expect("write");
            let out = support::nginx::nginx_t(&conf, tmp.path());
            let bad_count = format!("invalid number of arguments in \"{}\" directive", cmd.name);
            let theirs = String::from_utf8_lossy(&out.stderr).contains(&bad_count);
            let parsed = parse_bytes(
                text.as_bytes(),
                Arc::from("probe.conf"),
                &LoadOptions {
                    conf_prefix: tmp.path().to_path_buf(),
                },
            );
            let ours = matches!(plan::check(&parsed, Shape::Full, Arc::new(NoNetwork)), Err(e) if e.message == bad_count);
            refused += usize::from(theirs);
            if ours != theirs {
                failures.push(format!(
                    "{} with {n} args: nginx refuses={theirs}, nginx-rs refuses={ours}",
                    cmd.name
                ));
            }
        }
    }
    assert!(
        refused > 100,
        "only {refused} refusals: the probes test nothing"
    );
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
