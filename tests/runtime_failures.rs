//! Upstream failures: 502/504 pages, nginx's error-log lines, proxy_next_upstream failover and its
//! limits, timeouts.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nginx_rs::plan::*;
use support::*;

/// Captures tracing output (the error log) of a current-thread test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let w = self.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || w.clone())
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .with_level(false)
            .finish();
        tracing::subscriber::set_default(sub)
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

fn one_location(conf: ProxyConf, up: &Arc<Upstream>) -> Plan {
    let s = server(
        vec![ServerName::Exact("localhost".into())],
        vec![loc(prefix("/"), Some(conf), vec![])],
    );
    plan(vec![s], 0, vec![up.clone()])
}

#[tokio::test]
async fn refused_single_peer_is_502_with_nginx_page_and_log_line() {
    let log = Captured::default();
    let _g = log.install();
    let dead = Backend::dead_addr().await;
    let up = upstream("backend", &[dead]);
    let p = Proxy::start(one_location(proxy_conf(&up, None), &up)).await;
    let r = get(p.addr, "localhost", "/x?y").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.status_line, "HTTP/1.1 502 Bad Gateway");
    assert_eq!(r.header("content-type"), Some("text/html"));
    let tokens = concat!("nginx-rs/", env!("CARGO_PKG_VERSION"));
    assert_eq!(
        r.text(),
        format!("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>{tokens}</center>\r\n</body>\r\n</html>\r\n")
    );
    let want = format!(
        "connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: localhost, request: \"GET /x?y HTTP/1.1\", upstream: \"http://{dead}/x?y\", host: \"localhost\""
    );
    assert!(log.text().contains(&want), "log was: {}", log.text());
    p.stop().await;
}

#[tokio::test]
async fn dead_peer_among_three_costs_the_client_nothing() {
    let b1 = Backend::spawn("one", Behaviour::Echo).await;
    let dead = Backend::dead_addr().await;
    let b3 = Backend::spawn("three", Behaviour::Echo).await;
    let up = upstream("backend", &[b1.addr, dead, b3.addr]);
    let p = Proxy::start(one_location(proxy_conf(&up, None), &up)).await;
    for _ in 0..9 {
        let r = get(p.addr, "localhost", "/").await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(b1.requests().len() + b3.requests().len(), 9);
    p.stop().await;
}

#[tokio::test]
async fn hanging_peer_is_504_after_read_timeout() {
    let log = Captured::default();
    let _g = log.install();
    let b = Backend::spawn("hang", Behaviour::Hang).await;
    let up = upstream("backend", &[b.addr]);
    let mut conf = proxy_conf(&up, None);
    conf.read_timeout = Duration::from_millis(300);
    let p = Proxy::start(one_location(conf, &up)).await;
    let r = get(p.addr, "localhost", "/").await;
    assert_eq!(r.status, 504);
    assert_eq!(r.status_line, "HTTP/1.1 504 Gateway Time-out");
    assert!(r.text().contains("<title>504 Gateway Time-out</title>"));
    assert!(log
        .text()
        .contains("upstream timed out (110: Connection timed out) while reading response header from upstream"));
    p.stop().await;
}

#[tokio::test]
async fn timeout_fails_over_to_next_peer_but_not_for_post() {
    let hang = Backend::spawn("hang", Behaviour::Hang).await;
    let ok = Backend::spawn("ok", Behaviour::Echo).await;
    let up = upstream("backend", &[hang.addr, ok.addr]);
    let mut conf = proxy_conf(&up, None);
    conf.read_timeout = Duration::from_millis(300);
    let p = Proxy::start(one_location(conf, &up)).await;
    // First request starts at the hanging peer, times out, goes to the next one.
    let r = get(p.addr, "localhost", "/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-backend"), Some("ok"));
    // A POST that was sent is not retried (non-idempotent): the hanging peer's timeout is final.
    // Round robin: the next pick is `ok`, so send one GET first to land the POST on `hang`...
    // but `hang` is now failed (max_fails 1) for fail_timeout, so use a fresh proxy instead.
    p.stop().await;
    let up2 = upstream("backend2", &[hang.addr, ok.addr]);
    let mut conf = proxy_conf(&up2, None);
    conf.read_timeout = Duration::from_millis(300);
    let p = Proxy::start(one_location(conf, &up2)).await;
    let r = raw(
        p.addr,
        b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    )
    .await
    .expect("response");
    assert_eq!(r.status, 504);
    assert_eq!(
        ok.requests()
            .iter()
            .filter(|r| r.starts_with("POST"))
            .count(),
        0
    );
    p.stop().await;
}

#[tokio::test]
async fn next_upstream_status_and_tries_limit() {
    let bad1 = Backend::spawn("bad1", Behaviour::Status(502)).await;
    let bad2 = Backend::spawn("bad2", Behaviour::Status(502)).await;
    let ok = Backend::spawn("ok", Behaviour::Echo).await;
    let up = upstream("backend", &[bad1.addr, bad2.addr, ok.addr]);
    let mut conf = proxy_conf(&up, None);
    conf.next_upstream.statuses = &[502];
    conf.next_upstream_tries = 2;
    let p = Proxy::start(one_location(conf, &up)).await;
    // bad1, then bad2: two tries used, the last answer (502 from bad2) goes to the client.
    let r = get(p.addr, "localhost", "/").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.header("x-backend"), Some("bad2"));
    assert_eq!(bad1.requests().len() + bad2.requests().len(), 2);
    assert_eq!(ok.requests().len(), 0);
    p.stop().await;
}

#[tokio::test]
async fn backend_status_passes_through_without_next_upstream() {
    let b = Backend::spawn("b", Behaviour::Status(503)).await;
    let up = upstream("backend", &[b.addr]);
    let p = Proxy::start(one_location(proxy_conf(&up, None), &up)).await;
    let r = get(p.addr, "localhost", "/").await;
    assert_eq!(r.status, 503);
    assert_eq!(
        r.status_line, "HTTP/1.1 503 Whatever",
        "the backend's reason phrase is kept"
    );
    assert_eq!(r.text(), "status");
    p.stop().await;
}

#[tokio::test]
async fn response_is_streamed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let b = Backend::spawn("slow", Behaviour::Slow(5)).await;
    let up = upstream("backend", &[b.addr]);
    let p = Proxy::start(one_location(proxy_conf(&up, None), &up)).await;
    let mut c = tokio::net::TcpStream::connect(p.addr)
        .await
        .expect("connect");
    c.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    // The head and the first body byte arrive before the backend has sent the rest.
    let mut got = Vec::new();
    let mut tmp = [0u8; 1024];
    let body_start = loop {
        let n = c.read(&mut tmp).await.expect("read");
        assert!(n > 0, "closed early");
        got.extend_from_slice(&tmp[..n]);
        if let Some(i) = find(&got, b"\r\n\r\n") {
            if got.len() > i + 4 {
                break i + 4;
            }
        }
    };
    let body_so_far = got.len() - body_start;
    assert!(
        body_so_far < 5,
        "got the whole body at once: {}",
        String::from_utf8_lossy(&got)
    );
    p.stop().await;
}

#[tokio::test]
async fn send_timeout_closes_a_client_that_stops_reading() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let size = 64 * 1024 * 1024;
    let b = Backend::spawn("big", Behaviour::Big(size)).await;
    let up = upstream("backend", &[b.addr]);
    let mut c = base_loc_conf();
    c.client.send_timeout = Duration::from_millis(300);
    let s = server_with_conf(
        vec![],
        vec![loc(prefix("/"), Some(proxy_conf(&up, None)), vec![])],
        c,
    );
    let p = Proxy::start(plan(vec![s], 0, vec![up])).await;
    let mut c = tokio::net::TcpStream::connect(p.addr)
        .await
        .expect("connect");
    c.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut total = 0usize;
    let mut tmp = vec![0u8; 1 << 20];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), c.read(&mut tmp)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => total += n,
            Err(_) => panic!("connection neither closed nor finished"),
        }
    }
    assert!(total < size, "whole body delivered despite send_timeout");
    p.stop().await;
}

#[tokio::test]
async fn invalid_header_is_502_and_not_retried_by_default() {
    let log = Captured::default();
    let _g = log.install();
    let bad = Backend::spawn("bad", Behaviour::Garbage).await;
    let ok = Backend::spawn("ok", Behaviour::Echo).await;
    let up = upstream("backend", &[bad.addr, ok.addr]);
    let p = Proxy::start(one_location(proxy_conf(&up, None), &up)).await;
    let r = get(p.addr, "localhost", "/").await;
    assert_eq!(r.status, 502);
    assert!(
        ok.requests().is_empty(),
        "invalid_header is not in the default proxy_next_upstream"
    );
    assert!(log.text().contains(
        "upstream sent no valid HTTP/1.0 header while reading response header from upstream"
    ));
    p.stop().await;
}
