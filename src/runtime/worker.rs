//! Which worker thread the current code runs on: nginx's worker process number, for the state
//! nginx keeps per worker process (the upstream keepalive pools).
//!
//! `control::daemon` starts `worker_processes` threads, each with its own runtime that never
//! moves a task to another thread, and numbers them here. Any other thread (the main runtime, a
//! test's runtime, `runtime::run`'s work-stealing pool) counts as worker 0 of 1.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// How many workers there are; fixed before the first one starts.
static COUNT: AtomicUsize = AtomicUsize::new(1);

/// Records that `n` workers are about to start (before any per-worker state is sized).
pub fn set_count(n: usize) {
    COUNT.store(n.max(1), Ordering::Relaxed);
}

/// The number of workers (1 unless [`set_count`] said otherwise).
pub fn count() -> usize {
    COUNT.load(Ordering::Relaxed)
}

/// Marks the calling thread as worker `i` (from the worker runtime's `on_thread_start`).
pub fn enter(i: usize) {
    INDEX.with(|c| c.set(i));
}

/// The calling thread's worker number, below [`count`] unless the count changed since.
pub fn index() -> usize {
    INDEX.with(Cell::get)
}
