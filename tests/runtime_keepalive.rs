//! Upstream keepalive (HTTP/1.1, pooled connections), the fresh-connection retry when a pooled one
//! died, graceful shutdown, reload by swapping `Live`, and bind errors.

mod support;

use std::sync::Arc;
use std::time::Duration;

use nginx_rs::plan::*;
use nginx_rs::runtime::{self, Live};
use support::*;
use tokio::io::AsyncWriteExt;

/// HTTP/1.1 upstream without `Connection: close` and a `keepalive` pool.
fn keepalive_plan(addrs: &[std::net::SocketAddr]) -> Plan {
    let mut u = Arc::try_unwrap(upstream("backend", addrs)).expect("fresh");
    u.keepalive = Some(8);
    let up = Arc::new(u);
    let mut conf = proxy_conf(&up, None);
    conf.http_version = HttpVersion::Http11;
    conf.set_headers = Arc::new(vec![
        (http::header::HOST, tpl(&["$proxy_host"])),
        (http::header::CONNECTION, tpl(&[""])),
    ]);
    let s = server(vec![], vec![loc(prefix("/"), Some(conf), vec![])]);
    plan(vec![s], 0, vec![up])
}

#[tokio::test]
async fn upstream_connections_are_reused() {
    let b = Backend::spawn("b", Behaviour::Echo).await;
    let p = Proxy::start(keepalive_plan(&[b.addr])).await;
    for i in 0..10 {
        let r = get(p.addr, "h", &format!("/{i}")).await;
        assert_eq!(r.status, 200);
        let (line, h) = head_of(&r.text());
        assert_eq!(line, format!("GET /{i} HTTP/1.1"));
        assert!(!h.iter().any(|(k, _)| k == "connection"), "{h:?}");
    }
    assert_eq!(b.requests().len(), 10);
    assert!(
        b.connections.load(std::sync::atomic::Ordering::SeqCst) < 10,
        "no reuse: {} connections",
        b.connections.load(std::sync::atomic::Ordering::SeqCst)
    );
    p.stop().await;
}

#[tokio::test]
async fn dead_pooled_connection_is_retried_on_a_fresh_one() {
    let b = Backend::spawn("b", Behaviour::CloseAfterResponse).await;
    let p = Proxy::start(keepalive_plan(&[b.addr])).await;
    for i in 0..10 {
        let r = get(p.addr, "h", &format!("/{i}")).await;
        assert_eq!(r.status, 200, "request {i}");
        // Give the pool a chance to hold the connection the backend just closed.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(b.requests().len(), 10);
    p.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_and_closes_idle() {
    let slow = Backend::spawn("slow", Behaviour::Slow(5)).await;
    let up = upstream("backend", &[slow.addr]);
    let s = server(
        vec![],
        vec![loc(prefix("/"), Some(proxy_conf(&up, None)), vec![])],
    );
    let p = Proxy::start(plan(vec![s], 0, vec![up])).await;
    // An idle keepalive connection and one with a request in flight.
    let mut idle = tokio::net::TcpStream::connect(p.addr)
        .await
        .expect("connect");
    let mut busy = tokio::net::TcpStream::connect(p.addr)
        .await
        .expect("connect");
    busy.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let addr = p.addr;
    let stopping = tokio::spawn(p.stop());
    let mut buf = Vec::new();
    let r = read_response(&mut busy, &mut buf, false)
        .await
        .expect("in-flight response");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "xxxxx");
    assert!(
        closed(&mut idle).await,
        "idle keepalive connection not closed"
    );
    stopping.await.expect("stop");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting"
    );
}

#[tokio::test]
async fn reload_swaps_live_for_new_requests() {
    let b1 = Backend::spawn("one", Behaviour::Echo).await;
    let b2 = Backend::spawn("two", Behaviour::Echo).await;
    let mk = |addr| {
        let up = upstream("backend", &[addr]);
        let s = server(
            vec![],
            vec![loc(prefix("/"), Some(proxy_conf(&up, None)), vec![])],
        );
        plan(vec![s], 0, vec![up])
    };
    let p = Proxy::start(mk(b1.addr)).await;
    assert_eq!(get(p.addr, "h", "/").await.header("x-backend"), Some("one"));
    let old = p.live.load_full();
    p.live.store(Arc::new(Live::new(
        Arc::new(mk(b2.addr)),
        Some(&old.upstreams),
    )));
    assert_eq!(get(p.addr, "h", "/").await.header("x-backend"), Some("two"));
    p.stop().await;
}

#[tokio::test]
async fn bind_error_says_what_nginx_says() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let b = Backend::spawn("b", Behaviour::Echo).await;
    let up = upstream("backend", &[b.addr]);
    let s = server(
        vec![],
        vec![loc(prefix("/"), Some(proxy_conf(&up, None)), vec![])],
    );
    let mut pl = plan(vec![s], 0, vec![up]);
    pl.http.listens[0].addr = ListenAddr::Inet(addr);
    let err = runtime::bind(&pl).err().expect("must fail");
    assert_eq!(
        err.to_string(),
        format!("bind() to {addr} failed (98: Address already in use)")
    );
}

#[tokio::test]
async fn ipv6_listener() {
    let b = Backend::spawn("b", Behaviour::Echo).await;
    let up = upstream("backend", &[b.addr]);
    let s = server(
        vec![],
        vec![loc(prefix("/"), Some(proxy_conf(&up, None)), vec![])],
    );
    let mut pl = plan(vec![s], 0, vec![up]);
    pl.http.listens[0].addr = ListenAddr::Inet("[::1]:0".parse().expect("addr"));
    let Ok(listeners) = runtime::bind(&pl) else {
        eprintln!("SKIP: no IPv6 loopback");
        return;
    };
    let addr = listeners.sockets[0].1.local_addr().expect("addr");
    let live = Arc::new(arc_swap::ArcSwap::from_pointee(Live::new(
        Arc::new(pl),
        None,
    )));
    let (tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(runtime::serve(listeners, live, rx));
    let r = raw(
        addr,
        b"GET / HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("response");
    assert_eq!(r.status, 200);
    let _ = tx.send(true);
    let _ = task.await;
}

/// An echo backend and a proxy to it with the default client limits changed by `set` (see
/// [`proxy_with_client_limits`]).
async fn echo_proxy(set: impl FnOnce(&mut ClientLimits)) -> (Backend, Proxy) {
    let b = Backend::spawn("b", Behaviour::Echo).await;
    let mut client = base_loc_conf().client;
    set(&mut client);
    let p = proxy_with_client_limits(&b, client).await;
    (b, p)
}

/// `GET /` on an open keepalive connection, and its response.
async fn get_on(conn: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Resp {
    conn.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .expect("write");
    read_response(conn, buf, false).await.expect("response")
}

/// A proxy to `b` whose server and location both have the client limits `client`, as the
/// compiler's merge leaves them: the server's decide the connection's timeouts, the location's
/// the per-request keepalive decision.
async fn proxy_with_client_limits(b: &Backend, client: ClientLimits) -> Proxy {
    let up = upstream("backend", &[b.addr]);
    let mut c = base_loc_conf();
    c.client = client.clone();
    let mut lc = base_loc_conf();
    lc.client = client;
    lc.proxy = Some(proxy_conf(&up, None));
    let l = Arc::new(Location {
        matcher: prefix("/"),
        conf: Arc::new(LocConf::from(lc)),
        children: Box::new([]),
        span: span(),
    });
    let s = server_with_conf(vec![], vec![l], c);
    Proxy::start(plan(vec![s], 0, vec![up])).await
}

#[tokio::test]
async fn keepalive_requests_and_keepalive_timeout_zero_close_the_connection() {
    for (limits, closes_after) in [
        ((Some(Duration::from_secs(75)), 3u64), 3usize),
        ((None, 1000), 1),
    ] {
        let (_b, p) = echo_proxy(|c| {
            c.keepalive_timeout = limits.0;
            c.keepalive_requests = limits.1;
        })
        .await;
        let mut conn = tokio::net::TcpStream::connect(p.addr)
            .await
            .expect("connect");
        let mut buf = Vec::new();
        for i in 1..=closes_after {
            let r = get_on(&mut conn, &mut buf).await;
            assert_eq!(r.status, 200);
            let last = i == closes_after;
            assert_eq!(r.header("connection") == Some("close"), last, "request {i}");
        }
        assert!(closed(&mut conn).await);
        p.stop().await;
    }
}

/// Between two requests an idle client connection is parked after 10-20 ms (hyper's connection
/// ends, the socket stays open): the next request on it, even one whose head comes in pieces, is
/// served, and the idle wait is keepalive_timeout while a started head gets
/// client_header_timeout.
#[tokio::test]
async fn idle_keepalive_connection_is_parked_and_served_again() {
    let (b, p) = echo_proxy(|c| {
        c.keepalive_timeout = Some(Duration::from_millis(800));
        c.header_timeout = Duration::from_secs(5);
    })
    .await;
    let mut conn = tokio::net::TcpStream::connect(p.addr)
        .await
        .expect("connect");
    let mut buf = Vec::new();
    // Process-wide: other tests' connections may park too, never fewer than this one's.
    let parked_before = runtime::park::parked_total();
    for i in 0..3 {
        // Idle long enough for the connection to park, shorter than keepalive_timeout.
        tokio::time::sleep(Duration::from_millis(300)).await;
        conn.write_all(format!("GET /{i} HTTP/1.1\r\nHo").as_bytes())
            .await
            .expect("write");
        // A head in two pieces, the pause longer than keepalive_timeout: the head has begun,
        // so client_header_timeout applies.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        conn.write_all(b"st: h\r\n\r\n").await.expect("write");
        let r = read_response(&mut conn, &mut buf, false)
            .await
            .expect("response");
        assert_eq!(r.status, 200, "request {i}");
        assert_eq!(r.header("connection"), Some("keep-alive"), "request {i}");
    }
    let paths: Vec<String> = b.requests().iter().map(|r| head_of(r).0).collect();
    assert_eq!(
        paths,
        ["GET /0 HTTP/1.0", "GET /1 HTTP/1.0", "GET /2 HTTP/1.0"]
    );
    // It parked in the pauses after the first and second responses (before the first request
    // there is no HTTP state to drop: hyper starts on the first bytes).
    let parked = runtime::park::parked_total() - parked_before;
    assert!(parked >= 2, "parked {parked} times, expected at least 2");
    // Idle past keepalive_timeout: closed.
    let idle = std::time::Instant::now();
    assert!(closed(&mut conn).await);
    assert!(
        idle.elapsed() < Duration::from_secs(3),
        "{:?}",
        idle.elapsed()
    );
    p.stop().await;
}

/// A connection that parks leaves tokio (`runtime::dormant`): no task of the proxy's runtime is
/// left for it while it waits. It comes back with its request count (keepalive_requests still
/// closes it at the third request), and a graceful stop closes a sleeping connection without
/// waiting for it.
#[tokio::test]
async fn parked_connection_sleeps_outside_tokio_and_keeps_its_count() {
    let (_b, p) = echo_proxy(|c| {
        c.keepalive_timeout = Some(Duration::from_secs(30));
        c.keepalive_requests = 3;
    })
    .await;
    let metrics = tokio::runtime::Handle::current().metrics();
    // The proxy's own tasks (serve, accept loop, dormant set) up and running.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let tasks_without = metrics.num_alive_tasks();
    let mut conn = tokio::net::TcpStream::connect(p.addr)
        .await
        .expect("connect");
    let mut buf = Vec::new();
    for i in 1..=3 {
        let r = get_on(&mut conn, &mut buf).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("connection") == Some("close"),
            i == 3,
            "request {i}"
        );
        if i < 3 {
            // Idle long enough to park (10-20 ms).
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert_eq!(
                metrics.num_alive_tasks(),
                tasks_without,
                "after request {i}: the sleeping connection still has a task"
            );
        }
    }
    assert!(closed(&mut conn).await);

    let mut idle = tokio::net::TcpStream::connect(p.addr)
        .await
        .expect("connect");
    let r = get_on(&mut idle, &mut buf).await;
    assert_eq!(r.status, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(metrics.num_alive_tasks(), tasks_without);
    tokio::time::timeout(Duration::from_secs(5), p.stop())
        .await
        .expect("the stop waited for a sleeping connection");
    assert!(closed(&mut idle).await);
}

/// client_header_timeout, timed by the head guard: a new connection that sends nothing, and a
/// head that stops halfway (first request or after a response), are closed without an answer
/// once it passes; keepalive_timeout (longer here) does not apply to them.
#[tokio::test]
async fn unfinished_or_missing_head_is_closed_after_client_header_timeout() {
    use tokio::io::AsyncReadExt;
    let (_b, p) = echo_proxy(|c| {
        c.keepalive_timeout = Some(Duration::from_secs(30));
        c.header_timeout = Duration::from_millis(400);
    })
    .await;
    // What the proxy sends until it closes, and how long it took (at most 5 s).
    async fn until_closed(conn: &mut tokio::net::TcpStream) -> (Vec<u8>, Duration) {
        let start = std::time::Instant::now();
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut got)).await;
        assert!(read.is_ok(), "still open after 5 s");
        (got, start.elapsed())
    }
    let connect = || tokio::net::TcpStream::connect(p.addr);

    // Nothing at all, then a head stopped halfway: no answer, closed after the timeout.
    for sent in [&b""[..], b"GET / HTTP/1.1\r\nHo"] {
        let mut conn = connect().await.expect("connect");
        conn.write_all(sent).await.expect("write");
        let (got, took) = until_closed(&mut conn).await;
        assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
        assert!(took >= Duration::from_millis(300), "{took:?}");
    }

    // A second head that stops halfway, right after a first response (before any parking).
    let mut second = connect().await.expect("connect");
    second
        .write_all(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHo")
        .await
        .expect("write");
    let (got, _) = until_closed(&mut second).await;
    let text = String::from_utf8_lossy(&got);
    assert_eq!(text.matches("HTTP/1.1 200").count(), 1, "{text}");
    p.stop().await;
}
