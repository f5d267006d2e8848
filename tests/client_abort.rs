//! A client that goes away while its request waits on the upstream (nginx's default
//! `proxy_ignore_client_abort off`): the upstream connection is closed at once and the request
//! ends as 499; a client that merely sends its next request early is still served.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nginx_rs::plan::*;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// How long the test backends wait for the proxy to close before giving up: far longer than
/// the proxy needs to notice a client that left.
const PATIENCE: Duration = Duration::from_secs(5);

/// A backend that reads one request head, writes `answer` (maybe nothing), then waits for the
/// proxy to close the connection. Reports when the head arrived and whether (and when) it saw
/// the close within [`PATIENCE`].
async fn waiting_backend(
    answer: &'static [u8],
) -> (SocketAddr, oneshot::Receiver<Option<Instant>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let Ok((mut s, _)) = l.accept().await else {
            return;
        };
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while find(&head, b"\r\n\r\n").is_none() {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        if !answer.is_empty() && s.write_all(answer).await.is_err() {
            let _ = tx.send(Some(Instant::now()));
            return;
        }
        let closed = tokio::time::timeout(PATIENCE, async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return Instant::now(),
                    Ok(_) => {}
                }
            }
        })
        .await
        .ok();
        let _ = tx.send(closed);
    });
    (addr, rx)
}

/// A proxy to `backend` whose request-done hook records each request's `$status`.
async fn proxy_recording_status(backend: SocketAddr) -> (Proxy, Arc<Mutex<Vec<String>>>) {
    let up = upstream("backend", &[backend]);
    let s = server(
        vec![],
        vec![loc(prefix("/"), Some(proxy_conf(&up, None)), vec![])],
    );
    let statuses: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = statuses.clone();
    let p = Proxy::start_live(plan(vec![s], 0, vec![up]), move |l| {
        l.with_request_done(Arc::new(move |ctx| {
            let mut out = Vec::new();
            let t = Template {
                segments: vec![Segment::Var(Var::Status)],
            };
            ctx.render_into(&t, &mut out);
            sink.lock()
                .expect("lock")
                .push(String::from_utf8_lossy(&out).into_owned());
        }))
    })
    .await;
    (p, statuses)
}

/// Connects, asks for `/slow`, and gives the request time to reach the backend.
async fn request_then_leave(addr: SocketAddr) -> TcpStream {
    let mut c = TcpStream::connect(addr).await.expect("connect");
    c.write_all(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(200)).await;
    c
}

async fn logged(statuses: &Mutex<Vec<String>>) -> Vec<String> {
    for _ in 0..100 {
        if !statuses.lock().expect("lock").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    statuses.lock().expect("lock").clone()
}

#[tokio::test]
async fn client_gone_while_the_upstream_thinks_closes_it_and_logs_499() {
    let (backend, seen) = waiting_backend(b"").await;
    let (p, statuses) = proxy_recording_status(backend).await;
    drop(request_then_leave(p.addr).await);
    let left = Instant::now();
    let closed = seen.await.expect("backend report");
    let closed = closed.expect("the proxy kept the upstream connection open");
    assert!(
        closed.duration_since(left) < PATIENCE / 2,
        "upstream closed {:?} after the client left",
        closed.duration_since(left)
    );
    assert_eq!(logged(&statuses).await, ["499"]);
    p.stop().await;
}

#[tokio::test]
async fn client_half_close_while_the_upstream_thinks_is_an_abort_too() {
    // nginx reads a client's FIN during the upstream wait as the client going away.
    let (backend, seen) = waiting_backend(b"").await;
    let (p, statuses) = proxy_recording_status(backend).await;
    let mut c = request_then_leave(p.addr).await;
    c.shutdown().await.expect("shutdown");
    assert!(seen.await.expect("backend report").is_some());
    assert_eq!(logged(&statuses).await, ["499"]);
    // Nothing was answered; the proxy closed the connection.
    let mut rest = Vec::new();
    let n = tokio::time::timeout(PATIENCE, c.read_to_end(&mut rest))
        .await
        .expect("closed")
        .unwrap_or(0);
    assert_eq!(n, 0, "{:?}", String::from_utf8_lossy(&rest));
    p.stop().await;
}

#[tokio::test]
async fn client_gone_while_the_response_body_stalls_closes_the_upstream() {
    let (backend, seen) =
        waiting_backend(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nhello").await;
    let (p, _statuses) = proxy_recording_status(backend).await;
    let mut c = TcpStream::connect(p.addr).await.expect("connect");
    c.write_all(b"GET /stream HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while find(&got, b"hello").is_none() {
        let n = tokio::time::timeout(PATIENCE, c.read(&mut buf))
            .await
            .expect("response in time")
            .expect("read");
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    drop(c);
    let left = Instant::now();
    let closed = seen
        .await
        .expect("backend report")
        .expect("the proxy kept the upstream connection open");
    assert!(closed.duration_since(left) < PATIENCE / 2);
    p.stop().await;
}

#[tokio::test]
async fn a_pipelined_request_is_not_taken_for_an_abort() {
    let b = Backend::spawn("b", Behaviour::Slow(2)).await;
    let (p, statuses) = proxy_recording_status(b.addr).await;
    let mut c = TcpStream::connect(p.addr).await.expect("connect");
    // Both requests at once: the second is there while the first waits on its upstream.
    c.write_all(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    for i in 1..=2 {
        let r = read_response(&mut c, &mut buf, false)
            .await
            .unwrap_or_else(|| panic!("response {i}"));
        assert_eq!(r.status, 200, "response {i}");
    }
    for _ in 0..100 {
        if statuses.lock().expect("lock").len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(*statuses.lock().expect("lock"), ["200", "200"]);
    p.stop().await;
}

/// The same scenario on real nginx and on the nginx-rs binary, each with its access log and an
/// info-level error log (skipped with a message when nginx is not installed): the upstream
/// connection closed at once, `499` logged, and the same error-log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_and_the_nginx_rs_binary_agree() {
    use support::nginx::{skip_unless, start, Flavor, Options};
    for flavor in [Flavor::Nginx, Flavor::NginxRs] {
        let (backend, seen) = waiting_backend(b"").await;
        let http = move |port: u16| {
            format!(
                "server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://{backend}; }} }}"
            )
        };
        let started = tokio::task::spawn_blocking(move || start(flavor, Options::default(), &http))
            .await
            .expect("start");
        let Some(server) = skip_unless(started, flavor) else {
            return;
        };
        drop(request_then_leave(server.addr()).await);
        let left = Instant::now();
        let closed = seen
            .await
            .expect("backend report")
            .unwrap_or_else(|| panic!("{} kept the upstream connection open", flavor.name()));
        assert!(
            closed.duration_since(left) < PATIENCE / 2,
            "{}",
            flavor.name()
        );
        let mut log = String::new();
        for _ in 0..100 {
            log = server.access_log();
            if !log.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            log.contains("\"GET /slow HTTP/1.1\" 499 0 "),
            "{}: {log}",
            flavor.name()
        );
        let stderr = server.stderr();
        assert!(
            stderr.contains(&format!(
                "epoll_wait() reported that client prematurely closed connection, so upstream \
                 connection is closed too while sending request to upstream, client: 127.0.0.1, \
                 server: , request: \"GET /slow HTTP/1.1\", upstream: \"http://{backend}/slow\", \
                 host: \"h\""
            )),
            "{}: {stderr}",
            flavor.name()
        );
    }
}
