//! THROWAWAY STUB of the upstream engineer's API (see UPSTREAM_API.md), so the proxy handler builds
//! and its tests run before `src/runtime/upstream/` lands. Plain round robin over every address, no
//! health accounting, no pooling. Deleted when the real module is merged.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::plan;
use crate::runtime::body::Body;

pub struct Upstreams {
    groups: Vec<(Arc<plan::Upstream>, Arc<Group>)>,
}

impl Upstreams {
    pub fn new(plan: &plan::Plan, _previous: Option<&Upstreams>) -> Upstreams {
        let mut groups = Vec::new();
        let mut add = |up: &Arc<plan::Upstream>| {
            if !groups.iter().any(|(u, _)| Arc::ptr_eq(u, up)) {
                groups.push((up.clone(), Arc::new(Group::new(up))));
            }
        };
        for up in &plan.http.upstreams {
            add(up);
        }
        for s in &plan.http.servers {
            let mut stack: Vec<&Arc<plan::Location>> = s.locations.iter().chain(&s.named).collect();
            if let Some(p) = &s.conf.proxy {
                if let plan::ProxyPass::Static { upstream, .. } = &p.pass {
                    add(upstream);
                }
            }
            while let Some(l) = stack.pop() {
                if let Some(p) = &l.conf.proxy {
                    if let plan::ProxyPass::Static { upstream, .. } = &p.pass {
                        add(upstream);
                    }
                }
                stack.extend(l.children.iter());
            }
        }
        Upstreams { groups }
    }

    pub fn group(&self, up: &Arc<plan::Upstream>) -> Option<Arc<Group>> {
        self.groups
            .iter()
            .find(|(u, _)| Arc::ptr_eq(u, up))
            .map(|(_, g)| g.clone())
    }
}

pub struct Group {
    peers: Vec<(String, plan::PeerAddr)>,
    next: AtomicUsize,
}

impl Group {
    fn new(up: &plan::Upstream) -> Group {
        let peers = up
            .servers
            .iter()
            .filter(|s| !s.down && !s.backup)
            .flat_map(|s| s.addrs.iter().map(move |a| (s.name.clone(), a.clone())))
            .collect();
        Group {
            peers,
            next: AtomicUsize::new(0),
        }
    }

    pub fn select(&self, _key: SelectKey<'_>, tried: &mut Tried) -> Result<PeerRef, NoLive> {
        let n = self.peers.len();
        for _ in 0..n {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % n;
            if tried.0 & (1 << (i % 64)) == 0 {
                tried.0 |= 1 << (i % 64);
                let (name, addr) = self.peers[i].clone();
                return Ok(PeerRef { name, addr });
            }
        }
        Err(NoLive)
    }

    pub async fn connect(
        &self,
        peer: &PeerRef,
        connect_timeout: Duration,
    ) -> Result<UpstreamConn, ConnectError> {
        let plan::PeerAddr::Inet(addr) = &peer.addr else {
            return Err(ConnectError::Other(io::Error::other("unix peers not in stub")));
        };
        let stream = match tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(addr)).await {
            Err(_) => return Err(ConnectError::Timeout),
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                return Err(ConnectError::Refused(e))
            }
            Ok(Err(e)) => return Err(ConnectError::Other(e)),
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .title_case_headers(true)
            .preserve_header_case(true)
            .handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| ConnectError::Other(io::Error::other(e)))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(UpstreamConn {
            sender,
            reused: false,
        })
    }

    pub fn release(&self, _conn: UpstreamConn) {}
}

pub enum SelectKey<'a> {
    None,
    Ip(std::net::IpAddr),
    Bytes(&'a [u8]),
}

#[derive(Default)]
pub struct Tried(u64);

#[derive(Debug)]
pub struct NoLive;

pub struct PeerRef {
    name: String,
    addr: plan::PeerAddr,
}

impl PeerRef {
    pub fn addr(&self) -> &plan::PeerAddr {
        &self.addr
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn success(&self) {}
    pub fn failure(&self) {}
}

pub struct UpstreamConn {
    pub sender: hyper::client::conn::http1::SendRequest<Body>,
    pub reused: bool,
}

#[derive(Debug)]
pub enum ConnectError {
    Refused(io::Error),
    Timeout,
    Other(io::Error),
}
