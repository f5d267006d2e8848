//! The request path without sockets (issue 7): location matching on a server with 1,000
//! locations, `$uri` normalisation, Host validation, server selection, and variable expansion of
//! the proxy's header templates (`proxy_set_header` with `$host`, `$remote_addr`,
//! `$proxy_add_x_forwarded_for`, `$request_uri`) into one reused buffer.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderValue, Method, Version};
use nginx_rs::plan::Plan;
use nginx_rs::runtime::ctx::{ConnInfo, RequestCtx};
use nginx_rs::runtime::router::{self, Router};

/// A config with one server of 1,000 locations: prefix, exact and regex ones, as large real
/// configurations mix them, plus the headers a typical proxy location sets.
fn config() -> String {
    let mut locs = String::new();
    for i in 0..1000 {
        match i % 10 {
            0 => writeln!(locs, "location = /exact/{i} {{ return 200; }}"),
            1 => writeln!(locs, "location ~ ^/re/{i}/(\\d+)$ {{ return 200; }}"),
            _ => writeln!(locs, "location /app/{i}/ {{ proxy_pass http://b; }}"),
        }
        .expect("writing to a String cannot fail");
    }
    format!(
        "events {{}}
http {{
    upstream b {{ server 127.0.0.1:1; }}
    server {{
        listen 127.0.0.1:8080;
        server_name example.com www.example.com *.example.org;
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Original-URI $request_uri;
        location / {{ proxy_pass http://b; }}
        {locs}
    }}
}}"
    )
}

fn compile(text: &str) -> Plan {
    let lopts = nginx_rs::conf::parser::LoadOptions {
        conf_prefix: std::env::temp_dir(),
    };
    let parsed =
        nginx_rs::conf::parser::parse_bytes(text.as_bytes(), Arc::from("/bench.conf"), &lopts);
    assert!(parsed.error.is_none(), "bench config does not parse");
    let opts = nginx_rs::plan::CompileOptions {
        prefix: std::env::temp_dir(),
        conf_prefix: std::env::temp_dir(),
        resolver: Arc::new(nginx_rs::cli::SystemResolver),
        ..Default::default()
    };
    match nginx_rs::plan::compile(&parsed, &opts) {
        Ok((plan, _)) => plan,
        Err(e) => panic!("bench config rejected: {e}"),
    }
}

fn ctx(plan: &Plan) -> RequestCtx {
    let server = plan.http.servers[0].clone();
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("www.example.com"));
    headers.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
    headers.insert("user-agent", HeaderValue::from_static("bench/1.0"));
    RequestCtx {
        conn: Arc::new(ConnInfo {
            remote: ([192, 168, 1, 20], 40000).into(),
            local: ([127, 0, 0, 1], 8080).into(),
            id: 1,
            handshake: Default::default(),
            watch: None,
        }),
        conn_requests: 1,
        start: Instant::now(),
        method: Method::GET,
        version: Version::HTTP_11,
        request_uri: "/app/517/static/main.css?v=3".into(),
        absolute_target: None,
        uri: "/app/517/static/main.css".into(),
        args: "v=3".into(),
        headers,
        raw_names: None,
        host: "www.example.com".into(),
        server,
        captures: None,
        slots: vec![None; plan.http.slots.len()],
        proxy_host: Arc::from("b"),
        proxy_port: 80,
        upstream_tries: Default::default(),
        status: 0,
        body_bytes_sent: 0,
        bytes_sent: 0,
        response_headers: None,
        loc_conf: None,
        edge: Default::default(),
    }
}

fn hot_path(c: &mut Criterion) {
    let plan = compile(&config());
    let server = plan.http.servers[0].clone();
    let router = Router::new(&plan);

    let mut g = c.benchmark_group("location_1000");
    for uri in [
        "/app/517/static/main.css",
        "/exact/990",
        "/re/991/42",
        "/nowhere/at/all",
    ] {
        g.bench_function(uri, |b| {
            b.iter(|| router::find_location(&server, black_box(uri)).is_some())
        });
    }
    g.finish();

    c.bench_function("normalize_path", |b| {
        b.iter(|| router::normalize_path(black_box(b"/app/./517//static/../static/main.css"), true))
    });
    c.bench_function("validate_host", |b| {
        b.iter(|| router::validate_host(black_box(b"WWW.Example.com:8080")))
    });
    c.bench_function("select_server", |b| {
        b.iter(|| {
            router
                .select_server(0, black_box(Some("www.example.com")))
                .server
        })
    });

    // Header templates of the location: rendered into one reused buffer, as the proxy does.
    let ctx = ctx(&plan);
    let Some(proxy) = server
        .conf
        .proxy
        .as_ref()
        .or_else(|| server.locations.first().and_then(|l| l.conf.proxy.as_ref()))
    else {
        panic!("bench config has no proxy configuration");
    };
    let templates: Vec<_> = proxy.set_headers.iter().map(|(_, t)| t.clone()).collect();
    let mut buf = Vec::with_capacity(256);
    c.bench_function("render_proxy_headers", |b| {
        b.iter(|| {
            let mut n = 0;
            for t in &templates {
                buf.clear();
                ctx.render_into(t, &mut buf);
                n += buf.len();
            }
            black_box(n)
        })
    });
    // One access-log line in nginx's `combined` format (the accesslog bench variant's).
    let combined = nginx_rs::runtime::log::combined();
    c.bench_function("render_combined_log_line", |b| {
        b.iter(|| black_box(nginx_rs::runtime::log::render_line(&combined, &ctx).len()))
    });
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
