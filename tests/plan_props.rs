//! Robustness: random and mutated configurations never make parse + compile panic, and every error
//! they produce names a place (FILE:LINE, `command line`) unless it is one of nginx's few
//! placeless messages.

use std::sync::Arc;

use nginx_rs::conf::parser::{parse_bytes, LoadOptions};
use nginx_rs::conf::Origin;
use nginx_rs::plan::{self, NoNetwork, Shape};
use proptest::prelude::*;

const SEEDS: &[&str] = &[
    include_str!("../fixtures/walkthrough/default.conf"),
    include_str!("../fixtures/proxy/proxy.conf"),
    include_str!("../fixtures/upstream/methods.conf"),
    include_str!("../fixtures/edge/edge.conf"),
    include_str!("../fixtures/logs/logs.conf"),
];

/// Messages nginx itself prints without a location.
const PLACELESS: &[&str] = &[
    "unknown \"",
    "no \"events\" section",
    "no \"ssl_certificate\"",
    "variable \"",
];

fn run(text: &[u8]) {
    let opts = LoadOptions {
        conf_prefix: std::env::temp_dir().join("nginx-rs-props-none"),
    };
    let parsed = parse_bytes(text, Arc::from("fuzz.conf"), &opts);
    for shape in [Shape::Auto, Shape::Full, Shape::Fragment] {
        if let Err(e) = plan::check(&parsed, shape, Arc::new(NoNetwork)) {
            if matches!(e.origin, Origin::Nowhere) {
                assert!(
                    PLACELESS.iter().any(|p| e.message.starts_with(p)) || parsed.error.is_some(),
                    "error without FILE:LINE: {e}"
                );
            }
        }
    }
}

/// Words that exercise handlers: directive names, values, and syntax.
const WORDS: &[&str] = &[
    "server",
    "location",
    "upstream",
    "listen",
    "proxy_pass",
    "return",
    "rewrite",
    "if",
    "set",
    "map",
    "error_page",
    "add_header",
    "allow",
    "deny",
    "http://a",
    "$host",
    "${x",
    "$",
    "(",
    ")",
    "~",
    "=",
    "^~",
    "@n",
    "80",
    "70000",
    "weight=0",
    "default_server",
    "{",
    "}",
    ";",
    "on",
    "off",
    "1m",
    "10s",
    "\"",
    "'",
    "#",
    "\n",
    " ",
    "events",
    "http",
    "include",
    "a.*.b",
    "~^(",
    "unix:",
    "[::1]:80",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_word_soup_never_panics(idx in proptest::collection::vec(0..WORDS.len(), 0..60)) {
        let text: Vec<u8> = idx.iter().flat_map(|i| format!("{} ", WORDS[*i]).into_bytes()).collect();
        run(&text);
    }

    #[test]
    fn mutated_fixtures_never_panic(seed in 0..SEEDS.len(), cuts in proptest::collection::vec((0usize..4000, 0..WORDS.len()), 1..6)) {
        let mut text = SEEDS[seed].as_bytes().to_vec();
        for (pos, w) in cuts {
            let p = pos % (text.len() + 1);
            let word = WORDS[w].as_bytes();
            text.splice(p..p, word.iter().copied());
        }
        run(&text);
    }
}
