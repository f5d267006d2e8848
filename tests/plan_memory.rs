//! Heap used by parse + check of the corpus's 300,000-line `big.conf` (100,000 `location = /okN
//! { return 200; }` in one server), measured with a counting allocator: live bytes after each
//! stage and the peak. Printed with `--nocapture`; the bounds below are regression guards (the
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
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let lopts = LoadOptions {
        conf_prefix: path.parent().map(PathBuf::from).unwrap_or_default(),
    };
    let mut parsed = parser::load_file(&path, &lopts);
    assert!(parsed.error.is_none(), "{:?}", parsed.error);
    let tree = LIVE.load(Ordering::Relaxed) - base;
    let opts = CompileOptions {
        shape: Shape::Full,
        resolver: Arc::new(NoNetwork),
        ..Default::default()
    };
    let (result, _) = plan::compile_collecting_owned(&mut parsed, &opts);
    let plan = result.expect("big.conf compiles");
    let with_plan = LIVE.load(Ordering::Relaxed) - base;
    drop(parsed);
    let plan_only = LIVE.load(Ordering::Relaxed) - base;
    let peak = PEAK.load(Ordering::Relaxed) - base;
    println!(
        "big.conf {:.1} MB: source + tree {:.1} MB, plan + source {:.1} MB, plan alone {:.1} MB, \
         peak {:.1} MB",
        mb(file_size),
        mb(tree),
        mb(with_plan),
        mb(plan_only),
        mb(peak)
    );
    assert_eq!(plan.http.servers[0].locations.len(), 100_000);
    // Guards against regressions (2026-11-28: source + tree 34.4, plan alone 23.1, peak 53.5 MB;
    // before the compaction the peak was 312 MB).
    assert!(peak < 70 * (1 << 20), "peak heap {:.1} MB", mb(peak));
    assert!(
        plan_only < 30 * (1 << 20),
        "plan heap {:.1} MB",
        mb(plan_only)
    );
}
