//! Hostile and malformed client input: nginx's status, the connection closed, nothing forwarded.
//! Also the size limits (413, 414, 400 for a long header line).

mod support;

use std::time::Duration;

use nginx_rs::plan::*;
use support::*;
use tokio::io::AsyncWriteExt;

async fn setup() -> (Backend, Proxy) {
    let b = Backend::spawn("b", Behaviour::Echo).await;
    let up = upstream("backend", &[b.addr]);
    let mut c = base_loc_conf();
    c.client.large_header_buffers = (4, 1024);
    let s = server_with_conf(
        vec![ServerName::Exact("localhost".into())],
        vec![loc(prefix("/"), Some(proxy_conf(&up, None)), vec![])],
        c,
    );
    (b, Proxy::start(plan(vec![s], 0, vec![up])).await)
}

/// Send `req`, expect `status`, the connection closed, and nothing at the backend.
async fn rejected(p: &Proxy, b: &Backend, req: &[u8], status: u16) {
    let mut s = tokio::net::TcpStream::connect(p.addr)
        .await
        .expect("connect");
    s.write_all(req).await.expect("write");
    let mut buf = Vec::new();
    let r = read_response(&mut s, &mut buf, false).await;
    let shown = String::from_utf8_lossy(req);
    let r = r.unwrap_or_else(|| panic!("no response to {shown:?}"));
    assert_eq!(r.status, status, "for {shown:?}");
    assert!(closed(&mut s).await, "connection left open after {shown:?}");
    assert!(
        b.requests().is_empty(),
        "forwarded: {shown:?}: {:?}",
        b.requests()
    );
}

#[tokio::test]
async fn malformed_requests_get_nginx_status_and_are_not_forwarded() {
    let (b, p) = setup().await;
    let cases: &[(&[u8], u16)] = &[
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a..b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"get / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET /../x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET /a/%2e%2e/%2e%2e/x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nBad\0Name: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n  folded\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n", 400),
        (b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    ];
    for (req, status) in cases {
        rejected(&p, &b, req, *status).await;
    }
    p.stop().await;
}

#[tokio::test]
async fn size_limits() {
    let (b, p) = setup().await;
    // Content-Length over client_max_body_size: 413 at once with `Connection: close`; the body
    // the client still sends is read and dropped (lingering close), then the connection closes.
    let mut s = tokio::net::TcpStream::connect(p.addr)
        .await
        .expect("connect");
    s.write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let r = read_response(&mut s, &mut buf, false).await.expect("413");
    assert_eq!(r.status, 413);
    assert_eq!(r.header("connection"), Some("close"));
    s.write_all(&vec![b'z'; 2_000_000])
        .await
        .expect("body is read, not reset");
    assert!(closed(&mut s).await);
    assert!(b.requests().is_empty());
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(2000));
    rejected(&p, &b, long_uri.as_bytes(), 414).await;
    let long_header = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Long: {}\r\n\r\n",
        "a".repeat(2000)
    );
    let mut s = tokio::net::TcpStream::connect(p.addr)
        .await
        .expect("connect");
    s.write_all(long_header.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let r = read_response(&mut s, &mut buf, false)
        .await
        .expect("response");
    assert_eq!(r.status, 400);
    assert!(r
        .text()
        .contains("<title>400 Request Header Or Cookie Too Large</title>"));
    assert!(b.requests().is_empty());
    // A chunked body over client_max_body_size (1m) is 413 too, found while reading it.
    let mut s = tokio::net::TcpStream::connect(p.addr)
        .await
        .expect("connect");
    s.write_all(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .expect("write");
    let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "z".repeat(64 * 1024));
    for _ in 0..20 {
        if s.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let mut buf = Vec::new();
    let r = read_response(&mut s, &mut buf, false)
        .await
        .expect("response");
    assert_eq!(r.status, 413);
    assert_eq!(r.status_line, "HTTP/1.1 413 Request Entity Too Large");
    assert!(b.requests().is_empty());
    p.stop().await;
}

#[tokio::test]
async fn bodies_buffered_spilled_and_expect_continue() {
    let (b, p) = setup().await;
    // 600 KiB body: over the 16k memory buffer, so it goes through the temp file.
    let body = "q".repeat(600 * 1024);
    let req = format!(
        "PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let r = raw(p.addr, req.as_bytes()).await.expect("response");
    assert_eq!(r.status, 200);
    let got = &b.requests()[0];
    assert!(
        got.contains(&format!("Content-Length: {}\r\n", body.len()))
            || got
                .to_ascii_lowercase()
                .contains(&format!("content-length: {}\r\n", body.len()))
    );
    assert!(got.ends_with(&body));
    // Expect: 100-continue gets the interim response once the proxy reads the body.
    let mut s = tokio::net::TcpStream::connect(p.addr)
        .await
        .expect("connect");
    s.write_all(
        b"POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .expect("write");
    let mut buf = Vec::new();
    let r = read_response(&mut s, &mut buf, false).await.expect("100");
    assert_eq!(r.status, 100);
    s.write_all(b"data").await.expect("write");
    let r = read_response(&mut s, &mut buf, false).await.expect("200");
    assert_eq!(r.status, 200);
    let sent = &b.requests()[1];
    assert!(
        !sent.to_ascii_lowercase().contains("expect:"),
        "Expect is not forwarded"
    );
    assert!(sent.ends_with("\r\n\r\ndata"));
    p.stop().await;
}

#[tokio::test]
async fn client_body_timeout_closes_without_answer() {
    let b = Backend::spawn("b", Behaviour::Echo).await;
    let up = upstream("backend", &[b.addr]);
    let mut cm = base_loc_conf();
    cm.proxy = Some(proxy_conf(&up, None));
    cm.client.body_timeout = Duration::from_millis(300);
    let l = std::sync::Arc::new(Location {
        matcher: prefix("/"),
        conf: std::sync::Arc::new(LocConf::from(cm)),
        children: Box::new([]),
        span: span(),
    });
    let s = server(vec![], vec![l]);
    let p = Proxy::start(plan(vec![s], 0, vec![up])).await;
    let mut s = tokio::net::TcpStream::connect(p.addr)
        .await
        .expect("connect");
    s.write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        .await
        .expect("write");
    // nginx logs 408 and closes without sending anything.
    let mut buf = Vec::new();
    assert!(read_response(&mut s, &mut buf, false).await.is_none());
    assert!(buf.is_empty(), "sent: {}", String::from_utf8_lossy(&buf));
    assert!(b.requests().is_empty());
    p.stop().await;
}
