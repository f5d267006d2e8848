//! nginx-rs's HTTP/1 upstream client end to end: nginx-rs in process on a compiled config, in
//! front of a scripted raw backend (exact response bytes, accepted connections counted).
//! Response framing (chunked decoded and re-framed, `Content-Length`, no body for HEAD/204),
//! keepalive reuse only when the response allows it, and streamed request bodies.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use support::{compile, free_port, raw, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A backend answering every request with `reply(request)` on a connection it keeps open
/// until the proxy closes it (or closes itself after each reply when `close`).
struct Scripted {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Scripted {
    async fn start(reply: fn(&str) -> Vec<u8>) -> Scripted {
        Self::start_with(reply, false).await
    }

    async fn start_with(reply: fn(&str) -> Vec<u8>, close: bool) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (acc, reqs) = (accepted.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                acc.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(s, reply, close, reqs.clone()));
            }
        });
        Scripted {
            addr,
            accepted,
            requests,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

async fn serve(
    mut s: TcpStream,
    reply: fn(&str) -> Vec<u8>,
    close: bool,
    log: Arc<Mutex<Vec<String>>>,
) {
    let mut buf = Vec::new();
    while let Some(req) = read_request(&mut s, &mut buf).await {
        if let Ok(mut l) = log.lock() {
            l.push(req.clone());
        }
        if s.write_all(&reply(&req)).await.is_err() || close {
            return;
        }
    }
}

/// One request (head and body, by its framing) off the front of `buf`, reading as needed.
async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        let text = String::from_utf8_lossy(buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = text[..end + 4].to_ascii_lowercase();
            let body_end = if head.contains("transfer-encoding: chunked") {
                text[end..].find("\r\n0\r\n\r\n").map(|i| end + i + 7)
            } else if let Some(cl) = head.split("content-length: ").nth(1) {
                let n: usize = cl.split("\r\n").next()?.trim().parse().ok()?;
                (buf.len() >= end + 4 + n).then_some(end + 4 + n)
            } else {
                Some(end + 4)
            };
            if let Some(e) = body_end {
                let req = String::from_utf8_lossy(&buf[..e]).into_owned();
                buf.drain(..e);
                return Some(req);
            }
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// nginx-rs with a keepalive upstream in front of `backend`; `extra` goes into the location.
async fn proxy(backend: SocketAddr, extra: &str) -> Proxy {
    let port = free_port();
    Proxy::start(compile(&format!(
        "upstream b {{ server {backend}; keepalive 4; }}
         server {{
             listen 127.0.0.1:{port};
             location / {{ proxy_pass http://b; proxy_set_header Connection \"\"; {extra} }}
         }}"
    )))
    .await
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn chunked_responses_are_decoded_and_the_connection_reused() {
    let b = Scripted::start(|_| {
        // A stray Content-Length beside chunked must not reach the client.
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n\
          5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"
            .to_vec()
    })
    .await;
    let p = proxy(b.addr, "").await;
    for _ in 0..3 {
        let r = raw(p.addr, &get("/")).await.expect("response");
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "hello world");
        assert_ne!(r.header("content-length"), Some("99"));
    }
    assert_eq!(
        b.accepted(),
        1,
        "one upstream connection for three requests"
    );
    p.stop().await;
}

#[tokio::test]
async fn connection_close_and_http10_answers_are_not_reused() {
    for reply in [
        (|_: &str| b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".to_vec())
            as fn(&str) -> Vec<u8>,
        |_: &str| b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
    ] {
        let b = Scripted::start(reply).await;
        let p = proxy(b.addr, "").await;
        for _ in 0..2 {
            let r = raw(p.addr, &get("/")).await.expect("response");
            assert_eq!((r.status, r.text().as_str()), (200, "ok"));
        }
        assert_eq!(
            b.accepted(),
            2,
            "the backend keeps the socket open; nginx-rs must not"
        );
        p.stop().await;
    }
}

#[tokio::test]
async fn head_204_and_304_have_no_body_and_keep_the_connection() {
    let b = Scripted::start(|req| {
        if req.starts_with("HEAD ") {
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".to_vec()
        } else if req.starts_with("GET /204 ") {
            b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()
        } else if req.starts_with("GET /304 ") {
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n".to_vec()
        } else {
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec()
        }
    })
    .await;
    let p = proxy(b.addr, "").await;
    let r = raw(
        p.addr,
        b"HEAD / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("response");
    assert_eq!((r.status, r.header("content-length")), (200, Some("5")));
    for (path, status) in [("/204", 204), ("/304", 304), ("/", 200)] {
        let r = raw(p.addr, &get(path)).await.expect("response");
        assert_eq!(r.status, status, "{path}");
    }
    assert_eq!(b.accepted(), 1);
    assert_eq!(b.requests().len(), 4);
    p.stop().await;
}

#[tokio::test]
async fn close_delimited_and_truncated_bodies() {
    // No length, no chunking: the body is everything up to the close.
    let b = Scripted::start_with(
        |_| b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nuntil close".to_vec(),
        true,
    )
    .await;
    let p = proxy(b.addr, "").await;
    for _ in 0..2 {
        let r = raw(p.addr, &get("/")).await.expect("response");
        assert_eq!((r.status, r.text().as_str()), (200, "until close"));
    }
    assert_eq!(b.accepted(), 2);
    p.stop().await;

    // Closed inside its length: the client connection is aborted, never completed with a
    // short body as if it were whole.
    let b = Scripted::start_with(
        |_| b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort".to_vec(),
        true,
    )
    .await;
    let p = proxy(b.addr, "").await;
    let r = raw(p.addr, &get("/")).await;
    assert!(
        r.as_ref().map_or(true, |r| r.text() != "short"),
        "a truncated body passed for a whole one: {:?}",
        r.map(|r| r.text())
    );
    p.stop().await;
}

#[tokio::test]
async fn streamed_request_bodies_go_up_chunked_and_limits_apply() {
    let b = Scripted::start(|_| b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()).await;
    let p = proxy(
        b.addr,
        "proxy_request_buffering off; proxy_http_version 1.1; client_max_body_size 10;",
    )
    .await;
    let r = raw(
        p.addr,
        b"POST /up HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
          3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
    )
    .await
    .expect("response");
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    let req = b.requests().pop().unwrap_or_default();
    assert!(req.contains("\r\nTransfer-Encoding: chunked\r\n"), "{req}");
    let body = &req[req.find("\r\n\r\n").map_or(0, |i| i + 4)..];
    let decoded: String = body
        .split("\r\n")
        .collect::<Vec<_>>()
        .chunks(2)
        .filter_map(|c| c.get(1).copied())
        .collect();
    assert_eq!(decoded, "abcdefg", "body as sent: {body:?}");

    // Over client_max_body_size while streaming: nginx's 413.
    let r = raw(
        p.addr,
        b"POST /up HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
          8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n",
    )
    .await
    .expect("response");
    assert_eq!(r.status, 413);
    p.stop().await;
}

#[tokio::test]
async fn an_early_answer_stops_the_upload_and_reaches_the_client() {
    // A backend that refuses an upload after its head and never reads the body.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\n\r\nnope")
                    .await;
                // Keep the connection open, unread, longer than the client waits.
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            });
        }
    });
    let p = proxy(
        addr,
        "client_max_body_size 10m; proxy_send_timeout 2s; proxy_http_version 1.1;",
    )
    .await;
    let body = vec![b'x'; 4 << 20];
    let mut req = format!(
        "POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    let r = raw(p.addr, &req).await.expect("response");
    assert_eq!((r.status, r.text().as_str()), (413, "nope"));
    p.stop().await;
}
