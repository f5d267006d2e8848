//! Helpers shared by the upstream tests: hand-built `plan::Upstream` values (until the plan
//! compiler fills them) and tiny HTTP backends on 127.0.0.1 that answer their own name.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use nginx_rs::conf::Span;
use nginx_rs::plan::{Balance, PeerAddr, Template, Upstream, UpstreamServer};

pub fn span() -> Span {
    Span::new("/test/nginx.conf".into(), 1, 1)
}

/// A `server` line with nginx's defaults (weight 1, max_fails 1, fail_timeout 10s).
pub fn server(name: &str, addrs: &[SocketAddr]) -> UpstreamServer {
    UpstreamServer {
        name: name.to_string(),
        addrs: addrs.iter().copied().map(PeerAddr::Inet).collect(),
        weight: 1,
        max_fails: 1,
        fail_timeout: Duration::from_secs(10),
        backup: false,
        down: false,
        max_conns: 0,
        resolve: false,
        span: span(),
    }
}

/// `server 127.0.0.1:PORT` where PORT is derived from `n` (never connected to by pure
/// balancing tests).
pub fn fake(n: u16) -> UpstreamServer {
    let addr: SocketAddr = ([127, 0, 0, 1], 10000 + n).into();
    server(&addr.to_string(), &[addr])
}

pub fn weighted(n: u16, weight: u32) -> UpstreamServer {
    UpstreamServer { weight, ..fake(n) }
}

pub fn upstream(method: Balance, servers: Vec<UpstreamServer>) -> Arc<Upstream> {
    Arc::new(Upstream {
        name: "backend".into(),
        method,
        servers,
        keepalive: None,
        keepalive_requests: 1000,
        keepalive_timeout: Duration::from_secs(60),
        keepalive_time: Duration::from_secs(3600),
        implicit: false,
        span: span(),
    })
}

pub fn hash(consistent: bool) -> Balance {
    Balance::Hash {
        key: Template::literal("$arg_k"),
        consistent,
    }
}
