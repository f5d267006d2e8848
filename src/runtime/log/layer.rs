//! A `tracing` Layer that writes the runtime's events to the error log in nginx's format.
//!
//! The runtime logs with `tracing` (`tracing::error!(target: "nginx_rs::error_log", conn = 17, "...")`);
//! this layer turns each event into an error-log line: tracing's level becomes nginx's
//! (ERROR → error, WARN → warn, INFO → info, DEBUG/TRACE → debug), a `level = "crit"` field overrides
//! it (for nginx levels tracing lacks: emerg, alert, crit, notice), and a `conn` field becomes `*N`.
//! The destination is an `ArcSwap<ErrorLog>` so that a reload can replace it.
//!
//! Events of nginx-rs's other targets (`nginx_rs::*`) are recorded too when `all_targets` is set
//! (e.g. `accept() failed`). Spans, and other crates' events, are turned off at their call sites.

use std::fmt::Write as _;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use crate::conf::Level;

use super::ErrorLog;

/// Target the runtime uses for lines meant for the error log.
pub const TARGET: &str = "nginx_rs::error_log";

pub struct ErrorLogLayer {
    log: Arc<ArcSwap<ErrorLog>>,
    all_targets: bool,
}

impl ErrorLogLayer {
    /// `all_targets`: also record events of other `nginx_rs` targets (not only [`TARGET`]).
    pub fn new(log: Arc<ArcSwap<ErrorLog>>, all_targets: bool) -> ErrorLogLayer {
        ErrorLogLayer { log, all_targets }
    }

    /// Only events of nginx-rs's own targets become lines; spans never do.
    fn wants(&self, meta: &Metadata<'_>) -> bool {
        meta.is_event()
            && (meta.target() == TARGET
                || (self.all_targets && meta.target().starts_with("nginx_rs")))
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    conn: Option<u64>,
    level: Option<Level>,
}

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "conn" => self.conn = Some(value),
            _ => self.record_debug(field, &value),
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        match field.name() {
            "conn" => self.conn = u64::try_from(value).ok(),
            _ => self.record_debug(field, &value),
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "level" => self.level = Level::parse(value),
            "message" => self.message.push_str(value),
            other => {
                let _ = write!(self.message, ", {other}: {value}");
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            other => {
                let _ = write!(self.message, ", {other}: {value:?}");
            }
        }
    }
}

fn nginx_level(l: &tracing::Level) -> Level {
    match *l {
        tracing::Level::ERROR => Level::Error,
        tracing::Level::WARN => Level::Warn,
        tracing::Level::INFO => Level::Info,
        _ => Level::Debug,
    }
}

impl<S: Subscriber> Layer<S> for ErrorLogLayer {
    /// Everything else is off at its call site. Without this the registry below built every
    /// span the dependencies open (h2 opens several per frame): ~24,000 instructions per HTTP/2
    /// request, a fifth of the request's cost, for spans nothing reads.
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if self.wants(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        self.wants(meta)
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if !self.wants(event.metadata()) {
            return;
        }
        let meta = event.metadata();
        let log = self.log.load();
        let level = nginx_level(meta.level());
        // Skip formatting when no sink wants the level (unless a `level` field may override it).
        if !log.enabled(level) && meta.fields().field("level").is_none() {
            return;
        }
        let mut f = Fields::default();
        event.record(&mut f);
        let level = f.level.unwrap_or(level);
        log.log(level, f.conn, &f.message, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::log::ErrorSink;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn spans_and_other_targets_are_off_at_their_call_sites() {
        let log = ErrorLog::new(Vec::new());
        let sub = tracing_subscriber::registry().with(ErrorLogLayer::new(
            Arc::new(ArcSwap::from_pointee(log)),
            true,
        ));
        tracing::subscriber::with_default(sub, || {
            // A dependency's span (h2 opens these per frame) is never built.
            assert!(tracing::error_span!(target: "h2::codec", "poll").is_disabled());
            assert!(tracing::error_span!(target: "nginx_rs::error_log", "ours").is_disabled());
            assert!(
                !tracing::enabled!(kind: tracing::metadata::Kind::EVENT, target: "hyper::proto", tracing::Level::ERROR)
            );
            assert!(
                tracing::enabled!(kind: tracing::metadata::Kind::EVENT, target: "nginx_rs::error_log", tracing::Level::DEBUG)
            );
            assert!(
                tracing::enabled!(kind: tracing::metadata::Kind::EVENT, target: "nginx_rs::runtime", tracing::Level::ERROR)
            );
        });
    }

    #[test]
    fn events_become_nginx_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("error.log");
        let log = ErrorLog::new(vec![ErrorSink::file(&p, Level::Warn).expect("open")]);
        let shared = Arc::new(ArcSwap::from_pointee(log));
        let sub = tracing_subscriber::registry().with(ErrorLogLayer::new(shared, false));
        tracing::subscriber::with_default(sub, || {
            tracing::error!(target: "nginx_rs::error_log", conn = 17u64, "upstream timed out, client: 127.0.0.1");
            tracing::info!(target: "nginx_rs::error_log", "below the level");
            tracing::info!(target: "nginx_rs::error_log", level = "crit", "overridden");
            tracing::error!(target: "other", "not ours");
        });
        let text = std::fs::read_to_string(&p).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let pid = std::process::id();
        assert!(
            lines[0].ends_with(": *17 upstream timed out, client: 127.0.0.1"),
            "{}",
            lines[0]
        );
        assert!(
            lines[0].contains(&format!(" [error] {pid}#")),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].contains(" [crit] ") && lines[1].ends_with(": overridden"),
            "{}",
            lines[1]
        );
    }
}
