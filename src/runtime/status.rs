//! Counters for `stub_status` (nginx's exact text) and for Prometheus metrics (`metrics;` directive,
//! nginx-rs only), plus per-upstream-peer statistics.
//!
//! # API for the runtime
//! - One [`Status`] per process: [`global`]. It is a process global, so a reload (a new `Live`)
//!   never resets it, as nginx's shared-memory counters survive a reload.
//! - On accept: [`Status::accept`] returns a [`ConnGuard`] (counts `accepts`, `handled`, `active`);
//!   call [`ConnGuard::set`] with [`ConnState::Reading`] while reading a request header,
//!   [`ConnState::Writing`] while processing/answering, [`ConnState::Idle`] between keepalive requests;
//!   drop it when the connection closes. [`Status::request`] counts each request.
//! - Upstreams: [`Status::peer`]`(upstream, peer)` returns the `Arc<PeerStats>` for that pair (the same
//!   one after a reload, so numbers carry over); record with [`PeerStats::record`] and
//!   [`PeerStats::set_up`].
//! - Render: [`Status::stub_status`] and [`Status::prometheus`].
//!
//! # Prometheus metrics (text exposition format 0.0.4)
//! `nginx_rs_connections_{active,reading,writing,waiting}` (gauges),
//! `nginx_rs_connections_{accepted,handled}_total`, `nginx_rs_http_requests_total`,
//! `nginx_rs_upstream_peer_requests_total{upstream,peer}`, `nginx_rs_upstream_peer_failures_total`,
//! `nginx_rs_upstream_peer_up` (1 = its last attempt succeeded, 0 = it failed), and the histogram
//! `nginx_rs_upstream_peer_response_seconds` (time to the response header, buckets 5ms..30s).
//!
//! # How connections are counted (nginx's split, approximated)
//! hyper does not say when it starts reading the next request head, so: a connection is Reading
//! from accept until its first request reaches the handler; Writing while at least one of its
//! requests is in the handler or its response body is still being sent; otherwise Waiting
//! (idle keepalive, including the time hyper spends reading the next head). nginx counts a fresh
//! connection as Waiting until its first byte arrives; here it is Reading.

use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;

use super::body::{self, Body, BoxError};

/// (upstream name, peer name, its statistics).
type PeerEntry = (Arc<str>, Arc<str>, Arc<PeerStats>);
/// (upstream name, peer address, its statistics): [`Status::peer_at`]'s index.
type PeerByAddr = (Arc<str>, crate::plan::PeerAddr, Arc<PeerStats>);

/// Global connection and request counters (nginx's `stub_status` set).
#[derive(Default)]
pub struct Status {
    accepted: AtomicU64,
    handled: AtomicU64,
    active: AtomicU64,
    requests: AtomicU64,
    reading: AtomicU64,
    writing: AtomicU64,
    /// Target of idle-state bookkeeping (Waiting is derived, see [`Status::snapshot`]).
    idle_sink: AtomicU64,
    peers: Mutex<Vec<PeerEntry>>,
    /// [`Status::peer_at`]'s index by address, so the request path never formats an address.
    by_addr: Mutex<Vec<PeerByAddr>>,
}

/// What a connection is doing, for the Reading/Writing/Waiting gauges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnState {
    /// Reading a request header.
    Reading,
    /// Processing a request or sending its response.
    Writing,
    /// Keepalive, waiting for the next request (nginx's "Waiting").
    Idle,
}

/// A snapshot of the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub active: u64,
    pub accepts: u64,
    pub handled: u64,
    pub requests: u64,
    pub reading: u64,
    pub writing: u64,
    pub waiting: u64,
}

impl Snapshot {
    /// nginx's `stub_status` text for these numbers (note the trailing spaces, as nginx writes them).
    pub fn stub_status(&self) -> String {
        let s = self;
        format!(
            "Active connections: {} \nserver accepts handled requests\n {} {} {} \nReading: {} Writing: {} Waiting: {} \n",
            s.active, s.accepts, s.handled, s.requests, s.reading, s.writing, s.waiting
        )
    }
}

impl Status {
    pub fn new() -> Arc<Status> {
        Arc::new(Status::default())
    }

    /// Counts an accepted connection; it starts in the Reading state, as in nginx.
    pub fn accept(self: &Arc<Self>) -> ConnGuard {
        self.accepted.fetch_add(1, Relaxed);
        self.handled.fetch_add(1, Relaxed);
        self.active.fetch_add(1, Relaxed);
        self.reading.fetch_add(1, Relaxed);
        ConnGuard {
            status: Arc::clone(self),
            state: ConnState::Reading,
        }
    }

    /// Counts one client request.
    pub fn request(&self) {
        self.requests.fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let active = self.active.load(Relaxed);
        let reading = self.reading.load(Relaxed);
        let writing = self.writing.load(Relaxed);
        Snapshot {
            active,
            accepts: self.accepted.load(Relaxed),
            handled: self.handled.load(Relaxed),
            requests: self.requests.load(Relaxed),
            reading,
            writing,
            // As nginx computes it: whatever is neither reading nor writing.
            waiting: active.saturating_sub(reading + writing),
        }
    }

    /// nginx's `stub_status` body, byte for byte.
    pub fn stub_status(&self) -> String {
        self.snapshot().stub_status()
    }

    /// The statistics of one upstream peer, created on first use and kept for the process's life.
    pub fn peer(&self, upstream: &str, peer: &str) -> Arc<PeerStats> {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, _, s)) = peers
            .iter()
            .find(|(u, p, _)| &**u == upstream && &**p == peer)
        {
            return Arc::clone(s);
        }
        let s = Arc::new(PeerStats::default());
        peers.push((upstream.into(), peer.into(), Arc::clone(&s)));
        s
    }

    /// [`Status::peer`] for an address, without formatting it (once per request on the proxy path).
    pub fn peer_at(&self, upstream: &str, addr: &crate::plan::PeerAddr) -> Arc<PeerStats> {
        let mut index = self.by_addr.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, _, s)) = index.iter().find(|(u, a, _)| a == addr && &**u == upstream) {
            return Arc::clone(s);
        }
        let s = self.peer(upstream, &addr.to_string());
        index.push((upstream.into(), addr.clone(), Arc::clone(&s)));
        s
    }

    /// Prometheus text exposition of every counter.
    pub fn prometheus(&self) -> String {
        let s = self.snapshot();
        let mut out = String::with_capacity(2048);
        let mut scalar = |name: &str, kind: &str, help: &str, v: u64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
            );
        };
        scalar(
            "nginx_rs_connections_active",
            "gauge",
            "Open client connections.",
            s.active,
        );
        scalar(
            "nginx_rs_connections_reading",
            "gauge",
            "Connections reading a request header.",
            s.reading,
        );
        scalar(
            "nginx_rs_connections_writing",
            "gauge",
            "Connections processing or answering a request.",
            s.writing,
        );
        scalar(
            "nginx_rs_connections_waiting",
            "gauge",
            "Idle keepalive connections.",
            s.waiting,
        );
        scalar(
            "nginx_rs_connections_accepted_total",
            "counter",
            "Accepted client connections.",
            s.accepts,
        );
        scalar(
            "nginx_rs_connections_handled_total",
            "counter",
            "Handled client connections.",
            s.handled,
        );
        scalar(
            "nginx_rs_http_requests_total",
            "counter",
            "Client requests.",
            s.requests,
        );

        let peers: Vec<_> = self.peers.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if peers.is_empty() {
            return out;
        }
        let labels: Vec<String> = peers
            .iter()
            .map(|(u, p, _)| format!("upstream=\"{}\",peer=\"{}\"", label(u), label(p)))
            .collect();
        let mut family = |name: &str, kind: &str, help: &str, get: &dyn Fn(&PeerStats) -> u64| {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
            for (l, (_, _, st)) in labels.iter().zip(&peers) {
                let _ = writeln!(out, "{name}{{{l}}} {}", get(st));
            }
        };
        family(
            "nginx_rs_upstream_peer_requests_total",
            "counter",
            "Requests sent to the upstream peer.",
            &|p| p.requests.load(Relaxed),
        );
        family(
            "nginx_rs_upstream_peer_failures_total",
            "counter",
            "Failed attempts to the upstream peer (errors, timeouts, failing statuses).",
            &|p| p.failures.load(Relaxed),
        );
        family(
            "nginx_rs_upstream_peer_up",
            "gauge",
            "1 if the last attempt to the peer succeeded, 0 if it failed.",
            &|p| u64::from(p.up.load(Relaxed)),
        );
        let name = "nginx_rs_upstream_peer_response_seconds";
        let _ = write!(
            out,
            "# HELP {name} Time to the complete upstream response.\n# TYPE {name} histogram\n"
        );
        for (l, (_, _, st)) in labels.iter().zip(&peers) {
            let mut cumulative = 0;
            for (i, bound) in BUCKETS_MS.iter().enumerate() {
                cumulative += st.buckets[i].load(Relaxed);
                let _ = writeln!(
                    out,
                    "{name}_bucket{{{l},le=\"{}\"}} {cumulative}",
                    seconds(*bound)
                );
            }
            let count = st.count.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{l},le=\"+Inf\"}} {count}");
            let _ = writeln!(
                out,
                "{name}_sum{{{l}}} {}",
                micros_as_seconds(st.sum_us.load(Relaxed))
            );
            let _ = writeln!(out, "{name}_count{{{l}}} {count}");
        }
        out
    }
}

/// The process's counters (created on first use; never reset).
pub fn global() -> &'static Arc<Status> {
    static GLOBAL: OnceLock<Arc<Status>> = OnceLock::new();
    GLOBAL.get_or_init(Status::new)
}

/// Which page a status location serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    /// `stub_status`: nginx's text.
    Stub,
    /// `metrics`: Prometheus text exposition.
    Metrics,
}

/// The content handler of a `stub_status` / `metrics` location: 200 `text/plain` for GET and HEAD,
/// `None` for other methods (the caller answers 405, as nginx's stub_status handler does).
pub fn response(page: Page, method: &Method) -> Option<Response<Body>> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    let (text, content_type) = match page {
        Page::Stub => (global().stub_status(), "text/plain"),
        Page::Metrics => (
            global().prometheus(),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
    };
    let len = text.len();
    let mut resp = Response::new(if method == Method::HEAD {
        body::empty()
    } else {
        body::full(text.into_bytes())
    });
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    Some(resp)
}

/// The per-connection part: the connection's [`ConnGuard`] and how many of its requests are in
/// progress (HTTP/2 runs several at once).
#[derive(Default)]
pub struct ConnTrack {
    inner: Mutex<Option<Track>>,
}

struct Track {
    guard: ConnGuard,
    /// Requests in progress: announced by the head guard or begun, and not yet finished.
    busy: u32,
    /// Requests the head guard announced whose handler has not begun yet.
    announced: u32,
    /// The sweep ([`super::park`]) during which the connection started waiting for its next
    /// request; `None` while a request is in progress.
    idle_since: Option<u32>,
    /// The connection's task, for the sweeper to wake when it is time to park.
    waker: Option<Waker>,
    /// The sweeper asked the head guard to park at its next chance.
    park: bool,
    /// On the sweeper's list.
    listed: bool,
}

/// What a sweep decided for one listed connection.
pub enum Sweep {
    /// Not waiting long enough yet (or busy): stays listed.
    Keep,
    /// Time to park: wake its task (the guard parks on that wake-up); off the list.
    Park(Option<Waker>),
    /// Closed: off the list.
    Drop,
}

impl ConnTrack {
    pub fn new(guard: ConnGuard) -> ConnTrack {
        ConnTrack {
            inner: Mutex::new(Some(Track {
                guard,
                busy: 0,
                announced: 0,
                idle_since: None,
                waker: None,
                park: false,
                listed: false,
            })),
        }
    }

    /// A request starts: counts it, the connection is Writing until the returned mark is dropped
    /// (with the response body, see [`RequestMark::attach`]).
    pub fn begin(self: &Arc<Self>) -> RequestMark {
        global().request();
        self.with(|t| {
            if t.announced > 0 {
                t.announced -= 1;
            } else {
                t.busy += 1;
            }
            t.guard.set(ConnState::Writing);
        });
        RequestMark {
            track: Arc::clone(self),
        }
    }

    /// The head guard passed a request head on: it is in progress from now on, before hyper
    /// gets to call the handler ([`ConnTrack::begin`]).
    pub fn announce(&self) {
        self.with(|t| {
            t.announced += 1;
            t.busy += 1;
            t.idle_since = None;
            t.park = false;
        });
    }

    /// The head guard waits for the client's next request (`waker` is the connection's task).
    /// True when the connection should park now: no request is in progress and it has waited
    /// since a sweep ago ([`super::park`]); otherwise the waiting is noted for the sweeper.
    pub fn idle_wait(self: &Arc<Self>, waker: &Waker) -> bool {
        let (park, list) = self
            .with(|t| {
                if t.busy != 0 || t.park {
                    return (t.busy == 0, false);
                }
                t.idle_since.get_or_insert_with(super::park::tick);
                if !t.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                    t.waker = Some(waker.clone());
                }
                (false, !std::mem::replace(&mut t.listed, true))
            })
            .unwrap_or_default();
        if list {
            super::park::list(Arc::downgrade(self));
        }
        park
    }

    /// The sweeper's look at a listed connection at sweep `now`.
    pub fn sweep(&self, now: u32) -> Sweep {
        self.with(|t| match t.idle_since {
            Some(since) if t.busy == 0 && now.wrapping_sub(since) >= 2 => {
                t.park = true;
                t.listed = false;
                Sweep::Park(t.waker.take())
            }
            _ => Sweep::Keep,
        })
        .unwrap_or(Sweep::Drop)
    }

    /// The connection leaves its task to sleep outside tokio ([`super::dormant`]): its count in
    /// `active`, which a new `ConnTrack` takes over when it wakes; `None` if it was closed.
    pub fn suspend(&self) -> Option<ConnGuard> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.take().map(|t| t.guard)
    }

    /// The connection is closed: it stops counting as active.
    pub fn close(&self) {
        drop(self.suspend());
    }

    /// `f` on the live connection's state; `None` once it is closed.
    fn with<R>(&self, f: impl FnOnce(&mut Track) -> R) -> Option<R> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.as_mut().map(f)
    }
}

/// One request in progress on a connection; dropping it ends the Writing state when it was the last.
pub struct RequestMark {
    track: Arc<ConnTrack>,
}

impl Drop for RequestMark {
    fn drop(&mut self) {
        self.track.with(|t| {
            t.busy = t.busy.saturating_sub(1);
            if t.busy == 0 {
                t.guard.set(ConnState::Idle);
            }
        });
    }
}

impl RequestMark {
    /// Keep the mark until `resp`'s body has been sent (or dropped).
    pub fn attach(self, resp: Response<Body>) -> Response<Body> {
        let (parts, inner) = resp.into_parts();
        let body = Marked { inner, _mark: self }.boxed_unsync();
        Response::from_parts(parts, body)
    }
}

/// A response body that holds a [`RequestMark`] until it is dropped.
struct Marked {
    inner: Body,
    _mark: RequestMark,
}

impl HttpBody for Marked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Upper bounds of the response-time buckets, in milliseconds.
pub const BUCKETS_MS: [u64; 12] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000];

fn seconds(ms: u64) -> String {
    micros_as_seconds(ms * 1000)
}

/// `1.5`, `0.005`, `10`: shortest decimal of a microsecond count in seconds.
fn micros_as_seconds(us: u64) -> String {
    let whole = us / 1_000_000;
    let frac = us % 1_000_000;
    if frac == 0 {
        return whole.to_string();
    }
    let f = format!("{frac:06}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

/// Prometheus label-value escaping: backslash, double quote and newline.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Counts one connection for as long as it lives; keeps the Reading/Writing gauges right on every path.
pub struct ConnGuard {
    status: Arc<Status>,
    state: ConnState,
}

impl ConnGuard {
    pub fn set(&mut self, state: ConnState) {
        if state == self.state {
            return;
        }
        self.gauge(self.state).fetch_sub(1, Relaxed);
        self.gauge(state).fetch_add(1, Relaxed);
        self.state = state;
    }

    fn gauge(&self, state: ConnState) -> &AtomicU64 {
        match state {
            ConnState::Reading => &self.status.reading,
            ConnState::Writing => &self.status.writing,
            // Waiting is derived; idle connections count only in `active`. A throwaway counter
            // keeps `set` branch-free.
            ConnState::Idle => &self.status.idle_sink,
        }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.set(ConnState::Idle);
        self.status.active.fetch_sub(1, Relaxed);
    }
}

/// Statistics of one upstream peer.
#[derive(Debug)]
pub struct PeerStats {
    pub requests: AtomicU64,
    pub failures: AtomicU64,
    pub up: AtomicBool,
    buckets: [AtomicU64; BUCKETS_MS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Default for PeerStats {
    fn default() -> Self {
        PeerStats {
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            up: AtomicBool::new(true),
            buckets: Default::default(),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }
}

impl PeerStats {
    /// Records one attempt to this peer: whether it failed, and the response time when there was one.
    pub fn record(&self, failed: bool, response_time: Option<Duration>) {
        self.requests.fetch_add(1, Relaxed);
        if failed {
            self.failures.fetch_add(1, Relaxed);
        }
        if let Some(t) = response_time {
            // Observations above the last bound count only in +Inf (count).
            if let Some(i) = BUCKETS_MS
                .iter()
                .position(|&b| t <= Duration::from_millis(b))
            {
                self.buckets[i].fetch_add(1, Relaxed);
            }
            self.count.fetch_add(1, Relaxed);
            self.sum_us.fetch_add(t.as_micros() as u64, Relaxed);
        }
    }

    /// Marks the peer eligible (`true`) or failed/down (`false`).
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Relaxed);
    }
}

// Unit tests only: their unwraps run on fixed inputs, never on config or request input,
// and a panic there is a failed test.
#[cfg(test)]
mod tests {
    use super::*;

    struct CountWakes(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Relaxed);
        }
    }

    #[test]
    fn a_connection_parks_only_after_waiting_a_sweep_and_not_while_busy() {
        let wakes = Arc::new(CountWakes(Default::default()));
        let waker = Waker::from(wakes.clone());
        let track = Arc::new(ConnTrack::new(Status::new().accept()));
        // A request in progress: never parks, never noted.
        track.announce();
        assert!(!track.idle_wait(&waker));
        assert!(matches!(track.sweep(u32::MAX / 2), Sweep::Keep));
        drop(track.begin());
        // Waiting for the next request: noted, parks once a sweep two sweeps later says so.
        assert!(!track.idle_wait(&waker));
        let since = super::super::park::tick();
        let Sweep::Park(Some(w)) = track.sweep(since.wrapping_add(1_000)) else {
            panic!("should park");
        };
        w.wake();
        assert_eq!(wakes.0.load(Relaxed), 1);
        assert!(track.idle_wait(&waker), "the wake-up parks it");
        // The next request clears it.
        track.announce();
        drop(track.begin());
        assert!(!track.idle_wait(&waker));
        // A closed connection leaves the list.
        track.close();
        assert!(matches!(
            track.sweep(since.wrapping_add(2_000)),
            Sweep::Drop
        ));
    }

    #[test]
    fn stub_status_text() {
        let st = Status::new();
        let mut a = st.accept();
        let b = st.accept();
        st.request();
        a.set(ConnState::Writing);
        let c = st.accept();
        drop(c);
        let mut d = st.accept();
        d.set(ConnState::Idle);
        assert_eq!(
            st.stub_status(),
            "Active connections: 3 \nserver accepts handled requests\n 4 4 1 \nReading: 1 Writing: 1 Waiting: 1 \n"
        );
        drop((a, b, d));
        assert_eq!(
            st.snapshot(),
            Snapshot {
                active: 0,
                accepts: 4,
                handled: 4,
                requests: 1,
                reading: 0,
                writing: 0,
                waiting: 0
            }
        );
    }

    #[test]
    fn prometheus_text() {
        let st = Status::new();
        let _c = st.accept();
        st.request();
        let p = st.peer("backend", "127.0.0.1:8081");
        p.record(false, Some(Duration::from_millis(7)));
        p.record(true, None);
        p.set_up(false);
        assert!(Arc::ptr_eq(&p, &st.peer("backend", "127.0.0.1:8081")));
        let addr = crate::plan::PeerAddr::Inet("127.0.0.1:8081".parse().unwrap());
        assert!(Arc::ptr_eq(&p, &st.peer_at("backend", &addr)));
        assert!(Arc::ptr_eq(&p, &st.peer_at("backend", &addr)));
        let text = st.prometheus();
        for line in [
            "# TYPE nginx_rs_connections_active gauge\nnginx_rs_connections_active 1\n",
            "nginx_rs_http_requests_total 1\n",
            "nginx_rs_upstream_peer_requests_total{upstream=\"backend\",peer=\"127.0.0.1:8081\"} 2\n",
            "nginx_rs_upstream_peer_failures_total{upstream=\"backend\",peer=\"127.0.0.1:8081\"} 1\n",
            "nginx_rs_upstream_peer_up{upstream=\"backend\",peer=\"127.0.0.1:8081\"} 0\n",
            "nginx_rs_upstream_peer_response_seconds_bucket{upstream=\"backend\",peer=\"127.0.0.1:8081\",le=\"0.005\"} 0\n",
            "nginx_rs_upstream_peer_response_seconds_bucket{upstream=\"backend\",peer=\"127.0.0.1:8081\",le=\"0.01\"} 1\n",
            "nginx_rs_upstream_peer_response_seconds_bucket{upstream=\"backend\",peer=\"127.0.0.1:8081\",le=\"+Inf\"} 1\n",
            "nginx_rs_upstream_peer_response_seconds_sum{upstream=\"backend\",peer=\"127.0.0.1:8081\"} 0.007\n",
            "nginx_rs_upstream_peer_response_seconds_count{upstream=\"backend\",peer=\"127.0.0.1:8081\"} 1\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn label_escaping() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(micros_as_seconds(1_500_000), "1.5");
        assert_eq!(micros_as_seconds(10_000_000), "10");
    }
}
