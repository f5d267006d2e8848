//! When an idle keepalive connection parks (drops its HTTP state until the client's next request:
//! on nginx-rs's own HTTP/1 server its task ends and its socket goes to a [`super::dormant`] set;
//! on hyper's, see [`super::guard::Guard::parking`]).
//!
//! Parking the moment a response is done would cost a busy connection a new hyper connection per
//! request (measured: about 2.6 us of CPU per request, 15% of the throughput at 64 and 512
//! connections). So a connection parks only after it has waited for its next request for one to
//! two sweeps: the head guard notes when it starts waiting ([`ConnTrack::idle_wait`]) and a
//! sweeper thread, every [`SWEEP`], wakes the connections that have waited since the sweep before
//! the last one, which then park on that wake-up. A busy connection pays an uncontended lock and
//! a counter read per request; only connections that waited are listed, so a sweep costs in
//! proportion to them. After many connections parked, the sweeper gives the freed buffers back
//! to the kernel (`malloc_trim`).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock, Weak};
use std::time::Duration;

use super::status::ConnTrack;

/// How often the sweeper runs: connections park after 10 to 20 ms without a request.
///
/// Short, because while a connection waits to park it keeps its request buffers, and in a burst
/// of new connections those end up between the connections' long-lived allocations, where malloc
/// cannot give them back once freed. `VARIANT=idle` (10,000 connections that each made one
/// request): 2,722 bytes per idle connection with 50 ms sweeps, 2,175 with 10 ms, 2,116 with
/// 5 ms; requests per CPU-second under load the same (no-churn variant, 3 pairs, 64 and 512
/// connections: 66,184 / 55,069 with 50 ms, 66,223 / 55,452 with 10 ms).
pub const SWEEP: Duration = Duration::from_millis(10);

/// Sweeps so far.
static TICK: AtomicU32 = AtomicU32::new(0);

/// Connections that were seen waiting for a next request and have not parked since.
static LISTED: Mutex<Vec<Weak<ConnTrack>>> = Mutex::new(Vec::new());

/// Connections that parked, since the process started.
static PARKED: AtomicU64 = AtomicU64::new(0);

/// Counts one connection that parked (its HTTP state dropped, the socket kept).
pub fn note_parked() {
    PARKED.fetch_add(1, Ordering::Relaxed);
}

/// How many times a connection parked since the process started (diagnostics and tests).
pub fn parked_total() -> u64 {
    PARKED.load(Ordering::Relaxed)
}

/// The current sweep number.
pub fn tick() -> u32 {
    TICK.load(Ordering::Relaxed)
}

/// Puts a waiting connection on the sweeper's list (starting the sweeper on first use).
pub fn list(track: Weak<ConnTrack>) {
    static SWEEPER: OnceLock<()> = OnceLock::new();
    SWEEPER.get_or_init(|| {
        // Without the thread nothing parks, which only costs memory.
        let _ = std::thread::Builder::new()
            .name("nginx-rs-park".into())
            .spawn(sweeper);
    });
    let mut listed = LISTED.lock().unwrap_or_else(|p| p.into_inner());
    listed.push(track);
    if listed.len() == 1 {
        // The sweeper may be waiting for work.
        LISTED_NOT_EMPTY.notify_one();
    }
}

/// Signalled when the list stops being empty: with nothing listed and no trim due, the sweeper
/// waits on it instead of waking every sweep (an idle server has no periodic wake-ups).
static LISTED_NOT_EMPTY: Condvar = Condvar::new();

fn sweeper() {
    let mut keep = Vec::new();
    let mut wake = Vec::new();
    let mut parked_since_trim = 0;
    let mut last_trim = 0u32;
    loop {
        if parked_since_trim < TRIM_AFTER {
            let mut listed = LISTED.lock().unwrap_or_else(|p| p.into_inner());
            while listed.is_empty() {
                listed = LISTED_NOT_EMPTY
                    .wait(listed)
                    .unwrap_or_else(|p| p.into_inner());
            }
        }
        std::thread::sleep(SWEEP);
        let now = TICK.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        // Swept outside the lock, so that listing never waits for a sweep.
        let listed = std::mem::take(&mut *LISTED.lock().unwrap_or_else(|p| p.into_inner()));
        for weak in listed {
            let Some(track) = weak.upgrade() else {
                continue; // closed
            };
            match track.sweep(now) {
                super::status::Sweep::Keep => keep.push(weak),
                super::status::Sweep::Park(waker) => wake.extend(waker),
                super::status::Sweep::Drop => {}
            }
        }
        LISTED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .append(&mut keep);
        parked_since_trim += wake.len();
        for w in wake.drain(..) {
            w.wake();
        }
        if parked_since_trim >= TRIM_AFTER && now.wrapping_sub(last_trim) >= TRIM_EVERY {
            parked_since_trim = 0;
            last_trim = now;
            give_back_freed_memory();
        }
    }
}

/// Parked connections since the last trim that make the next one worthwhile.
const TRIM_AFTER: usize = 256;
/// At most one trim in this many sweeps (1 s).
const TRIM_EVERY: u32 = (1000 / SWEEP.as_millis()) as u32;

/// A parked connection frees its request buffers (the own HTTP/1 server's busy future and head
/// buffer, or hyper's connection), but glibc's malloc keeps freed memory between live
/// allocations for reuse instead of returning it: after a burst of connections went idle, the
/// process would stay at its peak. `malloc_trim` returns the free pages to the kernel.
fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}
