//! The keepalive pool of one upstream group (nginx's `keepalive` module).
//!
//! Counting: nginx keeps up to N idle connections per group *per worker process*; nginx-rs is one
//! process whose worker threads share one pool, so N is the idle limit for the whole group
//! (equal to nginx with `worker_processes 1`; set N to N × workers to match a multi-worker nginx).
//! Like nginx, the pool is most-recently-used first and drops the least recently used connection
//! when full. `keepalive_requests` and `keepalive_time` are applied when a connection is released;
//! `keepalive_timeout` by a sweeper task that closes idle connections when they expire (and on
//! every put and checkout, from the cold end only: the list is in release order, so the expired
//! ones are all at the back). A connection the backend closed (or that has unread bytes) is
//! never handed out: a checkout drops the closed ones of its peer it walks past, the sweeper
//! all of them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::connect::UpstreamConn;
use crate::plan::{PeerAddr, Upstream};

struct Idle {
    conn: UpstreamConn,
    since: Instant,
}

pub(crate) struct Pool {
    /// `keepalive N`; `None` or 0 = no pool (every connection is closed after its response).
    max: usize,
    requests: u64,
    timeout: Duration,
    time: Duration,
    idle: Mutex<VecDeque<Idle>>,
    /// A sweeper task is running (at most one per pool).
    sweeping: AtomicBool,
}

impl Pool {
    pub fn new(up: &Upstream) -> Pool {
        Pool {
            max: up.keepalive.unwrap_or(0),
            requests: up.keepalive_requests,
            timeout: up.keepalive_timeout,
            time: up.keepalive_time,
            idle: Mutex::new(VecDeque::new()),
            sweeping: AtomicBool::new(false),
        }
    }

    pub fn enabled(&self) -> bool {
        self.max > 0
    }

    /// Idle connections held right now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Idle>> {
        // A panic while holding this lock cannot leave the queue inconsistent.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently used idle connection to `addr` that is still open.
    pub fn take(&self, addr: &PeerAddr) -> Option<UpstreamConn> {
        if !self.enabled() {
            return None;
        }
        let now = Instant::now();
        let mut idle = self.lock();
        self.expire(&mut idle, now);
        // Newest first, by address before the closed check: that probe is a readiness poll
        // through the stream's vtable, and with several peers most of the connections passed
        // are another peer's. A closed one of this peer is dropped on the way.
        let mut pos = 0;
        while pos < idle.len() {
            if idle[pos].conn.addr != *addr {
                pos += 1;
            } else if idle[pos].conn.is_closed() {
                idle.remove(pos);
            } else {
                return idle.remove(pos).map(|i| i.conn);
            }
        }
        None
    }

    /// Keeps `conn` for reuse if the limits allow; otherwise it is dropped (closed).
    pub fn put(self: &Arc<Self>, mut conn: UpstreamConn) {
        if !self.enabled() || (self.requests > 0 && conn.requests >= self.requests) {
            return;
        }
        // One clock read per put: `Instant::now()` is a vDSO call, and this runs per request.
        let now = Instant::now();
        if now.saturating_duration_since(conn.created) >= self.time || conn.is_closed() {
            return;
        }
        let mut idle = self.lock();
        self.expire(&mut idle, now);
        idle.push_front(Idle { conn, since: now });
        idle.truncate(self.max);
        drop(idle);
        self.start_sweeper();
    }

    fn start_sweeper(self: &Arc<Self>) {
        if self.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(sweep(Arc::downgrade(self)));
            }
            // Outside a runtime, expiry still happens lazily on the next put/take.
            Err(_) => self.sweeping.store(false, Ordering::Release),
        }
    }

    /// Drops connections idle for `keepalive_timeout` at `now`: only from the back, where the
    /// oldest are (entries are pushed at the front as they are released).
    fn expire(&self, idle: &mut VecDeque<Idle>, now: Instant) {
        while idle
            .back()
            .is_some_and(|i| now.saturating_duration_since(i.since) >= self.timeout)
        {
            idle.pop_back();
        }
    }

    /// [`Pool::expire`], and drops every connection the backend closed (the sweeper's pass).
    fn expire_all(&self, idle: &mut VecDeque<Idle>, now: Instant) {
        self.expire(idle, now);
        idle.retain_mut(|i| !i.conn.is_closed());
    }
}

/// Closes idle connections as their `keepalive_timeout` runs out; ends when the pool is empty or
/// gone (the next `put` starts a new one).
async fn sweep(pool: Weak<Pool>) {
    loop {
        let Some(p) = pool.upgrade() else { return };
        let next = {
            let mut idle = p.lock();
            p.expire_all(&mut idle, Instant::now());
            // Newest first: the back is the oldest, the first to expire.
            idle.back().map(|i| i.since + p.timeout)
        };
        match next {
            Some(at) => {
                drop(p);
                tokio::time::sleep_until(at.into()).await;
            }
            None => {
                p.sweeping.store(false, Ordering::Release);
                // A put that raced with this exit saw `sweeping` set and started nothing.
                if p.len() == 0 || p.sweeping.swap(true, Ordering::AcqRel) {
                    return;
                }
            }
        }
    }
}
