//! Holds many idle keepalive client connections open against a proxy, for the benchmark's
//! memory-per-connection figure (bench/run.sh, `VARIANT=idle`).
//!
//! `idle_clients ADDR N`: opens N connections to ADDR, sends one `GET /` on each and reads the
//! answer (so every connection has served a request and sits in keepalive), prints
//! `ready OK FAILED` on stdout, then holds the connections until it is killed.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// At most this many connections are being set up at once (the proxy's accept queue is finite).
const CONCURRENT_SETUP: usize = 256;

/// Connects, sends one request, reads until the end of the response head and its
/// Content-Length body; returns the open connection.
async fn one(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
        .await?;
    let mut r = BufReader::new(&mut s);
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                len = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(s)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(n)) = (args.next(), args.next()) else {
        eprintln!("usage: idle_clients ADDR N");
        std::process::exit(2);
    };
    let (Ok(addr), Ok(n)) = (addr.parse::<SocketAddr>(), n.parse::<usize>()) else {
        eprintln!("idle_clients: ADDR must be ip:port and N a number");
        std::process::exit(2);
    };
    let permits = Arc::new(Semaphore::new(CONCURRENT_SETUP));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let permits = permits.clone();
        tasks.push(tokio::spawn(async move {
            // The semaphore is never closed, so acquire cannot fail.
            let _permit = permits.acquire_owned().await.ok();
            one(addr).await
        }));
    }
    let mut held = Vec::with_capacity(n);
    let mut failed = 0usize;
    for t in tasks {
        match t.await {
            Ok(Ok(s)) => held.push(s),
            _ => failed += 1,
        }
    }
    // Rust's stdout is line-buffered: the script sees this line at once.
    println!("ready {} {failed}", held.len());
    // Hold the connections until the bench script kills us.
    std::future::pending::<()>().await;
    drop(held);
}
