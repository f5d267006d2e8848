//! Checks of the test harness itself (tests/support): the backends record exactly what arrived,
//! their knobs do what they say, the raw client parses what servers send, and nginx processes
//! start and stop cleanly. The differential tests trust these.

mod support;

use std::net::TcpStream;
use std::time::Duration;

use support::backend::{Backend, Close, Reply};
use support::client::{exchange, exchange_until_close, parse_response};
use support::nginx::{skip_unless, start, Flavor, Options};

#[test]
fn echo_backend_records_and_returns_raw_bytes() {
    let echo = Backend::echo();
    let head = "GET /a%20b?x HTTP/1.1\r\nhost: h\r\nX-Dup: 1\r\nx-dup:2\r\nX-Pad:   s  \r\n\r\n";
    let ex = exchange(echo.addr(), head.as_bytes());
    let resp = ex.response.expect("a response");
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.text(),
        head,
        "the echo is the request head byte for byte"
    );
    let got = echo.take_received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.head, head.as_bytes());
    assert_eq!(r.request_line, "GET /a%20b?x HTTP/1.1");
    assert_eq!(
        (r.method(), r.target(), r.version()),
        ("GET", "/a%20b?x", "HTTP/1.1")
    );
    let names: Vec<&str> = r.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["host", "X-Dup", "x-dup", "X-Pad"],
        "order and case as sent"
    );
    assert_eq!(r.header_all("x-dup"), ["1", "2"]);
    assert_eq!(r.header("X-PAD"), Some("s"));
    assert!(echo.take_received().is_empty(), "take_received forgets");
}

#[test]
fn echo_backend_decodes_chunked_and_sized_bodies() {
    let echo = Backend::echo();
    let chunked = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
                   3;e=1\r\nabc\r\n2\r\nde\r\n0\r\nT: x\r\n\r\n";
    let ex = exchange(echo.addr(), chunked.as_bytes());
    assert_eq!(ex.status(), Some(200), "{}", ex.raw_text());
    let sized = "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nwxyz";
    assert_eq!(exchange(echo.addr(), sized.as_bytes()).status(), Some(200));
    let got = echo.take_received();
    assert_eq!(got.len(), 2);
    assert!(got[0].chunked);
    assert_eq!(got[0].body, b"abcde");
    assert!(!got[1].chunked);
    assert_eq!(got[1].body, b"wxyz");
}

#[test]
fn keepalive_requests_share_a_connection() {
    let echo = Backend::echo();
    // Two pipelined requests; the second closes.
    let two =
        "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    let ex = exchange_until_close(echo.addr(), two.as_bytes(), Duration::from_secs(5));
    assert!(ex.closed, "Connection: close ends it");
    let got = echo.take_received();
    let seen: Vec<_> = got
        .iter()
        .map(|r| (r.target().to_string(), r.nth_on_connection))
        .collect();
    assert_eq!(seen, [("/1".to_string(), 1), ("/2".to_string(), 2)]);
    assert_eq!(echo.connections(), 1);
}

#[test]
fn named_backend_and_knobs() {
    let named = Backend::named("one");
    let ex = exchange(named.addr(), b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(ex.response.expect("a response").text(), "one");

    let custom = Backend::builder()
        .status(503)
        .reply(Reply::Generated(30))
        .header("X-From", "backend")
        .close(Close::AfterResponse)
        .start();
    let ex = exchange_until_close(
        custom.addr(),
        b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        Duration::from_secs(5),
    );
    let resp = ex.response.clone().expect("a response");
    assert_eq!(resp.status, 503);
    assert_eq!(resp.header("x-from"), Some("backend"));
    assert_eq!(resp.body, b"abcdefghijklmnopqrstuvwxyzabcd");
    assert!(ex.closed, "Close::AfterResponse closes");

    let mute = Backend::builder().close(Close::WithoutResponse).start();
    let ex = exchange_until_close(
        mute.addr(),
        b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(
        ex.response.is_none() && ex.closed && ex.raw.is_empty(),
        "{ex:?}"
    );
    assert_eq!(mute.received().len(), 1, "it still records the request");
}

#[test]
fn client_parses_chunked_interim_and_unframed_responses() {
    let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\n\r\nextra";
    let (resp, used) = parse_response(raw, false, false).expect("complete");
    assert_eq!(resp.status, 200, "the interim 100 is skipped");
    assert_eq!(resp.body, b"Wikipedia");
    assert_eq!(&raw[used..], b"extra");
    assert!(
        parse_response(&raw[..raw.len() - 12], false, false).is_none(),
        "incomplete"
    );

    let unframed = b"HTTP/1.0 200 OK\r\n\r\nuntil close";
    assert!(
        parse_response(unframed, false, false).is_none(),
        "not complete before EOF"
    );
    let (resp, _) = parse_response(unframed, false, true).expect("complete at EOF");
    assert_eq!(resp.body, b"until close");

    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
    let (resp, _) = parse_response(head, true, false).expect("HEAD has no body");
    assert!(resp.body.is_empty());
}

#[test]
fn nginx_with_master_process_starts_serves_and_stops() {
    let named = Backend::named("via nginx");
    let b = named.port();
    let started = start(
        Flavor::Nginx,
        Options {
            master_process: true,
        },
        &|port| {
            format!("server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://127.0.0.1:{b}; }} }}")
        },
    );
    let Some(nginx) = skip_unless(started, Flavor::Nginx) else {
        return;
    };
    let addr = nginx.addr();
    let ex = exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(ex.response.expect("a response").text(), "via nginx");
    assert!(
        nginx.access_log().contains("\"GET / HTTP/1.1\" 200"),
        "{}",
        nginx.access_log()
    );
    drop(nginx);
    // The master reaps its worker before it exits, and drop waits for the master.
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "something still listens on {addr} after drop"
    );
}

#[test]
fn known_differences_are_checked_both_ways() {
    use support::known::{assert_only_known, Difference};
    let found = |cases: &[&str]| -> Vec<Difference> {
        cases
            .iter()
            .map(|c| Difference {
                case: c.to_string(),
                detail: format!("case {c}"),
            })
            .collect()
    };
    let known = [("a", "why a")];
    assert_only_known(&found(&["a"]), &known, "");
    let new = std::panic::catch_unwind(|| assert_only_known(&found(&["a", "b"]), &known, ""));
    assert!(new.is_err(), "a difference not on the list must fail");
    let fixed = std::panic::catch_unwind(|| assert_only_known(&found(&[]), &known, ""));
    assert!(
        fixed.is_err(),
        "a listed case that no longer differs must fail"
    );
}
