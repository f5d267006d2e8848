//! Unbuffered access logs (no `buffer=`), written by the threads that serve the requests.
//!
//! nginx writes each line with its own `write` from the worker. Handing lines to a log thread
//! instead cost nginx-rs 11-20% of its requests per CPU-second (a channel hand-off per line, the
//! thread's wake-ups, a second thread on the worker's core). Here each thread appends its lines to
//! its own [`Batch`] (an uncontended lock and a copy) and writes them out, one `write` per file:
//! - when its tokio worker is about to park (nothing left to run: [`flush_thread`] is the
//!   runtime's `on_thread_park` hook), so a line is on disk as soon as the worker goes idle;
//! - when a file's lines reach [`WRITE_AT`] bytes (a worker that never idles);
//! - on [`flush_all`] (`LogWriter::flush`, `reopen`, drop) and when the thread exits.
//!
//! A thread that is not such a worker (tests' runtimes, tokio's blocking threads) asks the log
//! thread to flush when it queues a first line ([`DirectFile::kick`]): the log thread waits a
//! millisecond for more, then writes them all, as it does for queued lines. The log thread also
//! flushes every second, for a worker that keeps running below [`WRITE_AT`].

use std::cell::Cell;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use arc_swap::ArcSwap;

use super::writer::{open_log_file, OpenError};

/// A file's lines are written once this many bytes wait (nginx's default `buffer=` is 64k).
pub const WRITE_AT: usize = 64 * 1024;

/// One unbuffered log file, written by any thread; [`DirectFile::reopen`] swaps the descriptor.
pub struct DirectFile {
    path: PathBuf,
    file: ArcSwap<File>,
    /// Asks the log thread for a flush (see the module doc).
    kick: Box<dyn Fn() + Send + Sync>,
}

impl DirectFile {
    pub fn new(path: PathBuf, file: File, kick: Box<dyn Fn() + Send + Sync>) -> DirectFile {
        DirectFile {
            path,
            file: ArcSwap::from_pointee(file),
            kick,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one finished line to this thread's batch.
    pub fn write(self: &Arc<Self>, line: &[u8]) {
        self.write_with(|out| out.extend_from_slice(line));
    }

    /// Appends the line `render` writes (newline included) to this thread's batch.
    pub fn write_with(self: &Arc<Self>, render: impl FnOnce(&mut Vec<u8>)) {
        let mut render = Some(render);
        let queued = MINE.try_with(|local| {
            local.batch.push(self, |out| {
                if let Some(r) = render.take() {
                    r(out);
                }
            })
        });
        match queued {
            Ok(first) => {
                if first && !WORKER.with(Cell::get) {
                    (self.kick)();
                }
            }
            // The thread is exiting (its batch is gone): write the line now.
            Err(_) => {
                if let Some(r) = render.take() {
                    let mut line = Vec::new();
                    r(&mut line);
                    self.write_out(&line);
                }
            }
        }
    }

    /// Opens the path again (SIGUSR1); on failure the old descriptor stays, as in nginx.
    pub fn reopen(&self) -> Result<(), OpenError> {
        let file = open_log_file(&self.path).map_err(|error| OpenError {
            path: self.path.clone(),
            error,
        })?;
        self.file.store(Arc::new(file));
        Ok(())
    }

    fn write_out(&self, bytes: &[u8]) {
        // Like nginx, a failed log write is lost rather than retried; the disk may be full. One
        // `write` on an O_APPEND file: lines of different threads never mix within a line.
        let _ = (&*self.file.load_full()).write_all(bytes);
    }
}

/// One thread's lines not yet written, per file.
#[derive(Default)]
struct Batch {
    pending: Mutex<Vec<(Arc<DirectFile>, Vec<u8>)>>,
}

impl Batch {
    /// Appends what `render` writes; true when the batch was empty (the line is its first).
    fn push(&self, file: &Arc<DirectFile>, render: impl FnOnce(&mut Vec<u8>)) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let first = pending.iter().all(|(_, b)| b.is_empty());
        let i = match pending.iter().position(|(f, _)| Arc::ptr_eq(f, file)) {
            Some(i) => i,
            None => {
                pending.push((Arc::clone(file), Vec::new()));
                pending.len() - 1
            }
        };
        let (file, buf) = &mut pending[i];
        render(buf);
        if buf.len() >= WRITE_AT {
            file.write_out(buf);
            buf.clear();
        }
        first
    }

    fn flush(&self) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        for (file, buf) in pending.iter_mut() {
            if !buf.is_empty() {
                file.write_out(buf);
                buf.clear();
            }
        }
        // Files of an older configuration go away with their last lines.
        pending.retain(|(f, _)| Arc::strong_count(f) > 1);
    }
}

/// Every thread's batch, for [`flush_all`].
static BATCHES: Mutex<Vec<Weak<Batch>>> = Mutex::new(Vec::new());

/// A thread's batch; written out when the thread exits.
struct Local {
    batch: Arc<Batch>,
}

impl Local {
    fn new() -> Local {
        let batch = Arc::new(Batch::default());
        BATCHES
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::downgrade(&batch));
        Local { batch }
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        self.batch.flush();
    }
}

thread_local! {
    static MINE: Local = Local::new();
    /// This thread is a tokio worker that calls [`flush_thread`] before it parks.
    static WORKER: Cell<bool> = const { Cell::new(false) };
}

/// The serving runtimes' `on_thread_park` hook: writes this thread's lines.
pub fn flush_thread() {
    WORKER.with(|w| w.set(true));
    let _ = MINE.try_with(|local| local.batch.flush());
}

/// Writes every thread's lines (they are written by the caller, under each batch's lock).
pub fn flush_all() {
    let batches: Vec<Arc<Batch>> = {
        let mut all = BATCHES.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|b| b.strong_count() > 0);
        all.iter().filter_map(Weak::upgrade).collect()
    };
    for b in batches {
        b.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn file(dir: &Path, name: &str) -> Arc<DirectFile> {
        let path = dir.join(name);
        let f = open_log_file(&path).expect("open");
        Arc::new(DirectFile::new(path, f, Box::new(|| {})))
    }

    #[test]
    fn lines_wait_for_a_flush_and_keep_their_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = file(dir.path(), "a.log");
        let b = file(dir.path(), "b.log");
        a.write(b"1\n");
        b.write(b"x\n");
        a.write(b"2\n");
        assert_eq!(read(a.path()).expect("read"), "");
        flush_thread();
        assert_eq!(read(a.path()).expect("read"), "1\n2\n");
        assert_eq!(read(b.path()).expect("read"), "x\n");
        // Another thread's lines are written by flush_all (or when that thread exits).
        let a2 = Arc::clone(&a);
        let t = std::thread::spawn(move || {
            a2.write(b"3\n");
            flush_all();
            let written = read(a2.path()).expect("read");
            a2.write(b"4\n");
            written
        });
        assert_eq!(t.join().expect("thread"), "1\n2\n3\n");
        assert_eq!(read(a.path()).expect("read"), "1\n2\n3\n4\n");
    }

    #[test]
    fn a_full_batch_is_written_at_once_and_reopen_swaps_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = file(dir.path(), "a.log");
        let line = vec![b'x'; 1000];
        for _ in 0..WRITE_AT / 1000 + 1 {
            a.write(&line);
        }
        let len = std::fs::metadata(a.path()).expect("stat").len() as usize;
        assert!(len >= WRITE_AT, "{len}");
        flush_thread();
        let rotated = dir.path().join("a.log.1");
        std::fs::rename(a.path(), &rotated).expect("rename");
        a.write(b"old\n");
        flush_thread();
        a.reopen().expect("reopen");
        a.write(b"new\n");
        flush_thread();
        assert!(read(&rotated).expect("read").ends_with("old\n"));
        assert_eq!(read(a.path()).expect("read"), "new\n");
    }
}
