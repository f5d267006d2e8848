//! A backend dies during a bounded load run: with the proxy's retry rule (on an error, report
//! `failure()` and select again with the same `Tried`, at most `Group::tries()` peers), no client
//! request fails, and the dead peer stops being chosen (max_fails/fail_timeout).

mod upstream_common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nginx_rs::plan::Balance;
use nginx_rs::runtime::upstream::h1;
use nginx_rs::runtime::upstream::{Group, SelectKey, Tried};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use upstream_common::*;

struct Backend {
    addr: SocketAddr,
    served: Arc<AtomicUsize>,
    kill: watch::Sender<bool>,
}

/// A keep-alive HTTP/1.1 backend answering `name`; `kill` closes its listener and every
/// connection that is waiting for a request.
async fn backend(name: &'static str) -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let served = Arc::new(AtomicUsize::new(0));
    let (kill, dead) = watch::channel(false);
    let count = served.clone();
    let mut dead_l = dead.clone();
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = dead_l.changed() => return, // drops the listener: connections are refused
            };
            let Ok((mut s, _)) = accepted else { return };
            let (count, mut dead) = (count.clone(), dead.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        let n = tokio::select! {
                            r = s.read(&mut chunk) => r,
                            _ = dead.changed() => return,
                        };
                        match n {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    if *dead.borrow() {
                        return;
                    }
                    let end = buf
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .map_or(0, |p| p + 4);
                    buf.drain(..end);
                    count.fetch_add(1, Ordering::SeqCst);
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{name}",
                        name.len()
                    );
                    if s.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Backend { addr, served, kill }
}

/// One client request the way the proxy handler runs it (`proxy_next_upstream error`).
async fn request(g: &Group) -> Result<String, String> {
    let mut tried = Tried::new();
    let mut last = String::new();
    while tried.attempts() < g.tries() {
        let Ok(peer) = g.select(SelectKey::None, &mut tried) else {
            return Err("no live upstreams".into());
        };
        let mut fresh = false;
        loop {
            let conn = if fresh {
                g.connect_fresh(&peer, Duration::from_secs(1)).await
            } else {
                g.connect(&peer, Duration::from_secs(1)).await
            };
            let mut conn = match conn {
                Ok(c) => c,
                Err(e) => {
                    last = e.to_string();
                    peer.failure();
                    break;
                }
            };
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
                // A reused connection that failed before any response: once more, fresh.
                Err(_) if reused && !fresh => fresh = true,
                Err(e) => {
                    last = format!("{e:?}");
                    peer.failure();
                    break;
                }
            }
        }
    }
    Err(last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_of_three_backends_loses_no_request() {
    for method in [Balance::RoundRobin, Balance::LeastConn, hash(true)] {
        let backends = [backend("a").await, backend("b").await, backend("c").await];
        let servers = backends
            .iter()
            .map(|b| server(&b.addr.to_string(), &[b.addr]))
            .collect();
        let up = upstream(method.clone(), servers);
        let mut up = Arc::try_unwrap(up).expect("fresh Arc");
        up.keepalive = Some(8);
        let g = Arc::new(Group::new(Arc::new(up)));

        let done = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let (g, done, failed) = (g.clone(), done.clone(), failed.clone());
                tokio::spawn(async move {
                    for _ in 0..150 {
                        match request(&g).await {
                            Ok(_) => done.fetch_add(1, Ordering::SeqCst),
                            Err(e) => {
                                eprintln!("failed: {e}");
                                failed.fetch_add(1, Ordering::SeqCst)
                            }
                        };
                    }
                })
            })
            .collect();
        // Kill "b" once the run is under way.
        while done.load(Ordering::SeqCst) < 100 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        backends[1].kill.send_replace(true);
        let served_b_at_kill = backends[1].served.load(Ordering::SeqCst);
        for t in tasks {
            t.await.expect("task");
        }

        assert_eq!(failed.load(Ordering::SeqCst), 0, "{method:?}");
        assert_eq!(done.load(Ordering::SeqCst), 600, "{method:?}");
        // "b" got nothing after it died (beyond the at most one request per client already
        // past its kill check); the others carried the load.
        let served_b = backends[1].served.load(Ordering::SeqCst);
        assert!(
            served_b <= served_b_at_kill + 4,
            "{served_b} > {served_b_at_kill} + 4"
        );
        let total: usize = backends
            .iter()
            .map(|b| b.served.load(Ordering::SeqCst))
            .sum();
        assert_eq!(total, 600, "{method:?}");
    }
}
