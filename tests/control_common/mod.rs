//! Blocking HTTP/1.1 client helpers shared by the tests that run the nginx-rs binary
//! (`control_daemon`, `control_privdrop`).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

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
