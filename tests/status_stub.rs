//! `stub_status` over real sockets: nginx's exact text format, counters that move with accepted
//! connections and requests, GET/HEAD only; and a differential against real nginx 1.22 (skipped
//! with a printed reason when it is absent) for the same sequence of requests.

mod support;

use support::client::{exchange, RawResponse};
use support::nginx::{skip_unless, start_nginx, start_nginx_rs, Flavor, Server};

const GET_STATUS: &[u8] = b"GET /status HTTP/1.0\r\nHost: localhost\r\n\r\n";

fn config(port: u16) -> String {
    format!(
        "server {{\n    listen 127.0.0.1:{port};\n    server_name localhost;\n    location = /status {{ stub_status; }}\n}}\n"
    )
}

/// The seven numbers of a stub_status body, after checking it has nginx's exact layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Numbers {
    active: u64,
    accepts: u64,
    handled: u64,
    requests: u64,
    reading: u64,
    writing: u64,
    waiting: u64,
}

fn bad<T>(text: &str) -> T {
    panic!("not nginx's stub_status text: {text:?}")
}

fn parse(text: &str) -> Numbers {
    let fail = || bad::<()>(text);
    let lines: Vec<&str> = text.split('\n').collect();
    if lines.len() != 5 || !lines[4].is_empty() || lines[1] != "server accepts handled requests" {
        fail();
    }
    let num = |s: &str| s.parse::<u64>().unwrap_or_else(|_| bad(text));
    let active = lines[0]
        .strip_prefix("Active connections: ")
        .and_then(|r| r.strip_suffix(' '))
        .map(num)
        .unwrap_or_else(|| bad(text));
    let counts: Vec<u64> = lines[2]
        .strip_prefix(' ')
        .and_then(|r| r.strip_suffix(' '))
        .unwrap_or_else(|| bad(text))
        .split(' ')
        .map(num)
        .collect();
    if counts.len() != 3 {
        fail();
    }
    let rww: Vec<u64> = lines[3]
        .strip_suffix(' ')
        .unwrap_or_else(|| bad(text))
        .split(' ')
        .collect::<Vec<_>>()
        .chunks(2)
        .zip(["Reading:", "Writing:", "Waiting:"])
        .map(|(pair, label)| {
            if pair.len() != 2 || pair[0] != label {
                fail();
            }
            num(pair[1])
        })
        .collect();
    if rww.len() != 3 {
        fail();
    }
    Numbers {
        active,
        accepts: counts[0],
        handled: counts[1],
        requests: counts[2],
        reading: rww[0],
        writing: rww[1],
        waiting: rww[2],
    }
}

fn fetch(server: &Server, request: &[u8]) -> RawResponse {
    let ex = exchange(server.addr(), request);
    let raw = ex.raw_text();
    ex.response
        .unwrap_or_else(|| panic!("no response from {}: {raw}", server.flavor().name()))
}

/// The same sequence for both servers: three status fetches on fresh connections, then a POST
/// and a HEAD. Returns the three bodies' numbers and the statuses/headers seen.
struct Observed {
    numbers: Vec<Numbers>,
    content_type: Option<String>,
    post_status: u16,
    head_status: u16,
    head_body_len: usize,
}

fn run_sequence(server: &Server) -> Observed {
    let mut numbers = Vec::new();
    let mut content_type = None;
    for _ in 0..3 {
        let r = fetch(server, GET_STATUS);
        assert_eq!(r.status, 200, "{}: {:?}", server.flavor().name(), r);
        content_type = r.header("content-type").map(str::to_string);
        numbers.push(parse(&r.text()));
    }
    let post = fetch(
        server,
        b"POST /status HTTP/1.0\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n",
    );
    let head = fetch(server, b"HEAD /status HTTP/1.0\r\nHost: localhost\r\n\r\n");
    Observed {
        numbers,
        content_type,
        post_status: post.status,
        head_status: head.status,
        head_body_len: head.body.len(),
    }
}

/// What must hold for any server with nginx's stub_status semantics.
fn check_semantics(name: &str, o: &Observed) {
    for pair in o.numbers.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        // One new connection and one new request per fetch (sequential, nothing else runs).
        assert_eq!(b.accepts - a.accepts, 1, "{name}: {a:?} -> {b:?}");
        assert_eq!(b.handled - a.handled, 1, "{name}: {a:?} -> {b:?}");
        assert_eq!(b.requests - a.requests, 1, "{name}: {a:?} -> {b:?}");
    }
    for n in &o.numbers {
        assert_eq!(n.accepts, n.handled, "{name}: {n:?}");
        assert!(
            n.active >= 1,
            "{name}: the asking connection is active: {n:?}"
        );
        assert_eq!(
            n.writing, 1,
            "{name}: only the status request is processed: {n:?}"
        );
        assert!(
            n.reading + n.writing + n.waiting <= n.active,
            "{name}: {n:?}"
        );
    }
    assert_eq!(o.content_type.as_deref(), Some("text/plain"), "{name}");
    assert_eq!(o.post_status, 405, "{name}: POST");
    assert_eq!(o.head_status, 200, "{name}: HEAD");
    assert_eq!(o.head_body_len, 0, "{name}: HEAD has no body");
}

#[test]
fn stub_status_counts_connections_and_requests() {
    let Some(rs) = skip_unless(start_nginx_rs(config), Flavor::NginxRs) else {
        return;
    };
    let o = run_sequence(&rs);
    check_semantics("nginx-rs", &o);
    // A keepalive connection: two requests, one accept.
    let before = parse(&fetch(&rs, GET_STATUS).text());
    let ex = support::client::exchange_until_close(
        rs.addr(),
        b"GET /status HTTP/1.1\r\nHost: localhost\r\n\r\nGET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        support::client::DEFAULT_TIMEOUT,
    );
    let all = support::client::parse_all_responses(&ex.raw, true);
    assert_eq!(all.len(), 2, "{}", ex.raw_text());
    let last = parse(&all[1].text());
    assert_eq!(last.accepts - before.accepts, 1, "{before:?} -> {last:?}");
    assert_eq!(last.requests - before.requests, 2, "{before:?} -> {last:?}");
}

#[test]
fn stub_status_matches_nginx() {
    let Some(ng) = skip_unless(start_nginx(config), Flavor::Nginx) else {
        return;
    };
    let Some(rs) = skip_unless(start_nginx_rs(config), Flavor::NginxRs) else {
        return;
    };
    let theirs = run_sequence(&ng);
    let ours = run_sequence(&rs);
    check_semantics("nginx", &theirs);
    check_semantics("nginx-rs", &ours);
    // Same deltas for the same sequence.
    let deltas = |o: &Observed| -> Vec<(u64, u64)> {
        o.numbers
            .windows(2)
            .map(|w| (w[1].accepts - w[0].accepts, w[1].requests - w[0].requests))
            .collect()
    };
    assert_eq!(deltas(&theirs), deltas(&ours));
    // Same shape once the numbers are masked out.
    let masked = |s: &Server| {
        fetch(s, GET_STATUS)
            .text()
            .chars()
            .map(|c| if c.is_ascii_digit() { '9' } else { c })
            .collect::<String>()
            .split('\n')
            .map(|l| {
                // "99" and "9" are the same shape.
                let mut out = String::new();
                for c in l.chars() {
                    if !(c == '9' && out.ends_with('9')) {
                        out.push(c);
                    }
                }
                out
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(masked(&ng), masked(&rs));
}

#[test]
fn stub_status_counters_survive_reload() {
    let Some(rs) = skip_unless(start_nginx_rs(config), Flavor::NginxRs) else {
        return;
    };
    let before = parse(&fetch(&rs, GET_STATUS).text());
    // The new config marks its responses, so the test knows when the reload took effect.
    let conf = rs.dir().join("nginx.conf");
    let text = std::fs::read_to_string(&conf).expect("config readable");
    let marked = text.replace(
        "location = /status { stub_status; }",
        "location = /status { stub_status; add_header X-Gen two; }",
    );
    assert_ne!(text, marked, "config template changed");
    std::fs::write(&conf, marked).expect("config writable");
    // SAFETY: kill(2) on the pid of the child this test started.
    assert_eq!(unsafe { libc::kill(rs.pid() as i32, libc::SIGHUP) }, 0);
    // Bounded wait for the reload (not a timing assertion: only how long we are willing to wait).
    let mut after = None;
    let mut fetches = 0;
    for _ in 0..200 {
        let r = fetch(&rs, GET_STATUS);
        fetches += 1;
        if r.header("x-gen") == Some("two") {
            after = Some(parse(&r.text()));
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let after = after.expect("reload took effect within 10 s");
    // Exactly our connections since `before`: nothing was reset or lost by the reload.
    assert_eq!(
        after.accepts.checked_sub(before.accepts),
        Some(fetches),
        "{before:?} -> {after:?}"
    );
    assert_eq!(
        after.requests.checked_sub(before.requests),
        Some(fetches),
        "{before:?} -> {after:?}"
    );
}
