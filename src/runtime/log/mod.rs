//! Access and error logs, written the way nginx writes them.
//!
//! # API for the runtime
//! - One [`LogWriter`] per process (keep it in an `Arc` across reloads). [`LogWriter::open`] at
//!   config load returns a [`LogFile`] handle; [`LogWriter::reopen`] on SIGUSR1; dropping it
//!   flushes. Unbuffered files are written by the serving threads in per-thread batches
//!   ([`batch`]; the serving runtimes call [`batch::flush_thread`] before a worker parks);
//!   `buffer=`/`flush=` files by the writer's background thread.
//! - Per `access_log` directive, an [`AccessSink`] ([`access::open_all`] for a location's list). When a
//!   request finishes, call [`AccessSink::log`] with a [`VarSource`] giving the request's variable values
//!   (`None` = not found, which the default format writes as `-`). Formatting happens on the calling
//!   task (microseconds); the write happens when the worker goes idle or on the writer thread, never
//!   while the request waits.
//! - The runtime's `RequestCtx` implements [`VarSource`]; [`hook::request_logger`] builds the
//!   per-request hook (`Live::with_request_done`) that writes every location's access logs.
//! - [`format::combined`] is nginx's predefined `combined` format; [`format::render_line`] formats one line.
//! - [`ErrorLog`] ([`ErrorLog::open`] from `plan`'s `error_log` list; [`ErrorLog::stderr`] before a
//!   config is read): [`ErrorLog::log`]`(level, connection number, message, request info)` writes
//!   `2026/11/27 04:54:37 [error] 1234#5: *17 MESSAGE, client: ..., server: ..., request: "...",
//!   upstream: "...", host: "..."`; [`errorlog::format_line`] is the pure formatter.
//! - [`time::LocalTime`] gives `$time_local`, `$time_iso8601` and the error-log stamp.
//! - [`layer::ErrorLogLayer`]: a `tracing` Layer routing the runtime's `nginx_rs::error_log` events to
//!   an `ArcSwap<ErrorLog>` (swap it on reload).
//! - [`escape`] has nginx's `escape=default|json|none` functions.

pub mod access;
pub mod batch;
pub mod errorlog;
pub mod escape;
pub mod format;
pub mod hook;
pub mod layer;
pub mod time;
pub mod writer;

pub use access::AccessSink;
pub use errorlog::{ErrorLog, ErrorSink, RequestInfo};
pub use format::{combined, render_line, VarSource};
pub use time::LocalTime;
pub use writer::{LogFile, LogWriter, OpenError};
