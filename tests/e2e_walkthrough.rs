//! End to end: the built `nginx-rs` on the walkthrough's `default.conf`, unmodified (port 80),
//! in front of three backends on 127.0.0.1:5001-5003 that answer like the walkthrough's Flask
//! app. `host.docker.internal` does not resolve outside Docker, so nginx-rs falls back to this
//! host. Round robin must give one, two, three, one, two, three...
//!
//! Needs root (port 80) and ports 80 and 5001-5003 free; otherwise it is skipped with the reason
//! printed. CI (`.ci/run`) runs as root.

mod support;

use std::net::{Ipv4Addr, SocketAddr, TcpListener, ToSocketAddrs};
use std::process::Command;

use support::backend::Backend;
use support::client::exchange;
use support::nginx::{nginx_rs_binary, nginx_rs_must_serve, print_skip, spawn_until_accepting};

/// The walkthrough's three servers: port and id, as in `python3 app.py 5001 one`.
const BACKENDS: [(u16, &str); 3] = [(5001, "one"), (5002, "two"), (5003, "three")];

/// The fixture path as README's command spells it (relative to the repository root).
const CONFIG: &str = "fixtures/walkthrough/default.conf";

/// Why this machine cannot run the test, if it cannot.
fn unmet_precondition() -> Option<String> {
    // geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root to listen on port 80 (CI runs as root)".into());
    }
    if let Err(e) = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 80)) {
        return Some(format!("port 80 is not free: {e}"));
    }
    None
}

#[test]
fn walkthrough_round_robin_one_two_three() {
    if let Some(why) = unmet_precondition() {
        print_skip(&why);
        return;
    }
    let mut backends = Vec::new();
    for (port, id) in BACKENDS {
        let text = format!("Hello from Flask server {id} (port {port})");
        let bind = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        match Backend::builder().bind(bind).text(&text).try_start() {
            Ok(b) => backends.push(b),
            Err(e) => {
                print_skip(&format!("backend port {port} is not free: {e}"));
                return;
            }
        }
    }

    let mut cmd = Command::new(nginx_rs_binary());
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("-c")
        .arg(CONFIG);
    let proxy_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 80));
    let proxy = match spawn_until_accepting(cmd, proxy_addr) {
        Ok(p) => p,
        Err(e) if !nginx_rs_must_serve() => {
            print_skip(&format!(
                "nginx-rs does not serve (skipped because NGINX_RS_ALLOW_SKIP=1): {e}"
            ));
            return;
        }
        Err(e) => panic!("nginx-rs -c {CONFIG} did not serve: {e}"),
    };

    let mut answers = Vec::new();
    for _ in 0..9 {
        let ex = exchange(
            proxy_addr,
            b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        );
        let Some(resp) = ex.response.clone() else {
            panic!(
                "no response after {answers:?}; got {:?}\nnginx-rs stderr:\n{}",
                ex.raw_text(),
                proxy.stderr()
            );
        };
        assert_eq!(resp.status, 200, "{:?}", ex.raw_text());
        answers.push(resp.text());
    }
    let expected: Vec<String> = BACKENDS
        .iter()
        .cycle()
        .take(9)
        .map(|(port, id)| format!("Hello from Flask server {id} (port {port})"))
        .collect();
    assert_eq!(answers, expected, "nginx-rs stderr:\n{}", proxy.stderr());

    // Each backend saw exactly its three requests, with the walkthrough's headers.
    for b in &backends {
        let got = b.received();
        assert_eq!(got.len(), 3, "backend {} got {got:?}", b.port());
        for r in &got {
            assert_eq!(r.header("host"), Some("localhost"));
            assert_eq!(r.header("x-real-ip"), Some("127.0.0.1"));
            assert_eq!(r.header("x-forwarded-for"), Some("127.0.0.1"));
            assert_eq!(r.header("x-forwarded-proto"), Some("http"));
        }
    }
    // Where host.docker.internal does not resolve, the fallback is announced, as issue 3 asks.
    if ("host.docker.internal", 80).to_socket_addrs().is_err() {
        let stderr = proxy.stderr();
        assert!(
            stderr.contains("[warn]") && stderr.contains("host.docker.internal"),
            "no [warn] about the host.docker.internal fallback in stderr:\n{stderr}"
        );
    }
}
