//! The walkthrough's Flask `app.py`, in Rust, so the whole walkthrough runs without Python.
//!
//! `cargo run --example backend -- 5001 one` answers `GET /` with
//! `Hello from Flask server one (port 5001)`, like `python3 app.py 5001 one`. Other paths get a
//! 404 page shaped like Flask's. Listens on 127.0.0.1 unless a third argument names another
//! address (`cargo run --example backend -- 5001 one 0.0.0.0`). `BACKEND_DELAY_MS=10` makes every
//! answer wait that long first (the benchmark's slow-backend variant).

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Flask's 404 body (werkzeug's NotFound page).
const NOT_FOUND_PAGE: &str = "<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n\
<h1>Not Found</h1>\n<p>The requested URL was not found on the server. If you entered the URL \
manually please check your spelling and try again.</p>\n";

/// Flask's 405 body, for `/` with a method other than GET/HEAD/OPTIONS.
const METHOD_NOT_ALLOWED_PAGE: &str = "<!doctype html>\n<html lang=en>\n\
<title>405 Method Not Allowed</title>\n<h1>Method Not Allowed</h1>\n\
<p>The method is not allowed for the requested URL.</p>\n";

/// What the command line asked for.
struct Args {
    port: u16,
    server_id: String,
    ip: IpAddr,
}

/// `PORT [SERVER_ID [ADDRESS]]`, with app.py's defaults (5000, `no-id`) and 127.0.0.1.
fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let port = match args.next() {
        Some(p) => p.parse().map_err(|_| format!("invalid port \"{p}\""))?,
        None => 5000,
    };
    let server_id = args.next().unwrap_or_else(|| "no-id".to_string());
    let ip = match args.next() {
        Some(a) => a.parse().map_err(|_| format!("invalid address \"{a}\""))?,
        None => IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    Ok(Args {
        port,
        server_id,
        ip,
    })
}

/// Builds the answer for one request; `greeting` is the text of `GET /`.
fn respond(req: &Request<Incoming>, greeting: &Bytes) -> Response<Full<Bytes>> {
    let (status, body) = match (req.uri().path(), req.method()) {
        ("/", &Method::GET | &Method::HEAD) => (StatusCode::OK, greeting.clone()),
        ("/", &Method::OPTIONS) => (StatusCode::OK, Bytes::new()),
        ("/", _) => (
            StatusCode::METHOD_NOT_ALLOWED,
            Bytes::from_static(METHOD_NOT_ALLOWED_PAGE.as_bytes()),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            Bytes::from_static(NOT_FOUND_PAGE.as_bytes()),
        ),
    };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("backend: {e}\nusage: backend [PORT [SERVER_ID [ADDRESS]]]");
            std::process::exit(2);
        }
    };
    let addr = SocketAddr::new(args.ip, args.port);
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("backend: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    let delay = match std::env::var("BACKEND_DELAY_MS") {
        Ok(ms) => match ms.parse() {
            Ok(ms) => std::time::Duration::from_millis(ms),
            Err(_) => {
                eprintln!("backend: invalid BACKEND_DELAY_MS \"{ms}\"");
                std::process::exit(2);
            }
        },
        Err(_) => std::time::Duration::ZERO,
    };
    let greeting = Bytes::from(format!(
        "Hello from Flask server {} (port {})",
        args.server_id, args.port
    ));
    eprintln!(" * Running on http://{addr} (server {})", args.server_id);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors and the like: keep serving the others.
                eprintln!("backend: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let greeting = greeting.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let resp = respond(&req, &greeting);
                async move {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    Ok::<_, Infallible>(resp)
                }
            });
            // A client that goes away mid-request is not an error worth reporting.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
