//! The `metrics` directive (nginx-rs extension) over real sockets: Prometheus text that parses,
//! with the connection counters and per-upstream-peer requests, failures, state and histogram
//! after proxied requests; and its grammar (`metrics` takes no arguments, location only).

mod support;

use std::collections::HashMap;
use std::sync::Arc;

use nginx_rs::conf::{self, LoadOptions};
use nginx_rs::plan::{self, CompileOptions, Shape};
use support::backend::Backend;
use support::client::exchange;
use support::nginx::{skip_unless, start_nginx_rs, Flavor};

/// One sample line of the text exposition format: `name{labels} value`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

/// Parses the Prometheus text format strictly enough to catch malformed output: `# HELP`/`# TYPE`
/// comments, then samples whose family was declared by a `# TYPE` line.
fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    assert!(text.ends_with('\n'), "no final newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap_or_default();
            let name = parts.next().unwrap_or_default().to_string();
            let arg = parts.next().unwrap_or_default().to_string();
            match kind {
                "HELP" => assert!(!arg.is_empty(), "empty HELP: {line}"),
                "TYPE" => {
                    assert!(
                        ["counter", "gauge", "histogram"].contains(&arg.as_str()),
                        "bad TYPE: {line}"
                    );
                    types.insert(name, arg);
                }
                _ => panic!("unknown comment: {line}"),
            }
            continue;
        }
        let (head, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value: {line}"));
        let (name, labels) = match head.split_once('{') {
            Some((n, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
                let mut labels = HashMap::new();
                for pair in body.split("\",") {
                    let (k, v) = pair.split_once("=\"").unwrap_or_else(|| panic!("{line}"));
                    labels.insert(k.to_string(), v.trim_end_matches('"').to_string());
                }
                (n.to_string(), labels)
            }
            None => (head.to_string(), HashMap::new()),
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(&name);
        assert!(types.contains_key(family), "sample before its TYPE: {line}");
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

#[test]
fn metrics_show_connections_and_peers() {
    let backend = Backend::named("one");
    let dead = support::free_port();
    let live_peer = backend.addr().to_string();
    let dead_peer = format!("127.0.0.1:{dead}");
    let started = start_nginx_rs(|port| {
        format!(
            "upstream app {{ server {live_peer}; }}\n\
             upstream gone {{ server {dead_peer}; }}\n\
             server {{\n    listen 127.0.0.1:{port};\n\
             location / {{ proxy_pass http://app; }}\n\
             location /gone {{ proxy_pass http://gone; }}\n\
             location = /metrics {{ metrics; }}\n}}\n"
        )
    });
    let Some(rs) = skip_unless(started, Flavor::NginxRs) else {
        return;
    };
    for _ in 0..3 {
        let ex = exchange(rs.addr(), b"GET / HTTP/1.0\r\nHost: a\r\n\r\n");
        assert_eq!(ex.status(), Some(200), "{}", ex.raw_text());
    }
    let ex = exchange(rs.addr(), b"GET /gone HTTP/1.0\r\nHost: a\r\n\r\n");
    assert_eq!(ex.status(), Some(502), "{}", ex.raw_text());

    let ex = exchange(rs.addr(), b"GET /metrics HTTP/1.0\r\nHost: a\r\n\r\n");
    let resp = ex.response.expect("metrics answered");
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = resp.text();
    let samples = parse_prometheus(&text);
    let ok = [("upstream", "app"), ("peer", live_peer.as_str())];
    let bad = [("upstream", "gone"), ("peer", dead_peer.as_str())];
    let get = |n: &str, l: &[(&str, &str)]| {
        value(&samples, n, l).unwrap_or_else(|| panic!("no {n} {l:?} in\n{text}"))
    };
    assert_eq!(get("nginx_rs_upstream_peer_requests_total", &ok), 3.0);
    assert_eq!(get("nginx_rs_upstream_peer_failures_total", &ok), 0.0);
    assert_eq!(get("nginx_rs_upstream_peer_up", &ok), 1.0);
    assert_eq!(
        get("nginx_rs_upstream_peer_response_seconds_count", &ok),
        3.0
    );
    let inf = [ok[0], ok[1], ("le", "+Inf")];
    assert_eq!(
        get("nginx_rs_upstream_peer_response_seconds_bucket", &inf),
        3.0
    );
    assert_eq!(get("nginx_rs_upstream_peer_requests_total", &bad), 1.0);
    assert_eq!(get("nginx_rs_upstream_peer_failures_total", &bad), 1.0);
    assert_eq!(get("nginx_rs_upstream_peer_up", &bad), 0.0);
    // Four proxied requests plus this one; each on its own connection.
    assert!(get("nginx_rs_http_requests_total", &[]) >= 5.0);
    assert!(get("nginx_rs_connections_accepted_total", &[]) >= 5.0);
    assert_eq!(get("nginx_rs_connections_writing", &[]), 1.0);

    let post = exchange(
        rs.addr(),
        b"POST /metrics HTTP/1.0\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(post.status(), Some(405), "{}", post.raw_text());
}

/// `nginx -t`'s verdict on a fragment of `http {}` (the message with FILE:LINE).
fn check(fragment: &str) -> Result<(), String> {
    let text = format!("events {{}}\nhttp {{\n{fragment}\n}}\n");
    let parsed = conf::parse_bytes(
        text.as_bytes(),
        Arc::from("/etc/nginx-rs/metrics.conf"),
        &LoadOptions {
            conf_prefix: std::env::temp_dir(),
        },
    );
    let opts = CompileOptions {
        shape: Shape::Full,
        resolver: Arc::new(nginx_rs::cli::SystemResolver),
        ..Default::default()
    };
    plan::compile(&parsed, &opts)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn metrics_grammar() {
    assert_eq!(
        check("server { location /m { metrics on; } }"),
        Err("[emerg] invalid number of arguments in \"metrics\" directive in /etc/nginx-rs/metrics.conf:3".into())
    );
    assert_eq!(
        check("server {\n metrics;\n}"),
        Err(
            "[emerg] \"metrics\" directive is not allowed here in /etc/nginx-rs/metrics.conf:4"
                .into()
        )
    );
    assert_eq!(check("server { location /m { metrics; } }"), Ok(()));
}
