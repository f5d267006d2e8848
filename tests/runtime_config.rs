//! The runtime on Plans compiled from real configuration text by `plan::compile`: the walkthrough's
//! `default.conf` shape (ports made ephemeral), nginx's default proxy headers, and URI rules.

mod support;

use support::*;

#[tokio::test]
async fn walkthrough_config_round_robin_and_headers() {
    let b1 = Backend::spawn("one", Behaviour::Echo).await;
    let b2 = Backend::spawn("two", Behaviour::Echo).await;
    let b3 = Backend::spawn("three", Behaviour::Echo).await;
    let port = free_port();
    let conf = format!(
        "upstream flask_app {{
    server {};
    server {};
    server {};
}}

server {{
    listen 127.0.0.1:{port};

    location / {{
        proxy_pass http://flask_app;
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
    }}
}}
",
        b1.addr, b2.addr, b3.addr
    );
    let p = Proxy::start(compile(&conf)).await;
    let mut seen = Vec::new();
    for _ in 0..6 {
        let r = raw(
            p.addr,
            b"GET /hello?x=1 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/8\r\nX-Forwarded-For: 9.9.9.9\r\nConnection: close\r\n\r\n",
        )
        .await
        .expect("response");
        assert_eq!(r.status, 200);
        seen.push(r.header("x-backend").unwrap_or("").to_string());
        let (line, h) = head_of(&r.text());
        assert_eq!(line, "GET /hello?x=1 HTTP/1.1");
        let names: Vec<_> = h.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        assert_eq!(
            names,
            [
                "host: localhost",
                "x-real-ip: 127.0.0.1",
                "x-forwarded-for: 9.9.9.9, 127.0.0.1",
                "x-forwarded-proto: http",
                "user-agent: curl/8",
            ]
        );
    }
    assert_eq!(seen, ["one", "two", "three", "one", "two", "three"]);
    // Current nginx's default (`keepalive 32`, no `Connection: close` over HTTP/1.1): the
    // second round reused each backend's connection from the first.
    let conns: Vec<_> = [&b1, &b2, &b3]
        .iter()
        .map(|b| b.connections.load(std::sync::atomic::Ordering::SeqCst))
        .collect();
    assert_eq!(conns, [1, 1, 1], "connections opened per backend");
    p.stop().await;
}

/// `proxy_http_version 1.0` and `keepalive 0` each turn the default pool off: a new upstream
/// connection per request; 1.0 also says `Connection: close`, 1.1 says nothing.
#[tokio::test]
async fn keepalive_default_can_be_turned_off() {
    for (extra_loc, extra_up, version, connection) in [
        ("proxy_http_version 1.0;", "", "HTTP/1.0", Some("close")),
        ("", "keepalive 0;", "HTTP/1.1", None),
        ("", "", "HTTP/1.1", None),
    ] {
        let b = Backend::spawn("b", Behaviour::Echo).await;
        let port = free_port();
        let conf = format!(
            "upstream u {{ server {}; {extra_up} }}
server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://u; {extra_loc} }} }}
",
            b.addr
        );
        let p = Proxy::start(compile(&conf)).await;
        for _ in 0..3 {
            let r = get(p.addr, "localhost", "/k").await;
            assert_eq!(r.status, 200);
            let (line, h) = head_of(&r.text());
            assert_eq!(line, format!("GET /k {version}"), "{extra_loc}{extra_up}");
            let got = h
                .iter()
                .find(|(k, _)| k == "connection")
                .map(|(_, v)| v.as_str());
            assert_eq!(got, connection, "Connection with {extra_loc}{extra_up}");
        }
        let opened = b.connections.load(std::sync::atomic::Ordering::SeqCst);
        let pooled = extra_loc.is_empty() && extra_up.is_empty();
        assert_eq!(opened, if pooled { 1 } else { 3 }, "{extra_loc}{extra_up}");
        p.stop().await;
    }
}

#[tokio::test]
async fn compiled_locations_and_uri_rules() {
    let b = Backend::spawn("b", Behaviour::Echo).await;
    let port = free_port();
    let conf = format!(
        "server {{
    listen 127.0.0.1:{port};
    server_name localhost;
    location /api/ {{ proxy_pass http://{b}/v1/; }}
    location ~ ^/re/(?<name>[a-z]+) {{
        proxy_set_header X-Name $name;
        proxy_set_header X-One $1;
        proxy_pass http://{b};
    }}
    location / {{ proxy_pass http://{b}; }}
}}
",
        b = b.addr
    );
    let p = Proxy::start(compile(&conf)).await;
    let r = get(p.addr, "localhost", "/api/a/../b?q=1").await;
    let (line, h) = head_of(&r.text());
    assert_eq!(line, "GET /v1/b?q=1 HTTP/1.1");
    let host = h.iter().find(|(k, _)| k == "host").map(|(_, v)| v.clone());
    assert_eq!(
        host,
        Some(b.addr.to_string()),
        "default Host is $proxy_host"
    );
    let r = get(p.addr, "localhost", "/re/abc/x").await;
    let (line, h) = head_of(&r.text());
    assert_eq!(line, "GET /re/abc/x HTTP/1.1");
    let get_h = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(get_h("x-name").as_deref(), Some("abc"));
    assert_eq!(get_h("x-one").as_deref(), Some("abc"));
    p.stop().await;
}
