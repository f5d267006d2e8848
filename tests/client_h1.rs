//! Client-facing HTTP/1 connection behaviour, differential against real nginx: the nginx-rs
//! binary and nginx 1.22 on the same config, in front of the same backend, get the same raw
//! bytes over a raw `TcpStream`. What the client gets (status lines, headers, bodies, where one
//! response ends and the next begins, whether the connection ends) and what the backend
//! receives (request line, headers, decoded body, chunked or not) must be the same. This is the
//! safety net for replacing hyper's server half (`runtime::server`, `runtime::guard`).
//!
//! Every test runs its scenario on nginx-rs always, and on nginx when it is installed (else the
//! comparison is skipped with a printed `SKIP` line, and nginx-rs is still held to the
//! assertions). Each test also asserts what the scenario must show on its own (bodies, order,
//! what was forwarded), on both servers, so the expectations are nginx's and cannot drift.
//!
//! Compared as seen: status lines and bodies exactly; header lines as a sorted multiset (order
//! is not compared: nginx writes `Server`, `Date` first, nginx-rs the upstream's headers
//! first), names as sent, with the `Date` and `Server` values replaced (the clock moves; nginx
//! says `nginx/1.22.1`, nginx-rs `nginx-rs/0.1.0`, also in the pages they write, whose
//! `Content-Length` follows); `Connection` exactly; interim responses byte for byte. What the
//! backend got: request line, sorted header lines (names as sent), decoded body, chunked or
//! not. Where nginx-rs differs today, the case is in [`KNOWN_DIFFERENCES`] (checked both ways
//! by `support::known`), and the test asserts what nginx-rs does today so that a change is
//! noticed.
//!
//! The cases: pipelined GETs; a pipelined POST with a body then a GET; chunked request bodies
//! (extension, trailer) buffered and unbuffered; `Expect: 100-continue` answered with 100, and
//! refused with 413; HTTP/1.0 with and without keep-alive; HEAD then GET; an unread body
//! (`return`) then a GET; a close-delimited upstream answer to HTTP/1.1 and HTTP/1.0 clients;
//! 204 and 304 pipelined; a request written byte by byte; `Server`, `Date`, `Connection` on
//! every kind of response.
//!
//! No timed assertions: reads are bounded by [`SAFETY`] only so a broken server cannot hang
//! the test. A connection kept open is shown by a further request on it being answered; a
//! closed one by reading to EOF.
//!
//! Covered elsewhere, not repeated here:
//! - `tests/diff_limits.rs`: statuses/close/forward counts for `pipelined_two`, HEAD then GET
//!   pipelined, HTTP/1.0 keep-alive then close, `keepalive_requests`, `keepalive_timeout 0`,
//!   413 for `Expect: 100-continue` over the limit (status, no close within its wait: nginx
//!   lingers; nothing forwarded),
//!   client header/body timeouts;
//! - `tests/diff_proxy.rs`: what reaches the backend for single requests: sized and chunked
//!   bodies (one chunk with an extension and a trailer, buffered), `Expect: 100-continue` with
//!   the body sent at once, HTTP/1.0 without `Host`, HEAD, hop-by-hop headers;
//! - `tests/diff_malformed.rs`, `tests/runtime_malformed.rs`: malformed heads and bodies, size
//!   limits, a spilled body, `Expect: 100-continue` in process;
//! - `tests/diff_response.rs`: response headers passed and hidden, 204 on its own connection,
//!   large bodies, 502s;
//! - `tests/runtime_keepalive.rs`: keepalive limits, idle parking, a head in two pieces,
//!   `client_header_timeout` on unfinished heads, graceful shutdown;
//! - `tests/runtime_proxy.rs` (`keepalive_and_pipelining_from_the_client`): two GETs and a HEAD
//!   pipelined, in process;
//! - `tests/upstream_h1.rs`: the upstream side of close-delimited, 204/304 and HEAD responses
//!   and streamed (unbuffered) chunked uploads, in process;
//! - `tests/client_abort.rs`: a client that leaves mid-request, and an early pipelined request.
//!
//! `DIFF_DUMP=1 cargo test --test client_h1 -- --nocapture` prints what each server sent.

mod support;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use support::backend::{Backend, Close, Received, Reply};
use support::client::{parse_response, RawResponse};
use support::known::{assert_only_known, Difference};
use support::nginx::{nginx_binary, print_skip, skip_unless, start, Flavor, Options, Server};

/// Known differences of nginx-rs from nginx 1.22 here: (case, how it differs). The tests
/// assert what nginx-rs does today in these cases, so a change shows up there too.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[
    (
        "chunked_unbuffered_streamed",
        "with `proxy_http_version 1.1` nginx-rs sends no `Connection: close` upstream (current \
         nginx's default, see README), nginx 1.22 does",
    ),
    (
        "chunked_unbuffered_one_write",
        "nginx has the whole chunked body before it makes the upstream request and sends it \
         with `Content-Length: 11`; nginx-rs streams it `Transfer-Encoding: chunked`; and no \
         `Connection: close` upstream, as in chunked_unbuffered_streamed",
    ),
];

/// Upper bound on any single read: only so that a broken server cannot hang the test.
const SAFETY: Duration = Duration::from_secs(5);

/// The one backend behind [`http_config`], so that everything forwarded is recorded in the
/// order it arrived. It answers by path (see [`answer`]) and closes after each answer: the
/// proxies send `Connection: close` (all but nginx-rs over HTTP/1.1, which then finds the
/// connection closed and does not reuse it).
fn backend() -> Backend {
    Backend::builder()
        .reply(Reply::Raw(answer))
        .close(Close::AfterResponse)
        .start()
}

/// The backend's answers: `/s/204` and `/s/304` without a body, `/s/eof` an HTTP/1.0 response
/// without a length (ended by the close), `/s/spelled` header names in odd spellings, anything
/// else an echo: 200 with the request head and
/// body it read (for HEAD, the length of that without the body).
fn answer(req: &Received) -> Vec<u8> {
    let scripted: &[u8] = match req.target() {
        "/s/204" => b"HTTP/1.1 204 No Content\r\nX-Script: 204\r\n\r\n",
        "/s/304" => b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nX-Script: 304\r\n\r\n",
        "/s/eof" => b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nX-Script: eof\r\n\r\nbody up to the close",
        "/s/spelled" => b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-lower: 1\r\nETag: \"e\"\r\nX-MiXed-CASE: 2\r\nlast-modified: Sun, 29 Nov 2026 10:00:00 GMT\r\ncache-control: no-cache\r\ncontent-length: 2\r\n\r\nok",
        _ => b"",
    };
    if !scripted.is_empty() {
        return scripted.to_vec();
    }
    let body = [req.head.as_slice(), req.body.as_slice()].concat();
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if req.method() != "HEAD" {
        out.extend_from_slice(&body);
    }
    out
}

/// The config both servers run; `listen` is the proxy's port.
fn http_config(listen: u16, backend: &Backend) -> String {
    let port = backend.port();
    format!(
        r#"
    # nginx 1.22's default, explicit: current nginx and nginx-rs default to 1.1.
    proxy_http_version 1.0;

    server {{
        listen 127.0.0.1:{listen};
        server_name localhost;

        location / {{
            proxy_pass http://127.0.0.1:{port};
        }}

        location /unbuffered/ {{
            proxy_pass http://127.0.0.1:{port};
            proxy_request_buffering off;
            proxy_http_version 1.1;
        }}

        location /small/ {{
            client_max_body_size 10;
            proxy_pass http://127.0.0.1:{port};
        }}

        location = /return {{
            return 200 "ok";
        }}
    }}
"#
    )
}

/// One response as the client read it.
#[derive(Clone, Debug)]
struct Got {
    /// Parsed (interim 1xx skipped, body de-chunked).
    resp: RawResponse,
    /// Exactly the bytes it took on the wire, interim responses included.
    raw: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.resp.header(name)
    }

    /// How the body was framed: `chunked`, `length` (`Content-Length`), or `eof` (neither: up
    /// to the close).
    fn framing(&self) -> &'static str {
        if self
            .header("transfer-encoding")
            .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
        {
            "chunked"
        } else if self.header("content-length").is_some() {
            "length"
        } else {
            "eof"
        }
    }
}

/// A raw client connection; every read is bounded by [`SAFETY`].
struct Conn {
    addr: SocketAddr,
    stream: TcpStream,
    /// Bytes read and not yet taken by a response.
    buf: Vec<u8>,
    eof: bool,
}

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect_timeout(&addr, SAFETY).expect("connect");
        stream.set_read_timeout(Some(SAFETY)).expect("read timeout");
        stream
            .set_write_timeout(Some(SAFETY))
            .expect("write timeout");
        // Tiny writes must leave as tiny segments.
        stream.set_nodelay(true).expect("nodelay");
        Conn {
            addr,
            stream,
            buf: Vec::new(),
            eof: false,
        }
    }

    /// A new connection to the same server.
    fn reopen(&self) -> Conn {
        Conn::open(self.addr)
    }

    /// Writes `bytes` in one write.
    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to the proxy");
    }

    /// Writes `bytes` to a server that may have closed already (the outcome is read after).
    fn send_late(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// One read into the buffer; false at EOF, on an error, or when [`SAFETY`] passed.
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    return false;
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return false
                }
                Err(_) => {
                    self.eof = true;
                    return false;
                }
            }
        }
    }

    /// The next whole response (`head`: it answers a HEAD, so it has no body), or None if none
    /// arrived.
    fn response(&mut self, head: bool) -> Option<Got> {
        loop {
            if let Some((resp, used)) = parse_response(&self.buf, head, self.eof) {
                let raw = self.buf.drain(..used).collect();
                return Some(Got { resp, raw });
            }
            if self.eof || !self.fill() {
                // At EOF a response without a length ends here.
                let (resp, used) = parse_response(&self.buf, head, self.eof)?;
                let raw = self.buf.drain(..used).collect();
                return Some(Got { resp, raw });
            }
        }
    }

    /// The next response head alone (an interim `100 Continue`), exactly as sent.
    fn head_only(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                return Some(self.buf.drain(..i + 4).collect());
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// Reads until the server closes; returns the bytes that came before the close (none are
    /// expected), or None if it did not close within [`SAFETY`].
    fn until_close(&mut self) -> Option<Vec<u8>> {
        while !self.eof {
            if !self.fill() && !self.eof {
                return None;
            }
        }
        Some(std::mem::take(&mut self.buf))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What the client saw in one scenario, plus what the backend received.
#[derive(Debug, Default)]
struct Seen {
    responses: Vec<Got>,
    /// `Some(bytes)`: the scenario waited for the close and it came, after these extra bytes.
    closed: Option<Option<Vec<u8>>>,
    /// Bytes a scenario recorded verbatim (interim responses).
    interim: Vec<Vec<u8>>,
    forwarded: Vec<Received>,
}

impl Seen {
    /// Records the next response; a missing one is recorded too (status 0, and whatever
    /// arrived instead as its raw bytes), so that the comparison shows it.
    fn push(&mut self, conn: &mut Conn, head: bool) {
        let got = conn.response(head).unwrap_or_else(|| Got {
            resp: RawResponse {
                status_line: format!("<no response, closed: {}>", conn.eof),
                status: 0,
                headers: Vec::new(),
                body: Vec::new(),
            },
            raw: std::mem::take(&mut conn.buf),
        });
        self.responses.push(got);
    }

    /// Waits for the server to close and records it.
    fn close(&mut self, conn: &mut Conn) {
        self.closed = Some(conn.until_close());
    }

    fn statuses(&self) -> Vec<u16> {
        self.responses.iter().map(|g| g.resp.status).collect()
    }

    fn bodies(&self) -> Vec<String> {
        self.responses.iter().map(|g| g.resp.text()).collect()
    }

    /// The request lines the backend received, in order.
    fn request_lines(&self) -> Vec<&str> {
        self.forwarded
            .iter()
            .map(|r| r.request_line.as_str())
            .collect()
    }

    /// True when the scenario saw the connection close with nothing after the last response.
    fn closed_cleanly(&self) -> bool {
        matches!(&self.closed, Some(Some(rest)) if rest.is_empty())
    }
}

/// The comparable form of a [`Seen`] (see the module doc for the normalisations).
#[derive(Debug, PartialEq, Eq)]
struct View {
    responses: Vec<(String, Vec<String>, &'static str, String)>,
    closed: Option<Option<String>>,
    interim: Vec<String>,
    forwarded: Vec<(String, Vec<String>, String, bool)>,
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The normalised view of one response: status line, sorted header lines, framing, body. The
/// server's own name (its `Server` value) in a page it wrote becomes `<server>`, and that page's
/// `Content-Length` follows.
fn response_view(got: &Got) -> (String, Vec<String>, &'static str, String) {
    let body = got.resp.text();
    let token = got.header("server").unwrap_or("<no server header>");
    let normalised = body.replace(token, "<server>");
    let mut lines: Vec<String> = got
        .resp
        .headers
        .iter()
        .map(|(name, v)| {
            let v = match name.to_ascii_lowercase().as_str() {
                "date" => "<date>".to_string(),
                "server" => "<server>".to_string(),
                "content-length" if *v == body.len().to_string() => normalised.len().to_string(),
                _ => v.clone(),
            };
            format!("{name}: {v}")
        })
        .collect();
    lines.sort();
    (
        got.resp.status_line.clone(),
        lines,
        got.framing(),
        normalised,
    )
}

fn view(seen: &Seen) -> View {
    View {
        responses: seen.responses.iter().map(response_view).collect(),
        closed: seen.closed.as_ref().map(|c| c.as_deref().map(lossy)),
        interim: seen.interim.iter().map(|b| lossy(b)).collect(),
        forwarded: seen
            .forwarded
            .iter()
            .map(|r| {
                let mut headers: Vec<String> =
                    r.headers.iter().map(|(n, v)| format!("{n}: {v}")).collect();
                headers.sort();
                (r.request_line.clone(), headers, lossy(&r.body), r.chunked)
            })
            .collect(),
    }
}

/// A scenario: what the client does on a connection just opened to the server (it may open
/// more with [`Conn::reopen`]), recording what it saw. The backend is there to look at.
type Scenario<'a> = dyn Fn(&mut Conn, &mut Seen, &Backend) + 'a;

/// Runs `scenario` on one server and collects what the backend received meanwhile.
fn observe(server: &Server, backend: &Backend, scenario: &Scenario<'_>) -> Seen {
    backend.take_received();
    let mut seen = Seen::default();
    scenario(&mut Conn::open(server.addr()), &mut seen, backend);
    // A backend records each request before answering it, so everything forwarded for the
    // responses the client read is recorded by now.
    seen.forwarded = backend.take_received();
    if std::env::var_os("DIFF_DUMP").is_some() {
        eprintln!("--- {} ---", server.flavor().name());
        for g in &seen.responses {
            eprintln!("{:?}", lossy(&g.raw));
        }
        for i in &seen.interim {
            eprintln!("interim {:?}", lossy(i));
        }
        eprintln!(
            "closed: {:?}",
            seen.closed.as_ref().map(|c| c.as_deref().map(lossy))
        );
        for r in &seen.forwarded {
            eprintln!("forwarded {:?} body {:?}", lossy(&r.head), lossy(&r.body));
        }
    }
    seen
}

fn start_server(flavor: Flavor, backend: &Backend) -> Option<Server> {
    skip_unless(
        start(flavor, Options::default(), &|port| {
            http_config(port, backend)
        }),
        flavor,
    )
}

/// Runs `scenario` (case `name`) on nginx-rs and, if installed, on nginx; checks `expect`
/// against both, and that the two agree up to [`KNOWN_DIFFERENCES`]. Returns what nginx-rs and
/// nginx saw, None if nginx-rs was skipped.
fn differential(
    name: &str,
    scenario: impl Fn(&mut Conn, &mut Seen, &Backend),
    expect: impl Fn(Flavor, &Seen),
) -> Option<(Seen, Option<Seen>)> {
    let backend = backend();
    let rs = start_server(Flavor::NginxRs, &backend).map(|s| {
        let seen = observe(&s, &backend, &scenario);
        (seen, s.stderr())
    });
    let nginx = match nginx_binary() {
        Ok(_) => start_server(Flavor::Nginx, &backend).map(|s| observe(&s, &backend, &scenario)),
        Err(why) => {
            print_skip(&format!("{name}: no comparison with nginx: {why}"));
            None
        }
    };
    if let Some(n) = &nginx {
        expect(Flavor::Nginx, n);
    }
    // None: nginx-rs does not serve and NGINX_RS_ALLOW_SKIP=1 said that is a skip.
    let (rs, rs_stderr) = rs?;
    expect(Flavor::NginxRs, &rs);
    if let Some(n) = &nginx {
        let (a, b) = (view(n), view(&rs));
        let found: Vec<Difference> = (a != b)
            .then(|| Difference {
                case: name.to_string(),
                detail: format!("case {name}:\n  nginx    {a:?}\n  nginx-rs {b:?}"),
            })
            .into_iter()
            .collect();
        let known: Vec<(&str, &str)> = KNOWN_DIFFERENCES
            .iter()
            .copied()
            .filter(|(case, _)| *case == name)
            .collect();
        assert_only_known(&found, &known, &format!("nginx-rs stderr:\n{rs_stderr}"));
    }
    Some((rs, nginx))
}

const GET_CLOSE: &str = "GET /last HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")
}

/// The usual scenario: on one connection, each step writes its bytes in one write and reads
/// that many responses (none of them to a HEAD); then the close is awaited.
fn steps(steps: Vec<(String, usize)>) -> impl Fn(&mut Conn, &mut Seen, &Backend) {
    move |c, seen, _| {
        for (bytes, responses) in &steps {
            c.send(bytes.as_bytes());
            for _ in 0..*responses {
                seen.push(c, false);
            }
        }
        seen.close(c);
    }
}

/// The client got these statuses, the backend these request lines, and the connection then
/// closed with nothing stray after the last response.
fn assert_flow(flavor: Flavor, seen: &Seen, statuses: &[u16], forwarded: &[&str]) {
    assert_eq!(seen.statuses(), statuses, "{flavor:?}: {:?}", seen.bodies());
    assert_eq!(seen.request_lines(), forwarded, "{flavor:?}");
    assert!(seen.closed_cleanly(), "{flavor:?}: {:?}", seen.closed);
}

/// The status line both send in answer to an HTTP/1.0 request: nginx answers every HTTP/1.x
/// client in HTTP/1.1.
const HTTP10_STATUS_LINE: &str = "HTTP/1.1 200 OK";

/// Case 1: three GETs in one write on a keepalive connection, then a fourth after them (which
/// also shows nothing stray followed the third response).
#[test]
fn pipelined_gets_answered_in_order() {
    differential(
        "pipelined_three_gets",
        steps(vec![
            (format!("{}{}{}", get("/p1"), get("/p2"), get("/p3")), 3),
            (GET_CLOSE.into(), 1),
        ]),
        |flavor, seen| {
            let lines = [
                "GET /p1 HTTP/1.0",
                "GET /p2 HTTP/1.0",
                "GET /p3 HTTP/1.0",
                "GET /last HTTP/1.0",
            ];
            assert_flow(flavor, seen, &[200; 4], &lines);
            // The echo's body is the request it got: each response belongs to its request.
            for (body, line) in seen.bodies().iter().zip(lines) {
                assert!(
                    body.starts_with(&format!("{line}\r\n")),
                    "{flavor:?}: {body:?}"
                );
            }
        },
    );
}

/// Case 2: a POST with a `Content-Length` body and a GET, in one write.
#[test]
fn pipelined_post_with_body_then_get() {
    differential(
        "pipelined_post_then_get",
        steps(vec![(
            format!(
                "POST /post HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\n\r\n\
                 hello world{GET_CLOSE}"
            ),
            2,
        )]),
        |flavor, seen| {
            assert_flow(
                flavor,
                seen,
                &[200, 200],
                &["POST /post HTTP/1.0", "GET /last HTTP/1.0"],
            );
            assert!(
                seen.bodies()[0].ends_with("\r\n\r\nhello world"),
                "{flavor:?}"
            );
            assert!(seen.bodies()[1].starts_with("GET /last "), "{flavor:?}");
            assert_eq!(seen.forwarded[0].body, b"hello world", "{flavor:?}");
            assert_eq!(seen.forwarded[0].header("content-length"), Some("11"));
        },
    );
}

/// A chunked body in several chunks, with a chunk extension and a trailer: its first chunk,
/// and the rest.
const CHUNKED_FIRST: &str = "5;name=value\r\nhello\r\n";
const CHUNKED_REST: &str = "1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n";

/// How a chunked body reaches the proxy.
#[derive(Clone, Copy)]
enum Upload {
    /// Head, whole body and a pipelined GET in one write.
    OneWrite,
    /// Head and first chunk; the rest (and the GET) once the proxy has connected upstream, so
    /// the body is still arriving when the upstream request is made.
    AfterConnect,
}

/// What the upstream got for the chunked POST: chunked or not, its `Content-Length` and its
/// `Connection`.
type UpstreamFraming = (bool, Option<&'static str>, Option<&'static str>);

/// Case 3: a chunked request body to a proxied location; a GET follows it, so the body's end
/// must be found exactly. The upstream must get the POST framed as `nginx` says from nginx and
/// as `nginx_rs` says from nginx-rs (they differ only where KNOWN_DIFFERENCES says).
fn chunked_body(
    name: &str,
    path: &'static str,
    upload: Upload,
    nginx: UpstreamFraming,
    nginx_rs: UpstreamFraming,
) {
    differential(
        name,
        move |c, seen, backend| {
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
            );
            match upload {
                Upload::OneWrite => {
                    c.send(format!("{head}{CHUNKED_FIRST}{CHUNKED_REST}{GET_CLOSE}").as_bytes())
                }
                Upload::AfterConnect => {
                    let before = backend.connections();
                    c.send(format!("{head}{CHUNKED_FIRST}").as_bytes());
                    wait_for(|| backend.connections() > before);
                    c.send(format!("{CHUNKED_REST}{GET_CLOSE}").as_bytes());
                }
            }
            seen.push(c, false);
            seen.push(c, false);
            seen.close(c);
        },
        move |flavor, seen| {
            let version = if path.starts_with("/unbuffered/") {
                "1.1"
            } else {
                "1.0"
            };
            let post = format!("POST {path} HTTP/{version}");
            assert_flow(flavor, seen, &[200, 200], &[&post, "GET /last HTTP/1.0"]);
            let up = &seen.forwarded[0];
            assert_eq!(up.body, b"hello world", "{flavor:?}");
            let framing = (
                up.chunked,
                up.header("content-length"),
                up.header("connection"),
            );
            let expected = match flavor {
                Flavor::Nginx => nginx,
                Flavor::NginxRs => nginx_rs,
            };
            assert_eq!(framing, expected, "{flavor:?}: {:?}", up.headers);
            // The trailer is not passed on as a header.
            assert_eq!(up.header("x-trailer"), None, "{flavor:?}");
            // The echo's answer is the request the upstream got, body included.
            assert!(seen.bodies()[0].ends_with("hello world"), "{flavor:?}");
        },
    );
}

/// Polls `done` until it holds; panics after [`SAFETY`] (a safety bound, not a measurement).
fn wait_for(done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + SAFETY;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "condition not reached"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Buffered (the default): the upstream gets the whole body with its length.
#[test]
fn chunked_body_buffered() {
    let framing = (false, Some("11"), Some("close"));
    chunked_body(
        "chunked_buffered",
        "/chunked",
        Upload::OneWrite,
        framing,
        framing,
    );
}

/// Streamed to an HTTP/1.1 upstream: chunked, no length; `Connection: close` from nginx 1.22
/// only (KNOWN_DIFFERENCES).
#[test]
fn chunked_body_unbuffered_streamed() {
    chunked_body(
        "chunked_unbuffered_streamed",
        "/unbuffered/chunked",
        Upload::AfterConnect,
        (true, None, Some("close")),
        (true, None, None),
    );
}

/// Unbuffered, but the whole body came with the head: nginx has it before it makes the
/// upstream request and sends its length; nginx-rs streams it (KNOWN_DIFFERENCES).
#[test]
fn chunked_body_unbuffered_in_one_write() {
    chunked_body(
        "chunked_unbuffered_one_write",
        "/unbuffered/chunked",
        Upload::OneWrite,
        (false, Some("11"), Some("close")),
        (true, None, None),
    );
}

/// Case 4: `Expect: 100-continue`: the client sends the head, waits for the interim response,
/// then sends the body; the connection goes on after the answer.
#[test]
fn expect_continue_waits_for_100_then_sends_body() {
    differential(
        "expect_continue",
        |c, seen, _| {
            c.send(
                b"POST /expect HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n\
                  Content-Length: 4\r\n\r\n",
            );
            seen.interim.push(c.head_only().expect("100 Continue"));
            c.send(b"body");
            seen.push(c, false);
            c.send(GET_CLOSE.as_bytes());
            seen.push(c, false);
            seen.close(c);
        },
        |flavor, seen| {
            assert_eq!(
                seen.interim,
                [b"HTTP/1.1 100 Continue\r\n\r\n"],
                "{flavor:?}"
            );
            assert_flow(
                flavor,
                seen,
                &[200, 200],
                &["POST /expect HTTP/1.0", "GET /last HTTP/1.0"],
            );
            assert_eq!(seen.forwarded[0].body, b"body", "{flavor:?}");
            assert_eq!(seen.forwarded[0].header("expect"), None, "{flavor:?}");
        },
    );
}

/// Case 4, refused: over `client_max_body_size`, 413 and never a 100 Continue; the answer
/// says `Connection: close`. A client that sends its body anyway (a request, here) gets
/// nothing more: the body is not taken for a request, and the connection ends.
#[test]
fn expect_continue_over_limit_gets_413_without_100() {
    const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n";
    differential(
        "expect_continue_413",
        |c, seen, _| {
            c.send(
                format!(
                    "POST /small/x HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n\
                     Content-Length: {}\r\n\r\n",
                    SMUGGLED.len()
                )
                .as_bytes(),
            );
            seen.push(c, false);
            // Refused or not, the body may come: a client may stop waiting for 100.
            c.send_late(SMUGGLED.as_bytes());
            seen.close(c);
        },
        |flavor, seen| {
            assert_flow(flavor, seen, &[413], &[]);
            let first = &seen.responses[0];
            assert!(
                first.raw.starts_with(b"HTTP/1.1 413 "),
                "{flavor:?} sent something else first: {:?}",
                lossy(&first.raw)
            );
            assert_eq!(first.header("connection"), Some("close"), "{flavor:?}");
        },
    );
}

/// One HTTP/1.0 GET (with the extra header lines `extra`, e.g. `Connection: keep-alive\r\n`)
/// that ends its connection: answered (the status line as [`HTTP10_STATUS_LINE`] says,
/// `Connection: close`), forwarded, and then the connection is closed. `check` looks further at
/// the response.
fn http10_get_closes(name: &str, path: &'static str, extra: &str, check: impl Fn(Flavor, &Got)) {
    let line = format!("GET {path} HTTP/1.0");
    differential(
        name,
        steps(vec![(format!("{line}\r\n{extra}\r\n"), 1)]),
        |flavor, seen| {
            assert_flow(flavor, seen, &[200], &[&line]);
            let r = &seen.responses[0];
            assert_eq!(r.resp.status_line, HTTP10_STATUS_LINE, "{flavor:?}");
            assert_eq!(r.header("connection"), Some("close"), "{flavor:?}");
            check(flavor, r);
        },
    );
}

/// Case 5: HTTP/1.0 without `Connection: keep-alive`: answered, then closed.
#[test]
fn http10_without_keepalive_is_closed() {
    http10_get_closes("http10_close", "/h10", "", |flavor, r| {
        assert!(r.resp.text().starts_with("GET /h10 "), "{flavor:?}");
    });
}

/// Case 5: HTTP/1.0 with `Connection: keep-alive`: kept open, a second request is answered.
#[test]
fn http10_keepalive_is_kept_open() {
    differential(
        "http10_keepalive",
        steps(vec![
            (
                "GET /h10ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".into(),
                1,
            ),
            ("GET /h10again HTTP/1.0\r\n\r\n".into(), 1),
        ]),
        |flavor, seen| {
            assert_flow(
                flavor,
                seen,
                &[200, 200],
                &["GET /h10ka HTTP/1.0", "GET /h10again HTTP/1.0"],
            );
            let conn: Vec<_> = seen
                .responses
                .iter()
                .map(|g| (g.resp.status_line.as_str(), g.header("connection")))
                .collect();
            let status = HTTP10_STATUS_LINE;
            assert_eq!(
                conn,
                [(status, Some("keep-alive")), (status, Some("close"))],
                "{flavor:?}"
            );
        },
    );
}

/// Case 6: a proxied HEAD: the backend's `Content-Length`, no body bytes, and the pipelined
/// GET's response starts right after the head.
#[test]
fn head_has_no_body_and_keeps_the_length() {
    differential(
        "head_then_get",
        |c, seen, _| {
            c.send(format!("HEAD /head HTTP/1.1\r\nHost: localhost\r\n\r\n{GET_CLOSE}").as_bytes());
            seen.push(c, true);
            seen.push(c, false);
            seen.close(c);
        },
        |flavor, seen| {
            assert_flow(
                flavor,
                seen,
                &[200, 200],
                &["HEAD /head HTTP/1.0", "GET /last HTTP/1.0"],
            );
            // The echo announces the length of the head it would have echoed.
            let announced = seen.forwarded[0].head.len().to_string();
            let length = seen.responses[0].header("content-length");
            assert_eq!(length, Some(announced.as_str()), "{flavor:?}");
            assert!(
                seen.responses[1].raw.starts_with(b"HTTP/1.1 200 "),
                "{flavor:?}"
            );
            assert!(seen.bodies()[1].starts_with("GET /last "), "{flavor:?}");
        },
    );
}

/// Case 7: a POST whose body the handler never reads (`return 200`), then a GET on the same
/// connection. The body looks like a request: it must be discarded, not served.
#[test]
fn unread_body_is_discarded_before_the_next_request() {
    const BODY: &str = "GET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n";
    differential(
        "return_unread_body",
        steps(vec![(
            format!(
                "POST /return HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n\
                 {BODY}{GET_CLOSE}",
                BODY.len()
            ),
            2,
        )]),
        |flavor, seen| {
            assert_flow(flavor, seen, &[200, 200], &["GET /last HTTP/1.0"]);
            assert_eq!(seen.bodies()[0], "ok", "{flavor:?}");
            assert!(seen.bodies()[1].starts_with("GET /last "), "{flavor:?}");
        },
    );
}

/// Case 8: the backend answers without a length and closes. nginx gives an HTTP/1.1 client
/// the body chunked and keeps the connection usable.
#[test]
fn close_delimited_upstream_to_http11_client_is_framed() {
    differential(
        "close_delimited_http11",
        |c, seen, _| {
            c.send(get("/s/eof").as_bytes());
            seen.push(c, false);
            if !c.eof {
                c.send(GET_CLOSE.as_bytes());
                seen.push(c, false);
            }
            seen.close(c);
        },
        |flavor, seen| {
            let first = &seen.responses[0];
            assert_eq!(first.resp.text(), "body up to the close", "{flavor:?}");
            assert_eq!(first.header("connection"), Some("keep-alive"), "{flavor:?}");
            assert_flow(
                flavor,
                seen,
                &[200, 200],
                &["GET /s/eof HTTP/1.0", "GET /last HTTP/1.0"],
            );
            assert_eq!(first.resp.status_line, "HTTP/1.1 200 OK", "{flavor:?}");
            assert_eq!(first.framing(), "chunked", "{flavor:?}");
        },
    );
}

/// Case 8: the same to an HTTP/1.0 client: the body up to the close, and the close.
#[test]
fn close_delimited_upstream_to_http10_client_ends_with_the_close() {
    http10_get_closes("close_delimited_http10", "/s/eof", "", |flavor, r| {
        assert_eq!(r.resp.text(), "body up to the close", "{flavor:?}");
        assert_eq!(r.framing(), "eof", "{flavor:?}");
    });
}

/// Case 8 with `Connection: keep-alive` from the HTTP/1.0 client: a body of unknown length can
/// only end with the connection, so the answer says `Connection: close` and closes.
#[test]
fn close_delimited_upstream_to_http10_keepalive_client_closes() {
    let ka = "Connection: keep-alive\r\n";
    http10_get_closes("close_delimited_http10_ka", "/s/eof", ka, |flavor, r| {
        assert_eq!(r.resp.text(), "body up to the close", "{flavor:?}");
        assert_eq!(r.framing(), "eof", "{flavor:?}");
    });
}

/// The backend's header names reach the client as spelled (`x-lower`, `ETag`, `X-MiXed-CASE`),
/// except those nginx writes itself (`Content-Type`, `Content-Length`).
#[test]
fn upstream_header_names_keep_their_spelling() {
    differential(
        "upstream_spelling",
        steps(vec![(format!("{}{GET_CLOSE}", get("/s/spelled")), 2)]),
        |flavor, seen| {
            assert_flow(
                flavor,
                seen,
                &[200, 200],
                &["GET /s/spelled HTTP/1.0", "GET /last HTTP/1.0"],
            );
            let names: Vec<&str> = seen.responses[0]
                .resp
                .headers
                .iter()
                .map(|(n, _)| n.as_str())
                .filter(|n| {
                    !["server", "date", "connection"].contains(&n.to_ascii_lowercase().as_str())
                })
                .collect();
            let mut names = names;
            names.sort_unstable();
            assert_eq!(
                names,
                [
                    "Content-Length",
                    "Content-Type",
                    "ETag",
                    "X-MiXed-CASE",
                    "cache-control",
                    "last-modified",
                    "x-lower"
                ],
                "{flavor:?}"
            );
        },
    );
}

/// Case 9: 204 and 304 from the backend carry no body; the pipelined requests after them are
/// still parsed and answered.
#[test]
fn no_body_statuses_keep_pipelining_intact() {
    differential(
        "204_304_pipelined",
        steps(vec![(
            format!("{}{}{GET_CLOSE}", get("/s/204"), get("/s/304")),
            3,
        )]),
        |flavor, seen| {
            assert_flow(
                flavor,
                seen,
                &[204, 304, 200],
                &[
                    "GET /s/204 HTTP/1.0",
                    "GET /s/304 HTTP/1.0",
                    "GET /last HTTP/1.0",
                ],
            );
            // No body and no framing: each next response starts right after the head.
            for got in &seen.responses[..2] {
                assert_eq!(got.header("transfer-encoding"), None, "{flavor:?}");
                assert_eq!(got.header("content-length"), None, "{flavor:?}");
            }
            assert!(
                seen.responses[1].raw.starts_with(b"HTTP/1.1 304 "),
                "{flavor:?}"
            );
            assert!(
                seen.responses[2].raw.starts_with(b"HTTP/1.1 200 "),
                "{flavor:?}"
            );
            let etag = seen.responses[1]
                .resp
                .headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("etag"));
            // The backend's spelling, as nginx passes it.
            assert_eq!(
                etag.map(|(n, v)| (n.as_str(), v.as_str())),
                Some(("ETag", "\"v1\"")),
                "{flavor:?}"
            );
            assert!(seen.bodies()[2].starts_with("GET /last "), "{flavor:?}");
        },
    );
}

/// Case 10: a request head and body sent one byte per write.
#[test]
fn request_in_tiny_writes_is_answered() {
    differential(
        "byte_by_byte",
        |c, seen, _| {
            let request = "POST /bytes?q=1 HTTP/1.1\r\nHost: localhost\r\n\
                           X-Long-Name: some value\r\nContent-Length: 5\r\n\
                           Connection: close\r\n\r\nabcde";
            for byte in request.as_bytes() {
                c.send(&[*byte]);
                // So that the bytes arrive apart: on loopback, as a rule, each its own read.
                std::thread::sleep(Duration::from_millis(1));
            }
            seen.push(c, false);
            seen.close(c);
        },
        |flavor, seen| {
            assert_flow(flavor, seen, &[200], &["POST /bytes?q=1 HTTP/1.0"]);
            let header = seen.forwarded[0].header("x-long-name");
            assert_eq!(header, Some("some value"), "{flavor:?}");
            assert_eq!(seen.forwarded[0].body, b"abcde", "{flavor:?}");
        },
    );
}

/// True for an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form HTTP requires.
fn is_http_date(v: &str) -> bool {
    // `d`: a digit; `_`: part of the day or month name, checked after; anything else: itself.
    const SHAPE: &[u8] = b"___, dd ___ dddd dd:dd:dd GMT";
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let b = v.as_bytes();
    b.len() == SHAPE.len()
        && b.iter().zip(SHAPE).all(|(c, s)| match s {
            b'd' => c.is_ascii_digit(),
            b'_' => true,
            s => c == s,
        })
        && DAYS.iter().any(|d| d.as_bytes() == &b[..3])
        && MONTHS.iter().any(|m| m.as_bytes() == &b[8..11])
}

/// Case 11: `Server` and `Date` on every kind of response (proxied, `return`, an error page the
/// server writes itself, to HTTP/1.1 and HTTP/1.0), and `Connection` as nginx says it: the
/// whole response view is compared, `Connection` value included.
#[test]
fn response_headers_server_date_connection() {
    const REQUESTS: &[(&str, &str)] = &[
        (
            "GET /proxied HTTP/1.1\r\nHost: localhost\r\n\r\n",
            "keep-alive",
        ),
        (
            "GET /return HTTP/1.1\r\nHost: localhost\r\n\r\n",
            "keep-alive",
        ),
        (
            "POST /small/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\n\r\nhello world",
            "close",
        ),
        (
            "GET /proxied HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            "close",
        ),
        ("GET /return HTTP/1.0\r\n\r\n", "close"),
        (
            "GET /return HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            "keep-alive",
        ),
    ];
    differential(
        "response_headers",
        |first, seen, _| {
            for (request, _) in REQUESTS {
                let mut c = first.reopen();
                c.send(request.as_bytes());
                seen.push(&mut c, false);
            }
        },
        |flavor, seen| {
            let connection: Vec<_> = seen
                .responses
                .iter()
                .map(|g| g.header("connection").unwrap_or("<none>"))
                .collect();
            let expected: Vec<_> = REQUESTS.iter().map(|(_, c)| *c).collect();
            assert_eq!(connection, expected, "{flavor:?}");
            for got in &seen.responses {
                let server = got.header("server").unwrap_or("");
                let date = got.header("date").unwrap_or("");
                assert!(
                    server.starts_with(&format!("{}/", flavor.name())),
                    "{flavor:?}: {server:?}"
                );
                assert!(is_http_date(date), "{flavor:?}: {date:?}");
            }
        },
    );
}

/// What the client received from `server` for a `GET path` on a connection it closes after.
fn received_bytes(server: &Server, path: &str) -> (usize, usize) {
    let mut c = TcpStream::connect(server.addr()).expect("connect");
    c.set_read_timeout(Some(SAFETY)).expect("timeout");
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    c.write_all(req.as_bytes()).expect("write");
    let mut raw = Vec::new();
    c.read_to_end(&mut raw).expect("read to the close");
    let head = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |p| p + 4);
    (raw.len(), raw.len() - head)
}

/// `$bytes_sent` is what the client received, head included, and `$body_bytes_sent` the rest,
/// chunk framing included (nginx counts what it wrote). A sized body and one chunked for the
/// client (a close-delimited upstream answer), on nginx-rs and on nginx.
#[test]
fn bytes_sent_is_what_the_client_received() {
    for flavor in [Flavor::NginxRs, Flavor::Nginx] {
        if flavor == Flavor::Nginx {
            if let Err(why) = nginx_binary() {
                print_skip(&format!("no comparison with nginx: {why}"));
                continue;
            }
        }
        let logs = tempfile::tempdir().expect("tempdir");
        // nginx's workers write as an unprivileged user when the test runs as root.
        let _ = std::fs::set_permissions(
            logs.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        );
        let log = logs.path().join("sizes.log");
        let backend = backend();
        let config = |listen: u16| {
            format!(
                "log_format sizes '$bytes_sent $body_bytes_sent';\n\
                 server {{ listen 127.0.0.1:{listen}; access_log {} sizes;\n\
                 location / {{ proxy_pass http://127.0.0.1:{}; }} }}",
                log.display(),
                backend.port()
            )
        };
        let Some(server) = skip_unless(start(flavor, Options::default(), &config), flavor) else {
            continue;
        };
        let got = [
            received_bytes(&server, "/s/spelled"),
            received_bytes(&server, "/s/eof"),
        ];
        // The lines may reach the file a little after the answers.
        let mut logged = Vec::new();
        for _ in 0..100 {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            logged = text
                .lines()
                .map(|l| {
                    let mut n = l.split(' ').map(|x| x.parse::<usize>().unwrap_or(0));
                    (n.next().unwrap_or(0), n.next().unwrap_or(0))
                })
                .collect();
            if logged.len() >= 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(
            logged, got,
            "{flavor:?}: logged (bytes_sent, body_bytes_sent) vs received"
        );
    }
}
