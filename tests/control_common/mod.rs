//! Blocking HTTP/1.1 client helpers shared by the tests that run the nginx-rs binary
//! (`control_daemon`, `control_privdrop`).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// One request on a keepalive client connection; returns the body.
pub fn request(r: &mut BufReader<TcpStream>, path: &str) -> io::Result<String> {
    write!(r.get_mut(), "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")?;
    let mut status = String::new();
    r.read_line(&mut status)?;
    if !status.starts_with("HTTP/1.1 200") {
        return Err(io::Error::other(format!("status {status:?}")));
    }
    let mut len = 0;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if h == "\r\n" {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().map_err(io::Error::other)?;
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    String::from_utf8(body).map_err(io::Error::other)
}

pub fn get_once(addr: SocketAddr, path: &str) -> io::Result<String> {
    let mut r = BufReader::new(TcpStream::connect(addr)?);
    request(&mut r, path)
}

pub fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// Polls `cond` every 25 ms for up to 20 s; panics naming `what` if it never holds.
pub fn wait_for(mut cond: impl FnMut() -> bool, what: &str) {
    for _ in 0..800 {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("timed out waiting for {what}");
}

/// Keepalive clients sending `GET /` to one address in a loop until [`Load::finish`]; a failed
/// request is counted and the client reconnects.
pub struct Load {
    stop: Arc<AtomicBool>,
    failures: Arc<AtomicUsize>,
    done: Arc<AtomicUsize>,
    clients: Vec<JoinHandle<()>>,
}

impl Load {
    pub fn start(addr: SocketAddr, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let clients = (0..clients)
            .map(|_| {
                let (stop, failures, done) = (stop.clone(), failures.clone(), done.clone());
                std::thread::spawn(move || {
                    let mut conn = BufReader::new(TcpStream::connect(addr).expect("connect"));
                    while !stop.load(Ordering::SeqCst) {
                        match request(&mut conn, "/") {
                            Ok(_) => {
                                done.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(e) => {
                                eprintln!("request failed: {e}");
                                failures.fetch_add(1, Ordering::SeqCst);
                                match TcpStream::connect(addr) {
                                    Ok(c) => conn = BufReader::new(c),
                                    Err(_) => return,
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            failures,
            done,
            clients,
        }
    }

    /// Waits until `n` more requests have succeeded.
    pub fn wait_requests(&self, n: usize) {
        let target = self.done.load(Ordering::SeqCst) + n;
        wait_for(
            || self.done.load(Ordering::SeqCst) >= target,
            "requests under load",
        );
    }

    /// Stops the clients and returns how many requests failed.
    pub fn finish(self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        for c in self.clients {
            c.join().expect("client");
        }
        self.failures.load(Ordering::SeqCst)
    }
}
