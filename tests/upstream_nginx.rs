//! Differential tests: the same upstream block run by real nginx (1 worker) and by our balancer
//! must pick the same backend for every request, in the same order. Backends are nginx servers on
//! ephemeral 127.0.0.1 ports answering their own port. Skipped (with a message) without nginx.

mod upstream_common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use nginx_rs::plan::{Balance, PeerAddr, UpstreamServer};
use nginx_rs::runtime::upstream::{Group, SelectKey, Tried};
use upstream_common::*;

struct Backend {
    weight: u32,
    down: bool,
    /// Nothing listens on its port: connections are refused.
    dead: bool,
    backup: bool,
}

fn b(weight: u32) -> Backend {
    Backend {
        weight,
        down: false,
        dead: false,
        backup: false,
    }
}

fn backup(weight: u32) -> Backend {
    Backend {
        backup: true,
        ..b(weight)
    }
}

fn down(weight: u32) -> Backend {
    Backend {
        down: true,
        ..b(weight)
    }
}

fn dead(weight: u32) -> Backend {
    Backend {
        dead: true,
        ..b(weight)
    }
}

/// One request: the path sent to nginx, the source address, and what our balancer hashes.
struct Req {
    path: String,
    from: Option<Ipv4Addr>,
}

/// Runs `reqs` through nginx and through our `Group` for the same upstream; both sequences of
/// backend ports must be equal. Returns the sequence (empty when nginx is absent).
fn compare(directive: &str, method: Balance, backends: &[Backend], reqs: &[Req]) -> Vec<u16> {
    compare_with(directive, method, backends, 1, reqs)
}

/// As `compare`, with `max_fails` on every server. For dead backends our side plays the proxy's
/// part: report `failure()` and select again with the same `Tried` (nginx's `proxy_next_upstream
/// error`).
fn compare_with(
    directive: &str,
    method: Balance,
    backends: &[Backend],
    max_fails: u32,
    reqs: &[Req],
) -> Vec<u16> {
    let ports = free_ports(backends.len() + 1);
    let (front, back) = (ports[0], &ports[1..]);

    let mut servers: Vec<UpstreamServer> = Vec::new();
    let mut block = format!("upstream backend {{\n {directive}\n");
    for (port, be) in back.iter().zip(backends) {
        let addr: SocketAddr = ([127, 0, 0, 1], *port).into();
        block += &format!(
            " server {addr} weight={} max_fails={max_fails}{}{};\n",
            be.weight,
            if be.down { " down" } else { "" },
            if be.backup { " backup" } else { "" }
        );
        servers.push(UpstreamServer {
            weight: be.weight,
            down: be.down,
            backup: be.backup,
            max_fails,
            ..server(&addr.to_string(), &[addr])
        });
    }
    block += "}\n";
    block += &format!(
        "server {{ listen 127.0.0.1:{front}; location / {{ proxy_pass http://backend; }} }}\n"
    );
    let dead_ports: Vec<u16> = back
        .iter()
        .zip(backends)
        .filter(|(_, be)| be.dead)
        .map(|(p, _)| *p)
        .collect();
    for port in back.iter().filter(|p| !dead_ports.contains(p)) {
        block += &format!("server {{ listen 127.0.0.1:{port}; return 200 \"{port}\"; }}\n");
    }

    let group = Group::new(upstream(method, servers));
    let ours: Vec<u16> = reqs
        .iter()
        .map(|r| {
            let key_text = r.path.split_once("k=").map(|(_, k)| k.to_string());
            let key = match (r.from, &key_text) {
                (Some(ip), _) => SelectKey::Ip(IpAddr::V4(ip)),
                (None, Some(k)) => SelectKey::Bytes(k.as_bytes()),
                (None, None) => SelectKey::None,
            };
            let mut tried = Tried::new();
            loop {
                let peer = group.select(key, &mut tried).expect("a live peer");
                let port = match peer.addr() {
                    PeerAddr::Inet(a) => a.port(),
                    PeerAddr::Unix(_) => unreachable!("TCP peers only"),
                };
                if dead_ports.contains(&port) {
                    peer.failure();
                    continue;
                }
                peer.success();
                break port;
            }
        })
        .collect();

    let Some(_nginx) = Nginx::start(&block, front) else {
        return Vec::new();
    };
    let theirs: Vec<u16> = reqs
        .iter()
        .map(|r| {
            let body = http_get(front, &r.path, r.from);
            body.trim()
                .parse()
                .unwrap_or_else(|_| panic!("unexpected body {body:?}"))
        })
        .collect();
    assert_eq!(
        ours, theirs,
        "our choices (left) differ from nginx's (right) for `{directive}`"
    );
    ours
}

fn plain(n: usize) -> Vec<Req> {
    (0..n)
        .map(|_| Req {
            path: "/".into(),
            from: None,
        })
        .collect()
}

fn keyed(n: usize) -> Vec<Req> {
    (0..n)
        .map(|i| Req {
            path: format!("/?k=user{i}"),
            from: None,
        })
        .collect()
}

fn from_ips(n: u8) -> Vec<Req> {
    (0..n)
        .map(|i| Req {
            path: "/".into(),
            // The third octet varies: ip_hash only looks at the first three.
            from: Some(Ipv4Addr::new(127, 0, i, 1 + i % 7)),
        })
        .collect()
}

#[test]
fn round_robin_weights_match_nginx() {
    compare("", Balance::RoundRobin, &[b(5), b(1), b(2)], &plain(40));
    compare(
        "",
        Balance::RoundRobin,
        &[b(1), b(1), b(1), b(1)],
        &plain(12),
    );
    compare(
        "",
        Balance::RoundRobin,
        &[b(3), b(7), down(4), b(2)],
        &plain(40),
    );
}

#[test]
fn least_conn_sequential_ties_match_nginx() {
    compare(
        "least_conn;",
        Balance::LeastConn,
        &[b(5), b(1), b(2)],
        &plain(32),
    );
}

#[test]
fn hash_matches_nginx() {
    let m = || hash(false);
    compare("hash $arg_k;", m(), &[b(1), b(1), b(1)], &keyed(80));
    compare("hash $arg_k;", m(), &[b(3), b(1), b(2), b(1)], &keyed(80));
    // A down server makes nginx re-hash with the retry count prefixed.
    compare(
        "hash $arg_k;",
        m(),
        &[b(1), down(2), b(1), down(1)],
        &keyed(80),
    );
}

#[test]
fn consistent_hash_matches_nginx() {
    let m = || hash(true);
    compare(
        "hash $arg_k consistent;",
        m(),
        &[b(1), b(1), b(1)],
        &keyed(100),
    );
    compare(
        "hash $arg_k consistent;",
        m(),
        &[b(1), b(3), b(2)],
        &keyed(100),
    );
    compare(
        "hash $arg_k consistent;",
        m(),
        &[b(1), down(1), b(2), b(1)],
        &keyed(100),
    );
}

#[test]
fn ip_hash_matches_nginx() {
    compare(
        "ip_hash;",
        Balance::IpHash,
        &[b(1), b(1), b(1)],
        &from_ips(60),
    );
    compare(
        "ip_hash;",
        Balance::IpHash,
        &[b(2), b(1), b(3)],
        &from_ips(60),
    );
    compare(
        "ip_hash;",
        Balance::IpHash,
        &[b(1), down(1), b(1), b(1)],
        &from_ips(60),
    );
}

#[test]
fn round_robin_failover_matches_nginx() {
    // A refused backend: nginx counts failures, lowers its effective weight by weight/max_fails
    // each time, then disables it for fail_timeout; the surviving order must be the same.
    compare_with(
        "",
        Balance::RoundRobin,
        &[b(5), dead(4), b(2), b(3)],
        3,
        &plain(40),
    );
    compare_with(
        "",
        Balance::RoundRobin,
        &[b(1), dead(1), b(1)],
        1,
        &plain(12),
    );
}

#[test]
fn hash_failover_matches_nginx() {
    compare_with(
        "hash $arg_k;",
        hash(false),
        &[b(1), dead(1), b(2)],
        1,
        &keyed(60),
    );
    compare_with(
        "hash $arg_k consistent;",
        hash(true),
        &[b(1), dead(2), b(1)],
        1,
        &keyed(60),
    );
    compare_with(
        "ip_hash;",
        Balance::IpHash,
        &[b(1), dead(1), b(1)],
        2,
        &from_ips(40),
    );
    compare_with(
        "least_conn;",
        Balance::LeastConn,
        &[b(2), dead(1), b(1)],
        2,
        &plain(30),
    );
}

#[test]
fn backup_servers_take_over_like_nginx() {
    // Both primaries refuse: every request ends on the backups, in nginx's weighted order.
    let backends = [dead(1), backup(3), dead(2), backup(1)];
    compare_with("", Balance::RoundRobin, &backends, 1, &plain(20));
    compare_with("least_conn;", Balance::LeastConn, &backends, 1, &plain(20));
    // One primary left: backups unused.
    let backends = [dead(1), backup(3), b(2)];
    compare_with("", Balance::RoundRobin, &backends, 1, &plain(10));
}
