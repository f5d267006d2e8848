//! The error log: `error_log FILE|stderr [LEVEL]`, lines in nginx's format, nginx's level filter.
//!
//! ```text
//! 2026/11/27 04:54:37 [error] 1234#5: *17 connect() failed (111: Connection refused) while connecting
//! to upstream, client: 127.0.0.1, server: localhost, request: "GET / HTTP/1.1", upstream:
//! "http://127.0.0.1:9/", host: "localhost:8080"
//! ```
//! (one line). `pid#tid` is the process id and the OS thread id; `*N` the connection number when the
//! message is about a connection. A sink at level L records messages of severity L and more severe
//! (`error_log x warn` gets `emerg`..`warn`). Writes are synchronous and whole-line (one `write(2)` on
//! an `O_APPEND` file), as nginx's are: error lines are rare and must not be lost in a crash.
//!
//! [`ErrorLog`] is the main-level log (and the process's own lines). A request's lines go to the
//! `error_log`s of the configuration that handled it (http, server or location level, inherited):
//! [`log_level`], with files opened once per path ([`open_level_logs`], [`reopen_level_logs`]).

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;

use crate::conf::Level;
use crate::plan::ErrorLog as ErrorLogConf;

use super::time::LocalTime;
use super::writer::{open_log_file, OpenError};

/// nginx truncates an error line at 2048 bytes (NGX_MAX_ERROR_STR); so do we.
pub const MAX_LINE: usize = 2048;

/// The request a message is about, for the `, client: ..., server: ...` tail nginx appends.
#[derive(Clone, Debug, Default)]
pub struct RequestInfo<'a> {
    /// The client address text (`$remote_addr`).
    pub client: Option<&'a str>,
    /// The first `server_name` of the server handling the request.
    pub server: Option<&'a str>,
    /// The request line as received, e.g. `GET / HTTP/1.1`.
    pub request: Option<&'a [u8]>,
    /// `http://127.0.0.1:8081/path`: scheme, peer name, upstream URI.
    pub upstream: Option<&'a str>,
    pub host: Option<&'a [u8]>,
    pub referrer: Option<&'a [u8]>,
}

/// One whole error-log line (newline included), without I/O.
pub fn format_line(
    when: LocalTime,
    level: Level,
    pid: u32,
    tid: u64,
    conn: Option<u64>,
    message: &str,
    req: Option<&RequestInfo<'_>>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let _ = write!(
        out,
        "{} [{}] {}#{}: ",
        when.error_log(),
        level.as_str(),
        pid,
        tid
    );
    if let Some(c) = conn {
        let _ = write!(out, "*{c} ");
    }
    out.extend_from_slice(message.as_bytes());
    if let Some(r) = req {
        if let Some(c) = r.client {
            let _ = write!(out, ", client: {c}");
        }
        if let Some(s) = r.server {
            let _ = write!(out, ", server: {s}");
        }
        if let Some(q) = r.request.filter(|q| !q.is_empty()) {
            quoted(&mut out, ", request: ", q);
        }
        if let Some(u) = r.upstream {
            quoted(&mut out, ", upstream: ", u.as_bytes());
        }
        if let Some(h) = r.host {
            quoted(&mut out, ", host: ", h);
        }
        if let Some(h) = r.referrer {
            quoted(&mut out, ", referrer: ", h);
        }
    }
    out.truncate(MAX_LINE - 1);
    out.push(b'\n');
    out
}

fn quoted(out: &mut Vec<u8>, label: &str, value: &[u8]) {
    out.extend_from_slice(label.as_bytes());
    out.push(b'"');
    out.extend_from_slice(value);
    out.push(b'"');
}

/// The calling OS thread's id (nginx's `tid`).
pub fn thread_id() -> u64 {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::gettid() as u64 }
}

enum Target {
    Stderr,
    File { path: PathBuf, file: ArcSwap<File> },
}

/// One `error_log` destination with its level.
pub struct ErrorSink {
    target: Target,
    level: Level,
}

impl ErrorSink {
    pub fn stderr(level: Level) -> ErrorSink {
        ErrorSink {
            target: Target::Stderr,
            level,
        }
    }

    pub fn file(path: &Path, level: Level) -> Result<ErrorSink, OpenError> {
        let file = open_log_file(path).map_err(|error| OpenError {
            path: path.to_path_buf(),
            error,
        })?;
        Ok(ErrorSink {
            target: Target::File {
                path: path.to_path_buf(),
                file: ArcSwap::from_pointee(file),
            },
            level,
        })
    }

    pub fn level(&self) -> Level {
        self.level
    }

    fn write(&self, line: &[u8]) {
        // A failed error-log write has nowhere better to be reported; nginx ignores it too.
        let _ = match &self.target {
            Target::Stderr => io::stderr().lock().write_all(line),
            Target::File { file, .. } => (&*file.load_full()).write_all(line),
        };
    }

    fn reopen(&self) -> Result<(), OpenError> {
        if let Target::File { path, file } = &self.target {
            let new = open_log_file(path).map_err(|error| OpenError {
                path: path.clone(),
                error,
            })?;
            file.store(Arc::new(new));
        }
        Ok(())
    }
}

/// Every `error_log` of one level of the configuration (main, or a server/location's own).
#[derive(Default)]
pub struct ErrorLog {
    sinks: Vec<ErrorSink>,
}

impl ErrorLog {
    pub fn new(sinks: Vec<ErrorSink>) -> ErrorLog {
        ErrorLog { sinks }
    }

    /// The log before (or without) a configuration: stderr at `notice`, nginx's default level.
    pub fn stderr() -> ErrorLog {
        ErrorLog::new(vec![ErrorSink::stderr(Level::Notice)])
    }

    /// Opens the files of `error_log` directives (compiled by `plan`). Empty = stderr.
    pub fn open(confs: &[ErrorLogConf]) -> Result<ErrorLog, OpenError> {
        if confs.is_empty() {
            return Ok(ErrorLog::stderr());
        }
        let mut sinks = Vec::with_capacity(confs.len());
        for c in confs {
            sinks.push(match &c.path {
                None => ErrorSink::stderr(c.level),
                Some(p) => ErrorSink::file(p, c.level)?,
            });
        }
        Ok(ErrorLog { sinks })
    }

    /// True when some sink would record a message of `level` (skip building costly messages).
    pub fn enabled(&self, level: Level) -> bool {
        self.sinks.iter().any(|s| level <= s.level)
    }

    /// Records `message` in every sink whose level admits it.
    pub fn log(
        &self,
        level: Level,
        conn: Option<u64>,
        message: &str,
        req: Option<&RequestInfo<'_>>,
    ) {
        if !self.enabled(level) {
            return;
        }
        let line = format_line(
            LocalTime::from_system(SystemTime::now()),
            level,
            std::process::id(),
            thread_id(),
            conn,
            message,
            req,
        );
        for s in self.sinks.iter().filter(|s| level <= s.level) {
            s.write(&line);
        }
    }

    /// Reopens every file sink (SIGUSR1); failures leave that sink on its old file.
    pub fn reopen(&self) -> Vec<OpenError> {
        self.sinks.iter().filter_map(|s| s.reopen().err()).collect()
    }
}

/// The `error_log`s of http, server and location levels. nginx writes a request's error lines to
/// the error log of the configuration handling it (inherited location <- server <- http), and
/// only falls back to the main one when none of those levels has its own.
///
/// Files are opened once per path for the whole process and shared by every configuration that
/// names them (as nginx shares open files across its configuration); [`open_level_logs`] opens
/// them when a configuration is loaded (so a path that cannot be opened fails the start or the
/// reload), [`log_level`] writes, [`reopen_level_logs`] reopens them on SIGUSR1.
static LEVEL_FILES: std::sync::Mutex<Vec<(PathBuf, Arc<ArcSwap<File>>)>> =
    std::sync::Mutex::new(Vec::new());

fn level_file(path: &Path) -> Result<Arc<ArcSwap<File>>, OpenError> {
    let mut files = LEVEL_FILES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, f)) = files.iter().find(|(p, _)| p == path) {
        return Ok(f.clone());
    }
    let f = open_log_file(path).map_err(|error| OpenError {
        path: path.to_path_buf(),
        error,
    })?;
    let f = Arc::new(ArcSwap::from_pointee(f));
    files.push((path.to_path_buf(), f.clone()));
    Ok(f)
}

/// Opens every file of `confs` (a server's or location's `error_log` list) not open yet.
pub fn open_level_logs(confs: &[ErrorLogConf]) -> Result<(), OpenError> {
    for c in confs {
        if let Some(p) = &c.path {
            level_file(p)?;
        }
    }
    Ok(())
}

/// Writes `message` to the `error_log`s of a request's configuration (`confs`, non-empty)
/// whose level admits it. Returns false when `confs` is empty: the caller logs to the main log.
pub fn log_level(confs: &[ErrorLogConf], level: Level, conn: Option<u64>, message: &str) -> bool {
    if confs.is_empty() {
        return false;
    }
    if !confs.iter().any(|c| level <= c.level) {
        return true;
    }
    let line = format_line(
        LocalTime::from_system(SystemTime::now()),
        level,
        std::process::id(),
        thread_id(),
        conn,
        message,
        None,
    );
    for c in confs.iter().filter(|c| level <= c.level) {
        // A failed error-log write has nowhere better to be reported; nginx ignores it too.
        let _ = match &c.path {
            None => io::stderr().lock().write_all(&line),
            Some(p) => match level_file(p) {
                Ok(f) => (&*f.load_full()).write_all(&line),
                Err(_) => Ok(()),
            },
        };
    }
    true
}

/// Reopens every server/location-level error log (SIGUSR1).
pub fn reopen_level_logs() -> Vec<OpenError> {
    let files = LEVEL_FILES.lock().unwrap_or_else(|p| p.into_inner());
    let mut failed = Vec::new();
    for (p, f) in files.iter() {
        match open_log_file(p) {
            Ok(new) => f.store(Arc::new(new)),
            Err(error) => failed.push(OpenError {
                path: p.clone(),
                error,
            }),
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::log::time::utc;

    #[test]
    fn nginx_line_shape() {
        let req = RequestInfo {
            client: Some("127.0.0.1"),
            server: Some("localhost"),
            request: Some(b"GET /x HTTP/1.1"),
            upstream: Some("http://127.0.0.1:9/x"),
            host: Some(b"localhost:8080"),
            referrer: None,
        };
        let line = format_line(
            utc(1_795_755_277),
            Level::Error,
            1234,
            5,
            Some(17),
            "connect() failed (111: Connection refused) while connecting to upstream",
            Some(&req),
        );
        assert_eq!(
            String::from_utf8_lossy(&line),
            "2026/11/27 04:54:37 [error] 1234#5: *17 connect() failed (111: Connection refused) while \
             connecting to upstream, client: 127.0.0.1, server: localhost, request: \"GET /x HTTP/1.1\", \
             upstream: \"http://127.0.0.1:9/x\", host: \"localhost:8080\"\n"
        );
    }

    #[test]
    fn no_connection_no_context() {
        let line = format_line(
            utc(0),
            Level::Notice,
            7,
            7,
            None,
            "signal process started",
            None,
        );
        assert_eq!(
            line,
            b"1970/01/01 00:00:00 [notice] 7#7: signal process started\n"
        );
    }

    #[test]
    fn level_filter_is_nginx_order() {
        let log = ErrorLog::new(vec![ErrorSink::stderr(Level::Warn)]);
        assert!(log.enabled(Level::Emerg));
        assert!(log.enabled(Level::Error));
        assert!(log.enabled(Level::Warn));
        assert!(!log.enabled(Level::Notice));
        assert!(!log.enabled(Level::Debug));
    }

    #[test]
    fn reopen_after_rename_creates_a_new_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("error.log");
        let log = ErrorLog::new(vec![ErrorSink::file(&p, Level::Error).expect("open")]);
        log.log(Level::Error, None, "first", None);
        std::fs::rename(&p, dir.path().join("error.log.1")).expect("rename");
        log.log(Level::Error, None, "still old", None);
        assert!(log.reopen().is_empty());
        log.log(Level::Error, None, "second", None);
        let old = std::fs::read_to_string(dir.path().join("error.log.1")).expect("old");
        let new = std::fs::read_to_string(&p).expect("new");
        assert!(
            old.contains(": first\n") && old.contains(": still old\n"),
            "{old}"
        );
        assert_eq!(new.lines().count(), 1);
        assert!(new.ends_with(": second\n"), "{new}");
    }
}
