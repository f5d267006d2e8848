//! Compiler tests on hand-written configurations (via the test-only tokenizer).
//!
//! Test code only (`#[cfg(test)] mod tests` in `plan/mod.rs`): its unwraps run on fixed
//! inputs, never on config or request input, and a panic here is a failed test.

use std::sync::Arc;

use super::mini;
use super::*;

struct Table;

impl Resolve for Table {
    fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        match host {
            "localhost" => Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))]),
            "backend" => Ok(vec![
                SocketAddr::from(([10, 0, 0, 1], port)),
                SocketAddr::from(([10, 0, 0, 2], port)),
            ]),
            _ => Err("not found".into()),
        }
    }
}

fn opts() -> CompileOptions {
    CompileOptions {
        resolver: Arc::new(Table),
        prefix: "/p".into(),
        conf_prefix: "/p/conf".into(),
        ..Default::default()
    }
}

fn ok(text: &str) -> (Plan, Vec<ConfError>) {
    let parsed = mini::parse(text, "t.conf");
    match compile(&parsed, &opts()) {
        Ok(p) => p,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn err(text: &str) -> String {
    let parsed = mini::parse(text, "t.conf");
    match compile(&parsed, &opts()) {
        Ok(_) => panic!("expected an error for {text}"),
        Err(e) => e.to_string(),
    }
}

const WALKTHROUGH: &str = include_str!("../../fixtures/walkthrough/default.conf");

#[test]
fn walkthrough_compiles() {
    let (plan, warnings) = ok(WALKTHROUGH);
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(warnings[0].to_string().starts_with(
        "[warn] host not found in upstream \"host.docker.internal:5001\", using 127.0.0.1"
    ));
    let up = &plan.http.upstreams[0];
    assert_eq!(up.name, "flask_app");
    assert_eq!(up.servers.len(), 3);
    assert_eq!(
        up.servers[1].addrs,
        vec![PeerAddr::Inet(SocketAddr::from(([127, 0, 0, 1], 5002)))]
    );
    let srv = &plan.http.servers[0];
    assert_eq!(plan.http.listens.len(), 1);
    assert_eq!(
        plan.http.listens[0].addr,
        ListenAddr::Inet(SocketAddr::from(([0, 0, 0, 0], 80)))
    );
    let loc = &srv.locations[0];
    let proxy = loc.conf.proxy.as_ref().unwrap();
    let names: Vec<&str> = proxy.set_headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "host",
            "x-real-ip",
            "x-forwarded-for",
            "x-forwarded-proto",
            "connection",
            "te",
            "keep-alive",
            "expect",
            "upgrade"
        ]
    );
    assert_eq!(
        proxy.set_headers[0].1.segments,
        vec![Segment::Var(Var::Host)]
    );
    match &proxy.pass {
        ProxyPass::Static {
            upstream,
            uri,
            proxy_host,
            ..
        } => {
            assert!(Arc::ptr_eq(upstream, up));
            assert_eq!(uri, &None);
            assert_eq!(&**proxy_host, "flask_app");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn inheritance_of_proxy_set_header_and_add_header() {
    let (plan, _) = ok("proxy_set_header A 1; add_header X 1;
        server { listen 8080; proxy_set_header B 2;
          location / { proxy_pass http://127.0.0.1:9000; }
          location /c { proxy_pass http://127.0.0.1:9000/x/; add_header Y 2; }
        }
        server { listen 8081; location / { proxy_pass http://backend:81; } }");
    let s0 = &plan.http.servers[0];
    let h = |l: &Location| {
        l.conf
            .proxy
            .as_ref()
            .unwrap()
            .set_headers
            .iter()
            .map(|(n, _)| n.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(h(&s0.locations[0])[0], "b");
    assert!(!h(&s0.locations[0]).contains(&"a".to_string()));
    assert_eq!(s0.locations[1].conf.add_headers.len(), 1);
    assert_eq!(s0.locations[0].conf.add_headers[0].name.as_str(), "x");
    let s1 = &plan.http.servers[1];
    assert_eq!(h(&s1.locations[0])[0], "a");
    match &s1.locations[0].conf.proxy.as_ref().unwrap().pass {
        ProxyPass::Static {
            upstream,
            proxy_host,
            ..
        } => {
            assert_eq!(upstream.servers[0].addrs.len(), 2);
            assert_eq!(&**proxy_host, "backend:81");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn full_config_with_http_block() {
    let (plan, _) = ok("worker_processes auto; events { worker_connections 64; } http { server { listen 127.0.0.1:8080 default_server; server_name a *.b.com c.*; } }");
    assert_eq!(plan.main.worker_processes, None);
    assert_eq!(plan.main.worker_connections, 64);
    assert_eq!(plan.main.pid, std::path::PathBuf::from("/p/logs/nginx.pid"));
    assert!(plan.http.listens[0].opts.default_server);
    assert_eq!(plan.http.servers[0].names.len(), 3);
}

#[test]
fn errors_in_nginx_order_and_words() {
    assert_eq!(
        err("server { listne 80; }"),
        "[emerg] unknown directive \"listne\" in t.conf:1"
    );
    assert_eq!(
        err("server { listen 70000; }"),
        "[emerg] invalid port in \"70000\" of the \"listen\" directive in t.conf:1"
    );
    assert_eq!(
        err("location / {}"),
        "[emerg] \"location\" directive is not allowed here in t.conf:1"
    );
    assert_eq!(
        err("server { location / { proxy_pass http://a:1; proxy_pass http://a:1; } }"),
        "[emerg] \"proxy_pass\" directive is duplicate in t.conf:1"
    );
    assert_eq!(
        err("upstream u {\n}\n"),
        "[emerg] no servers are inside upstream in t.conf:2"
    );
    assert_eq!(
        err("upstream u { server a weight=0; }"),
        "[emerg] invalid parameter \"weight=0\" in t.conf:1"
    );
    assert_eq!(
        err("server { location / { return 200 $foo; } }"),
        "[emerg] unknown \"foo\" variable"
    );
    assert_eq!(
        err("server { location / { } location / { } }"),
        "[emerg] duplicate location \"/\" in t.conf:1"
    );
    assert_eq!(
        err("upstream u { server 127.0.0.1; } upstream u { server 127.0.0.1; }"),
        "[emerg] duplicate upstream \"u\" in t.conf:1"
    );
    assert_eq!(
        err("server { location / { proxy_pass http://nowhere:5001; } }"),
        "[emerg] host not found in upstream \"nowhere\" in t.conf:1"
    );
    assert_eq!(
        err("upstream u { server nowhere:5001; }"),
        "[emerg] host not found in upstream \"nowhere:5001\" in t.conf:1"
    );
    assert_eq!(err("server { proxy_buffering maybe; }"), "[emerg] invalid value \"maybe\" in \"proxy_buffering\" directive, it must be \"on\" or \"off\" in t.conf:1");
    assert_eq!(
        err("worker_processes 1;"),
        "[emerg] no \"events\" section in configuration"
    );
    assert!(err("server { location ~ \"(a\" { } }")
        .starts_with("[emerg] pcre2_compile() failed: missing closing parenthesis in \"(a\""));
    assert_eq!(
        err("events {} stream {}"),
        "[emerg] \"stream\" directive is not supported by nginx-rs in t.conf:1"
    );
}

#[test]
fn set_and_captures_define_variables() {
    let (plan, _) = ok("server { location ~ ^/(?<id>\\d+)$ { return 200 $id$x; } set $x 1; }");
    assert_eq!(&*plan.http.slots[0], "id");
    assert_eq!(&*plan.http.slots[1], "x");
}

#[test]
fn map_variables_resolve_to_map_index() {
    let (plan, _) = ok("server { location / { proxy_set_header Connection $connection_upgrade; proxy_pass http://127.0.0.1:1; } }
        map $http_upgrade $connection_upgrade { default upgrade; '' close; }");
    assert_eq!(plan.http.maps.len(), 1);
    let p = plan.http.servers[0].locations[0]
        .conf
        .proxy
        .as_ref()
        .unwrap();
    assert_eq!(p.set_headers[0].1.segments, vec![Segment::Var(Var::Map(0))]);
}

#[test]
fn warnings_before_an_error_are_kept() {
    let parsed = mini::parse(
        "upstream u { server host.docker.internal:5001; } server { listne 80; }",
        "t.conf",
    );
    let (result, warnings) = compile_collecting(&parsed, &opts());
    assert!(result.is_err());
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].level, crate::conf::Level::Warn);
}

#[test]
fn conflicting_server_names_warn_like_nginx() {
    let (_, warnings) =
        ok("server { listen 8080; server_name a; } server { listen 8080; server_name a b; }");
    let text: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        text,
        ["[warn] conflicting server name \"a\" on 0.0.0.0:8080, ignored"]
    );
}

#[test]
fn listen_groups_pick_the_default_server() {
    let (plan, _) =
        ok("server { listen 8080; } server { listen 8080 default_server; listen [::]:8080; }");
    assert_eq!(plan.http.listens.len(), 2);
    assert_eq!(plan.http.listens[0].servers, vec![0, 1]);
    assert_eq!(plan.http.listens[0].default_server, 1);
    assert_eq!(plan.http.listens[1].default_server, 1);
}

#[test]
fn if_blocks_get_their_own_merged_conf() {
    let (plan, _) = ok("server { location / { proxy_pass http://127.0.0.1:1; if ($arg_x) { add_header X 1; } if ($arg_y) { return 404; } } }");
    let loc = &plan.http.servers[0].locations[0];
    match &loc.conf.rewrites[..] {
        [RewriteOp::If { conf: Some(c), .. }, RewriteOp::If {
            conf: None, ops, ..
        }] => {
            assert!(
                c.proxy.is_some(),
                "proxy_pass of the location applies inside if"
            );
            assert_eq!(c.add_headers.len(), 1);
            assert!(matches!(ops[..], [RewriteOp::Return { code: 404, .. }]));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn hints_for_misspelled_directives_and_parameters() {
    let hint = |text: &str| {
        let parsed = mini::parse(text, "t.conf");
        compile(&parsed, &opts())
            .err()
            .map(|e| e.hints)
            .unwrap_or_default()
    };
    assert_eq!(
        hint("server { listen 80 defaultserver; }"),
        ["did you mean \"default_server\"?"]
    );
    assert_eq!(
        hint("upstream u { server 127.0.0.1 wieght=2; }"),
        ["did you mean \"weight\"?"]
    );
    assert_eq!(
        hint("server { proxy_pas x; }"),
        ["did you mean \"proxy_pass\"?"]
    );
    assert!(hint("server { zzzzzzzz 1; }").is_empty());
}

#[test]
fn http2_directive_enables_h2_on_the_servers_addresses() {
    let (plan, _) = ok("http2 on; server { listen 8443; } server { listen 8444; http2 off; }");
    assert!(plan.http.listens[0].opts.http2);
    assert!(!plan.http.listens[1].opts.http2);
}

#[test]
fn plain_location_bodies_share_one_conf() {
    let (plan, _) = ok("server {\n listen 80;\n location = /a { return 200; }\n \
         location = /b { return 200; }\n location = /c { return 404; }\n \
         location = /d { root /x; return 200; }\n location = /e { return 200 \"$uri\"; }\n \
         location = /f { return 200 \"$uri\"; }\n location = /g { return 200 hi; }\n \
         location = /h { return 200 hi; }\n location /i { location /i/j { return 200; } }\n}\n");
    let l = &plan.http.servers[0].locations;
    let same = |a: usize, b: usize| Arc::ptr_eq(&l[a].conf, &l[b].conf);
    assert!(same(0, 1), "two `return 200;` share");
    assert!(same(6, 7), "same constant text shares");
    assert!(!same(0, 2), "another code does not");
    assert!(!same(0, 3), "own settings do not");
    assert!(!same(4, 5), "text with variables does not");
    assert!(!same(0, 8), "a location with children does not");
    // Each keeps its own span; the shared settings are the server's merged ones.
    assert_eq!((l[0].span.line, l[1].span.line), (3, 4));
    assert!(Arc::ptr_eq(&l[0].conf.settings, &l[2].conf.settings));
    assert_eq!(l[8].children.len(), 1);
}

#[test]
fn first_duplicate_location_in_file_order() {
    let e = err(
        "server {\n location /a {\n  location /a/x { }\n  location /a/x { }\n }\n \
         location /a { }\n}\n",
    );
    assert_eq!(e, "[emerg] duplicate location \"/a/x\" in t.conf:4");
    let e = err(
        "server {\n location = /b { }\n location /c { }\n location = /b { }\n \
         location /c { }\n location = /c { }\n}\n",
    );
    assert_eq!(e, "[emerg] duplicate location \"/b\" in t.conf:4");
    let e = err(
        "server {\n location /c { }\n location = /c { }\n location @c { }\n \
         location ~ c { }\n location ~ c { }\n location /c { }\n}\n",
    );
    assert_eq!(e, "[emerg] duplicate location \"/c\" in t.conf:7");
}
