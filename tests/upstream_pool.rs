//! Keepalive pools and connecting, with real backends on 127.0.0.1 (and a unix socket): reuse,
//! limits, backends closing idle connections, nginx's connect error words.

mod upstream_common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nginx_rs::plan::{Balance, PeerAddr, UpstreamServer};
use nginx_rs::runtime::upstream::h1;
use nginx_rs::runtime::upstream::{ConnectError, Group, SelectKey, Tried};
use nginx_rs::runtime::worker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use upstream_common::*;

/// A raw HTTP/1.1 backend answering `name` to every request. After each response it closes the
/// connection with probability `close_percent` (at once or after a short idle pause), without
/// saying so: what a backend with its own short keepalive timeout does.
struct Backend {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

async fn backend(name: &'static str, close_percent: u32) -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let (acc, reqs) = (accepted.clone(), requests.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            acc.fetch_add(1, Ordering::SeqCst);
            let reqs = reqs.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    // Read one request head (the tests send no bodies).
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .map_or(0, |p| p + 4);
                    buf.drain(..end);
                    reqs.fetch_add(1, Ordering::SeqCst);
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{name}",
                        name.len()
                    );
                    if s.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                    if fastrand::u32(0..100) < close_percent {
                        if fastrand::bool() {
                            tokio::time::sleep(Duration::from_millis(fastrand::u64(1..5))).await;
                        }
                        return;
                    }
                }
            });
        }
    });
    Backend {
        addr,
        accepted,
        requests,
    }
}

fn group_for(servers: Vec<UpstreamServer>, keepalive: Option<usize>) -> Group {
    let up = upstream(Balance::RoundRobin, servers);
    let mut up = Arc::try_unwrap(up).expect("fresh Arc");
    up.keepalive = keepalive;
    Group::new(Arc::new(up))
}

fn group_with(be: &Backend, keepalive: Option<usize>) -> Group {
    group_for(vec![server(&be.addr.to_string(), &[be.addr])], keepalive)
}

/// Retries made on a fresh connection after a reused one failed (reported, not asserted: it
/// depends on when the backend's close reaches us).
static RETRIES: AtomicUsize = AtomicUsize::new(0);

/// What the proxy handler does for one request: select, connect (pooled first), send; a failure
/// on a reused connection before any response is retried once on a fresh connection.
async fn get(g: &Group) -> Result<String, String> {
    let peer = g
        .select(SelectKey::None, &mut Tried::new())
        .map_err(|e| e.to_string())?;
    let mut conn = g
        .connect(&peer, Duration::from_secs(2))
        .await
        .map_err(|e| e.to_string())?;
    for attempt in 0..2 {
        let reused = conn.reused;
        write_get(conn.request_buf());
        match h1::round_trip(conn, Duration::from_secs(2)).await {
            Ok((_, bytes, reusable)) => {
                if let Some(conn) = reusable {
                    g.release(conn);
                }
                peer.success();
                return Ok(String::from_utf8_lossy(&bytes).into_owned());
            }
            Err(e) if reused && attempt == 0 => {
                let _ = e;
                RETRIES.fetch_add(1, Ordering::SeqCst);
                conn = g
                    .connect_fresh(&peer, Duration::from_secs(2))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Err(e) => {
                peer.failure();
                return Err(format!("{e:?}"));
            }
        }
    }
    Err("retry exhausted".into())
}

#[tokio::test]
async fn sequential_requests_reuse_one_connection() {
    let be = backend("a", 0).await;
    let g = group_with(&be, Some(2));
    for _ in 0..100 {
        assert_eq!(get(&g).await.as_deref(), Ok("a"));
    }
    assert_eq!(be.requests.load(Ordering::SeqCst), 100);
    assert_eq!(be.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_use_far_fewer_connections_than_requests() {
    let be = backend("a", 0).await;
    let g = Arc::new(group_with(&be, Some(16)));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let g = g.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    assert_eq!(get(&g).await.as_deref(), Ok("a"));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(be.requests.load(Ordering::SeqCst), 400);
    let conns = be.accepted.load(Ordering::SeqCst);
    assert!(conns <= 16, "{conns} connections for 400 requests");
}

#[tokio::test]
async fn without_keepalive_every_request_gets_its_own_connection() {
    let be = backend("a", 0).await;
    let g = group_with(&be, None);
    for _ in 0..10 {
        assert_eq!(get(&g).await.as_deref(), Ok("a"));
    }
    assert_eq!(be.accepted.load(Ordering::SeqCst), 10);
    assert_eq!(g.idle_connections(), 0);
}

#[tokio::test]
async fn keepalive_requests_and_timeout_end_a_connection() {
    let be = backend("a", 0).await;
    let up = upstream(
        Balance::RoundRobin,
        vec![server(&be.addr.to_string(), &[be.addr])],
    );
    let mut up = Arc::try_unwrap(up).expect("fresh Arc");
    up.keepalive = Some(4);
    up.keepalive_requests = 3;
    up.keepalive_timeout = Duration::from_millis(150);
    let g = Group::new(Arc::new(up));
    for _ in 0..9 {
        assert_eq!(get(&g).await.as_deref(), Ok("a"));
    }
    assert_eq!(
        be.accepted.load(Ordering::SeqCst),
        3,
        "3 requests per connection"
    );

    // keepalive_timeout: an idle connection older than it is not used again.
    assert_eq!(get(&g).await.as_deref(), Ok("a"));
    assert_eq!(be.accepted.load(Ordering::SeqCst), 4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get(&g).await.as_deref(), Ok("a"));
    assert_eq!(be.accepted.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn pool_keeps_at_most_keepalive_idle_connections() {
    let be = backend("a", 0).await;
    let g = group_with(&be, Some(2));
    let peer = g.select(SelectKey::None, &mut Tried::new()).expect("peer");
    let mut conns = Vec::new();
    for _ in 0..5 {
        conns.push(
            g.connect(&peer, Duration::from_secs(2))
                .await
                .expect("connect"),
        );
    }
    for c in conns {
        g.release(c);
    }
    assert_eq!(g.idle_connections(), 2);
}

/// Puts the calling thread back to worker 0 when dropped (the test thread may be reused).
struct AsWorker;

impl AsWorker {
    fn enter(i: usize) -> AsWorker {
        worker::enter(i);
        AsWorker
    }
}

impl Drop for AsWorker {
    fn drop(&mut self) {
        worker::enter(0);
    }
}

#[tokio::test]
async fn each_worker_keeps_its_own_idle_connections() {
    // nginx keeps `keepalive N` idle connections per worker process, and a connection is used
    // only by the worker that opened it. A count of 2 is harmless to this file's other tests:
    // their threads are all worker 0, so their pools use one shard as before.
    worker::set_count(2);
    let be = backend("a", 0).await;
    let g = group_with(&be, Some(1));
    {
        let _w = AsWorker::enter(0);
        assert_eq!(get(&g).await.as_deref(), Ok("a"));
    }
    {
        let _w = AsWorker::enter(1);
        // Worker 0's idle connection is not handed to worker 1.
        assert_eq!(get(&g).await.as_deref(), Ok("a"));
    }
    assert_eq!(be.accepted.load(Ordering::SeqCst), 2);
    // One idle connection per worker: `keepalive 1` with two workers, as nginx.
    assert_eq!(g.idle_connections(), 2);
    for i in [0, 1, 1, 0] {
        let _w = AsWorker::enter(i);
        assert_eq!(get(&g).await.as_deref(), Ok("a"));
    }
    assert_eq!(be.accepted.load(Ordering::SeqCst), 2);
    assert_eq!(be.requests.load(Ordering::SeqCst), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_closing_idle_connections_never_fails_a_request() {
    let a = backend("a", 30).await;
    let b = backend("b", 30).await;
    let g = Arc::new(group_for(
        vec![
            server(&a.addr.to_string(), &[a.addr]),
            server(&b.addr.to_string(), &[b.addr]),
        ],
        Some(8),
    ));
    let failures = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (g, failures) = (g.clone(), failures.clone());
            tokio::spawn(async move {
                for i in 0..75 {
                    if get(&g).await.is_err() {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                    if i % 10 == 0 {
                        // Idle pauses let the backends' closes land while pooled.
                        tokio::time::sleep(Duration::from_millis(3)).await;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(failures.load(Ordering::SeqCst), 0);
    eprintln!(
        "retries on a fresh connection: {}",
        RETRIES.load(Ordering::SeqCst)
    );
    let served = a.requests.load(Ordering::SeqCst) + b.requests.load(Ordering::SeqCst);
    assert!(served >= 300, "{served}");
    // Reuse still happened despite the closes.
    let conns = a.accepted.load(Ordering::SeqCst) + b.accepted.load(Ordering::SeqCst);
    assert!(conns < 300, "{conns} connections for 300 requests");
}

#[tokio::test]
async fn refused_connection_reads_like_nginx() {
    let port = free_ports(1)[0];
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let g = group_for(vec![server(&addr.to_string(), &[addr])], None);
    let peer = g.select(SelectKey::None, &mut Tried::new()).expect("peer");
    let err = g
        .connect(&peer, Duration::from_secs(2))
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, ConnectError::Refused(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "connect() failed (111: Connection refused)"
    );
}

#[tokio::test]
async fn connect_timeout_reads_like_nginx() {
    // A listener that never accepts, with the smallest backlog: once the queue is full the
    // kernel drops further SYNs and connect() hangs until our timeout.
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let any: SocketAddr = ([127, 0, 0, 1], 0).into();
    sock.bind(&any.into()).expect("bind");
    sock.listen(0).expect("listen");
    let addr = sock.local_addr().expect("addr").as_socket().expect("inet");
    let g = group_for(vec![server(&addr.to_string(), &[addr])], None);
    let peer = g.select(SelectKey::None, &mut Tried::new()).expect("peer");
    let mut held = Vec::new();
    let mut timed_out = None;
    for _ in 0..16 {
        match g.connect(&peer, Duration::from_millis(200)).await {
            Ok(c) => held.push(c),
            Err(e) => {
                timed_out = Some(e);
                break;
            }
        }
    }
    let err = timed_out.expect("the backlog filled up");
    assert!(matches!(err, ConnectError::Timeout), "{err:?}");
    assert_eq!(
        err.to_string(),
        "upstream timed out (110: Connection timed out)"
    );
}

#[tokio::test]
async fn unix_socket_peers_work_and_missing_ones_name_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("app.sock");
    let listener = tokio::net::UnixListener::bind(&path).expect("bind unix");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nunix")
                    .await;
            });
        }
    });
    let mut srv = server(&format!("unix:{}", path.display()), &[]);
    srv.addrs = vec![PeerAddr::Unix(path.clone())];
    let g = group_for(vec![srv], Some(1));
    assert_eq!(get(&g).await.as_deref(), Ok("unix"));

    let missing = dir.path().join("missing.sock");
    let mut srv = server(&format!("unix:{}", missing.display()), &[]);
    srv.addrs = vec![PeerAddr::Unix(missing.clone())];
    let g = group_for(vec![srv], None);
    let peer = g.select(SelectKey::None, &mut Tried::new()).expect("peer");
    let err = g
        .connect(&peer, Duration::from_secs(1))
        .await
        .expect_err("no socket");
    assert_eq!(
        err.log_message(peer.addr()),
        format!(
            "connect() to unix:{} failed (2: No such file or directory)",
            missing.display()
        )
    );
}

#[tokio::test]
async fn idle_connections_are_closed_when_keepalive_timeout_expires() {
    let be = backend("a", 0).await;
    let up = upstream(
        Balance::RoundRobin,
        vec![server(&be.addr.to_string(), &[be.addr])],
    );
    let mut up = Arc::try_unwrap(up).expect("fresh Arc");
    up.keepalive = Some(4);
    up.keepalive_timeout = Duration::from_millis(100);
    let g = Group::new(Arc::new(up));
    assert_eq!(get(&g).await.as_deref(), Ok("a"));
    assert_eq!(g.idle_connections(), 1);
    // Nothing else touches the pool: only the sweeper can empty it.
    let mut closed = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if g.idle_connections() == 0 {
            closed = true;
            break;
        }
    }
    assert!(closed, "idle connection outlived keepalive_timeout");
}
