//! Property tests: whatever bytes the pipeline (parse, then `plan::check`) is fed, it returns
//! (no panic, no hang), and every parse error is located (FILE:LINE, with a line inside the text)
//! or names the file it could not open.

use std::path::PathBuf;
use std::sync::Arc;

use nginx_rs::conf::{self, ConfError, LoadOptions, Origin, Parsed};
use nginx_rs::plan::{self, NoNetwork, Shape};
use proptest::prelude::*;

const VALID: &str = r#"worker_processes 1;
events { worker_connections 64; }
http {
    log_format main '$remote_addr "$request" ${status}x';
    map $uri $m { default 0; "~^/a{2}" 1; }
    upstream u { server 127.0.0.1:8080 weight=2; }
    server {
        listen 8080;
        location ~ "^/x{1,3};" { return 200 "a\"b\n"; }
        if ($request_uri = "/y") { return 204; }
        add_header X a\ b;  # comment ; {
    }
}
"#;

fn opts() -> LoadOptions {
    LoadOptions {
        conf_prefix: PathBuf::from("/nonexistent-prefix"),
    }
}

fn parse(bytes: &[u8]) -> Parsed {
    conf::parse_bytes(bytes, Arc::from("fuzz.conf"), &opts())
}

/// The rest of the pipeline: `-t`'s check, for both top-level shapes, without the network.
fn check(parsed: &Parsed) -> Vec<Result<(), ConfError>> {
    [Shape::Full, Shape::Fragment]
        .into_iter()
        .map(|shape| plan::check(parsed, shape, Arc::new(NoNetwork)).map(|_| ()))
        .collect()
}

/// Every error must say where it is: a line within the text (nginx counts the line after the last
/// newline, hence `+ 1`), or, for a file that could not be opened, no place but the file's name.
fn check_located(bytes: &[u8], parsed: &Parsed) -> Result<(), TestCaseError> {
    let Some(e) = &parsed.error else {
        return Ok(());
    };
    let lines = bytes.iter().filter(|&&b| b == b'\n').count() as u32 + 1;
    match &e.origin {
        Origin::At(span) => {
            prop_assert!(span.line >= 1, "line 0 in {e}");
            if &*span.file == "fuzz.conf" {
                prop_assert!(span.line <= lines, "line {} > {lines} in {e}", span.line);
            }
            let place = format!(" in {}:{}", span.file, span.line);
            prop_assert!(e.to_string().ends_with(&place), "{} lacks {}", e, place);
        }
        Origin::Nowhere => prop_assert!(e.message.contains("\""), "unlocated error {e}"),
        Origin::CommandLine => prop_assert!(false, "command line origin for a file: {e}"),
    }
    Ok(())
}

/// Bytes that matter to the tokenizer, so random input exercises every rule.
fn config_bytes() -> impl Strategy<Value = Vec<u8>> {
    let interesting = prop::sample::select(vec![
        b' ', b'\t', b'\n', b'\r', b';', b'{', b'}', b'"', b'\'', b'\\', b'$', b'#', b'(', b')',
        b'a', b'x', b'1', 0xe9, 0xc3, b'n', b'/',
    ]);
    prop::collection::vec(prop_oneof![interesting, any::<u8>()], 0..400)
}

/// A valid configuration with a few bytes replaced, inserted or removed.
fn mutated_valid() -> impl Strategy<Value = Vec<u8>> {
    let edit = (any::<prop::sample::Index>(), 0u8..3, any::<u8>());
    prop::collection::vec(edit, 1..8).prop_map(|edits| {
        let mut v = VALID.as_bytes().to_vec();
        for (at, kind, byte) in edits {
            let i = at.index(v.len() + 1);
            match kind {
                0 if i < v.len() => v[i] = byte,
                1 => v.insert(i, byte),
                _ if i < v.len() => {
                    v.remove(i);
                }
                _ => v.push(byte),
            }
        }
        v
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn random_bytes_never_panic(bytes in config_bytes()) {
        let parsed = parse(&bytes);
        check_located(&bytes, &parsed)?;
        let _ = check(&parsed);
    }

    #[test]
    fn mutated_configs_never_panic(bytes in mutated_valid()) {
        let parsed = parse(&bytes);
        check_located(&bytes, &parsed)?;
        // The dump is total too (tests and `-T` rely on it).
        let _ = conf::dump(&parsed.directives, "fuzz.conf", "");
        for result in check(&parsed) {
            if let Err(e) = result {
                prop_assert!(e.origin != Origin::CommandLine, "check error from nowhere: {}", e);
            }
        }
    }
}

#[test]
fn the_valid_config_is_valid() {
    let parsed = parse(VALID.as_bytes());
    assert!(parsed.error.is_none(), "{:?}", parsed.error);
    assert_eq!(parsed.directives.len(), 3);
}

#[test]
fn deep_nesting_and_huge_inputs_terminate() {
    let deep = "location / {".repeat(100_000);
    let parsed = parse(deep.as_bytes());
    assert!(parsed.error.is_some());
    let braces = "}".repeat(100_000);
    assert!(parse(braces.as_bytes()).error.is_some());
    let words = "a ".repeat(200_000) + ";";
    let parsed = parse(words.as_bytes());
    assert!(parsed.error.is_none());
    assert_eq!(parsed.directives[0].args.len(), 199_999);
}
