//! Benchmark: parsing the 300,000-line `big.conf` of the real-config corpus
//! (`NGINX_RS_CORPUS=/path cargo bench --bench parse`; skipped when the file is absent).
//! For scale, it also times one `nginx -t` of the same file when nginx is installed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use criterion::{black_box, Criterion};
use nginx_rs::conf::{self, LoadOptions};

fn big_conf() -> Option<PathBuf> {
    let dir = std::env::var_os("NGINX_RS_CORPUS")
        .map_or_else(|| PathBuf::from("/tmp/corpus"), PathBuf::from);
    let path = dir.join("npm/nginx-linter/big.conf");
    path.is_file().then_some(path)
}

fn nginx_t_seconds(conf: &Path) -> Option<f64> {
    let nginx = Path::new("/usr/sbin/nginx");
    if !nginx.exists() {
        return None;
    }
    let tmp = tempfile::tempdir().ok()?;
    let prefix = format!("{}/", tmp.path().display());
    let globals = format!("pid {}/nginx.pid;", tmp.path().display());
    let start = Instant::now();
    let status = Command::new(nginx)
        .args(["-t", "-q", "-e", "stderr", "-p", &prefix, "-c"])
        .arg(conf)
        .args(["-g", &globals])
        .status()
        .ok()?;
    status.success().then(|| start.elapsed().as_secs_f64())
}

fn main() {
    let Some(path) = big_conf() else {
        println!("skipped: big.conf not found (set NGINX_RS_CORPUS to the corpus directory)");
        return;
    };
    let text = std::fs::read(&path).expect("big.conf readable");
    let name: Arc<str> = Arc::from(path.to_string_lossy().as_ref());
    let opts = LoadOptions {
        conf_prefix: path.parent().map(Path::to_path_buf).unwrap_or_default(),
    };
    let parsed = conf::parse_bytes(&text, name.clone(), &opts);
    assert!(
        parsed.error.is_none(),
        "big.conf must parse: {:?}",
        parsed.error
    );

    let mut c = Criterion::default().sample_size(10).configure_from_args();
    c.bench_function("parse big.conf (300k lines)", |b| {
        b.iter(|| conf::parse_bytes(black_box(&text), name.clone(), &opts))
    });
    c.final_summary();

    if let Some(secs) = nginx_t_seconds(&path) {
        println!("for scale: one `nginx -t` of the same file took {secs:.2} s");
    }
}
