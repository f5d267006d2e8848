//! Heap used by parse + check of the corpus's 300,000-line `big.conf` (100,000 `location = /okN
//! { return 200; }` in one server), measured with a counting allocator: the peak and the live
//! bytes after compiling it as `-t` does (`plan::compile_file`, read as a stream), and the heap
//! of its tree (`conf::load_file`, which `-t` does not build). Printed with `--nocapture`; the bounds below are regression guards (the
//! figures and what they are made of are in the README's Benchmarks section).
//!
//! Needs `NGINX_RS_CORPUS` (skipped with a printed reason otherwise).

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

mod counting_alloc;

use counting_alloc::{Counting, LIVE, PEAK};
use nginx_rs::conf::{parser, LoadOptions};
use nginx_rs::plan::{self, CompileOptions, NoNetwork, Shape};

#[global_allocator]
static ALLOC: Counting = Counting;

const MB: f64 = 1024.0 * 1024.0;

fn mb(n: usize) -> f64 {
    n as f64 / MB
}

#[test]
fn big_conf_heap() {
    let Ok(corpus) = std::env::var("NGINX_RS_CORPUS") else {
        println!("SKIP big_conf_heap: NGINX_RS_CORPUS is not set");
        return;
    };
    let path = PathBuf::from(corpus).join("npm/nginx-linter/big.conf");
    if !path.exists() {
        println!("SKIP big_conf_heap: {} is missing", path.display());
        return;
    }
    let file_size = std::fs::metadata(&path)
        .map(|m| m.len() as usize)
        .unwrap_or(0);
    let lopts = LoadOptions {
        conf_prefix: path.parent().map(PathBuf::from).unwrap_or_default(),
    };
    let opts = CompileOptions {
        shape: Shape::Full,
        resolver: Arc::new(NoNetwork),
        ..Default::default()
    };

    // What the CLI does: compile while reading, no tree.
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let (result, _, parsed) = plan::compile_file(&path, &lopts, &opts, false);
    let plan = result.expect("big.conf compiles");
    let with_sources = LIVE.load(Ordering::Relaxed) - base;
    drop(parsed);
    let plan_only = LIVE.load(Ordering::Relaxed) - base;
    let peak = PEAK.load(Ordering::Relaxed) - base;
    assert_eq!(plan.http.servers[0].locations.len(), 100_000);
    drop(plan);

    // The tree alone (what `conf::load_file` builds for tools and the grammar goldens).
    let base = LIVE.load(Ordering::Relaxed);
    let parsed = parser::load_file(&path, &lopts);
    assert!(parsed.error.is_none(), "{:?}", parsed.error);
    let tree = LIVE.load(Ordering::Relaxed) - base;
    drop(parsed);

    println!(
        "big.conf {:.1} MB: compiled while read: peak {:.1} MB, plan + names of files read {:.1} MB, \
         plan alone {:.1} MB; source + tree (not built by -t) {:.1} MB",
        mb(file_size),
        mb(peak),
        mb(with_sources),
        mb(plan_only),
        mb(tree),
    );
    // Guards against regressions. 2026-11-28, compiled while read through a 64 KB window, plain
    // bodies interned: peak 13.2, plan alone 9.2 MB (the tree, not built by -t: 34.4 MB). Before
    // (tree + whole text + one LocConf per location): peak 53.5, plan alone 23.1 MB; before the
    // first compaction the peak was 312 MB.
    assert!(peak < 15 * (1 << 20), "peak heap {:.1} MB", mb(peak));
    assert!(
        plan_only < 10 * (1 << 20),
        "plan heap {:.1} MB",
        mb(plan_only)
    );
    // Nothing of the source text is kept once compiled (only the file's name).
    assert!(
        with_sources - plan_only < 4096,
        "sources kept after compiling: {} bytes",
        with_sources - plan_only
    );
    assert!(tree < 40 * (1 << 20), "tree heap {:.1} MB", mb(tree));
}
