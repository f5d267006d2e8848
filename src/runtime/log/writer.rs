//! The access-log writer. Unbuffered files (no `buffer=`, the usual case) are written by the
//! serving threads themselves, in batches ([`super::batch`]). Files with `buffer=`/`flush=` are
//! owned by one background thread: request handlers hand it finished lines over an unbounded
//! channel, so logging never waits on the disk.
//!
//! Per buffered file the thread keeps nginx's `buffer=SIZE` (write when the buffer would overflow)
//! and `flush=TIME` (write buffered data at most TIME after it arrived). `reopen` (SIGUSR1)
//! writes out every batch and buffer, then opens every path again, so after logrotate renames a
//! file the next lines go to a new file with that name. Dropping the last [`LogWriter`] flushes
//! everything and stops the thread.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::batch::{self, DirectFile};

/// Opens a log file as nginx does: append, create with mode 0644.
pub fn open_log_file(path: &Path) -> io::Result<File> {
    // The unprivileged serving process uses the descriptors the supervisor opened as root.
    if let Some(f) = crate::control::logfds::lookup(path) {
        return f;
    }
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .open(path)
}

/// A failure to (re)open a log file, shown as nginx shows it:
/// `open() "/var/log/x.log" failed (13: Permission denied)`.
#[derive(Debug)]
pub struct OpenError {
    pub path: PathBuf,
    pub error: io::Error,
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "open() \"{}\" failed {}",
            self.path.display(),
            crate::control::errno_text(&self.error)
        )
    }
}

impl std::error::Error for OpenError {}

/// How long the thread lets lines gather after the first one woke it. Under load every line would
/// otherwise cost a futex wake-up of this thread and a `write` of its own; at 1 ms a busy worker's
/// lines go out in batches and an idle log still reaches the file within a millisecond. Measured
/// with `VARIANT=accesslog bench/run.sh` (issue 7). Reopen, flush and stop are queued behind the
/// lines, so they still see every line sent before them.
const BATCH: Duration = Duration::from_millis(1);

/// The thread writes every thread's batch at least this often ([`super::batch`]).
const BACKSTOP: Duration = Duration::from_secs(1);

enum Msg {
    Open {
        id: usize,
        path: PathBuf,
        file: File,
        buffer: Option<usize>,
        flush: Option<Duration>,
    },
    Line {
        id: usize,
        bytes: Vec<u8>,
    },
    /// A thread queued a first line in its batch ([`super::batch`]): write the batches soon.
    Kick,
    Reopen(mpsc::Sender<Vec<OpenError>>),
    Flush(mpsc::Sender<()>),
    Shutdown,
}

/// A handle to one open log file. Cheap to clone; `write` never blocks on the disk (a full
/// batch of an unbuffered file is written by the caller).
#[derive(Clone)]
pub struct LogFile {
    id: usize,
    path: Arc<Path>,
    dest: Dest,
}

#[derive(Clone)]
enum Dest {
    /// No `buffer=`/`flush=`: batched per thread, written by that thread.
    Direct(Arc<DirectFile>),
    /// `buffer=`/`flush=`: queued to the writer thread.
    Queued(Sender<Msg>),
}

impl std::fmt::Debug for LogFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LogFile({})", self.path.display())
    }
}

impl LogFile {
    /// One finished line (newline included).
    pub fn write(&self, line: Vec<u8>) {
        match &self.dest {
            Dest::Direct(f) => f.write(&line),
            // The thread only stops when the writer is dropped; a line sent after that has
            // nowhere to go.
            Dest::Queued(tx) => {
                let _ = tx.send(Msg::Line {
                    id: self.id,
                    bytes: line,
                });
            }
        }
    }

    /// The line `render` writes (newline included): straight into the thread's batch for an
    /// unbuffered file.
    pub fn write_with(&self, render: impl FnOnce(&mut Vec<u8>)) {
        match &self.dest {
            Dest::Direct(f) => f.write_with(render),
            Dest::Queued(_) => {
                let mut line = Vec::with_capacity(256);
                render(&mut line);
                self.write(line);
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

struct Registry {
    next_id: usize,
    by_path: HashMap<PathBuf, (LogFile, Option<usize>, Option<Duration>)>,
}

/// Owner of the writer thread. Share it (`Arc`) between the old and new `Live` across reloads so that a
/// path keeps one file and one buffer, as nginx shares open files between cycles.
pub struct LogWriter {
    tx: Sender<Msg>,
    registry: Mutex<Registry>,
    thread: Option<JoinHandle<()>>,
}

impl LogWriter {
    pub fn new() -> io::Result<LogWriter> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || run(rx))?;
        Ok(LogWriter {
            tx,
            registry: Mutex::new(Registry {
                next_id: 0,
                by_path: HashMap::new(),
            }),
            thread: Some(thread),
        })
    }

    /// Opens `path` (at config load, so failures become `[emerg]` lines) or returns the handle already
    /// open for it. `buffer`/`flush` are `access_log`'s parameters; the first registration of a path wins.
    pub fn open(
        &self,
        path: &Path,
        buffer: Option<usize>,
        flush: Option<Duration>,
    ) -> Result<LogFile, OpenError> {
        let mut reg = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((f, _, _)) = reg.by_path.get(path) {
            return Ok(f.clone());
        }
        let file = open_log_file(path).map_err(|error| OpenError {
            path: path.to_path_buf(),
            error,
        })?;
        let id = reg.next_id;
        reg.next_id += 1;
        let buffer = buffer.filter(|&b| b > 0);
        let dest = if buffer.is_none() && flush.is_none() {
            let tx = self.tx.clone();
            let kick = move || {
                let _ = tx.send(Msg::Kick);
            };
            Dest::Direct(Arc::new(DirectFile::new(
                path.to_path_buf(),
                file,
                Box::new(kick),
            )))
        } else {
            let _ = self.tx.send(Msg::Open {
                id,
                path: path.to_path_buf(),
                file,
                buffer,
                flush,
            });
            Dest::Queued(self.tx.clone())
        };
        let handle = LogFile {
            id,
            path: Arc::from(path),
            dest,
        };
        reg.by_path
            .insert(path.to_path_buf(), (handle.clone(), buffer, flush));
        Ok(handle)
    }

    /// Flushes buffers, then reopens every file by path (SIGUSR1). Returns the files that could not be
    /// reopened; those keep writing to their old descriptor, as in nginx.
    pub fn reopen(&self) -> Vec<OpenError> {
        batch::flush_all();
        let mut errors: Vec<OpenError> = {
            let reg = self.registry.lock().unwrap_or_else(|p| p.into_inner());
            reg.by_path
                .values()
                .filter_map(|(f, _, _)| match &f.dest {
                    Dest::Direct(d) => d.reopen().err(),
                    Dest::Queued(_) => None,
                })
                .collect()
        };
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Msg::Reopen(tx)).is_ok() {
            errors.extend(rx.recv().unwrap_or_default());
        }
        errors
    }

    /// Writes out everything queued, batched and buffered so far, and waits until it is written.
    pub fn flush(&self) {
        batch::flush_all();
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv();
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        batch::flush_all();
        let _ = self.tx.send(Msg::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct OpenFile {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    buffer: Option<usize>,
    flush: Option<Duration>,
    /// When buffered data must be written at the latest (`flush=`).
    deadline: Option<Instant>,
}

impl OpenFile {
    fn push(&mut self, line: &[u8]) {
        if let Some(size) = self.buffer {
            if !self.buf.is_empty() && self.buf.len() + line.len() > size {
                self.write_out();
            }
        }
        if self.buf.is_empty() {
            self.deadline = self.flush.map(|d| Instant::now() + d);
        }
        self.buf.extend_from_slice(line);
        if let Some(size) = self.buffer {
            if self.buf.len() >= size {
                self.write_out();
            }
        }
    }

    fn write_out(&mut self) {
        if !self.buf.is_empty() {
            // Like nginx, a failed log write is lost rather than retried forever; the disk may be full.
            let _ = self.file.write_all(&self.buf);
            self.buf.clear();
        }
        self.deadline = None;
    }

    /// Unbuffered files are written once the queue is drained.
    fn settle(&mut self) {
        if self.buffer.is_none() {
            self.write_out();
        }
    }
}

fn run(rx: Receiver<Msg>) {
    let mut files: HashMap<usize, OpenFile> = HashMap::new();
    loop {
        let next_deadline = files.values().filter_map(|f| f.deadline).min();
        let wait = next_deadline
            .map_or(BACKSTOP, |at| at.saturating_duration_since(Instant::now()))
            .min(BACKSTOP);
        let msg = match rx.recv_timeout(wait) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(Msg::Shutdown),
        };
        if matches!(msg, Some(Msg::Line { .. } | Msg::Kick)) {
            // Senders do not wake a sleeping thread: the lines of the next millisecond just queue.
            std::thread::sleep(BATCH);
        }
        let mut pending = msg;
        // Drain whatever else is queued before touching the disk, so bursts become one write per file.
        while let Some(m) = pending.take() {
            match m {
                Msg::Open {
                    id,
                    path,
                    file,
                    buffer,
                    flush,
                } => {
                    files.insert(
                        id,
                        OpenFile {
                            path,
                            file,
                            buf: Vec::new(),
                            buffer,
                            flush,
                            deadline: None,
                        },
                    );
                }
                Msg::Line { id, bytes } => {
                    if let Some(f) = files.get_mut(&id) {
                        f.push(&bytes);
                    }
                }
                Msg::Kick => {}
                Msg::Reopen(done) => {
                    let mut errors = Vec::new();
                    for f in files.values_mut() {
                        f.write_out();
                        match open_log_file(&f.path) {
                            Ok(new) => f.file = new,
                            Err(error) => errors.push(OpenError {
                                path: f.path.clone(),
                                error,
                            }),
                        }
                    }
                    let _ = done.send(errors);
                }
                Msg::Flush(done) => {
                    files.values_mut().for_each(OpenFile::write_out);
                    let _ = done.send(());
                }
                Msg::Shutdown => {
                    files.values_mut().for_each(OpenFile::write_out);
                    return;
                }
            }
            pending = rx.try_recv().ok();
        }
        batch::flush_all();
        files.values_mut().for_each(OpenFile::settle);
        let now = Instant::now();
        for f in files.values_mut() {
            if f.deadline.is_some_and(|d| d <= now) {
                f.write_out();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffered_lines_are_written_on_flush_reopen_and_drop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.log");
        let w = LogWriter::new().expect("writer");
        let f = w.open(&p, Some(64), None).expect("open");
        f.write(b"0123456789\n".to_vec());
        w.flush();
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "0123456789\n");
        // A line below the buffer size stays buffered; reopen writes it out before reopening, as
        // nginx flushes before it reopens.
        f.write(b"abc\n".to_vec());
        assert!(w.reopen().is_empty());
        assert_eq!(
            std::fs::read_to_string(&p).expect("read"),
            "0123456789\nabc\n"
        );
        // Whatever is still buffered when the writer goes away is written.
        let unflushed = w
            .open(&dir.path().join("b.log"), Some(8), None)
            .expect("open b");
        unflushed.write(b"12345678\n".to_vec());
        drop(w); // drop flushes everything and joins the thread
        assert_eq!(
            std::fs::read_to_string(dir.path().join("b.log")).expect("read b"),
            "12345678\n"
        );
    }

    #[test]
    fn same_path_shares_one_handle() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.log");
        let w = LogWriter::new().expect("writer");
        let a = w.open(&p, None, None).expect("open");
        let b = w.open(&p, None, None).expect("open again");
        assert_eq!(a.id, b.id);
        assert!(
            matches!((&a.dest, &b.dest), (Dest::Direct(x), Dest::Direct(y)) if Arc::ptr_eq(x, y))
        );
        a.write(b"1\n".to_vec());
        b.write(b"2\n".to_vec());
        w.flush();
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "1\n2\n");
    }

    #[test]
    fn open_error_wording() {
        let w = LogWriter::new().expect("writer");
        let e = w
            .open(Path::new("/nonexistent-dir/a.log"), None, None)
            .expect_err("must fail");
        assert_eq!(
            e.to_string(),
            "open() \"/nonexistent-dir/a.log\" failed (2: No such file or directory)"
        );
    }
}
