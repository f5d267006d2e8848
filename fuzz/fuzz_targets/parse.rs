//! Fuzz target: any bytes through the configuration pipeline (parse + check) must return (no panic, no hang), and
//! any error must be located. Run with `cargo +nightly fuzz run parse` from the repository root (the
//! README's Testing section has the full command and the last run's results).

#![no_main]

use std::path::PathBuf;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use nginx_rs::conf::{self, LoadOptions, Origin};
use nginx_rs::plan::{self, NoNetwork, Shape};

/// The pipeline under fuzzing: parse, then `-t`'s check in both top-level shapes.
fn pipeline(data: &[u8]) {
    let opts = LoadOptions {
        conf_prefix: PathBuf::from("/nonexistent-fuzz-prefix"),
    };
    let parsed = conf::parse_bytes(data, Arc::from("fuzz.conf"), &opts);
    if let Some(e) = &parsed.error {
        match &e.origin {
            Origin::At(span) => assert!(span.line >= 1, "unlocated error: {e}"),
            Origin::Nowhere => assert!(e.message.contains('"'), "unlocated error: {e}"),
            Origin::CommandLine => panic!("command-line origin for a file: {e}"),
        }
    }
    let _ = conf::dump(&parsed.directives, "fuzz.conf", "");
    for shape in [Shape::Full, Shape::Fragment] {
        let _ = plan::check(&parsed, shape, Arc::new(NoNetwork));
    }
}

fuzz_target!(|data: &[u8]| pipeline(data));
