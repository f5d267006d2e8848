//! Proxy behaviour end to end over real sockets: URI rules, headers, variables, balancing.

mod support;

use std::sync::Arc;

use nginx_rs::plan::*;
use support::*;

#[tokio::test]
async fn round_robin_over_three_backends() {
    let b1 = Backend::spawn("one", Behaviour::Echo).await;
    let b2 = Backend::spawn("two", Behaviour::Echo).await;
    let b3 = Backend::spawn("three", Behaviour::Echo).await;
    let up = upstream("backend", &[b1.addr, b2.addr, b3.addr]);
    let s = server(
        vec![ServerName::Exact("localhost".into())],
        vec![loc(prefix("/"), Some(proxy_conf(&up, None)), vec![])],
    );
    let p = Proxy::start(plan(vec![s], 0, vec![up])).await;
    let mut seen = Vec::new();
    for _ in 0..6 {
        let r = get(p.addr, "localhost", "/").await;
        assert_eq!(r.status, 200);
        seen.push(r.header("x-backend").unwrap_or("").to_string());
    }
    assert_eq!(seen, ["one", "two", "three", "one", "two", "three"]);
    p.stop().await;
}

/// Each case: (location, proxy_pass URI part, request target, what the backend must see).
#[tokio::test]
async fn proxy_pass_uri_rules() {
    let b = Backend::spawn("b", Behaviour::Echo).await;
    let up = upstream("backend", &[b.addr]);
    let s = server(
        vec![ServerName::Exact("localhost".into())],
        vec![
            loc(prefix("/api/"), Some(proxy_conf(&up, Some("/v2/"))), vec![]),
            loc(prefix("/root/"), Some(proxy_conf(&up, Some("/"))), vec![]),
            loc(
                LocMatch::Exact("/exact".into()),
                Some(proxy_conf(&up, Some("/other"))),
                vec![],
            ),
            loc(prefix("/"), Some(proxy_conf(&up, None)), vec![]),
        ],
    );
    let p = Proxy::start(plan(vec![s], 0, vec![up])).await;
    let cases = [
        ("/api/users?id=1", "GET /v2/users?id=1 HTTP/1.0"),
        ("/api/a/../b", "GET /v2/b HTTP/1.0"),
        ("/api/%7Euser", "GET /v2/~user HTTP/1.0"),
        ("/api/a%20b", "GET /v2/a%20b HTTP/1.0"),
        ("/root/x//y", "GET /x/y HTTP/1.0"),
        ("/exact?q", "GET /other?q HTTP/1.0"),
        // Without a URI part the client's URI goes up exactly as sent.
        ("/a/../b//c?x=%41", "GET /a/../b//c?x=%41 HTTP/1.0"),
        ("/%7Euser", "GET /%7Euser HTTP/1.0"),
    ];
    for (target, want) in cases {
        let r = get(p.addr, "localhost", target).await;
        assert_eq!(r.status, 200, "{target}");
        let (line, _) = head_of(&r.text());
        assert_eq!(line, want, "{target}");
    }
    // Absolute-form target: the path part is what is passed.
    let r = raw(
        p.addr,
        b"GET http://localhost/abs/p?x=1 HTTP/1.1\r\nHost: ignored\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("response");
    assert_eq!(head_of(&r.text()).0, "GET /abs/p?x=1 HTTP/1.0");
    p.stop().await;
}

#[tokio::test]
async fn headers_to_backend_like_nginx() {
    let b = Backend::spawn("b", Behaviour::Echo).await;
    let up = upstream("backend", &[b.addr]);
    let mut conf = proxy_conf(&up, None);
    let mut hs = vec![
        (
            http::HeaderName::from_static("x-real-ip"),
            tpl(&["$remote_addr"]),
        ),
        (
            http::HeaderName::from_static("x-forwarded-for"),
            tpl(&["$proxy_add_x_forwarded_for"]),
        ),
        (http::HeaderName::from_static("x-empty"), tpl(&[""])),
        (http::HeaderName::from_static("x-dropped"), tpl(&[""])),
    ];
    hs.extend(default_headers());
    conf.set_headers = Arc::new(hs);
    let s = server(
        vec![ServerName::Exact("localhost".into())],
        vec![loc(prefix("/"), Some(conf), vec![])],
    );
    let p = Proxy::start(plan(vec![s], 0, vec![up])).await;
    let r = raw(
        p.addr,
        b"POST /p HTTP/1.1\r\nHost: LocalHost:8080\r\nX-Forwarded-For: 10.0.0.1\r\nX-Dropped: secret\r\n\
          Keep-Alive: 300\r\nTE: trailers\r\nUpgrade: websocket\r\nProxy-Connection: keep-alive\r\n\
          X_Under: no\r\nX-Custom: yes\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
          5\r\nhello\r\n0\r\n\r\n",
    )
    .await
    .expect("response");
    assert_eq!(r.status, 200);
    let (line, h) = head_of(&r.text());
    assert_eq!(line, "POST /p HTTP/1.0");
    let get = |n: &str| {
        h.iter()
            .filter(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(get("x-real-ip"), ["127.0.0.1"]);
    assert_eq!(get("x-forwarded-for"), ["10.0.0.1, 127.0.0.1"]);
    assert_eq!(get("host"), ["backend"]);
    assert_eq!(get("connection"), ["close"]);
    assert_eq!(
        get("content-length"),
        ["5"],
        "chunked body buffered and sent with a length"
    );
    assert!(get("transfer-encoding").is_empty());
    assert!(get("x-empty").is_empty() && get("x-dropped").is_empty());
    assert!(get("keep-alive").is_empty() && get("te").is_empty() && get("upgrade").is_empty());
    assert!(get("x_under").is_empty(), "underscore headers are dropped");
    assert_eq!(get("proxy-connection"), ["keep-alive"], "nginx passes it");
    assert_eq!(get("x-custom"), ["yes"]);
    assert!(r.text().ends_with("\r\n\r\nhello"));
    // Configured headers come first, in config order, then the client's.
    let names: Vec<&str> = h.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        &names[..4],
        ["x-real-ip", "x-forwarded-for", "host", "connection"]
    );
    p.stop().await;
}

#[tokio::test]
async fn response_headers_hidden_and_added() {
    let b = Backend::spawn(
        "b",
        Behaviour::Headers(vec![
            ("Server".into(), "gunicorn".into()),
            ("Date".into(), "Mon, 01 Jan 2000 00:00:00 GMT".into()),
            ("X-Pad".into(), "avoid browser bug".into()),
            ("X-Accel-Redirect".into(), "/internal".into()),
            ("X-App".into(), "kept".into()),
        ]),
    )
    .await;
    let up = upstream("backend", &[b.addr]);
    let s = server(
        vec![],
        vec![loc(prefix("/"), Some(proxy_conf(&up, None)), vec![])],
    );
    let p = Proxy::start(plan(vec![s], 0, vec![up])).await;
    let r = get(p.addr, "x", "/").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("server"),
        Some(concat!("nginx-rs/", env!("CARGO_PKG_VERSION")))
    );
    assert_ne!(r.header("date"), Some("Mon, 01 Jan 2000 00:00:00 GMT"));
    assert!(r.header("date").is_some());
    assert!(r.header("x-pad").is_none() && r.header("x-accel-redirect").is_none());
    assert_eq!(r.header("x-app"), Some("kept"));
    assert_eq!(r.text(), "ok");
    p.stop().await;
}

#[tokio::test]
async fn variables_render_per_request() {
    let b = Backend::spawn("b", Behaviour::Echo).await;
    let up = upstream("backend", &[b.addr]);
    let vars = [
        "host",
        "remote_addr",
        "scheme",
        "request_uri",
        "uri",
        "document_uri",
        "args",
        "query_string",
        "is_args",
        "request_method",
        "request",
        "server_name",
        "server_addr",
        "server_protocol",
        "proxy_host",
        "proxy_port",
        "content_type",
        "content_length",
        "nginx_version",
        "connection_requests",
        "arg_b",
        "cookie_sid",
        "http_user_agent",
        "http_x_forwarded_for",
    ];
    let mut conf = proxy_conf(&up, None);
    let mut hs: Vec<_> = vars
        .iter()
        .map(|v| {
            (
                http::HeaderName::from_bytes(format!("x-v-{}", v.replace('_', "-")).as_bytes())
                    .expect("name"),
                tpl(&["[", &format!("${v}"), "]"]),
            )
        })
        .collect();
    hs.extend(default_headers());
    conf.set_headers = Arc::new(hs);
    let s = server(
        vec![
            ServerName::Exact("example.com".into()),
            ServerName::Exact("www.example.com".into()),
        ],
        vec![loc(prefix("/"), Some(conf), vec![])],
    );
    let p = Proxy::start(plan(vec![s], 0, vec![up])).await;
    let r = raw(
        p.addr,
        b"POST /a/./b%20c?a=1&B=two HTTP/1.1\r\nHost: WWW.Example.com.:99\r\nContent-Type: text/plain\r\n\
          Content-Length: 3\r\nCookie: x=1; sid=abc\r\nUser-Agent: t/1\r\nX-Forwarded-For: 1.1.1.1\r\n\
          X-Forwarded-For: 2.2.2.2\r\nConnection: close\r\n\r\nabc",
    )
    .await
    .expect("response");
    assert_eq!(r.status, 200);
    let (_, h) = head_of(&r.text());
    let v = |n: &str| {
        h.iter()
            .find(|(k, _)| k == &format!("x-v-{}", n.replace('_', "-")))
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(v("host"), "[www.example.com]");
    assert_eq!(v("remote_addr"), "[127.0.0.1]");
    assert_eq!(v("scheme"), "[http]");
    assert_eq!(v("request_uri"), "[/a/./b%20c?a=1&B=two]");
    assert_eq!(v("uri"), "[/a/b c]");
    assert_eq!(v("document_uri"), "[/a/b c]");
    assert_eq!(v("args"), "[a=1&B=two]");
    assert_eq!(v("query_string"), "[a=1&B=two]");
    assert_eq!(v("is_args"), "[?]");
    assert_eq!(v("request_method"), "[POST]");
    assert_eq!(v("request"), "[POST /a/./b%20c?a=1&B=two HTTP/1.1]");
    assert_eq!(v("server_name"), "[example.com]");
    assert_eq!(v("server_addr"), "[127.0.0.1]");
    assert_eq!(v("server_protocol"), "[HTTP/1.1]");
    assert_eq!(v("proxy_host"), "[backend]");
    assert_eq!(v("proxy_port"), "[80]");
    assert_eq!(v("content_type"), "[text/plain]");
    assert_eq!(v("content_length"), "[3]");
    assert_eq!(v("nginx_version"), "[1.22.1]");
    assert_eq!(v("connection_requests"), "[1]");
    assert_eq!(v("arg_b"), "[two]");
    assert_eq!(v("cookie_sid"), "[abc]");
    assert_eq!(v("http_user_agent"), "[t/1]");
    assert_eq!(v("http_x_forwarded_for"), "[1.1.1.1, 2.2.2.2]");
    p.stop().await;
}

#[tokio::test]
async fn keepalive_and_pipelining_from_the_client() {
    use tokio::io::AsyncWriteExt;
    let b = Backend::spawn("b", Behaviour::Echo).await;
    let up = upstream("backend", &[b.addr]);
    let mut conf = proxy_conf(&up, None);
    let mut hs = vec![(
        http::HeaderName::from_static("x-n"),
        tpl(&["$connection_requests"]),
    )];
    hs.extend(default_headers());
    conf.set_headers = Arc::new(hs);
    let s = server(vec![], vec![loc(prefix("/"), Some(conf), vec![])]);
    let p = Proxy::start(plan(vec![s], 0, vec![up])).await;
    let mut c = tokio::net::TcpStream::connect(p.addr)
        .await
        .expect("connect");
    c.write_all(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nHEAD /3 HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let r1 = read_response(&mut c, &mut buf, false).await.expect("r1");
    let r2 = read_response(&mut c, &mut buf, false).await.expect("r2");
    let r3 = read_response(&mut c, &mut buf, true).await.expect("r3");
    assert!(
        r1.text().starts_with("GET /1 ") && r1.text().to_ascii_lowercase().contains("x-n: 1\r\n")
    );
    assert!(
        r2.text().starts_with("GET /2 ") && r2.text().to_ascii_lowercase().contains("x-n: 2\r\n")
    );
    assert_eq!(r3.status, 200);
    assert!(r3.body.is_empty());
    assert!(b.requests()[2].starts_with("HEAD /3 HTTP/1.0\r\n"));
    p.stop().await;
}

#[tokio::test]
async fn websocket_upgrade_is_tunnelled_when_configured() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let b = Backend::spawn("ws", Behaviour::Upgrade).await;
    let up = upstream("backend", &[b.addr]);
    let mut conf = proxy_conf(&up, None);
    conf.http_version = HttpVersion::Http11;
    conf.set_headers = Arc::new(vec![
        (http::header::UPGRADE, tpl(&["$http_upgrade"])),
        (http::header::CONNECTION, tpl(&["upgrade"])),
        (http::header::HOST, tpl(&["$proxy_host"])),
    ]);
    let s = server(vec![], vec![loc(prefix("/"), Some(conf), vec![])]);
    let p = Proxy::start(plan(vec![s], 0, vec![up])).await;
    let mut c = tokio::net::TcpStream::connect(p.addr)
        .await
        .expect("connect");
    c.write_all(
        b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    )
    .await
    .expect("write");
    let mut buf = Vec::new();
    let r = read_response(&mut c, &mut buf, true).await.expect("101");
    assert_eq!(r.status, 101);
    assert_eq!(r.header("upgrade"), Some("websocket"));
    c.write_all(b"ping-frame").await.expect("write");
    let mut got = buf.clone();
    let mut tmp = [0u8; 64];
    while got.len() < 10 {
        let n = c.read(&mut tmp).await.expect("read");
        assert!(n > 0, "tunnel closed");
        got.extend_from_slice(&tmp[..n]);
    }
    assert_eq!(&got[..], b"ping-frame");
    let sent = &b.requests()[0];
    assert!(sent.starts_with("GET /ws HTTP/1.1\r\n"));
    assert!(sent.to_ascii_lowercase().contains("upgrade: websocket\r\n"));
    p.stop().await;
}

#[tokio::test]
async fn hide_pass_headers_method_body_overrides() {
    let b = Backend::spawn(
        "b",
        Behaviour::Headers(vec![
            ("Server".into(), "gunicorn".into()),
            ("X-App".into(), "secret".into()),
            ("X-Accel-Other".into(), "kept".into()),
        ]),
    )
    .await;
    let echo = Backend::spawn("e", Behaviour::Echo).await;
    let up = upstream("backend", &[b.addr]);
    let up2 = upstream("echo", &[echo.addr]);
    let mut conf = proxy_conf(&up, None);
    conf.pass_headers = vec![http::header::SERVER];
    conf.hide_headers = vec![http::HeaderName::from_static("x-app")];
    let mut conf2 = proxy_conf(&up2, None);
    conf2.pass_request_headers = false;
    conf2.set_body = Some(tpl(&["uri=", "$uri"]));
    conf2.method = Some(tpl(&["PUT"]));
    let s = server(
        vec![],
        vec![
            loc(prefix("/"), Some(conf), vec![]),
            loc(prefix("/echo/"), Some(conf2), vec![]),
        ],
    );
    let p = Proxy::start(plan(vec![s], 0, vec![up, up2])).await;
    let r = get(p.addr, "h", "/").await;
    assert_eq!(r.header("server"), Some("gunicorn"));
    assert!(r.header("x-app").is_none());
    assert_eq!(
        r.header("x-accel-other"),
        Some("kept"),
        "only nginx's five X-Accel-* are hidden"
    );
    let r = raw(
        p.addr,
        b"GET /echo/x HTTP/1.1\r\nHost: h\r\nX-Client: 1\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("response");
    let t = r.text();
    assert!(t.starts_with("PUT /echo/x HTTP/1.0\r\n"), "{t}");
    assert!(!t.to_ascii_lowercase().contains("x-client"));
    assert!(t.ends_with("\r\n\r\nuri=/echo/x"));
    assert!(t.to_ascii_lowercase().contains("content-length: 11\r\n"));
    p.stop().await;
}

#[tokio::test]
async fn request_done_hook_sees_final_values_for_the_access_log() {
    use nginx_rs::runtime::log::{combined, render_line};
    use std::sync::Mutex;
    let b = Backend::spawn("b", Behaviour::Echo).await;
    let dead = Backend::dead_addr().await;
    let up = upstream("backend", &[dead, b.addr]);
    let s = server(
        vec![],
        vec![loc(prefix("/"), Some(proxy_conf(&up, None)), vec![])],
    );
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = lines.clone();
    let fmt = combined();
    let p = Proxy::start_live(plan(vec![s], 0, vec![up]), move |l| {
        l.with_request_done(Arc::new(move |ctx| {
            let mut extra = Vec::new();
            let t = Template {
                segments: vec![
                    Segment::Var(Var::Status),
                    Segment::Literal(" ".into()),
                    Segment::Var(Var::BodyBytesSent),
                    Segment::Literal(" ".into()),
                    Segment::Var(Var::UpstreamAddr),
                    Segment::Literal(" ".into()),
                    Segment::Var(Var::UpstreamStatus),
                ],
            };
            ctx.render_into(&t, &mut extra);
            let line = String::from_utf8_lossy(&render_line(&fmt, ctx)).into_owned();
            sink.lock()
                .expect("lock")
                .push(format!("{}|{line}", String::from_utf8_lossy(&extra)));
        }))
    })
    .await;
    let r = raw(
        p.addr,
        b"GET /x?y HTTP/1.1\r\nHost: h\r\nUser-Agent: ua/1\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("response");
    assert_eq!(r.status, 200);
    let n = r.body.len();
    // The hook runs when the body is done; give the connection task a moment to finish.
    for _ in 0..50 {
        if !lines.lock().expect("lock").is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let got = lines.lock().expect("lock").clone();
    assert_eq!(got.len(), 1, "{got:?}");
    let (extra, line) = got[0].split_once('|').expect("sep");
    assert_eq!(extra, format!("200 {n} {dead}, {} 502, 200", b.addr));
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(
        line.contains(&format!("\"GET /x?y HTTP/1.1\" 200 {n} \"-\" \"ua/1\"")),
        "{line}"
    );
    p.stop().await;
}
