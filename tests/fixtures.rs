//! Every configuration under `fixtures/` passes `nginx-rs -t` (the built binary, nginx's exact
//! output), compiles in-process, and — where nginx is installed — passes `nginx -t` too (fragments
//! wrapped in `events {} http { include FILE; }`, as nginx's own `conf.d` layout reads them).
//!
//! The walkthrough's `default.conf` (and `full/nginx.conf`, which includes it) name
//! `host.docker.internal`: outside Docker nginx rejects that name, while nginx-rs warns and uses
//! 127.0.0.1 (issue 3), so nginx is only consulted for them when the name resolves here.

mod support;

use std::fs;
use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use nginx_rs::conf::parser::{load_file, parse_bytes, LoadOptions};
use nginx_rs::plan::{self, CompileOptions, Shape};

const NGINX: &str = "/usr/sbin/nginx";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// `(path, needs TLS files)` of every fixture configuration.
fn all() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in fs::read_dir(fixtures()).into_iter().flatten().flatten() {
        for f in fs::read_dir(dir.path()).into_iter().flatten().flatten() {
            if f.path().extension().is_some_and(|e| e == "conf") {
                out.push(f.path());
            }
        }
    }
    out.sort();
    out
}

/// True while `conf::parser` is still the stub that returns nothing.
fn parser_is_stub() -> bool {
    let p = parse_bytes(
        b"a;",
        Arc::from("probe"),
        &LoadOptions {
            conf_prefix: PathBuf::from("/"),
        },
    );
    p.directives.is_empty() && p.error.is_none()
}

/// A TLS fixture needs a certificate next to it: copy it to a temp dir and make one with openssl.
fn with_certs(path: &Path, tmp: &Path) -> Option<PathBuf> {
    let conf = tmp.join(path.file_name()?);
    fs::copy(path, &conf).ok()?;
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=tls.example.com",
        ])
        .arg("-keyout")
        .arg(tmp.join("key.pem"))
        .arg("-out")
        .arg(tmp.join("cert.pem"))
        .output()
        .ok()?
        .status
        .success();
    ok.then_some(conf)
}

#[test]
fn every_fixture_passes_nginx_rs_t() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut failures = Vec::new();
    for path in all() {
        let path = if path.starts_with(fixtures().join("tls")) {
            match with_certs(&path, tmp.path()) {
                Some(p) => p,
                None => {
                    eprintln!("skipped {}: openssl not available", path.display());
                    continue;
                }
            }
        } else {
            path
        };
        let out = Command::new(env!("CARGO_BIN_EXE_nginx-rs"))
            .arg("-t")
            .arg("-c")
            .arg(&path)
            .output()
            .expect("nginx-rs runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let p = path.display();
        let ok_lines = format!(
            "nginx-rs: the configuration file {p} syntax is ok\nnginx-rs: configuration file {p} test is successful\n"
        );
        if !out.status.success() || !stderr.ends_with(&ok_lines) {
            failures.push(format!("{p}: exit {:?}\n{stderr}", out.status.code()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_fixture_compiles_in_process() {
    let stub = parser_is_stub();
    let tmp = tempfile::tempdir().expect("tempdir");
    for path in all() {
        let text = fs::read_to_string(&path).expect("readable");
        let rel = path.display().to_string();
        let conf_prefix = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let parsed = if stub {
            if text.contains("include ") {
                eprintln!("skipped {rel}: includes need the real parser");
                continue;
            }
            support::mini::parse(&text, &rel)
        } else {
            load_file(
                &path,
                &LoadOptions {
                    conf_prefix: conf_prefix.clone(),
                },
            )
        };
        let tls_dir = tmp.path().join("certs");
        let conf_prefix = if rel.contains("/tls/") {
            let _ = fs::create_dir_all(&tls_dir);
            if with_certs(&path, &tls_dir).is_none() {
                continue;
            }
            tls_dir.clone()
        } else {
            conf_prefix
        };
        let opts = CompileOptions {
            shape: Shape::Auto,
            prefix: tmp.path().to_path_buf(),
            conf_prefix,
            resolver: Arc::new(nginx_rs::cli::SystemResolver),
            ..Default::default()
        };
        match plan::compile(&parsed, &opts) {
            Ok((plan, _)) => assert!(!plan.http.servers.is_empty(), "{rel}: no servers"),
            Err(e) => panic!("{rel}: {e}"),
        }
    }
}

#[test]
fn nginx_accepts_every_fixture() {
    if !Path::new(NGINX).exists() {
        eprintln!("skipped: {NGINX} is not installed");
        return;
    }
    let docker_host = ("host.docker.internal", 80).to_socket_addrs().is_ok();
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut failures = Vec::new();
    for path in all() {
        let text = fs::read_to_string(&path).unwrap_or_default();
        let uses_docker =
            text.contains("host.docker.internal") || text.contains("walkthrough/default.conf");
        if uses_docker && !docker_host {
            eprintln!(
                "skipped {} for nginx: host.docker.internal does not resolve here",
                path.display()
            );
            continue;
        }
        let path = if path.starts_with(fixtures().join("tls")) {
            match with_certs(&path, tmp.path()) {
                Some(p) => p,
                None => continue,
            }
        } else {
            path
        };
        let conf = if text.contains("events") {
            path.clone()
        } else {
            support::nginx::wrap_fragment(&path, tmp.path())
        };
        let out = support::nginx::nginx_t(&conf, tmp.path());
        if !out.status.success() {
            failures.push(format!(
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "nginx rejects fixtures:\n{}",
        failures.join("\n")
    );
}
