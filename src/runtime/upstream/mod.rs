//! Upstream groups at run time: every nginx balancing method, peer state and passive health
//! (`max_fails`/`fail_timeout`, `backup`, `down`, `max_conns`), keepalive connection pools, and
//! re-resolution of `server ... resolve` names; `h1` is the HTTP/1 client spoken on the
//! connections.
//!
//! # API (used by the proxy handler)
//! ```text
//! Upstreams::new(plan: &plan::Plan, previous: Option<&Upstreams>) -> Upstreams
//! Upstreams::group(&self, up: &Arc<plan::Upstream>) -> Option<Arc<Group>>
//! Upstreams::spawn_resolver(&self, resolver: Arc<dyn plan::Resolve + Send + Sync>, every: Duration)
//!     -> Option<tokio::task::JoinHandle<()>>          // only if some server has `resolve`
//!
//! Group::select(&self, key: SelectKey<'_>, tried: &mut Tried) -> Result<PeerRef, NoLive>
//! Group::connect(&self, peer: &PeerRef, connect_timeout: Duration)
//!     -> impl Future<Output = Result<UpstreamConn, ConnectError>>
//! Group::connect_fresh(&self, peer: &PeerRef, connect_timeout: Duration)   // same, never pooled
//! Group::release(&self, conn: UpstreamConn)           // after a complete, reusable response
//! Group::tries(&self) -> u32                          // nginx's peer.tries: attempts one request may make
//! Group::name(&self) -> &str
//! Group::new(Arc<plan::Upstream>) -> Group             // a standalone group (e.g. tests, variables)
//! Group::{idle_connections() -> usize, peer_addrs() -> Vec<PeerAddr>}   // status / tests
//!
//! SelectKey::{None, Ip(IpAddr), Bytes(&[u8])}         // ip_hash: client IP; hash: rendered key
//! Tried::new() -> Tried                               // one per client request, for every select
//! Tried::attempts(&self) -> u32                       // peers handed out so far
//! PeerRef::{addr() -> &PeerAddr, name() -> &str, success(), failure()}   // drop = attempt over
//! UpstreamConn { pub reused: bool, .. }               // a byte stream with its own buffers
//! UpstreamConn::{request_buf() -> &mut Vec<u8>, rbuf_is_empty(), requests(), peer_addr()}
//!
//! h1::write::{request_line, header, rendered_header, content_length, end, raw_names}
//! h1::send_request(&mut UpstreamConn, Option<Body>, BodyFraming, send_timeout)   // head + body
//! h1::read_head(&mut UpstreamConn, head_request, max, read_timeout, hide) -> h1::Head   // hide: names left out
//! h1::ResponseBody::new(conn, framing, keepalive, Arc<Group>, read_timeout)      // releases at end
//! h1::round_trip(conn, timeout) -> (Head, Bytes, Option<UpstreamConn>)           // tests, checks
//! ConnectError::{Refused(io::Error), Timeout, Other(io::Error)}   // Display: nginx's words
//! ConnectError::log_message(&self, &PeerAddr) -> String          // unix sockets name the path
//! NoLive                                              // Display: "no live upstreams"
//! ```
//!
//! # How it maps to nginx
//! One mutex per group guards all peer state, like nginx's per-group lock in a shared zone;
//! balancing state is shared by all worker threads, so sequences equal nginx with one worker
//! (`worker_processes 1`) or with a `zone`. Each `select` is one `peer.get`; `success`/`failure`
//! plus dropping the `PeerRef` is `peer.free`. The retry loop (`proxy_next_upstream*`) belongs to
//! the proxy handler: it calls `select` again with the same `Tried` after `failure()`.
//!
//! Backup servers form a second tier used only when no primary is usable; hash, ip_hash and
//! random only reach it through their round-robin fallback (nginx rejects `backup` for them when
//! the method comes first, and accepts it silently when it comes after the servers).

mod balancer;
mod connect;
pub mod h1;
mod peer;
mod pool;
mod resolve;

pub use balancer::Tried;
pub use connect::{ConnectError, UpstreamConn, UpstreamTls};

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use crate::plan::{self, Balance, PeerAddr, UpstreamServer};

use balancer::Prepared;
use peer::{now_ms, PeerInfo, State};
use pool::Pool;

/// What the balancing method hashes.
#[derive(Clone, Copy, Debug)]
pub enum SelectKey<'a> {
    None,
    /// `ip_hash`: the client address.
    Ip(IpAddr),
    /// `hash KEY`: the rendered key.
    Bytes(&'a [u8]),
}

/// nginx's "no live upstreams": every peer is down, failed or at `max_conns` (→ 502).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoLive;

impl fmt::Display for NoLive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no live upstreams")
    }
}

impl std::error::Error for NoLive {}

/// Groups keyed by the address of the plan's `Arc<Upstream>`; the Arc is kept so the key stays
/// unique while the map lives.
type GroupMap = HashMap<usize, (Arc<plan::Upstream>, Arc<Group>)>;

/// Run-time state of every upstream group in a Plan.
pub struct Upstreams {
    groups: RwLock<GroupMap>,
}

impl Upstreams {
    /// Builds the groups of `plan`. A group whose definition is unchanged from one in `previous`
    /// (same name and same servers, parameters, method and keepalive settings) keeps its state:
    /// weights, failures, connection counts and idle connections.
    pub fn new(plan: &plan::Plan, previous: Option<&Upstreams>) -> Upstreams {
        let mut ups = Vec::new();
        collect_upstreams(plan, &mut ups);
        let old: Vec<Arc<Group>> = previous.map_or_else(Vec::new, |p| {
            p.read().values().map(|(_, g)| g.clone()).collect()
        });
        let mut groups = HashMap::new();
        for up in ups {
            let key = Arc::as_ptr(&up) as usize;
            if groups.contains_key(&key) {
                continue;
            }
            let group = old
                .iter()
                .find(|g| same_definition(&g.def, &up))
                .cloned()
                .unwrap_or_else(|| Arc::new(Group::new(up.clone())));
            groups.insert(key, (up, group));
        }
        Upstreams {
            groups: RwLock::new(groups),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, GroupMap> {
        // Poisoning cannot leave the map half-updated: inserts are single operations.
        self.groups.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The group compiled for `up` (an `Arc<plan::Upstream>` from the Plan this was built from).
    /// An upstream not seen at build time gets a fresh group on first use.
    pub fn group(&self, up: &Arc<plan::Upstream>) -> Option<Arc<Group>> {
        let key = Arc::as_ptr(up) as usize;
        if let Some((_, g)) = self.read().get(&key) {
            return Some(g.clone());
        }
        let mut w = self.groups.write().unwrap_or_else(|e| e.into_inner());
        let entry = w
            .entry(key)
            .or_insert_with(|| (up.clone(), Arc::new(Group::new(up.clone()))));
        Some(entry.1.clone())
    }

    /// Every group (for status pages and the resolver).
    pub fn groups(&self) -> Vec<Arc<Group>> {
        self.read().values().map(|(_, g)| g.clone()).collect()
    }

    /// Starts re-resolving the names of `server ... resolve` lines every `every` (nginx re-resolves
    /// when the DNS answer expires; `resolver ... valid=` sets that). Returns `None` when no
    /// server asks for it. Must be called within a tokio runtime.
    pub fn spawn_resolver(
        &self,
        resolver: Arc<dyn plan::Resolve + Send + Sync>,
        every: Duration,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let groups: Vec<Arc<Group>> = self
            .groups()
            .into_iter()
            .filter(|g| g.def.servers.iter().any(|s| s.resolve))
            .collect();
        if groups.is_empty() {
            return None;
        }
        Some(tokio::spawn(resolve::run(groups, resolver, every)))
    }
}

/// Every `Arc<Upstream>` the plan refers to: `upstream` blocks and implicit `proxy_pass` groups.
fn collect_upstreams(plan: &plan::Plan, out: &mut Vec<Arc<plan::Upstream>>) {
    out.extend(plan.http.upstreams.iter().cloned());
    fn conf(c: &plan::LocConf, out: &mut Vec<Arc<plan::Upstream>>) {
        if let Some(plan::ProxyConf {
            pass: plan::ProxyPass::Static { upstream, .. },
            ..
        }) = &c.proxy
        {
            out.push(upstream.clone());
        }
        ops(&c.rewrites, out);
    }
    fn ops(ops_: &[plan::RewriteOp], out: &mut Vec<Arc<plan::Upstream>>) {
        for op in ops_ {
            if let plan::RewriteOp::If {
                ops: inner,
                conf: c,
                ..
            } = op
            {
                ops(inner, out);
                if let Some(c) = c {
                    conf(c, out);
                }
            }
        }
    }
    fn loc(l: &plan::Location, out: &mut Vec<Arc<plan::Upstream>>) {
        conf(&l.conf, out);
        for c in &l.children {
            loc(c, out);
        }
    }
    for s in &plan.http.servers {
        conf(&s.conf, out);
        ops(&s.rewrites, out);
        for l in s.locations.iter().chain(&s.named) {
            loc(l, out);
        }
    }
}

fn same_definition(a: &plan::Upstream, b: &plan::Upstream) -> bool {
    fn same_method(a: &Balance, b: &Balance) -> bool {
        match (a, b) {
            (Balance::RoundRobin, Balance::RoundRobin)
            | (Balance::LeastConn, Balance::LeastConn)
            | (Balance::IpHash, Balance::IpHash) => true,
            (
                Balance::Hash {
                    key: k1,
                    consistent: c1,
                },
                Balance::Hash {
                    key: k2,
                    consistent: c2,
                },
            ) => k1 == k2 && c1 == c2,
            (
                Balance::Random {
                    two: t1,
                    least_conn: l1,
                },
                Balance::Random {
                    two: t2,
                    least_conn: l2,
                },
            ) => t1 == t2 && l1 == l2,
            _ => false,
        }
    }
    fn same_server(a: &UpstreamServer, b: &UpstreamServer) -> bool {
        a.name == b.name
            && a.addrs == b.addrs
            && a.weight == b.weight
            && a.max_fails == b.max_fails
            && a.fail_timeout == b.fail_timeout
            && a.backup == b.backup
            && a.down == b.down
            && a.max_conns == b.max_conns
            && a.resolve == b.resolve
    }
    a.name == b.name
        && a.implicit == b.implicit
        && same_method(&a.method, &b.method)
        && a.servers.len() == b.servers.len()
        && a.servers
            .iter()
            .zip(&b.servers)
            .all(|(x, y)| same_server(x, y))
        && a.keepalive == b.keepalive
        && a.keepalive_requests == b.keepalive_requests
        && a.keepalive_timeout == b.keepalive_timeout
        && a.keepalive_time == b.keepalive_time
}

/// Balancing state shared by a group and the `PeerRef`s it hands out.
struct Shared {
    method: Balance,
    inner: Mutex<Inner>,
}

struct Inner {
    state: State,
    prepared: Prepared,
    /// The servers with their current addresses (re-resolution updates them).
    servers: Vec<UpstreamServer>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update under this lock is a few integer writes: a panic cannot tear it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One upstream group: its peers, their state and its keepalive pool. Shared by all threads.
pub struct Group {
    def: Arc<plan::Upstream>,
    shared: Arc<Shared>,
    pool: Arc<Pool>,
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("name", &self.def.name)
            .finish()
    }
}

impl Group {
    /// A group with fresh state for `def` (what `Upstreams::new` builds for each upstream).
    pub fn new(def: Arc<plan::Upstream>) -> Group {
        let state = State::build(&def.servers, None);
        let prepared = Prepared::build(&def.method, &state);
        Group {
            shared: Arc::new(Shared {
                method: def.method.clone(),
                inner: Mutex::new(Inner {
                    state,
                    prepared,
                    servers: def.servers.clone(),
                }),
            }),
            pool: Arc::new(Pool::new(&def)),
            def,
        }
    }

    /// The upstream's name (`upstream NAME` or the `proxy_pass` host).
    pub fn name(&self) -> &str {
        &self.def.name
    }

    /// The plan node this group was built from.
    pub fn definition(&self) -> &Arc<plan::Upstream> {
        &self.def
    }

    /// nginx's `peer.tries`: how many peers one request may try (peers not `down`, primary plus
    /// backup). A single-peer group gets exactly one attempt (nginx zeroes its tries on free).
    pub fn tries(&self) -> u32 {
        let inner = self.shared.lock();
        let tiers = &inner.state.tiers;
        if tiers.len() == 1 && tiers[0].single {
            return 1;
        }
        let n: usize = tiers.iter().map(|t| t.tries).sum();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Chooses the next peer as nginx would. `tried` carries the request's earlier choices.
    pub fn select(&self, key: SelectKey<'_>, tried: &mut Tried) -> Result<PeerRef, NoLive> {
        let now = now_ms();
        let mut guard = self.shared.lock();
        let inner = &mut *guard;
        let (tier, idx) = balancer::select(
            &self.shared.method,
            &inner.prepared,
            &mut inner.state,
            key,
            tried,
            now,
        )
        .ok_or(NoLive)?;
        tried.count_attempt();
        let info = inner.state.tiers[tier].peers[idx].info.clone();
        Ok(PeerRef {
            shared: self.shared.clone(),
            info,
            tier,
            idx,
            generation: inner.state.generation,
            outcome: AtomicU8::new(OUTCOME_NONE),
        })
    }

    /// A connection to `peer`: an idle pooled one if any (`reused = true`), else a new one within
    /// `connect_timeout`.
    pub async fn connect(
        &self,
        peer: &PeerRef,
        connect_timeout: Duration,
    ) -> Result<UpstreamConn, ConnectError> {
        if let Some(conn) = self.take_idle(peer) {
            return Ok(conn);
        }
        // Boxed: the connect state (~1.4 KB) would otherwise be part of every request's future,
        // which hyper allocates and the request path moves per request, pooled or not.
        Box::pin(self.connect_fresh(peer, connect_timeout)).await
    }

    /// A new connection to `peer`, bypassing the pool: for the one retry nginx makes when a
    /// request on a reused connection fails before any response byte.
    pub async fn connect_fresh(
        &self,
        peer: &PeerRef,
        connect_timeout: Duration,
    ) -> Result<UpstreamConn, ConnectError> {
        self.connect_fresh_with(peer, connect_timeout, None).await
    }

    /// [`Group::connect`] with TLS to the peer when `tls` is given (`proxy_pass https://`).
    pub async fn connect_with(
        &self,
        peer: &PeerRef,
        connect_timeout: Duration,
        tls: Option<&connect::UpstreamTls>,
    ) -> Result<UpstreamConn, ConnectError> {
        if tls.is_none() {
            return self.connect(peer, connect_timeout).await;
        }
        if let Some(conn) = self.take_idle(peer) {
            return Ok(conn);
        }
        // Boxed for the same reason as in `connect`.
        Box::pin(self.connect_fresh_with(peer, connect_timeout, tls)).await
    }

    /// An idle pooled connection to `peer` the backend has not closed (the pool checks).
    fn take_idle(&self, peer: &PeerRef) -> Option<UpstreamConn> {
        let mut conn = self.pool.take(peer.addr())?;
        conn.reused = true;
        conn.requests += 1;
        Some(conn)
    }

    /// [`Group::connect_fresh`] with TLS to the peer when `tls` is given.
    pub async fn connect_fresh_with(
        &self,
        peer: &PeerRef,
        connect_timeout: Duration,
        tls: Option<&connect::UpstreamTls>,
    ) -> Result<UpstreamConn, ConnectError> {
        let mut conn = connect::open_with(peer.addr(), connect_timeout, tls).await?;
        conn.requests = 1;
        Ok(conn)
    }

    /// Returns a connection after a complete response whose framing allows reuse; the pool
    /// applies `keepalive`, `keepalive_requests`, `keepalive_time`. Dropping a connection instead
    /// closes it.
    pub fn release(&self, conn: UpstreamConn) {
        self.pool.put(conn);
    }

    /// Idle connections in the keepalive pool now.
    pub fn idle_connections(&self) -> usize {
        self.pool.len()
    }

    /// Replaces the addresses of `server_idx` (re-resolution); peers that stay keep their state.
    pub(crate) fn set_addrs(&self, server_idx: usize, addrs: Vec<PeerAddr>) -> bool {
        let mut guard = self.shared.lock();
        let inner = &mut *guard;
        let Some(server) = inner.servers.get_mut(server_idx) else {
            return false;
        };
        if server.addrs == addrs {
            return false;
        }
        server.addrs = addrs;
        let state = State::build(&inner.servers, Some(&inner.state));
        inner.prepared = Prepared::build(&self.shared.method, &state);
        inner.state = state;
        true
    }

    /// Current peer addresses in order, primary then backup (for tests and status).
    pub fn peer_addrs(&self) -> Vec<PeerAddr> {
        let inner = self.shared.lock();
        inner
            .state
            .tiers
            .iter()
            .flat_map(|t| t.peers.iter().map(|p| p.info.addr.clone()))
            .collect()
    }
}

const OUTCOME_NONE: u8 = 0;
const OUTCOME_SUCCESS: u8 = 1;
const OUTCOME_FAILURE: u8 = 2;

/// A chosen peer. Counts as an active connection (least_conn, max_conns) until dropped.
pub struct PeerRef {
    shared: Arc<Shared>,
    info: Arc<PeerInfo>,
    tier: usize,
    idx: usize,
    generation: u64,
    outcome: AtomicU8,
}

impl fmt::Debug for PeerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerRef")
            .field("addr", &self.info.addr)
            .field("server", &self.info.server)
            .finish()
    }
}

impl PeerRef {
    /// The peer's address, e.g. `127.0.0.1:5001` (for `$upstream_addr`).
    pub fn addr(&self) -> &PeerAddr {
        &self.info.addr
    }

    /// This peer's `metrics` counters (`upstream`: its group's name).
    pub fn stats(&self, upstream: &str) -> &Arc<crate::runtime::status::PeerStats> {
        self.info
            .stats
            .get_or_init(|| crate::runtime::status::global().peer_at(upstream, &self.info.addr))
    }

    /// The `server` name as written in the upstream block.
    pub fn name(&self) -> &str {
        &self.info.server
    }

    /// The attempt succeeded (nginx's `free` without `NGX_PEER_FAILED`): a peer that was being
    /// re-checked after `fail_timeout` is live again. Only the first outcome reported counts.
    pub fn success(&self) {
        self.report(OUTCOME_SUCCESS);
    }

    /// The attempt failed in a way `proxy_next_upstream` counts: one toward `max_fails` within
    /// `fail_timeout`, and the peer's effective weight drops by `weight / max_fails`.
    pub fn failure(&self) {
        self.report(OUTCOME_FAILURE);
    }

    fn report(&self, outcome: u8) {
        if self
            .outcome
            .compare_exchange(OUTCOME_NONE, outcome, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let mut inner = self.shared.lock();
        let generation = self.generation;
        let state = &mut inner.state;
        let single = state.tiers.get(self.tier).is_some_and(|t| t.single);
        let Some(peer) = find_peer(state, self.tier, self.idx, generation, &self.info) else {
            return;
        };
        if single {
            // nginx never marks the only server of a group failed.
            return;
        }
        let (info, st) = (&peer.info, &mut peer.st);
        if outcome == OUTCOME_FAILURE {
            // The clock only for failures: a success compares the two stamps.
            let now = now_ms();
            st.fails += 1;
            st.accessed = now;
            st.checked = now;
            if info.max_fails > 0 {
                st.effective_weight -= info.weight / i64::from(info.max_fails);
                if st.fails >= info.max_fails {
                    tracing::warn!(
                        upstream = %info.addr,
                        "upstream server temporarily disabled"
                    );
                }
            }
            st.effective_weight = st.effective_weight.max(0);
        } else if st.accessed < st.checked {
            st.fails = 0;
        }
    }
}

impl Drop for PeerRef {
    fn drop(&mut self) {
        let mut inner = self.shared.lock();
        if let Some(peer) = find_peer(
            &mut inner.state,
            self.tier,
            self.idx,
            self.generation,
            &self.info,
        ) {
            peer.st.conns = peer.st.conns.saturating_sub(1);
        }
    }
}

/// The live peer a `PeerRef` points to, even if the peer list was rebuilt since.
fn find_peer<'a>(
    state: &'a mut State,
    tier: usize,
    idx: usize,
    generation: u64,
    info: &Arc<PeerInfo>,
) -> Option<&'a mut peer::Peer> {
    if state.generation == generation {
        return state.tiers.get_mut(tier)?.peers.get_mut(idx);
    }
    state
        .tiers
        .iter_mut()
        .flat_map(|t| t.peers.iter_mut())
        .find(|p| Arc::ptr_eq(&p.info, info))
}
