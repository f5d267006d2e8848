//! The keepalive pool of one upstream group (nginx's `keepalive` module).
//!
//! Counting: as nginx keeps up to N idle connections per group *per worker process*, the pool is
//! one shard per worker thread ([`crate::runtime::worker`]), each holding up to N. A connection
//! goes back to the shard of the worker that used it and is only handed out there again: its
//! socket is registered with that worker's event loop, and a request on another worker would be
//! woken across threads on every read (with 2 workers sharing one list, most checkouts were).
//! Like nginx, a shard is most-recently-used first and drops the least recently used connection
//! when full. `keepalive_requests` and `keepalive_time` are applied when a connection is released;
//! `keepalive_timeout` by a sweeper task per shard that closes idle connections when they expire
//! (and on every put, from the cold end only: the list is in release order, so the expired ones
//! are all at the back). A checkout reads no clock: it may hand out a connection whose timeout
//! ran out within the last tick of the sweeper's timer, as nginx may in the same millisecond.
//! A connection the backend closed (or that has unread bytes) is never handed out: a checkout
//! drops the closed ones of its peer it walks past, the sweeper all of them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::connect::UpstreamConn;
use crate::plan::{PeerAddr, Upstream};
use crate::runtime::worker;

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
    /// One per worker thread, indexed by [`worker::index`].
    shards: Box<[Shard]>,
}

#[derive(Default)]
struct Shard {
    idle: Mutex<VecDeque<Idle>>,
    /// A sweeper task is running (at most one per shard, on the shard's worker).
    sweeping: AtomicBool,
}

impl Shard {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Idle>> {
        // A panic while holding this lock cannot leave the queue inconsistent. Only the shard's
        // own worker locks it on the request path (the sum in `Pool::len` is for status pages).
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Pool {
    pub fn new(up: &Upstream) -> Pool {
        Pool {
            max: up.keepalive.unwrap_or(0),
            requests: up.keepalive_requests,
            timeout: up.keepalive_timeout,
            time: up.keepalive_time,
            shards: (0..worker::count()).map(|_| Shard::default()).collect(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.max > 0
    }

    /// Idle connections held right now, by all workers.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// The calling worker's shard and its index.
    fn shard(&self) -> (usize, &Shard) {
        let i = worker::index() % self.shards.len();
        (i, &self.shards[i])
    }

    /// The most recently used idle connection to `addr` that is still open.
    pub fn take(&self, addr: &PeerAddr) -> Option<UpstreamConn> {
        if !self.enabled() {
            return None;
        }
        // No clock read and no expiry here: the sweeper closes connections as their
        // `keepalive_timeout` runs out, and `put` expires from the cold end too.
        let mut idle = self.shard().1.lock();
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
        let (i, shard) = self.shard();
        let mut idle = shard.lock();
        self.expire(&mut idle, now);
        idle.push_front(Idle { conn, since: now });
        idle.truncate(self.max);
        drop(idle);
        self.start_sweeper(i);
    }

    /// Starts the sweeper of shard `i` on the current runtime (shard `i`'s worker) unless it runs.
    fn start_sweeper(self: &Arc<Self>, i: usize) {
        let shard = &self.shards[i];
        if shard.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(sweep(Arc::downgrade(self), i));
            }
            // Outside a runtime, expiry still happens lazily on the next put/take.
            Err(_) => shard.sweeping.store(false, Ordering::Release),
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

/// Closes the idle connections of shard `i` as their `keepalive_timeout` runs out; ends when the
/// shard is empty or the pool gone (the next `put` starts a new one).
async fn sweep(pool: Weak<Pool>, i: usize) {
    loop {
        let Some(p) = pool.upgrade() else { return };
        let shard = &p.shards[i];
        let next = {
            let mut idle = shard.lock();
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
                shard.sweeping.store(false, Ordering::Release);
                // A put that raced with this exit saw `sweeping` set and started nothing.
                if shard.lock().is_empty() || shard.sweeping.swap(true, Ordering::AcqRel) {
                    return;
                }
            }
        }
    }
}
