//! `error_log` at http, server and location level: a request's error lines go to the error log of
//! the configuration that handled it (location, inherited from server, inherited from http), never
//! to the main log when one of those levels has its own. Checked on nginx-rs (the binary, through
//! the test harness) and, where installed, on real nginx with the same configuration: the same
//! files get the same messages.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use support::nginx::{skip_unless, start, Flavor, Options};

/// A port on 127.0.0.1 where nothing listens (bound, then released): connect() is refused.
fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

fn get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(s, "GET {path} HTTP/1.0\r\nHost: lv\r\n\r\n").expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.lines().next().unwrap_or_default().to_string()
}

/// The messages of `file` (what follows `*N `), one per line.
fn messages(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(": *").map(|(_, rest)| rest.to_string()))
        .map(|m| m.split_once(' ').map(|(_, m)| m.to_string()).unwrap_or(m))
        .collect()
}

/// Per log file (http, server, own location): the messages the two requests left there.
fn run(flavor: Flavor, logs: &Path, dead: SocketAddr) -> Option<[Vec<String>; 3]> {
    let l = logs.display();
    let http = |port: u16| {
        format!(
            "error_log {l}/http.log;\n\
             server {{ listen 127.0.0.1:{port}; server_name lv;\n\
               location /own/ {{ error_log {l}/loc.log; proxy_pass http://{dead}; }}\n\
               location /http/ {{ proxy_pass http://{dead}; }}\n\
             }}\n\
             server {{ listen 127.0.0.1:{port}; server_name other;\n\
               error_log {l}/server.log warn;\n\
               location /inherit/ {{ proxy_pass http://{dead}; }}\n\
             }}\n"
        )
    };
    let server = skip_unless(start(flavor, Options::default(), &http), flavor)?;
    assert!(get(server.addr(), "/own/a").contains(" 502 "));
    // Host `other`: the second server, whose location inherits the server's error_log.
    let mut s = TcpStream::connect(server.addr()).expect("connect");
    write!(s, "GET /inherit/b HTTP/1.0\r\nHost: other\r\n\r\n").expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(
        out.lines().next().unwrap_or_default().contains(" 502 "),
        "{out}"
    );
    // A location without error_log in a server without one: the http-level log.
    assert!(get(server.addr(), "/http/c").contains(" 502 "));
    drop(server);
    let got = [
        messages(&logs.join("http.log")),
        messages(&logs.join("server.log")),
        messages(&logs.join("loc.log")),
    ];
    Some(got)
}

#[test]
fn request_errors_go_to_the_handling_levels_error_log() {
    let dead = dead_addr();
    let rs_logs = tempfile::tempdir().expect("tempdir");
    let Some([http, server, loc]) = run(Flavor::NginxRs, rs_logs.path(), dead) else {
        return;
    };
    let connect = "connect() failed (111: Connection refused) while connecting to upstream";
    assert!(
        loc.len() == 1 && loc[0].starts_with(connect) && loc[0].contains("GET /own/a "),
        "location log: {loc:?}"
    );
    assert!(
        server.len() == 1
            && server[0].contains("GET /inherit/b ")
            && server[0].contains("server: other"),
        "server log: {server:?}"
    );
    let requests: Vec<_> = http.iter().filter(|m| m.contains("request:")).collect();
    assert!(
        requests.len() == 1
            && requests[0].starts_with(connect)
            && requests[0].contains("GET /http/c "),
        "http log: {http:?}"
    );

    // Real nginx on the same configuration: the same messages in the same files.
    let nginx_logs = tempfile::tempdir().expect("tempdir");
    let Some(nginx) = run(Flavor::Nginx, nginx_logs.path(), dead) else {
        return;
    };
    let strip = |v: &[String]| -> Vec<String> {
        v.iter()
            .filter(|m| m.contains("request:"))
            .map(|m| {
                // `host: "127.0.0.1:PORT"` differs by port only; the rest must match.
                m.split(", host:").next().unwrap_or(m).to_string()
            })
            .collect()
    };
    assert_eq!(strip(&nginx[2]), strip(&loc), "location log vs nginx");
    assert_eq!(strip(&nginx[1]), strip(&server), "server log vs nginx");
    assert_eq!(strip(&nginx[0]), strip(&http), "http log vs nginx");
}
