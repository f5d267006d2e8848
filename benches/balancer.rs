//! `Group::select` cost for every balancing method (8 peers, mixed weights, one request each).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use nginx_rs::conf::Span;
use nginx_rs::plan::{Balance, PeerAddr, Template, Upstream, UpstreamServer};
use nginx_rs::runtime::upstream::{Group, SelectKey, Tried};

fn group(method: Balance) -> Group {
    let span = Span::new("/bench/nginx.conf".into(), 1, 1);
    let servers = (0..8u16)
        .map(|i| {
            let addr: SocketAddr = ([127, 0, 0, 1], 20000 + i).into();
            UpstreamServer {
                name: addr.to_string(),
                addrs: vec![PeerAddr::Inet(addr)],
                weight: u32::from(i % 3 + 1),
                max_fails: 1,
                fail_timeout: Duration::from_secs(10),
                backup: false,
                down: false,
                max_conns: 0,
                resolve: false,
                span: span.clone(),
            }
        })
        .collect();
    Group::new(Arc::new(Upstream {
        name: "bench".into(),
        method,
        servers,
        keepalive: None,
        keepalive_requests: 1000,
        keepalive_timeout: Duration::from_secs(60),
        keepalive_time: Duration::from_secs(3600),
        implicit: false,
        span,
    }))
}

fn select(c: &mut Criterion) {
    let hash = |consistent| Balance::Hash {
        key: Template::literal("$arg_k"),
        consistent,
    };
    let methods = [
        ("round_robin", Balance::RoundRobin),
        ("least_conn", Balance::LeastConn),
        ("ip_hash", Balance::IpHash),
        ("hash", hash(false)),
        ("hash_consistent", hash(true)),
        (
            "random",
            Balance::Random {
                two: false,
                least_conn: false,
            },
        ),
        (
            "random_two_least_conn",
            Balance::Random {
                two: true,
                least_conn: true,
            },
        ),
    ];
    let keys: Vec<String> = (0..1024).map(|i| format!("user-{i}")).collect();
    for (name, method) in methods {
        let g = group(method);
        let mut i = 0usize;
        c.bench_function(&format!("select/{name}"), |b| {
            b.iter(|| {
                i = (i + 1) % keys.len();
                let key = match name {
                    "ip_hash" => SelectKey::Ip([10, 0, (i % 256) as u8, 1].into()),
                    _ => SelectKey::Bytes(keys[i].as_bytes()),
                };
                let mut tried = Tried::new();
                let peer = g.select(key, &mut tried).expect("live peer");
                peer.success();
                black_box(peer.addr());
            })
        });
    }
}

criterion_group!(benches, select);
criterion_main!(benches);
