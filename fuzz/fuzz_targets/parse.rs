//! Fuzz target: any bytes through the configuration pipeline must return (no panic, no hang), and
//! any error must be located. Run with `cargo fuzz run parse` from the repository root.

#![no_main]

use std::path::PathBuf;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use nginx_rs::conf::{self, LoadOptions, Origin};

/// The pipeline under fuzzing. Today it is the parser; when `plan::check` lands, call it here on
/// `parsed` too, so one target covers parse+check.
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
}

fuzz_target!(|data: &[u8]| pipeline(data));
