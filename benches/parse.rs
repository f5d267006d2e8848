//! Benchmark: parsing the 300,000-line `big.conf` of the real-config corpus
//! (`NGINX_RS_CORPUS=/path cargo bench --bench parse`; skipped when the file is absent).
//! Besides criterion's wall-clock numbers (noisy on a shared machine), it prints the CPU time of
//! one parse (from the scheduler's per-thread accounting), the memory the parsed tree holds and
//! the peak during parsing (from a counting allocator), and, for scale, one `nginx -t` of the file.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use std::sync::atomic::Ordering;

use criterion::{black_box, Criterion};
use nginx_rs::conf::{self, LoadOptions};

/// Counts live and peak heap bytes so the benchmark can report the tree's memory.
#[path = "../tests/counting_alloc/mod.rs"]
mod counting_alloc;
use counting_alloc::{Counting, LIVE, PEAK};

#[global_allocator]
static ALLOC: Counting = Counting;

/// Nanoseconds this thread has spent on a CPU (`/proc/thread-self/schedstat`, first field).
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

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
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let cpu0 = cpu_ns();
    let parsed = conf::parse_bytes(&text, name.clone(), &opts);
    let cpu1 = cpu_ns();
    assert!(
        parsed.error.is_none(),
        "big.conf must parse: {:?}",
        parsed.error
    );
    let held = LIVE.load(Ordering::Relaxed) - before;
    let peak = PEAK.load(Ordering::Relaxed) - before;
    let mb = |b: usize| b as f64 / 1e6;
    let ratio = |b: usize| b as f64 / text.len() as f64;
    println!(
        "big.conf: {:.1} MB; the parsed tree holds {:.1} MB ({:.1}x, with the file copy kept for -T), \
         peak {:.1} MB ({:.1}x)",
        mb(text.len()),
        mb(held),
        ratio(held),
        mb(peak),
        ratio(peak)
    );
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        println!("one parse: {:.1} ms of CPU time", (b - a) as f64 / 1e6);
    }
    drop(parsed);

    let mut c = Criterion::default().sample_size(10).configure_from_args();
    c.bench_function("parse big.conf (300k lines)", |b| {
        b.iter(|| conf::parse_bytes(black_box(&text), name.clone(), &opts))
    });
    c.final_summary();

    if let Some(secs) = nginx_t_seconds(&path) {
        println!("for scale: one `nginx -t` of the same file took {secs:.2} s");
    }
}
