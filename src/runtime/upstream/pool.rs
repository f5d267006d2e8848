//! The keepalive pool of one upstream group (nginx's `keepalive` module).
//!
//! Counting: nginx keeps up to N idle connections per group *per worker process*; nginx-rs is one
//! process whose worker threads share one pool, so N is the idle limit for the whole group
//! (equal to nginx with `worker_processes 1`; set N to N × workers to match a multi-worker nginx).
//! Like nginx, the pool is most-recently-used first and drops the least recently used connection
//! when full. `keepalive_requests` and `keepalive_time` are applied when a connection is released;
//! `keepalive_timeout` by a sweeper task that closes idle connections when they expire (and on
//! every checkout); a connection the backend closed (or that has unread bytes) is dropped
//! whenever the pool looks at it, and never handed out.

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
        let mut idle = self.lock();
        self.expire(&mut idle);
        let pos = idle.iter().position(|i| i.conn.addr == *addr)?;
        idle.remove(pos).map(|i| i.conn)
    }

    /// Keeps `conn` for reuse if the limits allow; otherwise it is dropped (closed).
    pub fn put(self: &Arc<Self>, mut conn: UpstreamConn) {
        if !self.enabled()
            || conn.is_closed()
            || (self.requests > 0 && conn.requests >= self.requests)
            || conn.created.elapsed() >= self.time
        {
            return;
        }
        let mut idle = self.lock();
        self.expire(&mut idle);
        idle.push_front(Idle {
            conn,
            since: Instant::now(),
        });
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

    /// Drops connections idle longer than `keepalive_timeout` or already closed by the backend.
    fn expire(&self, idle: &mut VecDeque<Idle>) {
        idle.retain_mut(|i| i.since.elapsed() < self.timeout && !i.conn.is_closed());
    }
}

/// Closes idle connections as their `keepalive_timeout` runs out; ends when the pool is empty or
/// gone (the next `put` starts a new one).
async fn sweep(pool: Weak<Pool>) {
    loop {
        let Some(p) = pool.upgrade() else { return };
        let next = {
            let mut idle = p.lock();
            p.expire(&mut idle);
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
